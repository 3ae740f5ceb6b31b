//! A stack as a CloudFormation template, for organisations that deploy it to many accounts with StackSets
//! instead of running wfboot in each.
//!
//! The template is built from the stack before rendering: every placeholder becomes a CloudFormation pseudo
//! parameter (`${AWS::Partition}`, `${AWS::AccountId}`, ...) inside `Fn::Sub`, so one template is right in every
//! account and partition it is deployed to. Nothing here calls AWS.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::resources::OWNER_TAG;
use crate::stack::harden;
use crate::stack::template::{self, Placeholder, Segment};
use crate::stack::{Stack, TemplateFile};

/// The parameter that lets a StackSet skip the service-linked roles: CloudFormation fails on one that exists.
pub(crate) const SLR_PARAMETER: &str = "CreateServiceLinkedRoles";
const SLR_CONDITION: &str = "ShouldCreateServiceLinkedRoles";
/// CloudFormation's limit on a template's Description.
const TEMPLATE_DESCRIPTION_MAX: usize = 1024;

/// The CloudFormation template (JSON) equivalent to `stack`, except for the operator user's policies. `harden`:
/// service-role trust documents get the confused-deputy conditions of `--harden`, with pseudo parameters.
pub(crate) fn cloudformation(stack: &Stack, harden: bool) -> Result<Value> {
    let mut ids = LogicalIds::default();
    ids.reserve(SLR_PARAMETER);
    ids.reserve(SLR_CONDITION);
    let mut resources = Map::new();

    let mut policy_ids = BTreeMap::new();
    for p in &stack.policies {
        let id = ids.assign("Policy", &p.name);
        let mut properties = Map::new();
        properties.insert("ManagedPolicyName".into(), json!(p.name));
        properties.insert("Path".into(), json!(p.path));
        if !p.description.is_empty() {
            properties.insert("Description".into(), json!(p.description));
        }
        properties.insert("PolicyDocument".into(), document(&p.document)?);
        resources.insert(id.clone(), json!({"Type": "AWS::IAM::ManagedPolicy", "Properties": properties}));
        policy_ids.insert(p.name.as_str(), id);
    }

    let mut role_ids = BTreeMap::new();
    for r in &stack.roles {
        let id = ids.assign("Role", &r.name);
        let mut arns = Vec::new();
        for m in &r.managed_policies {
            arns.push(managed_policy_arn(m).map_err(|e| e.context(format!("role `{}`", r.name)))?);
        }
        for c in &r.customer_policies {
            let policy = policy_ids.get(c.as_str()).expect("validated at load: customer policies are in the stack");
            arns.push(json!({ "Ref": policy }));
        }
        let mut properties = Map::new();
        properties.insert("RoleName".into(), json!(r.name));
        properties.insert("Path".into(), json!(r.path));
        if !r.description.is_empty() {
            properties.insert("Description".into(), json!(r.description));
        }
        properties.insert("AssumeRolePolicyDocument".into(), trust_document(&r.trust, harden)?);
        if !arns.is_empty() {
            properties.insert("ManagedPolicyArns".into(), Value::Array(arns));
        }
        if let Some(boundary) = stack.boundary_of(r) {
            let arn = managed_policy_arn(boundary)
                .map_err(|e| e.context(format!("role `{}`: permissions boundary", r.name)))?;
            properties.insert("PermissionsBoundary".into(), arn);
        }
        let mut tags = vec![json!({"Key": OWNER_TAG, "Value": stack.name})];
        tags.extend(crate::resources::tags::managed(&stack.tags).iter().map(|(k, v)| json!({"Key": k, "Value": v})));
        properties.insert("Tags".into(), Value::Array(tags));
        resources.insert(id.clone(), json!({"Type": "AWS::IAM::Role", "Properties": properties}));
        role_ids.insert(r.name.as_str(), id);
    }

    for p in &stack.instance_profiles {
        let id = ids.assign("InstanceProfile", &p.name);
        let role = role_ids.get(p.role.as_str()).expect("validated at load: the profile's role is in the stack");
        resources.insert(
            id,
            json!({
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"InstanceProfileName": p.name, "Path": p.path, "Roles": [{"Ref": role}]},
            }),
        );
    }

    for service in &stack.service_linked_roles {
        let id = ids.assign("ServiceLinkedRole", short_service(service));
        // Retained on stack deletion: a service-linked role is shared by everything in the account that uses the
        // service (and wfboot never deletes anything either).
        resources.insert(
            id,
            json!({
                "Type": "AWS::IAM::ServiceLinkedRole",
                "Condition": SLR_CONDITION,
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {"AWSServiceName": service},
            }),
        );
    }

    let mut out = Map::new();
    out.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
    out.insert("Description".into(), json!(description(stack)));
    out.insert("Metadata".into(), metadata(stack));
    if !stack.service_linked_roles.is_empty() {
        out.insert(
            "Parameters".into(),
            json!({
                SLR_PARAMETER: {
                    "Type": "String",
                    "AllowedValues": ["true", "false"],
                    "Default": "true",
                    "Description": format!(
                        "Create the service-linked roles for {}. Set to false in accounts that already have them: \
                         CloudFormation fails on a service-linked role that exists.",
                        stack.service_linked_roles.join(", ")
                    ),
                }
            }),
        );
        out.insert("Conditions".into(), json!({ SLR_CONDITION: {"Fn::Equals": [{"Ref": SLR_PARAMETER}, "true"]} }));
    }
    out.insert("Resources".into(), Value::Object(resources));
    Ok(sorted(Value::Object(out)))
}

/// Keys in alphabetical order at every level, so the output is the same whether or not serde_json preserves
/// insertion order (a feature another crate in the build may switch on).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> = map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn description(stack: &Stack) -> String {
    let mut notes = vec![
        "Roles and policies have fixed names: deploy with CAPABILITY_NAMED_IAM.".to_string(),
        "The operator user's managed policies are not included (see Metadata).".to_string(),
    ];
    if !stack.service_linked_roles.is_empty() {
        notes.push(format!(
            "Set {SLR_PARAMETER}=false in accounts where the service-linked roles already exist \
             (CloudFormation fails on one that exists)."
        ));
    }
    let notes = notes.join(" ");
    let head = format!("wfboot stack {}", stack.name);
    let room = TEMPLATE_DESCRIPTION_MAX.saturating_sub(head.len() + notes.len() + 4);
    let mut text = stack.description.trim().trim_end_matches('.').to_string();
    if text.len() > room {
        let mut end = room.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text = format!("{}...", &text[..end]);
    }
    if text.is_empty() {
        format!("{head}. {notes}")
    } else {
        format!("{head}: {text}. {notes}")
    }
}

fn metadata(stack: &Stack) -> Value {
    // AWS managed policies by name, as a stack file writes them; anything else as written.
    let aws_managed = "arn:{{partition}}:iam::aws:policy/";
    let user: Vec<&str> = stack.user_policies.iter().map(|arn| arn.strip_prefix(aws_managed).unwrap_or(arn)).collect();
    json!({
        "wfboot": {
            "Stack": stack.name,
            "GeneratedBy": format!("wfboot {} export --format cloudformation", env!("CARGO_PKG_VERSION")),
            "OperatorUserManagedPolicies": user,
            "OperatorUserCustomerPolicies": stack.user_customer_policies,
            "NotExported": "The operator user's policies (OperatorUserManagedPolicies, and the stack's own \
                            OperatorUserCustomerPolicies, which are exported as policies): users are per person, \
                            so attach these to each operator's IAM user or group (wfboot bootstrap does it).",
            "Partitions": "Written for aws, aws-cn and aws-us-gov: service principals are <service>.amazonaws.com \
                           except ec2, application-autoscaling and elasticmapreduce, which use AWS::URLSuffix \
                           (amazonaws.com.cn in China).",
            "Tags": format!(
                "Roles carry the {OWNER_TAG} tag and the stack's tags (with {} recording their keys), as when wfboot \
                 creates them; CloudFormation cannot tag managed policies and instance profiles \
                 (AWS::IAM::ManagedPolicy and AWS::IAM::InstanceProfile have no Tags property).",
                crate::resources::tags::KEYS_TAG
            ),
        }
    })
}

/// Logical ids: letters and digits only (CloudFormation's rule), from the resource kind and name, unique.
#[derive(Default)]
struct LogicalIds(BTreeSet<String>);

impl LogicalIds {
    fn reserve(&mut self, id: &str) {
        self.0.insert(id.to_ascii_lowercase());
    }

    /// `Role` + `SLIM-Extras_for_Lambda` -> `RoleSLIMExtrasForLambda`; a second one gets `2`, then `3`, ...
    /// Compared case-insensitively, so ids never differ only in case.
    fn assign(&mut self, kind: &str, name: &str) -> String {
        let mut base = kind.to_string();
        for word in name.split(|c: char| !c.is_ascii_alphanumeric()) {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                base.push(first.to_ascii_uppercase());
                base.extend(chars);
            }
        }
        let mut id = base.clone();
        let mut n = 2;
        while !self.0.insert(id.to_ascii_lowercase()) {
            id = format!("{base}{n}");
            n += 1;
        }
        id
    }
}

fn short_service(service: &str) -> &str {
    service.strip_suffix(".amazonaws.com").unwrap_or(service)
}

/// A document template as JSON, each string with placeholders turned into `Fn::Sub`.
fn document(t: &TemplateFile) -> Result<Value> {
    template_json(t).and_then(|raw| substituted(t, raw))
}

/// A trust document template as JSON; `harden` adds the conditions before the placeholders become pseudo
/// parameters, so account and partition are the deploying account's.
fn trust_document(t: &TemplateFile, harden: bool) -> Result<Value> {
    let raw = template_json(t)?;
    let raw = if harden { harden::harden_trust(&raw, "{{partition}}", "{{account_id}}").0 } else { raw };
    substituted(t, raw)
}

fn template_json(t: &TemplateFile) -> Result<Value> {
    // Placeholders are checked first, so their errors name a line of the file.
    template::segments(&t.text).map_err(|e| Error::input(format!("{}: {e}", t.name)))?;
    serde_json::from_str(&t.text).map_err(|e| {
        Error::input(format!("{}: cannot export: not valid JSON before rendering: {e}", t.name))
            .with_help("write placeholders inside JSON strings, e.g. \"arn:{{partition}}:s3:::*\"")
    })
}

fn substituted(t: &TemplateFile, raw: Value) -> Result<Value> {
    substitute(raw).map_err(|e| Error::input(format!("{}: cannot export: {e}", t.name)))
}

fn substitute(value: Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => sub(&s)?,
        Value::Array(items) => Value::Array(items.into_iter().map(substitute).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, v) in map {
                if key.contains("{{") {
                    return Err(format!("the key `{key}` has a placeholder; CloudFormation substitutes only values"));
                }
                out.insert(key, substitute(v)?);
            }
            Value::Object(out)
        }
        other => other,
    })
}

/// A string whose placeholders need pseudo parameters becomes `{"Fn::Sub": ...}`; any other string is plain, so a
/// literal `${...}` (an IAM policy variable such as `${aws:username}`) needs escaping only inside `Fn::Sub`, as
/// `${!...}`. (`{{principal:lambda}}` is `lambda.amazonaws.com` everywhere: no `Fn::Sub`, which cfn-lint flags.)
fn sub(text: &str) -> Result<Value, String> {
    let mut escaped = String::with_capacity(text.len() + 32);
    let mut plain = String::with_capacity(text.len() + 32);
    let mut variables = false;
    for segment in template::segments(text)? {
        match segment {
            Segment::Literal(s) => {
                escaped.push_str(&s.replace("${", "${!"));
                plain.push_str(s);
            }
            Segment::Placeholder(p) => {
                let value = pseudo_parameter(p);
                variables |= value.contains("${");
                escaped.push_str(&value);
                plain.push_str(&value);
            }
        }
    }
    Ok(if variables { json!({ "Fn::Sub": escaped }) } else { Value::String(plain) })
}

/// A placeholder as `Fn::Sub` text. `AWS::URLSuffix` is `amazonaws.com` in aws and aws-us-gov and
/// `amazonaws.com.cn` in aws-cn, which is exactly where the China exceptions differ.
fn pseudo_parameter(p: Placeholder<'_>) -> String {
    match p {
        Placeholder::Partition => "${AWS::Partition}".into(),
        Placeholder::AccountId => "${AWS::AccountId}".into(),
        Placeholder::Region => "${AWS::Region}".into(),
        Placeholder::DnsSuffix => "${AWS::URLSuffix}".into(),
        Placeholder::Principal(service) => {
            let short = short_service(service);
            if template::dot_cn_in_china(short) {
                format!("{short}.${{AWS::URLSuffix}}")
            } else {
                format!("{short}.amazonaws.com")
            }
        }
    }
}

/// An AWS-managed (or account-local) policy ARN template as `Fn::Sub`. A partition written literally becomes
/// `${AWS::Partition}` (wfboot refuses an ARN from another partition, so this is the same policy wherever the stack
/// applies); an account id written literally cannot be right in every account a StackSet deploys to.
fn managed_policy_arn(arn_template: &str) -> Result<Value> {
    let parts: Vec<&str> = arn_template.splitn(6, ':').collect();
    let [_, _, service, region, account, resource] = parts[..] else {
        return Err(Error::input(format!("managed policy `{arn_template}` is not an ARN")));
    };
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::input(format!(
            "cannot export managed policy `{arn_template}`: it names account {account}, and a StackSet deploys the \
             template to many accounts"
        ))
        .with_help(
            "write it as arn:{{partition}}:iam::{{account_id}}:policy/NAME (the policy in each account), or define \
             it in the stack as a [[policy]]",
        ));
    }
    sub(&format!("arn:{{{{partition}}}}:{service}:{region}:{account}:{resource}")).map_err(Error::input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{builtin, Target};

    fn built_in() -> Vec<Stack> {
        builtin::names().map(|n| Stack::resolve(Some(n)).unwrap()).collect()
    }

    fn stack_with(policy_doc: &str, toml_extra: &str) -> Stack {
        let dir = std::env::temp_dir().join(format!("wfboot-export-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("doc.json"), policy_doc).unwrap();
        let toml = format!(
            "name = \"t\"\ntemplates = \".\"\n[[policy]]\nname = \"P\"\npath = \"/team/\"\ndocument = \"doc.json\"\n\
             [[role]]\nname = \"R\"\ntrust = \"ec2-trust-policy.json\"\ncustomer_policies = [\"P\"]\n{toml_extra}"
        );
        let file = dir.join("t.toml");
        std::fs::write(&file, toml).unwrap();
        let stack = Stack::load_file(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        stack
    }

    fn unique() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    /// Every string in `v`, with whether it is the value of an `Fn::Sub`.
    fn strings(v: &Value, in_sub: bool, out: &mut Vec<(String, bool)>) {
        match v {
            Value::String(s) => out.push((s.clone(), in_sub)),
            Value::Array(items) => items.iter().for_each(|i| strings(i, in_sub, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    out.push((k.clone(), false));
                    strings(v, k == "Fn::Sub", out);
                }
            }
            _ => {}
        }
    }

    /// What CloudFormation makes of the template's values in `target`: Fn::Sub evaluated, Refs to policies as ARNs.
    fn evaluate(v: &Value, target: &Target, policy_arns: &BTreeMap<String, String>) -> Value {
        match v {
            Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Sub") => {
                let s = map["Fn::Sub"].as_str().unwrap();
                let url_suffix = if target.partition == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" };
                let mut out = String::new();
                let mut rest = s;
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let end = rest[start..].find('}').unwrap() + start;
                    let name = &rest[start + 2..end];
                    out.push_str(&match name {
                        "AWS::Partition" => target.partition.clone(),
                        "AWS::AccountId" => target.account_id.clone(),
                        "AWS::Region" => target.region.clone(),
                        "AWS::URLSuffix" => url_suffix.to_string(),
                        literal if literal.starts_with('!') => format!("${{{}}}", &literal[1..]),
                        other => panic!("unknown variable {other} in {s}"),
                    });
                    rest = &rest[end + 1..];
                }
                out.push_str(rest);
                Value::String(out)
            }
            Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => {
                match policy_arns.get(map["Ref"].as_str().unwrap()) {
                    Some(arn) => Value::String(arn.clone()),
                    None => v.clone(),
                }
            }
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), evaluate(v, target, policy_arns))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(|i| evaluate(i, target, policy_arns)).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn output_is_deterministic() {
        for stack in built_in() {
            let a = serde_json::to_string_pretty(&cloudformation(&stack, false).unwrap()).unwrap();
            let b = serde_json::to_string_pretty(&cloudformation(&stack.clone(), false).unwrap()).unwrap();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn no_account_id_partition_or_placeholder_is_written_literally() {
        for stack in built_in() {
            let t = cloudformation(&stack, false).unwrap();
            let text = t.to_string();
            assert!(!text.contains("{{"), "{}: unrendered placeholder in {text}", stack.name);
            for partition in ["aws", "aws-cn", "aws-us-gov"] {
                assert!(!text.contains(&format!("arn:{partition}:")), "{}: literal partition in {text}", stack.name);
            }
            assert!(!text.contains(".amazonaws.com.cn"), "{}: China principal written literally", stack.name);
            let digits12 = text.as_bytes().windows(12).any(|w| w.iter().all(u8::is_ascii_digit));
            assert!(!digits12, "{}: something like an account id in {text}", stack.name);
            let mut all = Vec::new();
            strings(&t, false, &mut all);
            for (s, in_sub) in all {
                assert!(!s.contains("${AWS::") || in_sub, "{}: `{s}` needs Fn::Sub", stack.name);
            }
        }
    }

    #[test]
    fn logical_ids_are_alphanumeric_and_refs_and_conditions_resolve() {
        for stack in built_in() {
            let t = cloudformation(&stack, false).unwrap();
            let resources = t["Resources"].as_object().unwrap();
            let parameters = t.get("Parameters").and_then(Value::as_object).cloned().unwrap_or_default();
            let conditions = t.get("Conditions").and_then(Value::as_object).cloned().unwrap_or_default();
            for id in resources.keys().chain(parameters.keys()).chain(conditions.keys()) {
                assert!(!id.is_empty() && id.len() <= 255 && id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
            }
            let expected = stack.policies.len()
                + stack.roles.len()
                + stack.instance_profiles.len()
                + stack.service_linked_roles.len();
            assert_eq!(resources.len(), expected, "{}", stack.name);
            fn refs(v: &Value, out: &mut Vec<String>, conds: &mut Vec<String>) {
                match v {
                    Value::Object(map) => {
                        for (k, v) in map {
                            match (k.as_str(), v) {
                                ("Ref", Value::String(s)) => out.push(s.clone()),
                                ("Condition", Value::String(s)) => conds.push(s.clone()),
                                _ => refs(v, out, conds),
                            }
                        }
                    }
                    Value::Array(items) => items.iter().for_each(|i| refs(i, out, conds)),
                    _ => {}
                }
            }
            let (mut r, mut c) = (Vec::new(), Vec::new());
            refs(&t, &mut r, &mut c);
            assert!(!r.is_empty());
            for id in r {
                assert!(resources.contains_key(&id) || parameters.contains_key(&id), "{}: Ref {id}", stack.name);
            }
            for id in c {
                assert!(conditions.contains_key(&id), "{}: Condition {id}", stack.name);
            }
        }
    }

    #[test]
    fn the_default_stack_exports_as_expected() {
        let t = cloudformation(&Stack::resolve(None).unwrap(), false).unwrap();
        let r = &t["Resources"];
        let lambda = &r["RoleSLIMExtrasForLambda"];
        assert_eq!(lambda["Type"], "AWS::IAM::Role");
        assert_eq!(lambda["Properties"]["RoleName"], "SLIM-Extras_for_Lambda");
        assert_eq!(lambda["Properties"]["Tags"], json!([{"Key": "wfboot:stack", "Value": "slim-workflow"}]));
        let arns = lambda["Properties"]["ManagedPolicyArns"].as_array().unwrap();
        assert!(arns.contains(&json!({"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSLambda_FullAccess"})));
        assert!(arns.contains(&json!({"Ref": "PolicyLambdaBatchExecutionPolicy"})));
        assert_eq!(r["PolicyLambdaBatchExecutionPolicy"]["Type"], "AWS::IAM::ManagedPolicy");
        let ec2 = &r["RoleSLIMExtrasECSForEC2"]["Properties"]["AssumeRolePolicyDocument"];
        assert_eq!(ec2["Statement"][0]["Principal"]["Service"], json!({"Fn::Sub": "ec2.${AWS::URLSuffix}"}));
        let lambda_trust = &lambda["Properties"]["AssumeRolePolicyDocument"];
        assert_eq!(lambda_trust["Statement"][0]["Principal"]["Service"], "lambda.amazonaws.com");
        assert_eq!(
            r["InstanceProfileSLIMExtrasECSForEC2"]["Properties"]["Roles"],
            json!([{"Ref": "RoleSLIMExtrasECSForEC2"}])
        );
        let spot = &r["ServiceLinkedRoleSpot"];
        assert_eq!(spot["Properties"]["AWSServiceName"], "spot.amazonaws.com");
        assert_eq!(spot["Condition"], SLR_CONDITION);
        assert_eq!(t["Parameters"][SLR_PARAMETER]["Default"], "true");
        let description = t["Description"].as_str().unwrap();
        assert!(description.contains(SLR_PARAMETER) && description.contains("operator user"), "{description}");
        assert!(description.len() <= TEMPLATE_DESCRIPTION_MAX);
        assert_eq!(t["Metadata"]["wfboot"]["OperatorUserManagedPolicies"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn a_stack_without_service_linked_roles_has_no_parameter() {
        let t = cloudformation(&Stack::resolve(Some("render-worker")).unwrap(), false).unwrap();
        assert!(t.get("Parameters").is_none() && t.get("Conditions").is_none());
        assert!(!t["Description"].as_str().unwrap().contains(SLR_PARAMETER));
    }

    /// Evaluated by CloudFormation in an account, the template has the documents and ARNs wfboot renders there,
    /// with and without `--harden`.
    #[test]
    fn evaluated_for_an_account_it_matches_what_wfboot_renders() {
        for (stack, hardened) in built_in().into_iter().flat_map(|s| [(s.clone(), false), (s, true)]) {
            let t = cloudformation(&stack, hardened).unwrap();
            for partition in ["aws", "aws-cn", "aws-us-gov"] {
                let target = Target {
                    partition: partition.into(),
                    account_id: "111122223333".into(),
                    region: "eu-west-1".into(),
                };
                let mut desired = stack.render(&target).unwrap();
                if hardened {
                    crate::stack::harden::harden(&mut desired).unwrap();
                }
                let mut policy_arns = BTreeMap::new();
                for (id, r) in t["Resources"].as_object().unwrap() {
                    if r["Type"] == "AWS::IAM::ManagedPolicy" {
                        let name = r["Properties"]["ManagedPolicyName"].as_str().unwrap();
                        let arn = desired.policies.iter().find(|p| p.name == name).unwrap().arn.clone();
                        policy_arns.insert(id.clone(), arn);
                    }
                }
                let e = evaluate(&t["Resources"], &target, &policy_arns);
                let resources: Vec<&Value> = e.as_object().unwrap().values().collect();
                for p in &desired.policies {
                    let r = resources.iter().find(|r| r["Properties"]["ManagedPolicyName"] == p.name.as_str()).unwrap();
                    assert_eq!(r["Properties"]["PolicyDocument"], p.document, "{} {partition}", p.name);
                    assert_eq!(r["Properties"]["Path"], p.path.as_str());
                }
                for d in &desired.roles {
                    let r = resources.iter().find(|r| r["Properties"]["RoleName"] == d.name.as_str()).unwrap();
                    assert_eq!(r["Properties"]["AssumeRolePolicyDocument"], d.trust, "{} {partition}", d.name);
                    let arns: Vec<&str> = r["Properties"]["ManagedPolicyArns"]
                        .as_array()
                        .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
                        .unwrap_or_default();
                    assert_eq!(arns, d.policy_arns, "{} {partition}", d.name);
                }
            }
        }
    }

    #[test]
    fn policy_variables_are_escaped_for_fn_sub_and_left_alone_elsewhere() {
        let doc = r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:{{partition}}:s3:::home/${aws:username}/*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
             "Condition": {"StringLike": {"s3:prefix": "${aws:username}/*"}}},
            {"Effect": "Allow", "Action": "logs:*",
             "Resource": "arn:{{partition}}:logs:{{region}}:{{account_id}}:log-group:/x/*"}]}"#;
        let t = cloudformation(&stack_with(doc, ""), false).unwrap();
        let s = &t["Resources"]["PolicyP"]["Properties"]["PolicyDocument"]["Statement"];
        assert_eq!(s[0]["Resource"], json!({"Fn::Sub": "arn:${AWS::Partition}:s3:::home/${!aws:username}/*"}));
        assert_eq!(s[1]["Condition"]["StringLike"]["s3:prefix"], "${aws:username}/*");
        assert_eq!(
            s[2]["Resource"],
            json!({"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/x/*"})
        );
        assert_eq!(t["Resources"]["PolicyP"]["Properties"]["Path"], "/team/");
        assert_eq!(t["Resources"]["RoleR"]["Properties"]["ManagedPolicyArns"], json!([{"Ref": "PolicyP"}]));
        let target = Target { partition: "aws".into(), account_id: "111122223333".into(), region: "us-east-1".into() };
        let evaluated = evaluate(s, &target, &BTreeMap::new());
        assert_eq!(evaluated[0]["Resource"], "arn:aws:s3:::home/${aws:username}/*");
    }

    #[test]
    fn colliding_names_get_distinct_ids() {
        let mut ids = LogicalIds::default();
        ids.reserve(SLR_PARAMETER);
        assert_eq!(ids.assign("Role", "SLIM-Extras_for_Lambda"), "RoleSLIMExtrasForLambda");
        assert_eq!(ids.assign("Role", "SLIM.Extras+for@Lambda"), "RoleSLIMExtrasForLambda2");
        assert_eq!(ids.assign("Role", "slim_extras_for_lambda"), "RoleSlimExtrasForLambda3");
        assert_eq!(ids.assign("Create", "ServiceLinkedRoles"), "CreateServiceLinkedRoles2");
    }

    #[test]
    fn literal_arns_lose_their_partition_and_may_not_name_an_account() {
        assert_eq!(
            managed_policy_arn("arn:aws:iam::aws:policy/AmazonS3FullAccess").unwrap(),
            json!({"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonS3FullAccess"})
        );
        assert_eq!(
            managed_policy_arn("arn:{{partition}}:iam::{{account_id}}:policy/team/Mine").unwrap(),
            json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/team/Mine"})
        );
        let err = managed_policy_arn("arn:aws:iam::111122223333:policy/Mine").unwrap_err();
        assert!(err.message.contains("account 111122223333") && err.help.is_some(), "{err}");
    }

    #[test]
    fn a_placeholder_in_a_json_key_or_outside_a_string_cannot_be_exported() {
        let doc = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion/{{region}}": "x"}}}]}"#;
        let err = cloudformation(&stack_with(doc, ""), false).unwrap_err();
        assert!(err.message.contains("cannot export") && err.message.contains("key"), "{err}");
        let doc = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"NumericLessThan": {"s3:max-keys": {{account_id}}}}}]}"#;
        let err = cloudformation(&stack_with(doc, ""), false).unwrap_err();
        assert!(err.message.contains("not valid JSON before rendering") && err.help.is_some(), "{err}");
    }
}
