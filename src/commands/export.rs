//! `wfboot export`: print a stack as a template for another deployment tool. Offline: no AWS call.

use clap::{Args, ValueEnum};

use crate::commands::ExitStatus;
use crate::error::Result;
use crate::export;
use crate::output::Printer;
use crate::stack::Stack;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// A CloudFormation template (JSON), e.g. for StackSets
    #[value(name = "cloudformation")]
    CloudFormation,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Template format
    #[arg(long, value_enum, default_value_t = ExportFormat::CloudFormation)]
    pub(crate) format: ExportFormat,
    /// Built-in stack name or path to a stack .toml file
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) stack: Option<String>,
    /// Add confused-deputy conditions (aws:SourceAccount, aws:SourceArn) to service-role trust documents, for
    /// the services that support them
    #[arg(long)]
    pub(crate) harden: bool,
}

/// Prints the template as JSON whatever `--output` says: a template has no text form.
pub(crate) fn run(printer: &Printer, args: &ExportArgs) -> Result<ExitStatus> {
    let stack = Stack::resolve(args.stack.as_deref())?;
    crate::commands::lint::gate(printer, &stack, None, true, "no template was printed")?;
    let template = match args.format {
        ExportFormat::CloudFormation => export::cloudformation(&stack, args.harden)?,
    };
    printer.result_json(&template);
    printer.info(&format!(
        "CloudFormation template for stack {}: deploy it with the capability CAPABILITY_NAMED_IAM{}",
        stack.name,
        if stack.service_linked_roles.is_empty() {
            String::new()
        } else {
            format!(", and {}=false in accounts that already have the service-linked roles", export::SLR_PARAMETER)
        }
    ));
    Ok(ExitStatus::Success)
}
