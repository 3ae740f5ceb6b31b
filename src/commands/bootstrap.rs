//! `wfboot bootstrap`: plan, show, confirm, apply in dependency order, verify.
//!
//! Re-running on a bootstrapped account makes no write call. A run that stops anywhere is completed by the
//! next one, because every step starts from what the account is, not from what a previous run did.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::AwsSettings;
use crate::aws::CallStats;
use crate::cli::BootstrapArgs;
use crate::commands::report::{self, waits_text, Tally};
use crate::commands::{check, plural, watch_interrupt, ApplyProgress, EarlyChecks, ExitStatus, Session};
use crate::engine::apply::{self, AppliedChange, ApplyOptions, Outcome, Waits};
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::policy_eval::Verdict;
use crate::prompt;
use crate::resources::plan::Plan;
use crate::resources::plan::{PlannedChange, Status};
use crate::resources::{self, Observed};
use crate::review;
use crate::stack::{harden, Desired, Target};

/// At most this many apply rounds: the second repairs what a concurrent run raced us on, or drift that came
/// while this run applied; never what IAM does not show yet of what this run wrote (that is waited out).
const MAX_ROUNDS: usize = 2;

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) plan: Plan,
    applied: Vec<AppliedChange>,
    /// The account matches the stack after the run (held-back changes aside).
    verified: bool,
    /// What still differs after the run, if anything.
    remaining: Option<Plan>,
    pub(crate) summary: Summary,
    /// What `--harden` did to the trust documents; absent without `--harden`.
    #[serde(skip_serializing_if = "Option::is_none")]
    hardening: Option<Vec<harden::Note>>,
    /// `--wait`: when the services accepted the roles; absent without `--wait`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wait: Option<WaitReport>,
}

/// `--wait`: the live probes after applying (`wfboot verify --live`'s), until they passed.
#[derive(Debug, Serialize)]
pub(crate) struct WaitReport {
    /// Every probe passed (unverified ones aside) within --propagation-timeout.
    usable: bool,
    /// From the start of the run until the last probe passed; absent when one did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usable_after_seconds: Option<f64>,
    /// How long the probes took.
    probe_seconds: f64,
    probes: Vec<crate::verify::Row>,
}

/// `--wait`: the probes, their report, and the error when one did not pass.
pub(crate) async fn wait_usable(
    printer: &Printer,
    session: &Session,
    args: &BootstrapArgs,
    started: Instant,
) -> Result<(WaitReport, Option<Error>)> {
    let probing = Instant::now();
    let timeout = Duration::from_secs(args.propagation_timeout);
    let waited =
        crate::commands::verify::wait_usable(printer, &session.clients, &session.desired, timeout, started).await;
    let probe_seconds = report::seconds(probing.elapsed());
    Ok(match waited {
        Ok(rows) => (
            WaitReport {
                usable: true,
                usable_after_seconds: Some(report::seconds(started.elapsed())),
                probe_seconds,
                probes: rows,
            },
            None,
        ),
        Err(e) if e.kind == crate::error::ErrorKind::VerifyFailed => {
            (WaitReport { usable: false, usable_after_seconds: None, probe_seconds, probes: Vec::new() }, Some(e))
        }
        Err(e) => return Err(e),
    })
}

fn usable_line(w: &WaitReport) -> String {
    let probed = w.probes.iter().filter(|r| r.status == crate::verify::Status::Ok).count();
    match w.usable_after_seconds {
        Some(s) => format!(
            "Usable after {s:.1} s: {probed} live probe{} passed ({:.1} s of probing).",
            plural(probed),
            w.probe_seconds
        ),
        None => "Not usable yet: a live probe did not pass (see above).".into(),
    }
}

/// What a run did, counted from the outcomes of its changes (not from its plan).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    /// Resources this run created (their create call went through).
    created: usize,
    /// Resources this run changed, every planned change of theirs done.
    updated: usize,
    /// Resources that needed nothing, or whose every planned change someone else made meanwhile.
    unchanged: usize,
    /// Resources with a planned change that failed, was not attempted or was held back.
    incomplete: usize,
    #[serde(flatten)]
    pub(crate) tally: Tally,
}

/// What `bootstrap` knows before its first write: the plan and, when there are changes, the pre-flight.
pub(crate) struct Prepared {
    pub(crate) plan: Plan,
    pub(crate) preflight: Option<check::Preflight>,
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &BootstrapArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    let (session, observed, early) = Session::open_observing(printer, aws, &args.stack, true).await?;
    let Prepared { plan, preflight } = prepare(printer, &session, Some((observed, early))).await?;

    if !printer.json() {
        let mut out = plan.to_string();
        if let Some(notes) = &session.hardening {
            out += &format!("\n{}", harden::text(notes, session.desired.service_linked_roles.len()));
        }
        printer.result(&out);
        let findings = review::review(&session.desired, session.user.as_deref());
        if !findings.is_empty() {
            printer.info(&format!(
                "Review: {} broad grant{} in the stack (advice only); `wfboot plan` shows them with narrower policies",
                findings.len(),
                plural(findings.len())
            ));
        }
    }
    let Some(preflight) = preflight else {
        let mut report = finish_report(&session, plan, Vec::new(), None, &Waits::default(), started);
        let mut failed = None;
        if args.wait {
            let (w, e) = wait_usable(printer, &session, args, started).await?;
            report.wait = Some(w);
            failed = e;
        }
        if printer.json() {
            printer.result_document("bootstrap", &report);
        } else {
            printer.result(&format!(
                "Nothing to do: the account already matches stack {}. {} API calls, {} writes, {:.2} s.",
                session.desired.stack,
                report.summary.tally.api_calls,
                report.summary.tally.api_writes,
                report.summary.tally.wall_seconds
            ));
            if let Some(w) = &report.wait {
                printer.result(&usable_line(w));
            }
        }
        return match failed {
            Some(e) => Err(e),
            None => Ok(ExitStatus::Success),
        };
    };
    crate::commands::verify::refuse_locked_out(&session.desired)?;
    if preflight.failed() {
        return Err(preflight.error(&session.caller));
    }
    report_preflight(printer, &preflight, "");

    if !args.yes {
        let question = format!(
            "Apply {} change{} to account {}?",
            plan.summary.changes,
            plural(plan.summary.changes),
            plan.account_id
        );
        if !prompt::confirm(printer, &question, "--yes")? {
            printer.info("Nothing was changed.");
            return Ok(ExitStatus::ChangesPending);
        }
    }
    let consent = consent(printer, args, plan.summary.needing_consent)?;

    let interrupted = Arc::new(AtomicBool::new(false));
    let watcher = watch_interrupt(interrupted.clone());
    let opts = apply_options(&session, args, consent, &interrupted);
    let applied = apply_and_verify(printer, &session, &plan, &opts, "").await;
    watcher.abort();
    let (applied, remaining) = applied?;

    let mut report = finish_report(&session, plan, applied, remaining, &opts.waits, started);
    let interrupted = interrupted.load(Ordering::SeqCst);
    let mut failed = None;
    if args.wait && outcome(&report, interrupted).is_ok() {
        let (w, e) = wait_usable(printer, &session, args, started).await?;
        report.wait = Some(w);
        failed = e;
    }
    if printer.json() {
        printer.result_document("bootstrap", &report);
    } else {
        printer.result(&summary_line(&report.summary));
        if let Some(w) = &report.wait {
            printer.result(&usable_line(w));
        }
    }
    match failed {
        Some(e) => Err(e),
        None => outcome(&report, interrupted),
    }
}

/// Observe (unless `observed` already is, by `Session::open_observing`, with the checks it may have started
/// early), diff, check the managed policies and, when there are changes, the pre-flight. Read-only.
pub(crate) async fn prepare(
    printer: &Printer,
    session: &Session,
    observed: Option<(Observed, Option<EarlyChecks>)>,
) -> Result<Prepared> {
    let (observed, early) = match observed {
        Some(o) => o,
        None => {
            let spinner = printer.spinner("reading the account");
            let observed = resources::observe(&session.clients, &session.desired, session.user.as_deref(), false).await;
            spinner.finish_and_clear();
            (observed?, None)
        }
    };
    let (already_checked, early_permissions) = match early {
        Some(e) => {
            e.managed?;
            (e.managed_checked, Some((e.permissions, e.method)))
        }
        None => (BTreeSet::new(), None),
    };
    let plan = resources::diff(&session.desired, &observed, session.user.as_deref());

    // Before any write, at once: every managed policy exists, and the caller may make every change (a
    // permission the caller lacks stops the run here).
    let spinner = printer.spinner("checking policies and permissions");
    let managed = resources::managed_policy::check_managed_policies(
        &session.clients,
        &session.desired,
        &observed,
        &already_checked,
    );
    let preflight = async {
        match plan.has_changes() {
            true => check::preflight(
                &session.clients,
                &session.caller,
                &session.desired,
                &observed,
                &plan,
                early_permissions,
                &session.organisation,
            )
            .await
            .map(Some),
            false => Ok(None),
        }
    };
    let (managed, preflight) = tokio::join!(managed, preflight);
    spinner.finish_and_clear();
    managed?;
    Ok(Prepared { plan, preflight: preflight? })
}

/// What the pre-flight showed, once it let the run go on: how many permissions it verified and how, or a
/// warning with those it could not verify. `prefix` names the account in multi-account runs ("account
/// 111122223333: "), and is empty otherwise.
pub(crate) fn report_preflight(printer: &Printer, preflight: &check::Preflight, prefix: &str) {
    if let Some(line) = preflight.organisation.notice() {
        printer.info(&format!("{prefix}{line}"));
    }
    let unverified = preflight.permissions.iter().filter(|p| matches!(p.verdict, Verdict::Unverified { .. })).count();
    let total = preflight.permissions.len();
    if unverified > 0 {
        printer.warn(&format!(
            "{prefix}{unverified} of {total} permissions could not be verified ({}); continuing",
            preflight.method
        ));
    } else if total > 0 {
        printer.info(&format!(
            "{prefix}Pre-flight: the caller may make every call the plan needs: {total} permissions, {}",
            preflight.method
        ));
    }
}

/// May changes to resources wfboot did not create be made? `--adopt`, or the interactive answer.
pub(crate) fn consent(printer: &Printer, args: &BootstrapArgs, needing_consent: usize) -> Result<bool> {
    if needing_consent == 0 || args.adopt {
        Ok(true)
    } else if printer.interactive && !args.yes {
        let question = format!(
            "{} of these change{} modify resources wfboot did not create (marked \"needs consent\"). Change them too?",
            needing_consent,
            plural(needing_consent)
        );
        prompt::confirm(printer, &question, "--adopt")
    } else {
        printer.warn(&format!(
            "{} change{} to resources wfboot did not create will be held back; re-run with --adopt to make them",
            needing_consent,
            plural(needing_consent)
        ));
        Ok(false)
    }
}

/// How `bootstrap` applies (it never deletes, so no deletion wait).
pub(crate) fn apply_options(
    session: &Session,
    args: &BootstrapArgs,
    consent: bool,
    interrupted: &Arc<AtomicBool>,
) -> ApplyOptions {
    ApplyOptions {
        stack: session.desired.stack.clone(),
        consent,
        propagation_timeout: Duration::from_secs(args.propagation_timeout),
        deletion_timeout: Duration::ZERO,
        interrupted: interrupted.clone(),
        waits: Arc::new(Waits::default()),
    }
}

/// Apply `plan`, read back what it changed (waiting out IAM's read-after-write lag on what this run wrote), and
/// apply again once if what still differs is real: drift, or a concurrent run's doing. Returns what was applied
/// and what still differs.
pub(crate) async fn apply_and_verify(
    printer: &Printer,
    session: &Session,
    plan: &Plan,
    opts: &ApplyOptions,
    prefix: &str,
) -> Result<(Vec<AppliedChange>, Option<Plan>)> {
    let mut applied: Vec<AppliedChange> = Vec::new();
    let mut current = plan.clone();
    let mut remaining = None;
    for round in 1..=MAX_ROUNDS {
        let observer = ApplyProgress::new(printer, printer.bar(current.summary.changes as u64, "applying"), prefix);
        let results = apply::apply(&session.clients, &current, opts, &observer).await;
        observer.bar.finish_and_clear();
        let failed = results.iter().any(|r| matches!(r.outcome, Outcome::Failed { .. }));
        applied.extend(results);
        if failed || opts.interrupted.load(Ordering::SeqCst) {
            break;
        }
        // Verify: observe again what was to change, and nothing else.
        let part = resources::changed_part(&session.desired, &current);
        let after = read_back(printer, session, &part, &applied, opts, prefix).await?;
        let outstanding = after.changes().filter(|c| opts.consent || !c.needs_consent).count();
        remaining = after.has_changes().then(|| after.clone());
        if outstanding == 0 {
            break;
        }
        // What this run created and IAM still does not show is not created again: it is reported.
        let again = without_fresh_creates(&after, &applied);
        if !again.changes().any(|c| opts.consent || !c.needs_consent) {
            break;
        }
        if round < MAX_ROUNDS {
            printer.info(&format!(
                "{prefix}{} change(s) still differ after apply (another run at the same time?); applying again",
                again.summary.changes
            ));
        }
        current = again;
    }
    Ok((applied, remaining))
}

/// Observe `part` after applying and diff it. While the diff holds a write this run made (or a read answers
/// NoSuchEntity), IAM has not caught up with this run yet (read-after-write lag): read again, with backoff,
/// within `--propagation-timeout`, saying so once. IAM gives no signal of consistency, so reading is the only
/// way to know (IAM user guide, "changes that I make are not always immediately visible":
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency;
/// terraform-provider-aws internal/service/iam/role.go reads a new role with RetryWhenNewResourceNotFound).
async fn read_back(
    printer: &Printer,
    session: &Session,
    part: &Desired,
    applied: &[AppliedChange],
    opts: &ApplyOptions,
    prefix: &str,
) -> Result<Plan> {
    let user = session.user.as_deref().filter(|_| !part.user_policies.is_empty());
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut told = false;
    loop {
        let spinner = printer.spinner("verifying");
        let observed = resources::observe(&session.clients, part, user, true).await;
        spinner.finish_and_clear();
        let (unseen, result) = match observed {
            Ok(o) => {
                let after = resources::diff(part, &o, user);
                (written_not_seen(after.changes(), applied), Ok(after))
            }
            Err(e) if e.is_code("NoSuchEntity") => (1, Err(e)),
            Err(e) => return Err(e),
        };
        if unseen == 0 || start.elapsed() + delay >= opts.propagation_timeout {
            return result;
        }
        if !told {
            printer.info(&format!(
                "{prefix}waiting for IAM to show what this run wrote ({unseen} change{} not visible yet: \
                 read-after-write lag; up to {} s)",
                plural(unseen),
                opts.propagation_timeout.as_secs()
            ));
            told = true;
        }
        opts.waits.sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// How many of `changes` are writes this run made (done, or done by someone else): still to be seen.
pub(crate) fn written_not_seen<'a>(
    changes: impl Iterator<Item = &'a PlannedChange>,
    applied: &[AppliedChange],
) -> usize {
    let made = |c: &PlannedChange| {
        applied
            .iter()
            .any(|a| matches!(a.outcome, Outcome::Done | Outcome::AlreadyDone) && a.change.change.same_write(&c.change))
    };
    changes.filter(|c| made(c)).count()
}

/// `after` without the resources this run created (and IAM still does not show): a second round never
/// creates again what it has just created.
fn without_fresh_creates(after: &Plan, applied: &[AppliedChange]) -> Plan {
    let fresh = |r: &&crate::resources::plan::ResourcePlan| {
        r.verdict == Status::Create
            && r.changes.first().is_some_and(|c| written_not_seen(std::iter::once(c), applied) > 0)
    };
    let resources = after.resources.iter().filter(|r| !fresh(r)).cloned().collect();
    let target = Target {
        partition: after.partition.clone(),
        account_id: after.account_id.clone(),
        region: after.region.clone(),
    };
    Plan::new(&after.stack, &target, after.user.clone(), resources)
}

/// The one-line text summary of a run.
pub(crate) fn summary_line(s: &Summary) -> String {
    format!(
        "{} created, {} updated, {} unchanged{}; {} write{} done{}{}{}. {} API calls ({} writes), {:.2} s.",
        s.created,
        s.updated,
        s.unchanged,
        if s.incomplete > 0 { format!(", {} not completed", s.incomplete) } else { String::new() },
        s.tally.writes_done,
        plural(s.tally.writes_done),
        if s.tally.already_done > 0 {
            format!(", {} already done by someone else", s.tally.already_done)
        } else {
            String::new()
        },
        if s.tally.held() > 0 { format!(", {} held back (--adopt)", s.tally.held()) } else { String::new() },
        waits_text(s.tally.retries, s.tally.waited_seconds),
        s.tally.api_calls,
        s.tally.api_writes,
        s.tally.wall_seconds
    )
}

/// How a run that applied ended: interrupted, failed changes, still differing, held back, or success.
pub(crate) fn outcome(report: &Report, interrupted: bool) -> Result<ExitStatus> {
    let s = &report.summary;
    if interrupted {
        return Err(report::interrupted(s.tally.writes_done, report.plan.summary.changes, "complete the rest"));
    }
    if s.tally.failed > 0 {
        let first = report.applied.iter().find_map(|a| match &a.outcome {
            Outcome::Failed { error } => Some(error.clone()),
            _ => None,
        });
        let mut err = Error::aws(format!(
            "{} change{} failed ({} not attempted); first failure: {}",
            s.tally.failed,
            plural(s.tally.failed),
            s.tally.skipped,
            first.unwrap_or_default()
        ));
        err.help = Some("fix the cause and run again: completed changes are not repeated".into());
        return Err(err);
    }
    let unseen: Vec<String> = report
        .remaining
        .iter()
        .flat_map(|r| r.resources.iter())
        .filter(|r| r.verdict == Status::Create && written_not_seen(r.changes.iter(), &report.applied) > 0)
        .map(|r| format!("{} {}", r.kind, r.name))
        .collect();
    if !unseen.is_empty() {
        return Err(Error::aws(format!(
            "IAM still does not show what this run created: {} (after waiting {:.0} s in all)",
            unseen.join(", "),
            s.tally.waited_seconds
        ))
        .with_help(
            "IAM can be slow to show new entities (read-after-write lag), or something deleted them meanwhile: \
             check in a minute with `wfboot plan`, and raise --propagation-timeout if it happens again",
        ));
    }
    if !report.verified {
        return Err(Error::aws("the account still differs from the stack after applying (see `wfboot plan`)")
            .with_help(
                "something else may be changing these resources; run again, or `wfboot plan` to see what differs",
            ));
    }
    if s.tally.held() > 0 {
        return Ok(ExitStatus::ChangesPending);
    }
    Ok(ExitStatus::Success)
}

pub(crate) fn finish_report(
    session: &Session,
    plan: Plan,
    applied: Vec<AppliedChange>,
    remaining: Option<Plan>,
    waits: &Waits,
    started: Instant,
) -> Report {
    let summary = summarize(&plan, &applied, &session.clients.calls.snapshot(), waits, started);
    let verified = summary.tally.failed == 0
        && summary.tally.skipped == 0
        && remaining.as_ref().is_none_or(|r| r.changes().all(|c| c.needs_consent && summary.tally.held() > 0));
    Report { plan, applied, verified, remaining, summary, hardening: session.hardening.clone(), wait: None }
}

/// The run's summary: every count from what happened to each change.
fn summarize(plan: &Plan, applied: &[AppliedChange], calls: &CallStats, waits: &Waits, started: Instant) -> Summary {
    // The last outcome of each planned change (a second round may have applied it again).
    let outcome_of = |c: &PlannedChange| applied.iter().rev().find(|a| a.change.change == c.change).map(|a| &a.outcome);
    let mut summary = Summary::default();
    for r in &plan.resources {
        let outcomes: Vec<Option<&Outcome>> = r.changes.iter().map(outcome_of).collect();
        let completed = outcomes.iter().all(|o| matches!(o, Some(Outcome::Done | Outcome::AlreadyDone)));
        if r.verdict == Status::Unchanged {
            summary.unchanged += 1;
        } else if !completed {
            summary.incomplete += 1;
        } else if r.verdict == Status::Create && matches!(outcomes.first(), Some(Some(Outcome::Done))) {
            summary.created += 1;
        } else if outcomes.iter().any(|o| matches!(o, Some(Outcome::Done))) {
            summary.updated += 1;
        } else {
            summary.unchanged += 1;
        }
    }
    Summary { tally: Tally::of(applied, calls, waits, started, true), ..summary }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::plan::{Kind, ResourcePlan};
    use crate::resources::Ownership;
    use crate::resources::{role, Change};

    fn target() -> Target {
        Target { partition: "aws".into(), account_id: "111122223333".into(), region: "us-east-1".into() }
    }

    fn create(name: &str) -> Change {
        Change::from(role::Change::CreateRole {
            name: name.into(),
            path: "/".into(),
            description: String::new(),
            trust: json!({}),
            permissions_boundary: None,
            tags: Default::default(),
        })
    }

    fn attach(role: &str) -> Change {
        Change::from(role::Change::AttachRolePolicy {
            role: role.into(),
            policy_arn: "arn:aws:iam::aws:policy/A".into(),
        })
    }

    fn plan() -> Plan {
        let role = |name: &str| {
            ResourcePlan::new(Kind::Role, name, Ownership::Absent, vec![create(name), attach(name)], vec![])
        };
        let unchanged = ResourcePlan::new(Kind::Role, "C", Ownership::Stack, Vec::<Change>::new(), vec![]);
        Plan::new("s", &target(), None, vec![role("A"), role("B"), unchanged])
    }

    fn applied(change: Change, outcome: Outcome) -> AppliedChange {
        AppliedChange {
            change: PlannedChange { change, needs_consent: false },
            outcome,
            retries: 0,
            waited_seconds: 0.0,
        }
    }

    #[test]
    fn the_summary_counts_what_happened_not_what_was_planned() {
        let done = vec![
            applied(create("A"), Outcome::Done),
            applied(attach("A"), Outcome::Done),
            applied(create("B"), Outcome::Failed { error: "AccessDenied".into() }),
            applied(attach("B"), Outcome::Skipped { reason: "a change it depends on did not complete".into() }),
        ];
        let s = summarize(&plan(), &done, &CallStats::default(), &Waits::default(), Instant::now());
        assert_eq!((s.created, s.updated, s.unchanged, s.incomplete), (1, 0, 1, 1), "{s:?}");
        assert_eq!((s.tally.writes_done, s.tally.failed, s.tally.skipped), (2, 1, 1));
        let line = summary_line(&s);
        assert!(line.starts_with("1 created, 0 updated, 1 unchanged, 1 not completed; 2 writes done"), "{line}");
    }

    #[test]
    fn a_second_round_never_creates_again_what_this_run_has_just_created() {
        // Read back, A still reads as missing (IAM lags) and B was never applied (say, drift after the plan).
        let done = vec![applied(create("A"), Outcome::Done), applied(attach("A"), Outcome::Done)];
        let again = without_fresh_creates(&plan(), &done);
        let names: Vec<&str> = again.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["B", "C"]);
        assert_eq!(again.summary.changes, 2);
        assert_eq!(written_not_seen(plan().changes(), &done), 2);
    }
}
