//! Service control policies over one request, evaluated as AWS Organizations does
//! (AWS Organizations user guide, "SCP evaluation":
//! <https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_scps_evaluation.html>): at every
//! level of the hierarchy from the root down to the account (the root, each OU, the account itself) the action must
//! be allowed by some SCP attached at that level, and no SCP at any level may deny it. Each statement is matched as
//! an identity policy's is (`policy_eval::evaluate_in`), with the conditions its request context decides.
//!
//! Who is subject is for the caller of [`evaluate`] to decide (the `organisation` module): the management account
//! is not, and what service-linked roles do is not, while the caller's own `iam:CreateServiceLinkedRole` is ("SCP
//! effects on permissions":
//! <https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_scps.html#scp-effects-on-permissions>).

use serde_json::Value;

use super::conditions::Context;
use super::{evaluate_in, SourcePolicy, Verdict};

/// One SCP as Organizations describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scp {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) document: Value,
}

/// One level of the hierarchy: where the policies are attached ("the root", "OU /workloads/dev", "the account")
/// and the SCPs attached there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Level {
    pub(crate) target: String,
    pub(crate) policies: Vec<Scp>,
}

/// The SCPs' verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScpVerdict {
    Allowed,
    /// `policy` (name, id) denies it explicitly at `at`; or, with `policy` `None`, no SCP attached at `at` allows
    /// it (an allow list that leaves it out).
    Denied {
        policy: Option<(String, String)>,
        at: String,
    },
    /// A condition the request context does not decide.
    Unverified {
        reason: String,
    },
}

/// `levels` from the root down to the account.
pub(crate) fn evaluate(levels: &[Level], action: &str, resource: &str, context: &Context) -> ScpVerdict {
    let mut unverified = Vec::new();
    let mut implicit: Option<&Level> = None;
    for level in levels {
        let labels: Vec<String> = level.policies.iter().map(|p| format!("SCP {} ({})", p.name, p.id)).collect();
        let sources: Vec<SourcePolicy<'_>> = level
            .policies
            .iter()
            .zip(&labels)
            .map(|(p, label)| SourcePolicy { label: label.clone(), document: &p.document })
            .collect();
        let evaluation = evaluate_in(&sources, action, resource, Some(context));
        match evaluation.verdict {
            Verdict::Allowed => {}
            // An explicit deny at any level decides, whatever the other levels say.
            Verdict::Denied { explicit: true } => {
                let by = evaluation.decided_by.first().and_then(|statement| {
                    level.policies.iter().zip(&labels).find(|(_, l)| statement.starts_with(l.as_str()))
                });
                return ScpVerdict::Denied {
                    policy: by.map(|(p, _)| (p.name.clone(), p.id.clone())),
                    at: level.target.clone(),
                };
            }
            Verdict::Denied { explicit: false } => {
                implicit.get_or_insert(level);
            }
            Verdict::Unverified { reason } => unverified.push(format!("at {}: {reason}", level.target)),
        }
    }
    if let Some(level) = implicit {
        // Nothing at this level allows it. A conditional Deny elsewhere could only make it explicit.
        return ScpVerdict::Denied { policy: None, at: level.target.clone() };
    }
    if !unverified.is_empty() {
        return ScpVerdict::Unverified { reason: unverified.join("; ") };
    }
    ScpVerdict::Allowed
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ROLE: &str = "arn:aws:iam::111122223333:role/wf-batch";

    fn scp(id: &str, name: &str, statements: Value) -> Scp {
        Scp { id: id.into(), name: name.into(), document: json!({"Version": "2012-10-17", "Statement": statements}) }
    }

    fn full() -> Scp {
        scp("p-FullAWSAccess", "FullAWSAccess", json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]))
    }

    fn deny_untagged() -> Scp {
        scp(
            "p-deny",
            "RequireTeamTag",
            json!([{"Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*",
                "Condition": {"Null": {"aws:RequestTag/team": "true"}}}]),
        )
    }

    fn level(target: &str, policies: Vec<Scp>) -> Level {
        Level { target: target.into(), policies }
    }

    fn tagged(team: Option<&str>) -> Context {
        let mut entries = vec![("aws:RequestedRegion", vec!["us-east-1".to_string()], false)];
        let mut keys = vec!["wfboot:stack".to_string()];
        if let Some(t) = team {
            entries.push(("aws:RequestTag/team", vec![t.to_string()], false));
            keys.push("team".into());
        }
        entries.push(("aws:TagKeys", keys, true));
        Context::new(&entries, &["aws:RequestTag/", "aws:TagKeys"])
    }

    fn hierarchy(dev: Vec<Scp>) -> Vec<Level> {
        vec![
            level("the root", vec![full()]),
            level("OU /workloads", vec![full()]),
            level("OU /workloads/dev", dev),
            level("the account", vec![full()]),
        ]
    }

    #[test]
    fn a_deny_at_an_ou_names_the_policy_and_where_it_is_attached() {
        let levels = hierarchy(vec![full(), deny_untagged()]);
        assert_eq!(
            evaluate(&levels, "iam:CreateRole", ROLE, &tagged(None)),
            ScpVerdict::Denied {
                policy: Some(("RequireTeamTag".into(), "p-deny".into())),
                at: "OU /workloads/dev".into()
            }
        );
        assert_eq!(evaluate(&levels, "iam:CreateRole", ROLE, &tagged(Some("x"))), ScpVerdict::Allowed);
        assert_eq!(evaluate(&levels, "iam:TagRole", ROLE, &tagged(None)), ScpVerdict::Allowed);
    }

    #[test]
    fn every_level_must_allow_the_action() {
        let s3_only = scp("p-s3", "S3Only", json!([{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]));
        let levels = hierarchy(vec![s3_only]);
        assert_eq!(
            evaluate(&levels, "iam:CreateRole", ROLE, &tagged(None)),
            ScpVerdict::Denied { policy: None, at: "OU /workloads/dev".into() }
        );
        assert_eq!(evaluate(&levels, "s3:GetObject", "arn:aws:s3:::b/k", &tagged(None)), ScpVerdict::Allowed);
        // A level with no policy at all allows nothing.
        let levels = hierarchy(vec![]);
        assert!(matches!(evaluate(&levels, "iam:GetRole", ROLE, &tagged(None)), ScpVerdict::Denied { .. }));
    }

    #[test]
    fn a_condition_the_context_does_not_decide_is_unverified_never_allowed() {
        let by_principal = scp(
            "p-admins",
            "OnlyAdmins",
            json!([{"Effect": "Deny", "Action": "iam:*", "Resource": "*",
                "Condition": {"StringNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Admin"}}}]),
        );
        let levels = hierarchy(vec![full(), by_principal]);
        let ScpVerdict::Unverified { reason } = evaluate(&levels, "iam:CreateRole", ROLE, &tagged(Some("x"))) else {
            panic!("an unknown principal cannot be decided")
        };
        assert!(reason.contains("OU /workloads/dev") && reason.contains("aws:PrincipalArn"), "{reason}");
    }
}
