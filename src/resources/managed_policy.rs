//! AWS-managed policies the stack attaches: each must exist before anything is written, so a typo or a
//! retired policy stops the run before it is half done.

use crate::aws::{errors, Clients};
use crate::error::{Error, Result};

/// GetPolicy for each ARN (concurrently); an error naming every one that does not exist.
pub(crate) async fn check_exist(clients: &Clients, arns: &[String]) -> Result<()> {
    let results = futures::future::join_all(arns.iter().map(|arn| async move {
        match clients.limit(clients.iam.get_policy().policy_arn(arn).send()).await {
            Ok(_) => Ok(None),
            Err(e) if errors::is_no_such_entity(&e) => Ok(Some(arn.clone())),
            Err(e) => Err(errors::describe(&format!("check managed policy `{arn}`"), &e)),
        }
    }))
    .await;
    let mut missing = Vec::new();
    for r in results {
        if let Some(arn) = r? {
            missing.push(arn);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = missing
        .iter()
        .map(|arn| {
            let name = arn.rsplit_once(":policy/").map(|(_, n)| n).unwrap_or(arn);
            match crate::stack::deprecated_replacement(name) {
                Some(new) => format!("  - {arn} (deprecated; use {new})"),
                None => format!("  - {arn}"),
            }
        })
        .collect();
    Err(Error::aws(format!(
        "managed polic{} not found in this account's partition:\n{}",
        if missing.len() == 1 { "y" } else { "ies" },
        lines.join("\n")
    ))
    .with_help("fix the policy names in the stack; nothing was written"))
}
