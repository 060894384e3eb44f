#!/usr/bin/env bash
# benches/compare.sh: uws (our examples) vs the C++ reference on the same
# pinned uWebSockets vs Bun, on one load generator, in one sitting.
#
#   benches/compare.sh                # ~20 minutes: 3 rounds x 10 s per run
#   benches/compare.sh --quick        # ~5 minutes: 1 round x 3 s per run
#   benches/compare.sh --callgrind    # also user-space instructions/delivery
#   benches/compare.sh --callgrind-only
#
# Options:
#   --rounds R          interleaved rounds (default 3)
#   --seconds S         seconds per throughput run (default 10)
#   --idle-conns N      connections for the idle-memory run (default 10000)
#   --hold S            seconds the idle connections are held (default 3)
#   --servers "LIST"    subset of: ours ref bun ours-unpatched ref-unpatched
#                       (default "ours ref bun"; the -unpatched ones are built
#                       from upstream as pinned, without vendor/patches)
#   --workloads "LIST"  subset of: chat-16 chat-32 chat-64 echo http-1
#                       http-16 routes-static-1 routes-static-16
#                       routes-param-1 routes-param-16 idle (default all)
#   --echo-inflight K   messages in flight per echo client (default 128)
#   --no-syscalls       skip the system call counts over fixed work
#   --callgrind         after the timed runs, count instructions per delivery
#   --callgrind-only    skip the timed runs and the system call counts
#   --no-build          use the binaries already built
#   --quiet-max S       before each timed run wait up to S seconds (default
#                       60) for the machine to be idle (< 10% CPU busy);
#                       0 = do not wait
#
# Workloads: chat-N (Bun's chat benchmark with N clients, delivery latency
# included), echo, http-K (64 keep-alive connections, K requests pipelined
# on each, answered "Hello, World!"), routes-static-K and routes-param-K
# (the same load on Bun's `routes`: examples/routes.rs against
# benches/bun/routes.js, asking the static route /api/status and the param
# route /users/42), idle (memory per connection). With --callgrind, the
# routes workloads also count our instructions per request for the static
# route, the param route, and the same answer ("OK") from fetch (the echo
# example's --reply OK): the cost of a route against fetch.
#
# Every server is pinned to CPU 0 and the load generator to CPU 1. Servers
# are started with --port 0 and report "listening on HOST:PORT". Raw output
# goes to benches/results/<timestamp>/ (git-ignored); the last lines printed
# are a table of medians over rounds with [min-max] and the ratios.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ROUNDS=3
SECONDS_PER_RUN=10
IDLE_CONNS=10000
HOLD=3
SERVERS="ours ref bun"
CALLGRIND=0
TIMED=1
BUILD=1
CHAT_CLIENTS="16 32 64"
ECHO_CLIENTS=64
# 128 in flight: with 16 the load generator's core saturates first (it does
# as much kernel work per message as the server), which hides the servers'
# differences; see benches/README.md.
ECHO_INFLIGHT=128
ECHO_SIZE=32
CG_CLIENTS="16 32 64"
HTTP_CLIENTS=64
HTTP_PIPELINES="1 16"
SYSCALLS=1
WORKLOADS=""
BUN_VERSION="${BUN_VERSION:-1.4.5}"
QUIET_MAX=60

die() { echo "compare.sh: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
        --idle-conns) IDLE_CONNS="$2"; shift 2 ;;
        --hold) HOLD="$2"; shift 2 ;;
        --servers) SERVERS="$2"; shift 2 ;;
        --echo-inflight) ECHO_INFLIGHT="$2"; shift 2 ;;
        --quick) ROUNDS=1; SECONDS_PER_RUN=3; shift ;;
        --callgrind) CALLGRIND=1; shift ;;
        --callgrind-only) CALLGRIND=1; TIMED=0; SYSCALLS=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --quiet-max) QUIET_MAX="$2"; shift 2 ;;
        --workloads) WORKLOADS="$2"; shift 2 ;;
        --no-syscalls) SYSCALLS=0; shift ;;
        -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

command -v python3 >/dev/null || die "python3 is needed for the summary"
STAMP="$(date +%Y%m%d-%H%M%S)"
RES="$ROOT/benches/results/$STAMP"
mkdir -p "$RES"
RUNS="$RES/runs.tsv"
printf 'workload\tserver\tround\tmetric\tvalue\n' > "$RUNS"
LOADGEN="$ROOT/benches/loadgen/target/release/loadgen"
CLK_TCK="$(getconf CLK_TCK)"

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$RES/log.txt" >&2; }
# Is WORKLOAD among those to run (--workloads)?
run_wl() { [[ -z "$WORKLOADS" || " $WORKLOADS " == *" $1 "* ]]; }

# --- CPU pinning -------------------------------------------------------------
if command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
else
    log "warning: no taskset or fewer than 2 CPUs; running unpinned"
    PIN_SERVER=()
    PIN_LOAD=()
fi

# --- builds ------------------------------------------------------------------
# ours and ref are built from the patched tree (target/), ours-unpatched and
# ref-unpatched from upstream as pinned (UWS_UNPATCHED=1, target/unpatched/):
# the effect of vendor/patches, in the same sitting.
declare -A HAVE=() KINDS=()
BUN_PKG="@oven/bun-linux-x64"
grep -qw avx2 /proc/cpuinfo 2>/dev/null || BUN_PKG="@oven/bun-linux-x64-baseline"
BUN="$ROOT/benches/.tools/node_modules/$BUN_PKG/bin/bun"

want() { [[ " $SERVERS " == *" $1 "* ]]; }
# The target directory of a variant of ours or ref.
target_of() { if [[ "$1" == *-unpatched ]]; then echo "$ROOT/target/unpatched"; else echo "$ROOT/target"; fi; }
# Runs a build command for a variant (its target directory, unpatched or not).
build_env() {
    local variant="$1"
    shift
    if [[ "$variant" == *-unpatched ]]; then
        CARGO_TARGET_DIR="$(target_of "$variant")" UWS_UNPATCHED=1 "$@"
    else
        "$@"
    fi
}

if [[ $BUILD == 1 ]]; then
    log "building loadgen"
    cargo build --release --manifest-path benches/loadgen/Cargo.toml > "$RES/build-loadgen.log" 2>&1 ||
        die "loadgen build failed, see $RES/build-loadgen.log"
fi
for s in ref ref-unpatched; do
    want "$s" || continue
    dir="$(target_of "$s")/reference"
    if [[ $BUILD == 1 ]]; then
        log "building the C++ reference $s (${dir#"$ROOT/"})"
        build_env "$s" benches/reference/build.sh > "$RES/build-$s.log" 2>&1 ||
            log "SKIPPING $s: benches/reference/build.sh failed, see $RES/build-$s.log"
    fi
    KINDS[$s]=""
    for kind in chat echo http; do
        [[ -x "$dir/$kind" ]] && KINDS[$s]+=" $kind"
    done
    [[ -n "${KINDS[$s]}" ]] && HAVE[$s]=1
done
for s in ours ours-unpatched; do
    want "$s" || continue
    dir="$(target_of "$s")/release/examples"
    if [[ $BUILD == 1 ]]; then
        log "building our examples $s (cargo build --release --example chat --example echo --example routes)"
        # One by one, so that one that does not build does not hide the other.
        for kind in chat echo routes; do
            build_env "$s" cargo build --release --example "$kind" > "$RES/build-$s-$kind.log" 2>&1 ||
                log "SKIPPING $s for $kind: cargo build --release --example $kind failed, see $RES/build-$s-$kind.log"
        done
    fi
    KINDS[$s]=""
    for kind in chat echo routes; do
        [[ -x "$dir/$kind" ]] && KINDS[$s]+=" $kind"
    done
    # The HTTP endpoint is the echo example's --reply.
    [[ " ${KINDS[$s]} " == *" echo "* ]] && KINDS[$s]+=" http"
    [[ -n "${KINDS[$s]}" ]] && HAVE[$s]=1
done
if want bun; then
    if [[ $BUILD == 1 ]]; then
        log "Bun $BUN_VERSION (benches/bun/install.sh, into benches/.tools/)"
        benches/bun/install.sh "$BUN_VERSION" "$RES/install-bun.log" > /dev/null ||
            log "no Bun $BUN_VERSION, see $RES/install-bun.log"
    fi
    if [[ -x "$BUN" ]] && "$BUN" --version > "$RES/bun-version.txt" 2>&1; then
        HAVE[bun]=1
        KINDS[bun]="chat echo http routes"
    else
        log "SKIPPING bun: no runnable $BUN"
    fi
fi
[[ -x "$LOADGEN" ]] || die "no loadgen binary at $LOADGEN (drop --no-build)"

ACTIVE=()
for s in ours ref bun ours-unpatched ref-unpatched; do
    [[ -n "${HAVE[$s]:-}" ]] && ACTIVE+=("$s")
done
[[ ${#ACTIVE[@]} -gt 0 ]] || die "no server to benchmark"
log "servers: ${ACTIVE[*]}; results in $RES"
{
    echo "date: $(date -Is)"
    echo "host: $(uname -srm), $(nproc) CPUs"
    grep -m1 'model name' /proc/cpuinfo 2>/dev/null
    echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed files"
    [[ -n "${HAVE[bun]:-}" ]] && echo "bun: $("$BUN" --version 2>&1)"
    for s in "${ACTIVE[@]}"; do
        [[ -f "$(target_of "$s")/reference/upstream.txt" && "$s" == ref* ]] &&
            echo "$s: $(tr '\n' ' ' < "$(target_of "$s")/reference/upstream.txt")"
    done
    echo "rounds=$ROUNDS seconds=$SECONDS_PER_RUN idle_conns=$IDLE_CONNS hold=$HOLD"
} > "$RES/env.txt"

# The idle run needs a file descriptor per connection in both processes.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt $((IDLE_CONNS + 100)) ]]; then
    IDLE_CONNS=$(( $(ulimit -n) - 100 ))
    log "warning: open file limit $(ulimit -n); idle run lowered to $IDLE_CONNS connections"
fi

# --- server lifecycle --------------------------------------------------------
SRV_PID=""
SRV_PORT=""

# Does SERVER have a binary for KIND (chat/echo/http)?
has_kind() { [[ " ${KINDS[$1]:-} " == *" $2 "* ]]; }

# The small response of the HTTP workloads.
HTTP_REPLY="Hello, World!"

server_cmd() { # server kind -> prints nothing, fills CMD array
    local server="$1" kind="$2"
    case "$server" in
        ours*)
            if [[ $kind == http ]]; then
                CMD=("$(target_of "$server")/release/examples/echo" --reply "$HTTP_REPLY")
            else
                CMD=("$(target_of "$server")/release/examples/$kind")
            fi ;;
        ref*) CMD=("$(target_of "$server")/reference/$kind") ;;
        bun) CMD=("$BUN" "$ROOT/benches/bun/$kind.js") ;;
    esac
}

# start_server LOGFILE WAIT_SECONDS PREFIX... -- ARGS...
start_server() {
    local logf="$1" wait_s="$2"
    shift 2
    "$@" --port 0 > "$logf" 2>&1 &
    SRV_PID=$!
    SRV_PORT=""
    local deadline=$((SECONDS + wait_s))
    while [[ $SECONDS -le $deadline ]]; do
        SRV_PORT="$(sed -n 's/^listening on .*:\([0-9][0-9]*\)[[:space:]]*$/\1/p' "$logf" | head -1)"
        [[ -n "$SRV_PORT" ]] && return 0
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.05
    done
    log "server did not report 'listening on' (see $logf)"
    stop_server
    return 1
}

stop_server() {
    [[ -n "$SRV_PID" ]] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null
    local k
    for k in $(seq 100); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=""
}
trap 'stop_server' EXIT
trap 'stop_server; exit 130' INT TERM

# utime and stime ticks of a process (all threads), fields 14 and 15.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12, $13}'; }
# Machine-wide CPU ticks: "busy idle" (busy = user nice system steal; irq and
# softirq are left out, loopback networking of our own processes lands there).
stat_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $9, $5 + $6 + $7 + $8; exit}' /proc/stat; }

# Waits (up to QUIET_MAX s) until less than 10% of the machine is busy, so
# that other work (builds, tests) does not share the benchmark's CPUs.
wait_quiet() {
    [[ "$QUIET_MAX" -gt 0 ]] || return 0
    local deadline=$((SECONDS + QUIET_MAX)) b0 i0 b1 i1 pct said=0
    while :; do
        read -r b0 i0 < <(stat_ticks)
        sleep 1
        read -r b1 i1 < <(stat_ticks)
        pct=$(( (b1 - b0) * 100 / ((b1 - b0) + (i1 - i0) + 1) ))
        [[ $pct -lt 10 ]] && return 0
        if [[ $SECONDS -ge $deadline ]]; then
            log "  warning: machine still ${pct}% busy after ${QUIET_MAX}s; measuring anyway (see 'other')"
            return 0
        fi
        [[ $said == 1 ]] || log "  waiting for a quiet machine (${pct}% of all CPUs busy)"
        said=1
    done
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $2" | head -1; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RUNS"; }
# What a RESULT line of KIND counts: deliveries (chat), requests (http) or
# messages (echo).
units() {
    case $1 in
        chat) field deliveries "$2" ;;
        http|routes) field requests "$2" ;;
        *) field messages "$2" ;;
    esac
}

# run_throughput WORKLOAD SERVER ROUND KIND SERVER_ARGS -- LOADGEN_ARGS
run_throughput() {
    local wl="$1" server="$2" round="$3" kind="$4"
    shift 4
    local sargs=()
    while [[ "$1" != -- ]]; do sargs+=("$1"); shift; done
    shift
    local tag="$wl.$server.r$round"
    has_kind "$server" "$kind" || return 0
    server_cmd "$server" "$kind"
    start_server "$RES/$tag.server.log" 15 "${PIN_SERVER[@]}" "${CMD[@]}" "${sargs[@]}" || {
        log "  $tag: server failed to start"; return 1; }
    local u0 s0 u1 s1 mb0 mi0 mb1 mi1
    wait_quiet
    read -r mb0 mi0 < <(stat_ticks)
    read -r u0 s0 < <(cpu_ticks "$SRV_PID")
    timeout $((SECONDS_PER_RUN + 90)) "${PIN_LOAD[@]}" "$LOADGEN" "$@" --port "$SRV_PORT" \
        --seconds "$SECONDS_PER_RUN" --quiet > "$RES/$tag.loadgen.txt" 2>&1
    local rc=$?
    read -r u1 s1 < <(cpu_ticks "$SRV_PID" 2>/dev/null || echo "$u0 $s0")
    read -r mb1 mi1 < <(stat_ticks)
    stop_server
    local line
    line="$(grep '^RESULT' "$RES/$tag.loadgen.txt")"
    if [[ $rc != 0 || -z "$line" ]]; then
        log "  $tag: loadgen failed (rc=$rc), see $RES/$tag.loadgen.txt"
        return 1
    fi
    local count secs med lgcpu lgsec
    count="$(units "$kind" "$line")"
    secs="$(field seconds "$line")"
    med="$(field rate_median "$line")"
    lgcpu="$(field loadgen_cpu_frac "$line")"
    lgsec="$(field loadgen_cpu_s "$line")"
    local du=$((u1 - u0)) ds=$((s1 - s0))
    record "$wl" "$server" "$round" rate "$med"
    local q
    for q in p50 p99 max; do
        [[ -n "$(field "lat_${q}_us" "$line")" ]] && record "$wl" "$server" "$round" "lat_$q" "$(field "lat_${q}_us" "$line")"
    done
    python3 - "$wl" "$server" "$round" "$count" "$secs" "$du" "$ds" "$CLK_TCK" "$lgcpu" \
        "$lgsec" "$((mb1 - mb0))" "$((mi1 - mi0))" "$(nproc)" >> "$RUNS" <<'EOF'
import sys
wl, server, rnd, count, secs, du, ds, tck, lg, lgsec, mbusy, midle, ncpu = sys.argv[1:]
count, secs, du, ds, tck = int(count), float(secs), int(du), int(ds), int(tck)
mbusy, midle, ncpu = int(mbusy), int(midle), int(ncpu)
# CPU used by anything but the server and the loadgen while the run lasted,
# in % of one CPU (a few % is normal; more means the numbers are disturbed).
wall = (mbusy + midle) / ncpu
if wall > 0:
    other = (mbusy - du - ds - float(lgsec) * tck) / wall * 100
    print(f"{wl}\t{server}\t{rnd}\tother\t{max(other, 0):.0f}")
if count > 0:
    print(f"{wl}\t{server}\t{rnd}\tcpu_ns\t{(du + ds) / tck / count * 1e9:.1f}")
    print(f"{wl}\t{server}\t{rnd}\tuser_ns\t{du / tck / count * 1e9:.1f}")
    print(f"{wl}\t{server}\t{rnd}\tsys_ns\t{ds / tck / count * 1e9:.1f}")
print(f"{wl}\t{server}\t{rnd}\tbusy\t{(du + ds) / tck / secs * 100:.0f}")
print(f"{wl}\t{server}\t{rnd}\tloadgen\t{float(lg) * 100:.0f}")
EOF
    log "  $tag: median $med/s, server cpu $(( (du + ds) * 1000 / CLK_TCK )) ms (user $(( du * 1000 / CLK_TCK )) ms), loadgen cpu ${lgcpu}"
}

run_idle() {
    local server="$1" round="$2"
    local tag="idle.$server.r$round"
    has_kind "$server" echo || return 0
    server_cmd "$server" echo
    start_server "$RES/$tag.server.log" 15 "${PIN_SERVER[@]}" "${CMD[@]}" || {
        log "  $tag: server failed to start"; return 1; }
    sleep 0.5
    local before after
    before="$(rss_kb "$SRV_PID")"
    "${PIN_LOAD[@]}" "$LOADGEN" idle --port "$SRV_PORT" --clients "$IDLE_CONNS" --hold "$((HOLD + 2))" \
        > "$RES/$tag.loadgen.txt" 2>&1 &
    local lpid=$! k ok=0
    for k in $(seq 600); do
        if grep -q '^HOLDING' "$RES/$tag.loadgen.txt"; then ok=1; break; fi
        kill -0 "$lpid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ $ok == 1 ]]; then
        sleep 1
        after="$(rss_kb "$SRV_PID")"
    fi
    wait "$lpid"
    local rc=$?
    stop_server
    if [[ $ok != 1 || $rc != 0 ]]; then
        log "  $tag: idle run failed (rc=$rc), see $RES/$tag.loadgen.txt"
        return 1
    fi
    local per=$(( (after - before) * 1024 / IDLE_CONNS ))
    record idle "$server" "$round" bytes_per_conn "$per"
    record idle "$server" "$round" rss_before_kb "$before"
    record idle "$server" "$round" rss_after_kb "$after"
    log "  $tag: RSS ${before} kB -> ${after} kB, $per bytes/connection"
}

# --- timed runs --------------------------------------------------------------
if [[ $TIMED == 1 ]]; then
    for round in $(seq "$ROUNDS"); do
        # Rotate the server order every round so none always goes first.
        order=()
        n=${#ACTIVE[@]}
        for i in $(seq 0 $((n - 1))); do order+=("${ACTIVE[$(( (i + round - 1) % n ))]}"); done
        log "round $round of $ROUNDS (order: ${order[*]})"
        for c in $CHAT_CLIENTS; do
            run_wl "chat-$c" || continue
            for s in "${order[@]}"; do
                run_throughput "chat-$c" "$s" "$round" chat --clients "$c" -- chat --clients "$c"
            done
        done
        for s in "${order[@]}"; do
            run_wl echo || break
            run_throughput echo "$s" "$round" echo -- echo --clients "$ECHO_CLIENTS" \
                --inflight "$ECHO_INFLIGHT" --size "$ECHO_SIZE"
        done
        for k in $HTTP_PIPELINES; do
            run_wl "http-$k" || continue
            for s in "${order[@]}"; do
                run_throughput "http-$k" "$s" "$round" http -- http --clients "$HTTP_CLIENTS" --pipeline "$k"
            done
        done
        for route in static:/api/status param:/users/42; do
            for k in $HTTP_PIPELINES; do
                run_wl "routes-${route%%:*}-$k" || continue
                for s in "${order[@]}"; do
                    run_throughput "routes-${route%%:*}-$k" "$s" "$round" routes -- http \
                        --clients "$HTTP_CLIENTS" --pipeline "$k" --path "${route#*:}"
                done
            done
        done
        for s in "${order[@]}"; do
            run_wl idle || break
            run_idle "$s" "$round"
        done
    done
fi

# --- system calls per delivery (fixed work) -----------------------------------
# Every server once per workload over a fixed amount of work, its system
# calls counted by the kernel's syscall tracepoints under `perf stat` (no
# ptrace, so the server runs at speed and batches as it does in the timed
# runs), or else by `strace -c -f` (which slows every call down). Per 1000
# deliveries (chat), messages (echo) or requests (http): sends (sendto,
# sendmsg, sendmmsg, write, writev), polls (epoll_wait/pwait/pwait2) and all.
SC_EVENTS="raw_syscalls:sys_enter"
for e in sendto sendmsg sendmmsg write writev epoll_wait epoll_pwait epoll_pwait2; do
    SC_EVENTS+=",syscalls:sys_enter_$e"
done
if [[ $SYSCALLS == 1 ]]; then
    if command -v perf >/dev/null && perf stat -x, -e "$SC_EVENTS" -o /dev/null true 2>/dev/null; then
        SC_TOOL=perf
    elif command -v strace >/dev/null; then
        SC_TOOL=strace
    else
        SC_TOOL=""
        log "SKIPPING system call counts: neither perf (with syscall tracepoints) nor strace works"
    fi
fi

# run_syscalls WORKLOAD SERVER KIND SERVER_ARGS -- LOADGEN_ARGS
run_syscalls() {
    local wl="$1" server="$2" kind="$3"
    shift 3
    local sargs=()
    while [[ "$1" != -- ]]; do sargs+=("$1"); shift; done
    shift
    local tag="syscalls.$wl.$server"
    has_kind "$server" "$kind" || return 0
    server_cmd "$server" "$kind"
    start_server "$RES/$tag.server.log" 15 "${PIN_SERVER[@]}" "${CMD[@]}" "${sargs[@]}" || return 1
    local counter
    if [[ $SC_TOOL == perf ]]; then
        perf stat -x, -e "$SC_EVENTS" -p "$SRV_PID" -o "$RES/$tag.counts" 2> "$RES/$tag.perf.log" &
    else
        strace -c -f -p "$SRV_PID" -o "$RES/$tag.counts" 2> "$RES/$tag.strace.log" &
    fi
    counter=$!
    sleep 1
    timeout 900 "${PIN_LOAD[@]}" "$LOADGEN" "$@" --port "$SRV_PORT" --quiet > "$RES/$tag.loadgen.txt" 2>&1
    local rc=$?
    kill -INT "$counter" 2>/dev/null
    wait "$counter" 2>/dev/null
    stop_server
    local line count
    line="$(grep '^RESULT' "$RES/$tag.loadgen.txt")"
    count="$(units "$kind" "$line")"
    if [[ $rc != 0 || -z "$count" ]]; then
        log "  $tag: failed (rc=$rc), see $RES/$tag.*"
        return 1
    fi
    python3 - "$wl" "$server" "$count" "$SC_TOOL" "$RES/$tag.counts" >> "$RUNS" <<'PY'
import re, sys
wl, server, count, tool, path = sys.argv[1:]
calls = {}
for line in open(path):
    if tool == "perf":
        f = line.strip().split(",")
        if len(f) > 2 and f[0].isdigit():
            calls[f[2].split(":")[-1].replace("sys_enter_", "")] = int(f[0])
    else:
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
        if m:
            calls[m.group(2)] = int(m.group(1))
if tool == "perf":
    total = calls.get("sys_enter", 0)
else:
    total = sum(calls.values())
sends = sum(calls.get(k, 0) for k in ("sendto", "sendmsg", "sendmmsg", "write", "writev"))
polls = sum(calls.get(k, 0) for k in ("epoll_wait", "epoll_pwait", "epoll_pwait2"))
per = 1000 / int(count)
for metric, v in (("sends_1k", sends), ("polls_1k", polls), ("syscalls_1k", total)):
    print(f"{wl}\t{server}\t1\t{metric}\t{v * per:.4g}")
PY
    log "  $tag: $(grep -E "^$wl"$'\t'"$server"$'\t1\t(sends|syscalls)_1k' "$RUNS" | cut -f4,5 | tr '\t\n' '= ') per 1000"
}

if [[ $SYSCALLS == 1 && -n "${SC_TOOL:-}" ]]; then
    log "system calls over fixed work ($SC_TOOL)"
    for c in $CHAT_CLIENTS; do
        run_wl "chat-$c" || continue
        # About 8 million deliveries each.
        b=$(( (8000000 + c * c * 1600 - 1) / (c * c * 1600) ))
        for s in "${ACTIVE[@]}"; do
            run_syscalls "chat-$c" "$s" chat --clients "$c" -- chat --clients "$c" --batches "$b" --seconds 600
        done
    done
    for s in "${ACTIVE[@]}"; do
        run_wl echo || break
        run_syscalls echo "$s" echo -- echo --clients "$ECHO_CLIENTS" --inflight "$ECHO_INFLIGHT" \
            --size "$ECHO_SIZE" --messages 2000000 --seconds 600
    done
    for k in $HTTP_PIPELINES; do
        run_wl "http-$k" || continue
        for s in "${ACTIVE[@]}"; do
            run_syscalls "http-$k" "$s" http -- http --clients "$HTTP_CLIENTS" --pipeline "$k" \
                --messages $((k == 1 ? 200000 : 2000000)) --seconds 600
        done
    done
fi

# --- instructions per delivery (callgrind) -----------------------------------
# Ir(3 batches) - Ir(1 batch) over the extra deliveries: start-up, connection
# set-up and shutdown cancel out. User-space instructions only.
if [[ $CALLGRIND == 1 ]]; then
    if ! command -v valgrind >/dev/null; then
        log "SKIPPING callgrind: valgrind not found"
    else
        for s in "${ACTIVE[@]}"; do
            has_kind "$s" chat || continue
            for c in $CG_CLIENTS; do
                declare -A IR=() DEL=()
                for b in 1 3; do
                    tag="callgrind.chat-$c.$s.b$b"
                    server_cmd "$s" chat
                    if ! start_server "$RES/$tag.server.log" 180 "${PIN_SERVER[@]}" valgrind --tool=callgrind \
                        --callgrind-out-file="$RES/$tag.out" "${CMD[@]}" --clients "$c"; then
                        continue
                    fi
                    timeout 900 "${PIN_LOAD[@]}" "$LOADGEN" chat --port "$SRV_PORT" --clients "$c" --batches "$b" \
                        --seconds 800 --connect-timeout 300 --quiet > "$RES/$tag.loadgen.txt" 2>&1
                    rc=$?
                    stop_server
                    line="$(grep '^RESULT' "$RES/$tag.loadgen.txt")"
                    ir="$(awk '/^(summary|totals):/ {print $2; exit}' "$RES/$tag.out" 2>/dev/null)"
                    if [[ $rc != 0 || -z "$line" || -z "$ir" ]]; then
                        log "  $tag: failed (rc=$rc), see $RES/$tag.*"
                        continue
                    fi
                    IR[$b]="$ir"
                    DEL[$b]="$(field deliveries "$line")"
                    log "  $tag: Ir=$ir deliveries=${DEL[$b]}"
                done
                if [[ -n "${IR[1]:-}" && -n "${IR[3]:-}" ]]; then
                    per="$(python3 - "${IR[1]}" "${IR[3]}" "${DEL[1]}" "${DEL[3]}" <<'EOF'
import sys
i1, i3, d1, d3 = map(int, sys.argv[1:])
print(f"{(i3 - i1) / (d3 - d1):.1f}")
EOF
)"
                    record "chat-$c" "$s" 1 instr "$per"
                    log "  chat-$c $s: $per instructions/delivery"
                fi
                unset IR DEL
            done
        done
        # Echo: (Ir(60k messages) - Ir(20k)) / 40k, 16 clients x 16 in flight x 32 B.
        for s in "${ACTIVE[@]}"; do
            has_kind "$s" echo || continue
            declare -A IR=() MSG=()
            for m in 20000 60000; do
                tag="callgrind.echo.$s.m$m"
                server_cmd "$s" echo
                if ! start_server "$RES/$tag.server.log" 180 "${PIN_SERVER[@]}" valgrind --tool=callgrind \
                    --callgrind-out-file="$RES/$tag.out" "${CMD[@]}"; then
                    continue
                fi
                timeout 900 "${PIN_LOAD[@]}" "$LOADGEN" echo --port "$SRV_PORT" --clients 16 --inflight 16 \
                    --size 32 --messages "$m" --seconds 800 > "$RES/$tag.loadgen.txt" 2>&1
                rc=$?
                stop_server
                line="$(grep '^RESULT' "$RES/$tag.loadgen.txt")"
                ir="$(awk '/^(summary|totals):/ {print $2; exit}' "$RES/$tag.out" 2>/dev/null)"
                if [[ $rc != 0 || -z "$line" || -z "$ir" ]]; then
                    log "  $tag: failed (rc=$rc), see $RES/$tag.*"
                    continue
                fi
                IR[$m]="$ir"
                MSG[$m]="$(field messages "$line")"
                log "  $tag: Ir=$ir messages=${MSG[$m]}"
            done
            if [[ -n "${IR[20000]:-}" && -n "${IR[60000]:-}" ]]; then
                per="$(python3 -c "import sys; a,b,c,d=map(int,sys.argv[1:]); print(f'{(b-a)/(d-c):.1f}')" \
                    "${IR[20000]}" "${IR[60000]}" "${MSG[20000]}" "${MSG[60000]}")"
                record echo "$s" 1 instr "$per"
                log "  echo $s: $per instructions/message"
            fi
            unset IR MSG
        done
    fi
fi

# Routes: (Ir(60k requests) - Ir(20k)) / 40k, 16 connections, 1 in flight,
# for the static route, the param route, and the same "OK" from fetch.
if [[ $CALLGRIND == 1 ]] && command -v valgrind >/dev/null && has_kind ours routes &&
    { run_wl routes-static-1 || run_wl routes-param-1; }; then
    dir="$(target_of ours)/release/examples"
    for target in "routes-static:$dir/routes:/api/status" "routes-param:$dir/routes:/users/42" \
        "fetch-same-answer:$dir/echo --reply OK:/"; do
        name="${target%%:*}"
        rest="${target#*:}"
        cmd="${rest%%:*}"
        path="${rest#*:}"
        declare -A IR=() REQ=()
        for m in 20000 60000; do
            tag="callgrind.$name.ours.m$m"
            # shellcheck disable=SC2086
            if ! start_server "$RES/$tag.server.log" 180 "${PIN_SERVER[@]}" valgrind --tool=callgrind \
                --callgrind-out-file="$RES/$tag.out" $cmd; then
                continue
            fi
            timeout 900 "${PIN_LOAD[@]}" "$LOADGEN" http --port "$SRV_PORT" --clients 16 --pipeline 1 \
                --path "$path" --messages "$m" --seconds 800 --quiet > "$RES/$tag.loadgen.txt" 2>&1
            rc=$?
            stop_server
            line="$(grep '^RESULT' "$RES/$tag.loadgen.txt")"
            ir="$(awk '/^(summary|totals):/ {print $2; exit}' "$RES/$tag.out" 2>/dev/null)"
            if [[ $rc != 0 || -z "$line" || -z "$ir" ]]; then
                log "  $tag: failed (rc=$rc), see $RES/$tag.*"
                continue
            fi
            IR[$m]="$ir"
            REQ[$m]="$(field requests "$line")"
            log "  $tag: Ir=$ir requests=${REQ[$m]}"
        done
        if [[ -n "${IR[20000]:-}" && -n "${IR[60000]:-}" ]]; then
            per="$(python3 -c "import sys; a,b,c,d=map(int,sys.argv[1:]); print(f'{(b-a)/(d-c):.1f}')" \
                "${IR[20000]}" "${IR[60000]}" "${REQ[20000]}" "${REQ[60000]}")"
            record "cg-$name" ours 1 instr "$per"
            log "  $name ours: $per instructions/request"
        fi
        unset IR REQ
    done
fi

# --- summary -------------------------------------------------------------------
python3 - "$RUNS" "${ACTIVE[*]}" > "$RES/summary.txt" <<'EOF'
import sys
from collections import defaultdict

runs_path, active = sys.argv[1], sys.argv[2].split()
vals = defaultdict(list)
with open(runs_path) as f:
    next(f)
    for line in f:
        wl, server, _rnd, metric, value = line.rstrip("\n").split("\t")
        vals[(wl, metric, server)].append(float(value))

def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2

def human(x):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"

ROWS = [
    ("rate", "msgs/s (median of per-second rates), higher is better"),
    ("lat_p50", "chat delivery latency, median, us (send call to recv at each member), lower is better"),
    ("lat_p99", "chat delivery latency, 99th percentile, us, lower is better"),
    ("lat_max", "chat delivery latency, largest, us"),
    ("cpu_ns", "server CPU ns per msg (user+sys), lower is better"),
    ("user_ns", "server user-space ns per msg, lower is better"),
    ("sys_ns", "server kernel ns per msg, lower is better"),
    ("sends_1k", "sendto/sendmsg/write/writev calls per 1000 msgs (fixed work), lower is better"),
    ("polls_1k", "epoll_wait calls per 1000 msgs (fixed work)"),
    ("syscalls_1k", "system calls per 1000 msgs (fixed work), lower is better"),
    ("instr", "user-space instructions per msg (callgrind), lower is better"),
    ("busy", "server CPU busy % during the run"),
    ("loadgen", "loadgen CPU % (its own core)"),
    ("other", "CPU % (of one CPU) used by other processes during the run; >10 = disturbed"),
    ("bytes_per_conn", "server RSS bytes per idle connection, lower is better"),
]
names = {"ours": "uws (ours)", "ref": "C++ reference", "bun": "Bun",
         "ours-unpatched": "ours unpatched", "ref-unpatched": "ref unpatched"}
workloads = []
for (wl, _m, _s) in vals:
    if wl not in workloads:
        workloads.append(wl)
order = {"chat-16": 0, "chat-32": 1, "chat-64": 2, "echo": 3, "http-1": 4, "http-16": 5,
         "routes-static-1": 6, "routes-static-16": 7, "routes-param-1": 8, "routes-param-16": 9,
         "cg-routes-static": 10, "cg-routes-param": 11, "cg-fetch-same-answer": 12, "idle": 13}
workloads.sort(key=lambda w: (order.get(w, 9), w))

pairs = [(a, b) for a, b in (("ours", "ref"), ("ours", "bun"), ("ref", "bun"),
                              ("ours", "ours-unpatched"), ("ref", "ref-unpatched"))
         if a in active and b in active]
short = {"ours-unpatched": "ours0", "ref-unpatched": "ref0"}
header = f"{'workload':<9} {'metric':<11}" + "".join(f" {names[s]:>24}" for s in active) + "".join(f" {a + '/' + short.get(b, b):>9}" for a, b in pairs)
print(header)
print("-" * len(header))
for wl in workloads:
    for metric, _desc in ROWS:
        if not any((wl, metric, s) in vals for s in active):
            continue
        cells, meds = [], {}
        for s in active:
            v = vals.get((wl, metric, s))
            if not v:
                cells.append(f" {'-':>24}")
                continue
            m = median(v)
            meds[s] = m
            cell = human(m) if len(v) == 1 else f"{human(m)} [{human(min(v))}-{human(max(v))}]"
            cells.append(f" {cell:>24}")
        ratios = []
        for a, b in pairs:
            if a in meds and b in meds and meds[b] and metric not in ("busy", "loadgen", "other"):
                ratios.append(f" {meds[a] / meds[b]:>9.2f}")
            else:
                ratios.append(f" {'':>9}")
        print(f"{wl:<9} {metric:<11}" + "".join(cells) + "".join(ratios))
disturbed = sum(1 for (wl, m, s), v in vals.items() if m == "other" for x in v if x > 10)
total = sum(len(v) for (wl, m, s), v in vals.items() if m == "other")
if disturbed:
    print()
    print(f"WARNING: {disturbed} of {total} timed runs shared the CPUs with other work (other > 10%);")
    print("         their rates are not trustworthy (cpu_ns/user_ns/instr are less affected).")
print()
print("metrics:")
for metric, desc in ROWS:
    print(f"  {metric:<15} {desc}")
print("  [min-max] over rounds; ratios are of medians (a/b).")
print("  chat-N: N clients, 1600 msgs per client per batch, every msg delivered to all N;")
print("  echo: clients x in-flight x size as configured; idle: RSS growth over the connections;")
print("  http-K: 64 keep-alive connections, K requests in flight on each (pipelined when K > 1);")
print("  ours0/ref0: built from upstream as pinned, without vendor/patches.")
EOF
echo
cat "$RES/env.txt"
echo
cat "$RES/summary.txt"
echo
echo "raw results: $RES"
