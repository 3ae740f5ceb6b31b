//! One pipeline for one account and for a fleet: every guard and flag of `bootstrap`, once in the caller's own
//! account and once through `--accounts` with two accounts, with the same exit code, the same words, the same writes
//! in each account and the same end state. A table: a guard added to the pipeline is a row here.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

const FLEET: [&str; 2] = ["111111111111", "222222222222"];
const ROLE: &str = "OrganizationAccountAccessRole";

/// What an account holds before the run.
#[derive(Clone, Copy)]
enum Setup {
    Nothing,
    /// RenderJobWorkerRole made by someone else, trusting Lambda instead of EC2.
    ForeignRole,
    /// The customer managed policy WorkloadBoundary.
    Boundary,
}

/// The stack a case runs.
#[derive(Clone, Copy)]
enum StackFile {
    RenderWorker,
    /// A document IAM rejects: refused before any AWS call.
    Bad,
    /// An EC2 trust document conditioned on aws:SourceAccount, which EC2 never sends.
    LockedOut,
    /// A built-in stack with Lambda, Step Functions and Batch roles, which `--harden` conditions.
    SlimWorkflow,
}

struct Case {
    stack: StackFile,
    setup: Setup,
    flags: &'static [&'static str],
    exit: i32,
    /// Said by both runs (stdout or stderr).
    words: &'static [&'static str],
    /// `--wait`: the emulator answers as the services do, with a propagation lag.
    service_lag: bool,
}

fn stack_file(dir: &Path, stack: StackFile) -> PathBuf {
    match stack {
        StackFile::RenderWorker => repo().join("profiles/render-worker.toml"),
        StackFile::SlimWorkflow => repo().join("profiles/slim-workflow.toml"),
        StackFile::Bad => {
            write_file(
                dir,
                "bad-policy.json",
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "s3:GetObject", "Resource": "*"}]}"#,
            );
            write_file(
                dir,
                "bad.toml",
                "name = \"bad\"\n\n[[policy]]\nname = \"BadPolicy\"\ndocument = \"bad-policy.json\"\n",
            )
        }
        StackFile::LockedOut => {
            write_file(
                dir,
                "locked-trust.json",
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "{{principal:ec2}}"},
                    "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"aws:SourceAccount": "{{account_id}}"}}}]}"#,
            );
            write_file(
                dir,
                "locked.toml",
                "name = \"locked\"\n\n[[role]]\nname = \"LockedRole\"\ntrust = \"locked-trust.json\"\n",
            )
        }
    }
}

async fn set_up(iam: &aws_sdk_iam::Client, setup: Setup) {
    match setup {
        Setup::Nothing => {}
        Setup::ForeignRole => {
            let trust = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#;
            iam.create_role().role_name("RenderJobWorkerRole").assume_role_policy_document(trust).send().await.unwrap();
        }
        Setup::Boundary => {
            let doc =
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}"#;
            iam.create_policy().policy_name("WorkloadBoundary").policy_document(doc).send().await.unwrap();
        }
    }
}

/// The writes that took effect after `mark`, by anyone but the harness's admin, without sts:AssumeRole; sorted.
fn writes_since(emu: &Emulator, mark: usize) -> Vec<String> {
    let mut w: Vec<String> = emu
        .requests()
        .into_iter()
        .skip(mark)
        .filter(|r| r.write && r.action != "AssumeRole" && r.access_key != ADMIN_KEY)
        .filter(|r| r.fault.is_none() && r.status.is_some_and(|s| (200..300).contains(&s)))
        .map(|r| r.action)
        .collect();
    w.sort();
    w
}

/// An account's IAM, its ids written as `ACCOUNT`'s, the users left out (the caller's own account has wfboot's).
async fn state_as_own(emu: &Emulator, account: Option<&str>) -> Value {
    let iam = match account {
        Some(a) => account_admin(emu, a).await,
        None => emu.admin().await,
    };
    let mut state = full_state(&iam).await;
    state.as_object_mut().unwrap().remove("users");
    let text = state.to_string();
    serde_json::from_str(&account.map_or(text.clone(), |a| text.replace(a, ACCOUNT))).unwrap()
}

fn said(out: &Output) -> String {
    format!("{}\n{}", stdout(out), stderr(out))
}

/// Runs `case` once in the caller's own account and once through `--accounts` over two accounts, each on the
/// same emulator, and holds them to the same exit code, words, writes per account and end state.
async fn same_in_both(case: Case) {
    let emu = if case.service_lag { Emulator::start_with(&SERVICE_LAG) } else { Emulator::start() };
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_file(dir.path(), case.stack);
    set_up(&emu.admin().await, case.setup).await;
    for account in FLEET {
        set_up(&account_admin(&emu, account).await, case.setup).await;
    }
    emu.settle();
    let base = |cmd: &mut assert_cmd::Command| {
        cmd.args(["bootstrap", "--yes", "--skip-user", "--stack"]).arg(&stack).args(case.flags);
    };

    let mark = emu.mark();
    let mut single = emu.wfboot();
    base(&mut single);
    let single = single.output().unwrap();
    let single_writes = writes_since(&emu, mark);

    let accounts = write_file(dir.path(), "accounts.txt", &FLEET.join("\n"));
    let mark = emu.mark();
    let mut fleet = emu.wfboot();
    base(&mut fleet);
    let fleet = fleet.arg("--accounts").arg(&accounts).args(["--assume-role-name", ROLE]).output().unwrap();
    let fleet_writes = writes_since(&emu, mark);

    assert_eq!(single.status.code(), Some(case.exit), "one account:\n{}", said(&single));
    assert_eq!(fleet.status.code(), Some(case.exit), "--accounts:\n{}", said(&fleet));
    for word in case.words {
        assert!(said(&single).contains(word), "one account does not say `{word}`:\n{}", said(&single));
        assert!(said(&fleet).contains(word), "--accounts does not say `{word}`:\n{}", said(&fleet));
    }
    let mut twice: Vec<String> = single_writes.iter().chain(&single_writes).cloned().collect();
    twice.sort();
    assert_eq!(fleet_writes, twice, "the fleet's writes are not the single account's, once per account");
    let own = state_as_own(&emu, None).await;
    for account in FLEET {
        assert_eq!(state_as_own(&emu, Some(account)).await, own, "account {account} differs from the single run's");
    }
}

#[tokio::test]
async fn a_bad_stack_is_refused_before_any_call_in_one_account_and_in_a_fleet() {
    let case = Case {
        stack: StackFile::Bad,
        setup: Setup::Nothing,
        flags: &[],
        exit: 65,
        words: &["IAM would reject", "nothing was sent to AWS"],
        service_lag: false,
    };
    same_in_both(case).await;
}

#[tokio::test]
async fn a_trust_document_that_locks_its_service_out_is_refused_with_no_write_in_one_account_and_in_a_fleet() {
    let case = Case {
        stack: StackFile::LockedOut,
        setup: Setup::Nothing,
        flags: &[],
        exit: 65,
        words: &["would lock out the service", "role LockedRole", "nothing was written"],
        service_lag: false,
    };
    same_in_both(case).await;
}

#[tokio::test]
async fn a_missing_permissions_boundary_policy_is_refused_with_no_write_in_one_account_and_in_a_fleet() {
    let case = Case {
        stack: StackFile::RenderWorker,
        setup: Setup::Nothing,
        flags: &["--permissions-boundary", "NoSuchBoundary"],
        exit: 1,
        words: &["policy/NoSuchBoundary"],
        service_lag: false,
    };
    same_in_both(case).await;
}

#[tokio::test]
async fn a_role_wfboot_did_not_create_is_held_back_without_adopt_in_one_account_and_in_a_fleet() {
    let case = Case {
        stack: StackFile::RenderWorker,
        setup: Setup::ForeignRole,
        flags: &[],
        exit: 2,
        words: &["held back", "--adopt"],
        service_lag: false,
    };
    same_in_both(case).await;
}

#[tokio::test]
async fn harden_writes_the_same_hardened_trust_in_one_account_and_in_a_fleet() {
    let case = Case {
        stack: StackFile::SlimWorkflow,
        setup: Setup::Nothing,
        flags: &["--harden"],
        exit: 0,
        words: &["created, 0 updated"],
        service_lag: false,
    };
    same_in_both(case).await;
}

#[tokio::test]
async fn permissions_boundary_and_tags_are_written_alike_in_one_account_and_in_a_fleet() {
    let case = Case {
        stack: StackFile::RenderWorker,
        setup: Setup::Boundary,
        flags: &["--permissions-boundary", "WorkloadBoundary", "--tag", "team=render"],
        exit: 0,
        words: &["3 created"],
        service_lag: false,
    };
    same_in_both(case).await;
}

#[tokio::test]
async fn wait_reports_the_time_to_usable_in_one_account_and_in_each_account_of_a_fleet() {
    let case = Case {
        stack: StackFile::RenderWorker,
        setup: Setup::Nothing,
        flags: &["--wait"],
        exit: 0,
        words: &["Usable after", "live probe"],
        service_lag: true,
    };
    same_in_both(case).await;
}

/// The rows above cover --harden, --permissions-boundary and --tag by their end state: it must show them.
#[tokio::test]
async fn the_flags_rows_compare_states_that_show_the_flags() {
    let emu = Emulator::start();
    set_up(&emu.admin().await, Setup::Boundary).await;
    let out = emu
        .wfboot()
        .args(["bootstrap", "--yes", "--skip-user", "--stack", "render-worker", "--harden"])
        .args(["--permissions-boundary", "WorkloadBoundary", "--tag", "team=render"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    let state = state_as_own(&emu, None).await;
    let role = &state["roles"]["/RenderJobWorkerRole"];
    assert_eq!(role["boundary"], "arn:aws:iam::123456789012:policy/WorkloadBoundary", "{role}");
    assert_eq!(role["tags"]["team"], "render", "{role}");
    let out = emu
        .wfboot()
        .args(["bootstrap", "--yes", "--skip-user", "--stack", "slim-workflow", "--harden"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    let state = state_as_own(&emu, None).await;
    let hardened =
        state["roles"].as_object().unwrap().values().filter(|r| r["trust"].to_string().contains("aws:SourceAccount"));
    assert!(hardened.count() >= 2, "not hardened: {state}");
}

/// Ctrl-C in the middle of the apply: in one account and in a fleet, what is in flight finishes, nothing new
/// starts, the run says it was interrupted and exits 130; the next run completes it to the same end state.
#[tokio::test]
async fn an_interrupted_run_stops_alike_and_the_next_run_completes_it_in_one_account_and_in_a_fleet() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let accounts = write_file(dir.path(), "accounts.txt", &FLEET.join("\n"));
    let fleet_args = |fleet: bool| -> Vec<String> {
        let mut a: Vec<String> =
            ["bootstrap", "--yes", "--skip-user", "--stack", "render-worker"].map(String::from).to_vec();
        if fleet {
            a.extend(["--accounts".into(), accounts.display().to_string(), "--assume-role-name".into(), ROLE.into()]);
        }
        a
    };
    for fleet in [false, true] {
        let mark = emu.mark();
        // Hold every request after the first write (after the fleet's sts:AssumeRole calls, which the emulator
        // counts as writes and which all come before the one question), interrupt, then lift the hold.
        let hold = if fleet { FLEET.len() + 1 } else { 1 };
        emu.control(&format!(r#"{{"hold_after_writes": {hold}}}"#));
        let mut child =
            emu.wfboot_std().args(fleet_args(fleet)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while writes_since(&emu, mark).is_empty() {
            assert!(Instant::now() < deadline, "no write");
            assert!(child.try_wait().unwrap().is_none(), "wfboot exited before its first write");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        let pid = child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        std::thread::sleep(Duration::from_millis(300));
        emu.control(r#"{"hold_after_writes": null}"#);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "fleet {fleet}:\n{}", said(&out));
        assert!(said(&out).contains("interrupted"), "fleet {fleet}:\n{}", said(&out));
        let done = writes_since(&emu, mark).len();
        assert!(done < 3 * if fleet { 2 } else { 1 }, "fleet {fleet}: every change was made despite the interrupt");

        let rerun = emu.wfboot().args(fleet_args(fleet)).output().unwrap();
        assert!(rerun.status.success(), "fleet {fleet}:\n{}", said(&rerun));
    }
    let own = state_as_own(&emu, None).await;
    assert!(own["roles"]["/RenderJobWorkerRole"].is_object(), "{own}");
    for account in FLEET {
        assert_eq!(state_as_own(&emu, Some(account)).await, own, "account {account} differs from the single run's");
    }
}
