//! An instance profile: ensures it exists and holds exactly the stack's role (IAM allows one role per profile).

use super::Ownership;
use crate::aws::{errors, Clients};
use crate::error::{Error, Result};
use crate::resources::plan::{Change, Kind, ResourcePlan};
use crate::stack::DesiredInstanceProfile;

#[derive(Debug, Clone)]
pub(crate) struct ObservedInstanceProfile {
    pub(crate) path: String,
    pub(crate) roles: Vec<String>,
    pub(crate) tags: Vec<(String, String)>,
}

pub(crate) async fn observe(clients: &Clients, name: &str) -> Result<Option<ObservedInstanceProfile>> {
    let profile = match clients.limit(clients.iam.get_instance_profile().instance_profile_name(name).send()).await {
        Ok(out) => out.instance_profile,
        Err(e) if errors::is_no_such_entity(&e) => return Ok(None),
        Err(e) => return Err(errors::describe(&format!("read instance profile `{name}`"), &e)),
    };
    let Some(p) = profile else { return Err(Error::aws(format!("iam:GetInstanceProfile answered without `{name}`"))) };
    Ok(Some(ObservedInstanceProfile {
        path: p.path,
        roles: p.roles.into_iter().map(|r| r.role_name).collect(),
        tags: p.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect(),
    }))
}

pub(crate) fn diff(
    stack: &str,
    desired: &DesiredInstanceProfile,
    observed: Option<&ObservedInstanceProfile>,
) -> ResourcePlan {
    let add = Change::AddRoleToInstanceProfile { profile: desired.name.clone(), role: desired.role.clone() };
    let Some(obs) = observed else {
        let create = Change::CreateInstanceProfile { name: desired.name.clone(), path: desired.path.clone() };
        return ResourcePlan::new(Kind::InstanceProfile, &desired.name, Ownership::Absent, vec![create, add], vec![]);
    };
    let ownership = Ownership::from_tags(stack, obs.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut changes: Vec<Change> = obs
        .roles
        .iter()
        .filter(|r| **r != desired.role)
        .map(|r| Change::RemoveRoleFromInstanceProfile { profile: desired.name.clone(), role: r.clone() })
        .collect();
    if !obs.roles.contains(&desired.role) {
        changes.push(add);
    }
    let mut left_alone = Vec::new();
    if obs.path != desired.path {
        left_alone.push(format!(
            "path is {} but the stack says {} (IAM cannot move an instance profile)",
            obs.path, desired.path
        ));
    }
    ResourcePlan::new(Kind::InstanceProfile, &desired.name, ownership, changes, left_alone)
}
