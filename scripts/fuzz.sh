#!/usr/bin/env bash
# A longer fuzz run of stack loading and template rendering than the test suite's 2 seconds.
#   scripts/fuzz.sh [SECONDS] [SEED]      (default 60 s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WFBOOT_FUZZ_SECONDS=${1:-60} WFBOOT_FUZZ_SEED=${2:-24301} \
  cargo test --bin wfboot stack::fuzz -- --nocapture 2>&1 | grep -E "^fuzz:|test result|panicked"
