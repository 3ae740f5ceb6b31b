//! Step 5's `--wait`, and `verify --live`: the live probes, each retried until its service accepts its role.
//!
//! `bootstrap --wait` runs beside the apply: each service's probe begins as soon as the resources it needs (its
//! roles, the instance profile) were written and read back ([`Readiness`], told by the apply per resource), and each
//! service's time to usable is said as it comes. The run returns when the last service asked for is usable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use serde::Serialize;
use tokio::sync::watch;

use super::report::seconds;
use super::{plural, Session};
use crate::aws::Clients;
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;
use crate::resources::plan::Kind;
use crate::stack::Desired;
use crate::verify::probes::{self, Gate, Probed, Probes, Progress};
use crate::verify::{self, Row, Service, Status};

/// Stderr progress of the probes: each thing waited for once, and each service's acceptance as it comes, with the
/// time since the start of the run.
struct Told<'a> {
    printer: &'a Printer,
    started: Instant,
    /// "account 111122223333: " in a fleet.
    prefix: &'a str,
}

impl Progress for Told<'_> {
    fn waiting(&self, what: &str) {
        self.printer.info(&format!("{}{what} ({:.1} s)", self.prefix, self.started.elapsed().as_secs_f64()));
    }

    fn accepted(&self, what: &str, after: Duration) {
        self.printer.info(&format!("{}{what}: usable after {:.1} s", self.prefix, after.as_secs_f64()));
    }
}

/// What the apply has made ready for the probes so far.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// Resources written and read back (or with nothing to write), by kind and name.
    ready: BTreeSet<(Kind, String)>,
    /// Resources whose changes did not complete, with why.
    failed: BTreeMap<(Kind, String), String>,
    /// The apply has ended: nothing more will be made ready.
    done: bool,
    /// Why the run stopped (a change failed, Ctrl-C): the probes stop too.
    stopped: Option<String>,
}

/// The apply's side of `--wait`: which resources the probes need, and the signal that each is ready.
pub(crate) struct Readiness {
    needs: Vec<(Kind, String)>,
    tx: watch::Sender<Settled>,
}

impl Readiness {
    /// `needs`: the resources the probes wait for, by kind and name ([`Probes::needs`]).
    pub(crate) fn new(needs: Vec<(Kind, String)>) -> Readiness {
        Readiness { needs, tx: watch::Sender::new(Settled::default()) }
    }

    pub(crate) fn needed(&self, kind: Kind, name: &str) -> bool {
        self.needs.iter().any(|(k, n)| *k == kind && n == name)
    }

    pub(crate) fn ready(&self, kind: Kind, name: &str) {
        self.tx.send_modify(|s| {
            s.ready.insert((kind, name.to_string()));
        });
    }

    pub(crate) fn failed(&self, kind: Kind, name: &str, why: String) {
        self.tx.send_modify(|s| {
            s.failed.insert((kind, name.to_string()), why);
        });
    }

    /// The apply has ended: what the probes need and is not ready is as ready as this run makes it.
    pub(crate) fn done(&self) {
        self.tx.send_modify(|s| s.done = true);
    }

    pub(crate) fn stop(&self, why: &str) {
        self.tx.send_modify(|s| {
            s.stopped.get_or_insert_with(|| why.to_string());
        });
    }

    fn gate(&self) -> WatchGate {
        WatchGate { rx: self.tx.subscribe() }
    }
}

/// The probes' side: a probe begins once what it needs is ready.
struct WatchGate {
    rx: watch::Receiver<Settled>,
}

impl Gate for WatchGate {
    fn ready<'a>(&'a self, needs: &'a [(Kind, String)]) -> LocalBoxFuture<'a, std::result::Result<(), String>> {
        let mut rx = self.rx.clone();
        Box::pin(async move {
            loop {
                {
                    let s = rx.borrow_and_update();
                    if let Some(why) = &s.stopped {
                        return Err(why.clone());
                    }
                    if let Some(((kind, name), why)) = needs.iter().find_map(|n| s.failed.get_key_value(n)) {
                        return Err(format!("{kind} {name} was not applied: {why}"));
                    }
                    if s.done || needs.iter().all(|n| s.ready.contains(n)) {
                        return Ok(());
                    }
                }
                if rx.changed().await.is_err() {
                    // The apply is over and gone: nothing more comes.
                    return Ok(());
                }
            }
        })
    }

    fn stopped(&self) -> Option<String> {
        self.rx.borrow().stopped.clone()
    }
}

/// What `--wait`'s probes of `only` (empty: all) need written and read back, by kind and name.
pub(crate) fn needs(session: &Session, only: &[Service]) -> Vec<(Kind, String)> {
    struct Silent;
    impl Progress for Silent {
        fn waiting(&self, _: &str) {}
        fn accepted(&self, _: &str, _: Duration) {}
    }
    let probes = Probes {
        clients: &session.clients,
        desired: &session.desired,
        found: None,
        timeout: Duration::ZERO,
        progress: &Silent,
        gate: &probes::Open,
        only,
        started: Instant::now(),
    };
    probes.needs()
}

/// `--wait`: the probes, per service, until the services accepted the roles.
#[derive(Debug, Serialize)]
pub(crate) struct WaitReport {
    /// Every service asked for accepted its roles (unverified ones aside) within --propagation-timeout.
    usable: bool,
    /// From the start of the run until the last service asked for accepted its roles; absent when one did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usable_after_seconds: Option<f64>,
    /// How long the probes took, from the start of the apply to the last probe's end (its cleanup included).
    probe_seconds: f64,
    /// The services `--wait` named; empty for every service the stack serves.
    waited_for: Vec<Service>,
    /// Per service, as the probes found it.
    services: Vec<ServiceReport>,
    probes: Vec<Row>,
}

/// One service of `--wait`.
#[derive(Debug, Serialize)]
pub(crate) struct ServiceReport {
    service: Service,
    /// The roles it was asked to take.
    roles: Vec<String>,
    status: Status,
    /// From the start of the run until the service accepted the last of its roles (the answer to the request it
    /// accepted); absent when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    usable_after_seconds: Option<f64>,
    /// When what its probe needed had been written and read back, and the probe began asking.
    #[serde(skip_serializing_if = "Option::is_none")]
    probing_from_seconds: Option<f64>,
    /// When the probe knew, where that is later than `usable_after_seconds` (Batch: the compute environment
    /// created then read VALID).
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed_after_seconds: Option<f64>,
    /// The requests that asked the service to take a role.
    attempts: usize,
    /// A service with no probe of its own: the one whose probe passed its role (Spot Fleet: Batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    covered_by: Option<Service>,
    detail: String,
}

/// The live probes after applying, as `--wait` runs them beside the apply: the report, and the error when a service
/// asked for did not accept its roles (`timeout`: --propagation-timeout).
pub(crate) async fn wait_usable(
    printer: &Printer,
    session: &Session,
    only: &[Service],
    readiness: &Readiness,
    timeout: Duration,
    started: Instant,
    prefix: &str,
) -> Result<(WaitReport, Option<Error>)> {
    let names = match only {
        [] => "every service the stack serves".to_string(),
        _ => only.iter().map(|s| s.label()).collect::<Vec<_>>().join(", "),
    };
    printer.info(&format!("{prefix}--wait: each service is asked as soon as its roles are written ({names})"));
    let probing = Instant::now();
    let gate = readiness.gate();
    let how = How { found: None, timeout, started, gate: &gate, only, prefix };
    let (probed, rows, _) = live(printer, &session.clients, &session.desired, how).await?;
    let probe_seconds = seconds(probing.elapsed());
    let services = per_service(&probed, &rows, only, started);
    let failed: Vec<String> = probed
        .iter()
        .map(|p| &p.row)
        .chain(rows.iter().map(|(_, r)| r))
        .filter(|r| r.status == Status::Failed)
        .map(|r| format!("{}: {}", r.role, r.detail))
        .collect();
    let usable = failed.is_empty();
    let usable_after_seconds = match usable {
        true => Some(services.iter().filter_map(|s| s.usable_after_seconds).fold(0.0, f64::max)),
        false => None,
    };
    let mut probes: Vec<Row> = probed.into_iter().map(|p| p.row).collect();
    probes.extend(rows.into_iter().map(|(_, r)| r));
    let report =
        WaitReport { usable, usable_after_seconds, probe_seconds, waited_for: only.to_vec(), services, probes };
    if usable {
        return Ok((report, None));
    }
    let error = Error::new(
        ErrorKind::VerifyFailed,
        format!(
            "the roles were applied, but {} probe{} did not pass within {} s:\n  {}",
            failed.len(),
            plural(failed.len()),
            timeout.as_secs(),
            failed.join("\n  ")
        ),
    )
    .with_help("run `wfboot verify --live` for every check; raise --propagation-timeout if the services are slow");
    Ok((report, Some(error)))
}

/// Each service's line of the report, from its probes (and, for Spot Fleet, the Batch probe that passed its role).
fn per_service(
    probed: &[Probed],
    rows: &[(Option<Service>, Row)],
    only: &[Service],
    started: Instant,
) -> Vec<ServiceReport> {
    let at = |i: Option<Instant>| i.map(|i| seconds(i.saturating_duration_since(started)));
    let mut out = Vec::new();
    for service in Service::ALL {
        if !only.is_empty() && !only.contains(&service) {
            continue;
        }
        let own: Vec<&Probed> = probed.iter().filter(|p| p.service == service).collect();
        if !own.is_empty() {
            let failed = own.iter().find(|p| p.row.status == Status::Failed);
            let status = match (failed, own.iter().all(|p| p.row.status == Status::Ok)) {
                (Some(_), _) => Status::Failed,
                (None, true) => Status::Ok,
                (None, false) => Status::Unverified,
            };
            let latest = |f: fn(&Probed) -> Option<Instant>| match own.iter().all(|p| f(p).is_some()) {
                true => own.iter().filter_map(|p| f(p)).max(),
                false => None,
            };
            let usable = latest(|p| p.accepted);
            let confirmed = latest(|p| p.confirmed).filter(|c| usable.is_none_or(|u| *c > u));
            let detail = match failed {
                Some(p) => p.row.detail.clone(),
                None => own.iter().map(|p| p.row.detail.as_str()).collect::<Vec<_>>().join("; "),
            };
            out.push(ServiceReport {
                service,
                roles: own.iter().map(|p| p.role.clone()).collect(),
                status,
                usable_after_seconds: at(usable),
                probing_from_seconds: at(own.iter().filter_map(|p| p.began).min()),
                confirmed_after_seconds: at(confirmed),
                attempts: own.iter().map(|p| p.attempts).sum(),
                covered_by: None,
                detail,
            });
            continue;
        }
        // No probe of its own: the probes that passed its role along (Spot Fleet's, with Batch's).
        let carried: Vec<(&Probed, &String)> = probed
            .iter()
            .flat_map(|p| p.with.iter().filter(|(s, _)| *s == service).map(move |(_, role)| (p, role)))
            .collect();
        if let Some((carrier, role)) = carried.first() {
            let ok = carrier.row.status == Status::Ok;
            out.push(ServiceReport {
                service,
                roles: vec![(*role).clone()],
                status: if ok { Status::Unverified } else { Status::Failed },
                usable_after_seconds: if ok { at(carrier.accepted) } else { None },
                probing_from_seconds: at(carrier.began),
                confirmed_after_seconds: at(carrier.confirmed).filter(|_| carrier.confirmed > carrier.accepted),
                attempts: 0,
                covered_by: Some(carrier.service),
                detail: format!(
                    "no probe of its own ({} assumes its role only when it acts); the {} probe passed the role along: \
                     {}",
                    service.title(),
                    carrier.service.title(),
                    carrier.row.detail
                ),
            });
            continue;
        }
        // Nothing to probe: the rows say why (or the stack has no role for it).
        let why: Vec<&Row> = rows.iter().filter(|(s, _)| *s == Some(service)).map(|(_, r)| r).collect();
        if let Some(r) = why.first() {
            out.push(ServiceReport {
                service,
                roles: why.iter().map(|r| r.role.clone()).collect(),
                status: r.status,
                usable_after_seconds: None,
                probing_from_seconds: None,
                confirmed_after_seconds: None,
                attempts: 0,
                covered_by: None,
                detail: r.detail.clone(),
            });
        }
    }
    out
}

/// The text of a `--wait`: "Usable after 10.3 s: ..." and a line per service.
pub(crate) fn usable_text(w: &WaitReport) -> String {
    let probed = w.probes.iter().filter(|r| r.status == Status::Ok).count();
    let mut out = match w.usable_after_seconds {
        Some(s) => format!(
            "Usable after {s:.1} s: {probed} live probe{} passed ({:.1} s of probing).",
            plural(probed),
            w.probe_seconds
        ),
        None => "Not usable yet: a live probe did not pass (see above).".into(),
    };
    if w.services.is_empty() {
        return out;
    }
    let secs = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.1} s"));
    let cells: Vec<[String; 6]> = w
        .services
        .iter()
        .map(|s| {
            let status = match (s.status, s.covered_by) {
                (Status::Ok, _) => "usable".to_string(),
                (Status::Unverified, Some(by)) => format!("with the {} probe", by.label()),
                (Status::Unverified, None) => "unverified".into(),
                (Status::Failed, _) => "FAILED".into(),
                // Only `verify`'s instance rows warn; a probe never does.
                (Status::Warning, _) => "warning".into(),
            };
            [
                s.service.label().to_string(),
                s.roles.join(", "),
                status,
                secs(s.usable_after_seconds),
                secs(s.probing_from_seconds),
                if s.attempts > 0 { s.attempts.to_string() } else { "-".into() },
            ]
        })
        .collect();
    let header = ["SERVICE", "ROLES", "STATUS", "USABLE AFTER", "ASKED FROM", "TRIES"];
    let width = |i: usize| cells.iter().map(|c| c[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0);
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |c: [&str; 6]| {
        let text: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(i, cell)| match i {
                0..=2 => format!("{cell:<w$}", w = widths[i]),
                _ => format!("{cell:>w$}", w = widths[i]),
            })
            .collect();
        text.join("  ").trim_end().to_string()
    };
    out.push('\n');
    out += &line(header);
    for c in &cells {
        out.push('\n');
        out += &line([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]]);
    }
    out
}

/// How the probes of [`live`] run.
pub(crate) struct How<'a> {
    /// The roles as IAM holds them (`verify --live`), or `None` when this run wrote them.
    pub(crate) found: Option<&'a [Option<verify::Found>]>,
    pub(crate) timeout: Duration,
    pub(crate) started: Instant,
    pub(crate) gate: &'a dyn Gate,
    /// The services asked about (empty: all).
    pub(crate) only: &'a [Service],
    pub(crate) prefix: &'a str,
}

/// The sweep of earlier leftovers, then the probes (each from when its gate opens); on Ctrl-C the probes stop, their
/// resources are deleted and the run ends as interrupted. The probes' outcomes, the rows of roles no probe covers,
/// and what the sweep deleted.
pub(crate) async fn live(
    printer: &Printer,
    clients: &Clients,
    desired: &Desired,
    how: How<'_>,
) -> Result<(Vec<Probed>, Vec<(Option<Service>, Row)>, Vec<String>)> {
    let swept = probes::sweep(clients, desired, how.only).await.map_err(|e| {
        Error::aws(format!("cannot clear the probe resources of an earlier run: {e}"))
            .with_help("delete them by hand (their names start with wfboot-verify-) or check the caller's permissions")
    })?;
    if !swept.is_empty() {
        printer.info(&format!("{}deleted what an earlier run's probes left: {}", how.prefix, swept.join(", ")));
    }
    let told = Told { printer, started: how.started, prefix: how.prefix };
    let probes = Probes {
        clients,
        desired,
        found: how.found,
        timeout: how.timeout,
        progress: &told,
        gate: how.gate,
        only: how.only,
        started: how.started,
    };
    let spinner = printer.spinner("asking the services to accept the roles");
    let (probed, rows) = tokio::select! {
        out = probes.run_each() => out,
        _ = tokio::signal::ctrl_c() => {
            spinner.finish_and_clear();
            eprintln!("\ninterrupted: deleting the probe resources");
            // A create still in flight may land after this sweep: the next run's sweep removes it.
            let left = probes::sweep(clients, desired, how.only).await;
            let mut err = Error::new(ErrorKind::Interrupted, "interrupted during the live probes");
            err.help = Some(match left {
                Ok(_) => "the probe resources were deleted; run `wfboot verify --live` again".into(),
                Err(e) => format!("{e}; the next `wfboot verify --live` deletes what is left"),
            });
            return Err(err);
        }
    };
    spinner.finish_and_clear();
    Ok((probed, rows, swept))
}
