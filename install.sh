#!/usr/bin/env bash
# Installs wfboot for real use: the release binary to $PREFIX/bin, shell completions (bash, zsh, fish) and
# the man page under $PREFIX/share.
#   ./install.sh                        # -> ~/.local
#   PREFIX=/usr/local ./install.sh
#   WFBOOT_BIN=path/to/wfboot ./install.sh   # install an already built binary instead of building one
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=${PREFIX:-$HOME/.local}
bin=${WFBOOT_BIN:-}
if [ -z "$bin" ]; then
  command -v cargo >/dev/null || { echo "install.sh: cargo is needed (https://rustup.rs)" >&2; exit 1; }
  echo "building wfboot (release; the first time 11 to 18 minutes on 2 cores, docs/performance.md \"Build cost\")..." >&2
  cargo build --release --locked --manifest-path "$repo/Cargo.toml"
  bin="$repo/target/release/wfboot"
fi
install -d "$prefix/bin" "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
  "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
install -m 0755 "$bin" "$prefix/bin/wfboot"
"$prefix/bin/wfboot" man > "$prefix/share/man/man1/wfboot.1"
"$prefix/bin/wfboot" completions bash > "$prefix/share/bash-completion/completions/wfboot"
"$prefix/bin/wfboot" completions zsh > "$prefix/share/zsh/site-functions/_wfboot"
"$prefix/bin/wfboot" completions fish > "$prefix/share/fish/vendor_completions.d/wfboot.fish"
echo "installed $prefix/bin/wfboot ($("$prefix/bin/wfboot" --version)), its man page and completions" >&2
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "note: $prefix/bin is not on your PATH" >&2 ;; esac
