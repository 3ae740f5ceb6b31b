//! `wfboot attach`, `instances` and `whoami` against the emulator's EC2 and a stand-in instance metadata
//! service on 127.0.0.1; the instances' metadata options (IMDSv1 or IMDSv2) in `attach`, `instances`, `check` and
//! `verify`, and `attach --require-imdsv2` with the instance's MetadataNoToken metric in the emulator's CloudWatch.

use std::io::{BufRead, BufReader};
use std::process::{Command as StdCommand, Stdio};

use aws_sdk_ec2::types::{
    HttpTokensState, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceMetadataOptionsResponse,
    MetadataDefaultHttpTokensState,
};
use serde_json::json;

use crate::common::*;

async fn ec2(emu: &Emulator) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"))
}

async fn launch(emu: &Emulator) -> String {
    let out = ec2(emu).await.run_instances().image_id("ami-12c6146b").min_count(1).max_count(1).send().await.unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}

async fn bootstrapped_with_instance() -> (Emulator, String) {
    let emu = Emulator::start();
    emu.wfboot().args(["bootstrap", "--yes", "--skip-user"]).assert().success();
    let id = launch(&emu).await;
    (emu, id)
}

fn writes(emu: &Emulator, mark: usize) -> Vec<String> {
    emu.wfboot_writes_since(mark)
}

#[tokio::test]
async fn attach_associates_once_then_says_so_and_makes_no_write() {
    let (emu, id) = bootstrapped_with_instance().await;
    let mark = emu.mark();
    let out = emu
        .wfboot()
        .args(["attach", "--instance-id", &id, "--instance-profile", "SLIM-Extras_ECS_for_EC2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Associated instance profile SLIM-Extras_ECS_for_EC2"), "{}", stdout(&out));
    assert_eq!(writes(&emu, mark), ["AssociateIamInstanceProfile"]);
    // The instance allows IMDSv1 (EC2's default): said, with what it exposes and the command that fixes it.
    let err = stderr(&out);
    assert!(
        err.contains(&format!("warning: {id} allows IMDSv1 (HttpTokens=optional)")) && err.contains("SSRF"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "wfboot attach --instance-id {id} --instance-profile SLIM-Extras_ECS_for_EC2 --require-imdsv2"
        )),
        "{err}"
    );
    assert!(
        stdout(&out).contains("IMDSv1 allowed (HttpTokens=optional), endpoint enabled, hop limit 1"),
        "{}",
        stdout(&out)
    );
    // The default stack's role is a container instance's, and the hop limit is 1: containers would get no token.
    assert!(err.contains("hop limit of 1") && err.contains("--http-put-response-hop-limit 2"), "{err}");

    let mark = emu.mark();
    let out =
        emu.wfboot().args(["attach", "--instance-id", &id, "--role", "SLIM-Extras_ECS_for_EC2"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
    assert!(writes(&emu, mark).is_empty());

    let associations = ec2(&emu).await.describe_iam_instance_profile_associations().send().await.unwrap();
    let a = &associations.iam_instance_profile_associations()[0];
    assert_eq!(a.instance_id(), Some(id.as_str()));
    assert!(a.iam_instance_profile().unwrap().arn().unwrap().ends_with("instance-profile/SLIM-Extras_ECS_for_EC2"));
}

#[tokio::test]
async fn an_existing_association_is_replaced_only_with_consent_and_never_left_empty() {
    let (emu, id) = bootstrapped_with_instance().await;
    let iam = emu.admin().await;
    iam.create_instance_profile().instance_profile_name("Other").send().await.unwrap();
    iam.add_role_to_instance_profile()
        .instance_profile_name("Other")
        .role_name("AWSBatchServiceRole")
        .send()
        .await
        .unwrap();
    emu.wfboot().args(["attach", "--instance-id", &id, "--instance-profile", "Other"]).assert().success();

    let mark = emu.mark();
    let out = emu
        .wfboot()
        .args(["attach", "--instance-id", &id, "--instance-profile", "SLIM-Extras_ECS_for_EC2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "no terminal, no --yes: {}", stderr(&out));
    assert!(stderr(&out).contains("instance-profile/Other"), "the current association is shown: {}", stderr(&out));
    assert!(writes(&emu, mark).is_empty());

    let out = emu
        .wfboot()
        .args([
            "attach",
            "--yes",
            "--output",
            "json",
            "--instance-id",
            &id,
            "--instance-profile",
            "SLIM-Extras_ECS_for_EC2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["action"], "replaced");
    assert!(v["replaced_profile_arn"].as_str().unwrap().ends_with("instance-profile/Other"));
    assert_eq!(
        writes(&emu, mark),
        ["ReplaceIamInstanceProfileAssociation"],
        "replaced in place, never disassociated first"
    );
}

#[tokio::test]
async fn unknown_or_terminated_instances_and_unusable_profiles_are_errors_before_any_write() {
    let (emu, id) = bootstrapped_with_instance().await;
    let iam = emu.admin().await;
    iam.create_instance_profile().instance_profile_name("Empty").send().await.unwrap();
    let gone = launch(&emu).await;
    ec2(&emu).await.terminate_instances().instance_ids(&gone).send().await.unwrap();
    let mark = emu.mark();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--instance-id", "i-0123456789abcdef0", "--instance-profile", "SLIM-Extras_ECS_for_EC2"],
            1,
            "there is no instance i-0123456789abcdef0",
        ),
        (vec!["--instance-id", &gone, "--instance-profile", "SLIM-Extras_ECS_for_EC2"], 1, "is terminated"),
        // A missing or empty profile may be one made moments ago (IAM reads lag): waited for, within the bound.
        (
            vec!["--instance-id", &id, "--instance-profile", "Nope", "--propagation-timeout", "1"],
            1,
            "instance profile `Nope` does not exist",
        ),
        (vec!["--instance-id", &id, "--instance-profile", "Empty", "--propagation-timeout", "1"], 1, "holds no role"),
        (vec!["--instance-id", "not-an-id", "--instance-profile", "X"], 64, "is not an EC2 instance id"),
        (vec!["--instance-id", &id, "--role", "NoSuchRole"], 64, "has no instance profile for role `NoSuchRole`"),
        (vec!["--instance-id", &id], 64, "which instance profile?"),
    ];
    for (args, code, expected) in cases {
        let out = emu.wfboot().arg("attach").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    assert!(writes(&emu, mark).is_empty(), "{:?}", writes(&emu, mark));
}

#[tokio::test]
async fn instances_lists_the_associations_as_text_and_json() {
    let (emu, id) = bootstrapped_with_instance().await;
    let out = emu.wfboot().arg("instances").output().unwrap();
    assert!(stdout(&out).contains("No instance has an instance profile"), "{}", stdout(&out));
    emu.wfboot()
        .args(["attach", "--instance-id", &id, "--instance-profile", "SLIM-Extras_ECS_for_EC2"])
        .assert()
        .success();
    let out = emu.wfboot().args(["attach", "--list", "--output", "json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["instance_id"], id.as_str());
    assert_eq!(v[0]["state"], "associated");
    let options = &v[0]["metadata_options"];
    assert_eq!(
        (&options["http_tokens"], &options["http_endpoint"], &options["http_put_response_hop_limit"]),
        (&json!("optional"), &json!("enabled"), &json!(1)),
        "{v:#}"
    );
    let codes: Vec<&serde_json::Value> = v[0]["findings"].as_array().unwrap().iter().map(|f| &f["code"]).collect();
    assert_eq!(codes, [&json!("imdsv1_allowed"), &json!("hop_limit_for_containers")], "{v:#}");
    crate::schema::assert_valid(&[crate::schema::doc("instances with options", "instances_list", v)]);
    let out = emu.wfboot().arg("instances").output().unwrap();
    let text = stdout(&out);
    assert!(text.contains(&id) && text.contains("SLIM-Extras_ECS_for_EC2"), "{text}");
    let line = text.lines().find(|l| l.contains(&id)).unwrap();
    assert!(line.contains(" optional ") && line.contains(" enabled "), "the options are shown: {text}");
    assert!(stderr(&out).contains(&format!("{id} allows IMDSv1")), "{}", stderr(&out));
}

// ---- IMDSv2 ------------------------------------------------------------------------------------------------------

async fn launch_with(emu: &Emulator, options: InstanceMetadataOptionsRequest) -> String {
    let out = ec2(emu)
        .await
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .metadata_options(options)
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}

async fn metadata(emu: &Emulator, id: &str) -> InstanceMetadataOptionsResponse {
    let out = ec2(emu).await.describe_instances().instance_ids(id).send().await.unwrap();
    out.reservations()[0].instances()[0].metadata_options().unwrap().clone()
}

async fn associated_profile(emu: &Emulator, id: &str) -> Option<String> {
    let out = ec2(emu).await.describe_iam_instance_profile_associations().send().await.unwrap();
    let found = out.iam_instance_profile_associations().iter().find(|a| a.instance_id() == Some(id));
    found.and_then(|a| a.iam_instance_profile()).and_then(|p| p.arn()).map(str::to_string)
}

/// IMDSv1 calls in the instance's MetadataNoToken metric, `(days ago, calls)`, as EC2 would have sent them; the dates
/// (UTC) they fall on.
async fn seed_imdsv1_calls(emu: &Emulator, id: &str, calls: &[(u64, f64)]) -> Vec<String> {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"));
    let now = std::time::SystemTime::now();
    let mut dates = Vec::new();
    for (days_ago, count) in calls {
        let at = aws_smithy_types::DateTime::from(now - std::time::Duration::from_secs(days_ago * 86_400));
        dates.push(at.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap()[..10].to_string());
        let datum = MetricDatum::builder()
            .metric_name("MetadataNoToken")
            .dimensions(Dimension::builder().name("InstanceId").value(id).build())
            .timestamp(at)
            .value(*count)
            .unit(StandardUnit::Count)
            .build();
        cloudwatch.put_metric_data().namespace("AWS/EC2").metric_data(datum).send().await.unwrap();
    }
    dates
}

fn options(
    tokens: HttpTokensState,
    endpoint: InstanceMetadataEndpointState,
    hops: i32,
) -> InstanceMetadataOptionsRequest {
    InstanceMetadataOptionsRequest::builder()
        .http_tokens(tokens)
        .http_endpoint(endpoint)
        .http_put_response_hop_limit(hops)
        .build()
}

#[tokio::test]
async fn require_imdsv2_reads_the_metric_then_requires_it_before_the_association_keeping_the_other_options_and_a_rerun_writes_nothing(
) {
    let emu = Emulator::start();
    emu.wfboot().args(["bootstrap", "--yes", "--skip-user"]).assert().success();
    let id = launch_with(&emu, options(HttpTokensState::Optional, InstanceMetadataEndpointState::Enabled, 2)).await;
    let args = ["attach", "--instance-id", &id, "--instance-profile", "SLIM-Extras_ECS_for_EC2", "--require-imdsv2"];

    // The plan first: both changes, in order, and not one write attempt.
    let mark = emu.mark();
    let out = emu.wfboot().args(args).args(["--dry-run", "--output", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let planned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let calls: Vec<&serde_json::Value> = planned["changes"].as_array().unwrap().iter().map(|c| &c["call"]).collect();
    assert_eq!(calls, [&json!("ModifyInstanceMetadataOptions"), &json!("AssociateIamInstanceProfile")], "{planned:#}");
    assert_eq!((&planned["action"], &planned["imdsv2"]["outcome"]), (&json!("planned"), &json!("planned")));
    assert_eq!(planned["imdsv2"]["imdsv1_calls"]["calls"], 0, "the metric was read: {planned:#}");
    assert!(emu.wfboot_write_attempts_since(mark).is_empty(), "{:?}", emu.wfboot_write_attempts_since(mark));
    let text = emu.wfboot().args(args).arg("--dry-run").output().unwrap();
    assert!(stdout(&text).contains("~ ModifyInstanceMetadataOptions: require IMDSv2: HttpTokens optional -> required; endpoint enabled and hop limit 2 kept"), "{}", stdout(&text));
    assert!(stdout(&text).contains("+ AssociateIamInstanceProfile"), "{}", stdout(&text));
    assert!(stderr(&text).contains(&format!("MetadataNoToken: no IMDSv1 call from {id}")), "{}", stderr(&text));

    let mark = emu.mark();
    let out = emu.wfboot().args(args).args(["--output", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let order: Vec<String> =
        emu.wfboot_requests_since(mark).into_iter().filter(|r| r.write).map(|r| r.action).collect();
    assert_eq!(order, ["ModifyInstanceMetadataOptions", "AssociateIamInstanceProfile"], "IMDSv2 before the role");
    assert_eq!(done["metadata_options"]["before"]["http_tokens"], "optional");
    assert_eq!(done["metadata_options"]["after"]["http_tokens"], "required");
    assert_eq!((&done["action"], &done["imdsv2"]["outcome"]), (&json!("associated"), &json!("required")));
    let now = metadata(&emu, &id).await;
    assert_eq!(now.http_tokens(), Some(&HttpTokensState::Required));
    assert_eq!(now.http_put_response_hop_limit(), Some(2), "the hop limit is kept");
    assert_eq!(now.http_endpoint(), Some(&InstanceMetadataEndpointState::Enabled));
    assert!(associated_profile(&emu, &id).await.unwrap().ends_with("instance-profile/SLIM-Extras_ECS_for_EC2"));

    let mark = emu.mark();
    let again = emu.wfboot().args(args).args(["--output", "json"]).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(emu.wfboot_write_attempts_since(mark).is_empty(), "{:?}", emu.wfboot_write_attempts_since(mark));
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!((&again["action"], &again["imdsv2"]["outcome"]), (&json!("unchanged"), &json!("already_required")));
    assert!(again["changes"].as_array().unwrap().is_empty() && again["findings"].as_array().unwrap().is_empty());
    crate::schema::assert_valid(&[
        crate::schema::doc("attach --require-imdsv2 --dry-run", "attach_result", planned),
        crate::schema::doc("attach --require-imdsv2", "attach_result", done),
        crate::schema::doc("attach --require-imdsv2 again", "attach_result", again),
    ]);
}

#[tokio::test]
async fn imdsv1_calls_in_the_metric_or_an_unreadable_metric_hold_require_imdsv2_back_and_nothing_is_written_until_force(
) {
    let emu = Emulator::start();
    emu.wfboot().args(["bootstrap", "--yes", "--skip-user"]).assert().success();
    let id = launch(&emu).await;
    // A metric that cannot be read (CloudWatch unreachable: its own endpoint variable, a closed port) holds it back
    // too: whether anything still uses IMDSv1 is not known.
    let mark = emu.mark();
    let out = emu
        .wfboot()
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9")
        .args(["attach", "--instance-id", &id, "--role", "SLIM-Extras_ECS_for_EC2", "--require-imdsv2"])
        .args(["--retry-attempts", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).contains("could not be read (http://127.0.0.1:9 refused the connection)"), "{}", stdout(&out));
    assert!(stderr(&out).contains("cloudwatch:GetMetricStatistics"), "{}", stderr(&out));
    assert!(emu.wfboot_write_attempts_since(mark).is_empty(), "{:?}", emu.wfboot_write_attempts_since(mark));
    let dates = seed_imdsv1_calls(&emu, &id, &[(3, 30.0), (1, 7.0)]).await;
    let args = ["attach", "--instance-id", &id, "--instance-profile", "SLIM-Extras_ECS_for_EC2", "--require-imdsv2"];

    let mark = emu.mark();
    let out = emu.wfboot().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    let expected = format!("37 IMDSv1 calls on 2 days ({}: 30, {}: 7)", dates[0], dates[1]);
    assert!(
        text.starts_with("Held back:") && text.contains(&expected) && text.contains("Nothing was changed"),
        "{text}"
    );
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let json_out = emu.wfboot().args(args).args(["--output", "json"]).output().unwrap();
    assert_eq!(json_out.status.code(), Some(2), "{}", stderr(&json_out));
    assert!(emu.wfboot_write_attempts_since(mark).is_empty(), "{:?}", emu.wfboot_write_attempts_since(mark));
    let held: serde_json::Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!((&held["action"], &held["imdsv2"]["outcome"]), (&json!("held_back"), &json!("held_back")));
    assert_eq!(held["imdsv2"]["imdsv1_calls"]["calls"], 37, "{held:#}");
    assert_eq!(metadata(&emu, &id).await.http_tokens(), Some(&HttpTokensState::Optional));
    assert_eq!(associated_profile(&emu, &id).await, None, "the role is not given while IMDSv1 stays on");
    crate::schema::assert_valid(&[crate::schema::doc("attach held back", "attach_result", held)]);

    let out = emu.wfboot().args(args).arg("--force").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("requiring IMDSv2 anyway (--force)"), "{}", stderr(&out));
    assert_eq!(metadata(&emu, &id).await.http_tokens(), Some(&HttpTokensState::Required));
    assert!(associated_profile(&emu, &id).await.is_some());
}

#[tokio::test]
async fn an_instance_whose_metadata_endpoint_is_disabled_is_refused_before_any_write() {
    let emu = Emulator::start();
    emu.wfboot().args(["bootstrap", "--yes", "--skip-user"]).assert().success();
    let id = launch_with(&emu, options(HttpTokensState::Required, InstanceMetadataEndpointState::Disabled, 2)).await;
    let mark = emu.mark();
    for extra in [&[][..], &["--require-imdsv2"][..]] {
        let out = emu
            .wfboot()
            .args(["attach", "--instance-id", &id, "--instance-profile", "SLIM-Extras_ECS_for_EC2"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("metadata endpoint disabled") && err.contains("nothing was changed"), "{err}");
        assert!(
            err.contains(&format!(
                "aws ec2 modify-instance-metadata-options --instance-id {id} --http-endpoint enabled"
            )),
            "{err}"
        );
    }
    assert!(emu.wfboot_write_attempts_since(mark).is_empty(), "{:?}", emu.wfboot_write_attempts_since(mark));
    assert_eq!(associated_profile(&emu, &id).await, None);
}

#[test]
fn require_imdsv2_flags_that_do_not_go_together_fail_before_any_call() {
    let emu = Emulator::start_with(&["--no-simulator"]);
    let id = "i-0123456789abcdef0";
    let cases: [&[&str]; 4] = [
        &["attach", "--list", "--require-imdsv2"],
        &["attach", "--instance-id", id, "--instance-profile", "P", "--force"],
        &["attach", "--instance-id", id, "--instance-profile", "P", "--dry-run", "--yes"],
        &["attach", "--list", "--dry-run"],
    ];
    for args in cases {
        let out = emu.wfboot().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
    }
    assert!(emu.wfboot_requests_since(0).is_empty(), "a call was made: {:?}", emu.wfboot_requests_since(0));
}

/// `check` reports the account's default for new instances (and prints the one command, never runs it) and each
/// instance with the stack's profile; `verify` shows the instance under the profile's role.
#[tokio::test]
async fn check_and_verify_show_the_account_default_and_the_instances_with_the_stacks_profile() {
    let (emu, id) = bootstrapped_with_instance().await;
    emu.wfboot().args(["attach", "--instance-id", &id, "--role", "SLIM-Extras_ECS_for_EC2"]).assert().success();
    let rows = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["rows"].as_array().unwrap().iter().filter(|r| r["area"] == "instances").cloned().collect()
    };
    let mark = emu.mark();
    let out = emu.wfboot().args(["check", "--skip-user", "--output", "json"]).output().unwrap();
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = rows(&check);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0]["status"], "warning");
    assert!(found[0]["check"].as_str().unwrap().contains("new instances in us-east-1 allow IMDSv1"), "{found:#?}");
    let command = "aws ec2 modify-instance-metadata-defaults --http-tokens required --region us-east-1";
    assert!(found[0]["what_to_do"].as_str().unwrap().contains(command), "{found:#?}");
    assert_eq!(found[1]["status"], "warning");
    let expected = format!("{id} (SLIM-Extras_ECS_for_EC2): IMDSv1 allowed, endpoint enabled, hop limit 1");
    assert_eq!(found[1]["check"], expected.as_str());
    assert!(found[1]["what_to_do"].as_str().unwrap().contains("--require-imdsv2"), "{found:#?}");
    assert!(emu.wfboot_write_attempts_since(mark).is_empty(), "check writes nothing");
    crate::schema::assert_valid(&[crate::schema::doc("check with instances", "check_result", check)]);

    let out = emu.wfboot().args(["verify", "--output", "json"]).output().unwrap();
    let verify: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let instance: Vec<&serde_json::Value> =
        verify["rows"].as_array().unwrap().iter().filter(|r| r["check"] == "instance").collect();
    assert_eq!(instance.len(), 1, "{verify:#}");
    assert_eq!((&instance[0]["role"], &instance[0]["status"]), (&json!("SLIM-Extras_ECS_for_EC2"), &json!("warning")));
    assert_eq!((&verify["passed"], &verify["warnings"]), (&json!(true), &json!(1)), "a warning is not a failure");
    crate::schema::assert_valid(&[crate::schema::doc("verify with an instance", "verify_result", verify)]);

    // The account's choice, made outside wfboot: check now says new instances require IMDSv2.
    let ec2 = ec2(&emu).await;
    ec2.modify_instance_metadata_defaults().http_tokens(MetadataDefaultHttpTokensState::Required).send().await.unwrap();
    let out = emu.wfboot().args(["check", "--skip-user"]).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("new instances in us-east-1 require IMDSv2 (account default)"), "{text}");
}

/// The stand-in metadata service; stopped by PID when dropped.
struct Imds {
    child: std::process::Child,
    url: String,
}

impl Imds {
    fn start() -> Imds {
        let python = repo().join(".venv/bin/python");
        let mut child = StdCommand::new(python)
            .arg(repo().join("tools/imds_stub.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tools/imds_stub.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("READY ").expect("READY line").to_string();
        Imds { child, url }
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn whoami_on_an_instance_names_the_metadata_service_and_the_expiry_and_prints_no_secret() {
    let emu = Emulator::start();
    let imds = Imds::start();
    let out = wfboot_isolated()
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url)
        .env("AWS_REGION", "us-east-1")
        .args(["whoami", "--endpoint-url", &emu.url, "-vvv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("instance metadata service (IMDS)"), "{text}");
    assert!(text.contains("ASIA…0001"), "{text}");
    assert!(text.contains("expires") && (text.contains("in 59 min") || text.contains("in 60 min")), "{text}");
    let all = format!("{text}{}", stderr(&out));
    assert!(
        !all.contains("imds-secret-DO-NOT-PRINT") && !all.contains("imds-session-token-DO-NOT-PRINT"),
        "a secret was printed"
    );
}

#[test]
fn whoami_names_environment_and_profile_credentials() {
    let emu = Emulator::start();
    let out = emu.wfboot().args(["whoami", "--output", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["source"].as_str().unwrap().contains("environment variables"), "{v}");
    assert_eq!(v["temporary"], false);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));

    let dir = tempfile::tempdir().unwrap();
    let creds = write_file(
        dir.path(),
        "credentials",
        &format!("[dev]\naws_access_key_id = AKIAPROFILETEST00001\naws_secret_access_key = {SECRET}\n"),
    );
    let out = wfboot_isolated()
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .env("AWS_REGION", "us-east-1")
        .args(["whoami", "--profile", "dev", "--endpoint-url", &emu.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("shared credentials file (profile dev)") || stdout(&out).contains("in profile dev"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains(SECRET) && !stderr(&out).contains(SECRET));
}
