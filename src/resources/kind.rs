//! What a kind of resource is, as the registry (`resources/mod.rs`) sees it: the trait each kind's file
//! implements on a unit type of its own. The registry lists the kinds once and generates the rest from this trait
//! alone: the `Kind` and `Change` enums, the observation's parts, observe all, diff all, destroy all and the
//! read actions. A kind's file imports this module, [`super::vocab`] and [`super::plan`], never the registry.

use std::fmt;

use serde::Serialize;

use super::plan::{Change, DestroyResource, Kind, ResourcePlan};
use super::write::Write;
use crate::aws::Clients;
use crate::error::Result;
use crate::stack::{Desired, Stack};

/// A kind of resource: its desired form in the stack, how it is read and compared, its write calls.
pub(crate) trait ResourceKind {
    /// How text names the kind (`instance profile`).
    const WORD: &'static str;
    /// Its resources are read by name alone, before the account id is known: [`ResourceKind::observe_named`]
    /// (otherwise [`ResourceKind::observe_in_account`]).
    const BY_NAME: bool;
    /// The Get/List actions its observe calls.
    const READ_ACTIONS: &'static [&'static str];
    /// One write call to a resource of the kind (its wording, permissions, dependency keys and execution are
    /// [`Write`]'s).
    type Change: Write + Into<Change> + fmt::Display + fmt::Debug + Clone + PartialEq + Serialize;
    /// What reading the stack's resources of the kind gives: one entry per desired resource, in the stack's order.
    type Observation: Clone + Default + fmt::Debug;

    /// The names it is read by, from the stack before it is rendered (a kind read [`ResourceKind::BY_NAME`]).
    fn names_in_stack(_stack: &Stack) -> Vec<String> {
        Vec::new()
    }

    /// The same names, from the rendered stack.
    fn names(_desired: &Desired) -> Vec<String> {
        Vec::new()
    }

    /// Read the resources of these names. Get/List calls only.
    async fn observe_named(_clients: &Clients, _names: &[String], _verifying: bool) -> Result<Self::Observation> {
        Ok(Self::Observation::default())
    }

    /// Read the stack's resources of the kind once the account is known. Get/List calls only.
    async fn observe_in_account(
        _clients: &Clients,
        _desired: &Desired,
        _user: Option<&str>,
        _verifying: bool,
    ) -> Result<Self::Observation> {
        Ok(Self::Observation::default())
    }

    /// The observation when none of the stack's resources of the kind exists: a kind read in the account is taken
    /// to be so before it is read.
    fn absent(_desired: &Desired, _user: Option<&str>) -> Self::Observation {
        Self::Observation::default()
    }

    /// The plan of each of the stack's resources of the kind. Pure.
    fn diff(desired: &Desired, observed: &Self::Observation, user: Option<&str>) -> Vec<ResourcePlan>;

    /// Keep in `desired` only the resources of the kind that `changed` (by name; `None`: any of the kind).
    fn keep_changed(desired: &mut Desired, changed: &dyn Fn(Option<&str>) -> bool);

    /// What `destroy` does with each of the stack's resources of the kind. Pure.
    fn destroy_diff(desired: &Desired, observed: &Self::Observation, ctx: &DestroyCtx<'_>) -> Vec<DestroyResource>;
}

/// What a kind's destroy is told besides its own observation.
pub(crate) struct DestroyCtx<'a> {
    /// `--include-service-linked-roles`.
    pub(crate) include_service_linked_roles: bool,
    /// The verdicts of the kinds that hold each other (a policy on a role in a profile), decided together by the
    /// registry, which holds back what is in use with what it holds.
    pub(crate) linked: &'a [DestroyResource],
}

impl DestroyCtx<'_> {
    /// The linked verdicts of `kind`.
    pub(crate) fn decided(&self, kind: Kind) -> Vec<DestroyResource> {
        self.linked.iter().filter(|r| r.kind == kind).cloned().collect()
    }
}

/// The resources of a kind with a list of named resources in the stack (`Observation = Vec<Option<_>>`),
/// each diffed on its own.
pub(crate) fn each<D, O>(
    desired: &[D],
    observed: &[Option<O>],
    diff: impl Fn(&D, Option<&O>) -> ResourcePlan,
) -> Vec<ResourcePlan> {
    desired.iter().zip(observed).map(|(d, o)| diff(d, o.as_ref())).collect()
}
