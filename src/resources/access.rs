//! What a write call needs to be allowed: one IAM action on one resource, in the request context the call will
//! carry (so that conditional grants are judged as AWS will judge the real call).

use serde::Serialize;

/// One request-context key and its value(s), as `iam:SimulatePrincipalPolicy` takes them (`ContextEntries`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct ContextEntry {
    pub(crate) key: String,
    pub(crate) values: Vec<String>,
    /// A multivalued key (`stringList`, e.g. `aws:TagKeys`); otherwise a single `string`.
    pub(crate) list: bool,
}

impl ContextEntry {
    pub(crate) fn one(key: &str, value: impl Into<String>) -> ContextEntry {
        ContextEntry { key: key.to_string(), values: vec![value.into()], list: false }
    }
}

/// One action on one resource, in the request context the write call will have.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct Permission {
    pub(crate) action: String,
    pub(crate) resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) context: Vec<ContextEntry>,
}

impl Permission {
    pub(crate) fn new(action: &str, resource: impl Into<String>) -> Permission {
        Permission { action: action.to_string(), resource: resource.into(), context: Vec::new() }
    }

    pub(crate) fn with(mut self, entry: ContextEntry) -> Permission {
        self.context.push(entry);
        self.context.sort();
        self
    }

    /// What tells this request apart from others on the same resource: " (to ec2.amazonaws.com)",
    /// " (policy AmazonS3FullAccess)", " (for spot.amazonaws.com)"; the region and the ownership tag are the same
    /// for all of a run's writes, so not shown.
    pub(crate) fn context_note(&self) -> String {
        let shown: Vec<String> = self
            .context
            .iter()
            .filter_map(|e| {
                let values = e.values.join(",");
                match e.key.as_str() {
                    "iam:PassedToService" => Some(format!("to {values}")),
                    "iam:AWSServiceName" => Some(format!("for {values}")),
                    "iam:PolicyARN" => Some(format!("policy {}", values.rsplit('/').next().unwrap_or(&values))),
                    "aws:RequestedRegion" | "aws:TagKeys" => None,
                    k if k.starts_with("aws:RequestTag/") => None,
                    k => Some(format!("{k}={values}")),
                }
            })
            .collect();
        if shown.is_empty() {
            String::new()
        } else {
            format!(" ({})", shown.join(", "))
        }
    }
}

/// The region IAM's requests are signed for, which is what `aws:RequestedRegion` is for IAM (a global service
/// with one endpoint per partition): "requests to IAM ... the region is us-east-1"
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-requestedregion).
pub(crate) fn iam_region(partition: &str) -> &'static str {
    crate::stack::partitions::iam_region(partition)
}

/// The services a role's trust document lets assume it (`Service` principals), which are the services the role is
/// passed to (`iam:PassedToService`).
pub(crate) fn trusted_services(trust: &serde_json::Value) -> Vec<String> {
    crate::document::principals(trust)
        .into_iter()
        .filter_map(|p| p.strip_prefix("Service:").map(str::to_string))
        .collect()
}

/// What a kind's changes need to name the resources they write and the context of their requests: the
/// account, and the rendered stack (a role's path, the services it trusts).
pub(crate) struct Scope<'a> {
    pub(crate) partition: &'a str,
    pub(crate) account_id: &'a str,
    pub(crate) desired: &'a crate::stack::Desired,
}

impl Scope<'_> {
    pub(crate) fn arn(&self, resource_type: &str, path: &str, name: &str) -> String {
        crate::arn::iam(self.partition, self.account_id, resource_type, path, name)
    }

    /// A role of the stack by its path; any other role (not the stack's) at `/`.
    pub(crate) fn role_arn(&self, name: &str) -> String {
        let path = self.desired.roles.iter().find(|r| r.name == name).map_or("/", |r| r.path.as_str());
        self.arn("role", path, name)
    }

    pub(crate) fn instance_profile_arn(&self, name: &str) -> String {
        let path = self.desired.instance_profiles.iter().find(|p| p.name == name).map_or("/", |p| p.path.as_str());
        self.arn("instance-profile", path, name)
    }

    pub(crate) fn service_linked_roles_arn(&self, service: &str) -> String {
        crate::arn::service_linked_roles(self.partition, self.account_id, service)
    }

    /// A create carries the ownership tag and `tags` (CreateRole/CreatePolicy/CreateInstanceProfile with Tags), so
    /// its request has aws:RequestTag/KEY for each and aws:TagKeys listing them
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_iam-tags.html#access_iam-tags_control-tags).
    pub(crate) fn tagged(&self, p: Permission, tags: &std::collections::BTreeMap<String, String>) -> Permission {
        let mut all = tags.clone();
        all.insert(super::vocab::OWNER_TAG.to_string(), self.desired.stack.clone());
        requesting(p, &all)
    }

    /// Attaching and detaching managed policies: iam:PolicyARN
    /// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html).
    pub(crate) fn on_policy(&self, p: Permission, arn: &str) -> Permission {
        p.with(ContextEntry::one("iam:PolicyARN", arn))
    }

    /// The services the stack's role `role` is passed to (those it trusts); none for another role.
    pub(crate) fn passed_to(&self, role: &str) -> Vec<String> {
        self.desired.roles.iter().find(|r| r.name == role).map(|r| trusted_services(&r.trust)).unwrap_or_default()
    }
}

/// The request context of a write that sends `tags` (a create with Tags, or Tag*): aws:RequestTag/KEY for each and
/// aws:TagKeys listing them (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_iam-tags.html#access_iam-tags_control-tags).
pub(crate) fn requesting(mut p: Permission, tags: &std::collections::BTreeMap<String, String>) -> Permission {
    for (k, v) in tags {
        p = p.with(ContextEntry::one(&format!("aws:RequestTag/{k}"), v.clone()));
    }
    p.with(ContextEntry { key: "aws:TagKeys".into(), values: tags.keys().cloned().collect(), list: true })
}

/// The request context of an Untag* call: aws:TagKeys lists the keys removed.
pub(crate) fn removing(p: Permission, keys: &[String]) -> Permission {
    p.with(ContextEntry { key: "aws:TagKeys".into(), values: keys.to_vec(), list: true })
}
