#!/usr/bin/env bash
# fuzz/run.sh SECONDS [TARGET...]: builds every libFuzzer target (ASan and
# UBSan) against the patched upstream tree build.rs makes, replays the
# committed regression inputs, then fuzzes each target for SECONDS,
# printing `TARGET: N execs, M crashes` (and libFuzzer's coverage). Exits
# non-zero on any crash, leak, sanitizer report or failed check.
#
# fuzz/run.sh --merge [TARGET...] minimizes fuzz/corpus/TARGET together
# with what earlier runs found (before a commit): the fewest inputs that
# reach every edge (hit counts ignored, which keeps it under 200 files).
#
# Installs clang, its libFuzzer runtime and zlib's headers with apt-get
# when they are missing. Work files (build, grown corpora, crash inputs)
# go to $UWS_FUZZ_DIR, by default ${CARGO_TARGET_DIR:-target}/fuzz.
# See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

merge=0
if [ "${1:-}" = --merge ]; then
    merge=1
    shift
else
    seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...] | fuzz/run.sh --merge [TARGET...]}
    shift
fi
all_targets=(http_request ws_server ws_client client_handshake shim_request)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

target_dir=${CARGO_TARGET_DIR:-$repo/target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
work=${UWS_FUZZ_DIR:-$target_dir/fuzz}
mkdir -p "$work"

# ---- tools: clang, its libFuzzer runtime, zlib's headers ----
can_link_fuzzer() {
    command -v clang++ >/dev/null || return 1
    printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }\n' |
        clang++ -x c++ -fsanitize=fuzzer,address,undefined - -o "$work/probe" 2>/dev/null
}
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "fuzz/run.sh: missing $* (install them, or run as root to let apt-get do it)" >&2
        exit 2
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if ! can_link_fuzzer; then
    command -v clang++ >/dev/null || apt_install clang
    # Debian ships libFuzzer's runtime apart from clang, per LLVM version.
    major=$(clang++ -dumpversion | cut -d. -f1)
    can_link_fuzzer || apt_install "libclang-rt-$major-dev"
    can_link_fuzzer || { echo "fuzz/run.sh: clang++ cannot link a libFuzzer target" >&2; exit 2; }
fi
[ -f /usr/include/zlib.h ] || apt_install zlib1g-dev
rm -f "$work/probe"

# ---- the patched upstream tree, from build.rs (the same copy and patches) ----
echo "== patched upstream tree (cargo check with UWS_PATCHED_TREE_OUT)"
UWS_PATCHED_TREE_OUT="$work/tree" CARGO_TARGET_DIR="$work/cargo" cargo check --quiet --lib
head -n 3 "$work/tree/upstream.txt" | sed 's/^/   /'

echo "== build (clang, libFuzzer, ASan, UBSan)"
make --no-print-directory -C fuzz -j2 -s TREE="$work/tree" OUT="$work/build" \
    $(printf "$work/build/bin/%s " "${targets[@]}")

# Every target takes inputs up to 4 KiB (client_handshake pads its own
# heads past the 16 KiB limit when asked to).
options=(-max_len=4096 -timeout=10 -rss_limit_mb=2560 -print_final_stats=1)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [ "$merge" = 1 ]; then
    for t in "${targets[@]}"; do
        mkdir -p "$work/corpus/$t" "fuzz/corpus/$t"
        fresh=$(mktemp -d)
        "$work/build/bin/$t" "${options[@]}" -merge=1 -use_counters=0 "$fresh" "fuzz/corpus/$t" "$work/corpus/$t" \
            >"$work/$t.merge.log" 2>&1
        rm -f "fuzz/corpus/$t"/*
        for f in "$fresh"/*; do cp "$f" "fuzz/corpus/$t/"; done
        rm -rf "$fresh"
        echo "$t: $(ls "fuzz/corpus/$t" | wc -l) inputs, $(du -sk "fuzz/corpus/$t" | cut -f1) KiB"
    done
    exit 0
fi

status=0
echo "== regression inputs (fuzz/regressions)"
for t in "${targets[@]}"; do
    inputs=(fuzz/regressions/"$t"/*)
    [ -e "${inputs[0]}" ] || continue
    if "$work/build/bin/$t" "${options[@]}" "${inputs[@]}" >"$work/$t.replay.log" 2>&1; then
        echo "$t: ${#inputs[@]} regression inputs pass"
    else
        echo "$t: a regression input fails (log: $work/$t.replay.log)"
        tail -n 30 "$work/$t.replay.log"
        status=1
    fi
done

echo "== fuzzing, $seconds s per target"
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t" artifacts="$work/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    before=$(find "$artifacts" -type f | wc -l)
    log="$work/$t.log"
    set +e
    "$work/build/bin/$t" "${options[@]}" -max_total_time="$seconds" -artifact_prefix="$artifacts/" \
        "$corpus" "fuzz/corpus/$t" >"$log" 2>&1
    code=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    coverage=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' || true)
    crashes=$(($(find "$artifacts" -type f | wc -l) - before))
    if [ "$code" != 0 ] && [ "$crashes" = 0 ]; then
        crashes=1
    fi
    echo "$t: ${execs:-0} execs, $crashes crashes ($coverage)"
    if [ "$crashes" != 0 ]; then
        status=1
        grep -E 'ERROR|SUMMARY|fuzz check failed|runtime error|Test unit written' "$log" | head -n 10
        echo "   log: $log"
    fi
done
exit $status
