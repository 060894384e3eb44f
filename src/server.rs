//! Starting, running and stopping a server: Bun's `Bun.serve()` and its
//! `Server` object, plus a handle for other threads.

use std::cell::{Cell, RefCell};
use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex, Weak};

use crate::error::Error;
use crate::handler::{self, Ctx, WebSocketHandler};
use crate::options::ServeOptions;
use crate::registry::{Registry, SocketId};
use crate::sys;
use crate::tls::{self, NativeTls, TlsOptions};
use crate::upgrade::{valid_header, Request, UpgradeOptions};
use crate::websocket::{
    check_close_code, truncate_reason, Frame, Message, PublishStatus, ReadyState, SendStatus,
    ServerWebSocket,
};

/// What every server knows, whatever its handler type.
pub(crate) struct Core {
    pub(crate) ssl: i32,
    app: *mut sys::uws_app_t,
    listen: Cell<*mut sys::uws_listen_t>,
    port: Cell<u16>,
    hostname: String,
    pub(crate) publish_to_self: bool,
    /// Whether sends asked to compress may be compressed.
    compress_sends: bool,
    pub(crate) registry: RefCell<Registry>,
    /// Innermost frame of the sockets whose `&mut` is handed out now.
    pub(crate) top: Cell<*const Frame>,
    stopping: Cell<bool>,
    shared: Arc<Shared>,
    ctx: Cell<*const c_void>,
    close_hook: unsafe fn(*const c_void, *mut sys::uws_ws_t, *mut c_void, i32, &[u8]),
    report_hook: unsafe fn(*const c_void, &Error),
}

impl Core {
    /// The native `compress` flag for a send that asked for `asked`.
    pub(crate) fn compress(&self, asked: bool) -> i32 {
        (asked && self.compress_sends).into()
    }

    /// The frame of `ws`, when its `&mut ServerWebSocket` is handed out now.
    pub(crate) fn find_frame(&self, ws: *mut sys::uws_ws_t) -> Option<&Frame> {
        let mut f = self.top.get();
        while !f.is_null() {
            // SAFETY: frames on this list live on the stack of callbacks
            // that are still running; each pops itself before returning.
            let frame = unsafe { &*f };
            if frame.ws == ws {
                return Some(frame);
            }
            f = frame.prev;
        }
        None
    }

    pub(crate) fn publish(
        &self,
        topic: &str,
        message: Message<'_>,
        compress: bool,
    ) -> PublishStatus {
        let bytes = message.as_bytes();
        // SAFETY: the app is alive as long as the core; buffers are borrowed
        // for the call (uWebSockets copies what it queues).
        let published = unsafe {
            sys::uws_app_publish(
                self.ssl,
                self.app,
                topic.as_ptr().cast(),
                topic.len(),
                bytes.as_ptr().cast(),
                bytes.len(),
                message.opcode(),
                self.compress(compress),
            )
        };
        if published != 0 {
            PublishStatus::Published(bytes.len())
        } else {
            PublishStatus::NoSubscribers
        }
    }

    fn stop(&self) {
        if self.stopping.replace(true) {
            return;
        }
        let listen = self.listen.replace(ptr::null_mut());
        if !listen.is_null() {
            // SAFETY: the listen socket is ours and still open (we clear our
            // pointer before closing).
            unsafe { sys::uws_listen_close_http(self.ssl, listen) };
        }
        let reason = "server stopping";
        let ids = self.registry.borrow().ids();
        for id in ids {
            // Close handlers run in between and may close others: look each up again.
            let found = self.registry.borrow().get(id);
            if let Some((ws, _)) = found {
                // SAFETY: the socket is open (it is in the registry); its close
                // callback removes it and runs (or defers) the close handler.
                unsafe {
                    sys::uws_ws_end(self.ssl, ws, 1001, reason.as_ptr().cast(), reason.len())
                };
            }
        }
    }
}

/// The running server, as handlers see it: Bun's `Server` (`server` in
/// `fetch(req, server)`). Lives on the server's thread; use
/// [`handle`](Self::handle) to reach it from others.
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
    /// not offered, or a header is invalid (CR/LF/NUL, or one the handshake
    /// writes itself: Upgrade, Connection, Sec-WebSocket-Accept,
    /// Sec-WebSocket-Extensions).
    ///
    /// The socket opens (and `open` runs) after `fetch` returns.
    pub fn upgrade(&self, req: &mut Request<'_>, mut options: UpgradeOptions<T>) -> bool {
        if req.upgrade.is_some() || self.core.stopping.get() || !req.is_websocket_upgrade() {
            return false;
        }
        if let Some(i) = options
            .headers
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol"))
        {
            let (_, chosen) = options.headers.remove(i);
            options.protocol.get_or_insert(chosen);
        }
        if let Some(chosen) = &options.protocol {
            if !req.protocols().any(|offered| offered == chosen) {
                return false;
            }
        }
        const RESERVED: [&str; 4] = [
            "upgrade",
            "connection",
            "sec-websocket-accept",
            "sec-websocket-extensions",
        ];
        let headers_ok = options.headers.iter().all(|(k, v)| {
            valid_header(k, v) && !RESERVED.iter().any(|r| k.eq_ignore_ascii_case(r))
        });
        if !headers_ok {
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

    /// Bun's `server.subscriberCount(topic)`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
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

    /// Bun's `server.pendingWebSockets`: open WebSockets.
    pub fn pending_websockets(&self) -> usize {
        self.core.registry.borrow().live()
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

    /// Bun's `server.stop()`: stops listening, closes HTTP connections and
    /// every WebSocket with 1001 (going away) and a close frame, running
    /// the close handlers; `run` returns once the closing handshakes are
    /// done. (Bun closes with 1006.)
    pub fn stop(&self) {
        self.core.stop();
    }

    /// Sends to a socket by id (see [`ServerWebSocket::send`]). A closed
    /// socket gives [`SendStatus::Dropped`].
    pub fn send<'m>(
        &self,
        id: SocketId,
        message: impl Into<Message<'m>>,
        compress: bool,
    ) -> SendStatus {
        let m = message.into();
        let Some((ws, _)) = self.core.registry.borrow().get(id) else {
            return SendStatus::Dropped;
        };
        let payload = m.as_bytes();
        // SAFETY: registered sockets are open; no Rust data is touched.
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

    /// Closes a socket by id (see [`ServerWebSocket::close`]); nothing
    /// happens when it is already closed.
    pub fn close(&self, id: SocketId, code: u16, reason: &str) -> Result<(), Error> {
        check_close_code(code)?;
        let found = self.core.registry.borrow().get(id);
        if let Some((ws, _)) = found {
            let reason = truncate_reason(reason);
            if let Some(frame) = self.core.find_frame(ws) {
                frame.state.set(ReadyState::Closing);
            }
            // SAFETY: the socket is open; a busy socket's close is deferred
            // by the close callback.
            unsafe {
                sys::uws_ws_end(
                    self.core.ssl,
                    ws,
                    code.into(),
                    reason.as_ptr().cast(),
                    reason.len(),
                )
            };
        }
        Ok(())
    }

    /// Runs `f` on a socket by id, with full access to it and its data.
    /// `None` when the socket is closed, or when it is one whose handler is
    /// running right now (use the `ws` you were given there).
    pub fn with_socket<R>(
        &self,
        id: SocketId,
        f: impl FnOnce(&mut ServerWebSocket<T>) -> R,
    ) -> Option<R> {
        let (ws, slot) = self.core.registry.borrow().get(id)?;
        if self.core.find_frame(ws).is_some() {
            return None;
        }
        let slot = slot as *mut ServerWebSocket<T>;
        let frame = Frame::new(ws, &self.core, id, ReadyState::Open);
        struct Pop<'a>(&'a Core, *const Frame);
        impl Drop for Pop<'_> {
            fn drop(&mut self) {
                self.0.top.set(self.1);
            }
        }
        self.core.top.set(&frame);
        let pop = Pop(&self.core, frame.prev);
        // SAFETY: the socket is open and no frame holds its slot, so nothing
        // else borrows it until the frame is popped (also on unwind).
        let result = unsafe {
            (*slot).frame = &frame;
            f(&mut *slot)
        };
        drop(pop);
        if let Some(closed) = frame.deferred_close.take() {
            // SAFETY: the frame is popped; the socket closed meanwhile and
            // its close handler is owed.
            unsafe {
                (self.core.close_hook)(self.core.ctx.get(), ws, slot.cast(), closed.0, &closed.1)
            };
        }
        Some(result)
    }

    /// A handle for other threads (Bun has none: one loop per thread is
    /// how uWebSockets scales).
    pub fn handle(&self) -> ServerHandle<T> {
        ServerHandle {
            shared: self.core.shared.clone(),
            _data: PhantomData,
        }
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

type Job = Box<dyn FnOnce(&Core) + Send>;

/// The part of a server other threads can reach.
struct Shared {
    state: Mutex<SharedState>,
}

struct SharedState {
    /// Null once the server is gone.
    loop_: *mut sys::uws_loop_t,
    core: *const Core,
    jobs: Vec<Job>,
    scheduled: bool,
}

// SAFETY: the pointers are only dereferenced on the loop's thread (`core`)
// or passed to `uws_loop_defer`, which is thread-safe; both are cleared
// under the lock before what they point to goes away.
unsafe impl Send for SharedState {}

impl Shared {
    fn close(&self) -> Vec<Job> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.loop_ = ptr::null_mut();
        s.core = ptr::null();
        std::mem::take(&mut s.jobs)
    }
}

unsafe extern "C" fn run_jobs(arg: *mut c_void) {
    // SAFETY: `arg` came from `Arc::into_raw` in `ServerHandle::defer`.
    let shared = unsafe { Arc::from_raw(arg as *const Shared) };
    let (core, jobs) = {
        let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        s.scheduled = false;
        (s.core, std::mem::take(&mut s.jobs))
    };
    for job in jobs {
        if core.is_null() {
            drop(job);
            continue;
        }
        // SAFETY: non-null means the server is alive, and we run on its
        // loop thread (this callback was deferred to that loop).
        let core = unsafe { &*core };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| job(core))) {
            // SAFETY: the context lives as long as the core.
            unsafe { (core.report_hook)(core.ctx.get(), &handler::caught("defer", p)) };
        }
    }
}

thread_local! {
    /// Servers of this thread, closed for other threads when it exits, before
    /// uWebSockets frees the thread's loop.
    static THREAD_SERVERS: ThreadServers = const { ThreadServers(RefCell::new(Vec::new())) };
}

struct ThreadServers(RefCell<Vec<Weak<Shared>>>);

impl Drop for ThreadServers {
    fn drop(&mut self) {
        for shared in self.0.borrow().iter().filter_map(Weak::upgrade) {
            drop(shared.close());
        }
    }
}

/// A `Send + Sync` handle to a server, for other threads (a tokio task, a
/// worker): publish, send by id, stop. Each call is queued to the server's
/// loop and runs there; it fails with [`Error::NotRunning`] once the
/// server is gone.
pub struct ServerHandle<T> {
    shared: Arc<Shared>,
    _data: PhantomData<fn(T)>,
}

impl<T> Clone for ServerHandle<T> {
    fn clone(&self) -> Self {
        ServerHandle {
            shared: self.shared.clone(),
            _data: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for ServerHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

impl<T: 'static> ServerHandle<T> {
    /// Runs `f` on the server's thread, soon.
    pub fn defer(&self, f: impl FnOnce(&Server<T>) + Send + 'static) -> Result<(), Error> {
        let mut s = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.loop_.is_null() {
            return Err(Error::NotRunning);
        }
        s.jobs
            .push(Box::new(move |core: &Core| f(Server::from_core(core))));
        if !s.scheduled {
            s.scheduled = true;
            let arg = Arc::into_raw(self.shared.clone());
            // SAFETY: the loop is alive (non-null under the lock: it is
            // cleared before the loop goes away); `run_jobs` takes the Arc back.
            unsafe { sys::uws_loop_defer(s.loop_, Some(run_jobs), arg.cast_mut().cast()) };
        }
        Ok(())
    }

    /// Publishes from another thread (see [`Server::publish`]).
    pub fn publish(
        &self,
        topic: impl Into<String>,
        message: OwnedMessage,
        compress: bool,
    ) -> Result<(), Error> {
        let topic = topic.into();
        self.defer(move |s| {
            s.publish(&topic, message.as_message(), compress);
        })
    }

    /// Sends to a socket by id from another thread; a closed socket drops
    /// the message, as [`Server::send`] does.
    pub fn send(&self, id: SocketId, message: OwnedMessage, compress: bool) -> Result<(), Error> {
        self.defer(move |s| {
            s.send(id, message.as_message(), compress);
        })
    }

    /// Stops the server from another thread (see [`Server::stop`]).
    pub fn stop(&self) -> Result<(), Error> {
        self.defer(|s| s.stop())
    }
}

/// An owned message, for sending from another thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedMessage {
    /// Text.
    Text(String),
    /// Binary.
    Binary(Vec<u8>),
}

impl OwnedMessage {
    /// Borrows it as a [`Message`].
    pub fn as_message(&self) -> Message<'_> {
        match self {
            OwnedMessage::Text(s) => Message::Text(s),
            OwnedMessage::Binary(b) => Message::Binary(b),
        }
    }
}

impl From<String> for OwnedMessage {
    fn from(s: String) -> Self {
        OwnedMessage::Text(s)
    }
}

impl From<&str> for OwnedMessage {
    fn from(s: &str) -> Self {
        OwnedMessage::Text(s.to_owned())
    }
}

impl From<Vec<u8>> for OwnedMessage {
    fn from(b: Vec<u8>) -> Self {
        OwnedMessage::Binary(b)
    }
}

/// A bound server with its handler, not yet running: what [`serve`]
/// returns. Derefs to [`Server`]; [`run`](Self::run) runs it on this
/// thread. Dropping it without running stops it.
pub struct App<H: WebSocketHandler> {
    ctx: NonNull<Ctx<H>>,
}

impl<H: WebSocketHandler> Deref for App<H> {
    type Target = Server<H::Data>;

    fn deref(&self) -> &Server<H::Data> {
        // SAFETY: the context lives until `drop`.
        unsafe { &self.ctx.as_ref().server }
    }
}

impl<H: WebSocketHandler> App<H> {
    /// The handler.
    pub fn handler(&self) -> &H {
        // SAFETY: the context lives until `drop`.
        unsafe { &self.ctx.as_ref().handler }
    }

    /// Runs the server's event loop on this thread until [`Server::stop`]
    /// has closed everything (Bun's process staying alive while it serves).
    pub fn run(self) {
        // SAFETY: called on the thread whose loop the app uses (`App` is
        // not `Send`). Callbacks reach the context through raw pointers
        // only, never through `self`.
        unsafe { sys::uws_loop_run(sys::uws_loop_get()) };
    }
}

impl<H: WebSocketHandler> Drop for App<H> {
    fn drop(&mut self) {
        let core = self.core();
        core.stop();
        // SAFETY: everything our handlers knew is closed by `stop`; what is
        // left mid-handshake is closed without callbacks into Rust (their
        // close handlers have run), then the app is freed before the context
        // its callbacks point at.
        unsafe {
            sys::uws_app_close(core.ssl, core.app);
            sys::uws_app_destroy(core.ssl, core.app);
        }
        for job in core.shared.close() {
            let _ = handler::drop_contained(job);
        }
        // SAFETY: made by `Box::into_raw` in `serve`; no callback can reach
        // it any more.
        drop(unsafe { Box::from_raw(self.ctx.as_ptr()) });
    }
}

impl<H: WebSocketHandler> std::fmt::Debug for App<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.deref().fmt(f)
    }
}

fn loop_get() -> *mut sys::uws_loop_t {
    // SAFETY: returns this thread's loop, creating it on first use.
    unsafe { sys::uws_loop_get() }
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

/// Bun's `Bun.serve({ fetch, websocket })`: creates the server on this
/// thread's event loop and binds it. Call [`App::run`] to serve.
///
/// Errors: a bad option, an address that cannot be bound.
pub fn serve<H: WebSocketHandler>(options: ServeOptions, handler: H) -> Result<App<H>, Error> {
    let behavior = options.websocket.to_behavior()?;
    let header_limit = options.header_limit()?;
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
    let tls = options.tls.as_ref().map(TlsOptions::load).transpose()?;
    let ssl = i32::from(tls.is_some());
    let (loop_, app) = match &tls {
        Some(tls) => (loop_get(), create_tls_app(&tls.main)?),
        // SAFETY: a plain app on this thread's loop.
        None => (loop_get(), unsafe { sys::uws_app_create(0, ptr::null()) }),
    };
    if app.is_null() {
        return Err(Error::Create("uWebSockets could not create the app".into()));
    }
    // SAFETY: the app was just created, on this thread.
    unsafe { sys::uws_app_set_max_header_size(ssl, app, header_limit) };
    let shared = Arc::new(Shared {
        state: Mutex::new(SharedState {
            loop_,
            core: ptr::null(),
            jobs: Vec::new(),
            scheduled: false,
        }),
    });
    // Registered after the loop exists, so this thread's exit closes the
    // handles before uWebSockets frees the loop (destructors run in reverse).
    THREAD_SERVERS.with(|list| {
        let mut list = list.0.borrow_mut();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&shared));
    });
    let ctx = Box::into_raw(Box::new(Ctx {
        handler,
        server: Server {
            core: Core {
                ssl,
                app,
                listen: Cell::new(ptr::null_mut()),
                port: Cell::new(0),
                hostname: options.hostname.clone(),
                publish_to_self: options.websocket.publish_to_self,
                compress_sends: options
                    .websocket
                    .per_message_deflate
                    .is_some_and(|p| p.compress != crate::Compressor::Disable),
                registry: RefCell::new(Registry::default()),
                top: Cell::new(ptr::null()),
                stopping: Cell::new(false),
                shared: shared.clone(),
                ctx: Cell::new(ptr::null()),
                close_hook: handler::close_erased::<H>,
                report_hook: handler::report_erased::<H>,
            },
            _data: PhantomData,
        },
    }));
    // SAFETY: just made by Box::into_raw; from here `app` owns it.
    let app_owner = App {
        ctx: unsafe { NonNull::new_unchecked(ctx) },
    };
    let core = app_owner.core();
    core.ctx.set(ctx.cast());
    shared.state.lock().unwrap_or_else(|e| e.into_inner()).core = core;
    let behavior = handler::behavior::<H>(behavior, ctx);
    let pattern = c"/*";
    // SAFETY: the app is alive; the behavior's context outlives the app
    // (freed after it in `App::drop`); the trampolines match the context.
    let listen = unsafe {
        if sys::uws_app_ws(ssl, app, pattern.as_ptr(), &behavior) == 0 {
            return Err(Error::InvalidOption {
                name: "websocket",
                reason: "refused by uWebSockets".into(),
            });
        }
        sys::uws_app_any(
            ssl,
            app,
            pattern.as_ptr(),
            Some(handler::on_http::<H>),
            ctx.cast(),
        );
        match &unix {
            Some(path) => sys::uws_app_listen_unix(ssl, app, path.as_ptr(), 0),
            None => sys::uws_app_listen(ssl, app, host.as_ptr(), options.port.into(), 0),
        }
    };
    if listen.is_null() {
        let address = match &options.unix {
            Some(path) => path.display().to_string(),
            None => format!("{}:{}", options.hostname, options.port),
        };
        return Err(Error::Listen { address });
    }
    core.listen.set(listen);
    for (pattern, names) in tls.iter().flat_map(|t| &t.server_names) {
        // Check the files with a throwaway app first: uSockets skips a
        // server name it cannot load without telling.
        let probe = create_tls_app(names)?;
        // SAFETY: the probe app is ours and unused; the listen socket is
        // live and TLS; options point at files kept alive by `tls`.
        unsafe {
            sys::uws_app_destroy(1, probe);
            sys::uws_listen_add_server_name(1, listen, pattern.as_ptr(), &names.options());
        }
    }
    if unix.is_none() {
        // SAFETY: a live listen socket of this app.
        core.port
            .set(unsafe { sys::uws_listen_port(ssl, listen) } as u16);
    }
    Ok(app_owner)
}
