//! Policy documents compared by meaning, not by text.
//!
//! IAM returns documents URL-encoded, may reorder keys, and accepts a single string wherever a list of one is
//! allowed. Two documents are equal here when IAM would evaluate them the same way for those differences:
//! key order, whitespace, string vs list, order and duplicates within action/resource/principal lists, order of
//! statements, and an empty `Sid`.

use serde_json::{Map, Value};

/// Decode a document as IAM returns it (URL-encoded JSON) or as given (plain JSON).
pub(crate) fn parse_returned(text: &str) -> Result<Value, Unparsable> {
    let decoded = if text.trim_start().starts_with('{') {
        std::borrow::Cow::Borrowed(text)
    } else {
        percent_encoding::percent_decode_str(text).decode_utf8().map_err(|e| Unparsable::NotUtf8(e.to_string()))?
    };
    serde_json::from_str(&decoded).map_err(|e| Unparsable::NotJson(e.to_string()))
}

/// Why a returned document could not be read, with the decoder's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unparsable {
    NotUtf8(String),
    NotJson(String),
}

impl std::fmt::Display for Unparsable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unparsable::NotUtf8(e) => write!(f, "document is not UTF-8: {e}"),
            Unparsable::NotJson(e) => write!(f, "document is not valid JSON: {e}"),
        }
    }
}

pub(crate) fn same_meaning(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

/// The canonical form used for comparison.
pub(crate) fn normalize(doc: &Value) -> Value {
    let Value::Object(map) = doc else { return doc.clone() };
    let mut out = Map::new();
    for (k, v) in map {
        if k == "Statement" {
            let mut statements: Vec<Value> = match v {
                Value::Array(items) => items.iter().map(normalize_statement).collect(),
                other => vec![normalize_statement(other)],
            };
            statements.sort_by_key(|s| s.to_string());
            statements.dedup();
            out.insert(k.clone(), Value::Array(statements));
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn normalize_statement(statement: &Value) -> Value {
    let Value::Object(map) = statement else { return statement.clone() };
    let mut out = Map::new();
    for (k, v) in map {
        let v = match k.as_str() {
            "Sid" if v.as_str() == Some("") => continue,
            "Action" | "NotAction" | "Resource" | "NotResource" => string_set(v),
            "Principal" | "NotPrincipal" => match v {
                Value::Object(kinds) => {
                    Value::Object(kinds.iter().map(|(kind, ids)| (kind.clone(), string_set(ids))).collect())
                }
                other => other.clone(),
            },
            "Condition" => match v {
                Value::Object(ops) => Value::Object(
                    ops.iter()
                        .map(|(op, keys)| {
                            let keys = match keys {
                                Value::Object(keys) => Value::Object(
                                    keys.iter().map(|(key, vals)| (key.clone(), string_set(vals))).collect(),
                                ),
                                other => other.clone(),
                            };
                            (op.clone(), keys)
                        })
                        .collect(),
                ),
                other => other.clone(),
            },
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

/// A string or list of strings as a sorted list without duplicates; anything else unchanged.
fn string_set(v: &Value) -> Value {
    match v {
        Value::String(_) => Value::Array(vec![v.clone()]),
        Value::Array(items) => {
            let mut items = items.clone();
            items.sort_by_key(|i| i.to_string());
            items.dedup();
            Value::Array(items)
        }
        other => other.clone(),
    }
}

/// The service principals a trust document names (for plan output), sorted.
pub(crate) fn principals(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Array(statements)) = normalize(doc).get("Statement") {
        for s in statements {
            if let Some(Value::Object(kinds)) = s.get("Principal") {
                for (kind, ids) in kinds {
                    for id in ids.as_array().into_iter().flatten() {
                        out.push(format!("{kind}:{}", id.as_str().unwrap_or_default()));
                    }
                }
            } else if let Some(p) = s.get("Principal").and_then(Value::as_str) {
                out.push(p.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The condition keys a document's statements test (`aws:SourceAccount`, ...), sorted, for plan output.
pub(crate) fn condition_keys(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Array(statements)) = normalize(doc).get("Statement") {
        for s in statements {
            if let Some(Value::Object(operators)) = s.get("Condition") {
                for keys in operators.values() {
                    out.extend(keys.as_object().into_iter().flat_map(|k| k.keys().cloned()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_whitespace_and_single_strings_do_not_matter() {
        let a = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        let b: Value = serde_json::from_str(
            r#"{ "Statement": { "Action": ["sts:AssumeRole"], "Principal": {"Service": ["ec2.amazonaws.com"]},
            "Sid": "", "Effect": "Allow" }, "Version": "2012-10-17" }"#,
        )
        .unwrap();
        assert!(same_meaning(&a, &b));
    }

    #[test]
    fn url_encoded_documents_as_iam_returns_them_are_decoded() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22batch.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";
        let doc = parse_returned(encoded).unwrap();
        assert_eq!(principals(&doc), vec!["Service:batch.amazonaws.com"]);
        assert!(parse_returned("%7Bnot json").is_err());
    }

    #[test]
    fn a_different_principal_action_or_effect_is_a_difference() {
        let base = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        let mut other = base.clone();
        other["Statement"][0]["Principal"]["Service"] = json!("lambda.amazonaws.com");
        assert!(!same_meaning(&base, &other));
        let mut other = base.clone();
        other["Statement"][0]["Effect"] = json!("Deny");
        assert!(!same_meaning(&base, &other));
        let mut other = base.clone();
        other["Statement"][0]["Action"] = json!(["sts:AssumeRole", "sts:TagSession"]);
        assert!(!same_meaning(&base, &other));
    }

    #[test]
    fn condition_keys_are_listed_once_each_and_a_trust_change_of_conditions_only_says_so() {
        let plain = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        let mut hardened = plain.clone();
        hardened["Statement"][0]["Condition"] =
            json!({"StringEquals": {"aws:SourceAccount": "1"}, "ArnLike": {"aws:SourceArn": "a"}});
        assert_eq!(condition_keys(&hardened), ["aws:SourceAccount", "aws:SourceArn"]);
        assert!(condition_keys(&plain).is_empty());
        let change = crate::resources::role::Change::UpdateAssumeRolePolicy {
            role: "R".into(),
            current: plain.clone(),
            desired: hardened.clone(),
        };
        assert_eq!(
            change.to_string(),
            "update trust document (Service:batch.amazonaws.com): conditions none -> aws:SourceAccount, aws:SourceArn"
        );
    }

    #[test]
    fn statement_order_and_list_order_do_not_matter() {
        let a = json!({"Statement": [{"Effect": "Allow", "Action": ["b", "a"], "Resource": "*"}, {"Effect": "Deny", "Action": "c", "Resource": "*"}]});
        let b = json!({"Statement": [{"Effect": "Deny", "Action": "c", "Resource": ["*"]}, {"Effect": "Allow", "Action": ["a", "b", "a"], "Resource": "*"}]});
        assert!(same_meaning(&a, &b));
    }
}
