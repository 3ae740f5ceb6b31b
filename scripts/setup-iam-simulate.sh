#!/usr/bin/env bash
# Install the test tool tools/iam-simulate (the npm package @cloud-copilot/iam-simulate, pinned exactly by
# tools/iam-simulate/package-lock.json) into the git-ignored tools/iam-simulate/node_modules. The emulator's
# iam:SimulatePrincipalPolicy and the differential test of src/policy_eval.rs use it.
#
# The package is AGPL-3.0-or-later: it is a test tool, installed here at test time and never vendored into the
# crate or linked into the wfboot binary.
#
# Idempotent: `npm ci` runs only when node_modules is missing or package-lock.json changed since the last
# successful install (a stamp file inside node_modules records the lock file's sha256). Otherwise a fast no-op.
# Called by scripts/setup-emulator.sh. Output: one line on stderr on success; npm's output only when it fails.
set -euo pipefail

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
dir="$repo/tools/iam-simulate"
lock_file="$dir/package-lock.json"
stamp="$dir/node_modules/.package-lock.sha256"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "setup-iam-simulate: \`$tool\` not found: install Node.js 18 or later (the emulator's policy simulator needs it)" >&2
        exit 1
    fi
done

want="$(sha256sum "$lock_file" | cut -d' ' -f1)"
up_to_date() {
    [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -d "$dir/node_modules/@cloud-copilot/iam-simulate" ]]
}
if up_to_date; then
    exit 0
fi

lock="${TMPDIR:-/tmp}/setup-iam-simulate-$(printf '%s' "$repo" | sha256sum | cut -c1-16).lock"
exec 9>"$lock"
flock 9
if up_to_date; then
    exit 0
fi

log="$(mktemp "${TMPDIR:-/tmp}/setup-iam-simulate.XXXXXX")"
trap 'rm -f "$log"' EXIT
rm -f "$stamp"
if ! (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) >"$log" 2>&1; then
    echo "setup-iam-simulate: npm ci in tools/iam-simulate failed; output follows" >&2
    cat "$log" >&2
    exit 1
fi
echo "$want" >"$stamp"
echo "setup-iam-simulate: installed @cloud-copilot/iam-simulate into $dir/node_modules" >&2
