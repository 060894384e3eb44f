//! Servers come and go: many created, run, stopped and dropped in a row on
//! one thread, and on several threads at once, each with WebSockets, a
//! keep-alive HTTP connection and a request cut short still open when it
//! stops. tests/memcheck.sh runs this under valgrind: no invalid access,
//! no definite leak (sockets closed after the loop last ran are freed with
//! the loop, `uws_loop_free` in the shim).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::probe::Probe;
use common::*;
use tungstenite::Message as M;
use uws::{serve, ServeOptions, WebSocketOptions};

/// One server's life on the calling thread: serve, let clients in, stop
/// from another thread while they are connected, run until stopped, drop.
fn one_life(round: usize) {
    let probe = Probe::default();
    let app = serve(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            websocket: WebSocketOptions {
                // A closing socket waits at most this long for its peer.
                idle_timeout: 8,
                ..Default::default()
            },
            ..Default::default()
        },
        probe.clone(),
    )
    .expect("serve");
    let port = app.port();
    let handle = app.handle();
    let clients = std::thread::spawn(move || {
        let mut ws = connect(&format!("ws://127.0.0.1:{port}/?name=w{round}"));
        ws.send(M::text("sub room")).unwrap();
        assert_eq!(recv_text(&mut ws), "true");
        ws.send(M::text("echo hi")).unwrap();
        assert_eq!(recv_text(&mut ws), "hi");
        let mut quiet = connect(&format!("ws://127.0.0.1:{port}/?name=q{round}"));
        quiet.send(M::text("echo x")).unwrap();
        assert_eq!(recv_text(&mut quiet), "x");
        let mut http = TcpStream::connect(("127.0.0.1", port)).unwrap();
        http.write_all(b"GET /plain HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 256];
        http.set_read_timeout(Some(TIMEOUT)).unwrap();
        let n = http.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 400 "));
        let mut cut = TcpStream::connect(("127.0.0.1", port)).unwrap();
        cut.write_all(b"GET /cut HTTP/1.1\r\nHo").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        handle.stop().unwrap();
        // Both WebSockets get the stop's close frame; answer it and go (the
        // server waits for that before its loop can end).
        for mut c in [ws, quiet] {
            assert_eq!(recv_close(&mut c).map(|(code, _)| code), Some(1001));
            let _ = c.close(None);
            let _ = c.flush();
        }
        (http, cut)
    });
    app.run();
    let clients = clients.join().expect("clients");
    drop(clients);
    // Both WebSockets closed once; every socket data the probe made (theirs
    // and the one the plain request's fetch made) was dropped.
    assert_eq!(probe.count_prefix("close:"), 2, "{:?}", probe.events());
    assert_eq!(probe.drops(), 3, "{:?}", probe.events());
}

#[test]
fn many_servers_in_a_row_on_one_thread() {
    std::thread::spawn(|| {
        for round in 0..20 {
            one_life(round);
        }
    })
    .join()
    .unwrap();
}

#[test]
fn many_servers_on_several_threads_at_once() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for round in 0..8 {
                    one_life(100 * (t + 1) + round);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_server_dropped_without_running_is_clean() {
    std::thread::spawn(|| {
        for _ in 0..20 {
            let app = serve(
                ServeOptions {
                    hostname: "127.0.0.1".into(),
                    port: 0,
                    ..Default::default()
                },
                Probe::default(),
            )
            .expect("serve");
            let port = app.port();
            // A connection the loop never got to accept.
            let pending = TcpStream::connect(("127.0.0.1", port)).unwrap();
            drop(app);
            drop(pending);
        }
    })
    .join()
    .unwrap();
}
