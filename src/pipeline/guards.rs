//! Step 3 and 4 of a run: the guards that stop an account before any write, and the one confirmation.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::fleet::Row;
use super::plural;
use super::preflight::Preflight;
use super::{ExitStatus, Run, Session, Unit};
use crate::cli::BootstrapArgs;
use crate::engine::apply::{ApplyOptions, Waits};
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::prompt;
use crate::stack::Desired;
use crate::verify::{self, Status};

/// May changes to resources wfboot did not create be made? `--adopt`, or the interactive answer.
pub(crate) fn consent(printer: &Printer, args: &BootstrapArgs, needing_consent: usize) -> Result<bool> {
    consent_in(printer, args, needing_consent, "")
}

/// [`consent`] for one account (`prefix` names it in a fleet): with `--yes` each account is decided on its own.
pub(crate) fn consent_in(
    printer: &Printer,
    args: &BootstrapArgs,
    needing_consent: usize,
    prefix: &str,
) -> Result<bool> {
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
            "{prefix}{} change{} to resources wfboot did not create will be held back; re-run with --adopt to make them",
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

/// Step 3 for an account whose plan writes, before the question and any write: a trust document that would lock
/// its service out is refused (as input: the stack is wrong, not the account), then a permission the pre-flight
/// found denied.
pub(crate) fn before_writing(session: &Session, preflight: &Preflight) -> Result<()> {
    refuse_locked_out(&session.desired)?;
    if preflight.failed() {
        return Err(preflight.error(&session.caller));
    }
    Ok(())
}

/// An account ready to be written to, as the one question counts it.
pub(crate) struct Ready<'a> {
    pub(crate) unit: Unit<'a>,
    pub(crate) account_id: &'a str,
    /// Its changes (write calls), and what the question counts instead of them, if anything (resources to delete).
    pub(crate) changes: usize,
    pub(crate) counted: Option<usize>,
    /// Its plan, for a fleet's row when the answer is no.
    pub(crate) plan: Option<serde_json::Value>,
}

/// Step 4: the one question of a run, for every account with changes (`--yes` answers it): "Apply 3 changes to
/// account 111122223333?", "Delete 2 resources (5 write calls) from 3 accounts (1 other failed)?". `what` words
/// what the question counts ("change", "resource"), `verb` and `to` the rest. `Ok(None)` when the run goes on;
/// when the answer is no, "Nothing was changed." and (in a fleet) the table of what was planned and what failed,
/// and the run's end.
pub(crate) fn ask(
    printer: &Printer,
    run: &Run,
    command: &str,
    yes: bool,
    (verb, what, to): (&str, &str, &str),
    ready: &[Ready],
    failed: &mut Vec<Row>,
) -> Result<Option<ExitStatus>> {
    let changes: usize = ready.iter().map(|r| r.changes).sum();
    if changes == 0 {
        return Ok(None);
    }
    let (counted, calls) = match ready.iter().any(|r| r.counted.is_some()) {
        true => (ready.iter().filter_map(|r| r.counted).sum(), format!(" ({changes} write call{})", plural(changes))),
        false => (changes, String::new()),
    };
    let whom = match ready {
        [Ready { unit: Unit { account: None, .. }, account_id, .. }] => format!("account {account_id}"),
        _ => {
            let with_changes = ready.iter().filter(|r| r.changes > 0).count();
            let others = match failed.len() {
                0 => String::new(),
                n => format!(" ({n} other{} failed)", plural(n)),
            };
            format!("{with_changes} account{}{others}", plural(with_changes))
        }
    };
    let question = format!("{verb} {counted} {what}{}{calls} {to} {whom}?", plural(counted));
    if yes || prompt::confirm(printer, &question, "--yes")? {
        return Ok(None);
    }
    printer.info("Nothing was changed.");
    let Some(fleet) = run.fleet() else { return Ok(Some(ExitStatus::ChangesPending)) };
    // Still one row per account: what was planned, and what failed (which sets the exit code).
    let mut rows: Vec<Row> =
        ready.iter().filter_map(|r| Some(Row::of_plan(r.unit.account?, r.changes, r.plan.clone()))).collect();
    rows.append(failed);
    fleet.finish(printer, command, &run.stack.name, rows, |_| ExitStatus::ChangesPending).map(Some)
}

/// Before `bootstrap` writes: the stack's own trust documents, as it would write them (hardened with `--harden`),
/// checked as `verify` checks the account's, so that a document that would lock the service it names out (a
/// condition on a key the service does not send, a Deny that matches it) is refused before it is written.
pub(crate) fn refuse_locked_out(desired: &Desired) -> Result<()> {
    let found: Vec<Option<verify::Found>> =
        desired.roles.iter().map(|r| Some(verify::Found { arn: String::new(), trust: r.trust.clone() })).collect();
    let failed: Vec<String> = verify::trust_rows(desired, &found)
        .into_iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| format!("role {}: {}", r.role, r.detail))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "the stack's trust document{} would lock out the service{} {} name{}:\n  {}",
        plural(failed.len()),
        plural(failed.len()),
        if failed.len() == 1 { "it" } else { "they" },
        if failed.len() == 1 { "s" } else { "" },
        failed.join("\n  ")
    ))
    .with_help(
        "fix the trust template (a condition on a key the service does not send never holds); nothing was written",
    ))
}
