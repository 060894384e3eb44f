//! Requests answered later: Bun's `fetch` returning a Promise.
//!
//! [`Server::defer_request`](crate::Server::defer_request) turns the
//! request of a `fetch` call into a [`PendingRequest`], a `Send` value that
//! any thread completes later with a response, an upgrade or a streamed
//! body. The loop keeps a table of the requests waiting, with what
//! completing them needs; completions travel to the loop through the
//! server's queue, so the loop's own hot path takes no lock.

use std::ffi::{c_char, c_int, c_void};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::error::Error;
use crate::ffi::bytes;
use crate::http::{Body, Request, Response};
use crate::options::SubprotocolPolicy;
use crate::runtime::{self, drop_payload};
use crate::server::{accept, Core, Server, Shared};
use crate::sys;
use crate::upgrade::UpgradeOptions;

/// A response producer: called on the server's thread whenever the
/// connection can take more (see [`PendingRequest::stream`]).
type Producer = Box<dyn FnMut(&mut BodyWriter<'_>) -> Flow + Send>;

/// Runs on the loop with the body, once it is complete (or failed).
type OnBody = Box<dyn FnOnce(&Core, Result<Body, Error>) + Send>;

/// What the loop and the holder of a [`PendingRequest`] share.
pub(crate) struct PendingShared {
    /// The request can no longer be answered (the client went away, the
    /// body was too large, the server stopped).
    closed: AtomicBool,
    body: Mutex<BodySlot>,
}

enum BodySlot {
    Waiting {
        /// One per task awaiting the body.
        wakers: Vec<Waker>,
        then: Option<OnBody>,
    },
    Ready(Result<Body, Error>),
    Taken,
}

impl PendingShared {
    fn body(&self) -> MutexGuard<'_, BodySlot> {
        self.body.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where an upgrade completed later goes: captured from the request.
struct UpgradeTarget {
    key: String,
    extensions: String,
    ws_context: *mut c_void,
}

/// A waiting request, on the loop's side.
pub(crate) struct Entry {
    res: *mut sys::uws_res_t,
    shared: Arc<PendingShared>,
    body: Vec<u8>,
    body_done: bool,
    head: bool,
    upgrade: Option<UpgradeTarget>,
    producer: Option<Producer>,
    /// `Server::timeout` of the request: set again once its body is in
    /// (uWebSockets turns timeouts off then).
    timeout: Option<u32>,
}

struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

/// The requests of a server waiting for an answer, by token (index and
/// generation, so that a stale token finds nothing).
#[derive(Default)]
pub(crate) struct PendingTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

fn token(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

impl PendingTable {
    fn insert(&mut self, entry: Entry) -> u64 {
        self.live += 1;
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.entry = Some(entry);
                token(index, slot.generation)
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("more than 2^32 requests");
                self.slots.push(Slot {
                    generation: 0,
                    entry: Some(entry),
                });
                token(index, 0)
            }
        }
    }

    fn get_mut(&mut self, token: u64) -> Option<&mut Entry> {
        let slot = self.slots.get_mut((token & 0xffff_ffff) as usize)?;
        if u64::from(slot.generation) != token >> 32 {
            return None;
        }
        slot.entry.as_mut()
    }

    fn remove(&mut self, token: u64) -> Option<Entry> {
        let index = (token & 0xffff_ffff) as u32;
        let slot = self.slots.get_mut(index as usize)?;
        if u64::from(slot.generation) != token >> 32 {
            return None;
        }
        let entry = slot.entry.take()?;
        self.live -= 1;
        if let Some(g) = slot.generation.checked_add(1) {
            slot.generation = g;
            self.free.push(index);
        }
        Some(entry)
    }

    pub(crate) fn live(&self) -> usize {
        self.live
    }
}

/// Detaches our callbacks from a response whose entry is gone.
fn detach(ssl: i32, res: *mut sys::uws_res_t) {
    // SAFETY: `res` is a live response (its entry was in the table, which
    // an abort empties first); detaching runs no callback.
    unsafe {
        sys::uws_res_on_aborted(ssl, res, None, std::ptr::null_mut(), 0);
        sys::uws_res_on_data(ssl, res, None, std::ptr::null_mut(), 0);
        sys::uws_res_on_writable(ssl, res, None, std::ptr::null_mut(), 0);
    }
}

/// Runs `f` with `res` corked (a response written outside its request
/// handler must be).
fn corked<F: FnOnce()>(ssl: i32, res: *mut sys::uws_res_t, f: F) {
    struct Call<F>(Option<F>);
    unsafe extern "C" fn run<F: FnOnce()>(arg: *mut c_void) {
        // SAFETY: `arg` is the `Call` below, alive for the native call.
        let call = unsafe { &mut *(arg as *mut Call<F>) };
        if let Some(f) = call.0.take() {
            // Our own code, which runs user code through the gate and
            // reports rather than panics; contain it anyway.
            if let Err(p) = runtime::catch(f) {
                drop_payload(p);
            }
        }
    }
    let mut call = Call(Some(f));
    // SAFETY: a live response; `run` gets `call`, which outlives the call.
    unsafe { sys::uws_res_cork(ssl, res, Some(run::<F>), (&mut call as *mut Call<F>).cast()) };
}

/// Hands the complete (or failed) body to whoever waits for it: its
/// callback, or the tasks awaiting it (woken once the lock is released, so
/// that a waker may poll again at once).
fn deliver(core: &Core, shared: &PendingShared, body: Result<Body, Error>) {
    let (then, wakers) = {
        let mut slot = shared.body();
        match std::mem::replace(&mut *slot, BodySlot::Taken) {
            BodySlot::Waiting { wakers, then } => match then {
                Some(then) => (Some((then, body)), wakers),
                None => {
                    *slot = BodySlot::Ready(body);
                    (None, wakers)
                }
            },
            other => {
                *slot = other;
                (None, Vec::new())
            }
        }
    };
    if let Some((then, body)) = then {
        core.call("on_body", || then(core, body));
    }
    for waker in wakers {
        core.call("wake", || waker.wake());
    }
}

/// Forgets a request that can no longer be answered, and tells its holder.
fn close(core: &Core, entry: Entry, why: Error) {
    let Entry {
        shared,
        producer,
        body_done,
        ..
    } = entry;
    shared.closed.store(true, Ordering::SeqCst);
    core.dispose(producer);
    if !body_done {
        deliver(core, &shared, Err(why));
    }
    core.dispose(shared);
}

unsafe extern "C" fn on_aborted(ctx: *mut c_void, token: u64) {
    // SAFETY: `ctx` is the core that attached this callback; its
    // connections are all closed before it goes away.
    let core = unsafe { &*(ctx as *const Core) };
    // Counted in: a producer's or waker's drop may drop the App, which
    // must then wait until uWebSockets' close returns.
    let _in = core.gate.enter();
    let entry = core.pending.borrow_mut().remove(token);
    if let Some(entry) = entry {
        close(core, entry, Error::Aborted);
    }
}

unsafe extern "C" fn on_data(
    ctx: *mut c_void,
    token: u64,
    data: *const c_char,
    length: usize,
    last: c_int,
) {
    // SAFETY: as in `on_aborted`; the chunk is valid during the call.
    let (core, chunk) = unsafe { (&*(ctx as *const Core), bytes(data, length)) };
    let _in = core.gate.enter();
    let mut table = core.pending.borrow_mut();
    let Some(entry) = table.get_mut(token) else {
        return;
    };
    if entry.body_done {
        return;
    }
    if entry.body.len() + chunk.len() > core.max_request_body_size() {
        let entry = table.remove(token).expect("just found");
        drop(table);
        let (ssl, res) = (core.ssl, entry.res);
        detach(ssl, res);
        corked(ssl, res, || {
            Response::new("request body too large")
                .with_status(413)
                .write(ssl, res, true, false)
        });
        let limit = core.max_request_body_size();
        close(core, entry, Error::BodyTooLarge { limit });
        return;
    }
    entry.body.extend_from_slice(chunk);
    if last != 0 {
        if let Some(seconds) = entry.timeout {
            // SAFETY: the live response of this waiting request.
            unsafe { sys::uws_res_timeout(core.ssl, entry.res, seconds) };
        }
        entry.body_done = true;
        let body = Body::from(std::mem::take(&mut entry.body));
        let shared = entry.shared.clone();
        drop(table);
        deliver(core, &shared, Ok(body));
    }
}

unsafe extern "C" fn on_writable(ctx: *mut c_void, token: u64, _offset: u64) -> c_int {
    // SAFETY: as in `on_aborted`.
    let core = unsafe { &*(ctx as *const Core) };
    let _in = core.gate.enter();
    c_int::from(produce(core, token))
}

/// What a response producer says after writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// There is more: call again when the connection can take it.
    More,
    /// The body is complete: end the response.
    Done,
}

/// Writes parts of a streamed response body (chunked encoding). Given to
/// the producer of [`PendingRequest::stream`], on the server's thread.
pub struct BodyWriter<'a> {
    ssl: i32,
    res: *mut sys::uws_res_t,
    head: bool,
    wrote: bool,
    full: bool,
    _borrow: PhantomData<&'a mut ()>,
}

impl BodyWriter<'_> {
    /// Writes a chunk. Returns `false` once the connection's buffer is full:
    /// return [`Flow::More`] then, and the producer is called again when it
    /// has drained. (What is written after `false` is buffered too, so
    /// memory grows with every further write.) Empty chunks are ignored;
    /// a HEAD request gets no body at all.
    pub fn write(&mut self, chunk: &[u8]) -> bool {
        if chunk.is_empty() || self.head {
            self.wrote |= self.head;
            return !self.full;
        }
        self.wrote = true;
        // SAFETY: a live response of a request still waiting (the producer
        // runs only while its entry is in the table).
        let ok =
            unsafe { sys::uws_res_write(self.ssl, self.res, chunk.as_ptr().cast(), chunk.len()) };
        if ok == 0 {
            self.full = true;
        }
        !self.full
    }

    /// Bytes of this response buffered in user space, waiting for the
    /// client to read.
    pub fn buffered_amount(&self) -> usize {
        // SAFETY: as in `write`.
        unsafe { sys::uws_res_buffered_amount(self.ssl, self.res) }
    }
}

/// Runs the producer of a streamed response until the connection is full
/// or the body is done. Returns whether it is done with this writable event.
fn produce(core: &Core, token: u64) -> bool {
    let (res, head, mut producer) = {
        let mut table = core.pending.borrow_mut();
        let Some(entry) = table.get_mut(token) else {
            return true;
        };
        let Some(producer) = entry.producer.take() else {
            return true;
        };
        (entry.res, entry.head, producer)
    };
    let ssl = core.ssl;
    let _in = core.gate.enter();
    let mut writer = BodyWriter {
        ssl,
        res,
        head,
        wrote: false,
        full: false,
        _borrow: PhantomData,
    };
    let outcome = loop {
        writer.wrote = false;
        match core.gate.call("stream", || producer(&mut writer)) {
            Ok(Flow::Done) => break Ok(true),
            Ok(Flow::More) if writer.full => break Ok(false),
            Ok(Flow::More) if writer.wrote => continue,
            Ok(Flow::More) => {
                break Err(Error::HandlerPanic {
                    handler: "stream",
                    message: "the producer returned Flow::More without writing".into(),
                })
            }
            Err(e) => break Err(e),
        }
    };
    let done = match outcome {
        Ok(false) => {
            // Wait for the next writable event, unless the client went away
            // meanwhile (the entry is gone then).
            let gone = match core.pending.borrow_mut().get_mut(token) {
                Some(entry) => {
                    entry.producer = Some(producer);
                    None
                }
                None => Some(producer),
            };
            core.dispose(gone);
            false
        }
        Ok(true) => {
            core.dispose(producer);
            let entry = core.pending.borrow_mut().remove(token);
            if let Some(entry) = entry {
                detach(ssl, res);
                // SAFETY: a live response, still waiting; this ends it. A
                // Connection: close of a stopping server is in the head
                // already (uWebSockets would write it into a chunked body);
                // the stop closes the connection once it is idle.
                unsafe {
                    if head {
                        sys::uws_res_end_without_body(ssl, res, 0, 0, 0);
                    } else {
                        sys::uws_res_end(ssl, res, std::ptr::null(), 0, 0);
                    }
                }
                entry.shared.closed.store(true, Ordering::SeqCst);
                core.dispose(entry);
            }
            true
        }
        Err(e) => {
            core.dispose(producer);
            core.report(&e);
            let entry = core.pending.borrow_mut().remove(token);
            if let Some(entry) = entry {
                detach(ssl, res);
                entry.shared.closed.store(true, Ordering::SeqCst);
                core.dispose(entry);
                // SAFETY: a live response; the body is cut short, so the
                // connection must go.
                unsafe { sys::uws_res_close(ssl, res) };
            }
            true
        }
    };
    done
}

impl Core {
    /// Takes the request of the running `fetch` out of it (see
    /// [`Server::defer_request`]).
    fn defer(&self, req: &mut Request<'_>) -> Option<(u64, Arc<PendingShared>, Captured)> {
        // Only the server whose `fetch` got the request may take it out:
        // another one (two Apps on a thread) would answer a connection of
        // a context it does not own, with its own TLS kind, be told of the
        // abort through a pointer to itself that may be freed by then, and
        // upgrade it with its own data type into the other server's
        // WebSocket context, whose handlers read another type.
        if req.upgrade.is_some() || req.deferred || !std::ptr::eq(req.server, self) {
            return None;
        }
        req.deferred = true;
        let websocket = req.is_websocket_upgrade();
        let captured = Captured {
            method: req.method().to_owned(),
            url: req.path_and_query().to_owned(),
            headers: req
                .headers()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            protocols: req.protocols().map(str::to_owned).collect(),
            websocket,
            policy: self.subprotocols,
        };
        let upgrade = websocket.then(|| UpgradeTarget {
            key: req.header("sec-websocket-key").unwrap_or("").to_owned(),
            extensions: req
                .header("sec-websocket-extensions")
                .unwrap_or("")
                .to_owned(),
            ws_context: req.ws_context,
        });
        let shared = Arc::new(PendingShared {
            closed: AtomicBool::new(false),
            body: Mutex::new(BodySlot::Waiting {
                wakers: Vec::new(),
                then: None,
            }),
        });
        let token = self.pending.borrow_mut().insert(Entry {
            res: req.res,
            shared: shared.clone(),
            body: Vec::new(),
            body_done: false,
            head: captured.method.eq_ignore_ascii_case("HEAD"),
            upgrade,
            producer: None,
            timeout: req.timeout,
        });
        let ctx = (self as *const Core).cast_mut().cast();
        // SAFETY: the live response of the running request handler; the
        // core outlives every connection of the server, and each callback
        // finds its request by token (a stale one finds nothing).
        unsafe {
            sys::uws_res_on_aborted(self.ssl, req.res, Some(on_aborted), ctx, token);
            sys::uws_res_on_data(self.ssl, req.res, Some(on_data), ctx, token);
        }
        Some((token, shared, captured))
    }

    /// Removes a waiting request to answer it now; `None` when it can no
    /// longer be answered.
    fn finish(&self, token: u64) -> Option<Entry> {
        let entry = self.pending.borrow_mut().remove(token)?;
        detach(self.ssl, entry.res);
        entry.shared.closed.store(true, Ordering::SeqCst);
        Some(entry)
    }

    fn respond(&self, token: u64, response: Response) {
        if let Some(entry) = self.finish(token) {
            let (ssl, res, close) = (self.ssl, entry.res, self.stopping());
            corked(ssl, res, || response.write(ssl, res, close, entry.head));
            self.dispose(entry);
        }
    }
}

/// What a pending request keeps of the request it came from.
struct Captured {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    protocols: Vec<String>,
    websocket: bool,
    policy: SubprotocolPolicy,
}

/// A request whose answer comes later, from any thread: what Bun's `fetch`
/// does when it returns a Promise. Made by
/// [`Server::defer_request`](crate::Server::defer_request) inside `fetch`.
///
/// Complete it once, with [`respond`](Self::respond),
/// [`upgrade`](Self::upgrade) or [`stream`](Self::stream) (each takes
/// `self`: completing twice does not compile). Completion runs on the
/// server's thread. When the client has gone away meanwhile, it returns
/// [`Error::Aborted`] and the data is dropped once, here or on the
/// server's thread. **Dropping it without completing answers 500.**
///
/// ```no_run
/// use uws::*;
///
/// struct Auth;
/// impl WebSocketHandler for Auth {
///     type Data = String;
///     // async fetch(req, server) {
///     //   const user = await sessions.lookup(token);
///     //   if (user && server.upgrade(req, { data: user, headers: { "Set-Cookie": ... } })) return;
///     //   return new Response("no", { status: 401 });
///     // }
///     fn fetch(&self, req: &mut Request<'_>, server: &Server<String>) -> Response {
///         let token = req.query_param("token").unwrap_or_default().into_owned();
///         let pending = server.defer_request(req).expect("not answered yet");
///         std::thread::spawn(move || {
///             let user = (token == "ok").then(|| "ann".to_string()); // a session store
///             let _ = match user {
///                 Some(user) => pending.upgrade(
///                     UpgradeOptions::new(user).with_header("Set-Cookie", "session=1"),
///                 ),
///                 None => pending.respond(Response::new("no").with_status(401)),
///             };
///         });
///         Response::new("") // not sent: the request is pending
///     }
/// }
/// ```
pub struct PendingRequest<T> {
    server: Arc<Shared>,
    token: u64,
    shared: Arc<PendingShared>,
    captured: Captured,
    completed: bool,
    _data: PhantomData<fn(T)>,
}

impl<T: 'static> Server<T> {
    /// Takes the request out of `fetch` to answer it later, from any
    /// thread (Bun: `fetch` returning a Promise). The response `fetch`
    /// returns is then ignored. Reading the body starts at once: get it
    /// with [`PendingRequest::body`] or [`PendingRequest::on_body`].
    ///
    /// `None` when the request was already upgraded or deferred, or is
    /// another server's (two Apps on one thread).
    pub fn defer_request(&self, req: &mut Request<'_>) -> Option<PendingRequest<T>> {
        let (token, shared, captured) = self.core().defer(req)?;
        Some(PendingRequest {
            server: self.core().shared.clone(),
            token,
            shared,
            captured,
            completed: false,
            _data: PhantomData,
        })
    }

    /// Requests taken out of `fetch` and not answered yet (Bun's
    /// `server.pendingRequests`).
    pub fn pending_requests(&self) -> usize {
        self.core().pending.borrow().live()
    }
}

impl<T: 'static> PendingRequest<T> {
    /// The method, as sent.
    pub fn method(&self) -> &str {
        &self.captured.method
    }

    /// The request target: path and query.
    pub fn path_and_query(&self) -> &str {
        &self.captured.url
    }

    /// A header's value, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.captured
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header as (lower-case name, value), in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.captured.headers
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn protocols(&self) -> &[String] {
        &self.captured.protocols
    }

    /// Whether the request is a WebSocket handshake that
    /// [`upgrade`](Self::upgrade) can accept.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.captured.websocket
    }

    /// Whether the request can no longer be answered: the client went
    /// away, its body was too large (the server answered 413), or the
    /// server stopped.
    pub fn is_aborted(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Queues `job` for the server's thread, where it finds the request by
    /// token.
    fn complete(mut self, job: impl FnOnce(&Core, u64) + Send + 'static) -> Result<(), Error> {
        self.completed = true;
        if self.is_aborted() {
            return Err(Error::Aborted);
        }
        let token = self.token;
        self.server
            .queue_completion(Box::new(move |core: &Core| job(core, token)))
    }

    /// Answers with `response` (Bun: the Promise resolving to a Response).
    pub fn respond(self, response: Response) -> Result<(), Error> {
        self.complete(move |core, token| core.respond(token, response))
    }

    /// Accepts the WebSocket handshake with these options, as
    /// [`Server::upgrade`] does in `fetch`; `open` runs on the server's
    /// thread. When the request is not a handshake, or the options are
    /// refused (a protocol the client did not offer, a header the handshake
    /// owns), it is answered 400 and the error says why.
    pub fn upgrade(self, mut options: UpgradeOptions<T>) -> Result<(), Error>
    where
        T: Send,
    {
        let valid = self.captured.websocket
            && options.prepare(
                self.captured.protocols.iter().map(String::as_str),
                self.captured.policy,
            );
        if !valid {
            let reason = if self.captured.websocket {
                "refused upgrade options (protocol not offered, or a reserved or invalid header)"
            } else {
                "not a WebSocket handshake"
            };
            self.respond(Response::new("bad upgrade").with_status(400))?;
            return Err(Error::InvalidOption {
                name: "upgrade",
                reason: reason.into(),
            });
        }
        self.complete(move |core, token| {
            if core.stopping() {
                core.respond(token, Response::new("server stopping").with_status(503));
                return;
            }
            let Some(mut entry) = core.finish(token) else {
                return;
            };
            let target = entry.upgrade.take().expect("a handshake has its target");
            // Corked, like every write outside the request handler: the 101
            // goes out in one write, with what `open` sends. (Unpatched,
            // uWebSockets' HttpResponse::cork went on treating the socket as
            // HTTP after an upgrade in it, read WebSocket data as HTTP state
            // and could close the new WebSocket: vendor/patches/0011;
            // tests/deferred.rs an_upgraded_socket_survives_what_follows.)
            let res = entry.res;
            corked(core.ssl, res, || {
                accept(
                    core,
                    res,
                    target.key.as_bytes(),
                    target.extensions.as_bytes(),
                    target.ws_context,
                    options,
                )
            });
            core.dispose(entry);
        })
    }

    /// Answers with `head` (status and headers; its body is ignored) and a
    /// body written in parts by `producer`, on the server's thread, as
    /// fast as the client reads: `producer` writes chunks until
    /// [`BodyWriter::write`] says the connection is full, then returns
    /// [`Flow::More`] and is called again once it has drained; it returns
    /// [`Flow::Done`] at the end. Memory stays near the backpressure of one
    /// chunk. A HEAD request gets the head only.
    ///
    /// A producer must write at least one chunk per call unless it is done;
    /// one that returns `More` having written nothing, or panics, ends the
    /// connection (the error handler is told).
    pub fn stream(
        self,
        head: Response,
        producer: impl FnMut(&mut BodyWriter<'_>) -> Flow + Send + 'static,
    ) -> Result<(), Error> {
        self.complete(move |core, token| {
            let (ssl, res, is_head) = {
                let mut table = core.pending.borrow_mut();
                let Some(entry) = table.get_mut(token) else {
                    return;
                };
                entry.producer = Some(Box::new(producer));
                (core.ssl, entry.res, entry.head)
            };
            // The body is no longer awaited.
            // SAFETY: a live response of a waiting request.
            unsafe {
                sys::uws_res_on_data(ssl, res, None, std::ptr::null_mut(), 0);
                sys::uws_res_on_writable(
                    ssl,
                    res,
                    Some(on_writable),
                    (core as *const Core).cast_mut().cast(),
                    token,
                );
            }
            let close = core.stopping();
            corked(ssl, res, || {
                head.write_head(ssl, res, close);
                if is_head {
                    if let Some(entry) = core.finish(token) {
                        // SAFETY: a live response; ends it without a body
                        // (Connection: close is in the head, as in `produce`).
                        unsafe { sys::uws_res_end_without_body(ssl, res, 0, 0, 0) };
                        core.dispose(entry);
                    }
                } else {
                    produce(core, token);
                }
            });
        })
    }

    /// The whole body, once it has arrived (Bun: `await req.arrayBuffer()`;
    /// see [`Body::text`]). Fails with [`Error::BodyTooLarge`] past
    /// [`ServeOptions::max_request_body_size`](crate::ServeOptions::max_request_body_size)
    /// (the client was answered 413) and [`Error::Aborted`] when the client
    /// went away. Await it from any thread or async runtime; it can be
    /// taken once.
    pub fn body(&self) -> BodyFuture<'_> {
        BodyFuture {
            shared: &self.shared,
        }
    }

    /// Calls `f` on the server's thread once the whole body has arrived
    /// (or failed, as for [`body`](Self::body)), handing the request back
    /// to answer it.
    pub fn on_body(
        self,
        f: impl FnOnce(&Server<T>, Result<Body, Error>, PendingRequest<T>) + Send + 'static,
    ) {
        let shared = self.shared.clone();
        let server = self.server.clone();
        let then: OnBody =
            Box::new(move |core: &Core, body| f(Server::from_core(core), body, self));
        let mut slot = shared.body();
        let ready = match std::mem::replace(&mut *slot, BodySlot::Taken) {
            BodySlot::Waiting { wakers, .. } => {
                *slot = BodySlot::Waiting {
                    wakers: Vec::new(),
                    then: Some(then),
                };
                drop(slot);
                // Tasks that awaited the body will not get it: wake them
                // (they see it taken).
                wakers.into_iter().for_each(Waker::wake);
                return;
            }
            BodySlot::Ready(body) => body,
            BodySlot::Taken => Err(Error::InvalidOption {
                name: "body",
                reason: "the body was already taken".into(),
            }),
        };
        drop(slot);
        // The body is here already: hand it over on the server's thread.
        let _ = server.queue_completion(Box::new(move |core: &Core| then(core, ready)));
    }
}

/// The body of a [`PendingRequest`], as a future.
pub struct BodyFuture<'a> {
    shared: &'a PendingShared,
}

impl Future for BodyFuture<'_> {
    type Output = Result<Body, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.shared.body();
        match &mut *slot {
            BodySlot::Ready(_) => match std::mem::replace(&mut *slot, BodySlot::Taken) {
                BodySlot::Ready(body) => Poll::Ready(body),
                _ => unreachable!(),
            },
            BodySlot::Waiting { wakers, .. } => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
            BodySlot::Taken => Poll::Ready(Err(Error::InvalidOption {
                name: "body",
                reason: "the body was already taken".into(),
            })),
        }
    }
}

impl<T> Drop for PendingRequest<T> {
    fn drop(&mut self) {
        if self.completed || self.shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let token = self.token;
        let _ = self.server.queue_completion(Box::new(move |core: &Core| {
            core.respond(token, Response::new("request dropped").with_status(500))
        }));
    }
}

impl<T> std::fmt::Debug for PendingRequest<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRequest")
            .field("method", &self.captured.method)
            .field("url", &self.captured.url)
            .field("aborted", &self.shared.closed.load(Ordering::SeqCst))
            .finish()
    }
}
