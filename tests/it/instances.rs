//! `wfboot attach`, `instances` and `whoami` against the emulator's EC2 and a stand-in instance metadata
//! service on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::process::{Command as StdCommand, Stdio};

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
    let out = emu.wfboot().arg("instances").output().unwrap();
    assert!(stdout(&out).contains(&id) && stdout(&out).contains("SLIM-Extras_ECS_for_EC2"), "{}", stdout(&out));
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
