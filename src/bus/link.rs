//! What the loops see of the bridge: a bounded queue of publishes and the
//! topics to subscribe to or leave, both taken whole by the bridge thread;
//! and the way back, messages from the bus as jobs of the loops' queues.
//!
//! Nothing here blocks a loop: a push takes a short lock (the bridge only
//! swaps the queue out under it) and wakes the bridge; a full queue drops
//! the publish and counts it.

#![cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use super::{envelope, Bus, BusState, BusStatus};
use crate::error::Error;
use crate::options::ServeOptions;
use crate::server::cluster::{Cluster, Forward};
use crate::server::{Core, Shared};
use crate::websocket::Message;

/// A publish waiting for the bus: the topic, then the message as it goes
/// on the bus (header and payload), in one buffer.
pub(crate) struct Outgoing {
    data: Vec<u8>,
    topic_len: usize,
}

impl Outgoing {
    pub(crate) fn topic(&self) -> &[u8] {
        &self.data[..self.topic_len]
    }

    /// The message as it goes on the bus.
    pub(crate) fn message(&self) -> &[u8] {
        &self.data[self.topic_len..]
    }

    /// The buffer and where its message starts (to share it without a copy).
    #[allow(dead_code)] // only NATS takes it apart
    pub(crate) fn into_parts(self) -> (Vec<u8>, usize) {
        (self.data, self.topic_len)
    }
}

/// The counters of [`BusStatus`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) echoes: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_disconnected: AtomicU64,
    pub(crate) dropped_refused: AtomicU64,
    pub(crate) dropped_incoming: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) topics: AtomicUsize,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// One server's end of its bridge (shared by all its threads).
pub(crate) struct Link {
    pub(crate) bus: Bus,
    /// This server's id on the bus.
    pub(crate) id: u64,
    pub(crate) counters: Counters,
    state: AtomicU8,
    queue: Mutex<Queue>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Queue {
    out: Vec<Outgoing>,
    /// Bytes held by `out`.
    bytes: usize,
    /// Topics to subscribe to (true) or leave (false) on the bus; the
    /// latest change of each topic wins.
    changes: HashMap<Box<[u8]>, bool>,
    /// The bridge, waiting for work.
    worker: Option<Waker>,
    /// The bridge, waiting for the stop.
    watcher: Option<Waker>,
    stopping: bool,
}

/// What the bridge took from the queue.
#[derive(Default)]
pub(crate) struct Work {
    pub(crate) out: Vec<Outgoing>,
    pub(crate) changes: Vec<(Box<[u8]>, bool)>,
    pub(crate) stopping: bool,
}

impl Link {
    /// Checks `bus` and makes the link of a new server (its bridge starts
    /// with [`start`](Self::start)).
    pub(crate) fn new(bus: &Bus) -> Result<Arc<Link>, Error> {
        bus.check()?;
        Ok(Arc::new(Link {
            bus: bus.clone(),
            id: random_u64(),
            counters: Counters::default(),
            state: AtomicU8::new(BusState::Connecting.to_u8()),
            queue: Mutex::new(Queue {
                out: Vec::new(),
                bytes: 0,
                changes: HashMap::new(),
                worker: None,
                watcher: None,
                stopping: false,
            }),
            thread: Mutex::new(None),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The link for a server with `options`, when they name a bus.
    pub(crate) fn of(options: &ServeOptions) -> Result<Option<Arc<Link>>, Error> {
        options.bus.as_ref().map(Link::new).transpose()
    }

    /// Starts the bridge thread, which delivers what comes from the bus
    /// to `target`.
    pub(crate) fn start(self: &Arc<Self>, target: Target) -> Result<(), Error> {
        #[cfg(any(feature = "redis", feature = "nats"))]
        {
            let link = self.clone();
            let join = std::thread::Builder::new()
                .name("uws-bus".into())
                .spawn(move || super::bridge::run(link, target))
                .map_err(|e| Error::Create(format!("could not start the bus bridge: {e}")))?;
            *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(join);
            Ok(())
        }
        #[cfg(not(any(feature = "redis", feature = "nats")))]
        {
            let _ = target;
            Err(Error::InvalidOption {
                name: "bus",
                reason: "built without the redis and nats features".into(),
            })
        }
    }

    /// Queues a publish of this server for the bus. False when it was
    /// dropped (queue full, bridge stopped).
    pub(crate) fn publish(&self, topic: &str, message: Message<'_>, compress: bool) -> bool {
        let payload = message.as_bytes();
        let mut data = Vec::with_capacity(topic.len() + envelope::HEADER + payload.len());
        data.extend_from_slice(topic.as_bytes());
        envelope::write_header(
            &mut data,
            self.id,
            matches!(message, Message::Binary(_)),
            compress,
        );
        data.extend_from_slice(payload);
        let size = data.len();
        let mut q = self.lock();
        if q.stopping {
            drop(q);
            Counters::add(&self.counters.dropped_disconnected, 1);
            return false;
        }
        if q.out.len() >= self.bus.queue_limit || q.bytes + size > self.bus.queue_bytes {
            drop(q);
            Counters::add(&self.counters.dropped_queue_full, 1);
            return false;
        }
        q.out.push(Outgoing {
            data,
            topic_len: topic.len(),
        });
        q.bytes += size;
        let worker = q.worker.take();
        drop(q);
        if let Some(w) = worker {
            w.wake();
        }
        true
    }

    /// The server now has subscribers to `topic` (`wanted`), or none any
    /// more: subscribe on the bus, or leave.
    pub(crate) fn want(&self, topic: &[u8], wanted: bool) {
        let mut q = self.lock();
        if q.stopping {
            return;
        }
        q.changes.insert(topic.into(), wanted);
        let worker = q.worker.take();
        drop(q);
        if let Some(w) = worker {
            w.wake();
        }
    }

    /// Tells the bridge to stop (it sends what waits, for a second at
    /// most, then ends). Publishes from now on are dropped.
    pub(crate) fn shutdown(&self) {
        let mut q = self.lock();
        if q.stopping {
            return;
        }
        q.stopping = true;
        let wakers = [q.worker.take(), q.watcher.take()];
        drop(q);
        wakers.into_iter().flatten().for_each(Waker::wake);
    }

    /// Stops the bridge and waits for its thread to end (a few seconds at
    /// most: the bridge bounds its own shutdown).
    pub(crate) fn join(&self) {
        self.shutdown();
        let join = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(join) = join {
            let _ = join.join();
        }
        self.set_state(BusState::Stopped);
    }

    /// Ready when there is work for the bridge (or the stop).
    pub(crate) fn poll_work(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = self.lock();
        if q.stopping || !q.out.is_empty() || !q.changes.is_empty() {
            return Poll::Ready(());
        }
        q.worker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Ready once the stop was asked for.
    pub(crate) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = self.lock();
        if q.stopping {
            return Poll::Ready(());
        }
        q.watcher = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Takes everything waiting into `work` (whose buffers are reused).
    pub(crate) fn take(&self, work: &mut Work) {
        let mut q = self.lock();
        std::mem::swap(&mut q.out, &mut work.out);
        q.bytes = 0;
        work.changes.extend(q.changes.drain());
        work.stopping = q.stopping;
    }

    pub(crate) fn state(&self) -> BusState {
        BusState::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Sets the state; returns the one before.
    pub(crate) fn set_state(&self, state: BusState) -> BusState {
        BusState::from_u8(self.state.swap(state.to_u8(), Ordering::SeqCst))
    }

    pub(crate) fn status(&self) -> BusStatus {
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BusStatus {
            state: self.state(),
            url: self.bus.display(),
            server_id: self.id,
            published: n(&c.published),
            received: n(&c.received),
            echoes: n(&c.echoes),
            topics: c.topics.load(Ordering::Relaxed),
            queued: self.lock().out.len(),
            dropped_queue_full: n(&c.dropped_queue_full),
            dropped_disconnected: n(&c.dropped_disconnected),
            dropped_refused: n(&c.dropped_refused),
            dropped_incoming: n(&c.dropped_incoming),
            reconnects: n(&c.reconnects),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Normally joined by the App; the thread holds a reference, so
        // this only finds a bridge that never started.
        self.shutdown();
    }
}

/// Random enough for a server id and backoff jitter: the standard
/// library's randomly keyed hasher over the time, the process and a
/// counter.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// Where messages from the bus go: the loop(s) of the server.
pub(crate) enum Target {
    /// A server on one thread: a job on its queue per batch, with at most
    /// `limit` messages waiting in those jobs (as a server on several
    /// threads has at most that many in each inbox).
    Single {
        shared: Arc<Shared>,
        waiting: Arc<AtomicUsize>,
        limit: usize,
    },
    /// A server on several: each message to the inboxes of the threads
    /// that have subscribers to its topic.
    Cluster(Arc<Cluster>),
}

impl Target {
    /// The target of a server on one thread with `options`.
    pub(crate) fn single(shared: Arc<Shared>, options: &ServeOptions) -> Target {
        Target::Single {
            shared,
            waiting: Arc::new(AtomicUsize::new(0)),
            limit: options.queue_limit,
        }
    }

    /// Hands `batch` to the loops; returns how many were dropped (a full
    /// queue, a stopped server).
    pub(crate) fn deliver(&self, batch: Vec<Forward>) -> usize {
        let n = batch.len();
        match self {
            Target::Single {
                shared,
                waiting,
                limit,
            } => {
                if waiting.fetch_add(n, Ordering::AcqRel) + n > *limit {
                    waiting.fetch_sub(n, Ordering::AcqRel);
                    return n;
                }
                let waited = waiting.clone();
                let job = Box::new(move |core: &Core| {
                    waited.fetch_sub(batch.len(), Ordering::AcqRel);
                    for forward in &batch {
                        forward.publish_on(core);
                    }
                });
                match shared.push(job, false) {
                    Ok(()) => 0,
                    Err(_) => n,
                }
            }
            Target::Cluster(cluster) => cluster.deliver_from_outside(&batch),
        }
    }

    /// Reports a change of the bridge's state to the handler's `error`,
    /// on the (first) loop.
    pub(crate) fn report(&self, error: Error) {
        let job = Box::new(move |core: &Core| core.report(&error));
        let _ = match self {
            Target::Single { shared, .. } => shared.push(job, false),
            Target::Cluster(cluster) => cluster.run_on(0, job, false),
        };
    }
}

impl Core {
    /// Hands a publish made on this server to the bus, if it has one.
    /// Returns whether the bus took it.
    pub(crate) fn publish_to_bus(&self, topic: &str, message: Message<'_>, compress: bool) -> bool {
        self.bus
            .as_ref()
            .is_some_and(|bus| bus.publish(topic, message, compress))
    }

    /// The server stops: so does its bridge (see [`Link::shutdown`]).
    pub(crate) fn stop_bus(&self) {
        if let Some(bus) = &self.bus {
            bus.shutdown();
        }
    }

    /// The App goes: waits for the bridge thread to end.
    pub(crate) fn end_bus(&self) {
        if let Some(bus) = &self.bus {
            bus.join();
        }
    }

    /// The whole server (all its threads) now has subscribers to `topic`
    /// (`wanted`), or has none any more.
    pub(crate) fn bus_topic(&self, topic: &[u8], wanted: bool) {
        if let Some(bus) = &self.bus {
            bus.want(topic, wanted);
        }
    }
}
