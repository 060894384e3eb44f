#!/usr/bin/env bash
# benches/compare.sh: uws (our examples) vs the C++ reference on the same
# pinned uWebSockets vs Bun, on one load generator, in one sitting.
#
#   benches/compare.sh                # ~10 minutes: 3 rounds x 10 s per run
#   benches/compare.sh --quick        # ~2 minutes: 1 round x 3 s per run
#   benches/compare.sh --callgrind    # also user-space instructions/delivery
#   benches/compare.sh --callgrind-only
#
# Options:
#   --rounds R          interleaved rounds (default 3)
#   --seconds S         seconds per throughput run (default 10)
#   --idle-conns N      connections for the idle-memory run (default 10000)
#   --hold S            seconds the idle connections are held (default 3)
#   --servers "LIST"    subset of: ours ref bun (default all three)
#   --echo-inflight K   messages in flight per echo client (default 128)
#   --callgrind         after the timed runs, count instructions per delivery
#   --callgrind-only    skip the timed runs
#   --no-build          use the binaries already built
#   --quiet-max S       before each timed run wait up to S seconds (default
#                       60) for the machine to be idle (< 10% CPU busy);
#                       0 = do not wait
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
CHAT_CLIENTS="16 32"
ECHO_CLIENTS=64
# 128 in flight: with 16 the load generator's core saturates first (it does
# as much kernel work per message as the server), which hides the servers'
# differences; see benches/README.md.
ECHO_INFLIGHT=128
ECHO_SIZE=32
CG_CLIENTS="16 32"
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
        --callgrind-only) CALLGRIND=1; TIMED=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --quiet-max) QUIET_MAX="$2"; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
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
HAVE_OURS=0
OURS_KINDS=""
HAVE_REF=0
HAVE_BUN=0
BUN_PKG="@oven/bun-linux-x64"
grep -qw avx2 /proc/cpuinfo 2>/dev/null || BUN_PKG="@oven/bun-linux-x64-baseline"
TOOLS="$ROOT/benches/.tools"
BUN="$TOOLS/node_modules/$BUN_PKG/bin/bun"

want() { [[ " $SERVERS " == *" $1 "* ]]; }

if [[ $BUILD == 1 ]]; then
    log "building loadgen"
    cargo build --release --manifest-path benches/loadgen/Cargo.toml > "$RES/build-loadgen.log" 2>&1 ||
        die "loadgen build failed, see $RES/build-loadgen.log"
    if want ref; then
        log "building C++ reference (target/reference/)"
        if benches/reference/build.sh > "$RES/build-reference.log" 2>&1; then
            HAVE_REF=1
        else
            log "SKIPPING ref: benches/reference/build.sh failed, see $RES/build-reference.log"
        fi
    fi
    if want ours; then
        log "building our examples (cargo build --release --example chat --example echo)"
        if cargo build --release --example chat --example echo > "$RES/build-ours.log" 2>&1; then
            OURS_KINDS="chat echo"
        else
            # Build them one by one so one missing example does not hide the other.
            OURS_KINDS=""
            for kind in chat echo; do
                if cargo build --release --example "$kind" > "$RES/build-ours-$kind.log" 2>&1; then
                    OURS_KINDS+=" $kind"
                else
                    log "SKIPPING ours for $kind: cargo build --release --example $kind failed, see $RES/build-ours-$kind.log"
                fi
            done
        fi
        [[ -n "$OURS_KINDS" ]] && HAVE_OURS=1
    fi
    if want bun; then
        log "Bun $BUN_VERSION (benches/bun/install.sh, into benches/.tools/)"
        benches/bun/install.sh "$BUN_VERSION" "$RES/install-bun.log" > /dev/null
        if [[ -x "$BUN" ]] && "$BUN" --version > "$RES/bun-version.txt" 2>&1; then
            HAVE_BUN=1
        else
            log "SKIPPING bun: no runnable $BUN"
        fi
    fi
else
    [[ -x "$LOADGEN" ]] || die "no $LOADGEN (drop --no-build)"
    want ref && [[ -x target/reference/chat && -x target/reference/echo ]] && HAVE_REF=1
    if want ours; then
        OURS_KINDS=""
        for kind in chat echo; do
            [[ -x target/release/examples/$kind ]] && OURS_KINDS+=" $kind"
        done
        [[ -n "$OURS_KINDS" ]] && HAVE_OURS=1
    fi
    want bun && [[ -x "$BUN" ]] && HAVE_BUN=1
fi
[[ -x "$LOADGEN" ]] || die "no loadgen binary at $LOADGEN"

ACTIVE=()
[[ $HAVE_OURS == 1 ]] && ACTIVE+=(ours)
[[ $HAVE_REF == 1 ]] && ACTIVE+=(ref)
[[ $HAVE_BUN == 1 ]] && ACTIVE+=(bun)
[[ ${#ACTIVE[@]} -gt 0 ]] || die "no server to benchmark"
log "servers: ${ACTIVE[*]}${OURS_KINDS:+ (ours:$OURS_KINDS)}; results in $RES"
{
    echo "date: $(date -Is)"
    echo "host: $(uname -srm), $(nproc) CPUs"
    grep -m1 'model name' /proc/cpuinfo 2>/dev/null
    echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed files"
    [[ $HAVE_BUN == 1 ]] && echo "bun: $("$BUN" --version 2>&1)"
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

# Does SERVER have a binary for KIND (chat/echo)? Only ours can lack one.
has_kind() { [[ "$1" != ours || " $OURS_KINDS " == *" $2 "* ]]; }

server_cmd() { # server kind -> prints nothing, fills CMD array
    local server="$1" kind="$2"
    case "$server" in
        ours) CMD=("$ROOT/target/release/examples/$kind") ;;
        ref) CMD=("$ROOT/target/reference/$kind") ;;
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
    if [[ $kind == chat ]]; then count="$(field deliveries "$line")"; else count="$(field messages "$line")"; fi
    secs="$(field seconds "$line")"
    med="$(field rate_median "$line")"
    lgcpu="$(field loadgen_cpu_frac "$line")"
    lgsec="$(field loadgen_cpu_s "$line")"
    local du=$((u1 - u0)) ds=$((s1 - s0))
    record "$wl" "$server" "$round" rate "$med"
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
            for s in "${order[@]}"; do
                run_throughput "chat-$c" "$s" "$round" chat --clients "$c" -- chat --clients "$c"
            done
        done
        for s in "${order[@]}"; do
            run_throughput echo "$s" "$round" echo -- echo --clients "$ECHO_CLIENTS" \
                --inflight "$ECHO_INFLIGHT" --size "$ECHO_SIZE"
        done
        for s in "${order[@]}"; do
            run_idle "$s" "$round"
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
    ("cpu_ns", "server CPU ns per msg (user+sys), lower is better"),
    ("user_ns", "server user-space ns per msg, lower is better"),
    ("instr", "user-space instructions per msg (callgrind), lower is better"),
    ("busy", "server CPU busy % during the run"),
    ("loadgen", "loadgen CPU % (its own core)"),
    ("other", "CPU % (of one CPU) used by other processes during the run; >10 = disturbed"),
    ("bytes_per_conn", "server RSS bytes per idle connection, lower is better"),
]
names = {"ours": "uws (ours)", "ref": "C++ reference", "bun": "Bun"}
workloads = []
for (wl, _m, _s) in vals:
    if wl not in workloads:
        workloads.append(wl)
order = {"chat-16": 0, "chat-32": 1, "echo": 2, "idle": 3}
workloads.sort(key=lambda w: (order.get(w, 9), w))

pairs = [(a, b) for a, b in (("ours", "ref"), ("ours", "bun"), ("ref", "bun")) if a in active and b in active]
header = f"{'workload':<9} {'metric':<9}" + "".join(f" {names[s]:>24}" for s in active) + "".join(f" {a + '/' + b:>9}" for a, b in pairs)
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
        print(f"{wl:<9} {metric:<9}" + "".join(cells) + "".join(ratios))
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
print("  echo: clients x in-flight x size as configured; idle: RSS growth over the connections.")
EOF
echo
cat "$RES/env.txt"
echo
cat "$RES/summary.txt"
echo
echo "raw results: $RES"
