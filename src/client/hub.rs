//! The client connections of one thread: their ids, the socket contexts
//! they share (one per TLS setting), and the queue other threads reach
//! them through. Made on first use, torn down when the thread exits.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use crate::client::conn::ClientCore;
use crate::error::Error;
use crate::registry::{Registry, SocketId};
use crate::runtime::Gate;
use crate::server::{thread_exiting, Shared, Target, ThreadLoop};
use crate::sys;
use crate::websocket::slot::SocketState;

/// How many calls from other threads may wait for a thread's clients.
const QUEUE_LIMIT: usize = 65_536;

/// One socket context: plain, or TLS with one way of checking servers.
struct Context {
    ssl: i32,
    verify: bool,
    ca: Option<Vec<u8>>,
    native: *mut sys::uws_client_context_t,
}

pub(crate) struct Hub {
    pub(crate) registry: RefCell<Registry>,
    pub(crate) shared: Arc<Shared<Hub>>,
    contexts: RefCell<Vec<Context>>,
    /// Every call into user code of the thread's connections goes through
    /// it; it counts their callbacks on the stack.
    gate: Gate,
    loop_: *mut sys::uws_loop_t,
    /// The claim on the thread's loop (released last).
    _thread: ThreadLoop,
}

/// Owns this thread's hub; tears it down at thread exit.
struct Owner(Cell<*mut Hub>);

thread_local! {
    static HUB: Owner = const { Owner(Cell::new(ptr::null_mut())) };
}

impl Drop for Owner {
    fn drop(&mut self) {
        let hub = self.0.replace(ptr::null_mut());
        if !hub.is_null() {
            // SAFETY: made by `Box::into_raw` in `Hub::get`, owned by this
            // thread-local, which no longer hands it out.
            unsafe { Hub::teardown(hub) };
        }
    }
}

impl Target for Hub {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    fn doomed(&self) -> bool {
        false
    }

    fn report(&self, error: &Error) {
        // Jobs of a handle run our own code; a panic there has no handler
        // to go to.
        eprintln!("uws: {error}");
    }
}

/// Whether a callback of a client connection of this thread runs now.
pub(crate) fn in_callback() -> bool {
    HUB.try_with(|h| {
        let hub = h.0.get();
        // SAFETY: non-null hubs are live until the thread-local goes.
        !hub.is_null() && unsafe { (*hub).gate.in_callback() }
    })
    .unwrap_or(false)
}

impl Hub {
    /// This thread's hub, made (with a claim on the thread's loop) on
    /// first use. Valid until the thread exits.
    pub(crate) fn get() -> Result<*const Hub, Error> {
        HUB.try_with(|h| {
            if h.0.get().is_null() {
                let thread = ThreadLoop::acquire()?;
                let loop_ = thread.loop_();
                let hub = Box::into_raw(Box::new(Hub {
                    registry: RefCell::new(Registry::new()),
                    shared: Shared::new(loop_, QUEUE_LIMIT),
                    contexts: RefCell::new(Vec::new()),
                    gate: Gate::new(),
                    loop_,
                    _thread: thread,
                }));
                // SAFETY: just made; its address is final.
                unsafe { (*hub).shared.attach(&*hub) };
                h.0.set(hub);
            }
            Ok(h.0.get().cast_const())
        })
        .map_err(|_| Error::NotRunning)?
    }

    /// This thread's hub if it has one.
    pub(crate) fn existing() -> Option<*const Hub> {
        HUB.try_with(|h| h.0.get().cast_const())
            .ok()
            .filter(|h| !h.is_null())
    }

    /// The gate of the thread's client connections.
    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }

    pub(crate) fn loop_(&self) -> *mut sys::uws_loop_t {
        self.loop_
    }

    /// The socket context for these TLS settings, made on first use.
    pub(crate) fn context(
        &self,
        ssl: i32,
        verify: bool,
        ca: Option<&[u8]>,
    ) -> Result<*mut sys::uws_client_context_t, Error> {
        let mut contexts = self.contexts.borrow_mut();
        let same = |c: &&Context| {
            c.ssl == ssl && (ssl == 0 || (c.verify == verify && c.ca.as_deref() == ca))
        };
        if let Some(c) = contexts.iter().find(same) {
            return Ok(c.native);
        }
        let tls = sys::uws_client_tls_t {
            ca_pem: ca.map_or(ptr::null(), |c| c.as_ptr().cast()),
            ca_pem_length: ca.map_or(0, <[u8]>::len),
            verify: verify.into(),
        };
        // SAFETY: this thread's loop; the CA bytes are read during the call.
        let native = unsafe { sys::uws_client_context_create(ssl, self.loop_, &tls) };
        if native.is_null() {
            return Err(Error::Tls {
                path: "ca".into(),
                reason: crate::tls::openssl_errors()
                    .unwrap_or_else(|| "the CA certificates could not be loaded".into()),
            });
        }
        contexts.push(Context {
            ssl,
            verify,
            ca: ca.map(<[u8]>::to_vec),
            native,
        });
        Ok(native)
    }

    /// The core and state of a registered connection. Pointers, not
    /// references: a close frees them.
    pub(crate) fn connection(&self, id: SocketId) -> Option<*const SocketState<ClientCore>> {
        // The state comes first in every slot.
        Some(self.registry.borrow().get(id)? as *const SocketState<ClientCore>)
    }

    /// The slot of a registered connection.
    pub(crate) fn slot(&self, id: SocketId) -> Option<*mut c_void> {
        self.registry.borrow().get(id)
    }

    /// Ends the connection `id` (see `ClientCore::shut`), if registered.
    pub(crate) fn shut(&self, id: SocketId, now: bool, code: u16, reason: &str) {
        if let Some(state) = self.connection(id) {
            // SAFETY: a registered connection's state, live for the call.
            unsafe { ClientCore::shut(state, now, code, reason) };
        }
    }

    /// Closes the connections a server opened, when it stops: open ones
    /// with 1001 (`now`: at once, without a close frame), the others are
    /// abandoned (their `error` says so).
    pub(crate) fn stop_owned(&self, server: u32, now: bool) {
        let ids = self.registry.borrow().ids();
        for id in ids {
            // Handlers run in between and may close others: look each up
            // again.
            let Some(state) = self.connection(id) else {
                continue;
            };
            // SAFETY: a registered connection's state, live until the
            // calls below close it.
            let owned = unsafe { (*(*state).core).owner == Some(server) };
            if owned {
                // SAFETY: as above.
                unsafe { ClientCore::shut(state, now, 1001, "server stopping") };
            }
        }
    }

    /// At thread exit: every connection ends (open ones with 1006,
    /// others with an error), then the contexts and the claim on the loop.
    ///
    /// # Safety
    /// `hub` came from `Box::into_raw` in `get` and is used by nothing
    /// else afterwards.
    unsafe fn teardown(hub: *mut Hub) {
        // SAFETY: the caller's promise; freed at the end.
        let h = unsafe { &*hub };
        // We run at thread exit: the loop goes with the last claim on it.
        thread_exiting();
        h.shared.close();
        loop {
            let ids = h.registry.borrow().ids();
            if ids.is_empty() {
                break;
            }
            for id in ids {
                if let Some(state) = h.connection(id) {
                    // SAFETY: as in `stop_owned`.
                    unsafe { ClientCore::shut(state, true, 1001, "thread exiting") };
                }
            }
        }
        for c in h.contexts.borrow_mut().drain(..) {
            // SAFETY: no connection is left on it.
            unsafe { sys::uws_client_context_free(c.ssl, c.native) };
        }
        // SAFETY: the caller's promise.
        drop(unsafe { Box::from_raw(hub) });
    }
}
