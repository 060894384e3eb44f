//! The Redis transport: `PUBLISH` in pipelines on one connection,
//! `SUBSCRIBE` on another ([`Bus::redis`]); or, on a Redis Cluster,
//! `SPUBLISH` and `SSUBSCRIBE` routed to each channel's shard by the
//! cluster client, over RESP3 ([`Bus::redis_cluster`]).
//!
//! A topic `T` is the channel `prefix ++ T`. The bridge reconnects on its
//! own (each session starts from nothing and subscribes to every topic
//! wanted), so the clients' own reconnection is not relied on.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::socket2::TcpKeepalive;
use redis::io::tcp::TcpSettings;
use redis::{
    AsyncConnectionConfig, IntoConnectionInfo, Pipeline, PushInfo, PushKind, RedisError, Value,
};
use tokio::time::timeout;

use super::bridge::{Bridge, Ended, BATCH, CONNECT_TIMEOUT, RESPONSE_TIMEOUT};
use super::link::Outgoing;
use super::{redact, Bus, Kind};

/// A write of a batch of publishes on its way: how many, and the outcome.
type Inflight = Pin<Box<dyn Future<Output = (usize, Result<(), RedisError>)>>>;

/// The sockets' settings: no Nagle delay (a pipeline's last bytes would
/// wait for the peer's delayed ACK: tens of milliseconds per batch), and
/// keepalives to notice a bus that vanished without closing.
fn tcp() -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(15))
        .with_interval(Duration::from_secs(5));
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
}

/// A client for the server at `url`.
fn client(url: &str) -> Result<redis::Client, RedisError> {
    redis::Client::open(url.into_connection_info()?.set_tcp_settings(tcp()))
}

/// Checks the URL(s) of a Redis bus (without connecting).
pub(super) fn check(bus: &Bus) -> Result<(), String> {
    match bus.kind {
        Kind::Redis { ref url } => client(url)
            .map(drop)
            .map_err(|e| format!("bad Redis URL {}: {e}", redact(url))),
        Kind::RedisCluster { ref nodes } => {
            if nodes.is_empty() {
                return Err("a Redis Cluster needs the URL of at least one node".into());
            }
            ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                .build()
                .map(drop)
                .map_err(|e| format!("bad Redis Cluster URL in {}: {e}", bus.display()))
        }
        #[allow(unreachable_patterns)] // with the `nats` feature
        _ => Ok(()),
    }
}

/// Serves the bus until the server stops: sessions, and waits in between.
pub(super) async fn run(b: &mut Bridge<'_>) {
    loop {
        let ended = match b.link.bus.kind {
            Kind::Redis { ref url } => plain(b, url).await,
            Kind::RedisCluster { ref nodes } => sharded(b, nodes).await,
            #[allow(unreachable_patterns)] // with the `nats` feature
            _ => return,
        };
        match ended {
            Ended::Stop => return,
            Ended::Lost(why) => b.lost(&why),
        }
        if !b.wait_to_retry().await {
            return;
        }
    }
}

/// The channel of `topic`.
fn channel(prefix: &str, topic: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(prefix.len() + topic.len());
    c.extend_from_slice(prefix.as_bytes());
    c.extend_from_slice(topic);
    c
}

/// One pipeline of `PUBLISH` (or `SPUBLISH`) for the publishes taken.
fn pipeline<'o>(command: &str, prefix: &str, out: impl Iterator<Item = &'o Outgoing>) -> Pipeline {
    let mut pipe = redis::pipe();
    let mut name = Vec::new();
    for o in out {
        name.clear();
        name.extend_from_slice(prefix.as_bytes());
        name.extend_from_slice(o.topic());
        pipe.cmd(command).arg(&name[..]).arg(o.message()).ignore();
    }
    pipe
}

/// Waits for the write in flight, if any (never ready otherwise), and
/// clears it.
async fn landed(inflight: &mut Option<Inflight>) -> (usize, Result<(), RedisError>) {
    let Some(write) = inflight else {
        return std::future::pending().await;
    };
    let done = write.await;
    *inflight = None;
    done
}

/// Counts a landed write; `Err` with the reason when it failed.
fn count(b: &mut Bridge<'_>, (n, result): (usize, Result<(), RedisError>)) -> Result<(), String> {
    let c = &b.link.counters;
    match result {
        Ok(()) => {
            super::link::Counters::add(&c.published, n);
            Ok(())
        }
        Err(e) => {
            super::link::Counters::add(&c.dropped_disconnected, n);
            Err(e.to_string())
        }
    }
}

/// A session of plain pub/sub: until the connection fails or the server
/// stops.
async fn plain(b: &mut Bridge<'_>, url: &str) -> Ended {
    let prefix = b.prefix();
    let client = match client(url) {
        Ok(c) => c,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let connect = async {
        let publisher = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        let channels: Vec<Vec<u8>> = b.wanted.iter().map(|t| channel(prefix, t)).collect();
        for some in channels.chunks(BATCH) {
            sink.subscribe(some).await?;
        }
        Ok::<_, RedisError>((publisher, sink, stream))
    };
    let (publisher, mut sink, stream) = match connected(connect).await {
        Ok(c) => c,
        Err(ended) => return ended,
    };
    b.connected();
    let mut messages = stream.ready_chunks(BATCH);
    let mut inflight: Option<Inflight> = None;
    loop {
        tokio::select! {
            done = landed(&mut inflight) => if let Err(why) = count(b, done) {
                return Ended::Lost(why);
            },
            batch = messages.next() => {
                let Some(batch) = batch else {
                    return Ended::Lost("the subscriber connection closed".into());
                };
                for m in &batch {
                    // Our channels are UTF-8 (a string prefix and topic).
                    let channel = m.get_channel_name().as_bytes();
                    if let Some(topic) = channel.strip_prefix(prefix.as_bytes()) {
                        b.receive(topic, m.get_payload_bytes());
                    }
                }
                b.flush();
            }
            () = Bridge::ready(b.link), if inflight.is_none() => {
                let (join, leave) = b.take();
                let subscribed = async {
                    let join: Vec<Vec<u8>> = join.iter().map(|t| channel(prefix, t)).collect();
                    let leave: Vec<Vec<u8>> = leave.iter().map(|t| channel(prefix, t)).collect();
                    if !join.is_empty() {
                        sink.subscribe(&join).await?;
                    }
                    if !leave.is_empty() {
                        sink.unsubscribe(&leave).await?;
                    }
                    Ok::<_, RedisError>(())
                };
                let subscribed = timeout(RESPONSE_TIMEOUT, subscribed).await;
                let write = |out: &[Outgoing]| -> Inflight {
                    let pipe = pipeline("PUBLISH", prefix, out.iter());
                    let (n, mut conn) = (out.len(), publisher.clone());
                    Box::pin(async move { (n, pipe.exec_async(&mut conn).await) })
                };
                if let Some(ended) = finish(b, subscribed, &mut inflight, write).await {
                    return ended;
                }
            }
        }
    }
}

/// Waits for a connection (and its first subscriptions), at most
/// [`CONNECT_TIMEOUT`].
async fn connected<T>(connect: impl Future<Output = Result<T, RedisError>>) -> Result<T, Ended> {
    match timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(Ended::Lost(e.to_string())),
        Err(_) => Err(Ended::Lost("timed out connecting".into())),
    }
}

/// Finishes a batch of work taken from the loops once its (un)subscribes
/// are done (`subscribed`): the publishes taken become the write in
/// flight (`write` makes it); at the stop, waits for that write. `Some`
/// ends the session (a failure loses the batch's publishes).
async fn finish(
    b: &mut Bridge<'_>,
    subscribed: Result<Result<(), RedisError>, tokio::time::error::Elapsed>,
    inflight: &mut Option<Inflight>,
    write: impl FnOnce(&[Outgoing]) -> Inflight,
) -> Option<Ended> {
    let why = match subscribed {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("timed out subscribing".into()),
    };
    if let Some(why) = why {
        b.drop_out(&b.link.counters.dropped_disconnected);
        return Some(Ended::Lost(why));
    }
    b.set_topics(b.wanted.len());
    if !b.work.out.is_empty() {
        *inflight = Some(write(&b.work.out));
        b.work.out.clear();
    }
    if b.work.stopping {
        if let Some(done) = inflight.take() {
            let _ = count(b, done.await);
        }
        return Some(Ended::Stop);
    }
    None
}

/// The bytes of a bulk string.
fn bulk(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

/// A session of sharded pub/sub on a Redis Cluster.
async fn sharded(b: &mut Bridge<'_>, nodes: &[String]) -> Ended {
    let prefix = b.prefix();
    let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
    let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(tx)
        .tcp_settings(tcp())
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    let connect = async {
        let mut conn = client.get_async_connection().await?;
        for topic in &b.wanted {
            conn.ssubscribe(channel(prefix, topic)).await?;
        }
        Ok::<_, RedisError>(conn)
    };
    let mut conn: ClusterConnection = match connected(connect).await {
        Ok(c) => c,
        Err(ended) => return ended,
    };
    b.connected();
    let mut inflight: Option<Inflight> = None;
    loop {
        tokio::select! {
            done = landed(&mut inflight) => if let Err(why) = count(b, done) {
                return Ended::Lost(why);
            },
            push = pushes.recv() => {
                let mut push = push;
                let mut n = 0;
                while let Some(p) = push {
                    match p.kind {
                        PushKind::SMessage => {
                            if let [channel, message, ..] = &p.data[..] {
                                let topic = bulk(channel)
                                    .and_then(|c| c.strip_prefix(prefix.as_bytes()));
                                if let (Some(topic), Some(message)) = (topic, bulk(message)) {
                                    b.receive(topic, message);
                                }
                            }
                        }
                        PushKind::Disconnection => {
                            b.flush();
                            return Ended::Lost("a node's connection closed".into());
                        }
                        _ => {}
                    }
                    n += 1;
                    push = if n < BATCH { pushes.recv().now_or_never().flatten() } else { None };
                }
                b.flush();
            }
            () = Bridge::ready(b.link), if inflight.is_none() => {
                let (join, leave) = b.take();
                let subscribed = async {
                    for topic in &join {
                        conn.ssubscribe(channel(prefix, topic)).await?;
                    }
                    for topic in &leave {
                        conn.sunsubscribe(channel(prefix, topic)).await?;
                    }
                    Ok::<_, RedisError>(())
                };
                let subscribed = timeout(RESPONSE_TIMEOUT, subscribed).await;
                let write = |out: &[Outgoing]| -> Inflight {
                    // A pipeline goes to one shard: one per topic, each in
                    // publish order, all written at once.
                    let mut by_topic: HashMap<&[u8], Vec<usize>> = HashMap::new();
                    for (i, o) in out.iter().enumerate() {
                        by_topic.entry(o.topic()).or_default().push(i);
                    }
                    let writes: Vec<_> = by_topic
                        .into_values()
                        .map(|indexes| {
                            let pipe = pipeline("SPUBLISH", prefix, indexes.iter().map(|&i| &out[i]));
                            let mut conn = conn.clone();
                            async move { pipe.exec_async(&mut conn).await }
                        })
                        .collect();
                    let n = out.len();
                    Box::pin(async move {
                        let results = futures_util::future::join_all(writes).await;
                        (n, results.into_iter().collect::<Result<(), _>>())
                    })
                };
                if let Some(ended) = finish(b, subscribed, &mut inflight, write).await {
                    return ended;
                }
            }
        }
    }
}
