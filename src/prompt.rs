//! Prompts are an interface: they are asked on stderr only when a person can answer, default to the safe
//! answer, and every one has a flag for non-interactive use.

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input};

use crate::error::{Error, Result};
use crate::output::Printer;

/// Ask a yes/no question (default: no). Without a terminal, fail with the flag that answers it.
pub(crate) fn confirm(printer: &Printer, question: &str, flag: &str) -> Result<bool> {
    if !printer.interactive {
        return Err(Error::usage(format!("{question} — no terminal to ask on"))
            .with_help(format!("re-run with {flag} to answer yes without a prompt")));
    }
    Confirm::with_theme(&ColorfulTheme::default())
        .with_prompt(question)
        .default(false)
        .interact_on(&console::Term::stderr())
        .map_err(|e| Error::usage(format!("could not read the answer: {e}")))
}

/// Ask for an IAM user name, re-asking until it is valid. An empty answer means "none".
pub(crate) fn user_name(printer: &Printer, default: Option<&str>) -> Result<Option<String>> {
    let theme = ColorfulTheme::default();
    let mut input = Input::<String>::with_theme(&theme)
        .with_prompt("Operator IAM user whose policies to check (empty to skip)")
        .allow_empty(true)
        .validate_with(|s: &String| -> Result<(), String> {
            if s.is_empty() || valid_user_name(s) {
                Ok(())
            } else {
                Err("an IAM user name is 1-64 letters, digits and _+=,.@-".into())
            }
        });
    if let Some(d) = default {
        input = input.default(d.to_string());
    }
    if !printer.interactive {
        return Err(Error::usage("no terminal to ask for the operator user on")
            .with_help("pass --user-name NAME or --skip-user"));
    }
    let answer = input
        .interact_text_on(&console::Term::stderr())
        .map_err(|e| Error::usage(format!("could not read the answer: {e}")))?;
    Ok(Some(answer).filter(|a| !a.is_empty()))
}

pub(crate) fn valid_user_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}
