//! Starting, running and stopping a server: Bun's `Bun.serve()` and its
//! `Server` object.

mod app;
pub(crate) mod callbacks;
pub(crate) mod cluster;
pub(crate) mod handle;
mod timers;

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void, CString};
use std::marker::PhantomData;
use std::net::ToSocketAddrs;
use std::os::unix::ffi::OsStrExt;
use std::ptr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::link::{Link as BusLink, Target as BusTarget};
use crate::bus::BusStatus;
use crate::client::{ClientHandle, ClientHandler, ConnectOptions};
use crate::error::Error;
use crate::handler::WebSocketHandler;
use crate::http::{write_header, PendingTable, Request};
use crate::options::{ServeOptions, SubprotocolPolicy};
use crate::registry::{Registry, SocketId};
use crate::runtime::Gate;
use crate::sys;
use crate::tls::{self, NativeTls, TlsOptions};
use crate::upgrade::UpgradeOptions;
use crate::websocket::dispatch::with_open;
use crate::websocket::slot::{Slot, SocketState};
use crate::websocket::{
    check_close_code, truncate_reason, Message, PublishStatus, ReadyState, SendStatus, ServerSide,
    ServerWebSocket,
};

pub use app::App;
pub(crate) use app::{run_thread_loop, thread_exiting, ThreadLoop};
pub use cluster::serve_threaded;
use cluster::Link;
pub use handle::{OwnedMessage, ServerHandle};
pub(crate) use handle::{Shared, Target};
pub use timers::TimerId;
use timers::Timers;

/// How often a stopping server closes HTTP connections that became idle.
const STOP_SWEEP: Duration = Duration::from_millis(100);

/// A close that frees connection state at once, asked for while a callback
/// runs. A handler may still read views into that state (a fragmented
/// message joined in the socket's fragment buffer, a request head parsed
/// from the connection's buffer, a close reason), and uWebSockets may be
/// walking the socket below us. So these closes happen at the loop's next
/// wakeup.
enum Postponed {
    Terminate(SocketId),
    CloseAll,
}

/// Entry points into the handler's generic code, for code that only knows
/// the [`Core`].
pub(crate) struct Hooks {
    /// Runs the close handler of a socket whose close arrived while it was
    /// busy, and frees its slot.
    pub(crate) close: unsafe fn(*const c_void, *mut c_void, i32, &[u8]),
    /// Reports an error to the handler.
    pub(crate) report: unsafe fn(*const c_void, &Error),
}

/// What every server knows, whatever its handler type.
pub struct Core {
    pub(crate) ssl: i32,
    app: *mut sys::uws_app_t,
    loop_: *mut sys::uws_loop_t,
    /// The HTTP socket context (from the listen socket).
    http: Cell<*mut c_void>,
    /// The WebSocket socket context (from the first upgrade).
    ws_context: Cell<*mut c_void>,
    port: Cell<u16>,
    hostname: String,
    pub(crate) publish_to_self: bool,
    /// Whether sends asked to compress may be compressed.
    compress_sends: bool,
    pub(crate) subprotocols: SubprotocolPolicy,
    pub(crate) registry: RefCell<Registry>,
    /// Requests taken out of `fetch`, waiting for their answer.
    pub(crate) pending: RefCell<PendingTable>,
    max_request_body_size: usize,
    timers: Timers,
    /// Every call into user code goes through it; it counts this server's
    /// callbacks on the stack (see [`App`]'s drop).
    pub(crate) gate: Gate,
    /// Closes asked for inside a callback, done at the loop's next wakeup
    /// (see [`Postponed`]).
    postponed: RefCell<Vec<Postponed>>,
    /// A wakeup for them is queued.
    has_postponed: Cell<bool>,
    /// The socket whose own subscribe/unsubscribe call is running.
    subscribing: Cell<*mut sys::uws_ws_t>,
    /// Read by the shim before each subscription event (see `uws_ws_behavior_t`).
    subscription_enabled: Cell<c_int>,
    stopping: Cell<bool>,
    /// The App was dropped inside one of its callbacks; it is freed later.
    doomed: Cell<bool>,
    grace: Duration,
    stop_timer: Cell<*mut sys::uws_timer_t>,
    stop_deadline: Cell<Option<Instant>>,
    /// On several threads: this thread's place among them.
    cluster: Option<Link>,
    /// On several threads, keeps the loop running until the stop (there is
    /// no listening socket on it).
    keepalive: Cell<*mut sys::uws_timer_t>,
    /// On several threads: publishes for each other thread, sent off at the
    /// end of the loop iteration.
    outbox: RefCell<Vec<Vec<cluster::Forward>>>,
    /// The inbox's batch buffer, kept for its capacity.
    inbox_spare: RefCell<Vec<cluster::Forward>>,
    pub(crate) shared: Arc<Shared>,
    ctx: Cell<*const c_void>,
    hooks: Hooks,
    /// The bridge to the pub/sub bus, when the server has one (shared by
    /// its threads).
    pub(crate) bus: Option<Arc<BusLink>>,
    /// Bun's `routes` (crate::routes).
    pub(crate) routes: crate::routes::RouteState,
}

impl Core {
    /// The native `compress` flag for a send that asked for `asked`.
    pub(crate) fn compress(&self, asked: bool) -> i32 {
        (asked && self.compress_sends).into()
    }

    /// Runs user code `f` through the server's gate, reporting a panic to
    /// the handler's `error`.
    pub(crate) fn call<R>(&self, name: &'static str, f: impl FnOnce() -> R) -> Option<R> {
        self.gate.call(name, f).map_err(|e| self.report(&e)).ok()
    }

    /// Drops a user value through the server's gate, reporting a panic.
    pub(crate) fn dispose<T>(&self, value: T) {
        if let Err(e) = self.gate.dispose(value) {
            self.report(&e);
        }
    }

    /// Queues `op` for the loop's next wakeup: a point where no callback of
    /// ours and no uWebSockets frame of a socket is on the stack (when the
    /// outermost callback returns, uWebSockets may still be walking the
    /// socket, e.g. its topics in `end()`).
    fn postpone(&self, op: Postponed) {
        self.postponed.borrow_mut().push(op);
        if !self.has_postponed.replace(true) {
            let _ = self
                .shared
                .push(Box::new(|core: &Core| core.run_postponed()), false);
        }
    }

    /// Does the closes postponed while callbacks ran (and those their close
    /// handlers postpone in turn); runs as a job of the loop.
    fn run_postponed(&self) {
        loop {
            let ops = std::mem::take(&mut *self.postponed.borrow_mut());
            if ops.is_empty() {
                break;
            }
            for op in ops {
                match op {
                    Postponed::Terminate(id) => {
                        if let Some(state) = self.socket(id) {
                            // SAFETY: a registered socket's state, read
                            // before the close frees it.
                            let ws = unsafe { (*state).ws.get() };
                            // SAFETY: the socket is open (registered); its
                            // close callback runs the close handler.
                            unsafe { sys::uws_ws_close(self.ssl, ws) };
                        }
                    }
                    Postponed::CloseAll => self.close_all(),
                }
            }
        }
        self.has_postponed.set(false);
    }

    /// Closes a socket at once (Bun's `ws.terminate()`), when no callback
    /// holds views into its buffers.
    pub(crate) fn terminate(&self, id: SocketId, ws: *mut sys::uws_ws_t) {
        if self.in_callback() {
            self.postpone(Postponed::Terminate(id));
        } else {
            // SAFETY: the caller's open socket of this server.
            unsafe { sys::uws_ws_close(self.ssl, ws) };
        }
    }

    /// Whether a callback of this server is running now.
    pub(crate) fn in_callback(&self) -> bool {
        self.gate.in_callback()
    }

    /// Runs a subscribe or unsubscribe call of `ws`: subscription events
    /// for `ws` during it are its own, all others come from a close.
    pub(crate) fn subscribing<R>(&self, ws: *mut sys::uws_ws_t, f: impl FnOnce() -> R) -> R {
        let outer = self.subscribing.replace(ws);
        let r = f();
        self.subscribing.set(outer);
        r
    }

    /// Whether a subscription event for `ws` comes from its own
    /// subscribe/unsubscribe call (otherwise uWebSockets is closing it).
    pub(crate) fn is_own_subscription(&self, ws: *mut sys::uws_ws_t) -> bool {
        self.subscribing.get() == ws
    }

    /// The handler keeps the default `subscription`: stop crossing into
    /// Rust for these events, unless the threads of the server or its bus
    /// need them.
    pub(crate) fn subscription_events_unused(&self) {
        if self.cluster.is_none() && self.bus.is_none() {
            self.subscription_enabled.set(0);
        }
    }

    /// A socket of this thread opened or closed.
    pub(crate) fn count_socket(&self, opened: bool) {
        if let Some(link) = &self.cluster {
            if opened {
                link.cluster.opened(link.thread);
            } else {
                link.cluster.closed(link.thread);
            }
        }
    }

    /// This thread's subscribers to `topic` went from `old` to `count`.
    /// When the whole server goes from none to some, or back, its bus
    /// (if any) subscribes or leaves.
    pub(crate) fn count_subscribers(&self, topic: &[u8], old: usize, count: usize) {
        match &self.cluster {
            Some(link) => link
                .cluster
                .subscription(link.thread, topic, count, |wanted| {
                    self.bus_topic(topic, wanted)
                }),
            None if (old == 0) != (count == 0) => self.bus_topic(topic, count > 0),
            None => {}
        }
    }

    pub(crate) fn max_request_body_size(&self) -> usize {
        self.max_request_body_size
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.get()
    }

    pub(crate) fn doomed(&self) -> bool {
        self.doomed.get()
    }

    /// Remembers the WebSocket context for closing everything later.
    pub(crate) fn set_ws_context(&self, context: *mut c_void) {
        if !context.is_null() {
            self.ws_context.set(context);
        }
    }

    pub(crate) fn report(&self, error: &Error) {
        // SAFETY: the context lives as long as the core.
        unsafe { (self.hooks.report)(self.ctx.get(), error) }
    }

    /// The shared state of an open socket by id. A pointer, not a
    /// reference: closing the socket frees it.
    fn socket(&self, id: SocketId) -> Option<*const SocketState<Core>> {
        // The state comes first in every slot.
        Some(self.registry.borrow().get(id)? as *const SocketState<Core>)
    }

    /// Ends an open socket with a close frame (its close handler runs now,
    /// or when its busy handler returns, and frees `state`).
    fn end(&self, state: *const SocketState<Core>, code: u16, reason: &str) {
        let ws = {
            // SAFETY: `state` is a registered socket's, live until the close
            // below; it is only reached through shared references.
            let state = unsafe { &*state };
            if state.ready.get() == ReadyState::Open {
                state.ready.set(ReadyState::Closing);
            }
            state.ws.get()
        };
        // SAFETY: the socket is open (registered); uWebSockets ignores a
        // second end of a socket that is already shutting down.
        unsafe {
            sys::uws_ws_end(
                self.ssl,
                ws,
                code.into(),
                reason.as_ptr().cast(),
                reason.len(),
            )
        };
    }

    /// Bun's graceful `server.stop()`, on every thread of the server.
    pub(crate) fn stop(&self) {
        match &self.cluster {
            Some(link) => link.cluster.stop_all(Some((self, link.thread)), false),
            None => self.stop_local(),
        }
    }

    /// Bun's `server.stop(true)`, on every thread of the server.
    pub(crate) fn stop_now(&self) {
        match &self.cluster {
            Some(link) => link.cluster.stop_all(Some((self, link.thread)), true),
            None => self.stop_now_local(),
        }
    }

    /// Removes what a server on several threads added to the loop.
    pub(crate) fn leave_loop(&self) {
        if self.cluster.is_some() {
            // SAFETY: registered in `build` with this core as key; not called
            // from inside a post handler (the App is freed outside them).
            unsafe {
                sys::uws_loop_remove_post_handler(
                    self.loop_,
                    (self as *const Core).cast_mut().cast(),
                )
            };
        }
    }

    /// On the first thread of a server on several: waits for the others
    /// (and the acceptor) to end.
    pub(crate) fn join_threads(&self) {
        if let Some(link) = self.cluster.as_ref().filter(|l| l.thread == 0) {
            link.cluster.join();
        }
    }

    fn close_keepalive(&self) {
        let timer = self.keepalive.replace(ptr::null_mut());
        if !timer.is_null() {
            // SAFETY: our timer, closed once (we cleared our pointer).
            unsafe { sys::uws_timer_close(timer) };
        }
    }

    /// The graceful stop of this thread.
    pub(crate) fn stop_local(&self) {
        if self.stopping.replace(true) {
            return;
        }
        self.routes.closing();
        self.close_keepalive();
        self.timers.clear_all(self);
        let http = self.http.get();
        if !http.is_null() {
            // SAFETY: the HTTP context lives as long as the app; this closes
            // sockets without calling back into Rust.
            unsafe { sys::uws_context_stop_http(self.ssl, http) };
        }
        let ids = self.registry.borrow().ids();
        for id in ids {
            // Close handlers run in between and may close others: look each
            // up again.
            if let Some(state) = self.socket(id) {
                self.end(state, 1001, "server stopping");
            }
        }
        crate::client::stop_owned(self.registry.borrow().number(), false);
        self.start_stop_timer();
        self.stop_bus();
    }

    fn start_stop_timer(&self) {
        if !self.stop_timer.get().is_null() {
            return;
        }
        self.stop_deadline.set(Some(Instant::now() + self.grace));
        let first = self.grace.min(STOP_SWEEP).as_millis() as i32;
        let timer = match crate::ffi::timer(self.loop_, false) {
            Ok(timer) => timer,
            Err(e) => {
                // No grace period without a timer: everything goes now.
                self.report(&e);
                self.stop_now_local();
                return;
            }
        };
        // SAFETY: our fallthrough timer on the server's loop (it does not
        // keep `run` going); closed in `destroy` before the core goes away,
        // so the pointer it carries stays valid.
        unsafe {
            sys::uws_timer_set(
                timer,
                Some(stop_tick),
                (self as *const Core).cast_mut().cast(),
                first.max(1),
                STOP_SWEEP.as_millis() as i32,
            );
            self.stop_timer.set(timer);
        }
    }

    fn close_stop_timer(&self) {
        let timer = self.stop_timer.replace(ptr::null_mut());
        if !timer.is_null() {
            // SAFETY: our timer, closed once (we cleared our pointer).
            unsafe { sys::uws_timer_close(timer) };
        }
    }

    /// Bun's `server.stop(true)` on this thread: closes every connection now.
    pub(crate) fn stop_now_local(&self) {
        self.stopping.set(true);
        self.routes.closing();
        self.close_keepalive();
        self.timers.clear_all(self);
        self.close_stop_timer();
        if self.in_callback() {
            self.postpone(Postponed::CloseAll);
        } else {
            self.close_all();
        }
        self.stop_bus();
    }

    /// Closes every connection of the server (on this thread) now.
    fn close_all(&self) {
        crate::client::stop_owned(self.registry.borrow().number(), true);
        for context in [self.http.get(), self.ws_context.get()] {
            if !context.is_null() {
                // SAFETY: both contexts live as long as the app. Close
                // handlers run from here and may reenter `stop_now`, which
                // then finds fewer sockets.
                unsafe { sys::uws_context_close_all(self.ssl, context) };
            }
        }
    }
}

unsafe extern "C" fn stop_tick(arg: *mut c_void) {
    // SAFETY: the timer is closed before the core is freed.
    let core = unsafe { &*(arg as *const Core) };
    let _in = core.gate.enter();
    if core
        .stop_deadline
        .get()
        .is_some_and(|d| Instant::now() >= d)
    {
        core.stop_now();
    } else if !core.http.get().is_null() {
        // SAFETY: as in `stop`.
        unsafe { sys::uws_context_stop_http(core.ssl, core.http.get()) };
    }
}

/// The running server, as handlers see it: Bun's `Server` (`server` in
/// `fetch(req, server)`). Lives on the server's thread; use
/// [`handle`](Self::handle) to reach it from others.
///
/// ```no_run
/// use uws::*;
///
/// struct Feed;
/// impl WebSocketHandler for Feed {
///     type Data = ();
///     fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
///         if req.path() == "/stats" {
///             // new Response(`${server.pendingWebSockets} ${server.subscriberCount("prices")}`)
///             return Response::new(format!(
///                 "{} {}",
///                 server.pending_websockets(),
///                 server.subscriber_count("prices")
///             ));
///         }
///         if server.upgrade(req, UpgradeOptions::new(())) {
///             return Response::new("");
///         }
///         Response::new("not a websocket").with_status(400)
///     }
///     fn open(&self, ws: &mut ServerWebSocket<()>) {
///         ws.subscribe("prices");
///         // server.publish("prices", ...) from any handler:
///         ws.server().publish("prices", "someone joined", false);
///     }
/// }
///
/// let app = serve(ServeOptions { port: 0, ..Default::default() }, Feed)?;
/// app.run();
/// # Ok::<(), uws::Error>(())
/// ```
#[repr(transparent)]
pub struct Server<T> {
    core: Core,
    _data: PhantomData<*const T>,
}

impl<T> Server<T> {
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    pub(crate) fn from_core(core: &Core) -> &Server<T> {
        // SAFETY: `Server<T>` is a transparent wrapper of `Core`. Only the
        // server created for data type `T` hands out cores as `Server<T>`.
        unsafe { &*(core as *const Core as *const Server<T>) }
    }
}

impl<T: 'static> Server<T> {
    /// Bun's `server.upgrade(req, { data, headers })`: makes this request a
    /// WebSocket with `options.data` as its `ws.data`. Returns `false`, and
    /// drops the data, when the request is not a valid WebSocket handshake,
    /// was already upgraded, the server is stopping, the chosen protocol was
    /// not offered, or a header is invalid or owned by the handshake (see
    /// [`UpgradeOptions::headers`]).
    ///
    /// The socket opens (and `open` runs) after `fetch` returns. If the
    /// server stops before that, the upgrade is abandoned: the client gets
    /// 503 and the data is dropped.
    pub fn upgrade(&self, req: &mut Request<'_>, mut options: UpgradeOptions<T>) -> bool {
        if req.upgrade.is_some()
            || req.deferred
            || self.core.stopping.get()
            || !req.is_websocket_upgrade()
        {
            return false;
        }
        if !options.prepare(req.protocols(), self.core.subprotocols) {
            return false;
        }
        req.upgrade = Some(Box::new(options));
        true
    }

    /// Bun's `server.publish(topic, data, compress)`: sends to every socket
    /// subscribed to `topic`.
    pub fn publish<'m>(
        &self,
        topic: &str,
        message: impl Into<Message<'m>>,
        compress: bool,
    ) -> PublishStatus {
        self.core.publish(topic, message.into(), compress)
    }

    /// Bun's `server.subscriberCount(topic)` (on every thread of a server
    /// on several).
    pub fn subscriber_count(&self, topic: &str) -> usize {
        if let Some(link) = &self.core.cluster {
            return link.cluster.subscriber_count(topic);
        }
        // SAFETY: the app is alive; the topic is borrowed for the call.
        unsafe {
            sys::uws_app_num_subscribers(
                self.core.ssl,
                self.core.app,
                topic.as_ptr().cast(),
                topic.len(),
            ) as usize
        }
    }

    /// Bun's `server.pendingWebSockets`: open WebSockets (on every thread
    /// of a server on several).
    pub fn pending_websockets(&self) -> usize {
        match &self.core.cluster {
            Some(link) => link.cluster.live(),
            None => self.core.registry.borrow().live(),
        }
    }

    /// Bun's `server.port`: the bound port (the real one when 0 was asked
    /// for; 0 on a unix socket).
    pub fn port(&self) -> u16 {
        self.core.port.get()
    }

    /// Bun's `server.hostname`, as given in the options.
    pub fn hostname(&self) -> &str {
        &self.core.hostname
    }

    /// Bun's `server.stop()`: stops listening and closes idle HTTP
    /// connections; requests in progress get their response (with
    /// `Connection: close`); every WebSocket gets a close frame with 1001
    /// (going away) and its close handler runs now. Connections still open
    /// after [`ServeOptions::stop_grace_period`] are closed. `run` returns
    /// once everything is closed. (Bun closes WebSockets with 1006.)
    pub fn stop(&self) {
        self.core.stop();
    }

    /// Bun's `server.stop(true)`: stops listening and closes every
    /// connection at once, without close frames; close handlers see 1006
    /// (those of sockets already closing have run). Called inside a
    /// handler, the connections close right after the current loop
    /// iteration (until then the message or request it reads stays valid).
    pub fn stop_now(&self) {
        self.core.stop_now();
    }

    /// Sends to a socket by id (see [`ServerWebSocket::send`]). A closed
    /// socket gives [`SendStatus::Dropped`]. A socket of another thread of
    /// the server (see [`serve_threaded`]) gets the message on its thread:
    /// then `Sent(len)` means it was handed over, and what the send did
    /// there is not reported (as for [`ServerHandle::send`]).
    pub fn send<'m>(
        &self,
        id: SocketId,
        message: impl Into<Message<'m>>,
        compress: bool,
    ) -> SendStatus {
        let m = message.into();
        let Some(state) = self.core.socket(id) else {
            return self.on_owner(id, OwnedMessage::from(m), m.len(), move |s, message| {
                s.send(id, message.as_message(), compress);
            });
        };
        // SAFETY: a registered socket's state, read before anything can
        // close it.
        let ws = unsafe { &*state }.open_ws();
        let Some(ws) = ws else {
            return SendStatus::Dropped;
        };
        let payload = m.as_bytes();
        // SAFETY: the socket is open; no Rust data is touched.
        let status = unsafe {
            sys::uws_ws_send(
                self.core.ssl,
                ws,
                payload.as_ptr().cast(),
                payload.len(),
                m.opcode(),
                self.core.compress(compress),
            )
        };
        SendStatus::from_native(status, payload.len())
    }

    /// Runs `f` with `payload` on the thread that owns `id`, when that is
    /// another thread of this server.
    fn on_owner<P: Send + 'static>(
        &self,
        id: SocketId,
        payload: P,
        len: usize,
        f: impl FnOnce(&Server<T>, P) + Send + 'static,
    ) -> SendStatus {
        let Some(link) = &self.core.cluster else {
            return SendStatus::Dropped;
        };
        // An id of this thread that resolved to nothing names a socket that
        // has closed: handing it to its owner would hand it back here, for
        // ever (a job that requeues itself on every run of the loop).
        if id.server() == self.core.registry.borrow().number() {
            return SendStatus::Dropped;
        }
        let job = Box::new(move |core: &Core| f(Server::from_core(core), payload));
        match link.cluster.run_on_owner(id.server(), job) {
            Ok(()) => SendStatus::Sent(len),
            Err(_) => SendStatus::Dropped,
        }
    }

    /// Closes a socket by id (see [`ServerWebSocket::close`]); nothing
    /// happens when it is already closed.
    pub fn close(&self, id: SocketId, code: u16, reason: &str) -> Result<(), Error> {
        check_close_code(code)?;
        match self.core.socket(id) {
            Some(state) => self.core.end(state, code, truncate_reason(reason)),
            None => {
                let reason = truncate_reason(reason).to_owned();
                self.on_owner(id, reason, 0, move |s, reason| {
                    let _ = s.close(id, code, &reason);
                });
            }
        }
        Ok(())
    }

    /// Runs `f` on a socket by id, with full access to it and its data.
    /// `None` when the socket is closed or closing, when a handler holds
    /// it right now (its own handler, or an outer `with_socket`: use the
    /// `ws` you were given there), or when it lives on another thread of
    /// the server (reach it with [`send`](Self::send) and
    /// [`close`](Self::close), or a job on its thread).
    ///
    /// A close that `f` causes (or that arrives meanwhile) runs the close
    /// handler when `f` returns, also when `f` panics (the panic then goes
    /// on to the caller).
    pub fn with_socket<R>(
        &self,
        id: SocketId,
        f: impl FnOnce(&mut ServerWebSocket<T>) -> R,
    ) -> Option<R> {
        let slot = self.core.registry.borrow().get(id)? as *mut Slot<ServerSide, T>;
        let core = &self.core;
        // SAFETY: registered slots are live and hold a `T` (this server's
        // data type); the close hook runs the close handler and frees it.
        unsafe {
            with_open(slot, f, |code, reason| {
                (core.hooks.close)(core.ctx.get(), slot.cast(), code, reason)
            })
        }
    }

    /// Opens a client connection on this server's loop (see
    /// [`connect`](crate::connect)): a server that talks to other servers
    /// (a proxy, a bridge, a fan-in). The connection belongs to the
    /// server: [`stop`](Self::stop) closes it with 1001 ([`stop_now`](Self::stop_now)
    /// at once), so that `run` can return. `Err` as for `connect`, and
    /// [`Error::NotRunning`] once the server is stopping.
    ///
    /// ```no_run
    /// use uws::*;
    ///
    /// // A fan-in: every upstream message is published to this server's room.
    /// struct Upstream;
    /// impl ClientHandler for Upstream {
    ///     type Data = ServerHandle<()>;
    ///     fn message(&self, ws: &mut ClientWebSocket<ServerHandle<()>>, message: Message<'_>) {
    ///         let m = OwnedMessage::from(message.as_bytes().to_vec());
    ///         let _ = ws.data().publish("room", m, false);
    ///     }
    /// }
    ///
    /// struct Room;
    /// impl WebSocketHandler for Room {
    ///     type Data = ();
    ///     fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
    ///         server.upgrade(req, UpgradeOptions::new(()));
    ///         Response::new("")
    ///     }
    ///     fn open(&self, ws: &mut ServerWebSocket<()>) {
    ///         ws.subscribe("room");
    ///     }
    /// }
    ///
    /// let app = serve(ServeOptions { port: 0, ..Default::default() }, Room)?;
    /// app.connect("ws://upstream.example:9000/feed", ConnectOptions::default(), Upstream, app.handle())?;
    /// app.run();
    /// # Ok::<(), uws::Error>(())
    /// ```
    pub fn connect<H: ClientHandler>(
        &self,
        url: &str,
        options: ConnectOptions,
        handler: H,
        data: H::Data,
    ) -> Result<ClientHandle<H::Data>, Error> {
        if self.core.stopping.get() {
            return Err(Error::NotRunning);
        }
        let owner = self.core.registry.borrow().number();
        crate::client::connect_owned(url, options, handler, data, owner)
    }

    /// A handle for other threads (Bun has none: one loop per thread is
    /// how uWebSockets scales).
    pub fn handle(&self) -> ServerHandle<T> {
        ServerHandle::new(
            self.core.shared.clone(),
            self.core.cluster.as_ref().map(|l| l.cluster.clone()),
            self.core.bus.clone(),
        )
    }

    /// The state and counters of the server's bus bridge
    /// ([`ServeOptions::bus`]); `None` without a bus.
    pub fn bus_status(&self) -> Option<BusStatus> {
        self.core.bus.as_ref().map(|b| b.status())
    }
}

impl<T> std::fmt::Debug for Server<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("hostname", &self.core.hostname)
            .field("port", &self.core.port.get())
            .field("pending_websockets", &self.core.registry.borrow().live())
            .finish()
    }
}

/// Completes an upgrade: writes the 101 with the options' headers and makes
/// the connection a WebSocket whose data is `options.data`; the open
/// handler runs before this returns. Inside the request handler, or inside
/// a cork of the response when it completes later.
pub(crate) fn accept<T>(
    core: &Core,
    res: *mut sys::uws_res_t,
    key: &[u8],
    extensions: &[u8],
    ws_context: *mut c_void,
    options: UpgradeOptions<T>,
) {
    let ssl = core.ssl;
    core.set_ws_context(ws_context);
    let protocol = options.protocol.as_deref().unwrap_or("");
    let slot = Slot::<ServerSide, T>::new(core, options.data, ReadyState::Open);
    let status = "101 Switching Protocols";
    // SAFETY: `res` is a live response of this server waiting for its
    // answer; the status is borrowed for the call.
    unsafe { sys::uws_res_write_status(ssl, res, status.as_ptr().cast(), status.len()) };
    for (k, v) in &options.headers {
        write_header(ssl, res, k, v);
    }
    // SAFETY: as above; the views are borrowed for the call. The slot
    // pointer becomes the socket's user data, handed back to `on_open` and
    // freed in `close_now`.
    unsafe {
        sys::uws_res_upgrade(
            ssl,
            res,
            slot.cast(),
            key.as_ptr().cast(),
            key.len(),
            protocol.as_ptr().cast(),
            protocol.len(),
            extensions.as_ptr().cast(),
            extensions.len(),
            ws_context,
        );
    }
}

/// A TLS app with these certificates, or the reason it cannot be made.
fn create_tls_app(native: &NativeTls) -> Result<*mut sys::uws_app_t, Error> {
    // SAFETY: the options point at C strings owned by `native`.
    let app = unsafe { sys::uws_app_create(1, &native.options()) };
    if app.is_null() {
        return Err(native.refused());
    }
    if !tls::key_matches(app) {
        // SAFETY: just created, unused.
        unsafe { sys::uws_app_destroy(1, app) };
        return Err(tls::mismatch(native));
    }
    Ok(app)
}

/// The error for a failed listen: the resolver's when the host does not
/// resolve, otherwise the system call's.
fn listen_error(options: &ServeOptions, errno: c_int) -> Error {
    let (address, source) = match &options.unix {
        Some(path) => (
            path.display().to_string(),
            std::io::Error::from_raw_os_error(errno),
        ),
        None => {
            let address = format!("{}:{}", options.hostname, options.port);
            let source = match (options.hostname.as_str(), options.port).to_socket_addrs() {
                Err(e) => e,
                Ok(_) if errno != 0 => std::io::Error::from_raw_os_error(errno),
                Ok(_) => std::io::Error::other("the address could not be bound"),
            };
            (address, source)
        }
    };
    Error::Listen { address, source }
}

/// Bun's `Bun.serve({ fetch, websocket })`: creates the server on this
/// thread's event loop and binds it. Call [`App::run`] to serve.
///
/// Errors: a bad option (also [`threads`](ServeOptions::threads) other than
/// 1: use [`serve_threaded`]; a [`bus`](ServeOptions::bus) URL that cannot
/// be used), an address that cannot be bound (in use, no permission, a
/// host name that does not resolve), a TLS file that cannot be loaded.
pub fn serve<H: WebSocketHandler>(options: ServeOptions, handler: H) -> Result<App<H>, Error> {
    options.check()?;
    if options.threads != 1 {
        return Err(Error::InvalidOption {
            name: "threads",
            reason: "serve runs one thread; use serve_threaded (with a Send + Sync handler)".into(),
        });
    }
    let bus = BusLink::of(&options)?;
    let app = build(&options, Arc::new(handler), None, 0, bus.clone())?;
    listen(&app, &options)?;
    if let Some(bus) = bus {
        bus.start(BusTarget::single(app.core().shared.clone(), &options))?;
    }
    Ok(app)
}

/// Makes the App of one thread: its native app, handlers, TLS names, but
/// no listening socket (`port` is what it reports).
fn build<H: WebSocketHandler>(
    options: &ServeOptions,
    handler: Arc<H>,
    cluster: Option<Link>,
    port: u16,
    bus: Option<Arc<BusLink>>,
) -> Result<App<H>, Error> {
    let behavior = options.websocket.to_behavior()?;
    let header_limit = options.header_limit()?;
    let tls = options.tls.as_ref().map(TlsOptions::load).transpose()?;
    let ssl = i32::from(tls.is_some());
    let thread = app::ThreadLoop::acquire()?;
    let app = match &tls {
        Some(tls) => create_tls_app(&tls.main)?,
        // SAFETY: a plain app on this thread's loop.
        None => unsafe { sys::uws_app_create(0, ptr::null()) },
    };
    if app.is_null() {
        return Err(Error::Create("uWebSockets could not create the app".into()));
    }
    // SAFETY: the app was just created, on this thread.
    unsafe { sys::uws_app_set_max_header_size(ssl, app, header_limit) };
    let shared = Shared::new(thread.loop_(), options.queue_limit);
    let registry = Registry::new();
    let server_number = registry.server();
    let clustered = cluster.is_some();
    let core = Core {
        ssl,
        app,
        loop_: thread.loop_(),
        // SAFETY: a live app of kind `ssl`.
        http: Cell::new(unsafe { sys::uws_app_http_context(ssl, app) }),
        ws_context: Cell::new(ptr::null_mut()),
        port: Cell::new(port),
        hostname: options.hostname.clone(),
        publish_to_self: options.websocket.publish_to_self,
        compress_sends: options
            .websocket
            .per_message_deflate
            .is_some_and(|p| p.compress != crate::Compressor::Disable),
        subprotocols: options.websocket.subprotocols,
        registry: RefCell::new(registry),
        pending: RefCell::new(PendingTable::default()),
        timers: Timers::new(server_number),
        max_request_body_size: options.max_request_body_size,
        gate: Gate::new(),
        postponed: RefCell::new(Vec::new()),
        has_postponed: Cell::new(false),
        subscribing: Cell::new(ptr::null_mut()),
        subscription_enabled: Cell::new(1),
        stopping: Cell::new(false),
        doomed: Cell::new(false),
        grace: options.stop_grace_period,
        stop_timer: Cell::new(ptr::null_mut()),
        stop_deadline: Cell::new(None),
        outbox: RefCell::new(
            (0..cluster.as_ref().map_or(0, |l| l.cluster.threads()))
                .map(|_| Vec::new())
                .collect(),
        ),
        inbox_spare: RefCell::new(Vec::new()),
        cluster,
        keepalive: Cell::new(ptr::null_mut()),
        shared: shared.clone(),
        ctx: Cell::new(ptr::null()),
        hooks: callbacks::hooks::<H>(),
        bus,
        routes: crate::routes::RouteState::new(),
    };
    let app_owner = App::new(
        thread,
        handler,
        Server {
            core,
            _data: PhantomData,
        },
    );
    let ctx = app_owner.ctx_ptr();
    let core = app_owner.core();
    core.ctx.set(ctx.cast());
    shared.attach(core);
    let mut behavior = callbacks::behavior::<H>(behavior, ctx);
    behavior.subscription_enabled = core.subscription_enabled.as_ptr();
    let pattern = c"/*";
    // Every request and handshake goes through the router: the routes,
    // then fetch.
    let router = crate::routes::router::<H>(ssl, app, pattern, ctx);
    core.routes.set_router(router);
    // SAFETY: the app is alive; the behavior's context and the flag it
    // points at outlive the app (freed after it by `App`); the trampolines
    // match the context; the router lives as long as the app.
    unsafe {
        if sys::uws_app_ws_routed(ssl, app, pattern.as_ptr(), &behavior, router) == 0 {
            return Err(Error::InvalidOption {
                name: "websocket",
                reason: "refused by uWebSockets".into(),
            });
        }
    }
    crate::routes::install_initial(core, app_owner.handler())?;
    for (pattern, names) in tls.iter().flat_map(|t| &t.server_names) {
        // Check the files with a throwaway app first: uSockets skips a
        // server name it cannot load without telling.
        let probe = create_tls_app(names)?;
        // SAFETY: the probe app is ours and unused; the HTTP context lives
        // as long as the app and is TLS; options point at files kept alive
        // by `tls`.
        unsafe {
            sys::uws_app_destroy(1, probe);
            sys::uws_context_add_server_name(
                1,
                core.http.get(),
                pattern.as_ptr(),
                &names.options(),
            );
        }
    }
    if clustered {
        unsafe extern "C" fn never(_: *mut c_void) {}
        unsafe extern "C" fn flush(arg: *mut c_void) {
            // SAFETY: the core that registered this handler; it removes it
            // before it goes away.
            let core = unsafe { &*(arg as *const Core) };
            let _in = core.gate.enter();
            core.flush_outbox();
        }
        let arg = (core as *const Core).cast_mut().cast();
        let timer = crate::ffi::timer(core.loop_, true)?;
        // SAFETY: our timer on this thread's loop, which keeps it running
        // until the stop closes it (it never fires in practice: 24 days),
        // and a post-iteration handler keyed by the core, removed in
        // `App::free`.
        unsafe {
            sys::uws_timer_set(timer, Some(never), ptr::null_mut(), i32::MAX, i32::MAX);
            core.keepalive.set(timer);
            sys::uws_loop_add_post_handler(core.loop_, arg, Some(flush), arg);
        }
    }
    Ok(app_owner)
}

/// Binds the listening socket of a server on one thread.
fn listen<H: WebSocketHandler>(app: &App<H>, options: &ServeOptions) -> Result<(), Error> {
    let core = app.core();
    let ssl = core.ssl;
    let unix = match &options.unix {
        Some(path) => Some(
            CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::UnixPath(path.clone()))?,
        ),
        None => None,
    };
    let host = CString::new(options.hostname.as_str()).map_err(|_| Error::InvalidOption {
        name: "hostname",
        reason: "contains a NUL byte".into(),
    })?;
    let listen_options: sys::uws_listen_option_t = if options.reuse_port {
        sys::UWS_LISTEN_REUSE_PORT
    } else {
        sys::UWS_LISTEN_EXCLUSIVE_PORT
    };
    let listen_options = listen_options as c_int;
    let mut errno = 0;
    // SAFETY: the app is alive; the strings are borrowed for the call.
    let listen = unsafe {
        match &unix {
            Some(path) => {
                sys::uws_app_listen_unix(ssl, core.app, path.as_ptr(), listen_options, &mut errno)
            }
            None => sys::uws_app_listen(
                ssl,
                core.app,
                host.as_ptr(),
                options.port.into(),
                listen_options,
                &mut errno,
            ),
        }
    };
    if listen.is_null() {
        return Err(listen_error(options, errno));
    }
    if unix.is_none() {
        // SAFETY: a live listen socket of this app.
        core.port
            .set(unsafe { sys::uws_listen_port(ssl, listen) } as u16);
    }
    Ok(())
}
