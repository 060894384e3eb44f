//! Rules of the source that keep user code behind one gate
//! (src/runtime/gate.rs), checked on the text of src/:
//! - nothing outside src/runtime/ catches or resumes a panic;
//! - every `extern "C"` function of ours counts itself in at a gate, or
//!   hands over at once to one that does, or is listed here with the
//!   reason it never reaches user code.

use std::path::{Path, PathBuf};

/// Calls that count themselves in first: an entry point whose body makes
/// one of them reaches user code only inside a gate.
const ENTERING: &[&str] = &[
    "gate.enter()",
    "gate().enter()",
    "dispatch(",    // websocket::dispatch::dispatch
    "close_now(",   // websocket::dispatch::close_now
    "on_control(",  // ping and pong, through dispatch
    ".fetch(res",   // server::callbacks::Ctx::fetch
    ".respond(res", // server::callbacks::Ctx::respond (routes::on_route)
];

/// Entry points that never run user code, and why.
const NO_USER_CODE: &[(&str, &str)] = &[
    (
        "free_doomed_later",
        "frees Apps none of whose callbacks run",
    ),
    (
        "drop_wakeup",
        "drops the queue's Arc; its jobs were dropped by `close`",
    ),
    (
        "cork_trampoline",
        "hands a panic back to `cork`'s caller, on the Rust side",
    ),
    (
        "run",
        "`corked` runs our own writes, which call user code through the gate",
    ),
    ("collect", "copies topic names"),
    ("each", "copies header views"),
    ("never", "a timer that never fires"),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("sys.rs") {
            out.push(path);
        }
    }
}

fn src_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.strip_prefix(root).unwrap().display().to_string();
            (name, text)
        })
        .collect()
}

/// The body of the function whose `fn` keyword is at `at`: from its first
/// `{` to the matching `}` (`None` for a declaration or a type).
fn body(text: &str, at: usize) -> Option<&str> {
    let rest = &text[at..];
    let open = rest.find(['{', ';'])?;
    if rest.as_bytes()[open] == b';' {
        return None;
    }
    let mut depth = 0;
    for (i, c) in rest[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&rest[open..open + i + 1]);
                }
            }
            _ => {}
        }
    }
    None
}

#[test]
fn only_the_runtime_catches_panics() {
    let mut found = Vec::new();
    for (name, text) in src_files() {
        if name.starts_with("src/runtime/") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if line.contains("catch_unwind") || line.contains("resume_unwind") {
                found.push(format!("{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "user code runs through runtime::Gate (or runtime::catch for a panic handed back \
         to Rust), never through a catch_unwind of its own:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_native_entry_point_enters_a_gate() {
    let mut entries = 0;
    let mut unguarded = Vec::new();
    for (name, text) in src_files() {
        for (at, _) in text.match_indices("extern \"C\" fn ") {
            let after = &text[at + "extern \"C\" fn ".len()..];
            let fn_name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // A function pointer type (`unsafe extern "C" fn(`) has no name.
            if fn_name.is_empty() {
                continue;
            }
            let Some(body) = body(&text, at) else {
                continue;
            };
            entries += 1;
            let enters = ENTERING.iter().any(|call| body.contains(call));
            let exempt = NO_USER_CODE.iter().any(|(n, _)| *n == fn_name);
            if !enters && !exempt {
                unguarded.push(format!("{name}: {fn_name}"));
            }
        }
    }
    assert!(
        entries >= 20,
        "found only {entries} entry points: is the scan broken?"
    );
    assert!(
        unguarded.is_empty(),
        "these extern \"C\" functions neither count themselves in at a gate \
         (`let _in = gate.enter();` first) nor are listed as never reaching user code:\n{}",
        unguarded.join("\n")
    );
}
