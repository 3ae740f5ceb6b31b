//! A bootstrap tool is trusted only if a run that dies anywhere is finished by running it again, and if
//! faults make it stop clearly rather than damage anything. Against the real emulator.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

/// Writes of a fresh bootstrap of the default stack (the plan's own count, checked in tests/it/bootstrap.rs).
const FRESH_WRITES: usize = 32;

fn expected_state() -> Value {
    serde_json::from_str(include_str!("../fixtures/slim-workflow.state.json")).unwrap()
}

/// Wait until the emulator has answered `n` of wfboot's writes; the requests after them are held.
fn wait_for_writes(emu: &Emulator, n: usize, child: &mut std::process::Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while emu.wfboot_writes_since(0).len() < n {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("wfboot exited ({status}) before its write {n}"));
        }
        if Instant::now() > deadline {
            return Err(format!("wfboot did not reach write {n} in time"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Kill wfboot (SIGKILL) right after its `n`-th write, then run it normally: the end state must be a clean
/// run's, and the second run must make exactly the writes the first did not.
async fn crash_point(n: usize) -> Result<(), String> {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    emu.control(&format!(r#"{{"hold_after_writes": {n}}}"#));
    let mut child = emu
        .wfboot_std()
        .args(["bootstrap", "--yes", "--user-name", "demo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let waited = wait_for_writes(&emu, n, &mut child);
    let _ = child.kill();
    let _ = child.wait();
    waited?;
    emu.drain_and_release();
    let first = emu.wfboot_writes_since(0).len();
    if first != n {
        let log: Vec<String> = emu
            .wfboot_requests_since(0)
            .iter()
            .filter(|r| r.write)
            .map(|r| format!("{} {:?} {:?}", r.action, r.status, r.fault))
            .collect();
        return Err(format!("crash point {n}: {first} writes reached the account before the kill: {log:?}"));
    }
    let mark = emu.mark();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    if !out.status.success() {
        return Err(format!("crash point {n}: the re-run failed: {}", stderr(&out)));
    }
    let second = emu.wfboot_writes_since(mark).len();
    if second != FRESH_WRITES - n {
        return Err(format!("crash point {n}: the re-run made {second} writes, expected {}", FRESH_WRITES - n));
    }
    let state = dump_state(&emu.admin().await).await;
    if state != expected_state() {
        return Err(format!("crash point {n}: end state differs:\n{state:#}"));
    }
    Ok(())
}

#[test]
fn a_run_killed_after_any_write_is_completed_by_the_next_run() {
    let points: Vec<usize> = (1..=FRESH_WRITES).collect();
    // Two workers: the machine has two cores, and each crash point starts its own emulator.
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = points
            .chunks(FRESH_WRITES.div_ceil(2))
            .map(|chunk| {
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    chunk.iter().filter_map(|&n| rt.block_on(crash_point(n)).err()).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let converged = FRESH_WRITES - failures.len();
    println!("crash matrix: {converged} of {FRESH_WRITES} crash points converge");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn ctrl_c_during_apply_finishes_what_is_in_flight_starts_nothing_new_and_a_rerun_completes() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    emu.control(r#"{"hold_after_writes": 10}"#);
    // A bound of 8 requests in flight leaves changes queued behind the held ones: those must never start.
    let mut child = emu
        .wfboot_std()
        .args(["bootstrap", "--yes", "--user-name", "demo", "--max-concurrency", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_writes(&emu, 10, &mut child).unwrap();
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    // Lift the hold: the requests that were in flight are retried by the SDK and complete.
    emu.control(r#"{"hold_after_writes": null}"#);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("interrupted"), "{err}");
    assert!(err.contains("run the same command again"), "{err}");
    let done = emu.wfboot_writes_since(0).len();
    assert!(done < FRESH_WRITES, "every change was made despite the interrupt");

    let mark = emu.mark();
    let rerun = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert_eq!(emu.wfboot_writes_since(mark).len(), FRESH_WRITES - done);
    assert_eq!(dump_state(&emu.admin().await).await, expected_state());
}

/// The whole end state (tests/common `full_state`) of a fault-free bootstrap of the default stack for user
/// `demo`: what a run under faults must reach. Made once, on an emulator of its own.
async fn reference_state() -> Value {
    static REFERENCE: tokio::sync::OnceCell<Value> = tokio::sync::OnceCell::const_new();
    REFERENCE
        .get_or_init(|| async {
            let emu = Emulator::start();
            emu.create_demo_user().await;
            let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            full_state(&emu.admin().await).await
        })
        .await
        .clone()
}

/// All six fault kinds of the emulator: refused before moto (throttle, 500, 503, drop), and taken by moto with
/// the answer lost (drop-after, 500-after: writes only).
const EVERY_FAULT: &str = "throttle,500,503,drop,drop-after,500-after";

/// One run of `args` (JSON output) against an emulator injecting `kinds` at `rate`: it must converge in this
/// one run, exit 0, with nothing failed. Returns the result and a line for the test's output.
fn under_faults(emu: &Emulator, kinds: &str, rate: f64, args: &[&str]) -> Result<(Value, String), String> {
    let mark = emu.mark();
    emu.control(&format!(r#"{{"fault_rate": {rate}}}"#));
    let started = Instant::now();
    let out = emu.wfboot().args(args).args(["--output", "json"]).output().unwrap();
    let wall = started.elapsed().as_secs_f64();
    emu.control(r#"{"fault_rate": 0}"#);
    let faults = emu.requests().into_iter().skip(mark).filter(|r| r.fault.is_some()).count();
    if !out.status.success() {
        return Err(format!(
            "{kinds} at {rate}: exit {:?} after {faults} faults:\n{}",
            out.status.code(),
            stderr(&out)
        ));
    }
    if faults == 0 {
        return Err(format!("{kinds} at {rate}: no fault was injected"));
    }
    let json: Value = serde_json::from_str(&stdout(&out)).map_err(|e| e.to_string())?;
    let retries = json["summary"]["retries"].as_u64().unwrap_or_default();
    Ok((json, format!("{kinds} at {rate}: {faults} faults, {retries} retries by wfboot's own loop, {wall:.1} s")))
}

/// A fresh bootstrap of the default stack under `kinds` at 10, 20 and 30 %: ONE run each, exit 0, every change
/// counted done by this run (none "already done by someone else", though a lost answer's create is answered
/// EntityAlreadyExists), and the account equal to a fault-free run's, documents, tags and boundaries included.
async fn fresh_bootstraps_converge_in_one_run(kinds: &str) {
    let want = reference_state().await;
    let mut failures = Vec::new();
    for (rate, seed) in [(0.1, "11"), (0.2, "12"), (0.3, "13")] {
        let emu = Emulator::start_with(&["--fault-kinds", kinds, "--seed", seed]);
        emu.create_demo_user().await;
        match under_faults(&emu, kinds, rate, &["bootstrap", "--yes", "--user-name", "demo"]) {
            Ok((json, line)) => {
                println!("{line}");
                let summary = &json["summary"];
                if summary["writes_done"] != json!(FRESH_WRITES) || summary["already_done"] != json!(0) {
                    failures.push(format!("{kinds} at {rate}: the summary miscounts: {summary}"));
                }
                let state = full_state(&emu.admin().await).await;
                if state != want {
                    failures
                        .push(format!("{kinds} at {rate}: the end state differs from a fault-free run's:\n{state:#}"));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn throttling_at_up_to_30_percent_costs_no_second_run() {
    fresh_bootstraps_converge_in_one_run("throttle").await;
}

#[tokio::test]
async fn http_500_at_up_to_30_percent_costs_no_second_run() {
    fresh_bootstraps_converge_in_one_run("500").await;
}

#[tokio::test]
async fn http_503_at_up_to_30_percent_costs_no_second_run() {
    fresh_bootstraps_converge_in_one_run("503").await;
}

#[tokio::test]
async fn connections_dropped_before_the_answer_at_up_to_30_percent_cost_no_second_run() {
    fresh_bootstraps_converge_in_one_run("drop").await;
}

#[tokio::test]
async fn writes_that_took_effect_but_lost_their_answer_are_read_back_not_repeated_nor_blamed_on_someone_else() {
    fresh_bootstraps_converge_in_one_run("drop-after").await;
}

#[tokio::test]
async fn a_500_after_the_write_took_effect_is_resolved_by_reading_in_the_same_run() {
    fresh_bootstraps_converge_in_one_run("500-after").await;
}

#[tokio::test]
async fn ten_percent_each_of_throttling_5xx_and_dropped_answers_costs_no_second_run() {
    // One draw at 30 % among three kinds: 10 % of the requests throttled, 10 % answered 500, 10 % of the writes
    // taken with their answer dropped.
    fresh_bootstraps_converge_in_one_run("throttle,500,drop-after").await;
}

#[tokio::test]
async fn a_repair_under_every_fault_at_30_percent_converges_in_one_run() {
    let emu = Emulator::start_with(&["--fault-kinds", EVERY_FAULT, "--seed", "21"]);
    emu.create_demo_user().await;
    emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).assert().success();
    let want = reference_state().await;
    // Drift of every sort: a role gone, a policy detached, a trust document and a policy document changed, the
    // instance profile emptied.
    let iam = emu.admin().await;
    let gone = "StepFunctionsLambdaRole";
    for p in iam.list_attached_role_policies().role_name(gone).send().await.unwrap().attached_policies() {
        iam.detach_role_policy().role_name(gone).policy_arn(p.policy_arn().unwrap()).send().await.unwrap();
    }
    for p in iam.list_role_policies().role_name(gone).send().await.unwrap().policy_names() {
        iam.delete_role_policy().role_name(gone).policy_name(p).send().await.unwrap();
    }
    iam.delete_role().role_name(gone).send().await.unwrap();
    let lambda_role = "SLIM-Extras_for_Lambda";
    iam.detach_role_policy()
        .role_name(lambda_role)
        .policy_arn("arn:aws:iam::aws:policy/AmazonSQSFullAccess")
        .send()
        .await
        .unwrap();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.update_assume_role_policy().role_name("AWSBatchServiceRole").policy_document(trust).send().await.unwrap();
    let policy = format!("arn:aws:iam::{ACCOUNT}:policy/LambdaBatchExecutionPolicy");
    let narrow =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"batch:DescribeJobs","Resource":"*"}]}"#;
    iam.create_policy_version().policy_arn(&policy).policy_document(narrow).set_as_default(true).send().await.unwrap();
    let profile = "SLIM-Extras_ECS_for_EC2";
    iam.remove_role_from_instance_profile().instance_profile_name(profile).role_name(profile).send().await.unwrap();

    let (json, line) = under_faults(&emu, EVERY_FAULT, 0.3, &["bootstrap", "--yes", "--user-name", "demo"]).unwrap();
    println!("repair: {line}");
    assert_eq!(json["summary"]["failed"], json!(0), "{}", json["summary"]);
    let mut state = full_state(&iam).await;
    // The drift's own policy version stays as a non-default version (bootstrap keeps old versions while IAM
    // has room): only the count differs from a fresh run's.
    let versions = &mut state["policies"]["/LambdaBatchExecutionPolicy"]["versions"];
    assert!(versions.as_u64().unwrap() >= 3, "{versions}");
    *versions = want["policies"]["/LambdaBatchExecutionPolicy"]["versions"].clone();
    assert_eq!(state, want, "the repaired account differs from a fresh run's");
    // Re-running then makes no write call at all, not even one answered 4xx.
    let mark = emu.mark();
    emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).assert().success();
    assert_eq!(emu.wfboot_write_attempts_since(mark), Vec::<String>::new());
}

#[tokio::test]
async fn destroy_under_every_fault_at_30_percent_converges_in_one_run() {
    let emu = Emulator::start_with(&["--fault-kinds", EVERY_FAULT, "--seed", "31"]);
    emu.create_demo_user().await;
    emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).assert().success();
    let (json, line) = under_faults(&emu, EVERY_FAULT, 0.3, &["destroy", "--yes"]).unwrap();
    println!("destroy: {line}");
    assert_eq!(json["summary"]["failed"], json!(0), "{}", json["summary"]);
    assert_eq!(json["verified"], json!(true), "{json}");
    let state = full_state(&emu.admin().await).await;
    assert_eq!(state["policies"], json!({}), "{state:#}");
    assert_eq!(state["instance_profiles"], json!({}), "{state:#}");
    let roles: Vec<&String> = state["roles"].as_object().unwrap().keys().collect();
    assert!(roles.iter().all(|r| r.starts_with("/aws-service-role/")), "{roles:?}");
}

#[tokio::test]
async fn a_three_account_run_under_every_fault_at_30_percent_converges_in_one_run() {
    const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
    let emu = Emulator::start_with(&["--fault-kinds", EVERY_FAULT, "--seed", "41"]);
    for account in ACCOUNTS {
        account_admin(&emu, account).await.create_user().user_name("demo").send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "accounts.txt", &ACCOUNTS.join("\n"));
    let args = [
        "bootstrap",
        "--yes",
        "--user-name",
        "demo",
        "--accounts",
        file.to_str().unwrap(),
        "--assume-role-name",
        "WfbootDeployer",
    ];
    let (json, line) = under_faults(&emu, EVERY_FAULT, 0.3, &args).unwrap();
    println!("3 accounts: {line}");
    assert_eq!(json["summary"]["failed"], json!(0), "{}", json["summary"]);
    let want = reference_state().await.to_string();
    for account in ACCOUNTS {
        let want: Value = serde_json::from_str(&want.replace(ACCOUNT, account)).unwrap();
        assert_eq!(full_state(&account_admin(&emu, account).await).await, want, "account {account}");
    }
}

#[tokio::test]
async fn constant_throttling_stops_a_bootstrap_with_the_throttling_named_within_a_minute() {
    let emu = Emulator::start_with(&["--fault-kinds", "throttle"]);
    emu.create_demo_user().await;
    emu.control(r#"{"fault_rate": 1}"#);
    let started = Instant::now();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    let took = started.elapsed();
    println!("100 % throttling: stopped after {:.1} s", took.as_secs_f64());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Throttling"), "{}", stderr(&out));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_eq!(emu.wfboot_write_attempts_since(0), Vec::<String>::new());
}

#[tokio::test]
async fn constant_throttling_stops_with_a_clear_message_after_bounded_retries() {
    let emu = Emulator::start_with(&["--fault-rate", "1", "--fault-kinds", "throttle"]);
    let started = Instant::now();
    let out = emu.wfboot().args(["plan", "--skip-user", "--retry-attempts", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Throttling"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--max-concurrency"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60));
    // The first round trip is sts:GetCallerIdentity and the reads by name of the default stack (5 roles, the
    // instance profile, the service-linked roles): each is tried exactly 3 times, and nothing later starts.
    let requests = emu.requests();
    let mut per_action: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &requests {
        *per_action.entry(r.action.as_str()).or_default() += 1;
    }
    assert_eq!(per_action.get("GetCallerIdentity"), Some(&3), "{per_action:?}");
    let first_round =
        BTreeMap::from([("GetCallerIdentity", 1), ("GetRole", 5), ("GetInstanceProfile", 1), ("ListRoles", 1)]);
    for (action, n) in &per_action {
        let calls = first_round.get(action).unwrap_or_else(|| panic!("{action} started after the first round failed"));
        assert!(*n <= 3 * calls, "{action}: {n} attempts for {calls} call(s) with --retry-attempts 3");
    }
}

#[tokio::test]
async fn no_secret_is_printed_even_with_the_most_verbose_logging() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo", "-vvv"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.len() > 10_000, "-vvv printed suspiciously little: {} bytes", all.len());
    assert!(!all.contains(SECRET), "the secret access key was printed");
}

#[tokio::test]
async fn plan_calls_do_not_grow_with_unrelated_roles_and_policies_in_the_account() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).assert().success();
    // The calls a plan makes: its requests, less the attempts it gave up and sent again (-vv says each; a loaded
    // machine can make a read outlast its deadline), once the emulator has answered every one.
    let count_plan_calls = || {
        let mark = emu.mark();
        let out = emu.wfboot().args(["plan", "--user-name", "demo", "--detailed-exitcode", "-vv"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", tail(&stderr(&out)));
        emu.quiet();
        emu.wfboot_requests_since(mark).len() - given_up(&stderr(&out)).len()
    };
    let small = count_plan_calls();

    let iam = emu.admin().await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    for chunk in (0..1200).collect::<Vec<_>>().chunks(50) {
        futures_join(chunk.iter().map(|i| {
            let iam = iam.clone();
            async move {
                iam.create_role()
                    .role_name(format!("unrelated-{i}"))
                    .assume_role_policy_document(trust)
                    .send()
                    .await
                    .unwrap();
            }
        }))
        .await;
    }
    for chunk in (0..300).collect::<Vec<_>>().chunks(50) {
        futures_join(chunk.iter().map(|i| {
            let iam = iam.clone();
            async move {
                iam.create_policy().policy_name(format!("unrelated-{i}")).policy_document(policy).send().await.unwrap();
            }
        }))
        .await;
    }
    let large = count_plan_calls();
    println!("plan API calls: {small} with the stack alone, {large} with 1,200 more roles and 300 more policies");
    assert_eq!(small, large);
}

async fn futures_join<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let handles: Vec<_> = futs.collect();
    for f in handles {
        f.await;
    }
}

/// The fault kinds of a network black hole: a request never answered (before moto), and a write moto takes whose
/// answer never comes.
const BLACK_HOLES: &str = "blackhole,blackhole-after";

/// How long wfboot gives an attempt before anything of its service was answered in the run
/// (`aws::deadline`, COLD): the most any black-holed attempt in these tests may be held before it is given up (a
/// first call of an operation gets 4 s, every other attempt 4 × its kind's p95, at least 3 s; the emulator answers
/// in milliseconds).
const FIRST_OF_ITS_KIND: Duration = Duration::from_secs(5);

/// A fault-free fresh bootstrap of the default stack on an emulator of its own (started with `args`): its wall
/// time, and wfboot's requests (action, write) in the order the emulator logged them.
async fn fault_free_bootstrap(args: &[&str]) -> (Duration, Vec<Request>) {
    let emu = Emulator::start_with(args);
    emu.create_demo_user().await;
    let started = Instant::now();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
    let wall = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    (wall, emu.wfboot_requests_since(0))
}

fn count_by_action(requests: &[Request]) -> BTreeMap<String, usize> {
    let mut per_action = BTreeMap::new();
    for r in requests {
        *per_action.entry(r.action.clone()).or_default() += 1;
    }
    per_action
}

/// Every black-holed attempt was given up within the first-of-its-kind deadline (the emulator logs how long it
/// held each, until wfboot closed the connection); returns how many there were.
fn black_holes_given_up_in_time(emu: &Emulator) -> usize {
    emu.quiet();
    let holes: Vec<Request> = emu
        .wfboot_requests_since(0)
        .into_iter()
        .filter(|r| r.fault.as_deref().is_some_and(|f| f.starts_with("blackhole")))
        .collect();
    // 0.5 s for the emulator to notice the closed connection (it polls every 0.1 s) and a loaded machine.
    let bound = FIRST_OF_ITS_KIND.as_secs_f64() * 1000.0 + 500.0;
    for r in &holes {
        assert!(r.ms <= bound, "{} was held {:.0} ms before wfboot gave it up (bound {bound} ms)", r.action, r.ms);
    }
    holes.len()
}

#[tokio::test]
async fn with_5_percent_of_requests_black_holed_one_fresh_bootstrap_converges_within_3x_the_fault_free_wall_plus_10_s()
{
    // The bound of the goal: three times a fault-free run of the same command on this machine, plus 10 s.
    let (fault_free, _) = fault_free_bootstrap(&[]).await;
    let bound = fault_free * 3 + Duration::from_secs(10);
    let want = reference_state().await;
    let emu = Emulator::start_with(&["--fault-kinds", BLACK_HOLES, "--seed", "52"]);
    emu.create_demo_user().await;
    let started = Instant::now();
    let (json, line) = under_faults(&emu, BLACK_HOLES, 0.05, &["bootstrap", "--yes", "--user-name", "demo"]).unwrap();
    let wall = started.elapsed();
    let holes = black_holes_given_up_in_time(&emu);
    println!(
        "{line}; {holes} black holes; fault-free {:.1} s, bound {:.1} s",
        fault_free.as_secs_f64(),
        bound.as_secs_f64()
    );
    assert!(holes > 0, "no request was black-holed");
    let summary = &json["summary"];
    assert_eq!((&summary["writes_done"], &summary["already_done"]), (&json!(FRESH_WRITES), &json!(0)), "{summary}");
    assert_eq!(full_state(&emu.admin().await).await, want, "the end state differs from a fault-free run's");
    assert!(wall <= bound, "{:.1} s, over the bound of {:.1} s", wall.as_secs_f64(), bound.as_secs_f64());
}

/// One fresh bootstrap with the `nth` request of `action` (wfboot's) black-holed (`kind`): it converges in the
/// one run, makes each write take effect exactly once, and reaches a fault-free run's end state.
async fn one_black_hole_resolves_in_one_run(action: &str, nth: usize, kind: &str) {
    let (fault_free, clean) = fault_free_bootstrap(&[]).await;
    let mut clean_writes: Vec<String> = clean.iter().filter(|r| r.write).map(|r| r.action.clone()).collect();
    clean_writes.sort();
    let want = reference_state().await;
    let emu = Emulator::start();
    emu.create_demo_user().await;
    emu.control(&format!(
        r#"{{"fault_call": {{"action": "{action}", "nth": {nth}, "kind": "{kind}", "access_key": "{WFBOOT_KEY}"}}}}"#
    ));
    let started = Instant::now();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo", "--output", "json"]).output().unwrap();
    let wall = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(black_holes_given_up_in_time(&emu), 1, "the planned black hole was not met");
    println!("{kind} on {action} #{nth}: {:.1} s (fault-free {:.1} s)", wall.as_secs_f64(), fault_free.as_secs_f64());
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let summary = &json["summary"];
    assert_eq!((&summary["writes_done"], &summary["already_done"]), (&json!(FRESH_WRITES), &json!(0)), "{summary}");
    // Each write took effect once: a write sent again after its answer was lost was answered "already there".
    assert_eq!(emu.wfboot_writes_since(0), clean_writes);
    assert_eq!(full_state(&emu.admin().await).await, want, "the end state differs from a fault-free run's");
    // The stall costs at most the deadline of its attempt and a retry's pause, not the 30 s attempt timeout.
    let bound = fault_free * 3 + FIRST_OF_ITS_KIND + Duration::from_secs(5);
    assert!(wall <= bound, "{:.1} s, over {:.1} s", wall.as_secs_f64(), bound.as_secs_f64());
}

#[tokio::test]
async fn a_black_holed_read_is_given_up_and_retried_within_the_run() {
    one_black_hole_resolves_in_one_run("GetRole", 2, "blackhole").await;
}

#[tokio::test]
async fn a_black_holed_write_that_took_effect_is_resolved_by_reading_back_not_applied_twice() {
    one_black_hole_resolves_in_one_run("CreateRole", 2, "blackhole-after").await;
}

#[tokio::test]
async fn a_black_holed_write_that_never_arrived_is_sent_again_in_the_same_run() {
    one_black_hole_resolves_in_one_run("AttachRolePolicy", 3, "blackhole").await;
}

/// The least wfboot gives any attempt (`aws::deadline`, FLOOR): what keeps a healthy 2 s call from being cut, by 1 s.
const FLOOR_MS: u64 = 3000;

#[tokio::test]
async fn a_healthy_call_that_takes_2_s_is_never_cut_off_nor_sent_twice() {
    // Every GetRole and every policy simulation of the run answered after 2 s, correctly: IAM's slowest healthy
    // calls (the simulator on a large policy) take about that long.
    let slow = ["--slow", "GetRole=2", "--slow", "SimulatePrincipalPolicy=2"];
    let (_, clean) = fault_free_bootstrap(&[]).await;
    let emu = Emulator::start_with(&slow);
    emu.create_demo_user().await;
    // -vv: wfboot's debug line for each attempt it gives up, with the deadline it gave it.
    let out = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo", "-vv"]).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{}", tail(&err));
    let requests = emu.wfboot_requests_since(0);
    let slowed: Vec<&Request> =
        requests.iter().filter(|r| ["GetRole", "SimulatePrincipalPolicy"].contains(&r.action.as_str())).collect();
    assert!(slowed.iter().any(|r| r.action == "SimulatePrincipalPolicy"), "the run simulated nothing");
    assert!(slowed.iter().all(|r| r.ms >= 2000.0), "--slow did not slow them");
    // Every slow call was answered (a read of what does not exist yet is answered 404, as in a fault-free run).
    assert!(slowed.iter().all(|r| r.fault.is_none() && r.status.is_some()), "{slowed:?}");
    // No 2 s call was given less than the floor: an attempt is given at least 3 s (5 s before its service answered,
    // 4x its kind's p95 once 2 s answers are known). Only a machine too loaded to deliver a 2 s answer within 3 s
    // sees an attempt given up, and then only after the floor; each such attempt is the one extra sending allowed.
    let cut = given_up(&err);
    println!("attempts given up (operation, deadline ms): {cut:?}");
    for (op, ms) in &cut {
        assert!(*ms >= FLOOR_MS, "{op} was given up after {ms} ms, under the floor of {FLOOR_MS} ms: {cut:?}");
    }
    let (now, before) = (count_by_action(&requests), count_by_action(&clean));
    for action in ["GetRole", "SimulatePrincipalPolicy"] {
        let resent = cut.iter().filter(|(op, _)| op == action).count();
        assert_eq!(
            now.get(action).copied().unwrap_or(0),
            before.get(action).copied().unwrap_or(0) + resent,
            "{action} was sent again without an attempt given up after the floor ({resent} given up)"
        );
    }
}

#[test]
fn a_refused_endpoint_is_named_within_5_s_with_what_to_do_and_nothing_is_written() {
    // A port nothing listens on (bound, then closed): every connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let out = wfboot_isolated()
        .env("AWS_ACCESS_KEY_ID", WFBOOT_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .args(["bootstrap", "--yes", "--user-name", "demo", "--endpoint-url", &endpoint])
        .output()
        .unwrap();
    let took = started.elapsed();
    println!("refused endpoint: answered in {:.2} s", took.as_secs_f64());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{endpoint} refused the connection")), "{err}");
    assert!(err.contains("--endpoint-url"), "{err}");
    assert!(!stdout(&out).contains("created"), "{}", stdout(&out));
    // The goal's bound (the SDK's 10 attempts with backoff took 21 s).
    assert!(took <= Duration::from_secs(5), "took {took:?}");
}
