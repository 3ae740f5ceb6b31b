//! The StackSet's writes and following its operations.
//!
//! Every operation is asynchronous in CloudFormation: the call answers with an OperationId at once and the accounts
//! are deployed afterwards (DescribeStackSetOperation, ListStackSetOperationResults). Each write here sends an
//! OperationId of its own (CreateStackSet, which is synchronous, a ClientRequestToken), so the SDK's retry of a
//! call whose answer was lost resends the same operation: `OperationIdAlreadyExistsException` then means it was
//! started, and it is followed, never started twice (CloudFormation API reference, CreateStackInstances,
//! OperationId: "If you don't specify an operation ID, the SDK generates one automatically ... Repeating this stack
//! set operation with a new operation ID retries all stack instances whose status is OUTDATED";
//! https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStackInstances.html).
//!
//! One operation at a time per StackSet unless managed execution is on: `OperationInProgressException`
//! ("Another operation is currently in progress for this stack set. Only one operation can be performed for a
//! stack set at a given time.") is waited out, saying so, up to `--operation-timeout`.

use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{
    AccountFilterType, AutoDeployment, Capability, ConcurrencyMode, DeploymentTargets, ManagedExecution, Parameter,
    PermissionModels, StackSetOperationPreferences, Tag,
};
use serde::Serialize;

use super::{Amount, CallAs, Desired, Preferences, AUTO_DEPLOYMENT, MANAGED_EXECUTION};
use crate::aws::{errors, Clients};
use crate::error::{Error, ErrorKind, Result};
use crate::output::Printer;

/// Who a StackSet operation is for, as DeploymentTargets says it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Targets {
    pub(crate) org_units: Vec<String>,
    pub(crate) accounts: Vec<String>,
    /// "DIFFERENCE" (every account of the OUs but `accounts`), "INTERSECTION" (only `accounts`), or none (every
    /// account of the OUs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) filter: Option<&'static str>,
}

impl Targets {
    fn sdk(&self) -> DeploymentTargets {
        let mut t = DeploymentTargets::builder().set_organizational_unit_ids(Some(self.org_units.clone()));
        if let Some(f) = self.filter {
            t = t.set_accounts(Some(self.accounts.clone())).account_filter_type(AccountFilterType::from(f));
        }
        t.build()
    }
}

/// One operation this run started (or found started by its own earlier attempt), and how it ended.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Operation {
    pub(crate) operation_id: String,
    /// The call that started it: CreateStackInstances, UpdateStackSet, ...
    pub(crate) action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) targets: Option<Targets>,
    /// SUCCEEDED, FAILED, STOPPED, or RUNNING when the timeout came first.
    pub(crate) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status_reason: Option<String>,
    pub(crate) results: Vec<AccountResult>,
    pub(crate) seconds: f64,
}

/// One account's part of an operation (ListStackSetOperationResults).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AccountResult {
    pub(crate) account: String,
    /// PENDING, RUNNING, SUCCEEDED, FAILED or CANCELLED.
    pub(crate) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status_reason: Option<String>,
}

/// A fresh operation id: unique per write, so that a second run never collides with the first's.
/// (OperationId: 1-128 of `[a-zA-Z0-9][-a-zA-Z0-9]*`.)
pub(crate) fn operation_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("wfboot-{:x}-{:x}-{}", now.as_nanos(), std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn preferences(p: &Preferences) -> StackSetOperationPreferences {
    let mut b = StackSetOperationPreferences::builder();
    b = match p.failure_tolerance {
        Amount::Count(n) => b.failure_tolerance_count(n as i32),
        Amount::Percentage(n) => b.failure_tolerance_percentage(n as i32),
    };
    b = match p.max_concurrent {
        Amount::Count(n) => b.max_concurrent_count(n as i32),
        Amount::Percentage(n) => b.max_concurrent_percentage(n as i32),
    };
    b.concurrency_mode(if p.soft {
        ConcurrencyMode::SoftFailureTolerance
    } else {
        ConcurrencyMode::StrictFailureTolerance
    })
    .build()
}

fn parameters(desired: &Desired) -> Vec<Parameter> {
    desired.parameters.iter().map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build()).collect()
}

fn tags(desired: &Desired) -> Vec<Tag> {
    desired.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

fn auto_deployment() -> AutoDeployment {
    AutoDeployment::builder().enabled(AUTO_DEPLOYMENT.0).retain_stacks_on_account_removal(AUTO_DEPLOYMENT.1).build()
}

/// CreateStackSet: SERVICE_MANAGED, auto-deployment on (stacks kept when an account leaves), managed execution on,
/// CAPABILITY_NAMED_IAM (the template's roles and policies have names). Synchronous; `token` makes a retry of it
/// the same request.
pub(crate) async fn create_stack_set(clients: &Clients, desired: &Desired, call_as: CallAs, token: &str) -> Result<()> {
    let c = clients;
    let request = c
        .cloudformation
        .create_stack_set()
        .stack_set_name(&desired.name)
        .description(&desired.description)
        .template_body(desired.body())
        .set_parameters(Some(parameters(desired)))
        .set_tags(Some(tags(desired)))
        .capabilities(Capability::CapabilityNamedIam)
        .permission_model(PermissionModels::ServiceManaged)
        .auto_deployment(auto_deployment())
        .managed_execution(ManagedExecution::builder().active(MANAGED_EXECUTION).build())
        .call_as(call_as.sdk())
        .client_request_token(token);
    match c.limit(request.send()).await {
        Ok(_) => Ok(()),
        Err(e) => Err(errors::describe(&format!("create the StackSet {}", desired.name), &e)),
    }
}

/// UpdateStackSet with the template, parameters, tags and settings wfboot renders: every instance is deployed again.
pub(crate) async fn update_stack_set(
    printer: &Printer,
    clients: &Clients,
    desired: &Desired,
    call_as: CallAs,
    prefs: &Preferences,
    timeout: Duration,
) -> Result<String> {
    let id = operation_id();
    let tags = tags(desired);
    let out = start(printer, &desired.name, "UpdateStackSet", &id, timeout, || {
        clients
            .cloudformation
            .update_stack_set()
            .stack_set_name(&desired.name)
            .description(&desired.description)
            .template_body(desired.body())
            .set_parameters(Some(parameters(desired)))
            .set_tags(Some(tags.clone()))
            .capabilities(Capability::CapabilityNamedIam)
            .permission_model(PermissionModels::ServiceManaged)
            .auto_deployment(auto_deployment())
            .managed_execution(ManagedExecution::builder().active(MANAGED_EXECUTION).build())
            .operation_preferences(preferences(prefs))
            .operation_id(&id)
            .call_as(call_as.sdk())
            .send()
    })
    .await?;
    // The id CloudFormation answers is the one sent; an emulator may answer its own.
    Ok(out.and_then(|o| o.operation_id().map(str::to_string)).unwrap_or(id))
}

/// The parameter override of the accounts where a service-linked role exists.
fn overrides(without_service_linked: bool) -> Option<Vec<Parameter>> {
    without_service_linked.then(|| {
        vec![Parameter::builder().parameter_key(crate::export::SLR_PARAMETER).parameter_value("false").build()]
    })
}

/// CreateStackInstances for `targets` in the run's region.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn create_instances(
    printer: &Printer,
    clients: &Clients,
    name: &str,
    call_as: CallAs,
    targets: &Targets,
    without_service_linked: bool,
    prefs: &Preferences,
    timeout: Duration,
) -> Result<String> {
    let id = operation_id();
    let out = start(printer, name, "CreateStackInstances", &id, timeout, || {
        clients
            .cloudformation
            .create_stack_instances()
            .stack_set_name(name)
            .deployment_targets(targets.sdk())
            .regions(&clients.region)
            .set_parameter_overrides(overrides(without_service_linked))
            .operation_preferences(preferences(prefs))
            .operation_id(&id)
            .call_as(call_as.sdk())
            .send()
    })
    .await?;
    // The id CloudFormation answers is the one sent; an emulator may answer its own.
    Ok(out.and_then(|o| o.operation_id().map(str::to_string)).unwrap_or(id))
}

/// UpdateStackInstances: deploy the failed instances of `targets` again.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn update_instances(
    printer: &Printer,
    clients: &Clients,
    name: &str,
    call_as: CallAs,
    targets: &Targets,
    without_service_linked: bool,
    prefs: &Preferences,
    timeout: Duration,
) -> Result<String> {
    let id = operation_id();
    let out = start(printer, name, "UpdateStackInstances", &id, timeout, || {
        clients
            .cloudformation
            .update_stack_instances()
            .stack_set_name(name)
            .deployment_targets(targets.sdk())
            .regions(&clients.region)
            .set_parameter_overrides(overrides(without_service_linked))
            .operation_preferences(preferences(prefs))
            .operation_id(&id)
            .call_as(call_as.sdk())
            .send()
    })
    .await?;
    // The id CloudFormation answers is the one sent; an emulator may answer its own.
    Ok(out.and_then(|o| o.operation_id().map(str::to_string)).unwrap_or(id))
}

/// DeleteStackInstances for `targets`, their stacks deleted with their resources (RetainStacks false).
pub(crate) async fn delete_instances(
    printer: &Printer,
    clients: &Clients,
    name: &str,
    call_as: CallAs,
    targets: &Targets,
    prefs: &Preferences,
    timeout: Duration,
) -> Result<String> {
    let id = operation_id();
    let out = start(printer, name, "DeleteStackInstances", &id, timeout, || {
        clients
            .cloudformation
            .delete_stack_instances()
            .stack_set_name(name)
            .deployment_targets(targets.sdk())
            .regions(&clients.region)
            .retain_stacks(false)
            .operation_preferences(preferences(prefs))
            .operation_id(&id)
            .call_as(call_as.sdk())
            .send()
    })
    .await?;
    // The id CloudFormation answers is the one sent; an emulator may answer its own.
    Ok(out.and_then(|o| o.operation_id().map(str::to_string)).unwrap_or(id))
}

/// DeleteStackSet, once it has no instance left.
pub(crate) async fn delete_stack_set(clients: &Clients, name: &str, call_as: CallAs) -> Result<()> {
    let c = clients;
    match c.limit(c.cloudformation.delete_stack_set().stack_set_name(name).call_as(call_as.sdk()).send()).await {
        Ok(_) => Ok(()),
        Err(e) if errors::code(&e) == Some("StackSetNotFoundException") => Ok(()),
        Err(e) => Err(errors::describe(&format!("delete the StackSet {name}"), &e)),
    }
}

/// The pause before the next look at a running operation: 0.5 s, growing by half up to 10 s.
fn next_pause(pause: Duration) -> Duration {
    (pause * 3 / 2).min(Duration::from_secs(10))
}

/// Send `call` (an operation carrying `id`): an operation already running on the StackSet is waited out, saying
/// so; the same id already known means this operation was started (by an attempt whose answer was lost).
async fn start<F, Fut, T, E>(
    printer: &Printer,
    name: &str,
    action: &str,
    id: &str,
    timeout: Duration,
    call: F,
) -> Result<Option<T>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<
        Output = std::result::Result<
            T,
            aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
        >,
    >,
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(500);
    let mut said = false;
    loop {
        match call().await {
            Ok(out) => return Ok(Some(out)),
            Err(e) if errors::code(&e) == Some("OperationIdAlreadyExistsException") => {
                printer.detail(&format!(
                    "{action}: operation {id} was already started (its first answer was lost); following it"
                ));
                return Ok(None);
            }
            Err(e) if errors::code(&e) == Some("OperationInProgressException") => {
                if started.elapsed() >= timeout {
                    return Err(Error::aws(format!(
                        "another operation on StackSet {name} was still running after {:.0} s \
                         (OperationInProgressException); {action} was not started, nothing was written",
                        started.elapsed().as_secs_f64()
                    ))
                    .with_help(format!(
                        "`aws cloudformation list-stack-set-operations --stack-set-name {name}` shows it; run again once \
                         it has finished, or raise --operation-timeout"
                    ))
                    .with_code("OperationInProgressException"));
                }
                if !said {
                    printer.info(&format!(
                        "StackSet {name}: another operation is running (OperationInProgressException); waiting for it \
                         before {action} (up to --operation-timeout, {} s)",
                        timeout.as_secs()
                    ));
                    said = true;
                }
                // Ctrl-C while waiting: this run's operation was not started (once a run has followed an operation,
                // the process no longer ends by itself on Ctrl-C: it is answered here).
                tokio::select! {
                    _ = tokio::time::sleep(pause.min(timeout.saturating_sub(started.elapsed()))) => {}
                    _ = tokio::signal::ctrl_c() => {
                        return Err(Error::new(
                            ErrorKind::Interrupted,
                            format!("interrupted while waiting for another operation on StackSet {name}; {action} \
                                     was not started"),
                        )
                        .with_help("run the same command again: it reads where the StackSet stands"));
                    }
                }
                pause = next_pause(pause);
            }
            Err(e) => return Err(errors::describe(&format!("{action} on StackSet {name}"), &e)),
        }
    }
}

/// Follow operation `id` to its end with a progress bar of the accounts (succeeded, failed, pending), polling
/// DescribeStackSetOperation and ListStackSetOperationResults with backoff; `expected`: the accounts it is for, as
/// far as the plan knows. On Ctrl-C the run ends as interrupted (exit 130), saying that the operation goes on in
/// CloudFormation, which runs it without this process, and how to follow or stop it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn follow(
    printer: &Printer,
    clients: &Clients,
    name: &str,
    call_as: CallAs,
    action: &str,
    id: &str,
    targets: Option<Targets>,
    expected: usize,
    timeout: Duration,
) -> Result<Operation> {
    let bar = printer.bar(expected as u64, &format!("{action}: starting"));
    let bar = &bar;
    let followed = async move {
        let c = clients;
        let started = Instant::now();
        let mut pause = Duration::from_millis(500);
        loop {
            let described = c.limit(
                c.cloudformation
                    .describe_stack_set_operation()
                    .stack_set_name(name)
                    .operation_id(id)
                    .call_as(call_as.sdk())
                    .send(),
            );
            let listed = c.all(
                c.cloudformation
                    .list_stack_set_operation_results()
                    .stack_set_name(name)
                    .operation_id(id)
                    .call_as(call_as.sdk())
                    .into_paginator()
                    .send(),
            );
            let (described, listed) = tokio::join!(described, listed);
            let described =
                described.map_err(|e| errors::describe(&format!("follow operation {id} of StackSet {name}"), &e))?;
            let listed = listed.map_err(|e| errors::describe(&format!("read the results of operation {id}"), &e))?;
            let op = described.stack_set_operation();
            let status = op.and_then(|o| o.status()).map(|s| s.as_str().to_string()).unwrap_or_default();
            let results: Vec<AccountResult> = listed
                .iter()
                .flat_map(|p| p.summaries())
                .filter_map(|r| {
                    Some(AccountResult {
                        account: r.account()?.to_string(),
                        status: r.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                        status_reason: r.status_reason().filter(|s| !s.is_empty()).map(str::to_string),
                    })
                })
                .collect();
            let count = |s: &str| results.iter().filter(|r| r.status == s).count();
            let (ok, failed) = (count("SUCCEEDED"), count("FAILED") + count("CANCELLED"));
            let total = expected.max(results.len());
            bar.set_length(total as u64);
            bar.set_position((ok + failed) as u64);
            bar.set_message(format!(
                "{action}: {ok} succeeded, {failed} failed, {} pending",
                total.saturating_sub(ok + failed)
            ));
            let done = matches!(status.as_str(), "SUCCEEDED" | "FAILED" | "STOPPED");
            if done || started.elapsed() >= timeout {
                bar.finish_and_clear();
                let operation = Operation {
                    operation_id: id.to_string(),
                    action: action.to_string(),
                    targets,
                    status: status.clone(),
                    status_reason: op.and_then(|o| o.status_reason()).filter(|s| !s.is_empty()).map(str::to_string),
                    results,
                    seconds: started.elapsed().as_secs_f64(),
                };
                printer.info(&format!(
                    "StackSet {name}: {action} {status} in {:.1} s: {ok} account{} succeeded, {failed} failed (operation {id})",
                    operation.seconds,
                    crate::wording::plural(ok)
                ));
                if !done {
                    return Err(Error::aws(format!(
                        "operation {id} ({action}) of StackSet {name} was still {status} after {:.0} s; it goes on in \
                         CloudFormation",
                        operation.seconds
                    ))
                    .with_help(
                        "run the same command again later: it reads where the StackSet stands (or raise --operation-timeout)",
                    ));
                }
                return Ok(operation);
            }
            tokio::time::sleep(pause.min(timeout.saturating_sub(started.elapsed()))).await;
            pause = next_pause(pause);
        }
    };
    tokio::select! {
        out = followed => out,
        _ = tokio::signal::ctrl_c() => {
            bar.finish_and_clear();
            let call_as = match call_as {
                CallAs::Management => "",
                CallAs::DelegatedAdmin => " --call-as DELEGATED_ADMIN",
            };
            Err(Error::new(
                ErrorKind::Interrupted,
                format!("interrupted while following operation {id} ({action}) of StackSet {name}: it goes on in \
                         CloudFormation"),
            )
            .with_help(format!(
                "the next run of the same command reads where it stands (it waits for a running operation before \
                 any write of its own); to stop the operation: aws cloudformation stop-stack-set-operation \
                 --stack-set-name {name} --operation-id {id}{call_as}"
            )))
        }
    }
}

#[cfg(test)]
// The SDK's own error type, answered as the SDK answers it.
#[allow(clippy::result_large_err)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_sdk_cloudformation::operation::create_stack_instances::{
        CreateStackInstancesError, CreateStackInstancesOutput,
    };
    use aws_sdk_cloudformation::types::error::{OperationIdAlreadyExistsException, OperationInProgressException};
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    type Answer = std::result::Result<CreateStackInstancesOutput, SdkError<CreateStackInstancesError, Response>>;

    fn refused(code: &str) -> Answer {
        let meta = ErrorMetadata::builder().code(code).message("refused").build();
        let err = match code {
            "OperationIdAlreadyExistsException" => CreateStackInstancesError::OperationIdAlreadyExistsException(
                OperationIdAlreadyExistsException::builder().meta(meta).build(),
            ),
            _ => CreateStackInstancesError::OperationInProgressException(
                OperationInProgressException::builder().meta(meta).build(),
            ),
        };
        let status = StatusCode::try_from(409).unwrap();
        Err(SdkError::service_error(err, Response::new(status, SdkBody::empty())))
    }

    fn quiet() -> Printer {
        Printer::new(crate::cli::OutputFormat::Text, true, 0, true)
    }

    /// `answers` in turn, counting the calls.
    async fn start_with(answers: Vec<Answer>, timeout: Duration) -> (Result<bool>, usize) {
        let calls = AtomicUsize::new(0);
        let answers = std::sync::Mutex::new(answers.into_iter());
        let r = start(&quiet(), "s", "CreateStackInstances", "op-1", timeout, || {
            calls.fetch_add(1, Ordering::SeqCst);
            let next = answers.lock().unwrap().next().expect("no more answers");
            async move { next }
        })
        .await;
        (r.map(|o| o.is_some()), calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn an_operation_id_already_known_is_this_operation_started_by_a_lost_attempt_never_a_second_one() {
        let (r, calls) = start_with(vec![refused("OperationIdAlreadyExistsException")], Duration::from_secs(5)).await;
        assert_eq!((r.unwrap(), calls), (false, 1), "followed, not sent again");
    }

    #[tokio::test]
    async fn an_operation_in_progress_is_waited_for_then_the_same_operation_starts() {
        let ok = Ok(CreateStackInstancesOutput::builder().operation_id("op-1").build());
        let answers = vec![refused("OperationInProgressException"), refused("OperationInProgressException"), ok];
        let started = std::time::Instant::now();
        let (r, calls) = start_with(answers, Duration::from_secs(30)).await;
        assert_eq!((r.unwrap(), calls), (true, 3));
        assert!(started.elapsed() >= Duration::from_millis(1200), "backed off 0.5 s then 0.75 s");
    }

    #[tokio::test]
    async fn an_operation_still_in_progress_after_the_timeout_is_a_clear_stop_with_nothing_started() {
        let answers = (0..10).map(|_| refused("OperationInProgressException")).collect();
        let (r, calls) = start_with(answers, Duration::from_millis(800)).await;
        let e = r.unwrap_err();
        assert!(e.is_code("OperationInProgressException"), "{e}");
        assert!(e.message.contains("CreateStackInstances was not started, nothing was written"), "{e}");
        assert!(e.help.unwrap().contains("--operation-timeout"));
        assert!((2..=4).contains(&calls), "{calls}");
    }
}
