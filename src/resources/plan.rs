//! The plan: a value saying, resource by resource, what `bootstrap` would change. Every [`Change`] is exactly
//! one write call, so "N changes" in a plan means N writes on apply. The changes themselves are each kind's
//! (`resources/<kind>.rs`), gathered in the registry ([`super::Change`]).

use std::fmt;

use serde::Serialize;

pub(crate) use super::{Change, Kind};
use super::{Ownership, OWNER_TAG};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Create,
    Update,
    Unchanged,
}

/// What a change needs done before it can run, or what it gets done: the apply's dependency graph is built
/// from these alone (a change waits for every change that provides a key it needs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    /// The role of this name exists.
    RoleExists(String),
    /// The managed policy of this ARN exists.
    PolicyExists(String),
    /// The instance profile of this name exists.
    InstanceProfileExists(String),
    /// A link holding the role of this name was removed (what IAM wants gone before DeleteRole).
    RoleReleased(String),
    /// A link holding the policy of this ARN was removed, or one of its versions deleted.
    PolicyReleased(String),
    /// A role was taken out of the instance profile of this name.
    InstanceProfileReleased(String),
    /// A non-default version of the policy of this ARN was deleted (IAM keeps at most five).
    PolicyVersionFreed(String),
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
    /// The stack's note on the resource (shown in the text plan when it is created or changed).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) note: String,
}

impl ResourcePlan {
    pub(crate) fn new(
        kind: Kind,
        name: &str,
        ownership: Ownership,
        changes: Vec<impl Into<Change>>,
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
            changes: changes.into_iter().map(|change| PlannedChange { change: change.into(), needs_consent }).collect(),
            left_alone,
            note: String::new(),
        }
    }

    pub(crate) fn with_note(mut self, note: &str) -> Self {
        self.note = note.to_string();
        self
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
            if !r.note.is_empty() && r.status != Status::Unchanged {
                writeln!(f, "      note: {}", r.note)?;
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
            crate::wording::plural(s.changes)
        )?;
        if s.needing_consent > 0 {
            write!(f, " ({} on resources wfboot did not create)", s.needing_consent)?;
        }
        writeln!(f, ".")
    }
}

// The destroy plan: what `destroy` removes and what it leaves alone, with why. Only resources carrying
// wfboot's ownership tag for this stack are deleted. Deleting one ends every relationship it has, whoever
// made it (a role leaves its instance profiles and loses its policies, a policy is detached from everything),
// so that IAM accepts the deletion; what sits at the other end of such a relationship is never deleted, and
// the plan names it. Every change is one write call, as in the bootstrap plan.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    Delete,
    LeftAlone,
    /// Not in the account: nothing to do.
    Absent,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DestroyResource {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) action: Action,
    pub(crate) ownership: Ownership,
    /// Why it is left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    pub(crate) changes: Vec<PlannedChange>,
    /// What deleting it touches beyond the stack (the other end of a relationship, which stays).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
}

impl DestroyResource {
    pub(crate) fn absent(kind: Kind, name: &str) -> Self {
        DestroyResource {
            kind,
            name: name.to_string(),
            action: Action::Absent,
            ownership: Ownership::Absent,
            reason: None,
            changes: vec![],
            notes: vec![],
        }
    }

    pub(crate) fn left_alone(kind: Kind, name: &str, ownership: Ownership, reason: String) -> Self {
        DestroyResource {
            kind,
            name: name.to_string(),
            action: Action::LeftAlone,
            ownership,
            reason: Some(reason),
            changes: vec![],
            notes: vec![],
        }
    }

    pub(crate) fn delete(
        kind: Kind,
        name: &str,
        ownership: Ownership,
        changes: Vec<impl Into<Change>>,
        notes: Vec<String>,
    ) -> Self {
        DestroyResource {
            kind,
            name: name.to_string(),
            action: Action::Delete,
            ownership,
            reason: None,
            changes: changes
                .into_iter()
                .map(|change| PlannedChange { change: change.into(), needs_consent: false })
                .collect(),
            notes,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct DestroySummary {
    pub(crate) delete: usize,
    pub(crate) left_alone: usize,
    pub(crate) absent: usize,
    /// Write calls the plan needs, all of them.
    pub(crate) changes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DestroyPlan {
    pub(crate) stack: String,
    pub(crate) account_id: String,
    pub(crate) partition: String,
    pub(crate) region: String,
    pub(crate) resources: Vec<DestroyResource>,
    pub(crate) summary: DestroySummary,
}

impl DestroyPlan {
    /// The destroy plan of `resources` for the account and stack of `desired`.
    pub(crate) fn new(desired: &crate::stack::Desired, resources: Vec<DestroyResource>) -> DestroyPlan {
        let mut summary = DestroySummary::default();
        for r in &resources {
            match r.action {
                Action::Delete => summary.delete += 1,
                Action::LeftAlone => summary.left_alone += 1,
                Action::Absent => summary.absent += 1,
            }
            summary.changes += r.changes.len();
        }
        DestroyPlan {
            stack: desired.stack.clone(),
            account_id: desired.target.account_id.clone(),
            partition: desired.target.partition.clone(),
            region: desired.target.region.clone(),
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

/// Why a resource `destroy` found is not deleted: it is not this stack's.
pub(crate) fn not_ours(stack: &str, tags: &[(String, String)]) -> String {
    match tags.iter().find(|(k, _)| k == OWNER_TAG) {
        Some((_, other)) => format!("created by wfboot for stack {other}, not {stack}"),
        None => format!("exists, not created by wfboot (no {OWNER_TAG}={stack} tag)"),
    }
}

impl fmt::Display for DestroyPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Destroy stack {} in account {} ({}, {}):",
            self.stack, self.account_id, self.partition, self.region
        )?;
        for r in &self.resources {
            let (mark, status) = match r.action {
                Action::Delete => ('-', "delete"),
                Action::LeftAlone => ('=', "left alone"),
                Action::Absent => ('.', "absent"),
            };
            let name = format!("{} {}", r.kind, r.name);
            writeln!(f, "  {mark} {name:<48} {status}")?;
            if let Some(reason) = &r.reason {
                writeln!(f, "      {reason}")?;
            }
            for c in &r.changes {
                writeln!(f, "      {}", c.change)?;
            }
            for note in &r.notes {
                writeln!(f, "      note: {note}")?;
            }
        }
        let s = &self.summary;
        writeln!(
            f,
            "{} to delete, {} left alone, {} absent; {} write call{}.",
            s.delete,
            s.left_alone,
            s.absent,
            s.changes,
            crate::wording::plural(s.changes)
        )
    }
}
