//! `verify --live` and `bootstrap --wait`: the services themselves asked to accept the stack's roles, one probe
//! per role and service its trust names:
//!
//! - EC2 (`ec2`, a role an instance profile of the stack holds): iam:GetInstanceProfile (the profile holds the
//!   role), then `RunInstances` with `DryRun` and the instance profile (nothing is launched; `DryRunOperation` is
//!   the success);
//! - Lambda (`lambda`): `CreateFunction` of a one-file Python function with the role, then `DeleteFunction`;
//! - Step Functions (`states`): `CreateStateMachine` (one Pass state) with the role, then `DeleteStateMachine`;
//! - Batch (`batch`): `CreateComputeEnvironment` (0 vCPUs, DISABLED) with the service role, the instance profile and
//!   the Spot Fleet role, waited out of CREATING (VALID is the success), then `DeleteComputeEnvironment`, waited
//!   until gone;
//! - Spot Fleet (`spotfleet`): no probe of its own (it assumes its role only when it requests capacity); the Batch
//!   probe passes the role as the compute environment's `spotIamFleetRole`.
//!
//! Each probe begins when its [`Gate`] opens (`verify`: at once; `bootstrap --wait`: once its roles, and instance
//! profile, were written and read back), asks at a short cadence that backs off ([`Cadence`]), retries only its
//! service's own "not propagated yet" answer (the code and, where the code alone also means something else, the
//! message; each sourced below), says what it waits for and, as it happens, when the service accepted the role.
//! Probe resources have fixed names ([`super::probe_name`], [`batch_names`]) and the ownership tag; they are deleted
//! when the probe ends, whatever the outcome, and [`sweep`] deletes what an earlier, killed run left (only if it
//! carries this stack's tag).

use std::time::{Duration, Instant};

use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures::future::LocalBoxFuture;

use super::{Check, Found, Row, Service, Status};
use crate::aws::{errors, Clients};
use crate::resources::plan::Kind;
use crate::resources::OWNER_TAG;
use crate::stack::Desired;

/// How often a refused probe asks again. AWS gives no signal of when a service can assume a new role
/// (boto/boto3#1466; IAM user guide, "changes that I make are not always immediately visible":
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency),
/// and the window is seconds, so a probe asks every 0.2 s at first, a quarter more each time up to 0.4 s for the
/// first [`Cadence::SHORT`] of probing (where the window ends while someone waits for it), then half more each time
/// up to 2 s (a service is not asked five times a second for minutes).
#[derive(Debug)]
struct Cadence {
    delay: Duration,
    began: Instant,
}

impl Cadence {
    const FIRST: Duration = Duration::from_millis(200);
    const SHORT: Duration = Duration::from_secs(20);
    const SHORT_CAP: Duration = Duration::from_millis(400);
    const LONG_CAP: Duration = Duration::from_secs(2);

    fn new() -> Cadence {
        Cadence { delay: Cadence::FIRST, began: Instant::now() }
    }

    /// The pause before the next attempt (and the one after it is longer).
    fn next(&mut self) -> Duration {
        let d = self.delay;
        let (factor, cap) = match self.began.elapsed() < Cadence::SHORT {
            true => (1.25, Cadence::SHORT_CAP),
            false => (1.5, Cadence::LONG_CAP),
        };
        self.delay = d.mul_f64(factor).min(cap.max(d));
        d
    }

    fn peek(&self) -> Duration {
        self.delay
    }
}

/// How many compute environments the Batch probe may have at once: an INVALID one never repairs itself and takes a
/// moment to create and to delete, so the probe tries the next one under another name while the last ones are
/// still CREATING or DELETING, at most this many (Batch allows 50 per region: AWS Batch service quotas; a create
/// refused while others are under way only stops the pool from growing). They are spread over the time one takes
/// from its create until it is gone, so that one was created shortly before any moment the role becomes usable.
const BATCH_POOL: usize = 6;

/// How long the Batch probe waits for an environment to leave CREATING, at least.
const CREATING_GRACE: Duration = Duration::from_secs(30);

/// The Pass state machine of the Step Functions probe.
const PASS_DEFINITION: &str =
    r#"{"Comment":"wfboot verify probe","StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#;

/// Where progress goes ("waiting for Lambda to accept the role ...", "Lambda accepts the role ...").
pub(crate) trait Progress {
    fn waiting(&self, what: &str);
    /// A service accepted a role, `after` the start of the run; `what` says which ("Lambda accepts the role R").
    fn accepted(&self, what: &str, after: Duration);
}

/// When a probe may begin, and whether it must stop.
pub(crate) trait Gate {
    /// Resolves once the resources a probe needs (by kind and name) were written and read back: `Err` with why
    /// when they will not be.
    fn ready<'a>(&'a self, needs: &'a [(Kind, String)]) -> LocalBoxFuture<'a, Result<(), String>>;
    /// The run stopped (a change failed, or Ctrl-C): why; a probe stops at its next attempt.
    fn stopped(&self) -> Option<String>;
}

/// `verify --live`: the roles are what they are; every probe begins at once.
pub(crate) struct Open;

impl Gate for Open {
    fn ready<'a>(&'a self, _: &'a [(Kind, String)]) -> LocalBoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn stopped(&self) -> Option<String> {
        None
    }
}

/// What the probes need for one stack.
pub(crate) struct Probes<'a> {
    pub(crate) clients: &'a Clients,
    pub(crate) desired: &'a Desired,
    /// The roles as IAM holds them (`verify`); `None` when this run has just written them (`bootstrap --wait`):
    /// their ARNs are then the stack's.
    pub(crate) found: Option<&'a [Option<Found>]>,
    pub(crate) timeout: Duration,
    pub(crate) progress: &'a dyn Progress,
    pub(crate) gate: &'a dyn Gate,
    /// The services to ask (empty: every one the stack's roles are for).
    pub(crate) only: &'a [Service],
    /// The start of the run, which the times are counted from.
    pub(crate) started: Instant,
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
        /// The instance profile (name, ARN) and the role it holds.
        profile: Option<(String, String, String)>,
        /// The Spot Fleet role (name, ARN).
        fleet_role: Option<(String, String)>,
    },
    #[cfg_attr(not(feature = "ec2"), allow(dead_code))]
    Ec2 {
        role: String,
        profile: String,
    },
}

impl Probe {
    fn service(&self) -> Service {
        match self {
            Probe::Lambda { .. } => Service::Lambda,
            Probe::StepFunctions { .. } => Service::States,
            Probe::Batch { .. } => Service::Batch,
            Probe::Ec2 { .. } => Service::Ec2,
        }
    }

    fn role(&self) -> &str {
        match self {
            Probe::Lambda { role, .. }
            | Probe::StepFunctions { role, .. }
            | Probe::Batch { role, .. }
            | Probe::Ec2 { role, .. } => role,
        }
    }

    /// What must be written and read back before the service is asked: the role, and what the probe passes with it.
    fn needs(&self) -> Vec<(Kind, String)> {
        let role = |name: &str| (Kind::Role, name.to_string());
        match self {
            Probe::Lambda { role: r, .. } | Probe::StepFunctions { role: r, .. } => vec![role(r)],
            Probe::Batch { role: r, profile, fleet_role, .. } => {
                let mut needs = vec![role(r)];
                if let Some((name, _, held)) = profile {
                    needs.extend([(Kind::InstanceProfile, name.clone()), role(held)]);
                }
                if let Some((fleet, _)) = fleet_role {
                    needs.push(role(fleet));
                }
                needs
            }
            Probe::Ec2 { role: r, profile } => vec![role(r), (Kind::InstanceProfile, profile.clone())],
        }
    }
}

/// One probe's outcome: its row, and when things happened.
#[derive(Debug, Clone)]
pub(crate) struct Probed {
    pub(crate) service: Service,
    pub(crate) role: String,
    pub(crate) row: Row,
    /// When its gate opened and it began asking.
    pub(crate) began: Option<Instant>,
    /// When the service accepted the role: the answer to the request it accepted.
    pub(crate) accepted: Option<Instant>,
    /// When the probe knew, if later (Batch: the environment created at `accepted` read VALID).
    pub(crate) confirmed: Option<Instant>,
    /// Requests that asked the service to take the role.
    pub(crate) attempts: usize,
    /// Other roles the probe passed the service, by the service they are for (Batch: the Spot Fleet role).
    pub(crate) with: Vec<(Service, String)>,
}

impl Probed {
    fn new(probe: &Probe, row: Row) -> Probed {
        Probed {
            service: probe.service(),
            role: probe.role().to_string(),
            row,
            began: None,
            accepted: None,
            confirmed: None,
            attempts: 0,
            with: Vec::new(),
        }
    }
}

/// A probe's bookkeeping while it asks: when it began, how often it asked, its cadence, its deadline.
struct Asking {
    began: Instant,
    deadline: Instant,
    cadence: Cadence,
    attempts: usize,
    told: bool,
}

impl Asking {
    fn new(timeout: Duration) -> Asking {
        let began = Instant::now();
        Asking { began, deadline: began + timeout, cadence: Cadence::new(), attempts: 0, told: false }
    }

    /// The next attempt would come after the deadline.
    fn out_of_time(&self) -> bool {
        Instant::now() + self.cadence.peek() > self.deadline
    }

    fn waited(&self) -> String {
        let s = self.began.elapsed().as_secs_f64();
        if s < 1.0 {
            String::new()
        } else {
            format!(" after {s:.1} s")
        }
    }

    fn done(&self, probe: &Probe, row: Row, accepted: Option<Instant>) -> Probed {
        Probed {
            began: Some(self.began),
            accepted,
            confirmed: accepted,
            attempts: self.attempts,
            ..Probed::new(probe, row)
        }
    }
}

impl Probes<'_> {
    /// Every probe at once, each from when its gate opens: their outcomes, and the rows of roles no probe covers
    /// (with the service they are about, when there is one).
    pub(crate) async fn run_each(&self) -> (Vec<Probed>, Vec<(Option<Service>, Row)>) {
        let (probes, rows) = self.plan();
        let probed = futures::future::join_all(probes.iter().map(|p| self.one(p))).await;
        (probed, rows)
    }

    /// What the probes need written and read back before they ask, by kind and name.
    pub(crate) fn needs(&self) -> Vec<(Kind, String)> {
        let mut needs: Vec<(Kind, String)> = self.plan().0.iter().flat_map(Probe::needs).collect();
        needs.sort();
        needs.dedup();
        needs
    }

    fn wanted(&self, service: Service) -> bool {
        self.only.is_empty() || self.only.contains(&service)
    }

    /// The probes the stack's roles call for (of the services asked for), and the rows of roles no probe covers.
    fn plan(&self) -> (Vec<Probe>, Vec<(Option<Service>, Row)>) {
        let d = self.desired;
        let t = &d.target;
        let arn_of = |name: &str| match self.found {
            Some(found) => d
                .roles
                .iter()
                .zip(found)
                .find(|(r, _)| r.name == name)
                .and_then(|(_, f)| f.as_ref().map(|f| f.arn.clone())),
            None => d
                .roles
                .iter()
                .find(|r| r.name == name)
                .map(|r| crate::arn::iam(&t.partition, &t.account_id, "role", &r.path, &r.name)),
        };
        let trusts = |r: &crate::stack::DesiredRole, s: Service| Service::of_trust(&r.trust).contains(&s);
        let fleet = d
            .roles
            .iter()
            .find(|r| trusts(r, Service::Spotfleet))
            .and_then(|r| Some((r.name.clone(), arn_of(&r.name)?)));
        let batch_profile = d.instance_profiles.first().map(|p| {
            (
                p.name.clone(),
                crate::arn::iam(&t.partition, &t.account_id, "instance-profile", &p.path, &p.name),
                p.role.clone(),
            )
        });
        let has_batch = d.roles.iter().any(|r| trusts(r, Service::Batch));
        let (mut probes, mut rows) = (Vec::new(), Vec::new());
        for role in &d.roles {
            let services = Service::of_trust(&role.trust);
            let asked: Vec<Service> = services
                .iter()
                .copied()
                // Spot Fleet has no probe of its own: the Batch probe covers its role.
                .filter(|s| self.wanted(*s) || (*s == Service::Batch && self.wanted(Service::Spotfleet)))
                .collect();
            if !self.only.is_empty() && asked.is_empty() {
                continue;
            }
            let Some(role_arn) = arn_of(&role.name) else {
                rows.push((
                    None,
                    row(&role.name, Status::Failed, "the role does not exist (run `wfboot bootstrap`)", "iam:GetRole"),
                ));
                continue;
            };
            let name = role.name.clone();
            for service in asked {
                match service {
                    Service::Lambda => probes.push(Probe::Lambda { role: name.clone(), role_arn: role_arn.clone() }),
                    Service::States => {
                        probes.push(Probe::StepFunctions { role: name.clone(), role_arn: role_arn.clone() })
                    }
                    Service::Batch => probes.push(Probe::Batch {
                        role: name.clone(),
                        role_arn: role_arn.clone(),
                        profile: batch_profile.clone(),
                        fleet_role: fleet.clone(),
                    }),
                    Service::Ec2 => match d.instance_profiles.iter().find(|p| p.role == role.name) {
                        Some(p) => probes.push(Probe::Ec2 { role: name.clone(), profile: p.name.clone() }),
                        None => rows.push((
                            Some(service),
                            row(
                                &name,
                                Status::Unverified,
                                "no instance profile of the stack holds it: EC2 has nothing to launch it with",
                                "none",
                            ),
                        )),
                    },
                    Service::Spotfleet => rows.push((Some(service), row(
                        &name,
                        Status::Unverified,
                        match has_batch {
                            true => {
                                "no probe of its own: Spot Fleet assumes it only when it requests capacity; the Batch \
                                 probe passes it as the compute environment's spotIamFleetRole"
                            }
                            false => "no probe of its own: Spot Fleet assumes it only when it requests capacity",
                        },
                        "none",
                    ))),
                }
            }
            if services.is_empty() && self.only.is_empty() {
                rows.push((None, row(&name, Status::Unverified, "no live probe for the services it trusts", "none")));
            }
        }
        (probes, rows)
    }

    /// One probe: its preparation (what it passes the service besides the role) while its gate is closed, then
    /// the asking.
    async fn one(&self, probe: &Probe) -> Probed {
        let method = match probe {
            Probe::Lambda { .. } => "Lambda CreateFunction",
            Probe::StepFunctions { .. } => "Step Functions CreateStateMachine",
            Probe::Batch { .. } => "Batch CreateComputeEnvironment",
            Probe::Ec2 { .. } => "EC2 RunInstances (dry run)",
        };
        let needs = probe.needs();
        let not_started =
            |why: String| Probed::new(probe, row(probe.role(), Status::Failed, format!("not asked: {why}"), method));
        match probe {
            Probe::Lambda { role, role_arn } => match self.gate.ready(&needs).await {
                Ok(()) => self.lambda(probe, role, role_arn).await,
                Err(why) => not_started(why),
            },
            Probe::StepFunctions { role, role_arn } => match self.gate.ready(&needs).await {
                Ok(()) => self.step_functions(probe, role, role_arn).await,
                Err(why) => not_started(why),
            },
            Probe::Batch { role, role_arn, profile, fleet_role } => {
                let network = async {
                    match profile {
                        Some(_) => Some(self.network().await),
                        None => None,
                    }
                };
                let (ready, network) = tokio::join!(self.gate.ready(&needs), network);
                if let Err(why) = ready {
                    return not_started(why);
                }
                let network = match network.transpose() {
                    Ok(n) => n,
                    Err(why) => return Probed::new(probe, row(role, Status::Unverified, why, method)),
                };
                let profile = profile.as_ref().map(|(_, arn, _)| arn.as_str());
                let fleet = fleet_role.as_ref().map(|(_, arn)| arn.as_str());
                let mut probed = self.batch(probe, role_arn, profile, fleet, network).await;
                if let Some((fleet, _)) = fleet_role {
                    probed.with.push((Service::Spotfleet, fleet.clone()));
                }
                probed
            }
            #[cfg(feature = "ec2")]
            Probe::Ec2 { role, profile } => {
                let (ready, image) = tokio::join!(self.gate.ready(&needs), self.image());
                if let Err(why) = ready {
                    return not_started(why);
                }
                match image {
                    Ok(image) => self.ec2(probe, role, profile, &image).await,
                    Err(why) => Probed::new(probe, row(role, Status::Unverified, why, method)),
                }
            }
            #[cfg(not(feature = "ec2"))]
            Probe::Ec2 { role, .. } => {
                Probed::new(probe, row(role, Status::Unverified, "built without the ec2 feature: no EC2 probe", "none"))
            }
        }
    }

    fn name(&self, role: &str) -> String {
        super::probe_name(&self.desired.stack, role)
    }

    fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    /// The run stopped: the probe's row says so.
    fn stopped(&self, probe: &Probe, asking: &Asking, method: &str) -> Option<Probed> {
        let why = self.gate.stopped()?;
        Some(asking.done(probe, row(probe.role(), Status::Failed, format!("stopped: {why}"), method), None))
    }

    /// Lambda CreateFunction with the role, then DeleteFunction.
    async fn lambda(&self, probe: &Probe, role: &str, role_arn: &str) -> Probed {
        let c = self.clients;
        let name = self.name(role);
        let method = "Lambda CreateFunction";
        let zip = super::zip::single_file("index.py", b"def handler(event, context):\n    return None\n");
        let mut asking = Asking::new(self.timeout);
        loop {
            if let Some(stopped) = self.stopped(probe, &asking, method) {
                return stopped;
            }
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
            asking.attempts += 1;
            match c.limit(create.send()).await {
                Ok(_) => {
                    let accepted = Instant::now();
                    self.progress.accepted(&format!("Lambda accepts the role {role}"), self.since_start(accepted));
                    let deleted = delete_function(c, &name).await;
                    let row = match deleted {
                        Ok(()) => row(role, Status::Ok, format!("Lambda accepted it{}", asking.waited()), method),
                        Err(e) => row(role, Status::Failed, format!("Lambda accepted it, but {e}"), method),
                    };
                    return asking.done(probe, row, Some(accepted));
                }
                // Lambda does not see the role yet (or cannot assume it): InvalidParameterValueException, "The role
                // defined for the function cannot be assumed by Lambda." The code covers every bad parameter, so the
                // message decides, as terraform-provider-aws internal/service/lambda/function.go (retryFunctionOp)
                // does; aws/aws-cli#7700.
                Err(e) if lambda_not_propagated(&e) => {
                    if asking.out_of_time() {
                        let detail = format!(
                            "Lambda refused it for {:.0} s: {}",
                            asking.began.elapsed().as_secs_f64(),
                            text(&e)
                        );
                        return asking.done(probe, row(role, Status::Failed, detail, method), None);
                    }
                    if !asking.told {
                        asking.told = true;
                        self.progress.waiting(&format!(
                            "waiting for Lambda to accept the role {role} (it cannot assume it yet)"
                        ));
                    }
                }
                // A function of that name already: an earlier probe's (the sweep removes tagged ones) or someone's.
                Err(e) if errors::code(&e) == Some("ResourceConflictException") => {
                    let detail =
                        format!("a function named {name} already exists and is not this stack's probe: {}", text(&e));
                    return asking.done(probe, row(role, Status::Unverified, detail, method), None);
                }
                Err(e) => {
                    let detail = format!("Lambda refused it: {}", text(&e));
                    return asking.done(probe, row(role, Status::Failed, detail, method), None);
                }
            }
            tokio::time::sleep(asking.cadence.next()).await;
        }
    }

    /// Step Functions CreateStateMachine with the role, then DeleteStateMachine.
    async fn step_functions(&self, probe: &Probe, role: &str, role_arn: &str) -> Probed {
        let c = self.clients;
        let name = self.name(role);
        let method = "Step Functions CreateStateMachine";
        let mut asking = Asking::new(self.timeout);
        loop {
            if let Some(stopped) = self.stopped(probe, &asking, method) {
                return stopped;
            }
            let create = c
                .sfn
                .create_state_machine()
                .name(&name)
                .definition(PASS_DEFINITION)
                .role_arn(role_arn)
                .tags(aws_sdk_sfn::types::Tag::builder().key(OWNER_TAG).value(&self.desired.stack).build());
            asking.attempts += 1;
            match c.limit(create.send()).await {
                Ok(out) => {
                    let accepted = Instant::now();
                    self.progress
                        .accepted(&format!("Step Functions accepts the role {role}"), self.since_start(accepted));
                    let arn = out.state_machine_arn;
                    let row = match c.limit(c.sfn.delete_state_machine().state_machine_arn(&arn).send()).await {
                        Ok(_) => row(role, Status::Ok, format!("Step Functions accepted it{}", asking.waited()), method),
                        Err(e) => row(
                            role,
                            Status::Failed,
                            format!(
                                "Step Functions accepted it, but the probe state machine {name} could not be deleted: {}",
                                text(&e)
                            ),
                            method,
                        ),
                    };
                    return asking.done(probe, row, Some(accepted));
                }
                // Not propagated yet: AccessDeniedException "Neither the global service principal
                // states.amazonaws.com, nor the regional one is authorized to assume the provided role."
                // (hashicorp/terraform-provider-aws#7893; internal/service/sfn/state_machine.go retries
                // CreateStateMachine on AccessDeniedException and StateMachineDeleting). AccessDeniedException alone
                // also means the caller lacks a permission, so the message decides. StateMachineDeleting: the
                // previous probe's machine is still going.
                Err(e) if sfn_not_propagated(&e) || errors::code(&e) == Some("StateMachineDeleting") => {
                    if asking.out_of_time() {
                        let detail = format!(
                            "Step Functions refused it for {:.0} s: {}",
                            asking.began.elapsed().as_secs_f64(),
                            text(&e)
                        );
                        return asking.done(probe, row(role, Status::Failed, detail, method), None);
                    }
                    if !asking.told {
                        asking.told = true;
                        self.progress.waiting(&format!("waiting for Step Functions to accept the role {role}"));
                    }
                }
                Err(e) => {
                    let detail = format!("Step Functions refused it: {}", text(&e));
                    return asking.done(probe, row(role, Status::Failed, detail, method), None);
                }
            }
            tokio::time::sleep(asking.cadence.next()).await;
        }
    }

    /// Batch CreateComputeEnvironment with the service role (and the instance profile and Spot Fleet role), waited
    /// out of CREATING; then deleted and waited until gone. Batch reports a service role it cannot assume only in
    /// the environment's status: INVALID with "CLIENT_ERROR - User: batch.amazonaws.com is not authorized to
    /// perform: sts:AssumeRole on resource: ..." (hashicorp/terraform-provider-aws#21281); an INVALID environment
    /// never repairs itself (Batch user guide, Troubleshooting, "INVALID compute environment"), so the probe
    /// deletes it and tries again, with the next of [`BATCH_POOL`] names while the last is still CREATING or
    /// DELETING, until one reads VALID or the timeout.
    async fn batch(
        &self,
        probe: &Probe,
        role_arn: &str,
        profile: Option<&str>,
        fleet_role: Option<&str>,
        network: Option<(String, String)>,
    ) -> Probed {
        use aws_sdk_batch::types::{CeState, CeStatus, CeType, ComputeResource, CrType};
        let c = self.clients;
        let role = probe.role();
        let method = "Batch CreateComputeEnvironment";
        let resources = match (profile, network) {
            (Some(profile), Some((subnet, group))) => Some(
                ComputeResource::builder()
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
                    .build(),
            ),
            _ => None,
        };
        let names = batch_names(&self.desired.stack, role);
        let mut asking = Asking::new(self.timeout);
        let mut pool = Pool::default();
        let mut last_created: Option<Instant> = None;
        // How long an environment took from its create until it was gone; how many may be under way.
        let mut cycle: Option<Duration> = None;
        let mut cap = names.len();
        let ended: std::result::Result<(Instant, Instant), String> = loop {
            if let Some(why) = self.gate.stopped() {
                break Err(format!("stopped: {why}"));
            }
            // Another environment while none is VALID yet, no faster than the cadence (nor than the pool spread over
            // a cycle), under a free name.
            let spacing = asking.cadence.peek().max(cycle.map_or(Duration::ZERO, |c| c / cap as u32));
            let due = last_created.is_none_or(|t| t.elapsed() >= spacing);
            let free = names.iter().take(cap).find(|n| !pool.holds(n)).cloned();
            if let (true, Some(name), false) = (due, free, Instant::now() > asking.deadline) {
                let create = c
                    .batch
                    .create_compute_environment()
                    .compute_environment_name(&name)
                    .r#type(if resources.is_some() { CeType::Managed } else { CeType::Unmanaged })
                    .state(CeState::Disabled)
                    .service_role(role_arn)
                    .set_compute_resources(resources.clone())
                    .tags(OWNER_TAG, &self.desired.stack);
                asking.attempts += 1;
                match c.limit(create.send()).await {
                    Ok(_) => {
                        let at = Instant::now();
                        last_created = Some(at);
                        pool.envs.push(Environment { name, created: at, state: EnvState::Creating });
                        if asking.attempts > 1 {
                            asking.cadence.next();
                        }
                    }
                    // Refused with others under way (a quota of environments, say): the pool stops growing.
                    Err(_) if pool.live() > 0 => cap = pool.live(),
                    Err(e) => break Err(format!("Batch refused it: {}", text(&e))),
                }
            }
            // One read of every environment in the pool.
            let listed = match pool.envs.is_empty() {
                true => Vec::new(),
                false => match describe_environments(c, &pool.names()).await {
                    Ok(l) => l,
                    Err(e) => break Err(e),
                },
            };
            let mut verdict = None;
            for env in pool.envs.iter_mut() {
                let now = listed.iter().find(|(n, ..)| *n == env.name);
                match (&env.state, now) {
                    (EnvState::Deleting, None) => {
                        env.state = EnvState::Gone;
                        cycle = Some(env.created.elapsed());
                    }
                    (EnvState::Creating, None) => {
                        verdict = Some(Err(format!("{} disappeared while CREATING", env.name)))
                    }
                    (EnvState::Creating, Some((_, status, ..))) if *status == CeStatus::Valid => {
                        let first = match &verdict {
                            Some(Ok((created, _))) => std::cmp::min(*created, env.created),
                            _ => env.created,
                        };
                        verdict = Some(Ok((first, Instant::now())));
                    }
                    (EnvState::Creating, Some((_, status, reason, _))) if *status != CeStatus::Creating => {
                        // statusReason is the only signal Batch gives (hashicorp/terraform-provider-aws#21281).
                        let cannot_assume = *status == CeStatus::Invalid
                            && reason.contains("is not authorized to perform: sts:AssumeRole");
                        if !cannot_assume && !matches!(verdict, Some(Ok(_))) {
                            verdict = Some(Err(format!(
                                "Batch: the compute environment went {}{}: {reason}",
                                status.as_str(),
                                asking.waited()
                            )));
                        }
                        env.state = EnvState::Invalid(status.as_str().to_string(), reason.clone());
                    }
                    _ => {}
                }
            }
            match verdict {
                Some(Ok(v)) => break Ok(v),
                Some(Err(why)) => break Err(why),
                None => {}
            }
            // The INVALID ones are deleted (and their names come free once they are gone).
            for env in pool.envs.iter_mut().filter(|e| matches!(e.state, EnvState::Invalid(..))) {
                if !asking.told {
                    asking.told = true;
                    self.progress.waiting(&format!("waiting for Batch to be able to assume the role {role}"));
                }
                let why = match &env.state {
                    EnvState::Invalid(status, reason) => (status.clone(), reason.clone()),
                    _ => Default::default(),
                };
                match c.limit(c.batch.delete_compute_environment().compute_environment(&env.name).send()).await {
                    Ok(_) => env.state = EnvState::Deleting,
                    Err(e) => {
                        pool.last_invalid = Some(why);
                        verdict = Some(Err(format!(
                            "the probe compute environment {} could not be deleted: {}",
                            env.name,
                            text(&e)
                        )));
                        break;
                    }
                }
                pool.last_invalid = Some(why);
            }
            if let Some(Err(why)) = verdict {
                break Err(why);
            }
            pool.envs.retain(|e| e.state != EnvState::Gone);
            // Out of time: what is still CREATING gets Batch's verdict (at least CREATING_GRACE after its create,
            // so that a short timeout still hears it); then the last refusal is the answer.
            let creating = pool.envs.iter().filter(|e| e.state == EnvState::Creating).map(|e| e.created).max();
            if Instant::now() > asking.deadline {
                match creating {
                    Some(created) if Instant::now() < asking.deadline.max(created + CREATING_GRACE) => {}
                    Some(_) => break Err("the probe compute environment was still CREATING at the timeout".into()),
                    None => {
                        break Err(match &pool.last_invalid {
                            Some((status, reason)) => {
                                format!("Batch: the compute environment went {status}{}: {reason}", asking.waited())
                            }
                            None => format!("Batch: no compute environment went VALID{}", asking.waited()),
                        })
                    }
                }
            }
            tokio::time::sleep(BATCH_POLL).await;
        };
        // Every environment of the pool deleted, whatever the outcome: the run waits until Batch has taken each
        // delete (the environment reads DELETING), not until it is gone. Batch finishes a delete by itself, with the
        // service role, which `destroy` leaves in place until every environment using it is gone
        // (`resources::consumers`); the next probe's sweep waits for a leftover of its own name.
        let gone = futures::future::join_all(
            pool.envs
                .iter()
                .filter(|e| e.state != EnvState::Gone)
                .map(|e| delete_environment(c, &e.name, asking.deadline + Duration::from_secs(60), Until::Deleting)),
        )
        .await;
        let gone: Result<(), String> = gone.into_iter().collect();
        match ended {
            Ok((accepted, confirmed)) => {
                self.progress.accepted(
                    &format!("Batch accepts the role {role} (a compute environment created then went VALID)"),
                    self.since_start(accepted),
                );
                let detail = with_cleanup(format!("Batch accepted it (VALID){}", asking.waited()), gone);
                let status = if detail.contains("; but ") { Status::Failed } else { Status::Ok };
                Probed {
                    confirmed: Some(confirmed),
                    ..asking.done(probe, row(role, status, detail, method), Some(accepted))
                }
            }
            Err(why) => {
                let detail = with_cleanup(why, gone);
                asking.done(probe, row(role, Status::Failed, detail, method), None)
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

    /// A real, region-local image for the EC2 dry run: Amazon Linux 2023's newest (a dry run checks the image too).
    #[cfg(feature = "ec2")]
    async fn image(&self) -> Result<String, String> {
        use aws_sdk_ec2::types::Filter;
        let c = self.clients;
        let images = c
            .limit(
                c.ec2
                    .describe_images()
                    .owners("amazon")
                    .filters(Filter::builder().name("name").values("al2023-ami-2023.*-x86_64").build())
                    .filters(Filter::builder().name("state").values("available").build())
                    .send(),
            )
            .await
            .map_err(|e| format!("cannot find an image for the dry run: {}", text(&e)))?;
        let mut all: Vec<_> = images
            .images()
            .iter()
            .filter_map(|i| Some((i.creation_date()?.to_string(), i.image_id()?.to_string())))
            .collect();
        all.sort();
        all.pop()
            .map(|(_, id)| id)
            .ok_or_else(|| "no Amazon Linux 2023 image found in the region for the dry run".into())
    }

    /// EC2 RunInstances with DryRun and the instance profile: DryRunOperation is the answer of a request that would
    /// have succeeded (EC2 API reference, RunInstances, DryRun).
    #[cfg(feature = "ec2")]
    async fn ec2(&self, probe: &Probe, role: &str, profile: &str, image: &str) -> Probed {
        use aws_sdk_ec2::types::{IamInstanceProfileSpecification, InstanceType};
        let c = self.clients;
        let method = "EC2 RunInstances (dry run)";
        let mut asking = Asking::new(self.timeout);
        // On AWS a profile that is missing and one EC2 does not see yet get the same answer, so IAM is asked first.
        let fail =
            |asking: &Asking, status, detail: String| asking.done(probe, row(role, status, detail, method), None);
        match c.limit(c.iam.get_instance_profile().instance_profile_name(profile).send()).await {
            Ok(out) if out.instance_profile.as_ref().is_some_and(|p| p.roles.iter().any(|r| r.role_name == role)) => {}
            Ok(_) => {
                let detail = format!("the instance profile {profile} does not hold the role (run `wfboot bootstrap`)");
                return fail(&asking, Status::Failed, detail);
            }
            Err(e) if errors::is_no_such_entity(&e) => {
                let detail = format!("the instance profile {profile} does not exist (run `wfboot bootstrap`)");
                return fail(&asking, Status::Failed, detail);
            }
            Err(e) => {
                let detail = format!("cannot read the instance profile {profile}: {}", text(&e));
                return fail(&asking, Status::Unverified, detail);
            }
        }
        loop {
            if let Some(stopped) = self.stopped(probe, &asking, method) {
                return stopped;
            }
            let run = c
                .ec2
                .run_instances()
                .image_id(image)
                .instance_type(InstanceType::T3Micro)
                .min_count(1)
                .max_count(1)
                .dry_run(true)
                .iam_instance_profile(IamInstanceProfileSpecification::builder().name(profile).build());
            asking.attempts += 1;
            match c.limit(run.send()).await {
                Ok(_) => {
                    return fail(
                        &asking,
                        Status::Failed,
                        "EC2 launched an instance although the request was a dry run".into(),
                    )
                }
                Err(e) if errors::code(&e) == Some("DryRunOperation") => {
                    let accepted = Instant::now();
                    self.progress.accepted(
                        &format!("EC2 accepts the instance profile {profile} (role {role})"),
                        self.since_start(accepted),
                    );
                    let detail = format!("EC2 accepts the instance profile {profile}{}", asking.waited());
                    return asking.done(probe, row(role, Status::Ok, detail, method), Some(accepted));
                }
                Err(e)
                    if errors::code_and_message(&e)
                        .is_some_and(|(code, m)| crate::resources::instance::not_propagated(code, m)) =>
                {
                    if asking.out_of_time() {
                        let detail = format!(
                            "EC2 refused the instance profile {profile} for {:.0} s: {}",
                            asking.began.elapsed().as_secs_f64(),
                            text(&e)
                        );
                        return fail(&asking, Status::Failed, detail);
                    }
                    if !asking.told {
                        asking.told = true;
                        self.progress.waiting(&format!("waiting for EC2 to accept the instance profile {profile}"));
                    }
                }
                Err(e) => return fail(&asking, Status::Failed, format!("EC2 refused the dry run: {}", text(&e))),
            }
            tokio::time::sleep(asking.cadence.next()).await;
        }
    }
}

/// The Batch probe's environments: each under one of the pool's names until it is gone.
#[derive(Debug, Default)]
struct Pool {
    envs: Vec<Environment>,
    /// The last environment Batch refused: its status and reason.
    last_invalid: Option<(String, String)>,
}

#[derive(Debug)]
struct Environment {
    name: String,
    /// When its create was answered.
    created: Instant,
    state: EnvState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EnvState {
    Creating,
    /// Not VALID (its status and Batch's reason): deleted next.
    Invalid(String, String),
    Deleting,
    Gone,
}

impl Pool {
    fn holds(&self, name: &str) -> bool {
        self.envs.iter().any(|e| e.name == name && e.state != EnvState::Gone)
    }

    /// Environments not gone yet.
    fn live(&self) -> usize {
        self.envs.iter().filter(|e| e.state != EnvState::Gone).count()
    }

    fn names(&self) -> Vec<String> {
        self.envs.iter().map(|e| e.name.clone()).collect()
    }
}

/// The names of the Batch probe's compute environments for `role`: [`super::probe_name`]'s, then the same with
/// `-2`, `-3`, ... (within Batch's 128 characters, and the 64 of the other probes' names).
pub(crate) fn batch_names(stack: &str, role: &str) -> Vec<String> {
    let first = super::probe_name(stack, role);
    let mut names = vec![first.clone()];
    for k in 2..=BATCH_POOL {
        let mut base = first.clone();
        base.truncate(61);
        names.push(format!("{base}-{k}"));
    }
    names
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

/// The name, status, statusReason and ownership tag of each of the compute environments `names` that exists.
async fn describe_environments(
    c: &Clients,
    names: &[String],
) -> Result<Vec<(String, aws_sdk_batch::types::CeStatus, String, Option<String>)>, String> {
    let out = c
        .limit(c.batch.describe_compute_environments().set_compute_environments(Some(names.to_vec())).send())
        .await
        .map_err(|e| format!("cannot read the probe compute environments {}: {}", names.join(", "), text(&e)))?;
    Ok(out
        .compute_environments()
        .iter()
        .filter_map(|e| {
            let name = e.compute_environment_name()?;
            names.iter().any(|n| n == name).then(|| {
                (
                    name.to_string(),
                    e.status().cloned().unwrap_or(aws_sdk_batch::types::CeStatus::Creating),
                    e.status_reason().unwrap_or_default().to_string(),
                    e.tags().and_then(|t| t.get(OWNER_TAG)).cloned(),
                )
            })
        })
        .collect())
}

/// How often a compute environment is read while it is CREATING or DELETING.
const BATCH_POLL: Duration = Duration::from_millis(200);

/// How far [`delete_environment`] follows a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Batch took the delete: the environment reads DELETING (or is gone).
    Deleting,
    /// The environment is gone, and its name free again.
    Gone,
}

/// Disable (Batch deletes only a DISABLED environment: API reference, DeleteComputeEnvironment) and delete the
/// compute environment `name`, once it has left CREATING (at most [`CREATING_GRACE`]); with [`Until::Gone`], then
/// wait until it is gone (DELETING first), until `deadline`.
async fn delete_environment(c: &Clients, name: &str, deadline: Instant, until: Until) -> Result<(), String> {
    use aws_sdk_batch::types::{CeState, CeStatus};
    let grace = Instant::now() + CREATING_GRACE;
    let env = loop {
        let out = c
            .limit(c.batch.describe_compute_environments().compute_environments(name).send())
            .await
            .map_err(|e| format!("cannot read the probe compute environment {name}: {}", text(&e)))?;
        let Some(env) = out.compute_environments().iter().find(|e| e.compute_environment_name() == Some(name)).cloned()
        else {
            return Ok(());
        };
        if env.status() != Some(&CeStatus::Creating) || Instant::now() > grace {
            break env;
        }
        tokio::time::sleep(BATCH_POLL).await;
    };
    if env.status() == Some(&CeStatus::Deleting) {
        return match until {
            Until::Deleting => Ok(()),
            Until::Gone => wait_gone(c, name, deadline).await,
        };
    }
    if env.state() == Some(&CeState::Enabled) {
        c.limit(c.batch.update_compute_environment().compute_environment(name).state(CeState::Disabled).send())
            .await
            .map_err(|e| format!("the probe compute environment {name} could not be disabled: {}", text(&e)))?;
    }
    c.limit(c.batch.delete_compute_environment().compute_environment(name).send())
        .await
        .map_err(|e| format!("the probe compute environment {name} could not be deleted: {}", text(&e)))?;
    match until {
        Until::Deleting => Ok(()),
        Until::Gone => wait_gone(c, name, deadline).await,
    }
}

async fn wait_gone(c: &Clients, name: &str, deadline: Instant) -> Result<(), String> {
    let names = [name.to_string()];
    loop {
        match describe_environments(c, &names).await?.first() {
            None => return Ok(()),
            Some(_) if Instant::now() > deadline => {
                return Err(format!("the probe compute environment {name} was still there at the timeout"))
            }
            Some(_) => tokio::time::sleep(BATCH_POLL).await,
        }
    }
}

/// Delete what earlier probes of this stack left (a run killed between a create and its delete): the fixed
/// probe names of every role, each only if it carries this stack's ownership tag, all looked for at once; only in
/// the services of `only` (empty: all, Spot Fleet meaning Batch). Returns what was deleted.
pub(crate) async fn sweep(clients: &Clients, desired: &Desired, only: &[Service]) -> Result<Vec<String>, String> {
    let c = clients;
    let stack = &desired.stack;
    let t = &desired.target;
    let asked = |s: &Service| {
        only.is_empty() || only.contains(s) || (*s == Service::Batch && only.contains(&Service::Spotfleet))
    };
    let per_role = desired.roles.iter().map(|role| async move {
        let name = super::probe_name(stack, &role.name);
        let services: Vec<Service> = Service::of_trust(&role.trust).into_iter().filter(asked).collect();
        let lambda = async {
            if !services.contains(&Service::Lambda) {
                return Ok(None);
            }
            match c.limit(c.lambda.get_function().function_name(&name).send()).await {
                Ok(out) if out.tags().and_then(|t| t.get(OWNER_TAG)) == Some(stack) => {
                    delete_function(c, &name).await?;
                    Ok(Some(format!("Lambda function {name}")))
                }
                Ok(_) => Ok(None),
                Err(e) if errors::code(&e) == Some("ResourceNotFoundException") => Ok(None),
                Err(e) => Err(format!("cannot look for a leftover probe function {name}: {}", text(&e))),
            }
        };
        let states = async {
            if !services.contains(&Service::States) {
                return Ok(None);
            }
            let arn = format!("arn:{}:states:{}:{}:stateMachine:{name}", t.partition, t.region, t.account_id);
            match c.limit(c.sfn.list_tags_for_resource().resource_arn(&arn).send()).await {
                Ok(out)
                    if out.tags().iter().any(|t| t.key() == Some(OWNER_TAG) && t.value() == Some(stack.as_str())) =>
                {
                    c.limit(c.sfn.delete_state_machine().state_machine_arn(&arn).send()).await.map_err(|e| {
                        format!("the leftover probe state machine {name} could not be deleted: {}", text(&e))
                    })?;
                    Ok(Some(format!("state machine {name}")))
                }
                Ok(_) => Ok(None),
                Err(e)
                    if matches!(
                        errors::code(&e),
                        Some("ResourceNotFound" | "StateMachineDoesNotExist" | "InvalidArn")
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(format!("cannot look for a leftover probe state machine {name}: {}", text(&e))),
            }
        };
        let batch = async {
            if !services.contains(&Service::Batch) {
                return Ok(Vec::new());
            }
            let listed = describe_environments(c, &batch_names(stack, &role.name)).await?;
            let ours = listed.into_iter().filter(|(_, _, _, tag)| tag.as_ref() == Some(stack));
            let deleted = futures::future::join_all(ours.map(|(name, ..)| async move {
                delete_environment(c, &name, Instant::now() + Duration::from_secs(120), Until::Gone).await?;
                Ok::<_, String>(format!("compute environment {name}"))
            }))
            .await;
            deleted.into_iter().collect::<Result<Vec<_>, String>>()
        };
        let (lambda, states, batch) = tokio::join!(lambda, states, batch);
        let mut swept: Vec<String> = lambda?.into_iter().chain(states?).collect();
        swept.extend(batch?);
        Ok::<_, String>(swept)
    });
    let all = futures::future::join_all(per_role).await;
    Ok(all.into_iter().collect::<Result<Vec<_>, String>>()?.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{batch_names, Cadence, BATCH_POOL};

    #[test]
    fn a_probe_asks_every_fifth_of_a_second_at_first_and_backs_off_to_four_tenths() {
        let mut c = Cadence::new();
        let delays: Vec<Duration> = (0..8).map(|_| c.next()).collect();
        assert_eq!(delays[0], Duration::from_millis(200));
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert_eq!(delays[7], Duration::from_millis(400), "{delays:?}");
    }

    #[test]
    fn the_batch_probes_names_are_distinct_the_first_is_the_fixed_probe_name_and_all_fit_64_characters() {
        let long = "a-very-long-role-name-that-goes-on-and-on-and-on-and-on-and-on";
        for role in ["AWSBatchServiceRole", long] {
            let names = batch_names("slim-workflow", role);
            assert_eq!(names.len(), BATCH_POOL);
            assert_eq!(names[0], super::super::probe_name("slim-workflow", role));
            assert!(names.iter().all(|n| n.len() <= 64), "{names:?}");
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{names:?}");
        }
    }
}
