//! Least-privilege review of a rendered stack: its broad grants, why each is broad, and something narrower.
//!
//! Pure: it reads the desired stack only, never the account. AWS managed policies are judged by name (their
//! documents are AWS's and change without notice); the stack's own policies are judged statement by statement.
//! Findings are advice: they never change a command's exit code.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{json, Value};

use crate::document;
use crate::policy_eval::wildcard_match;
use crate::stack::{Desired, DesiredPolicy};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Severity {
    /// Whoever runs as the role could take over the account or all of its data.
    High,
    /// More than the role's job needs, on every resource of a service.
    Medium,
    /// Broad by design (the operator's own user), worth knowing.
    Low,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// What grants too much: an attached managed policy, or one statement of the stack's own policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Grant {
    ManagedPolicy { policy_arn: String },
    Statement { policy: String, policy_arn: String, statement: String, statement_document: Value },
}

impl Grant {
    fn label(&self) -> String {
        match self {
            Grant::ManagedPolicy { policy_arn } => policy_arn.clone(),
            Grant::Statement { policy, statement, .. } => format!("policy {policy}, statement {statement}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Finding {
    /// Stable id of the rule: `s3-full-access-on-service-role`, `iam-write-on-service-role`,
    /// `full-access-managed-policy`, `all-buckets-s3-statement`.
    pub(crate) rule: &'static str,
    pub(crate) severity: Severity,
    /// `role` or `user`.
    pub(crate) resource_kind: &'static str,
    pub(crate) resource: String,
    pub(crate) grant: Grant,
    /// Why it is broad.
    pub(crate) why: String,
    /// What to do instead, in a sentence.
    pub(crate) suggestion: String,
    /// Narrower AWS managed policies (ARNs in the account's partition), when AWS has one.
    pub(crate) narrower_managed_policies: Vec<String>,
    /// A scoped policy document to use instead, rendered for the account; `<...>` are the user's to fill in.
    pub(crate) suggested_policy: Option<Value>,
    /// The placeholders in `suggested_policy` that only the user knows (bucket, queue, function names).
    pub(crate) placeholders: Vec<String>,
}

const BUCKET: &str = "<your-bucket>";
const QUEUE: &str = "<your-queue>";
const FUNCTION: &str = "<your-function>";

/// AWS managed `*FullAccess` policies with a narrower AWS managed policy, checked against the list of AWS managed
/// policies the emulator ships (moto's `aws_managed_policies.py`, copied from AWS). Others have none (e.g.
/// `AWSBatchFullAccess`, `AmazonECS_FullAccess`).
const NARROWER: &[(&str, &[&str])] = &[
    ("AmazonS3FullAccess", &["AmazonS3ReadOnlyAccess"]),
    ("AmazonSQSFullAccess", &["AmazonSQSReadOnlyAccess"]),
    ("AWSLambda_FullAccess", &["AWSLambda_ReadOnlyAccess"]),
    ("AmazonEC2FullAccess", &["AmazonEC2ReadOnlyAccess"]),
    ("AWSStepFunctionsFullAccess", &["AWSStepFunctionsReadOnlyAccess"]),
    (
        "AmazonEC2ContainerRegistryFullAccess",
        &["AmazonEC2ContainerRegistryPowerUser", "AmazonEC2ContainerRegistryReadOnly"],
    ),
    ("IAMFullAccess", &["IAMReadOnlyAccess"]),
    ("AmazonDynamoDBFullAccess", &["AmazonDynamoDBReadOnlyAccess"]),
    ("AmazonSNSFullAccess", &["AmazonSNSReadOnlyAccess"]),
    ("CloudWatchLogsFullAccess", &["CloudWatchLogsReadOnlyAccess"]),
];

/// IAM actions that change identities or their permissions. Role, policy and instance-profile actions can be scoped
/// to the stack's own resources; the rest (users, groups, keys, account settings) no service role should need.
const IAM_WRITE_SCOPABLE: &[&str] = &[
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:UpdateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:TagRole",
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:TagPolicy",
    "iam:CreateInstanceProfile",
    "iam:DeleteInstanceProfile",
    "iam:AddRoleToInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile",
    "iam:TagInstanceProfile",
];
const IAM_PASS_ROLE: &str = "iam:PassRole";
const IAM_WRITE_UNSCOPABLE: &[&str] = &[
    "iam:CreateUser",
    "iam:AttachUserPolicy",
    "iam:PutUserPolicy",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AddUserToGroup",
    "iam:AttachGroupPolicy",
    "iam:PutGroupPolicy",
    "iam:CreateServiceLinkedRole",
    "iam:UpdateAccountPasswordPolicy",
];

/// The stack's broad grants, most severe first, in stack order within a severity. `user` names the operator user
/// in findings about the stack's user policies.
pub(crate) fn review(desired: &Desired, user: Option<&str>) -> Vec<Finding> {
    let ctx = Context::new(desired);
    let mut findings = Vec::new();
    for role in &desired.roles {
        for arn in &role.policy_arns {
            if let Some(policy) = desired.policies.iter().find(|p| &p.arn == arn) {
                findings.extend(review_policy(&ctx, &role.name, policy));
            } else if let Some(f) = review_managed(&ctx, "role", &role.name, arn) {
                findings.push(f);
            }
        }
    }
    for arn in &desired.user_policies {
        if let Some(f) = review_managed(&ctx, "user", user.unwrap_or("(operator user)"), arn) {
            findings.push(f);
        }
    }
    findings.sort_by_key(|f| f.severity);
    findings
}

struct Context<'a> {
    desired: &'a Desired,
    partition: &'a str,
    account: &'a str,
    region: &'a str,
}

impl<'a> Context<'a> {
    fn new(desired: &'a Desired) -> Self {
        Context {
            desired,
            partition: &desired.target.partition,
            account: &desired.target.account_id,
            region: &desired.target.region,
        }
    }

    fn managed_arn(&self, name: &str) -> String {
        format!("arn:{}:iam::aws:policy/{name}", self.partition)
    }

    /// The IAM policy the stack's own roles, policies and instance profiles can be managed with, and its roles
    /// passed to the services that trust them only.
    fn scoped_iam_policy(&self, actions: &[&str], pass_role: bool) -> Value {
        let d = self.desired;
        let iam = |kind: &str, path: &str, name: &str| {
            format!("arn:{}:iam::{}:{kind}{path}{name}", self.partition, self.account)
        };
        let roles: Vec<String> = d.roles.iter().map(|r| iam("role", &r.path, &r.name)).collect();
        let mut statements = Vec::new();
        if !actions.is_empty() {
            let mut resources = roles.clone();
            resources.extend(d.policies.iter().map(|p| p.arn.clone()));
            resources.extend(d.instance_profiles.iter().map(|p| iam("instance-profile", &p.path, &p.name)));
            statements.push(json!({
                "Sid": "ManageOnlyTheStacksOwnIamResources",
                "Effect": "Allow",
                "Action": actions,
                "Resource": resources,
            }));
        }
        if pass_role {
            let services: BTreeSet<String> = d
                .roles
                .iter()
                .flat_map(|r| document::principals(&r.trust))
                .filter_map(|p| p.strip_prefix("Service:").map(str::to_string))
                .collect();
            statements.push(json!({
                "Sid": "PassTheStacksRolesOnlyToTheirServices",
                "Effect": "Allow",
                "Action": IAM_PASS_ROLE,
                "Resource": roles,
                "Condition": {"StringEquals": {"iam:PassedToService": services}},
            }));
        }
        json!({"Version": "2012-10-17", "Statement": statements})
    }
}

/// The AWS-managed policy name of an ARN (`service-role/X` -> `X`), or `None` for a customer policy.
fn aws_managed_name(arn: &str) -> Option<&str> {
    let (_, resource) = arn.split_once(":iam::aws:policy/")?;
    resource.rsplit('/').next()
}

fn review_managed(ctx: &Context<'_>, kind: &'static str, resource: &str, arn: &str) -> Option<Finding> {
    let name = aws_managed_name(arn)?;
    let admin = matches!(name, "AdministratorAccess" | "PowerUserAccess");
    if !admin && !name.ends_with("FullAccess") {
        return None;
    }
    let narrower: Vec<String> = NARROWER
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, alts)| alts.iter().map(|a| ctx.managed_arn(a)).collect())
        .unwrap_or_default();
    let grant = Grant::ManagedPolicy { policy_arn: arn.to_string() };
    let mut finding = Finding {
        rule: "full-access-managed-policy",
        severity: Severity::Medium,
        resource_kind: kind,
        resource: resource.to_string(),
        grant,
        why: format!("{name} allows every action of its service on every resource in the account"),
        suggestion: match narrower.first() {
            Some(n) => format!("if the role only reads, attach {n} instead; otherwise a customer policy with the actions and resources it uses"),
            None => "AWS has no narrower managed policy for this service: write a customer policy with the actions and resources the role uses (IAM Access Analyzer can generate one from CloudTrail)".into(),
        },
        narrower_managed_policies: narrower.clone(),
        suggested_policy: None,
        placeholders: Vec::new(),
    };
    if kind == "user" {
        finding.severity = if admin { Severity::Medium } else { Severity::Low };
        finding.why = format!(
            "{name} gives the operator every action of its service; creating and running the workflow needs much of \
             that, but an operator who only submits jobs and reads results needs less"
        );
        finding.suggestion = match narrower.first() {
            Some(n) => format!("for operators who only run the workflow, {n} (with the few write actions they use)"),
            None => "for operators who only run the workflow, a customer policy with the actions they use".into(),
        };
        return Some(finding);
    }
    match name {
        "AdministratorAccess" | "PowerUserAccess" => {
            finding.severity = Severity::High;
            finding.why = format!("{name} allows (nearly) every action in the account to whatever runs as this role");
        }
        "AmazonS3FullAccess" => {
            finding.rule = "s3-full-access-on-service-role";
            finding.severity = Severity::High;
            finding.why = "every S3 action on every bucket of the account — read, overwrite and delete any object, \
                           change bucket policies — for whatever runs as this role"
                .into();
            finding.suggestion = format!(
                "a customer policy for the workflow's buckets only (the bucket names are yours to fill in for {BUCKET})"
            );
            finding.suggested_policy = Some(scoped_s3_policy(ctx.partition));
            finding.placeholders = vec![BUCKET.into()];
        }
        "AmazonSQSFullAccess" => {
            finding.why = "every SQS action on every queue of the account, including deleting queues and changing \
                           their access policies"
                .into();
            finding.suggestion =
                format!("a customer policy that sends and receives on the workflow's queues only (fill in {QUEUE})");
            finding.suggested_policy = Some(json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "UseTheWorkflowQueues",
                    "Effect": "Allow",
                    "Action": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage",
                               "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                    "Resource": [format!("arn:{}:sqs:{}:{}:{QUEUE}", ctx.partition, ctx.region, ctx.account)],
                }],
            }));
            finding.placeholders = vec![QUEUE.into()];
        }
        "AWSLambda_FullAccess" => {
            finding.why = "create, change and delete any Lambda function of the account, and pass roles to Lambda \
                           (iam:PassRole)"
                .into();
            finding.suggestion =
                format!("a customer policy that invokes the workflow's functions only (fill in {FUNCTION})");
            finding.suggested_policy = Some(json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "InvokeTheWorkflowFunctions",
                    "Effect": "Allow",
                    "Action": ["lambda:InvokeFunction", "lambda:GetFunction"],
                    "Resource": [format!("arn:{}:lambda:{}:{}:function:{FUNCTION}", ctx.partition, ctx.region, ctx.account)],
                }],
            }));
            finding.placeholders = vec![FUNCTION.into()];
        }
        "IAMFullAccess" => {
            finding.rule = "iam-write-on-service-role";
            finding.severity = Severity::High;
            finding.why = "every IAM action: whatever runs as this role can create an administrator for itself".into();
            finding.suggestion =
                "IAMReadOnlyAccess if it only reads; if it manages IAM, only the stack's own roles, policies and \
                 instance profiles, and iam:PassRole only to the services that trust them"
                    .into();
            finding.suggested_policy = Some(ctx.scoped_iam_policy(IAM_WRITE_SCOPABLE, true));
        }
        _ => {}
    }
    Some(finding)
}

fn scoped_s3_policy(partition: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListTheWorkflowBuckets",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [format!("arn:{partition}:s3:::{BUCKET}")],
            },
            {
                "Sid": "ReadAndWriteTheirObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [format!("arn:{partition}:s3:::{BUCKET}/*")],
            },
        ],
    })
}

/// The statements of one of the stack's policies, attached to `role`.
fn review_policy(ctx: &Context<'_>, role: &str, policy: &DesiredPolicy) -> Vec<Finding> {
    let statements: Vec<&Value> = match policy.document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for (i, statement) in statements.into_iter().enumerate() {
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let name = match statement.get("Sid").and_then(Value::as_str) {
            Some(sid) if !sid.is_empty() => sid.to_string(),
            _ => format!("#{}", i + 1),
        };
        let grant = || Grant::Statement {
            policy: policy.name.clone(),
            policy_arn: policy.arn.clone(),
            statement: name.clone(),
            statement_document: statement.clone(),
        };
        let resources = strings(statement.get("Resource"));
        let iam_writes: Vec<&str> = IAM_WRITE_SCOPABLE
            .iter()
            .chain([IAM_PASS_ROLE].iter())
            .chain(IAM_WRITE_UNSCOPABLE)
            .copied()
            .filter(|a| allows(statement, a))
            .collect();
        if !iam_writes.is_empty() && resources.iter().any(|r| broad_iam_resource(r)) {
            let scopable: Vec<&str> = iam_writes.iter().copied().filter(|a| IAM_WRITE_SCOPABLE.contains(a)).collect();
            let pass_role = iam_writes.contains(&IAM_PASS_ROLE);
            let dropped: Vec<&str> = iam_writes.iter().copied().filter(|a| IAM_WRITE_UNSCOPABLE.contains(a)).collect();
            let shown: Vec<&str> = iam_writes.iter().copied().take(4).collect();
            out.push(Finding {
                rule: "iam-write-on-service-role",
                severity: Severity::High,
                resource_kind: "role",
                resource: role.to_string(),
                grant: grant(),
                why: format!(
                    "allows IAM write actions ({}{}) on any IAM resource: a role that can change IAM can grant \
                     itself anything",
                    shown.join(", "),
                    if iam_writes.len() > shown.len() { ", ..." } else { "" }
                ),
                suggestion: format!(
                    "limit IAM writes to the stack's own roles, policies and instance profiles{}{}",
                    if pass_role { ", and iam:PassRole to the services that trust the stack's roles" } else { "" },
                    if dropped.is_empty() {
                        String::new()
                    } else {
                        format!("; drop {} (no service role needs them)", dropped.join(", "))
                    }
                ),
                narrower_managed_policies: Vec::new(),
                // Nothing left to scope (only user, group or key actions): the suggestion is to drop them.
                suggested_policy: (!scopable.is_empty() || pass_role)
                    .then(|| ctx.scoped_iam_policy(&scopable, pass_role)),
                placeholders: Vec::new(),
            });
            continue;
        }
        if allows_bucket_s3(statement) && resources.iter().any(|r| all_buckets(r)) {
            let mut scoped = statement.clone();
            // `*` covers buckets and objects alike.
            let object_level = resources.iter().any(|r| r.contains('/') || r == "*");
            let bucket_level = resources.iter().any(|r| !r.contains('/'));
            let mut new_resources = Vec::new();
            if bucket_level {
                new_resources.push(format!("arn:{}:s3:::{BUCKET}", ctx.partition));
            }
            if object_level {
                new_resources.push(format!("arn:{}:s3:::{BUCKET}/*", ctx.partition));
            }
            scoped["Resource"] = json!(new_resources);
            out.push(Finding {
                rule: "all-buckets-s3-statement",
                severity: Severity::Medium,
                resource_kind: "role",
                resource: role.to_string(),
                grant: grant(),
                why: "S3 actions on every bucket of the account, not just the workflow's".into(),
                suggestion: format!("the same actions on the workflow's buckets only (fill in {BUCKET})"),
                narrower_managed_policies: Vec::new(),
                suggested_policy: Some(json!({"Version": "2012-10-17", "Statement": [scoped]})),
                placeholders: vec![BUCKET.into()],
            });
        }
    }
    out
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The statement's `Action` (or everything outside its `NotAction`) includes `action`; IAM compares actions
/// case-insensitively.
fn allows(statement: &Value, action: &str) -> bool {
    let action = action.to_lowercase();
    let fits = |patterns: Vec<String>| patterns.iter().any(|p| wildcard_match(&p.to_lowercase(), &action));
    match (statement.get("Action"), statement.get("NotAction")) {
        (Some(a), _) => fits(strings(Some(a))),
        (None, Some(n)) => !fits(strings(Some(n))),
        (None, None) => false,
    }
}

/// S3 actions that act on the account, not on a bucket: they need `Resource: "*"` and are no all-buckets grant.
const S3_ACCOUNT_LEVEL: &[&str] =
    &["s3:listallmybuckets", "s3:getaccountpublicaccessblock", "s3:listaccesspoints", "s3:listjobs", "s3:createjob"];

/// The statement allows an S3 action on buckets or objects (not only account-level ones such as ListAllMyBuckets).
fn allows_bucket_s3(statement: &Value) -> bool {
    match (statement.get("Action"), statement.get("NotAction")) {
        (Some(a), _) => strings(Some(a)).iter().any(|p| {
            let p = p.to_lowercase();
            p == "*" || (p.starts_with("s3:") && !S3_ACCOUNT_LEVEL.contains(&p.as_str()))
        }),
        (None, Some(_)) => true,
        (None, None) => false,
    }
}

/// `*`, or an IAM ARN with a wildcard in its account or resource (`arn:aws:iam::*:role/*`).
fn broad_iam_resource(resource: &str) -> bool {
    if resource == "*" {
        return true;
    }
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    match parts[..] {
        [_, partition, service, _, account, name] => {
            (service == "iam" || service.contains('*'))
                && (partition.contains('*') || account.contains('*') || name.contains('*'))
        }
        _ => false,
    }
}

/// `*`, `arn:aws:s3:::*` or `arn:aws:s3:::*/...`: a resource whose bucket name is a wildcard.
fn all_buckets(resource: &str) -> bool {
    resource == "*"
        || resource
            .split_once(":s3:::")
            .is_some_and(|(head, bucket)| head.starts_with("arn:") && bucket.starts_with('*'))
}

/// The review as text, after the plan or the check table.
pub(crate) fn text(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "Review: no broad grants in the stack.\n".into();
    }
    let mut out = format!(
        "Review: {} broad grant{} in the stack (advice only: the exit code does not change)\n",
        findings.len(),
        crate::wording::plural(findings.len())
    );
    for f in findings {
        out += &format!("  {:<6} {} {}: {}\n", f.severity.label(), f.resource_kind, f.resource, f.grant.label());
        if f.severity == Severity::Low {
            // Broad by design: one line each, the narrower policy if AWS has one.
            if let Some(n) = f.narrower_managed_policies.first() {
                out += &format!("         narrower for operators who only run the workflow: {n}\n");
            }
            continue;
        }
        out += &format!("         why: {}\n", f.why);
        out += &format!("         instead: {}\n", f.suggestion);
        if let Some(doc) = &f.suggested_policy {
            out += &format!("         {doc}\n");
        }
    }
    if findings.iter().any(|f| f.severity == Severity::Low) {
        out += "  (low: the operator user's *FullAccess policies are what creating the workflow needs; \
                `--output json` has every finding in full)\n";
    }
    out
}

#[cfg(test)]
mod tests;
