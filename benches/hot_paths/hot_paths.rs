//! Criterion micro-benchmarks of the hot paths, through the real FFI and a
//! real event loop on 127.0.0.1:
//!
//! - `dispatch_echo`: a client message dispatched into the handler, which
//!   sends it back (one loopback round trip per iteration);
//! - `send_corked`: `ServerWebSocket::send` of 32 bytes inside `cork`,
//!   timed on the server thread;
//! - `publish/N`: `Server::publish` of 32 bytes to a topic with N
//!   subscribers, timed on the server thread in batches of 1000. A publish
//!   queues the message (its frame formatted once, each subscriber's run
//!   of messages extended: vendor/patches/0101); the writes, one per
//!   subscriber, happen at the end of the loop iteration and are not timed
//!   here (`benches/compare.sh` measures it all end to end);
//! - `upgrade/sync`: TCP connect, handshake, open and close, the upgrade
//!   decided in `fetch`; `upgrade/deferred`: the same, the request deferred
//!   (`Server::defer_request`) and upgraded from another thread
//!   (`PendingRequest::upgrade`), Bun's `fetch` returning a Promise;
//! - `deflate/*`: echo round trips of a repetitive chat line, with and
//!   without permessage-deflate; bytes on the wire are printed.
//!
//! Run: `cargo bench --manifest-path benches/hot_paths/Cargo.toml`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::deflate::{DeflateClient, OFFER};
use common::{connect, http_exchange, recv, start, Running};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tungstenite::Message as M;
use uws::{
    Message, PendingRequest, PerMessageDeflate, Request, Response, Server, ServerWebSocket,
    SocketId, UpgradeOptions, WebSocketHandler, WebSocketOptions,
};

/// Subscribes each socket to the topic named by `?topic=`, echoes messages
/// (compressed when negotiated), and remembers the last socket's id.
/// `?defer` hands the request to another thread, which upgrades it.
struct Bench {
    last: Arc<std::sync::Mutex<Option<SocketId>>>,
    deferred: mpsc::Sender<PendingRequest<String>>,
}

impl WebSocketHandler for Bench {
    type Data = String;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<String>) -> Response {
        if req.query_param("defer").is_some() {
            if let Some(pending) = server.defer_request(req) {
                self.deferred.send(pending).unwrap();
            }
            return Response::new("");
        }
        let topic = req.query_param("topic").unwrap_or_default().into_owned();
        server.upgrade(req, UpgradeOptions::new(topic));
        Response::new("")
    }

    fn open(&self, ws: &mut ServerWebSocket<String>) {
        if !ws.data().is_empty() {
            let topic = ws.data().clone();
            ws.subscribe(&topic);
        }
        *self.last.lock().unwrap() = Some(ws.id());
    }

    fn message(&self, ws: &mut ServerWebSocket<String>, message: Message<'_>) {
        ws.send_compressed(message);
    }
}

fn server(
    deflate: Option<PerMessageDeflate>,
) -> (Running<String>, Arc<std::sync::Mutex<Option<SocketId>>>) {
    let last = Arc::new(std::sync::Mutex::new(None));
    // Completes deferred upgrades until the server (and its sender) is gone.
    let (deferred, requests) = mpsc::channel::<PendingRequest<String>>();
    std::thread::spawn(move || {
        for pending in requests {
            let _ = pending.upgrade(UpgradeOptions::new(String::new()));
        }
    });
    let running = start(
        WebSocketOptions {
            per_message_deflate: deflate,
            backpressure_limit: 0,
            ..Default::default()
        },
        Bench {
            last: last.clone(),
            deferred,
        },
    );
    (running, last)
}

/// Reads and discards everything sent to these sockets until dropped.
struct Drain {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drain {
    fn new(streams: Vec<TcpStream>) -> Drain {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            for s in &streams {
                s.set_nonblocking(true).unwrap();
            }
            while !flag.load(Ordering::Relaxed) {
                let mut idle = true;
                for mut s in &streams {
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        idle = false;
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        Drain {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens `n` raw WebSocket connections subscribed to `topic`.
fn subscribers(port: u16, topic: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let request = common::handshake(&format!("/?topic={topic}"), "");
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            std::io::Write::write_all(&mut s, &request).unwrap();
            let mut head = [0u8; 129];
            s.read_exact(&mut head).unwrap();
            assert!(head.starts_with(b"HTTP/1.1 101"));
            s
        })
        .collect()
}

/// Runs `f(iters)` on the server thread and returns the time it took there.
fn on_loop(
    running: &Running<String>,
    iters: u64,
    f: fn(&Server<String>, u64, Option<SocketId>),
    id: Option<SocketId>,
) -> Duration {
    let (tx, rx) = mpsc::channel();
    running
        .handle
        .defer(move |server| {
            let start = Instant::now();
            f(server, iters, id);
            tx.send(start.elapsed()).unwrap();
        })
        .unwrap();
    rx.recv().unwrap()
}

fn benches(c: &mut Criterion) {
    let (running, last) = server(None);

    let mut client = connect(&running.url("/"));
    c.bench_function("dispatch_echo", |b| {
        b.iter(|| {
            client.send(M::binary(vec![0u8; 32])).unwrap();
            recv(&mut client)
        })
    });
    drop(client);

    let streams = subscribers(running.port, "", 1);
    std::thread::sleep(Duration::from_millis(50));
    let id = last.lock().unwrap().expect("socket id");
    let drain = Drain::new(streams);
    c.bench_function("send_corked", |b| {
        b.iter_custom(|iters| {
            on_loop(
                &running,
                iters,
                |server, iters, id| {
                    let mut left = iters;
                    while left > 0 {
                        let batch = left.min(256);
                        server.with_socket(id.unwrap(), |ws| {
                            ws.cork(|ws| {
                                for _ in 0..batch {
                                    ws.send_binary(&[7u8; 32]);
                                }
                            })
                        });
                        left -= batch;
                    }
                },
                Some(id),
            )
        })
    });
    drop(drain);

    let mut group = c.benchmark_group("publish");
    for n in [1usize, 16, 1024] {
        let topic = format!("t{n}");
        let drain = Drain::new(subscribers(running.port, &topic, n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let publish: fn(&Server<String>, u64, Option<SocketId>) = match n {
                1 => |s, iters, _| {
                    (0..iters).for_each(|_| {
                        let _ = s.publish("t1", [1u8; 32]);
                    })
                },
                16 => |s, iters, _| {
                    (0..iters).for_each(|_| {
                        let _ = s.publish("t16", [1u8; 32]);
                    })
                },
                _ => |s, iters, _| {
                    (0..iters).for_each(|_| {
                        let _ = s.publish("t1024", [1u8; 32]);
                    })
                },
            };
            // Publish in slices so that each loop iteration drains a bounded queue.
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(1000);
                    total += on_loop(&running, batch, publish, None);
                    left -= batch;
                }
                total
            })
        });
        drop(drain);
    }
    group.finish();

    let mut group = c.benchmark_group("upgrade");
    for (name, path) in [("sync", "/"), ("deferred", "/?defer")] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let reply = http_exchange(running.port, &common::handshake(path, ""));
                assert!(reply.starts_with("HTTP/1.1 101"), "{reply}");
            })
        });
    }
    group.finish();
    drop(running);

    let line = "alice: are we still on for the standup at ten? bob: yes, same room. ".repeat(8);
    let mut group = c.benchmark_group("deflate");
    group.throughput(Throughput::Bytes(line.len() as u64));
    for compressed in [false, true] {
        let (running, _) = server(compressed.then(PerMessageDeflate::default));
        let mut client = DeflateClient::connect(running.port, Some(OFFER));
        let name = if compressed { "compressed" } else { "plain" };
        group.bench_function(name, |b| {
            b.iter(|| {
                if compressed {
                    client.send_compressed(1, line.as_bytes());
                } else {
                    client.send_frame(0x81, line.as_bytes());
                }
                client.read_message().unwrap()
            })
        });
        let before = client.wire_bytes;
        client.send_frame(0x81, line.as_bytes());
        client.read_message().unwrap();
        println!(
            "deflate/{name}: {} bytes on the wire for a {}-byte message",
            client.wire_bytes - before,
            line.len()
        );
    }
    group.finish();
}

criterion_group! {
    name = hot_paths;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(hot_paths);
