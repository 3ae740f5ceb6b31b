//! The instance metadata service (IMDS) of an EC2 instance, through which the role of the instance profile reaches
//! the applications on it: the instance's metadata options (read, judged, and `HttpTokens=required` set), the
//! instance's `MetadataNoToken` metric (IMDSv1 calls), and the account's defaults for new instances. `attach`,
//! `instances`, `check` and `verify` share it.
//!
//! Sources (EC2 user guide and API reference):
//! - IMDSv1 vs IMDSv2, and why IMDSv2 defends against open firewalls, reverse proxies and SSRF: "How Instance
//!   Metadata Service Version 2 works", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-metadata-v2-how-it-works.html
//!   (also its hop-limit note: "in a container environment ... if the hop limit is 1, the IMDSv2 response does not
//!   return because going to the container is considered an additional network hop"; set it to 2);
//! - the transition: read `MetadataNoToken` (IMDSv1 calls) to zero first, "Transition to using Instance Metadata
//!   Service Version 2", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-metadata-transition-to-version-2.html;
//! - ModifyInstanceMetadataOptions: options not given keep their state; on a running instance the answer is
//!   `pending`, then DescribeInstances shows `applied`,
//!   https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyInstanceMetadataOptions.html;
//! - GetInstanceMetadataDefaults: the account's defaults per region, none when not set,
//!   https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetInstanceMetadataDefaults.html;
//! - AWS Security Hub control EC2.8 ("EC2 instances should use IMDSv2"),
//!   https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html#ec2-8.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ec2::types::HttpTokensState;
use aws_smithy_types::DateTime;
use serde::Serialize;

pub(crate) use super::instance::{timestamp, MetadataOptions};
use crate::aws::{errors, Clients};
use crate::error::{Error, Result};

/// The policy AWS gives an ECS container instance's role (and AWS Batch's instance role): an instance whose role has
/// it runs containers.
pub(crate) const CONTAINER_INSTANCE_POLICY: &str = "AmazonEC2ContainerServiceforEC2Role";
/// How far back `MetadataNoToken` is read.
pub(crate) const METRIC_DAYS: u64 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Severity {
    /// The role works, at a risk or with a limit.
    Warning,
    /// The role cannot reach the applications: `attach` refuses.
    Refusal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FindingCode {
    Imdsv1Allowed,
    EndpointDisabled,
    HopLimitForContainers,
}

/// What an instance's metadata options mean for the role it gets, and the command that changes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    pub(crate) code: FindingCode,
    pub(crate) message: String,
    pub(crate) fix: String,
}

/// The findings on `options` for an instance that has (or gets) the role of `profile`; `containers`: the role is a
/// container instance's (it has [`CONTAINER_INSTANCE_POLICY`]); `requiring`: IMDSv2 is being required by this run.
pub(crate) fn findings(
    instance_id: &str,
    profile: Option<&str>,
    options: &MetadataOptions,
    containers: bool,
    requiring: bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let modify = format!("aws ec2 modify-instance-metadata-options --instance-id {instance_id}");
    if !options.endpoint_enabled() {
        out.push(Finding {
            severity: Severity::Refusal,
            code: FindingCode::EndpointDisabled,
            message: format!(
                "{instance_id} has its instance metadata endpoint disabled (HttpEndpoint=disabled): no application on \
                 it can get the role's credentials"
            ),
            fix: format!("{modify} --http-endpoint enabled --http-tokens required"),
        });
        return out;
    }
    if !options.imdsv2_required() && !requiring {
        out.push(Finding {
            severity: Severity::Warning,
            code: FindingCode::Imdsv1Allowed,
            message: format!(
                "{instance_id} allows IMDSv1 (HttpTokens={}): any process on it, and any server-side request forgery \
                 (SSRF) in an application on it, can read the role's credentials with one unauthenticated GET to \
                 169.254.169.254 (AWS Security Hub control EC2.8)",
                options.http_tokens
            ),
            fix: match profile {
                Some(p) => format!(
                    "wfboot attach --instance-id {instance_id} --instance-profile {p} --require-imdsv2 (it reads the \
                     instance's MetadataNoToken metric first)"
                ),
                None => format!("{modify} --http-tokens required"),
            },
        });
    }
    if containers && options.http_put_response_hop_limit < 2 {
        let effect = if options.imdsv2_required() || requiring {
            "containers that use the instance's role get no credentials"
        } else {
            "containers that use the instance's role fall back to IMDSv1, after a delay, or get no credentials"
        };
        out.push(Finding {
            severity: Severity::Warning,
            code: FindingCode::HopLimitForContainers,
            message: format!(
                "{instance_id} has a PUT response hop limit of {} and its role is a container instance's \
                 ({CONTAINER_INSTANCE_POLICY}): the IMDSv2 token does not reach a container one hop further, so \
                 {effect}; AWS recommends a hop limit of 2 for containers",
                options.http_put_response_hop_limit
            ),
            fix: format!("{modify} --http-put-response-hop-limit 2"),
        });
    }
    out
}

/// Whether a role with these attached policy ARNs is a container instance's.
pub(crate) fn is_container_role<'a>(policy_arns: impl IntoIterator<Item = &'a String>) -> bool {
    policy_arns.into_iter().any(|arn| arn.rsplit('/').next() == Some(CONTAINER_INSTANCE_POLICY))
}

/// Whether the role `role` (by name) is a container instance's, read from its attached policies; `None` when they
/// cannot be read (the hop-limit finding is then left out, not guessed).
pub(crate) async fn container_role(clients: &Clients, role: &str) -> Option<bool> {
    let pages = clients.iam.list_attached_role_policies().role_name(role).into_paginator().items().send();
    let attached = clients.all(pages).await.ok()?;
    let arns: Vec<String> = attached.into_iter().filter_map(|p| p.policy_arn).collect();
    Some(is_container_role(&arns))
}

/// What `MetadataNoToken` says about one instance over the window read.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NoTokenCalls {
    pub(crate) instance_id: String,
    /// The window read: the last [`METRIC_DAYS`] days.
    pub(crate) from: String,
    pub(crate) to: String,
    /// IMDSv1 calls in the window (the metric's sum).
    pub(crate) calls: u64,
    /// The days with calls (UTC), and how many.
    pub(crate) days: Vec<DayCalls>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DayCalls {
    pub(crate) date: String,
    pub(crate) calls: u64,
}

impl NoTokenCalls {
    /// "37 IMDSv1 calls on 2 days (2026-12-01: 30, 2026-12-03: 7)".
    pub(crate) fn text(&self) -> String {
        let days: Vec<String> = self.days.iter().map(|d| format!("{}: {}", d.date, d.calls)).collect();
        format!(
            "{} IMDSv1 call{} on {} day{} ({})",
            self.calls,
            crate::wording::plural(self.calls as usize),
            self.days.len(),
            crate::wording::plural(self.days.len()),
            days.join(", ")
        )
    }
}

/// Why the metric could not be read: its AWS error code (or what failed).
#[derive(Debug, Clone)]
pub(crate) struct Unread(pub(crate) String);

/// The instance's IMDSv1 calls of the last [`METRIC_DAYS`] days: CloudWatch `AWS/EC2` `MetadataNoToken` for the
/// dimension `InstanceId`, summed per day (GetMetricStatistics, period 86400 s: 15 data points at most, within the
/// 1,440 a call may return, https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html).
/// The periods start at StartTime, so it is midnight UTC: each data point is one calendar day, named by its date.
/// Days before the instance existed simply have no data.
pub(crate) async fn imdsv1_calls(clients: &Clients, instance_id: &str) -> std::result::Result<NoTokenCalls, Unread> {
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let now = DateTime::from(SystemTime::now());
    let from = DateTime::from_secs((now.secs() - METRIC_DAYS as i64 * 86_400).div_euclid(86_400) * 86_400);
    let to = now;
    let request = clients
        .cloudwatch
        .get_metric_statistics()
        .namespace("AWS/EC2")
        .metric_name("MetadataNoToken")
        .dimensions(Dimension::builder().name("InstanceId").value(instance_id).build())
        .start_time(from)
        .end_time(to)
        .period(86_400)
        .statistics(Statistic::Sum);
    let out = clients.limit(request.send()).await.map_err(|e| Unread(errors::short(&e)))?;
    let mut by_day: BTreeMap<String, f64> = BTreeMap::new();
    for point in out.datapoints() {
        let (Some(t), Some(sum)) = (point.timestamp(), point.sum()) else { continue };
        if sum > 0.0 {
            *by_day.entry(timestamp(t).chars().take(10).collect()).or_default() += sum;
        }
    }
    let days: Vec<DayCalls> =
        by_day.into_iter().map(|(date, calls)| DayCalls { date, calls: calls.round() as u64 }).collect();
    Ok(NoTokenCalls {
        instance_id: instance_id.to_string(),
        from: timestamp(&from),
        to: timestamp(&to),
        calls: days.iter().map(|d| d.calls).sum(),
        days,
    })
}

/// ModifyInstanceMetadataOptions `HttpTokens=required`, nothing else: the other options keep their state. Returns
/// the options as EC2 answers them (`pending` on a running instance).
pub(crate) async fn require_imdsv2(clients: &Clients, instance_id: &str) -> Result<MetadataOptions> {
    let request =
        clients.ec2.modify_instance_metadata_options().instance_id(instance_id).http_tokens(HttpTokensState::Required);
    let out = clients
        .limit(request.send())
        .await
        .map_err(|e| errors::describe(&format!("require IMDSv2 on {instance_id}"), &e))?;
    out.instance_metadata_options()
        .map(MetadataOptions::from_sdk)
        .ok_or_else(|| Error::aws("ec2:ModifyInstanceMetadataOptions answered without the options"))
}

/// Wait (bounded) until DescribeInstances shows the instance's options `applied`; the options then, and how long it
/// took.
pub(crate) async fn wait_applied(
    clients: &Clients,
    instance_id: &str,
    timeout: Duration,
) -> Result<(MetadataOptions, Duration)> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        let described = super::instance::describe(clients, instance_id).await?;
        match described.options {
            Some(o) if o.state == "applied" => return Ok((o, start.elapsed())),
            _ if start.elapsed() + delay > timeout => {
                return Err(Error::aws(format!(
                    "the metadata options of {instance_id} were not applied within {} s (still pending)",
                    timeout.as_secs()
                ))
                .with_help(format!(
                    "EC2 may still apply them: check with `aws ec2 describe-instances --instance-ids {instance_id}`, \
                     then run again (nothing else was changed)"
                )))
            }
            _ => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The account's instance metadata defaults in the region (GetInstanceMetadataDefaults); an option the account
/// has not set is `None` ("no preference": a new instance takes its launch's, its AMI's or EC2's own setting).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct AccountDefaults {
    pub(crate) region: String,
    pub(crate) http_tokens: Option<String>,
    pub(crate) http_endpoint: Option<String>,
    pub(crate) http_put_response_hop_limit: Option<i32>,
    /// `account`, or `declarative-policy` when the organisation sets them (the account cannot change them then).
    pub(crate) managed_by: Option<String>,
}

impl AccountDefaults {
    pub(crate) fn requires_imdsv2(&self) -> bool {
        self.http_tokens.as_deref() == Some("required")
    }

    /// The one command that makes new instances require IMDSv2; wfboot never runs it.
    pub(crate) fn command(&self) -> String {
        format!("aws ec2 modify-instance-metadata-defaults --http-tokens required --region {}", self.region)
    }
}

pub(crate) async fn account_defaults(clients: &Clients) -> std::result::Result<AccountDefaults, Unread> {
    let out = clients
        .limit(clients.ec2.get_instance_metadata_defaults().send())
        .await
        .map_err(|e| Unread(errors::short(&e)))?;
    let level = out.account_level();
    Ok(AccountDefaults {
        region: clients.region.clone(),
        http_tokens: level.and_then(|l| l.http_tokens()).map(|t| t.as_str().to_string()),
        http_endpoint: level.and_then(|l| l.http_endpoint()).map(|e| e.as_str().to_string()),
        http_put_response_hop_limit: level.and_then(|l| l.http_put_response_hop_limit()),
        managed_by: level.and_then(|l| l.managed_by()).map(|m| m.as_str().to_string()),
    })
}

/// An instance that has one of a stack's instance profiles, with its metadata options and what they mean.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StackInstance {
    pub(crate) instance_id: String,
    pub(crate) instance_profile: String,
    pub(crate) role: String,
    /// `None` when DescribeInstances did not show the instance (terminated meanwhile).
    pub(crate) metadata_options: Option<MetadataOptions>,
    pub(crate) findings: Vec<Finding>,
}

/// The instances of the region whose instance profile is one of `desired`'s, read-only: the associations
/// (DescribeIamInstanceProfileAssociations), then the instances (DescribeInstances). Whether a role is a container
/// instance's comes from the stack, which says which policies it attaches.
pub(crate) async fn stack_instances(clients: &Clients, desired: &crate::stack::Desired) -> Result<Vec<StackInstance>> {
    if desired.instance_profiles.is_empty() {
        return Ok(Vec::new());
    }
    let t = &desired.target;
    let profiles: Vec<(String, &crate::stack::DesiredInstanceProfile)> = desired
        .instance_profiles
        .iter()
        .map(|p| (crate::arn::iam(&t.partition, &t.account_id, "instance-profile", &p.path, &p.name), p))
        .collect();
    let associations = super::instance::associations(clients, None).await?;
    let ours: Vec<(&super::instance::Association, &crate::stack::DesiredInstanceProfile)> = associations
        .iter()
        .filter_map(|a| profiles.iter().find(|(arn, _)| *arn == a.instance_profile_arn).map(|(_, p)| (a, *p)))
        .collect();
    if ours.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = ours.iter().map(|(a, _)| a.instance_id.clone()).collect();
    let described = super::instance::describe_all(clients, &ids).await?;
    Ok(ours
        .into_iter()
        .map(|(a, p)| {
            let containers =
                desired.roles.iter().find(|r| r.name == p.role).is_some_and(|r| is_container_role(&r.policy_arns));
            let options = described.iter().find(|d| d.instance_id == a.instance_id).and_then(|d| d.options.clone());
            let findings = options
                .as_ref()
                .map(|o| findings(&a.instance_id, Some(&p.name), o, containers, false))
                .unwrap_or_default();
            StackInstance {
                instance_id: a.instance_id.clone(),
                instance_profile: p.name.clone(),
                role: p.role.clone(),
                metadata_options: options,
                findings,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(tokens: &str, endpoint: &str, hops: i32) -> MetadataOptions {
        MetadataOptions {
            state: "applied".into(),
            http_tokens: tokens.into(),
            http_endpoint: endpoint.into(),
            http_put_response_hop_limit: hops,
        }
    }

    fn codes(f: &[Finding]) -> Vec<FindingCode> {
        f.iter().map(|f| f.code).collect()
    }

    #[test]
    fn imdsv1_allowed_is_a_warning_that_names_wfboots_fix_and_required_is_none() {
        let f = findings("i-0123abcd", Some("P"), &options("optional", "enabled", 2), false, false);
        assert_eq!(codes(&f), [FindingCode::Imdsv1Allowed]);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("SSRF") && f[0].message.contains("169.254.169.254"), "{}", f[0].message);
        assert!(f[0].fix.starts_with("wfboot attach --instance-id i-0123abcd --instance-profile P --require-imdsv2"));
        let f = findings("i-0123abcd", None, &options("optional", "enabled", 2), false, false);
        assert_eq!(
            f[0].fix,
            "aws ec2 modify-instance-metadata-options --instance-id i-0123abcd --http-tokens required"
        );
        assert!(findings("i-0123abcd", Some("P"), &options("required", "enabled", 1), false, false).is_empty());
        assert!(
            findings("i-0123abcd", Some("P"), &options("optional", "enabled", 1), false, true).is_empty(),
            "not while this run requires IMDSv2"
        );
    }

    #[test]
    fn a_disabled_endpoint_is_a_refusal_and_the_only_finding() {
        let f = findings("i-0123abcd", Some("P"), &options("optional", "disabled", 1), true, false);
        assert_eq!(codes(&f), [FindingCode::EndpointDisabled]);
        assert_eq!(f[0].severity, Severity::Refusal);
        assert!(f[0].fix.contains("--http-endpoint enabled"));
    }

    #[test]
    fn hop_limit_1_warns_only_for_a_container_instance_role() {
        let f = findings("i-0123abcd", Some("P"), &options("required", "enabled", 1), true, false);
        assert_eq!(codes(&f), [FindingCode::HopLimitForContainers]);
        assert!(f[0].message.contains("get no credentials") && f[0].fix.ends_with("--http-put-response-hop-limit 2"));
        assert!(findings("i-0123abcd", Some("P"), &options("required", "enabled", 2), true, false).is_empty());
        assert!(findings("i-0123abcd", Some("P"), &options("required", "enabled", 1), false, false).is_empty());
        let arns = ["arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role".to_string()];
        assert!(is_container_role(&arns));
        assert!(!is_container_role(&["arn:aws:iam::aws:policy/AmazonS3FullAccess".to_string()]));
    }

    #[test]
    fn the_summary_says_what_each_option_means() {
        assert_eq!(
            options("optional", "enabled", 1).summary(),
            "IMDSv1 allowed (HttpTokens=optional), endpoint enabled, hop limit 1"
        );
        let mut o = options("required", "enabled", 2);
        o.state = "pending".into();
        assert_eq!(o.summary(), "IMDSv2 required, endpoint enabled, hop limit 2, being applied");
    }

    #[test]
    fn the_calls_read_as_a_count_and_the_days() {
        let calls = NoTokenCalls {
            instance_id: "i-0123abcd".into(),
            from: "2026-11-22T00:00:00Z".into(),
            to: "2026-12-06T00:00:00Z".into(),
            calls: 37,
            days: vec![
                DayCalls { date: "2026-12-01".into(), calls: 30 },
                DayCalls { date: "2026-12-03".into(), calls: 7 },
            ],
        };
        assert_eq!(calls.text(), "37 IMDSv1 calls on 2 days (2026-12-01: 30, 2026-12-03: 7)");
    }
}
