//! Service control policies in the pre-flight, against the emulator's Organizations API (moto holds the
//! organisation, its OUs, accounts and SCPs, but does not enforce SCPs on calls: what these tests check is the
//! pre-flight's refusal, with every write attempt counted).
//!
//! The admin key and wfboot's key are both account 123456789012, which creates the organisation and so is its
//! management account: a fleet run from there reads the SCPs of every member account.

use aws_sdk_organizations::types::{OrganizationFeatureSet, PolicyType};
use serde_json::{json, Value};

use crate::common::*;

const ROLE: &str = "WfbootDeployer";

fn org_client(emu: &Emulator) -> aws_sdk_organizations::Client {
    aws_sdk_organizations::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"))
}

/// An organisation with OUs /workloads/prod and /workloads/dev and one new account in each.
struct Org {
    client: aws_sdk_organizations::Client,
    prod: String,
    dev: String,
    dev_ou: String,
}

async fn organisation(emu: &Emulator) -> Org {
    let o = org_client(emu);
    o.create_organization().feature_set(OrganizationFeatureSet::All).send().await.unwrap();
    let root = o.list_roots().send().await.unwrap().roots()[0].id().unwrap().to_string();
    let ou = |parent: String, name: &'static str| {
        let o = o.clone();
        async move {
            let out = o.create_organizational_unit().parent_id(parent).name(name).send().await.unwrap();
            out.organizational_unit().unwrap().id().unwrap().to_string()
        }
    };
    let workloads = ou(root.clone(), "workloads").await;
    let prod_ou = ou(workloads.clone(), "prod").await;
    let dev_ou = ou(workloads, "dev").await;
    let mut ids = Vec::new();
    for (name, target) in [("prod", &prod_ou), ("dev", &dev_ou)] {
        let out = o.create_account().email(format!("{name}@example.com")).account_name(name).send().await.unwrap();
        let id = out.create_account_status().unwrap().account_id().unwrap().to_string();
        o.move_account().account_id(&id).source_parent_id(&root).destination_parent_id(target).send().await.unwrap();
        ids.push(id);
    }
    Org { client: o, prod: ids[0].clone(), dev: ids[1].clone(), dev_ou }
}

/// Creates an SCP and attaches it to `target`; returns its id.
async fn attach_scp(o: &aws_sdk_organizations::Client, name: &str, document: Value, target: &str) -> String {
    let out = o
        .create_policy()
        .name(name)
        .description(name)
        .r#type(PolicyType::ServiceControlPolicy)
        .content(document.to_string())
        .send()
        .await
        .unwrap();
    let id = out.policy().unwrap().policy_summary().unwrap().id().unwrap().to_string();
    o.attach_policy().policy_id(&id).target_id(target).send().await.unwrap();
    id
}

/// Every write call sent after `mark` other than sts:AssumeRole (the fleet's sessions), whoever sent it: only
/// wfboot runs meanwhile, in every account of the fleet.
fn write_attempts_since(emu: &Emulator, mark: usize) -> Vec<String> {
    emu.requests().into_iter().skip(mark).filter(|r| r.write && r.action != "AssumeRole").map(|r| r.action).collect()
}

/// The roles of the account's state but the one Organizations creates in a new account
/// (OrganizationAccountAccessRole, which moto makes as AWS does).
fn stack_roles(state: &Value) -> Vec<String> {
    let roles: Vec<String> = state["roles"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default();
    roles.into_iter().filter(|r| r != "/OrganizationAccountAccessRole").collect()
}

fn fleet(emu: &Emulator, file: &std::path::Path, args: &[&str]) -> std::process::Output {
    emu.wfboot().args(args).arg("--accounts").arg(file).args(["--assume-role-name", ROLE]).output().unwrap()
}

fn row<'a>(text: &'a str, account: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(account)).unwrap_or_else(|| panic!("no row for {account}:\n{text}"))
}

/// "applied N" in an accounts table row.
fn applied(row: &str) -> usize {
    let (_, rest) = row.split_once("applied ").unwrap_or_else(|| panic!("not applied: {row}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_scp_on_the_dev_ou_refuses_dev_before_any_write_naming_policy_and_ou_and_prod_goes_ahead_until_a_team_tag_lets_both_through(
) {
    let emu = Emulator::start();
    let org = organisation(&emu).await;
    let deny = json!({"Version": "2012-10-17", "Statement": [{"Sid": "RequireTeamTag", "Effect": "Deny",
        "Action": "iam:CreateRole", "Resource": "*", "Condition": {"Null": {"aws:RequestTag/team": "true"}}}]});
    let policy_id = attach_scp(&org.client, "RequireTeamTag", deny, &org.dev_ou).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "accounts.txt", &format!("{}  # prod\n{}  # dev\n", org.prod, org.dev));

    let mark = emu.mark();
    let out = fleet(&emu, &file, &["bootstrap", "--yes"]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{text}\n{err}");
    assert!(row(&text, &org.dev).contains("FAILED"), "{text}");
    let written = applied(row(&text, &org.prod));
    assert!(written > 0, "{text}");
    let refusal = format!(
        "iam:CreateRole on 5 resources denied by SCP RequireTeamTag ({policy_id}) attached to OU /workloads/dev"
    );
    assert!(err.contains(&refusal), "{err}");
    assert!(err.contains("nothing was changed") && err.contains("--tag KEY=VALUE"), "{err}");
    assert!(err.contains(&format!("1 of 2 accounts failed: {}", org.dev)), "{err}");
    // Every write of the run is prod's: dev's pre-flight refused it before its first.
    assert_eq!(write_attempts_since(&emu, mark).len(), written);
    assert_eq!(stack_roles(&dump_state(&account_admin(&emu, &org.dev).await).await), Vec::<String>::new());
    assert_eq!(stack_roles(&dump_state(&account_admin(&emu, &org.prod).await).await).len(), 8);

    // With the tag the SCP asks for, both go ahead.
    let out = fleet(&emu, &file, &["bootstrap", "--yes", "--tag", "team=x"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(applied(row(&text, &org.dev)) > 0, "{text}");
    assert_eq!(stack_roles(&dump_state(&account_admin(&emu, &org.dev).await).await).len(), 8);
}

#[tokio::test]
async fn an_allow_list_scp_without_full_aws_access_refuses_every_iam_action_the_plan_needs() {
    let emu = Emulator::start();
    let org = organisation(&emu).await;
    org.client.detach_policy().policy_id("p-FullAWSAccess").target_id(&org.dev).send().await.unwrap();
    let s3_only =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
    attach_scp(&org.client, "S3Only", s3_only, &org.dev).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "accounts.txt", &format!("{}\n{}\n", org.prod, org.dev));

    let out = fleet(&emu, &file, &["check", "--output", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    crate::schema::assert_valid(&[crate::schema::doc(
        "check --accounts under an allow list",
        "accounts_result",
        v.clone(),
    )]);
    let prod = &v["accounts"][0]["result"]["organisation"];
    let dev = &v["accounts"][1]["result"]["organisation"];
    assert_eq!(prod["status"], "allowed", "{prod}");
    assert_eq!(prod["levels"], json!(["the root", "OU /workloads", "OU /workloads/prod", "the account"]), "{prod}");
    let needed = prod["permissions"].as_u64().unwrap() as usize;
    assert!(needed >= 10, "{prod}");
    assert_eq!(dev["status"], "denied", "{dev}");
    let denials = dev["denials"].as_array().unwrap();
    assert_eq!(denials.len(), needed, "every permission the plan needs is refused: {dev}");
    for d in denials {
        assert!(d["action"].as_str().unwrap().starts_with("iam:"), "{d}");
        assert_eq!(d["attached_to"], "the account", "{d}");
        assert!(d.get("policy_name").is_none(), "no policy denies it: none allows it: {d}");
    }

    // bootstrap of the dev account alone: refused, nothing written.
    let dev_only = write_file(dir.path(), "dev.txt", &format!("{}\n", org.dev));
    let mark = emu.mark();
    let out = fleet(&emu, &dev_only, &["bootstrap", "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("iam:CreateRole on 5 resources allowed by no SCP attached to the account"),
        "{}",
        stderr(&out)
    );
    assert_eq!(write_attempts_since(&emu, mark), Vec::<String>::new());
}

#[tokio::test]
async fn a_member_account_caller_is_told_the_organisation_is_not_visible_and_bootstrap_goes_ahead_as_before() {
    let emu = Emulator::start();
    // What a bootstrap writes in an account in no organisation (before there is one).
    let mark = emu.mark();
    let out = emu.wfboot().args(["bootstrap", "--yes", "--skip-user"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut standalone = write_attempts_since(&emu, mark);
    standalone.sort();
    let org = organisation(&emu).await;
    // The caller is a role in the member account dev: its own credentials, not the management account's.
    let sts = aws_sdk_sts::Client::new(&emu.sdk_config(ADMIN_KEY, "admin-secret"));
    let session = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{}:role/Admin", org.dev))
        .role_session_name("member")
        .send()
        .await
        .unwrap();
    let c = session.credentials().unwrap();
    let member = |args: &[&str]| {
        emu.wfboot()
            .env("AWS_ACCESS_KEY_ID", c.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", c.secret_access_key())
            .env("AWS_SESSION_TOKEN", c.session_token())
            .args(args)
            .output()
            .unwrap()
    };

    let out = member(&["check"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("organisation ")).unwrap_or_else(|| panic!("{text}"));
    let shown = &lines[at..at + 2];
    assert!(shown[0].contains(" service control policies "), "{text}");
    assert!(shown[0].ends_with("unverified"), "{text}");
    assert!(
        shown[1].contains("-> not visible from this account (AccessDeniedException): SCPs can be read from"),
        "{text}"
    );
    let out = member(&["check", "--output", "json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    crate::schema::assert_valid(&[crate::schema::doc("check in a member account", "check_result", v.clone())]);
    assert_eq!(v["organisation"], json!({"status": "not_visible", "reason": "AccessDeniedException"}));

    let mark = emu.mark();
    let out = member(&["bootstrap", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("Service control policies: not visible from this account; not checked"));
    // Everything a standalone account's bootstrap writes, nothing held back by the organisation.
    let writes = write_attempts_since(&emu, mark);
    let summary = stdout(&out);
    assert!(summary.contains(&format!("{} writes", writes.len())) || summary.contains("created"), "{summary}");
    assert_eq!(stack_roles(&dump_state(&account_admin(&emu, &org.dev).await).await).len(), 8);
}

#[tokio::test]
async fn an_account_in_no_organisation_has_no_scp_over_it_and_the_management_account_is_not_restricted() {
    let emu = Emulator::start();
    let out = emu.wfboot().args(["check", "--skip-user", "--output", "json"]).output().unwrap();
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(v["organisation"], json!({"status": "no_organisation"}));

    // 123456789012 creates the organisation: its own runs are the management account's, which SCPs do not
    // restrict, even with a deny-all SCP at the root.
    let org = organisation(&emu).await;
    let root = org.client.list_roots().send().await.unwrap().roots()[0].id().unwrap().to_string();
    let deny_all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]});
    attach_scp(&org.client, "DenyAll", deny_all, &root).await;
    let out = emu.wfboot().args(["check", "--skip-user", "--output", "json"]).output().unwrap();
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(v["organisation"], json!({"status": "management_account"}));
    crate::schema::assert_valid(&[crate::schema::doc("check in the management account", "check_result", v)]);
}
