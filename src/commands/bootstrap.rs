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
use crate::cli::BootstrapArgs;
use crate::commands::{check, plural, watch_interrupt, ApplyProgress, EarlyChecks, ExitStatus, Session};
use crate::engine::apply::{self, AppliedChange, ApplyOptions, Outcome};
use crate::engine::plan::Status;
use crate::engine::{self, Observed, Plan};
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;
use crate::policy_eval::Verdict;
use crate::prompt;
use crate::review;
use crate::stack::harden;

/// At most this many apply rounds: the second repairs what a concurrent run raced us on.
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
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    created: usize,
    updated: usize,
    unchanged: usize,
    pub(crate) writes_done: usize,
    already_done: usize,
    held: usize,
    failed: usize,
    skipped: usize,
    api_calls: usize,
    api_writes: usize,
    http_attempts: usize,
    wall_seconds: f64,
}

/// What `bootstrap` knows before its first write: the plan and, when there are changes, the pre-flight.
pub(crate) struct Prepared {
    pub(crate) plan: Plan,
    pub(crate) preflight: Option<check::Preflight>,
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &BootstrapArgs) -> Result<ExitStatus> {
    if args.accounts.accounts.is_some() {
        return crate::commands::accounts::bootstrap(printer, aws, args).await;
    }
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
        let report = finish_report(&session, plan, Vec::new(), None, started);
        if printer.json() {
            printer.result_document("bootstrap", &report);
        } else {
            printer.result(&format!(
                "Nothing to do: the account already matches stack {}. {} API calls, {} writes, {:.2} s.",
                session.desired.stack, report.summary.api_calls, report.summary.api_writes, report.summary.wall_seconds
            ));
        }
        return Ok(ExitStatus::Success);
    };
    if preflight.failed() {
        return Err(preflight.error(&session.caller));
    }
    warn_unverified(printer, &preflight, "");

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

    let report = finish_report(&session, plan, applied, remaining, started);
    if printer.json() {
        printer.result_document("bootstrap", &report);
    } else {
        printer.result(&summary_line(&report.summary));
    }
    outcome(&report, interrupted.load(Ordering::SeqCst))
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
            let observed = engine::observe(&session.clients, &session.desired, session.user.as_deref(), false).await;
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
    let plan = engine::diff(&session.desired, &observed, session.user.as_deref());

    // Before any write, at once: every managed policy exists, and the caller may make every change (a
    // permission the caller lacks stops the run here).
    let spinner = printer.spinner("checking policies and permissions");
    let managed = engine::check_managed_policies(&session.clients, &session.desired, &observed, &already_checked);
    let preflight = async {
        match plan.has_changes() {
            true => check::preflight(
                &session.clients,
                &session.caller,
                &session.desired,
                &observed,
                &plan,
                early_permissions,
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

/// `prefix` names the account in multi-account runs ("account 111122223333: "), and is empty otherwise.
pub(crate) fn warn_unverified(printer: &Printer, preflight: &check::Preflight, prefix: &str) {
    let unverified = preflight.permissions.iter().filter(|p| matches!(p.verdict, Verdict::Unverified { .. })).count();
    if unverified > 0 {
        printer.warn(&format!(
            "{prefix}{unverified} of {} permissions could not be verified ({}); continuing",
            preflight.permissions.len(),
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
    }
}

/// Apply `plan`, verify what it changed, and apply again once if a concurrent run raced us. Returns what was
/// applied and what still differs.
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
        let observer = ApplyProgress {
            printer,
            bar: printer.bar(current.summary.changes as u64, "applying"),
            prefix,
            already_done: "already done by someone else",
        };
        let results = apply::apply(&session.clients, &current, opts, &observer).await;
        observer.bar.finish_and_clear();
        let failed = results.iter().any(|r| matches!(r.outcome, Outcome::Failed { .. }));
        applied.extend(results);
        if failed || opts.interrupted.load(Ordering::SeqCst) {
            break;
        }
        // Verify: observe again what was to change, and nothing else.
        let part = engine::changed_part(&session.desired, &current);
        let user = session.user.as_deref().filter(|_| !part.user_policies.is_empty());
        let spinner = printer.spinner("verifying");
        let observed = engine::observe(&session.clients, &part, user, true).await;
        spinner.finish_and_clear();
        let after = engine::diff(&part, &observed?, user);
        let outstanding = after.changes().filter(|c| opts.consent || !c.needs_consent).count();
        remaining = after.has_changes().then_some(after.clone());
        if outstanding == 0 {
            break;
        }
        if round < MAX_ROUNDS {
            printer.info(&format!(
                "{prefix}{outstanding} change(s) still differ after apply (another run at the same time?); applying again"
            ));
        }
        current = after;
    }
    Ok((applied, remaining))
}

/// The one-line text summary of a run.
pub(crate) fn summary_line(s: &Summary) -> String {
    format!(
        "{} created, {} updated, {} unchanged; {} write{} done{}{}. {} API calls ({} writes), {:.2} s.",
        s.created,
        s.updated,
        s.unchanged,
        s.writes_done,
        plural(s.writes_done),
        if s.already_done > 0 { format!(", {} already done by someone else", s.already_done) } else { String::new() },
        if s.held > 0 { format!(", {} held back (--adopt)", s.held) } else { String::new() },
        s.api_calls,
        s.api_writes,
        s.wall_seconds
    )
}

/// How a run that applied ended: interrupted, failed changes, still differing, held back, or success.
pub(crate) fn outcome(report: &Report, interrupted: bool) -> Result<ExitStatus> {
    let s = &report.summary;
    if interrupted {
        return Err(Error::new(
            ErrorKind::Interrupted,
            format!("interrupted after {} of {} changes", s.writes_done, report.plan.summary.changes),
        )
        .with_help("run the same command again to complete the rest"));
    }
    if s.failed > 0 {
        let first = report.applied.iter().find_map(|a| match &a.outcome {
            Outcome::Failed { error } => Some(error.clone()),
            _ => None,
        });
        let mut err = Error::aws(format!(
            "{} change{} failed ({} not attempted); first failure: {}",
            s.failed,
            plural(s.failed),
            s.skipped,
            first.unwrap_or_default()
        ));
        err.help = Some("fix the cause and run again: completed changes are not repeated".into());
        return Err(err);
    }
    if !report.verified {
        return Err(Error::aws("the account still differs from the stack after applying (see `wfboot plan`)")
            .with_help(
                "something else may be changing these resources; run again, or `wfboot plan` to see what differs",
            ));
    }
    if s.held > 0 {
        return Ok(ExitStatus::ChangesPending);
    }
    Ok(ExitStatus::Success)
}

pub(crate) fn finish_report(
    session: &Session,
    plan: Plan,
    applied: Vec<AppliedChange>,
    remaining: Option<Plan>,
    started: Instant,
) -> Report {
    let calls = session.clients.calls.snapshot();
    let count = |f: &dyn Fn(&Outcome) -> bool| applied.iter().filter(|a| f(&a.outcome)).count();
    let held = count(&|o| matches!(o, Outcome::Held));
    let summary = Summary {
        created: plan.resources.iter().filter(|r| r.status == Status::Create).count(),
        updated: plan.resources.iter().filter(|r| r.status == Status::Update).count(),
        unchanged: plan.resources.iter().filter(|r| r.status == Status::Unchanged).count(),
        writes_done: count(&|o| matches!(o, Outcome::Done)),
        already_done: count(&|o| matches!(o, Outcome::AlreadyDone)),
        held,
        failed: count(&|o| matches!(o, Outcome::Failed { .. })),
        skipped: count(&|o| matches!(o, Outcome::Skipped { .. })),
        api_calls: calls.calls.len(),
        api_writes: calls.writes(),
        http_attempts: calls.attempts,
        wall_seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    };
    let verified = summary.failed == 0
        && summary.skipped == 0
        && remaining.as_ref().is_none_or(|r| r.changes().all(|c| c.needs_consent && held > 0));
    Report { plan, applied, verified, remaining, summary, hardening: session.hardening.clone() }
}
