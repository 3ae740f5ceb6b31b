//! The main job as a newcomer meets it: `scripts/sandbox.sh` bootstraps a local sandbox account as its
//! administrator, with the pre-flight verified by the emulator's policy simulator, and re-runs with no write.

use crate::common::*;

#[test]
fn the_sandbox_bootstraps_as_a_real_operator_with_a_verified_preflight_then_re_runs_with_no_write_and_no_warning() {
    let out = std::process::Command::new("bash")
        .arg(repo().join("scripts/sandbox.sh"))
        .env("WFBOOT_BIN", env!("CARGO_BIN_EXE_wfboot"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}\n{err}");
    assert!(err.contains("Caller: arn:aws:iam::123456789012:user/sandbox-admin"), "{err}");
    assert!(
        err.contains("Pre-flight: the caller may make every call the plan needs")
            && err.contains("simulated for arn:aws:iam::123456789012:user/sandbox-admin"),
        "the pre-flight did not say it verified the permissions:\n{err}"
    );
    assert!(!err.contains("warning"), "the showcase printed a warning:\n{err}");
    assert!(!err.contains("could not be verified"), "{err}");
    assert!(text.contains("32 writes done"), "{text}\n{err}");
    assert!(text.contains("Nothing to do: the account already matches stack slim-workflow"), "{text}\n{err}");
    for next in ["plan --user-name demo", "check --user-name demo", "verify", "destroy --dry-run"] {
        assert!(err.contains(next), "the next commands do not include `{next}`:\n{err}");
    }
}
