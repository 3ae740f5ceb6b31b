//! Can the caller do what a plan needs? Asked of iam:SimulatePrincipalPolicy; where simulation is denied or
//! not implemented, the caller's own identity policies are read and evaluated locally (`policy_eval`).

use std::collections::BTreeMap;

use aws_sdk_iam::types::PolicyEvaluationDecisionType;
use serde::Serialize;
use serde_json::Value;

use super::caller::{Caller, CallerKind};
use crate::aws::{errors, Clients};
use crate::document;
use crate::engine::permissions::Permission;
use crate::policy_eval::{self, SourcePolicy, Verdict};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PermissionCheck {
    pub(crate) action: String,
    pub(crate) resource: String,
    #[serde(flatten)]
    pub(crate) verdict: Verdict,
    /// Where the verdict comes from: "simulation", "local evaluation" or "root credentials".
    pub(crate) source: &'static str,
    /// The statements that decided it, or why it could not be decided.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) detail: Vec<String>,
}

/// The verdict for each permission, and a note on how they were reached.
pub(crate) async fn check(clients: &Clients, caller: &Caller, needed: &[Permission]) -> (Vec<PermissionCheck>, String) {
    if needed.is_empty() {
        return (Vec::new(), "nothing to check".into());
    }
    if caller.kind == CallerKind::Root {
        let all = needed.iter().map(|p| verdict(p, Verdict::Allowed, "root credentials", vec![])).collect();
        return (all, "root credentials may do everything IAM policies can grant".into());
    }
    let principal = match principal_arn(clients, caller).await {
        Ok(p) => p,
        Err(reason) => return (unverified(needed, &reason), reason),
    };
    match simulate(clients, &principal, needed).await {
        Ok(results) => (results, format!("simulated for {principal} (iam:SimulatePrincipalPolicy)")),
        Err(why_not) => match local_policies(clients, caller).await {
            Ok(policies) => {
                let sources: Vec<SourcePolicy<'_>> =
                    policies.iter().map(|(label, doc)| SourcePolicy { label: label.clone(), document: doc }).collect();
                let results = needed
                    .iter()
                    .map(|p| {
                        let e = policy_eval::evaluate(&sources, &p.action, &p.resource);
                        let detail = match &e.verdict {
                            Verdict::Unverified { reason } => vec![reason.clone()],
                            _ => e.decided_by.clone(),
                        };
                        verdict(p, e.verdict, "local evaluation", detail)
                    })
                    .collect();
                let note = format!(
                    "simulation unavailable ({why_not}); evaluated {} identity polic{} of {principal} locally \
                     (SCPs and resource policies are not visible from the account)",
                    policies.len(),
                    if policies.len() == 1 { "y" } else { "ies" }
                );
                (results, note)
            }
            Err(reason) => {
                let reason = format!("simulation unavailable ({why_not}) and {reason}");
                (unverified(needed, &reason), reason)
            }
        },
    }
}

fn verdict(p: &Permission, verdict: Verdict, source: &'static str, detail: Vec<String>) -> PermissionCheck {
    PermissionCheck { action: p.action.clone(), resource: p.resource.clone(), verdict, source, detail }
}

fn unverified(needed: &[Permission], reason: &str) -> Vec<PermissionCheck> {
    needed.iter().map(|p| verdict(p, Verdict::Unverified { reason: reason.to_string() }, "none", vec![])).collect()
}

/// The IAM principal to simulate: the user, or the role behind an assumed-role session (its ARN has the
/// role's path, which only GetRole knows).
async fn principal_arn(clients: &Clients, caller: &Caller) -> Result<String, String> {
    match caller.kind {
        CallerKind::User => Ok(caller.arn.replacen(":sts::", ":iam::", 1)),
        CallerKind::AssumedRole => {
            let role = caller.role_name().ok_or("cannot tell the role from the caller's ARN")?;
            match clients.limit(clients.iam.get_role().role_name(role).send()).await {
                Ok(out) => out.role.map(|r| r.arn).ok_or_else(|| "iam:GetRole answered without the role".into()),
                Err(e) => {
                    Err(format!("cannot read the caller's role `{role}` ({})", errors::code(&e).unwrap_or("error")))
                }
            }
        }
        _ => Err(format!("cannot check permissions for a caller of this kind ({})", caller.arn)),
    }
}

async fn simulate(clients: &Clients, principal: &str, needed: &[Permission]) -> Result<Vec<PermissionCheck>, String> {
    let mut by_resource: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in needed {
        by_resource.entry(p.resource.as_str()).or_default().push(p.action.as_str());
    }
    let calls = by_resource.iter().map(|(resource, actions)| async move {
        let req = clients
            .iam
            .simulate_principal_policy()
            .policy_source_arn(principal)
            .set_action_names(Some(actions.iter().map(|a| a.to_string()).collect()))
            .resource_arns(*resource)
            .customize()
            // Not retried: an emulator without SimulatePrincipalPolicy answers 500, and we fall back at once.
            .config_override(
                aws_sdk_iam::config::Config::builder().retry_config(aws_config::retry::RetryConfig::disabled()),
            );
        clients.limit(req.send()).await.map(|out| (resource, out.evaluation_results.unwrap_or_default()))
    });
    let mut results = Vec::new();
    for outcome in futures::future::join_all(calls).await {
        let (resource, evaluations) = outcome.map_err(|e| match errors::code(&e) {
            Some(code) => format!("iam:SimulatePrincipalPolicy: {code}"),
            None => "iam:SimulatePrincipalPolicy failed".into(),
        })?;
        for ev in evaluations {
            let v = match ev.eval_decision {
                PolicyEvaluationDecisionType::Allowed => Verdict::Allowed,
                PolicyEvaluationDecisionType::ExplicitDeny => Verdict::Denied { explicit: true },
                _ => Verdict::Denied { explicit: false },
            };
            let p = Permission { action: ev.eval_action_name, resource: resource.to_string() };
            results.push(verdict(&p, v, "simulation", vec![]));
        }
    }
    Ok(results)
}

/// The caller's identity policies: attached and inline, the user's groups' too; `(label, document)`.
async fn local_policies(clients: &Clients, caller: &Caller) -> Result<Vec<(String, Value)>, String> {
    let iam = &clients.iam;
    let denied = |what: &str, code: Option<&str>| format!("cannot read {what} ({})", code.unwrap_or("error"));
    let mut policies = Vec::new();
    let mut attached: Vec<String> = Vec::new();
    match caller.kind {
        CallerKind::User => {
            let user = caller.user_name.as_deref().ok_or("the caller has no user name")?;
            let list = clients
                .limit(async {
                    iam.list_attached_user_policies()
                        .user_name(user)
                        .into_paginator()
                        .items()
                        .send()
                        .try_collect()
                        .await
                })
                .await
                .map_err(|e| denied("the caller's own policies", errors::code(&e)))?;
            attached.extend(list.into_iter().filter_map(|p| p.policy_arn));
            let names = clients
                .limit(async {
                    iam.list_user_policies().user_name(user).into_paginator().items().send().try_collect().await
                })
                .await
                .map_err(|e| denied("the caller's inline policies", errors::code(&e)))?;
            for name in names {
                let out = clients
                    .limit(iam.get_user_policy().user_name(user).policy_name(&name).send())
                    .await
                    .map_err(|e| denied("an inline policy", errors::code(&e)))?;
                policies.push((format!("inline policy {name} of user {user}"), parse(&out.policy_document)?));
            }
            let groups = clients
                .limit(async {
                    iam.list_groups_for_user().user_name(user).into_paginator().items().send().try_collect().await
                })
                .await
                .map_err(|e| denied("the caller's groups", errors::code(&e)))?;
            for g in groups {
                let group = g.group_name;
                let list = clients
                    .limit(async {
                        iam.list_attached_group_policies()
                            .group_name(&group)
                            .into_paginator()
                            .items()
                            .send()
                            .try_collect()
                            .await
                    })
                    .await
                    .map_err(|e| denied("a group's policies", errors::code(&e)))?;
                attached.extend(list.into_iter().filter_map(|p| p.policy_arn));
                let names = clients
                    .limit(async {
                        iam.list_group_policies().group_name(&group).into_paginator().items().send().try_collect().await
                    })
                    .await
                    .map_err(|e| denied("a group's inline policies", errors::code(&e)))?;
                for name in names {
                    let out = clients
                        .limit(iam.get_group_policy().group_name(&group).policy_name(&name).send())
                        .await
                        .map_err(|e| denied("a group's inline policy", errors::code(&e)))?;
                    policies.push((format!("inline policy {name} of group {group}"), parse(&out.policy_document)?));
                }
            }
        }
        CallerKind::AssumedRole => {
            let role = caller.role_name().ok_or("cannot tell the role from the caller's ARN")?;
            let list = clients
                .limit(async {
                    iam.list_attached_role_policies()
                        .role_name(role)
                        .into_paginator()
                        .items()
                        .send()
                        .try_collect()
                        .await
                })
                .await
                .map_err(|e| denied("the caller's role policies", errors::code(&e)))?;
            attached.extend(list.into_iter().filter_map(|p| p.policy_arn));
            let names = clients
                .limit(async {
                    iam.list_role_policies().role_name(role).into_paginator().items().send().try_collect().await
                })
                .await
                .map_err(|e| denied("the caller's inline role policies", errors::code(&e)))?;
            for name in names {
                let out = clients
                    .limit(iam.get_role_policy().role_name(role).policy_name(&name).send())
                    .await
                    .map_err(|e| denied("an inline role policy", errors::code(&e)))?;
                policies.push((format!("inline policy {name} of role {role}"), parse(&out.policy_document)?));
            }
        }
        _ => return Err("this kind of caller has no identity policies to read".into()),
    }
    attached.sort();
    attached.dedup();
    for (arn, doc) in managed_documents(clients, &attached).await? {
        policies.push((format!("policy {arn}"), doc));
    }
    Ok(policies)
}

/// The default-version documents of managed policies, concurrently.
pub(crate) async fn managed_documents(clients: &Clients, arns: &[String]) -> Result<Vec<(String, Value)>, String> {
    let fetches = arns.iter().map(|arn| async move {
        let policy = clients
            .limit(clients.iam.get_policy().policy_arn(arn).send())
            .await
            .map_err(|e| format!("cannot read policy {arn} ({})", errors::code(&e).unwrap_or("error")))?;
        let version =
            policy.policy.and_then(|p| p.default_version_id).ok_or(format!("policy {arn} has no default version"))?;
        let out = clients
            .limit(clients.iam.get_policy_version().policy_arn(arn).version_id(version).send())
            .await
            .map_err(|e| format!("cannot read policy {arn} ({})", errors::code(&e).unwrap_or("error")))?;
        let text = out.policy_version.and_then(|v| v.document).unwrap_or_default();
        Ok::<_, String>((arn.clone(), parse(&text)?))
    });
    futures::future::join_all(fetches).await.into_iter().collect()
}

fn parse(text: &str) -> Result<Value, String> {
    document::parse_returned(text)
}
