#!/usr/bin/env bash
# The main job on a fresh machine, no AWS account needed: builds wfboot, starts a local sandbox account (the
# moto emulator on 127.0.0.1), signs in as the sandbox's administrator `sandbox-admin` (an IAM user with its own
# access key), and bootstraps the default stack for the tutorial's operator user `demo`: the pre-flight simulates
# every permission the plan needs as that administrator, then the plan is applied; a second run shows that a
# re-run changes nothing. Ends with the commands to try next.
#
#   scripts/sandbox.sh            # build, bootstrap, re-run, stop the sandbox
#   scripts/sandbox.sh --keep     # ... and keep the sandbox running until Ctrl-C, to try commands against it
#   WFBOOT_BIN=path/to/wfboot scripts/sandbox.sh   # use an already built binary (the test suite does)
#
# The build is the debug build that scripts/test.sh uses too (`cargo test --no-run` compiles it with the test
# binaries): the AWS SDK is compiled once for both commands. From a fresh clone on 2 cores it takes about
# 8 minutes (docs/performance.md "Build cost"); later runs take seconds.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
keep=false
[ "${1:-}" = --keep ] && keep=true

# The emulator installs while wfboot compiles: the build needs the CPU, the install mostly the network.
setup_log=$(mktemp)
scripts/setup-emulator.sh >"$setup_log" 2>&1 &
setup=$!
wfboot=${WFBOOT_BIN:-$repo/target/debug/wfboot}
if [ -z "${WFBOOT_BIN:-}" ]; then
  echo "== building wfboot (the first build takes about 8 minutes on 2 cores; the emulator installs meanwhile)" >&2
  if ! cargo test --locked --no-run --quiet >&2; then
    kill "$setup" 2>/dev/null || true
    exit 1
  fi
fi
if ! wait "$setup"; then
  cat "$setup_log" >&2
  echo "scripts/setup-emulator.sh failed: see its output above" >&2
  exit 1
fi
rm -f "$setup_log"

# Nothing from ~/.aws is read and nothing leaves this machine.
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

. "$repo/scripts/lib/emulator.sh"
# The emulator's own log stays out of the way, in target/.
mkdir -p "$repo/target"
export EMULATOR_LOG="$repo/target/sandbox-emulator.log"
: >"$EMULATOR_LOG"
start_emulator "$repo"
echo "== sandbox account 123456789012 at $EMULATOR_URL (emulator log: target/sandbox-emulator.log)" >&2

# The account's own root-like identity sets up the sandbox: an administrator with an access key, and the
# tutorial's operator user `demo`, whose managed policies the stack checks.
aws_root() { AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox .venv/bin/aws --endpoint-url "$EMULATOR_URL" "$@"; }
aws_root iam create-user --user-name sandbox-admin >/dev/null
aws_root iam attach-user-policy --user-name sandbox-admin --policy-arn arn:aws:iam::aws:policy/AdministratorAccess
read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY < <(aws_root iam create-access-key --user-name sandbox-admin \
  --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text)
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
aws_root iam create-user --user-name demo >/dev/null
echo "== signed in as IAM user sandbox-admin (AdministratorAccess), bootstrapping for operator user demo" >&2

echo "== wfboot bootstrap (fresh account)" >&2
"$wfboot" bootstrap --yes --endpoint-url "$EMULATOR_URL" --user-name demo
echo "== wfboot bootstrap (again: nothing to do)" >&2
"$wfboot" bootstrap --yes --endpoint-url "$EMULATOR_URL" --user-name demo

try_next="   export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY AWS_REGION=us-east-1
   export AWS_ENDPOINT_URL=$EMULATOR_URL AWS_EC2_METADATA_DISABLED=true
   $wfboot plan --user-name demo              # what would change (nothing now)
   $wfboot check --user-name demo             # who you are and what you may do
   $wfboot verify                             # does each role work for its service?
   $wfboot destroy --dry-run                  # what a teardown would delete"
if $keep; then
  cat >&2 <<MSG
== the sandbox keeps running; in another shell, try:
$try_next
   Ctrl-C here stops it.
MSG
  wait "$EMULATOR_PID" || true
else
  cat >&2 <<MSG
== done. To try the other commands, run scripts/sandbox.sh --keep, then in another shell:
$try_next
MSG
fi
