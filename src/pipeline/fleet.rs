//! What is truly fleet-level in a run over many accounts (`--accounts FILE --assume-role-name NAME`): the accounts
//! file, the role assumed in each account, the pool that works on `--max-accounts` of them at once, and the
//! result table with one row per account. Everything else is the single-account pipeline ([`super`]).
//!
//! Everything that can be checked offline (stack, accounts file, role name, external id, allowed accounts) is
//! checked before the first AWS call. One account's failure never stops the others: every account gets one
//! result row, and the exit code is non-zero when any failed (docs/accounts.md).

use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use super::{gate, plural, ExitStatus};
use crate::account_list::{self, Account};
use crate::aws::{AssumeRole, AwsSettings, Clients};
use crate::cli::{AccountsArgs, StackArgs};
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;
use crate::resources::caller::{self, Caller, CallerKind};
use crate::stack::{Stack, Target};

/// The validated input of a multi-account run and the caller's own clients, which assume the roles.
pub(crate) struct Fleet {
    pub(crate) clients: Clients,
    pub(crate) caller: Caller,
    pub(crate) accounts: Vec<Account>,
    role_name: String,
    external_id: Option<String>,
    pub(crate) max_accounts: usize,
    max_concurrency: usize,
    started: Instant,
    /// The organisation as the fleet's caller sees it, read once for all accounts.
    pub(crate) organisation: crate::organisation::Reader,
}

/// One row of the result: an account and how its run ended.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    pub(crate) status: RowStatus,
    /// Changes planned (`plan`), write calls made (`bootstrap`, `destroy`); none for `check` and `verify`.
    pub(crate) changes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The single-account command's JSON result for this account (plan, bootstrap report, check report, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<serde_json::Value>,
    /// `bootstrap --wait`: from the start of the run until the services accepted this account's roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usable_after_seconds: Option<f64>,
    /// Why the account was held back or skipped (`--org-unit`), shown in the table's last column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
    /// `--org-unit`: the account's plan and stack instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stack_instance: Option<serde_json::Value>,
    #[serde(skip)]
    error_kind: Option<ErrorKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RowStatus {
    NoChanges,
    ChangesPlanned,
    Applied,
    /// Applied, but changes were held back: to resources wfboot did not create (`bootstrap` without `--adopt`),
    /// or resources something uses (`destroy` without `--force`).
    HeldBack,
    Passed,
    CheckFailed,
    Failed,
}

#[derive(Debug, Serialize)]
struct Results<'a> {
    command: &'a str,
    stack: &'a str,
    role_name: &'a str,
    accounts: &'a [Row],
    summary: ResultSummary,
    /// `--org-unit`: the StackSet, its plan and the operations of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    stack_set: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct ResultSummary {
    accounts: usize,
    failed: usize,
    with_changes: usize,
}

impl Row {
    pub(crate) fn new(account: &Account, status: RowStatus) -> Row {
        Row {
            account_id: account.id.clone(),
            name: account.name.clone(),
            status,
            changes: None,
            error: None,
            result: None,
            usable_after_seconds: None,
            note: None,
            stack_instance: None,
            error_kind: None,
        }
    }

    /// The account failed: `message` is its error (said on stderr by whoever calls), `kind` sets the exit code.
    pub(crate) fn fail(&mut self, message: String, kind: ErrorKind) {
        self.status = RowStatus::Failed;
        self.error = Some(message);
        self.error_kind = Some(kind);
    }

    /// A failed account's row; its error is said on stderr at once (with its help line).
    pub(crate) fn failed(printer: &Printer, account: &Account, error: &Error) -> Row {
        printer.error(&format!("{}: {error}", who(account)));
        Row { error: Some(error.message.clone()), error_kind: Some(error.kind), ..Row::new(account, RowStatus::Failed) }
    }

    /// An account's row for its plan (`plan`; `bootstrap` and `destroy` when the question is answered no).
    pub(crate) fn of_plan(account: &Account, changes: usize, result: Option<serde_json::Value>) -> Row {
        let status = if changes > 0 { RowStatus::ChangesPlanned } else { RowStatus::NoChanges };
        Row { changes: Some(changes), result, ..Row::new(account, status) }
    }

    fn label(&self) -> String {
        let n = self.changes.unwrap_or(0);
        match self.status {
            RowStatus::NoChanges => "no changes".into(),
            RowStatus::ChangesPlanned => format!("{n} change{} planned", plural(n)),
            RowStatus::Applied => format!("applied {n}"),
            RowStatus::HeldBack if n == 0 => "held back".into(),
            RowStatus::HeldBack => format!("applied {n}, some held back"),
            RowStatus::Passed => "passed".into(),
            RowStatus::CheckFailed => "check failed".into(),
            RowStatus::Failed => "FAILED".into(),
        }
    }
}

impl Fleet {
    /// The accounts of `--org-unit` OUs, read through `role_name` (`pipeline::stackset`): their ids come from
    /// Organizations, already checked.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn for_org_units(
        clients: Clients,
        caller: Caller,
        accounts: Vec<Account>,
        role_name: String,
        external_id: Option<String>,
        max_accounts: usize,
        max_concurrency: usize,
        started: Instant,
    ) -> Fleet {
        Fleet {
            started,
            organisation: crate::organisation::Reader::of_caller(clients.clone()),
            clients,
            caller,
            accounts,
            role_name,
            external_id,
            max_accounts,
            max_concurrency,
        }
    }

    pub(crate) fn role_name(&self) -> &str {
        &self.role_name
    }

    /// Checks the flags and the accounts file before any AWS call, then identifies the caller once: its
    /// partition is the partition of every role ARN.
    pub(crate) async fn open(
        printer: &Printer,
        aws: &AwsSettings,
        stack: &Stack,
        stack_args: &StackArgs,
        args: &AccountsArgs,
    ) -> Result<Fleet> {
        let (Some(file), Some(role_name)) = (&args.accounts, &args.assume_role_name) else {
            return Err(Error::usage("--accounts and --assume-role-name go together"));
        };
        let started = Instant::now();
        if !account_list::valid_role_name(role_name) {
            return Err(Error::usage(format!("--assume-role-name `{role_name}` is not a valid IAM role name"))
                .with_help("IAM role names are 1-64 letters, digits and _+=,.@- (the name only, without a path)"));
        }
        if let Some(id) = &args.external_id {
            if !account_list::valid_external_id(id) {
                return Err(Error::usage("--external-id is not a valid external id")
                    .with_help("an external id is 2-1224 letters, digits and _+=,.@:/-"));
            }
        }
        let accounts = account_list::load(file)?;
        // A listed account the stack or --expect-account does not allow refuses the whole run, before any AWS
        // call: the file is then not the one meant for this stack, and the allowed accounts alone would be a
        // partial rollout nobody asked for (one wrong line must not look like a fleet that half-succeeded).
        let refused: Vec<String> = accounts
            .iter()
            .filter_map(|a| stack.account_refusal(&stack_args.expect_account, &a.id))
            .map(|why| format!("  - {why}"))
            .collect();
        if !refused.is_empty() {
            return Err(Error::usage(format!(
                "{} of the {} accounts of {} {} not allowed; nothing was sent to AWS:\n{}",
                refused.len(),
                accounts.len(),
                file.display(),
                if refused.len() == 1 { "is" } else { "are" },
                refused.join("\n")
            ))
            .with_help("remove them from the accounts file, or change the allowed accounts (allowed_accounts, --expect-account)"));
        }

        let clients = Clients::connect(aws).await?;
        let spinner = printer.spinner("identifying the caller");
        let caller = caller::identify(&clients).await;
        spinner.finish_and_clear();
        let caller = caller?;
        printer.info(&format!(
            "Caller: {} ({}); {} account{} through the role {role_name}",
            caller.arn,
            caller.partition,
            accounts.len(),
            plural(accounts.len())
        ));
        if caller.kind == CallerKind::Root {
            printer.warn("you are using the account's root credentials; use an IAM user or role for day-to-day work");
        }
        // Every account is in the caller's partition: ARNs written for another one fail here, before any account.
        let target = Target {
            partition: caller.partition.clone(),
            account_id: caller.account_id.clone(),
            region: clients.region.clone(),
        };
        gate(printer, stack, Some(&target), false, "nothing was written")?;
        if stack_args.user_name.is_none() && !stack_args.skip_user && !stack.user_policies.is_empty() {
            printer.warn(
                "an assumed role is not an IAM user, so no operator user's policies are checked (pass --user-name \
                 NAME to check the same user in every account)",
            );
        }
        Ok(Fleet {
            started,
            organisation: crate::organisation::Reader::of_caller(clients.clone()),
            clients,
            caller,
            accounts,
            role_name: role_name.clone(),
            external_id: args.external_id.clone(),
            max_accounts: args.max_accounts as usize,
            max_concurrency: aws.max_concurrency,
        })
    }

    /// The account's clients and caller, through sts:AssumeRole on the role in it.
    pub(crate) async fn assume(
        &self,
        printer: &Printer,
        account: &Account,
        stack: &Stack,
    ) -> Result<(Clients, Caller)> {
        let role = AssumeRole {
            role_arn: account_list::role_arn(&self.caller.partition, &account.id, &self.role_name),
            session_name: account_list::session_name(&stack.name),
            external_id: self.external_id.clone(),
            trusted: self.caller.arn.clone(),
        };
        let (clients, arn) = self.clients.assume_role(&role, self.max_concurrency).await?;
        let caller = caller::parse(&account.id, &arn)?;
        printer.detail(&format!("{}: assumed {arn}", who(account)));
        Ok((clients, caller))
    }

    /// Prints the result (a table, or one JSON document) and turns failed accounts into the error that sets the
    /// exit code; `status` is the run's status when none failed.
    pub(crate) fn finish(
        &self,
        printer: &Printer,
        command: &str,
        stack: &str,
        rows: Vec<Row>,
        status: impl FnOnce(&[Row]) -> ExitStatus,
    ) -> Result<ExitStatus> {
        self.finish_with(printer, command, stack, rows, None, status)
    }

    /// [`Fleet::finish`], with what a `--org-unit` result carries beside its rows.
    pub(crate) fn finish_with(
        &self,
        printer: &Printer,
        command: &str,
        stack: &str,
        mut rows: Vec<Row>,
        stack_set: Option<serde_json::Value>,
        status: impl FnOnce(&[Row]) -> ExitStatus,
    ) -> Result<ExitStatus> {
        rows.sort_by_key(|r| self.accounts.iter().position(|a| a.id == r.account_id));
        let failed: Vec<&Row> = rows.iter().filter(|r| r.status == RowStatus::Failed).collect();
        if printer.json() {
            printer.result_document(
                "accounts",
                &Results {
                    command,
                    stack,
                    role_name: &self.role_name,
                    accounts: &rows,
                    summary: ResultSummary {
                        accounts: rows.len(),
                        failed: failed.len(),
                        with_changes: rows
                            .iter()
                            .filter(|r| {
                                matches!(r.status, RowStatus::ChangesPlanned | RowStatus::Applied | RowStatus::HeldBack)
                            })
                            .count(),
                    },
                    stack_set,
                },
            );
        } else {
            printer.result(&table(&rows));
        }
        printer.info(&format!(
            "{} account{} in {:.2} s",
            rows.len(),
            plural(rows.len()),
            self.started.elapsed().as_secs_f64()
        ));
        if failed.is_empty() {
            return Ok(status(&rows));
        }
        // The failures' own exit code when they agree (all pre-flight denials: 3; all refused stacks: 65;
        // interrupted: 130), else 1.
        let kinds: Vec<ErrorKind> = failed.iter().filter_map(|r| r.error_kind).collect();
        let kind = if kinds.contains(&ErrorKind::Interrupted) {
            ErrorKind::Interrupted
        } else if kinds.len() == failed.len() && kinds.windows(2).all(|w| w[0] == w[1]) {
            kinds.first().copied().unwrap_or(ErrorKind::Aws)
        } else {
            ErrorKind::Aws
        };
        let ids: Vec<&str> = failed.iter().map(|r| r.account_id.as_str()).collect();
        Err(Error::new(kind, format!("{} of {} accounts failed: {}", failed.len(), rows.len(), ids.join(", ")))
            .with_help(
                "the other accounts are done; fix the cause (see the errors above) and run the same command again: \
             accounts already done are not changed again",
            ))
    }
}

/// `work` for every item, at most `n` at once, each started as soon as a slot is free; the results in the
/// items' order.
///
/// A pool, not waves: an account starts as soon as any other finishes (`buffer_unordered`), so one slow
/// account (a long lag window, a slow AssumeRole) never holds back the ones after it in the file.
pub(crate) async fn in_a_pool<I, T, F, Fut>(items: impl IntoIterator<Item = I>, n: usize, work: F) -> Vec<T>
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let work = &work;
    let mut done: Vec<(usize, T)> = futures::stream::iter(items.into_iter().enumerate())
        .map(|(i, item)| async move { (i, work(item).await) })
        .buffer_unordered(n.max(1))
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, result)| result).collect()
}

/// The `--max-accounts` slots of a run that writes: an account works in one, gives it back while it only waits (for
/// IAM to show what it wrote: it has no request in flight then) and takes one again before it asks AWS again, ahead
/// of the accounts that have not started yet. So waiting accounts do not hold back the next ones, and the ones
/// under way finish first.
pub(crate) struct Slots {
    state: std::sync::Mutex<SlotState>,
}

struct SlotState {
    free: usize,
    /// Accounts under way that want their slot back (served first), and accounts waiting to start.
    resuming: std::collections::VecDeque<tokio::sync::oneshot::Sender<()>>,
    starting: std::collections::VecDeque<tokio::sync::oneshot::Sender<()>>,
}

impl Slots {
    pub(crate) fn new(n: usize) -> std::sync::Arc<Slots> {
        let state = SlotState { free: n.max(1), resuming: Default::default(), starting: Default::default() };
        std::sync::Arc::new(Slots { state: std::sync::Mutex::new(state) })
    }

    /// A slot to start an account in, after every account that waits to resume.
    pub(crate) async fn start(self: &std::sync::Arc<Self>) -> Slot {
        self.acquire(false).await;
        Slot { slots: self.clone(), held: std::sync::atomic::AtomicBool::new(true) }
    }

    async fn acquire(&self, resuming: bool) {
        let rx = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.free > 0 && (resuming || s.resuming.is_empty()) {
                s.free -= 1;
                return;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            match resuming {
                true => s.resuming.push_back(tx),
                false => s.starting.push_back(tx),
            }
            rx
        };
        // Handed over by `release` (a closed channel only if the run is going away).
        let _ = rx.await;
    }

    fn release(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let Some(next) = s.resuming.pop_front().or_else(|| s.starting.pop_front()) else {
                s.free += 1;
                return;
            };
            // Handed straight to the next account; one that stopped waiting is skipped.
            if next.send(()).is_ok() {
                return;
            }
        }
    }
}

/// An account's slot ([`Slots`]); given back when dropped.
pub(crate) struct Slot {
    slots: std::sync::Arc<Slots>,
    held: std::sync::atomic::AtomicBool,
}

impl Slot {
    /// Wait for `what` without holding the slot, and take one again after (ahead of the accounts not started).
    pub(crate) async fn idle<F: std::future::Future>(&self, what: F) -> F::Output {
        use std::sync::atomic::Ordering;
        let gave = self.held.swap(false, Ordering::SeqCst);
        if gave {
            self.slots.release();
        }
        let out = what.await;
        if gave {
            self.slots.acquire(true).await;
            self.held.store(true, Ordering::SeqCst);
        }
        out
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.held.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.slots.release();
        }
    }
}

/// An account's plan: its summary on stderr and, as text, the plan on stdout when it has changes.
pub(crate) fn show_plan(printer: &Printer, account: &Account, changes: usize, text: impl FnOnce() -> String) {
    let planned = match changes {
        0 => "no changes".into(),
        n => format!("{n} change{} planned", plural(n)),
    };
    printer.info(&format!("{}: {planned}", who(account)));
    if !printer.json() && changes > 0 {
        printer.result(&format!("{}\n", text()));
    }
}

/// "account 111122223333 (prod)", or "account 111122223333".
pub(crate) fn who(account: &Account) -> String {
    match &account.name {
        Some(name) => format!("account {} ({name})", account.id),
        None => format!("account {}", account.id),
    }
}

/// The result table: account, name, status, changes, and the first line of the error.
fn table(rows: &[Row]) -> String {
    // "USABLE AFTER" only for `bootstrap --wait`.
    let waited = rows.iter().any(|r| r.usable_after_seconds.is_some());
    let mut header = vec!["ACCOUNT", "NAME", "STATUS", "CHANGES"];
    if waited {
        header.push("USABLE AFTER");
    }
    header.push("ERROR");
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let error = r.error.as_deref().or(r.note.as_deref()).and_then(|e| e.lines().next()).unwrap_or_default();
            let error = if error.chars().count() > 120 {
                format!("{}...", error.chars().take(117).collect::<String>())
            } else {
                error.to_string()
            };
            let mut row = vec![
                r.account_id.clone(),
                r.name.clone().unwrap_or_default(),
                r.label(),
                r.changes.map_or("-".into(), |c| c.to_string()),
            ];
            if waited {
                row.push(r.usable_after_seconds.map_or("-".into(), |s| format!("{s:.1} s")));
            }
            row.push(error);
            row
        })
        .collect();
    let width = |i: usize| cells.iter().map(|c| c[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0);
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    // Left-aligned text, right-aligned figures (CHANGES, USABLE AFTER), the last column as it is.
    let line = |c: Vec<&str>| {
        let last = c.len() - 1;
        let text = c
            .iter()
            .enumerate()
            .map(|(i, cell)| match i {
                _ if i == last => cell.to_string(),
                0..=2 => format!("{cell:<w$}", w = widths[i]),
                _ => format!("{cell:>w$}", w = widths[i]),
            })
            .collect::<Vec<_>>()
            .join("  ");
        text.trim_end().to_string()
    };
    let mut out = line(header.clone());
    for c in &cells {
        out.push('\n');
        out += &line(c.iter().map(String::as_str).collect());
    }
    let failed = rows.iter().filter(|r| r.status == RowStatus::Failed).count();
    out += &format!("\n{} account{}, {failed} failed.\n", rows.len(), plural(rows.len()));
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::{in_a_pool, Slots};

    /// Yield until `done` holds, for at most 10 s (a test that would otherwise hang fails instead).
    async fn until(what: &str, done: impl Fn() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while !done() {
                tokio::task::yield_now().await;
            }
        });
        assert!(waited.await.is_ok(), "never: {what}");
    }

    #[tokio::test]
    async fn an_account_that_only_waits_lends_its_slot_and_gets_one_back_before_the_accounts_not_started() {
        // One slot. A starts and goes idle: B starts meanwhile; C waits to start. When A's wait ends while B works,
        // A gets the slot after B, before C. Each step is signalled, not timed: no order depends on the machine's
        // speed.
        let slots = Slots::new(1);
        let queued = |resuming: usize, starting: usize| {
            let s = slots.state.lock().unwrap();
            (s.resuming.len(), s.starting.len()) == (resuming, starting)
        };
        let order = std::sync::Mutex::new(Vec::new());
        let (a_idle, b_may_start) = tokio::sync::oneshot::channel::<()>();
        let (a_wait_ends, a_waits) = tokio::sync::oneshot::channel::<()>();
        let (c_go, c_may_start) = tokio::sync::oneshot::channel::<()>();
        let a = async {
            let slot = slots.start().await;
            slot.idle(async {
                a_idle.send(()).unwrap();
                a_waits.await.unwrap();
            })
            .await;
            order.lock().unwrap().push("A resumed");
        };
        let b = async {
            b_may_start.await.unwrap();
            let _slot = slots.start().await;
            order.lock().unwrap().push("B started");
            c_go.send(()).unwrap();
            until("C waits to start", || queued(0, 1)).await;
            a_wait_ends.send(()).unwrap();
            until("A waits to resume", || queued(1, 1)).await;
        };
        let c = async {
            c_may_start.await.unwrap();
            let _slot = slots.start().await;
            order.lock().unwrap().push("C started");
        };
        tokio::join!(a, b, c);
        assert_eq!(order.into_inner().unwrap(), ["B started", "A resumed", "C started"]);
    }

    #[tokio::test]
    async fn a_slow_account_does_not_hold_back_the_ones_after_it_and_results_stay_in_file_order() {
        // Two at a time; the first item lasts until every other item has begun. In waves (or in order), the third
        // would start only once the first finished, which then never happens: the wait fails after 10 s.
        let begun = AtomicUsize::new(0);
        let items = [0usize, 1, 2, 3, 4];
        let ends = in_a_pool(items, 2, |i| {
            let begun = &begun;
            async move {
                if i == 0 {
                    until("the other four items begin while the first one works", || {
                        begun.load(Ordering::SeqCst) == items.len() - 1
                    })
                    .await;
                } else {
                    begun.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
                i
            }
        })
        .await;
        assert_eq!(ends, items, "results in the items' order");
    }
}
