//! Quotas and character sets of the stack's resources that the loader (`stack::build`: name lengths and
//! characters, paths, description lengths, the hard maximum of 20 policies per role, document sizes) does not
//! already check. Each check is one function over the stack; tag rules join here as one more when stacks have tags.

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
    out
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
    fn more_policies_than_the_quota_is_a_problem_and_the_quota_itself_is_not() {
        let mut out = Vec::new();
        policies_per_role(&mut out, "R", 10, DEFAULT_ROLE_POLICY_QUOTA);
        assert!(out.is_empty());
        policies_per_role(&mut out, "R", 11, DEFAULT_ROLE_POLICY_QUOTA);
        assert_eq!(out[0].rule, "policies-per-role");
        assert!(out[0].message.contains("11 managed policies"), "{}", out[0].message);
    }
}
