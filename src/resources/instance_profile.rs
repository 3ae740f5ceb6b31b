//! An instance profile: ensures it exists and holds exactly the stack's role (IAM allows one role per profile).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use serde::Serialize;

use super::access::{ContextEntry, Permission, Scope};
use super::kind::{each, DestroyCtx, ResourceKind};
use super::plan::{not_ours, DestroyResource, Key, Kind, ResourcePlan};
use super::tags;
use super::vocab::{owned, owner_tag, Ownership};
use super::write::{conflict, not_propagated, plain, Cadence, Call, Ctx, Outcome, Write};
use crate::aws::{errors, Clients};
use crate::error::{Error, Result};
use crate::stack::{Desired, DesiredInstanceProfile, Stack};

/// One write call to an instance profile. The variants are the IAM calls' names, which all end in
/// `InstanceProfile`.
#[allow(clippy::enum_variant_names)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "call", rename_all = "PascalCase")]
pub(crate) enum Change {
    CreateInstanceProfile {
        name: String,
        path: String,
        /// The stack's tags (with the record of their keys), sent beside the ownership tag.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        tags: BTreeMap<String, String>,
    },
    TagInstanceProfile {
        profile: String,
        tags: BTreeMap<String, String>,
    },
    UntagInstanceProfile {
        profile: String,
        keys: Vec<String>,
    },
    #[cfg_attr(test, schemars(extend("x-made-by" = "both")))]
    RemoveRoleFromInstanceProfile {
        profile: String,
        role: String,
    },
    AddRoleToInstanceProfile {
        profile: String,
        role: String,
    },
    // Removals, made only by `destroy`.
    #[cfg_attr(test, schemars(extend("x-made-by" = "destroy")))]
    DeleteInstanceProfile {
        name: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateInstanceProfile { path, tags: t, .. } if !t.is_empty() => {
                write!(f, "create instance profile (path {path}), tags {}", tags::shown(t))
            }
            Change::CreateInstanceProfile { path, .. } => write!(f, "create instance profile (path {path})"),
            Change::TagInstanceProfile { tags: t, .. } if t.len() == 1 && t.contains_key(tags::KEYS_TAG) => {
                write!(f, "tag: the record of wfboot's tag keys ({})", tags::KEYS_TAG)
            }
            Change::TagInstanceProfile { tags: t, .. } => write!(f, "tag {}", tags::shown(t)),
            Change::UntagInstanceProfile { keys, .. } => {
                write!(f, "untag {} (set by wfboot, no longer in the stack)", keys.join(", "))
            }
            Change::RemoveRoleFromInstanceProfile { profile, role } => {
                write!(f, "remove role {role} from instance profile {profile}")
            }
            Change::AddRoleToInstanceProfile { role, .. } => write!(f, "add role {role}"),
            Change::DeleteInstanceProfile { .. } => write!(f, "delete the instance profile"),
        }
    }
}

impl Write for Change {
    fn operation(&self) -> &'static str {
        match self {
            Change::CreateInstanceProfile { .. } => "CreateInstanceProfile",
            Change::TagInstanceProfile { .. } => "TagInstanceProfile",
            Change::UntagInstanceProfile { .. } => "UntagInstanceProfile",
            Change::RemoveRoleFromInstanceProfile { .. } => "RemoveRoleFromInstanceProfile",
            Change::AddRoleToInstanceProfile { .. } => "AddRoleToInstanceProfile",
            Change::DeleteInstanceProfile { .. } => "DeleteInstanceProfile",
        }
    }

    fn needs(&self) -> Vec<Key> {
        match self {
            // A profile holds one role: the one it has is taken out first.
            Change::AddRoleToInstanceProfile { profile, role } => vec![
                Key::RoleExists(role.clone()),
                Key::InstanceProfileExists(profile.clone()),
                Key::InstanceProfileReleased(profile.clone()),
            ],
            // A profile goes once it is empty.
            Change::DeleteInstanceProfile { name } => vec![Key::InstanceProfileReleased(name.clone())],
            _ => Vec::new(),
        }
    }

    fn provides(&self) -> Vec<Key> {
        match self {
            Change::CreateInstanceProfile { name, .. } => vec![Key::InstanceProfileExists(name.clone())],
            Change::RemoveRoleFromInstanceProfile { profile, role } => {
                vec![Key::InstanceProfileReleased(profile.clone()), Key::RoleReleased(role.clone())]
            }
            _ => Vec::new(),
        }
    }

    fn permissions(&self, scope: &Scope<'_>) -> Vec<Permission> {
        match self {
            Change::CreateInstanceProfile { name, path, tags: t } => vec![
                scope
                    .tagged(Permission::new("iam:CreateInstanceProfile", scope.arn("instance-profile", path, name)), t),
                scope.tagged(Permission::new("iam:TagInstanceProfile", scope.arn("instance-profile", path, name)), t),
            ],
            Change::TagInstanceProfile { profile, tags: t } => {
                vec![tags::requesting(
                    Permission::new("iam:TagInstanceProfile", scope.instance_profile_arn(profile)),
                    t,
                )]
            }
            Change::UntagInstanceProfile { profile, keys } => {
                vec![tags::removing(
                    Permission::new("iam:UntagInstanceProfile", scope.instance_profile_arn(profile)),
                    keys,
                )]
            }
            Change::RemoveRoleFromInstanceProfile { profile, .. } => {
                vec![Permission::new("iam:RemoveRoleFromInstanceProfile", scope.instance_profile_arn(profile))]
            }
            Change::AddRoleToInstanceProfile { profile, role } => {
                let mut out =
                    vec![Permission::new("iam:AddRoleToInstanceProfile", scope.instance_profile_arn(profile))];
                // "The caller of this operation must be granted the PassRole permission on the IAM role"
                // (https://docs.aws.amazon.com/IAM/latest/APIReference/API_AddRoleToInstanceProfile.html), for the
                // services that will use it: those the role trusts.
                let services = scope.passed_to(role);
                if services.is_empty() {
                    out.push(Permission::new("iam:PassRole", scope.role_arn(role)));
                }
                for service in services {
                    out.push(
                        Permission::new("iam:PassRole", scope.role_arn(role))
                            .with(ContextEntry::one("iam:PassedToService", service)),
                    );
                }
                out
            }
            Change::DeleteInstanceProfile { name } => {
                vec![Permission::new("iam:DeleteInstanceProfile", scope.instance_profile_arn(name))]
            }
        }
    }

    fn same_write(&self, other: &Change) -> bool {
        self == other
    }

    async fn execute(&self, ctx: &mut Ctx<'_>, after_dependency: bool) -> Result<(Outcome, bool)> {
        let iam = &ctx.clients.iam_writes;
        match self {
            Change::CreateInstanceProfile { name, path, tags: t } => {
                let mut req = iam
                    .create_instance_profile()
                    .instance_profile_name(name)
                    .path(path)
                    .tags(owner_tag(&ctx.opts.stack));
                for tag in tags::sdk(t) {
                    req = req.tags(tag);
                }
                let about = format!("instance profile `{name}`");
                let call = Call::new(format!("create instance profile `{name}`"), &about).tagged_create();
                let outcome = ctx.send(&call, || req.clone().send()).await?;
                let clients = ctx.clients;
                ctx.created_or_found(
                    outcome,
                    &about,
                    || async move { Ok(observe(clients, name).await?.map(|p| p.tags)) },
                )
                .await
            }
            Change::TagInstanceProfile { profile, tags: t } => {
                let req = iam.tag_instance_profile().instance_profile_name(profile).set_tags(Some(tags::sdk(t)));
                let call =
                    Call::new(format!("tag instance profile `{profile}`"), format!("instance profile `{profile}`"));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::UntagInstanceProfile { profile, keys } => {
                let req = iam.untag_instance_profile().instance_profile_name(profile).set_tag_keys(Some(keys.clone()));
                let call =
                    Call::new(format!("untag instance profile `{profile}`"), format!("instance profile `{profile}`"));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::RemoveRoleFromInstanceProfile { profile, role } => {
                let req = iam.remove_role_from_instance_profile().instance_profile_name(profile).role_name(role);
                let call = Call::new(
                    format!("remove role `{role}` from instance profile `{profile}`"),
                    format!("instance profile `{profile}`"),
                )
                .removal();
                // After a lost answer the profile is read first: sent again, the removal's answer is IAM's
                // NoSuchEntity (terraform-provider-aws internal/service/iam/instance_profile.go treats it as
                // done), but the emulator's moto answers it with a 500.
                let clients = ctx.clients;
                let landed = || async move {
                    Ok(observe(clients, profile).await?.is_none_or(|p| !p.roles.iter().any(|r| r == role)))
                };
                plain(ctx.send_checked(&call, || req.clone().send(), Some(landed)).await)
            }
            Change::AddRoleToInstanceProfile { profile, role } => {
                let req = iam.add_role_to_instance_profile().instance_profile_name(profile).role_name(role);
                let call = Call::new(
                    format!("add role `{role}` to instance profile `{profile}`"),
                    format!("instance profile `{profile}`"),
                )
                .propagating(format!("role `{role}` and instance profile `{profile}`"))
                .retrying(not_propagated(after_dependency));
                match ctx.send(&call, || req.clone().send()).await {
                    // A profile holds one role: LimitExceeded is a race won by a concurrent run when it holds ours
                    // (IAM API reference, AddRoleToInstanceProfile: LimitExceeded when the profile has a role
                    // already: https://docs.aws.amazon.com/IAM/latest/APIReference/API_AddRoleToInstanceProfile.html).
                    // Also the answer to sending it again after a lost answer: then this run put it there.
                    Err(e) if e.is_code("LimitExceeded") => match holds(ctx, profile, role).await {
                        Ok(true) if ctx.lost_answer => Ok((Outcome::Done, false)),
                        Ok(true) => Ok((Outcome::AlreadyDone, false)),
                        _ => Err(e),
                    },
                    other => plain(other),
                }
            }
            Change::DeleteInstanceProfile { name } => {
                let req = iam.delete_instance_profile().instance_profile_name(name);
                let call = Call::new(format!("delete instance profile `{name}`"), format!("instance profile `{name}`"))
                    .removal()
                    .retrying(conflict(after_dependency));
                plain(ctx.send(&call, || req.clone().send()).await)
            }
        }
    }
}

/// After LimitExceeded on AddRoleToInstanceProfile: does the profile hold `role` (a concurrent run put it
/// there)? An empty or missing profile may be read-after-write lag: read again, within the timeout.
async fn holds(ctx: &mut Ctx<'_>, profile: &str, role: &str) -> Result<bool> {
    let (start, timeout) = (Instant::now(), ctx.opts.propagation_timeout);
    let mut cadence = Cadence::default();
    loop {
        match observe(ctx.clients, profile).await? {
            Some(p) if p.roles.iter().any(|r| r == role) => return Ok(true),
            Some(p) if !p.roles.is_empty() => return Ok(false),
            _ if start.elapsed() + cadence.peek() >= timeout => return Ok(false),
            _ => ctx.wait(cadence.next()).await,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ObservedInstanceProfile {
    pub(crate) path: String,
    pub(crate) roles: Vec<String>,
    pub(crate) tags: Vec<(String, String)>,
}

pub(crate) async fn observe(clients: &Clients, name: &str) -> Result<Option<ObservedInstanceProfile>> {
    let profile = match clients.limit(clients.iam.get_instance_profile().instance_profile_name(name).send()).await {
        Ok(out) => out.instance_profile,
        Err(e) if errors::is_no_such_entity(&e) => return Ok(None),
        Err(e) => return Err(errors::describe(&format!("read instance profile `{name}`"), &e)),
    };
    let Some(p) = profile else { return Err(Error::aws(format!("iam:GetInstanceProfile answered without `{name}`"))) };
    Ok(Some(ObservedInstanceProfile {
        path: p.path,
        roles: p.roles.into_iter().map(|r| r.role_name).collect(),
        tags: p.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect(),
    }))
}

pub(crate) fn diff(
    stack: &str,
    desired: &DesiredInstanceProfile,
    observed: Option<&ObservedInstanceProfile>,
) -> ResourcePlan {
    let add = Change::AddRoleToInstanceProfile { profile: desired.name.clone(), role: desired.role.clone() };
    let Some(obs) = observed else {
        let create = Change::CreateInstanceProfile {
            name: desired.name.clone(),
            path: desired.path.clone(),
            tags: tags::managed(&desired.tags),
        };
        return ResourcePlan::new(Kind::InstanceProfile, &desired.name, Ownership::Absent, vec![create, add], vec![]);
    };
    let ownership = Ownership::from_tags(stack, obs.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut changes: Vec<Change> = obs
        .roles
        .iter()
        .filter(|r| **r != desired.role)
        .map(|r| Change::RemoveRoleFromInstanceProfile { profile: desired.name.clone(), role: r.clone() })
        .collect();
    if !obs.roles.contains(&desired.role) {
        changes.push(add);
    }
    let mut left_alone = Vec::new();
    let t = tags::diff(&desired.tags, &obs.tags);
    if ownership == Ownership::Stack {
        if !t.remove.is_empty() {
            changes.push(Change::UntagInstanceProfile { profile: desired.name.clone(), keys: t.remove });
        }
        if !t.set.is_empty() {
            changes.push(Change::TagInstanceProfile { profile: desired.name.clone(), tags: t.set });
        }
    } else if !t.set.is_empty() {
        left_alone.push(format!("tags {} are not set (wfboot tags only what it created)", tags::shown(&t.set)));
    }
    if obs.path != desired.path {
        left_alone.push(format!(
            "path is {} but the stack says {} (IAM cannot move an instance profile)",
            obs.path, desired.path
        ));
    }
    ResourcePlan::new(Kind::InstanceProfile, &desired.name, ownership, changes, left_alone)
}

/// What `destroy` does with the stack's instance profile: deleted when it is this stack's, after the roles it
/// holds are taken out (unless already `listed` with a role that is deleted).
pub(crate) fn destroy_diff(
    stack: &str,
    desired: &DesiredInstanceProfile,
    observed: Option<&ObservedInstanceProfile>,
    listed: &[DestroyResource],
) -> DestroyResource {
    let p = match observed {
        None => return DestroyResource::absent(Kind::InstanceProfile, &desired.name),
        Some(p) if !owned(stack, &p.tags) => {
            return DestroyResource::left_alone(
                Kind::InstanceProfile,
                &desired.name,
                Ownership::Foreign,
                not_ours(stack, &p.tags),
            )
        }
        Some(p) => p,
    };
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    for role in &p.roles {
        let remove = super::plan::Change::from(Change::RemoveRoleFromInstanceProfile {
            profile: desired.name.clone(),
            role: role.clone(),
        });
        // Listed with the role when the role is deleted too.
        if !listed.iter().flat_map(|r| &r.changes).any(|c| c.change == remove) {
            changes.push(remove);
            notes.push(format!(
                "role {role} is not deleted by this destroy: it is taken out of the profile, the role stays"
            ));
        }
    }
    changes.push(Change::DeleteInstanceProfile { name: desired.name.clone() }.into());
    DestroyResource::delete(Kind::InstanceProfile, &desired.name, Ownership::Stack, changes, notes)
}

/// The stack's instance profiles, read by name.
pub(crate) struct InstanceProfiles;

impl ResourceKind for InstanceProfiles {
    const WORD: &'static str = "instance profile";
    const BY_NAME: bool = true;
    const READ_ACTIONS: &'static [&'static str] = &["iam:GetInstanceProfile"];
    type Change = Change;
    type Observation = Vec<Option<ObservedInstanceProfile>>;

    fn names_in_stack(stack: &Stack) -> Vec<String> {
        stack.instance_profiles.iter().map(|p| p.name.clone()).collect()
    }

    fn names(desired: &Desired) -> Vec<String> {
        desired.instance_profiles.iter().map(|p| p.name.clone()).collect()
    }

    async fn observe_named(clients: &Clients, names: &[String], _verifying: bool) -> Result<Self::Observation> {
        futures::future::try_join_all(names.iter().map(|p| observe(clients, p))).await
    }

    fn absent(desired: &Desired, _user: Option<&str>) -> Self::Observation {
        vec![None; desired.instance_profiles.len()]
    }

    fn diff(desired: &Desired, observed: &Self::Observation, _user: Option<&str>) -> Vec<ResourcePlan> {
        each(&desired.instance_profiles, observed, |d, o| diff(&desired.stack, d, o))
    }

    fn keep_changed(desired: &mut Desired, changed: &dyn Fn(Option<&str>) -> bool) {
        desired.instance_profiles.retain(|p| changed(Some(&p.name)));
    }

    fn destroy_diff(_: &Desired, _: &Self::Observation, ctx: &DestroyCtx<'_>) -> Vec<DestroyResource> {
        ctx.decided(Kind::InstanceProfile)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    use aws_sdk_iam::operation::add_role_to_instance_profile::AddRoleToInstanceProfileError;
    use aws_sdk_iam::operation::get_instance_profile::GetInstanceProfileOutput;
    use aws_sdk_iam::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;
    use crate::resources::write::{ApplyObserver, ApplyOptions, Waits};

    struct Quiet;
    impl ApplyObserver for Quiet {
        fn finished(&self, _: &crate::resources::plan::PlannedChange, _: &Outcome) {}
        fn waiting(&self, _: &str) {}
    }

    fn desired() -> DesiredInstanceProfile {
        DesiredInstanceProfile { name: "P".into(), path: "/".into(), role: "R".into(), tags: BTreeMap::new() }
    }

    fn observed(roles: &[&str], owner: Option<&str>) -> ObservedInstanceProfile {
        ObservedInstanceProfile {
            path: "/".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            tags: owner.map(|s| vec![(super::super::vocab::OWNER_TAG.to_string(), s.to_string())]).unwrap_or_default(),
        }
    }

    fn ops(plan: &ResourcePlan) -> Vec<&'static str> {
        plan.changes.iter().map(|c| c.change.operation()).collect()
    }

    #[test]
    fn a_missing_profile_is_created_and_given_its_role() {
        let plan = diff("s", &desired(), None);
        assert_eq!(plan.ownership, Ownership::Absent);
        assert_eq!(ops(&plan), ["CreateInstanceProfile", "AddRoleToInstanceProfile"]);
    }

    #[test]
    fn a_profile_holding_another_role_has_it_taken_out_before_ours_goes_in() {
        let plan = diff("s", &desired(), Some(&observed(&["Other"], Some("s"))));
        assert_eq!(ops(&plan), ["RemoveRoleFromInstanceProfile", "AddRoleToInstanceProfile"]);
        let add = &plan.changes[1].change;
        assert!(add.needs().contains(&Key::InstanceProfileReleased("P".into())), "{:?}", add.needs());
        assert!(plan.changes[0].change.provides().contains(&Key::InstanceProfileReleased("P".into())));
    }

    #[test]
    fn a_profile_of_another_stack_is_deleted_by_none_and_one_of_ours_after_its_role_is_out() {
        let foreign = destroy_diff("s", &desired(), Some(&observed(&["R"], Some("other"))), &[]);
        assert!(foreign.changes.is_empty() && foreign.ownership == Ownership::Foreign, "{foreign:?}");
        let ours = destroy_diff("s", &desired(), Some(&observed(&["R"], Some("s"))), &[]);
        let ops: Vec<&str> = ours.changes.iter().map(|c| c.change.operation()).collect();
        assert_eq!(ops, ["RemoveRoleFromInstanceProfile", "DeleteInstanceProfile"]);
    }

    #[tokio::test]
    async fn limit_exceeded_on_adding_the_role_is_done_when_the_profile_holds_it_already_by_the_code_alone() {
        let add = mock!(Client::add_role_to_instance_profile).then_error(|| {
            // The message is not what the code reads: only the code says what happened.
            let meta = aws_smithy_types::error::ErrorMetadata::builder()
                .code("LimitExceeded")
                .message("Cannot exceed quota")
                .build();
            AddRoleToInstanceProfileError::generic(meta)
        });
        let get = mock!(Client::get_instance_profile).then_output(|| {
            let role = aws_sdk_iam::types::Role::builder()
                .path("/")
                .role_name("R")
                .role_id("AROAEXAMPLE")
                .arn("arn:aws:iam::111122223333:role/R")
                .create_date(aws_smithy_types::DateTime::from_secs(0))
                .build()
                .unwrap();
            let profile = aws_sdk_iam::types::InstanceProfile::builder()
                .path("/")
                .instance_profile_name("P")
                .instance_profile_id("AIPA")
                .arn("arn:aws:iam::111122223333:instance-profile/P")
                .create_date(aws_smithy_types::DateTime::from_secs(0))
                .roles(role)
                .build()
                .unwrap();
            GetInstanceProfileOutput::builder().instance_profile(profile).build()
        });
        let clients = Clients::with_iam(mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&add, &get]));
        let opts = ApplyOptions {
            stack: "s".into(),
            consent: true,
            propagation_timeout: Duration::from_secs(10),
            deletion_timeout: Duration::from_secs(10),
            interrupted: Arc::new(AtomicBool::new(false)),
            waits: Arc::new(Waits::default()),
        };
        let mut ctx = Ctx {
            clients: &clients,
            opts: &opts,
            observer: &Quiet,
            retries: 0,
            waited: Duration::ZERO,
            lost_answer: false,
        };
        let change = Change::AddRoleToInstanceProfile { profile: "P".into(), role: "R".into() };
        let (outcome, _) = change.execute(&mut ctx, false).await.unwrap();
        assert_eq!(outcome, Outcome::AlreadyDone);
    }
}
