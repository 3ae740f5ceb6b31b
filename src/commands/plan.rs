//! `wfboot plan`: read the account (or each account of `--accounts`) and print what `bootstrap` would do. Makes no
//! write call.

use serde::Serialize;

use crate::aws::AwsSettings;
use crate::cli::PlanArgs;
use crate::commands::ExitStatus;
use crate::error::Result;
use crate::output::Printer;
use crate::pipeline::fleet::{self, Row, RowStatus};
use crate::pipeline::stackset::{self, OrgUnits};
use crate::pipeline::{self, Run, Session, Unit};
use crate::resources::plan::Plan;
use crate::review::{self, Finding};
use crate::stack::harden;

/// The plan with the stack's least-privilege review and, with `--harden`, what hardening did.
#[derive(Serialize)]
struct PlanResult<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "Option::is_none")]
    hardening: Option<&'a [harden::Note]>,
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &PlanArgs) -> Result<ExitStatus> {
    let run = Run::open(printer, aws, &args.stack, Some(&args.accounts)).await?;
    if let Some(org) = run.org_units() {
        return org_units(printer, &run, org, args).await;
    }
    let worker = printer.for_worker();
    let units = run.units(printer, &worker);
    let planned = run.each(units, |unit| planned(&run, unit)).await;
    let status = |changes: bool| match args.detailed_exitcode && changes {
        true => ExitStatus::ChangesPending,
        false => ExitStatus::Success,
    };
    let Some(fleet) = run.fleet() else {
        let Some((_, result)) = planned.into_iter().next() else { return Ok(ExitStatus::Success) };
        let (session, plan) = result?;
        print_plan(printer, &run, &session, &plan);
        return Ok(status(plan.has_changes()));
    };
    let rows: Vec<Row> = planned
        .into_iter()
        .filter_map(|(unit, result)| Some((unit.account?, result)))
        .map(|(account, result)| match result {
            Ok((_, plan)) => {
                fleet::show_plan(printer, account, plan.summary.changes, || plan.to_string());
                Row::of_plan(account, plan.summary.changes, serde_json::to_value(&plan).ok())
            }
            Err(e) => Row::failed(printer, account, &e),
        })
        .collect();
    fleet.finish(printer, "plan", &run.stack.name, rows, |rows| {
        status(rows.iter().any(|r| r.status == RowStatus::ChangesPlanned))
    })
}

/// `--org-unit`: the StackSet and each account of the OUs read, planned, and the pre-flight's findings (SCPs,
/// resources CloudFormation does not own, service-linked roles that exist) shown. No write.
async fn org_units(printer: &Printer, run: &Run, org: &OrgUnits, args: &PlanArgs) -> Result<ExitStatus> {
    let (state, accounts) = stackset::read(run, org, printer, false).await?;
    let plan = stackset::plan(org, &state, &accounts);
    if !printer.json() {
        printer.result(&plan.to_string());
    }
    stackset::report(printer, &plan);
    let result = stackset::SetResult {
        name: org.name(),
        call_as: org.call_as,
        region: &plan.region,
        org_units: &plan.org_units,
        plan: &plan.stack_set,
        preflight: None,
        operations: &[],
        notes: &plan.notes,
    };
    let changes = plan.has_changes();
    let rows = stackset::plan_rows(&plan);
    org.fleet.finish_with(printer, "plan", &run.stack.name, rows, serde_json::to_value(&result).ok(), |_| {
        match args.detailed_exitcode && changes {
            true => ExitStatus::ChangesPending,
            false => ExitStatus::Success,
        }
    })
}

/// Steps 1-2 for one account: the caller, the stack read and planned.
async fn planned<'a>(run: &Run, unit: Unit<'a>) -> (Unit<'a>, Result<(Session, Plan)>) {
    let result = async {
        let (session, observed, _) = run.open_observing(unit, false).await?;
        let spinner = unit.printer.spinner("checking the managed policies");
        let planned = pipeline::plan(&session, &observed, &Default::default(), |_| async {}).await;
        spinner.finish_and_clear();
        let (plan, ()) = planned?;
        Ok((session, plan))
    };
    (unit, result.await)
}

/// One account's plan: the plan, the review and what --harden did, on stdout.
fn print_plan(printer: &Printer, run: &Run, session: &Session, plan: &Plan) {
    let calls = session.clients.calls.snapshot();
    let findings = review::review(&session.desired, session.user.as_deref());
    if printer.json() {
        printer.result_document(
            "plan",
            &PlanResult { plan, findings: &findings, hardening: session.hardening.as_deref() },
        );
    } else {
        let mut out = plan.to_string();
        if let Some(notes) = &session.hardening {
            out += &format!("\n{}", harden::text(notes, session.desired.service_linked_roles.len()));
        }
        out += &format!("\n{}", review::text(&findings));
        printer.result(&out);
    }
    printer.info(&format!(
        "{} API calls ({} writes) in {:.2} s",
        calls.calls.len(),
        calls.writes(),
        run.started.elapsed().as_secs_f64()
    ));
}
