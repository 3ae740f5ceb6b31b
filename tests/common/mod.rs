//! Test harness: a real moto server per test (tools/emulator.py, started on a free 127.0.0.1 port and
//! stopped by PID), a request log to count calls honestly, an admin IAM client for arranging and checking
//! state, and the wfboot binary pointed at the emulator with an isolated AWS environment.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The access key wfboot runs with in tests; the admin client uses another, so the log tells them apart.
pub const WFBOOT_KEY: &str = "AKIAWFBOOTTEST000001";
pub const ADMIN_KEY: &str = "AKIAADMINTEST0000001";
pub const ACCOUNT: &str = "123456789012";
/// The secret key wfboot is given in tests: it must never appear in any output.
pub const SECRET: &str = "wfboot-test-secret-DO-NOT-PRINT";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("WFBOOT_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the moto emulator is not installed: run scripts/setup-emulator.sh (scripts/test.sh does it for you)"
    );
    venv
}

/// Realism with a 10 s service lag (Lambda, Step Functions and Batch see a new role late) and short IAM/EC2 windows:
/// for `bootstrap --wait`, whose probes must wait the lag out.
pub const SERVICE_LAG: [&str; 11] = [
    "--realism",
    "--iam-lag",
    "0.5",
    "--ec2-lag",
    "1",
    "--service-lag",
    "10",
    "--lag-jitter",
    "0",
    "--batch-transition",
    "0.5",
];

/// The realism flags of [`Emulator::start_realistic`].
pub const REALISM: [&str; 7] = ["--realism", "--iam-lag", "1.5", "--ec2-lag", "3", "--write-hold", "0.1"];

pub struct Emulator {
    child: Child,
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub service: String,
    pub action: String,
    pub write: bool,
    pub access_key: String,
    pub status: Option<u64>,
    /// Set when the emulator answered with an injected fault or held the request. Such a request never reached
    /// moto, except for `drop-after` and `500-after`, whose write moto took before the answer was lost.
    pub fault: Option<String>,
    /// For `drop-after` and `500-after`: whether moto took the write (answered it 2xx).
    pub applied: Option<bool>,
    /// When it arrived (seconds, wall clock) and how long the emulator took to answer it (ms, added latency
    /// included). The log is in the order the answers were complete.
    pub t: f64,
    pub ms: f64,
    /// What the emulator's realism mode (tools/realism.py) answered instead of moto, if it did: "stale_read",
    /// "concurrent_modification", "delete_conflict", "ec2_not_propagated", "expired_token", ...
    pub realism: Option<String>,
}

impl Request {
    /// When its answer was complete (seconds, wall clock).
    pub fn answered(&self) -> f64 {
        self.t + self.ms / 1000.0
    }
}

impl Emulator {
    pub fn start() -> Emulator {
        Self::start_with(&[])
    }

    /// An emulator with real AWS's consistency and concurrency (tools/realism.py), with windows short enough
    /// for CI: IAM reads lag 1.5 s behind writes, EC2 refuses a new profile for 3 s, a write holds its entity
    /// for 0.1 s.
    pub fn start_realistic() -> Emulator {
        Self::start_with(&REALISM)
    }

    pub fn start_with(extra_args: &[&str]) -> Emulator {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("requests.jsonl");
        let mut child = StdCommand::new(python())
            .arg(repo().join("tools/emulator.py"))
            .args(["--host", "127.0.0.1", "--port", "0", "--log"])
            .arg(&log)
            .args(extra_args)
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::piped()) // the emulator exits when this closes, even if the test process dies
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tools/emulator.py");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read READY line");
        let url = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("emulator did not start: {line:?}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Emulator { child, url, log, _dir: dir }
    }

    /// AWS requests seen so far (internal /moto-api/ calls excluded).
    pub fn requests(&self) -> Vec<Request> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| !v["internal"].as_bool().unwrap_or(false))
            .map(|v| Request {
                service: v["service"].as_str().unwrap_or_default().to_string(),
                action: v["action"].as_str().unwrap_or_default().to_string(),
                write: v["write"].as_bool().unwrap_or(true),
                access_key: v["access_key"].as_str().unwrap_or_default().to_string(),
                status: v["status"].as_u64(),
                fault: v["fault"].as_str().map(str::to_string),
                applied: v["applied"].as_bool(),
                t: v["t"].as_f64().unwrap_or_default(),
                ms: v["ms"].as_f64().unwrap_or_default(),
                realism: v["realism"].as_str().map(str::to_string),
            })
            .collect()
    }

    /// wfboot's requests after `mark` (an earlier `requests().len()`).
    pub fn wfboot_requests_since(&self, mark: usize) -> Vec<Request> {
        self.requests().into_iter().skip(mark).filter(|r| r.access_key == WFBOOT_KEY).collect()
    }

    /// The write actions of wfboot's that changed the account after `mark`, sorted: answered 2xx by moto (not
    /// faulted, held, or refused), or taken by moto before a fault lost the answer (`drop-after`, `500-after`).
    pub fn wfboot_writes_since(&self, mark: usize) -> Vec<String> {
        let mut w: Vec<String> = self
            .wfboot_requests_since(mark)
            .into_iter()
            .filter(|r| {
                r.write
                    && (r.applied == Some(true)
                        || (r.fault.is_none() && r.status.is_some_and(|s| (200..300).contains(&s))))
            })
            .map(|r| r.action)
            .collect();
        w.sort();
        w
    }

    /// Every write call wfboot sent after `mark`, sorted, whatever its answer (refused, 409, faulted, held):
    /// what a test that claims "no write" must find empty.
    pub fn wfboot_write_attempts_since(&self, mark: usize) -> Vec<String> {
        let mut w: Vec<String> =
            self.wfboot_requests_since(mark).into_iter().filter(|r| r.write).map(|r| r.action).collect();
        w.sort();
        w
    }

    pub fn mark(&self) -> usize {
        self.requests().len()
    }

    /// An IAM client for arranging and checking state, independent of wfboot.
    pub async fn admin(&self) -> aws_sdk_iam::Client {
        self.client_with(ADMIN_KEY, "admin-secret").await
    }

    /// An IAM client with the given keys (for when the emulator enforces IAM policies).
    pub async fn client_with(&self, key: &str, secret: &str) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk_config(key, secret))
    }

    /// SDK configuration for test clients of any service, pointed at this emulator.
    pub fn sdk_config(&self, key: &str, secret: &str) -> aws_config::SdkConfig {
        let creds = aws_sdk_iam::config::Credentials::new(key, secret, None, None, "test");
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds))
            .endpoint_url(&self.url)
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .build()
    }

    /// The wfboot binary, pointed at this emulator, with nothing from the developer's own AWS set-up.
    pub fn wfboot(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::from_std(self.wfboot_std());
        cmd.timeout(Duration::from_secs(120));
        cmd
    }

    /// The same as a plain std Command, for tests that signal or kill the process.
    pub fn wfboot_std(&self) -> StdCommand {
        let mut cmd = isolated_std();
        cmd.env("AWS_ACCESS_KEY_ID", WFBOOT_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.url);
        cmd
    }

    /// Switch IAM enforcement on after `budget` more requests ("0": now), through moto's own API.
    pub fn reset_auth(&self, budget: &str) {
        let _ = self.post("/moto-api/reset-auth", "text/plain", budget);
    }

    /// POST a JSON body to the emulator's control endpoint (hold after N writes, fault rate).
    pub fn control(&self, body: &str) -> serde_json::Value {
        let response = self.post("/__emulator/control", "application/json", body);
        let json = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        serde_json::from_str(json).unwrap_or(Value::Null)
    }

    /// Realism mode: end every lag window now, as if the last writes were a while ago (an arranged drift is then
    /// old news, and the admin client reads what the account is).
    pub fn settle(&self) {
        self.control(r#"{"settle": true}"#);
    }

    /// How many of wfboot's requests after `mark` the realism mode answered with `kind`.
    pub fn realism_answers_since(&self, mark: usize, kind: &str) -> usize {
        self.wfboot_requests_since(mark).iter().filter(|r| r.realism.as_deref() == Some(kind)).count()
    }

    /// Wait until the emulator handles no request: one a client gave up (a black hole, an attempt past its deadline)
    /// is logged only once the emulator is done with it, which can be after the client exited.
    /// Quiet means nothing in flight and nothing newly logged for 200 ms (a request whose connection was accepted
    /// but whose handling has not begun is not counted in flight yet).
    pub fn quiet(&self) {
        let start = std::time::Instant::now();
        let (mut logged, mut since) = (usize::MAX, std::time::Instant::now());
        loop {
            let busy = self.control("{}")["in_flight"] != 0;
            let now = self.requests().len();
            if busy || now != logged {
                (logged, since) = (now, std::time::Instant::now());
            } else if since.elapsed() >= Duration::from_millis(200) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "requests still in flight");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// After killing a client that was held: drop what it left behind, wait until nothing it sent is still
    /// being handled, then lift the hold.
    pub fn drain_and_release(&self) {
        self.control(r#"{"drop_held": true}"#);
        let start = std::time::Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let state = self.control("{}");
            if state["in_flight"] == 0 && start.elapsed() > Duration::from_millis(300) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "requests still in flight: {state}");
        }
        self.control(r#"{"hold_after_writes": null}"#);
    }

    fn post(&self, path: &str, content_type: &str, body: &str) -> String {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect to the emulator");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"), "{response}");
        response
    }

    /// Creates the operator user `demo`, as the tutorials assume.
    pub async fn create_demo_user(&self) {
        self.admin().await.create_user().user_name("demo").send().await.expect("create user demo");
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SDK configuration with the credentials of `role` in `account`, assumed with `key`.
pub async fn assumed_config(
    emu: &Emulator,
    key: &str,
    secret: &str,
    account: &str,
    role: &str,
) -> aws_config::SdkConfig {
    let base = emu.sdk_config(key, secret);
    let out = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{role}"))
        .role_session_name("test-admin")
        .send()
        .await
        .expect("assume a role for the test's admin client");
    let c = out.credentials().unwrap();
    let creds = aws_sdk_iam::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "test",
    );
    base.to_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds))
        .build()
}

/// An IAM admin client scoped to `account` (moto needs no role to exist for this, without enforcement). Its
/// session renews itself, so it outlives the realism mode's short sessions.
pub async fn account_admin(emu: &Emulator, account: &str) -> aws_sdk_iam::Client {
    let base = emu.sdk_config(ADMIN_KEY, "admin-secret");
    let provider = RenewingSession {
        sts: aws_sdk_sts::Client::new(&base),
        role_arn: format!("arn:aws:iam::{account}:role/TestAdmin"),
    };
    let config = base
        .to_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider))
        .build();
    aws_sdk_iam::Client::new(&config)
}

/// sts:AssumeRole each time the SDK's identity cache wants credentials (before the held ones expire).
#[derive(Debug)]
struct RenewingSession {
    sts: aws_sdk_sts::Client,
    role_arn: String,
}

impl aws_credential_types::provider::ProvideCredentials for RenewingSession {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            use aws_credential_types::provider::error::CredentialsError;
            let out = self
                .sts
                .assume_role()
                .role_arn(&self.role_arn)
                .role_session_name("test-admin")
                .send()
                .await
                .map_err(CredentialsError::provider_error)?;
            let c = out.credentials().ok_or_else(|| CredentialsError::not_loaded("no credentials"))?;
            Ok(aws_sdk_iam::config::Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                std::time::SystemTime::try_from(*c.expiration()).ok(),
                "test",
            ))
        })
    }
}

/// wfboot with an environment that cannot reach anything but what the test sets: no shared config files,
/// no instance metadata service, no inherited AWS_* variables.
pub fn wfboot_isolated() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::from_std(isolated_std());
    cmd.timeout(Duration::from_secs(120));
    cmd
}

fn isolated_std() -> StdCommand {
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("wfboot"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_CONFIG_FILE", "/nonexistent/wfboot-test/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/wfboot-test/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE");
    cmd
}

/// The attempts wfboot gave up in a run at `-vv` (its debug line "SERVICE:Operation: no answer within N ms"):
/// (operation, N).
pub fn given_up(stderr: &str) -> Vec<(String, u64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let (before, after) = l.split_once(": no answer within ")?;
            let op = before.rsplit(' ').next()?.rsplit(':').next()?.to_string();
            let ms = after.split(' ').next()?.parse().ok()?;
            Some((op, ms))
        })
        .collect()
}

/// The last 40 lines of a -vv run's stderr (its whole debug log is too long to read in a failure).
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The same canonical summary as the boto3 peer's dump_state.py (tests/fixtures/README.md), built with the admin client.
pub async fn dump_state(iam: &aws_sdk_iam::Client) -> Value {
    let user: Vec<String> = match iam.list_attached_user_policies().user_name("demo").send().await {
        Ok(out) => sorted(out.attached_policies().iter().filter_map(|p| p.policy_arn.clone())),
        Err(_) => vec![],
    };
    let policies = iam.list_policies().scope(aws_sdk_iam::types::PolicyScopeType::Local).send().await.unwrap();
    let customer = sorted(policies.policies().iter().filter_map(|p| p.policy_name.clone()));
    let mut roles = BTreeMap::new();
    for r in iam.list_roles().send().await.unwrap().roles() {
        let doc = r.assume_role_policy_document().unwrap_or("{}");
        let doc: Value = serde_json::from_str(&percent_decode(doc)).unwrap();
        let principals: Vec<Value> =
            doc["Statement"].as_array().unwrap().iter().map(|s| s["Principal"].clone()).collect();
        let attached = iam.list_attached_role_policies().role_name(r.role_name()).send().await.unwrap();
        let attached = sorted(
            attached
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn.as_deref())
                .map(|a| a.rsplit(':').next().unwrap().to_string()),
        );
        roles.insert(format!("{}{}", r.path(), r.role_name()), json!({"trust": principals, "attached": attached}));
    }
    let mut profiles = BTreeMap::new();
    for p in iam.list_instance_profiles().send().await.unwrap().instance_profiles() {
        profiles.insert(
            p.instance_profile_name().to_string(),
            p.roles().iter().map(|r| r.role_name().to_string()).collect::<Vec<_>>(),
        );
    }
    json!({"user_demo": user, "customer_policies": customer, "roles": roles, "instance_profiles": profiles})
}

/// The whole end state of the account's IAM, for "the account equals the stack": every role (path, description,
/// trust document by meaning, conditions included, permissions boundary, tags, attached and inline policies), every
/// customer policy (path, description, default document by meaning, number of versions, tags), every instance
/// profile (path, roles, tags), the users' attached policies. Ids and dates are left out; a document is compared by
/// meaning ([`canonical`]). Two accounts bootstrapped from the same stack have equal states.
pub async fn full_state(iam: &aws_sdk_iam::Client) -> Value {
    fn tags(t: &[aws_sdk_iam::types::Tag]) -> Value {
        t.iter().map(|t| (t.key().to_string(), json!(t.value()))).collect::<serde_json::Map<_, _>>().into()
    }
    fn document(text: Option<&str>) -> Value {
        text.map(|t| canonical(&serde_json::from_str(&percent_decode(t)).unwrap())).unwrap_or(Value::Null)
    }
    let mut roles = BTreeMap::new();
    for r in iam.list_roles().into_paginator().items().send().try_collect().await.unwrap() {
        let name = r.role_name();
        let role = iam.get_role().role_name(name).send().await.unwrap().role.unwrap();
        let attached = iam.list_attached_role_policies().role_name(name).send().await.unwrap();
        let inline = iam.list_role_policies().role_name(name).send().await.unwrap();
        let mut inline_docs = BTreeMap::new();
        for p in inline.policy_names() {
            let doc = iam.get_role_policy().role_name(name).policy_name(p).send().await.unwrap();
            inline_docs.insert(p.to_string(), document(Some(doc.policy_document())));
        }
        roles.insert(
            format!("{}{}", role.path(), name),
            json!({
                "description": role.description(),
                "trust": document(role.assume_role_policy_document()),
                "boundary": role.permissions_boundary().and_then(|b| b.permissions_boundary_arn()),
                "tags": tags(role.tags()),
                "attached": sorted(attached.attached_policies().iter().filter_map(|p| p.policy_arn.clone())),
                "inline": inline_docs,
            }),
        );
    }
    let mut policies = BTreeMap::new();
    let local = iam.list_policies().scope(aws_sdk_iam::types::PolicyScopeType::Local).send().await.unwrap();
    for p in local.policies() {
        let arn = p.arn().unwrap();
        let policy = iam.get_policy().policy_arn(arn).send().await.unwrap().policy.unwrap();
        let version = policy.default_version_id().unwrap();
        let doc = iam.get_policy_version().policy_arn(arn).version_id(version).send().await.unwrap();
        let versions = iam.list_policy_versions().policy_arn(arn).send().await.unwrap();
        policies.insert(
            format!("{}{}", policy.path().unwrap_or("/"), policy.policy_name().unwrap()),
            json!({
                "description": policy.description(),
                "document": document(doc.policy_version().and_then(|v| v.document())),
                "versions": versions.versions().len(),
                "tags": tags(policy.tags()),
            }),
        );
    }
    let mut profiles = BTreeMap::new();
    for p in iam.list_instance_profiles().send().await.unwrap().instance_profiles() {
        let name = p.instance_profile_name();
        let profile = iam.get_instance_profile().instance_profile_name(name).send().await.unwrap();
        let profile = profile.instance_profile.unwrap();
        profiles.insert(
            format!("{}{}", p.path(), name),
            json!({
                "roles": sorted(p.roles().iter().map(|r| r.role_name().to_string())),
                "tags": tags(profile.tags()),
            }),
        );
    }
    let mut users = BTreeMap::new();
    for u in iam.list_users().send().await.unwrap().users() {
        let attached = iam.list_attached_user_policies().user_name(u.user_name()).send().await.unwrap();
        users.insert(
            u.user_name().to_string(),
            sorted(attached.attached_policies().iter().filter_map(|p| p.policy_arn.clone())),
        );
    }
    json!({"roles": roles, "policies": policies, "instance_profiles": profiles, "users": users})
}

/// A policy document in a form where equal meaning is equal JSON: a single string where a list may stand becomes
/// a one-item list, and lists (statements, actions, resources, principals, condition values) are sorted.
pub fn canonical(doc: &Value) -> Value {
    const LISTS: [&str; 7] = ["Statement", "Action", "NotAction", "Resource", "NotResource", "AWS", "Service"];
    fn go(v: &Value, key: Option<&str>, in_condition: bool) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter().map(|(k, v)| (k.clone(), go(v, Some(k), in_condition || k == "Condition"))).collect(),
            ),
            Value::Array(items) => {
                let mut items: Vec<Value> = items.iter().map(|i| go(i, None, in_condition)).collect();
                items.sort_by_key(|i| i.to_string());
                items.dedup();
                Value::Array(items)
            }
            Value::String(_) if key.is_some_and(|k| LISTS.contains(&k)) || (in_condition && key.is_some()) => {
                json!([v])
            }
            other => other.clone(),
        }
    }
    go(doc, None, false)
}

fn sorted(items: impl Iterator<Item = impl Into<String>>) -> Vec<String> {
    let mut v: Vec<String> = items.map(Into::into).collect();
    v.sort();
    v
}

pub fn percent_decode(s: &str) -> String {
    if s.trim_start().starts_with('{') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A Lambda deployment package (a zip with one Python file), made by the emulator's Python.
pub fn lambda_zip() -> Vec<u8> {
    StdCommand::new(python())
        .args(["-c", "import io,sys,zipfile;b=io.BytesIO();z=zipfile.ZipFile(b,'w');z.writestr('index.py','x=1');z.close();sys.stdout.buffer.write(b.getvalue())"])
        .output()
        .expect("make a zip with the emulator's python")
        .stdout
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Attach six AWS managed read-only policies to the user `demo`: with the managed policies the default stack
/// attaches to its operator user, more than IAM's quota of 10 per user.
pub async fn crowd_the_demo_users_managed_policies(iam: &aws_sdk_iam::Client) {
    for p in [
        "AmazonRDSReadOnlyAccess",
        "AmazonDynamoDBReadOnlyAccess",
        "AmazonSNSReadOnlyAccess",
        "AmazonEC2ReadOnlyAccess",
        "AWSCloudTrail_ReadOnlyAccess",
        "CloudWatchReadOnlyAccess",
    ] {
        let arn = format!("arn:aws:iam::aws:policy/{p}");
        iam.attach_user_policy().user_name("demo").policy_arn(arn).send().await.unwrap();
    }
}
