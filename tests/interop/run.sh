#!/usr/bin/env bash
# Clients nobody here wrote against the echo example: Python's `websockets`,
# Node's `ws`, Bun's built-in WebSocket (each offering subprotocols, with and
# without permessage-deflate), and curl for plain HTTP (HTTP/1.1 with a body,
# HTTP/1.0, chunked upload).
#
#   tests/interop/run.sh
#
# Installs what is missing into target/interop/ (a Python virtualenv, an npm
# prefix) and Bun through benches/bun/install.sh; a client that cannot be
# installed fails the run. Builds examples/echo in release mode, starts it
# on 127.0.0.1 port 0 and stops it at the end. Every check is bounded in
# time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$root/target/interop
mkdir -p "$work"

step() { printf '==> %s\n' "$*"; }
fail() { echo "interop: FAIL: $*" >&2; exit 1; }

step "building examples/echo (release)"
(cd "$root" && timeout 1200 cargo build --release --quiet --example echo)

if [[ ! -x $work/venv/bin/python ]]; then
    step "Python virtualenv with websockets"
    timeout 120 python3 -m venv "$work/venv" || fail "python3 -m venv (on Debian: apt-get install python3-venv)"
fi
if ! "$work/venv/bin/python" -c "import websockets" 2>/dev/null; then
    timeout 300 "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "websockets==15.0.1"
fi
if [[ ! -f $work/node/node_modules/ws/package.json ]]; then
    step "Node's ws"
    mkdir -p "$work/node"
    timeout 300 npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$work/node" "ws@8.18.3" \
        > "$work/npm.log" 2>&1 || fail "npm install ws, see $work/npm.log"
fi
step "Bun"
bun=$("$root/benches/bun/install.sh" "" "$work/bun-install.log") || fail "no Bun, see $work/bun-install.log"

pid=
stop() {
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
    fi
}
trap stop EXIT

# Starts the echo example with "$@" and sets `port`.
start() {
    stop
    "$root/target/release/examples/echo" --port 0 "$@" > "$work/echo.log" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 100); do
        if [[ $(head -n 1 "$work/echo.log" 2>/dev/null) =~ listening\ on\ .*:([0-9]+)$ ]]; then
            port=${BASH_REMATCH[1]}
            return
        fi
        sleep 0.1
    done
    cat "$work/echo.log" >&2
    fail "the echo example did not start"
}

# Runs a client; it prints one line, which must be $1.
expect() {
    local want=$1 name=$2
    shift 2
    local got
    got=$(timeout 30 "$@" 2>"$work/client.err") || {
        cat "$work/client.err" >&2
        fail "$name exited with an error"
    }
    [[ $got == "$want" ]] || fail "$name printed '$got', expected '$want'"
    echo "ok: $name"
}

for mode in plain compress; do
    if [[ $mode == compress ]]; then start --compress; else start; fi
    url="ws://127.0.0.1:$port/"
    # Expected from each: the protocol the server answered (the first
    # offered, as Bun does), the extensions, and the echo.
    deflate=none
    [[ $mode == compress ]] && deflate=permessage-deflate
    want="chat|$deflate|héllo"

    expect "$want" "python websockets ($mode)" "$work/venv/bin/python" - "$url" <<'EOF'
import asyncio, sys
from websockets.asyncio.client import connect

async def main():
    async with connect(sys.argv[1], subprotocols=["chat", "superchat"]) as ws:
        await ws.send("héllo")
        echo = await ws.recv()
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "none").split(";")[0]
        print(f"{ws.subprotocol}|{ext}|{echo}")

asyncio.run(main())
EOF

    expect "$want" "node ws ($mode)" env NODE_PATH="$work/node/node_modules" node -e '
const WebSocket = require("ws");
const ws = new WebSocket(process.argv[1], ["chat", "superchat"]);
ws.on("open", () => ws.send("héllo"));
ws.on("message", (data) => {
  const ext = ws.extensions.split(";")[0] || "none";
  console.log(`${ws.protocol}|${ext}|${data.toString()}`);
  ws.close(1000);
});
ws.on("error", (e) => { console.error(e.message); process.exit(1); });
' "$url"

    expect "$want" "bun WebSocket ($mode)" "$bun" -e '
const ws = new WebSocket(process.argv[process.argv.length - 1], ["chat", "superchat"]);
ws.onopen = () => ws.send("héllo");
ws.onmessage = (e) => {
  const ext = ws.extensions ? ws.extensions.split(";")[0] : "none";
  console.log(`${ws.protocol}|${ext}|${e.data}`);
  ws.close(1000);
};
ws.onerror = () => process.exit(1);
' "$url"
done

start
base="http://127.0.0.1:$port"
# curl prints the body the echo example sends back, then the status.
http() {
    local want=$1 name=$2
    shift 2
    expect "$want" "curl $name" curl -sS --max-time 10 -w ' %{http_code}' "$@"
}
http "hello 200" "HTTP/1.1 POST" --data-binary hello "$base/x"
http "hello 200" "HTTP/1.0 POST" --http1.0 --data-binary hello "$base/"
http "chunked-body 200" "chunked upload" -H 'Transfer-Encoding: chunked' --data-binary chunked-body "$base/"
http " 200" "GET" "$base/?q=1"
echo "interop passed"
