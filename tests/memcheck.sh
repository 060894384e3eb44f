#!/usr/bin/env bash
# Runs the WebSocket integration tests (echo, pub/sub and its batching,
# close paths, backpressure, panics, stop), the HTTP tests, the HTTP parser tests
# (http_parser, h1spec), the soundness tests and scenarios (reentrancy,
# drops at odd times, thread exit), the lifecycle tests, the teardown
# tests (servers created, run, stopped and dropped in a row and on several
# threads) and the client tests (against our server and against
# misbehaving raw servers) under valgrind memcheck: fails on any invalid
# read or write and on any definite leak.
#
#   tests/memcheck.sh
#
# Installs valgrind from Debian's packages when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi

test_binary() {
    cargo test --no-run --test "$1" --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1"
}

# Definite leaks and memory errors fail the run (exit 9).
memcheck="valgrind --quiet --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite"

for suite in websocket pubsub_batching http http_parser h1spec soundness stops_inside_handlers owners_and_threads body_wakers defer_then_upgrade lifecycle deferred threads teardown client client_hostile; do
    bin=$(test_binary "$suite")
    echo "== memcheck: $suite ($bin)"
    # Streaming 100 MiB takes a minute under valgrind; the streamed-body
    # path is covered by the HEAD test of the same suite.
    $memcheck "$bin" --test-threads=2 --skip a_100_mib
done

# A process out of file descriptors: each scenario runs in a child (under
# `ulimit -Sn 256`), traced by valgrind too.
bin=$(test_binary exhaustion)
echo "== memcheck: exhaustion, out of descriptors ($bin)"
$memcheck --trace-children=yes "$bin" --test-threads=1 out_of_descriptors

# Each scenario is a process of its own: run those under valgrind.
bin=$(test_binary scenarios)
echo "== memcheck: scenarios ($bin)"
UWS_SCENARIO_WRAPPER="$memcheck" "$bin"
echo "memcheck: no memory errors, no definite leaks"
