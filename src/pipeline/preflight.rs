//! The pre-flight of a run that writes: before the confirmation and any write, may the caller make every call
//! the plan needs (IAM's policy simulator, or the local evaluation of the caller's policies), and does the
//! operator user stay within its quota of attached policies? A denied permission stops the account here.
//! `check` shows the same rows.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Session;
use crate::aws::{errors, Clients};
use crate::engine::permissions;
use crate::error::{Error, ErrorKind, Result};
use crate::organisation::{Organisation, Standing};
use crate::output::Printer;
use crate::policy_eval::{self, SourcePolicy, Verdict};
use crate::resources::access::Permission;
use crate::resources::caller::Caller;
use crate::resources::permissions::{self as perms, PermissionCheck};
use crate::resources::plan::{DestroyPlan, Plan};
use crate::resources::user;
use crate::resources::Observed;
use crate::stack::Desired;

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
    pub(crate) fn label(self) -> &'static str {
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
    /// A pre-flight decided by one failed row (the operator user's quota): the permissions and the organisation
    /// were not waited for.
    fn decided(row: &Row) -> Preflight {
        let why = "not checked: the operator user's quota already stops the run".to_string();
        Preflight {
            permissions: Vec::new(),
            method: why.clone(),
            rows: vec![Row {
                area: row.area.clone(),
                check: row.check.clone(),
                status: row.status,
                what_to_do: row.what_to_do.clone(),
            }],
            grant_note: String::new(),
            organisation: Organisation::Unverified { reason: why },
        }
    }

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
///
/// `decide`: a run that stops at the first refusal (`bootstrap`). The operator user's quota exceeded decides it:
/// the simulation and the organisation's reads still in flight are dropped, and the pre-flight is that row
/// alone. Without it (`check`), every row is read.
pub(crate) async fn of_plan(
    session: &Session,
    observed: &Observed,
    plan: &Plan,
    early: Option<super::EarlyChecks>,
    decide: bool,
) -> Result<Preflight> {
    let (clients, caller, desired) = (&session.clients, &session.caller, &session.desired);
    let needed = permissions::required(plan, desired);
    let checks = async {
        // Verdicts reached early (for a plan whose changes include these) are used as they are; only what the
        // real plan needs beyond them is asked now.
        let (mut known, method) = match early {
            Some(e) => e.verdicts().await?,
            None => Default::default(),
        };
        known.retain(|c| needed.iter().any(|p| c.is(p)));
        let missing: Vec<Permission> = needed.iter().filter(|p| !known.iter().any(|c| c.is(p))).cloned().collect();
        if missing.is_empty() {
            return Ok((known, method));
        }
        let (more, method) = perms::check(clients, caller, &missing).await;
        known.extend(more);
        Ok::<_, crate::error::Error>((known, method))
    };
    let advice = async {
        tokio::join!(checks, crate::organisation::verdict(&session.organisation, &caller.account_id, &needed))
    };
    let quota = user_quota(clients, observed, plan);
    tokio::pin!(advice, quota);
    let ((checks, organisation), quota) = tokio::select! {
        q = &mut quota => {
            let q = q?;
            if let Some(row) = q.as_ref().filter(|r| decide && r.status == Status::Failed) {
                return Ok(Preflight::decided(row));
            }
            (advice.await, Ok(q))
        }
        a = &mut advice => (a, quota.await),
    };
    let (checks, method) = checks?;
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

/// What the pre-flight showed, once it let the run go on: how many permissions it verified and how, or a
/// warning with those it could not verify. `prefix` names the account in multi-account runs ("account
/// 111122223333: "), and is empty otherwise.
pub(crate) fn report(printer: &Printer, preflight: &Preflight, prefix: &str) {
    if let Some(line) = preflight.organisation.notice() {
        printer.info(&format!("{prefix}{line}"));
    }
    let unverified = preflight.permissions.iter().filter(|p| matches!(p.verdict, Verdict::Unverified { .. })).count();
    let total = preflight.permissions.len();
    if unverified > 0 {
        printer.warn(&format!(
            "{prefix}{unverified} of {total} permissions could not be verified ({}); continuing",
            preflight.method
        ));
    } else if total > 0 {
        printer.info(&format!(
            "{prefix}Pre-flight: the caller may make every call the plan needs: {total} permissions, {}",
            preflight.method
        ));
    }
}

/// `destroy`'s pre-flight: may the caller make every change of `plan`? A denied one stops the account here.
pub(crate) async fn for_destroy(printer: &Printer, session: &Session, plan: &DestroyPlan, prefix: &str) -> Result<()> {
    let needed = permissions::required_for(
        plan.changes().map(|c| &c.change),
        &plan.partition,
        &plan.account_id,
        &session.desired,
    );
    let spinner = printer.spinner("checking permissions");
    let (checks, method) = perms::check(&session.clients, &session.caller, &needed).await;
    spinner.finish_and_clear();
    let denied: Vec<String> = checks
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Denied { .. }))
        .map(|c| format!("  - {} on {}", c.action, c.resource))
        .collect();
    if !denied.is_empty() {
        return Err(Error::new(
            ErrorKind::CheckFailed,
            format!(
                "{} may not make every change of this destroy ({method}); nothing was changed:\n{}",
                session.caller.arn,
                denied.join("\n")
            ),
        )
        .with_help("grant the missing permissions (docs/commands.md \"wfboot destroy\" lists them), then run again"));
    }
    let unverified = checks.iter().filter(|c| matches!(c.verdict, Verdict::Unverified { .. })).count();
    if unverified > 0 {
        printer.warn(&format!(
            "{prefix}{unverified} of {} permissions could not be verified ({method}); continuing",
            checks.len()
        ));
    }
    Ok(())
}
