//! A service-linked role: ensures AWS has created the role for a service. Such roles are found by their
//! reserved path `/aws-service-role/<service>/`, because their names differ between AWS and emulators.

use super::Ownership;
use crate::aws::{errors, Clients};
use crate::engine::plan::{Change, Kind, ResourcePlan};
use crate::error::Result;

/// The name of the existing service-linked role for `service`, if there is one.
pub(crate) async fn observe(clients: &Clients, service: &str) -> Result<Option<String>> {
    let prefix = format!("/aws-service-role/{service}/");
    let roles = clients
        .limit(async {
            clients.iam.list_roles().path_prefix(&prefix).into_paginator().items().send().try_collect().await
        })
        .await
        .map_err(|e| errors::describe(&format!("list the service-linked roles of {service}"), &e))?;
    Ok(roles.into_iter().next().map(|r| r.role_name))
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
