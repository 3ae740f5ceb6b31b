//! ARNs and principals as IAM accepts them in policy documents.
//!
//! ARN format: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html
//! Principals: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html

/// The partitions an ARN may name: the SDK's (`stack::partitions`).
fn partition_ids() -> Vec<&'static str> {
    crate::stack::partitions::ids()
}

/// DNS suffixes of service principals: each partition's (the SDK's partition data), with a leading dot.
fn service_suffixes() -> Vec<String> {
    let mut out: Vec<String> = crate::stack::partitions::all().iter().map(|p| format!(".{}", p.dns_suffix)).collect();
    out.dedup();
    out
}

/// The identity providers a `Federated` principal may name without an ARN
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-federated-web-identity).
const WEB_IDENTITY_PROVIDERS: &[&str] =
    &["cognito-identity.amazonaws.com", "accounts.google.com", "graph.facebook.com", "www.amazon.com"];

/// What is wrong with a value, and what IAM accepts instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) rule: &'static str,
    pub(crate) message: String,
    pub(crate) accepted: String,
}

fn problem(rule: &'static str, message: impl Into<String>, accepted: impl Into<String>) -> Problem {
    Problem { rule, message: message.into(), accepted: accepted.into() }
}

/// The parts of `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` (the resource may hold more colons).
pub(crate) struct Parts<'a> {
    pub(crate) partition: &'a str,
    pub(crate) service: &'a str,
    pub(crate) region: &'a str,
    pub(crate) account: &'a str,
    pub(crate) resource: &'a str,
}

pub(crate) fn split(arn: &str) -> Option<Parts<'_>> {
    let rest = arn.strip_prefix("arn:")?;
    let mut it = rest.splitn(5, ':');
    Some(Parts {
        partition: it.next()?,
        service: it.next()?,
        region: it.next()?,
        account: it.next()?,
        resource: it.next()?,
    })
}

const ARN_FORMAT: &str =
    "\"*\" or an ARN arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE (wildcards allowed after the service)";

/// A `Resource` / `NotResource` entry. `partition`: the account's, when known.
pub(crate) fn check_resource(value: &str, partition: Option<&str>) -> Result<(), Problem> {
    if value == "*" {
        return Ok(());
    }
    if value.chars().any(char::is_whitespace) {
        return Err(problem("arn", format!("`{value}` contains whitespace"), ARN_FORMAT));
    }
    let Some(parts) = split(value) else {
        return Err(problem("arn", format!("`{value}` is not an ARN"), ARN_FORMAT));
    };
    check_partition(value, parts.partition, partition)?;
    if parts.service.is_empty() || parts.service.contains(['*', '?']) {
        return Err(problem(
            "arn",
            format!("`{value}`: the service of a resource ARN cannot be empty or hold a wildcard"),
            "a service prefix such as `s3` or `iam` (wildcards are allowed in the region, account and resource)",
        ));
    }
    if !parts.service.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(problem(
            "arn",
            format!("`{value}`: `{}` is not a service prefix", parts.service),
            "lowercase letters, digits and `-`, e.g. `s3`",
        ));
    }
    if !parts.region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-*?".contains(c)) {
        return Err(problem(
            "arn",
            format!("`{value}`: `{}` is not a region", parts.region),
            "e.g. `us-east-1`, `*` or empty",
        ));
    }
    if !account_ok(parts.account) {
        return Err(problem(
            "arn",
            format!("`{value}`: `{}` is not an account id", parts.account),
            "a 12-digit account id, `*`, `aws` (AWS managed policies) or empty",
        ));
    }
    if parts.resource.is_empty() {
        return Err(problem(
            "arn",
            format!("`{value}` names no resource"),
            "a resource after the account, e.g. `role/MyRole` or `*`",
        ));
    }
    // IAM's own messages for these (MalformedPolicyDocument): "IAM resource ... cannot contain region information",
    // "Resource ... can not contain region information" (buckets and objects have neither region nor account).
    if parts.service == "iam" && !parts.region.is_empty() {
        return Err(problem(
            "arn",
            format!("`{value}`: IAM resources are global and take no region"),
            "arn:PARTITION:iam::ACCOUNT:...",
        ));
    }
    if parts.service == "s3" && !parts.region.is_empty() && parts.account.is_empty() {
        return Err(problem(
            "arn",
            format!("`{value}`: bucket and object ARNs take no region"),
            "arn:PARTITION:s3:::BUCKET or arn:PARTITION:s3:::BUCKET/KEY",
        ));
    }
    if parts.service == "iam"
        && !parts.resource.starts_with('*')
        && !IAM_RESOURCE_TYPES.iter().any(|t| parts.resource.starts_with(t))
    {
        return Err(problem(
            "arn",
            format!(
                "`{value}`: `{}` is not an IAM resource type",
                parts.resource.split('/').next().unwrap_or_default()
            ),
            format!("`*` or a resource starting with {}", IAM_RESOURCE_TYPES.join(", ")),
        ));
    }
    Ok(())
}

/// The resource types of IAM ARNs (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html#awsidentityandaccessmanagementiam-resources-for-iam-policies).
const IAM_RESOURCE_TYPES: &[&str] = &[
    "user/",
    "federated-user/",
    "role/",
    "group/",
    "instance-profile/",
    "mfa/",
    "server-certificate/",
    "policy/",
    "sms-mfa/",
    "saml-provider/",
    "oidc-provider/",
    "report/",
    "access-report/",
];

fn account_ok(account: &str) -> bool {
    account.is_empty()
        || account == "aws"
        || (account.len() <= 12 && account.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '?'))
            && (account.len() == 12 || account.contains('*'))
}

fn check_partition(value: &str, written: &str, expected: Option<&str>) -> Result<(), Problem> {
    if written == "*" {
        return Ok(());
    }
    if !partition_ids().contains(&written) {
        return Err(problem(
            "arn",
            format!("`{value}`: `{written}` is not a partition"),
            format!("one of {} (or the placeholder {{{{partition}}}})", partition_ids().join(", ")),
        ));
    }
    match expected {
        Some(p) if p != written => Err(problem(
            "arn-partition",
            format!("`{value}` is in partition `{written}`, but the account is in `{p}`"),
            format!("arn:{p}:... — or write {{{{partition}}}} so the document fits every partition"),
        )),
        _ => Ok(()),
    }
}

const AWS_PRINCIPAL: &str =
    "\"*\", a 12-digit account id, or the ARN of an account (arn:PARTITION:iam::ACCOUNT:root), user, \
                             role or assumed-role session, without wildcards";

/// A value of `Principal.AWS`.
pub(crate) fn check_aws_principal(value: &str, partition: Option<&str>) -> Result<(), Problem> {
    if value == "*" || (value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())) {
        return Ok(());
    }
    // Unique ids (AIDA... users, AROA... roles) are what IAM shows for deleted principals; it accepts them.
    if (value.starts_with("AIDA") || value.starts_with("AROA"))
        && value.len() >= 16
        && value.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Ok(());
    }
    if value.contains(['*', '?']) {
        return Err(problem(
            "principal",
            format!("`{value}`: IAM does not accept a wildcard in part of a principal"),
            format!("{AWS_PRINCIPAL}; to match many principals use \"*\" with a condition on aws:PrincipalArn"),
        ));
    }
    let Some(parts) = split(value) else {
        return Err(problem("principal", format!("`{value}` is not an AWS principal"), AWS_PRINCIPAL));
    };
    check_partition(value, parts.partition, partition)?;
    let ok = match parts.service {
        "iam" => {
            parts.region.is_empty()
                && ((parts.account.len() == 12 && parts.account.bytes().all(|b| b.is_ascii_digit()))
                    || (parts.account == "cloudfront" && parts.resource.starts_with("user/")))
                && (parts.resource == "root"
                    || ["user/", "role/", "federated-user/"]
                        .iter()
                        .any(|t| parts.resource.len() > t.len() && parts.resource.starts_with(t)))
        }
        "sts" => {
            parts.region.is_empty()
                && parts.account.len() == 12
                && parts.account.bytes().all(|b| b.is_ascii_digit())
                && ["assumed-role/", "federated-user/"].iter().any(|t| parts.resource.starts_with(t))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(problem("principal", format!("`{value}` is not an AWS principal ARN"), AWS_PRINCIPAL))
    }
}

/// A value of `Principal.Service`.
pub(crate) fn check_service_principal(value: &str) -> Result<Option<Problem>, Problem> {
    let accepted = "a service principal such as `ec2.amazonaws.com` (or the placeholder {{principal:ec2}})";
    let hostname = !value.is_empty()
        && value.contains('.')
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && !value.starts_with(['.', '-'])
        && !value.ends_with('.');
    if !hostname {
        return Err(problem("principal", format!("`{value}` is not a service principal"), accepted));
    }
    // A well-formed name outside every partition's DNS suffix is probably a typo, but not certainly wrong.
    let suffixes = service_suffixes();
    if !suffixes.iter().any(|s| value.ends_with(s.as_str())) {
        return Ok(Some(problem(
            "principal",
            format!("`{value}` does not end in an AWS partition's DNS suffix"),
            format!("a service principal ending in {}", suffixes.join(", ")),
        )));
    }
    Ok(None)
}

/// A value of `Principal.Federated`.
pub(crate) fn check_federated_principal(value: &str, partition: Option<&str>) -> Result<(), Problem> {
    let accepted = "the ARN of a SAML or OIDC provider (arn:PARTITION:iam::ACCOUNT:saml-provider/NAME, \
                    arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST), or one of cognito-identity.amazonaws.com, \
                    accounts.google.com, graph.facebook.com, www.amazon.com";
    if WEB_IDENTITY_PROVIDERS.contains(&value) {
        return Ok(());
    }
    if let Some(parts) = split(value) {
        check_partition(value, parts.partition, partition)?;
        let provider = parts.service == "iam"
            && parts.region.is_empty()
            && parts.account.len() == 12
            && parts.account.bytes().all(|b| b.is_ascii_digit())
            && ["saml-provider/", "oidc-provider/"]
                .iter()
                .any(|t| parts.resource.len() > t.len() && parts.resource.starts_with(t))
            && !value.contains(['*', '?']);
        if provider {
            return Ok(());
        }
    }
    Err(problem("principal", format!("`{value}` is not a federated principal"), accepted))
}

/// A value of `Principal.CanonicalUser`: an S3 canonical user id, 64 hexadecimal digits.
pub(crate) fn check_canonical_user(value: &str) -> Result<(), Problem> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(problem("principal", format!("`{value}` is not a canonical user id"), "64 hexadecimal digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_arns_are_checked_part_by_part() {
        for ok in [
            "*",
            "arn:aws:s3:::bucket",
            "arn:aws:s3:::bucket/*",
            "arn:aws-cn:s3:::*/*",
            "arn:aws:iam::123456789012:role/x",
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "arn:aws:batch:*:123456789012:job-queue/*",
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/x:*",
            "arn:aws:s3:us-west-2:123456789012:accesspoint/ap",
            "arn:aws:ec2:*:*:instance/*",
            "arn:*:s3:::b",
        ] {
            assert_eq!(check_resource(ok, None), Ok(()), "{ok}");
        }
        for (bad, rule) in [
            ("bucket", "arn"),
            ("arn:aws:s3", "arn"),
            ("arn:amazon:s3:::b", "arn"),
            ("arn:aws:s*:::b", "arn"),
            ("arn:aws:iam:us-east-1:123456789012:role/x", "arn"),
            ("arn:aws:s3:us-east-1::bucket", "arn"),
            ("arn:aws:iam::123456789012:roles/x", "arn"),
            ("arn:aws:ec2:us-east-1:12345:instance/i", "arn"),
            ("arn:aws:s3:::", "arn"),
            ("arn:aws:s3::: bucket", "arn"),
        ] {
            assert_eq!(check_resource(bad, None).map_err(|p| p.rule), Err(rule), "{bad}");
        }
        assert_eq!(check_resource("arn:aws-cn:s3:::b", Some("aws")).unwrap_err().rule, "arn-partition");
        assert_eq!(check_resource("arn:aws:s3:::b", Some("aws")), Ok(()));
    }

    #[test]
    fn principals_of_each_kind_are_checked() {
        for ok in [
            "*",
            "123456789012",
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:role/path/R",
            "arn:aws:sts::123456789012:assumed-role/R/s",
            "AROAEXAMPLEID1234567",
        ] {
            assert_eq!(check_aws_principal(ok, None), Ok(()), "{ok}");
        }
        for bad in ["arn:aws:iam::123456789012:role/*", "alice", "arn:aws:iam::123456789012:group/g", "1234"] {
            assert!(check_aws_principal(bad, None).is_err(), "{bad}");
        }
        assert_eq!(check_service_principal("ec2.amazonaws.com"), Ok(None));
        assert_eq!(check_service_principal("ec2.amazonaws.com.cn"), Ok(None));
        assert!(check_service_principal("ec2.example.org").unwrap().is_some());
        assert!(check_service_principal("EC2").is_err() && check_service_principal("*").is_err());
        assert_eq!(check_federated_principal("accounts.google.com", None), Ok(()));
        assert_eq!(
            check_federated_principal(
                "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
                None
            ),
            Ok(())
        );
        assert!(check_federated_principal("github.com", None).is_err());
        assert!(check_canonical_user(&"a".repeat(64)).is_ok() && check_canonical_user("abc").is_err());
    }
}
