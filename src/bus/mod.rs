//! Pub/sub across servers: a bridge from a server's topics to a message
//! bus (Redis pub/sub, NATS), so that a publish on any server reaches the
//! subscribers of every server (Socket.IO's Redis adapter, for uws).
//!
//! The pieces:
//! - [`Bus`]: which bus, and how ([`ServeOptions::bus`](crate::ServeOptions::bus)).
//! - `link`: what the loops see of the bridge: a bounded queue of
//!   publishes and the topics to (un)subscribe, never blocking.
//! - `bridge`: the bridge thread, with its own small async runtime, that
//!   owns the bus connections; `redis` and `nats` are its two transports.
//!
//! Messages from the bus reach the loops only as jobs of their queues (one
//! per batch), the way [`ServerHandle`](crate::ServerHandle) calls do.

#[cfg(any(feature = "redis", feature = "nats"))]
mod bridge;
mod envelope;
pub(crate) mod link;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::time::Duration;

use crate::error::Error;

/// A message bus that servers share, so that a publish on any of them
/// reaches the subscribers of all: set it as
/// [`ServeOptions::bus`](crate::ServeOptions::bus). Needs the cargo feature
/// `redis` or `nats` (without either, no `Bus` can be made).
///
/// What Bun leaves to you (a Redis client in `message`, a subscriber that
/// calls `server.publish`), as Socket.IO's Redis adapter does it for
/// Socket.IO:
///
/// - Every publish made on this server ([`Server::publish`](crate::Server::publish),
///   [`ServerWebSocket::publish`](crate::ServerWebSocket::publish),
///   [`ServerHandle::publish`](crate::ServerHandle::publish), on every thread)
///   is delivered here at once, and handed to the bus; the other servers
///   deliver it to their subscribers. Each subscriber gets it once: the
///   bus's copy of its own publishes is recognised (each server tags its
///   messages with a random id made at start) and ignored. Text stays text,
///   binary stays binary, and the `compress` flag goes along (each server
///   compresses by its own options).
/// - A server subscribes on the bus to a topic while it has subscribers to
///   it (on any of its threads), and unsubscribes when the last one leaves.
/// - Order: the messages of one publisher (a socket, the server, a handle)
///   arrive everywhere in the order they were published (with
///   `redis_cluster`: per topic).
/// - Delivery is at most once, as with Redis pub/sub itself: what is
///   published while the bus is away, or while a server is not subscribed
///   yet, is lost for the other servers (never for this one's own
///   subscribers). Such losses are counted in [`BusStatus`].
/// - The bus's input and output run on a thread of the bridge's own
///   (`uws-bus`), never on a loop. Publishes wait for it in a bounded
///   queue ([`queue_limit`](Self::queue_limit)); when the bus is slower
///   than the publishes, the newest publishes that do not fit are dropped
///   for the other servers and counted ([`BusStatus::dropped_queue_full`]).
///   The bridge writes whatever waits in one go (many `PUBLISH` per write).
/// - When the bus goes away, local delivery goes on. The bridge reconnects
///   with backoff ([`reconnect_delay`](Self::reconnect_delay)),
///   subscribes again to the current topics, and reports each change of
///   state to [`WebSocketHandler::error`](crate::WebSocketHandler::error) as
///   [`Error::Bus`] (also readable any time with
///   [`Server::bus_status`](crate::Server::bus_status)). A bus that is down
///   when the server starts is the same case: [`serve`](crate::serve)
///   succeeds and the bridge keeps trying. A URL that cannot be used at
///   all makes `serve` fail.
/// - [`Server::stop`](crate::Server::stop) ends the bridge too: what waits
///   in the queue then gets a second to go out, and the thread is gone
///   when the App is.
///
/// Topics are any string; on the bus they get a prefix
/// ([`prefix`](Self::prefix)), so that several applications can share one
/// bus. Messages that other programs publish on a topic's channel (say
/// `redis-cli PUBLISH uws:news hello`) reach its subscribers too: text
/// when they are UTF-8, binary otherwise.
///
/// ```no_run
/// # #[cfg(feature = "redis")]
/// # fn main() -> Result<(), uws::Error> {
/// use uws::*;
///
/// struct Chat;
/// impl WebSocketHandler for Chat {
///     type Data = ();
///     fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
///         server.upgrade(req, UpgradeOptions::new(()));
///         Response::new("")
///     }
///     fn open(&self, ws: &mut ServerWebSocket<()>) {
///         ws.subscribe("room");
///     }
///     fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
///         // Reaches the room on every server started with the same bus.
///         ws.server().publish("room", message);
///     }
/// }
///
/// let options = ServeOptions {
///     port: 3000,
///     bus: Some(Bus::redis("redis://127.0.0.1:6379").prefix("chat:")),
///     ..Default::default()
/// };
/// serve(options, Chat)?.run();
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "redis"))]
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct Bus {
    pub(crate) kind: Kind,
    pub(crate) prefix: Option<String>,
    pub(crate) queue_limit: usize,
    pub(crate) queue_bytes: usize,
    pub(crate) reconnect_first: Duration,
    pub(crate) reconnect_max: Duration,
}

/// Which bus, with its addresses.
#[derive(Clone)]
pub(crate) enum Kind {
    /// Plain `PUBLISH`/`SUBSCRIBE` through one Redis server.
    #[cfg(feature = "redis")]
    Redis { url: String },
    /// Sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`) over a Redis Cluster.
    #[cfg(feature = "redis")]
    RedisCluster { nodes: Vec<String> },
    /// NATS core subjects.
    #[cfg(feature = "nats")]
    Nats { url: String },
    /// Never made: a build without the bus features has no bus.
    #[cfg(not(any(feature = "redis", feature = "nats")))]
    #[allow(dead_code)]
    Unavailable,
}

impl Bus {
    #[allow(dead_code)] // without a bus feature nothing makes a `Bus`
    fn new(kind: Kind) -> Bus {
        Bus {
            kind,
            prefix: None,
            queue_limit: 65_536,
            queue_bytes: 64 << 20,
            reconnect_first: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }

    /// Redis pub/sub (`PUBLISH`/`SUBSCRIBE`) through the server at `url`
    /// (`redis://[user:password@]host[:port][/db]`, or
    /// `redis+unix:///path/to/socket`). A topic `T` is the channel
    /// `prefix + T`, byte for byte (default prefix `uws:`). The bridge keeps
    /// two connections to the server: one publishes, in pipelines, one
    /// subscribes. Needs the `redis` feature.
    ///
    /// On a Redis Cluster this works through any one node (Redis broadcasts
    /// classic pub/sub to every node); [`redis_cluster`](Self::redis_cluster)
    /// spreads the load over the shards instead.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(url: impl Into<String>) -> Bus {
        Bus::new(Kind::Redis { url: url.into() })
    }

    /// Sharded pub/sub on a Redis Cluster (Redis 7: `SPUBLISH` and
    /// `SSUBSCRIBE`): each topic's messages go through the shard that
    /// owns its channel's slot, instead of every node. `nodes` are URLs of
    /// one or more nodes of the cluster; the bridge finds the rest. Order
    /// is kept per publisher and topic (shards do not order messages
    /// between them). Channels are named as for [`redis`](Self::redis); a
    /// `{tag}` in a topic places the topics with the same tag on one
    /// shard, as for keys. Needs the `redis` feature.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis_cluster<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> Bus {
        Bus::new(Kind::RedisCluster {
            nodes: nodes.into_iter().map(Into::into).collect(),
        })
    }

    /// NATS core pub/sub through the server at `url` (`nats://host:port`,
    /// `tls://...`, with `user:password@` if needed; several URLs of one
    /// cluster separated by commas). A topic is the subject
    /// `prefix.ENCODED` (default prefix `uws`), where `ENCODED` keeps
    /// ASCII letters, digits, `-` and `_` and writes every other byte as
    /// `=XX` (hex): any topic makes a valid subject token, and no topic is
    /// a wildcard. Topics longer than 256 bytes become a hash of the topic
    /// (with the topic itself in the message, checked on arrival). Each
    /// message must fit the server's `max_payload` (1 MiB by default);
    /// larger ones are dropped for the other servers and counted
    /// ([`BusStatus::dropped_refused`]). Needs the `nats` feature.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    pub fn nats(url: impl Into<String>) -> Bus {
        Bus::new(Kind::Nats { url: url.into() })
    }

    /// What goes before every topic on the bus, so that applications
    /// sharing a bus do not see each other's topics. Redis: bytes before
    /// the topic in the channel name (default `uws:`). NATS: the subject's
    /// first tokens, without the final dot (default `uws`; no wildcards,
    /// no empty tokens, no spaces). All servers of one application must
    /// use the same.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Bus {
        self.prefix = Some(prefix.into());
        self
    }

    /// How many publishes may wait for the bus, and how many bytes they
    /// may hold together, at most (defaults: 65 536 messages, 64 MiB).
    /// Past either, a publish still reaches this server's subscribers, but
    /// not the bus: it is counted in [`BusStatus::dropped_queue_full`].
    pub fn queue_limit(mut self, messages: usize, bytes: usize) -> Bus {
        self.queue_limit = messages;
        self.queue_bytes = bytes;
        self
    }

    /// How long the bridge waits before it tries again after losing the
    /// bus (or failing to reach it): `first`, then twice as long each time
    /// up to `max`, each with up to a quarter more at random (so that many
    /// servers do not all come back at once). Defaults: 100 ms, 5 s.
    pub fn reconnect_delay(mut self, first: Duration, max: Duration) -> Bus {
        self.reconnect_first = first;
        self.reconnect_max = max;
        self
    }

    /// The address to show in messages: the URL without its password.
    pub(crate) fn display(&self) -> String {
        match self.kind {
            #[cfg(feature = "redis")]
            Kind::Redis { ref url } => redact(url),
            #[cfg(feature = "redis")]
            Kind::RedisCluster { ref nodes } => nodes
                .iter()
                .map(|n| redact(n))
                .collect::<Vec<_>>()
                .join(","),
            #[cfg(feature = "nats")]
            Kind::Nats { ref url } => redact(url),
            #[cfg(not(any(feature = "redis", feature = "nats")))]
            Kind::Unavailable => String::new(),
        }
    }

    /// The prefix in use (the transport's default when none was given).
    #[allow(dead_code)] // without a bus feature nothing reads it
    pub(crate) fn prefix_or_default(&self) -> &str {
        if let Some(prefix) = &self.prefix {
            return prefix;
        }
        match self.kind {
            #[cfg(feature = "redis")]
            Kind::Redis { .. } | Kind::RedisCluster { .. } => "uws:",
            #[cfg(feature = "nats")]
            Kind::Nats { .. } => "uws",
            #[cfg(not(any(feature = "redis", feature = "nats")))]
            Kind::Unavailable => "",
        }
    }

    /// Checks what can be checked without reaching the bus: the URLs, the
    /// prefix, the limits. A bus that is merely down is no error.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let bad = |reason: String| Error::InvalidOption {
            name: "bus",
            reason,
        };
        if self.queue_limit == 0 || self.queue_bytes == 0 {
            return Err(bad("the queue limits must be at least 1".into()));
        }
        if self.reconnect_first.is_zero() || self.reconnect_max < self.reconnect_first {
            return Err(bad(
                "the reconnect delays must be positive, the first no longer than the max".into(),
            ));
        }
        match self.kind {
            #[cfg(feature = "redis")]
            Kind::Redis { .. } | Kind::RedisCluster { .. } => redis::check(self).map_err(bad),
            #[cfg(feature = "nats")]
            Kind::Nats { ref url } => nats::check(self, url).map_err(bad),
            #[cfg(not(any(feature = "redis", feature = "nats")))]
            Kind::Unavailable => Err(bad("built without the redis and nats features".into())),
        }
    }
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            #[cfg(feature = "redis")]
            Kind::Redis { .. } => "redis",
            #[cfg(feature = "redis")]
            Kind::RedisCluster { .. } => "redis_cluster",
            #[cfg(feature = "nats")]
            Kind::Nats { .. } => "nats",
            #[cfg(not(any(feature = "redis", feature = "nats")))]
            Kind::Unavailable => "none",
        };
        f.debug_struct("Bus")
            .field("kind", &kind)
            .field("url", &self.display())
            .field("prefix", &self.prefix_or_default())
            .field("queue_limit", &(self.queue_limit, self.queue_bytes))
            .field(
                "reconnect_delay",
                &(self.reconnect_first, self.reconnect_max),
            )
            .finish()
    }
}

/// `url` without the password of its user part (`scheme://user:***@host`).
#[allow(dead_code)] // without a bus feature nothing shows a URL
fn redact(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let start = one.find("://").map_or(0, |i| i + 3);
            let host_start = one[start..].find('/').map_or(one.len(), |i| start + i);
            match one[start..host_start].rfind('@') {
                Some(at) => {
                    let user = &one[start..start + at];
                    let name = user.split(':').next().unwrap_or("");
                    let hidden = if user.contains(':') {
                        format!("{name}:***")
                    } else {
                        "***".into()
                    };
                    format!("{}{hidden}{}", &one[..start], &one[start + at..])
                }
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The bridge's state, in [`BusStatus`] and [`Error::Bus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusState {
    /// Not connected yet since the server started (the bus may be down:
    /// the bridge keeps trying).
    Connecting,
    /// Connected and subscribed: publishes flow both ways.
    Connected,
    /// The connection was lost; the bridge tries again with backoff.
    /// Publishes meanwhile reach only this server's subscribers.
    Reconnecting,
    /// The server stopped, and the bridge with it.
    Stopped,
}

impl BusState {
    pub(crate) fn from_u8(n: u8) -> BusState {
        match n {
            0 => BusState::Connecting,
            1 => BusState::Connected,
            2 => BusState::Reconnecting,
            _ => BusState::Stopped,
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            BusState::Connecting => 0,
            BusState::Connected => 1,
            BusState::Reconnecting => 2,
            BusState::Stopped => 3,
        }
    }
}

impl fmt::Display for BusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BusState::Connecting => "connecting",
            BusState::Connected => "connected",
            BusState::Reconnecting => "reconnecting",
            BusState::Stopped => "stopped",
        })
    }
}

/// The bridge's state and counters, from
/// [`Server::bus_status`](crate::Server::bus_status) or
/// [`ServerHandle::bus_status`](crate::ServerHandle::bus_status). Counters
/// start at 0 when the server starts and only grow.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusStatus {
    /// Connected, or not (yet, again).
    pub state: BusState,
    /// Where to (the URL without its password).
    pub url: String,
    /// This server's id on the bus (random, made at start): the tag that
    /// tells its own messages apart.
    pub server_id: u64,
    /// Publishes of this server written to the bus.
    pub published: u64,
    /// Messages of other servers (or other programs) from the bus, handed
    /// to this server's loops.
    pub received: u64,
    /// This server's own messages seen back from the bus and ignored.
    pub echoes: u64,
    /// Topics this server is subscribed to on the bus now.
    pub topics: usize,
    /// Publishes waiting for the bus now.
    pub queued: usize,
    /// Publishes not sent to the bus because its queue was full (a bus
    /// slower than the publishes).
    pub dropped_queue_full: u64,
    /// Publishes not sent (or lost in a failed write) because the bus was
    /// away.
    pub dropped_disconnected: u64,
    /// Publishes the bus refused (larger than NATS's `max_payload`, ...).
    pub dropped_refused: u64,
    /// Messages from the bus dropped because a loop's queue was full
    /// ([`ServeOptions::queue_limit`](crate::ServeOptions::queue_limit)), or
    /// that were not valid (text that is not UTF-8).
    pub dropped_incoming: u64,
    /// Times the bridge connected again after losing the bus.
    pub reconnects: u64,
}

impl BusStatus {
    /// Every message dropped, in either direction.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_disconnected
            + self.dropped_refused
            + self.dropped_incoming
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("redis://user:secret@host:1/2"),
            "redis://user:***@host:1/2"
        );
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redact("nats://token@h:4222"), "nats://***@h:4222");
        assert_eq!(
            redact("nats://a:b@h1,nats://h2"),
            "nats://a:***@h1,nats://h2"
        );
        assert_eq!(
            redact("redis+unix:///tmp/r.sock"),
            "redis+unix:///tmp/r.sock"
        );
    }
}
