//! `wfboot plan`: read the account and print what `bootstrap` would do. Makes no write call.

use std::time::Instant;

use crate::aws::AwsSettings;
use crate::cli::PlanArgs;
use crate::commands::{ExitStatus, Session};
use crate::engine;
use crate::error::Result;
use crate::output::Printer;

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &PlanArgs) -> Result<ExitStatus> {
    if args.accounts.accounts.is_some() {
        return crate::commands::accounts::plan(printer, aws, args).await;
    }
    let started = Instant::now();
    let session = Session::open(printer, aws, &args.stack).await?;
    let spinner = printer.spinner("reading the account");
    let plan = engine::plan(&session.clients, &session.desired, session.user.as_deref()).await;
    spinner.finish_and_clear();
    let plan = plan?;
    let calls = session.clients.calls.snapshot();
    if printer.json() {
        printer.result_json(&plan);
    } else {
        printer.result(&plan.to_string());
    }
    printer.info(&format!(
        "{} API calls ({} writes) in {:.2} s",
        calls.calls.len(),
        calls.writes(),
        started.elapsed().as_secs_f64()
    ));
    Ok(if args.detailed_exitcode && plan.has_changes() { ExitStatus::ChangesPending } else { ExitStatus::Success })
}
