//! A service role: ensures the role exists with the stack's trust document and description, and that every
//! policy the stack lists is attached. Policies attached beyond the stack's are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::access::{ContextEntry, Permission, Scope};
use super::consumers::LastUsed;
use super::kind::{each, DestroyCtx, ResourceKind};
use super::plan::{not_ours, DestroyResource, Key, Kind, ResourcePlan};
use super::tags;
use super::vocab::{owner_tag, Ownership};
use super::write::{conflict, not_propagated, plain, Call, Ctx, Outcome, Retry, Write};
use crate::aws::{errors, Clients};
use crate::document;
use crate::error::{Error, Result};
use crate::stack::{Desired, DesiredRole, Stack};

/// One write call to a role.
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "call", rename_all = "PascalCase")]
pub(crate) enum Change {
    CreateRole {
        name: String,
        path: String,
        description: String,
        trust: Value,
        /// Its permissions boundary's policy ARN.
        #[serde(skip_serializing_if = "Option::is_none")]
        permissions_boundary: Option<String>,
        /// The stack's tags (with the record of their keys), sent beside the ownership tag.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        tags: BTreeMap<String, String>,
    },
    UpdateAssumeRolePolicy {
        role: String,
        current: Value,
        desired: Value,
    },
    UpdateRole {
        role: String,
        current_description: String,
        description: String,
    },
    AttachRolePolicy {
        role: String,
        policy_arn: String,
    },
    /// Sets (or replaces) the role's permissions boundary.
    PutRolePermissionsBoundary {
        role: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        current: Option<String>,
        permissions_boundary: String,
    },
    /// The stack no longer gives this (owned) role a boundary.
    DeleteRolePermissionsBoundary {
        role: String,
        current: String,
    },
    TagRole {
        role: String,
        tags: BTreeMap<String, String>,
    },
    UntagRole {
        role: String,
        keys: Vec<String>,
    },
    // Removals, made only by `destroy`.
    #[cfg_attr(test, schemars(extend("x-made-by" = "destroy")))]
    DetachRolePolicy {
        role: String,
        policy_arn: String,
    },
    #[cfg_attr(test, schemars(extend("x-made-by" = "destroy")))]
    DeleteRolePolicy {
        role: String,
        policy_name: String,
    },
    #[cfg_attr(test, schemars(extend("x-made-by" = "destroy")))]
    DeleteRole {
        name: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateRole { path, trust, permissions_boundary, tags, .. } => {
                write!(f, "create role (path {path}) trusting {}", document::principals(trust).join(", "))?;
                if let Some(b) = permissions_boundary {
                    write!(f, ", permissions boundary {b}")?;
                }
                if !tags.is_empty() {
                    write!(f, ", tags {}", tags::shown(tags))?;
                }
                Ok(())
            }
            Change::PutRolePermissionsBoundary { current, permissions_boundary, .. } => match current {
                Some(c) => write!(f, "replace permissions boundary {c} -> {permissions_boundary}"),
                None => write!(f, "set permissions boundary {permissions_boundary}"),
            },
            Change::DeleteRolePermissionsBoundary { current, .. } => {
                write!(f, "remove permissions boundary {current} (the stack has none for it)")
            }
            Change::TagRole { tags: t, .. } => write!(f, "tag {}", tags::shown(t)).and_then(|_| record_note(f, t)),
            Change::UntagRole { keys, .. } => {
                write!(f, "untag {} (set by wfboot, no longer in the stack)", keys.join(", "))
            }
            Change::UpdateAssumeRolePolicy { current, desired, .. } => {
                let (from, to) = (document::principals(current), document::principals(desired));
                if from == to {
                    // Same principals: the conditions differ (e.g. `--harden`).
                    let keys = |doc| match document::condition_keys(doc) {
                        keys if keys.is_empty() => "none".to_string(),
                        keys => keys.join(", "),
                    };
                    write!(
                        f,
                        "update trust document ({}): conditions {} -> {}",
                        or_none(from),
                        keys(current),
                        keys(desired)
                    )
                } else {
                    write!(f, "update trust document: {} -> {}", or_none(from), or_none(to))
                }
            }
            Change::UpdateRole { current_description, description, .. } => {
                write!(f, "update description: {current_description:?} -> {description:?}")
            }
            Change::AttachRolePolicy { policy_arn, .. } => write!(f, "attach {policy_arn}"),
            Change::DetachRolePolicy { role, policy_arn } => write!(f, "detach {policy_arn} from role {role}"),
            Change::DeleteRolePolicy { policy_name, .. } => write!(f, "delete inline policy {policy_name}"),
            Change::DeleteRole { .. } => write!(f, "delete the role"),
        }
    }
}

/// A tag write that only updates the record of the keys says so.
fn record_note(f: &mut fmt::Formatter<'_>, t: &BTreeMap<String, String>) -> fmt::Result {
    if t.len() == 1 && t.contains_key(tags::KEYS_TAG) {
        write!(f, "the record of wfboot's tag keys ({})", tags::KEYS_TAG)
    } else {
        Ok(())
    }
}

fn or_none(list: Vec<String>) -> String {
    if list.is_empty() {
        "(no principal)".into()
    } else {
        list.join(", ")
    }
}

impl Write for Change {
    fn operation(&self) -> &'static str {
        match self {
            Change::CreateRole { .. } => "CreateRole",
            Change::UpdateAssumeRolePolicy { .. } => "UpdateAssumeRolePolicy",
            Change::UpdateRole { .. } => "UpdateRole",
            Change::AttachRolePolicy { .. } => "AttachRolePolicy",
            Change::PutRolePermissionsBoundary { .. } => "PutRolePermissionsBoundary",
            Change::DeleteRolePermissionsBoundary { .. } => "DeleteRolePermissionsBoundary",
            Change::TagRole { .. } => "TagRole",
            Change::UntagRole { .. } => "UntagRole",
            Change::DetachRolePolicy { .. } => "DetachRolePolicy",
            Change::DeleteRolePolicy { .. } => "DeleteRolePolicy",
            Change::DeleteRole { .. } => "DeleteRole",
        }
    }

    fn needs(&self) -> Vec<Key> {
        match self {
            Change::AttachRolePolicy { role, policy_arn } => {
                vec![Key::RoleExists(role.clone()), Key::PolicyExists(policy_arn.clone())]
            }
            // A boundary that is one of the stack's own policies is created first.
            Change::CreateRole { permissions_boundary: Some(arn), .. } => vec![Key::PolicyExists(arn.clone())],
            Change::PutRolePermissionsBoundary { role, permissions_boundary, .. } => {
                vec![Key::RoleExists(role.clone()), Key::PolicyExists(permissions_boundary.clone())]
            }
            // A role goes once nothing holds it and nothing is attached to it.
            Change::DeleteRole { name } => vec![Key::RoleReleased(name.clone())],
            _ => Vec::new(),
        }
    }

    fn provides(&self) -> Vec<Key> {
        match self {
            Change::CreateRole { name, .. } => vec![Key::RoleExists(name.clone())],
            Change::DetachRolePolicy { role, policy_arn } => {
                vec![Key::RoleReleased(role.clone()), Key::PolicyReleased(policy_arn.clone())]
            }
            Change::DeleteRolePolicy { role, .. } => vec![Key::RoleReleased(role.clone())],
            _ => Vec::new(),
        }
    }

    fn permissions(&self, scope: &Scope<'_>) -> Vec<Permission> {
        match self {
            // CreateRole's condition keys: iam:PermissionsBoundary, aws:RequestTag/KEY, aws:TagKeys; a create
            // with tags needs iam:TagRole too
            // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html,
            // https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags_roles.html).
            Change::CreateRole { name, path, permissions_boundary, tags, .. } => {
                let mut create = scope.tagged(Permission::new("iam:CreateRole", scope.arn("role", path, name)), tags);
                if let Some(b) = permissions_boundary {
                    create = create.with(ContextEntry::one("iam:PermissionsBoundary", b.clone()));
                }
                vec![create, scope.tagged(Permission::new("iam:TagRole", scope.arn("role", path, name)), tags)]
            }
            Change::PutRolePermissionsBoundary { role, permissions_boundary, .. } => {
                vec![Permission::new("iam:PutRolePermissionsBoundary", scope.role_arn(role))
                    .with(ContextEntry::one("iam:PermissionsBoundary", permissions_boundary.clone()))]
            }
            Change::DeleteRolePermissionsBoundary { role, .. } => {
                vec![Permission::new("iam:DeleteRolePermissionsBoundary", scope.role_arn(role))]
            }
            Change::TagRole { role, tags: t } => {
                vec![tags::requesting(Permission::new("iam:TagRole", scope.role_arn(role)), t)]
            }
            Change::UntagRole { role, keys } => {
                vec![tags::removing(Permission::new("iam:UntagRole", scope.role_arn(role)), keys)]
            }
            Change::UpdateAssumeRolePolicy { role, .. } => {
                vec![Permission::new("iam:UpdateAssumeRolePolicy", scope.role_arn(role))]
            }
            Change::UpdateRole { role, .. } => vec![Permission::new("iam:UpdateRole", scope.role_arn(role))],
            Change::AttachRolePolicy { role, policy_arn } => {
                vec![scope.on_policy(Permission::new("iam:AttachRolePolicy", scope.role_arn(role)), policy_arn)]
            }
            Change::DetachRolePolicy { role, policy_arn } => {
                vec![scope.on_policy(Permission::new("iam:DetachRolePolicy", scope.role_arn(role)), policy_arn)]
            }
            Change::DeleteRolePolicy { role, .. } => {
                vec![Permission::new("iam:DeleteRolePolicy", scope.role_arn(role))]
            }
            Change::DeleteRole { name } => vec![Permission::new("iam:DeleteRole", scope.role_arn(name))],
        }
    }

    /// An update of a trust document or a description is compared by what it sets, not by what it replaces
    /// (which a read made before or after it may see differently).
    fn same_write(&self, other: &Change) -> bool {
        match (self, other) {
            (
                Change::UpdateAssumeRolePolicy { role: a, desired: x, .. },
                Change::UpdateAssumeRolePolicy { role: b, desired: y, .. },
            ) => a == b && x == y,
            (
                Change::UpdateRole { role: a, description: x, .. },
                Change::UpdateRole { role: b, description: y, .. },
            ) => a == b && x == y,
            (
                Change::PutRolePermissionsBoundary { role: a, permissions_boundary: x, .. },
                Change::PutRolePermissionsBoundary { role: b, permissions_boundary: y, .. },
            ) => a == b && x == y,
            (
                Change::DeleteRolePermissionsBoundary { role: a, .. },
                Change::DeleteRolePermissionsBoundary { role: b, .. },
            ) => a == b,
            _ => self == other,
        }
    }

    async fn execute(&self, ctx: &mut Ctx<'_>, after_dependency: bool) -> Result<(Outcome, bool)> {
        let iam = &ctx.clients.iam_writes;
        match self {
            Change::CreateRole { name, path, description, trust, permissions_boundary, tags: t } => {
                let mut req = iam
                    .create_role()
                    .role_name(name)
                    .path(path)
                    .assume_role_policy_document(trust.to_string())
                    .tags(owner_tag(&ctx.opts.stack))
                    .set_permissions_boundary(permissions_boundary.clone());
                for tag in tags::sdk(t) {
                    req = req.tags(tag);
                }
                if !description.is_empty() {
                    req = req.description(description);
                }
                let about = format!("role `{name}`");
                let mut call = Call::new(format!("create role `{name}`"), &about).tagged_create();
                // A trust document naming another principal of this account can fail until that principal
                // propagates.
                if trust.to_string().contains("\"AWS\"") {
                    call =
                        call.retrying(&[Retry::InvalidPrincipal]).propagating("the principals in its trust document");
                }
                let outcome = ctx.send(&call, || req.clone().send()).await?;
                let clients = ctx.clients;
                ctx.created_or_found(outcome, &about, || tags(clients, name)).await
            }
            Change::UpdateAssumeRolePolicy { role, desired, .. } => {
                let req = iam.update_assume_role_policy().role_name(role).policy_document(desired.to_string());
                let call = Call::new(format!("update the trust document of role `{role}`"), format!("role `{role}`"));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::UpdateRole { role, description, .. } => {
                let req = iam.update_role().role_name(role).description(description);
                let call = Call::new(format!("update the description of role `{role}`"), format!("role `{role}`"));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::AttachRolePolicy { role, policy_arn } => {
                let req = iam.attach_role_policy().role_name(role).policy_arn(policy_arn);
                let call = Call::new(format!("attach `{policy_arn}` to role `{role}`"), format!("role `{role}`"))
                    .propagating(format!("role `{role}` and policy `{policy_arn}`"))
                    .retrying(not_propagated(after_dependency));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::PutRolePermissionsBoundary { role, permissions_boundary, .. } => {
                let req =
                    iam.put_role_permissions_boundary().role_name(role).permissions_boundary(permissions_boundary);
                let call = Call::new(
                    format!("set the permissions boundary of role `{role}` to `{permissions_boundary}`"),
                    format!("role `{role}`"),
                );
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::DeleteRolePermissionsBoundary { role, .. } => {
                let req = iam.delete_role_permissions_boundary().role_name(role);
                let call =
                    Call::new(format!("remove the permissions boundary of role `{role}`"), format!("role `{role}`"));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::TagRole { role, tags: t } => {
                let req = iam.tag_role().role_name(role).set_tags(Some(tags::sdk(t)));
                let call = Call::new(format!("tag role `{role}`"), format!("role `{role}`"));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::UntagRole { role, keys } => {
                let req = iam.untag_role().role_name(role).set_tag_keys(Some(keys.clone()));
                let call = Call::new(format!("untag role `{role}`"), format!("role `{role}`"));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::DetachRolePolicy { role, policy_arn } => {
                let req = iam.detach_role_policy().role_name(role).policy_arn(policy_arn);
                let call =
                    Call::new(format!("detach `{policy_arn}` from role `{role}`"), format!("role `{role}`")).removal();
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::DeleteRolePolicy { role, policy_name } => {
                let req = iam.delete_role_policy().role_name(role).policy_name(policy_name);
                let call = Call::new(
                    format!("delete inline policy `{policy_name}` of role `{role}`"),
                    format!("role `{role}`"),
                )
                .removal();
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::DeleteRole { name } => {
                let req = iam.delete_role().role_name(name);
                let call = Call::new(format!("delete role `{name}`"), format!("role `{name}`"))
                    .removal()
                    .retrying(conflict(after_dependency));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ObservedRole {
    pub(crate) path: String,
    pub(crate) description: String,
    pub(crate) trust: Value,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) attached: BTreeSet<String>,
    /// The boundary's policy ARN.
    pub(crate) permissions_boundary: Option<String>,
    /// When and where IAM last saw the role used, if it reports it.
    pub(crate) last_used: Option<LastUsed>,
}

/// GetRole, then ListAttachedRolePolicies when the role exists. `None` when it does not.
///
/// One round trip more for an existing role than asking both at once, but no wasted call for a missing one;
/// the second round trip overlaps the policies' GetPolicyVersion, so a no-op plan still takes three. When
/// the role is `known_to_exist` (read back after apply), both are asked at once.
pub(crate) async fn observe(clients: &Clients, name: &str, known_to_exist: bool) -> Result<Option<ObservedRole>> {
    let get = async {
        match clients.limit(clients.iam.get_role().role_name(name).send()).await {
            Ok(out) => Ok(Some(out.role)),
            Err(e) if errors::is_no_such_entity(&e) => Ok(None),
            Err(e) => Err(errors::describe(&format!("read role `{name}`"), &e)),
        }
    };
    let list = || {
        let pages = clients.iam.list_attached_role_policies().role_name(name).into_paginator().items().send();
        clients.list(format!("the policies of role `{name}`"), pages)
    };
    let (role, attached) = if known_to_exist {
        let (role, attached) = tokio::join!(get, list());
        let Some(role) = role? else { return Ok(None) };
        (role, attached?)
    } else {
        let Some(role) = get.await? else { return Ok(None) };
        (role, list().await?)
    };
    let Some(role) = role else { return Err(Error::aws(format!("iam:GetRole answered without the role `{name}`"))) };
    let trust_text = role.assume_role_policy_document.as_deref().unwrap_or("{}");
    let trust = document::parse_returned(trust_text)
        .map_err(|e| Error::aws(format!("role `{name}`: cannot read its trust document: {e}")))?;
    Ok(Some(ObservedRole {
        path: role.path,
        description: role.description.unwrap_or_default(),
        trust,
        tags: role.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect(),
        attached: attached.into_iter().filter_map(|p| p.policy_arn).collect(),
        permissions_boundary: role.permissions_boundary.and_then(|b| b.permissions_boundary_arn),
        last_used: LastUsed::of(role.role_last_used),
    }))
}

/// The role's tags (GetRole), or `None` when it does not exist: whose it is, after a create found it there.
pub(crate) async fn tags(clients: &Clients, name: &str) -> Result<Option<Vec<(String, String)>>> {
    match clients.limit(clients.iam.get_role().role_name(name).send()).await {
        Ok(out) => {
            Ok(Some(out.role.and_then(|r| r.tags).unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect()))
        }
        Err(e) if errors::is_no_such_entity(&e) => Ok(None),
        Err(e) => Err(errors::describe(&format!("read role `{name}`"), &e)),
    }
}

/// What else holds or belongs to a role, read only before deleting it: the instance profiles it is in and
/// its inline policies (wfboot puts none, but IAM refuses to delete a role that has any).
#[derive(Debug, Clone, Default)]
pub(crate) struct RoleLinks {
    pub(crate) instance_profiles: Vec<String>,
    pub(crate) inline_policies: Vec<String>,
}

/// ListInstanceProfilesForRole and ListRolePolicies, at once.
pub(crate) async fn observe_links(clients: &Clients, name: &str) -> Result<RoleLinks> {
    let profiles = clients.list(
        format!("the instance profiles of role `{name}`"),
        clients.iam.list_instance_profiles_for_role().role_name(name).into_paginator().items().send(),
    );
    let inline = clients.list(
        format!("the inline policies of role `{name}`"),
        clients.iam.list_role_policies().role_name(name).into_paginator().items().send(),
    );
    let (profiles, inline) = tokio::join!(profiles, inline);
    let (profiles, inline) = (profiles?, inline?);
    Ok(RoleLinks {
        instance_profiles: profiles.into_iter().map(|p| p.instance_profile_name).collect(),
        inline_policies: inline,
    })
}

pub(crate) fn diff(stack: &str, desired: &DesiredRole, observed: Option<&ObservedRole>) -> ResourcePlan {
    let attach = |arns: &mut dyn Iterator<Item = &String>| -> Vec<Change> {
        arns.map(|arn| Change::AttachRolePolicy { role: desired.name.clone(), policy_arn: arn.clone() }).collect()
    };
    let Some(obs) = observed else {
        let mut changes = vec![Change::CreateRole {
            name: desired.name.clone(),
            path: desired.path.clone(),
            description: desired.description.clone(),
            trust: desired.trust.clone(),
            permissions_boundary: desired.permissions_boundary.clone(),
            tags: tags::managed(&desired.tags),
        }];
        changes.extend(attach(&mut desired.policy_arns.iter()));
        return ResourcePlan::new(Kind::Role, &desired.name, Ownership::Absent, changes, vec![])
            .with_note(&desired.note);
    };
    let ownership = Ownership::from_tags(stack, obs.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut changes = Vec::new();
    let mut left_alone = Vec::new();
    if !document::same_meaning(&obs.trust, &desired.trust) {
        changes.push(Change::UpdateAssumeRolePolicy {
            role: desired.name.clone(),
            current: obs.trust.clone(),
            desired: desired.trust.clone(),
        });
    }
    if !desired.description.is_empty() && obs.description != desired.description {
        changes.push(Change::UpdateRole {
            role: desired.name.clone(),
            current_description: obs.description.clone(),
            description: desired.description.clone(),
        });
    }
    changes.extend(attach(&mut desired.policy_arns.iter().filter(|arn| !obs.attached.contains(*arn))));
    match (&desired.permissions_boundary, &obs.permissions_boundary) {
        (Some(want), have) if have.as_ref() != Some(want) => changes.push(Change::PutRolePermissionsBoundary {
            role: desired.name.clone(),
            current: have.clone(),
            permissions_boundary: want.clone(),
        }),
        // Removed from the stack: taken off a role of this stack's; someone else's keeps it.
        (None, Some(have)) if ownership == Ownership::Stack => {
            changes.push(Change::DeleteRolePermissionsBoundary { role: desired.name.clone(), current: have.clone() })
        }
        (None, Some(have)) => left_alone.push(format!("permissions boundary {have} is not in the stack")),
        _ => {}
    }
    let t = tags::diff(&desired.tags, &obs.tags);
    if ownership == Ownership::Stack {
        if !t.remove.is_empty() {
            changes.push(Change::UntagRole { role: desired.name.clone(), keys: t.remove });
        }
        if !t.set.is_empty() {
            changes.push(Change::TagRole { role: desired.name.clone(), tags: t.set });
        }
    } else if !t.set.is_empty() {
        left_alone.push(format!("tags {} are not set (wfboot tags only what it created)", tags::shown(&t.set)));
    }
    if obs.path != desired.path {
        left_alone.push(format!(
            "path is {} but the stack says {} (IAM cannot move a role; delete it to have it recreated)",
            obs.path, desired.path
        ));
    }
    for extra in obs.attached.iter().filter(|arn| !desired.policy_arns.contains(arn)) {
        left_alone.push(format!("{extra} is attached but not in the stack"));
    }
    ResourcePlan::new(Kind::Role, &desired.name, ownership, changes, left_alone).with_note(&desired.note)
}

/// What `destroy` does with the stack's role: deleted when it is this stack's (`links` read), after it is taken
/// out of its instance profiles (noted when the profile stays: not in `deleted_profiles`), its managed policies
/// are detached and its inline policies deleted.
pub(crate) fn destroy_diff(
    stack: &str,
    desired: &DesiredRole,
    observed: Option<&ObservedRole>,
    links: Option<&RoleLinks>,
    deleted_profiles: &BTreeSet<&str>,
) -> DestroyResource {
    let (r, l) = match (observed, links) {
        (None, _) => return DestroyResource::absent(Kind::Role, &desired.name),
        (Some(r), None) => {
            return DestroyResource::left_alone(Kind::Role, &desired.name, Ownership::Foreign, not_ours(stack, &r.tags))
        }
        (Some(r), Some(l)) => (r, l),
    };
    let name = &desired.name;
    let mut changes: Vec<super::plan::Change> = Vec::new();
    let mut notes = Vec::new();
    for p in &l.instance_profiles {
        changes.push(
            super::instance_profile::Change::RemoveRoleFromInstanceProfile { profile: p.clone(), role: name.clone() }
                .into(),
        );
        if !deleted_profiles.contains(p.as_str()) {
            notes.push(format!(
                "instance profile {p} is not deleted by this destroy: the role is taken out of it, the profile stays"
            ));
        }
    }
    for arn in &r.attached {
        changes.push(Change::DetachRolePolicy { role: name.clone(), policy_arn: arn.clone() }.into());
        if !desired.policy_arns.contains(arn) {
            notes.push(format!("{arn} is not in the stack (attached by someone else): detached, the policy stays"));
        }
    }
    for policy_name in &l.inline_policies {
        changes.push(Change::DeleteRolePolicy { role: name.clone(), policy_name: policy_name.clone() }.into());
        notes.push(format!("inline policy {policy_name} was not put there by wfboot: it is deleted with the role"));
    }
    changes.push(Change::DeleteRole { name: name.clone() }.into());
    DestroyResource::delete(Kind::Role, name, Ownership::Stack, changes, notes)
}

/// The stack's roles, read by name.
pub(crate) struct Roles;

impl ResourceKind for Roles {
    const WORD: &'static str = "role";
    const BY_NAME: bool = true;
    const READ_ACTIONS: &'static [&'static str] = &["iam:GetRole", "iam:ListAttachedRolePolicies"];
    type Change = Change;
    type Observation = Vec<Option<ObservedRole>>;

    fn names_in_stack(stack: &Stack) -> Vec<String> {
        stack.roles.iter().map(|r| r.name.clone()).collect()
    }

    fn names(desired: &Desired) -> Vec<String> {
        desired.roles.iter().map(|r| r.name.clone()).collect()
    }

    async fn observe_named(clients: &Clients, names: &[String], verifying: bool) -> Result<Self::Observation> {
        futures::future::try_join_all(names.iter().map(|r| observe(clients, r, verifying))).await
    }

    fn absent(desired: &Desired, _user: Option<&str>) -> Self::Observation {
        vec![None; desired.roles.len()]
    }

    fn diff(desired: &Desired, observed: &Self::Observation, _user: Option<&str>) -> Vec<ResourcePlan> {
        each(&desired.roles, observed, |d, o| diff(&desired.stack, d, o))
    }

    fn keep_changed(desired: &mut Desired, changed: &dyn Fn(Option<&str>) -> bool) {
        desired.roles.retain(|r| changed(Some(&r.name)));
    }

    fn destroy_diff(_: &Desired, _: &Self::Observation, ctx: &DestroyCtx<'_>) -> Vec<DestroyResource> {
        ctx.decided(Kind::Role)
    }
}

/// The AWS-managed policies attached to the observed roles (known to exist).
pub(crate) fn attached(observed: &[Option<ObservedRole>]) -> BTreeSet<String> {
    observed.iter().flatten().flat_map(|r| r.attached.iter().cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired() -> DesiredRole {
        DesiredRole {
            name: "R".into(),
            path: "/".into(),
            description: "d".into(),
            trust: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            policy_arns: vec!["arn:aws:iam::aws:policy/A".into(), "arn:aws:iam::aws:policy/B".into()],
            permissions_boundary: None,
            tags: BTreeMap::new(),
            note: String::new(),
        }
    }

    fn observed(stack_tag: Option<&str>) -> ObservedRole {
        let d = desired();
        ObservedRole {
            path: "/".into(),
            description: "d".into(),
            trust: d.trust.clone(),
            tags: stack_tag
                .map(|s| vec![(super::super::vocab::OWNER_TAG.to_string(), s.to_string())])
                .unwrap_or_default(),
            attached: d.policy_arns.iter().cloned().collect(),
            permissions_boundary: None,
            last_used: None,
        }
    }

    #[test]
    fn a_missing_role_is_created_with_all_its_policies() {
        let plan = diff("s", &desired(), None);
        let ops: Vec<_> = plan.changes.iter().map(|c| c.change.operation()).collect();
        assert_eq!(ops, ["CreateRole", "AttachRolePolicy", "AttachRolePolicy"]);
        assert!(plan.changes.iter().all(|c| !c.needs_consent));
    }

    #[test]
    fn a_matching_role_is_unchanged_and_extra_policies_are_left_alone() {
        let mut obs = observed(Some("s"));
        obs.attached.insert("arn:aws:iam::aws:policy/Extra".into());
        let plan = diff("s", &desired(), Some(&obs));
        assert!(plan.changes.is_empty());
        assert_eq!(plan.notes.len(), 1);
    }

    #[test]
    fn a_detached_policy_and_an_edited_trust_are_repaired() {
        let mut obs = observed(Some("s"));
        obs.attached.remove("arn:aws:iam::aws:policy/B");
        obs.trust["Statement"][0]["Principal"]["Service"] = json!("lambda.amazonaws.com");
        let plan = diff("s", &desired(), Some(&obs));
        let ops: Vec<_> = plan.changes.iter().map(|c| c.change.operation()).collect();
        assert_eq!(ops, ["UpdateAssumeRolePolicy", "AttachRolePolicy"]);
    }

    #[test]
    fn changes_to_a_role_wfboot_did_not_create_need_consent() {
        let mut obs = observed(None);
        obs.trust["Statement"][0]["Principal"]["Service"] = json!("lambda.amazonaws.com");
        let plan = diff("s", &desired(), Some(&obs));
        assert_eq!(plan.ownership, Ownership::Foreign);
        assert!(plan.changes.iter().all(|c| c.needs_consent));
    }

    const BOUNDARY: &str = "arn:aws:iam::111122223333:policy/Boundary";

    fn ops(plan: &ResourcePlan) -> Vec<&'static str> {
        plan.changes.iter().map(|c| c.change.operation()).collect()
    }

    #[test]
    fn a_new_role_is_created_with_its_boundary_and_the_stacks_tags_in_the_one_call() {
        let mut d = desired();
        d.permissions_boundary = Some(BOUNDARY.into());
        d.tags.insert("CostCenter".into(), "42".into());
        let plan = diff("s", &d, None);
        let super::super::plan::Change::Role(Change::CreateRole { permissions_boundary, tags, .. }) =
            &plan.changes[0].change
        else {
            panic!("{:?}", plan.changes[0])
        };
        assert_eq!(permissions_boundary.as_deref(), Some(BOUNDARY));
        assert_eq!(tags.get("CostCenter").map(String::as_str), Some("42"));
        assert_eq!(tags.get("wfboot:tags").map(String::as_str), Some("CostCenter"));
    }

    #[test]
    fn a_missing_or_other_boundary_is_one_put_and_a_dropped_one_is_deleted_only_from_an_owned_role() {
        let mut d = desired();
        d.permissions_boundary = Some(BOUNDARY.into());
        let mut obs = observed(Some("s"));
        assert_eq!(ops(&diff("s", &d, Some(&obs))), ["PutRolePermissionsBoundary"]);
        obs.permissions_boundary = Some("arn:aws:iam::111122223333:policy/Other".into());
        assert_eq!(ops(&diff("s", &d, Some(&obs))), ["PutRolePermissionsBoundary"]);
        obs.permissions_boundary = Some(BOUNDARY.into());
        assert!(diff("s", &d, Some(&obs)).changes.is_empty());
        d.permissions_boundary = None;
        assert_eq!(ops(&diff("s", &d, Some(&obs))), ["DeleteRolePermissionsBoundary"]);
        let mut foreign = observed(None);
        foreign.permissions_boundary = Some(BOUNDARY.into());
        let plan = diff("s", &d, Some(&foreign));
        assert!(plan.changes.is_empty());
        assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
    }

    #[test]
    fn a_removed_or_changed_tag_on_an_owned_role_is_one_tag_call_and_a_foreign_role_is_not_tagged() {
        let mut d = desired();
        d.tags.insert("CostCenter".into(), "42".into());
        let mut obs = observed(Some("s"));
        obs.tags.push(("wfboot:tags".into(), "CostCenter".into()));
        assert_eq!(ops(&diff("s", &d, Some(&obs))), ["TagRole"]);
        obs.tags.push(("CostCenter".into(), "41".into()));
        assert_eq!(ops(&diff("s", &d, Some(&obs))), ["TagRole"]);
        let mut foreign = observed(None);
        foreign.tags.push(("Owner".into(), "x".into()));
        assert!(diff("s", &d, Some(&foreign)).changes.is_empty());
    }
}
