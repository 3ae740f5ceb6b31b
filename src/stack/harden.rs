//! `--harden`: confused-deputy conditions on the trust documents of the stack's service roles.
//!
//! Each service-role trust statement gets `StringEquals aws:SourceAccount = <account>` and, where the service
//! documents it, `ArnLike aws:SourceArn = arn:<partition>:<service>:*:<account>:<resource>*`, so that the service
//! assumes the role only on behalf of this account's own resources. Only services whose AWS documentation says they
//! send these keys when they assume a role are conditioned ([`SERVICES`]); any other service principal is left
//! unconditioned and the note says why, because a condition on a key a service does not send makes the role
//! unusable. Service-linked roles are not in `Desired::roles`: their trust documents are AWS's, never touched.
//!
//! A transformation of documents, nothing more: with `--harden` the engine plans `UpdateAssumeRolePolicy` for roles
//! whose trust lacks the conditions, exactly as for any other trust drift.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{minified_len, Desired, TRUST_DOCUMENT_MAX};
use crate::error::{Error, Result};

/// A service wfboot knows about, from the AWS documentation at `source`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Support {
    /// The principal's first label: `batch` for `batch.amazonaws.com`.
    pub(crate) service: &'static str,
    /// `aws:SourceArn` pattern with `{partition}` and `{account}`, or `None`: the keys are not documented for the
    /// service's role trust, and the role is left unconditioned.
    pub(crate) source_arn: Option<&'static str>,
    /// What the pattern covers, or why the service is left unconditioned.
    pub(crate) note: &'static str,
    pub(crate) source: &'static str,
}

/// The researched table (docs/stack-format.md "Hardening trust documents"). The region in `aws:SourceArn` is `*`:
/// IAM roles are global, and a region would make the role unusable from every other region (AWS lists `*` as a
/// valid scope).
pub(crate) const SERVICES: &[Support] = &[
    Support {
        service: "batch",
        source_arn: Some("arn:{partition}:batch:*:{account}:*"),
        note: "the account's Batch compute environments and jobs",
        source: "https://docs.aws.amazon.com/batch/latest/userguide/cross-service-confused-deputy-prevention.html",
    },
    Support {
        service: "states",
        source_arn: Some("arn:{partition}:states:*:{account}:stateMachine:*"),
        note: "the account's state machines",
        source: "https://docs.aws.amazon.com/step-functions/latest/dg/procedure-create-iam-role.html#prevent-cross-service-confused-deputy",
    },
    Support {
        service: "spotfleet",
        source_arn: Some("arn:{partition}:ec2:*:{account}:spot-fleet-request/sfr-*"),
        note: "the account's Spot Fleet requests",
        source: "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-fleet-prerequisites.html",
    },
    Support {
        service: "ec2",
        source_arn: None,
        note: "EC2 does not send aws:SourceAccount or aws:SourceArn when it assumes an instance profile's role: a \
               condition on them would make the role unusable",
        source: "https://github.com/prowler-cloud/prowler/issues/2810",
    },
    Support {
        service: "lambda",
        source_arn: None,
        note: "AWS documents no confused-deputy condition for a Lambda execution role's trust (aws:SourceArn is \
               documented for function resource policies only), so wfboot does not risk a role Lambda cannot assume",
        source: "https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html",
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// The conditions were added.
    Conditioned,
    /// The stack's trust document already had them.
    AlreadyConditioned,
    /// The service does not support the keys (or wfboot does not know that it does).
    LeftUnconditioned,
}

/// What `--harden` did for one service principal of one role.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Note {
    pub(crate) role: String,
    /// The service principal as the trust document names it.
    pub(crate) service: String,
    pub(crate) outcome: Outcome,
    /// The conditions the statement has for the service afterwards, when conditioned.
    pub(crate) condition: Option<Value>,
    /// What the condition allows, or why the service is left unconditioned.
    pub(crate) reason: String,
    /// The documentation the decision rests on, when wfboot knows the service.
    pub(crate) source: Option<String>,
}

/// Harden every role's trust document of `desired` in place; one note per role and service principal.
pub(crate) fn harden(desired: &mut Desired) -> Result<Vec<Note>> {
    let (partition, account) = (desired.target.partition.clone(), desired.target.account_id.clone());
    let mut notes = Vec::new();
    for role in &mut desired.roles {
        let (trust, found) = harden_trust(&role.trust, &partition, &account);
        let size = minified_len(&trust);
        if size > TRUST_DOCUMENT_MAX {
            return Err(Error::input(format!(
                "role `{}`: with --harden its trust document is {size} characters, over IAM's default limit of \
                 {TRUST_DOCUMENT_MAX}",
                role.name
            ))
            .with_help("run without --harden, or shorten the trust document"));
        }
        role.trust = trust;
        notes.extend(found.into_iter().map(|mut n| {
            n.role = role.name.clone();
            n
        }));
    }
    Ok(notes)
}

/// `doc` with the conditions added to its service statements, for an account and partition given as values or as
/// placeholders (`{{account_id}}`, `{{partition}}`: `export` turns those into pseudo parameters). The notes'
/// `role` is empty. Statements naming several services are split into one statement per service, so that a
/// supported service is conditioned without breaking an unsupported one beside it.
pub(crate) fn harden_trust(doc: &Value, partition: &str, account: &str) -> (Value, Vec<Note>) {
    let Some(statements) = doc.get("Statement") else { return (doc.clone(), Vec::new()) };
    let statements: Vec<Value> = match statements {
        Value::Array(items) => items.clone(),
        single => vec![single.clone()],
    };
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for statement in statements {
        let Some(services) = service_principals(&statement) else {
            out.push(statement);
            continue;
        };
        let split = services.len() > 1;
        for service in services {
            let mut s = statement.clone();
            if split {
                s["Principal"] = json!({ "Service": service });
                if let Some(sid) = s.get("Sid").and_then(Value::as_str).filter(|sid| !sid.is_empty()) {
                    s["Sid"] = json!(format!("{sid}{}", sid_suffix(short_service(&service))));
                }
            }
            notes.push(condition(&mut s, &service, partition, account));
            out.push(s);
        }
    }
    let mut doc = doc.clone();
    doc["Statement"] = Value::Array(out);
    (doc, notes)
}

/// The service principals of an `Allow` `sts:AssumeRole` statement that trusts services only; `None` for any other.
fn service_principals(statement: &Value) -> Option<Vec<String>> {
    if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return None;
    }
    let actions = match statement.get("Action")? {
        Value::String(a) => vec![a.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    if !actions.iter().any(|a| a.eq_ignore_ascii_case("sts:AssumeRole")) {
        return None;
    }
    let principal = statement.get("Principal")?.as_object()?;
    if principal.len() != 1 {
        return None;
    }
    match principal.get("Service")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => {
            let services: Vec<String> = items.iter().filter_map(Value::as_str).map(str::to_string).collect();
            (services.len() == items.len() && !services.is_empty()).then_some(services)
        }
        _ => None,
    }
}

/// `batch` for `batch.amazonaws.com`, `ec2.amazonaws.com.cn` or the template `{{principal:batch}}`.
pub(crate) fn short_service(principal: &str) -> &str {
    let principal = principal.trim();
    if let Some(inner) = principal.strip_prefix("{{").and_then(|p| p.strip_suffix("}}")) {
        let service = inner.trim().strip_prefix("principal:").unwrap_or(inner).trim();
        return service.split('.').next().unwrap_or(service);
    }
    principal.split('.').next().unwrap_or(principal)
}

fn sid_suffix(service: &str) -> String {
    let mut out = String::new();
    for word in service.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    out
}

/// Add the conditions for `service` to a single-service statement.
fn condition(statement: &mut Value, service: &str, partition: &str, account: &str) -> Note {
    let short = short_service(service);
    let known = SERVICES.iter().find(|s| s.service == short);
    let mut note = Note {
        role: String::new(),
        service: service.to_string(),
        outcome: Outcome::LeftUnconditioned,
        condition: None,
        reason: String::new(),
        source: known.map(|k| k.source.to_string()),
    };
    let Some(Support { source_arn: Some(pattern), note: covers, .. }) = known else {
        note.reason = match known {
            Some(k) => k.note.to_string(),
            None => format!(
                "{service} is not in wfboot's table of services documented to send aws:SourceAccount and \
                 aws:SourceArn (docs/stack-format.md \"Hardening trust documents\")"
            ),
        };
        return note;
    };
    let arn = pattern.replace("{partition}", partition).replace("{account}", account);
    let conditions = statement
        .as_object_mut()
        .expect("a statement with a Principal is an object")
        .entry("Condition")
        .or_insert_with(|| Value::Object(Map::new()));
    if !conditions.is_object() {
        note.reason = "the statement's Condition is not an object; left as written".into();
        return note;
    }
    let has = |conditions: &Value, key: &str| {
        conditions
            .as_object()
            .into_iter()
            .flatten()
            .any(|(_, keys)| keys.as_object().is_some_and(|keys| keys.keys().any(|k| k.eq_ignore_ascii_case(key))))
    };
    let mut added = false;
    if !has(conditions, "aws:SourceAccount") {
        insert(conditions, "StringEquals", "aws:SourceAccount", json!(account));
        added = true;
    }
    if !has(conditions, "aws:SourceArn") {
        insert(conditions, "ArnLike", "aws:SourceArn", json!(arn));
        added = true;
    }
    note.outcome = if added { Outcome::Conditioned } else { Outcome::AlreadyConditioned };
    note.condition = Some(conditions.clone());
    note.reason = format!("aws:SourceAccount {account}, aws:SourceArn {arn} ({covers})");
    note
}

fn insert(conditions: &mut Value, operator: &str, key: &str, value: Value) {
    let operators = conditions.as_object_mut().expect("checked to be an object");
    let keys = operators.entry(operator).or_insert_with(|| Value::Object(Map::new()));
    if let Some(keys) = keys.as_object_mut() {
        keys.insert(key.to_string(), value);
    }
}

/// The notes as text, after the plan.
pub(crate) fn text(notes: &[Note], service_linked_roles: usize) -> String {
    let mut out =
        String::from("Hardening (--harden): confused-deputy conditions on the service roles' trust documents\n");
    let w_role = notes.iter().map(|n| n.role.len()).max().unwrap_or(0);
    let w_service = notes.iter().map(|n| n.service.len()).max().unwrap_or(0);
    for n in notes {
        let what = match n.outcome {
            Outcome::Conditioned => format!("conditioned: {}", n.reason),
            Outcome::AlreadyConditioned => format!("already conditioned in the stack: {}", n.reason),
            Outcome::LeftUnconditioned => format!("left unconditioned: {}", n.reason),
        };
        out += &format!("  role {:<w_role$}  {:<w_service$}  {what}\n", n.role, n.service);
    }
    if service_linked_roles > 0 {
        out += "  service-linked roles: their trust documents are AWS's and are never changed\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(service: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})
    }

    #[test]
    fn each_documented_service_gets_its_source_account_and_source_arn() {
        for (service, arn) in [
            ("batch.amazonaws.com", "arn:aws:batch:*:111122223333:*"),
            ("states.amazonaws.com", "arn:aws:states:*:111122223333:stateMachine:*"),
            ("spotfleet.amazonaws.com", "arn:aws:ec2:*:111122223333:spot-fleet-request/sfr-*"),
        ] {
            let (doc, notes) = harden_trust(&trust(json!(service)), "aws", "111122223333");
            assert_eq!(
                doc["Statement"][0]["Condition"],
                json!({"StringEquals": {"aws:SourceAccount": "111122223333"}, "ArnLike": {"aws:SourceArn": arn}}),
                "{service}"
            );
            assert_eq!(notes.len(), 1);
            assert_eq!(notes[0].outcome, Outcome::Conditioned, "{service}");
            assert!(notes[0].source.as_deref().unwrap().starts_with("https://docs.aws.amazon.com/"), "{service}");
        }
    }

    #[test]
    fn ec2_lambda_and_unknown_services_are_left_unconditioned_and_say_why() {
        for service in ["ec2.amazonaws.com", "ec2.amazonaws.com.cn", "lambda.amazonaws.com", "glue.amazonaws.com"] {
            let doc = trust(json!(service));
            let (hardened, notes) = harden_trust(&doc, "aws", "111122223333");
            assert_eq!(hardened, doc, "{service}");
            assert_eq!(notes[0].outcome, Outcome::LeftUnconditioned, "{service}");
            assert!(!notes[0].reason.is_empty());
        }
        let (_, notes) = harden_trust(&trust(json!("glue.amazonaws.com")), "aws", "111122223333");
        assert!(notes[0].reason.contains("not in wfboot's table") && notes[0].source.is_none());
    }

    #[test]
    fn a_statement_with_a_supported_and_an_unsupported_service_is_split() {
        let doc = json!({"Version": "2012-10-17", "Statement": {"Sid": "Trust", "Effect": "Allow",
            "Principal": {"Service": ["ec2.amazonaws.com", "batch.amazonaws.com"]}, "Action": "sts:AssumeRole"}});
        let (hardened, notes) = harden_trust(&doc, "aws-cn", "111122223333");
        let s = hardened["Statement"].as_array().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["Principal"], json!({"Service": "ec2.amazonaws.com"}));
        assert_eq!(s[0]["Sid"], "TrustEc2");
        assert!(s[0].get("Condition").is_none());
        assert_eq!(s[1]["Sid"], "TrustBatch");
        assert_eq!(s[1]["Condition"]["ArnLike"]["aws:SourceArn"], "arn:aws-cn:batch:*:111122223333:*");
        let outcomes: Vec<Outcome> = notes.iter().map(|n| n.outcome).collect();
        assert_eq!(outcomes, [Outcome::LeftUnconditioned, Outcome::Conditioned]);
    }

    #[test]
    fn existing_conditions_are_kept_and_hardening_twice_changes_nothing() {
        let mut doc = trust(json!("states.amazonaws.com"));
        doc["Statement"][0]["Condition"] =
            json!({"StringEquals": {"aws:SourceAccount": "111122223333", "sts:ExternalId": "x"}});
        let (once, notes) = harden_trust(&doc, "aws", "111122223333");
        assert_eq!(once["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"], "x");
        assert_eq!(
            once["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"],
            "arn:aws:states:*:111122223333:stateMachine:*"
        );
        assert_eq!(notes[0].outcome, Outcome::Conditioned);
        let (twice, notes) = harden_trust(&once, "aws", "111122223333");
        assert_eq!(twice, once);
        assert_eq!(notes[0].outcome, Outcome::AlreadyConditioned);
    }

    #[test]
    fn non_service_statements_are_not_touched() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"},
            {"Effect": "Deny", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"Federated": "cognito-identity.amazonaws.com"}, "Action": "sts:AssumeRoleWithWebIdentity"}]});
        let (hardened, notes) = harden_trust(&doc, "aws", "111122223333");
        assert_eq!(hardened, doc);
        assert!(notes.is_empty());
    }

    #[test]
    fn template_principals_and_placeholders_are_understood_for_export() {
        let (doc, notes) = harden_trust(&trust(json!("{{principal:batch}}")), "{{partition}}", "{{account_id}}");
        assert_eq!(notes[0].outcome, Outcome::Conditioned);
        assert_eq!(
            doc["Statement"][0]["Condition"],
            json!({"StringEquals": {"aws:SourceAccount": "{{account_id}}"}, "ArnLike": {"aws:SourceArn": "arn:{{partition}}:batch:*:{{account_id}}:*"}})
        );
        assert_eq!(short_service("{{ principal:ec2.amazonaws.com }}"), "ec2");
    }

    #[test]
    fn the_built_in_stacks_are_hardened_role_by_role() {
        use crate::stack::{Stack, Target};
        let target = Target { partition: "aws".into(), account_id: "111122223333".into(), region: "eu-west-1".into() };
        let mut desired = Stack::resolve(Some("slim-workflow")).unwrap().render(&target).unwrap();
        let notes = harden(&mut desired).unwrap();
        let summary: Vec<(&str, &str, Outcome)> =
            notes.iter().map(|n| (n.role.as_str(), n.service.as_str(), n.outcome)).collect();
        assert_eq!(
            summary,
            [
                ("AWSBatchServiceRole", "batch.amazonaws.com", Outcome::Conditioned),
                ("StepFunctionsLambdaRole", "states.amazonaws.com", Outcome::Conditioned),
                ("SLIM-Extras_ECS_for_EC2", "ec2.amazonaws.com", Outcome::LeftUnconditioned),
                ("SLIM-Extras_for_Lambda", "lambda.amazonaws.com", Outcome::LeftUnconditioned),
                ("AmazonEC2SpotFleetRole", "spotfleet.amazonaws.com", Outcome::Conditioned),
            ]
        );
        let batch = &desired.roles[0].trust["Statement"][0]["Condition"];
        assert_eq!(batch["StringEquals"]["aws:SourceAccount"], "111122223333");
        let mut again = desired.clone();
        harden(&mut again).unwrap();
        assert_eq!(
            again.roles.iter().map(|r| &r.trust).collect::<Vec<_>>(),
            desired.roles.iter().map(|r| &r.trust).collect::<Vec<_>>()
        );
    }
}
