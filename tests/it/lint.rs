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
    // slim-workflow keeps its three trust suggestions, each printed with its reason (profiles/slim-workflow.toml).
    let text = stdout(&out);
    assert!(
        text.ends_with(
            "built-in stack slim-workflow: clean (3 kept by the stack)\nbuilt-in stack render-worker: clean\n"
        ),
        "{text}{}",
        stderr(&out)
    );
    assert_eq!(text.matches("kept by the stack: ").count(), 3, "{text}");
    assert_eq!(
        wfboot_isolated().args(["lint", "--deny-warnings"]).output().unwrap().status.code(),
        Some(0),
        "kept findings do not fail --deny-warnings"
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

/// A stack whose one policy is `document` (the render-worker policy of the issue's table, as a new user writes it).
fn policy_stack(dir: &Path, name: &str, document: &Value) -> PathBuf {
    write_case(dir, &json!({"name": name, "kind": "identity", "document": document}))
}

fn statement_doc(statement: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": [statement]})
}

/// Issue 26's table: what IAM accepts but never works, or grants more than a reviewer allows, each found with its
/// rule and severity; warnings fail `--deny-warnings` (exit 4).
#[test]
fn the_documents_iam_accepts_but_that_never_work_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<(&str, Value, &str, &str, &str)> = vec![
        (
            "getobject-on-a-bucket",
            statement_doc(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"})),
            "error",
            "action-resource",
            "Action",
        ),
        (
            "invoke-on-an-s3-arn",
            statement_doc(
                json!({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "arn:aws:s3:::bucket/*"}),
            ),
            "error",
            "action-resource",
            "Action",
        ),
        (
            "allow-with-not-resource",
            statement_doc(json!({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::bucket/*"})),
            "warning",
            "allow-not-resource",
            "NotResource",
        ),
        (
            "pass-role-on-star",
            statement_doc(json!({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"})),
            "warning",
            "pass-role",
            "Action",
        ),
        (
            "numeric-equals-on-source-ip",
            statement_doc(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*",
                "Condition": {"NumericEquals": {"aws:SourceIp": "203.0.113.0/24"}}})),
            "error",
            "condition-value",
            "Condition.NumericEquals.aws:SourceIp",
        ),
        (
            "unknown-action",
            statement_doc(json!({"Effect": "Allow", "Action": "s3:GetObjct", "Resource": "arn:aws:s3:::bucket/*"})),
            "error",
            "unknown-action",
            "Action",
        ),
        (
            "unknown-prefix",
            statement_doc(json!({"Effect": "Allow", "Action": "s4:GetObject", "Resource": "arn:aws:s3:::bucket/*"})),
            "error",
            "unknown-action",
            "Action",
        ),
        (
            "invalid-arn",
            statement_doc(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:bucket/*"})),
            "error",
            "arn",
            "Resource",
        ),
        (
            "condition-key-not-for-the-action",
            statement_doc(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*",
                "Condition": {"StringEquals": {"ec2:InstanceType": "t3.micro"}}})),
            "warning",
            "condition-key",
            "Condition.StringEquals.ec2:InstanceType",
        ),
        (
            "list-all-buckets-on-a-bucket",
            statement_doc(
                json!({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "arn:aws:s3:::bucket"}),
            ),
            "error",
            "action-resource",
            "Action",
        ),
        (
            "one-action-of-two-on-nothing",
            statement_doc(json!({"Effect": "Allow", "Action": ["s3:GetObject", "lambda:InvokeFunction"],
                "Resource": "arn:aws:s3:::bucket/*"})),
            "warning",
            "action-resource",
            "Action[1]",
        ),
    ];
    for (name, document, severity, rule, element) in &rows {
        let stack = policy_stack(dir.path(), name, document);
        let (code, report) = lint_json(std::slice::from_ref(&stack), &[]);
        let findings = report["stacks"][0]["findings"].as_array().unwrap();
        let found = findings.iter().find(|f| f["rule"] == *rule && f["element"] == *element);
        let found = found.unwrap_or_else(|| panic!("{name}: no {rule} at {element}: {findings:#?}"));
        assert_eq!(found["severity"], *severity, "{name}: {found:#}");
        assert_eq!(code, if *severity == "error" { 4 } else { 0 }, "{name}: {report:#}");
        assert_eq!(lint_json(&[stack], &["--deny-warnings"]).0, 4, "{name}");
    }
    // The finding names what the action needs, and Access Analyzer's code where it has one.
    let stack = dir.path().join("getobject-on-a-bucket/stack.toml");
    let out = wfboot_isolated().args(["lint", "--stack"]).arg(&stack).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("`s3:GetObject` acts on ")
            && text.contains("object (arn:${Partition}:s3:::${BucketName}/${ObjectName})"),
        "{text}"
    );
    let (_, report) = lint_json(&[dir.path().join("pass-role-on-star/stack.toml")], &[]);
    assert_eq!(report["stacks"][0]["findings"][0]["access_analyzer"], "PASS_ROLE_WITH_STAR_IN_RESOURCE");
}

#[test]
fn a_kept_finding_counts_as_none_and_a_stale_keep_entry_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let doc = statement_doc(json!({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}));
    write_file(dir.path(), "p.json", &doc.to_string());
    write_file(dir.path(), "q.json", POLICY);
    let keep = "[[keep]]\nrule = \"pass-role\"\npolicy = \"P\"\nreason = \"the operator passes every role\"\n";
    let stack = write_file(
        dir.path(),
        "s.toml",
        &format!("name = \"kept\"\ntemplates = \".\"\n[[policy]]\nname = \"P\"\ndocument = \"p.json\"\n[[policy]]\nname = \"Q\"\ndocument = \"q.json\"\n{keep}"),
    );
    let (code, report) = lint_json(std::slice::from_ref(&stack), &["--deny-warnings"]);
    assert_eq!((code, &report["warnings"], &report["kept"]), (0, &json!(0), &json!(1)), "{report:#}");
    let out = wfboot_isolated().args(["lint", "--stack"]).arg(&stack).output().unwrap();
    assert!(stdout(&out).contains("kept by the stack: the operator passes every role"), "{}", stdout(&out));
    assert!(stdout(&out).ends_with(": clean (1 kept by the stack)\n"), "{}", stdout(&out));
    // The same entry on a policy without the finding is itself a warning.
    let stale = write_file(
        dir.path(),
        "stale.toml",
        &format!("name = \"stale\"\ntemplates = \".\"\n[[policy]]\nname = \"P\"\ndocument = \"q.json\"\n{keep}"),
    );
    let (code, report) = lint_json(&[stale], &["--deny-warnings"]);
    assert_eq!(code, 4);
    assert_eq!(report["stacks"][0]["findings"][0]["rule"], "keep", "{report:#}");
}

/// A service of the table: its prefix, its actions (each with the indexes of its resource types), the first ARN
/// format of each resource type.
type TableService = (String, Vec<(String, Vec<usize>)>, Vec<String>);

/// The actions of the table (src/validate/data/iam-actions.txt), each with the ARN formats of its resource types.
fn table_actions() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(repo().join("src/validate/data/iam-actions.txt")).unwrap();
    let mut services: Vec<TableService> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        match fields[..] {
            ["S", prefix, actions, ..] => {
                let actions = actions
                    .split(' ')
                    .filter(|a| !a.is_empty())
                    .map(|a| {
                        let (name, types) = a.split_once('=').unwrap_or((a, ""));
                        (name.to_string(), types.split('.').filter_map(|i| i.parse().ok()).collect())
                    })
                    .collect();
                services.push((prefix.to_string(), actions, Vec::new()));
            }
            ["R", _, formats] => services.last_mut().unwrap().2.push(formats.split(',').next().unwrap().to_string()),
            _ => {}
        }
    }
    services
        .iter()
        .flat_map(|(prefix, actions, types)| {
            actions.iter().map(move |(name, idx)| {
                (format!("{prefix}:{name}"), idx.iter().filter_map(|&i| types.get(i).cloned()).collect())
            })
        })
        .collect()
}

/// An ARN of `format`, its placeholders filled with sample values.
fn sample_arn(format: &str) -> String {
    let mut out = String::new();
    let mut rest = format;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e + 1);
        out.push_str(match &rest[start..end] {
            "${Partition}" => "aws",
            "${Region}" => "us-east-1",
            "${Account}" => "123456789012",
            "${BucketName}" => "example-bucket",
            _ => "example",
        });
        rest = &rest[end..];
    }
    out + rest
}

/// Seeded documents from the table: one Allow (sometimes Deny) statement of an action (sometimes a wildcard
/// pattern of it) on a resource of its own type, of another service's type, or `*` (sometimes as NotResource), with
/// sometimes a condition on one of its service's keys.
fn generated_documents(count: usize) -> Vec<(String, Value)> {
    let actions = table_actions();
    let text = std::fs::read_to_string(repo().join("src/validate/data/iam-actions.txt")).unwrap();
    let keys: Vec<(String, Vec<String>)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("S|"))
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let keys = f.get(2).unwrap_or(&"").split(' ').filter_map(|k| k.split_once('=')).map(|(k, _)| k.to_string());
            (f[0].to_string(), keys.filter(|k| !k.contains("${") && !k.contains(':')).collect())
        })
        .collect();
    let mut seed: u64 = 26;
    let mut next = move |n: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n.max(1)
    };
    let mut out = Vec::new();
    for i in 0..count {
        let (action, formats) = &actions[next(actions.len())];
        let (prefix, name) = action.split_once(':').unwrap();
        let written = if next(5) == 0 && name.len() > 4 { format!("{prefix}:{}*", &name[..4]) } else { action.clone() };
        let resource = match next(10) {
            0 => "*".to_string(),
            1..=5 if !formats.is_empty() => sample_arn(&formats[next(formats.len())]),
            _ => {
                let (_, other) = &actions[next(actions.len())];
                other.first().map_or("*".to_string(), |f| sample_arn(f))
            }
        };
        let mut statement = json!({"Effect": if next(10) == 0 { "Deny" } else { "Allow" }, "Action": written});
        let element = if next(20) == 0 { "NotResource" } else { "Resource" };
        statement[element] = json!(resource);
        if next(5) == 0 {
            if let Some((_, k)) = keys.iter().find(|(p, k)| p == prefix && !k.is_empty()) {
                statement["Condition"] = json!({"StringLike": {format!("{prefix}:{}", k[next(k.len())]): "example*"}});
            }
        }
        out.push((format!("generated-{i:04}"), statement_doc(statement)));
    }
    out
}

/// Runs tools/parliament_compare.py over `documents`.
fn parliament(documents: &[(String, Value)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<Value> = documents.iter().map(|(n, d)| json!({"name": n, "document": d})).collect();
    let input = write_file(dir.path(), "documents.json", &json!({"documents": docs}).to_string());
    let out = StdCommand::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tools/parliament_compare.py"))
        .arg(&input)
        .output()
        .expect("run tools/parliament_compare.py (scripts/setup-emulator.sh installs the venv)");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("tools/parliament_compare.py printed no JSON ({e}):\n{}\n{}", stdout(&out), stderr(&out))
    })
}

/// The verdicts compared with parliament's: wfboot's rules and parliament's finding codes for the same problem.
const COMPARED: &[(&str, &[&str], &[&str])] = &[
    ("action-resource", &["action-resource"], &["RESOURCE_MISMATCH"]),
    ("allow-not-resource", &["allow-not-resource"], &["NOTRESOURCE_WITH_ALLOW"]),
    ("unknown-action", &["unknown-action"], &["UNKNOWN_ACTION", "UNKNOWN_PREFIX"]),
];

/// Why wfboot and parliament disagree on `verdict` (what `wfboot` says, with `rules` all its findings' rules),
/// when the reason is one of the classes tests/fixtures/parliament-disagreements.json explains.
fn disagreement_class(
    document: &Value,
    verdict: &str,
    wfboot: bool,
    rules: &[&str],
    theirs: &Value,
) -> Option<&'static str> {
    let statement = &document["Statement"][0];
    let action = statement["Action"].as_str().unwrap_or_default();
    let unknown_to_parliament = !theirs["unknown_actions"].as_array().unwrap().is_empty();
    let issues: Vec<&str> = theirs["issues"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let stopped = issues.iter().any(|i| ["UNKNOWN_ACTION", "UNKNOWN_PREFIX", "INVALID_ARN", "MALFORMED"].contains(i));
    let required = theirs["required_types"].get(action).and_then(Value::as_u64);
    let optional_match = theirs["optional_match"].get(action).and_then(Value::as_bool);
    match (verdict, wfboot) {
        ("unknown-action", false) if unknown_to_parliament && !rules.contains(&"action") => {
            Some("action-newer-than-parliament")
        }
        ("action-resource", true) if unknown_to_parliament => Some("action-newer-than-parliament"),
        ("allow-not-resource", true) if stopped => Some("parliament-stops-at-the-first-problem"),
        ("action-resource", false) if rules.contains(&"arn") => Some("wfboot-refuses-the-arn-first"),
        ("action-resource", false) if statement.get("NotResource").is_some() => Some("parliament-matches-not-resource"),
        ("action-resource", true) if statement["Effect"] == "Deny" => Some("parliament-skips-deny"),
        ("action-resource", false) if action.contains('*') => Some("parliament-checks-every-expansion"),
        ("action-resource", true) if required == Some(0) => Some("parliament-checks-required-types-only"),
        ("action-resource", false) if required.is_some_and(|n| n > 1) => {
            Some("parliament-requires-every-required-type")
        }
        ("action-resource", false) if optional_match == Some(true) => Some("parliament-requires-the-required-type"),
        ("action-resource", _) => Some("the-tables-differ"),
        _ => None,
    }
}

/// parliament (duo-labs' IAM linter, pinned in tools/requirements.txt) over the lint corpus's managed-policy
/// documents, the issue's table and seeded generated documents: every disagreement belongs to a class that
/// tests/fixtures/parliament-disagreements.json explains, and the counts are printed for CI's log.
#[test]
fn wfboot_and_parliament_agree_on_the_corpus_and_generated_documents_or_the_fixture_says_why() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/parliament-disagreements.json")).unwrap(),
    )
    .unwrap();
    let mut documents: Vec<(String, Value)> = corpus()
        .into_iter()
        .filter(|c| c["kind"] == "identity")
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["document"].clone()))
        .collect();
    let corpus_count = documents.len();
    documents.extend(generated_documents(600));
    let dir = tempfile::tempdir().unwrap();
    let stacks: Vec<PathBuf> = documents.iter().map(|(n, d)| policy_stack(dir.path(), n, d)).collect();
    let (_, report) = lint_json(&stacks, &[]);
    let verdicts = parliament(&documents);

    let (mut agree, mut disagree, mut crashed) = (0, 0, 0);
    let mut classes: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut failures = Vec::new();
    for ((name, document), stack) in documents.iter().zip(report["stacks"].as_array().unwrap()) {
        let verdict = &verdicts[name];
        if verdict.get("crashed").is_some() {
            // Only the corpus's broken documents (a statement that is not an object, ...): wfboot refuses them.
            assert!(!name.starts_with("generated-"), "parliament failed on {name}: {verdict}");
            crashed += 1;
            continue;
        }
        let issues: Vec<&str> = verdict["issues"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let rules: Vec<&str> =
            stack["findings"].as_array().unwrap().iter().filter_map(|f| f["rule"].as_str()).collect();
        let mut same = true;
        for (verdict_name, ours, codes) in COMPARED {
            let wfboot = rules.iter().any(|r| ours.contains(r));
            let theirs = issues.iter().any(|i| codes.contains(i));
            if wfboot == theirs {
                continue;
            }
            same = false;
            let case = fixture["cases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name.as_str() && c["verdict"] == *verdict_name);
            match (disagreement_class(document, verdict_name, wfboot, &rules, verdict), case) {
                (Some(class), _) if fixture["classes"][class].is_string() => {
                    // WFBOOT_PARLIAMENT_DEBUG=1 lists each document with its class, to review them.
                    if std::env::var_os("WFBOOT_PARLIAMENT_DEBUG").is_some() {
                        eprintln!("{class}: {name} wfboot={wfboot} {issues:?} {verdict}\n  {document}");
                    }
                    *classes.entry(class).or_default() += 1
                }
                (_, Some(c)) if c["reason"].is_string() => *classes.entry("case").or_default() += 1,
                _ => failures.push(format!(
                    "{name}: {verdict_name}: wfboot {} it, parliament {} ({issues:?}); fix it or document why in \
                     tests/fixtures/parliament-disagreements.json\n{document}",
                    if wfboot { "reports" } else { "does not report" },
                    if theirs { "does" } else { "does not" },
                )),
            }
        }
        if same {
            agree += 1;
        } else {
            disagree += 1;
        }
    }
    assert!(failures.is_empty(), "{} unexplained disagreements:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(
        classes.get("case").copied().unwrap_or_default(),
        fixture["cases"].as_array().unwrap().len(),
        "every case of tests/fixtures/parliament-disagreements.json still disagrees"
    );
    let stale: Vec<&String> =
        fixture["classes"].as_object().unwrap().keys().filter(|k| !classes.contains_key(k.as_str())).collect();
    assert!(stale.is_empty(), "classes of tests/fixtures/parliament-disagreements.json no document needs: {stale:?}");
    let _ = writeln!(
        std::io::stderr(),
        "parliament: {} documents ({corpus_count} from the lint corpus, 600 generated; parliament fails on {crashed} \
         broken corpus documents); wfboot agrees on {agree} (rules {}), disagrees on {disagree}, each explained in \
         tests/fixtures/parliament-disagreements.json: {classes:?}",
        documents.len(),
        COMPARED.iter().map(|(v, _, _)| *v).collect::<Vec<_>>().join(", "),
    );
}
