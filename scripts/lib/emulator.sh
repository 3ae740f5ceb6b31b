# Sourced by scripts that need a local AWS emulator. Defines start_emulator, which starts tools/emulator.py on
# a free 127.0.0.1 port and sets EMULATOR_URL and EMULATOR_PID. The emulator reads its stdin from a FIFO whose
# only writer is this shell, so it exits by itself when the script ends, however the script ends; the EXIT
# trap also stops it by PID. Its own log (moto's tracebacks for what it does not implement, ...) goes to
# $EMULATOR_LOG when that is set, else to stderr.

start_emulator() {
  local repo=$1; shift
  local dir
  dir=$(mktemp -d)
  mkfifo "$dir/stdin" "$dir/stdout"
  exec 8<>"$dir/stdin"          # the writer end, held by this shell only
  "$repo/.venv/bin/python" "$repo/tools/emulator.py" --port 0 "$@" <"$dir/stdin" >"$dir/stdout" \
    2>>"${EMULATOR_LOG:-/dev/stderr}" 8>&- &
  EMULATOR_PID=$!
  trap 'stop_emulator' EXIT
  local ready
  read -r ready EMULATOR_URL <"$dir/stdout"
  rm -rf "$dir"
  if [ "$ready" != READY ]; then
    echo "the emulator did not start" >&2
    return 1
  fi
  export EMULATOR_URL EMULATOR_PID
}

stop_emulator() {
  if [ -n "${EMULATOR_PID:-}" ]; then
    kill "$EMULATOR_PID" 2>/dev/null || true
    wait "$EMULATOR_PID" 2>/dev/null || true
    EMULATOR_PID=
  fi
}
