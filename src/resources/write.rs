//! Sending one write call: the outcome values, the options and observer of an apply, and the bounded retries
//! on named error codes ([`Retry`]) that each kind's write calls choose from ([`Call`]). Each kind's file
//! holds its own calls (`execute`); the engine decides only when each change runs.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use super::access::{Permission, Scope};
use super::plan::{Key, PlannedChange};
use super::vocab::{Ownership, OWNER_TAG};
use crate::aws::{errors, Clients};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum Outcome {
    Done,
    /// Someone else made the same change meanwhile (EntityAlreadyExists): nothing to do.
    AlreadyDone,
    /// Needs consent that was not given (`--adopt`).
    Held,
    Skipped {
        reason: String,
    },
    Failed {
        error: String,
    },
}

pub(crate) struct ApplyOptions {
    pub(crate) stack: String,
    pub(crate) consent: bool,
    /// How long to retry errors caused by AWS's propagation delay and concurrent writes.
    pub(crate) propagation_timeout: Duration,
    /// How long to wait for AWS's deletion task of a service-linked role.
    pub(crate) deletion_timeout: Duration,
    pub(crate) interrupted: Arc<AtomicBool>,
    /// The run's waiting and retries, counted for its summary, and the entities its writes take turns on.
    pub(crate) waits: Arc<Waits>,
}

/// Hooks for the printer: a change finished; something is being waited for.
pub(crate) trait ApplyObserver {
    fn finished(&self, change: &PlannedChange, outcome: &Outcome);
    fn waiting(&self, what: &str);
    /// Every change of the plan's resource number `resource` has finished, with these outcomes (an apply of a
    /// whole plan tells this; `bootstrap --wait` reads the resource back and lets the probes that need it begin).
    fn resource_finished(&self, _resource: usize, _outcomes: &[(&PlannedChange, &Outcome)]) {}
}

/// How long a run waited for AWS (backoff before a retry, or before reading back what it wrote) and how many
/// retries that took. Waiting is wall time during which at least one wait was going on, so concurrent waits
/// count once.
#[derive(Debug, Default)]
pub(crate) struct Waits {
    clock: Mutex<WaitClock>,
    retries: AtomicUsize,
    /// Per entity ("role `R`"), a turn that the writes which met ConcurrentModification on it take one at a
    /// time, instead of all retrying into each other.
    turns: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, Default)]
struct WaitClock {
    active: usize,
    since: Option<Instant>,
    total: Duration,
}

impl Waits {
    /// Sleep `delay`, counted as waiting (also if the sleep is cancelled).
    pub(crate) async fn sleep(&self, delay: Duration) {
        self.wait_for(tokio::time::sleep(delay)).await
    }

    /// Await `what`, counted as waiting.
    pub(crate) async fn wait_for<F: Future>(&self, what: F) -> F::Output {
        struct Span<'a>(&'a Waits);
        impl Drop for Span<'_> {
            fn drop(&mut self) {
                if let Ok(mut c) = self.0.clock.lock() {
                    c.active -= 1;
                    if c.active == 0 {
                        let since = c.since.take().unwrap_or_else(Instant::now);
                        c.total += since.elapsed();
                    }
                }
            }
        }
        if let Ok(mut c) = self.clock.lock() {
            if c.active == 0 {
                c.since = Some(Instant::now());
            }
            c.active += 1;
        }
        let _span = Span(self);
        what.await
    }

    pub(crate) fn turn(&self, entity: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        turns.entry(entity.to_string()).or_default().clone()
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn retries(&self) -> usize {
        self.retries.load(Ordering::SeqCst)
    }

    pub(crate) fn waited(&self) -> Duration {
        self.clock.lock().map(|c| c.total + c.since.map(|s| s.elapsed()).unwrap_or_default()).unwrap_or_default()
    }
}

/// The cadence of a consistency wait: waiting for AWS to show (or accept) what this run wrote — NoSuchEntity on an
/// entity it has just created, "Invalid principal" for a new role, EC2's "Invalid IAM Instance Profile name", a
/// DeleteConflict right after it removed the link, the read-back of its writes. That is not a fault to back off
/// from: the answer changes when IAM's lag ends, whatever the caller does, so a wait ends at most one interval
/// after the lag, and the interval stays short. The first reads come soon (200 ms, 300 ms: most lags are short),
/// then every 500 ms, each within ±10 % (waits of one run do not poll in step), for as long as
/// `--propagation-timeout` allows. At two reads a second per waiting entity, a run stays far below IAM's request
/// rates even with all of its entities waiting; throttling, 5xx and broken connections keep their exponential
/// backoff (the SDK's, or [`Ctx::send_reading_back`]'s).
#[derive(Debug, Default, Clone)]
pub(crate) struct Cadence {
    polls: u32,
}

impl Cadence {
    /// The steps before the steady interval, then the interval.
    const STEPS: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(300)];
    pub(crate) const INTERVAL: Duration = Duration::from_millis(500);

    /// The pause before the next read.
    pub(crate) fn next(&mut self) -> Duration {
        let base = Cadence::STEPS.get(self.polls as usize).copied().unwrap_or(Cadence::INTERVAL);
        self.polls += 1;
        base.mul_f64(0.9 + 0.2 * unit_random())
    }

    /// The pause [`Cadence::next`] will give at most (to check against a deadline before waiting).
    pub(crate) fn peek(&self) -> Duration {
        Cadence::STEPS.get(self.polls as usize).copied().unwrap_or(Cadence::INTERVAL).mul_f64(1.1)
    }
}

/// A number in [0, 1), different at each call.
fn unit_random() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A delay in [delay/2, delay), so that writers that collided do not retry in step.
pub(crate) fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(0.5 + unit_random() / 2.0)
}

/// An error a write is sent again for: AWS answers it while it catches up, and says so by the code alone (or,
/// where AWS gives no other signal, by the code and a fragment of the message). Every rule is bounded by
/// `--propagation-timeout`: the consistency waits at their [`Cadence`], ConcurrentModification (another writer,
/// not a lag) with exponential backoff and jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// NoSuchEntity right after what the call names was created by this run: IAM has not propagated it yet.
    /// Source: IAM user guide, "changes that I make are not always immediately visible"
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
    NotPropagated,
    /// MalformedPolicyDocument "Invalid principal in policy": a principal the trust document names is new.
    /// IAM gives no other signal than the message; terraform-provider-aws internal/service/iam/role.go
    /// (retryCreateRole, UpdateAssumeRolePolicy) matches the same code and text.
    InvalidPrincipal,
    /// ConcurrentModification (HTTP 409): another write to the same entity is in flight. The SDK's standard
    /// retry does not retry it (smithy-rs aws/rust-runtime/aws-runtime/src/retries/classifiers.rs: throttling
    /// and transient codes only); terraform-provider-aws internal/service/iam/role_policy_attachment.go
    /// (attachPolicyToRole, detachPolicyFromRole) retries it, after AWS began answering it for
    /// AttachRolePolicy/AttachUserPolicy (terraform-provider-aws#34371).
    Concurrent,
    /// DeleteConflict (HTTP 409) right after this run removed the link IAM names: IAM still sees it.
    /// terraform-provider-aws internal/service/iam/role.go (DeleteRole) retries it for its propagation
    /// timeout (2 minutes, internal/service/iam/consts.go).
    DeleteConflict,
}

impl Retry {
    fn matches(self, code: &str, message: &str) -> bool {
        match self {
            Retry::NotPropagated => code == "NoSuchEntity",
            Retry::InvalidPrincipal => {
                code == "MalformedPolicyDocument" && message.to_ascii_lowercase().contains("invalid principal")
            }
            Retry::Concurrent => code == "ConcurrentModification",
            Retry::DeleteConflict => code == "DeleteConflict",
        }
    }

    /// What the user is told is waited for, `about` naming the change's subject ("role `R`").
    fn waiting(self, about: &str, timeout: Duration) -> String {
        let secs = timeout.as_secs();
        match self {
            Retry::NotPropagated | Retry::InvalidPrincipal => {
                format!("waiting for {about} to propagate through IAM (up to {secs} s)")
            }
            Retry::Concurrent => format!(
                "waiting: another write to {about} is in flight (IAM answered ConcurrentModification); retrying \
                 with backoff (up to {secs} s)"
            ),
            Retry::DeleteConflict => format!(
                "waiting: IAM still sees a link this run removed from {about} (DeleteConflict); retrying the \
                 delete (up to {secs} s)"
            ),
        }
    }

    /// A wait for IAM to show this run's own write ([`Cadence`]), rather than for another writer.
    fn consistency(self) -> bool {
        self != Retry::Concurrent
    }
}

/// What sending one write came to, with the call's output when it was made.
pub(crate) enum Sent<T> {
    Done(T),
    /// An earlier attempt of this run did it: its answer was lost, and reading back (or the answer to sending it
    /// again) showed the change made.
    Landed,
    AlreadyDone,
    Skipped(String),
}

/// One write call as the retry loop sees it: what it does (for errors), what it is about (for waits and for
/// taking turns), and which errors mean "retry" or "already done".
pub(crate) struct Call {
    /// "create role `R`": what failed, in an error.
    action: String,
    /// "role `R`": the entity written, which waits name and ConcurrentModification turns are taken on.
    subject: String,
    /// What a propagation wait names, when it is not `subject` ("the principals in its trust document").
    propagating: Option<String>,
    rules: Vec<Retry>,
    /// A removal: NoSuchEntity means what it removes is already gone.
    removal: bool,
    /// Another error that means someone else made the same write (by code and message).
    already_done: fn(&str, &str) -> bool,
    /// A create whose EntityAlreadyExists goes to [`Ctx::created_or_found`], which reads the tags: whose it is.
    tagged_create: bool,
}

impl Call {
    /// A write that retries ConcurrentModification, as every IAM write does ([`Retry::Concurrent`]).
    pub(crate) fn new(action: impl Into<String>, subject: impl Into<String>) -> Call {
        Call {
            action: action.into(),
            subject: subject.into(),
            propagating: None,
            rules: vec![Retry::Concurrent],
            removal: false,
            already_done: |_, _| false,
            tagged_create: false,
        }
    }

    /// A create of a resource carrying the ownership tag: "already exists" is resolved by reading its tags.
    pub(crate) fn tagged_create(mut self) -> Call {
        self.tagged_create = true;
        self
    }

    /// Also retry these.
    pub(crate) fn retrying(mut self, extra: &[Retry]) -> Call {
        self.rules.extend_from_slice(extra);
        self
    }

    /// A propagation wait names `what`.
    pub(crate) fn propagating(mut self, what: impl Into<String>) -> Call {
        self.propagating = Some(what.into());
        self
    }

    pub(crate) fn removal(mut self) -> Call {
        self.removal = true;
        self
    }

    pub(crate) fn already_done_when(mut self, test: fn(&str, &str) -> bool) -> Call {
        self.already_done = test;
        self
    }
}

/// One change being applied: what it needs, and the retries and waiting it took.
pub(crate) struct Ctx<'a> {
    pub(crate) clients: &'a Clients,
    pub(crate) opts: &'a ApplyOptions,
    pub(crate) observer: &'a dyn ApplyObserver,
    pub(crate) retries: usize,
    pub(crate) waited: Duration,
    /// An attempt of this change's call may have taken effect without its answer reaching us (a broken
    /// connection, a timeout, a 5xx): what answers a later attempt "already there" is this run's own doing.
    pub(crate) lost_answer: bool,
}

/// No read-back: the call is safe to send again as it is.
type NoCheck = fn() -> std::future::Ready<Result<bool>>;

impl Ctx<'_> {
    /// Send a write ([`Ctx::send_for_output`]), keeping only how it ended.
    pub(crate) async fn send<T, E, F, Fut>(&mut self, call: &Call, send: F) -> Result<Outcome>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.send_checked(call, send, None::<NoCheck>).await
    }

    /// [`Ctx::send`] for a call that is not safe to send twice: after an attempt whose answer was lost, `landed`
    /// reads back whether the change is there before the call is sent again.
    pub(crate) async fn send_checked<T, E, F, Fut, L, LFut>(
        &mut self,
        call: &Call,
        send: F,
        landed: Option<L>,
    ) -> Result<Outcome>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        L: Fn() -> LFut,
        LFut: Future<Output = Result<bool>>,
    {
        Ok(match self.send_reading_back(call, send, landed).await? {
            Sent::Done(_) | Sent::Landed => Outcome::Done,
            Sent::AlreadyDone => Outcome::AlreadyDone,
            Sent::Skipped(reason) => Outcome::Skipped { reason },
        })
    }

    /// Send a write and keep its output ([`Ctx::send_reading_back`] without a read-back).
    pub(crate) async fn send_for_output<T, E, F, Fut>(&mut self, call: &Call, send: F) -> Result<Sent<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.send_reading_back(call, send, None::<NoCheck>).await
    }

    /// Send a write. EntityAlreadyExists means someone else did it; for a removal, NoSuchEntity
    /// means it is gone already. An error one of `rules` names is retried with exponential backoff and jitter
    /// until `--propagation-timeout`, telling the user once per rule what is waited for.
    ///
    /// Transient failures are retried here, not by the SDK (whose client for these calls sends once), up to
    /// `--retry-attempts` in all, with backoff and jitter: throttling (the call was refused, so sending it again is
    /// safe), and failures after which the call may or may not have taken effect (the connection broke, the
    /// attempt timed out, or AWS answered 5xx: "the request might have succeeded", AWS SDKs and Tools reference
    /// guide, "Retry behavior": https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
    /// After such a failure the call is resolved by reading: `landed`, when given, reads back whether the change
    /// is there; every other call is one whose second sending is answered "already there" (EntityAlreadyExists,
    /// whose tags then say it is this stack's; NoSuchEntity for a removal; the kind's own already-done rule) or
    /// changes nothing (attach, put, tag, update: IAM applies them as a state, not a delta).
    pub(crate) async fn send_reading_back<T, E, F, Fut, L, LFut>(
        &mut self,
        call: &Call,
        mut send: F,
        landed: Option<L>,
    ) -> Result<Sent<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        L: Fn() -> LFut,
        LFut: Future<Output = Result<bool>>,
    {
        let start = Instant::now();
        let timeout = self.opts.propagation_timeout;
        let mut delay: Option<Duration> = None;
        let mut cadence = Cadence::default();
        let mut told: Vec<Retry> = Vec::new();
        let mut attempts: u32 = 0;
        let mut transient_delay = crate::aws::RETRY_INITIAL_BACKOFF;
        // Held from this write's first ConcurrentModification until it is through: the writes to one entity
        // that collided go one at a time.
        let mut turn: Option<tokio::sync::OwnedMutexGuard<()>> = None;
        loop {
            // The interrupt is checked once a request slot is ours, so that queued changes never start.
            let interrupted = &self.opts.interrupted;
            let result = self
                .clients
                .limit(async {
                    if interrupted.load(Ordering::SeqCst) {
                        None
                    } else {
                        Some(send().await)
                    }
                })
                .await;
            let Some(result) = result else { return Ok(Sent::Skipped("interrupted".into())) };
            attempts += 1;
            let e = match result {
                Ok(output) => return Ok(Sent::Done(output)),
                // A tagged create's "already there" goes to `created_or_found`, which reads the tags: whose it is.
                Err(e) if call.tagged_create && errors::is_already_exists(&e) => return Ok(Sent::AlreadyDone),
                Err(e)
                    if errors::is_already_exists(&e)
                        || errors::code_and_message(&e).is_some_and(|(c, m)| (call.already_done)(c, m))
                        || (call.removal && errors::is_no_such_entity(&e)) =>
                {
                    return Ok(if self.lost_answer { Sent::Landed } else { Sent::AlreadyDone })
                }
                Err(e) => e,
            };
            if let Some(transient) = errors::transient(&e) {
                if attempts >= self.clients.retry_attempts {
                    return Err(errors::describe(&format!("{} (after {attempts} attempts)", call.action), &e));
                }
                if transient == errors::Transient::MaybeApplied {
                    self.lost_answer = true;
                    if let Some(landed) = &landed {
                        if landed().await? {
                            tracing::info!("{}: the answer was lost, and reading back shows it made", call.action);
                            return Ok(Sent::Landed);
                        }
                    }
                }
                let pause = jittered(transient_delay);
                tracing::info!(
                    "{}: {} (attempt {attempts} of {}); again in {} ms",
                    call.action,
                    errors::short(&e),
                    self.clients.retry_attempts,
                    pause.as_millis()
                );
                self.wait(pause).await;
                self.retries += 1;
                self.opts.waits.retried();
                transient_delay = (transient_delay * 2).min(crate::aws::RETRY_MAX_BACKOFF);
                continue;
            }
            let rule =
                errors::code_and_message(&e).and_then(|(c, m)| call.rules.iter().copied().find(|r| r.matches(c, m)));
            let Some(rule) = rule else { return Err(errors::describe(&call.action, &e)) };
            // Another writer's call takes a moment: retry soon, spread out, backing off; IAM's lag: its cadence.
            let base = delay.unwrap_or(Duration::from_millis(150));
            let pause = if rule.consistency() { cadence.next() } else { jittered(base) };
            if start.elapsed() + pause >= timeout {
                return Err(errors::describe(&call.action, &e));
            }
            if !told.contains(&rule) {
                let about = match (rule, &call.propagating) {
                    (Retry::NotPropagated | Retry::InvalidPrincipal, Some(what)) => what,
                    _ => &call.subject,
                };
                self.observer.waiting(&rule.waiting(about, timeout));
                told.push(rule);
            }
            if rule == Retry::Concurrent && turn.is_none() {
                let entity = self.opts.waits.turn(&call.subject);
                match entity.clone().try_lock_owned() {
                    Ok(guard) => turn = Some(guard),
                    Err(_) => {
                        // Another writer of this entity has the turn: once it is through, try again at once.
                        let queued = Instant::now();
                        let left = timeout.saturating_sub(start.elapsed());
                        let wait = tokio::time::timeout(left, self.opts.waits.wait_for(entity.lock_owned()));
                        let Ok(guard) = wait.await else { return Err(errors::describe(&call.action, &e)) };
                        turn = Some(guard);
                        self.waited += queued.elapsed();
                        self.retries += 1;
                        self.opts.waits.retried();
                        continue;
                    }
                }
            }
            self.wait(pause).await;
            self.retries += 1;
            self.opts.waits.retried();
            if !rule.consistency() {
                delay = Some((base * 2).min(Duration::from_secs(5)));
            }
        }
    }

    pub(crate) async fn wait(&mut self, delay: Duration) {
        self.opts.waits.sleep(delay).await;
        self.waited += delay;
    }

    /// After EntityAlreadyExists on a create: someone made the resource meanwhile. Its tags, read again, say
    /// whose it is; if it is not this stack's, the changes that depend on it are held back, as for any resource
    /// wfboot did not create. A resource made moments ago can read as missing for a while (read-after-write
    /// lag): that is waited out, within `--propagation-timeout`.
    pub(crate) async fn created_or_found<F, Fut>(
        &mut self,
        outcome: Outcome,
        about: &str,
        read_tags: F,
    ) -> Result<(Outcome, bool)>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<Vec<(String, String)>>>>,
    {
        if outcome != Outcome::AlreadyDone {
            return Ok((outcome, false));
        }
        let (start, timeout, stack) = (Instant::now(), self.opts.propagation_timeout, &self.opts.stack);
        let mut cadence = Cadence::default();
        let mut told = false;
        loop {
            if let Some(tags) = read_tags().await? {
                let ours =
                    Ownership::from_tags(stack, tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) == Ownership::Stack;
                if !ours {
                    self.observer.waiting(&format!(
                        "{about} was created meanwhile by someone else (it has no {OWNER_TAG}={stack} tag): {}",
                        if self.opts.consent {
                            "what depends on it goes on (consent given)"
                        } else {
                            "what depends on it is held back (--adopt to change it anyway)"
                        }
                    ));
                }
                // A create this run sent before, whose answer was lost, found by its own tag: this run made it.
                let outcome = if ours && self.lost_answer { Outcome::Done } else { Outcome::AlreadyDone };
                return Ok((outcome, !ours));
            }
            if start.elapsed() + cadence.peek() >= timeout {
                return Err(crate::error::Error::aws(format!(
                    "{about} already exists (EntityAlreadyExists) but still reads as missing after {} s",
                    start.elapsed().as_secs()
                ))
                .with_help("IAM is slow to show it: run again in a minute (nothing is repeated)"));
            }
            if !told {
                self.observer.waiting(&format!(
                    "waiting for {about}, which someone else has just created, to read back (read-after-write lag; \
                     up to {} s)",
                    timeout.as_secs()
                ));
                told = true;
            }
            self.wait(cadence.next()).await;
        }
    }
}

/// What every kind's change is: one write call, with its wording (`Display`), the IAM actions it needs, the
/// keys of the dependency graph it needs and provides, and how it is sent, retry rules included.
pub(crate) trait Write: std::fmt::Display {
    /// The IAM API operation ("CreateRole").
    fn operation(&self) -> &'static str;

    /// What must be done before this change can be sent ([`Key`]).
    fn needs(&self) -> Vec<Key> {
        Vec::new()
    }

    /// What this change gets done, for the changes that need it.
    fn provides(&self) -> Vec<Key> {
        Vec::new()
    }

    /// The permissions the call needs, in the request context it will have (region aside: the engine adds it).
    fn permissions(&self, scope: &Scope<'_>) -> Vec<Permission>;

    /// The two make the same write (equal, unless a kind compares some of its changes by what they set only).
    fn same_write(&self, other: &Self) -> bool;

    /// Send the call. Returns its outcome and whether its resource turned out to be someone else's (a create
    /// that found it there without this stack's tag). `after_dependency`: a change it needs ran just before
    /// (so NoSuchEntity or DeleteConflict may be IAM catching up).
    async fn execute(&self, ctx: &mut Ctx<'_>, after_dependency: bool) -> Result<(Outcome, bool)>;
}

/// Retry NoSuchEntity only where it can be propagation: right after a dependency was created.
pub(crate) fn not_propagated(after_dependency: bool) -> &'static [Retry] {
    if after_dependency {
        &[Retry::NotPropagated]
    } else {
        &[]
    }
}

/// Retry DeleteConflict only where it can be propagation: a delete right after this run removed a link.
pub(crate) fn conflict(after_dependency: bool) -> &'static [Retry] {
    if after_dependency {
        &[Retry::DeleteConflict]
    } else {
        &[]
    }
}

/// An outcome of a change whose resource cannot turn out to be someone else's.
pub(crate) fn plain(outcome: Result<Outcome>) -> Result<(Outcome, bool)> {
    outcome.map(|o| (o, false))
}
