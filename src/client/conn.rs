//! One client connection, from the URL to `open`, and the events after.
//!
//! A connection is two allocations: its slot (shared with server sockets:
//! state plus the user's data, see `websocket::slot`), and a `Conn<H>`
//! with the handler and the connection's own facts (`ClientCore`, which
//! the slot's state points at). Both are freed together: after the close
//! handler of a connection that opened (`Events::released`), or after
//! `error` for one that never did.

use std::cell::{Cell, OnceCell, RefCell};
use std::ffi::{c_char, c_int, c_void, CString};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ptr;
use std::time::Duration;

use crate::client::handle::ClientHandle;
use crate::client::handshake::Offer;
use crate::client::hub::Hub;
use crate::client::url::Target;
use crate::client::{ClientHandler, ConnectOptions};
use crate::error::Error;
use crate::ffi::bytes;
use crate::registry::SocketId;
use crate::runtime::Gate;
use crate::sys;
use crate::tls::Pem;
use crate::websocket::dispatch::{self, Events, SlotOf};
use crate::websocket::slot::{Slot, SocketState};
use crate::websocket::{ClientSide, ReadyState};

/// What a client socket's state points at: the connection's own facts,
/// whatever its handler type (`pub` only for the sealed `Side` trait).
pub struct ClientCore {
    pub(crate) ssl: c_int,
    /// permessage-deflate was negotiated with room for our compressor.
    pub(crate) compress_sends: Cell<bool>,
    pub(crate) protocol: OnceCell<Option<String>>,
    pub(crate) extensions: OnceCell<Option<String>>,
    pub(crate) url: String,
    /// The server (registry number) that opened it, if one did.
    pub(crate) owner: Option<u32>,
    pub(crate) hub: *const Hub,
    hooks: &'static Hooks,
}

/// The handler-typed entry points, for code that only has the core (the
/// core is the first field of its `Conn<H>`, so its address is the
/// connection's).
struct Hooks {
    /// Runs the close handler of a socket whose close arrived while it was
    /// busy, and frees it.
    close: unsafe fn(*const ClientCore, *mut c_void, i32, &[u8]),
    /// The host name resolved (or not).
    resolved: unsafe fn(*const ClientCore, io::Result<Vec<SocketAddr>>),
    /// Abandons a connection that has not opened, with this error.
    abort: unsafe fn(*const ClientCore, Error),
}

/// Until the connection opens: how to get there.
struct Attempt {
    context: *mut sys::uws_client_context_t,
    host: CString,
    port: u16,
    request: Vec<u8>,
    offer: Offer,
    options: sys::uws_client_options_t,
    addresses: Vec<SocketAddr>,
    next: usize,
    last_error: Option<io::Error>,
    /// Why the handshake's answer was refused.
    refusal: Option<Error>,
    /// Keeps the loop running while we connect (and resolve), and
    /// enforces the connect timeout.
    timer: *mut sys::uws_timer_t,
}

#[repr(C)]
pub(crate) struct Conn<H: ClientHandler> {
    core: ClientCore,
    handler: H,
    slot: Cell<*mut SlotOf<Self>>,
    attempt: RefCell<Option<Box<Attempt>>>,
}

impl ClientCore {
    fn hub(&self) -> &Hub {
        // SAFETY: the hub lives until its thread exits, after every
        // connection of it.
        unsafe { &*self.hub }
    }

    fn connect_error(&self, source: io::Error) -> Error {
        Error::Connect {
            url: self.url.clone(),
            source,
        }
    }

    /// Closes the open connection `id` (socket `ws`) at once; inside a
    /// client callback of this thread, at the loop's next wakeup instead
    /// (a handler may still read views of the socket's buffers).
    pub(crate) fn terminate(&self, id: SocketId, ws: *mut sys::uws_ws_t) {
        let hub = self.hub();
        if !hub.gate().in_callback() {
            // SAFETY: the caller's open socket of this kind.
            unsafe { sys::uws_client_close(self.ssl, ws) };
            return;
        }
        let ssl = self.ssl;
        let job = move |hub: &Hub| {
            let Some(state) = hub.connection(id) else {
                return;
            };
            // SAFETY: a registered connection's state, read before the
            // close frees it.
            let (ready, ws) = unsafe { ((*state).ready.get(), (*state).ws.get()) };
            if matches!(ready, ReadyState::Open | ReadyState::Closing) && !ws.is_null() {
                // SAFETY: the connection is open (registered, past its
                // handshake); its close callback runs the close handler.
                unsafe { sys::uws_client_close(ssl, ws) };
            }
        };
        // Unbounded: a close must not be lost to a full queue.
        let _ = hub.shared.push(Box::new(job), false);
    }

    /// Ends a registered connection: an open one with a close frame
    /// (`now`: at once, the close handler sees 1006), one that has not
    /// opened is abandoned (its `error` says so). Nothing for one that is
    /// already closing.
    ///
    /// # Safety
    /// `state` is a registered connection's, live for the call.
    pub(crate) unsafe fn shut(
        state: *const SocketState<ClientCore>,
        now: bool,
        code: u16,
        reason: &str,
    ) {
        // SAFETY: the caller's promise; the core lives as long as the state.
        let (state, core_ptr) = unsafe { (&*state, (*state).core) };
        // SAFETY: as above; not used once `abort` may have freed it.
        let core = unsafe { &*core_ptr };
        match state.ready.get() {
            ReadyState::Connecting => {
                let (abort, error) = (
                    core.hooks.abort,
                    core.connect_error(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "closed before the connection opened",
                    )),
                );
                // SAFETY: the core's own hook, for a connection not open;
                // it frees the connection (and `state`).
                unsafe { abort(core_ptr, error) };
            }
            ReadyState::Open => {
                let ws = state.ws.get();
                state.ready.set(ReadyState::Closing);
                if now {
                    // At once only when no client handler runs: one may
                    // hold views of this socket's buffers (a message joined
                    // from fragments), which the close frees. (A server's
                    // `stop_now` from a client handler comes here.)
                    core.terminate(state.id.get(), ws);
                    return;
                }
                // SAFETY: the socket is open; its close callback runs the
                // close handler (deferred while it is busy).
                unsafe {
                    sys::uws_client_end(
                        core.ssl,
                        ws,
                        code.into(),
                        reason.as_ptr().cast(),
                        reason.len(),
                    )
                };
            }
            ReadyState::Closing | ReadyState::Closed => {}
        }
    }

    /// Runs a deferred close (see `dispatch::with_open`). A pointer, not
    /// `&self`: the connection is freed inside.
    ///
    /// # Safety
    /// As `dispatch::close_now` for this core's connection and `slot`.
    pub(crate) unsafe fn close_deferred(
        core: *const ClientCore,
        slot: *mut c_void,
        code: i32,
        reason: &[u8],
    ) {
        // SAFETY: the caller's promise; the hook is read before the call.
        unsafe { ((*core).hooks.close)(core, slot, code, reason) }
    }

    /// The host name's addresses arrived (on the loop's thread). A
    /// pointer, not `&self`: a failure frees the connection inside.
    ///
    /// # Safety
    /// `core` belongs to a registered connection.
    pub(crate) unsafe fn resolved(core: *const ClientCore, addresses: io::Result<Vec<SocketAddr>>) {
        // SAFETY: the caller's promise; the hook is read before the call.
        unsafe { ((*core).hooks.resolved)(core, addresses) }
    }
}

/// The native behavior of `H`'s connections.
fn behavior<H: ClientHandler>() -> &'static sys::uws_client_behavior_t {
    const {
        &sys::uws_client_behavior_t {
            open: Some(dispatch::on_open::<Conn<H>>),
            message: Some(dispatch::on_message::<Conn<H>>),
            drain: Some(dispatch::on_drain::<Conn<H>>),
            ping: Some(dispatch::on_ping::<Conn<H>>),
            pong: Some(dispatch::on_pong::<Conn<H>>),
            close: Some(dispatch::on_close::<Conn<H>>),
            upgrade: Some(on_upgrade::<H>),
            failed: Some(on_failed::<H>),
        }
    }
}

fn hooks<H: ClientHandler>() -> &'static Hooks {
    unsafe fn close<H: ClientHandler>(
        core: *const ClientCore,
        slot: *mut c_void,
        code: i32,
        reason: &[u8],
    ) {
        // SAFETY: the core is its `Conn<H>`'s first field; the caller
        // upholds `close_now`'s contract.
        unsafe { dispatch::close_now(core.cast::<Conn<H>>(), slot.cast(), code, reason) }
    }
    unsafe fn resolved<H: ClientHandler>(
        core: *const ClientCore,
        addresses: io::Result<Vec<SocketAddr>>,
    ) {
        // SAFETY: as in `close`.
        unsafe { Conn::<H>::resolved(core.cast(), addresses) }
    }
    unsafe fn abort<H: ClientHandler>(core: *const ClientCore, error: Error) {
        // SAFETY: as in `close`.
        unsafe { Conn::<H>::abort(core.cast(), error) }
    }
    const {
        &Hooks {
            close: close::<H>,
            resolved: resolved::<H>,
            abort: abort::<H>,
        }
    }
}

/// The PEM bytes of the extra CA certificates.
fn ca_bytes(ca: &Pem) -> Result<Vec<u8>, Error> {
    match ca {
        Pem::Memory(text) => Ok(text.clone().into_bytes()),
        Pem::File(path) => std::fs::read(path).map_err(|e| Error::Tls {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Starts a connection on this thread's loop (see [`crate::connect`]).
pub(crate) fn connect<H: ClientHandler>(
    url: &str,
    options: ConnectOptions,
    handler: H,
    data: H::Data,
    owner: Option<u32>,
) -> Result<ClientHandle<H::Data>, Error> {
    let target = Target::parse(url)?;
    let native = options.check()?;
    if target.tls && !cfg!(feature = "tls") {
        return Err(Error::InvalidOption {
            name: "url",
            reason: "wss:// needs the `tls` cargo feature".into(),
        });
    }
    let ca = options.tls.ca.as_ref().map(ca_bytes).transpose()?;
    let hub_ptr = Hub::get()?;
    // SAFETY: this thread's hub, live until the thread exits.
    let hub = unsafe { &*hub_ptr };
    let ssl = i32::from(target.tls);
    let context = hub.context(ssl, !options.tls.danger_accept_invalid_certs, ca.as_deref())?;
    let (request, offer) = Offer::new(&target, &options);
    let host = CString::new(target.host.as_str()).map_err(|_| Error::InvalidOption {
        name: "url",
        reason: "the host contains a NUL byte".into(),
    })?;
    // It keeps `run` going until we are connected or have failed; closed
    // before the connection is freed.
    let timer = crate::ffi::timer(hub.loop_(), true)?;
    let conn = Box::into_raw(Box::new(Conn {
        core: ClientCore {
            ssl,
            compress_sends: Cell::new(false),
            protocol: OnceCell::new(),
            extensions: OnceCell::new(),
            url: target.url(),
            owner,
            hub: hub_ptr,
            hooks: hooks::<H>(),
        },
        handler,
        slot: Cell::new(ptr::null_mut()),
        attempt: RefCell::new(Some(Box::new(Attempt {
            context,
            host,
            port: target.port,
            request,
            offer,
            options: native,
            addresses: Vec::new(),
            next: 0,
            last_error: None,
            refusal: None,
            timer,
        }))),
    }));
    // SAFETY: just made; the core lives at a fixed address until the
    // connection is freed, after its slot.
    let slot =
        Slot::<ClientSide, H::Data>::new(unsafe { &(*conn).core }, data, ReadyState::Connecting);
    let id = hub.registry.borrow_mut().insert(slot.cast());
    // SAFETY: both just made, nothing else refers to them yet.
    unsafe {
        (*slot).state.id.set(id);
        (*conn).slot.set(slot);
    }
    if let Some(timeout) = options.connect_timeout {
        // SAFETY: our timer; `conn` outlives it (the timer is closed
        // before the connection is freed).
        unsafe {
            sys::uws_timer_set(
                timer,
                Some(Conn::<H>::timed_out),
                conn.cast(),
                millis(timeout),
                0,
            )
        };
    }
    let handle = ClientHandle::new(hub.shared.clone(), id);
    match target.ip() {
        Some(ip) => {
            // SAFETY: a live connection of this thread, not open yet.
            let started = unsafe { Conn::<H>::start(conn, vec![SocketAddr::new(ip, target.port)]) };
            if let Err(e) = started {
                // `error` never runs inside `connect`: report it from the loop.
                let job = move |hub: &Hub| {
                    if let Some(state) = hub.connection(id) {
                        // SAFETY: registered, so live; not open.
                        unsafe {
                            let core = &*(*state).core;
                            (core.hooks.abort)(core, core.connect_error(e));
                        }
                    }
                };
                // Unbounded: the connection is registered and waits for
                // this report; a full queue must not lose it.
                let _ = hub.shared.push(Box::new(job), false);
            }
        }
        None => resolve(hub, id, target.host, target.port),
    }
    Ok(handle)
}

/// Resolves `host` on a thread of its own (the resolver blocks) and hands
/// the addresses to the loop.
fn resolve(hub: &Hub, id: SocketId, host: String, port: u16) {
    let shared = hub.shared.clone();
    let lookup = move || {
        let addresses = (host.as_str(), port)
            .to_socket_addrs()
            .map(|a| a.collect::<Vec<_>>());
        let job = move |hub: &Hub| {
            if let Some(state) = hub.connection(id) {
                // SAFETY: registered, so live; the core outlives its state.
                unsafe { ClientCore::resolved((*state).core, addresses) };
            }
        };
        // Unbounded: the connection waits for its addresses, and a full
        // queue must not lose them. Fails only once the thread's clients
        // are gone: nothing to tell then.
        let _ = shared.push(Box::new(job), false);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("uws-resolve".into())
        .spawn(lookup)
    {
        let job = move |hub: &Hub| {
            if let Some(state) = hub.connection(id) {
                // SAFETY: as above.
                unsafe { ClientCore::resolved((*state).core, Err(e)) };
            }
        };
        let _ = hub.shared.push(Box::new(job), false);
    }
}

impl<H: ClientHandler> Conn<H> {
    fn slot_state(&self) -> &SocketState<ClientCore> {
        // SAFETY: the slot is live as long as the connection.
        unsafe { &(*self.slot.get()).state }
    }

    /// Connects to the next address that takes a socket. `Err` when none
    /// is left (the last address's error).
    ///
    /// # Safety
    /// `conn` is live and not open.
    unsafe fn start(conn: *const Self, addresses: Vec<SocketAddr>) -> io::Result<()> {
        // SAFETY: the caller's promise.
        let c = unsafe { &*conn };
        let mut attempt = c.attempt.borrow_mut();
        let a = attempt.as_mut().expect("a connection that has not opened");
        if !addresses.is_empty() {
            a.addresses = addresses;
            a.next = 0;
        }
        while let Some(address) = a.addresses.get(a.next) {
            a.next += 1;
            let ip = CString::new(address.ip().to_string()).expect("no NUL in an address");
            let mut error = 0;
            // SAFETY: the context is this thread's; every pointer is valid
            // for the call (the shim copies what it keeps); `conn` and its
            // slot outlive the native connection (it is cancelled or closed
            // before they are freed).
            let ws = unsafe {
                sys::uws_client_connect(
                    c.core.ssl,
                    a.context,
                    ip.as_ptr(),
                    a.port.into(),
                    a.host.as_ptr(),
                    a.request.as_ptr().cast(),
                    a.request.len(),
                    &a.options,
                    behavior::<H>(),
                    conn.cast_mut().cast(),
                    c.slot.get().cast(),
                    &mut error,
                )
            };
            if !ws.is_null() {
                c.slot_state().ws.set(ws);
                return Ok(());
            }
            a.last_error = Some(io::Error::from_raw_os_error(error));
        }
        c.slot_state().ws.set(ptr::null_mut());
        Err(a
            .last_error
            .take()
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address")))
    }

    /// The connection failed before it opened: `error` runs (with the
    /// socket, closed), then everything is freed.
    ///
    /// # Safety
    /// `conn` is live, not open, and its native socket (if any) is gone.
    unsafe fn fail(conn: *const Self, error: Error) {
        // SAFETY: the caller's promise; not used after it is freed below.
        let c = unsafe { &*conn };
        if let Some(a) = c.attempt.borrow_mut().take() {
            // SAFETY: our timer, closed once (the attempt is gone); this
            // may run inside its own callback, which is allowed.
            unsafe { sys::uws_timer_close(a.timer) };
        }
        let slot = c.slot.get();
        let state = c.slot_state();
        let hub = c.core.hub();
        let entered = hub.gate().enter();
        c.forget(state.id.get());
        state.ready.set(ReadyState::Closed);
        // SAFETY: live and not busy (a connection that has not opened is
        // never handed out); in the Closed state sends are dropped.
        unsafe {
            dispatch::handed(conn, &entered, slot, "error", |ws| {
                c.handler.error(Some(ws), &error)
            })
        };
        // SAFETY: made in `connect`; unregistered and not busy.
        if let Err(e) = hub.gate().dispose(unsafe { Slot::free(slot) }) {
            dispatch::report(c, None, &e);
        }
        // SAFETY: nothing refers to the connection any more.
        unsafe { Self::released(conn) };
    }

    /// Abandons the native connection (if any) and fails with `error`.
    ///
    /// # Safety
    /// `conn` is live and not open.
    unsafe fn abort(conn: *const Self, error: Error) {
        // SAFETY: the caller's promise.
        let c = unsafe { &*conn };
        let ws = c.slot_state().ws.get();
        if !ws.is_null() {
            // SAFETY: a connecting or handshaking socket of ours; no
            // callback runs for it after this.
            unsafe { sys::uws_client_cancel(c.core.ssl, ws) };
        }
        // SAFETY: the native socket is gone.
        unsafe { Self::fail(conn, error) };
    }

    /// # Safety
    /// `conn` is live and not open.
    unsafe fn resolved(conn: *const Self, addresses: io::Result<Vec<SocketAddr>>) {
        // SAFETY: the caller's promise.
        let c = unsafe { &*conn };
        let error = match addresses {
            Ok(a) if a.is_empty() => Error::Dns {
                host: c.host(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            },
            // SAFETY: live and not open (the caller's promise).
            Ok(a) => match unsafe { Self::start(conn, a) } {
                Ok(()) => return,
                Err(e) => c.core.connect_error(e),
            },
            Err(source) => Error::Dns {
                host: c.host(),
                source,
            },
        };
        // SAFETY: no native socket was made.
        unsafe { Self::fail(conn, error) };
    }

    fn host(&self) -> String {
        self.attempt
            .borrow()
            .as_ref()
            .map(|a| a.host.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    unsafe extern "C" fn timed_out(arg: *mut c_void) {
        let conn = arg as *const Self;
        // SAFETY: the timer's argument, live until the timer is closed.
        let c = unsafe { &*conn };
        // SAFETY: the hub outlives its connections.
        let _in = unsafe { &*c.core.hub }.gate().enter();
        let error = c.core.connect_error(io::Error::new(
            io::ErrorKind::TimedOut,
            "the connection did not open within the connect timeout",
        ));
        // SAFETY: the timer only runs while the connection is not open.
        unsafe { Self::abort(conn, error) };
    }
}

/// The response head arrived: opens the connection (returns 1) or records
/// why not (returns 0; `on_failed` follows).
unsafe extern "C" fn on_upgrade<H: ClientHandler>(
    ctx: *mut c_void,
    head: *const c_char,
    length: usize,
    deflate: *mut sys::uws_client_deflate_t,
) -> c_int {
    // SAFETY: `ctx` is the connection registered with the socket, live
    // and not open; the head is valid during the call.
    let (c, head) = unsafe { (&*(ctx as *const Conn<H>), bytes(head, length)) };
    let _in = c.core.hub().gate().enter();
    let mut attempt = c.attempt.borrow_mut();
    let Some(a) = attempt.as_mut() else { return 0 };
    match a.offer.check(head) {
        Ok(accepted) => {
            // SAFETY: our timer, closed once (the attempt goes below).
            unsafe { sys::uws_timer_close(a.timer) };
            let d = accepted.deflate;
            c.core
                .compress_sends
                .set(d.enabled && d.deflate_window != 0);
            let _ = c.core.protocol.set(accepted.protocol);
            let _ = c.core.extensions.set(accepted.extensions);
            // SAFETY: the shim's out-parameter.
            unsafe { *deflate = d.native() };
            *attempt = None;
            1
        }
        Err(refusal) => {
            a.refusal = Some(Error::Handshake {
                url: c.core.url.clone(),
                status: refusal.status,
                reason: refusal.reason,
            });
            0
        }
    }
}

/// The connection failed before it opened (the native socket is gone).
unsafe extern "C" fn on_failed<H: ClientHandler>(
    ctx: *mut c_void,
    failure: sys::uws_client_failure_t,
    error: c_int,
    detail: *const c_char,
    length: usize,
) {
    let conn = ctx as *const Conn<H>;
    // SAFETY: the connection registered with the socket, live and not
    // open; the detail is valid during the call.
    let (c, detail) = unsafe { (&*conn, bytes(detail, length)) };
    // SAFETY: the hub outlives its connections (the guard outlives `c`).
    let _in = unsafe { &*c.core.hub }.gate().enter();
    let detail = String::from_utf8_lossy(detail);
    let url = c.core.url.clone();
    let error = match failure {
        sys::UWS_CLIENT_CONNECT => {
            if let Some(a) = c.attempt.borrow_mut().as_mut() {
                a.last_error = Some(io::Error::from_raw_os_error(error));
            }
            // The next address, if there is one.
            // SAFETY: live and not open.
            match unsafe { Conn::start(conn, Vec::new()) } {
                Ok(()) => return,
                Err(e) => c.core.connect_error(e),
            }
        }
        sys::UWS_CLIENT_TLS => Error::TlsHandshake {
            url,
            reason: if detail.is_empty() {
                "the connection closed during the TLS handshake".into()
            } else {
                detail.into_owned()
            },
        },
        sys::UWS_CLIENT_REFUSED => c
            .attempt
            .borrow_mut()
            .as_mut()
            .and_then(|a| a.refusal.take())
            .unwrap_or_else(|| Error::Handshake {
                url,
                status: None,
                reason: "the answer was refused".into(),
            }),
        sys::UWS_CLIENT_HEAD_TOO_LARGE => Error::Handshake {
            url,
            status: None,
            reason: "the response head is larger than 16 KiB".into(),
        },
        _ => Error::Handshake {
            url,
            status: None,
            reason: "the server closed the connection before answering the handshake".into(),
        },
    };
    // SAFETY: live, not open, no native socket.
    unsafe { Conn::fail(conn, error) };
}

impl<H: ClientHandler> Events for Conn<H> {
    type Side = ClientSide;
    type Data = H::Data;

    fn gate(&self) -> *const Gate {
        self.core.hub().gate()
    }

    fn forget(&self, id: SocketId) {
        self.core.hub().registry.borrow_mut().remove(id);
    }

    fn opened(&self, state: &SocketState<ClientCore>, ws: *mut sys::uws_ws_t, _slot: *mut c_void) {
        state.ws.set(ws);
        state.ready.set(ReadyState::Open);
    }

    crate::websocket::dispatch::handler_events!();

    unsafe fn released(this: *const Self) {
        // SAFETY: made by `Box::into_raw` in `connect`; the caller's
        // promise that nothing refers to it. The hub outlives it. A panic
        // of the handler's destructor has nowhere to go.
        unsafe {
            let hub = (*this).core.hub;
            let _ = (*hub).gate().dispose(Box::from_raw(this.cast_mut()));
        }
    }
}

/// A connect timeout as the native timer takes it.
fn millis(d: Duration) -> i32 {
    d.as_millis().clamp(1, i32::MAX as u128) as i32
}
