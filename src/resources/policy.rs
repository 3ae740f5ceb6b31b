//! A customer-managed policy: ensures it exists and that its default version has the stack's document.
//! A changed document becomes a new default version; when IAM's five versions are used up, the oldest
//! non-default version is deleted first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::access::{Permission, Scope};
use super::kind::{each, DestroyCtx, ResourceKind};
use super::plan::{not_ours, DestroyResource, Key, Kind, ResourcePlan};
use super::tags;
use super::vocab::{owner_tag, Ownership};
use super::write::{conflict, plain, Call, Ctx, Outcome, Write};
use crate::aws::{errors, Clients};
use crate::document;
use crate::error::{Error, Result};
use crate::stack::{Desired, DesiredPolicy};

/// One write call to a customer-managed policy.
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "call", rename_all = "PascalCase")]
pub(crate) enum Change {
    CreatePolicy {
        name: String,
        path: String,
        description: String,
        document: Value,
        /// The stack's tags (with the record of their keys), sent beside the ownership tag.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        tags: BTreeMap<String, String>,
        /// The ARN the policy will have (the stack's, [`DesiredPolicy::arn`]); not part of the call.
        #[serde(skip)]
        arn: String,
    },
    TagPolicy {
        policy_arn: String,
        tags: BTreeMap<String, String>,
    },
    UntagPolicy {
        policy_arn: String,
        keys: Vec<String>,
    },
    #[cfg_attr(test, schemars(extend("x-made-by" = "both")))]
    DeletePolicyVersion {
        policy_arn: String,
        version_id: String,
    },
    CreatePolicyVersion {
        policy_arn: String,
        document: Value,
    },
    // Removals, made only by `destroy`.
    #[cfg_attr(test, schemars(extend("x-made-by" = "destroy")))]
    /// Detaching the policy from a group: only to delete the policy (wfboot attaches none to groups).
    DetachGroupPolicy {
        group: String,
        policy_arn: String,
    },
    #[cfg_attr(test, schemars(extend("x-made-by" = "destroy")))]
    DeletePolicy {
        policy_arn: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreatePolicy { path, tags: t, .. } if !t.is_empty() => {
                write!(f, "create policy (path {path}) with the stack's document, tags {}", tags::shown(t))
            }
            Change::CreatePolicy { path, .. } => write!(f, "create policy (path {path}) with the stack's document"),
            Change::TagPolicy { tags: t, .. } if t.len() == 1 && t.contains_key(tags::KEYS_TAG) => {
                write!(f, "tag: the record of wfboot's tag keys ({})", tags::KEYS_TAG)
            }
            Change::TagPolicy { tags: t, .. } => write!(f, "tag {}", tags::shown(t)),
            Change::UntagPolicy { keys, .. } => {
                write!(f, "untag {} (set by wfboot, no longer in the stack)", keys.join(", "))
            }
            Change::DeletePolicyVersion { version_id, .. } => write!(f, "delete non-default version {version_id}"),
            Change::CreatePolicyVersion { .. } => write!(f, "set the stack's document as the new default version"),
            Change::DetachGroupPolicy { group, policy_arn } => write!(f, "detach {policy_arn} from group {group}"),
            Change::DeletePolicy { .. } => write!(f, "delete the policy"),
        }
    }
}

impl Write for Change {
    fn operation(&self) -> &'static str {
        match self {
            Change::CreatePolicy { .. } => "CreatePolicy",
            Change::DeletePolicyVersion { .. } => "DeletePolicyVersion",
            Change::CreatePolicyVersion { .. } => "CreatePolicyVersion",
            Change::TagPolicy { .. } => "TagPolicy",
            Change::UntagPolicy { .. } => "UntagPolicy",
            Change::DetachGroupPolicy { .. } => "DetachGroupPolicy",
            Change::DeletePolicy { .. } => "DeletePolicy",
        }
    }

    fn needs(&self) -> Vec<Key> {
        match self {
            Change::CreatePolicyVersion { policy_arn, .. } => vec![Key::PolicyVersionFreed(policy_arn.clone())],
            // A policy goes once it is attached to nothing and has no other version.
            Change::DeletePolicy { policy_arn } => vec![Key::PolicyReleased(policy_arn.clone())],
            _ => Vec::new(),
        }
    }

    fn provides(&self) -> Vec<Key> {
        match self {
            Change::CreatePolicy { arn, .. } => vec![Key::PolicyExists(arn.clone())],
            Change::DeletePolicyVersion { policy_arn, .. } => {
                vec![Key::PolicyVersionFreed(policy_arn.clone()), Key::PolicyReleased(policy_arn.clone())]
            }
            Change::DetachGroupPolicy { policy_arn, .. } => vec![Key::PolicyReleased(policy_arn.clone())],
            _ => Vec::new(),
        }
    }

    fn permissions(&self, scope: &Scope<'_>) -> Vec<Permission> {
        match self {
            Change::CreatePolicy { name, path, tags: t, .. } => vec![
                scope.tagged(Permission::new("iam:CreatePolicy", scope.arn("policy", path, name)), t),
                scope.tagged(Permission::new("iam:TagPolicy", scope.arn("policy", path, name)), t),
            ],
            Change::TagPolicy { policy_arn, tags: t } => {
                vec![tags::requesting(Permission::new("iam:TagPolicy", policy_arn), t)]
            }
            Change::UntagPolicy { policy_arn, keys } => {
                vec![tags::removing(Permission::new("iam:UntagPolicy", policy_arn), keys)]
            }
            Change::DeletePolicyVersion { policy_arn, .. } => {
                vec![Permission::new("iam:DeletePolicyVersion", policy_arn)]
            }
            Change::CreatePolicyVersion { policy_arn, .. } => {
                vec![Permission::new("iam:CreatePolicyVersion", policy_arn)]
            }
            Change::DetachGroupPolicy { group, policy_arn } => {
                vec![scope
                    .on_policy(Permission::new("iam:DetachGroupPolicy", scope.arn("group", "/", group)), policy_arn)]
            }
            Change::DeletePolicy { policy_arn } => vec![Permission::new("iam:DeletePolicy", policy_arn)],
        }
    }

    fn same_write(&self, other: &Change) -> bool {
        self == other
    }

    async fn execute(&self, ctx: &mut Ctx<'_>, after_dependency: bool) -> Result<(Outcome, bool)> {
        let iam = &ctx.clients.iam_writes;
        match self {
            Change::CreatePolicy { name, path, description, document, tags: t, arn } => {
                let mut req = iam
                    .create_policy()
                    .policy_name(name)
                    .path(path)
                    .policy_document(document.to_string())
                    .tags(owner_tag(&ctx.opts.stack));
                for tag in tags::sdk(t) {
                    req = req.tags(tag);
                }
                if !description.is_empty() {
                    req = req.description(description);
                }
                let about = format!("policy `{name}`");
                let outcome = ctx
                    .send(&Call::new(format!("create policy `{name}`"), &about).tagged_create(), || req.clone().send())
                    .await?;
                let clients = ctx.clients;
                ctx.created_or_found(outcome, &about, || tags(clients, arn)).await
            }
            Change::DeletePolicyVersion { policy_arn, version_id } => {
                let req = iam.delete_policy_version().policy_arn(policy_arn).version_id(version_id);
                let call = Call::new(
                    format!("delete version {version_id} of policy `{policy_arn}`"),
                    format!("policy `{policy_arn}`"),
                )
                .removal();
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::CreatePolicyVersion { policy_arn, document } => {
                let req = iam
                    .create_policy_version()
                    .policy_arn(policy_arn)
                    .policy_document(document.to_string())
                    .set_as_default(true);
                let call = Call::new(
                    format!("create a new version of policy `{policy_arn}`"),
                    format!("policy `{policy_arn}`"),
                );
                // Sent twice it would make two versions: after a lost answer, the default version is read first.
                let clients = ctx.clients;
                let landed = || async move {
                    Ok(default_document(clients, policy_arn)
                        .await?
                        .is_some_and(|d| document::same_meaning(&d, document)))
                };
                plain(ctx.send_checked(&call, || req.clone().send(), Some(landed)).await)
            }
            Change::TagPolicy { policy_arn, tags: t } => {
                let req = iam.tag_policy().policy_arn(policy_arn).set_tags(Some(tags::sdk(t)));
                let call = Call::new(format!("tag policy `{policy_arn}`"), format!("policy `{policy_arn}`"));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::UntagPolicy { policy_arn, keys } => {
                let req = iam.untag_policy().policy_arn(policy_arn).set_tag_keys(Some(keys.clone()));
                let call = Call::new(format!("untag policy `{policy_arn}`"), format!("policy `{policy_arn}`"));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::DetachGroupPolicy { group, policy_arn } => {
                let req = iam.detach_group_policy().group_name(group).policy_arn(policy_arn);
                let call = Call::new(format!("detach `{policy_arn}` from group `{group}`"), format!("group `{group}`"))
                    .removal();
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::DeletePolicy { policy_arn } => {
                let req = iam.delete_policy().policy_arn(policy_arn);
                let call = Call::new(format!("delete policy `{policy_arn}`"), format!("policy `{policy_arn}`"))
                    .removal()
                    .retrying(conflict(after_dependency));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
        }
    }
}

const MAX_VERSIONS: usize = 5;

#[derive(Debug, Clone)]
pub(crate) struct ObservedPolicy {
    pub(crate) path: String,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) document: Value,
    /// Non-default version ids, oldest first; read only when the document differs.
    pub(crate) other_versions: Vec<String>,
    pub(crate) version_count: usize,
}

/// The version a policy wfboot has just created has: read alongside the policy when verifying.
const FIRST_VERSION: &str = "v1";

/// GetPolicy, then GetPolicyVersion of its default version. `verifying` (reading back after apply): the first
/// version is read in the same round trip as the policy, and the default version only if it is another one.
pub(crate) async fn observe(
    clients: &Clients,
    desired: &DesiredPolicy,
    verifying: bool,
) -> Result<Option<ObservedPolicy>> {
    let arn = &desired.arn;
    let get_version = |id: String| async move {
        clients
            .limit(clients.iam.get_policy_version().policy_arn(arn).version_id(id).send())
            .await
            .map_err(|e| errors::describe(&format!("read the default version of policy `{}`", desired.name), &e))
    };
    let get_policy = async {
        match clients.limit(clients.iam.get_policy().policy_arn(arn).send()).await {
            Ok(out) => Ok(Some(out.policy)),
            Err(e) if errors::is_no_such_entity(&e) => Ok(None),
            Err(e) => Err(errors::describe(&format!("read policy `{}`", desired.name), &e)),
        }
    };
    let (policy, guessed) = if verifying {
        let (policy, guessed) = tokio::join!(get_policy, get_version(FIRST_VERSION.to_string()));
        (policy?, guessed.ok())
    } else {
        (get_policy.await?, None)
    };
    let Some(policy) = policy else { return Ok(None) };
    let Some(policy) = policy else { return Err(Error::aws(format!("iam:GetPolicy answered without policy `{arn}`"))) };
    let Some(default_version) = policy.default_version_id.clone() else {
        return Err(Error::aws(format!("policy `{arn}` has no default version")));
    };
    let version = match guessed {
        Some(v) if default_version == FIRST_VERSION => v,
        _ => get_version(default_version).await?,
    };
    let text = version.policy_version.and_then(|v| v.document).unwrap_or_default();
    let doc = document::parse_returned(&text)
        .map_err(|e| Error::aws(format!("policy `{}`: cannot read its document: {e}", desired.name)))?;
    let mut observed = ObservedPolicy {
        path: policy.path.unwrap_or_else(|| "/".into()),
        tags: policy.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect(),
        document: doc,
        other_versions: Vec::new(),
        version_count: 1,
    };
    if !document::same_meaning(&observed.document, &desired.document) {
        let versions = clients
            .list(
                format!("the versions of policy `{}`", desired.name),
                clients.iam.list_policy_versions().policy_arn(arn).into_paginator().items().send(),
            )
            .await?;
        observed.version_count = versions.len();
        let mut others: Vec<_> = versions.into_iter().filter(|v| !v.is_default_version).collect();
        others.sort_by_key(|v| v.create_date.map(|d| (d.secs(), d.subsec_nanos())));
        observed.other_versions = others.into_iter().filter_map(|v| v.version_id).collect();
    }
    Ok(Some(observed))
}

/// The document of the policy's default version (GetPolicy, GetPolicyVersion), or `None` when the policy does not
/// exist.
async fn default_document(clients: &Clients, arn: &str) -> Result<Option<Value>> {
    let policy = match clients.limit(clients.iam.get_policy().policy_arn(arn).send()).await {
        Ok(out) => out.policy,
        Err(e) if errors::is_no_such_entity(&e) => return Ok(None),
        Err(e) => return Err(errors::describe(&format!("read policy `{arn}`"), &e)),
    };
    let Some(version) = policy.and_then(|p| p.default_version_id) else { return Ok(None) };
    let out = clients
        .limit(clients.iam.get_policy_version().policy_arn(arn).version_id(version).send())
        .await
        .map_err(|e| errors::describe(&format!("read the default version of policy `{arn}`"), &e))?;
    let text = out.policy_version.and_then(|v| v.document).unwrap_or_default();
    document::parse_returned(&text)
        .map(Some)
        .map_err(|e| Error::aws(format!("policy `{arn}`: cannot read its document: {e}")))
}

/// The policy's tags (GetPolicy), or `None` when it does not exist: whose it is, after a create found it there.
pub(crate) async fn tags(clients: &Clients, arn: &str) -> Result<Option<Vec<(String, String)>>> {
    match clients.limit(clients.iam.get_policy().policy_arn(arn).send()).await {
        Ok(out) => Ok(Some(
            out.policy.and_then(|p| p.tags).unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect(),
        )),
        Err(e) if errors::is_no_such_entity(&e) => Ok(None),
        Err(e) => Err(errors::describe(&format!("read policy `{arn}`"), &e)),
    }
}

/// What IAM requires to be gone before a policy can be deleted, read only before deleting it: its
/// non-default versions and every role, user and group it is attached to.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyLinks {
    pub(crate) other_versions: Vec<String>,
    pub(crate) roles: Vec<String>,
    pub(crate) users: Vec<String>,
    pub(crate) groups: Vec<String>,
}

/// ListPolicyVersions and ListEntitiesForPolicy, at once.
pub(crate) async fn observe_links(clients: &Clients, desired: &DesiredPolicy) -> Result<PolicyLinks> {
    let arn = &desired.arn;
    let versions = clients.list(
        format!("the versions of policy `{}`", desired.name),
        clients.iam.list_policy_versions().policy_arn(arn).into_paginator().items().send(),
    );
    // Every page, not its items: one page carries three lists (roles, users, groups).
    let entities = clients.list(
        format!("what policy `{}` is attached to", desired.name),
        clients.iam.list_entities_for_policy().policy_arn(arn).into_paginator().send(),
    );
    let (versions, entities) = tokio::join!(versions, entities);
    let (versions, pages) = (versions?, entities?);
    let mut links = PolicyLinks {
        other_versions: versions.into_iter().filter(|v| !v.is_default_version).filter_map(|v| v.version_id).collect(),
        ..PolicyLinks::default()
    };
    for page in &pages {
        links.roles.extend(page.policy_roles().iter().filter_map(|r| r.role_name().map(str::to_string)));
        links.users.extend(page.policy_users().iter().filter_map(|u| u.user_name().map(str::to_string)));
        links.groups.extend(page.policy_groups().iter().filter_map(|g| g.group_name().map(str::to_string)));
    }
    Ok(links)
}

pub(crate) fn diff(stack: &str, desired: &DesiredPolicy, observed: Option<&ObservedPolicy>) -> ResourcePlan {
    let Some(obs) = observed else {
        let change = Change::CreatePolicy {
            name: desired.name.clone(),
            path: desired.path.clone(),
            description: desired.description.clone(),
            document: desired.document.clone(),
            tags: tags::managed(&desired.tags),
            arn: desired.arn.clone(),
        };
        return ResourcePlan::new(Kind::Policy, &desired.name, Ownership::Absent, vec![change], vec![]);
    };
    let ownership = Ownership::from_tags(stack, obs.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut changes = Vec::new();
    if !document::same_meaning(&obs.document, &desired.document) {
        if obs.version_count >= MAX_VERSIONS {
            if let Some(oldest) = obs.other_versions.first() {
                changes
                    .push(Change::DeletePolicyVersion { policy_arn: desired.arn.clone(), version_id: oldest.clone() });
            }
        }
        changes
            .push(Change::CreatePolicyVersion { policy_arn: desired.arn.clone(), document: desired.document.clone() });
    }
    let mut left_alone = Vec::new();
    let t = tags::diff(&desired.tags, &obs.tags);
    if ownership == Ownership::Stack {
        if !t.remove.is_empty() {
            changes.push(Change::UntagPolicy { policy_arn: desired.arn.clone(), keys: t.remove });
        }
        if !t.set.is_empty() {
            changes.push(Change::TagPolicy { policy_arn: desired.arn.clone(), tags: t.set });
        }
    } else if !t.set.is_empty() {
        left_alone.push(format!("tags {} are not set (wfboot tags only what it created)", tags::shown(&t.set)));
    }
    if obs.path != desired.path {
        left_alone.push(format!("path is {} but the stack says {} (IAM cannot move a policy)", obs.path, desired.path));
    }
    ResourcePlan::new(Kind::Policy, &desired.name, ownership, changes, left_alone)
}

/// What `destroy` does with the stack's policy: deleted when it is this stack's (`links` read), after its other
/// versions are deleted and it is detached from everything; detachments from the stack's own roles that are
/// deleted too are listed with those roles (`deleted_roles`).
pub(crate) fn destroy_diff(
    stack: &str,
    desired: &DesiredPolicy,
    observed: Option<&ObservedPolicy>,
    links: Option<&PolicyLinks>,
    deleted_roles: &BTreeSet<&str>,
) -> DestroyResource {
    let l = match (observed, links) {
        (None, _) => return DestroyResource::absent(Kind::Policy, &desired.name),
        (Some(p), None) => {
            return DestroyResource::left_alone(
                Kind::Policy,
                &desired.name,
                Ownership::Foreign,
                not_ours(stack, &p.tags),
            )
        }
        (Some(_), Some(l)) => l,
    };
    let arn = &desired.arn;
    let mut changes: Vec<super::plan::Change> = l
        .other_versions
        .iter()
        .map(|v| Change::DeletePolicyVersion { policy_arn: arn.clone(), version_id: v.clone() }.into())
        .collect();
    let mut notes = Vec::new();
    for r in l.roles.iter().filter(|r| !deleted_roles.contains(r.as_str())) {
        changes.push(super::role::Change::DetachRolePolicy { role: r.clone(), policy_arn: arn.clone() }.into());
        notes.push(format!("role {r} is not deleted by this destroy: the policy is detached from it, the role stays"));
    }
    for u in &l.users {
        changes.push(super::user::Change::DetachUserPolicy { user: u.clone(), policy_arn: arn.clone() }.into());
        notes.push(format!("user {u}: the policy is detached from it, the user stays"));
    }
    for g in &l.groups {
        changes.push(Change::DetachGroupPolicy { group: g.clone(), policy_arn: arn.clone() }.into());
        notes.push(format!("group {g}: the policy is detached from it, the group stays"));
    }
    changes.push(Change::DeletePolicy { policy_arn: arn.clone() }.into());
    DestroyResource::delete(Kind::Policy, &desired.name, Ownership::Stack, changes, notes)
}

/// The stack's customer managed policies, read once the account is known (their ARNs hold its id).
pub(crate) struct Policies;

impl ResourceKind for Policies {
    const WORD: &'static str = "policy";
    const BY_NAME: bool = false;
    const READ_ACTIONS: &'static [&'static str] = &["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"];
    type Change = Change;
    type Observation = Vec<Option<ObservedPolicy>>;

    async fn observe_in_account(
        clients: &Clients,
        desired: &Desired,
        _user: Option<&str>,
        verifying: bool,
    ) -> Result<Self::Observation> {
        futures::future::try_join_all(desired.policies.iter().map(|p| observe(clients, p, verifying))).await
    }

    fn absent(desired: &Desired, _user: Option<&str>) -> Self::Observation {
        vec![None; desired.policies.len()]
    }

    fn diff(desired: &Desired, observed: &Self::Observation, _user: Option<&str>) -> Vec<ResourcePlan> {
        each(&desired.policies, observed, |d, o| diff(&desired.stack, d, o))
    }

    fn keep_changed(desired: &mut Desired, changed: &dyn Fn(Option<&str>) -> bool) {
        desired.policies.retain(|p| changed(Some(&p.name)));
    }

    fn destroy_diff(_: &Desired, _: &Self::Observation, ctx: &DestroyCtx<'_>) -> Vec<DestroyResource> {
        ctx.decided(Kind::Policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired() -> DesiredPolicy {
        DesiredPolicy {
            name: "P".into(),
            path: "/".into(),
            arn: "arn:aws:iam::111122223333:policy/P".into(),
            description: String::new(),
            document: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "batch:SubmitJob", "Resource": "*"}]}),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn an_edited_document_becomes_a_new_default_version_after_freeing_a_slot() {
        let obs = ObservedPolicy {
            path: "/".into(),
            tags: vec![],
            document: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
            other_versions: vec!["v1".into(), "v2".into(), "v3".into(), "v4".into()],
            version_count: 5,
        };
        let plan = diff("s", &desired(), Some(&obs));
        let ops: Vec<_> = plan.changes.iter().map(|c| c.change.operation()).collect();
        assert_eq!(ops, ["DeletePolicyVersion", "CreatePolicyVersion"]);
        assert!(
            matches!(&plan.changes[0].change, crate::resources::Change::Policy(Change::DeletePolicyVersion { version_id, .. }) if version_id == "v1")
        );
        let mut obs = obs;
        obs.version_count = 2;
        let ops: Vec<_> = diff("s", &desired(), Some(&obs)).changes.iter().map(|c| c.change.operation()).collect();
        assert_eq!(ops, ["CreatePolicyVersion"]);
    }
}
