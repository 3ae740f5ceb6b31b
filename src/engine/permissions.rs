//! The IAM permissions a plan needs: derived from the plan itself, change by change, so `check` asks about
//! exactly what `bootstrap` will do.

use std::collections::BTreeMap;

use serde::Serialize;

use super::plan::{Change, Plan};
use crate::stack::Desired;

/// One action on one resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct Permission {
    pub(crate) action: String,
    pub(crate) resource: String,
}

impl Permission {
    fn new(action: &str, resource: impl Into<String>) -> Permission {
        Permission { action: action.to_string(), resource: resource.into() }
    }
}

/// What observing the account needs (plan and every bootstrap), on any resource.
pub(crate) const READ_ACTIONS: &[&str] = &[
    "iam:GetRole",
    "iam:ListAttachedRolePolicies",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:ListPolicyVersions",
    "iam:GetInstanceProfile",
    "iam:ListRoles",
    "iam:ListAttachedUserPolicies",
    "iam:ListGroupsForUser",
    "iam:ListAttachedGroupPolicies",
    "iam:GetUser",
];

/// The permissions each change of `plan` needs, without duplicates, in a stable order.
pub(crate) fn required(plan: &Plan, desired: &Desired) -> Vec<Permission> {
    required_for(plan.changes().map(|c| &c.change), &plan.partition, &plan.account_id, desired)
}

/// The permissions `changes` (of a plan for `account_id` in `partition`) need; `destroy`'s plan is not a [`Plan`].
pub(crate) fn required_for<'a>(
    changes: impl Iterator<Item = &'a Change>,
    partition: &str,
    account_id: &str,
    desired: &Desired,
) -> Vec<Permission> {
    let arn = |kind: &str, path: &str, name: &str| format!("arn:{partition}:iam::{account_id}:{kind}{path}{name}");
    let role_arn = |name: &str| {
        let path = desired.roles.iter().find(|r| r.name == name).map_or("/", |r| r.path.as_str());
        arn("role", path, name)
    };
    let profile_arn = |name: &str| {
        let path = desired.instance_profiles.iter().find(|p| p.name == name).map_or("/", |p| p.path.as_str());
        arn("instance-profile", path, name)
    };
    let mut out = Vec::new();
    for change in changes {
        match change {
            Change::CreatePolicy { name, path, .. } => {
                out.push(Permission::new("iam:CreatePolicy", arn("policy", path, name)));
                out.push(Permission::new("iam:TagPolicy", arn("policy", path, name)));
            }
            Change::DeletePolicyVersion { policy_arn, .. } => {
                out.push(Permission::new("iam:DeletePolicyVersion", policy_arn))
            }
            Change::CreatePolicyVersion { policy_arn, .. } => {
                out.push(Permission::new("iam:CreatePolicyVersion", policy_arn))
            }
            Change::CreateRole { name, path, .. } => {
                out.push(Permission::new("iam:CreateRole", arn("role", path, name)));
                out.push(Permission::new("iam:TagRole", arn("role", path, name)));
            }
            Change::UpdateAssumeRolePolicy { role, .. } => {
                out.push(Permission::new("iam:UpdateAssumeRolePolicy", role_arn(role)))
            }
            Change::UpdateRole { role, .. } => out.push(Permission::new("iam:UpdateRole", role_arn(role))),
            Change::AttachRolePolicy { role, .. } => out.push(Permission::new("iam:AttachRolePolicy", role_arn(role))),
            Change::CreateInstanceProfile { name, path } => {
                out.push(Permission::new("iam:CreateInstanceProfile", arn("instance-profile", path, name)));
                out.push(Permission::new("iam:TagInstanceProfile", arn("instance-profile", path, name)));
            }
            Change::RemoveRoleFromInstanceProfile { profile, .. } => {
                out.push(Permission::new("iam:RemoveRoleFromInstanceProfile", profile_arn(profile)))
            }
            Change::AddRoleToInstanceProfile { profile, role } => {
                out.push(Permission::new("iam:AddRoleToInstanceProfile", profile_arn(profile)));
                // AWS requires PassRole on the role that goes into the profile.
                out.push(Permission::new("iam:PassRole", role_arn(role)));
            }
            Change::CreateServiceLinkedRole { service } => out.push(Permission::new(
                "iam:CreateServiceLinkedRole",
                format!("arn:{partition}:iam::{account_id}:role/aws-service-role/{service}/*"),
            )),
            Change::AttachUserPolicy { user, .. } => {
                out.push(Permission::new("iam:AttachUserPolicy", arn("user", "/", user)))
            }
            Change::DetachRolePolicy { role, .. } => out.push(Permission::new("iam:DetachRolePolicy", role_arn(role))),
            Change::DeleteRolePolicy { role, .. } => out.push(Permission::new("iam:DeleteRolePolicy", role_arn(role))),
            Change::DetachUserPolicy { user, .. } => {
                out.push(Permission::new("iam:DetachUserPolicy", arn("user", "/", user)))
            }
            Change::DetachGroupPolicy { group, .. } => {
                out.push(Permission::new("iam:DetachGroupPolicy", arn("group", "/", group)))
            }
            Change::DeletePolicy { policy_arn } => out.push(Permission::new("iam:DeletePolicy", policy_arn)),
            Change::DeleteInstanceProfile { name } => {
                out.push(Permission::new("iam:DeleteInstanceProfile", profile_arn(name)))
            }
            Change::DeleteRole { name } => out.push(Permission::new("iam:DeleteRole", role_arn(name))),
            Change::DeleteServiceLinkedRole { service, .. } => {
                let role = format!("arn:{partition}:iam::{account_id}:role/aws-service-role/{service}/*");
                out.push(Permission::new("iam:DeleteServiceLinkedRole", role.clone()));
                out.push(Permission::new("iam:GetServiceLinkedRoleDeletionStatus", role));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A least-privilege identity policy for running `bootstrap` with this plan: the reads on `*`, and each
/// write action on exactly the resources it needs (the account id generalised to `*`).
pub(crate) fn minimal_policy(plan: &Plan, desired: &Desired) -> serde_json::Value {
    let mut by_action: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in required(plan, desired) {
        let resource = p.resource.replacen(&format!(":{}:", plan.account_id), ":*:", 1);
        by_action.entry(p.action).or_default().push(resource);
    }
    let mut statements = vec![serde_json::json!({
        "Sid": "ReadTheAccount",
        "Effect": "Allow",
        "Action": READ_ACTIONS,
        "Resource": "*"
    })];
    for (action, resources) in by_action {
        let sid: String = action.trim_start_matches("iam:").chars().filter(char::is_ascii_alphanumeric).collect();
        statements.push(serde_json::json!({ "Sid": sid, "Effect": "Allow", "Action": action, "Resource": resources }));
    }
    serde_json::json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{diff, Observed};
    use crate::stack::{Stack, Target};

    fn fresh_plan(stack: &str) -> (Plan, Desired) {
        let target = Target { partition: "aws".into(), account_id: "111122223333".into(), region: "us-east-1".into() };
        let desired = Stack::resolve(Some(stack)).unwrap().render(&target).unwrap();
        let observed = Observed {
            user: Some(Default::default()),
            policies: vec![None; desired.policies.len()],
            roles: vec![None; desired.roles.len()],
            instance_profiles: vec![None; desired.instance_profiles.len()],
            service_linked_roles: vec![None; desired.service_linked_roles.len()],
        };
        (diff(&desired, &observed, Some("demo")), desired)
    }

    #[test]
    fn a_fresh_plan_needs_create_tag_attach_and_pass_role_on_exact_resources() {
        let (plan, desired) = fresh_plan("slim-workflow");
        let perms = required(&plan, &desired);
        let has = |a: &str, r: &str| perms.iter().any(|p| p.action == a && p.resource == r);
        assert!(has("iam:CreateRole", "arn:aws:iam::111122223333:role/AWSBatchServiceRole"));
        assert!(has("iam:TagRole", "arn:aws:iam::111122223333:role/AWSBatchServiceRole"));
        assert!(has("iam:PassRole", "arn:aws:iam::111122223333:role/SLIM-Extras_ECS_for_EC2"));
        assert!(has(
            "iam:CreateServiceLinkedRole",
            "arn:aws:iam::111122223333:role/aws-service-role/spot.amazonaws.com/*"
        ));
        assert!(has("iam:AttachUserPolicy", "arn:aws:iam::111122223333:user/demo"));
        assert!(has("iam:CreatePolicy", "arn:aws:iam::111122223333:policy/LambdaBatchExecutionPolicy"));
    }

    /// docs/operator-policy.json is what the README publishes: it must be what the code derives.
    #[test]
    fn the_published_minimal_operator_policy_is_the_derived_one() {
        let (plan, desired) = fresh_plan("slim-workflow");
        let derived = minimal_policy(&plan, &desired);
        let published: serde_json::Value = serde_json::from_str(include_str!("../../docs/operator-policy.json"))
            .expect("docs/operator-policy.json is JSON");
        assert_eq!(
            published,
            derived,
            "update docs/operator-policy.json to:\n{}",
            serde_json::to_string_pretty(&derived).unwrap()
        );
    }
}
