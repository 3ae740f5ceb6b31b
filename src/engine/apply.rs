//! Applying a plan: every change is one write call; a change starts as soon as the changes it depends on have
//! finished (an attachment waits for its role and its policy, nothing else), with at most
//! `--max-concurrency` requests in flight. What a change depends on is read from the keys the changes declare
//! ([`Key`]: "role R exists", "policy P released"); how each is sent, with its bounded retries on named error
//! codes, is its kind's ([`crate::resources::write`]); the time spent waiting and the retries are counted
//! ([`Waits`]).

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::{FutureExt, LocalBoxFuture, Shared};
use serde::Serialize;

use crate::aws::Clients;
use crate::resources::plan::{Key, Plan, PlannedChange};
use crate::resources::write::Ctx;
pub(crate) use crate::resources::write::{jittered, ApplyObserver, ApplyOptions, Outcome, Waits};

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

/// Apply `plan`'s changes, each after what it depends on; when every change of one of the plan's resources has
/// finished, the observer hears it ([`ApplyObserver::resource_finished`], by the resource's index in the plan).
pub(crate) async fn apply(
    clients: &Clients,
    plan: &Plan,
    opts: &ApplyOptions,
    observer: &dyn ApplyObserver,
) -> Vec<AppliedChange> {
    let resource_of: Vec<usize> =
        plan.resources.iter().enumerate().flat_map(|(i, r)| std::iter::repeat_n(i, r.changes.len())).collect();
    apply_in_groups(clients, plan.changes().collect(), Some(&resource_of), opts, observer).await
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

/// Apply `changes`, each after what it depends on.
pub(crate) async fn apply_changes(
    clients: &Clients,
    changes: Vec<&PlannedChange>,
    opts: &ApplyOptions,
    observer: &dyn ApplyObserver,
) -> Vec<AppliedChange> {
    apply_in_groups(clients, changes, None, opts, observer).await
}

/// Apply `changes`; with `groups` (a group number per change, in `changes`' order), the observer hears when every
/// change of a group has finished.
async fn apply_in_groups(
    clients: &Clients,
    changes: Vec<&PlannedChange>,
    groups: Option<&[usize]>,
    opts: &ApplyOptions,
    observer: &dyn ApplyObserver,
) -> Vec<AppliedChange> {
    let (changes, deps, original) = in_dependency_order(changes);

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
            let mut ctx = Ctx { clients, opts, observer, retries: 0, waited: Duration::ZERO, lost_answer: false };
            let (outcome, foreign) = match change.change.execute(&mut ctx, after_dependency).await {
                Ok(done) => done,
                Err(e) => (Outcome::Failed { error: e.to_string() }, false),
            };
            Finished { outcome: finish(observer, change, outcome), foreign, retries: ctx.retries, waited: ctx.waited }
        };
        tasks.push(task.boxed_local().shared());
    }
    // A group is finished when its every change is: its tasks awaited (shared) beside the others.
    let watchers = groups.map(|groups| {
        let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (at, i) in original.iter().enumerate() {
            if let Some(&g) = groups.get(*i) {
                members.entry(g).or_default().push(at);
            }
        }
        let tasks = &tasks;
        let changes = &changes;
        members.into_iter().map(move |(group, at)| async move {
            let finished = futures::future::join_all(at.iter().map(|&p| tasks[p].clone())).await;
            let outcomes: Vec<(&PlannedChange, &Outcome)> =
                at.iter().zip(&finished).map(|(&p, f)| (changes[p], &f.outcome)).collect();
            observer.resource_finished(group, &outcomes);
        })
    });
    let (finished, _) = futures::future::join(
        futures::future::join_all(tasks.clone()),
        futures::future::join_all(watchers.into_iter().flatten()),
    )
    .await;
    changes
        .iter()
        .map(|c| (*c).clone())
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

/// `changes` in an order where each comes after every change it depends on (stable: in plan order within a
/// level), and for each, the indices of the changes it must wait for: those that provide a key it needs.
///
/// A change that needs nothing is on level 0; one that needs something is one level above the highest of
/// its providers (level 1 when none is in the plan: its dependency may be there already).
/// Also, for each position, the change's index in `changes`.
fn in_dependency_order(changes: Vec<&PlannedChange>) -> (Vec<&PlannedChange>, Vec<Vec<usize>>, Vec<usize>) {
    let needs: Vec<Vec<Key>> = changes.iter().map(|c| c.change.needs()).collect();
    let provides: Vec<Vec<Key>> = changes.iter().map(|c| c.change.provides()).collect();
    let providers = |i: usize| -> Vec<usize> {
        (0..changes.len()).filter(|&j| j != i && provides[j].iter().any(|k| needs[i].contains(k))).collect()
    };
    let all: Vec<Vec<usize>> = (0..changes.len()).map(providers).collect();
    // Levels by relaxation, bounded by the number of changes (the keys the kinds declare form no cycle).
    let mut level = vec![0usize; changes.len()];
    for _ in 0..changes.len() {
        let mut moved = false;
        for i in 0..changes.len() {
            if needs[i].is_empty() {
                continue;
            }
            let l = 1 + all[i].iter().map(|&j| level[j]).max().unwrap_or(0);
            if l != level[i] && l <= changes.len() {
                level[i] = l;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut order: Vec<usize> = (0..changes.len()).collect();
    order.sort_by_key(|&i| level[i]);
    let position: Vec<usize> = {
        let mut p = vec![0; changes.len()];
        for (at, &i) in order.iter().enumerate() {
            p[i] = at;
        }
        p
    };
    let deps = order
        .iter()
        .map(|&i| {
            let mut d: Vec<usize> = all[i].iter().map(|&j| position[j]).filter(|&at| at < position[i]).collect();
            d.sort_unstable();
            d
        })
        .collect();
    (order.iter().map(|&i| changes[i]).collect(), deps, order)
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

    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::resources::plan::{Kind, ResourcePlan};
    use crate::resources::Ownership;
    use crate::resources::{role, service_linked_role, Change};
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
            changes.push(Change::from(role::Change::CreateRole {
                name: "R".into(),
                path: "/".into(),
                description: String::new(),
                trust,
                permissions_boundary: None,
                tags: Default::default(),
            }));
        }
        changes.push(Change::from(role::Change::AttachRolePolicy {
            role: "R".into(),
            policy_arn: "arn:aws:iam::aws:policy/A".into(),
        }));
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

    /// Records each resource the apply says is finished, with how many of its changes were done by then.
    #[derive(Default)]
    struct Resources {
        finished: Mutex<Vec<String>>,
        told: Mutex<Vec<(usize, usize)>>,
    }
    impl ApplyObserver for Resources {
        fn finished(&self, change: &PlannedChange, _: &Outcome) {
            self.finished.lock().unwrap().push(change.change.operation().to_string());
        }
        fn waiting(&self, _: &str) {}
        fn resource_finished(&self, resource: usize, outcomes: &[(&PlannedChange, &Outcome)]) {
            assert!(outcomes.iter().all(|(_, o)| **o == Outcome::Done), "{resource}: {:?}", outcomes.len());
            let done = self.finished.lock().unwrap().len();
            self.told.lock().unwrap().push((resource, done));
        }
    }

    #[tokio::test]
    async fn each_resource_is_told_once_when_its_last_change_finished() {
        let create = mock!(Client::create_role).then_output(created);
        let attach = mock!(Client::attach_role_policy).then_output(|| AttachRolePolicyOutput::builder().build());
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&create, &attach]);
        let mut plan = role_plan(service_trust(), true);
        // A second resource with nothing to do is not told (nothing of it runs).
        plan.resources.push(ResourcePlan::new(Kind::Role, "Unchanged", Ownership::Stack, Vec::<Change>::new(), vec![]));
        let observer = Resources::default();
        apply(&Clients::with_iam(iam), &plan, &opts(10_000), &observer).await;
        assert_eq!(*observer.told.lock().unwrap(), [(0, 2)], "told once, after both of its changes");
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
        apply_changes(&Clients::with_iam(iam), changes.iter().collect(), &opts(10_000), &Recorder::default()).await
    }

    #[tokio::test]
    async fn a_role_is_deleted_only_after_its_policy_is_detached_and_not_at_all_when_the_detach_fails() {
        let changes = [
            removal(Change::from(role::Change::DeleteRole { name: "R".into() })),
            removal(Change::from(role::Change::DetachRolePolicy {
                role: "R".into(),
                policy_arn: "arn:aws:iam::aws:policy/A".into(),
            })),
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
        let changes = [removal(Change::from(role::Change::DeleteRole { name: "R".into() }))];
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
        let changes = [removal(Change::from(service_linked_role::Change::DeleteServiceLinkedRole {
            service: "spot.amazonaws.com".into(),
            role: "AWSServiceRoleForEC2Spot".into(),
        }))];
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
            removal(Change::from(role::Change::DetachRolePolicy {
                role: "R".into(),
                policy_arn: "arn:aws:iam::aws:policy/A".into(),
            })),
            removal(Change::from(role::Change::DeleteRole { name: "R".into() })),
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
        let changes = [removal(Change::from(role::Change::DeleteRole { name: "R".into() }))];
        let applied = apply_removals(mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&delete]), &changes).await;
        let Outcome::Failed { error } = &applied[0].outcome else { panic!("{applied:?}") };
        assert!(error.contains("DeleteConflict") && error.contains("must detach"), "{error}");
        assert_eq!(delete.num_calls(), 1);
    }
}
