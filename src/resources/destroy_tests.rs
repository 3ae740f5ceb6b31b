//! The destroy plan across kinds ([`super::destroy_diff`]).

use std::collections::BTreeSet;

use serde_json::json;

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
    assert_eq!(theirs.verdict, Action::LeftAlone);
    assert!(theirs.reason.as_deref().unwrap().contains("not created by wfboot"));
    let slr = plan.resources.iter().find(|r| r.kind == Kind::ServiceLinkedRole).unwrap();
    assert_eq!(slr.verdict, Action::LeftAlone);
    assert!(slr.reason.as_deref().unwrap().contains("--include-service-linked-roles"));
    assert_eq!(plan.resources[0].kind, Kind::UserPolicies);
    assert_eq!(plan.resources[0].verdict, Action::LeftAlone);
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
