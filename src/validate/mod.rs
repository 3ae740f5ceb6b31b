//! Documents validated as IAM validates them, before the first write — and `wfboot lint`, which runs the same
//! checks offline and reports every finding at once.
//!
//! moto accepts almost any document, so without this real IAM would be the validator, in the middle of an apply,
//! after earlier writes succeeded. Concerns, one module each: [`grammar`] (IAM's policy grammar, with [`arn`] for
//! ARNs and principals), [`actions`] (the actions and condition keys that exist, from a generated table) and
//! [`quotas`] (quotas and character sets the stack loader does not already check). Errors are what IAM would
//! reject; warnings are what IAM accepts but probably does not do what was meant.

pub(crate) mod actions;
pub(crate) mod arn;
pub(crate) mod grammar;
pub(crate) mod quotas;
pub(crate) mod resources;
pub(crate) mod security;

use std::fmt;

use serde::Serialize;

use crate::stack::{render_managed_arn, Stack, Target};
use grammar::DocKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    /// IAM would reject it, or it can never take effect.
    Error,
    /// IAM accepts it, but it probably does not do what was meant, or grants more than a reviewer would allow.
    Warning,
    /// It works; a hardening the stack could have.
    Suggestion,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Suggestion => "suggestion",
        })
    }
}

/// Each rule and the public page that defines what IAM accepts.
pub(crate) const RULES: &[(&str, &str)] = &[
    ("stack", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"),
    ("document", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html"),
    ("element", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements.html"),
    ("version", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_version.html"),
    ("id", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_id.html"),
    ("statement", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_statement.html"),
    ("sid", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_sid.html"),
    ("sid-unique", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_sid.html"),
    ("effect", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_effect.html"),
    ("action", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html"),
    ("trust-action", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-roles"),
    ("unknown-action", "https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html"),
    ("resource", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html"),
    ("arn", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html"),
    ("arn-partition", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html"),
    ("principal", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html"),
    ("not-principal", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html"),
    ("condition", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html"),
    ("condition-operator", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html"),
    ("condition-value", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html"),
    ("condition-key", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html"),
    ("action-resource", "https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html"),
    ("allow-not-action", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html"),
    ("allow-not-resource", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notresource.html"),
    ("pass-role", "https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html#access-analyzer-reference-policy-checks-security-warning-pass-role-with-star-in-resource"),
    ("create-slr", "https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html#access-analyzer-reference-policy-checks-security-warning-create-slr-with-star-in-resource"),
    ("confused-deputy", "https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html"),
    ("description-characters", "https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html"),
    ("policies-per-role", "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"),
    ("tags", "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html#id_tags_rules_creating"),
    ("keep", "https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-policy-validation.html"),
];

/// Rules about what IAM accepts but never matches, or grants too widely: their `accepted` is advice, not grammar.
const ADVICE_RULES: &[&str] = &[
    "action-resource",
    "pass-role",
    "create-slr",
    "allow-not-action",
    "allow-not-resource",
    "confused-deputy",
    "keep",
];

fn reference(rule: &str) -> &'static str {
    RULES.iter().find(|(r, _)| *r == rule).map(|(_, url)| *url).unwrap_or_default()
}

/// One finding, located as precisely as it can be: stack file, resource, template, statement, element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    pub(crate) rule: &'static str,
    /// The stack file ("built-in stack NAME" for a built-in one).
    pub(crate) stack: String,
    /// "role `X`", "policy `Y`".
    pub(crate) resource: Option<String>,
    /// The document's template file.
    pub(crate) template: Option<String>,
    /// Index in the document's `Statement` list (0 for a single statement object).
    pub(crate) statement: Option<usize>,
    pub(crate) sid: Option<String>,
    /// The element: `Principal`, `Action[1]`, `Condition.StringEquals.aws:SourceAccount`, `description`.
    pub(crate) element: Option<String>,
    pub(crate) message: String,
    /// What IAM accepts instead.
    pub(crate) accepted: Option<String>,
    /// The page that defines the rule.
    pub(crate) reference: &'static str,
    /// IAM Access Analyzer's issue code for the same check, where it has one (`PASS_ROLE_WITH_STAR_IN_RESOURCE`).
    pub(crate) access_analyzer: Option<&'static str>,
    /// Why the stack keeps this warning or suggestion (its `[[keep]]` entry); a kept finding counts as none.
    pub(crate) kept: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}] {}", self.severity, self.rule, self.stack)?;
        if let Some(r) = &self.resource {
            write!(f, ": {r}")?;
        }
        if let Some(t) = &self.template {
            write!(f, ": {t}")?;
        }
        let mut place = String::new();
        if let Some(i) = self.statement {
            place += &format!("Statement[{i}]");
            if let Some(sid) = self.sid.as_deref().filter(|s| !s.is_empty()) {
                place += &format!(" (Sid \"{sid}\")");
            }
        }
        if let Some(e) = self.element.as_deref().filter(|e| !e.is_empty()) {
            place += &if place.is_empty() { e.to_string() } else { format!(" {e}") };
        }
        if !place.is_empty() {
            write!(f, ": {place}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(code) = self.access_analyzer {
            write!(f, " (Access Analyzer: {code})")?;
        }
        if let Some(a) = &self.accepted {
            // The grammar's findings say what IAM accepts; the others what would work or be safer.
            let what = if ADVICE_RULES.contains(&self.rule) { "instead" } else { "IAM accepts" };
            write!(f, "\n      {what}: {a}")?;
        }
        if let Some(reason) = &self.kept {
            write!(f, "\n      kept by the stack: {reason}")?;
        }
        Ok(())
    }
}

/// What the account is, as far as it is known when validating.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// The account's partition: ARNs in another one are errors. `None`: any partition is accepted.
    pub(crate) partition: Option<String>,
    /// The account id documents are rendered with (a sample one when `None`).
    pub(crate) account_id: Option<String>,
    /// The managed policies a role may have (`None`: not checked offline; the account's quota is read instead).
    pub(crate) role_policy_quota: Option<usize>,
}

impl Options {
    /// The target the documents are rendered for: the account's values where known, sample ones elsewhere.
    fn target(&self) -> Target {
        Target {
            partition: self.partition.clone().unwrap_or_else(|| "aws".into()),
            account_id: self.account_id.clone().unwrap_or_else(|| "123456789012".into()),
            region: crate::stack::partitions::iam_region(self.partition.as_deref().unwrap_or("aws")).into(),
        }
    }
}

/// How a stack is named in findings.
pub(crate) fn stack_label(source: &str, name: Option<&str>) -> String {
    match (source, name) {
        ("built-in", Some(n)) => format!("built-in stack {n}"),
        _ => source.to_string(),
    }
}

/// Every finding for a stack: the problems found while loading it (`load_problems`), then each document, then the
/// quotas. `stack` is `None` when the file could not be read as a stack at all.
pub(crate) fn lint(source: &str, stack: Option<&Stack>, load_problems: &[String], opts: &Options) -> Vec<Finding> {
    let label = stack_label(source, stack.map(|s| s.name.as_str()));
    let finding = |severity, rule: &'static str, resource: Option<String>, template: Option<String>| Finding {
        severity,
        rule,
        stack: label.clone(),
        resource,
        template,
        statement: None,
        sid: None,
        element: None,
        message: String::new(),
        accepted: None,
        reference: reference(rule),
        access_analyzer: None,
        kept: None,
    };
    let mut out: Vec<Finding> = load_problems
        .iter()
        .map(|p| Finding { message: p.clone(), ..finding(Severity::Error, "stack", None, None) })
        .collect();
    let Some(stack) = stack else { return out };
    let target = opts.target();
    let partition = opts.partition.as_deref();
    let documents = stack
        .policies
        .iter()
        .map(|p| (format!("policy `{}`", p.name), &p.document.name, p.render_document(&target), DocKind::Identity))
        .chain(
            stack
                .roles
                .iter()
                .map(|r| (format!("role `{}`", r.name), &r.trust.name, r.render_trust(&target), DocKind::Trust)),
        );
    for (resource, template, rendered, kind) in documents {
        let base = finding(Severity::Error, "document", Some(resource), Some(template.clone()));
        match rendered {
            Err(e) => out.push(Finding { message: strip_prefix(&e.message, template), ..base }),
            Ok(doc) => out.extend(grammar::check(&doc, kind, partition).into_iter().map(|i| Finding {
                severity: i.severity,
                rule: i.rule,
                statement: i.statement,
                sid: i.sid,
                element: Some(i.element),
                message: i.message,
                accepted: i.accepted,
                reference: reference(i.rule),
                access_analyzer: i.code,
                ..base.clone()
            })),
        }
    }
    if partition.is_some() {
        let managed = stack
            .roles
            .iter()
            .flat_map(|r| r.managed_policies.iter().map(move |m| (format!("role `{}`", r.name), m)))
            .chain(stack.user_policies.iter().map(|m| ("[user]".to_string(), m)));
        for (resource, arn) in managed {
            if let Err(e) = render_managed_arn(arn, &target, true) {
                out.push(Finding {
                    element: Some("managed_policies".into()),
                    message: e.message,
                    accepted: e.help,
                    ..finding(Severity::Error, "arn-partition", Some(resource), None)
                });
            }
        }
    }
    out.extend(quotas::check(stack, opts.role_policy_quota).into_iter().map(|p| Finding {
        element: Some(p.element.to_string()),
        message: p.message,
        accepted: Some(p.accepted),
        ..finding(Severity::Error, p.rule, Some(p.resource), None)
    }));
    for keep in &stack.keep {
        let mut used = false;
        for f in out.iter_mut().filter(|f| f.severity != Severity::Error && f.rule == keep.rule) {
            if f.resource.as_deref() == Some(keep.resource.as_str()) {
                f.kept = Some(keep.reason.clone());
                used = true;
            }
        }
        // A list of kept findings stays honest only if an entry goes when its finding does.
        if !used {
            out.push(Finding {
                element: Some("keep".into()),
                message: format!("no `{}` warning or suggestion on {} to keep any more", keep.rule, keep.resource),
                accepted: Some("remove the [[keep]] entry".into()),
                ..finding(Severity::Warning, "keep", Some(keep.resource.clone()), None)
            });
        }
    }
    out
}

/// A render error without the template name it starts with (the finding names the template already).
fn strip_prefix(message: &str, template: &str) -> String {
    message.strip_prefix(template).and_then(|m| m.strip_prefix(": ")).unwrap_or(message).to_string()
}

/// The findings of `severity` the stack does not keep.
pub(crate) fn count(findings: &[Finding], severity: Severity) -> usize {
    findings.iter().filter(|f| f.severity == severity && f.kept.is_none()).count()
}

/// The findings the stack keeps.
pub(crate) fn kept(findings: &[Finding]) -> usize {
    findings.iter().filter(|f| f.kept.is_some()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::builtin;

    #[test]
    fn every_built_in_stack_is_lint_clean_in_every_partition() {
        for name in builtin::names() {
            let (source, stack, problems) = Stack::resolve_for_lint(Some(name)).unwrap();
            for partition in [None, Some("aws"), Some("aws-cn"), Some("aws-us-gov"), Some("aws-iso"), Some("aws-iso-b")]
            {
                let opts = Options {
                    partition: partition.map(str::to_string),
                    role_policy_quota: Some(quotas::DEFAULT_ROLE_POLICY_QUOTA),
                    ..Options::default()
                };
                let findings = lint(&source, stack.as_ref(), &problems, &opts);
                // Clean: nothing but what the stack keeps, each with its reason (`[[keep]]`).
                let text: Vec<String> = findings.iter().filter(|f| f.kept.is_none()).map(ToString::to_string).collect();
                assert!(text.is_empty(), "{name} {partition:?}:\n{}", text.join("\n"));
                assert!(findings.iter().all(|f| f.severity != Severity::Error));
            }
        }
    }

    #[test]
    fn a_finding_names_the_stack_resource_template_statement_and_element() {
        let f = Finding {
            severity: Severity::Error,
            rule: "principal",
            stack: "profiles/x.toml".into(),
            resource: Some("role `R`".into()),
            template: Some("service_roles/t.json".into()),
            statement: Some(0),
            sid: Some("Trust".into()),
            element: Some("Principal".into()),
            message: "5 is not a principal".into(),
            accepted: Some("\"*\" or an object".into()),
            reference: reference("principal"),
            access_analyzer: None,
            kept: None,
        };
        assert_eq!(
            f.to_string(),
            "error[principal] profiles/x.toml: role `R`: service_roles/t.json: Statement[0] (Sid \"Trust\") Principal: \
             5 is not a principal\n      IAM accepts: \"*\" or an object"
        );
        assert!(RULES.iter().all(|(_, url)| url.starts_with("https://docs.aws.amazon.com/")));
    }
}
