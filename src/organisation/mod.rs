//! The organisation's word on the pre-flight: do the service control policies over the target account allow every
//! request the plan needs? IAM's policy simulator does not evaluate SCPs, so without this a pre-flight can pass and
//! the run still meet "explicit deny in a service control policy" half-way through.
//!
//! Read when readable ([`read`]), evaluated as AWS does (`policy_eval::scp`), and said in every case: allowed,
//! denied by a named policy at a named place, unverified (and why), or not visible from this account (the usual
//! case in a member account). Not evaluated: resource control policies, session policies, declarative policies,
//! and conditions on keys only AWS knows (docs/commands.md, "The organisation").

pub(crate) mod read;

use serde::Serialize;

use crate::policy_eval::conditions::Context;
use crate::policy_eval::scp::{self, ScpVerdict};
use crate::resources::access::Permission;

pub(crate) use read::Reader;

/// The organisation's reads, an optional statement of the operator policy: without them (or from a member account,
/// where Organizations refuses them whatever the policy) the pre-flight says "not visible" and goes on.
pub(crate) const READ_ACTIONS: &[&str] = &[
    "organizations:DescribeOrganization",
    "organizations:ListParents",
    "organizations:DescribeOrganizationalUnit",
    "organizations:ListPoliciesForTarget",
    "organizations:DescribePolicy",
];

/// The Sid of that statement: its name says it may be left out.
pub(crate) const READS_SID: &str = "OptionalReadTheOrganisationsServiceControlPolicies";

/// The organisation's verdict on the permissions one account's plan needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub(crate) enum Organisation {
    /// The SCPs at every level allow every needed request.
    Allowed {
        permissions: usize,
        /// Where SCPs were read: "the root", "OU /workloads/dev", "the account".
        levels: Vec<String>,
    },
    /// The target is the organisation's management account, which SCPs do not restrict.
    ManagementAccount,
    /// The account is in no organisation (Organizations answered AWSOrganizationsNotInUseException to its own
    /// credentials): no SCP applies to it.
    #[serde(rename = "no_organisation")]
    InNone,
    /// Requests an SCP denies: nothing may be written.
    Denied { denials: Vec<Denial> },
    /// Nothing denies for sure, but a condition the local evaluation cannot decide might, or the organisation
    /// could not be read (throttled, a server error).
    Unverified { reason: String },
    /// The organisation cannot be read with these credentials: a member account, an account in no organisation,
    /// or one outside the caller's.
    NotVisible { reason: String },
}

/// One request an SCP denies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Denial {
    pub(crate) action: String,
    pub(crate) resource: String,
    /// The denying policy's name and id; absent when the action is denied because no SCP at `attached_to`
    /// allows it (an allow list that leaves it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) policy_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) policy_id: Option<String>,
    /// "the root", "OU /workloads/dev" or "the account".
    pub(crate) attached_to: String,
}

/// The context keys whose absence from a request wfboot knows: those its write calls' own parameters decide
/// (the tags it sends, the boundary it sets, the policy it attaches, the service it names) and the region.
/// A key outside this list that a condition names (aws:PrincipalArn, aws:SourceIp, aws:PrincipalTag/...) is
/// known only to AWS: such a condition is unverified.
pub(crate) const DECIDED_BY_THE_REQUEST: &[&str] = &[
    "aws:RequestTag/",
    "aws:TagKeys",
    "aws:RequestedRegion",
    "iam:PermissionsBoundary",
    "iam:PolicyARN",
    "iam:PassedToService",
    "iam:AWSServiceName",
];

/// The SCPs' verdict on `needed` in `account`, read with `reader`. Never an error: what cannot be read is
/// "not visible" or "unverified", said.
pub(crate) async fn verdict(reader: &Reader, account: &str, needed: &[Permission]) -> Organisation {
    match reader.hierarchy(account).await {
        // "AWSOrganizationsNotInUseException: Your account is not a member of an organization" (Organizations API
        // reference, DescribeOrganization, Errors): an account in no organisation has no SCP over it.
        Err(f) if f.no_organisation && reader.own => Organisation::InNone,
        Err(f) if f.not_visible => Organisation::NotVisible { reason: f.code },
        Err(f) => Organisation::Unverified { reason: format!("the organisation could not be read: {}", f.code) },
        // "SCPs do not affect users or roles in the management account" ("SCP effects on permissions":
        // https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_scps.html#scp-effects-on-permissions).
        Ok(read::Found::ManagementAccount) => Organisation::ManagementAccount,
        Ok(read::Found::Levels(levels)) => evaluate(&levels, account, needed),
    }
}

/// Every needed request against the SCPs of `levels`. The requests are the caller's own (a service-linked role's
/// own actions are not restricted by SCPs, the caller's iam:CreateServiceLinkedRole is, and it is in `needed`).
fn evaluate(levels: &[scp::Level], account: &str, needed: &[Permission]) -> Organisation {
    let mut denials = Vec::new();
    let mut unverified: Vec<String> = Vec::new();
    for p in needed {
        let mut entries: Vec<(&str, Vec<String>, bool)> =
            p.context.iter().map(|e| (e.key.as_str(), e.values.clone(), e.list)).collect();
        entries.push(("aws:PrincipalAccount", vec![account.to_string()], false));
        let context = Context::new(&entries, DECIDED_BY_THE_REQUEST);
        match scp::evaluate(levels, &p.action, &p.resource, &context) {
            ScpVerdict::Allowed => {}
            ScpVerdict::Denied { policy, at } => denials.push(Denial {
                action: p.action.clone(),
                resource: p.resource.clone(),
                policy_name: policy.as_ref().map(|(name, _)| name.clone()),
                policy_id: policy.map(|(_, id)| id),
                attached_to: at,
            }),
            ScpVerdict::Unverified { reason } => {
                let line = format!("{}: {reason}", p.action);
                if !unverified.contains(&line) {
                    unverified.push(line);
                }
            }
        }
    }
    if !denials.is_empty() {
        Organisation::Denied { denials }
    } else if !unverified.is_empty() {
        Organisation::Unverified { reason: format!("a condition only AWS can decide: {}", unverified.join("; ")) }
    } else {
        Organisation::Allowed { permissions: needed.len(), levels: levels.iter().map(|l| l.target.clone()).collect() }
    }
}

/// How the organisation row reads in `check` and the pre-flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    Ok,
    Failed,
    Unverified,
}

/// What the organisation row says of an account in no organisation.
pub(crate) const NONE: &str = "none: the account is in no organisation";

/// The help line of a pre-flight the SCPs refused.
pub(crate) const HELP: &str = "service control policies are set by the organisation's administrators: ask them to \
     exempt these requests (or give them the tags the policy requires, with --tag KEY=VALUE), then run again";

impl Organisation {
    pub(crate) fn denied(&self) -> bool {
        matches!(self, Organisation::Denied { .. })
    }

    /// The row: what was checked, its standing, and what to do (or why).
    pub(crate) fn row(&self) -> (String, Standing, String) {
        let check = "service control policies".to_string();
        match self {
            Organisation::Allowed { permissions: 0, levels } => (
                check,
                Standing::Ok,
                format!("nothing to evaluate: bootstrap has nothing to do (read at {})", levels.join(", ")),
            ),
            Organisation::Allowed { permissions, levels } => (
                check,
                Standing::Ok,
                format!("allowed: {permissions} permission{} at {}", plural(*permissions), levels.join(", ")),
            ),
            Organisation::ManagementAccount => {
                (check, Standing::Ok, "the management account, which SCPs do not restrict".into())
            }
            Organisation::InNone => (check, Standing::Ok, NONE.into()),
            Organisation::Denied { denials } => (check, Standing::Failed, denials_text(denials)),
            Organisation::Unverified { reason } => (check, Standing::Unverified, reason.clone()),
            Organisation::NotVisible { reason } => (
                check,
                Standing::Unverified,
                format!(
                    "not visible from this account ({reason}): SCPs can be read from the organisation's management \
                     account or a delegated administrator (`--accounts` from there reads them)"
                ),
            ),
        }
    }

    /// A line for the pre-flight's report when the run goes on without the SCPs known.
    pub(crate) fn notice(&self) -> Option<String> {
        match self {
            Organisation::NotVisible { .. } => {
                Some("Service control policies: not visible from this account; not checked".into())
            }
            Organisation::Unverified { reason } => Some(format!("Service control policies: unverified ({reason})")),
            Organisation::InNone => Some(format!("Service control policies: {NONE}")),
            _ => None,
        }
    }
}

/// "iam:CreateRole on role/wf-batch denied by SCP RequireTeamTag (p-1234) attached to OU /workloads/dev", one per
/// request, those denied alike grouped.
fn denials_text(denials: &[Denial]) -> String {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for d in denials {
        let by = match (&d.policy_name, &d.policy_id) {
            (Some(name), Some(id)) => format!("denied by SCP {name} ({id}) attached to {}", d.attached_to),
            _ => format!("allowed by no SCP attached to {}", d.attached_to),
        };
        let key = format!("{} {by}", d.action);
        // The ARN's resource part ("role/wf-batch"), as the other pre-flight rows show it.
        let resource = d.resource.splitn(6, ':').nth(5).unwrap_or(&d.resource).to_string();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, resources)) => resources.push(resource),
            None => groups.push((key, vec![resource])),
        }
    }
    groups
        .iter()
        .map(|(key, resources)| {
            let (action, by) = key.split_once(' ').unwrap_or((key.as_str(), ""));
            match resources.len() {
                1 => format!("{action} on {} {by}", resources[0]),
                n => format!("{action} on {n} resources {by}"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
