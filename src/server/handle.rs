//! Reaching a server from other threads: [`ServerHandle`] queues work for
//! the server's loop and wakes it.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::bus::link::Link as BusLink;
use crate::bus::BusStatus;
use crate::error::Error;
use crate::runtime::{drop_contained, Gate};
use crate::server::cluster::Cluster;
use crate::server::{Core, Server};
use crate::sys;
use crate::websocket::Message;

/// What jobs from other threads run on, on its loop's thread: a server's
/// [`Core`], or the client connections of a thread.
pub(crate) trait Target: 'static {
    /// The gate jobs run through.
    fn gate(&self) -> &Gate;
    /// Whether the target was dropped inside a job: later jobs are dropped.
    fn doomed(&self) -> bool;
    /// Reports a job's panic.
    fn report(&self, error: &Error);
}

impl Target for Core {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    fn doomed(&self) -> bool {
        Core::doomed(self)
    }

    fn report(&self, error: &Error) {
        Core::report(self, error);
    }
}

pub(crate) type Job<C = Core> = Box<dyn FnOnce(&C) + Send>;

/// The part of a server (or of a thread's clients) other threads can reach.
pub(crate) struct Shared<C: Target = Core> {
    state: Mutex<SharedState<C>>,
    limit: usize,
}

struct SharedState<C: Target> {
    /// Null once the server is gone.
    loop_: *mut sys::uws_loop_t,
    core: *const C,
    jobs: Vec<Job<C>>,
    /// A wakeup is queued on the loop and will take `jobs`.
    scheduled: bool,
}

// SAFETY: the pointers are only dereferenced on the loop's thread (`core`)
// or passed to `uws_loop_defer`, which is thread-safe; both are cleared
// under the lock before what they point to goes away.
unsafe impl<C: Target> Send for SharedState<C> {}

impl<C: Target> Shared<C> {
    pub(crate) fn new(loop_: *mut sys::uws_loop_t, limit: usize) -> Arc<Shared<C>> {
        Arc::new(Shared {
            state: Mutex::new(SharedState {
                loop_,
                core: ptr::null(),
                jobs: Vec::new(),
                scheduled: false,
            }),
            limit,
        })
    }

    fn lock(&self) -> MutexGuard<'_, SharedState<C>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes jobs run on `core` (once it has its final address).
    pub(crate) fn attach(&self, core: &C) {
        self.lock().core = core;
    }

    /// Queues `job` for the server's loop and wakes it. With `bounded`, a
    /// full queue refuses the job.
    pub(crate) fn push(self: &Arc<Self>, job: Job<C>, bounded: bool) -> Result<(), Error> {
        let mut s = self.lock();
        if s.loop_.is_null() {
            drop(s);
            let _ = drop_contained(job);
            return Err(Error::NotRunning);
        }
        if bounded && s.jobs.len() >= self.limit {
            drop(s);
            let _ = drop_contained(job);
            return Err(Error::QueueFull { limit: self.limit });
        }
        s.jobs.push(job);
        if !s.scheduled {
            s.scheduled = true;
            let arg = Arc::into_raw(self.clone());
            // SAFETY: the loop is alive (non-null under the lock: it is
            // cleared before the loop goes away); `run_jobs`, or
            // `drop_wakeup` if the loop is freed first, takes the Arc back.
            unsafe {
                sys::uws_loop_defer(
                    s.loop_,
                    Some(run_jobs::<C>),
                    Some(drop_wakeup::<C>),
                    arg.cast_mut().cast(),
                )
            };
        }
        Ok(())
    }

    /// Queues `job` for the loop's thread and wakes the loop; refused when
    /// the queue is full.
    pub(crate) fn queue(self: &Arc<Self>, job: Job<C>) -> Result<(), Error> {
        self.push(job, true)
    }

    /// Queues the completion of a pending request: not bounded by the
    /// queue limit (each request completes once, so they are bounded by
    /// the requests waiting).
    pub(crate) fn queue_completion(self: &Arc<Self>, job: Job<C>) -> Result<(), Error> {
        self.push(job, false)
    }

    /// Whether a callback of the server runs now (false once closed).
    pub(crate) fn in_callback(&self) -> bool {
        let core = self.lock().core;
        // SAFETY: non-null means the server is alive; called on its thread.
        !core.is_null() && unsafe { (*core).gate().in_callback() }
    }

    /// Cuts other threads off: later calls fail with `NotRunning`. The jobs
    /// still queued are dropped here, their panics contained.
    pub(crate) fn close(&self) {
        let jobs = {
            let mut s = self.lock();
            s.loop_ = ptr::null_mut();
            s.core = ptr::null();
            std::mem::take(&mut s.jobs)
        };
        for job in jobs {
            let _ = drop_contained(job);
        }
    }
}

unsafe extern "C" fn run_jobs<C: Target>(arg: *mut c_void) {
    // SAFETY: `arg` came from `Arc::into_raw` in `Shared::push`.
    let shared = unsafe { Arc::from_raw(arg as *const Shared<C>) };
    let (core, jobs) = {
        let mut s = shared.lock();
        s.scheduled = false;
        (s.core, std::mem::take(&mut s.jobs))
    };
    let mut jobs = jobs.into_iter();
    if !core.is_null() {
        // SAFETY: non-null means the server is alive, and we run on its
        // loop thread (this callback was deferred to that loop). A job may
        // drop the App: it is then only doomed (we count as its callback)
        // and freed after we return.
        let core = unsafe { &*core };
        let gate = core.gate();
        let _in = gate.enter();
        for job in jobs.by_ref() {
            if let Err(e) = gate.call("defer", || job(core)) {
                core.report(&e);
            }
            if core.doomed() {
                break;
            }
        }
        for job in jobs.by_ref() {
            if let Err(e) = gate.dispose(job) {
                core.report(&e);
            }
        }
    }
    for job in jobs {
        let _ = drop_contained(job);
    }
    super::app::free_doomed();
}

unsafe extern "C" fn drop_wakeup<C: Target>(arg: *mut c_void) {
    // SAFETY: as in `run_jobs`: the loop was freed before it could run.
    let shared = unsafe { Arc::from_raw(arg as *const Shared<C>) };
    let _ = drop_contained(shared);
}

/// A `Send + Sync` handle to a server, for other threads (a tokio task, a
/// worker): publish, send by id, stop. Each call is queued to the server's
/// loop and runs there, in order; it fails with [`Error::NotRunning`] once
/// the server is gone, and with [`Error::QueueFull`] when
/// [`ServeOptions::queue_limit`](crate::ServeOptions::queue_limit) calls
/// are already waiting.
///
/// The outcome of a queued send or publish ([`SendStatus`](crate::SendStatus),
/// [`PublishStatus`](crate::PublishStatus)) is not reported back; use
/// [`defer`](Self::defer) and a channel when you need it.
///
/// ```no_run
/// use std::sync::mpsc;
/// use uws::*;
///
/// struct Ticker;
/// impl WebSocketHandler for Ticker {
///     type Data = ();
///     fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
///         server.upgrade(req, UpgradeOptions::new(()));
///         Response::new("")
///     }
///     fn open(&self, ws: &mut ServerWebSocket<()>) {
///         ws.subscribe("ticks");
///     }
/// }
///
/// let (tx, rx) = mpsc::channel();
/// let server = std::thread::spawn(move || {
///     let app = serve(ServeOptions { port: 0, ..Default::default() }, Ticker)?;
///     tx.send(app.handle()).unwrap();
///     app.run();
///     Ok::<(), Error>(())
/// });
/// let handle: ServerHandle<()> = rx.recv().unwrap();
/// for i in 0..10 {
///     handle.publish("ticks", OwnedMessage::from(format!("tick {i}")), false)?;
/// }
/// // The status of a send, through defer and a channel:
/// let (tx, rx) = mpsc::channel();
/// handle.defer(move |s| {
///     tx.send(s.subscriber_count("ticks")).unwrap();
/// })?;
/// println!("{} subscribers", rx.recv().unwrap());
/// handle.stop()?;
/// server.join().unwrap()?;
/// # Ok::<(), uws::Error>(())
/// ```
pub struct ServerHandle<T> {
    /// The (first) thread's queue.
    shared: Arc<Shared>,
    /// The server's threads, when it has several.
    cluster: Option<Arc<Cluster>>,
    /// The server's bus bridge, when it has one.
    bus: Option<Arc<BusLink>>,
    _data: PhantomData<fn(T)>,
}

impl<T> Clone for ServerHandle<T> {
    fn clone(&self) -> Self {
        ServerHandle::new(self.shared.clone(), self.cluster.clone(), self.bus.clone())
    }
}

impl<T> std::fmt::Debug for ServerHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

impl<T> ServerHandle<T> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        cluster: Option<Arc<Cluster>>,
        bus: Option<Arc<BusLink>>,
    ) -> Self {
        ServerHandle {
            shared,
            cluster,
            bus,
            _data: PhantomData,
        }
    }

    /// The state and counters of the server's bus bridge (see
    /// [`Server::bus_status`]); `None` without a bus. Read here, without
    /// a trip through the server's queue.
    pub fn bus_status(&self) -> Option<BusStatus> {
        self.bus.as_ref().map(|b| b.status())
    }

    fn queue(&self, job: Job) -> Result<(), Error> {
        self.shared.push(job, true)
    }
}

impl<T: 'static> ServerHandle<T> {
    /// Runs `f` on the server's thread, soon (the first thread of a server
    /// on several).
    pub fn defer(&self, f: impl FnOnce(&Server<T>) + Send + 'static) -> Result<(), Error> {
        self.queue(Box::new(move |core: &Core| f(Server::from_core(core))))
    }

    /// Publishes from another thread (see [`Server::publish`]). A server
    /// on several threads gets it on each thread that has subscribers.
    pub fn publish(
        &self,
        topic: impl Into<String>,
        message: OwnedMessage,
        compress: bool,
    ) -> Result<(), Error> {
        let topic = topic.into();
        match &self.cluster {
            Some(cluster) => {
                if cluster.stopped() {
                    return Err(Error::NotRunning);
                }
                cluster.forward_from_outside(&topic, message.as_message(), compress);
                Ok(())
            }
            None => self.defer(move |s| {
                s.publish(&topic, message.as_message(), compress);
            }),
        }
    }

    /// Sends to a socket by id from another thread; a closed socket drops
    /// the message, as [`Server::send`] does.
    pub fn send(
        &self,
        id: crate::SocketId,
        message: OwnedMessage,
        compress: bool,
    ) -> Result<(), Error> {
        let job: Job = Box::new(move |core: &Core| {
            Server::<T>::from_core(core).send(id, message.as_message(), compress);
        });
        match &self.cluster {
            Some(cluster) => cluster.run_on_owner(id.server(), job),
            None => self.queue(job),
        }
    }

    /// Stops the server from another thread (see [`Server::stop`]). A
    /// full queue never refuses it: it fails only with
    /// [`Error::NotRunning`].
    pub fn stop(&self) -> Result<(), Error> {
        self.queue_always(|s| s.stop())
    }

    /// Stops the server at once from another thread (see
    /// [`Server::stop_now`]); like [`stop`](Self::stop), never refused by a
    /// full queue.
    pub fn stop_now(&self) -> Result<(), Error> {
        self.queue_always(|s| s.stop_now())
    }

    fn queue_always(&self, f: impl FnOnce(&Server<T>) + Send + 'static) -> Result<(), Error> {
        let job: Job = Box::new(move |core: &Core| f(Server::from_core(core)));
        self.shared.push(job, false)
    }
}

/// An owned message, for sending from another thread.
///
/// ```
/// use uws::{Message, OwnedMessage};
///
/// let text = OwnedMessage::from("hello");
/// let bytes = OwnedMessage::from(vec![1u8, 2, 3]);
/// assert_eq!(text.as_message(), Message::Text("hello"));
/// assert_eq!(bytes.as_message().len(), 3);
/// ```
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

impl From<Message<'_>> for OwnedMessage {
    fn from(m: Message<'_>) -> Self {
        match m {
            Message::Text(s) => OwnedMessage::Text(s.to_owned()),
            Message::Binary(b) => OwnedMessage::Binary(b.to_owned()),
        }
    }
}

impl From<Vec<u8>> for OwnedMessage {
    fn from(b: Vec<u8>) -> Self {
        OwnedMessage::Binary(b)
    }
}
