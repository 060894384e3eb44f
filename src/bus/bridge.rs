//! The bridge thread: a small single-threaded async runtime that owns the
//! bus connections, takes the loops' publishes and (un)subscriptions from
//! the [`Link`], and hands what comes from the bus to the loops.
//!
//! The transports (`redis`, `nats`) do the bus's own part; what they share
//! lives here: waiting for work, the topics wanted, reading messages from
//! the bus into batches for the loops, states and their reports, backoff.

use std::collections::HashSet;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::envelope;
use super::link::{random_u64, Counters, Link, Target, Work};
use super::{BusState, Kind};
use crate::error::Error;
use crate::server::cluster::Forward;
use crate::websocket::Message;

/// How long what waits in the queue may take to go out once the server
/// stops.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// How long connecting (and subscribing after it) may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a write to the bus may wait for its answer.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages from the bus handed to the loops in one job, at most.
pub(super) const BATCH: usize = 1024;

/// The bridge thread's body.
pub(super) fn run(link: Arc<Link>, target: Target) {
    let result = crate::runtime::catch(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => {
                runtime.block_on(serve(&link, &target));
                // Tasks the clients spawned end with the runtime; none may
                // keep the thread.
                runtime.shutdown_timeout(Duration::from_millis(250));
            }
            Err(e) => target.report(Error::Bus {
                state: link.state(),
                reason: format!("could not start the bridge's runtime: {e}"),
            }),
        }
    });
    if let Err(p) = result {
        let error = crate::runtime::caught("bus bridge", p);
        target.report(Error::Bus {
            state: BusState::Stopped,
            reason: format!("the bridge ended: {error}"),
        });
    }
    link.set_state(BusState::Stopped);
    link.counters.topics.store(0, Ordering::Relaxed);
}

/// Runs the transport until the stop, then gives it [`STOP_GRACE`] to
/// send what waits.
async fn serve(link: &Link, target: &Target) {
    let mut bridge = Bridge::new(link, target);
    let transport = async {
        match link.bus.kind {
            #[cfg(feature = "redis")]
            Kind::Redis { .. } | Kind::RedisCluster { .. } => super::redis::run(&mut bridge).await,
            #[cfg(feature = "nats")]
            Kind::Nats { ref url } => super::nats::run(&mut bridge, url).await,
        }
    };
    let deadline = async {
        poll_fn(|cx| link.poll_stopped(cx)).await;
        tokio::time::sleep(STOP_GRACE).await;
    };
    tokio::select! {
        () = transport => {}
        () = deadline => {}
    }
}

/// Topics, as the loops gave them.
pub(super) type Topics = Vec<Box<[u8]>>;

/// Why a connection to the bus ended (the NATS client reconnects on its
/// own).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(super) enum Ended {
    /// The server stops.
    Stop,
    /// The bus went away (or could not be reached): why.
    Lost(String),
}

/// What the transports share.
pub(super) struct Bridge<'a> {
    pub(super) link: &'a Link,
    target: &'a Target,
    /// Topics the server has subscribers to: what to be subscribed to on
    /// the bus.
    pub(super) wanted: HashSet<Box<[u8]>>,
    /// What was last taken from the queue.
    pub(super) work: Work,
    /// Messages from the bus for the loops, handed over by `flush`.
    inbound: Vec<Forward>,
    ever_connected: bool,
    /// The loss was reported (reported once per outage).
    down_reported: bool,
    attempt: u32,
}

impl<'a> Bridge<'a> {
    fn new(link: &'a Link, target: &'a Target) -> Self {
        Bridge {
            link,
            target,
            wanted: HashSet::new(),
            work: Work::default(),
            inbound: Vec::new(),
            ever_connected: false,
            down_reported: false,
            attempt: 0,
        }
    }

    pub(super) fn prefix(&self) -> &'a str {
        self.link.bus.prefix_or_default()
    }

    /// Waits until the loops have work for the bridge (or the stop).
    pub(super) async fn ready(link: &Link) {
        poll_fn(|cx| link.poll_work(cx)).await
    }

    /// Takes what waits into `self.work`, and applies the changes of
    /// topics to `wanted`. Returns the topics to subscribe to and to leave
    /// on the bus.
    pub(super) fn take(&mut self) -> (Topics, Topics) {
        self.work.out.clear();
        self.link.take(&mut self.work);
        let (mut join, mut leave) = (Vec::new(), Vec::new());
        // One change per topic (the latest).
        for (topic, wanted) in self.work.changes.drain(..) {
            if wanted {
                if self.wanted.insert(topic.clone()) {
                    join.push(topic);
                }
            } else if self.wanted.remove(&topic) {
                leave.push(topic);
            }
        }
        (join, leave)
    }

    /// Counts the publishes taken as dropped for `why`.
    pub(super) fn drop_out(&mut self, why: &std::sync::atomic::AtomicU64) {
        Counters::add(why, self.work.out.len());
        self.work.out.clear();
    }

    pub(super) fn set_topics(&self, n: usize) {
        self.link.counters.topics.store(n, Ordering::Relaxed);
    }

    fn report(&self, state: BusState, reason: String) {
        self.target.report(Error::Bus { state, reason });
    }

    /// Connected and subscribed to every topic wanted.
    pub(super) fn connected(&mut self) {
        self.set_topics(self.wanted.len());
        self.attempt = 0;
        self.down_reported = false;
        let url = self.link.bus.display();
        let old = self.link.set_state(BusState::Connected);
        if old == BusState::Connected {
            return;
        }
        let reason = if self.ever_connected {
            Counters::add(&self.link.counters.reconnects, 1);
            format!("reconnected to {url} ({} topics)", self.wanted.len())
        } else {
            format!("connected to {url}")
        };
        self.ever_connected = true;
        self.report(BusState::Connected, reason);
    }

    /// The bus went away, or could not be reached: reported once per
    /// outage.
    pub(super) fn lost(&mut self, why: &str) {
        self.set_topics(0);
        let state = if self.ever_connected {
            BusState::Reconnecting
        } else {
            BusState::Connecting
        };
        if self.link.set_state(state) == BusState::Stopped {
            self.link.set_state(BusState::Stopped);
            return;
        }
        if !self.down_reported {
            self.down_reported = true;
            let url = self.link.bus.display();
            let reason = if self.ever_connected {
                format!("lost {url}: {why}; reconnecting (local delivery goes on)")
            } else {
                format!("cannot reach {url}: {why}; retrying (local delivery goes on)")
            };
            self.report(state, reason);
        }
    }

    /// Reports something the bus said that changes no state.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(super) fn note(&self, what: String) {
        self.report(self.link.state(), what);
    }

    /// The next delay before trying again (backoff with jitter).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        delay(
            self.link.bus.reconnect_first,
            self.link.bus.reconnect_max,
            self.attempt,
        )
    }

    /// Waits before trying again, meanwhile dropping publishes (counted)
    /// and noting which topics are wanted. False when the server stops.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) async fn wait_to_retry(&mut self) -> bool {
        let sleep = tokio::time::sleep(self.next_delay());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                () = Self::ready(self.link) => {
                    self.take();
                    self.drop_out(&self.link.counters.dropped_disconnected);
                    if self.work.stopping {
                        return false;
                    }
                }
            }
        }
    }

    /// A message from the bus on `topic`: ignored when this server sent
    /// it, otherwise batched for the loops.
    pub(super) fn receive(&mut self, topic: &[u8], bytes: &[u8]) {
        let c = &self.link.counters;
        let e = envelope::read(bytes);
        if e.id == Some(self.link.id) {
            Counters::add(&c.echoes, 1);
            return;
        }
        if e.topic.is_some_and(|t| t != topic) {
            // Another topic whose subject hashes the same.
            return;
        }
        let Ok(topic) = std::str::from_utf8(topic) else {
            Counters::add(&c.dropped_incoming, 1);
            return;
        };
        let message = if e.binary {
            Message::Binary(e.payload)
        } else {
            match std::str::from_utf8(e.payload) {
                Ok(text) => Message::Text(text),
                Err(_) => {
                    Counters::add(&c.dropped_incoming, 1);
                    return;
                }
            }
        };
        self.inbound.push(Forward::new(topic, message, e.compress));
        if self.inbound.len() >= BATCH {
            self.flush();
        }
    }

    /// Hands the messages batched by `receive` to the loops.
    pub(super) fn flush(&mut self) {
        if self.inbound.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.inbound);
        let n = batch.len();
        let dropped = self.target.deliver(batch);
        let c = &self.link.counters;
        Counters::add(&c.received, n.saturating_sub(dropped));
        Counters::add(&c.dropped_incoming, dropped);
    }
}

/// The delay before attempt `attempt` (1, 2, ...): `first` doubled each
/// time up to `max`, plus up to a quarter at random.
pub(super) fn delay(first: Duration, max: Duration, attempt: u32) -> Duration {
    let base = first
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    let quarter = base.as_nanos() as u64 / 4;
    let jitter = if quarter == 0 {
        0
    } else {
        random_u64() % quarter
    };
    base + Duration::from_nanos(jitter)
}

#[cfg(test)]
mod tests {
    use super::delay;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_the_max_with_a_quarter_of_jitter() {
        let (first, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for (attempt, base) in [(1, 100), (2, 200), (3, 400), (7, 5000), (60, 5000)] {
            let d = delay(first, max, attempt).as_millis();
            assert!((base..=base + base / 4).contains(&d), "{attempt}: {d}");
        }
    }
}
