#!/usr/bin/env python3
"""What the pre-flight's organisation reads cost (issue 25): calls and wall time of `wfboot check --accounts` over
N accounts, in an organisation (OUs /workloads/prod and /workloads/dev, an extra SCP on dev, the caller its
management account: every SCP is read) and outside any (the accounts in no organisation: one DescribeOrganization
answers AWSOrganizationsNotInUseException and nothing more is read).

    python bench/organisation_reads.py [--accounts 1,50] [--latency-ms 40] [--runs 3] [--binary target/debug/wfboot]

Everything talks only to emulators this script starts on 127.0.0.1 (tools/emulator.py, a fresh one per run),
each stopped by its PID. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parent.parent
PY = REPO / ".venv" / "bin" / "python"
ADMIN = ("AKIAADMINTEST0000001", "admin-secret")
WFBOOT = ("AKIAWFBOOTTEST000001", "wfboot-secret")


class Emulator:
    def __init__(self, latency_ms: float, log: Path):
        self.log = log
        cmd = [str(PY), str(REPO / "tools" / "emulator.py"), "--host", "127.0.0.1", "--port", "0", "--log", str(log),
               "--latency-ms", f"{latency_ms:g}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, cwd=REPO, start_new_session=True)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("READY http://127.0.0.1:"), line
        self.url = line.split()[1]

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=ADMIN[0],
                            aws_secret_access_key=ADMIN[1])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def organisation(emu: Emulator, n: int) -> list[str]:
    o = emu.client("organizations")
    o.create_organization(FeatureSet="ALL")
    root = o.list_roots()["Roots"][0]["Id"]
    workloads = o.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
    ous = [o.create_organizational_unit(ParentId=workloads, Name=name)["OrganizationalUnit"]["Id"]
           for name in ("prod", "dev")]
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*",
                                                    "Condition": {"Null": {"aws:RequestTag/team": "true"}}}]}
    policy = o.create_policy(Content=json.dumps(deny), Description="d", Name="RequireTeamTag",
                             Type="SERVICE_CONTROL_POLICY")["Policy"]["PolicySummary"]["Id"]
    o.attach_policy(PolicyId=policy, TargetId=ous[1])
    ids = []
    for i in range(n):
        account = o.create_account(Email=f"a{i}@example.com", AccountName=f"a{i}")["CreateAccountStatus"]["AccountId"]
        o.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ous[i % 2])
        ids.append(account)
    return ids


def run(binary: Path, n: int, latency: float, in_org: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        emu = Emulator(latency, log)
        try:
            ids = organisation(emu, n) if in_org else [f"{100000000000 + i}" for i in range(n)]
            # moto builds an account's backends at its first request (CreateAccount does it for the organisation's
            # accounts): done here for every account, so that neither timed run pays for it.
            sts = emu.client("sts")
            for account in ids:
                c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/Warm", RoleSessionName="warm")["Credentials"]
                boto3.client("iam", endpoint_url=emu.url, region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                             aws_secret_access_key=c["SecretAccessKey"],
                             aws_session_token=c["SessionToken"]).list_roles()
            accounts = Path(tmp) / "accounts.txt"
            accounts.write_text("\n".join(ids) + "\n")
            mark = len(log.read_text().splitlines()) if log.exists() else 0
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update({"AWS_ACCESS_KEY_ID": WFBOOT[0], "AWS_SECRET_ACCESS_KEY": WFBOOT[1],
                        "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": emu.url, "HOME": tmp,
                        "AWS_CONFIG_FILE": str(Path(tmp) / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(Path(tmp) / "none")})
            started = time.monotonic()
            out = subprocess.run([str(binary), "check", "--skip-user", "--accounts", str(accounts),
                                  "--assume-role-name", "WfbootDeployer", "--output", "json"],
                                 env=env, capture_output=True, timeout=600)
            seconds = time.monotonic() - started
            entries = [json.loads(line) for line in log.read_text().splitlines()[mark:]]
            result = json.loads(out.stdout)
            statuses = sorted({a["result"]["organisation"]["status"] for a in result["accounts"]})
        finally:
            emu.stop()
    org_calls = [e for e in entries if e.get("service") == "organizations"]
    actions: dict[str, int] = {}
    for e in org_calls:
        actions[e.get("action")] = actions.get(e.get("action"), 0) + 1
    return {"seconds": seconds, "calls": len(entries), "org_calls": len(org_calls), "statuses": statuses,
            "actions": actions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", default="1,50")
    parser.add_argument("--latency-ms", type=float, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", type=Path, default=REPO / "target" / "debug" / "wfboot")
    args = parser.parse_args()
    print(f"`wfboot check --accounts`, {args.latency_ms:g} ms a request, median of {args.runs} runs\n")
    print("| accounts | organisation | Organizations calls | all calls | wall time | verdicts |")
    print("|---:|---|---:|---:|---:|---|")
    run(args.binary, 1, args.latency_ms, False)  # warm-up (first imports, caches), not counted
    details = []
    for n in (int(x) for x in args.accounts.split(",")):
        for in_org in (False, True):
            results = [run(args.binary, n, args.latency_ms, in_org) for _ in range(args.runs)]
            seconds = statistics.median(r["seconds"] for r in results)
            r = results[0]
            where = "management account, OUs, SCPs" if in_org else "none"
            print(f"| {n} | {where} | {r['org_calls']} | {r['calls']} | {seconds:.2f} s | {', '.join(r['statuses'])} |",
                  flush=True)
            details.append(f"{n} accounts, {where}: " + ", ".join(f"{a} {c}" for a, c in sorted(r["actions"].items())))
    print("\n" + "\n".join(f"- {d}" for d in details))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
