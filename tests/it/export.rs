//! `wfboot export --format cloudformation`: every built-in stack and a stack file become templates that
//! cfn-lint (from the repository's venv, pinned in tools/requirements.txt) accepts for the aws, aws-cn and
//! aws-us-gov partitions.
//!
//! cfn-lint must exit 0: no errors and no warnings. Warnings fail too, because the ones an export can cause
//! (an `Fn::Sub` without variables, a hard-coded partition) are export bugs. Informational checks are not
//! enabled (cfn-lint's default); at the time of writing they report nothing either.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use crate::common::*;
use serde_json::{json, Value};

/// One region per partition the template is written for.
const REGIONS: &[&str] = &["us-east-1", "cn-north-1", "us-gov-west-1"];

fn cfn_lint() -> PathBuf {
    let path = repo().join(".venv/bin/cfn-lint");
    assert!(
        path.exists(),
        "cfn-lint is not installed at {}: run scripts/setup-emulator.sh, which installs tools/requirements.txt into \
         .venv (scripts/test.sh does it for you)",
        path.display()
    );
    path
}

/// Runs cfn-lint on `files` and fails the test with every finding if it does not exit 0.
fn assert_lints_clean(files: &[PathBuf]) {
    let out = StdCommand::new(cfn_lint())
        .args(["--format", "json", "--regions"])
        .args(REGIONS)
        .arg("--")
        .args(files)
        .output()
        .expect("cfn-lint runs");
    let findings: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cfn-lint printed no JSON ({e}); exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        )
    });
    let report: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {}:{}: {}",
                f["Level"].as_str().unwrap_or("?"),
                f["Rule"]["Id"].as_str().unwrap_or("?"),
                f["Filename"].as_str().unwrap_or("?"),
                f["Location"]["Start"]["LineNumber"],
                f["Message"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert!(
        out.status.success() && findings.is_empty(),
        "cfn-lint exit {:?} on {files:?}:\n{}\n{}",
        out.status.code(),
        report.join("\n"),
        stderr(&out)
    );
}

/// `wfboot export` for `stack`, checked to be a JSON template without literal partitions or placeholders.
fn export(stack: &str) -> Value {
    let out = wfboot_isolated().args(["export", "--format", "cloudformation", "--stack", stack]).output().unwrap();
    assert!(out.status.success(), "export {stack}: exit {:?}: {}", out.status.code(), stderr(&out));
    let text = stdout(&out);
    let template: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("export {stack}: not JSON: {e}"));
    assert_eq!(template["AWSTemplateFormatVersion"], "2010-09-09");
    assert!(!template["Resources"].as_object().unwrap().is_empty());
    assert!(!text.contains("arn:aws:") && !text.contains("{{"), "export {stack}:\n{text}");
    template
}

fn write_template(dir: &Path, name: &str, template: &Value) -> PathBuf {
    write_file(dir, &format!("{name}.json"), &serde_json::to_string_pretty(template).unwrap())
}

#[test]
fn every_built_in_stack_exports_a_template_cfn_lint_accepts() {
    cfn_lint(); // fail first, and clearly, if it is missing
    let out = wfboot_isolated().args(["stacks", "--output", "json"]).output().unwrap();
    let stacks: Value = serde_json::from_slice(&out.stdout).expect("stacks --output json");
    let names: Vec<&str> = stacks.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"slim-workflow") && names.contains(&"render-worker"), "{names:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in &names {
        let template = export(name);
        let summary = stacks.as_array().unwrap().iter().find(|s| s["name"] == *name).unwrap();
        let count = |kind: &str| {
            template["Resources"].as_object().unwrap().values().filter(|r| r["Type"] == kind).count() as u64
        };
        assert_eq!(count("AWS::IAM::Role"), summary["roles"].as_u64().unwrap(), "{name}");
        assert_eq!(count("AWS::IAM::ManagedPolicy"), summary["policies"].as_u64().unwrap(), "{name}");
        assert_eq!(count("AWS::IAM::InstanceProfile"), summary["instance_profiles"].as_u64().unwrap(), "{name}");
        assert_eq!(count("AWS::IAM::ServiceLinkedRole"), summary["service_linked_roles"].as_u64().unwrap(), "{name}");
        files.push(write_template(dir.path(), name, &template));
    }
    assert_lints_clean(&files);
}

#[test]
fn a_stack_file_with_paths_and_a_customer_policy_exports_a_template_cfn_lint_accepts() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "home_policy.json",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "OwnHomePrefix",
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject"],
      "Resource": "arn:{{partition}}:s3:::workflow-home-{{account_id}}/${aws:username}/*"
    },
    {
      "Sid": "Logs",
      "Effect": "Allow",
      "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
      "Resource": "arn:{{partition}}:logs:{{region}}:{{account_id}}:log-group:/workflow/*"
    },
    {
      "Sid": "ViaS3Only",
      "Effect": "Allow",
      "Action": "kms:Decrypt",
      "Resource": "*",
      "Condition": { "StringEquals": { "kms:ViaService": "s3.{{region}}.{{dns_suffix}}" } }
    }
  ]
}"#,
    );
    write_file(
        dir.path(),
        "trust.json",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Principal": { "Service": ["{{principal:ec2}}", "{{principal:ecs-tasks}}"] },
      "Action": "sts:AssumeRole"
    }
  ]
}"#,
    );
    let stack = write_file(
        dir.path(),
        "team.toml",
        r#"
name = "team-workflow"
description = "A team's workers"
templates = "."

[[policy]]
name = "WorkflowHomeAccess"
path = "/workflow/"
description = "Each user's S3 prefix, and the workflow's logs."
document = "home_policy.json"

[[role]]
name = "Workflow-Worker_role"
path = "/workflow/"
description = "Workflow workers on EC2 and ECS."
trust = "trust.json"
managed_policies = ["service-role/AmazonEC2ContainerServiceforEC2Role", "arn:{{partition}}:iam::aws:policy/AmazonSQSFullAccess"]
customer_policies = ["WorkflowHomeAccess"]

[[instance_profile]]
name = "WorkflowWorkerProfile"
path = "/workflow/"
role = "Workflow-Worker_role"

[[service_linked_role]]
service = "autoscaling.amazonaws.com"
"#,
    );
    let template = export(stack.to_str().unwrap());
    let r = &template["Resources"];
    let policy = &r["PolicyWorkflowHomeAccess"]["Properties"];
    assert_eq!(policy["Path"], "/workflow/");
    assert_eq!(
        policy["PolicyDocument"]["Statement"][0]["Resource"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:s3:::workflow-home-${AWS::AccountId}/${!aws:username}/*"})
    );
    assert_eq!(
        policy["PolicyDocument"]["Statement"][2]["Condition"]["StringEquals"]["kms:ViaService"],
        json!({"Fn::Sub": "s3.${AWS::Region}.${AWS::URLSuffix}"})
    );
    let role = &r["RoleWorkflowWorkerRole"]["Properties"];
    assert_eq!(role["Path"], "/workflow/");
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
        json!([{"Fn::Sub": "ec2.${AWS::URLSuffix}"}, "ecs-tasks.amazonaws.com"])
    );
    assert_eq!(
        role["ManagedPolicyArns"],
        json!([
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"},
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSQSFullAccess"},
            {"Ref": "PolicyWorkflowHomeAccess"}
        ])
    );
    assert_eq!(role["Tags"], json!([{"Key": "wfboot:stack", "Value": "team-workflow"}]));
    assert_eq!(
        r["InstanceProfileWorkflowWorkerProfile"]["Properties"]["Roles"],
        json!([{"Ref": "RoleWorkflowWorkerRole"}])
    );
    assert_eq!(r["ServiceLinkedRoleAutoscaling"]["Condition"], "ShouldCreateServiceLinkedRoles");
    assert_eq!(template["Parameters"]["CreateServiceLinkedRoles"]["Default"], "true");
    assert_lints_clean(&[write_template(dir.path(), "team-workflow", &template)]);
}

#[test]
fn the_template_is_json_whatever_the_output_flag_and_needs_no_aws() {
    // No credentials, no endpoint: an AWS call would fail, so success means none was made.
    let out = wfboot_isolated().args(["export", "--output", "text"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let template: Value = serde_json::from_slice(&out.stdout).expect("JSON even with --output text");
    assert!(template["Resources"]["RoleSLIMExtrasForLambda"].is_object());
    assert!(stderr(&out).contains("CAPABILITY_NAMED_IAM"), "{}", stderr(&out));
    let quiet = wfboot_isolated().args(["export", "-q"]).output().unwrap();
    assert!(quiet.status.success() && quiet.stderr.is_empty(), "{}", stderr(&quiet));
    assert_eq!(quiet.stdout, out.stdout, "the same template every time");
}

#[test]
fn unsupported_formats_and_bad_stacks_fail_before_printing_anything() {
    for (args, code) in [
        (vec!["export", "--format", "terraform"], 64),
        (vec!["export", "--format", "yaml"], 64),
        (vec!["export", "--stack", "no-such-stack"], 65),
    ] {
        let out = wfboot_isolated().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let stack = write_file(
        dir.path(),
        "pinned.toml",
        "name = \"pinned\"\n[[role]]\nname = \"R\"\ntrust = \"ec2-trust-policy.json\"\n\
         managed_policies = [\"arn:aws:iam::111122223333:policy/OneAccountOnly\"]\n",
    );
    let out = wfboot_isolated().args(["export", "--stack", stack.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("account 111122223333") && stderr(&out).contains("help:"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn export_harden_adds_the_confused_deputy_conditions_with_pseudo_parameters_and_cfn_lint_accepts_it() {
    cfn_lint();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in ["slim-workflow", "render-worker"] {
        let out = wfboot_isolated().args(["export", "--harden", "--stack", name]).output().unwrap();
        assert!(out.status.success(), "export --harden {name}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains("arn:aws:") && !text.contains("{{"), "{text}");
        let template: Value = serde_json::from_str(&text).unwrap();
        files.push(write_template(dir.path(), &format!("{name}-hardened"), &template));
        if name != "slim-workflow" {
            continue;
        }
        let trust = |role: &str| template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"].clone();
        for (role, arn) in [
            ("RoleAWSBatchServiceRole", "arn:${AWS::Partition}:batch:*:${AWS::AccountId}:*"),
            ("RoleStepFunctionsLambdaRole", "arn:${AWS::Partition}:states:*:${AWS::AccountId}:stateMachine:*"),
            ("RoleAmazonEC2SpotFleetRole", "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:spot-fleet-request/sfr-*"),
        ] {
            assert_eq!(
                trust(role)["Statement"][0]["Condition"],
                json!({"StringEquals": {"aws:SourceAccount": {"Fn::Sub": "${AWS::AccountId}"}},
                       "ArnLike": {"aws:SourceArn": {"Fn::Sub": arn}}}),
                "{role}"
            );
        }
        for role in ["RoleSLIMExtrasECSForEC2", "RoleSLIMExtrasForLambda"] {
            assert!(trust(role)["Statement"][0].get("Condition").is_none(), "{role}: {}", trust(role));
        }
    }
    assert_lints_clean(&files);
}

/// An organisation's guardrails in the template: the boundary (the stack's, a role's own, none for one role) as
/// each role's PermissionsBoundary in every account of the StackSet, and the stack's and `--tag`'s tags with the
/// record of their keys, as wfboot sets them; cfn-lint clean for aws, aws-cn and aws-us-gov.
#[test]
fn export_with_a_permissions_boundary_and_tags_is_cfn_lint_clean_in_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let stack = std::fs::read_to_string(repo().join("profiles/slim-workflow.toml")).unwrap();
    let stack = stack
        .replacen(
            "\n[user]",
            "\npermissions_boundary = \"boundaries/WorkloadBoundary\"\n\n[tags]\nCostCenter = \"42\"\n\n[user]",
            1,
        )
        .replacen(
            "trust = \"create_StepFunctionsLambdaRole.json\"",
            "trust = \"create_StepFunctionsLambdaRole.json\"\npermissions_boundary = \"arn:{{partition}}:iam::aws:policy/PowerUserAccess\"",
            1,
        )
        .replacen(
            "trust = \"create_AmazonEC2SpotFleetRole.json\"",
            "trust = \"create_AmazonEC2SpotFleetRole.json\"\npermissions_boundary = \"\"",
            1,
        );
    let path = write_file(dir.path(), "profiles/guarded.toml", &stack);
    let out = wfboot_isolated().args(["export", "--tag", "team=imaging", "--stack"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let template: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &template["Resources"];
    assert_eq!(
        r["RoleAWSBatchServiceRole"]["Properties"]["PermissionsBoundary"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/boundaries/WorkloadBoundary"})
    );
    assert_eq!(
        r["RoleStepFunctionsLambdaRole"]["Properties"]["PermissionsBoundary"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/PowerUserAccess"})
    );
    assert!(r["RoleAmazonEC2SpotFleetRole"]["Properties"].get("PermissionsBoundary").is_none());
    assert_eq!(
        r["RoleAWSBatchServiceRole"]["Properties"]["Tags"],
        json!([
            {"Key": "wfboot:stack", "Value": "slim-workflow"},
            {"Key": "CostCenter", "Value": "42"},
            {"Key": "team", "Value": "imaging"},
            {"Key": "wfboot:tags", "Value": "CostCenter team"}
        ])
    );
    assert_lints_clean(&[write_template(dir.path(), "guarded", &template)]);
}

/// `tools/cfn_deploy.py`: the template deployed to the emulator's CloudFormation in `region`, as one stack instance
/// of a StackSet, with parameter overrides; (status, error code).
fn deploy(
    emu: &Emulator,
    region: &str,
    name: &str,
    template: &Path,
    params: &[&str],
) -> (Option<String>, Option<String>) {
    let out = StdCommand::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tools/cfn_deploy.py"))
        .args([&emu.url, region, name, template.to_str().unwrap()])
        .args(params)
        .env("AWS_ACCESS_KEY_ID", ADMIN_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "admin-secret")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    (v["status"].as_str().map(str::to_string), v["error"].as_str().map(str::to_string))
}

/// A StackSet of the default stack over accounts that already have the service-linked roles
/// (awslabs/landing-zone-accelerator-on-aws#221: AWS::IAM::ServiceLinkedRole fails on one that exists) and over two
/// regions of one account (IAM names are account-wide): the stack instance's parameter override
/// CreateServiceLinkedRoles=false deploys without touching them, and the second region's instance deploys from an
/// export with --name-suffix, whose documents name the suffixed roles. Deployed by the emulator's CloudFormation.
#[tokio::test]
async fn a_stackset_instance_with_service_linked_roles_present_and_a_second_region_deploys_with_the_override_and_a_suffix(
) {
    let emu = Emulator::start();
    let iam = emu.admin().await;
    for service in ["spot.amazonaws.com", "spotfleet.amazonaws.com", "batch.amazonaws.com"] {
        iam.create_service_linked_role().aws_service_name(service).send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let exported = |name: &str, extra: &[&str]| {
        let out = wfboot_isolated().args(["export", "--tag", "CostCenter=42"]).args(extra).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let template: Value = serde_json::from_slice(&out.stdout).unwrap();
        write_template(dir.path(), name, &template)
    };
    let plain = exported("plain", &[]);
    let no_slr = "CreateServiceLinkedRoles=false";
    assert_eq!(deploy(&emu, "us-east-1", "wfboot", &plain, &[no_slr]), (Some("CREATE_COMPLETE".into()), None));
    let roles = iam.list_roles().send().await.unwrap();
    let slrs = roles.roles().iter().filter(|r| r.path().starts_with("/aws-service-role/")).count();
    assert_eq!(slrs, 3, "the existing service-linked roles are left as they are");
    // The same names in a second region of the account clash.
    let (status, error) = deploy(&emu, "eu-west-1", "wfboot", &plain, &[no_slr]);
    assert_eq!((status, error.as_deref()), (None, Some("EntityAlreadyExists")));

    let suffixed = exported("suffixed", &["--name-suffix=-eu-west-1"]);
    assert_eq!(
        deploy(&emu, "eu-west-1", "wfboot-suffixed", &suffixed, &[no_slr]),
        (Some("CREATE_COMPLETE".into()), None)
    );
    let role = iam.get_role().role_name("AWSBatchServiceRole-eu-west-1").send().await.unwrap().role.unwrap();
    assert!(role.tags().iter().any(|t| t.key() == "CostCenter" && t.value() == "42"), "{:?}", role.tags());
    let policy = "arn:aws:iam::123456789012:policy/SLIMWorkflowPassRoles-eu-west-1";
    let version = iam.get_policy_version().policy_arn(policy).version_id("v1").send().await.unwrap();
    let document = percent_decode(version.policy_version.unwrap().document.unwrap().as_str());
    assert!(document.contains(":role/AWSBatchServiceRole-eu-west-1\""), "{document}");
    assert!(!document.contains(":role/AWSBatchServiceRole\""), "{document}");
    assert_lints_clean(&[suffixed]);
}
