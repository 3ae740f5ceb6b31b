//! `wfboot verify`: does each role of the stack work for its service? A role that exists is not a role that works.
//!
//! Three checks per role, each `ok`, `failed` (with why) or `unverified` (with why not):
//! 1. **trust** (offline): the role's trust document, as IAM holds it, admits the service the stack made the role
//!    for (the `Service` principals of the stack's trust document) for `sts:AssumeRole`, evaluated by [`trust`]
//!    with the request context that service sends ([`SERVICES`]);
//! 2. **permissions**: the actions the stack says the role needs (`must_allow`) simulated with the role as the
//!    principal (iam:SimulatePrincipalPolicy; the role's own policies evaluated locally when IAM cannot simulate);
//! 3. **live** (`--live`, [`probes`]): the service itself accepts the role.
//!
//! And, for the role of each of the stack's instance profiles, one **instance** row per instance that has the profile:
//! its metadata options let the applications on it reach the role's credentials (`failed` when the endpoint is
//! disabled), with a `warning` when they allow IMDSv1, or keep the token from containers (`resources::imds`).

pub(crate) mod probes;
pub(crate) mod trust;
pub(crate) mod zip;

use serde::Serialize;
use serde_json::Value;

use crate::aws::{errors, Clients};
use crate::error::Result;
use crate::policy_eval::Verdict;
use crate::resources::access::{trusted_services, Permission};
use crate::resources::caller::{Caller, CallerKind};
use crate::resources::permissions as perms;
use crate::stack::{Desired, Stack};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Ok,
    Failed,
    Unverified,
    /// It works, at a risk or with a limit (an instance that allows IMDSv1): said, never a failure.
    Warning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Check {
    Trust,
    Permissions,
    Live,
    #[cfg_attr(not(feature = "ec2"), allow(dead_code))]
    Instance,
}

/// One check of one role.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) role: String,
    pub(crate) check: Check,
    pub(crate) status: Status,
    /// What was checked and what came of it; why, when it failed or could not be decided.
    pub(crate) detail: String,
    /// How the verdict was reached ("offline evaluation", "simulation", "local evaluation", "Lambda CreateFunction").
    pub(crate) method: String,
}

impl Row {
    fn new(role: &str, check: Check, status: Status, detail: impl Into<String>, method: impl Into<String>) -> Row {
        Row { role: role.to_string(), check, status, detail: detail.into(), method: method.into() }
    }
}

/// A service the stacks' roles are made for, as `bootstrap --wait SERVICE,...` names it: the first label of its
/// principal (`lambda` for `lambda.amazonaws.com`), which is how the probes pick the roles they ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Service {
    /// EC2, through the stack's instance profiles.
    Ec2,
    Lambda,
    /// Step Functions (`states.amazonaws.com`).
    States,
    Batch,
    /// Spot Fleet (`spotfleet.amazonaws.com`): no probe of its own; the Batch probe passes its role.
    Spotfleet,
}

impl Service {
    pub(crate) const ALL: [Service; 5] =
        [Service::Ec2, Service::Lambda, Service::States, Service::Batch, Service::Spotfleet];

    /// The principal's first label, and the name `--wait` takes.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Lambda => "lambda",
            Service::States => "states",
            Service::Batch => "batch",
            Service::Spotfleet => "spotfleet",
        }
    }

    /// How people name it.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Service::Ec2 => "EC2",
            Service::Lambda => "Lambda",
            Service::States => "Step Functions",
            Service::Batch => "Batch",
            Service::Spotfleet => "Spot Fleet",
        }
    }

    /// `lambda`, `states` (or `stepfunctions`), ... as `--wait` takes them, in any case.
    pub(crate) fn parse(name: &str) -> Option<Service> {
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "stepfunctions" | "step-functions" => Some(Service::States),
            _ => Service::ALL.into_iter().find(|s| s.label() == name),
        }
    }

    /// "ec2 (EC2), lambda (Lambda), ...": what `--wait` accepts, for its error.
    pub(crate) fn valid_names() -> String {
        Service::ALL.iter().map(|s| format!("{} ({})", s.label(), s.title())).collect::<Vec<_>>().join(", ")
    }

    /// The services `role`'s trust document admits: those a probe can ask about.
    pub(crate) fn of_trust(trust: &Value) -> Vec<Service> {
        let labels: Vec<String> =
            trusted_services(trust).iter().filter_map(|s| s.split('.').next().map(str::to_string)).collect();
        Service::ALL.into_iter().filter(|s| labels.iter().any(|l| l == s.label())).collect()
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// `bootstrap --wait SERVICE,...`: each service named must be one the stack has a role for (its trust documents,
/// rendered offline, name the service); otherwise a usage error before any AWS call, saying which it serves.
pub(crate) fn check_services(stack: &Stack, only: &[Service]) -> Result<()> {
    // Which services a trust document names does not depend on the account: any target renders them.
    let target =
        crate::stack::Target { partition: "aws".into(), account_id: "123456789012".into(), region: "us-east-1".into() };
    let mut served = std::collections::BTreeSet::new();
    for role in &stack.roles {
        match role.render_trust(&target) {
            Ok(trust) => served.extend(Service::of_trust(&trust)),
            // A trust document that does not render here is judged with the account (the probes say it).
            Err(_) => return Ok(()),
        }
    }
    let missing: Vec<&str> = only.iter().filter(|s| !served.contains(s)).map(|s| s.label()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let serves = match served.is_empty() {
        true => "no service its probes can ask about".to_string(),
        false => served.iter().map(|s| s.label()).collect::<Vec<_>>().join(", "),
    };
    Err(crate::error::Error::usage(format!(
        "--wait {}: stack {} has no role for {}; its roles are for {serves}; nothing was sent to AWS",
        only.iter().map(|s| s.label()).collect::<Vec<_>>().join(","),
        stack.name,
        missing.join(", ")
    ))
    .with_help("name only services the stack serves, or give --wait alone to wait for every one of them"))
}

/// What a service sends when it assumes a role, for the trust check's request context.
pub(crate) struct ServiceContext {
    /// The principal's first label (`batch` for `batch.amazonaws.com`).
    pub(crate) service: &'static str,
    /// The kind of resource it acts for, as an ARN with `{partition}`, `{region}`, `{account}`, `{name}`; `None`
    /// when the service sends neither aws:SourceArn nor aws:SourceAccount.
    pub(crate) source_arn: Option<&'static str>,
    /// Whether AWS documents what the service sends (`false`: a trust that needs a key is unverified, not failed).
    pub(crate) documented: bool,
    pub(crate) source: &'static str,
}

/// The services wfboot's stacks make roles for. Batch, Step Functions and Spot Fleet send both keys (their
/// confused-deputy pages, also `stack::harden`); EC2 sends neither for an instance profile's role; for a Lambda
/// execution role AWS documents neither way, so a trust that conditions on them is unverified.
pub(crate) const SERVICES: &[ServiceContext] = &[
    ServiceContext {
        service: "batch",
        source_arn: Some("arn:{partition}:batch:{region}:{account}:compute-environment/{name}"),
        documented: true,
        source: "https://docs.aws.amazon.com/batch/latest/userguide/cross-service-confused-deputy-prevention.html",
    },
    ServiceContext {
        service: "states",
        source_arn: Some("arn:{partition}:states:{region}:{account}:stateMachine:{name}"),
        documented: true,
        source: "https://docs.aws.amazon.com/step-functions/latest/dg/procedure-create-iam-role.html",
    },
    ServiceContext {
        service: "spotfleet",
        source_arn: Some(
            "arn:{partition}:ec2:{region}:{account}:spot-fleet-request/sfr-00000000-0000-4000-8000-000000000000",
        ),
        documented: true,
        source: "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-fleet-prerequisites.html",
    },
    ServiceContext {
        service: "ec2",
        source_arn: None,
        documented: true,
        source: "https://github.com/prowler-cloud/prowler/issues/2810",
    },
    ServiceContext {
        service: "lambda",
        source_arn: None,
        documented: false,
        source: "https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html",
    },
];

/// The request context `service` (a principal such as `batch.amazonaws.com`) sends when it assumes a role for the
/// resource `name`, and whether AWS documents it.
pub(crate) fn service_context(
    service: &str,
    desired: &Desired,
    name: &str,
) -> (trust::Context, Option<&'static ServiceContext>) {
    let short = service.split('.').next().unwrap_or(service);
    let Some(known) = SERVICES.iter().find(|s| s.service == short) else {
        return (trust::Context::new(), None);
    };
    let mut context = trust::Context::new();
    if let Some(arn) = known.source_arn {
        let t = &desired.target;
        let arn = arn
            .replace("{partition}", &t.partition)
            .replace("{region}", &t.region)
            .replace("{account}", &t.account_id)
            .replace("{name}", name);
        context.insert("aws:SourceAccount".into(), vec![t.account_id.clone()]);
        context.insert("aws:SourceArn".into(), vec![arn]);
    }
    (context, Some(known))
}

/// A role as IAM holds it.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) arn: String,
    pub(crate) trust: Value,
}

/// The stack's roles as IAM holds them (`None`: no such role), read concurrently.
pub(crate) async fn read_roles(clients: &Clients, desired: &Desired) -> Result<Vec<Option<Found>>> {
    let reads = desired.roles.iter().map(|r| async move {
        match clients.limit(clients.iam.get_role().role_name(&r.name).send()).await {
            Ok(out) => {
                let Some(role) = out.role else { return Ok(None) };
                let text = role.assume_role_policy_document.unwrap_or_default();
                let trust = crate::document::parse_returned(&text).map_err(|e| {
                    crate::error::Error::aws(format!("role `{}`: its trust document as IAM returned it: {e}", r.name))
                })?;
                Ok(Some(Found { arn: role.arn, trust }))
            }
            Err(e) if errors::is_no_such_entity(&e) => Ok(None),
            Err(e) => Err(errors::describe(&format!("read the role `{}` (iam:GetRole)", r.name), &e)),
        }
    });
    futures::future::try_join_all(reads).await
}

/// The name verify's probes and the trust check's source ARNs use for the resources they create for `role`: fixed,
/// derived from the stack and the role, within Lambda's, Step Functions' and Batch's name rules (64 characters of
/// letters, digits, `-` and `_`).
pub(crate) fn probe_name(stack: &str, role: &str) -> String {
    let clean =
        |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect::<String>();
    let mut name = format!("wfboot-verify-{}-{}", clean(stack), clean(role));
    name.truncate(64);
    name
}

/// The trust check of every role: for each service the stack's trust document names, the role's trust document as
/// IAM holds it, evaluated for that service's `sts:AssumeRole`.
pub(crate) fn trust_rows(desired: &Desired, found: &[Option<Found>]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (role, found) in desired.roles.iter().zip(found) {
        let Some(found) = found else {
            rows.push(Row::new(
                &role.name,
                Check::Trust,
                Status::Failed,
                "the role does not exist (run `wfboot bootstrap`)",
                "iam:GetRole",
            ));
            continue;
        };
        let services = trusted_services(&role.trust);
        if services.is_empty() {
            rows.push(Row::new(
                &role.name,
                Check::Trust,
                Status::Unverified,
                "the stack's trust document names no service principal: nothing to check for a service",
                "offline evaluation",
            ));
            continue;
        }
        for service in services {
            rows.push(trust_row(desired, &role.name, &found.trust, &service));
        }
    }
    rows
}

/// One service's `sts:AssumeRole` of one role whose trust document is `trust`.
pub(crate) fn trust_row(desired: &Desired, role: &str, trust: &Value, service: &str) -> Row {
    let name = probe_name(&desired.stack, role);
    let (context, known) = service_context(service, desired, &name);
    let documented = known.is_some_and(|k| k.documented);
    let source = known.map_or(String::new(), |k| format!(" ({})", k.source));
    let verdict = trust::evaluate(trust, service, "sts:AssumeRole", &context);
    let method = "offline evaluation";
    let keys = |c: &trust::Context| {
        if c.is_empty() {
            "no context keys".to_string()
        } else {
            c.iter().map(|(k, v)| format!("{k}={}", v.join(","))).collect::<Vec<_>>().join(", ")
        }
    };
    if let Some(why) = verdict.unsupported {
        return Row::new(role, Check::Trust, Status::Unverified, format!("{service}: {why}"), method);
    }
    match verdict.decision {
        trust::Decision::Allowed => Row::new(
            role,
            Check::Trust,
            Status::Ok,
            format!("{service} may assume it (statement {}; {})", indexes(&verdict.matched), keys(&context)),
            method,
        ),
        trust::Decision::ExplicitDeny => Row::new(
            role,
            Check::Trust,
            Status::Failed,
            format!(
                "{service} may not assume it: statement {} denies sts:AssumeRole ({})",
                indexes(&verdict.matched),
                keys(&context)
            ),
            method,
        ),
        trust::Decision::ImplicitDeny if !verdict.missing.is_empty() && !documented => Row::new(
            role,
            Check::Trust,
            Status::Unverified,
            format!(
                "{service} may assume it only with {}, and AWS does not document that {service} sends it{source}",
                verdict.missing.join(", ")
            ),
            method,
        ),
        trust::Decision::ImplicitDeny if !verdict.missing.is_empty() => Row::new(
            role,
            Check::Trust,
            Status::Failed,
            format!(
                "{service} may not assume it: the trust needs {}, which {service} does not send{source}",
                verdict.missing.join(", ")
            ),
            method,
        ),
        trust::Decision::ImplicitDeny => Row::new(
            role,
            Check::Trust,
            Status::Failed,
            format!(
                "{service} may not assume it: no statement of its trust document allows {service} sts:AssumeRole \
                 ({}; trusted: {})",
                keys(&context),
                principals(trust)
            ),
            method,
        ),
    }
}

fn indexes(matched: &[usize]) -> String {
    matched.iter().map(|i| format!("#{}", i + 1)).collect::<Vec<_>>().join(", ")
}

fn principals(trust: &Value) -> String {
    let all = crate::document::principals(trust);
    if all.is_empty() {
        "no principal".into()
    } else {
        all.join(", ")
    }
}

/// The permission check of every role with `must_allow`: each action on `*`, simulated with the role as the
/// principal (the role's own policies evaluated locally when simulation is unavailable, and marked so).
pub(crate) async fn permission_rows(
    clients: &Clients,
    stack: &Stack,
    desired: &Desired,
    found: &[Option<Found>],
) -> Vec<Row> {
    let jobs = desired.roles.iter().zip(found).filter_map(|(role, found)| {
        let spec = stack.roles.iter().find(|s| s.name == role.name)?;
        Some((role, spec, found))
    });
    let checks = jobs.map(|(role, spec, found)| async move {
        if spec.must_allow.is_empty() {
            return vec![Row::new(
                &role.name,
                Check::Permissions,
                Status::Unverified,
                "the stack lists nothing the role must be allowed (must_allow)",
                "none",
            )];
        }
        if found.is_none() {
            return vec![Row::new(
                &role.name,
                Check::Permissions,
                Status::Failed,
                "the role does not exist (run `wfboot bootstrap`)",
                "iam:GetRole",
            )];
        }
        // The role as the principal: an assumed-role session of it, which `permissions::check` simulates as the
        // role (and whose own policies it reads when it must evaluate locally).
        let t = &desired.target;
        let as_role = Caller {
            account_id: t.account_id.clone(),
            partition: t.partition.clone(),
            arn: format!("arn:{}:sts::{}:assumed-role/{}/wfboot-verify", t.partition, t.account_id, role.name),
            kind: CallerKind::AssumedRole,
            user_name: None,
        };
        let needed: Vec<Permission> = spec.must_allow.iter().map(|a| Permission::new(a, "*")).collect();
        let (results, how) = perms::check(clients, &as_role, &needed).await;
        let method = results.first().map_or("none", |r| r.source).to_string();
        let mut denied = Vec::new();
        let mut unverified = Vec::new();
        for r in &results {
            match &r.verdict {
                Verdict::Allowed => {}
                Verdict::Denied { explicit } => {
                    denied.push(format!("{}{}", r.action, if *explicit { " (explicitly denied)" } else { "" }))
                }
                Verdict::Unverified { reason } => unverified.push(format!("{} ({reason})", r.action)),
            }
        }
        let row = if !denied.is_empty() {
            Row::new(
                &role.name,
                Check::Permissions,
                Status::Failed,
                format!("not allowed: {}", denied.join(", ")),
                method,
            )
        } else if !unverified.is_empty() {
            Row::new(
                &role.name,
                Check::Permissions,
                Status::Unverified,
                format!("not decided: {}; {how}", unverified.join(", ")),
                method,
            )
        } else {
            Row::new(
                &role.name,
                Check::Permissions,
                Status::Ok,
                format!("allowed: {}", spec.must_allow.join(", ")),
                method,
            )
        };
        vec![row]
    });
    futures::future::join_all(checks).await.into_iter().flatten().collect()
}

/// One row per instance that has one of the stack's instance profiles, under the profile's role: its metadata options
/// and what they mean for the role's credentials on it. A failed read is one `unverified` row per profile's role.
#[cfg(feature = "ec2")]
pub(crate) async fn instance_rows(clients: &Clients, desired: &Desired) -> Vec<Row> {
    use crate::resources::imds::{self, Severity};
    let method = "ec2:DescribeInstances";
    match imds::stack_instances(clients, desired).await {
        Ok(instances) => instances
            .into_iter()
            .filter_map(|i| {
                let options = i.metadata_options.as_ref()?;
                let mut detail =
                    format!("{} (instance profile {}): {}", i.instance_id, i.instance_profile, options.summary());
                for f in &i.findings {
                    detail += &format!("; {} -> {}", f.message, f.fix);
                }
                let status = if i.findings.iter().any(|f| f.severity == Severity::Refusal) {
                    Status::Failed
                } else if i.findings.is_empty() {
                    Status::Ok
                } else {
                    Status::Warning
                };
                Some(Row::new(&i.role, Check::Instance, status, detail, method))
            })
            .collect(),
        Err(e) => desired
            .instance_profiles
            .iter()
            .map(|p| {
                Row::new(
                    &p.role,
                    Check::Instance,
                    Status::Unverified,
                    format!("the instances with instance profile {} could not be read: {}", p.name, e.message),
                    method,
                )
            })
            .collect(),
    }
}

#[cfg(not(feature = "ec2"))]
pub(crate) async fn instance_rows(_: &Clients, _: &Desired) -> Vec<Row> {
    Vec::new()
}

#[cfg(test)]
mod tests;
