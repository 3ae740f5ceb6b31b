//! The edges of a run: an outcome decided early answers at once (in-flight advisory work is dropped), an
//! advisory check whose API fails (the policy simulator answering HTTP 500, as moto does without the emulator's
//! simulator: `--no-simulator`) stops at its first failed call and says so, and the waits for IAM to show this
//! run's own writes end within a second of the lag.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// The issue's goal for an answer that was known early (a missing user, no terminal, a quota).
const DECIDED_WITHIN: Duration = Duration::from_secs(2);

/// `wfboot ARGS` against `emu`: its output and how long it took.
fn timed(emu: &Emulator, args: &[&str]) -> (std::process::Output, Duration) {
    let begun = Instant::now();
    let out = emu.wfboot().args(args).output().unwrap();
    (out, begun.elapsed())
}

/// An emulator whose policy simulator answers HTTP 500, with the operator user `demo`; moto's first IAM call
/// (which loads the AWS-managed policies) is behind it.
async fn failing_simulator() -> Emulator {
    let emu = Emulator::start_with(&["--no-simulator"]);
    emu.create_demo_user().await;
    emu
}

fn simulations_since(emu: &Emulator, mark: usize) -> usize {
    emu.wfboot_requests_since(mark).iter().filter(|r| r.action == "SimulatePrincipalPolicy").count()
}

#[tokio::test]
async fn a_missing_operator_user_is_said_at_once_while_the_simulator_fails() {
    let emu = failing_simulator().await;
    let mark = emu.mark();
    let (out, took) = timed(&emu, &["bootstrap", "--yes", "--user-name", "nobody-here"]);
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("IAM user `nobody-here` does not exist"), "{err}");
    assert!(took < DECIDED_WITHIN, "took {took:?}:\n{err}");
    assert!(emu.wfboot_write_attempts_since(mark).is_empty());
}

#[tokio::test]
async fn without_a_terminal_and_without_yes_pending_changes_are_said_at_once_while_the_simulator_fails() {
    let emu = failing_simulator().await;
    let mark = emu.mark();
    let (out, took) = timed(&emu, &["bootstrap", "--user-name", "demo"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("no terminal to ask on"), "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert!(took < DECIDED_WITHIN, "took {took:?}:\n{err}");
    // The question could not be answered: nothing advisory was asked for writes that will not be made.
    assert_eq!(simulations_since(&emu, mark), 0);
    assert!(emu.wfboot_write_attempts_since(mark).is_empty());
}

#[tokio::test]
async fn an_operator_user_over_its_managed_policies_quota_is_refused_at_once_while_the_simulator_fails() {
    let emu = failing_simulator().await;
    crowd_the_demo_users_managed_policies(&emu.admin().await).await;
    let mark = emu.mark();
    let (out, took) = timed(&emu, &["bootstrap", "--yes", "--user-name", "demo"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("would exceed IAM's quota of 10"), "{err}");
    assert!(took < DECIDED_WITHIN, "took {took:?}:\n{err}");
    assert!(emu.wfboot_write_attempts_since(mark).is_empty());
}

#[tokio::test]
async fn a_role_over_the_managed_policies_quota_is_refused_at_once_while_the_simulator_fails() {
    let emu = failing_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let policies: Vec<String> = [
        "AmazonS3ReadOnlyAccess",
        "AmazonRDSReadOnlyAccess",
        "AmazonDynamoDBReadOnlyAccess",
        "AmazonSNSReadOnlyAccess",
        "AmazonSQSReadOnlyAccess",
        "AmazonEC2ReadOnlyAccess",
        "AWSCloudTrail_ReadOnlyAccess",
        "CloudWatchReadOnlyAccess",
        "AWSLambda_ReadOnlyAccess",
        "AmazonKinesisReadOnlyAccess",
        "AmazonRoute53ReadOnlyAccess",
    ]
    .iter()
    .map(|p| format!("\"arn:aws:iam::aws:policy/{p}\""))
    .collect();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    write_file(dir.path(), "trust.json", trust);
    let stack = write_file(
        dir.path(),
        "stack.toml",
        &format!(
            "name = \"crowded\"\ntemplates = \".\"\n[[role]]\nname = \"CrowdedRole\"\ntrust = \"trust.json\"\nmanaged_policies = [{}]\n",
            policies.join(", ")
        ),
    );
    let mark = emu.mark();
    let (out, took) = timed(&emu, &["bootstrap", "--yes", "--skip-user", "--stack", stack.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains("allows 10 managed policies per role (AttachedPoliciesPerRoleQuota)"), "{err}");
    assert!(took < DECIDED_WITHIN, "took {took:?}:\n{err}");
    assert!(emu.wfboot_write_attempts_since(mark).is_empty());
}

/// A fresh `bootstrap --yes --output json` against `emu`, which must converge: its result, stderr and wall time.
fn fresh_bootstrap(emu: &Emulator) -> (Value, String, Duration) {
    let (out, took) = timed(emu, &["bootstrap", "--yes", "--user-name", "demo", "--output", "json"]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    (serde_json::from_str(&text).unwrap(), err, took)
}

#[tokio::test]
async fn a_failing_simulator_stops_at_its_first_failed_call_and_the_run_converges_within_3_s_of_a_working_one() {
    let working = Emulator::start();
    working.create_demo_user().await;
    let failing = failing_simulator().await;
    let (_, _, with_simulator) = fresh_bootstrap(&working);
    let mark = failing.mark();
    let (report, err, without) = fresh_bootstrap(&failing);
    assert_eq!(report["verified"], Value::Bool(true), "{report}");
    // Said, with what the simulator answered; and the check stopped at its breaker: one failed call (and its
    // one retry) per check, not every request context's call retried.
    assert!(err.contains("could not be verified"), "{err}");
    assert!(err.contains("iam:SimulatePrincipalPolicy answered HTTP 500"), "{err}");
    let simulations = simulations_since(&failing, mark);
    assert!(simulations <= 2 * 2 + 24, "{simulations} simulation attempts");
    assert!(
        without <= with_simulator + Duration::from_secs(3),
        "with a failing simulator {without:?}, with a working one {with_simulator:?}:\n{err}"
    );
}

/// Realism with IAM's read-after-write lag at exactly `LAG` (no jitter): a read of what a write changed answers
/// the state from before it for `LAG` after the write, then the new state.
const LAG: f64 = 1.5;

#[tokio::test]
async fn under_iam_lag_a_fresh_bootstrap_ends_within_the_lag_and_a_second_of_each_wait() {
    let emu = Emulator::start_with(&["--realism", "--iam-lag", "1.5", "--lag-jitter", "0", "--write-hold", "0.1"]);
    emu.create_demo_user().await;
    emu.settle();
    let mark = emu.mark();
    let (report, err, _) = fresh_bootstrap(&emu);
    assert_eq!(report["verified"], Value::Bool(true), "{report}");
    let requests = emu.wfboot_requests_since(mark);
    assert!(requests.iter().any(|r| r.realism.as_deref() == Some("stale_read")), "no read met the lag");
    // The dependent steps that wait for IAM: each wait the run told ("waiting ..."), one per thing waited for.
    let steps = err.lines().filter(|l| l.contains("waiting")).count();
    assert!(steps >= 1, "no wait told:\n{err}");
    // After the last write, what is left is waiting for IAM to show it: each wait ends within a second of its
    // lag, which began at the latest with that write.
    let last_write = requests.iter().filter(|r| r.write).map(|r| r.answered()).fold(0.0, f64::max);
    let end = requests.iter().map(|r| r.answered()).fold(0.0, f64::max);
    let bound = steps as f64 * (LAG + 1.0);
    assert!(
        end - last_write <= bound,
        "the run ended {:.2} s after its last write, more than {steps} wait(s) of the lag plus 1 s ({bound} s):\n{err}",
        end - last_write
    );
    // And the first read that showed the last write came within a second of the lag's end.
    let fresh_after = requests
        .iter()
        .filter(|r| !r.write && r.t >= last_write + LAG && r.realism.as_deref() != Some("stale_read"))
        .map(|r| r.t)
        .fold(f64::MAX, f64::min);
    if fresh_after < f64::MAX {
        assert!(fresh_after - (last_write + LAG) <= 1.0, "read again {:.2} s after the lag", fresh_after - last_write);
    }
}
