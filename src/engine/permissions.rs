//! The IAM permissions a plan needs: derived from the plan itself, change by change, so `check` asks about
//! exactly what `bootstrap` will do — with the request context each write call will carry, so that conditional
//! grants (`iam:PassedToService`, `iam:AWSServiceName`, ...) are judged as AWS will judge the real call.

use std::collections::BTreeMap;

use crate::resources::access::{iam_region, trusted_services, ContextEntry, Permission};
use crate::resources::plan::{Change, Plan};
use crate::resources::OWNER_TAG;
use crate::stack::Desired;

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
    // Every write is an IAM request: aws:RequestedRegion is IAM's region. Creates carry the ownership tag
    // (CreateRole/CreatePolicy/CreateInstanceProfile with Tags), so aws:RequestTag/wfboot:stack and aws:TagKeys
    // (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_iam-tags.html#access_iam-tags_control-tags).
    let region = ContextEntry::one("aws:RequestedRegion", iam_region(partition));
    let tagged =
        |p: Permission| {
            p.with(ContextEntry::one(&format!("aws:RequestTag/{OWNER_TAG}"), desired.stack.clone()))
                .with(ContextEntry { key: "aws:TagKeys".into(), values: vec![OWNER_TAG.to_string()], list: true })
        };
    // Attaching and detaching managed policies: iam:PolicyARN
    // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html).
    let policy = |p: Permission, arn: &str| p.with(ContextEntry::one("iam:PolicyARN", arn));
    let passed_to = |role: &str| {
        desired.roles.iter().find(|r| r.name == role).map(|r| trusted_services(&r.trust)).unwrap_or_default()
    };
    let mut out = Vec::new();
    for change in changes {
        match change {
            Change::CreatePolicy { name, path, .. } => {
                out.push(tagged(Permission::new("iam:CreatePolicy", arn("policy", path, name))));
                out.push(tagged(Permission::new("iam:TagPolicy", arn("policy", path, name))));
            }
            Change::DeletePolicyVersion { policy_arn, .. } => {
                out.push(Permission::new("iam:DeletePolicyVersion", policy_arn))
            }
            Change::CreatePolicyVersion { policy_arn, .. } => {
                out.push(Permission::new("iam:CreatePolicyVersion", policy_arn))
            }
            Change::CreateRole { name, path, .. } => {
                out.push(tagged(Permission::new("iam:CreateRole", arn("role", path, name))));
                out.push(tagged(Permission::new("iam:TagRole", arn("role", path, name))));
            }
            Change::UpdateAssumeRolePolicy { role, .. } => {
                out.push(Permission::new("iam:UpdateAssumeRolePolicy", role_arn(role)))
            }
            Change::UpdateRole { role, .. } => out.push(Permission::new("iam:UpdateRole", role_arn(role))),
            Change::AttachRolePolicy { role, policy_arn } => {
                out.push(policy(Permission::new("iam:AttachRolePolicy", role_arn(role)), policy_arn))
            }
            Change::CreateInstanceProfile { name, path } => {
                out.push(tagged(Permission::new("iam:CreateInstanceProfile", arn("instance-profile", path, name))));
                out.push(tagged(Permission::new("iam:TagInstanceProfile", arn("instance-profile", path, name))));
            }
            Change::RemoveRoleFromInstanceProfile { profile, .. } => {
                out.push(Permission::new("iam:RemoveRoleFromInstanceProfile", profile_arn(profile)))
            }
            Change::AddRoleToInstanceProfile { profile, role } => {
                out.push(Permission::new("iam:AddRoleToInstanceProfile", profile_arn(profile)));
                // "The caller of this operation must be granted the PassRole permission on the IAM role"
                // (https://docs.aws.amazon.com/IAM/latest/APIReference/API_AddRoleToInstanceProfile.html), for the
                // services that will use it: those the role trusts.
                let services = passed_to(role);
                if services.is_empty() {
                    out.push(Permission::new("iam:PassRole", role_arn(role)));
                }
                for service in services {
                    out.push(
                        Permission::new("iam:PassRole", role_arn(role))
                            .with(ContextEntry::one("iam:PassedToService", service)),
                    );
                }
            }
            Change::CreateServiceLinkedRole { service } => out.push(
                Permission::new(
                    "iam:CreateServiceLinkedRole",
                    format!("arn:{partition}:iam::{account_id}:role/aws-service-role/{service}/*"),
                )
                // AWS's own grants (AWSBatchFullAccess, AmazonEC2FullAccess) allow it only with iam:AWSServiceName
                // (https://docs.aws.amazon.com/IAM/latest/UserGuide/using-service-linked-roles.html#service-linked-role-permissions).
                .with(ContextEntry::one("iam:AWSServiceName", service.clone())),
            ),
            Change::AttachUserPolicy { user, policy_arn } => {
                out.push(policy(Permission::new("iam:AttachUserPolicy", arn("user", "/", user)), policy_arn))
            }
            Change::DetachRolePolicy { role, policy_arn } => {
                out.push(policy(Permission::new("iam:DetachRolePolicy", role_arn(role)), policy_arn))
            }
            Change::DeleteRolePolicy { role, .. } => out.push(Permission::new("iam:DeleteRolePolicy", role_arn(role))),
            Change::DetachUserPolicy { user, policy_arn } => {
                out.push(policy(Permission::new("iam:DetachUserPolicy", arn("user", "/", user)), policy_arn))
            }
            Change::DetachGroupPolicy { group, policy_arn } => {
                out.push(policy(Permission::new("iam:DetachGroupPolicy", arn("group", "/", group)), policy_arn))
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
    let mut out: Vec<Permission> = out.into_iter().map(|p| p.with(region.clone())).collect();
    out.sort();
    out.dedup();
    out
}

/// A least-privilege identity policy for running `bootstrap` with this plan: the reads on `*`, the simulation
/// the pre-flight asks for, and each write action on exactly the resources it needs (the account id generalised
/// to `*`); a write that AWS authorises with a service-naming key (`iam:PassedToService`, `iam:AWSServiceName`)
/// gets one statement per service with that condition.
pub(crate) fn minimal_policy(plan: &Plan, desired: &Desired) -> serde_json::Value {
    // (action, condition key and value) -> resources
    type Statement = (String, Option<(String, String)>);
    let mut by_statement: BTreeMap<Statement, Vec<String>> = BTreeMap::new();
    for p in required(plan, desired) {
        let resource = p.resource.replacen(&format!(":{}:", plan.account_id), ":*:", 1);
        let condition = p
            .context
            .iter()
            .find(|e| matches!(e.key.as_str(), "iam:PassedToService" | "iam:AWSServiceName"))
            .and_then(|e| e.values.first().map(|v| (e.key.clone(), v.clone())));
        let resources = by_statement.entry((p.action, condition)).or_default();
        if !resources.contains(&resource) {
            resources.push(resource);
        }
    }
    let mut statements = vec![
        serde_json::json!({
            "Sid": "ReadTheAccount",
            "Effect": "Allow",
            "Action": READ_ACTIONS,
            "Resource": "*"
        }),
        serde_json::json!({
            "Sid": "CheckPermissionsBeforeWriting",
            "Effect": "Allow",
            "Action": "iam:SimulatePrincipalPolicy",
            "Resource": "*"
        }),
    ];
    for ((action, condition), resources) in by_statement {
        let mut sid: String = action.trim_start_matches("iam:").chars().filter(char::is_ascii_alphanumeric).collect();
        let mut statement = serde_json::json!({ "Effect": "Allow", "Action": action, "Resource": resources });
        if let Some((key, service)) = condition {
            let short = service.split('.').next().unwrap_or_default();
            sid.push_str("For");
            sid.extend(short.chars().filter(char::is_ascii_alphanumeric).enumerate().map(|(i, c)| {
                if i == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            }));
            statement["Condition"] = serde_json::json!({ "StringEquals": { key: service } });
        }
        statement["Sid"] = serde_json::Value::String(sid);
        statements.push(statement);
    }
    serde_json::json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{diff, Observed};
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
