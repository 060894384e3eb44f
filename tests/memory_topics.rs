//! Memory after a burst of topics: once 200 000 topics were made and every
//! socket that held them left, the server gives most of that memory back.
//! Alone in its test binary, so that nothing else moves the process's RSS
//! while it measures.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use uws::{
    Message, Request, Response, Server, ServerWebSocket, WebSocketHandler, WebSocketOptions,
};

/// Resident memory of this process, in bytes (VmRSS).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

const SOCKETS: usize = 100;
const TOPICS_EACH: usize = 2000;

/// On `sub N`: subscribes to TOPICS_EACH topics of its own (`room-N-i`),
/// then answers `ok`.
#[derive(Clone, Default)]
struct Topics {
    subscribed: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl WebSocketHandler for Topics {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        accept_upgrade(req, server)
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        if let Message::Text(t) = message {
            if let Some(n) = t.strip_prefix("sub ") {
                for i in 0..TOPICS_EACH {
                    ws.subscribe(&format!("a-fairly-long-room-name-{n}-{i}"));
                }
                self.subscribed.fetch_add(1, Ordering::SeqCst);
                ws.send_text("ok");
            }
        }
    }

    fn close(&self, _ws: &mut ServerWebSocket<()>, _code: u16, _reason: &str) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut out = vec![0x81, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn open(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&handshake("/", "")).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed during the handshake");
        got.push(byte[0]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101 "));
    s
}

#[test]
fn memory_comes_back_after_a_burst_of_topics() {
    let topics = Topics::default();
    let server = start(WebSocketOptions::default(), topics.clone());
    // Warm up: one socket with a few topics, gone again.
    {
        let mut s = open(server.port);
        s.write_all(&text_frame(b"sub warm")).unwrap();
        let mut ok = [0u8; 4];
        s.read_exact(&mut ok).unwrap();
    }
    wait_for("the warm-up socket to close", || {
        topics.closed.load(Ordering::SeqCst) == 1
    });
    let baseline = rss();
    let mut sockets: Vec<TcpStream> = (0..SOCKETS).map(|_| open(server.port)).collect();
    for (i, s) in sockets.iter_mut().enumerate() {
        s.write_all(&text_frame(format!("sub {i}").as_bytes()))
            .unwrap();
    }
    for s in sockets.iter_mut() {
        let mut ok = [0u8; 4];
        s.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"\x81\x02ok");
    }
    let peak = rss();
    drop(sockets);
    wait_for("every socket to close", || {
        topics.closed.load(Ordering::SeqCst) == SOCKETS + 1
    });
    // One more socket: the loop has gone round after the last close.
    drop(open(server.port));
    let after = rss();
    eprintln!(
        "baseline {:.1} MiB, with {} topics {:.1} MiB, after {:.1} MiB",
        mib(baseline),
        SOCKETS * TOPICS_EACH,
        mib(peak),
        mib(after)
    );
    let grown = peak.saturating_sub(baseline);
    assert!(
        grown > 20 << 20,
        "the topics took too little to tell: {}",
        mib(grown)
    );
    assert!(
        after.saturating_sub(baseline) < grown / 4,
        "kept {:.1} of the {:.1} MiB the topics took",
        mib(after.saturating_sub(baseline)),
        mib(grown)
    );
}
