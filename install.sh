#!/usr/bin/env bash
# Installs wfboot for real use: builds the release binary and copies it to $PREFIX/bin (default ~/.local).
#   ./install.sh                 # -> ~/.local/bin/wfboot
#   PREFIX=/usr/local ./install.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=${PREFIX:-$HOME/.local}
command -v cargo >/dev/null || { echo "install.sh: cargo is needed (https://rustup.rs)" >&2; exit 1; }
echo "building wfboot (release; about 5 minutes the first time on 2 cores)..." >&2
cargo build --release --locked --manifest-path "$repo/Cargo.toml"
install -d "$prefix/bin"
install -m 0755 "$repo/target/release/wfboot" "$prefix/bin/wfboot"
echo "installed $prefix/bin/wfboot ($("$prefix/bin/wfboot" --version))" >&2
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "note: $prefix/bin is not on your PATH" >&2 ;; esac
