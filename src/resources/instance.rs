//! EC2 instances and their instance-profile associations: how a role reaches the applications on an
//! instance (they then get rotating credentials from the instance metadata service).

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, IamInstanceProfileSpecification};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
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

/// The instance's state name ("running", "stopped", ...), or an error saying it does not exist here.
pub(crate) async fn state(clients: &Clients, instance_id: &str) -> Result<String> {
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
    let Some(instance) = instance else { return Err(missing()) };
    Ok(instance.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_else(|| "unknown".into()))
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
    let items = clients
        .limit(async { req.into_paginator().items().send().try_collect().await })
        .await
        .map_err(|e| errors::describe("list the instance profile associations", &e))?;
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
/// without a profile). A profile created moments ago is "Invalid IamInstanceProfile" for a while: that one
/// error is retried with backoff until `timeout`, telling `waiting` once.
pub(crate) async fn associate(
    clients: &Clients,
    instance_id: &str,
    profile_name: &str,
    replace: Option<&str>,
    timeout: Duration,
    waiting: &dyn Fn(&str),
) -> Result<String> {
    let spec = IamInstanceProfileSpecification::builder().name(profile_name).build();
    let start = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut told = false;
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
            Ok(Some(id)) => return Ok(id),
            Ok(None) => return Err(Error::aws("EC2 answered without an association id")),
            Err((true, _)) if start.elapsed() + delay < timeout => {
                if !told {
                    waiting(&format!(
                        "waiting for instance profile `{profile_name}` to propagate to EC2 (up to {} s)",
                        timeout.as_secs()
                    ));
                    told = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
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
    let not_propagated = match e {
        SdkError::ServiceError(se) => {
            se.err().code() == Some("InvalidParameterValue")
                && se.err().message().unwrap_or_default().contains("Invalid IamInstanceProfile")
        }
        _ => false,
    };
    (not_propagated, errors::describe(action, e))
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
    fn instance_ids_are_checked() {
        for ok in ["i-0123abcd", "i-08dabea9f68b1f328"] {
            assert!(super::valid_instance_id(ok), "{ok}");
        }
        for bad in ["i-123", "0123abcd", "i-0123abcg", "i-08dabea9f68b1f32", ""] {
            assert!(!super::valid_instance_id(bad), "{bad}");
        }
    }
}
