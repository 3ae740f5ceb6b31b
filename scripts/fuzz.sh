#!/usr/bin/env bash
# Longer fuzz runs than the test suite's: stack loading and template rendering (2 s in the suite), and the
# differential test of the local policy evaluator against @cloud-copilot/iam-simulate (10,000 cases in the suite).
#   scripts/fuzz.sh [SECONDS] [SEED] [POLICY_CASES]      (default 60 s, seed 24301, 200,000 policy cases)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup-emulator.sh
WFBOOT_FUZZ_SECONDS=${1:-60} WFBOOT_FUZZ_SEED=${2:-24301} \
  cargo test --bin wfboot stack::fuzz -- --nocapture 2>&1 | grep -E "^fuzz:|test result|panicked"
WFBOOT_DIFF_CASES=${3:-200000} WFBOOT_DIFF_SEED=${2:-24301} \
  cargo test --bin wfboot policy_eval::differential::random -- --nocapture 2>&1 \
  | grep -E "^policy_eval differential|test result|panicked|disagree|random #"
