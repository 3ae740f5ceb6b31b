//! The interactive flow, driven through a pseudo-terminal as a person would: typed user name, a wrong one
//! re-asked, the plan shown before the question, and "no" leaving the account untouched.

use crate::common::*;
use rexpect::session::spawn_command;

#[tokio::test]
async fn a_wrong_user_name_is_asked_again_and_no_at_the_confirmation_leaves_the_account_untouched() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let mut cmd = emu.wfboot_std();
    cmd.arg("bootstrap");
    let mut p = spawn_command(cmd, Some(60_000)).expect("spawn in a pty");
    p.exp_string("Operator IAM user").unwrap();
    p.send_line("bad name!").unwrap();
    p.exp_string("an IAM user name is 1-64 letters").unwrap();
    p.send_line("ghost").unwrap();
    p.exp_string("there is no IAM user `ghost`").unwrap();
    p.exp_string("Operator IAM user").unwrap();
    p.send_line("demo").unwrap();
    p.exp_string("+ role AWSBatchServiceRole").unwrap();
    p.exp_string("Apply 32 changes to account 123456789012?").unwrap();
    p.send("n").unwrap();
    p.flush().unwrap();
    p.exp_string("Nothing was changed").unwrap();
    p.exp_eof().unwrap();

    assert!(emu.wfboot_write_attempts_since(0).is_empty(), "{:?}", emu.wfboot_write_attempts_since(0));
    let iam = emu.admin().await;
    assert!(iam.list_roles().send().await.unwrap().roles().is_empty());
    assert!(iam.list_attached_user_policies().user_name("demo").send().await.unwrap().attached_policies().is_empty());
}

#[tokio::test]
async fn yes_at_the_confirmation_bootstraps_and_a_second_interactive_run_asks_nothing_to_apply() {
    let emu = Emulator::start();
    emu.create_demo_user().await;
    let mut cmd = emu.wfboot_std();
    cmd.args(["bootstrap", "--user-name", "demo"]);
    let mut p = spawn_command(cmd, Some(60_000)).expect("spawn in a pty");
    p.exp_string("Apply 32 changes").unwrap();
    p.send("y").unwrap();
    p.flush().unwrap();
    p.exp_string("32 writes done").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(emu.wfboot_writes_since(0).len(), 32);

    let mut cmd = emu.wfboot_std();
    cmd.args(["bootstrap", "--user-name", "demo"]);
    let mut p = spawn_command(cmd, Some(60_000)).expect("spawn in a pty");
    p.exp_string("Nothing to do").unwrap();
    p.exp_eof().unwrap();
}
