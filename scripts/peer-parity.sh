#!/usr/bin/env bash
# Runs the careful boto3 peer script (boto3_idempotent.py) on a fresh emulator and prints the
# canonical state dump (the peers' dump_state.py). With --check, compares it with
# tests/fixtures/slim-workflow.state.json, the end state the test suite holds wfboot to.
#
#   scripts/peer-parity.sh            # print the peer's end state (plus the stack's PassRole policy, below)
#   scripts/peer-parity.sh --check    # exit 1 if the fixture no longer matches the peer
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The peer scripts (aws_cli_tutorial.sh, boto3_idempotent.py, dump_state.py) are not part of this repository.
peers=${PEERS_DIR:-}
[ -n "$peers" ] && [ -d "$peers" ] || {
    echo "set PEERS_DIR to the folder that holds the peer scripts (boto3_idempotent.py, dump_state.py)" >&2
    exit 2
}
"$repo/scripts/setup-emulator.sh"
py="$repo/.venv/bin/python"

. "$repo/scripts/lib/emulator.sh"
start_emulator "$repo"
url=$EMULATOR_URL
export ENDPOINT=$url AWS_EC2_METADATA_DISABLED=true
"$py" "$peers/boto3_idempotent.py" setup 2>/dev/null
"$py" "$peers/boto3_idempotent.py" 2>/dev/null
state=$("$py" "$peers/dump_state.py")
# Deliberately beyond the tutorial: the default stack gives the operator user `demo` the stack's own policy
# SLIMWorkflowPassRoles (iam:PassRole on the stack's roles, each to the services that trust it), without which
# the operator cannot create the compute environment or the state machine the roles are for. And the default stack
# creates AWS Batch's service-linked role (batch.amazonaws.com), which Batch uses for compute environments without a
# serviceRole; the tutorial predates it. The fixture is the peer's end state plus that policy and that role (moto
# names it AWSServiceRoleForbatch).
state=$(echo "$state" | "$py" -c '
import json, sys
s = json.load(sys.stdin)
s["customer_policies"] = sorted(s["customer_policies"] + ["SLIMWorkflowPassRoles"])
s["user_demo"] = sorted(s["user_demo"] + ["arn:aws:iam::123456789012:policy/SLIMWorkflowPassRoles"])
s["roles"]["/aws-service-role/batch.amazonaws.com/AWSServiceRoleForbatch"] = {
    "attached": [], "trust": [{"Service": ["batch.amazonaws.com"]}]}
print(json.dumps(s, indent=2))')
if [ "${1:-}" = --check ]; then
  if diff <(echo "$state" | "$py" -m json.tool --sort-keys) <("$py" -m json.tool --sort-keys "$repo/tests/fixtures/slim-workflow.state.json"); then
    echo "peer parity: the fixture matches the boto3 peer's end state" >&2
  else
    echo "peer parity: the fixture differs from the boto3 peer's end state (diff above)" >&2; exit 1
  fi
else
  echo "$state"
fi
