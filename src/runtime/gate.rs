//! The one gate for user code.
//!
//! Everything the user wrote runs through a [`Gate`]: handler methods,
//! closures (jobs, timers, body callbacks, stream producers), `Waker::wake`
//! and the `Drop` of user values (socket data, closures, wakers, upgrade
//! options). Each server has a gate, and so do the client connections of a
//! thread. The gate
//! - counts the call in, so that an App dropped by user code is only
//!   stopped then and freed where no callback of it runs;
//! - catches a panic and turns it into an [`Error`] for the caller to
//!   report (nothing unwinds into C++);
//! - counts the call out, also on unwind.
//!
//! Its callers keep two rules: nothing of ours is locked or borrowed while
//! user code runs (take the value out, release, then call), and every
//! `extern "C"` entry point that can reach user code counts itself in
//! first ([`Gate::enter`]), so a user value it drops on the way out is
//! still inside. Closes and frees asked for inside are postponed by their
//! owners to the loop's next wakeup, where no native frame of the socket
//! or the App is on the stack.

use std::cell::Cell;

use crate::error::Error;

/// Counts the callbacks of one owner (a server, or a thread's clients)
/// that are on the stack, and runs user code inside that count.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    depth: Cell<u32>,
}

/// A callback counted in; counted out when dropped (also on unwind).
#[must_use = "the callback is counted out when this drops"]
pub(crate) struct Entered<'a>(&'a Gate);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let depth = &self.0.depth;
        depth.set(depth.get() - 1);
    }
}

impl Gate {
    pub(crate) const fn new() -> Gate {
        Gate {
            depth: Cell::new(0),
        }
    }

    /// Counts a callback in until the guard drops.
    pub(crate) fn enter(&self) -> Entered<'_> {
        self.depth.set(self.depth.get() + 1);
        Entered(self)
    }

    /// Whether a callback of the owner is on the stack now.
    pub(crate) fn in_callback(&self) -> bool {
        self.depth.get() > 0
    }

    /// Runs user code `f` inside the gate. A panic comes back as
    /// [`Error::HandlerPanic`] naming `name`, for the caller to report.
    pub(crate) fn call<R>(&self, name: &'static str, f: impl FnOnce() -> R) -> Result<R, Error> {
        let _in = self.enter();
        super::panic::catch(f).map_err(|p| super::caught(name, p))
    }

    /// Runs user code `f` for a caller that has counted itself in already
    /// (`entered` is its proof): as [`call`](Self::call), without counting
    /// in twice on the per-message path.
    pub(crate) fn call_entered<R>(
        &self,
        entered: &Entered<'_>,
        name: &'static str,
        f: impl FnOnce() -> R,
    ) -> Result<R, Error> {
        debug_assert!(std::ptr::eq(entered.0, self));
        super::panic::catch(f).map_err(|p| super::caught(name, p))
    }

    /// Drops a user value inside the gate.
    pub(crate) fn dispose<T>(&self, value: T) -> Result<(), Error> {
        self.call("drop", move || drop(value))
    }
}
