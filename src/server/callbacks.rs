//! The server's `extern "C"` entry points: HTTP requests and upgrades,
//! subscription events, and the [`Events`] that the shared socket
//! trampolines (`websocket::dispatch`) dispatch to, statically, for its
//! handler.
//!
//! Each entry counts itself in the server's callback depth (so that an
//! App dropped from inside its own callbacks is freed later, see
//! [`App`](super::App)), and catches panics before they reach C++.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

use crate::error::Error;
use crate::ffi::bytes;
use crate::handler::WebSocketHandler;
use crate::http::{Request, Response};
use crate::registry::SocketId;
use crate::runtime::Gate;
use crate::server::{accept, Core, Hooks, Server};
use crate::sys;
use crate::upgrade::UpgradeOptions;
use crate::websocket::dispatch::{self, close_now, Events};
use crate::websocket::slot::SocketState;
use crate::websocket::{ReadyState, ServerSide};

/// What the native callbacks point at: the handler and its server.
pub(crate) struct Ctx<H: WebSocketHandler> {
    /// Shared by the threads of a server on several.
    pub(crate) handler: Arc<H>,
    pub(crate) server: Server<H::Data>,
}

type Data<H> = <H as WebSocketHandler>::Data;

impl<H: WebSocketHandler> Events for Ctx<H> {
    type Side = ServerSide;
    type Data = Data<H>;

    fn gate(&self) -> *const Gate {
        &self.core().gate
    }

    fn forget(&self, id: SocketId) {
        self.core().registry.borrow_mut().remove(id);
    }

    fn opened(&self, state: &SocketState<Core>, ws: *mut sys::uws_ws_t, slot: *mut c_void) {
        state.ws.set(ws);
        state.id.set(self.core().registry.borrow_mut().insert(slot));
        self.core().count_socket(true);
    }

    fn closing(&self) {
        self.core().count_socket(false);
    }

    crate::websocket::dispatch::handler_events!();
}

impl<H: WebSocketHandler> Ctx<H> {
    fn core(&self) -> &Core {
        self.server.core()
    }

    fn fetch(&self, res: *mut sys::uws_res_t, req: *mut sys::uws_req_t, ws_context: *mut c_void) {
        self.respond(res, req, ws_context, |request, server| {
            self.handler.fetch(request, server)
        })
    }

    /// Answers a request with what `call` returns: `fetch`, or a route's
    /// handler (crate::routes), which have the same powers.
    pub(crate) fn respond(
        &self,
        res: *mut sys::uws_res_t,
        req: *mut sys::uws_req_t,
        ws_context: *mut c_void,
        call: impl FnOnce(&mut Request<'_>, &Server<Data<H>>) -> Response,
    ) {
        let core = self.core();
        let ssl = core.ssl;
        // Counted in before anything else: every user value dropped below
        // (the request's options, the response) drops inside.
        let _in = core.gate.enter();
        if core.doomed() {
            Response::new("server gone")
                .with_status(503)
                .write(ssl, res, true, false);
            return;
        }
        let mut request = Request::new(req, res, ssl, ws_context, core);
        let result = core.gate.call("fetch", || call(&mut request, &self.server));
        let upgrade = request.upgrade.take();
        let (response, upgrade) = match result {
            Ok(response) => (response, upgrade),
            Err(error) => {
                core.dispose(upgrade);
                dispatch::report(self, None, &error);
                (Response::new("internal error").with_status(500), None)
            }
        };
        if request.deferred {
            // Answered later (a panic after deferring leaves that to the
            // pending request, which answers 500 if it is dropped).
            // `upgrade` refuses a deferred request, so there are no options.
            core.dispose(upgrade);
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
                    Err(other) => {
                        core.dispose(other);
                        Response::new("")
                            .with_status(500)
                            .write(ssl, res, false, false)
                    }
                }
            }
            Some(upgrade) => {
                core.dispose(upgrade);
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
    let (c, state) = unsafe { (ctx::<H>(c), &*(user as *const SocketState<Core>)) };
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
    let _in = core.gate.enter();
    // SAFETY: the topic bytes are valid during the call.
    let topic = unsafe { bytes(topic, length) };
    let (old, new) = (old_count.max(0) as usize, new_count.max(0) as usize);
    core.count_subscribers(topic, old, new);
    let topic = String::from_utf8_lossy(topic);
    core.call("subscription", || {
        c.handler.subscription(&c.server, id, &topic, old, new)
    });
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
        unsafe { close_now(c.cast::<Ctx<H>>(), slot.cast(), code, reason) }
    }
    unsafe fn report<H: WebSocketHandler>(c: *const c_void, error: &Error) {
        // SAFETY: `c` is this handler's context.
        dispatch::report(unsafe { ctx::<H>(c.cast_mut()) }, None, error)
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
    b.open = Some(dispatch::on_open::<Ctx<H>>);
    b.message = Some(dispatch::on_message::<Ctx<H>>);
    b.drain = Some(dispatch::on_drain::<Ctx<H>>);
    b.ping = Some(dispatch::on_ping::<Ctx<H>>);
    b.pong = Some(dispatch::on_pong::<Ctx<H>>);
    b.subscription = Some(on_subscription::<H>);
    b.close = Some(dispatch::on_close::<Ctx<H>>);
    b.ctx = c.cast_mut().cast();
    b
}
