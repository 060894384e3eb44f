//! The bus tests' harness (servers of ours on their own threads, clients,
//! real bus servers) and the scenarios that both transports run.
#![allow(dead_code)]

pub mod servers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tungstenite::Message as M;
use uws::*;

use crate::common::deflate::{DeflateClient, OFFER};
use crate::common::{
    connect, recv, recv_text, try_start_threaded, wait_for, Client, Running, TIMEOUT,
};
use servers::{External, Kind};

/// Makes the bus of a test from its server's URL.
pub type MakeBus<'a> = &'a dyn Fn(&str) -> Bus;

/// Asks the bus how many subscribers each topic has (`None`: it cannot
/// tell).
pub type AskBus<'a> = &'a dyn Fn(&External, &[&str]) -> Option<Vec<usize>>;

/// The bus tests of one binary run one at a time: they start real servers
/// and measure the process's threads.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A room where clients say what to do, one command per text message:
/// `sub\nTOPIC`, `unsub\nTOPIC` (answered `subscribed TOPIC` /
/// `unsubscribed TOPIC`), `pub\nTOPIC\nBODY` (the server publishes),
/// `wspub\nTOPIC\nBODY` (the socket publishes), `bin\nTOPIC\nBODY`
/// (binary), `zip\nTOPIC\nBODY` (asking for compression).
#[derive(Clone, Default)]
pub struct Room {
    pub errors: Arc<Mutex<Vec<String>>>,
}

impl WebSocketHandler for Room {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        crate::common::accept_upgrade(req, server)
    }

    fn open(&self, ws: &mut ServerWebSocket<()>) {
        ws.send_text("welcome");
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        let mut parts = text.splitn(3, '\n');
        let command = parts.next().unwrap_or("");
        let topic = parts.next().unwrap_or("");
        let body = parts.next().unwrap_or("");
        match command {
            "sub" => {
                ws.subscribe(topic);
                ws.send_text(&format!("subscribed {topic}"));
            }
            "unsub" => {
                ws.unsubscribe(topic);
                ws.send_text(&format!("unsubscribed {topic}"));
            }
            "pub" => {
                ws.server().publish(topic, body);
            }
            "wspub" => {
                ws.publish(topic, body);
            }
            "bin" => {
                ws.server().publish(topic, body.as_bytes());
            }
            "zip" => {
                ws.server().publish_compressed(topic, body);
            }
            _ => {}
        }
    }

    fn error(&self, _ws: Option<&mut ServerWebSocket<()>>, error: &Error) {
        self.errors.lock().unwrap().push(error.to_string());
    }
}

/// The options of a test server: `threads` loops, the bus, no
/// backpressure limit (test clients read in bursts), compression offered.
pub fn options(bus: Option<Bus>, threads: usize) -> ServeOptions {
    ServeOptions {
        hostname: "127.0.0.1".into(),
        port: 0,
        threads,
        bus,
        stop_grace_period: Duration::from_secs(1),
        websocket: WebSocketOptions {
            backpressure_limit: 0,
            per_message_deflate: Some(PerMessageDeflate::default()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A server of ours (a [`Room`]) on its own thread(s); stopped on drop.
pub struct Node {
    pub port: u16,
    pub handle: ServerHandle<()>,
    pub room: Room,
    running: Running<()>,
}

impl Node {
    /// Starts a server with `options` (`serve_threaded`: one loop per
    /// `threads`), or returns `serve`'s error.
    pub fn try_start(options: ServeOptions) -> Result<Node, Error> {
        let room = Room::default();
        let running = try_start_threaded(options, room.clone())?;
        Ok(Node {
            port: running.port,
            handle: running.handle.clone(),
            room,
            running,
        })
    }

    /// A server on `threads` loops with the bus `bus`.
    pub fn start(bus: Bus, threads: usize) -> Node {
        Node::try_start(options(Some(bus), threads)).expect("serve")
    }

    pub fn status(&self) -> BusStatus {
        self.handle.bus_status().expect("a server with a bus")
    }

    /// Waits until the bridge is connected and subscribed to `topics`
    /// topics on the bus.
    pub fn wait_linked(&self, topics: usize) {
        wait_for(&format!("the bridge linked with {topics} topics"), || {
            let s = self.status();
            s.state == BusState::Connected && s.topics == topics
        });
    }

    /// Waits until the bridge is not connected.
    pub fn wait_unlinked(&self) {
        wait_for("the bridge to notice the bus is gone", || {
            self.status().state != BusState::Connected
        });
    }

    /// A client subscribed to `topics`.
    pub fn client(&self, topics: &[&str]) -> Client {
        let mut c = connect(&format!("ws://127.0.0.1:{}/", self.port));
        assert_eq!(recv_text(&mut c), "welcome");
        for t in topics {
            subscribe(&mut c, t);
        }
        c
    }

    /// A client that offers permessage-deflate, subscribed to `topic`.
    pub fn deflate_client(&self, topic: &str) -> DeflateClient {
        let mut c = DeflateClient::connect(self.port, Some(OFFER));
        assert!(
            c.extensions.contains("permessage-deflate"),
            "{}",
            c.extensions
        );
        assert_eq!(c.read_message().unwrap().2, b"welcome");
        c.send_frame(0x81, format!("sub\n{topic}").as_bytes());
        assert_eq!(
            c.read_message().unwrap().2,
            format!("subscribed {topic}").as_bytes()
        );
        c
    }

    pub fn errors(&self) -> Vec<String> {
        self.room.errors.lock().unwrap().clone()
    }

    /// Waits for an error report containing `what`.
    pub fn wait_error(&self, what: &str) {
        wait_for(&format!("an error report with {what:?}"), || {
            self.errors().iter().any(|e| e.contains(what))
        });
    }

    /// Stops the server and waits for its thread (the bridge included);
    /// returns how long that took.
    pub fn stop(&mut self) -> Duration {
        let start = Instant::now();
        self.running.stop();
        start.elapsed()
    }
}

/// Two servers on the bus `make(url)`, `a` on one loop and `b` on
/// `b_threads`, each with a client subscribed to `room`.
pub fn pair(make: MakeBus<'_>, url: &str, b_threads: usize) -> (Node, Node, Client, Client) {
    let (a, b) = (Node::start(make(url), 1), Node::start(make(url), b_threads));
    let (ca, cb) = (a.client(&["room"]), b.client(&["room"]));
    (a, b, ca, cb)
}

pub fn subscribe(c: &mut Client, topic: &str) {
    c.send(M::text(format!("sub\n{topic}"))).unwrap();
    assert_eq!(recv_text(c), format!("subscribed {topic}"));
}

/// Sends `command\ntopic\nbody`.
pub fn say(c: &mut Client, command: &str, topic: &str, body: &str) {
    c.send(M::text(format!("{command}\n{topic}\n{body}")))
        .unwrap();
}

/// The threads of this process named `uws-bus` (the bridges and their
/// runtimes' helpers).
pub fn bridge_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "uws-bus")
        .count()
}

/// Checks that no bridge thread is left once every server is gone.
pub fn no_bridge_left() {
    wait_for("the bridge threads to end", || bridge_threads() == 0);
}

/// Two (and three) servers, one of them on two threads, share a room:
/// text, binary, the compress flag, `ws.publish` (not to the sender),
/// handle publishes; each client gets each message once.
pub fn room_spans_servers(make: MakeBus<'_>, kind: Kind, servers: usize) {
    let bus = External::start_new(kind);
    let nodes: Vec<Node> = (0..servers)
        .map(|i| Node::start(make(&bus.url()), if i == 1 { 2 } else { 1 }))
        .collect();
    let mut clients: Vec<Vec<Client>> = nodes
        .iter()
        .map(|n| vec![n.client(&["room"]), n.client(&["room"])])
        .collect();
    for n in &nodes {
        n.wait_linked(1);
    }
    let everyone = |clients: &mut Vec<Vec<Client>>, expect: M| {
        for (i, cs) in clients.iter_mut().enumerate() {
            for (k, c) in cs.iter_mut().enumerate() {
                assert_eq!(recv(c), expect, "server {i} client {k}");
            }
        }
    };
    for i in 0..servers {
        say(
            &mut clients[i][0],
            "pub",
            "room",
            &format!("hello from {i}"),
        );
        everyone(&mut clients, M::text(format!("hello from {i}")));
        say(&mut clients[i][1], "bin", "room", "bytes");
        everyone(&mut clients, M::binary(b"bytes".to_vec()));
    }
    // ws.publish: everyone but the sender, wherever they are.
    say(&mut clients[0][0], "wspub", "room", "not to me");
    for (i, cs) in clients.iter_mut().enumerate() {
        for (k, c) in cs.iter_mut().enumerate() {
            if (i, k) != (0, 0) {
                assert_eq!(recv_text(c), "not to me", "server {i} client {k}");
            }
        }
    }
    // A handle of the threaded server: through its threads and the bus.
    nodes[1]
        .handle
        .publish("room", OwnedMessage::from("from a handle"))
        .unwrap();
    everyone(&mut clients, M::text("from a handle"));
    // The sender of the ws.publish got nothing else meanwhile.
    say(&mut clients[1][0], "pub", "room", "end");
    everyone(&mut clients, M::text("end"));

    // The compress flag crosses the bus: each server compresses by its
    // own options, for the clients that negotiated it.
    let mut deflate = nodes[1].deflate_client("zipped");
    let mut publisher = nodes[0].client(&[]);
    nodes[1].wait_linked(2);
    let long = "compress me, compress me, compress me ".repeat(20);
    say(&mut publisher, "zip", "zipped", &long);
    let (opcode, compressed, payload) = deflate.read_message().unwrap();
    assert_eq!((opcode, compressed), (1, true));
    assert_eq!(payload, long.as_bytes());
    say(&mut publisher, "pub", "zipped", &long);
    let (opcode, compressed, payload) = deflate.read_message().unwrap();
    assert_eq!((opcode, compressed), (1, false));
    assert_eq!(payload, long.as_bytes());

    for (i, n) in nodes.iter().enumerate() {
        wait_for("the counters", || {
            let s = n.status();
            s.published > 0 && s.received > 0
        });
        assert_eq!(n.status().dropped(), 0, "server {i}: {:?}", n.status());
        assert!(
            n.errors().iter().any(|e| e.contains("bus connected")),
            "server {i}: {:?}",
            n.errors()
        );
    }
    let ids: std::collections::HashSet<u64> = nodes.iter().map(|n| n.status().server_id).collect();
    assert_eq!(ids.len(), servers, "every server has its own id");
}

/// 10 000 messages from senders on three servers (one on two threads)
/// reach each of six receivers exactly once, in each sender's order.
pub fn ten_thousand_exactly_once_in_order(make: MakeBus<'_>, kind: Kind) {
    const TOTAL: usize = 10_000;
    let bus = External::start_new(kind);
    let nodes: Vec<Node> = (0..3)
        .map(|i| Node::start(make(&bus.url()), if i == 1 { 2 } else { 1 }))
        .collect();
    let receivers: Vec<Client> = nodes
        .iter()
        .flat_map(|n| [n.client(&["room"]), n.client(&["room"])])
        .collect();
    for n in &nodes {
        n.wait_linked(1);
    }
    let counts = [3334, 3333, 3333];
    assert_eq!(counts.iter().sum::<usize>(), TOTAL);
    let readers: Vec<JoinHandle<Result<(), String>>> = receivers
        .into_iter()
        .enumerate()
        .map(|(r, mut c)| {
            std::thread::spawn(move || {
                let mut next = [0usize; 3];
                for _ in 0..TOTAL {
                    let text = recv_text(&mut c);
                    let (sender, seq) = text
                        .split_once(':')
                        .ok_or_else(|| format!("receiver {r}: unexpected {text:?}"))?;
                    let (sender, seq): (usize, usize) =
                        (sender.parse().unwrap(), seq.parse().unwrap());
                    if seq != next[sender] {
                        return Err(format!(
                            "receiver {r}: from sender {sender} got {seq}, expected {}",
                            next[sender]
                        ));
                    }
                    next[sender] += 1;
                }
                if next != counts {
                    return Err(format!("receiver {r}: got {next:?}"));
                }
                Ok(())
            })
        })
        .collect();
    let senders: Vec<JoinHandle<()>> = nodes
        .iter()
        .enumerate()
        .map(|(s, n)| {
            let mut c = n.client(&[]);
            let count = counts[s];
            std::thread::spawn(move || {
                for i in 0..count {
                    c.write(M::text(format!("pub\nroom\n{s}:{i}"))).unwrap();
                }
                c.flush().unwrap();
                // Keep the socket open until everything was read.
                let _ = c.read();
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap().unwrap();
    }
    for (i, n) in nodes.iter().enumerate() {
        // Counted once the bus answered, maybe after the deliveries.
        wait_for(&format!("server {i}'s counters"), || {
            let s = n.status();
            s.published == counts[i] as u64 && s.received == (TOTAL - counts[i]) as u64
        });
        assert_eq!(n.status().dropped(), 0, "server {i}: {:?}", n.status());
    }
    drop(nodes);
    for s in senders {
        s.join().unwrap();
    }
}

/// Reads data messages until `want` holds for one; returns those read
/// before it.
fn read_until(c: &mut Client, mut want: impl FnMut(&str) -> bool) -> Vec<String> {
    let mut before = Vec::new();
    loop {
        let text = recv_text(c);
        if want(&text) {
            return before;
        }
        before.push(text);
    }
}

/// A server subscribes on the bus to a topic while it has subscribers to
/// it and leaves when the last one goes, while another server publishes
/// on every topic all along. `bus_subscribers(channels)` asks the bus how
/// many subscribers each topic has (`None` where the bus cannot tell).
pub fn topics_follow_subscribers(make: MakeBus<'_>, kind: Kind, bus_subscribers: AskBus<'_>) {
    let bus = External::start_new(kind);
    let (a, b) = (
        Node::start(make(&bus.url()), 1),
        Node::start(make(&bus.url()), 2),
    );
    let topics = ["t0", "t1", "t2", "t3", "t4"];
    a.wait_linked(0);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (handle, stop) = (a.handle.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for t in topics {
                    let _ = handle.publish(t, OwnedMessage::from(format!("{t}:{n}")));
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut c = b.client(&[]);
    let mut churn = b.client(&[]);
    for (k, t) in topics.iter().enumerate() {
        // Messages of the topics before may come before the answer.
        c.send(M::text(format!("sub\n{t}"))).unwrap();
        read_until(&mut c, |m| m == format!("subscribed {t}"));
        b.wait_linked(k + 1);
        // Its messages come now (those of the topics before too).
        read_until(&mut c, |m| m.starts_with(&format!("{t}:")));
    }
    if let Some(counts) = bus_subscribers(&bus, &topics) {
        assert_eq!(counts, vec![1; topics.len()], "one subscription per server");
    }
    // Another socket comes and goes on t0 many times: the server stays
    // subscribed (it has a subscriber all along).
    for _ in 0..50 {
        subscribe(&mut churn, "t0");
        churn.send(M::text("unsub\nt0")).unwrap();
        read_until(&mut churn, |m| m == "unsubscribed t0");
    }
    b.wait_linked(topics.len());
    for (k, t) in topics.iter().enumerate() {
        c.send(M::text(format!("unsub\n{t}"))).unwrap();
        let before = read_until(&mut c, |m| m == format!("unsubscribed {t}"));
        assert!(
            before
                .iter()
                .all(|m| topics.iter().any(|t| m.starts_with(&format!("{t}:")))),
            "{before:?}"
        );
        b.wait_linked(topics.len() - k - 1);
    }
    if let Some(counts) = bus_subscribers(&bus, &topics) {
        assert_eq!(counts, vec![0; topics.len()], "left on the bus");
    }
    // Nothing of those topics comes any more (the answer comes next).
    subscribe(&mut c, "final");
    b.wait_linked(1);
    a.handle
        .publish("final", OwnedMessage::from("final"))
        .unwrap();
    assert_eq!(recv_text(&mut c), "final");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.join().unwrap();
    assert_eq!(b.status().dropped(), 0, "{:?}", b.status());
}

/// Topics that are not names: empty, with spaces, dots, wildcards,
/// non-ASCII, and long.
pub fn any_string_is_a_topic(make: MakeBus<'_>, kind: Kind) {
    let bus = External::start_new(kind);
    let (a, b) = (
        Node::start(make(&bus.url()), 1),
        Node::start(make(&bus.url()), 1),
    );
    let long = "long topic ".repeat(40);
    let topics = ["", "a.b c", "*", ">", "x.>", "é=3D/ünï", long.as_str()];
    let mut c = b.client(&topics);
    let mut sender = a.client(&[]);
    // Publishes made before a server's bridge is connected stay local.
    a.wait_linked(0);
    b.wait_linked(topics.len());
    for t in topics {
        say(&mut sender, "pub", t, &format!("on {t}"));
        assert_eq!(recv_text(&mut c), format!("on {t}"));
    }
    assert_eq!(b.status().dropped(), 0, "{:?}", b.status());
}

/// The bus dies and comes back: local delivery goes on, the publishes
/// meanwhile are dropped for the other servers and counted, the bridges
/// report it, reconnect, subscribe again, and carry on.
pub fn bus_dies_and_comes_back(make: MakeBus<'_>, kind: Kind) {
    let mut bus = External::start_new(kind);
    let (a, b, mut ca, mut cb) = pair(make, &bus.url(), 2);
    a.wait_linked(1);
    b.wait_linked(1);
    say(&mut ca, "pub", "room", "before");
    assert_eq!(recv_text(&mut ca), "before");
    assert_eq!(recv_text(&mut cb), "before");

    bus.kill();
    a.wait_unlinked();
    b.wait_unlinked();
    for i in 0..20 {
        say(&mut ca, "pub", "room", &format!("local {i}"));
        assert_eq!(
            recv_text(&mut ca),
            format!("local {i}"),
            "local delivery goes on"
        );
    }
    wait_for("the publishes meanwhile counted", || {
        a.status().dropped_disconnected >= 20
    });
    a.wait_error("bus reconnecting: lost");
    b.wait_error("bus reconnecting: lost");

    bus.start();
    a.wait_linked(1);
    b.wait_linked(1);
    assert!(a.status().reconnects >= 1 && b.status().reconnects >= 1);
    a.wait_error("bus connected: reconnected");
    say(&mut ca, "pub", "room", "after");
    assert_eq!(recv_text(&mut ca), "after");
    assert_eq!(
        recv_text(&mut cb),
        "after",
        "nothing of the outage, then this"
    );
    // And the other way, from the threaded server.
    say(&mut cb, "pub", "room", "back");
    assert_eq!(recv_text(&mut cb), "back");
    assert_eq!(recv_text(&mut ca), "back");
}

/// A bus that is down when the servers start: they serve locally, the
/// bridges keep trying, and link up once the bus is there.
pub fn bus_down_at_start(make: MakeBus<'_>, kind: Kind) {
    let mut bus = External::stopped(kind);
    let (a, b, mut ca, mut cb) = pair(make, &bus.url(), 1);
    a.wait_error("bus connecting: cannot reach");
    assert_eq!(a.status().state, BusState::Connecting);
    say(&mut ca, "pub", "room", "alone");
    assert_eq!(recv_text(&mut ca), "alone");
    bus.start();
    a.wait_linked(1);
    b.wait_linked(1);
    assert_eq!(a.status().reconnects, 0, "a first connection");
    say(&mut ca, "pub", "room", "together");
    assert_eq!(recv_text(&mut ca), "together");
    assert_eq!(recv_text(&mut cb), "together");
}

/// `serve` and `serve_threaded` refuse buses they can never use, with the
/// reason and without the password.
pub fn bad_buses_are_refused(buses: Vec<(Bus, &str)>) {
    for (bus, expected) in buses {
        for threads in [1, 2] {
            let shown = format!("{bus:?}");
            assert!(!shown.contains("secret"), "{shown}");
            match Node::try_start(options(Some(bus.clone()), threads)) {
                Err(Error::InvalidOption {
                    name: "bus",
                    reason,
                }) => {
                    assert!(reason.contains(expected), "{shown}: {reason}");
                    assert!(!reason.contains("secret"), "{reason}");
                }
                Err(e) => panic!("{shown}: unexpected error {e}"),
                Ok(_) => panic!("{shown}: accepted"),
            }
        }
    }
}

/// Stopping a server whose bus does not answer (frozen) ends its bridge
/// in bounded time, and no bridge thread is left behind.
pub fn stop_ends_the_bridge(make: MakeBus<'_>, kind: Kind) {
    let bus = External::start_new(kind);
    let mut a = Node::start(make(&bus.url()), 2);
    let mut c = a.client(&["room"]);
    a.wait_linked(1);
    assert!(bridge_threads() >= 1);
    bus.pause();
    for i in 0..100 {
        say(&mut c, "pub", "room", &format!("{i}"));
    }
    assert_eq!(recv_text(&mut c), "0");
    let took = a.stop();
    // The bridge gives what waits one second; runtimes end in a quarter.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(a.status().state, BusState::Stopped);
    no_bridge_left();
    bus.resume();
}

/// Two chat example processes started with the same bus (`flag URL`)
/// make one room.
pub fn chat_example_spans_processes(flag: &str, url: &str) {
    use tungstenite::stream::MaybeTlsStream;
    let one = crate::common::run_example("chat", &["--clients", "1", flag, url]);
    let two = crate::common::run_example("chat", &["--clients", "1", flag, url]);
    let mut ann = connect(&format!("ws://127.0.0.1:{}/?name=ann", one.port));
    let mut bob = connect(&format!("ws://127.0.0.1:{}/?name=bob", two.port));
    // Each process announces its own members, to them only.
    assert_eq!(recv_text(&mut ann), "ready");
    assert_eq!(recv_text(&mut bob), "ready");
    if let MaybeTlsStream::Plain(s) = ann.get_mut() {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    // Bob talks until Ann hears him: both processes are on the bus then.
    let deadline = Instant::now() + TIMEOUT;
    let mut n = 0;
    'linked: loop {
        assert!(Instant::now() < deadline, "the processes never linked");
        n += 1;
        bob.send(M::text(format!("ping {n}"))).unwrap();
        while let Ok(m) = ann.read() {
            match m {
                M::Text(t) if t.starts_with("bob: ping") => break 'linked,
                M::Ping(_) | M::Pong(_) => {}
                other => panic!("ann got {other:?}"),
            }
        }
    }
    if let MaybeTlsStream::Plain(s) = ann.get_mut() {
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
    }
    ann.send(M::text("hello")).unwrap();
    loop {
        let line = recv_text(&mut bob);
        if line == "ann: hello" {
            break;
        }
        assert!(line.starts_with("bob: ping"), "{line}");
    }
}

/// Counts messages by text.
pub fn tally(messages: &[String]) -> HashMap<&str, usize> {
    let mut t = HashMap::new();
    for m in messages {
        *t.entry(m.as_str()).or_default() += 1;
    }
    t
}
