//! WebSocket frames that arrive with the handshake (in the same write, or
//! while a deferred upgrade is still pending) belong to the new socket:
//! they are delivered to `message` once it opens, in order, never parsed
//! as HTTP.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{accept_upgrade, handshake, start, TIMEOUT};
use uws::{
    Message, Request, Response, Server, ServerWebSocket, UpgradeOptions, WebSocketHandler,
    WebSocketOptions,
};

/// `/sync` upgrades in `fetch`, `/defer` 100 ms later from a timer;
/// messages are echoed.
struct Echo;

impl WebSocketHandler for Echo {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        if req.path() == "/sync" {
            return accept_upgrade(req, server);
        }
        let pending = server.defer_request(req).expect("defer");
        server.set_timeout(Duration::from_millis(100), move |_| {
            pending.upgrade(UpgradeOptions::new(())).expect("upgrade");
        });
        Response::new("")
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        ws.send(message, false);
    }
}

/// A masked client frame (zero mask) with this first byte and payload.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// Sends `writes` (30 ms apart) and reads until the 101 head and
/// `expect` more bytes came (or the connection ends); returns the status
/// line and the bytes after the head.
fn exchange(writes: &[Vec<u8>], expect: usize) -> (String, Vec<u8>) {
    let server = start(WebSocketOptions::default(), Echo);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    for (i, w) in writes.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
        s.write_all(w).unwrap();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= end + 4 + expect {
                let status =
                    String::from_utf8_lossy(&got[..got.iter().position(|&b| b == b'\r').unwrap()])
                        .into_owned();
                return (status, got[end + 4..].to_vec());
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                return (String::from_utf8_lossy(&got).into_owned(), Vec::new());
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn with_frames(path: &str, frames: &[&[u8]]) -> Vec<u8> {
    let mut bytes = handshake(path, "");
    for f in frames {
        bytes.extend_from_slice(&masked(0x82, f));
    }
    bytes
}

fn echoed(frames: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.push(0x82);
        out.push(f.len() as u8);
        out.extend_from_slice(f);
    }
    out
}

#[test]
fn a_frame_in_the_same_write_as_a_synchronous_upgrade_is_echoed() {
    let frames: [&[u8]; 2] = [b"early", b"second"];
    let want = echoed(&frames);
    let (status, rest) = exchange(&[with_frames("/sync", &frames)], want.len());
    assert_eq!(status, "HTTP/1.1 101 Switching Protocols");
    assert_eq!(rest, want);
}

#[test]
fn a_frame_in_the_same_write_as_a_deferred_upgrade_is_echoed() {
    let frames: [&[u8]; 2] = [b"early", b"second"];
    let want = echoed(&frames);
    let (status, rest) = exchange(&[with_frames("/defer", &frames)], want.len());
    assert_eq!(status, "HTTP/1.1 101 Switching Protocols");
    assert_eq!(rest, want);
}

#[test]
fn frames_sent_while_a_deferred_upgrade_is_pending_are_echoed_in_order() {
    let want = echoed(&[b"early", b"later"]);
    let (status, rest) = exchange(
        &[with_frames("/defer", &[b"early"]), masked(0x82, b"later")],
        want.len(),
    );
    assert_eq!(status, "HTTP/1.1 101 Switching Protocols");
    assert_eq!(rest, want);
}
