//! `wfboot plan`: read the account and print what `bootstrap` would do. Makes no write call.

use std::time::Instant;

use serde::Serialize;

use crate::aws::AwsSettings;
use crate::cli::PlanArgs;
use crate::commands::{ExitStatus, Session};
use crate::error::Result;
use crate::output::Printer;
use crate::resources::{self, plan::Plan};
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
    let started = Instant::now();
    let (session, observed, _) = Session::open_observing(printer, aws, &args.stack, false).await?;
    let spinner = printer.spinner("checking the managed policies");
    let managed = resources::managed_policy::check_managed_policies(
        &session.clients,
        &session.desired,
        &observed,
        &Default::default(),
    )
    .await;
    spinner.finish_and_clear();
    managed?;
    let plan = resources::diff(&session.desired, &observed, session.user.as_deref());
    let calls = session.clients.calls.snapshot();
    let findings = review::review(&session.desired, session.user.as_deref());
    if printer.json() {
        printer.result_document(
            "plan",
            &PlanResult { plan: &plan, findings: &findings, hardening: session.hardening.as_deref() },
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
        started.elapsed().as_secs_f64()
    ));
    Ok(if args.detailed_exitcode && plan.has_changes() { ExitStatus::ChangesPending } else { ExitStatus::Success })
}
