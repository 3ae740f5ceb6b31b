//! Many accounts from one machine: `plan`, `check` and `bootstrap` with `--accounts FILE --assume-role-name
//! NAME` run the single-account command in every listed account, through sts:AssumeRole.
//!
//! Everything that can be checked offline (stack, accounts file, role name, external id) is checked before
//! the first AWS call. Then at most `--max-accounts` accounts are worked on at once, each with its own
//! clients and its own `--max-concurrency` bound. One account's failure never stops the others: every
//! account gets one result row, and the exit code is non-zero when any failed (docs/accounts.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use crate::account_list::{self, Account};
use crate::aws::{AssumeRole, AwsSettings, Clients};
use crate::cli::{AccountsArgs, BootstrapArgs, CheckArgs, PlanArgs, StackArgs};
use crate::commands::bootstrap::{self, Prepared};
use crate::commands::{check, plural, validated_stack, watch_interrupt, ExitStatus, Session};
use crate::engine;
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;
use crate::prompt;
use crate::resources::caller::{self, Caller, CallerKind};
use crate::resources::plan::Plan;
use crate::stack::{harden, Stack, Target};

/// The validated input of a multi-account run and the caller's own clients, which assume the roles.
struct Fleet {
    clients: Clients,
    caller: Caller,
    stack: Stack,
    accounts: Vec<Account>,
    role_name: String,
    external_id: Option<String>,
    /// The operator user to check in every account: only when given (an assumed role is not a user).
    user_name: Option<String>,
    skip_user: bool,
    /// `--harden`: the same hardening in every account.
    harden: bool,
    max_accounts: usize,
    max_concurrency: usize,
    started: Instant,
    /// The organisation as the caller sees it, read once for all accounts.
    organisation: crate::organisation::Reader,
}

/// One row of the result: an account and how its run ended.
#[derive(Debug, Serialize)]
struct Row {
    account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    status: RowStatus,
    /// Changes planned (`plan`), or write calls made (`bootstrap`); none for `check`.
    changes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The single-account command's JSON result for this account (plan, bootstrap report, check report).
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    /// `bootstrap --wait`: from the start of the run until the services accepted this account's roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    usable_after_seconds: Option<f64>,
    #[serde(skip)]
    error_kind: Option<ErrorKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum RowStatus {
    NoChanges,
    ChangesPlanned,
    Applied,
    /// Applied, but changes to resources wfboot did not create were held back (`--adopt`).
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
}

#[derive(Debug, Serialize)]
struct ResultSummary {
    accounts: usize,
    failed: usize,
    with_changes: usize,
}

impl Row {
    fn new(account: &Account, status: RowStatus) -> Row {
        Row {
            account_id: account.id.clone(),
            name: account.name.clone(),
            status,
            changes: None,
            error: None,
            result: None,
            usable_after_seconds: None,
            error_kind: None,
        }
    }

    fn failed(account: &Account, error: &Error) -> Row {
        Row { error: Some(error.message.clone()), error_kind: Some(error.kind), ..Row::new(account, RowStatus::Failed) }
    }

    fn label(&self) -> String {
        let n = self.changes.unwrap_or(0);
        match self.status {
            RowStatus::NoChanges => "no changes".into(),
            RowStatus::ChangesPlanned => format!("{n} change{} planned", plural(n)),
            RowStatus::Applied => format!("applied {n}"),
            RowStatus::HeldBack => format!("applied {n}, some held back (--adopt)"),
            RowStatus::Passed => "passed".into(),
            RowStatus::CheckFailed => "check failed".into(),
            RowStatus::Failed => "FAILED".into(),
        }
    }
}

pub(crate) async fn plan(printer: &Printer, aws: &AwsSettings, args: &PlanArgs) -> Result<ExitStatus> {
    let fleet = Fleet::open(printer, aws, &args.stack, &args.accounts).await?;
    let (fleet, worker) = (&fleet, &printer.for_worker());
    let rows = fleet
        .each(|account| async move {
            let session = fleet.session(worker, account).await?;
            let plan = engine::plan(&session.clients, &session.desired, session.user.as_deref()).await?;
            Ok((session, plan))
        })
        .await;
    let rows: Vec<Row> = rows
        .into_iter()
        .zip(&fleet.accounts)
        .map(|(result, account)| match result {
            Ok((_, plan)) => {
                show_plan(printer, account, &plan);
                plan_row(account, &plan)
            }
            Err(e) => fail(printer, account, &e),
        })
        .collect();
    fleet.finish(printer, "plan", &rows)?;
    let changes = rows.iter().any(|r| r.status == RowStatus::ChangesPlanned);
    Ok(if args.detailed_exitcode && changes { ExitStatus::ChangesPending } else { ExitStatus::Success })
}

pub(crate) async fn check(printer: &Printer, aws: &AwsSettings, args: &CheckArgs) -> Result<ExitStatus> {
    let fleet = Fleet::open(printer, aws, &args.stack, &args.accounts).await?;
    let (fleet, worker) = (&fleet, &printer.for_worker());
    let results = fleet
        .each(|account| async move {
            let session = fleet.session(worker, account).await?;
            let checked = check::checks(&session, None).await?;
            Ok((session, checked))
        })
        .await;
    let mut rows = Vec::new();
    for (result, account) in results.into_iter().zip(&fleet.accounts) {
        rows.push(match result {
            Ok((session, checked)) => {
                let status = if checked.passed { RowStatus::Passed } else { RowStatus::CheckFailed };
                printer.info(&format!("{}: {}", who(account), if checked.passed { "passed" } else { "check failed" }));
                if !printer.json() && !checked.passed {
                    printer.result(&format!("Account {}:\n{}\n", who(account), checked.table()));
                }
                Row { result: Some(checked.to_json(&session)), ..Row::new(account, status) }
            }
            Err(e) => fail(printer, account, &e),
        });
    }
    fleet.finish(printer, "check", &rows)?;
    Ok(if rows.iter().any(|r| r.status == RowStatus::CheckFailed) {
        ExitStatus::CheckFailed
    } else {
        ExitStatus::Success
    })
}

pub(crate) async fn bootstrap(printer: &Printer, aws: &AwsSettings, args: &BootstrapArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    let fleet = Fleet::open(printer, aws, &args.stack, &args.accounts).await?;
    let (fleet, worker) = (&fleet, &printer.for_worker());
    // A trust document that would lock its own service out is refused as a single-account bootstrap refuses it,
    // before any account is read: which services a role is for does not depend on the account.
    crate::commands::verify::refuse_locked_out(&fleet.rendered_for_caller()?)?;

    // 1. Read every account and run its pre-flight: nothing is written before the one question.
    let prepared = fleet
        .each(|account| async move {
            let session = fleet.session(worker, account).await?;
            let prepared = bootstrap::prepare(worker, &session, None).await?;
            if let Some(preflight) = &prepared.preflight {
                if preflight.failed() {
                    return Err(preflight.error(&session.caller));
                }
                bootstrap::report_preflight(worker, preflight, &format!("{}: ", who(account)));
            }
            Ok((session, prepared))
        })
        .await;
    let mut ready: Vec<(&Account, Session, Plan)> = Vec::new();
    let mut failed: Vec<Row> = Vec::new();
    for (result, account) in prepared.into_iter().zip(&fleet.accounts) {
        match result {
            Ok((session, Prepared { plan, .. })) => {
                show_plan(printer, account, &plan);
                ready.push((account, session, plan));
            }
            Err(e) => failed.push(fail(printer, account, &e)),
        }
    }

    // 2. One question for all accounts.
    let changes: usize = ready.iter().map(|(_, _, p)| p.summary.changes).sum();
    let with_changes = ready.iter().filter(|(_, _, p)| p.has_changes()).count();
    let needing_consent: usize = ready.iter().map(|(_, _, p)| p.summary.needing_consent).sum();
    let mut consent = true;
    if changes > 0 {
        if !args.yes {
            let question = format!(
                "Apply {changes} change{} to {with_changes} account{}{}?",
                plural(changes),
                plural(with_changes),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" ({} other{} failed)", failed.len(), plural(failed.len()))
                }
            );
            if !prompt::confirm(printer, &question, "--yes")? {
                printer.info("Nothing was changed.");
                // Still one row per account: what was planned, and what failed (which sets the exit code).
                let mut rows: Vec<Row> = ready.iter().map(|(account, _, plan)| plan_row(account, plan)).collect();
                rows.extend(failed);
                fleet.finish(printer, "bootstrap", &in_file_order(fleet, rows))?;
                return Ok(ExitStatus::ChangesPending);
            }
        }
        consent = bootstrap::consent(printer, args, needing_consent)?;
    }

    // 3. Apply, account by account in parallel (up to --max-accounts), and verify each.
    let interrupted = Arc::new(AtomicBool::new(false));
    let watcher = watch_interrupt(interrupted.clone());
    // In a pool like every other step (`in_a_pool`): `ready` is in file order, and so are the results.
    let applied = in_a_pool(ready, fleet.max_accounts, |(account, session, plan)| {
        let interrupted = interrupted.clone();
        async move {
            let opts = bootstrap::apply_options(&session, args, consent, &interrupted);
            let prefix = format!("{}: ", who(account));
            let (applied, remaining) = if plan.has_changes() {
                match bootstrap::apply_and_verify(worker, &session, &plan, &opts, &prefix).await {
                    Ok(done) => done,
                    Err(e) => return (account, Err(e)),
                }
            } else {
                (Vec::new(), None)
            };
            let mut report = bootstrap::finish_report(&session, plan, applied, remaining, &opts.waits, started);
            let mut outcome = bootstrap::outcome(&report, interrupted.load(Ordering::SeqCst));
            // `--wait`: this account's probes as soon as its own apply is through, as in a single-account run.
            if args.wait && outcome.is_ok() && !interrupted.load(Ordering::SeqCst) {
                match bootstrap::wait_usable(worker, &session, args, started).await {
                    Ok((wait, failed)) => {
                        report.wait = Some(wait);
                        if let Some(e) = failed {
                            outcome = Err(e);
                        }
                    }
                    Err(e) => return (account, Err(e)),
                }
            }
            (account, Ok((report, outcome)))
        }
    })
    .await;
    watcher.abort();

    let mut rows: Vec<Row> = Vec::new();
    for (account, result) in applied {
        rows.push(match result {
            Err(e) => fail(printer, account, &e),
            Ok((report, outcome)) => {
                let writes = report.summary.tally.writes_done;
                let mut row = match &outcome {
                    Ok(ExitStatus::ChangesPending) => Row::new(account, RowStatus::HeldBack),
                    Ok(_) if report.plan.has_changes() => Row::new(account, RowStatus::Applied),
                    Ok(_) => Row::new(account, RowStatus::NoChanges),
                    Err(e) => fail(printer, account, e),
                };
                if row.status != RowStatus::Failed {
                    let done = match report.plan.has_changes() {
                        true => bootstrap::summary_line(&report.summary),
                        false => "nothing to do".into(),
                    };
                    printer.info(&format!("{}: {done}", who(account)));
                }
                row.changes = Some(writes);
                row.usable_after_seconds = report.wait.as_ref().and_then(|w| w.usable_after_seconds);
                row.result = serde_json::to_value(&report).ok();
                row
            }
        });
    }
    rows.extend(failed);
    let rows = in_file_order(fleet, rows);
    fleet.finish(printer, "bootstrap", &rows)?;
    Ok(if rows.iter().any(|r| r.status == RowStatus::HeldBack) {
        ExitStatus::ChangesPending
    } else {
        ExitStatus::Success
    })
}

impl Fleet {
    /// Checks the flags and the accounts file before any AWS call, then identifies the caller once: its
    /// partition is the partition of every role ARN.
    async fn open(printer: &Printer, aws: &AwsSettings, stack: &StackArgs, args: &AccountsArgs) -> Result<Fleet> {
        let (Some(file), Some(role_name)) = (&args.accounts, &args.assume_role_name) else {
            return Err(Error::usage("--accounts and --assume-role-name go together"));
        };
        let started = Instant::now();
        let resolved = validated_stack(printer, stack)?;
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
            .filter_map(|a| resolved.account_refusal(&stack.expect_account, &a.id))
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
        crate::commands::lint::gate(printer, &resolved, Some(&target), false, "nothing was written")?;
        if stack.user_name.is_none() && !stack.skip_user && !resolved.user_policies.is_empty() {
            printer.warn(
                "an assumed role is not an IAM user, so no operator user's policies are checked (pass --user-name \
                 NAME to check the same user in every account)",
            );
        }
        Ok(Fleet {
            started,
            organisation: crate::organisation::Reader::new(clients.clone()),
            clients,
            caller,
            stack: resolved,
            accounts,
            role_name: role_name.clone(),
            external_id: args.external_id.clone(),
            user_name: stack.user_name.clone().filter(|_| !stack.skip_user),
            skip_user: stack.skip_user,
            harden: stack.harden,
            max_accounts: args.max_accounts as usize,
            max_concurrency: aws.max_concurrency,
        })
    }

    /// The stack as it would be written (hardened with `--harden`), rendered for the caller's own account.
    fn rendered_for_caller(&self) -> Result<crate::stack::Desired> {
        let target = Target {
            partition: self.caller.partition.clone(),
            account_id: self.caller.account_id.clone(),
            region: self.clients.region.clone(),
        };
        Ok(self.rendered(&target)?.0)
    }

    /// The stack rendered for `target`, hardened with `--harden` (and what that did).
    fn rendered(&self, target: &Target) -> Result<(crate::stack::Desired, Option<Vec<harden::Note>>)> {
        let mut desired = self.stack.render(target)?;
        let hardening = if self.harden { Some(harden::harden(&mut desired)?) } else { None };
        Ok((desired, hardening))
    }

    /// Runs `work` for every account, at most `--max-accounts` at once; the results are in file order.
    ///
    /// A pool, not waves: an account starts as soon as any other finishes (`buffer_unordered`), so one slow
    /// account (a long lag window, a slow AssumeRole) never holds back the ones after it in the file.
    async fn each<'a, T, F, Fut>(&'a self, work: F) -> Vec<Result<T>>
    where
        F: Fn(&'a Account) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + 'a,
    {
        in_a_pool(&self.accounts, self.max_accounts, work).await
    }

    /// The account's session: its role assumed, the stack rendered for it. Nothing is asked: the same
    /// `--user-name` (or none) in every account.
    async fn session(&self, printer: &Printer, account: &Account) -> Result<Session> {
        let role = AssumeRole {
            role_arn: account_list::role_arn(&self.caller.partition, &account.id, &self.role_name),
            session_name: account_list::session_name(&self.stack.name),
            external_id: self.external_id.clone(),
            trusted: self.caller.arn.clone(),
        };
        let (clients, arn) = self.clients.assume_role(&role, self.max_concurrency).await?;
        let caller = caller::parse(&account.id, &arn)?;
        printer.detail(&format!("{}: assumed {arn}", who(account)));
        let target = Target {
            partition: caller.partition.clone(),
            account_id: account.id.clone(),
            region: clients.region.clone(),
        };
        let (desired, hardening) = self.rendered(&target)?;
        let user = self.user_name.clone().filter(|_| !self.skip_user && !desired.user_policies.is_empty());
        // The organisation is read with the fleet caller's clients (the management account or a delegated
        // administrator), never the assumed role's: a member account cannot read it.
        Ok(Session { clients, caller, desired, user, hardening, organisation: self.organisation.clone() })
    }

    /// Prints the result (a table, or one JSON document) and turns failed accounts into the error that
    /// sets the exit code.
    fn finish(&self, printer: &Printer, command: &str, rows: &[Row]) -> Result<()> {
        let failed: Vec<&Row> = rows.iter().filter(|r| r.status == RowStatus::Failed).collect();
        if printer.json() {
            printer.result_document(
                "accounts",
                &Results {
                    command,
                    stack: &self.stack.name,
                    role_name: &self.role_name,
                    accounts: rows,
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
                },
            );
        } else {
            printer.result(&table(rows));
        }
        printer.info(&format!(
            "{} account{} in {:.2} s",
            rows.len(),
            plural(rows.len()),
            self.started.elapsed().as_secs_f64()
        ));
        if failed.is_empty() {
            return Ok(());
        }
        // The failures' own exit code when they agree (all pre-flight denials: 3; interrupted: 130), else 1.
        let kinds: Vec<ErrorKind> = failed.iter().filter_map(|r| r.error_kind).collect();
        let kind = if kinds.contains(&ErrorKind::Interrupted) {
            ErrorKind::Interrupted
        } else if !kinds.is_empty() && kinds.iter().all(|k| *k == ErrorKind::CheckFailed) {
            ErrorKind::CheckFailed
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

/// The account's plan summary on stderr and, as text, its plan on stdout when it has changes.
/// `work` for every item, at most `n` at once, each started as soon as a slot is free; the results in the
/// items' order.
async fn in_a_pool<I, T, F, Fut>(items: impl IntoIterator<Item = I>, n: usize, work: F) -> Vec<T>
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

fn show_plan(printer: &Printer, account: &Account, plan: &Plan) {
    printer.info(&format!("{}: {}", who(account), planned(plan)));
    if !printer.json() && plan.has_changes() {
        printer.result(&format!("{plan}\n"));
    }
}

fn plan_row(account: &Account, plan: &Plan) -> Row {
    let status = if plan.has_changes() { RowStatus::ChangesPlanned } else { RowStatus::NoChanges };
    Row { changes: Some(plan.summary.changes), result: serde_json::to_value(plan).ok(), ..Row::new(account, status) }
}

fn in_file_order(fleet: &Fleet, mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by_key(|r| fleet.accounts.iter().position(|a| a.id == r.account_id));
    rows
}

/// Reports an account's error on stderr at once (with its help line), and makes its row.
fn fail(printer: &Printer, account: &Account, error: &Error) -> Row {
    printer.error(&format!("{}: {error}", who(account)));
    Row::failed(account, error)
}

fn planned(plan: &Plan) -> String {
    match plan.summary.changes {
        0 => "no changes".into(),
        n => format!("{n} change{} planned", plural(n)),
    }
}

/// "111122223333 (prod)", or the id alone.
fn who(account: &Account) -> String {
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
            let error = r.error.as_deref().and_then(|e| e.lines().next()).unwrap_or_default();
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
    use std::time::{Duration, Instant};

    use super::in_a_pool;

    #[tokio::test]
    async fn a_slow_account_does_not_hold_back_the_ones_after_it_and_results_stay_in_file_order() {
        // Two at a time; the first item takes 600 ms, the others 50 ms each. In waves (or in order), the third
        // would start only once the first finished; in a pool it starts when the second does.
        let started = Instant::now();
        let delays = [600u64, 50, 50, 50, 50];
        let ends = in_a_pool(&delays, 2, |ms| async move {
            let begun = started.elapsed();
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            (*ms, begun)
        })
        .await;
        assert_eq!(ends.iter().map(|(ms, _)| *ms).collect::<Vec<_>>(), delays, "results in the items' order");
        for (ms, begun) in &ends[1..] {
            assert!(*begun < Duration::from_millis(400), "an item of {ms} ms began at {begun:?}, behind the slow one");
        }
    }
}
