//! The plan: a value saying, resource by resource, what `bootstrap` would change or what `destroy` would
//! remove. Every [`Change`] is exactly one write call, so "N changes" in a plan means N writes on apply. The
//! changes themselves are each kind's (`resources/<kind>.rs`), gathered in the registry ([`super::Change`]).
//!
//! One plan type serves both verbs: [`Plan<V>`] over the verdict each resource gets, [`Status`] for a
//! bootstrap ([`Plan`]) and [`Action`] for a destroy ([`DestroyPlan`]); the verdict brings its summary, its
//! JSON keys and its words.

use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

pub(crate) use super::consumers::{Consumer, LastUsed};
pub(crate) use super::vocab::Key;
use super::vocab::{Ownership, OWNER_TAG};
pub(crate) use super::{Change, Kind};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlannedChange {
    #[serde(flatten)]
    pub(crate) change: Change,
    /// It changes something wfboot did not create: applied only with the user's consent (`--adopt`).
    pub(crate) needs_consent: bool,
}

/// What a plan says of each resource: [`Status`] (bootstrap) or [`Action`] (destroy). It names the keys and
/// words the plan's JSON and text use for it, and counts it into the plan's summary.
pub(crate) trait Verdict: Copy + Eq + fmt::Debug + Serialize {
    /// The counts of a plan's resources by verdict, and of its write calls.
    type Summary: Copy + Default + Eq + fmt::Debug + Serialize + fmt::Display;
    /// The resource's JSON key for its verdict.
    const KEY: &'static str;
    /// The resource's JSON key for its notes, and their label in text.
    const NOTES: (&'static str, &'static str);
    /// The plan's first words in text.
    const HEADING: &'static str;
    /// Whether the plan's JSON names the operator's user (`"user"`, null when none).
    const NAMES_USER: bool;
    /// The resource's mark and verdict in text ("+ create").
    fn mark(self) -> (char, &'static str);
    /// Said after the verdict in text, for a resource of this ownership.
    fn ownership_note(self, ownership: Ownership) -> &'static str;
    /// Counts a resource with this verdict and these changes into `summary`.
    fn count(self, changes: &[PlannedChange], summary: &mut Self::Summary);
}

/// One resource of a plan: its verdict, and the write calls that carry it out.
#[derive(Debug, Clone)]
pub(crate) struct ResourcePlan<V = Status> {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) verdict: V,
    pub(crate) ownership: Ownership,
    /// Why the verdict is what it is, when that needs saying (why destroy leaves it alone).
    pub(crate) reason: Option<String>,
    pub(crate) changes: Vec<PlannedChange>,
    /// What the changes deliberately do not do (bootstrap: what differs from the stack but is not touched, such as
    /// extra policies or an immovable path; destroy: what deleting it touches beyond the stack, which stays).
    pub(crate) notes: Vec<String>,
    /// The stack's note on the resource (bootstrap; shown in text when the resource has changes).
    pub(crate) note: String,
    /// Destroy: what uses the resource (a workload, or an IAM entity outside the stack), why it is held back.
    pub(crate) consumers: Vec<Consumer>,
    /// Destroy, a role: when and where IAM last saw it used.
    pub(crate) last_used: Option<LastUsed>,
}

/// Field by field as the derive would, but under the verdict's own keys (`status`/`left_alone` for bootstrap,
/// `action`/`notes` for destroy); `reason` and `notes` only when there are some.
impl<V: Verdict> Serialize for ResourcePlan<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = 5
            + usize::from(self.reason.is_some())
            + usize::from(!self.notes.is_empty())
            + usize::from(!self.note.is_empty())
            + usize::from(!self.consumers.is_empty())
            + usize::from(self.last_used.is_some());
        let mut s = serializer.serialize_struct("ResourcePlan", fields)?;
        s.serialize_field("kind", &self.kind)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field(V::KEY, &self.verdict)?;
        s.serialize_field("ownership", &self.ownership)?;
        match &self.reason {
            Some(reason) => s.serialize_field("reason", reason)?,
            None => s.skip_field("reason")?,
        }
        s.serialize_field("changes", &self.changes)?;
        if self.notes.is_empty() {
            s.skip_field(V::NOTES.0)?;
        } else {
            s.serialize_field(V::NOTES.0, &self.notes)?;
        }
        if self.note.is_empty() {
            s.skip_field("note")?;
        } else {
            s.serialize_field("note", &self.note)?;
        }
        if self.consumers.is_empty() {
            s.skip_field("consumers")?;
        } else {
            s.serialize_field("consumers", &self.consumers)?;
        }
        match &self.last_used {
            Some(used) => s.serialize_field("last_used", used)?,
            None => s.skip_field("last_used")?,
        }
        s.end()
    }
}

/// The plan of a stack in one account: every resource's verdict and changes, and their counts.
#[derive(Debug, Clone, Serialize)]
#[serde(bound = "V: Verdict")]
pub(crate) struct Plan<V: Verdict = Status> {
    pub(crate) stack: String,
    pub(crate) account_id: String,
    pub(crate) partition: String,
    pub(crate) region: String,
    /// The operator's IAM user whose managed policies are checked, if any (bootstrap's: destroy never changes
    /// them, and its JSON does not name the user).
    #[serde(skip_serializing_if = "user_unnamed::<V>")]
    pub(crate) user: Option<String>,
    pub(crate) resources: Vec<ResourcePlan<V>>,
    pub(crate) summary: V::Summary,
}

fn user_unnamed<V: Verdict>(_: &Option<String>) -> bool {
    !V::NAMES_USER
}

impl<V: Verdict> Plan<V> {
    pub(crate) fn new(
        stack: &str,
        target: &crate::stack::Target,
        user: Option<String>,
        resources: Vec<ResourcePlan<V>>,
    ) -> Plan<V> {
        let mut summary = V::Summary::default();
        for r in &resources {
            r.verdict.count(&r.changes, &mut summary);
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
        self.changes().next().is_some()
    }

    pub(crate) fn changes(&self) -> impl Iterator<Item = &PlannedChange> {
        self.resources.iter().flat_map(|r| r.changes.iter())
    }
}

impl<V: Verdict> fmt::Display for Plan<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} in account {} ({}, {}):",
            V::HEADING,
            self.stack,
            self.account_id,
            self.partition,
            self.region
        )?;
        for r in &self.resources {
            let (mark, verdict) = r.verdict.mark();
            let owner = r.verdict.ownership_note(r.ownership);
            let name = format!("{} {}", r.kind, r.name);
            writeln!(f, "  {mark} {name:<48} {verdict}{owner}")?;
            if let Some(reason) = &r.reason {
                writeln!(f, "      {reason}")?;
            }
            for c in &r.consumers {
                writeln!(f, "      used by {c}")?;
            }
            if let Some(used) = &r.last_used {
                writeln!(f, "      {used}")?;
            }
            for c in &r.changes {
                let consent = if c.needs_consent { "  (needs consent: --adopt)" } else { "" };
                writeln!(f, "      {}{consent}", c.change)?;
            }
            for note in &r.notes {
                writeln!(f, "      {}: {note}", V::NOTES.1)?;
            }
            if !r.note.is_empty() && !r.changes.is_empty() {
                writeln!(f, "      note: {}", r.note)?;
            }
        }
        writeln!(f, "{}", self.summary)
    }
}

// The bootstrap plan: what `bootstrap` creates, updates, or finds unchanged.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Create,
    Update,
    Unchanged,
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

impl Verdict for Status {
    type Summary = PlanSummary;
    const KEY: &'static str = "status";
    const NOTES: (&'static str, &'static str) = ("left_alone", "left alone");
    const HEADING: &'static str = "Stack";
    const NAMES_USER: bool = true;

    fn mark(self) -> (char, &'static str) {
        match self {
            Status::Create => ('+', "create"),
            Status::Update => ('~', "update"),
            Status::Unchanged => ('=', "unchanged"),
        }
    }

    fn ownership_note(self, ownership: Ownership) -> &'static str {
        match ownership {
            Ownership::Foreign => "  [exists, not created by wfboot]",
            _ => "",
        }
    }

    fn count(self, changes: &[PlannedChange], summary: &mut PlanSummary) {
        match self {
            Status::Create => summary.create += 1,
            Status::Update => summary.update += 1,
            Status::Unchanged => summary.unchanged += 1,
        }
        summary.changes += changes.len();
        summary.needing_consent += changes.iter().filter(|c| c.needs_consent).count();
    }
}

impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to create, {} to update, {} unchanged; {} write call{}",
            self.create,
            self.update,
            self.unchanged,
            self.changes,
            crate::wording::plural(self.changes)
        )?;
        if self.needing_consent > 0 {
            write!(f, " ({} on resources wfboot did not create)", self.needing_consent)?;
        }
        f.write_str(".")
    }
}

impl ResourcePlan<Status> {
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
            verdict: status,
            ownership,
            reason: None,
            changes: changes.into_iter().map(|change| PlannedChange { change: change.into(), needs_consent }).collect(),
            notes: left_alone,
            note: String::new(),
            consumers: Vec::new(),
            last_used: None,
        }
    }

    pub(crate) fn with_note(mut self, note: &str) -> Self {
        self.note = note.to_string();
        self
    }
}

// The destroy plan: what `destroy` removes and what it leaves alone, with why. Only resources carrying
// wfboot's ownership tag for this stack are deleted. Deleting one ends every relationship it has, whoever
// made it (a role leaves its instance profiles and loses its policies, a policy is detached from everything),
// so that IAM accepts the deletion; what sits at the other end of such a relationship is never deleted, and
// the plan names it. Every change is one write call, as in the bootstrap plan.

pub(crate) type DestroyPlan = Plan<Action>;
pub(crate) type DestroyResource = ResourcePlan<Action>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    Delete,
    LeftAlone,
    /// The stack's own, but something uses it (its `consumers`): kept, with what would change it, unless `--force`.
    HeldBack,
    /// Not in the account: nothing to do.
    Absent,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct DestroySummary {
    pub(crate) delete: usize,
    pub(crate) left_alone: usize,
    pub(crate) held_back: usize,
    pub(crate) absent: usize,
    /// Write calls the plan needs, all of them.
    pub(crate) changes: usize,
}

impl Verdict for Action {
    type Summary = DestroySummary;
    const KEY: &'static str = "action";
    const NOTES: (&'static str, &'static str) = ("notes", "note");
    const HEADING: &'static str = "Destroy stack";
    const NAMES_USER: bool = false;

    fn mark(self) -> (char, &'static str) {
        match self {
            Action::Delete => ('-', "delete"),
            Action::LeftAlone => ('=', "left alone"),
            Action::HeldBack => ('!', "held back"),
            Action::Absent => ('.', "absent"),
        }
    }

    /// Whose a resource left alone is, its reason says.
    fn ownership_note(self, _: Ownership) -> &'static str {
        ""
    }

    fn count(self, changes: &[PlannedChange], summary: &mut DestroySummary) {
        match self {
            Action::Delete => summary.delete += 1,
            Action::LeftAlone => summary.left_alone += 1,
            Action::HeldBack => summary.held_back += 1,
            Action::Absent => summary.absent += 1,
        }
        summary.changes += changes.len();
    }
}

impl fmt::Display for DestroySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = match self.held_back {
            0 => String::new(),
            n => format!("{n} held back, "),
        };
        write!(
            f,
            "{} to delete, {held}{} left alone, {} absent; {} write call{}.",
            self.delete,
            self.left_alone,
            self.absent,
            self.changes,
            crate::wording::plural(self.changes)
        )
    }
}

impl ResourcePlan<Action> {
    pub(crate) fn absent(kind: Kind, name: &str) -> Self {
        Self::destroy(kind, name, Action::Absent, Ownership::Absent, None)
    }

    pub(crate) fn left_alone(kind: Kind, name: &str, ownership: Ownership, reason: String) -> Self {
        Self::destroy(kind, name, Action::LeftAlone, ownership, Some(reason))
    }

    /// The stack's own resource, kept because of `consumers` (or, with none, for the `reason`).
    pub(crate) fn held_back(kind: Kind, name: &str, reason: String, consumers: Vec<Consumer>) -> Self {
        ResourcePlan { consumers, ..Self::destroy(kind, name, Action::HeldBack, Ownership::Stack, Some(reason)) }
    }

    pub(crate) fn delete(
        kind: Kind,
        name: &str,
        ownership: Ownership,
        changes: Vec<impl Into<Change>>,
        notes: Vec<String>,
    ) -> Self {
        ResourcePlan {
            changes: changes
                .into_iter()
                .map(|change| PlannedChange { change: change.into(), needs_consent: false })
                .collect(),
            notes,
            ..Self::destroy(kind, name, Action::Delete, ownership, None)
        }
    }

    fn destroy(kind: Kind, name: &str, action: Action, ownership: Ownership, reason: Option<String>) -> Self {
        ResourcePlan {
            kind,
            name: name.to_string(),
            verdict: action,
            ownership,
            reason,
            changes: vec![],
            notes: vec![],
            note: String::new(),
            consumers: Vec::new(),
            last_used: None,
        }
    }
}

/// Why a resource `destroy` found is not deleted: it is not this stack's.
pub(crate) fn not_ours(stack: &str, tags: &[(String, String)]) -> String {
    match tags.iter().find(|(k, _)| k == OWNER_TAG) {
        Some((_, other)) => format!("created by wfboot for stack {other}, not {stack}"),
        None => format!("exists, not created by wfboot (no {OWNER_TAG}={stack} tag)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::role;
    use crate::stack::Target;

    fn target() -> Target {
        Target { partition: "aws".into(), account_id: "111122223333".into(), region: "us-east-1".into() }
    }

    /// The JSON of `item` and its keys in the order they are written.
    fn json_keys(item: &impl Serialize) -> (serde_json::Value, Vec<String>) {
        let text = serde_json::to_string(item).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort_by_key(|k| text.find(&format!("\"{k}\":")));
        (value, keys)
    }

    #[test]
    fn each_verb_keeps_its_own_json_keys_and_words_in_the_one_plan_type() {
        let attach =
            role::Change::AttachRolePolicy { role: "R".into(), policy_arn: "arn:aws:iam::aws:policy/A".into() };
        let bootstrap = Plan::new(
            "s",
            &target(),
            None,
            vec![ResourcePlan::new(Kind::Role, "R", Ownership::Stack, vec![attach], vec!["a path".into()])],
        );
        let (json, keys) = json_keys(&bootstrap);
        assert_eq!(keys, ["stack", "account_id", "partition", "region", "user", "resources", "summary"]);
        assert_eq!(json["user"], serde_json::Value::Null, "bootstrap names the user, null when none");
        let (json, keys) = json_keys(&bootstrap.resources[0]);
        assert_eq!(keys, ["kind", "name", "status", "ownership", "changes", "left_alone"]);
        assert_eq!(json["status"], "update");
        assert!(bootstrap.to_string().contains("      left alone: a path\n"));

        let delete = role::Change::DeleteRole { name: "R".into() };
        let destroy = DestroyPlan::new(
            "s",
            &target(),
            None,
            vec![
                DestroyResource::delete(Kind::Role, "R", Ownership::Stack, vec![delete], vec!["a note".into()]),
                DestroyResource::left_alone(Kind::Role, "X", Ownership::Foreign, "not ours".into()),
                DestroyResource::absent(Kind::Role, "Y"),
            ],
        );
        let (_, keys) = json_keys(&destroy);
        assert_eq!(keys, ["stack", "account_id", "partition", "region", "resources", "summary"], "no user");
        let (_, keys) = json_keys(&destroy.resources[0]);
        assert_eq!(keys, ["kind", "name", "action", "ownership", "changes", "notes"]);
        let (json, keys) = json_keys(&destroy.resources[1]);
        assert_eq!(keys, ["kind", "name", "action", "ownership", "reason", "changes"]);
        assert_eq!(json["action"], "left_alone");
        assert_eq!(destroy.summary, DestroySummary { delete: 1, left_alone: 1, held_back: 0, absent: 1, changes: 1 });
        let text = destroy.to_string();
        assert!(text.starts_with("Destroy stack s in account 111122223333 (aws, us-east-1):\n"), "{text}");
        assert!(text.contains("      note: a note\n") && text.contains("      not ours\n"), "{text}");
        assert!(!text.contains("[exists, not created by wfboot]"), "destroy says whose it is in the reason: {text}");
        assert!(text.ends_with("1 to delete, 1 left alone, 1 absent; 1 write call.\n"), "{text}");
    }
}
