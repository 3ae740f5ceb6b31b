#!/usr/bin/env python3
"""Issue 16's benchmark: how soon after the start of `bootstrap` can a Lambda function with the new role be created?

    python bench/wait.py [--runs 3] [--service-lag 8] [--wfboot target/release/wfboot] [--out bench/out]

Each run and strategy gets a fresh emulator under the realism mode (tools/realism.py: IAM read lag, EC2 lag,
ConcurrentModification, and the services' own late view of a new role, `--service-lag` seconds with no jitter):
Lambda CreateFunction is refused ("The role defined for the function cannot be assumed by Lambda.") for that long
after the role's CreateRole. Three ways to get from "bootstrap started" to "the function exists":

  wait    `wfboot bootstrap --yes --wait`, then one CreateFunction (it must succeed);
  retry   `wfboot bootstrap --yes`, then CreateFunction retried every second until it succeeds (what users do);
  sleep   `wfboot bootstrap --yes`, `sleep 10`, then CreateFunction (retried every second if it still fails).

Measured: from the start of the bootstrap process to the answer of the CreateFunction that succeeded (wall clock),
and the limit: the end of the lag window of the Lambda role (the last CreateRole's answer in the emulator's log + the
lag). `wait`'s distance to the limit is what --wait costs beyond the lag itself. Everything runs against emulators
this script starts on 127.0.0.1 and stops by PID (bench/run.py's Emulator). Results: OUT/wait.md, OUT/wait.json.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/run.py: Emulator, Account, clean_env, check_local, ...)

LAMBDA_ROLE = "SLIM-Extras_for_Lambda"


def package() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return None\n")
    return buf.getvalue()


def lambda_client(url: str):
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60)
    return boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1").client(
        "lambda", endpoint_url=bench.check_local(url), config=cfg)


def create_function(lam, name: str) -> tuple[bool, str]:
    from botocore.exceptions import ClientError

    try:
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="index.handler", Publish=False,
                            Role=f"arn:aws:iam::123456789012:role/{LAMBDA_ROLE}", Code={"ZipFile": package()})
        return True, ""
    except ClientError as e:
        return False, e.response["Error"]["Code"]


def create_roles_answered(log_path: Path) -> float | None:
    """When the emulator answered the last CreateRole (wall clock), from its request log: the log does not name the
    role, and the stack's roles are created in one concurrent wave, so the Lambda role's lag ends no later than
    this + the lag (the limit is an upper bound, within the wave's spread, about 0.2 s here)."""
    answers = [e["t"] + e["ms"] / 1000.0 for e in map(json.loads, log_path.read_text().splitlines())
               if e.get("action") == "CreateRole" and e.get("status") == 200]
    return max(answers) if answers else None


def one(strategy: str, args, logs: Path, run: int) -> dict:
    tag = f"wait-{strategy}-run{run}"
    extra = ("--realism", "--service-lag", f"{args.service_lag:g}", "--lag-jitter", "0", "--seed", str(run))
    log_path = logs / f"{tag}.emulator.jsonl"
    with bench.Emulator(0, log_path, logs / f"{tag}.emulator.stderr", extra) as emu:
        bench.Account(emu.url).setup(create_user=True)
        bench.settle(emu.url)
        lam = lambda_client(emu.url)
        cmd = [str(args.wfboot), "bootstrap", "--yes", "--user-name", bench.USER, "--endpoint-url", emu.url, "-q",
               "--output", "json"] + (["--wait"] if strategy == "wait" else [])
        start = time.time()
        proc = subprocess.run(cmd, env=bench.clean_env(), capture_output=True, text=True, timeout=600,
                              start_new_session=True)
        bootstrap_done = time.time()
        if proc.returncode != 0:
            raise SystemExit(f"{tag}: bootstrap exited {proc.returncode}:\n{proc.stderr}")
        if strategy == "sleep":
            time.sleep(10)
        attempts, refused = 0, 0
        while True:
            attempts += 1
            ok, code = create_function(lam, f"user-function-{strategy}")
            answered = time.time()
            if ok:
                break
            refused += 1
            if answered - start > 300:
                raise SystemExit(f"{tag}: CreateFunction still refused ({code}) after 300 s")
            time.sleep(1.0)
        created = create_roles_answered(log_path)
        report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    limit = created + args.service_lag - start if created else None
    result = {
        "strategy": strategy, "run": run, "bootstrap_s": bootstrap_done - start, "usable_s": answered - start,
        "limit_s": limit, "create_attempts": attempts, "create_refused": refused,
        "wait_usable_after_s": (report.get("wait") or {}).get("usable_after_seconds"),
    }
    bench.log(f"{tag}: function created {result['usable_s']:.2f} s after the start (limit {limit or 0:.2f} s, "
              f"bootstrap {result['bootstrap_s']:.2f} s, {attempts} CreateFunction, {refused} refused)")
    return result


def main() -> int:
    bench.ensure_venv_python()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--service-lag", type=float, default=8.0)
    p.add_argument("--wfboot", type=Path, default=bench.REPO / "target" / "release" / "wfboot")
    p.add_argument("--out", type=Path, default=bench.REPO / "bench" / "out")
    args = p.parse_args()
    if not args.wfboot.exists():
        raise SystemExit(f"{args.wfboot} not found: cargo build --release (or pass --wfboot target/debug/wfboot)")
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for run in range(1, args.runs + 1):  # interleaved: a drift of the machine hits every strategy
        for strategy in ("wait", "retry", "sleep"):
            results.append(one(strategy, args, logs, run))
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    rows = []
    for strategy in ("wait", "retry", "sleep"):
        rs = [r for r in results if r["strategy"] == strategy]
        usable, limit = med([r["usable_s"] for r in rs]), med([r["limit_s"] for r in rs if r["limit_s"]])
        rows.append((strategy, usable, limit, usable - limit if usable and limit else None,
                     med([r["create_attempts"] for r in rs]), med([r["bootstrap_s"] for r in rs])))
    md = [f"# Time to a usable Lambda role (issue 16), service lag {args.service_lag:g} s, {args.runs} run(s), medians",
          "", f"wfboot: `{args.wfboot}`", "",
          "| strategy | function created after | limit (lag end) | beyond the limit | CreateFunction calls | bootstrap exit |",
          "|---|---|---|---|---|---|"]
    for s, u, lim, d, a, b in rows:
        md.append(f"| {s} | {u:.2f} s | {lim:.2f} s | {d:+.2f} s | {a:g} | {b:.2f} s |")
    text = "\n".join(md) + "\n"
    (args.out / "wait.md").write_text(text)
    (args.out / "wait.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                    "runs": results}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
