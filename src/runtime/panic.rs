//! Panic payloads: their message, and dropping them without unwinding.
//! Nothing outside this folder calls `catch_unwind` (tests/source_rules.rs).

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::error::Error;

fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// The error for a caught panic of `handler` (the payload is dropped here,
/// its own destructor's panic contained).
pub(crate) fn caught(handler: &'static str, payload: Box<dyn Any + Send>) -> Error {
    let message = panic_message(&*payload);
    drop_payload(payload);
    Error::HandlerPanic { handler, message }
}

/// Drops a panic payload. One whose destructor panics in turn is contained,
/// and so is the payload of that panic, a few levels deep; past that the
/// last one is leaked rather than dropped (a payload can panic on every
/// drop, and nothing may unwind into C++).
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    let mut payload = payload;
    for _ in 0..8 {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(again) => payload = again,
        }
    }
    std::mem::forget(payload);
}

/// Drops `value`, containing a panic of its destructor. For values that
/// hold user code but are dropped where no owner's gate applies (another
/// thread, a queue being closed); on a loop, use [`Gate::dispose`](super::Gate::dispose).
pub(crate) fn drop_contained<T>(value: T) -> Result<(), Error> {
    catch_unwind(AssertUnwindSafe(move || drop(value))).map_err(|p| caught("drop", p))
}

/// Runs `f`, catching a panic to hand it back to the caller's own thread
/// of control (`with_socket`, `cork`: Rust frames on both sides of a
/// native call).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    catch_unwind(AssertUnwindSafe(f))
}

/// Goes on with a panic caught by [`catch`], on the caller's side.
pub(crate) fn resume(payload: Box<dyn Any + Send>) -> ! {
    resume_unwind(payload)
}
