//! Hostile peers: malformed handshakes, broken frames, abrupt disconnects
//! and slow readers. Each gets the protocol's answer (an HTTP error, or the
//! connection failed with the close handler run exactly once and the
//! socket's data dropped once), the server's memory stays bounded, and the
//! server keeps serving a normal client afterwards.
//!
//! What the server does (uWebSockets v20.58.0 with our patches in
//! vendor/patches; tests/http_parser.rs goes through the HTTP parser in
//! detail):
//! - A request that is not a WebSocket handshake reaches `fetch`, whose
//!   answer (here the probe's 400) is sent; the connection stays open
//!   (keep-alive). A key that is not 24 bytes long never reaches the
//!   WebSocket route.
//! - A request that cannot become valid HTTP/1.1 is answered at once and
//!   the connection closed: `400` for bad syntax or bytes (garbage, a TLS
//!   hello, a WebSocket frame), a request without `Host`, or both
//!   `Content-Length` and `Transfer-Encoding`; `505` for an HTTP version
//!   other than 1.x; `431` for more header lines than the parser takes.
//!   An incomplete one waits for the rest. HTTP/1.0 is served but cannot
//!   upgrade.
//! - An HTTP connection that has not completed a request is closed after
//!   uWebSockets' HTTP idle timeout of 10 s, counted on its 4 s timer:
//!   8 to 12 s after connecting, even when the peer keeps trickling bytes
//!   (slow loris). No response is sent.
//! - A protocol error in a frame (reserved bits or opcodes, a control frame
//!   over 125 bytes or fragmented, a continuation with nothing to continue)
//!   fails the connection the way RFC 6455 7.1.7 says: what was already
//!   answered is sent, then a close frame with 1002, then FIN; the close
//!   handler sees the same code and reason. A message over
//!   `max_payload_length` (whole, fragmented, or once inflated) gets 1009,
//!   invalid UTF-8 in a text message 1007 (vendor/patches/0003).
//! - A close frame whose code is not one a peer may send, or that carries a
//!   single byte, is answered with 1002; one whose reason is not UTF-8 with
//!   1007. An unmasked client frame is answered with 1002
//!   (vendor/patches/0005).
//! - A peer that leaves mid-frame or mid-message: 1006, empty reason.
//! - A slow reader costs at most about `backpressure_limit` of server
//!   memory (sends past it are dropped); with
//!   `close_on_backpressure_limit` it is closed (1006, empty reason).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use common::http::{complete_response, exchange, status_of, Answer, End};
use common::probe::{Data, Probe};
use common::*;
use tungstenite::Message as M;
use uws::{
    Message, Request, Response, SendStatus, Server, ServerWebSocket, UpgradeOptions,
    WebSocketHandler, WebSocketOptions,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Memory is measured for the whole test process: the tests that measure it
/// take this lock for writing, every other test for reading, so nothing
/// else runs while they measure.
static MEMORY: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    MEMORY.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MEMORY.write().unwrap_or_else(|e| e.into_inner())
}

/// Resident memory of this process, in bytes (VmRSS).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn probe_server(options: WebSocketOptions) -> (Probe, Running<Data>) {
    let probe = Probe::default();
    let running = start(options, probe.clone());
    (probe, running)
}

/// Sends `request` in one write and returns the error status the server
/// answered with: never a 101, always a complete response.
fn refused(port: u16, request: &[u8]) -> u16 {
    refused_in(port, &[request])
}

/// As [`refused`], with the request in several writes.
fn refused_in(port: u16, chunks: &[&[u8]]) -> u16 {
    let answer = exchange(port, chunks, Duration::from_millis(50));
    let status = answer.status();
    assert_ne!(status, Some(101), "upgraded: {}", answer.text());
    let code = status.unwrap_or_else(|| panic!("no HTTP response: {answer:?}"));
    assert!(code >= 400, "{}", answer.text());
    assert!(
        answer.end != End::Open || complete_response(&answer.bytes),
        "neither a complete response nor closed: {answer:?}"
    );
    code
}

/// A normal client still gets its echo; it then closes cleanly and the
/// close handler has run for it.
fn still_serves(server: &Running<Data>, probe: &Probe, name: &str) {
    let mut c = connect(&server.url(&format!("/?name={name}")));
    c.send(M::text("echo still here")).unwrap();
    assert_eq!(recv_text(&mut c), "still here");
    c.close(None).unwrap();
    let _ = recv_close(&mut c);
    wait_for("the normal client's close", || {
        probe.count_prefix(&format!("close:{name}:")) == 1
    });
}

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;
const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const MASK: [u8; 4] = [0x3c, 0xa1, 0x5e, 0x07];

/// A client frame: first byte `b0`, a length field saying `declared`, and
/// `payload` (masked when `masked`).
fn encode(b0: u8, declared: u64, payload: &[u8], masked: bool) -> Vec<u8> {
    let bit = if masked { 0x80 } else { 0 };
    let mut out = vec![b0];
    if declared < 126 {
        out.push(bit | declared as u8);
    } else if declared <= 0xffff {
        out.push(bit | 126);
        out.extend_from_slice(&(declared as u16).to_be_bytes());
    } else {
        out.push(bit | 127);
        out.extend_from_slice(&declared.to_be_bytes());
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A masked client frame with its true length.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    encode(b0, payload.len() as u64, payload, true)
}

/// Server frames in `bytes` (unmasked): first byte and payload each.
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let (len, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if bytes.len() < header + len {
            break;
        }
        frames.push((bytes[0], bytes[header..header + len].to_vec()));
        bytes = &bytes[header + len..];
    }
    frames
}

fn is_close_frame(f: &(u8, Vec<u8>)) -> bool {
    f.0 & 0x0f == CLOSE
}

/// A WebSocket client on a raw TCP stream, to send what no real client would.
struct Raw {
    stream: TcpStream,
    /// Bytes read past the handshake response.
    pending: Vec<u8>,
}

impl Raw {
    /// Connects and completes the handshake for `/?name=NAME`.
    fn open(port: u16, name: &str) -> Raw {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream
            .write_all(&handshake(&format!("/?name={name}"), ""))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let end = loop {
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut buf).expect("handshake response");
            assert!(n > 0, "closed during the handshake");
            got.extend_from_slice(&buf[..n]);
        };
        assert_eq!(
            status_of(&got),
            Some(101),
            "{}",
            String::from_utf8_lossy(&got)
        );
        Raw {
            stream,
            pending: got[end..].to_vec(),
        }
    }

    /// Writes `bytes`; the server may already have closed the connection
    /// (a failed write is then expected and ignored).
    fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads until the server ends the connection or `wait` passes.
    fn read_to_end(&mut self, wait: Duration) -> (Vec<u8>, End) {
        let deadline = Instant::now() + wait;
        let mut out = std::mem::take(&mut self.pending);
        let mut buf = [0u8; 16384];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (out, End::Open);
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return (out, End::Eof),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return (out, End::Reset),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return (out, End::Open)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

/// What became of a connection that was sent something hostile.
#[derive(Debug)]
struct Failed {
    /// Frames the server sent before the connection ended.
    frames: Vec<(u8, Vec<u8>)>,
    end: End,
    /// The close handler's event: `close:a:CODE:REASON`.
    close: String,
    events: Vec<String>,
}

impl Failed {
    fn close_frame(&self) -> Option<&(u8, Vec<u8>)> {
        self.frames.iter().find(|f| is_close_frame(f))
    }

    /// The connection was failed the way RFC 6455 7.1.7 says: the server's
    /// last frame is a close frame with `code` and `reason`, then it ended
    /// the connection; the close handler saw the same code and reason.
    fn assert_failed_with(&self, code: u16, reason: &str) {
        assert_ne!(
            self.end,
            End::Open,
            "the server kept the connection: {self:?}"
        );
        let last = self.frames.last().expect("a close frame");
        assert!(
            is_close_frame(last),
            "the last frame is not a close frame: {self:?}"
        );
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        assert_eq!(last.1, payload, "close frame: {self:?}");
        assert_eq!(self.close, format!("close:a:{code}:{reason}"), "{self:?}");
    }
}

/// Opens socket `a` on a fresh probe server, sends `chunks` (pausing
/// briefly between them, so each arrives in its own read), and waits for the
/// server to end the connection. Checks on the way that the close handler
/// ran exactly once, that the socket's data was dropped exactly once, and
/// that the server still serves a normal client.
fn hostile(options: WebSocketOptions, chunks: &[Vec<u8>]) -> Failed {
    hostile_then(options, chunks, |_| {})
}

fn hostile_then(
    options: WebSocketOptions,
    chunks: &[Vec<u8>],
    after_send: impl FnOnce(&mut Raw),
) -> Failed {
    let _guard = shared();
    let (probe, mut server) = probe_server(options);
    let mut raw = Raw::open(server.port, "a");
    wait_for("open", || probe.has("open:a"));
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        raw.send(chunk);
    }
    after_send(&mut raw);
    let (bytes, end) = raw.read_to_end(TIMEOUT);
    // Our side closes too: a socket whose closing handshake is done waits
    // for the peer's FIN (or its timeout) before it is gone.
    drop(raw);
    wait_for("the close handler", || probe.count_prefix("close:a:") >= 1);
    // Exactly once: nothing more arrives later either.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(probe.count_prefix("close:a:"), 1, "{:?}", probe.events());
    wait_for("a's data dropped", || probe.drops() == 1);
    still_serves(&server, &probe, "ok");
    wait_for("ok's data dropped", || probe.drops() == 2);
    server.stop();
    assert_eq!(probe.count_prefix("close:a:"), 1, "{:?}", probe.events());
    assert_eq!(probe.drops(), 2, "{:?}", probe.events());
    assert_eq!(probe.count_prefix("open:"), 2, "{:?}", probe.events());
    let events = probe.events();
    let close = events
        .iter()
        .find(|e| e.starts_with("close:a:"))
        .unwrap()
        .clone();
    let failed = Failed {
        frames: server_frames(&bytes),
        end,
        close,
        events,
    };
    eprintln!("{failed:?}");
    failed
}

fn small_payload_limit() -> WebSocketOptions {
    WebSocketOptions {
        max_payload_length: 1024,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Handshakes
// ---------------------------------------------------------------------------

fn request(lines: &[&str]) -> Vec<u8> {
    let mut r = String::new();
    for l in lines {
        r.push_str(l);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

const GET: &str = "GET /?name=h HTTP/1.1";
const HOST: &str = "Host: 127.0.0.1";
const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
const VERSION: &str = "Sec-WebSocket-Version: 13";

/// A handshake with `key` as its Sec-WebSocket-Key line (None: no key).
fn with_key(key: Option<&str>) -> Vec<u8> {
    let line = key.map(|k| format!("Sec-WebSocket-Key: {k}"));
    let mut lines = vec![GET, HOST, UPGRADE, CONNECTION, VERSION];
    lines.extend(line.as_deref());
    request(&lines)
}

/// Asserts that each request is answered by the probe's `fetch` with its
/// 400 (so `Server::upgrade` said no), and that nothing opened.
fn assert_fetch_refuses(cases: &[(&str, Vec<u8>)]) {
    let _guard = shared();
    let (probe, server) = probe_server(WebSocketOptions::default());
    for (what, req) in cases {
        let answer = exchange(server.port, &[req], Duration::ZERO);
        assert_eq!(answer.status(), Some(400), "{what}: {}", answer.text());
        assert!(
            answer.text().ends_with("not a websocket"),
            "{what}: {}",
            answer.text()
        );
    }
    assert_eq!(probe.count_prefix("open:"), 0, "{:?}", probe.events());
    still_serves(&server, &probe, "ok");
}

#[test]
fn a_valid_raw_handshake_is_upgraded() {
    // The baseline that the refusals below differ from.
    let _guard = shared();
    let (probe, server) = probe_server(WebSocketOptions::default());
    let answer = exchange(
        server.port,
        &[&with_key(Some("dGhlIHNhbXBsZSBub25jZQ=="))],
        Duration::ZERO,
    );
    assert_eq!(answer.status(), Some(101), "{}", answer.text());
    assert!(
        answer
            .text()
            .to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{}",
        answer.text()
    );
    wait_for("open", || probe.has("open:h"));
}

#[test]
fn handshakes_with_a_missing_or_mis_sized_key_are_refused() {
    // uWebSockets routes a request to the WebSocket behavior only when its
    // key is 24 bytes long; anything else reaches `fetch` as plain HTTP.
    assert_fetch_refuses(&[
        ("no key", with_key(None)),
        ("empty key", with_key(Some(""))),
        ("short key", with_key(Some("abc="))),
        (
            "key twice as long",
            with_key(Some("dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==")),
        ),
    ]);
}

#[test]
fn handshakes_with_a_24_byte_key_that_is_not_16_bytes_of_base64_are_refused() {
    // RFC 6455 4.1/4.2.1: the key is 16 random bytes in base64, 24
    // characters ending in "==". A server must refuse a handshake that does
    // not match (4.2.2), with an HTTP error such as 400.
    assert_fetch_refuses(&[
        ("not base64", with_key(Some("!!!!!!!!!!!!!!!!!!!!!!!!"))),
        ("spaces inside", with_key(Some("dGhlIHNhbXB ZSBub25jZQ=="))),
        (
            "18 bytes of base64",
            with_key(Some("AAAAAAAAAAAAAAAAAAAAAAAA")),
        ),
        (
            "padding in the middle",
            with_key(Some("dGhlIHNh==BsZSBub25jZQ==")),
        ),
    ]);
}

#[test]
fn handshakes_with_a_wrong_version_or_no_upgrade_are_refused() {
    // Another version: 426 naming ours (RFC 6455 4.2.2, as Bun), before
    // `fetch`; nothing opens.
    {
        let _guard = shared();
        let (probe, server) = probe_server(WebSocketOptions::default());
        for version in ["8", "14"] {
            let line = format!("Sec-WebSocket-Version: {version}");
            let req = request(&[GET, HOST, UPGRADE, CONNECTION, KEY, &line]);
            let answer = exchange(server.port, &[&req], Duration::ZERO);
            assert_eq!(
                answer.status(),
                Some(426),
                "version {version}: {}",
                answer.text()
            );
            assert!(
                answer.text().contains("Sec-WebSocket-Version: 13\r\n"),
                "version {version}: {}",
                answer.text()
            );
        }
        assert_eq!(probe.count_prefix("open:"), 0, "{:?}", probe.events());
    }
    let post = "POST /?name=h HTTP/1.1";
    assert_fetch_refuses(&[
        (
            "no version",
            request(&[GET, HOST, UPGRADE, CONNECTION, KEY]),
        ),
        (
            "no Upgrade header",
            request(&[GET, HOST, CONNECTION, KEY, VERSION]),
        ),
        (
            "Upgrade to something else",
            request(&[GET, HOST, "Upgrade: h2c", CONNECTION, KEY, VERSION]),
        ),
        (
            "no Connection: Upgrade",
            request(&[GET, HOST, UPGRADE, "Connection: keep-alive", KEY, VERSION]),
        ),
        (
            "POST",
            request(&[
                post,
                HOST,
                UPGRADE,
                CONNECTION,
                KEY,
                VERSION,
                "Content-Length: 0",
            ]),
        ),
    ]);
}

#[test]
fn oversized_headers_get_431_and_a_close() {
    let _guard = shared();
    let (probe, server) = probe_server(WebSocketOptions::default());
    let head = request(&[GET, HOST, UPGRADE, CONNECTION, KEY, VERSION]);
    let head = &head[..head.len() - 2]; // without the final empty line
    let header = |size: usize| format!("X-Filler: {}\r\n", "f".repeat(size));
    // 1. A 20 KiB header arriving in two reads: over the 16 KiB limit.
    let big = header(20 * 1024);
    let (first, rest) = big.as_bytes().split_at(5000);
    let code = refused_in(server.port, &[head, first, rest, b"\r\n"]);
    assert_eq!(code, 431, "20 KiB in pieces");
    // 2. More header bytes than one read of the receive buffer (512 KiB).
    let huge = [head, header(600 * 1024).as_bytes(), b"\r\n"].concat();
    assert_eq!(refused(server.port, &huge), 431, "600 KiB at once");
    // 3. More header lines than the parser takes (100).
    let many: String = (0..300)
        .map(|i| format!("X-Header-{i:03}: value\r\n"))
        .collect();
    let many = [head, many.as_bytes(), b"\r\n"].concat();
    assert_eq!(refused(server.port, &many), 431, "300 headers");
    assert_eq!(probe.count_prefix("open:"), 0, "{:?}", probe.events());
    still_serves(&server, &probe, "ok");
}

#[test]
fn malformed_requests_get_http_errors_and_a_close() {
    let _guard = shared();
    let (probe, server) = probe_server(WebSocketOptions::default());
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "no Host",
            request(&[GET, UPGRADE, CONNECTION, KEY, VERSION]),
            400,
        ),
        (
            // HTTP/1.0 is served, but cannot upgrade: fetch answers it (the
            // probe's 400) and the connection closes, as HTTP/1.0 does.
            "HTTP/1.0",
            request(&[
                "GET /?name=h HTTP/1.0",
                HOST,
                UPGRADE,
                CONNECTION,
                KEY,
                VERSION,
            ]),
            400,
        ),
        (
            "no target",
            request(&["GET HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, VERSION]),
            400,
        ),
        (
            "both Content-Length and Transfer-Encoding",
            request(&[
                GET,
                HOST,
                UPGRADE,
                CONNECTION,
                KEY,
                VERSION,
                "Content-Length: 0",
                "Transfer-Encoding: chunked",
            ]),
            400,
        ),
    ];
    for (what, req, want) in &cases {
        let answer = exchange(server.port, &[req], Duration::ZERO);
        assert_eq!(answer.status(), Some(*want), "{what}: {}", answer.text());
        assert_ne!(answer.end, End::Open, "{what}: not closed: {answer:?}");
    }
    assert_eq!(probe.count_prefix("open:"), 0, "{:?}", probe.events());
    still_serves(&server, &probe, "ok");
}

#[test]
fn garbage_bytes_get_400_and_a_close() {
    let _guard = shared();
    let (probe, server) = probe_server(WebSocketOptions::default());
    // The first bytes of a TLS ClientHello, sent to the plain port.
    let tls = [
        0x16u8, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x00, 0x01, 0x02,
    ];
    let mut noise = Vec::with_capacity(6000);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..6000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "control bytes and CRLFs",
            b"\x00\x01\x02\xff\xfe\r\n\x7f\x80\r\n\r\n".to_vec(),
        ),
        (
            "a WebSocket frame instead of a request",
            frame(FIN | TEXT, b"hello"),
        ),
        ("6000 pseudo-random bytes", noise),
        ("5000 bytes without a line end", vec![b'A'; 5000]),
        ("a TLS hello", tls.to_vec()),
        ("an empty request", b"\r\n\r\n".to_vec()),
    ];
    for (what, bytes) in &cases {
        let answer = exchange(server.port, &[bytes], Duration::ZERO);
        assert_eq!(answer.status(), Some(400), "{what}: {}", answer.text());
        assert_ne!(answer.end, End::Open, "{what}: not closed: {answer:?}");
    }
    assert_eq!(probe.count_prefix("open:"), 0, "{:?}", probe.events());
    still_serves(&server, &probe, "ok");
}

/// uWebSockets' HTTP idle timeout (`HTTP_IDLE_TIMEOUT_S`, 10 s) runs on its
/// 4 s timer: a connection that has not completed a request is closed on
/// the fourth tick after it opened (patch 0013: never early), 12 to 16 s
/// later (a second of slack on each side here). Bytes that do not complete
/// a request do not reset it.
const HTTP_IDLE_MIN: Duration = Duration::from_secs(11);
const HTTP_IDLE_MAX: Duration = Duration::from_secs(17);

/// Sends `start`, then one byte of `trickle` (if any) every 250 ms, until
/// the server ends the connection; returns what it said and when.
fn held_open(port: u16, start: &[u8], trickle: &[u8]) -> Answer {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(start).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let mut next = trickle.iter().cycle();
    let end = loop {
        if started.elapsed() > TIMEOUT {
            break End::Open;
        }
        match s.read(&mut buf) {
            Ok(0) => break End::Eof,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if let Some(b) = next.next() {
                    if s.write_all(&[*b]).is_err() {
                        break End::Reset;
                    }
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    };
    Answer {
        bytes,
        end,
        took: started.elapsed(),
    }
}

fn assert_dropped_after_http_idle_timeout(what: &str, answer: &Answer) {
    eprintln!("{what}: closed after {:?} ({:?})", answer.took, answer.end);
    assert_ne!(answer.end, End::Open, "{what}: held for {:?}", answer.took);
    assert!(answer.bytes.is_empty(), "{what}: {}", answer.text());
    assert!(
        (HTTP_IDLE_MIN..=HTTP_IDLE_MAX).contains(&answer.took),
        "{what}: closed after {:?}",
        answer.took
    );
}

#[test]
fn an_unfinished_request_is_dropped_after_the_http_idle_timeout() {
    let _guard = shared();
    let (probe, server) = probe_server(WebSocketOptions::default());
    let answer = held_open(
        server.port,
        b"GET /?name=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n",
        b"",
    );
    assert_dropped_after_http_idle_timeout("unfinished request", &answer);
    assert_eq!(probe.count_prefix("open:"), 0);
    still_serves(&server, &probe, "ok");
}

#[test]
fn a_silent_connection_is_dropped_after_the_http_idle_timeout() {
    let _guard = shared();
    let (probe, server) = probe_server(WebSocketOptions::default());
    let answer = held_open(server.port, b"", b"");
    assert_dropped_after_http_idle_timeout("silent connection", &answer);
    still_serves(&server, &probe, "ok");
}

#[test]
fn a_slow_loris_trickling_header_bytes_is_dropped_all_the_same() {
    let _guard = shared();
    let (probe, server) = probe_server(WebSocketOptions::default());
    let answer = held_open(
        server.port,
        b"GET /?name=loris HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"X-Loris: a\r\n",
    );
    assert_dropped_after_http_idle_timeout("slow loris", &answer);
    assert_eq!(probe.count_prefix("open:"), 0);
    still_serves(&server, &probe, "ok");
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

#[test]
fn an_oversized_message_fails_the_connection() {
    let f = hostile(small_payload_limit(), &[frame(FIN | BINARY, &[7u8; 1025])]);
    f.assert_failed_with(1009, "Received too big message");
}

#[test]
fn an_oversized_fragmented_message_fails_the_connection() {
    let f = hostile(
        small_payload_limit(),
        &[frame(BINARY, &[7u8; 600]), frame(FIN | CONT, &[7u8; 600])],
    );
    f.assert_failed_with(1009, "Received too big message");
}

#[test]
fn a_huge_declared_length_fails_at_once_without_waiting_for_the_payload() {
    // 2^62 bytes announced, none sent: refused on the header alone.
    let f = hostile(
        WebSocketOptions::default(),
        &[encode(FIN | BINARY, 1 << 62, &[], true)],
    );
    f.assert_failed_with(1009, "Received too big message");
}

#[test]
fn invalid_utf8_in_a_text_message_fails_the_connection() {
    let f = hostile(
        WebSocketOptions::default(),
        &[frame(FIN | TEXT, b"caf\xc3")],
    );
    f.assert_failed_with(1007, "Received invalid UTF-8");
}

#[test]
fn invalid_utf8_across_fragments_fails_the_connection() {
    // Each fragment alone is a prefix of valid UTF-8; together they are not.
    let f = hostile(
        WebSocketOptions::default(),
        &[frame(TEXT, b"ok \xe2\x82"), frame(FIN | CONT, b"\x28 no")],
    );
    f.assert_failed_with(1007, "Received invalid UTF-8");
}

#[test]
fn invalid_utf8_fails_at_the_fragment_that_brings_it() {
    // RFC 6455 8.1 (and Autobahn 6.4.x): fail fast. The message is never
    // finished here; the connection must fail at its second fragment.
    let f = hostile(
        WebSocketOptions::default(),
        &[frame(TEXT, b"echo fine"), frame(CONT, b" then \xf5 bad")],
    );
    f.assert_failed_with(1007, "Received invalid UTF-8");
    // Also inside one frame whose payload arrives in pieces: the frame
    // announces 100 bytes, 20 come, the 11th is invalid.
    let mut payload = b"echo 12345".to_vec();
    payload.extend_from_slice(b"\xc0 and more");
    let mut partial = encode(FIN | TEXT, 100, &payload, true);
    partial.truncate(partial.len() - 2);
    let f = hostile(WebSocketOptions::default(), &[partial]);
    f.assert_failed_with(1007, "Received invalid UTF-8");
}

#[test]
fn characters_split_between_fragments_are_put_back_together() {
    let _guard = shared();
    let (probe, server) = probe_server(WebSocketOptions::default());
    let mut raw = Raw::open(server.port, "a");
    wait_for("open", || probe.has("open:a"));
    // "echo é😀€" with é (2 bytes), 😀 (4) and € (3) cut across fragments,
    // each fragment its own read.
    let text = "echo é😀€".as_bytes();
    let cuts = [6usize, 8, 10, 12, 13];
    let mut start = 0;
    for (i, &cut) in cuts.iter().chain([text.len()].iter()).enumerate() {
        let opcode = if i == 0 { TEXT } else { CONT };
        let fin = if cut == text.len() { FIN } else { 0 };
        raw.send(&frame(fin | opcode, &text[start..cut]));
        std::thread::sleep(Duration::from_millis(20));
        start = cut;
    }
    wait_for("the message", || probe.has("message:a:echo é😀€"));
    let mut got = std::mem::take(&mut raw.pending);
    let mut buf = [0u8; 64];
    while server_frames(&got).is_empty() {
        let n = raw.stream.read(&mut buf).expect("the echo");
        assert!(n > 0, "closed: {:?}", probe.events());
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        server_frames(&got),
        vec![(FIN | TEXT, "é😀€".as_bytes().to_vec())]
    );
    assert_eq!(probe.count_prefix("close:a:"), 0, "{:?}", probe.events());
}

#[test]
fn a_text_message_that_ends_inside_a_character_fails_with_1007() {
    let f = hostile(
        WebSocketOptions::default(),
        &[frame(TEXT, b"echo caf"), frame(FIN | CONT, b"\xc3")],
    );
    f.assert_failed_with(1007, "Received invalid UTF-8");
}

#[test]
fn invalid_utf8_in_a_close_reason_is_answered_with_1007() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye \xff\xfe");
    let f = hostile(WebSocketOptions::default(), &[frame(FIN | CLOSE, &payload)]);
    f.assert_failed_with(1007, "Received invalid close payload");
}

#[test]
fn a_close_frame_with_a_forbidden_code_or_one_byte_is_answered_with_1002() {
    let mut payloads: Vec<Vec<u8>> = [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]
        .iter()
        .map(|c| c.to_be_bytes().to_vec())
        .collect();
    payloads.push(vec![0x03]);
    for payload in payloads {
        let f = hostile(WebSocketOptions::default(), &[frame(FIN | CLOSE, &payload)]);
        f.assert_failed_with(1002, "Received invalid close payload");
    }
}

#[test]
fn close_frames_with_codes_a_peer_may_send_are_echoed() {
    for code in [
        1000u16, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 3999, 4000, 4999,
    ] {
        let f = hostile(
            WebSocketOptions::default(),
            &[frame(FIN | CLOSE, &code.to_be_bytes())],
        );
        assert_eq!(f.end, End::Eof, "{code}: {f:?}");
        let close = f.close_frame().expect("a close frame");
        assert_eq!(close.1, code.to_be_bytes(), "{code}: {f:?}");
        assert_eq!(f.close, format!("close:a:{code}:"), "{code}: {f:?}");
    }
}

#[test]
fn an_empty_close_frame_is_answered_with_an_empty_one() {
    let f = hostile(WebSocketOptions::default(), &[frame(FIN | CLOSE, b"")]);
    assert_eq!(f.end, End::Eof, "{f:?}");
    assert_eq!(f.close_frame().expect("a close frame").1, b"", "{f:?}");
    assert_eq!(f.close, "close:a:1005:", "{f:?}");
}

#[test]
fn a_valid_close_frame_is_echoed_and_reported() {
    // The counterpart of the refusals above: a proper close frame.
    let mut payload = 4321u16.to_be_bytes().to_vec();
    payload.extend_from_slice("au revoir é".as_bytes());
    let f = hostile(WebSocketOptions::default(), &[frame(FIN | CLOSE, &payload)]);
    assert_eq!(f.end, End::Eof, "{f:?}");
    let close = f.close_frame().expect("a close frame");
    assert_eq!(close.1, payload, "{f:?}");
    assert_eq!(f.close, "close:a:4321:au revoir é");
}

#[test]
fn reserved_bits_fail_the_connection() {
    for rsv in [RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3] {
        let f = hostile(
            WebSocketOptions::default(),
            &[frame(FIN | rsv | TEXT, b"hello")],
        );
        f.assert_failed_with(1002, "Received invalid frame");
        assert!(
            !f.events.iter().any(|e| e.starts_with("message:a:")),
            "{f:?}"
        );
    }
}

#[test]
fn reserved_opcodes_fail_the_connection() {
    for opcode in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        let f = hostile(WebSocketOptions::default(), &[frame(FIN | opcode, b"x")]);
        f.assert_failed_with(1002, "Received invalid frame");
    }
}

#[test]
fn a_control_frame_over_125_bytes_fails_the_connection() {
    let f = hostile(
        WebSocketOptions::default(),
        &[frame(FIN | PING, &[b'p'; 126])],
    );
    f.assert_failed_with(1002, "Received invalid frame");
    assert!(!f.events.iter().any(|e| e.starts_with("ping:a:")), "{f:?}");
    assert_eq!(f.frames.len(), 1, "only the close frame, no pong: {f:?}");
}

#[test]
fn a_fragmented_control_frame_fails_the_connection() {
    let f = hostile(
        WebSocketOptions::default(),
        &[frame(PING, b"half"), frame(FIN | CONT, b"half")],
    );
    f.assert_failed_with(1002, "Received invalid frame");
    assert!(!f.events.iter().any(|e| e.starts_with("ping:a:")), "{f:?}");
}

#[test]
fn a_continuation_without_a_start_fails_the_connection() {
    let f = hostile(
        WebSocketOptions::default(),
        &[frame(FIN | CONT, b"echo orphan")],
    );
    f.assert_failed_with(1002, "Received invalid frame");
    assert!(
        !f.events.iter().any(|e| e.starts_with("message:a:")),
        "{f:?}"
    );
}

#[test]
fn a_new_message_inside_a_fragmented_one_fails_the_connection() {
    let f = hostile(
        WebSocketOptions::default(),
        &[frame(TEXT, b"echo one"), frame(FIN | TEXT, b"echo two")],
    );
    f.assert_failed_with(1002, "Received invalid frame");
}

#[test]
fn a_message_before_a_protocol_error_in_the_same_read_is_answered_first() {
    // The message handler runs first and its echo goes out, then the
    // error's close frame (Autobahn 3.2-4.2.5 and 5.15 check this order).
    // uWebSockets v20.58.0 closed the socket without writing out what it
    // had corked: the echo was lost.
    let bytes = [frame(FIN | TEXT, b"echo hi"), frame(FIN | 0x5, b"bad")].concat();
    let f = hostile(WebSocketOptions::default(), &[bytes]);
    f.assert_failed_with(1002, "Received invalid frame");
    assert_eq!(f.frames.len(), 2, "{f:?}");
    assert_eq!(f.frames[0], (FIN | TEXT, b"hi".to_vec()), "{f:?}");
    let message = f.events.iter().position(|e| e == "message:a:echo hi");
    let close = f.events.iter().position(|e| e.starts_with("close:a:"));
    assert!(message.is_some() && message < close, "{f:?}");
}

fn disconnect_after(chunks: &[Vec<u8>]) -> Failed {
    hostile_then(WebSocketOptions::default(), chunks, |raw| {
        std::thread::sleep(Duration::from_millis(20));
        raw.stream.shutdown(Shutdown::Both).unwrap();
    })
}

#[test]
fn a_peer_vanishing_mid_frame_closes_once_with_1006() {
    let mut partial = frame(FIN | TEXT, &[b'x'; 100]);
    partial.truncate(30);
    for chunks in [
        vec![partial],
        vec![vec![FIN | TEXT]],
        vec![frame(TEXT, b"echo first half")],
        vec![encode(FIN | BINARY, 70_000, &[1u8; 10_000], true)],
    ] {
        let f = disconnect_after(&chunks);
        assert_eq!(f.close, "close:a:1006:", "{f:?}");
        assert!(
            !f.events.iter().any(|e| e.starts_with("message:a:")),
            "{f:?}"
        );
    }
}

#[test]
fn a_peer_vanishing_between_messages_closes_once_with_1006() {
    let f = disconnect_after(&[frame(FIN | TEXT, b"echo hi")]);
    assert_eq!(f.close, "close:a:1006:", "{f:?}");
    assert!(f.events.iter().any(|e| e == "message:a:echo hi"), "{f:?}");
}

#[test]
fn unmasked_client_frames_fail_the_connection_with_1002() {
    // RFC 6455 5.1: a server must fail the connection on an unmasked client
    // frame. uWebSockets v20.58.0 did not look at the mask bit: it read
    // every client frame as masked, so the first four payload bytes of an
    // unmasked frame became its mask (here, an unmasked 4-byte text frame
    // carrying zeros followed by "data" was read as the message "data").
    let mut bytes = encode(FIN | TEXT, 4, &[0, 0, 0, 0], false);
    bytes.extend_from_slice(b"data");
    let f = hostile(WebSocketOptions::default(), &[bytes]);
    f.assert_failed_with(1002, "Received unmasked frame");
    assert!(
        !f.events.iter().any(|e| e.starts_with("message:a:")),
        "{f:?}"
    );
    // Also after a masked message, and for control frames.
    for second in [
        encode(FIN | TEXT, 7, b"echo hi", false),
        encode(FIN | PING, 2, b"hi", false),
    ] {
        let f = hostile(
            WebSocketOptions::default(),
            &[[frame(FIN | TEXT, b"echo first"), second].concat()],
        );
        f.assert_failed_with(1002, "Received unmasked frame");
        assert_eq!(f.frames[0], (FIN | TEXT, b"first".to_vec()), "{f:?}");
    }
}

// ---------------------------------------------------------------------------
// Slow readers
// ---------------------------------------------------------------------------

/// What one flood did: how many sends returned each status, and the most
/// that was buffered at once.
#[derive(Debug, Clone, Copy)]
struct Flooded {
    sent: usize,
    backpressure: usize,
    dropped: usize,
    max_buffered: usize,
}

/// Sends as asked, whatever the status: a flood that ignores backpressure,
/// so the server's own limit is what bounds memory.
#[derive(Clone, Default)]
struct Flood {
    results: Arc<Mutex<Vec<Flooded>>>,
    closes: Arc<Mutex<Vec<(u16, String)>>>,
    opens: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

const FLOOD_MESSAGE: usize = 64 * 1024;

impl WebSocketHandler for Flood {
    type Data = Counted;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Counted>) -> Response {
        if server.upgrade(req, UpgradeOptions::new(Counted(self.drops.clone()))) {
            return Response::new("");
        }
        Response::new("no").with_status(400)
    }

    fn open(&self, _ws: &mut ServerWebSocket<Counted>) {
        self.opens.fetch_add(1, Ordering::SeqCst);
    }

    fn message(&self, ws: &mut ServerWebSocket<Counted>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        if let Some(n) = text.strip_prefix("flood ") {
            let n: usize = n.parse().unwrap();
            let payload = vec![b'z'; FLOOD_MESSAGE];
            let mut f = Flooded {
                sent: 0,
                backpressure: 0,
                dropped: 0,
                max_buffered: 0,
            };
            for _ in 0..n {
                match ws.send_binary(&payload) {
                    SendStatus::Sent(_) => f.sent += 1,
                    SendStatus::Backpressure => f.backpressure += 1,
                    SendStatus::Dropped => f.dropped += 1,
                }
                f.max_buffered = f.max_buffered.max(ws.buffered_amount());
            }
            self.results.lock().unwrap().push(f);
        }
    }

    fn close(&self, _ws: &mut ServerWebSocket<Counted>, code: u16, reason: &str) {
        self.closes.lock().unwrap().push((code, reason.to_string()));
    }
}

const SLOW_READERS: usize = 8;
/// Per slow reader: 48 MiB offered, far past the limit.
const FLOOD_COUNT: usize = 768;

/// Opens `SLOW_READERS` clients that ask for a flood and never read; returns
/// them (still open) with the RSS growth the floods caused.
fn flood_slow_readers(server: &Running<Counted>, flood: &Flood) -> (Vec<TcpStream>, usize, usize) {
    // Warm up: one full connection cycle, so first-use allocations are in
    // the baseline.
    {
        let mut c = connect(&server.url("/"));
        c.send(M::text("hello")).unwrap();
        c.close(None).unwrap();
        let _ = recv_close(&mut c);
        wait_for("warm-up close", || flood.drops.load(Ordering::SeqCst) == 1);
    }
    let before = rss();
    let mut clients = Vec::new();
    for _ in 0..SLOW_READERS {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(&handshake("/", "")).unwrap();
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(status_of(&got), Some(101));
        s.write_all(&frame(
            FIN | TEXT,
            format!("flood {FLOOD_COUNT}").as_bytes(),
        ))
        .unwrap();
        clients.push(s);
    }
    wait_for("every flood", || {
        flood.results.lock().unwrap().len() == SLOW_READERS
    });
    let after = rss();
    (clients, before, after)
}

#[test]
fn a_slow_reader_costs_at_most_about_the_backpressure_limit() {
    let _guard = exclusive();
    let limit = 1 << 20;
    let flood = Flood::default();
    let mut server = start(
        WebSocketOptions {
            backpressure_limit: limit,
            ..Default::default()
        },
        flood.clone(),
    );
    let (clients, before, after) = flood_slow_readers(&server, &flood);
    let growth = after.saturating_sub(before);
    let results = flood.results.lock().unwrap().clone();
    eprintln!(
        "slow readers: RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB for {SLOW_READERS} sockets, \
         limit {:.1} MiB each, {:.0} MiB offered each); floods: {results:?}",
        mib(before),
        mib(after),
        mib(growth),
        mib(limit),
        mib(FLOOD_COUNT * FLOOD_MESSAGE)
    );
    for f in &results {
        assert_eq!(f.sent + f.backpressure + f.dropped, FLOOD_COUNT);
        assert!(f.dropped > 0, "the limit was never reached: {results:?}");
        // Over the limit by at most the message that crossed it.
        assert!(f.max_buffered <= limit + FLOOD_MESSAGE + 14, "{results:?}");
    }
    // Per socket: about the limit (1.5 times, for the buffer's spare
    // capacity), plus a few MiB for the process as a whole. Unbounded, the
    // floods would take about 48 MiB per socket.
    let bound = SLOW_READERS * (limit + limit / 2) + (4 << 20);
    assert!(
        growth <= bound,
        "RSS grew by {:.1} MiB, more than {:.1} MiB",
        mib(growth),
        mib(bound)
    );
    // Without close_on_backpressure_limit the sockets stay open (the one
    // close so far is the warm-up client's).
    assert_eq!(flood.closes.lock().unwrap().len(), 1);
    drop(clients);
    wait_for("every close", || {
        flood.drops.load(Ordering::SeqCst) == SLOW_READERS + 1
    });
    let closed = rss();
    eprintln!("slow readers: RSS after they closed {:.1} MiB", mib(closed));
    server.stop();
    assert_eq!(flood.opens.load(Ordering::SeqCst), SLOW_READERS + 1);
    assert_eq!(flood.drops.load(Ordering::SeqCst), SLOW_READERS + 1);
}

#[test]
fn close_on_backpressure_limit_closes_a_slow_reader() {
    let _guard = exclusive();
    let limit = 1 << 20;
    let flood = Flood::default();
    let mut server = start(
        WebSocketOptions {
            backpressure_limit: limit,
            close_on_backpressure_limit: true,
            ..Default::default()
        },
        flood.clone(),
    );
    let (mut clients, before, after) = flood_slow_readers(&server, &flood);
    let growth = after.saturating_sub(before);
    eprintln!(
        "slow readers closed on the limit: RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB); \
         floods: {:?}; closes: {:?}",
        mib(before),
        mib(after),
        mib(growth),
        flood.results.lock().unwrap(),
        flood.closes.lock().unwrap()
    );
    let bound = SLOW_READERS * (limit + limit / 2) + (4 << 20);
    assert!(growth <= bound, "RSS grew by {:.1} MiB", mib(growth));
    wait_for("every slow reader closed", || {
        flood.closes.lock().unwrap().len() == SLOW_READERS + 1
    });
    // The clients see the connection end, without having read anything.
    for c in &mut clients {
        let mut buf = vec![0u8; 1 << 20];
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "the connection stayed open");
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
    wait_for("every drop", || {
        flood.drops.load(Ordering::SeqCst) == SLOW_READERS + 1
    });
    server.stop();
    let closes = flood.closes.lock().unwrap().clone();
    assert_eq!(closes.len(), SLOW_READERS + 1, "{closes:?}");
    assert_eq!(flood.drops.load(Ordering::SeqCst), SLOW_READERS + 1);
}
