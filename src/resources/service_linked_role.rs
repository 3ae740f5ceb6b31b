//! A service-linked role: ensures AWS has created the role for a service. Such roles are found by their
//! reserved path `/aws-service-role/<service>/`, because their names differ between AWS and emulators.

use super::Ownership;
use crate::aws::{errors, Clients};
use crate::engine::plan::{Change, Kind, ResourcePlan};
use crate::error::Result;

/// The names of the existing service-linked roles for `services`, in order (`None`: not created yet).
///
/// One listing of the reserved path `/aws-service-role/` answers for every service at once; an account has
/// a few dozen such roles at most.
pub(crate) async fn observe_all(clients: &Clients, services: &[String]) -> Result<Vec<Option<String>>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let roles = clients
        .limit(async {
            clients.iam.list_roles().path_prefix(PATH_PREFIX).into_paginator().items().send().try_collect().await
        })
        .await
        .map_err(|e| errors::describe("list the service-linked roles (path /aws-service-role/)", &e))?;
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
        Some(_) => ResourcePlan::new(Kind::ServiceLinkedRole, service, Ownership::External, vec![], vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
