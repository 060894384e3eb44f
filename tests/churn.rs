//! Connection churn: 20 000 connect / send / disconnect cycles against one
//! server, in four styles (clean close, abrupt drop after an echo, a raw
//! client that leaves after its echo, a raw client that leaves mid-frame).
//! Every socket opens, closes and drops its data exactly once, and the
//! process's resident memory stays flat.
//!
//! One test in this binary, so that nothing else moves the process's RSS
//! while it is measured.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tungstenite::Message as M;
use uws::{
    Message, Request, Response, Server, ServerWebSocket, UpgradeOptions, WebSocketHandler,
    WebSocketOptions,
};

/// Counts what happens, without keeping a log that would itself grow.
#[derive(Clone, Default)]
struct Counts {
    opens: Arc<AtomicUsize>,
    messages: Arc<AtomicUsize>,
    /// Close handlers by kind: client's close frame (1000), lost
    /// connection (1006), anything else.
    clean: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
    other: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

impl Counts {
    fn get(a: &AtomicUsize) -> usize {
        a.load(Ordering::SeqCst)
    }

    fn closes(&self) -> usize {
        Self::get(&self.clean) + Self::get(&self.lost) + Self::get(&self.other)
    }

    fn summary(&self) -> String {
        format!(
            "opens {} messages {} closes 1000:{} 1006:{} other:{} drops {}",
            Self::get(&self.opens),
            Self::get(&self.messages),
            Self::get(&self.clean),
            Self::get(&self.lost),
            Self::get(&self.other),
            Self::get(&self.drops)
        )
    }
}

/// Per-socket data: a little heap, counted when dropped.
struct Data {
    _label: String,
    drops: Arc<AtomicUsize>,
}

impl Drop for Data {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl WebSocketHandler for Counts {
    type Data = Data;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Data>) -> Response {
        let data = Data {
            _label: req.path_and_query().to_owned(),
            drops: self.drops.clone(),
        };
        if server.upgrade(req, UpgradeOptions::new(data)) {
            return Response::new("");
        }
        Response::new("no").with_status(400)
    }

    fn open(&self, _ws: &mut ServerWebSocket<Data>) {
        self.opens.fetch_add(1, Ordering::SeqCst);
    }

    fn message(&self, ws: &mut ServerWebSocket<Data>, message: Message<'_>) {
        self.messages.fetch_add(1, Ordering::SeqCst);
        ws.send(message);
    }

    fn close(&self, _ws: &mut ServerWebSocket<Data>, code: u16, _reason: &str) {
        let counter = match code {
            1000 => &self.clean,
            1006 => &self.lost,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// Cycles measured; `CHURN_CYCLES` sets another count (a longer soak).
fn cycles() -> usize {
    std::env::var("CHURN_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}
const WARM_UP: usize = 2_000;
const THREADS: usize = 4;
const STYLES: usize = 4;
/// The whole run of the default 20 000 cycles (warm-up included) must fit
/// in this; longer soaks get proportionally more.
const BUDGET: Duration = Duration::from_secs(60);

fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<usize>().ok())
        .expect("VmRSS")
        * 1024
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

const MASK: [u8; 4] = [0x0f, 0x5a, 0xc3, 0x96];

fn masked_text(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut out = vec![0x81, 0x80 | payload.len() as u8];
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A raw connection with a completed handshake; returns it with any bytes
/// read past the response.
fn raw_open(port: u16, path: &str) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&handshake(path, "")).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).expect("handshake response");
        assert!(n > 0, "closed during the handshake");
        got.extend_from_slice(&buf[..n]);
    };
    assert!(
        got.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    (s, got[end..].to_vec())
}

/// One connect / send / disconnect cycle in style `n % STYLES`. Returns
/// whether it sent a complete message (the server then counts it).
fn cycle(port: u16, n: usize) -> bool {
    let url = format!("ws://127.0.0.1:{port}/c/{n}");
    match n % STYLES {
        // A real client, echo, then the closing handshake.
        0 => {
            let mut c = connect(&url);
            c.send(M::text(format!("hello {n}"))).unwrap();
            assert_eq!(recv_text(&mut c), format!("hello {n}"));
            c.close(close_frame(1000, "done")).unwrap();
            // Until the server's close frame; then the stream ends.
            loop {
                match c.read() {
                    Ok(_) => continue,
                    Err(tungstenite::Error::ConnectionClosed) => break,
                    Err(e) => panic!("cycle {n}: {e}"),
                }
            }
            true
        }
        // A real client, echo, then the TCP connection just goes away.
        1 => {
            let mut c = connect(&url);
            c.send(M::binary(vec![n as u8; 64])).unwrap();
            assert_eq!(recv(&mut c), M::binary(vec![n as u8; 64]));
            drop(c);
            true
        }
        // A raw client: a frame, its echo, then shutdown.
        2 => {
            let (mut s, mut got) = raw_open(port, &format!("/r/{n}"));
            s.write_all(&masked_text(b"raw ping")).unwrap();
            let want = [&[0x81u8, 8][..], b"raw ping"].concat();
            let mut buf = [0u8; 64];
            while got.len() < want.len() {
                let k = s.read(&mut buf).expect("echo");
                assert!(k > 0, "closed before the echo");
                got.extend_from_slice(&buf[..k]);
            }
            assert_eq!(got, want);
            let _ = s.shutdown(Shutdown::Both);
            true
        }
        // A raw client that leaves in the middle of a frame.
        _ => {
            let (mut s, _) = raw_open(port, &format!("/m/{n}"));
            let mut half = masked_text(&[b'h'; 100]);
            half.truncate(40);
            s.write_all(&half).unwrap();
            let _ = s.shutdown(Shutdown::Both);
            false
        }
    }
}

/// Runs cycles `from..to` on `THREADS` client threads; returns how many
/// sent a complete message.
fn churn(port: u16, from: usize, to: usize) -> usize {
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut sent = 0;
                let mut n = from + t;
                while n < to {
                    if cycle(port, n) {
                        sent += 1;
                    }
                    n += THREADS;
                }
                sent
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .sum()
}

/// Waits until the server has closed and dropped `total` sockets.
fn settle(counts: &Counts, total: usize) {
    let deadline = Instant::now() + TIMEOUT;
    while Counts::get(&counts.drops) < total || counts.closes() < total {
        assert!(
            Instant::now() < deadline,
            "the server did not close every socket: {}",
            counts.summary()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn twenty_thousand_connections_come_and_go_without_a_trace() {
    let started = Instant::now();
    let counts = Counts::default();
    let mut server = start(WebSocketOptions::default(), counts.clone());
    let port = server.port;

    // Warm-up: thread arenas, the server's buffers, first-use allocations.
    let warm_sent = churn(port, 0, WARM_UP);
    settle(&counts, WARM_UP);
    let before = rss();

    let cycles = cycles();
    let t = Instant::now();
    let sent = churn(port, WARM_UP, WARM_UP + cycles);
    let total = WARM_UP + cycles;
    settle(&counts, total);
    let took = t.elapsed();
    let after = rss();

    let growth = after as isize - before as isize;
    println!(
        "churn: {cycles} cycles on {THREADS} threads in {:.1} s ({:.0}/s); RSS before {:.1} MiB, \
         after {:.1} MiB ({:+.2} MiB, {:+.0} bytes per cycle); {}",
        took.as_secs_f64(),
        cycles as f64 / took.as_secs_f64(),
        mib(before),
        mib(after),
        growth as f64 / (1024.0 * 1024.0),
        growth as f64 / cycles as f64,
        counts.summary()
    );

    // Every socket opened, closed and dropped its data exactly once.
    assert_eq!(Counts::get(&counts.opens), total, "{}", counts.summary());
    assert_eq!(counts.closes(), total, "{}", counts.summary());
    assert_eq!(Counts::get(&counts.drops), total, "{}", counts.summary());
    assert_eq!(
        Counts::get(&counts.messages),
        warm_sent + sent,
        "{}",
        counts.summary()
    );
    // Style 0 closes with 1000; the others lose the connection (1006).
    let per_style =
        |from: usize, to: usize, style: usize| (from..to).filter(|n| n % STYLES == style).count();
    assert_eq!(
        Counts::get(&counts.clean),
        per_style(0, total, 0),
        "{}",
        counts.summary()
    );
    assert_eq!(Counts::get(&counts.other), 0, "{}", counts.summary());

    // Flat memory: a leak of 100 bytes per cycle would show as 2 MiB.
    let margin = 2 << 20;
    assert!(
        growth < margin as isize,
        "RSS grew by {:.2} MiB over {cycles} cycles",
        growth as f64 / (1024.0 * 1024.0)
    );

    // The server is still fine, and it stops cleanly.
    let mut c = connect(&server.url("/last"));
    c.send(M::text("still here")).unwrap();
    assert_eq!(recv_text(&mut c), "still here");
    drop(c);
    settle(&counts, total + 1);
    server.stop();
    assert_eq!(Counts::get(&counts.drops), total + 1);
    let budget = BUDGET * cycles.div_ceil(20_000) as u32;
    assert!(
        started.elapsed() < budget,
        "took {:?}, over {budget:?}",
        started.elapsed()
    );
}
