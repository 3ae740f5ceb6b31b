//! EC2 instances and their instance-profile associations: how a role reaches the applications on an
//! instance (they then get rotating credentials from the instance metadata service).

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, IamInstanceProfileSpecification, InstanceMetadataOptionsResponse};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::DateTime;
use serde::Serialize;

use crate::aws::{errors, Clients};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Association {
    pub(crate) association_id: String,
    pub(crate) instance_id: String,
    pub(crate) instance_profile_arn: String,
    pub(crate) state: String,
}

/// An instance id as EC2 writes it: `i-` and 8 or 17 hexadecimal digits.
pub(crate) fn valid_instance_id(id: &str) -> bool {
    id.strip_prefix("i-")
        .is_some_and(|hex| (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An instance's metadata options, as DescribeInstances shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct MetadataOptions {
    /// `pending` while a change is being applied to a running instance, then `applied`.
    pub(crate) state: String,
    /// `optional` (IMDSv1 allowed) or `required` (IMDSv2 only).
    pub(crate) http_tokens: String,
    /// `enabled` or `disabled` (no metadata at all, so no role credentials).
    pub(crate) http_endpoint: String,
    /// How many network hops the IMDSv2 token's answer may travel (1 to 64).
    pub(crate) http_put_response_hop_limit: i32,
}

impl MetadataOptions {
    /// EC2's defaults fill what the answer leaves out (optional, enabled, 1: the API reference's defaults).
    pub(crate) fn from_sdk(o: &InstanceMetadataOptionsResponse) -> MetadataOptions {
        MetadataOptions {
            state: o.state().map_or("applied", |s| s.as_str()).to_string(),
            http_tokens: o.http_tokens().map_or("optional", |t| t.as_str()).to_string(),
            http_endpoint: o.http_endpoint().map_or("enabled", |e| e.as_str()).to_string(),
            http_put_response_hop_limit: o.http_put_response_hop_limit().unwrap_or(1),
        }
    }

    pub(crate) fn imdsv2_required(&self) -> bool {
        self.http_tokens == "required"
    }

    pub(crate) fn endpoint_enabled(&self) -> bool {
        self.http_endpoint != "disabled"
    }

    /// "IMDSv1 allowed, endpoint enabled, hop limit 2": for a table.
    pub(crate) fn short(&self) -> String {
        let tokens = if self.imdsv2_required() { "IMDSv2 required" } else { "IMDSv1 allowed" };
        format!("{tokens}, endpoint {}, hop limit {}", self.http_endpoint, self.http_put_response_hop_limit)
    }

    /// "IMDSv2 required, endpoint enabled, hop limit 2".
    pub(crate) fn summary(&self) -> String {
        let tokens = if self.imdsv2_required() {
            "IMDSv2 required".to_string()
        } else {
            format!("IMDSv1 allowed (HttpTokens={})", self.http_tokens)
        };
        let pending = if self.state == "pending" { ", being applied" } else { "" };
        format!("{tokens}, endpoint {}, hop limit {}{pending}", self.http_endpoint, self.http_put_response_hop_limit)
    }
}

/// RFC 3339, to the second.
pub(crate) fn timestamp(t: &DateTime) -> String {
    DateTime::from_secs(t.secs()).fmt(Format::DateTime).unwrap_or_default()
}

/// An instance as DescribeInstances shows it: what `attach` checks before its writes.
#[derive(Debug, Clone)]
pub(crate) struct Described {
    pub(crate) instance_id: String,
    /// "running", "stopped", ...
    pub(crate) state: String,
    /// When it was last launched (started), RFC 3339.
    pub(crate) launch_time: Option<String>,
    pub(crate) options: Option<MetadataOptions>,
}

impl Described {
    fn from_sdk(i: &aws_sdk_ec2::types::Instance) -> Described {
        Described {
            instance_id: i.instance_id().unwrap_or_default().to_string(),
            state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_else(|| "unknown".into()),
            launch_time: i.launch_time().map(timestamp),
            options: i.metadata_options().map(MetadataOptions::from_sdk),
        }
    }
}

/// The instance, or an error saying it does not exist here.
pub(crate) async fn describe(clients: &Clients, instance_id: &str) -> Result<Described> {
    let out = clients.limit(clients.ec2.describe_instances().instance_ids(instance_id).send()).await;
    let missing = || {
        Error::aws(format!("there is no instance {instance_id} in region {}", clients.region))
            .with_help("check the instance id and --region (`wfboot instances` lists the instances with profiles)")
    };
    let out = match out {
        Ok(out) => out,
        Err(e) if errors::code(&e).is_some_and(|c| c.starts_with("InvalidInstanceID")) => return Err(missing()),
        Err(e) => return Err(errors::describe(&format!("describe instance {instance_id}"), &e)),
    };
    let instance = out.reservations().iter().flat_map(|r| r.instances()).find(|i| i.instance_id() == Some(instance_id));
    instance.map(Described::from_sdk).ok_or_else(missing)
}

/// The instances of `ids` that exist: DescribeInstances with an `instance-id` filter, whose values are ORed (EC2 API
/// reference, Filter: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Filter.html) and which, unlike
/// InstanceIds ("If you specify an instance ID that is not valid, an error is returned", DescribeInstances), leaves
/// out an instance that is gone. Every page; 100 ids a call, to keep each request small.
pub(crate) async fn describe_all(clients: &Clients, ids: &[String]) -> Result<Vec<Described>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(100) {
        let filter = chunk.iter().fold(Filter::builder().name("instance-id"), |f, id| f.values(id)).build();
        let pages = clients.ec2.describe_instances().filters(filter).into_paginator().send();
        let pages = clients.list("the instances", pages).await?;
        out.extend(pages.iter().flat_map(|p| p.reservations()).flat_map(|r| r.instances()).map(Described::from_sdk));
    }
    Ok(out)
}

/// Current associations (associating or associated), of one instance or of the whole region.
pub(crate) async fn associations(clients: &Clients, instance_id: Option<&str>) -> Result<Vec<Association>> {
    let mut req = clients
        .ec2
        .describe_iam_instance_profile_associations()
        .filters(Filter::builder().name("state").values("associating").values("associated").build());
    if let Some(id) = instance_id {
        req = req.filters(Filter::builder().name("instance-id").values(id).build());
    }
    let items = clients.list("the instance profile associations", req.into_paginator().items().send()).await?;
    Ok(items
        .into_iter()
        .map(|a| Association {
            association_id: a.association_id.unwrap_or_default(),
            instance_id: a.instance_id.unwrap_or_default(),
            instance_profile_arn: a.iam_instance_profile.and_then(|p| p.arn).unwrap_or_default(),
            state: a.state.map(|s| s.as_str().to_string()).unwrap_or_default(),
        })
        .collect())
}

/// Associate (or, with `replace`, swap in place of an existing association: the instance is never left
/// without a profile). EC2 refuses a profile created (or given its role) moments ago for a while
/// ([`not_propagated`]): that is retried at the consistency cadence (`write::Cadence`) until `timeout`, telling
/// `waiting` once.
/// Returns the association id, how many retries it took and how long it waited.
pub(crate) async fn associate(
    clients: &Clients,
    instance_id: &str,
    profile_name: &str,
    replace: Option<&str>,
    timeout: Duration,
    waiting: &dyn Fn(&str),
) -> Result<(String, usize, Duration)> {
    let spec = IamInstanceProfileSpecification::builder().name(profile_name).build();
    let start = Instant::now();
    let mut cadence = crate::resources::write::Cadence::default();
    let mut told = false;
    let (mut retries, mut waited) = (0, Duration::ZERO);
    loop {
        let result = match replace {
            Some(association_id) => {
                let req = clients
                    .ec2
                    .replace_iam_instance_profile_association()
                    .association_id(association_id)
                    .iam_instance_profile(spec.clone());
                clients
                    .limit(req.send())
                    .await
                    .map(|o| o.iam_instance_profile_association.and_then(|a| a.association_id))
                    .map_err(|e| failure(&format!("replace the profile of {instance_id}"), &e))
            }
            None => {
                let req = clients
                    .ec2
                    .associate_iam_instance_profile()
                    .instance_id(instance_id)
                    .iam_instance_profile(spec.clone());
                clients
                    .limit(req.send())
                    .await
                    .map(|o| o.iam_instance_profile_association.and_then(|a| a.association_id))
                    .map_err(|e| failure(&format!("associate a profile with {instance_id}"), &e))
            }
        };
        match result {
            Ok(Some(id)) => return Ok((id, retries, waited)),
            Ok(None) => return Err(Error::aws("EC2 answered without an association id")),
            Err((true, _)) if start.elapsed() + cadence.peek() < timeout => {
                if !told {
                    waiting(&format!(
                        "waiting for instance profile `{profile_name}` to propagate to EC2, which does not know it \
                         (or its role) yet (up to {} s)",
                        timeout.as_secs()
                    ));
                    told = true;
                }
                // EC2 catching up with IAM: a consistency wait, at its cadence.
                let pause = cadence.next();
                tokio::time::sleep(pause).await;
                (retries, waited) = (retries + 1, waited + pause);
            }
            Err((_, err)) => return Err(err),
        }
    }
}

/// The error, and whether it is EC2 not knowing a just-created instance profile yet (worth retrying).
fn failure<E, R>(action: &str, e: &SdkError<E, R>) -> (bool, Error)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let retry = errors::code_and_message(e).is_some_and(|(code, message)| not_propagated(code, message));
    (retry, errors::describe(action, e))
}

/// EC2 has not caught up with IAM on a new instance profile: InvalidParameterValue, with "Value (NAME) for
/// parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name" (".arn ... ARN" for an ARN),
/// or `IAM Instance Profile "ARN" has no associated IAM Roles` when its role is new. The code is shared with
/// every other bad parameter and EC2 gives no other signal, so the message decides, case-insensitively, as
/// terraform-provider-aws internal/service/ec2/ec2_instance.go does (its RunInstances retry on
/// InvalidParameterValue with "Invalid IAM Instance Profile" and " has no associated IAM Roles").
pub(crate) fn not_propagated(code: &str, message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    code == "InvalidParameterValue"
        && (message.contains("invalid iam instance profile") || message.contains("has no associated iam roles"))
}

/// Wait (bounded) until the association is `associated`.
pub(crate) async fn wait_associated(
    clients: &Clients,
    instance_id: &str,
    association_id: &str,
    timeout: Duration,
) -> Result<()> {
    let start = Instant::now();
    loop {
        let current = associations(clients, Some(instance_id)).await?;
        match current.iter().find(|a| a.association_id == association_id) {
            Some(a) if a.state == "associated" => return Ok(()),
            _ if start.elapsed() > timeout => {
                return Err(Error::aws(format!(
                    "association {association_id} did not become `associated` within {} s",
                    timeout.as_secs()
                ))
                .with_help("check it with `wfboot instances`; EC2 may still complete it"))
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ec2s_own_words_for_a_profile_it_does_not_know_yet_are_retried_and_nothing_else_is() {
        for message in [
            "Value (SLIM-Extras_ECS_for_EC2) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
            "Value (arn:aws:iam::123456789012:instance-profile/P) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN",
            "IAM Instance Profile \"arn:aws:iam::123456789012:instance-profile/P\" has no associated IAM Roles",
        ] {
            assert!(super::not_propagated("InvalidParameterValue", message), "{message}");
            assert!(!super::not_propagated("InvalidInstanceID.NotFound", message), "the code decides first: {message}");
        }
        // The words the code looked for before, which EC2 does not use, and other bad parameters.
        for message in ["Invalid IamInstanceProfile", "Value (x) for parameter instanceId is invalid."] {
            assert!(!super::not_propagated("InvalidParameterValue", message), "{message}");
        }
    }

    #[test]
    fn instance_ids_are_checked() {
        for ok in ["i-0123abcd", "i-08dabea9f68b1f328"] {
            assert!(super::valid_instance_id(ok), "{ok}");
        }
        for bad in ["i-123", "0123abcd", "i-0123abcg", "i-08dabea9f68b1f32", ""] {
            assert!(!super::valid_instance_id(bad), "{bad}");
        }
    }
}
