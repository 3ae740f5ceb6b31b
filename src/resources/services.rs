//! One read-only call per workflow service: can the operator use Batch, Lambda, SQS and Step Functions in
//! the chosen region?

use serde::Serialize;

use crate::aws::{errors, Clients};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServiceProbe {
    pub(crate) service: &'static str,
    pub(crate) call: &'static str,
    pub(crate) ok: bool,
    /// The AWS error code or connection problem, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

fn probe<T, E, R>(
    service: &'static str,
    call: &'static str,
    result: Result<T, aws_smithy_runtime_api::client::result::SdkError<E, R>>,
) -> ServiceProbe
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => ServiceProbe { service, call, ok: true, error: None },
        Err(e) => {
            let error = match errors::code(&e) {
                Some(code) => code.to_string(),
                None => errors::describe(call, &e).message,
            };
            ServiceProbe { service, call, ok: false, error: Some(error) }
        }
    }
}

pub(crate) async fn probe_all(clients: &Clients) -> Vec<ServiceProbe> {
    let batch = clients.limit(clients.batch.describe_compute_environments().max_results(1).send());
    let lambda = clients.limit(clients.lambda.list_functions().max_items(1).send());
    let sqs = clients.limit(clients.sqs.list_queues().max_results(1).send());
    let sfn = clients.limit(clients.sfn.list_state_machines().max_results(1).send());
    let (batch, lambda, sqs, sfn) = tokio::join!(batch, lambda, sqs, sfn);
    vec![
        probe("Batch", "batch:DescribeComputeEnvironments", batch),
        probe("Lambda", "lambda:ListFunctions", lambda),
        probe("SQS", "sqs:ListQueues", sqs),
        probe("Step Functions", "states:ListStateMachines", sfn),
    ]
}
