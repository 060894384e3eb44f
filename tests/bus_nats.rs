//! Pub/sub across servers over NATS: real `nats-server` processes, our
//! servers on their own threads, real clients.
#![cfg(feature = "nats")]

mod bus;
mod common;

use std::time::Duration;

use bus::servers::{External, Kind};
use bus::*;
use common::*;
use uws::*;

/// The bus of these tests: quick retries.
fn nats(url: &str) -> Bus {
    Bus::nats(url).reconnect_delay(Duration::from_millis(50), Duration::from_millis(500))
}

/// NATS cannot tell how many subscribers a subject has without its
/// monitoring port; the bridge's own count is checked instead.
fn unknown(_: &External, _: &[&str]) -> Option<Vec<usize>> {
    None
}

#[test]
fn two_servers_share_a_room() {
    let _serial = serial();
    room_spans_servers(&nats, Kind::Nats, 2);
    no_bridge_left();
}

#[test]
fn three_servers_share_a_room() {
    let _serial = serial();
    room_spans_servers(&nats, Kind::Nats, 3);
}

#[test]
fn ten_thousand_messages_exactly_once_in_each_senders_order() {
    let _serial = serial();
    ten_thousand_exactly_once_in_order(&nats, Kind::Nats);
}

#[test]
fn servers_subscribe_while_they_have_subscribers() {
    let _serial = serial();
    topics_follow_subscribers(&nats, Kind::Nats, &unknown);
}

#[test]
fn topics_that_are_not_names() {
    let _serial = serial();
    any_string_is_a_topic(&nats, Kind::Nats);
}

#[test]
fn the_bus_dies_and_comes_back() {
    let _serial = serial();
    bus_dies_and_comes_back(&nats, Kind::Nats);
}

#[test]
fn a_bus_down_at_start() {
    let _serial = serial();
    bus_down_at_start(&nats, Kind::Nats);
}

#[test]
fn bad_urls_and_prefixes_are_refused_by_serve() {
    let _serial = serial();
    bad_buses_are_refused(vec![
        (Bus::nats("nats://127.0.0.1:notaport"), "bad NATS URL"),
        (
            Bus::nats("nats://user:secret@127.0.0.1:99999"),
            "bad NATS URL",
        ),
        (Bus::nats("nats://127.0.0.1:4222,"), "bad NATS URL"),
        (
            Bus::nats("nats://127.0.0.1").prefix("a.*"),
            "cannot start NATS subjects",
        ),
        (
            Bus::nats("nats://127.0.0.1").prefix("app."),
            "cannot start NATS subjects",
        ),
        (
            Bus::nats("nats://127.0.0.1").prefix("a b"),
            "cannot start NATS subjects",
        ),
    ]);
}

/// A message larger than the server's `max_payload` (1 MiB by default)
/// reaches the local subscribers only, and is counted as refused.
#[test]
fn messages_too_large_for_nats_stay_local_and_count() {
    let _serial = serial();
    let bus = External::start_new(Kind::Nats);
    let (a, b, mut ca, mut cb) = pair(&nats, &bus.url(), 1);
    a.wait_linked(1);
    b.wait_linked(1);
    let big = "x".repeat(2 << 20);
    say(&mut ca, "pub", "room", &big);
    assert_eq!(recv_text(&mut ca), big);
    say(&mut ca, "pub", "room", "small");
    assert_eq!(recv_text(&mut ca), "small");
    assert_eq!(recv_text(&mut cb), "small", "the big one never came");
    assert_eq!(a.status().dropped_refused, 1, "{:?}", a.status());
}

#[test]
fn stop_ends_the_bridge_in_bounded_time() {
    let _serial = serial();
    stop_ends_the_bridge(&nats, Kind::Nats);
}

/// The chat example with `--nats`: one room over two processes.
#[test]
fn the_chat_example_spans_processes() {
    let _serial = serial();
    let bus = External::start_new(Kind::Nats);
    chat_example_spans_processes("--nats", &bus.url());
}
