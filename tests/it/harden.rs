//! `--harden` against the emulator: the confused-deputy conditions reach the account's trust documents, only for
//! the services documented to send the keys, through the ordinary trust-drift repair (one UpdateAssumeRolePolicy
//! per role, nothing else), and never on a role wfboot did not create without consent.

use crate::common::*;
use serde_json::{json, Value};

async fn trust(iam: &aws_sdk_iam::Client, role: &str) -> Value {
    let out = iam.get_role().role_name(role).send().await.unwrap();
    serde_json::from_str(&percent_decode(out.role().unwrap().assume_role_policy_document().unwrap())).unwrap()
}

/// The condition `--harden` gives a role trusting `arn`'s service, in the emulator's account.
fn conditions(arn: &str) -> Value {
    json!({"StringEquals": {"aws:SourceAccount": ACCOUNT}, "ArnLike": {"aws:SourceArn": arn}})
}

async fn assert_hardened(iam: &aws_sdk_iam::Client) {
    for (role, arn) in [
        ("AWSBatchServiceRole", format!("arn:aws:batch:*:{ACCOUNT}:*")),
        ("StepFunctionsLambdaRole", format!("arn:aws:states:*:{ACCOUNT}:stateMachine:*")),
        ("AmazonEC2SpotFleetRole", format!("arn:aws:ec2:*:{ACCOUNT}:spot-fleet-request/sfr-*")),
    ] {
        let t = trust(iam, role).await;
        assert_eq!(t["Statement"][0]["Condition"], conditions(&arn), "{role}: {t}");
    }
    // EC2 (instance profile) and Lambda do not document the keys: a condition would lock the service out.
    for role in ["SLIM-Extras_ECS_for_EC2", "SLIM-Extras_for_Lambda"] {
        let t = trust(iam, role).await;
        assert!(t["Statement"][0].get("Condition").is_none(), "{role}: {t}");
    }
}

#[tokio::test]
async fn bootstrap_harden_on_a_fresh_account_writes_conditioned_trust_documents_and_then_has_nothing_to_do() {
    let emu = Emulator::start();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--skip-user", "--harden"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("left unconditioned: EC2 does not send"), "{}", stdout(&out));
    let iam = emu.admin().await;
    assert_hardened(&iam).await;
    // Service-linked roles keep AWS's trust.
    let slr = iam.list_roles().path_prefix("/aws-service-role/").send().await.unwrap();
    assert_eq!(slr.roles().len(), 3);
    for r in slr.roles() {
        let t: Value = serde_json::from_str(&percent_decode(r.assume_role_policy_document().unwrap())).unwrap();
        assert!(!t.to_string().contains("aws:Source"), "{}: {t}", r.role_name());
    }

    let mark = emu.mark();
    let out = emu.wfboot().args(["plan", "--skip-user", "--harden", "--detailed-exitcode"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "hardened and applied, so nothing to do: {}", stdout(&out));
    assert!(emu.wfboot_write_attempts_since(mark).is_empty());
}

#[tokio::test]
async fn hardening_a_bootstrapped_account_updates_only_the_trust_documents() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).assert().success();

    let out = emu.wfboot().args(["plan", "--user-name", "demo", "--harden"]).output().unwrap();
    let plan = stdout(&out);
    assert!(
        plan.contains(
            "update trust document (Service:batch.amazonaws.com): conditions none -> aws:SourceAccount, aws:SourceArn"
        ),
        "{plan}"
    );
    assert!(plan.contains("0 to create, 3 to update, 9 unchanged; 3 write calls."), "{plan}");
    assert!(plan.contains("SLIM-Extras_for_Lambda") && plan.contains("left unconditioned"), "{plan}");

    let mark = emu.mark();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo", "--harden"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        emu.wfboot_writes_since(mark),
        ["UpdateAssumeRolePolicy", "UpdateAssumeRolePolicy", "UpdateAssumeRolePolicy"],
        "hardening changes trust documents and nothing else"
    );
    assert_hardened(&emu.admin().await).await;

    // The conditions are part of the desired state: a run without --harden plans them away, and says so.
    let out = emu.wfboot().args(["plan", "--user-name", "demo"]).output().unwrap();
    assert!(
        stdout(&out).contains("conditions aws:SourceAccount, aws:SourceArn -> none"),
        "a plan without --harden shows that it would remove the conditions: {}",
        stdout(&out)
    );
}

#[tokio::test]
async fn a_role_wfboot_did_not_create_is_hardened_only_with_consent() {
    let emu = Emulator::start();
    let iam = emu.admin().await;
    let plain = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role()
        .role_name("AWSBatchServiceRole")
        .description("Allows Batch to create and manage AWS resources on your behalf.")
        .assume_role_policy_document(plain)
        .send()
        .await
        .unwrap();
    iam.attach_role_policy()
        .role_name("AWSBatchServiceRole")
        .policy_arn("arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole")
        .send()
        .await
        .unwrap();

    let out = emu.wfboot().args(["bootstrap", "--yes", "--skip-user", "--harden"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "held back without consent: {}", stderr(&out));
    assert!(trust(&iam, "AWSBatchServiceRole").await["Statement"][0].get("Condition").is_none());

    let mark = emu.mark();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--skip-user", "--harden", "--adopt"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(emu.wfboot_writes_since(mark), ["UpdateAssumeRolePolicy"]);
    assert_hardened(&iam).await;
}
