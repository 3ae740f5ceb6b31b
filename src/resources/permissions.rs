//! Can the caller do what a plan needs? Asked of iam:SimulatePrincipalPolicy; where simulation is denied or
//! not implemented, the caller's own identity policies are read and evaluated locally (`policy_eval`).

use std::collections::BTreeMap;

use aws_sdk_iam::types::{ContextKeyTypeEnum, PolicyEvaluationDecisionType};
use serde::Serialize;
use serde_json::Value;

use super::caller::{Caller, CallerKind};
use crate::aws::{errors, Clients};
use crate::document;
use crate::policy_eval::{self, SourcePolicy, Verdict};
use crate::resources::access::{ContextEntry, Permission};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PermissionCheck {
    pub(crate) action: String,
    pub(crate) resource: String,
    /// The request context the verdict was reached for (`iam:PassedToService`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) context: Vec<ContextEntry>,
    #[serde(flatten)]
    pub(crate) verdict: Verdict,
    /// Where the verdict comes from: "simulation", "local evaluation" or "root credentials".
    pub(crate) source: &'static str,
    /// The statements that decided it, or why it could not be decided.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) detail: Vec<String>,
}

impl PermissionCheck {
    /// The permission it is the verdict on.
    pub(crate) fn permission(&self) -> Permission {
        Permission { action: self.action.clone(), resource: self.resource.clone(), context: self.context.clone() }
    }

    pub(crate) fn is(&self, p: &Permission) -> bool {
        self.action == p.action && self.resource == p.resource && self.context == p.context
    }
}

/// The verdict for each permission, and a note on how they were reached, for the caller.
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
        Err(reason) => return (unverified(needed, &reason.to_string()), reason.to_string()),
    };
    // The caller's own policies are read alongside the simulation, so that a refused simulation (callers
    // often lack iam:SimulatePrincipalPolicy) costs no extra round trip. When they are not needed (the
    // simulation answered, or failed in a way local evaluation must not paper over), those reads are stopped,
    // not dropped: a dropped request may or may not have reached AWS, and the run's summary counts the HTTP
    // attempts it made, so the reads already sent finish and no further one starts.
    let stop = Gate::default();
    let simulation = simulate(clients, &principal, needed, &[]);
    let local = local_policies(clients, caller, &stop);
    tokio::pin!(simulation, local);
    let mut local_result = None;
    let simulated = tokio::select! {
        biased;
        r = &mut simulation => r,
        l = &mut local => {
            local_result = Some(l);
            simulation.await
        }
    };
    if !matches!(simulated, Err(Unsimulated::Fallback(_))) {
        stop.close();
    }
    let local_result = match local_result {
        Some(l) => l,
        None => local.await,
    };
    match simulated {
        Ok((results, calls)) => (
            results,
            format!(
                "simulated for {principal} (iam:SimulatePrincipalPolicy, {calls} call{} for {} request context{})",
                crate::wording::plural(calls),
                calls,
                crate::wording::plural(calls)
            ),
        ),
        Err(Unsimulated::Fallback(why_not)) => match local_result {
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
                     (SCPs, permissions boundaries and resource policies are not visible that way)",
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
        Err(Unsimulated::Failed(why)) => {
            let reason =
                format!("the simulation failed ({why}); not evaluated locally, which cannot see SCPs or boundaries");
            (unverified(needed, &reason), reason)
        }
    }
}

fn verdict(p: &Permission, verdict: Verdict, source: &'static str, detail: Vec<String>) -> PermissionCheck {
    PermissionCheck {
        action: p.action.clone(),
        resource: p.resource.clone(),
        context: p.context.clone(),
        verdict,
        source,
        detail,
    }
}

fn unverified(needed: &[Permission], reason: &str) -> Vec<PermissionCheck> {
    needed.iter().map(|p| verdict(p, Verdict::Unverified { reason: reason.to_string() }, "none", vec![])).collect()
}

/// The IAM principal to simulate: the user, or the role behind an assumed-role session (its ARN has the
/// role's path, which only GetRole knows).
async fn principal_arn(clients: &Clients, caller: &Caller) -> Result<String, Unread> {
    match caller.kind {
        CallerKind::User => Ok(caller.arn.replacen(":sts::", ":iam::", 1)),
        CallerKind::AssumedRole => {
            let role = caller.role_name().ok_or(Unread::Caller("cannot tell the role from the caller's ARN"))?;
            match clients.limit(clients.iam.get_role().role_name(role).send()).await {
                Ok(out) => out
                    .role
                    .map(|r| r.arn)
                    .ok_or_else(|| Unread::Answer("iam:GetRole answered without the role".into())),
                Err(e) => Err(Unread::refused(format!("the caller's role `{role}`"), &e)),
            }
        }
        _ => Err(Unread::OtherCaller(caller.arn.clone())),
    }
}

/// Why the caller's identity policies (or a managed policy's document) could not be read; its text is the reason
/// the permissions stay unverified, as the check reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unread {
    /// AWS refused or failed the read of `what`, with its error code when it answered with one.
    Refused { what: String, code: Option<String> },
    /// Not sent: the simulation answered first (see [`Gate`]).
    Stopped,
    /// AWS answered without what was asked for.
    Answer(String),
    /// A document AWS returned is not one (URL-encoded JSON).
    Document(document::Unparsable),
    /// The caller's identity does not say whose policies to read.
    Caller(&'static str),
    /// A caller (root, a federated user) with no identity policies to read, by its ARN.
    OtherCaller(String),
}

impl Unread {
    fn refused<E: aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(
        what: String,
        e: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> Unread {
        Unread::Refused { what, code: errors::code(e).map(str::to_string) }
    }
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Refused { what, code } => write!(f, "cannot read {what} ({})", code.as_deref().unwrap_or("error")),
            Unread::Stopped => f.write_str("stopped: the simulation answered"),
            Unread::Answer(what) => f.write_str(what),
            // The document's own error says what is wrong with it, as it did before it had a type.
            Unread::Document(error) => write!(f, "{error}"),
            Unread::Caller(why) => f.write_str(why),
            Unread::OtherCaller(arn) => write!(f, "cannot check permissions for a caller of this kind ({arn})"),
        }
    }
}

/// Why the simulation gave no verdicts.
#[derive(Debug)]
pub(crate) enum Unsimulated {
    /// The simulator is not there for this caller (not implemented, AWS's own failure after the retries, or the
    /// caller may not simulate): local evaluation of the caller's policies is the next best thing.
    Fallback(SimulationError),
    /// Anything else (throttled after the SDK's retries, a rejected request): the permissions stay unverified.
    Failed(SimulationError),
}

/// A failed iam:SimulatePrincipalPolicy: AWS's error code, else the HTTP status of its answer, if there was one;
/// what its last attempt met, in words; how many attempts that took; and how many of the check's other calls
/// were stopped with it (the check's breaker, [`super::advisory`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimulationError {
    pub(crate) code: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) answered: String,
    pub(crate) attempts: u32,
    pub(crate) stopped: usize,
}

impl std::fmt::Display for SimulationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "iam:SimulatePrincipalPolicy {}", self.answered)?;
        if self.attempts > 1 {
            write!(f, " {} times", self.attempts)?;
        }
        if self.stopped > 0 {
            let s = crate::wording::plural(self.stopped);
            write!(f, "; its {} other simulation{s} stopped there", self.stopped)?;
        }
        Ok(())
    }
}

/// The verdict of each needed permission from iam:SimulatePrincipalPolicy for `principal`. One call per distinct
/// request context (IAM applies a call's ContextEntries to all its actions and resources), all at once; each
/// call asks for the context's actions on its resources and follows the pages. `extra_policies` are documents
/// simulated as if attached too (PolicyInputList: policies a bootstrap is about to attach). Returns the verdicts and
/// the number of calls (not counting pages).
///
/// Retried by the SDK's standard retry (throttling is common on this API: cloud-custodian/cloud-custodian#7641).
pub(crate) async fn simulate(
    clients: &Clients,
    principal: &str,
    needed: &[Permission],
    extra_policies: &[String],
) -> Result<(Vec<PermissionCheck>, usize), Unsimulated> {
    let mut by_context: BTreeMap<&[ContextEntry], Vec<&Permission>> = BTreeMap::new();
    for p in needed {
        by_context.entry(p.context.as_slice()).or_default().push(p);
    }
    let calls = by_context.len();
    // The check's breaker: the first simulation that still fails after its retry ends the check. The others are let
    // finish rather than dropped, so that every request sent is one whose answer was heard (and counted as such):
    // those in flight were sent at the same moment, and one still waiting for a request slot is sent once, without a
    // retry, since the open breaker answers for it (`advisory::send`).
    let (iam, breaker) = (super::advisory::iam_once(clients), super::advisory::Breaker::default());
    let answers = futures::future::join_all(by_context.iter().map(|(context, perms)| {
        simulate_context(clients, (&iam, &breaker), principal, context, perms, extra_policies)
    }))
    .await;
    let answers = answers.into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| e.stopping(calls - 1))?;
    // (action, resource, context) -> (decision, missing context keys, matched statements)
    type Key = (String, String, Vec<ContextEntry>);
    let mut decisions: BTreeMap<Key, (PolicyEvaluationDecisionType, Vec<String>, Vec<String>)> = BTreeMap::new();
    for ((context, _), answer) in by_context.iter().zip(answers) {
        for (action, resource, decision, missing, matched) in answer {
            decisions.insert((action, resource, context.to_vec()), (decision, missing, matched));
        }
    }
    let results = needed
        .iter()
        .map(|p| match decisions.get(&(p.action.clone(), p.resource.clone(), p.context.clone())) {
            Some((PolicyEvaluationDecisionType::Allowed, _, matched)) => {
                verdict(p, Verdict::Allowed, "simulation", matched.clone())
            }
            Some((PolicyEvaluationDecisionType::ExplicitDeny, _, matched)) => {
                verdict(p, Verdict::Denied { explicit: true }, "simulation", matched.clone())
            }
            // implicitDeny for keys only the request itself sets (its tags, its permissions boundary): wfboot
            // builds that request, so a key it did not give is absent from the real one too, and "if the key that
            // you specify in a policy condition is not present in the request context, the values do not match"
            // (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html): denied.
            Some((_, missing, _)) if !missing.is_empty() && missing.iter().all(|k| set_by_request(k)) => {
                verdict(p, Verdict::Denied { explicit: false }, "simulation", vec![])
            }
            // implicitDeny on a statement whose condition needs a key the request context lacks: IAM cannot say
            // (IAM API reference, EvaluationResult: MissingContextValues).
            Some((_, missing, _)) if !missing.is_empty() => verdict(
                p,
                Verdict::Unverified { reason: format!("needs {}", missing.join(", ")) },
                "simulation",
                vec![],
            ),
            Some(_) => verdict(p, Verdict::Denied { explicit: false }, "simulation", vec![]),
            None => verdict(
                p,
                Verdict::Unverified { reason: "the simulation returned no result for it".into() },
                "simulation",
                vec![],
            ),
        })
        .collect();
    Ok((results, calls))
}

/// A context key whose presence the write call's own parameters decide: the tags it sends (aws:RequestTag/KEY,
/// aws:TagKeys) and the boundary it sets (iam:PermissionsBoundary). wfboot gives every one its calls carry.
fn set_by_request(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with("aws:requesttag/") || k == "aws:tagkeys" || k == "iam:permissionsboundary"
}

type Decision = (String, String, PolicyEvaluationDecisionType, Vec<String>, Vec<String>);

/// One simulation: `perms`' actions on their resources in one context, every page.
async fn simulate_context(
    clients: &Clients,
    (iam, breaker): (&aws_sdk_iam::Client, &super::advisory::Breaker),
    principal: &str,
    context: &[ContextEntry],
    perms: &[&Permission],
    extra_policies: &[String],
) -> Result<Vec<Decision>, Unsimulated> {
    let mut actions: Vec<String> = perms.iter().map(|p| p.action.clone()).collect();
    actions.sort();
    actions.dedup();
    let mut resources: Vec<String> = perms.iter().map(|p| p.resource.clone()).collect();
    resources.sort();
    resources.dedup();
    let entries: Vec<aws_sdk_iam::types::ContextEntry> = context
        .iter()
        .map(|e| {
            aws_sdk_iam::types::ContextEntry::builder()
                .context_key_name(&e.key)
                .set_context_key_values(Some(e.values.clone()))
                .context_key_type(if e.list { ContextKeyTypeEnum::StringList } else { ContextKeyTypeEnum::String })
                .build()
        })
        .collect();
    let req = iam
        .simulate_principal_policy()
        .policy_source_arn(principal)
        .set_action_names(Some(actions))
        .set_resource_arns(Some(resources))
        .set_context_entries(if entries.is_empty() { None } else { Some(entries) })
        .set_policy_input_list(if extra_policies.is_empty() { None } else { Some(extra_policies.to_vec()) });
    // Every page: the SDK's paginator follows Marker until IAM sends none (it sends one only while IsTruncated).
    // An advisory call: retried on a short leash, then it ends the check (`advisory::send`).
    let pages = || crate::aws::all_pages(req.clone().into_paginator().items().send());
    let evaluations = super::advisory::send(clients, breaker, pages).await.map_err(|(e, n)| unsimulated(e, n))?;
    let mut out = Vec::new();
    for ev in evaluations {
        let specific = ev.resource_specific_results.unwrap_or_default();
        if specific.is_empty() {
            let resource = ev.eval_resource_name.unwrap_or_else(|| "*".into());
            let matched = statements(ev.matched_statements.unwrap_or_default());
            out.push((
                ev.eval_action_name,
                resource,
                ev.eval_decision,
                ev.missing_context_values.unwrap_or_default(),
                matched,
            ));
        } else {
            for r in specific {
                let matched = statements(r.matched_statements.unwrap_or_default());
                out.push((
                    ev.eval_action_name.clone(),
                    r.eval_resource_name,
                    r.eval_resource_decision,
                    r.missing_context_values.unwrap_or_default(),
                    matched,
                ));
            }
        }
    }
    Ok(out)
}

/// "policy AdministratorAccess (aws-managed)" for each statement the simulator says decided it.
fn statements(matched: Vec<aws_sdk_iam::types::Statement>) -> Vec<String> {
    let mut out: Vec<String> = matched
        .into_iter()
        .filter_map(|s| {
            let id = s.source_policy_id?;
            Some(match s.source_policy_type {
                Some(kind) => format!("policy {id} ({})", kind.as_str()),
                None => format!("policy {id}"),
            })
        })
        .collect();
    out.dedup();
    out
}

/// Which failures of the simulation send the check to local evaluation: the operation missing (an emulator or
/// partition without it), AWS's own failure after the SDK's retries (5xx), or the caller not allowed to simulate.
/// Anything else (throttling that outlasted the retries, a rejected request) leaves the permissions unverified:
/// local evaluation cannot see SCPs or permissions boundaries, so it is no substitute for an answer IAM withheld.
fn unsimulated<E>(e: aws_smithy_runtime_api::client::result::SdkError<E, HttpResponse>, attempts: u32) -> Unsimulated
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let status = match &e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    let error = SimulationError {
        code: errors::code(&e).map(str::to_string),
        status,
        answered: super::advisory::answered(&e),
        attempts,
        stopped: 0,
    };
    let fallback = matches!(error.code.as_deref(), Some("AccessDenied" | "AccessDeniedException" | "NotImplemented"))
        || status.is_some_and(|s| s == 501 || (500..600).contains(&s))
        || status == Some(403);
    if fallback {
        Unsimulated::Fallback(error)
    } else {
        Unsimulated::Failed(error)
    }
}

type HttpResponse = aws_smithy_runtime_api::http::Response;

impl Unsimulated {
    /// The check's other `others` calls were stopped with this one.
    fn stopping(self, others: usize) -> Unsimulated {
        match self {
            Unsimulated::Fallback(e) => Unsimulated::Fallback(SimulationError { stopped: others, ..e }),
            Unsimulated::Failed(e) => Unsimulated::Failed(SimulationError { stopped: others, ..e }),
        }
    }
}

/// Lets the requests already sent finish and starts no new one once closed (the reads of the caller's policies,
/// once the simulation has answered).
#[derive(Default)]
struct Gate(std::sync::atomic::AtomicBool);

impl Gate {
    fn close(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `call` with a request slot, unless the gate closed first ("stopped").
    async fn call<F: std::future::Future>(&self, clients: &Clients, call: F) -> Result<F::Output, Unread> {
        clients
            .limit(async {
                match self.0.load(std::sync::atomic::Ordering::SeqCst) {
                    true => None,
                    false => Some(call.await),
                }
            })
            .await
            .ok_or(Unread::Stopped)
    }

    /// Every item of a paginated read (the slot is this gate's, so [`crate::aws::all_pages`], not `Clients::all`),
    /// or why it was not read: `what` and AWS's error code.
    async fn list<T, E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
        &self,
        clients: &Clients,
        what: impl FnOnce() -> String,
        pages: crate::aws::Pages<T, E>,
    ) -> Result<Vec<T>, Unread> {
        self.call(clients, crate::aws::all_pages(pages)).await?.map_err(|e| Unread::refused(what(), &e))
    }
}

/// The caller's identity policies: attached and inline, the user's groups' too; `(label, document)`.
/// Each level is read concurrently: the lists, then the inline documents and the groups' lists, then the
/// managed policies' documents.
async fn local_policies(clients: &Clients, caller: &Caller, gate: &Gate) -> Result<Vec<(String, Value)>, Unread> {
    let (attached, mut policies) = match caller.kind {
        CallerKind::User => {
            let user = caller.user_name.as_deref().ok_or(Unread::Caller("the caller has no user name"))?;
            let groups = async {
                let groups = gate
                    .list(
                        clients,
                        || "the caller's groups".into(),
                        clients.iam.list_groups_for_user().user_name(user).into_paginator().items().send(),
                    )
                    .await?;
                futures::future::try_join_all(
                    groups.into_iter().map(|g| attached_and_inline(clients, gate, Holder::Group(g.group_name))),
                )
                .await
            };
            let (own, groups) =
                tokio::try_join!(attached_and_inline(clients, gate, Holder::User(user.to_string())), groups)?;
            let mut all = own;
            for (attached, inline) in groups {
                all.0.extend(attached);
                all.1.extend(inline);
            }
            all
        }
        CallerKind::AssumedRole => {
            let role = caller.role_name().ok_or(Unread::Caller("cannot tell the role from the caller's ARN"))?;
            attached_and_inline(clients, gate, Holder::Role(role.to_string())).await?
        }
        _ => return Err(Unread::Caller("this kind of caller has no identity policies to read")),
    };
    let mut attached = attached;
    attached.sort();
    attached.dedup();
    for (arn, doc) in gated_managed_documents(clients, gate, &attached).await? {
        policies.push((format!("policy {arn}"), doc));
    }
    Ok(policies)
}

/// Who an identity policy is attached to or embedded in.
enum Holder {
    User(String),
    Group(String),
    Role(String),
}

/// A holder's attached managed policies (ARNs) and inline policies (label, document), read concurrently.
async fn attached_and_inline(
    clients: &Clients,
    gate: &Gate,
    holder: Holder,
) -> Result<(Vec<String>, Vec<(String, Value)>), Unread> {
    let iam = &clients.iam;
    let (kind, name) = match &holder {
        Holder::User(n) => ("user", n.as_str()),
        Holder::Group(n) => ("group", n.as_str()),
        Holder::Role(n) => ("role", n.as_str()),
    };
    let attached = async {
        let what = || format!("the policies of {kind} {name}");
        let arns: Vec<Option<String>> = match &holder {
            Holder::User(n) => gate
                .list(clients, what, iam.list_attached_user_policies().user_name(n).into_paginator().items().send())
                .await?
                .into_iter()
                .map(|p| p.policy_arn)
                .collect(),
            Holder::Group(n) => gate
                .list(clients, what, iam.list_attached_group_policies().group_name(n).into_paginator().items().send())
                .await?
                .into_iter()
                .map(|p| p.policy_arn)
                .collect(),
            Holder::Role(n) => gate
                .list(clients, what, iam.list_attached_role_policies().role_name(n).into_paginator().items().send())
                .await?
                .into_iter()
                .map(|p| p.policy_arn)
                .collect(),
        };
        Ok::<_, Unread>(arns.into_iter().flatten().collect::<Vec<String>>())
    };
    let inline = async {
        let what = || format!("the inline policies of {kind} {name}");
        let names: Vec<String> = match &holder {
            Holder::User(n) => {
                gate.list(clients, what, iam.list_user_policies().user_name(n).into_paginator().items().send()).await?
            }
            Holder::Group(n) => {
                gate.list(clients, what, iam.list_group_policies().group_name(n).into_paginator().items().send())
                    .await?
            }
            Holder::Role(n) => {
                gate.list(clients, what, iam.list_role_policies().role_name(n).into_paginator().items().send()).await?
            }
        };
        let holder = &holder;
        let docs = names.iter().map(|p| async move {
            let label = format!("inline policy {p} of {kind} {name}");
            let text = match holder {
                Holder::User(n) => gate
                    .call(clients, iam.get_user_policy().user_name(n).policy_name(p).send())
                    .await?
                    .map(|o| o.policy_document)
                    .map_err(|e| Unread::refused(label.clone(), &e)),
                Holder::Group(n) => gate
                    .call(clients, iam.get_group_policy().group_name(n).policy_name(p).send())
                    .await?
                    .map(|o| o.policy_document)
                    .map_err(|e| Unread::refused(label.clone(), &e)),
                Holder::Role(n) => gate
                    .call(clients, iam.get_role_policy().role_name(n).policy_name(p).send())
                    .await?
                    .map(|o| o.policy_document)
                    .map_err(|e| Unread::refused(label.clone(), &e)),
            }?;
            let doc = parse(&text)?;
            Ok::<_, Unread>((label, doc))
        });
        futures::future::try_join_all(docs).await
    };
    tokio::try_join!(attached, inline)
}

/// The default-version documents of managed policies, concurrently.
pub(crate) async fn managed_documents(clients: &Clients, arns: &[String]) -> Result<Vec<(String, Value)>, Unread> {
    gated_managed_documents(clients, &Gate::default(), arns).await
}

async fn gated_managed_documents(
    clients: &Clients,
    gate: &Gate,
    arns: &[String],
) -> Result<Vec<(String, Value)>, Unread> {
    let fetches = arns.iter().map(|arn| async move {
        let policy = gate
            .call(clients, clients.iam.get_policy().policy_arn(arn).send())
            .await?
            .map_err(|e| Unread::refused(format!("policy {arn}"), &e))?;
        let version = policy
            .policy
            .and_then(|p| p.default_version_id)
            .ok_or_else(|| Unread::Answer(format!("policy {arn} has no default version")))?;
        let out = gate
            .call(clients, clients.iam.get_policy_version().policy_arn(arn).version_id(version).send())
            .await?
            .map_err(|e| Unread::refused(format!("policy {arn}"), &e))?;
        let text = out.policy_version.and_then(|v| v.document).unwrap_or_default();
        Ok::<_, Unread>((arn.clone(), parse(&text)?))
    });
    futures::future::join_all(fetches).await.into_iter().collect()
}

fn parse(text: &str) -> Result<Value, Unread> {
    document::parse_returned(text).map_err(Unread::Document)
}

/// The simulation path, which the emulator does not implement, with mocked IAM answers.
#[cfg(test)]
mod tests {
    use aws_sdk_iam::operation::get_policy::GetPolicyOutput;
    use aws_sdk_iam::operation::get_policy_version::GetPolicyVersionOutput;
    use aws_sdk_iam::operation::list_attached_user_policies::ListAttachedUserPoliciesOutput;
    use aws_sdk_iam::operation::list_groups_for_user::ListGroupsForUserOutput;
    use aws_sdk_iam::operation::list_user_policies::ListUserPoliciesOutput;
    use aws_sdk_iam::operation::simulate_principal_policy::{
        SimulatePrincipalPolicyError, SimulatePrincipalPolicyOutput,
    };
    use aws_sdk_iam::types::{AttachedPolicy, EvaluationResult, Policy, PolicyVersion};
    use aws_sdk_iam::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;
    use crate::resources::caller;

    fn needed() -> Vec<Permission> {
        ["iam:CreateRole", "iam:TagRole", "iam:PassRole"]
            .iter()
            .map(|a| Permission::new(a, "arn:aws:iam::111122223333:role/R"))
            .collect()
    }

    fn user() -> Caller {
        caller::parse("111122223333", "arn:aws:iam::111122223333:user/alice").unwrap()
    }

    fn result(action: &str, decision: &str) -> EvaluationResult {
        EvaluationResult::builder()
            .eval_action_name(action)
            .eval_resource_name("arn:aws:iam::111122223333:role/R")
            .eval_decision(PolicyEvaluationDecisionType::from(decision))
            .build()
            .unwrap()
    }

    fn empty_lists() -> (aws_smithy_mocks::Rule, aws_smithy_mocks::Rule) {
        let inline = mock!(Client::list_user_policies)
            .then_output(|| ListUserPoliciesOutput::builder().set_policy_names(Some(vec![])).build().unwrap());
        let groups = mock!(Client::list_groups_for_user)
            .then_output(|| ListGroupsForUserOutput::builder().set_groups(Some(vec![])).build().unwrap());
        (inline, groups)
    }

    #[tokio::test]
    async fn simulation_verdicts_are_reported_per_action() {
        let simulate = mock!(Client::simulate_principal_policy)
            .match_requests(|r| r.policy_source_arn() == Some("arn:aws:iam::111122223333:user/alice"))
            .then_output(|| {
                SimulatePrincipalPolicyOutput::builder()
                    .evaluation_results(result("iam:CreateRole", "allowed"))
                    .evaluation_results(result("iam:TagRole", "implicitDeny"))
                    .evaluation_results(result("iam:PassRole", "explicitDeny"))
                    .build()
            });
        // The caller's own policies are read alongside (and stopped once the simulation answers).
        let attached = mock!(Client::list_attached_user_policies)
            .then_output(|| ListAttachedUserPoliciesOutput::builder().set_attached_policies(Some(vec![])).build());
        let (inline, groups) = empty_lists();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&simulate, &attached, &inline, &groups]);
        let (checks, method) = check(&Clients::with_iam(iam), &user(), &needed()).await;
        assert!(method.starts_with("simulated for arn:aws:iam::111122223333:user/alice"), "{method}");
        let verdict = |a: &str| checks.iter().find(|c| c.action == a).map(|c| c.verdict.clone()).unwrap();
        assert_eq!(verdict("iam:CreateRole"), Verdict::Allowed);
        assert_eq!(verdict("iam:TagRole"), Verdict::Denied { explicit: false });
        assert_eq!(verdict("iam:PassRole"), Verdict::Denied { explicit: true });
        assert!(checks.iter().all(|c| c.source == "simulation"));
        assert_eq!(simulate.num_calls(), 1, "one simulation for every action and resource");
    }

    #[tokio::test]
    async fn when_simulation_is_denied_the_callers_own_policies_are_evaluated_locally() {
        let denied = mock!(Client::simulate_principal_policy).then_error(|| {
            let meta = aws_smithy_types::error::ErrorMetadata::builder()
                .code("AccessDenied")
                .message("not authorized")
                .build();
            SimulatePrincipalPolicyError::generic(meta)
        });
        let arn = "arn:aws:iam::aws:policy/Custom";
        let attached = mock!(Client::list_attached_user_policies).then_output(move || {
            ListAttachedUserPoliciesOutput::builder()
                .attached_policies(AttachedPolicy::builder().policy_arn(arn).policy_name("Custom").build())
                .build()
        });
        let inline = mock!(Client::list_user_policies)
            .then_output(|| ListUserPoliciesOutput::builder().set_policy_names(Some(vec![])).build().unwrap());
        let groups = mock!(Client::list_groups_for_user)
            .then_output(|| ListGroupsForUserOutput::builder().set_groups(Some(vec![])).build().unwrap());
        let policy = mock!(Client::get_policy).then_output(move || {
            GetPolicyOutput::builder().policy(Policy::builder().arn(arn).default_version_id("v1").build()).build()
        });
        // As IAM returns it: URL-encoded. Allows CreateRole and TagRole, denies PassRole on a condition.
        let doc = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%5B%22iam%3ACreate%2A%22%2C%22iam%3ATagRole%22%5D%2C%22Resource%22%3A%22%2A%22%7D%2C%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22iam%3APassRole%22%2C%22Resource%22%3A%22%2A%22%2C%22Condition%22%3A%7B%22StringEquals%22%3A%7B%22iam%3APassedToService%22%3A%22ec2.amazonaws.com%22%7D%7D%7D%5D%7D";
        let version = mock!(Client::get_policy_version).then_output(move || {
            GetPolicyVersionOutput::builder()
                .policy_version(PolicyVersion::builder().document(doc).version_id("v1").build())
                .build()
        });
        let iam =
            mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&denied, &attached, &inline, &groups, &policy, &version]);
        let (checks, method) = check(&Clients::with_iam(iam), &user(), &needed()).await;
        assert!(
            method.contains("simulation unavailable (iam:SimulatePrincipalPolicy answered AccessDenied"),
            "{method}"
        );
        assert!(method.contains("evaluated 1 identity policy"), "{method}");
        let verdict = |a: &str| checks.iter().find(|c| c.action == a).map(|c| c.verdict.clone()).unwrap();
        assert_eq!(verdict("iam:CreateRole"), Verdict::Allowed);
        assert_eq!(verdict("iam:TagRole"), Verdict::Allowed);
        assert!(matches!(verdict("iam:PassRole"), Verdict::Unverified { .. }), "a condition is never 'allowed'");
        assert!(checks.iter().all(|c| c.source == "local evaluation"));
    }

    #[tokio::test]
    async fn when_neither_simulation_nor_the_callers_policies_can_be_read_everything_is_unverified() {
        let denied = mock!(Client::simulate_principal_policy).then_error(|| {
            SimulatePrincipalPolicyError::generic(
                aws_smithy_types::error::ErrorMetadata::builder().code("AccessDenied").build(),
            )
        });
        let attached = mock!(Client::list_attached_user_policies).then_error(|| {
            aws_sdk_iam::operation::list_attached_user_policies::ListAttachedUserPoliciesError::generic(
                aws_smithy_types::error::ErrorMetadata::builder().code("AccessDenied").build(),
            )
        });
        let (inline, groups) = empty_lists();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&denied, &attached, &inline, &groups]);
        let (checks, _) = check(&Clients::with_iam(iam), &user(), &needed()).await;
        assert!(checks.iter().all(|c| matches!(c.verdict, Verdict::Unverified { .. })), "{checks:?}");
    }

    #[tokio::test]
    async fn a_refused_read_of_a_managed_policy_keeps_awss_code_as_a_value() {
        let refused = mock!(Client::get_policy).then_error(|| {
            aws_sdk_iam::operation::get_policy::GetPolicyError::generic(
                aws_smithy_types::error::ErrorMetadata::builder().code("AccessDenied").build(),
            )
        });
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&refused]);
        let arn = "arn:aws:iam::aws:policy/ReadOnlyAccess".to_string();
        let err = managed_documents(&Clients::with_iam(iam), std::slice::from_ref(&arn)).await.unwrap_err();
        assert_eq!(err, Unread::Refused { what: format!("policy {arn}"), code: Some("AccessDenied".into()) });
        assert_eq!(err.to_string(), format!("cannot read policy {arn} (AccessDenied)"));
    }

    fn passed_to(service: &str) -> ContextEntry {
        ContextEntry { key: "iam:PassedToService".into(), values: vec![service.into()], list: false }
    }

    /// An IAM error response as the query protocol sends it.
    fn iam_error(status: u16, code: &str) -> (u16, Option<String>) {
        let body = format!(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type>\
             <Code>{code}</Code><Message>{code}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        );
        (status, Some(body))
    }

    /// The reads of a caller whose only policy is AdministratorAccess (Allow * on *).
    fn administrator_reads() -> [aws_smithy_mocks::Rule; 5] {
        let arn = "arn:aws:iam::aws:policy/AdministratorAccess";
        let attached = mock!(Client::list_attached_user_policies).then_output(move || {
            ListAttachedUserPoliciesOutput::builder()
                .attached_policies(AttachedPolicy::builder().policy_arn(arn).policy_name("AdministratorAccess").build())
                .build()
        });
        let (inline, groups) = empty_lists();
        let policy = mock!(Client::get_policy).then_output(move || {
            GetPolicyOutput::builder().policy(Policy::builder().arn(arn).default_version_id("v1").build()).build()
        });
        let version = mock!(Client::get_policy_version).then_output(|| {
            let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
            GetPolicyVersionOutput::builder()
                .policy_version(PolicyVersion::builder().document(doc).version_id("v1").build())
                .build()
        });
        [attached, inline, groups, policy, version]
    }

    /// A mocked IAM client that retries as wfboot's clients do (standard mode), with millisecond backoff.
    fn retrying(rules: &[&aws_smithy_mocks::Rule]) -> Clients {
        let retry = aws_smithy_types::retry::RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(std::time::Duration::from_millis(1));
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, rules, |c: aws_sdk_iam::config::Builder| c
            .retry_config(retry.clone()));
        Clients::with_iam(iam)
    }

    #[tokio::test]
    async fn one_simulation_per_request_context_each_with_its_entries_and_missing_context_is_unverified() {
        // PassRole of one role to Batch and of another to Lambda: two contexts, two calls.
        let batch =
            Permission::new("iam:PassRole", "arn:aws:iam::111122223333:role/B").with(passed_to("batch.amazonaws.com"));
        let lambda =
            Permission::new("iam:PassRole", "arn:aws:iam::111122223333:role/L").with(passed_to("lambda.amazonaws.com"));
        let create = Permission::new("iam:CreateRole", "arn:aws:iam::111122223333:role/R");
        let context_of = |r: &aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyInput| {
            r.context_entries()
                .iter()
                .map(|e| (e.context_key_name().unwrap_or_default().to_string(), e.context_key_values().to_vec()))
                .collect::<Vec<_>>()
        };
        let to_batch = mock!(Client::simulate_principal_policy)
            .match_requests(move |r| {
                context_of(r) == [("iam:PassedToService".to_string(), vec!["batch.amazonaws.com".to_string()])]
                    && r.resource_arns() == ["arn:aws:iam::111122223333:role/B"]
            })
            .then_output(|| {
                SimulatePrincipalPolicyOutput::builder()
                    .evaluation_results(
                        EvaluationResult::builder()
                            .eval_action_name("iam:PassRole")
                            .eval_resource_name("arn:aws:iam::111122223333:role/B")
                            .eval_decision(PolicyEvaluationDecisionType::Allowed)
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        // The grant for Lambda's role names a key the request does not carry.
        let to_lambda = mock!(Client::simulate_principal_policy)
            .match_requests(move |r| {
                context_of(r) == [("iam:PassedToService".to_string(), vec!["lambda.amazonaws.com".to_string()])]
            })
            .then_output(|| {
                SimulatePrincipalPolicyOutput::builder()
                    .evaluation_results(
                        EvaluationResult::builder()
                            .eval_action_name("iam:PassRole")
                            .eval_resource_name("arn:aws:iam::111122223333:role/L")
                            .eval_decision(PolicyEvaluationDecisionType::ImplicitDeny)
                            .missing_context_values("aws:ResourceTag/team")
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        let bare = mock!(Client::simulate_principal_policy)
            .match_requests(move |r| r.context_entries().is_empty())
            .then_output(|| {
                SimulatePrincipalPolicyOutput::builder()
                    .evaluation_results(result("iam:CreateRole", "explicitDeny"))
                    .build()
            });
        let attached = mock!(Client::list_attached_user_policies)
            .then_output(|| ListAttachedUserPoliciesOutput::builder().set_attached_policies(Some(vec![])).build());
        let (inline, groups) = empty_lists();
        let iam =
            mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&to_batch, &to_lambda, &bare, &attached, &inline, &groups]);
        let needed = vec![batch.clone(), lambda.clone(), create.clone()];
        let (checks, method) = check(&Clients::with_iam(iam), &user(), &needed).await;
        assert!(method.contains("3 calls for 3 request contexts"), "{method}");
        assert_eq!((to_batch.num_calls(), to_lambda.num_calls(), bare.num_calls()), (1, 1, 1));
        let verdict = |p: &Permission| checks.iter().find(|c| c.is(p)).map(|c| c.verdict.clone()).unwrap();
        assert_eq!(verdict(&batch), Verdict::Allowed);
        assert_eq!(verdict(&lambda), Verdict::Unverified { reason: "needs aws:ResourceTag/team".into() });
        assert_eq!(verdict(&create), Verdict::Denied { explicit: true }, "an explicit deny stays denied");
    }

    #[tokio::test]
    async fn a_simulation_answered_in_pages_is_read_to_its_last_page() {
        let first =
            mock!(Client::simulate_principal_policy).match_requests(|r| r.marker().is_none()).then_output(|| {
                SimulatePrincipalPolicyOutput::builder()
                    .evaluation_results(result("iam:CreateRole", "allowed"))
                    .evaluation_results(result("iam:TagRole", "allowed"))
                    .is_truncated(true)
                    .marker("page-2")
                    .build()
            });
        let second = mock!(Client::simulate_principal_policy)
            .match_requests(|r| r.marker() == Some("page-2"))
            .then_output(|| {
                SimulatePrincipalPolicyOutput::builder()
                    .evaluation_results(result("iam:PassRole", "explicitDeny"))
                    .is_truncated(false)
                    .build()
            });
        let attached = mock!(Client::list_attached_user_policies)
            .then_output(|| ListAttachedUserPoliciesOutput::builder().set_attached_policies(Some(vec![])).build());
        let (inline, groups) = empty_lists();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&first, &second, &attached, &inline, &groups]);
        let (checks, method) = check(&Clients::with_iam(iam), &user(), &needed()).await;
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1), "both pages, each once");
        assert!(method.contains("1 call for 1 request context"), "pages are not calls: {method}");
        let verdict = |a: &str| checks.iter().find(|c| c.action == a).map(|c| c.verdict.clone()).unwrap();
        assert_eq!(verdict("iam:CreateRole"), Verdict::Allowed);
        assert_eq!(verdict("iam:PassRole"), Verdict::Denied { explicit: true }, "the second page's verdict");
    }

    #[tokio::test]
    async fn a_throttled_simulation_is_retried_and_its_answer_used() {
        let (status, body) = iam_error(400, "Throttling");
        let simulate = mock!(Client::simulate_principal_policy)
            .sequence()
            .http_status(status, body)
            .times(2)
            .output(|| {
                SimulatePrincipalPolicyOutput::builder()
                    .evaluation_results(result("iam:CreateRole", "allowed"))
                    .evaluation_results(result("iam:TagRole", "allowed"))
                    .evaluation_results(result("iam:PassRole", "allowed"))
                    .build()
            })
            .build();
        let attached = mock!(Client::list_attached_user_policies)
            .then_output(|| ListAttachedUserPoliciesOutput::builder().set_attached_policies(Some(vec![])).build());
        let (inline, groups) = empty_lists();
        let clients = retrying(&[&simulate, &attached, &inline, &groups]);
        let (checks, method) = check(&clients, &user(), &needed()).await;
        assert_eq!(simulate.num_calls(), 3, "two throttled attempts, then the answer");
        assert!(method.starts_with("simulated for"), "{method}");
        assert!(checks.iter().all(|c| c.verdict == Verdict::Allowed && c.source == "simulation"), "{checks:?}");
    }

    #[tokio::test]
    async fn throttling_that_outlasts_the_retries_leaves_everything_unverified_and_is_not_evaluated_locally() {
        let (status, body) = iam_error(400, "Throttling");
        let simulate = mock!(Client::simulate_principal_policy).sequence().http_status(status, body).times(3).build();
        // The caller's own policies would allow everything: they must not stand in for IAM's answer.
        let [attached, inline, groups, policy, version] = administrator_reads();
        let clients = retrying(&[&simulate, &attached, &inline, &groups, &policy, &version]);
        let (checks, method) = check(&clients, &user(), &needed()).await;
        assert_eq!(simulate.num_calls(), 3, "the SDK's attempts");
        assert!(
            method
                .contains("the simulation failed (iam:SimulatePrincipalPolicy answered Throttling (HTTP 400) 3 times)"),
            "{method}"
        );
        assert!(method.contains("not evaluated locally"), "{method}");
        assert!(checks.iter().all(|c| matches!(c.verdict, Verdict::Unverified { .. })), "{checks:?}");
        assert!(checks.iter().all(|c| c.source != "local evaluation"), "{checks:?}");
    }

    #[tokio::test]
    async fn a_server_error_after_the_retries_falls_back_to_local_evaluation_and_says_so() {
        let (_, body) = iam_error(500, "ServiceFailure");
        let simulate = mock!(Client::simulate_principal_policy).sequence().http_status(500, body).times(3).build();
        let [attached, inline, groups, policy, version] = administrator_reads();
        let clients = retrying(&[&simulate, &attached, &inline, &groups, &policy, &version]);
        let (checks, method) = check(&clients, &user(), &needed()).await;
        assert_eq!(simulate.num_calls(), 2, "an advisory call: retried once, not --retry-attempts times");
        let said = "simulation unavailable (iam:SimulatePrincipalPolicy answered ServiceFailure (HTTP 500) 2 times)";
        assert!(method.contains(said), "{method}");
        assert!(method.contains("evaluated 1 identity policy"), "{method}");
        assert!(checks.iter().all(|c| c.verdict == Verdict::Allowed && c.source == "local evaluation"), "{checks:?}");
    }
}
