//! Bounded stalls: every HTTP attempt gets a deadline learnt from this run's own answer times, and an endpoint
//! that refuses every connection before it ever answered is reported at once.
//!
//! The SDK bounds an attempt by one flat `operation_attempt_timeout` (30 s here), the same for a 20 ms GetRole as
//! for a 2 s policy simulation: a request that a NAT or proxy silently drops holds its caller for the whole of it.
//! An attempt timeout exists to fail a slow attempt fast and retry it (AWS SDK for Java 2.x developer guide,
//! "Configure timeouts", API call attempt timeout:
//! https://docs.aws.amazon.com/sdk-for-java/latest/developer-guide/timeouts.html); a timed-out request "might have
//! succeeded" and is retried (AWS SDKs and Tools reference guide, "Retry behavior":
//! https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html); and the SDKs' defaults for
//! timeouts depend on where the client runs ("Smart configuration defaults":
//! https://docs.aws.amazon.com/sdkref/latest/guide/feature-smart-config-defaults.html).
//!
//! So the HTTP client of every service client is wrapped ([`Bounded`]): an interceptor tags each attempt's request with its service and operation ([`TagOperation`]),
//! and the connector gives the attempt [`rule`]'s deadline, learnt from the answers of the same operation (or, with
//! few of them, of the same service and read/write class) in this run. On expiry the attempt fails as a connector
//! timeout (`ConnectorError::timeout`), which the SDK's standard retry mode retries like any timeout
//! (aws-smithy-runtime `client/retries/classifiers.rs`, `TransientErrorClassifier`: a connector error that
//! `is_timeout()` is a transient error), and which a plan's write (sent once by the SDK) resolves by reading back
//! (`resources::write::Ctx::send_reading_back`). The SDK's own attempt timeout stays, as the outer bound.
//!
//! A connection refused by an endpoint that has not answered once in this run is not a transient fault: nothing
//! listens there (a mistyped `--endpoint-url`, an emulator not started). The attempt then fails as a connector
//! error of no retryable kind (`ConnectorError::other(_, None)`, which the same classifier leaves alone), carrying
//! [`EndpointRefused`], which `errors::describe` turns into a message naming the endpoint. It is found by the io
//! error's kind (`ConnectionRefused`) in the error's source chain. A connection reset or dropped, or a refusal by
//! an endpoint that has answered before, stays a transient fault.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, Metadata};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::config_bag::ConfigBag;

/// The SDK's attempt timeout (`operation_attempt_timeout`), and the most [`rule`] ever gives an attempt.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// No attempt is given up sooner: IAM's slowest healthy calls (the policy simulator on a large policy, a long
/// ListRoles page) take up to about 2 s.
pub(crate) const FLOOR: Duration = Duration::from_secs(3);

/// A call before anything of its service was answered in this run is given this long:
/// there is nothing to learn from yet, and its connection (DNS, TCP, TLS) may still be to be made (the SDK's
/// connect timeout is 5 s here).
pub(crate) const COLD: Duration = Duration::from_secs(5);

/// The first call of an operation is given at least this long: its own pace is not known yet, and the others of
/// its service may be much faster (a first SimulatePrincipalPolicy on a large policy after ListRoles and GetRole
/// answered in tens of milliseconds). Cutting a healthy write costs a read-back and a second sending; cutting a
/// healthy read, one more attempt after the deadline.
pub(crate) const FIRST_CALL: Duration = Duration::from_secs(4);

/// An attempt is given this many times the observed p95 of its kind's answer times (at least [`FLOOR`]).
pub(crate) const P95_FACTOR: u32 = 4;

/// Answer times kept per kind: the latest ones, so the deadline follows the endpoint's current pace.
const WINDOW: usize = 64;

/// An operation's own answer times count once there are this many; before that, its service's read or write
/// class's do.
const OWN_SAMPLES: usize = 3;

/// The deadline of one attempt, from what this run has seen:
///
/// - `own`: answer times of the same operation, `class`: of the same service's reads (or writes); the p95 of the
///   first when it has [`OWN_SAMPLES`], else of the second (with fewer than 20 samples the p95 is the maximum);
/// - deadline = clamp([`P95_FACTOR`] × p95, [`FLOOR`], [`ATTEMPT_TIMEOUT`]); [`COLD`] without any sample;
/// - at least [`FIRST_CALL`] for a call whose operation has never been answered;
/// - doubled for each attempt of the operation in a row that got no answer (up to the cap), so that a call slower
///   than anything seen so far is never cut off for good.
pub(crate) fn rule(own: &[Duration], class: &[Duration], misses_in_a_row: u32) -> Duration {
    let base = if own.len() >= OWN_SAMPLES { p95(own) } else { p95(class).max(p95(own)) };
    let mut deadline = base.map_or(COLD, |b| (b * P95_FACTOR).max(FLOOR));
    if own.is_empty() {
        deadline = deadline.max(FIRST_CALL);
    }
    for _ in 0..misses_in_a_row.min(5) {
        deadline *= 2;
    }
    deadline.min(ATTEMPT_TIMEOUT)
}

/// The 95th percentile of `samples` (nearest rank), `None` without any.
fn p95(samples: &[Duration]) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (sorted.len() * 95).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// What an attempt's request is: set by [`TagOperation`], read by the connector.
#[derive(Debug, Clone)]
struct Operation {
    service: String,
    name: String,
}

impl Operation {
    fn write(&self) -> bool {
        !super::is_read_operation(&self.name)
    }
}

/// Tags each attempt's request with its service and operation (from the operation's `Metadata`), for the
/// connector's deadline.
#[derive(Debug, Clone, Default)]
pub(crate) struct TagOperation;

impl Intercept for TagOperation {
    fn name(&self) -> &'static str {
        "wfboot-tag-operation"
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            let op = Operation { service: meta.service().to_string(), name: meta.name().to_string() };
            ctx.request_mut().add_extension(op);
        }
        Ok(())
    }
}

/// This run's answer times, shared by every client built from one configuration.
#[derive(Debug, Default)]
struct Learnt {
    /// Per (service, operation).
    own: HashMap<(String, String), VecDeque<Duration>>,
    /// Per (service, is a write).
    class: HashMap<(String, bool), VecDeque<Duration>>,
    /// Attempts in a row that got no answer, per (service, operation).
    misses: HashMap<(String, String), u32>,
    /// Endpoints (scheme://host:port) that have answered at least once.
    answered: HashSet<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Answers(Arc<Mutex<Learnt>>);

impl Answers {
    fn deadline(&self, op: &Operation) -> Duration {
        let Ok(l) = self.0.lock() else { return ATTEMPT_TIMEOUT };
        let key = (op.service.clone(), op.name.clone());
        let own: Vec<Duration> = l.own.get(&key).map(|w| w.iter().copied().collect()).unwrap_or_default();
        // The class's answer times; before the first of its class (the run's first write), the service's others'.
        let window = |write: bool| l.class.get(&(op.service.clone(), write)).filter(|w| !w.is_empty());
        let class: Vec<Duration> =
            window(op.write()).or_else(|| window(!op.write())).map(|w| w.iter().copied().collect()).unwrap_or_default();
        rule(&own, &class, l.misses.get(&key).copied().unwrap_or(0))
    }

    fn answered(&self, endpoint: &str, op: Option<&Operation>, took: Duration) {
        let Ok(mut l) = self.0.lock() else { return };
        if !l.answered.contains(endpoint) {
            l.answered.insert(endpoint.to_string());
        }
        let Some(op) = op else { return };
        let key = (op.service.clone(), op.name.clone());
        l.misses.remove(&key);
        push(l.own.entry(key).or_default(), took);
        push(l.class.entry((op.service.clone(), op.write())).or_default(), took);
    }

    fn missed(&self, op: &Operation) {
        if let Ok(mut l) = self.0.lock() {
            *l.misses.entry((op.service.clone(), op.name.clone())).or_default() += 1;
        }
    }

    fn has_answered(&self, endpoint: &str) -> bool {
        self.0.lock().map(|l| l.answered.contains(endpoint)).unwrap_or(true)
    }
}

fn push(window: &mut VecDeque<Duration>, took: Duration) {
    if window.len() == WINDOW {
        window.pop_front();
    }
    window.push_back(took);
}

/// An attempt that got no answer within its deadline ([`rule`]).
#[derive(Debug)]
pub(crate) struct NoAnswer {
    pub(crate) operation: String,
    pub(crate) after: Duration,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no answer to {} within {:.1} s", self.operation, self.after.as_secs_f64())
    }
}

impl std::error::Error for NoAnswer {}

/// A connection refused by an endpoint that has not answered once in this run.
#[derive(Debug)]
pub(crate) struct EndpointRefused {
    pub(crate) endpoint: String,
    source: ConnectorError,
}

impl std::fmt::Display for EndpointRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} refused the connection (nothing listens there)", self.endpoint)
    }
}

impl std::error::Error for EndpointRefused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Whether an io error of kind `ConnectionRefused` is in `err`'s source chain.
pub(crate) fn is_connection_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        next = e.source();
    }
    false
}

/// The first error of type `T` in `err`'s source chain.
pub(crate) fn find<'a, T: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// `scheme://host:port` of a request URI.
fn endpoint_of(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("https", uri));
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    format!("{scheme}://{authority}")
}

/// The SDK's HTTP client with a learnt deadline on every tagged attempt ([`TagOperation`]).
#[derive(Debug, Clone)]
pub(crate) struct Bounded {
    inner: SharedHttpClient,
    answers: Answers,
}

impl Bounded {
    pub(crate) fn wrap(inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(Bounded { inner, answers: Answers::default() })
    }
}

impl HttpClient for Bounded {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(BoundedConnector {
            inner: self.inner.http_connector(settings, components),
            answers: self.answers.clone(),
        })
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_base_client_config(components, cfg)
    }

    fn validate_final_config(&self, components: &RuntimeComponents, cfg: &ConfigBag) -> Result<(), BoxError> {
        self.inner.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[derive(Debug)]
struct BoundedConnector {
    inner: SharedHttpConnector,
    answers: Answers,
}

impl HttpConnector for BoundedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let op = request.extension::<Operation>().cloned();
        let endpoint = endpoint_of(request.uri());
        let deadline = op.as_ref().map(|op| self.answers.deadline(op));
        let answers = self.answers.clone();
        let call = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            let started = Instant::now();
            let result = match (deadline, &op) {
                (Some(deadline), Some(op)) => match tokio::time::timeout(deadline, call).await {
                    Ok(result) => result,
                    Err(_) => {
                        answers.missed(op);
                        let name = format!("{}:{}", op.service, op.name);
                        tracing::debug!(
                            "{name}: no answer within {} ms; the attempt is given up",
                            deadline.as_millis()
                        );
                        return Err(ConnectorError::timeout(Box::new(NoAnswer { operation: name, after: deadline })));
                    }
                },
                _ => call.await,
            };
            match result {
                Ok(response) => {
                    answers.answered(&endpoint, op.as_ref(), started.elapsed());
                    Ok(response)
                }
                Err(e) if op.is_some() && is_connection_refused(&e) && !answers.has_answered(&endpoint) => {
                    Err(ConnectorError::other(Box::new(EndpointRefused { endpoint, source: e }), None))
                }
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn a_fast_service_gets_the_floor_never_less() {
        // IAM's reads in tens of milliseconds: 4 × p95 is far below the floor.
        assert_eq!(rule(&ms(&[20, 30, 25, 40]), &ms(&[20, 30]), 0), FLOOR);
        // The first of a kind of call, once its service answered others: a little longer, its own pace unknown.
        assert_eq!(rule(&[], &ms(&[20, 30]), 0), FIRST_CALL);
    }

    #[test]
    fn a_slow_but_healthy_kind_of_call_gets_four_times_its_p95() {
        // The policy simulator on a large policy: 2 s answers give 8 s.
        assert_eq!(rule(&ms(&[1800, 2000, 1900]), &ms(&[20]), 0), Duration::from_secs(8));
        // Until an operation has answers enough of its own, the slower of them and its class's count.
        assert_eq!(rule(&ms(&[900]), &ms(&[1000, 20]), 0), Duration::from_secs(4));
        assert_eq!(rule(&ms(&[2000]), &ms(&[1000, 20]), 0), Duration::from_secs(8));
    }

    #[test]
    fn the_p95_ignores_a_rare_outlier_once_there_are_enough_answers() {
        let mut samples = vec![Duration::from_millis(100); 39];
        samples.push(Duration::from_secs(20));
        assert_eq!(p95(&samples), Some(Duration::from_millis(100)));
        // With few answers the p95 is their maximum.
        assert_eq!(p95(&ms(&[100, 900, 200])), Some(Duration::from_millis(900)));
        assert_eq!(p95(&[]), None);
    }

    #[test]
    fn a_call_before_its_kind_was_answered_gets_longer() {
        // Nothing of its service and class answered yet in this run (its connection may be still to be made).
        assert_eq!(rule(&[], &[], 0), COLD);
        // The first call of an operation on a fast service, a write or a read.
        assert_eq!(rule(&[], &ms(&[20, 30]), 0), FIRST_CALL);
        // ... unless its class is slower still.
        assert_eq!(rule(&[], &ms(&[3000]), 0), Duration::from_secs(12));
    }

    #[test]
    fn each_attempt_in_a_row_without_an_answer_doubles_the_next_ones_deadline_up_to_the_cap() {
        let fast = ms(&[20, 30, 40]);
        assert_eq!(rule(&fast, &fast, 1), FLOOR * 2);
        assert_eq!(rule(&fast, &fast, 2), FLOOR * 4);
        assert_eq!(rule(&fast, &fast, 3), FLOOR * 8);
        assert_eq!(rule(&fast, &fast, 4), ATTEMPT_TIMEOUT);
        assert_eq!(rule(&fast, &fast, 40), ATTEMPT_TIMEOUT);
        // Never more than the SDK's attempt timeout.
        assert_eq!(rule(&ms(&[60_000, 60_000, 60_000]), &[], 0), ATTEMPT_TIMEOUT);
    }

    #[test]
    fn answers_are_learnt_per_operation_and_an_answer_ends_a_run_of_misses() {
        let answers = Answers::default();
        let get = Operation { service: "iam".into(), name: "GetRole".into() };
        let sim = Operation { service: "iam".into(), name: "SimulatePrincipalPolicy".into() };
        let create = Operation { service: "iam".into(), name: "CreateRole".into() };
        assert_eq!(answers.deadline(&get), COLD);
        for _ in 0..3 {
            answers.answered("http://127.0.0.1:1", Some(&get), Duration::from_millis(30));
        }
        assert_eq!(answers.deadline(&get), FLOOR);
        assert_eq!(answers.deadline(&sim), FIRST_CALL, "a read of a kind never answered, on a service that answers");
        assert_eq!(answers.deadline(&create), FIRST_CALL, "the first write, on a service that answers reads");
        let other = Operation { service: "lambda".into(), name: "GetFunction".into() };
        assert_eq!(answers.deadline(&other), COLD, "nothing of the service answered yet");
        for _ in 0..3 {
            answers.answered("http://127.0.0.1:1", Some(&sim), Duration::from_millis(2000));
        }
        assert_eq!(answers.deadline(&sim), Duration::from_secs(8));
        assert_eq!(answers.deadline(&get), FLOOR, "GetRole keeps its own pace");
        answers.missed(&get);
        assert_eq!(answers.deadline(&get), FLOOR * 2);
        answers.answered("http://127.0.0.1:1", Some(&get), Duration::from_millis(30));
        assert_eq!(answers.deadline(&get), FLOOR);
        assert!(answers.has_answered("http://127.0.0.1:1"));
        assert!(!answers.has_answered("http://127.0.0.1:2"));
    }

    #[test]
    fn a_refusal_is_found_by_its_io_error_kind_anywhere_in_the_source_chain() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let wrapped = ConnectorError::io(Box::new(refused));
        assert!(is_connection_refused(&wrapped));
        let reset = ConnectorError::io(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert!(!is_connection_refused(&reset));
        let timeout = ConnectorError::timeout("timed out".into());
        assert!(!is_connection_refused(&timeout));
    }

    #[test]
    fn an_endpoint_is_its_scheme_host_and_port() {
        assert_eq!(endpoint_of("http://127.0.0.1:5000/?Action=GetRole"), "http://127.0.0.1:5000");
        assert_eq!(endpoint_of("https://iam.amazonaws.com/"), "https://iam.amazonaws.com");
    }
}
