//! The plan: a value saying, resource by resource, what `bootstrap` would change. Every [`Change`] is exactly
//! one write call, so "N changes" in a plan means N writes on apply.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::document;
use crate::resources::Ownership;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Create,
    Update,
    Unchanged,
}

/// One write call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "call", rename_all = "PascalCase")]
pub(crate) enum Change {
    CreatePolicy {
        name: String,
        path: String,
        description: String,
        document: Value,
    },
    DeletePolicyVersion {
        policy_arn: String,
        version_id: String,
    },
    CreatePolicyVersion {
        policy_arn: String,
        document: Value,
    },
    CreateRole {
        name: String,
        path: String,
        description: String,
        trust: Value,
    },
    UpdateAssumeRolePolicy {
        role: String,
        current: Value,
        desired: Value,
    },
    UpdateRole {
        role: String,
        current_description: String,
        description: String,
    },
    AttachRolePolicy {
        role: String,
        policy_arn: String,
    },
    CreateInstanceProfile {
        name: String,
        path: String,
    },
    RemoveRoleFromInstanceProfile {
        profile: String,
        role: String,
    },
    AddRoleToInstanceProfile {
        profile: String,
        role: String,
    },
    CreateServiceLinkedRole {
        service: String,
    },
    AttachUserPolicy {
        user: String,
        policy_arn: String,
    },
    // Removals, made only by `destroy`.
    DetachRolePolicy {
        role: String,
        policy_arn: String,
    },
    DeleteRolePolicy {
        role: String,
        policy_name: String,
    },
    DetachUserPolicy {
        user: String,
        policy_arn: String,
    },
    DetachGroupPolicy {
        group: String,
        policy_arn: String,
    },
    DeletePolicy {
        policy_arn: String,
    },
    DeleteInstanceProfile {
        name: String,
    },
    DeleteRole {
        name: String,
    },
    /// Deleted asynchronously by AWS: the change includes waiting for the deletion task's outcome.
    DeleteServiceLinkedRole {
        service: String,
        role: String,
    },
}

impl Change {
    pub(crate) fn operation(&self) -> &'static str {
        match self {
            Change::CreatePolicy { .. } => "CreatePolicy",
            Change::DeletePolicyVersion { .. } => "DeletePolicyVersion",
            Change::CreatePolicyVersion { .. } => "CreatePolicyVersion",
            Change::CreateRole { .. } => "CreateRole",
            Change::UpdateAssumeRolePolicy { .. } => "UpdateAssumeRolePolicy",
            Change::UpdateRole { .. } => "UpdateRole",
            Change::AttachRolePolicy { .. } => "AttachRolePolicy",
            Change::CreateInstanceProfile { .. } => "CreateInstanceProfile",
            Change::RemoveRoleFromInstanceProfile { .. } => "RemoveRoleFromInstanceProfile",
            Change::AddRoleToInstanceProfile { .. } => "AddRoleToInstanceProfile",
            Change::CreateServiceLinkedRole { .. } => "CreateServiceLinkedRole",
            Change::AttachUserPolicy { .. } => "AttachUserPolicy",
            Change::DetachRolePolicy { .. } => "DetachRolePolicy",
            Change::DeleteRolePolicy { .. } => "DeleteRolePolicy",
            Change::DetachUserPolicy { .. } => "DetachUserPolicy",
            Change::DetachGroupPolicy { .. } => "DetachGroupPolicy",
            Change::DeletePolicy { .. } => "DeletePolicy",
            Change::DeleteInstanceProfile { .. } => "DeleteInstanceProfile",
            Change::DeleteRole { .. } => "DeleteRole",
            Change::DeleteServiceLinkedRole { .. } => "DeleteServiceLinkedRole",
        }
    }

    /// The two make the same write: equal, except that an update of a trust document or a description is
    /// compared by what it sets, not by what it replaces (which a read made before or after it may see
    /// differently).
    pub(crate) fn same_write(&self, other: &Change) -> bool {
        match (self, other) {
            (
                Change::UpdateAssumeRolePolicy { role: a, desired: x, .. },
                Change::UpdateAssumeRolePolicy { role: b, desired: y, .. },
            ) => a == b && x == y,
            (
                Change::UpdateRole { role: a, description: x, .. },
                Change::UpdateRole { role: b, description: y, .. },
            ) => a == b && x == y,
            _ => self == other,
        }
    }

    /// A removal: when IAM answers NoSuchEntity, what it removes is already gone.
    pub(crate) fn is_removal(&self) -> bool {
        matches!(
            self,
            Change::DetachRolePolicy { .. }
                | Change::DeleteRolePolicy { .. }
                | Change::DetachUserPolicy { .. }
                | Change::DetachGroupPolicy { .. }
                | Change::DeletePolicy { .. }
                | Change::DeleteInstanceProfile { .. }
                | Change::DeleteRole { .. }
                | Change::DeleteServiceLinkedRole { .. }
        )
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreatePolicy { path, .. } => write!(f, "create policy (path {path}) with the stack's document"),
            Change::DeletePolicyVersion { version_id, .. } => {
                write!(f, "delete non-default version {version_id}")
            }
            Change::CreatePolicyVersion { .. } => write!(f, "set the stack's document as the new default version"),
            Change::CreateRole { path, trust, .. } => {
                write!(f, "create role (path {path}) trusting {}", document::principals(trust).join(", "))
            }
            Change::UpdateAssumeRolePolicy { current, desired, .. } => {
                let (from, to) = (document::principals(current), document::principals(desired));
                if from == to {
                    // Same principals: the conditions differ (e.g. `--harden`).
                    let keys = |doc| match document::condition_keys(doc) {
                        keys if keys.is_empty() => "none".to_string(),
                        keys => keys.join(", "),
                    };
                    write!(
                        f,
                        "update trust document ({}): conditions {} -> {}",
                        or_none(from),
                        keys(current),
                        keys(desired)
                    )
                } else {
                    write!(f, "update trust document: {} -> {}", or_none(from), or_none(to))
                }
            }
            Change::UpdateRole { current_description, description, .. } => {
                write!(f, "update description: {current_description:?} -> {description:?}")
            }
            Change::AttachRolePolicy { policy_arn, .. } | Change::AttachUserPolicy { policy_arn, .. } => {
                write!(f, "attach {policy_arn}")
            }
            Change::CreateInstanceProfile { path, .. } => write!(f, "create instance profile (path {path})"),
            Change::RemoveRoleFromInstanceProfile { profile, role } => {
                write!(f, "remove role {role} from instance profile {profile}")
            }
            Change::AddRoleToInstanceProfile { role, .. } => write!(f, "add role {role}"),
            Change::CreateServiceLinkedRole { service } => write!(f, "create service-linked role for {service}"),
            Change::DetachRolePolicy { role, policy_arn } => write!(f, "detach {policy_arn} from role {role}"),
            Change::DeleteRolePolicy { policy_name, .. } => write!(f, "delete inline policy {policy_name}"),
            Change::DetachUserPolicy { user, policy_arn } => write!(f, "detach {policy_arn} from user {user}"),
            Change::DetachGroupPolicy { group, policy_arn } => write!(f, "detach {policy_arn} from group {group}"),
            Change::DeletePolicy { .. } => write!(f, "delete the policy"),
            Change::DeleteInstanceProfile { .. } => write!(f, "delete the instance profile"),
            Change::DeleteRole { .. } => write!(f, "delete the role"),
            Change::DeleteServiceLinkedRole { role, .. } => {
                write!(f, "delete service-linked role {role} and wait for AWS's deletion task")
            }
        }
    }
}

fn or_none(list: Vec<String>) -> String {
    if list.is_empty() {
        "(no principal)".into()
    } else {
        list.join(", ")
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlannedChange {
    #[serde(flatten)]
    pub(crate) change: Change,
    /// It changes something wfboot did not create: applied only with the user's consent (`--adopt`).
    pub(crate) needs_consent: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ResourcePlan {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) status: Status,
    pub(crate) ownership: Ownership,
    pub(crate) changes: Vec<PlannedChange>,
    /// What differs from the stack but is deliberately not touched (extra policies, an immovable path, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) left_alone: Vec<String>,
}

impl ResourcePlan {
    pub(crate) fn new(
        kind: Kind,
        name: &str,
        ownership: Ownership,
        changes: Vec<Change>,
        left_alone: Vec<String>,
    ) -> Self {
        let status = if ownership == Ownership::Absent {
            Status::Create
        } else if changes.is_empty() {
            Status::Unchanged
        } else {
            Status::Update
        };
        let needs_consent = ownership == Ownership::Foreign;
        ResourcePlan {
            kind,
            name: name.to_string(),
            status,
            ownership,
            changes: changes.into_iter().map(|change| PlannedChange { change, needs_consent }).collect(),
            left_alone,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    pub(crate) stack: String,
    pub(crate) account_id: String,
    pub(crate) partition: String,
    pub(crate) region: String,
    /// The operator's IAM user whose managed policies are checked, if any.
    pub(crate) user: Option<String>,
    pub(crate) resources: Vec<ResourcePlan>,
    pub(crate) summary: PlanSummary,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct PlanSummary {
    pub(crate) create: usize,
    pub(crate) update: usize,
    pub(crate) unchanged: usize,
    /// Write calls the plan needs, all of them.
    pub(crate) changes: usize,
    /// Of those, how many touch resources wfboot did not create.
    pub(crate) needing_consent: usize,
}

impl Plan {
    pub(crate) fn new(
        stack: &str,
        target: &crate::stack::Target,
        user: Option<String>,
        resources: Vec<ResourcePlan>,
    ) -> Plan {
        let mut summary = PlanSummary::default();
        for r in &resources {
            match r.status {
                Status::Create => summary.create += 1,
                Status::Update => summary.update += 1,
                Status::Unchanged => summary.unchanged += 1,
            }
            summary.changes += r.changes.len();
            summary.needing_consent += r.changes.iter().filter(|c| c.needs_consent).count();
        }
        Plan {
            stack: stack.to_string(),
            account_id: target.account_id.clone(),
            partition: target.partition.clone(),
            region: target.region.clone(),
            user,
            resources,
            summary,
        }
    }

    pub(crate) fn has_changes(&self) -> bool {
        self.summary.changes > 0
    }

    pub(crate) fn changes(&self) -> impl Iterator<Item = &PlannedChange> {
        self.resources.iter().flat_map(|r| r.changes.iter())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Stack {} in account {} ({}, {}):", self.stack, self.account_id, self.partition, self.region)?;
        for r in &self.resources {
            let (mark, status) = match r.status {
                Status::Create => ('+', "create"),
                Status::Update => ('~', "update"),
                Status::Unchanged => ('=', "unchanged"),
            };
            let owner = match r.ownership {
                Ownership::Foreign => "  [exists, not created by wfboot]",
                _ => "",
            };
            let name = format!("{} {}", r.kind, r.name);
            writeln!(f, "  {mark} {name:<48} {status}{owner}")?;
            for c in &r.changes {
                let consent = if c.needs_consent { "  (needs consent: --adopt)" } else { "" };
                writeln!(f, "      {}{consent}", c.change)?;
            }
            for note in &r.left_alone {
                writeln!(f, "      left alone: {note}")?;
            }
        }
        let s = &self.summary;
        write!(
            f,
            "{} to create, {} to update, {} unchanged; {} write call{}",
            s.create,
            s.update,
            s.unchanged,
            s.changes,
            if s.changes == 1 { "" } else { "s" }
        )?;
        if s.needing_consent > 0 {
            write!(f, " ({} on resources wfboot did not create)", s.needing_consent)?;
        }
        writeln!(f, ".")
    }
}
