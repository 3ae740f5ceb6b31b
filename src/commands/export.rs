//! `wfboot export`: print a stack as a template for another deployment tool. Offline: no AWS call.

use crate::cli::{ExportArgs, ExportFormat};
use crate::commands::ExitStatus;
use crate::error::Result;
use crate::export;
use crate::output::Printer;
use crate::stack::Stack;

/// Prints the template as JSON whatever `--output` says: a template has no text form.
pub(crate) fn run(printer: &Printer, args: &ExportArgs) -> Result<ExitStatus> {
    let stack = Stack::resolve(args.stack.as_deref())?
        .with_flags(args.permissions_boundary.as_deref(), &args.tags)?
        .with_name_suffix(&args.name_suffix)?;
    crate::pipeline::gate(printer, &stack, None, true, "no template was printed")?;
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
