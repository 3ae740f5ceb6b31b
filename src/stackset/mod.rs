//! `--org-unit`: the stack as a service-managed CloudFormation StackSet over organisational units. CloudFormation
//! deploys it to every account of the OUs and, with auto-deployment, to every account that joins them later; wfboot
//! reads what is there, plans, checks before the first write, starts the operations and follows them.
//!
//! - [`read`]: the OUs' accounts (Organizations), the StackSet and its instances, trusted access (read-only);
//! - this module: the plan, a value ([`SetPlan`], [`AccountPlan`]) printed in the plan's `+ ~ -` words;
//! - [`write`]: the CloudFormation writes (each with an OperationId), and following an operation to its end.
//!
//! The StackSet cannot hold the operator user's policies (users are per person): that part of the stack is said,
//! never dropped silently (`pipeline::stackset`).

pub(crate) mod read;
pub(crate) mod write;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// The service principal of StackSets' trusted access to AWS Organizations
/// (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stacksets-orgs-activate-trusted-access.html).
pub(crate) const TRUSTED_ACCESS_PRINCIPAL: &str = "member.org.stacksets.cloudformation.amazonaws.com";

/// The command that turns trusted access on, run once in the management account.
pub(crate) const ENABLE_TRUSTED_ACCESS: &str = "aws cloudformation activate-organizations-access";

/// The most OUs one CreateStackInstances call takes (CloudFormation API reference, CreateStackInstances:
/// https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStackInstances.html).
pub(crate) const MAX_OUS_PER_CALL: usize = 50;

/// `wfboot-<stack>`, with any character a StackSet name cannot hold (stack names may have `_` or `.`) as `-`.
pub(crate) fn default_name(stack: &str) -> String {
    let mut name: String =
        format!("wfboot-{stack}").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    name.truncate(128);
    name
}

/// Who calls CloudFormation (CallAs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CallAs {
    /// The management account (SELF).
    #[serde(rename = "self")]
    Management,
    /// A delegated administrator for StackSets (DELEGATED_ADMIN).
    DelegatedAdmin,
}

impl CallAs {
    pub(crate) fn sdk(self) -> aws_sdk_cloudformation::types::CallAs {
        match self {
            CallAs::Management => aws_sdk_cloudformation::types::CallAs::SelfValue,
            CallAs::DelegatedAdmin => aws_sdk_cloudformation::types::CallAs::DelegatedAdmin,
        }
    }
}

/// How CloudFormation runs an operation over the accounts (StackSetOperationPreferences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Preferences {
    pub(crate) failure_tolerance: Amount,
    pub(crate) max_concurrent: Amount,
    /// SOFT_FAILURE_TOLERANCE (true) or STRICT_FAILURE_TOLERANCE.
    pub(crate) soft: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Amount {
    Count(u32),
    Percentage(u32),
}

/// The StackSet as wfboot would have it: its name, template, parameters and tags, rendered from the stack.
#[derive(Debug, Clone)]
pub(crate) struct Desired {
    pub(crate) name: String,
    pub(crate) template: Value,
    pub(crate) parameters: BTreeMap<String, String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) description: String,
}

impl Desired {
    /// The template as sent (compact JSON: CloudFormation's TemplateBody holds at most 51,200 bytes).
    pub(crate) fn body(&self) -> String {
        self.template.to_string()
    }

    /// The template's resources by logical id: (type, name) of each.
    fn resources(&self) -> BTreeMap<String, (String, String)> {
        resources_of(&self.template)
    }

    /// How many resources an account gets from a new stack instance (without the service-linked roles when they are
    /// overridden away).
    pub(crate) fn resource_count(&self, without_service_linked: bool) -> usize {
        self.resources()
            .values()
            .filter(|(t, _)| !(without_service_linked && t == "AWS::IAM::ServiceLinkedRole"))
            .count()
    }
}

/// The StackSet as read (DescribeStackSet).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Deployed {
    pub(crate) id: String,
    pub(crate) status: String,
    pub(crate) permission_model: String,
    #[serde(skip)]
    pub(crate) template: Option<Value>,
    pub(crate) parameters: BTreeMap<String, String>,
    pub(crate) tags: BTreeMap<String, String>,
    /// AutoDeployment (Enabled, RetainStacksOnAccountRemoval), when CloudFormation says.
    pub(crate) auto_deployment: Option<(bool, bool)>,
    pub(crate) managed_execution: Option<bool>,
    pub(crate) capabilities: Vec<String>,
    /// The OUs targeted so far (DescribeStackSet's OrganizationalUnitIds).
    pub(crate) org_units: Vec<String>,
}

/// One stack instance (ListStackInstances).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Instance {
    pub(crate) account: String,
    /// CURRENT, OUTDATED or INOPERABLE.
    pub(crate) status: String,
    /// Its last operation's outcome (SUCCEEDED, FAILED, RUNNING, ...), when CloudFormation says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detailed_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) organizational_unit_id: Option<String>,
}

impl Instance {
    /// Its stack holds the template's resources: CURRENT, or OUTDATED only because its last operation has not
    /// reached it yet. A failed instance's stack rolled back (or never started).
    pub(crate) fn deployed(&self) -> bool {
        !matches!(self.detailed_status.as_deref(), Some("FAILED" | "INOPERABLE" | "CANCELLED" | "FAILED_IMPORT"))
            && self.status != "INOPERABLE"
    }

    pub(crate) fn failed(&self) -> bool {
        !self.deployed()
    }

    /// "OUTDATED (FAILED): <reason>".
    pub(crate) fn describe(&self) -> String {
        let mut s = self.status.clone();
        if let Some(d) = self.detailed_status.as_deref().filter(|d| *d != "SUCCEEDED") {
            s += &format!(" ({d})");
        }
        if let Some(r) = &self.status_reason {
            s += &format!(": {r}");
        }
        s
    }
}

/// `+ create`, `~ update`, `- delete`, `= unchanged`: the plan's own marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mark {
    Create,
    Update,
    Delete,
    Unchanged,
}

impl Mark {
    fn sign(self) -> char {
        match self {
            Mark::Create => '+',
            Mark::Update => '~',
            Mark::Delete => '-',
            Mark::Unchanged => '=',
        }
    }
}

/// One line of the StackSet's own plan: a resource of its template, a parameter, a tag or a setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Item {
    pub(crate) mark: Mark,
    /// "role AWSBatchServiceRole", "parameter CreateServiceLinkedRoles", "tag team", "auto-deployment".
    pub(crate) what: String,
    /// The logical id of a template resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) logical_id: Option<String>,
    /// What changes: the properties of a resource, old -> new of a value.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) detail: String,
}

/// The StackSet against the rendered one: what CreateStackSet or UpdateStackSet would change.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SetPlan {
    pub(crate) name: String,
    /// Create (absent), Update (differs) or Unchanged.
    pub(crate) action: Mark,
    pub(crate) items: Vec<Item>,
}

impl SetPlan {
    pub(crate) fn changes(&self) -> bool {
        self.action != Mark::Unchanged
    }

    /// Only the lines that change something.
    fn changed(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.mark != Mark::Unchanged)
    }
}

/// The settings every wfboot StackSet has: auto-deployment on, stacks kept when an account leaves (see
/// docs/org-units.md: CloudFormation would otherwise delete the roles of an account moved out of the OU, in use or
/// not), managed execution on (CloudFormation queues what conflicts instead of refusing it).
pub(crate) const AUTO_DEPLOYMENT: (bool, bool) = (true, true);
pub(crate) const MANAGED_EXECUTION: bool = true;

/// The StackSet's plan: `deployed` (None: it does not exist) against `desired`. Pure.
pub(crate) fn plan_set(desired: &Desired, deployed: Option<&Deployed>) -> SetPlan {
    let Some(d) = deployed else {
        let mut items: Vec<Item> = desired
            .resources()
            .into_iter()
            .map(|(id, (t, n))| Item {
                mark: Mark::Create,
                what: format!("{} {n}", word(&t)),
                logical_id: Some(id),
                detail: String::new(),
            })
            .collect();
        items.extend(desired.parameters.iter().map(|(k, v)| Item {
            mark: Mark::Create,
            what: format!("parameter {k}"),
            logical_id: None,
            detail: v.clone(),
        }));
        items.extend(desired.tags.iter().map(|(k, v)| Item {
            mark: Mark::Create,
            what: format!("tag {k}"),
            logical_id: None,
            detail: v.clone(),
        }));
        items.push(setting(Mark::Create, "auto-deployment", "on, stacks kept when an account leaves an OU"));
        items.push(setting(Mark::Create, "managed execution", "on"));
        return SetPlan { name: desired.name.clone(), action: Mark::Create, items };
    };
    let mut items = Vec::new();
    let before = d.template.as_ref().map(resources_of).unwrap_or_default();
    let after = desired.resources();
    // A resource's properties, and its other keys (Condition, DeletionPolicy, ...) beside them.
    let props = |t: &Value, id: &str| {
        let mut r = t["Resources"][id].clone();
        if let Some(o) = r.as_object_mut() {
            if let Some(Value::Object(p)) = o.remove("Properties") {
                o.extend(p);
            }
        }
        r
    };
    for (id, (t, n)) in &after {
        let what = format!("{} {n}", word(t));
        let (mark, detail) = match (before.get(id), &d.template) {
            (Some(_), Some(old)) => {
                let changed = changed_keys(&props(old, id), &props(&desired.template, id));
                match changed.is_empty() {
                    true => (Mark::Unchanged, String::new()),
                    false => (Mark::Update, changed.join(", ")),
                }
            }
            _ => (Mark::Create, String::new()),
        };
        items.push(Item { mark, what, logical_id: Some(id.clone()), detail });
    }
    for (id, (t, n)) in before.iter().filter(|(id, _)| !after.contains_key(*id)) {
        items.push(Item {
            mark: Mark::Delete,
            what: format!("{} {n}", word(t)),
            logical_id: Some(id.clone()),
            detail: String::new(),
        });
    }
    // The template's other parts (its description, metadata, parameters, conditions).
    let rest = |t: &Value| {
        let mut t = t.clone();
        if let Some(o) = t.as_object_mut() {
            o.remove("Resources");
        }
        t
    };
    match &d.template {
        None => items.push(setting(Mark::Update, "template", "what CloudFormation holds is not this JSON template")),
        Some(old) => {
            let changed = changed_keys(&rest(old), &rest(&desired.template));
            if !changed.is_empty() {
                items.push(setting(Mark::Update, "template", &changed.join(", ")));
            }
        }
    }
    items.extend(map_items("parameter", &d.parameters, &desired.parameters));
    items.extend(map_items("tag", &d.tags, &desired.tags));
    if d.auto_deployment.is_some_and(|a| a != AUTO_DEPLOYMENT) {
        items.push(setting(Mark::Update, "auto-deployment", "on, stacks kept when an account leaves an OU"));
    }
    if d.managed_execution.is_some_and(|m| m != MANAGED_EXECUTION) {
        items.push(setting(Mark::Update, "managed execution", "off -> on"));
    }
    if !d.capabilities.iter().any(|c| c == "CAPABILITY_NAMED_IAM") {
        items.push(setting(Mark::Update, "capabilities", "CAPABILITY_NAMED_IAM"));
    }
    let action = if items.iter().any(|i| i.mark != Mark::Unchanged) { Mark::Update } else { Mark::Unchanged };
    SetPlan { name: desired.name.clone(), action, items }
}

fn setting(mark: Mark, what: &str, detail: &str) -> Item {
    Item { mark, what: what.into(), logical_id: None, detail: detail.into() }
}

fn map_items<'a>(
    what: &'a str,
    before: &'a BTreeMap<String, String>,
    after: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = Item> + 'a {
    let added_or_changed = after.iter().map(move |(k, v)| match before.get(k) {
        None => Item { mark: Mark::Create, what: format!("{what} {k}"), logical_id: None, detail: v.clone() },
        Some(old) if old != v => {
            Item { mark: Mark::Update, what: format!("{what} {k}"), logical_id: None, detail: format!("{old} -> {v}") }
        }
        Some(_) => Item { mark: Mark::Unchanged, what: format!("{what} {k}"), logical_id: None, detail: v.clone() },
    });
    let removed = before.iter().filter(|(k, _)| !after.contains_key(*k)).map(move |(k, v)| Item {
        mark: Mark::Delete,
        what: format!("{what} {k}"),
        logical_id: None,
        detail: v.clone(),
    });
    added_or_changed.chain(removed)
}

/// The keys of two objects whose values differ (the properties of a resource, the parts of a template), in order.
fn changed_keys(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (o, n) = (old.as_object().unwrap_or(&empty), new.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| o.get(*k) != n.get(*k)).cloned().collect()
}

/// (type, name) of each resource of a template, by logical id; the name from the property CloudFormation names it by.
fn resources_of(template: &Value) -> BTreeMap<String, (String, String)> {
    let Some(resources) = template["Resources"].as_object() else { return BTreeMap::new() };
    resources
        .iter()
        .map(|(id, r)| {
            let t = r["Type"].as_str().unwrap_or_default().to_string();
            let p = &r["Properties"];
            let name = ["RoleName", "ManagedPolicyName", "InstanceProfileName", "AWSServiceName"]
                .iter()
                .find_map(|k| p[*k].as_str())
                .unwrap_or(id)
                .to_string();
            (id.clone(), (t, name))
        })
        .collect()
}

/// The word wfboot's plans use for a template resource's type.
fn word(cloudformation_type: &str) -> &str {
    match cloudformation_type {
        "AWS::IAM::Role" => "role",
        "AWS::IAM::ManagedPolicy" => "policy",
        "AWS::IAM::InstanceProfile" => "instance profile",
        "AWS::IAM::ServiceLinkedRole" => "service-linked role",
        other => other,
    }
}

/// What happens to one account of the OUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub(crate) enum Verdict {
    /// No stack instance yet: CreateStackInstances gives it one.
    Add,
    /// Its instance is deployed and stays as it is.
    Current,
    /// Its instance is deployed; UpdateStackSet brings the template's changes to it.
    Update,
    /// Its instance failed (or is outdated after a failure): run again (UpdateStackInstances).
    Redeploy,
    /// Not deployed to, for `reason` (a resource CloudFormation does not own, the management account, ...).
    HeldBack { reason: String },
    /// An SCP denies what the template creates there: nothing is written for it.
    Refused { reason: String },
    /// A suspended account, which CloudFormation skips.
    Skipped { reason: String },
}

/// One account of the OUs: where it sits, what it has, and its verdict.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AccountPlan {
    pub(crate) account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// The target OU (an --org-unit) it is under.
    pub(crate) org_unit: String,
    #[serde(flatten)]
    pub(crate) verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instance: Option<Instance>,
    /// Its instance gets ParameterOverrides CreateServiceLinkedRoles=false: these service-linked roles exist.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) existing_service_linked_roles: Vec<String>,
    /// Whether wfboot read the account (sts:AssumeRole), and why not when it could not.
    pub(crate) read: Read,
    /// The template resources its stack instance creates or changes.
    pub(crate) changes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub(crate) enum Read {
    #[serde(rename = "read")]
    Done,
    /// --skip-account-reads.
    Skipped,
    /// sts:AssumeRole or a read failed: why.
    Failed(String),
    /// Not read: nothing is deployed there whatever it holds (held back, refused, the management account).
    NotNeeded,
}

impl AccountPlan {
    pub(crate) fn changes_something(&self) -> bool {
        matches!(self.verdict, Verdict::Add | Verdict::Update | Verdict::Redeploy)
    }

    /// "account 111122223333 (prod)".
    pub(crate) fn who(&self) -> String {
        match &self.name {
            Some(n) => format!("account {} ({n})", self.account_id),
            None => format!("account {}", self.account_id),
        }
    }

    fn line(&self) -> String {
        let (sign, what) = match &self.verdict {
            Verdict::Add => ('+', format!("gets a stack instance: {} resources", self.changes)),
            Verdict::Current => ('=', "current".to_string()),
            Verdict::Update => ('~', format!("updated by the StackSet's update: {} resources", self.changes)),
            Verdict::Redeploy => (
                '~',
                format!(
                    "deployed again: {}",
                    self.instance.as_ref().map(Instance::describe).unwrap_or_else(|| "failed".into())
                ),
            ),
            Verdict::HeldBack { reason } => ('!', format!("held back: {reason}")),
            Verdict::Refused { reason } => ('!', format!("refused: {reason}")),
            Verdict::Skipped { reason } => ('!', format!("skipped: {reason}")),
        };
        let mut line = format!("  {sign} {} in {}: {what}", self.who(), self.org_unit);
        if !self.existing_service_linked_roles.is_empty() {
            line += &format!(
                "\n      with CreateServiceLinkedRoles=false (existing: {})",
                self.existing_service_linked_roles.join(", ")
            );
        }
        if let Some(i) = self.instance.as_ref().filter(|i| i.failed() && self.verdict != Verdict::Redeploy) {
            line += &format!("\n      stack instance {}", i.describe());
        }
        if let Read::Failed(why) = &self.read {
            line += &format!("\n      not read ({why}): CloudFormation's own checks only");
        }
        line
    }
}

/// The whole plan of a `--org-unit` run: the StackSet, the target OUs, and every account under them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    pub(crate) stack_set: SetPlan,
    pub(crate) region: String,
    pub(crate) call_as: CallAs,
    /// Each --org-unit: its id, what it is called, and whether the StackSet targets it yet.
    pub(crate) org_units: Vec<OrgUnit>,
    pub(crate) accounts: Vec<AccountPlan>,
    /// What the StackSet does not hold (the operator user's policies), and other things said once.
    pub(crate) notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct OrgUnit {
    pub(crate) id: String,
    /// "OU /workloads" or "the root".
    pub(crate) name: String,
    pub(crate) targeted: bool,
    /// Why the whole OU is refused (an SCP at it or above it denies what the template creates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refused: Option<String>,
}

impl Plan {
    /// Any write: the StackSet created or updated, an OU targeted, an instance added or deployed again.
    pub(crate) fn has_changes(&self) -> bool {
        self.stack_set.changes()
            || self.new_org_units().next().is_some()
            || self.accounts.iter().any(AccountPlan::changes_something)
    }

    /// The OUs CreateStackInstances targets for the first time (not refused).
    pub(crate) fn new_org_units(&self) -> impl Iterator<Item = &OrgUnit> {
        self.org_units.iter().filter(|o| !o.targeted && o.refused.is_none())
    }

    pub(crate) fn held_back(&self) -> impl Iterator<Item = &AccountPlan> {
        self.accounts.iter().filter(|a| matches!(a.verdict, Verdict::HeldBack { .. }))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stack_set;
        let verdict = match s.action {
            Mark::Create => "create",
            Mark::Update => "update",
            _ => "unchanged",
        };
        writeln!(f, "StackSet {} (service-managed, {}): {verdict}", s.name, self.region)?;
        for i in s.changed() {
            let detail = if i.detail.is_empty() { String::new() } else { format!(": {}", i.detail) };
            writeln!(f, "  {} {}{detail}", i.mark.sign(), i.what)?;
        }
        let unchanged = s.items.iter().filter(|i| i.mark == Mark::Unchanged).count();
        if unchanged > 0 && s.action != Mark::Create {
            writeln!(f, "  = {unchanged} unchanged")?;
        }
        writeln!(f, "Targets:")?;
        for o in &self.org_units {
            let state = match (&o.refused, o.targeted) {
                (Some(why), _) => format!("refused: {why}"),
                (None, true) => "targeted".into(),
                (None, false) => {
                    "to target (CreateStackInstances; auto-deployment covers the accounts that join later)".into()
                }
            };
            let sign = match (&o.refused, o.targeted) {
                (Some(_), _) => '!',
                (None, true) => '=',
                (None, false) => '+',
            };
            let n = self.accounts.iter().filter(|a| a.org_unit == o.id).count();
            writeln!(f, "  {sign} {} ({}, {n} account{}): {state}", o.id, o.name, crate::wording::plural(n))?;
        }
        writeln!(f, "Accounts:")?;
        for a in &self.accounts {
            writeln!(f, "{}", a.line())?;
        }
        for n in &self.notes {
            writeln!(f, "Note: {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_default_stack_set_name_holds_only_what_cloudformation_accepts() {
        assert_eq!(default_name("slim-workflow"), "wfboot-slim-workflow");
        assert_eq!(default_name("my_stack.v2"), "wfboot-my-stack-v2");
        assert!(crate::cli::valid_stack_set_name(&default_name("x_y")));
    }

    fn desired(tag: &str) -> Desired {
        Desired {
            name: "wfboot-s".into(),
            template: json!({"Description": "d", "Resources": {
                "RoleA": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "A", "Tags": [{"Key": "team", "Value": tag}]}},
                "ProfileA": {"Type": "AWS::IAM::InstanceProfile", "Properties": {"InstanceProfileName": "PA"}}}}),
            parameters: BTreeMap::from([("CreateServiceLinkedRoles".into(), "true".into())]),
            tags: BTreeMap::from([("wfboot:stack".into(), "s".into()), ("team".into(), tag.into())]),
            description: String::new(),
        }
    }

    fn deployed(d: &Desired) -> Deployed {
        Deployed {
            template: Some(d.template.clone()),
            parameters: d.parameters.clone(),
            tags: d.tags.clone(),
            auto_deployment: Some(AUTO_DEPLOYMENT),
            managed_execution: Some(true),
            capabilities: vec!["CAPABILITY_NAMED_IAM".into()],
            permission_model: "SERVICE_MANAGED".into(),
            ..Deployed::default()
        }
    }

    #[test]
    fn a_stack_set_that_matches_has_nothing_to_change_and_a_tag_change_is_one_update_resource_by_resource() {
        let d = desired("a");
        assert_eq!(plan_set(&d, Some(&deployed(&d))).action, Mark::Unchanged);
        let p = plan_set(&desired("b"), Some(&deployed(&d)));
        assert_eq!(p.action, Mark::Update);
        let changed: Vec<String> = p.changed().map(|i| format!("{} {} {}", i.mark.sign(), i.what, i.detail)).collect();
        assert_eq!(changed, ["~ role A Tags", "~ tag team a -> b"]);
    }

    #[test]
    fn a_new_stack_set_lists_every_resource_to_create() {
        let p = plan_set(&desired("a"), None);
        assert_eq!(p.action, Mark::Create);
        let created: Vec<&str> = p.items.iter().filter(|i| i.logical_id.is_some()).map(|i| i.what.as_str()).collect();
        assert_eq!(created, ["instance profile PA", "role A"]);
        assert!(p.items.iter().any(|i| i.what == "auto-deployment"));
    }

    #[test]
    fn a_resource_gone_from_the_template_is_a_delete_and_turned_off_settings_are_updates() {
        let d = desired("a");
        let mut old = deployed(&d);
        old.template.as_mut().unwrap()["Resources"]["RoleB"] =
            json!({"Type": "AWS::IAM::Role", "Properties": {"RoleName": "B"}});
        old.managed_execution = Some(false);
        let p = plan_set(&d, Some(&old));
        let changed: Vec<String> = p.changed().map(|i| format!("{} {}", i.mark.sign(), i.what)).collect();
        assert_eq!(changed, ["- role B", "~ managed execution"]);
    }
}
