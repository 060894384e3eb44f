#!/usr/bin/env bash
# Runs the WebSocket integration tests (echo, pub/sub, close paths,
# backpressure, panics, stop), the HTTP tests, the HTTP parser tests
# (http_parser, h1spec) and the teardown tests (servers created, run,
# stopped and dropped in a row and on several threads) under valgrind
# memcheck: fails on any invalid read or write and on any definite leak.
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

for suite in websocket http http_parser h1spec teardown; do
    bin=$(cargo test --no-run --test "$suite" --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$suite")
    echo "== memcheck: $suite ($bin)"
    # Definite leaks and memory errors fail the run (exit 9).
    valgrind --quiet --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite "$bin" --test-threads=2
done
echo "memcheck: no memory errors, no definite leaks"
