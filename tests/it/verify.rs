//! `wfboot verify` and `bootstrap --wait` against the emulator: each role's trust (offline), permissions
//! (simulated with the role as principal) and the services themselves (`--live`); probe resources always deleted,
//! leftovers of a killed run swept; under the realism mode's service lag, `--wait` returns once the services accept
//! the new roles.

use crate::common::*;
use serde_json::{json, Value};

fn bootstrap(emu: &Emulator, extra: &[&str]) -> std::process::Output {
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).args(extra).output().unwrap();
    assert!(out.status.success(), "bootstrap failed:\n{}\n{}", stdout(&out), stderr(&out));
    out
}

async fn bootstrapped() -> Emulator {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    bootstrap(&emu, &[]);
    emu
}

/// `wfboot verify ARGS --output json`: the exit code, the JSON and stderr.
fn verify(emu: &Emulator, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = emu.wfboot().arg("verify").args(args).args(["--output", "json"]).output().unwrap();
    let text = stdout(&out);
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\n{}", stderr(&out)));
    (out.status.code(), json, stderr(&out))
}

fn row<'a>(report: &'a Value, role: &str, check: &str) -> Vec<&'a Value> {
    report["rows"].as_array().unwrap().iter().filter(|r| r["role"] == role && r["check"] == check).collect()
}

const LAMBDA_ROLE: &str = "SLIM-Extras_for_Lambda";

struct Services {
    lambda: aws_sdk_lambda::Client,
    sfn: aws_sdk_sfn::Client,
    batch: aws_sdk_batch::Client,
}

fn services(emu: &Emulator) -> Services {
    let config = emu.sdk_config(ADMIN_KEY, "admin-secret");
    Services {
        lambda: aws_sdk_lambda::Client::new(&config),
        sfn: aws_sdk_sfn::Client::new(&config),
        batch: aws_sdk_batch::Client::new(&config),
    }
}

/// Every function, state machine and compute environment in the emulator, by name.
async fn probe_resources(s: &Services) -> Vec<String> {
    let mut names = Vec::new();
    for f in s.lambda.list_functions().send().await.unwrap().functions() {
        names.push(format!("function {}", f.function_name().unwrap_or_default()));
    }
    for m in s.sfn.list_state_machines().send().await.unwrap().state_machines() {
        names.push(format!("state machine {}", m.name()));
    }
    for c in s.batch.describe_compute_environments().send().await.unwrap().compute_environments() {
        names.push(format!("compute environment {}", c.compute_environment_name().unwrap_or_default()));
    }
    names
}

#[tokio::test]
async fn verify_passes_after_bootstrap_offline_and_live_and_leaves_no_probe_resource() {
    let emu = bootstrapped().await;
    let (code, report, err) = verify(&emu, &["--live"]);
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(report["kind"], "verify");
    assert_eq!(report["passed"], json!(true));
    assert_eq!(report["failed"], json!(0));
    for role in [
        "AWSBatchServiceRole",
        "StepFunctionsLambdaRole",
        "SLIM-Extras_ECS_for_EC2",
        LAMBDA_ROLE,
        "AmazonEC2SpotFleetRole",
    ] {
        for check in ["trust", "permissions"] {
            let rows = row(&report, role, check);
            assert_eq!(rows.len(), 1, "{role} {check}: {report:#}");
            assert_eq!(rows[0]["status"], "ok", "{role} {check}: {}", rows[0]);
        }
    }
    // The permission verdicts come from the emulator's simulator, not from a local guess.
    assert_eq!(row(&report, LAMBDA_ROLE, "permissions")[0]["method"], "simulation");
    // Each service was asked and accepted its role.
    for (role, method) in [
        (LAMBDA_ROLE, "Lambda CreateFunction"),
        ("StepFunctionsLambdaRole", "Step Functions CreateStateMachine"),
        ("AWSBatchServiceRole", "Batch CreateComputeEnvironment"),
        ("SLIM-Extras_ECS_for_EC2", "EC2 RunInstances (dry run)"),
    ] {
        let live = row(&report, role, "live");
        assert_eq!(live.len(), 1, "{role}: {report:#}");
        assert_eq!(live[0]["status"], "ok", "{role}: {}", live[0]);
        assert_eq!(live[0]["method"], method);
    }
    // Spot Fleet has no probe of its own: said, not claimed.
    assert_eq!(row(&report, "AmazonEC2SpotFleetRole", "live")[0]["status"], "unverified");
    // Each probe's create and delete went out (the emulator's log names REST calls by method and path).
    let writes = emu.wfboot_writes_since(0);
    for call in [
        "POST /2015-03-31/functions",
        "DELETE /2015-03-31/functions/wfboot-verify-slim-workflow-SLIM-Extras-for-Lambda",
        "CreateStateMachine",
        "DeleteStateMachine",
        "POST /v1/createcomputeenvironment",
        "POST /v1/deletecomputeenvironment",
    ] {
        assert_eq!(writes.iter().filter(|w| *w == call).count(), 1, "{call} in {writes:?}");
    }
    assert_eq!(probe_resources(&services(&emu)).await, Vec::<String>::new(), "probe resources left behind");
    // Without --live nothing is created at all.
    let mark = emu.mark();
    let (code, report, _) = verify(&emu, &[]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());
    assert!(row(&report, LAMBDA_ROLE, "live").is_empty());
}

#[tokio::test]
async fn a_lambda_role_whose_trust_was_changed_to_ec2_fails_the_trust_check_naming_the_role_and_the_principal() {
    let emu = bootstrapped().await;
    let ec2_trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    emu.admin()
        .await
        .update_assume_role_policy()
        .role_name(LAMBDA_ROLE)
        .policy_document(ec2_trust)
        .send()
        .await
        .unwrap();
    let (code, report, _) = verify(&emu, &[]);
    assert_eq!(code, Some(5), "{report:#}");
    assert_eq!(report["passed"], json!(false));
    let trust = row(&report, LAMBDA_ROLE, "trust");
    assert_eq!(trust[0]["status"], "failed", "{report:#}");
    let detail = trust[0]["detail"].as_str().unwrap();
    assert!(detail.contains("lambda.amazonaws.com may not assume it"), "{detail}");
    assert!(detail.contains("ec2.amazonaws.com"), "{detail}");
    // Only that role failed.
    let failed: Vec<&Value> = report["rows"].as_array().unwrap().iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    // The text table names it too.
    let out = emu.wfboot().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with(LAMBDA_ROLE) && l.contains("FAILED") && l.contains("lambda.amazonaws.com")),
        "{text}"
    );
}

#[tokio::test]
async fn a_hardened_trust_with_a_wrong_source_arn_fails_the_trust_check_and_the_right_one_passes() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    bootstrap(&emu, &["--harden"]);
    let (code, report, _) = verify(&emu, &[]);
    assert_eq!(code, Some(0), "the hardened stack itself must pass: {report:#}");
    let wrong = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:SourceAccount":"123456789012"},"ArnLike":{"aws:SourceArn":"arn:aws:batch:*:123456789012:job-queue/*"}}}]}"#;
    emu.admin()
        .await
        .update_assume_role_policy()
        .role_name("AWSBatchServiceRole")
        .policy_document(wrong)
        .send()
        .await
        .unwrap();
    let (code, report, _) = verify(&emu, &[]);
    assert_eq!(code, Some(5), "{report:#}");
    let trust = row(&report, "AWSBatchServiceRole", "trust");
    assert_eq!(trust[0]["status"], "failed", "{report:#}");
    assert!(trust[0]["detail"].as_str().unwrap().contains("batch.amazonaws.com may not assume it"), "{}", trust[0]);
}

#[tokio::test]
async fn a_role_stripped_of_its_policies_fails_the_permission_check() {
    let emu = bootstrapped().await;
    let iam = emu.admin().await;
    let attached = iam.list_attached_role_policies().role_name(LAMBDA_ROLE).send().await.unwrap();
    for p in attached.attached_policies() {
        iam.detach_role_policy().role_name(LAMBDA_ROLE).policy_arn(p.policy_arn().unwrap()).send().await.unwrap();
    }
    let (code, report, _) = verify(&emu, &[]);
    assert_eq!(code, Some(5), "{report:#}");
    let perms = row(&report, LAMBDA_ROLE, "permissions");
    assert_eq!(perms[0]["status"], "failed", "{report:#}");
    let detail = perms[0]["detail"].as_str().unwrap();
    assert!(detail.contains("batch:SubmitJob") && detail.contains("sqs:SendMessage"), "{detail}");
    assert_eq!(row(&report, "StepFunctionsLambdaRole", "permissions")[0]["status"], "ok");
}

#[tokio::test]
async fn leftovers_of_a_killed_run_are_swept_by_the_next_and_what_is_not_the_stack_s_is_left_alone() {
    let emu = bootstrapped().await;
    let s = services(&emu);
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{LAMBDA_ROLE}");
    // A real package: the one a probe makes is the same kind of archive.
    let zip = lambda_zip();
    let function = |name: &str, tagged: bool| {
        let mut f = s
            .lambda
            .create_function()
            .function_name(name)
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .role(&role)
            .handler("index.handler")
            .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(zip.clone().into()).build());
        if tagged {
            f = f.tags("wfboot:stack", "slim-workflow");
        }
        f.send()
    };
    // What a run killed between its creates and its deletes leaves: the fixed probe names, tagged.
    function("wfboot-verify-slim-workflow-SLIM-Extras-for-Lambda", true).await.unwrap();
    s.sfn
        .create_state_machine()
        .name("wfboot-verify-slim-workflow-StepFunctionsLambdaRole")
        .definition(r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/StepFunctionsLambdaRole"))
        .tags(aws_sdk_sfn::types::Tag::builder().key("wfboot:stack").value("slim-workflow").build())
        .send()
        .await
        .unwrap();
    // Someone's own function is not the probe's.
    function("their-function", false).await.unwrap();
    let (code, report, err) = verify(&emu, &["--live"]);
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    let swept: Vec<&str> = report["swept"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(
        swept,
        // In the stack's order of roles.
        [
            "state machine wfboot-verify-slim-workflow-StepFunctionsLambdaRole",
            "Lambda function wfboot-verify-slim-workflow-SLIM-Extras-for-Lambda"
        ]
    );
    assert!(err.contains("deleted what an earlier run's probes left"), "{err}");
    assert_eq!(probe_resources(&s).await, ["function their-function"]);
}

/// Realism with a service lag longer than the probes' timeout: Lambda and Step Functions refuse the new roles and
/// Batch's compute environment goes INVALID, so verify fails, and deletes the environment it created.
#[tokio::test]
async fn a_failed_verify_deletes_every_probe_resource_and_says_what_it_waited_for() {
    let emu = Emulator::start_with(&[
        "--realism",
        "--iam-lag",
        "0",
        "--ec2-lag",
        "0",
        "--service-lag",
        "30",
        "--lag-jitter",
        "0",
        "--batch-transition",
        "0.5",
    ]);
    emu.create_demo_user().await;
    emu.settle();
    bootstrap(&emu, &[]);
    let (code, report, err) = verify(&emu, &["--live", "--propagation-timeout", "2"]);
    assert_eq!(code, Some(5), "{report:#}\n{err}");
    let lambda = row(&report, LAMBDA_ROLE, "live");
    assert_eq!(lambda[0]["status"], "failed");
    assert!(lambda[0]["detail"].as_str().unwrap().contains("cannot be assumed by Lambda"), "{}", lambda[0]);
    let batch = row(&report, "AWSBatchServiceRole", "live");
    assert_eq!(batch[0]["status"], "failed");
    assert!(batch[0]["detail"].as_str().unwrap().contains("went INVALID"), "{}", batch[0]);
    assert!(err.contains("waiting for Lambda to accept the role SLIM-Extras_for_Lambda"), "{err}");
    assert!(emu.wfboot_writes_since(0).iter().any(|w| w == "POST /v1/createcomputeenvironment"));
    // Every probe resource deleted: the compute environments Batch is still deleting (DELETING, the emulator's
    // 0.5 s) are gone right after.
    let s = services(&emu);
    let left = s.batch.describe_compute_environments().send().await.unwrap().compute_environments().to_vec();
    assert!(left.iter().all(|e| e.status() == Some(&aws_sdk_batch::types::CeStatus::Deleting)), "{left:?}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(probe_resources(&s).await, Vec::<String>::new(), "probe resources left behind");
}

/// A bootstrapped emulator whose Batch compute environments stay CREATING for `transition` seconds, and a
/// `verify --live` started on it, returned once its Batch probe's environment exists (the probes are mid-way).
async fn verify_live_with_its_environment_creating(transition: &str) -> (Emulator, Services, std::process::Child) {
    let emu = Emulator::start_with(&[
        "--realism",
        "--iam-lag",
        "0",
        "--ec2-lag",
        "0",
        "--service-lag",
        "0",
        "--batch-transition",
        transition,
    ]);
    emu.create_demo_user().await;
    emu.settle();
    bootstrap(&emu, &[]);
    let s = services(&emu);
    let child = emu
        .wfboot_std()
        .args(["verify", "--live"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let envs = s.batch.describe_compute_environments().send().await.unwrap();
        if !envs.compute_environments().is_empty() {
            break;
        }
        assert!(started.elapsed().as_secs() < 30, "the Batch probe never created its environment");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (emu, s, child)
}

/// A run killed (SIGKILL: no cleanup possible) while its Batch probe's environment is CREATING leaves it; the next
/// run deletes it first.
#[tokio::test]
async fn a_kill_during_the_probes_leaves_a_resource_the_next_run_sweeps() {
    let (emu, s, mut child) = verify_live_with_its_environment_creating("6").await;
    child.kill().unwrap();
    let _ = child.wait();
    // The environment for sure; the other probes may have been between their create and delete too.
    let left = probe_resources(&s).await;
    let environment = "compute environment wfboot-verify-slim-workflow-AWSBatchServiceRole";
    assert!(left.iter().any(|r| r == environment), "the kill should have left the environment: {left:?}");
    emu.settle();
    let (code, report, err) = verify(&emu, &["--live"]);
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    let swept: Vec<String> = report["swept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().replace("Lambda function", "function"))
        .collect();
    // Everything the kill left (a create in flight at the kill may have landed after the listing, and is swept too).
    for r in &left {
        assert!(swept.contains(r), "{r} was not swept: {swept:?}");
    }
    // What is left is what Batch is still deleting (the emulator's 6 s DELETING): the run waits for Batch to take a
    // probe's delete, not for it to end.
    let left = s.batch.describe_compute_environments().send().await.unwrap().compute_environments().to_vec();
    assert!(left.iter().all(|e| e.status() == Some(&aws_sdk_batch::types::CeStatus::Deleting)), "{left:?}");
    let left = probe_resources(&s).await;
    assert!(
        left.iter().all(|r| r.starts_with("compute environment wfboot-verify-")),
        "more than probe environments left: {left:?}"
    );
}

/// Ctrl-C (SIGINT) while the Batch probe's environment is CREATING: verify deletes what its probes created, says
/// it was interrupted and exits 130; nothing of the probes is left once Batch has finished deleting.
#[tokio::test]
async fn ctrl_c_during_the_probes_deletes_what_they_created_and_exits_130() {
    let (_emu, s, child) = verify_live_with_its_environment_creating("4").await;
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    // Batch deletes an environment through DELETING (the emulator's 4 s transition); nothing else may be left.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left = probe_resources(&s).await;
        if left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the interrupted verify left {left:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Under realism (a 10 s service lag after each role's create), `bootstrap --wait` returns only once Lambda accepts
/// the new role: a CreateFunction right after it succeeds, where one right after a plain bootstrap is refused.
#[tokio::test]
async fn with_a_service_lag_bootstrap_wait_returns_only_once_the_services_accept_the_new_roles() {
    let lag = SERVICE_LAG;
    // Without --wait: the function cannot be created right after.
    let plain = Emulator::start_with(&lag);
    plain.create_demo_user().await;
    plain.settle();
    bootstrap(&plain, &[]);
    let refused = create_function(&plain).await;
    assert!(
        refused.is_err_and(|e| e.contains("cannot be assumed by Lambda")),
        "a plain bootstrap's role was usable at once"
    );

    let emu = Emulator::start_with(&lag);
    emu.create_demo_user().await;
    emu.settle();
    let out = emu
        .wfboot()
        .args(["bootstrap", "--yes", "--user-name", "demo", "--wait", "--output", "json"])
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    let report: Value = serde_json::from_str(&text).unwrap();
    let wait = &report["wait"];
    assert_eq!(wait["usable"], json!(true), "{wait:#}");
    let after = wait["usable_after_seconds"].as_f64().unwrap();
    assert!((10.0..40.0).contains(&after), "usable after {after} s with a 10 s lag: {wait:#}\n{err}");
    assert!(err.contains("waiting for Lambda to accept the role"), "{err}");
    assert!(emu.realism_answers_since(0, "service_role_not_propagated") > 0, "the lag was never met");
    create_function(&emu).await.expect("the function can be created right after bootstrap --wait");
    // And the text summary says when it became usable.
    let again = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo", "--wait"]).output().unwrap();
    assert!(again.status.success());
    assert!(stdout(&again).contains("Usable after"), "{}", stdout(&again));
}

async fn create_function(emu: &Emulator) -> Result<(), String> {
    let s = services(emu);
    let zip = lambda_zip();
    s.lambda
        .create_function()
        .function_name("the-user-s-function")
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(format!("arn:aws:iam::{ACCOUNT}:role/{LAMBDA_ROLE}"))
        .handler("index.handler")
        .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(zip.into()).build())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{:?}", aws_sdk_lambda::error::DisplayErrorContext(&e)))
}

/// `check` says what it knows of the roles: their trust checked offline as `verify` does it (a failure fails the
/// check), and that only `verify --live` asks the services; nothing of it while roles are still to be created.
#[tokio::test]
async fn check_reports_the_offline_trust_check_and_that_only_verify_live_asks_the_services() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let rows = |out: &std::process::Output| -> Vec<Value> {
        let report: Value = serde_json::from_str(&stdout(out)).unwrap();
        report["rows"].as_array().unwrap().iter().filter(|r| r["area"] == "roles").cloned().collect()
    };
    let before = emu.wfboot().args(["check", "--user-name", "demo", "--output", "json"]).output().unwrap();
    assert_eq!(rows(&before), Vec::<Value>::new(), "no role exists yet");
    bootstrap(&emu, &[]);
    let after = emu.wfboot().args(["check", "--user-name", "demo", "--output", "json"]).output().unwrap();
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));
    let r = rows(&after);
    assert_eq!(r.len(), 2, "{r:#?}");
    assert_eq!(r[0]["status"], "ok", "{r:#?}");
    assert_eq!(r[1]["status"], "unverified");
    assert!(r[1]["what_to_do"].as_str().unwrap().contains("wfboot verify --live"), "{r:#?}");
    let ec2_trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    emu.admin()
        .await
        .update_assume_role_policy()
        .role_name(LAMBDA_ROLE)
        .policy_document(ec2_trust)
        .send()
        .await
        .unwrap();
    let broken = emu.wfboot().args(["check", "--user-name", "demo", "--output", "json"]).output().unwrap();
    assert_eq!(broken.status.code(), Some(3), "{}", stdout(&broken));
    let r = rows(&broken);
    assert_eq!(r[0]["status"], "failed", "{r:#?}");
    assert!(r[0]["what_to_do"].as_str().unwrap().contains(LAMBDA_ROLE), "{r:#?}");
}

/// Without the emulator's simulator (moto answers SimulatePrincipalPolicy with HTTP 500), the role's own policies
/// are evaluated locally, and each row says so; a stripped role still fails.
#[tokio::test]
async fn without_a_simulator_the_role_s_policies_are_evaluated_locally_and_marked_so() {
    let emu = Emulator::start_with(&["--no-simulator"]);
    emu.create_demo_user().await;
    bootstrap(&emu, &["--retry-attempts", "2"]);
    let (code, report, _) = verify(&emu, &["--retry-attempts", "2"]);
    assert_eq!(code, Some(0), "{report:#}");
    let perms = row(&report, LAMBDA_ROLE, "permissions");
    assert_eq!(perms[0]["status"], "ok", "{report:#}");
    assert_eq!(perms[0]["method"], "local evaluation");
    let iam = emu.admin().await;
    for p in iam.list_attached_role_policies().role_name(LAMBDA_ROLE).send().await.unwrap().attached_policies() {
        iam.detach_role_policy().role_name(LAMBDA_ROLE).policy_arn(p.policy_arn().unwrap()).send().await.unwrap();
    }
    let (code, report, _) = verify(&emu, &["--retry-attempts", "2"]);
    assert_eq!(code, Some(5), "{report:#}");
    let perms = row(&report, LAMBDA_ROLE, "permissions");
    assert_eq!(perms[0]["status"], "failed", "{report:#}");
    assert_eq!(perms[0]["method"], "local evaluation");
}

/// A trust document that would lock its own service out (EC2 sends no aws:SourceAccount) is refused by bootstrap
/// before its first write, naming the role and the service.
#[tokio::test]
async fn bootstrap_refuses_a_trust_document_that_would_lock_its_service_out_before_writing() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "locked-trust.json",
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "{{principal:ec2}}"},
            "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"aws:SourceAccount": "{{account_id}}"}}}]}"#,
    );
    let stack = write_file(
        dir.path(),
        "locked.toml",
        "name = \"locked\"\n\n[[role]]\nname = \"LockedRole\"\ntrust = \"locked-trust.json\"\n",
    );
    let mark = emu.mark();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--skip-user", "--stack"]).arg(&stack).output().unwrap();
    assert_eq!(out.status.code(), Some(65), "{}\n{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("role LockedRole") && err.contains("ec2.amazonaws.com"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());

    // Through --accounts the same guard, the same exit code and words, and no write in any account.
    let accounts = write_file(dir.path(), "accounts.txt", "111111111111\n222222222222\n");
    let mark = emu.mark();
    let fleet = emu
        .wfboot()
        .args(["bootstrap", "--yes", "--skip-user", "--stack"])
        .arg(&stack)
        .arg("--accounts")
        .arg(&accounts)
        .args(["--assume-role-name", "OrganizationAccountAccessRole"])
        .output()
        .unwrap();
    assert_eq!(fleet.status.code(), Some(65), "{}\n{}", stdout(&fleet), stderr(&fleet));
    let fleet_err = stderr(&fleet);
    assert!(fleet_err.contains("role LockedRole") && fleet_err.contains("ec2.amazonaws.com"), "{fleet_err}");
    assert!(fleet_err.contains("nothing was written"), "{fleet_err}");
    // Each account is refused after its role was assumed (sts:AssumeRole is the only call counted as a write).
    let writes: Vec<String> = emu
        .requests()
        .into_iter()
        .skip(mark)
        .filter(|r| r.write && r.action != "AssumeRole")
        .map(|r| r.action)
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "a write was sent through --accounts");
}

/// `--wait SERVICE,...` is checked before any AWS call: an unknown name lists the valid ones, and a service the
/// stack has no role for says which ones it serves; both exit 64 and send nothing.
#[tokio::test]
async fn wait_with_an_unknown_service_or_one_the_stack_does_not_serve_is_a_usage_error_before_any_call() {
    let emu = Emulator::start();
    let cases: [(&[&str], &[&str]); 3] = [
        (&["--wait", "lamda"], &["unknown service `lamda`", "ec2 (EC2), lambda (Lambda), states (Step Functions)"]),
        (&["--wait", "lambda,nope"], &["unknown service `nope`"]),
        (
            &["--wait", "lambda,ec2", "--stack", "render-worker"],
            &["stack render-worker has no role for lambda", "its roles are for ec2"],
        ),
    ];
    for (args, words) in cases {
        let out = emu.wfboot().args(["bootstrap", "--yes", "--skip-user"]).args(args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        for w in words {
            assert!(err.contains(w), "{args:?} does not say `{w}`: {err}");
        }
    }
    assert_eq!(emu.requests().len(), 0, "a request reached the emulator");
}
