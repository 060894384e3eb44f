//! What the compiler must refuse: sockets, requests and messages that
//! escape their callback, an App or Server sent to another thread, data
//! smuggled out through a handle, two sockets swapped. And what it must
//! accept (handles are Send + Sync whatever the data; plain values are
//! Send). Each file in tests/compile_fail has the compiler's error next to
//! it (`.stderr`); TRYBUILD=overwrite regenerates them.

#[test]
fn misuse_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
    t.pass("tests/compile_pass/*.rs");
}
