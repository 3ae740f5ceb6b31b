//! Plan and apply over the resource graph: observe (read-only) -> diff (pure) -> apply (writes, in
//! dependency order, concurrently where the graph allows). The kinds themselves are the registry's
//! ([`crate::resources`]); the engine names none of them.

pub(crate) mod apply;
pub(crate) mod permissions;

use std::collections::BTreeSet;

use crate::aws::Clients;
use crate::error::Result;
use crate::resources::managed_policy::check_managed_policies;
use crate::resources::plan::Plan;
use crate::resources::{diff, observe};
use crate::stack::Desired;

/// Observe, check the managed policies, and diff.
pub(crate) async fn plan(clients: &Clients, desired: &Desired, user_name: Option<&str>) -> Result<Plan> {
    let observed = observe(clients, desired, user_name, false).await?;
    check_managed_policies(clients, desired, &observed, &BTreeSet::new()).await?;
    Ok(diff(desired, &observed, user_name))
}
