//! Accounts in organisations with guardrails, against the emulator: a permissions boundary and required tags on
//! everything wfboot creates, each drift repaired with one write, an operator allowed to create roles only with
//! the boundary, and bad tags refused before any call.

use std::path::{Path, PathBuf};

use crate::common::*;

const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/WorkloadBoundary";
const ALLOW_ALL: &str =
    r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}"#;

/// The render-worker stack (one policy, one role, one instance profile) with `extra` at the top.
fn render_worker_with(dir: &Path, file: &str, extra: &str) -> PathBuf {
    let stack = std::fs::read_to_string(repo().join("profiles/render-worker.toml")).unwrap();
    let (head, rest) = stack.split_once("\n[[policy]]").unwrap();
    write_file(dir, file, &format!("{head}\n{extra}\n\n[[policy]]{rest}"))
}

async fn create_policy(iam: &aws_sdk_iam::Client, name: &str) {
    iam.create_policy().policy_name(name).policy_document(ALLOW_ALL).send().await.unwrap();
}

/// `bootstrap --yes` of `stack` with `extra` flags, which must succeed; the writes it made, sorted.
fn bootstrap(emu: &Emulator, stack: &Path, extra: &[&str]) -> Vec<String> {
    let mark = emu.mark();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--stack"]).arg(stack).args(extra).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    emu.wfboot_writes_since(mark)
}

async fn role_state(iam: &aws_sdk_iam::Client) -> (Option<String>, Vec<(String, String)>) {
    let role = iam.get_role().role_name("RenderJobWorkerRole").send().await.unwrap().role.unwrap();
    let boundary = role.permissions_boundary.and_then(|b| b.permissions_boundary_arn);
    (boundary, sorted_tags(role.tags.unwrap_or_default()))
}

fn sorted_tags(tags: Vec<aws_sdk_iam::types::Tag>) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = tags.into_iter().map(|t| (t.key, t.value)).collect();
    t.sort();
    t
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn a_stack_with_a_boundary_and_tags_bootstraps_each_drift_is_one_write_and_a_rerun_writes_nothing() {
    let emu = Emulator::start();
    let iam = emu.admin().await;
    create_policy(&iam, "WorkloadBoundary").await;
    create_policy(&iam, "OtherBoundary").await;
    let dir = tempfile::tempdir().unwrap();
    let stack = render_worker_with(
        dir.path(),
        "guarded.toml",
        "permissions_boundary = \"WorkloadBoundary\"\n\n[tags]\nCostCenter = \"42\"",
    );
    let team = ["--tag", "team=imaging"];

    let writes = bootstrap(&emu, &stack, &team);
    assert_eq!(
        writes,
        ["AddRoleToInstanceProfile", "AttachRolePolicy", "CreateInstanceProfile", "CreatePolicy", "CreateRole"]
    );
    let all_tags = pairs(&[
        ("CostCenter", "42"),
        ("team", "imaging"),
        ("wfboot:stack", "render-worker"),
        ("wfboot:tags", "CostCenter team"),
    ]);
    assert_eq!(role_state(&iam).await, (Some(BOUNDARY.to_string()), all_tags.clone()));
    let policy_arn = "arn:aws:iam::123456789012:policy/RenderJobWorkerPolicy";
    let policy_tags = || async {
        sorted_tags(
            iam.get_policy().policy_arn(policy_arn).send().await.unwrap().policy.unwrap().tags.unwrap_or_default(),
        )
    };
    let profile_tags = || async {
        let p = iam.get_instance_profile().instance_profile_name("RenderJobWorkerProfile").send().await.unwrap();
        sorted_tags(p.instance_profile.unwrap().tags.unwrap_or_default())
    };
    assert_eq!(policy_tags().await, all_tags);
    assert_eq!(profile_tags().await, all_tags);
    assert_eq!(bootstrap(&emu, &stack, &team), Vec::<String>::new(), "a re-run writes nothing");

    // Each drift, made by hand, is repaired with exactly one write.
    iam.delete_role_permissions_boundary().role_name("RenderJobWorkerRole").send().await.unwrap();
    assert_eq!(bootstrap(&emu, &stack, &team), ["PutRolePermissionsBoundary"], "boundary removed by hand");
    iam.put_role_permissions_boundary()
        .role_name("RenderJobWorkerRole")
        .permissions_boundary("arn:aws:iam::123456789012:policy/OtherBoundary")
        .send()
        .await
        .unwrap();
    assert_eq!(bootstrap(&emu, &stack, &team), ["PutRolePermissionsBoundary"], "boundary changed by hand");
    iam.untag_role().role_name("RenderJobWorkerRole").tag_keys("CostCenter").send().await.unwrap();
    assert_eq!(bootstrap(&emu, &stack, &team), ["TagRole"], "tag removed by hand");
    let tag = |k: &str, v: &str| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().unwrap();
    iam.tag_role().role_name("RenderJobWorkerRole").tags(tag("team", "render")).send().await.unwrap();
    assert_eq!(bootstrap(&emu, &stack, &team), ["TagRole"], "tag changed by hand");
    iam.untag_policy().policy_arn(policy_arn).tag_keys("team").send().await.unwrap();
    assert_eq!(bootstrap(&emu, &stack, &team), ["TagPolicy"], "policy tag removed by hand");
    iam.tag_instance_profile()
        .instance_profile_name("RenderJobWorkerProfile")
        .tags(tag("CostCenter", "0"))
        .send()
        .await
        .unwrap();
    assert_eq!(bootstrap(&emu, &stack, &team), ["TagInstanceProfile"], "profile tag changed by hand");
    assert_eq!(role_state(&iam).await, (Some(BOUNDARY.to_string()), all_tags.clone()));
    assert_eq!(bootstrap(&emu, &stack, &team), Vec::<String>::new(), "a re-run after the repairs writes nothing");

    // A tag someone else put there is never touched; a key wfboot set and the stack dropped is removed.
    iam.tag_role().role_name("RenderJobWorkerRole").tags(tag("Owner", "platform-team")).send().await.unwrap();
    let writes = bootstrap(&emu, &stack, &[]);
    assert_eq!(
        writes,
        ["TagInstanceProfile", "TagPolicy", "TagRole", "UntagInstanceProfile", "UntagPolicy", "UntagRole"],
        "--tag team dropped: untag team, and update the record"
    );
    let expected = pairs(&[
        ("CostCenter", "42"),
        ("Owner", "platform-team"),
        ("wfboot:stack", "render-worker"),
        ("wfboot:tags", "CostCenter"),
    ]);
    assert_eq!(role_state(&iam).await, (Some(BOUNDARY.to_string()), expected));

    // The stack without its boundary and tags: the boundary comes off this stack's role, the recorded tags go.
    let plain = render_worker_with(dir.path(), "plain.toml", "");
    let writes = bootstrap(&emu, &plain, &[]);
    assert_eq!(writes, ["DeleteRolePermissionsBoundary", "UntagInstanceProfile", "UntagPolicy", "UntagRole"]);
    let expected = pairs(&[("Owner", "platform-team"), ("wfboot:stack", "render-worker")]);
    assert_eq!(role_state(&iam).await, (None, expected));
    assert_eq!(bootstrap(&emu, &plain, &[]), Vec::<String>::new());
}

#[tokio::test]
async fn a_boundary_on_a_role_wfboot_did_not_create_is_set_only_with_adopt_and_never_removed() {
    let emu = Emulator::start();
    let iam = emu.admin().await;
    create_policy(&iam, "WorkloadBoundary").await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role().role_name("RenderJobWorkerRole").assume_role_policy_document(trust).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stack = render_worker_with(dir.path(), "guarded.toml", "");
    let flags = ["--permissions-boundary", "WorkloadBoundary"];

    let mark = emu.mark();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--stack"]).arg(&stack).args(flags).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "held back: {}", stderr(&out));
    assert!(!emu.wfboot_writes_since(mark).contains(&"PutRolePermissionsBoundary".to_string()));
    assert!(stdout(&out).contains("permissions boundary"), "{}", stdout(&out));
    assert_eq!(role_state(&iam).await.0, None);

    let writes = bootstrap(&emu, &stack, &["--adopt", flags[0], flags[1]]);
    assert!(writes.contains(&"PutRolePermissionsBoundary".to_string()), "{writes:?}");
    assert_eq!(role_state(&iam).await.0.as_deref(), Some(BOUNDARY));
    // Without the flag: someone else's role keeps its boundary.
    let writes = bootstrap(&emu, &stack, &["--adopt"]);
    assert!(!writes.contains(&"DeleteRolePermissionsBoundary".to_string()), "{writes:?}");
    assert_eq!(role_state(&iam).await.0.as_deref(), Some(BOUNDARY));
}

/// The operator of an organisation whose guardrail allows iam:CreateRole only with the boundary (the SCP of
/// aws/aws-cdk#28453, as an identity policy): the pre-flight simulates CreateRole with iam:PermissionsBoundary in
/// the request context, so it refuses before any write without `--permissions-boundary` and passes with it.
#[tokio::test]
async fn an_operator_allowed_to_create_roles_only_with_the_boundary_bootstraps_with_it_and_is_refused_without() {
    let emu = Emulator::start();
    let iam = emu.admin().await;
    create_policy(&iam, "WorkloadBoundary").await;
    let guardrail = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "NotAction": "iam:CreateRole", "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:CreateRole", "Resource": "*",
         "Condition": {"StringEquals": {"iam:PermissionsBoundary": BOUNDARY}}}]});
    iam.create_user().user_name("op").send().await.unwrap();
    iam.put_user_policy()
        .user_name("op")
        .policy_name("guardrail")
        .policy_document(guardrail.to_string())
        .send()
        .await
        .unwrap();
    let key = iam.create_access_key().user_name("op").send().await.unwrap().access_key.unwrap();
    let as_op = || {
        let mut cmd = emu.wfboot();
        cmd.env("AWS_ACCESS_KEY_ID", &key.access_key_id).env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key);
        cmd
    };
    let op_writes = |mark: usize| -> Vec<String> {
        emu.requests()
            .into_iter()
            .skip(mark)
            .filter(|r| r.access_key == key.access_key_id && r.write && r.action != "SimulatePrincipalPolicy")
            .map(|r| r.action)
            .collect()
    };

    let mark = emu.mark();
    let out = as_op().args(["bootstrap", "--yes", "--stack", "render-worker"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "refused by the pre-flight: {}\n{}", stdout(&out), stderr(&out));
    assert_eq!(op_writes(mark), Vec::<String>::new(), "nothing was written");
    let err = stderr(&out);
    assert!(err.contains("iam:CreateRole"), "{err}");

    let mark = emu.mark();
    let out = as_op()
        .args(["bootstrap", "--yes", "--stack", "render-worker", "--permissions-boundary", "WorkloadBoundary"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(op_writes(mark).contains(&"CreateRole".to_string()));
    assert_eq!(role_state(&iam).await.0.as_deref(), Some(BOUNDARY));
    let report =
        serde_json::to_string(&emu.requests().iter().skip(mark).map(|r| &r.action).collect::<Vec<_>>()).unwrap();
    assert!(report.contains("SimulatePrincipalPolicy"), "the pre-flight simulated: {report}");
}

#[tokio::test]
async fn a_boundary_that_does_not_exist_is_refused_before_any_write() {
    let emu = Emulator::start();
    let mark = emu.mark();
    let out = emu
        .wfboot()
        .args(["bootstrap", "--yes", "--stack", "render-worker", "--permissions-boundary", "NoSuchBoundary"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("arn:aws:iam::123456789012:policy/NoSuchBoundary"), "{}", stderr(&out));
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());
}

#[test]
fn bad_tags_and_bad_boundaries_are_refused_before_any_call() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let in_file = render_worker_with(dir.path(), "bad.toml", "[tags]\n\"aws:owner\" = \"x\"");
    let many: String = (0..49).map(|i| format!("k{i} = \"v\"\n")).collect();
    let too_many = render_worker_with(dir.path(), "many.toml", &format!("[tags]\n{many}"));
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec!["--tag".into(), "team=a,b".into()], 65, "character IAM does not accept"),
        (vec!["--tag".into(), "aws:owner=x".into()], 65, "reserved"),
        (vec!["--tag".into(), "wfboot:stack=x".into()], 65, "wfboot's own"),
        (vec!["--tag".into(), format!("{}=x", "k".repeat(129))], 65, "129 characters"),
        (vec!["--tag".into(), "novalue".into()], 64, "KEY=VALUE"),
        (vec!["--stack".into(), in_file.display().to_string()], 65, "reserved"),
        (vec!["--stack".into(), too_many.display().to_string()], 65, "49 tags"),
        (vec!["--permissions-boundary".into(), "not a name".into()], 64, "permissions-boundary"),
    ];
    for (args, code, says) in cases {
        for command in ["plan", "bootstrap"] {
            let mark = emu.mark();
            let yes: &[&str] = if command == "bootstrap" { &["--yes"] } else { &[] };
            let out = emu.wfboot().arg(command).args(yes).args(&args).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(code), "{command} {args:?}: {err}");
            assert!(err.contains(says), "{command} {args:?}: {err}");
            assert!(emu.wfboot_requests_since(mark).is_empty(), "{command} {args:?} made calls");
        }
    }
}
