//! `--output json` against its published schema, `docs/output.schema.json` (JSON Schema draft 2020-12): real
//! results of every command, produced by the binary against the emulator, must validate, and changed ones must not.
//!
//! The validator is the `jsonschema` package of the repository's venv (pinned in tools/requirements.txt), run
//! through `tools/validate_output.py` as tests/export.rs runs cfn-lint: no Rust dependency to compile.

mod common;

use std::io::Write;
use std::process::{Command as StdCommand, Stdio};

use common::*;
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
struct Doc {
    name: String,
    def: &'static str,
    document: Value,
}

fn doc(name: &str, def: &'static str, document: Value) -> Doc {
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

fn assert_valid(docs: &[Doc]) {
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
    let mut renamed = plan.clone();
    renamed["resources"][1]["changes"][0]["call"] = json!("MakeRole");
    let mut extra = plan.clone();
    extra["resources"][1]["changes"][1]["force"] = json!(true);
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
