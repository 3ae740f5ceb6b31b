//! `wfboot bootstrap`: plan, show, confirm, apply in dependency order, verify.
//!
//! Re-running on a bootstrapped account makes no write call. A run that stops anywhere is completed by the
//! next one, because every step starts from what the account is, not from what a previous run did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::{AwsSettings, CallStats};
use crate::cli::BootstrapArgs;
use crate::commands::{plural, ExitStatus};
use crate::engine::apply::{AppliedChange, Outcome, Waits};
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;
use crate::pipeline::apply::{self, watch_interrupt, written_not_seen};
use crate::pipeline::fleet::{self, Row, RowStatus, Slot, Slots};
use crate::pipeline::guards::{self, Ready};
use crate::pipeline::preflight::{self, Preflight};
use crate::pipeline::report::{self, waits_text, Tally};
use crate::pipeline::stackset::{self, OrgUnits};
use crate::pipeline::wait::{self, Readiness, WaitReport};
use crate::pipeline::{self, Run, Session, Unit};
use crate::resources::plan::{Plan, PlannedChange, Status};
use crate::review;
use crate::stack::harden;

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

/// What one account's run knows before its first write: its session, its plan and, when the plan writes, the
/// pre-flight.
struct Prepared {
    session: Session,
    plan: Plan,
    preflight: Option<Preflight>,
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &BootstrapArgs) -> Result<ExitStatus> {
    // `--wait SERVICE`: a service the stack has no role for is a usage error, before any AWS call.
    let check = |stack: &crate::stack::Stack| match args.wait_for() {
        Some(only) => crate::verify::check_services(stack, &only),
        None => Ok(()),
    };
    let run = Run::open_checked(printer, aws, &args.stack, Some(&args.accounts), check).await?;
    if let Some(org) = run.org_units() {
        return org_units(printer, &run, org, args).await;
    }
    let worker = printer.for_worker();
    let units = run.units(printer, &worker);
    let interrupted = Arc::new(AtomicBool::new(false));
    let watcher = Watcher::new(interrupted.clone());
    // With --yes there is no question to gather the accounts for: each applies as soon as its own pre-flight passed.
    // Otherwise every account is read and pre-flighted first, and the one question comes once.
    let (applied, failed) = match args.yes {
        true => {
            let streamed =
                run.each_in_slots(units, |unit, slots| straight(&run, unit, args, &interrupted, &watcher, slots));
            (streamed.await, Vec::new())
        }
        false => match gathered(printer, &run, units, args, &interrupted, &watcher).await? {
            Gathered::Ended(end) => return Ok(end),
            Gathered::Applied(applied, failed) => (applied, failed),
        },
    };
    watcher.abort();

    let Some(fleet) = run.fleet() else {
        let Some((_, result)) = applied.into_iter().next() else { return Ok(ExitStatus::Success) };
        let (report, outcome) = result?;
        if printer.json() {
            printer.result_document("bootstrap", &report);
            return outcome;
        }
        if report.plan.has_changes() {
            printer.result(&summary_line(&report.summary));
        } else {
            printer.result(&format!(
                "Nothing to do: the account already matches stack {}. {} API calls, {} writes, {:.2} s.",
                report.plan.stack,
                report.summary.tally.api_calls,
                report.summary.tally.api_writes,
                report.summary.tally.wall_seconds
            ));
        }
        if let Some(w) = &report.wait {
            printer.result(&wait::usable_text(w));
        }
        return outcome;
    };
    let mut rows = failed;
    for (unit, result) in applied {
        let Some(account) = unit.account else { continue };
        rows.push(match result {
            Err(e) => Row::failed(printer, account, &e),
            Ok((report, outcome)) => {
                let mut row = match &outcome {
                    Ok(ExitStatus::ChangesPending) => Row::new(account, RowStatus::HeldBack),
                    Ok(_) if report.plan.has_changes() => Row::new(account, RowStatus::Applied),
                    Ok(_) => Row::new(account, RowStatus::NoChanges),
                    Err(e) => Row::failed(printer, account, e),
                };
                if row.status != RowStatus::Failed {
                    let done = match report.plan.has_changes() {
                        true => summary_line(&report.summary),
                        false => "nothing to do".into(),
                    };
                    printer.info(&format!("{}{done}", unit.prefix()));
                    if let Some(w) = &report.wait {
                        let text = wait::usable_text(w);
                        printer.info(&format!("{}{}", unit.prefix(), text.lines().next().unwrap_or_default()));
                    }
                }
                row.changes = Some(report.summary.tally.writes_done);
                row.usable_after_seconds = report.wait.as_ref().and_then(|w| w.usable_after_seconds);
                row.result = serde_json::to_value(&report).ok();
                row
            }
        });
    }
    fleet.finish(printer, "bootstrap", &run.stack.name, rows, |rows| {
        match rows.iter().any(|r| r.status == RowStatus::HeldBack) {
            true => ExitStatus::ChangesPending,
            false => ExitStatus::Success,
        }
    })
}

/// What one account's run came to: its report and how it ended (`Err`: it failed before or during the apply).
type Applied<'a> = (Unit<'a>, Result<(Report, Result<ExitStatus>)>);

/// Ctrl-C's watcher, started once the first account is about to write: from then on, Ctrl-C lets the requests in
/// flight finish and starts no new change.
struct Watcher {
    flag: Arc<AtomicBool>,
    handle: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Watcher {
    fn new(flag: Arc<AtomicBool>) -> Watcher {
        Watcher { flag, handle: Default::default() }
    }

    fn start(&self) {
        if let Ok(mut h) = self.handle.lock() {
            h.get_or_insert_with(|| watch_interrupt(self.flag.clone()));
        }
    }

    fn abort(&self) {
        if let Some(h) = self.handle.lock().ok().and_then(|mut h| h.take()) {
            h.abort();
        }
    }
}

/// `--yes`: one account from start to end (in one of the --max-accounts slots until its apply is read back): read,
/// plan, pre-flight, guards, then at once its apply, read-back and `--wait`.
async fn straight<'a>(
    run: &Run,
    unit: Unit<'a>,
    args: &BootstrapArgs,
    interrupted: &Arc<AtomicBool>,
    watcher: &Watcher,
    slots: Arc<Slots>,
) -> Applied<'a> {
    let slot = slots.start().await;
    if interrupted.load(Ordering::SeqCst) {
        let e = Error::new(ErrorKind::Interrupted, "interrupted before this account was started");
        return (unit, Err(e.with_help("run the same command again to complete the rest")));
    }
    let (unit, prepared) = prepare(run, unit, true).await;
    let checked = prepared.and_then(|p| {
        show(unit.printer, unit, &p);
        if let Some(preflight) = &p.preflight {
            guards::before_writing(&p.session, preflight)?;
            preflight::report(unit.printer, preflight, &unit.prefix());
        }
        let consent = guards::consent_in(unit.printer, args, p.plan.summary.needing_consent, &unit.prefix())?;
        Ok((p, consent))
    });
    let (p, consent) = match checked {
        Ok(c) => c,
        Err(e) => return (unit, Err(e)),
    };
    if p.plan.has_changes() {
        watcher.start();
    }
    apply_one(run, unit, p, args, consent, interrupted, slot).await
}

/// Without `--yes`: every account read and pre-flighted (a pool of --max-accounts), each plan shown, then the one
/// question for all, and the accounts applied.
enum Gathered<'a> {
    /// The answer was no (or there is no terminal to ask at): the run's end.
    Ended(ExitStatus),
    Applied(Vec<Applied<'a>>, Vec<Row>),
}

async fn gathered<'a>(
    printer: &Printer,
    run: &'a Run,
    units: Vec<Unit<'a>>,
    args: &BootstrapArgs,
    interrupted: &Arc<AtomicBool>,
    watcher: &Watcher,
) -> Result<Gathered<'a>> {
    // Without a terminal the question cannot be answered: a plan with changes then ends the run at once.
    let asks = printer.interactive;
    let prepared = run.each(units, |unit| prepare(run, unit, asks)).await;

    // Each account's plan, then its guards: an account stopped here is not asked about and not written to.
    let mut ready: Vec<(Unit, Prepared)> = Vec::new();
    let mut failed: Vec<Row> = Vec::new();
    for (unit, result) in prepared {
        let checked = result.and_then(|p| {
            show(printer, unit, &p);
            if let Some(preflight) = &p.preflight {
                guards::before_writing(&p.session, preflight)?;
                preflight::report(unit.printer, preflight, &unit.prefix());
            }
            Ok(p)
        });
        match (checked, unit.account) {
            (Ok(p), _) => ready.push((unit, p)),
            (Err(e), None) => return Err(e),
            (Err(e), Some(account)) => failed.push(Row::failed(printer, account, &e)),
        }
    }

    // One question for every account with changes.
    let asked: Vec<Ready> = ready
        .iter()
        .map(|(unit, p)| Ready {
            unit: *unit,
            account_id: &p.plan.account_id,
            changes: p.plan.summary.changes,
            counted: None,
            plan: unit.account.and_then(|_| serde_json::to_value(&p.plan).ok()),
        })
        .collect();
    let phrase = ("Apply", "change", "to");
    if let Some(end) = guards::ask(printer, run, "bootstrap", args.yes, phrase, &asked, &mut failed)? {
        return Ok(Gathered::Ended(end));
    }
    let changes: usize = asked.iter().map(|r| r.changes).sum();
    drop(asked);
    let needing_consent: usize = ready.iter().map(|(_, p)| p.plan.summary.needing_consent).sum();
    let consent = changes == 0 || guards::consent(printer, args, needing_consent)?;

    // Apply, read back and (`--wait`) probe, account by account.
    if changes > 0 {
        watcher.start();
    }
    let applied = run
        .each_in_slots(ready, |(unit, p), slots| async move {
            let slot = slots.start().await;
            apply_one(run, unit, p, args, consent, interrupted, slot).await
        })
        .await;
    Ok(Gathered::Applied(applied, failed))
}

/// `--org-unit`: the StackSet's steps. Read (the StackSet, each account), plan, pre-flight (nothing is written when
/// it refuses), the one question, the CloudFormation writes followed to their end, the instances read back, the
/// table. wfboot itself sends no IAM write: CloudFormation deploys in each account.
async fn org_units(printer: &Printer, run: &Run, org: &OrgUnits, args: &BootstrapArgs) -> Result<ExitStatus> {
    let (state, accounts) = stackset::read(run, org, printer, false).await?;
    let plan = stackset::plan(org, &state, &accounts);
    if !printer.json() {
        printer.result(&plan.to_string());
    }
    stackset::report(printer, &plan);
    let finish = |rows, checked: Option<&stackset::Preflight>, operations: &[stackset::Operation]| {
        let result = stackset::SetResult {
            name: org.name(),
            call_as: org.call_as,
            region: &plan.region,
            org_units: &plan.org_units,
            plan: &plan.stack_set,
            preflight: checked,
            operations,
            notes: &plan.notes,
        };
        org.fleet.finish_with(printer, "bootstrap", &run.stack.name, rows, serde_json::to_value(&result).ok(), |rows| {
            match rows.iter().any(|r| r.status == RowStatus::HeldBack) {
                true => ExitStatus::ChangesPending,
                false => ExitStatus::Success,
            }
        })
    };
    // Nothing left to deploy to: every OU refused writes nothing, not even the StackSet.
    let deployable = plan.org_units.iter().any(|o| o.refused.is_none());
    if !plan.has_changes() || !deployable {
        if plan.has_changes() {
            printer.info("Nothing was written: every OU is refused.");
        } else {
            printer.info(&format!("Nothing to do: StackSet {} already matches stack {}.", org.name(), run.stack.name));
        }
        return finish(stackset::applied_rows(printer, &plan, &[], &state.instances), None, &[]);
    }
    let checked = stackset::preflight(org, &state, Some(&plan), &run.stack.name).await;
    if let Some(refusal) = checked.refusal.clone() {
        return Err(refusal);
    }
    checked.report(printer);
    if !guards::confirm_once(printer, &stackset::question(&plan), args.yes)? {
        printer.info("Nothing was changed.");
        let rows = stackset::plan_rows(&plan);
        return finish(rows, Some(&checked), &[]).map(|_| ExitStatus::ChangesPending);
    }
    let (operations, after) = stackset::apply(printer, org, &plan).await?;
    finish(stackset::applied_rows(printer, &plan, &operations, &after), Some(&checked), &operations)
}

/// Step 2 for one account: read, plan, and, when the plan writes, the pre-flight (with the managed policies'
/// check, at once). Read-only.
///
/// `asks`: whether the run's question can be answered (`--yes`, or a terminal to ask on). When it cannot, a plan
/// with changes decides the run (no terminal to ask on): the pre-flight, which only advises on writes that will not
/// be made, is not run, so the answer comes at once.
async fn prepare<'a>(run: &Run, unit: Unit<'a>, asks: bool) -> (Unit<'a>, Result<Prepared>) {
    let prepared = async {
        let (session, observed, early) = run.open_observing(unit, asks).await?;
        let already_checked = early.as_ref().map(|e| e.managed_checked.clone()).unwrap_or_default();
        // Before any write, at once: every managed policy exists, and the caller may make every change (a
        // permission the caller lacks stops the account at its guards). A missing managed policy or a role over
        // its quota decides the run: the pre-flight (and the early checks still in flight) are dropped then.
        let spinner = unit.printer.spinner("checking policies and permissions");
        let (s, o) = (&session, &observed);
        let planned = pipeline::plan(s, o, &already_checked, |plan| async move {
            if !plan.has_changes() || !asks {
                return Ok(None);
            }
            preflight::of_plan(s, o, &plan, early, true).await.map(Some)
        })
        .await;
        spinner.finish_and_clear();
        let (plan, preflight) = planned?;
        Ok(Prepared { plan, preflight: preflight?, session })
    };
    (unit, prepared.await)
}

/// One account's plan, shown: the plan, what --harden did and the review's count in the caller's own account; the
/// plan's summary and its text in a fleet.
fn show(printer: &Printer, unit: Unit, p: &Prepared) {
    if let Some(account) = unit.account {
        fleet::show_plan(printer, account, p.plan.summary.changes, || p.plan.to_string());
        return;
    }
    if printer.json() {
        return;
    }
    let session = &p.session;
    let mut out = p.plan.to_string();
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

/// Step 5 for one account: apply its plan, read back, and with `--wait` probe until the services accept the
/// roles. The report, and how the account's run ended.
async fn apply_one<'a>(
    run: &Run,
    unit: Unit<'a>,
    p: Prepared,
    args: &BootstrapArgs,
    consent: bool,
    interrupted: &Arc<AtomicBool>,
    slot: Slot,
) -> Applied<'a> {
    let result = async {
        // The apply and its read-back in one of the --max-accounts slots (`slot`, released after it); the --wait
        // probes beside it, and after it outside the slots.
        let Prepared { session, plan, .. } = p;
        let opts = guards::apply_options(&session, args, consent, interrupted);
        let prefix = unit.prefix();
        let wait_for = args.wait_for();
        let readiness = wait_for.as_ref().map(|only| Readiness::new(wait::needs(&session, only)));
        let applying = async {
            let applied = match plan.has_changes() {
                true => {
                    let readiness = readiness.as_ref();
                    apply::apply_and_verify(unit.printer, &session, &plan, &opts, &prefix, readiness, Some(&slot)).await
                }
                false => Ok((Vec::new(), None)),
            };
            if let Some(r) = &readiness {
                r.done();
            }
            drop(slot);
            let (applied, remaining) = applied?;
            // The report of the apply (its calls and wall time), whatever the probes do after it.
            let report = finish_report(&session, plan.clone(), applied, remaining, &opts.waits, run.started);
            Ok::<_, Error>((report, interrupted.load(Ordering::SeqCst)))
        };
        let waiting = async {
            let (Some(only), Some(readiness)) = (&wait_for, &readiness) else { return None };
            let timeout = Duration::from_secs(args.propagation_timeout);
            Some(wait::wait_usable(unit.printer, &session, only, readiness, timeout, run.started, &prefix).await)
        };
        let (applied, waited) = tokio::join!(applying, waiting);
        let (mut report, stopped) = applied?;
        let mut outcome = outcome(&report, stopped);
        if let (Some(waited), true) = (waited, outcome.is_ok() && !stopped) {
            let (waited, failed) = waited?;
            report.wait = Some(waited);
            if let Some(e) = failed {
                outcome = Err(e);
            }
        }
        Ok((report, outcome))
    };
    (unit, result.await)
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
        s.tally.already_done_text(),
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
    use crate::stack::Target;

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
        let again = crate::pipeline::apply::without_fresh_creates(&plan(), &done);
        let names: Vec<&str> = again.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["B", "C"]);
        assert_eq!(again.summary.changes, 2);
        assert_eq!(written_not_seen(plan().changes(), &done), 2);
    }
}
