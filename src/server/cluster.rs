//! One server on several threads: an event loop and a uWebSockets app per
//! thread, one listening socket whose connections an acceptor thread deals
//! out to the loops, and pub/sub across them.
//!
//! A publish is delivered by uWebSockets on its own thread, and handed to
//! the other threads that have subscribers for the topic (a topic → threads
//! index kept up to date by the subscription events), as one shared buffer
//! through each target's queue: one wakeup per target per batch, however
//! many messages the batch holds.

use std::collections::HashMap;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::bus::link::{Link as BusLink, Target};
use crate::error::Error;
use crate::handler::WebSocketHandler;
use crate::options::ServeOptions;
use crate::server::handle::{Job, Shared};
use crate::server::{build, App, Core};
use crate::sys;
use crate::websocket::{Message, PublishStatus};

/// Topic → subscribers on each thread (index = thread).
type TopicIndex = HashMap<Box<[u8]>, Box<[u32]>>;

/// A thread's place in its cluster.
pub(crate) struct Link {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) thread: usize,
}

/// How other threads reach one of the loops.
struct Peer {
    shared: Arc<Shared>,
    /// The number its registry gives its socket ids.
    server: u32,
}

/// What the threads of one server share.
pub(crate) struct Cluster {
    /// How many loops.
    threads: usize,
    peers: OnceLock<Box<[Peer]>>,
    /// Subscribers per thread of every topic that has some.
    topics: RwLock<TopicIndex>,
    /// Open WebSockets per thread.
    live: Box<[AtomicUsize]>,
    next: AtomicUsize,
    stopping: AtomicBool,
    listener: Mutex<Option<Arc<Socket>>>,
    /// The other loops' threads and the acceptor, joined by the first
    /// thread's App when it goes.
    joins: Mutex<Vec<JoinHandle<()>>>,
    /// Publishes waiting for each thread, taken whole by its loop.
    inboxes: Box<[Mutex<Vec<Forward>>]>,
    /// How many publishes an inbox may hold.
    limit: usize,
    /// Forwarded publishes dropped because a thread's inbox was full.
    dropped: AtomicU64,
    /// The server's bus bridge, for publishes through a handle.
    bus: Option<Arc<BusLink>>,
}

impl Cluster {
    fn new(threads: usize, limit: usize, bus: Option<Arc<BusLink>>) -> Cluster {
        Cluster {
            bus,
            inboxes: (0..threads).map(|_| Mutex::new(Vec::new())).collect(),
            limit,
            threads,
            peers: OnceLock::new(),
            topics: RwLock::new(HashMap::new()),
            live: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            next: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            listener: Mutex::new(None),
            joins: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    fn peers(&self) -> &[Peer] {
        self.peers.get().map_or(&[], |p| p)
    }

    /// Runs `job` on `thread`'s loop. A bounded job is dropped (and counted)
    /// when that loop's queue is full.
    pub(crate) fn run_on(&self, thread: usize, job: Job, bounded: bool) -> Result<(), Error> {
        let peer = self.peers().get(thread).ok_or(Error::NotRunning)?;
        let r = peer.shared.push(job, bounded);
        if matches!(r, Err(Error::QueueFull { .. })) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Whether the server is stopping or stopped.
    pub(crate) fn stopped(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The thread whose sockets carry ids of `server`.
    pub(crate) fn owner_of(&self, server: u32) -> Option<usize> {
        self.peers().iter().position(|p| p.server == server)
    }

    /// Runs `job` on the thread that owns socket ids of `server`.
    pub(crate) fn run_on_owner(&self, server: u32, job: Job) -> Result<(), Error> {
        let thread = self.owner_of(server).ok_or(Error::NotRunning)?;
        self.run_on(thread, job, true)
    }

    /// A subscription event of `thread`: its count of subscribers to
    /// `topic` is now `count`. When the whole server goes from none to
    /// some (or back), `changed(true)` (or `false`) runs under the index's
    /// lock, so that these calls come in the order of the changes.
    pub(crate) fn subscription(
        &self,
        thread: usize,
        topic: &[u8],
        count: usize,
        mut changed: impl FnMut(bool),
    ) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let counts = match topics.get_mut(topic) {
            Some(counts) => counts,
            None if count == 0 => return,
            None => {
                changed(true);
                topics
                    .entry(topic.into())
                    .or_insert_with(|| vec![0; self.threads].into())
            }
        };
        counts[thread] = count as u32;
        if counts.iter().all(|&c| c == 0) {
            topics.remove(topic);
            changed(false);
        }
    }

    /// Subscribers to `topic` on every thread.
    pub(crate) fn subscriber_count(&self, topic: &str) -> usize {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .get(topic.as_bytes())
            .map_or(0, |c| c.iter().map(|&n| n as usize).sum())
    }

    pub(crate) fn opened(&self, thread: usize) {
        self.live[thread].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, thread: usize) {
        self.live[thread].fetch_sub(1, Ordering::Relaxed);
    }

    /// Open WebSockets on every thread.
    pub(crate) fn live(&self) -> usize {
        self.live.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    /// Calls `f` with every thread but `from` that has subscribers to
    /// `topic`. Returns whether there was any.
    fn targets(&self, from: Option<usize>, topic: &[u8], mut f: impl FnMut(usize)) -> bool {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let Some(counts) = topics.get(topic) else {
            return false;
        };
        let mut any = false;
        for (thread, _) in counts
            .iter()
            .enumerate()
            .filter(|&(t, &c)| c > 0 && Some(t) != from)
        {
            any = true;
            f(thread);
        }
        any
    }

    /// Moves `batch` into `thread`'s inbox, and wakes that loop when the
    /// inbox was empty. Past the limit, the rest of the batch is dropped;
    /// returns how many were.
    fn deliver(&self, thread: usize, batch: &mut Vec<Forward>) -> usize {
        let mut inbox = self.inboxes[thread]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let was_empty = inbox.is_empty();
        let room = self.limit.saturating_sub(inbox.len());
        let dropped = batch.len().saturating_sub(room);
        if dropped > 0 {
            self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            batch.truncate(room);
        }
        inbox.append(batch);
        let wake = was_empty && !inbox.is_empty();
        drop(inbox);
        if wake {
            let _ = self.run_on(thread, Box::new(|core: &Core| core.drain_inbox()), false);
        }
        dropped
    }

    /// Messages from the bus: each to every thread that has subscribers to
    /// its topic, one batch per thread. Returns how many of the messages
    /// were dropped for at least one thread (full inboxes), at most
    /// `messages.len()`.
    pub(crate) fn deliver_from_outside(&self, messages: &[Forward]) -> usize {
        let mut batches: Vec<Vec<Forward>> = (0..self.threads).map(|_| Vec::new()).collect();
        let mut which: Vec<Vec<usize>> = (0..self.threads).map(|_| Vec::new()).collect();
        for (i, m) in messages.iter().enumerate() {
            let topic = &m.data[..m.topic_len];
            self.targets(None, topic, |thread| {
                batches[thread].push(m.clone());
                which[thread].push(i);
            });
        }
        let mut lost = vec![false; messages.len()];
        for (thread, batch) in batches.iter_mut().enumerate() {
            if !batch.is_empty() {
                // An inbox keeps the head of a batch and drops its tail.
                let dropped = self.deliver(thread, batch);
                let sent = which[thread].len() - dropped;
                for &i in &which[thread][sent..] {
                    lost[i] = true;
                }
            }
        }
        lost.into_iter().filter(|&l| l).count()
    }

    /// A publish from outside the server's threads (a handle): straight to
    /// every thread that has subscribers, and to the bus.
    pub(crate) fn forward_from_outside(&self, topic: &str, message: Message<'_>, compress: bool) {
        let mut forward = None;
        self.targets(None, topic.as_bytes(), |thread| {
            let f = forward
                .get_or_insert_with(|| Forward::new(topic, message, compress))
                .clone();
            self.deliver(thread, &mut vec![f]);
        });
        if let Some(bus) = &self.bus {
            bus.publish(topic, message, compress);
        }
    }

    /// Stops every thread: `now` as [`Core::stop_now`], otherwise
    /// gracefully. The listening socket closes first.
    pub(crate) fn stop_all(&self, here: Option<(&Core, usize)>, now: bool) {
        if let Some(listener) = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            self.stopping.store(true, Ordering::SeqCst);
            // Wakes the acceptor out of `accept`.
            let _ = listener.shutdown(std::net::Shutdown::Both);
        }
        for thread in 0..self.peers().len() {
            match here {
                Some((core, t)) if t == thread => {
                    if now {
                        core.stop_now_local()
                    } else {
                        core.stop_local()
                    }
                }
                _ => {
                    let job: Job = if now {
                        Box::new(|core: &Core| core.stop_now_local())
                    } else {
                        Box::new(|core: &Core| core.stop_local())
                    };
                    let _ = self.run_on(thread, job, false);
                }
            }
        }
    }

    /// Waits for the other loops and the acceptor to end.
    pub(crate) fn join(&self) {
        let joins = std::mem::take(&mut *self.joins.lock().unwrap_or_else(|e| e.into_inner()));
        for j in joins {
            let _ = j.join();
        }
    }

    /// Deals accepted connections out to the loops, round robin, until the
    /// listening socket is shut down.
    fn accept_loop(self: Arc<Self>, listener: Arc<Socket>) {
        let threads = self.peers().len().max(1);
        loop {
            match listener.accept() {
                Ok((socket, _)) => {
                    if socket.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let fd = OwnedFd::from(socket);
                    let thread = self.next.fetch_add(1, Ordering::Relaxed) % threads;
                    // Dropping the job unrun (a stopped loop) closes the fd.
                    let _ = self.run_on(
                        thread,
                        Box::new(move |core: &Core| core.adopt(fd.into_raw_fd())),
                        false,
                    );
                }
                Err(_) if self.stopping.load(Ordering::SeqCst) => return,
                Err(e) if e.raw_os_error() == Some(24) || e.raw_os_error() == Some(23) => {
                    // Out of file descriptors: let the loops close some.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(_) => {}
            }
        }
    }
}

/// A publish on its way to other threads: topic and payload in one buffer,
/// shared by every thread it goes to.
#[derive(Clone)]
pub(crate) struct Forward {
    data: Arc<[u8]>,
    topic_len: usize,
    binary: bool,
    compress: bool,
}

impl Forward {
    pub(crate) fn new(topic: &str, message: Message<'_>, compress: bool) -> Self {
        let (topic, payload) = (topic.as_bytes(), message.as_bytes());
        Forward {
            data: topic.iter().chain(payload).copied().collect(),
            topic_len: topic.len(),
            binary: matches!(message, Message::Binary(_)),
            compress,
        }
    }

    /// Delivers it to `core`'s own subscribers.
    pub(crate) fn publish_on(&self, core: &Core) {
        let (topic, payload) = self.data.split_at(self.topic_len);
        let message = if self.binary {
            Message::Binary(payload)
        } else {
            // Made from a `Message::Text`, whose bytes are UTF-8.
            match std::str::from_utf8(payload) {
                Ok(text) => Message::Text(text),
                Err(_) => return,
            }
        };
        core.publish_local(topic, message, self.compress);
    }
}

impl Core {
    /// Serves a connection the acceptor handed to this loop.
    fn adopt(&self, fd: i32) {
        if self.stopping() {
            // SAFETY: we own `fd` (from `into_raw_fd`); it goes back into an
            // owner that closes it.
            drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
            return;
        }
        // SAFETY: the app is alive and `fd` a non-blocking accepted socket
        // we own; uSockets owns it from here.
        unsafe { sys::uws_app_adopt(self.ssl, self.app, fd) };
    }

    /// Delivers to this thread's subscribers only.
    pub(crate) fn publish_local(&self, topic: &[u8], message: Message<'_>, compress: bool) -> bool {
        let bytes = message.as_bytes();
        // SAFETY: the app is alive as long as the core; buffers are borrowed
        // for the call (uWebSockets copies what it queues).
        unsafe {
            sys::uws_app_publish(
                self.ssl,
                self.app,
                topic.as_ptr().cast(),
                topic.len(),
                bytes.as_ptr().cast(),
                bytes.len(),
                message.opcode(),
                self.compress(compress),
            ) != 0
        }
    }

    /// Hands a publish of this thread to the other threads that have
    /// subscribers to `topic`: into this thread's outbox, sent off at the
    /// end of the loop iteration. Returns whether any thread had.
    pub(crate) fn forward(&self, topic: &str, message: Message<'_>, compress: bool) -> bool {
        let Some(link) = &self.cluster else {
            return false;
        };
        let mut forward = None;
        let any = {
            let mut outbox = self.outbox.borrow_mut();
            link.cluster
                .targets(Some(link.thread), topic.as_bytes(), |thread| {
                    let f = forward
                        .get_or_insert_with(|| Forward::new(topic, message, compress))
                        .clone();
                    outbox[thread].push(f);
                })
        };
        if any && !super::app::loop_running() {
            // No iteration will end to send it off.
            self.flush_outbox();
        }
        any
    }

    /// Sends this thread's outbox off to the other threads.
    pub(crate) fn flush_outbox(&self) {
        let Some(link) = &self.cluster else { return };
        let mut outbox = self.outbox.borrow_mut();
        for (thread, batch) in outbox.iter_mut().enumerate() {
            if !batch.is_empty() {
                link.cluster.deliver(thread, batch);
            }
        }
    }

    /// Delivers what other threads published for this one.
    fn drain_inbox(&self) {
        let Some(link) = &self.cluster else { return };
        let mut batch = self.inbox_spare.borrow_mut();
        {
            let mut inbox = link.cluster.inboxes[link.thread]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *inbox, &mut *batch);
        }
        for forward in batch.iter() {
            forward.publish_on(self);
        }
        batch.clear();
    }

    pub(crate) fn publish(
        &self,
        topic: &str,
        message: Message<'_>,
        compress: bool,
    ) -> PublishStatus {
        let local = self.publish_local(topic.as_bytes(), message, compress);
        let remote = self.forward(topic, message, compress);
        let bus = self.publish_to_bus(topic, message, compress);
        if local || remote || bus {
            PublishStatus::Published(message.len())
        } else {
            PublishStatus::NoSubscribers
        }
    }
}

/// The listening socket of a server on several threads.
fn bind(options: &ServeOptions) -> Result<(Socket, u16), Error> {
    let fail = |source: std::io::Error| match &options.unix {
        Some(path) => Error::Listen {
            address: path.display().to_string(),
            source,
        },
        None => Error::Listen {
            address: format!("{}:{}", options.hostname, options.port),
            source,
        },
    };
    let (address, domain) = match &options.unix {
        Some(path) => (SockAddr::unix(path).map_err(fail)?, Domain::UNIX),
        None => {
            let address = std::net::ToSocketAddrs::to_socket_addrs(&(
                options.hostname.as_str(),
                options.port,
            ))
            .map_err(fail)?
            .next()
            .ok_or_else(|| fail(std::io::Error::other("the host name has no address")))?;
            (SockAddr::from(address), Domain::for_address(address))
        }
    };
    let socket = Socket::new(domain, Type::STREAM, None).map_err(fail)?;
    if options.unix.is_none() {
        socket.set_reuse_address(true).map_err(fail)?;
        if options.reuse_port {
            socket.set_reuse_port(true).map_err(fail)?;
        }
    }
    socket.bind(&address).map_err(fail)?;
    socket.listen(512).map_err(fail)?;
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(0, |a| a.port());
    Ok((socket, port))
}

/// One server on several threads, with pub/sub across them: Bun's
/// `Bun.serve` using every core, which Bun itself cannot do. Honors
/// [`ServeOptions::threads`] (0: one per available core); with 1 it is
/// [`serve`](crate::serve).
///
/// The handler is shared by every thread (so it is `Send + Sync`); a
/// socket's data lives and dies on its own thread (it need not be `Send`).
/// One socket listens, exclusively unless
/// [`reuse_port`](ServeOptions::reuse_port) says otherwise, and an acceptor
/// thread deals its connections out to the loops in turn.
///
/// Across threads:
/// - [`Server::publish`](crate::Server::publish) and
///   [`ServerWebSocket::publish`](crate::ServerWebSocket::publish) reach the
///   subscribers of every thread, each once, in publish order per
///   publisher. The message is copied once and handed to the threads that
///   have subscribers, batched: one wakeup per thread per batch.
/// - [`subscriber_count`](crate::Server::subscriber_count) and
///   [`pending_websockets`](crate::Server::pending_websockets) count every
///   thread.
/// - A [`SocketId`](crate::SocketId) names its thread: `send` and `close`
///   by id work from any thread (a send to another thread's socket is
///   handed over, its outcome not reported); `with_socket` only on the
///   socket's own thread.
/// - [`stop`](crate::Server::stop) stops every thread, and the first
///   thread's [`App::run`] returns when all have ended. The handle of the
///   App reaches the whole server; its `defer` runs on the first thread.
///
/// A thread stalled by a slow handler does not stall the others: messages
/// forwarded to it wait in its queue, up to
/// [`queue_limit`](ServeOptions::queue_limit); past that they are dropped
/// for that thread (at-most-once, like a publish to a subscriber over its
/// backpressure limit).
///
/// ```no_run
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use uws::*;
///
/// #[derive(Default)]
/// struct Room {
///     members: AtomicUsize,
/// }
///
/// impl WebSocketHandler for Room {
///     type Data = ();
///     fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
///         server.upgrade(req, UpgradeOptions::new(()));
///         Response::new("")
///     }
///     fn open(&self, ws: &mut ServerWebSocket<()>) {
///         ws.subscribe("room");
///         self.members.fetch_add(1, Ordering::Relaxed);
///     }
///     fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
///         // Reaches the room's members on every thread.
///         ws.server().publish("room", message, false);
///     }
/// }
///
/// let options = ServeOptions { port: 3000, threads: 0, ..Default::default() };
/// let app = serve_threaded(options, Room::default())?;
/// app.run(); // until stopped, on every thread
/// # Ok::<(), uws::Error>(())
/// ```
pub fn serve_threaded<H: WebSocketHandler + Send + Sync>(
    options: ServeOptions,
    handler: H,
) -> Result<App<H>, Error> {
    options.check()?;
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if threads == 1 {
        return crate::serve(
            ServeOptions {
                threads: 1,
                ..options
            },
            handler,
        );
    }
    let bus = BusLink::of(&options)?;
    let (listener, port) = bind(&options)?;
    let listener = Arc::new(listener);
    let cluster = Arc::new(Cluster::new(threads, options.queue_limit, bus.clone()));
    *cluster.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(listener.clone());
    let handler = Arc::new(handler);
    let (tx, rx) = mpsc::channel();
    for thread in 1..threads {
        let (options, handler, report, bus) =
            (options.clone(), handler.clone(), tx.clone(), bus.clone());
        let link = Link {
            cluster: cluster.clone(),
            thread,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("uws-{thread}"))
            .spawn(
                move || match build(&options, handler, Some(link), port, bus) {
                    Ok(app) => {
                        let core = app.core();
                        let peer = (thread, core.shared.clone(), core.registry.borrow().server());
                        if report.send(Ok(peer)).is_ok() {
                            app.run();
                        }
                    }
                    Err(e) => {
                        let _ = report.send(Err(e));
                    }
                },
            );
        match spawned {
            Ok(join) => cluster
                .joins
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(join),
            Err(e) => {
                let _ = tx.send(Err(Error::Create(format!("could not start a thread: {e}"))));
            }
        }
    }
    drop(tx);
    let first = build(
        &options,
        handler,
        Some(Link {
            cluster: cluster.clone(),
            thread: 0,
        }),
        port,
        bus.clone(),
    );
    let mut peers: Vec<Option<Peer>> = (0..threads).map(|_| None).collect();
    let mut failed = first.as_ref().err().map(|e| e.to_string());
    if let Ok(app) = &first {
        let core = app.core();
        peers[0] = Some(Peer {
            shared: core.shared.clone(),
            server: core.registry.borrow().server(),
        });
    }
    for result in rx.iter().take(threads - 1) {
        match result {
            Ok((thread, shared, server)) => peers[thread] = Some(Peer { shared, server }),
            Err(e) => failed = failed.or(Some(e.to_string())),
        }
    }
    match (first, failed) {
        (Ok(app), None) => {
            let peers: Box<[Peer]> = peers
                .into_iter()
                .map(|p| p.expect("every thread reported"))
                .collect();
            let _ = cluster.peers.set(peers);
            let acceptor = cluster.clone();
            let join = std::thread::Builder::new()
                .name("uws-acceptor".into())
                .spawn(move || acceptor.accept_loop(listener))
                .map_err(|e| Error::Create(format!("could not start the acceptor: {e}")))?;
            cluster
                .joins
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(join);
            if let Some(bus) = bus {
                bus.start(Target::Cluster(cluster.clone()))?;
            }
            Ok(app)
        }
        (first, failed) => {
            // Stop the threads that did start, then wait for them.
            for peer in peers.iter().flatten() {
                let _ = peer
                    .shared
                    .push(Box::new(|core: &Core| core.stop_now_local()), false);
            }
            drop(first);
            cluster.join();
            Err(Error::Create(
                failed.unwrap_or_else(|| "a thread did not start".into()),
            ))
        }
    }
}
