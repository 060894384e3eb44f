//! Stops and closes asked for inside handlers while views into the
//! connection's buffers are still read (fragmented messages, split pings,
//! requests and close reasons), inside subscription events, and panic
//! payloads whose own drop panics. Each test states the safe outcome it
//! expects. Run one at a time (and under valgrind, as tests/memcheck.sh does):
//!
//!   cargo test --test stops_inside_handlers -- --exact NAME --test-threads=1
//!   valgrind --error-exitcode=9 target/debug/deps/stops_inside_handlers-* --exact NAME
#![allow(clippy::type_complexity)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::connect;
use common::*;
use tungstenite::Message as M;
use uws::*;

use common::probe::EventLog as Log;

/// A panic payload whose destructor panics (with a plain `&str` payload).
pub struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the panic payload's destructor panics");
    }
}

/// A payload whose destructor panics with a `Bomb`: two levels.
pub struct Bomb2;

impl Drop for Bomb2 {
    fn drop(&mut self) {
        std::panic::panic_any(Bomb);
    }
}

pub struct D {
    pub name: String,
    drops: Arc<AtomicUsize>,
    log: Log,
}

impl Drop for D {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        self.log.push(format!("drop:{}", self.name));
        if self.name == "bomb" {
            // Data whose destructor panics with a payload whose destructor
            // panics too.
            std::panic::panic_any(Bomb);
        }
    }
}

#[derive(Clone, Default)]
struct R {
    log: Log,
    drops: Arc<AtomicUsize>,
    /// What the subscription handler does.
    mode: Arc<Mutex<String>>,
}

impl R {
    fn with_mode(mode: &str) -> R {
        let r = R::default();
        *r.mode.lock().unwrap() = mode.to_string();
        r
    }
    fn mode(&self) -> String {
        self.mode.lock().unwrap().clone()
    }
}

impl WebSocketHandler for R {
    type Data = D;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<D>) -> Response {
        let name = req.query_param("name").unwrap_or_default().into_owned();
        let data = D {
            name,
            drops: self.drops.clone(),
            log: self.log.clone(),
        };
        if server.upgrade(req, UpgradeOptions::new(data)) {
            return Response::new("");
        }
        Response::new("no").with_status(400)
    }

    fn open(&self, ws: &mut ServerWebSocket<D>) {
        self.log.push(format!("open:{}", ws.data().name));
    }

    fn message(&self, ws: &mut ServerWebSocket<D>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        let (cmd, arg) = text.split_once(' ').unwrap_or((text, ""));
        let name = ws.data().name.clone();
        self.log.push(format!("message:{name}:{text}"));
        match cmd {
            "sub" => {
                let r = ws.subscribe(arg);
                self.log.push(format!("subscribed:{name}:{arg}:{r}"));
                ws.send_text(&format!("sub {r}"));
            }
            "close" => {
                let _ = ws.close(1000, "bye");
                self.log.push(format!("closed-in-message:{name}"));
            }
            "panic" => panic!("message panics"),
            "panic2" => std::panic::panic_any(Bomb2),
            _ => {}
        }
    }

    fn close(&self, ws: &mut ServerWebSocket<D>, code: u16, _reason: &str) {
        self.log.push(format!("close:{}:{code}", ws.data().name));
    }

    fn subscription(&self, server: &Server<D>, id: SocketId, topic: &str, old: usize, new: usize) {
        self.log.push(format!("subscription:{topic}:{old}->{new}"));
        match self.mode().as_str() {
            // A socket leaves a topic (it is closing): close everything now.
            "leave_stop_now" if old > new => {
                server.stop_now();
                self.log.push("sub-stop-now");
            }
            // The socket's own subscribe: close everything now. Its close
            // then walks its topics while it is still "subscribing".
            "own_stop_now" if new > old => {
                server.stop_now();
                self.log.push("own-sub-stop-now");
            }
            "own_stop_now" if old > new => {
                // The socket is closing: its id must no longer resolve.
                let send = server.send(id, "to a closing socket", false);
                self.log.push(format!("closing-send:{send:?}"));
                let _ = server.close(id, 1000, "closed again from subscription");
                self.log.push("closing-close");
            }
            _ => {}
        }
    }

    fn error(&self, _ws: Option<&mut ServerWebSocket<D>>, error: &Error) {
        self.log.push(format!("error:{error}"));
        if self.mode() == "error_bomb" {
            // An error handler that panics with a payload whose destructor
            // panics.
            std::panic::panic_any(Bomb);
        }
    }
}

fn read_text(c: &mut Client) -> String {
    recv_text(c)
}

// ------------------------------------------------------------------------
// 1. stop_now inside a subscription event of a closing socket: uWebSockets'
//    WebSocket::end() walks the socket's topics, the handler closes the
//    socket at once (us_socket_close -> ~WebSocketData deletes the
//    Subscriber), and end() goes on iterating the freed Subscriber and then
//    frees it a second time.

#[test]
fn stop_now_in_subscription_event_while_socket_ends_itself() {
    let h = R::with_mode("leave_stop_now");
    let mut r = start(WebSocketOptions::default(), h.clone());
    let mut c = connect(&r.url("/?name=victim"));
    for t in ["a", "b", "c"] {
        c.send(M::text(format!("sub {t}"))).unwrap();
        assert_eq!(read_text(&mut c), "sub true");
    }
    // The socket's own handler closes it: end() emits one subscription
    // event per topic; the first one stops the server at once.
    c.send(M::text("close")).unwrap();
    wait_for("close handler", || h.log.count_prefix("close:victim") >= 1);
    wait_for("run returns", || r.finished());
    r.stop();
    assert_eq!(h.log.count_prefix("close:victim"), 1);
    assert_eq!(h.drops.load(Ordering::SeqCst), 1);
}

#[test]
fn stop_now_in_subscription_event_while_server_stops() {
    let h = R::with_mode("leave_stop_now");
    let mut r = start(WebSocketOptions::default(), h.clone());
    let mut c = connect(&r.url("/?name=victim"));
    for t in ["a", "b", "c"] {
        c.send(M::text(format!("sub {t}"))).unwrap();
        assert_eq!(read_text(&mut c), "sub true");
    }
    // A graceful stop ends the (idle) socket: same walk, not busy this time.
    r.handle.stop().unwrap();
    wait_for("run returns", || r.finished());
    r.stop();
    assert_eq!(h.log.count_prefix("close:victim"), 1);
    assert_eq!(h.drops.load(Ordering::SeqCst), 1);
}

#[test]
fn stop_now_in_subscription_event_when_the_peer_closes() {
    // The most ordinary trigger: a client closes with a close frame, and the
    // subscription handler stops the server when a topic empties.
    let h = R::with_mode("leave_stop_now");
    let mut r = start(WebSocketOptions::default(), h.clone());
    let mut c = connect(&r.url("/?name=victim"));
    for t in ["a", "b"] {
        c.send(M::text(format!("sub {t}"))).unwrap();
        assert_eq!(read_text(&mut c), "sub true");
    }
    c.close(None).unwrap();
    wait_for("close handler", || h.log.count_prefix("close:victim") >= 1);
    wait_for("run returns", || r.finished());
    r.stop();
    assert_eq!(h.log.count_prefix("close:victim"), 1);
    assert_eq!(h.drops.load(Ordering::SeqCst), 1);
}

// ------------------------------------------------------------------------
// 2. stop_now inside the socket's OWN subscription event: the close that
//    follows emits subscription events while `subscribing` still names the
//    socket, so they are taken for its own: the socket stays in the
//    registry, its id resolves, sends reach it, and Server::close(id) runs a
//    second, nested end() that frees the Subscriber the outer close is
//    iterating.

#[test]
fn closing_socket_id_resolves_after_stop_now_in_own_subscription_event() {
    let h = R::with_mode("own_stop_now");
    let mut r = start(WebSocketOptions::default(), h.clone());
    let mut c = connect(&r.url("/?name=victim"));
    wait_for("open", || h.log.count_prefix("open:") == 1);
    c.send(M::text("sub a")).unwrap();
    wait_for("close handler", || h.log.count_prefix("close:victim") >= 1);
    wait_for("run returns", || r.finished());
    r.stop();
    eprintln!("{:#?}", h.log.events());
    assert_eq!(h.log.count_prefix("close:victim"), 1);
    assert_eq!(h.drops.load(Ordering::SeqCst), 1);
    // Documented: "while it closes, its id no longer resolves (with_socket
    // gives None, sends are dropped)".
    assert_eq!(
        h.log.find("closing-send:").as_deref(),
        Some("closing-send:Dropped")
    );
}

// ------------------------------------------------------------------------
// 3. Panic payloads whose destructor panics: the crate catches the panic,
//    then drops the payload outside any catch_unwind, and the second panic
//    unwinds into an extern "C" trampoline: the process aborts.

#[test]
fn error_handler_panics_with_a_payload_that_panics_on_drop() {
    let h = R::with_mode("error_bomb");
    let mut r = start(WebSocketOptions::default(), h.clone());
    let mut c = connect(&r.url("/?name=p"));
    wait_for("open", || h.log.count_prefix("open:") == 1);
    c.send(M::text("panic")).unwrap();
    // The handler's panic closes the socket with 1011; the process lives on.
    assert_eq!(recv_close(&mut c).map(|(code, _)| code), Some(1011));
    r.stop();
    assert_eq!(h.drops.load(Ordering::SeqCst), 1);
}

#[test]
fn handler_panics_with_a_payload_whose_drop_panics_twice() {
    let h = R::default();
    let mut r = start(WebSocketOptions::default(), h.clone());
    let mut c = connect(&r.url("/?name=p"));
    wait_for("open", || h.log.count_prefix("open:") == 1);
    c.send(M::text("panic2")).unwrap();
    assert_eq!(recv_close(&mut c).map(|(code, _)| code), Some(1011));
    r.stop();
    assert_eq!(h.drops.load(Ordering::SeqCst), 1);
}

#[test]
fn data_drop_panics_with_a_payload_that_panics_on_drop() {
    let h = R::default();
    let mut r = start(WebSocketOptions::default(), h.clone());
    let c = connect(&r.url("/?name=bomb"));
    wait_for("open", || h.log.count_prefix("open:") == 1);
    drop(c);
    wait_for("drop", || h.drops.load(Ordering::SeqCst) == 1);
    std::thread::sleep(Duration::from_millis(100));
    // The server is still there.
    let mut c2 = connect(&r.url("/?name=after"));
    c2.send(M::text("sub x")).unwrap();
    assert_eq!(read_text(&mut c2), "sub true");
    r.stop();
    assert!(h.log.has("close:bomb:1006"));
}

// ------------------------------------------------------------------------
// 4. Borrowed views that die with the socket. A message that came in
//    fragments (or in several TCP reads) is handed to `message` as a view of
//    uWebSockets' per-socket fragment buffer; a request that came in several
//    reads is parsed from the HTTP parser's per-socket fallback buffer.
//    Closing the socket at once inside the handler (terminate, stop_now)
//    runs ~WebSocketData / ~HttpResponseData, which frees those buffers,
//    while the handler still holds `Message<'_>` / `&'a str` from the
//    request: reading them afterwards reads freed memory.

use std::io::{Read, Write};
use std::net::TcpStream;

/// Opens a WebSocket with raw TCP; returns the stream after the 101.
fn raw_ws(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(&handshake(path, "")).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "handshake answered");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// One masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let len = payload.len();
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if len < 65536 {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[derive(Clone, Default)]
struct Views {
    log: Log,
}

impl WebSocketHandler for Views {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        if req.path() == "/stopnow" {
            // Views of the request, taken before the stop.
            let path = req.path();
            let pad = req.header("x-pad").unwrap_or("");
            server.stop_now();
            // An allocation of the freed buffer's size takes its place.
            let reuse = vec![b'z'; 3076];
            // `path` and `pad` are still borrowed for the whole of fetch.
            let sum: usize = pad.bytes().map(usize::from).sum::<usize>() + path.len();
            drop(std::hint::black_box(reuse));
            self.log
                .push(format!("request-after-stop-now:{}:{sum}", pad.len()));
            return Response::new("");
        }
        server.upgrade(req, UpgradeOptions::new(()));
        Response::new("")
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        let bytes = message.as_bytes();
        match bytes.first() {
            Some(b'T') => ws.terminate(),
            Some(b'S') => ws.server().stop_now(),
            _ => return,
        }
        // An allocation of the freed buffer's size takes its place.
        let reuse = vec![b'z'; 2001];
        // The message is still borrowed: read it.
        let xs = bytes.iter().filter(|&&b| b == b'x').count();
        drop(std::hint::black_box(reuse));
        self.log
            .push(format!("message-after-close:{}:{xs}", bytes.len()));
    }

    fn close(&self, ws: &mut ServerWebSocket<()>, code: u16, reason: &str) {
        if code != 1000 {
            return;
        }
        ws.server().stop_now();
        let xs = reason.bytes().filter(|&b| b == b'x').count();
        self.log
            .push(format!("reason-after-stop-now:{}:{xs}", reason.len()));
    }

    fn ping(&self, ws: &mut ServerWebSocket<()>, data: &[u8]) {
        ws.terminate();
        let xs = data.iter().filter(|&&b| b == b'x').count();
        self.log
            .push(format!("ping-after-terminate:{}:{xs}", data.len()));
    }
}

fn fragmented_message_then(first: u8) {
    let h = Views::default();
    let mut r = start(WebSocketOptions::default(), h.clone());
    let mut s = raw_ws(r.port, "/");
    // One text message in two fragments: uWebSockets joins them in the
    // socket's fragment buffer and hands that to `message`.
    let mut one = vec![first];
    one.extend(std::iter::repeat_n(b'x', 999));
    let two = vec![b'x'; 1000];
    s.write_all(&frame(false, 1, &one)).unwrap();
    s.write_all(&frame(true, 0, &two)).unwrap();
    wait_for("message handler", || {
        h.log.count_prefix("message-after-close:") == 1
    });
    r.stop();
    assert_eq!(
        h.log.find("message-after-close:").as_deref(),
        Some("message-after-close:2000:1999")
    );
}

#[test]
fn fragmented_message_read_after_terminate() {
    fragmented_message_then(b'T');
}

#[test]
fn fragmented_message_read_after_stop_now() {
    fragmented_message_then(b'S');
}

#[test]
fn split_ping_payload_read_after_terminate() {
    let h = Views::default();
    let mut r = start(WebSocketOptions::default(), h.clone());
    let mut s = raw_ws(r.port, "/");
    // A ping whose payload arrives in two reads is kept in the fragment
    // buffer too.
    let ping = frame(true, 9, &[b'x'; 120]);
    s.write_all(&ping[..40]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(&ping[40..]).unwrap();
    wait_for("ping handler", || {
        h.log.count_prefix("ping-after-terminate:") == 1
    });
    r.stop();
    assert_eq!(
        h.log.find("ping-after-terminate:").as_deref(),
        Some("ping-after-terminate:120:120")
    );
}

#[test]
fn split_request_read_after_stop_now() {
    let h = Views::default();
    let mut r = start(WebSocketOptions::default(), h.clone());
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    s.set_nodelay(true).unwrap();
    let pad = "p".repeat(3000);
    let request = format!("GET /stopnow HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n");
    // The request arrives in two reads: uWebSockets parses it from the
    // connection's fallback buffer.
    s.write_all(&request.as_bytes()[..100]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(&request.as_bytes()[100..]).unwrap();
    wait_for("fetch", || {
        h.log.count_prefix("request-after-stop-now:") == 1
    });
    wait_for("run returns", || r.finished());
    r.stop();
    let expected = 3000 * usize::from(b'p') + "/stopnow".len();
    assert_eq!(
        h.log.find("request-after-stop-now:"),
        Some(format!("request-after-stop-now:3000:{expected}"))
    );
}

#[test]
fn split_close_reason_read_after_stop_now() {
    let h = Views::default();
    let mut r = start(WebSocketOptions::default(), h.clone());
    let mut s = raw_ws(r.port, "/");
    // The peer's close frame arrives in two reads: its reason is a view of
    // the fragment buffer when the close handler runs.
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend([b'x'; 100]);
    let close = frame(true, 8, &payload);
    s.write_all(&close[..40]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(&close[40..]).unwrap();
    wait_for("close handler", || {
        h.log.count_prefix("reason-after-stop-now:") == 1
    });
    wait_for("run returns", || r.finished());
    r.stop();
    assert_eq!(
        h.log.find("reason-after-stop-now:").as_deref(),
        Some("reason-after-stop-now:100:100")
    );
}

// ------------------------------------------------------------------------
// Misbehaving clients (these hold): half handshakes, resets mid-upgrade,
// resets right after a message, while the server publishes to everyone.

/// Test-client helper only (the server side uses no unsafe): close with a
/// RST instead of a FIN.
fn rst(s: TcpStream) {
    // SO_LINGER 0: close() sends a RST.
    use std::os::fd::AsRawFd;
    let l = [1i32, 0i32];
    unsafe {
        libc_setsockopt(s.as_raw_fd(), 1, 13, l.as_ptr().cast(), 8);
    }
    drop(s);
}

extern "C" {
    #[link_name = "setsockopt"]
    fn libc_setsockopt(fd: i32, level: i32, name: i32, value: *const u8, len: u32) -> i32;
}

#[test]
fn resets_and_half_handshakes_while_publishing() {
    let h = R::default();
    let mut r = start(WebSocketOptions::default(), h.clone());
    let port = r.port;
    let full = handshake("/?name=x", "");
    for i in 0..40 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        match i % 4 {
            // Half a handshake, then a reset.
            0 => s.write_all(&full[..full.len() / 2]).unwrap(),
            // A whole handshake, reset before reading the 101.
            1 => s.write_all(&full).unwrap(),
            // A handshake and a message in one write, then a reset.
            2 => {
                let mut b = full.clone();
                b.extend(frame(true, 1, b"sub room"));
                s.write_all(&b).unwrap();
            }
            // Half a frame after the handshake, then a reset.
            _ => {
                s.write_all(&full).unwrap();
                std::thread::sleep(Duration::from_millis(5));
                let f = frame(true, 1, &[b'x'; 300]);
                s.write_all(&f[..100]).unwrap();
            }
        }
        rst(s);
    }
    let mut c = connect(&r.url("/?name=alive"));
    c.send(M::text("sub room")).unwrap();
    assert_eq!(read_text(&mut c), "sub true");
    r.stop();
    let opened = h.log.count_prefix("open:");
    assert_eq!(
        h.log.count_prefix("close:"),
        opened,
        "every open socket closed once"
    );
    assert_eq!(
        h.drops.load(Ordering::SeqCst),
        opened,
        "every data dropped once"
    );
}
