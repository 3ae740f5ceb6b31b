//! The one printer: stdout carries the result (text or JSON); progress, prompts and logs go to stderr.
//! Progress is shown only on a terminal, and never when quiet, with JSON output, or with --no-progress.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::OutputFormat;

/// Version of the JSON documents described by `docs/output.schema.json` (docs/commands.md "Global flags and
/// output"). Within a version changes are additive only: a field removed, renamed or changing type, or a value
/// changing meaning, is a new version.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// A command's JSON result: its kind and the schema version first, then the command's own fields.
#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    schema_version: u32,
    kind: &'a str,
    #[serde(flatten)]
    result: &'a T,
}

#[derive(Debug, Clone)]
pub(crate) struct Printer {
    pub(crate) format: OutputFormat,
    /// -1 quiet, 0 normal, 1.. verbose.
    pub(crate) verbosity: i8,
    progress: bool,
    /// stdin and stderr are terminals: prompts can be answered.
    pub(crate) interactive: bool,
}

impl Printer {
    pub(crate) fn new(format: OutputFormat, quiet: bool, verbose: u8, no_progress: bool) -> Printer {
        let stderr_tty = std::io::stderr().is_terminal();
        let verbosity = if quiet { -1 } else { verbose.min(3) as i8 };
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if no_color {
            console::set_colors_enabled(false);
            console::set_colors_enabled_stderr(false);
        }
        Printer {
            format,
            verbosity,
            progress: stderr_tty && !quiet && !no_progress && format == OutputFormat::Text,
            interactive: stderr_tty && std::io::stdin().is_terminal(),
        }
    }

    /// For work done for many accounts at once: no progress bars (they would overwrite each other) and no
    /// prompts (the one question is asked before the work starts).
    pub(crate) fn for_worker(&self) -> Printer {
        Printer { progress: false, interactive: false, ..self.clone() }
    }

    pub(crate) fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// The result, on stdout.
    pub(crate) fn result(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
    }

    pub(crate) fn result_json(&self, value: &impl Serialize) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => self.result(&text),
            Err(e) => self.error(&format!("cannot serialise the result: {e}")),
        }
    }

    /// A command's result as one JSON document (an object) tagged with `kind` and `schema_version`.
    pub(crate) fn result_document(&self, kind: &str, value: &impl Serialize) {
        self.result_json(&Document { schema_version: SCHEMA_VERSION, kind, result: value });
    }

    /// A status line on stderr, hidden with -q.
    pub(crate) fn info(&self, message: &str) {
        if self.verbosity >= 0 {
            eprintln!("{message}");
        }
    }

    /// Detail on stderr, shown with -v.
    pub(crate) fn detail(&self, message: &str) {
        if self.verbosity >= 1 {
            eprintln!("{message}");
        }
    }

    pub(crate) fn warn(&self, message: &str) {
        if self.verbosity >= 0 {
            eprintln!("{} {message}", console::style("warning:").yellow().bold().for_stderr());
        }
    }

    pub(crate) fn error(&self, message: &str) {
        eprintln!("{} {message}", console::style("error:").red().bold().for_stderr());
    }

    pub(crate) fn spinner(&self, message: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    pub(crate) fn bar(&self, len: u64, message: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(message.to_string());
        bar
    }
}
