//! The destroy plan: what `destroy` removes and what it leaves alone, with why. Only resources carrying
//! wfboot's ownership tag for this stack are deleted. Deleting one ends every relationship it has, whoever
//! made it (a role leaves its instance profiles and loses its policies, a policy is detached from everything),
//! so that IAM accepts the deletion; what sits at the other end of such a relationship is never deleted, and
//! the plan names it. Every change is one write call, as in the bootstrap plan.
//!
//! Observation is [`super::observe`], plus, for what will be deleted only, what holds it (instance profiles
//! of a role, inline policies, versions and attachments of a policy).

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::aws::Clients;
use crate::error::Result;
use crate::resources::plan::{Change, Kind, PlannedChange};
use crate::resources::policy::{self, PolicyLinks};
use crate::resources::role::{self, RoleLinks};
use crate::resources::{instance_profile, service_linked_role, user};
use crate::resources::{observe, Observed};
use crate::resources::{Ownership, OWNER_TAG};
use crate::stack::Desired;

/// What `destroy` reads: the usual observation, and the links of each resource this stack owns.
#[derive(Debug, Clone)]
pub(crate) struct DestroyObserved {
    pub(crate) observed: Observed,
    /// Per desired role: what holds it, read only when the role is this stack's.
    pub(crate) roles: Vec<Option<RoleLinks>>,
    /// Per desired policy: its other versions and attachments, read only when the policy is this stack's.
    pub(crate) policies: Vec<Option<PolicyLinks>>,
}

fn owned(stack: &str, tags: &[(String, String)]) -> bool {
    Ownership::from_tags(stack, tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) == Ownership::Stack
}

/// Read the account for destroying `desired`. Get/List calls only; the operator user is not read.
/// `observed`: the stack as already read (by `Session::open_observing`), or `None` to read it here.
pub(crate) async fn observe_for_destroy(
    clients: &Clients,
    desired: &Desired,
    observed: Option<Observed>,
) -> Result<DestroyObserved> {
    let observed = match observed {
        Some(o) => o,
        None => observe(clients, desired, None, false).await?,
    };
    let stack = desired.stack.as_str();
    let roles = futures::future::try_join_all(desired.roles.iter().zip(&observed.roles).map(|(d, o)| async move {
        match o {
            Some(o) if owned(stack, &o.tags) => role::observe_links(clients, &d.name).await.map(Some),
            _ => Ok(None),
        }
    }));
    let policies =
        futures::future::try_join_all(desired.policies.iter().zip(&observed.policies).map(|(d, o)| async move {
            match o {
                Some(o) if owned(stack, &o.tags) => policy::observe_links(clients, d).await.map(Some),
                _ => Ok(None),
            }
        }));
    let (roles, policies) = tokio::try_join!(roles, policies)?;
    Ok(DestroyObserved { observed, roles, policies })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    Delete,
    LeftAlone,
    /// Not in the account: nothing to do.
    Absent,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DestroyResource {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) action: Action,
    pub(crate) ownership: Ownership,
    /// Why it is left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    pub(crate) changes: Vec<PlannedChange>,
    /// What deleting it touches beyond the stack (the other end of a relationship, which stays).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
}

impl DestroyResource {
    fn absent(kind: Kind, name: &str) -> Self {
        DestroyResource {
            kind,
            name: name.to_string(),
            action: Action::Absent,
            ownership: Ownership::Absent,
            reason: None,
            changes: vec![],
            notes: vec![],
        }
    }

    fn left_alone(kind: Kind, name: &str, ownership: Ownership, reason: String) -> Self {
        DestroyResource {
            kind,
            name: name.to_string(),
            action: Action::LeftAlone,
            ownership,
            reason: Some(reason),
            changes: vec![],
            notes: vec![],
        }
    }

    fn delete(kind: Kind, name: &str, ownership: Ownership, changes: Vec<Change>, notes: Vec<String>) -> Self {
        DestroyResource {
            kind,
            name: name.to_string(),
            action: Action::Delete,
            ownership,
            reason: None,
            changes: changes.into_iter().map(|change| PlannedChange { change, needs_consent: false }).collect(),
            notes,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct DestroySummary {
    pub(crate) delete: usize,
    pub(crate) left_alone: usize,
    pub(crate) absent: usize,
    /// Write calls the plan needs, all of them.
    pub(crate) changes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DestroyPlan {
    pub(crate) stack: String,
    pub(crate) account_id: String,
    pub(crate) partition: String,
    pub(crate) region: String,
    pub(crate) resources: Vec<DestroyResource>,
    pub(crate) summary: DestroySummary,
}

impl DestroyPlan {
    pub(crate) fn has_changes(&self) -> bool {
        self.summary.changes > 0
    }

    pub(crate) fn changes(&self) -> impl Iterator<Item = &PlannedChange> {
        self.resources.iter().flat_map(|r| r.changes.iter())
    }
}

fn not_ours(stack: &str, tags: &[(String, String)]) -> String {
    match tags.iter().find(|(k, _)| k == OWNER_TAG) {
        Some((_, other)) => format!("created by wfboot for stack {other}, not {stack}"),
        None => format!("exists, not created by wfboot (no {OWNER_TAG}={stack} tag)"),
    }
}

/// The destroy plan for `desired` given what was observed. Pure: no AWS access.
///
/// `include_service_linked_roles`: delete the stack's service-linked roles too (they are left alone by
/// default: shared by the whole account, and nothing marks one as wfboot's).
pub(crate) fn diff(desired: &Desired, obs: &DestroyObserved, include_service_linked_roles: bool) -> DestroyPlan {
    let stack = desired.stack.as_str();
    let o = &obs.observed;
    let deleted_roles: BTreeSet<&str> =
        desired.roles.iter().zip(&obs.roles).filter(|(_, l)| l.is_some()).map(|(d, _)| d.name.as_str()).collect();
    let deleted_profiles: BTreeSet<&str> = desired
        .instance_profiles
        .iter()
        .zip(&o.instance_profiles)
        .filter(|(_, p)| p.as_ref().is_some_and(|p| owned(stack, &p.tags)))
        .map(|(d, _)| d.name.as_str())
        .collect();
    let mut resources = Vec::new();

    // The stack's own policies among them are deleted below, which detaches them from the user first.
    let own: BTreeSet<&str> = desired.policies.iter().map(|p| p.arn.as_str()).collect();
    let kept = desired.user_policies.iter().filter(|a| !own.contains(a.as_str())).count();
    if kept > 0 {
        resources.push(DestroyResource::left_alone(
            Kind::UserPolicies,
            "(operator)",
            Ownership::External,
            format!(
                "the stack's {kept} managed policies on the operator's IAM user are not detached: wfboot cannot tell \
                 whether it attached them or they were there before (detach them yourself if they are no longer needed)"
            ),
        ));
    }

    for ((d, p), links) in desired.policies.iter().zip(&o.policies).zip(&obs.policies) {
        resources.push(match (p, links) {
            (None, _) => DestroyResource::absent(Kind::Policy, &d.name),
            (Some(p), None) => {
                DestroyResource::left_alone(Kind::Policy, &d.name, Ownership::Foreign, not_ours(stack, &p.tags))
            }
            (Some(_), Some(l)) => {
                let arn = &d.arn;
                let mut changes: Vec<Change> = l
                    .other_versions
                    .iter()
                    .map(|v| {
                        Change::from(policy::Change::DeletePolicyVersion {
                            policy_arn: arn.clone(),
                            version_id: v.clone(),
                        })
                    })
                    .collect();
                let mut notes = Vec::new();
                // Detachments from the stack's own roles are listed with those roles.
                for r in l.roles.iter().filter(|r| !deleted_roles.contains(r.as_str())) {
                    changes.push(Change::from(role::Change::DetachRolePolicy {
                        role: r.clone(),
                        policy_arn: arn.clone(),
                    }));
                    notes.push(format!(
                        "role {r} is not deleted by this destroy: the policy is detached from it, the role stays"
                    ));
                }
                for u in &l.users {
                    changes.push(Change::from(user::Change::DetachUserPolicy {
                        user: u.clone(),
                        policy_arn: arn.clone(),
                    }));
                    notes.push(format!("user {u}: the policy is detached from it, the user stays"));
                }
                for g in &l.groups {
                    changes.push(Change::from(policy::Change::DetachGroupPolicy {
                        group: g.clone(),
                        policy_arn: arn.clone(),
                    }));
                    notes.push(format!("group {g}: the policy is detached from it, the group stays"));
                }
                changes.push(Change::from(policy::Change::DeletePolicy { policy_arn: arn.clone() }));
                DestroyResource::delete(Kind::Policy, &d.name, Ownership::Stack, changes, notes)
            }
        });
    }

    for ((d, r), links) in desired.roles.iter().zip(&o.roles).zip(&obs.roles) {
        resources.push(match (r, links) {
            (None, _) => DestroyResource::absent(Kind::Role, &d.name),
            (Some(r), None) => DestroyResource::left_alone(Kind::Role, &d.name, Ownership::Foreign, not_ours(stack, &r.tags)),
            (Some(r), Some(l)) => {
                let mut changes = Vec::new();
                let mut notes = Vec::new();
                for p in &l.instance_profiles {
                    changes.push(Change::from(instance_profile::Change::RemoveRoleFromInstanceProfile { profile: p.clone(), role: d.name.clone() }));
                    if !deleted_profiles.contains(p.as_str()) {
                        notes.push(format!("instance profile {p} is not deleted by this destroy: the role is taken out of it, the profile stays"));
                    }
                }
                for arn in &r.attached {
                    changes.push(Change::from(role::Change::DetachRolePolicy { role: d.name.clone(), policy_arn: arn.clone() }));
                    if !d.policy_arns.contains(arn) {
                        notes.push(format!("{arn} is not in the stack (attached by someone else): detached, the policy stays"));
                    }
                }
                for name in &l.inline_policies {
                    changes.push(Change::from(role::Change::DeleteRolePolicy { role: d.name.clone(), policy_name: name.clone() }));
                    notes.push(format!("inline policy {name} was not put there by wfboot: it is deleted with the role"));
                }
                changes.push(Change::from(role::Change::DeleteRole { name: d.name.clone() }));
                DestroyResource::delete(Kind::Role, &d.name, Ownership::Stack, changes, notes)
            }
        });
    }

    for (d, p) in desired.instance_profiles.iter().zip(&o.instance_profiles) {
        let item = match p {
            None => DestroyResource::absent(Kind::InstanceProfile, &d.name),
            Some(p) if !owned(stack, &p.tags) => DestroyResource::left_alone(
                Kind::InstanceProfile,
                &d.name,
                Ownership::Foreign,
                not_ours(stack, &p.tags),
            ),
            Some(p) => {
                let mut changes = Vec::new();
                let mut notes = Vec::new();
                for role in &p.roles {
                    let remove = Change::from(instance_profile::Change::RemoveRoleFromInstanceProfile {
                        profile: d.name.clone(),
                        role: role.clone(),
                    });
                    // Listed with the role when the role is deleted too.
                    if !resources.iter().flat_map(|r: &DestroyResource| &r.changes).any(|c| c.change == remove) {
                        changes.push(remove);
                        notes.push(format!("role {role} is not deleted by this destroy: it is taken out of the profile, the role stays"));
                    }
                }
                changes.push(Change::from(instance_profile::Change::DeleteInstanceProfile { name: d.name.clone() }));
                DestroyResource::delete(Kind::InstanceProfile, &d.name, Ownership::Stack, changes, notes)
            }
        };
        resources.push(item);
    }

    for (service, role) in desired.service_linked_roles.iter().zip(&o.service_linked_roles) {
        resources.push(match role {
            None => DestroyResource::absent(Kind::ServiceLinkedRole, service),
            Some(role) if include_service_linked_roles => DestroyResource::delete(
                Kind::ServiceLinkedRole,
                service,
                Ownership::External,
                vec![Change::from(service_linked_role::Change::DeleteServiceLinkedRole {
                    service: service.clone(),
                    role: role.clone(),
                })],
                vec![],
            ),
            Some(role) => DestroyResource::left_alone(
                Kind::ServiceLinkedRole,
                service,
                Ownership::External,
                format!(
                    "{role} is shared by the whole account (the service uses it for every resource, whoever made \
                     it, and creates it itself on first use), so wfboot cannot know it made it; pass \
                     --include-service-linked-roles to delete it"
                ),
            ),
        });
    }

    let mut summary = DestroySummary::default();
    for r in &resources {
        match r.action {
            Action::Delete => summary.delete += 1,
            Action::LeftAlone => summary.left_alone += 1,
            Action::Absent => summary.absent += 1,
        }
        summary.changes += r.changes.len();
    }
    DestroyPlan {
        stack: stack.to_string(),
        account_id: desired.target.account_id.clone(),
        partition: desired.target.partition.clone(),
        region: desired.target.region.clone(),
        resources,
        summary,
    }
}

impl fmt::Display for DestroyPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Destroy stack {} in account {} ({}, {}):",
            self.stack, self.account_id, self.partition, self.region
        )?;
        for r in &self.resources {
            let (mark, status) = match r.action {
                Action::Delete => ('-', "delete"),
                Action::LeftAlone => ('=', "left alone"),
                Action::Absent => ('.', "absent"),
            };
            let name = format!("{} {}", r.kind, r.name);
            writeln!(f, "  {mark} {name:<48} {status}")?;
            if let Some(reason) = &r.reason {
                writeln!(f, "      {reason}")?;
            }
            for c in &r.changes {
                writeln!(f, "      {}", c.change)?;
            }
            for note in &r.notes {
                writeln!(f, "      note: {note}")?;
            }
        }
        let s = &self.summary;
        writeln!(
            f,
            "{} to delete, {} left alone, {} absent; {} write call{}.",
            s.delete,
            s.left_alone,
            s.absent,
            s.changes,
            if s.changes == 1 { "" } else { "s" }
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::resources::instance_profile::ObservedInstanceProfile;
    use crate::resources::role::ObservedRole;
    use crate::stack::{DesiredInstanceProfile, DesiredPolicy, DesiredRole, Target};

    const POLICY: &str = "arn:aws:iam::111122223333:policy/P";

    fn desired() -> Desired {
        Desired {
            stack: "s".into(),
            target: Target { partition: "aws".into(), account_id: "111122223333".into(), region: "us-east-1".into() },
            user_policies: vec!["arn:aws:iam::aws:policy/A".into()],
            policies: vec![DesiredPolicy {
                name: "P".into(),
                path: "/".into(),
                arn: POLICY.into(),
                description: String::new(),
                document: json!({}),
            }],
            roles: vec![
                DesiredRole {
                    name: "R".into(),
                    path: "/".into(),
                    description: String::new(),
                    trust: json!({}),
                    policy_arns: vec![POLICY.into()],
                },
                DesiredRole {
                    name: "Theirs".into(),
                    path: "/".into(),
                    description: String::new(),
                    trust: json!({}),
                    policy_arns: vec![],
                },
            ],
            instance_profiles: vec![DesiredInstanceProfile { name: "R".into(), path: "/".into(), role: "R".into() }],
            service_linked_roles: vec!["spot.amazonaws.com".into()],
        }
    }

    fn tag(stack: &str) -> Vec<(String, String)> {
        vec![(OWNER_TAG.to_string(), stack.to_string())]
    }

    fn role(tags: Vec<(String, String)>, attached: &[&str]) -> ObservedRole {
        ObservedRole {
            path: "/".into(),
            description: String::new(),
            trust: json!({}),
            tags,
            attached: attached.iter().map(|a| a.to_string()).collect::<BTreeSet<_>>(),
        }
    }

    fn observed() -> DestroyObserved {
        let policy = crate::resources::policy::ObservedPolicy {
            path: "/".into(),
            tags: tag("s"),
            document: json!({}),
            other_versions: vec![],
            version_count: 1,
        };
        DestroyObserved {
            observed: Observed {
                user: None,
                policies: vec![Some(policy)],
                roles: vec![
                    Some(role(tag("s"), &[POLICY, "arn:aws:iam::aws:policy/Extra"])),
                    Some(role(vec![], &[POLICY])),
                ],
                instance_profiles: vec![Some(ObservedInstanceProfile {
                    path: "/".into(),
                    roles: vec!["R".into()],
                    tags: tag("s"),
                })],
                service_linked_roles: vec![Some("AWSServiceRoleForEC2Spot".into())],
            },
            roles: vec![Some(RoleLinks { instance_profiles: vec!["R".into()], inline_policies: vec![] }), None],
            policies: vec![Some(PolicyLinks {
                other_versions: vec!["v1".into()],
                roles: vec!["R".into(), "Theirs".into()],
                users: vec![],
                groups: vec![],
            })],
        }
    }

    fn ops(plan: &DestroyPlan, kind: Kind, name: &str) -> Vec<String> {
        let r = plan.resources.iter().find(|r| r.kind == kind && r.name == name).unwrap();
        r.changes.iter().map(|c| c.change.operation().to_string()).collect()
    }

    #[test]
    fn only_what_the_stack_owns_is_deleted_and_every_relationship_is_removed_once() {
        let plan = diff(&desired(), &observed(), false);
        assert_eq!(ops(&plan, Kind::Policy, "P"), ["DeletePolicyVersion", "DetachRolePolicy", "DeletePolicy"]);
        assert_eq!(
            ops(&plan, Kind::Role, "R"),
            ["RemoveRoleFromInstanceProfile", "DetachRolePolicy", "DetachRolePolicy", "DeleteRole"]
        );
        // The removal from the profile is listed once, with the role.
        assert_eq!(ops(&plan, Kind::InstanceProfile, "R"), ["DeleteInstanceProfile"]);
        let theirs = plan.resources.iter().find(|r| r.name == "Theirs").unwrap();
        assert_eq!(theirs.action, Action::LeftAlone);
        assert!(theirs.reason.as_deref().unwrap().contains("not created by wfboot"));
        let slr = plan.resources.iter().find(|r| r.kind == Kind::ServiceLinkedRole).unwrap();
        assert_eq!(slr.action, Action::LeftAlone);
        assert!(slr.reason.as_deref().unwrap().contains("--include-service-linked-roles"));
        assert_eq!(plan.resources[0].kind, Kind::UserPolicies);
        assert_eq!(plan.resources[0].action, Action::LeftAlone);
        assert_eq!(plan.summary, DestroySummary { delete: 3, left_alone: 3, absent: 0, changes: 8 });
        let text = plan.to_string();
        assert!(text.contains("detach arn:aws:iam::111122223333:policy/P from role Theirs"), "{text}");
        assert!(text.contains("3 to delete, 3 left alone, 0 absent; 8 write calls."), "{text}");
    }

    #[test]
    fn service_linked_roles_are_deleted_only_when_asked() {
        let plan = diff(&desired(), &observed(), true);
        assert_eq!(ops(&plan, Kind::ServiceLinkedRole, "spot.amazonaws.com"), ["DeleteServiceLinkedRole"]);
    }

    #[test]
    fn another_stacks_resource_is_left_alone_and_an_absent_stack_has_nothing_to_do() {
        let mut obs = observed();
        obs.observed.roles[0] = Some(role(tag("other"), &[]));
        obs.roles[0] = None;
        let plan = diff(&desired(), &obs, false);
        let r = plan.resources.iter().find(|r| r.name == "R" && r.kind == Kind::Role).unwrap();
        assert_eq!(r.reason.as_deref(), Some("created by wfboot for stack other, not s"));

        let d = desired();
        let empty = DestroyObserved {
            observed: Observed {
                user: None,
                policies: vec![None],
                roles: vec![None, None],
                instance_profiles: vec![None],
                service_linked_roles: vec![None],
            },
            roles: vec![None, None],
            policies: vec![None],
        };
        let plan = diff(&d, &empty, true);
        assert!(!plan.has_changes());
        assert_eq!(plan.summary.absent, 5);
    }
}
