//! The patch mechanism of build.rs (build/patches.rs): parsing git's
//! unified format, exact application, and the copy in which build.rs
//! applies vendor/patches without touching the upstream tree.

#[path = "../build/patches.rs"]
mod patches;

use std::fs;
use std::path::{Path, PathBuf};

use patches::{apply, parse, prepare, Change};

/// A fresh scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("uws-patches-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.0.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const TWO_FILES: &str = "\
Fixes: a thing in two files.
Shows as: a test failing.
Test: tests/x.rs the_thing

diff --git a/src/App.h b/src/App.h
index 1111111..2222222 100644
--- a/src/App.h
+++ b/src/App.h
@@ -1,3 +1,3 @@
 one
-two
+TWO
 three
@@ -6,2 +6,3 @@
 six
+six and a half
 seven
--- a/uSockets/src/loop.c
+++ b/uSockets/src/loop.c
@@ -1 +1 @@
-int x;
\\ No newline at end of file
+int x = 1;
diff --git a/src/New.h b/src/New.h
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/src/New.h
@@ -0,0 +1,2 @@
+// new
+-- not a file header: an added line
";

#[test]
fn a_patch_splits_into_its_file_sections_after_the_free_text_header() {
    let sections = parse(TWO_FILES.as_bytes()).unwrap();
    let summary: Vec<_> = sections
        .iter()
        .map(|s| (s.path.as_str(), s.kind, s.hunks.len()))
        .collect();
    assert_eq!(
        summary,
        [
            ("src/App.h", Change::Edit, 2),
            ("uSockets/src/loop.c", Change::Edit, 1),
            ("src/New.h", Change::Create, 1),
        ]
    );
    let app = &sections[0].hunks[1];
    assert_eq!(app.old_start, 6);
    assert_eq!(app.old, [b"six\n".to_vec(), b"seven\n".to_vec()]);
    // "\ No newline at end of file" takes the newline off the line before.
    let lo = &sections[1].hunks[0];
    assert_eq!(lo.old, [b"int x;".to_vec()]);
    assert_eq!(lo.new, [b"int x = 1;\n".to_vec()]);
    let new = &sections[2].hunks[0];
    assert_eq!(new.new[1], b"-- not a file header: an added line\n");
}

#[test]
fn hunks_apply_at_their_line_numbers() {
    let sections = parse(TWO_FILES.as_bytes()).unwrap();
    let original = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n";
    let patched = apply("src/App.h", original.as_bytes(), &sections[0].hunks).unwrap();
    assert_eq!(
        String::from_utf8(patched).unwrap(),
        "one\nTWO\nthree\nfour\nfive\nsix\nsix and a half\nseven\neight\n"
    );
    let patched = apply("uSockets/src/loop.c", b"int x;", &sections[1].hunks).unwrap();
    assert_eq!(patched, b"int x = 1;\n");
}

#[test]
fn a_hunk_that_does_not_match_exactly_is_an_error_naming_file_hunk_and_line() {
    let sections = parse(TWO_FILES.as_bytes()).unwrap();
    // Line 7 differs: the second hunk fails.
    let original = "one\ntwo\nthree\nfour\nfive\nsix\nSEVEN\n";
    let e = apply("src/App.h", original.as_bytes(), &sections[0].hunks).unwrap_err();
    assert!(e.starts_with("src/App.h, hunk 2 (@@ -6,2 +6,3 @@)"), "{e}");
    assert!(e.contains("line 7 is \"SEVEN\\n\""), "{e}");
    // The same lines two lines further down: no offset search either.
    let shifted = "zero\nzero\none\ntwo\nthree\nfour\nfive\nsix\nseven\n";
    let e = apply("src/App.h", shifted.as_bytes(), &sections[0].hunks).unwrap_err();
    assert!(e.contains("hunk 1"), "{e}");
    // A file shorter than the hunk.
    let e = apply("src/App.h", b"one\ntwo\nthree\n", &sections[0].hunks).unwrap_err();
    assert!(e.contains("hunk 2") && e.contains("only 3 lines"), "{e}");
}

#[test]
fn malformed_or_unsupported_patches_are_errors() {
    let cases = [
        ("text only\n", "no file section"),
        (
            "--- a/src/A.h\n+++ b/src/A.h\n@@ -1,2 +1,2 @@\n-a\n+b\n",
            "has 1 old and 1 new lines, its header says 2 and 2",
        ),
        (
            "--- a/src/A.h\n+++ b/src/A.h\n@@ -1 +1 @@\n-a\n+b\n+c\n",
            "expected a hunk or a file section",
        ),
        (
            "--- a/Makefile\n+++ b/Makefile\n@@ -1 +1 @@\n-a\n+b\n",
            "outside the compiled folders",
        ),
        (
            "--- a/src/../../etc/x\n+++ b/src/../../etc/x\n@@ -1 +1 @@\n-a\n+b\n",
            "not a plain relative path",
        ),
        (
            "--- a/src/A.h\n+++ b/src/B.h\n@@ -1 +1 @@\n-a\n+b\n",
            "renames are not supported",
        ),
        (
            "diff --git a/src/A.h b/src/B.h\nsimilarity index 90%\n",
            "is not supported",
        ),
        (
            "--- src/A.h\n+++ src/A.h\n@@ -1 +1 @@\n-a\n+b\n",
            "git's format",
        ),
        (
            "--- a/src/A.h\n+++ b/src/A.h\n@@ -x +1 @@\n-a\n+b\n",
            "bad hunk header",
        ),
        ("--- a/src/A.h\n+++ b/src/A.h\n", "no hunk"),
    ];
    for (patch, expected) in cases {
        let e = parse(patch.as_bytes()).unwrap_err();
        assert!(e.contains(expected), "{patch:?}: {e}");
    }
}

/// An upstream-like tree: the two compiled folders and one that is not.
fn upstream_tree(scratch: &Scratch) -> PathBuf {
    scratch.write("up/src/App.h", "app 1\napp 2\n");
    scratch.write("up/uSockets/src/loop.c", "loop 1\n");
    scratch.write("up/uSockets/src/eventing/epoll.c", "epoll\n");
    scratch.write("up/uSockets/Makefile", "not compiled\n");
    scratch.0.join("up")
}

#[test]
fn patches_apply_in_file_name_order_to_a_copy_and_never_to_the_upstream_tree() {
    let scratch = Scratch::new("order");
    let upstream = upstream_tree(&scratch);
    // 0002 edits the line that 0001 adds: it only applies after 0001.
    scratch.write(
        "patches/0002-second.patch",
        "Second.\n--- a/src/App.h\n+++ b/src/App.h\n@@ -2,2 +2,2 @@\n app 2\n-first\n+second\n",
    );
    scratch.write(
        "patches/0001-first.patch",
        "First.\n--- a/src/App.h\n+++ b/src/App.h\n@@ -2 +2,2 @@\n app 2\n+first\n\
         --- /dev/null\n+++ b/uSockets/src/added.h\n@@ -0,0 +1 @@\n+added\n\
         --- a/uSockets/src/eventing/epoll.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-epoll\n",
    );
    scratch.write("patches/README.md", "--- a/src/App.h\nnot a patch\n");
    let out = scratch.0.join("out");
    let applied = prepare(&upstream, Some(&scratch.0.join("patches")), &out).unwrap();
    assert_eq!(applied, ["0001-first.patch", "0002-second.patch"]);
    assert_eq!(read(&out.join("src/App.h")), "app 1\napp 2\nsecond\n");
    assert_eq!(read(&out.join("uSockets/src/added.h")), "added\n");
    assert!(!out.join("uSockets/src/eventing/epoll.c").exists());
    assert_eq!(read(&out.join("uSockets/src/loop.c")), "loop 1\n");
    assert!(
        !out.join("uSockets/Makefile").exists(),
        "only compiled folders are copied"
    );
    // The upstream tree is as it was.
    assert_eq!(read(&upstream.join("src/App.h")), "app 1\napp 2\n");
    assert!(!upstream.join("uSockets/src/added.h").exists());
    assert!(upstream.join("uSockets/src/eventing/epoll.c").exists());

    // Unpatched (UWS_UNPATCHED): a plain copy, replacing the patched one.
    assert!(prepare(&upstream, None, &out).unwrap().is_empty());
    assert_eq!(read(&out.join("src/App.h")), "app 1\napp 2\n");
    assert!(!out.join("uSockets/src/added.h").exists());
    assert_eq!(read(&out.join("uSockets/src/eventing/epoll.c")), "epoll\n");
}

#[test]
fn a_patch_that_does_not_apply_names_the_patch_and_the_file() {
    let scratch = Scratch::new("fails");
    let upstream = upstream_tree(&scratch);
    scratch.write(
        "patches/0001-stale.patch",
        "Stale.\n--- a/src/App.h\n+++ b/src/App.h\n@@ -1 +1 @@\n-app one\n+app 1.0\n",
    );
    let e = prepare(
        &upstream,
        Some(&scratch.0.join("patches")),
        &scratch.0.join("out"),
    )
    .unwrap_err();
    assert!(
        e.starts_with("patch 0001-stale.patch: src/App.h, hunk 1 (@@ -1 +1 @@) does not apply"),
        "{e}"
    );
    scratch.write(
        "patches/0001-stale.patch",
        "Stale.\n--- /dev/null\n+++ b/src/App.h\n@@ -0,0 +1 @@\n+again\n",
    );
    let e = prepare(
        &upstream,
        Some(&scratch.0.join("patches")),
        &scratch.0.join("out"),
    )
    .unwrap_err();
    assert_eq!(e, "patch 0001-stale.patch: src/App.h already exists");
}

#[test]
fn the_pinned_carrier_version_is_the_same_everywhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let after = |file: &str, marker: &str| -> String {
        let text = read(&root.join(file));
        let at = text
            .find(marker)
            .unwrap_or_else(|| panic!("{marker:?} not in {file}"));
        let rest = &text[at + marker.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    };
    let versions = [
        after("Cargo.toml", "libuwebsockets-sys = \"="),
        after("vendor/pin.toml", "libuwebsockets-sys = \"="),
        after(
            "vendor/pin.lock",
            "name = \"libuwebsockets-sys\"\nversion = \"",
        ),
        after("build.rs", "CARRIER_VERSION: &str = \""),
    ];
    assert!(versions.iter().all(|v| v == &versions[0]), "{versions:?}");
}
