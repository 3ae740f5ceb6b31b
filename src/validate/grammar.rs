//! A policy document against IAM's policy grammar: the elements, their value forms, and where each may appear.
//!
//! The rules follow the IAM user guide's "Grammar of the IAM JSON policy language"
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html) and "IAM JSON policy elements
//! reference" (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements.html); each rule's own
//! page is in [`super::RULES`]. Identity documents are the stack's managed policies; trust documents are role trust
//! (resource-based) policies, which name principals instead of resources.

use serde_json::{Map, Value};

use super::actions::{self, KeyType, Unknown};
use super::security::{self, Advice};
use super::{arn, resources, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocKind {
    /// A managed policy: Action and Resource, no Principal.
    Identity,
    /// A role's trust policy: Principal and an sts action, no Resource.
    Trust,
}

/// One thing IAM would reject (an error) or that probably does not do what was meant (a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    pub(crate) severity: Severity,
    pub(crate) rule: &'static str,
    /// The statement's index in `Statement` (0 for a single statement object).
    pub(crate) statement: Option<usize>,
    pub(crate) sid: Option<String>,
    /// Where in the statement (or document): `Principal.AWS[1]`, `Condition.StringEquals.aws:SourceAccount`.
    pub(crate) element: String,
    pub(crate) message: String,
    /// What IAM accepts instead.
    pub(crate) accepted: Option<String>,
    /// IAM Access Analyzer's issue code for the same check, where it has one.
    pub(crate) code: Option<&'static str>,
}

const TOP_ELEMENTS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_ELEMENTS: &[&str] =
    &["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];
const VERSIONS: &[&str] = &["2012-10-17", "2008-10-17"];
const VERSION_ACCEPTED: &str = "\"Version\": \"2012-10-17\" (the current version; \"2008-10-17\" is the only other)";

/// The actions a role trust policy may grant
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-roles,
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_permissions-required,
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_monitor.html#id_credentials_temp_control-access_monitor-perms).
pub(crate) const TRUST_ACTIONS: &[&str] = &[
    "sts:AssumeRole",
    "sts:AssumeRoleWithSAML",
    "sts:AssumeRoleWithWebIdentity",
    "sts:TagSession",
    "sts:SetSourceIdentity",
    "sts:SetContext",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    String,
    Numeric,
    Date,
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

/// IAM's condition operators
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
const OPERATORS: &[(&str, Category)] = &[
    ("StringEquals", Category::String),
    ("StringNotEquals", Category::String),
    ("StringEqualsIgnoreCase", Category::String),
    ("StringNotEqualsIgnoreCase", Category::String),
    ("StringLike", Category::String),
    ("StringNotLike", Category::String),
    ("NumericEquals", Category::Numeric),
    ("NumericNotEquals", Category::Numeric),
    ("NumericLessThan", Category::Numeric),
    ("NumericLessThanEquals", Category::Numeric),
    ("NumericGreaterThan", Category::Numeric),
    ("NumericGreaterThanEquals", Category::Numeric),
    ("DateEquals", Category::Date),
    ("DateNotEquals", Category::Date),
    ("DateLessThan", Category::Date),
    ("DateLessThanEquals", Category::Date),
    ("DateGreaterThan", Category::Date),
    ("DateGreaterThanEquals", Category::Date),
    ("Bool", Category::Bool),
    ("BinaryEquals", Category::Binary),
    ("IpAddress", Category::Ip),
    ("NotIpAddress", Category::Ip),
    ("ArnEquals", Category::Arn),
    ("ArnLike", Category::Arn),
    ("ArnNotEquals", Category::Arn),
    ("ArnNotLike", Category::Arn),
    ("Null", Category::Null),
];

struct Checker<'a> {
    kind: DocKind,
    partition: Option<&'a str>,
    issues: Vec<Issue>,
    statement: Option<usize>,
    sid: Option<String>,
}

impl Checker<'_> {
    fn push(
        &mut self,
        severity: Severity,
        rule: &'static str,
        element: &str,
        message: String,
        accepted: Option<String>,
    ) {
        self.issues.push(Issue {
            severity,
            rule,
            statement: self.statement,
            sid: self.sid.clone(),
            element: element.to_string(),
            message,
            accepted,
            code: None,
        });
    }

    fn advise(&mut self, a: Advice) {
        self.push(a.severity, a.rule, &a.element, a.message, Some(a.accepted));
        if let Some(last) = self.issues.last_mut() {
            last.code = a.code;
        }
    }

    fn error(&mut self, rule: &'static str, element: &str, message: impl Into<String>, accepted: impl Into<String>) {
        self.push(Severity::Error, rule, element, message.into(), Some(accepted.into()).filter(|a| !a.is_empty()));
    }

    fn warn(&mut self, rule: &'static str, element: &str, message: impl Into<String>, accepted: impl Into<String>) {
        self.push(Severity::Warning, rule, element, message.into(), Some(accepted.into()).filter(|a| !a.is_empty()));
    }

    fn problem(&mut self, element: &str, p: arn::Problem) {
        self.push(Severity::Error, p.rule, element, p.message, Some(p.accepted));
    }
}

/// Every issue of `doc` as a document of `kind`. `partition`: the account's, when known (ARNs must be in it).
pub(crate) fn check(doc: &Value, kind: DocKind, partition: Option<&str>) -> Vec<Issue> {
    let mut c = Checker { kind, partition, issues: Vec::new(), statement: None, sid: None };
    let Value::Object(top) = doc else {
        c.error(
            "document",
            "",
            "a policy document must be a JSON object",
            "{\"Version\": \"2012-10-17\", \"Statement\": [...]}",
        );
        return c.issues;
    };
    for key in top.keys().filter(|k| !TOP_ELEMENTS.contains(&k.as_str())) {
        let accepted = match case_match(key, TOP_ELEMENTS) {
            Some(right) => format!("`{right}` (element names are case-sensitive)"),
            None => "only Version, Id and Statement at the top level".to_string(),
        };
        c.error("element", key, format!("`{key}` is not a policy element"), accepted);
    }
    let version = top.get("Version");
    match version {
        None => c.warn(
            "version",
            "Version",
            "no Version: IAM then uses 2008-10-17, in which policy variables such as ${aws:username} are plain text",
            VERSION_ACCEPTED,
        ),
        Some(Value::String(v)) if VERSIONS.contains(&v.as_str()) => {}
        Some(other) => {
            c.error("version", "Version", format!("{other} is not a policy language version"), VERSION_ACCEPTED)
        }
    }
    if version.and_then(Value::as_str) != Some("2012-10-17") && doc.to_string().contains("${") {
        c.warn(
            "version",
            "Version",
            "the document uses policy variables (${...}), which only Version 2012-10-17 substitutes",
            VERSION_ACCEPTED,
        );
    }
    if let Some(id) = top.get("Id") {
        if !id.is_string() {
            c.error("id", "Id", format!("Id must be a string, not {}", type_name(id)), "a string such as \"MyPolicy\"");
        }
    }
    let statements: Vec<&Value> = match top.get("Statement") {
        None => {
            c.error(
                "statement",
                "Statement",
                "the document has no Statement",
                "\"Statement\": a statement object or a list of them",
            );
            return c.issues;
        }
        Some(Value::Array(items)) if items.is_empty() => {
            c.error("statement", "Statement", "Statement is an empty list", "at least one statement");
            return c.issues;
        }
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        Some(other) => {
            c.error(
                "statement",
                "Statement",
                format!("Statement must be an object or a list of objects, not {}", type_name(other)),
                "\"Statement\": {...} or [{...}, ...]",
            );
            return c.issues;
        }
    };
    let mut sids: Vec<&str> = Vec::new();
    for (i, statement) in statements.iter().enumerate() {
        c.statement = Some(i);
        c.sid = statement.get("Sid").and_then(Value::as_str).map(str::to_string);
        let Value::Object(s) = statement else {
            c.error(
                "statement",
                "",
                format!("a statement must be an object, not {}", type_name(statement)),
                "{\"Effect\": ..., ...}",
            );
            continue;
        };
        if let Some(sid) = s.get("Sid").and_then(Value::as_str).filter(|sid| !sid.is_empty()) {
            if sids.contains(&sid) {
                c.error(
                    "sid-unique",
                    "Sid",
                    format!("Sid \"{sid}\" is used by an earlier statement"),
                    "a Sid unique within the document",
                );
            }
            sids.push(sid);
        }
        check_statement(&mut c, s);
    }
    c.issues
}

fn check_statement(c: &mut Checker<'_>, s: &Map<String, Value>) {
    for key in s.keys().filter(|k| !STATEMENT_ELEMENTS.contains(&k.as_str())) {
        let accepted = match case_match(key, STATEMENT_ELEMENTS) {
            Some(right) => format!("`{right}` (element names are case-sensitive)"),
            None => format!("one of {}", STATEMENT_ELEMENTS.join(", ")),
        };
        c.error("element", key, format!("`{key}` is not a statement element"), accepted);
    }
    if let Some(sid) = s.get("Sid") {
        match sid.as_str() {
            None => c.error(
                "sid",
                "Sid",
                format!("Sid must be a string, not {}", type_name(sid)),
                "a string of letters and digits",
            ),
            Some(text) if !text.chars().all(|ch| ch.is_ascii_alphanumeric()) => c.error(
                "sid",
                "Sid",
                format!("Sid \"{text}\" has characters IAM does not accept"),
                format!(
                    "ASCII letters and digits only, e.g. \"{}\"",
                    text.chars().filter(char::is_ascii_alphanumeric).collect::<String>()
                ),
            ),
            Some(_) => {}
        }
    }
    let effect = s.get("Effect");
    match effect {
        None => c.error("effect", "Effect", "the statement has no Effect", "\"Effect\": \"Allow\" or \"Deny\""),
        Some(Value::String(e)) if e == "Allow" || e == "Deny" => {}
        Some(other) => {
            c.error("effect", "Effect", format!("{other} is not an Effect"), "\"Allow\" or \"Deny\" (case-sensitive)")
        }
    }
    let allow = effect.and_then(Value::as_str) == Some("Allow");

    // Action / NotAction: exactly one, in both kinds of document.
    let actions = match (s.get("Action"), s.get("NotAction")) {
        (Some(_), Some(_)) => {
            c.error(
                "action",
                "NotAction",
                "the statement has both Action and NotAction",
                "exactly one of Action and NotAction",
            );
            Vec::new()
        }
        (None, None) => {
            c.error(
                "action",
                "Action",
                "the statement has no Action",
                match c.kind {
                    DocKind::Trust => "\"Action\": \"sts:AssumeRole\"",
                    DocKind::Identity => "\"Action\": \"service:Action\" or a list of them",
                },
            );
            Vec::new()
        }
        (Some(v), None) => strings(c, "Action", v),
        (None, Some(v)) => strings(c, "NotAction", v),
    };
    let negated = s.contains_key("NotAction");
    for (element, action) in &actions {
        check_action(c, element, action, negated);
    }

    // Resource / NotResource: exactly one in a managed policy, none in a trust policy.
    let resources = match (c.kind, s.get("Resource"), s.get("NotResource")) {
        (DocKind::Trust, r, n) => {
            for (name, present) in [("Resource", r.is_some()), ("NotResource", n.is_some())] {
                if present {
                    c.error(
                        "resource",
                        name,
                        format!("a trust policy cannot have {name}: the role itself is the resource"),
                        "no Resource in a role's trust policy",
                    );
                }
            }
            Vec::new()
        }
        (DocKind::Identity, Some(_), Some(_)) => {
            c.error(
                "resource",
                "NotResource",
                "the statement has both Resource and NotResource",
                "exactly one of Resource and NotResource",
            );
            Vec::new()
        }
        (DocKind::Identity, None, None) => {
            c.error(
                "resource",
                "Resource",
                "the statement has no Resource",
                "\"Resource\": an ARN, \"*\", or a list of them",
            );
            Vec::new()
        }
        (DocKind::Identity, Some(v), None) => strings(c, "Resource", v),
        (DocKind::Identity, None, Some(v)) => strings(c, "NotResource", v),
    };
    for (element, resource) in &resources {
        if let Err(p) = arn::check_resource(resource, c.partition) {
            c.problem(element, p);
        }
    }

    // What IAM accepts but never matches, and what it accepts but a reviewer would not.
    match c.kind {
        DocKind::Identity => {
            let (not_action, not_resource) = (s.contains_key("NotAction"), s.contains_key("NotResource"));
            if !not_action && !not_resource {
                let outcome = resources::check(&actions, &resources);
                // A statement that can match nothing does nothing: the error a user meets only when the job runs.
                let severity = if outcome.nothing_matches { Severity::Error } else { Severity::Warning };
                for m in outcome.mismatches {
                    c.push(severity, "action-resource", &m.element, m.message, Some(m.accepted));
                }
            }
            for advice in security::identity(s, &actions, not_action, &resources, not_resource) {
                c.advise(advice);
            }
        }
        DocKind::Trust => {
            for advice in security::trust(s) {
                c.advise(advice);
            }
        }
    }

    // Principal / NotPrincipal: none in a managed policy, exactly one in a trust policy.
    match (c.kind, s.get("Principal"), s.get("NotPrincipal")) {
        (DocKind::Identity, p, n) => {
            for (name, present) in [("Principal", p.is_some()), ("NotPrincipal", n.is_some())] {
                if present {
                    c.error(
                        "principal",
                        name,
                        format!("a managed policy cannot have {name}: its principal is whoever it is attached to"),
                        "no Principal in an identity-based policy",
                    );
                }
            }
        }
        (DocKind::Trust, Some(_), Some(_)) => {
            c.error(
                "principal",
                "NotPrincipal",
                "the statement has both Principal and NotPrincipal",
                "exactly one of Principal and NotPrincipal",
            );
        }
        (DocKind::Trust, None, None) => c.error(
            "principal",
            "Principal",
            "a trust policy statement must name who may assume the role",
            "\"Principal\": {\"Service\": \"ec2.amazonaws.com\"} (or AWS, Federated)",
        ),
        (DocKind::Trust, Some(p), None) => check_principal(c, "Principal", p),
        // "NotPrincipal must be used with "Effect":"Deny"", and "You cannot use the NotPrincipal element in ... an
        // IAM role trust policy" (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html).
        (DocKind::Trust, None, Some(p)) => {
            let message = if allow {
                "NotPrincipal with \"Effect\": \"Allow\" would trust every other principal; IAM supports NotPrincipal \
                 only with Deny, and never in a role's trust policy"
            } else {
                "IAM does not support NotPrincipal in a role's trust policy"
            };
            c.error(
                "not-principal",
                "NotPrincipal",
                message,
                "name who may assume the role in Principal; exclude principals with a Deny statement conditioned on \
                 aws:PrincipalArn",
            );
            check_principal(c, "NotPrincipal", p);
        }
    }

    if let Some(condition) = s.get("Condition") {
        // The services whose condition keys apply: those of the actions, unless every service may be meant.
        let services: Option<Vec<String>> =
            if negated || actions.iter().any(|(_, a)| !a.contains(':') || a.starts_with('*')) {
                None
            } else {
                let mut list: Vec<String> =
                    actions.iter().filter_map(|(_, a)| a.split(':').next()).map(str::to_ascii_lowercase).collect();
                list.sort();
                list.dedup();
                Some(list)
            };
        check_condition(c, condition, services.as_deref());
    }
}

/// A string or a non-empty list of strings, with each one's element path.
fn strings<'v>(c: &mut Checker<'_>, name: &str, value: &'v Value) -> Vec<(String, &'v str)> {
    match value {
        Value::String(s) => vec![(name.to_string(), s.as_str())],
        Value::Array(items) if items.is_empty() => {
            c.error(name_rule(name), name, format!("{name} is an empty list"), "at least one entry");
            Vec::new()
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let element = format!("{name}[{i}]");
                match item {
                    Value::String(s) => out.push((element, s.as_str())),
                    other => {
                        c.error(name_rule(name), &element, format!("{} is not a string", type_name(other)), "a string")
                    }
                }
            }
            out
        }
        other => {
            c.error(
                name_rule(name),
                name,
                format!("{name} must be a string or a list of strings, not {}", type_name(other)),
                "a string or a list of strings",
            );
            Vec::new()
        }
    }
}

fn name_rule(name: &str) -> &'static str {
    match name {
        "Action" | "NotAction" => "action",
        "Resource" | "NotResource" => "resource",
        _ => "principal",
    }
}

fn check_action(c: &mut Checker<'_>, element: &str, action: &str, negated: bool) {
    let accepted = "\"*\" or service:Action, e.g. \"s3:GetObject\" (wildcards * and ? are allowed in the action name)";
    if action == "*" {
        if c.kind == DocKind::Trust {
            c.warn(
                "trust-action",
                element,
                "\"*\" in a trust policy grants more than assuming the role",
                "\"sts:AssumeRole\"",
            );
        }
        return;
    }
    let Some((prefix, name)) = action.split_once(':') else {
        c.error("action", element, format!("`{action}` has no service prefix"), accepted);
        return;
    };
    if name.contains(':') {
        c.error("action", element, format!("`{action}` has more than one colon"), accepted);
        return;
    }
    if prefix.is_empty() || !prefix.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-') {
        c.error(
            "action",
            element,
            format!("`{prefix}` in `{action}` is not a service prefix (no wildcards there)"),
            accepted,
        );
        return;
    }
    if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "*?-".contains(ch)) {
        c.error("action", element, format!("`{name}` in `{action}` is not an action name"), accepted);
        return;
    }
    if c.kind == DocKind::Trust && !negated {
        let allowed: Vec<&&str> = TRUST_ACTIONS.iter().filter(|t| actions::glob_match(action, t)).collect();
        let list = TRUST_ACTIONS.join(", ");
        if allowed.is_empty() {
            let near = actions::nearest(action, TRUST_ACTIONS.iter().copied());
            let message = match &near {
                Some(n) => format!("`{action}` is not an action a trust policy can grant; did you mean {n}?"),
                None => format!("`{action}` is not an action a trust policy can grant"),
            };
            c.error("trust-action", element, message, list);
        } else if prefix.eq_ignore_ascii_case("sts") && name.contains('*') && name.len() == 1 {
            c.warn("trust-action", element, format!("`{action}` grants more than assuming the role"), list);
        }
        return;
    }
    match actions::table().check_action(prefix, name) {
        Ok(()) => {}
        Err(Unknown::Service { suggestion }) => c.error(
            "unknown-action",
            element,
            match &suggestion {
                Some(s) => {
                    format!("`{action}`: there is no AWS service with the prefix `{prefix}`; did you mean `{s}`?")
                }
                None => format!("`{action}`: there is no AWS service with the prefix `{prefix}`"),
            },
            "a service prefix from the Service Authorization Reference",
        ),
        Err(Unknown::Action { suggestion }) => c.error(
            "unknown-action",
            element,
            match &suggestion {
                Some(s) => format!("`{action}` is not an action of {prefix}; did you mean {s}?"),
                None => format!("`{action}` is not an action of {prefix}"),
            },
            format!("an action {prefix} has (Service Authorization Reference, {})", actions::table().source),
        ),
        Err(Unknown::NoMatch) => c.error(
            "unknown-action",
            element,
            format!("`{action}` matches none of {prefix}'s actions"),
            format!("a pattern that matches at least one action of {prefix}"),
        ),
    }
}

fn check_principal(c: &mut Checker<'_>, name: &str, value: &Value) {
    let accepted =
        "\"*\" or an object with AWS, Service, Federated or CanonicalUser, each a string or a list of strings";
    let map = match value {
        Value::String(s) if s == "*" => return,
        Value::Object(map) if !map.is_empty() => map,
        other => {
            c.error("principal", name, format!("{other} is not a principal"), accepted);
            return;
        }
    };
    for (kind, ids) in map {
        let element = format!("{name}.{kind}");
        let known = ["AWS", "Service", "Federated", "CanonicalUser"];
        if !known.contains(&kind.as_str()) {
            let accepted = match case_match(kind, &known) {
                Some(right) => format!("`{right}` (case-sensitive)"),
                None => "AWS, Service, Federated or CanonicalUser".to_string(),
            };
            c.error("principal", &element, format!("`{kind}` is not a kind of principal"), accepted);
            continue;
        }
        for (element, id) in strings(c, &element, ids) {
            let result = match kind.as_str() {
                "AWS" => arn::check_aws_principal(id, c.partition),
                "Service" => match arn::check_service_principal(id) {
                    Ok(Some(doubt)) => {
                        c.push(Severity::Warning, doubt.rule, &element, doubt.message, Some(doubt.accepted));
                        Ok(())
                    }
                    Ok(None) => Ok(()),
                    Err(p) => Err(p),
                },
                "Federated" => arn::check_federated_principal(id, c.partition),
                _ => arn::check_canonical_user(id),
            };
            if let Err(p) = result {
                c.problem(&element, p);
            }
        }
    }
}

struct Operator {
    category: Category,
    if_exists: bool,
    /// `ForAllValues:` or `ForAnyValue:`.
    set: bool,
}

/// The operator `text` (`ForAnyValue:StringLikeIfExists`), or what it probably meant.
fn parse_operator(text: &str) -> Result<Operator, Option<String>> {
    let (set, rest) = match text.split_once(':') {
        Some(("ForAllValues" | "ForAnyValue", rest)) => (true, rest),
        Some(_) => return Err(near_operator(text)),
        None => (false, text),
    };
    let (if_exists, base) = match rest.strip_suffix("IfExists") {
        Some(base) => (true, base),
        None => (false, rest),
    };
    match OPERATORS.iter().find(|(name, _)| *name == base) {
        Some((_, category)) => Ok(Operator { category: *category, if_exists, set }),
        None => Err(near_operator(text)),
    }
}

/// An operator spelt with other letter case, or within a typo or two of a real one.
fn near_operator(text: &str) -> Option<String> {
    let forms = OPERATORS.iter().flat_map(|(name, _)| {
        let mut forms = vec![name.to_string(), format!("{name}IfExists")];
        for set in ["ForAllValues:", "ForAnyValue:"] {
            forms.push(format!("{set}{name}"));
            forms.push(format!("{set}{name}IfExists"));
        }
        forms
    });
    let forms: Vec<String> = forms.collect();
    forms
        .iter()
        .find(|f| f.eq_ignore_ascii_case(text))
        .cloned()
        .or_else(|| actions::nearest(text, forms.iter().map(String::as_str)))
}

fn check_condition(c: &mut Checker<'_>, condition: &Value, services: Option<&[String]>) {
    let Value::Object(operators) = condition else {
        c.error(
            "condition",
            "Condition",
            format!("Condition must be an object, not {}", type_name(condition)),
            "{\"Operator\": {\"key\": \"value\"}}",
        );
        return;
    };
    for (op, keys) in operators {
        let element = format!("Condition.{op}");
        let operator = match parse_operator(op) {
            Ok(o) => o,
            Err(suggestion) => {
                let message = match &suggestion {
                    Some(s) => format!("`{op}` is not a condition operator; did you mean {s}?"),
                    None => format!("`{op}` is not a condition operator"),
                };
                c.error(
                    "condition-operator",
                    &element,
                    message,
                    "an operator from IAM's list (StringEquals, ArnLike, Bool, ...), optionally with IfExists and \
                     ForAllValues: or ForAnyValue:",
                );
                continue;
            }
        };
        if operator.category == Category::Null && operator.if_exists {
            c.error("condition-operator", &element, "Null cannot take IfExists", "\"Null\"");
        }
        let Value::Object(keys) = keys else {
            c.error(
                "condition",
                &element,
                format!("the operator's value must be an object of condition keys, not {}", type_name(keys)),
                format!("\"{op}\": {{\"key\": \"value\"}}"),
            );
            continue;
        };
        if keys.is_empty() {
            c.error(
                "condition",
                &element,
                "the operator names no condition key",
                format!("\"{op}\": {{\"key\": \"value\"}}"),
            );
        }
        for (key, values) in keys {
            let element = format!("Condition.{op}.{key}");
            let known = check_condition_key(c, &element, key, services);
            check_condition_values(c, &element, &operator, known, values);
        }
    }
}

/// The key's entry in the table, when it is a known one; a warning when it is not a key of the statement's services.
fn check_condition_key(
    c: &mut Checker<'_>,
    element: &str,
    key: &str,
    services: Option<&[String]>,
) -> Option<actions::Key> {
    let Some((prefix, _)) = key.split_once(':') else {
        c.error(
            "condition-key",
            element,
            format!("`{key}` has no prefix"),
            "a condition key such as aws:SourceAccount or s3:prefix",
        );
        return None;
    };
    // An identity provider's keys (`token.actions.githubusercontent.com:sub`) are the provider's claims: IAM takes
    // whatever the provider sends (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif).
    if prefix.contains(['.', '/']) {
        return None;
    }
    let table = actions::table();
    if prefix.eq_ignore_ascii_case("aws") {
        let found = table.global_key(key);
        if found.is_none() {
            let message = match table.nearest_key(&[], key) {
                Some(s) => format!("`{key}` is not a global condition key; did you mean {s}?"),
                None => format!("`{key}` is not a global condition key"),
            };
            c.warn("condition-key", element, message, "a key from AWS's global condition context keys");
        }
        return found;
    }
    let Some(services) = services else {
        // `"Action": "*"` or NotAction: any service's key may apply.
        return table.any_key(key);
    };
    let prefixes: Vec<&str> = services.iter().map(String::as_str).collect();
    if let Some(found) = table.service_key(&prefixes, key) {
        return Some(found);
    }
    let message = match table.nearest_key(&prefixes, key) {
        Some(s) => format!("`{key}` is not a condition key of {}; did you mean {s}?", prefixes.join(", ")),
        None => format!("`{key}` is not a condition key of {}", prefixes.join(", ")),
    };
    c.warn(
        "condition-key",
        element,
        message,
        format!("a global key or a key of {} (Service Authorization Reference)", prefixes.join(", ")),
    );
    table.any_key(key)
}

fn check_condition_values(
    c: &mut Checker<'_>,
    element: &str,
    operator: &Operator,
    key: Option<actions::Key>,
    values: &Value,
) {
    let list: Vec<&Value> = match values {
        Value::Array(items) if items.is_empty() => {
            c.warn("condition-value", element, "an empty list of values never matches", "at least one value");
            return;
        }
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    for v in &list {
        if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            c.error(
                "condition-value",
                element,
                format!("{} is not a condition value", type_name(v)),
                "a string, number or boolean, or a list of them",
            );
            return;
        }
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for v in list.iter().map(|v| text(v)).filter(|v| !v.contains("${")) {
        let (ok, strict, accepted) = match operator.category {
            Category::Null => (v == "true" || v == "false", true, "true or false"),
            Category::Bool => (v == "true" || v == "false", false, "\"true\" or \"false\""),
            Category::Numeric => (v.parse::<f64>().is_ok(), true, "a number"),
            Category::Date => {
                (is_date(&v), true, "an ISO 8601 date or time (2026-01-31, 2026-01-31T12:00:00Z) or epoch seconds")
            }
            Category::Ip => (is_cidr(&v), true, "an IPv4 or IPv6 address or CIDR block, e.g. 203.0.113.0/24"),
            Category::Arn => (v == "*" || arn::split(&v).is_some(), false, "an ARN (wildcards allowed with ArnLike)"),
            Category::String | Category::Binary => (true, false, ""),
        };
        if !ok {
            let message = format!("`{v}` is not a valid value for this operator");
            if strict {
                c.error("condition-value", element, message, accepted);
            } else {
                c.warn("condition-value", element, message, accepted);
            }
        }
    }
    let Some(key) = key else { return };
    let expected = match operator.category {
        Category::Numeric => Some(KeyType::Numeric),
        Category::Date => Some(KeyType::Date),
        Category::Bool => Some(KeyType::Bool),
        Category::Ip => Some(KeyType::IpAddress),
        Category::Arn => Some(KeyType::Arn),
        _ => None,
    };
    if let Some(t) = expected.filter(|t| *t != key.kind) {
        c.warn(
            "condition-operator",
            element,
            format!("{} is a {:?} key, compared with a {t:?} operator", key.name, key.kind),
            format!("an operator for {:?} values", key.kind),
        );
    }
    if operator.set && !key.multivalued {
        c.warn(
            "condition-operator",
            element,
            format!("{} has a single value: ForAllValues:/ForAnyValue: are for multivalued keys", key.name),
            "the operator without the set qualifier",
        );
    }
}

fn is_date(v: &str) -> bool {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let (date, time) = match v.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (v, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let num = |s: &str, len: usize, max: u32| s.len() == len && s.parse::<u32>().is_ok_and(|n| n <= max);
    let date_ok = match parts[..] {
        [y] => num(y, 4, 9999),
        [y, m] => num(y, 4, 9999) && num(m, 2, 12),
        [y, m, d] => num(y, 4, 9999) && num(m, 2, 12) && num(d, 2, 31),
        _ => false,
    };
    let time_ok = time.is_none_or(|t| {
        let t = t.trim_end_matches(['Z', 'z']);
        let t = t.split(['+', '-']).next().unwrap_or(t);
        let mut fields = t.split(':');
        let hh = fields.next().is_some_and(|h| num(h, 2, 23));
        let mm = fields.next().is_none_or(|m| num(m, 2, 59));
        let ss = fields.next().is_none_or(|s| {
            let whole = s.split('.').next().unwrap_or(s);
            num(whole, 2, 60)
        });
        hh && mm && ss && fields.next().is_none()
    });
    date_ok && time_ok
}

fn is_cidr(v: &str) -> bool {
    let (addr, bits) = match v.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits.is_none_or(|b| b.parse::<u8>().is_ok_and(|n| n <= 32)),
        Ok(std::net::IpAddr::V6(_)) => bits.is_none_or(|b| b.parse::<u8>().is_ok_and(|n| n <= 128)),
        Err(_) => false,
    }
}

/// `word` spelt with other letter case among `names`.
fn case_match<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    names.iter().find(|n| n.eq_ignore_ascii_case(word)).copied()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules(doc: Value, kind: DocKind) -> Vec<(&'static str, Severity, String)> {
        check(&doc, kind, Some("aws")).into_iter().map(|i| (i.rule, i.severity, i.element)).collect()
    }

    fn errors(doc: Value, kind: DocKind) -> Vec<(&'static str, String)> {
        rules(doc, kind).into_iter().filter(|(_, s, _)| *s == Severity::Error).map(|(r, _, e)| (r, e)).collect()
    }

    fn trust(statement: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [statement]})
    }

    #[test]
    fn a_good_trust_and_a_good_identity_document_have_no_issue() {
        let t = trust(json!({"Sid": "Trust", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}, "ArnLike": {"aws:SourceArn": "arn:aws:batch:*:123456789012:*"}}}));
        assert_eq!(rules(t, DocKind::Trust), []);
        let p = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": ["s3:GetObject", "s3:List*"],
            "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/${aws:username}/*"],
            "Condition": {"StringLike": {"s3:prefix": ["home/"]}, "Bool": {"aws:SecureTransport": "true"},
                "IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"]}, "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"},
                "NumericLessThan": {"s3:max-keys": 10}}}});
        assert_eq!(rules(p, DocKind::Identity), []);
    }

    #[test]
    fn the_four_documents_of_the_issue_are_errors() {
        assert_eq!(
            errors(trust(json!({"Effect": "Allow", "Principal": 5, "Action": "sts:AssumeRole"})), DocKind::Trust),
            [("principal", "Principal".to_string())]
        );
        let v = json!({"Version": "2017-09-11", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
        assert_eq!(errors(v, DocKind::Identity), [("version", "Version".to_string())]);
        let typo = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjct"], "Resource": "*"}]});
        let issues = check(&typo, DocKind::Identity, None);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].element, "Action[1]");
        assert!(issues[0].message.contains("did you mean s3:GetObject?"), "{}", issues[0].message);
    }

    #[test]
    fn each_element_is_required_or_forbidden_by_the_kind_of_document() {
        let e = errors(trust(json!({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})), DocKind::Trust);
        assert_eq!(e, [("resource", "Resource".into()), ("principal", "Principal".into())]);
        let e = errors(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*"}]}),
            DocKind::Identity,
        );
        assert_eq!(e, [("resource", "Resource".into()), ("principal", "Principal".into())]);
        let e = errors(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "NotAction": "s3:Get*", "Resource": "*", "NotResource": "*"}]}),
            DocKind::Identity,
        );
        assert_eq!(e, [("action", "NotAction".into()), ("resource", "NotResource".into())]);
        let e = errors(
            trust(json!({"Effect": "Allow", "NotPrincipal": {"AWS": "123456789012"}, "Action": "sts:AssumeRole"})),
            DocKind::Trust,
        );
        assert_eq!(e, [("not-principal", "NotPrincipal".into())]);
    }

    #[test]
    fn trust_documents_grant_only_the_assume_role_actions() {
        let e = errors(
            trust(
                json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": ["sts:AssumeRole", "s3:GetObject"]}),
            ),
            DocKind::Trust,
        );
        assert_eq!(e, [("trust-action", "Action[1]".into())]);
        let issues = check(
            &trust(
                json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRol"}),
            ),
            DocKind::Trust,
            None,
        );
        assert!(issues[0].message.contains("did you mean sts:AssumeRole?"), "{:?}", issues);
        let oidc = trust(
            json!({"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"},
            "Action": "sts:AssumeRoleWithWebIdentity", "Condition": {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
            "StringLike": {"token.actions.githubusercontent.com:sub": "repo:o/r:*"}}}),
        );
        assert_eq!(rules(oidc, DocKind::Trust), []);
        for ok in ["sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:AssumeRole*"] {
            assert_eq!(
                errors(
                    trust(json!({"Effect": "Allow", "Principal": {"Federated": "accounts.google.com"}, "Action": ok})),
                    DocKind::Trust
                ),
                [],
                "{ok}"
            );
        }
    }

    #[test]
    fn conditions_check_operators_values_and_keys() {
        let doc = |condition: Value| json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": condition}]});
        assert_eq!(
            errors(doc(json!({"StringEqual": {"aws:SourceAccount": "1"}})), DocKind::Identity),
            [("condition-operator", "Condition.StringEqual".into())]
        );
        assert_eq!(
            errors(doc(json!({"NullIfExists": {"aws:TagKeys": "true"}})), DocKind::Identity),
            [("condition-operator", "Condition.NullIfExists".into())]
        );
        assert_eq!(
            errors(doc(json!({"Null": {"aws:TagKeys": "yes"}})), DocKind::Identity),
            [("condition-value", "Condition.Null.aws:TagKeys".into())]
        );
        assert_eq!(
            errors(doc(json!({"DateGreaterThan": {"aws:CurrentTime": "tomorrow"}})), DocKind::Identity),
            [("condition-value", "Condition.DateGreaterThan.aws:CurrentTime".into())]
        );
        assert_eq!(
            errors(doc(json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}})), DocKind::Identity),
            [("condition-value", "Condition.IpAddress.aws:SourceIp".into())]
        );
        assert_eq!(
            errors(doc(json!({"StringEquals": {"aws:SourceAccount": {"a": 1}}})), DocKind::Identity),
            [("condition-value", "Condition.StringEquals.aws:SourceAccount".into())]
        );
        assert_eq!(
            errors(doc(json!({"StringEquals": {"SourceAccount": "1"}})), DocKind::Identity),
            [("condition-key", "Condition.StringEquals.SourceAccount".into())]
        );
        assert_eq!(
            errors(doc(json!({"ForAnyValue:StringLikeIfExists": {"aws:TagKeys": ["a*"]}})), DocKind::Identity),
            []
        );
        // Unknown keys are warnings, with the nearest key.
        let issues =
            check(&doc(json!({"StringEquals": {"s3:prefx": "a", "aws:SourceAcount": "1"}})), DocKind::Identity, None);
        assert!(issues.iter().all(|i| i.severity == Severity::Warning && i.rule == "condition-key"), "{issues:?}");
        assert!(issues.iter().any(|i| i.message.contains("did you mean aws:SourceAccount?")), "{issues:?}");
        assert!(issues.iter().any(|i| i.message.contains("did you mean s3:prefix?")), "{issues:?}");
    }

    #[test]
    fn statement_level_grammar_sid_effect_and_unknown_elements() {
        let e = errors(
            json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Read-Only", "Effect": "allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "action": "x"},
            {"Sid": "A", "Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]}),
            DocKind::Identity,
        );
        assert_eq!(
            e,
            [
                ("sid", "Sid".into()),
                ("effect", "Effect".into()),
                ("element", "action".into()),
                ("sid-unique", "Sid".into()),
            ]
        );
        assert_eq!(
            errors(json!({"Version": "2012-10-17", "Statement": []}), DocKind::Identity),
            [("statement", "Statement".into())]
        );
        assert_eq!(
            errors(json!({"Version": "2012-10-17", "Statement": "x"}), DocKind::Identity),
            [("statement", "Statement".into())]
        );
        assert_eq!(
            errors(json!({"Version": "2012-10-17", "Statement": [], "Statment": []}), DocKind::Identity)[0],
            ("element", "Statment".into())
        );
        let w = rules(
            json!({"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${aws:username}"}}),
            DocKind::Identity,
        );
        assert_eq!(w.iter().filter(|(r, s, _)| *r == "version" && *s == Severity::Warning).count(), 2, "{w:?}");
    }

    #[test]
    fn dates_and_addresses_are_parsed_as_iam_does() {
        for ok in [
            "2026-01-31",
            "2026-01-31T12:00:00Z",
            "2026-01-31T12:00:00.5Z",
            "2026",
            "1700000000",
            "2026-01-31T12:00+01:00",
            "2026-01-31T12:00:00-05:00",
        ] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in ["tomorrow", "2026-13-01", "31/01/2026", ""] {
            assert!(!is_date(bad), "{bad}");
        }
        assert!(is_cidr("203.0.113.7") && is_cidr("2001:db8::/32") && !is_cidr("203.0.113.0/40") && !is_cidr("host"));
    }
}
