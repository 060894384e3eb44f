#!/usr/bin/env bash
# Autobahn|Testsuite conformance run against the echo example, or (with
# --client) of our client against the suite's fuzzing server.
#
#   tests/autobahn/run.sh [--client] [extra kosoku arguments, e.g. -i '5.*']
#
# --client: starts `kosoku -m fuzzingserver` on a free port and runs
# `examples/autobahn_client` (the standard client driver, echoing every
# case) against it; reports go to target/autobahn-client/.
#
# Makes a virtualenv in tests/autobahn/.venv with the `kosoku` runner (a
# Python 3 runner of the Autobahn|Testsuite cases), builds and starts
# `examples/echo` on 127.0.0.1 with a free port, runs case groups 1-7, 9 and
# 10, prints the verdict counts and every case that is not plainly OK with
# its reason, and exits non-zero when any case is neither OK nor
# INFORMATIONAL (NON-STRICT counts as a failure), or the server died.
# The server is always stopped. Reports (JSON + HTML) go to target/autobahn/.
#
# Environment:
#   AUTOBAHN_DEFLATE=1    also the permessage-deflate groups 12 and 13,
#                         against `echo --compress` (about 15 minutes on
#                         two cores)
#   AUTOBAHN_OUT          report folder (default target/autobahn)
#   AUTOBAHN_PARALLEL     cases run at once (default 8; with
#                         AUTOBAHN_DEFLATE=1 the number of cores)
#   AUTOBAHN_TIMEOUT      seconds for the whole suite (default 600, 3000
#                         with AUTOBAHN_DEFLATE=1)
#   AUTOBAHN_SERVER_ARGS  extra flags for the echo server (e.g.
#                         "--max-payload 1000" to watch the script fail)
set -euo pipefail

mode=server
if [[ ${1:-} == --client ]]; then
    mode=client
    shift
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$here/.venv"
out=${AUTOBAHN_OUT:-$root/target/autobahn}
[[ $mode == client ]] && out=${AUTOBAHN_OUT:-$root/target/autobahn-client}
parallel=${AUTOBAHN_PARALLEL:-8}
kosoku_version=0.1.0
if [[ ${AUTOBAHN_DEFLATE:-0} == 1 ]]; then
    groups="1-7, 9, 10, 12, 13"
    # Group 12 is CPU-bound and the runner gives a case 60 s: no more cases
    # at once than there are cores.
    parallel=${AUTOBAHN_PARALLEL:-$(nproc)}
    selection=()
    server_args=(--compress)
    client_args=(--compress)
    # Groups 12 and 13 are slow: about 15 minutes on 2 cores.
    suite_timeout=${AUTOBAHN_TIMEOUT:-3000}
else
    groups="1-7, 9, 10"
    selection=(-x '12.*' -x '13.*')
    server_args=()
    client_args=()
    suite_timeout=${AUTOBAHN_TIMEOUT:-600}
fi

server_pid=
stop_server() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $server_pid ]]; then
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { printf '==> %s\n' "$*"; }

# Sets `port` from the first line of $server_log ("... listening on
# HOST:PORT") of the process $server_pid, named $1 in errors.
wait_port() {
    port=
    for _ in $(seq 200); do
        local line
        line=$(head -n 1 "$server_log" 2>/dev/null || true)
        if [[ $line =~ listening\ on\ .*:([0-9]+)$ ]]; then
            port=${BASH_REMATCH[1]}
            return 0
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "autobahn: $1 exited before listening:" >&2
            cat "$server_log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "autobahn: $1 did not print its port within 20 s" >&2
    exit 1
}

# 1. The runner, in its own virtualenv.
if [[ ! -x $venv/bin/python ]]; then
    step "creating virtualenv $venv"
    if ! timeout 120 python3 -m venv "$venv"; then
        echo "autobahn: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('kosoku') != '$kosoku_version')" 2>/dev/null; then
    step "installing kosoku $kosoku_version"
    timeout 300 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "kosoku==$kosoku_version"
fi

# 2 and 3, client mode: the suite's fuzzing server, our client driver.
if [[ $mode == client ]]; then
    step "building examples/autobahn_client (release)"
    (cd "$root" && timeout 1200 cargo build --release --quiet --example autobahn_client)
    mkdir -p "$out"
    rm -rf "$out/report"
    server_log=$out/kosoku.log
    "$venv/bin/kosoku" -m fuzzingserver -o "$out/report" "${selection[@]}" "$@" \
        127.0.0.1:0 >"$server_log" 2>&1 &
    server_pid=$!
    wait_port "the fuzzing server"
    step "fuzzing server pid $server_pid on 127.0.0.1:$port; running our client over groups $groups (at most ${suite_timeout}s)"
    set +e
    timeout --kill-after=10 "$suite_timeout" "$root/target/release/examples/autobahn_client" \
        "ws://127.0.0.1:$port" --parallel "$parallel" "${client_args[@]}" >"$out/client.log" 2>&1
    kosoku_status=$?
    set -e
    # The server writes its reports once the driver asked for them.
    for _ in $(seq 300); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    server_alive=1
    stop_server
    if [[ $kosoku_status -ne 0 ]]; then
        echo "autobahn: the client driver exited with $kosoku_status:" >&2
        tail -n 20 "$out/client.log" >&2
    fi
else
# 2. The server under test.
step "building examples/echo (release)"
(cd "$root" && timeout 1200 cargo build --release --quiet --example echo)
echo_bin=$root/target/release/examples/echo

mkdir -p "$out"
rm -rf "$out/report"
server_log=$out/server.log
# Removed first: the server truncates it only once it runs, and a line left
# by the previous run must not be taken for this one's port.
rm -f "$server_log"
# shellcheck disable=SC2086 # the extra flags are meant to split
"$echo_bin" --port 0 "${server_args[@]}" ${AUTOBAHN_SERVER_ARGS:-} >"$server_log" 2>&1 &
server_pid=$!
wait_port "the echo server"
step "echo server pid $server_pid on 127.0.0.1:$port"

# 3. The suite.
step "running Autobahn case groups $groups (parallelism $parallel, at most ${suite_timeout}s)"
set +e
timeout --kill-after=10 "$suite_timeout" \
    "$venv/bin/kosoku" -p "$parallel" -o "$out/report" "${selection[@]}" "$@" \
    "127.0.0.1:$port" >"$out/kosoku.log" 2>&1
kosoku_status=$?
set -e
if [[ $kosoku_status -eq 124 || $kosoku_status -eq 137 ]]; then
    echo "autobahn: the suite did not finish within ${suite_timeout}s" >&2
    tail -n 20 "$out/kosoku.log" >&2
    exit 1
fi

server_alive=1
kill -0 "$server_pid" 2>/dev/null || server_alive=0
stop_server
fi

# 4. Verdicts.
set +e
"$venv/bin/python" "$here/summarize.py" "$out/report"
summary_status=$?
set -e

status=0
if [[ $server_alive -eq 0 ]]; then
    echo "autobahn: FAIL: the $mode under test died during the suite; its log:" >&2
    cat "$server_log" >&2
    status=1
fi
if [[ $summary_status -ne 0 ]]; then
    status=1
fi
if [[ $kosoku_status -ne 0 && $summary_status -eq 0 ]]; then
    echo "autobahn: FAIL: kosoku (or the client driver) exited with $kosoku_status:" >&2
    tail -n 20 "$out/kosoku.log" >&2
    status=1
fi
echo "reports: $out/report/index.html"
exit $status
