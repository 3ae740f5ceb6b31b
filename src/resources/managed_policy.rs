//! AWS-managed policies the stack attaches: each must exist before anything is written, so a typo or a
//! retired policy stops the run before it is half done.

use std::collections::BTreeSet;

use crate::aws::{errors, Clients};
use crate::error::{Error, Result};
use crate::resources::Observed;
use crate::stack::Desired;
use crate::validate::quotas::DEFAULT_ROLE_POLICY_QUOTA;

/// GetPolicy for each ARN (concurrently); an error naming every one that does not exist.
pub(crate) async fn check_exist(clients: &Clients, arns: &[String]) -> Result<()> {
    let results = futures::future::join_all(arns.iter().map(|arn| async move {
        match clients.limit(clients.iam.get_policy().policy_arn(arn).send()).await {
            Ok(_) => Ok(None),
            Err(e) if errors::is_no_such_entity(&e) => Ok(Some(arn.clone())),
            Err(e) => Err(errors::describe(&format!("check managed policy `{arn}`"), &e)),
        }
    }))
    .await;
    let mut missing = Vec::new();
    for r in results {
        if let Some(arn) = r? {
            missing.push(arn);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = missing
        .iter()
        .map(|arn| {
            let name = arn.rsplit_once(":policy/").map(|(_, n)| n).unwrap_or(arn);
            match crate::stack::deprecated_replacement(name) {
                Some(new) => format!("  - {arn} (deprecated; use {new})"),
                None => format!("  - {arn}"),
            }
        })
        .collect();
    Err(Error::aws(format!(
        "managed polic{} not found in this account's partition:\n{}",
        if missing.len() == 1 { "y" } else { "ies" },
        lines.join("\n")
    ))
    .with_help("fix the policy names in the stack; nothing was written"))
}

/// No role may end up with more managed policies than the account's quota: the stack's own and those already
/// attached (which bootstrap leaves alone). The quota can be raised, never lowered below IAM's default, so the
/// account's own (`AttachedPoliciesPerRoleQuota` from GetAccountSummary,
/// https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccountSummary.html) is read only when a role would
/// have more than the default.
pub(crate) async fn check_role_quota(clients: &Clients, desired: &Desired, observed: &Observed) -> Result<()> {
    let counts: Vec<(&str, usize)> = desired
        .roles
        .iter()
        .zip(&observed.roles)
        .map(|(d, o)| {
            let mut all: BTreeSet<&String> = d.policy_arns.iter().collect();
            all.extend(o.iter().flat_map(|o| o.attached.iter()));
            (d.name.as_str(), all.len())
        })
        .filter(|(_, n)| *n > DEFAULT_ROLE_POLICY_QUOTA)
        .collect();
    if counts.is_empty() {
        return Ok(());
    }
    let quota = match clients.limit(clients.iam.get_account_summary().send()).await {
        Ok(out) => out
            .summary_map
            .unwrap_or_default()
            .iter()
            .find(|(k, _)| k.as_str() == "AttachedPoliciesPerRoleQuota")
            .map_or(DEFAULT_ROLE_POLICY_QUOTA, |(_, v)| usize::try_from(*v).unwrap_or(DEFAULT_ROLE_POLICY_QUOTA)),
        Err(e) => {
            return Err(errors::describe("read the account's quota of managed policies per role", &e).with_help(
                "a role of the stack would have more than IAM's default of 10 managed policies: grant \
                 iam:GetAccountSummary so wfboot can read the account's quota, or attach fewer policies",
            ))
        }
    };
    let over: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > quota)
        .map(|(role, n)| format!("  - role `{role}`: {n} managed policies after bootstrap"))
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "the account allows {quota} managed policies per role (AttachedPoliciesPerRoleQuota); nothing was written:\n{}",
        over.join("\n")
    ))
    .with_help("attach fewer policies (merge some into one), detach ones the role no longer needs, or have the quota raised through Service Quotas"))
}

/// Every AWS-managed policy the stack uses must exist, so a bad name fails before any write. Those already
/// attached to something observed are known to exist; only the others are asked about (GetPolicy). And no role
/// may end up with more managed policies than the account's quota allows.
/// `already_checked`: ARNs whose existence was checked before (see `commands::EarlyChecks`), not asked again.
pub(crate) async fn check_managed_policies(
    clients: &Clients,
    desired: &Desired,
    observed: &Observed,
    already_checked: &BTreeSet<String>,
) -> Result<()> {
    let mut seen: BTreeSet<&String> = observed.roles.iter().flatten().flat_map(|r| r.attached.iter()).collect();
    if let Some(u) = &observed.user {
        seen.extend(u.direct.iter().chain(u.via_groups.keys()));
    }
    seen.extend(already_checked);
    let unseen: Vec<String> = desired.managed_policy_arns().into_iter().filter(|a| !seen.contains(a)).collect();
    let (exist, quota) = tokio::join!(check_exist(clients, &unseen), check_role_quota(clients, desired, observed));
    exist.and(quota)
}
