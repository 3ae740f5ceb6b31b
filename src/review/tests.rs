use serde_json::json;

use super::*;
use crate::stack::{Stack, Target};

fn target() -> Target {
    Target { partition: "aws".into(), account_id: "111122223333".into(), region: "eu-west-1".into() }
}

fn built_in(name: &str) -> Desired {
    Stack::resolve(Some(name)).unwrap().render(&target()).unwrap()
}

/// A stack of one role trusting Batch and EC2, with a customer policy of `statements`, plus `extra` TOML.
fn stack_with(statements: Value, extra: &str) -> Desired {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wfboot-review-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = json!({"Version": "2012-10-17", "Statement": statements});
    std::fs::write(dir.join("doc.json"), doc.to_string()).unwrap();
    std::fs::write(
        dir.join("trust.json"),
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": ["{{principal:batch}}", "{{principal:ec2}}"]}, "Action": "sts:AssumeRole"}]}"#,
    )
    .unwrap();
    let toml = format!(
        "name = \"t\"\ntemplates = \".\"\n[[policy]]\nname = \"P\"\npath = \"/team/\"\ndocument = \"doc.json\"\n\
         [[role]]\nname = \"R\"\npath = \"/svc/\"\ntrust = \"trust.json\"\ncustomer_policies = [\"P\"]\n\
         [[instance_profile]]\nname = \"IP\"\nrole = \"R\"\n{extra}"
    );
    std::fs::write(dir.join("t.toml"), toml).unwrap();
    let stack = Stack::load_file(&dir.join("t.toml")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    stack.render(&target()).unwrap()
}

fn summary(findings: &[Finding]) -> Vec<(Severity, &'static str, String, String)> {
    findings
        .iter()
        .map(|f| (f.severity, f.rule, format!("{} {}", f.resource_kind, f.resource), f.grant.label()))
        .collect()
}

fn s(sev: Severity, rule: &'static str, resource: &str, grant: &str) -> (Severity, &'static str, String, String) {
    (sev, rule, resource.to_string(), grant.to_string())
}

#[test]
fn the_default_stack_has_exactly_these_broad_grants() {
    use Severity::*;
    let findings = review(&built_in("slim-workflow"), Some("demo"));
    let m = |name: &str| format!("arn:aws:iam::aws:policy/{name}");
    assert_eq!(
        summary(&findings),
        vec![
            s(High, "s3-full-access-on-service-role", "role SLIM-Extras_ECS_for_EC2", &m("AmazonS3FullAccess")),
            s(High, "s3-full-access-on-service-role", "role SLIM-Extras_for_Lambda", &m("AmazonS3FullAccess")),
            s(Medium, "full-access-managed-policy", "role SLIM-Extras_ECS_for_EC2", &m("AmazonSQSFullAccess")),
            s(Medium, "full-access-managed-policy", "role SLIM-Extras_for_Lambda", &m("AmazonSQSFullAccess")),
            s(Medium, "full-access-managed-policy", "role SLIM-Extras_for_Lambda", &m("AWSLambda_FullAccess")),
            s(Low, "full-access-managed-policy", "user demo", &m("AmazonEC2FullAccess")),
            s(Low, "full-access-managed-policy", "user demo", &m("AWSBatchFullAccess")),
            s(Low, "full-access-managed-policy", "user demo", &m("AmazonEC2ContainerRegistryFullAccess")),
            s(Low, "full-access-managed-policy", "user demo", &m("AWSLambda_FullAccess")),
            s(Low, "full-access-managed-policy", "user demo", &m("AmazonSQSFullAccess")),
            s(Low, "full-access-managed-policy", "user demo", &m("AWSStepFunctionsFullAccess")),
        ]
    );
    let s3 = &findings[0];
    assert_eq!(s3.narrower_managed_policies, [m("AmazonS3ReadOnlyAccess")]);
    assert_eq!(s3.placeholders, ["<your-bucket>"]);
    assert_eq!(
        s3.suggested_policy.as_ref().unwrap(),
        &json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "ListTheWorkflowBuckets", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
             "Resource": ["arn:aws:s3:::<your-bucket>"]},
            {"Sid": "ReadAndWriteTheirObjects", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
             "Resource": ["arn:aws:s3:::<your-bucket>/*"]}]})
    );
    let sqs = &findings[2];
    assert_eq!(
        sqs.suggested_policy.as_ref().unwrap()["Statement"][0]["Resource"],
        json!(["arn:aws:sqs:eu-west-1:111122223333:<your-queue>"])
    );
    let lambda = &findings[4];
    assert_eq!(
        lambda.suggested_policy.as_ref().unwrap()["Statement"][0]["Resource"],
        json!(["arn:aws:lambda:eu-west-1:111122223333:function:<your-function>"])
    );
    // AWS has no read-only Batch policy: said so, nothing invented.
    let batch = &findings[6];
    assert!(batch.narrower_managed_policies.is_empty() && batch.suggested_policy.is_none());
    assert!(text(&findings)
        .starts_with("Review: 11 broad grants in the stack (advice only: the exit code does not change)\n"));
}

#[test]
fn the_render_worker_stack_is_flagged_for_its_all_buckets_statements_with_the_same_actions_scoped() {
    let findings = review(&built_in("render-worker"), None);
    assert_eq!(
        summary(&findings),
        vec![
            s(
                Severity::Medium,
                "all-buckets-s3-statement",
                "role RenderJobWorkerRole",
                "policy RenderJobWorkerPolicy, statement S3ListBucket"
            ),
            s(
                Severity::Medium,
                "all-buckets-s3-statement",
                "role RenderJobWorkerRole",
                "policy RenderJobWorkerPolicy, statement S3AllObjectActions"
            ),
        ]
    );
    assert_eq!(
        findings[0].suggested_policy.as_ref().unwrap(),
        &json!({"Version": "2012-10-17", "Statement": [{"Sid": "S3ListBucket", "Effect": "Allow", "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::<your-bucket>"]}]})
    );
    assert_eq!(
        findings[1].suggested_policy.as_ref().unwrap()["Statement"][0],
        json!({"Sid": "S3AllObjectActions", "Effect": "Allow", "Action": "s3:*Object", "Resource": ["arn:aws:s3:::<your-bucket>/*"]})
    );
}

#[test]
fn iam_write_in_a_customer_policy_gets_a_policy_scoped_to_the_stack_and_passed_to_its_services() {
    let desired = stack_with(
        json!([{"Sid": "Admin", "Effect": "Allow", "Action": ["iam:PassRole", "iam:CreateRole", "iam:CreateAccessKey", "s3:GetObject"], "Resource": "*"}]),
        "",
    );
    let findings = review(&desired, None);
    assert_eq!(
        summary(&findings),
        vec![s(Severity::High, "iam-write-on-service-role", "role R", "policy P, statement Admin")]
    );
    let f = &findings[0];
    assert!(f.why.contains("iam:CreateRole, iam:PassRole, iam:CreateAccessKey"), "{}", f.why);
    assert!(f.suggestion.contains("drop iam:CreateAccessKey"), "{}", f.suggestion);
    assert_eq!(
        f.suggested_policy.as_ref().unwrap(),
        &json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "ManageOnlyTheStacksOwnIamResources", "Effect": "Allow", "Action": ["iam:CreateRole"],
             "Resource": ["arn:aws:iam::111122223333:role/svc/R", "arn:aws:iam::111122223333:policy/team/P",
                          "arn:aws:iam::111122223333:instance-profile/IP"]},
            {"Sid": "PassTheStacksRolesOnlyToTheirServices", "Effect": "Allow", "Action": "iam:PassRole",
             "Resource": ["arn:aws:iam::111122223333:role/svc/R"],
             "Condition": {"StringEquals": {"iam:PassedToService": ["batch.amazonaws.com", "ec2.amazonaws.com"]}}}]})
    );
}

#[test]
fn wildcards_and_not_action_count_as_iam_write_and_exact_arns_do_not() {
    for statement in [
        json!({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        json!({"Effect": "Allow", "Action": "IAM:Pass*", "Resource": "arn:aws:iam::*:role/*"}),
        json!({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}),
    ] {
        let findings = review(&stack_with(json!([statement]), ""), None);
        assert_eq!(findings.len(), 1, "{statement}");
        assert_eq!(findings[0].rule, "iam-write-on-service-role", "{statement}");
    }
    let only_users = json!({"Effect": "Allow", "Action": ["iam:CreateUser", "iam:CreateAccessKey"], "Resource": "*"});
    let findings = review(&stack_with(json!([only_users]), ""), None);
    assert!(findings[0].suggested_policy.is_none(), "nothing to scope: the advice is to drop them");
    assert!(findings[0].suggestion.contains("drop iam:CreateUser, iam:CreateAccessKey"), "{}", findings[0].suggestion);
    let everything = json!({"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"});
    let findings = review(&stack_with(json!([everything]), ""), None);
    assert_eq!(findings[0].rule, "all-buckets-s3-statement");
    assert_eq!(
        findings[0].suggested_policy.as_ref().unwrap()["Statement"][0]["Resource"],
        json!(["arn:aws:s3:::<your-bucket>", "arn:aws:s3:::<your-bucket>/*"])
    );
    for statement in [
        json!({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}),
        json!({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::111122223333:role/svc/R"}),
        json!({"Effect": "Deny", "Action": "iam:*", "Resource": "*"}),
        json!({"Effect": "Allow", "Action": ["iam:GetRole", "iam:List*"], "Resource": "*"}),
        json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::my-bucket/*"}),
        json!({"Effect": "Allow", "Action": "batch:SubmitJob", "Resource": "*"}),
    ] {
        assert!(review(&stack_with(json!([statement]), ""), None).is_empty(), "{statement}");
    }
}

#[test]
fn iam_full_access_and_administrator_access_on_a_role_are_high_and_the_user_gets_low_findings() {
    let desired = stack_with(
        json!([{"Effect": "Allow", "Action": "batch:SubmitJob", "Resource": "*"}]),
        "[user]\nmanaged_policies = [\"AmazonS3FullAccess\"]\n",
    );
    let mut desired = desired;
    desired.roles[0].policy_arns.push("arn:aws:iam::aws:policy/IAMFullAccess".into());
    desired.roles[0].policy_arns.push("arn:aws:iam::aws:policy/AdministratorAccess".into());
    let findings = review(&desired, Some("alice"));
    assert_eq!(
        summary(&findings),
        vec![
            s(Severity::High, "iam-write-on-service-role", "role R", "arn:aws:iam::aws:policy/IAMFullAccess"),
            s(Severity::High, "full-access-managed-policy", "role R", "arn:aws:iam::aws:policy/AdministratorAccess"),
            s(Severity::Low, "full-access-managed-policy", "user alice", "arn:aws:iam::aws:policy/AmazonS3FullAccess"),
        ]
    );
    assert_eq!(findings[0].narrower_managed_policies, ["arn:aws:iam::aws:policy/IAMReadOnlyAccess"]);
    assert!(findings[0].suggested_policy.as_ref().unwrap()["Statement"][1]["Condition"].is_object());
}

#[test]
fn narrower_policies_are_real_current_aws_managed_policy_names_in_the_accounts_partition() {
    for (full, narrower) in NARROWER {
        assert!(full.ends_with("FullAccess"), "{full}");
        for n in *narrower {
            assert!(crate::stack::deprecated_replacement(n).is_none(), "{n} is deprecated");
        }
    }
    let mut desired = built_in("slim-workflow");
    desired.target.partition = "aws-cn".into();
    for r in &mut desired.roles {
        for arn in &mut r.policy_arns {
            *arn = arn.replace("arn:aws:", "arn:aws-cn:");
        }
    }
    let findings = review(&desired, None);
    assert!(findings[0].narrower_managed_policies[0].starts_with("arn:aws-cn:iam::aws:policy/"));
    assert!(findings[0].suggested_policy.as_ref().unwrap().to_string().contains("arn:aws-cn:s3:::<your-bucket>"));
    assert_eq!(text(&[]), "Review: no broad grants in the stack.\n");
}
