//! `wfboot stacks`: the built-in stacks, and one stack rendered for an account.

use serde::Serialize;

use crate::aws::{AwsSettings, Clients};
use crate::cli::{ShowArgs, StacksArgs, StacksCommand};
use crate::commands::ExitStatus;
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::resources::caller;
use crate::stack::{builtin, harden, Desired, Stack, Target};

#[derive(Serialize)]
struct StackSummary {
    name: String,
    default: bool,
    description: String,
    roles: usize,
    policies: usize,
    instance_profiles: usize,
    service_linked_roles: usize,
}

/// A rendered stack and, with `--harden`, what hardening did to its trust documents.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    desired: &'a Desired,
    #[serde(skip_serializing_if = "Option::is_none")]
    hardening: Option<&'a [harden::Note]>,
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings, args: &StacksArgs) -> Result<ExitStatus> {
    match &args.command {
        None | Some(StacksCommand::List) => list(printer),
        Some(StacksCommand::Show(show_args)) => show(printer, aws, show_args).await,
    }
}

fn list(printer: &Printer) -> Result<ExitStatus> {
    let mut rows = Vec::new();
    for name in builtin::names() {
        let s = Stack::resolve(Some(name))?;
        rows.push(StackSummary {
            default: name == builtin::DEFAULT_STACK,
            name: s.name,
            description: s.description,
            roles: s.roles.len(),
            policies: s.policies.len(),
            instance_profiles: s.instance_profiles.len(),
            service_linked_roles: s.service_linked_roles.len(),
        });
    }
    if printer.json() {
        printer.result_json(&rows);
    } else {
        let mut out = String::new();
        for r in &rows {
            out += &format!(
                "{:<16} {}{}\n{:<16} {} roles, {} policies, {} instance profiles, {} service-linked roles\n",
                r.name,
                r.description,
                if r.default { " (default)" } else { "" },
                "",
                r.roles,
                r.policies,
                r.instance_profiles,
                r.service_linked_roles
            );
        }
        printer.result(&out);
    }
    Ok(ExitStatus::Success)
}

async fn show(printer: &Printer, aws: &AwsSettings, args: &ShowArgs) -> Result<ExitStatus> {
    let stack = Stack::resolve(Some(&args.stack))?;
    let target = match &args.account_id {
        Some(id) => {
            if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::usage(format!("--account-id `{id}` is not a 12-digit AWS account id")));
            }
            let region =
                aws.region.clone().unwrap_or_else(|| crate::stack::partitions::iam_region(&args.partition).to_string());
            Target { partition: args.partition.clone(), account_id: id.clone(), region }
        }
        None => {
            let clients = Clients::connect(aws).await?;
            let caller = caller::identify(&clients).await.map_err(|e| {
                let help = format!(
                    "{} (or render offline with --account-id 123456789012)",
                    e.help.clone().unwrap_or_default()
                );
                e.with_help(help)
            })?;
            Target { partition: caller.partition, account_id: caller.account_id, region: clients.region.clone() }
        }
    };
    let mut desired = stack.render(&target)?;
    let hardening = if args.harden { Some(harden::harden(&mut desired)?) } else { None };
    if printer.json() {
        printer.result_document("stack", &Shown { desired: &desired, hardening: hardening.as_deref() });
    } else {
        let mut out = render_text(&stack, &desired);
        if let Some(notes) = &hardening {
            out += &format!("\n{}", harden::text(notes, desired.service_linked_roles.len()));
        }
        printer.result(&out);
    }
    Ok(ExitStatus::Success)
}

fn render_text(stack: &Stack, d: &crate::stack::Desired) -> String {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default().replace('\n', "\n    ");
    let mut out = format!(
        "Stack {} ({})\n{}\nRendered for account {} ({}, {})\n",
        stack.name, stack.source, stack.description, d.target.account_id, d.target.partition, d.target.region
    );
    if !d.user_policies.is_empty() {
        out += "\nOperator user needs:\n";
        for arn in &d.user_policies {
            out += &format!("  {arn}\n");
        }
    }
    for p in &d.policies {
        out += &format!(
            "\npolicy {} ({})\n  {}\n  document:\n    {}\n",
            p.name,
            p.arn,
            p.description,
            pretty(&p.document)
        );
    }
    for r in &d.roles {
        out += &format!(
            "\nrole {} (path {})\n  {}\n  trust:\n    {}\n  policies:\n",
            r.name,
            r.path,
            r.description,
            pretty(&r.trust)
        );
        for arn in &r.policy_arns {
            out += &format!("    {arn}\n");
        }
    }
    for p in &d.instance_profiles {
        out += &format!("\ninstance profile {} (path {}) holding role {}\n", p.name, p.path, p.role);
    }
    for s in &d.service_linked_roles {
        out += &format!("\nservice-linked role for {s}\n");
    }
    out
}
