//! The IAM permissions a plan needs: derived from the plan itself, change by change, so `check` asks about
//! exactly what `bootstrap` will do — with the request context each write call will carry, so that conditional
//! grants (`iam:PassedToService`, `iam:AWSServiceName`, ...) are judged as AWS will judge the real call.

use std::collections::BTreeMap;

use crate::resources::access::{iam_region, ContextEntry, Permission, Scope};
use crate::resources::plan::{Change, Plan};
use crate::resources::READ_ACTIONS;
use crate::stack::Desired;

/// The permissions each change of `plan` needs, without duplicates, in a stable order.
pub(crate) fn required(plan: &Plan, desired: &Desired) -> Vec<Permission> {
    required_for(plan.changes().map(|c| &c.change), &plan.partition, &plan.account_id, desired)
}

/// The permissions `changes` (of a plan for `account_id` in `partition`) need, each as its kind says; every
/// write is an IAM request, so `aws:RequestedRegion` is IAM's region.
pub(crate) fn required_for<'a>(
    changes: impl Iterator<Item = &'a Change>,
    partition: &str,
    account_id: &str,
    desired: &Desired,
) -> Vec<Permission> {
    let scope = Scope { partition, account_id, desired };
    let region = ContextEntry::one("aws:RequestedRegion", iam_region(partition));
    let mut out: Vec<Permission> =
        changes.flat_map(|c| c.permissions(&scope)).map(|p| p.with(region.clone())).collect();
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
        serde_json::json!({
            "Sid": crate::organisation::READS_SID,
            "Effect": "Allow",
            "Action": crate::organisation::READ_ACTIONS,
            "Resource": "*"
        }),
    ];
    if !desired.instance_profiles.is_empty() {
        statements.extend(instance_statements(&plan.partition));
    }
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

/// With an instance profile in the stack: what `check` reads about the instances that have it and about the account's
/// defaults for new instances (unverified rows when refused, so optional), and what `wfboot attach --require-imdsv2`
/// reads and makes: the instance's MetadataNoToken metric and the one write, ModifyInstanceMetadataOptions on an
/// instance. ec2:GetInstanceMetadataDefaults, the Describe reads and cloudwatch:GetMetricStatistics have no
/// resource-level permissions (Service Authorization Reference, Amazon EC2 and Amazon CloudWatch:
/// https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html).
fn instance_statements(partition: &str) -> [serde_json::Value; 2] {
    [
        serde_json::json!({
            "Sid": "OptionalReadTheInstancesMetadataOptions",
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeIamInstanceProfileAssociations",
                "ec2:DescribeInstances",
                "ec2:GetInstanceMetadataDefaults",
                "cloudwatch:GetMetricStatistics"
            ],
            "Resource": "*"
        }),
        serde_json::json!({
            "Sid": "OptionalRequireImdsv2OnInstances",
            "Effect": "Allow",
            "Action": "ec2:ModifyInstanceMetadataOptions",
            "Resource": format!("arn:{partition}:ec2:*:*:instance/*")
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{diff, Observed};
    use crate::stack::{Stack, Target};

    fn fresh_plan(stack: &str) -> (Plan, Desired) {
        let target = Target { partition: "aws".into(), account_id: "111122223333".into(), region: "us-east-1".into() };
        let desired = Stack::resolve(Some(stack)).unwrap().render(&target).unwrap();
        let observed = Observed::absent(&desired, Some("demo"));
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
