#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the emulator when missing, then runs every test.
#   scripts/test.sh [extra cargo test args]   (with args: only `cargo test ARGS`, after the emulator self-test)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup-emulator.sh
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
