#!/usr/bin/env python3
"""Validate wfboot's JSON results against docs/output.schema.json (JSON Schema draft 2020-12).

Used by tests/it/schema.rs with the repository's .venv (jsonschema is pinned in tools/requirements.txt).

    validate_output.py SCHEMA < documents.json

stdin: a JSON array of {"name": ..., "document": ..., "def": optional name under $defs}. Each document is
validated against the whole schema and, with "def", against that definition too (for a precise message).
stdout: a JSON array of {"name": ..., "errors": [...]}, one per document, empty "errors" when valid.
Exit 0 when every document is valid, 1 when one is not, 2 when the schema itself is invalid.
"""

import json
import sys

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match


def line(error):
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
    return f"{where}: {message}"


def messages(validator, document):
    errors = list(validator.iter_errors(document))
    if not errors:
        return []
    out = [line(best_match(errors))]
    for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))[:20]:
        if line(e) not in out:
            out.append(line(e))
    return out


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        print(json.dumps([{"name": "(schema)", "errors": [str(e.message)]}]))
        return 2
    format_checker = Draft202012Validator.FORMAT_CHECKER
    whole = Draft202012Validator(schema, format_checker=format_checker)
    results = []
    for item in json.load(sys.stdin):
        errors = messages(whole, item["document"])
        if item.get("def"):
            part = dict(schema, **{"$ref": f"#/$defs/{item['def']}"})
            part.pop("anyOf", None)
            errors += [f"[{item['def']}] {m}" for m in messages(Draft202012Validator(part, format_checker=format_checker), item["document"])]
        results.append({"name": item["name"], "errors": errors})
    print(json.dumps(results))
    return 0 if all(not r["errors"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
