//! Who is calling: sts:GetCallerIdentity, the source of the account id and partition.

use serde::Serialize;

use crate::aws::{errors, Clients};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CallerKind {
    User,
    AssumedRole,
    Root,
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Caller {
    pub(crate) account_id: String,
    pub(crate) partition: String,
    pub(crate) arn: String,
    pub(crate) kind: CallerKind,
    /// The IAM user name, when the caller is an IAM user.
    pub(crate) user_name: Option<String>,
}

impl Caller {
    /// The role behind an assumed-role session ARN (`assumed-role/ROLE/SESSION`).
    pub(crate) fn role_name(&self) -> Option<&str> {
        self.arn.split_once(":assumed-role/").and_then(|(_, rest)| rest.split('/').next())
    }
}

pub(crate) async fn identify(clients: &Clients) -> Result<Caller> {
    let out = clients
        .limit(clients.sts.get_caller_identity().send())
        .await
        .map_err(|e| errors::describe("identify the caller (sts:GetCallerIdentity)", &e))?;
    let (Some(account_id), Some(arn)) = (out.account(), out.arn()) else {
        return Err(Error::aws("sts:GetCallerIdentity answered without an account or ARN"));
    };
    parse(account_id, arn)
}

pub(crate) fn parse(account_id: &str, arn: &str) -> Result<Caller> {
    // arn:PARTITION:(iam|sts)::ACCOUNT:(user/PATH/NAME | assumed-role/ROLE/SESSION | root | ...)
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, _, _, _, resource] = parts[..] else {
        return Err(Error::aws(format!("sts:GetCallerIdentity returned an unexpected ARN `{arn}`")));
    };
    let (kind, user_name) = if resource == "root" {
        (CallerKind::Root, None)
    } else if let Some(user) = resource.strip_prefix("user/") {
        (CallerKind::User, user.rsplit('/').next().map(str::to_string))
    } else if resource.starts_with("assumed-role/") {
        (CallerKind::AssumedRole, None)
    } else {
        (CallerKind::Other, None)
    };
    Ok(Caller {
        account_id: account_id.to_string(),
        partition: partition.to_string(),
        arn: arn.to_string(),
        kind,
        user_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_role_and_root_callers_are_recognised() {
        let c = parse("111122223333", "arn:aws:iam::111122223333:user/team/alice").unwrap();
        assert_eq!((c.kind, c.user_name.as_deref(), c.partition.as_str()), (CallerKind::User, Some("alice"), "aws"));
        let c = parse("111122223333", "arn:aws-cn:sts::111122223333:assumed-role/Admin/bob").unwrap();
        assert_eq!((c.kind, c.user_name, c.partition.as_str()), (CallerKind::AssumedRole, None, "aws-cn"));
        assert_eq!(parse("111122223333", "arn:aws:iam::111122223333:root").unwrap().kind, CallerKind::Root);
        assert!(parse("1", "garbage").is_err());
    }
}
