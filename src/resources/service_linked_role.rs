//! A service-linked role: ensures AWS has created the role for a service. Such roles are found by their
//! reserved path `/aws-service-role/<service>/`, because their names differ between AWS and emulators.
//! `destroy` deletes one only when asked to (they are shared by the whole account), and waits for AWS's
//! asynchronous deletion task.

use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_iam::types::{DeletionTaskFailureReasonType, DeletionTaskStatusType};
use serde::Serialize;

use super::access::{ContextEntry, Permission, Scope};
use super::kind::{DestroyCtx, ResourceKind};
use super::plan::{DestroyResource, Kind, ResourcePlan};
use super::vocab::Ownership;
use super::write::{plain, Call, Ctx, Outcome, Sent, Write};
use crate::aws::{errors, Clients};
use crate::error::{Error, Result};
use crate::stack::{Desired, Stack};

/// One write call for a service-linked role.
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "call", rename_all = "PascalCase")]
pub(crate) enum Change {
    CreateServiceLinkedRole {
        service: String,
    },
    #[cfg_attr(test, schemars(extend("x-made-by" = "destroy")))]
    /// Deleted asynchronously by AWS: the change includes waiting for the deletion task's outcome.
    DeleteServiceLinkedRole {
        service: String,
        role: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateServiceLinkedRole { service } => write!(f, "create service-linked role for {service}"),
            Change::DeleteServiceLinkedRole { role, .. } => {
                write!(f, "delete service-linked role {role} and wait for AWS's deletion task")
            }
        }
    }
}

impl Write for Change {
    fn operation(&self) -> &'static str {
        match self {
            Change::CreateServiceLinkedRole { .. } => "CreateServiceLinkedRole",
            Change::DeleteServiceLinkedRole { .. } => "DeleteServiceLinkedRole",
        }
    }

    fn permissions(&self, scope: &Scope<'_>) -> Vec<Permission> {
        match self {
            Change::CreateServiceLinkedRole { service } => {
                vec![Permission::new("iam:CreateServiceLinkedRole", scope.service_linked_roles_arn(service))
                    // AWS's own grants (AWSBatchFullAccess, AmazonEC2FullAccess) allow it only with iam:AWSServiceName
                    // (https://docs.aws.amazon.com/IAM/latest/UserGuide/using-service-linked-roles.html#service-linked-role-permissions).
                    .with(ContextEntry::one("iam:AWSServiceName", service.clone()))]
            }
            Change::DeleteServiceLinkedRole { service, .. } => {
                let role = scope.service_linked_roles_arn(service);
                vec![
                    Permission::new("iam:DeleteServiceLinkedRole", role.clone()),
                    Permission::new("iam:GetServiceLinkedRoleDeletionStatus", role),
                ]
            }
        }
    }

    fn same_write(&self, other: &Change) -> bool {
        self == other
    }

    async fn execute(&self, ctx: &mut Ctx<'_>, _after_dependency: bool) -> Result<(Outcome, bool)> {
        let iam = &ctx.clients.iam_writes;
        match self {
            Change::CreateServiceLinkedRole { service } => {
                let req = iam.create_service_linked_role().aws_service_name(service);
                let call = Call::new(
                    format!("create the service-linked role for `{service}`"),
                    format!("the service-linked role of `{service}`"),
                )
                .already_done_when(taken);
                plain(ctx.send(&call, || req.clone().send()).await)
            }
            Change::DeleteServiceLinkedRole { service, role } => {
                let req = iam.delete_service_linked_role().role_name(role);
                let call = Call::new(
                    format!("delete the service-linked role `{role}` of `{service}`"),
                    format!("service-linked role `{role}`"),
                )
                .removal();
                let task = match ctx.send_for_output(&call, || req.clone().send()).await? {
                    Sent::Done(out) => out.deletion_task_id,
                    Sent::AlreadyDone => return Ok((Outcome::AlreadyDone, false)),
                    // An earlier attempt's answer was lost and the role is gone: the read-back confirms it.
                    Sent::Landed => return Ok((Outcome::Done, false)),
                    Sent::Skipped(reason) => return Ok((Outcome::Skipped { reason }, false)),
                };
                let timeout = ctx.opts.deletion_timeout;
                ctx.observer.waiting(&format!(
                    "waiting for AWS to delete service-linked role `{role}` (up to {} s)",
                    timeout.as_secs()
                ));
                wait_deleted(ctx.clients, role, &task, timeout, Duration::from_secs(1)).await?;
                Ok((Outcome::Done, false))
            }
        }
    }
}

/// IAM answers a second CreateServiceLinkedRole with InvalidInput "Service role name ... has been taken in this
/// account, please try a different suffix." (the code is shared with every other bad input, so the message is
/// the only signal; the text as the Karpenter getting-started guide shows it, karpenter.sh/docs/getting-started).
fn taken(code: &str, message: &str) -> bool {
    code == "InvalidInput" && message.to_ascii_lowercase().contains("has been taken")
}

/// The names of the existing service-linked roles for `services`, in order (`None`: not created yet).
///
/// One listing of the reserved path `/aws-service-role/` answers for every service at once; an account has
/// a few dozen such roles at most.
pub(crate) async fn observe_all(clients: &Clients, services: &[String]) -> Result<Vec<Option<String>>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let roles = clients
        .list(
            "the service-linked roles (path /aws-service-role/)",
            clients.iam.list_roles().path_prefix(PATH_PREFIX).into_paginator().items().send(),
        )
        .await?;
    Ok(services.iter().map(|s| find(s, roles.iter().map(|r| (r.path.as_str(), r.role_name.as_str())))).collect())
}

const PATH_PREFIX: &str = "/aws-service-role/";

/// The role under `/aws-service-role/<service>/` among `(path, name)` pairs.
fn find<'a>(service: &str, mut roles: impl Iterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let path = format!("{PATH_PREFIX}{service}/");
    roles.find(|(p, _)| p.eq_ignore_ascii_case(&path)).map(|(_, name)| name.to_string())
}

pub(crate) fn diff(service: &str, observed: Option<&str>) -> ResourcePlan {
    match observed {
        None => ResourcePlan::new(
            Kind::ServiceLinkedRole,
            service,
            Ownership::Absent,
            vec![Change::CreateServiceLinkedRole { service: service.to_string() }],
            vec![],
        ),
        Some(_) => {
            ResourcePlan::new(Kind::ServiceLinkedRole, service, Ownership::External, Vec::<Change>::new(), vec![])
        }
    }
}

/// Wait for AWS's deletion task of a service-linked role: polled with backoff until `timeout`. AWS refuses the
/// deletion (FAILED) while the service still uses the role; that is reported with the resources AWS names,
/// never retried.
pub(crate) async fn wait_deleted(
    clients: &Clients,
    role: &str,
    task_id: &str,
    timeout: Duration,
    first_poll: Duration,
) -> Result<()> {
    let start = Instant::now();
    let mut delay = first_poll;
    loop {
        let out = clients
            .limit(clients.iam.get_service_linked_role_deletion_status().deletion_task_id(task_id).send())
            .await
            .map_err(|e| errors::describe(&format!("read the deletion status of service-linked role `{role}`"), &e))?;
        match out.status() {
            DeletionTaskStatusType::Succeeded => return Ok(()),
            DeletionTaskStatusType::Failed => return Err(refused(role, out.reason())),
            // NOT_STARTED and IN_PROGRESS (and any status newer than this SDK): keep waiting, within the bound.
            status => {
                if start.elapsed() + delay > timeout {
                    return Err(Error::aws(format!(
                        "service-linked role `{role}` is not deleted yet: AWS's deletion task is still {} after {} s",
                        status.as_str(),
                        start.elapsed().as_secs()
                    ))
                    .with_help(format!(
                        "AWS may still complete it: check with `aws iam get-service-linked-role-deletion-status \
                         --deletion-task-id {task_id}`, or run `wfboot destroy` again later"
                    )));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn refused(role: &str, reason: Option<&DeletionTaskFailureReasonType>) -> Error {
    let why = reason.and_then(|r| r.reason()).unwrap_or("no reason given");
    let usage: Vec<String> = reason
        .map(|r| r.role_usage_list())
        .unwrap_or_default()
        .iter()
        .map(|u| format!("{}: {}", u.region().unwrap_or("?"), u.resources().join(", ")))
        .collect();
    let used_by = if usage.is_empty() { String::new() } else { format!("; still used in {}", usage.join("; ")) };
    Error::aws(format!("AWS refused to delete service-linked role `{role}`: DeletionTaskFailed: {why}{used_by}"))
        .with_help("the service still uses the role: delete those resources first and run again, or keep the role")
}

/// What `destroy` does with the stack's service-linked role `role` of `service`: left alone unless
/// `include` (`--include-service-linked-roles`): shared by the whole account, nothing marks one as wfboot's.
pub(crate) fn destroy_diff(service: &str, role: Option<&str>, include: bool) -> DestroyResource {
    match role {
        None => DestroyResource::absent(Kind::ServiceLinkedRole, service),
        Some(role) if include => DestroyResource::delete(
            Kind::ServiceLinkedRole,
            service,
            Ownership::External,
            vec![Change::DeleteServiceLinkedRole { service: service.to_string(), role: role.to_string() }],
            vec![],
        ),
        Some(role) => DestroyResource::left_alone(
            Kind::ServiceLinkedRole,
            service,
            Ownership::External,
            format!(
                "{role} is shared by the whole account (the service uses it for every resource, whoever made \
                 it, and creates it itself on first use), so wfboot cannot know it made it; pass \
                 --include-service-linked-roles to delete it"
            ),
        ),
    }
}

/// The service-linked roles of the stack's services, read by their services' names.
pub(crate) struct ServiceLinkedRoles;

impl ResourceKind for ServiceLinkedRoles {
    const WORD: &'static str = "service-linked role";
    const BY_NAME: bool = true;
    const READ_ACTIONS: &'static [&'static str] = &["iam:ListRoles"];
    type Change = Change;
    /// Per service: the name of its role, if there is one.
    type Observation = Vec<Option<String>>;

    fn names_in_stack(stack: &Stack) -> Vec<String> {
        stack.service_linked_roles.clone()
    }

    fn names(desired: &Desired) -> Vec<String> {
        desired.service_linked_roles.clone()
    }

    async fn observe_named(clients: &Clients, names: &[String], _verifying: bool) -> Result<Self::Observation> {
        observe_all(clients, names).await
    }

    fn absent(desired: &Desired, _user: Option<&str>) -> Self::Observation {
        vec![None; desired.service_linked_roles.len()]
    }

    fn diff(desired: &Desired, observed: &Self::Observation, _user: Option<&str>) -> Vec<ResourcePlan> {
        desired.service_linked_roles.iter().zip(observed).map(|(s, o)| diff(s, o.as_deref())).collect()
    }

    fn keep_changed(desired: &mut Desired, changed: &dyn Fn(Option<&str>) -> bool) {
        desired.service_linked_roles.retain(|s| changed(Some(s)));
    }

    fn destroy_diff(desired: &Desired, observed: &Self::Observation, ctx: &DestroyCtx<'_>) -> Vec<DestroyResource> {
        let include = ctx.include_service_linked_roles;
        desired.service_linked_roles.iter().zip(observed).map(|(s, r)| destroy_diff(s, r.as_deref(), include)).collect()
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_iam::operation::get_service_linked_role_deletion_status::GetServiceLinkedRoleDeletionStatusOutput;
    use aws_sdk_iam::types::RoleUsageType;
    use aws_sdk_iam::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    fn status(s: DeletionTaskStatusType) -> GetServiceLinkedRoleDeletionStatusOutput {
        GetServiceLinkedRoleDeletionStatusOutput::builder().status(s).build().unwrap()
    }

    #[tokio::test]
    async fn a_deletion_in_progress_is_polled_until_it_succeeds() {
        let rule = mock!(Client::get_service_linked_role_deletion_status)
            .sequence()
            .output(|| status(DeletionTaskStatusType::NotStarted))
            .output(|| status(DeletionTaskStatusType::InProgress))
            .output(|| status(DeletionTaskStatusType::Succeeded))
            .build();
        let iam = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&rule]);
        let clients = Clients::with_iam(iam);
        wait_deleted(
            &clients,
            "AWSServiceRoleForEC2Spot",
            "task/1",
            Duration::from_secs(10),
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn a_deletion_aws_refuses_is_reported_with_the_resources_that_use_the_role_and_not_retried() {
        let rule = mock!(Client::get_service_linked_role_deletion_status).then_output(|| {
            let reason = DeletionTaskFailureReasonType::builder()
                .reason("Service role is in use")
                .role_usage_list(
                    RoleUsageType::builder()
                        .region("us-east-1")
                        .resources("arn:aws:ec2:us-east-1:111122223333:spot-fleet-request/sfr-1")
                        .build(),
                )
                .build();
            GetServiceLinkedRoleDeletionStatusOutput::builder()
                .status(DeletionTaskStatusType::Failed)
                .reason(reason)
                .build()
                .unwrap()
        });
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&rule]);
        let clients = Clients::with_iam(iam);
        let err =
            wait_deleted(&clients, "AWSServiceRoleForEC2Spot", "t", Duration::from_secs(60), Duration::from_millis(10))
                .await
                .unwrap_err();
        assert_eq!(rule.num_calls(), 1, "a refusal is final");
        assert_eq!(err.kind, crate::error::ErrorKind::Aws);
        assert!(
            err.message.contains("AWSServiceRoleForEC2Spot") && err.message.contains("Service role is in use"),
            "{err}"
        );
        assert!(
            err.message.contains("us-east-1: arn:aws:ec2:us-east-1:111122223333:spot-fleet-request/sfr-1"),
            "{err}"
        );
        assert!(err.help.as_deref().is_some_and(|h| h.contains("still uses")), "{err}");
    }

    #[tokio::test]
    async fn a_deletion_that_stays_in_progress_stops_at_the_bound_with_the_task_id() {
        let rule = mock!(Client::get_service_linked_role_deletion_status)
            .sequence()
            .output(|| status(DeletionTaskStatusType::InProgress))
            .repeatedly()
            .build();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&rule]);
        let clients = Clients::with_iam(iam);
        let started = Instant::now();
        let err = wait_deleted(&clients, "R", "task-42", Duration::from_millis(300), Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "not bounded: {:?}", started.elapsed());
        assert!(rule.num_calls() >= 2);
        assert!(err.message.contains("IN_PROGRESS"), "{err}");
        assert!(err.help.as_deref().is_some_and(|h| h.contains("task-42")), "{err}");
    }

    #[test]
    fn each_service_finds_the_role_under_its_own_reserved_path() {
        let roles = [
            ("/aws-service-role/spot.amazonaws.com/", "AWSServiceRoleForEC2Spot"),
            ("/aws-service-role/spotfleet.amazonaws.com/", "AWSServiceRoleForEC2SpotFleet"),
            ("/aws-service-role/batch.amazonaws.com/", "AWSServiceRoleForBatch"),
        ];
        let found = |s: &str| find(s, roles.iter().copied());
        assert_eq!(found("spot.amazonaws.com").as_deref(), Some("AWSServiceRoleForEC2Spot"));
        assert_eq!(found("spotfleet.amazonaws.com").as_deref(), Some("AWSServiceRoleForEC2SpotFleet"));
        assert_eq!(found("ecs.amazonaws.com"), None);
    }
}
