//! The offline trust evaluator against iam-simulate (tools/iam-simulate/trust.mjs, the independent evaluator the
//! emulator's simulator uses): the documented cases of `verify`'s trust check, then generated ones.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::*;

const ACCOUNT: &str = "123456789012";
const ROLE: &str = "arn:aws:iam::123456789012:role/R";

struct Case {
    name: String,
    trust: Value,
    service: &'static str,
    context: Context,
}

fn ctx(pairs: &[(&str, &str)]) -> Context {
    pairs.iter().map(|(k, v)| (k.to_string(), vec![v.to_string()])).collect()
}

fn trust_tool() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/iam-simulate");
    assert!(
        dir.join("node_modules/@cloud-copilot/iam-simulate").is_dir(),
        "the independent evaluator is not installed: run scripts/setup-emulator.sh (scripts/test.sh does it for you)"
    );
    dir
}

/// iam-simulate's decision for each case, from one node process.
fn theirs(cases: &[Case]) -> Vec<Value> {
    let dir = trust_tool();
    let mut child = Command::new("node")
        .arg("trust.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node (Node.js 18 or later is needed for the trust differential test)");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"ready\":true"), "{line}");
    let batch = json!({"id": 1, "cases": cases.iter().map(|c| json!({
        "trust": c.trust, "service": c.service, "role": ROLE, "context": c.context,
    })).collect::<Vec<_>>()});
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{batch}").unwrap();
    drop(stdin);
    line.clear();
    out.read_line(&mut line).unwrap();
    let _ = child.wait();
    let mut answer: Value = serde_json::from_str(&line).expect("trust.mjs answers JSON");
    let Value::Array(results) = answer["results"].take() else { panic!("no results: {line}") };
    assert_eq!(results.len(), cases.len());
    results
}

fn word(d: Decision) -> &'static str {
    match d {
        Decision::Allowed => "allowed",
        Decision::ExplicitDeny => "explicitDeny",
        Decision::ImplicitDeny => "implicitDeny",
    }
}

/// The cases where the two disagree (on the decision; on the missing keys of a denied request too).
fn disagreements(cases: &[Case]) -> Vec<String> {
    let answers = theirs(cases);
    let mut out = Vec::new();
    for (c, a) in cases.iter().zip(answers) {
        let ours = evaluate(&c.trust, c.service, "sts:AssumeRole", &c.context);
        if ours.unsupported.is_some() || a["validated"] != json!(true) {
            continue;
        }
        let mut missing = ours.missing.clone();
        missing.sort();
        let their_missing: Vec<String> =
            a["missing"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        if a["decision"] != word(ours.decision) || (ours.decision != Decision::Allowed && missing != their_missing) {
            out.push(format!(
                "{}: ours {} missing {:?}, iam-simulate {} missing {:?}\n  trust {}\n  service {} context {:?}",
                c.name,
                word(ours.decision),
                missing,
                a["decision"],
                their_missing,
                c.trust,
                c.service,
                c.context
            ));
        }
    }
    out
}

fn doc(statements: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn plain(service: &str) -> Value {
    doc(json!([{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]))
}

fn hardened(service: &str, source_arn: &str) -> Value {
    doc(json!([{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}, "ArnLike": {"aws:SourceArn": source_arn}}}]))
}

fn documented() -> Vec<Case> {
    let lambda_ctx = ctx(&[
        ("aws:SourceAccount", ACCOUNT),
        ("aws:SourceArn", "arn:aws:lambda:us-east-1:123456789012:function:wfboot-verify"),
    ]);
    let batch_ctx = ctx(&[
        ("aws:SourceAccount", ACCOUNT),
        ("aws:SourceArn", "arn:aws:batch:us-east-1:123456789012:compute-environment/wfboot-verify"),
    ]);
    let c = |name: &str, trust: Value, service: &'static str, context: &Context| Case {
        name: name.into(),
        trust,
        service,
        context: context.clone(),
    };
    vec![
        c("plain trust admits its service", plain("lambda.amazonaws.com"), "lambda.amazonaws.com", &lambda_ctx),
        c("plain trust refuses another service", plain("ec2.amazonaws.com"), "lambda.amazonaws.com", &lambda_ctx),
        c(
            "hardened trust admits its account's source",
            hardened("batch.amazonaws.com", "arn:aws:batch:*:123456789012:*"),
            "batch.amazonaws.com",
            &batch_ctx,
        ),
        c(
            "hardened trust with a wrong source ARN refuses",
            hardened("batch.amazonaws.com", "arn:aws:batch:*:123456789012:job-queue/*"),
            "batch.amazonaws.com",
            &batch_ctx,
        ),
        c(
            "hardened trust refuses a service that sends no source ARN",
            hardened("ec2.amazonaws.com", "arn:aws:ec2:*:123456789012:*"),
            "ec2.amazonaws.com",
            &Context::new(),
        ),
        c(
            "an explicit deny for other accounts wins only for them",
            doc(json!([
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"},
                {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole",
                 "Condition": {"StringNotEquals": {"aws:SourceAccount": "111122223333"}}}
            ])),
            "lambda.amazonaws.com",
            &lambda_ctx,
        ),
        c(
            "a negated condition holds when the key is absent",
            doc(json!([{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole",
                 "Condition": {"StringNotEquals": {"aws:SourceAccount": "111122223333"}}}])),
            "ec2.amazonaws.com",
            &Context::new(),
        ),
        c(
            "IfExists holds when the key is absent",
            doc(json!([{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole",
                 "Condition": {"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}}])),
            "ec2.amazonaws.com",
            &Context::new(),
        ),
        c(
            "a list of services and actions",
            doc(json!([{"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com", "lambda.amazonaws.com"]},
                 "Action": ["sts:TagSession", "sts:AssumeRole"]}])),
            "lambda.amazonaws.com",
            &lambda_ctx,
        ),
        c(
            "an action wildcard",
            doc(
                json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:Assume*"}]),
            ),
            "lambda.amazonaws.com",
            &lambda_ctx,
        ),
        c(
            "a trust for another action only",
            doc(json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                 "Action": "sts:AssumeRoleWithWebIdentity"}])),
            "lambda.amazonaws.com",
            &lambda_ctx,
        ),
        c(
            "NotPrincipal deny of everyone else",
            doc(json!([
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"},
                {"Effect": "Deny", "NotPrincipal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ])),
            "lambda.amazonaws.com",
            &lambda_ctx,
        ),
    ]
}

#[test]
fn the_trust_check_s_documented_cases_agree_with_iam_simulate() {
    let cases = documented();
    let wrong = disagreements(&cases);
    assert!(wrong.is_empty(), "{} of {} disagree:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
    // And they say what the trust check relies on.
    let allowed = |i: usize| evaluate(&cases[i].trust, cases[i].service, "sts:AssumeRole", &cases[i].context).decision;
    assert_eq!(allowed(0), Decision::Allowed);
    assert_eq!(allowed(1), Decision::ImplicitDeny);
    assert_eq!(allowed(3), Decision::ImplicitDeny);
    let ec2 = evaluate(&cases[4].trust, cases[4].service, "sts:AssumeRole", &cases[4].context);
    assert_eq!(ec2.missing, vec!["aws:SourceAccount".to_string(), "aws:SourceArn".to_string()]);
}

/// A small deterministic generator (xorshift), so a failure is reproducible from its case name.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const SERVICES: [&str; 4] =
    ["lambda.amazonaws.com", "batch.amazonaws.com", "ec2.amazonaws.com", "states.amazonaws.com"];
const OPERATORS: [&str; 14] = [
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLike",
    "ArnLike",
    "ArnNotLike",
    "ArnEquals",
    "StringEqualsIgnoreCase",
    "StringEqualsIfExists",
    "ArnLikeIfExists",
    "StringNotEqualsIfExists",
    "Null",
    "ForAnyValue:StringEquals",
    "ForAllValues:StringLike",
];

fn random_case(rng: &mut Rng, n: usize) -> Case {
    let service = *rng.pick(&SERVICES);
    let source_arns = [
        format!("arn:aws:{}:us-east-1:{ACCOUNT}:thing/x", service.split('.').next().unwrap()),
        "arn:aws:batch:us-east-1:111122223333:compute-environment/ce".to_string(),
    ];
    let mut context = Context::new();
    if rng.chance(70) {
        context.insert("aws:SourceAccount".into(), vec![rng.pick(&[ACCOUNT, "111122223333"]).to_string()]);
    }
    if rng.chance(60) {
        context.insert("aws:SourceArn".into(), vec![rng.pick(&source_arns).clone()]);
    }
    let mut statements = Vec::new();
    for _ in 0..1 + rng.next() % 3 {
        let effect = if rng.chance(25) { "Deny" } else { "Allow" };
        let principal = match rng.next() % 5 {
            0 => json!("*"),
            1 => json!({"Service": [service, "ecs-tasks.amazonaws.com"]}),
            2 => json!({"Service": *rng.pick(&SERVICES)}),
            3 => json!({"AWS": "*"}),
            _ => json!({"Service": service}),
        };
        let action = *rng.pick(&["sts:AssumeRole", "sts:*", "sts:AssumeRole*", "sts:TagSession", "*"]);
        let mut s = json!({"Effect": effect, "Principal": principal, "Action": action});
        if rng.chance(70) {
            let mut condition = serde_json::Map::new();
            for _ in 0..1 + rng.next() % 2 {
                let op = *rng.pick(&OPERATORS);
                // ARN operators on ARN keys only (what IAM does with a non-ARN value is not the question here).
                let key = if op.starts_with("Arn") {
                    *rng.pick(&["aws:SourceArn", "aws:sourcearn"])
                } else {
                    *rng.pick(&["aws:SourceAccount", "aws:SourceArn", "aws:sourcearn"])
                };
                let value = match (op, key.to_ascii_lowercase().as_str()) {
                    ("Null", _) => json!(rng.pick(&["true", "false"])),
                    (_, "aws:sourceaccount") => json!(rng.pick(&[ACCOUNT, "111122223333", "1234*"])),
                    _ => json!(rng.pick(&[
                        format!("arn:aws:*:*:{ACCOUNT}:*"),
                        "arn:aws:batch:*:*:compute-environment/*".to_string(),
                        source_arns[0].clone(),
                        "arn:aws:lambda:us-east-1:111122223333:function:*".to_string(),
                    ])),
                };
                condition
                    .entry(op.to_string())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .unwrap()
                    .insert(key.into(), value);
            }
            s["Condition"] = Value::Object(condition);
        }
        statements.push(s);
    }
    Case { name: format!("random case {n}"), trust: doc(Value::Array(statements)), service, context }
}

#[test]
fn generated_trust_documents_and_contexts_agree_with_iam_simulate() {
    let mut rng = Rng(0x5eed_1616);
    let cases: Vec<Case> = (0..2000).map(|n| random_case(&mut rng, n)).collect();
    let wrong = disagreements(&cases);
    let allowed = cases
        .iter()
        .filter(|c| evaluate(&c.trust, c.service, "sts:AssumeRole", &c.context).decision == Decision::Allowed)
        .count();
    eprintln!("trust differential: {} cases, {allowed} allowed, {} disagreements", cases.len(), wrong.len());
    assert!(allowed > 100 && allowed < 1900, "the generator should give both verdicts: {allowed} allowed");
    assert!(
        wrong.is_empty(),
        "{} of {} disagree:\n{}",
        wrong.len(),
        cases.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
}
