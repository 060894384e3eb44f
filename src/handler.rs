//! The handler trait (Bun's `fetch` plus `websocket: { open, message, ... }`)
//! and the `extern "C"` trampolines that dispatch native events to it.

use std::any::Any;
use std::ffi::{c_char, c_int, c_void};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::Error;
use crate::registry::SocketId;
use crate::server::{Core, Server};
use crate::sys;
use crate::upgrade::{Request, Response, UpgradeOptions};
use crate::websocket::{bytes, Frame, Message, ReadyState, ServerWebSocket};

/// One server's handlers: Bun's `fetch` and `websocket: { ... }` in one
/// object, called on the server's thread. Only `fetch` is required (Bun
/// requires it too); the others default to doing nothing.
///
/// Handlers take `&self`: the server is single-threaded, so keep mutable
/// state in `Cell`/`RefCell`, or per socket in [`Data`](Self::Data).
/// A panic in any handler is caught, passed to [`error`](Self::error), and
/// the socket it ran for is closed with 1011 (`fetch`: answered with 500).
///
/// ```no_run
/// use uws::*;
///
/// struct Echo;
///
/// impl WebSocketHandler for Echo {
///     type Data = ();
///
///     // fetch(req, server) { if (server.upgrade(req)) return; return new Response("no", { status: 400 }) }
///     fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
///         if server.upgrade(req, UpgradeOptions::new(())) {
///             return Response::new("");
///         }
///         Response::new("no").with_status(400)
///     }
///
///     // message(ws, message) { ws.send(message) }
///     fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
///         ws.send(message, false);
///     }
/// }
///
/// let app = serve(ServeOptions { port: 0, ..Default::default() }, Echo)?;
/// println!("listening on {}:{}", app.hostname(), app.port());
/// app.run();
/// # Ok::<(), uws::Error>(())
/// ```
pub trait WebSocketHandler: Sized + 'static {
    /// The contextual data of each socket (Bun's `ws.data`), given to
    /// [`Server::upgrade`].
    type Data: 'static;

    /// Every HTTP request. Call [`Server::upgrade`] to make it a WebSocket
    /// (the response returned then is ignored), or return the response.
    fn fetch(&self, req: &mut Request<'_>, server: &Server<Self::Data>) -> Response;

    /// A socket has opened (after `fetch` returned).
    fn open(&self, ws: &mut ServerWebSocket<Self::Data>) {
        let _ = ws;
    }

    /// A complete message arrived (fragments are joined first).
    fn message(&self, ws: &mut ServerWebSocket<Self::Data>, message: Message<'_>) {
        let _ = (ws, message);
    }

    /// The socket has closed: `code` and `reason` are the peer's close
    /// frame, ours, the code the server failed the connection with on a
    /// protocol error (1002, 1007 for invalid UTF-8, 1009 for a message over
    /// `max_payload_length`; the reason says why, e.g. "Received too big
    /// message"), or 1006 when the connection was lost. Runs exactly once per
    /// opened socket; `ws.data` is dropped right after.
    fn close(&self, ws: &mut ServerWebSocket<Self::Data>, code: u16, reason: &str) {
        let _ = (ws, code, reason);
    }

    /// The socket's send buffer has been written out after backpressure.
    fn drain(&self, ws: &mut ServerWebSocket<Self::Data>) {
        let _ = ws;
    }

    /// A ping arrived (uWebSockets has already answered it with a pong).
    fn ping(&self, ws: &mut ServerWebSocket<Self::Data>, data: &[u8]) {
        let _ = (ws, data);
    }

    /// A pong arrived.
    fn pong(&self, ws: &mut ServerWebSocket<Self::Data>, data: &[u8]) {
        let _ = (ws, data);
    }

    /// A socket subscribed to or left `topic` (also when it closes while
    /// subscribed); the counts are the topic's subscribers before and after.
    /// The socket is named by id because this runs inside the socket's own
    /// `subscribe`/`unsubscribe`/`close` call. uWebSockets' own event,
    /// hidden by Bun.
    fn subscription(
        &self,
        server: &Server<Self::Data>,
        ws: SocketId,
        topic: &str,
        old_count: usize,
        new_count: usize,
    ) {
        let _ = (server, ws, topic, old_count, new_count);
    }

    /// A handler panicked (`ws` is the socket it ran for, if any). The
    /// default prints the error to stderr.
    fn error(&self, ws: Option<&mut ServerWebSocket<Self::Data>>, error: &Error) {
        let _ = ws;
        eprintln!("uws: {error}");
    }
}

/// What the native callbacks point at: the handler and its server.
pub(crate) struct Ctx<H: WebSocketHandler> {
    pub(crate) handler: H,
    pub(crate) server: Server<H::Data>,
}

type Slot<H> = ServerWebSocket<<H as WebSocketHandler>::Data>;

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
    let _ = drop_contained(payload);
    Error::HandlerPanic { handler, message }
}

/// Drops `value`, containing a panic of its destructor.
pub(crate) fn drop_contained<T>(value: T) -> Result<(), Error> {
    catch_unwind(AssertUnwindSafe(move || drop(value))).map_err(|p| Error::HandlerPanic {
        handler: "drop",
        message: panic_message(&*p),
    })
}

impl<H: WebSocketHandler> Ctx<H> {
    fn core(&self) -> &Core {
        self.server.core()
    }

    fn report(&self, ws: Option<&mut Slot<H>>, error: &Error) {
        // A panicking error handler has nowhere left to report to.
        let _ = catch_unwind(AssertUnwindSafe(|| self.handler.error(ws, error)));
    }

    /// Runs `f` on the socket with its frame pushed (see [`Frame`]),
    /// containing a panic. Returns whether `f` panicked and the frame as
    /// it ended (its state, and a close that arrived meanwhile).
    ///
    /// # Safety
    /// `ws` is a live socket of this server and `slot` its data, not
    /// borrowed by anyone (no frame for `ws` on the stack).
    unsafe fn in_frame(
        &self,
        ws: *mut sys::uws_ws_t,
        slot: *mut Slot<H>,
        state: ReadyState,
        name: &'static str,
        f: impl FnOnce(&H, &mut Slot<H>),
    ) -> (bool, Frame) {
        let core = self.core();
        // SAFETY: nobody borrows `slot` (caller's promise).
        let frame = Frame::new(ws, core, unsafe { (*slot).id }, state);
        core.top.set(&frame);
        // SAFETY: as above; from here until the frame is popped, the only
        // access to the slot is the `&mut` handed to `f` and the error handler.
        let sws = unsafe {
            (*slot).frame = &frame;
            &mut *slot
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&self.handler, &mut *sws)));
        let panicked = result.is_err();
        if let Err(p) = result {
            self.report(Some(sws), &caught(name, p));
        }
        core.top.set(frame.prev);
        (panicked, frame)
    }

    /// Runs a handler on an open socket, then deals with what happened
    /// meanwhile: a panic closes with 1011, a close that arrived during the
    /// handler runs the close handler now.
    ///
    /// # Safety
    /// As for [`in_frame`](Self::in_frame).
    pub(crate) unsafe fn dispatch(
        &self,
        ws: *mut sys::uws_ws_t,
        slot: *mut Slot<H>,
        name: &'static str,
        f: impl FnOnce(&H, &mut Slot<H>),
    ) {
        // SAFETY: caller's promise.
        let (panicked, frame) = unsafe { self.in_frame(ws, slot, ReadyState::Open, name, f) };
        match frame.deferred_close.take() {
            // SAFETY: the frame is gone, so the slot is free again; the
            // socket closed during `f` and its close handler is still owed.
            Some(closed) => unsafe { self.close_now(ws, slot, closed.0, &closed.1) },
            None if panicked && frame.state.get() == ReadyState::Open => {
                let reason = "internal error";
                // SAFETY: the socket is still open; its close callback comes
                // back into `on_close`, which now finds no frame and runs
                // the close handler at once.
                unsafe {
                    sys::uws_ws_end(
                        self.core().ssl,
                        ws,
                        1011,
                        reason.as_ptr().cast(),
                        reason.len(),
                    )
                };
            }
            None => {}
        }
    }

    /// Runs the close handler and drops the socket's data.
    ///
    /// # Safety
    /// As for [`in_frame`](Self::in_frame); `slot` is freed on return.
    pub(crate) unsafe fn close_now(
        &self,
        ws: *mut sys::uws_ws_t,
        slot: *mut Slot<H>,
        code: i32,
        reason: &[u8],
    ) {
        // SAFETY: not borrowed (caller's promise).
        self.core()
            .registry
            .borrow_mut()
            .remove(unsafe { (*slot).id });
        let reason = String::from_utf8_lossy(reason);
        let code = u16::try_from(code).unwrap_or(1006);
        // SAFETY: as for `in_frame`. The frame's Closed state makes every
        // send inside the close handler return Dropped.
        unsafe {
            self.in_frame(ws, slot, ReadyState::Closed, "close", |h, s| {
                h.close(s, code, &reason)
            });
            // The slot came from `Box::into_raw` at upgrade and this is the
            // one place that frees it.
            if let Err(e) = drop_contained(Box::from_raw(slot)) {
                self.report(None, &e);
            }
        }
    }

    fn fetch(&self, res: *mut sys::uws_res_t, req: *mut sys::uws_req_t, ws_context: *mut c_void) {
        let ssl = self.core().ssl;
        let mut request = Request {
            raw: req,
            res,
            ssl,
            ws_context,
            upgrade: None,
            _borrow: PhantomData,
        };
        match catch_unwind(AssertUnwindSafe(|| {
            self.handler.fetch(&mut request, &self.server)
        })) {
            Ok(response) => match request.upgrade.take() {
                Some(upgrade) => match upgrade.downcast::<UpgradeOptions<H::Data>>() {
                    Ok(options) => self.accept(&request, *options),
                    // `Server<T>::upgrade` only ever stores `UpgradeOptions<T>`.
                    Err(_) => Response::new("").with_status(500).write(ssl, res),
                },
                None => response.write(ssl, res),
            },
            Err(p) => {
                let error = caught("fetch", p);
                if let Some(upgrade) = request.upgrade.take() {
                    if let Err(e) = drop_contained(upgrade) {
                        self.report(None, &e);
                    }
                }
                self.report(None, &error);
                Response::new("internal error")
                    .with_status(500)
                    .write(ssl, res);
            }
        }
    }

    /// Completes an upgrade that `fetch` asked for; the open handler runs
    /// before this returns.
    fn accept(&self, request: &Request<'_>, options: UpgradeOptions<H::Data>) {
        let ssl = self.core().ssl;
        let key = request
            .header_bytes("sec-websocket-key")
            .unwrap_or_default();
        let extensions = request
            .header_bytes("sec-websocket-extensions")
            .unwrap_or_default();
        let protocol = options.protocol.as_deref().unwrap_or("");
        let slot = Box::into_raw(Box::new(ServerWebSocket {
            frame: std::ptr::null(),
            id: SocketId::NONE,
            data: options.data,
        }));
        let status = "101 Switching Protocols";
        // SAFETY: `res` is the live response of this request; the header
        // views point into the request buffer, alive during the call. The
        // slot pointer becomes the socket's user data, handed back to
        // `on_open` and freed in `close_now`.
        unsafe {
            sys::uws_res_write_status(ssl, request.res, status.as_ptr().cast(), status.len());
            for (k, v) in &options.headers {
                sys::uws_res_write_header(
                    ssl,
                    request.res,
                    k.as_ptr().cast(),
                    k.len(),
                    v.as_ptr().cast(),
                    v.len(),
                );
            }
            sys::uws_res_upgrade(
                ssl,
                request.res,
                slot.cast(),
                key.as_ptr().cast(),
                key.len(),
                protocol.as_ptr().cast(),
                protocol.len(),
                extensions.as_ptr().cast(),
                extensions.len(),
                request.ws_context,
            );
        }
    }
}

/// # Safety
/// `ctx` is the `Ctx<H>` registered with the behavior, alive while the app is.
unsafe fn ctx<'a, H: WebSocketHandler>(ctx: *mut c_void) -> &'a Ctx<H> {
    // SAFETY: caller's promise.
    unsafe { &*(ctx as *const Ctx<H>) }
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
        let slot = user as *mut Slot<H>;
        (*slot).id = c.core().registry.borrow_mut().insert(ws, user);
        c.dispatch(ws, slot, "open", |h, s| h.open(s));
    }
}

pub(crate) unsafe extern "C" fn on_message<H: WebSocketHandler>(
    c: *mut c_void,
    ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
    opcode: sys::uws_opcode_t,
) {
    // SAFETY: context and slot as in `on_open`; uWebSockets only delivers
    // messages outside our callbacks for this socket, and has checked that
    // text messages are UTF-8.
    unsafe {
        let payload = bytes(data, length);
        let message = if opcode == sys::UWS_OPCODE_TEXT {
            Message::Text(std::str::from_utf8_unchecked(payload))
        } else {
            Message::Binary(payload)
        };
        ctx::<H>(c).dispatch(ws, user.cast(), "message", |h, s| h.message(s, message));
    }
}

pub(crate) unsafe extern "C" fn on_drain<H: WebSocketHandler>(
    c: *mut c_void,
    ws: *mut sys::uws_ws_t,
    user: *mut c_void,
) {
    // SAFETY: as in `on_message`.
    unsafe { ctx::<H>(c).dispatch(ws, user.cast(), "drain", |h, s| h.drain(s)) };
}

/// Ping and pong: a handler method taking the frame's payload.
///
/// # Safety
/// As for `on_message`.
unsafe fn on_control<H: WebSocketHandler>(
    c: *mut c_void,
    ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
    name: &'static str,
    method: fn(&H, &mut Slot<H>, &[u8]),
) {
    // SAFETY: as in `on_message`.
    unsafe {
        let payload = bytes(data, length);
        ctx::<H>(c).dispatch(ws, user.cast(), name, |h, s| method(h, s, payload));
    }
}

pub(crate) unsafe extern "C" fn on_ping<H: WebSocketHandler>(
    c: *mut c_void,
    ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
) {
    // SAFETY: the native ping callback's arguments, as `on_control` needs.
    unsafe { on_control(c, ws, user, data, length, "ping", H::ping) }
}

pub(crate) unsafe extern "C" fn on_pong<H: WebSocketHandler>(
    c: *mut c_void,
    ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
) {
    // SAFETY: the native pong callback's arguments, as `on_control` needs.
    unsafe { on_control(c, ws, user, data, length, "pong", H::pong) }
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
    // SAFETY: context as in `on_open`. The slot may be borrowed by a frame
    // (this runs inside the socket's own subscribe/close): then the id is
    // read from the frame, and the slot only when no frame holds it.
    unsafe {
        let c = ctx::<H>(c);
        let id = match c.core().find_frame(ws) {
            Some(frame) => frame.id,
            None => (*(user as *const Slot<H>)).id,
        };
        let topic = String::from_utf8_lossy(bytes(topic, length));
        let (old, new) = (old_count.max(0) as usize, new_count.max(0) as usize);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| {
            c.handler.subscription(&c.server, id, &topic, old, new)
        })) {
            let error = Error::HandlerPanic {
                handler: "subscription",
                message: panic_message(&*p),
            };
            let _ = drop_contained(p);
            c.report(None, &error);
        }
    }
}

pub(crate) unsafe extern "C" fn on_close<H: WebSocketHandler>(
    c: *mut c_void,
    ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    code: c_int,
    message: *const c_char,
    length: usize,
) {
    // SAFETY: context as in `on_open`; the reason bytes are valid for this
    // call (copied when deferred). A socket whose frame is on the stack is
    // borrowed: record the close there, and the frame's owner runs the
    // close handler when it is done.
    unsafe {
        let c = ctx::<H>(c);
        let core = c.core();
        let reason = bytes(message, length);
        match core.find_frame(ws) {
            Some(frame) => {
                if frame.state.get() == ReadyState::Open {
                    frame.state.set(ReadyState::Closed);
                }
                frame
                    .deferred_close
                    .set(Some(Box::new((code, reason.into()))));
                core.registry.borrow_mut().remove(frame.id);
            }
            None => c.close_now(ws, user.cast(), code, reason),
        }
    }
}

/// Type-erased entry points for code that only knows the [`Core`].
pub(crate) unsafe fn close_erased<H: WebSocketHandler>(
    c: *const c_void,
    ws: *mut sys::uws_ws_t,
    slot: *mut c_void,
    code: i32,
    reason: &[u8],
) {
    // SAFETY: `c` is this handler's context; the caller upholds `close_now`'s contract.
    unsafe { ctx::<H>(c.cast_mut()).close_now(ws, slot.cast(), code, reason) }
}

pub(crate) unsafe fn report_erased<H: WebSocketHandler>(c: *const c_void, error: &Error) {
    // SAFETY: `c` is this handler's context.
    unsafe { ctx::<H>(c.cast_mut()).report(None, error) }
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
