//! `policy_eval::scp` checked against an independent evaluator of service control policies, the npm package
//! @cloud-copilot/iam-simulate (a test tool, as for `differential`: tools/iam-simulate/sidecar.mjs). Each case is a
//! hierarchy of SCPs (one to four levels, root first) and one of wfboot's own requests with the context its write
//! call carries (tags, policy ARN, service name, region); the identity side allows everything, so the decision is
//! the SCPs'.
//!
//! A case agrees when:
//! - `Allowed`: iam-simulate allows (Strict mode, the context as given);
//! - `Denied` naming a policy: it denies explicitly;
//! - `Denied` without a policy (no SCP at a level allows it): it denies implicitly;
//! - `Unverified` (a condition on a key only AWS knows): in Discovery mode, where unknown keys may take any
//!   value, it allows only under a condition.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::conditions::Context;
use super::differential::Rng;
use super::scp::{evaluate, Level, Scp, ScpVerdict};
use crate::organisation::DECIDED_BY_THE_REQUEST;

const ACCOUNT: &str = "123456789012";

/// One of wfboot's requests: action, resource, context (key, values, multivalued).
type Request = (&'static str, String, Vec<(&'static str, Vec<String>, bool)>);

struct Case {
    name: String,
    levels: Vec<Level>,
    request: Request,
}

fn tags(team: Option<&str>) -> Vec<(&'static str, Vec<String>, bool)> {
    let mut out = vec![("aws:RequestTag/wfboot:stack", vec!["slim".to_string()], false)];
    let mut keys = vec!["wfboot:stack".to_string()];
    if let Some(t) = team {
        out.push(("aws:RequestTag/team", vec![t.to_string()], false));
        keys.push("team".into());
    }
    out.push(("aws:TagKeys", keys, true));
    out
}

/// wfboot's write requests with their contexts (resources::access), each in the region IAM's requests carry.
fn requests() -> Vec<Request> {
    let a = ACCOUNT;
    let role = format!("arn:aws:iam::{a}:role/wf-batch");
    let with_region = |mut c: Vec<(&'static str, Vec<String>, bool)>| {
        c.push(("aws:RequestedRegion", vec!["us-east-1".to_string()], false));
        c
    };
    vec![
        ("iam:CreateRole", role.clone(), with_region(tags(None))),
        ("iam:CreateRole", role.clone(), with_region(tags(Some("x")))),
        ("iam:TagRole", role.clone(), with_region(tags(Some("y")))),
        ("iam:CreatePolicy", format!("arn:aws:iam::{a}:policy/wf-policy"), with_region(tags(None))),
        (
            "iam:AttachRolePolicy",
            role.clone(),
            with_region(vec![("iam:PolicyARN", vec!["arn:aws:iam::aws:policy/AmazonS3FullAccess".to_string()], false)]),
        ),
        (
            "iam:CreateServiceLinkedRole",
            format!("arn:aws:iam::{a}:role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch"),
            with_region(vec![("iam:AWSServiceName", vec!["batch.amazonaws.com".to_string()], false)]),
        ),
        (
            "iam:PassRole",
            role.clone(),
            with_region(vec![("iam:PassedToService", vec!["ec2.amazonaws.com".to_string()], false)]),
        ),
        ("iam:AddRoleToInstanceProfile", format!("arn:aws:iam::{a}:instance-profile/wf"), with_region(vec![])),
    ]
}

/// A condition: mostly on keys the request decides, sometimes on one only AWS knows.
fn condition(rng: &mut Rng) -> Value {
    match rng.below(16) {
        0 => json!({"Null": {"aws:RequestTag/team": "true"}}),
        1 => json!({"Null": {"aws:RequestTag/team": "false"}}),
        2 => json!({"StringEquals": {"aws:RequestTag/team": "x"}}),
        3 => json!({"StringNotEquals": {"aws:RequestTag/team": ["x", "z"]}}),
        4 => json!({"StringEqualsIfExists": {"aws:RequestTag/team": "y"}}),
        5 => json!({"StringLike": {"aws:RequestedRegion": "us-*"}}),
        6 => json!({"StringNotLike": {"aws:RequestedRegion": ["eu-*", "ap-*"]}}),
        7 => json!({"ForAnyValue:StringEquals": {"aws:TagKeys": "team"}}),
        8 => json!({"ForAllValues:StringLike": {"aws:TagKeys": ["wfboot:*", "team"]}}),
        9 => json!({"ArnLike": {"iam:PolicyARN": "arn:aws:iam::aws:policy/*"}}),
        10 => json!({"ArnNotLike": {"iam:PolicyARN": "arn:aws:iam::aws:policy/Administrator*"}}),
        11 => json!({"StringEquals": {"iam:AWSServiceName": "batch.amazonaws.com"}}),
        12 => json!({"StringNotEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
        13 => json!({"StringEqualsIgnoreCase": {"aws:RequestTag/team": "X"}}),
        14 => json!({"StringEquals": {"aws:RequestedRegion": "us-east-1"}, "Null": {"aws:TagKeys": "false"}}),
        _ => json!({"StringLike": {"aws:PrincipalTag/team": "wf-*"}}),
    }
}

fn action_pattern(rng: &mut Rng, action: &str) -> String {
    let (service, name) = action.split_once(':').unwrap_or((action, ""));
    match rng.below(7) {
        0 => "*".into(),
        1 => format!("{service}:*"),
        2 => format!("{service}:{}*", &name[..1 + rng.below(name.len())]),
        3 => "s3:*".into(),
        4 => "iam:Get*".into(),
        5 => format!("{service}:Create*"),
        _ => action.to_string(),
    }
}

fn resource_pattern(rng: &mut Rng, resource: &str) -> String {
    match rng.below(5) {
        0 | 1 => "*".into(),
        2 => resource.to_string(),
        3 => resource.replacen(ACCOUNT, "*", 1),
        _ => "arn:aws:iam::*:policy/*".to_string(),
    }
}

fn statement(rng: &mut Rng, action: &str, resource: &str) -> Value {
    let mut s = serde_json::Map::new();
    s.insert("Effect".into(), json!(if rng.chance(60) { "Allow" } else { "Deny" }));
    let n = 1 + rng.below(2);
    let actions: Vec<String> = (0..n).map(|_| action_pattern(rng, action)).collect();
    s.insert(if rng.chance(15) { "NotAction" } else { "Action" }.into(), json!(actions));
    let resources = if rng.chance(70) { json!("*") } else { json!([resource_pattern(rng, resource)]) };
    s.insert(if rng.chance(10) { "NotResource" } else { "Resource" }.into(), resources);
    if rng.chance(35) {
        s.insert("Condition".into(), condition(rng));
    }
    Value::Object(s)
}

fn full_aws_access() -> Scp {
    Scp {
        id: "p-FullAWSAccess".into(),
        name: "FullAWSAccess".into(),
        document: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    }
}

fn random_case(rng: &mut Rng, index: usize, all: &[Request]) -> Case {
    let request = rng.pick(all).clone();
    let depth = 1 + rng.below(4);
    let mut levels = Vec::new();
    let mut n = 0;
    for l in 0..depth {
        let mut policies = Vec::new();
        // Most levels keep AWS's default FullAWSAccess, as most organisations do.
        if rng.chance(70) {
            policies.push(full_aws_access());
        }
        for _ in 0..rng.below(3) {
            n += 1;
            let statements: Vec<Value> = (0..1 + rng.below(3)).map(|_| statement(rng, request.0, &request.1)).collect();
            policies.push(Scp {
                id: format!("p-{n}"),
                name: format!("S{n}"),
                document: json!({"Version": "2012-10-17", "Statement": statements}),
            });
        }
        levels.push(Level { target: format!("level {l}"), policies });
    }
    Case { name: format!("random #{index}"), levels, request }
}

/// Cases from the AWS Organizations user guide ("SCP evaluation", "SCP syntax", "Example SCPs").
fn documented_cases() -> Vec<Case> {
    let all = requests();
    let untagged = all[0].clone();
    let tagged = all[1].clone();
    let scp = |id: &str, statements: Value| Scp {
        id: id.into(),
        name: id.into(),
        document: json!({"Version": "2012-10-17", "Statement": statements}),
    };
    let level = |name: &str, policies: Vec<Scp>| Level { target: name.into(), policies };
    let deny_untagged = scp(
        "p-tag",
        json!([{"Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*",
            "Condition": {"Null": {"aws:RequestTag/team": "true"}}}]),
    );
    let s3_only = scp("p-s3", json!([{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]));
    let deny_iam = scp("p-noiam", json!([{"Effect": "Deny", "Action": "iam:*", "Resource": "*"}]));
    let region = scp(
        "p-region",
        json!([{"Effect": "Deny", "NotAction": ["iam:*", "organizations:*", "sts:*"], "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1"]}}}]),
    );
    let case = |name: &str, levels: Vec<Level>, request: &Request| Case {
        name: name.into(),
        levels,
        request: request.clone(),
    };
    vec![
        case(
            "FullAWSAccess at every level",
            vec![level("root", vec![full_aws_access()]), level("account", vec![full_aws_access()])],
            &untagged,
        ),
        case(
            "a level with no SCP allows nothing",
            vec![level("root", vec![full_aws_access()]), level("account", vec![])],
            &untagged,
        ),
        case(
            "an allow list without the action",
            vec![level("root", vec![full_aws_access()]), level("ou", vec![s3_only.clone()])],
            &untagged,
        ),
        case(
            "an explicit deny at the root",
            vec![level("root", vec![full_aws_access(), deny_iam.clone()]), level("account", vec![full_aws_access()])],
            &tagged,
        ),
        case(
            "an explicit deny at the account",
            vec![level("root", vec![full_aws_access()]), level("account", vec![full_aws_access(), deny_iam])],
            &tagged,
        ),
        case(
            "require a tag, untagged",
            vec![level("root", vec![full_aws_access()]), level("ou", vec![full_aws_access(), deny_untagged.clone()])],
            &untagged,
        ),
        case(
            "require a tag, tagged",
            vec![level("root", vec![full_aws_access()]), level("ou", vec![full_aws_access(), deny_untagged])],
            &tagged,
        ),
        case("region deny exempts IAM", vec![level("root", vec![full_aws_access(), region])], &untagged),
        case(
            "allow at one level only",
            vec![level("root", vec![s3_only]), level("account", vec![full_aws_access()])],
            &tagged,
        ),
    ]
}

fn ours(c: &Case) -> ScpVerdict {
    let context = Context::new(&c.request.2, DECIDED_BY_THE_REQUEST);
    evaluate(&c.levels, c.request.0, &c.request.1, &context)
}

fn sidecar_request(c: &Case, mode: &str) -> Value {
    let mut context = serde_json::Map::new();
    for (k, v, list) in &c.request.2 {
        context.insert(k.to_string(), if *list { json!(v) } else { json!(v[0]) });
    }
    json!({
        "policies": [{"name": "AllowAll", "policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}],
        "scps": c.levels.iter().enumerate().map(|(i, l)| json!({
            "orgIdentifier": if i == 0 { "r-root".to_string() } else { format!("ou-{i}") },
            "policies": l.policies.iter().map(|p| json!({"name": p.id, "policy": p.document})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "principal": format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        "account": ACCOUNT,
        "action": c.request.0,
        "resource": c.request.1,
        "context": context,
        "mode": mode,
    })
}

/// The sidecar's answers to `requests`, in order, from one node process.
fn run_sidecar(requests: &[Value]) -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/iam-simulate");
    assert!(
        dir.join("node_modules/@cloud-copilot/iam-simulate").is_dir(),
        "the independent evaluator is not installed: run scripts/setup-emulator.sh (scripts/test.sh does it for you)"
    );
    let mut child = Command::new("node")
        .arg(dir.join("sidecar.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node (Node.js 18 or later is needed for the differential test)");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"ready\":true"), "{line}");
    let chunks: Vec<&[Value]> = requests.chunks(500).collect();
    let mut stdin = child.stdin.take().unwrap();
    let answers = std::thread::scope(|scope| {
        scope.spawn(move || {
            for (id, chunk) in chunks.iter().enumerate() {
                let mut text = serde_json::to_vec(&json!({"id": id, "cases": chunk})).unwrap();
                text.push(b'\n');
                stdin.write_all(&text).unwrap();
            }
        });
        let mut answers = Vec::with_capacity(requests.len());
        while answers.len() < requests.len() {
            line.clear();
            out.read_line(&mut line).unwrap();
            let mut answer: Value = serde_json::from_str(&line).expect("the sidecar answers JSON");
            let Value::Array(results) = answer["results"].take() else { panic!("no results: {line}") };
            answers.extend(results);
        }
        answers
    });
    let _ = child.wait();
    answers
}

/// Every request answered, split between one node process per core (at most 4).
fn independent(requests: &[Value]) -> Vec<Value> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let share = requests.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = requests.chunks(share).map(|part| scope.spawn(move || run_sidecar(part))).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// The disagreements among `cases`, described.
fn disagreements(cases: &[Case]) -> Vec<String> {
    let verdicts: Vec<ScpVerdict> = cases.iter().map(ours).collect();
    let mut requests = Vec::new();
    for (c, v) in cases.iter().zip(&verdicts) {
        requests.push(sidecar_request(c, "Strict"));
        if matches!(v, ScpVerdict::Unverified { .. }) {
            requests.push(sidecar_request(c, "Discovery"));
        }
    }
    let mut answers = independent(&requests).into_iter();
    let mut out = Vec::new();
    for (c, v) in cases.iter().zip(&verdicts) {
        let strict = answers.next().unwrap_or_default();
        let decision = strict["decision"].as_str().unwrap_or_default().to_string();
        let agrees = match v {
            ScpVerdict::Allowed => decision == "allowed",
            ScpVerdict::Denied { policy: Some(_), .. } => decision == "explicitDeny",
            ScpVerdict::Denied { policy: None, .. } => decision == "implicitDeny",
            ScpVerdict::Unverified { .. } => {
                let discovery = answers.next().unwrap_or_default();
                discovery["decision"] == "allowed" && discovery["conditional"] == true
            }
        };
        if !agrees {
            let levels: Vec<Value> =
                c.levels.iter().map(|l| json!(l.policies.iter().map(|p| &p.document).collect::<Vec<_>>())).collect();
            out.push(format!(
                "{}: {} on {} {:?}: wfboot {v:?}, iam-simulate {strict}\n  levels: {}",
                c.name,
                c.request.0,
                c.request.1,
                c.request.2,
                serde_json::to_string(&levels).unwrap()
            ));
        }
    }
    assert!(answers.next().is_none(), "as many answers as requests");
    out
}

#[test]
fn scp_evaluation_agrees_with_iam_simulate_on_documented_and_random_hierarchies() {
    let n: usize = std::env::var("WFBOOT_SCP_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
    let seed: u64 = std::env::var("WFBOOT_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20_261_206);
    let started = std::time::Instant::now();
    let mut cases = documented_cases();
    let documented = cases.len();
    let mut rng = Rng(seed.max(1));
    let all = requests();
    cases.extend((0..n).map(|i| random_case(&mut rng, i, &all)));
    let verdicts: Vec<ScpVerdict> = cases.iter().map(ours).collect();
    let count = |f: fn(&ScpVerdict) -> bool| verdicts.iter().filter(|v| f(v)).count();
    let failures = disagreements(&cases);
    // Straight to stderr, as the identity evaluator's differential test: the count is in every run's output.
    let _ = writeln!(
        std::io::stderr(),
        "policy_eval::scp differential: {documented} documented + {n} random cases (seed {seed}), {} disagreements \
         ({} allowed, {} denied explicitly, {} denied by no allow, {} unverified), {:.1} s",
        failures.len(),
        count(|v| matches!(v, ScpVerdict::Allowed)),
        count(|v| matches!(v, ScpVerdict::Denied { policy: Some(_), .. })),
        count(|v| matches!(v, ScpVerdict::Denied { policy: None, .. })),
        count(|v| matches!(v, ScpVerdict::Unverified { .. })),
        started.elapsed().as_secs_f64()
    );
    let shown: Vec<&String> = failures.iter().take(8).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree (seed {seed}); the first:\n{}",
        failures.len(),
        cases.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}
