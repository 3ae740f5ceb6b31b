//! The calls of an advisory check: a check whose failure leaves a row "unverified" and the run going on (the
//! policy simulation, the organisation's SCP reads). Such a call is not worth holding a run up for: its AWS
//! failures are retried here on a short leash instead of by the SDK's standard retry (10 attempts with backoff
//! to 8 s), and the check it belongs to stops at its first call that still fails ([`send`]), so one broken API
//! costs a run one failed call and one retry, not 22 × 10 attempts.
//!
//! - Throttling is a rate signal, not a broken API: it keeps `--retry-attempts` with the run's backoff.
//! - A server error (5xx), a broken connection or a timed-out attempt is sent once more after
//!   [`SECOND_ATTEMPT_AFTER`] (one transient blip is forgiven) by one call of the check at a time ([`Breaker`]),
//!   then the call fails and, with it, the check: its other calls are not retried (each one not yet sent goes out
//!   once), and its caller says why in the row.
//! - Anything else (refused, not implemented) is the answer: no retry.
//!
//! The client a call goes through must not retry by itself ([`once`]).

use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;

use crate::aws::errors::{self, Transient};
use crate::aws::{Clients, RETRY_INITIAL_BACKOFF, RETRY_MAX_BACKOFF};
use crate::resources::write::jittered;

/// Attempts of an advisory call that meets a server error or a broken connection: the first and one retry.
pub(crate) const ATTEMPTS: u32 = 2;

/// The pause before that retry (jittered to half of it and more).
pub(crate) const SECOND_ATTEMPT_AFTER: Duration = Duration::from_millis(200);

/// The run's IAM client without the SDK's own retries (the endpoint, credentials, timeouts, call log and retry
/// partition are the run's): [`send`] retries instead.
pub(crate) fn iam_once(clients: &Clients) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::from_conf(clients.iam.config().to_builder().retry_config(RetryConfig::disabled()).build())
}

/// [`iam_once`] for Organizations.
pub(crate) fn organizations_once(clients: &Clients) -> aws_sdk_organizations::Client {
    aws_sdk_organizations::Client::from_conf(
        clients.organizations.config().to_builder().retry_config(RetryConfig::disabled()).build(),
    )
}

/// One advisory check's breaker, shared by its calls (the simulation's one per request context go out at once).
/// The first call that meets a server error or a broken connection retries alone; the check's other calls that
/// meet one wait for that retry: if it is answered they are sent again, if it fails too the check has failed and
/// they are not sent again.
#[derive(Default)]
pub(crate) struct Breaker {
    state: std::sync::Mutex<State>,
    changed: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Closed,
    /// One call is retrying: the others wait for its outcome.
    Probing,
    Open,
}

impl Breaker {
    fn state(&self) -> State {
        self.state.lock().map(|s| *s).unwrap_or(State::Open)
    }

    fn set(&self, state: State) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
        self.changed.notify_waiters();
    }

    /// Become the check's one retrying call, unless another one is.
    fn probe(&self) -> bool {
        match self.state.lock() {
            Ok(mut s) if *s == State::Closed => {
                *s = State::Probing;
                true
            }
            _ => false,
        }
    }

    /// Wait until the retrying call's outcome is known: whether the check may go on.
    async fn settled(&self) -> bool {
        loop {
            let changed = self.changed.notified();
            match self.state() {
                State::Probing => changed.await,
                state => return state == State::Closed,
            }
        }
    }
}

/// `send` (one advisory call, its pages included, through a client made by [`iam_once`] or
/// [`organizations_once`]) with the retries above, and the check's `breaker`; its last error when it still fails,
/// and how many attempts that took.
pub(crate) async fn send<T, E, F, Fut>(
    clients: &Clients,
    breaker: &Breaker,
    mut send: F,
) -> Result<T, (SdkError<E, HttpResponse>, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata,
{
    let mut attempts = 0;
    let mut backoff = RETRY_INITIAL_BACKOFF;
    let mut probing = false;
    loop {
        attempts += 1;
        let e = match clients.limit(send()).await {
            Ok(out) => {
                if probing {
                    breaker.set(State::Closed);
                }
                return Ok(out);
            }
            Err(e) => e,
        };
        let pause = match errors::transient(&e) {
            Some(Transient::Throttled) if attempts < clients.retry_attempts => {
                let pause = jittered(backoff);
                backoff = (backoff * 2).min(RETRY_MAX_BACKOFF);
                pause
            }
            Some(Transient::MaybeApplied) if attempts < ATTEMPTS.min(clients.retry_attempts) => {
                if !breaker.probe() {
                    // Another call of the check is retrying: its outcome decides for this one too.
                    match breaker.settled().await {
                        true => continue,
                        false => return Err((e, attempts)),
                    }
                }
                probing = true;
                jittered(SECOND_ATTEMPT_AFTER)
            }
            _ => {
                if probing || errors::transient(&e) == Some(Transient::MaybeApplied) {
                    breaker.set(State::Open);
                }
                return Err((e, attempts));
            }
        };
        tracing::debug!("advisory call: {} (attempt {attempts}); again in {} ms", errors::short(&e), pause.as_millis());
        tokio::time::sleep(pause).await;
    }
}

/// "answered InternalFailure (HTTP 500)", "answered HTTP 500", "timed out": what an advisory call's last
/// attempt met, for the row that says why the check is unverified.
pub(crate) fn answered<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            match s.err().code() {
                Some(code) => format!("answered {code} (HTTP {status})"),
                None => format!("answered HTTP {status}"),
            }
        }
        other => errors::short(other),
    }
}
