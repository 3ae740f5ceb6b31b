//! `wfboot check` and the pre-flight of `bootstrap` against the emulator with IAM enforcement on: moto then
//! authorises every IAM and STS request against the caller's real policies.

use crate::common::*;

struct Keys {
    id: String,
    secret: String,
}

async fn user_with_policy(iam: &aws_sdk_iam::Client, name: &str, policy: &str) -> Keys {
    iam.create_user().user_name(name).send().await.unwrap();
    iam.attach_user_policy()
        .user_name(name)
        .policy_arn(format!("arn:aws:iam::aws:policy/{policy}"))
        .send()
        .await
        .unwrap();
    let key = iam.create_access_key().user_name(name).send().await.unwrap().access_key.unwrap();
    Keys { id: key.access_key_id, secret: key.secret_access_key }
}

/// An emulator with users `admin` (AdministratorAccess), `reader` (IAMReadOnlyAccess) and `demo` (nothing),
/// and IAM enforcement switched on.
async fn enforcing() -> (Emulator, Keys, Keys) {
    let emu = Emulator::start();
    let iam = emu.admin().await;
    let admin = user_with_policy(&iam, "admin", "AdministratorAccess").await;
    let reader = user_with_policy(&iam, "reader", "IAMReadOnlyAccess").await;
    iam.create_user().user_name("demo").send().await.unwrap();
    emu.reset_auth("0");
    (emu, admin, reader)
}

/// moto checks signatures over form data it re-encodes itself, with `+` for a space where the SDK sends `%20`,
/// so with enforcement on it rejects any request with a space in it: the default stack without its
/// descriptions (the end states compared do not include them).
fn default_stack_without_descriptions(dir: &std::path::Path) -> std::path::PathBuf {
    let stack = std::fs::read_to_string(repo().join("profiles/slim-workflow.toml")).unwrap();
    let stack: String = stack.lines().filter(|l| !l.starts_with("description")).map(|l| format!("{l}\n")).collect();
    write_file(dir, "profiles/slim-workflow.toml", &stack)
}

fn as_user(emu: &Emulator, keys: &Keys) -> assert_cmd::Command {
    let mut cmd = emu.wfboot();
    cmd.env("AWS_ACCESS_KEY_ID", &keys.id).env("AWS_SECRET_ACCESS_KEY", &keys.secret);
    cmd
}

/// `check --output json` of the stack at `path` for operator `demo`, as `keys`, which must pass (exit 0).
fn passing_check(emu: &Emulator, keys: &Keys, path: &std::path::Path) -> serde_json::Value {
    let out = as_user(emu, keys)
        .args(["check", "--user-name", "demo", "--output", "json", "--stack"])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn admin_client(emu: &Emulator, keys: &Keys) -> aws_sdk_iam::Client {
    emu.client_with(&keys.id, &keys.secret).await
}

#[tokio::test]
async fn a_read_only_user_gets_a_clear_access_denied_report_from_check_and_from_bootstrap_and_nothing_changes() {
    let (emu, admin, reader) = enforcing().await;

    let out = as_user(&emu, &reader).args(["check", "--user-name", "demo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    // Grouped by action, with the resources; what grants them said once.
    assert!(text.contains("iam:CreateRole on 5 resources"), "{text}");
    assert!(
        text.contains("not allowed by any policy: role/AWSBatchServiceRole, role/AmazonEC2SpotFleetRole"),
        "{text}"
    );
    assert_eq!(text.matches("iam:CreateRole on").count(), 1, "{text}");
    assert!(text.contains("FAILED"), "{text}");
    assert!(text.contains("`wfboot check --print-policy` prints the least operator policy"), "{text}");
    assert_eq!(text.matches("--print-policy").count(), 1, "{text}");
    // IAMReadOnlyAccess allows iam:SimulatePrincipalPolicy: the verdicts are the simulator's.
    assert!(stderr(&out).contains("simulated for arn:aws:iam::123456789012:user/reader"), "{}", stderr(&out));

    let out = as_user(&emu, &reader).args(["check", "--user-name", "demo", "--output", "json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["caller"]["arn"], "arn:aws:iam::123456789012:user/reader");

    let mark = emu.mark();
    let out = as_user(&emu, &reader).args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("arn:aws:iam::123456789012:user/reader may not do everything"), "{err}");
    assert!(err.contains("iam:CreateRole"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    let writes: Vec<Request> = emu.requests().into_iter().skip(mark).filter(|r| r.write && r.fault.is_none()).collect();
    assert!(writes.is_empty(), "writes reached the account: {writes:?}");
    // Checked through a separate admin client: the account is as it was.
    let iam = admin_client(&emu, &admin).await;
    assert!(iam.list_roles().send().await.unwrap().roles().is_empty());
    assert!(iam.list_attached_user_policies().user_name("demo").send().await.unwrap().attached_policies().is_empty());
}

#[tokio::test]
async fn a_user_with_full_rights_passes_the_preflight_and_bootstraps() {
    let (emu, admin, _) = enforcing().await;
    let dir = tempfile::tempdir().unwrap();
    let path = default_stack_without_descriptions(dir.path());
    let out = as_user(&emu, &admin)
        .args(["bootstrap", "--yes", "--user-name", "demo", "--stack"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(!stderr(&out).contains("could not be verified"), "{}", stderr(&out));
    let state = dump_state(&admin_client(&emu, &admin).await).await;
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/slim-workflow.state.json")).unwrap();
    assert_eq!(state, expected);

    // With enforcement on, each service's probe is authorised too (Lambda's is a GET, whose signature moto used to
    // check over the wrong payload: tools/moto_fixes.py).
    let report = passing_check(&emu, &admin, &path);
    let services = report["services"].as_array().unwrap();
    assert_eq!(services.len(), 4, "{report}");
    assert!(services.iter().all(|s| s["ok"] == true), "{report}");
}

#[tokio::test]
async fn check_passes_for_an_administrator_on_a_permissive_account() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let iam = emu.admin().await;
    // The emulator's default caller is a user that does not exist, so give it one that does.
    let admin = user_with_policy(&iam, "admin", "AdministratorAccess").await;
    let out = as_user(&emu, &admin).args(["check", "--user-name", "demo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("allowed for what bootstrap will do"), "{text}");
    assert!(text.contains("missing (bootstrap adds it)"), "{text}");
    for service in ["Batch", "Lambda", "SQS", "Step Functions"] {
        assert!(text.lines().any(|l| l.contains(service) && l.trim_end().ends_with("ok")), "{service}: {text}");
    }
    assert!(emu.wfboot_write_attempts_since(0).is_empty(), "check wrote to the account");
}

#[tokio::test]
async fn the_attached_policies_quota_of_the_operator_user_is_checked_before_attaching() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let iam = emu.admin().await;
    crowd_the_demo_users_managed_policies(&iam).await;
    let admin = user_with_policy(&iam, "admin", "AdministratorAccess").await;
    let out = as_user(&emu, &admin).args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("would exceed IAM's quota of 10"), "{}", stderr(&out));
    assert!(emu.wfboot_write_attempts_since(0).is_empty());
}

#[test]
fn print_policy_gives_the_published_minimal_operator_policy_on_a_fresh_account() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let emu = Emulator::start();
    rt.block_on(emu.create_demo_user());
    let out = emu.wfboot().args(["check", "--user-name", "demo", "--print-policy"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let published: serde_json::Value = serde_json::from_str(include_str!("../../docs/operator-policy.json")).unwrap();
    assert_eq!(printed, published);
}

#[tokio::test]
async fn with_enforcement_a_policy_that_arrives_through_a_group_is_not_attached_again() {
    let emu = Emulator::start();
    let iam = emu.admin().await;
    let admin = user_with_policy(&iam, "admin", "AdministratorAccess").await;
    iam.create_user().user_name("demo").send().await.unwrap();
    iam.create_group().group_name("ops").send().await.unwrap();
    iam.add_user_to_group().group_name("ops").user_name("demo").send().await.unwrap();
    let via_group = ["arn:aws:iam::aws:policy/AmazonEC2FullAccess", "arn:aws:iam::aws:policy/AWSBatchFullAccess"];
    for arn in via_group {
        iam.attach_group_policy().group_name("ops").policy_arn(arn).send().await.unwrap();
    }
    emu.reset_auth("0");
    let dir = tempfile::tempdir().unwrap();
    let path = default_stack_without_descriptions(dir.path());
    let out = as_user(&emu, &admin)
        .args(["bootstrap", "--yes", "--user-name", "demo", "--stack"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let iam = admin_client(&emu, &admin).await;
    let direct = iam.list_attached_user_policies().user_name("demo").send().await.unwrap();
    let direct: Vec<&str> = direct.attached_policies().iter().filter_map(|p| p.policy_arn()).collect();
    // 5 AWS managed policies and the stack's PassRole policy.
    assert_eq!(direct.len(), 6, "{direct:?}");
    assert!(via_group.iter().all(|a| !direct.contains(a)), "{direct:?}");
}

#[tokio::test]
async fn a_permission_only_the_real_plan_needs_is_checked_even_when_the_checks_started_early() {
    let (emu, admin, _) = enforcing().await;
    let dir = tempfile::tempdir().unwrap();
    let path = default_stack_without_descriptions(dir.path());
    let bootstrap = |keys: &Keys| {
        as_user(&emu, keys).args(["bootstrap", "--yes", "--user-name", "demo", "--stack"]).arg(&path).output().unwrap()
    };
    let out = bootstrap(&admin);
    assert!(out.status.success(), "{}", stderr(&out));

    // Drift: the instance profile is gone (so the run will write, and its checks start before the stack's policy
    // is read) and the stack's policy has another document (so the real plan also needs iam:CreatePolicyVersion,
    // which the early checks, made as if the policy were missing, did not ask about).
    let iam = admin_client(&emu, &admin).await;
    let profile = "SLIM-Extras_ECS_for_EC2";
    iam.remove_role_from_instance_profile().instance_profile_name(profile).role_name(profile).send().await.unwrap();
    iam.delete_instance_profile().instance_profile_name(profile).send().await.unwrap();
    let policy = format!("arn:aws:iam::{ACCOUNT}:policy/LambdaBatchExecutionPolicy");
    let other = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"batch:ListJobs","Resource":"*"}]}"#;
    iam.create_policy_version().policy_arn(&policy).policy_document(other).set_as_default(true).send().await.unwrap();

    // A user who may do everything except add a policy version.
    let all_but = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"iam:CreatePolicyVersion","Resource":"*"}]}"#;
    let arn = iam.create_policy().policy_name("AllButVersions").policy_document(all_but).send().await.unwrap();
    iam.create_user().user_name("limited").send().await.unwrap();
    let arn = arn.policy.and_then(|p| p.arn).unwrap();
    iam.attach_user_policy().user_name("limited").policy_arn(arn).send().await.unwrap();
    let key = iam.create_access_key().user_name("limited").send().await.unwrap().access_key.unwrap();
    let limited = Keys { id: key.access_key_id, secret: key.secret_access_key };

    let mark = emu.mark();
    let out = bootstrap(&limited);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stderr(&out), stdout(&out));
    assert!(stderr(&out).contains("iam:CreatePolicyVersion"), "{}", stderr(&out));
    assert!(stderr(&out).contains("explicitly denied"), "an explicit deny is reported as denied: {}", stderr(&out));
    let writes: Vec<Request> = emu.requests().into_iter().skip(mark).filter(|r| r.write && r.fault.is_none()).collect();
    assert!(writes.is_empty(), "writes reached the account: {writes:?}");
    // The administrator repairs both (a new instance profile with its role, a new policy version).
    let out = bootstrap(&admin);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("3 writes done"), "{}", stdout(&out));
}

/// Done when of the permission checks: an operator with the stack's AWS managed user policies and exactly the policy
/// `check --print-policy` prints — whose PassRole and CreateServiceLinkedRole grants are conditioned on
/// iam:PassedToService and iam:AWSServiceName, as are AmazonEC2FullAccess's — passes `check` by simulation and
/// bootstraps.
#[tokio::test]
async fn an_operator_with_the_printed_policy_and_conditioned_grants_passes_check_by_simulation_and_bootstraps() {
    let emu = Emulator::start();
    let iam = emu.admin().await;
    let admin = user_with_policy(&iam, "admin", "AdministratorAccess").await;
    iam.create_user().user_name("demo").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = default_stack_without_descriptions(dir.path());
    let out =
        emu.wfboot().args(["check", "--user-name", "demo", "--print-policy", "--stack"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let arn = iam.create_policy().policy_name("WfbootOperator").policy_document(&printed).send().await.unwrap();
    iam.create_user().user_name("op").send().await.unwrap();
    iam.attach_user_policy().user_name("op").policy_arn(arn.policy.and_then(|p| p.arn).unwrap()).send().await.unwrap();
    // The stack's AWS managed user policies (the services probed by `check` need them).
    for p in [
        "AmazonEC2FullAccess",
        "AWSBatchFullAccess",
        "AmazonEC2ContainerRegistryFullAccess",
        "AWSLambda_FullAccess",
        "AmazonSQSFullAccess",
        "AWSStepFunctionsFullAccess",
        "AmazonS3ReadOnlyAccess",
    ] {
        iam.attach_user_policy()
            .user_name("op")
            .policy_arn(format!("arn:aws:iam::aws:policy/{p}"))
            .send()
            .await
            .unwrap();
    }
    let key = iam.create_access_key().user_name("op").send().await.unwrap().access_key.unwrap();
    let op = Keys { id: key.access_key_id, secret: key.secret_access_key };
    // moto's own enforcement is left off: it authorises IAM calls against Resource "*" only, so it refuses every
    // least-privilege grant on exact ARNs. The pre-flight's verdicts come from the emulator's simulator, which
    // evaluates op's real policies; the bootstrap writes only if they allow everything.

    let report = passing_check(&emu, &op, &path);
    assert!(
        report["rows"].as_array().unwrap().iter().all(|r| r["area"] != "permissions" || r["status"] == "ok"),
        "{report}"
    );
    assert!(
        report["permissions_method"].as_str().unwrap().starts_with("simulated for arn:aws:iam::123456789012:user/op"),
        "{report}"
    );
    let text = report["rows"].to_string();
    assert!(text.contains("demo can run the workflow"), "{text}");

    let mark = emu.mark();
    let out =
        as_user(&emu, &op).args(["bootstrap", "--yes", "--user-name", "demo", "--stack"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let writes: Vec<Request> = emu
        .requests()
        .into_iter()
        .skip(mark)
        .filter(|r| r.access_key == op.id && r.write && r.status.is_some_and(|s| (200..300).contains(&s)))
        .collect();
    assert_eq!(writes.len(), 32, "{writes:?}");
    let mut state = dump_state(&admin_client(&emu, &admin).await).await;
    // The operator's own policy was made by the test, not by the bootstrap.
    state["customer_policies"].as_array_mut().unwrap().retain(|p| p != "WfbootOperator");
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/slim-workflow.state.json")).unwrap();
    assert_eq!(state, expected);
}

/// An operator whose grants hang on a key the plan cannot know (multi-factor authentication): the simulator says
/// implicitDeny with that key missing, which is "unverified (needs KEY)", never a refusal.
#[tokio::test]
async fn grants_that_need_context_wfboot_cannot_supply_are_unverified_naming_the_key_and_do_not_refuse() {
    let emu = Emulator::start();
    let iam = emu.admin().await;
    let admin = user_with_policy(&iam, "admin", "AdministratorAccess").await;
    iam.create_user().user_name("demo").send().await.unwrap();
    iam.create_user().user_name("op").send().await.unwrap();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:Get*", "iam:List*", "iam:SimulatePrincipalPolicy", "sts:GetCallerIdentity"],
         "Resource": "*"},
        {"Effect": "Allow", "Action": "*", "Resource": "*",
         "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]});
    iam.put_user_policy()
        .user_name("op")
        .policy_name("with-mfa")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    let key = iam.create_access_key().user_name("op").send().await.unwrap().access_key.unwrap();
    let op = Keys { id: key.access_key_id, secret: key.secret_access_key };

    let out = as_user(&emu, &op).args(["check", "--user-name", "demo", "--output", "json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let permissions: Vec<&serde_json::Value> =
        report["rows"].as_array().unwrap().iter().filter(|r| r["area"] == "permissions").collect();
    assert!(!permissions.is_empty(), "{report}");
    assert!(permissions.iter().all(|r| r["status"] != "failed"), "nothing is refused: {report}");
    assert!(
        permissions.iter().any(|r| r["status"] == "unverified"
            && r["what_to_do"].as_str().unwrap().contains("needs aws:MultiFactorAuthPresent")),
        "{report}"
    );
    assert!(report["permissions_method"].as_str().unwrap().starts_with("simulated for"), "{report}");
    assert_ne!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));

    // bootstrap goes on, saying what it could not verify.
    let out = as_user(&emu, &op).args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("could not be verified"), "{}", stderr(&out));
    let roles = admin_client(&emu, &admin).await.list_roles().send().await.unwrap();
    assert!(!roles.roles().is_empty());
}

/// Without the emulator's simulator (moto answers iam:SimulatePrincipalPolicy with HTTP 500, as some endpoints
/// do), the caller's own policies are evaluated locally and the report says so.
#[tokio::test]
async fn without_a_simulator_the_callers_policies_are_evaluated_locally_and_the_report_says_which() {
    let emu = Emulator::start_with(&["--no-simulator"]);
    let iam = emu.admin().await;
    let reader = user_with_policy(&iam, "reader", "IAMReadOnlyAccess").await;
    iam.create_user().user_name("demo").send().await.unwrap();
    let mark = emu.mark();
    // One retry of each 500, not the default four with backoff (the retry itself is unit-tested).
    let args = ["check", "--user-name", "demo", "--output", "json", "--retry-attempts", "2"];
    let out = as_user(&emu, &reader).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let method = report["permissions_method"].as_str().unwrap();
    assert!(method.contains("simulation unavailable (iam:SimulatePrincipalPolicy answered HTTP 500"), "{method}");
    assert!(method.contains("reader locally"), "{method}");
    assert!(report["rows"].as_array().unwrap().iter().any(|r| r["area"] == "permissions" && r["status"] == "failed"));
    let simulations = emu.requests().into_iter().skip(mark).filter(|r| r.action == "SimulatePrincipalPolicy");
    assert!(simulations.into_iter().all(|r| r.status == Some(500)));
}
