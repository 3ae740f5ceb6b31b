//! The command line as a user meets it: flags, exit codes, offline commands, output formats, and bad input
//! that must fail before anything reaches the account.

use crate::common::*;
use serde_json::Value;

#[test]
fn version_and_help_exit_zero() {
    wfboot_isolated().arg("--version").assert().success();
    let out = wfboot_isolated().arg("--help").output().unwrap();
    assert!(out.status.success());
    for command in ["plan", "bootstrap", "stacks"] {
        assert!(stdout(&out).contains(command), "{}", stdout(&out));
    }
}

#[test]
fn each_verb_s_help_groups_its_flags_under_headings_with_the_aws_flags_in_one_group() {
    for (verb, headings) in [
        ("bootstrap", &["Stack:", "Fleet (many accounts):", "Safety and propagation:", "AWS:", "Output:"][..]),
        ("plan", &["Stack:", "Fleet (many accounts):", "AWS:", "Output:"][..]),
        ("destroy", &["Stack:", "Safety and propagation:", "AWS:", "Output:"][..]),
        ("verify", &["Stack:", "Safety and propagation:", "AWS:", "Output:"][..]),
    ] {
        let out = wfboot_isolated().args([verb, "--help"]).output().unwrap();
        assert!(out.status.success());
        let help = stdout(&out);
        for heading in headings {
            assert!(help.lines().any(|l| l == *heading), "{verb} --help has no {heading:?} heading:\n{help}");
        }
        // Every AWS flag sits under the AWS heading: between it and the next heading.
        let aws = help.split("\nAWS:\n").nth(1).unwrap().split("\n\n").next().unwrap().to_string();
        for flag in ["--profile", "--region", "--endpoint-url", "--retry-attempts", "--max-concurrency"] {
            assert!(aws.contains(flag), "{verb}: {flag} is not under AWS:\n{help}");
        }
    }
}

#[test]
fn usage_errors_exit_64_never_2_which_means_changes_pending() {
    for args in [
        vec!["plan", "--no-such-flag"],
        vec!["frobnicate"],
        vec!["plan", "--quiet", "--verbose"],
        vec!["plan", "--user-name", "x", "--skip-user"],
        vec!["plan", "--output", "yaml"],
        vec!["plan", "--max-concurrency", "0"],
        vec!["stacks", "show"],
        vec!["stacks", "show", "slim-workflow", "--partition", "aws-cn"],
    ] {
        let out = wfboot_isolated().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn stacks_lists_the_built_in_stacks_as_text_and_json() {
    let out = wfboot_isolated().arg("stacks").output().unwrap();
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("slim-workflow")
            && stdout(&out).contains("(default)")
            && stdout(&out).contains("render-worker")
    );
    let out = wfboot_isolated().args(["stacks", "list", "--output", "json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v[0]["name"], "slim-workflow");
    assert_eq!(v[0]["roles"], 5);
}

#[test]
fn stacks_show_renders_offline_for_a_given_account_and_partition() {
    let out = wfboot_isolated()
        .args([
            "stacks",
            "show",
            "slim-workflow",
            "--account-id",
            "111122223333",
            "--partition",
            "aws-cn",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["target"]["region"], "cn-north-1");
    let text = v.to_string();
    assert!(text.contains("ec2.amazonaws.com.cn"));
    assert!(text.contains("arn:aws-cn:iam::111122223333:policy/LambdaBatchExecutionPolicy"));
    assert!(!text.contains("arn:aws:"), "an ARN in the wrong partition: {text}");

    let out =
        wfboot_isolated().args(["stacks", "show", "render-worker", "--account-id", "111122223333"]).output().unwrap();
    assert!(stdout(&out).contains("arn:aws:s3:::*/*"), "{}", stdout(&out));
    let out = wfboot_isolated().args(["stacks", "show", "render-worker", "--account-id", "12345"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn an_unknown_stack_names_the_built_in_ones() {
    let out = wfboot_isolated().args(["plan", "--stack", "slim-workflw"]).output().unwrap();
    assert_eq!(out.status.code(), Some(65));
    assert!(
        stderr(&out).contains("unknown stack `slim-workflw`") && stderr(&out).contains("slim-workflow"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_flags_and_environment_fail_with_advice_before_any_call() {
    let emu = Emulator::start();
    /// The arguments, the environment, the exit code and a part of stderr.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, i32, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["plan", "--endpoint-url", "not a url"], vec![], 64, "--endpoint-url `not a url` is not a valid URL"),
        (vec!["plan", "--endpoint-url", "ftp://127.0.0.1:1"], vec![], 64, "is not a valid URL"),
        (vec!["plan", "--user-name", "bad name!"], vec![], 64, "not a valid IAM user name"),
        (vec!["bootstrap", "--yes", "--stack", "nope"], vec![], 65, "unknown stack"),
        (vec!["plan"], vec![("AWS_REGION", "")], 64, "no AWS region is configured"),
    ];
    for (args, env, code, expected) in cases {
        let mut cmd = emu.wfboot();
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let out = cmd.args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("help:"), "{args:?}: no advice in {}", stderr(&out));
    }
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());
}

#[test]
fn no_credentials_at_all_is_turned_into_advice_and_sends_nothing() {
    let emu = Emulator::start();
    let out =
        wfboot_isolated().env("AWS_REGION", "us-east-1").args(["plan", "--endpoint-url", &emu.url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no AWS credentials were found"), "{}", stderr(&out));
    assert!(stderr(&out).contains("aws configure"), "{}", stderr(&out));
    assert!(emu.requests().is_empty());
}

#[test]
fn an_unreachable_endpoint_is_reported_with_what_to_check() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = wfboot_isolated()
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .env("AWS_REGION", "us-east-1")
        .args(["plan", "--retry-attempts", "1", "--endpoint-url", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("could not reach AWS"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--endpoint-url"), "{}", stderr(&out));
}

#[tokio::test]
async fn json_output_is_one_document_on_stdout_with_the_summary() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    // -vv: the attempts wfboot gives up are said on stderr (see below).
    let out =
        emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo", "--output", "json", "-vv"]).output().unwrap();
    assert!(out.status.success(), "{}", tail(&stderr(&out)));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON document");
    assert_eq!(v["verified"], true);
    assert_eq!(v["summary"]["writes_done"], 32);
    assert_eq!(v["summary"]["created"], 11);
    assert_eq!(v["summary"]["api_writes"], 32);
    assert_eq!(v["plan"]["summary"]["changes"], 32);
    assert!(v["summary"]["api_calls"].as_u64().unwrap() >= 32);
    // The emulator saw as many HTTP requests as wfboot says it sent (retries included), once it answered them all;
    // an attempt wfboot gave up (a loaded machine can make one outlast its deadline) may have been cut before the
    // emulator logged it.
    emu.quiet();
    let seen = emu.wfboot_requests_since(0).len() as u64;
    let sent = v["summary"]["http_attempts"].as_u64().unwrap();
    let cut = given_up(&stderr(&out)).len() as u64;
    assert!(
        sent.saturating_sub(cut) <= seen && seen <= sent,
        "wfboot says {sent} attempts ({cut} given up), the emulator saw {seen}"
    );
}

#[tokio::test]
async fn the_plan_of_a_fresh_account_as_text_and_json() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b\d{12}\b", "[ACCOUNT]");
    let text = emu.wfboot().args(["plan", "--user-name", "demo"]).output().unwrap();
    let json = emu.wfboot().args(["plan", "--user-name", "demo", "--output", "json"]).output().unwrap();
    settings.bind(|| {
        insta::assert_snapshot!("fresh_plan_text", stdout(&text));
        insta::assert_snapshot!("fresh_plan_json", stdout(&json));
    });
}

#[tokio::test]
async fn the_plan_after_drift_says_what_differs() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).assert().success();
    let iam = emu.admin().await;
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.update_assume_role_policy().role_name("StepFunctionsLambdaRole").policy_document(doc).send().await.unwrap();
    iam.detach_role_policy()
        .role_name("AWSBatchServiceRole")
        .policy_arn("arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole")
        .send()
        .await
        .unwrap();
    iam.attach_role_policy()
        .role_name("AWSBatchServiceRole")
        .policy_arn("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
        .send()
        .await
        .unwrap();
    let out = emu.wfboot().args(["plan", "--user-name", "demo"]).output().unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b\d{12}\b", "[ACCOUNT]");
    settings.bind(|| insta::assert_snapshot!("drift_plan_text", stdout(&out)));
}

#[test]
fn install_sh_installs_the_binary_its_man_page_and_completions() {
    let prefix = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(repo().join("install.sh"))
        .env("PREFIX", prefix.path())
        .env("WFBOOT_BIN", assert_cmd::cargo::cargo_bin("wfboot"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |p: &str| std::fs::read_to_string(prefix.path().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert!(read("share/man/man1/wfboot.1").starts_with(".ie \\n(.g .ds Aq"), "not a roff page");
    assert!(read("share/man/man1/wfboot.1").contains("bootstrap"));
    for (file, marker) in [
        ("share/bash-completion/completions/wfboot", "_wfboot()"),
        ("share/zsh/site-functions/_wfboot", "#compdef wfboot"),
        ("share/fish/vendor_completions.d/wfboot.fish", "complete -c wfboot"),
    ] {
        let text = read(file);
        assert!(text.contains(marker), "{file}");
        assert!(text.contains("bootstrap") && text.contains("endpoint-url"), "{file} lacks the commands");
    }
    let installed = std::process::Command::new(prefix.path().join("bin/wfboot")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&installed.stdout).starts_with("wfboot "));
}
