#!/usr/bin/env bash
# Create (or refresh) the git-ignored virtualenv <repo>/.venv that runs the local AWS
# emulator (tools/emulator.py, moto) and the peer scripts (boto3, awscli); and, through
# scripts/setup-iam-simulate.sh, the emulator's policy simulator (tools/iam-simulate/node_modules).
#
# Idempotent: the venv is (re)installed only when it is missing or when
# tools/requirements.txt changed since the last successful install (a stamp file inside
# the venv records that file's sha256). Otherwise this is a fast no-op.
#
# Environment: PYTHON = interpreter used to create the venv (default python3).
# Output: one line on stderr on success; pip's output only when something fails.
set -euo pipefail

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
venv="$repo/.venv"
req="$repo/tools/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

# The policy simulator's node package (tools/iam-simulate), stamped the same way.
"$repo/scripts/setup-iam-simulate.sh"

want="$(sha256sum "$req" | cut -d' ' -f1)"

up_to_date() {
    [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]
}

if up_to_date; then
    echo "setup-emulator: $venv up to date" >&2
    exit 0
fi

# Serialise concurrent runs (e.g. parallel test binaries) on one lock per repo path; the
# lock lives outside the venv, which may be deleted and recreated below.
lock="${TMPDIR:-/tmp}/setup-emulator-$(printf '%s' "$repo" | sha256sum | cut -c1-16).lock"
exec 9>"$lock"
flock 9
if up_to_date; then  # another run finished the job while we waited
    echo "setup-emulator: $venv up to date" >&2
    exit 0
fi

log="$(mktemp "${TMPDIR:-/tmp}/setup-emulator.XXXXXX")"
trap 'rm -f "$log"' EXIT

fail() {
    echo "setup-emulator: $1 failed; output follows" >&2
    cat "$log" >&2
    exit 1
}

if [[ ! -x "$venv/bin/python" ]]; then
    rm -rf "$venv"
    "$python" -m venv "$venv" >"$log" 2>&1 || fail "$python -m venv"
fi
# The stamp goes only after a successful install, so an interrupted run is redone.
rm -f "$stamp"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
    -r "$req" >"$log" 2>&1 || fail "pip install -r tools/requirements.txt"
echo "$want" >"$stamp"
echo "setup-emulator: installed $(basename "$req") into $venv" >&2
