#!/usr/bin/env python3
"""Issues 16 and 32's benchmark: how soon after the start of `bootstrap` can the services use the new roles?

    python bench/wait.py [--runs 3] [--service-lag 8] [--wfboot target/release/wfboot] [--out bench/out]

Each run and strategy gets a fresh emulator under the realism mode (tools/realism.py: IAM read lag, EC2 lag,
ConcurrentModification, and the services' own late view of a new role, `--service-lag` seconds; no jitter, so every
window is its flag's value): Lambda CreateFunction is refused ("The role defined for the function cannot be assumed
by Lambda.") for that long after the role's CreateRole, and so are Step Functions and Batch; EC2 refuses a new
instance profile for the EC2 lag (8 s) after its role was added. Four ways to get from "bootstrap started" to "the
function exists":

  wait         `wfboot bootstrap --yes --wait` (every service), then one CreateFunction (it must succeed);
  wait-lambda  `wfboot bootstrap --yes --wait lambda` (the service the user needs), then one CreateFunction;
  retry        `wfboot bootstrap --yes`, then CreateFunction retried every second until it succeeds (what users do);
  sleep        `wfboot bootstrap --yes`, `sleep 10`, then CreateFunction (retried every second if it still fails).

Measured: from the start of the bootstrap process to the answer of the CreateFunction that succeeded (wall clock),
and the limit: the end of the Lambda role's lag window (the last CreateRole's answer in the emulator's log + the
lag). Per service (the `wait` runs; Lambda also with `--wait lambda`): when the service first accepted a probe
(the answer to the probe's first request it did not refuse, from the log), against the end of its own lag window
(Lambda, Step Functions, Batch: the last CreateRole's answer + the service lag; EC2: AddRoleToInstanceProfile's
answer + the EC2 lag), and wfboot's own report of it (`wait.services[].usable_after_seconds`, from its own start).
Everything runs against emulators this script starts on 127.0.0.1 and stops by PID (bench/run.py's Emulator).
Results: OUT/wait.md, OUT/wait.json.
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


def answered(e: dict) -> float:
    return e["t"] + e["ms"] / 1000.0


def create_roles_answered(entries: list[dict]) -> tuple[float | None, float]:
    """When the emulator answered the last CreateRole (wall clock), and the spread of the CreateRole answers: the log
    does not name the role, and the stack's roles are created in one concurrent wave, so each role's lag ends no
    later than this + the lag (an upper bound, within the spread: tens of milliseconds)."""
    answers = [answered(e) for e in entries if e.get("action") == "CreateRole" and e.get("status") == 200]
    return (max(answers), max(answers) - min(answers)) if answers else (None, 0.0)


# The probes' requests in the emulator's log, by service: (log action, the realism mark of a refusal).
PROBE_CALLS = {
    "lambda": (lambda a: a == "POST /2015-03-31/functions", "service_role_not_propagated"),
    "states": (lambda a: a == "CreateStateMachine", "service_role_not_propagated"),
    "batch": (lambda a: a == "POST /v1/createcomputeenvironment", "batch_role_not_propagated"),
    "ec2": (lambda a: a == "RunInstances", "ec2_not_propagated"),
}


def per_service(entries: list[dict], start: float, service_lag: float, ec2_lag: float) -> dict:
    """Per service: when it first accepted a probe (its first request the emulator did not refuse), the end of its
    own lag window, and how many probe requests it refused, each relative to `start`."""
    roles_done, _ = create_roles_answered(entries)
    profile = [answered(e) for e in entries if e.get("action") == "AddRoleToInstanceProfile" and e.get("status") == 200]
    out = {}
    for service, (is_call, refusal) in PROBE_CALLS.items():
        calls = [e for e in entries if is_call(e.get("action", ""))]
        accepted = [answered(e) for e in calls if e.get("realism") != refusal and (e.get("status") or 500) < 500]
        lag_end = (max(profile) + ec2_lag) if service == "ec2" else (roles_done + service_lag if roles_done else None)
        if lag_end is None or not calls:
            continue
        out[service] = {
            "accepted_s": min(accepted) - start if accepted else None,
            "lag_end_s": lag_end - start if lag_end else None,
            "refused": sum(1 for e in calls if e.get("realism") == refusal),
            "calls": len(calls),
        }
    return out


def one(strategy: str, args, logs: Path, run: int) -> dict:
    tag = f"wait-{strategy}-run{run}"
    extra = ("--realism", "--service-lag", f"{args.service_lag:g}", "--ec2-lag", f"{args.ec2_lag:g}",
             "--lag-jitter", "0", "--seed", str(run))
    log_path = logs / f"{tag}.emulator.jsonl"
    with bench.Emulator(0, log_path, logs / f"{tag}.emulator.stderr", extra) as emu:
        bench.Account(emu.url).setup(create_user=True)
        bench.settle(emu.url)
        lam = lambda_client(emu.url)
        wait = {"wait": ["--wait"], "wait-lambda": ["--wait", "lambda"]}.get(strategy, [])
        cmd = [str(args.wfboot), "bootstrap", "--yes", "--user-name", bench.USER, "--endpoint-url", emu.url, "-q",
               "--output", "json"] + wait
        mark = emu.log_size()
        start = time.time()
        proc = subprocess.run(cmd, env=bench.clean_env(), capture_output=True, text=True, timeout=600,
                              start_new_session=True)
        bootstrap_done = time.time()
        if proc.returncode != 0:
            raise SystemExit(f"{tag}: bootstrap exited {proc.returncode}:\n{proc.stderr}")
        wfboot_entries = bench.read_log(log_path, mark, emu.log_size())
        if strategy == "sleep":
            time.sleep(10)
        attempts, refused = 0, 0
        while True:
            attempts += 1
            ok, code = create_function(lam, f"user-function-{strategy}")
            answered_at = time.time()
            if ok:
                break
            refused += 1
            if answered_at - start > 300:
                raise SystemExit(f"{tag}: CreateFunction still refused ({code}) after 300 s")
            time.sleep(1.0)
        created, spread = create_roles_answered(wfboot_entries)
        report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    limit = created + args.service_lag - start if created else None
    reported = {s["service"]: s for s in (report.get("wait") or {}).get("services", [])}
    services = per_service(wfboot_entries, start, args.service_lag, args.ec2_lag) if wait else {}
    for name, s in services.items():
        r = reported.get(name) or {}
        s.update(reported_s=r.get("usable_after_seconds"), probing_from_s=r.get("probing_from_seconds"),
                 attempts=r.get("attempts"), status=r.get("status"))
    result = {
        "strategy": strategy, "run": run, "bootstrap_s": bootstrap_done - start, "usable_s": answered_at - start,
        "limit_s": limit, "create_roles_spread_s": spread, "create_attempts": attempts, "create_refused": refused,
        "wait_usable_after_s": (report.get("wait") or {}).get("usable_after_seconds"),
        "services": services,
    }
    bench.log(f"{tag}: function created {result['usable_s']:.2f} s after the start (limit {limit or 0:.2f} s, "
              f"bootstrap {result['bootstrap_s']:.2f} s, {attempts} CreateFunction, {refused} refused)"
              + "".join(f"; {n} accepted {s['accepted_s']:.2f} s (lag end {s['lag_end_s']:.2f})"
                        for n, s in services.items() if s["accepted_s"] is not None))
    return result


STRATEGIES = ("wait", "wait-lambda", "retry", "sleep")


def main() -> int:
    bench.ensure_venv_python()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--service-lag", type=float, default=8.0)
    p.add_argument("--ec2-lag", type=float, default=8.0)
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma list of " + ", ".join(STRATEGIES))
    p.add_argument("--wfboot", type=Path, default=bench.REPO / "target" / "release" / "wfboot")
    p.add_argument("--out", type=Path, default=bench.REPO / "bench" / "out")
    args = p.parse_args()
    strategies = [x for x in args.strategies.split(",") if x]
    if not strategies or set(strategies) - set(STRATEGIES):
        p.error("--strategies: a comma list of " + ", ".join(STRATEGIES))
    if not args.wfboot.exists():
        raise SystemExit(f"{args.wfboot} not found: cargo build --release (or pass --wfboot target/debug/wfboot)")
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for run in range(1, args.runs + 1):  # interleaved: a drift of the machine hits every strategy
        for strategy in strategies:
            results.append(one(strategy, args, logs, run))
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    f = lambda x, spec=".2f", unit=" s": "–" if x is None else f"{x:{spec}}{unit}"  # noqa: E731
    md = [f"# Time to usable roles (issues 16 and 32), service lag {args.service_lag:g} s, EC2 lag {args.ec2_lag:g} s, "
          f"{args.runs} run(s), medians",
          "", f"wfboot: `{args.wfboot}`", "",
          "## A Lambda function with the new role", "",
          "From the start of `bootstrap` to the answer of the user's CreateFunction that succeeded; the limit is the end "
          "of the Lambda role's lag window (the last CreateRole's answer + the lag; the CreateRole answers spread "
          f"{f(med([r['create_roles_spread_s'] * 1000 for r in results]), '.0f', ' ms')}).", "",
          "| strategy | function created after | limit (lag end) | beyond the limit | CreateFunction calls | bootstrap exit |",
          "|---|---|---|---|---|---|"]
    for strategy in strategies:
        rs = [r for r in results if r["strategy"] == strategy]
        usable, limit = med([r["usable_s"] for r in rs]), med([r["limit_s"] for r in rs if r["limit_s"]])
        beyond = usable - limit if usable is not None and limit is not None else None
        md.append(f"| {strategy} | {f(usable)} | {f(limit)} | {f(beyond, '+.2f')} "
                  f"| {med([r['create_attempts'] for r in rs]):g} | {f(med([r['bootstrap_s'] for r in rs]))} |")
    md += ["", "## Each service, as `--wait` finds it", "",
           "When the service first accepted a probe (the answer to the first probe request the emulator did not refuse, "
           "from its log), against the end of that service's own lag window (Lambda, Step Functions, Batch: the last "
           "CreateRole's answer + the service lag; EC2: AddRoleToInstanceProfile's answer + the EC2 lag); wfboot's own "
           "report of the same moment (`usable_after_seconds`, from its own start), when its probe began asking "
           "(its roles written and read back) and how many requests it made. A probe asks every 0.2 s at first, "
           "backing off to 0.4 s within its first 20 s.", "",
           "| `--wait` | service | accepted after | its lag ends | beyond its lag | wfboot reports | asking from "
           "| probe requests (refused) |",
           "|---|---|---|---|---|---|---|---|"]
    for strategy in [s for s in strategies if s.startswith("wait")]:
        rs = [r for r in results if r["strategy"] == strategy]
        names = sorted({n for r in rs for n in r["services"]}, key=list(PROBE_CALLS).index)
        for name in names:
            ss = [r["services"][name] for r in rs if name in r["services"]]
            acc = med([s["accepted_s"] for s in ss if s["accepted_s"] is not None])
            lag = med([s["lag_end_s"] for s in ss if s["lag_end_s"] is not None])
            beyond = med([s["accepted_s"] - s["lag_end_s"] for s in ss
                          if s["accepted_s"] is not None and s["lag_end_s"] is not None])
            md.append(f"| `{' '.join({'wait': ['--wait'], 'wait-lambda': ['--wait', 'lambda']}[strategy])}` | {name} "
                      f"| {f(acc)} | {f(lag)} | {f(beyond, '+.2f')} "
                      f"| {f(med([s['reported_s'] for s in ss if s.get('reported_s') is not None]))} "
                      f"| {f(med([s['probing_from_s'] for s in ss if s.get('probing_from_s') is not None]))} "
                      f"| {med([s['calls'] for s in ss]):g} ({med([s['refused'] for s in ss]):g}) |")
    text = "\n".join(md) + "\n"
    (args.out / "wait.md").write_text(text)
    (args.out / "wait.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                    "runs": results}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
