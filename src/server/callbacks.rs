//! The `extern "C"` trampolines: every native event of a server comes in
//! here and is dispatched, statically, to its handler.
//!
//! Each trampoline counts itself in the server's callback depth (so that an
//! App dropped from inside its own callbacks is freed later, see
//! [`App`](super::App)), marks the socket busy while a handler holds its
//! `&mut`, and catches panics before they reach C++.

use std::any::Any;
use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::error::Error;
use crate::ffi::bytes;
use crate::handler::WebSocketHandler;
use crate::http::{Request, Response};
use crate::server::{accept, Core, Hooks, Server};
use crate::sys;
use crate::upgrade::UpgradeOptions;
use crate::websocket::slot::{Closed, Slot, SocketState};
use crate::websocket::{Message, ReadyState, ServerWebSocket};

/// What the native callbacks point at: the handler and its server.
pub(crate) struct Ctx<H: WebSocketHandler> {
    /// Shared by the threads of a server on several.
    pub(crate) handler: Arc<H>,
    pub(crate) server: Server<H::Data>,
}

type Data<H> = <H as WebSocketHandler>::Data;

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

/// Drops `value`, containing a panic of its destructor.
pub(crate) fn drop_contained<T>(value: T) -> Result<(), Error> {
    catch_unwind(AssertUnwindSafe(move || drop(value))).map_err(|p| {
        let message = panic_message(&*p);
        drop_payload(p);
        Error::HandlerPanic {
            handler: "drop",
            message,
        }
    })
}

impl<H: WebSocketHandler> Ctx<H> {
    fn core(&self) -> &Core {
        self.server.core()
    }

    fn report(&self, ws: Option<&mut ServerWebSocket<Data<H>>>, error: &Error) {
        // A panicking error handler has nowhere left to report to.
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| self.handler.error(ws, error))) {
            drop_payload(p);
        }
    }

    /// Runs `f` with the socket handed out (busy), containing a panic.
    /// Returns whether `f` panicked.
    ///
    /// # Safety
    /// `slot` is a live slot of this server, not busy.
    unsafe fn handed(
        &self,
        slot: *mut Slot<Data<H>>,
        name: &'static str,
        f: impl FnOnce(&H, &mut ServerWebSocket<Data<H>>),
    ) -> bool {
        // SAFETY: live slot; the state is reached shared only.
        let state = unsafe { &(*slot).state };
        state.busy.set(true);
        // SAFETY: not busy before (caller's promise), so from here until
        // `busy` is cleared the only access to the handed part is this one.
        let ws = unsafe { Slot::socket(slot) };
        let result = catch_unwind(AssertUnwindSafe(|| f(&self.handler, &mut *ws)));
        let panicked = result.is_err();
        if let Err(p) = result {
            self.report(Some(ws), &caught(name, p));
        }
        state.busy.set(false);
        panicked
    }

    /// Runs a handler on an open socket, then deals with what happened
    /// meanwhile: a close that arrived runs the close handler now, a panic
    /// closes with 1011.
    ///
    /// # Safety
    /// `slot` is a live slot of this server.
    unsafe fn dispatch(
        &self,
        slot: *mut Slot<Data<H>>,
        name: &'static str,
        f: impl FnOnce(&H, &mut ServerWebSocket<Data<H>>),
    ) {
        let (busy, ws) = {
            // SAFETY: live slot, state reached shared.
            let state = unsafe { &(*slot).state };
            (state.busy.get(), state.ws.get())
        };
        // uWebSockets does not reenter a socket's handlers; should it ever,
        // the event is dropped rather than a second `&mut` made.
        if busy {
            return;
        }
        let core = self.core();
        core.enter();
        // SAFETY: live and not busy.
        let panicked = unsafe { self.handed(slot, name, f) };
        // SAFETY: live slot; `deferred` and `ready` are read before anything
        // below may free it.
        let (deferred, ready) = unsafe {
            let state = &(*slot).state;
            (state.deferred_close.take(), state.ready.get())
        };
        match deferred {
            // SAFETY: not busy any more; the socket closed during `f` and its
            // close handler is still owed.
            Some(closed) => unsafe { self.close_now(slot, closed.code, &closed.reason) },
            None if panicked && ready == ReadyState::Open => {
                let reason = "internal error";
                // SAFETY: the socket is still open; its close callback comes
                // back into `on_close`, which finds it not busy and runs the
                // close handler at once.
                unsafe {
                    sys::uws_ws_end(core.ssl, ws, 1011, reason.as_ptr().cast(), reason.len())
                };
            }
            None => {}
        }
        core.leave();
    }

    /// Runs the close handler and frees the slot (dropping the data).
    ///
    /// # Safety
    /// `slot` is a live slot of this server, not busy; it is freed here.
    unsafe fn close_now(&self, slot: *mut Slot<Data<H>>, code: i32, reason: &[u8]) {
        let core = self.core();
        core.enter();
        {
            // SAFETY: live slot, state reached shared.
            let state = unsafe { &(*slot).state };
            core.registry.borrow_mut().remove(state.id.get());
            state.ready.set(ReadyState::Closed);
        }
        core.count_socket(false);
        let reason = String::from_utf8_lossy(reason);
        let code = u16::try_from(code).unwrap_or(1006);
        // SAFETY: live and not busy. In the Closed state every send inside
        // the close handler returns Dropped.
        unsafe { self.handed(slot, "close", |h, s| h.close(s, code, &reason)) };
        // SAFETY: made at upgrade; this is the one place that frees it, and
        // nothing refers to it any more (unregistered, not busy).
        if let Err(e) = drop_contained(unsafe { Slot::free(slot) }) {
            self.report(None, &e);
        }
        core.leave();
    }

    fn fetch(&self, res: *mut sys::uws_res_t, req: *mut sys::uws_req_t, ws_context: *mut c_void) {
        let core = self.core();
        let ssl = core.ssl;
        core.enter();
        if core.doomed() {
            Response::new("server gone")
                .with_status(503)
                .write(ssl, res, true, false);
            core.leave();
            return;
        }
        let mut request = Request::new(req, res, ssl, ws_context);
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.handler.fetch(&mut request, &self.server)
        }));
        let upgrade = request.upgrade.take();
        let (response, upgrade) = match result {
            Ok(response) => (response, upgrade),
            Err(p) => {
                let error = caught("fetch", p);
                if let Err(e) = drop_contained(upgrade) {
                    self.report(None, &e);
                }
                self.report(None, &error);
                (Response::new("internal error").with_status(500), None)
            }
        };
        if request.deferred {
            // Answered later (a panic after deferring leaves that to the
            // pending request, which answers 500 if it is dropped).
            core.leave();
            return;
        }
        // Asked right before each write: user code (a drop, the error
        // handler) may run in between.
        // SAFETY: `res` is the response of this request; a closed one stays
        // readable until the loop iteration ends.
        let open = || unsafe { sys::uws_res_closed(ssl, res) } == 0;
        match upgrade {
            Some(upgrade) if open() && !core.stopping() => {
                match upgrade.downcast::<UpgradeOptions<Data<H>>>() {
                    Ok(options) => {
                        let key = request
                            .header_bytes("sec-websocket-key")
                            .unwrap_or_default();
                        let extensions = request
                            .header_bytes("sec-websocket-extensions")
                            .unwrap_or_default();
                        accept(core, res, key, extensions, request.ws_context, *options)
                    }
                    // `Server<T>::upgrade` only ever stores `UpgradeOptions<T>`.
                    Err(_) => Response::new("")
                        .with_status(500)
                        .write(ssl, res, false, false),
                }
            }
            Some(upgrade) => {
                if let Err(e) = drop_contained(upgrade) {
                    self.report(None, &e);
                }
                if open() {
                    Response::new("server stopping")
                        .with_status(503)
                        .write(ssl, res, true, false);
                }
            }
            None if open() => {
                let head = request.method().eq_ignore_ascii_case("HEAD");
                response.write(ssl, res, core.stopping(), head)
            }
            None => {}
        }
        core.leave();
    }
}

/// # Safety
/// `c` is the `Ctx<H>` registered with the behavior, alive while the app is.
unsafe fn ctx<'a, H: WebSocketHandler>(c: *mut c_void) -> &'a Ctx<H> {
    // SAFETY: caller's promise.
    unsafe { &*(c as *const Ctx<H>) }
}

pub(crate) unsafe extern "C" fn on_http<H: WebSocketHandler>(
    c: *mut c_void,
    res: *mut sys::uws_res_t,
    req: *mut sys::uws_req_t,
    ws_context: *mut c_void,
) {
    // SAFETY: registered with this handler's context.
    unsafe { ctx::<H>(c) }.fetch(res, req, ws_context);
}

pub(crate) unsafe extern "C" fn on_open<H: WebSocketHandler>(
    c: *mut c_void,
    ws: *mut sys::uws_ws_t,
    user: *mut c_void,
) {
    // SAFETY: registered with this handler's context; `user` is the slot
    // made in `accept`, which nothing borrows yet.
    unsafe {
        let c = ctx::<H>(c);
        let slot = user as *mut Slot<Data<H>>;
        let state = &(*slot).state;
        state.ws.set(ws);
        state.id.set(c.core().registry.borrow_mut().insert(user));
        c.core().count_socket(true);
        c.dispatch(slot, "open", |h, s| h.open(s));
    }
}

pub(crate) unsafe extern "C" fn on_message<H: WebSocketHandler>(
    c: *mut c_void,
    _ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
    opcode: sys::uws_opcode_t,
) {
    // SAFETY: context and slot as in `on_open`; the payload is valid during
    // the call, and uWebSockets has checked that text messages are UTF-8.
    unsafe {
        let payload = bytes(data, length);
        let message = if opcode == sys::UWS_OPCODE_TEXT {
            Message::Text(std::str::from_utf8_unchecked(payload))
        } else {
            Message::Binary(payload)
        };
        ctx::<H>(c).dispatch(user.cast(), "message", |h, s| h.message(s, message));
    }
}

pub(crate) unsafe extern "C" fn on_drain<H: WebSocketHandler>(
    c: *mut c_void,
    _ws: *mut sys::uws_ws_t,
    user: *mut c_void,
) {
    // SAFETY: as in `on_message`.
    unsafe { ctx::<H>(c).dispatch(user.cast(), "drain", |h, s| h.drain(s)) };
}

/// Ping and pong: a handler method taking the frame's payload.
///
/// # Safety
/// As for `on_message`.
unsafe fn on_control<H: WebSocketHandler>(
    c: *mut c_void,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
    name: &'static str,
    method: fn(&H, &mut ServerWebSocket<Data<H>>, &[u8]),
) {
    // SAFETY: as in `on_message`.
    unsafe {
        let payload = bytes(data, length);
        ctx::<H>(c).dispatch(user.cast(), name, |h, s| method(h, s, payload));
    }
}

pub(crate) unsafe extern "C" fn on_ping<H: WebSocketHandler>(
    c: *mut c_void,
    _ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
) {
    // SAFETY: the native ping callback's arguments, as `on_control` needs.
    unsafe { on_control(c, user, data, length, "ping", H::ping) }
}

pub(crate) unsafe extern "C" fn on_pong<H: WebSocketHandler>(
    c: *mut c_void,
    _ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
) {
    // SAFETY: the native pong callback's arguments, as `on_control` needs.
    unsafe { on_control(c, user, data, length, "pong", H::pong) }
}

pub(crate) unsafe extern "C" fn on_subscription<H: WebSocketHandler>(
    c: *mut c_void,
    ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    topic: *const c_char,
    length: usize,
    new_count: c_int,
    old_count: c_int,
) {
    // SAFETY: context as in `on_open`; `user` is a live slot whose state
    // comes first and is only reached shared (the socket may be busy).
    let (c, state) = unsafe { (ctx::<H>(c), &*(user as *const SocketState)) };
    let core = c.core();
    let id = state.id.get();
    if !core.is_own_subscription(ws) || state.ready.get() != ReadyState::Open {
        // uWebSockets is closing this socket and walks its topics before
        // its close callback: from now on its id must not reach it.
        core.registry.borrow_mut().remove(id);
        if state.ready.get() == ReadyState::Open {
            state.ready.set(ReadyState::Closing);
        }
    }
    core.enter();
    // SAFETY: the topic bytes are valid during the call.
    let topic = unsafe { bytes(topic, length) };
    let (old, new) = (old_count.max(0) as usize, new_count.max(0) as usize);
    core.count_subscribers(topic, old, new);
    let topic = String::from_utf8_lossy(topic);
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| {
        c.handler.subscription(&c.server, id, &topic, old, new)
    })) {
        c.report(None, &caught("subscription", p));
    }
    core.leave();
}

pub(crate) unsafe extern "C" fn on_close<H: WebSocketHandler>(
    c: *mut c_void,
    _ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    code: c_int,
    message: *const c_char,
    length: usize,
) {
    // SAFETY: context as in `on_open`; the reason bytes are valid for this
    // call (copied when deferred). A busy socket is borrowed by a handler:
    // the close is recorded and runs when that handler returns.
    unsafe {
        let c = ctx::<H>(c);
        let slot = user as *mut Slot<Data<H>>;
        let reason = bytes(message, length);
        let state = &(*slot).state;
        if state.busy.get() {
            if state.ready.get() == ReadyState::Open {
                state.ready.set(ReadyState::Closed);
            }
            c.core().registry.borrow_mut().remove(state.id.get());
            state.deferred_close.set(Some(Box::new(Closed {
                code,
                reason: reason.into(),
            })));
        } else {
            c.close_now(slot, code, reason);
        }
    }
}

/// The type-erased entry points of [`Hooks`].
pub(crate) fn hooks<H: WebSocketHandler>() -> Hooks {
    unsafe fn close<H: WebSocketHandler>(
        c: *const c_void,
        slot: *mut c_void,
        code: i32,
        reason: &[u8],
    ) {
        // SAFETY: `c` is this handler's context; the caller upholds
        // `close_now`'s contract.
        unsafe { ctx::<H>(c.cast_mut()).close_now(slot.cast(), code, reason) }
    }
    unsafe fn report<H: WebSocketHandler>(c: *const c_void, error: &Error) {
        // SAFETY: `c` is this handler's context.
        unsafe { ctx::<H>(c.cast_mut()).report(None, error) }
    }
    Hooks {
        close: close::<H>,
        report: report::<H>,
    }
}

/// The native behavior with every handler pointing at `H`'s trampolines.
pub(crate) fn behavior<H: WebSocketHandler>(
    mut b: sys::uws_ws_behavior_t,
    c: *const Ctx<H>,
) -> sys::uws_ws_behavior_t {
    b.upgrade = Some(on_http::<H>);
    b.open = Some(on_open::<H>);
    b.message = Some(on_message::<H>);
    b.drain = Some(on_drain::<H>);
    b.ping = Some(on_ping::<H>);
    b.pong = Some(on_pong::<H>);
    b.subscription = Some(on_subscription::<H>);
    b.close = Some(on_close::<H>);
    b.ctx = c.cast_mut().cast();
    b
}
