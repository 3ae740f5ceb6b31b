//! `wfboot attach`: associate an instance profile with an instance, idempotently; `wfboot instances`: list
//! the associations of the region.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::{errors, AwsSettings, Clients};
use crate::cli::{AttachArgs, InstancesArgs};
use crate::commands::ExitStatus;
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;
use crate::policy_eval::Verdict;
use crate::prompt;
use crate::resources::access::{ContextEntry, Permission};
use crate::resources::caller;
use crate::resources::instance::{self, Association};
use crate::resources::permissions as perms;
use crate::stack::Stack;
use crate::stack::Target;

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Associated,
    Replaced,
    Unchanged,
}

#[derive(Debug, Serialize)]
struct AttachResult {
    instance_id: String,
    instance_profile: String,
    instance_profile_arn: String,
    association_id: String,
    action: Action,
    replaced_profile_arn: Option<String>,
    /// Association calls sent again while EC2 did not know the profile yet.
    retries: usize,
    /// Time spent waiting for IAM and EC2 to show the profile.
    waited_seconds: f64,
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &AttachArgs) -> Result<ExitStatus> {
    if args.list {
        return list(printer, aws).await;
    }
    let Some(instance_id) = args.instance_id.as_deref() else {
        return Err(Error::usage("--instance-id is required (or --list)")
            .with_help("wfboot attach --instance-id i-0123456789abcdef0 --instance-profile NAME"));
    };
    if !instance::valid_instance_id(instance_id) {
        return Err(Error::usage(format!("`{instance_id}` is not an EC2 instance id"))
            .with_help("instance ids look like i-0123456789abcdef0"));
    }
    let profile_name = profile_name(args)?;
    let clients = Clients::connect(aws).await?;

    // Everything is checked before the one write: the profile exists and holds a role, the instance is alive.
    let timeout = Duration::from_secs(args.propagation_timeout);
    let (profile, mut waited) = read_profile(printer, &clients, &profile_name, timeout).await?;
    let state = instance::state(&clients, instance_id).await?;
    if matches!(state.as_str(), "terminated" | "shutting-down") {
        return Err(Error::aws(format!("instance {instance_id} is {state}"))
            .with_help("attach the profile to a running or stopped instance"));
    }
    let current = instance::associations(&clients, Some(instance_id)).await?;
    let existing: Option<&Association> = current.first();
    let replacing = existing.is_some_and(|a| a.instance_profile_arn != profile.arn);
    if existing.is_none() || replacing {
        let roles: Vec<String> = profile.roles.iter().map(|r| r.arn.clone()).collect();
        preflight(printer, &clients, instance_id, &roles, replacing).await?;
    }
    let waiting = |what: &str| printer.info(what);
    let mut retries = 0;
    let (association_id, action, replaced) = match existing {
        Some(a) if a.instance_profile_arn == profile.arn => (a.association_id.clone(), Action::Unchanged, None),
        Some(a) => {
            printer.info(&format!(
                "{instance_id} has {} (association {}, {})",
                a.instance_profile_arn, a.association_id, a.state
            ));
            if !args.yes {
                let question = format!("Replace it with `{profile_name}`?");
                if !prompt::confirm(printer, &question, "--yes")? {
                    printer.info("Nothing was changed.");
                    return Ok(ExitStatus::ChangesPending);
                }
            }
            let (id, tries, slept) =
                instance::associate(&clients, instance_id, &profile_name, Some(&a.association_id), timeout, &waiting)
                    .await?;
            (retries, waited) = (tries, waited + slept);
            (id, Action::Replaced, Some(a.instance_profile_arn.clone()))
        }
        None => {
            let (id, tries, slept) =
                instance::associate(&clients, instance_id, &profile_name, None, timeout, &waiting).await?;
            (retries, waited) = (tries, waited + slept);
            (id, Action::Associated, None)
        }
    };
    if !matches!(action, Action::Unchanged) {
        let spinner = printer.spinner("waiting for the association");
        let waited = instance::wait_associated(&clients, instance_id, &association_id, Duration::from_secs(60)).await;
        spinner.finish_and_clear();
        waited?;
    }
    let result = AttachResult {
        instance_id: instance_id.to_string(),
        instance_profile: profile_name.clone(),
        instance_profile_arn: profile.arn.clone(),
        association_id,
        action,
        replaced_profile_arn: replaced,
        retries,
        waited_seconds: crate::pipeline::report::seconds(waited),
    };
    if printer.json() {
        printer.result_document("attach", &result);
    } else {
        printer.result(&match result.action {
            Action::Unchanged => format!(
                "{instance_id} already has instance profile {profile_name} ({}); nothing to do.",
                result.association_id
            ),
            Action::Associated => {
                format!("Associated instance profile {profile_name} with {instance_id} ({}).", result.association_id)
            }
            Action::Replaced => format!(
                "Replaced the instance profile of {instance_id} with {profile_name} ({}).",
                result.association_id
            ),
        });
    }
    Ok(ExitStatus::Success)
}

/// The instance profile, which must exist and hold a role. Right after `bootstrap` made it, IAM may still
/// answer NoSuchEntity, or show it without its role (read-after-write lag: IAM user guide, "changes that I make
/// are not always immediately visible",
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency):
/// that is waited out with backoff, within `timeout`, saying so; then it is the error it is.
async fn read_profile(
    printer: &Printer,
    clients: &Clients,
    name: &str,
    timeout: Duration,
) -> Result<(aws_sdk_iam::types::InstanceProfile, Duration)> {
    let start = Instant::now();
    let mut waited = Duration::ZERO;
    let mut delay = Duration::from_millis(250);
    let mut told = false;
    loop {
        let read = clients.limit(clients.iam.get_instance_profile().instance_profile_name(name).send()).await;
        let why = match read {
            Ok(out) => {
                let profile = out
                    .instance_profile
                    .ok_or_else(|| Error::aws("iam:GetInstanceProfile answered without the profile"))?;
                if !profile.roles.is_empty() {
                    return Ok((profile, waited));
                }
                "holds no role"
            }
            Err(e) if errors::is_no_such_entity(&e) => "is not found",
            Err(e) => return Err(errors::describe(&format!("read instance profile `{name}`"), &e)),
        };
        if start.elapsed() + delay >= timeout {
            let waited = if start.elapsed() >= Duration::from_secs(1) {
                format!(" (after waiting {} s)", start.elapsed().as_secs())
            } else {
                String::new()
            };
            return Err(if why == "is not found" {
                Error::aws(format!("instance profile `{name}` does not exist{waited}"))
                    .with_help("create it with `wfboot bootstrap` (the default stack makes SLIM-Extras_ECS_for_EC2)")
            } else {
                Error::aws(format!(
                    "instance profile `{name}` holds no role{waited}, so it would give the instance no credentials"
                ))
                .with_help("run `wfboot bootstrap` to put the stack's role into it")
            });
        }
        if !told {
            printer.info(&format!(
                "instance profile `{name}` {why}: waiting in case it was made moments ago (IAM reads lag behind \
                 writes; up to {} s, --propagation-timeout)",
                timeout.as_secs()
            ));
            told = true;
        }
        let pause = crate::engine::apply::jittered(delay);
        tokio::time::sleep(pause).await;
        waited += pause;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Before the one write, as bootstrap does: may the caller associate (or replace) the profile and pass its role to
/// EC2? Associating a profile passes its role to the instance: "iam:PassRole ... with iam:PassedToService
/// ec2.amazonaws.com" (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html).
/// A denied permission stops the command (exit 3) with nothing changed; an unverified one is said on stderr.
async fn preflight(
    printer: &Printer,
    clients: &Clients,
    instance_id: &str,
    roles: &[String],
    replacing: bool,
) -> Result<()> {
    let caller = caller::identify(clients).await?;
    let target = Target {
        partition: caller.partition.clone(),
        account_id: caller.account_id.clone(),
        region: clients.region.clone(),
    };
    let in_region = |p: Permission| {
        p.with(ContextEntry { key: "aws:RequestedRegion".into(), values: vec![clients.region.clone()], list: false })
    };
    let action = if replacing { "ec2:ReplaceIamInstanceProfileAssociation" } else { "ec2:AssociateIamInstanceProfile" };
    let instance_arn =
        format!("arn:{}:ec2:{}:{}:instance/{instance_id}", target.partition, target.region, target.account_id);
    let mut needed = vec![in_region(Permission::new(action, instance_arn))];
    for role in roles {
        needed.push(in_region(Permission::new("iam:PassRole", role.clone()).with(ContextEntry {
            key: "iam:PassedToService".into(),
            values: vec![target.service_principal("ec2")],
            list: false,
        })));
    }
    let (checks, method) = perms::check(clients, &caller, &needed).await;
    printer.detail(&format!("permissions: {method}"));
    let denied: Vec<String> = checks
        .iter()
        .filter_map(|c| match c.verdict {
            Verdict::Denied { explicit } => Some(format!(
                "  - {} on {}{}: {}",
                c.action,
                c.resource,
                c.permission().context_note(),
                if explicit { "explicitly denied" } else { "not allowed by any policy" }
            )),
            _ => None,
        })
        .collect();
    if !denied.is_empty() {
        return Err(Error::new(
            ErrorKind::CheckFailed,
            format!("{} may not attach the instance profile; nothing was changed:\n{}", caller.arn, denied.join("\n")),
        )
        .with_help(format!(
            "grant {action} on the instance and iam:PassRole on its role (with iam:PassedToService = {}), then run again",
            target.service_principal("ec2")
        )));
    }
    for c in checks.iter().filter(|c| matches!(c.verdict, Verdict::Unverified { .. })) {
        if let Verdict::Unverified { reason } = &c.verdict {
            printer.warn(&format!("{} on {} could not be verified ({reason}); trying anyway", c.action, c.resource));
        }
    }
    Ok(())
}

fn profile_name(args: &AttachArgs) -> Result<String> {
    match (&args.instance_profile, &args.role) {
        (Some(name), _) => Ok(name.clone()),
        (None, Some(role)) => {
            let stack = Stack::resolve(args.stack.as_deref())?;
            stack.instance_profiles.iter().find(|p| &p.role == role).map(|p| p.name.clone()).ok_or_else(|| {
                Error::usage(format!("stack `{}` has no instance profile for role `{role}`", stack.name)).with_help(
                    "see `wfboot stacks show` for the stack's instance profiles, or pass --instance-profile NAME",
                )
            })
        }
        (None, None) => {
            Err(Error::usage("which instance profile? pass --instance-profile NAME, or --role ROLE (with --stack)"))
        }
    }
}

pub(crate) async fn instances(printer: &Printer, aws: &AwsSettings, _args: &InstancesArgs) -> Result<ExitStatus> {
    list(printer, aws).await
}

async fn list(printer: &Printer, aws: &AwsSettings) -> Result<ExitStatus> {
    let clients = Clients::connect(aws).await?;
    let all = instance::associations(&clients, None).await?;
    if printer.json() {
        printer.result_json(&all);
    } else if all.is_empty() {
        printer.result(&format!("No instance has an instance profile in {}.", clients.region));
    } else {
        let mut out = String::new();
        for a in &all {
            out +=
                &format!("{:<20} {:<12} {:<28} {}\n", a.instance_id, a.state, a.association_id, a.instance_profile_arn);
        }
        printer.result(&out);
    }
    Ok(ExitStatus::Success)
}
