//! The WebSocket client against our own server: the probe handler (which
//! logs every event and obeys text commands) and small servers of its own.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::client::*;
use common::probe::{EventLog, Probe};
use common::*;
use uws::{
    ClientHandle, ClientHandler, ClientWebSocket, ConnectOptions, Error, Message, OwnedMessage,
    PerMessageDeflate, ReadyState, Request, Response, SendStatus, Server, ServerWebSocket,
    UpgradeOptions, WebSocketHandler, WebSocketOptions,
};

fn script(send: &[&str], close_after: Option<usize>) -> Script {
    Script {
        send: send.iter().map(|s| s.to_string()).collect(),
        close_after,
        echo: false,
    }
}

fn probe_server() -> (Probe, Running<common::probe::Data>) {
    let probe = Probe::default();
    let server = start(WebSocketOptions::default(), probe.clone());
    (probe, server)
}

fn only_error(events: &[String]) -> &str {
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], "error-state:3", "error sees a closed socket");
    events[1].strip_prefix("error:").expect("an error event")
}

#[test]
fn echo_round_trip_and_clean_close() {
    let (probe, server) = probe_server();
    let events = run_to_end(
        &server.url("/?name=c"),
        ConnectOptions::default(),
        script(&["echo hello", "echo world"], Some(2)),
    );
    assert_eq!(
        events,
        ["open:", "message:hello", "message:world", "close:1000:done"]
    );
    wait_for("the server's close", || probe.has("close:c:1000:done"));
}

#[test]
fn binary_and_large_messages_round_trip() {
    struct Big(EventLog);
    impl ClientHandler for Big {
        type Data = usize;
        fn open(&self, ws: &mut ClientWebSocket<usize>) {
            let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            ws.send_binary(&[1, 2, 3]);
            ws.send_binary(&big);
            ws.send_binary(&[]);
        }
        fn message(&self, ws: &mut ClientWebSocket<usize>, message: Message<'_>) {
            let Message::Binary(b) = message else {
                panic!("binary expected")
            };
            let ok = b.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8) || b == [1, 2, 3];
            self.0.push(format!("binary:{}:{ok}", b.len()));
            *ws.data_mut() += 1;
            if *ws.data() == 3 {
                let _ = ws.close(1000, "");
            }
        }
        fn close(&self, _ws: &mut ClientWebSocket<usize>, code: u16, _reason: &str) {
            self.0.push(format!("close:{code}"));
        }
    }
    let (_probe, server) = probe_server();
    let log = EventLog::default();
    let url = server.url("/?name=big");
    let l = log.clone();
    std::thread::spawn(move || {
        uws::connect(&url, ConnectOptions::default(), Big(l), 0).unwrap();
        uws::run();
    })
    .join()
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "binary:3:true",
            "binary:3000000:true",
            "binary:0:true",
            "close:1000"
        ]
    );
}

/// A server that answers with what it saw of the handshake.
struct Mirror;

impl WebSocketHandler for Mirror {
    type Data = String;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<String>) -> Response {
        let seen = format!(
            "host={} x-test={} protocols={}",
            req.header("host").unwrap_or(""),
            req.header("x-test").unwrap_or(""),
            req.protocols().collect::<Vec<_>>().join(",")
        );
        let mut options = UpgradeOptions::new(seen);
        if let Some(pick) = req.query_param("pick") {
            options = options.with_protocol(pick.into_owned());
        }
        server.upgrade(req, options);
        Response::new("")
    }

    fn open(&self, ws: &mut ServerWebSocket<String>) {
        let seen = ws.data().clone();
        ws.send_text(&seen);
        let _ = ws.close(1000, "");
    }
}

#[test]
fn subprotocols_and_headers_reach_the_server() {
    let server = start(WebSocketOptions::default(), Mirror);
    let options = ConnectOptions {
        protocols: vec!["soap".into(), "wamp".into()],
        headers: vec![("X-Test".into(), "yes".into())],
        ..Default::default()
    };
    // The server answers the first offer (Bun's default) ...
    let events = run_to_end(&server.url("/"), options.clone(), Script::default());
    let host = format!("127.0.0.1:{}", server.port);
    assert_eq!(
        events,
        [
            "open:soap".to_string(),
            format!("message:host={host} x-test=yes protocols=soap,wamp"),
            "close:1000:".into()
        ]
    );
    // ... or the one it picks; and a Host header replaces ours.
    let mut options = options;
    options.headers.push(("Host".into(), "example.com".into()));
    let events = run_to_end(&server.url("/?pick=wamp"), options, Script::default());
    assert_eq!(events[0], "open:wamp");
    assert!(
        events[1].starts_with("message:host=example.com "),
        "{events:?}"
    );
}

#[test]
fn a_host_name_is_resolved_off_the_loop() {
    let (_probe, server) = probe_server();
    let url = format!("ws://localhost:{}/?name=l", server.port);
    let events = run_to_end(
        &url,
        ConnectOptions::default(),
        script(&["echo hi"], Some(1)),
    );
    assert_eq!(events, ["open:", "message:hi", "close:1000:done"]);
}

#[test]
fn the_server_closes_or_terminates() {
    let (_probe, server) = probe_server();
    let events = run_to_end(
        &server.url("/?name=closer"),
        ConnectOptions::default(),
        Script::default(),
    );
    assert_eq!(
        events,
        ["open:", "message:welcome and goodbye", "close:4002:go away"]
    );
    // A server that terminates in its `open` closes at the loop's next
    // wakeup, after its 101 went out: the client opens, then sees 1006.
    let events = run_to_end(
        &server.url("/?name=terminator"),
        ConnectOptions::default(),
        Script::default(),
    );
    assert_eq!(events, ["open:", "close:1006:"]);
    // One that terminates later: close with 1006.
    let events = run_to_end(
        &server.url("/?name=t"),
        ConnectOptions::default(),
        script(&["terminate"], None),
    );
    assert_eq!(events, ["open:", "close:1006:"]);
}

#[test]
fn pings_are_answered_and_reported() {
    let (probe, server) = probe_server();
    struct Pinger(EventLog);
    impl ClientHandler for Pinger {
        type Data = ();
        fn open(&self, ws: &mut ClientWebSocket<()>) {
            assert_eq!(ws.handle().id(), ws.id());
            assert_eq!(ws.ping(b"from client"), SendStatus::Sent(11));
            assert_eq!(ws.ping(&[0; 126]), SendStatus::Dropped);
            assert_eq!(ws.pong(b"unasked"), SendStatus::Sent(7));
        }
        fn pong(&self, ws: &mut ClientWebSocket<()>, data: &[u8]) {
            self.0
                .push(format!("pong:{}", String::from_utf8_lossy(data)));
            ws.send_text("ping from-server");
        }
        fn ping(&self, ws: &mut ClientWebSocket<()>, data: &[u8]) {
            self.0
                .push(format!("ping:{}", String::from_utf8_lossy(data)));
            let _ = ws.close(1000, "");
        }
    }
    let log = EventLog::default();
    let (url, l) = (server.url("/?name=p"), log.clone());
    std::thread::spawn(move || {
        uws::connect(&url, ConnectOptions::default(), Pinger(l), ()).unwrap();
        uws::run();
    })
    .join()
    .unwrap();
    assert_eq!(log.events(), ["pong:from client", "ping:from-server"]);
    wait_for("the server's pong", || probe.has("pong:p:from-server"));
    assert!(probe.has("ping:p:from client"), "{:?}", probe.events());
    assert!(probe.has("pong:p:unasked"), "{:?}", probe.events());
}

#[test]
fn a_refused_connection_reaches_error_never_close() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let events = run_to_end(
        &format!("ws://127.0.0.1:{port}/"),
        ConnectOptions::default(),
        Script::default(),
    );
    let error = only_error(&events);
    assert!(error.starts_with(&format!("could not connect to ws://127.0.0.1:{port}/")));
    assert!(error.contains("refused"), "{error}");
}

#[test]
fn an_unknown_host_is_a_dns_error() {
    let events = run_to_end(
        "ws://nonexistent.invalid/",
        ConnectOptions::default(),
        Script::default(),
    );
    let error = only_error(&events);
    assert!(
        error.starts_with("could not resolve nonexistent.invalid"),
        "{error}"
    );
}

#[test]
fn a_server_that_never_answers_times_out() {
    // The kernel accepts the connection; nobody ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = ConnectOptions {
        connect_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let started = Instant::now();
    let events = run_to_end(
        &format!("ws://127.0.0.1:{port}/"),
        options,
        Script::default(),
    );
    let error = only_error(&events);
    assert!(error.contains("connect timeout"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
}

#[test]
fn bad_arguments_are_errors_from_connect() {
    struct Nothing;
    impl ClientHandler for Nothing {
        type Data = ();
    }
    let bad = |url: &str, options: ConnectOptions| match uws::connect(url, options, Nothing, ()) {
        Err(Error::InvalidOption { name, .. }) => name,
        other => panic!("{url}: {:?}", other.map(|_| ())),
    };
    assert_eq!(bad("http//x", ConnectOptions::default()), "url");
    assert_eq!(bad("ws://h:99999/", ConnectOptions::default()), "url");
    let header = ConnectOptions {
        headers: vec![("Sec-WebSocket-Key".into(), "x".into())],
        ..Default::default()
    };
    assert_eq!(bad("ws://127.0.0.1:1/", header), "headers");
    let protocols = ConnectOptions {
        protocols: vec!["a,b".into()],
        ..Default::default()
    };
    assert_eq!(bad("ws://127.0.0.1:1/", protocols), "protocols");
    if !cfg!(feature = "tls") {
        assert_eq!(bad("wss://127.0.0.1:1/", ConnectOptions::default()), "url");
    }
}

#[test]
fn the_client_closes_from_its_handlers() {
    let (probe, server) = probe_server();
    struct Closer(EventLog, &'static str);
    impl ClientHandler for Closer {
        type Data = ();
        fn open(&self, ws: &mut ClientWebSocket<()>) {
            match self.1 {
                "close" => {
                    assert!(ws.close(1005, "").is_err(), "1005 may not be sent");
                    ws.close(4001, "bye").unwrap();
                    // Closing: sends are dropped, the close handler runs
                    // after this handler.
                    self.0.push(format!(
                        "after:{}:{}",
                        ws.ready_state().to_bun(),
                        ws.send_text("late").to_bun()
                    ));
                }
                "terminate" => ws.terminate(),
                _ => panic!("boom"),
            }
        }
        fn close(&self, ws: &mut ClientWebSocket<()>, code: u16, reason: &str) {
            assert_eq!(ws.ready_state(), ReadyState::Closed);
            self.0.push(format!("close:{code}:{reason}"));
        }
        fn error(&self, _ws: Option<&mut ClientWebSocket<()>>, error: &Error) {
            self.0.push(format!("error:{error}"));
        }
    }
    for (name, expected) in [
        ("close", vec!["after:2:0", "close:4001:bye"]),
        ("terminate", vec!["close:1006:"]),
        (
            "panic",
            vec![
                "error:handler `open` panicked: boom",
                "close:1011:internal error",
            ],
        ),
    ] {
        let log = EventLog::default();
        let (url, l) = (server.url(&format!("/?name={name}")), log.clone());
        std::thread::spawn(move || {
            uws::connect(&url, ConnectOptions::default(), Closer(l, name), ()).unwrap();
            uws::run();
        })
        .join()
        .unwrap();
        assert_eq!(log.events(), expected, "{name}");
    }
    wait_for("the server's close events", || {
        probe.has("close:close:4001:bye") && probe.has("close:panic:1011:internal error")
    });
}

#[test]
fn handles_send_and_close_from_other_threads() {
    let (probe, server) = probe_server();
    let recorder = Recorder::new(Script::default());
    let client = spawn(
        &server.url("/?name=h"),
        ConnectOptions::default(),
        &recorder,
    );
    let handle: ClientHandle<Conn> = client.handle.clone();
    // Queued before the connection opens: dropped, it is not open yet or
    // it is sent; either way nothing breaks. After open it arrives.
    wait_for("open", || recorder.log.has("open:"));
    handle
        .send(OwnedMessage::from("echo from another thread"))
        .unwrap();
    wait_for("the echo", || {
        recorder.log.has("message:from another thread")
    });
    let (tx, rx) = mpsc::channel();
    handle
        .defer(move |ws| {
            let ws = ws.expect("open");
            tx.send((ws.url().to_string(), ws.ready_state())).unwrap();
        })
        .unwrap();
    let (url, state) = rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(url, server.url("/?name=h"));
    assert_eq!(state, ReadyState::Open);
    assert!(handle.with_socket(|_| ()).is_none(), "not this thread");
    assert!(handle.close(999, "").is_err());
    handle.close(4000, "from afar").unwrap();
    client.join();
    assert_eq!(
        recorder.log.events().last().unwrap(),
        "close:4000:from afar"
    );
    wait_for("the server's close", || probe.has("close:h:4000:from afar"));
    assert!(matches!(
        handle.send(OwnedMessage::from("x")),
        Err(Error::NotRunning)
    ));
}

#[test]
fn terminate_from_another_thread() {
    let (probe, server) = probe_server();
    let recorder = Recorder::new(Script::default());
    let client = spawn(
        &server.url("/?name=tt"),
        ConnectOptions::default(),
        &recorder,
    );
    wait_for("open", || recorder.log.has("open:"));
    client.handle.terminate().unwrap();
    client.join();
    assert_eq!(recorder.log.events(), ["open:", "close:1006:"]);
    wait_for("the server's close", || {
        probe.count_prefix("close:tt:1006") == 1
    });
}

#[test]
fn closing_before_open_is_an_error_not_a_close() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorder = Recorder::new(Script::default());
    let client = spawn(
        &format!("ws://127.0.0.1:{port}/"),
        ConnectOptions::default(),
        &recorder,
    );
    client.handle.close(1000, "never mind").unwrap();
    client.join();
    let events = recorder.log.events();
    let error = only_error(&events);
    assert!(
        error.contains("closed before the connection opened"),
        "{error}"
    );
    assert_eq!(recorder.drops(), 1);
}

#[test]
fn a_thread_that_exits_ends_its_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorder = Recorder::new(Script::default());
    let r = recorder.clone();
    std::thread::spawn(move || {
        let data = r.data();
        // Connect, never run the loop.
        uws::connect(
            &format!("ws://127.0.0.1:{port}/"),
            ConnectOptions::default(),
            r,
            data,
        )
        .unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(recorder.drops(), 1);
    let events = recorder.log.events();
    assert!(only_error(&events).contains("closed before the connection opened"));
}

#[test]
fn compression_is_negotiated_and_used() {
    let (_probe, server) = probe_server();
    let deflate_server = start(
        WebSocketOptions {
            per_message_deflate: Some(PerMessageDeflate::default()),
            ..Default::default()
        },
        Probe::default(),
    );
    struct Deflate(EventLog);
    impl ClientHandler for Deflate {
        type Data = ();
        fn open(&self, ws: &mut ClientWebSocket<()>) {
            self.0
                .push(format!("extensions:{}", ws.extensions().unwrap_or("none")));
            let long = "echo ".to_string() + &"compressible ".repeat(500);
            assert_eq!(
                ws.send_compressed(long.as_str()),
                SendStatus::Sent(long.len())
            );
        }
        fn message(&self, ws: &mut ClientWebSocket<()>, message: Message<'_>) {
            self.0.push(format!("message:{}", message.len()));
            let _ = ws.close(1000, "");
        }
    }
    let options = ConnectOptions {
        websocket: WebSocketOptions {
            per_message_deflate: Some(PerMessageDeflate::default()),
            ..Default::default()
        },
        ..Default::default()
    };
    for (url, extensions) in [
        (
            deflate_server.url("/?name=d"),
            // uWebSockets' shared compressor keeps no context: our shared
            // decompressor then serves.
            "extensions:permessage-deflate; client_no_context_takeover; server_no_context_takeover",
        ),
        (server.url("/?name=plain"), "extensions:none"),
    ] {
        let log = EventLog::default();
        let (l, o) = (log.clone(), options.clone());
        std::thread::spawn(move || {
            uws::connect(&url, o, Deflate(l), ()).unwrap();
            uws::run();
        })
        .join()
        .unwrap();
        assert_eq!(log.events(), [extensions, "message:6500"]);
    }
}

#[test]
fn a_message_over_max_payload_fails_with_1009() {
    let (probe, server) = probe_server();
    let options = ConnectOptions {
        websocket: WebSocketOptions {
            max_payload_length: 100,
            ..Default::default()
        },
        ..Default::default()
    };
    let long = format!("echo {}", "x".repeat(200));
    let events = run_to_end(
        &server.url("/?name=big"),
        options,
        Script {
            send: vec![long],
            ..Default::default()
        },
    );
    assert_eq!(events, ["open:", "close:1009:Received too big message"]);
    wait_for("the server's close", || {
        probe.has("close:big:1009:Received too big message")
    });
}

/// A server that opens a client connection to an upstream server for
/// every socket and relays both ways: `Server::connect` and handles used
/// on the same thread.
struct Proxy {
    upstream: String,
    upstreams: Mutex<Vec<(uws::SocketId, ClientHandle<Relay>)>>,
}

struct Relay {
    downstream: uws::SocketId,
    server: uws::ServerHandle<()>,
}

struct Up;

impl ClientHandler for Up {
    type Data = Relay;
    fn message(&self, ws: &mut ClientWebSocket<Relay>, message: Message<'_>) {
        let m = match message {
            Message::Text(t) => OwnedMessage::from(t),
            Message::Binary(b) => OwnedMessage::from(b.to_vec()),
        };
        let _ = ws.data().server.send(ws.data().downstream, m);
    }
}

struct ProxyHandler(Arc<Proxy>);

impl WebSocketHandler for ProxyHandler {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        accept_upgrade(req, server)
    }

    fn open(&self, ws: &mut ServerWebSocket<()>) {
        let relay = Relay {
            downstream: ws.id(),
            server: ws.server().handle(),
        };
        let up = ws
            .server()
            .connect(&self.0.upstream, ConnectOptions::default(), Up, relay)
            .unwrap();
        self.0.upstreams.lock().unwrap().push((ws.id(), up));
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        let up = self.0.upstreams.lock().unwrap();
        let (_, up) = up.iter().find(|(id, _)| *id == ws.id()).unwrap();
        // On the loop's thread: straight to the upstream socket.
        let status = up.send_now(message);
        assert!(matches!(status, SendStatus::Sent(_)), "{status:?}");
    }
}

#[test]
fn a_server_opens_client_connections_and_stop_closes_them() {
    let (probe, upstream) = probe_server();
    let proxy = Arc::new(Proxy {
        upstream: upstream.url("/?name=up"),
        upstreams: Mutex::default(),
    });
    let mut server = start(WebSocketOptions::default(), ProxyHandler(proxy));
    let mut c = connect(&server.url("/"));
    wait_for("the upstream connection", || probe.has("open:up"));
    c.send(tungstenite::Message::text("echo through the proxy"))
        .unwrap();
    assert_eq!(recv_text(&mut c), "through the proxy");
    server.stop();
    wait_for("the upstream's close", || {
        probe.has("close:up:1001:server stopping")
    });
    assert!(server.finished());
}

#[test]
fn data_is_dropped_once_even_when_handlers_panic_in_error() {
    struct Grumpy;
    impl ClientHandler for Grumpy {
        type Data = Conn;
        fn error(&self, _ws: Option<&mut ClientWebSocket<Conn>>, _error: &Error) {
            panic!("error handler panics too");
        }
    }
    let recorder = Recorder::new(Script::default());
    let data = recorder.data();
    std::thread::spawn(move || {
        uws::connect("ws://127.0.0.1:1/", ConnectOptions::default(), Grumpy, data).unwrap();
        uws::run();
    })
    .join()
    .unwrap();
    assert_eq!(recorder.drops(), 1);
}

#[test]
fn a_server_that_drops_the_connection_mid_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        // Closes without answering.
    });
    let events = run_to_end(
        &format!("ws://127.0.0.1:{port}/"),
        ConnectOptions::default(),
        Script::default(),
    );
    server.join().unwrap();
    let error = only_error(&events);
    assert!(
        error.contains("closed the connection before answering the handshake"),
        "{error}"
    );
}
