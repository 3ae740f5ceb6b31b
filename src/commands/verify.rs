//! `wfboot verify`: does each role of the stack work for its service (`verify` module), in one account or in each
//! account of `--accounts`?
use std::time::Duration;

use serde::Serialize;

use crate::aws::AwsSettings;
use crate::cli::{StackArgs, VerifyArgs};
use crate::commands::ExitStatus;
use crate::error::Result;
use crate::output::Printer;
use crate::pipeline::fleet::{Row as AccountRow, RowStatus};
use crate::pipeline::stackset::{self, OrgUnits};
use crate::pipeline::{wait, Run, Unit};
use crate::verify::{self, Check, Row, Status};

#[derive(Debug, Serialize)]
struct Report {
    stack: String,
    account_id: String,
    region: String,
    /// Whether the live probes ran (`--live`).
    live: bool,
    /// No check failed (unverified ones are listed, and do not fail the run).
    passed: bool,
    ok: usize,
    failed: usize,
    unverified: usize,
    /// Checks that pass at a risk (an instance that allows IMDSv1): said, never a failure.
    warnings: usize,
    /// Probe resources an earlier, interrupted run had left, deleted by this one.
    swept: Vec<String>,
    rows: Vec<Row>,
    wall_seconds: f64,
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &VerifyArgs) -> Result<ExitStatus> {
    let stack_args = StackArgs {
        stack: args.stack.clone(),
        user_name: None,
        skip_user: true,
        harden: args.harden,
        permissions_boundary: None,
        tags: Vec::new(),
        expect_account: Vec::new(),
    };
    let run = Run::open(printer, aws, &stack_args, Some(&args.accounts)).await?;
    if let Some(org) = run.org_units() {
        return org_units(printer, &run, org, args).await;
    }
    let worker = printer.for_worker();
    let verified = run
        .each(run.units(printer, &worker), |unit| {
            let run = &run;
            async move { (unit, verify_one(run, unit, args).await) }
        })
        .await;
    let status = |passed: bool| if passed { ExitStatus::Success } else { ExitStatus::VerifyFailed };
    let Some(fleet) = run.fleet() else {
        let Some((_, result)) = verified.into_iter().next() else { return Ok(ExitStatus::Success) };
        let report = result?;
        if printer.json() {
            printer.result_document("verify", &report);
        } else {
            printer.result(&text(&report));
        }
        return Ok(status(report.passed));
    };
    let mut rows = Vec::new();
    for (unit, result) in verified {
        let Some(account) = unit.account else { continue };
        rows.push(match result {
            Ok(report) => {
                let word = if report.passed { "passed" } else { "verify failed" };
                printer.info(&format!("{}{word}", unit.prefix()));
                if !printer.json() && !report.passed {
                    printer.result(&format!("{}\n", text(&report)));
                }
                let mut row =
                    AccountRow::new(account, if report.passed { RowStatus::Passed } else { RowStatus::CheckFailed });
                row.result = serde_json::to_value(&report).ok();
                row
            }
            Err(e) => AccountRow::failed(printer, account, &e),
        });
    }
    fleet.finish(printer, "verify", &run.stack.name, rows, |rows| {
        status(rows.iter().all(|r| r.status == RowStatus::Passed))
    })
}

/// `--org-unit`: each account's stack instance (CloudFormation's status and reason) and, where the account is
/// readable, the same checks as `verify` in one account (trust, permissions, `--live`).
async fn org_units(printer: &Printer, run: &Run, org: &OrgUnits, args: &VerifyArgs) -> Result<ExitStatus> {
    let worker = printer.for_worker();
    let checks = run.each(run.units(printer, &worker), |unit| async move {
        let id = unit.account.map(|a| a.id.clone()).unwrap_or_default();
        (id, verify_one(run, unit, args).await)
    });
    let (state, checks) = tokio::join!(stackset::read_set(org, printer), checks);
    let state = state?;
    let mut checks: std::collections::BTreeMap<String, Result<Report>> = checks.into_iter().collect();
    let mut rows = Vec::new();
    for m in &org.found.members {
        let account = crate::account_list::Account { id: m.id.clone(), name: m.name.clone() };
        if m.id == org.found.management {
            printer.info(&format!(
                "account {}: the management account, which a service-managed StackSet never deploys to (`wfboot                  verify` run there checks it)",
                m.id
            ));
            continue;
        }
        let instance = state.instances.iter().find(|i| i.account == m.id);
        let mut row = AccountRow::new(&account, RowStatus::CheckFailed);
        row.stack_instance = serde_json::to_value(stackset::InstanceOf { account_id: &m.id, instance }).ok();
        match (instance, checks.remove(&m.id)) {
            (None, _) => row.note = Some(format!("no stack instance of {}", org.name())),
            (Some(i), _) if i.failed() || i.status != "CURRENT" => {
                row.note = Some(format!("stack instance {}", i.describe()))
            }
            (Some(_), None) => {
                row.status = RowStatus::Passed;
                row.note = Some("stack instance CURRENT; the account was not read (its roles were not checked)".into());
            }
            (Some(_), Some(Ok(report))) => {
                if report.passed {
                    row.status = RowStatus::Passed;
                } else {
                    row.note =
                        Some(format!("{} check{} failed", report.failed, if report.failed == 1 { "" } else { "s" }));
                    if !printer.json() {
                        printer.result(&format!("{}\n", text(&report)));
                    }
                }
                row.result = serde_json::to_value(&report).ok();
            }
            (Some(_), Some(Err(e))) => row = AccountRow::failed(printer, &account, &e),
        }
        let word = match row.status {
            RowStatus::Passed => "passed",
            RowStatus::Failed => "failed",
            _ => "verify failed",
        };
        printer.info(&format!(
            "account {}: {word}{}",
            m.id,
            row.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
        ));
        rows.push(row);
    }
    let result =
        serde_json::json!({"name": org.name(), "region": org.fleet.clients.region, "instances": state.instances});
    org.fleet.finish_with(printer, "verify", &run.stack.name, rows, Some(result), |rows| {
        match rows.iter().all(|r| r.status == RowStatus::Passed) {
            true => ExitStatus::Success,
            false => ExitStatus::VerifyFailed,
        }
    })
}

/// One account's checks: its caller, the stack rendered for it, its roles read, their trust and permissions
/// checked and, with `--live`, the services asked.
async fn verify_one(run: &Run, unit: Unit<'_>, args: &VerifyArgs) -> Result<Report> {
    let session = run.session(unit).await?;
    let (clients, desired) = (&session.clients, &session.desired);
    let spinner = unit.printer.spinner("reading the roles");
    let found = verify::read_roles(clients, desired).await;
    spinner.finish_and_clear();
    let found = found?;
    let mut rows = verify::trust_rows(desired, &found);
    let (permissions, instances) = tokio::join!(
        verify::permission_rows(clients, &run.stack, desired, &found),
        verify::instance_rows(clients, desired)
    );
    rows.extend(permissions);
    rows.extend(instances);
    let mut swept = Vec::new();
    if args.live {
        let timeout = Duration::from_secs(args.propagation_timeout);
        let how = wait::How {
            found: Some(&found),
            timeout,
            started: run.started,
            gate: &crate::verify::probes::Open,
            only: &[],
            prefix: &unit.prefix(),
        };
        let (probed, unprobed, s) = wait::live(unit.printer, clients, desired, how).await?;
        rows.extend(unprobed.into_iter().map(|(_, r)| r));
        rows.extend(probed.into_iter().map(|p| p.row));
        swept = s;
    }
    rows.sort_by(|a, b| {
        (desired.roles.iter().position(|r| r.name == a.role), a.check)
            .cmp(&(desired.roles.iter().position(|r| r.name == b.role), b.check))
    });
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    Ok(Report {
        stack: desired.stack.clone(),
        account_id: desired.target.account_id.clone(),
        region: desired.target.region.clone(),
        live: args.live,
        passed: count(Status::Failed) == 0,
        ok: count(Status::Ok),
        failed: count(Status::Failed),
        unverified: count(Status::Unverified),
        warnings: count(Status::Warning),
        swept,
        wall_seconds: run.started.elapsed().as_secs_f64(),
        rows,
    })
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Failed => "FAILED",
        Status::Unverified => "unverified",
        Status::Warning => "warning",
    }
}

fn check_word(c: Check) -> &'static str {
    match c {
        Check::Trust => "trust",
        Check::Permissions => "permissions",
        Check::Live => "live",
        Check::Instance => "instance",
    }
}

fn text(r: &Report) -> String {
    let width = r.rows.iter().map(|x| x.role.len()).max().unwrap_or(4).max(4);
    let mut out = format!("Verify: stack {} in account {} ({})\n", r.stack, r.account_id, r.region);
    out += &format!("{:width$}  {:11}  {:10}  DETAIL\n", "ROLE", "CHECK", "STATUS");
    for row in &r.rows {
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
        "{}: {} ok, {} failed, {} unverified{}{}; {:.2} s.",
        if r.passed { "Passed" } else { "FAILED" },
        r.ok,
        r.failed,
        r.unverified,
        if r.warnings > 0 {
            format!(", {} warning{}", r.warnings, crate::wording::plural(r.warnings))
        } else {
            String::new()
        },
        if r.live { "" } else { " (without --live: the services themselves were not asked)" },
        r.wall_seconds
    );
    out
}
