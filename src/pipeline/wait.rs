//! Step 5's `--wait`, and `verify --live`: the live probes, each retried until its service accepts its role.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::report::seconds;
use super::{plural, Session};
use crate::aws::Clients;
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;
use crate::stack::Desired;
use crate::verify::probes::{self, Probes, Progress};
use crate::verify::{self, Row, Status};

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

/// `--wait`: the probes, their report, and the error when one did not pass (`timeout`: --propagation-timeout).
pub(crate) async fn wait_usable(
    printer: &Printer,
    session: &Session,
    timeout: Duration,
    started: Instant,
) -> Result<(WaitReport, Option<Error>)> {
    let probing = Instant::now();
    let waited = until_usable(printer, &session.clients, &session.desired, timeout, started).await;
    let probe_seconds = seconds(probing.elapsed());
    Ok(match waited {
        Ok(rows) => (
            WaitReport {
                usable: true,
                usable_after_seconds: Some(seconds(started.elapsed())),
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

pub(crate) fn usable_line(w: &WaitReport) -> String {
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

/// The live probes, each retried until its service accepts its role or `timeout` passes. `Ok` with the rows when
/// every probe passed (unverified ones aside); an error naming the failures otherwise.
async fn until_usable(
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
