#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the emulator when missing, then runs every test.
#   scripts/test.sh [extra cargo test args]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup-emulator.sh
# Never let a test reach a real AWS endpoint or the instance metadata service.
export AWS_EC2_METADATA_DISABLED=true
echo "== emulator self-test" >&2
.venv/bin/python tools/test_emulator.py
echo "== cargo test" >&2
cargo test --locked "$@"
