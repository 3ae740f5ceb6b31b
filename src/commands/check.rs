//! `wfboot check`: who is calling, what the operator user has, whether the caller may do what `bootstrap`
//! would do, and whether the workflow services answer. Also the pre-flight of every `bootstrap` that has
//! changes to make: a denied permission stops it before the first write.

use serde::Serialize;

use crate::aws::{AwsSettings, Clients};
use crate::cli::CheckArgs;
use crate::commands::{plural, ExitStatus};
use crate::engine::permissions;
use crate::error::Result;
use crate::organisation::Organisation;
use crate::output::Printer;
use crate::pipeline::fleet::{self, Row as AccountRow, RowStatus};
use crate::pipeline::preflight::{self, Row, Status};
use crate::pipeline::stackset::{self, OrgUnits};
use crate::pipeline::{self, Run, Session};
use crate::policy_eval::Verdict;
use crate::resources::access::{self, ContextEntry, Permission};
use crate::resources::caller::{Caller, CallerKind};
use crate::resources::permissions as perms;
use crate::resources::plan::Plan;
use crate::resources::services::{self, ServiceProbe};
use crate::resources::user;
use crate::resources::Observed;
use crate::review::{self, Finding};
use crate::stack::{harden, Desired};

#[derive(Debug, Serialize)]
struct Report<'a> {
    caller: &'a Caller,
    user: Option<&'a str>,
    permissions_method: &'a str,
    rows: &'a [Row],
    /// What would grant the denied permissions, said once (as the text report says it); absent when none is.
    #[serde(skip_serializing_if = "str::is_empty")]
    grant_note: &'a str,
    services: &'a [ServiceProbe],
    passed: bool,
    /// The stack's least-privilege review: advice, never a failure.
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "Option::is_none")]
    hardening: Option<&'a [harden::Note]>,
    /// The service control policies' verdict on what bootstrap would do.
    organisation: &'a Organisation,
}

/// Everything `check` found in one account.
pub(crate) struct Checked {
    pub(crate) rows: Vec<Row>,
    pub(crate) method: String,
    pub(crate) probes: Vec<ServiceProbe>,
    pub(crate) passed: bool,
    pub(crate) findings: Vec<Finding>,
    /// What would grant the denied permissions (empty when none is denied).
    pub(crate) grant_note: String,
    pub(crate) organisation: Organisation,
}

impl Checked {
    /// The JSON report of one account.
    pub(crate) fn to_json(&self, session: &Session) -> serde_json::Value {
        serde_json::to_value(Report {
            caller: &session.caller,
            user: session.user.as_deref(),
            permissions_method: &self.method,
            rows: &self.rows,
            grant_note: &self.grant_note,
            services: &self.probes,
            passed: self.passed,
            findings: &self.findings,
            hardening: session.hardening.as_deref(),
            organisation: &self.organisation,
        })
        .unwrap_or_default()
    }

    pub(crate) fn table(&self) -> String {
        table(&self.rows)
    }
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &CheckArgs) -> Result<ExitStatus> {
    let run = Run::open(printer, aws, &args.stack, Some(&args.accounts)).await?;
    if let Some(org) = run.org_units() {
        return org_units(printer, &run, org).await;
    }
    let worker = printer.for_worker();
    let print_policy = args.print_policy;
    let run = &run;
    let checked = run
        .each(run.units(printer, &worker), |unit| async move {
            let result = async {
                let (session, observed, _) = run.open_observing(unit, false).await?;
                if print_policy {
                    let (plan, ()) = pipeline::plan(&session, &observed, &Default::default(), |_| async {}).await?;
                    let policy = permissions::minimal_policy(&plan, &session.desired);
                    return Ok((session, Err(policy)));
                }
                let checked = checks(&session, observed).await?;
                Ok((session, Ok(checked)))
            };
            (unit, result.await)
        })
        .await;
    let Some(fleet) = run.fleet() else {
        let Some((_, result)) = checked.into_iter().next() else { return Ok(ExitStatus::Success) };
        let (session, checked) = result?;
        let checked = match checked {
            Ok(c) => c,
            Err(policy) => {
                printer.result_json(&policy);
                return Ok(ExitStatus::Success);
            }
        };
        if printer.json() {
            printer.result_document("check", &checked.to_json(&session));
        } else {
            let mut out = checked.table();
            if !checked.grant_note.is_empty() {
                out += &format!("{}\n", checked.grant_note);
            }
            if let Some(notes) = &session.hardening {
                out += &format!("\n{}", harden::text(notes, session.desired.service_linked_roles.len()));
            }
            out += &format!("\n{}", review::text(&checked.findings));
            printer.result(&out);
            printer.info(&format!("permissions: {}", checked.method));
        }
        return Ok(if checked.passed { ExitStatus::Success } else { ExitStatus::CheckFailed });
    };
    let mut rows = Vec::new();
    for (unit, result) in checked {
        let Some(account) = unit.account else { continue };
        rows.push(match result {
            Ok((session, Ok(checked))) => {
                let status = if checked.passed { RowStatus::Passed } else { RowStatus::CheckFailed };
                let word = if checked.passed { "passed" } else { "check failed" };
                printer.info(&format!("{}{word}", unit.prefix()));
                if !printer.json() && !checked.passed {
                    printer.result(&format!("Account {}:\n{}\n", fleet::who(account), checked.table()));
                }
                let mut row = AccountRow::new(account, status);
                row.result = Some(checked.to_json(&session));
                row
            }
            // --print-policy goes with one account only (clap refuses it with --accounts).
            Ok((_, Err(_))) => AccountRow::new(account, RowStatus::Passed),
            Err(e) => AccountRow::failed(printer, account, &e),
        });
    }
    fleet.finish(printer, "check", &run.stack.name, rows, |rows| {
        match rows.iter().any(|r| r.status == RowStatus::CheckFailed) {
            true => ExitStatus::CheckFailed,
            false => ExitStatus::Success,
        }
    })
}

/// `--org-unit`: what a bootstrap through the StackSet needs, as rows: the caller, trusted access, the caller's
/// CloudFormation and Organizations calls, the SCPs over each OU's accounts, the accounts read, and what holds an
/// account back. Read-only; exit 3 when something would stop the bootstrap.
async fn org_units(printer: &Printer, run: &Run, org: &OrgUnits) -> Result<ExitStatus> {
    let (state, read) = stackset::read(run, org, printer, true).await?;
    let plan = stackset::plan(org, &state, &read);
    let checked = stackset::preflight(org, &state, Some(&plan), &run.stack.name).await;
    let row = |area: &str, check: String, status: Status, what_to_do: String| Row {
        area: area.into(),
        check,
        status,
        what_to_do,
    };
    let mut rows = vec![identity_row(&org.fleet.caller)];
    let (status, what) = match state.trusted {
        Ok(true) => (Status::Ok, String::new()),
        Ok(false) => (
            Status::Failed,
            format!("turn it on once, from the management account: `{}`", crate::stackset::ENABLE_TRUSTED_ACCESS),
        ),
        Err(ref why) => (Status::Unverified, format!("could not be read ({why})")),
    };
    rows.push(row("organisation", "trusted access for CloudFormation StackSets".into(), status, what));
    let denied: Vec<String> = checked
        .permissions
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Denied { .. }))
        .map(|c| format!("{} on {}", c.action, c.resource))
        .collect();
    let unverified = checked.permissions.iter().filter(|c| matches!(c.verdict, Verdict::Unverified { .. })).count();
    let n = checked.permissions.len();
    rows.push(match (denied.is_empty(), unverified) {
        (false, _) => {
            row("permissions", format!("{} of {n} calls denied", denied.len()), Status::Failed, denied.join("; "))
        }
        (true, 0) => row("permissions", format!("the StackSet's calls ({n})"), Status::Ok, String::new()),
        (true, u) => {
            row("permissions", format!("{u} of {n} calls"), Status::Unverified, checked.permissions_method.clone())
        }
    });
    for o in &plan.org_units {
        let accounts: Vec<&crate::stackset::AccountPlan> =
            plan.accounts.iter().filter(|a| a.org_unit == o.id).collect();
        let refused: Vec<&crate::stackset::AccountPlan> = accounts
            .iter()
            .copied()
            .filter(|a| matches!(a.verdict, crate::stackset::Verdict::Refused { .. }))
            .collect();
        let unverified: Vec<String> = accounts
            .iter()
            .filter_map(|a| match read.scps.get(&a.account_id) {
                Some(Organisation::Unverified { reason } | Organisation::NotVisible { reason }) => {
                    Some(format!("{}: {reason}", a.account_id))
                }
                _ => None,
            })
            .collect();
        let check = format!("service control policies over {} ({})", o.id, o.name);
        rows.push(match (&o.refused, refused.first(), unverified.first()) {
            (Some(why), _, _) => row("organisation", check, Status::Failed, why.clone()),
            (None, Some(a), _) => row(
                "organisation",
                check,
                Status::Failed,
                format!(
                    "{} of {} accounts refused, e.g. {}: {}",
                    refused.len(),
                    accounts.len(),
                    a.account_id,
                    match &a.verdict {
                        crate::stackset::Verdict::Refused { reason } => reason.as_str(),
                        _ => "",
                    }
                ),
            ),
            (None, None, Some(_)) => row("organisation", check, Status::Unverified, unverified.join("; ")),
            (None, None, None) => {
                row("organisation", check, Status::Ok, format!("{} account{}", accounts.len(), plural(accounts.len())))
            }
        });
    }
    let read = plan.accounts.iter().filter(|a| a.read == crate::stackset::Read::Done).count();
    let unread: Vec<String> = plan
        .accounts
        .iter()
        .filter_map(|a| match &a.read {
            crate::stackset::Read::Failed(why) => Some(format!("{}: {why}", a.account_id)),
            _ => None,
        })
        .collect();
    let role = org.fleet.role_name();
    rows.push(match (org.skip_reads, unread.is_empty()) {
        (true, _) => row(
            "accounts",
            "read one by one".into(),
            Status::Warning,
            "--skip-account-reads: resources CloudFormation does not own and existing service-linked roles are not found in advance".into(),
        ),
        (false, true) => row("accounts", format!("{read} read through the role {role}"), Status::Ok, String::new()),
        (false, false) => row(
            "accounts",
            format!("{} of {} could not be read through the role {role}", unread.len(), unread.len() + read),
            Status::Unverified,
            unread.join("; "),
        ),
    });
    for a in plan.held_back() {
        if let crate::stackset::Verdict::HeldBack { reason } = &a.verdict {
            rows.push(row("accounts", format!("{} held back", a.who()), Status::Warning, reason.clone()));
        }
    }
    for a in plan.accounts.iter().filter(|a| !a.existing_service_linked_roles.is_empty()) {
        rows.push(row(
            "accounts",
            format!("{}: CreateServiceLinkedRoles=false", a.who()),
            Status::Ok,
            format!("existing: {}", a.existing_service_linked_roles.join(", ")),
        ));
    }
    for n in &plan.notes {
        rows.push(row("stack", "not in the StackSet".into(), Status::Warning, n.clone()));
    }
    let passed = !rows.iter().any(|r| r.status == Status::Failed);
    if printer.json() {
        #[derive(Serialize)]
        struct OrgCheck<'a> {
            caller: &'a Caller,
            stack_set: &'a str,
            rows: &'a [Row],
            preflight: &'a stackset::Preflight,
            accounts: &'a [crate::stackset::AccountPlan],
            passed: bool,
        }
        printer.result_document(
            "check",
            &OrgCheck {
                caller: &org.fleet.caller,
                stack_set: org.name(),
                rows: &rows,
                preflight: &checked,
                accounts: &plan.accounts,
                passed,
            },
        );
    } else {
        printer.result(&table(&rows));
        printer.info(&format!("permissions: {}", checked.permissions_method));
    }
    Ok(if passed { ExitStatus::Success } else { ExitStatus::CheckFailed })
}

/// Every check of one account: identity, operator user, permissions, services, and the review. Read-only.
/// `observed`: the stack as read (by [`Run::open_observing`]).
pub(crate) async fn checks(session: &Session, observed: Observed) -> Result<Checked> {
    let caller = &session.caller;
    let observed = &observed;
    let (plan, (preflight, probes, operator, instances)) =
        pipeline::plan(session, observed, &Default::default(), |plan| async move {
            tokio::join!(
                preflight::of_plan(session, observed, &plan, None, false),
                services::probe_all(&session.clients),
                operator_rows(&session.clients, &session.desired, &plan, session.user.as_deref()),
                instance_rows(&session.clients, &session.desired)
            )
        })
        .await?;
    let preflight = preflight?;

    let mut rows = vec![identity_row(caller)];
    rows.extend(user_rows(&plan, session.user.as_deref()));
    rows.extend(preflight.rows);
    rows.extend(operator);
    for p in &probes {
        rows.push(Row {
            area: "services".into(),
            check: format!("{} ({})", p.service, p.call),
            status: if p.ok { Status::Ok } else { Status::Failed },
            what_to_do: match &p.error {
                None => String::new(),
                Some(e) => format!(
                    "{e}: the operator cannot use {} in {}; see the stack's user policies",
                    p.service, session.clients.region
                ),
            },
        });
    }
    rows.extend(role_rows(&session.desired, observed));
    rows.extend(instances);
    let passed = !rows.iter().any(|r| r.status == Status::Failed);
    let findings = review::review(&session.desired, session.user.as_deref());
    Ok(Checked {
        rows,
        method: preflight.method,
        probes,
        passed,
        findings,
        grant_note: preflight.grant_note,
        organisation: preflight.organisation,
    })
}

/// When every role of the stack exists: `verify`'s offline trust check of each (its trust document as IAM holds it
/// admits the service the stack made it for), and a row saying what `check` does not know: whether the services
/// accept the roles, which only `wfboot verify --live` asks (it creates and deletes probe resources; check writes
/// nothing). Nothing while a role is missing: the plan's rows say bootstrap will create it.
fn role_rows(desired: &crate::stack::Desired, observed: &Observed) -> Vec<Row> {
    if desired.roles.is_empty() || observed.roles.iter().any(Option::is_none) {
        return Vec::new();
    }
    let found: Vec<Option<crate::verify::Found>> = desired
        .roles
        .iter()
        .zip(&observed.roles)
        .map(|(r, o)| {
            o.as_ref().map(|o| crate::verify::Found {
                arn: crate::arn::iam(&desired.target.partition, &desired.target.account_id, "role", &o.path, &r.name),
                trust: o.trust.clone(),
            })
        })
        .collect();
    let trust = crate::verify::trust_rows(desired, &found);
    let failed: Vec<String> = trust
        .iter()
        .filter(|r| r.status == crate::verify::Status::Failed)
        .map(|r| format!("{}: {}", r.role, r.detail))
        .collect();
    let unverified = trust.iter().filter(|r| r.status == crate::verify::Status::Unverified).count();
    let (status, what_to_do) = if !failed.is_empty() {
        (Status::Failed, format!("{}; `wfboot verify` shows every check", failed.join("; ")))
    } else if unverified > 0 {
        (Status::Unverified, format!("{unverified} not decided offline; `wfboot verify` says why"))
    } else {
        (Status::Ok, String::new())
    };
    vec![
        Row {
            area: "roles".into(),
            check: "each role's trust admits its service (offline, as `wfboot verify`)".into(),
            status,
            what_to_do,
        },
        Row {
            area: "roles".into(),
            check: "the services accept the roles".into(),
            status: Status::Unverified,
            what_to_do: "not asked by check, which writes nothing: run `wfboot verify --live` (it creates and \
                         deletes probe resources)"
                .into(),
        },
    ]
}

/// With an instance profile in the stack: the account's instance metadata defaults for new instances in the region
/// (does a new instance require IMDSv2?), and each instance that has one of the stack's instance profiles, with its
/// metadata options. Read-only; the account default is the user's to change (the row prints the one command). A read
/// that fails is `unverified`.
#[cfg(feature = "ec2")]
async fn instance_rows(clients: &Clients, desired: &Desired) -> Vec<Row> {
    use crate::resources::imds;
    let row =
        |check: String, status: Status, what_to_do: String| Row { area: "instances".into(), check, status, what_to_do };
    if desired.instance_profiles.is_empty() {
        return Vec::new();
    }
    let region = &clients.region;
    let (defaults, instances) = tokio::join!(imds::account_defaults(clients), imds::stack_instances(clients, desired));
    let mut rows = vec![match defaults {
        Ok(d) if d.requires_imdsv2() => {
            row(format!("new instances in {region} require IMDSv2 (account default)"), Status::Ok, String::new())
        }
        Ok(d) => {
            let now = match &d.http_tokens {
                Some(t) => format!("HttpTokens={t}"),
                None => "no preference".into(),
            };
            let managed = if d.managed_by.as_deref() == Some("declarative-policy") {
                "; set by the organisation's declarative policy, which the account cannot override"
            } else {
                ""
            };
            row(
                format!("new instances in {region} allow IMDSv1 (account default: {now})"),
                Status::Warning,
                format!(
                    "unless their launch or AMI requires IMDSv2; to make it their default: {} (your call: wfboot \
                     never changes it{managed})",
                    d.command()
                ),
            )
        }
        Err(imds::Unread(code)) => row(
            format!("the account's instance metadata defaults in {region}"),
            Status::Unverified,
            format!("cannot read them ({code}): ec2:GetInstanceMetadataDefaults"),
        ),
    }];
    match instances {
        Ok(list) => {
            for i in list {
                let Some(options) = &i.metadata_options else { continue };
                let check = format!("{} ({}): {}", i.instance_id, i.instance_profile, options.short());
                match i.findings.is_empty() {
                    true => rows.push(row(check, Status::Ok, String::new())),
                    false => {
                        let what: Vec<String> =
                            i.findings.iter().map(|f| format!("{}: {}", f.message, f.fix)).collect();
                        rows.push(row(check, Status::Warning, what.join("; ")));
                    }
                }
            }
        }
        Err(e) => rows.push(row(
            "the instances with the stack's instance profiles".into(),
            Status::Unverified,
            format!("cannot read them: {}", e.message),
        )),
    }
    rows
}

#[cfg(not(feature = "ec2"))]
async fn instance_rows(_: &Clients, _: &Desired) -> Vec<Row> {
    Vec::new()
}

/// What the operator needs to run the workflow the stack is for, beyond its managed policies' own grants:
/// passing each of the stack's roles to the services that trust it (`iam:PassRole` with `iam:PassedToService`,
/// which the services check when a compute environment, function or state machine is created with the role),
/// and, with an instance profile in the stack, what `wfboot attach --require-imdsv2` makes and reads:
/// `ec2:AssociateIamInstanceProfile` and `ec2:ModifyInstanceMetadataOptions` on the region's instances, and
/// `cloudwatch:GetMetricStatistics` (the instance's MetadataNoToken metric; it has no resource-level permissions:
/// https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html).
pub(crate) fn operator_permissions(desired: &Desired, region: &str) -> Vec<Permission> {
    let t = &desired.target;
    let in_region = ContextEntry { key: "aws:RequestedRegion".into(), values: vec![region.to_string()], list: false };
    let mut out = Vec::new();
    for r in &desired.roles {
        let arn = crate::arn::iam(&t.partition, &t.account_id, "role", &r.path, &r.name);
        for service in access::trusted_services(&r.trust) {
            out.push(
                Permission::new("iam:PassRole", arn.clone())
                    .with(ContextEntry { key: "iam:PassedToService".into(), values: vec![service], list: false })
                    .with(in_region.clone()),
            );
        }
    }
    if !desired.instance_profiles.is_empty() {
        let instances = format!("arn:{}:ec2:{region}:{}:instance/*", t.partition, t.account_id);
        for action in ["ec2:AssociateIamInstanceProfile", "ec2:ModifyInstanceMetadataOptions"] {
            out.push(Permission::new(action, instances.clone()).with(in_region.clone()));
        }
        out.push(Permission::new("cloudwatch:GetMetricStatistics", "*").with(in_region));
    }
    out
}

/// The operator user's verdicts on [`operator_permissions`], simulated for the user with the policies this
/// bootstrap would attach included (PolicyInputList), so that a fresh account is judged as it will be.
async fn operator_rows(clients: &Clients, desired: &Desired, plan: &Plan, user: Option<&str>) -> Vec<Row> {
    let Some(user) = user else { return Vec::new() };
    let needed = operator_permissions(desired, &clients.region);
    if needed.is_empty() {
        return Vec::new();
    }
    let row = |check: String, status: Status, what: String| Row {
        area: "operator user".into(),
        check,
        status,
        what_to_do: what,
    };
    // The documents of the user policies bootstrap will attach: the stack's own from the stack, AWS's read.
    let attaching: Vec<String> = user::attached_by(plan);
    let (own, aws): (Vec<&String>, Vec<&String>) =
        attaching.iter().partition(|arn| desired.policies.iter().any(|p| &&p.arn == arn));
    let mut extra: Vec<String> = own
        .iter()
        .filter_map(|arn| desired.policies.iter().find(|p| &&p.arn == arn))
        .map(|p| p.document.to_string())
        .collect();
    let aws: Vec<String> = aws.into_iter().cloned().collect();
    match perms::managed_documents(clients, &aws).await {
        Ok(docs) => extra.extend(docs.into_iter().map(|(_, d)| d.to_string())),
        Err(reason) => {
            return vec![row("can run the workflow".into(), Status::Unverified, reason.to_string())];
        }
    }
    let principal = crate::arn::iam(&desired.target.partition, &desired.target.account_id, "user", "/", user);
    let what = |p: &Permission| match p.context.iter().find(|e| e.key == "iam:PassedToService") {
        Some(e) => format!(
            "{user} may pass {} to {}",
            p.resource.rsplit('/').next().unwrap_or(&p.resource),
            e.values.join(",")
        ),
        None => format!("{user} may {} ({})", p.action, p.resource),
    };
    match perms::simulate(clients, &principal, &needed, &extra).await {
        Ok((checks, _)) => {
            let mut rows = Vec::new();
            for c in &checks {
                let p = c.permission();
                match &c.verdict {
                    Verdict::Allowed => {}
                    Verdict::Denied { explicit } => rows.push(row(
                        what(&p),
                        Status::Failed,
                        format!(
                            "{}: the operator could not use the stack's roles; the stack's user policies should grant it",
                            if *explicit { "explicitly denied" } else { "not allowed by the user's policies" }
                        ),
                    )),
                    Verdict::Unverified { reason } => rows.push(row(what(&p), Status::Unverified, reason.clone())),
                }
            }
            if rows.is_empty() {
                let n = checks.len();
                rows.push(row(
                    format!("{user} can run the workflow ({n} permission{} simulated)", plural(n)),
                    Status::Ok,
                    String::new(),
                ));
            }
            rows
        }
        Err(perms::Unsimulated::Fallback(why) | perms::Unsimulated::Failed(why)) => vec![row(
            format!("{user} can run the workflow"),
            Status::Unverified,
            format!("passing the stack's roles could not be simulated ({why})"),
        )],
    }
}

fn identity_row(caller: &Caller) -> Row {
    let (status, what) = match caller.kind {
        CallerKind::Root => (Status::Warning, "root credentials: use an IAM user or role instead".to_string()),
        _ => (Status::Ok, String::new()),
    };
    Row {
        area: "identity".into(),
        check: format!("{} (account {}, {})", caller.arn, caller.account_id, caller.partition),
        status,
        what_to_do: what,
    }
}

fn user_rows(plan: &Plan, user: Option<&str>) -> Vec<Row> {
    let Some(user) = user else {
        return vec![Row {
            area: "operator user".into(),
            check: "user policies".into(),
            status: Status::Warning,
            what_to_do: "no operator user given: pass --user-name NAME to check one".into(),
        }];
    };
    let Some(r) = user::entry(plan) else { return Vec::new() };
    let mut rows = Vec::new();
    for policy_arn in user::attached_by(plan) {
        rows.push(Row {
            area: "operator user".into(),
            check: format!("{user} has {policy_arn}"),
            status: Status::WillAdd,
            what_to_do: String::new(),
        });
    }
    for note in &r.notes {
        rows.push(Row {
            area: "operator user".into(),
            check: note.clone(),
            status: Status::Ok,
            what_to_do: String::new(),
        });
    }
    if rows.is_empty() {
        rows.push(Row {
            area: "operator user".into(),
            check: format!("{user} has the stack's policies"),
            status: Status::Ok,
            what_to_do: String::new(),
        });
    }
    rows
}

fn table(rows: &[Row]) -> String {
    let w_area = rows.iter().map(|r| r.area.len()).max().unwrap_or(0);
    let w_check = rows.iter().map(|r| r.check.len()).max().unwrap_or(0).min(90);
    let mut out = String::new();
    for r in rows {
        let line = format!("{:<w_area$}  {:<w_check$}  {}", r.area, r.check, r.status.label());
        out += line.trim_end();
        if !r.what_to_do.is_empty() {
            out += &format!("\n{:<w_area$}  {:<w_check$}    -> {}", "", "", r.what_to_do);
        }
        out.push('\n');
    }
    out
}
