//! `wfboot destroy`: plan, show, confirm, then delete what wfboot created for the stack, in dependency order,
//! and verify. Only resources tagged `wfboot:stack=<stack>` are deleted; the rest is listed and left alone.
//!
//! Re-running is safe: every run starts from what the account is, so a second destroy finds nothing to
//! delete and makes no write call, and a run that stopped half-way is completed by the next one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::AwsSettings;
use crate::cli::{DestroyArgs, StackArgs};
use crate::commands::{plural, ExitStatus};
use crate::engine::apply::{self as engine_apply, AppliedChange, ApplyOptions, Outcome, Waits};
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::pipeline::apply::{read_back, watch_interrupt, written_not_seen, ApplyProgress};
use crate::pipeline::fleet::{self, Row, RowStatus};
use crate::pipeline::guards::{self, Ready};
use crate::pipeline::report::{self, waits_text, Tally};
use crate::pipeline::{preflight, Run, Session, Unit};
use crate::resources::plan::Kind;
use crate::resources::plan::{Action, Consumer, DestroyPlan};
use crate::resources::Observed;
use crate::resources::{destroy_diff, observe_for_destroy};

#[derive(Debug, Serialize)]
struct Report {
    plan: DestroyPlan,
    /// Only shown, nothing applied (`--dry-run`).
    dry_run: bool,
    applied: Vec<AppliedChange>,
    /// Resources deleted by this run (or by someone else meanwhile), as "kind name".
    deleted: Vec<String>,
    left_alone: Vec<LeftAlone>,
    /// The stack's own resources kept because something uses them (or could not be checked), with what.
    held_back: Vec<HeldBack>,
    /// Nothing of the stack's own is left after the run.
    verified: bool,
    /// What is still to delete after the run, if anything.
    remaining: Option<DestroyPlan>,
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct LeftAlone {
    kind: Kind,
    name: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct HeldBack {
    kind: Kind,
    name: String,
    reason: String,
    consumers: Vec<Consumer>,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    deleted: usize,
    left_alone: usize,
    held_back: usize,
    absent: usize,
    #[serde(flatten)]
    tally: Tally,
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &DestroyArgs) -> Result<ExitStatus> {
    // The operator user is not read: destroy never detaches its policies (docs/commands.md "wfboot destroy").
    let stack_args = StackArgs {
        stack: args.stack.clone(),
        user_name: None,
        skip_user: true,
        harden: false,
        permissions_boundary: None,
        tags: Vec::new(),
        expect_account: args.expect_account.clone(),
    };
    let run = Run::open(printer, aws, &stack_args, Some(&args.accounts)).await?;
    let worker = printer.for_worker();
    let prepared = run.each(run.units(printer, &worker), |unit| prepare(&run, unit, args)).await;

    // Each account's plan, then its pre-flight (when it deletes and this is no dry run).
    let mut ready: Vec<(Unit, Session, DestroyPlan)> = Vec::new();
    let mut failed: Vec<Row> = Vec::new();
    for (unit, result) in prepared {
        let checked = match result {
            Ok((session, plan)) => {
                show(printer, unit, &plan);
                match plan.has_changes() && !args.dry_run {
                    true => preflight::for_destroy(unit.printer, &session, &plan, &unit.prefix())
                        .await
                        .map(|()| (session, plan)),
                    false => Ok((session, plan)),
                }
            }
            Err(e) => Err(e),
        };
        match (checked, unit.account) {
            (Ok((session, plan)), _) => ready.push((unit, session, plan)),
            (Err(e), None) => return Err(e),
            (Err(e), Some(account)) => failed.push(Row::failed(printer, account, &e)),
        }
    }

    // One question for every account with something to delete.
    let asked: Vec<Ready> = ready
        .iter()
        .map(|(unit, _, plan)| Ready {
            unit: *unit,
            account_id: &plan.account_id,
            changes: if args.dry_run { 0 } else { plan.summary.changes },
            counted: Some(plan.summary.delete),
            plan: unit.account.and_then(|_| serde_json::to_value(plan).ok()),
        })
        .collect();
    let phrase = ("Delete", "resource", "from");
    if let Some(end) = guards::ask(printer, &run, "destroy", args.yes, phrase, &asked, &mut failed)? {
        return Ok(end);
    }
    let changes: usize = asked.iter().map(|r| r.changes).sum();
    drop(asked);

    let interrupted = Arc::new(AtomicBool::new(false));
    let watcher = (changes > 0).then(|| watch_interrupt(interrupted.clone()));
    let done = run
        .each(ready, |(unit, session, plan)| {
            let interrupted = interrupted.clone();
            let run = &run;
            async move {
                let report = delete(run, unit, &session, plan, args, interrupted).await;
                (unit, report)
            }
        })
        .await;
    if let Some(w) = watcher {
        w.abort();
    }
    let stopped = interrupted.load(Ordering::SeqCst);

    let Some(fleet) = run.fleet() else {
        let Some((_, report)) = done.into_iter().next() else { return Ok(ExitStatus::Success) };
        let report = report?;
        print_report(printer, &report, args.dry_run);
        return outcome(printer, &report, args.dry_run, stopped);
    };
    let mut rows = failed;
    for (unit, report) in done {
        let Some(account) = unit.account else { continue };
        let worker = unit.printer;
        rows.push(match report.and_then(|r| outcome(worker, &r, args.dry_run, stopped).map(|s| (r, s))) {
            Err(e) => Row::failed(printer, account, &e),
            Ok((report, status)) => {
                let mut row = match status {
                    _ if args.dry_run => {
                        Row::of_plan(account, report.plan.summary.changes, serde_json::to_value(&report).ok())
                    }
                    ExitStatus::ChangesPending => Row::new(account, RowStatus::HeldBack),
                    _ if report.plan.has_changes() => Row::new(account, RowStatus::Applied),
                    _ => Row::new(account, RowStatus::NoChanges),
                };
                if !args.dry_run {
                    printer.info(&format!("{}{}", unit.prefix(), summary_line(&report.summary)));
                    row.changes = Some(report.summary.tally.writes_done);
                    row.result = serde_json::to_value(&report).ok();
                }
                row
            }
        });
    }
    fleet.finish(printer, "destroy", &run.stack.name, rows, |rows| {
        match rows.iter().any(|r| r.status == RowStatus::HeldBack) {
            true => ExitStatus::ChangesPending,
            false => ExitStatus::Success,
        }
    })
}

/// Step 2 for one account: its caller, the stack read and its destroy plan.
async fn prepare<'a>(run: &Run, unit: Unit<'a>, args: &DestroyArgs) -> (Unit<'a>, Result<(Session, DestroyPlan)>) {
    let result = async {
        let (session, observed, _) = run.open_observing(unit, false).await?;
        let plan = read_plan(unit.printer, &session, args, Some(observed)).await?;
        Ok((session, plan))
    };
    (unit, result.await)
}

/// One account's plan: in full in the caller's own account, its summary and text in a fleet; and with --force,
/// what deleting each used resource breaks, before the question and any write.
fn show(printer: &Printer, unit: Unit, plan: &DestroyPlan) {
    match unit.account {
        Some(account) => fleet::show_plan(printer, account, plan.summary.changes, || plan.to_string()),
        None if !printer.json() => printer.result(&plan.to_string()),
        None => {}
    }
    for r in plan.resources.iter().filter(|r| r.verdict == Action::Delete && !r.consumers.is_empty()) {
        let used: Vec<String> = r.consumers.iter().map(|c| format!("  - {c}")).collect();
        printer.warn(&format!(
            "{}--force: deleting {} {} breaks what uses it:\n{}",
            unit.prefix(),
            r.kind,
            r.name,
            used.join("\n")
        ));
    }
}

/// Step 5 for one account: delete in dependency order, then read back until IAM no longer shows what was
/// deleted. Nothing is applied for a dry run or an empty plan.
async fn delete(
    run: &Run,
    unit: Unit<'_>,
    session: &Session,
    plan: DestroyPlan,
    args: &DestroyArgs,
    interrupted: Arc<AtomicBool>,
) -> Result<Report> {
    if !plan.has_changes() || args.dry_run {
        return Ok(finish_report(session, plan, args.dry_run, Vec::new(), None, &Waits::default(), run.started));
    }
    let opts = ApplyOptions {
        stack: session.desired.stack.clone(),
        consent: true,
        // A removal's NoSuchEntity means already gone; what is retried is DeleteConflict right after this run
        // removed the link, and ConcurrentModification.
        propagation_timeout: Duration::from_secs(args.propagation_timeout),
        deletion_timeout: Duration::from_secs(args.deletion_timeout),
        interrupted: interrupted.clone(),
        waits: Arc::new(Waits::default()),
    };
    let prefix = unit.prefix();
    let mut observer =
        ApplyProgress::new(unit.printer, unit.printer.bar(plan.summary.changes as u64, "deleting"), &prefix);
    observer.already_done = "already gone";
    let applied = engine_apply::apply_changes(&session.clients, plan.changes().collect(), &opts, &observer).await;
    observer.bar.finish_and_clear();

    let incomplete = interrupted.load(Ordering::SeqCst)
        || applied.iter().any(|a| matches!(a.outcome, Outcome::Failed { .. } | Outcome::Skipped { .. }));
    // Verify: read again; nothing of the stack's own should be left to delete.
    let remaining = match incomplete {
        true => None,
        false => {
            let read = || async {
                let after = read_plan(unit.printer, session, args, None).await?;
                let unseen = written_not_seen(after.changes(), &applied);
                Ok((after.has_changes().then_some(after), unseen))
            };
            read_back(unit.printer, &opts, &prefix, "deleted", read, None).await?
        }
    };
    Ok(finish_report(session, plan, false, applied, remaining, &opts.waits, run.started))
}

/// The single-account result: the report as JSON, or its summary line.
fn print_report(printer: &Printer, report: &Report, dry_run: bool) {
    let s = &report.summary;
    if printer.json() {
        printer.result_document("destroy", report);
    } else if dry_run && report.plan.has_changes() {
        printer.info("Dry run: nothing was changed (run without --dry-run to delete).");
    } else if report.plan.has_changes() {
        printer.result(&summary_line(s));
    } else if s.held_back > 0 {
        printer.result(&format!(
            "Nothing deleted: the {} resource{} of stack {} left in account {} {} held back. {} API calls, {:.2} s.",
            s.held_back,
            plural(s.held_back),
            report.plan.stack,
            report.plan.account_id,
            if s.held_back == 1 { "is" } else { "are" },
            s.tally.api_calls,
            s.tally.wall_seconds
        ));
    } else {
        printer.result(&format!(
            "Nothing to destroy: nothing of stack {} created by wfboot is left in account {}. {} API calls, {} writes, {:.2} s.",
            report.plan.stack, report.plan.account_id, s.tally.api_calls, s.tally.api_writes, s.tally.wall_seconds
        ));
    }
}

fn summary_line(s: &Summary) -> String {
    format!(
        "{} deleted, {}{} left alone, {} absent; {} write{} done{}{}. {} API calls ({} writes), {:.2} s.",
        s.deleted,
        if s.held_back > 0 { format!("{} held back, ", s.held_back) } else { String::new() },
        s.left_alone,
        s.absent,
        s.tally.writes_done,
        plural(s.tally.writes_done),
        s.tally.already_done_text(),
        waits_text(s.tally.retries, s.tally.waited_seconds),
        s.tally.api_calls,
        s.tally.api_writes,
        s.tally.wall_seconds
    )
}

/// How an account's destroy ended: interrupted, failed changes, still there, held back, or success.
fn outcome(printer: &Printer, report: &Report, dry_run: bool, interrupted: bool) -> Result<ExitStatus> {
    let s = &report.summary;
    if dry_run || !report.plan.has_changes() {
        return Ok(match !dry_run && s.held_back > 0 {
            true => held_back(printer, report),
            false => ExitStatus::Success,
        });
    }
    if interrupted {
        return Err(report::interrupted(s.tally.writes_done, report.plan.summary.changes, "delete the rest"));
    }
    if s.tally.failed > 0 {
        let failures: Vec<&str> = report
            .applied
            .iter()
            .filter_map(|a| match &a.outcome {
                Outcome::Failed { error } => Some(error.as_str()),
                _ => None,
            })
            .collect();
        return Err(Error::aws(format!(
            "{} change{} failed ({} not attempted because of it):\n{}",
            s.tally.failed,
            plural(s.tally.failed),
            s.tally.skipped,
            failures.join("\n")
        ))
        .with_help("fix the cause and run again: what was deleted stays deleted, nothing is repeated"));
    }
    if !report.verified {
        return Err(Error::aws("resources of the stack created by wfboot are still there after deleting")
            .with_help("something else may be changing them; run `wfboot destroy --dry-run` to see what is left"));
    }
    if s.held_back > 0 {
        return Ok(held_back(printer, report));
    }
    Ok(ExitStatus::Success)
}

/// The run kept resources that something uses: say what to remove first, and end with "changes pending" (2).
fn held_back(printer: &Printer, report: &Report) -> ExitStatus {
    let mut lines = Vec::new();
    for h in &report.held_back {
        let what = format!("{} {}", h.kind, h.name);
        if h.consumers.is_empty() {
            lines.push(format!("  - {what}: {}", h.reason));
        }
        for c in &h.consumers {
            lines.push(format!("  - {what}: used by {c}"));
        }
    }
    printer.warn(&format!(
        "{} resource{} of the stack held back, because something uses {} (or who does could not be checked):\n{}\n  \
         help: delete or change what uses them first (or detach the policy from the role, user or group outside the \
         stack), then run `wfboot destroy` again; `--force` deletes them anyway, and what uses them breaks",
        report.summary.held_back,
        plural(report.summary.held_back),
        if report.summary.held_back == 1 { "it" } else { "them" },
        lines.join("\n")
    ));
    ExitStatus::ChangesPending
}

async fn read_plan(
    printer: &Printer,
    session: &Session,
    args: &DestroyArgs,
    observed: Option<Observed>,
) -> Result<DestroyPlan> {
    let spinner = printer.spinner("reading the account");
    let observed = observe_for_destroy(&session.clients, &session.desired, observed).await;
    spinner.finish_and_clear();
    Ok(destroy_diff(&session.desired, &observed?, args.include_service_linked_roles, args.force))
}

fn finish_report(
    session: &Session,
    plan: DestroyPlan,
    dry_run: bool,
    applied: Vec<AppliedChange>,
    remaining: Option<DestroyPlan>,
    waits: &Waits,
    started: Instant,
) -> Report {
    let calls = session.clients.calls.snapshot();
    // A resource is deleted when its last change (the delete call itself) went through.
    let deleted: Vec<String> = plan
        .resources
        .iter()
        .filter(|r| r.verdict == Action::Delete)
        .filter(|r| {
            r.changes.last().is_some_and(|last| {
                applied.iter().any(|a| {
                    a.change.change == last.change && matches!(a.outcome, Outcome::Done | Outcome::AlreadyDone)
                })
            })
        })
        .map(|r| format!("{} {}", r.kind, r.name))
        .collect();
    let left_alone: Vec<LeftAlone> = plan
        .resources
        .iter()
        .filter(|r| r.verdict == Action::LeftAlone)
        .map(|r| LeftAlone { kind: r.kind, name: r.name.clone(), reason: r.reason.clone().unwrap_or_default() })
        .collect();
    let held_back: Vec<HeldBack> = plan
        .resources
        .iter()
        .filter(|r| r.verdict == Action::HeldBack)
        .map(|r| HeldBack {
            kind: r.kind,
            name: r.name.clone(),
            reason: r.reason.clone().unwrap_or_default(),
            consumers: r.consumers.clone(),
        })
        .collect();
    let summary = Summary {
        deleted: deleted.len(),
        left_alone: left_alone.len(),
        held_back: held_back.len(),
        absent: plan.summary.absent,
        tally: Tally::of(&applied, &calls, waits, started, false),
    };
    let verified = !dry_run && summary.tally.failed == 0 && summary.tally.skipped == 0 && remaining.is_none();
    Report { plan, dry_run, applied, deleted, left_alone, held_back, verified, remaining, summary }
}
