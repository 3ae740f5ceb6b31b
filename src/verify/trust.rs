//! May a service assume a role? The role's trust document evaluated offline as IAM evaluates a resource policy
//! for `sts:AssumeRole` requested by a service principal, with the request context the service sends
//! (`aws:SourceAccount`, `aws:SourceArn`).
//!
//! IAM's rules, from the policy evaluation logic and the condition operators reference
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html,
//! https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
//! a matching `Deny` wins over any `Allow`; nothing matching is an implicit deny; a service principal needs no
//! identity policy, the trust document alone decides. A condition on a key the request lacks does not hold,
//! except for the negated operators (`StringNotEquals`, `ArnNotLike`, ...), `...IfExists` and `ForAllValues:`,
//! which hold, and `Null`, which tests exactly that. An operator wfboot does not know makes the verdict
//! unverified rather than guessed. The verdicts are checked against iam-simulate in `tests` below.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::policy_eval::wildcard_match;

/// IAM's decision (its EvalDecision words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Decision {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

/// The verdict on one service's `sts:AssumeRole` of one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TrustVerdict {
    pub(crate) decision: Decision,
    /// Indexes of the deciding statements (the Deny ones of an explicit deny, the Allow ones of an allow).
    pub(crate) matched: Vec<usize>,
    /// Condition keys the request lacks, of the statements whose principal and action match.
    pub(crate) missing: Vec<String>,
    /// Why the document cannot be evaluated here (an unknown condition operator, a malformed statement).
    pub(crate) unsupported: Option<String>,
}

/// The request context: key (as IAM spells it; compared case-insensitively) to its values.
pub(crate) type Context = BTreeMap<String, Vec<String>>;

/// `service` asking to assume the role whose trust document is `trust`, with `context`.
pub(crate) fn evaluate(trust: &Value, service: &str, action: &str, context: &Context) -> TrustVerdict {
    let statements: Vec<&Value> = match trust.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => return unsupported("the trust document has no Statement"),
    };
    let context: BTreeMap<String, &Vec<String>> = context.iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let (mut allows, mut denies, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for (index, statement) in statements.iter().enumerate() {
        let Some(statement) = statement.as_object() else {
            return unsupported(&format!("Statement[{index}] is not an object"));
        };
        let deny = match statement.get("Effect").and_then(Value::as_str) {
            Some("Allow") => false,
            Some("Deny") => true,
            _ => return unsupported(&format!("Statement[{index}].Effect is neither Allow nor Deny")),
        };
        let principal = match (statement.get("Principal"), statement.get("NotPrincipal")) {
            (Some(p), None) => names_service(p, service),
            (None, Some(p)) => !names_service(p, service),
            _ => return unsupported(&format!("Statement[{index}] needs exactly one of Principal and NotPrincipal")),
        };
        let action_fit = match (statement.get("Action"), statement.get("NotAction")) {
            (Some(a), None) => strings(a).iter().any(|p| action_matches(p, action)),
            (None, Some(a)) => !strings(a).iter().any(|p| action_matches(p, action)),
            _ => return unsupported(&format!("Statement[{index}] needs exactly one of Action and NotAction")),
        };
        if !principal || !action_fit {
            continue;
        }
        let holds = match statement.get("Condition") {
            None => true,
            Some(Value::Object(ops)) => {
                let mut all = true;
                for (operator, keys) in ops {
                    let Some(keys) = keys.as_object() else {
                        return unsupported(&format!("Statement[{index}].Condition.{operator} is not an object"));
                    };
                    for (key, values) in keys {
                        let present = context.get(&key.to_ascii_lowercase()).map(|v| v.as_slice());
                        match condition(operator, present, &strings(values)) {
                            Ok(true) => {}
                            Ok(false) => {
                                all = false;
                                // `Null` asks whether the key is there: its absence is the answer, not a gap.
                                let tests_absence = operator.ends_with("Null");
                                if present.is_none() && !tests_absence && !missing.contains(key) {
                                    missing.push(key.clone());
                                }
                            }
                            Err(why) => return unsupported(&format!("Statement[{index}]: {why}")),
                        }
                    }
                }
                all
            }
            Some(_) => return unsupported(&format!("Statement[{index}].Condition is not an object")),
        };
        if holds {
            if deny {
                denies.push(index);
            } else {
                allows.push(index);
            }
        }
    }
    let (decision, matched) = if !denies.is_empty() {
        (Decision::ExplicitDeny, denies)
    } else if !allows.is_empty() {
        (Decision::Allowed, allows)
    } else {
        (Decision::ImplicitDeny, Vec::new())
    };
    TrustVerdict { decision, matched, missing, unsupported: None }
}

fn unsupported(why: &str) -> TrustVerdict {
    TrustVerdict {
        decision: Decision::ImplicitDeny,
        matched: Vec::new(),
        missing: Vec::new(),
        unsupported: Some(why.to_string()),
    }
}

/// A string, list of strings, number or boolean as strings (IAM reads condition values as text).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// Does a `Principal` element name the service? `"*"` and `{"AWS": "*"}` name every principal.
fn names_service(principal: &Value, service: &str) -> bool {
    match principal {
        Value::String(s) => s == "*",
        Value::Object(kinds) => kinds.iter().any(|(kind, ids)| {
            let ids = strings(ids);
            match kind.as_str() {
                "Service" => ids.iter().any(|id| id == service),
                "AWS" => ids.iter().any(|id| id == "*"),
                _ => false,
            }
        }),
        _ => false,
    }
}

/// Actions are case-insensitive and may hold `*` and `?`.
fn action_matches(pattern: &str, action: &str) -> bool {
    wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// One condition operator on one key: `present` is the request's values for it, `None` when absent.
fn condition(operator: &str, present: Option<&[String]>, wanted: &[String]) -> Result<bool, String> {
    let (set, rest) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
        (Some(false), rest)
    } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
        (Some(true), rest)
    } else {
        (None, operator)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    if base == "Null" {
        let want_absent = wanted.iter().any(|w| w.eq_ignore_ascii_case("true"));
        return Ok(present.is_none() == want_absent);
    }
    let (negated, compare): (bool, fn(&str, &str) -> bool) = match base {
        "StringEquals" => (false, |p, v| p == v),
        "StringNotEquals" => (true, |p, v| p == v),
        "StringEqualsIgnoreCase" => (false, |p, v| p.eq_ignore_ascii_case(v)),
        "StringNotEqualsIgnoreCase" => (true, |p, v| p.eq_ignore_ascii_case(v)),
        "StringLike" => (false, wildcard_match),
        "StringNotLike" => (true, wildcard_match),
        "ArnEquals" | "ArnLike" => (false, arn_like),
        "ArnNotEquals" | "ArnNotLike" => (true, arn_like),
        "Bool" => (false, |p, v| p.eq_ignore_ascii_case(v)),
        other => return Err(format!("condition operator `{other}` is not evaluated offline")),
    };
    let Some(values) = present else {
        // An absent key: only the negated operators, IfExists and ForAllValues hold.
        return Ok(if_exists || negated || set == Some(true));
    };
    let fits = |v: &String| wanted.iter().any(|p| compare(p, v));
    Ok(match (set, negated) {
        (None | Some(false), false) => values.iter().any(fits),
        (None, true) => !values.iter().any(fits),
        (Some(false), true) => values.iter().any(|v| !fits(v)),
        (Some(true), false) => values.iter().all(fits),
        (Some(true), true) => values.iter().all(|v| !fits(v)),
    })
}

/// `ArnLike`: each of the six colon-separated parts matched on its own, with `*` and `?`.
fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| wildcard_match(p, a))
}

#[cfg(test)]
mod tests;
