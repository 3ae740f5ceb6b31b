//! `policy_eval` checked against an independent evaluator, the npm package @cloud-copilot/iam-simulate (a test
//! tool: AGPL, installed by scripts/setup-emulator.sh into the git-ignored tools/iam-simulate/node_modules, never
//! part of the binary). The requests are shared between one long-lived node process per core (at most 4,
//! tools/iam-simulate/sidecar.mjs), streamed in lines of 500 so that encoding overlaps evaluation. Nearly all of
//! the time is iam-simulate's own evaluation, about 2 ms of node CPU a request: 10,000 cases are about 15,000
//! requests (Strict, and Discovery where needed), some 30 s of node CPU, shared by two processes on two cores.
//!
//! A case agrees when wfboot's verdict is what iam-simulate says for a request with no context (Strict mode) and,
//! for what depends on context, what it says when the context is unknown (Discovery mode):
//! - `Allowed`: Strict allows;
//! - `Denied { explicit: true }`: Strict denies explicitly;
//! - `Denied { explicit: false }`: Strict does not allow, and Discovery finds no condition under which it would;
//! - `Unverified`: Discovery allows only under a condition (or with a conditional Deny set aside).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::*;

const ACCOUNT: &str = "123456789012";

/// One request against some identity policies.
struct Case {
    name: String,
    policies: Vec<Value>,
    action: String,
    resource: String,
}

/// Where the time of a differential run went, in seconds.
#[derive(Debug, Default)]
struct Timings {
    /// wfboot's own evaluation of every case.
    ours: f64,
    /// The iam-simulate side, wall clock: node processes started, requests encoded and sent, answers read.
    node: f64,
    /// Of that, the time spent encoding requests as JSON (summed over the writers; it overlaps node's work).
    encode: f64,
    /// How many node processes shared the requests.
    workers: usize,
    /// Turning the answers into verdicts.
    decode: f64,
}

/// What iam-simulate said about a case.
#[derive(Debug)]
struct Independent {
    strict: String,
    discovery: String,
    conditional: bool,
    validated: bool,
}

fn sidecar() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/iam-simulate");
    assert!(
        dir.join("node_modules/@cloud-copilot/iam-simulate").is_dir(),
        "the independent evaluator is not installed: run scripts/setup-emulator.sh (scripts/test.sh does it for you)"
    );
    dir.join("sidecar.mjs")
}

/// Every case evaluated in Strict mode, and in Discovery mode where `discover[i]`, in one batch by one node
/// process.
/// One request to the sidecar, serialised straight from the case (no JSON tree is built).
#[derive(serde::Serialize)]
struct Request<'a> {
    policies: Vec<Named<'a>>,
    principal: &'a str,
    account: &'a str,
    action: &'a str,
    resource: &'a str,
    context: Empty,
    mode: &'a str,
}

#[derive(serde::Serialize)]
struct Named<'a> {
    name: String,
    policy: &'a Value,
}

#[derive(serde::Serialize)]
struct Empty {}

#[derive(serde::Serialize)]
struct Batch<'a> {
    id: usize,
    cases: Vec<Request<'a>>,
}

/// Requests per line sent to a sidecar: node evaluates one line while the next is being encoded.
const LINE: usize = 500;

/// The sidecar's answers to `jobs` (case, mode), in order, from one node process; lines are written by a second
/// thread, so that encoding overlaps node's evaluation. Returns the answers and the seconds spent encoding.
fn run_sidecar(cases: &[Case], jobs: &[(usize, &'static str)]) -> (Vec<Value>, f64) {
    let mut child = Command::new("node")
        .arg(sidecar())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node (Node.js 18 or later is needed for the differential test)");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"ready\":true"), "{line}");
    let principal = format!("arn:aws:iam::{ACCOUNT}:user/alice");
    let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
    let chunks: Vec<&[(usize, &'static str)]> = jobs.chunks(LINE).collect();
    let (answers, encoding) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut encoding = 0.0;
            for (id, chunk) in chunks.iter().enumerate() {
                let started = std::time::Instant::now();
                let batch = Batch {
                    id,
                    cases: chunk
                        .iter()
                        .map(|&(i, mode)| Request {
                            policies: cases[i]
                                .policies
                                .iter()
                                .enumerate()
                                .map(|(n, policy)| Named { name: format!("P{}", n + 1), policy })
                                .collect(),
                            principal: &principal,
                            account: ACCOUNT,
                            action: &cases[i].action,
                            resource: &cases[i].resource,
                            context: Empty {},
                            mode,
                        })
                        .collect(),
                };
                let mut text = serde_json::to_vec(&batch).unwrap();
                text.push(b'\n');
                encoding += started.elapsed().as_secs_f64();
                stdin.write_all(&text).unwrap();
                stdin.flush().unwrap();
            }
            drop(stdin);
            encoding
        });
        let mut answers = Vec::with_capacity(jobs.len());
        for (id, chunk) in chunks.iter().enumerate() {
            line.clear();
            out.read_line(&mut line).unwrap();
            let mut answer: Value = serde_json::from_str(&line).expect("the sidecar answers JSON");
            assert_eq!(answer["id"], id, "answers in order");
            let Value::Array(results) = answer["results"].take() else { panic!("no results: {line}") };
            assert_eq!(results.len(), chunk.len());
            answers.extend(results);
        }
        (answers, writer.join().unwrap())
    });
    let _ = child.wait();
    (answers, encoding)
}

/// Every case evaluated in Strict mode, and in Discovery mode where `discover[i]`, by iam-simulate: the requests
/// split between one node process per core (at most 4), each streamed in lines of [`LINE`] requests.
fn independent(cases: &[Case], discover: &[bool], timings: &mut Timings) -> Vec<Independent> {
    let started = std::time::Instant::now();
    let mut jobs: Vec<(usize, &'static str)> = Vec::with_capacity(cases.len() * 2);
    for (i, d) in discover.iter().enumerate() {
        jobs.push((i, "Strict"));
        if *d {
            jobs.push((i, "Discovery"));
        }
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let share = jobs.len().div_ceil(workers).max(1);
    let parts: Vec<(Vec<Value>, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs.chunks(share).map(|part| scope.spawn(move || run_sidecar(cases, part))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    timings.encode += parts.iter().map(|(_, e)| e).sum::<f64>();
    timings.node += started.elapsed().as_secs_f64();
    timings.workers = workers;
    let started = std::time::Instant::now();
    let mut results = parts.into_iter().flat_map(|(answers, _)| answers);
    let out = discover
        .iter()
        .map(|discover| {
            let strict = results.next().unwrap_or_default();
            let discovery = if *discover { results.next().unwrap_or_default() } else { Value::Null };
            Independent {
                strict: strict["decision"].as_str().unwrap_or_default().to_string(),
                discovery: discovery["decision"].as_str().unwrap_or_default().to_string(),
                conditional: discovery["conditional"].as_bool().unwrap_or(false),
                validated: strict["validated"].as_bool().unwrap_or(false),
            }
        })
        .collect();
    assert!(results.next().is_none(), "as many answers as requests");
    timings.decode += started.elapsed().as_secs_f64();
    out
}

fn agrees(ours: &Verdict, theirs: &Independent) -> bool {
    match ours {
        Verdict::Allowed => theirs.strict == "allowed",
        Verdict::Denied { explicit: true } => theirs.strict == "explicitDeny",
        Verdict::Denied { explicit: false } => theirs.strict != "allowed" && theirs.discovery != "allowed",
        Verdict::Unverified { .. } => theirs.discovery == "allowed" && theirs.conditional,
    }
}

/// Evaluates every case both ways; returns the disagreements, described.
fn disagreements(cases: &[Case], timings: &mut Timings) -> (Vec<String>, usize) {
    let started = std::time::Instant::now();
    let ours: Vec<Evaluation> = cases
        .iter()
        .map(|c| {
            let sources: Vec<SourcePolicy<'_>> = c
                .policies
                .iter()
                .enumerate()
                .map(|(i, document)| SourcePolicy { label: format!("P{}", i + 1), document })
                .collect();
            evaluate(&sources, &c.action, &c.resource)
        })
        .collect();
    // Discovery mode is needed only where the verdict is about what context could do.
    let discover: Vec<bool> = ours
        .iter()
        .map(|e| matches!(e.verdict, Verdict::Unverified { .. } | Verdict::Denied { explicit: false }))
        .collect();
    timings.ours += started.elapsed().as_secs_f64();
    let theirs = independent(cases, &discover, timings);
    let mut unvalidated = 0;
    let mut out = Vec::new();
    for ((c, t), ours) in cases.iter().zip(&theirs).zip(&ours) {
        if !t.validated {
            unvalidated += 1;
        }
        if !agrees(&ours.verdict, t) {
            out.push(format!(
                "{}: {} on {}: wfboot {:?}, iam-simulate {t:?}\n  policies: {}",
                c.name,
                c.action,
                c.resource,
                ours.verdict,
                serde_json::to_string(&c.policies).unwrap()
            ));
        }
    }
    (out, unvalidated)
}

fn doc(statements: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn case(name: &str, policies: Vec<Value>, action: &str, resource: &str) -> Case {
    Case { name: name.into(), policies, action: action.into(), resource: resource.into() }
}

/// Cases from AWS's policy evaluation documentation ("Policy evaluation logic", "IAM JSON policy elements":
/// Action, NotAction, Resource, NotResource, Condition; "Determining whether a request is allowed or denied within
/// an account").
fn documented_cases() -> Vec<Case> {
    let role = format!("arn:aws:iam::{ACCOUNT}:role/wf-batch");
    let role_path = format!("arn:aws:iam::{ACCOUNT}:role/service-role/wf-batch");
    let object = "arn:aws:s3:::wf-data/input.csv";
    let region = json!({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}});
    let passed = json!({"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}});
    let allow_all = doc(json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]));
    vec![
        case("default deny", vec![], "iam:CreateRole", &role),
        case(
            "explicit allow",
            vec![doc(json!([{"Effect": "Allow", "Action": "iam:CreateRole", "Resource": role}]))],
            "iam:CreateRole",
            &role,
        ),
        case(
            "explicit deny overrides allow",
            vec![allow_all.clone(), doc(json!([{"Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*"}]))],
            "iam:CreateRole",
            &role,
        ),
        case(
            "deny in the same policy",
            vec![doc(
                json!([{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}, {"Effect": "Deny", "Action": "iam:Create*", "Resource": role}]),
            )],
            "iam:CreateRole",
            &role,
        ),
        case(
            "NotAction allows everything else",
            vec![doc(json!([{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]))],
            "s3:GetObject",
            object,
        ),
        case(
            "NotAction excludes",
            vec![doc(json!([{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]))],
            "iam:CreateRole",
            &role,
        ),
        case(
            "Deny with NotAction",
            vec![allow_all.clone(), doc(json!([{"Effect": "Deny", "NotAction": "iam:Get*", "Resource": "*"}]))],
            "iam:CreateRole",
            &role,
        ),
        case(
            "NotResource",
            vec![doc(
                json!([{"Effect": "Allow", "Action": "iam:*", "NotResource": format!("arn:aws:iam::{ACCOUNT}:role/wf-*")}]),
            )],
            "iam:CreateRole",
            &role,
        ),
        case(
            "NotResource includes the rest",
            vec![doc(
                json!([{"Effect": "Allow", "Action": "iam:*", "NotResource": format!("arn:aws:iam::{ACCOUNT}:role/wf-*")}]),
            )],
            "iam:CreatePolicy",
            &format!("arn:aws:iam::{ACCOUNT}:policy/p"),
        ),
        case(
            "Deny with NotResource",
            vec![
                allow_all.clone(),
                doc(
                    json!([{"Effect": "Deny", "Action": "iam:*", "NotResource": format!("arn:aws:iam::{ACCOUNT}:role/wf-*")}]),
                ),
            ],
            "iam:CreatePolicy",
            &format!("arn:aws:iam::{ACCOUNT}:policy/p"),
        ),
        case(
            "action wildcard prefix",
            vec![doc(json!([{"Effect": "Allow", "Action": "iam:Create*", "Resource": "*"}]))],
            "iam:CreateRole",
            &role,
        ),
        case(
            "action wildcard middle",
            vec![doc(json!([{"Effect": "Allow", "Action": "iam:*Role", "Resource": "*"}]))],
            "iam:CreateRole",
            &role,
        ),
        case(
            "action question mark",
            vec![doc(json!([{"Effect": "Allow", "Action": "iam:?reateRole", "Resource": "*"}]))],
            "iam:CreateRole",
            &role,
        ),
        case(
            "actions are case-insensitive",
            vec![doc(json!([{"Effect": "Allow", "Action": "IAM:createrole", "Resource": "*"}]))],
            "iam:CreateRole",
            &role,
        ),
        case(
            "resources are case-sensitive",
            vec![doc(
                json!([{"Effect": "Allow", "Action": "iam:*", "Resource": format!("arn:aws:iam::{ACCOUNT}:role/WF-Batch")}]),
            )],
            "iam:CreateRole",
            &role,
        ),
        case(
            "ARN wildcard spans the path",
            vec![doc(json!([{"Effect": "Allow", "Action": "iam:*", "Resource": "arn:aws:iam::*:role/*"}]))],
            "iam:GetRole",
            &role_path,
        ),
        case(
            "ARN wildcard, other type",
            vec![doc(json!([{"Effect": "Allow", "Action": "iam:*", "Resource": "arn:aws:iam::*:role/*"}]))],
            "iam:CreatePolicy",
            &format!("arn:aws:iam::{ACCOUNT}:policy/p"),
        ),
        case(
            "question mark in an ARN",
            vec![doc(json!([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::wf-dat?/*"}]))],
            "s3:GetObject",
            object,
        ),
        case(
            "conditional allow is unverified",
            vec![doc(json!([{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*", "Condition": passed}]))],
            "iam:PassRole",
            &role,
        ),
        case(
            "conditional and unconditional allow",
            vec![doc(
                json!([{"Effect": "Allow", "Action": "iam:*", "Resource": "*", "Condition": region}, {"Effect": "Allow", "Action": "iam:CreateRole", "Resource": "*"}]),
            )],
            "iam:CreateRole",
            &role,
        ),
        case(
            "conditional deny over an allow",
            vec![
                allow_all.clone(),
                doc(json!([{"Effect": "Deny", "Action": "iam:*", "Resource": "*", "Condition": region}])),
            ],
            "iam:CreateRole",
            &role,
        ),
        case(
            "unconditional deny over a conditional allow",
            vec![doc(
                json!([{"Effect": "Allow", "Action": "iam:*", "Resource": "*", "Condition": region}, {"Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*"}]),
            )],
            "iam:CreateRole",
            &role,
        ),
        case(
            "conditional allow of another action",
            vec![doc(json!([{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": region}]))],
            "iam:CreateRole",
            &role,
        ),
        case(
            "service-linked role on a wildcard resource",
            vec![doc(
                json!([{"Effect": "Allow", "Action": "iam:CreateServiceLinkedRole", "Resource": "*", "Condition": {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}}]),
            )],
            "iam:CreateServiceLinkedRole",
            &format!("arn:aws:iam::{ACCOUNT}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"),
        ),
        case(
            "statement as one object",
            vec![
                json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iam:CreateRole", "Resource": "*"}}),
            ],
            "iam:CreateRole",
            &role,
        ),
        case(
            "empty condition block",
            vec![doc(json!([{"Effect": "Allow", "Action": "iam:*", "Resource": "*", "Condition": {}}]))],
            "iam:CreateRole",
            &role,
        ),
    ]
}

#[test]
fn the_documented_cases_agree_with_iam_simulate() {
    let cases = documented_cases();
    let (failures, _) = disagreements(&cases, &mut Timings::default());
    // Written to stderr directly, not with eprintln!, so that the count shows even when the test passes (the test
    // harness captures the print macros only).
    let _ = writeln!(
        std::io::stderr(),
        "policy_eval differential, documented cases: {} cases, {} disagreements",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} of {} cases disagree:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// xorshift64*: a fixed sequence per seed, no dependency (also the SCP differential's).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Real actions, each with a resource of a type it takes.
fn requests() -> Vec<(&'static str, String)> {
    let a = ACCOUNT;
    vec![
        ("iam:CreateRole", format!("arn:aws:iam::{a}:role/wf-batch")),
        ("iam:TagRole", format!("arn:aws:iam::{a}:role/service-role/wf-batch")),
        ("iam:PassRole", format!("arn:aws:iam::{a}:role/SLIM-Extras_ECS_for_EC2")),
        ("iam:AttachRolePolicy", format!("arn:aws:iam::{a}:role/StepFunctionsLambdaRole")),
        ("iam:GetRole", format!("arn:aws:iam::{a}:role/wf-batch")),
        ("iam:CreatePolicy", format!("arn:aws:iam::{a}:policy/LambdaBatchExecutionPolicy")),
        ("iam:CreateInstanceProfile", format!("arn:aws:iam::{a}:instance-profile/wf-profile")),
        ("iam:AddRoleToInstanceProfile", format!("arn:aws:iam::{a}:instance-profile/wf-profile")),
        ("iam:AttachUserPolicy", format!("arn:aws:iam::{a}:user/demo")),
        (
            "iam:CreateServiceLinkedRole",
            format!("arn:aws:iam::{a}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"),
        ),
        ("iam:ListRoles", "*".to_string()),
        ("s3:GetObject", "arn:aws:s3:::wf-data/input/a.csv".to_string()),
        ("s3:PutObject", "arn:aws:s3:::wf-data/output/b.csv".to_string()),
        ("s3:ListBucket", "arn:aws:s3:::wf-data".to_string()),
        ("sqs:SendMessage", format!("arn:aws:sqs:us-east-1:{a}:wf-queue")),
        ("lambda:InvokeFunction", format!("arn:aws:lambda:us-east-1:{a}:function:wf-fn")),
        ("ec2:AssociateIamInstanceProfile", format!("arn:aws:ec2:us-east-1:{a}:instance/i-0123456789abcdef0")),
        ("batch:SubmitJob", format!("arn:aws:batch:us-east-1:{a}:job-queue/wf-queue")),
    ]
}

/// A random case of the spelling: the same letters in random case.
fn recase(rng: &mut Rng, s: &str) -> String {
    s.chars()
        .map(|c| {
            if rng.chance(30) {
                c.to_ascii_uppercase()
            } else if rng.chance(30) {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
        .collect()
}

/// An action pattern related to `action` (so it matches often enough to be interesting), or another one.
fn action_pattern(rng: &mut Rng, action: &str, all: &[(&str, String)]) -> String {
    let (service, name) = action.split_once(':').unwrap();
    match rng.below(9) {
        0 => "*".into(),
        1 => format!("{service}:*"),
        2 => recase(rng, action),
        3 => format!("{service}:{}*", &name[..1 + rng.below(name.len())]),
        4 => format!("{service}:*{}", &name[rng.below(name.len())..]),
        5 => {
            let i = rng.below(name.len());
            format!("{service}:{}?{}", &name[..i], &name[i + 1..])
        }
        6 => rng.pick(all).0.to_string(),
        7 => format!("{}:*", rng.pick(all).0.split(':').next().unwrap()),
        _ => action.to_string(),
    }
}

/// A resource pattern related to `resource`, or another one.
fn resource_pattern(rng: &mut Rng, resource: &str, all: &[(&str, String)]) -> String {
    if resource == "*" {
        return if rng.chance(70) { "*".into() } else { rng.pick(all).1.clone() };
    }
    match rng.below(9) {
        0 => "*".into(),
        1 => resource.to_string(),
        2 => format!("{}*", &resource[..1 + rng.below(resource.len())]),
        3 => {
            // `?` for one character, never for a colon: that would change the ARN's segments, and IAM rejects such
            // a policy (MalformedPolicyDocument); docs/testing.md, "The local evaluator against an independent one".
            let i = rng.below(resource.len());
            if resource.as_bytes()[i] == b':' {
                resource.to_string()
            } else {
                format!("{}?{}", &resource[..i], &resource[i + 1..])
            }
        }
        4 => resource.replacen(ACCOUNT, "*", 1),
        5 => match resource.rsplit_once('/') {
            Some((head, _)) => format!("{head}/*"),
            None => format!("{}*", &resource[..resource.len() / 2]),
        },
        6 => {
            // Resources are case-sensitive: a changed letter must not match.
            let i = resource.len() - 1 - rng.below(4.min(resource.len()));
            let mut s: Vec<char> = resource.chars().collect();
            s[i] = if s[i].is_ascii_lowercase() { s[i].to_ascii_uppercase() } else { s[i].to_ascii_lowercase() };
            s.into_iter().collect()
        }
        7 => {
            // A pattern without a colon is matched as a whole (`*batch`); one with a colon must be a well-formed
            // ARN, as IAM requires when the policy is created (MalformedPolicyDocument otherwise).
            let tail = resource.rsplit([':', '/']).next().unwrap_or(resource);
            format!("*{}", &tail[rng.below(tail.len())..])
        }
        _ => rng.pick(all).1.clone(),
    }
}

fn condition(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => json!({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}),
        1 => json!({"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
        2 => json!({"StringLike": {"aws:PrincipalTag/team": "wf-*"}}),
        _ => json!({"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}),
    }
}

fn patterns(rng: &mut Rng, make: &mut dyn FnMut(&mut Rng) -> String) -> Value {
    let n = 1 + rng.below(3);
    if n == 1 && rng.chance(50) {
        Value::String(make(rng))
    } else {
        Value::Array((0..n).map(|_| Value::String(make(rng))).collect())
    }
}

fn random_case(rng: &mut Rng, index: usize, all: &[(&str, String)]) -> Case {
    let (action, resource) = rng.pick(all).clone();
    let action_text = if rng.chance(20) { recase(rng, action) } else { action.to_string() };
    let mut policies = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let mut statements = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let mut s = serde_json::Map::new();
            s.insert("Effect".into(), json!(if rng.chance(70) { "Allow" } else { "Deny" }));
            let actions = patterns(rng, &mut |r| action_pattern(r, action, all));
            s.insert(if rng.chance(15) { "NotAction" } else { "Action" }.into(), actions);
            let resources = patterns(rng, &mut |r| resource_pattern(r, &resource, all));
            s.insert(if rng.chance(15) { "NotResource" } else { "Resource" }.into(), resources);
            if rng.chance(15) {
                s.insert("Condition".into(), condition(rng));
            }
            statements.push(Value::Object(s));
        }
        policies.push(doc(Value::Array(statements)));
    }
    Case { name: format!("random #{index}"), policies, action: action_text, resource }
}

/// At least 10,000 seeded random cases (WFBOOT_DIFF_CASES and WFBOOT_DIFF_SEED change them; scripts/fuzz.sh
/// runs a longer one).
#[test]
fn random_policies_and_requests_agree_with_iam_simulate() {
    let n: usize = std::env::var("WFBOOT_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let seed: u64 = std::env::var("WFBOOT_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20_261_201);
    let mut rng = Rng(seed.max(1));
    let all = requests();
    let started = std::time::Instant::now();
    let cases: Vec<Case> = (0..n).map(|i| random_case(&mut rng, i, &all)).collect();
    let generated = started.elapsed().as_secs_f64();
    let mut t = Timings::default();
    let (failures, unvalidated) = disagreements(&cases, &mut t);
    // Straight to stderr (see the documented cases): the count is in every run's output, CI's included.
    let _ = writeln!(
        std::io::stderr(),
        "policy_eval differential, random: {n} cases (seed {seed}), {} disagreements, {unvalidated} evaluated by \
         iam-simulate without validation, {:.1} s (generating {generated:.1} s, wfboot evaluating {:.1} s, \
         iam-simulate in {} node processes {:.1} s of which encoding the requests {:.1} s, verdicts {:.1} s)",
        failures.len(),
        started.elapsed().as_secs_f64(),
        t.ours,
        t.workers,
        t.node,
        t.encode,
        t.decode
    );
    let shown: Vec<&String> = failures.iter().take(10).collect();
    assert!(
        failures.is_empty(),
        "{} of {n} cases disagree (seed {seed}); the first:\n{}",
        failures.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}
