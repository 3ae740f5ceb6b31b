#!/usr/bin/env python3
"""An organisation at scale (issue 31): `wfboot bootstrap --org-unit` (a service-managed StackSet over 5 OUs) against
`wfboot bootstrap --accounts` (every account from this machine through sts:AssumeRole), for organisations of N
accounts spread over 5 OUs. For each: the wall time and the calls sent from this machine (the emulator's request
log, every key but the set-up's), of the first run, of a no-op re-run, and (--org-unit only) of a first run with
--skip-account-reads; the CloudFormation writes of each --org-unit run; how each grows with N.

    .venv/bin/python bench/org_scale.py [--accounts 50,100,200] [--latency-ms 40] [--runs 1]
        [--binary target/release/wfboot] [--out bench/results/org-scale.md]

Everything talks only to emulators this script starts on 127.0.0.1 (tools/emulator.py, a fresh one per
measurement), each stopped by its PID; any other endpoint is refused. No developer AWS configuration is read.
The emulator runs CloudFormation's deployments itself (inside the process, not as requests), so the calls counted
are exactly what this machine sends; the wall time of an --org-unit run includes the emulator's modelled operation
time, not AWS's (docs/emulator.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = REPO / ".venv" / "bin" / "python"
if Path(sys.executable).resolve() != PY.resolve() and PY.exists() and os.environ.get("ORG_SCALE_REEXEC") != "1":
    os.environ["ORG_SCALE_REEXEC"] = "1"
    os.execv(str(PY), [str(PY), *sys.argv])

import boto3  # noqa: E402 (after the re-exec into the venv, which has it)

ADMIN = ("AKIAADMINTEST0000001", "admin-secret")
WFBOOT = ("AKIAWFBOOTTEST000001", "wfboot-secret")
TRUSTED = "member.org.stacksets.cloudformation.amazonaws.com"
OUS = 5


class Emulator:
    def __init__(self, latency_ms: float, log: Path):
        self.log = log
        cmd = [str(PY), str(REPO / "tools" / "emulator.py"), "--host", "127.0.0.1", "--port", "0", "--log", str(log),
               "--latency-ms", f"{latency_ms:g}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, cwd=REPO, start_new_session=True)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY http://127.0.0.1:"):
            self.stop()
            raise SystemExit(f"the emulator did not start on 127.0.0.1: {line!r}")
        self.url = line.split()[1]

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=ADMIN[0],
                            aws_secret_access_key=ADMIN[1])

    def mark(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def entries(self, mark: int) -> list[dict]:
        rows = [json.loads(line) for line in self.log.read_text().splitlines()[mark:]]
        return [r for r in rows if not r.get("internal") and r.get("access_key") != ADMIN[0]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def organisation(emu: Emulator, n: int) -> tuple[list[str], list[str]]:
    """N accounts in 5 OUs under the root, trusted access on; every account's backends built (not timed)."""
    o = emu.client("organizations")
    o.create_organization(FeatureSet="ALL")
    root = o.list_roots()["Roots"][0]["Id"]
    ous = [o.create_organizational_unit(ParentId=root, Name=f"ou{i}")["OrganizationalUnit"]["Id"] for i in range(OUS)]
    o.enable_aws_service_access(ServicePrincipal=TRUSTED)
    ids = []
    for i in range(n):
        account = o.create_account(Email=f"a{i}@example.com", AccountName=f"a{i}")["CreateAccountStatus"]["AccountId"]
        o.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ous[i % OUS])
        ids.append(account)
    sts = emu.client("sts")
    for account in ids:
        c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/Warm", RoleSessionName="warm")["Credentials"]
        boto3.client("iam", endpoint_url=emu.url, region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                     aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"]).list_roles()
    return ous, ids


def wfboot(binary: Path, emu: Emulator, tmp: str, args: list[str]) -> tuple[float, int, list[dict]]:
    if not emu.url.startswith("http://127.0.0.1:"):
        raise SystemExit(f"refusing an endpoint that is not the local emulator: {emu.url}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": WFBOOT[0], "AWS_SECRET_ACCESS_KEY": WFBOOT[1], "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": emu.url, "AWS_EC2_METADATA_DISABLED": "true", "HOME": tmp,
                "AWS_CONFIG_FILE": str(Path(tmp) / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(Path(tmp) / "none")})
    mark = emu.mark()
    started = time.monotonic()
    out = subprocess.run([str(binary), *args, "--yes", "--skip-user"], env=env, capture_output=True, timeout=3600,
                         start_new_session=True)
    seconds = time.monotonic() - started
    if out.returncode != 0:
        raise SystemExit(f"wfboot {' '.join(args)} exited {out.returncode}:\n{out.stderr.decode()[-3000:]}")
    return seconds, out.returncode, emu.entries(mark)


def measure(binary: Path, n: int, latency: float, how: str) -> dict:
    """One organisation of `n` accounts on a fresh emulator: the first run of `how`, then its no-op re-run."""
    with tempfile.TemporaryDirectory() as tmp:
        emu = Emulator(latency, Path(tmp) / "log.jsonl")
        try:
            ous, ids = organisation(emu, n)
            if how == "accounts":
                accounts = Path(tmp) / "accounts.txt"
                accounts.write_text("\n".join(ids) + "\n")
                args = ["bootstrap", "--accounts", str(accounts), "--assume-role-name", "WfbootDeployer"]
            else:
                args = ["bootstrap", *[x for o in ous for x in ("--org-unit", o)]]
                if how == "org-unit-skip-reads":
                    args.append("--skip-account-reads")
            first = wfboot(binary, emu, tmp, args)
            again = wfboot(binary, emu, tmp, args)
        finally:
            emu.stop()

    def summary(r: tuple[float, int, list[dict]]) -> dict:
        seconds, _, entries = r
        writes = [e for e in entries if e.get("write") and e.get("action") != "AssumeRole"]
        return {"seconds": seconds, "calls": len(entries),
                "assume_role": sum(e.get("action") == "AssumeRole" for e in entries),
                "iam_writes": sum(e.get("service") == "iam" for e in writes),
                "cfn_writes": sum(e.get("service") == "cloudformation" for e in writes)}
    return {"first": summary(first), "again": summary(again)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", default="50,100,200")
    parser.add_argument("--latency-ms", type=float, default=40)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--binary", type=Path, default=REPO / "target" / "release" / "wfboot")
    parser.add_argument("--out", type=Path, help="also write the table (and the command) to this Markdown file")
    args = parser.parse_args()
    if not args.binary.exists():
        raise SystemExit(f"no binary at {args.binary}: cargo build --release (or --binary target/debug/wfboot)")
    command = "python bench/org_scale.py " + " ".join(sys.argv[1:])
    lines = [f"`{command}`, {args.latency_ms:g} ms a request, {OUS} OUs, median of {args.runs} run(s), "
             f"{time.strftime('%Y-%m-%d')}, binary {args.binary}", "",
             "| accounts | how | first run | calls (AssumeRole) | IAM writes | CloudFormation writes | no-op re-run | calls |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    per: dict[str, list[tuple[int, dict]]] = {}
    for n in (int(x) for x in args.accounts.split(",")):
        for how in ("accounts", "org-unit", "org-unit-skip-reads"):
            results = [measure(args.binary, n, args.latency_ms, how) for _ in range(args.runs)]
            first = statistics.median(r["first"]["seconds"] for r in results)
            again = statistics.median(r["again"]["seconds"] for r in results)
            r = results[0]
            per.setdefault(how, []).append((n, r))
            label = {"accounts": "`--accounts`", "org-unit": "`--org-unit`",
                     "org-unit-skip-reads": "`--org-unit --skip-account-reads`"}[how]
            line = (f"| {n} | {label} | {first:.1f} s | {r['first']['calls']} ({r['first']['assume_role']}) | "
                    f"{r['first']['iam_writes']} | {r['first']['cfn_writes']} | {again:.1f} s | {r['again']['calls']} |")
            lines.append(line)
            print(line, flush=True)
    lines.append("")
    for how, rows in per.items():
        if len(rows) >= 2:
            (n0, a), (n1, b) = rows[0], rows[-1]
            per_account = (b["first"]["calls"] - a["first"]["calls"]) / (n1 - n0)
            again = (b["again"]["calls"] - a["again"]["calls"]) / (n1 - n0)
            lines.append(f"- {how}: {per_account:.1f} more calls per account on a first run, {again:.1f} on a no-op "
                         f"re-run (from {n0} to {n1} accounts)")
    print("\n".join(lines[-len(per):]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
