//! Applying a plan: every change is one write call; a change starts as soon as the changes it depends on have
//! finished (an attachment waits for its role and its policy, nothing else), with at most
//! `--max-concurrency` requests in flight. AWS's eventual consistency and concurrency are handled by bounded
//! retries on named error codes only, each rule with the write call it applies to ([`Retry`]), and the time
//! spent waiting and the retries are counted ([`Waits`]).

use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use serde::Serialize;

use crate::aws::{errors, Clients};
use crate::error::Result;
use crate::resources::plan::{Change, Plan, PlannedChange};
use crate::resources::{instance_profile, owner_tag, policy, role, Ownership, OWNER_TAG};

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
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AppliedChange {
    #[serde(flatten)]
    pub(crate) change: PlannedChange,
    #[serde(flatten)]
    pub(crate) outcome: Outcome,
    /// Times the call was sent again after an error AWS gives while it catches up ([`Retry`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) retries: usize,
    /// Time spent waiting before those retries.
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub(crate) waited_seconds: f64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
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
    async fn wait_for<F: Future>(&self, what: F) -> F::Output {
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

    fn turn(&self, entity: &str) -> Arc<tokio::sync::Mutex<()>> {
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

/// A delay in [delay/2, delay), so that writers that collided do not retry in step.
pub(crate) fn jittered(delay: Duration) -> Duration {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let fraction = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    delay.mul_f64(0.5 + fraction / 2.0)
}

pub(crate) async fn apply(
    clients: &Clients,
    plan: &Plan,
    opts: &ApplyOptions,
    observer: &dyn ApplyObserver,
) -> Vec<AppliedChange> {
    apply_changes(clients, plan.changes().collect(), &plan.partition, &plan.account_id, opts, observer).await
}

/// How a change's task ended, as the changes that depend on it see it.
#[derive(Debug, Clone)]
struct Finished {
    outcome: Outcome,
    /// The change found its resource already there and not this stack's (EntityAlreadyExists, no tag).
    foreign: bool,
    retries: usize,
    waited: Duration,
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

    type Task<'a> = Shared<LocalBoxFuture<'a, Finished>>;
    let mut tasks: Vec<Task<'_>> = Vec::with_capacity(changes.len());
    for (i, change) in changes.iter().enumerate() {
        let waits: Vec<Task<'_>> = deps[i].iter().map(|&d| tasks[d].clone()).collect();
        let after_dependency = !waits.is_empty();
        let task = async move {
            let stop = |outcome| Finished { outcome, foreign: false, retries: 0, waited: Duration::ZERO };
            for w in waits {
                let dependency = w.await;
                match dependency.outcome {
                    Outcome::Done | Outcome::AlreadyDone if dependency.foreign && !opts.consent => {
                        // It depends on something that turned out to be someone else's: as for any resource
                        // wfboot did not create, changing it needs consent.
                        return stop(finish(observer, change, Outcome::Held));
                    }
                    Outcome::Done | Outcome::AlreadyDone => {}
                    Outcome::Held => {
                        return stop(finish(
                            observer,
                            change,
                            Outcome::Skipped { reason: "it depends on a change held back".into() },
                        ))
                    }
                    _ => {
                        return stop(finish(
                            observer,
                            change,
                            Outcome::Skipped { reason: "a change it depends on did not complete".into() },
                        ))
                    }
                }
            }
            if change.needs_consent && !opts.consent {
                return stop(finish(observer, change, Outcome::Held));
            }
            if opts.interrupted.load(Ordering::SeqCst) {
                return stop(finish(observer, change, Outcome::Skipped { reason: "interrupted".into() }));
            }
            let mut ctx = Ctx { clients, opts, observer, partition, account_id, retries: 0, waited: Duration::ZERO };
            let (outcome, foreign) = match execute(&mut ctx, &change.change, after_dependency).await {
                Ok(done) => done,
                Err(e) => (Outcome::Failed { error: e.to_string() }, false),
            };
            Finished { outcome: finish(observer, change, outcome), foreign, retries: ctx.retries, waited: ctx.waited }
        };
        tasks.push(task.boxed_local().shared());
    }
    let finished = futures::future::join_all(tasks).await;
    changes
        .into_iter()
        .cloned()
        .zip(finished)
        .map(|(change, f)| AppliedChange {
            change,
            outcome: f.outcome,
            retries: f.retries,
            waited_seconds: (f.waited.as_secs_f64() * 1000.0).round() / 1000.0,
        })
        .collect()
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

/// An error a write is sent again for: AWS answers it while it catches up, and says so by the code alone (or,
/// where AWS gives no other signal, by the code and a fragment of the message). Every rule is bounded by
/// `--propagation-timeout`, with exponential backoff and jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
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

    fn first_delay(self) -> Duration {
        match self {
            // Another writer's call takes a moment: retry soon, spread out.
            Retry::Concurrent => Duration::from_millis(150),
            _ => Duration::from_millis(250),
        }
    }
}

/// The retry rules of a write: ConcurrentModification for every IAM write, the others where they can apply.
fn rules(extra: &[Retry]) -> Vec<Retry> {
    let mut all = vec![Retry::Concurrent];
    all.extend_from_slice(extra);
    all
}

/// Run one change. Returns its outcome and whether its resource turned out to be someone else's.
async fn execute(ctx: &mut Ctx<'_>, change: &Change, after_dependency: bool) -> Result<(Outcome, bool)> {
    let iam = &ctx.clients.iam;
    let opts = ctx.opts;
    let tag = owner_tag(&opts.stack);
    // Retry propagation errors only where they can be propagation: right after a dependency was created, or
    // removed (a delete right after this run removed the entity's last link).
    let not_propagated: &[Retry] = if after_dependency { &[Retry::NotPropagated] } else { &[] };
    let conflict: &[Retry] = if after_dependency { &[Retry::DeleteConflict] } else { &[] };
    let removal = change.is_removal();
    let plain = |outcome: Result<Outcome>| outcome.map(|o| (o, false));
    match change {
        Change::CreatePolicy { name, path, description, document } => {
            let mut req =
                iam.create_policy().policy_name(name).path(path).policy_document(document.to_string()).tags(tag);
            if !description.is_empty() {
                req = req.description(description);
            }
            let about = format!("policy `{name}`");
            let action = format!("create policy `{name}`");
            let outcome = ctx.send(&action, &about, &rules(&[]), false, || req.clone().send()).await?;
            let (clients, arn) =
                (ctx.clients, format!("arn:{}:iam::{}:policy{path}{name}", ctx.partition, ctx.account_id));
            ctx.created_or_found(outcome, &about, || policy::tags(clients, &arn)).await
        }
        Change::DeletePolicyVersion { policy_arn, version_id } => {
            let req = iam.delete_policy_version().policy_arn(policy_arn).version_id(version_id);
            let about = format!("policy `{policy_arn}`");
            let action = format!("delete version {version_id} of policy `{policy_arn}`");
            plain(ctx.send(&action, &about, &rules(&[]), removal, || req.clone().send()).await)
        }
        Change::CreatePolicyVersion { policy_arn, document } => {
            let req = iam
                .create_policy_version()
                .policy_arn(policy_arn)
                .policy_document(document.to_string())
                .set_as_default(true);
            let about = format!("policy `{policy_arn}`");
            let action = format!("create a new version of policy `{policy_arn}`");
            plain(ctx.send(&action, &about, &rules(&[]), removal, || req.clone().send()).await)
        }
        Change::CreateRole { name, path, description, trust } => {
            let mut req =
                iam.create_role().role_name(name).path(path).assume_role_policy_document(trust.to_string()).tags(tag);
            if !description.is_empty() {
                req = req.description(description);
            }
            // A trust document naming another principal of this account can fail until that principal propagates.
            let names_account_principal = trust.to_string().contains("\"AWS\"");
            let extra: &[Retry] = if names_account_principal { &[Retry::InvalidPrincipal] } else { &[] };
            let about = format!("role `{name}`");
            let propagating = if names_account_principal { "the principals in its trust document" } else { &about };
            let action = format!("create role `{name}`");
            let outcome =
                ctx.send_about(&action, &about, propagating, &rules(extra), false, || req.clone().send()).await?;
            let clients = ctx.clients;
            ctx.created_or_found(outcome, &about, || role::tags(clients, name)).await
        }
        Change::UpdateAssumeRolePolicy { role, desired, .. } => {
            let req = iam.update_assume_role_policy().role_name(role).policy_document(desired.to_string());
            let action = format!("update the trust document of role `{role}`");
            plain(ctx.send(&action, &format!("role `{role}`"), &rules(&[]), removal, || req.clone().send()).await)
        }
        Change::UpdateRole { role, description, .. } => {
            let req = iam.update_role().role_name(role).description(description);
            let action = format!("update the description of role `{role}`");
            plain(ctx.send(&action, &format!("role `{role}`"), &rules(&[]), removal, || req.clone().send()).await)
        }
        Change::AttachRolePolicy { role, policy_arn } => {
            let req = iam.attach_role_policy().role_name(role).policy_arn(policy_arn);
            let about = format!("role `{role}` and policy `{policy_arn}`");
            let action = format!("attach `{policy_arn}` to role `{role}`");
            let rules = rules(not_propagated);
            plain(
                ctx.send_about(&action, &format!("role `{role}`"), &about, &rules, removal, || req.clone().send())
                    .await,
            )
        }
        Change::AttachUserPolicy { user, policy_arn } => {
            let req = iam.attach_user_policy().user_name(user).policy_arn(policy_arn);
            let action = format!("attach `{policy_arn}` to user `{user}`");
            let about = format!("policy `{policy_arn}`");
            let rules = rules(not_propagated);
            plain(
                ctx.send_about(&action, &format!("user `{user}`"), &about, &rules, removal, || req.clone().send())
                    .await,
            )
        }
        Change::CreateInstanceProfile { name, path } => {
            let req = iam.create_instance_profile().instance_profile_name(name).path(path).tags(tag);
            let about = format!("instance profile `{name}`");
            let outcome = ctx
                .send(&format!("create instance profile `{name}`"), &about, &rules(&[]), false, || req.clone().send())
                .await?;
            let clients = ctx.clients;
            ctx.created_or_found(outcome, &about, || async move {
                Ok(instance_profile::observe(clients, name).await?.map(|p| p.tags))
            })
            .await
        }
        Change::RemoveRoleFromInstanceProfile { profile, role } => {
            let req = iam.remove_role_from_instance_profile().instance_profile_name(profile).role_name(role);
            let action = format!("remove role `{role}` from instance profile `{profile}`");
            let about = format!("instance profile `{profile}`");
            plain(ctx.send(&action, &about, &rules(&[]), removal, || req.clone().send()).await)
        }
        Change::AddRoleToInstanceProfile { profile, role } => {
            let req = iam.add_role_to_instance_profile().instance_profile_name(profile).role_name(role);
            let about = format!("role `{role}` and instance profile `{profile}`");
            let action = format!("add role `{role}` to instance profile `{profile}`");
            let rules = rules(not_propagated);
            let subject = format!("instance profile `{profile}`");
            let outcome = ctx.send_about(&action, &subject, &about, &rules, removal, || req.clone().send()).await;
            match outcome {
                // A profile holds one role: LimitExceeded is a race won by a concurrent run when it holds ours
                // (IAM API reference, AddRoleToInstanceProfile: LimitExceeded when the profile has a role already:
                // https://docs.aws.amazon.com/IAM/latest/APIReference/API_AddRoleToInstanceProfile.html).
                Err(e) if e.is_code("LimitExceeded") => match ctx.profile_holds(profile, role).await {
                    Ok(true) => Ok((Outcome::AlreadyDone, false)),
                    _ => Err(e),
                },
                other => plain(other),
            }
        }
        Change::CreateServiceLinkedRole { service } => {
            let req = iam.create_service_linked_role().aws_service_name(service);
            let action = format!("create the service-linked role for `{service}`");
            let about = format!("the service-linked role of `{service}`");
            plain(ctx.send(&action, &about, &rules(&[]), false, || req.clone().send()).await)
        }
        Change::DetachRolePolicy { role, policy_arn } => {
            let req = iam.detach_role_policy().role_name(role).policy_arn(policy_arn);
            let action = format!("detach `{policy_arn}` from role `{role}`");
            plain(ctx.send(&action, &format!("role `{role}`"), &rules(&[]), removal, || req.clone().send()).await)
        }
        Change::DeleteRolePolicy { role, policy_name } => {
            let req = iam.delete_role_policy().role_name(role).policy_name(policy_name);
            let action = format!("delete inline policy `{policy_name}` of role `{role}`");
            plain(ctx.send(&action, &format!("role `{role}`"), &rules(&[]), removal, || req.clone().send()).await)
        }
        Change::DetachUserPolicy { user, policy_arn } => {
            let req = iam.detach_user_policy().user_name(user).policy_arn(policy_arn);
            let action = format!("detach `{policy_arn}` from user `{user}`");
            plain(ctx.send(&action, &format!("user `{user}`"), &rules(&[]), removal, || req.clone().send()).await)
        }
        Change::DetachGroupPolicy { group, policy_arn } => {
            let req = iam.detach_group_policy().group_name(group).policy_arn(policy_arn);
            let action = format!("detach `{policy_arn}` from group `{group}`");
            plain(ctx.send(&action, &format!("group `{group}`"), &rules(&[]), removal, || req.clone().send()).await)
        }
        Change::DeletePolicy { policy_arn } => {
            let req = iam.delete_policy().policy_arn(policy_arn);
            let action = format!("delete policy `{policy_arn}`");
            plain(
                ctx.send(&action, &format!("policy `{policy_arn}`"), &rules(conflict), removal, || req.clone().send())
                    .await,
            )
        }
        Change::DeleteInstanceProfile { name } => {
            let req = iam.delete_instance_profile().instance_profile_name(name);
            let action = format!("delete instance profile `{name}`");
            let about = format!("instance profile `{name}`");
            plain(ctx.send(&action, &about, &rules(conflict), removal, || req.clone().send()).await)
        }
        Change::DeleteRole { name } => {
            let req = iam.delete_role().role_name(name);
            let action = format!("delete role `{name}`");
            plain(ctx.send(&action, &format!("role `{name}`"), &rules(conflict), removal, || req.clone().send()).await)
        }
        Change::DeleteServiceLinkedRole { service, role } => {
            let req = iam.delete_service_linked_role().role_name(role);
            let action = format!("delete the service-linked role `{role}` of `{service}`");
            let about = format!("service-linked role `{role}`");
            let task = match ctx
                .send_for_output(&action, &about, &about, &rules(&[]), removal, || req.clone().send())
                .await?
            {
                Sent::Done(out) => out.deletion_task_id,
                Sent::AlreadyDone => return Ok((Outcome::AlreadyDone, false)),
                Sent::Skipped(reason) => return Ok((Outcome::Skipped { reason }, false)),
            };
            ctx.observer.waiting(&format!(
                "waiting for AWS to delete service-linked role `{role}` (up to {} s)",
                opts.deletion_timeout.as_secs()
            ));
            crate::resources::service_linked_role::wait_deleted(
                ctx.clients,
                role,
                &task,
                opts.deletion_timeout,
                Duration::from_secs(1),
            )
            .await?;
            Ok((Outcome::Done, false))
        }
    }
}

/// What sending one write came to, with the call's output when it was made.
enum Sent<T> {
    Done(T),
    AlreadyDone,
    Skipped(String),
}

/// One change being applied: what it needs, and the retries and waiting it took.
struct Ctx<'a> {
    clients: &'a Clients,
    opts: &'a ApplyOptions,
    observer: &'a dyn ApplyObserver,
    partition: &'a str,
    account_id: &'a str,
    retries: usize,
    waited: Duration,
}

impl Ctx<'_> {
    /// Send a write about `subject` ("role `R`"), which is also what a propagation wait names.
    async fn send<T, E, R, F, Fut>(
        &mut self,
        action: &str,
        subject: &str,
        rules: &[Retry],
        removal: bool,
        call: F,
    ) -> Result<Outcome>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: Debug,
    {
        self.send_about(action, subject, subject, rules, removal, call).await
    }

    /// Send a write about `subject`; a propagation wait names `propagating` (what has to propagate).
    async fn send_about<T, E, R, F, Fut>(
        &mut self,
        action: &str,
        subject: &str,
        propagating: &str,
        rules: &[Retry],
        removal: bool,
        call: F,
    ) -> Result<Outcome>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: Debug,
    {
        Ok(match self.send_for_output(action, subject, propagating, rules, removal, call).await? {
            Sent::Done(_) => Outcome::Done,
            Sent::AlreadyDone => Outcome::AlreadyDone,
            Sent::Skipped(reason) => Outcome::Skipped { reason },
        })
    }

    /// Send a write. EntityAlreadyExists means someone else did it; for a removal (`removal`), NoSuchEntity
    /// means it is gone already. An error one of `rules` names is retried with exponential backoff and jitter
    /// until `--propagation-timeout`, telling the user once per rule what is waited for.
    async fn send_for_output<T, E, R, F, Fut>(
        &mut self,
        action: &str,
        subject: &str,
        propagating: &str,
        rules: &[Retry],
        removal: bool,
        mut call: F,
    ) -> Result<Sent<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: Debug,
    {
        let start = Instant::now();
        let timeout = self.opts.propagation_timeout;
        let mut delay: Option<Duration> = None;
        let mut told: Vec<Retry> = Vec::new();
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
                        Some(call().await)
                    }
                })
                .await;
            let Some(result) = result else { return Ok(Sent::Skipped("interrupted".into())) };
            let e = match result {
                Ok(output) => return Ok(Sent::Done(output)),
                Err(e) if errors::is_already_exists(&e) || is_service_linked_role_taken(&e) => {
                    return Ok(Sent::AlreadyDone)
                }
                Err(e) if removal && errors::is_no_such_entity(&e) => return Ok(Sent::AlreadyDone),
                Err(e) => e,
            };
            let rule = errors::code_and_message(&e).and_then(|(c, m)| rules.iter().copied().find(|r| r.matches(c, m)));
            let Some(rule) = rule else { return Err(errors::describe(action, &e)) };
            let base = delay.unwrap_or_else(|| rule.first_delay());
            let pause = jittered(base);
            if start.elapsed() + pause >= timeout {
                return Err(errors::describe(action, &e));
            }
            if !told.contains(&rule) {
                let about =
                    if matches!(rule, Retry::NotPropagated | Retry::InvalidPrincipal) { propagating } else { subject };
                self.observer.waiting(&rule.waiting(about, timeout));
                told.push(rule);
            }
            if rule == Retry::Concurrent && turn.is_none() {
                let entity = self.opts.waits.turn(subject);
                match entity.clone().try_lock_owned() {
                    Ok(guard) => turn = Some(guard),
                    Err(_) => {
                        // Another writer of this entity has the turn: once it is through, try again at once.
                        let queued = Instant::now();
                        let left = timeout.saturating_sub(start.elapsed());
                        let wait = tokio::time::timeout(left, self.opts.waits.wait_for(entity.lock_owned()));
                        let Ok(guard) = wait.await else { return Err(errors::describe(action, &e)) };
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
            delay = Some((base * 2).min(Duration::from_secs(5)));
        }
    }

    async fn wait(&mut self, delay: Duration) {
        self.opts.waits.sleep(delay).await;
        self.waited += delay;
    }

    /// After EntityAlreadyExists on a create: someone made the resource meanwhile. Its tags, read again, say
    /// whose it is; if it is not this stack's, the changes that depend on it are held back, as for any resource
    /// wfboot did not create. A resource made moments ago can read as missing for a while (read-after-write
    /// lag): that is waited out, within `--propagation-timeout`.
    async fn created_or_found<F, Fut>(&mut self, outcome: Outcome, about: &str, read_tags: F) -> Result<(Outcome, bool)>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<Vec<(String, String)>>>>,
    {
        if outcome != Outcome::AlreadyDone {
            return Ok((outcome, false));
        }
        let (start, timeout, stack) = (Instant::now(), self.opts.propagation_timeout, &self.opts.stack);
        let mut delay = Duration::from_millis(250);
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
                return Ok((Outcome::AlreadyDone, !ours));
            }
            if start.elapsed() + delay >= timeout {
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
            self.wait(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// After LimitExceeded on AddRoleToInstanceProfile: does the profile hold `role` (a concurrent run put it
    /// there)? An empty or missing profile may be read-after-write lag: read again, within the timeout.
    async fn profile_holds(&mut self, profile: &str, role: &str) -> Result<bool> {
        let (start, timeout) = (Instant::now(), self.opts.propagation_timeout);
        let mut delay = Duration::from_millis(250);
        loop {
            match instance_profile::observe(self.clients, profile).await? {
                Some(p) if p.roles.iter().any(|r| r == role) => return Ok(true),
                Some(p) if !p.roles.is_empty() => return Ok(false),
                _ if start.elapsed() + delay >= timeout => return Ok(false),
                _ => {
                    self.wait(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// IAM answers a second CreateServiceLinkedRole with InvalidInput "Service role name ... has been taken in this
/// account, please try a different suffix." (the code is shared with every other bad input, so the message is
/// the only signal; the text as the Karpenter getting-started guide shows it, karpenter.sh/docs/getting-started).
fn is_service_linked_role_taken<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    errors::code_and_message(err).is_some_and(|(code, message)| {
        code == "InvalidInput" && message.to_ascii_lowercase().contains("has been taken")
    })
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
    use crate::resources::plan::{Kind, ResourcePlan};
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
            waits: Arc::new(Waits::default()),
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

    fn already_exists() -> CreateRoleError {
        CreateRoleError::EntityAlreadyExistsException(
            EntityAlreadyExistsException::builder()
                .message("Role with name R already exists.")
                .meta(meta("EntityAlreadyExists", "Role with name R already exists."))
                .build(),
        )
    }

    fn existing_role(tags: &[(&str, &str)]) -> aws_sdk_iam::operation::get_role::GetRoleOutput {
        let mut role = created().role.unwrap();
        role.tags = Some(
            tags.iter().map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(*k).value(*v).build().unwrap()).collect(),
        );
        aws_sdk_iam::operation::get_role::GetRoleOutput::builder().role(role).build()
    }

    #[tokio::test]
    async fn a_role_created_by_someone_else_meanwhile_for_this_stack_counts_as_done_and_its_dependents_go_on() {
        let create = mock!(Client::create_role).then_error(already_exists);
        // Read again: the role someone made moments ago reads as missing at first (read-after-write lag).
        let get = mock!(Client::get_role)
            .sequence()
            .error(|| {
                aws_sdk_iam::operation::get_role::GetRoleError::NoSuchEntityException(
                    NoSuchEntityException::builder().message("no").meta(meta("NoSuchEntity", "no")).build(),
                )
            })
            .output(|| existing_role(&[("wfboot:stack", "s")]))
            .build();
        let attach = mock!(Client::attach_role_policy).then_output(|| AttachRolePolicyOutput::builder().build());
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&create, &get, &attach]);
        let applied =
            apply(&Clients::with_iam(iam), &role_plan(service_trust(), true), &opts(10_000), &Recorder::default())
                .await;
        assert_eq!(applied[0].outcome, Outcome::AlreadyDone);
        assert_eq!(applied[1].outcome, Outcome::Done);
        assert_eq!(get.num_calls(), 2);
    }

    #[tokio::test]
    async fn a_role_someone_else_created_meanwhile_without_the_stacks_tag_holds_what_depends_on_it() {
        let create = mock!(Client::create_role).then_error(already_exists);
        let get = mock!(Client::get_role).then_output(|| existing_role(&[("team", "data")]));
        let attach = mock!(Client::attach_role_policy).then_output(|| AttachRolePolicyOutput::builder().build());
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&create, &get, &attach]);
        let recorder = Recorder::default();
        let options = ApplyOptions { consent: false, ..opts(10_000) };
        let applied = apply(&Clients::with_iam(iam), &role_plan(service_trust(), true), &options, &recorder).await;
        assert_eq!(applied[0].outcome, Outcome::AlreadyDone);
        assert_eq!(applied[1].outcome, Outcome::Held, "no attachment to someone else's role without consent");
        assert_eq!(attach.num_calls(), 0);
        let said = recorder.0.lock().unwrap().join("\n");
        assert!(said.contains("created meanwhile by someone else") && said.contains("--adopt"), "{said}");
    }

    fn concurrent(what: &str) -> aws_smithy_types::error::ErrorMetadata {
        meta("ConcurrentModification", &format!("multiple requests to change {what} were submitted simultaneously"))
    }

    #[tokio::test]
    async fn every_write_retries_concurrent_modification_with_backoff_says_so_once_and_counts_it() {
        let attach = mock!(Client::attach_role_policy)
            .sequence()
            .error(|| AttachRolePolicyError::generic(concurrent("R")))
            .times(2)
            .output(|| AttachRolePolicyOutput::builder().build())
            .build();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&attach]);
        let recorder = Recorder::default();
        let options = opts(10_000);
        // Not after a create of this run: ConcurrentModification is retried on every write regardless.
        let applied = apply(&Clients::with_iam(iam), &role_plan(service_trust(), false), &options, &recorder).await;
        assert_eq!(applied[0].outcome, Outcome::Done, "{applied:?}");
        assert_eq!((attach.num_calls(), applied[0].retries, options.waits.retries()), (3, 2, 2));
        assert!(applied[0].waited_seconds > 0.0 && options.waits.waited() > Duration::ZERO);
        let said = recorder.0.lock().unwrap().clone();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("ConcurrentModification") && said[0].contains("role `R`"), "{said:?}");
    }

    #[tokio::test]
    async fn concurrent_modification_retries_stop_at_the_bound_with_the_code_in_the_error() {
        let attach = mock!(Client::attach_role_policy)
            .sequence()
            .error(|| AttachRolePolicyError::generic(concurrent("R")))
            .repeatedly()
            .build();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&attach]);
        let started = Instant::now();
        let applied =
            apply(&Clients::with_iam(iam), &role_plan(service_trust(), false), &opts(1_000), &Recorder::default())
                .await;
        assert!(started.elapsed() < Duration::from_secs(3), "not bounded: {:?}", started.elapsed());
        let Outcome::Failed { error } = &applied[0].outcome else { panic!("{applied:?}") };
        assert!(error.contains("ConcurrentModification"), "{error}");
    }

    fn delete_conflict() -> aws_sdk_iam::operation::delete_role::DeleteRoleError {
        aws_sdk_iam::operation::delete_role::DeleteRoleError::generic(meta(
            "DeleteConflict",
            "Cannot delete entity, must detach all policies first.",
        ))
    }

    #[tokio::test]
    async fn a_delete_conflict_right_after_this_run_detached_the_policy_is_retried_until_iam_catches_up() {
        let changes = [
            removal(Change::DetachRolePolicy { role: "R".into(), policy_arn: "arn:aws:iam::aws:policy/A".into() }),
            removal(Change::DeleteRole { name: "R".into() }),
        ];
        let detach = mock!(Client::detach_role_policy)
            .then_output(|| aws_sdk_iam::operation::detach_role_policy::DetachRolePolicyOutput::builder().build());
        let delete = mock!(Client::delete_role)
            .sequence()
            .error(delete_conflict)
            .output(|| aws_sdk_iam::operation::delete_role::DeleteRoleOutput::builder().build())
            .build();
        let applied = apply_removals(mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&detach, &delete]), &changes).await;
        assert!(applied.iter().all(|a| a.outcome == Outcome::Done), "{applied:?}");
        assert_eq!((delete.num_calls(), applied[1].retries), (2, 1));
    }

    #[tokio::test]
    async fn a_delete_conflict_without_a_link_this_run_removed_is_a_real_error_and_is_not_retried() {
        let delete = mock!(Client::delete_role).sequence().error(delete_conflict).repeatedly().build();
        let changes = [removal(Change::DeleteRole { name: "R".into() })];
        let applied = apply_removals(mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&delete]), &changes).await;
        let Outcome::Failed { error } = &applied[0].outcome else { panic!("{applied:?}") };
        assert!(error.contains("DeleteConflict") && error.contains("must detach"), "{error}");
        assert_eq!(delete.num_calls(), 1);
    }

    #[tokio::test]
    async fn limit_exceeded_on_adding_the_role_is_done_when_the_profile_holds_it_already_by_the_code_alone() {
        use aws_sdk_iam::operation::add_role_to_instance_profile::AddRoleToInstanceProfileError;
        use aws_sdk_iam::operation::get_instance_profile::GetInstanceProfileOutput;
        let add = mock!(Client::add_role_to_instance_profile).then_error(|| {
            // The message is not what the code reads: only the code says what happened.
            AddRoleToInstanceProfileError::generic(meta("LimitExceeded", "Cannot exceed quota"))
        });
        let get = mock!(Client::get_instance_profile).then_output(|| {
            let role = created().role.unwrap();
            let profile = aws_sdk_iam::types::InstanceProfile::builder()
                .path("/")
                .instance_profile_name("P")
                .instance_profile_id("AIPA")
                .arn("arn:aws:iam::111122223333:instance-profile/P")
                .create_date(aws_smithy_types::DateTime::from_secs(0))
                .roles(role)
                .build()
                .unwrap();
            GetInstanceProfileOutput::builder().instance_profile(profile).build()
        });
        let changes = [removal(Change::AddRoleToInstanceProfile { profile: "P".into(), role: "R".into() })];
        let applied = apply_removals(mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&add, &get]), &changes).await;
        assert_eq!(applied[0].outcome, Outcome::AlreadyDone);
    }
}
