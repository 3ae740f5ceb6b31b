//! A policy's `Condition` block against what is known of a request's context, for the evaluations whose context
//! wfboot knows (the service control policies over the pre-flight's requests, `policy_eval::scp`).
//!
//! Follows "IAM JSON policy elements: Condition operators"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>) and
//! "Single-valued vs. multivalued context keys"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html>):
//! operators are ANDed, the keys of one operator are ANDed, the values of one key are ORed; a key the request lacks
//! makes a positive operator false and a negated one (`StringNotEquals`, `ArnNotLike`) true; `...IfExists` is true
//! when the key is absent; `Null` tests presence; `ForAnyValue:` is false and `ForAllValues:` true for an absent
//! key. Only the string, ARN, Bool and Null operators are evaluated: a numeric, date or IP operator, a policy
//! variable in a value, or a key whose value the caller does not know makes the condition `Unknown` (never true).

use serde_json::{Map, Value};

use super::{wildcard_match, Fit};

/// What is known of a request's context: the keys it carries with their values, and which keys are known to be
/// absent when not listed (those the request's own parameters decide, such as `aws:RequestTag/...`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    /// Lower-cased key, its values, whether it is multivalued (`aws:TagKeys`).
    entries: Vec<(String, Vec<String>, bool)>,
    /// Lower-cased keys, or prefixes ending in `/`, absent from the request when not in `entries`.
    complete: Vec<String>,
}

impl Context {
    /// `entries`: (key, values, multivalued). `complete`: the keys (or `prefix/`) absent unless listed.
    pub(crate) fn new(entries: &[(&str, Vec<String>, bool)], complete: &[&str]) -> Context {
        Context {
            entries: entries.iter().map(|(k, v, list)| (k.to_ascii_lowercase(), v.clone(), *list)).collect(),
            complete: complete.iter().map(|k| k.to_ascii_lowercase()).collect(),
        }
    }

    /// The key's values: `Some(Some(..))` present, `Some(None)` known absent, `None` unknown. Condition key names
    /// are case-insensitive (IAM user guide, "IAM JSON policy elements: Condition").
    fn get(&self, key: &str) -> Option<Option<(&[String], bool)>> {
        let key = key.to_ascii_lowercase();
        if let Some((_, values, list)) = self.entries.iter().find(|(k, _, _)| *k == key) {
            return Some(Some((values.as_slice(), *list)));
        }
        let known = self.complete.iter().any(|c| *c == key || (c.ends_with('/') && key.starts_with(c.as_str())));
        known.then_some(None)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    None,
    AnyValue,
    AllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    ArnLike,
    Bool,
}

/// Whether `condition` holds for the request `context` describes, as far as it can be told.
pub(super) fn fit(condition: &Map<String, Value>, context: &Context) -> Fit {
    let mut all = Fit::Yes;
    for (operator, keys) in condition {
        let Value::Object(keys) = keys else { return Fit::Unknown };
        for (key, values) in keys {
            all = all.and(one(operator, key, values, context));
            if all == Fit::No {
                return Fit::No;
            }
        }
    }
    all
}

/// One operator on one key.
fn one(operator: &str, key: &str, values: &Value, context: &Context) -> Fit {
    let Some(wanted) = strings(values) else { return Fit::Unknown };
    if wanted.iter().any(|v| v.contains("${")) {
        return Fit::Unknown;
    }
    let Some(present) = context.get(key) else { return Fit::Unknown };
    let present = present.filter(|(v, _)| !v.is_empty());
    if operator == "Null" {
        // "true": the key is absent; "false": it is present.
        return match wanted.as_slice() {
            [w] if w.eq_ignore_ascii_case("true") => Fit::from(present.is_none()),
            [w] if w.eq_ignore_ascii_case("false") => Fit::from(present.is_some()),
            _ => Fit::Unknown,
        };
    }
    let (set, rest) = match operator.split_once(':') {
        Some(("ForAnyValue", rest)) => (Set::AnyValue, rest),
        Some(("ForAllValues", rest)) => (Set::AllValues, rest),
        Some(_) => return Fit::Unknown,
        None => (Set::None, operator),
    };
    let (rest, if_exists) = match rest.strip_suffix("IfExists") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (base, negated) = match rest {
        "StringEquals" => (Base::StringEquals, false),
        "StringNotEquals" => (Base::StringEquals, true),
        "StringEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, true),
        "StringLike" => (Base::StringLike, false),
        "StringNotLike" => (Base::StringLike, true),
        "ArnEquals" | "ArnLike" => (Base::ArnLike, false),
        "ArnNotEquals" | "ArnNotLike" => (Base::ArnLike, true),
        "Bool" if set == Set::None => (Base::Bool, false),
        _ => return Fit::Unknown,
    };
    if set != Set::None && if_exists {
        return Fit::Unknown;
    }
    let matches_one = |v: &str| {
        let any = wanted.iter().any(|w| match base {
            Base::StringEquals => w == v,
            Base::StringEqualsIgnoreCase => w.to_lowercase() == v.to_lowercase(),
            Base::StringLike | Base::ArnLike => wildcard_match(w, v),
            Base::Bool => w.eq_ignore_ascii_case(v),
        });
        any != negated
    };
    match (set, present) {
        (Set::None, None) => Fit::from(if_exists || negated),
        // A multivalued key is meant for the set operators; without one, the outcome is not guessed.
        (Set::None, Some((_, true))) => Fit::Unknown,
        (Set::None, Some((values, false))) => Fit::from(values.iter().any(|v| matches_one(v))),
        (Set::AnyValue, None) => Fit::No,
        (Set::AnyValue, Some((values, _))) => Fit::from(values.iter().any(|v| matches_one(v))),
        (Set::AllValues, None) => Fit::Yes,
        (Set::AllValues, Some((values, _))) => Fit::from(values.iter().all(|v| matches_one(v))),
    }
}

/// A condition value: a string, a boolean or number (as text), or a list of them.
fn strings(value: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|s| vec![s]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn context() -> Context {
        Context::new(
            &[
                ("aws:RequestTag/team", vec!["x".into()], false),
                ("aws:TagKeys", vec!["team".into(), "wfboot:stack".into()], true),
                ("aws:RequestedRegion", vec!["us-east-1".into()], false),
            ],
            &["aws:RequestTag/", "aws:TagKeys", "aws:RequestedRegion"],
        )
    }

    fn untagged() -> Context {
        Context::new(&[("aws:RequestedRegion", vec!["us-east-1".into()], false)], &["aws:RequestTag/", "aws:TagKeys"])
    }

    fn check(condition: Value, ctx: &Context) -> Fit {
        fit(condition.as_object().unwrap(), ctx)
    }

    #[test]
    fn operators_follow_iam_condition_logic() {
        let c = context();
        let u = untagged();
        let cases: Vec<(Value, &Context, Fit)> = vec![
            (json!({"Null": {"aws:RequestTag/team": "true"}}), &c, Fit::No),
            (json!({"Null": {"aws:RequestTag/team": "true"}}), &u, Fit::Yes),
            (json!({"Null": {"aws:RequestTag/team": "false"}}), &u, Fit::No),
            (json!({"Null": {"aws:TagKeys": "true"}}), &u, Fit::Yes),
            (json!({"StringEquals": {"aws:RequestTag/team": ["y", "x"]}}), &c, Fit::Yes),
            (json!({"StringEquals": {"aws:RequestTag/team": "X"}}), &c, Fit::No),
            (json!({"StringEqualsIgnoreCase": {"aws:RequestTag/team": "X"}}), &c, Fit::Yes),
            (json!({"StringNotEquals": {"aws:RequestTag/team": "x"}}), &c, Fit::No),
            (json!({"StringNotEquals": {"aws:RequestTag/team": "x"}}), &u, Fit::Yes),
            (json!({"StringEquals": {"aws:RequestTag/team": "x"}}), &u, Fit::No),
            (json!({"StringEqualsIfExists": {"aws:RequestTag/team": "y"}}), &u, Fit::Yes),
            (json!({"StringEqualsIfExists": {"aws:RequestTag/team": "y"}}), &c, Fit::No),
            (json!({"StringLike": {"aws:RequestedRegion": "us-*"}}), &c, Fit::Yes),
            (json!({"StringNotLike": {"aws:RequestedRegion": "eu-*"}}), &c, Fit::Yes),
            (json!({"ForAnyValue:StringEquals": {"aws:TagKeys": "team"}}), &c, Fit::Yes),
            (json!({"ForAnyValue:StringEquals": {"aws:TagKeys": "team"}}), &u, Fit::No),
            (json!({"ForAllValues:StringEquals": {"aws:TagKeys": "team"}}), &c, Fit::No),
            (json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "wfboot:stack"]}}), &c, Fit::Yes),
            (json!({"ForAllValues:StringEquals": {"aws:TagKeys": "team"}}), &u, Fit::Yes),
            (json!({"StringEquals": {"aws:TagKeys": "team"}}), &c, Fit::Unknown),
            (json!({"StringEquals": {"aws:PrincipalTag/team": "x"}}), &c, Fit::Unknown),
            (json!({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}), &c, Fit::Unknown),
            (json!({"StringEquals": {"aws:RequestTag/team": "${aws:username}"}}), &c, Fit::Unknown),
            (
                json!({"StringEquals": {"aws:RequestedRegion": "us-east-1"}, "Null": {"aws:RequestTag/team": "true"}}),
                &c,
                Fit::No,
            ),
            (json!({"StringEquals": {"AWS:requestedregion": "us-east-1"}}), &c, Fit::Yes),
        ];
        for (condition, ctx, want) in cases {
            assert_eq!(check(condition.clone(), ctx), want, "{condition}");
        }
    }
}
