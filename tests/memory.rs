//! Memory after a burst: a socket's send buffer gives its memory back once
//! it has drained (vendor/patches/0002). Alone in its test binary, so that
//! nothing else moves the process's RSS while it measures.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

const SOCKETS: usize = 1000;
const MESSAGES: usize = 16;
const MESSAGE: usize = 64_000;
/// What one socket receives for one burst: 16 frames with 4-byte headers.
const BURST: usize = MESSAGES * (MESSAGE + 4);

/// On `burst`: sends 16 messages of 64 000 bytes (1 MiB) at once.
#[derive(Clone, Default)]
struct Bursts {
    bursts: Arc<AtomicUsize>,
}

impl WebSocketHandler for Bursts {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        accept_upgrade(req, server)
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        if message.as_bytes() == b"burst" {
            let payload = vec![b'm'; MESSAGE];
            for _ in 0..MESSAGES {
                ws.send_binary(&payload);
            }
            self.bursts.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A masked client text frame.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut out = vec![0x81, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A TCP connection to 127.0.0.1:`port` with a small receive buffer, so
/// that what the peer does not read piles up on the server, not in the
/// kernel (loopback buffers grow to megabytes otherwise).
fn connect_small(port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor we own; the address
    // structure is fully initialised and its size is passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let size: libc::c_int = 4096;
        let r = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "SO_RCVBUF");
        // A small segment size too: Linux sizes the server's send buffer
        // from it (ten segments' worth and more), megabytes on loopback.
        let mss: libc::c_int = 1024;
        let r = libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&mss as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "TCP_MAXSEG");
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect");
        TcpStream::from_raw_fd(fd)
    }
}

fn open(port: u16) -> TcpStream {
    let mut s = connect_small(port);
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&handshake("/", "")).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut buf[..1]).unwrap();
        assert!(n > 0, "closed during the handshake");
        got.push(buf[0]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101 "));
    s
}

/// Reads `BURST` bytes from every socket, several threads at once.
fn drain_all(sockets: &mut [TcpStream]) {
    std::thread::scope(|scope| {
        let per_thread = sockets.len().div_ceil(8);
        for part in sockets.chunks_mut(per_thread) {
            scope.spawn(move || {
                for s in part.iter_mut() {
                    s.set_nonblocking(true).unwrap();
                }
                let mut left = vec![BURST; part.len()];
                let mut buf = vec![0u8; 256 * 1024];
                let deadline = Instant::now() + TIMEOUT * 3;
                while left.iter().any(|&l| l > 0) {
                    assert!(Instant::now() < deadline, "the bursts did not arrive");
                    let mut progress = false;
                    for (s, l) in part.iter_mut().zip(left.iter_mut()) {
                        while *l > 0 {
                            match s.read(&mut buf) {
                                Ok(0) => panic!("closed"),
                                Ok(n) => {
                                    assert!(n <= *l, "more than a burst");
                                    *l -= n;
                                    progress = true;
                                }
                                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                Err(e) => panic!("read: {e}"),
                            }
                        }
                    }
                    if !progress {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                for s in part.iter_mut() {
                    s.set_nonblocking(false).unwrap();
                }
            });
        }
    });
}

#[test]
fn a_thousand_drained_bursts_give_their_memory_back() {
    let bursts = Bursts::default();
    let server = start(
        WebSocketOptions {
            backpressure_limit: 0,
            ..Default::default()
        },
        bursts.clone(),
    );
    let mut sockets: Vec<TcpStream> = (0..SOCKETS).map(|_| open(server.port)).collect();
    // Warm up: one burst through one socket, so that what the first burst
    // allocates for good is in the baseline.
    sockets[0].write_all(&text_frame(b"burst")).unwrap();
    drain_all(&mut sockets[..1]);
    wait_for("the warm-up burst", || {
        bursts.bursts.load(Ordering::SeqCst) == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    let baseline = rss();

    // Every socket asks for a burst and reads nothing for now: what the
    // kernel does not take waits in uWebSockets' buffers.
    for s in &mut sockets {
        s.write_all(&text_frame(b"burst")).unwrap();
    }
    wait_for("every burst", || {
        bursts.bursts.load(Ordering::SeqCst) == SOCKETS + 1
    });
    std::thread::sleep(Duration::from_millis(200));
    let peak = rss();

    drain_all(&mut sockets);
    std::thread::sleep(Duration::from_millis(300));
    let after = rss();
    eprintln!(
        "RSS: baseline {:.1} MiB, with {SOCKETS} bursts buffered {:.1} MiB, drained {:.1} MiB",
        mib(baseline),
        mib(peak),
        mib(after)
    );
    // The bursts really were buffered (otherwise this test proves nothing):
    // at least a third of them.
    assert!(
        peak > baseline + SOCKETS * BURST / 3,
        "the bursts were not buffered: {:.1} -> {:.1} MiB",
        mib(baseline),
        mib(peak)
    );
    // Drained, the buffers are gone: what is left is well under a tenth of
    // what the bursts took.
    let kept = after.saturating_sub(baseline);
    assert!(
        kept < (peak - baseline) / 10,
        "{:.1} MiB of {:.1} MiB still held after draining",
        mib(kept),
        mib(peak - baseline)
    );
    drop(sockets);
    drop(server);
}
