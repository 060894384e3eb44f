//! One server on several threads: connections spread over the loops,
//! pub/sub across them, ids used on other threads, stopping.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use common::connect;
use common::*;
use tungstenite::Message as M;
use uws::*;

/// Per socket: its name, and the thread it lives on.
struct Member {
    name: String,
    drops: Arc<AtomicUsize>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
struct Room {
    threads: Arc<Mutex<HashMap<String, ThreadId>>>,
    ids: Arc<Mutex<HashMap<String, SocketId>>>,
    drops: Arc<AtomicUsize>,
    closes: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Room {
    fn id(&self, name: &str) -> SocketId {
        wait_for(name, || self.ids.lock().unwrap().contains_key(name));
        self.ids.lock().unwrap()[name]
    }
}

impl WebSocketHandler for Room {
    type Data = Member;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Member>) -> Response {
        let name = req.query_param("name").unwrap_or_default().into_owned();
        let member = Member {
            name,
            drops: self.drops.clone(),
        };
        if server.upgrade(req, UpgradeOptions::new(member)) {
            return Response::new("");
        }
        Response::new(format!("{}", server.pending_websockets()))
    }

    fn open(&self, ws: &mut ServerWebSocket<Member>) {
        let name = ws.data().name.clone();
        self.threads
            .lock()
            .unwrap()
            .insert(name.clone(), std::thread::current().id());
        self.ids.lock().unwrap().insert(name, ws.id());
        ws.subscribe("room");
        ws.send_text("welcome");
    }

    fn message(&self, ws: &mut ServerWebSocket<Member>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        let mut words = text.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("pub"), Some(body), _) => {
                ws.server()
                    .publish("room", format!("{}:{body}", ws.data().name).as_str(), false);
            }
            (Some("wspub"), Some(body), _) => {
                ws.publish("room", format!("{}:{body}", ws.data().name).as_str(), false);
            }
            (Some("tell"), Some(who), Some(body)) => {
                let id = self.id(who);
                let s = ws.server();
                let sent = s.send(id, body, false);
                let with = s.with_socket(id, |_| ()).is_some();
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("tell {who}: {sent:?} with={with}"));
            }
            (Some("kick"), Some(who), _) => {
                let id = self.id(who);
                ws.server().close(id, 4000, "kicked").unwrap();
            }
            (Some("count"), _, _) => {
                let s = ws.server();
                let reply = format!("{} {}", s.subscriber_count("room"), s.pending_websockets());
                ws.send_text(&reply);
            }
            (Some("leave"), _, _) => {
                ws.unsubscribe("room");
                ws.send_text("left");
            }
            (Some("join"), _, _) => {
                ws.subscribe("room");
                ws.send_text("joined");
            }
            (Some("stop"), _, _) => ws.server().stop(),
            _ => {}
        }
    }

    fn close(&self, _ws: &mut ServerWebSocket<Member>, _code: u16, _reason: &str) {
        self.closes.fetch_add(1, Ordering::SeqCst);
    }
}

struct Threaded {
    port: u16,
    handle: ServerHandle<Member>,
    thread: Option<JoinHandle<()>>,
}

impl Threaded {
    fn start(threads: usize, room: Room) -> Threaded {
        Threaded::start_with(threads, room, Duration::from_secs(1))
    }

    fn start_with(threads: usize, room: Room, grace: Duration) -> Threaded {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let options = ServeOptions {
                hostname: "127.0.0.1".into(),
                port: 0,
                threads,
                stop_grace_period: grace,
                ..Default::default()
            };
            let app = serve_threaded(options, room).expect("serve");
            tx.send((app.port(), app.handle())).unwrap();
            app.run();
        });
        let (port, handle) = rx.recv_timeout(TIMEOUT).unwrap();
        Threaded {
            port,
            handle,
            thread: Some(thread),
        }
    }

    fn client(&self, name: &str) -> Client {
        let mut c = connect(&format!("ws://127.0.0.1:{}/?name={name}", self.port));
        assert_eq!(recv_text(&mut c), "welcome");
        c
    }

    fn stop(&mut self) {
        let _ = self.handle.stop();
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + TIMEOUT;
            while !t.is_finished() {
                assert!(Instant::now() < deadline, "the server did not stop");
                std::thread::sleep(Duration::from_millis(10));
            }
            t.join().unwrap();
        }
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop();
        }
    }
}

#[test]
fn a_room_spread_over_threads_gets_every_message_once_in_order() {
    const CLIENTS: usize = 8;
    const MESSAGES: usize = 200;
    let room = Room::default();
    let mut server = Threaded::start(2, room.clone());
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| server.client(&format!("c{i}")))
        .collect();
    let threads: HashSet<ThreadId> = room.threads.lock().unwrap().values().copied().collect();
    assert_eq!(threads.len(), 2, "each thread got some of the connections");
    wait_for("subscribers counted", || {
        clients[0].send(M::text("count")).unwrap();
        recv_text(&mut clients[0]) == format!("{CLIENTS} {CLIENTS}")
    });
    // Every client publishes, half through the server, half as itself
    // (then it does not get its own messages).
    for (i, c) in clients.iter_mut().enumerate() {
        let verb = if i % 2 == 0 { "pub" } else { "wspub" };
        for n in 0..MESSAGES {
            c.send(M::text(format!("{verb} {n}"))).unwrap();
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let expected = CLIENTS * MESSAGES - if i % 2 == 0 { 0 } else { MESSAGES };
        let mut next: HashMap<String, usize> = HashMap::new();
        for _ in 0..expected {
            let text = recv_text(c);
            let (from, n) = text.split_once(':').unwrap();
            let n: usize = n.parse().unwrap();
            let want = next.entry(from.to_owned()).or_insert(0);
            assert_eq!(
                n, *want,
                "client {i}: {from}'s messages in order, once each"
            );
            *want += 1;
        }
        assert!(next.values().all(|&n| n == MESSAGES));
        if i % 2 == 1 {
            assert!(
                !next.contains_key(&format!("c{i}")),
                "ws.publish skips the sender"
            );
        }
    }
    server.stop();
    assert_eq!(room.closes.load(Ordering::SeqCst), CLIENTS);
    assert_eq!(room.drops.load(Ordering::SeqCst), CLIENTS);
}

#[test]
fn ids_from_one_thread_reach_sockets_on_another() {
    let room = Room::default();
    let server = Threaded::start(2, room.clone());
    // Connections are dealt out in turn: a and b land on different threads.
    let mut a = server.client("a");
    let mut b = server.client("b");
    let threads = room.threads.lock().unwrap().clone();
    assert_ne!(threads["a"], threads["b"]);
    a.send(M::text("tell b hello from a")).unwrap();
    assert_eq!(recv_text(&mut b), "hello from a");
    wait_for("told", || !room.log.lock().unwrap().is_empty());
    assert_eq!(
        room.log.lock().unwrap()[0],
        "tell b: Sent(12) with=false",
        "handed across; with_socket only on the socket's own thread"
    );
    // Through the handle, from this thread.
    server
        .handle
        .send(room.id("a"), OwnedMessage::from("from outside"), false)
        .unwrap();
    assert_eq!(recv_text(&mut a), "from outside");
    a.send(M::text("kick b")).unwrap();
    assert_eq!(recv_close(&mut b), Some((4000, "kicked".into())));
    wait_for("b closed", || room.closes.load(Ordering::SeqCst) == 1);
}

#[test]
fn subscribing_and_leaving_while_every_thread_publishes() {
    let room = Room::default();
    let server = Threaded::start(2, room.clone());
    let mut togglers: Vec<Client> = (0..4).map(|i| server.client(&format!("t{i}"))).collect();
    let publishers: Vec<_> = (0..4)
        .map(|i| {
            let mut c = server.client(&format!("p{i}"));
            std::thread::spawn(move || {
                for n in 0..300 {
                    c.send(M::text(format!("pub {n}"))).unwrap();
                }
                c
            })
        })
        .collect();
    for round in 0..20 {
        for t in togglers.iter_mut() {
            let verb = if round % 2 == 0 { "leave" } else { "join" };
            t.send(M::text(verb)).unwrap();
        }
    }
    let _publishers: Vec<Client> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
    // Every toggler ends subscribed (20 rounds: leave, join, ...): the
    // counts across threads settle to all eight sockets.
    let mut probe = server.client("probe");
    wait_for("counts settle", || {
        probe.send(M::text("count")).unwrap();
        loop {
            let t = recv_text(&mut probe);
            if !t.contains(':') {
                break t == "9 9";
            }
        }
    });
    drop(togglers);
}

#[test]
fn stop_from_a_handler_ends_every_thread_and_the_handle_then_refuses() {
    let room = Room::default();
    // Time enough for every client to read its backlog up to the close frame.
    let mut server = Threaded::start_with(3, room.clone(), TIMEOUT);
    let mut clients: Vec<Client> = (0..6).map(|i| server.client(&format!("s{i}"))).collect();
    // Busy threads while the stop comes.
    let busy: Vec<_> = clients
        .drain(1..)
        .map(|mut c| {
            std::thread::spawn(move || {
                for n in 0..2000 {
                    if c.send(M::text(format!("pub {n}"))).is_err() {
                        break;
                    }
                }
                loop {
                    match c.read() {
                        Ok(M::Close(f)) => return f.map(|f| u16::from(f.code)),
                        Ok(_) => continue,
                        Err(_) => return None,
                    }
                }
            })
        })
        .collect();
    clients[0].send(M::text("stop")).unwrap();
    for b in busy {
        assert_eq!(b.join().unwrap(), Some(1001));
    }
    server.stop();
    assert_eq!(room.closes.load(Ordering::SeqCst), 6);
    assert_eq!(room.drops.load(Ordering::SeqCst), 6);
    assert!(matches!(
        server.handle.defer(|_| ()),
        Err(Error::NotRunning)
    ));
    assert!(matches!(
        server.handle.publish("room", "late".into(), false),
        Err(Error::NotRunning)
    ));
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err());
}

#[test]
fn serve_refuses_more_than_one_thread_and_threaded_refuses_a_taken_port() {
    let err = serve(
        ServeOptions {
            threads: 2,
            ..Default::default()
        },
        Room::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                name: "threads",
                ..
            }
        ),
        "{err}"
    );
    let server = Threaded::start(2, Room::default());
    let err = serve_threaded(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: server.port,
            threads: 2,
            ..Default::default()
        },
        Room::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Listen { .. }), "{err}");
}

/// `serve_threaded` with a thread count that cannot be honoured.
///
/// Checks: `Err(Error::InvalidOption { name: "threads", .. })`, as other
/// out-of-range options give (`queue_limit: 0`, `idle_timeout > 960`, ...).
/// Before the fix: a panic ("capacity overflow") from inside `serve_threaded`, after
/// the listening socket was bound. Not undefined behaviour; an API surprise.
#[test]
fn serve_threaded_refuses_more_threads_than_it_can_run() {
    struct H;
    impl WebSocketHandler for H {
        type Data = ();
        fn fetch(&self, _req: &mut Request<'_>, _server: &Server<()>) -> Response {
            Response::new("")
        }
    }
    let o = ServeOptions {
        threads: usize::MAX,
        hostname: "127.0.0.1".into(),
        port: 0,
        ..Default::default()
    };
    let r = std::panic::catch_unwind(|| serve_threaded(o, H).map(drop));
    match r {
        Ok(Err(Error::InvalidOption {
            name: "threads", ..
        })) => {}
        Ok(other) => panic!("unexpected: {:?}", other.err()),
        Err(_) => panic!("serve_threaded panicked"),
    }
}
