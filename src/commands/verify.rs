//! `wfboot verify`: does each role of the stack work for its service? (`verify` module.) And `bootstrap --wait`'s
//! wait: the live probes until the services accept the new roles.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::{AwsSettings, Clients};
use crate::cli::VerifyArgs;
use crate::commands::{lint, plural, ExitStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;
use crate::resources::caller;
use crate::stack::{harden, Desired, Stack, Target};
use crate::verify::probes::{self, Probes, Progress};
use crate::verify::{self, Check, Row, Status};

#[derive(Debug, Serialize)]
struct Report<'a> {
    stack: &'a str,
    account_id: &'a str,
    region: &'a str,
    /// Whether the live probes ran (`--live`).
    live: bool,
    /// No check failed (unverified ones are listed, and do not fail the run).
    passed: bool,
    ok: usize,
    failed: usize,
    unverified: usize,
    /// Probe resources an earlier, interrupted run had left, deleted by this one.
    swept: Vec<String>,
    rows: &'a [Row],
    wall_seconds: f64,
}

/// Stderr progress of the probes: each thing waited for, once, with the time since the start.
struct Told<'a> {
    printer: &'a Printer,
    started: Instant,
}

impl Progress for Told<'_> {
    fn waiting(&self, what: &str) {
        self.printer.info(&format!("{what} ({:.1} s)", self.started.elapsed().as_secs_f64()));
    }
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &VerifyArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    let stack = Stack::resolve(args.stack.as_deref())?;
    lint::gate(printer, &stack, None, true, "nothing was sent to AWS")?;
    let clients = Clients::connect(aws).await?;
    let caller = caller::identify(&clients).await?;
    let target = Target {
        partition: caller.partition.clone(),
        account_id: caller.account_id.clone(),
        region: clients.region.clone(),
    };
    let mut desired = stack.render(&target)?;
    if args.harden {
        harden::harden(&mut desired)?;
    }
    let spinner = printer.spinner("reading the roles");
    let found = verify::read_roles(&clients, &desired).await;
    spinner.finish_and_clear();
    let found = found?;
    let mut rows = verify::trust_rows(&desired, &found);
    rows.extend(verify::permission_rows(&clients, &stack, &desired, &found).await);
    let mut swept = Vec::new();
    if args.live {
        let (live, s) =
            live(printer, &clients, &desired, &found, Duration::from_secs(args.propagation_timeout), started).await?;
        rows.extend(live);
        swept = s;
    }
    rows.sort_by(|a, b| {
        (desired.roles.iter().position(|r| r.name == a.role), a.check)
            .cmp(&(desired.roles.iter().position(|r| r.name == b.role), b.check))
    });
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let report = Report {
        stack: &desired.stack,
        account_id: &desired.target.account_id,
        region: &desired.target.region,
        live: args.live,
        passed: count(Status::Failed) == 0,
        ok: count(Status::Ok),
        failed: count(Status::Failed),
        unverified: count(Status::Unverified),
        swept,
        rows: &rows,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    if printer.json() {
        printer.result_document("verify", &report);
    } else {
        printer.result(&text(&report));
    }
    Ok(if report.passed { ExitStatus::Success } else { ExitStatus::VerifyFailed })
}

/// The sweep of earlier leftovers, then the probes; on Ctrl-C the probes stop, their resources are deleted and the
/// run ends as interrupted.
pub(crate) async fn live(
    printer: &Printer,
    clients: &Clients,
    desired: &Desired,
    found: &[Option<verify::Found>],
    timeout: Duration,
    started: Instant,
) -> Result<(Vec<Row>, Vec<String>)> {
    let swept = probes::sweep(clients, desired).await.map_err(|e| {
        Error::aws(format!("cannot clear the probe resources of an earlier run: {e}"))
            .with_help("delete them by hand (their names start with wfboot-verify-) or check the caller's permissions")
    })?;
    if !swept.is_empty() {
        printer.info(&format!("deleted what an earlier run's probes left: {}", swept.join(", ")));
    }
    let told = Told { printer, started };
    let probes = Probes { clients, desired, found, timeout, progress: &told };
    let spinner = printer.spinner("asking the services to accept the roles");
    let rows = tokio::select! {
        rows = probes.run() => rows,
        _ = tokio::signal::ctrl_c() => {
            spinner.finish_and_clear();
            eprintln!("\ninterrupted: deleting the probe resources");
            // A create still in flight may land after this sweep: the next run's sweep removes it.
            let left = probes::sweep(clients, desired).await;
            let mut err = Error::new(ErrorKind::Interrupted, "interrupted during the live probes");
            err.help = Some(match left {
                Ok(_) => "the probe resources were deleted; run `wfboot verify --live` again".into(),
                Err(e) => format!("{e}; the next `wfboot verify --live` deletes what is left"),
            });
            return Err(err);
        }
    };
    spinner.finish_and_clear();
    Ok((rows, swept))
}

/// `bootstrap --wait`: the live probes, each retried until its service accepts its role or `timeout` passes.
/// `Ok` with the rows when every probe passed (unverified ones aside); an error naming the failures otherwise.
pub(crate) async fn wait_usable(
    printer: &Printer,
    clients: &Clients,
    desired: &Desired,
    timeout: Duration,
    started: Instant,
) -> Result<Vec<Row>> {
    printer.info("waiting until the services accept the new roles (--wait)");
    let found = verify::read_roles(clients, desired).await?;
    let (rows, _) = live(printer, clients, desired, &found, timeout, started).await?;
    let failed: Vec<String> =
        rows.iter().filter(|r| r.status == Status::Failed).map(|r| format!("{}: {}", r.role, r.detail)).collect();
    if !failed.is_empty() {
        return Err(Error::new(
            ErrorKind::VerifyFailed,
            format!(
                "the roles were applied, but {} probe{} did not pass within {} s:\n  {}",
                failed.len(),
                plural(failed.len()),
                timeout.as_secs(),
                failed.join("\n  ")
            ),
        )
        .with_help(
            "run `wfboot verify --live` for every check; raise --propagation-timeout if the services are slow",
        ));
    }
    Ok(rows)
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

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Failed => "FAILED",
        Status::Unverified => "unverified",
    }
}

fn check_word(c: Check) -> &'static str {
    match c {
        Check::Trust => "trust",
        Check::Permissions => "permissions",
        Check::Live => "live",
    }
}

fn text(r: &Report<'_>) -> String {
    let width = r.rows.iter().map(|x| x.role.len()).max().unwrap_or(4).max(4);
    let mut out = format!("Verify: stack {} in account {} ({})\n", r.stack, r.account_id, r.region);
    out += &format!("{:width$}  {:11}  {:10}  DETAIL\n", "ROLE", "CHECK", "STATUS");
    for row in r.rows {
        out += &format!(
            "{:width$}  {:11}  {:10}  {} [{}]\n",
            row.role,
            check_word(row.check),
            status_word(row.status),
            row.detail,
            row.method
        );
    }
    out += &format!(
        "{}: {} ok, {} failed, {} unverified{}; {:.2} s.",
        if r.passed { "Passed" } else { "FAILED" },
        r.ok,
        r.failed,
        r.unverified,
        if r.live { "" } else { " (without --live: the services themselves were not asked)" },
        r.wall_seconds
    );
    out
}
