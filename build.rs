//! Builds the native core: uSockets (C), uWebSockets (C++ headers) and our
//! shim, compiled together as one translation unit (vendor/shim/unity.cpp).
//!
//! The upstream sources are not in this repository. They come from the
//! package named in `CARRIER`, a dependency that is never compiled (see
//! vendor/README.md): from beside our own package, cargo's registry cache or
//! a vendor directory, else through a nested `cargo metadata` on the pin in
//! vendor/pin.toml. `UWS_SOURCE_DIR` points at another uWebSockets checkout
//! (with uSockets inside) instead. The compiled folders are copied to
//! OUT_DIR and our patches (vendor/patches) applied to the copy.
//!
//! Under docs.rs (`DOCS_RS`) nothing native is built: docs need no library.

#[path = "build/patches.rs"]
mod patches;

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package that carries the pinned upstream sources (never compiled),
/// and its version: the same as in Cargo.toml and vendor/pin.toml.
const CARRIER: &str = "libuwebsockets-sys";
const CARRIER_VERSION: &str = "0.0.10";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let shim = manifest_dir.join("vendor/shim");
    let patch_dir = manifest_dir.join("vendor/patches");

    for file in [
        "uws_shim.h",
        "uws_shim.cpp",
        "uws_routes.cpp",
        "uws_client.h",
        "uws_client.cpp",
        "uws_kind.hpp",
        "unity.cpp",
    ] {
        println!("cargo:rerun-if-changed={}", shim.join(file).display());
    }
    println!("cargo:rerun-if-changed=vendor/pin.toml");
    println!("cargo:rerun-if-changed=vendor/pin.lock");
    println!("cargo:rerun-if-changed=build/patches.rs");
    println!("cargo:rerun-if-changed={}", patch_dir.display());
    for patch in patches::patch_files(&patch_dir).unwrap_or_else(|e| fail(&e)) {
        println!("cargo:rerun-if-changed={}", patch.display());
    }
    for var in [
        "UWS_SOURCE_DIR",
        "UWS_UNPATCHED",
        "UWS_BINDINGS_OUT",
        "UWS_PATCHED_TREE_OUT",
        "DOCS_RS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    if env::var_os("DOCS_RS").is_some() {
        generate_bindings(&shim);
        return;
    }

    let (upstream, origin) = find_upstream(&manifest_dir, &out_dir);
    for needed in ["src/App.h", "uSockets/src/libusockets.h"] {
        if !upstream.join(needed).is_file() {
            fail(&format!(
                "{} not found: the upstream directory must be a uWebSockets checkout with uSockets inside",
                upstream.join(needed).display()
            ));
        }
    }

    // The tree that is compiled: a copy, patched unless UWS_UNPATCHED=1.
    let unpatched = env::var_os("UWS_UNPATCHED").is_some_and(|v| !v.is_empty() && v != "0");
    let tree = out_dir.join("upstream");
    let applied = patches::prepare(&upstream, (!unpatched).then_some(&*patch_dir), &tree)
        .unwrap_or_else(|e| {
            fail(&format!(
                "{e}\n(upstream sources from {}; UWS_UNPATCHED=1 builds without our patches)",
                upstream.display()
            ))
        });
    let note = format!(
        "sources: {}\norigin: {origin}\npatches: {}\n",
        upstream.display(),
        match (unpatched, applied.is_empty()) {
            (true, _) => "none (UWS_UNPATCHED)".to_owned(),
            (false, true) => "none".to_owned(),
            (false, false) => applied.join(" "),
        }
    );
    fs::write(out_dir.join("upstream.txt"), &note).expect("write upstream.txt");
    // fuzz/run.sh compiles its harnesses against this same tree: the same
    // copy-and-patch step, made once more into a folder it names.
    if let Some(dir) = env::var_os("UWS_PATCHED_TREE_OUT").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        patches::prepare(&upstream, (!unpatched).then_some(&*patch_dir), &dir)
            .unwrap_or_else(|e| fail(&format!("UWS_PATCHED_TREE_OUT: {e}")));
        fs::write(dir.join("upstream.txt"), &note).expect("write upstream.txt");
    }

    let usockets = tree.join("uSockets/src");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file(shim.join("unity.cpp"))
        .file(shim.join("uws_client.cpp"))
        .include(&shim)
        .include(&usockets)
        .include(tree.join("src"))
        .std("c++20")
        .opt_level(3)
        // uSockets' C files are compiled as C++: allow C's implicit
        // conversions from void *, and keep upstream's warnings out of ours.
        .flag("-fpermissive")
        // cc builds position-independent code; without this, GCC must
        // assume any global function may be interposed at run time and
        // will not inline uSockets' small calls into uWebSockets.
        .flag("-fno-semantic-interposition")
        // As Bun: no version banner (the `uWebSockets: 20` header and the
        // signature of the error pages), and up to 198 header fields in a
        // request (upstream's parser takes the count of slots less 3: the
        // request line's, the end's and one more; its 100 took 97).
        .define("UWS_HTTPRESPONSE_NO_WRITEMARK", None)
        .define("UWS_HTTP_MAX_HEADERS_COUNT", "201")
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

/// The uWebSockets root to build from, and a note on where it came from.
fn find_upstream(manifest_dir: &Path, out_dir: &Path) -> (PathBuf, String) {
    if let Some(dir) = env::var_os("UWS_SOURCE_DIR") {
        let dir = PathBuf::from(dir);
        if !dir.is_absolute() {
            fail(&format!(
                "UWS_SOURCE_DIR must be an absolute path, not {}: cargo runs build scripts \
                 in the package's folder, not yours (use \"$PWD/{0}\", or set it in \
                 .cargo/config.toml under [env] with `relative = true`)",
                dir.display()
            ));
        }
        for compiled in patches::COMPILED {
            println!("cargo:rerun-if-changed={}", dir.join(compiled).display());
        }
        return (dir, "UWS_SOURCE_DIR".to_owned());
    }
    if let Some(package) = local_carrier(manifest_dir, out_dir) {
        let origin = format!("{CARRIER} {CARRIER_VERSION}, found locally");
        return (package.join("uWebSockets"), origin);
    }
    let package = carrier_from_cargo(manifest_dir, out_dir);
    let origin = format!("{CARRIER} {CARRIER_VERSION}, located by cargo metadata on the pin");
    (package.join("uWebSockets"), origin)
}

/// The carrier package, unpacked where cargo leaves it when it fetched or
/// vendored it as our (never compiled) dependency: beside our own package
/// (registry cache or vendor directory), in the registry cache, or in a
/// vendor directory named by cargo's configuration: a `.cargo/config.toml`
/// above the folder cargo was started in, above OUT_DIR or above our
/// package, or CARGO_HOME's.
fn local_carrier(manifest_dir: &Path, out_dir: &Path) -> Option<PathBuf> {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let mut places: Vec<PathBuf> = manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    if let Some(home) = &cargo_home {
        if let Ok(registries) = fs::read_dir(home.join("registry/src")) {
            places.extend(registries.flatten().map(|entry| entry.path()));
        }
    }
    // Cargo config files, each with the folder its relative paths start from.
    let mut configs: Vec<(PathBuf, PathBuf)> = Vec::new();
    let started_in = cargo_cwd();
    let above = started_in.iter().flat_map(|dir| dir.ancestors());
    for dir in above
        .chain(out_dir.ancestors())
        .chain(manifest_dir.ancestors())
    {
        for name in [".cargo/config.toml", ".cargo/config"] {
            configs.push((dir.join(name), dir.to_path_buf()));
        }
    }
    if let Some(home) = &cargo_home {
        let base = home.parent().unwrap_or(home).to_path_buf();
        for name in ["config.toml", "config"] {
            configs.push((home.join(name), base.clone()));
        }
    }
    for (config, base) in configs {
        if let Ok(text) = fs::read_to_string(&config) {
            places.extend(vendor_directories(&text).map(|dir| base.join(dir)));
        }
    }
    let names = [CARRIER.to_owned(), format!("{CARRIER}-{CARRIER_VERSION}")];
    places
        .iter()
        .flat_map(|place| names.iter().map(move |name| place.join(name)))
        .find(|candidate| is_carrier(candidate))
}

/// The folder the running cargo was started in, whose `.cargo/config.toml`
/// files (and those above it) cargo uses. Build scripts are cargo's own
/// children; only Linux says where a parent process is.
fn cargo_cwd() -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        let parent = std::os::unix::process::parent_id();
        fs::read_link(format!("/proc/{parent}/cwd")).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The values of `directory = "..."` lines (directory sources, which is
/// what `cargo vendor` configures) in a cargo config file.
fn vendor_directories(config: &str) -> impl Iterator<Item = &str> {
    config.lines().filter_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "directory").then_some(())?;
        let value = value.trim();
        value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
    })
}

/// Whether `dir` is the pinned version of the carrier with its sources.
fn is_carrier(dir: &Path) -> bool {
    let Ok(manifest) = fs::read_to_string(dir.join("Cargo.toml")) else {
        return false;
    };
    let has = |line: String| manifest.lines().any(|l| l.trim() == line);
    has(format!("name = \"{CARRIER}\""))
        && has(format!("version = \"{CARRIER_VERSION}\""))
        && dir.join("uWebSockets/src/App.h").is_file()
}

/// Asks cargo where it unpacked the pinned carrier package, downloading it
/// if needed: offline first (it may be cached), then online unless cargo is
/// told to stay offline. The pin is written to OUT_DIR first, so that cargo
/// does not see it as part of our package; its own `[workspace]` table keeps
/// cargo from taking it for a member of a workspace above OUT_DIR.
fn carrier_from_cargo(manifest_dir: &Path, out_dir: &Path) -> PathBuf {
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

    let offline = env::var("CARGO_NET_OFFLINE").is_ok_and(|v| v == "true" || v == "1");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut errors = String::new();
    for network in [false, true] {
        if network && offline {
            break;
        }
        let mut command = Command::new(&cargo);
        command
            .args(["metadata", "--format-version", "1", "--locked"])
            .arg("--manifest-path")
            .arg(pin.join("Cargo.toml"))
            // Where cargo reads the same configuration (mirrors, proxies,
            // net.offline) as the build that runs us.
            .current_dir(cargo_cwd().unwrap_or_else(|| pin.clone()))
            .env_remove("CARGO_TARGET_DIR");
        if !network {
            command.arg("--offline");
        }
        let output = command
            .output()
            .unwrap_or_else(|e| fail(&format!("running cargo metadata: {e}")));
        if output.status.success() {
            let json = String::from_utf8_lossy(&output.stdout);
            let manifest = manifest_paths(&json)
                .find(|p| Path::new(p).parent().is_some_and(is_carrier))
                .unwrap_or_else(|| {
                    fail(&format!(
                        "cargo metadata did not list {CARRIER} {CARRIER_VERSION}"
                    ))
                });
            return Path::new(&manifest)
                .parent()
                .expect("package directory")
                .to_path_buf();
        }
        errors += &String::from_utf8_lossy(&output.stderr);
    }
    fail(&format!(
        "the pinned uWebSockets sources (package {CARRIER} {CARRIER_VERSION}) are neither \
         unpacked nor downloadable here; cargo metadata said:\n{errors}\n\
         Ways out: build once with network access; or, while online, run `cargo fetch` \
         (or `cargo vendor`, which copies the package into your vendor directory: uws \
         depends on it without compiling it); or set UWS_SOURCE_DIR to the absolute path \
         of a uWebSockets checkout with uSockets inside (vendor/README.md)."
    ))
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
