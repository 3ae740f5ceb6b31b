//! `wfboot bootstrap` and `wfboot plan` against a real moto server: end state, idempotence, repairs,
//! ownership and bad input. Every state check goes through a separate admin client, and write calls are
//! counted from the emulator's own request log.

use crate::common::*;
use serde_json::Value;

fn bootstrap_ok(emu: &Emulator) -> std::process::Output {
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    assert!(out.status.success(), "bootstrap failed:\n{}\n{}", stdout(&out), stderr(&out));
    out
}

async fn fresh_bootstrapped() -> Emulator {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    bootstrap_ok(&emu);
    emu
}

#[tokio::test]
async fn fresh_bootstrap_creates_the_whole_default_stack_like_the_careful_boto3_script() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let mark = emu.mark();
    let out = bootstrap_ok(&emu);
    let writes = emu.wfboot_writes_since(mark);
    assert_eq!(writes.len(), 32, "{writes:?}");
    assert!(stdout(&out).contains("32 writes done"), "{}", stdout(&out));

    // Same canonical end state as the careful boto3 peer script (tests/fixtures/README.md says how the
    // fixture was made and how scripts/peer-parity.sh re-checks it live).
    let state = dump_state(&emu.admin().await).await;
    let expected: Value =
        serde_json::from_str(include_str!("../fixtures/slim-workflow.state.json")).expect("fixture is JSON");
    assert_eq!(
        state,
        expected,
        "end state differs from the boto3 peer's:\n{}",
        serde_json::to_string_pretty(&state).unwrap()
    );

    // What wfboot created carries its ownership tag.
    let iam = emu.admin().await;
    let role = iam.get_role().role_name("AWSBatchServiceRole").send().await.unwrap();
    let tags = role.role().unwrap().tags();
    assert!(tags.iter().any(|t| t.key() == "wfboot:stack" && t.value() == "slim-workflow"), "{tags:?}");
    assert_eq!(
        role.role().unwrap().description(),
        Some("Allows Batch to create and manage AWS resources on your behalf.")
    );
}

#[tokio::test]
async fn re_running_on_a_bootstrapped_account_makes_no_write_call() {
    let emu = fresh_bootstrapped().await;
    let mark = emu.mark();
    let out = bootstrap_ok(&emu);
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());
    let reads = emu.wfboot_requests_since(mark);
    assert!(reads.len() <= 20, "a no-op re-run made {} calls", reads.len());
    // Nothing to do by name (every role, profile and service-linked role is there): no check a writing run
    // needs is started early.
    assert!(!reads.iter().any(|r| r.action == "SimulatePrincipalPolicy"), "{reads:?}");
    assert!(stdout(&out).contains("Nothing to do"), "{}", stdout(&out));
}

/// A no-op re-run in two dependent round trips: the caller and the reads by name, then what needs the account, where
/// each policy's document (its first version, still its default) is read alongside the policy instead of after it.
/// Each request answered after 100 ms, so that "alongside" is far from "after".
#[tokio::test]
async fn a_no_op_re_run_reads_each_policy_and_its_document_in_the_same_round_trip() {
    let emu = Emulator::start_with(&["--latency-ms", "100"]);
    emu.create_demo_user().await;
    bootstrap_ok(&emu);
    let mark = emu.mark();
    bootstrap_ok(&emu);
    let reads = emu.wfboot_requests_since(mark);
    assert!(reads.len() <= 20 && reads.iter().all(|r| !r.write), "{reads:?}");
    let of = |action: &str| reads.iter().filter(|r| r.action == action).cloned().collect::<Vec<_>>();
    let (policies, documents) = (of("GetPolicy"), of("GetPolicyVersion"));
    assert_eq!((policies.len(), documents.len()), (2, 2), "{reads:?}");
    let first_answer = policies.iter().map(Request::answered).fold(f64::MAX, f64::min);
    for d in &documents {
        assert!(d.t < first_answer, "GetPolicyVersion waited for GetPolicy's answer: {reads:?}");
    }
}

#[tokio::test]
async fn plan_makes_no_write_call_and_reports_pending_changes_with_detailed_exitcode() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let mark = emu.mark();
    let out = emu.wfboot().args(["plan", "--user-name", "demo", "--detailed-exitcode"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(emu.wfboot_requests_since(mark).iter().all(|r| !r.write));
    assert!(!emu.wfboot_requests_since(mark).is_empty());
    assert!(stdout(&out).contains("+ role AWSBatchServiceRole"));
    assert_eq!(dump_state(&emu.admin().await).await["roles"], serde_json::json!({}));

    bootstrap_ok(&emu);
    let out = emu.wfboot().args(["plan", "--user-name", "demo", "--detailed-exitcode"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Break one thing, re-run, and check that exactly the expected writes were made and the state is whole again.
async fn repairs(emu: &Emulator, expected_writes: &[&str]) {
    let mark = emu.mark();
    let out = bootstrap_ok(emu);
    assert_eq!(emu.wfboot_writes_since(mark), expected_writes, "{}", stdout(&out));
    let state = dump_state(&emu.admin().await).await;
    let expected: Value = serde_json::from_str(include_str!("../fixtures/slim-workflow.state.json")).unwrap();
    assert_eq!(state, expected);
    let mark = emu.mark();
    bootstrap_ok(emu);
    assert!(emu.wfboot_write_attempts_since(mark).is_empty(), "not idempotent after repair");
}

#[tokio::test]
async fn re_running_after_a_role_was_deleted_recreates_it_and_nothing_else() {
    let emu = fresh_bootstrapped().await;
    let iam = emu.admin().await;
    let arn = "arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole";
    iam.detach_role_policy().role_name("AWSBatchServiceRole").policy_arn(arn).send().await.unwrap();
    iam.delete_role().role_name("AWSBatchServiceRole").send().await.unwrap();
    repairs(&emu, &["AttachRolePolicy", "CreateRole"]).await;
}

#[tokio::test]
async fn re_running_after_a_policy_was_detached_attaches_it_again() {
    let emu = fresh_bootstrapped().await;
    let arn = format!("arn:aws:iam::{ACCOUNT}:policy/LambdaBatchExecutionPolicy");
    emu.admin().await.detach_role_policy().role_name("SLIM-Extras_for_Lambda").policy_arn(arn).send().await.unwrap();
    repairs(&emu, &["AttachRolePolicy"]).await;
}

#[tokio::test]
async fn re_running_after_the_role_left_its_instance_profile_puts_it_back() {
    let emu = fresh_bootstrapped().await;
    emu.admin()
        .await
        .remove_role_from_instance_profile()
        .instance_profile_name("SLIM-Extras_ECS_for_EC2")
        .role_name("SLIM-Extras_ECS_for_EC2")
        .send()
        .await
        .unwrap();
    repairs(&emu, &["AddRoleToInstanceProfile"]).await;
}

#[tokio::test]
async fn re_running_after_a_trust_document_was_edited_restores_it() {
    let emu = fresh_bootstrapped().await;
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    emu.admin()
        .await
        .update_assume_role_policy()
        .role_name("StepFunctionsLambdaRole")
        .policy_document(doc)
        .send()
        .await
        .unwrap();
    repairs(&emu, &["UpdateAssumeRolePolicy"]).await;
}

#[tokio::test]
async fn re_running_after_the_customer_policy_was_edited_sets_a_new_default_version() {
    let emu = fresh_bootstrapped().await;
    let iam = emu.admin().await;
    let arn = format!("arn:aws:iam::{ACCOUNT}:policy/LambdaBatchExecutionPolicy");
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"batch:*","Resource":"*"}]}"#;
    iam.create_policy_version().policy_arn(&arn).policy_document(doc).set_as_default(true).send().await.unwrap();
    repairs(&emu, &["CreatePolicyVersion"]).await;
    let versions = iam.list_policy_versions().policy_arn(&arn).send().await.unwrap();
    let default = versions.versions().iter().find(|v| v.is_default_version()).unwrap();
    let doc = iam.get_policy_version().policy_arn(&arn).version_id(default.version_id().unwrap()).send().await.unwrap();
    let text = percent_decode(doc.policy_version().unwrap().document().unwrap());
    assert!(text.contains("batch:SubmitJob"), "{text}");
}

#[tokio::test]
async fn when_five_policy_versions_exist_the_oldest_non_default_one_is_deleted_first() {
    let emu = fresh_bootstrapped().await;
    let iam = emu.admin().await;
    let arn = format!("arn:aws:iam::{ACCOUNT}:policy/LambdaBatchExecutionPolicy");
    for i in 0..4 {
        let doc = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"batch:Op{i}","Resource":"*"}}]}}"#
        );
        iam.create_policy_version().policy_arn(&arn).policy_document(doc).set_as_default(true).send().await.unwrap();
    }
    repairs(&emu, &["CreatePolicyVersion", "DeletePolicyVersion"]).await;
    let versions = iam.list_policy_versions().policy_arn(&arn).send().await.unwrap();
    let ids: Vec<&str> = versions.versions().iter().filter_map(|v| v.version_id()).collect();
    assert!(!ids.contains(&"v1"), "the oldest version v1 should be gone: {ids:?}");
    assert_eq!(ids.len(), 5);
}

#[tokio::test]
async fn re_running_after_a_user_policy_was_detached_attaches_only_that_one() {
    let emu = fresh_bootstrapped().await;
    let arn = "arn:aws:iam::aws:policy/AmazonSQSFullAccess";
    emu.admin().await.detach_user_policy().user_name("demo").policy_arn(arn).send().await.unwrap();
    repairs(&emu, &["AttachUserPolicy"]).await;
}

#[tokio::test]
async fn a_user_policy_that_arrives_through_a_group_is_not_attached_again() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let iam = emu.admin().await;
    iam.create_group().group_name("ops").send().await.unwrap();
    iam.add_user_to_group().group_name("ops").user_name("demo").send().await.unwrap();
    let via_group = ["arn:aws:iam::aws:policy/AmazonEC2FullAccess", "arn:aws:iam::aws:policy/AWSBatchFullAccess"];
    for arn in via_group {
        iam.attach_group_policy().group_name("ops").policy_arn(arn).send().await.unwrap();
    }
    let out = bootstrap_ok(&emu);
    let direct = iam.list_attached_user_policies().user_name("demo").send().await.unwrap();
    let direct: Vec<&str> = direct.attached_policies().iter().filter_map(|p| p.policy_arn()).collect();
    assert_eq!(direct.len(), 6, "{direct:?}"); // 5 AWS managed policies and the stack's SLIMWorkflowPassRoles
    assert!(via_group.iter().all(|a| !direct.contains(a)));
    assert!(stdout(&out).contains("comes through group ops"), "{}", stdout(&out));
}

#[tokio::test]
async fn a_pre_existing_role_is_not_modified_without_consent() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let iam = emu.admin().await;
    let foreign_trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role().role_name("AWSBatchServiceRole").assume_role_policy_document(foreign_trust).send().await.unwrap();

    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "held-back changes mean the account still differs:\n{}", stderr(&out));
    assert!(stdout(&out).contains("[exists, not created by wfboot]"), "{}", stdout(&out));
    assert!(stderr(&out).contains("--adopt"), "{}", stderr(&out));
    let role = iam.get_role().role_name("AWSBatchServiceRole").send().await.unwrap();
    let trust = percent_decode(role.role().unwrap().assume_role_policy_document().unwrap());
    assert!(trust.contains("ecs-tasks.amazonaws.com"), "the foreign role's trust was changed: {trust}");
    let attached = iam.list_attached_role_policies().role_name("AWSBatchServiceRole").send().await.unwrap();
    assert!(attached.attached_policies().is_empty(), "a policy was attached to the foreign role without consent");
    // Everything else was created.
    assert!(iam.get_role().role_name("StepFunctionsLambdaRole").send().await.is_ok());

    let out = emu.wfboot().args(["bootstrap", "--yes", "--adopt", "--user-name", "demo"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let role = iam.get_role().role_name("AWSBatchServiceRole").send().await.unwrap();
    let trust = percent_decode(role.role().unwrap().assume_role_policy_document().unwrap());
    assert!(trust.contains("batch.amazonaws.com"), "{trust}");
    assert!(role.role().unwrap().tags().is_empty(), "adopting must not claim ownership with the tag");
}

#[tokio::test]
async fn without_a_terminal_and_without_yes_bootstrap_refuses_and_writes_nothing() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let mark = emu.mark();
    let out = emu.wfboot().args(["bootstrap", "--user-name", "demo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(emu.wfboot_write_attempts_since(mark).is_empty());
}

#[tokio::test]
async fn bad_stack_files_are_rejected_before_any_aws_call() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"{{principal:ec2}}"},"Action":"sts:AssumeRole"}]}"#;
    write_file(dir.path(), "service_roles/ok.json", trust);
    write_file(dir.path(), "service_roles/typo.json", &trust.replace("{{principal:ec2}}", "{{acount_id}}"));
    let cases = [
        (
            "unknown-placeholder.toml",
            "name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"typo.json\"\n",
            "unknown placeholder",
        ),
        ("malformed.toml", "name = \"s\"\n[[role]\nname = \"R\"\n", "invalid stack file"),
        (
            "dangling.toml",
            "name = \"s\"\n[[instance_profile]]\nname = \"P\"\nrole = \"Missing\"\n",
            "role `Missing` is not defined",
        ),
    ];
    for (file, text, expected) in cases {
        let path = write_file(dir.path(), &format!("profiles/{file}"), text);
        for command in ["plan", "bootstrap"] {
            let out = emu
                .wfboot()
                .arg(command)
                .arg("--stack")
                .arg(&path)
                .args(if command == "bootstrap" { vec!["--yes"] } else { vec![] })
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(65), "{file} {command}: {}", stderr(&out));
            assert!(stderr(&out).contains(expected), "{file}: {}", stderr(&out));
            assert!(stderr(&out).contains(file), "{file}: the error does not name the file: {}", stderr(&out));
        }
    }
    assert!(emu.requests().is_empty(), "bad input reached the account: {:?}", emu.requests());
}

#[tokio::test]
async fn a_managed_policy_that_does_not_exist_stops_the_run_before_any_write() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "profiles/typo.toml",
        "name = \"typo\"\n[[role]]\nname = \"R\"\ntrust = \"ec2-trust-policy.json\"\nmanaged_policies = [\"AmazonS3FullAccess\", \"AmazonS3FulAccess\"]\n",
    );
    let out = emu.wfboot().args(["bootstrap", "--yes", "--stack"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("arn:aws:iam::aws:policy/AmazonS3FulAccess"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("policy/AmazonS3FullAccess\n"), "only the missing one is listed: {}", stderr(&out));
    assert!(emu.wfboot_write_attempts_since(0).is_empty());
}

#[tokio::test]
async fn an_operator_user_that_does_not_exist_is_an_error_before_any_write() {
    let emu = Emulator::start();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "nobody"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("IAM user `nobody` does not exist"), "{}", stderr(&out));
    assert!(emu.wfboot_write_attempts_since(0).is_empty());
}

#[tokio::test]
async fn two_bootstraps_at_the_same_time_both_end_with_the_account_correct() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let run = || {
        let mut cmd = emu.wfboot();
        cmd.args(["bootstrap", "--yes", "--user-name", "demo"]);
        move || cmd.output().unwrap()
    };
    let (first, second) = std::thread::scope(|s| {
        let (a, b) = (s.spawn(run()), s.spawn(run()));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    let state = dump_state(&emu.admin().await).await;
    let expected: Value = serde_json::from_str(include_str!("../fixtures/slim-workflow.state.json")).unwrap();
    assert_eq!(state, expected);
}

#[tokio::test]
async fn the_render_worker_stack_bootstraps_and_is_then_unchanged() {
    let emu = Emulator::start();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--stack", "render-worker"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let iam = emu.admin().await;
    let profile = iam.get_instance_profile().instance_profile_name("RenderJobWorkerProfile").send().await.unwrap();
    assert_eq!(profile.instance_profile().unwrap().roles()[0].role_name(), "RenderJobWorkerRole");
    let attached = iam.list_attached_role_policies().role_name("RenderJobWorkerRole").send().await.unwrap();
    assert_eq!(
        attached.attached_policies()[0].policy_arn(),
        Some(format!("arn:aws:iam::{ACCOUNT}:policy/RenderJobWorkerPolicy").as_str())
    );
    let out = emu.wfboot().args(["plan", "--stack", "render-worker", "--detailed-exitcode"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[tokio::test]
async fn on_a_fresh_account_the_checks_before_the_first_write_go_out_with_the_reads_that_need_the_account_id() {
    // 600 ms on every request: requests sent together arrive within a few ms, one sent after another's
    // answer arrives at least 600 ms after it. (At 100 ms, moto's own time on a busy machine, 30-160 ms a
    // request while other tests ran, and the client's CPU time between rounds ate the whole margin; at 300 ms
    // a machine at load 10-12 on 2 cores still did, by 23 and 168 ms.)
    let emu = Emulator::start_with(&["--latency-ms", "600"]);
    emu.create_demo_user().await;
    let mark = emu.mark();
    bootstrap_ok(&emu);
    let requests = emu.wfboot_requests_since(mark);
    let first = |action: &str| {
        requests
            .iter()
            .filter(|r| r.action == action)
            .min_by(|a, b| a.t.total_cmp(&b.t))
            .unwrap_or_else(|| panic!("no {action}"))
    };
    let sts = first("GetCallerIdentity");
    let user_groups = first("ListGroupsForUser"); // the operator user's: it needs nothing but the account id
    let simulation = first("SimulatePrincipalPolicy");
    let first_write = requests.iter().filter(|r| r.write).map(|r| r.t).fold(f64::MAX, f64::min);
    // The roles are read by name alongside sts:GetCallerIdentity, and they are all missing: the run will write,
    // so the existence checks and the permission check start with the user's reads, not after them.
    assert!(user_groups.t >= sts.answered(), "the user's reads need the account id");
    assert!(
        simulation.t < user_groups.answered(),
        "the permission check waited for the observation: sent {:.0} ms after the user's reads were answered",
        (simulation.t - user_groups.answered()) * 1000.0
    );
    let managed_checks = requests.iter().filter(|r| r.action == "GetPolicy" && r.t < user_groups.answered()).count();
    assert_eq!(managed_checks, 16, "the 14 managed-policy checks and the stack's 2 own policies, in one round trip");
    assert!(first_write >= simulation.answered());
}

#[tokio::test]
async fn a_stack_whose_allowed_accounts_leave_out_the_callers_refuses_bootstrap_before_any_write() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let stack = std::fs::read_to_string(repo().join("profiles/slim-workflow.toml")).unwrap();
    let stack = stack.replacen("\n[user]", "\nallowed_accounts = [\"111111111111\", \"222222222222\"]\n\n[user]", 1);
    let path = write_file(dir.path(), "profiles/slim-workflow.toml", &stack);
    let mark = emu.mark();
    let out = emu.wfboot().arg("bootstrap").arg("--stack").arg(&path).args(["--yes", "--skip-user"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains(&format!(
            "the caller's account {ACCOUNT} is not allowed by the stack's allowed_accounts (111111111111, 222222222222)"
        )),
        "{err}"
    );
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());

    // Both set: each must allow the account.
    let allowed = stack.replace("\"222222222222\"", &format!("\"{ACCOUNT}\""));
    let path = write_file(dir.path(), "profiles/slim-workflow.toml", &allowed);
    let out = emu
        .wfboot()
        .arg("plan")
        .arg("--stack")
        .arg(&path)
        .args(["--skip-user", "--expect-account", "111111111111"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("is not allowed by --expect-account (111111111111)"), "{err}");
    assert!(!err.contains("allowed_accounts"), "the stack allows it: {err}");
    let out = emu.wfboot().arg("plan").arg("--stack").arg(&path).arg("--skip-user").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());
}
