//! The one place AWS clients are built. Everything else takes `&Clients`.
//!
//! Configuration follows the AWS conventions through aws-config's default chain: `--profile`, `--region`,
//! `--endpoint-url` override `AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL` and the shared config files; as in
//! the AWS CLI, an explicit `--profile` also wins over credentials in the environment, and a named profile that
//! does not exist is an error before any call.
//! Retry mode, attempts, backoff and timeouts are set explicitly rather than left to SDK defaults, and no client
//! has the SDK's client-side retry quota ([`retry_partition`]).

pub(crate) mod deadline;
pub(crate) mod errors;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::tls;
use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Connection settings shared by every command (flattened into the CLI).
#[derive(Debug, Clone, Default)]
pub(crate) struct AwsSettings {
    pub(crate) profile: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) endpoint_url: Option<String>,
    pub(crate) retry_attempts: u32,
    pub(crate) max_concurrency: usize,
}

/// What `Clients::assume_role` needs: the role, a recognisable session name, and who should be trusted
/// (for the error's help line).
#[derive(Debug, Clone)]
pub(crate) struct AssumeRole {
    pub(crate) role_arn: String,
    pub(crate) session_name: String,
    pub(crate) external_id: Option<String>,
    /// The caller's ARN, which the role's trust policy must allow.
    pub(crate) trusted: String,
}

/// The length of an assumed-role session, asked for explicitly: an hour is STS's default, the most a session
/// may last when the caller is itself an assumed role (role chaining), and within every role's maximum
/// session duration (1 to 12 hours); STS refuses to give more than either (STS API reference, AssumeRole,
/// DurationSeconds: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html). Runs longer than
/// a session renew it ([`AssumedRole`]).
pub(crate) const SESSION_SECONDS: i32 = 3600;
// Role chaining caps a session at an hour: asking for more fails the AssumeRole.
const _: () = assert!(SESSION_SECONDS <= 3600);

/// sts:AssumeRole for `role`, with its error turned into what failed, why, and what to check.
async fn assume(
    sts: &aws_sdk_sts::Client,
    role: &AssumeRole,
) -> Result<aws_sdk_sts::operation::assume_role::AssumeRoleOutput> {
    let mut request = sts
        .assume_role()
        .role_arn(&role.role_arn)
        .role_session_name(&role.session_name)
        .duration_seconds(SESSION_SECONDS);
    if let Some(id) = &role.external_id {
        request = request.external_id(id);
    }
    request.send().await.map_err(|e| {
        let action = format!("assume the role `{}`", role.role_arn);
        if errors::is_access_denied(&e) {
            let err = match errors::code(&e) {
                Some(_) => errors::describe(&action, &e),
                None => Error::aws(format!("failed to {action}: AccessDenied (HTTP 403)")),
            };
            err.with_help(format!(
                "the role does not exist in that account, does not trust {}, or requires an external id \
                 (--external-id); the caller also needs sts:AssumeRole on it",
                role.trusted
            ))
        } else {
            errors::describe(&action, &e)
        }
    })
}

fn session_credentials(
    role: &AssumeRole,
    out: &aws_sdk_sts::operation::assume_role::AssumeRoleOutput,
) -> Result<aws_credential_types::Credentials> {
    let Some(c) = out.credentials() else {
        return Err(Error::aws(format!("sts:AssumeRole on `{}` answered without credentials", role.role_arn)));
    };
    let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
    Ok(aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        expiry,
        "AssumeRole",
    ))
}

/// An assumed role's credentials, renewed before they expire: the SDK's identity cache asks for new ones
/// shortly before the expiry of the ones it holds (aws-smithy-runtime's lazy identity cache), and this
/// assumes the role again with the caller's credentials. The first answer is the session the account's run
/// started with.
#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role: AssumeRole,
    first: Mutex<Option<aws_credential_types::Credentials>>,
}

impl aws_credential_types::provider::ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            use aws_credential_types::provider::error::CredentialsError;
            if let Some(first) = self.first.lock().ok().and_then(|mut f| f.take()) {
                return Ok(first);
            }
            let out = assume(&self.sts, &self.role).await.map_err(CredentialsError::provider_error)?;
            session_credentials(&self.role, &out).map_err(CredentialsError::provider_error)
        })
    }
}

/// Every AWS call this process made, counted by an SDK interceptor (so the summary cannot miss one).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallLog(Arc<Mutex<CallStats>>);

#[derive(Debug, Clone, Default)]
pub(crate) struct CallStats {
    /// `(service, operation)` per API call, in the order they started.
    pub(crate) calls: Vec<(String, String)>,
    /// HTTP attempts, retries included.
    pub(crate) attempts: usize,
}

impl CallStats {
    pub(crate) fn writes(&self) -> usize {
        self.calls.iter().filter(|(_, op)| !is_read_operation(op)).count()
    }
}

/// Reads are Get*, List*, Describe* and Simulate*; every other operation may change the account.
pub(crate) fn is_read_operation(op: &str) -> bool {
    ["Get", "List", "Describe", "Simulate"].iter().any(|p| op.starts_with(p))
}

impl CallLog {
    pub(crate) fn snapshot(&self) -> CallStats {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "wfboot-call-log"
    }

    // Not read_before_execution: client interceptors run that before the operation's metadata is in the bag.
    fn read_before_serialization(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(meta), Ok(mut stats)) = (cfg.load::<Metadata>(), self.0.lock()) {
            stats.calls.push((meta.service().to_string(), meta.name().to_string()));
        }
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(mut stats) = self.0.lock() {
            stats.attempts += 1;
        }
        Ok(())
    }
}

/// The first pause before a retry; each later one doubles, up to [`RETRY_MAX_BACKOFF`], with jitter. The SDK's
/// standard mode starts at 1 s and caps at 20 s (smithy-rs aws-smithy-types `retry.rs`, `RetryConfig::standard`);
/// a CLI run is short and bounded by `--max-concurrency`, so it retries sooner and caps lower: 10 attempts of
/// constant throttling end within about 50 s.
pub(crate) const RETRY_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
pub(crate) const RETRY_MAX_BACKOFF: Duration = Duration::from_secs(8);

/// A retry partition of its own for each client, without a client-side retry quota.
///
/// The SDK's standard retry mode takes tokens from a bucket shared by all clients of a partition for every
/// retry (in aws-smithy-runtime 1.16, `client/retries/token_bucket.rs`: 500 tokens, a transient-error retry costs
/// 14 under the newer retry spec and 5 before it, a throttling retry 5); once it is empty nothing is retried
/// ("not enough retry quota" at `-vv`). That is a circuit breaker for long-lived services; a CLI run of ~100
/// calls at a 30 % fault rate empties it and then fails on the next fault. Terraform's AWS provider met the
/// same (terraform-provider-aws#34669, #36094) and runs without it. Here each request's retries are bounded by
/// `--retry-attempts` and its backoff, and the run by the requests' operation timeout.
fn retry_partition(service: &'static str) -> RetryPartition {
    RetryPartition::custom(service).token_bucket(TokenBucket::unlimited()).build()
}

/// The clients of one run, built from one `SdkConfig`.
#[derive(Clone)]
pub(crate) struct Clients {
    /// IAM for reads and for the calls outside a plan's changes: the SDK retries throttling, 5xx and broken
    /// connections.
    pub(crate) iam: aws_sdk_iam::Client,
    /// IAM for the write call of a plan's change: the SDK sends it once, and `resources::write::Ctx::send`
    /// retries it, so that a write whose answer was lost is read back before it is sent again.
    pub(crate) iam_writes: aws_sdk_iam::Client,
    /// `--retry-attempts`: attempts per request, the first included.
    pub(crate) retry_attempts: u32,
    pub(crate) sts: aws_sdk_sts::Client,
    pub(crate) batch: aws_sdk_batch::Client,
    pub(crate) lambda: aws_sdk_lambda::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) sfn: aws_sdk_sfn::Client,
    /// The pre-flight's organisation reads (`organisation`). A global service: the SDK's endpoint rules sign for
    /// us-east-1 in the aws partition whatever the configured region, as for IAM
    /// (https://docs.aws.amazon.com/general/latest/gr/ao.html).
    pub(crate) organizations: aws_sdk_organizations::Client,
    /// `--org-unit`: the service-managed StackSet (`stackset`). Its writes carry an OperationId (or, for
    /// CreateStackSet, a ClientRequestToken), so the SDK's retry of one resends the same operation and never starts
    /// a second one.
    pub(crate) cloudformation: aws_sdk_cloudformation::Client,
    #[cfg(feature = "ec2")]
    pub(crate) ec2: aws_sdk_ec2::Client,
    /// `attach --require-imdsv2`'s read of an instance's MetadataNoToken metric.
    #[cfg(feature = "ec2")]
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    /// The resolved configuration, for `whoami` (which credentials, from where).
    pub(crate) sdk: aws_config::SdkConfig,
    pub(crate) calls: CallLog,
    pub(crate) region: String,
    limiter: Arc<Semaphore>,
}

impl Clients {
    pub(crate) async fn connect(settings: &AwsSettings) -> Result<Clients> {
        let config = sdk_config(settings).await?;
        Clients::from_config(config, settings.max_concurrency)
    }

    /// Clients for another account, through sts:AssumeRole on `role_arn` with these clients' credentials.
    /// Endpoint, region, retry and timeout settings are this configuration's; the call log and the
    /// `--max-concurrency` limiter are the new account's own. The role is assumed here, so that a failure to
    /// assume is reported at once, not at first use; the session's credentials then renew themselves before
    /// they expire ([`AssumedRole`]), so a run longer than a session never meets ExpiredToken.
    /// Returns the clients and the session's ARN (`arn:...:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    pub(crate) async fn assume_role(&self, role: &AssumeRole, max_concurrency: usize) -> Result<(Clients, String)> {
        let out = self.limit(assume(&self.sts, role)).await?;
        let Some(user) = out.assumed_role_user() else {
            return Err(Error::aws(format!("sts:AssumeRole on `{}` answered without the session", role.role_arn)));
        };
        let arn = user.arn().to_string();
        let first = session_credentials(role, &out)?;
        let provider = AssumedRole { sts: self.sts.clone(), role: role.clone(), first: Mutex::new(Some(first)) };
        let config = self
            .sdk
            .to_builder()
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider))
            // The account's own identity cache, shared by its clients. The one `aws_config::load` puts in the
            // configuration would be shared by every account of a fleet, and it holds at most 64 credential
            // providers, evicting an arbitrary one beyond that (aws-smithy-runtime 1.16,
            // `client/identity/cache/lazy.rs`, DEFAULT_MAX_PARTITIONS): past 64 accounts, accounts still at work
            // lost their session and assumed the role again (480 AssumeRole calls for 100 accounts).
            .identity_cache(aws_config::identity::IdentityCache::lazy().build())
            .build();
        Ok((Clients::from_config(config, max_concurrency)?, arn))
    }

    /// The same clients in another region (same credentials, endpoint and settings), sharing this run's
    /// `--max-concurrency` bound; the call log is the region's own.
    pub(crate) fn in_region(&self, region: &str) -> Result<Clients> {
        let config = self.sdk.to_builder().region(Region::new(region.to_string())).build();
        Clients::build(config, self.limiter.clone(), self.calls.clone())
    }

    fn from_config(config: aws_config::SdkConfig, max_concurrency: usize) -> Result<Clients> {
        Clients::build(config, Arc::new(Semaphore::new(max_concurrency.max(1))), CallLog::default())
    }

    fn build(config: aws_config::SdkConfig, limiter: Arc<Semaphore>, calls: CallLog) -> Result<Clients> {
        let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
            Error::usage("no AWS region is configured").with_help(
                "pass --region (for example --region us-east-1), set AWS_REGION, or set `region` in your AWS profile",
            )
        })?;
        let retry_attempts = config.retry_config().map(|r| r.max_attempts()).unwrap_or(1);
        macro_rules! client {
            ($sdk:ident, $partition:literal) => {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(&config)
                        .interceptor(calls.clone())
                        .interceptor(deadline::TagOperation)
                        .retry_partition(retry_partition($partition))
                        .build(),
                )
            };
        }
        let iam = client!(aws_sdk_iam, "iam");
        let iam_writes = aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&config)
                .interceptor(calls.clone())
                .interceptor(deadline::TagOperation)
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        let sts = client!(aws_sdk_sts, "sts");
        let batch = client!(aws_sdk_batch, "batch");
        let lambda = client!(aws_sdk_lambda, "lambda");
        let sqs = client!(aws_sdk_sqs, "sqs");
        let sfn = client!(aws_sdk_sfn, "sfn");
        let organizations = client!(aws_sdk_organizations, "organizations");
        let cloudformation = client!(aws_sdk_cloudformation, "cloudformation");
        #[cfg(feature = "ec2")]
        let ec2 = client!(aws_sdk_ec2, "ec2");
        #[cfg(feature = "ec2")]
        let cloudwatch = client!(aws_sdk_cloudwatch, "cloudwatch");
        Ok(Clients {
            iam,
            iam_writes,
            retry_attempts,
            sts,
            batch,
            lambda,
            sqs,
            sfn,
            organizations,
            cloudformation,
            #[cfg(feature = "ec2")]
            ec2,
            #[cfg(feature = "ec2")]
            cloudwatch,
            sdk: config,
            calls,
            region,
            limiter,
        })
    }

    /// Clients around a given (mocked) IAM client, for unit tests; the other services are never called.
    #[cfg(test)]
    pub(crate) fn with_iam(iam: aws_sdk_iam::Client) -> Clients {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        Clients {
            iam_writes: iam.clone(),
            iam,
            retry_attempts: 3,
            sts: aws_sdk_sts::Client::new(&sdk),
            batch: aws_sdk_batch::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sfn: aws_sdk_sfn::Client::new(&sdk),
            organizations: aws_sdk_organizations::Client::new(&sdk),
            cloudformation: aws_sdk_cloudformation::Client::new(&sdk),
            #[cfg(feature = "ec2")]
            ec2: aws_sdk_ec2::Client::new(&sdk),
            #[cfg(feature = "ec2")]
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            sdk,
            calls: CallLog::default(),
            region: "us-east-1".into(),
            limiter: Arc::new(Semaphore::new(8)),
        }
    }

    /// Run one AWS call, waiting for a slot so that at most `--max-concurrency` requests are in flight.
    pub(crate) async fn limit<F: Future>(&self, call: F) -> F::Output {
        let _permit = self.limiter.acquire().await;
        call.await
    }

    /// Every item of a paginated call, `clients.all(iam.list_x().into_paginator().items().send())` (or every
    /// page, without `.items()`): the pages follow one another, so they share one `--max-concurrency` slot.
    pub(crate) async fn all<T, E>(&self, pages: Pages<T, E>) -> std::result::Result<Vec<T>, SdkError<E, HttpResponse>> {
        self.limit(all_pages(pages)).await
    }

    /// [`Clients::all`], its error described as "failed to list <what>: <code>: <message>" with a next step.
    pub(crate) async fn list<T, E>(&self, what: impl std::fmt::Display, pages: Pages<T, E>) -> Result<Vec<T>>
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.all(pages).await.map_err(|e| errors::describe(&format!("list {what}"), &e))
    }
}

/// What an SDK paginator's `send()` returns: the items (or pages) of a list call, each read as it is reached.
pub(crate) type Pages<T, E> =
    aws_smithy_async::future::pagination_stream::PaginationStream<std::result::Result<T, SdkError<E, HttpResponse>>>;

/// The items of every page, for a caller that already holds a request slot ([`Clients::all`] takes one).
pub(crate) async fn all_pages<T, E>(pages: Pages<T, E>) -> std::result::Result<Vec<T>, SdkError<E, HttpResponse>> {
    pages.try_collect().await
}

async fn sdk_config(settings: &AwsSettings) -> Result<aws_config::SdkConfig> {
    // rustls with ring: about 25 ms less start-up than aws-lc per process (docs/architecture.md). Each attempt
    // gets a deadline learnt from this run's answer times, within the attempt timeout below (`deadline`).
    let http = deadline::Bounded::wrap(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .build_https(),
    );
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(settings.retry_attempts.max(1))
                .with_initial_backoff(RETRY_INITIAL_BACKOFF)
                .with_max_backoff(RETRY_MAX_BACKOFF),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(deadline::ATTEMPT_TIMEOUT)
                .operation_timeout(Duration::from_secs(120))
                .build(),
        );
    if let Some(region) = &settings.region {
        check_region(region, "--region")?;
    }
    // A named profile must exist, as in the AWS CLI ("The config profile (X) could not be found"): checked
    // before any call, so that a typo never runs against whatever account the environment points at.
    let env_profile = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    match (&settings.profile, &env_profile) {
        (Some(name), _) => ensure_profile(name, "--profile").await?,
        (None, Some(name)) => ensure_profile(name, "AWS_PROFILE").await?,
        (None, None) => {}
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &settings.endpoint_url {
        check_endpoint_url(url)?;
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    if settings.region.is_none() {
        if let Some(region) = config.region() {
            check_region(region.as_ref(), "the region (from AWS_REGION or the profile)")?;
        }
    }
    let Some(profile) = &settings.profile else { return Ok(config) };
    // An explicit --profile wins over credentials in the environment, as in the AWS CLI
    // (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html: "If you specify an option by
    // using one of the environment variables described in this topic, it overrides any value loaded from a profile
    // in the configuration file" — except the --profile option, which overrides the variables). The SDK's default
    // chain reads AWS_ACCESS_KEY_ID first whatever the profile, so the profile's own provider is used instead;
    // AWS_PROFILE alone keeps its usual place after the environment's keys.
    let mut provider_config = ProviderConfig::without_region()
        .with_region(config.region().cloned())
        .with_behavior_version(Some(BehaviorVersion::latest()));
    if let Some(http) = config.http_client() {
        provider_config = provider_config.with_http_client(http);
    }
    let credentials =
        ProfileFileCredentialsProvider::builder().configure(&provider_config).profile_name(profile).build();
    Ok(config.to_builder().credentials_provider(SharedCredentialsProvider::new(credentials)).build())
}

/// The named profile is in the shared config or credentials file (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE).
async fn ensure_profile(name: &str, from: &str) -> Result<()> {
    use aws_types::os_shim_internal::{Env, Fs};
    // aws-config takes aws-runtime's EnvConfigFiles under its old name (deprecated only as a name).
    #[allow(deprecated)]
    let files = aws_config::profile::profile_file::ProfileFiles::default();
    let set = aws_config::profile::load(&Fs::real(), &Env::real(), &files, None).await;
    let known: Vec<String> = match &set {
        Ok(set) if set.get_profile(name).is_some() => return Ok(()),
        Ok(set) => set.profiles().map(str::to_string).collect(),
        Err(e) => {
            return Err(Error::usage(format!("the AWS config files cannot be read: {e}")).with_help(
                "fix ~/.aws/config and ~/.aws/credentials (or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE)",
            ))
        }
    };
    let mut known = known;
    known.sort();
    let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
    Err(Error::usage(format!("the config profile `{name}` ({from}) could not be found")).with_help(format!(
        "profiles in the AWS config and credentials files: {known}; create it with `aws configure --profile {name}` \
         (or `aws configure sso`), or name another"
    )))
}

/// A region must be a region name (`us-east-1`): anything else would reach the SDK's endpoint resolver, whose
/// error names an internal rule instead of the flag.
pub(crate) fn check_region(region: &str, from: &str) -> Result<()> {
    let ok = !region.is_empty()
        && region.len() <= 63
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
        && region.contains('-');
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!("{from} `{region}` is not an AWS region name"))
            .with_help("give a region such as us-east-1 or eu-west-2 (`aws ec2 describe-regions` lists them)"))
    }
}

/// `--endpoint-url` must be an absolute http(s) URL; catch typos before the SDK turns them into odd errors.
pub(crate) fn check_endpoint_url(url: &str) -> Result<()> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host_port = rest.map(|r| r.split(['/', '?']).next().unwrap_or_default()).unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (host_port, None),
    };
    let ok = rest.is_some()
        && !host.is_empty()
        && !url.chars().any(char::is_whitespace)
        && port.is_none_or(|p| p.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!("--endpoint-url `{url}` is not a valid URL"))
            .with_help("give an absolute http:// or https:// URL, for example --endpoint-url http://127.0.0.1:5000"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_are_checked() {
        for ok in ["http://127.0.0.1:5000", "https://iam.amazonaws.com", "http://localhost:4566/", "http://[::1]:80"] {
            assert!(check_endpoint_url(ok).is_ok(), "{ok}");
        }
        for bad in ["127.0.0.1:5000", "ftp://x", "http://", "http://host:port", "http://a b", "not a url", ""] {
            assert!(check_endpoint_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_assumed_role_asks_for_an_explicit_hour_and_assumes_again_for_new_credentials() {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
        use aws_smithy_mocks::{mock, mock_client};

        let rule = mock!(aws_sdk_sts::Client::assume_role)
            .match_requests(|r| {
                r.duration_seconds() == Some(SESSION_SECONDS)
                    && r.role_arn() == Some("arn:aws:iam::111122223333:role/Deployer")
                    && r.external_id() == Some("ext")
            })
            .then_output(|| {
                let c = aws_sdk_sts::types::Credentials::builder()
                    .access_key_id("ASIARENEWED")
                    .secret_access_key("s")
                    .session_token("t")
                    .expiration(aws_smithy_types::DateTime::from_secs(4_000_000_000))
                    .build()
                    .unwrap();
                AssumeRoleOutput::builder().credentials(c).build()
            });
        let role = AssumeRole {
            role_arn: "arn:aws:iam::111122223333:role/Deployer".into(),
            session_name: "wfboot-s".into(),
            external_id: Some("ext".into()),
            trusted: "arn:aws:iam::999988887777:user/ops".into(),
        };
        let seed = aws_credential_types::Credentials::new("ASIAFIRST", "s", Some("t".into()), None, "AssumeRole");
        let provider = AssumedRole { sts: mock_client!(aws_sdk_sts, [&rule]), role, first: Mutex::new(Some(seed)) };
        let first = provider.provide_credentials().await.unwrap();
        assert_eq!((first.access_key_id(), rule.num_calls()), ("ASIAFIRST", 0), "the run's own session first");
        let renewed = provider.provide_credentials().await.unwrap();
        assert_eq!((renewed.access_key_id(), rule.num_calls()), ("ASIARENEWED", 1), "then the role is assumed again");
        assert!(renewed.expiry().is_some(), "the renewed session's expiry is kept, so the cache renews it in turn");
    }

    #[test]
    fn reads_and_writes_are_told_apart_by_operation_name() {
        for read in
            ["GetRole", "ListAttachedRolePolicies", "GetCallerIdentity", "DescribeInstances", "SimulatePrincipalPolicy"]
        {
            assert!(is_read_operation(read), "{read}");
        }
        for write in ["CreateRole", "AttachRolePolicy", "UpdateAssumeRolePolicy", "TagRole", "AddRoleToInstanceProfile"]
        {
            assert!(!is_read_operation(write), "{write}");
        }
    }
}
