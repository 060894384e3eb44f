#!/usr/bin/env bash
# benches/client_compare.sh: WebSocket clients side by side, against the
# C++ reference echo server on the same pinned uWebSockets, in one sitting:
# ours (benches/clients, uws_echo), Bun's built-in WebSocket
# (benches/bun/client_echo.js) and tokio-tungstenite (benches/clients,
# tokio_echo, single-threaded runtime). Every client is one thread.
#
#   benches/client_compare.sh [--rounds R] [--seconds S] [--clients N]
#       [--inflight K] [--size B] [--clients-list "ours bun tokio"]
#
# The server runs pinned to CPU 0, each client to CPU 1 (taskset), in R
# interleaved rounds (default 3) of S seconds (default 10), the order
# rotating every round; before each run the script waits (up to 60 s) for
# the machine to be quiet. Prints medians over rounds with [min-max] and
# the ratios; raw results in benches/results/clients-<timestamp>/.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ROUNDS=3
SECS=10
CLIENTS=64
INFLIGHT=128
SIZE=32
WHO="ours bun tokio"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --seconds) SECS="$2"; shift 2 ;;
        --clients) CLIENTS="$2"; shift 2 ;;
        --inflight) INFLIGHT="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --clients-list) WHO="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "client_compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

RES="$ROOT/benches/results/clients-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RES"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$RES/log.txt" >&2; }
PIN_SERVER=(taskset -c 0)
PIN_CLIENT=(taskset -c 1)
if ! command -v taskset >/dev/null || [[ "$(nproc)" -lt 2 ]]; then
    PIN_SERVER=()
    PIN_CLIENT=()
fi

log "building the reference echo server, our client and tokio-tungstenite's"
benches/reference/build.sh > "$RES/build-reference.log" 2>&1 || { log "reference build failed"; exit 1; }
# Its own target folder: the upstream pin in OUT_DIR must not sit inside
# the bench crate's workspace.
CARGO_TARGET_DIR="$ROOT/target/clients" cargo build --release \
    --manifest-path benches/clients/Cargo.toml > "$RES/build-clients.log" 2>&1 ||
    { log "benches/clients build failed, see $RES/build-clients.log"; exit 1; }
BUN="$(benches/bun/install.sh "" "$RES/install-bun.log")" || BUN=""

client_cmd() {
    case "$1" in
        ours) CMD=("$ROOT/target/clients/release/uws_echo") ;;
        tokio) CMD=("$ROOT/target/clients/release/tokio_echo") ;;
        bun) CMD=("$BUN" "$ROOT/benches/bun/client_echo.js") ;;
    esac
}
ACTIVE=()
for c in $WHO; do
    if [[ $c == bun && -z $BUN ]]; then log "SKIPPING bun: not installed"; continue; fi
    ACTIVE+=("$c")
done
{
    echo "date: $(date -Is)"
    echo "host: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    echo "git: $(git rev-parse --short HEAD) $(git status --porcelain | wc -l) changed files"
    [[ -n $BUN ]] && echo "bun: $("$BUN" --version)"
    echo "clients=$CLIENTS inflight=$INFLIGHT size=$SIZE rounds=$ROUNDS seconds=$SECS"
} > "$RES/env.txt"

"${PIN_SERVER[@]}" "$ROOT/target/reference/echo" --port 0 > "$RES/server.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null' EXIT
PORT=""
for _ in $(seq 100); do
    PORT="$(sed -n 's/^listening on .*:\([0-9][0-9]*\)[[:space:]]*$/\1/p' "$RES/server.log" | head -1)"
    [[ -n $PORT ]] && break
    sleep 0.05
done
[[ -n $PORT ]] || { log "the reference echo server did not start"; exit 1; }

busy_pct() { # machine-wide busy % over one second
    local a b
    read -r a b < <(awk '/^cpu / {print $2+$3+$4+$9, $5+$6+$7+$8}' /proc/stat)
    sleep 1
    awk -v a="$a" -v b="$b" '/^cpu / {u=$2+$3+$4+$9-a; i=$5+$6+$7+$8-b; print int(u*100/(u+i+1))}' /proc/stat
}
server_ticks() { sed 's/^.*) //' "/proc/$SRV/stat" | awk '{print $12 + $13}'; }

printf 'client\tround\tmessages\tseconds\trate\tcpu_s\tserver_ticks\tbusy_before\n' > "$RES/runs.tsv"
for round in $(seq "$ROUNDS"); do
    order=()
    n=${#ACTIVE[@]}
    for i in $(seq 0 $((n - 1))); do order+=("${ACTIVE[$(( (i + round - 1) % n ))]}"); done
    log "round $round of $ROUNDS (order: ${order[*]})"
    for c in "${order[@]}"; do
        busy=100
        for _ in $(seq 60); do
            busy=$(busy_pct)
            [[ $busy -lt 10 ]] && break
        done
        client_cmd "$c"
        s0=$(server_ticks)
        timeout $((SECS + 60)) "${PIN_CLIENT[@]}" "${CMD[@]}" --port "$PORT" --clients "$CLIENTS" \
            --inflight "$INFLIGHT" --size "$SIZE" --seconds "$SECS" > "$RES/$c.r$round.txt" 2>&1
        s1=$(server_ticks)
        line="$(grep '^RESULT' "$RES/$c.r$round.txt")"
        if [[ -z $line ]]; then
            log "  $c: no result, see $RES/$c.r$round.txt"
            continue
        fi
        f() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $line"; }
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$round" "$(f messages)" "$(f seconds)" \
            "$(f rate_median)" "$(f cpu_s)" "$((s1 - s0))" "$busy" >> "$RES/runs.tsv"
        log "  $c: $(f rate_median) echoes/s (median), client cpu $(f cpu_s) s, machine ${busy}% busy before"
    done
done

python3 - "$RES/runs.tsv" "${ACTIVE[*]}" "$(getconf CLK_TCK)" > "$RES/summary.txt" <<'EOF'
import sys
from collections import defaultdict
path, active, tck = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
rate, cpu, srv, busy = defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list)
with open(path) as f:
    next(f)
    for line in f:
        c, _r, msgs, secs, med, cpu_s, ticks, b = line.split("\t")
        msgs, secs = int(msgs), float(secs)
        rate[c].append(float(med))
        cpu[c].append(float(cpu_s) / msgs * 1e9)
        srv[c].append(int(ticks) / tck / msgs * 1e9)
        busy[c].append(int(b))
def med(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
def cell(v, fmt):
    return f"{fmt(med(v))} [{fmt(min(v))}-{fmt(max(v))}]" if v else "-"
names = {"ours": "uws (ours)", "bun": "Bun WebSocket", "tokio": "tokio-tungstenite"}
human = lambda x: f"{x / 1e6:.3g}M" if x >= 1e6 else f"{x / 1e3:.3g}k"
ns = lambda x: f"{x:.0f}"
print(f"{'metric':<22}" + "".join(f"{names[c]:>26}" for c in active))
for title, data, fmt in [("echoes/s (median)", rate, human), ("client cpu ns/echo", cpu, ns),
                         ("server cpu ns/echo", srv, ns), ("busy % before run", busy, ns)]:
    print(f"{title:<22}" + "".join(f"{cell(data[c], fmt):>26}" for c in active))
print()
for a, b in [("ours", "bun"), ("ours", "tokio"), ("tokio", "bun")]:
    if rate[a] and rate[b]:
        print(f"{a}/{b}: rate {med(rate[a]) / med(rate[b]):.2f}x, client cpu per echo {med(cpu[a]) / med(cpu[b]):.2f}x")
EOF
echo
cat "$RES/env.txt"
echo
cat "$RES/summary.txt"
echo
echo "raw results: $RES"
