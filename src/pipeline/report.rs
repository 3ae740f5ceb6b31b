//! What `bootstrap` and `destroy` report alike: the tally of their changes' outcomes and of the run's cost,
//! the interrupted error, and how waiting is told.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::CallStats;
use crate::engine::apply::{AppliedChange, Outcome, Waits};
use crate::error::{Error, ErrorKind};

/// The part of a run's summary every applying command has, counted from what happened to each change.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Tally {
    pub(crate) writes_done: usize,
    pub(crate) already_done: usize,
    /// Changes held back for consent (`bootstrap` only: `destroy` needs none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) held: Option<usize>,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    /// Write calls sent again after an error AWS answers while it catches up (ConcurrentModification,
    /// NoSuchEntity right after a create, DeleteConflict right after this run removed the link, ...).
    pub(crate) retries: usize,
    /// Wall time spent waiting for AWS: backoff before those retries, and reading back until IAM shows what
    /// this run wrote.
    pub(crate) waited_seconds: f64,
    pub(crate) api_calls: usize,
    pub(crate) api_writes: usize,
    pub(crate) http_attempts: usize,
    pub(crate) wall_seconds: f64,
}

impl Tally {
    /// `consent`: the run's changes may be held back for consent, so the held ones are counted.
    pub(crate) fn of(
        applied: &[AppliedChange],
        calls: &CallStats,
        waits: &Waits,
        started: Instant,
        consent: bool,
    ) -> Tally {
        let count = |f: &dyn Fn(&Outcome) -> bool| applied.iter().filter(|a| f(&a.outcome)).count();
        Tally {
            writes_done: count(&|o| matches!(o, Outcome::Done)),
            already_done: count(&|o| matches!(o, Outcome::AlreadyDone)),
            held: consent.then(|| count(&|o| matches!(o, Outcome::Held))),
            failed: count(&|o| matches!(o, Outcome::Failed { .. })),
            skipped: count(&|o| matches!(o, Outcome::Skipped { .. })),
            retries: waits.retries(),
            waited_seconds: seconds(waits.waited()),
            api_calls: calls.calls.len(),
            api_writes: calls.writes(),
            http_attempts: calls.attempts,
            wall_seconds: seconds(started.elapsed()),
        }
    }

    pub(crate) fn held(&self) -> usize {
        self.held.unwrap_or(0)
    }

    /// ", N already done by someone else" for a summary line, or nothing.
    pub(crate) fn already_done_text(&self) -> String {
        match self.already_done {
            0 => String::new(),
            n => format!(", {n} already done by someone else"),
        }
    }
}

/// Ctrl-C stopped the run after `done` of `planned` changes; `rest` says what a re-run does ("complete the rest").
pub(crate) fn interrupted(done: usize, planned: usize, rest: &str) -> Error {
    Error::new(ErrorKind::Interrupted, format!("interrupted after {done} of {planned} changes"))
        .with_help(format!("run the same command again to {rest}"))
}

/// "; 6 retries, 2.1 s waiting for AWS" when the run waited, empty otherwise.
pub(crate) fn waits_text(retries: usize, waited_seconds: f64) -> String {
    if retries == 0 && waited_seconds == 0.0 {
        return String::new();
    }
    format!("; {retries} retr{}, {waited_seconds:.1} s waiting for AWS", if retries == 1 { "y" } else { "ies" })
}

/// Seconds, to the millisecond.
pub(crate) fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
