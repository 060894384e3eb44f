//! Bun's async `fetch`: requests answered later from other threads
//! (responses, upgrades, streamed bodies), request bodies, timers.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::probe::EventLog;
use common::*;
use tungstenite::Message as M;
use uws::*;

/// Data that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Defers every request; what happens next is up to the test, through
/// the requests it collects and the paths it knows.
#[derive(Clone, Default)]
struct Later {
    pending: Arc<Mutex<Vec<PendingRequest<Counted>>>>,
    drops: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    log: EventLog,
}

impl Later {
    fn take(&self, n: usize) -> Vec<PendingRequest<Counted>> {
        wait_for("pending requests", || {
            self.pending.lock().unwrap().len() >= n
        });
        std::mem::take(&mut *self.pending.lock().unwrap())
    }

    fn data(&self) -> Counted {
        Counted(self.drops.clone())
    }
}

impl WebSocketHandler for Later {
    type Data = Counted;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Counted>) -> Response {
        let path = req.path().to_owned();
        let pending = server.defer_request(req).expect("first defer");
        match path.as_str() {
            "/drop" => drop(pending),
            "/echo" => {
                let log = self.log.clone();
                pending.on_body(move |server, body, pending| {
                    log.push(format!("pending={}", server.pending_requests()));
                    match body {
                        Ok(body) => {
                            let _ = pending.respond(Response::new(body.into_bytes()));
                        }
                        Err(e) => log.push(format!("body error: {e}")),
                    }
                });
            }
            "/stream" => {
                let total = 100 * 1024 * 1024;
                let max_buffered = Arc::new(AtomicUsize::new(0));
                let seen = max_buffered.clone();
                let log = self.log.clone();
                let mut sent = 0usize;
                let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
                let r = pending.stream(
                    Response::new("").with_header("X-Kind", "stream"),
                    move |w| {
                        seen.fetch_max(w.buffered_amount(), Ordering::SeqCst);
                        while sent < total {
                            sent += chunk.len();
                            if !w.write(&chunk) {
                                return Flow::More;
                            }
                        }
                        log.push(format!(
                            "streamed max_buffered={}",
                            seen.load(Ordering::SeqCst)
                        ));
                        Flow::Done
                    },
                );
                r.unwrap();
                let _ = max_buffered;
            }
            _ => self.pending.lock().unwrap().push(pending),
        }
        Response::new("ignored: the request is pending")
    }

    fn open(&self, _ws: &mut ServerWebSocket<Counted>) {
        self.opened.fetch_add(1, Ordering::SeqCst);
    }

    fn message(&self, ws: &mut ServerWebSocket<Counted>, message: Message<'_>) {
        ws.send(message);
    }

    fn close(&self, _ws: &mut ServerWebSocket<Counted>, _code: u16, _reason: &str) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }

    fn error(&self, _ws: Option<&mut ServerWebSocket<Counted>>, error: &Error) {
        self.log.push(format!("error: {error}"));
    }
}

fn later(options: ServeOptions) -> (Later, Running<Counted>) {
    let later = Later::default();
    let running = start_with(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            stop_grace_period: Duration::from_secs(1),
            ..options
        },
        later.clone(),
    );
    (later, running)
}

/// Polls a future to completion on this thread.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn status_of(response: &str) -> &str {
    response.get(9..12).unwrap_or("")
}

#[test]
fn an_upgrade_decided_on_another_thread() {
    let (later, server) = later(ServeOptions::default());
    let url = server.url("/auth?token=ok");
    let client = std::thread::spawn(move || connect_with(url.as_str()));
    let [pending] = later.take(1).try_into().ok().unwrap();
    assert!(pending.is_websocket_upgrade());
    assert_eq!(pending.path_and_query(), "/auth?token=ok");
    assert!(pending.header("sec-websocket-key").is_some());
    let data = later.data();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        pending
            .upgrade(UpgradeOptions::new(data).with_header("Set-Cookie", "session=42"))
            .unwrap();
    })
    .join()
    .unwrap();
    let (mut ws, response) = client.join().unwrap();
    assert_eq!(response.headers()["set-cookie"], "session=42");
    ws.send(M::text("after a deferred upgrade")).unwrap();
    assert_eq!(recv_text(&mut ws), "after a deferred upgrade");
    assert_eq!(later.opened.load(Ordering::SeqCst), 1);
    drop(ws);
    wait_for("close", || later.closed.load(Ordering::SeqCst) == 1);
    assert_eq!(later.drops.load(Ordering::SeqCst), 1);
}

/// An upgrade completed later, after another request was answered later,
/// still carries messages published to it afterwards.
#[test]
fn an_upgraded_socket_survives_what_follows() {
    let (later, server) = later(ServeOptions::default());
    let port = server.port;
    let asker =
        std::thread::spawn(move || http_exchange(port, b"GET /no HTTP/1.1\r\nHost: x\r\n\r\n"));
    let [first] = later.take(1).try_into().ok().unwrap();
    first.respond(Response::new("no").with_status(401)).unwrap();
    assert_eq!(status_of(&asker.join().unwrap()), "401");
    let url = server.url("/yes");
    let client = std::thread::spawn(move || connect_with(url.as_str()));
    let [second] = later.take(1).try_into().ok().unwrap();
    second.upgrade(UpgradeOptions::new(later.data())).unwrap();
    let (mut ws, _) = client.join().unwrap();
    wait_for("open", || later.opened.load(Ordering::SeqCst) == 1);
    for i in 0..3 {
        ws.send(M::text(format!("still open {i}"))).unwrap();
        assert_eq!(recv_text(&mut ws), format!("still open {i}"));
    }
}

#[test]
fn a_response_decided_on_another_thread_and_refused_upgrades() {
    let (later, server) = later(ServeOptions::default());
    let port = server.port;
    let asker =
        std::thread::spawn(move || http_exchange(port, b"GET /answer HTTP/1.1\r\nHost: x\r\n\r\n"));
    let [pending] = later.take(1).try_into().ok().unwrap();
    assert!(!pending.is_websocket_upgrade());
    std::thread::spawn(move || {
        pending
            .respond(Response::new("decided later").with_status(202))
            .unwrap()
    })
    .join()
    .unwrap();
    let r = asker.join().unwrap();
    assert!(r.starts_with("HTTP/1.1 202 "), "{r}");
    assert!(r.ends_with("decided later"), "{r}");

    // Not a handshake: refused with 400, the data dropped once.
    let asker =
        std::thread::spawn(move || http_exchange(port, b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n"));
    let [pending] = later.take(1).try_into().ok().unwrap();
    let err = pending
        .upgrade(UpgradeOptions::new(later.data()))
        .unwrap_err();
    assert!(matches!(err, Error::NotWebSocketHandshake), "{err:?}");
    assert_eq!(err.to_string(), "the request is not a WebSocket handshake");
    assert_eq!(status_of(&asker.join().unwrap()), "400");
    assert_eq!(later.drops.load(Ordering::SeqCst), 1);

    // A protocol the client did not offer: refused too.
    let asker = std::thread::spawn(move || {
        http_exchange(port, &handshake("/p", "Sec-WebSocket-Protocol: soap\r\n"))
    });
    let [pending] = later.take(1).try_into().ok().unwrap();
    assert_eq!(pending.protocols(), ["soap"]);
    let err = pending
        .upgrade(UpgradeOptions::new(later.data()).with_protocol("wamp"))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
    assert_eq!(status_of(&asker.join().unwrap()), "400");
    assert_eq!(later.drops.load(Ordering::SeqCst), 2);
}

#[test]
fn a_dropped_pending_request_is_answered_500() {
    let (_later, server) = later(ServeOptions::default());
    let r = http_exchange(server.port, b"GET /drop HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&r), "500", "{r}");
}

#[test]
fn a_client_that_leaves_while_pending_makes_completion_fail_and_drops_the_data_once() {
    let (later, server) = later(ServeOptions::default());
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(&handshake("/leaving", "")).unwrap();
    let [pending] = later.take(1).try_into().ok().unwrap();
    let handle = server.handle.clone();
    let count = move || {
        let (tx, rx) = std::sync::mpsc::channel();
        handle
            .defer(move |s| tx.send(s.pending_requests()).unwrap())
            .unwrap();
        rx.recv_timeout(TIMEOUT).unwrap()
    };
    assert_eq!(count(), 1);
    drop(s);
    wait_for("abort seen", || pending.is_aborted());
    assert_eq!(count(), 0);
    let err = pending
        .upgrade(UpgradeOptions::new(later.data()))
        .unwrap_err();
    assert!(matches!(err, Error::Aborted), "{err}");
    assert_eq!(later.drops.load(Ordering::SeqCst), 1);
    assert_eq!(later.opened.load(Ordering::SeqCst), 0);
    assert_eq!(
        later.closed.load(Ordering::SeqCst),
        0,
        "no close for a socket that never opened"
    );
}

#[test]
fn a_thousand_pending_upgrades_completed_in_random_order() {
    const N: usize = 1000;
    let (later, server) = later(ServeOptions::default());
    let port = server.port;
    let clients: Vec<TcpStream> = (0..N)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.write_all(&handshake(&format!("/many?i={i}"), ""))
                .unwrap();
            s
        })
        .collect();
    let mut pending = later.take(N);
    // A fixed shuffle (xorshift), so a failure can be replayed.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..pending.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pending.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut parts: Vec<Vec<_>> = (0..4).map(|_| Vec::new()).collect();
    for (i, p) in pending.into_iter().enumerate() {
        parts[i % 4].push((p, later.data()));
    }
    let completers: Vec<_> = parts
        .into_iter()
        .map(|part| {
            std::thread::spawn(move || {
                for (p, d) in part {
                    p.upgrade(UpgradeOptions::new(d)).unwrap();
                }
            })
        })
        .collect();
    for c in completers {
        c.join().unwrap();
    }
    let mut by_status = HashMap::new();
    for mut c in clients {
        let mut line = String::new();
        BufReader::new(&mut c).read_line(&mut line).unwrap();
        *by_status.entry(line).or_insert(0) += 1;
    }
    assert_eq!(
        by_status.get("HTTP/1.1 101 Switching Protocols\r\n"),
        Some(&N),
        "{by_status:?}"
    );
    wait_for("all open", || later.opened.load(Ordering::SeqCst) == N);
    wait_for("all closed", || later.closed.load(Ordering::SeqCst) == N);
    assert_eq!(later.drops.load(Ordering::SeqCst), N);
}

/// Sends `head`, then `body` in pieces of `step` bytes; returns the first
/// response.
fn send_in_pieces(port: u16, head: &[u8], body: &[u8], step: usize) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(head).unwrap();
    for piece in body.chunks(step) {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length: ")
                        .map(|v| v.parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn request_bodies_whole_however_they_arrive_up_to_the_limit() {
    let (later, server) = later(ServeOptions {
        max_request_body_size: 1000,
        ..Default::default()
    });
    let port = server.port;
    let body_of = |r: &str| {
        r.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    };
    // Empty: no body at all, and an explicit zero length.
    let r = http_exchange(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((status_of(&r), body_of(&r).as_str()), ("200", ""), "{r}");
    let r = http_exchange(
        port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!((status_of(&r), body_of(&r).as_str()), ("200", ""), "{r}");
    // Chunked.
    let r = http_exchange(
        port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(body_of(&r), "hello world", "{r}");
    // A body one byte at a time.
    let body = "x".repeat(300);
    let head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n";
    let r = send_in_pieces(port, head, body.as_bytes(), 1);
    assert_eq!(body_of(&r), body, "{r}");
    // Exactly at the limit, then one byte over.
    let at = "a".repeat(1000);
    let r = http_exchange(
        port,
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{at}").as_bytes(),
    );
    assert_eq!(body_of(&r), at);
    let over = "a".repeat(1001);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n{over}").as_bytes(),
    )
    .unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert_eq!(status_of(&all), "413", "{all}");
    assert!(all.contains("Connection: close\r\n"), "{all}");
    assert!(later
        .log
        .has("body error: the request body is larger than 1000 bytes"));
    // The callbacks ran with the request still counted as pending.
    assert!(later.log.has("pending=1"));
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let (_later, server) = later(ServeOptions::default());
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut first = [0u8; 25];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"ping").unwrap();
    let mut rest = vec![0u8; 4096];
    let n = s.read(&mut rest).unwrap();
    let r = String::from_utf8_lossy(&rest[..n]);
    assert!(
        r.starts_with("HTTP/1.1 200 ") && r.ends_with("\r\n\r\nping"),
        "{r}"
    );
}

#[test]
fn the_body_as_a_future_from_another_thread() {
    let (later, server) = later(ServeOptions::default());
    let port = server.port;
    let asker = std::thread::spawn(move || {
        http_exchange(
            port,
            b"PUT /future HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"n\": 42 }\n",
        )
    });
    let [pending] = later.take(1).try_into().ok().unwrap();
    let answer = std::thread::spawn(move || {
        let body = block_on(pending.body()).unwrap();
        let text = body.text().unwrap().trim().to_owned();
        // Taken once.
        assert!(block_on(pending.body()).is_err());
        pending
            .respond(Response::new(format!("got {text}")))
            .unwrap();
    });
    answer.join().unwrap();
    let r = asker.join().unwrap();
    assert!(r.ends_with("got {\"n\": 42 }"), "{r}");
}

/// Decodes a chunked body as it arrives, keeping only a count and a check.
fn read_chunked(s: &mut BufReader<TcpStream>, mut byte: impl FnMut(u8)) -> usize {
    let mut total = 0;
    loop {
        let mut size = String::new();
        s.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            let mut end = String::new();
            s.read_line(&mut end).unwrap();
            return total;
        }
        let mut left = n;
        let mut buf = [0u8; 4096];
        while left > 0 {
            let got = s.read(&mut buf[..left.min(4096)]).unwrap();
            assert!(got > 0, "connection ended mid-chunk");
            buf[..got].iter().for_each(|b| byte(*b));
            left -= got;
        }
        total += n;
        let mut crlf = [0u8; 2];
        s.read_exact(&mut crlf).unwrap();
        // A slow reader.
        if total % (8 << 20) < n {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_100_mib_streamed_response_to_a_slow_reader_stays_within_the_backpressure_bound() {
    let (later, server) = later(ServeOptions::default());
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("X-Kind: stream\r\n"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    let mut position = 0usize;
    let mut wrong = 0usize;
    let total = read_chunked(&mut r, |b| {
        if b != ((position % (64 * 1024)) % 251) as u8 {
            wrong += 1;
        }
        position += 1;
    });
    assert_eq!(total, 100 * 1024 * 1024);
    assert_eq!(wrong, 0, "bytes arrived intact and in order");
    wait_for("stream done", || later.log.count_prefix("streamed") == 1);
    let line = later
        .log
        .events()
        .into_iter()
        .find(|e| e.starts_with("streamed"))
        .unwrap();
    let max: usize = line.rsplit('=').next().unwrap().parse().unwrap();
    // What waited in user space never went past one chunk over what the
    // socket took at once (the producer stops at the first full write).
    assert!(max <= 2 * 64 * 1024 + 64 * 1024, "{line}");
}

#[test]
fn head_requests_get_no_body() {
    struct Heads;
    impl WebSocketHandler for Heads {
        type Data = ();
        fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
            if req.path() == "/later" {
                let pending = server.defer_request(req).unwrap();
                pending
                    .stream(Response::new(""), |w| {
                        w.write(b"never sent for HEAD");
                        Flow::Done
                    })
                    .unwrap();
            }
            Response::new("twelve bytes")
        }
    }
    let server = start(WebSocketOptions::default(), Heads);
    let exchange = |requests: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s.write_all(requests).unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    };
    let text = exchange(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let responses: Vec<&str> = text.split("HTTP/1.1 ").filter(|r| !r.is_empty()).collect();
    assert_eq!(responses.len(), 2, "{text}");
    // HEAD: the length of the body it would have had, no body.
    assert!(responses[0].contains("Content-Length: 12\r\n"), "{text}");
    assert!(responses[0].ends_with("\r\n\r\n"), "{text}");
    // The GET after it still gets its body: the framing held.
    assert!(responses[1].ends_with("\r\n\r\ntwelve bytes"), "{text}");
    // A streamed answer to HEAD: the head only.
    let text = exchange(b"HEAD /later HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
    assert!(!text.contains("never sent"), "{text}");
}

#[derive(Clone, Default)]
struct Clock {
    log: EventLog,
    stop_after: Arc<Mutex<Option<TimerId>>>,
}

impl WebSocketHandler for Clock {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        let log = self.log.clone();
        match req.path() {
            "/timeout" => {
                let l = log.clone();
                server.set_timeout(Duration::from_millis(20), move |_| l.push("timeout fired"));
            }
            "/cleared" => {
                let l = log.clone();
                let id =
                    server.set_timeout(Duration::from_millis(50), move |_| l.push("cleared fired"));
                log.push(format!("clear={}", server.clear_timer(id)));
                log.push(format!("clear again={}", server.clear_timer(id)));
            }
            "/interval" => {
                let l = log.clone();
                let mut n = 0;
                let slot = self.stop_after.clone();
                let id = server.set_interval(Duration::from_millis(10), move |s| {
                    n += 1;
                    l.push(format!("tick {n}"));
                    if n == 3 {
                        let id = slot.lock().unwrap().take().unwrap();
                        l.push(format!("self clear={}", s.clear_timer(id)));
                    }
                    if n == 4 {
                        panic!("ticked after being cleared");
                    }
                });
                *self.stop_after.lock().unwrap() = Some(id);
            }
            "/panics" => {
                server.set_timeout(Duration::from_millis(5), |_| panic!("timer panic"));
            }
            "/after-stop" => {
                let l = log.clone();
                server.set_timeout(Duration::from_millis(200), move |_| {
                    l.push("fired after stop")
                });
                server.stop();
                let l = log.clone();
                let id = server.set_timeout(Duration::from_millis(1), move |_| {
                    l.push("set while stopping fired")
                });
                log.push(format!("stopped; clear={}", server.clear_timer(id)));
            }
            _ => {}
        }
        Response::new("ok")
    }

    fn error(&self, _ws: Option<&mut ServerWebSocket<()>>, error: &Error) {
        self.log.push(format!("error: {error}"));
    }
}

#[test]
fn timers_fire_clear_and_stop_with_the_server() {
    let clock = Clock::default();
    let mut server = start(WebSocketOptions::default(), clock.clone());
    let get = |path: &str| {
        http_exchange(
            server.port,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
    };
    get("/timeout");
    get("/cleared");
    get("/interval");
    get("/panics");
    wait_for("timeout", || clock.log.has("timeout fired"));
    wait_for("interval", || clock.log.has("self clear=true"));
    wait_for("panic reported", || {
        clock
            .log
            .has("error: handler `timer` panicked: timer panic")
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(clock.log.has("clear=true"));
    assert!(clock.log.has("clear again=false"));
    assert!(!clock.log.has("cleared fired"));
    assert_eq!(clock.log.count_prefix("tick "), 3);
    assert_eq!(clock.log.count_prefix("timeout fired"), 1);
    get("/after-stop");
    assert!(clock.log.has("stopped; clear=false"));
    server.stop();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!clock.log.has("fired after stop"));
    assert!(!clock.log.has("set while stopping fired"));
}
