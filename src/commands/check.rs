//! `wfboot check`: who is calling, what the operator user has, whether the caller may do what `bootstrap`
//! would do, and whether the workflow services answer. Also the pre-flight of every `bootstrap` that has
//! changes to make: a denied permission stops it before the first write.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws::{errors, AwsSettings, Clients};
use crate::cli::CheckArgs;
use crate::commands::{plural, ExitStatus, Session};
use crate::engine::permissions;
use crate::error::{Error, ErrorKind, Result};
use crate::organisation::{Organisation, Standing};
use crate::output::Printer;
use crate::policy_eval::{self, SourcePolicy, Verdict};
use crate::resources::access::{self, ContextEntry, Permission};
use crate::resources::caller::{Caller, CallerKind};
use crate::resources::permissions::{self as perms, PermissionCheck};
use crate::resources::plan::Plan;
use crate::resources::services::{self, ServiceProbe};
use crate::resources::user;
use crate::resources::{self, Observed};
use crate::review::{self, Finding};
use crate::stack::{harden, Desired};

/// IAM's default quota of managed policies attached to one user.
const DEFAULT_USER_POLICY_QUOTA: i32 = 10;

#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) area: String,
    pub(crate) check: String,
    pub(crate) status: Status,
    pub(crate) what_to_do: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Ok,
    /// Not there yet, but `bootstrap` will add it.
    WillAdd,
    Warning,
    Unverified,
    Failed,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::WillAdd => "missing (bootstrap adds it)",
            Status::Warning => "warning",
            Status::Unverified => "unverified",
            Status::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Preflight {
    pub(crate) permissions: Vec<PermissionCheck>,
    /// How the verdicts were reached (simulation, local evaluation, ...).
    pub(crate) method: String,
    pub(crate) rows: Vec<Row>,
    /// Which of the stack's user policies would grant what is denied, said once (empty when nothing is denied).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) grant_note: String,
    /// The service control policies' verdict on the same permissions.
    pub(crate) organisation: Organisation,
}

impl Preflight {
    pub(crate) fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.status == Status::Failed)
    }

    /// The failure as an error: what was denied (grouped by action, with the resources), for whom, and what
    /// would grant it, said once.
    pub(crate) fn error(&self, caller: &Caller) -> Error {
        let lines: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.status == Status::Failed)
            .map(|r| format!("  - {}: {}", r.check, r.what_to_do))
            .collect();
        let mut message = format!(
            "{} may not do everything this bootstrap needs; nothing was changed:\n{}",
            caller.arn,
            lines.join("\n")
        );
        if !self.grant_note.is_empty() {
            message += &format!("\n  {}", self.grant_note);
        }
        if self.organisation.denied() && lines.len() == 1 {
            return Error::new(ErrorKind::CheckFailed, message).with_help(crate::organisation::HELP);
        }
        Error::new(ErrorKind::CheckFailed, message).with_help(
            "`wfboot check --print-policy` prints the least IAM policy this bootstrap needs: attach it to the caller, \
             then run again; `wfboot check` shows the full report",
        )
    }
}

/// Permissions for `plan`'s changes, and the operator user's policy quota when policies will be attached.
/// `observed` is what the plan was made from: the operator user's attachments are counted from it.
pub(crate) async fn preflight(
    clients: &Clients,
    caller: &Caller,
    desired: &Desired,
    observed: &Observed,
    plan: &Plan,
    early: Option<(Vec<PermissionCheck>, String)>,
    org: &crate::organisation::Reader,
) -> Result<Preflight> {
    let needed = permissions::required(plan, desired);
    let checks = async {
        // Verdicts reached early (for a plan whose changes include these) are used as they are; only what the
        // real plan needs beyond them is asked now.
        let (mut known, method) = early.unwrap_or_default();
        known.retain(|c| needed.iter().any(|p| c.is(p)));
        let missing: Vec<Permission> = needed.iter().filter(|p| !known.iter().any(|c| c.is(p))).cloned().collect();
        if missing.is_empty() {
            return (known, method);
        }
        let (more, method) = perms::check(clients, caller, &missing).await;
        known.extend(more);
        (known, method)
    };
    let ((checks, method), quota, organisation) = tokio::join!(
        checks,
        user_quota(clients, observed, plan),
        crate::organisation::verdict(org, &caller.account_id, &needed)
    );
    let denied: Vec<&PermissionCheck> = checks.iter().filter(|c| matches!(c.verdict, Verdict::Denied { .. })).collect();
    let grantors = if denied.is_empty() { Vec::new() } else { grantors(clients, desired, &denied).await };
    // One row per denied permission; the allowed and the unverified ones are summarised.
    let mut rows = Vec::new();
    let allowed = checks.iter().filter(|c| c.verdict == Verdict::Allowed).count();
    if allowed > 0 {
        let what = if allowed == checks.len() { String::new() } else { format!("{allowed} of {}", checks.len()) };
        rows.push(Row {
            area: "permissions".into(),
            check: "allowed for what bootstrap will do".into(),
            status: Status::Ok,
            what_to_do: what,
        });
    }
    let mut reasons: Vec<&str> = checks
        .iter()
        .filter_map(|c| match &c.verdict {
            Verdict::Unverified { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    reasons.sort();
    reasons.dedup();
    for reason in reasons {
        let n =
            checks.iter().filter(|c| matches!(&c.verdict, Verdict::Unverified { reason: r } if r == reason)).count();
        rows.push(Row {
            area: "permissions".into(),
            check: format!("{n} of {} permissions", checks.len()),
            status: Status::Unverified,
            what_to_do: reason.to_string(),
        });
    }
    let (denied_rows, grant_note) = denied_rows(&checks, &grantors, &caller.account_id);
    rows.extend(denied_rows);
    if let Some(row) = quota? {
        rows.push(row);
    }
    rows.push(organisation_row(&organisation));
    Ok(Preflight { permissions: checks, method, rows, grant_note, organisation })
}

/// The "organisation" row: the SCPs' verdict, in the table's terms.
fn organisation_row(organisation: &Organisation) -> Row {
    let (check, standing, what_to_do) = organisation.row();
    let status = match standing {
        Standing::Ok => Status::Ok,
        Standing::Failed => Status::Failed,
        Standing::Unverified => Status::Unverified,
    };
    Row { area: "organisation".into(), check, status, what_to_do }
}

/// One row per denied action (explicit denials apart), with its resources; and one note on what grants them.
fn denied_rows(
    checks: &[PermissionCheck],
    grantors: &[(Permission, Vec<String>)],
    account: &str,
) -> (Vec<Row>, String) {
    let mut groups: BTreeMap<(bool, &str), Vec<&PermissionCheck>> = BTreeMap::new();
    for c in checks {
        if let Verdict::Denied { explicit } = c.verdict {
            groups.entry((!explicit, c.action.as_str())).or_default().push(c);
        }
    }
    let short =
        |arn: &str| arn.split_once(&format!(":{account}:")).map_or(arn.to_string(), |(_, rest)| rest.to_string());
    let mut granting: Vec<String> = Vec::new();
    let mut ungranted = 0;
    let mut rows = Vec::new();
    for ((implicit, action), list) in &groups {
        // Per resource, the requests on it: "role/R (policy A)", or "role/R (3 policies)" for several attachments.
        let mut per_resource: Vec<(String, Vec<String>)> = Vec::new();
        for c in list {
            let note = c.permission().context_note();
            match per_resource.iter_mut().find(|(r, _)| *r == c.resource) {
                Some((_, notes)) => notes.push(note),
                None => per_resource.push((c.resource.clone(), vec![note])),
            }
        }
        let resources: Vec<String> = per_resource
            .iter()
            .map(|(r, notes)| match notes.len() {
                1 => format!("{}{}", short(r), notes[0]),
                n if notes.iter().all(|x| x.starts_with(" (policy ")) => format!("{} ({n} policies)", short(r)),
                _ => format!(
                    "{} ({})",
                    short(r),
                    notes.iter().map(|x| x.trim().trim_matches(['(', ')'])).collect::<Vec<_>>().join("; ")
                ),
            })
            .collect();
        let mut by: Vec<String> = list.iter().flat_map(|c| c.detail.iter().cloned()).collect();
        by.sort();
        by.dedup();
        let kind = if *implicit {
            "not allowed by any policy".to_string()
        } else if by.is_empty() {
            "explicitly denied".to_string()
        } else {
            format!("explicitly denied by {}", by.join(", "))
        };
        for c in list {
            match grantors.iter().find(|(p, _)| c.is(p)).map(|(_, g)| g) {
                Some(g) if !g.is_empty() => granting.extend(g.iter().cloned()),
                _ => ungranted += 1,
            }
        }
        let n = resources.len();
        rows.push(Row {
            area: "permissions".into(),
            check: if n == 1 { format!("{action} on {}", resources[0]) } else { format!("{action} on {n} resources") },
            status: Status::Failed,
            what_to_do: if n == 1 { kind } else { format!("{kind}: {}", resources.join(", ")) },
        });
    }
    if rows.is_empty() {
        return (rows, String::new());
    }
    granting.sort();
    granting.dedup();
    let mut note = String::new();
    if !granting.is_empty() {
        note = format!(
            "the stack's user polic{} {} grant{} some of them",
            if granting.len() == 1 { "y" } else { "ies" },
            granting.join(", "),
            if granting.len() == 1 { "s" } else { "" }
        );
    }
    if ungranted > 0 {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!(
            "{} {} granted by none of the stack's user policies: `wfboot check --print-policy` prints the least \
             operator policy for this stack (or attach IAMFullAccess)",
            ungranted,
            if ungranted == 1 { "is" } else { "are" }
        ));
    }
    (rows, note)
}

/// For each denied permission, which of the stack's user policies would grant it.
async fn grantors(clients: &Clients, desired: &Desired, denied: &[&PermissionCheck]) -> Vec<(Permission, Vec<String>)> {
    let docs = perms::managed_documents(clients, &desired.user_policies).await.unwrap_or_default();
    denied
        .iter()
        .map(|d| {
            let names = docs
                .iter()
                .filter(|(_, doc)| {
                    let source = [SourcePolicy { label: String::new(), document: doc }];
                    // A conditional grant (iam:PassedToService, ...) counts: the condition is the request's.
                    matches!(
                        policy_eval::evaluate(&source, &d.action, &d.resource).verdict,
                        Verdict::Allowed | Verdict::Unverified { .. }
                    )
                })
                .map(|(arn, _)| arn.rsplit('/').next().unwrap_or(arn).to_string())
                .collect();
            (d.permission(), names)
        })
        .collect()
}

/// Attaching the missing user policies must not exceed the per-user quota.
async fn user_quota(clients: &Clients, observed: &Observed, plan: &Plan) -> Result<Option<Row>> {
    let Some(user) = user::entry(plan).filter(|r| !r.changes.is_empty()) else {
        return Ok(None);
    };
    let attached = observed.user.as_ref().map_or(0, |u| u.direct.len());
    let after = attached + user.changes.len();
    if after as i32 <= DEFAULT_USER_POLICY_QUOTA {
        // The quota can be raised, never lowered: within the default, the account's own needs no reading.
        return Ok(Some(Row {
            area: "operator user".into(),
            check: "attached-policies quota".into(),
            status: Status::Ok,
            what_to_do: format!("{after} after bootstrap, within IAM's default quota of {DEFAULT_USER_POLICY_QUOTA}"),
        }));
    }
    let summary = clients.limit(clients.iam.get_account_summary().send()).await;
    let map = match summary {
        Ok(out) => out.summary_map.unwrap_or_default(),
        Err(e) => {
            return Ok(Some(Row {
                area: "operator user".into(),
                check: "attached-policies quota".into(),
                status: Status::Unverified,
                what_to_do: format!("cannot read the account summary ({})", errors::code(&e).unwrap_or("error")),
            }))
        }
    };
    let quota = map
        .iter()
        .find(|(k, _)| k.as_str() == "AttachedPoliciesPerUserQuota")
        .map(|(_, v)| *v)
        .unwrap_or(DEFAULT_USER_POLICY_QUOTA);
    let (status, what) = if after as i32 > quota {
        (
            Status::Failed,
            format!(
                "user {} has {attached} managed policies; {} more would exceed IAM's quota of {quota}: attach them to a group the user is in, or detach unused ones",
                user.name,
                user.changes.len()
            ),
        )
    } else {
        (Status::Ok, format!("{after} of {quota} after bootstrap"))
    };
    Ok(Some(Row { area: "operator user".into(), check: "attached-policies quota".into(), status, what_to_do: what }))
}

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
    let (session, observed, _) = Session::open_observing(printer, aws, &args.stack, false).await?;
    if args.print_policy {
        let plan = plan_of(&session, &observed).await?;
        printer.result_json(&permissions::minimal_policy(&plan, &session.desired));
        return Ok(ExitStatus::Success);
    }
    let checked = checks(&session, Some(observed)).await?;
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
    if checked.passed {
        Ok(ExitStatus::Success)
    } else {
        Ok(ExitStatus::CheckFailed)
    }
}

/// The plan for what was observed, once the stack's managed policies are known to exist (an error otherwise).
async fn plan_of(session: &Session, observed: &Observed) -> Result<Plan> {
    resources::managed_policy::check_managed_policies(
        &session.clients,
        &session.desired,
        observed,
        &Default::default(),
    )
    .await?;
    Ok(resources::diff(&session.desired, observed, session.user.as_deref()))
}

/// Every check of one account: identity, operator user, permissions, services, and the review. Read-only.
/// `observed`: the stack as already read (by `Session::open_observing`), or `None` to read it here.
pub(crate) async fn checks(session: &Session, observed: Option<Observed>) -> Result<Checked> {
    let caller = &session.caller;
    let observed = match observed {
        Some(o) => o,
        None => resources::observe(&session.clients, &session.desired, session.user.as_deref(), false).await?,
    };
    let plan = plan_of(session, &observed).await?;
    let (preflight, probes, operator) = tokio::join!(
        preflight(&session.clients, caller, &session.desired, &observed, &plan, None, &session.organisation),
        services::probe_all(&session.clients),
        operator_rows(&session.clients, &session.desired, &plan, session.user.as_deref())
    );
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
    rows.extend(role_rows(&session.desired, &observed));
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

/// What the operator needs to run the workflow the stack is for, beyond its managed policies' own grants:
/// passing each of the stack's roles to the services that trust it (`iam:PassRole` with `iam:PassedToService`,
/// which the services check when a compute environment, function or state machine is created with the role),
/// and, with an instance profile in the stack, `ec2:AssociateIamInstanceProfile` (`wfboot attach`).
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
        out.push(
            Permission::new(
                "ec2:AssociateIamInstanceProfile",
                format!("arn:{}:ec2:{region}:{}:instance/*", t.partition, t.account_id),
            )
            .with(in_region),
        );
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
