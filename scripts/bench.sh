#!/usr/bin/env bash
# Issue 6 and 12 benchmark, end to end: the emulator venv, a release build of wfboot, then bench/run.py with its
# defaults (latencies 0 and 40 ms, 5 runs / 3 for the CLI tutorial, scale 10/50/200 roles at 40 ms, 3 runs of
# bootstrap + attach + destroy under the emulator's realism mode, and --accounts over 50 accounts, realism off
# and on, --max-accounts 4 and 16).
# Extra arguments go to bench/run.py, e.g.  scripts/bench.sh --quick
# Results: bench/out/results.{md,json}, bench/out/scale.svg; a full run also refreshes bench/results/latest.*
# Takes 30-40 minutes on a 2-core machine (it waits for other work to calm down), plus ~10 min for a clean release build.
set -euo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
scripts/setup-emulator.sh
cargo build --release --quiet
exec "$repo/.venv/bin/python" bench/run.py "$@"
