//! Who owns what across servers, clients and threads: a client whose
//! handlers stop the server that owns it, stale ids on servers on several
//! threads, requests taken by another server, producers, timers and
//! clients whose drops or handlers stop or drop their App. Each test states
//! the safe outcome it expects. Run one at a time:
//!
//!   cargo test --test owners_and_threads -- --exact NAME --test-threads=1
//!   valgrind --error-exitcode=9 target/debug/deps/owners_and_threads-* --exact NAME
#![allow(clippy::type_complexity)]

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::probe::EventLog as Log;
use common::raw::{accept_head, frame};
use common::TIMEOUT;
use uws::*;

/// Data that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A server that answers every request with an empty 200.
struct Nop;

impl WebSocketHandler for Nop {
    type Data = ();
    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        server.upgrade(req, UpgradeOptions::new(()));
        Response::new("")
    }
}

// ------------------------------------------------------------------------
// 1. A client connection opened by a server (`Server::connect`) whose
//    handler reaches that server (kept in a thread-local) and stops it at
//    once. The stop closes the server's connections, its client ones too:
//    closing a client socket at once runs the shim's ~Data, which frees the
//    fragment buffer that a message joined from fragments is a view of.

thread_local! {
    static APP: RefCell<Option<App<Nop>>> = const { RefCell::new(None) };
}

/// A one-connection raw WebSocket server: answers the handshake, writes
/// `frames` (each its own write, a little apart), then reads until the
/// client goes.
fn raw_server(frames: Vec<Vec<u8>>) -> (String, JoinHandle<()>) {
    common::raw::raw_server(move |s, key| {
        s.set_nodelay(true).unwrap();
        s.write_all(accept_head(key, "").as_bytes()).unwrap();
        for f in frames {
            std::thread::sleep(Duration::from_millis(50));
            if s.write_all(&f).is_err() {
                return;
            }
        }
        // Until the client goes, or has said nothing for a while (its
        // close frame comes at once): then this server closes TCP, as a
        // server answering a close does, instead of leaving the client to
        // its closing timeout.
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut sink = [0u8; 4096];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    })
}

/// Reads its message after stopping (or dropping) the server that opened
/// it.
struct StopsOwner {
    log: Log,
    how: &'static str,
}

impl ClientHandler for StopsOwner {
    type Data = Counted;

    fn message(&self, _ws: &mut ClientWebSocket<Counted>, message: Message<'_>) {
        let bytes = message.as_bytes();
        match self.how {
            "stop_now" => APP.with(|a| {
                if let Some(app) = a.borrow().as_ref() {
                    app.stop_now();
                }
            }),
            "stop" => APP.with(|a| {
                if let Some(app) = a.borrow().as_ref() {
                    app.stop();
                }
            }),
            _ => drop(APP.with(|a| a.borrow_mut().take())),
        }
        // An allocation of the freed buffer's size takes its place.
        let reuse = vec![b'z'; bytes.len()];
        // The message is still borrowed: read it.
        let xs = bytes.iter().filter(|&&b| b == b'x').count();
        drop(std::hint::black_box(reuse));
        self.log
            .push(format!("message-after-stop:{}:{xs}", bytes.len()));
    }

    fn ping(&self, _ws: &mut ClientWebSocket<Counted>, data: &[u8]) {
        APP.with(|a| {
            if let Some(app) = a.borrow().as_ref() {
                app.stop_now();
            }
        });
        let reuse = vec![b'z'; 120];
        let xs = data.iter().filter(|&&b| b == b'x').count();
        drop(std::hint::black_box(reuse));
        self.log
            .push(format!("ping-after-stop:{}:{xs}", data.len()));
    }

    fn close(&self, _ws: &mut ClientWebSocket<Counted>, code: u16, _reason: &str) {
        self.log.push(format!("close:{code}"));
    }

    fn error(&self, _ws: Option<&mut ClientWebSocket<Counted>>, error: &Error) {
        self.log.push(format!("error:{error}"));
    }
}

/// Runs a server on a thread of its own whose client connection (to a raw
/// server sending `frames`) has `StopsOwner { how }` as its handler.
fn owned_client_stops_owner(how: &'static str, frames: Vec<Vec<u8>>) -> (Log, usize) {
    let (url, raw) = raw_server(frames);
    let log = Log::default();
    let drops = Arc::new(AtomicUsize::new(0));
    let (l, d) = (log.clone(), drops.clone());
    let thread = std::thread::spawn(move || {
        let options = ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            ..Default::default()
        };
        let app = serve(options, Nop).unwrap();
        app.connect(
            &url,
            ConnectOptions::default(),
            StopsOwner { log: l, how },
            Counted(d),
        )
        .unwrap();
        APP.with(|a| *a.borrow_mut() = Some(app));
        uws::run();
        APP.with(|a| drop(a.borrow_mut().take()));
    });
    common::wait_for("the client's thread", || thread.is_finished());
    thread.join().unwrap();
    raw.join().unwrap();
    (log, drops.load(Ordering::SeqCst))
}

/// A text message of 2000 bytes in two fragments, the first starting
/// with `first`.
fn two_fragments() -> Vec<Vec<u8>> {
    vec![frame(0x01, &[b'x'; 1000]), frame(0x80, &[b'x'; 1000])]
}

/// A client of a server's loop reads `event`'s payload (`whole`) after
/// its handler stopped or dropped that server (`how`); it closes once and
/// its data drops once.
fn read_whole_after_owner(how: &'static str, frames: Vec<Vec<u8>>, event: &str, whole: &str) {
    let (log, drops) = owned_client_stops_owner(how, frames);
    assert_eq!(log.find(event).as_deref(), Some(whole));
    assert_eq!(log.count_prefix("close:"), 1, "{:?}", log.events());
    assert_eq!(drops, 1);
}

#[test]
fn client_message_from_fragments_read_after_owner_stop_now() {
    read_whole_after_owner(
        "stop_now",
        two_fragments(),
        "message-after-stop:",
        "message-after-stop:2000:2000",
    );
}

#[test]
fn client_message_from_fragments_read_after_owner_stop() {
    read_whole_after_owner(
        "stop",
        two_fragments(),
        "message-after-stop:",
        "message-after-stop:2000:2000",
    );
}

#[test]
fn client_message_from_fragments_read_after_owner_dropped() {
    read_whole_after_owner(
        "drop",
        two_fragments(),
        "message-after-stop:",
        "message-after-stop:2000:2000",
    );
}

#[test]
fn client_split_ping_read_after_owner_stop_now() {
    // A ping whose payload arrives in two reads is kept in the fragment
    // buffer too.
    let ping = frame(0x89, &[b'x'; 120]);
    let frames = vec![ping[..40].to_vec(), ping[40..].to_vec()];
    read_whole_after_owner(
        "stop_now",
        frames,
        "ping-after-stop:",
        "ping-after-stop:120:120",
    );
}

// ------------------------------------------------------------------------
// 2. One server on several threads: a send or close by the id of a socket
//    that has closed meanwhile. The id names a thread of the server; on
//    that thread the socket is gone, and the call must end there.

/// Keeps the id of every socket that opens, and counts their drops.
#[derive(Clone, Default)]
struct Ids {
    ids: Arc<std::sync::Mutex<Vec<SocketId>>>,
    closes: Arc<AtomicUsize>,
}

impl WebSocketHandler for Ids {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        common::accept_upgrade(req, server)
    }

    fn open(&self, ws: &mut ServerWebSocket<()>) {
        self.ids.lock().unwrap().push(ws.id());
    }

    fn close(&self, _ws: &mut ServerWebSocket<()>, _code: u16, _reason: &str) {
        self.closes.fetch_add(1, Ordering::SeqCst);
    }
}

/// CPU time this process has used, in clock ticks (utime + stime).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Opens and closes one socket on each of the two threads; then `call`
/// with their (stale) ids; the server must go idle and stop.
fn stale_ids_on_threads(call: impl Fn(&ServerHandle<()>, SocketId)) {
    let h = Ids::default();
    let mut r = common::try_start_threaded(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            threads: 2,
            stop_grace_period: Duration::from_secs(1),
            ..Default::default()
        },
        h.clone(),
    )
    .unwrap();
    for n in 1..=2 {
        let mut c = common::connect(&r.url("/"));
        common::wait_for("open", || h.ids.lock().unwrap().len() == n);
        c.close(None).unwrap();
        while c.read().is_ok() {}
        common::wait_for("close", || h.closes.load(Ordering::SeqCst) == n);
    }
    let ids = h.ids.lock().unwrap().clone();
    for id in ids {
        call(&r.handle, id);
    }
    // Let the calls run, then measure a second of what should be idling.
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let busy = cpu_ticks() - before;
    r.stop();
    assert!(busy < 40, "an idle server used {busy} ticks in one second");
}

#[test]
fn threaded_send_to_a_closed_socket_ends() {
    stale_ids_on_threads(|handle, id| handle.send(id, OwnedMessage::from("to nobody")).unwrap());
}

#[test]
fn threaded_server_send_to_a_closed_socket_of_the_other_thread_ends() {
    // The same from inside the server: `Server::send` on the first thread
    // with the ids of both.
    stale_ids_on_threads(|handle, id| {
        handle
            .defer(move |s| {
                s.send(id, "to nobody");
            })
            .unwrap()
    });
}

#[test]
fn threaded_close_of_a_closed_socket_ends() {
    stale_ids_on_threads(|handle, id| {
        handle
            .defer(move |s| {
                s.close(id, 1000, "bye").unwrap();
            })
            .unwrap()
    });
}

// ------------------------------------------------------------------------
// 3. Two servers on one thread: one takes a request of the other out of
//    its `fetch` (`defer_request` on the other's `Server`, kept in a
//    thread-local). The request's response belongs to the first server's
//    connection; the second would answer, upgrade (with its own data type,
//    into the first's WebSocket context: its handlers would see the wrong
//    type) and be told of the abort (through a pointer to itself, also
//    after it was freed).

struct Other;

impl WebSocketHandler for Other {
    type Data = u32;
    fn fetch(&self, _req: &mut Request<'_>, _server: &Server<u32>) -> Response {
        Response::new("other")
    }
}

thread_local! {
    static OTHER: RefCell<Option<App<Other>>> = const { RefCell::new(None) };
}

/// Takes its requests out with the other server's `defer_request`.
#[derive(Clone, Default)]
struct Thief {
    log: Log,
    taken: Arc<std::sync::Mutex<Vec<PendingRequest<u32>>>>,
}

impl WebSocketHandler for Thief {
    type Data = u64;

    fn fetch(&self, req: &mut Request<'_>, _server: &Server<u64>) -> Response {
        let pending = OTHER.with(|o| o.borrow().as_ref().and_then(|o| o.defer_request(req)));
        self.log.push(format!("taken:{}", pending.is_some()));
        if let Some(p) = pending {
            self.taken.lock().unwrap().push(p);
        }
        Response::new("own answer")
    }

    fn open(&self, ws: &mut ServerWebSocket<u64>) {
        self.log.push(format!("open:{:x}", ws.data()));
    }
}

/// Runs `Thief` and `Other` on one thread; `then` runs on the test's
/// thread with the thief's port and handle.
fn thief_and_other(thief: Thief, then: impl FnOnce(u16, &ServerHandle<u64>)) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thief.clone();
    let thread = std::thread::spawn(move || {
        let options = ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            stop_grace_period: Duration::from_millis(200),
            ..Default::default()
        };
        let app = serve(options.clone(), t).unwrap();
        let other = serve(options, Other).unwrap();
        OTHER.with(|o| *o.borrow_mut() = Some(other));
        tx.send((app.port(), app.handle())).unwrap();
        app.run();
        OTHER.with(|o| drop(o.borrow_mut().take()));
    });
    let (port, handle) = rx.recv_timeout(TIMEOUT).unwrap();
    then(port, &handle);
    // The other server keeps the loop running until it goes too.
    let _ = handle.defer(|_| OTHER.with(|o| drop(o.borrow_mut().take())));
    let _ = handle.stop();
    common::wait_for("the servers' thread", || thread.is_finished());
    thread.join().unwrap();
}

#[test]
fn a_server_cannot_take_the_request_of_another() {
    let thief = Thief::default();
    thief_and_other(thief.clone(), |port, handle| {
        let answer = common::http_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.contains("own answer"), "{answer}");
        // The other server goes while the connection stays.
        handle
            .defer(|_| OTHER.with(|o| drop(o.borrow_mut().take())))
            .unwrap();
    });
    assert_eq!(thief.log.events(), vec!["taken:false".to_string()]);
}

#[test]
fn a_request_taken_by_another_server_that_went_away_then_aborted() {
    let thief = Thief::default();
    thief_and_other(thief.clone(), |port, handle| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        common::wait_for("the request", || thief.log.count_prefix("taken:") == 1);
        // The other server (which took the request) goes; then the client.
        let (tx, rx) = std::sync::mpsc::channel();
        handle
            .defer(move |_| {
                OTHER.with(|o| drop(o.borrow_mut().take()));
                tx.send(()).unwrap();
            })
            .unwrap();
        rx.recv_timeout(TIMEOUT).unwrap();
        drop(s);
        std::thread::sleep(Duration::from_millis(200));
    });
    // Completing it later does nothing (and reaches nothing freed).
    for p in thief.taken.lock().unwrap().drain(..) {
        let _ = p.respond(Response::new("late"));
    }
}

#[test]
fn a_websocket_handshake_taken_by_another_server_cannot_open_with_its_data() {
    let thief = Thief::default();
    thief_and_other(thief.clone(), |port, _handle| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(&common::handshake("/", "")).unwrap();
        common::wait_for("the request", || thief.log.count_prefix("taken:") == 1);
        let taken = thief.taken.lock().unwrap().pop();
        if let Some(p) = taken {
            // The other server's data type, u32, into the thief's sockets
            // of u64.
            let _ = p.upgrade(UpgradeOptions::new(0xdead_beef_u32));
        }
        let mut b = [0u8; 256];
        let _ = s.read(&mut b);
        std::thread::sleep(Duration::from_millis(100));
    });
    assert_eq!(
        thief.log.count_prefix("open:"),
        0,
        "{:?}",
        thief.log.events()
    );
}

// ------------------------------------------------------------------------
// 4. A bus that is down (nothing listens at its address): every handler
//    publishes, the error handler hears of the bus, and the App is dropped
//    from a handler (single thread) or stopped from outside (threads).

#[cfg(feature = "redis")]
mod bus_down {
    use super::*;

    thread_local! {
        static LOUD: RefCell<Option<App<Loud>>> = const { RefCell::new(None) };
    }

    #[derive(Clone, Default)]
    struct Loud {
        drops: Arc<AtomicUsize>,
        opens: Arc<AtomicUsize>,
        errors: Arc<AtomicUsize>,
    }

    impl WebSocketHandler for Loud {
        type Data = Counted;

        fn fetch(&self, req: &mut Request<'_>, server: &Server<Counted>) -> Response {
            server.publish("t", "fetch");
            server.upgrade(req, UpgradeOptions::new(Counted(self.drops.clone())));
            Response::new("")
        }

        fn open(&self, ws: &mut ServerWebSocket<Counted>) {
            self.opens.fetch_add(1, Ordering::SeqCst);
            ws.subscribe("t");
            ws.publish("t", "open");
            ws.server().publish("t", "open");
        }

        fn message(&self, ws: &mut ServerWebSocket<Counted>, message: Message<'_>) {
            ws.server().publish("t", message);
            if message.as_bytes() == b"drop" {
                drop(LOUD.with(|l| l.borrow_mut().take()));
                ws.server().publish("t", "after drop");
                ws.send_text("after drop");
            }
        }

        fn subscription(
            &self,
            server: &Server<Counted>,
            _id: SocketId,
            topic: &str,
            _old: usize,
            _new: usize,
        ) {
            server.publish(topic, "subscription");
        }

        fn close(&self, ws: &mut ServerWebSocket<Counted>, _code: u16, _reason: &str) {
            ws.server().publish("t", "close");
        }

        fn error(&self, _ws: Option<&mut ServerWebSocket<Counted>>, _error: &Error) {
            self.errors.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn options(threads: usize) -> ServeOptions {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            threads,
            stop_grace_period: Duration::from_millis(300),
            bus: Some(
                Bus::redis(format!("redis://127.0.0.1:{port}"))
                    .reconnect_delay(Duration::from_millis(10), Duration::from_millis(20)),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn publishing_from_every_handler_then_dropping_the_app_while_the_bus_is_down() {
        let h = Loud::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let h2 = h.clone();
        let thread = std::thread::spawn(move || {
            let app = serve(options(1), h2).unwrap();
            tx.send(app.port()).unwrap();
            LOUD.with(|l| *l.borrow_mut() = Some(app));
            uws::run();
        });
        let port = rx.recv_timeout(TIMEOUT).unwrap();
        let url = format!("ws://127.0.0.1:{port}/");
        let mut clients: Vec<_> = (0..3).map(|_| common::connect(&url)).collect();
        common::wait_for("opens", || h.opens.load(Ordering::SeqCst) == 3);
        for c in &mut clients {
            c.send(tungstenite::Message::text("hello")).unwrap();
        }
        clients.pop().unwrap().close(None).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        clients[0].send(tungstenite::Message::text("drop")).unwrap();
        common::wait_for("the server's thread", || thread.is_finished());
        thread.join().unwrap();
        assert_eq!(h.drops.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn publishing_from_every_handler_on_threads_then_stop_while_the_bus_is_down() {
        let h = Loud::default();
        let mut r = common::try_start_threaded(options(2), h.clone()).unwrap();
        let url = r.url("/");
        let mut clients: Vec<_> = (0..4).map(|_| common::connect(&url)).collect();
        common::wait_for("opens", || h.opens.load(Ordering::SeqCst) == 4);
        for c in &mut clients {
            c.send(tungstenite::Message::text("hello")).unwrap();
        }
        for i in 0..200 {
            let _ = r
                .handle
                .publish("t", OwnedMessage::from(format!("outside {i}")));
        }
        clients.pop().unwrap().close(None).unwrap();
        let _ = r.handle.stop_now();
        r.stop();
        assert_eq!(h.drops.load(Ordering::SeqCst), 4);
    }
}

// ------------------------------------------------------------------------
// 5. What user values' destructors do when the loop drops them: a
//    streamed response's producer is dropped when the client leaves (from
//    uWebSockets' abort callback). Its destructor may reach the App (a
//    thread-local) and drop or stop it.

thread_local! {
    static STREAMER: RefCell<Option<App<Streamer>>> = const { RefCell::new(None) };
}

/// On drop, does `how` to the thread's `STREAMER` App.
struct Trip {
    how: &'static str,
    log: Log,
}

impl Drop for Trip {
    fn drop(&mut self) {
        self.log.push(format!("trip:{}", self.how));
        match self.how {
            "drop" => drop(STREAMER.with(|s| s.borrow_mut().take())),
            "stop_now" => STREAMER.with(|s| {
                if let Some(app) = s.borrow().as_ref() {
                    app.stop_now();
                }
            }),
            _ => {}
        }
    }
}

#[derive(Clone)]
struct Streamer {
    how: &'static str,
    log: Log,
}

impl WebSocketHandler for Streamer {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        let pending = server.defer_request(req).unwrap();
        let trip = Trip {
            how: self.how,
            log: self.log.clone(),
        };
        let log = self.log.clone();
        let chunk = vec![b'x'; 256 * 1024];
        let _ = pending.stream(Response::new(""), move |w| {
            let _ = &trip;
            if !log.has("producing") {
                log.push("producing");
            }
            while w.write(&chunk) {}
            Flow::More
        });
        Response::new("")
    }
}

fn producer_dropped_when_the_client_leaves(how: &'static str) -> Log {
    let log = Log::default();
    let h = Streamer {
        how,
        log: log.clone(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let options = ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            stop_grace_period: Duration::from_millis(300),
            ..Default::default()
        };
        let app = serve(options, h).unwrap();
        tx.send((app.port(), app.handle())).unwrap();
        STREAMER.with(|s| *s.borrow_mut() = Some(app));
        uws::run();
        STREAMER.with(|s| drop(s.borrow_mut().take()));
    });
    let (port, handle) = rx.recv_timeout(TIMEOUT).unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A body that never comes: the request's body is still awaited when
    // the client leaves.
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .unwrap();
    common::wait_for("the producer", || log.has("producing"));
    let mut some = [0u8; 1024];
    s.read_exact(&mut some).unwrap();
    // Unread data in our buffer: the close is a reset.
    drop(s);
    common::wait_for("the producer's drop", || log.count_prefix("trip:") == 1);
    let _ = handle.stop();
    common::wait_for("the server's thread", || thread.is_finished());
    thread.join().unwrap();
    log
}

#[test]
fn a_producer_whose_drop_drops_the_app_when_the_client_leaves() {
    let log = producer_dropped_when_the_client_leaves("drop");
    assert_eq!(log.count_prefix("trip:"), 1);
}

#[test]
fn a_producer_whose_drop_stops_the_app_when_the_client_leaves() {
    let log = producer_dropped_when_the_client_leaves("stop_now");
    assert_eq!(log.count_prefix("trip:"), 1);
}

// ------------------------------------------------------------------------
// 6. Timers that drop their App, and clients that reconnect from their
//    handlers while their thread exits.

thread_local! {
    static TIMED: RefCell<Option<App<Nop>>> = const { RefCell::new(None) };
}

#[test]
fn an_interval_drops_its_app_and_a_timeout_made_while_stopping_never_fires() {
    let drops = Arc::new(AtomicUsize::new(0));
    let fired = Arc::new(AtomicUsize::new(0));
    let (d, f) = (drops.clone(), fired.clone());
    let thread = std::thread::spawn(move || {
        let options = ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            ..Default::default()
        };
        let app = serve(options, Nop).unwrap();
        let counted = Counted(d.clone());
        let late = Counted(d.clone());
        let f2 = f.clone();
        app.set_interval(Duration::from_millis(5), move |server| {
            let _ = &counted;
            if f.fetch_add(1, Ordering::SeqCst) == 2 {
                server.stop();
                // Made while stopping: never fires, dropped here or later.
                let late = Counted(late.0.clone());
                let f3 = f2.clone();
                server.set_timeout(Duration::from_millis(1), move |_| {
                    let _ = &late;
                    f3.fetch_add(100, Ordering::SeqCst);
                });
                drop(TIMED.with(|t| t.borrow_mut().take()));
                // The server is still there for the rest of this call.
                server.set_interval(Duration::from_millis(1), |_| {});
                server.publish("t", "x");
            }
        });
        TIMED.with(|t| *t.borrow_mut() = Some(app));
        uws::run();
    });
    common::wait_for("the thread", || thread.is_finished());
    thread.join().unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 3);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

/// Reconnects from every handler, `left` times in all; counts the data
/// it makes in `made`.
struct Reconnect {
    log: Log,
    drops: Arc<AtomicUsize>,
    made: Arc<AtomicUsize>,
    url: String,
    left: Arc<AtomicUsize>,
}

impl Reconnect {
    fn data(&self) -> Counted {
        self.made.fetch_add(1, Ordering::SeqCst);
        Counted(self.drops.clone())
    }

    fn again(&self, from: &str) {
        let left = self.left.load(Ordering::SeqCst);
        if left == 0 {
            return;
        }
        self.left.store(left - 1, Ordering::SeqCst);
        let next = Reconnect {
            log: self.log.clone(),
            drops: self.drops.clone(),
            made: self.made.clone(),
            url: self.url.clone(),
            left: self.left.clone(),
        };
        let r = uws::connect(&self.url, ConnectOptions::default(), next, self.data());
        self.log.push(format!("{from}:{}", r.is_ok()));
    }
}

impl ClientHandler for Reconnect {
    type Data = Counted;

    fn open(&self, ws: &mut ClientWebSocket<Counted>) {
        let _ = ws.close(1000, "");
        ws.terminate();
        assert!(ws.handle().with_socket(|_| ()).is_none());
        self.again("open");
    }

    fn close(&self, _ws: &mut ClientWebSocket<Counted>, _code: u16, _reason: &str) {
        self.again("close");
    }

    fn error(&self, ws: Option<&mut ClientWebSocket<Counted>>, _error: &Error) {
        if let Some(ws) = ws {
            ws.terminate();
            let _ = ws.close(1000, "");
        }
        self.again("error");
    }
}

fn reconnecting(url: String, left: usize, run: bool) -> (Log, usize, usize) {
    let log = Log::default();
    let drops = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let (l, d, m) = (log.clone(), drops.clone(), made.clone());
    let thread = std::thread::spawn(move || {
        for _ in 0..3 {
            let h = Reconnect {
                log: l.clone(),
                drops: d.clone(),
                made: m.clone(),
                url: url.clone(),
                left: Arc::new(AtomicUsize::new(left)),
            };
            let data = h.data();
            uws::connect(&url, ConnectOptions::default(), h, data).unwrap();
        }
        if run {
            uws::run();
        }
        // Otherwise the thread exits with its connections connecting.
    });
    common::wait_for("the thread", || thread.is_finished());
    thread.join().unwrap();
    (
        log,
        made.load(Ordering::SeqCst),
        drops.load(Ordering::SeqCst),
    )
}

#[test]
fn clients_that_reconnect_from_their_handlers_while_their_thread_exits() {
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (log, made, drops) = reconnecting(format!("ws://127.0.0.1:{refused}/"), 1000, false);
    assert_eq!(made, drops, "{:?}", log.events());
}

#[test]
fn clients_that_reconnect_from_their_handlers_to_a_refusing_port() {
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (log, made, drops) = reconnecting(format!("ws://127.0.0.1:{refused}/"), 20, true);
    assert_eq!(made, 3 + 60);
    assert_eq!(made, drops, "{:?}", log.events());
}

#[test]
fn clients_that_reconnect_from_their_handlers_to_a_live_server() {
    let server = common::start(WebSocketOptions::default(), Nop);
    let (log, made, drops) = reconnecting(server.url("/"), 20, true);
    assert_eq!(made, 3 + 60);
    assert_eq!(made, drops, "{:?}", log.events());
}

// ------------------------------------------------------------------------
// 7. A server on several threads whose sockets open client connections
//    back to it (by host name: resolved off the loop) and is stopped at
//    once while they connect.

#[derive(Clone, Default)]
struct Loopback {
    port: Arc<std::sync::atomic::AtomicU16>,
    drops: Arc<AtomicUsize>,
    made: Arc<AtomicUsize>,
    opens: Arc<AtomicUsize>,
}

impl Loopback {
    fn data(&self) -> Counted {
        self.made.fetch_add(1, Ordering::SeqCst);
        Counted(self.drops.clone())
    }
}

struct Back;

impl ClientHandler for Back {
    type Data = Counted;
    fn open(&self, ws: &mut ClientWebSocket<Counted>) {
        ws.send_text("hi");
    }
    fn error(&self, _ws: Option<&mut ClientWebSocket<Counted>>, _error: &Error) {}
}

impl WebSocketHandler for Loopback {
    type Data = (Counted, bool);

    fn fetch(&self, req: &mut Request<'_>, server: &Server<(Counted, bool)>) -> Response {
        let inner = req.query_param("inner").is_some();
        server.upgrade(req, UpgradeOptions::new((self.data(), inner)));
        Response::new("")
    }

    fn open(&self, ws: &mut ServerWebSocket<(Counted, bool)>) {
        self.opens.fetch_add(1, Ordering::SeqCst);
        if !ws.data().1 {
            let port = self.port.load(Ordering::SeqCst);
            for _ in 0..3 {
                let url = format!("ws://localhost:{port}/?inner=1");
                let _ = ws
                    .server()
                    .connect(&url, ConnectOptions::default(), Back, self.data());
            }
        }
    }
}

#[test]
fn a_threaded_server_connecting_to_itself_stopped_at_once() {
    let h = Loopback::default();
    let mut r = common::try_start_threaded(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            threads: 2,
            stop_grace_period: Duration::from_millis(300),
            ..Default::default()
        },
        h.clone(),
    )
    .unwrap();
    h.port.store(r.port, Ordering::SeqCst);
    let clients: Vec<_> = (0..4).map(|_| common::connect(&r.url("/"))).collect();
    common::wait_for("opens", || h.opens.load(Ordering::SeqCst) >= 4);
    let _ = r.handle.stop_now();
    r.stop();
    drop(clients);
    // Resolver threads may still hand in their answers: they find nothing.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        h.made.load(Ordering::SeqCst),
        h.drops.load(Ordering::SeqCst)
    );
}
