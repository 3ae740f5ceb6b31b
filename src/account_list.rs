//! The `--accounts FILE` list: one 12-digit AWS account id per line, optionally followed by `# name`.
//! Blank lines and lines that are only a comment are skipped. Validated as a whole before any AWS call:
//! every problem is reported with its `file:line`.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Account {
    pub(crate) id: String,
    /// The comment after the id, if any (`111122223333  # prod`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
}

pub(crate) fn load(path: &Path) -> Result<Vec<Account>> {
    let text = crate::stack::read_text(path)
        .map_err(|e| Error::input(format!("cannot read the accounts file `{}`: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

pub(crate) fn parse(text: &str, source: &str) -> Result<Vec<Account>> {
    let mut accounts: Vec<(usize, Account)> = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let (id, comment) = match line.split_once('#') {
            Some((id, comment)) => (id.trim(), Some(comment.trim())),
            None => (line.trim(), None),
        };
        if id.is_empty() {
            continue;
        }
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
            problems.push(format!("{source}:{n}: `{id}` is not an AWS account id (12 digits)"));
            continue;
        }
        if let Some((first, _)) = accounts.iter().find(|(_, a)| a.id == id) {
            problems.push(format!("{source}:{n}: account {id} is listed twice (first on line {first})"));
            continue;
        }
        let name = comment.filter(|c| !c.is_empty()).map(str::to_string);
        accounts.push((n, Account { id: id.to_string(), name }));
    }
    if !problems.is_empty() {
        return Err(Error::input(format!("invalid accounts file\n  - {}", problems.join("\n  - ")))
            .with_help("one 12-digit account id per line, optionally followed by `# name`; nothing was sent to AWS"));
    }
    if accounts.is_empty() {
        return Err(Error::input(format!("{source}: the accounts file lists no account"))
            .with_help("one 12-digit account id per line, optionally followed by `# name`"));
    }
    Ok(accounts.into_iter().map(|(_, a)| a).collect())
}

/// IAM role names: 1-64 of letters, digits and `_+=,.@-`.
pub(crate) fn valid_role_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// sts:AssumeRole's external id: 2-1224 of letters, digits and `_+=,.@:/-`.
pub(crate) fn valid_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c))
}

/// The role to assume in `account`, in the caller's partition (`aws-cn` in China, `aws-us-gov` in GovCloud).
pub(crate) fn role_arn(partition: &str, account: &str, role_name: &str) -> String {
    crate::arn::iam(partition, account, "role", "/", role_name)
}

/// `wfboot-<stack>`, made to fit sts:AssumeRole's session name rules (2-64 of letters, digits and `_+=,.@-`),
/// so that CloudTrail in every account shows which tool and stack made the calls.
pub(crate) fn session_name(stack: &str) -> String {
    let name: String = format!("wfboot-{stack}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' })
        .take(64)
        .collect();
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_comments_names_and_blank_lines_are_read() {
        let text = "# production accounts\n111111111111\n\n  222222222222   # staging\n333333333333#\n";
        let accounts = parse(text, "a.txt").unwrap();
        assert_eq!(
            accounts,
            vec![
                Account { id: "111111111111".into(), name: None },
                Account { id: "222222222222".into(), name: Some("staging".into()) },
                Account { id: "333333333333".into(), name: None },
            ]
        );
    }

    #[test]
    fn every_bad_line_is_named_with_its_line_number() {
        let text = "111111111111\n12345\n111111111111\nabcdefghijkl # x\n1111111111112\n";
        let e = parse(text, "a.txt").unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Input);
        for expected in [
            "a.txt:2: `12345` is not",
            "a.txt:3: account 111111111111 is listed twice (first on line 1)",
            "a.txt:4: `abcdefghijkl`",
            "a.txt:5: `1111111111112`",
        ] {
            assert!(e.message.contains(expected), "{expected} not in {}", e.message);
        }
    }

    #[test]
    fn a_file_without_any_account_is_an_error() {
        for text in ["", "\n\n", "# only a comment\n"] {
            let e = parse(text, "a.txt").unwrap_err();
            assert!(e.message.contains("lists no account"), "{}", e.message);
        }
    }

    #[test]
    fn role_names_external_ids_and_session_names_follow_the_iam_rules() {
        assert!(valid_role_name("OrganizationAccountAccessRole"));
        assert!(!valid_role_name("a/b") && !valid_role_name("") && !valid_role_name(&"a".repeat(65)));
        assert!(valid_external_id("abc-123:x/y") && !valid_external_id("a") && !valid_external_id("has space"));
        assert_eq!(session_name("slim-workflow"), "wfboot-slim-workflow");
        assert_eq!(role_arn("aws-cn", "111122223333", "Deployer"), "arn:aws-cn:iam::111122223333:role/Deployer");
        assert_eq!(session_name("my stack!"), "wfboot-my-stack-");
        assert_eq!(session_name(&"x".repeat(100)).len(), 64);
    }
}
