//! `wfboot check`: who is calling, what the operator user has, whether the caller may do what `bootstrap`
//! would do, and whether the workflow services answer. Also the pre-flight of every `bootstrap` that has
//! changes to make: a denied permission stops it before the first write.

use serde::Serialize;

use crate::aws::{errors, AwsSettings, Clients};
use crate::cli::CheckArgs;
use crate::commands::{ExitStatus, Session};
use crate::engine::permissions::{self, Permission};
use crate::engine::plan::Kind;
use crate::engine::{self, Observed, Plan};
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;
use crate::policy_eval::{self, SourcePolicy, Verdict};
use crate::resources::caller::{Caller, CallerKind};
use crate::resources::permissions::{self as perms, PermissionCheck};
use crate::resources::services::{self, ServiceProbe};
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
}

impl Preflight {
    pub(crate) fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.status == Status::Failed)
    }

    /// The failure as an error: what was denied, for whom, and what would grant it.
    pub(crate) fn error(&self, caller: &Caller) -> Error {
        let lines: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.status == Status::Failed)
            .map(|r| format!("  - {}: {} — {}", r.check, r.status.label(), r.what_to_do))
            .collect();
        Error::new(
            ErrorKind::CheckFailed,
            format!("{} may not do everything this bootstrap needs; nothing was changed:\n{}", caller.arn, lines.join("\n")),
        )
        .with_help("grant the missing permissions (docs/operator-policy.json is the least a default bootstrap needs), then run again; `wfboot check` shows the full report")
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
) -> Result<Preflight> {
    let needed = permissions::required(plan, desired);
    let checks = async {
        // Verdicts reached early (for a plan whose changes include these) are used as they are; only what the
        // real plan needs beyond them is asked now.
        let (mut known, method) = early.unwrap_or_default();
        known.retain(|c| needed.iter().any(|p| p.action == c.action && p.resource == c.resource));
        let missing: Vec<Permission> = needed
            .iter()
            .filter(|p| !known.iter().any(|c| c.action == p.action && c.resource == p.resource))
            .cloned()
            .collect();
        if missing.is_empty() {
            return (known, method);
        }
        let (more, method) = perms::check(clients, caller, &missing).await;
        known.extend(more);
        (known, method)
    };
    let ((checks, method), quota) = tokio::join!(checks, user_quota(clients, observed, plan));
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
    for c in &checks {
        let Verdict::Denied { explicit } = c.verdict else { continue };
        let kind = if explicit { "explicitly denied" } else { "not allowed by any policy" };
        let grant = grantors
            .iter()
            .find(|(p, _)| p.action == c.action && p.resource == c.resource)
            .map(|(_, g)| g.clone())
            .filter(|g| !g.is_empty())
            .map(|g| format!("granted by the stack's user policy {}", g.join(", ")))
            .unwrap_or_else(|| {
                "none of the stack's user policies grants it: attach IAMFullAccess or docs/operator-policy.json".into()
            });
        rows.push(Row {
            area: "permissions".into(),
            check: format!("{} on {}", c.action, c.resource),
            status: Status::Failed,
            what_to_do: format!("{kind}; {grant}"),
        });
    }
    if let Some(row) = quota? {
        rows.push(row);
    }
    Ok(Preflight { permissions: checks, method, rows })
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
                    policy_eval::evaluate(&source, &d.action, &d.resource).verdict == Verdict::Allowed
                })
                .map(|(arn, _)| arn.rsplit('/').next().unwrap_or(arn).to_string())
                .collect();
            (Permission { action: d.action.clone(), resource: d.resource.clone() }, names)
        })
        .collect()
}

/// Attaching the missing user policies must not exceed the per-user quota.
async fn user_quota(clients: &Clients, observed: &Observed, plan: &Plan) -> Result<Option<Row>> {
    let Some(user) = plan.resources.iter().find(|r| r.kind == Kind::UserPolicies && !r.changes.is_empty()) else {
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
    services: &'a [ServiceProbe],
    passed: bool,
    /// The stack's least-privilege review: advice, never a failure.
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "Option::is_none")]
    hardening: Option<&'a [harden::Note]>,
}

/// Everything `check` found in one account.
pub(crate) struct Checked {
    pub(crate) rows: Vec<Row>,
    pub(crate) method: String,
    pub(crate) probes: Vec<ServiceProbe>,
    pub(crate) passed: bool,
    pub(crate) findings: Vec<Finding>,
}

impl Checked {
    /// The JSON report of one account.
    pub(crate) fn to_json(&self, session: &Session) -> serde_json::Value {
        serde_json::to_value(Report {
            caller: &session.caller,
            user: session.user.as_deref(),
            permissions_method: &self.method,
            rows: &self.rows,
            services: &self.probes,
            passed: self.passed,
            findings: &self.findings,
            hardening: session.hardening.as_deref(),
        })
        .unwrap_or_default()
    }

    pub(crate) fn table(&self) -> String {
        table(&self.rows)
    }
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &CheckArgs) -> Result<ExitStatus> {
    if args.accounts.accounts.is_some() {
        return crate::commands::accounts::check(printer, aws, args).await;
    }
    let (session, observed, _) = Session::open_observing(printer, aws, &args.stack, false).await?;
    if args.print_policy {
        engine::check_managed_policies(&session.clients, &session.desired, &observed, &Default::default()).await?;
        let plan = engine::diff(&session.desired, &observed, session.user.as_deref());
        printer.result_json(&permissions::minimal_policy(&plan, &session.desired));
        return Ok(ExitStatus::Success);
    }
    let checked = checks(&session, Some(observed)).await?;
    if printer.json() {
        printer.result_document("check", &checked.to_json(&session));
    } else {
        let mut out = checked.table();
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

/// Every check of one account: identity, operator user, permissions, services, and the review. Read-only.
/// `observed`: the stack as already read (by `Session::open_observing`), or `None` to read it here.
pub(crate) async fn checks(session: &Session, observed: Option<Observed>) -> Result<Checked> {
    let caller = &session.caller;
    let observed = match observed {
        Some(o) => o,
        None => engine::observe(&session.clients, &session.desired, session.user.as_deref(), false).await?,
    };
    engine::check_managed_policies(&session.clients, &session.desired, &observed, &Default::default()).await?;
    let plan = engine::diff(&session.desired, &observed, session.user.as_deref());
    let (preflight, probes) = tokio::join!(
        preflight(&session.clients, caller, &session.desired, &observed, &plan, None),
        services::probe_all(&session.clients)
    );
    let preflight = preflight?;

    let mut rows = vec![identity_row(caller)];
    rows.extend(user_rows(&plan, session.user.as_deref()));
    rows.extend(preflight.rows);
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
    let passed = !rows.iter().any(|r| r.status == Status::Failed);
    let findings = review::review(&session.desired, session.user.as_deref());
    Ok(Checked { rows, method: preflight.method, probes, passed, findings })
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
    let Some(r) = plan.resources.iter().find(|r| r.kind == Kind::UserPolicies) else { return Vec::new() };
    let mut rows = Vec::new();
    for c in &r.changes {
        if let crate::engine::plan::Change::AttachUserPolicy { policy_arn, .. } = &c.change {
            rows.push(Row {
                area: "operator user".into(),
                check: format!("{user} has {policy_arn}"),
                status: Status::WillAdd,
                what_to_do: String::new(),
            });
        }
    }
    for note in &r.left_alone {
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
