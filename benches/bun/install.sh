#!/usr/bin/env bash
# Installs Bun (the npm package @oven/bun-linux-x64, or -baseline on CPUs
# without AVX2) into benches/.tools/ unless that version is there already,
# and prints the path of its binary. Exits 1 when there is no runnable Bun.
#
#   benches/bun/install.sh [VERSION] [LOGFILE]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VERSION="${1:-${BUN_VERSION:-1.4.5}}"
LOG="${2:-/dev/null}"
PKG="@oven/bun-linux-x64"
grep -qw avx2 /proc/cpuinfo 2>/dev/null || PKG="@oven/bun-linux-x64-baseline"
TOOLS="$ROOT/benches/.tools"
BUN="$TOOLS/node_modules/$PKG/bin/bun"
if [[ ! -x "$BUN" || "$("$BUN" --version 2>/dev/null)" != "$VERSION" ]] && command -v npm >/dev/null; then
    mkdir -p "$TOOLS"
    npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$TOOLS" \
        "$PKG@$VERSION" > "$LOG" 2>&1 || echo "npm install of $PKG failed, see $LOG" >&2
fi
[[ -x "$BUN" ]] && "$BUN" --version > /dev/null 2>&1 || exit 1
echo "$BUN"
