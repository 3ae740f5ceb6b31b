//! `wfboot destroy` never strands a workload: a role or instance profile that a Batch compute environment, a
//! Lambda function (or a job definition, state machine, instance) uses is held back, named with what uses it,
//! and the rest of the stack deleted; `--force` deletes it anyway and says what it breaks; a lookup refused is
//! "could not check", never "unused". Against a real moto server, which holds Batch, Lambda, Step Functions and EC2.

use crate::common::*;
use serde_json::Value;

const LAMBDA_ROLE: &str = "SLIM-Extras_for_Lambda";
const ECS_ROLE: &str = "SLIM-Extras_ECS_for_EC2";

async fn bootstrapped() -> Emulator {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    emu
}

/// A Lambda function whose role is the stack's Lambda role.
async fn function(emu: &Emulator, name: &str) {
    function_in(&emu.sdk_config(ADMIN_KEY, "admin-secret"), name).await
}

/// [`function`] with the admin's `config` (its region is the function's).
async fn function_in(config: &aws_config::SdkConfig, name: &str) {
    let zip = lambda_zip();
    aws_sdk_lambda::Client::new(config)
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(format!("arn:aws:iam::{ACCOUNT}:role/{LAMBDA_ROLE}"))
        .handler("index.handler")
        .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(zip.into()).build())
        .send()
        .await
        .unwrap();
}

/// A managed compute environment with the stack's service role and instance profile, in the default VPC.
async fn compute_environment(emu: &Emulator, name: &str) {
    use aws_sdk_batch::types::{CeType, ComputeResource, CrType};
    use aws_sdk_ec2::types::Filter;
    let config = emu.sdk_config(ADMIN_KEY, "admin-secret");
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpc = ec2
        .describe_vpcs()
        .filters(Filter::builder().name("is-default").values("true").build())
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    let vpc_filter = Filter::builder().name("vpc-id").values(&vpc).build();
    let subnets = ec2.describe_subnets().filters(vpc_filter.clone()).send().await.unwrap();
    let groups = ec2.describe_security_groups().filters(vpc_filter).send().await.unwrap();
    let resources = ComputeResource::builder()
        .r#type(CrType::Ec2)
        .minv_cpus(0)
        .maxv_cpus(1)
        .instance_types("optimal")
        .subnets(subnets.subnets()[0].subnet_id().unwrap())
        .security_group_ids(groups.security_groups()[0].group_id().unwrap())
        .instance_role(ECS_ROLE)
        .build();
    aws_sdk_batch::Client::new(&config)
        .create_compute_environment()
        .compute_environment_name(name)
        .r#type(CeType::Managed)
        .service_role(format!("arn:aws:iam::{ACCOUNT}:role/AWSBatchServiceRole"))
        .compute_resources(resources)
        .send()
        .await
        .unwrap();
}

fn destroy(emu: &Emulator, extra: &[&str]) -> (Option<i32>, Value, String) {
    let out = emu.wfboot().args(["destroy", "--yes", "--output", "json"]).args(extra).output().unwrap();
    let report = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    (out.status.code(), report, stderr(&out))
}

/// The report's `key` list ("kind name" each), sorted.
fn listed(report: &Value, key: &str) -> Vec<String> {
    let mut names = crate::destroy::names(report, key);
    names.sort();
    names
}

#[tokio::test]
async fn what_a_compute_environment_and_a_function_use_is_held_back_the_rest_deleted_and_removed_once_unused() {
    let emu = bootstrapped().await;
    compute_environment(&emu, "gpu-spot").await;
    function(&emu, "ingest").await;

    // The dry run shows who uses what, in text and JSON.
    let out = emu.wfboot().args(["destroy", "--dry-run"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "! role AWSBatchServiceRole",
        "used by compute environment gpu-spot (VALID) as its serviceRole",
        "used by compute environment gpu-spot (VALID) as its instanceRole",
        "used by Lambda function ingest (Active) as its Role",
        &format!("! role {ECS_ROLE}"),
        &format!("in instance profile {ECS_ROLE}, which is in use"),
    ] {
        assert!(text.contains(line), "missing `{line}`:\n{text}");
    }

    let iam = emu.admin().await;
    let mark = emu.mark();
    let (code, report, err) = destroy(&emu, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        listed(&report, "held_back"),
        [
            format!("instance_profile {ECS_ROLE}"),
            "policy LambdaBatchExecutionPolicy".to_string(),
            "role AWSBatchServiceRole".to_string(),
            format!("role {ECS_ROLE}"),
            format!("role {LAMBDA_ROLE}"),
        ]
    );
    assert_eq!(
        listed(&report, "deleted"),
        ["policy SLIMWorkflowPassRoles", "role AmazonEC2SpotFleetRole", "role StepFunctionsLambdaRole"]
    );
    for consumer in [
        "role AWSBatchServiceRole: used by compute environment gpu-spot (VALID) as its serviceRole",
        &format!("instance profile {ECS_ROLE}: used by compute environment gpu-spot (VALID) as its instanceRole"),
        &format!("role {LAMBDA_ROLE}: used by Lambda function ingest (Active) as its Role"),
        "help: delete or change what uses them first",
    ] {
        assert!(err.contains(consumer), "missing `{consumer}`:\n{err}");
    }
    // Nothing that would change a held resource was even tried.
    assert_eq!(
        emu.wfboot_write_attempts_since(mark),
        ["DeletePolicy", "DeleteRole", "DeleteRole", "DetachRolePolicy", "DetachRolePolicy", "DetachUserPolicy"]
    );
    for role in ["AWSBatchServiceRole", ECS_ROLE, LAMBDA_ROLE] {
        let attached = iam.list_attached_role_policies().role_name(role).send().await.unwrap();
        assert!(!attached.attached_policies().is_empty(), "{role} keeps its policies");
    }
    let profile = iam.get_instance_profile().instance_profile_name(ECS_ROLE).send().await.unwrap();
    assert_eq!(profile.instance_profile.unwrap().roles.len(), 1, "the profile keeps its role");

    // Once the consumers are gone, the rest goes.
    let config = emu.sdk_config(ADMIN_KEY, "admin-secret");
    aws_sdk_lambda::Client::new(&config).delete_function().function_name("ingest").send().await.unwrap();
    let batch = aws_sdk_batch::Client::new(&config);
    batch
        .update_compute_environment()
        .compute_environment("gpu-spot")
        .state(aws_sdk_batch::types::CeState::Disabled)
        .send()
        .await
        .unwrap();
    batch.delete_compute_environment().compute_environment("gpu-spot").send().await.unwrap();
    let (code, report, err) = destroy(&emu, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["held_back"], serde_json::json!([]));
    assert_eq!(report["verified"], serde_json::json!(true));
    for role in ["AWSBatchServiceRole", ECS_ROLE, LAMBDA_ROLE] {
        assert!(iam.get_role().role_name(role).send().await.is_err(), "{role} is still there");
    }
}

#[tokio::test]
async fn force_deletes_a_used_role_and_says_what_it_breaks() {
    let emu = bootstrapped().await;
    function(&emu, "ingest").await;
    let (code, report, err) = destroy(&emu, &["--force"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "--force: deleting role {LAMBDA_ROLE} breaks what uses it:\n  - Lambda function ingest (Active) as its Role"
        )),
        "{err}"
    );
    assert_eq!(report["held_back"], serde_json::json!([]));
    let role = report["plan"]["resources"].as_array().unwrap().iter().find(|r| r["name"] == LAMBDA_ROLE).unwrap();
    assert_eq!(role["action"], "delete");
    assert_eq!(role["consumers"][0]["kind"], "lambda_function");
    assert!(emu.admin().await.get_role().role_name(LAMBDA_ROLE).send().await.is_err());
}

#[tokio::test]
async fn a_lookup_answered_access_denied_holds_back_what_it_could_have_named_as_could_not_check() {
    let emu = bootstrapped().await;
    let iam = emu.admin().await;
    // Everything, but not Lambda (moto's names of Lambda's actions do not all match the real ones: lambda:*).
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"lambda:*","Resource":"*"}]}"#;
    iam.create_user().user_name("nolambda").send().await.unwrap();
    iam.put_user_policy().user_name("nolambda").policy_name("p").policy_document(deny).send().await.unwrap();
    let key = iam.create_access_key().user_name("nolambda").send().await.unwrap().access_key.unwrap();
    emu.reset_auth("0");
    let mark = emu.mark();
    let out = emu
        .wfboot()
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key)
        .args(["destroy", "--yes"])
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
    assert!(text.contains(&format!("! role {LAMBDA_ROLE}")), "{text}");
    assert!(text.contains("could not check who uses it: held back, not deleted unchecked"), "{text}");
    assert!(text.contains("used by could not check Lambda functions (lambda:ListFunctions: "), "{text}");
    // Every role is one a function could use: none is deleted; the operator's policy (no role) is.
    let writes = emu.wfboot_write_attempts_since(mark);
    assert!(!writes.iter().any(|w| w == "DeleteRole"), "{writes:?}");
    emu.reset_auth("1000000");
}

/// Under realism, a compute environment whose service role is deleted goes INVALID, as on AWS: what `--force`
/// warned about is what happens.
#[tokio::test]
async fn after_force_the_compute_environment_whose_service_role_was_deleted_is_invalid() {
    let emu = Emulator::start_with(&["--realism", "--iam-lag", "0.5", "--ec2-lag", "0", "--service-lag", "0"]);
    emu.create_demo_user().await;
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    emu.settle();
    let batch = aws_sdk_batch::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"));
    batch
        .create_compute_environment()
        .compute_environment_name("gpu-spot")
        .r#type(aws_sdk_batch::types::CeType::Unmanaged)
        .service_role(format!("arn:aws:iam::{ACCOUNT}:role/AWSBatchServiceRole"))
        .send()
        .await
        .unwrap();
    let status = || async {
        let out = batch.describe_compute_environments().compute_environments("gpu-spot").send().await.unwrap();
        let ce = &out.compute_environments()[0];
        (ce.status().map(|s| s.as_str().to_string()), ce.status_reason().unwrap_or_default().to_string())
    };
    for _ in 0..50 {
        if status().await.0.as_deref() == Some("VALID") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status().await.0.as_deref(), Some("VALID"));

    let (code, _, err) = destroy(&emu, &["--force"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("--force: deleting role AWSBatchServiceRole breaks what uses it:"), "{err}");
    assert!(err.contains("compute environment gpu-spot (VALID) as its serviceRole"), "{err}");
    let (state, reason) = status().await;
    assert_eq!(state.as_deref(), Some("INVALID"), "{reason}");
    assert!(reason.starts_with("CLIENT_ERROR - User: batch.amazonaws.com is not authorized to perform: sts:AssumeRole"));
}

/// A job definition, a state machine and an instance's profile association are consumers too, and a role assumed
/// shows its last use; `destroy --dry-run --output json` lists them all.
#[tokio::test]
async fn job_definitions_state_machines_instances_and_last_use_are_shown_by_the_dry_run() {
    let emu = bootstrapped().await;
    let config = emu.sdk_config(ADMIN_KEY, "admin-secret");
    let role = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
    aws_sdk_batch::Client::new(&config)
        .register_job_definition()
        .job_definition_name("render")
        .r#type(aws_sdk_batch::types::JobDefinitionType::Container)
        .container_properties(
            aws_sdk_batch::types::ContainerProperties::builder()
                .image("busybox")
                .resource_requirements(
                    aws_sdk_batch::types::ResourceRequirement::builder()
                        .r#type(aws_sdk_batch::types::ResourceType::Vcpu)
                        .value("1")
                        .build(),
                )
                .resource_requirements(
                    aws_sdk_batch::types::ResourceRequirement::builder()
                        .r#type(aws_sdk_batch::types::ResourceType::Memory)
                        .value("128")
                        .build(),
                )
                .job_role_arn(role(LAMBDA_ROLE))
                .build(),
        )
        .send()
        .await
        .unwrap();
    aws_sdk_sfn::Client::new(&config)
        .create_state_machine()
        .name("pipeline")
        .definition(r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#)
        .role_arn(role("StepFunctionsLambdaRole"))
        .send()
        .await
        .unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let instance = ec2.run_instances().image_id("ami-12c6146b").min_count(1).max_count(1).send().await.unwrap();
    let instance = instance.instances()[0].instance_id().unwrap().to_string();
    ec2.associate_iam_instance_profile()
        .instance_id(&instance)
        .iam_instance_profile(aws_sdk_ec2::types::IamInstanceProfileSpecification::builder().name(ECS_ROLE).build())
        .send()
        .await
        .unwrap();
    // A session of the Spot Fleet role makes a call: moto records the role's last use (without a region).
    let assumed = assumed_config(&emu, ADMIN_KEY, "admin-secret", ACCOUNT, "AmazonEC2SpotFleetRole").await;
    aws_sdk_sts::Client::new(&assumed).get_caller_identity().send().await.unwrap();

    let out = emu.wfboot().args(["destroy", "--dry-run", "--output", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let resource = |kind: &str, name: &str| {
        report["plan"]["resources"].as_array().unwrap().iter().find(|r| r["kind"] == kind && r["name"] == name).cloned()
    };
    let consumers = |kind: &str, name: &str| -> Vec<String> {
        resource(kind, name).unwrap()["consumers"]
            .as_array()
            .map(|c| c.iter().map(|c| format!("{} {} {}", c["kind"], c["name"], c["via"])).collect())
            .unwrap_or_default()
    };
    assert_eq!(consumers("role", LAMBDA_ROLE), [r#""job_definition" "render:1" "jobRoleArn""#]);
    assert_eq!(consumers("role", "StepFunctionsLambdaRole"), [r#""state_machine" "pipeline" "roleArn""#]);
    assert_eq!(consumers("instance_profile", ECS_ROLE), [format!(r#""instance" "{instance}" """#)]);
    let spot = resource("role", "AmazonEC2SpotFleetRole").unwrap();
    assert!(spot["last_used"]["date"].as_str().is_some_and(|d| d.starts_with("20")), "{spot:#}");
    // The two roles, the Lambda role's policy, the profile and its role.
    assert_eq!(report["summary"]["held_back"], 5, "{:#}", report["held_back"]);
}

/// A role IAM last saw used in another region is looked up there too: a Lambda function in us-west-2 that uses the
/// stack's Lambda role holds the role back when destroy runs in us-east-1, named with its region.
#[tokio::test]
async fn a_consumer_in_the_region_of_the_role_s_last_use_holds_it_back_named_with_that_region() {
    let emu = bootstrapped().await;
    let west =
        emu.sdk_config(ADMIN_KEY, "admin-secret").to_builder().region(aws_config::Region::new("us-west-2")).build();
    // A session of the role makes a request in us-west-2: IAM's RoleLastUsed then names that region.
    let session = aws_sdk_sts::Client::new(&west)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{LAMBDA_ROLE}"))
        .role_session_name("the-function")
        .send()
        .await
        .unwrap();
    let c = session.credentials().unwrap();
    let as_role = west
        .to_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_sdk_iam::config::Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                None,
                "test",
            ),
        ))
        .build();
    aws_sdk_lambda::Client::new(&as_role).list_functions().send().await.unwrap();
    let role = emu.admin().await.get_role().role_name(LAMBDA_ROLE).send().await.unwrap().role.unwrap();
    assert_eq!(role.role_last_used().and_then(|u| u.region()), Some("us-west-2"), "{role:?}");
    // The function lives in us-west-2, where a lookup of us-east-1 alone would never see it.
    function_in(&west, "west-ingest").await;

    let (code, report, err) = destroy(&emu, &[]);
    assert_eq!(code, Some(2), "{report:#}\n{err}");
    let text = report.to_string();
    assert!(text.contains("west-ingest in us-west-2"), "the consumer in us-west-2 is not named: {report:#}");
    let left = emu.admin().await.get_role().role_name(LAMBDA_ROLE).send().await;
    assert!(left.is_ok(), "the role used in us-west-2 was deleted");
}
