//! The NATS transport ([`Bus::nats`]): one client connection that
//! publishes and holds a subscription per topic wanted.
//!
//! Subjects are not binary-safe: a topic becomes the token after the
//! prefix through [`subject`] (an escape that any byte string survives).
//! The client reconnects by itself (with our backoff) and subscribes again
//! on its own; its events drive the bridge's state. After subscribing, and
//! after each reconnect, the bridge makes a round trip through the server
//! (a request nobody answers) before it counts the topics as subscribed:
//! the server handles a connection's operations in order, so they are in
//! place once the answer comes.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use async_nats::{ConnectOptions, Event, ServerAddr};
use bytes::Bytes;
use futures_util::stream::{abortable, AbortHandle, SelectAll};
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::time::timeout;

use super::bridge::{delay, Bridge, BATCH, CONNECT_TIMEOUT, RESPONSE_TIMEOUT};
use super::envelope;
use super::link::Counters;
use super::Bus;

/// Encoded topics longer than this are hashed.
const LONGEST: usize = 256;

/// The subject of `topic`: `prefix.TOKEN`, where the token keeps ASCII
/// letters, digits, `-` and `_`, and writes any other byte as `=XX`; the
/// empty topic is `=`. A token longer than [`LONGEST`] becomes `#` and a
/// 128-bit hash of the topic (such messages carry their topic, checked on
/// arrival). Returns the subject and whether it is hashed.
pub(super) fn subject(prefix: &str, topic: &[u8]) -> (String, bool) {
    let mut s = String::with_capacity(prefix.len() + 1 + topic.len());
    s.push_str(prefix);
    s.push('.');
    let start = s.len();
    if topic.is_empty() {
        s.push('=');
    }
    for &b in topic {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            s.push(b as char);
        } else {
            let _ = write!(s, "={b:02X}");
        }
        if s.len() - start > LONGEST {
            s.truncate(start);
            // Two FNV-1a hashes with different offsets: 128 bits.
            let fnv = |basis: u64| {
                topic.iter().fold(basis, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                })
            };
            let _ = write!(
                s,
                "#{:016x}{:016x}",
                fnv(0xcbf2_9ce4_8422_2325),
                fnv(0x6c62_272e_07bb_0142)
            );
            return (s, true);
        }
    }
    (s, false)
}

/// Whether `prefix` can start subjects: dot-separated tokens, none empty
/// or a wildcard, no spaces.
fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token != "*"
                && token != ">"
                && !token
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        })
}

/// The URLs of a NATS bus (several are comma-separated).
fn addresses(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).collect()
}

/// Checks the URL and the prefix of a NATS bus (without connecting).
pub(super) fn check(bus: &Bus, url: &str) -> Result<(), String> {
    for one in addresses(url) {
        if one.is_empty() {
            return Err(format!(
                "bad NATS URL {}: an empty address",
                super::redact(url)
            ));
        }
        one.parse::<ServerAddr>()
            .map_err(|e| format!("bad NATS URL {}: {e}", super::redact(one)))?;
    }
    let prefix = bus.prefix_or_default();
    if !valid_prefix(prefix) {
        return Err(format!(
            "{prefix:?} cannot start NATS subjects (dot-separated tokens, none empty, `*` or `>`, no spaces)"
        ));
    }
    Ok(())
}

/// Messages of the subscriptions, with the topic each came for.
type Inbound = SelectAll<
    futures_util::stream::Abortable<
        std::pin::Pin<Box<dyn Stream<Item = (Arc<[u8]>, async_nats::Message)> + Send>>,
    >,
>;

/// Makes sure the server has handled everything sent so far: a request
/// that nobody answers comes back (as "no responders") after it.
async fn round_trip(client: &async_nats::Client, prefix: &str) {
    let _ = timeout(
        RESPONSE_TIMEOUT,
        client.request(format!("{prefix}.#sync"), Bytes::new()),
    )
    .await;
}

/// Serves the bus until the server stops.
pub(super) async fn run(b: &mut Bridge<'_>, url: &str) {
    let prefix = b.prefix();
    let (first, max) = (b.link.bus.reconnect_first, b.link.bus.reconnect_max);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let options = ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .no_echo()
        .connection_timeout(CONNECT_TIMEOUT)
        .reconnect_delay_callback(move |attempt| delay(first, max, attempt.max(1) as u32))
        .event_callback(move |event| {
            let tx = events_tx.clone();
            async move {
                let _ = tx.send(event);
            }
        });
    let client = match options.connect(addresses(url)).await {
        Ok(client) => client,
        Err(e) => {
            b.lost(&e.to_string());
            return;
        }
    };
    let mut inbound: Inbound = SelectAll::new();
    let mut subscriptions: HashMap<Box<[u8]>, AbortHandle> = HashMap::new();
    let mut connected = false;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Connected) => {
                    round_trip(&client, prefix).await;
                    connected = true;
                    b.connected();
                }
                Some(Event::Disconnected) => {
                    connected = false;
                    b.lost("disconnected");
                }
                Some(Event::Closed) | None => {
                    b.lost("the client closed");
                    return;
                }
                Some(Event::SlowConsumer(_)) => {
                    b.note("NATS dropped messages for a slow subscription".into());
                }
                Some(Event::ServerError(e)) => b.note(format!("NATS server error: {e}")),
                // Also each failed attempt to connect.
                Some(Event::ClientError(e)) if !connected => b.lost(&e.to_string()),
                Some(Event::ClientError(e)) => b.note(format!("NATS client error: {e}")),
                Some(_) => {}
            },
            message = inbound.next(), if !inbound.is_empty() => {
                let mut message = message;
                let mut n = 0;
                while let Some((topic, m)) = message {
                    b.receive(&topic, &m.payload);
                    n += 1;
                    message = if n < BATCH { inbound.next().now_or_never().flatten() } else { None };
                }
                b.flush();
            }
            () = Bridge::ready(b.link) => {
                let (join, leave) = b.take();
                for topic in leave {
                    if let Some(handle) = subscriptions.remove(&topic) {
                        // Ends the stream, which drops the subscription
                        // (the client unsubscribes).
                        handle.abort();
                    }
                }
                let joined = !join.is_empty();
                for topic in join {
                    let (name, _) = subject(prefix, &topic);
                    match client.subscribe(name).await {
                        Ok(subscriber) => {
                            let key: Arc<[u8]> = topic.clone().into();
                            let stream: std::pin::Pin<Box<dyn Stream<Item = _> + Send>> =
                                Box::pin(subscriber.map(move |m| (key.clone(), m)));
                            let (stream, handle) = abortable(stream);
                            inbound.push(stream);
                            subscriptions.insert(topic, handle);
                        }
                        Err(e) => b.note(format!("could not subscribe: {e}")),
                    }
                }
                if connected {
                    if joined {
                        round_trip(&client, prefix).await;
                    }
                    b.set_topics(subscriptions.len());
                    publish(b, &client, prefix).await;
                } else {
                    b.drop_out(&b.link.counters.dropped_disconnected);
                }
                if b.work.stopping {
                    let _ = timeout(RESPONSE_TIMEOUT, client.flush()).await;
                    return;
                }
            }
        }
    }
}

/// Publishes what was taken (the client writes them out in batches).
async fn publish(b: &mut Bridge<'_>, client: &async_nats::Client, prefix: &str) {
    let c = &b.link.counters;
    for o in b.work.out.drain(..) {
        let (name, hashed) = subject(prefix, o.topic());
        let payload = if hashed {
            Bytes::from(envelope::with_topic(o.message(), o.topic()))
        } else {
            let (data, start) = o.into_parts();
            Bytes::from(data).slice(start..)
        };
        match client.publish(name, payload).await {
            Ok(()) => Counters::add(&c.published, 1),
            Err(e) if e.kind() == async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
                Counters::add(&c.dropped_refused, 1)
            }
            Err(_) => Counters::add(&c.dropped_disconnected, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_topic_makes_one_valid_token() {
        assert_eq!(subject("uws", b"room").0, "uws.room");
        assert_eq!(subject("a.b", b"chat-1_x").0, "a.b.chat-1_x");
        assert_eq!(subject("uws", b"").0, "uws.=");
        assert_eq!(subject("uws", b"=").0, "uws.=3D");
        assert_eq!(subject("uws", b"a.b *>").0, "uws.a=2Eb=20=2A=3E");
        assert_eq!(subject("uws", "é".as_bytes()).0, "uws.=C3=A9");
        // Distinct topics, distinct subjects.
        assert_ne!(subject("uws", b"a.b").0, subject("uws", b"a_b").0);
    }

    #[test]
    fn long_topics_are_hashed() {
        let long = vec![b'x'; 300];
        let (s, hashed) = subject("uws", &long);
        assert!(hashed);
        assert_eq!(s.len(), "uws.#".len() + 32);
        let mut other = long.clone();
        other[299] = b'y';
        assert_ne!(subject("uws", &other).0, s);
        assert_eq!(subject("uws", &long).0, s, "the same on every server");
        assert!(!subject("uws", &[b'x'; 256]).1);
    }

    #[test]
    fn prefixes_are_checked() {
        for good in ["uws", "app.ws", "a-b_c.d"] {
            assert!(valid_prefix(good), "{good}");
        }
        for bad in ["", ".", "a.", ".a", "a..b", "a.*", ">", "a b", "a\tb"] {
            assert!(!valid_prefix(bad), "{bad:?}");
        }
    }
}
