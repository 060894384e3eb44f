#!/usr/bin/env bash
# benches/smoke.sh: a quick check that the benchmark tools still work
# together (for .ci/run): builds the load generator and our chat and echo
# examples (debug builds: cheap, and `cargo test` has built the examples
# already), and runs each workload of benches/compare.sh for a moment
# against ours: chat (with latency), echo, HTTP pipelined and not. Fails
# when a run fails or prints no RESULT. Measures nothing worth keeping.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo build --quiet --manifest-path benches/loadgen/Cargo.toml
cargo build --quiet --example chat --example echo
LOADGEN="$ROOT/benches/loadgen/target/debug/loadgen"
EXAMPLES="$ROOT/target/debug/examples"
LOG="$(mktemp)"
SRV_PID=""
trap '[[ -n "$SRV_PID" ]] && kill "$SRV_PID" 2>/dev/null; rm -f "$LOG"' EXIT

# run NAME SERVER... -- LOADGEN_ARGS...
run() {
    local name="$1"
    shift
    local server=()
    while [[ "$1" != -- ]]; do server+=("$1"); shift; done
    shift
    "${server[@]}" --port 0 > "$LOG" 2>&1 &
    SRV_PID=$!
    local port="" k
    for k in $(seq 100); do
        port="$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$LOG")"
        [[ -n "$port" ]] && break
        sleep 0.05
    done
    [[ -n "$port" ]] || { echo "smoke: $name: the server did not start" >&2; cat "$LOG" >&2; exit 1; }
    local out
    out="$(timeout 60 "$LOADGEN" "$@" --port "$port" --quiet)" || {
        echo "smoke: $name: loadgen failed" >&2
        exit 1
    }
    kill "$SRV_PID"
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
    grep -q '^RESULT' <<< "$out" || { echo "smoke: $name: no RESULT" >&2; exit 1; }
    echo "smoke: $name: $(grep -o 'rate=[0-9]*' <<< "$out" | head -1)/s$(grep -o ' lat_p99_us=[0-9.]*' <<< "$out")"
}

run chat-8 "$EXAMPLES/chat" --clients 8 -- chat --clients 8 --batches 3
run echo "$EXAMPLES/echo" -- echo --clients 8 --inflight 8 --messages 20000
run http-1 "$EXAMPLES/echo" --reply "Hello, World!" -- http --clients 8 --messages 5000
run http-8 "$EXAMPLES/echo" --reply "Hello, World!" -- http --clients 8 --pipeline 8 --messages 20000
echo "smoke: benchmark tools work"
