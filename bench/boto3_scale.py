#!/usr/bin/env python3
"""boto3 baseline for the scale benchmark: the same get-then-create logic as
the boto3 peer script (boto3_idempotent.py, not in this repository), driven by a wfboot stack TOML file instead of a hard-coded list.

    ENDPOINT=http://127.0.0.1:PORT python bench/boto3_scale.py STACK.toml

One process, one boto3 session, every call sequential (as a careful script author writes it):
  sts:GetCallerIdentity (for the account and partition the documents are rendered for), then per role
  GetRole -> CreateRole if missing (else drift check of the trust document, UpdateAssumeRolePolicy if it
  differs, ListAttachedRolePolicies) -> AttachRolePolicy for each missing managed policy; then per
  instance profile GetInstanceProfile -> CreateInstanceProfile if missing -> AddRoleToInstanceProfile.

Supported stack keys: name, description, templates, [[role]] (name, path, description, trust,
managed_policies) and [[instance_profile]] (name, path, role). Anything else ([user], [[policy]],
customer_policies, [[service_linked_role]]) is refused rather than silently skipped, so the two tools
always do the same work. Trust templates are looked up like wfboot does: <stack dir>/../service_roles,
<stack dir>, then the repository's service_roles/ (wfboot's built-in templates).

Env: ENDPOINT (must be http://127.0.0.1:PORT). Last stderr line, like the peer:
    API_CALLS=<ops> HTTP_SENDS=<attempts> NOT_FOUND_PROBES=<404s> FAILED=<other errors> INPROC_S=<s>
"""
import json
import os
import re
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

T_START = time.perf_counter()
import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ENDPOINT = os.environ.get("ENDPOINT", "http://127.0.0.1:5055")
if not re.fullmatch(r"http://127\.0\.0\.1:\d{1,5}/?", ENDPOINT):
    sys.exit(f"refusing non-local endpoint {ENDPOINT}")
for k, v in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
    os.environ.setdefault(k, v)

SUPPORTED = {
    "": {"name", "description", "templates", "role", "instance_profile"},
    "role": {"name", "path", "description", "trust", "managed_policies"},
    "instance_profile": {"name", "path", "role"},
}
PLACEHOLDER = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")

stats = Counter()


def _after_call(http_response=None, parsed=None, **_):
    stats["api_calls"] += 1
    if http_response is not None and http_response.status_code >= 300:
        code = (parsed or {}).get("Error", {}).get("Code", str(http_response.status_code))
        stats["not_found" if code == "NoSuchEntity" else "failed"] += 1


def _before_send(**_):
    stats["http_sends"] += 1


def load_stack(path: Path) -> dict:
    stack = tomllib.loads(path.read_text())
    bad = sorted(set(stack) - SUPPORTED[""])
    for table in ("role", "instance_profile"):
        for entry in stack.get(table, []):
            bad += [f"{table}.{k}" for k in sorted(set(entry) - SUPPORTED[table])]
    if bad:
        sys.exit(f"{path}: boto3_scale.py does not support {', '.join(bad)}")
    return stack


def template_dirs(path: Path, stack: dict) -> list[Path]:
    here = path.resolve().parent
    if "templates" in stack:
        return [here / stack["templates"]]
    return [here / "../service_roles", here, REPO / "service_roles"]


def render(text: str, partition: str, account: str, region: str) -> str:
    suffix = "amazonaws.com"  # commercial partition only (all the benchmark needs)

    def fill(m):
        key = m.group(1)
        if key.startswith("principal:"):
            service = key.split(":", 1)[1].strip()
            return service if service.endswith("." + suffix) else f"{service}.{suffix}"
        return {"partition": partition, "account_id": account, "region": region, "dns_suffix": suffix}[key]

    return PLACEHOLDER.sub(fill, text)


def load_template(name: str, dirs: list[Path]) -> str:
    for d in dirs:
        f = d / name
        if f.is_file():
            return f.read_text()
    sys.exit(f"template {name} not found in {', '.join(map(str, dirs))}")


def missing(fn, **kw):
    try:
        return fn(**kw)
    except ClientError as e:
        if e.response["Error"]["Code"] == "NoSuchEntity":
            return None
        raise


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: boto3_scale.py STACK.toml")
    path = Path(sys.argv[1])
    stack = load_stack(path)
    dirs = template_dirs(path, stack)

    session = boto3.Session()
    session.events.register("after-call.*", _after_call)
    session.events.register("before-send.*", _before_send)
    iam = session.client("iam", endpoint_url=ENDPOINT)
    sts = session.client("sts", endpoint_url=ENDPOINT)

    t0 = time.perf_counter()
    arn = sts.get_caller_identity()["Arn"]
    partition, account = arn.split(":")[1], arn.split(":")[4]
    region = session.region_name or "us-east-1"
    managed = f"arn:{partition}:iam::aws:policy/"

    for r in stack.get("role", []):
        name = r["name"]
        trust = json.loads(render(load_template(r["trust"], dirs), partition, account, region))
        wanted = [managed + p for p in r.get("managed_policies", [])]
        role = missing(iam.get_role, RoleName=name)
        if role is None:
            kw = {"Path": r["path"]} if r.get("path") else {}
            if r.get("description"):
                kw["Description"] = r["description"]
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), **kw)
            attached = set()
        else:
            doc = role["Role"]["AssumeRolePolicyDocument"]
            if isinstance(doc, str):
                doc = json.loads(doc)
            if doc != trust:
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
            attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
        for policy_arn in wanted:
            if policy_arn not in attached:
                iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)

    for p in stack.get("instance_profile", []):
        ip = missing(iam.get_instance_profile, InstanceProfileName=p["name"])
        if ip is None:
            kw = {"Path": p["path"]} if p.get("path") else {}
            iam.create_instance_profile(InstanceProfileName=p["name"], **kw)
            roles = []
        else:
            roles = [x["RoleName"] for x in ip["InstanceProfile"]["Roles"]]
        if p["role"] not in roles:
            iam.add_role_to_instance_profile(InstanceProfileName=p["name"], RoleName=p["role"])

    t1 = time.perf_counter()
    print(f"API_CALLS={stats['api_calls']} HTTP_SENDS={stats['http_sends']} NOT_FOUND_PROBES={stats['not_found']} "
          f"FAILED={stats['failed']} INPROC_S={t1 - t0:.3f} IMPORT+CLIENTS_S={t0 - T_START:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
