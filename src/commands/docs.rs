//! `wfboot completions SHELL` and `wfboot man`: generated from the CLI definition, so they never drift.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::commands::ExitStatus;
use crate::error::{Error, Result};

pub(crate) fn completions(shell: clap_complete::Shell) -> Result<ExitStatus> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "wfboot", &mut out);
    write(&out)
}

pub(crate) fn man() -> Result<ExitStatus> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Error::aws(format!("cannot render the man page: {e}")))?;
    write(&out)
}

fn write(bytes: &[u8]) -> Result<ExitStatus> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::aws(format!("cannot write to stdout: {e}")))?;
    Ok(ExitStatus::Success)
}
