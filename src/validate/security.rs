//! Security warnings and suggestions: statements IAM accepts and that work, but grant more than a reviewer would
//! let through. Where IAM Access Analyzer's policy validation has the same check, the finding carries its issue code
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html).

use serde_json::{Map, Value};

use super::actions::glob_match;
use super::resources::could_match;
use super::Severity;
use crate::stack::harden;

/// One piece of advice on a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advice {
    pub(crate) severity: Severity,
    pub(crate) rule: &'static str,
    /// IAM Access Analyzer's issue code for the same check, where it has one.
    pub(crate) code: Option<&'static str>,
    pub(crate) element: String,
    pub(crate) message: String,
    pub(crate) accepted: String,
}

/// The formats of a role's ARN and of a service-linked role's
/// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html#awsidentityandaccessmanagementiam-resources-for-iam-policies).
const ROLE_ARN: &str = "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}";
const SERVICE_LINKED_ROLE_ARN: &str = "arn:${Partition}:iam::${Account}:role/aws-service-role/${Name}";

/// An action that lets the holder hand a role, or create one, for a service.
struct Sensitive {
    action: &'static str,
    rule: &'static str,
    /// Access Analyzer's codes: the action named exactly / through a wildcard, with a wildcard resource; the same
    /// with NotResource.
    star_resource: (&'static str, &'static str),
    not_resource: (&'static str, &'static str),
    /// The format of the resources it acts on.
    format: &'static str,
    /// A condition key that scopes the action to a service, when present the check is satisfied.
    scoping_key: Option<&'static str>,
    risk: &'static str,
    accepted: &'static str,
}

const SENSITIVE: &[Sensitive] = &[
    // https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html#access-analyzer-reference-policy-checks-security-warning-pass-role-with-star-in-resource
    Sensitive {
        action: "iam:PassRole",
        rule: "pass-role",
        star_resource: ("PASS_ROLE_WITH_STAR_IN_RESOURCE", "PASS_ROLE_WITH_STAR_IN_ACTION_AND_RESOURCE"),
        not_resource: ("PASS_ROLE_WITH_NOT_RESOURCE", "PASS_ROLE_WITH_STAR_IN_ACTION_AND_NOT_RESOURCE"),
        format: ROLE_ARN,
        scoping_key: None,
        risk: "lets the holder give any matching role, whatever it may do, to any service that takes one \
               (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html)",
        accepted: "the ARNs of the roles to pass, each with a condition on iam:PassedToService",
    },
    // https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html#access-analyzer-reference-policy-checks-security-warning-create-slr-with-star-in-resource
    Sensitive {
        action: "iam:CreateServiceLinkedRole",
        rule: "create-slr",
        star_resource: ("CREATE_SLR_WITH_STAR_IN_RESOURCE", "CREATE_SLR_WITH_STAR_IN_ACTION_AND_RESOURCE"),
        not_resource: ("CREATE_SLR_WITH_NOT_RESOURCE", "CREATE_SLR_WITH_STAR_IN_ACTION_AND_NOT_RESOURCE"),
        format: SERVICE_LINKED_ROLE_ARN,
        scoping_key: Some("iam:AWSServiceName"),
        risk: "lets the holder create the service-linked role of any service",
        accepted: "the service-linked role's ARN (role/aws-service-role/SERVICE/NAME), or a condition on \
                   iam:AWSServiceName",
    },
];

/// The condition keys a statement tests (any operator), lowercase.
fn condition_keys(s: &Map<String, Value>) -> Vec<String> {
    s.get("Condition")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|ops| ops.values())
        .filter_map(Value::as_object)
        .flat_map(|keys| keys.keys().map(|k| k.to_ascii_lowercase()))
        .collect()
}

/// Advice on one statement of a managed policy. `actions` / `resources` are the entries of Action or NotAction /
/// Resource or NotResource (`not_action`, `not_resource` say which), with their element paths.
pub(crate) fn identity(
    s: &Map<String, Value>,
    actions: &[(String, &str)],
    not_action: bool,
    resources: &[(String, &str)],
    not_resource: bool,
) -> Vec<Advice> {
    let mut out = Vec::new();
    if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return out;
    }
    // "Be careful using NotAction with Allow": it allows every action not listed, of every service, including
    // those AWS adds later (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html).
    if not_action {
        out.push(Advice {
            severity: Severity::Warning,
            rule: "allow-not-action",
            code: None,
            element: "NotAction".into(),
            message: "Allow with NotAction allows every action not listed, of every service, including actions AWS \
                      adds later"
                .into(),
            accepted: "Action with the actions meant (or NotAction in a Deny statement)".into(),
        });
    }
    // "Be careful using NotResource with Allow": it allows every resource not listed, of every service
    // (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notresource.html).
    if not_resource {
        out.push(Advice {
            severity: Severity::Warning,
            rule: "allow-not-resource",
            code: None,
            element: "NotResource".into(),
            message: "Allow with NotResource allows the actions on every resource not listed, in every service".into(),
            accepted: "Resource with the resources meant (or NotResource in a Deny statement)".into(),
        });
    }
    if not_action {
        return out;
    }
    let keys = condition_keys(s);
    for sensitive in SENSITIVE {
        if sensitive.scoping_key.is_some_and(|k| keys.contains(&k.to_ascii_lowercase())) {
            continue;
        }
        let Some((element, written)) = actions.iter().find(|(_, a)| *a == "*" || glob_match(a, sensitive.action))
        else {
            continue;
        };
        let exact = written.eq_ignore_ascii_case(sensitive.action);
        let pick = |(exact_code, star_code): (&'static str, &'static str)| if exact { exact_code } else { star_code };
        let via = if exact { String::new() } else { format!(" (through `{written}`)") };
        if not_resource {
            out.push(Advice {
                severity: Severity::Warning,
                rule: sensitive.rule,
                code: Some(pick(sensitive.not_resource)),
                element: element.clone(),
                message: format!("{}{via} with NotResource {}", sensitive.action, sensitive.risk),
                accepted: sensitive.accepted.into(),
            });
            continue;
        }
        let wide: Vec<&str> =
            resources.iter().map(|(_, r)| *r).filter(|r| r.contains('*') && could_match(r, sensitive.format)).collect();
        if let Some(first) = wide.first() {
            out.push(Advice {
                severity: Severity::Warning,
                rule: sensitive.rule,
                code: Some(pick(sensitive.star_resource)),
                element: element.clone(),
                message: format!("{}{via} on `{first}` {}", sensitive.action, sensitive.risk),
                accepted: sensitive.accepted.into(),
            });
        }
    }
    out
}

/// Advice on one statement of a role's trust policy: a service principal that sends `aws:SourceAccount` and
/// `aws:SourceArn` when it assumes a role ([`harden::SERVICES`], each with its AWS page), trusted without a
/// condition on them, could be made to assume the role on behalf of another account — the confused deputy
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html).
pub(crate) fn trust(s: &Map<String, Value>) -> Vec<Advice> {
    let mut out = Vec::new();
    if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return out;
    }
    let keys = condition_keys(s);
    if ["aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid", "aws:sourceorgpaths"]
        .iter()
        .any(|k| keys.iter().any(|have| have == k))
    {
        return out;
    }
    let services: Vec<(String, &str)> = match s.get("Principal").and_then(|p| p.get("Service")) {
        Some(Value::String(one)) => vec![("Principal.Service".to_string(), one.as_str())],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_str().map(|v| (format!("Principal.Service[{i}]"), v)))
            .collect(),
        _ => Vec::new(),
    };
    for (element, principal) in services {
        let short = harden::short_service(principal);
        let Some(support) = harden::SERVICES.iter().find(|s| s.service == short && s.source_arn.is_some()) else {
            continue;
        };
        out.push(Advice {
            severity: Severity::Suggestion,
            rule: "confused-deputy",
            code: None,
            element,
            message: format!(
                "`{principal}` sends aws:SourceAccount and aws:SourceArn when it assumes the role ({}); without a \
                 condition on them it can be made to assume it for another account's resources",
                support.source
            ),
            accepted: "a condition on aws:SourceAccount and aws:SourceArn: `--harden` adds them".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn statement(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn list<'a>(name: &str, items: &[&'a str]) -> Vec<(String, &'a str)> {
        items.iter().enumerate().map(|(i, a)| (format!("{name}[{i}]"), *a)).collect()
    }

    #[test]
    fn pass_role_and_create_slr_on_a_wildcard_carry_access_analyzers_codes() {
        let s = statement(json!({"Effect": "Allow"}));
        let codes = |actions: &[&str], resources: &[&str], not_resource: bool| -> Vec<Option<&'static str>> {
            identity(&s, &list("Action", actions), false, &list("Resource", resources), not_resource)
                .into_iter()
                .map(|a| a.code)
                .collect()
        };
        assert_eq!(codes(&["iam:PassRole"], &["*"], false), [Some("PASS_ROLE_WITH_STAR_IN_RESOURCE")]);
        assert_eq!(
            codes(&["iam:PassRole"], &["arn:aws:iam::123456789012:role/*"], false),
            [Some("PASS_ROLE_WITH_STAR_IN_RESOURCE")]
        );
        assert_eq!(codes(&["iam:PassRole"], &["arn:aws:iam::123456789012:role/R"], false), []);
        assert_eq!(codes(&["iam:PassRole"], &["arn:aws:s3:::*"], false), [], "not a role");
        assert_eq!(codes(&["iam:Pass*"], &["*"], false), [Some("PASS_ROLE_WITH_STAR_IN_ACTION_AND_RESOURCE")]);
        assert_eq!(codes(&["iam:CreateServiceLinkedRole"], &["*"], false), [Some("CREATE_SLR_WITH_STAR_IN_RESOURCE")]);
        assert_eq!(
            codes(&["iam:PassRole"], &["arn:aws:iam::123456789012:role/R"], true),
            [None, Some("PASS_ROLE_WITH_NOT_RESOURCE")]
        );
        let scoped = statement(
            json!({"Effect": "Allow", "Condition": {"StringEquals": {"iam:AWSServiceName": "batch.amazonaws.com"}}}),
        );
        assert!(identity(
            &scoped,
            &list("Action", &["iam:CreateServiceLinkedRole"]),
            false,
            &list("Resource", &["*"]),
            false
        )
        .is_empty());
        let deny = statement(json!({"Effect": "Deny"}));
        assert!(identity(&deny, &list("Action", &["iam:PassRole"]), false, &list("Resource", &["*"]), true).is_empty());
    }

    #[test]
    fn allow_with_not_action_or_not_resource_is_a_warning() {
        let s = statement(json!({"Effect": "Allow"}));
        let rules: Vec<&str> =
            identity(&s, &list("NotAction", &["iam:*"]), true, &list("NotResource", &["arn:aws:s3:::b"]), true)
                .into_iter()
                .map(|a| a.rule)
                .collect();
        assert_eq!(rules, ["allow-not-action", "allow-not-resource"]);
    }

    #[test]
    fn service_principals_that_send_source_keys_get_a_suggestion_until_conditioned() {
        let bare = statement(
            json!({"Effect": "Allow", "Principal": {"Service": ["batch.amazonaws.com", "ec2.amazonaws.com"]}, "Action": "sts:AssumeRole"}),
        );
        let advice = trust(&bare);
        assert_eq!(advice.len(), 1, "{advice:?}");
        assert_eq!(
            (advice[0].severity, advice[0].rule, advice[0].element.as_str()),
            (Severity::Suggestion, "confused-deputy", "Principal.Service[0]")
        );
        assert!(advice[0].accepted.contains("--harden"));
        let hardened = statement(
            json!({"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}),
        );
        assert!(trust(&hardened).is_empty());
    }
}
