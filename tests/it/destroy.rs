//! `wfboot destroy` against a real moto server: it deletes exactly what wfboot created for the stack, leaves
//! the rest (and says why), cleans what IAM requires before a deletion, and is idempotent. State is checked
//! through a separate admin client; writes are counted from the emulator's own request log.

use crate::common::*;
use serde_json::{json, Value};

const LAMBDA_POLICY: &str = "LambdaBatchExecutionPolicy";

fn policy_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT}:policy/{LAMBDA_POLICY}")
}

fn bootstrap(emu: &Emulator) -> std::process::Output {
    emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap()
}

/// `destroy ARGS --yes --output json`, which must succeed; its report and the writes it made.
fn destroy_json(emu: &Emulator, extra: &[&str]) -> (Value, Vec<String>) {
    let mark = emu.mark();
    let out = emu.wfboot().args(["destroy", "--yes", "--output", "json"]).args(extra).output().unwrap();
    assert!(out.status.success(), "destroy failed:\n{}\n{}", stdout(&out), stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("stdout is one JSON document");
    (report, emu.wfboot_writes_since(mark))
}

pub(crate) fn names(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => format!("{} {}", other["kind"].as_str().unwrap(), other["name"].as_str().unwrap()),
        })
        .collect()
}

fn without_service_linked_roles(mut state: Value) -> Value {
    state["roles"].as_object_mut().unwrap().retain(|k, _| !k.starts_with("/aws-service-role/"));
    state
}

#[tokio::test]
async fn destroy_after_bootstrap_removes_everything_wfboot_created_and_nothing_else() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let iam = emu.admin().await;
    let fresh = dump_state(&iam).await;
    let out = bootstrap(&emu);
    assert!(out.status.success(), "{}", stderr(&out));
    let user_policies = dump_state(&iam).await["user_demo"].clone();
    // The 7 AWS managed policies and the stack's own SLIMWorkflowPassRoles.
    assert_eq!(user_policies.as_array().unwrap().len(), 8);

    // Default: the service-linked roles and the operator user's (AWS managed) policies are left alone; the stack's
    // own policy for the operator is detached from the user and deleted like the stack's other policy.
    let (report, writes) = destroy_json(&emu, &[]);
    assert_eq!(writes.len() as u64, report["plan"]["summary"]["changes"].as_u64().unwrap(), "{writes:?}");
    assert_eq!(writes.len(), 22, "{writes:?}");
    assert_eq!(writes.iter().filter(|w| *w == "DeleteRole").count(), 5, "{writes:?}");
    assert_eq!(writes.iter().filter(|w| *w == "DetachUserPolicy").count(), 1, "{writes:?}");
    assert_eq!(writes.iter().filter(|w| *w == "DeletePolicy").count(), 2, "{writes:?}");
    assert_eq!(report["verified"], json!(true));
    let deleted = names(&report, "deleted");
    assert_eq!(deleted.len(), 8, "{deleted:?}");
    assert!(deleted.contains(&format!("policy {LAMBDA_POLICY}")), "{deleted:?}");
    assert!(deleted.contains(&"policy SLIMWorkflowPassRoles".to_string()), "{deleted:?}");
    assert!(deleted.contains(&"instance profile SLIM-Extras_ECS_for_EC2".to_string()), "{deleted:?}");
    let operator = report["plan"]["resources"].as_array().unwrap().iter().find(|r| r["kind"] == "user_policies");
    let reason = operator.unwrap()["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the stack's 7 managed policies on the operator's IAM user are not detached"),
        "{reason}"
    );
    let left = names(&report, "left_alone");
    assert_eq!(
        left,
        [
            "user_policies (operator)",
            "service_linked_role spot.amazonaws.com",
            "service_linked_role spotfleet.amazonaws.com",
            "service_linked_role batch.amazonaws.com"
        ]
    );
    let state = dump_state(&iam).await;
    let mut expected = fresh.clone();
    expected["user_demo"] = json!(user_policies
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p.as_str().unwrap().ends_with(":policy/SLIMWorkflowPassRoles"))
        .collect::<Vec<_>>());
    assert_eq!(without_service_linked_roles(state.clone()), expected);
    assert_eq!(state["roles"].as_object().unwrap().len(), 3, "the service-linked roles stay: {state}");

    // Asked explicitly, the service-linked roles go too (moto's deletion task succeeds at once).
    let (report, writes) = destroy_json(&emu, &["--include-service-linked-roles"]);
    assert_eq!(writes, ["DeleteServiceLinkedRole", "DeleteServiceLinkedRole", "DeleteServiceLinkedRole"]);
    assert_eq!(report["summary"]["deleted"], json!(3));
    assert_eq!(dump_state(&iam).await, expected);

    // A second destroy finds nothing and writes nothing.
    let mark = emu.mark();
    let out = emu.wfboot().args(["destroy", "--yes", "--include-service-linked-roles"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Nothing to destroy"), "{}", stdout(&out));
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());
    assert_eq!(dump_state(&iam).await, expected);
}

#[tokio::test]
async fn destroy_of_a_stack_that_was_never_bootstrapped_has_nothing_to_do_and_needs_no_confirmation() {
    let emu = Emulator::start();
    let out = emu.wfboot().args(["destroy", "--stack", "render-worker"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Nothing to destroy"), "{}", stdout(&out));
    assert!(stdout(&out).contains(". role RenderJobWorkerRole"), "{}", stdout(&out));
    assert!(emu.wfboot_requests_since(0).iter().all(|r| !r.write));
}

#[tokio::test]
async fn roles_wfboot_did_not_create_for_this_stack_are_listed_and_left_alone() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let iam = emu.admin().await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    // Someone's own role with a stack role's name (no tag), and one wfboot made for another stack.
    iam.create_role().role_name("AWSBatchServiceRole").assume_role_policy_document(trust).send().await.unwrap();
    let other = aws_sdk_iam::types::Tag::builder().key("wfboot:stack").value("other-stack").build().unwrap();
    iam.create_role()
        .role_name("StepFunctionsLambdaRole")
        .assume_role_policy_document(trust)
        .tags(other)
        .send()
        .await
        .unwrap();
    bootstrap(&emu); // exit 2: the changes to those two are held back without --adopt

    let mark = emu.mark();
    let out = emu.wfboot().args(["destroy", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("= role AWSBatchServiceRole"), "{text}");
    assert!(text.contains("exists, not created by wfboot (no wfboot:stack=slim-workflow tag)"), "{text}");
    assert!(text.contains("created by wfboot for stack other-stack, not slim-workflow"), "{text}");
    let writes = emu.wfboot_writes_since(mark);
    assert!(writes.contains(&"DeleteRole".to_string()), "{writes:?}");
    for name in ["AWSBatchServiceRole", "StepFunctionsLambdaRole"] {
        assert!(iam.get_role().role_name(name).send().await.is_ok(), "{name} was deleted");
    }
    for name in ["SLIM-Extras_ECS_for_EC2", "SLIM-Extras_for_Lambda", "AmazonEC2SpotFleetRole"] {
        assert!(iam.get_role().role_name(name).send().await.is_err(), "{name} is still there");
    }
}

#[tokio::test]
async fn what_others_attached_and_extra_policy_versions_are_cleaned_so_that_the_stack_is_fully_deleted() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let out = bootstrap(&emu);
    assert!(out.status.success(), "{}", stderr(&out));
    let iam = emu.admin().await;
    let arn = policy_arn();
    // An extra managed policy and an inline policy on a stack role; two more versions of the stack's policy;
    // the stack's policy attached to a role, a group and the user that are not the stack's.
    iam.attach_role_policy()
        .role_name("SLIM-Extras_for_Lambda")
        .policy_arn("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
        .send()
        .await
        .unwrap();
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"batch:ListJobs","Resource":"*"}]}"#;
    iam.put_role_policy()
        .role_name("SLIM-Extras_for_Lambda")
        .policy_name("extra")
        .policy_document(doc)
        .send()
        .await
        .unwrap();
    iam.create_policy_version().policy_arn(&arn).policy_document(doc).send().await.unwrap();
    iam.create_policy_version().policy_arn(&arn).policy_document(doc).set_as_default(true).send().await.unwrap();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role().role_name("Outsider").assume_role_policy_document(trust).send().await.unwrap();
    iam.attach_role_policy().role_name("Outsider").policy_arn(&arn).send().await.unwrap();
    iam.create_group().group_name("ops").send().await.unwrap();
    iam.attach_group_policy().group_name("ops").policy_arn(&arn).send().await.unwrap();
    iam.attach_user_policy().user_name("demo").policy_arn(&arn).send().await.unwrap();

    // The stack's policy on a role, a group and a user outside the stack: held back, naming each, unless --force.
    let out = emu.wfboot().args(["destroy", "--dry-run"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        &format!("! policy {LAMBDA_POLICY}"),
        "attached outside the stack: detaching it would take these permissions away from them",
        "used by role Outsider\n",
        "used by group ops\n",
        "used by user demo\n",
        "detach arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess from role SLIM-Extras_for_Lambda",
        "delete inline policy extra",
    ] {
        assert!(text.contains(line), "missing `{line}`:\n{text}");
    }
    let out = emu.wfboot().args(["destroy", "--yes", "--output", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(names(&report, "held_back"), [format!("policy {LAMBDA_POLICY}")]);
    assert!(stderr(&out).contains(&format!("policy {LAMBDA_POLICY}: used by role Outsider")), "{}", stderr(&out));
    let state = dump_state(&iam).await;
    assert_eq!(
        state["roles"]["/Outsider"]["attached"],
        json!([format!("policy/{LAMBDA_POLICY}")]),
        "Outsider keeps its permissions"
    );
    assert!(iam.get_role().role_name("SLIM-Extras_for_Lambda").send().await.is_err(), "the rest is deleted");

    let out = emu.wfboot().args(["destroy", "--dry-run", "--force"]).output().unwrap();
    let text = stdout(&out);
    for line in [
        "delete non-default version v1",
        "delete non-default version v2",
        &format!("detach {arn} from role Outsider"),
        &format!("detach {arn} from group ops"),
        &format!("detach {arn} from user demo"),
        "note: role Outsider is not deleted by this destroy",
    ] {
        assert!(text.contains(line), "missing `{line}`:\n{text}");
    }

    let (report, writes) = destroy_json(&emu, &["--force"]);
    assert_eq!(writes.len() as u64, report["plan"]["summary"]["changes"].as_u64().unwrap(), "{writes:?}");
    assert_eq!(writes.iter().filter(|w| *w == "DeletePolicyVersion").count(), 2, "{writes:?}");
    assert_eq!(report["verified"], json!(true));
    let state = dump_state(&iam).await;
    assert_eq!(state["customer_policies"], json!([]));
    let roles: Vec<String> =
        without_service_linked_roles(state.clone())["roles"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(roles, ["/Outsider"], "{state}");
    assert_eq!(state["roles"]["/Outsider"]["attached"], json!([]));
    assert!(iam.get_group().group_name("ops").send().await.is_ok(), "the group stays");
}

#[tokio::test]
async fn without_a_terminal_and_without_yes_destroy_refuses_and_writes_nothing_and_dry_run_only_shows() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    assert!(bootstrap(&emu).status.success());
    let before = dump_state(&emu.admin().await).await;
    let mark = emu.mark();

    let out = emu.wfboot().args(["destroy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(stdout(&out).contains("- role AWSBatchServiceRole"), "the plan is shown first: {}", stdout(&out));

    let out = emu.wfboot().args(["destroy", "--dry-run", "--output", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["dry_run"], json!(true));
    assert_eq!(report["plan"]["summary"]["changes"], json!(22));
    assert_eq!(report["applied"], json!([]));

    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());
    assert_eq!(dump_state(&emu.admin().await).await, before);
}

#[tokio::test]
async fn at_a_terminal_the_plan_is_shown_before_the_question_and_no_leaves_everything_in_place() {
    use rexpect::session::spawn_command;
    let emu = Emulator::start();
    emu.create_demo_user().await;
    assert!(bootstrap(&emu).status.success());
    let mark = emu.mark();
    let mut cmd = emu.wfboot_std();
    cmd.arg("destroy");
    let mut p = spawn_command(cmd, Some(60_000)).expect("spawn in a pty");
    p.exp_string("- role AWSBatchServiceRole").unwrap();
    p.exp_string("Delete 8 resources (22 write calls) from account 123456789012?").unwrap();
    p.send("n").unwrap();
    p.flush().unwrap();
    p.exp_string("Nothing was changed").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());

    let mut cmd = emu.wfboot_std();
    cmd.arg("destroy");
    let mut p = spawn_command(cmd, Some(60_000)).expect("spawn in a pty");
    p.exp_string("Delete 8 resources").unwrap();
    p.send("y").unwrap();
    p.flush().unwrap();
    p.exp_string("8 deleted, 4 left alone, 0 absent; 22 writes done").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(emu.wfboot_writes_since(mark).len(), 22);
}

#[tokio::test]
async fn under_iam_enforcement_a_caller_who_may_not_delete_is_stopped_before_any_write_and_an_admin_is_not() {
    let emu = Emulator::start();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--stack", "render-worker"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let iam = emu.admin().await;
    let mut keys = Vec::new();
    // The reader may also look up who uses the roles (destroy's reads), so that its run reaches the pre-flight.
    // moto names Batch's actions after its URL paths in lower case (`batch:describecomputeenvironments`), which the
    // real names do not match: `batch:*` here.
    let reads = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["batch:*","lambda:ListFunctions","states:ListStateMachines","states:DescribeStateMachine","ec2:DescribeIamInstanceProfileAssociations"],"Resource":"*"}]}"#;
    let reads = iam.create_policy().policy_name("ConsumerReads").policy_document(reads).send().await.unwrap();
    let reads = reads.policy.unwrap().arn.unwrap();
    for (user, policies) in [
        ("reader", vec!["arn:aws:iam::aws:policy/IAMReadOnlyAccess".to_string(), reads]),
        ("admin", vec!["arn:aws:iam::aws:policy/AdministratorAccess".to_string()]),
    ] {
        iam.create_user().user_name(user).send().await.unwrap();
        for arn in policies {
            iam.attach_user_policy().user_name(user).policy_arn(arn).send().await.unwrap();
        }
        let key = iam.create_access_key().user_name(user).send().await.unwrap().access_key.unwrap();
        keys.push((key.access_key_id, key.secret_access_key));
    }
    emu.reset_auth("0");
    let as_user = |(id, secret): &(String, String)| {
        let mut cmd = emu.wfboot();
        cmd.env("AWS_ACCESS_KEY_ID", id).env("AWS_SECRET_ACCESS_KEY", secret);
        cmd.args(["destroy", "--yes", "--stack", "render-worker"]);
        cmd
    };
    let writes = |emu: &Emulator, mark: usize| -> Vec<String> {
        let mut w: Vec<String> = emu
            .requests()
            .into_iter()
            .skip(mark)
            .filter(|r| r.write && r.status.is_some_and(|s| (200..300).contains(&s)))
            .map(|r| r.action)
            .collect();
        w.sort();
        w
    };

    let mark = emu.mark();
    let out = as_user(&keys[0]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("user/reader may not make every change of this destroy"), "{err}");
    assert!(err.contains("iam:DeleteRole on arn:aws:iam::123456789012:role/RenderJobWorkerRole"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(writes(&emu, mark), Vec::<String>::new());

    let mark = emu.mark();
    let out = as_user(&keys[1]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        writes(&emu, mark),
        ["DeleteInstanceProfile", "DeletePolicy", "DeleteRole", "DetachRolePolicy", "RemoveRoleFromInstanceProfile"]
    );
}

#[tokio::test]
async fn destroy_in_another_account_than_expected_refuses_before_any_write_naming_both() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    assert!(bootstrap(&emu).status.success());
    let mark = emu.mark();
    let out = emu.wfboot().args(["destroy", "--yes", "--expect-account", "111111111111"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains(&format!("account {ACCOUNT} is not allowed by --expect-account (111111111111)")), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());
    // Refused right after the caller was identified: the stack's policies (read once the account is known) never were.
    let actions: Vec<String> = emu.wfboot_requests_since(mark).into_iter().map(|r| r.action).collect();
    assert!(
        actions.contains(&"GetCallerIdentity".to_string()) && !actions.contains(&"GetPolicy".to_string()),
        "{actions:?}"
    );

    // Among the expected ones, it runs.
    let out = emu
        .wfboot()
        .args(["destroy", "--dry-run", "--expect-account", "111111111111", "--expect-account", ACCOUNT])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
