//! Where a user sees the server behave as Bun's: a handshake with a
//! WebSocket version we do not speak gets 426 (RFC 6455 4.2.2); requests
//! with up to 198 header fields are accepted (Bun's limit); responses
//! carry no version banner; an idle socket is never closed before its
//! idle timeout.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::parse_replies;
use common::{accept_upgrade, handshake, raw_exchange, start, TIMEOUT};
use uws::{Request, Response, Server, WebSocketHandler, WebSocketOptions};

/// Upgrades handshakes; plain requests get 200 "plain" with the number of
/// headers they had.
struct Plain;

impl WebSocketHandler for Plain {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        if req.header("upgrade").is_some() {
            return accept_upgrade(req, server);
        }
        Response::new(format!("plain {}", req.headers().len()))
    }
}

#[test]
fn an_unsupported_websocket_version_gets_426_naming_13() {
    let server = start(WebSocketOptions::default(), Plain);
    let request = String::from_utf8(handshake("/", ""))
        .unwrap()
        .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let bytes = raw_exchange(server.port, request.as_bytes());
    let (replies, _) = parse_replies(&bytes);
    assert_eq!(replies.len(), 1, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(replies[0].status, 426);
    assert_eq!(replies[0].header("sec-websocket-version"), Some("13"));
    // Version 13 still upgrades.
    let bytes = raw_exchange(server.port, &handshake("/", ""));
    assert!(
        bytes.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

fn with_headers(n: usize) -> Vec<u8> {
    // Host plus n - 1 more.
    let mut r = String::from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 2..n {
        r.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

#[test]
fn requests_with_up_to_198_header_fields_are_accepted() {
    let server = start(WebSocketOptions::default(), Plain);
    for n in [98, 99, 150, 198] {
        let bytes = raw_exchange(server.port, &with_headers(n));
        let (replies, _) = parse_replies(&bytes);
        assert_eq!(
            replies.len(),
            1,
            "{n} headers: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(replies[0].status, 200, "{n} headers");
        assert_eq!(replies[0].text(), format!("plain {n}"));
    }
    let bytes = raw_exchange(server.port, &with_headers(199));
    assert!(
        bytes.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn responses_carry_no_version_banner() {
    let server = start(WebSocketOptions::default(), Plain);
    let ok = raw_exchange(
        server.port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let upgrade = raw_exchange(server.port, &handshake("/", ""));
    let bad = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n");
    for bytes in [ok, upgrade, bad] {
        let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 "), "{text}");
        assert!(!text.contains("uwebsockets"), "{text}");
    }
}

#[test]
fn an_idle_websocket_is_not_closed_before_its_idle_timeout() {
    let idle = 8u64;
    let server = start(
        WebSocketOptions {
            idle_timeout: idle as u32,
            ..Default::default()
        },
        Plain,
    );
    // uSockets checks timeouts every 4 s from the loop's start: a socket
    // opened right after a check is the lucky case. Open the first 2 s
    // into the period (the second one opens wherever the first ended).
    std::thread::sleep(Duration::from_secs(2));
    // A client that never answers pings: only the idle timeout can end it.
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(TIMEOUT * 2)).unwrap();
        s.write_all(&handshake("/", "")).unwrap();
        let last_sent = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let lived = last_sent.elapsed();
        assert!(
            lived >= Duration::from_secs(idle),
            "closed after {lived:?} of silence, before the {idle} s idle timeout"
        );
        assert!(lived < TIMEOUT * 2, "never closed");
    }
}
