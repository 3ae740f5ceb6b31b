//! The operator's IAM user: ensures it has each managed policy the stack needs, directly or through one of
//! its groups. Missing ones are attached to the user; nothing is ever detached.

use std::collections::{BTreeMap, BTreeSet};

use std::fmt;

use serde::Serialize;

use super::access::{Permission, Scope};
use super::kind::{DestroyCtx, ResourceKind};
use super::plan::{DestroyResource, Key, Kind, ResourcePlan};
use super::vocab::Ownership;
use super::write::{not_propagated, plain, Call, Ctx, Outcome, Write};
use crate::aws::{errors, Clients};
use crate::error::{Error, Result};

/// One write call to an IAM user's attachments.
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "call", rename_all = "PascalCase")]
pub(crate) enum Change {
    AttachUserPolicy {
        user: String,
        policy_arn: String,
    },
    #[cfg_attr(test, schemars(extend("x-made-by" = "destroy")))]
    /// Made only by `destroy`, to delete a policy of the stack attached to a user.
    DetachUserPolicy {
        user: String,
        policy_arn: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AttachUserPolicy { policy_arn, .. } => write!(f, "attach {policy_arn}"),
            Change::DetachUserPolicy { user, policy_arn } => write!(f, "detach {policy_arn} from user {user}"),
        }
    }
}

impl Write for Change {
    fn operation(&self) -> &'static str {
        match self {
            Change::AttachUserPolicy { .. } => "AttachUserPolicy",
            Change::DetachUserPolicy { .. } => "DetachUserPolicy",
        }
    }

    fn needs(&self) -> Vec<Key> {
        match self {
            Change::AttachUserPolicy { policy_arn, .. } => vec![Key::PolicyExists(policy_arn.clone())],
            Change::DetachUserPolicy { .. } => Vec::new(),
        }
    }

    fn provides(&self) -> Vec<Key> {
        match self {
            Change::AttachUserPolicy { .. } => Vec::new(),
            Change::DetachUserPolicy { policy_arn, .. } => vec![Key::PolicyReleased(policy_arn.clone())],
        }
    }

    fn permissions(&self, scope: &Scope<'_>) -> Vec<Permission> {
        match self {
            Change::AttachUserPolicy { user, policy_arn } => {
                vec![scope.on_policy(Permission::new("iam:AttachUserPolicy", scope.arn("user", "/", user)), policy_arn)]
            }
            Change::DetachUserPolicy { user, policy_arn } => {
                vec![scope.on_policy(Permission::new("iam:DetachUserPolicy", scope.arn("user", "/", user)), policy_arn)]
            }
        }
    }

    fn same_write(&self, other: &Change) -> bool {
        self == other
    }

    async fn execute(&self, ctx: &mut Ctx<'_>, after_dependency: bool) -> Result<(Outcome, bool)> {
        let iam = &ctx.clients.iam_writes;
        match self {
            Change::AttachUserPolicy { user, policy_arn } => {
                let req = iam.attach_user_policy().user_name(user).policy_arn(policy_arn);
                let call = Call::new(format!("attach `{policy_arn}` to user `{user}`"), format!("user `{user}`"))
                    .propagating(format!("policy `{policy_arn}`"))
                    .retrying(not_propagated(after_dependency));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::DetachUserPolicy { user, policy_arn } => {
                let req = iam.detach_user_policy().user_name(user).policy_arn(policy_arn);
                let call =
                    Call::new(format!("detach `{policy_arn}` from user `{user}`"), format!("user `{user}`")).removal();
                plain(ctx.send(&call, || req.clone().send()).await)
            }
        }
    }
}

/// The operator user's entry in `plan`, if the plan has one.
pub(crate) fn entry(plan: &super::plan::Plan) -> Option<&ResourcePlan> {
    plan.resources.iter().find(|r| r.kind == Kind::UserPolicies)
}

/// The managed policies `plan` would attach to the operator user.
pub(crate) fn attached_by(plan: &super::plan::Plan) -> Vec<String> {
    plan.resources
        .iter()
        .filter(|r| r.kind == Kind::UserPolicies)
        .flat_map(|r| &r.changes)
        .filter_map(|c| match &c.change {
            super::plan::Change::UserPolicies(Change::AttachUserPolicy { policy_arn, .. }) => Some(policy_arn.clone()),
            _ => None,
        })
        .collect()
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ObservedUser {
    pub(crate) direct: BTreeSet<String>,
    /// Policy ARN -> the group it arrives through.
    pub(crate) via_groups: BTreeMap<String, String>,
}

/// Reads the user's own attachments and groups at once; the groups' policies only when something is missing
/// directly.
pub(crate) async fn observe(clients: &Clients, user: &str, wanted: &[String]) -> Result<ObservedUser> {
    let direct = clients.all(clients.iam.list_attached_user_policies().user_name(user).into_paginator().items().send());
    let groups = clients.list(
        format!("the groups of user `{user}`"),
        clients.iam.list_groups_for_user().user_name(user).into_paginator().items().send(),
    );
    let (direct, groups) = tokio::join!(direct, groups);
    let direct = direct.map_err(|e| {
        if errors::is_no_such_entity(&e) {
            Error::aws(format!("IAM user `{user}` does not exist in this account")).with_help(
                "pass --user-name with the operator's IAM user name, or --skip-user to leave user policies alone",
            )
        } else {
            errors::describe(&format!("list the policies of user `{user}`"), &e)
        }
    })?;
    let direct: BTreeSet<String> = direct.into_iter().filter_map(|p| p.policy_arn).collect();
    let mut observed = ObservedUser { direct, via_groups: BTreeMap::new() };
    if wanted.iter().all(|arn| observed.direct.contains(arn)) {
        return Ok(observed);
    }
    let groups = groups?;
    let lists = futures::future::join_all(groups.iter().map(|g| {
        let name = g.group_name.clone();
        async move {
            let attached = clients
                .list(
                    format!("the policies of group `{name}`"),
                    clients.iam.list_attached_group_policies().group_name(&name).into_paginator().items().send(),
                )
                .await?;
            Ok::<_, Error>((name, attached))
        }
    }))
    .await;
    for list in lists {
        let (group, attached) = list?;
        for arn in attached.into_iter().filter_map(|p| p.policy_arn) {
            observed.via_groups.entry(arn).or_insert_with(|| group.clone());
        }
    }
    Ok(observed)
}

pub(crate) fn diff(user: &str, wanted: &[String], observed: &ObservedUser) -> ResourcePlan {
    let changes = wanted
        .iter()
        .filter(|arn| !observed.direct.contains(*arn) && !observed.via_groups.contains_key(*arn))
        .map(|arn| Change::AttachUserPolicy { user: user.to_string(), policy_arn: arn.clone() })
        .collect();
    let left_alone = wanted
        .iter()
        .filter_map(|arn| observed.via_groups.get(arn).filter(|_| !observed.direct.contains(arn)).map(|g| (arn, g)))
        .map(|(arn, group)| format!("{arn} comes through group {group}"))
        .collect();
    ResourcePlan::new(Kind::UserPolicies, user, Ownership::External, changes, left_alone)
}

/// What `destroy` says of the operator user: the stack's managed policies on it are left alone (wfboot cannot
/// tell whether it attached them); the stack's own policies among them are deleted, which detaches them first.
pub(crate) fn destroy_diff(desired: &crate::stack::Desired) -> Option<DestroyResource> {
    let own: BTreeSet<&str> = desired.policies.iter().map(|p| p.arn.as_str()).collect();
    let kept = desired.user_policies.iter().filter(|a| !own.contains(a.as_str())).count();
    (kept > 0).then(|| {
        DestroyResource::left_alone(
            Kind::UserPolicies,
            "(operator)",
            Ownership::External,
            format!(
                "the stack's {kept} managed policies on the operator's IAM user are not detached: wfboot cannot tell \
                 whether it attached them or they were there before (detach them yourself if they are no longer needed)"
            ),
        )
    })
}

/// The operator user's attachments of the stack's managed policies (`[user]`), read once the account is known.
pub(crate) struct UserPolicies;

impl ResourceKind for UserPolicies {
    const WORD: &'static str = "user";
    const BY_NAME: bool = false;
    const READ_ACTIONS: &'static [&'static str] =
        &["iam:ListAttachedUserPolicies", "iam:ListGroupsForUser", "iam:ListAttachedGroupPolicies", "iam:GetUser"];
    type Change = Change;
    type Observation = Option<ObservedUser>;

    async fn observe_in_account(
        clients: &Clients,
        desired: &crate::stack::Desired,
        user: Option<&str>,
        _verifying: bool,
    ) -> Result<Option<ObservedUser>> {
        match user {
            Some(u) => observe(clients, u, &desired.user_policies).await.map(Some),
            None => Ok(None),
        }
    }

    /// The operator user (when there is one) taken as having none of the stack's policies.
    fn absent(_desired: &crate::stack::Desired, user: Option<&str>) -> Option<ObservedUser> {
        user.map(|_| ObservedUser::default())
    }

    fn diff(desired: &crate::stack::Desired, observed: &Option<ObservedUser>, user: Option<&str>) -> Vec<ResourcePlan> {
        match (user, observed) {
            (Some(u), Some(o)) => vec![diff(u, &desired.user_policies, o)],
            _ => Vec::new(),
        }
    }

    fn keep_changed(desired: &mut crate::stack::Desired, changed: &dyn Fn(Option<&str>) -> bool) {
        if !changed(None) {
            desired.user_policies.clear();
        }
    }

    fn destroy_diff(
        desired: &crate::stack::Desired,
        _: &Option<ObservedUser>,
        _: &DestroyCtx<'_>,
    ) -> Vec<DestroyResource> {
        destroy_diff(desired).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_that_arrives_through_a_group_is_not_attached_again() {
        let wanted = vec!["arn:aws:iam::aws:policy/A".to_string(), "arn:aws:iam::aws:policy/B".to_string()];
        let mut obs = ObservedUser::default();
        obs.via_groups.insert("arn:aws:iam::aws:policy/A".into(), "ops".into());
        let plan = diff("alice", &wanted, &obs);
        assert_eq!(plan.changes.len(), 1);
        assert!(
            matches!(&plan.changes[0].change, crate::resources::Change::UserPolicies(Change::AttachUserPolicy { policy_arn, .. }) if policy_arn.ends_with("/B"))
        );
        assert!(!plan.changes[0].needs_consent);
        assert_eq!(plan.notes, vec!["arn:aws:iam::aws:policy/A comes through group ops"]);
    }
}
