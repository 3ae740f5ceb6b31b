#!/usr/bin/env bash
# Writes src/stack/data/partitions.json: the AWS partitions (ids, DNS suffixes, region patterns, the region each
# partition's global endpoints use) exactly as the AWS SDK for Rust resolves them, copied from the endpoint
# library of the aws-sdk-iam crate that Cargo.lock pins (its `endpoint_lib.rs` embeds the SDK's partitions.json).
# Run it after updating aws-sdk-iam; src/partitions.rs has a test that fails when the copy is out of date.
#
#   tools/gen-partitions.sh          # needs the crate's source in the Cargo registry (any `cargo build` fetches it)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(awk '/^name = "aws-sdk-iam"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$repo/Cargo.lock")
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"aws-sdk-iam-$version"/src/endpoint_lib.rs 2>/dev/null | head -1)
[ -n "$src" ] || { echo "aws-sdk-iam $version is not in the Cargo registry: run cargo fetch" >&2; exit 1; }
python3 - "$src" "$version" > "$repo/src/stack/data/partitions.json" <<'PY'
import ast, json, sys
text = open(sys.argv[1]).read()
start = text.index('new_from_json(b"') + len("new_from_json(")
end = text.index('").expect', start) + 1
data = json.loads(ast.literal_eval(text[start:end]))
data["source"] = f"aws-sdk-iam {sys.argv[2]} src/endpoint_lib.rs (the SDK's partitions.json)"
print(json.dumps(data, indent=1, sort_keys=True))
PY
echo "wrote src/stack/data/partitions.json from aws-sdk-iam $version" >&2
