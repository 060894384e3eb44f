//! Pub/sub across servers over Redis: real `redis-server` processes (a
//! Redis Cluster too), our servers on their own threads, real clients.
#![cfg(feature = "redis")]

mod bus;
mod common;

use std::time::Duration;

use bus::servers::{redis_cli, External, Kind, RedisCluster};
use bus::*;
use common::*;
use uws::*;

/// The bus of these tests: quick retries.
fn redis(url: &str) -> Bus {
    Bus::redis(url).reconnect_delay(Duration::from_millis(50), Duration::from_millis(500))
}

/// `PUBSUB NUMSUB` of the topics' channels.
fn numsub(bus: &External, topics: &[&str]) -> Option<Vec<usize>> {
    let channels: Vec<String> = topics.iter().map(|t| format!("uws:{t}")).collect();
    let mut args = vec!["pubsub", "numsub"];
    args.extend(channels.iter().map(String::as_str));
    let out = bus.redis_cli(&args);
    let lines: Vec<&str> = out.lines().collect();
    Some(
        lines
            .chunks(2)
            .map(|pair| pair[1].trim().parse().unwrap())
            .collect(),
    )
}

#[test]
fn two_servers_share_a_room() {
    let _serial = serial();
    room_spans_servers(&redis, Kind::Redis, 2);
    no_bridge_left();
}

#[test]
fn three_servers_share_a_room() {
    let _serial = serial();
    room_spans_servers(&redis, Kind::Redis, 3);
}

#[test]
fn ten_thousand_messages_exactly_once_in_each_senders_order() {
    let _serial = serial();
    ten_thousand_exactly_once_in_order(&redis, Kind::Redis);
}

#[test]
fn servers_subscribe_while_they_have_subscribers() {
    let _serial = serial();
    topics_follow_subscribers(&redis, Kind::Redis, &numsub);
}

#[test]
fn any_string_is_a_topic_and_channels_have_the_prefix() {
    let _serial = serial();
    any_string_is_a_topic(&redis, Kind::Redis);
    // A prefix of one's own.
    let bus = External::start_new(Kind::Redis);
    let a = Node::start(redis(&bus.url()).prefix("app1/"), 1);
    let mut c = a.client(&["news"]);
    a.wait_linked(1);
    let out = bus.redis_cli(&["pubsub", "channels"]);
    assert_eq!(out.trim(), "app1/news");
    say(&mut c, "pub", "news", "x");
    assert_eq!(recv_text(&mut c), "x");
}

#[test]
fn other_programs_publish_to_the_topics() {
    let _serial = serial();
    let bus = External::start_new(Kind::Redis);
    let a = Node::start(redis(&bus.url()), 2);
    let mut c = a.client(&["news"]);
    a.wait_linked(1);
    assert!(bus
        .redis_cli(&["publish", "uws:news", "from redis-cli"])
        .contains('1'));
    assert_eq!(recv_text(&mut c), "from redis-cli");
    // Bytes that are not UTF-8 arrive as binary.
    redis_cli(
        bus.port,
        &["publish", "uws:news"],
        Some(&[0xff, 0x00, 0xfe]),
    );
    assert_eq!(
        recv(&mut c),
        tungstenite::Message::binary(vec![0xff, 0x00, 0xfe])
    );
    wait_for("both counted", || a.status().received == 2);
}

#[test]
fn the_bus_dies_and_comes_back() {
    let _serial = serial();
    bus_dies_and_comes_back(&redis, Kind::Redis);
}

#[test]
fn a_bus_down_at_start() {
    let _serial = serial();
    bus_down_at_start(&redis, Kind::Redis);
}

#[test]
fn bad_urls_are_refused_by_serve() {
    let _serial = serial();
    bad_buses_are_refused(vec![
        (Bus::redis("not a url"), "bad Redis URL"),
        (Bus::redis("http://127.0.0.1:6379"), "bad Redis URL"),
        (
            Bus::redis("redis://user:secret@127.0.0.1:notaport"),
            "bad Redis URL",
        ),
        (
            Bus::redis_cluster(Vec::<String>::new()),
            "at least one node",
        ),
        (Bus::redis_cluster(["nope"]), "bad Redis Cluster URL"),
        (
            Bus::redis("redis://127.0.0.1").queue_limit(0, 1),
            "queue limits",
        ),
        (
            Bus::redis("redis://127.0.0.1")
                .reconnect_delay(Duration::from_secs(2), Duration::from_secs(1)),
            "reconnect delays",
        ),
    ]);
}

/// A slow bus (frozen with SIGSTOP): the bounded queue fills, the rest is
/// dropped for the other servers and counted, local delivery goes on,
/// and all is well once the bus answers again.
#[test]
fn a_slow_bus_fills_the_queue_and_drops_count() {
    let _serial = serial();
    let bus = External::start_new(Kind::Redis);
    let small = |url: &str| redis(url).queue_limit(50, 1 << 20);
    let (a, b, mut ca, mut cb) = pair(&small, &bus.url(), 1);
    a.wait_linked(1);
    b.wait_linked(1);
    bus.pause();
    for i in 0..2000 {
        say(&mut ca, "pub", "room", &format!("{i}"));
    }
    for i in 0..2000 {
        assert_eq!(recv_text(&mut ca), format!("{i}"));
    }
    let s = a.status();
    assert!(s.dropped_queue_full > 0, "{s:?}");
    assert!(s.queued <= 50, "{s:?}");
    bus.resume();
    // The queue drains (the bridge never lost the connection: a slow bus
    // is not a lost one).
    wait_for("the queue to drain", || a.status().queued == 0);
    assert_eq!(a.status().state, BusState::Connected);
    // What b got of the 2000 came in order, nothing twice.
    say(&mut ca, "pub", "room", "done");
    let mut last = None;
    loop {
        let text = recv_text(&mut cb);
        if text == "done" {
            break;
        }
        let n: usize = text.parse().unwrap();
        assert!(last.is_none_or(|l| n > l), "{n} after {last:?}");
        last = Some(n);
    }
    assert_eq!(recv_text(&mut ca), "done");
}

#[test]
fn stop_ends_the_bridge_in_bounded_time() {
    let _serial = serial();
    stop_ends_the_bridge(&redis, Kind::Redis);
}

/// Sharded pub/sub on a real Redis Cluster of three primaries: topics on
/// every shard, servers seeded with different nodes.
#[test]
fn sharded_pub_sub_on_a_redis_cluster() {
    let _serial = serial();
    let cluster = RedisCluster::start();
    let bus = |n: usize| {
        Bus::redis_cluster([cluster.nodes[n].url()])
            .reconnect_delay(Duration::from_millis(50), Duration::from_millis(500))
    };
    let (a, b) = (Node::start(bus(0), 1), Node::start(bus(1), 2));
    let topics: Vec<String> = (0..12).map(|i| format!("room-{i}")).collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let (mut ca, mut cb) = (a.client(&names), b.client(&names));
    a.wait_linked(topics.len());
    b.wait_linked(topics.len());
    // The channels are spread over the shards: each node serves some.
    let shards = cluster
        .nodes
        .iter()
        .filter(|n| !n.redis_cli(&["pubsub", "shardchannels"]).trim().is_empty())
        .count();
    assert!(shards >= 2, "channels on {shards} shard(s)");
    for t in &topics {
        say(&mut ca, "pub", t, &format!("a on {t}"));
        say(&mut cb, "pub", t, &format!("b on {t}"));
    }
    // Per topic and publisher, in order; each message once.
    for c in [&mut ca, &mut cb] {
        let mut got: Vec<String> = (0..2 * topics.len()).map(|_| recv_text(c)).collect();
        got.sort();
        let mut want: Vec<String> = topics
            .iter()
            .flat_map(|t| [format!("a on {t}"), format!("b on {t}")])
            .collect();
        want.sort();
        assert_eq!(got, want);
    }
    for n in [&a, &b] {
        // Counted once the bus answered: maybe after the deliveries.
        wait_for("the counters", || {
            let s = n.status();
            (s.published, s.received, s.dropped()) == (12, 12, 0)
        });
    }
    // Leaving unsubscribes on the shards.
    for t in &names {
        ca.send(tungstenite::Message::text(format!("unsub\n{t}")))
            .unwrap();
    }
    a.wait_linked(0);
}

/// The chat example with `--redis`: one room over two processes.
#[test]
fn the_chat_example_spans_processes() {
    let _serial = serial();
    let bus = External::start_new(Kind::Redis);
    chat_example_spans_processes("--redis", &bus.url());
}
