//! A stack: the declarative description of what wfboot ensures in an account.
//!
//! Stacks are TOML files (`profiles/*.toml`) that name policies, roles, instance profiles, service-linked roles
//! and the operator's managed policies; their documents are JSON templates (`service_roles/*.json`). Loading
//! validates everything that can be checked without AWS, so a bad stack never reaches the account.

pub(crate) mod builtin;
pub(crate) mod harden;
pub(crate) mod partitions;
pub(crate) mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::wording::plural;
pub(crate) use template::Target;

// IAM quotas (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
const ROLE_NAME_MAX: usize = 64;
const POLICY_NAME_MAX: usize = 128;
const PROFILE_NAME_MAX: usize = 128;
const PATH_MAX: usize = 512;
const DESCRIPTION_MAX: usize = 1000;
const TRUST_DOCUMENT_MAX: usize = 2048;
const MANAGED_POLICY_DOCUMENT_MAX: usize = 6144;
const MANAGED_POLICIES_PER_ROLE_MAX: usize = 20;

/// Managed policies AWS has deprecated, with what to use instead.
const DEPRECATED_POLICIES: &[(&str, &str)] = &[
    ("AWSLambdaFullAccess", "AWSLambda_FullAccess"),
    ("service-role/AmazonEC2SpotFleetRole", "service-role/AmazonEC2SpotFleetTaggingRole"),
    ("AmazonEC2SpotFleetRole", "service-role/AmazonEC2SpotFleetTaggingRole"),
    ("AWSLambdaReadOnlyAccess", "AWSLambda_ReadOnlyAccess"),
];

/// What to use instead of a managed policy AWS has deprecated, by its name after `policy/` (with or without
/// its path, e.g. `service-role/AmazonEC2SpotFleetRole` or `AmazonEC2SpotFleetRole`).
pub(crate) fn deprecated_replacement(name: &str) -> Option<&'static str> {
    let short = name.rsplit('/').next().unwrap_or(name);
    DEPRECATED_POLICIES.iter().find(|(old, _)| *old == name || *old == short).map(|(_, new)| *new)
}

// ------------------------------------------------------------------------------------------------ file format

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StackFile {
    name: String,
    #[serde(default)]
    description: String,
    /// Directory of the templates, relative to the stack file (default `../service_roles`).
    templates: Option<String>,
    /// The permissions boundary of every role (a customer managed policy's name, or a policy ARN).
    permissions_boundary: Option<String>,
    /// Tags put on every role, policy and instance profile, beside `wfboot:stack`.
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// The only accounts the stack may be applied to or destroyed in (empty: any).
    #[serde(default)]
    allowed_accounts: Vec<String>,
    user: Option<UserFile>,
    #[serde(default)]
    policy: Vec<PolicyFile>,
    #[serde(default)]
    role: Vec<RoleFile>,
    #[serde(default)]
    instance_profile: Vec<InstanceProfileFile>,
    #[serde(default)]
    service_linked_role: Vec<ServiceLinkedRoleFile>,
    /// `wfboot lint` warnings and suggestions kept on purpose, each with its reason.
    #[serde(default)]
    keep: Vec<KeepFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeepFile {
    rule: String,
    role: Option<String>,
    policy: Option<String>,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    #[serde(default)]
    managed_policies: Vec<String>,
    /// Names of the stack's own policies (`[[policy]]`) the operator's user gets, attached like the managed ones.
    #[serde(default)]
    customer_policies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    name: String,
    path: Option<String>,
    #[serde(default)]
    description: String,
    document: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    name: String,
    path: Option<String>,
    #[serde(default)]
    description: String,
    trust: String,
    #[serde(default)]
    managed_policies: Vec<String>,
    #[serde(default)]
    customer_policies: Vec<String>,
    /// This role's boundary instead of the stack's; `""`: none.
    permissions_boundary: Option<String>,
    /// Said in the plan when the role is created or changed (what it is for, what replaces it).
    #[serde(default)]
    note: String,
    /// Actions the role must be allowed for its job, checked by `wfboot verify` (e.g. `batch:SubmitJob`).
    #[serde(default)]
    must_allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceProfileFile {
    name: String,
    path: Option<String>,
    role: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceLinkedRoleFile {
    service: String,
}

// ------------------------------------------------------------------------------------------------ loaded stack

/// A document template and the file it came from.
#[derive(Debug, Clone)]
pub(crate) struct TemplateFile {
    pub(crate) name: String,
    pub(crate) text: String,
}

#[derive(Debug, Clone)]
pub(crate) struct PolicySpec {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) description: String,
    pub(crate) document: TemplateFile,
}

#[derive(Debug, Clone)]
pub(crate) struct RoleSpec {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) description: String,
    pub(crate) trust: TemplateFile,
    /// ARN templates of AWS-managed policies.
    pub(crate) managed_policies: Vec<String>,
    /// Names of the stack's own policies.
    pub(crate) customer_policies: Vec<String>,
    /// This role's own boundary setting, over the stack's.
    pub(crate) permissions_boundary: RoleBoundary,
    pub(crate) note: String,
    /// Actions the role must be allowed for its job (`wfboot verify` simulates them with the role as principal).
    pub(crate) must_allow: Vec<String>,
}

/// A role's permissions boundary as its stack entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoleBoundary {
    /// The stack's (`permissions_boundary` at the top, or `--permissions-boundary`).
    Stack,
    /// `permissions_boundary = ""`: none, whatever the stack's is.
    None,
    /// Its own: an ARN template.
    Own(String),
}

#[derive(Debug, Clone)]
pub(crate) struct InstanceProfileSpec {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) role: String,
}

/// A `wfboot lint` finding the stack keeps on purpose (`[[keep]]`): a warning or suggestion of `rule` on the role or
/// policy `resource` (as findings name it: ``role `NAME` ``), and why it is kept.
#[derive(Debug, Clone)]
pub(crate) struct Keep {
    pub(crate) rule: String,
    pub(crate) resource: String,
    pub(crate) reason: String,
}

/// A validated stack, not yet rendered for an account.
#[derive(Debug, Clone)]
pub(crate) struct Stack {
    pub(crate) name: String,
    pub(crate) description: String,
    /// "built-in" or the file it was read from.
    pub(crate) source: String,
    /// ARN templates of the managed policies the operator's user needs.
    pub(crate) user_policies: Vec<String>,
    /// Names of the stack's own policies the operator's user needs.
    pub(crate) user_customer_policies: Vec<String>,
    pub(crate) policies: Vec<PolicySpec>,
    pub(crate) roles: Vec<RoleSpec>,
    pub(crate) instance_profiles: Vec<InstanceProfileSpec>,
    pub(crate) service_linked_roles: Vec<String>,
    /// ARN template of the roles' permissions boundary (those without their own).
    pub(crate) permissions_boundary: Option<String>,
    /// The stack's tags (`[tags]` and `--tag`), on every role, policy and instance profile.
    pub(crate) tags: BTreeMap<String, String>,
    /// Lint findings kept on purpose.
    pub(crate) keep: Vec<Keep>,
    /// `allowed_accounts`: the only accounts the stack may be written to (empty: any).
    pub(crate) allowed_accounts: Vec<String>,
}

/// A 12-digit AWS account id.
pub(crate) fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

impl Stack {
    /// Why `account` may not be written to, if it may not: the stack's `allowed_accounts` and `--expect-account`
    /// (`expected`) must both allow it, each when set. What a wrong `AWS_PROFILE` in CI would otherwise write to
    /// (Terraform's AWS provider has `allowed_account_ids` for the same reason).
    pub(crate) fn account_refusal(&self, expected: &[String], account: &str) -> Option<String> {
        let refusals: Vec<String> =
            [(&self.allowed_accounts[..], "the stack's allowed_accounts"), (expected, "--expect-account")]
                .into_iter()
                .filter(|(ids, _)| !ids.is_empty() && !ids.iter().any(|id| id == account))
                .map(|(ids, from)| format!("{from} ({})", ids.join(", ")))
                .collect();
        (!refusals.is_empty()).then(|| format!("account {account} is not allowed by {}", refusals.join(" nor by ")))
    }

    /// The caller's account, refused as a usage error before any write when [`Stack::account_refusal`] says so.
    pub(crate) fn check_account(&self, expected: &[String], account: &str) -> Result<()> {
        match self.account_refusal(expected, account) {
            None => Ok(()),
            Some(why) => Err(Error::usage(format!("the caller's {why}; nothing was written")).with_help(
                "the credentials point at another account than intended: check --profile, AWS_PROFILE and the \
                 AWS_* variables (`wfboot whoami`), or change the allowed accounts",
            )),
        }
    }

    /// `--permissions-boundary` and `--tag`: the boundary replaces the stack's (roles with their own keep it), the
    /// tags are added to the stack's (a key given again takes the flag's value). Checked like the stack's own.
    pub(crate) fn with_flags(mut self, boundary: Option<&str>, tags: &[(String, String)]) -> Result<Stack> {
        if let Some(b) = boundary {
            let arn = boundary_arn_template(b)
                .map_err(|e| Error::usage(format!("--permissions-boundary: {e}")).with_help(BOUNDARY_HELP))?;
            self.permissions_boundary = Some(arn);
        }
        for (k, v) in tags {
            self.tags.insert(k.clone(), v.clone());
        }
        Ok(self)
    }

    /// `export --name-suffix`: every role, customer policy and instance profile named with `suffix` appended, and
    /// every reference to them (the stack's own lists, and ARNs of them in its documents, as `:role/PATHNAME"`),
    /// so that a second copy of the stack can live in the same account (IAM names are account-wide; a StackSet
    /// deploying to two regions of one account needs two names).
    pub(crate) fn with_name_suffix(mut self, suffix: &str) -> Result<Stack> {
        if suffix.is_empty() {
            return Ok(self);
        }
        if !suffix.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)) {
            return Err(Error::usage(format!(
                "--name-suffix `{suffix}`: IAM names allow only letters, digits and _+=,.@-"
            )));
        }
        let mut renames: Vec<(String, String)> = Vec::new();
        let mut problems = Vec::new();
        let mut rename = |kind: &str, path: &str, name: &mut String, max: usize| {
            let new = format!("{name}{suffix}");
            if new.chars().count() > max {
                problems.push(format!("{kind} `{new}` would be longer than IAM's {max} characters"));
            }
            renames.push((format!(":{kind}{path}{name}\""), format!(":{kind}{path}{new}\"")));
            *name = new;
        };
        for p in &mut self.policies {
            rename("policy", &p.path.clone(), &mut p.name, POLICY_NAME_MAX);
        }
        for r in &mut self.roles {
            rename("role", &r.path.clone(), &mut r.name, ROLE_NAME_MAX);
            for c in &mut r.customer_policies {
                c.push_str(suffix);
            }
        }
        for p in &mut self.instance_profiles {
            rename("instance-profile", &p.path.clone(), &mut p.name, PROFILE_NAME_MAX);
            p.role.push_str(suffix);
        }
        for c in &mut self.user_customer_policies {
            c.push_str(suffix);
        }
        if !problems.is_empty() {
            return Err(Error::usage(format!("--name-suffix: {}", problems.join("; "))));
        }
        let redo = |t: &mut TemplateFile| {
            for (from, to) in &renames {
                t.text = t.text.replace(from.as_str(), to);
            }
        };
        self.policies.iter_mut().for_each(|p| redo(&mut p.document));
        self.roles.iter_mut().for_each(|r| redo(&mut r.trust));
        Ok(self)
    }

    /// The boundary ARN template of `role` (its own, the stack's, or none).
    pub(crate) fn boundary_of<'a>(&'a self, role: &'a RoleSpec) -> Option<&'a str> {
        match &role.permissions_boundary {
            RoleBoundary::Stack => self.permissions_boundary.as_deref(),
            RoleBoundary::None => None,
            RoleBoundary::Own(arn) => Some(arn),
        }
    }

    /// `--stack NAME|FILE`: a built-in stack by name, or a stack file by path. `None` is the default stack.
    pub(crate) fn resolve(spec: Option<&str>) -> Result<Stack> {
        let (text, source, file) = locate(spec)?;
        Stack::parse(&text, &source, file.as_deref())
    }

    /// For `wfboot lint`: the stack `spec` names as far as it can be built, with every problem found while
    /// loading it (not only the first). `None` when the file is not a stack at all (TOML or unknown keys).
    pub(crate) fn resolve_for_lint(spec: Option<&str>) -> Result<(String, Option<Stack>, Vec<String>)> {
        let (text, source, file) = locate(spec)?;
        let raw: StackFile = match toml::from_str(&text) {
            Ok(raw) => raw,
            Err(e) => return Ok((source, None, vec![format!("invalid stack file: {}", e.to_string().trim_end())])),
        };
        let dirs = template_dirs(file.as_deref(), raw.templates.as_deref());
        let mut problems = Vec::new();
        let stack = build(raw, &source, &dirs, &mut problems);
        Ok((source, Some(stack), problems))
    }

    #[cfg(test)]
    pub(crate) fn load_file(path: &Path) -> Result<Stack> {
        let text =
            read_text(path).map_err(|e| Error::input(format!("cannot read stack file `{}`: {e}", path.display())))?;
        Stack::parse(&text, &path.display().to_string(), Some(path))
    }

    /// Parse and validate a stack. `file` is where it was read from (for template look-up), if anywhere.
    pub(crate) fn parse(text: &str, source: &str, file: Option<&Path>) -> Result<Stack> {
        let raw: StackFile = toml::from_str(text).map_err(|e| {
            Error::input(format!("{source}: invalid stack file\n{e}"))
                .with_help("see profiles/slim-workflow.toml for the format; docs/stack-format.md lists every key")
        })?;
        let dirs = template_dirs(file, raw.templates.as_deref());
        let mut problems = Vec::new();
        let stack = build(raw, source, &dirs, &mut problems);
        if problems.is_empty() {
            // A full rendering with the longest possible values checks placeholders, JSON and size quotas.
            stack.render_with(&Target::worst_case(), false).map_err(|e| e.context(source))?;
            Ok(stack)
        } else {
            let list = problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n");
            Err(Error::input(format!(
                "{source}: invalid stack ({} problem{})\n{list}",
                problems.len(),
                plural(problems.len())
            ))
            .with_help("fix the stack file; nothing was sent to AWS"))
        }
    }

    /// Fill in every template for `target` and build the exact ARNs and documents to ensure.
    pub(crate) fn render(&self, target: &Target) -> Result<Desired> {
        self.render_with(target, true)
    }

    /// `strict`: also check that literal ARNs are in the target's partition (not when checking sizes at load).
    fn render_with(&self, target: &Target, strict: bool) -> Result<Desired> {
        let policy_arn =
            |p: &PolicySpec| crate::arn::iam(&target.partition, &target.account_id, "policy", &p.path, &p.name);
        let mut policies = Vec::new();
        for p in &self.policies {
            let document = p.render_document(target)?;
            policies.push(DesiredPolicy {
                name: p.name.clone(),
                path: p.path.clone(),
                arn: policy_arn(p),
                description: p.description.clone(),
                document,
                tags: self.tags.clone(),
            });
        }
        let mut roles = Vec::new();
        for r in &self.roles {
            let trust = r.render_trust(target)?;
            let mut policy_arns = Vec::new();
            for m in &r.managed_policies {
                policy_arns
                    .push(render_managed_arn(m, target, strict).map_err(|e| e.context(format!("role `{}`", r.name)))?);
            }
            for c in &r.customer_policies {
                let spec = self.policies.iter().find(|p| &p.name == c).expect("validated at load");
                policy_arns.push(policy_arn(spec));
            }
            let permissions_boundary = match self.boundary_of(r) {
                Some(b) => Some(
                    render_managed_arn(b, target, strict)
                        .map_err(|e| e.context(format!("role `{}`: permissions boundary", r.name)))?,
                ),
                None => None,
            };
            roles.push(DesiredRole {
                name: r.name.clone(),
                path: r.path.clone(),
                description: r.description.clone(),
                trust,
                policy_arns,
                permissions_boundary,
                tags: self.tags.clone(),
                note: r.note.clone(),
            });
        }
        let mut user_policies = Vec::new();
        for m in &self.user_policies {
            user_policies.push(render_managed_arn(m, target, strict).map_err(|e| e.context("[user]"))?);
        }
        for c in &self.user_customer_policies {
            let spec = self.policies.iter().find(|p| &p.name == c).expect("validated at load");
            user_policies.push(policy_arn(spec));
        }
        Ok(Desired {
            stack: self.name.clone(),
            target: target.clone(),
            user_policies,
            policies,
            roles,
            instance_profiles: self
                .instance_profiles
                .iter()
                .map(|p| DesiredInstanceProfile {
                    name: p.name.clone(),
                    path: p.path.clone(),
                    role: p.role.clone(),
                    tags: self.tags.clone(),
                })
                .collect(),
            service_linked_roles: self.service_linked_roles.clone(),
        })
    }
}

/// The text of the stack `spec` names, where it came from ("built-in" or its path), and its file.
fn locate(spec: Option<&str>) -> Result<(String, String, Option<PathBuf>)> {
    let spec = spec.unwrap_or(builtin::DEFAULT_STACK);
    if let Some(text) = builtin::profile(spec) {
        return Ok((text.to_string(), "built-in".to_string(), None));
    }
    let path = Path::new(spec);
    if path.is_file() {
        let text =
            read_text(path).map_err(|e| Error::input(format!("cannot read stack file `{}`: {e}", path.display())))?;
        return Ok((text, path.display().to_string(), Some(path.to_path_buf())));
    }
    let known = builtin::names().collect::<Vec<_>>().join(", ");
    if spec.contains('/') || spec.ends_with(".toml") {
        Err(Error::input(format!("stack file `{spec}` does not exist"))
            .with_help(format!("give the path to a stack .toml file, or one of the built-in stacks: {known}")))
    } else {
        Err(Error::input(format!("unknown stack `{spec}`"))
            .with_help(format!("built-in stacks: {known} (see `wfboot stacks`); or give the path to a .toml file")))
    }
}

/// A text file of the user's (a stack, a document template, an account list), without the UTF-8 byte order
/// mark some editors put at its start (Notepad did by default for years): the mark says how the file is
/// encoded and is no part of its text. RFC 8259 section 8.1 lets a JSON parser ignore it; serde_json and the
/// toml crate refuse it ("expected value at line 1 column 1"), so it is dropped here, once, for every file.
pub(crate) fn read_text(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

fn template_dirs(file: Option<&Path>, templates: Option<&str>) -> Vec<PathBuf> {
    let Some(dir) = file.map(|f| f.parent().unwrap_or(Path::new(".")).to_path_buf()) else {
        return Vec::new();
    };
    match templates {
        Some(t) => vec![dir.join(t)],
        None => vec![dir.join("../service_roles"), dir],
    }
}

fn load_template(name: &str, dirs: &[PathBuf]) -> Result<TemplateFile, String> {
    if name.contains("..") || Path::new(name).is_absolute() {
        return Err(format!("template `{name}` must be a file name inside the templates directory"));
    }
    for dir in dirs {
        let path = dir.join(name);
        if let Ok(text) = read_text(&path) {
            return Ok(TemplateFile { name: path.display().to_string(), text });
        }
    }
    if let Some(text) = builtin::template(name) {
        return Ok(TemplateFile { name: format!("service_roles/{name}"), text: text.to_string() });
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "template `{name}` not found (looked in {}{}the built-in templates)",
        looked.join(", "),
        if looked.is_empty() { "" } else { " and " }
    ))
}

fn build(raw: StackFile, source: &str, dirs: &[PathBuf], problems: &mut Vec<String>) -> Stack {
    let mut p = |msg: String| problems.push(msg);
    if !valid_name(&raw.name, 64) || raw.name.contains(['+', '=', ',', '@']) {
        p(format!("stack name `{}` must be 1-64 letters, digits, `-`, `_` or `.`", raw.name));
    }
    let mut seen = Seen::default();

    let mut user_policies = Vec::new();
    let (user_managed, user_customer) = raw.user.map(|u| (u.managed_policies, u.customer_policies)).unwrap_or_default();
    for m in user_managed {
        match managed_arn_template(&m) {
            Ok(arn) if !seen.insert("[user] managed policy", &arn, &mut p) => {}
            Ok(arn) => user_policies.push(arn),
            Err(e) => p(format!("[user]: {e}")),
        }
    }

    let mut policies = Vec::new();
    for f in raw.policy {
        let what = format!("policy `{}`", f.name);
        check_name(&what, &f.name, POLICY_NAME_MAX, &mut p);
        seen.insert("policy", &f.name, &mut p);
        let path = check_path(&what, f.path, &mut p);
        check_description(&what, &f.description, &mut p);
        match load_template(&f.document, dirs) {
            Ok(document) => policies.push(PolicySpec { name: f.name, path, description: f.description, document }),
            Err(e) => p(format!("{what}: {e}")),
        }
    }
    let policy_names: BTreeSet<&str> = policies.iter().map(|x| x.name.as_str()).collect();
    let mut user_customer_policies = Vec::new();
    for c in user_customer {
        if !policy_names.contains(c.as_str()) {
            p(format!("[user]: customer policy `{c}` is not defined in this stack (add a [[policy]] named `{c}`)"));
        } else if seen.insert("[user] customer policy", &c, &mut p) {
            user_customer_policies.push(c);
        }
    }

    let mut roles = Vec::new();
    for f in raw.role {
        let what = format!("role `{}`", f.name);
        check_name(&what, &f.name, ROLE_NAME_MAX, &mut p);
        seen.insert("role", &f.name, &mut p);
        let path = check_path(&what, f.path, &mut p);
        check_description(&what, &f.description, &mut p);
        let mut managed = Vec::new();
        let mut own = Seen::default();
        for m in &f.managed_policies {
            match managed_arn_template(m) {
                Ok(arn) if !own.insert(&format!("{what}: managed policy"), &arn, &mut p) => {}
                Ok(arn) => managed.push(arn),
                Err(e) => p(format!("{what}: {e}")),
            }
        }
        for c in &f.customer_policies {
            own.insert(&format!("{what}: customer policy"), c, &mut p);
            if !policy_names.contains(c.as_str()) {
                p(format!("{what}: customer policy `{c}` is not defined in this stack (add a [[policy]] named `{c}`)"));
            }
        }
        if managed.len() + f.customer_policies.len() > MANAGED_POLICIES_PER_ROLE_MAX {
            p(format!(
                "{what}: {} policies attached, over IAM's maximum of {MANAGED_POLICIES_PER_ROLE_MAX} per role",
                managed.len() + f.customer_policies.len()
            ));
        }
        let permissions_boundary = match f.permissions_boundary.as_deref().map(str::trim) {
            None => RoleBoundary::Stack,
            Some("") => RoleBoundary::None,
            Some(b) => match boundary_arn_template(b) {
                Ok(arn) => RoleBoundary::Own(arn),
                Err(e) => {
                    p(format!("{what}: permissions_boundary: {e}"));
                    RoleBoundary::None
                }
            },
        };
        for a in &f.must_allow {
            let (service, action) = a.split_once(':').unwrap_or_default();
            let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !word(service) || !word(action) {
                p(format!("{what}: must_allow `{a}` is not an action such as `batch:SubmitJob` (no wildcards)"));
            }
        }
        match load_template(&f.trust, dirs) {
            Ok(trust) => roles.push(RoleSpec {
                name: f.name,
                path,
                description: f.description,
                trust,
                managed_policies: managed,
                customer_policies: f.customer_policies,
                permissions_boundary,
                note: f.note,
                must_allow: f.must_allow,
            }),
            Err(e) => p(format!("{what}: {e}")),
        }
    }
    let role_names: BTreeSet<&str> = roles.iter().map(|r| r.name.as_str()).collect();

    let mut instance_profiles = Vec::new();
    for f in raw.instance_profile {
        let what = format!("instance profile `{}`", f.name);
        check_name(&what, &f.name, PROFILE_NAME_MAX, &mut p);
        seen.insert("instance profile", &f.name, &mut p);
        let path = check_path(&what, f.path, &mut p);
        if !role_names.contains(f.role.as_str()) {
            p(format!("{what}: role `{}` is not defined in this stack (add a [[role]] named `{}`)", f.role, f.role));
        }
        instance_profiles.push(InstanceProfileSpec { name: f.name, path, role: f.role });
    }

    let mut service_linked_roles = Vec::new();
    for f in raw.service_linked_role {
        let s = f.service.trim().to_string();
        let valid = s.ends_with(".amazonaws.com")
            && s.len() > ".amazonaws.com".len()
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        if !valid {
            p(format!(
                "service-linked role: service `{s}` must be an AWS service principal such as `spot.amazonaws.com`"
            ));
        } else if seen.insert("service-linked role", &s, &mut p) {
            service_linked_roles.push(s);
        }
    }

    let mut allowed_accounts = Vec::new();
    for a in raw.allowed_accounts {
        if is_account_id(&a) {
            allowed_accounts.push(a);
        } else {
            p(format!("allowed_accounts: `{a}` is not an account id (12 digits)"));
        }
    }

    let permissions_boundary = match raw.permissions_boundary.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(b) => match boundary_arn_template(b) {
            Ok(arn) => Some(arn),
            Err(e) => {
                p(format!("permissions_boundary: {e}"));
                None
            }
        },
    };

    let mut keep = Vec::new();
    for (i, k) in raw.keep.into_iter().enumerate() {
        let resource = match (k.role, k.policy) {
            (Some(r), None) if role_names.contains(r.as_str()) => format!("role `{r}`"),
            (None, Some(n)) if policies.iter().any(|p| p.name == n) => format!("policy `{n}`"),
            (Some(name), None) | (None, Some(name)) => {
                p(format!("keep[{i}]: `{name}` is not a role or policy of this stack"));
                continue;
            }
            _ => {
                p(format!("keep[{i}]: name exactly one of `role` and `policy`"));
                continue;
            }
        };
        if k.reason.trim().is_empty() {
            p(format!("keep[{i}]: say why the finding is kept (`reason`)"));
        }
        keep.push(Keep { rule: k.rule, resource, reason: k.reason });
    }

    Stack {
        name: raw.name,
        description: raw.description,
        source: source.to_string(),
        user_policies,
        user_customer_policies,
        policies,
        roles,
        instance_profiles,
        service_linked_roles,
        permissions_boundary,
        tags: raw.tags,
        keep,
        allowed_accounts,
    }
}

const BOUNDARY_HELP: &str = "give the name of a customer managed policy of the account (`MyBoundary`, \
                             `boundaries/MyBoundary`) or a policy ARN (`arn:{{partition}}:iam::aws:policy/PowerUserAccess`)";

/// A permissions boundary as written in a stack or on the command line, as an ARN template: a name is a customer
/// managed policy of the account (as `cdk bootstrap --custom-permissions-boundary` takes it), an ARN any policy.
pub(crate) fn boundary_arn_template(reference: &str) -> Result<String, String> {
    let reference = reference.trim();
    if reference.starts_with("arn:") {
        return managed_arn_template(reference).map_err(|e| e.replacen("managed policy", "permissions boundary", 1));
    }
    if reference.is_empty() || !reference.split('/').all(|seg| valid_name(seg, POLICY_NAME_MAX)) {
        return Err(format!("`{reference}` is neither a policy name nor a policy ARN"));
    }
    Ok(format!("arn:{{{{partition}}}}:iam::{{{{account_id}}}}:policy/{reference}"))
}

/// Names already used, compared case-insensitively as IAM does.
#[derive(Default)]
struct Seen(BTreeSet<(String, String)>);

impl Seen {
    fn insert(&mut self, what: &str, name: &str, p: &mut impl FnMut(String)) -> bool {
        let fresh = self.0.insert((what.to_string(), name.to_lowercase()));
        if !fresh {
            p(format!("{what} `{name}` is listed twice (IAM names are case-insensitive)"));
        }
        fresh
    }
}

fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.chars().count() <= max
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

fn check_name(what: &str, name: &str, max: usize, p: &mut impl FnMut(String)) {
    if name.is_empty() {
        p(format!("{what}: the name is empty"));
    } else if name.chars().count() > max {
        p(format!("{what}: the name is {} characters long; IAM allows at most {max}", name.chars().count()));
    } else if !valid_name(name, max) {
        p(format!("{what}: the name may contain only letters, digits and `_+=,.@-`"));
    }
}

fn check_path(what: &str, path: Option<String>, p: &mut impl FnMut(String)) -> String {
    let path = path.unwrap_or_else(|| "/".to_string());
    let ok = path.len() <= PATH_MAX
        && path.starts_with('/')
        && path.ends_with('/')
        && !path.contains("//")
        && path.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c));
    if !ok {
        p(format!("{what}: path `{path}` must start and end with `/`, e.g. `/workflow/` (printable ASCII, at most {PATH_MAX} characters)"));
    }
    path
}

fn check_description(what: &str, description: &str, p: &mut impl FnMut(String)) {
    if description.chars().count() > DESCRIPTION_MAX {
        p(format!("{what}: the description is longer than {DESCRIPTION_MAX} characters"));
    }
}

/// A managed-policy reference as written in a stack ("AmazonS3FullAccess", "service-role/AWSBatchServiceRole"
/// or a full ARN, possibly with placeholders) as an ARN template.
fn managed_arn_template(reference: &str) -> Result<String, String> {
    let reference = reference.trim();
    let (arn, name) = if let Some(rest) = reference.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let [partition, service, region, account, resource] = parts[..] else {
            return Err(format!(
                "managed policy `{reference}` is not a valid ARN (arn:PARTITION:iam::ACCOUNT:policy/NAME)"
            ));
        };
        let known_partition = partition == "{{partition}}" || partitions::get(partition).is_some();
        let Some(name) = resource.strip_prefix("policy/") else {
            return Err(format!(
                "managed policy `{reference}` is not a policy ARN (its resource must be `policy/NAME`)"
            ));
        };
        let account_ok = account == "aws"
            || account == "{{account_id}}"
            || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
        if !known_partition || service != "iam" || !region.is_empty() || !account_ok || name.is_empty() {
            return Err(format!(
                "managed policy `{reference}` is not a valid IAM policy ARN (arn:PARTITION:iam::ACCOUNT:policy/NAME)"
            ));
        }
        (reference.to_string(), name)
    } else {
        if reference.is_empty() || !reference.split('/').all(|seg| valid_name(seg, POLICY_NAME_MAX)) {
            return Err(format!("managed policy `{reference}` is neither an AWS managed policy name nor an ARN"));
        }
        (format!("arn:{{{{partition}}}}:iam::aws:policy/{reference}"), reference)
    };
    if let Some(replacement) = deprecated_replacement(name) {
        return Err(format!("managed policy `{name}` is deprecated by AWS; use `{replacement}` instead"));
    }
    Ok(arn)
}

impl PolicySpec {
    /// The policy's document rendered for `target`, within IAM's size quota.
    pub(crate) fn render_document(&self, target: &Target) -> Result<Value> {
        let document = render_document(&self.document, target)?;
        let size = minified_len(&document);
        if size > MANAGED_POLICY_DOCUMENT_MAX {
            return Err(Error::input(format!(
                "policy `{}`: document `{}` is {size} characters without whitespace, over IAM's limit of \
                 {MANAGED_POLICY_DOCUMENT_MAX}",
                self.name, self.document.name
            ))
            .with_help("split it into two policies"));
        }
        Ok(document)
    }
}

impl RoleSpec {
    /// The role's trust document rendered for `target`, within IAM's default size quota.
    pub(crate) fn render_trust(&self, target: &Target) -> Result<Value> {
        let trust = render_document(&self.trust, target)?;
        let size = minified_len(&trust);
        if size > TRUST_DOCUMENT_MAX {
            return Err(Error::input(format!(
                "role `{}`: trust document `{}` is {size} characters after rendering, over IAM's default limit of \
                 {TRUST_DOCUMENT_MAX}",
                self.name, self.trust.name
            ))
            .with_help("shorten the trust document (the quota can be raised to 4096 through Service Quotas)"));
        }
        Ok(trust)
    }
}

pub(crate) fn render_managed_arn(template_arn: &str, target: &Target, strict: bool) -> Result<String> {
    let arn = template::render(template_arn, target).map_err(Error::input)?;
    let partition = arn.split(':').nth(1).unwrap_or_default();
    if strict && partition != target.partition {
        return Err(Error::input(format!(
            "managed policy `{arn}` is in partition `{partition}`, but the account is in `{}`",
            target.partition
        ))
        .with_help("write AWS managed policies by name (\"service-role/AWSBatchServiceRole\") or with {{partition}} in the ARN"));
    }
    Ok(arn)
}

fn render_document(t: &TemplateFile, target: &Target) -> Result<Value> {
    let text = template::render(&t.text, target).map_err(|e| Error::input(format!("{}: {e}", t.name)))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        Error::input(format!("{}: not valid JSON after rendering: {e}", t.name))
            .with_help("check the template for a missing comma or quote")
    })?;
    // The document's grammar (a Statement among it) is `validate::grammar`'s, run on every loaded stack.
    Ok(value)
}

fn minified_len(v: &Value) -> usize {
    // IAM does not count whitespace; serde_json's compact form has none outside strings.
    v.to_string().chars().count()
}

// ------------------------------------------------------------------------------------------------ rendered stack

/// A stack rendered for one account: exact names, ARNs and documents. This is what the engine ensures.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(deny_unknown_fields))]
pub(crate) struct Desired {
    pub(crate) stack: String,
    pub(crate) target: Target,
    pub(crate) user_policies: Vec<String>,
    pub(crate) policies: Vec<DesiredPolicy>,
    pub(crate) roles: Vec<DesiredRole>,
    pub(crate) instance_profiles: Vec<DesiredInstanceProfile>,
    pub(crate) service_linked_roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(deny_unknown_fields))]
pub(crate) struct DesiredPolicy {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) arn: String,
    pub(crate) description: String,
    pub(crate) document: Value,
    /// The stack's tags (besides the ownership tag).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(deny_unknown_fields))]
pub(crate) struct DesiredRole {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) description: String,
    pub(crate) trust: Value,
    pub(crate) policy_arns: Vec<String>,
    /// The boundary's policy ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) permissions_boundary: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) tags: BTreeMap<String, String>,
    /// The stack's note on the role, for the plan.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) note: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(deny_unknown_fields))]
pub(crate) struct DesiredInstanceProfile {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) role: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) tags: BTreeMap<String, String>,
}

impl Desired {
    /// Every AWS-managed (not this stack's own) policy ARN the stack attaches, to user or roles.
    /// The roles' permissions boundaries among them: they must exist before the first write as well.
    pub(crate) fn managed_policy_arns(&self) -> BTreeSet<String> {
        let own: BTreeSet<&str> = self.policies.iter().map(|p| p.arn.as_str()).collect();
        self.user_policies
            .iter()
            .chain(self.roles.iter().flat_map(|r| r.policy_arns.iter()))
            .chain(self.roles.iter().filter_map(|r| r.permissions_boundary.as_ref()))
            .filter(|arn| !own.contains(arn.as_str()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
