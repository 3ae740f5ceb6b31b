//! `--org-unit`: a service-managed CloudFormation StackSet over organisational units, against the emulator's
//! Organizations and CloudFormation (docs/emulator.md says what the emulator adds to moto's StackSets so that they
//! behave as CloudFormation's: asynchronous operations, per-account failures with CloudFormation's reason,
//! AccountFilterType, auto-deployment, DeleteStackInstances deleting the resources).
//!
//! The caller is the management account (wfboot's key and the admin's are account 123456789012, which creates the
//! organisation). CloudFormation's deployments run inside the emulator, so every IAM write the request log holds
//! during a wfboot run is wfboot's own: the tests count them to show there are none.

use aws_sdk_organizations::types::{OrganizationFeatureSet, PolicyType};
use serde_json::{json, Value};

use crate::common::*;

const TRUSTED: &str = "member.org.stacksets.cloudformation.amazonaws.com";
const STACK_SET: &str = "wfboot-slim-workflow";
/// The default stack's roles and instance profile, which a stack instance creates in each account.
const ROLES: [&str; 5] = [
    "AWSBatchServiceRole",
    "AmazonEC2SpotFleetRole",
    "SLIM-Extras_ECS_for_EC2",
    "SLIM-Extras_for_Lambda",
    "StepFunctionsLambdaRole",
];
const PROFILE: &str = "SLIM-Extras_ECS_for_EC2";

fn org_client(emu: &Emulator) -> aws_sdk_organizations::Client {
    aws_sdk_organizations::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"))
}

fn cfn_client(emu: &Emulator) -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"))
}

/// The issue's organisation: OU workloads with three accounts, OU sandbox (one account) under an SCP that denies
/// iam:CreateRole, OU legacy with one account whose AWSBatchServiceRole was made by hand; trusted access on.
struct Org {
    client: aws_sdk_organizations::Client,
    root: String,
    workloads: String,
    sandbox: String,
    legacy: String,
    workload_accounts: Vec<String>,
    sandbox_account: String,
    legacy_account: String,
    scp: String,
}

async fn organisation(emu: &Emulator, trusted_access: bool) -> Org {
    let o = org_client(emu);
    o.create_organization().feature_set(OrganizationFeatureSet::All).send().await.unwrap();
    let root = o.list_roots().send().await.unwrap().roots()[0].id().unwrap().to_string();
    let workloads = ou(&o, &root, "workloads").await;
    let sandbox = ou(&o, &root, "sandbox").await;
    let legacy = ou(&o, &root, "legacy").await;
    let mut workload_accounts = Vec::new();
    for i in 0..3 {
        workload_accounts.push(account(&o, &root, &format!("w{i}"), &workloads).await);
    }
    let sandbox_account = account(&o, &root, "s0", &sandbox).await;
    let legacy_account = account(&o, &root, "l0", &legacy).await;
    let deny = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "NoNewRoles", "Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*"}]});
    let scp = o
        .create_policy()
        .name("DenyCreateRole")
        .description("no new roles")
        .r#type(PolicyType::ServiceControlPolicy)
        .content(deny.to_string())
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .policy_summary()
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    o.attach_policy().policy_id(&scp).target_id(&sandbox).send().await.unwrap();
    if trusted_access {
        o.enable_aws_service_access().service_principal(TRUSTED).send().await.unwrap();
    }
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    account_admin(emu, &legacy_account)
        .await
        .create_role()
        .role_name("AWSBatchServiceRole")
        .description("made by hand, as in the tutorial")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
    Org { client: o, root, workloads, sandbox, legacy, workload_accounts, sandbox_account, legacy_account, scp }
}

async fn ou(o: &aws_sdk_organizations::Client, parent: &str, name: &str) -> String {
    let out = o.create_organizational_unit().parent_id(parent).name(name).send().await.unwrap();
    out.organizational_unit().unwrap().id().unwrap().to_string()
}

async fn account(o: &aws_sdk_organizations::Client, root: &str, name: &str, target: &str) -> String {
    let out = o.create_account().email(format!("{name}@example.com")).account_name(name).send().await.unwrap();
    let id = out.create_account_status().unwrap().account_id().unwrap().to_string();
    o.move_account().account_id(&id).source_parent_id(root).destination_parent_id(target).send().await.unwrap();
    id
}

fn run(emu: &Emulator, args: &[&str]) -> std::process::Output {
    emu.wfboot().args(args).output().unwrap()
}

/// `--org-unit` for each of `ous`.
fn ous<'a>(ous: &[&'a str]) -> Vec<&'a str> {
    ous.iter().flat_map(|o| ["--org-unit", o]).collect()
}

/// Every write call sent after `mark` by anyone but the test's admin, sorted: only wfboot runs meanwhile, with
/// its own key and the sessions it assumes.
fn writes_since(emu: &Emulator, mark: usize) -> Vec<String> {
    let mut w: Vec<String> = emu
        .requests()
        .into_iter()
        .skip(mark)
        .filter(|r| r.write && r.access_key != ADMIN_KEY && r.action != "AssumeRole")
        .map(|r| format!("{}:{}", r.service, r.action))
        .collect();
    w.sort();
    w
}

/// The OUs each CreateStackInstances call after `mark` targeted, read from the operations CloudFormation keeps.
async fn operations(emu: &Emulator) -> Vec<Value> {
    let cfn = cfn_client(emu);
    let listed = cfn.list_stack_set_operations().stack_set_name(STACK_SET).send().await.unwrap();
    let mut out = Vec::new();
    for s in listed.summaries() {
        let id = s.operation_id().unwrap();
        let op = cfn.describe_stack_set_operation().stack_set_name(STACK_SET).operation_id(id).send().await.unwrap();
        let op = op.stack_set_operation().unwrap();
        let targets = op.deployment_targets();
        out.push(json!({
            "action": op.action().map(|a| a.as_str().to_string()),
            "org_units": targets.map(|t| t.organizational_unit_ids().to_vec()).unwrap_or_default(),
            "accounts": targets.map(|t| t.accounts().to_vec()).unwrap_or_default(),
            "filter": targets.and_then(|t| t.account_filter_type()).map(|f| f.as_str().to_string()),
        }));
    }
    out
}

async fn has_stack(emu: &Emulator, account: &str) -> bool {
    let iam = account_admin(emu, account).await;
    let mut found = 0;
    for role in ROLES {
        found += usize::from(iam.get_role().role_name(role).send().await.is_ok());
    }
    let profile = iam.get_instance_profile().instance_profile_name(PROFILE).send().await.is_ok();
    assert!(found == 0 || found == ROLES.len(), "account {account} has {found} of the roles");
    found == ROLES.len() && profile
}

fn row<'a>(text: &'a str, account: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(account)).unwrap_or_else(|| panic!("no row for {account}:\n{text}"))
}

/// The issue's "Done when": plan, bootstrap, re-run, a tag change, JSON, destroy, over the three OUs.
#[tokio::test]
async fn an_organisation_of_three_ous_is_planned_bootstrapped_through_a_stack_set_and_destroyed_without_one_iam_write_from_wfboot(
) {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    let all = ous(&[&org.workloads, &org.sandbox, &org.legacy]);
    let legacy_before = full_state(&account_admin(&emu, &org.legacy_account).await).await;

    // plan: exit 2, nothing written, every account named.
    let mark = emu.mark();
    let out = run(&emu, &[&["plan", "--detailed-exitcode"][..], &all].concat());
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new(), "plan wrote");
    for a in org.workload_accounts.iter().chain([&org.sandbox_account, &org.legacy_account]) {
        assert!(row(&text, a).contains(a), "{text}");
    }
    assert!(text.contains("StackSet wfboot-slim-workflow (service-managed, us-east-1): create"), "{text}");
    assert!(text.contains("+ role AWSBatchServiceRole"), "{text}");
    assert!(
        row(&text, &org.legacy_account).contains("role AWSBatchServiceRole (not made by CloudFormation)"),
        "{text}"
    );
    assert!(row(&text, &org.sandbox_account).contains(&format!("DenyCreateRole ({})", org.scp)), "{text}");
    assert!(text.contains("SLIMWorkflowPassRoles) are not in the StackSet: users are per person"), "said: {text}");

    // bootstrap: the sandbox OU refused before any CloudFormation write, legacy's account held back, workloads
    // deployed by CloudFormation; wfboot sends no IAM write.
    let mark = emu.mark();
    let out = run(&emu, &[&["bootstrap", "--yes"][..], &all].concat());
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "the sandbox OU's refusal sets the exit code:\n{text}\n{err}");
    let writes = writes_since(&emu, mark);
    assert!(writes.iter().all(|w| w.starts_with("cloudformation:")), "wfboot wrote outside CloudFormation: {writes:?}");
    assert_eq!(writes, ["cloudformation:CreateStackInstances", "cloudformation:CreateStackSet"], "{err}");
    assert!(err.contains(&format!("is refused before any CloudFormation write: iam:CreateRole on 5 resources denied by SCP DenyCreateRole ({}) attached to OU /sandbox", org.scp)), "{err}");
    for a in &org.workload_accounts {
        assert!(row(&text, a).contains("applied 11"), "{text}");
        assert!(has_stack(&emu, a).await, "the roles and instance profile are in {a}");
    }
    assert!(row(&text, &org.sandbox_account).contains("FAILED"), "{text}");
    assert!(!has_stack(&emu, &org.sandbox_account).await);
    let legacy = row(&text, &org.legacy_account);
    assert!(legacy.contains("held back") && legacy.contains("AWSBatchServiceRole"), "{text}");
    assert_eq!(full_state(&account_admin(&emu, &org.legacy_account).await).await, legacy_before, "left as it was");
    let ops = operations(&emu).await;
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0]["org_units"], json!([org.workloads, org.legacy]), "sandbox is not a target: {ops:?}");
    assert_eq!(ops[0]["accounts"], json!([org.legacy_account]), "{ops:?}");
    assert_eq!(ops[0]["filter"], "DIFFERENCE", "{ops:?}");

    // The re-run writes nothing; --output json names every account.
    let mark = emu.mark();
    let out = run(&emu, &[&["bootstrap", "--yes", "--output", "json"][..], &all].concat());
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new(), "the re-run wrote");
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    crate::schema::assert_valid(&[crate::schema::doc("bootstrap --org-unit", "accounts_result", v.clone())]);
    let named: Vec<&str> =
        v["accounts"].as_array().unwrap().iter().map(|a| a["account_id"].as_str().unwrap()).collect();
    assert_eq!(named.len(), 5, "{v}");
    for a in org.workload_accounts.iter().chain([&org.sandbox_account, &org.legacy_account]) {
        assert!(named.contains(&a.as_str()), "{a} in {v}");
    }
    assert_eq!(v["stack_set"]["name"], STACK_SET);

    // A tag: one UpdateStackSet, and the role in every workloads account carries it.
    let mark = emu.mark();
    let out = run(&emu, &[&["bootstrap", "--yes", "--tag", "team=data"][..], &all].concat());
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(writes_since(&emu, mark), ["cloudformation:UpdateStackSet"]);
    for a in &org.workload_accounts {
        let role = account_admin(&emu, a).await.get_role().role_name("AWSBatchServiceRole").send().await.unwrap();
        let tags = role.role().unwrap().tags();
        assert!(tags.iter().any(|t| t.key() == "team" && t.value() == "data"), "{a}: {tags:?}");
    }

    // destroy the workloads OU's instances: their stacks and roles go.
    let mark = emu.mark();
    let out = run(&emu, &[&["destroy", "--yes"][..], &ous(&[&org.workloads])].concat());
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(writes_since(&emu, mark), ["cloudformation:DeleteStackInstances", "cloudformation:DeleteStackSet"]);
    for a in &org.workload_accounts {
        assert!(row(&stdout(&out), a).contains("applied 11"), "{}", stdout(&out));
        assert!(!has_stack(&emu, a).await, "{a} still has the stack's roles");
    }
    let left = cfn_client(&emu).list_stack_sets().send().await.unwrap();
    assert!(left
        .summaries()
        .iter()
        .all(|s| s.stack_set_name() != Some(STACK_SET) || s.status().map(|x| x.as_str()) == Some("DELETED")));
    assert_eq!(full_state(&account_admin(&emu, &org.legacy_account).await).await, legacy_before);
}

/// Point 6 and auto-deployment: an account moved into a targeted OU after the bootstrap gets its stack instance
/// from CloudFormation (no wfboot run), and `verify --org-unit` shows it current with the roles' checks passing.
#[tokio::test]
async fn an_account_moved_into_the_ou_after_bootstrap_is_deployed_by_cloudformation_and_verify_shows_it_current() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    let w = ous(&[&org.workloads]);
    let out = run(&emu, &[&["bootstrap", "--yes"][..], &w].concat());
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let late = account(&org.client, &org.root, "late", &org.root).await;
    org.client
        .move_account()
        .account_id(&late)
        .source_parent_id(&org.root)
        .destination_parent_id(&org.workloads)
        .send()
        .await
        .unwrap();
    // CloudFormation's auto-deployment runs as an operation of its own: wait for it, as a user would.
    let cfn = cfn_client(&emu);
    let mut current = false;
    for _ in 0..100 {
        let listed = cfn.list_stack_instances().stack_set_name(STACK_SET).send().await.unwrap();
        current = listed
            .summaries()
            .iter()
            .any(|i| i.account() == Some(late.as_str()) && i.status().map(|s| s.as_str()) == Some("CURRENT"));
        if current {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(current, "auto-deployment gave {late} no current instance");
    let mark = emu.mark();
    let out = run(&emu, &[&["verify", "--output", "json"][..], &w].concat());
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(out.status.code(), Some(0), "{v}\n{}", stderr(&out));
    crate::schema::assert_valid(&[crate::schema::doc("verify --org-unit", "accounts_result", v.clone())]);
    let rows = v["accounts"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{v}");
    let row = rows.iter().find(|r| r["account_id"] == late.as_str()).unwrap();
    assert_eq!(row["status"], "passed", "{row}");
    assert_eq!(row["stack_instance"]["instance"]["status"], "CURRENT", "{row}");
    assert_eq!(row["result"]["failed"], 0, "the roles' trust and permissions checks ran there: {row}");
    assert!(row["result"]["ok"].as_u64().unwrap() >= 10, "{row}");
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new(), "verify wrote");
    assert!(has_stack(&emu, &late).await);
    // A re-run of bootstrap has nothing to do for it: only the StackSet and the OU are read.
    let mark = emu.mark();
    let out = run(&emu, &[&["bootstrap", "--yes"][..], &w].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("Nothing to do: StackSet wfboot-slim-workflow already matches"), "{}", stderr(&out));
    let sent = emu.requests().into_iter().skip(mark).filter(|r| r.access_key != ADMIN_KEY).count();
    assert!(sent <= 25, "a no-op re-run over 4 accounts sent {sent} calls");
}

/// Point 5: CloudFormation fails an account's instance (a hand-made role, not found in advance with
/// --skip-account-reads): its row is FAILED with CloudFormation's reason and the run exits 1. Once the role is gone
/// the next run deploys that account again (UpdateStackInstances) and exits 0.
#[tokio::test]
async fn a_failed_stack_instance_is_reported_with_cloudformations_reason_and_deployed_again_once_its_cause_is_gone() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    let l = ous(&[&org.legacy]);
    let out = run(&emu, &[&["plan", "--skip-account-reads"][..], &l].concat());
    assert!(stdout(&out).contains("--skip-account-reads: the accounts were not read"), "{}", stdout(&out));
    let out = run(&emu, &[&["bootstrap", "--yes", "--skip-account-reads"][..], &l].concat());
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}\n{err}");
    let reason = "ResourceLogicalId:RoleAWSBatchServiceRole, ResourceType:AWS::IAM::Role, ResourceStatusReason:AWSBatchServiceRole already exists.";
    assert!(err.contains(&format!("stack instance failed: {reason}")), "{err}");
    assert!(row(&text, &org.legacy_account).contains("FAILED"), "{text}");
    let out = run(&emu, &[&["plan"][..], &l].concat());
    assert!(stdout(&out).contains(reason), "plan shows the instance's reason:\n{}", stdout(&out));
    let out = run(&emu, &[&["plan", "--output", "json"][..], &l].concat());
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["accounts"][0]["stack_instance"]["instance"]["status_reason"], reason, "{v}");
    crate::schema::assert_valid(&[crate::schema::doc("plan --org-unit", "accounts_result", v)]);

    account_admin(&emu, &org.legacy_account).await.delete_role().role_name("AWSBatchServiceRole").send().await.unwrap();
    let mark = emu.mark();
    let out = run(&emu, &[&["bootstrap", "--yes"][..], &l].concat());
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(writes_since(&emu, mark), ["cloudformation:UpdateStackInstances"]);
    assert!(row(&stdout(&out), &org.legacy_account).contains("applied 11"), "{}", stdout(&out));
    assert!(has_stack(&emu, &org.legacy_account).await);
}

/// Point 4: an operation another client started on the StackSet (managed execution off, so CloudFormation refuses
/// a second one) is waited for, said on stderr, and the run's own operation then goes through, once.
/// `bootstrap --yes` over the workloads OU, started; returned once one of its requests after `mark` is `seen` (it
/// must be within 60 s, and before wfboot ends).
fn bootstrap_until(
    emu: &Emulator,
    org: &Org,
    mark: usize,
    what: &str,
    seen: impl Fn(&Request) -> bool,
) -> std::process::Child {
    let mut child = emu
        .wfboot_std()
        .args([&["bootstrap", "--yes"][..], &ous(&[&org.workloads])].concat())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let begun = std::time::Instant::now();
    while !emu.wfboot_requests_since(mark).iter().any(&seen) {
        assert!(begun.elapsed().as_secs() < 60, "wfboot never {what}");
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!("wfboot ended before it {what}:\n{}\n{}", stdout(&out), stderr(&out));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

/// Ctrl-C (SIGINT) to `child`, and what it printed until it ended.
fn interrupt(child: std::process::Child) -> std::process::Output {
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    child.wait_with_output().unwrap()
}

/// Another client's StackSet of the default stack (managed execution off, so wfboot has an UpdateStackSet to make),
/// with its CreateStackInstances over the workloads OU running at 60 s an account: still running whenever wfboot
/// meets it, however slow this machine is, until the test settles it (`stacksets_settle`).
async fn another_clients_operation_running(emu: &Emulator, org: &Org) -> aws_sdk_cloudformation::Client {
    let template = stdout(&emu.wfboot().args(["export"]).output().unwrap());
    let cfn = cfn_client(emu);
    use aws_sdk_cloudformation::types::{Capability, DeploymentTargets, ManagedExecution, PermissionModels, Tag};
    cfn.create_stack_set()
        .stack_set_name(STACK_SET)
        .template_body(template)
        .capabilities(Capability::CapabilityNamedIam)
        .permission_model(PermissionModels::ServiceManaged)
        .managed_execution(ManagedExecution::builder().active(false).build())
        .tags(Tag::builder().key("wfboot:stack").value("slim-workflow").build())
        .send()
        .await
        .unwrap();
    emu.control(r#"{"stackset_account_seconds": 60}"#);
    cfn.create_stack_instances()
        .stack_set_name(STACK_SET)
        .deployment_targets(DeploymentTargets::builder().organizational_unit_ids(&org.workloads).build())
        .regions("us-east-1")
        .send()
        .await
        .unwrap();
    cfn
}

#[tokio::test]
async fn an_operation_already_running_on_the_stack_set_is_waited_for_and_then_the_update_goes_through_once() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    // The other client's operation runs until wfboot has been refused once, then ends; wfboot's own operation is
    // quick again.
    let cfn = another_clients_operation_running(&emu, &org).await;
    let mark = emu.mark();
    let child = bootstrap_until(&emu, &org, mark, "met the running operation", |r| {
        r.action == "UpdateStackSet" && r.status == Some(409)
    });
    emu.control(r#"{"stackset_account_seconds": 0.2}"#);
    emu.control(r#"{"stacksets_settle": true}"#);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{}\n{err}", stdout(&out));
    assert!(
        err.contains(
            "another operation is running (OperationInProgressException); waiting for it before UpdateStackSet"
        ),
        "{err}"
    );
    let updates: Vec<Option<u64>> =
        emu.requests().into_iter().skip(mark).filter(|r| r.action == "UpdateStackSet").map(|r| r.status).collect();
    assert!(updates.len() >= 2 && updates[..updates.len() - 1].iter().all(|s| *s == Some(409)), "{updates:?}");
    assert_eq!(updates.last(), Some(&Some(200)), "{updates:?}");
    let set = cfn.describe_stack_set().stack_set_name(STACK_SET).send().await.unwrap();
    assert_eq!(set.stack_set().unwrap().managed_execution().and_then(|m| m.active()), Some(true));
}

/// Ctrl-C while wfboot waits for another client's operation: exit 130, and its own write was never started.
#[tokio::test]
async fn ctrl_c_while_waiting_for_another_operation_exits_130_and_starts_nothing() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    another_clients_operation_running(&emu, &org).await;
    let mark = emu.mark();
    let child = bootstrap_until(&emu, &org, mark, "met the running operation", |r| r.status == Some(409));
    let out = interrupt(child);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted while waiting for another operation"), "{err}");
    let accepted: Vec<String> = emu
        .wfboot_requests_since(mark)
        .into_iter()
        .filter(|r| r.write && r.service == "cloudformation" && r.status == Some(200))
        .map(|r| r.action)
        .collect();
    assert_eq!(accepted, Vec::<String>::new(), "a write of this run was started");
    emu.control(r#"{"stacksets_settle": true}"#);
}

/// Ctrl-C while wfboot follows its operation: the run ends as interrupted (exit 130), naming the operation and the
/// command that would stop it, and stops nothing: CloudFormation goes on with the operation without this process.
#[tokio::test]
async fn ctrl_c_while_following_an_operation_exits_130_naming_it_and_the_operation_goes_on() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    // 60 s an account: the operation is still running whenever the interrupt comes.
    emu.control(r#"{"stackset_account_seconds": 60}"#);
    let mark = emu.mark();
    let child =
        bootstrap_until(&emu, &org, mark, "followed its operation", |r| r.action == "DescribeStackSetOperation");
    let out = interrupt(child);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted while following operation"), "{err}");
    assert!(err.contains("it goes on in CloudFormation"), "{err}");
    let stop = format!("aws cloudformation stop-stack-set-operation --stack-set-name {STACK_SET} --operation-id ");
    assert!(err.contains(&stop), "{err}");
    let sent: Vec<String> = emu.wfboot_requests_since(mark).into_iter().map(|r| r.action).collect();
    assert!(!sent.iter().any(|a| a == "StopStackSetOperation"), "{sent:?}");
    // The operation was left running, and CloudFormation ends it (the emulator's settle).
    let cfn = cfn_client(&emu);
    let running = cfn.list_stack_set_operations().stack_set_name(STACK_SET).send().await.unwrap();
    let statuses =
        |out: &aws_sdk_cloudformation::operation::list_stack_set_operations::ListStackSetOperationsOutput| {
            out.summaries().iter().map(|o| o.status().map(|s| s.as_str().to_string())).collect::<Vec<_>>()
        };
    assert_eq!(statuses(&running), [Some("RUNNING".to_string())]);
    emu.control(r#"{"stacksets_settle": true}"#);
    let ended = cfn.list_stack_set_operations().stack_set_name(STACK_SET).send().await.unwrap();
    assert_eq!(statuses(&ended), [Some("SUCCEEDED".to_string())]);
}

/// Point 3: a service-linked role that exists in an account gets CreateServiceLinkedRoles=false for that account
/// instead of a failed instance; check --org-unit says so, and the management account in scope (the root as target)
/// is named with the single-account command for it.
#[tokio::test]
async fn an_existing_service_linked_role_gets_the_parameter_override_and_the_management_account_is_named() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    let with_slr = &org.workload_accounts[0];
    account_admin(&emu, with_slr)
        .await
        .create_service_linked_role()
        .aws_service_name("batch.amazonaws.com")
        .send()
        .await
        .unwrap();
    let w = ous(&[&org.workloads]);
    let out = run(&emu, &[&["check"][..], &w].concat());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.contains(&format!("account {with_slr} (w0): CreateServiceLinkedRoles=false")), "{text}");
    let out = run(&emu, &[&["check", "--output", "json"][..], &w].concat());
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    crate::schema::assert_valid(&[crate::schema::doc("check --org-unit", "org_units_check_result", v)]);
    let out = run(&emu, &[&["bootstrap", "--yes"][..], &w].concat());
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let cfn = cfn_client(&emu);
    let instance = cfn
        .describe_stack_instance()
        .stack_set_name(STACK_SET)
        .stack_instance_account(with_slr)
        .stack_instance_region("us-east-1")
        .send()
        .await
        .unwrap();
    let instance = instance.stack_instance().unwrap();
    assert_eq!(instance.status().map(|s| s.as_str()), Some("CURRENT"), "{instance:?}");
    let overrides: Vec<(&str, &str)> = instance
        .parameter_overrides()
        .iter()
        .map(|p| (p.parameter_key().unwrap_or_default(), p.parameter_value().unwrap_or_default()))
        .collect();
    assert_eq!(overrides, [("CreateServiceLinkedRoles", "false")]);
    for other in &org.workload_accounts[1..] {
        let iam = account_admin(&emu, other).await;
        let slrs = iam.list_roles().path_prefix("/aws-service-role/batch.amazonaws.com/").send().await.unwrap();
        assert_eq!(slrs.roles().len(), 1, "the stack made Batch's service-linked role in {other}");
    }

    // The whole organisation: the management account is named, never deployed to.
    let out = run(&emu, &[&["plan", "--skip-account-reads"][..], &ous(&[&org.root])].concat());
    let text = stdout(&out);
    let management = row(&text, ACCOUNT);
    assert!(management.contains("held back") && management.contains("the organisation's management account"), "{text}");
    assert!(text.contains("bootstrap it with `wfboot bootstrap` run there"), "{text}");
}

/// Point 3: the caller's CloudFormation calls are simulated before any write (as the IAM calls are): an operator
/// denied cloudformation:CreateStackInstances is stopped with the call named, nothing written.
#[tokio::test]
async fn a_caller_who_may_not_create_stack_instances_is_stopped_before_any_cloudformation_write() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    let iam = emu.admin().await;
    iam.create_user().user_name("ops").send().await.unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "cloudformation:CreateStackInstances", "Resource": "*"}]});
    iam.put_user_policy().user_name("ops").policy_name("p").policy_document(policy.to_string()).send().await.unwrap();
    let key = iam.create_access_key().user_name("ops").send().await.unwrap().access_key.unwrap();
    let mark = emu.mark();
    let out = emu
        .wfboot()
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key)
        .args([&["bootstrap", "--yes"][..], &ous(&[&org.workloads])].concat())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cloudformation:CreateStackInstances on arn:aws:cloudformation:us-east-1:123456789012:stackset/wfboot-slim-workflow:*"), "{err}");
    assert!(err.contains("simulated for arn:aws:iam::123456789012:user/ops"), "{err}");
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new());
}

/// Point 7: destroy never strands a workload: an account whose Lambda function uses the stack's role is held back,
/// named with the function, and its instance kept; the others' instances are deleted (DIFFERENCE); `--force` then
/// deletes it too, and the StackSet once none is left.
#[tokio::test]
async fn destroy_holds_back_the_account_whose_role_a_function_uses_and_force_deletes_it_and_then_the_stack_set() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    let w = ous(&[&org.workloads]);
    let out = run(&emu, &[&["bootstrap", "--yes"][..], &w].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let used = &org.workload_accounts[1];
    let config = assumed_config(&emu, ADMIN_KEY, "admin-secret", used, "OrganizationAccountAccessRole").await;
    aws_sdk_lambda::Client::new(&config)
        .create_function()
        .function_name("ingest")
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(format!("arn:aws:iam::{used}:role/SLIM-Extras_for_Lambda"))
        .handler("index.handler")
        .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(lambda_zip().into()).build())
        .send()
        .await
        .unwrap();

    let out = run(&emu, &[&["destroy", "--dry-run", "--output", "json"][..], &w].concat());
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    crate::schema::assert_valid(&[crate::schema::doc("destroy --org-unit --dry-run", "accounts_result", v)]);
    let out = run(&emu, &[&["destroy", "--dry-run"][..], &w].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("role SLIM-Extras_for_Lambda used by Lambda function ingest"), "{}", stdout(&out));

    let mark = emu.mark();
    let out = run(&emu, &[&["destroy", "--yes"][..], &w].concat());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "held back: {text}\n{}", stderr(&out));
    let held = row(&text, used);
    assert!(
        held.contains("held back") && held.contains("SLIM-Extras_for_Lambda used by Lambda function ingest"),
        "{text}"
    );
    assert_eq!(writes_since(&emu, mark), ["cloudformation:DeleteStackInstances"], "the StackSet keeps its instance");
    assert!(has_stack(&emu, used).await);
    for a in org.workload_accounts.iter().filter(|a| *a != used) {
        assert!(!has_stack(&emu, a).await, "{a}");
    }
    let ops = operations(&emu).await;
    let delete = ops.iter().find(|o| o["action"] == "DELETE").unwrap();
    assert_eq!((delete["filter"].as_str(), delete["accounts"].clone()), (Some("DIFFERENCE"), json!([used])), "{ops:?}");

    let out = run(&emu, &[&["destroy", "--yes", "--force"][..], &w].concat());
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert!(!has_stack(&emu, used).await);
    assert!(stderr(&out).contains("StackSet wfboot-slim-workflow deleted."), "{}", stderr(&out));
    let out = run(&emu, &[&["destroy", "--yes"][..], &w].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Nothing to destroy: there is no StackSet wfboot-slim-workflow."),
        "{}",
        stderr(&out)
    );
}

/// Point 4: a write whose answer is lost (the emulator applies it, then drops the connection) is resent by the SDK
/// with the same OperationId (CreateStackSet: the same ClientRequestToken): CloudFormation answers
/// OperationIdAlreadyExistsException, and wfboot follows that operation; one operation, never two.
#[tokio::test]
async fn writes_whose_answers_are_lost_are_resent_with_their_operation_id_and_never_start_a_second_operation() {
    // Seed 21 at a rate of one in two draws lost, kept, lost, kept for the run's four write attempts (the draw is
    // the emulator's: tools/emulator.py, "Fault draw"; only writes draw with drop-after alone).
    let emu = Emulator::start_with(&["--fault-kinds", "drop-after", "--fault-rate", "0", "--seed", "21"]);
    let org = organisation(&emu, true).await;
    emu.control(r#"{"fault_rate": 0.5}"#);
    let mark = emu.mark();
    let out = run(&emu, &[&["bootstrap", "--yes", "--skip-account-reads"][..], &ous(&[&org.workloads])].concat());
    emu.control(r#"{"fault_rate": 0}"#);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let writes: Vec<(String, Option<String>, Option<u64>)> = emu
        .wfboot_requests_since(mark)
        .into_iter()
        .filter(|r| r.write)
        .map(|r| (r.action, r.fault, r.status))
        .collect();
    let lost = Some("drop-after".to_string());
    assert_eq!(
        writes,
        [
            ("CreateStackSet".to_string(), lost.clone(), None),
            ("CreateStackSet".to_string(), None, Some(200)),
            ("CreateStackInstances".to_string(), lost, None),
            ("CreateStackInstances".to_string(), None, Some(409)),
        ],
        "each write applied, its answer lost, then resent and recognised"
    );
    let listed = cfn_client(&emu).list_stack_set_operations().stack_set_name(STACK_SET).send().await.unwrap();
    assert_eq!(listed.summaries().len(), 1, "one operation: {:?}", listed.summaries());
    for a in &org.workload_accounts {
        assert!(row(&stdout(&out), a).contains("applied 11"), "{}", stdout(&out));
        assert!(has_stack(&emu, a).await);
    }
}

#[tokio::test]
async fn an_ou_whose_scp_denies_what_the_template_creates_is_refused_before_any_cloudformation_write() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    let mark = emu.mark();
    let out = run(&emu, &[&["bootstrap", "--yes"][..], &ous(&[&org.sandbox])].concat());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new(), "not even the StackSet is created");
    assert!(err.contains(&format!("denied by SCP DenyCreateRole ({}) attached to OU /sandbox", org.scp)), "{err}");
    assert!(err.contains("1 of 1 accounts failed"), "{err}");

    // --expect-account over the OUs' accounts: one that is not expected stops the run before any write.
    let mark = emu.mark();
    let w = ous(&[&org.workloads]);
    let out = run(&emu, &[&["bootstrap", "--yes", "--expect-account", &org.workload_accounts[0]][..], &w].concat());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("2 accounts of the OUs are not allowed; nothing was written"), "{err}");
    assert!(err.contains(&format!("account {} is not allowed by --expect-account", org.workload_accounts[1])), "{err}");
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new());
}

#[tokio::test]
async fn without_trusted_access_bootstrap_says_the_one_command_that_enables_it_and_writes_nothing() {
    let emu = Emulator::start();
    let org = organisation(&emu, false).await;
    let mark = emu.mark();
    let out = run(&emu, &[&["bootstrap", "--yes"][..], &ous(&[&org.workloads])].concat());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("trusted access for CloudFormation StackSets is off"), "{err}");
    assert!(err.contains("aws cloudformation activate-organizations-access"), "{err}");
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new());

    let out = run(&emu, &[&["check"][..], &ous(&[&org.workloads])].concat());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}\n{}", stderr(&out));
    let line = text.lines().find(|l| l.contains("trusted access for CloudFormation StackSets")).unwrap();
    assert!(line.ends_with("FAILED"), "{text}");
    assert!(text.contains("activate-organizations-access"), "{text}");
}

#[tokio::test]
async fn check_on_an_account_in_no_organisation_says_none_and_never_unverified_for_the_scps() {
    let emu = Emulator::start();
    let out = run(&emu, &["check", "--skip-user"]);
    let text = stdout(&out);
    let at = text.lines().position(|l| l.starts_with("organisation ")).unwrap_or_else(|| panic!("{text}"));
    let lines: Vec<&str> = text.lines().skip(at).take(2).collect();
    assert!(lines[0].contains("service control policies") && lines[0].ends_with(" ok"), "{text}");
    assert!(lines[1].contains("none: the account is in no organisation"), "{text}");
    assert!(!text.contains("not visible"), "{text}");
    let out = run(&emu, &["check", "--skip-user", "--output", "json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["organisation"], json!({"status": "no_organisation"}));
    crate::schema::assert_valid(&[crate::schema::doc("check in no organisation", "check_result", v)]);
    // The pre-flight says the same before the first write.
    let out = run(&emu, &["bootstrap", "--yes", "--skip-user"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Service control policies: none: the account is in no organisation"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_any_aws_call() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "accounts.txt", "111111111111\n");
    let file = file.to_str().unwrap();
    let allowed = write_file(
        dir.path(),
        "allowed.toml",
        &std::fs::read_to_string(repo().join("profiles/render-worker.toml")).unwrap().replacen(
            "\n[[policy]]",
            "allowed_accounts = [\"111111111111\"]\n\n[[policy]]",
            1,
        ),
    );
    let ou = "ou-ab12-cd34ef56";
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--org-unit", "ou-AB12-cd34ef56"], 64, "organisational unit id"),
        (vec!["--org-unit", "123456789012"], 64, "organisational unit id"),
        (vec!["--org-unit", ou, "--accounts", file, "--assume-role-name", "R"], 64, "cannot be used with"),
        (vec!["--call-as", "delegated-admin"], 64, "--org-unit"),
        (vec!["--org-unit", ou, "--stack-set-name", "1bad_name"], 64, "StackSet name"),
        (vec!["--org-unit", ou, "--deploy-concurrency", "0"], 64, "--deploy-concurrency"),
        (vec!["--org-unit", ou, "--failure-tolerance", "120%"], 64, "percentage"),
        (
            vec![
                "--org-unit",
                ou,
                "--concurrency-mode",
                "strict",
                "--failure-tolerance",
                "1",
                "--deploy-concurrency",
                "5",
            ],
            64,
            "at most --failure-tolerance + 1",
        ),
        (vec!["--org-unit", ou, "--org-unit", ou], 64, "given twice"),
        (vec!["--org-unit", ou, "--assume-role-name", "a/b"], 64, "not a valid IAM role name"),
        (vec!["--org-unit", ou, "--stack", allowed.to_str().unwrap()], 64, "allowed_accounts"),
    ];
    for (args, code, says) in cases {
        for command in ["plan", "bootstrap"] {
            let mark = emu.mark();
            let out = emu.wfboot().arg(command).args(&args).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(code), "{command} {args:?}: {err}");
            assert!(err.contains(says), "{command} {args:?}: {err}");
            assert!(emu.wfboot_requests_since(mark).is_empty(), "{command} {args:?} made calls");
        }
    }
    // bootstrap's flags that only mean something when wfboot writes IAM itself.
    for flag in ["--wait", "--adopt"] {
        let mark = emu.mark();
        let out = emu.wfboot().args(["bootstrap", "--yes", "--org-unit", ou, flag]).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{flag}: {}", stderr(&out));
        assert!(stderr(&out).contains("cannot be used with"), "{flag}: {}", stderr(&out));
        assert!(emu.wfboot_requests_since(mark).is_empty(), "{flag} made calls");
    }
    // An OU that is not in the organisation: Organizations says so, before any write.
    let emu = Emulator::start();
    let o = org_client(&emu);
    o.create_organization().feature_set(OrganizationFeatureSet::All).send().await.unwrap();
    let mark = emu.mark();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--org-unit", ou]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("--org-unit {ou} is not in the organisation")), "{}", stderr(&out));
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new());
}

/// `wfboot` run with the credentials of a session in `account` (OrganizationAccountAccessRole, assumed by the test's
/// admin): a caller in a member account.
async fn as_account<'a>(emu: &'a Emulator, account: &str) -> impl Fn(&[&str]) -> std::process::Output + 'a {
    let config = assumed_config(emu, ADMIN_KEY, "admin-secret", account, "OrganizationAccountAccessRole").await;
    let provider = config.credentials_provider().unwrap();
    let creds = aws_credential_types::provider::ProvideCredentials::provide_credentials(&provider).await.unwrap();
    move |args: &[&str]| {
        emu.wfboot()
            .env("AWS_ACCESS_KEY_ID", creds.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", creds.secret_access_key())
            .env("AWS_SESSION_TOKEN", creds.session_token().unwrap())
            .args(args)
            .output()
            .unwrap()
    }
}

/// A new account in the root, registered as a delegated administrator for `service`. Its
/// OrganizationAccountAccessRole (the test's way in, see [`as_account`]) has AdministratorAccess, as the role
/// Organizations creates has ("Accessing a member account that has a management account access role":
/// https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_accounts_access.html); moto's has none.
async fn delegated_admin(emu: &Emulator, org: &Org, name: &str, service: &str) -> String {
    let out = org.client.create_account().email(format!("{name}@example.com")).account_name(name).send().await.unwrap();
    let id = out.create_account_status().unwrap().account_id().unwrap().to_string();
    org.client.register_delegated_administrator().account_id(&id).service_principal(service).send().await.unwrap();
    account_admin(emu, &id)
        .await
        .attach_role_policy()
        .role_name("OrganizationAccountAccessRole")
        .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
        .send()
        .await
        .unwrap();
    id
}

/// Point 1: from a member account, `--call-as self` (the default) is refused before any write, pointing at
/// `--call-as delegated-admin`.
#[tokio::test]
async fn a_member_account_calling_as_the_management_account_is_refused_before_any_write() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    let member = &org.workload_accounts[0];
    let as_member = as_account(&emu, member).await;
    let l = ous(&[&org.legacy]);
    let mark = emu.mark();
    let out = as_member(&[&["bootstrap", "--yes"][..], &l].concat());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains(&format!("the caller's account {member} is not the organisation's management account")),
        "{err}"
    );
    assert!(err.contains("--call-as delegated-admin"), "{err}");
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new());
}

/// Point 1, `--call-as delegated-admin`: from a member account registered as a delegated administrator for StackSets,
/// the whole run works as from the management account: the OUs and SCPs read (Organizations answers a delegated
/// administrator), plan, bootstrap through CloudFormation with not one IAM write from wfboot, a re-run that writes
/// nothing, verify, destroy. Every CloudFormation call carries CallAs=DELEGATED_ADMIN: the StackSet lives in the
/// management account, and the emulator, as CloudFormation, finds it for this caller only with it.
#[tokio::test]
async fn a_registered_delegated_administrator_plans_bootstraps_verifies_and_destroys_an_ou_as_the_management_account_does(
) {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    let admin = delegated_admin(&emu, &org, "platform", TRUSTED).await;
    let as_admin = as_account(&emu, &admin).await;
    let w = ous(&[&org.workloads]);
    let call_as = ["--call-as", "delegated-admin"];

    // plan: exit 2, nothing written, every account of the OU named.
    let mark = emu.mark();
    let out = as_admin(&[&["plan", "--detailed-exitcode"][..], &w, &call_as].concat());
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new(), "plan wrote");
    assert!(text.contains("StackSet wfboot-slim-workflow (service-managed, us-east-1): create"), "{text}");
    for a in &org.workload_accounts {
        assert!(row(&text, a).contains("11 changes planned"), "{text}");
        assert!(text.contains(&format!("in {}: gets a stack instance: 11 resources", org.workloads)), "{text}");
    }
    assert!(!err.contains("could not be read"), "the accounts were read: {err}");

    // The SCPs are read from here as from the management account: check refuses the sandbox OU, naming the SCP.
    let mark = emu.mark();
    let out = as_admin(&[&["check"][..], &ous(&[&org.sandbox]), &call_as].concat());
    let said = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains(&format!("DenyCreateRole ({}) attached to OU /sandbox", org.scp)), "{said}");
    assert!(!said.contains("not visible"), "{said}");
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new(), "check wrote");

    // bootstrap: CreateStackSet and CreateStackInstances, and nothing else; the roles in every account of the OU.
    let mark = emu.mark();
    let bootstrap_mark = mark;
    let out = as_admin(&[&["bootstrap", "--yes"][..], &w, &call_as].concat());
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    assert_eq!(writes_since(&emu, mark), ["cloudformation:CreateStackInstances", "cloudformation:CreateStackSet"]);
    for a in &org.workload_accounts {
        assert!(row(&text, a).contains("applied 11"), "{text}");
        assert!(has_stack(&emu, a).await, "the roles and instance profile are in {a}");
    }
    assert!(!has_stack(&emu, &admin).await, "the delegated administrator's own account is not in the OU");
    // The StackSet is the management account's, as CloudFormation keeps it.
    let set = cfn_client(&emu).describe_stack_set().stack_set_name(STACK_SET).send().await.unwrap();
    let arn = set.stack_set().unwrap().stack_set_arn().unwrap().to_string();
    assert!(arn.starts_with(&format!("arn:aws:cloudformation:us-east-1:{ACCOUNT}:stackset/{STACK_SET}:")), "{arn}");

    // The re-run writes nothing; its JSON says who called.
    let mark = emu.mark();
    let rerun_mark = mark;
    let out = as_admin(&[&["bootstrap", "--yes", "--output", "json"][..], &w, &call_as].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new(), "the re-run wrote");
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    crate::schema::assert_valid(&[crate::schema::doc("bootstrap --org-unit", "accounts_result", v.clone())]);
    assert_eq!(v["stack_set"]["call_as"], "delegated_admin", "{v}");
    assert_eq!(v["accounts"].as_array().unwrap().len(), 3, "{v}");

    // verify: every instance current, the roles' checks passing.
    let mark = emu.mark();
    let out = as_admin(&[&["verify"][..], &w, &call_as].concat());
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(writes_since(&emu, mark), Vec::<String>::new(), "verify wrote");

    // destroy: the instances and their roles go, then the StackSet.
    let mark = emu.mark();
    let out = as_admin(&[&["destroy", "--yes"][..], &w, &call_as].concat());
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(writes_since(&emu, mark), ["cloudformation:DeleteStackInstances", "cloudformation:DeleteStackSet"]);
    for a in &org.workload_accounts {
        assert!(!has_stack(&emu, a).await, "{a} still has the stack's roles");
    }
    let err = cfn_client(&emu).describe_stack_set().stack_set_name(STACK_SET).send().await.unwrap_err();
    assert_eq!(err.into_service_error().meta().code(), Some("StackSetNotFoundException"));

    // Every CloudFormation call carried CallAs=DELEGATED_ADMIN: without it the StackSet, the management account's,
    // is not found for this caller (StackSetNotFoundException) or a service-managed write is refused
    // (ValidationError). From the re-run on (the StackSet exists), every one was answered 2xx, and each kind of call
    // was made.
    let cfn: Vec<(usize, Request)> = emu
        .requests()
        .into_iter()
        .enumerate()
        .skip(bootstrap_mark)
        .filter(|(_, r)| r.service == "cloudformation" && r.access_key != ADMIN_KEY)
        .collect();
    let ok = |r: &Request| r.status.is_some_and(|s| (200..300).contains(&s));
    let mut made: Vec<&str> = cfn.iter().filter(|(_, r)| ok(r)).map(|(_, r)| r.action.as_str()).collect();
    made.sort();
    made.dedup();
    assert_eq!(
        made,
        [
            "CreateStackInstances",
            "CreateStackSet",
            "DeleteStackInstances",
            "DeleteStackSet",
            "DescribeOrganizationsAccess",
            "DescribeStackSet",
            "DescribeStackSetOperation",
            "ListStackInstances",
            "ListStackSetOperationResults"
        ]
    );
    let refused: Vec<String> = cfn
        .iter()
        .filter(|(i, r)| *i >= rerun_mark && !ok(r))
        .map(|(_, r)| format!("{} {:?}", r.action, r.status))
        .collect();
    assert_eq!(refused, Vec::<String>::new(), "CloudFormation refused calls after the StackSet was made");
}

/// `--call-as delegated-admin` from an account that is not a delegated administrator for StackSets (one for no
/// service, one for another service) stops before any write with the one command that registers it; from the
/// management account it says to use `--call-as self`.
#[tokio::test]
async fn calling_as_delegated_admin_from_an_unregistered_account_names_the_register_command_and_writes_nothing() {
    let emu = Emulator::start();
    let org = organisation(&emu, true).await;
    let other_service = delegated_admin(&emu, &org, "security", "guardduty.amazonaws.com").await;
    let w = ous(&[&org.workloads]);
    for account in [&org.workload_accounts[0], &other_service] {
        let as_member = as_account(&emu, account).await;
        let mark = emu.mark();
        let out = as_member(&[&["bootstrap", "--yes", "--call-as", "delegated-admin"][..], &w].concat());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{account}: {err}");
        assert!(
            err.contains(&format!(
                "the caller's account {account} is not registered as a delegated administrator for CloudFormation \
                 StackSets"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "aws organizations register-delegated-administrator --service-principal {TRUSTED} --account-id \
                 {account}"
            )),
            "{err}"
        );
        assert_eq!(writes_since(&emu, mark), Vec::<String>::new(), "{account}");
        assert!(
            emu.requests().into_iter().skip(mark).all(|r| r.service != "cloudformation"),
            "{account}: CloudFormation was called"
        );
    }
    let mark = emu.mark();
    let out = run(&emu, &[&["plan", "--call-as", "delegated-admin"][..], &w].concat());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains(&format!("the caller's account {ACCOUNT} is the organisation's management account")), "{err}");
    assert!(err.contains("--call-as self"), "{err}");
    assert!(emu.requests().into_iter().skip(mark).all(|r| r.service != "cloudformation"), "CloudFormation was called");
}
