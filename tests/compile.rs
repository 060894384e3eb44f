//! What the compiler must refuse: sockets, requests and messages that
//! escape their callback, an App or Server sent to another thread, data
//! smuggled out through a handle, two sockets swapped. And what it must
//! accept (handles are Send + Sync whatever the data; plain values are
//! Send; two sockets' data can be swapped).
//!
//! Each file of tests/compile_fail names the error it must fail with on its
//! first line (`// expect: E0277`, or the message of an error without a
//! code); each file of tests/compile_pass
//! must build. They are checked as binaries of a scratch crate that depends
//! on this one, offline, with this crate's lock file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch_crate() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-checks");
    std::fs::create_dir_all(dir.join("src/bin")).unwrap();
    let manifest = format!(
        "[package]\nname = \"compile-checks\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\nuws = {{ path = {:?} }}\n\n[workspace]\n",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock");
    std::fs::copy(lock, dir.join("Cargo.lock")).unwrap();
    dir
}

/// Checks `file` as a binary of the scratch crate: its output and whether
/// it built.
fn check(dir: &Path, file: &Path) -> (bool, String) {
    let name = file
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .replace('-', "_");
    for old in std::fs::read_dir(dir.join("src/bin")).unwrap() {
        std::fs::remove_file(old.unwrap().path()).unwrap();
    }
    std::fs::copy(file, dir.join("src/bin").join(format!("{name}.rs"))).unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["check", "--quiet", "--offline", "--bin", &name])
        .current_dir(dir)
        .env_remove("RUSTFLAGS")
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .expect("run cargo");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the compiler's output must contain for `// expect: X`: the error
/// line of code X, or X itself for errors without a code.
fn wanted(expect: &str) -> String {
    let is_code = expect.len() == 5
        && expect.starts_with('E')
        && expect[1..].bytes().all(|b| b.is_ascii_digit());
    if is_code {
        format!("error[{expect}]")
    } else {
        format!("error: {expect}")
    }
}

fn files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {folder}");
    files
}

#[test]
fn misuse_does_not_compile_and_proper_use_does() {
    let dir = scratch_crate();
    let mut problems = Vec::new();
    for file in files("tests/compile_fail") {
        let source = std::fs::read_to_string(&file).unwrap();
        let expect = source
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// expect: "))
            .unwrap_or_else(|| panic!("{}: first line must be `// expect: E....`", file.display()))
            .trim()
            .to_owned();
        let (built, output) = check(&dir, &file);
        if built {
            problems.push(format!("{} compiled", file.display()));
        } else if !output.contains(&wanted(&expect)) {
            problems.push(format!(
                "{} failed without {expect}:\n{output}",
                file.display()
            ));
        }
    }
    for file in files("tests/compile_pass") {
        let (built, output) = check(&dir, &file);
        if !built {
            problems.push(format!("{} did not compile:\n{output}", file.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
