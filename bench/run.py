#!/usr/bin/env python3
"""wfboot benchmark (issue 6): wfboot vs the peers' AWS CLI tutorial and boto3 script, on the local emulator.

    python bench/run.py [--latency-ms 0,40] [--runs 5] [--cli-runs 3] [--scale 10,50,200] [--quick]

See bench/README.md for what is measured and how. Everything talks only to emulators this script
starts on 127.0.0.1 (tools/emulator.py, a fresh process per measured run); every emulator and tool
process is started in its own session, has a timeout, and is stopped by its PID.

Outputs (bench/out/, git-ignored): results.md, results.json, scale.svg, stacks/, logs/.
With a full run (not --quick) results.md and scale.svg are also copied to bench/results/latest.md and
latest.svg, and the table section of bench/README.md is refreshed (--no-publish to skip that;
--publish to force it after --quick).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import selectors
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENV = REPO / ".venv"
VENV_PY = VENV / "bin" / "python"
EMULATOR = REPO / "tools" / "emulator.py"
LOCAL_URL = re.compile(r"http://127\.0\.0\.1:(\d{1,5})")
AWS_POLICY = "arn:aws:iam::aws:policy/"
USER = "demo"

# Targets (issue 6). Each is checked in the same run, side by side.
TARGET_BOUND_RATIO = 1.5       # fresh @40 ms: wall <= 1.5 x (waves x L + wall @0 ms)
TARGET_VS_CLI = 30.0           # fresh @40 ms: >= 30x faster than the CLI tutorial
TARGET_VS_BOTO3 = 5.0          # fresh @40 ms: >= 5x faster than the boto3 script
TARGET_NOOP_WAVES = 3          # no-op @40 ms: <= 3 dependent round trips
TARGET_NOOP_CALLS = 20         # no-op @40 ms: <= 20 API calls, 0 writes
TARGET_VERSION_MS = 10.0       # `wfboot --version`
TARGET_SHOW_MS = 20.0          # `wfboot stacks show slim-workflow --account-id 123456789012`
TARGET_RSS_MB = 50.0           # peak RSS of a bootstrap
TARGET_LATENCY = 40.0          # the latency the targets are stated for
EMULATOR_GC = False            # --emulator-gc: leave Python's garbage collector on in the emulators
WAVE_FRACTION = 0.6            # a request >= 0.6 L after its wave's first start opens a new wave
MIN_WAVE_LATENCY = 40.0        # below this, waves cannot be told apart from compute jitter

TRUST_TEMPLATES = [  # built-in templates (wfboot embeds them), cycled through by the synthetic stacks
    "create_AWSBatchServiceRole.json",
    "create_StepFunctionsLambdaRole.json",
    "create_SLIM-Extras_ECS_for_EC2.json",
    "create_SLIM-Extras_for_Lambda.json",
    "create_AmazonEC2SpotFleetRole.json",
    "ec2-trust-policy.json",
]
SCALE_POLICIES = ["AmazonS3ReadOnlyAccess", "AmazonSQSReadOnlyAccess"]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_venv_python() -> None:
    """Re-run under the repository's venv (boto3, moto) unless already there."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PY.exists():
        sys.exit(f"{VENV_PY} not found: run scripts/setup-emulator.sh first (or scripts/bench.sh)")
    os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])


def check_local(url: str) -> str:
    m = LOCAL_URL.fullmatch(url.rstrip("/"))
    if not m or not 0 < int(m.group(1)) < 65536:
        raise SystemExit(f"refusing endpoint {url!r}: only http://127.0.0.1:PORT is allowed")
    return url.rstrip("/")


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# --------------------------------------------------------------------------------------------- processes


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: no developer AWS config, no proxies, no RUST_BACKTRACE etc."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM") if k in os.environ}
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="y",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent/wfboot-bench/config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/wfboot-bench/credentials",
        AWS_PAGER="",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    env.update(extra)
    return env


TIME_BIN = shutil.which("time", path="/usr/bin:/bin")  # GNU time: a tiny parent that reports the child's peak RSS
# Fallback wrapper (no GNU time): fork + exec + os.wait4 in a minimal Python; its own RSS (~9 MB) is a floor.
PY_RSS_WRAPPER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, st, ru = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(ru.ru_maxrss))\n"
    "rc = os.waitstatus_to_exitcode(st)\n"
    "sys.exit(rc if rc >= 0 else 128 - rc)\n"
)


def run_measured(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path = REPO) -> dict:
    """Run `cmd` to completion; wall time around the whole process (perf_counter around Popen..wait) and
    its peak RSS.

    Peak RSS comes from a small wrapper parent (GNU time -f %M, else a minimal Python doing os.wait4): the
    kernel starts an exec'd child's max-RSS at its parent's RSS, so measuring wait4 from this (large)
    Python process directly would report this script's own size. wait4's max-RSS covers the child and
    every descendant it waited for, so for the CLI tutorial it is its largest `aws` process. The wrapper
    adds about 1.5 ms of fork/exec to every wall time (the same for every tool). The process gets its
    own session; on timeout its whole process group is killed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", prefix="wfboot-bench-rss-") as rss_file:
        if TIME_BIN:
            full = [TIME_BIN, "-f", "%M", "-o", rss_file.name, *cmd]
        else:
            full = [sys.executable, "-I", "-S", "-c", PY_RSS_WRAPPER, rss_file.name, *cmd]
        wall_start = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd,
                                start_new_session=True)
        timed_out = threading.Event()

        def kill_group() -> None:  # on timeout (timer thread) or when this script is interrupted
            if proc.returncode is None:
                timed_out.set()
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        # A blocking wait (Popen.wait with a timeout polls with sleeps of up to 50 ms, too coarse here).
        timer = threading.Timer(timeout, kill_group)
        timer.daemon = True
        timer.start()
        try:
            proc.wait()
        except BaseException:
            timer.cancel()
            kill_group()
            proc.wait()
            raise
        finally:
            timer.cancel()
        t1 = time.perf_counter()
        wall_end = time.time()
        out.seek(0)
        err.seek(0)
        rss_lines = [ln for ln in open(rss_file.name).read().split() if ln.isdigit()]
        return {
            "cmd": [str(c) for c in cmd],
            "rc": proc.returncode,
            "timed_out": timed_out.is_set(),
            "wall_s": t1 - t0,
            "wall_clock": (wall_start, wall_end),
            "maxrss_kb": int(rss_lines[-1]) if rss_lines else None,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        }


class Emulator:
    """tools/emulator.py on 127.0.0.1, a free port, its own log; stopped by PID in __exit__."""

    def __init__(self, latency_ms: float, log_path: Path, err_path: Path, extra: tuple[str, ...] = ()):
        self.latency_ms = latency_ms
        self.log_path = log_path
        self.err_path = err_path
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> "Emulator":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        cmd = [str(VENV_PY), str(EMULATOR), "--host", "127.0.0.1", "--port", "0",
               "--log", str(self.log_path), "--latency-ms", f"{self.latency_ms:g}"]
        if not EMULATOR_GC:
            cmd.append("--no-gc")
        cmd += self.extra
        self.err_file = open(self.err_path, "ab")
        try:
            # stdin stays an open pipe: the emulator exits when it closes (also if this script dies).
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err_file,
                                         env=env, cwd=REPO, start_new_session=True)
            line = self._read_line(timeout=60)
            m = re.fullmatch(r"READY (\S+)", line.strip())
            if not m:
                raise RuntimeError(f"emulator did not start (stdout {line!r}; see {self.err_path})")
            self.url = check_local(m.group(1))
        except BaseException:
            self.stop()
            raise
        return self

    def _read_line(self, timeout: float) -> str:
        assert self.proc and self.proc.stdout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise RuntimeError(f"emulator not ready after {timeout:g} s (see {self.err_path})")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
        finally:
            sel.close()
        return buf.decode("utf-8", "replace")

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        self.proc = None
        try:
            if p.stdin:
                p.stdin.close()  # the emulator's own shutdown path
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        finally:
            if p.stdout:
                p.stdout.close()
            self.err_file.close()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------- account set-up


class Account:
    """boto3 clients on the emulator for set-up and warm-up (never timed)."""

    def __init__(self, url: str):
        import boto3
        from botocore.config import Config

        cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
        session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
        self.iam = session.client("iam", endpoint_url=check_local(url), config=cfg)
        self.sts = session.client("sts", endpoint_url=url, config=cfg)

    def setup(self, create_user: bool) -> None:
        # Warm-up: the first IAM call of a fresh moto server loads every AWS-managed policy (~0.7 s).
        self.sts.get_caller_identity()
        self.iam.list_roles(MaxItems=1)
        if create_user:
            self.iam.create_user(UserName=USER)
            self.iam.get_user(UserName=USER)
            self.iam.list_attached_user_policies(UserName=USER)
        self.iam.get_policy(PolicyArn=AWS_POLICY + "AmazonS3ReadOnlyAccess")
        # moto's error path is slow the first time too (~20 ms alone, ~250 ms when the first 404s of a
        # bootstrap's concurrent reads arrive together): warm it with a few NoSuchEntity reads.
        from botocore.exceptions import ClientError

        # The same for the user-listing errors (the caller's own policies, read when simulation is refused:
        # the first ListGroupsForUser of a missing user alone took ~50 ms of moto's time).
        for call, kw in ((self.iam.get_role, {"RoleName": "wfboot-bench-warmup"}),
                         (self.iam.list_attached_role_policies, {"RoleName": "wfboot-bench-warmup"}),
                         (self.iam.list_attached_user_policies, {"UserName": "wfboot-bench-warmup"}),
                         (self.iam.list_user_policies, {"UserName": "wfboot-bench-warmup"}),
                         (self.iam.list_groups_for_user, {"UserName": "wfboot-bench-warmup"}),
                         (self.iam.get_instance_profile, {"InstanceProfileName": "wfboot-bench-warmup"}),
                         (self.iam.get_policy, {"PolicyArn": "arn:aws:iam::123456789012:policy/wfboot-bench-warmup"})):
            try:
                call(**kw)
            except ClientError as e:
                if e.response["Error"]["Code"] != "NoSuchEntity":
                    raise


# --------------------------------------------------------------------------------------------- log analysis


def read_log(path: Path, start: int, end: int) -> list[dict]:
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line:
            out.append(json.loads(line))
    return out


def aws_entries(entries: list[dict]) -> list[dict]:
    """AWS API requests only: moto's own control API (/moto-api/...) is not an API call."""
    return [e for e in entries if not e.get("internal") and not str(e.get("path", "")).startswith("/moto-api/")]


def waves(entries: list[dict], latency_ms: float) -> list[dict]:
    """Group requests into waves by arrival time: sorted by `t`, a request arriving >= 0.6 L after the
    first arrival of the current wave opens a new wave. See bench/README.md for why this works."""
    threshold = WAVE_FRACTION * latency_ms / 1000.0
    out: list[dict] = []
    for e in sorted(entries, key=lambda e: e["t"]):
        if not out or e["t"] - out[-1]["t0"] >= threshold:
            out.append({"t0": e["t"], "entries": []})
        out[-1]["entries"].append(e)
    return out


def chain_length(entries: list[dict]) -> int:
    """Longest chain of requests each of which arrived after the previous one's response was complete
    (t_b >= t_a + ms_a): the number of strictly sequential round trips in the observed schedule."""
    es = sorted(entries, key=lambda e: e["t"])
    ends = [e["t"] + e["ms"] / 1000.0 for e in es]
    depth = [0] * len(es)
    for i, e in enumerate(es):
        best = 0
        for j in range(i):
            if ends[j] <= e["t"] and depth[j] > best:
                best = depth[j]
        depth[i] = best + 1
    return max(depth, default=0)


def analyze(entries: list[dict], latency_ms: float) -> dict:
    es = aws_entries(entries)
    writes = sum(1 for e in es if e.get("write"))
    res = {
        "calls": len(es),
        "reads": len(es) - writes,
        "writes": writes,
        "errors": sum(1 for e in es if (e.get("status") or 0) >= 400),
        "by_action": dict(Counter(e.get("action") for e in es)),
        "waves": None,
        "chain": None,
        "wave_detail": None,
    }
    if latency_ms >= MIN_WAVE_LATENCY and es:
        ws = waves(es, latency_ms)
        start = ws[0]["t0"]
        res["waves"] = len(ws)
        res["chain"] = chain_length(es)
        res["wave_detail"] = [
            {
                "start_ms": round((w["t0"] - start) * 1000, 1),
                "spread_ms": round((w["entries"][-1]["t"] - w["t0"]) * 1000, 1),
                "max_ms": round(max(e["ms"] for e in w["entries"]), 1),
                "actions": dict(Counter(e.get("action") for e in w["entries"])),
            }
            for w in ws
        ]
        res["span_ms"] = round((max(e["t"] + e["ms"] / 1000 for e in es) - start) * 1000, 1)
    return res


# --------------------------------------------------------------------------------------------- tools


class Tools:
    def __init__(self, wfboot: Path, peers: Path, max_concurrency: int | None):
        self.wfboot = wfboot
        self.peers = peers
        self.max_concurrency = max_concurrency

    def wfboot_cmd(self, url: str, stack: Path | None = None) -> list[str]:
        cmd = [str(self.wfboot), "bootstrap", "--yes", "--endpoint-url", check_local(url), "-q", "--output", "json"]
        cmd += ["--stack", str(stack), "--skip-user"] if stack else ["--user-name", USER]
        if self.max_concurrency:
            cmd += ["--max-concurrency", str(self.max_concurrency)]
        return cmd

    def command(self, tool: str, url: str, stack: Path | None = None) -> tuple[list[str], dict[str, str], float]:
        url = check_local(url)
        if tool == "wfboot":
            return self.wfboot_cmd(url, stack), clean_env(), 300.0
        if tool == "cli":
            return ["bash", str(self.peers / "aws_cli_tutorial.sh")], clean_env(ENDPOINT=url), 600.0
        if tool == "boto3":
            return [str(VENV_PY), str(self.peers / "boto3_idempotent.py")], clean_env(ENDPOINT=url), 300.0
        if tool == "boto3_scale":
            return [str(VENV_PY), str(BENCH / "boto3_scale.py"), str(stack)], clean_env(ENDPOINT=url), 1200.0
        raise ValueError(tool)


TOOL_LABEL = {"wfboot": "wfboot", "cli": "aws CLI tutorial", "boto3": "boto3 script", "boto3_scale": "boto3 script"}


def tool_summary(tool: str, res: dict) -> dict:
    """What the tool says about itself (wfboot: its JSON summary; peers: their last stderr line)."""
    if tool.startswith("wfboot"):
        try:
            doc = json.loads(res["stdout"])
            s = doc.get("summary", doc)  # `attach` has its counts at the top
            return {k: s.get(k) for k in ("api_calls", "api_writes", "http_attempts", "wall_seconds", "created",
                                          "updated", "unchanged", "writes_done", "failed", "retries",
                                          "waited_seconds", "deleted")} | {"verified": doc.get("verified")}
        except (json.JSONDecodeError, AttributeError):
            return {"unparsed_stdout": res["stdout"][-2000:]}
    lines = [ln for ln in res["stderr"].splitlines() if "API_CALLS=" in ln]
    if not lines:
        return {}
    return {k.lower(): v for k, v in re.findall(r"(\w[\w+]*)=(\S+)", lines[-1])}


def measure(tools: Tools, tool: str, emu: Emulator, latency_ms: float, logs_dir: Path, tag: str,
            stack: Path | None = None, command: tuple[list[str], dict[str, str], float] | None = None) -> dict:
    cmd, env, timeout = command or tools.command(tool, emu.url, stack)
    waited, busy = wait_for_quiet()
    load = loadavg()
    start = emu.log_size()
    res = run_measured(cmd, env, timeout)
    end = emu.log_size()
    entries = aws_entries(read_log(emu.log_path, start, end))
    a = analyze(entries, latency_ms)
    if entries:
        # Where the wall time goes: before the first request (start-up, config, stack loading), the span of
        # the requests, after the last answer (output, exit). Same clock (time.time) as the log's `t`.
        first = min(e["t"] for e in entries)
        last = max(e["t"] + e["ms"] / 1000 for e in entries)
        a["before_first_request_ms"] = round((first - res["wall_clock"][0]) * 1000, 1)
        a["requests_span_ms"] = round((last - first) * 1000, 1)
        a["after_last_answer_ms"] = round((res["wall_clock"][1] - last) * 1000, 1)
    ok = res["rc"] == 0 and not res["timed_out"]
    a["realism"] = dict(Counter(e["realism"] for e in entries if e.get("realism")))
    a["moto_ms"] = round(sum(e.get("moto_ms") or 0.0 for e in entries), 1)
    if not ok or tool.startswith("wfboot"):
        (logs_dir / f"{tag}.stdout").write_text(res["stdout"])
        (logs_dir / f"{tag}.stderr").write_text(res["stderr"])
    out = {
        "tool": tool, "latency_ms": latency_ms, "rc": res["rc"], "timed_out": res["timed_out"], "ok": ok,
        "wall_s": round(res["wall_s"], 4),
        "maxrss_mb": None if res["maxrss_kb"] is None else round(res["maxrss_kb"] / 1024, 1),
        "self_reported": tool_summary(tool, res), **a, "emulator_log": str(emu.log_path), "log_bytes": [start, end],
        "cmd": " ".join(shlex.quote(c) for c in cmd), "loadavg_1m_before": load, "other_cpu_busy_before": busy,
        "waited_for_quiet_s": round(waited, 1),
    }
    if not ok:
        out["stderr_tail"] = res["stderr"][-3000:]
        log(f"  {tag}: FAILED rc={res['rc']} timed_out={res['timed_out']}: {res['stderr'][-500:]!r}")
    return out


def cpu_busy(interval: float = 0.2) -> float | None:
    """Fraction (0..1) of all CPUs busy during `interval`, sampled from /proc/stat right before a measured run,
    while the emulator and this script are idle: what other work (a cargo build, ...) takes from the run."""
    def sample():
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return sum(f[:8]), idle
    try:
        t1, i1 = sample()
        time.sleep(interval)
        t2, i2 = sample()
        return round(1 - (i2 - i1) / (t2 - t1), 3) if t2 > t1 else None
    except (OSError, ValueError, IndexError):
        return None


QUIET = {"threshold": 0.25, "max_wait_s": 90.0, "budget_s": 900.0, "spent_s": 0.0}


def wait_for_quiet() -> tuple[float, float | None]:
    """Wait (up to max_wait_s per run, budget_s per bench) until other work takes < 25 % of the CPUs, so a
    neighbour's cargo build does not land in the timings. Returns (seconds waited, busy fraction at start)."""
    t0 = time.monotonic()
    busy = cpu_busy()
    announced = False
    while busy is not None and busy > QUIET["threshold"]:
        waited = time.monotonic() - t0
        if waited >= QUIET["max_wait_s"] or QUIET["spent_s"] + waited >= QUIET["budget_s"]:
            log(f"  machine still {busy:.0%} busy after {waited:.0f} s of waiting: measuring anyway")
            break
        if not announced:
            log(f"  machine {busy:.0%} busy with other work: waiting up to {QUIET['max_wait_s']:g} s for it to calm down")
            announced = True
        time.sleep(2.0)
        busy = cpu_busy(0.5)
    waited = time.monotonic() - t0
    QUIET["spent_s"] += waited
    return waited, busy


def loadavg() -> float | None:
    """1-minute load average: other work on this machine (e.g. a cargo build) skews every timing."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def dump_state(tools: Tools, url: str) -> dict | None:
    res = run_measured([str(VENV_PY), str(tools.peers / "dump_state.py")], clean_env(ENDPOINT=check_local(url)), 120)
    if res["rc"] != 0:
        return None
    try:
        return json.loads(res["stdout"])
    except json.JSONDecodeError:
        return None


# --------------------------------------------------------------------------------------------- scenarios


def default_stack_runs(args, tools: Tools, out: Path) -> list[dict]:
    """Fresh bootstrap + no-op re-run of the default stack, per latency, per tool, each on a new emulator."""
    logs = out / "logs"
    fixture = REPO / "tests" / "fixtures" / "slim-workflow.state.json"
    want_state = json.loads(fixture.read_text()) if fixture.exists() else None
    results = []
    plan = []  # (latency, tool, runs)
    for lat in args.latencies:
        for tool in args.tools:
            plan.append((lat, tool, args.cli_runs if tool == "cli" else args.runs))
    if "wfboot" in args.tools and 0.0 not in args.latencies and any(l >= MIN_WAVE_LATENCY for l in args.latencies):
        plan.append((0.0, "wfboot", args.runs))  # the bound needs wfboot's wall time at 0 ms
    latencies = sorted({p[0] for p in plan})
    most = max(p[2] for p in plan)
    checked_state: set[tuple[str, float]] = set()
    for lat in latencies:
        # Interleave tools run by run so slow drifts of the machine hit every tool alike.
        for i in range(most):
            for (l2, tool, runs) in plan:
                if l2 != lat or i >= runs:
                    continue
                tag = f"default-{tool}-{lat:g}ms-run{i + 1}"
                log(f"{tag}: fresh emulator")
                with Emulator(lat, logs / f"{tag}.emulator.jsonl", logs / f"{tag}.emulator.stderr") as emu:
                    Account(emu.url).setup(create_user=True)
                    fresh = measure(tools, tool, emu, lat, logs, f"{tag}-fresh")
                    state_ok = None
                    if (tool, lat) not in checked_state and want_state is not None:
                        checked_state.add((tool, lat))
                        state = dump_state(tools, emu.url)
                        state_ok = state == want_state
                        (logs / f"{tag}.state.json").write_text(json.dumps(state, indent=1, sort_keys=True))
                    rerun = measure(tools, tool, emu, lat, logs, f"{tag}-rerun")
                results.append({"tool": tool, "latency_ms": lat, "run": i + 1, "fresh": fresh, "rerun": rerun,
                                "end_state_matches_fixture": state_ok})
                log(f"  {tool} @{lat:g}ms: fresh {fresh['wall_s']:.3f} s ({fresh['calls']} calls, "
                    f"{fresh['writes']} writes, waves {fresh['waves']}), re-run {rerun['wall_s']:.3f} s "
                    f"({rerun['calls']} calls, {rerun['writes']} writes, waves {rerun['waves']})")
    return results


def write_scale_stack(n: int, path: Path) -> None:
    lines = [
        "# Generated by bench/run.py: synthetic stack for the scale benchmark.",
        f'name = "bench-scale-{n}"',
        f'description = "{n} synthetic roles, 2 AWS-managed policies each, an instance profile for every 5th"',
        "",
    ]
    for i in range(1, n + 1):
        name = f"BenchRole{i:04d}"
        lines += [
            "[[role]]",
            f'name = "{name}"',
            f'trust = "{TRUST_TEMPLATES[(i - 1) % len(TRUST_TEMPLATES)]}"',
            "managed_policies = [" + ", ".join(f'"{p}"' for p in SCALE_POLICIES) + "]",
            "",
        ]
    for i in range(5, n + 1, 5):
        name = f"BenchRole{i:04d}"
        lines += ["[[instance_profile]]", f'name = "{name}"', f'role = "{name}"', ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def scale_runs(args, tools: Tools, out: Path) -> list[dict]:
    logs = out / "logs"
    results = []
    lat = args.scale_latency
    for n in args.scale:
        stack = out / "stacks" / f"scale-{n}.toml"
        write_scale_stack(n, stack)
        for i in range(args.scale_runs):
            for tool in ("wfboot", "boto3_scale"):
                if tool == "wfboot" and "wfboot" not in args.tools:
                    continue
                if tool == "boto3_scale" and "boto3" not in args.tools:
                    continue
                tag = f"scale{n}-{tool}-{lat:g}ms-run{i + 1}"
                log(f"{tag}: fresh emulator")
                with Emulator(lat, logs / f"{tag}.emulator.jsonl", logs / f"{tag}.emulator.stderr") as emu:
                    Account(emu.url).setup(create_user=False)
                    r = measure(tools, tool, emu, lat, logs, f"{tag}-fresh", stack=stack)
                results.append({"tool": tool, "roles": n, "run": i + 1, "latency_ms": lat, "fresh": r})
                log(f"  {tool} {n} roles @{lat:g}ms: {r['wall_s']:.3f} s ({r['calls']} calls, {r['writes']} writes, "
                    f"waves {r['waves']}, chain {r['chain']})")
    return results


# --------------------------------------------------------------------------------------------- realism


REALISM_PROFILE = "SLIM-Extras_ECS_for_EC2"
FLEET_ROLE = "WfbootDeployer"


def settle(url: str) -> None:
    """End the realism mode's lag windows (POST /__emulator/control {"settle": true})."""
    import urllib.request

    req = urllib.request.Request(check_local(url) + "/__emulator/control", data=b'{"settle": true}', method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def launch_instance(url: str) -> str:
    """A running instance to attach the new profile to (moto's first RunInstances takes seconds: not timed)."""
    import boto3

    ec2 = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y",
                                region_name="us-east-1").client("ec2", endpoint_url=check_local(url))
    return ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


def wfboot_step(tools: Tools, url: str, *argv: str) -> tuple[list[str], dict[str, str], float]:
    return [str(tools.wfboot), *argv, "--endpoint-url", check_local(url), "-q", "--output", "json"], clean_env(), 600.0


def realism_runs(args, tools: Tools, out: Path) -> list[dict]:
    """Under the emulator's realism mode (its defaults: IAM reads lag 2 s, EC2 refuses a new profile for 8 s,
    ConcurrentModification, DeleteConflict): a fresh bootstrap, `attach` of the new profile to a running instance
    right after it, then destroy, each in one run; the boto3 peer (no retry rules) side by side."""
    logs = out / "logs"
    lat = args.realism_latency
    results = []
    for i in range(args.realism_runs):
        for tool in [t for t in ("wfboot", "boto3") if t in args.tools]:
            tag = f"realism-{tool}-{lat:g}ms-run{i + 1}"
            log(f"{tag}: fresh emulator with --realism")
            extra = ("--realism", "--seed", str(i + 1))
            with Emulator(lat, logs / f"{tag}.emulator.jsonl", logs / f"{tag}.emulator.stderr", extra) as emu:
                Account(emu.url).setup(create_user=True)
                instance = launch_instance(emu.url)
                settle(emu.url)
                steps = {"bootstrap": measure(tools, tool, emu, lat, logs, f"{tag}-bootstrap")}
                if tool == "wfboot":
                    attach = wfboot_step(tools, emu.url, "attach", "--instance-id", instance, "--instance-profile",
                                         REALISM_PROFILE)
                else:
                    attach = ([str(VENV_PY), str(BENCH / "boto3_attach.py"), instance, REALISM_PROFILE],
                              clean_env(ENDPOINT=check_local(emu.url)), 300.0)
                steps["attach"] = measure(tools, f"{tool}-attach", emu, lat, logs, f"{tag}-attach", command=attach)
                settle(emu.url)
                state = dump_state(tools, emu.url)
                if tool == "wfboot":
                    steps["destroy"] = measure(tools, "wfboot-destroy", emu, lat, logs, f"{tag}-destroy",
                                               command=wfboot_step(tools, emu.url, "destroy", "--yes"))
            want = json.loads((REPO / "tests" / "fixtures" / "slim-workflow.state.json").read_text())
            results.append({"tool": tool, "run": i + 1, "latency_ms": lat, "steps": steps,
                            "end_state_matches_fixture": state == want})
            log(f"  {tool} under realism: " + ", ".join(
                f"{k} rc {v['rc']} {v['wall_s']:.2f} s ({v['calls']} calls, realism {v['realism']})"
                for k, v in steps.items()))
    return results


def summarize_realism(results: list[dict]) -> dict:
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        for step, m in r["steps"].items():
            groups.setdefault((r["tool"], step), []).append(m)
    out = {}
    for (tool, step), ms in groups.items():
        sr = [m.get("self_reported") or {} for m in ms]
        kinds: Counter = Counter()
        for m in ms:
            kinds.update(m["realism"])
        out[f"{tool}/{step}"] = {
            "tool": tool, "step": step, "runs": len(ms), "converged": sum(1 for m in ms if m["ok"]),
            "wall_s": median(m["wall_s"] for m in ms), "calls": median(m["calls"] for m in ms),
            "writes": median(m["writes"] for m in ms),
            "retries": median(s.get("retries") for s in sr if s.get("retries") is not None),
            "waited_s": median(s.get("waited_seconds") for s in sr if s.get("waited_seconds") is not None),
            "realism": {k: v / len(ms) for k, v in kinds.items()},
            "failure": next((m.get("stderr_tail", "").strip().splitlines()[-1:] for m in ms if not m["ok"]), None),
        }
    return out


# --------------------------------------------------------------------------------------------- fleet


def account_ids(n: int) -> list[str]:
    return [f"{100000000000 + i:012d}" for i in range(1, n + 1)]


def warm_accounts(url: str, ids: list[str]) -> None:
    """moto sets up each account on its first request (loading every AWS-managed policy, ~0.7 s each): done
    before the timed run, as a real account is there already."""
    import boto3

    s = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
    sts = s.client("sts", endpoint_url=check_local(url))
    for a in ids:
        c = sts.assume_role(RoleArn=f"arn:aws:iam::{a}:role/{FLEET_ROLE}", RoleSessionName="bench-warmup",
                            DurationSeconds=3600)["Credentials"]
        boto3.session.Session(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                              aws_session_token=c["SessionToken"], region_name="us-east-1").client(
            "iam", endpoint_url=url).list_roles(MaxItems=1)


def accounts_of_keys(url: str, keys: set[str]) -> dict[str, str]:
    """Which account each access key belongs to, asked of moto (it checks no signature without enforcement)."""
    import boto3

    out = {}
    for k in keys:
        sts = boto3.session.Session(aws_access_key_id=k, aws_secret_access_key="unused",
                                    region_name="us-east-1").client("sts", endpoint_url=check_local(url))
        out[k] = sts.get_caller_identity()["Account"]
    return out


def process_cpu_s(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def fleet_runs(args, tools: Tools, out: Path) -> list[dict]:
    """`bootstrap --accounts` over each N of --fleet accounts at 40 ms, realism off and on, for each --max-accounts."""
    return [r for n in args.fleet for r in fleet_runs_of(args, tools, out, n)]


def fleet_runs_of(args, tools: Tools, out: Path, n: int) -> list[dict]:
    logs = out / "logs"
    lat = args.fleet_latency
    ids = account_ids(n)
    accounts_file = out / "stacks" / f"accounts-{n}.txt"
    accounts_file.parent.mkdir(parents=True, exist_ok=True)
    accounts_file.write_text("".join(f"{a}\n" for a in ids))
    results = []
    for realism in (False, True):
        for m in args.fleet_max_accounts:
            mode = "realism" if realism else "plain"
            tag = f"fleet{n}-{mode}-m{m}-{lat:g}ms"
            log(f"{tag}: fresh emulator, warming {n} accounts")
            extra = ("--realism", "--seed", "1") if realism else ()
            with Emulator(lat, logs / f"{tag}.emulator.jsonl", logs / f"{tag}.emulator.stderr", extra) as emu:
                Account(emu.url).setup(create_user=False)
                warm_accounts(emu.url, ids)
                settle(emu.url) if realism else None
                cmd = wfboot_step(tools, emu.url, "bootstrap", "--yes", "--skip-user", "--accounts",
                                  str(accounts_file), "--assume-role-name", FLEET_ROLE, "--max-accounts", str(m))
                start = emu.log_size()
                cpu0 = process_cpu_s(emu.proc.pid)
                r = measure(tools, "wfboot-fleet", emu, lat, logs, f"{tag}-bootstrap", command=cmd)
                cpu1 = process_cpu_s(emu.proc.pid)
                entries = aws_entries(read_log(emu.log_path, start, emu.log_size()))
                owner = accounts_of_keys(emu.url, {e["access_key"] for e in entries if e.get("access_key")})
            per: dict[str, list[dict]] = {}
            for e in entries:
                per.setdefault(owner.get(e.get("access_key"), "?"), []).append(e)
            # An account's apply: from its first write to its last answer (its reads and pre-flight come first). And
            # when the run's first write came, and when the last account's reads and pre-flight ended (its last
            # request before its first write), from the run's first request: with --yes no account waits for the
            # others' pre-flight, so the first write comes long before the last pre-flight ends.
            spans, preflight_ends, first_writes = {}, [], []
            for a, es in per.items():
                writes = [e["t"] for e in es if e.get("write") and e.get("action") != "AssumeRole"]
                if a in ids and writes:
                    spans[a] = max(e["t"] + e["ms"] / 1000 for e in es) - min(writes)
                    first_writes.append(min(writes))
                    before = [e["t"] + e["ms"] / 1000 for e in es if e["t"] < min(writes)]
                    if before:
                        preflight_ends.append(max(before))
            t0 = min((e["t"] for e in entries), default=None)
            chains = [chain_length(es) for a, es in per.items() if a in ids]
            try:
                doc = json.loads((logs / f"{tag}-bootstrap.stdout").read_text())
                rows = doc.get("accounts", [])
            except (OSError, json.JSONDecodeError):
                rows = []
            waited = [row["result"]["summary"]["waited_seconds"] for row in rows
                      if (row.get("result") or {}).get("summary")]
            retries = sum(row["result"]["summary"]["retries"] for row in rows if (row.get("result") or {}).get("summary"))
            failed = sum(1 for row in rows if row.get("status") == "failed")
            chain = statistics.median(chains) if chains else None
            serial_s = r["moto_ms"] / 1000
            # The bound: nothing can be faster than the emulator's serial compute for all accounts, nor than one
            # account's critical path (its dependent round trips, plus its lag waits under realism).
            rt_s = (chain or 0) * lat / 1000 + (statistics.median(waited) if waited else 0.0)
            bound = max(serial_s, rt_s)
            results.append({
                "mode": mode, "max_accounts": m, "accounts": n, "latency_ms": lat, "run": r, "failed_accounts": failed,
                "rows": len(rows), "wall_s": r["wall_s"], "calls": r["calls"], "writes": r["writes"],
                "slowest_account": max(spans.items(), key=lambda kv: kv[1]) if spans else None,
                "median_account_s": statistics.median(spans.values()) if spans else None,
                "account_chain": chain, "median_waited_s": statistics.median(waited) if waited else None,
                "emulator_cpu_s": round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None,
                "first_write_s": round(min(first_writes) - t0, 3) if first_writes and t0 else None,
                "last_preflight_end_s": round(max(preflight_ends) - t0, 3) if preflight_ends and t0 else None,
                "retries": retries, "serial_compute_s": round(serial_s, 3), "round_trip_bound_s": round(rt_s, 3),
                "bound_s": round(bound, 3), "ratio": round(r["wall_s"] / bound, 2) if bound else None,
            })
            x = results[-1]
            log(f"  {mode} --max-accounts {m}: {x['wall_s']:.2f} s, {x['calls']} calls, {failed} failed, bound "
                f"{x['bound_s']:.2f} s (serial {x['serial_compute_s']:.2f}, round trips {x['round_trip_bound_s']:.2f}),"
                f" ratio {x['ratio']}")
    return results


def micro_runs(args, tools: Tools, out: Path) -> dict:
    cmds = {
        "version": [str(tools.wfboot), "--version"],
        "stacks_show": [str(tools.wfboot), "stacks", "show", "slim-workflow", "--account-id", "123456789012"],
    }
    env = clean_env()
    for name, cmd in cmds.items():  # fail loudly (with the output) rather than time an error
        res = run_measured(cmd, env, 30)
        if res["rc"] != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed rc={res['rc']}: {res['stderr'][-1000:]}")
    result = {}
    waited, busy = wait_for_quiet()
    hf = shutil.which("hyperfine")
    if hf:
        jf = out / "logs" / "micro.hyperfine.json"
        hcmd = [hf, "-N", "--warmup", "3", "--runs", str(args.micro_runs), "--export-json", str(jf), "--style", "none"]
        hcmd += [" ".join(shlex.quote(c) for c in c_) for c_ in cmds.values()]
        res = subprocess.run(hcmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        if res.returncode == 0:
            data = json.loads(jf.read_text())
            for name, r in zip(cmds, data["results"]):
                result[name] = {"median_ms": r["median"] * 1000, "mean_ms": r["mean"] * 1000,
                                "min_ms": r["min"] * 1000, "max_ms": r["max"] * 1000, "runs": len(r["times"]),
                                "method": "hyperfine -N (no shell), 3 warm-up runs", "command": r["command"],
                                "other_cpu_busy_before": busy}
            return result
        log(f"hyperfine failed ({res.stderr[-300:]!r}); timing in Python instead")
    for name, cmd in cmds.items():
        times = []
        for _ in range(3):
            run_measured(cmd, env, 30)
        for _ in range(args.micro_runs):
            times.append(run_measured(cmd, env, 30)["wall_s"] * 1000)
        result[name] = {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "min_ms": min(times),
                        "max_ms": max(times), "runs": len(times),
                        "method": "Python subprocess timing (includes fork/exec from Python and the RSS wrapper)",
                        "command": " ".join(cmd), "other_cpu_busy_before": busy}
    return result


# --------------------------------------------------------------------------------------------- reporting


def machine_info(tools: Tools) -> dict:
    def sh(cmd, timeout=30):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
            return r.stdout.strip() if r.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            return None

    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        mem = f"{int(m.group(1)) / 1024 / 1024:.1f} GiB" if m else None
    except OSError:
        pass
    versions = sh([str(VENV_PY), "-c", "import moto, boto3, botocore; print(moto.__version__, boto3.__version__, "
                   "botocore.__version__)"])
    moto_v, boto3_v, botocore_v = (versions or "? ? ?").split()
    aws_v = sh([str(VENV / "bin" / "aws"), "--version"])
    binary = tools.wfboot
    import hashlib

    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:16] if binary.exists() else None
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "moto": moto_v, "boto3": boto3_v, "botocore": botocore_v, "awscli": aws_v,
        "wfboot_version": sh([str(binary), "--version"]),
        "wfboot_git": sh(["git", "describe", "--always", "--dirty", "--abbrev=12"]),
        "git_head_time": sh(["git", "log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%d %H:%M UTC"]),
        # Uncommitted changes that could be in (or missing from) the binary; bench files do not count.
        "wfboot_src_changes": (sh(["git", "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock",
                                   "profiles", "service_roles", "build.rs"]) or "").splitlines(),
        "wfboot_binary": str(binary),
        "wfboot_binary_sha256": digest,
        "wfboot_binary_built": dt.datetime.fromtimestamp(binary.stat().st_mtime, dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC") if binary.exists() else None,
        "wfboot_binary_mb": round(binary.stat().st_size / 1e6, 1) if binary.exists() else None,
        "rustc": sh(["rustc", "--version"]),
        "hyperfine": sh(["hyperfine", "--version"]) if shutil.which("hyperfine") else None,
    }


def summarize_default(results: list[dict]) -> dict:
    """Medians per (tool, latency, phase)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        for phase in ("fresh", "rerun"):
            groups.setdefault((r["tool"], r["latency_ms"], phase), []).append(r[phase])
    out = {}
    for (tool, lat, phase), rs in groups.items():
        good = [r for r in rs if r["ok"] or (tool == "cli" and phase == "rerun" and not r["timed_out"])]
        key = f"{tool}@{lat:g}/{phase}"
        out[key] = {
            "tool": tool, "latency_ms": lat, "phase": phase, "runs": len(rs), "failed_runs": len(rs) - len(good),
            "wall_s": median(r["wall_s"] for r in good),
            "wall_min_s": min((r["wall_s"] for r in good), default=None),
            "wall_max_s": max((r["wall_s"] for r in good), default=None),
            "calls": median(r["calls"] for r in good),
            "reads": median(r["reads"] for r in good),
            "writes": median(r["writes"] for r in good),
            "errors": median(r["errors"] for r in good),
            "waves": median(r["waves"] for r in good),
            "waves_max": max((r["waves"] for r in good if r["waves"] is not None), default=None),
            "chain": median(r["chain"] for r in good),
            "chain_max": max((r["chain"] for r in good if r["chain"] is not None), default=None),
            "before_first_request_ms": median(r.get("before_first_request_ms") for r in good),
            "requests_span_ms": median(r.get("requests_span_ms") for r in good),
            "after_last_answer_ms": median(r.get("after_last_answer_ms") for r in good),
            "maxrss_mb": median(r["maxrss_mb"] for r in good),
            "maxrss_max_mb": max((r["maxrss_mb"] for r in good), default=None),
        }
    return out


def summarize_scale(results: list[dict]) -> dict:
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["tool"], r["roles"]), []).append(r["fresh"])
    out = {}
    for (tool, n), rs in groups.items():
        good = [r for r in rs if r["ok"]]
        out[f"{tool}/{n}"] = {
            "tool": tool, "roles": n, "runs": len(rs), "failed_runs": len(rs) - len(good),
            "wall_s": median(r["wall_s"] for r in good), "calls": median(r["calls"] for r in good),
            "writes": median(r["writes"] for r in good), "waves": median(r["waves"] for r in good),
            "chain": median(r["chain"] for r in good), "maxrss_mb": median(r["maxrss_mb"] for r in good),
        }
    return out


def bounds(summary: dict) -> dict:
    """Critical-path bound for wfboot at each latency L >= 40 ms: waves x L + wall time at 0 ms."""
    out = {}
    for key, s in summary.items():
        if s["tool"] != "wfboot" or s["latency_ms"] < MIN_WAVE_LATENCY or s["waves"] is None:
            continue
        base = summary.get(f"wfboot@0/{s['phase']}")
        if not base or base["wall_s"] is None or s["wall_s"] is None:
            continue
        bound = s["waves"] * s["latency_ms"] / 1000 + base["wall_s"]
        chain_bound = s["chain"] * s["latency_ms"] / 1000 + base["wall_s"]
        out[key] = {"phase": s["phase"], "latency_ms": s["latency_ms"], "waves": s["waves"], "chain": s["chain"],
                    "base_s": base["wall_s"], "bound_s": bound, "wall_s": s["wall_s"], "ratio": s["wall_s"] / bound,
                    "chain_bound_s": chain_bound, "chain_ratio": s["wall_s"] / chain_bound}
    return out


def targets(summary: dict, bnd: dict, micro: dict, default_results: list[dict]) -> list[dict]:
    L = f"{TARGET_LATENCY:g}"
    w = summary.get(f"wfboot@{L}/fresh")
    cli = summary.get(f"cli@{L}/fresh")
    b3 = summary.get(f"boto3@{L}/fresh")
    noop = summary.get(f"wfboot@{L}/rerun")
    bd = bnd.get(f"wfboot@{L}/fresh")
    rows = []

    def add(name, target, value, passed, note=""):
        rows.append({"target": name, "wanted": target, "measured": value, "pass": passed, "note": note})

    def fmt(x, spec):
        return "not measured" if x is None else format(x, spec)

    if bd:
        add(f"fresh @{L} ms: wall <= {TARGET_BOUND_RATIO:g} x bound", f"<= {TARGET_BOUND_RATIO:g}x",
            f"{bd['ratio']:.2f}x ({bd['wall_s']:.3f} s vs bound {bd['bound_s']:.3f} s = {bd['waves']:g} waves x "
            f"{L} ms + {bd['base_s']:.3f} s)", bd["ratio"] <= TARGET_BOUND_RATIO)
    else:
        add(f"fresh @{L} ms: wall <= {TARGET_BOUND_RATIO:g} x bound", f"<= {TARGET_BOUND_RATIO:g}x", "not measured", None)
    for peer, label, want in ((cli, "the CLI tutorial", TARGET_VS_CLI), (b3, "the boto3 script", TARGET_VS_BOTO3)):
        if w and peer and w["wall_s"] and peer["wall_s"]:
            x = peer["wall_s"] / w["wall_s"]
            add(f"fresh @{L} ms: faster than {label}", f">= {want:g}x",
                f"{x:.1f}x ({peer['wall_s']:.3f} s / {w['wall_s']:.3f} s)", x >= want)
        else:
            add(f"fresh @{L} ms: faster than {label}", f">= {want:g}x", "not measured", None)
    if noop:
        add(f"no-op @{L} ms: dependent round trips, by the 0.6·L wave rule", f"<= {TARGET_NOOP_WAVES}",
            f"{fmt(noop['waves'], 'g')} (max over runs {fmt(noop['waves_max'], 'g')})",
            noop["waves_max"] is not None and noop["waves_max"] <= TARGET_NOOP_WAVES)
        add(f"no-op @{L} ms: dependent round trips, by chain (cross-check)", f"<= {TARGET_NOOP_WAVES}",
            f"{fmt(noop['chain'], 'g')} (max over runs {fmt(noop['chain_max'], 'g')})",
            noop["chain_max"] is not None and noop["chain_max"] <= TARGET_NOOP_WAVES)
        add(f"no-op @{L} ms: writes", "0", f"{noop['writes']:g}", noop["writes"] == 0)
        add(f"no-op @{L} ms: API calls", f"<= {TARGET_NOOP_CALLS}", f"{noop['calls']:g}",
            noop["calls"] <= TARGET_NOOP_CALLS)
    else:
        for n in ("dependent round trips (waves)", "writes", "API calls"):
            add(f"no-op @{L} ms: {n}", "", "not measured", None)
    for key, label, want in (("version", "`wfboot --version`", TARGET_VERSION_MS),
                             ("stacks_show", "`wfboot stacks show slim-workflow --account-id 123456789012`",
                              TARGET_SHOW_MS)):
        m = micro.get(key)
        if m:
            add(label, f"< {want:g} ms", f"{m['median_ms']:.2f} ms (median of {m['runs']})", m["median_ms"] < want)
        else:
            add(label, f"< {want:g} ms", "not measured", None)
    rss = [r[p]["maxrss_mb"] for r in default_results if r["tool"] == "wfboot" for p in ("fresh", "rerun")
           if r[p]["ok"]]
    if rss:
        add("peak memory of a bootstrap (wfboot, default stack)", f"< {TARGET_RSS_MB:g} MB",
            f"{max(rss):.1f} MB (max of {len(rss)} runs; median {statistics.median(rss):.1f})",
            max(rss) < TARGET_RSS_MB)
    else:
        add("peak memory of a bootstrap", f"< {TARGET_RSS_MB:g} MB", "not measured", None)
    return rows


def load_line(data: dict) -> str:
    runs = [r[p] for r in data["default_runs"] for p in ("fresh", "rerun")] + [r["fresh"] for r in data["scale_runs"]]
    busy = [r["other_cpu_busy_before"] for r in runs if r.get("other_cpu_busy_before") is not None]
    load = [r["loadavg_1m_before"] for r in runs if r.get("loadavg_1m_before") is not None]
    if not busy:
        return "not sampled"
    noisy = sum(1 for b in busy if b > 0.25)
    waited = sum(r.get("waited_for_quiet_s") or 0 for r in runs)
    return (f"CPU busy with other work just before each measured run (emulator idle): median {statistics.median(busy):.0%}, "
            f"max {max(busy):.0%}; {noisy} of {len(busy)} runs started with > 25 % busy (after waiting "
            f"{waited:.0f} s in all for quiet); 1-min load average {min(load):.2f}–{max(load):.2f}")


def fmt_s(x) -> str:
    return "–" if x is None else (f"{x:.3f} s" if x < 10 else f"{x:.2f} s")


def fmt_ms(x) -> str:
    return "–" if x is None else f"{x:.0f} ms"


def fmt_n(x) -> str:
    return "–" if x is None else f"{x:g}"


def render_markdown(data: dict) -> str:
    m, a = data["machine"], data["args"]
    s, bnd, sc = data["summary"], data["bounds"], data["scale_summary"]
    lines = [
        "# wfboot benchmark results",
        "",
        f"Generated by `python bench/run.py {a['argv']}` on {m['date']}; "
        f"runs per point: wfboot/boto3 {a['runs']}, CLI tutorial {a['cli_runs']}, scale {a['scale_runs']} "
        f"(medians). Total bench time {data['elapsed_s'] / 60:.1f} min.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPUs (nproc) | {m['nproc']} × {m['cpu_model']} |",
        f"| memory, kernel | {m['memory']}, Linux {m['kernel']} |",
        f"| wfboot | {m['wfboot_version']}, git `{m['wfboot_git']}`, release binary {m['wfboot_binary_mb']} MB "
        f"built {m['wfboot_binary_built']} |",
        f"| wfboot binary sha256 | `{m['wfboot_binary_sha256']}…` (copied from {m['wfboot_source']}); HEAD committed "
        f"{m.get('git_head_time')}; uncommitted changes to wfboot's sources at bench start: "
        f"{', '.join(m.get('wfboot_src_changes') or []) or 'none'} |",
        f"| emulator | moto {m['moto']} (tools/emulator.py, fresh process per run, warmed) |",
        f"| other load | {load_line(data)} |",
        f"| peers | boto3 {m['boto3']} / botocore {m['botocore']}; {m['awscli']} |",
        f"| toolchain | {m['rustc']}; Python {m['python']}; {m['hyperfine'] or 'no hyperfine'} |",
        "",
        "## Targets",
        "",
        "| target | wanted | measured | result |",
        "|---|---|---|---|",
    ]
    for t in data["targets"]:
        res = {True: "**pass**", False: "**FAIL**", None: "n/a"}[t["pass"]]
        lines.append(f"| {t['target']} | {t['wanted']} | {t['measured']} | {res} |")
    lines += [
        "",
        "## Default stack (slim-workflow): fresh bootstrap, then a re-run on the same account",
        "",
        "Wall time of the whole process (median, min–max); API calls from the emulator's request log "
        "(reads/writes; HTTP requests, so retries count); peak RSS of the tool's largest process (GNU time %M).",
        "",
        "| latency | tool | runs | fresh wall | fresh calls (r/w) | re-run wall | re-run calls (r/w, errors) "
        "| waves fresh / re-run | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lat in sorted({v["latency_ms"] for v in s.values()}):
        for tool in ("wfboot", "boto3", "cli"):
            f, r = s.get(f"{tool}@{lat:g}/fresh"), s.get(f"{tool}@{lat:g}/rerun")
            if not f:
                continue
            failed = f["failed_runs"] + r["failed_runs"]
            lines.append(
                f"| {lat:g} ms | {TOOL_LABEL[tool]} | {f['runs']}{f' ({failed} failed)' if failed else ''} "
                f"| {fmt_s(f['wall_s'])} ({fmt_s(f['wall_min_s'])}–{fmt_s(f['wall_max_s'])}) "
                f"| {fmt_n(f['calls'])} ({fmt_n(f['reads'])}/{fmt_n(f['writes'])}) "
                f"| {fmt_s(r['wall_s'])} ({fmt_s(r['wall_min_s'])}–{fmt_s(r['wall_max_s'])}) "
                f"| {fmt_n(r['calls'])} ({fmt_n(r['reads'])}/{fmt_n(r['writes'])}, {fmt_n(r['errors'])}) "
                f"| {fmt_n(f['waves'])} / {fmt_n(r['waves'])} | {f['maxrss_max_mb']:.1f} MB |")
    checked, mismatched = 0, []
    for r in [r[p] for r in data["default_runs"] for p in ("fresh", "rerun")] + [r["fresh"] for r in data["scale_runs"]]:
        sr = r.get("self_reported") or {}
        own = sr.get("http_attempts", sr.get("http_sends", sr.get("api_calls")))
        if own is None or not r["ok"]:
            continue
        checked += 1
        if int(own) != r["calls"]:
            mismatched.append(f"{TOOL_LABEL[r['tool']]} @{r['latency_ms']:g} ms: tool {own}, log {r['calls']}")
    lines += ["", f"Cross-check: the tools' own count of HTTP requests (wfboot `summary.http_attempts`, the peers' "
              f"`HTTP_SENDS` / `API_CALLS`) equals the emulator log's count in {checked - len(mismatched)} of "
              f"{checked} successful runs" + (": differs in " + "; ".join(mismatched[:10]) if mismatched else
                                              " (so no run had a retry).")]
    states = {(r["tool"], r["latency_ms"]): r["end_state_matches_fixture"] for r in data["default_runs"]
              if r["end_state_matches_fixture"] is not None}
    if states:
        lines += ["", "End state after the fresh run vs `tests/fixtures/slim-workflow.state.json` (dump_state.py): "
                  + ", ".join(f"{TOOL_LABEL[t]} @{l:g} ms {'matches' if ok else '**differs**'}"
                              for (t, l), ok in sorted(states.items())) + "."]
    if bnd:
        lines += [
            "",
            "## wfboot critical path",
            "",
            "bound = waves × L + wfboot's median wall time at 0 ms (start-up + emulator compute); "
            "chain = longest run of requests each sent after the previous one's response (cross-check).",
            "",
            "| latency | phase | waves | chain | bound | wall | wall / bound | wall / (chain × L + base) "
            "| start-up → 1st request | requests | last answer → exit |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for k, b in sorted(bnd.items(), key=lambda kv: (kv[1]["latency_ms"], kv[1]["phase"])):
            sm = s[k]
            lines.append(f"| {b['latency_ms']:g} ms | {'fresh' if b['phase'] == 'fresh' else 'no-op re-run'} "
                         f"| {b['waves']:g} | {b['chain']:g} | {b['bound_s']:.3f} s | {b['wall_s']:.3f} s "
                         f"| {b['ratio']:.2f} | {b['chain_ratio']:.2f} | {fmt_ms(sm['before_first_request_ms'])} "
                         f"| {fmt_ms(sm['requests_span_ms'])} | {fmt_ms(sm['after_last_answer_ms'])} |")
        lines += ["", "(The last three columns are medians of the wall-clock times of the process and the log: "
                  "the time before wfboot's first request, from it to the last answer, and after that.)"]
    for phase, label in (("fresh", "fresh bootstrap"), ("rerun", "no-op re-run")):
        ex = next((r[phase] for r in data["default_runs"] if r["tool"] == "wfboot"
                   and r["latency_ms"] == TARGET_LATENCY and r[phase]["wave_detail"]), None)
        if ex:
            lines += ["", f"Wave structure of one wfboot {label} at {TARGET_LATENCY:g} ms (run 1; start of each "
                      "wave relative to the first request, spread = last arrival − first arrival in the wave):", "",
                      "| wave | start | spread | requests |", "|---|---|---|---|"]
            for i, w in enumerate(ex["wave_detail"], 1):
                acts = ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in sorted(w["actions"].items()))
                lines.append(f"| {i} | +{w['start_ms']:.0f} ms | {w['spread_ms']:.0f} ms | {acts} |")
            lines.append(f"\nFirst request {ex.get('before_first_request_ms', 0):.0f} ms after the process started; last "
                         f"answer at +{ex['span_ms']:.0f} ms; process wall time {ex['wall_s'] * 1000:.0f} ms; dependency "
                         f"chain {ex['chain']} round trips.")
    if sc:
        lines += [
            "",
            f"## Scale: synthetic stacks, fresh bootstrap at {a['scale_latency']:g} ms",
            "",
            "Each role: a built-in trust template, AmazonS3ReadOnlyAccess + AmazonSQSReadOnlyAccess; every 5th "
            "role also an instance profile (bench/out/stacks/). boto3 = bench/boto3_scale.py (sequential "
            "get-then-create).",
            "",
            "| roles | wfboot wall | boto3 wall | speed-up | wfboot calls (writes) | boto3 calls (writes) "
            "| wfboot waves / chain | wfboot peak RSS |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for n in sorted({v["roles"] for v in sc.values()}):
            w, b = sc.get(f"wfboot/{n}"), sc.get(f"boto3_scale/{n}")
            sp = f"{b['wall_s'] / w['wall_s']:.1f}x" if w and b and w["wall_s"] and b["wall_s"] else "–"
            rss = f"{w['maxrss_mb']:.1f} MB" if w and w["maxrss_mb"] is not None else "–"
            lines.append(
                f"| {n} | {fmt_s(w and w['wall_s'])} | {fmt_s(b and b['wall_s'])} | {sp} "
                f"| {fmt_n(w and w['calls'])} ({fmt_n(w and w['writes'])}) "
                f"| {fmt_n(b and b['calls'])} ({fmt_n(b and b['writes'])}) "
                f"| {fmt_n(w and w['waves'])} / {fmt_n(w and w['chain'])} "
                f"| {rss} |")
        lines += ["", "![scale plot](latest.svg)" if data.get("published") else "![scale plot](scale.svg)"]
    lines += realism_markdown(data) + fleet_markdown(data)
    lines += [
        "",
        "## Micro-benchmarks",
        "",
        "| command | median | mean | min–max | method |",
        "|---|---|---|---|---|",
    ]
    for k, mm in data["micro"].items():
        lines.append(f"| `{mm['command'].replace(str(REPO) + '/', '')}` | {mm['median_ms']:.2f} ms "
                     f"| {mm['mean_ms']:.2f} ms | {mm['min_ms']:.2f}–{mm['max_ms']:.2f} ms "
                     f"| {mm['method']}, {mm['runs']} runs |")
    failures = [(r["tool"], r["latency_ms"], p, r[p]) for r in data["default_runs"] for p in ("fresh", "rerun")
                if not r[p]["ok"] and not (r["tool"] == "cli" and p == "rerun" and not r[p]["timed_out"])]
    failures += [(r["tool"], r["latency_ms"], f"scale {r['roles']}", r["fresh"]) for r in data["scale_runs"]
                 if not r["fresh"]["ok"]]
    if failures:
        lines += ["", "## Failed runs", ""]
        for tool, lat, phase, r in failures:
            tail = (r.get("stderr_tail") or "").strip().splitlines()[-3:]
            lines.append(f"- {TOOL_LABEL[tool]} @{lat:g} ms {phase}: rc {r['rc']}, timed out {r['timed_out']}: "
                         f"`{' / '.join(tail)[:400]}`")
    lines.append("")
    return "\n".join(lines)


def realism_markdown(data: dict) -> list[str]:
    rs = data.get("realism_summary") or {}
    if not rs:
        return []
    a = data["args"]
    lines = [
        "",
        f"## Under realism: bootstrap, attach right after it, destroy ({a['realism_latency']:g} ms, "
        "`tools/emulator.py --realism`)",
        "",
        "The emulator's realism mode at its defaults: IAM reads answer the state from before a write for 2 s "
        "(jittered to 1-2 s per entity), EC2 refuses a profile for 8 s (4-8 s) after it was created or given its "
        "role, a write holds its entity for 0.2 s (a concurrent write to it meets ConcurrentModification), and "
        "DeleteRole/DeletePolicy/DeleteInstanceProfile meet DeleteConflict for 2 s after the last detach. Each "
        "step is one run, on a fresh emulator per run; `attach` goes out right after the bootstrap. Retries and "
        "waiting are wfboot's own summary (`retries`, `waited_seconds`); the refusals are the emulator's log.",
        "",
        "| tool | step | converged in one run | wall | calls (writes) | retries | waiting | the emulator answered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    label = {"wfboot": "wfboot", "boto3": "boto3 peer (no retries)"}
    for key, v in sorted(rs.items(), key=lambda kv: (kv[1]["tool"] != "wfboot", ["bootstrap", "attach", "destroy"].index(kv[1]["step"]))):
        kinds = ", ".join(f"{k} ×{c:g}" for k, c in sorted(v["realism"].items())) or "–"
        fail = f" — {v['failure'][0][:160]}" if v["failure"] else ""
        lines.append(
            f"| {label[v['tool']]} | {v['step']} | {v['converged']} of {v['runs']}{fail} | {fmt_s(v['wall_s'])} "
            f"| {fmt_n(v['calls'])} ({fmt_n(v['writes'])}) | {fmt_n(v['retries'])} "
            f"| {fmt_s(v['waited_s'])} | {kinds} |")
    ok = [r for r in data["realism_runs"] if r["end_state_matches_fixture"]]
    lines += ["", f"End state after bootstrap and attach matches `tests/fixtures/slim-workflow.state.json` in "
              f"{len(ok)} of {len(data['realism_runs'])} runs (" + ", ".join(
                  f"{r['tool']} run {r['run']}: {'yes' if r['end_state_matches_fixture'] else 'no'}"
                  for r in data["realism_runs"]) + ")."]
    return lines


def fleet_markdown(data: dict) -> list[str]:
    fr = data.get("fleet_runs") or []
    if not fr:
        return []
    a = data["args"]
    counts = ", ".join(str(n) for n in a["fleet"]) if isinstance(a["fleet"], list) else str(a["fleet"])
    lines = [
        "",
        f"## Fleet: `bootstrap --accounts` over {counts} accounts ({a['fleet_latency']:g} ms)",
        "",
        "One emulator holds every account (moto gives the keys sts:AssumeRole returns to the role's account); each "
        "account was set up before the timed run (moto's first request to an account loads every AWS-managed "
        "policy). bound = the larger of the emulator's serial compute (Σ moto_ms: it hands requests to moto one "
        "at a time) and one account's critical path: its dependent round trips (median chain × L, plus its waiting "
        "under realism). An account's apply: from its first write to its last answer, from the log "
        "(its keys resolved to accounts). With `--yes` each account applies as soon as its own pre-flight passed: "
        "first write and last pre-flight end are counted from the run's first request (the last pre-flight end: the "
        "last answer any account had before its own first write). Emulator CPU: the emulator process's CPU time "
        "during the run, all its work (moto's, and its own per-request parsing, logging and realism, which the "
        "serial compute leaves out; Python's lock serialises most of it too).",
        "",
        "| accounts | realism | --max-accounts | total wall | calls (writes) | failed accounts | first write "
        "| last pre-flight end | slowest account's apply | median account's apply | retries | serial compute "
        "| emulator CPU | one account's critical path | wall / bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in fr:
        slow = f"{fmt_s(x['slowest_account'][1])} ({x['slowest_account'][0]})" if x["slowest_account"] else "–"
        lines.append(
            f"| {x['accounts']} | {'on' if x['mode'] == 'realism' else 'off'} | {x['max_accounts']} | {fmt_s(x['wall_s'])} "
            f"| {x['calls']} ({x['writes']}) | {x['failed_accounts']} of {x['rows']} "
            f"| {fmt_s(x.get('first_write_s'))} | {fmt_s(x.get('last_preflight_end_s'))} | {slow} "
            f"| {fmt_s(x['median_account_s'])} | {x['retries']} | {fmt_s(x['serial_compute_s'])} "
            f"| {fmt_s(x.get('emulator_cpu_s'))} "
            f"| {fmt_s(x['round_trip_bound_s'])} ({x['account_chain']} round trips) "
            f"| {x['ratio']} |")
    return lines


def render_svg(scale_summary: dict, latency_ms: float, runs: int) -> str:
    W, H = 680, 420
    left, right, top, bottom = 70, 30, 50, 60
    pw, ph = W - left - right, H - top - bottom
    series = []
    for tool, label, color, marker in (("wfboot", "wfboot", "#1f77b4", "circle"),
                                       ("boto3_scale", "boto3 (sequential get-then-create)", "#d62728", "square")):
        pts = sorted((v["roles"], v["wall_s"]) for v in scale_summary.values()
                     if v["tool"] == tool and v["wall_s"] is not None)
        if pts:
            series.append((label, color, marker, pts))
    if not series:
        return ""
    xmax = max(x for _, _, _, pts in series for x, _ in pts)
    ymax = max(y for _, _, _, pts in series for _, y in pts)

    def nice(v: float) -> tuple[float, float]:
        """(axis max, tick step) with 4-8 ticks."""
        if v <= 0:
            return 1.0, 0.25
        import math
        exp = 10 ** math.floor(math.log10(v))
        for step in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10):
            s = step * exp
            if v / s <= 8:
                return math.ceil(v / s) * s, s
        return v, v / 4

    xtop, xstep = nice(xmax)
    ytop, ystep = nice(ymax * 1.08)

    def X(x):
        return left + pw * x / xtop

    def Y(y):
        return top + ph - ph * y / ytop

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="Helvetica, Arial, sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">Fresh bootstrap wall time '
         f'vs stack size ({latency_ms:g} ms per request, median of {runs})</text>']
    k = 0.0
    while k <= ytop + 1e-9:
        o.append(f'<line x1="{left}" y1="{Y(k):.1f}" x2="{left + pw}" y2="{Y(k):.1f}" stroke="#e5e5e5"/>')
        o.append(f'<text x="{left - 8}" y="{Y(k) + 4:.1f}" text-anchor="end">{k:g}</text>')
        k += ystep
    k = 0.0
    while k <= xtop + 1e-9:
        o.append(f'<line x1="{X(k):.1f}" y1="{top + ph}" x2="{X(k):.1f}" y2="{top + ph + 5}" stroke="black"/>')
        o.append(f'<text x="{X(k):.1f}" y="{top + ph + 19}" text-anchor="middle">{k:g}</text>')
        k += xstep
    o.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="black"/>')
    o.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>')
    o.append(f'<text x="{left + pw / 2}" y="{H - 15}" text-anchor="middle">roles in the stack</text>')
    o.append(f'<text x="18" y="{top + ph / 2}" text-anchor="middle" '
             f'transform="rotate(-90 18 {top + ph / 2})">wall time (s)</text>')
    # Value labels above-right of each marker (above-left near the right edge); where two series' labels
    # at the same x would overlap, the higher value's label moves up.
    label_y: dict[tuple[int, float], float] = {}
    by_x: dict[float, list[tuple[float, int]]] = {}
    for si, (_, _, _, pts) in enumerate(series):
        for x, y in pts:
            by_x.setdefault(x, []).append((y, si))
    for x, items in by_x.items():
        prev = None
        for y, si in sorted(items):  # lowest value first
            ty = Y(y) - 8
            if prev is not None and ty > prev - 14:
                ty = prev - 14
            label_y[(si, x)] = ty
            prev = ty
    for si, (label, color, marker, pts) in enumerate(series):
        poly = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
        o.append(f'<polyline points="{poly}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            if marker == "circle":
                o.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="4.5" fill="{color}"/>')
            else:
                o.append(f'<rect x="{X(x) - 4.5:.1f}" y="{Y(y) - 4.5:.1f}" width="9" height="9" fill="{color}"/>')
            near_right = X(x) > left + 0.8 * pw
            tx = X(x) - 8 if near_right else X(x) + 8
            anchor = "end" if near_right else "start"
            o.append(f'<text x="{tx:.1f}" y="{label_y[(si, x)]:.1f}" text-anchor="{anchor}" fill="{color}">'
                     f'{y:.2f} s</text>')
    lx, ly = left + 16, top + 12
    o.append(f'<rect x="{lx - 8}" y="{ly - 14}" width="270" height="{22 * len(series) + 8}" fill="white" '
             'stroke="#999"/>')
    for i, (label, color, marker, _) in enumerate(series):
        yy = ly + 22 * i
        o.append(f'<line x1="{lx}" y1="{yy}" x2="{lx + 26}" y2="{yy}" stroke="{color}" stroke-width="2"/>')
        if marker == "circle":
            o.append(f'<circle cx="{lx + 13}" cy="{yy}" r="4.5" fill="{color}"/>')
        else:
            o.append(f'<rect x="{lx + 8.5}" y="{yy - 4.5}" width="9" height="9" fill="{color}"/>')
        o.append(f'<text x="{lx + 34}" y="{yy + 4}">{label}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def publish(out: Path, md: str, svg: str) -> None:
    results = BENCH / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "latest.md").write_text(md)
    if svg:
        (results / "latest.svg").write_text(svg)
    readme = BENCH / "README.md"
    if readme.exists():
        text = readme.read_text()
        start, end = "<!-- latest-results:start -->", "<!-- latest-results:end -->"
        if start in text and end in text:
            body = md.split("\n", 1)[1].replace("](latest.svg)", "](results/latest.svg)").strip()
            body = body.replace("\n## ", "\n### ")
            new = text[: text.index(start) + len(start)] + "\n" + body + "\n" + text[text.index(end):]
            readme.write_text(new)


# --------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latency-ms", default="0,40",
                   help="comma list of added latencies per AWS request (default 0,40); wfboot is also run at 0 ms "
                        "when 0 is not listed, for its critical-path bound")
    p.add_argument("--runs", type=int, default=5, help="runs per point for wfboot and boto3 (default 5)")
    p.add_argument("--cli-runs", type=int, default=3, help="runs per point for the CLI tutorial (default 3)")
    p.add_argument("--scale", default="10,50,200", help="role counts of the synthetic stacks ('' to skip)")
    p.add_argument("--scale-runs", type=int, default=3, help="runs per scale point (default 3)")
    p.add_argument("--scale-latency-ms", type=float, default=40.0, dest="scale_latency")
    p.add_argument("--micro-runs", type=int, default=20, help="runs of --version / stacks show (default 20)")
    p.add_argument("--realism-runs", type=int, default=3,
                   help="runs of bootstrap, attach, destroy under the emulator's --realism (default 3; 0 to skip)")
    p.add_argument("--realism-latency-ms", type=float, default=40.0, dest="realism_latency")
    p.add_argument("--fleet", default="10,50",
                   help="comma list of account counts of the --accounts fleet runs (default 10,50; 0 to skip)")
    p.add_argument("--fleet-max-accounts", default="4,8,16",
                   help="comma list of --max-accounts for the fleet runs (default 4,8,16: around the default, 8)")
    p.add_argument("--fleet-latency-ms", type=float, default=40.0, dest="fleet_latency")
    p.add_argument("--tools", default="wfboot,boto3,cli", help="subset of wfboot,boto3,cli")
    p.add_argument("--emulator-gc", action="store_true",
                   help="leave Python's garbage collector on in the emulators (default: off, see bench/README.md)")
    p.add_argument("--quiet-wait-s", type=float, default=90.0,
                   help="before each measured run, wait up to this long for other work on the machine to drop "
                        "below 25 %% CPU (default 90; 0 = never wait); at most 15 min in all")
    p.add_argument("--max-concurrency", type=int, default=None,
                   help="pass --max-concurrency N to wfboot (default: wfboot's own default)")
    p.add_argument("--quick", action="store_true",
                   help="1 run per point (CLI 1, scale 1): a smoke run; does not publish to bench/results")
    p.add_argument("--wfboot", type=Path, default=REPO / "target" / "release" / "wfboot")
    # The peer scripts are not part of this repository: their folder comes from --peers or PEERS_DIR.
    p.add_argument("--peers", type=Path, default=Path(os.environ["PEERS_DIR"]) if os.environ.get("PEERS_DIR") else None)
    p.add_argument("--out", type=Path, default=BENCH / "out")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--publish", action="store_true", help="copy to bench/results even with --quick")
    g.add_argument("--no-publish", action="store_true", help="do not copy to bench/results")
    args = p.parse_args(argv)
    args.argv = " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    args.latencies = sorted({float(x) for x in args.latency_ms.split(",") if x.strip()})
    args.scale = [int(x) for x in args.scale.split(",") if x.strip()]
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if set(args.tools) - {"wfboot", "boto3", "cli"} or not args.tools:
        p.error("--tools: choose from wfboot, boto3, cli")
    if any(l < 0 for l in args.latencies) or not args.latencies:
        p.error("--latency-ms: non-negative numbers")
    args.fleet_max_accounts = [int(x) for x in args.fleet_max_accounts.split(",") if x.strip()]
    if any(not 1 <= m <= 32 for m in args.fleet_max_accounts):
        p.error("--fleet-max-accounts: numbers within 1..32 (wfboot's range)")
    args.fleet = [int(x) for x in str(args.fleet).split(",") if x.strip() and int(x) > 0]
    if args.realism_runs < 0:
        p.error("--realism-runs must be >= 0")
    if args.quick:
        args.runs, args.cli_runs, args.scale_runs = 1, 1, 1
        args.realism_runs = min(args.realism_runs, 1)
    for k in ("runs", "cli_runs", "scale_runs", "micro_runs"):
        if getattr(args, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be >= 1")
    QUIET["max_wait_s"] = max(0.0, args.quiet_wait_s)
    args.do_publish = args.publish or (not args.quick and not args.no_publish)
    return args


def main(argv=None) -> int:
    global EMULATOR_GC
    args = parse_args(argv)
    EMULATOR_GC = args.emulator_gc
    ensure_venv_python()
    for k in [k for k in os.environ if k.lower() in ("http_proxy", "https_proxy", "all_proxy")]:
        del os.environ[k]
    os.environ.update(NO_PROXY="127.0.0.1,localhost", AWS_CONFIG_FILE="/nonexistent/wfboot-bench/config",
                      AWS_SHARED_CREDENTIALS_FILE="/nonexistent/wfboot-bench/credentials")
    # A SIGTERM unwinds like Ctrl-C, so every `finally` stops its emulator.
    def on_sigterm(*_):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)

    if not args.wfboot.is_file():
        sys.exit(f"{args.wfboot} not found: build it with `cargo build --release` (or run scripts/bench.sh)")
    if args.peers is None:
        sys.exit("give the folder of the peer scripts (aws_cli_tutorial.sh, boto3_idempotent.py, dump_state.py; not "
                 "part of this repository) with --peers DIR or PEERS_DIR")
    for f in ("aws_cli_tutorial.sh", "boto3_idempotent.py", "dump_state.py"):
        if not (args.peers / f).is_file():
            sys.exit(f"peer script {args.peers / f} not found (set --peers or PEERS_DIR)")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # One bench per output directory at a time: a second one would delete this one's logs, replace the
    # binary being measured and compete for the CPUs. The lock goes with this process.
    import fcntl

    lock = open(out / ".bench.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        sys.exit(f"another bench/run.py is running on {out} ({lock.read().strip() or 'pid unknown'}); wait for it "
                 "to finish, or give this one --out DIR (both would still compete for the CPUs)")
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}, started {time.strftime('%H:%M:%S')}\n")
    lock.flush()
    shutil.rmtree(out / "logs", ignore_errors=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    # Benchmark a private copy: other people's `cargo build --release` may replace target/release/wfboot mid-run.
    snapshot = out / "bin" / "wfboot"
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(args.wfboot, snapshot)
    tools = Tools(snapshot, args.peers.resolve(), args.max_concurrency)

    t0 = time.monotonic()
    machine = machine_info(tools)
    machine["wfboot_source"] = os.path.relpath(args.wfboot, REPO)
    try:
        head_ts = int(subprocess.run(["git", "log", "-1", "--format=%ct"], capture_output=True, text=True,
                                     cwd=REPO, timeout=30).stdout.strip())
        if args.wfboot.stat().st_mtime < head_ts:
            log(f"note: {machine['wfboot_source']} is older than the last commit; if that commit changed wfboot, "
                "rebuild (cargo build --release, or use scripts/bench.sh) to measure the current code")
            machine["binary_older_than_head"] = True
    except (ValueError, OSError, subprocess.TimeoutExpired):
        pass
    log(f"wfboot {machine['wfboot_version']} (git {machine['wfboot_git']}), moto {machine['moto']}, "
        f"{machine['nproc']} CPUs")
    micro = micro_runs(args, tools, out)
    log("micro: " + ", ".join(f"{k} {v['median_ms']:.2f} ms" for k, v in micro.items()))
    default_results = default_stack_runs(args, tools, out)
    scale_results = scale_runs(args, tools, out) if args.scale else []
    realism_results = realism_runs(args, tools, out) if args.realism_runs else []
    fleet_results = fleet_runs(args, tools, out) if args.fleet and "wfboot" in args.tools else []

    summary = summarize_default(default_results)
    bnd = bounds(summary)
    data = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine,
        "method": {"wave_fraction": WAVE_FRACTION, "min_wave_latency_ms": MIN_WAVE_LATENCY,
                   "calls": "emulator request log, /moto-api/ entries excluded; HTTP requests (retries count)"},
        "micro": micro,
        "summary": summary,
        "bounds": bnd,
        "scale_summary": summarize_scale(scale_results),
        "default_runs": default_results,
        "scale_runs": scale_results,
        "realism_runs": realism_results,
        "realism_summary": summarize_realism(realism_results),
        "fleet_runs": fleet_results,
        "elapsed_s": time.monotonic() - t0,
        "published": args.do_publish,
    }
    data["targets"] = targets(summary, bnd, micro, default_results)
    md = render_markdown(data)
    svg = render_svg(data["scale_summary"], args.scale_latency, args.scale_runs) if scale_results else ""
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str))
    (out / "results.md").write_text(md.replace("](latest.svg)", "](scale.svg)"))
    if svg:
        (out / "scale.svg").write_text(svg)
    if args.do_publish:
        publish(out, md, svg)
        log("published bench/results/latest.md, latest.svg and the README table")
    print(md)
    failed = [t for t in data["targets"] if t["pass"] is False]
    log(f"done in {data['elapsed_s'] / 60:.1f} min; {len(failed)} target(s) missed; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
