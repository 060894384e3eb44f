#!/usr/bin/env bash
# benches/bus.sh: one chat room on one server vs the same room spread over
# two server processes joined by a bus (Redis, NATS), on the load
# generator, in one sitting (interleaved rounds).
#
#   benches/bus.sh                    # chat-32, 3 rounds x 10 s
#   benches/bus.sh --clients 64 --rounds 5 --seconds 10
#
# Setups, each run in every round (rotating order):
#   one        the chat example alone (no bus): the baseline
#   one+redis  the same with a Redis bus attached (its own publishes go
#              to Redis and come back as echoes: the bridge's cost)
#   two-redis  two chat processes with --redis, half the clients on each
#   two-nats   the same over NATS
# Every message reaches every member of the room once, wherever they are,
# so deliveries/s compare directly; bus messages/s is deliveries/s divided
# by the room size (each message crosses the bus once), checked against
# Redis's own count of PUBLISH commands.
#
# Installs redis-server and nats-server (Debian) when missing, and starts
# them on free ports of 127.0.0.1 in a temporary directory. On 2 cores the
# servers, the bus and the load generator share the CPUs: the figures say
# how the work splits, not how it scales. Raw output goes to
# benches/results/bus-<timestamp>/.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CLIENTS=32
ROUNDS=3
SECONDS_PER_RUN=10
SETUPS="one one+redis two-redis two-nats"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --clients) CLIENTS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
        --setups) SETUPS="$2"; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "bus.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
if (( CLIENTS % 2 )); then
    echo "bus.sh: --clients must be even (half on each server)" >&2
    exit 2
fi

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null ||
    { ! command -v nats-server >/dev/null && [[ ! -x /usr/sbin/nats-server ]]; }; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server nats-server >/dev/null
fi
NATS_SERVER="$(command -v nats-server || echo /usr/sbin/nats-server)"

RES="$ROOT/benches/results/bus-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RES"
cargo build --release --features redis,nats --example chat --quiet || exit 1
cargo build --release --manifest-path benches/loadgen/Cargo.toml --quiet || exit 1
LOADGEN="$ROOT/benches/loadgen/target/release/loadgen"
CHAT="$ROOT/target/release/examples/chat"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

TMP="$(mktemp -d)"
REDIS_PORT="$(free_port)"
NATS_PORT="$(free_port)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$TMP" --logfile "$TMP/redis.log" --daemonize no > /dev/null 2>&1 &
REDIS_PID=$!
"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" -l "$TMP/nats.log" > /dev/null 2>&1 &
NATS_PID=$!
REDIS="redis://127.0.0.1:$REDIS_PORT"
NATS="nats://127.0.0.1:$NATS_PORT"

server_pids=()
stop_servers() {
    for pid in "${server_pids[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    server_pids=()
}
cleanup() {
    stop_servers
    kill "$REDIS_PID" "$NATS_PID" 2>/dev/null
    wait "$REDIS_PID" "$NATS_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done

# start_server LOG CMD... : starts it, waits for "listening on", appends
# its port to PORTS.
start_server() {
    local log=$1 port=
    shift
    "$@" > "$log" 2>&1 &
    server_pids+=($!)
    for _ in $(seq 600); do
        port="$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$log" 2>/dev/null)"
        if [[ -n $port ]]; then
            PORTS="${PORTS:+$PORTS,}$port"
            return 0
        fi
        kill -0 "${server_pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "bus.sh: a server did not start, see $log" >&2
    return 1
}

field() { # field NAME "RESULT k=v ..." -> v
    tr ' ' '\n' <<< "$2" | sed -n "s/^$1=//p"
}

publishes() {
    redis-cli -p "$REDIS_PORT" info commandstats | sed -n 's/^cmdstat_publish:calls=\([0-9]*\),.*/\1/p'
}

busy_other() { # busy and idle CPU ticks of the machine, from /proc/stat
    awk '/^cpu / {print $2+$3+$4+$7+$8, $5+$6}' /proc/stat
}

cpu_ticks() { # user+system ticks of the given processes and their threads
    local total=0 pid
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat") ))
    done
    echo "$total"
}

half=$(( CLIENTS / 2 ))
read -r -a setups <<< "$SETUPS"
printf 'setup\tround\trate\tbus_rate\tredis_publish_rate\tcpu_busy\tservers_cpu\tbus_cpu\n' > "$RES/rates.tsv"
echo "load before: $(cat /proc/loadavg)" | tee "$RES/load.txt"
for round in $(seq "$ROUNDS"); do
    n=${#setups[@]}
    for i in $(seq 0 $(( n - 1 ))); do
        setup=${setups[$(( (i + round - 1) % n ))]}
        tag="$setup.r$round"
        PORTS=
        ok=1
        case "$setup" in
            one) start_server "$RES/$tag.s1.log" "$CHAT" --port 0 --clients "$CLIENTS" || ok=0 ;;
            one+redis) start_server "$RES/$tag.s1.log" "$CHAT" --port 0 --clients "$CLIENTS" --redis "$REDIS" || ok=0 ;;
            two-redis)
                start_server "$RES/$tag.s1.log" "$CHAT" --port 0 --clients "$half" --redis "$REDIS" || ok=0
                start_server "$RES/$tag.s2.log" "$CHAT" --port 0 --clients "$half" --redis "$REDIS" || ok=0 ;;
            two-nats)
                start_server "$RES/$tag.s1.log" "$CHAT" --port 0 --clients "$half" --nats "$NATS" || ok=0
                start_server "$RES/$tag.s2.log" "$CHAT" --port 0 --clients "$half" --nats "$NATS" || ok=0 ;;
            *) echo "bus.sh: unknown setup $setup" >&2; exit 2 ;;
        esac
        if [[ $ok == 0 ]]; then
            stop_servers
            continue
        fi
        # The bridges subscribe as the members join; give them a moment
        # to be on the bus before the first batch.
        sleep 1
        before="$(publishes)"
        read -r b0 i0 <<< "$(busy_other)"
        s0=$(cpu_ticks "${server_pids[@]}")
        r0=$(cpu_ticks "$REDIS_PID" "$NATS_PID")
        "$LOADGEN" chat --ports "$PORTS" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" --quiet \
            > "$RES/$tag.loadgen.txt" 2>&1
        read -r b1 i1 <<< "$(busy_other)"
        s1=$(cpu_ticks "${server_pids[@]}")
        r1=$(cpu_ticks "$REDIS_PID" "$NATS_PID")
        after="$(publishes)"
        stop_servers
        line="$(grep '^RESULT' "$RES/$tag.loadgen.txt")"
        rate="$(field rate "$line")"
        secs="$(field seconds "$line")"
        if [[ -z $rate ]]; then
            echo "round $round, $setup: failed (see $RES/$tag.loadgen.txt)"
            continue
        fi
        bus_rate=$(python3 -c "print(round($rate / $CLIENTS))")
        redis_rate=$(python3 -c "print(round((${after:-0} - ${before:-0}) / $secs))")
        cpu=$(python3 -c "print(round(100 * ($b1 - $b0) / (($b1 - $b0) + ($i1 - $i0))))")
        hz=$(getconf CLK_TCK)
        # CPU of the servers and of the bus, in % of one core.
        scpu=$(python3 -c "print(round(100 * ($s1 - $s0) / $hz / $secs))")
        rcpu=$(python3 -c "print(round(100 * ($r1 - $r0) / $hz / $secs))")
        echo "round $round, $setup: $rate deliveries/s, $bus_rate bus messages/s (Redis counted $redis_rate PUBLISH/s); CPU: machine ${cpu}% busy, servers ${scpu}%, bus ${rcpu}% of a core"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$setup" "$round" "$rate" "$bus_rate" "$redis_rate" "$cpu" "$scpu" "$rcpu" >> "$RES/rates.tsv"
    done
done

python3 - "$RES/rates.tsv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(r["setup"], []).append(r)
if not by:
    sys.exit("no results")
base = statistics.median(float(r["rate"]) for r in by.get("one", next(iter(by.values()))))
print(f"{'setup':<10} {'deliveries/s':>24} {'x one':>6} {'bus msg/s':>10} {'Redis PUBLISH/s':>16} {'servers CPU':>12} {'bus CPU':>8}")
for setup, rs in by.items():
    rates = [float(r["rate"]) for r in rs]
    m = statistics.median(rates)
    med = lambda k: statistics.median(float(r[k]) for r in rs)
    span = f"{m/1e6:.2f}M [{min(rates)/1e6:.2f}M-{max(rates)/1e6:.2f}M]"
    print(f"{setup:<10} {span:>24} {m/base:>6.2f} {med('bus_rate')/1e3:>9.0f}k "
          f"{med('redis_publish_rate')/1e3:>15.0f}k {med('servers_cpu'):>11.0f}% {med('bus_cpu'):>7.0f}%")
EOF
echo "load after: $(cat /proc/loadavg)" | tee -a "$RES/load.txt"
echo "raw results: $RES"
