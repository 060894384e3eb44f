#!/usr/bin/env bash
# Builds a small application that depends on uws the ways users build one,
# and runs it (it binds 127.0.0.1, port 0, prints its port and exits):
#
#   workspace   a member of a Cargo workspace, on a fresh cargo home (the
#               sources come through the nested cargo call on the pin, whose
#               OUT_DIR lies inside the workspace)
#   package     from the packaged crate (`cargo package`), unpacked
#   fetch       `cargo fetch` on a fresh cargo home, then `--offline` with a
#               fresh target dir and no network at all
#   vendor      `cargo vendor`, then `--offline` with the config it prints plus
#               `net.offline`, an empty cargo home and no network at all
#   docs.rs     `DOCS_RS=1 cargo doc` on the packaged crate after `cargo
#               fetch`, with no network and no C++ compiler (CXX=false: the
#               native core must not be built)
#   no-openssl  `cargo tree -e normal,build,dev` of uws has no OpenSSL crate,
#               and `cargo run --release --example chat` (the README's first
#               command) runs with OpenSSL's headers made invisible
#
#   tests/downstream.sh [STEP...]     (default: all of them)
#
# "No network" is a network namespace with no interface up (`unshare -n`,
# as root, no container); "OpenSSL's headers invisible" is a mount namespace
# (`unshare -m`) with empty folders mounted over /usr/include/openssl and
# /usr/include/<triplet>/openssl, plus OPENSSL_DIR and PKG_CONFIG_LIBDIR
# pointing at an empty folder. Where unshare is not allowed, the steps fall
# back to a dead proxy (CARGO_HTTP_PROXY) and to the environment variables
# alone, and say so. Fresh cargo homes are seeded with the .crate files (hard
# links) and a copy of the index cache of $CARGO_HOME, never with unpacked
# sources, so only cargo itself can put the carrier where the build looks
# for it.
# Everything happens under a temporary folder, removed at the end; each
# build is bounded by STEP_TIMEOUT seconds (default 300; the steps take
# 10-60 s each on 2 cores with a warm cargo cache).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STEP_TIMEOUT="${STEP_TIMEOUT:-300}"
USER_HOME="${CARGO_HOME:-$HOME/.cargo}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/uws-downstream.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
STEPS=("$@")
[[ ${#STEPS[@]} -gt 0 ]] || STEPS=(workspace package fetch vendor docs.rs no-openssl)

say() { printf '== downstream %s: %s\n' "$STEP" "$*"; }
die() { printf 'downstream %s FAILED: %s\n' "$STEP" "$*" >&2; exit 1; }
bounded() { timeout --kill-after=10 "$STEP_TIMEOUT" "$@"; }

# A command prefix that takes the network away.
if unshare -n true 2>/dev/null; then
    NO_NET=(unshare -n --)
    NO_NETWORK="a network namespace with no interface up"
else
    NO_NET=(env CARGO_HTTP_PROXY=http://127.0.0.1:9 CARGO_NET_RETRY=0)
    NO_NETWORK="a dead proxy only (unshare -n is not allowed here)"
fi

# A cargo home with the user's downloaded .crate files and index cache.
fresh_home() {
    local home="$1"
    mkdir -p "$home/registry"
    if [[ -d "$USER_HOME/registry/cache" ]]; then
        cp -al "$USER_HOME/registry/cache" "$home/registry/cache" 2>/dev/null ||
            cp -a "$USER_HOME/registry/cache" "$home/registry/cache"
    fi
    if [[ -d "$USER_HOME/registry/index" ]]; then
        cp -a "$USER_HOME/registry/index" "$home/registry/index"
    fi
}

# The application: depends on uws at $2, in folder $1.
make_app() {
    local dir="$1" uws="$2"
    mkdir -p "$dir/src"
    cat > "$dir/Cargo.toml" <<EOF
[package]
name = "uws-downstream-app"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
uws = { path = "$uws" }
EOF
    cat > "$dir/src/main.rs" <<'EOF'
use uws::{serve, Request, Response, ServeOptions, Server, WebSocketHandler};

struct Hello;

impl WebSocketHandler for Hello {
    type Data = ();

    fn fetch(&self, _req: &mut Request<'_>, _server: &Server<()>) -> Response {
        Response::new("hello")
    }
}

fn main() {
    let options = ServeOptions {
        hostname: "127.0.0.1".into(),
        port: 0,
        ..Default::default()
    };
    let app = serve(options, Hello).expect("serve");
    println!("app listening on {}", app.port());
}
EOF
    # uws's own lock: the versions CI tests, mostly in the cache already.
    cp "$ROOT/Cargo.lock" "$dir/Cargo.lock"
}

# Runs the built application ($1) and checks what it printed.
run_app() {
    local out
    out="$(bounded "$1")" || die "the application failed: $out"
    [[ "$out" =~ ^app\ listening\ on\ [0-9]+$ ]] || die "unexpected output: $out"
    say "ran: $out"
}

# The upstream.txt note of the uws build under target dir $1; checks that
# its origin line contains $2.
check_origin() {
    local note
    note="$(find "$1" -path '*/build/uws-*/out/upstream.txt' | head -n 1)"
    [[ -n "$note" ]] || die "no upstream.txt under $1"
    grep -q "^origin: .*$2" "$note" || die "expected origin '$2', got: $(cat "$note")"
    say "$(grep -E '^(sources|origin):' "$note" | tr '\n' ' ')"
}

carrier_in() { compgen -G "$1/registry/src/*/libuwebsockets-sys-0.0.10/uWebSockets/src/App.h" >/dev/null; }

PACKAGED=""
package_crate() {
    [[ -z "$PACKAGED" ]] || return 0
    (cd "$ROOT" && bounded cargo package --quiet --allow-dirty --no-verify \
        --target-dir "$WORK/package-target") || die "cargo package failed"
    local crate
    crate="$(ls "$WORK"/package-target/package/uws-*.crate)"
    mkdir -p "$WORK/packaged"
    tar -xzf "$crate" -C "$WORK/packaged"
    PACKAGED="$(ls -d "$WORK"/packaged/uws-*)"
    for needed in LICENSE build.rs build/patches.rs vendor/pin.toml vendor/pin.lock \
        vendor/patches vendor/shim/unity.cpp README.md; do
        [[ -e "$PACKAGED/$needed" ]] || die "the package lacks $needed"
    done
    # Tests and benches stay in the repository (Cargo.toml `include`).
    for unwanted in tests benches; do
        [[ ! -e "$PACKAGED/$unwanted" ]] || die "the package ships $unwanted/"
    done
}

step_workspace() {
    local ws="$WORK/workspace" home="$WORK/home-workspace"
    fresh_home "$home"
    mkdir -p "$ws"
    printf '[workspace]\nmembers = ["app"]\nresolver = "2"\n' > "$ws/Cargo.toml"
    make_app "$ws/app" "$ROOT"
    mv "$ws/app/Cargo.lock" "$ws/Cargo.lock"
    (cd "$ws" && CARGO_HOME="$home" bounded cargo build --quiet) || die "cargo build failed"
    check_origin "$ws/target" "cargo metadata on the pin"
    run_app "$ws/target/debug/uws-downstream-app"
}

step_package() {
    package_crate
    make_app "$WORK/package-app" "$PACKAGED"
    (cd "$WORK/package-app" && bounded cargo build --quiet) || die "cargo build failed"
    run_app "$WORK/package-app/target/debug/uws-downstream-app"
}

step_fetch() {
    local app="$WORK/fetch-app" home="$WORK/home-fetch"
    fresh_home "$home"
    make_app "$app" "$ROOT"
    (cd "$app" && CARGO_HOME="$home" bounded cargo fetch --quiet) || die "cargo fetch failed"
    carrier_in "$home" || die "cargo fetch did not unpack the carrier"
    say "offline build ($NO_NETWORK)"
    (cd "$app" && CARGO_HOME="$home" CARGO_NET_OFFLINE=true bounded "${NO_NET[@]}" \
        cargo build --quiet --offline --target-dir "$WORK/fetch-target") ||
        die "offline build failed"
    check_origin "$WORK/fetch-target" "found locally"
    run_app "$WORK/fetch-target/debug/uws-downstream-app"
}

step_vendor() {
    local app="$WORK/vendor-app" empty_home="$WORK/home-empty"
    make_app "$app" "$ROOT"
    mkdir -p "$app/.cargo" "$empty_home"
    (cd "$app" && bounded cargo vendor vendor > .cargo/config.toml 2>/dev/null) ||
        die "cargo vendor failed"
    [[ -f "$app/vendor/libuwebsockets-sys/uWebSockets/src/App.h" ]] ||
        die "cargo vendor did not copy the carrier"
    printf '\n[net]\noffline = true\n' >> "$app/.cargo/config.toml"
    say "offline build from vendor/ with an empty cargo home ($NO_NETWORK)"
    (cd "$app" && CARGO_HOME="$empty_home" bounded "${NO_NET[@]}" \
        cargo build --quiet --offline --target-dir "$WORK/vendor-target") ||
        die "vendored build failed"
    check_origin "$WORK/vendor-target" "found locally"
    grep -q "^sources: $app/vendor/" "$(find "$WORK/vendor-target" -name upstream.txt)" ||
        die "the sources did not come from the vendor folder"
    run_app "$WORK/vendor-target/debug/uws-downstream-app"
}

step_docs.rs() {
    package_crate
    local home="$WORK/home-docs"
    fresh_home "$home"
    (cd "$PACKAGED" && CARGO_HOME="$home" bounded cargo fetch --quiet) || die "cargo fetch failed"
    say "cargo doc, DOCS_RS=1, CXX=false ($NO_NETWORK)"
    (cd "$PACKAGED" && CARGO_HOME="$home" DOCS_RS=1 CXX=false bounded "${NO_NET[@]}" \
        cargo doc --quiet --offline --no-deps --lib --target-dir "$WORK/docs-target") ||
        die "cargo doc failed"
    [[ -f "$WORK/docs-target/doc/uws/index.html" ]] || die "no uws/index.html"
    [[ -z "$(find "$WORK/docs-target" -name 'libuws_shim.a')" ]] || die "the native core was built"
    say "docs built, native core not built"
}

step_no-openssl() {
    local crates
    crates="$(cd "$ROOT" && cargo tree --quiet -e normal,build,dev --prefix none)"
    if grep -E '^(openssl|openssl-sys|native-tls) ' <<<"$crates"; then
        die "a default or dev dependency pulls in OpenSSL (above)"
    fi
    say "cargo tree -e normal,build,dev: no openssl, openssl-sys or native-tls"
    local empty="$WORK/empty" log="$WORK/chat.log" script="$WORK/chat.sh"
    mkdir -p "$empty"
    local run=(bash "$script") how="OPENSSL_DIR and PKG_CONFIG_LIBDIR only (unshare -m is not allowed here)"
    {
        echo 'set -e'
        if unshare -m true 2>/dev/null; then
            run=(unshare -m -- bash "$script")
            how="OpenSSL headers hidden in a mount namespace"
            for dir in /usr/include/openssl /usr/include/*/openssl; do
                [[ -d "$dir" ]] && echo "mount --bind '$empty' '$dir'"
            done
            echo 'test ! -e /usr/include/openssl/ssl.h'
        fi
        echo "cd '$ROOT'"
        echo "exec cargo run --quiet --release --example chat --target-dir '$WORK/chat-target' -- --port 0"
    } > "$script"
    say "cargo run --release --example chat ($how)"
    OPENSSL_DIR="$empty" PKG_CONFIG_LIBDIR="$empty" \
        timeout --kill-after=10 "$STEP_TIMEOUT" "${run[@]}" > "$log" 2>&1 &
    local pid=$!
    until grep -q '^listening on 127.0.0.1:' "$log"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log" >&2
            die "the chat example did not start"
        fi
        sleep 1
    done
    say "$(grep '^listening on' "$log")"
    # The example serves until stopped; timeout passes the signal on to it.
    kill "$pid"
    wait "$pid" || true
}

for STEP in "${STEPS[@]}"; do
    declare -F "step_$STEP" >/dev/null || { echo "unknown step $STEP" >&2; exit 2; }
    start=$SECONDS
    "step_$STEP"
    say "passed ($((SECONDS - start)) s)"
done
echo "downstream: ${#STEPS[@]} passed, 0 failed"
