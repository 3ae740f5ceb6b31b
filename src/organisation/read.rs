//! The organisation's reads: who the management account is, the account's place in the hierarchy, and the service
//! control policies attached at each level. Read-only, bounded by the clients' `--max-concurrency` limiter, and
//! cached for the run: in a fleet, an OU, the root and a policy shared by many accounts are read once.
//!
//! Calls (AWS Organizations API reference): DescribeOrganization (the management account), ListParents (one level
//! up; an account or OU has exactly one parent), DescribeOrganizationalUnit (an OU's name, for its path),
//! ListPoliciesForTarget with Filter SERVICE_CONTROL_POLICY (at the account, each OU and the root), DescribePolicy
//! (a policy's document). Only the management account and a delegated administrator may call the last four
//! ("Delegated administrator for AWS Organizations":
//! https://docs.aws.amazon.com/organizations/latest/userguide/orgs_delegate_policies.html); anywhere else they are
//! refused, which is "not visible from this account".

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_sdk_organizations::types::{ParentType, PolicyType};
use tokio::sync::OnceCell;

use crate::aws::{all_pages, errors, Clients};
use crate::policy_eval::scp::{Level, Scp};
use crate::resources::advisory;

/// The deepest hierarchy Organizations allows: five levels of OUs under the root ("Quotas for AWS Organizations":
/// https://docs.aws.amazon.com/organizations/latest/userguide/orgs_reference_limits.html). A longer walk means a
/// malformed answer.
const MAX_DEPTH: usize = 6;

/// Why the organisation could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The AWS error code, or what went wrong without one.
    pub(crate) code: String,
    /// Refused or absent, as in a member account, a standalone account, or an account outside the caller's
    /// organisation: nothing more can be known from here. Otherwise (throttled, 5xx, a malformed answer) it is an
    /// unverified read.
    pub(crate) not_visible: bool,
    /// The caller's account is in no organisation (AWSOrganizationsNotInUseException).
    pub(crate) no_organisation: bool,
}

impl Failure {
    fn of<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
        err: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Failure {
        // AWSOrganizationsNotInUseException: the account is in no organisation. AccessDeniedException: a member
        // account (or a caller without organizations:* reads). AccountNotFoundException: the target is not in the
        // caller's organisation (Organizations API reference, Common errors and each operation's Errors).
        let code = errors::code(err);
        let no_organisation = code == Some("AWSOrganizationsNotInUseException");
        let not_visible = errors::is_access_denied(err) || no_organisation || code == Some("AccountNotFoundException");
        Failure { code: code.map_or_else(|| errors::short(err), str::to_string), not_visible, no_organisation }
    }

    /// [`Failure::of`] the last attempt of an advisory read ([`advisory::send`]), saying how it was answered.
    fn after<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
        (err, attempts): (
            aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
            u32,
        ),
    ) -> Failure {
        let mut f = Failure::of(&err);
        if !f.not_visible {
            // "Organizations answered ServiceException (HTTP 500) 2 times": an unverified row says what was met.
            f.code = format!("Organizations {}", advisory::answered(&err));
            if attempts > 1 {
                f.code += &format!(" {attempts} times");
            }
        }
        f
    }

    fn malformed(what: &str) -> Failure {
        Failure { code: format!("the answer has no {what}"), not_visible: false, no_organisation: false }
    }
}

/// Where an account sits, as read: the management account, or the levels from the root down to the account.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found {
    ManagementAccount,
    Levels(Vec<Level>),
}

type Cell<T> = Arc<OnceCell<Result<T, Failure>>>;
type Cells<T> = Mutex<HashMap<String, Cell<T>>>;

/// What a run has read of the organisation, each item once.
#[derive(Default)]
struct Cache {
    management: OnceCell<Result<String, Failure>>,
    /// Child id -> (parent id, whether the parent is the root).
    parents: Cells<(String, bool)>,
    ou_names: Cells<String>,
    /// Target id -> the ids of the SCPs attached to it.
    attached: Cells<Vec<String>>,
    policies: Cells<Scp>,
}

/// The organisation as the clients given see it: the session's own for a single account, the fleet caller's (the
/// management account, or a delegated administrator) for `--accounts`, shared by every account of the run.
#[derive(Clone)]
pub(crate) struct Reader {
    clients: Clients,
    /// Organizations without the SDK's retries: every read here is advisory (`resources::advisory`), and the first
    /// that still fails after its retry ends the walk (each level waits for the one above it, so nothing else of
    /// it is sent).
    once: aws_sdk_organizations::Client,
    breaker: Arc<advisory::Breaker>,
    cache: Arc<Cache>,
    /// The clients are the target account's own: an organisation that is not in use is the target's (which is then
    /// in none), not only the caller's.
    pub(crate) own: bool,
}

impl Reader {
    /// The organisation as the target account itself sees it (a single-account run).
    pub(crate) fn new(clients: Clients) -> Reader {
        let once = advisory::organizations_once(&clients);
        Reader { clients, once, breaker: Arc::default(), cache: Arc::default(), own: true }
    }

    /// The organisation as another account's caller sees it (a fleet's or an OU run's caller): that the caller's
    /// account is in no organisation says nothing of the targets'.
    pub(crate) fn of_caller(clients: Clients) -> Reader {
        let once = advisory::organizations_once(&clients);
        Reader { clients, once, breaker: Arc::default(), cache: Arc::default(), own: false }
    }

    /// Where `account` sits in the organisation, with the SCPs at each level.
    pub(crate) async fn hierarchy(&self, account: &str) -> Result<Found, Failure> {
        let management = self.management().await?;
        if management == account {
            return Ok(Found::ManagementAccount);
        }
        // The account's own policies are read while the walk up goes on.
        let (chain, own) = tokio::join!(self.chain(account), self.attached(account));
        let chain = chain?;
        let own = own?;
        // Root first, then each OU down to the account.
        let mut levels: Vec<(String, String)> = Vec::new();
        let ou_ids: Vec<&String> = chain.iter().rev().skip(1).collect();
        let names = futures::future::join_all(ou_ids.iter().map(|id| self.ou_name(id))).await;
        let mut path = String::new();
        if let Some(root) = chain.last() {
            levels.push((root.clone(), "the root".into()));
        }
        for (id, name) in ou_ids.iter().zip(names) {
            path.push('/');
            path.push_str(&name?);
            levels.push(((*id).clone(), format!("OU {path}")));
        }
        let attached = futures::future::join_all(levels.iter().map(|(id, _)| self.attached(id))).await;
        let mut out = Vec::new();
        for ((_, target), ids) in levels.into_iter().zip(attached) {
            out.push((target, ids?));
        }
        out.push(("the account".into(), own));
        let mut ids: Vec<&String> = out.iter().flat_map(|(_, ids)| ids).collect();
        ids.sort();
        ids.dedup();
        let policies = futures::future::join_all(ids.iter().map(|id| self.policy(id))).await;
        let mut known: HashMap<String, Scp> = HashMap::new();
        for p in policies {
            let p = p?;
            known.insert(p.id.clone(), p);
        }
        Ok(Found::Levels(
            out.into_iter()
                .map(|(target, ids)| Level {
                    target,
                    policies: ids.iter().filter_map(|id| known.get(id).cloned()).collect(),
                })
                .collect(),
        ))
    }

    /// Start reading the management account's id (DescribeOrganization) now, in the background, for a run that
    /// may need the organisation's verdict: it needs nothing of the account, so it goes out with the run's first
    /// reads, and the pre-flight's walk starts one round trip further on.
    pub(crate) fn prefetch(&self) {
        let reader = self.clone();
        tokio::spawn(async move {
            let _ = reader.management().await;
        });
    }

    /// The management account's id (DescribeOrganization), once per run.
    async fn management(&self) -> Result<String, Failure> {
        let (c, o, b) = (&self.clients, &self.once, &*self.breaker);
        self.cache
            .management
            .get_or_init(|| async {
                let out = advisory::send(c, b, || o.describe_organization().send()).await.map_err(Failure::after)?;
                // MasterAccountId is the management account's id (the API keeps its old name).
                out.organization()
                    .and_then(|o| o.master_account_id())
                    .map(str::to_string)
                    .ok_or_else(|| Failure::malformed("management account id"))
            })
            .await
            .clone()
    }

    /// The ids from `account` up: its OUs, nearest first, then the root.
    async fn chain(&self, account: &str) -> Result<Vec<String>, Failure> {
        let mut out = Vec::new();
        let mut child = account.to_string();
        for _ in 0..MAX_DEPTH {
            let (parent, root) = self.parent(&child).await?;
            out.push(parent.clone());
            if root {
                return Ok(out);
            }
            child = parent;
        }
        Err(Failure::malformed(&format!("root within {MAX_DEPTH} levels above {account}")))
    }

    async fn parent(&self, child: &str) -> Result<(String, bool), Failure> {
        let (c, o, b) = (&self.clients, &self.once, &*self.breaker);
        cached(&self.cache.parents, child, async {
            // Every page (the SDK generates no item paginator for these two calls).
            let pages = advisory::send(c, b, || all_pages(o.list_parents().child_id(child).into_paginator().send()))
                .await
                .map_err(Failure::after)?;
            let p = pages
                .iter()
                .flat_map(|page| page.parents())
                .next()
                .ok_or_else(|| Failure::malformed(&format!("parent of {child}")))?;
            let id = p.id().ok_or_else(|| Failure::malformed("parent id"))?;
            Ok((id.to_string(), p.r#type() == Some(&ParentType::Root)))
        })
        .await
    }

    async fn ou_name(&self, id: &str) -> Result<String, Failure> {
        let (c, o, b) = (&self.clients, &self.once, &*self.breaker);
        cached(&self.cache.ou_names, id, async {
            let out = advisory::send(c, b, || o.describe_organizational_unit().organizational_unit_id(id).send())
                .await
                .map_err(Failure::after)?;
            out.organizational_unit()
                .and_then(|o| o.name())
                .map(str::to_string)
                .ok_or_else(|| Failure::malformed(&format!("name for {id}")))
        })
        .await
    }

    async fn attached(&self, target: &str) -> Result<Vec<String>, Failure> {
        let (c, o, b) = (&self.clients, &self.once, &*self.breaker);
        cached(&self.cache.attached, target, async {
            let request = o
                .list_policies_for_target()
                .target_id(target)
                .filter(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy);
            let pages = advisory::send(c, b, || all_pages(request.clone().into_paginator().send()))
                .await
                .map_err(Failure::after)?;
            pages
                .iter()
                .flat_map(|page| page.policies())
                .map(|s| s.id().map(str::to_string).ok_or_else(|| Failure::malformed("policy id")))
                .collect()
        })
        .await
    }

    async fn policy(&self, id: &str) -> Result<Scp, Failure> {
        let (c, o, b) = (&self.clients, &self.once, &*self.breaker);
        cached(&self.cache.policies, id, async {
            let out =
                advisory::send(c, b, || o.describe_policy().policy_id(id).send()).await.map_err(Failure::after)?;
            let policy = out.policy().ok_or_else(|| Failure::malformed("policy"))?;
            let summary = policy.policy_summary();
            if summary.and_then(|s| s.r#type()).is_some_and(|t| *t != PolicyType::ServiceControlPolicy) {
                return Err(Failure::malformed(&format!("service control policy {id}")));
            }
            let content = policy.content().ok_or_else(|| Failure::malformed("policy content"))?;
            let document = serde_json::from_str(content).map_err(|e| Failure {
                code: format!("policy {id} is not JSON: {e}"),
                not_visible: false,
                no_organisation: false,
            })?;
            Ok(Scp { id: id.to_string(), name: summary.and_then(|s| s.name()).unwrap_or(id).to_string(), document })
        })
        .await
    }
}

/// `read`'s result for `key`, read once per run whoever asks first; the others wait for it.
async fn cached<T: Clone>(
    cells: &Cells<T>,
    key: &str,
    read: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let cell = match cells.lock() {
        Ok(mut map) => map.entry(key.to_string()).or_default().clone(),
        Err(_) => Arc::default(),
    };
    cell.get_or_init(|| read).await.clone()
}
