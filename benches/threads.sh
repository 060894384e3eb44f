#!/usr/bin/env bash
# benches/threads.sh: the chat example on 1 vs N server threads, on the
# load generator, in one sitting.
#
#   benches/threads.sh                  # chat-32, threads 1 and 2, 3 rounds x 10 s
#   benches/threads.sh --threads "1 2 4 8" --clients 64 --rounds 3
#   benches/threads.sh --callgrind      # also user-space instructions per delivery
#
# Options:
#   --threads "LIST"   server thread counts to compare (default "1 2")
#   --clients N        chat room size (default 32)
#   --rounds R         interleaved rounds (default 3)
#   --seconds S        seconds per run (default 10)
#   --callgrind        count instructions per delivery for each thread count
#                      ((Ir(3 batches) - Ir(1 batch)) / extra deliveries, as
#                      compare.sh does)
#
# On a machine with more cores than server threads + 1, the load generator
# gets a core of its own; on 2 cores it shares them with the server, and
# the figures say how the work splits rather than how it scales.
# Raw output goes to benches/results/threads-<timestamp>/.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

THREADS="1 2"
CLIENTS=32
ROUNDS=3
SECONDS_PER_RUN=10
CALLGRIND=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --threads) THREADS="$2"; shift 2 ;;
        --clients) CLIENTS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
        --callgrind) CALLGRIND=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "threads.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

RES="$ROOT/benches/results/threads-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RES"
cargo build --release --example chat --quiet || exit 1
cargo build --release --manifest-path benches/loadgen/Cargo.toml --quiet || exit 1
LOADGEN="$ROOT/benches/loadgen/target/release/loadgen"
CHAT="$ROOT/target/release/examples/chat"

server_pid=
stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        server_pid=
    fi
}
trap stop_server EXIT

# start_server LOG CMD... : starts it, waits for "listening on", sets PORT.
start_server() {
    local log=$1
    shift
    "$@" > "$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1800); do
        PORT="$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$log")"
        [[ -n $PORT ]] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "threads.sh: the server did not start, see $log" >&2
    stop_server
    return 1
}

field() { # field NAME "RESULT k=v ..." -> v
    tr ' ' '\n' <<< "$2" | sed -n "s/^$1=//p"
}

printf 'threads\tround\trate\n' > "$RES/rates.tsv"
for round in $(seq "$ROUNDS"); do
    for t in $THREADS; do
        tag="chat-$CLIENTS.t$t.r$round"
        start_server "$RES/$tag.server.log" "$CHAT" --port 0 --clients "$CLIENTS" --threads "$t" || continue
        "$LOADGEN" chat --port "$PORT" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" --quiet \
            > "$RES/$tag.loadgen.txt" 2>&1
        stop_server
        line="$(grep '^RESULT' "$RES/$tag.loadgen.txt")"
        rate="$(field rate "$line")"
        echo "round $round, $t thread(s): ${rate:-failed} deliveries/s"
        [[ -n $rate ]] && printf '%s\t%s\t%s\n' "$t" "$round" "$rate" >> "$RES/rates.tsv"
    done
done

if [[ $CALLGRIND == 1 ]]; then
    for t in $THREADS; do
        declare -A IR=() DEL=()
        for b in 1 3; do
            tag="callgrind.chat-$CLIENTS.t$t.b$b"
            start_server "$RES/$tag.server.log" valgrind --tool=callgrind \
                --callgrind-out-file="$RES/$tag.out" "$CHAT" --port 0 --clients "$CLIENTS" --threads "$t" || continue
            "$LOADGEN" chat --port "$PORT" --clients "$CLIENTS" --batches "$b" --seconds 800 \
                --connect-timeout 300 --quiet > "$RES/$tag.loadgen.txt" 2>&1
            stop_server
            line="$(grep '^RESULT' "$RES/$tag.loadgen.txt")"
            IR[$b]="$(awk '/^(summary|totals):/ {print $2; exit}' "$RES/$tag.out")"
            DEL[$b]="$(field deliveries "$line")"
        done
        if [[ -n "${IR[1]:-}" && -n "${IR[3]:-}" ]]; then
            per=$(( (IR[3] - IR[1]) / (DEL[3] - DEL[1]) ))
            echo "$t thread(s): $per instructions per delivery"
            printf '%s\t%s\n' "$t" "$per" >> "$RES/instructions.tsv"
        fi
        unset IR DEL
    done
fi

python3 - "$RES/rates.tsv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(r["threads"], []).append(float(r["rate"]))
if by:
    base = statistics.median(next(iter(by.values())))
    for t, rates in by.items():
        m = statistics.median(rates)
        print(f"threads={t}: median {m/1e6:.2f}M deliveries/s [{min(rates)/1e6:.2f}M-{max(rates)/1e6:.2f}M], x{m/base:.2f}")
EOF
echo "raw results: $RES"
