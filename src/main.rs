//! wfboot: bootstrap an AWS account for workflow stacks, idempotently.
//!
//! Layers, top to bottom: `cli` (flags) -> `commands` (verbs) -> `engine` (plan/apply over the resource
//! graph) -> `resources` (role, policy, instance profile, ...) -> `aws` (the one place clients are built).
//! Stacks and document templates are data (`profiles/`, `service_roles/`), loaded by `stack`.

mod account_list;
mod arn;
mod aws;
mod cli;
mod commands;
mod document;
mod engine;
mod error;
mod export;
mod organisation;
mod output;
mod pipeline;
mod policy_eval;
mod prompt;
mod resources;
mod review;
#[cfg(test)]
mod schema;
mod stack;
mod stackset;
mod validate;
mod verify;
mod wording;

#[cfg(test)]
mod architecture_tests;

use std::process::ExitCode;

use clap::Parser;

use crate::aws::AwsSettings;
use crate::cli::{Cli, Command};
use crate::error::ErrorKind;
use crate::output::Printer;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { ErrorKind::Usage.exit_code() } else { 0 });
        }
    };
    let g = &cli.global;
    let printer = Printer::new(g.output, g.quiet, g.verbose, g.no_progress);
    init_logging(g.verbose);
    let settings = AwsSettings {
        profile: g.profile.clone(),
        region: g.region.clone(),
        endpoint_url: g.endpoint_url.clone(),
        retry_attempts: g.retry_attempts,
        max_concurrency: g.max_concurrency as usize,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            printer.error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Plan(args) => commands::plan::run(&printer, &settings, args).await,
            Command::Bootstrap(args) => commands::bootstrap::run(&printer, &settings, args).await,
            Command::Check(args) => commands::check::run(&printer, &settings, args).await,
            Command::Destroy(args) => commands::destroy::run(&printer, &settings, args).await,
            Command::Stacks(args) => commands::stacks::run(&printer, &settings, args).await,
            Command::Export(args) => commands::export::run(&printer, args),
            Command::Lint(args) => commands::lint::run(&printer, args),
            Command::Verify(args) => commands::verify::run(&printer, &settings, args).await,
            #[cfg(feature = "ec2")]
            Command::Attach(args) => commands::attach::run(&printer, &settings, args).await,
            #[cfg(feature = "ec2")]
            Command::Instances(args) => commands::attach::instances(&printer, &settings, args).await,
            Command::Whoami => commands::whoami::run(&printer, &settings).await,
            Command::Completions { shell } => commands::docs::completions(*shell),
            Command::Man => commands::docs::man(),
        }
    });
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            printer.error(&e.to_string());
            ExitCode::from(e.kind.exit_code())
        }
    }
}

/// -v: info, -vv: debug (the SDK's per-call lines), -vvv: trace. Logs go to stderr.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(level).with_target(true).try_init();
}
