//! `wfboot lint`: validate stacks offline, as IAM validates them, and report every finding at once (for CI).
//! Also the gate that `plan`, `bootstrap`, `check` and `export` pass before anything else: an error stops the
//! command before its first AWS call; warnings are printed on stderr and do not stop it (suggestions, and what the
//! stack keeps on purpose, only `lint` shows).

use serde::Serialize;

use crate::cli::LintArgs;
use crate::commands::{plural, ExitStatus};
use crate::error::Result;
use crate::output::Printer;
use crate::stack::Stack;
use crate::validate::{self, Finding, Options, Severity};

#[derive(Debug, Serialize)]
struct StackReport {
    /// The stack's name, when the file could be read as a stack.
    name: Option<String>,
    /// "built-in" or the file.
    source: String,
    errors: usize,
    warnings: usize,
    suggestions: usize,
    /// Warnings and suggestions the stack keeps on purpose (`[[keep]]`), each with its reason.
    kept: usize,
    findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
struct Report {
    stacks: Vec<StackReport>,
    errors: usize,
    warnings: usize,
    suggestions: usize,
    kept: usize,
    /// The table actions and condition keys were checked against.
    iam_data: &'static str,
}

pub(crate) fn run(printer: &Printer, args: &LintArgs) -> Result<ExitStatus> {
    let opts = Options {
        partition: args.partition.clone(),
        account_id: args.account_id.clone(),
        role_policy_quota: Some(args.role_policy_quota as usize),
    };
    let specs: Vec<Option<&str>> =
        if args.stack.is_empty() { vec![None] } else { args.stack.iter().map(|s| Some(s.as_str())).collect() };
    let mut stacks = Vec::new();
    for spec in specs {
        let (source, stack, problems) = Stack::resolve_for_lint(spec)?;
        let findings = validate::lint(&source, stack.as_ref(), &problems, &opts);
        stacks.push(StackReport {
            name: stack.map(|s| s.name),
            source,
            errors: validate::count(&findings, Severity::Error),
            warnings: validate::count(&findings, Severity::Warning),
            suggestions: validate::count(&findings, Severity::Suggestion),
            kept: validate::kept(&findings),
            findings,
        });
    }
    let report = Report {
        errors: stacks.iter().map(|s| s.errors).sum(),
        warnings: stacks.iter().map(|s| s.warnings).sum(),
        suggestions: stacks.iter().map(|s| s.suggestions).sum(),
        kept: stacks.iter().map(|s| s.kept).sum(),
        stacks,
        iam_data: validate::actions::table().source,
    };
    if printer.json() {
        printer.result_document("lint", &report);
    } else {
        let mut out = String::new();
        for s in &report.stacks {
            for f in &s.findings {
                out += &format!("{f}\n");
            }
            let what = validate::stack_label(&s.source, s.name.as_deref());
            let kept = match s.kept {
                0 => String::new(),
                k => format!("{k} kept by the stack"),
            };
            out += &match (s.errors, s.warnings, s.suggestions) {
                (0, 0, 0) if kept.is_empty() => format!("{what}: clean\n"),
                (0, 0, 0) => format!("{what}: clean ({kept})\n"),
                (e, w, n) => {
                    let mut line = format!("{what}: {e} error{}, {w} warning{}", plural(e), plural(w));
                    if n > 0 {
                        line += &format!(", {n} suggestion{}", plural(n));
                    }
                    if !kept.is_empty() {
                        line += &format!(", {kept}");
                    }
                    line + "\n"
                }
            };
        }
        printer.result(&out);
    }
    Ok(if report.errors > 0 || (args.deny_warnings && report.warnings > 0) {
        ExitStatus::LintFailed
    } else {
        ExitStatus::Success
    })
}
