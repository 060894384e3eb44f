//! The WebSocket side of the API against a real client.

mod common;

use common::probe::Probe;
use common::*;
use tungstenite::Message as M;
use uws::{OwnedMessage, SendStatus, WebSocketOptions};

fn probe_server(options: WebSocketOptions) -> (Probe, Running<common::probe::Data>) {
    let probe = Probe::default();
    let running = start(options, probe.clone());
    (probe, running)
}

fn ask(client: &mut Client, command: &str) -> String {
    client.send(M::text(command)).unwrap();
    recv_text(client)
}

#[test]
fn echoes_text_and_binary_with_their_opcodes() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut c = connect(&server.url("/?name=a"));
    assert_eq!(ask(&mut c, "echo héllo"), "héllo");
    c.send(M::binary(vec![0u8, 159, 146, 150])).unwrap();
    assert_eq!(recv(&mut c), M::binary(vec![0u8, 159, 146, 150]));
    assert!(probe.has("open:a"));
}

#[test]
fn close_handler_sees_the_clients_code_and_reason_and_data_drops_once() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut c = connect(&server.url("/?name=a"));
    c.close(close_frame(4001, "bye now")).unwrap();
    let _ = recv_close(&mut c);
    wait_for("close event", || probe.has("close:a:4001:bye now"));
    assert!(
        probe.has("close-state:a:3:0"),
        "sends inside close are dropped: {:?}",
        probe.events()
    );
    wait_for("drop", || probe.drops() == 1);
    drop(server);
    assert_eq!(probe.drops(), 1);
    assert_eq!(probe.count_prefix("close:"), 1);
}

fn publish_scenario(publish_to_self: bool) -> (String, String) {
    let (_probe, server) = probe_server(WebSocketOptions {
        publish_to_self,
        ..Default::default()
    });
    let mut a = connect(&server.url("/?name=a"));
    let mut b = connect(&server.url("/?name=b"));
    assert_eq!(ask(&mut a, "sub room"), "true");
    assert_eq!(ask(&mut b, "sub room"), "true");
    a.send(M::text("pub room from-a")).unwrap();
    assert_eq!(recv_text(&mut b), "from-a");
    b.send(M::text("pub room from-b")).unwrap();
    b.send(M::text("echo marker")).unwrap();
    (recv_text(&mut a), recv_text(&mut b))
}

#[test]
fn publish_excludes_the_sender_by_default() {
    let (a_first, b_next) = publish_scenario(false);
    assert_eq!(a_first, "from-b", "a must not get its own message");
    assert_eq!(b_next, "marker", "b must not get its own message");
}

#[test]
fn publish_to_self_includes_the_sender() {
    let (a_first, b_next) = publish_scenario(true);
    assert_eq!(a_first, "from-a");
    assert_eq!(b_next, "from-b");
}

#[test]
fn a_socket_subscribed_to_nothing_can_publish_and_statuses_say_what_happened() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut a = connect(&server.url("/?name=a"));
    let mut b = connect(&server.url("/?name=b"));
    assert_eq!(ask(&mut b, "sub news"), "true");
    a.send(M::text("pub news hello")).unwrap();
    assert_eq!(recv_text(&mut b), "hello");
    a.send(M::text("pubbin news bin")).unwrap();
    assert_eq!(recv(&mut b), M::binary(b"bin".to_vec()));
    a.send(M::text("pub nobody x")).unwrap();
    a.send(M::text("spub news all")).unwrap();
    assert_eq!(recv_text(&mut b), "all");
    assert!(
        probe.has("published:a:Published(5)"),
        "{:?}",
        probe.events()
    );
    assert!(
        probe.has("published:a:NoSubscribers"),
        "{:?}",
        probe.events()
    );
    assert!(
        probe.has("spublished:a:Published(3)"),
        "{:?}",
        probe.events()
    );
}

#[test]
fn subscriber_count_follows_subscribe_unsubscribe_and_close() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut a = connect(&server.url("/?name=a"));
    let mut b = connect(&server.url("/?name=b"));
    assert_eq!(ask(&mut a, "count t"), "0");
    assert_eq!(ask(&mut a, "sub t"), "true");
    assert_eq!(ask(&mut b, "sub t"), "true");
    assert_eq!(ask(&mut a, "count t"), "2");
    assert_eq!(ask(&mut a, "issub t"), "true");
    assert_eq!(ask(&mut a, "sub u"), "true");
    assert_eq!(ask(&mut a, "subs"), "t,u");
    assert_eq!(ask(&mut a, "unsub u"), "true");
    assert_eq!(ask(&mut a, "unsub u"), "false");
    assert_eq!(ask(&mut a, "issub u"), "false");
    b.close(None).unwrap();
    let _ = recv_close(&mut b);
    wait_for("b closed", || {
        probe.has("close:b:1005:") || probe.count_prefix("close:b:") == 1
    });
    assert_eq!(ask(&mut a, "count t"), "1");
    assert!(probe.has("subscription:a:t:0:1"), "{:?}", probe.events());
    assert!(probe.has("subscription:b:t:1:2"), "{:?}", probe.events());
    assert!(probe.has("subscription:a:u:1:0"), "{:?}", probe.events());
    assert!(
        probe.has("subscription:b:t:2:1"),
        "closing leaves topics: {:?}",
        probe.events()
    );
}

#[test]
fn backpressure_is_reported_then_drain_fires_when_the_client_reads() {
    let (probe, server) = probe_server(WebSocketOptions {
        backpressure_limit: 64 << 20,
        ..Default::default()
    });
    let mut c = connect(&server.url("/?name=a"));
    // The client does not read while the server floods it.
    c.send(M::text("flood 2000 65536")).unwrap();
    c.flush().unwrap();
    wait_for("flood done", || probe.count_prefix("flood:a:") == 1);
    let line = probe
        .events()
        .into_iter()
        .find(|e| e.starts_with("flood:a:"))
        .unwrap();
    let parts: Vec<&str> = line.split(':').collect();
    let sent: usize = parts[2].parse().unwrap();
    assert_eq!(
        parts[3], "-1",
        "the send that hit backpressure returns -1: {line}"
    );
    assert_eq!(parts[4], "true", "data is buffered: {line}");
    assert!(!probe.has("drain:a"));
    // Reading everything lets the server drain; the queued message arrives too.
    for _ in 0..=sent {
        match recv(&mut c) {
            M::Binary(b) => assert_eq!(b.len(), 65536),
            other => panic!("unexpected {other:?}"),
        }
    }
    wait_for("drain", || probe.has("drain:a"));
}

#[test]
fn sends_past_the_backpressure_limit_are_dropped() {
    let (probe, server) = probe_server(WebSocketOptions {
        backpressure_limit: 256 << 10,
        ..Default::default()
    });
    let mut c = connect(&server.url("/?name=a"));
    c.send(M::text("floodall")).unwrap();
    wait_for("flood done", || probe.count_prefix("floodall:a:") == 1);
    assert!(probe.has("floodall:a:N,-1,0"), "{:?}", probe.events());
    // Without close_on_backpressure_limit the socket stays open.
    assert_eq!(probe.count_prefix("close:a"), 0);
    drop(c);
}

#[test]
fn close_on_backpressure_limit_closes_the_socket() {
    let (probe, server) = probe_server(WebSocketOptions {
        backpressure_limit: 256 << 10,
        close_on_backpressure_limit: true,
        ..Default::default()
    });
    let mut c = connect(&server.url("/?name=a"));
    c.send(M::text("floodall")).unwrap();
    wait_for("flood done", || probe.count_prefix("floodall:a:") == 1);
    wait_for("close after the limit", || {
        probe.count_prefix("close:a:") == 1
    });
    wait_for("drop", || probe.drops() == 1);
    drop(c);
}

#[test]
fn idle_timeout_closes_an_idle_socket() {
    let (probe, server) = probe_server(WebSocketOptions {
        idle_timeout: 1, // rounded up to 8 s, as in Bun
        send_pings: false,
        ..Default::default()
    });
    let started = std::time::Instant::now();
    let mut c = connect(&server.url("/?name=a"));
    wait_for("idle close", || probe.count_prefix("close:a:1006:") == 1);
    let waited = started.elapsed().as_secs_f64();
    assert!(
        waited >= 7.0,
        "closed after {waited}s, before the 8 s timeout"
    );
    assert!(c.read().is_err(), "the connection is gone");
}

#[test]
fn max_payload_length_closes_on_an_oversized_message() {
    let (probe, server) = probe_server(WebSocketOptions {
        max_payload_length: 1024,
        ..Default::default()
    });
    let mut c = connect(&server.url("/?name=a"));
    c.send(M::binary(vec![1u8; 1024])).unwrap();
    assert_eq!(recv(&mut c), M::binary(vec![1u8; 1024]));
    c.send(M::binary(vec![1u8; 1025])).unwrap();
    // Like Bun: a close frame with 1009, and the close handler sees 1009.
    assert_eq!(
        recv_close(&mut c),
        Some((1009, "Received too big message".to_string()))
    );
    wait_for("oversize close", || {
        probe.has("close:a:1009:Received too big message")
    });
}

#[test]
fn server_close_sends_code_and_reason_and_defers_the_close_handler() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut c = connect(&server.url("/?name=a"));
    c.send(M::text("close 4000 see you")).unwrap();
    assert_eq!(recv_close(&mut c), Some((4000, "see you".into())));
    wait_for("close event", || probe.has("close:a:4000:see you"));
    // Inside the handler after close(): state Closing, sends dropped; the
    // close handler ran after the message handler returned.
    let events = probe.events();
    let closing = events
        .iter()
        .position(|e| e == "closing:a:true:2:0")
        .expect("closing line");
    let closed = events
        .iter()
        .position(|e| e == "close:a:4000:see you")
        .unwrap();
    assert!(closing < closed, "{events:?}");
    wait_for("drop", || probe.drops() == 1);
}

#[test]
fn invalid_close_codes_are_refused_and_the_socket_stays_open() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut c = connect(&server.url("/?name=a"));
    c.send(M::text("close 1006 nope")).unwrap();
    assert_eq!(recv_text(&mut c), "after close");
    assert_eq!(ask(&mut c, "state"), "1");
    assert!(probe.has("closing:a:false:1:11"), "{:?}", probe.events());
}

#[test]
fn terminate_closes_without_a_close_frame() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut c = connect(&server.url("/?name=a"));
    c.send(M::text("terminate")).unwrap();
    wait_for("close event", || probe.count_prefix("close:a:1006") == 1);
    assert!(probe.has("terminated:a:0"), "{:?}", probe.events());
    if let Ok(M::Close(_)) = c.read() {
        panic!("terminate must not send a close frame");
    }
}

#[test]
fn ping_pong_cork_address_state_and_data() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut c = connect(&server.url("/?name=a"));
    c.send(M::Ping(b"p1".to_vec().into())).unwrap();
    c.send(M::Pong(b"p2".to_vec().into())).unwrap();
    assert_eq!(ask(&mut c, "addr"), "127.0.0.1");
    assert_eq!(ask(&mut c, "state"), "1");
    assert_eq!(ask(&mut c, "data"), "a");
    c.send(M::text("rename zed")).unwrap();
    assert_eq!(ask(&mut c, "data"), "zed");
    wait_for("ping and pong", || {
        probe.has("ping:a:p1") && probe.has("pong:a:p2")
    });
    c.send(M::text("cork")).unwrap();
    for want in ["c1", "c2", "c3"] {
        assert_eq!(recv_text(&mut c), want);
    }
    assert!(probe.has("corked:7"));
    c.send(M::text("ping hello")).unwrap();
    loop {
        match c.read().unwrap() {
            M::Ping(p) => {
                assert_eq!(&p[..], b"hello");
                break;
            }
            M::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    c.send(M::text(format!("ping {}", "x".repeat(126))))
        .unwrap();
    wait_for("oversized ping refused", || probe.has("sent-ping:0"));
}

#[test]
fn a_panicking_handler_closes_only_its_socket_with_1011() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut bad = connect(&server.url("/?name=bad"));
    let mut good = connect(&server.url("/?name=good"));
    bad.send(M::text("panic")).unwrap();
    assert_eq!(recv_close(&mut bad).map(|c| c.0), Some(1011));
    wait_for("error reported", || {
        probe.has("error:bad:handler `message` panicked: boom")
    });
    wait_for("close", || probe.count_prefix("close:bad:1011") == 1);
    assert_eq!(ask(&mut good, "echo still here"), "still here");
    wait_for("drop", || probe.drops() == 1);
}

#[test]
fn sockets_are_reachable_by_id_until_they_close() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut a = connect(&server.url("/?name=a"));
    assert_eq!(ask(&mut a, "echo ready"), "ready");
    let id = probe.id("a");
    server.handle.send(id, OwnedMessage::from("by id")).unwrap();
    assert_eq!(recv_text(&mut a), "by id");
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    server
        .handle
        .defer(move |s| {
            let r = s.with_socket(id, |ws| {
                ws.data_mut().name = "renamed".into();
                ws.send_text("from with_socket")
            });
            tx2.send(format!("{r:?}")).unwrap();
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "Some(Sent(16))");
    assert_eq!(recv_text(&mut a), "from with_socket");
    assert_eq!(ask(&mut a, "data"), "renamed");
    a.close(None).unwrap();
    let _ = recv_close(&mut a);
    wait_for("closed", || probe.drops() == 1);
    server
        .handle
        .defer(move |s| {
            let sent = s.send(id, "late");
            let with = s.with_socket(id, |_| ());
            tx.send(format!("{sent:?} {with:?}")).unwrap();
        })
        .unwrap();
    assert_eq!(
        rx.recv_timeout(TIMEOUT).unwrap(),
        format!("{:?} None", SendStatus::Dropped)
    );
}

#[test]
fn stop_closes_every_socket_with_1001_and_run_returns() {
    let (probe, mut server) = probe_server(WebSocketOptions::default());
    let mut a = connect(&server.url("/?name=a"));
    let mut b = connect(&server.url("/?name=b"));
    assert_eq!(ask(&mut b, "pending"), "2");
    server.handle.stop().unwrap();
    assert_eq!(recv_close(&mut a).map(|c| c.0), Some(1001));
    assert_eq!(recv_close(&mut b).map(|c| c.0), Some(1001));
    drop((a, b));
    wait_for("run returned", || server.finished());
    server.stop();
    assert_eq!(probe.count_prefix("close:"), 2);
    assert_eq!(probe.drops(), 2);
    assert!(
        server.handle.stop().is_err(),
        "a stopped server is not reachable"
    );
}

#[test]
fn stop_from_inside_a_handler_closes_that_socket_too() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut a = connect(&server.url("/?name=a"));
    let mut b = connect(&server.url("/?name=b"));
    assert_eq!(ask(&mut b, "echo x"), "x");
    a.send(M::text("stop")).unwrap();
    assert_eq!(recv_close(&mut a).map(|c| c.0), Some(1001));
    assert_eq!(recv_close(&mut b).map(|c| c.0), Some(1001));
    wait_for("run returned", || server.finished());
    assert_eq!(probe.drops(), 2);
}

#[test]
fn every_data_value_is_dropped_once_however_sockets_end() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut clients: Vec<Client> = (0..6)
        .map(|i| connect(&server.url(&format!("/?name=c{i}"))))
        .collect();
    for c in clients.iter_mut() {
        assert_eq!(ask(c, "echo hi"), "hi");
    }
    // Two close cleanly, two vanish, two are closed by the server's stop.
    for mut c in clients.drain(..2) {
        c.close(None).unwrap();
        let _ = recv_close(&mut c);
    }
    clients.drain(..2).for_each(drop);
    wait_for("four closes", || probe.count_prefix("close:") == 4);
    drop(server);
    assert_eq!(probe.count_prefix("close:"), 6);
    assert_eq!(probe.drops(), 6);
    drop(clients);
}

#[test]
fn closing_or_terminating_inside_open_works() {
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut c = connect(&server.url("/?name=closer"));
    assert_eq!(recv_text(&mut c), "welcome and goodbye");
    assert_eq!(recv_close(&mut c), Some((4002, "go away".into())));
    wait_for("close", || probe.has("close:closer:4002:go away"));
    // Terminated before the corked 101 was flushed: the client just sees
    // the connection end.
    let _ = raw_exchange(server.port, &handshake("/?name=terminator", ""));
    wait_for("close", || probe.count_prefix("close:terminator:1006") == 1);
    wait_for("drops", || probe.drops() == 2);
    let mut ok = connect(&server.url("/?name=after"));
    assert_eq!(ask(&mut ok, "echo still serving"), "still serving");
}
