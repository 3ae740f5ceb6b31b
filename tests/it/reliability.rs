//! A bootstrap tool is trusted only if a run that dies anywhere is finished by running it again, and if
//! faults make it stop clearly rather than damage anything. Against the real emulator.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

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

#[tokio::test]
async fn throttling_server_errors_and_dropped_connections_are_retried_or_reported_and_a_rerun_completes() {
    let mut survived = Vec::new();
    for (rate, seed) in [("0.1", "1"), ("0.2", "2"), ("0.3", "3")] {
        let emu =
            Emulator::start_with(&["--fault-rate", "0", "--fault-kinds", "throttle,500,503,drop", "--seed", seed]);
        emu.create_demo_user().await;
        emu.control(&format!(r#"{{"fault_rate": {rate}}}"#));
        let out =
            emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo", "--retry-attempts", "5"]).output().unwrap();
        let faults = emu.requests().iter().filter(|r| r.fault.is_some()).count();
        assert!(faults > 0, "rate {rate}: no fault was injected");
        if out.status.success() {
            survived.push(format!("{rate} ({faults} faults)"));
        } else {
            // Stopping is allowed, but only with a clear message and a documented exit code.
            assert_eq!(out.status.code(), Some(1), "rate {rate}: {}", stderr(&out));
            assert!(stderr(&out).contains("help:"), "rate {rate}: {}", stderr(&out));
        }
        emu.control(r#"{"fault_rate": 0}"#);
        let rerun = emu.wfboot().args(["bootstrap", "--yes", "--user-name", "demo"]).output().unwrap();
        assert!(rerun.status.success(), "rate {rate}: the re-run failed: {}", stderr(&rerun));
        assert_eq!(dump_state(&emu.admin().await).await, expected_state(), "rate {rate}");
    }
    println!("fault rates survived in one run: {}", survived.join(", "));
    assert!(!survived.is_empty(), "no fault rate was survived without a re-run");
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
    let count_plan_calls = || {
        let mark = emu.mark();
        let out = emu.wfboot().args(["plan", "--user-name", "demo", "--detailed-exitcode"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        emu.wfboot_requests_since(mark).len()
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
