//! Our patches on the pinned upstream sources (vendor/patches/*.patch).
//!
//! build.rs copies the parts of the upstream tree that it compiles into
//! OUT_DIR and applies the patches there, in file-name order; the registry
//! cache, a vendored copy or a user's checkout are only ever read. The same
//! file is compiled into tests/build_patches.rs.
//!
//! A patch file is free text (what it fixes, how the bug shows, which test
//! proves the fix) followed by one or more file sections in git's unified
//! format: optionally `diff --git a/P b/P` and `index`/`new file mode`/
//! `deleted file mode` lines, then `--- a/P` (or `/dev/null`), `+++ b/P`
//! (or `/dev/null`) and hunks. Paths are relative to the uWebSockets root.
//! Hunks apply at their stated line numbers with every context and removed
//! line matching exactly: no offset, no fuzz.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// The folders of the upstream tree that are compiled, relative to its root.
pub const COMPILED: [&str; 2] = ["src", "uSockets/src"];

/// One file's changes in a patch.
#[derive(Debug, PartialEq)]
pub struct FilePatch {
    /// Path relative to the uWebSockets root.
    pub path: String,
    /// What happens to the file.
    pub kind: Change,
    pub hunks: Vec<Hunk>,
}

/// Whether a section edits, creates or deletes its file.
#[derive(Debug, PartialEq, Clone, Copy)]
pub enum Change {
    Edit,
    Create,
    Delete,
}

/// One `@@ -a,b +c,d @@` hunk; lines keep their line endings.
#[derive(Debug, PartialEq)]
pub struct Hunk {
    /// The `@@` line, for messages.
    pub header: String,
    /// 1-based first line of `old` in the original (for an empty `old`: the
    /// line after which `new` goes, 0 for the start of the file).
    pub old_start: usize,
    pub old: Vec<Vec<u8>>,
    pub new: Vec<Vec<u8>>,
}

/// Copies the compiled folders of `upstream` to `out` (emptied first) and
/// applies every `*.patch` in `patches` (when given) in file-name order.
/// Returns the names of the patches applied.
pub fn prepare(upstream: &Path, patches: Option<&Path>, out: &Path) -> Result<Vec<String>, String> {
    if out.exists() {
        fs::remove_dir_all(out).map_err(|e| format!("removing {}: {e}", out.display()))?;
    }
    for dir in COMPILED {
        copy_tree(&upstream.join(dir), &out.join(dir))?;
    }
    let Some(patches) = patches else {
        return Ok(Vec::new());
    };
    let files = patch_files(patches)?;
    for file in &files {
        let name = file_name(file);
        let text = fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let sections = parse(&text).map_err(|e| format!("patch {name}: {e}"))?;
        for section in &sections {
            apply_to_tree(out, section).map_err(|e| format!("patch {name}: {e}"))?;
        }
    }
    Ok(files.iter().map(|f| file_name(f)).collect())
}

/// The `*.patch` files in `dir`, sorted by file name.
pub fn patch_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_some_and(|ext| ext == "patch") {
            files.push(path);
        }
    }
    files.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", source.display()))?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else {
            fs::copy(&source, &target).map_err(|e| format!("copying {}: {e}", source.display()))?;
        }
    }
    Ok(())
}

fn apply_to_tree(root: &Path, section: &FilePatch) -> Result<(), String> {
    let path = root.join(&section.path);
    let current = match fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", section.path)),
    };
    let write_err = |e: std::io::Error| format!("{}: {e}", section.path);
    match (section.kind, current) {
        (Change::Create, Some(_)) => Err(format!("{} already exists", section.path)),
        (Change::Edit | Change::Delete, None) => Err(format!("{} does not exist", section.path)),
        (Change::Create, None) => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(write_err)?;
            }
            fs::write(&path, apply(&section.path, b"", &section.hunks)?).map_err(write_err)
        }
        (Change::Delete, Some(bytes)) => {
            if !apply(&section.path, &bytes, &section.hunks)?.is_empty() {
                return Err(format!("{}: deleting it leaves lines behind", section.path));
            }
            fs::remove_file(&path).map_err(write_err)
        }
        (Change::Edit, Some(bytes)) => {
            fs::write(&path, apply(&section.path, &bytes, &section.hunks)?).map_err(write_err)
        }
    }
}

/// Applies `hunks` to `original` (the contents of `path`, which only names
/// it in messages).
pub fn apply(path: &str, original: &[u8], hunks: &[Hunk]) -> Result<Vec<u8>, String> {
    let lines: Vec<&[u8]> = original.split_inclusive(|&b| b == b'\n').collect();
    let mut out = Vec::with_capacity(original.len());
    let mut next = 0; // index of the first original line not yet copied
    for (n, hunk) in hunks.iter().enumerate() {
        let place = || format!("{path}, hunk {} ({})", n + 1, hunk.header.trim_end());
        let start = if hunk.old.is_empty() {
            hunk.old_start
        } else {
            hunk.old_start.saturating_sub(1)
        };
        if start < next {
            return Err(format!(
                "{}: overlaps or precedes the hunk before it",
                place()
            ));
        }
        if start + hunk.old.len() > lines.len() {
            return Err(format!(
                "{}: the file has only {} lines",
                place(),
                lines.len()
            ));
        }
        for (i, expected) in hunk.old.iter().enumerate() {
            let found = lines[start + i];
            if found != expected.as_slice() {
                return Err(format!(
                    "{} does not apply: line {} is {:?}, the patch expects {:?}",
                    place(),
                    start + i + 1,
                    String::from_utf8_lossy(found),
                    String::from_utf8_lossy(expected)
                ));
            }
        }
        for line in &lines[next..start] {
            out.extend_from_slice(line);
        }
        for line in &hunk.new {
            out.extend_from_slice(line);
        }
        next = start + hunk.old.len();
    }
    for line in &lines[next..] {
        out.extend_from_slice(line);
    }
    Ok(out)
}

/// Splits a patch file into its file sections (the free-text header before
/// the first section is skipped). Errors name the line.
pub fn parse(text: &[u8]) -> Result<Vec<FilePatch>, String> {
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let starts_section = |i: usize| {
        lines[i].starts_with(b"diff --git ")
            || (lines[i].starts_with(b"--- ")
                && lines.get(i + 1).is_some_and(|l| l.starts_with(b"+++ ")))
    };
    let mut i = (0..lines.len())
        .find(|&i| starts_section(i))
        .ok_or("no file section (no `--- a/PATH` and `+++ b/PATH` lines)")?;
    let mut sections = Vec::new();
    while i < lines.len() {
        if lines[i..].iter().all(|l| l.trim_ascii().is_empty()) {
            break;
        }
        if !starts_section(i) {
            return Err(format!(
                "line {}: expected a hunk or a file section, found {:?}",
                i + 1,
                String::from_utf8_lossy(lines[i])
            ));
        }
        let (section, end) = parse_section(&lines, i)?;
        sections.push(section);
        i = end;
    }
    Ok(sections)
}

/// Parses the section that starts at `lines[i]`; returns it and the index
/// of the line after it.
fn parse_section(lines: &[&[u8]], mut i: usize) -> Result<(FilePatch, usize), String> {
    let text = |i: usize| String::from_utf8_lossy(lines[i]).trim_end().to_owned();
    if lines[i].starts_with(b"diff --git ") {
        i += 1;
        while i < lines.len() && !lines[i].starts_with(b"--- ") {
            let line = text(i);
            let supported = ["index ", "new file mode ", "deleted file mode "];
            if !supported.iter().any(|p| line.starts_with(p)) {
                return Err(format!(
                    "line {}: {line:?} is not supported (only edits, new and deleted files)",
                    i + 1
                ));
            }
            i += 1;
        }
    }
    if i + 1 >= lines.len() || !lines[i + 1].starts_with(b"+++ ") {
        return Err(format!(
            "line {}: expected `--- a/PATH` then `+++ b/PATH`",
            i + 1
        ));
    }
    let old = side_path(&text(i)[4..], "a/").map_err(|e| format!("line {}: {e}", i + 1))?;
    let new = side_path(&text(i + 1)[4..], "b/").map_err(|e| format!("line {}: {e}", i + 2))?;
    let (path, kind) = match (old, new) {
        (Some(old), Some(new)) if old == new => (old, Change::Edit),
        (Some(old), Some(new)) => {
            return Err(format!(
                "line {}: renames are not supported ({old} -> {new})",
                i + 1
            ))
        }
        (None, Some(new)) => (new, Change::Create),
        (Some(old), None) => (old, Change::Delete),
        (None, None) => return Err(format!("line {}: both sides are /dev/null", i + 1)),
    };
    check_path(&path).map_err(|e| format!("line {}: {e}", i + 1))?;
    i += 2;
    let mut hunks = Vec::new();
    while i < lines.len() && lines[i].starts_with(b"@@ ") {
        let (hunk, end) = parse_hunk(lines, i).map_err(|e| format!("{path}: {e}"))?;
        hunks.push(hunk);
        i = end;
    }
    if hunks.is_empty() {
        return Err(format!("{path}: no hunk"));
    }
    Ok((FilePatch { path, kind, hunks }, i))
}

/// `a/PATH` (or `b/PATH`) to `Some(PATH)`, `/dev/null` to `None`.
fn side_path(field: &str, prefix: &str) -> Result<Option<String>, String> {
    // `diff -u` appends a tab and a timestamp; git does not.
    let field = field.split('\t').next().unwrap_or(field);
    if field == "/dev/null" {
        return Ok(None);
    }
    field
        .strip_prefix(prefix)
        .map(|p| Some(p.to_owned()))
        .ok_or_else(|| format!("{field:?} does not start with {prefix:?} (git's format)"))
}

/// A patch may only touch files that are compiled, inside the copy.
fn check_path(path: &str) -> Result<(), String> {
    let plain = Path::new(path)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(format!("{path:?} is not a plain relative path"));
    }
    if !COMPILED.iter().any(|dir| Path::new(path).starts_with(dir)) {
        return Err(format!(
            "{path} is outside the compiled folders ({})",
            COMPILED.join(", ")
        ));
    }
    Ok(())
}

/// Parses the hunk whose `@@` line is `lines[i]`.
fn parse_hunk(lines: &[&[u8]], i: usize) -> Result<(Hunk, usize), String> {
    let header = String::from_utf8_lossy(lines[i]).into_owned();
    let bad = || format!("line {}: bad hunk header {:?}", i + 1, header.trim_end());
    let ranges = header[3..].split(" @@").next().ok_or_else(bad)?;
    let (old, new) = ranges.split_once(' ').ok_or_else(bad)?;
    let range = |r: Option<&str>| -> Result<(usize, usize), String> {
        let r = r.ok_or_else(bad)?;
        let (start, count) = r.split_once(',').unwrap_or((r, "1"));
        Ok((
            start.parse().map_err(|_| bad())?,
            count.parse().map_err(|_| bad())?,
        ))
    };
    let (old_start, old_count) = range(old.strip_prefix('-'))?;
    let (_, new_count) = range(new.strip_prefix('+'))?;

    let mut hunk = Hunk {
        header,
        old_start,
        old: Vec::new(),
        new: Vec::new(),
    };
    let mut j = i + 1;
    // Which sides the last line went to, for "\ No newline at end of file".
    let mut last = (false, false);
    while j < lines.len() {
        let line = lines[j];
        let full = hunk.old.len() == old_count && hunk.new.len() == new_count;
        if line.starts_with(b"\\") {
            if j == i + 1 {
                return Err(format!(
                    "line {}: a `\\` line with no line before it",
                    j + 1
                ));
            }
            for (side, took) in [(&mut hunk.old, last.0), (&mut hunk.new, last.1)] {
                if let Some(previous) = side.last_mut().filter(|_| took) {
                    if previous.ends_with(b"\n") {
                        previous.pop();
                    }
                }
            }
            j += 1;
            continue;
        }
        if full {
            break;
        }
        // An empty line is an empty context line whose leading space an
        // editor removed.
        let (tag, rest) = match line.split_first() {
            Some((b'\n', _)) => (b' ', line),
            Some((&tag, rest)) => (tag, rest),
            None => break,
        };
        last = match tag {
            b' ' => (true, true),
            b'-' => (true, false),
            b'+' => (false, true),
            _ => break,
        };
        if last.0 {
            hunk.old.push(rest.to_vec());
        }
        if last.1 {
            hunk.new.push(rest.to_vec());
        }
        if hunk.old.len() > old_count || hunk.new.len() > new_count {
            break;
        }
        j += 1;
    }
    if hunk.old.len() != old_count || hunk.new.len() != new_count {
        return Err(format!(
            "line {}: the hunk {} has {} old and {} new lines, its header says {old_count} and {new_count}",
            i + 1,
            hunk.header.trim_end(),
            hunk.old.len(),
            hunk.new.len()
        ));
    }
    Ok((hunk, j))
}
