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
use crate::commands::bootstrap::written_not_seen;
use crate::commands::report::{self, waits_text, Tally};
use crate::commands::{plural, watch_interrupt, ApplyProgress, ExitStatus, Session};
use crate::engine::apply::{self, AppliedChange, ApplyOptions, Outcome, Waits};
use crate::engine::permissions;
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;
use crate::policy_eval::Verdict;
use crate::prompt;
use crate::resources::permissions as perms;
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
    let started = Instant::now();
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
    let (session, observed, _) = Session::open_observing(printer, aws, &stack_args, false).await?;
    let plan = read_plan(printer, &session, args, Some(observed)).await?;

    if !printer.json() {
        printer.result(&plan.to_string());
    }
    if !plan.has_changes() || args.dry_run {
        let report = finish_report(&session, plan, args.dry_run, Vec::new(), None, &Waits::default(), started);
        let s = &report.summary;
        if printer.json() {
            printer.result_document("destroy", &report);
        } else if report.plan.has_changes() {
            printer.info("Dry run: nothing was changed (run without --dry-run to delete).");
        } else if report.summary.held_back > 0 {
            printer.result(&format!(
                "Nothing deleted: the {} resource{} of stack {} left in account {} {} held back. {} API calls, {:.2} s.",
                report.summary.held_back,
                plural(report.summary.held_back),
                report.plan.stack,
                report.plan.account_id,
                if report.summary.held_back == 1 { "is" } else { "are" },
                s.tally.api_calls,
                s.tally.wall_seconds
            ));
        } else {
            printer.result(&format!(
                "Nothing to destroy: nothing of stack {} created by wfboot is left in account {}. {} API calls, {} writes, {:.2} s.",
                report.plan.stack, report.plan.account_id, s.tally.api_calls, s.tally.api_writes, s.tally.wall_seconds
            ));
        }
        if !args.dry_run && report.summary.held_back > 0 {
            return Ok(held_back(printer, &report));
        }
        return Ok(ExitStatus::Success);
    }

    // --force: what deleting each used resource breaks, said before the question and any write.
    for r in plan.resources.iter().filter(|r| r.verdict == Action::Delete && !r.consumers.is_empty()) {
        let used: Vec<String> = r.consumers.iter().map(|c| format!("  - {c}")).collect();
        printer.warn(&format!("--force: deleting {} {} breaks what uses it:\n{}", r.kind, r.name, used.join("\n")));
    }

    // Before the question and any write: may the caller make every change? A denied one stops here.
    preflight(printer, &session, &plan).await?;

    if !args.yes {
        let question = format!(
            "Delete {} resource{} ({} write call{}) from account {}?",
            plan.summary.delete,
            plural(plan.summary.delete),
            plan.summary.changes,
            plural(plan.summary.changes),
            plan.account_id
        );
        if !prompt::confirm(printer, &question, "--yes")? {
            printer.info("Nothing was changed.");
            return Ok(ExitStatus::ChangesPending);
        }
    }

    let interrupted = Arc::new(AtomicBool::new(false));
    let watcher = watch_interrupt(interrupted.clone());
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
    let mut observer = ApplyProgress::new(printer, printer.bar(plan.summary.changes as u64, "deleting"), "");
    observer.already_done = "already gone";
    let applied = apply::apply_changes(&session.clients, plan.changes().collect(), &opts, &observer).await;
    observer.bar.finish_and_clear();
    watcher.abort();

    let incomplete = interrupted.load(Ordering::SeqCst)
        || applied.iter().any(|a| matches!(a.outcome, Outcome::Failed { .. } | Outcome::Skipped { .. }));
    // Verify: read again; nothing of the stack's own should be left to delete.
    let remaining = if incomplete { None } else { read_back(printer, &session, args, &applied, &opts).await? };

    let report = finish_report(&session, plan, false, applied, remaining, &opts.waits, started);
    let s = &report.summary;
    if printer.json() {
        printer.result_document("destroy", &report);
    } else {
        printer.result(&format!(
            "{} deleted, {}{} left alone, {} absent; {} write{} done{}{}. {} API calls ({} writes), {:.2} s.",
            s.deleted,
            if s.held_back > 0 { format!("{} held back, ", s.held_back) } else { String::new() },
            s.left_alone,
            s.absent,
            s.tally.writes_done,
            plural(s.tally.writes_done),
            if s.tally.already_done > 0 {
                format!(", {} already done by someone else", s.tally.already_done)
            } else {
                String::new()
            },
            waits_text(s.tally.retries, s.tally.waited_seconds),
            s.tally.api_calls,
            s.tally.api_writes,
            s.tally.wall_seconds
        ));
    }
    if interrupted.load(Ordering::SeqCst) {
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
    if report.summary.held_back > 0 {
        return Ok(held_back(printer, &report));
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

async fn preflight(printer: &Printer, session: &Session, plan: &DestroyPlan) -> Result<()> {
    let needed = permissions::required_for(
        plan.changes().map(|c| &c.change),
        &plan.partition,
        &plan.account_id,
        &session.desired,
    );
    let spinner = printer.spinner("checking permissions");
    let (checks, method) = perms::check(&session.clients, &session.caller, &needed).await;
    spinner.finish_and_clear();
    let denied: Vec<String> = checks
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Denied { .. }))
        .map(|c| format!("  - {} on {}", c.action, c.resource))
        .collect();
    if !denied.is_empty() {
        return Err(Error::new(
            ErrorKind::CheckFailed,
            format!(
                "{} may not make every change of this destroy ({method}); nothing was changed:\n{}",
                session.caller.arn,
                denied.join("\n")
            ),
        )
        .with_help("grant the missing permissions (docs/commands.md \"wfboot destroy\" lists them), then run again"));
    }
    let unverified = checks.iter().filter(|c| matches!(c.verdict, Verdict::Unverified { .. })).count();
    if unverified > 0 {
        printer.warn(&format!(
            "{unverified} of {} permissions could not be verified ({method}); continuing",
            checks.len()
        ));
    }
    Ok(())
}

/// Read the account again after deleting. While it still shows something this run deleted (or a read answers
/// NoSuchEntity), IAM has not caught up (read-after-write lag, in reverse): read again, with backoff, within
/// `--propagation-timeout`, saying so once (IAM user guide, "changes that I make are not always immediately
/// visible": https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
async fn read_back(
    printer: &Printer,
    session: &Session,
    args: &DestroyArgs,
    applied: &[AppliedChange],
    opts: &ApplyOptions,
) -> Result<Option<DestroyPlan>> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut told = false;
    loop {
        let (unseen, result) = match read_plan(printer, session, args, None).await {
            Ok(after) => (written_not_seen(after.changes(), applied), Ok(after.has_changes().then_some(after))),
            Err(e) if e.is_code("NoSuchEntity") => (1, Err(e)),
            Err(e) => return Err(e),
        };
        if unseen == 0 || start.elapsed() + delay >= opts.propagation_timeout {
            return result;
        }
        if !told {
            printer.info(&format!(
                "waiting for IAM to show what this run deleted ({unseen} change{} still read as not made: \
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
