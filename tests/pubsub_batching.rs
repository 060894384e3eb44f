//! Pub/sub as the batching patch (vendor/patches/0101) changes it: every
//! message published to a subscriber in one loop iteration leaves in one
//! write. What must not change: every subscriber gets every message meant
//! for it, whole, in each publisher's order, also past 32 messages per
//! iteration, across topics, mixed with direct sends and with compression;
//! a reader that falls behind gets its frames buffered whole, and past the
//! backpressure limit messages are dropped (or the socket closed) as before.
//!
//! Publishers write many commands with one flush, so the server reads them
//! in one go and publishes them in one loop iteration.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;

use common::deflate::{DeflateClient, OFFER};
use common::*;
use tungstenite::Message as WsMessage;
use uws::{
    Compressor, Message, PerMessageDeflate, Request, Response, Server, ServerWebSocket, SocketId,
    UpgradeOptions, WebSocketHandler, WebSocketOptions,
};

/// Sockets join `/?name=NAME&topics=T1,T2` and are driven by text commands:
/// - `pub TOPIC BODY`: `server.publish` (everyone subscribed, sender too)
/// - `wspub TOPIC BODY`: `ws.publish` (not to the sender)
/// - `zpub TOPIC BODY`: `server.publish`, compressed
/// - `pubsend TOPIC NAME BODY`: publishes `P<BODY>`, then sends `S<BODY>`
///   to NAME directly
/// - `buffered NAME` / `count TOPIC`: answers NAME's buffered amount / the
///   topic's subscriber count
#[derive(Default)]
struct Hub {
    ids: RefCell<HashMap<String, SocketId>>,
}

struct Member {
    name: String,
    topics: Vec<String>,
}

impl WebSocketHandler for Hub {
    type Data = Member;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Member>) -> Response {
        let name = req.query_param("name").unwrap_or_default().into_owned();
        let topics = req.query_param("topics").unwrap_or_default();
        let topics = topics
            .split(',')
            .filter(|t| !t.is_empty())
            .map(String::from);
        let member = Member {
            name,
            topics: topics.collect(),
        };
        if server.upgrade(req, UpgradeOptions::new(member)) {
            return Response::new("");
        }
        Response::new("no upgrade").with_status(400)
    }

    fn open(&self, ws: &mut ServerWebSocket<Member>) {
        for topic in ws.data().topics.clone() {
            ws.subscribe(&topic);
        }
        self.ids
            .borrow_mut()
            .insert(ws.data().name.clone(), ws.id());
    }

    fn message(&self, ws: &mut ServerWebSocket<Member>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        let mut words = text.splitn(3, ' ');
        let (command, first, rest) = (
            words.next().unwrap_or(""),
            words.next().unwrap_or(""),
            words.next().unwrap_or(""),
        );
        let server = ws.server();
        match command {
            "pub" => drop(server.publish(first, rest)),
            "zpub" => drop(server.publish_compressed(first, rest)),
            "wspub" => drop(ws.publish(first, rest)),
            "pubsend" => {
                let (name, body) = rest.split_once(' ').unwrap();
                server.publish(first, format!("P{body}").as_str());
                let id = self.ids.borrow()[name];
                server.send(id, format!("S{body}").as_str());
            }
            "buffered" => {
                let id = self.ids.borrow()[first];
                let amount = server.with_socket(id, |s| s.buffered_amount());
                ws.send_text(&format!("buffered {}", amount.unwrap_or(0)));
            }
            "count" => {
                let count = server.subscriber_count(first);
                ws.send_text(&format!("count {count}"));
            }
            other => panic!("unknown command {other}"),
        }
    }
}

fn join(hub: &Running<Member>, name: &str, topics: &str) -> Client {
    connect(&hub.url(&format!("/?name={name}&topics={topics}")))
}

/// Writes all `commands` and flushes once.
fn burst(client: &mut Client, commands: impl IntoIterator<Item = String>) {
    for c in commands {
        client.write(WsMessage::text(c)).unwrap();
    }
    client.flush().unwrap();
}

fn read_texts(client: &mut Client, n: usize) -> Vec<String> {
    (0..n).map(|_| recv_text(client)).collect()
}

/// The messages of `texts` that start with `prefix`, in order, must be
/// exactly `prefix0 .. prefix{n-1}`.
fn assert_in_order(texts: &[String], prefix: &str, n: usize) {
    let got: Vec<&String> = texts.iter().filter(|t| t.starts_with(prefix)).collect();
    let want: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    assert_eq!(got.len(), n, "count of {prefix}* messages");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(*g, w, "{prefix}* message {i} out of order");
    }
}

#[test]
fn messages_published_in_one_iteration_arrive_complete_and_in_order() {
    let hub = start(WebSocketOptions::default(), Hub::default());
    let mut a = join(&hub, "a", "room");
    let mut b = join(&hub, "b", "room");
    let mut c = join(&hub, "c", "room");
    // Far more than the 32 messages per subscriber upstream kept, from a
    // publisher that gets its own messages and one that does not.
    const N: usize = 700;
    burst(&mut a, (0..N).map(|i| format!("pub room A{i}")));
    burst(&mut b, (0..N).map(|i| format!("wspub room B{i}")));
    let at_a = read_texts(&mut a, 2 * N);
    let at_b = read_texts(&mut b, N);
    let at_c = read_texts(&mut c, 2 * N);
    for texts in [&at_a, &at_c] {
        assert_in_order(texts, "A", N);
        assert_in_order(texts, "B", N);
    }
    assert_in_order(&at_b, "A", N);
}

#[test]
fn a_subscriber_between_other_topics_gets_its_messages_in_order() {
    let hub = start(WebSocketOptions::default(), Hub::default());
    let mut a = join(&hub, "a", "");
    let mut t = join(&hub, "t", "t");
    let mut u = join(&hub, "u", "u");
    let mut tu = join(&hub, "tu", "t,u");
    // Every other message is for a topic the subscriber is not in: its
    // messages are runs of one, far more than it holds before an early drain.
    const N: usize = 300;
    burst(
        &mut a,
        (0..N).flat_map(|i| [format!("pub t T{i}"), format!("pub u U{i}")]),
    );
    assert_in_order(&read_texts(&mut t, N), "T", N);
    assert_in_order(&read_texts(&mut u, N), "U", N);
    let both = read_texts(&mut tu, 2 * N);
    assert_in_order(&both, "T", N);
    assert_in_order(&both, "U", N);
}

#[test]
fn direct_sends_keep_their_place_among_published_messages() {
    let hub = start(WebSocketOptions::default(), Hub::default());
    let mut a = join(&hub, "a", "room");
    let mut c = join(&hub, "c", "room");
    const N: usize = 200;
    burst(&mut a, (0..N).map(|i| format!("pubsend room c {i}")));
    let at_c = read_texts(&mut c, 2 * N);
    let want: Vec<String> = (0..N)
        .flat_map(|i| [format!("P{i}"), format!("S{i}")])
        .collect();
    assert_eq!(at_c, want);
    assert_in_order(&read_texts(&mut a, N), "P", N);
}

/// Messages of the backpressure tests: 24 MB in all, more than loopback's
/// socket buffers hold.
const BIG_N: usize = 24_000;
const BIG_SIZE: usize = 1000;

/// Publishes the `BIG_N` messages (`NNNNNN` then filler) to `room` from
/// `a`, `per_burst` at a time; before each burst, waits until the server
/// holds nothing for `paced` (a reader that keeps up).
fn publish_big(a: &mut Client, per_burst: usize, paced: Option<&str>) {
    for start in (0..BIG_N).step_by(per_burst) {
        if let Some(name) = paced {
            let question = format!("buffered {name}");
            wait_for("the reader to keep up", || {
                ask(a, &question) == "buffered 0"
            });
        }
        let end = BIG_N.min(start + per_burst);
        burst(
            a,
            (start..end).map(|i| format!("pub room {i:06}{}", "x".repeat(BIG_SIZE - 6))),
        );
    }
}

/// Reads the messages of `publish_big`; returns their numbers.
fn read_big(client: &mut Client) -> Vec<usize> {
    (0..BIG_N)
        .map(|_| {
            let t = recv_text(client);
            assert_eq!(t.len(), BIG_SIZE, "a message arrived cut or merged");
            assert!(t[6..].bytes().all(|b| b == b'x'), "corrupt payload");
            t[..6].parse().unwrap()
        })
        .collect()
}

fn ask(client: &mut Client, question: &str) -> String {
    client.send(WsMessage::text(question)).unwrap();
    recv_text(client)
}

#[test]
fn a_reader_that_falls_behind_gets_every_frame_whole_and_in_order() {
    let hub = start(
        WebSocketOptions {
            backpressure_limit: 256 << 20,
            ..Default::default()
        },
        Hub::default(),
    );
    let mut a = join(&hub, "a", "");
    let mut slow = join(&hub, "slow", "room");
    // Most of it waits in the server's buffer, cut at whatever byte the
    // kernel stopped.
    publish_big(&mut a, 1000, None);
    let reply = ask(&mut a, "buffered slow");
    let buffered: usize = reply["buffered ".len()..].parse().unwrap();
    assert!(buffered > 0, "the test needs a full kernel buffer: {reply}");
    assert_eq!(read_big(&mut slow), (0..BIG_N).collect::<Vec<_>>());
}

/// Publishes `BIG_N` messages of `BIG_SIZE` bytes past a 256 KiB backpressure limit
/// to a reader that keeps up ("fast", which gets them all, in order) and one
/// that does not read ("slow"). Returns the server, the publisher, the slow
/// client and the fast one.
fn past_the_limit(close_on_limit: bool) -> (Running<Member>, Client, Client, Client) {
    let hub = start(
        WebSocketOptions {
            backpressure_limit: 256 << 10,
            close_on_backpressure_limit: close_on_limit,
            ..Default::default()
        },
        Hub::default(),
    );
    let mut a = join(&hub, "a", "");
    let slow = join(&hub, "slow", "room");
    let mut fast = join(&hub, "fast", "room");
    // The fast reader reads while the messages are published, in bursts
    // small enough for it (the limit holds for every subscriber).
    let reader = std::thread::spawn(move || (read_big(&mut fast), fast));
    publish_big(&mut a, 100, Some("fast"));
    let (got, fast) = reader.join().unwrap();
    assert_eq!(got, (0..BIG_N).collect::<Vec<_>>());
    (hub, a, slow, fast)
}

#[test]
fn past_the_backpressure_limit_messages_are_dropped_and_order_kept() {
    let (_hub, mut a, mut slow, _fast) = past_the_limit(false);
    assert_eq!(ask(&mut a, "count room"), "count 2", "slow stays open");
    // The slow one got some of them, whole and in order: it reads now, and
    // once its buffer is empty a last message marks the end.
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let t = recv_text(&mut slow);
            if t == "end" {
                return got;
            }
            assert_eq!(t.len(), BIG_SIZE, "a message arrived cut or merged");
            got.push(t[..6].parse::<usize>().unwrap());
        }
    });
    wait_for("the slow reader to catch up", || {
        ask(&mut a, "buffered slow") == "buffered 0"
    });
    a.send(WsMessage::text("pub room end")).unwrap();
    let got = reader.join().unwrap();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert!(
        got.len() < BIG_N,
        "nothing was dropped: the test needs more data"
    );
}

#[test]
fn past_the_backpressure_limit_a_slow_subscriber_is_closed_if_asked() {
    let (_hub, mut a, _slow, _fast) = past_the_limit(true);
    wait_for("the slow subscriber to be closed", || {
        ask(&mut a, "count room") == "count 1"
    });
}

#[test]
fn compressed_and_plain_publishes_reach_each_subscriber_as_negotiated() {
    let hub = start(
        WebSocketOptions {
            per_message_deflate: Some(PerMessageDeflate {
                compress: Compressor::Shared,
                decompress: Compressor::Shared,
            }),
            ..Default::default()
        },
        Hub::default(),
    );
    let mut a = join(&hub, "a", "");
    // Raw-frame clients, one that negotiates permessage-deflate, one not.
    let mut zipped = DeflateClient::connect_path(hub.port, "/?name=z&topics=room", Some(OFFER));
    let mut plain = DeflateClient::connect_path(hub.port, "/?name=p&topics=room", None);
    assert!(zipped.extensions.contains("permessage-deflate"));
    const N: usize = 100;
    let body = "compressible ".repeat(20);
    burst(
        &mut a,
        (0..N).flat_map(|i| {
            [
                format!("zpub room Z{i} {body}"),
                format!("pub room P{i} {body}"),
            ]
        }),
    );
    for (client, deflates) in [(&mut zipped, true), (&mut plain, false)] {
        for i in 0..N {
            for (prefix, compressed) in [("Z", deflates), ("P", false)] {
                let (opcode, was_compressed, payload) = client.read_message().unwrap();
                assert_eq!(opcode, 1);
                assert_eq!(
                    String::from_utf8(payload).unwrap(),
                    format!("{prefix}{i} {body}")
                );
                assert_eq!(was_compressed, compressed, "{prefix}{i}");
            }
        }
    }
}
