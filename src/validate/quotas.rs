//! Quotas and character sets of the stack's resources that the loader (`stack::build`: name lengths and
//! characters, paths, description lengths, the hard maximum of 20 policies per role, document sizes) does not
//! already check. Each check is one function over the stack.

use crate::stack::Stack;

/// IAM's default quota of managed policies attached to one role; accounts can have it raised (up to the loader's
/// hard maximum of 20) through Service Quotas, and `GetAccountSummary` reports the account's own as
/// `AttachedPoliciesPerRoleQuota` (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
pub(crate) const DEFAULT_ROLE_POLICY_QUOTA: usize = 10;

/// A problem with one of the stack's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) rule: &'static str,
    /// "role `X`", "policy `Y`".
    pub(crate) resource: String,
    pub(crate) element: &'static str,
    pub(crate) message: String,
    pub(crate) accepted: String,
}

/// Every problem of the stack; `role_policy_quota`: the managed policies a role may have (`None`: not checked here,
/// because the account's own quota is read instead).
pub(crate) fn check(stack: &Stack, role_policy_quota: Option<usize>) -> Vec<Problem> {
    let mut out = Vec::new();
    for p in &stack.policies {
        description(&mut out, format!("policy `{}`", p.name), &p.description);
    }
    for r in &stack.roles {
        description(&mut out, format!("role `{}`", r.name), &r.description);
        if let Some(quota) = role_policy_quota {
            policies_per_role(&mut out, &r.name, r.managed_policies.len() + r.customer_policies.len(), quota);
        }
    }
    tags(&mut out, &stack.tags);
    out
}

/// IAM's tags per resource (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html#id_tags_rules_creating).
pub(crate) const TAGS_PER_RESOURCE: usize = 50;
const TAG_KEY_MAX: usize = 128;
const TAG_VALUE_MAX: usize = 256;

/// A tag key or value's characters as IAM allows them: letters, digits and spaces of any script, and
/// `_ . : / = + - @` (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html#id_tags_rules_creating).
pub(crate) fn tag_char_ok(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

/// The stack's tags as IAM checks them on CreateRole/TagRole (and the policy and instance profile calls), plus what
/// wfboot needs to record their keys (`wfboot:tags`: keys separated by spaces, within one tag value).
fn tags(out: &mut Vec<Problem>, tags: &std::collections::BTreeMap<String, String>) {
    let mut problem = |message: String, accepted: &str| {
        out.push(Problem {
            rule: "tags",
            resource: "[tags]".into(),
            element: "tags",
            message,
            accepted: accepted.to_string(),
        })
    };
    let chars = "letters, digits, spaces and _ . : / = + - @";
    // wfboot's own two: wfboot:stack and the record wfboot:tags.
    let room = TAGS_PER_RESOURCE - 2;
    if tags.len() > room {
        problem(
            format!("{} tags; IAM allows {TAGS_PER_RESOURCE} per resource, and wfboot sets 2 of its own", tags.len()),
            &format!("at most {room} tags"),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in tags {
        let n = k.chars().count();
        if n == 0 || n > TAG_KEY_MAX {
            problem(format!("tag key `{k}` is {n} characters long"), "keys of 1 to 128 characters");
        }
        if !k.chars().all(tag_char_ok) {
            problem(format!("tag key `{k}` has a character IAM does not accept in tags"), chars);
        } else if k.contains(' ') {
            problem(
                format!("tag key `{k}` has a space: wfboot records the keys it set in one tag, separated by spaces"),
                "keys without spaces (e.g. `Cost-Center`)",
            );
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            problem(format!("tag key `{k}`: the prefix `aws:` is reserved for AWS"), "keys not starting with aws:");
        }
        if k.to_ascii_lowercase().starts_with("wfboot:") {
            problem(
                format!("tag key `{k}`: the prefix `wfboot:` is wfboot's own (wfboot:stack, wfboot:tags)"),
                "keys not starting with wfboot:",
            );
        }
        if !seen.insert(k.to_lowercase()) {
            problem(format!("tag key `{k}` is given twice (IAM compares tag keys case-insensitively)"), "unique keys");
        }
        if v.chars().count() > TAG_VALUE_MAX {
            problem(
                format!("the value of tag `{k}` is {} characters long", v.chars().count()),
                "values of 0 to 256 characters",
            );
        }
        if !v.chars().all(tag_char_ok) {
            problem(format!("the value of tag `{k}` has a character IAM does not accept in tags: `{v}`"), chars);
        }
    }
    let record: usize = tags.keys().map(|k| k.chars().count()).sum::<usize>() + tags.len().saturating_sub(1);
    if record > TAG_VALUE_MAX {
        problem(
            format!(
                "the keys of the stack's tags are {record} characters together; wfboot records them in one tag value"
            ),
            "keys of at most 256 characters together (with a space between each)",
        );
    }
}

/// IAM's character set for descriptions: tab, line feed, carriage return, printable ASCII and Latin-1 — so no em
/// dash, curly quote or emoji. The pattern is CreateRole's (`[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*`,
/// https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html). CreatePolicy's reference gives no
/// pattern, but the console restricts policy descriptions and they cannot be changed after creation
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreatePolicy.html), so wfboot holds them to the same set.
pub(crate) fn description_char_ok(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{a1}'..='\u{ff}')
}

fn description(out: &mut Vec<Problem>, resource: String, text: &str) {
    let bad: Vec<char> = text.chars().filter(|c| !description_char_ok(*c)).collect();
    if bad.is_empty() {
        return;
    }
    let mut shown: Vec<String> = bad.iter().map(|c| format!("`{c}` (U+{:04X})", *c as u32)).collect();
    shown.dedup();
    let fixed: String = text.chars().map(|c| if description_char_ok(c) { c } else { replacement(c) }).collect();
    out.push(Problem {
        rule: "description-characters",
        resource,
        element: "description",
        message: format!("the description has characters IAM does not accept: {}", shown.join(", ")),
        accepted: format!("tab, newline, printable ASCII and Latin-1 only, e.g. \"{fixed}\""),
    });
}

/// The nearest ASCII for the characters people paste into descriptions.
fn replacement(c: char) -> char {
    match c {
        '\u{2013}' | '\u{2014}' | '\u{2212}' => '-',
        '\u{2018}' | '\u{2019}' => '\'',
        '\u{201c}' | '\u{201d}' => '"',
        _ => '?',
    }
}

fn policies_per_role(out: &mut Vec<Problem>, role: &str, count: usize, quota: usize) {
    if count > quota {
        out.push(Problem {
            rule: "policies-per-role",
            resource: format!("role `{role}`"),
            element: "managed_policies",
            message: format!("{count} managed policies attached, over IAM's quota of {quota} per role"),
            accepted: format!(
                "at most {quota} (merge policies, or have the account's AttachedPoliciesPerRoleQuota raised and lint \
                 with --role-policy-quota N)"
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_character_set_is_iams() {
        for ok in ["Allows Batch to call AWS.", "tab\there\nnewline", "café ©", "\u{a1}\u{ff}"] {
            assert!(ok.chars().all(description_char_ok), "{ok}");
        }
        for bad in ['\u{2014}', '\u{201c}', '\u{1f600}', '\u{7f}', '\u{a0}', '\u{100}'] {
            assert!(!description_char_ok(bad), "{bad:?}");
        }
        let mut out = Vec::new();
        description(&mut out, "role `R`".into(), "Workers \u{2014} \u{201c}render\u{201d}");
        assert_eq!(out.len(), 1);
        assert!(out[0].message.contains("U+2014"), "{}", out[0].message);
        assert!(out[0].accepted.contains("\"Workers - \"render\"\""), "{}", out[0].accepted);
    }

    #[test]
    fn tags_are_checked_as_iam_checks_them_and_a_good_set_passes() {
        let check = |pairs: &[(&str, &str)]| {
            let mut out = Vec::new();
            tags(&mut out, &pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
            out.into_iter().map(|p| p.message).collect::<Vec<_>>()
        };
        assert!(check(&[("CostCenter", "42"), ("team", "imaging/Ünïcode"), ("Empty", ""), ("a:b", "x=y+z@w.v-u_")])
            .is_empty());
        for (bad, expect) in [
            (("aws:owner", "x"), "reserved"),
            (("AWS:Owner", "x"), "reserved"),
            (("wfboot:mine", "x"), "wfboot's own"),
            (("Cost Center", "x"), "space"),
            (("team", "a,b"), "does not accept"),
            (("te#am", "x"), "does not accept"),
            (("", "x"), "0 characters"),
        ] {
            let found = check(&[bad]);
            assert!(found.iter().any(|m| m.contains(expect)), "{bad:?}: {found:?}");
        }
        assert!(check(&[(&"k".repeat(129), "x")])[0].contains("129 characters"));
        assert!(check(&[("k", &"v".repeat(257))])[0].contains("257 characters"));
        let many: Vec<(String, String)> = (0..49).map(|i| (format!("k{i}"), String::new())).collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(check(&refs).iter().any(|m| m.contains("49 tags")));
        assert!(check(&refs[..48]).is_empty());
        assert!(check(&[("Team", "a"), ("team", "b")]).iter().any(|m| m.contains("twice")));
    }

    #[test]
    fn more_policies_than_the_quota_is_a_problem_and_the_quota_itself_is_not() {
        let mut out = Vec::new();
        policies_per_role(&mut out, "R", 10, DEFAULT_ROLE_POLICY_QUOTA);
        assert!(out.is_empty());
        policies_per_role(&mut out, "R", 11, DEFAULT_ROLE_POLICY_QUOTA);
        assert_eq!(out[0].rule, "policies-per-role");
        assert!(out[0].message.contains("11 managed policies"), "{}", out[0].message);
    }
}
