//! The trust check's verdicts on the stacks' own documents, plain and hardened, and on the cases `verify` must catch.

use serde_json::json;

use super::*;
use crate::stack::{Stack, Target};

fn desired(harden: bool) -> Desired {
    let stack = Stack::resolve(None).unwrap();
    let target = Target { partition: "aws".into(), account_id: "123456789012".into(), region: "eu-west-1".into() };
    let mut d = stack.render(&target).unwrap();
    if harden {
        crate::stack::harden::harden(&mut d).unwrap();
    }
    d
}

fn rows_of(d: &Desired) -> Vec<Row> {
    let found: Vec<Option<Found>> = d
        .roles
        .iter()
        .map(|r| Some(Found { arn: format!("arn:aws:iam::123456789012:role/{}", r.name), trust: r.trust.clone() }))
        .collect();
    trust_rows(d, &found)
}

#[test]
fn the_default_stack_s_trust_documents_admit_their_services_plain_and_hardened() {
    for harden in [false, true] {
        let rows = rows_of(&desired(harden));
        assert_eq!(rows.len(), 5, "{rows:#?}");
        for r in &rows {
            assert_eq!(r.status, Status::Ok, "harden {harden}: {r:#?}");
        }
    }
}

#[test]
fn a_lambda_role_trusting_ec2_fails_naming_the_role_and_the_service() {
    let d = desired(false);
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let row = trust_row(&d, "SLIM-Extras_for_Lambda", &trust, "lambda.amazonaws.com");
    assert_eq!(row.status, Status::Failed);
    assert_eq!(row.role, "SLIM-Extras_for_Lambda");
    assert!(row.detail.contains("lambda.amazonaws.com may not assume it"), "{}", row.detail);
    assert!(row.detail.contains("Service:ec2.amazonaws.com"), "{}", row.detail);
}

#[test]
fn a_hardened_trust_with_a_wrong_source_arn_fails_and_one_on_keys_ec2_does_not_send_fails_too() {
    let d = desired(false);
    let wrong = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:batch:*:111122223333:*"}}}]});
    let row = trust_row(&d, "AWSBatchServiceRole", &wrong, "batch.amazonaws.com");
    assert_eq!(row.status, Status::Failed, "{row:#?}");
    let ec2 = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}]});
    let row = trust_row(&d, "SLIM-Extras_ECS_for_EC2", &ec2, "ec2.amazonaws.com");
    assert_eq!(row.status, Status::Failed, "{row:#?}");
    assert!(row.detail.contains("aws:SourceAccount, which ec2.amazonaws.com does not send"), "{}", row.detail);
    // Lambda: AWS documents neither way, so a condition on the keys is unverified, not failed.
    let lambda = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}]});
    let row = trust_row(&d, "SLIM-Extras_for_Lambda", &lambda, "lambda.amazonaws.com");
    assert_eq!(row.status, Status::Unverified, "{row:#?}");
}

#[test]
fn probe_names_are_fixed_per_stack_and_role_and_fit_every_service_s_name_rules() {
    assert_eq!(
        probe_name("slim-workflow", "SLIM-Extras_for_Lambda"),
        "wfboot-verify-slim-workflow-SLIM-Extras-for-Lambda"
    );
    let long = probe_name(&"s".repeat(64), &"r".repeat(64));
    assert_eq!(long.len(), 64);
    assert!(long.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
}
