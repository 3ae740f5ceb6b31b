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
    match partition {
        "aws-cn" => "cn-north-1",
        "aws-us-gov" => "us-gov-west-1",
        "aws-iso" => "us-iso-east-1",
        "aws-iso-b" => "us-isob-east-1",
        _ => "us-east-1",
    }
}

/// The services a role's trust document lets assume it (`Service` principals), which are the services the role is
/// passed to (`iam:PassedToService`).
pub(crate) fn trusted_services(trust: &serde_json::Value) -> Vec<String> {
    crate::document::principals(trust)
        .into_iter()
        .filter_map(|p| p.strip_prefix("Service:").map(str::to_string))
        .collect()
}
