//! Nothing is lost on the way to a slow reader: what a socket cannot take
//! at once is buffered and sent later, in order, whether it was written
//! while corked or not (vendor/patches/0001).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use uws::{
    Message, Request, Response, ServeOptions, Server, ServerWebSocket, WebSocketHandler,
    WebSocketOptions,
};

/// The bytes of message (or response body) `index`, `len` long: its index
/// up front, then a pattern that differs from one message to the next, so
/// that a missing, repeated or reordered piece shows.
fn pattern(index: u32, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    out.extend(index.to_be_bytes().iter().take(len));
    let mut x = index.wrapping_mul(2_654_435_761).wrapping_add(12345);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(x as u8);
    }
    out
}

/// Sends, inside one cork, the messages a slow reader asked for:
/// `burst N` sends N binary messages of varied sizes (from a few bytes,
/// which fit the cork buffer, to several hundred KiB, which do not).
struct Burst;

fn burst_size(i: u32) -> usize {
    [3usize, 100, 5000, 16 * 1024 - 20, 70_000, 300_000, 1 << 20][i as usize % 7]
}

impl WebSocketHandler for Burst {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        accept_upgrade(req, server)
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        let Some(n) = text.strip_prefix("burst ") else {
            return;
        };
        let n: u32 = n.parse().unwrap();
        ws.cork(|ws| {
            for i in 0..n {
                ws.send_binary(&pattern(i, burst_size(i)));
            }
        });
    }
}

#[test]
fn corked_sends_to_a_slow_reader_arrive_whole_and_in_order() {
    let server = start(
        WebSocketOptions {
            backpressure_limit: 0,
            ..Default::default()
        },
        Burst,
    );
    let mut c = connect(&server.url("/"));
    const N: u32 = 70;
    c.send(tungstenite::Message::text(format!("burst {N}")))
        .unwrap();
    // Read nothing for a while: the socket's kernel buffers fill up and the
    // rest waits in uWebSockets' buffer.
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..N {
        match recv(&mut c) {
            tungstenite::Message::Binary(b) => {
                assert_eq!(b.len(), burst_size(i), "message {i}: wrong length");
                assert!(
                    b[..] == pattern(i, burst_size(i))[..],
                    "message {i}: wrong bytes"
                );
            }
            other => panic!("message {i}: {other:?}"),
        }
    }
}

/// Answers `GET /blob?i=I&n=N` with a response whose headers nearly fill
/// uWebSockets' 16 KiB cork buffer and whose body is `pattern(I, N)`.
struct Blobs;

const PAD: usize = 15 * 1024;

impl WebSocketHandler for Blobs {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, _server: &Server<()>) -> Response {
        let i: u32 = req.query_param("i").unwrap().parse().unwrap();
        let n: usize = req.query_param("n").unwrap().parse().unwrap();
        Response::new(pattern(i, n)).with_header("X-Pad", "p".repeat(PAD))
    }
}

/// Reads one response head from `s`; returns its Content-Length.
fn read_head(s: &mut UnixStream) -> usize {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("a response head");
        head.push(byte[0]);
        assert!(head.len() < 64 * 1024, "no end of head");
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 "), "{head:.200}");
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length in {head:.200}"))
}

#[test]
fn responses_written_while_the_peer_is_slow_arrive_whole_and_in_order() {
    // A response is written corked: status and headers go to the cork
    // buffer, then the body, too big for it, makes uWebSockets flush the
    // cork buffer and write the body. When the socket's kernel buffer is
    // nearly full at that moment (the peer has not read the previous
    // response's tail yet, but all of it is in the kernel), the flush gets
    // only part of the headers out; the rest must be buffered, and the body
    // behind it. Where exactly the kernel buffer is nearly full depends on
    // its size, so the unread tail sweeps over a range: with a unix socket
    // the kernel buffer has a fixed size (net.core.wmem_default).
    let dir = std::env::temp_dir().join(format!("uws-bp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let _ = std::fs::remove_file(&path);
    let server = start_with(
        ServeOptions {
            unix: Some(path.clone()),
            ..Default::default()
        },
        Blobs,
    );
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    const BODY: usize = 600 * 1024;
    let request = |i: u32| format!("GET /blob?i={i}&n={BODY} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(request(0).as_bytes()).unwrap();
    let mut i = 0u32;
    // Unread tails from 0 to 512 KiB, 4 KiB apart (the window where the
    // flush fails is about 15 KiB wide: the headers in the cork buffer).
    for tail in (0..=512 * 1024).step_by(4096) {
        let len = read_head(&mut s);
        assert_eq!(len, BODY, "response {i}");
        let mut body = vec![0u8; len];
        s.read_exact(&mut body[..len - tail]).unwrap();
        // Let the server move its buffered rest into the kernel, then ask
        // for the next response while the tail is still unread.
        std::thread::sleep(Duration::from_millis(15));
        s.write_all(request(i + 1).as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(15));
        s.read_exact(&mut body[len - tail..]).unwrap();
        assert!(
            body == pattern(i, BODY),
            "response {i} (unread tail {tail}) is not what was sent"
        );
        i += 1;
    }
    let len = read_head(&mut s);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    assert!(body == pattern(i, BODY), "last response");
    // Nothing else arrives.
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut extra = [0u8; 64];
    match s.read(&mut extra) {
        Ok(0) => {}
        Ok(n) => panic!("{n} unexpected bytes"),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        ),
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
