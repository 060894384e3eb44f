#!/usr/bin/env bash
# Builds the C++ reference servers (chat, echo) against the pinned upstream
# uWebSockets/uSockets sources into target/reference/.
#
# The sources are not in this repository: vendor/pin.toml + vendor/pin.lock
# name the package that carries them; `cargo metadata` fetches (or reuses) it
# and tells us where it was unpacked. UWS_SOURCE_DIR overrides this with a
# checkout of uWebSockets that has uSockets inside.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/target/reference"
mkdir -p "$OUT/obj"

find_upstream() {
    if [[ -n "${UWS_SOURCE_DIR:-}" ]]; then
        echo "$UWS_SOURCE_DIR"
        return
    fi
    local pin="$OUT/pin"
    mkdir -p "$pin"
    cp "$ROOT/vendor/pin.toml" "$pin/Cargo.toml"
    cp "$ROOT/vendor/pin.lock" "$pin/Cargo.lock"
    : > "$pin/lib.rs"
    local manifest
    manifest="$(cargo metadata --format-version 1 --locked --manifest-path "$pin/Cargo.toml" |
        python3 -c '
import json, sys
meta = json.load(sys.stdin)
for p in meta["packages"]:
    if p["name"] == "libuwebsockets-sys":
        print(p["manifest_path"])
        break
')"
    if [[ -z "$manifest" ]]; then
        echo "build.sh: libuwebsockets-sys not found in cargo metadata" >&2
        exit 1
    fi
    echo "$(dirname "$manifest")/uWebSockets"
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

for server in chat echo; do
    "$CXX" "${CXXFLAGS[@]}" "$ROOT/benches/reference/$server.cpp" "${objs[@]}" -flto=auto -O3 -o "$OUT/$server"
done
echo "built $OUT/chat $OUT/echo (uWebSockets from $UWS)"
