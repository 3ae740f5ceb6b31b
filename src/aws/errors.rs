//! Turning SDK errors into "failed to <verb> <resource> `name`: <code>: <message>" with a next step.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::deadline;
use crate::error::Error;

/// The AWS error code of a failed call, if the service answered with one.
pub(crate) fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// True when the service said the entity does not exist (IAM's `NoSuchEntity`).
pub(crate) fn is_no_such_entity<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    code(err) == Some("NoSuchEntity")
}

/// True when the service refused the call: an access-denied code, or HTTP 403 when the answer's error could not
/// be read (some emulators nest it differently from AWS).
pub(crate) fn is_access_denied<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(e) => match e.err().code() {
            Some(code) => matches!(code, "AccessDenied" | "AccessDeniedException"),
            None => e.raw().status().as_u16() == 403,
        },
        _ => false,
    }
}

pub(crate) fn is_already_exists<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    code(err) == Some("EntityAlreadyExists")
}

/// The error's code and message, when the service answered with an error.
pub(crate) fn code_and_message<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<(&str, &str)> {
    match err {
        SdkError::ServiceError(e) => Some((e.err().code()?, e.err().message().unwrap_or_default())),
        _ => None,
    }
}

/// A failure that sending the same request again may get past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transient {
    /// AWS refused the request for its rate: it did nothing.
    Throttled,
    /// The request may or may not have taken effect: the connection broke, the attempt timed out, the answer
    /// could not be read, or AWS answered 5xx.
    MaybeApplied,
}

/// The throttling codes the SDK's standard retry mode retries (smithy-rs aws/rust-runtime/aws-runtime
/// `src/retries/classifiers.rs`, THROTTLING_ERRORS), less `LimitExceededException`, which IAM-family services
/// also use for quotas.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Whether `err` is transient, and of which sort. IAM answers its internal errors `ServiceFailure` (HTTP 500;
/// IAM API reference, "Common errors": https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html);
/// any 5xx counts, as in the SDK's standard retry mode (`HttpStatusCodeClassifier`: 500, 502, 503, 504).
pub(crate) fn transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<Transient> {
    match err {
        SdkError::ServiceError(service) => {
            if service.err().code().is_some_and(|c| THROTTLING_CODES.contains(&c)) {
                Some(Transient::Throttled)
            } else if service.raw().status().as_u16() >= 500
                || matches!(service.err().code(), Some("ServiceFailure" | "InternalFailure" | "ServiceUnavailable"))
            {
                Some(Transient::MaybeApplied)
            } else {
                None
            }
        }
        // Nothing listens at an endpoint that never answered: sending again cannot help (`deadline`).
        SdkError::DispatchFailure(_) if refused_endpoint(err).is_some() => None,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Some(Transient::MaybeApplied)
        }
        _ => None,
    }
}

/// The endpoint, when the call failed because an endpoint that has not answered once in this run refused the
/// connection ([`deadline::EndpointRefused`]).
pub(crate) fn refused_endpoint<E, R>(err: &SdkError<E, R>) -> Option<&str> {
    let SdkError::DispatchFailure(failure) = err else { return None };
    let connector = failure.as_connector_error()?;
    deadline::find::<deadline::EndpointRefused>(connector).map(|r| r.endpoint.as_str())
}

/// The attempt's deadline, when the call's last attempt got no answer within it ([`deadline::NoAnswer`]).
fn no_answer<E, R>(err: &SdkError<E, R>) -> Option<&deadline::NoAnswer> {
    let SdkError::DispatchFailure(failure) = err else { return None };
    deadline::find::<deadline::NoAnswer>(failure.as_connector_error()?)
}

/// The error in a few words, for a log line: its code, or the kind of failure.
pub(crate) fn short<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("an error without a code").to_string(),
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(_) => match (refused_endpoint(err), no_answer(err)) {
            (Some(endpoint), _) => format!("{endpoint} refused the connection"),
            (_, Some(no_answer)) => format!("no answer within {:.1} s", no_answer.after.as_secs_f64()),
            _ => "the connection failed".into(),
        },
        SdkError::ResponseError(_) => "the answer could not be read".into(),
        _ => "failed".into(),
    }
}

/// "failed to <action>: <code>: <message>" plus the next step for the error's kind.
pub(crate) fn describe<E, R>(action: &str, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("UnknownError");
            let message = e.message().unwrap_or("(no message)");
            let help = denied_by(code, message).unwrap_or_else(|| match THROTTLING_CODES.contains(&code) {
                true => THROTTLED_HELP,
                false => help_for_code(code),
            });
            let err = Error::aws(format!("failed to {action}: {code}: {message}")).with_help(help);
            match e.code() {
                Some(code) => err.with_code(code),
                None => err,
            }
        }
        other => {
            let detail = DisplayErrorContext(other).to_string();
            if detail.contains("no providers in chain provided credentials")
                || detail.contains("CredentialsNotLoaded")
                || detail.contains("failed to load credentials")
                || detail.contains("No credentials")
            {
                Error::aws(format!("failed to {action}: no AWS credentials were found")).with_help(NO_CREDENTIALS_HELP)
            } else if let Some(endpoint) = refused_endpoint(other) {
                Error::aws(format!(
                    "failed to {action}: could not reach AWS: {endpoint} refused the connection (nothing listens there)"
                ))
                .with_help(REFUSED_HELP)
            } else if let Some(no_answer) = no_answer(other) {
                Error::aws(format!(
                    "failed to {action}: no answer within {:.1} s, on every attempt",
                    no_answer.after.as_secs_f64()
                ))
                .with_help("check the network and --endpoint-url; a re-run continues where this one stopped")
            } else if matches!(other, SdkError::TimeoutError(_)) {
                Error::aws(format!("failed to {action}: the request timed out"))
                    .with_help("check the network and --endpoint-url; a re-run continues where this one stopped")
            } else if matches!(other, SdkError::DispatchFailure(_)) {
                Error::aws(format!("failed to {action}: could not reach AWS: {detail}")).with_help(
                    "check the network, --endpoint-url and --region; a re-run continues where this one stopped",
                )
            } else {
                Error::aws(format!("failed to {action}: {detail}"))
            }
        }
    }
}

/// What to do when the endpoint refused the connection before it ever answered.
const REFUSED_HELP: &str = "check --endpoint-url (or AWS_ENDPOINT_URL, or the profile's endpoint_url): is the \
    address right, and is the service (or emulator) running there? Without them the AWS endpoint of --region is used";

/// What to do when no credentials were found. In a container on EC2 the instance role is reached through IMDSv2,
/// whose token PUT needs two network hops; with the default hop limit of 1 it times out, and the Rust SDK has no
/// IMDSv1 fallback (awslabs/aws-sdk-rust#540).
pub(crate) const NO_CREDENTIALS_HELP: &str = "configure credentials the usual AWS way: `aws configure`, \
    `aws sso login --profile NAME` then --profile NAME, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment; \
    in a container on EC2, the instance role needs the instance metadata hop limit raised to 2 \
    (`aws ec2 modify-instance-metadata-options --instance-id ID --http-put-response-hop-limit 2`: IMDSv2 times out \
    at the default of 1, and this SDK does not fall back to IMDSv1)";

/// The next step for an explicit deny that `wfboot check` cannot show. AWS names the kind of policy only in the
/// message ("... with an explicit deny in a service control policy" / "... in a permissions boundary"; IAM user
/// guide, "Troubleshoot access denied error messages":
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html), so the message is read
/// here, for the help line only: the error's code stays AccessDenied.
fn denied_by(code: &str, message: &str) -> Option<&'static str> {
    if !matches!(code, "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation") {
        return None;
    }
    let message = message.to_ascii_lowercase();
    if message.contains("service control policy") {
        Some(
            "a service control policy of your AWS Organization denies this, which IAM's policy simulator (and so              `wfboot check`) does not evaluate: ask the organisation's administrators to allow the action for              this account (or its OU), or run in an account the policy does not cover",
        )
    } else if message.contains("permissions boundary") {
        Some(
            "a permissions boundary on your own user or role denies this: the boundary caps what your policies              grant; ask your administrators to widen it (`wfboot whoami` shows who you are)",
        )
    } else if message.contains("session policy") {
        Some("a session policy passed when your session was created denies this: start a session without it")
    } else {
        None
    }
}

/// What to do once every attempt was throttled (any of [`THROTTLING_CODES`]).
const THROTTLED_HELP: &str =
    "AWS kept throttling after the retries: run again (nothing is repeated), or lower --max-concurrency / raise --retry-attempts";

fn help_for_code(code: &str) -> &'static str {
    match code {
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
            "the caller is not allowed to do this: run `wfboot check` to see which permissions are missing"
        }
        "InvalidClientTokenId" | "SignatureDoesNotMatch" | "UnrecognizedClientException" => {
            "AWS rejected the credentials: check AWS_PROFILE / --profile and the access key in use (`aws sts get-caller-identity`)"
        }
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
            "the session has expired: refresh it (for example `aws sso login`) and run again"
        }
        "LimitExceeded" | "LimitExceededException" => "an IAM quota is reached: remove unused entities or ask for a quota increase",
        "MalformedPolicyDocument" => "fix the template's JSON or its principals; `wfboot stacks show` prints the rendered document",
        "NoSuchEntity" => "it does not exist (yet): run again, and check the names in the stack",
        "ConcurrentModification" => {
            "something else kept changing the same entity: run again (nothing is repeated)"
        }
        "DeleteConflict" => "it is still attached to something: run again, or see `wfboot destroy --dry-run`",
        "EntityAlreadyExists" => "it was created by someone else meanwhile: run again to continue from the current state",
        // "service-linked roles are protected AWS resources. Only the service that depends on the service-linked
        // role can modify or delete the role" (https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateRole.html,
        // also the answer of PutRolePermissionsBoundary, AttachRolePolicy, TagRole on such a role).
        "UnmodifiableEntity" => {
            "the role is a service-linked role, which only its service may change: take it out of the stack's \
             [[role]]s (list its service as a [[service_linked_role]] instead); no permissions boundary or tag can \
             be set on it"
        }
        // "temporarily unmodifiable, such as a user name that was deleted and then recreated ... likely to succeed if
        // you try again after waiting several minutes"
        // (https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeleteLoginProfile.html).
        "EntityTemporarilyUnmodifiable" => {
            "IAM is still settling an earlier change to it (deleted and recreated just now): wait several minutes \
             and run again (nothing is repeated)"
        }
        // "AWS service role policies can only be attached to the service-linked role for that service"
        // (https://docs.aws.amazon.com/IAM/latest/APIReference/API_AttachRolePolicy.html).
        "PolicyNotAttachable" => {
            "this AWS managed policy is for its service's service-linked role only: remove it from the role's \
             managed_policies and add the service as a [[service_linked_role]]"
        }
        "ServiceFailure" | "InternalFailure" | "ServiceUnavailable" => "AWS had an internal error: run again; the run continues where it stopped",
        _ => "run again with -v for details; a re-run continues where this one stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::help_for_code;

    #[test]
    fn the_codes_of_protected_settling_and_service_only_entities_say_what_to_do() {
        assert!(help_for_code("UnmodifiableEntity").contains("[[service_linked_role]]"));
        assert!(help_for_code("EntityTemporarilyUnmodifiable").contains("wait several minutes"));
        assert!(help_for_code("PolicyNotAttachable").contains("managed_policies"));
        assert!(help_for_code("SomethingElse").contains("-v"));
    }

    #[test]
    fn an_explicit_deny_of_a_service_control_policy_or_boundary_is_named_with_its_own_help() {
        use super::denied_by;
        let scp = "User: arn:aws:iam::123456789012:user/demo is not authorized to perform: iam:CreateRole on \
                   resource: arn:aws:iam::123456789012:role/R with an explicit deny in a service control policy";
        assert!(denied_by("AccessDenied", scp).unwrap().contains("does not evaluate"));
        let boundary = "User: arn:aws:iam::123456789012:user/demo is not authorized to perform: iam:CreateRole \
                        on resource: R with an explicit deny in a permissions boundary";
        assert!(denied_by("AccessDenied", boundary).unwrap().contains("permissions boundary"));
        assert_eq!(denied_by("AccessDenied", "User: u is not authorized to perform: iam:CreateRole"), None);
        assert_eq!(denied_by("MalformedPolicyDocument", scp), None);
    }
}
