//! A server's life: binding (exclusive or shared ports, why a bind fails)
//! and stopping (graceful with a grace period, or at once).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::connect;
use common::probe::{Data, Probe};
use common::*;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message as M;
use uws::*;

fn local(port: u16) -> ServeOptions {
    ServeOptions {
        hostname: "127.0.0.1".into(),
        port,
        ..Default::default()
    }
}

/// Serves `options` on a thread of its own; returns the port, the handle
/// and the thread (whose result says when `run` returned).
fn spawn(
    options: ServeOptions,
    probe: Probe,
) -> (u16, ServerHandle<Data>, std::thread::JoinHandle<Instant>) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let app = serve(options, probe).expect("serve");
        tx.send((app.port(), app.handle())).unwrap();
        app.run();
        Instant::now()
    });
    let (port, handle) = rx.recv_timeout(TIMEOUT).unwrap();
    (port, handle, thread)
}

fn join_within(thread: std::thread::JoinHandle<Instant>, what: &str) -> Instant {
    join_before(thread, what, Instant::now() + TIMEOUT)
}

fn join_before(thread: std::thread::JoinHandle<Instant>, what: &str, deadline: Instant) -> Instant {
    while !thread.is_finished() {
        assert!(Instant::now() < deadline, "{what}: run did not return");
        std::thread::sleep(Duration::from_millis(10));
    }
    thread.join().unwrap()
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_port_in_use_is_an_error_unless_both_servers_share_it() {
    let (port, handle, thread) = spawn(local(0), Probe::default());
    let err = serve(local(port), Probe::default()).unwrap_err();
    match &err {
        Error::Listen { address, source } => {
            assert_eq!(address, &format!("127.0.0.1:{port}"));
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        }
        other => panic!("expected a listen error, got {other}"),
    }
    assert!(err.to_string().contains("in use"), "{err}");
    handle.stop().unwrap();
    join_within(thread, "first server");

    // Two servers that both ask to share the port get it.
    let shared = |port| ServeOptions {
        reuse_port: true,
        ..local(port)
    };
    let port = free_port();
    let (_, one, first) = spawn(shared(port), Probe::default());
    let (again, two, second) = spawn(shared(port), Probe::default());
    assert_eq!(again, port);
    // One that does not ask is refused.
    let err = serve(local(port), Probe::default()).unwrap_err();
    assert!(matches!(err, Error::Listen { .. }), "{err}");
    one.stop().unwrap();
    two.stop().unwrap();
    join_within(first, "first shared server");
    join_within(second, "second shared server");
}

#[test]
fn listen_errors_say_why() {
    let err = serve(
        ServeOptions {
            hostname: "no-such-host.invalid".into(),
            ..local(0)
        },
        Probe::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Listen { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("could not listen on no-such-host.invalid:0: "),
        "{err}"
    );
    let err = serve(
        ServeOptions {
            hostname: "192.0.2.1".into(),
            ..local(0)
        },
        Probe::default(),
    )
    .unwrap_err();
    match err {
        Error::Listen { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::AddrNotAvailable)
        }
        other => panic!("{other}"),
    }
    let err = serve(
        ServeOptions {
            unix: Some("/nonexistent-dir/uws.sock".into()),
            ..local(0)
        },
        Probe::default(),
    )
    .unwrap_err();
    match err {
        Error::Listen { address, source } => {
            assert_eq!(address, "/nonexistent-dir/uws.sock");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other}"),
    }
}

/// A client that never answers the close frame of a stop is cut off after
/// the grace period; clients that answer go at once.
#[test]
fn stop_ends_after_the_grace_period_when_a_client_never_answers() {
    let probe = Probe::default();
    let grace = Duration::from_millis(500);
    let (port, handle, thread) = spawn(
        ServeOptions {
            stop_grace_period: grace,
            ..local(0)
        },
        probe.clone(),
    );
    let url = format!("ws://127.0.0.1:{port}/?name=");
    let mut polite = connect(&format!("{url}polite"));
    let silent = connect(&format!("{url}silent"));
    wait_for("both open", || probe.count_prefix("open:") == 2);
    let stopped = Instant::now();
    handle.stop().unwrap();
    // The polite client answers the close at once.
    assert_eq!(
        recv_close(&mut polite),
        Some((1001, "server stopping".into()))
    );
    // The silent one never reads; the server gives up on it.
    let mut raw = silent.into_inner();
    let MaybeTlsStream::Plain(stream) = &mut raw else {
        unreachable!()
    };
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    // Bounded by the grace period (plus slack for a loaded machine), not
    // by the WebSocket timeouts (16 s before there was a grace period).
    join_before(
        thread,
        "stop with a silent client",
        stopped + grace + Duration::from_secs(5),
    );
    // Both close handlers ran once, at stop, with 1001.
    assert_eq!(probe.count_prefix("close:polite:1001"), 1);
    assert_eq!(probe.count_prefix("close:silent:1001"), 1);
    assert_eq!(probe.drops(), 2);
}

/// Bun's `server.stop(true)`: every connection closes now, without close
/// frames; close handlers see 1006.
#[test]
fn stop_now_closes_every_connection_at_once() {
    let probe = Probe::default();
    let (port, handle, thread) = spawn(local(0), probe.clone());
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/?name=a"));
    wait_for("open", || probe.count_prefix("open:a") == 1);
    let mut idle_http = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle_http.set_read_timeout(Some(TIMEOUT)).unwrap();
    handle.stop_now().unwrap();
    match ws.read() {
        Ok(M::Close(_)) => panic!("stop_now sends no close frame"),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(_) => {}
    }
    let mut buf = [0u8; 16];
    assert_eq!(idle_http.read(&mut buf).unwrap_or(0), 0, "closed");
    join_within(thread, "stop_now");
    assert_eq!(
        probe.count_prefix("close:a:1006"),
        1,
        "{:?}",
        probe.events()
    );
    assert_eq!(probe.drops(), 1);
}

/// A graceful stop closes idle keep-alive connections at once, and lets a
/// connection that is still being answered finish.
#[test]
fn stop_closes_idle_http_connections_and_finishes_busy_ones() {
    let probe = Probe::default();
    // A grace period longer than the test may take: stopping must not need it.
    let (port, handle, thread) = spawn(
        ServeOptions {
            stop_grace_period: Duration::from_secs(3600),
            ..local(0)
        },
        probe.clone(),
    );
    // Idle: a keep-alive connection that got its answer.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(TIMEOUT)).unwrap();
    idle.write_all(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 "));
    // Half a request: not answered yet, so not busy either: closed too.
    let mut partial = TcpStream::connect(("127.0.0.1", port)).unwrap();
    partial.set_read_timeout(Some(TIMEOUT)).unwrap();
    partial.write_all(b"GET /plain HTTP/1.1\r\nHo").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    handle.stop().unwrap();
    assert_eq!(
        idle.read(&mut buf).unwrap_or(0),
        0,
        "idle connection closed"
    );
    assert_eq!(
        partial.read(&mut buf).unwrap_or(0),
        0,
        "partial request closed"
    );
    join_within(thread, "graceful stop");
    // New connections are refused.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
