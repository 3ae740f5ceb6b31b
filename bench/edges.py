#!/usr/bin/env python3
"""Issue 32's edges benchmark (points 3 and 4): two builds side by side under the emulator's realism mode, each
scenario with the policy simulator working and with it answering HTTP 500 (`--no-simulator`, as moto without the
simulator sidecar; on AWS, an outage of that one API).

    python bench/edges.py --wfboot-old /work/bin/wfboot-3fe6e32 --wfboot-new target/release/wfboot \\
        [--runs 3] [--out bench/out]

Scenarios (each run gets a fresh emulator on 127.0.0.1, stopped by PID; `--lag-jitter 0`, so every window is its
flag's value):

  bootstrap      a fresh `bootstrap --yes` under 1.5 s of IAM read-after-write lag (`--iam-lag 1.5`);
  attach         `attach` of the stack's new instance profile to a running instance right after that bootstrap,
                 while EC2 still rejects the profile ("Invalid IAM Instance Profile name", `--ec2-lag 8`, longer than the bootstrap);
  destroy        `destroy --yes` of the bootstrapped stack (the instance's profile disassociated first, so nothing
                 holds it) while IAM answers DeleteConflict for 2 s after each removed link (`--delete-conflict 2`);
  no-user        `bootstrap --yes --user-name nobody-here` (decided: the user does not exist);
  no-tty         `bootstrap` without a terminal and without --yes, changes pending (decided: nothing can answer);
  quota          `bootstrap --yes` for an operator user that already has 6 managed policies (decided: the stack's
                 8 more would exceed IAM's quota of 10).

Measured per run: the wall time of the wfboot process, its exit code, and from the emulator's log the calls it
made, its SimulatePrincipalPolicy attempts, and (bootstrap, attach, destroy) how long after its last write (attach:
after the end of EC2's window) it ended. Results: OUT/edges.md (the command at the top), OUT/edges.json; the table
shows medians.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/run.py: Emulator, Account, clean_env, check_local, settle, ...)

IAM_LAG = 1.5
EC2_LAG = 8.0
DELETE_CONFLICT = 2.0
PROFILE = bench.REALISM_PROFILE
QUOTA_POLICIES = ("AmazonRDSReadOnlyAccess", "AmazonDynamoDBReadOnlyAccess", "AmazonSNSReadOnlyAccess",
                  "AmazonEC2ReadOnlyAccess", "AWSCloudTrail_ReadOnlyAccess", "CloudWatchReadOnlyAccess")
SCENARIOS = ("bootstrap", "attach", "destroy", "no-user", "no-tty", "quota")


def realism(seed: int, simulator: bool) -> tuple[str, ...]:
    extra = ("--realism", "--iam-lag", f"{IAM_LAG:g}", "--ec2-lag", f"{EC2_LAG:g}", "--delete-conflict",
             f"{DELETE_CONFLICT:g}", "--lag-jitter", "0", "--seed", str(seed))
    return extra if simulator else extra + ("--no-simulator",)


def wfboot(binary: Path, url: str, *argv: str) -> tuple[dict, list]:
    """Run wfboot once (stdin closed: no terminal), timed: wall, exit code and the tail of stderr."""
    cmd = [str(binary), *argv, "--endpoint-url", bench.check_local(url)]
    start = time.time()
    proc = subprocess.run(cmd, env=bench.clean_env(), capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, start_new_session=True)
    end = time.time()
    return {"wall_s": end - start, "rc": proc.returncode, "start": start, "end": end,
            "stderr_tail": "\n".join(proc.stderr.strip().splitlines()[-3:])}, cmd


def from_log(emu, mark: int, m: dict) -> dict:
    entries = bench.aws_entries(bench.read_log(emu.log_path, mark, emu.log_size()))
    writes = [bench_answered(e) for e in entries if e.get("write") and (e.get("status") or 500) < 300]
    m["calls"] = len(entries)
    m["simulations"] = sum(1 for e in entries if e.get("action") == "SimulatePrincipalPolicy")
    m["after_last_write_s"] = (m["end"] - max(writes)) if writes else None
    m["ec2_refused"] = sum(1 for e in entries if e.get("realism") == "ec2_not_propagated")
    m["delete_conflicts"] = sum(1 for e in entries if e.get("realism") == "delete_conflict")
    return m


def bench_answered(e: dict) -> float:
    return e["t"] + e["ms"] / 1000.0


def disassociate(url: str, instance: str) -> None:
    """Take the instance's profile off it, so that destroy finds nothing that uses the stack (not timed)."""
    import boto3

    ec2 = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y",
                                region_name="us-east-1").client("ec2", endpoint_url=bench.check_local(url))
    for a in ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [instance]}])["IamInstanceProfileAssociations"]:
        ec2.disassociate_iam_instance_profile(AssociationId=a["AssociationId"])


def one_account(build: str, binary: Path, simulator: bool, run: int, logs: Path, scenarios: list[str]) -> dict:
    """bootstrap, attach, destroy on one emulator (in that order: each needs the one before); the decided cases
    each on a fresh one."""
    tag = f"edges-{build}-{'sim' if simulator else 'nosim'}-run{run}"
    out: dict = {}
    log_path = logs / f"{tag}.emulator.jsonl"
    with bench.Emulator(0, log_path, logs / f"{tag}.emulator.stderr", realism(run, simulator)) as emu:
        emu.log_path = log_path
        bench.Account(emu.url).setup(create_user=True)
        instance = bench.launch_instance(emu.url)
        bench.settle(emu.url)
        mark = emu.log_size()
        m, _ = wfboot(binary, emu.url, "bootstrap", "--yes", "--user-name", bench.USER, "-q", "--output", "json")
        created = time.time()
        if "bootstrap" in scenarios:
            out["bootstrap"] = from_log(emu, mark, m)
        if "attach" in scenarios:
            # EC2's window runs from the profile's AddRoleToInstanceProfile (within the bootstrap just done).
            entries = bench.read_log(log_path, mark, emu.log_size())
            added = [bench_answered(e) for e in entries if e.get("action") == "AddRoleToInstanceProfile"]
            mark = emu.log_size()
            m, _ = wfboot(binary, emu.url, "attach", "--instance-id", instance, "--instance-profile", PROFILE,
                          "-q", "--output", "json")
            m = from_log(emu, mark, m)
            m["after_ec2_window_s"] = m["end"] - (max(added) + EC2_LAG) if added else None
            out["attach"] = m
        if "destroy" in scenarios:
            disassociate(emu.url, instance)
            bench.settle(emu.url)
            mark = emu.log_size()
            m, _ = wfboot(binary, emu.url, "destroy", "--yes", "-q", "--output", "json")
            out["destroy"] = from_log(emu, mark, m)
        del created
    decided = {
        "no-user": ["bootstrap", "--yes", "--user-name", "nobody-here"],
        "no-tty": ["bootstrap", "--user-name", bench.USER],
        "quota": ["bootstrap", "--yes", "--user-name", bench.USER],
    }
    for name, argv in decided.items():
        if name not in scenarios:
            continue
        dtag = f"{tag}-{name}"
        dlog = logs / f"{dtag}.emulator.jsonl"
        with bench.Emulator(0, dlog, logs / f"{dtag}.emulator.stderr", realism(run, simulator)) as emu:
            emu.log_path = dlog
            account = bench.Account(emu.url)
            account.setup(create_user=True)
            if name == "quota":
                for p in QUOTA_POLICIES:
                    account.iam.attach_user_policy(UserName=bench.USER, PolicyArn=bench.AWS_POLICY + p)
            bench.settle(emu.url)
            mark = emu.log_size()
            m, _ = wfboot(binary, emu.url, *argv, "-q")
            out[name] = from_log(emu, mark, m)
    bench.log(f"{tag}: " + ", ".join(f"{k} rc {v['rc']} {v['wall_s']:.2f} s ({v['calls']} calls, "
                                     f"{v['simulations']} simulations)" for k, v in out.items()))
    return {"build": build, "simulator": simulator, "run": run, "scenarios": out}


def main() -> int:
    bench.ensure_venv_python()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--wfboot-old", type=Path, help="the old build (3fe6e32); left out when not given")
    p.add_argument("--wfboot-new", type=Path, default=bench.REPO / "target" / "release" / "wfboot")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list of " + ", ".join(SCENARIOS))
    p.add_argument("--out", type=Path, default=bench.REPO / "bench" / "out")
    p.add_argument("--title", default="", help="a note for the heading (e.g. SMOKE RUN)")
    args = p.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if not scenarios or set(scenarios) - set(SCENARIOS):
        p.error("--scenarios: a comma list of " + ", ".join(SCENARIOS))
    builds = [("new", args.wfboot_new)] + ([("old", args.wfboot_old)] if args.wfboot_old else [])
    for name, binary in builds:
        if not binary.exists():
            raise SystemExit(f"--wfboot-{name} {binary} not found")
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for run in range(1, args.runs + 1):  # interleaved: a drift of the machine hits every build and mode alike
        for simulator in (True, False):
            for build, binary in reversed(builds):
                results.append(one_account(build, binary, simulator, run, logs, scenarios))
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    f = lambda x, spec=".2f", unit=" s": "–" if x is None else f"{x:{spec}}{unit}"  # noqa: E731
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    md = [f"# The edges of a run (issue 32, points 3 and 4){' — ' + args.title if args.title else ''}", "",
          f"`{command}`", "",
          f"Realism: IAM lag {IAM_LAG:g} s, EC2 lag {EC2_LAG:g} s, DeleteConflict {DELETE_CONFLICT:g} s after each "
          f"removed link, no jitter; {args.runs} run(s), medians. Builds: "
          + ", ".join(f"{b} `{p}`" for b, p in builds) + ".", "",
          "| scenario | simulator | build | wall | exit | calls | simulation attempts | after the last write "
          "(attach: after EC2's window) |",
          "|---|---|---|---|---|---|---|---|"]
    for scenario in scenarios:
        for simulator in (True, False):
            for build, _ in reversed(builds):
                ms = [r["scenarios"][scenario] for r in results
                      if r["build"] == build and r["simulator"] == simulator and scenario in r["scenarios"]]
                if not ms:
                    continue
                rcs = sorted({m["rc"] for m in ms})
                tail = [m["after_ec2_window_s"] if scenario == "attach" else m["after_last_write_s"] for m in ms]
                tail = [t for t in tail if t is not None]
                md.append(f"| {scenario} | {'working' if simulator else 'HTTP 500'} | {build} "
                          f"| {f(med([m['wall_s'] for m in ms]))} | {','.join(map(str, rcs))} "
                          f"| {med([m['calls'] for m in ms]):g} | {med([m['simulations'] for m in ms]):g} "
                          f"| {f(med(tail)) if scenario in ('bootstrap', 'attach', 'destroy') else '–'} |")
    text = "\n".join(md) + "\n"
    (args.out / "edges.md").write_text(text)
    (args.out / "edges.json").write_text(json.dumps({"command": command, "runs": results}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
