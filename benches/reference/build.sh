#!/usr/bin/env bash
# Builds the C++ reference servers (chat, echo, http) into
# $CARGO_TARGET_DIR/reference/ (target/reference/ by default), from
# the same uWebSockets/uSockets tree that our crate compiles: the upstream
# sources with our patches (vendor/patches) applied, which build.rs leaves
# in its OUT_DIR/upstream (OUT_DIR/upstream.txt says where they came from
# and which patches were applied). So ours and the reference compare like
# for like. This runs `cargo build --release --lib` to find (or make) it;
# UWS_SOURCE_DIR and UWS_UNPATCHED act as they do for that build.
#
# REFERENCE_UPSTREAM=DIR builds from another uWebSockets root (with uSockets
# inside) instead, e.g. the registry's unpatched copy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/reference"
mkdir -p "$OUT/obj"

find_upstream() {
    if [[ -n "${REFERENCE_UPSTREAM:-}" ]]; then
        echo "$REFERENCE_UPSTREAM"
        return
    fi
    local json out_dir
    json="$(cd "$ROOT" && cargo build --release --lib --message-format=json)" || {
        echo "build.sh: cargo build --release --lib failed" >&2
        exit 1
    }
    out_dir="$(python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    pid = m.get("package_id", "")
    if m.get("reason") == "build-script-executed" and ("#uws@" in pid or pid.startswith("uws ")):
        print(m["out_dir"])
' <<< "$json")"
    if [[ -z "$out_dir" || ! -f "$out_dir/upstream.txt" ]]; then
        echo "build.sh: cargo build --release --lib did not report the uws build script's OUT_DIR" >&2
        exit 1
    fi
    sed 's/^/build.sh: /' "$out_dir/upstream.txt" >&2
    cp "$out_dir/upstream.txt" "$OUT/upstream.txt"
    echo "$out_dir/upstream"
}

UWS="$(find_upstream)"
US="$UWS/uSockets/src"
if [[ ! -f "$UWS/src/App.h" || ! -f "$US/libusockets.h" ]]; then
    echo "build.sh: no uWebSockets sources under $UWS" >&2
    exit 1
fi

CC="${CC:-gcc}"
CXX="${CXX:-g++}"
CFLAGS=(-O3 -flto -DLIBUS_NO_SSL -I"$US")
CXXFLAGS=(-std=c++20 -O3 -flto -DLIBUS_NO_SSL -DUWS_NO_ZLIB -I"$UWS/src" -I"$US" -I"$ROOT/benches/reference")

objs=()
for f in bsd.c context.c loop.c socket.c udp.c eventing/epoll_kqueue.c crypto/openssl.c; do
    o="$OUT/obj/$(echo "$f" | tr '/' '_' | sed 's/\.c$/.o/')"
    "$CC" "${CFLAGS[@]}" -c "$US/$f" -o "$o"
    objs+=("$o")
done

for server in chat echo http; do
    "$CXX" "${CXXFLAGS[@]}" "$ROOT/benches/reference/$server.cpp" "${objs[@]}" -flto=auto -O3 -o "$OUT/$server"
done
echo "built $OUT/chat $OUT/echo $OUT/http (uWebSockets from $UWS)"
