//! IAM ARNs, formatted in one place: `arn:PARTITION:iam::ACCOUNT:TYPE PATH NAME`, as the IAM user guide's
//! "IAM identifiers" page gives them
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns).

/// The ARN of an IAM resource of `resource_type` ("role", "policy", "instance-profile", "user", "group") with
/// `path` (starting and ending with `/`) and `name`.
pub(crate) fn iam(partition: &str, account_id: &str, resource_type: &str, path: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account_id}:{resource_type}{path}{name}")
}

/// The ARN pattern of the service-linked roles of `service`: AWS picks the role's name (and may add a suffix),
/// under the path `/aws-service-role/SERVICE/`
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/using-service-linked-roles.html).
pub(crate) fn service_linked_roles(partition: &str, account_id: &str, service: &str) -> String {
    iam(partition, account_id, "role", &format!("/aws-service-role/{service}/"), "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_have_the_partition_account_type_path_and_name() {
        assert_eq!(
            iam("aws-cn", "111122223333", "role", "/service-role/", "R"),
            "arn:aws-cn:iam::111122223333:role/service-role/R"
        );
        assert_eq!(
            service_linked_roles("aws", "111122223333", "spot.amazonaws.com"),
            "arn:aws:iam::111122223333:role/aws-service-role/spot.amazonaws.com/*"
        );
    }
}
