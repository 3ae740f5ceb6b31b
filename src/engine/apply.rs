//! Applying a plan: every change is one write call; a change starts as soon as the changes it depends on have
//! finished (an attachment waits for its role and its policy, nothing else), with at most
//! `--max-concurrency` requests in flight. IAM's eventual consistency is handled by bounded retries on
//! named error codes only.

use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use serde::Serialize;

use super::plan::{Change, Plan, PlannedChange};
use crate::aws::{errors, Clients};
use crate::error::Result;
use crate::resources::owner_tag;

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
    /// How long to retry errors caused by IAM's propagation delay.
    pub(crate) propagation_timeout: Duration,
    /// How long to wait for AWS's deletion task of a service-linked role.
    pub(crate) deletion_timeout: Duration,
    pub(crate) interrupted: Arc<AtomicBool>,
}

/// Hooks for the printer: a change finished; something is being waited for.
pub(crate) trait ApplyObserver {
    fn finished(&self, change: &PlannedChange, outcome: &Outcome);
    fn waiting(&self, what: &str);
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AppliedChange {
    #[serde(flatten)]
    pub(crate) change: PlannedChange,
    #[serde(flatten)]
    pub(crate) outcome: Outcome,
}

pub(crate) async fn apply(
    clients: &Clients,
    plan: &Plan,
    opts: &ApplyOptions,
    observer: &dyn ApplyObserver,
) -> Vec<AppliedChange> {
    apply_changes(clients, plan.changes().collect(), &plan.partition, &plan.account_id, opts, observer).await
}

/// Apply `changes` (of a plan for the account `account_id` in `partition`), each after what it depends on.
pub(crate) async fn apply_changes(
    clients: &Clients,
    mut changes: Vec<&PlannedChange>,
    partition: &str,
    account_id: &str,
    opts: &ApplyOptions,
    observer: &dyn ApplyObserver,
) -> Vec<AppliedChange> {
    // Every dependency has a lower rank than its dependents, so a stable sort puts it first.
    changes.sort_by_key(|c| rank(&c.change));
    let deps = dependencies(partition, account_id, &changes);

    type Task<'a> = Shared<LocalBoxFuture<'a, Outcome>>;
    let mut tasks: Vec<Task<'_>> = Vec::with_capacity(changes.len());
    for (i, change) in changes.iter().enumerate() {
        let waits: Vec<Task<'_>> = deps[i].iter().map(|&d| tasks[d].clone()).collect();
        let fresh_dependency = !waits.is_empty();
        let task = async move {
            for w in waits {
                match w.await {
                    Outcome::Done | Outcome::AlreadyDone => {}
                    Outcome::Held => {
                        return finish(
                            observer,
                            change,
                            Outcome::Skipped { reason: "it depends on a change held back".into() },
                        )
                    }
                    _ => {
                        return finish(
                            observer,
                            change,
                            Outcome::Skipped { reason: "a change it depends on did not complete".into() },
                        )
                    }
                }
            }
            if change.needs_consent && !opts.consent {
                return finish(observer, change, Outcome::Held);
            }
            if opts.interrupted.load(Ordering::SeqCst) {
                return finish(observer, change, Outcome::Skipped { reason: "interrupted".into() });
            }
            let outcome = match execute(clients, &change.change, opts, fresh_dependency, observer).await {
                Ok(o) => o,
                Err(e) => Outcome::Failed { error: e.to_string() },
            };
            finish(observer, change, outcome)
        };
        tasks.push(task.boxed_local().shared());
    }
    let outcomes = futures::future::join_all(tasks).await;
    changes.into_iter().cloned().zip(outcomes).map(|(change, outcome)| AppliedChange { change, outcome }).collect()
}

fn finish(observer: &dyn ApplyObserver, change: &PlannedChange, outcome: Outcome) -> Outcome {
    observer.finished(change, &outcome);
    outcome
}

fn rank(change: &Change) -> u8 {
    match change {
        Change::CreatePolicyVersion { .. }
        | Change::AttachRolePolicy { .. }
        | Change::AttachUserPolicy { .. }
        | Change::AddRoleToInstanceProfile { .. }
        | Change::DeletePolicy { .. }
        | Change::DeleteInstanceProfile { .. }
        | Change::DeleteRole { .. } => 1,
        _ => 0,
    }
}

/// For each change (in `changes` order), the indices of the changes it must wait for.
fn dependencies(partition: &str, account_id: &str, changes: &[&PlannedChange]) -> Vec<Vec<usize>> {
    let find = |pred: &dyn Fn(&Change) -> bool| -> Vec<usize> {
        changes.iter().enumerate().filter(|(_, c)| pred(&c.change)).map(|(i, _)| i).collect()
    };
    let policy_arn = |name: &str, path: &str| format!("arn:{partition}:iam::{account_id}:policy{path}{name}");
    changes
        .iter()
        .map(|c| match &c.change {
            Change::AttachRolePolicy { role, policy_arn: arn } => find(&|d| match d {
                Change::CreateRole { name, .. } => name == role,
                Change::CreatePolicy { name, path, .. } => policy_arn(name, path) == *arn,
                _ => false,
            }),
            Change::AttachUserPolicy { policy_arn: arn, .. } => {
                find(&|d| matches!(d, Change::CreatePolicy { name, path, .. } if policy_arn(name, path) == *arn))
            }
            Change::AddRoleToInstanceProfile { profile, role } => find(&|d| match d {
                Change::CreateRole { name, .. } => name == role,
                Change::CreateInstanceProfile { name, .. } => name == profile,
                Change::RemoveRoleFromInstanceProfile { profile: p, .. } => p == profile,
                _ => false,
            }),
            Change::CreatePolicyVersion { policy_arn: arn, .. } => {
                find(&|d| matches!(d, Change::DeletePolicyVersion { policy_arn: p, .. } if p == arn))
            }
            // A role goes once nothing holds it or is attached to it; a policy once it is attached to nothing
            // and has no other version; a profile once it is empty.
            Change::DeleteRole { name } => find(&|d| match d {
                Change::RemoveRoleFromInstanceProfile { role, .. }
                | Change::DetachRolePolicy { role, .. }
                | Change::DeleteRolePolicy { role, .. } => role == name,
                _ => false,
            }),
            Change::DeletePolicy { policy_arn: arn } => find(&|d| match d {
                Change::DeletePolicyVersion { policy_arn: p, .. }
                | Change::DetachRolePolicy { policy_arn: p, .. }
                | Change::DetachUserPolicy { policy_arn: p, .. }
                | Change::DetachGroupPolicy { policy_arn: p, .. } => p == arn,
                _ => false,
            }),
            Change::DeleteInstanceProfile { name } => {
                find(&|d| matches!(d, Change::RemoveRoleFromInstanceProfile { profile, .. } if profile == name))
            }
            _ => Vec::new(),
        })
        .collect()
}

/// Error codes (and message fragments) that mean "not propagated yet" for a change.
type RetryOn = &'static [(&'static str, &'static str)];
const NOT_PROPAGATED: RetryOn = &[("NoSuchEntity", "")];
const INVALID_PRINCIPAL: RetryOn = &[("MalformedPolicyDocument", "Invalid principal")];

async fn execute(
    clients: &Clients,
    change: &Change,
    opts: &ApplyOptions,
    fresh_dependency: bool,
    observer: &dyn ApplyObserver,
) -> Result<Outcome> {
    let iam = &clients.iam;
    let tag = owner_tag(&opts.stack);
    // Retry propagation errors only where they can be propagation: right after a dependency was created.
    let propagation = if fresh_dependency { NOT_PROPAGATED } else { &[] };
    let mut ctx = Ctx { clients, opts, observer, removal: change.is_removal() };
    match change {
        Change::CreatePolicy { name, path, description, document } => {
            let mut req =
                iam.create_policy().policy_name(name).path(path).policy_document(document.to_string()).tags(tag);
            if !description.is_empty() {
                req = req.description(description);
            }
            ctx.send(&format!("create policy `{name}`"), "", &[], || req.clone().send()).await
        }
        Change::DeletePolicyVersion { policy_arn, version_id } => {
            let req = iam.delete_policy_version().policy_arn(policy_arn).version_id(version_id);
            ctx.send(&format!("delete version {version_id} of policy `{policy_arn}`"), "", &[], || req.clone().send())
                .await
        }
        Change::CreatePolicyVersion { policy_arn, document } => {
            let req = iam
                .create_policy_version()
                .policy_arn(policy_arn)
                .policy_document(document.to_string())
                .set_as_default(true);
            ctx.send(&format!("create a new version of policy `{policy_arn}`"), "", &[], || req.clone().send()).await
        }
        Change::CreateRole { name, path, description, trust } => {
            let mut req =
                iam.create_role().role_name(name).path(path).assume_role_policy_document(trust.to_string()).tags(tag);
            if !description.is_empty() {
                req = req.description(description);
            }
            // A trust document naming another principal of this account can fail until that principal propagates.
            let names_account_principal = trust.to_string().contains("\"AWS\"");
            let retry = if names_account_principal { INVALID_PRINCIPAL } else { &[] };
            ctx.send(&format!("create role `{name}`"), "the principals in its trust document", retry, || {
                req.clone().send()
            })
            .await
        }
        Change::UpdateAssumeRolePolicy { role, desired, .. } => {
            let req = iam.update_assume_role_policy().role_name(role).policy_document(desired.to_string());
            ctx.send(&format!("update the trust document of role `{role}`"), "", &[], || req.clone().send()).await
        }
        Change::UpdateRole { role, description, .. } => {
            let req = iam.update_role().role_name(role).description(description);
            ctx.send(&format!("update the description of role `{role}`"), "", &[], || req.clone().send()).await
        }
        Change::AttachRolePolicy { role, policy_arn } => {
            let req = iam.attach_role_policy().role_name(role).policy_arn(policy_arn);
            let what = format!("role `{role}` and policy `{policy_arn}`");
            ctx.send(&format!("attach `{policy_arn}` to role `{role}`"), &what, propagation, || req.clone().send())
                .await
        }
        Change::AttachUserPolicy { user, policy_arn } => {
            let req = iam.attach_user_policy().user_name(user).policy_arn(policy_arn);
            ctx.send(
                &format!("attach `{policy_arn}` to user `{user}`"),
                &format!("policy `{policy_arn}`"),
                propagation,
                || req.clone().send(),
            )
            .await
        }
        Change::CreateInstanceProfile { name, path } => {
            let req = iam.create_instance_profile().instance_profile_name(name).path(path).tags(tag);
            ctx.send(&format!("create instance profile `{name}`"), "", &[], || req.clone().send()).await
        }
        Change::RemoveRoleFromInstanceProfile { profile, role } => {
            let req = iam.remove_role_from_instance_profile().instance_profile_name(profile).role_name(role);
            ctx.send(&format!("remove role `{role}` from instance profile `{profile}`"), "", &[], || req.clone().send())
                .await
        }
        Change::AddRoleToInstanceProfile { profile, role } => {
            let req = iam.add_role_to_instance_profile().instance_profile_name(profile).role_name(role);
            let what = format!("role `{role}` and instance profile `{profile}`");
            let action = format!("add role `{role}` to instance profile `{profile}`");
            let outcome = ctx.send(&action, &what, propagation, || req.clone().send()).await;
            // A profile holds one role: LimitExceeded is a race won by a concurrent run when it holds ours.
            if outcome.as_ref().is_err_and(|e| e.message.contains("LimitExceeded")) {
                if let Ok(Some(p)) = crate::resources::instance_profile::observe(clients, profile).await {
                    if p.roles.iter().any(|r| r == role) {
                        return Ok(Outcome::AlreadyDone);
                    }
                }
            }
            outcome
        }
        Change::CreateServiceLinkedRole { service } => {
            let req = iam.create_service_linked_role().aws_service_name(service);
            ctx.send(&format!("create the service-linked role for `{service}`"), "", &[], || req.clone().send()).await
        }
        Change::DetachRolePolicy { role, policy_arn } => {
            let req = iam.detach_role_policy().role_name(role).policy_arn(policy_arn);
            ctx.send(&format!("detach `{policy_arn}` from role `{role}`"), "", &[], || req.clone().send()).await
        }
        Change::DeleteRolePolicy { role, policy_name } => {
            let req = iam.delete_role_policy().role_name(role).policy_name(policy_name);
            ctx.send(&format!("delete inline policy `{policy_name}` of role `{role}`"), "", &[], || req.clone().send())
                .await
        }
        Change::DetachUserPolicy { user, policy_arn } => {
            let req = iam.detach_user_policy().user_name(user).policy_arn(policy_arn);
            ctx.send(&format!("detach `{policy_arn}` from user `{user}`"), "", &[], || req.clone().send()).await
        }
        Change::DetachGroupPolicy { group, policy_arn } => {
            let req = iam.detach_group_policy().group_name(group).policy_arn(policy_arn);
            ctx.send(&format!("detach `{policy_arn}` from group `{group}`"), "", &[], || req.clone().send()).await
        }
        Change::DeletePolicy { policy_arn } => {
            let req = iam.delete_policy().policy_arn(policy_arn);
            ctx.send(&format!("delete policy `{policy_arn}`"), "", &[], || req.clone().send()).await
        }
        Change::DeleteInstanceProfile { name } => {
            let req = iam.delete_instance_profile().instance_profile_name(name);
            ctx.send(&format!("delete instance profile `{name}`"), "", &[], || req.clone().send()).await
        }
        Change::DeleteRole { name } => {
            let req = iam.delete_role().role_name(name);
            ctx.send(&format!("delete role `{name}`"), "", &[], || req.clone().send()).await
        }
        Change::DeleteServiceLinkedRole { service, role } => {
            let req = iam.delete_service_linked_role().role_name(role);
            let action = format!("delete the service-linked role `{role}` of `{service}`");
            let task = match ctx.send_for_output(&action, "", &[], || req.clone().send()).await? {
                Sent::Done(out) => out.deletion_task_id,
                Sent::AlreadyDone => return Ok(Outcome::AlreadyDone),
                Sent::Skipped(reason) => return Ok(Outcome::Skipped { reason }),
            };
            observer.waiting(&format!(
                "waiting for AWS to delete service-linked role `{role}` (up to {} s)",
                opts.deletion_timeout.as_secs()
            ));
            crate::resources::service_linked_role::wait_deleted(
                clients,
                role,
                &task,
                opts.deletion_timeout,
                Duration::from_secs(1),
            )
            .await?;
            Ok(Outcome::Done)
        }
    }
}

/// What sending one write came to, with the call's output when it was made.
enum Sent<T> {
    Done(T),
    AlreadyDone,
    Skipped(String),
}

struct Ctx<'a> {
    clients: &'a Clients,
    opts: &'a ApplyOptions,
    observer: &'a dyn ApplyObserver,
    /// The change removes something: NoSuchEntity means someone else removed it already.
    removal: bool,
}

impl Ctx<'_> {
    /// Send a write; EntityAlreadyExists means someone else did it; `retry` codes are retried with
    /// exponential backoff until the propagation timeout, telling the user what is waited for.
    async fn send<T, E, R, F, Fut>(
        &mut self,
        action: &str,
        waiting_for: &str,
        retry: RetryOn,
        call: F,
    ) -> Result<Outcome>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: Debug,
    {
        Ok(match self.send_for_output(action, waiting_for, retry, call).await? {
            Sent::Done(_) => Outcome::Done,
            Sent::AlreadyDone => Outcome::AlreadyDone,
            Sent::Skipped(reason) => Outcome::Skipped { reason },
        })
    }

    async fn send_for_output<T, E, R, F, Fut>(
        &mut self,
        action: &str,
        waiting_for: &str,
        retry: RetryOn,
        mut call: F,
    ) -> Result<Sent<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: Debug,
    {
        let start = Instant::now();
        let mut delay = Duration::from_millis(250);
        let mut told = false;
        loop {
            // The interrupt is checked once a request slot is ours, so that queued changes never start.
            let interrupted = &self.opts.interrupted;
            let result = self
                .clients
                .limit(async {
                    if interrupted.load(Ordering::SeqCst) {
                        None
                    } else {
                        Some(call().await)
                    }
                })
                .await;
            let Some(result) = result else { return Ok(Sent::Skipped("interrupted".into())) };
            match result {
                Ok(output) => return Ok(Sent::Done(output)),
                Err(e) if errors::is_already_exists(&e) || is_service_linked_role_taken(&e) => {
                    return Ok(Sent::AlreadyDone)
                }
                Err(e) if self.removal && errors::is_no_such_entity(&e) => return Ok(Sent::AlreadyDone),
                Err(e) if is_retryable(&e, retry) && start.elapsed() + delay < self.opts.propagation_timeout => {
                    if !told {
                        self.observer.waiting(&format!(
                            "waiting for {waiting_for} to propagate through IAM (up to {} s)",
                            self.opts.propagation_timeout.as_secs()
                        ));
                        told = true;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(errors::describe(action, &e)),
            }
        }
    }
}

/// IAM answers a second CreateServiceLinkedRole with InvalidInput "... has been taken in this account".
fn is_service_linked_role_taken<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    let SdkError::ServiceError(se) = err else { return false };
    se.err().code() == Some("InvalidInput") && se.err().message().unwrap_or_default().contains("has been taken")
}

fn is_retryable<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, retry: RetryOn) -> bool {
    let SdkError::ServiceError(se) = err else { return false };
    let (code, message) = (se.err().code().unwrap_or_default(), se.err().message().unwrap_or_default());
    retry.iter().any(|(c, fragment)| *c == code && message.contains(fragment))
}

/// IAM's eventual consistency and races, which the emulator (immediately consistent) cannot show.
#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use aws_sdk_iam::operation::attach_role_policy::{AttachRolePolicyError, AttachRolePolicyOutput};
    use aws_sdk_iam::operation::create_role::{CreateRoleError, CreateRoleOutput};
    use aws_sdk_iam::types::error::{
        EntityAlreadyExistsException, MalformedPolicyDocumentException, NoSuchEntityException,
    };
    use aws_sdk_iam::types::Role;
    use aws_sdk_iam::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use serde_json::json;

    use super::*;
    use crate::engine::plan::{Kind, ResourcePlan};
    use crate::resources::Ownership;
    use crate::stack::Target;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);
    impl ApplyObserver for Recorder {
        fn finished(&self, _: &PlannedChange, _: &Outcome) {}
        fn waiting(&self, what: &str) {
            self.0.lock().unwrap().push(what.to_string());
        }
    }

    fn role_plan(trust: serde_json::Value, create: bool) -> Plan {
        let mut changes = Vec::new();
        if create {
            changes.push(Change::CreateRole { name: "R".into(), path: "/".into(), description: String::new(), trust });
        }
        changes.push(Change::AttachRolePolicy { role: "R".into(), policy_arn: "arn:aws:iam::aws:policy/A".into() });
        let ownership = if create { Ownership::Absent } else { Ownership::Stack };
        let target = Target { partition: "aws".into(), account_id: "111122223333".into(), region: "us-east-1".into() };
        Plan::new("s", &target, None, vec![ResourcePlan::new(Kind::Role, "R", ownership, changes, vec![])])
    }

    fn opts(timeout_ms: u64) -> ApplyOptions {
        ApplyOptions {
            stack: "s".into(),
            consent: true,
            propagation_timeout: Duration::from_millis(timeout_ms),
            deletion_timeout: Duration::from_millis(timeout_ms),
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }

    fn service_trust() -> serde_json::Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    }

    fn created() -> CreateRoleOutput {
        let role = Role::builder()
            .path("/")
            .role_name("R")
            .role_id("AROAEXAMPLE")
            .arn("arn:aws:iam::111122223333:role/R")
            .create_date(aws_smithy_types::DateTime::from_secs(0))
            .build()
            .unwrap();
        CreateRoleOutput::builder().role(role).build()
    }

    /// Modeled errors carry their code in metadata, as the SDK's deserializer sets it.
    fn meta(code: &str, message: &str) -> aws_smithy_types::error::ErrorMetadata {
        aws_smithy_types::error::ErrorMetadata::builder().code(code).message(message).build()
    }

    fn no_such_entity() -> AttachRolePolicyError {
        AttachRolePolicyError::NoSuchEntityException(
            NoSuchEntityException::builder()
                .message("Role R not found")
                .meta(meta("NoSuchEntity", "Role R not found"))
                .build(),
        )
    }

    #[tokio::test]
    async fn an_attachment_right_after_its_role_was_created_waits_for_propagation_and_says_so() {
        let create = mock!(Client::create_role).then_output(created);
        let attach = mock!(Client::attach_role_policy)
            .sequence()
            .error(no_such_entity)
            .times(2)
            .output(|| AttachRolePolicyOutput::builder().build())
            .build();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&create, &attach]);
        let recorder = Recorder::default();
        let applied = apply(&Clients::with_iam(iam), &role_plan(service_trust(), true), &opts(10_000), &recorder).await;
        assert!(applied.iter().all(|a| a.outcome == Outcome::Done), "{applied:?}");
        assert_eq!(attach.num_calls(), 3);
        let waits = recorder.0.lock().unwrap().clone();
        assert_eq!(waits.len(), 1, "the user is told once: {waits:?}");
        assert!(waits[0].contains("role `R`") && waits[0].contains("propagate"), "{waits:?}");
    }

    #[tokio::test]
    async fn propagation_retries_stop_at_the_bound_with_a_clear_error() {
        let create = mock!(Client::create_role).then_output(created);
        let attach = mock!(Client::attach_role_policy).sequence().error(no_such_entity).repeatedly().build();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&create, &attach]);
        let started = Instant::now();
        let applied =
            apply(&Clients::with_iam(iam), &role_plan(service_trust(), true), &opts(1_500), &Recorder::default()).await;
        assert!(started.elapsed() < Duration::from_secs(5), "not bounded: {:?}", started.elapsed());
        let Outcome::Failed { error } = &applied[1].outcome else { panic!("{applied:?}") };
        assert!(error.contains("NoSuchEntity") && error.contains("attach"), "{error}");
        assert!(attach.num_calls() >= 2);
    }

    #[tokio::test]
    async fn no_such_entity_without_a_fresh_dependency_is_a_real_error_and_is_not_retried() {
        let attach = mock!(Client::attach_role_policy).sequence().error(no_such_entity).repeatedly().build();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&attach]);
        let applied =
            apply(&Clients::with_iam(iam), &role_plan(service_trust(), false), &opts(10_000), &Recorder::default())
                .await;
        assert!(matches!(applied[0].outcome, Outcome::Failed { .. }), "{applied:?}");
        assert_eq!(attach.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_invalid_principal_in_a_new_trust_document_is_retried_while_the_principal_propagates() {
        let create = mock!(Client::create_role)
            .sequence()
            .error(|| {
                CreateRoleError::MalformedPolicyDocumentException(
                    MalformedPolicyDocumentException::builder()
                        .message("Invalid principal in policy: \"AWS\":\"arn:aws:iam::111122223333:role/New\"")
                        .meta(meta(
                            "MalformedPolicyDocument",
                            "Invalid principal in policy: \"AWS\":\"arn:aws:iam::111122223333:role/New\"",
                        ))
                        .build(),
                )
            })
            .output(created)
            .build();
        let attach = mock!(Client::attach_role_policy).then_output(|| AttachRolePolicyOutput::builder().build());
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&create, &attach]);
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/New"}, "Action": "sts:AssumeRole"}]});
        let recorder = Recorder::default();
        let applied = apply(&Clients::with_iam(iam), &role_plan(trust, true), &opts(10_000), &recorder).await;
        assert!(applied.iter().all(|a| a.outcome == Outcome::Done), "{applied:?}");
        assert_eq!(create.num_calls(), 2);
        assert!(recorder.0.lock().unwrap()[0].contains("principals in its trust document"));
    }

    #[tokio::test]
    async fn a_malformed_service_trust_document_is_not_retried() {
        let create = mock!(Client::create_role)
            .sequence()
            .error(|| {
                CreateRoleError::MalformedPolicyDocumentException(
                    MalformedPolicyDocumentException::builder()
                        .message("Invalid principal in policy")
                        .meta(meta("MalformedPolicyDocument", "Invalid principal in policy"))
                        .build(),
                )
            })
            .repeatedly()
            .build();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&create]);
        let applied =
            apply(&Clients::with_iam(iam), &role_plan(service_trust(), true), &opts(10_000), &Recorder::default())
                .await;
        assert!(matches!(applied[0].outcome, Outcome::Failed { .. }));
        assert!(matches!(applied[1].outcome, Outcome::Skipped { .. }), "the attachment depends on the failed create");
        assert_eq!(create.num_calls(), 1);
    }

    fn removal(change: Change) -> PlannedChange {
        PlannedChange { change, needs_consent: false }
    }

    async fn apply_removals(iam: Client, changes: &[PlannedChange]) -> Vec<AppliedChange> {
        apply_changes(
            &Clients::with_iam(iam),
            changes.iter().collect(),
            "aws",
            "111122223333",
            &opts(10_000),
            &Recorder::default(),
        )
        .await
    }

    #[tokio::test]
    async fn a_role_is_deleted_only_after_its_policy_is_detached_and_not_at_all_when_the_detach_fails() {
        let changes = [
            removal(Change::DeleteRole { name: "R".into() }),
            removal(Change::DetachRolePolicy { role: "R".into(), policy_arn: "arn:aws:iam::aws:policy/A".into() }),
        ];
        // Sequential: the detach must come first even though the delete is listed first.
        let detach = mock!(Client::detach_role_policy)
            .then_output(|| aws_sdk_iam::operation::detach_role_policy::DetachRolePolicyOutput::builder().build());
        let delete = mock!(Client::delete_role)
            .then_output(|| aws_sdk_iam::operation::delete_role::DeleteRoleOutput::builder().build());
        let applied =
            apply_removals(mock_client!(aws_sdk_iam, RuleMode::Sequential, [&detach, &delete]), &changes).await;
        assert!(applied.iter().all(|a| a.outcome == Outcome::Done), "{applied:?}");

        let detach = mock!(Client::detach_role_policy).then_error(|| {
            aws_sdk_iam::operation::detach_role_policy::DetachRolePolicyError::generic(meta(
                "AccessDenied",
                "not allowed",
            ))
        });
        let delete = mock!(Client::delete_role)
            .then_output(|| aws_sdk_iam::operation::delete_role::DeleteRoleOutput::builder().build());
        let applied = apply_removals(mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&detach, &delete]), &changes).await;
        assert_eq!(delete.num_calls(), 0, "the role was deleted although a policy is still attached");
        let Outcome::Failed { error } = &applied[0].outcome else { panic!("{applied:?}") };
        assert!(error.contains("AccessDenied") && error.contains("detach"), "{error}");
        assert!(matches!(applied[1].outcome, Outcome::Skipped { .. }), "{applied:?}");
    }

    #[tokio::test]
    async fn a_removal_of_something_already_gone_counts_as_done() {
        let delete = mock!(Client::delete_role).then_error(|| {
            aws_sdk_iam::operation::delete_role::DeleteRoleError::NoSuchEntityException(
                NoSuchEntityException::builder()
                    .message("Role R not found")
                    .meta(meta("NoSuchEntity", "Role R not found"))
                    .build(),
            )
        });
        let changes = [removal(Change::DeleteRole { name: "R".into() })];
        let applied = apply_removals(mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&delete]), &changes).await;
        assert_eq!(applied[0].outcome, Outcome::AlreadyDone);
    }

    #[tokio::test]
    async fn a_service_linked_role_aws_refuses_to_delete_is_a_failed_change_with_the_reason() {
        use aws_sdk_iam::operation::delete_service_linked_role::DeleteServiceLinkedRoleOutput;
        use aws_sdk_iam::operation::get_service_linked_role_deletion_status::GetServiceLinkedRoleDeletionStatusOutput;
        use aws_sdk_iam::types::{DeletionTaskFailureReasonType, DeletionTaskStatusType};
        let delete = mock!(Client::delete_service_linked_role)
            .then_output(|| DeleteServiceLinkedRoleOutput::builder().deletion_task_id("task-1").build().unwrap());
        let status = mock!(Client::get_service_linked_role_deletion_status).then_output(|| {
            GetServiceLinkedRoleDeletionStatusOutput::builder()
                .status(DeletionTaskStatusType::Failed)
                .reason(DeletionTaskFailureReasonType::builder().reason("the role is in use by spot requests").build())
                .build()
                .unwrap()
        });
        let changes = [removal(Change::DeleteServiceLinkedRole {
            service: "spot.amazonaws.com".into(),
            role: "AWSServiceRoleForEC2Spot".into(),
        })];
        let applied = apply_removals(mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&delete, &status]), &changes).await;
        let Outcome::Failed { error } = &applied[0].outcome else { panic!("{applied:?}") };
        assert!(error.contains("in use by spot requests"), "{error}");
        assert_eq!((delete.num_calls(), status.num_calls()), (1, 1), "a refusal is not retried");
    }

    #[tokio::test]
    async fn a_role_created_by_someone_else_meanwhile_counts_as_done_and_its_dependents_go_on() {
        let create = mock!(Client::create_role).then_error(|| {
            CreateRoleError::EntityAlreadyExistsException(
                EntityAlreadyExistsException::builder()
                    .message("Role with name R already exists.")
                    .meta(meta("EntityAlreadyExists", "Role with name R already exists."))
                    .build(),
            )
        });
        let attach = mock!(Client::attach_role_policy).then_output(|| AttachRolePolicyOutput::builder().build());
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&create, &attach]);
        let applied =
            apply(&Clients::with_iam(iam), &role_plan(service_trust(), true), &opts(10_000), &Recorder::default())
                .await;
        assert_eq!(applied[0].outcome, Outcome::AlreadyDone);
        assert_eq!(applied[1].outcome, Outcome::Done);
    }
}
