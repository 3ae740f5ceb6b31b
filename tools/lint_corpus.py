"""Independent verdicts on tests/fixtures/lint-corpus.json, for tests/it/lint.rs: cfn-lint's and moto's.

For every case it writes a CloudFormation template holding the document (a managed policy's PolicyDocument, a
role's AssumeRolePolicyDocument, or the role/policy property the case is about), lints all of them in one cfn-lint
run, and runs moto's own IAM policy validators (moto.iam.policy_validation, the MalformedPolicyDocument checks
moto applies on CreatePolicy/UpdateAssumeRolePolicy) on each document. Prints one JSON object on stdout:
  {"case-name": {"cfn_lint": ["E3510: message", ...], "moto": "MalformedPolicyDocument message" or null}}
`moto` is null when moto accepts the document, and absent for cases that are not documents.
Usage: lint_corpus.py CORPUS.json WORKDIR
"""

import json
import os
import subprocess
import sys

from moto.iam.policy_validation import IAMPolicyDocumentValidator, IAMTrustPolicyDocumentValidator

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"}],
}


def resource(case):
    kind = case["kind"]
    if kind == "identity":
        return "AWS::IAM::ManagedPolicy", {"PolicyDocument": case["document"]}
    if kind == "trust":
        return "AWS::IAM::Role", {"AssumeRolePolicyDocument": case["document"]}
    if kind == "role-policies":
        arns = [f"arn:aws:iam::aws:policy/{p}" for p in case["managed_policies"]]
        return "AWS::IAM::Role", {"AssumeRolePolicyDocument": TRUST, "ManagedPolicyArns": arns}
    if kind == "role-description":
        return "AWS::IAM::Role", {"AssumeRolePolicyDocument": TRUST, "Description": case["description"]}
    if kind == "policy-description":
        return "AWS::IAM::ManagedPolicy", {"PolicyDocument": POLICY, "Description": case["description"]}
    raise SystemExit(f"unknown case kind {kind}")


def moto_verdict(case):
    validator = {"identity": IAMPolicyDocumentValidator, "trust": IAMTrustPolicyDocumentValidator}.get(case["kind"])
    if validator is None:
        return None, False
    try:
        validator(json.dumps(case["document"])).validate()
        return None, True
    except Exception as e:  # MalformedPolicyDocument, or a crash on input moto does not expect
        return getattr(e, "message", None) or f"{type(e).__name__}: {e}", True


def main():
    corpus, workdir = sys.argv[1], sys.argv[2]
    cases = json.load(open(corpus, encoding="utf-8"))["cases"]
    files = {}
    for case in cases:
        kind, props = resource(case)
        template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Subject": {"Type": kind, "Properties": props}}}
        path = os.path.join(workdir, f"{case['name']}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(template, f, indent=1, ensure_ascii=False)
        files[os.path.abspath(path)] = case["name"]
    cfn_lint = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
    run = subprocess.run([cfn_lint, "--format", "json", "--", *files], capture_output=True, text=True)
    try:
        findings = json.loads(run.stdout)
    except ValueError:
        raise SystemExit(f"cfn-lint printed no JSON (exit {run.returncode}): {run.stdout}\n{run.stderr}")
    out = {name: {"cfn_lint": []} for name in files.values()}
    for f in findings:
        name = files[os.path.abspath(f["Filename"])]
        out[name]["cfn_lint"].append(f"{f['Rule']['Id']}: {f['Message']}")
    for case in cases:
        verdict, applies = moto_verdict(case)
        if applies:
            out[case["name"]]["moto"] = verdict
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
