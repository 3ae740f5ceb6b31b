//! Local evaluation of IAM identity-based policies, for `wfboot check` when iam:SimulatePrincipalPolicy is denied
//! or not implemented (the moto emulator).
//!
//! Follows IAM's policy evaluation logic for identity-based policies alone
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>): a request is
//! denied by default, a matching Allow grants it, and a matching explicit Deny overrides every Allow. What depends
//! on the request context (a `Condition`, a policy variable in `Resource`) is never guessed: a statement that only
//! might match makes the verdict `Unverified` when it could change the outcome. Resource-based policies,
//! permissions boundaries, SCPs and session policies are out of scope; `Principal` is irrelevant to identity
//! policies and ignored.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub(crate) enum Verdict {
    Allowed,
    /// `explicit` when a Deny statement matched; otherwise nothing allowed it (IAM's default deny).
    Denied {
        explicit: bool,
    },
    /// The outcome depends on request context that only AWS sees.
    Unverified {
        reason: String,
    },
}

/// One identity policy with a label for reports ("policy arn:aws:iam::aws:policy/X" or "inline policy P of user U").
#[derive(Debug, Clone)]
pub(crate) struct SourcePolicy<'a> {
    pub(crate) label: String,
    pub(crate) document: &'a Value,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Evaluation {
    pub(crate) verdict: Verdict,
    /// The statement(s) that decided it: "label (Sid X / statement #2)"; empty for an implicit deny.
    pub(crate) decided_by: Vec<String>,
    /// Malformed statements, skipped as IAM would never match them, with why: a typo here can explain a denial.
    pub(crate) ignored: Vec<String>,
}

/// Evaluate `action` (e.g. `iam:CreateRole`) on `resource` (an ARN, or `*`) against identity policies.
pub(crate) fn evaluate(policies: &[SourcePolicy<'_>], action: &str, resource: &str) -> Evaluation {
    evaluate_in(policies, action, resource, None)
}

/// [`evaluate`] with what is known of the request context: a `Condition` whose keys `context` decides is
/// evaluated ([`conditions`]); any other stays unverified. `None`: every condition is unverified.
pub(crate) fn evaluate_in(
    policies: &[SourcePolicy<'_>],
    action: &str,
    resource: &str,
    context: Option<&conditions::Context>,
) -> Evaluation {
    let action = action.to_lowercase();
    let mut deny = Vec::new();
    let mut maybe_deny = Vec::new();
    let mut allow = Vec::new();
    let mut maybe_allow = Vec::new();
    let mut ignored = Vec::new();

    for policy in policies {
        let Some(document) = policy.document.as_object() else {
            ignored.push(format!("{}: the document is not a JSON object", policy.label));
            continue;
        };
        // Only the current language version has policy variables; in 2008-10-17 (the default) `${...}` is text:
        // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
        let variables = document.get("Version").and_then(Value::as_str) == Some("2012-10-17");
        let statements = match document.get("Statement") {
            Some(Value::Array(items)) => items.as_slice(),
            None | Some(Value::Null) => &[],
            Some(one) => std::slice::from_ref(one),
        };
        for (index, value) in statements.iter().enumerate() {
            let name = statement_name(&policy.label, value, index);
            let statement = match Statement::parse(value) {
                Ok(statement) => statement,
                Err(why) => {
                    ignored.push(format!("{name}: {why}"));
                    continue;
                }
            };
            let action_fit =
                statement.actions.fit(|pattern| Fit::from(wildcard_match(&pattern.to_lowercase(), &action)));
            let resource_fit = statement.resources.fit(|pattern| resource_fit(pattern, resource, variables));
            let mut unknowns = Vec::new();
            match action_fit.and(resource_fit) {
                Fit::No => continue,
                Fit::Unknown => unknowns.push(format!("{} uses a policy variable", statement.resources.key())),
                Fit::Yes => {}
            }
            if let Some(condition) = statement.condition {
                match context.map_or(Fit::Unknown, |c| conditions::fit(condition, c)) {
                    Fit::No => continue,
                    Fit::Yes => {}
                    Fit::Unknown => unknowns.insert(0, format!("Condition {}", describe_condition(condition))),
                }
            }
            let (certain, uncertain) = match statement.effect {
                Effect::Allow => (&mut allow, &mut maybe_allow),
                Effect::Deny => (&mut deny, &mut maybe_deny),
            };
            if unknowns.is_empty() {
                certain.push(name);
            } else {
                uncertain.push(format!("{name} [{}]", unknowns.join("; ")));
            }
        }
    }

    let (verdict, decided_by) = if !deny.is_empty() {
        (Verdict::Denied { explicit: true }, deny)
    } else if allow.is_empty() && maybe_allow.is_empty() {
        // Denied whether or not a conditional Deny applies; only whether it is explicit is unknown.
        (Verdict::Denied { explicit: false }, Vec::new())
    } else if !maybe_deny.is_empty() {
        let mut reason = format!("might be denied under a condition: {}", maybe_deny.join(", "));
        if allow.is_empty() {
            reason.push_str(&format!("; allowed only under a condition: {}", maybe_allow.join(", ")));
        }
        let allowed_by = if allow.is_empty() { maybe_allow } else { allow };
        (Verdict::Unverified { reason }, [maybe_deny, allowed_by].concat())
    } else if !allow.is_empty() {
        (Verdict::Allowed, allow)
    } else {
        let reason = format!("allowed only under a condition: {}", maybe_allow.join(", "));
        (Verdict::Unverified { reason }, maybe_allow)
    };
    Evaluation { verdict, decided_by, ignored }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// Whether (part of) a statement applies to the request, as far as can be told without the request context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    Yes,
    No,
    Unknown,
}

impl From<bool> for Fit {
    fn from(yes: bool) -> Self {
        if yes {
            Fit::Yes
        } else {
            Fit::No
        }
    }
}

impl Fit {
    fn and(self, other: Fit) -> Fit {
        match (self, other) {
            (Fit::No, _) | (_, Fit::No) => Fit::No,
            (Fit::Yes, Fit::Yes) => Fit::Yes,
            _ => Fit::Unknown,
        }
    }

    fn or(self, other: Fit) -> Fit {
        match (self, other) {
            (Fit::Yes, _) | (_, Fit::Yes) => Fit::Yes,
            (Fit::No, Fit::No) => Fit::No,
            _ => Fit::Unknown,
        }
    }

    fn not(self) -> Fit {
        match self {
            Fit::Yes => Fit::No,
            Fit::No => Fit::Yes,
            Fit::Unknown => Fit::Unknown,
        }
    }
}

/// `Action` or `NotAction` (likewise for resources): `negated` matches when none of the patterns does.
struct Patterns<'a> {
    negated: bool,
    items: Vec<&'a str>,
    keys: (&'static str, &'static str),
}

impl<'a> Patterns<'a> {
    fn parse(statement: &'a Map<String, Value>, key: &'static str, not_key: &'static str) -> Result<Self, String> {
        let (negated, value) = match (statement.get(key), statement.get(not_key)) {
            (Some(value), None) => (false, value),
            (None, Some(value)) => (true, value),
            (Some(_), Some(_)) => return Err(format!("it has both {key} and {not_key}")),
            (None, None) => return Err(format!("it has neither {key} nor {not_key}")),
        };
        let items = match value {
            Value::String(one) => Some(vec![one.as_str()]),
            Value::Array(items) => items.iter().map(Value::as_str).collect(),
            _ => None,
        };
        let key_used = if negated { not_key } else { key };
        let items = items.ok_or_else(|| format!("{key_used} is not a string or a list of strings"))?;
        Ok(Patterns { negated, items, keys: (key, not_key) })
    }

    fn fit(&self, pattern_fit: impl Fn(&str) -> Fit) -> Fit {
        let any = self.items.iter().map(|pattern| pattern_fit(pattern)).fold(Fit::No, Fit::or);
        if self.negated {
            any.not()
        } else {
            any
        }
    }

    fn key(&self) -> &'static str {
        if self.negated {
            self.keys.1
        } else {
            self.keys.0
        }
    }
}

struct Statement<'a> {
    effect: Effect,
    actions: Patterns<'a>,
    resources: Patterns<'a>,
    /// Present only when non-empty: an empty `Condition` restricts nothing.
    condition: Option<&'a Map<String, Value>>,
}

impl<'a> Statement<'a> {
    fn parse(value: &'a Value) -> Result<Statement<'a>, String> {
        let Value::Object(statement) = value else { return Err("the statement is not a JSON object".to_string()) };
        let effect = match statement.get("Effect") {
            Some(Value::String(effect)) if effect == "Allow" => Effect::Allow,
            Some(Value::String(effect)) if effect == "Deny" => Effect::Deny,
            Some(other) => return Err(format!("Effect {other} is neither \"Allow\" nor \"Deny\"")),
            None => return Err("it has no Effect".to_string()),
        };
        let actions = Patterns::parse(statement, "Action", "NotAction")?;
        // Identity policies must name their resources; IAM rejects such a statement rather than assuming `*`.
        let resources = Patterns::parse(statement, "Resource", "NotResource")?;
        let condition = match statement.get("Condition") {
            None | Some(Value::Null) => None,
            Some(Value::Object(condition)) if condition.is_empty() => None,
            Some(Value::Object(condition)) => Some(condition),
            Some(_) => return Err("Condition is not a JSON object".to_string()),
        };
        Ok(Statement { effect, actions, resources, condition })
    }
}

fn statement_name(label: &str, statement: &Value, index: usize) -> String {
    match statement.get("Sid").and_then(Value::as_str) {
        Some(sid) if !sid.is_empty() => format!("{label} (Sid {sid})"),
        _ => format!("{label} (statement #{})", index + 1),
    }
}

/// "StringEquals aws:RequestedRegion, Bool aws:MultiFactorAuthPresent": what the request context must satisfy.
fn describe_condition(condition: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    for (operator, keys) in condition {
        match keys {
            Value::Object(keys) if !keys.is_empty() => {
                parts.extend(keys.keys().map(|key| format!("{operator} {key}")));
            }
            _ => parts.push(operator.clone()),
        }
    }
    parts.join(", ")
}

/// A pattern element: IAM's wildcards are `*` (any run of characters, even empty, across `:` and `/`) and `?`
/// (exactly one character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    AnyOne,
    AnyRun,
}

/// Match a resource ARN against one `Resource` pattern, case-sensitively, segment by segment as IAM does
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html): `*` alone is every
/// resource; otherwise the pattern is an ARN whose partition, service, region and account are each matched on their
/// own (a wildcard never spans a colon there), a pattern with fewer segments has its missing trailing segments taken
/// as `*` (so a `*` ending a segment reaches beyond the colons), and the resource part's type prefix (`role/`,
/// `function:`) is literal — wildcards are not allowed in it ("Incorrect wildcard usage",
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html) — while its id takes wildcards across `/`
/// and `:`. A pattern that is not an ARN is matched as a whole. A request on `*` (an action without resource
/// types) is matched only by a pattern of stars.
fn resource_fit(pattern: &str, resource: &str, variables: bool) -> Fit {
    if pattern == "*" {
        return Fit::Yes;
    }
    if resource == "*" {
        return Fit::from(pattern.chars().all(|c| c == '*'));
    }
    if !pattern.contains(':') {
        // Not an ARN (`*olicy`): a wildcard pattern over the whole resource, as @cloud-copilot/iam-simulate does.
        return glob_fit(pattern, resource, variables);
    }
    let mut wanted: Vec<&str> = pattern.splitn(6, ':').collect();
    while wanted.len() < 6 {
        wanted.push("*");
    }
    let got: Vec<&str> = resource.splitn(6, ':').collect();
    if got.len() < 6 {
        return Fit::No;
    }
    // arn, partition, service, region, account: each on its own.
    let mut fit = Fit::Yes;
    for (w, g) in wanted[..5].iter().zip(&got[..5]) {
        fit = fit.and(glob_fit(w, g, variables));
        if fit == Fit::No {
            return Fit::No;
        }
    }
    let (product, id) = product_and_id(wanted[5], &got[1..5]);
    let Some(request_id) = got[5].strip_prefix(product) else { return Fit::No };
    fit.and(glob_fit(id, request_id, variables))
}

/// The resource part of an ARN pattern split into its literal type prefix (up to and including the first `/` or
/// `:`, e.g. `role/`, `function:`; none for S3, whose resource is the bucket) and the id.
fn product_and_id<'a>(part: &'a str, request: &[&str]) -> (&'a str, &'a str) {
    let s3 = request.get(1) == Some(&"s3") && request.get(2) == Some(&"") && request.get(3) == Some(&"");
    if s3 {
        return ("", part);
    }
    match part.find(['/', ':']) {
        Some(i) => part.split_at(i + 1),
        None => ("", part),
    }
}

fn glob_fit(pattern: &str, text: &str, variables: bool) -> Fit {
    let (tokens, has_variable) = tokenize(pattern, variables);
    let text: Vec<char> = text.chars().collect();
    match (matches(&tokens, &text), has_variable) {
        (false, _) => Fit::No,
        (true, false) => Fit::Yes,
        (true, true) => Fit::Unknown,
    }
}

/// Tokens of a pattern, and whether it holds a policy variable. A variable's value is unknown here, so it is
/// widened to `*`: if even that does not match, no value can. `${*}`, `${?}` and `${$}` are IAM's escapes for
/// the literal characters.
fn tokenize(pattern: &str, variables: bool) -> (Vec<Token>, bool) {
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut has_variable = false;
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if variables && rest.starts_with("${") {
            if let Some(end) = rest.find('}') {
                match &rest[2..end] {
                    escaped @ ("*" | "?" | "$") => tokens.extend(escaped.chars().map(Token::Char)),
                    _ => {
                        tokens.push(Token::AnyRun);
                        has_variable = true;
                    }
                }
                rest = &rest[end + 1..];
                continue;
            }
        }
        tokens.push(match c {
            '*' => Token::AnyRun,
            '?' => Token::AnyOne,
            c => Token::Char(c),
        });
        rest = &rest[c.len_utf8()..];
    }
    (tokens, has_variable)
}

/// Glob match with `*` and `?` only; the caller folds case where IAM ignores it.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    matches(&tokenize(pattern, false).0, &text)
}

/// Greedy matching that, on a mismatch, only retries from the most recent `*`: an earlier `*` never needs to
/// absorb more, because the later one can take up any slack. That bounds the work to O(pattern × text), where
/// naive recursion is exponential on patterns like `a*a*a*a*b`.
fn matches(pattern: &[Token], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after a mismatch: the pattern just past the last `*`, and the text position it was tried at.
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::AnyRun) => {
                p += 1;
                resume = Some((p, t));
            }
            Some(Token::AnyOne) => {
                p += 1;
                t += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match resume {
                Some((after_star, tried_at)) => {
                    p = after_star;
                    t = tried_at + 1;
                    resume = Some((after_star, t));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|token| *token == Token::AnyRun)
}

pub(crate) mod conditions;
pub(crate) mod scp;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod scp_differential;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROLE: &str = "arn:aws:iam::123456789012:role/wf-batch";
    const POLICY: &str = "arn:aws:iam::123456789012:policy/wf-batch";
    const USER_ALICE: &str = "arn:aws:iam::123456789012:user/alice";
    const OBJECT: &str = "arn:aws:s3:::wf-data/input.csv";
    const ROLE_WITH_PATH: &str = "arn:aws:iam::123456789012:role/service-role/wf-batch";
    const SERVICE_LINKED_ROLE: &str =
        "arn:aws:iam::123456789012:role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch";
    const OWN_USER: &str = "arn:aws:iam::*:user/${aws:username}";

    /// What a case expects; an `Unverified` reason is checked by the dedicated tests, not the table.
    #[derive(Debug, PartialEq)]
    enum Want {
        Allowed,
        Implicit,
        Explicit,
        Unverified,
    }

    fn want(verdict: &Verdict) -> Want {
        match verdict {
            Verdict::Allowed => Want::Allowed,
            Verdict::Denied { explicit: false } => Want::Implicit,
            Verdict::Denied { explicit: true } => Want::Explicit,
            Verdict::Unverified { .. } => Want::Unverified,
        }
    }

    fn eval(documents: &[Value], action: &str, resource: &str) -> Evaluation {
        let policies: Vec<SourcePolicy<'_>> = documents
            .iter()
            .enumerate()
            .map(|(i, document)| SourcePolicy { label: format!("policy P{}", i + 1), document })
            .collect();
        evaluate(&policies, action, resource)
    }

    fn allow(action: Value, resource: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]})
    }

    fn deny(action: Value, resource: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": action, "Resource": resource}]})
    }

    fn only(statement: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [statement]})
    }

    fn region_condition() -> Value {
        json!({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}})
    }

    /// The document's statements, restricted to requests in eu-west-1.
    fn eu_only(mut document: Value) -> Value {
        for statement in document["Statement"].as_array_mut().into_iter().flatten() {
            statement["Condition"] = region_condition();
        }
        document
    }

    fn administrator_access() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    }

    fn iam_full_access() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "iam:*", "organizations:DescribeAccount", "organizations:DescribeOrganization",
            "organizations:DescribeOrganizationalUnit", "organizations:DescribePolicy", "organizations:ListChildren",
            "organizations:ListParents", "organizations:ListPoliciesForTarget", "organizations:ListRoots",
            "organizations:ListPolicies", "organizations:ListTargetsForPolicy"
        ], "Resource": "*"}]})
    }

    fn iam_read_only_access() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "iam:GenerateCredentialReport", "iam:GenerateServiceLastAccessedDetails", "iam:Get*", "iam:List*",
            "iam:SimulateCustomPolicy", "iam:SimulatePrincipalPolicy"
        ], "Resource": "*"}]})
    }

    fn power_user_access() -> Value {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "account:*"], "Resource": "*"},
            {"Effect": "Allow", "Action": [
                "account:GetAccountInformation", "account:GetPrimaryEmail", "account:ListRegions",
                "iam:CreateServiceLinkedRole", "iam:DeleteServiceLinkedRole", "iam:ListRoles",
                "organizations:DescribeOrganization"
            ], "Resource": "*"}
        ]})
    }

    #[test]
    fn verdicts_follow_iam_evaluation_logic() {
        // One row per case reads as a table; rustfmt would spread each row over seven lines.
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<Value>, &str, &str, Want)> = vec![
            ("exact match", vec![allow(json!(["iam:CreateRole"]), json!(ROLE))], "iam:CreateRole", ROLE, Want::Allowed),
            ("exact, other action", vec![allow(json!(["iam:CreateRole"]), json!(ROLE))], "iam:DeleteRole", ROLE, Want::Implicit),
            ("exact, other resource", vec![allow(json!("iam:CreateRole"), json!(ROLE))], "iam:CreateRole", POLICY, Want::Implicit),
            ("star action", vec![allow(json!("*"), json!("*"))], "s3:GetObject", OBJECT, Want::Allowed),
            ("service star", vec![allow(json!("iam:*"), json!("*"))], "iam:CreateRole", ROLE, Want::Allowed),
            ("service star, other service", vec![allow(json!("iam:*"), json!("*"))], "s3:GetObject", OBJECT, Want::Implicit),
            ("prefix star", vec![allow(json!("iam:Create*"), json!("*"))], "iam:CreateRole", ROLE, Want::Allowed),
            ("prefix star, other verb", vec![allow(json!("iam:Create*"), json!("*"))], "iam:DeleteRole", ROLE, Want::Implicit),
            ("question mark", vec![allow(json!("iam:?reateRole"), json!("*"))], "iam:CreateRole", ROLE, Want::Allowed),
            ("question mark is one char", vec![allow(json!("iam:?reateRole"), json!("*"))], "iam:reateRole", ROLE, Want::Implicit),
            ("action case, policy side", vec![allow(json!("IAM:createrole"), json!("*"))], "iam:CreateRole", ROLE, Want::Allowed),
            ("action case, request side", vec![allow(json!("iam:CreateRole"), json!("*"))], "IAM:CREATEROLE", ROLE, Want::Allowed),
            ("resource case matters", vec![allow(json!("iam:*"), json!(ROLE.replace("wf-batch", "WF-Batch")))], "iam:CreateRole", ROLE, Want::Implicit),
            ("role ARN wildcard", vec![allow(json!("iam:*"), json!("arn:aws:iam::*:role/*"))], "iam:CreateRole", ROLE, Want::Allowed),
            ("role ARN wildcard, policy ARN", vec![allow(json!("iam:*"), json!("arn:aws:iam::*:role/*"))], "iam:CreatePolicy", POLICY, Want::Implicit),
            ("star spans role paths", vec![allow(json!("iam:*"), json!("arn:aws:iam::*:role/*"))], "iam:GetRole", ROLE_WITH_PATH, Want::Allowed),
            ("question mark in resource", vec![allow(json!("s3:GetObject"), json!("arn:aws:s3:::wf-dat?/*"))], "s3:GetObject", OBJECT, Want::Allowed),
            ("resource list", vec![allow(json!("iam:GetRole"), json!([POLICY, ROLE]))], "iam:GetRole", ROLE, Want::Allowed),
            ("NotAction excludes", vec![only(json!({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}))], "iam:CreateRole", ROLE, Want::Implicit),
            ("NotAction includes the rest", vec![only(json!({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}))], "s3:GetObject", OBJECT, Want::Allowed),
            ("NotResource excludes", vec![only(json!({"Effect": "Allow", "Action": "iam:*", "NotResource": "arn:aws:iam::*:role/wf-*"}))], "iam:CreateRole", ROLE, Want::Implicit),
            ("NotResource includes the rest", vec![only(json!({"Effect": "Allow", "Action": "iam:*", "NotResource": "arn:aws:iam::*:role/wf-*"}))], "iam:CreatePolicy", POLICY, Want::Allowed),
            ("Deny with NotResource", vec![administrator_access(), only(json!({"Effect": "Deny", "Action": "iam:*", "NotResource": "arn:aws:iam::*:role/wf-*"}))], "iam:CreatePolicy", POLICY, Want::Explicit),
            ("Deny with NotAction", vec![administrator_access(), only(json!({"Effect": "Deny", "NotAction": "iam:Get*", "Resource": "*"}))], "iam:CreateRole", ROLE, Want::Explicit),
            ("deny in another policy wins", vec![administrator_access(), deny(json!("iam:CreateRole"), json!("*"))], "iam:CreateRole", ROLE, Want::Explicit),
            ("deny of another action", vec![administrator_access(), deny(json!("iam:DeleteRole"), json!("*"))], "iam:CreateRole", ROLE, Want::Allowed),
            ("deny in the same policy wins", vec![json!({"Statement": [
                {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "iam:Create*", "Resource": ROLE}]})], "iam:CreateRole", ROLE, Want::Explicit),
            ("conditional allow", vec![eu_only(allow(json!("iam:*"), json!("*")))], "iam:CreateRole", ROLE, Want::Unverified),
            ("conditional and unconditional allow", vec![eu_only(allow(json!("iam:*"), json!("*"))), allow(json!("iam:CreateRole"), json!("*"))], "iam:CreateRole", ROLE, Want::Allowed),
            ("conditional allow of another action", vec![eu_only(allow(json!("s3:*"), json!("*")))], "iam:CreateRole", ROLE, Want::Implicit),
            ("empty condition restricts nothing", vec![only(json!({"Effect": "Allow", "Action": "iam:*", "Resource": "*", "Condition": {}}))], "iam:CreateRole", ROLE, Want::Allowed),
            ("conditional deny, unconditional allow", vec![administrator_access(), eu_only(deny(json!("iam:*"), json!("*")))], "iam:CreateRole", ROLE, Want::Unverified),
            ("unconditional deny, conditional allow", vec![eu_only(allow(json!("iam:*"), json!("*"))), deny(json!("iam:CreateRole"), json!("*"))], "iam:CreateRole", ROLE, Want::Explicit),
            ("conditional deny, nothing allows", vec![eu_only(deny(json!("iam:*"), json!("*")))], "iam:CreateRole", ROLE, Want::Implicit),
            ("statement as one object", vec![json!({"Statement": {"Effect": "Allow", "Action": "iam:CreateRole", "Resource": "*"}})], "iam:CreateRole", ROLE, Want::Allowed),
            ("action as a string", vec![allow(json!("iam:CreateRole"), json!(ROLE))], "iam:CreateRole", ROLE, Want::Allowed),
            ("no policies", vec![], "iam:CreateRole", ROLE, Want::Implicit),
            ("empty statement list", vec![json!({"Version": "2012-10-17", "Statement": []})], "iam:CreateRole", ROLE, Want::Implicit),
            ("effect in the wrong case", vec![only(json!({"Effect": "allow", "Action": "*", "Resource": "*"}))], "iam:CreateRole", ROLE, Want::Implicit),
            ("no effect", vec![only(json!({"Action": "*", "Resource": "*"}))], "iam:CreateRole", ROLE, Want::Implicit),
            ("malformed deny does not deny", vec![administrator_access(), only(json!({"Effect": "DENY", "Action": "*", "Resource": "*"}))], "iam:CreateRole", ROLE, Want::Allowed),
            ("no resource element", vec![only(json!({"Effect": "Allow", "Action": "*"}))], "iam:CreateRole", ROLE, Want::Implicit),
            ("Principal is ignored", vec![only(json!({"Effect": "Allow", "Principal": "*", "Action": "iam:*", "Resource": "*"}))], "iam:CreateRole", ROLE, Want::Allowed),
            ("policy variable", vec![allow(json!("iam:*"), json!(OWN_USER))], "iam:CreateAccessKey", USER_ALICE, Want::Unverified),
            ("policy variable that cannot match", vec![allow(json!("iam:*"), json!(OWN_USER))], "iam:CreateRole", ROLE, Want::Implicit),
            ("policy variable and unconditional allow", vec![allow(json!("iam:*"), json!(OWN_USER)), iam_full_access()], "iam:CreateAccessKey", USER_ALICE, Want::Allowed),
            ("policy variable in NotResource", vec![only(json!({"Effect": "Allow", "Action": "iam:*", "NotResource": OWN_USER}))], "iam:CreateAccessKey", USER_ALICE, Want::Unverified),
            ("no variables in version 2008-10-17", vec![json!({"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": OWN_USER}]})], "iam:CreateAccessKey", USER_ALICE, Want::Implicit),
            ("escaped star is literal", vec![allow(json!("s3:GetObject"), json!("arn:aws:s3:::wf-data/${*}"))], "s3:GetObject", OBJECT, Want::Implicit),
            ("escaped star matches itself", vec![allow(json!("s3:GetObject"), json!("arn:aws:s3:::wf-data/${*}"))], "s3:GetObject", "arn:aws:s3:::wf-data/*", Want::Allowed),
            ("AdministratorAccess", vec![administrator_access()], "iam:CreateRole", ROLE, Want::Allowed),
            ("IAMFullAccess, iam", vec![iam_full_access()], "iam:CreateRole", ROLE, Want::Allowed),
            ("IAMFullAccess, organizations", vec![iam_full_access()], "organizations:DescribeAccount", "*", Want::Allowed),
            ("IAMFullAccess, s3", vec![iam_full_access()], "s3:GetObject", OBJECT, Want::Implicit),
            ("IAMReadOnlyAccess, create", vec![iam_read_only_access()], "iam:CreateRole", ROLE, Want::Implicit),
            ("IAMReadOnlyAccess, get", vec![iam_read_only_access()], "iam:GetRole", ROLE, Want::Allowed),
            ("IAMReadOnlyAccess, list", vec![iam_read_only_access()], "iam:ListAttachedRolePolicies", ROLE, Want::Allowed),
            ("PowerUserAccess, create role", vec![power_user_access()], "iam:CreateRole", ROLE, Want::Implicit),
            ("PowerUserAccess, service-linked role", vec![power_user_access()], "iam:CreateServiceLinkedRole", SERVICE_LINKED_ROLE, Want::Allowed),
            ("PowerUserAccess, list roles", vec![power_user_access()], "iam:ListRoles", "*", Want::Allowed),
            ("PowerUserAccess, s3", vec![power_user_access()], "s3:GetObject", OBJECT, Want::Allowed),
            ("PowerUserAccess, organizations", vec![power_user_access()], "organizations:ListAccounts", "*", Want::Implicit),
            ("PowerUserAccess + IAMReadOnlyAccess, get", vec![power_user_access(), iam_read_only_access()], "iam:GetRole", ROLE, Want::Allowed),
            ("PowerUserAccess + IAMReadOnlyAccess, create", vec![power_user_access(), iam_read_only_access()], "iam:CreateRole", ROLE, Want::Implicit),
        ];
        assert!(cases.len() >= 30);
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(name, documents, action, resource, expected)| {
                let evaluation = eval(documents, action, resource);
                let got = want(&evaluation.verdict);
                (got != *expected).then(|| format!("{name}: expected {expected:?}, got {:?}", evaluation))
            })
            .collect();
        assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    }

    #[test]
    fn decided_by_names_the_statement_by_sid_or_position() {
        let documents = [json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadS3", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
            {"Sid": "", "Effect": "Deny", "Action": "iam:DeleteRole", "Resource": "*"}
        ]})];
        assert_eq!(eval(&documents, "s3:GetObject", OBJECT).decided_by, ["policy P1 (Sid ReadS3)"]);
        assert_eq!(eval(&documents, "iam:CreateRole", ROLE).decided_by, ["policy P1 (statement #2)"]);
        let denied = eval(&documents, "iam:DeleteRole", ROLE);
        assert_eq!(denied.verdict, Verdict::Denied { explicit: true });
        assert_eq!(denied.decided_by, ["policy P1 (statement #3)"]);
        assert!(eval(&documents, "ec2:RunInstances", "*").decided_by.is_empty());
    }

    #[test]
    fn unverified_reasons_say_what_the_request_must_satisfy() {
        let conditional = only(json!({"Sid": "EuOnly", "Effect": "Allow", "Action": "iam:*", "Resource": "*",
            "Condition": region_condition()}));
        let evaluation = eval(&[conditional], "iam:CreateRole", ROLE);
        let statement = "policy P1 (Sid EuOnly) [Condition StringEquals aws:RequestedRegion]";
        let reason = format!("allowed only under a condition: {statement}");
        assert_eq!(evaluation.verdict, Verdict::Unverified { reason });
        assert_eq!(evaluation.decided_by, [statement]);

        let variable = allow(json!("iam:*"), json!(OWN_USER));
        let Verdict::Unverified { reason } = eval(&[variable], "iam:CreateAccessKey", USER_ALICE).verdict else {
            panic!("a policy variable cannot be verified locally");
        };
        assert_eq!(
            reason,
            "allowed only under a condition: policy P1 (statement #1) [Resource uses a policy variable]"
        );

        let conditional_deny = only(json!({"Effect": "Deny", "Action": "iam:*", "Resource": "*",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}}));
        let evaluation = eval(&[administrator_access(), conditional_deny], "iam:CreateRole", ROLE);
        let Verdict::Unverified { reason } = &evaluation.verdict else { panic!("expected unverified") };
        assert_eq!(
            reason,
            "might be denied under a condition: policy P2 (statement #1) [Condition Bool aws:MultiFactorAuthPresent]"
        );
        assert_eq!(evaluation.decided_by.len(), 2);
        assert_eq!(evaluation.decided_by[1], "policy P1 (statement #1)");
    }

    #[test]
    fn malformed_statements_are_reported_as_ignored() {
        let documents = [
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "allow", "Action": "*", "Resource": "*"},
                {"Action": "*", "Resource": "*"},
                {"Effect": "Allow", "Action": "*"},
                {"Effect": "Allow", "Action": "*", "NotAction": "iam:*", "Resource": "*"},
                {"Effect": "Allow", "Action": [1], "Resource": "*"},
                "not a statement"
            ]}),
            json!(["not a document"]),
        ];
        let evaluation = eval(&documents, "iam:CreateRole", ROLE);
        assert_eq!(evaluation.verdict, Verdict::Denied { explicit: false });
        assert_eq!(
            evaluation.ignored,
            [
                "policy P1 (statement #1): Effect \"allow\" is neither \"Allow\" nor \"Deny\"",
                "policy P1 (statement #2): it has no Effect",
                "policy P1 (statement #3): it has neither Resource nor NotResource",
                "policy P1 (statement #4): it has both Action and NotAction",
                "policy P1 (statement #5): Action is not a string or a list of strings",
                "policy P1 (statement #6): the statement is not a JSON object",
                "policy P2: the document is not a JSON object",
            ]
        );
    }

    #[test]
    fn verdicts_serialize_with_a_verdict_tag() {
        let json = |verdict: Verdict| serde_json::to_value(verdict).unwrap();
        assert_eq!(json(Verdict::Allowed), json!({"verdict": "allowed"}));
        assert_eq!(json(Verdict::Denied { explicit: true }), json!({"verdict": "denied", "explicit": true}));
        assert_eq!(
            json(Verdict::Unverified { reason: "r".to_string() }),
            json!({"verdict": "unverified", "reason": "r"})
        );
    }

    #[test]
    fn wildcard_matcher() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "arn:aws:iam::1:role/a/b", true),
            ("?", "", false),
            ("?", "a", true),
            ("?", "ab", false),
            ("a*", "a", true),
            ("*a", "ba", true),
            ("*a", "ab", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyyd", false),
            ("a*b", "abab", true),
            ("*:role/*", "arn:aws:iam::1:role/x", true),
            ("*:role/*", "arn:aws:iam::1:policy/x", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("**", "x", true),
            ("*?", "", false),
            ("*?", "x", true),
            ("ab", "AB", false),
            ("é*", "été", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(wildcard_match(pattern, text), expected, "{pattern:?} against {text:?}");
        }
    }

    #[test]
    fn pathological_patterns_finish_fast() {
        let long = "a".repeat(20_000);
        let started = std::time::Instant::now();
        assert!(!wildcard_match("a*a*a*a*a*b", &long));
        assert!(!wildcard_match("*a*a*a*a*a*a*a*a*a*a*a*a*b", &long));
        assert!(wildcard_match("a*a*a*a*a*a", &long));
        let document = allow(json!("s3:GetObject"), json!("a*a*a*a*a*b"));
        assert_eq!(eval(&[document], "s3:GetObject", &long).verdict, Verdict::Denied { explicit: false });
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
    }
}
