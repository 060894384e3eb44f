//! Running out: a process out of file descriptors, a full client queue, a
//! bus that delivers faster than the loops' inboxes take. Each is a normal
//! condition of a busy server: an error or a counted drop, never a crash,
//! a hang or a lost answer.
#![allow(clippy::type_complexity)]

mod common;

use common::child::{child_must_pass, is_child};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

#[cfg(feature = "redis")]
use std::net::TcpStream;
#[cfg(feature = "redis")]
use std::process::{Command, Stdio};

use uws::*;

// Helpers

/// Upgrades every request, echoes every message.
struct Echo;

impl WebSocketHandler for Echo {
    type Data = ();
    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        if server.upgrade(req, UpgradeOptions::new(())) {
            return Response::new("");
        }
        Response::new("no").with_status(400)
    }
    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        ws.send(message);
    }
}

/// An `Echo` server on a thread of its own: port, handle, thread.
fn echo_server() -> (u16, ServerHandle<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let app = serve(common::scenario_options(), Echo).unwrap();
        tx.send((app.port(), app.handle())).unwrap();
        app.run();
    });
    let (port, handle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (port, handle, thread)
}

/// What happened to a client connection.
#[derive(Default)]
struct Seen {
    opened: AtomicUsize,
    errors: AtomicUsize,
    data_dropped: AtomicUsize,
    last_error: Mutex<String>,
}

impl Seen {
    fn get(&self) -> (usize, usize, usize) {
        (
            self.opened.load(Ordering::SeqCst),
            self.errors.load(Ordering::SeqCst),
            self.data_dropped.load(Ordering::SeqCst),
        )
    }
}

/// A client handler that records what happens, and closes once open.
struct Recorder(Arc<Seen>);

/// Client data that counts its drop.
struct Counted(Arc<Seen>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.data_dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl ClientHandler for Recorder {
    type Data = Counted;
    fn open(&self, ws: &mut ClientWebSocket<Counted>) {
        self.0.opened.fetch_add(1, Ordering::SeqCst);
        let _ = ws.close(1000, "");
    }
    fn error(&self, _ws: Option<&mut ClientWebSocket<Counted>>, error: &Error) {
        *self.0.last_error.lock().unwrap() = error.to_string();
        self.0.errors.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits until `done` or `timeout`.
fn wait_for(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

// ------------------------------------------------------------------------
// A. A client whose host name resolves while its thread's queue is full.
//
// `connect` to a host name resolves it on a thread of its own, which hands
// the addresses back to the loop as a job of the thread's client queue
// (65 536 jobs at most). That push is bounded: when the queue is full (a
// burst of `ClientHandle` calls, from any thread), the resolver's job is
// refused and dropped, and nothing else ever moves the connection on. It
// stays "connecting" until the connect timeout fires; with
// `connect_timeout: None`, for ever.

/// Starts, on a new thread, a client of `port` by host name while that
/// thread's client queue is full (filled through the handle of another
/// connection of the thread), then runs the loop.
fn connect_by_name_with_a_full_queue(
    port: u16,
    seen: Arc<Seen>,
    connect_timeout: Option<Duration>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // Another connection of this thread; its handle fills the queue
        // (as a burst of sends from other threads would).
        let other = Arc::new(Seen::default());
        let filler = connect(
            &format!("ws://127.0.0.1:{port}/"),
            ConnectOptions::default(),
            Recorder(other.clone()),
            Counted(other),
        )
        .unwrap();
        while filler.send(OwnedMessage::from("x")).is_ok() {}
        let options = ConnectOptions {
            connect_timeout,
            ..Default::default()
        };
        connect(
            &format!("ws://localhost:{port}/"),
            options,
            Recorder(seen.clone()),
            Counted(seen),
        )
        .unwrap();
        // The resolver answers meanwhile (localhost), into the full queue.
        std::thread::sleep(Duration::from_millis(1000));
        run();
    })
}

/// A connection by host name, made while the thread's client queue is
/// full, with a 3 s connect timeout, to a server that accepts at once.
///
/// Checks: the connection opens (the host resolves, the server is up),
/// or the queue-full condition is reported; the resolver's answer is not
/// lost.
/// Before the fix: the resolver's job is refused by the full queue and dropped
/// (`client::conn::resolve` ignores the push's error, assuming only "the
/// thread's clients are gone"): the connection never proceeds, and 3 s
/// later `error` reports a connect timeout ("did not open within the
/// connect timeout") against a server that was reachable all along.
#[test]
fn a_resolved_host_reaches_its_connection_through_a_full_client_queue() {
    let (port, server, server_thread) = echo_server();
    let seen = Arc::new(Seen::default());
    let client =
        connect_by_name_with_a_full_queue(port, seen.clone(), Some(Duration::from_secs(3)));
    assert!(
        wait_for(Duration::from_secs(20), || {
            let (o, e, _) = seen.get();
            o + e > 0
        }),
        "neither open nor error"
    );
    client.join().unwrap();
    server.stop().unwrap();
    server_thread.join().unwrap();
    let (opened, errors, dropped) = seen.get();
    let error = seen.last_error.lock().unwrap().clone();
    assert_eq!(dropped, 1);
    assert_eq!((opened, errors), (1, 0), "error: {error}");
}

/// The same with `connect_timeout: None` ("waits as long as the operating
/// system does").
///
/// Checks: the connection opens; `run` returns once it has closed.
/// Before the fix: nothing ever happens to the connection: no `open`, no `error`,
/// its data is never dropped, and `run` never returns (the connection's
/// timer keeps the loop alive).
#[test]
fn a_resolved_host_reaches_its_connection_without_a_connect_timeout_too() {
    const NAME: &str = "a_resolved_host_reaches_its_connection_without_a_connect_timeout_too";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(30), None);
    }
    let (port, server, server_thread) = echo_server();
    let seen = Arc::new(Seen::default());
    let client = connect_by_name_with_a_full_queue(port, seen.clone(), None);
    let moved = wait_for(Duration::from_secs(10), || {
        let (o, e, _) = seen.get();
        o + e > 0
    });
    assert!(moved, "no open and no error in 10 s: {:?}", seen.get());
    client.join().unwrap();
    server.stop().unwrap();
    server_thread.join().unwrap();
    assert_eq!(seen.get(), (1, 0, 1));
}

// ------------------------------------------------------------------------
// B. Out of file descriptors: native constructors return NULL, and the
// shim writes through it.
//
// uSockets' `us_create_timer` returns NULL when `timerfd_create` fails
// (EMFILE), and `us_create_loop` likewise when `epoll_create1` fails;
// `uws_timer_create` writes the timer's extension through the NULL
// timer, and uWebSockets' `Loop::create` writes through the NULL loop.
// Every `set_timeout`/`set_interval`, every client `connect` (its connect
// timer), and the first server or client of a thread (its loop) go
// through them. A server at its descriptor limit (the case the crate's
// own acceptor sleeps through) is a normal condition, not a misuse.

/// Opens files until the process has no descriptor left; returns them.
fn exhaust_descriptors() -> Vec<std::fs::File> {
    let mut files = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        files.push(f);
    }
    files
}

/// `Server::set_timeout` when the process is out of descriptors.
///
/// Checks: the timer cannot be made; the crate reports it (an error, or
/// a panic caught like any other) or retries; the process goes on.
/// Before the fix: `uws_timer_create` writes through the NULL timer that uSockets
/// returned: SIGSEGV (valgrind: "Invalid write of size 8" at
/// `uws_timer_create`, from `Server::set_timeout`).
#[test]
fn a_timer_made_when_out_of_descriptors_is_refused() {
    const NAME: &str = "a_timer_made_when_out_of_descriptors_is_refused";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(60), Some(256));
    }
    let app = serve(common::scenario_options(), Echo).unwrap();
    let files = exhaust_descriptors();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        app.set_timeout(Duration::from_millis(10), |s| s.stop());
    }));
    drop(files);
    app.stop();
    app.run();
}

/// `uws::connect` when the process is out of descriptors.
///
/// Checks: `connect` returns an error (or `error` runs with the
/// system's EMFILE), the data is dropped once, the process goes on.
/// Before the fix: `connect` makes its connect timer first; `uws_timer_create`
/// writes through the NULL timer: SIGSEGV (valgrind: "Invalid write of
/// size 8" at `uws_timer_create`, from `client::conn::connect`).
#[test]
fn a_client_connect_when_out_of_descriptors_fails_and_drops_its_data_once() {
    const NAME: &str = "a_client_connect_when_out_of_descriptors_fails_and_drops_its_data_once";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(60), Some(256));
    }
    let (port, server, server_thread) = echo_server();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let client = std::thread::spawn(move || {
        // The thread's loop and client contexts exist already.
        let warm = Arc::new(Seen::default());
        connect(
            &format!("ws://127.0.0.1:{port}/"),
            ConnectOptions::default(),
            Recorder(warm.clone()),
            Counted(warm),
        )
        .unwrap();
        let files = exhaust_descriptors();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            connect(
                &format!("ws://127.0.0.1:{port}/"),
                ConnectOptions::default(),
                Recorder(s.clone()),
                Counted(s),
            )
        }));
        drop(files);
        run();
        drop(r);
    });
    client.join().unwrap();
    server.stop().unwrap();
    server_thread.join().unwrap();
    assert_eq!(seen.get().2, 1, "the data was not dropped once");
}

/// `serve` on a new thread when the process is out of descriptors.
///
/// Checks: `Err(..)` (the loop cannot be made), as for any other
/// resource the server cannot get.
/// Before the fix: the thread's first `serve` makes the thread's loop;
/// `us_create_loop` returns NULL and uWebSockets' `Loop::create` writes
/// through it: SIGSEGV (valgrind: "Invalid write of size 8" in
/// `Loop::create`, from `uws_loop_get` in `ThreadLoop::acquire`).
#[test]
fn serve_on_a_new_thread_when_out_of_descriptors_fails() {
    const NAME: &str = "serve_on_a_new_thread_when_out_of_descriptors_fails";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(60), Some(256));
    }
    let files = exhaust_descriptors();
    let r = std::thread::spawn(|| serve(common::scenario_options(), Echo).map(drop)).join();
    drop(files);
    assert!(
        matches!(r, Ok(Err(_))),
        "{:?}",
        r.map(|r| r.map_err(|e| e.to_string()))
    );
}

// ------------------------------------------------------------------------
// C. The bus bridge of a server on several threads counts drops per
// thread, and subtracts them from a count of messages.
//
// `Bridge::flush` hands a batch of `n` messages to the loops and computes
// `received += n - dropped`, where `dropped` comes from
// `Cluster::deliver_from_outside`, which counts one drop per message *per
// thread* whose inbox was full. With subscribers on several threads and
// small inboxes (`queue_limit`), `dropped > n`: in a debug build the
// subtraction panics in the bridge thread, which ends the bridge for good
// ("the bridge ended: attempt to subtract with overflow", state `Stopped`:
// no more messages from other servers, no more publishes to them); in a
// release build it wraps and `BusStatus::received` jumps to about 2^64.

/// Subscribes every socket to "room".
#[cfg(feature = "redis")]
struct Room {
    errors: Mutex<Vec<String>>,
}

#[cfg(feature = "redis")]
impl WebSocketHandler for Room {
    type Data = ();
    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        if server.upgrade(req, UpgradeOptions::new(())) {
            return Response::new("");
        }
        Response::new("no").with_status(400)
    }
    fn open(&self, ws: &mut ServerWebSocket<()>) {
        ws.subscribe("room");
    }
    fn error(&self, _ws: Option<&mut ServerWebSocket<()>>, error: &Error) {
        self.errors.lock().unwrap().push(error.to_string());
    }
}

/// A `redis-server` of this test, on a free loopback port in a
/// temporary folder; killed on drop.
#[cfg(feature = "redis")]
struct RedisServer {
    child: std::process::Child,
    dir: std::path::PathBuf,
    port: u16,
}

#[cfg(feature = "redis")]
impl RedisServer {
    fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = std::env::temp_dir().join(format!("uws-r5-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir", dir.to_str()?])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = RedisServer { child, dir, port };
        let up = wait_for(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        up.then_some(server)
    }
}

#[cfg(feature = "redis")]
impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A raw WebSocket client that never reads (it only has to be subscribed).
#[cfg(feature = "redis")]
fn idle_client(port: u16) -> TcpStream {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    s
}

/// A server on 4 threads with a Redis bus and `queue_limit: 1`, members
/// of "room" on every thread, receives a burst of 300 publishes from
/// another server through the bus.
///
/// Checks: the bridge keeps running (state `Connected`), the drops are
/// counted, `received` stays at most the number of messages that came.
/// Today (debug build): the bridge thread panics on `n - dropped`
/// (bridge.rs, `Bridge::flush`), the handler's `error` gets "the bridge
/// ended: ... attempt to subtract with overflow", and the bus is `Stopped`
/// for the rest of the server's life. (Release build: `received` wraps to
/// about 2^64.)
#[cfg(feature = "redis")]
#[test]
fn bus_drops_on_several_threads_keep_the_count_and_the_bridge() {
    let Some(redis) = RedisServer::start() else {
        eprintln!("redis-server is not available: skipped");
        return;
    };
    let url = format!("redis://127.0.0.1:{}", redis.port);
    // The receiving server: 4 threads, inboxes of one message.
    let (tx, rx) = mpsc::channel();
    let bus = Bus::redis(url.clone());
    let receiver = std::thread::spawn(move || {
        let o = ServeOptions {
            threads: 4,
            queue_limit: 1,
            bus: Some(bus),
            ..common::scenario_options()
        };
        let app = serve_threaded(
            o,
            Room {
                errors: Mutex::new(Vec::new()),
            },
        )
        .unwrap();
        tx.send((app.port(), app.handle())).unwrap();
        app.run();
    });
    let (port, handle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // Members on every thread (connections are dealt out in turn).
    let members: Vec<TcpStream> = (0..8).map(|_| idle_client(port)).collect();
    assert!(wait_for(Duration::from_secs(10), || {
        handle
            .bus_status()
            .is_some_and(|s| s.state == BusState::Connected && s.topics == 1)
    }));
    // The publishing server.
    let (ptx, prx) = mpsc::channel();
    let pbus = Bus::redis(url);
    let publisher = std::thread::spawn(move || {
        let app = serve(
            ServeOptions {
                bus: Some(pbus),
                ..common::scenario_options()
            },
            Echo,
        )
        .unwrap();
        ptx.send(app.handle()).unwrap();
        app.run();
    });
    let phandle = prx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        phandle
            .bus_status()
            .is_some_and(|s| s.state == BusState::Connected)
    }));
    const BURST: u64 = 300;
    phandle
        .defer(|s| {
            for i in 0..BURST {
                s.publish("room", format!("m{i}").as_str());
            }
        })
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        phandle.bus_status().is_some_and(|s| s.published >= BURST)
    }));
    std::thread::sleep(Duration::from_millis(1000));
    let status = handle.bus_status().unwrap();
    phandle.stop().unwrap();
    handle.stop().unwrap();
    publisher.join().unwrap();
    receiver.join().unwrap();
    drop(members);
    drop(redis);
    assert!(
        status.state != BusState::Stopped && status.received <= BURST,
        "the receiving bridge after the burst: {status:?}"
    );
}
