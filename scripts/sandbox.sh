#!/usr/bin/env bash
# The main job on a fresh machine, no AWS account needed: builds wfboot, starts a local sandbox account (the
# moto emulator on 127.0.0.1), creates the tutorial's operator user `demo`, bootstraps the default stack, then
# runs the bootstrap again to show that a re-run changes nothing.
#
#   scripts/sandbox.sh            # build, bootstrap, re-run, print the end state, stop the sandbox
#   scripts/sandbox.sh --keep     # ... and keep the sandbox running until Ctrl-C, to try commands against it
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
keep=false
[ "${1:-}" = --keep ] && keep=true

scripts/setup-emulator.sh
echo "== building wfboot (release; the first build takes 11 to 18 minutes on 2 cores)" >&2
cargo build --release --locked
wfboot="$repo/target/release/wfboot"

# A sandbox identity: nothing from ~/.aws is read and nothing leaves this machine.
export AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

. "$repo/scripts/lib/emulator.sh"
# The emulator's own log (moto prints a traceback for what it does not implement, e.g. the permission
# simulation wfboot tries first) stays out of the way, in target/.
export EMULATOR_LOG="$repo/target/sandbox-emulator.log"
: >"$EMULATOR_LOG"
start_emulator "$repo"
echo "== sandbox account at $EMULATOR_URL (emulator log: target/sandbox-emulator.log)" >&2
.venv/bin/aws --endpoint-url "$EMULATOR_URL" iam create-user --user-name demo >/dev/null

echo "== wfboot bootstrap (fresh account)" >&2
"$wfboot" bootstrap --yes --endpoint-url "$EMULATOR_URL" --user-name demo
echo "== wfboot bootstrap (again: nothing to do)" >&2
"$wfboot" bootstrap --yes --endpoint-url "$EMULATOR_URL" --user-name demo

if $keep; then
  cat >&2 <<MSG
== the sandbox keeps running; in another shell:
   export AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
   $wfboot plan --endpoint-url $EMULATOR_URL --user-name demo
   Ctrl-C here stops it.
MSG
  wait "$EMULATOR_PID" || true
fi
