//! `--output json` against its published schema, `docs/output.schema.json` (JSON Schema draft 2020-12): real
//! results of every command, produced by the binary against the emulator, must validate, and changed ones must not.
//!
//! The validator is the `jsonschema` package of the repository's venv (pinned in tools/requirements.txt), run
//! through `tools/validate_output.py` as tests/it/export.rs runs cfn-lint: no Rust dependency to compile.

use std::io::Write;
use std::process::{Command as StdCommand, Stdio};

use crate::common::*;
use serde_json::{json, Value};

fn python() -> std::path::PathBuf {
    let path = repo().join(".venv/bin/python");
    assert!(
        path.exists(),
        "the venv is not installed at {}: run scripts/setup-emulator.sh, which installs tools/requirements.txt \
         (jsonschema included) into .venv (scripts/test.sh does it for you)",
        path.display()
    );
    path
}

/// A document to validate: a name for messages, the `$defs` entry it must match, and the document.
pub(crate) struct Doc {
    name: String,
    def: &'static str,
    document: Value,
}

pub(crate) fn doc(name: &str, def: &'static str, document: Value) -> Doc {
    Doc { name: name.to_string(), def, document }
}

/// The validator's errors for each document, by name (empty when valid).
fn validate(docs: &[Doc]) -> Vec<(String, Vec<String>)> {
    let input: Vec<Value> =
        docs.iter().map(|d| json!({"name": d.name, "def": d.def, "document": d.document})).collect();
    let mut child = StdCommand::new(python())
        .arg(repo().join("tools/validate_output.py"))
        .arg(repo().join("docs/output.schema.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tools/validate_output.py");
    child.stdin.take().unwrap().write_all(Value::Array(input).to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(2), "the schema itself is invalid: {}", stdout(&out));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("validator printed no JSON ({e}): {}\n{}", stdout(&out), stderr(&out)));
    results
        .iter()
        .map(|r| {
            let errors = r["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
            (r["name"].as_str().unwrap().to_string(), errors)
        })
        .collect()
}

pub(crate) fn assert_valid(docs: &[Doc]) {
    let failures: Vec<String> = validate(docs)
        .into_iter()
        .filter(|(_, errors)| !errors.is_empty())
        .map(|(name, errors)| format!("{name}:\n  {}", errors.join("\n  ")))
        .collect();
    assert!(failures.is_empty(), "outputs that do not match docs/output.schema.json:\n{}", failures.join("\n"));
}

/// stdout of a successful (or `ok_codes`) run, parsed.
fn json_of(out: &std::process::Output, ok_codes: &[i32]) -> Value {
    let code = out.status.code().unwrap_or(-1);
    assert!(code == 0 || ok_codes.contains(&code), "exit {code}: {}", stderr(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", stdout(out)))
}

fn run(emu: &Emulator, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    json_of(&emu.wfboot().args(&all).output().unwrap(), &[])
}

/// Every command's JSON result through a bootstrap's life — fresh plan, check, bootstrap, no-op plan and bootstrap,
/// hardening and its reversal, whoami, instances, attach, the stack list and a rendered stack — matches the schema.
#[tokio::test]
async fn real_outputs_of_every_command_match_the_published_schema() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let mut docs = Vec::new();
    docs.push(doc("fresh plan", "plan_result", run(&emu, &["plan", "--user-name", "demo"])));
    docs.push(doc("fresh plan --harden", "plan_result", run(&emu, &["plan", "--user-name", "demo", "--harden"])));
    let check = emu.wfboot().args(["check", "--user-name", "demo", "--harden", "--output", "json"]).output().unwrap();
    docs.push(doc("check --harden", "check_result", json_of(&check, &[3])));
    let bootstrap = ["bootstrap", "--yes", "--user-name", "demo"];
    docs.push(doc("fresh bootstrap", "bootstrap_result", run(&emu, &bootstrap)));
    docs.push(doc("no-op plan", "plan_result", run(&emu, &["plan", "--user-name", "demo"])));
    docs.push(doc("no-op bootstrap", "bootstrap_result", run(&emu, &bootstrap)));
    let hardened = ["bootstrap", "--yes", "--user-name", "demo", "--harden"];
    docs.push(doc("bootstrap --harden", "bootstrap_result", run(&emu, &hardened)));
    docs.push(doc("plan undoing --harden", "plan_result", run(&emu, &["plan", "--skip-user"])));
    let check = emu.wfboot().args(["check", "--skip-user", "--output", "json"]).output().unwrap();
    docs.push(doc("check", "check_result", json_of(&check, &[3])));
    // A read-only operator: the emulator's simulator denies the writes, so the report has failed rows and the
    // note on what would grant them.
    let iam = emu.admin().await;
    iam.create_user().user_name("reader").send().await.unwrap();
    let read_only = "arn:aws:iam::aws:policy/IAMReadOnlyAccess";
    iam.attach_user_policy().user_name("reader").policy_arn(read_only).send().await.unwrap();
    let key = iam.create_access_key().user_name("reader").send().await.unwrap().access_key.unwrap();
    let check = emu
        .wfboot()
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key)
        .args(["check", "--user-name", "demo", "--output", "json"])
        .output()
        .unwrap();
    docs.push(doc("check by a read-only operator", "check_result", json_of(&check, &[3])));
    docs.push(doc("whoami", "whoami_result", run(&emu, &["whoami"])));
    docs.push(doc("stacks list", "stacks_list", run(&emu, &["stacks", "list"])));
    docs.push(doc("stacks show", "stack_result", run(&emu, &["stacks", "show", "slim-workflow"])));
    docs.push(doc(
        "stacks show --harden offline",
        "stack_result",
        run(
            &emu,
            &["stacks", "show", "render-worker", "--account-id", "111122223333", "--partition", "aws-cn", "--harden"],
        ),
    ));
    docs.push(doc("instances (none)", "instances_list", run(&emu, &["instances"])));
    #[cfg(feature = "ec2")]
    {
        let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"));
        let launched = ec2.run_instances().image_id("ami-12c6146b").min_count(1).max_count(1).send().await.unwrap();
        let id = launched.instances()[0].instance_id().unwrap().to_string();
        let attach = ["attach", "--instance-id", &id, "--instance-profile", "SLIM-Extras_ECS_for_EC2"];
        docs.push(doc("attach", "attach_result", run(&emu, &attach)));
        docs.push(doc("attach again (unchanged)", "attach_result", run(&emu, &attach)));
        docs.push(doc("instances", "instances_list", run(&emu, &["instances"])));
    }

    // The lifecycle did what the names say, so the schema was shown the interesting cases.
    let by_name = |n: &str| &docs.iter().find(|d| d.name == n).unwrap().document;
    let refused = by_name("check by a read-only operator");
    assert_eq!(refused["passed"], false, "{refused}");
    assert!(refused["grant_note"].as_str().unwrap().contains("--print-policy"), "{refused}");
    assert!(by_name("check").get("grant_note").is_none(), "absent when nothing is denied");
    assert!(by_name("fresh plan")["findings"].as_array().unwrap().len() > 1);
    assert!(by_name("fresh plan --harden")["hardening"].as_array().unwrap().len() == 5);
    assert_eq!(by_name("bootstrap --harden")["summary"]["updated"], 3);
    assert_eq!(by_name("plan undoing --harden")["summary"]["changes"], 3);
    for d in &docs {
        if d.document.is_object() {
            assert_eq!(d.document["schema_version"], 1, "{}", d.name);
            assert_eq!(d.document["kind"], d.def.trim_end_matches("_result"), "{}", d.name);
        }
    }
    assert_valid(&docs);

    // The note is a non-empty string where present.
    let mut drifted = Vec::new();
    for note in [json!(""), json!(3), json!(["a"])] {
        let mut d = refused.clone();
        d["grant_note"] = note.clone();
        drifted.push(doc(&format!("grant_note {note}"), "check_result", d));
    }
    for (name, errors) in validate(&drifted) {
        assert!(!errors.is_empty(), "{name}: validated, but the schema should have rejected it");
    }
}

/// The schema is strict enough to notice drift: an extra field, a renamed or missing one, a wrong type, an unknown
/// value or another version fails, at the top and deep inside.
#[test]
fn outputs_that_drift_from_the_schema_fail_validation() {
    let out = wfboot_isolated()
        .args(["stacks", "show", "slim-workflow", "--account-id", "111122223333", "--harden", "--output", "json"])
        .output()
        .unwrap();
    let shown = json_of(&out, &[]);
    let list = json_of(&wfboot_isolated().args(["stacks", "--output", "json"]).output().unwrap(), &[]);
    assert_valid(&[doc("stacks show", "stack_result", shown.clone()), doc("stacks list", "stacks_list", list.clone())]);

    let mut mutants: Vec<(&str, Value)> = Vec::new();
    let mut m = shown.clone();
    m["unexpected"] = json!(true);
    mutants.push(("an extra top-level field", m));
    let mut m = shown.clone();
    let roles = m.as_object_mut().unwrap().remove("roles").unwrap();
    m["role"] = roles;
    mutants.push(("a renamed field", m));
    let mut m = shown.clone();
    m.as_object_mut().unwrap().remove("service_linked_roles");
    mutants.push(("a missing field", m));
    let mut m = shown.clone();
    m["schema_version"] = json!(2);
    mutants.push(("another schema version", m));
    let mut m = shown.clone();
    m["kind"] = json!("plan");
    mutants.push(("another kind", m));
    let mut m = shown.clone();
    m["target"]["account_id"] = json!(111122223333u64);
    mutants.push(("a number where a string belongs", m));
    let mut m = shown.clone();
    m["hardening"][0]["outcome"] = json!("hardened");
    mutants.push(("an unknown enum value, deep inside", m));
    let mut m = shown.clone();
    m["roles"][0]["extra"] = json!("x");
    mutants.push(("an extra field, deep inside", m));
    let mut m = list.clone();
    m[0]["roles"] = json!("5");
    mutants.push(("a list item of the wrong type", m));

    let docs: Vec<Doc> = mutants
        .iter()
        .map(|(name, v)| doc(name, if v.is_array() { "stacks_list" } else { "stack_result" }, v.clone()))
        .collect();
    for (name, errors) in validate(&docs) {
        assert!(!errors.is_empty(), "{name}: validated, but the schema should have rejected it");
    }
}

/// A changed plan or bootstrap report from a real account fails too (the plan, its changes and its findings are
/// the most used output).
#[tokio::test]
async fn a_plan_or_bootstrap_with_a_changed_change_or_finding_fails_validation() {
    let emu = Emulator::start();
    let plan = run(&emu, &["plan", "--skip-user"]);
    assert_valid(&[doc("plan", "plan_result", plan.clone())]);
    // The first role: created and attached, two changes.
    let role = plan["resources"].as_array().unwrap().iter().position(|r| r["kind"] == "role").unwrap();
    assert!(plan["resources"][role]["changes"].as_array().unwrap().len() >= 2, "{plan}");
    let mut renamed = plan.clone();
    renamed["resources"][role]["changes"][0]["call"] = json!("MakeRole");
    let mut extra = plan.clone();
    extra["resources"][role]["changes"][1]["force"] = json!(true);
    let mut finding = plan.clone();
    finding["findings"][0]["severity"] = json!("critical");
    let mut summary = plan.clone();
    summary["summary"].as_object_mut().unwrap().remove("needing_consent");
    let mut top = plan.clone();
    top["warnings"] = json!([]);
    let report = run(&emu, &["bootstrap", "--yes", "--skip-user"]);
    assert_valid(&[doc("bootstrap", "bootstrap_result", report.clone())]);
    let mut applied = report.clone();
    applied["applied"][0]["duration_ms"] = json!(3);
    let mut outcome = report.clone();
    outcome["applied"][0]["outcome"] = json!("maybe");
    let mut nested = report.clone();
    nested["plan"]["findings"] = json!([]);
    let docs = [
        doc("an unknown call", "plan_result", renamed),
        doc("an extra field on a change", "plan_result", extra),
        doc("an unknown severity", "plan_result", finding),
        doc("a summary without needing_consent", "plan_result", summary),
        doc("an extra top-level field on a plan", "plan_result", top),
        doc("an extra field on an applied change", "bootstrap_result", applied),
        doc("an unknown outcome", "bootstrap_result", outcome),
        doc("findings inside the bootstrap's plan", "bootstrap_result", nested),
    ];
    for (name, errors) in validate(&docs) {
        assert!(!errors.is_empty(), "{name}: validated, but the schema should have rejected it");
    }
}

/// `destroy --output json` through a destroy's life: a dry run of a bootstrapped account whose stack others
/// have added to (so every kind of removal is planned), the destroy, the service-linked roles on request, and
/// a destroy with nothing left to delete. Then drifted reports fail.
#[tokio::test]
async fn destroy_results_match_the_published_schema_and_drifted_ones_do_not() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    run(&emu, &["bootstrap", "--yes", "--user-name", "demo"]);
    // What others attached and added (as in tests/it/destroy.rs): a managed and an inline policy on a stack role,
    // another version of the stack's policy, and the stack's policy on a group and on the user.
    let iam = emu.admin().await;
    let arn = format!("arn:aws:iam::{ACCOUNT}:policy/LambdaBatchExecutionPolicy");
    iam.attach_role_policy()
        .role_name("SLIM-Extras_for_Lambda")
        .policy_arn("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
        .send()
        .await
        .unwrap();
    let document =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"batch:ListJobs","Resource":"*"}]}"#;
    iam.put_role_policy()
        .role_name("SLIM-Extras_for_Lambda")
        .policy_name("extra")
        .policy_document(document)
        .send()
        .await
        .unwrap();
    iam.create_policy_version().policy_arn(&arn).policy_document(document).send().await.unwrap();
    iam.create_group().group_name("ops").send().await.unwrap();
    iam.attach_group_policy().group_name("ops").policy_arn(&arn).send().await.unwrap();
    iam.attach_user_policy().user_name("demo").policy_arn(&arn).send().await.unwrap();

    // The stack's policy on a group and a user outside the stack is held back, naming them; --force deletes it.
    let held = run(&emu, &["destroy", "--dry-run"]);
    assert_eq!(held["held_back"][0]["name"], "LambdaBatchExecutionPolicy", "{held:#}");
    assert_eq!(held["summary"]["held_back"], 1);
    let docs = vec![
        doc("destroy --dry-run, a policy held back", "destroy_result", held),
        doc("destroy --dry-run", "destroy_result", run(&emu, &["destroy", "--dry-run", "--force"])),
        doc("destroy", "destroy_result", run(&emu, &["destroy", "--yes", "--force"])),
        doc(
            "destroy --include-service-linked-roles",
            "destroy_result",
            run(&emu, &["destroy", "--yes", "--include-service-linked-roles"]),
        ),
        doc("destroy again (nothing to destroy)", "destroy_result", run(&emu, &["destroy", "--yes"])),
    ];

    // The runs did what the names say, so the schema was shown the interesting cases.
    let by_name = |n: &str| &docs.iter().find(|d| d.name == n).unwrap().document;
    let dry = by_name("destroy --dry-run");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["applied"], json!([]));
    let calls: std::collections::BTreeSet<&str> = dry["plan"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["changes"].as_array().unwrap())
        .map(|c| c["call"].as_str().unwrap())
        .collect();
    for call in [
        "DeletePolicyVersion",
        "RemoveRoleFromInstanceProfile",
        "DetachRolePolicy",
        "DeleteRolePolicy",
        "DetachUserPolicy",
        "DetachGroupPolicy",
        "DeletePolicy",
        "DeleteInstanceProfile",
        "DeleteRole",
    ] {
        assert!(calls.contains(call), "the dry run plans no {call}: {calls:?}");
    }
    let actions: std::collections::BTreeSet<&str> =
        dry["plan"]["resources"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["delete", "left_alone"].into());
    let destroyed = by_name("destroy");
    assert_eq!(destroyed["verified"], true);
    assert_eq!(destroyed["applied"].as_array().unwrap().len() as u64, dry["plan"]["summary"]["changes"]);
    assert!(destroyed["applied"].as_array().unwrap().iter().all(|a| a["outcome"] == "done"));
    let slr = by_name("destroy --include-service-linked-roles");
    assert_eq!(slr["summary"]["deleted"], 3);
    assert!(slr["applied"].as_array().unwrap().iter().all(|a| a["call"] == "DeleteServiceLinkedRole"));
    let again = by_name("destroy again (nothing to destroy)");
    assert_eq!(again["plan"]["summary"]["changes"], 0);
    assert!(again["plan"]["resources"].as_array().unwrap().iter().any(|r| r["action"] == "absent"));
    for d in &docs {
        assert_eq!(d.document["schema_version"], 1, "{}", d.name);
        assert_eq!(d.document["kind"], "destroy", "{}", d.name);
    }
    assert_valid(&docs);

    // Drifted: an extra field on a resource, an unknown action, a bootstrap call in a destroy plan, an extra
    // field on an applied change, a reason on a resource that is deleted, a summary field missing.
    let delete = |v: &Value| v["plan"]["resources"].as_array().unwrap().iter().position(|r| r["action"] == "delete");
    let i = delete(dry).unwrap();
    let mut extra = dry.clone();
    extra["plan"]["resources"][i]["force"] = json!(true);
    let mut action = dry.clone();
    action["plan"]["resources"][i]["action"] = json!("keep");
    let mut create = dry.clone();
    create["plan"]["resources"][i]["changes"][0] =
        json!({"call": "CreateInstanceProfile", "name": "x", "path": "/", "needs_consent": false});
    let mut applied = destroyed.clone();
    applied["applied"][0]["duration_ms"] = json!(3);
    let mut reason = dry.clone();
    reason["plan"]["resources"][i]["reason"] = json!("why not");
    let mut summary = again.clone();
    summary["summary"].as_object_mut().unwrap().remove("absent");
    let mut left = dry.clone();
    left["left_alone"][0]["kind"] = json!("group");
    let docs = [
        doc("an extra field on a destroy resource", "destroy_result", extra),
        doc("an unknown destroy action", "destroy_result", action),
        doc("a bootstrap call in a destroy plan", "destroy_result", create),
        doc("an extra field on an applied removal", "destroy_result", applied),
        doc("a reason on a deleted resource", "destroy_result", reason),
        doc("a destroy summary without absent", "destroy_result", summary),
        doc("an unknown kind left alone", "destroy_result", left),
    ];
    for (name, errors) in validate(&docs) {
        assert!(!errors.is_empty(), "{name}: validated, but the schema should have rejected it");
    }
}

const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
const DEPLOYER: &str = "WfbootDeployer";

/// The multi-account result (`plan|check|bootstrap --accounts FILE --assume-role-name NAME`) over three accounts,
/// the operator user `demo` missing in the third so that its row fails: plan, check, bootstrap, and plan and
/// check again once bootstrapped. Then drifted results fail.
#[tokio::test]
async fn multi_account_results_match_the_published_schema_and_drifted_ones_do_not() {
    let emu = Emulator::start();
    for account in &ACCOUNTS[..2] {
        account_admin(&emu, account).await.create_user().user_name("demo").send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "accounts.txt",
        &format!("{}  # prod\n{}\n{}  # staging\n", ACCOUNTS[0], ACCOUNTS[1], ACCOUNTS[2]),
    );
    let multi = |args: &[&str], ok_codes: &[i32]| {
        let out = emu
            .wfboot()
            .args(args)
            .args(["--output", "json", "--assume-role-name", DEPLOYER, "--accounts"])
            .arg(&file)
            .output()
            .unwrap();
        json_of(&out, ok_codes)
    };
    let demo = ["--user-name", "demo"];
    let docs = vec![
        doc("plan, one account failed", "accounts_result", multi(&["plan", demo[0], demo[1]], &[1])),
        doc("check, one account failed", "accounts_result", multi(&["check", demo[0], demo[1]], &[1])),
        doc("bootstrap, one account failed", "accounts_result", multi(&["bootstrap", "--yes", demo[0], demo[1]], &[1])),
        doc("plan, two accounts without changes", "accounts_result", multi(&["plan", "--skip-user"], &[])),
        doc(
            "bootstrap, two accounts without changes",
            "accounts_result",
            multi(&["bootstrap", "--yes", "--skip-user"], &[]),
        ),
        doc("check --harden", "accounts_result", multi(&["check", "--skip-user", "--harden"], &[])),
    ];

    // The runs did what the names say, so the schema was shown every row of every command.
    let by_name = |n: &str| &docs.iter().find(|d| d.name == n).unwrap().document;
    let statuses = |n: &str| -> Vec<String> {
        by_name(n)["accounts"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(statuses("plan, one account failed"), ["changes_planned", "changes_planned", "failed"]);
    assert_eq!(statuses("check, one account failed"), ["passed", "passed", "failed"]);
    assert_eq!(statuses("bootstrap, one account failed"), ["applied", "applied", "failed"]);
    assert_eq!(statuses("plan, two accounts without changes"), ["no_changes", "no_changes", "changes_planned"]);
    assert_eq!(statuses("bootstrap, two accounts without changes"), ["no_changes", "no_changes", "applied"]);
    assert_eq!(statuses("check --harden"), ["passed", "passed", "passed"]);
    let failed = &by_name("bootstrap, one account failed")["accounts"][2];
    assert!(failed["error"].as_str().unwrap().contains("does not exist"), "{failed}");
    assert!(failed.get("result").is_none() && failed["changes"].is_null(), "{failed}");
    let applied = &by_name("bootstrap, one account failed")["accounts"][0];
    assert_eq!(applied["name"], "prod");
    assert!(applied["result"]["applied"].as_array().unwrap().len() > 20, "{applied}");
    assert!(by_name("check --harden")["accounts"][1]["result"]["hardening"].as_array().is_some_and(|h| !h.is_empty()));
    for d in &docs {
        assert_eq!(d.document["schema_version"], 1, "{}", d.name);
        assert_eq!(d.document["kind"], "accounts", "{}", d.name);
        for row in d.document["accounts"].as_array().unwrap() {
            assert!(row.get("result").is_none_or(|r| r.get("schema_version").is_none() && r.get("kind").is_none()));
        }
    }
    assert_valid(&docs);

    // Drifted: an extra field on a row, a row's result as a whole single-account document, another command's
    // result in a row, a failed row without its error, a status of another command, an extra field deep in a
    // bootstrap row's result, an extra field in the summary.
    let plan = by_name("plan, one account failed");
    let check = by_name("check, one account failed");
    let bootstrap = by_name("bootstrap, one account failed");
    let mut extra = plan.clone();
    extra["accounts"][0]["region"] = json!("us-east-1");
    let mut whole = check.clone();
    whole["accounts"][0]["result"]["schema_version"] = json!(1);
    whole["accounts"][0]["result"]["kind"] = json!("check");
    let mut swapped = check.clone();
    swapped["accounts"][0]["result"] = plan["accounts"][0]["result"].clone();
    let mut no_error = plan.clone();
    no_error["accounts"][2].as_object_mut().unwrap().remove("error");
    let mut status = plan.clone();
    status["accounts"][0]["status"] = json!("applied");
    let mut deep = bootstrap.clone();
    deep["accounts"][0]["result"]["applied"][0]["duration_ms"] = json!(3);
    let mut summary = bootstrap.clone();
    summary["summary"]["held_back"] = json!(0);
    let docs = [
        doc("an extra field on an accounts row", "accounts_result", extra),
        doc("a row's result with schema_version and kind", "accounts_result", whole),
        doc("a plan in a check row", "accounts_result", swapped),
        doc("a failed row without its error", "accounts_result", no_error),
        doc("a bootstrap status in a plan row", "accounts_result", status),
        doc("an extra field on an applied change in a row", "accounts_result", deep),
        doc("an extra field in the accounts summary", "accounts_result", summary),
    ];
    for (name, errors) in validate(&docs) {
        assert!(!errors.is_empty(), "{name}: validated, but the schema should have rejected it");
    }
}

/// A boundary and tags through plan, bootstrap and each drift's repair (boundary and tag writes, untagging), and the
/// rendered stack: the new calls and fields match the schema.
#[tokio::test]
async fn boundary_and_tag_changes_match_the_published_schema() {
    let emu = Emulator::start();
    let iam = emu.admin().await;
    let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    iam.create_policy().policy_name("WorkloadBoundary").policy_document(allow).send().await.unwrap();
    let guarded = [
        "--stack",
        "render-worker",
        "--permissions-boundary",
        "WorkloadBoundary",
        "--tag",
        "CostCenter=42",
        "--tag",
        "team=x",
    ];
    let with = |verb: &[&'static str]| -> Vec<&str> { verb.iter().chain(guarded.iter()).copied().collect() };
    let mut docs = vec![doc("fresh plan with a boundary and tags", "plan_result", run(&emu, &with(&["plan"])))];
    docs.push(doc("bootstrap with a boundary and tags", "bootstrap_result", run(&emu, &with(&["bootstrap", "--yes"]))));
    iam.delete_role_permissions_boundary().role_name("RenderJobWorkerRole").send().await.unwrap();
    iam.untag_role().role_name("RenderJobWorkerRole").tag_keys("team").send().await.unwrap();
    let drift = run(&emu, &with(&["plan"]));
    let calls: Vec<&str> = drift["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["changes"].as_array().unwrap())
        .map(|c| c["call"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["PutRolePermissionsBoundary", "TagRole"], "{drift}");
    docs.push(doc("plan of the drift", "plan_result", drift));
    docs.push(doc("repair", "bootstrap_result", run(&emu, &with(&["bootstrap", "--yes"]))));
    let plain = ["plan", "--stack", "render-worker"];
    let undo = run(&emu, &plain);
    assert_eq!(undo["summary"]["changes"], 4, "{undo}");
    docs.push(doc("plan removing the boundary and the tags", "plan_result", undo));
    docs.push(doc("removing them", "bootstrap_result", run(&emu, &["bootstrap", "--yes", "--stack", "render-worker"])));
    assert_valid(&docs);
}

/// `verify` (offline, live, failing) and `bootstrap --wait` match the schema; a row with an unknown status or check,
/// or without its detail, does not.
#[tokio::test]
async fn verify_and_bootstrap_wait_results_match_the_published_schema_and_drifted_ones_do_not() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let mut docs = Vec::new();
    let fresh = emu.wfboot().args(["verify", "--output", "json"]).output().unwrap();
    docs.push(doc("verify before bootstrap (fails)", "verify_result", json_of(&fresh, &[5])));
    let wait = ["bootstrap", "--yes", "--user-name", "demo", "--wait"];
    docs.push(doc("bootstrap --wait", "bootstrap_result", run(&emu, &wait)));
    docs.push(doc("no-op bootstrap --wait", "bootstrap_result", run(&emu, &wait)));
    docs.push(doc("verify", "verify_result", run(&emu, &["verify"])));
    docs.push(doc("verify --live", "verify_result", run(&emu, &["verify", "--live"])));
    let by_name = |n: &str| &docs.iter().find(|d| d.name == n).unwrap().document;
    assert_eq!(by_name("verify before bootstrap (fails)")["passed"], false);
    assert_eq!(by_name("bootstrap --wait")["wait"]["usable"], true);
    assert!(by_name("verify --live")["rows"].as_array().unwrap().iter().any(|r| r["check"] == "live"));
    for d in &docs {
        assert_eq!(d.document["schema_version"], 1, "{}", d.name);
        assert_eq!(d.document["kind"], d.def.trim_end_matches("_result"), "{}", d.name);
    }
    assert_valid(&docs);

    let live = by_name("verify --live").clone();
    let mut drifted = Vec::new();
    let mut m = live.clone();
    m["rows"][0]["status"] = json!("passed");
    drifted.push(doc("a row's unknown status", "verify_result", m));
    let mut m = live.clone();
    m["rows"][0]["check"] = json!("vibes");
    drifted.push(doc("a row's unknown check", "verify_result", m));
    let mut m = live.clone();
    m["rows"][0].as_object_mut().unwrap().remove("detail");
    drifted.push(doc("a row without its detail", "verify_result", m));
    let mut m = live.clone();
    m["extra"] = json!(1);
    drifted.push(doc("an extra field", "verify_result", m));
    let mut m = by_name("bootstrap --wait").clone();
    m["wait"]["usable"] = json!("yes");
    drifted.push(doc("wait.usable not a boolean", "bootstrap_result", m));
    for (name, errors) in validate(&drifted) {
        assert!(!errors.is_empty(), "{name}: validated, but the schema should have rejected it");
    }
}
