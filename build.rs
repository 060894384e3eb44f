//! Builds the native core: uSockets (C), uWebSockets (C++ headers) and our
//! shim, compiled together as one translation unit (vendor/shim/unity.cpp).
//!
//! The upstream sources are not in this repository. By default they come
//! from the crates.io package pinned in vendor/pin.toml (see
//! vendor/README.md); `UWS_SOURCE_DIR` points at another uWebSockets
//! checkout (with uSockets inside) instead.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package that carries the pinned upstream sources (never compiled).
const CARRIER: &str = "libuwebsockets-sys";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let shim = manifest_dir.join("vendor/shim");

    for file in [
        "uws_shim.h",
        "uws_shim.cpp",
        "uws_client.h",
        "uws_client.cpp",
        "uws_kind.hpp",
        "unity.cpp",
    ] {
        println!("cargo:rerun-if-changed={}", shim.join(file).display());
    }
    println!("cargo:rerun-if-changed=vendor/pin.toml");
    println!("cargo:rerun-if-changed=vendor/pin.lock");
    println!("cargo:rerun-if-env-changed=UWS_SOURCE_DIR");
    println!("cargo:rerun-if-env-changed=UWS_BINDINGS_OUT");

    let upstream = match env::var_os("UWS_SOURCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => pinned_sources(&manifest_dir, &out_dir),
    };
    let usockets = upstream.join("uSockets/src");
    for needed in [upstream.join("src/App.h"), usockets.join("libusockets.h")] {
        if !needed.is_file() {
            fail(&format!(
                "{} not found: the upstream directory must be a uWebSockets checkout with uSockets inside",
                needed.display()
            ));
        }
    }

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file(shim.join("unity.cpp"))
        .file(shim.join("uws_client.cpp"))
        .include(&shim)
        .include(&usockets)
        .include(upstream.join("src"))
        .std("c++20")
        .opt_level(3)
        // uSockets' C files are compiled as C++: allow C's implicit
        // conversions from void *, and keep upstream's warnings out of ours.
        .flag("-fpermissive")
        // cc builds position-independent code; without this, GCC must
        // assume any global function may be interposed at run time and
        // will not inline uSockets' small calls into uWebSockets.
        .flag("-fno-semantic-interposition")
        .warnings(false)
        .extra_warnings(false)
        .flag_if_supported("-w");
    configure_tls(&mut build);
    configure_deflate(&mut build);
    build.compile("uws_shim");

    generate_bindings(&shim);
}

/// TLS: with the `tls` feature uSockets uses OpenSSL, whose headers come
/// from openssl-sys (which also links it); without it, uSockets' no-SSL stubs.
fn configure_tls(build: &mut cc::Build) {
    if env::var_os("CARGO_FEATURE_TLS").is_none() {
        build.define("LIBUS_NO_SSL", None);
        return;
    }
    build.define("LIBUS_USE_OPENSSL", None);
    // Plain and TLS instantiations together make a "large unit" for GCC,
    // whose growth limit then stops the inlining the plain build gets
    // (chat: 275 instead of 244 instructions per delivery).
    build.flag_if_supported("--param=large-unit-insns=100000");
    if let Some(include) = env::var_os("DEP_OPENSSL_INCLUDE") {
        for dir in env::split_paths(&include) {
            build.include(dir);
        }
    }
}

/// Per-message deflate: zlib's headers come from libz-sys, which builds and
/// links zlib itself.
fn configure_deflate(build: &mut cc::Build) {
    let include = env::var_os("DEP_Z_INCLUDE")
        .unwrap_or_else(|| fail("libz-sys did not report its include directory"));
    build.include(include);
}

/// Asks cargo where it unpacked the pinned carrier package, downloading it
/// if needed. The pin is written to OUT_DIR first, so that cargo neither
/// sees it as part of our package nor looks for a workspace above it.
fn pinned_sources(manifest_dir: &Path, out_dir: &Path) -> PathBuf {
    let pin = out_dir.join("upstream-pin");
    fs::create_dir_all(&pin).expect("create pin directory");
    let copy = |from: &str, to: &str| {
        let text = fs::read_to_string(manifest_dir.join("vendor").join(from))
            .unwrap_or_else(|e| fail(&format!("vendor/{from}: {e}")));
        fs::write(pin.join(to), text).expect("write pin");
    };
    copy("pin.toml", "Cargo.toml");
    copy("pin.lock", "Cargo.lock");
    fs::write(pin.join("lib.rs"), "").expect("write pin");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(pin.join("Cargo.toml"))
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap_or_else(|e| fail(&format!("running cargo metadata: {e}")));
    if !output.status.success() {
        fail(&format!(
            "cargo metadata for the upstream pin failed (set UWS_SOURCE_DIR to build offline from a checkout):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let json = String::from_utf8_lossy(&output.stdout);
    let manifest = manifest_paths(&json)
        .find(|p| {
            Path::new(p)
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|dir| dir.to_string_lossy().starts_with(&format!("{CARRIER}-")))
        })
        .unwrap_or_else(|| fail(&format!("cargo metadata did not list {CARRIER}")));
    Path::new(&manifest)
        .parent()
        .expect("package directory")
        .join("uWebSockets")
}

/// Every `"manifest_path":"..."` value in cargo's JSON (paths with no
/// escaped characters, which is what cargo's registry cache produces).
fn manifest_paths(json: &str) -> impl Iterator<Item = String> + '_ {
    const KEY: &str = "\"manifest_path\":\"";
    json.match_indices(KEY).filter_map(move |(at, _)| {
        let rest = &json[at + KEY.len()..];
        let end = rest.find('"')?;
        let path = &rest[..end];
        (!path.contains('\\')).then(|| path.to_owned())
    })
}

#[cfg(feature = "bindgen")]
fn generate_bindings(shim: &Path) {
    let header = shim.join("uws_shim.h");
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .raw_line("// Raw bindings to vendor/shim/uws_shim.h, generated by bindgen.")
        .raw_line("// Regenerate: UWS_BINDINGS_OUT=src/sys.rs cargo check --features bindgen")
        .allowlist_function("uws_.*")
        .allowlist_type("uws_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(false)
        .generate_comments(true)
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen: {e}")));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("sys.rs");
    bindings.write_to_file(&out).expect("write bindings");
    if let Some(copy) = env::var_os("UWS_BINDINGS_OUT") {
        fs::copy(&out, copy).expect("copy bindings to UWS_BINDINGS_OUT");
    }
}

#[cfg(not(feature = "bindgen"))]
fn generate_bindings(_shim: &Path) {}

fn fail(message: &str) -> ! {
    eprintln!("uws build: {message}");
    std::process::exit(1);
}
