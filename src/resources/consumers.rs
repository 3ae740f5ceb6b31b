//! Who uses a role or an instance profile, read before `destroy` deletes it. Deleting a role under a workload
//! breaks it, and for Batch irreparably: a compute environment whose service role is gone goes INVALID and can
//! no longer be deleted (terraform-provider-aws PR #21281 and #16417).
//!
//! The consumers looked for, in the run's region, each by the field that names the role or profile (API
//! references: Batch `ComputeEnvironmentDetail`, `JobDefinition`
//! https://docs.aws.amazon.com/batch/latest/APIReference/API_JobDefinition.html; Lambda `FunctionConfiguration`;
//! Step Functions `DescribeStateMachine`; EC2 `DescribeIamInstanceProfileAssociations`):
//! - Batch compute environments: `serviceRole` and `spotIamFleetRole` (role ARNs), `computeResources.instanceRole`
//!   (an instance profile, "the short name or full Amazon Resource Name (ARN)", CreateComputeEnvironment);
//! - Batch job definitions, ACTIVE revisions: `jobRoleArn` and `executionRoleArn` (container, node ranges, ECS
//!   tasks' `taskRoleArn` / `executionRoleArn`);
//! - Lambda functions: `Role`;
//! - Step Functions state machines: `roleArn` (ListStateMachines does not carry it: one DescribeStateMachine each);
//! - EC2 instances: their instance profile association (associating or associated).
//!
//! Read-only, every list in the same round trip, each paginated and within `--max-concurrency`. A lookup that
//! fails (AccessDenied, the service not offered in the region, anything else) is not "no consumer": every
//! resource it could have named is reported as not checked, and held back like a used one.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::aws::{errors, Clients};

/// The read actions of the lookup, added to what `destroy` needs.
pub(crate) const READ_ACTIONS: &[&str] = &[
    "batch:DescribeComputeEnvironments",
    "batch:DescribeJobDefinitions",
    "lambda:ListFunctions",
    "states:ListStateMachines",
    "states:DescribeStateMachine",
    "ec2:DescribeIamInstanceProfileAssociations",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ConsumerKind {
    ComputeEnvironment,
    JobDefinition,
    LambdaFunction,
    StateMachine,
    Instance,
    /// An IAM role, user or group the stack does not own with one of the stack's policies attached.
    Role,
    User,
    Group,
    /// A lookup that could not be made: `name` is the lookup, `detail` why.
    NotChecked,
}

/// One thing that uses a role, an instance profile or a policy of the stack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct Consumer {
    pub(crate) kind: ConsumerKind,
    pub(crate) name: String,
    /// The field that names the resource (`serviceRole`, `instanceRole`, `Role`, ...); for a lookup not made, the
    /// action of the call that failed.
    pub(crate) via: String,
    /// Its state as its service reports it (`VALID`, `Active`, `associated`), or why a lookup failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

impl fmt::Display for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ConsumerKind::ComputeEnvironment => "compute environment",
            ConsumerKind::JobDefinition => "job definition",
            ConsumerKind::LambdaFunction => "Lambda function",
            ConsumerKind::StateMachine => "state machine",
            ConsumerKind::Instance => "instance",
            ConsumerKind::Role => "role",
            ConsumerKind::User => "user",
            ConsumerKind::Group => "group",
            ConsumerKind::NotChecked => {
                let why = self.detail.as_deref().unwrap_or("failed");
                return write!(f, "could not check {} ({}: {why})", self.name, self.via);
            }
        };
        write!(f, "{kind} {}", self.name)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        if !self.via.is_empty() {
            write!(f, " as its {}", self.via)?;
        }
        Ok(())
    }
}

/// What the lookup found, by the name of the role or instance profile used.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Consumers {
    pub(crate) roles: BTreeMap<String, Vec<Consumer>>,
    pub(crate) instance_profiles: BTreeMap<String, Vec<Consumer>>,
    /// Lookups that failed, and whether what they would have found are roles, profiles or both.
    pub(crate) not_checked: Vec<(Consumer, Uses)>,
}

/// What a lookup's consumers name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Uses {
    Roles,
    Profiles,
    Both,
}

impl Consumers {
    /// The consumers of the role `name`, failed lookups that could have named it included.
    pub(crate) fn of_role(&self, name: &str) -> Vec<Consumer> {
        self.of(&self.roles, name, Uses::Roles)
    }

    pub(crate) fn of_instance_profile(&self, name: &str) -> Vec<Consumer> {
        self.of(&self.instance_profiles, name, Uses::Profiles)
    }

    fn of(&self, found: &BTreeMap<String, Vec<Consumer>>, name: &str, uses: Uses) -> Vec<Consumer> {
        let mut out = found.get(name).cloned().unwrap_or_default();
        out.extend(self.not_checked.iter().filter(|(_, u)| *u == uses || *u == Uses::Both).map(|(c, _)| c.clone()));
        out
    }

    fn add(
        &mut self,
        reference: Option<&str>,
        account: &str,
        kind: ConsumerKind,
        name: &str,
        via: &str,
        detail: Option<String>,
    ) {
        let Some(reference) = reference.filter(|r| !r.is_empty()) else { return };
        let consumer = Consumer { kind, name: name.to_string(), via: via.to_string(), detail };
        // instanceRole may be a bare profile name; every other field is an ARN.
        let (map, target) = match Target::of(reference, account) {
            Some(Target::Role(n)) => (&mut self.roles, n),
            Some(Target::Profile(n)) => (&mut self.instance_profiles, n),
            None if via == "instanceRole" && !reference.contains(':') => {
                (&mut self.instance_profiles, reference.rsplit('/').next().unwrap_or(reference).to_string())
            }
            None => return,
        };
        let list = map.entry(target).or_default();
        if !list.contains(&consumer) {
            list.push(consumer);
        }
    }

    /// Add what the lookup in another region found (the region a role was last used in), each consumer named
    /// with its region.
    pub(crate) fn merge_region(&mut self, other: Consumers, region: &str) {
        let in_region = |mut c: Consumer| {
            c.name = format!("{} in {region}", c.name);
            c
        };
        for (found, mine) in [(other.roles, &mut self.roles), (other.instance_profiles, &mut self.instance_profiles)] {
            for (name, consumers) in found {
                let list = mine.entry(name).or_default();
                for c in consumers.into_iter().map(in_region) {
                    if !list.contains(&c) {
                        list.push(c);
                    }
                }
            }
        }
        self.not_checked.extend(other.not_checked.into_iter().map(|(c, uses)| (in_region(c), uses)));
    }

    /// The compute environments Batch is deleting (status DELETING) among the consumers of the roles `roles` and the
    /// instance profiles `profiles`.
    pub(crate) fn deleting_environments(&self, roles: &[&str], profiles: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = roles
            .iter()
            .flat_map(|n| self.roles.get(*n).into_iter().flatten())
            .chain(profiles.iter().flat_map(|n| self.instance_profiles.get(*n).into_iter().flatten()))
            .filter(|c| c.kind == ConsumerKind::ComputeEnvironment && c.detail.as_deref() == Some("DELETING"))
            .map(|c| c.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Forget the compute environments `gone`: they no longer use anything.
    pub(crate) fn forget_environments(&mut self, gone: &[String]) {
        for list in self.roles.values_mut().chain(self.instance_profiles.values_mut()) {
            list.retain(|c| !(c.kind == ConsumerKind::ComputeEnvironment && gone.contains(&c.name)));
        }
        self.roles.retain(|_, l| !l.is_empty());
        self.instance_profiles.retain(|_, l| !l.is_empty());
    }

    /// Nothing could be looked up in `region`: whatever it could have named is "could not check".
    pub(crate) fn unreachable(region: &str, why: String) -> Consumers {
        let mut c = Consumers::default();
        c.not_checked.push((
            Consumer {
                kind: ConsumerKind::NotChecked,
                name: format!("the consumers in {region}"),
                via: "clients for the region".into(),
                detail: Some(why),
            },
            Uses::Both,
        ));
        c
    }

    /// A lookup that failed: `call` is named as the IAM action to grant (`lambda:ListFunctions`).
    fn failed(&mut self, lookup: &str, call: &str, why: String, uses: Uses) {
        let action = READ_ACTIONS.iter().find(|a| a.split(':').nth(1) == Some(call)).copied().unwrap_or(call);
        let consumer = Consumer {
            kind: ConsumerKind::NotChecked,
            name: lookup.to_string(),
            via: action.to_string(),
            detail: Some(why),
        };
        self.not_checked.push((consumer, uses));
    }
}

/// What an ARN of this account names: a role or an instance profile, by name (IAM names are unique in an
/// account whatever their path: the last segment is the name).
enum Target {
    Role(String),
    Profile(String),
}

impl Target {
    fn of(arn: &str, account: &str) -> Option<Target> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [_, _, "iam", _, arn_account, resource] = parts[..] else { return None };
        if arn_account != account {
            return None;
        }
        let name = resource.rsplit('/').next()?.to_string();
        match resource.split('/').next()? {
            "role" => Some(Target::Role(name)),
            "instance-profile" => Some(Target::Profile(name)),
            _ => None,
        }
    }
}

/// Look up every consumer in the region of `clients` of the roles and instance profiles of `account`.
pub(crate) async fn observe(clients: &Clients, account: &str) -> Consumers {
    let environments = clients.all(clients.batch.describe_compute_environments().into_paginator().items().send());
    let definitions =
        clients.all(clients.batch.describe_job_definitions().status("ACTIVE").into_paginator().items().send());
    let functions = clients.all(clients.lambda.list_functions().into_paginator().items().send());
    let machines = async {
        let list = clients.all(clients.sfn.list_state_machines().into_paginator().items().send()).await?;
        let described = futures::future::join_all(list.iter().map(|m| {
            clients.limit(clients.sfn.describe_state_machine().state_machine_arn(m.state_machine_arn()).send())
        }))
        .await;
        Ok::<_, aws_smithy_runtime_api::client::result::SdkError<_, _>>(described)
    };
    let associations = associations(clients);
    let (environments, definitions, functions, machines, associations) =
        tokio::join!(environments, definitions, functions, machines, associations);

    let mut c = Consumers::default();
    match environments {
        Ok(list) => {
            for e in list {
                let name = e.compute_environment_name().unwrap_or_default();
                let status = e.status().map(|s| s.as_str().to_string());
                let kind = ConsumerKind::ComputeEnvironment;
                c.add(e.service_role(), account, kind, name, "serviceRole", status.clone());
                if let Some(r) = e.compute_resources() {
                    c.add(r.instance_role(), account, kind, name, "instanceRole", status.clone());
                    c.add(r.spot_iam_fleet_role(), account, kind, name, "spotIamFleetRole", status.clone());
                }
            }
        }
        Err(e) => c.failed("Batch compute environments", "DescribeComputeEnvironments", errors::short(&e), Uses::Both),
    }
    match definitions {
        Ok(list) => {
            for d in list {
                let name = format!("{}:{}", d.job_definition_name().unwrap_or_default(), d.revision().unwrap_or(0));
                let kind = ConsumerKind::JobDefinition;
                let mut containers: Vec<&aws_sdk_batch::types::ContainerProperties> =
                    d.container_properties().into_iter().collect();
                let mut tasks: Vec<&aws_sdk_batch::types::EcsTaskProperties> =
                    d.ecs_properties().map(|e| e.task_properties().iter().collect()).unwrap_or_default();
                for range in d.node_properties().map(|n| n.node_range_properties()).unwrap_or_default() {
                    containers.extend(range.container());
                    tasks.extend(range.ecs_properties().map(|e| e.task_properties()).unwrap_or_default());
                }
                for p in containers {
                    c.add(p.job_role_arn(), account, kind, &name, "jobRoleArn", None);
                    c.add(p.execution_role_arn(), account, kind, &name, "executionRoleArn", None);
                }
                for t in tasks {
                    c.add(t.task_role_arn(), account, kind, &name, "taskRoleArn", None);
                    c.add(t.execution_role_arn(), account, kind, &name, "executionRoleArn", None);
                }
            }
        }
        Err(e) => c.failed("Batch job definitions", "DescribeJobDefinitions", errors::short(&e), Uses::Roles),
    }
    match functions {
        Ok(list) => {
            for f in list {
                let state = f.state().map(|s| s.as_str().to_string());
                let name = f.function_name().unwrap_or_default();
                c.add(f.role(), account, ConsumerKind::LambdaFunction, name, "Role", state);
            }
        }
        Err(e) => c.failed("Lambda functions", "ListFunctions", errors::short(&e), Uses::Roles),
    }
    match machines {
        Ok(described) => {
            for m in described {
                match m {
                    Ok(m) => {
                        let status = m.status().map(|s| s.as_str().to_string());
                        c.add(Some(m.role_arn()), account, ConsumerKind::StateMachine, m.name(), "roleArn", status);
                    }
                    // Deleted between the list and the describe: not a consumer any more.
                    Err(e) if errors::code(&e) == Some("StateMachineDoesNotExist") => {}
                    Err(e) => c.failed(
                        "Step Functions state machines",
                        "DescribeStateMachine",
                        errors::short(&e),
                        Uses::Roles,
                    ),
                }
            }
        }
        Err(e) => c.failed("Step Functions state machines", "ListStateMachines", errors::short(&e), Uses::Roles),
    }
    match associations {
        Ok(list) => {
            for (instance, profile_arn, state) in list {
                c.add(Some(&profile_arn), account, ConsumerKind::Instance, &instance, "", Some(state));
            }
        }
        Err(why) => {
            c.failed("EC2 instance profile associations", "DescribeIamInstanceProfileAssociations", why, Uses::Profiles)
        }
    }
    c.not_checked.dedup_by(|a, b| a.0 == b.0);
    c
}

/// How long `destroy` waits for Batch to finish deleting a compute environment that uses one of the stack's roles
/// (one of `bootstrap --wait`'s probes, say) before it holds the role back as used. A role must outlive the
/// environments that use it: an environment whose service role is gone goes INVALID and cannot be deleted
/// (terraform-provider-aws PR #21281).
pub(crate) const DELETING_WAIT: Duration = Duration::from_secs(120);

/// Wait until Batch has finished deleting the compute environments `names` (each DELETING), reading them at the
/// cadence of a wait for the account to catch up (0.2 s, backing off to 2 s), for at most `within`. Returns those
/// gone; a failed read ends the wait (the rest stay consumers).
pub(crate) async fn wait_deleted(clients: &Clients, names: &[String], within: Duration) -> Vec<String> {
    let until = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(200);
    let mut left: Vec<String> = names.to_vec();
    while !left.is_empty() && tokio::time::Instant::now() < until {
        tokio::time::sleep(pause.min(until.saturating_duration_since(tokio::time::Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        let read = clients
            .limit(clients.batch.describe_compute_environments().set_compute_environments(Some(left.clone())).send())
            .await;
        let Ok(out) = read else { break };
        let there: Vec<&str> = out.compute_environments().iter().filter_map(|e| e.compute_environment_name()).collect();
        left.retain(|n| there.contains(&n.as_str()));
    }
    names.iter().filter(|n| !left.contains(n)).cloned().collect()
}

/// The instances holding a profile: (instance id, profile ARN, association state).
#[cfg(feature = "ec2")]
async fn associations(clients: &Clients) -> Result<Vec<(String, String, String)>, String> {
    use aws_sdk_ec2::types::Filter;
    let req = clients
        .ec2
        .describe_iam_instance_profile_associations()
        .filters(Filter::builder().name("state").values("associating").values("associated").build());
    let items = clients.all(req.into_paginator().items().send()).await.map_err(|e| errors::short(&e))?;
    Ok(items
        .into_iter()
        .map(|a| {
            (
                a.instance_id().unwrap_or_default().to_string(),
                a.iam_instance_profile().and_then(|p| p.arn()).unwrap_or_default().to_string(),
                a.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            )
        })
        .collect())
}

/// Built without EC2: the associations cannot be read, so every profile is held back as not checked.
#[cfg(not(feature = "ec2"))]
async fn associations(_: &Clients) -> Result<Vec<(String, String, String)>, String> {
    Err("this wfboot was built without EC2".into())
}

/// GetRole's `RoleLastUsed`: when the role was last assumed and in which region. IAM tracks it for 400 days,
/// and not in every region (IAM API reference, RoleLastUsed:
/// https://docs.aws.amazon.com/IAM/latest/APIReference/API_RoleLastUsed.html).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LastUsed {
    /// ISO 8601, UTC.
    pub(crate) date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) region: Option<String>,
}

impl LastUsed {
    pub(crate) fn of(used: Option<aws_sdk_iam::types::RoleLastUsed>) -> Option<LastUsed> {
        let used = used?;
        let date = used.last_used_date?.fmt(aws_smithy_types::date_time::Format::DateTime).ok()?;
        Some(LastUsed { date, region: used.region })
    }
}

impl fmt::Display for LastUsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "last used {}", self.date)?;
        match &self.region {
            Some(region) => write!(f, " in {region}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_of_this_account_name_roles_and_profiles_by_their_last_segment() {
        let mut c = Consumers::default();
        let acct = "111122223333";
        let ce = ConsumerKind::ComputeEnvironment;
        c.add(
            Some("arn:aws:iam::111122223333:role/service-role/AWSBatchServiceRole"),
            acct,
            ce,
            "gpu",
            "serviceRole",
            Some("VALID".into()),
        );
        c.add(Some("ecsInstanceRole"), acct, ce, "gpu", "instanceRole", Some("VALID".into()));
        c.add(Some("arn:aws:iam::111122223333:instance-profile/P"), acct, ce, "cpu", "instanceRole", None);
        c.add(Some("arn:aws:iam::999999999999:role/AWSBatchServiceRole"), acct, ce, "other", "serviceRole", None);
        c.add(Some("arn:aws-cn:iam::111122223333:role/R"), acct, ConsumerKind::LambdaFunction, "f", "Role", None);
        assert_eq!(c.of_role("AWSBatchServiceRole").len(), 1, "another account's role of the same name is not ours");
        assert_eq!(
            c.of_role("AWSBatchServiceRole")[0].to_string(),
            "compute environment gpu (VALID) as its serviceRole"
        );
        assert_eq!(c.of_instance_profile("ecsInstanceRole").len(), 1);
        assert_eq!(c.of_instance_profile("P").len(), 1);
        assert_eq!(c.of_role("R").len(), 1);

        c.failed("Lambda functions", "ListFunctions", "AccessDeniedException".into(), Uses::Roles);
        assert_eq!(c.of_role("Unused").len(), 1, "a failed lookup names every role it could have found");
        assert_eq!(c.of_instance_profile("Unused").len(), 0, "but no profile");
        assert_eq!(
            c.of_role("Unused")[0].to_string(),
            "could not check Lambda functions (lambda:ListFunctions: AccessDeniedException)"
        );
    }

    #[test]
    fn destroy_s_documented_permissions_include_every_lookup() {
        let docs = include_str!("../../docs/commands.md");
        for action in READ_ACTIONS {
            assert!(docs.contains(&format!("`{action}`")), "docs/commands.md \"wfboot destroy\" must name {action}");
        }
    }
}
