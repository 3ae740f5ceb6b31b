//! Many accounts from one machine (`--accounts FILE --assume-role-name NAME`) against a real moto server.
//!
//! moto takes the account of a request from its access key, and the keys sts:AssumeRole returns for
//! `arn:aws:iam::<id>:role/X` belong to account `<id>`, so one emulator holds several accounts. Without IAM
//! enforcement moto lets anyone assume any role, existing or not; the failing account is therefore made with
//! enforcement on, where the caller's own policy allows sts:AssumeRole on some accounts' roles only. Each
//! account's state is checked through an admin client scoped to that account.

use crate::common::*;
use serde_json::Value;

const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
const ROLE: &str = "WfbootDeployer";

/// An accounts file with the three accounts, a comment, a blank line and names.
fn accounts_file(dir: &std::path::Path) -> std::path::PathBuf {
    let text =
        format!("# the workflow accounts\n{}  # prod\n\n{}\n{}  # staging\n", ACCOUNTS[0], ACCOUNTS[1], ACCOUNTS[2]);
    write_file(dir, "accounts.txt", &text)
}

fn expected_state() -> Value {
    serde_json::from_str(include_str!("../fixtures/slim-workflow.state.json")).unwrap()
}

/// The fixture's end state in `account`: the operator user's SLIMWorkflowPassRoles is that account's policy.
fn expected_state_in(account: &str) -> Value {
    serde_json::from_str(&include_str!("../fixtures/slim-workflow.state.json").replace("123456789012", account))
        .unwrap()
}

/// The write calls that changed something after `mark`, whoever made them, sorted.
fn writes_since(emu: &Emulator, mark: usize) -> Vec<String> {
    let mut w: Vec<String> = emu
        .requests()
        .into_iter()
        .skip(mark)
        .filter(|r| r.write && r.fault.is_none() && r.status.is_some_and(|s| (200..300).contains(&s)))
        .map(|r| r.action)
        .collect();
    w.sort();
    w
}

fn multi(emu: &Emulator, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let file = accounts_file(dir);
    emu.wfboot().args(args).arg("--accounts").arg(&file).args(["--assume-role-name", ROLE]).output().unwrap()
}

async fn create_demo_user_in_each_account(emu: &Emulator) {
    for account in ACCOUNTS {
        account_admin(emu, account).await.create_user().user_name("demo").send().await.unwrap();
    }
}

#[tokio::test]
async fn plan_over_three_accounts_prints_one_row_per_account_writes_nothing_and_exits_2_with_detailed_exitcode() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let mark = emu.mark();
    let out = multi(&emu, dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    for (account, name) in [(ACCOUNTS[0], "prod"), (ACCOUNTS[1], ""), (ACCOUNTS[2], "staging")] {
        assert!(text.contains(&format!("Stack slim-workflow in account {account} (aws, us-east-1)")), "{text}");
        let row = text.lines().find(|l| l.starts_with(account) && l.contains("changes planned")).unwrap_or_else(|| {
            panic!("no row for {account}:\n{text}");
        });
        assert!(row.contains(name) && row.contains("24 changes planned"), "{row}");
    }
    assert!(text.contains("3 accounts, 0 failed."), "{text}");
    let requests = emu.requests();
    assert!(requests[mark..].iter().all(|r| !r.write || r.action == "AssumeRole"), "plan wrote something");
    let assumed = requests[mark..].iter().filter(|r| r.action == "AssumeRole").count();
    assert_eq!(assumed, 3);
    // wfboot's own key only identifies the caller and assumes the roles; the accounts are read with theirs.
    let own: Vec<&str> =
        requests[mark..].iter().filter(|r| r.access_key == WFBOOT_KEY).map(|r| r.action.as_str()).collect();
    assert_eq!(own.iter().filter(|a| **a == "GetCallerIdentity").count(), 1, "{own:?}");
    assert!(own.iter().all(|a| *a == "GetCallerIdentity" || *a == "AssumeRole"), "{own:?}");

    let out = multi(&emu, dir.path(), &["plan", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).expect("stdout is one JSON document");
    assert_eq!(json["command"], "plan");
    assert_eq!(json["role_name"], ROLE);
    assert_eq!(json["summary"], serde_json::json!({"accounts": 3, "failed": 0, "with_changes": 3}));
    let rows = json["accounts"].as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["account_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ACCOUNTS);
    assert_eq!(rows[0]["name"], "prod");
    for row in rows {
        assert_eq!(row["status"], "changes_planned");
        assert_eq!(row["changes"], 24);
        // Each account's plan is the single-account plan, rendered for that account.
        assert_eq!(row["result"]["account_id"], row["account_id"]);
        assert_eq!(row["result"]["partition"], "aws");
        assert_eq!(row["result"]["summary"]["changes"], 24);
    }
    // Nothing reached the caller's own account.
    assert_eq!(dump_state(&emu.admin().await).await["roles"], serde_json::json!({}));
}

#[tokio::test]
async fn bootstrap_of_three_accounts_creates_the_stack_in_each_and_reports_one_row_per_account() {
    let emu = Emulator::start();
    create_demo_user_in_each_account(&emu).await;
    let dir = tempfile::tempdir().unwrap();
    let mark = emu.mark();
    let out = multi(&emu, dir.path(), &["bootstrap", "--yes", "--user-name", "demo"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    for account in ACCOUNTS {
        let row = text.lines().find(|l| l.starts_with(account)).unwrap_or_else(|| panic!("no row for {account}"));
        assert!(row.contains("applied 32"), "{row}");
    }
    // 32 writes per account, as a single-account bootstrap makes; none with the caller's own key.
    let writes: Vec<String> = writes_since(&emu, mark).into_iter().filter(|w| w != "AssumeRole").collect();
    assert_eq!(writes.len(), 3 * 32, "{writes:?}");
    let own_writes = emu.wfboot_requests_since(mark).into_iter().filter(|r| r.write && r.action != "AssumeRole");
    assert_eq!(own_writes.count(), 0);

    // Every account holds the same end state as a single-account bootstrap (and the boto3 peer script).
    for account in ACCOUNTS {
        let state = dump_state(&account_admin(&emu, account).await).await;
        assert_eq!(
            state,
            expected_state_in(account),
            "account {account}:\n{}",
            serde_json::to_string_pretty(&state).unwrap()
        );
    }
    assert_eq!(dump_state(&emu.admin().await).await["roles"], serde_json::json!({}), "the caller's account changed");

    // A re-run writes nothing, and plan agrees that nothing is left to do.
    let mark = emu.mark();
    let out = multi(&emu, dir.path(), &["bootstrap", "--yes", "--user-name", "demo", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(writes_since(&emu, mark), vec!["AssumeRole"; 3]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    for row in json["accounts"].as_array().unwrap() {
        assert_eq!(row["status"], "no_changes", "{row}");
        assert_eq!(row["result"]["summary"]["api_writes"], 0);
    }
    let out = multi(&emu, dir.path(), &["plan", "--user-name", "demo", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
}

#[tokio::test]
async fn an_account_whose_role_cannot_be_assumed_fails_alone_and_the_others_are_bootstrapped() {
    let emu = Emulator::start();
    // In every account the deployer role exists, trusts the caller's account and may do anything.
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
    for account in ACCOUNTS {
        let iam = account_admin(&emu, account).await;
        iam.create_role().role_name(ROLE).assume_role_policy_document(trust).send().await.unwrap();
        let admin = "arn:aws:iam::aws:policy/AdministratorAccess";
        iam.attach_role_policy().role_name(ROLE).policy_arn(admin).send().await.unwrap();
    }
    // The operator may assume the role in the first two accounts only.
    let home = emu.admin().await;
    home.create_user().user_name("operator").send().await.unwrap();
    let allowed: Vec<String> = ACCOUNTS[..2].iter().map(|a| format!("arn:aws:iam::{a}:role/{ROLE}")).collect();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": allowed}]});
    home.put_user_policy()
        .user_name("operator")
        .policy_name("assume-deployer")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    let key = home.create_access_key().user_name("operator").send().await.unwrap().access_key.unwrap();
    emu.reset_auth("0");

    // moto rejects signed requests with a space in them under enforcement: the stack without descriptions.
    let dir = tempfile::tempdir().unwrap();
    let stack = std::fs::read_to_string(repo().join("profiles/slim-workflow.toml")).unwrap();
    let stack: String = stack.lines().filter(|l| !l.starts_with("description")).map(|l| format!("{l}\n")).collect();
    let stack = write_file(dir.path(), "profiles/slim-workflow.toml", &stack);
    let file = accounts_file(dir.path());
    let out = emu
        .wfboot()
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key)
        .arg("bootstrap")
        .arg("--stack")
        .arg(&stack)
        .args(["--skip-user", "--yes", "--assume-role-name", ROLE, "--accounts"])
        .arg(&file)
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}\n{err}");
    let row = |account: &str| text.lines().find(|l| l.starts_with(account)).unwrap_or_default().to_string();
    assert!(row(ACCOUNTS[0]).contains("applied 24"), "{text}");
    assert!(row(ACCOUNTS[1]).contains("applied 24"), "{text}");
    assert!(row(ACCOUNTS[2]).contains("FAILED") && row(ACCOUNTS[2]).contains("AccessDenied"), "{text}");
    assert!(text.contains("3 accounts, 1 failed."), "{text}");
    assert!(err.contains(&format!("1 of 3 accounts failed: {}", ACCOUNTS[2])), "{err}");
    assert!(err.contains("does not trust"), "the help names the likely causes:\n{err}");

    // A failed account outweighs pending changes: plan --detailed-exitcode exits 1, not 0 or 2.
    let out = emu
        .wfboot()
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key)
        .arg("plan")
        .arg("--stack")
        .arg(&stack)
        .args(["--skip-user", "--detailed-exitcode", "--output", "json", "--assume-role-name", ROLE, "--accounts"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let statuses: Vec<&str> =
        json["accounts"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["no_changes", "no_changes", "failed"]);
    assert!(json["accounts"][2]["error"].as_str().unwrap().contains("AccessDenied"), "{json}");
    assert_eq!(json["summary"]["failed"], 1);

    // The two reachable accounts hold the whole stack; the third one nothing but its deployer role.
    emu.reset_auth("inf");
    let expected = expected_state();
    for account in &ACCOUNTS[..2] {
        let mut state = dump_state(&account_admin(&emu, account).await).await;
        state["roles"].as_object_mut().unwrap().remove(&format!("/{ROLE}"));
        assert_eq!(state["roles"], expected["roles"], "account {account}");
        assert_eq!(state["customer_policies"], expected["customer_policies"]);
        assert_eq!(state["instance_profiles"], expected["instance_profiles"]);
    }
    let third = dump_state(&account_admin(&emu, ACCOUNTS[2]).await).await;
    let roles: Vec<&String> = third["roles"].as_object().unwrap().keys().collect();
    assert_eq!(roles, [&format!("/{ROLE}")]);
}

#[tokio::test]
async fn in_a_china_region_every_account_is_planned_in_the_aws_cn_partition() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let out = multi(&emu, dir.path(), &["--region", "cn-north-1", "plan", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    for row in json["accounts"].as_array().unwrap() {
        assert_eq!(row["result"]["partition"], "aws-cn", "{row}");
        assert_eq!(row["result"]["region"], "cn-north-1");
    }
    // The EC2 principal of the China partition, as the single-account plan renders it.
    assert!(stdout(&out).contains("ec2.amazonaws.com.cn"));
}

/// The access keys of the requests after `mark`, other than wfboot's own, in the order they arrived (the log is in
/// the order the answers were complete: an attempt given up late and answered after the next account's first request
/// would look like the two accounts at once).
fn account_keys_since(emu: &Emulator, mark: usize) -> Vec<String> {
    let mut requests: Vec<Request> =
        emu.requests().into_iter().skip(mark).filter(|r| r.access_key != WFBOOT_KEY).collect();
    requests.sort_by(|a, b| a.t.total_cmp(&b.t));
    requests.into_iter().map(|r| r.access_key).collect()
}

/// Per account of the requests after `mark` (its session's own key): the arrival of its first write, and of its last
/// request before that (the end of its reads and pre-flight). sts:AssumeRole, made with the caller's key, is no
/// account's.
fn first_write_and_last_read_before(emu: &Emulator, mark: usize) -> Vec<(f64, f64)> {
    let requests: Vec<Request> = emu.requests().into_iter().skip(mark).filter(|r| r.access_key != WFBOOT_KEY).collect();
    let mut keys: Vec<&str> = requests.iter().map(|r| r.access_key.as_str()).collect();
    keys.sort();
    keys.dedup();
    keys.iter()
        .filter_map(|k| {
            let own: Vec<&Request> = requests.iter().filter(|r| r.access_key == *k).collect();
            let first_write = own.iter().position(|r| r.write)?;
            let last_read = own[..first_write].iter().map(|r| r.t).fold(0.0, f64::max);
            Some((own[first_write].t, last_read))
        })
        .collect()
}

/// With --yes there is no question to gather the accounts for: each account applies as soon as its own pre-flight
/// passed. Two at a time over three accounts: the third account is read only once a slot is free, after the first
/// account's apply, so the first write comes before the last account's pre-flight ended (before, every account was
/// read and pre-flighted first, and the first write came after all of them).
#[tokio::test]
async fn with_yes_each_account_applies_as_soon_as_its_own_pre_flight_passed() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let mark = emu.mark();
    let out = multi(&emu, dir.path(), &["bootstrap", "--yes", "--skip-user", "--max-accounts", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let accounts = first_write_and_last_read_before(&emu, mark);
    assert_eq!(accounts.len(), 3, "{accounts:?}");
    let first_write = accounts.iter().map(|(w, _)| *w).fold(f64::MAX, f64::min);
    let last_preflight = accounts.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    assert!(
        first_write < last_preflight,
        "the first write ({first_write}) waited for every account's pre-flight (the last ended at {last_preflight})"
    );
    // Each account still has the single run's end state, and a re-run writes nothing.
    let mark = emu.mark();
    let again = multi(&emu, dir.path(), &["bootstrap", "--yes", "--skip-user", "--max-accounts", "2"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(writes_since(&emu, mark), vec!["AssumeRole"; 3]);
}

#[tokio::test]
async fn max_accounts_bounds_how_many_accounts_are_worked_on_at_once() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    // One at a time: each account's requests (made with its own session's key) form one block.
    let mark = emu.mark();
    let out = multi(&emu, dir.path(), &["plan", "--max-accounts", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut keys = account_keys_since(&emu, mark);
    keys.dedup();
    assert_eq!(keys.len(), 3, "the accounts' requests interleave with --max-accounts 1: {keys:?}");

    // Three at once: they interleave.
    let mark = emu.mark();
    let out = multi(&emu, dir.path(), &["plan", "--max-accounts", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut keys = account_keys_since(&emu, mark);
    keys.dedup();
    assert!(keys.len() > 3, "no two accounts were worked on at once: {keys:?}");
}

#[tokio::test]
async fn check_over_two_accounts_reports_each_in_one_json_document() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "two.txt", &format!("{}\n{} # staging\n", ACCOUNTS[0], ACCOUNTS[2]));
    let out = emu
        .wfboot()
        .args(["check", "--output", "json", "--assume-role-name", ROLE, "--accounts"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = json["accounts"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, account) in rows.iter().zip([ACCOUNTS[0], ACCOUNTS[2]]) {
        assert_eq!(row["account_id"], account);
        assert_eq!(row["status"], "passed");
        let caller = &row["result"]["caller"];
        assert_eq!(caller["account_id"], account);
        assert_eq!(caller["arn"], format!("arn:aws:sts::{account}:assumed-role/{ROLE}/wfboot-slim-workflow"));
        assert_eq!(caller["kind"], "assumed_role");
    }
}

#[tokio::test]
async fn bootstrap_over_accounts_without_yes_and_without_a_terminal_refuses_and_writes_nothing() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let mark = emu.mark();
    let out = multi(&emu, dir.path(), &["bootstrap"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("Apply 72 changes to 3 accounts?"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(writes_since(&emu, mark), vec!["AssumeRole"; 3]);
}

#[tokio::test]
async fn a_bad_accounts_file_or_role_name_is_rejected_before_any_aws_call() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("bad-id.txt", "111111111111\n12345 # short\n", "bad-id.txt:2: `12345` is not an AWS account id"),
        ("dup.txt", "111111111111\n# again\n111111111111\n", "dup.txt:3: account 111111111111 is listed twice"),
        ("empty.txt", "# nothing here\n\n", "lists no account"),
        ("letters.txt", "11111111111a\n", "letters.txt:1: `11111111111a`"),
    ];
    for (name, text, expected) in cases {
        let file = write_file(dir.path(), name, text);
        for command in ["plan", "check", "bootstrap"] {
            let out =
                emu.wfboot().args([command, "--assume-role-name", ROLE, "--accounts"]).arg(&file).output().unwrap();
            assert_eq!(out.status.code(), Some(65), "{command} {name}: {}", stderr(&out));
            assert!(stderr(&out).contains(expected), "{command} {name}: {}", stderr(&out));
        }
    }
    let missing = dir.path().join("missing.txt");
    let out = emu.wfboot().args(["plan", "--assume-role-name", ROLE, "--accounts"]).arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot read the accounts file"), "{}", stderr(&out));

    let good = accounts_file(dir.path());
    let usage: [&[&str]; 3] = [
        &["plan", "--assume-role-name", "has/slash", "--accounts"],
        &["plan", "--external-id", "x", "--assume-role-name", ROLE, "--accounts"],
        &["plan", "--accounts"],
    ];
    for args in usage {
        let out = emu.wfboot().args(args).arg(&good).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
    }
    let out = emu.wfboot().args(["plan", "--assume-role-name", ROLE]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "--assume-role-name alone: {}", stderr(&out));
    assert_eq!(emu.requests().len(), 0, "a request reached the emulator");
}

#[tokio::test]
async fn at_a_terminal_bootstrap_shows_every_accounts_plan_and_asks_once() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let file = accounts_file(dir.path());
    let run = |answer: &str| {
        let mut cmd = emu.wfboot_std();
        cmd.args(["bootstrap", "--assume-role-name", ROLE, "--accounts"]).arg(&file);
        let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).expect("spawn in a pty");
        for account in ACCOUNTS {
            p.exp_string(&format!("Stack slim-workflow in account {account}")).unwrap();
        }
        p.exp_string("Apply 72 changes to 3 accounts?").unwrap();
        p.send(answer).unwrap();
        p.flush().unwrap();
        p
    };
    let mut p = run("n");
    p.exp_string("Nothing was changed").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(writes_since(&emu, 0), vec!["AssumeRole"; 3]);

    let mark = emu.mark();
    let mut p = run("y");
    for account in ACCOUNTS {
        p.exp_regex(&format!("{account} .*applied 24")).unwrap();
    }
    p.exp_string("3 accounts, 0 failed.").unwrap();
    p.exp_eof().unwrap();
    // The question gathers the accounts: every account was read and pre-flighted before the first write.
    let accounts = first_write_and_last_read_before(&emu, mark);
    assert_eq!(accounts.len(), 3, "{accounts:?}");
    let first_write = accounts.iter().map(|(w, _)| *w).fold(f64::MAX, f64::min);
    let last_preflight = accounts.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    assert!(last_preflight < first_write, "an account wrote ({first_write}) before the question ({last_preflight})");
}

/// `bootstrap --accounts --wait`: every account's probes run after its own apply; each row says when that
/// account's roles became usable (JSON `usable_after_seconds`, the table's USABLE AFTER), under a service lag.
#[tokio::test]
async fn bootstrap_of_accounts_with_wait_reports_each_account_s_time_to_usable() {
    let emu = Emulator::start_with(&SERVICE_LAG);
    for account in &ACCOUNTS[..2] {
        account_admin(&emu, account).await.create_user().user_name("demo").send().await.unwrap();
    }
    emu.settle();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "two.txt", &ACCOUNTS[..2].join("\n"));
    let run = |extra: &[&str]| {
        emu.wfboot()
            .args(["bootstrap", "--yes", "--user-name", "demo", "--wait", "--accounts"])
            .arg(&file)
            .args(["--assume-role-name", ROLE])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--output", "json"]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    let result: Value = serde_json::from_str(&text).unwrap();
    for row in result["accounts"].as_array().unwrap() {
        assert_eq!(row["status"], "applied", "{row}");
        let after = row["usable_after_seconds"].as_f64().unwrap_or_else(|| panic!("no time to usable: {row}"));
        assert!((10.0..60.0).contains(&after), "usable after {after} s with a 10 s service lag: {row}");
        assert_eq!(row["result"]["wait"]["usable"], serde_json::json!(true), "{row}");
    }
    // The accounts' sessions sign with their own keys: count the emulator's lag answers to anyone.
    let lagged = emu.requests().iter().filter(|r| r.realism.as_deref() == Some("service_role_not_propagated")).count();
    assert!(lagged > 0, "the lag was never met");
    // The text table gains the column.
    let again = run(&[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let table = stdout(&again);
    assert!(table.contains("USABLE AFTER"), "{table}");
}

#[tokio::test]
async fn a_listed_account_the_stack_does_not_allow_refuses_the_whole_fleet_before_any_aws_call() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let stack = std::fs::read_to_string(repo().join("profiles/slim-workflow.toml")).unwrap();
    let allowed = format!("\nallowed_accounts = [\"{}\", \"{}\"]\n\n[user]", ACCOUNTS[0], ACCOUNTS[1]);
    let stack = write_file(dir.path(), "profiles/slim-workflow.toml", &stack.replacen("\n[user]", &allowed, 1));
    let mark = emu.mark();
    let out = emu
        .wfboot()
        .arg("bootstrap")
        .arg("--stack")
        .arg(&stack)
        .args(["--yes", "--skip-user", "--assume-role-name", ROLE, "--accounts"])
        .arg(accounts_file(dir.path()))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("1 of the 3 accounts of"), "{err}");
    assert!(
        err.contains(&format!(
            "account {} is not allowed by the stack's allowed_accounts ({}, {})",
            ACCOUNTS[2], ACCOUNTS[0], ACCOUNTS[1]
        )),
        "{err}"
    );
    assert_eq!(emu.wfboot_requests_since(mark).len(), 0, "not even sts:GetCallerIdentity");

    // --expect-account is checked against every listed account the same way.
    let out = multi(&emu, dir.path(), &["plan", "--skip-user", "--expect-account", ACCOUNTS[0]]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("2 of the 3 accounts of"), "{err}");
    assert_eq!(emu.wfboot_requests_since(mark).len(), 0);
}

/// A platform team checks and tears down a fleet the way it set it up: `verify --accounts` checks every account's
/// roles, and `destroy --accounts` asks once, deletes what wfboot created in each account and nothing else; a
/// second destroy finds nothing to delete.
#[tokio::test]
async fn verify_and_destroy_over_two_accounts_check_and_tear_down_each_account() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "two.txt", &format!("{}\n{} # staging\n", ACCOUNTS[0], ACCOUNTS[2]));
    let fleet = |args: &[&str]| {
        emu.wfboot().args(args).arg("--accounts").arg(&file).args(["--assume-role-name", ROLE]).output().unwrap()
    };
    let out = fleet(&["bootstrap", "--yes", "--skip-user", "--stack", "render-worker"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Someone else's role in one account: destroy leaves it alone.
    let trust = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#;
    let staging = account_admin(&emu, ACCOUNTS[2]).await;
    staging.create_role().role_name("TheirRole").assume_role_policy_document(trust).send().await.unwrap();

    let out = fleet(&["verify", "--stack", "render-worker", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["command"], "verify");
    for (row, account) in json["accounts"].as_array().unwrap().iter().zip([ACCOUNTS[0], ACCOUNTS[2]]) {
        assert_eq!((row["account_id"].as_str(), row["status"].as_str()), (Some(account), Some("passed")), "{row}");
        assert_eq!(row["result"]["account_id"], account, "{row}");
        assert!(row["result"]["ok"].as_u64().unwrap() > 0, "{row}");
    }

    // Without a terminal and without --yes: the one question for both accounts, refused, nothing deleted.
    let mark = emu.mark();
    let out = fleet(&["destroy", "--stack", "render-worker"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("from 2 accounts?"), "{}", stderr(&out));
    assert_eq!(writes_since(&emu, mark), vec!["AssumeRole"; 2]);

    let mark = emu.mark();
    let out = fleet(&["destroy", "--yes", "--stack", "render-worker"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    for account in [ACCOUNTS[0], ACCOUNTS[2]] {
        let row =
            text.lines().find(|l| l.starts_with(account)).unwrap_or_else(|| panic!("no row for {account}:\n{text}"));
        assert!(row.contains("applied"), "{row}");
    }
    let writes: Vec<String> = writes_since(&emu, mark).into_iter().filter(|w| w != "AssumeRole").collect();
    assert_eq!(writes.len() % 2, 0, "{writes:?}");
    for account in [ACCOUNTS[0], ACCOUNTS[2]] {
        let state = dump_state(&account_admin(&emu, account).await).await;
        let roles: Vec<&String> = state["roles"].as_object().unwrap().keys().collect();
        let expected: Vec<&str> = if account == ACCOUNTS[2] { vec!["/TheirRole"] } else { vec![] };
        assert_eq!(roles, expected, "account {account}: {state}");
        assert_eq!(state["customer_policies"], serde_json::json!([]), "account {account}: {state}");
        assert_eq!(state["instance_profiles"], serde_json::json!({}), "account {account}: {state}");
    }
    let mark = emu.mark();
    let out = fleet(&["destroy", "--yes", "--stack", "render-worker"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(writes_since(&emu, mark), vec!["AssumeRole"; 2], "a second destroy wrote");
    assert!(stdout(&out).contains("2 accounts, 0 failed."), "{}", stdout(&out));
}

#[tokio::test]
async fn a_fleet_of_more_than_64_accounts_assumes_each_role_once() {
    // The SDK's shared identity cache holds at most 64 credential providers and evicts an arbitrary one beyond
    // that; an account whose session was evicted while still at work would assume its role again.
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let accounts: Vec<String> = (0..70).map(|i| format!("{:012}", 444_000_000_000u64 + i)).collect();
    let file = write_file(dir.path(), "accounts.txt", &(accounts.join("\n") + "\n"));
    let mark = emu.mark();
    let out = emu
        .wfboot()
        .args(["plan", "--max-accounts", "32", "-vv", "--accounts"])
        .arg(&file)
        .args(["--assume-role-name", ROLE])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", tail(&stderr(&out)));
    assert!(stdout(&out).contains("70 accounts, 0 failed."), "{}", stdout(&out));
    let mut assumed: Vec<String> = account_keys_since(&emu, mark);
    assumed.sort();
    assumed.dedup();
    assert_eq!(assumed.len(), 70, "each account is read with its own session");
    // Once each, but for an attempt given up after its deadline and sent again (a loaded machine: 32 accounts at
    // once on one emulator), which the emulator logs once it is done with it.
    let again = given_up(&stderr(&out)).iter().filter(|(op, _)| op == "AssumeRole").count();
    emu.quiet();
    let calls = emu.requests().into_iter().skip(mark).filter(|r| r.action == "AssumeRole").count();
    assert!(
        (70..=70 + again).contains(&calls),
        "sts:AssumeRole sent {calls} times for 70 accounts ({again} attempts given up and sent again)"
    );
}
