//! `wfboot attach`: associate an instance profile with an instance, idempotently, after reading the instance's
//! metadata options (a disabled endpoint is refused, IMDSv1 warned about); with `--require-imdsv2`, first require
//! IMDSv2 once the instance's MetadataNoToken metric shows no IMDSv1 call (`resources::imds`). `wfboot instances`:
//! list the associations of the region, with each instance's metadata options.

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
use crate::resources::imds::{self, MetadataOptions};
use crate::resources::instance::{self, Association};
use crate::resources::permissions as perms;
use crate::stack::Stack;
use crate::stack::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Associated,
    Replaced,
    Unchanged,
    /// A dry run: the association would be made (or replaced).
    Planned,
    /// Not made: `--require-imdsv2` was held back, and the association with it.
    HeldBack,
}

/// What became of `--require-imdsv2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Imdsv2Outcome {
    /// Not asked for (no `--require-imdsv2`).
    NotAsked,
    /// The instance already required IMDSv2: nothing to do.
    AlreadyRequired,
    /// Required by this run (ModifyInstanceMetadataOptions), and applied.
    Required,
    /// A dry run: it would be required.
    Planned,
    /// Not done: the metric shows IMDSv1 calls, or could not be read (`--force` overrides).
    HeldBack,
}

#[derive(Debug, Serialize)]
struct Imdsv2 {
    outcome: Imdsv2Outcome,
    /// `--force` overrode a hold-back.
    forced: bool,
    /// The instance's MetadataNoToken metric, read before requiring IMDSv2.
    imdsv1_calls: Option<imds::NoTokenCalls>,
    /// Why the metric could not be read (its AWS error code), when it could not.
    metric_unread: Option<String>,
    /// How long EC2 took to show the change `applied`.
    applied_after_seconds: Option<f64>,
}

/// One write call of the run, in the order they are (or would be) made.
#[derive(Debug, Serialize)]
struct PlannedCall {
    call: &'static str,
    /// planned (a dry run), applied, or held_back.
    status: &'static str,
    what: String,
}

#[derive(Debug, Serialize)]
struct OptionsBeforeAfter {
    before: Option<MetadataOptions>,
    /// As read back at the end of the run (the same as `before` when nothing was changed).
    after: Option<MetadataOptions>,
}

#[derive(Debug, Serialize)]
struct AttachResult {
    instance_id: String,
    instance_profile: String,
    instance_profile_arn: String,
    /// Empty when no association was made (a dry run, or held back) and none existed.
    association_id: String,
    action: Action,
    replaced_profile_arn: Option<String>,
    /// Association calls sent again while EC2 did not know the profile yet.
    retries: usize,
    /// Time spent waiting for IAM and EC2 to show the profile.
    waited_seconds: f64,
    dry_run: bool,
    changes: Vec<PlannedCall>,
    metadata_options: OptionsBeforeAfter,
    imdsv2: Imdsv2,
    findings: Vec<imds::Finding>,
}

/// What the writes of a run would be, decided from the reads alone.
struct Plan {
    require_imdsv2: bool,
    /// The association to make: `None` when the profile is already there; `Some(None)` a new one; `Some(Some(a))`
    /// replacing `a`.
    associate: Option<Option<Association>>,
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

    // Everything is read and checked before the first write: the instance is alive and its metadata endpoint on,
    // the profile exists and holds a role, and, for --require-imdsv2, nothing on the instance still uses IMDSv1.
    // Three chains at once, two round trips: the instance then its metric (only when IMDSv2 is to be required), its
    // association, and the profile (waited for) then its role's policies (is it a container instance's?).
    let timeout = Duration::from_secs(args.propagation_timeout);
    let instance_and_metric = async {
        let described = instance::describe(&clients, instance_id).await?;
        if matches!(described.state.as_str(), "terminated" | "shutting-down") {
            return Err(Error::aws(format!("instance {instance_id} is {}", described.state))
                .with_help("attach the profile to a running or stopped instance"));
        }
        // Options EC2 does not show are taken as not requiring IMDSv2: the change is then made, the safe side.
        let requiring =
            args.require_imdsv2 && !described.options.as_ref().is_some_and(MetadataOptions::imdsv2_required);
        let metric = match requiring {
            true => Some(imds::imdsv1_calls(&clients, instance_id).await),
            false => None,
        };
        Ok((described, requiring, metric))
    };
    let profile_and_role = async {
        let (profile, waited) = read_profile(printer, &clients, &profile_name, timeout).await?;
        let role = profile.roles.first().map(|r| r.role_name.clone()).unwrap_or_default();
        Ok((profile, waited, imds::container_role(&clients, &role).await))
    };
    let ((described, requiring, metric), current, (profile, mut waited, containers)) =
        tokio::try_join!(instance_and_metric, instance::associations(&clients, Some(instance_id)), profile_and_role)?;
    let before = described.options.clone();
    let findings = match &before {
        Some(o) => imds::findings(instance_id, Some(&profile_name), o, containers.unwrap_or(false), requiring),
        None => Vec::new(),
    };
    if let Some(refusal) = findings.iter().find(|f| f.severity == imds::Severity::Refusal) {
        return Err(Error::aws(format!(
            "{}; the role would be unreachable, so the profile is not attached (nothing was changed)",
            refusal.message
        ))
        .with_help(format!("enable the endpoint ({}), then run again", refusal.fix)));
    }
    for f in &findings {
        printer.warn(&format!("{}\n  -> {}", f.message, f.fix));
    }

    let existing: Option<&Association> = current.first();
    let plan = Plan {
        require_imdsv2: requiring,
        associate: match existing {
            Some(a) if a.instance_profile_arn == profile.arn => None,
            other => Some(other.cloned()),
        },
    };
    let mut imdsv2 = Imdsv2 {
        outcome: match (args.require_imdsv2, requiring) {
            (false, _) => Imdsv2Outcome::NotAsked,
            (true, false) => Imdsv2Outcome::AlreadyRequired,
            (true, true) => Imdsv2Outcome::Planned,
        },
        forced: false,
        imdsv1_calls: None,
        metric_unread: None,
        applied_after_seconds: None,
    };
    // Why IMDSv2 is not required yet, if something on the instance may still need IMDSv1, and what to do.
    let mut hold: Option<String> = None;
    let mut hold_help = "find what still uses IMDSv1 (an old AWS SDK, CLI or agent: AWS's IMDS Packet Analyzer names \
                         it) and update it, then run again; --force requires IMDSv2 anyway";
    match metric {
        Some(Ok(calls)) => {
            if calls.calls > 0 {
                hold = Some(format!(
                    "{instance_id} made {} in the last {} days (CloudWatch AWS/EC2 MetadataNoToken, {} to {}): \
                     requiring IMDSv2 would break whatever made them",
                    calls.text(),
                    imds::METRIC_DAYS,
                    calls.from,
                    calls.to
                ));
            } else {
                printer
                    .info(&format!("MetadataNoToken: no IMDSv1 call from {instance_id} {}", metric_window(&described)));
            }
            imdsv2.imdsv1_calls = Some(calls);
        }
        Some(Err(imds::Unread(code))) => {
            hold = Some(format!(
                "the MetadataNoToken metric of {instance_id} could not be read ({code}), so whether anything on it \
                 still uses IMDSv1 is not known"
            ));
            imdsv2.metric_unread = Some(code);
            hold_help = "the caller needs cloudwatch:GetMetricStatistics (and CloudWatch must be reachable); then run \
                         again, or pass --force to require IMDSv2 without reading the metric";
        }
        None => {}
    }
    if let Some(why) = &hold {
        if args.force {
            printer.warn(&format!("{why}; requiring IMDSv2 anyway (--force)"));
            imdsv2.forced = true;
            hold = None;
        }
    }

    let mut changes = planned_calls(&plan, &profile_name, before.as_ref());
    let base = |association_id: String, action: Action, changes: Vec<PlannedCall>, imdsv2: Imdsv2| AttachResult {
        instance_id: instance_id.to_string(),
        instance_profile: profile_name.clone(),
        instance_profile_arn: profile.arn.clone(),
        association_id,
        action,
        replaced_profile_arn: None,
        retries: 0,
        waited_seconds: 0.0,
        dry_run: args.dry_run,
        changes,
        metadata_options: OptionsBeforeAfter { before: before.clone(), after: before.clone() },
        imdsv2,
        findings: findings.clone(),
    };
    let existing_id = existing.map(|a| a.association_id.clone()).unwrap_or_default();
    if let Some(why) = hold {
        for c in &mut changes {
            c.status = "held_back";
        }
        imdsv2.outcome = Imdsv2Outcome::HeldBack;
        let action = if plan.associate.is_some() { Action::HeldBack } else { Action::Unchanged };
        let result = base(existing_id, action, changes, imdsv2);
        if printer.json() {
            printer.result_document("attach", &result);
        } else {
            printer.result(&format!("Held back: {why}. Nothing was changed."));
        }
        printer.info(hold_help);
        return Ok(ExitStatus::ChangesPending);
    }
    if args.dry_run {
        let action = if plan.associate.is_some() { Action::Planned } else { Action::Unchanged };
        let result = base(existing_id, action, changes, imdsv2);
        if printer.json() {
            printer.result_document("attach", &result);
        } else {
            printer.result(&plan_text(instance_id, &result));
        }
        return Ok(ExitStatus::Success);
    }
    if plan.associate.is_some() || plan.require_imdsv2 {
        let replacing = matches!(plan.associate, Some(Some(_)));
        let roles: Vec<String> = profile.roles.iter().map(|r| r.arn.clone()).collect();
        preflight(printer, &clients, instance_id, &roles, plan.associate.is_some(), replacing, plan.require_imdsv2)
            .await?;
    }
    if let Some(Some(a)) = &plan.associate {
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
    }

    // IMDSv2 first, and applied, before the role's credentials reach the instance: they are never served to an
    // unauthenticated IMDSv1 request.
    let mut after = before.clone();
    if plan.require_imdsv2 {
        let answered = imds::require_imdsv2(&clients, instance_id).await?;
        if described.state == "running" {
            after = Some(wait_applied(printer, &clients, instance_id, &mut imdsv2).await?);
        } else {
            // "When you modify the parameters on a stopped instance, they are applied when the instance is started"
            // (ModifyInstanceMetadataOptions, EC2 API reference).
            printer.info(&format!("{instance_id} is {}: EC2 applies the new options when it starts", described.state));
            after = Some(answered);
        }
        imdsv2.outcome = Imdsv2Outcome::Required;
    } else if args.require_imdsv2
        && plan.associate.is_some()
        && described.state == "running"
        && before.as_ref().is_some_and(|o| o.state == "pending")
    {
        // Required by an earlier run whose wait ended early: still applied before the role is handed over.
        after = Some(wait_applied(printer, &clients, instance_id, &mut imdsv2).await?);
    }
    let waiting = |what: &str| printer.info(what);
    let mut retries = 0;
    let (association_id, action, replaced) = match &plan.associate {
        None => (existing_id, Action::Unchanged, None),
        Some(replace) => {
            let (id, tries, slept) = instance::associate(
                &clients,
                instance_id,
                &profile_name,
                replace.as_ref().map(|a| a.association_id.as_str()),
                timeout,
                &waiting,
            )
            .await?;
            (retries, waited) = (tries, waited + slept);
            match replace {
                Some(a) => (id, Action::Replaced, Some(a.instance_profile_arn.clone())),
                None => (id, Action::Associated, None),
            }
        }
    };
    if !matches!(action, Action::Unchanged) {
        let spinner = printer.spinner("waiting for the association");
        let waited = instance::wait_associated(&clients, instance_id, &association_id, Duration::from_secs(60)).await;
        spinner.finish_and_clear();
        waited?;
    }
    for c in &mut changes {
        c.status = "applied";
    }
    let mut result = base(association_id, action, changes, imdsv2);
    result.replaced_profile_arn = replaced;
    result.retries = retries;
    result.waited_seconds = crate::pipeline::report::seconds(waited);
    result.metadata_options.after = after;
    if printer.json() {
        printer.result_document("attach", &result);
    } else {
        printer.result(&result_text(instance_id, &result));
    }
    Ok(ExitStatus::Success)
}

/// "since it was launched (2026-12-06T23:41:04Z)" when it was last started within the metric's window, else "in the
/// last 14 days"; with the metric's own lag.
/// Wait (up to 60 s) until EC2 shows the instance's new metadata options applied; the report records after how long.
async fn wait_applied(
    printer: &Printer,
    clients: &Clients,
    instance_id: &str,
    imdsv2: &mut Imdsv2,
) -> Result<MetadataOptions> {
    let spinner = printer.spinner("waiting for EC2 to apply the metadata options");
    let applied = imds::wait_applied(clients, instance_id, Duration::from_secs(60)).await;
    spinner.finish_and_clear();
    let (options, took) = applied?;
    imdsv2.applied_after_seconds = Some(crate::pipeline::report::seconds(took));
    Ok(options)
}

fn metric_window(described: &instance::Described) -> String {
    let window_start = imds::timestamp(&aws_smithy_types::DateTime::from(
        std::time::SystemTime::now() - Duration::from_secs(imds::METRIC_DAYS * 86_400),
    ));
    // RFC 3339 stamps of one format compare as text.
    let window = match &described.launch_time {
        Some(launched) if launched.as_str() > window_start.as_str() => format!("since it was launched ({launched})"),
        _ => format!("in the last {} days", imds::METRIC_DAYS),
    };
    // Basic monitoring: EC2 sends the metric in 5-minute periods
    // (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/viewing_metrics_with_cloudwatch.html).
    format!("{window} (the metric comes in 5-minute periods: calls of the last minutes may not show yet)")
}

fn planned_calls(plan: &Plan, profile_name: &str, before: Option<&MetadataOptions>) -> Vec<PlannedCall> {
    let mut out = Vec::new();
    if plan.require_imdsv2 {
        let kept = before.map_or(String::new(), |o| {
            format!("; endpoint {} and hop limit {} kept", o.http_endpoint, o.http_put_response_hop_limit)
        });
        out.push(PlannedCall {
            call: "ModifyInstanceMetadataOptions",
            status: "planned",
            what: format!(
                "require IMDSv2: HttpTokens {} -> required{kept}",
                before.map_or("optional", |o| o.http_tokens.as_str())
            ),
        });
    }
    match &plan.associate {
        None => {}
        Some(None) => out.push(PlannedCall {
            call: "AssociateIamInstanceProfile",
            status: "planned",
            what: format!("associate instance profile {profile_name}"),
        }),
        Some(Some(a)) => out.push(PlannedCall {
            call: "ReplaceIamInstanceProfileAssociation",
            status: "planned",
            what: format!("replace {} with instance profile {profile_name}", a.instance_profile_arn),
        }),
    }
    out
}

fn options_line(instance_id: &str, options: Option<&MetadataOptions>) -> String {
    match options {
        Some(o) => format!("Metadata options of {instance_id}: {}.", o.summary()),
        None => format!("Metadata options of {instance_id}: not shown by EC2."),
    }
}

fn plan_text(instance_id: &str, r: &AttachResult) -> String {
    let mut out = format!("Plan for {instance_id} (dry run: nothing is changed):\n");
    if r.changes.is_empty() {
        out += "  nothing to do\n";
    }
    for c in &r.changes {
        let sign = if c.call == "AssociateIamInstanceProfile" { "+" } else { "~" };
        out += &format!("  {sign} {}: {}\n", c.call, c.what);
    }
    out += &options_line(instance_id, r.metadata_options.before.as_ref());
    out
}

fn result_text(instance_id: &str, r: &AttachResult) -> String {
    let profile = &r.instance_profile;
    let mut lines = Vec::new();
    match r.imdsv2.outcome {
        Imdsv2Outcome::Required => lines.push(format!(
            "Required IMDSv2 on {instance_id} (HttpTokens {} -> required{}){}.",
            r.metadata_options.before.as_ref().map_or("optional", |o| o.http_tokens.as_str()),
            r.imdsv2.applied_after_seconds.map_or(String::new(), |s| format!(", applied after {s:.1} s")),
            if r.imdsv2.forced {
                " although the metric showed IMDSv1 calls or could not be read (--force)"
            } else {
                ""
            }
        )),
        Imdsv2Outcome::AlreadyRequired => lines.push(format!("{instance_id} already requires IMDSv2.")),
        _ => {}
    }
    lines.push(match r.action {
        Action::Associated => {
            format!("Associated instance profile {profile} with {instance_id} ({}).", r.association_id)
        }
        Action::Replaced => {
            format!("Replaced the instance profile of {instance_id} with {profile} ({}).", r.association_id)
        }
        _ if r.imdsv2.outcome == Imdsv2Outcome::Required => {
            format!("{instance_id} already has instance profile {profile} ({}).", r.association_id)
        }
        _ => format!("{instance_id} already has instance profile {profile} ({}); nothing to do.", r.association_id),
    });
    lines.push(options_line(instance_id, r.metadata_options.after.as_ref()));
    lines.join("\n")
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

/// Before the first write, as bootstrap does: may the caller make the run's writes? Associating (or replacing) a
/// profile passes its role to the instance: "iam:PassRole ... with iam:PassedToService ec2.amazonaws.com"
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html); requiring IMDSv2 is
/// ec2:ModifyInstanceMetadataOptions on the instance.
/// A denied permission stops the command (exit 3) with nothing changed; an unverified one is said on stderr.
async fn preflight(
    printer: &Printer,
    clients: &Clients,
    instance_id: &str,
    roles: &[String],
    associating: bool,
    replacing: bool,
    requiring_imdsv2: bool,
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
    let instance_arn =
        format!("arn:{}:ec2:{}:{}:instance/{instance_id}", target.partition, target.region, target.account_id);
    let mut needed = Vec::new();
    let mut actions = Vec::new();
    if requiring_imdsv2 {
        needed.push(in_region(Permission::new("ec2:ModifyInstanceMetadataOptions", instance_arn.clone())));
        actions.push("ec2:ModifyInstanceMetadataOptions");
    }
    if associating {
        let action =
            if replacing { "ec2:ReplaceIamInstanceProfileAssociation" } else { "ec2:AssociateIamInstanceProfile" };
        needed.push(in_region(Permission::new(action, instance_arn)));
        actions.push(action);
        for role in roles {
            needed.push(in_region(Permission::new("iam:PassRole", role.clone()).with(ContextEntry {
                key: "iam:PassedToService".into(),
                values: vec![target.service_principal("ec2")],
                list: false,
            })));
        }
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
        let pass = if associating {
            format!(" and iam:PassRole on its role (with iam:PassedToService = {})", target.service_principal("ec2"))
        } else {
            String::new()
        };
        return Err(Error::new(
            ErrorKind::CheckFailed,
            format!("{} may not make the changes; nothing was changed:\n{}", caller.arn, denied.join("\n")),
        )
        .with_help(format!("grant {} on the instance{pass}, then run again", actions.join(" and "))));
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

/// One association of `instances`, with its instance's metadata options and what they mean.
#[derive(Debug, Serialize)]
struct Listed {
    #[serde(flatten)]
    association: Association,
    /// `None` when DescribeInstances did not show the instance.
    metadata_options: Option<MetadataOptions>,
    findings: Vec<imds::Finding>,
}

async fn list(printer: &Printer, aws: &AwsSettings) -> Result<ExitStatus> {
    let clients = Clients::connect(aws).await?;
    let all = instance::associations(&clients, None).await?;
    let ids: Vec<String> = all.iter().map(|a| a.instance_id.clone()).collect();
    // Each profile's role, read once: is it a container instance's (the hop-limit finding)? Left out when IAM
    // cannot be read.
    let mut profiles: Vec<String> = all.iter().map(|a| a.instance_profile_arn.clone()).collect();
    profiles.sort_unstable();
    profiles.dedup();
    let containers = futures::future::join_all(profiles.iter().map(|arn| {
        let clients = &clients;
        async move {
            let name = arn.rsplit('/').next().unwrap_or_default();
            let role = clients.limit(clients.iam.get_instance_profile().instance_profile_name(name).send()).await;
            let role = role.ok().and_then(|o| o.instance_profile).and_then(|p| p.roles.into_iter().next());
            match role {
                Some(r) => imds::container_role(clients, &r.role_name).await.unwrap_or(false),
                None => false,
            }
        }
    }));
    let (described, containers) = tokio::join!(
        async {
            match ids.is_empty() {
                true => Ok(Vec::new()),
                false => instance::describe_all(&clients, &ids).await,
            }
        },
        containers
    );
    let described = described?;
    let rows: Vec<Listed> = all
        .into_iter()
        .map(|a| {
            let options = described.iter().find(|d| d.instance_id == a.instance_id).and_then(|d| d.options.clone());
            let profile = a.instance_profile_arn.rsplit('/').next().unwrap_or_default().to_string();
            let container = profiles
                .iter()
                .position(|p| *p == a.instance_profile_arn)
                .and_then(|i| containers.get(i).copied())
                .unwrap_or(false);
            let findings = options
                .as_ref()
                .map(|o| imds::findings(&a.instance_id, Some(&profile), o, container, false))
                .unwrap_or_default();
            Listed { association: a, metadata_options: options, findings }
        })
        .collect();
    for f in rows.iter().flat_map(|r| &r.findings) {
        printer.warn(&format!("{}\n  -> {}", f.message, f.fix));
    }
    if printer.json() {
        printer.result_json(&rows);
    } else if rows.is_empty() {
        printer.result(&format!("No instance has an instance profile in {}.", clients.region));
    } else {
        let mut out = format!(
            "{:<20} {:<12} {:<28} {:<9} {:<8} {:<4} {}\n",
            "INSTANCE", "STATE", "ASSOCIATION", "TOKENS", "ENDPOINT", "HOPS", "INSTANCE PROFILE"
        );
        for r in &rows {
            let a = &r.association;
            let (tokens, endpoint, hops) = match &r.metadata_options {
                Some(o) => (o.http_tokens.clone(), o.http_endpoint.clone(), o.http_put_response_hop_limit.to_string()),
                None => ("-".into(), "-".into(), "-".into()),
            };
            out += &format!(
                "{:<20} {:<12} {:<28} {:<9} {:<8} {:<4} {}\n",
                a.instance_id, a.state, a.association_id, tokens, endpoint, hops, a.instance_profile_arn
            );
        }
        printer.result(&out);
    }
    Ok(ExitStatus::Success)
}
