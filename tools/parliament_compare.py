"""parliament's verdicts on identity policy documents, for tests/it/lint.rs (parliament is duo-labs' IAM policy
linter, pinned in tools/requirements.txt; run with its community auditors, as `parliament --include-community-auditors`).

Input (file given as the only argument): {"documents": [{"name": ..., "document": {...}}, ...]}.
Prints one JSON object on stdout, per document name:
  {"issues": ["RESOURCE_MISMATCH", ...],        parliament's finding codes
   "unknown_actions": ["svc:Action", ...],      actions of the document its own (older) action data lacks
   "mismatched_actions": ["svc:Action", ...],   the actions of its RESOURCE_MISMATCH findings
   "required_types": {"svc:Action": n},        per action named without wildcards: how many of its resource types
                                                parliament's table marks required (the only ones it checks)
   "optional_match": {"svc:Action": bool}}     ... and whether a Resource entry matches one of its other types
or {"crashed": "message"} for a document parliament fails on (some of the corpus's broken documents).
Usage: parliament_compare.py DOCUMENTS.json
"""

import json
import sys
from pathlib import Path

import parliament
from parliament import (
    UnknownActionException,
    UnknownPrefixException,
    analyze_policy_string,
    expand_action,
    is_arn_match,
)
from parliament.statement import get_arn_format, get_privilege_info


def actions_of(document):
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for s in statements:
        if not isinstance(s, dict):
            continue
        value = s.get("Action", s.get("NotAction", []))
        for a in [value] if isinstance(value, str) else value:
            if isinstance(a, str) and a != "*":
                yield a


def unknown_actions(document):
    out = []
    for a in actions_of(document):
        try:
            expand_action(a)
        except (UnknownActionException, UnknownPrefixException, ValueError):
            out.append(a)
    return sorted(set(out))


def resources_of(document):
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for s in statements:
        value = s.get("Resource", []) if isinstance(s, dict) else []
        for r in [value] if isinstance(value, str) else value:
            if isinstance(r, str):
                yield r


def type_facts(document):
    """For each action without wildcards parliament knows: its required types, and whether a resource is of another."""
    required, optional = {}, {}
    for a in actions_of(document):
        if "*" in a or "?" in a or ":" not in a:
            continue
        prefix, name = a.split(":", 1)
        try:
            info = get_privilege_info(prefix.lower(), expand_action(a)[0]["action"])
        except Exception:
            continue
        types = [t["resource_type"] for t in info["resource_types"] if t["resource_type"]]
        required[a] = sum(1 for t in types if t.endswith("*"))
        matched = False
        for t in types:
            if t.endswith("*"):
                continue
            try:
                fmt = get_arn_format(t, info["service_resources"])
                matched |= any(r != "*" and is_arn_match(t, fmt, r) for r in resources_of(document))
            except Exception:
                continue
        optional[a] = matched
    return required, optional


def main():
    # The community auditors' finding codes (NOTRESOURCE_WITH_ALLOW, ...) come from their own config file.
    parliament.override_config(str(Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"))
    documents = json.load(open(sys.argv[1], encoding="utf-8"))["documents"]
    out = {}
    for d in documents:
        try:
            policy = analyze_policy_string(json.dumps(d["document"]), include_community_auditors=True)
        except Exception as e:  # parliament expects well-formed statements
            out[d["name"]] = {"crashed": f"{type(e).__name__}: {e}"}
            continue
        issues, mismatched = [], []
        for f in policy.findings:
            issues.append(f.issue)
            if f.issue == "RESOURCE_MISMATCH" and isinstance(f.detail, list):
                mismatched.extend(m.get("action", "") for m in f.detail if isinstance(m, dict))
        required, optional = type_facts(d["document"])
        out[d["name"]] = {
            "required_types": required,
            "optional_match": optional,
            "issues": sorted(set(issues)),
            "unknown_actions": unknown_actions(d["document"]),
            "mismatched_actions": sorted(set(mismatched)),
        }
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
