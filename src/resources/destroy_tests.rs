//! The destroy plan across kinds ([`super::destroy_diff`]).

use std::collections::BTreeSet;

use serde_json::json;

use super::consumers::{Consumer, ConsumerKind, Consumers, LastUsed};
use super::plan::{Action, DestroyPlan, DestroySummary, Kind};
use super::policy::PolicyLinks;
use super::role::RoleLinks;
use super::{destroy_diff as diff, DestroyObserved, Observed, OWNER_TAG};
use crate::resources::instance_profile::ObservedInstanceProfile;
use crate::resources::role::ObservedRole;
use crate::stack::Desired;
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
            tags: Default::default(),
        }],
        roles: vec![
            DesiredRole {
                name: "R".into(),
                path: "/".into(),
                description: String::new(),
                trust: json!({}),
                policy_arns: vec![POLICY.into()],
                permissions_boundary: None,
                tags: Default::default(),
                note: String::new(),
            },
            DesiredRole {
                name: "Theirs".into(),
                path: "/".into(),
                description: String::new(),
                trust: json!({}),
                policy_arns: vec![],
                permissions_boundary: None,
                tags: Default::default(),
                note: String::new(),
            },
        ],
        instance_profiles: vec![DesiredInstanceProfile {
            name: "R".into(),
            path: "/".into(),
            role: "R".into(),
            tags: Default::default(),
        }],
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
        permissions_boundary: None,
        last_used: None,
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
            ..Observed::absent(&desired(), None)
        },
        roles: vec![Some(RoleLinks { instance_profiles: vec!["R".into()], inline_policies: vec![] }), None],
        policies: vec![Some(PolicyLinks {
            other_versions: vec!["v1".into()],
            roles: vec!["R".into(), "Theirs".into()],
            users: vec![],
            groups: vec![],
        })],
        consumers: None,
    }
}

fn ops(plan: &DestroyPlan, kind: Kind, name: &str) -> Vec<String> {
    let r = plan.resources.iter().find(|r| r.kind == kind && r.name == name).unwrap();
    r.changes.iter().map(|c| c.change.operation().to_string()).collect()
}

#[test]
fn only_what_the_stack_owns_is_deleted_and_every_relationship_is_removed_once() {
    let plan = diff(&desired(), &observed(), false, true);
    assert_eq!(ops(&plan, Kind::Policy, "P"), ["DeletePolicyVersion", "DetachRolePolicy", "DeletePolicy"]);
    assert_eq!(
        ops(&plan, Kind::Role, "R"),
        ["RemoveRoleFromInstanceProfile", "DetachRolePolicy", "DetachRolePolicy", "DeleteRole"]
    );
    // The removal from the profile is listed once, with the role.
    assert_eq!(ops(&plan, Kind::InstanceProfile, "R"), ["DeleteInstanceProfile"]);
    let theirs = plan.resources.iter().find(|r| r.name == "Theirs").unwrap();
    assert_eq!(theirs.verdict, Action::LeftAlone);
    assert!(theirs.reason.as_deref().unwrap().contains("not created by wfboot"));
    let slr = plan.resources.iter().find(|r| r.kind == Kind::ServiceLinkedRole).unwrap();
    assert_eq!(slr.verdict, Action::LeftAlone);
    assert!(slr.reason.as_deref().unwrap().contains("--include-service-linked-roles"));
    assert_eq!(plan.resources[0].kind, Kind::UserPolicies);
    assert_eq!(plan.resources[0].verdict, Action::LeftAlone);
    assert_eq!(plan.summary, DestroySummary { delete: 3, left_alone: 3, held_back: 0, absent: 0, changes: 8 });
    let text = plan.to_string();
    assert!(text.contains("detach arn:aws:iam::111122223333:policy/P from role Theirs"), "{text}");
    assert!(text.contains("3 to delete, 3 left alone, 0 absent; 8 write calls."), "{text}");
}

#[test]
fn service_linked_roles_are_deleted_only_when_asked() {
    let plan = diff(&desired(), &observed(), true, false);
    assert_eq!(ops(&plan, Kind::ServiceLinkedRole, "spot.amazonaws.com"), ["DeleteServiceLinkedRole"]);
}

#[test]
fn another_stacks_resource_is_left_alone_and_an_absent_stack_has_nothing_to_do() {
    let mut obs = observed();
    obs.observed.roles[0] = Some(role(tag("other"), &[]));
    obs.roles[0] = None;
    let plan = diff(&desired(), &obs, false, false);
    let r = plan.resources.iter().find(|r| r.name == "R" && r.kind == Kind::Role).unwrap();
    assert_eq!(r.reason.as_deref(), Some("created by wfboot for stack other, not s"));

    let d = desired();
    let empty = DestroyObserved {
        observed: Observed::absent(&d, None),
        roles: vec![None, None],
        policies: vec![None],
        consumers: None,
    };
    let plan = diff(&d, &empty, true, false);
    assert!(!plan.has_changes());
    assert_eq!(plan.summary.absent, 5);
}

fn used_by(kind: ConsumerKind, name: &str, via: &str) -> Consumer {
    Consumer { kind, name: name.into(), via: via.into(), detail: Some("VALID".into()) }
}

/// The stack's role R used by a compute environment; the foreign role Theirs detached from P only with --force.
fn in_use() -> DestroyObserved {
    let mut obs = observed();
    let mut c = Consumers::default();
    c.roles.insert("R".into(), vec![used_by(ConsumerKind::ComputeEnvironment, "gpu-spot", "serviceRole")]);
    obs.consumers = Some(c);
    obs
}

#[test]
fn a_used_role_is_held_back_with_its_profile_and_the_policy_attached_to_it() {
    let plan = diff(&desired(), &in_use(), false, false);
    let get = |kind, name: &str| plan.resources.iter().find(|r| r.kind == kind && r.name == name).unwrap();
    let role = get(Kind::Role, "R");
    assert_eq!((role.verdict, role.changes.len()), (Action::HeldBack, 0));
    assert_eq!(role.consumers[0].to_string(), "compute environment gpu-spot (VALID) as its serviceRole");
    let profile = get(Kind::InstanceProfile, "R");
    assert_eq!(profile.verdict, Action::HeldBack);
    assert_eq!(profile.reason.as_deref(), Some("holds role R, which is held back"));
    let policy = get(Kind::Policy, "P");
    assert_eq!(policy.verdict, Action::HeldBack);
    assert_eq!(policy.reason.as_deref(), Some("attached to role R, which is held back"));
    assert!(!plan.has_changes(), "{plan}");
    assert_eq!(plan.summary.held_back, 3);
    let text = plan.to_string();
    assert!(text.contains("  ! role R"), "{text}");
    assert!(text.contains("      used by compute environment gpu-spot (VALID) as its serviceRole\n"), "{text}");
    assert!(text.contains("3 held back"), "{text}");
}

#[test]
fn a_policy_attached_to_a_role_outside_the_stack_is_held_back_naming_it_unless_forced() {
    let plan = diff(&desired(), &observed(), false, false);
    let policy = plan.resources.iter().find(|r| r.kind == Kind::Policy).unwrap();
    assert_eq!(policy.verdict, Action::HeldBack);
    assert_eq!(policy.consumers.len(), 1);
    assert_eq!(policy.consumers[0].to_string(), "role Theirs");
    // The role of the stack's own is deleted all the same: detaching the policy from it is the role's change.
    assert_eq!(ops(&plan, Kind::Role, "R").last().map(String::as_str), Some("DeleteRole"));

    let forced = diff(&desired(), &observed(), false, true);
    assert_eq!(ops(&forced, Kind::Policy, "P"), ["DeletePolicyVersion", "DetachRolePolicy", "DeletePolicy"]);
    let policy = forced.resources.iter().find(|r| r.kind == Kind::Policy).unwrap();
    assert_eq!(policy.consumers[0].to_string(), "role Theirs", "what --force breaks is still named");
}

#[test]
fn a_failed_lookup_holds_back_every_role_it_could_have_named_as_not_checked() {
    let mut obs = observed();
    let mut c = Consumers::default();
    c.not_checked.push((
        Consumer {
            kind: ConsumerKind::NotChecked,
            name: "Lambda functions".into(),
            via: "lambda:ListFunctions".into(),
            detail: Some("AccessDeniedException".into()),
        },
        super::consumers::Uses::Roles,
    ));
    obs.consumers = Some(c);
    let plan = diff(&desired(), &obs, false, false);
    let role = plan.resources.iter().find(|r| r.kind == Kind::Role && r.name == "R").unwrap();
    assert_eq!(role.verdict, Action::HeldBack);
    assert!(role.reason.as_deref().unwrap().starts_with("could not check who uses it"), "{plan}");
    assert!(plan.to_string().contains("used by could not check Lambda functions"), "{plan}");
}

#[test]
fn with_force_a_used_role_is_deleted_and_what_it_breaks_is_named() {
    let plan = diff(&desired(), &in_use(), false, true);
    let role = plan.resources.iter().find(|r| r.kind == Kind::Role && r.name == "R").unwrap();
    assert_eq!(role.verdict, Action::Delete);
    assert_eq!(role.consumers.len(), 1);
    assert!(role.notes.iter().any(|n| n.contains("deleted anyway (--force)")), "{plan}");
    assert_eq!(plan.summary.held_back, 0);
}

#[test]
fn a_role_s_last_use_is_shown_and_another_region_is_said() {
    let mut obs = observed();
    obs.observed.roles[0].as_mut().unwrap().last_used =
        Some(LastUsed { date: "2024-05-01T10:00:00Z".into(), region: Some("eu-west-1".into()) });
    let plan = diff(&desired(), &obs, false, true);
    let text = plan.to_string();
    assert!(text.contains("      last used 2024-05-01T10:00:00Z in eu-west-1\n"), "{text}");
    assert!(text.contains("last used in eu-west-1: what uses it there is not looked up"), "{text}");
    let json = serde_json::to_value(&plan).unwrap();
    let role = json["resources"].as_array().unwrap().iter().find(|r| r["name"] == "R" && r["kind"] == "role").unwrap();
    assert_eq!(role["last_used"], json!({"date": "2024-05-01T10:00:00Z", "region": "eu-west-1"}));
}
