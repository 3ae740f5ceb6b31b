//! `wfboot lint` and the validation `plan` and `bootstrap` run before their first AWS call.
//!
//! The corpus (tests/fixtures/lint-corpus.json) holds broken documents and stack inputs, each grammar rule at
//! least once. wfboot must refuse every one with the expected rule at the expected element; its verdict is compared
//! with cfn-lint's (on a CloudFormation template holding the document) and moto's own IAM validators
//! (tools/lint_corpus.py, both from the repository's venv). Where cfn-lint accepts what wfboot refuses, the case
//! says why, and either moto refuses it too or the case names IAM's documentation of the error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use crate::common::*;
use serde_json::{json, Value};

const TRUST: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "{{principal:ec2}}"}, "Action": "sts:AssumeRole"}]}"#;
const POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:{{partition}}:s3:::bucket/*"}]}"#;

fn corpus() -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/lint-corpus.json")).unwrap();
    let corpus: Value = serde_json::from_str(&text).unwrap();
    corpus["cases"].as_array().unwrap().clone()
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A stack directory for `case`: `stack.toml` with one policy or role, and its documents. Returns the stack file.
fn write_case(dir: &Path, case: &Value) -> PathBuf {
    let name = case["name"].as_str().unwrap();
    let dir = dir.join(name);
    let (toml, document) = match case["kind"].as_str().unwrap() {
        "identity" => (
            "[[policy]]\nname = \"CorpusPolicy\"\ndocument = \"document.json\"\n".to_string(),
            case["document"].to_string(),
        ),
        "trust" => {
            ("[[role]]\nname = \"CorpusRole\"\ntrust = \"document.json\"\n".to_string(), case["document"].to_string())
        }
        "role-policies" => {
            let list: Vec<String> =
                case["managed_policies"].as_array().unwrap().iter().map(|p| toml_str(p.as_str().unwrap())).collect();
            (
                format!(
                    "[[role]]\nname = \"CorpusRole\"\ntrust = \"document.json\"\nmanaged_policies = [{}]\n",
                    list.join(", ")
                ),
                TRUST.to_string(),
            )
        }
        "role-description" => (
            format!(
                "[[role]]\nname = \"CorpusRole\"\ntrust = \"document.json\"\ndescription = {}\n",
                toml_str(case["description"].as_str().unwrap())
            ),
            TRUST.to_string(),
        ),
        "policy-description" => (
            format!(
                "[[policy]]\nname = \"CorpusPolicy\"\ndocument = \"document.json\"\ndescription = {}\n",
                toml_str(case["description"].as_str().unwrap())
            ),
            POLICY.to_string(),
        ),
        other => panic!("unknown case kind {other}"),
    };
    write_file(&dir, "document.json", &document);
    write_file(&dir, "stack.toml", &format!("name = \"corpus\"\ntemplates = \".\"\n{toml}"))
}

/// `wfboot lint --output json` for `stacks`, with its exit code.
fn lint_json(stacks: &[PathBuf], extra: &[&str]) -> (i32, Value) {
    let mut cmd = wfboot_isolated();
    cmd.args(["lint", "--output", "json"]).args(extra);
    for s in stacks {
        cmd.arg("--stack").arg(s);
    }
    let out = cmd.output().unwrap();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("lint printed no JSON ({e}): {}\n{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap_or(-1), json)
}

/// The finding of `report` (one stack's) that the case expects: an error with its rule at its element.
fn expected_finding<'a>(case: &Value, report: &'a Value) -> Option<&'a Value> {
    report["findings"].as_array().unwrap().iter().find(|f| {
        f["severity"] == "error"
            && f["rule"] == case["rule"]
            && f["element"].as_str().unwrap_or_default() == case["element"].as_str().unwrap()
    })
}

#[test]
fn the_corpus_is_refused_by_wfboot_and_compared_with_cfn_lint_and_moto() {
    let cases = corpus();
    assert!(
        cases.len() >= 34,
        "the corpus has {} cases; the issue asks for the four and at least 30 more",
        cases.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let stacks: Vec<PathBuf> = cases.iter().map(|c| write_case(dir.path(), c)).collect();
    let (code, report) = lint_json(&stacks, &["--partition", "aws"]);
    assert_eq!(code, 4, "lint exits 4 on errors");
    let reports = report["stacks"].as_array().unwrap();
    assert_eq!(reports.len(), cases.len());
    assert_eq!(report["errors"], reports.iter().map(|r| r["errors"].as_u64().unwrap()).sum::<u64>());

    let templates = tempfile::tempdir().unwrap();
    let out = StdCommand::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tools/lint_corpus.py"))
        .arg(repo().join("tests/fixtures/lint-corpus.json"))
        .arg(templates.path())
        .output()
        .expect("run tools/lint_corpus.py (scripts/setup-emulator.sh installs the venv)");
    let verdicts: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("tools/lint_corpus.py printed no JSON ({e}):\n{}\n{}", stdout(&out), stderr(&out)));

    let (mut agree, mut documented, mut moto_rejects, mut moto_cases) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (case, report) in cases.iter().zip(reports) {
        let name = case["name"].as_str().unwrap();
        if expected_finding(case, report).is_none() {
            failures.push(format!(
                "{name}: wfboot did not report {} at `{}`; it reported {}",
                case["rule"],
                case["element"].as_str().unwrap(),
                serde_json::to_string_pretty(&report["findings"]).unwrap()
            ));
            continue;
        }
        let verdict = &verdicts[name];
        let cfn_rejects = !verdict["cfn_lint"].as_array().unwrap().is_empty();
        let moto_rejected = verdict["moto"].is_string();
        if verdict.get("moto").is_some() {
            moto_cases += 1;
            moto_rejects += usize::from(moto_rejected);
        }
        match (cfn_rejects, case.get("disagreement")) {
            (true, None) => agree += 1,
            (true, Some(_)) => failures.push(format!(
                "{name}: cfn-lint now refuses it too ({}); remove the case's `disagreement`",
                verdict["cfn_lint"]
            )),
            (false, None) => failures.push(format!(
                "{name}: cfn-lint accepts what wfboot refuses, and the case does not say why (`disagreement`)"
            )),
            (false, Some(_)) => {
                if !moto_rejected && case.get("iam_source").is_none() {
                    failures.push(format!(
                        "{name}: neither cfn-lint nor moto refuses it, and the case cites no IAM documentation (`iam_source`)"
                    ));
                }
                documented += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Printed past the test harness's capture, so that CI's log shows the counts.
    let _ = writeln!(
        std::io::stderr(),
        "lint corpus: {} cases, all refused by wfboot; cfn-lint agrees on {agree}, disagrees on {documented} (each \
         documented in tests/fixtures/lint-corpus.json); moto's validators refuse {moto_rejects} of the {moto_cases} documents",
        cases.len()
    );
    assert_eq!(agree + documented, cases.len());
}

#[test]
fn each_broken_document_through_plan_and_bootstrap_is_refused_before_any_call_naming_file_statement_and_element() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Value> = corpus()
        .into_iter()
        // Both need the account: its quota of policies per role, and the caller's partition (tests below).
        .filter(|c| c["kind"] != "role-policies" && !c["after_identify"].as_bool().unwrap_or(false))
        .collect();
    let mark = emu.mark();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let stack = write_case(dir.path(), case);
        let (_, report) = lint_json(std::slice::from_ref(&stack), &[]);
        let finding = expected_finding(case, &report["stacks"][0]).unwrap_or_else(|| panic!("{name}: {report}"));
        for command in [&["plan", "--skip-user"][..], &["bootstrap", "--yes", "--skip-user"][..]] {
            let out = emu.wfboot().args(command).arg("--stack").arg(&stack).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(65), "{name} {command:?}: {err}");
            assert!(err.contains(&stack.display().to_string()), "{name}: names the stack file: {err}");
            assert!(err.contains("nothing was sent to AWS"), "{name}: {err}");
            if let Some(template) = finding["template"].as_str() {
                assert!(err.contains(template), "{name}: names the template {template}: {err}");
            }
            if let Some(i) = finding["statement"].as_u64() {
                assert!(err.contains(&format!("Statement[{i}]")), "{name}: names the statement: {err}");
            }
            assert!(err.contains(case["element"].as_str().unwrap()), "{name}: names the element: {err}");
            assert!(err.contains(&format!("[{}]", case["rule"].as_str().unwrap())), "{name}: {err}");
        }
    }
    assert!(cases.len() >= 34);
    assert_eq!(emu.wfboot_requests_since(mark).len(), 0, "no case may reach the account");
}

#[tokio::test]
async fn eleven_managed_policies_are_refused_after_reading_the_account_quota_and_nothing_is_written() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let case = corpus().into_iter().find(|c| c["name"] == "eleven-managed-policies").unwrap();
    let stack = write_case(dir.path(), &case);
    for command in [&["plan", "--skip-user"][..], &["bootstrap", "--yes", "--skip-user"][..]] {
        let mark = emu.mark();
        let out = emu.wfboot().args(command).arg("--stack").arg(&stack).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(65), "{command:?}: {err}");
        assert!(err.contains("role `CorpusRole`: 11 managed policies"), "{err}");
        assert!(err.contains("allows 10 managed policies per role (AttachedPoliciesPerRoleQuota)"), "{err}");
        assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new(), "{command:?}");
        let reads: Vec<String> = emu.wfboot_requests_since(mark).into_iter().map(|r| r.action).collect();
        assert!(reads.contains(&"GetAccountSummary".to_string()), "{reads:?}");
    }
    // `lint` refuses it offline for the default quota, and accepts it for an account whose quota was raised.
    assert_eq!(lint_json(std::slice::from_ref(&stack), &[]).0, 4);
    assert_eq!(lint_json(std::slice::from_ref(&stack), &["--role-policy-quota", "11"]).0, 0);
}

#[tokio::test]
async fn ten_managed_policies_need_no_quota_read() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let mut case = corpus().into_iter().find(|c| c["name"] == "eleven-managed-policies").unwrap();
    case["managed_policies"].as_array_mut().unwrap().pop();
    let stack = write_case(dir.path(), &case);
    let mark = emu.mark();
    let out = emu.wfboot().args(["plan", "--skip-user", "--stack"]).arg(&stack).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!emu.wfboot_requests_since(mark).iter().any(|r| r.action == "GetAccountSummary"));
}

#[tokio::test]
async fn an_arn_of_another_partition_is_refused_once_the_caller_is_known_and_nothing_is_written() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let case = corpus().into_iter().find(|c| c["name"] == "resource-other-partition").unwrap();
    let stack = write_case(dir.path(), &case);
    // Offline, without a partition, an aws-cn ARN is fine (the stack may be meant for China).
    assert_eq!(lint_json(std::slice::from_ref(&stack), &[]).0, 0);
    let mark = emu.mark();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--skip-user", "--stack"]).arg(&stack).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains("[arn-partition]") && err.contains("nothing was written"), "{err}");
    assert!(err.contains("is in partition `aws-cn`, but the account is in `aws`"), "{err}");
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());
}

#[tokio::test]
async fn warnings_are_printed_on_stderr_and_do_not_stop_plan() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::bucket", "Condition": {"StringLike": {"s3:prefx": "home/"}}}]});
    let case = json!({"name": "warning", "kind": "identity", "document": doc});
    let stack = write_case(dir.path(), &case);
    let out = emu.wfboot().args(["plan", "--skip-user", "--stack"]).arg(&stack).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: [condition-key]") && err.contains("did you mean s3:prefix?"), "{err}");
    assert!(stdout(&out).contains("+ policy CorpusPolicy"), "{}", stdout(&out));
    // lint: exit 0 with a warning, 4 with --deny-warnings.
    let (code, report) = lint_json(std::slice::from_ref(&stack), &[]);
    assert_eq!((code, report["warnings"].as_u64()), (0, Some(1)));
    assert_eq!(lint_json(std::slice::from_ref(&stack), &["--deny-warnings"]).0, 4);
}

#[test]
fn lint_reports_every_finding_of_every_stack_with_exit_codes_for_ci() {
    // The built-in stacks are clean.
    let out =
        wfboot_isolated().args(["lint", "--stack", "slim-workflow", "--stack", "render-worker"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "built-in stack slim-workflow: clean\nbuilt-in stack render-worker: clean\n",
        "{}",
        stderr(&out)
    );
    // Every finding at once: load problems of the stack file, and each document's.
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "p.json",
        r#"{"Version": "2017-09-11", "Statement": {"Effect": "Allow", "Action": "s3:GetObjct", "Resource": "*"}}"#,
    );
    write_file(
        dir.path(),
        "t.json",
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": 5, "Action": "sts:AssumeRole"}]}"#,
    );
    let stack = write_file(
        dir.path(),
        "s.toml",
        "name = \"many\"\ntemplates = \".\"\n[[policy]]\nname = \"P\"\ndocument = \"p.json\"\n\
         [[role]]\nname = \"R\"\ntrust = \"t.json\"\ndescription = \"a \u{2014} b\"\ncustomer_policies = [\"P\", \"Q\"]\n",
    );
    let out = wfboot_isolated().args(["lint", "--stack"]).arg(&stack).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    for expected in [
        "error[stack]",
        "customer policy `Q` is not defined",
        "error[version]",
        "did you mean s3:GetObject?",
        "p.json: Statement[0] Action: ",
        "t.json: Statement[0] Principal: 5 is not a principal",
        "error[description-characters]",
        ": 5 errors, 0 warnings",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // A file that is not a stack at all is one finding, still exit 4; a file that does not exist is bad input.
    let broken = write_file(dir.path(), "broken.toml", "name = \"x\"\n[[role]\n");
    let (code, report) = lint_json(&[broken], &[]);
    assert_eq!(code, 4);
    assert_eq!(report["stacks"][0]["findings"][0]["rule"], "stack");
    assert!(report["stacks"][0]["name"].is_null());
    let out = wfboot_isolated().args(["lint", "--stack", "no/such.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(65));
}

#[test]
fn lint_json_matches_the_published_schema() {
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus();
    let stacks: Vec<PathBuf> = cases.iter().take(12).map(|c| write_case(dir.path(), c)).collect();
    let (_, report) = lint_json(&stacks, &["--partition", "aws", "--account-id", "111122223333"]);
    let (_, clean) = lint_json(&[], &[]);
    let input = json!([{"name": "lint with findings", "def": "lint_result", "document": report},
        {"name": "lint clean", "def": "lint_result", "document": clean}]);
    let mut child = StdCommand::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tools/validate_output.py"))
        .arg(repo().join("docs/output.schema.json"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run tools/validate_output.py");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    for r in results.as_array().unwrap() {
        assert_eq!(r["errors"], json!([]), "{}: {}", r["name"], r["errors"]);
    }
}
