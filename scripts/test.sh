#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the emulator when missing, then runs every test.
#   scripts/test.sh [extra cargo test args]   (with args: only `cargo test ARGS`, after the emulator self-test)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if [[ $# -eq 0 ]]; then
    # On a fresh clone the build is the long pole and needs the CPU, the emulator's install mostly waits on the
    # network: the install runs while the tests compile.
    setup_log=$(mktemp)
    scripts/setup-emulator.sh >"$setup_log" 2>&1 &
    setup=$!
    trap 'kill "$setup" 2>/dev/null || true' EXIT
    echo "== cargo test --no-run (the emulator installs meanwhile)" >&2
    cargo test --locked --no-run
    status=0
    wait "$setup" || status=$?
    trap - EXIT
    cat "$setup_log" >&2
    rm -f "$setup_log"
    if [[ $status -ne 0 ]]; then
        echo "scripts/setup-emulator.sh failed (exit $status): see its output above" >&2
        exit "$status"
    fi
else
    scripts/setup-emulator.sh
fi
# Never let a test reach a real AWS endpoint or the instance metadata service.
export AWS_EC2_METADATA_DISABLED=true
echo "== emulator self-test" >&2
.venv/bin/python tools/test_emulator.py
echo "== cargo test" >&2
if [[ $# -gt 0 ]]; then
    exec cargo test --locked "$@"
fi
# The realism tests (tests/it/realism.rs) spend their time waiting out lag windows, each on its own emulator:
# they run after the rest, many at once, instead of two at a time between CPU-bound tests.
cargo test --locked -- --skip under_realism_
echo "== cargo test: tests/it/realism.rs, concurrently" >&2
cargo test --locked --test it -- --test-threads 12 under_realism_
