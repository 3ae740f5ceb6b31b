//! Step 5 of a run: apply a plan's changes in dependency order, then read back until IAM shows what this run
//! wrote, and apply once more what still differs for a real reason (drift, a concurrent run). Ctrl-C lets the
//! requests in flight finish and starts no new change.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::fleet::Slot;
use super::wait::Readiness;
use super::{plural, Session};
use crate::engine::apply::{self, AppliedChange, ApplyObserver, ApplyOptions, Outcome};
use crate::error::Result;
use crate::output::Printer;
use crate::resources;
use crate::resources::plan::{Plan, PlannedChange, Status};
use crate::resources::write::Cadence;
use crate::stack::Target;

/// At most this many apply rounds: the second repairs what a concurrent run raced us on, or drift that came
/// while this run applied; never what IAM does not show yet of what this run wrote (that is waited out).
const MAX_ROUNDS: usize = 2;

/// Progress of an apply on stderr: a bar, each change's outcome with -v, failures always, and each distinct
/// thing waited for once.
pub(crate) struct ApplyProgress<'a> {
    pub(crate) printer: &'a Printer,
    pub(crate) bar: indicatif::ProgressBar,
    /// Names the account in multi-account runs ("account 111122223333: "); empty otherwise.
    pub(crate) prefix: &'a str,
    /// How a change someone else already made is described ("already done by someone else", "already gone").
    pub(crate) already_done: &'static str,
    told: std::sync::Mutex<BTreeSet<String>>,
    /// Where each resource whose changes all finished is told (`--wait`: to read it back for the probes).
    resources: std::sync::Mutex<Option<mpsc::UnboundedSender<Finished>>>,
}

/// A resource of the plan (its index) whose every change finished, with what they came to.
type Finished = (usize, Vec<AppliedChange>);

impl<'a> ApplyProgress<'a> {
    pub(crate) fn new(printer: &'a Printer, bar: indicatif::ProgressBar, prefix: &'a str) -> Self {
        ApplyProgress {
            printer,
            bar,
            prefix,
            already_done: "already done by someone else",
            told: Default::default(),
            resources: Default::default(),
        }
    }
}

impl ApplyObserver for ApplyProgress<'_> {
    fn finished(&self, change: &PlannedChange, outcome: &Outcome) {
        self.bar.inc(1);
        let line = match outcome {
            Outcome::Done => format!("done: {} ({})", change.change.operation(), change.change),
            Outcome::AlreadyDone => format!("{}: {} ({})", self.already_done, change.change.operation(), change.change),
            Outcome::Held => format!("held back (needs --adopt): {}", change.change),
            Outcome::Skipped { reason } => format!("not started: {} ({reason})", change.change.operation()),
            Outcome::Failed { error } => {
                self.bar.suspend(|| self.printer.error(&format!("{}{error}", self.prefix)));
                return;
            }
        };
        if self.printer.verbosity >= 1 {
            self.bar.suspend(|| self.printer.detail(&format!("{}{line}", self.prefix)));
        }
    }

    fn waiting(&self, what: &str) {
        // Several changes may wait for the same thing (concurrent writes to one user): said once.
        let first = self.told.lock().map(|mut t| t.insert(what.to_string())).unwrap_or(true);
        if first {
            self.bar.suspend(|| self.printer.info(&format!("{}{what}", self.prefix)));
        }
    }

    fn resource_finished(&self, resource: usize, outcomes: &[(&PlannedChange, &Outcome)]) {
        if let Ok(Some(tx)) = self.resources.lock().as_deref() {
            let applied = outcomes
                .iter()
                .map(|(c, o)| AppliedChange {
                    change: (*c).clone(),
                    outcome: (*o).clone(),
                    retries: 0,
                    waited_seconds: 0.0,
                })
                .collect();
            let _ = tx.send((resource, applied));
        }
    }
}

/// Ctrl-C sets `flag`: requests in flight finish, no new change starts.
pub(crate) fn watch_interrupt(flag: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
            eprintln!("\ninterrupted: letting the requests in flight finish; no new change is started");
        }
    })
}

/// Apply `plan`, read back what it changed (waiting out IAM's read-after-write lag on what this run wrote), and
/// apply again once if what still differs is real: drift, or a concurrent run's doing. Returns what was applied
/// and what still differs.
///
/// `readiness` (`--wait`): each resource the probes need is read back on its own as soon as its changes finished
/// (beside the rest of the apply), and said ready once IAM shows it; a failed change or Ctrl-C stops the probes.
pub(crate) async fn apply_and_verify(
    printer: &Printer,
    session: &Session,
    plan: &Plan,
    opts: &ApplyOptions,
    prefix: &str,
    readiness: Option<&Readiness>,
    slot: Option<&Slot>,
) -> Result<(Vec<AppliedChange>, Option<Plan>)> {
    let Some(readiness) = readiness else {
        return apply_rounds(printer, session, plan, opts, prefix, None, slot).await;
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let rounds = apply_rounds(printer, session, plan, opts, prefix, Some((tx, readiness)), slot);
    let settle = settle_each(session, plan, rx, readiness, opts);
    tokio::pin!(rounds, settle);
    // The read-backs per resource end with the apply (what is left is then read back by the whole read-back).
    let result = tokio::select! {
        r = &mut rounds => r,
        _ = &mut settle => (&mut rounds).await,
    };
    if let Err(e) = &result {
        readiness.stop(&format!("the apply failed: {e}"));
    }
    readiness.done();
    result
}

async fn apply_rounds(
    printer: &Printer,
    session: &Session,
    plan: &Plan,
    opts: &ApplyOptions,
    prefix: &str,
    mut tell: Option<(mpsc::UnboundedSender<Finished>, &Readiness)>,
    slot: Option<&Slot>,
) -> Result<(Vec<AppliedChange>, Option<Plan>)> {
    let mut applied: Vec<AppliedChange> = Vec::new();
    let mut current = plan.clone();
    let mut remaining = None;
    for round in 1..=MAX_ROUNDS {
        let observer = ApplyProgress::new(printer, printer.bar(current.summary.changes as u64, "applying"), prefix);
        // Only the first round's resources are told (a second round re-applies what a concurrent run undid).
        let readiness = tell.take().map(|(tx, readiness)| {
            if let Ok(mut r) = observer.resources.lock() {
                *r = Some(tx);
            }
            readiness
        });
        let results = apply::apply(&session.clients, &current, opts, &observer).await;
        if let Ok(mut r) = observer.resources.lock() {
            r.take();
        }
        observer.bar.finish_and_clear();
        let failed = results.iter().any(|r| matches!(r.outcome, Outcome::Failed { .. }));
        applied.extend(results);
        let interrupted = opts.interrupted.load(Ordering::SeqCst);
        if let (Some(readiness), true) = (readiness, failed || interrupted) {
            readiness.stop(match interrupted {
                true => "interrupted",
                false => "a change failed",
            });
        }
        if failed || interrupted {
            break;
        }
        // Verify: observe again what was to change, and nothing else.
        let part = resources::changed_part(&session.desired, &current);
        let after = read_back_part(printer, session, &part, &applied, opts, prefix, slot).await?;
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

/// `--wait`'s read-back per resource: the resources the probes need, each read on its own once its changes
/// finished, until IAM shows what this run wrote to it; then it is ready (or failed, when a change of it did not
/// complete). A resource with nothing to change is ready at once. Ends when the apply has told every resource and
/// each was read back.
async fn settle_each(
    session: &Session,
    plan: &Plan,
    mut finished: mpsc::UnboundedReceiver<Finished>,
    readiness: &Readiness,
    opts: &ApplyOptions,
) {
    for r in plan.resources.iter().filter(|r| r.changes.is_empty()) {
        readiness.ready(r.kind, &r.name);
    }
    let mut reading = futures::stream::FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            told = finished.recv(), if open => match told {
                None => open = false,
                Some((i, outcomes)) => {
                    let Some(r) = plan.resources.get(i).filter(|r| readiness.needed(r.kind, &r.name)) else { continue };
                    let incomplete = outcomes.iter().find_map(|a| match &a.outcome {
                        Outcome::Failed { error } => Some(error.clone()),
                        Outcome::Skipped { reason } => Some(reason.clone()),
                        _ => None,
                    });
                    match incomplete {
                        Some(why) => readiness.failed(r.kind, &r.name, why),
                        None => reading.push(read_back_one(session, plan, i, outcomes, readiness, opts)),
                    }
                }
            },
            Some(()) = reading.next(), if !reading.is_empty() => {}
            else => break,
        }
    }
}

/// One resource of `plan` (its index `i`), read back until IAM shows what this run wrote to it (within
/// `--propagation-timeout`), then ready. A read that fails otherwise makes it ready too: the probes then ask the
/// services, which say what is wrong.
async fn read_back_one(
    session: &Session,
    plan: &Plan,
    i: usize,
    applied: Vec<AppliedChange>,
    readiness: &Readiness,
    opts: &ApplyOptions,
) {
    let r = &plan.resources[i];
    let target =
        Target { partition: plan.partition.clone(), account_id: plan.account_id.clone(), region: plan.region.clone() };
    let one = Plan::new(&plan.stack, &target, None, vec![r.clone()]);
    let part = resources::changed_part(&session.desired, &one);
    let start = Instant::now();
    let mut cadence = Cadence::default();
    loop {
        let seen = match resources::observe(&session.clients, &part, None, true).await {
            Ok(observed) => written_not_seen(resources::diff(&part, &observed, None).changes(), &applied) == 0,
            Err(e) => !e.is_code("NoSuchEntity"),
        };
        if seen || start.elapsed() + cadence.peek() >= opts.propagation_timeout {
            readiness.ready(r.kind, &r.name);
            return;
        }
        tokio::time::sleep(cadence.next()).await;
    }
}

/// Observe `part` after applying and diff it, until IAM shows what this run wrote ([`read_back`]).
async fn read_back_part(
    printer: &Printer,
    session: &Session,
    part: &crate::stack::Desired,
    applied: &[AppliedChange],
    opts: &ApplyOptions,
    prefix: &str,
    slot: Option<&Slot>,
) -> Result<Plan> {
    let user_of = |part: &crate::stack::Desired| session.user.as_deref().filter(|_| !part.user_policies.is_empty());
    // After the first read, only the resources IAM did not show yet are read again; the others keep what was read.
    let last: std::sync::Mutex<Option<Plan>> = Default::default();
    let read = || async {
        let previous = last.lock().ok().and_then(|l| l.clone());
        let (again, kept) = match &previous {
            None => (part.clone(), Vec::new()),
            Some(before) => {
                let (unseen, seen): (Vec<_>, Vec<_>) =
                    before.resources.iter().cloned().partition(|r| written_not_seen(r.changes.iter(), applied) > 0);
                let target = Target {
                    partition: before.partition.clone(),
                    account_id: before.account_id.clone(),
                    region: before.region.clone(),
                };
                let unseen = Plan::new(&before.stack, &target, before.user.clone(), unseen);
                (resources::changed_part(part, &unseen), seen)
            }
        };
        let spinner = printer.spinner("verifying");
        let observed = resources::observe(&session.clients, &again, user_of(&again), true).await;
        spinner.finish_and_clear();
        let read = resources::diff(&again, &observed?, user_of(&again));
        let after = match kept.is_empty() && previous.is_none() {
            true => read,
            false => {
                let target = Target {
                    partition: read.partition.clone(),
                    account_id: read.account_id.clone(),
                    region: read.region.clone(),
                };
                // In the first read's order: each resource read again replaces what was read of it before.
                let mut fresh = read.resources;
                let mut resources: Vec<_> = previous
                    .iter()
                    .flat_map(|p| p.resources.iter())
                    .filter_map(|r| match fresh.iter().position(|f| f.kind == r.kind && f.name == r.name) {
                        Some(i) => Some(fresh.remove(i)),
                        None => kept.iter().find(|k| k.kind == r.kind && k.name == r.name).cloned(),
                    })
                    .collect();
                resources.append(&mut fresh);
                Plan::new(&read.stack, &target, user_of(part).map(str::to_string), resources)
            }
        };
        let unseen = written_not_seen(after.changes(), applied);
        if let Ok(mut l) = last.lock() {
            *l = Some(after.clone());
        }
        Ok((after, unseen))
    };
    read_back(printer, opts, prefix, "wrote", read, slot).await
}

/// Read the account again after writing (`read` gives what it shows and how many of this run's writes it does
/// not show yet). While that is not none (or a read answers NoSuchEntity), IAM has not caught up with this run
/// (read-after-write lag; after deleting, in reverse): read again at the consistency cadence
/// ([`resources::write::Cadence`]), within `--propagation-timeout`,
/// saying so once. IAM gives no signal of consistency, so reading is the only way to know (IAM user guide,
/// "changes that I make are not always immediately visible":
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency;
/// terraform-provider-aws internal/service/iam/role.go reads a new role with RetryWhenNewResourceNotFound).
/// `did` says what this run did ("wrote", "deleted"). While it waits, the account's `slot` (in a fleet) is lent to
/// the next account.
pub(crate) async fn read_back<P, F, Fut>(
    printer: &Printer,
    opts: &ApplyOptions,
    prefix: &str,
    did: &str,
    read: F,
    slot: Option<&Slot>,
) -> Result<P>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(P, usize)>>,
{
    let start = Instant::now();
    let mut cadence = Cadence::default();
    let mut told = false;
    loop {
        let (unseen, result) = match read().await {
            Ok((after, unseen)) => (unseen, Ok(after)),
            Err(e) if e.is_code("NoSuchEntity") => (1, Err(e)),
            Err(e) => return Err(e),
        };
        if unseen == 0 || start.elapsed() + cadence.peek() >= opts.propagation_timeout {
            return result;
        }
        if !told {
            printer.info(&format!(
                "{prefix}waiting for IAM to show what this run {did} ({unseen} change{} not visible yet: \
                 read-after-write lag; up to {} s)",
                plural(unseen),
                opts.propagation_timeout.as_secs()
            ));
            told = true;
        }
        let pause = cadence.next();
        match slot {
            Some(slot) => slot.idle(opts.waits.sleep(pause)).await,
            None => opts.waits.sleep(pause).await,
        }
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
pub(crate) fn without_fresh_creates(after: &Plan, applied: &[AppliedChange]) -> Plan {
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
