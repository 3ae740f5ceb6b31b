//! The kinds of IAM resource a stack ensures, and their registry. Each kind's module holds its whole lifecycle:
//! observe (read-only calls only), diff against the desired state and destroy-diff (pure, giving plan values),
//! and its write calls ([`write::Write`]: wording, permissions, dependency keys, execution with its retry
//! rules). This module is the one place that lists the kinds: the engine reaches them only through it.

pub(crate) mod access;
pub(crate) mod advisory;
pub(crate) mod caller;
pub(crate) mod consumers;
#[cfg(feature = "ec2")]
pub(crate) mod imds;
#[cfg(feature = "ec2")]
pub(crate) mod instance;
pub(crate) mod instance_profile;
pub(crate) mod kind;
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
use kind::ResourceKind;
use plan::{Action, Key};
use write::{Ctx, Outcome, Write};

/// For the tests of the engine and the commands, which build plans by hand.
#[cfg(test)]
pub(crate) use vocab::Ownership;
pub(crate) use vocab::{owned, OWNER_TAG};

use crate::aws::Clients;
use crate::error::{Error, Result};
use crate::stack::{Desired, Stack};
use plan::Plan;

/// The registry: every kind, in the order plans list them. A line is the kind's name in plans
/// (`Kind::InstanceProfile`, serialised `instance_profile`), its type ([`kind::ResourceKind`]), its field in
/// the observation, and the place of its Get/List actions in the read statement ([`READ_ACTIONS`]).
macro_rules! registry {
    ($($variant:ident = $module:ident::$kind:ident => $field:ident, read $rank:literal;)*) => {
        /// The kinds of resource, as plans name them.
        #[cfg_attr(test, derive(schemars::JsonSchema))]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub(crate) enum Kind {
            $($variant,)*
        }

        impl Kind {
            fn word(self) -> &'static str {
                match self {
                    $(Kind::$variant => <$module::$kind as ResourceKind>::WORD,)*
                }
            }

            /// Its resources are read by name alone, before the account id is known ([`Names`]).
            pub(crate) fn found_by_name(self) -> bool {
                match self {
                    $(Kind::$variant => <$module::$kind as ResourceKind>::BY_NAME,)*
                }
            }
        }

        /// One write call, of any kind: the kinds' own changes, each serialised as that kind's (`{"call": ...}`).
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub(crate) enum Change {
            $($variant(<$module::$kind as ResourceKind>::Change),)*
        }

        $(impl From<<$module::$kind as ResourceKind>::Change> for Change {
            fn from(c: <$module::$kind as ResourceKind>::Change) -> Change {
                Change::$variant(c)
            }
        })*

        impl Change {
            pub(crate) fn operation(&self) -> &'static str {
                match self {
                    $(Change::$variant(c) => c.operation(),)*
                }
            }

            pub(crate) fn needs(&self) -> Vec<Key> {
                match self {
                    $(Change::$variant(c) => c.needs(),)*
                }
            }

            pub(crate) fn provides(&self) -> Vec<Key> {
                match self {
                    $(Change::$variant(c) => c.provides(),)*
                }
            }

            pub(crate) fn permissions(&self, scope: &Scope<'_>) -> Vec<Permission> {
                match self {
                    $(Change::$variant(c) => c.permissions(scope),)*
                }
            }

            /// The two make the same write (see each kind's [`Write::same_write`]).
            pub(crate) fn same_write(&self, other: &Change) -> bool {
                match (self, other) {
                    $((Change::$variant(a), Change::$variant(b)) => a.same_write(b),)*
                    #[allow(unreachable_patterns)]
                    _ => false,
                }
            }

            /// Send the call ([`Write::execute`]).
            pub(crate) async fn execute(&self, ctx: &mut Ctx<'_>, after_dependency: bool) -> Result<(Outcome, bool)> {
                match self {
                    $(Change::$variant(c) => c.execute(ctx, after_dependency).await,)*
                }
            }
        }

        impl fmt::Display for Change {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Change::$variant(c) => c.fmt(f),)*
                }
            }
        }

        /// Everything observed about the desired resources, a part per kind.
        #[derive(Debug, Clone, Default)]
        pub(crate) struct Observed {
            $(pub(crate) $field: <$module::$kind as ResourceKind>::Observation,)*
        }

        impl Observed {
            /// The observation of an account where none of `desired` exists: what a new StackSet instance creates
            /// (`pipeline::stackset`), and the tests that plan a fresh account.
            pub(crate) fn absent(desired: &Desired, user_name: Option<&str>) -> Observed {
                Observed { $($field: <$module::$kind as ResourceKind>::absent(desired, user_name),)* }
            }
        }

        /// The names of the stack's resources of the kinds read by name, in the stack's order. Reading these needs
        /// no account id, so it can start before sts:GetCallerIdentity has answered.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(crate) struct Names {
            $($field: Vec<String>,)*
        }

        impl Names {
            pub(crate) fn of_stack(stack: &Stack) -> Names {
                Names { $($field: <$module::$kind as ResourceKind>::names_in_stack(stack),)* }
            }

            pub(crate) fn of_desired(desired: &Desired) -> Names {
                Names { $($field: <$module::$kind as ResourceKind>::names(desired),)* }
            }
        }

        /// What [`observe_named`] read: the part of [`Observed`] that is found by name alone.
        #[derive(Debug, Clone, Default)]
        pub(crate) struct NamedObservation {
            names: Option<Names>,
            $($field: <$module::$kind as ResourceKind>::Observation,)*
        }

        /// The part of the observation that needs the account (the kinds not read by name alone).
        #[derive(Debug, Clone, Default)]
        pub(crate) struct AccountPart {
            $($field: <$module::$kind as ResourceKind>::Observation,)*
        }

        /// Read the stack's resources of the kinds read by name. Only Get/List calls.
        pub(crate) async fn observe_named(
            clients: &Clients,
            names: &Names,
            verifying: bool,
        ) -> Result<NamedObservation> {
            let ($($field,)*) = tokio::try_join!($(
                <$module::$kind as ResourceKind>::observe_named(clients, &names.$field, verifying),
            )*)?;
            Ok(NamedObservation { names: Some(names.clone()), $($field,)* })
        }

        /// The part of the observation that needs the account: the stack's own policies (their ARNs hold the
        /// account id) and the operator user's attachments. `verifying` asks for each policy's first version
        /// alongside the policy, saving the round trip after GetPolicy when that is still its default.
        pub(crate) async fn observe_account_part(
            clients: &Clients,
            desired: &Desired,
            user_name: Option<&str>,
            verifying: bool,
        ) -> Result<AccountPart> {
            let ($($field,)*) = tokio::try_join!($(
                <$module::$kind as ResourceKind>::observe_in_account(clients, desired, user_name, verifying),
            )*)?;
            Ok(AccountPart { $($field,)* })
        }

        impl NamedObservation {
            fn complete(self, account: AccountPart) -> Observed {
                Observed {
                    $($field: if <$module::$kind as ResourceKind>::BY_NAME { self.$field } else { account.$field },)*
                }
            }

            /// The observation as far as names alone tell: the kinds read in the account taken as absent (the
            /// stack's policies) or as having none of the stack's (the operator user, when there is one). A plan
            /// made from it holds every change of the real plan except, for a policy that exists with another
            /// document, its new version.
            pub(crate) fn provisional(&self, desired: &Desired, user_name: Option<&str>) -> Observed {
                Observed {
                    $($field: if <$module::$kind as ResourceKind>::BY_NAME {
                        self.$field.clone()
                    } else {
                        <$module::$kind as ResourceKind>::absent(desired, user_name)
                    },)*
                }
            }
        }

        /// The plan for `desired` given what was observed, each kind planning its own. Pure: no AWS access.
        pub(crate) fn diff(desired: &Desired, observed: &Observed, user_name: Option<&str>) -> Plan {
            let mut resources = Vec::new();
            $(resources.extend(<$module::$kind as ResourceKind>::diff(desired, &observed.$field, user_name));)*
            Plan::new(&desired.stack, &desired.target, user_name.map(str::to_string), resources)
        }

        /// The part of `desired` that `plan` wants to change, for re-observing after apply.
        pub(crate) fn changed_part(desired: &Desired, plan: &Plan) -> Desired {
            let mut part = desired.clone();
            $(<$module::$kind as ResourceKind>::keep_changed(&mut part, &|name: Option<&str>| {
                plan.resources.iter().any(|r| {
                    r.kind == Kind::$variant && name.is_none_or(|n| r.name == n) && !r.changes.is_empty()
                })
            });)*
            part
        }

        /// Every kind's `Change`, as JSON schemas (each a `oneOf` of its calls), for docs/output.schema.json.
        #[cfg(test)]
        pub(crate) fn change_schemas() -> Vec<serde_json::Value> {
            let generator = || schemars::generate::SchemaSettings::draft2020_12().for_serialize().into_generator();
            vec![$(generator().into_root_schema_for::<<$module::$kind as ResourceKind>::Change>().to_value(),)*]
        }

        /// Every kind's destroy, in the registry's order.
        fn destroy_each(desired: &Desired, observed: &Observed, ctx: &kind::DestroyCtx<'_>) -> Vec<plan::DestroyResource> {
            let mut resources = Vec::new();
            $(resources.extend(<$module::$kind as ResourceKind>::destroy_diff(desired, &observed.$field, ctx));)*
            resources
        }

        /// What observing the account needs (plan and every bootstrap), on any resource: each kind's Get/List
        /// actions, in the order of their places.
        pub(crate) const READ_ACTIONS: &[&str] = &{
            const PARTS: &[(u8, &[&str])] = &[$(($rank, <$module::$kind as ResourceKind>::READ_ACTIONS),)*];
            const N: usize = read_actions_len(PARTS);
            read_actions::<N>(PARTS)
        };
    };
}

registry! {
    UserPolicies = user::UserPolicies => user, read 4;
    Policy = policy::Policies => policies, read 1;
    Role = role::Roles => roles, read 0;
    InstanceProfile = instance_profile::InstanceProfiles => instance_profiles, read 2;
    ServiceLinkedRole = service_linked_role::ServiceLinkedRoles => service_linked_roles, read 3;
}

const fn read_actions_len(parts: &[(u8, &[&str])]) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < parts.len() {
        n += parts[i].1.len();
        i += 1;
    }
    n
}

/// The actions of `parts` by their places (`N`: their count).
const fn read_actions<const N: usize>(parts: &[(u8, &[&'static str])]) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut at, mut place) = (0, 0);
    while at < N {
        let mut i = 0;
        while i < parts.len() {
            if parts[i].0 == place {
                let mut j = 0;
                while j < parts[i].1.len() {
                    out[at] = parts[i].1[j];
                    at += 1;
                    j += 1;
                }
            }
            i += 1;
        }
        place += 1;
    }
    out
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl Observed {
    /// The observation of `desired` from its two parts, read for the same stack.
    pub(crate) fn assemble(desired: &Desired, named: NamedObservation, account: AccountPart) -> Result<Observed> {
        if named.names.as_ref() != Some(&Names::of_desired(desired)) {
            return Err(Error::aws("internal error: the observation was made for other resource names"));
        }
        Ok(named.complete(account))
    }
}

impl NamedObservation {
    /// The AWS-managed policies attached to the observed roles (known to exist).
    pub(crate) fn attached(&self) -> BTreeSet<String> {
        role::attached(&self.roles)
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
    let (named, account) = tokio::try_join!(
        observe_named(clients, &names, verifying),
        observe_account_part(clients, desired, user_name, verifying)
    )?;
    Ok(named.complete(account))
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
        // A compute environment Batch is deleting (a probe of `bootstrap --wait`, say) still uses its roles: wait for
        // it to be gone rather than hold them back.
        let roles: Vec<&str> = desired.roles.iter().map(|r| r.name.as_str()).collect();
        let profiles: Vec<&str> = desired.instance_profiles.iter().map(|p| p.name.as_str()).collect();
        let deleting = found.deleting_environments(&roles, &profiles);
        if !deleting.is_empty() {
            let gone = consumers::wait_deleted(clients, &deleting, consumers::DELETING_WAIT).await;
            found.forget_environments(&gone);
        }
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

/// The destroy plan for `desired` given what was observed, each kind planning its own (the roles, their
/// instance profiles and the policies on them together, [`Held`]). Pure: no AWS access.
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
    // The kinds that hold each other are decided together; each kind then lists its own.
    let mut linked: Vec<plan::DestroyResource> = Vec::new();
    for ((d, p), links) in desired.policies.iter().zip(&o.policies).zip(&obs.policies) {
        linked.push(policy_destroy_diff(desired, d, p.as_ref(), links.as_ref(), &deleted_roles, &held, force));
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
        linked.push(item);
    }
    for (d, p) in desired.instance_profiles.iter().zip(&o.instance_profiles) {
        let mut item = match held.instance_profiles.get(&d.name) {
            Some((why, used)) => {
                plan::DestroyResource::held_back(Kind::InstanceProfile, &d.name, why.clone(), used.clone())
            }
            None => instance_profile::destroy_diff(stack, d, p.as_ref(), &linked),
        };
        if force && item.verdict == Action::Delete {
            forced(&mut item, found.of_instance_profile(&d.name));
        }
        linked.push(item);
    }
    let ctx = kind::DestroyCtx { include_service_linked_roles, linked: &linked };
    let resources = destroy_each(desired, o, &ctx);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_statement_lists_every_kinds_reads_in_its_place() {
        assert_eq!(
            READ_ACTIONS,
            [
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
            ]
        );
    }
}
