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
    let emu = fresh().await;
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

#[tokio::test]
async fn under_realism_attach_right_after_bootstrap_waits_for_ec2_to_know_the_new_profile() {
    // EC2's window at its default (8 s, jittered to 4-8 s), longer than the bootstrap takes.
    let emu = Emulator::start_with(&["--realism", "--iam-lag", "1.5", "--write-hold", "0.1"]);
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
