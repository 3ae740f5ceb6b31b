//! Profiles as the AWS CLI has them, through the real binary with temporary AWS config and credentials files:
//! an explicit `--profile` wins over keys in the environment, `AWS_PROFILE` keeps its place after them, a
//! profile that does not exist is an error before any call, and `whoami` names the source actually used.

use crate::common::*;

const PROFILE_KEY: &str = "AKIAPROFILEOTHER0001";

/// Config and credentials files with one profile, `other`, that has its own access key.
fn aws_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = write_file(dir, "config", "[default]\nregion = us-east-1\n\n[profile other]\nregion = us-east-1\n");
    let credentials = write_file(
        dir,
        "credentials",
        &format!("[other]\naws_access_key_id = {PROFILE_KEY}\naws_secret_access_key = other-secret\n"),
    );
    (config, credentials)
}

fn with_files(cmd: &mut assert_cmd::Command, dir: &std::path::Path) {
    let (config, credentials) = aws_files(dir);
    cmd.env("AWS_CONFIG_FILE", config).env("AWS_SHARED_CREDENTIALS_FILE", credentials);
}

fn keys_used(emu: &Emulator, mark: usize) -> Vec<String> {
    let mut keys: Vec<String> = emu.requests().into_iter().skip(mark).map(|r| r.access_key).collect();
    keys.dedup();
    keys
}

#[test]
fn an_explicit_profile_wins_over_keys_in_the_environment_and_whoami_says_so() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = emu.wfboot();
    with_files(&mut cmd, dir.path());
    let out = cmd.args(["whoami", "--profile", "other", "--output", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["source"], "shared credentials file in profile other", "{report}");
    assert_eq!(report["profile"], "other");
    assert_eq!(report["access_key_id"], "AKIA…0001");
    assert_eq!(keys_used(&emu, 0), [PROFILE_KEY], "the environment's key was used");
}

#[test]
fn aws_profile_comes_after_keys_in_the_environment_and_whoami_names_no_profile_then() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = emu.wfboot();
    with_files(&mut cmd, dir.path());
    let out = cmd.env("AWS_PROFILE", "other").args(["whoami", "--output", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["source"], "environment variables (AWS_ACCESS_KEY_ID)", "{report}");
    assert_eq!(report["profile"], serde_json::Value::Null, "{report}");
    assert_eq!(keys_used(&emu, 0), [WFBOOT_KEY]);

    // Without keys in the environment, AWS_PROFILE's profile is used.
    let mut cmd = emu.wfboot();
    with_files(&mut cmd, dir.path());
    let mark = emu.mark();
    let out = cmd
        .env("AWS_PROFILE", "other")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["whoami"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("credentials shared credentials file in profile other"), "{}", stdout(&out));
    assert_eq!(keys_used(&emu, mark), [PROFILE_KEY]);
}

#[test]
fn a_missing_profile_is_a_usage_error_before_any_call_whether_from_the_flag_or_aws_profile() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    for (args, env_profile, from) in [
        (vec!["plan", "--profile", "no-such-profile"], None, "--profile"),
        (vec!["whoami", "--profile", "no-such-profile"], None, "--profile"),
        (vec!["check"], Some("no-such-profile"), "AWS_PROFILE"),
    ] {
        let mut cmd = emu.wfboot();
        with_files(&mut cmd, dir.path());
        if let Some(p) = env_profile {
            cmd.env("AWS_PROFILE", p);
        }
        let out = cmd.args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("the config profile `no-such-profile` ({from}) could not be found")), "{err}");
        assert!(err.contains("profiles in the AWS config and credentials files: default, other"), "{err}");
    }
    assert!(emu.requests().is_empty(), "calls were made: {:?}", emu.requests());
}

#[test]
fn a_bad_region_is_one_clear_line_and_no_call() {
    let emu = Emulator::start();
    let out = emu.wfboot().args(["plan", "--region", "not a region"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("--region `not a region` is not an AWS region name"), "{err}");
    assert!(!err.contains("interceptor") && !err.contains("endpoint"), "{err}");
    let out = emu.wfboot().env("AWS_REGION", "US_EAST_1").args(["whoami"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("`US_EAST_1` is not an AWS region name"), "{}", stderr(&out));
    assert!(emu.requests().is_empty());
}

#[test]
fn without_credentials_the_help_names_the_imds_hop_limit_for_containers_on_ec2() {
    let out = wfboot_isolated().env("AWS_REGION", "us-east-1").args(["whoami"]).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no AWS credentials"), "{err}");
    assert!(err.contains("--http-put-response-hop-limit 2"), "{err}");
}
