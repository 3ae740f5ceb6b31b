//! Actions against the resources of their statement: each action acts on the resource types the Service
//! Authorization Reference lists for it, and a `Resource` entry that no listed type's ARN format can match is never
//! matched by a request for that action — IAM accepts the document, and the permission silently does nothing.
//!
//! The resource types and their ARN formats come from the same generated table as the actions ([`super::actions`]).
//! "If the Resource types column is empty, the action doesn't support resource-level permissions and you must
//! specify all resources ("*")" (https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html).
//!
//! Matching is conservative: a pair is reported only when no ARN can match both the policy's resource and the
//! type's format, so a finding never depends on guessing the author's meaning.

use super::actions::{self, ActionRef};

/// One token of an ARN or ARN format: a character, or a wildcard for any character but those of `except`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    /// Exactly one character.
    One {
        except: &'static str,
    },
    /// Any run of characters, the empty one included.
    Any {
        except: &'static str,
    },
}

/// What a wildcard stays within: its segment (no `:`), or the whole resource.
fn within(colon: bool) -> &'static str {
    if colon {
        ""
    } else {
        ":"
    }
}

/// Placeholders whose values can hold neither `/` nor `:`. Only the one whose rule is both documented and worth it:
/// "Bucket names can consist only of lowercase letters, numbers, periods (.), and hyphens (-)"
/// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html), so that `arn:aws:s3:::b/*` is
/// known not to be a bucket. Every other placeholder may hold anything.
const SINGLE_NAME_PLACEHOLDERS: &[&str] = &["${BucketName}"];

/// The segment an ARN's character is in: 0 `arn`, 1 partition, 2 service, 3 region, 4 account, 5 the resource.
const RESOURCE_SEGMENT: usize = 5;

/// A policy's `Resource` entry as tokens. Wildcards follow IAM's rules
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html#reference_policies_elements_resource_wildcards):
/// `*` and `?` stay within their segment, except that a `*` ending a segment "can expand to match beyond the colon
/// boundaries" (taken for the region and account; a partition or service that reached past its colon would make
/// the ARN name another service). Policy variables (`${aws:username}`) stand for any text.
fn resource_tokens(arn: &str) -> Vec<Token> {
    let chars: Vec<char> = arn.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut segment = 0;
    let mut i = 0;
    while i < chars.len() {
        let in_resource = segment >= RESOURCE_SEGMENT;
        match chars[i] {
            '$' if chars.get(i + 1) == Some(&'{') => {
                let end = chars[i..].iter().position(|&c| c == '}').map_or(chars.len(), |p| i + p + 1);
                out.push(Token::Any { except: within(in_resource) });
                i = end;
                continue;
            }
            '*' => {
                let ends_segment = chars.get(i + 1).is_none_or(|&c| c == ':');
                out.push(Token::Any { except: within(in_resource || (ends_segment && (3..=4).contains(&segment))) });
            }
            '?' => out.push(Token::One { except: within(in_resource) }),
            ':' => {
                segment += 1;
                out.push(Token::Char(':'));
            }
            c => out.push(Token::Char(c.to_ascii_lowercase())),
        }
        i += 1;
    }
    out
}

/// An ARN format of the table as tokens: each `${Placeholder}` stands for one or more characters (of one segment
/// before the resource, of any kind within it); a literal `*` (some formats have them) for any run.
fn format_tokens(format: &str) -> Vec<Token> {
    let chars: Vec<char> = format.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut segment = 0;
    let mut i = 0;
    while i < chars.len() {
        let in_resource = segment >= RESOURCE_SEGMENT;
        let placeholder = match chars[i] {
            '$' if chars.get(i + 1) == Some(&'{') => true,
            // One format writes `{Date-and-Time-Stamp-of-Backup}` without the `$`.
            '{' => true,
            _ => false,
        };
        if placeholder {
            let end = chars[i..].iter().position(|&c| c == '}').map_or(chars.len(), |p| i + p + 1);
            let name: String = chars[i..end].iter().collect();
            let except = if SINGLE_NAME_PLACEHOLDERS.contains(&name.as_str()) { ":/" } else { within(in_resource) };
            out.push(Token::One { except });
            out.push(Token::Any { except });
            i = end;
            continue;
        }
        match chars[i] {
            '*' => out.push(Token::Any { except: within(in_resource) }),
            ':' => {
                segment += 1;
                out.push(Token::Char(':'));
            }
            c => out.push(Token::Char(c.to_ascii_lowercase())),
        }
        i += 1;
    }
    out
}

/// Whether some string matches both token lists: a walk over pairs of positions, stepping one character that both
/// sides accept (letters compared case-insensitively, to stay on the safe side).
fn intersect(a: &[Token], b: &[Token]) -> bool {
    let width = b.len() + 1;
    let mut seen = vec![false; (a.len() + 1) * width];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        if std::mem::replace(&mut seen[i * width + j], true) {
            continue;
        }
        if i == a.len() && j == b.len() {
            return true;
        }
        let mut push = |i: usize, j: usize| {
            if !seen[i * width + j] {
                stack.push((i, j));
            }
        };
        if let Some(Token::Any { .. }) = a.get(i) {
            push(i + 1, j);
        }
        if let Some(Token::Any { .. }) = b.get(j) {
            push(i, j + 1);
        }
        let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) else { continue };
        let accepts = match (x, y) {
            (Token::Char(p), Token::Char(q)) => p == q,
            (Token::Char(c), Token::One { except } | Token::Any { except })
            | (Token::One { except } | Token::Any { except }, Token::Char(c)) => !except.contains(c),
            // Two wildcards share a letter whatever they exclude.
            _ => true,
        };
        if accepts {
            let next_i = if matches!(x, Token::Any { .. }) { i } else { i + 1 };
            let next_j = if matches!(y, Token::Any { .. }) { j } else { j + 1 };
            push(next_i, next_j);
        }
    }
    false
}

/// Whether a request for a resource of `format` (an ARN format of the table) can match the policy's `resource`.
pub(crate) fn could_match(resource: &str, format: &str) -> bool {
    resource == "*" || intersect(&resource_tokens(resource), &format_tokens(format))
}

/// An action that acts on a resource: `resource` is `*`, or the action has a resource type whose format can match it.
fn acts_on(action: &ActionRef<'_>, resource: &str) -> bool {
    resource == "*" || action.resource_types().any(|t| t.arns().any(|f| could_match(resource, f)))
}

/// What is wrong with one `Action` or `Resource` entry of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// `Action[1]`, `Resource`.
    pub(crate) element: String,
    pub(crate) message: String,
    pub(crate) accepted: String,
}

/// The outcome for a statement: its mismatches, and whether nothing at all matched (the statement does nothing).
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) mismatches: Vec<Mismatch>,
    pub(crate) nothing_matches: bool,
}

/// How many resource types a message lists before "and N more".
const LISTED_TYPES: usize = 4;

/// Check the `Action` entries against the `Resource` entries of one statement (both with their element paths). An
/// action entry is reported when none of the actions it stands for acts on any of the resources; a resource entry
/// when no action acts on it (only when every action entry could be expanded, and some other pair matched: with
/// nothing matching at all, the actions' findings say it). Entries that are not valid (reported by the grammar
/// already) and `"Action": "*"` are skipped.
pub(crate) fn check(actions: &[(String, &str)], resources: &[(String, &str)]) -> Outcome {
    let table = actions::table();
    let mut expanded: Vec<(&str, &str, Vec<ActionRef<'_>>)> = Vec::new();
    let mut all_expanded = true;
    for (element, action) in actions {
        let found = match action.split_once(':') {
            Some((prefix, name)) if *action != "*" => table.expand(prefix, name),
            _ => Vec::new(),
        };
        if found.is_empty() {
            all_expanded = false;
        } else {
            expanded.push((element, action, found));
        }
    }
    let resources: Vec<(&str, &str)> = resources
        .iter()
        .filter(|(_, r)| *r == "*" || super::arn::check_resource(r, None).is_ok())
        .map(|(e, r)| (e.as_str(), *r))
        .collect();
    if expanded.is_empty() || resources.is_empty() {
        return Outcome::default();
    }
    let matrix: Vec<Vec<bool>> = expanded
        .iter()
        .map(|(_, _, found)| resources.iter().map(|(_, r)| found.iter().any(|a| acts_on(a, r))).collect())
        .collect();
    let nothing_matches = matrix.iter().all(|row| row.iter().all(|m| !m));
    let mut mismatches = Vec::new();
    for ((element, action, found), row) in expanded.iter().zip(&matrix) {
        if row.iter().any(|m| *m) {
            continue;
        }
        mismatches.push(action_mismatch(element, action, found));
    }
    if all_expanded && !nothing_matches {
        for (j, (element, resource)) in resources.iter().enumerate() {
            if matrix.iter().all(|row| !row[j]) {
                mismatches.push(Mismatch {
                    element: element.to_string(),
                    message: format!("no action of the statement acts on `{resource}`"),
                    accepted: "a resource of a type the statement's actions act on, or remove it".into(),
                });
            }
        }
    }
    Outcome { mismatches, nothing_matches }
}

fn action_mismatch(element: &str, action: &str, found: &[ActionRef<'_>]) -> Mismatch {
    let mut types: Vec<String> = Vec::new();
    let mut star_only = false;
    for a in found {
        let mut any = false;
        for t in a.resource_types() {
            any = true;
            let text = format!("{} ({})", t.name, t.arns().collect::<Vec<_>>().join(" or "));
            if !types.contains(&text) {
                types.push(text);
            }
        }
        star_only |= !any;
    }
    let what = if found.len() == 1 { format!("`{action}`") } else { format!("`{action}` ({} actions)", found.len()) };
    let message = if types.is_empty() {
        format!(
            "{what} supports no resource-level permissions: only \"Resource\": \"*\" matches it, not the \
             statement's resources"
        )
    } else {
        let more = types.len().saturating_sub(LISTED_TYPES);
        let mut list = types.iter().take(LISTED_TYPES).cloned().collect::<Vec<_>>().join(", ");
        if more > 0 {
            list += &format!(" and {more} more type{}", if more == 1 { "" } else { "s" });
        }
        if star_only {
            list += ", or \"*\"";
        }
        format!("{what} acts on {list}: none of the statement's resources can match")
    };
    let accepted = if types.is_empty() {
        "\"Resource\": \"*\" in a statement of its own".to_string()
    } else {
        "an ARN of one of those types (Service Authorization Reference), or a statement of its own".to_string()
    };
    Mismatch { element: element.to_string(), message, accepted }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECT: &str = "arn:${Partition}:s3:::${BucketName}/${ObjectName}";
    const BUCKET: &str = "arn:${Partition}:s3:::${BucketName}";
    const FUNCTION: &str = "arn:${Partition}:lambda:${Region}:${Account}:function:${FunctionName}";
    const LOG_STREAM: &str =
        "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}:log-stream:${LogStreamName}";

    #[test]
    fn arns_match_formats_segment_by_segment() {
        assert!(could_match("arn:aws:s3:::bucket/key", OBJECT));
        assert!(!could_match("arn:aws:s3:::bucket", OBJECT));
        assert!(could_match("arn:aws:s3:::bucket", BUCKET));
        assert!(!could_match("arn:aws:s3:::bucket/*", BUCKET), "a bucket name holds no /");
        assert!(could_match("arn:aws:s3:::*", OBJECT), "* reaches past /");
        assert!(could_match("arn:aws:s3:::*/*", OBJECT));
        assert!(could_match("arn:aws:s3:::b*", BUCKET) && could_match("arn:aws:s3:::b?", BUCKET));
        assert!(!could_match("arn:aws:s3:::bucket/*", FUNCTION), "another service");
        assert!(could_match("arn:aws:lambda:us-east-1:123456789012:function:f", FUNCTION));
        assert!(could_match("arn:aws:lambda:*:123456789012:function:*", FUNCTION));
        assert!(!could_match("arn:aws:lambda:us-east-1:123456789012:layer:f", FUNCTION));
        assert!(!could_match("arn:aws:lambda::123456789012:function:f", FUNCTION), "a function has a region");
        assert!(could_match("arn:aws:logs:us-east-1:123456789012:log-group:g:*", LOG_STREAM));
        assert!(could_match("arn:aws:logs:*:*:*", LOG_STREAM));
        assert!(could_match("*", FUNCTION));
    }

    #[test]
    fn wildcards_and_variables_are_taken_at_their_widest() {
        // A * ending the region or account segment may reach past the colon (IAM's rule).
        assert!(could_match("arn:aws:lambda:*:function:f", FUNCTION));
        // A * inside a segment does not.
        assert!(!could_match("arn:aws:lambda:us-*-1:123456789012:layer:x", FUNCTION));
        // Policy variables stand for any text, even with a /.
        assert!(could_match("arn:aws:s3:::bucket/${aws:username}", OBJECT));
        assert!(could_match("arn:aws:s3:::${aws:PrincipalTag/team}", OBJECT));
        assert!(could_match("arn:aws:lambda:us-east-1:${aws:PrincipalAccount}:function:f", FUNCTION));
        // Letters are compared without case: never a finding over a format's spelling.
        assert!(could_match(
            "arn:aws:states:us-east-1:123456789012:statemachine:x",
            "arn:${Partition}:states:${Region}:${Account}:stateMachine:${StateMachineName}"
        ));
        // Formats with literal wildcards and several placeholders in a segment.
        assert!(could_match(
            "arn:aws:dms:us-east-1:123456789012:endpoint:ABC",
            "arn:${Partition}:dms:${Region}:${Account}:endpoint:*"
        ));
        assert!(could_match(
            "arn:aws:backup:us-east-1:123456789012:recovery-point:x",
            "arn:${Partition}:${Vendor}:${Region}:*:${ResourceType}:${RecoveryPointId}"
        ));
    }

    fn run(actions: &[&str], resources: &[&str]) -> Outcome {
        let a: Vec<(String, &str)> = actions.iter().enumerate().map(|(i, a)| (format!("Action[{i}]"), *a)).collect();
        let r: Vec<(String, &str)> =
            resources.iter().enumerate().map(|(i, r)| (format!("Resource[{i}]"), *r)).collect();
        check(&a, &r)
    }

    #[test]
    fn a_statement_is_checked_pair_by_pair() {
        let o = run(&["s3:GetObject"], &["arn:aws:s3:::bucket"]);
        assert!(o.nothing_matches);
        assert_eq!(o.mismatches.len(), 1);
        assert_eq!(o.mismatches[0].element, "Action[0]");
        assert!(
            o.mismatches[0].message.contains("object (arn:${Partition}:s3:::${BucketName}/${ObjectName})"),
            "{}",
            o.mismatches[0].message
        );
        let o = run(&["lambda:InvokeFunction"], &["arn:aws:s3:::bucket/*"]);
        assert!(o.nothing_matches && o.mismatches[0].message.contains("function"), "{:?}", o.mismatches);
        // The usual statement: each action finds its own resource.
        let o = run(&["s3:GetObject", "s3:ListBucket"], &["arn:aws:s3:::b", "arn:aws:s3:::b/*"]);
        assert!(!o.nothing_matches && o.mismatches.is_empty(), "{:?}", o.mismatches);
        // Partly: one action acts on nothing of the statement, one resource is used by no action.
        let o = run(
            &["s3:GetObject", "lambda:InvokeFunction"],
            &["arn:aws:s3:::b/*", "arn:aws:sqs:us-east-1:123456789012:q"],
        );
        assert!(!o.nothing_matches);
        let elements: Vec<&str> = o.mismatches.iter().map(|m| m.element.as_str()).collect();
        assert_eq!(elements, ["Action[1]", "Resource[1]"]);
        // Wildcard actions: some expansion must act on a resource.
        assert!(run(&["s3:*Object"], &["arn:aws:s3:::*/*"]).mismatches.is_empty());
        assert!(run(&["s3:Get*"], &["arn:aws:s3:::b/*"]).mismatches.is_empty());
        assert!(run(&["s3:*"], &["arn:aws:lambda:us-east-1:123456789012:function:f"]).nothing_matches);
        // An action without resource types needs "*".
        let o = run(&["s3:ListAllMyBuckets"], &["arn:aws:s3:::*"]);
        assert!(o.nothing_matches && o.mismatches[0].message.contains("no resource-level permissions"));
        assert!(run(&["s3:ListAllMyBuckets"], &["*"]).mismatches.is_empty());
        // Unknown actions, "*" and invalid ARNs are the grammar's business.
        assert!(run(&["*"], &["arn:aws:s3:::b"]).mismatches.is_empty());
        assert!(run(&["s3:Frobnicate"], &["arn:aws:s3:::b"]).mismatches.is_empty());
        assert!(run(&["s3:GetObject"], &["not-an-arn"]).mismatches.is_empty());
    }

    #[test]
    fn every_format_of_the_table_matches_an_arn_built_from_it() {
        // Each placeholder filled with a sample value: the format must match its own ARN (a broken format or
        // matcher would turn into false findings).
        let mut checked = 0;
        for action in actions::table().all_actions() {
            for t in action.resource_types() {
                for format in t.arns() {
                    let arn = fill(format);
                    assert!(could_match(&arn, format), "{} {}: {arn} vs {format}", action.name(), t.name);
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    fn fill(format: &str) -> String {
        let mut out = String::new();
        let mut rest = format;
        while let Some(start) = rest.find('{') {
            let dollar = rest[..start].ends_with('$');
            out.push_str(&rest[..start - usize::from(dollar)]);
            let end = rest[start..].find('}').map_or(rest.len(), |e| start + e + 1);
            out.push_str(match &rest[start..end] {
                "{Partition}" => "aws",
                "{Region}" => "us-east-1",
                "{Account}" => "123456789012",
                _ => "x1",
            });
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }
}
