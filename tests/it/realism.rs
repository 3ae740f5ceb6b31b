//! Real AWS is not a kind emulator: IAM reads lag behind writes, EC2 rejects an instance profile for seconds
//! after it is made, concurrent writes to one entity meet ConcurrentModification, a delete right after the last
//! detach meets DeleteConflict, and assumed-role sessions expire. Under the emulator's realism mode
//! (tools/realism.py, short windows: `common::REALISM`), each flow below converges in ONE run with exit 0, its
//! waits bounded and told on stderr. Each test has its own emulator, so they run concurrently.

use crate::common::*;
use serde_json::{json, Value};

/// The fixture's end state in `account`: the operator user's SLIMWorkflowPassRoles is that account's policy.
fn expected_state_in(account: &str) -> Value {
    serde_json::from_str(&include_str!("../fixtures/slim-workflow.state.json").replace("123456789012", account))
        .unwrap()
}

fn expected_state() -> Value {
    serde_json::from_str(include_str!("../fixtures/slim-workflow.state.json")).unwrap()
}

/// What one run under realism printed, and its JSON result.
struct Run {
    json: Value,
    stderr: String,
}

/// `wfboot ARGS --output json` against `emu`, which must exit 0 in this one run.
fn one_run(emu: &Emulator, args: &[&str]) -> Run {
    let out = emu.wfboot().args(args).args(["--output", "json"]).output().unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{args:?} did not converge in one run:\n{text}\n{err}");
    Run { json: serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")), stderr: err }
}

fn bootstrap(emu: &Emulator) -> Run {
    one_run(emu, &["bootstrap", "--yes", "--user-name", "demo"])
}

/// The run's waits are bounded (the default 120 s is said) and were told, and the summary counts them.
fn assert_waits_told(run: &Run, what: &str) {
    assert!(run.stderr.contains(what), "stderr does not say it waits for {what:?}:\n{}", run.stderr);
    assert!(run.stderr.contains("up to 120 s"), "the wait's bound is not said:\n{}", run.stderr);
    let summary = &run.json["summary"];
    assert!(summary["waited_seconds"].as_f64().is_some_and(|s| s > 0.0 && s < 120.0), "{summary}");
}

async fn fresh() -> Emulator {
    let emu = Emulator::start_realistic();
    emu.create_demo_user().await;
    emu.settle();
    emu
}

#[tokio::test]
async fn under_realism_a_fresh_bootstrap_converges_in_one_run_waiting_out_the_lag_and_retrying_concurrent_writes() {
    // A lag long enough that the run's own read-back still meets it on a loaded machine (at 1.5 s, with a dozen
    // realism tests at once, the read-back could come after the lag had ended and the test proved nothing).
    let emu = Emulator::start_with(&["--realism", "--iam-lag", "4", "--ec2-lag", "3", "--write-hold", "0.1"]);
    emu.create_demo_user().await;
    emu.settle();
    let mark = emu.mark();
    let run = bootstrap(&emu);
    let summary = &run.json["summary"];
    assert_eq!(run.json["verified"], json!(true), "{}", run.json);
    assert_eq!(summary["failed"], json!(0), "{summary}");
    assert_eq!(summary["created"], json!(11), "{summary}");
    // The emulator really refused concurrent writes (the 7 user attachments go out at once) and lagged reads.
    let refused = emu.realism_answers_since(mark, "concurrent_modification");
    assert!(refused > 0, "no ConcurrentModification was met");
    assert!(emu.realism_answers_since(mark, "stale_read") > 0, "no read met the lag");
    assert_eq!(summary["retries"].as_u64(), Some(refused as u64), "every refusal is retried once: {summary}");
    assert_waits_told(&run, "read-after-write lag");
    assert!(run.stderr.contains("ConcurrentModification"), "{}", run.stderr);
    // Exactly the 31 writes of a fresh bootstrap went through, no second round.
    assert_eq!(emu.wfboot_writes_since(mark).len(), 32, "{:?}", emu.wfboot_writes_since(mark));
    assert_eq!(summary["writes_done"], json!(32), "{summary}");
    emu.settle();
    assert_eq!(dump_state(&emu.admin().await).await, expected_state());
}

/// Bootstrap, let it settle, break something with the admin client, let that settle (the drift is there when
/// wfboot starts), then one bootstrap repairs exactly it, and the account is whole.
async fn repairs_in_one_run(emu: &Emulator, expected_writes: &[&str]) -> Run {
    emu.settle();
    let mark = emu.mark();
    let run = bootstrap(emu);
    assert_eq!(emu.wfboot_writes_since(mark), expected_writes, "{}", run.json);
    assert_eq!(run.json["verified"], json!(true));
    emu.settle();
    assert_eq!(dump_state(&emu.admin().await).await, expected_state());
    let mark = emu.mark();
    bootstrap(emu);
    assert!(emu.wfboot_write_attempts_since(mark).is_empty(), "not idempotent after the repair");
    run
}

async fn bootstrapped() -> Emulator {
    let emu = fresh().await;
    bootstrap(&emu);
    emu.settle();
    emu
}

#[tokio::test]
async fn under_realism_a_deleted_role_is_recreated_in_one_run() {
    let emu = bootstrapped().await;
    let iam = emu.admin().await;
    let arn = "arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole";
    iam.detach_role_policy().role_name("AWSBatchServiceRole").policy_arn(arn).send().await.unwrap();
    emu.settle();
    iam.delete_role().role_name("AWSBatchServiceRole").send().await.unwrap();
    let run = repairs_in_one_run(&emu, &["AttachRolePolicy", "CreateRole"]).await;
    assert_waits_told(&run, "read-after-write lag");
}

#[tokio::test]
async fn under_realism_a_detached_policy_is_attached_again_in_one_run() {
    let emu = bootstrapped().await;
    let arn = format!("arn:aws:iam::{ACCOUNT}:policy/LambdaBatchExecutionPolicy");
    emu.admin().await.detach_role_policy().role_name("SLIM-Extras_for_Lambda").policy_arn(arn).send().await.unwrap();
    repairs_in_one_run(&emu, &["AttachRolePolicy"]).await;
}

#[tokio::test]
async fn under_realism_an_edited_trust_document_is_restored_in_one_run() {
    let emu = bootstrapped().await;
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let iam = emu.admin().await;
    iam.update_assume_role_policy().role_name("StepFunctionsLambdaRole").policy_document(doc).send().await.unwrap();
    repairs_in_one_run(&emu, &["UpdateAssumeRolePolicy"]).await;
}

#[tokio::test]
async fn under_realism_an_emptied_instance_profile_gets_its_role_back_in_one_run() {
    let emu = bootstrapped().await;
    emu.admin()
        .await
        .remove_role_from_instance_profile()
        .instance_profile_name("SLIM-Extras_ECS_for_EC2")
        .role_name("SLIM-Extras_ECS_for_EC2")
        .send()
        .await
        .unwrap();
    repairs_in_one_run(&emu, &["AddRoleToInstanceProfile"]).await;
}

#[tokio::test]
async fn under_realism_an_edited_customer_policy_and_a_detached_user_policy_are_repaired_in_one_run() {
    let emu = bootstrapped().await;
    let iam = emu.admin().await;
    let arn = format!("arn:aws:iam::{ACCOUNT}:policy/LambdaBatchExecutionPolicy");
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"batch:*","Resource":"*"}]}"#;
    iam.create_policy_version().policy_arn(&arn).policy_document(doc).set_as_default(true).send().await.unwrap();
    let user_policy = "arn:aws:iam::aws:policy/AmazonSQSFullAccess";
    iam.detach_user_policy().user_name("demo").policy_arn(user_policy).send().await.unwrap();
    repairs_in_one_run(&emu, &["AttachUserPolicy", "CreatePolicyVersion"]).await;
}

#[tokio::test]
async fn under_realism_a_deleted_instance_profile_is_recreated_and_filled_in_one_run() {
    let emu = bootstrapped().await;
    let iam = emu.admin().await;
    let name = "SLIM-Extras_ECS_for_EC2";
    iam.remove_role_from_instance_profile().instance_profile_name(name).role_name(name).send().await.unwrap();
    emu.settle();
    iam.delete_instance_profile().instance_profile_name(name).send().await.unwrap();
    repairs_in_one_run(&emu, &["AddRoleToInstanceProfile", "CreateInstanceProfile"]).await;
}

#[tokio::test]
async fn under_realism_destroy_removes_the_stack_in_one_run_retrying_delete_conflicts_it_caused() {
    let emu = bootstrapped().await;
    let iam = emu.admin().await;
    let mark = emu.mark();
    let run = one_run(&emu, &["destroy", "--yes"]);
    assert_eq!(run.json["verified"], json!(true), "{}", run.json);
    assert_eq!(run.json["summary"]["deleted"], json!(8), "{}", run.json["summary"]);
    assert_eq!(run.json["summary"]["failed"], json!(0));
    assert!(emu.realism_answers_since(mark, "delete_conflict") > 0, "no DeleteConflict was met");
    assert_waits_told(&run, "DeleteConflict");
    // The re-read after deleting met the lag in reverse (what was deleted still read as there) and waited it out.
    assert!(run.stderr.contains("read-after-write lag"), "{}", run.stderr);
    emu.settle();
    let state = dump_state(&iam).await;
    assert_eq!(state["customer_policies"], json!([]), "{state}");
    let roles: Vec<&String> = state["roles"].as_object().unwrap().keys().collect();
    assert!(roles.iter().all(|r| r.starts_with("/aws-service-role/")), "{roles:?}");
    assert_eq!(state["instance_profiles"], json!({}), "{state}");
}

/// `bootstrap --wait` returns once Batch has taken its probe environment's delete, not when the environment is gone;
/// `destroy` right after waits for Batch to finish deleting it before it deletes the service role, which the
/// delete needs (without it the environment ends INVALID for good: tools/realism.py).
#[tokio::test]
async fn under_realism_destroy_right_after_bootstrap_wait_lets_batch_finish_deleting_the_probe_environment() {
    let emu = Emulator::start_with(&[
        "--realism",
        "--iam-lag",
        "0.5",
        "--ec2-lag",
        "0",
        "--service-lag",
        "0",
        "--batch-transition",
        "6",
        "--lag-jitter",
        "0",
        "--write-hold",
        "0.1",
    ]);
    emu.create_demo_user().await;
    emu.settle();
    let run = one_run(&emu, &["bootstrap", "--yes", "--user-name", "demo", "--wait", "batch"]);
    assert_eq!(run.json["wait"]["usable"], json!(true), "{}", run.json["wait"]);
    let batch = aws_sdk_batch::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"));
    let left = batch.describe_compute_environments().send().await.unwrap().compute_environments().to_vec();
    let deleting = |l: &[aws_sdk_batch::types::ComputeEnvironmentDetail]| {
        l.iter().all(|e| e.status() == Some(&aws_sdk_batch::types::CeStatus::Deleting))
    };
    assert!(!left.is_empty() && deleting(&left), "not DELETING when bootstrap --wait returned: {left:?}");
    let mark = emu.mark();
    let run = one_run(&emu, &["destroy", "--yes"]);
    assert_eq!(run.json["summary"]["failed"], json!(0), "{}", run.json["summary"]);
    assert_eq!(run.json["summary"]["deleted"], json!(8), "{}", run.json["summary"]);
    let reads =
        emu.wfboot_requests_since(mark).iter().filter(|r| r.action == "POST /v1/describecomputeenvironments").count();
    assert!(reads > 1, "destroy did not wait for the environment ({reads} reads)");
    let left = batch.describe_compute_environments().send().await.unwrap().compute_environments().to_vec();
    assert!(left.is_empty(), "the environment lost its service role while DELETING: {left:?}");
}

#[tokio::test]
async fn under_realism_attach_right_after_bootstrap_waits_for_ec2_to_know_the_new_profile() {
    // EC2's window (12 s, jittered to 6-12 s) longer than the bootstrap takes, even on a loaded machine (at the
    // default 8 s, jittered to 4-8 s, a slow bootstrap outlasted it and EC2 never refused).
    let emu = Emulator::start_with(&["--realism", "--iam-lag", "1.5", "--ec2-lag", "12", "--write-hold", "0.1"]);
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"));
    let out = ec2.run_instances().image_id("ami-12c6146b").min_count(1).max_count(1).send().await.unwrap();
    let id = out.instances()[0].instance_id().unwrap().to_string();
    emu.settle();
    one_run(&emu, &["bootstrap", "--yes", "--skip-user"]);
    let mark = emu.mark();
    let run = one_run(&emu, &["attach", "--instance-id", &id, "--instance-profile", "SLIM-Extras_ECS_for_EC2"]);
    assert_eq!(run.json["action"], "associated", "{}", run.json);
    assert!(emu.realism_answers_since(mark, "ec2_not_propagated") > 0, "EC2 never refused the new profile");
    assert!(run.stderr.contains("waiting for instance profile `SLIM-Extras_ECS_for_EC2`"), "{}", run.stderr);
    assert!(run.stderr.contains("up to 120 s"), "{}", run.stderr);
    let associations = ec2.describe_iam_instance_profile_associations().send().await.unwrap();
    let a = &associations.iam_instance_profile_associations()[0];
    assert_eq!(a.instance_id(), Some(id.as_str()));
}

/// ModifyInstanceMetadataOptions answers `pending` on a running instance and DescribeInstances shows `applied` only
/// later: `attach --require-imdsv2` waits for `applied` before it associates the role, so the role's credentials
/// are never served to an IMDSv1 request.
#[tokio::test]
async fn under_realism_require_imdsv2_is_applied_before_the_role_is_associated() {
    let emu = Emulator::start_realistic();
    one_run(&emu, &["bootstrap", "--yes", "--skip-user"]);
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"));
    let out = ec2.run_instances().image_id("ami-12c6146b").min_count(1).max_count(1).send().await.unwrap();
    let id = out.instances()[0].instance_id().unwrap().to_string();
    emu.settle();
    let mark = emu.mark();
    let run = one_run(
        &emu,
        &["attach", "--instance-id", &id, "--instance-profile", "SLIM-Extras_ECS_for_EC2", "--require-imdsv2"],
    );
    assert_eq!((&run.json["imdsv2"]["outcome"], &run.json["action"]), (&json!("required"), &json!("associated")));
    assert_eq!(run.json["metadata_options"]["after"]["state"], "applied", "{}", run.json);
    // The window is 2 s jittered to 1-2 s.
    let waited = run.json["imdsv2"]["applied_after_seconds"].as_f64().unwrap();
    assert!(waited > 0.5 && waited < 10.0, "{}", run.json);
    let requests = emu.wfboot_requests_since(mark);
    let at = |action: &str| requests.iter().position(|r| r.action == action).unwrap();
    let (modify, associate) = (at("ModifyInstanceMetadataOptions"), at("AssociateIamInstanceProfile"));
    assert_eq!(requests[modify].realism.as_deref(), Some("metadata_pending"), "EC2 answered `pending`");
    let pending: Vec<&Request> = requests[modify..]
        .iter()
        .filter(|r| r.action == "DescribeInstances" && r.realism.as_deref() == Some("metadata_pending"))
        .collect();
    assert!(!pending.is_empty(), "wfboot never saw the options pending");
    let last_pending = pending.last().unwrap();
    assert!(
        last_pending.answered() <= requests[associate].t,
        "the role was associated while the options were still pending"
    );
    let options = ec2.describe_instances().instance_ids(&id).send().await.unwrap().reservations()[0].instances()[0]
        .metadata_options()
        .unwrap()
        .clone();
    assert_eq!(options.http_tokens(), Some(&aws_sdk_ec2::types::HttpTokensState::Required));
}

const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];

async fn three_accounts_bootstrap(emu: &Emulator) -> Run {
    for account in ACCOUNTS {
        account_admin(emu, account).await.create_user().user_name("demo").send().await.unwrap();
    }
    emu.settle();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "accounts.txt", &ACCOUNTS.join("\n"));
    let file = file.to_str().unwrap();
    let run = one_run(
        emu,
        &["bootstrap", "--yes", "--user-name", "demo", "--accounts", file, "--assume-role-name", "WfbootDeployer"],
    );
    assert_eq!(run.json["summary"]["failed"], json!(0), "{}", run.json["summary"]);
    for row in run.json["accounts"].as_array().unwrap() {
        assert_eq!(row["status"], "applied", "{row}");
        assert_eq!(row["changes"], json!(32), "{row}");
    }
    emu.settle();
    for account in ACCOUNTS {
        assert_eq!(
            dump_state(&account_admin(emu, account).await).await,
            expected_state_in(account),
            "account {account}"
        );
    }
    run
}

#[tokio::test]
async fn under_realism_a_three_account_bootstrap_converges_in_one_run() {
    let emu = Emulator::start_realistic();
    let run = three_accounts_bootstrap(&emu).await;
    assert!(run.stderr.contains("read-after-write lag"), "{}", run.stderr);
}

#[tokio::test]
async fn under_realism_a_multi_account_run_longer_than_its_sessions_renews_them_and_never_meets_expired_token() {
    // Sessions last 4 s; the run takes longer (lag and concurrent writes), so each account's credentials
    // expire mid-run and must be renewed.
    let mut args = REALISM.to_vec();
    args.extend(["--session-seconds", "4"]);
    let emu = Emulator::start_with(&args);
    // moto's first IAM call is slow (it loads the AWS-managed policies): not within a test's own session.
    emu.admin().await.list_roles().send().await.unwrap();
    let run = three_accounts_bootstrap(&emu).await;
    let longest = run.json["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row["result"]["summary"]["wall_seconds"].as_f64())
        .fold(0.0, f64::max);
    assert!(longest > 4.0, "the run ({longest} s) was not longer than a session: nothing shown");
    assert_eq!(emu.realism_answers_since(0, "expired_token"), 0, "a request was signed with an expired session");
    let assumed = emu.requests().iter().filter(|r| r.action == "AssumeRole" && r.status == Some(200)).count();
    assert!(assumed > ACCOUNTS.len(), "the sessions were never renewed ({assumed} AssumeRole)");
}

/// Realism for `--wait`: the services' windows (Lambda, Step Functions and Batch refuse a new role, EC2 a new
/// instance profile) last a minute, longer than any apply here even on a busy machine; the tests end them
/// themselves (`settle`) once every probe has been refused, so the moment the roles become usable is known. Every
/// write holds its entity for 0.3 s, so the operator user's eight attachments go one at a time and are the apply's
/// last writes.
const WAIT_LAG: [&str; 15] = [
    "--realism",
    "--iam-lag",
    "0.5",
    "--ec2-lag",
    "60",
    "--service-lag",
    "60",
    "--lag-jitter",
    "0",
    "--batch-transition",
    "0.3",
    "--write-hold",
    "0.3",
    "--seed",
    "1",
];

/// Each probed service: its name in the report, the line that says it took its role, its probe's request in the
/// emulator's log, and the realism mark of a refusal.
const PROBED: [(&str, &str, &str, &str); 4] = [
    (
        "ec2",
        "EC2 accepts the instance profile SLIM-Extras_ECS_for_EC2 (role SLIM-Extras_ECS_for_EC2)",
        "RunInstances",
        "ec2_not_propagated",
    ),
    (
        "lambda",
        "Lambda accepts the role SLIM-Extras_for_Lambda",
        "POST /2015-03-31/functions",
        "service_role_not_propagated",
    ),
    (
        "states",
        "Step Functions accepts the role StepFunctionsLambdaRole",
        "CreateStateMachine",
        "service_role_not_propagated",
    ),
    (
        "batch",
        "Batch accepts the role AWSBatchServiceRole (a compute environment created then went VALID)",
        "POST /v1/createcomputeenvironment",
        "batch_role_not_propagated",
    ),
];

/// When the service first took a probe of this run's: the answer to its first request after `mark` that the emulator
/// neither refused (`refusal`) nor failed; and how many it refused.
fn first_accepted(emu: &Emulator, mark: usize, action: &str, refusal: &str) -> (Option<f64>, usize) {
    let calls: Vec<Request> = emu.wfboot_requests_since(mark).into_iter().filter(|r| r.action == action).collect();
    let refused = calls.iter().filter(|r| r.realism.as_deref() == Some(refusal)).count();
    let accepted = calls.iter().find(|r| r.realism.as_deref() != Some(refusal) && r.status.is_some_and(|s| s < 500));
    (accepted.map(|r| r.answered()), refused)
}

/// `wfboot ARGS --output json` started on `emu`; once each of `probes` (action, refusal) has been refused at least
/// once, every window is ended (the roles become usable then): the run, which must exit 0, and when that was.
fn wait_run_made_usable(emu: &Emulator, mark: usize, args: &[&str], probes: &[(&str, &str)]) -> (Run, f64) {
    let child = emu
        .wfboot_std()
        .args(args)
        .args(["--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let begun = std::time::Instant::now();
    while !probes.iter().all(|(action, refusal)| first_accepted(emu, mark, action, refusal).1 > 0) {
        assert!(begun.elapsed().as_secs() < 90, "not every probe was refused within 90 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let usable_from = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    emu.settle();
    let out = child.wait_with_output().unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{args:?}:\n{text}\n{err}");
    (Run { json: serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")), stderr: err }, usable_from)
}

#[tokio::test]
async fn under_realism_bootstrap_wait_reports_each_service_as_it_becomes_usable_probing_before_the_apply_ends() {
    let emu = Emulator::start_with(&WAIT_LAG);
    emu.create_demo_user().await;
    emu.settle();
    let mark = emu.mark();
    let probes: Vec<(&str, &str)> = PROBED.iter().map(|(_, _, action, refusal)| (*action, *refusal)).collect();
    let (run, usable_from) =
        wait_run_made_usable(&emu, mark, &["bootstrap", "--yes", "--user-name", "demo", "--wait"], &probes);
    let wait = &run.json["wait"];
    assert_eq!(wait["usable"], json!(true), "{wait:#}");
    assert_eq!(wait["waited_for"], json!([]), "{wait:#}");
    let services = wait["services"].as_array().unwrap();
    let names: Vec<&str> = services.iter().map(|s| s["service"].as_str().unwrap()).collect();
    assert_eq!(names, ["ec2", "lambda", "states", "batch", "spotfleet"], "{wait:#}");
    let of = |name: &str| services.iter().find(|s| s["service"] == name).unwrap();
    // Each probed service: refused while its window lasted, then usable (reported, and told on stderr as it came)
    // once the window was over, when the log says it took a probe.
    let started = emu.wfboot_requests_since(mark)[0].t;
    let mut offsets = Vec::new();
    for (name, told, action, refusal) in PROBED {
        let s = of(name);
        assert_eq!(s["status"], "ok", "{s:#}");
        let after = s["usable_after_seconds"].as_f64().unwrap_or_else(|| panic!("{s:#}"));
        assert!(s["probing_from_seconds"].as_f64().unwrap() <= after, "{s:#}");
        assert!(run.stderr.contains(&format!("{told}: usable after")), "{}", run.stderr);
        let (accepted, _) = first_accepted(&emu, mark, action, refusal);
        let accepted = accepted.unwrap_or_else(|| panic!("{name}: no probe accepted in the log"));
        assert!(accepted > usable_from, "{name}: accepted at {accepted}, before its window ended at {usable_from}");
        // wfboot counts from its own start, a moment before its first request: the same offset for every service.
        let logged = accepted - started;
        assert!(after > logged - 0.05, "{name}: reported {after} s, before the log's {logged:.2} s");
        offsets.push((name, after - logged));
    }
    let (low, high) = offsets.iter().fold((f64::MAX, f64::MIN), |(l, h), (_, o)| (l.min(*o), h.max(*o)));
    assert!(high - low < 0.3, "the reported times do not follow the log's (offsets from wfboot's start: {offsets:?})");
    // Spot Fleet has no probe of its own: it is reported with the Batch probe that passed its role.
    let fleet = of("spotfleet");
    let covered = (fleet["status"].as_str(), fleet["covered_by"].as_str());
    assert_eq!(covered, (Some("unverified"), Some("batch")), "{fleet:#}");
    assert_eq!(fleet["usable_after_seconds"], of("batch")["usable_after_seconds"], "{fleet:#}");
    let last = services.iter().filter_map(|s| s["usable_after_seconds"].as_f64()).fold(0.0, f64::max);
    assert_eq!(wait["usable_after_seconds"].as_f64(), Some(last), "{wait:#}");
    // Step Functions' role (one attachment) is ready long before the operator user's attachments are done: its
    // probe began while the apply was still writing.
    let requests = emu.wfboot_requests_since(mark);
    let first_probe = requests.iter().find(|r| r.action == "CreateStateMachine").unwrap().t;
    let last_write = requests.iter().filter(|r| r.action == "AttachUserPolicy").map(|r| r.t).fold(0.0, f64::max);
    assert!(
        first_probe < last_write,
        "the Step Functions probe waited for the whole apply ({first_probe} >= {last_write})"
    );
    // And nothing of the probes is left: the run did not wait for Batch to finish deleting its environments (each
    // DELETING for the emulator's 0.3 s), which are gone soon after.
    let sfn = aws_sdk_sfn::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"));
    assert!(sfn.list_state_machines().send().await.unwrap().state_machines().is_empty());
    let batch = aws_sdk_batch::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"));
    let left = batch.describe_compute_environments().send().await.unwrap().compute_environments().to_vec();
    assert!(left.iter().all(|e| e.status() == Some(&aws_sdk_batch::types::CeStatus::Deleting)), "{left:?}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let left = batch.describe_compute_environments().send().await.unwrap().compute_environments().to_vec();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn under_realism_bootstrap_wait_lambda_waits_for_lambda_alone_and_a_function_can_be_created_right_after() {
    let emu = Emulator::start_with(&WAIT_LAG);
    emu.create_demo_user().await;
    emu.settle();
    let mark = emu.mark();
    let args = ["bootstrap", "--yes", "--user-name", "demo", "--wait", "lambda"];
    let (run, usable_from) =
        wait_run_made_usable(&emu, mark, &args, &[("POST /2015-03-31/functions", "service_role_not_propagated")]);
    let wait = &run.json["wait"];
    assert_eq!(wait["waited_for"], json!(["lambda"]), "{wait:#}");
    let services: Vec<&str> =
        wait["services"].as_array().unwrap().iter().map(|s| s["service"].as_str().unwrap()).collect();
    assert_eq!(services, ["lambda"], "{wait:#}");
    assert!(run.stderr.contains("Lambda accepts the role SLIM-Extras_for_Lambda: usable after"), "{}", run.stderr);
    // No other service was asked anything.
    let asked: Vec<String> = emu
        .wfboot_requests_since(mark)
        .into_iter()
        .filter(|r| matches!(r.service.as_str(), "states" | "batch" | "ec2"))
        .map(|r| r.action)
        .collect();
    assert_eq!(asked, Vec::<String>::new());
    let (accepted, _) = first_accepted(&emu, mark, "POST /2015-03-31/functions", "service_role_not_propagated");
    assert!(accepted.is_some_and(|a| a > usable_from), "Lambda took the role before its window ended");
    // The run returned once Lambda took the role: a function can be created at once.
    let lambda = aws_sdk_lambda::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"));
    lambda
        .create_function()
        .function_name("the-user-s-function")
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(format!("arn:aws:iam::{ACCOUNT}:role/SLIM-Extras_for_Lambda"))
        .handler("index.handler")
        .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(lambda_zip().into()).build())
        .send()
        .await
        .expect("a function with the role right after `bootstrap --wait lambda`");
}
