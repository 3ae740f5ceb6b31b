//! `verify --live` and `bootstrap --wait`: the services themselves asked to accept the stack's roles.
//!
//! - EC2: `RunInstances` with `DryRun` and the instance profile (nothing is launched; `DryRunOperation` is the
//!   success);
//! - Lambda: `CreateFunction` of a one-file Python function with the Lambda role, then `DeleteFunction`;
//! - Step Functions: `CreateStateMachine` (one Pass state) with its role, then `DeleteStateMachine`;
//! - Batch: `CreateComputeEnvironment` (0 vCPUs, DISABLED) with the service role, the instance profile and the Spot
//!   Fleet role, waited out of CREATING, then `DeleteComputeEnvironment`, waited until gone.
//!
//! Each retries, within the timeout, only its service's own "not propagated yet" answer (the code and, where the
//! code alone also means something else, the message; each sourced below) and says what it waits for. Probe
//! resources have fixed names ([`super::probe_name`]) and the ownership tag; they are deleted when the probe ends,
//! whatever the outcome, and [`sweep`] deletes what an earlier, killed run left (only if it carries this stack's
//! tag).

use std::time::{Duration, Instant};

use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{Check, Found, Row, Status};
use crate::aws::{errors, Clients};
use crate::resources::access::trusted_services;
use crate::resources::OWNER_TAG;
use crate::stack::Desired;

/// How often a refused probe is tried again: AWS gives no signal of consistency (boto/boto3#1466), so the probe
/// asks; half a second keeps `--wait` within a round trip or two of the moment the service accepts the role.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// How long the Batch probe waits for its environment to leave CREATING, at least.
const CREATING_GRACE: Duration = Duration::from_secs(30);

/// The Pass state machine of the Step Functions probe.
const PASS_DEFINITION: &str =
    r#"{"Comment":"wfboot verify probe","StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#;

/// Where progress goes ("waiting for Lambda to accept the role ...").
pub(crate) trait Progress: Sync {
    fn waiting(&self, what: &str);
}

/// What the probes need for one stack.
pub(crate) struct Probes<'a> {
    pub(crate) clients: &'a Clients,
    pub(crate) desired: &'a Desired,
    pub(crate) found: &'a [Option<Found>],
    pub(crate) timeout: Duration,
    pub(crate) progress: &'a dyn Progress,
}

/// One probe to run.
#[derive(Debug, Clone)]
enum Probe {
    Lambda {
        role: String,
        role_arn: String,
    },
    StepFunctions {
        role: String,
        role_arn: String,
    },
    Batch {
        role: String,
        role_arn: String,
        profile: Option<String>,
        fleet_role: Option<String>,
    },
    #[cfg_attr(not(feature = "ec2"), allow(dead_code))]
    Ec2 {
        role: String,
        profile: String,
    },
}

impl Probes<'_> {
    /// The live check of every role: each probe run concurrently, a row per role.
    pub(crate) async fn run(&self) -> Vec<Row> {
        let (probes, mut rows) = self.plan();
        let results = futures::future::join_all(probes.iter().map(|p| self.one(p))).await;
        rows.extend(results.into_iter().flatten());
        rows
    }

    /// The probes the stack's roles call for, and the rows of roles no probe covers.
    fn plan(&self) -> (Vec<Probe>, Vec<Row>) {
        let d = self.desired;
        let arn_of = |name: &str| {
            d.roles
                .iter()
                .zip(self.found)
                .find(|(r, _)| r.name == name)
                .and_then(|(_, f)| f.as_ref().map(|f| f.arn.clone()))
        };
        let trusts = |r: &crate::stack::DesiredRole, short: &str| {
            trusted_services(&r.trust).iter().any(|s| s.split('.').next() == Some(short))
        };
        let profile_arn = |name: &str| {
            let p = d.instance_profiles.iter().find(|p| p.name == name)?;
            Some(crate::arn::iam(&d.target.partition, &d.target.account_id, "instance-profile", &p.path, &p.name))
        };
        let fleet = d.roles.iter().find(|r| trusts(r, "spotfleet")).and_then(|r| arn_of(&r.name));
        let batch_profile = d.instance_profiles.first().and_then(|p| profile_arn(&p.name));
        let (mut probes, mut rows) = (Vec::new(), Vec::new());
        for role in &d.roles {
            let Some(role_arn) = arn_of(&role.name) else {
                rows.push(row(
                    &role.name,
                    Status::Failed,
                    "the role does not exist (run `wfboot bootstrap`)",
                    "iam:GetRole",
                ));
                continue;
            };
            let name = role.name.clone();
            if trusts(role, "lambda") {
                probes.push(Probe::Lambda { role: name.clone(), role_arn: role_arn.clone() });
            }
            if trusts(role, "states") {
                probes.push(Probe::StepFunctions { role: name.clone(), role_arn: role_arn.clone() });
            }
            if trusts(role, "batch") {
                probes.push(Probe::Batch {
                    role: name.clone(),
                    role_arn: role_arn.clone(),
                    profile: batch_profile.clone(),
                    fleet_role: fleet.clone(),
                });
            }
            if trusts(role, "ec2") {
                match d.instance_profiles.iter().find(|p| p.role == role.name) {
                    Some(p) => probes.push(Probe::Ec2 { role: name.clone(), profile: p.name.clone() }),
                    None => rows.push(row(
                        &name,
                        Status::Unverified,
                        "no instance profile of the stack holds it: EC2 has nothing to launch it with",
                        "none",
                    )),
                }
            }
            if trusts(role, "spotfleet") {
                rows.push(row(
                    &name,
                    Status::Unverified,
                    match d.roles.iter().any(|r| trusts(r, "batch")) {
                        true => {
                            "no probe of its own: Spot Fleet assumes it only when it requests capacity; the Batch \
                                 probe passes it as the compute environment's spotIamFleetRole"
                        }
                        false => "no probe of its own: Spot Fleet assumes it only when it requests capacity",
                    },
                    "none",
                ));
            }
            let probed = ["lambda", "states", "batch", "ec2", "spotfleet"].iter().any(|s| trusts(role, s));
            if !probed {
                rows.push(row(&name, Status::Unverified, "no live probe for the services it trusts", "none"));
            }
        }
        (probes, rows)
    }

    async fn one(&self, probe: &Probe) -> Vec<Row> {
        let deadline = Instant::now() + self.timeout;
        match probe {
            Probe::Lambda { role, role_arn } => vec![self.lambda(role, role_arn, deadline).await],
            Probe::StepFunctions { role, role_arn } => vec![self.step_functions(role, role_arn, deadline).await],
            Probe::Batch { role, role_arn, profile, fleet_role } => {
                vec![self.batch(role, role_arn, profile.as_deref(), fleet_role.as_deref(), deadline).await]
            }
            #[cfg(feature = "ec2")]
            Probe::Ec2 { role, profile } => vec![self.ec2(role, profile, deadline).await],
            #[cfg(not(feature = "ec2"))]
            Probe::Ec2 { role, .. } => {
                vec![row(role, Status::Unverified, "built without the ec2 feature: no EC2 probe", "none")]
            }
        }
    }

    fn name(&self, role: &str) -> String {
        super::probe_name(&self.desired.stack, role)
    }

    fn waited(start: Instant) -> String {
        let s = start.elapsed().as_secs_f64();
        if s < 1.0 {
            String::new()
        } else {
            format!(" after {s:.1} s")
        }
    }

    /// Lambda CreateFunction with the role, then DeleteFunction.
    async fn lambda(&self, role: &str, role_arn: &str, deadline: Instant) -> Row {
        let c = self.clients;
        let name = self.name(role);
        let method = "Lambda CreateFunction";
        let zip = super::zip::single_file("index.py", b"def handler(event, context):\n    return None\n");
        let start = Instant::now();
        let mut told = false;
        loop {
            let create = c
                .lambda
                .create_function()
                .function_name(&name)
                .runtime(aws_sdk_lambda::types::Runtime::Python312)
                .role(role_arn)
                .handler("index.handler")
                .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(zip.clone().into()).build())
                .tags(OWNER_TAG, &self.desired.stack)
                .publish(false);
            match c.limit(create.send()).await {
                Ok(_) => {
                    let deleted = delete_function(c, &name).await;
                    return match deleted {
                        Ok(()) => row(role, Status::Ok, format!("Lambda accepted it{}", Self::waited(start)), method),
                        Err(e) => row(role, Status::Failed, format!("Lambda accepted it, but {e}"), method),
                    };
                }
                // Lambda does not see the role yet (or cannot assume it): InvalidParameterValueException, "The role
                // defined for the function cannot be assumed by Lambda." The code covers every bad parameter, so the
                // message decides, as terraform-provider-aws internal/service/lambda/function.go (retryFunctionOp)
                // does; aws/aws-cli#7700.
                Err(e) if lambda_not_propagated(&e) => {
                    if Instant::now() + RETRY_EVERY > deadline {
                        return row(
                            role,
                            Status::Failed,
                            format!("Lambda refused it for {:.0} s: {}", start.elapsed().as_secs_f64(), text(&e)),
                            method,
                        );
                    }
                    if !told {
                        told = true;
                        self.progress.waiting(&format!(
                            "waiting for Lambda to accept the role {role} (it cannot assume it yet)"
                        ));
                    }
                }
                // A function of that name already: an earlier probe's (the sweep removes tagged ones) or someone's.
                Err(e) if errors::code(&e) == Some("ResourceConflictException") => {
                    return row(
                        role,
                        Status::Unverified,
                        format!("a function named {name} already exists and is not this stack's probe: {}", text(&e)),
                        method,
                    );
                }
                Err(e) => return row(role, Status::Failed, format!("Lambda refused it: {}", text(&e)), method),
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    /// Step Functions CreateStateMachine with the role, then DeleteStateMachine.
    async fn step_functions(&self, role: &str, role_arn: &str, deadline: Instant) -> Row {
        let c = self.clients;
        let name = self.name(role);
        let method = "Step Functions CreateStateMachine";
        let start = Instant::now();
        let mut told = false;
        loop {
            let create = c
                .sfn
                .create_state_machine()
                .name(&name)
                .definition(PASS_DEFINITION)
                .role_arn(role_arn)
                .tags(aws_sdk_sfn::types::Tag::builder().key(OWNER_TAG).value(&self.desired.stack).build());
            match c.limit(create.send()).await {
                Ok(out) => {
                    let arn = out.state_machine_arn;
                    return match c.limit(c.sfn.delete_state_machine().state_machine_arn(&arn).send()).await {
                        Ok(_) => row(role, Status::Ok, format!("Step Functions accepted it{}", Self::waited(start)), method),
                        Err(e) => row(role, Status::Failed, format!("Step Functions accepted it, but the probe state machine {name} could not be deleted: {}", text(&e)), method),
                    };
                }
                // Not propagated yet: AccessDeniedException "Neither the global service principal
                // states.amazonaws.com, nor the regional one is authorized to assume the provided role."
                // (hashicorp/terraform-provider-aws#7893; internal/service/sfn/state_machine.go retries
                // CreateStateMachine on AccessDeniedException and StateMachineDeleting). AccessDeniedException alone
                // also means the caller lacks a permission, so the message decides. StateMachineDeleting: the
                // previous probe's machine is still going.
                Err(e) if sfn_not_propagated(&e) || errors::code(&e) == Some("StateMachineDeleting") => {
                    if Instant::now() + RETRY_EVERY > deadline {
                        return row(
                            role,
                            Status::Failed,
                            format!(
                                "Step Functions refused it for {:.0} s: {}",
                                start.elapsed().as_secs_f64(),
                                text(&e)
                            ),
                            method,
                        );
                    }
                    if !told {
                        told = true;
                        self.progress.waiting(&format!("waiting for Step Functions to accept the role {role}"));
                    }
                }
                Err(e) => return row(role, Status::Failed, format!("Step Functions refused it: {}", text(&e)), method),
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    /// Batch CreateComputeEnvironment with the service role (and the instance profile and Spot Fleet role), waited
    /// out of CREATING; then deleted and waited until gone. Batch reports a service role it cannot assume only in
    /// the environment's status: INVALID with "CLIENT_ERROR - User: batch.amazonaws.com is not authorized to
    /// perform: sts:AssumeRole on resource: ..." (hashicorp/terraform-provider-aws#21281); an INVALID environment
    /// never repairs itself (Batch user guide, Troubleshooting, "INVALID compute environment"), so the probe deletes
    /// it and creates it again until the timeout.
    async fn batch(
        &self,
        role: &str,
        role_arn: &str,
        profile: Option<&str>,
        fleet_role: Option<&str>,
        deadline: Instant,
    ) -> Row {
        use aws_sdk_batch::types::{CeState, CeStatus, CeType, ComputeResource, CrType};
        let c = self.clients;
        let name = self.name(role);
        let method = "Batch CreateComputeEnvironment";
        let start = Instant::now();
        let resources = match profile {
            Some(profile) => match self.network().await {
                Ok((subnet, group)) => {
                    let built = ComputeResource::builder()
                        .r#type(if fleet_role.is_some() { CrType::Spot } else { CrType::Ec2 })
                        .minv_cpus(0)
                        .maxv_cpus(1)
                        .desiredv_cpus(0)
                        .instance_types("optimal")
                        .subnets(subnet)
                        .security_group_ids(group)
                        .instance_role(profile)
                        .set_spot_iam_fleet_role(fleet_role.map(str::to_string))
                        .set_bid_percentage(fleet_role.map(|_| 100))
                        .tags(OWNER_TAG, &self.desired.stack)
                        .build();
                    Some(built)
                }
                Err(why) => return row(role, Status::Unverified, why, method),
            },
            None => None,
        };
        let mut told = false;
        loop {
            let create = c
                .batch
                .create_compute_environment()
                .compute_environment_name(&name)
                .r#type(if resources.is_some() { CeType::Managed } else { CeType::Unmanaged })
                .state(CeState::Disabled)
                .service_role(role_arn)
                .set_compute_resources(resources.clone())
                .tags(OWNER_TAG, &self.desired.stack);
            if let Err(e) = c.limit(create.send()).await {
                return row(role, Status::Failed, format!("Batch refused it: {}", text(&e)), method);
            }
            // CREATING until Batch has tried the role: waited for at least CREATING_GRACE even when the timeout is
            // nearer, so that a short timeout still gets Batch's verdict.
            let created = Instant::now();
            let status = loop {
                match describe_environment(c, &name).await {
                    Ok(Some((status, reason, _))) if status != CeStatus::Creating => break Ok((status, reason)),
                    Ok(Some(_)) if Instant::now() > deadline.max(created + CREATING_GRACE) => {
                        break Err("it was still CREATING at the timeout".to_string())
                    }
                    Ok(Some(_)) => tokio::time::sleep(RETRY_EVERY).await,
                    Ok(None) => break Err("it disappeared while CREATING".to_string()),
                    Err(e) => break Err(e),
                }
            };
            let gone = delete_environment(c, &name, deadline + Duration::from_secs(60)).await;
            let (status, reason) = match status {
                Ok(s) => s,
                Err(why) => {
                    return row(
                        role,
                        Status::Failed,
                        with_cleanup(format!("the probe compute environment {name}: {why}"), gone),
                        method,
                    )
                }
            };
            if status == CeStatus::Valid {
                return row(
                    role,
                    Status::Ok,
                    with_cleanup(format!("Batch accepted it (VALID){}", Self::waited(start)), gone),
                    method,
                );
            }
            // statusReason is the only signal Batch gives (hashicorp/terraform-provider-aws#21281).
            let cannot_assume =
                status == CeStatus::Invalid && reason.contains("is not authorized to perform: sts:AssumeRole");
            if let Err(e) = &gone {
                return row(
                    role,
                    Status::Failed,
                    format!("the compute environment went {}: {reason}; and {e}", status.as_str()),
                    method,
                );
            }
            if !cannot_assume || Instant::now() + RETRY_EVERY > deadline {
                return row(
                    role,
                    Status::Failed,
                    format!("Batch: the compute environment went {}{}: {reason}", status.as_str(), Self::waited(start)),
                    method,
                );
            }
            if !told {
                told = true;
                self.progress.waiting(&format!("waiting for Batch to be able to assume the role {role}"));
            }
        }
    }

    /// A subnet and the default security group of the region's default VPC, for the Batch probe.
    #[cfg(feature = "ec2")]
    async fn network(&self) -> Result<(String, String), String> {
        use aws_sdk_ec2::types::Filter;
        let c = self.clients;
        let filter = |n: &str, v: &str| Filter::builder().name(n).values(v).build();
        let vpcs = c
            .limit(c.ec2.describe_vpcs().filters(filter("is-default", "true")).send())
            .await
            .map_err(|e| format!("cannot find the default VPC for the probe: {}", text(&e)))?;
        let Some(vpc) = vpcs.vpcs().first().and_then(|v| v.vpc_id()) else {
            return Err("the region has no default VPC: the Batch probe needs a subnet".into());
        };
        let subnets = c.limit(c.ec2.describe_subnets().filters(filter("vpc-id", vpc)).send());
        let groups = c.limit(
            c.ec2
                .describe_security_groups()
                .filters(filter("vpc-id", vpc))
                .filters(filter("group-name", "default"))
                .send(),
        );
        let (subnets, groups) = tokio::join!(subnets, groups);
        let subnet = subnets
            .map_err(|e| format!("cannot list the default VPC's subnets: {}", text(&e)))?
            .subnets()
            .iter()
            .find_map(|s| s.subnet_id().map(str::to_string))
            .ok_or("the default VPC has no subnet")?;
        let group = groups
            .map_err(|e| format!("cannot find the default security group: {}", text(&e)))?
            .security_groups()
            .iter()
            .find_map(|g| g.group_id().map(str::to_string))
            .ok_or("the default VPC has no default security group")?;
        Ok((subnet, group))
    }

    #[cfg(not(feature = "ec2"))]
    async fn network(&self) -> Result<(String, String), String> {
        Err("built without the ec2 feature: no subnet for the Batch probe".into())
    }

    /// EC2 RunInstances with DryRun and the instance profile: DryRunOperation is the answer of a request that would
    /// have succeeded (EC2 API reference, RunInstances, DryRun).
    #[cfg(feature = "ec2")]
    async fn ec2(&self, role: &str, profile: &str, deadline: Instant) -> Row {
        use aws_sdk_ec2::types::{Filter, IamInstanceProfileSpecification, InstanceType};
        let c = self.clients;
        let method = "EC2 RunInstances (dry run)";
        // On AWS a profile that is missing and one EC2 does not see yet get the same answer, so IAM is asked first.
        match c.limit(c.iam.get_instance_profile().instance_profile_name(profile).send()).await {
            Ok(out) if out.instance_profile.as_ref().is_some_and(|p| p.roles.iter().any(|r| r.role_name == role)) => {}
            Ok(_) => {
                return row(
                    role,
                    Status::Failed,
                    format!("the instance profile {profile} does not hold the role (run `wfboot bootstrap`)"),
                    method,
                )
            }
            Err(e) if errors::is_no_such_entity(&e) => {
                return row(
                    role,
                    Status::Failed,
                    format!("the instance profile {profile} does not exist (run `wfboot bootstrap`)"),
                    method,
                )
            }
            Err(e) => {
                return row(
                    role,
                    Status::Unverified,
                    format!("cannot read the instance profile {profile}: {}", text(&e)),
                    method,
                )
            }
        }
        // A real, region-local image: Amazon Linux 2023's (a dry run checks the image too).
        let images = c
            .limit(
                c.ec2
                    .describe_images()
                    .owners("amazon")
                    .filters(Filter::builder().name("name").values("al2023-ami-2023.*-x86_64").build())
                    .filters(Filter::builder().name("state").values("available").build())
                    .send(),
            )
            .await;
        let image = match images {
            Ok(out) => {
                let mut all: Vec<_> = out
                    .images()
                    .iter()
                    .filter_map(|i| Some((i.creation_date()?.to_string(), i.image_id()?.to_string())))
                    .collect();
                all.sort();
                match all.pop() {
                    Some((_, id)) => id,
                    None => {
                        return row(
                            role,
                            Status::Unverified,
                            "no Amazon Linux 2023 image found in the region for the dry run",
                            method,
                        )
                    }
                }
            }
            Err(e) => {
                return row(
                    role,
                    Status::Unverified,
                    format!("cannot find an image for the dry run: {}", text(&e)),
                    method,
                )
            }
        };
        let start = Instant::now();
        let mut told = false;
        loop {
            let run = c
                .ec2
                .run_instances()
                .image_id(&image)
                .instance_type(InstanceType::T3Micro)
                .min_count(1)
                .max_count(1)
                .dry_run(true)
                .iam_instance_profile(IamInstanceProfileSpecification::builder().name(profile).build());
            match c.limit(run.send()).await {
                Ok(_) => {
                    return row(
                        role,
                        Status::Failed,
                        "EC2 launched an instance although the request was a dry run",
                        method,
                    )
                }
                Err(e) if errors::code(&e) == Some("DryRunOperation") => {
                    return row(
                        role,
                        Status::Ok,
                        format!("EC2 accepts the instance profile {profile}{}", Self::waited(start)),
                        method,
                    )
                }
                Err(e)
                    if errors::code_and_message(&e)
                        .is_some_and(|(code, m)| crate::resources::instance::not_propagated(code, m)) =>
                {
                    if Instant::now() + RETRY_EVERY > deadline {
                        return row(
                            role,
                            Status::Failed,
                            format!(
                                "EC2 refused the instance profile {profile} for {:.0} s: {}",
                                start.elapsed().as_secs_f64(),
                                text(&e)
                            ),
                            method,
                        );
                    }
                    if !told {
                        told = true;
                        self.progress.waiting(&format!("waiting for EC2 to accept the instance profile {profile}"));
                    }
                }
                Err(e) => return row(role, Status::Failed, format!("EC2 refused the dry run: {}", text(&e)), method),
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }
}

fn row(role: &str, status: Status, detail: impl Into<String>, method: &str) -> Row {
    Row::new(role, Check::Live, status, detail, method)
}

fn with_cleanup(detail: String, gone: Result<(), String>) -> String {
    match gone {
        Ok(()) => detail,
        Err(e) => format!("{detail}; but {e}"),
    }
}

/// "CODE: message" of a failed call (or what went wrong on the way).
fn text<E, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match errors::code_and_message(e) {
        Some((code, message)) => format!("{code}: {message}"),
        None => errors::describe("call AWS", e).message,
    }
}

fn lambda_not_propagated<E: ProvideErrorMetadata, R>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> bool {
    errors::code_and_message(e).is_some_and(|(code, message)| {
        code == "InvalidParameterValueException" && message.contains("cannot be assumed by Lambda")
    })
}

fn sfn_not_propagated<E: ProvideErrorMetadata, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> bool {
    errors::code_and_message(e).is_some_and(|(code, message)| {
        code == "AccessDeniedException" && message.contains("is authorized to assume the provided role")
    })
}

async fn delete_function(c: &Clients, name: &str) -> Result<(), String> {
    match c.limit(c.lambda.delete_function().function_name(name).send()).await {
        Ok(_) => Ok(()),
        Err(e) if errors::code(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(format!("the probe function {name} could not be deleted: {}", text(&e))),
    }
}

/// The status, statusReason and tags of the compute environment `name`, `None` when there is none.
async fn describe_environment(
    c: &Clients,
    name: &str,
) -> Result<Option<(aws_sdk_batch::types::CeStatus, String, Option<String>)>, String> {
    let out = c
        .limit(c.batch.describe_compute_environments().compute_environments(name).send())
        .await
        .map_err(|e| format!("cannot read the probe compute environment {name}: {}", text(&e)))?;
    Ok(out.compute_environments().iter().find(|e| e.compute_environment_name() == Some(name)).map(|e| {
        (
            e.status().cloned().unwrap_or(aws_sdk_batch::types::CeStatus::Creating),
            e.status_reason().unwrap_or_default().to_string(),
            e.tags().and_then(|t| t.get(OWNER_TAG)).cloned(),
        )
    }))
}

/// Disable (Batch deletes only a DISABLED environment: API reference, DeleteComputeEnvironment) and delete the
/// compute environment `name`, then wait until it is gone (DELETING first), until `deadline`.
async fn delete_environment(c: &Clients, name: &str, deadline: Instant) -> Result<(), String> {
    use aws_sdk_batch::types::{CeState, CeStatus};
    let out = c
        .limit(c.batch.describe_compute_environments().compute_environments(name).send())
        .await
        .map_err(|e| format!("cannot read the probe compute environment {name}: {}", text(&e)))?;
    let Some(env) = out.compute_environments().iter().find(|e| e.compute_environment_name() == Some(name)) else {
        return Ok(());
    };
    if env.status() == Some(&CeStatus::Deleting) {
        return wait_gone(c, name, deadline).await;
    }
    if env.state() == Some(&CeState::Enabled) {
        c.limit(c.batch.update_compute_environment().compute_environment(name).state(CeState::Disabled).send())
            .await
            .map_err(|e| format!("the probe compute environment {name} could not be disabled: {}", text(&e)))?;
    }
    c.limit(c.batch.delete_compute_environment().compute_environment(name).send())
        .await
        .map_err(|e| format!("the probe compute environment {name} could not be deleted: {}", text(&e)))?;
    wait_gone(c, name, deadline).await
}

async fn wait_gone(c: &Clients, name: &str, deadline: Instant) -> Result<(), String> {
    loop {
        match describe_environment(c, name).await? {
            None => return Ok(()),
            Some(_) if Instant::now() > deadline => {
                return Err(format!("the probe compute environment {name} was still there at the timeout"))
            }
            Some(_) => tokio::time::sleep(RETRY_EVERY).await,
        }
    }
}

/// Delete what earlier probes of this stack left (a run killed between a create and its delete): the fixed
/// probe names of every role, each only if it carries this stack's ownership tag. Returns what was deleted.
pub(crate) async fn sweep(clients: &Clients, desired: &Desired) -> Result<Vec<String>, String> {
    let c = clients;
    let stack = &desired.stack;
    let t = &desired.target;
    let mut swept = Vec::new();
    for role in &desired.roles {
        let name = super::probe_name(stack, &role.name);
        let services = trusted_services(&role.trust);
        let trusts = |short: &str| services.iter().any(|s| s.split('.').next() == Some(short));
        if trusts("lambda") {
            match c.limit(c.lambda.get_function().function_name(&name).send()).await {
                Ok(out) if out.tags().and_then(|t| t.get(OWNER_TAG)) == Some(stack) => {
                    delete_function(c, &name).await?;
                    swept.push(format!("Lambda function {name}"));
                }
                Ok(_) => {}
                Err(e) if errors::code(&e) == Some("ResourceNotFoundException") => {}
                Err(e) => return Err(format!("cannot look for a leftover probe function {name}: {}", text(&e))),
            }
        }
        if trusts("states") {
            let arn = format!("arn:{}:states:{}:{}:stateMachine:{name}", t.partition, t.region, t.account_id);
            match c.limit(c.sfn.list_tags_for_resource().resource_arn(&arn).send()).await {
                Ok(out)
                    if out.tags().iter().any(|t| t.key() == Some(OWNER_TAG) && t.value() == Some(stack.as_str())) =>
                {
                    c.limit(c.sfn.delete_state_machine().state_machine_arn(&arn).send()).await.map_err(|e| {
                        format!("the leftover probe state machine {name} could not be deleted: {}", text(&e))
                    })?;
                    swept.push(format!("state machine {name}"));
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        errors::code(&e),
                        Some("ResourceNotFound" | "StateMachineDoesNotExist" | "InvalidArn")
                    ) => {}
                Err(e) => return Err(format!("cannot look for a leftover probe state machine {name}: {}", text(&e))),
            }
        }
        if trusts("batch") {
            if let Some((_, _, Some(tag))) = describe_environment(c, &name).await? {
                if &tag == stack {
                    delete_environment(c, &name, Instant::now() + Duration::from_secs(120)).await?;
                    swept.push(format!("compute environment {name}"));
                }
            }
        }
    }
    Ok(swept)
}
