//! The kinds of IAM resource a stack ensures, and their registry. Each kind's module holds its whole lifecycle:
//! observe (read-only calls only), diff against the desired state and destroy-diff (pure, giving plan values),
//! and its write calls ([`write::Write`]: wording, permissions, dependency keys, execution with its retry
//! rules). This module is the one place that lists the kinds: the engine reaches them only through it.

pub(crate) mod access;
pub(crate) mod caller;
pub(crate) mod consumers;
#[cfg(feature = "ec2")]
pub(crate) mod instance;
pub(crate) mod instance_profile;
pub(crate) mod managed_policy;
pub(crate) mod permissions;
pub(crate) mod plan;
pub(crate) mod policy;
pub(crate) mod role;
pub(crate) mod service_linked_role;
pub(crate) mod services;
pub(crate) mod tags;
pub(crate) mod user;
pub(crate) mod vocab;
pub(crate) mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use access::{Permission, Scope};
use plan::{Action, Key};
use write::{Ctx, Outcome, Write};

pub(crate) use vocab::{owned, Ownership, OWNER_TAG};

use crate::aws::Clients;
use crate::error::{Error, Result};
use crate::stack::{Desired, Stack};
use plan::Plan;

/// What observing the account needs (plan and every bootstrap), on any resource.
pub(crate) const READ_ACTIONS: &[&str] = &[
    "iam:GetRole",
    "iam:ListAttachedRolePolicies",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:ListPolicyVersions",
    "iam:GetInstanceProfile",
    "iam:ListRoles",
    "iam:ListAttachedUserPolicies",
    "iam:ListGroupsForUser",
    "iam:ListAttachedGroupPolicies",
    "iam:GetUser",
];

/// The kinds of resource, as plans name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    UserPolicies,
    Policy,
    Role,
    InstanceProfile,
    ServiceLinkedRole,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::UserPolicies => "user",
            Kind::Policy => "policy",
            Kind::Role => "role",
            Kind::InstanceProfile => "instance profile",
            Kind::ServiceLinkedRole => "service-linked role",
        })
    }
}

impl Kind {
    /// Its resources are read by name alone, before the account id is known ([`Names`]).
    pub(crate) fn found_by_name(self) -> bool {
        match self {
            Kind::Role | Kind::InstanceProfile | Kind::ServiceLinkedRole => true,
            Kind::Policy | Kind::UserPolicies => false,
        }
    }
}

/// One write call, of any kind: the kinds' own changes, each serialised as that kind's (`{"call": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Change {
    Policy(policy::Change),
    Role(role::Change),
    InstanceProfile(instance_profile::Change),
    ServiceLinkedRole(service_linked_role::Change),
    User(user::Change),
}

/// `$body` with `$c` bound to the kind's own change, whichever kind `$change` is.
macro_rules! each_kind {
    ($change:expr, $c:ident => $body:expr) => {
        match $change {
            Change::Policy($c) => $body,
            Change::Role($c) => $body,
            Change::InstanceProfile($c) => $body,
            Change::ServiceLinkedRole($c) => $body,
            Change::User($c) => $body,
        }
    };
}

macro_rules! from_kind {
    ($($variant:ident($kind:ty)),*) => {
        $(impl From<$kind> for Change {
            fn from(c: $kind) -> Change {
                Change::$variant(c)
            }
        })*
    };
}

from_kind!(
    Policy(policy::Change),
    Role(role::Change),
    InstanceProfile(instance_profile::Change),
    ServiceLinkedRole(service_linked_role::Change),
    User(user::Change)
);

impl Change {
    pub(crate) fn operation(&self) -> &'static str {
        each_kind!(self, c => c.operation())
    }

    pub(crate) fn needs(&self) -> Vec<Key> {
        each_kind!(self, c => c.needs())
    }

    pub(crate) fn provides(&self) -> Vec<Key> {
        each_kind!(self, c => c.provides())
    }

    pub(crate) fn permissions(&self, scope: &Scope<'_>) -> Vec<Permission> {
        each_kind!(self, c => c.permissions(scope))
    }

    /// The two make the same write (see each kind's [`Write::same_write`]).
    pub(crate) fn same_write(&self, other: &Change) -> bool {
        match (self, other) {
            (Change::Policy(a), Change::Policy(b)) => a.same_write(b),
            (Change::Role(a), Change::Role(b)) => a.same_write(b),
            (Change::InstanceProfile(a), Change::InstanceProfile(b)) => a.same_write(b),
            (Change::ServiceLinkedRole(a), Change::ServiceLinkedRole(b)) => a.same_write(b),
            (Change::User(a), Change::User(b)) => a.same_write(b),
            _ => false,
        }
    }

    /// Send the call ([`Write::execute`]).
    pub(crate) async fn execute(&self, ctx: &mut Ctx<'_>, after_dependency: bool) -> Result<(Outcome, bool)> {
        each_kind!(self, c => c.execute(ctx, after_dependency).await)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        each_kind!(self, c => c.fmt(f))
    }
}

/// Everything observed about the desired resources. `None` means "does not exist".
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub(crate) user: Option<user::ObservedUser>,
    pub(crate) policies: Vec<Option<policy::ObservedPolicy>>,
    pub(crate) roles: Vec<Option<role::ObservedRole>>,
    pub(crate) instance_profiles: Vec<Option<instance_profile::ObservedInstanceProfile>>,
    pub(crate) service_linked_roles: Vec<Option<String>>,
}

/// The names of the stack's roles, instance profiles and service-linked roles' services, in the stack's order.
/// Reading these needs no account id, so it can start before sts:GetCallerIdentity has answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    pub(crate) roles: Vec<String>,
    pub(crate) instance_profiles: Vec<String>,
    pub(crate) service_linked_roles: Vec<String>,
}

impl Names {
    pub(crate) fn of_stack(stack: &Stack) -> Names {
        Names {
            roles: stack.roles.iter().map(|r| r.name.clone()).collect(),
            instance_profiles: stack.instance_profiles.iter().map(|p| p.name.clone()).collect(),
            service_linked_roles: stack.service_linked_roles.clone(),
        }
    }

    pub(crate) fn of_desired(desired: &Desired) -> Names {
        Names {
            roles: desired.roles.iter().map(|r| r.name.clone()).collect(),
            instance_profiles: desired.instance_profiles.iter().map(|p| p.name.clone()).collect(),
            service_linked_roles: desired.service_linked_roles.clone(),
        }
    }
}

/// What [`observe_named`] read: the part of [`Observed`] that is found by name alone.
#[derive(Debug, Clone, Default)]
pub(crate) struct NamedObservation {
    names: Option<Names>,
    roles: Vec<Option<role::ObservedRole>>,
    instance_profiles: Vec<Option<instance_profile::ObservedInstanceProfile>>,
    service_linked_roles: Vec<Option<String>>,
}

/// Read the stack's roles, instance profiles and service-linked roles by name. Only Get/List calls.
pub(crate) async fn observe_named(clients: &Clients, names: &Names, verifying: bool) -> Result<NamedObservation> {
    let roles = futures::future::try_join_all(names.roles.iter().map(|r| role::observe(clients, r, verifying)));
    let profiles =
        futures::future::try_join_all(names.instance_profiles.iter().map(|p| instance_profile::observe(clients, p)));
    let slrs = service_linked_role::observe_all(clients, &names.service_linked_roles);
    let (roles, instance_profiles, service_linked_roles) = tokio::try_join!(roles, profiles, slrs)?;
    Ok(NamedObservation { names: Some(names.clone()), roles, instance_profiles, service_linked_roles })
}

impl Observed {
    /// The observation of `desired` from its two parts, read for the same stack.
    pub(crate) fn assemble(desired: &Desired, named: NamedObservation, account: AccountPart) -> Result<Observed> {
        if named.names.as_ref() != Some(&Names::of_desired(desired)) {
            return Err(Error::aws("internal error: the observation was made for other resource names"));
        }
        let (user, policies) = account;
        Ok(named.complete(user, policies))
    }
}

/// Read the account for `desired`. Makes only Get/List calls, all independent ones concurrently.
///
/// `verifying`: reading back what was just applied, so the roles exist and their policies are read in the
/// same round trip as the role itself, and a policy's first version is read alongside the policy.
pub(crate) async fn observe(
    clients: &Clients,
    desired: &Desired,
    user_name: Option<&str>,
    verifying: bool,
) -> Result<Observed> {
    let names = Names::of_desired(desired);
    let (named, (user, policies)) = tokio::try_join!(
        observe_named(clients, &names, verifying),
        observe_account_part(clients, desired, user_name, verifying)
    )?;
    Ok(named.complete(user, policies))
}

pub(crate) type AccountPart = (Option<user::ObservedUser>, Vec<Option<policy::ObservedPolicy>>);

/// The part of the observation that needs the account: the stack's own policies (their ARNs hold the
/// account id) and the operator user's attachments.
pub(crate) async fn observe_account_part(
    clients: &Clients,
    desired: &Desired,
    user_name: Option<&str>,
    verifying: bool,
) -> Result<AccountPart> {
    let user = async {
        match user_name {
            Some(u) => user::observe(clients, u, &desired.user_policies).await.map(Some),
            None => Ok(None),
        }
    };
    let policies =
        futures::future::try_join_all(desired.policies.iter().map(|p| policy::observe(clients, p, verifying)));
    tokio::try_join!(user, policies)
}

impl NamedObservation {
    fn complete(self, user: Option<user::ObservedUser>, policies: Vec<Option<policy::ObservedPolicy>>) -> Observed {
        Observed {
            user,
            policies,
            roles: self.roles,
            instance_profiles: self.instance_profiles,
            service_linked_roles: self.service_linked_roles,
        }
    }
}

impl NamedObservation {
    /// The observation as far as names alone tell: the stack's policies taken as absent and the operator user
    /// (when there is one) as having none of the stack's policies. A plan made from it holds every change of
    /// the real plan except, for a policy that exists with another document, its new version.
    pub(crate) fn provisional(&self, desired: &Desired, user_name: Option<&str>) -> Observed {
        Observed {
            user: user_name.map(|_| user::ObservedUser::default()),
            policies: vec![None; desired.policies.len()],
            roles: self.roles.clone(),
            instance_profiles: self.instance_profiles.clone(),
            service_linked_roles: self.service_linked_roles.clone(),
        }
    }

    /// The AWS-managed policies attached to the observed roles (known to exist).
    pub(crate) fn attached(&self) -> BTreeSet<String> {
        self.roles.iter().flatten().flat_map(|r| r.attached.iter().cloned()).collect()
    }
}

/// The plan for `desired` given what was observed. Pure: no AWS access.
pub(crate) fn diff(desired: &Desired, observed: &Observed, user_name: Option<&str>) -> Plan {
    let stack = desired.stack.as_str();
    let mut resources = Vec::new();
    if let (Some(u), Some(obs)) = (user_name, &observed.user) {
        resources.push(user::diff(u, &desired.user_policies, obs));
    }
    for (d, o) in desired.policies.iter().zip(&observed.policies) {
        resources.push(policy::diff(stack, d, o.as_ref()));
    }
    for (d, o) in desired.roles.iter().zip(&observed.roles) {
        resources.push(role::diff(stack, d, o.as_ref()));
    }
    for (d, o) in desired.instance_profiles.iter().zip(&observed.instance_profiles) {
        resources.push(instance_profile::diff(stack, d, o.as_ref()));
    }
    for (s, o) in desired.service_linked_roles.iter().zip(&observed.service_linked_roles) {
        resources.push(service_linked_role::diff(s, o.as_deref()));
    }
    Plan::new(stack, &desired.target, user_name.map(str::to_string), resources)
}

/// The part of `desired` that `plan` wants to change, for re-observing after apply.
pub(crate) fn changed_part(desired: &Desired, plan: &Plan) -> Desired {
    let changed = |kind: Kind, name: &str| {
        plan.resources.iter().any(|r| r.kind == kind && r.name == name && !r.changes.is_empty())
    };
    Desired {
        stack: desired.stack.clone(),
        target: desired.target.clone(),
        user_policies: if plan.resources.iter().any(|r| r.kind == Kind::UserPolicies && !r.changes.is_empty()) {
            desired.user_policies.clone()
        } else {
            Vec::new()
        },
        policies: desired.policies.iter().filter(|p| changed(Kind::Policy, &p.name)).cloned().collect(),
        roles: desired.roles.iter().filter(|r| changed(Kind::Role, &r.name)).cloned().collect(),
        instance_profiles: desired
            .instance_profiles
            .iter()
            .filter(|p| changed(Kind::InstanceProfile, &p.name))
            .cloned()
            .collect(),
        service_linked_roles: desired
            .service_linked_roles
            .iter()
            .filter(|s| changed(Kind::ServiceLinkedRole, s))
            .cloned()
            .collect(),
    }
}

/// What `destroy` reads: the usual observation, and the links of each resource this stack owns.
#[derive(Debug, Clone)]
pub(crate) struct DestroyObserved {
    pub(crate) observed: Observed,
    /// Per desired role: what holds it, read only when the role is this stack's.
    pub(crate) roles: Vec<Option<role::RoleLinks>>,
    /// Per desired policy: its other versions and attachments, read only when the policy is this stack's.
    pub(crate) policies: Vec<Option<policy::PolicyLinks>>,
    /// Who uses the roles and instance profiles of the region ([`consumers`]); read only when a role or profile of
    /// this stack's is there to delete.
    pub(crate) consumers: Option<consumers::Consumers>,
}

/// Read the account for destroying `desired`. Get/List calls only; the operator user is not read.
/// `observed`: the stack as already read (by `Session::open_observing`), or `None` to read it here.
pub(crate) async fn observe_for_destroy(
    clients: &Clients,
    desired: &Desired,
    observed: Option<Observed>,
) -> Result<DestroyObserved> {
    let observed = match observed {
        Some(o) => o,
        None => observe(clients, desired, None, false).await?,
    };
    let stack = desired.stack.as_str();
    let roles = futures::future::try_join_all(desired.roles.iter().zip(&observed.roles).map(|(d, o)| async move {
        match o {
            Some(o) if owned(stack, &o.tags) => role::observe_links(clients, &d.name).await.map(Some),
            _ => Ok(None),
        }
    }));
    let policies =
        futures::future::try_join_all(desired.policies.iter().zip(&observed.policies).map(|(d, o)| async move {
            match o {
                Some(o) if owned(stack, &o.tags) => policy::observe_links(clients, d).await.map(Some),
                _ => Ok(None),
            }
        }));
    // In the same round trip as the links: only when a role or profile of the stack's is there to delete.
    let deletes_one = observed.roles.iter().flatten().any(|r| owned(stack, &r.tags))
        || observed.instance_profiles.iter().flatten().any(|p| owned(stack, &p.tags));
    // A role IAM last saw used in another region (GetRole's RoleLastUsed.Region, IAM API reference:
    // https://docs.aws.amazon.com/IAM/latest/APIReference/API_RoleLastUsed.html) may have consumers there too: the
    // same lookup runs in each such region, in the same round trip.
    let elsewhere: BTreeSet<String> = desired
        .roles
        .iter()
        .zip(&observed.roles)
        .filter_map(|(_, o)| o.as_ref().filter(|o| owned(stack, &o.tags)))
        .filter_map(|o| o.last_used.as_ref()?.region.clone())
        .filter(|r| *r != clients.region)
        .collect();
    let account = desired.target.account_id.as_str();
    let consumers = async {
        if !deletes_one {
            return None;
        }
        let here = consumers::observe(clients, account);
        let there = futures::future::join_all(elsewhere.iter().map(|region| async move {
            match clients.in_region(region) {
                Ok(regional) => (region, consumers::observe(&regional, account).await),
                Err(e) => (region, consumers::Consumers::unreachable(region, e.message)),
            }
        }));
        let (mut found, there) = tokio::join!(here, there);
        for (region, other) in there {
            found.merge_region(other, region);
        }
        Some(found)
    };
    let (roles, policies, consumers) = tokio::join!(roles, policies, consumers);
    Ok(DestroyObserved { observed, roles: roles?, policies: policies?, consumers })
}

/// What destroy keeps because something uses it: by name, why, and the consumers.
#[derive(Default)]
struct Held {
    roles: BTreeMap<String, (String, Vec<consumers::Consumer>)>,
    instance_profiles: BTreeMap<String, (String, Vec<consumers::Consumer>)>,
}

const REMOVE_FIRST: &str = "in use: delete or change what uses it first, then run destroy again (or --force)";

impl Held {
    /// The stack's roles and instance profiles to hold back: those with a consumer (a failed lookup counts), a role
    /// in a profile that has one, and, since neither can be deleted without changing the other, a held role's
    /// profiles and a held profile's roles.
    fn of(desired: &Desired, obs: &DestroyObserved, force: bool) -> Held {
        let mut held = Held::default();
        let Some(found) = obs.consumers.as_ref().filter(|_| !force) else { return held };
        let stack = desired.stack.as_str();
        let o = &obs.observed;
        for (d, links) in desired.roles.iter().zip(&obs.roles) {
            let Some(links) = links else { continue };
            let used = found.of_role(&d.name);
            if !used.is_empty() {
                held.roles.insert(d.name.clone(), (reason(&used), used));
                continue;
            }
            // A profile outside the stack keeps the role it holds while an instance or environment uses it.
            for p in &links.instance_profiles {
                let used = found.of_instance_profile(p);
                if !used.is_empty() {
                    let why = format!("in instance profile {p}, which is in use (or could not be checked)");
                    held.roles.insert(d.name.clone(), (why, used));
                    break;
                }
            }
        }
        let owned_profiles: Vec<(&str, &[String])> = desired
            .instance_profiles
            .iter()
            .zip(&o.instance_profiles)
            .filter_map(|(d, p)| p.as_ref().filter(|p| owned(stack, &p.tags)).map(|p| (d.name.as_str(), &p.roles[..])))
            .collect();
        for (name, _) in &owned_profiles {
            let used = found.of_instance_profile(name);
            if !used.is_empty() {
                held.instance_profiles.insert(name.to_string(), (reason(&used), used));
            }
        }
        loop {
            let mut more = false;
            for (name, roles) in &owned_profiles {
                for role in roles.iter() {
                    let owned_role = obs.roles.iter().zip(&desired.roles).any(|(l, d)| l.is_some() && d.name == *role);
                    if held.instance_profiles.contains_key(*name) && owned_role && !held.roles.contains_key(role) {
                        let why = format!("in instance profile {name}, which is held back");
                        held.roles.insert(role.clone(), (why, Vec::new()));
                        more = true;
                    }
                    if held.roles.contains_key(role) && !held.instance_profiles.contains_key(*name) {
                        let why = format!("holds role {role}, which is held back");
                        held.instance_profiles.insert(name.to_string(), (why, Vec::new()));
                        more = true;
                    }
                }
            }
            if !more {
                return held;
            }
        }
    }
}

fn reason(used: &[consumers::Consumer]) -> String {
    if used.iter().all(|c| c.kind == consumers::ConsumerKind::NotChecked) {
        "could not check who uses it: held back, not deleted unchecked (or --force)".into()
    } else {
        REMOVE_FIRST.into()
    }
}

/// The destroy plan for `desired` given what was observed, each kind planning its own. Pure: no AWS access.
///
/// `include_service_linked_roles`: delete the stack's service-linked roles too (they are left alone by
/// default: shared by the whole account, and nothing marks one as wfboot's).
pub(crate) fn destroy_diff(
    desired: &Desired,
    obs: &DestroyObserved,
    include_service_linked_roles: bool,
    force: bool,
) -> plan::DestroyPlan {
    let stack = desired.stack.as_str();
    let o = &obs.observed;
    let held = Held::of(desired, obs, force);
    let found = obs.consumers.clone().unwrap_or_default();
    let deleted_roles: BTreeSet<&str> = desired
        .roles
        .iter()
        .zip(&obs.roles)
        .filter(|(d, l)| l.is_some() && !held.roles.contains_key(&d.name))
        .map(|(d, _)| d.name.as_str())
        .collect();
    let deleted_profiles: BTreeSet<&str> = desired
        .instance_profiles
        .iter()
        .zip(&o.instance_profiles)
        .filter(|(d, p)| {
            p.as_ref().is_some_and(|p| owned(stack, &p.tags)) && !held.instance_profiles.contains_key(&d.name)
        })
        .map(|(d, _)| d.name.as_str())
        .collect();
    let mut resources: Vec<plan::DestroyResource> = user::destroy_diff(desired).into_iter().collect();
    for ((d, p), links) in desired.policies.iter().zip(&o.policies).zip(&obs.policies) {
        resources.push(policy_destroy_diff(desired, d, p.as_ref(), links.as_ref(), &deleted_roles, &held, force));
    }
    for ((d, r), links) in desired.roles.iter().zip(&o.roles).zip(&obs.roles) {
        let mut item = match held.roles.get(&d.name) {
            Some((why, used)) => plan::DestroyResource::held_back(Kind::Role, &d.name, why.clone(), used.clone()),
            None => role::destroy_diff(stack, d, r.as_ref(), links.as_ref(), &deleted_profiles),
        };
        if let Some(used) = r.as_ref().and_then(|r| r.last_used.clone()) {
            if used.region.as_deref().is_some_and(|region| region != desired.target.region) {
                item.notes.push(format!(
                    "last used in {}: what uses it there is not looked up by this run, which reads {}",
                    used.region.as_deref().unwrap_or_default(),
                    desired.target.region
                ));
            }
            item.last_used = Some(used);
        }
        if force && item.verdict == Action::Delete {
            forced(&mut item, found.of_role(&d.name));
        }
        resources.push(item);
    }
    for (d, p) in desired.instance_profiles.iter().zip(&o.instance_profiles) {
        let mut item = match held.instance_profiles.get(&d.name) {
            Some((why, used)) => {
                plan::DestroyResource::held_back(Kind::InstanceProfile, &d.name, why.clone(), used.clone())
            }
            None => instance_profile::destroy_diff(stack, d, p.as_ref(), &resources),
        };
        if force && item.verdict == Action::Delete {
            forced(&mut item, found.of_instance_profile(&d.name));
        }
        resources.push(item);
    }
    for (service, role) in desired.service_linked_roles.iter().zip(&o.service_linked_roles) {
        resources.push(service_linked_role::destroy_diff(service, role.as_deref(), include_service_linked_roles));
    }
    plan::DestroyPlan::new(&desired.stack, &desired.target, None, resources)
}

/// `--force` on a resource in use: deleted, its consumers listed with what deleting it breaks.
fn forced(item: &mut plan::DestroyResource, used: Vec<consumers::Consumer>) {
    if !used.is_empty() {
        item.notes.push("in use, deleted anyway (--force): what uses it stops working".into());
        item.consumers = used;
    }
}

/// A policy of the stack's: held back while it is attached to a role that is held back, or (unless `--force`)
/// to a role, user or group outside the stack, which would silently lose its permissions. The operator user's
/// attachment of a policy the stack gives it (`[user] customer_policies`) is the stack's own: detached as before.
fn policy_destroy_diff(
    desired: &Desired,
    d: &crate::stack::DesiredPolicy,
    observed: Option<&policy::ObservedPolicy>,
    links: Option<&policy::PolicyLinks>,
    deleted_roles: &BTreeSet<&str>,
    held: &Held,
    force: bool,
) -> plan::DestroyResource {
    let Some(l) = links else {
        return policy::destroy_diff(&desired.stack, d, observed, links, deleted_roles);
    };
    use consumers::{Consumer, ConsumerKind};
    let entity = |kind, name: &String| Consumer { kind, name: name.clone(), via: String::new(), detail: None };
    let mut via_held: Vec<&String> = l.roles.iter().filter(|r| held.roles.contains_key(*r)).collect();
    via_held.dedup();
    let foreign: Vec<Consumer> = l
        .roles
        .iter()
        .filter(|r| !deleted_roles.contains(r.as_str()) && !held.roles.contains_key(*r))
        .map(|r| entity(ConsumerKind::Role, r))
        .chain(
            l.users.iter().filter(|_| !desired.user_policies.contains(&d.arn)).map(|u| entity(ConsumerKind::User, u)),
        )
        .chain(l.groups.iter().map(|g| entity(ConsumerKind::Group, g)))
        .collect();
    if let Some(role) = via_held.first() {
        let why = format!("attached to role {role}, which is held back");
        return plan::DestroyResource::held_back(Kind::Policy, &d.name, why, foreign);
    }
    if !foreign.is_empty() && !force {
        let why = "attached outside the stack: detaching it would take these permissions away from them; detach it \
                   yourself first, or --force"
            .to_string();
        return plan::DestroyResource::held_back(Kind::Policy, &d.name, why, foreign);
    }
    let mut item = policy::destroy_diff(&desired.stack, d, observed, links, deleted_roles);
    if !foreign.is_empty() {
        item.consumers = foreign;
    }
    item
}

#[cfg(test)]
mod destroy_tests;
