//! Safe user code that tries to break the API's memory-safety promises:
//! reentrancy from every handler, closes and stops at odd times, panics,
//! drops that use handles. Each test asserts the safe outcome. These were
//! found by a hostile review (several crashed or showed invalid accesses
//! under valgrind before the fixes); CI also runs them under memcheck.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::connect;
use common::*;
use tungstenite::Message as M;
use uws::*;

use common::probe::EventLog as Log;

pub struct D {
    pub name: String,
    drops: Arc<AtomicUsize>,
    handle: Option<ServerHandle<D>>,
    log: Log,
}

impl Drop for D {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        self.log.push(format!("drop:{}", self.name));
        if let Some(h) = &self.handle {
            // A Drop that uses a ServerHandle.
            let r1 = h.publish("room", OwnedMessage::from("from drop"), false);
            let r2 = h.defer(|s| {
                let _ = s.pending_websockets();
            });
            self.log.push(format!(
                "drop-handle:{}:{:?}:{:?}",
                self.name,
                r1.is_ok(),
                r2.is_ok()
            ));
            if self.name.contains("dropstop") {
                let r = h.stop();
                self.log
                    .push(format!("drop-stop:{}:{}", self.name, r.is_ok()));
            }
        }
        if self.name.contains("droppanic") {
            panic!("drop of {} panics", self.name);
        }
    }
}

#[derive(Clone, Default)]
struct Attack {
    log: Log,
    drops: Arc<AtomicUsize>,
    ids: Arc<Mutex<HashMap<String, SocketId>>>,
    /// What the subscription handler does when a socket leaves a topic
    /// because it is closing (old > new).
    sub_mode: Arc<Mutex<String>>,
    handle: Arc<Mutex<Option<ServerHandle<D>>>>,
}

impl Attack {
    fn id(&self, name: &str) -> Option<SocketId> {
        self.ids.lock().unwrap().get(name).copied()
    }
    fn name_of(&self, id: SocketId) -> String {
        self.ids
            .lock()
            .unwrap()
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
            .unwrap_or_default()
    }
    fn data(&self, name: &str) -> D {
        D {
            name: name.to_string(),
            drops: self.drops.clone(),
            handle: if name.contains("drophandle") || name.contains("dropstop") {
                self.handle.lock().unwrap().clone()
            } else {
                None
            },
            log: self.log.clone(),
        }
    }
    /// Uses every method of a socket that is closing or closed; logs results.
    fn use_after(&self, tag: &str, ws: &mut ServerWebSocket<D>) {
        let send = ws.send_text("after").to_bun();
        let sub = ws.subscribe("after-topic");
        let unsub = ws.unsubscribe("room");
        let issub = ws.is_subscribed("room");
        let subs = ws.subscriptions().len();
        let publ = ws.publish("room", "after-pub", false);
        let spub = ws.server().publish("room", "after-spub", false);
        ws.data_mut().name.push_str("+mut");
        let corked = ws.cork(|w| w.send_text("in cork").to_bun());
        let ping = ws.ping(b"p").to_bun();
        let buffered = ws.buffered_amount();
        let addr = ws.remote_address().is_some();
        let state = ws.ready_state().to_bun();
        let again = ws.close(1000, "again").is_ok();
        ws.terminate();
        self.log.push(format!(
            "{tag}:send={send}:sub={sub}:unsub={unsub}:issub={issub}:subs={subs}:pub={publ:?}:spub={spub:?}:cork={corked}:ping={ping}:buf={buffered}:addr={addr}:state={state}:closeagain={again}"
        ));
    }
}

impl WebSocketHandler for Attack {
    type Data = D;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<D>) -> Response {
        let name = req.query_param("name").unwrap_or_default().into_owned();
        let path = req.path().to_string();
        match path.as_str() {
            "/twice" => {
                let a = server.upgrade(req, UpgradeOptions::new(self.data(&name)));
                let b = server.upgrade(
                    req,
                    UpgradeOptions::new(self.data(&format!("{name}-second"))),
                );
                self.log.push(format!("twice:{a}:{b}"));
                return Response::new("BODY-AFTER-UPGRADE").with_header("X-After", "1");
            }
            "/body" => {
                let a = server.upgrade(req, UpgradeOptions::new(self.data(&name)));
                self.log.push(format!("body:{a}"));
                return Response::new("BODY-AFTER-UPGRADE")
                    .with_status(404)
                    .with_header("X-After", "1");
            }
            "/hdr" => {
                let k = req.query_param("k").unwrap_or_default().into_owned();
                let v = req.query_param("v").unwrap_or_default().into_owned();
                let a =
                    server.upgrade(req, UpgradeOptions::new(self.data(&name)).with_header(k, v));
                self.log.push(format!("hdr:{a}"));
                if a {
                    return Response::new("");
                }
                return Response::new("refused").with_status(400);
            }
            "/proto" => {
                let p = req.query_param("p").unwrap_or_default().into_owned();
                let a = server.upgrade(req, UpgradeOptions::new(self.data(&name)).with_protocol(p));
                self.log.push(format!("proto:{a}"));
                if a {
                    return Response::new("");
                }
                return Response::new("refused").with_status(400);
            }
            "/proto2" => {
                // Two Sec-WebSocket-Protocol headers: the first becomes the
                // protocol, what happens to the second?
                let a = server.upgrade(
                    req,
                    UpgradeOptions::new(self.data(&name))
                        .with_header("Sec-WebSocket-Protocol", "chat")
                        .with_header("Sec-WebSocket-Protocol", "not-offered"),
                );
                self.log.push(format!("proto2:{a}"));
                return Response::new("");
            }
            "/stop" => {
                server.stop();
                self.log.push("fetch-stopped");
                return Response::new("stopped");
            }
            "/stopup" => {
                let a = server.upgrade(req, UpgradeOptions::new(self.data(&name)));
                server.stop();
                self.log.push(format!("stopup:{a}"));
                return Response::new("");
            }
            "/upstop-panic" => {
                let a = server.upgrade(req, UpgradeOptions::new(self.data(&name)));
                self.log.push(format!("upstop-panic:{a}"));
                panic!("fetch panics after upgrade");
            }
            "/send" => {
                let st = match self.id(&name) {
                    Some(id) => format!("{:?}", server.send(id, "via fetch", false)),
                    None => "noid".into(),
                };
                let pending = server.pending_websockets();
                self.log
                    .push(format!("fetch-send:{name}:{st}:pending={pending}"));
                return Response::new(format!("{st} pending={pending}"));
            }
            "/swap" => {
                let a = self.id("A").unwrap();
                let b = self.id("B").unwrap();
                let r = server.with_socket(a, |wa| {
                    server.with_socket(b, |wb| {
                        std::mem::swap(wa.data_mut(), wb.data_mut());
                    })
                });
                self.log.push(format!("swapped:{:?}", r));
                return Response::new("swapped");
            }
            "/swap2" => {
                let a = self.id("A").unwrap();
                let b = self.id("B").unwrap();
                let r = server.with_socket(a, |wa| {
                    server.with_socket(b, |wb| std::mem::swap(wa.data_mut(), wb.data_mut()));
                    // `wa` now carries the frame pointer of the inner, already
                    // returned, with_socket call.
                    let st = wa.send_text("sent through A's reference after the swap");
                    (st, wa.id() == a, wa.data().name.clone())
                });
                self.log.push(format!("swap2:{r:?}"));
                return Response::new("swapped2");
            }
            "/pending" => {
                return Response::new(server.pending_websockets().to_string());
            }
            "/panic" => panic!("fetch panics"),
            _ => {}
        }
        if server.upgrade(req, UpgradeOptions::new(self.data(&name))) {
            return Response::new("");
        }
        Response::new("not a websocket").with_status(400)
    }

    fn open(&self, ws: &mut ServerWebSocket<D>) {
        let name = ws.data().name.clone();
        self.ids.lock().unwrap().insert(name.clone(), ws.id());
        self.log
            .push(format!("open:{name}:state={}", ws.ready_state().to_bun()));
        if name.starts_with("sub") {
            ws.subscribe("room");
            ws.subscribe("room2");
        }
        match name.as_str() {
            "stopopen" => {
                ws.server().stop();
                self.use_after("after-stop-open", ws);
            }
            "panicopen" => panic!("open panics"),
            "zombie" => {
                let s = ws.send_text("zombie hello").to_bun();
                self.log.push(format!("zombie-open-send:{s}"));
            }
            _ => {}
        }
    }

    fn message(&self, ws: &mut ServerWebSocket<D>, message: Message<'_>) {
        let text = match message {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => {
                ws.send_binary(b);
                return;
            }
        };
        let mut words = text.splitn(3, ' ');
        let cmd = words.next().unwrap_or("").to_string();
        let a = words.next().unwrap_or("").to_string();
        let name = ws.data().name.clone();
        self.log.push(format!("message:{name}:{text}"));
        match cmd.as_str() {
            "echo" => {
                ws.send_text(&a);
            }
            "sub" => {
                let r = ws.subscribe(&a);
                ws.send_text(&r.to_string());
            }
            "close" => {
                let r = ws.close(4000, "bye").is_ok();
                self.log.push(format!("closed-in-message:{r}"));
                self.use_after("after-close", ws);
            }
            "terminate" => {
                ws.terminate();
                self.use_after("after-terminate", ws);
            }
            "stop" => {
                ws.server().stop();
                self.use_after("after-stop-message", ws);
            }
            "withself" => {
                let id = ws.id();
                let r = ws.server().with_socket(id, |_other| 1);
                self.log.push(format!("withself:{r:?}"));
                ws.send_text(&format!("{r:?}"));
            }
            "withclose" => {
                let other = self.id(&a).unwrap();
                let log = self.log.clone();
                let r = ws.server().with_socket(other, |b| {
                    let c = b.close(4001, "closed by other").is_ok();
                    let s = b.send_text("after close in with_socket").to_bun();
                    log.push(format!(
                        "withclose-inside:{c}:{s}:{}",
                        b.ready_state().to_bun()
                    ));
                    b.data().name.clone()
                });
                let again = ws.server().with_socket(other, |_| ());
                let send = ws.server().send(other, "x", false);
                self.log
                    .push(format!("withclose:{r:?}:again={again:?}:send={send:?}"));
                ws.send_text("ok");
            }
            "closeother" => {
                let other = self.id(&a).unwrap();
                let r = ws.server().close(other, 4003, "closed by other");
                self.log.push(format!("closeother:{a}:{}", r.is_ok()));
                ws.send_text("ok");
            }
            "withterm" => {
                let other = self.id(&a).unwrap();
                let r = ws.server().with_socket(other, |b| {
                    b.terminate();
                    b.send_text("x").to_bun()
                });
                self.log.push(format!("withterm:{r:?}"));
                ws.send_text("ok");
            }
            "withpanic" => {
                // close the other socket inside with_socket, then panic
                let other = self.id(&a).unwrap();
                ws.server().with_socket(other, |b| {
                    let _ = b.close(4002, "then panic");
                    panic!("panic inside with_socket after close");
                });
            }
            "subn" => {
                let n: usize = a.parse().unwrap();
                let t = Instant::now();
                let mut ok = 0;
                for i in 0..n {
                    if ws.subscribe(&format!("topic-{i}")) {
                        ok += 1;
                    }
                }
                let subs = ws.subscriptions().len();
                self.log
                    .push(format!("subn:{ok}:{subs}:{}ms", t.elapsed().as_millis()));
                ws.send_text(&format!("{ok} {subs}"));
            }
            "topics" => {
                let big = "t".repeat(64 * 1024);
                let nul = "a\0b";
                let mut out = Vec::new();
                for topic in ["", big.as_str(), nul] {
                    let s = ws.subscribe(topic);
                    let i = ws.is_subscribed(topic);
                    let c = ws.server().subscriber_count(topic);
                    let p = ws.server().publish(topic, "to topic", false);
                    out.push(format!("{}:{s}:{i}:{c}:{p:?}", topic.len()));
                }
                let subs = ws.subscriptions();
                let has_nul = subs.iter().any(|t| t == nul);
                let has_big = subs.iter().any(|t| t.len() == 64 * 1024);
                let has_empty = subs.iter().any(|t| t.is_empty());
                // "a" must not match "a\0b"
                let a_sub = ws.is_subscribed("a");
                for topic in ["", big.as_str(), nul] {
                    out.push(format!("unsub{}:{}", topic.len(), ws.unsubscribe(topic)));
                }
                self.log.push(format!(
                    "topics:{}:nul={has_nul}:big={has_big}:empty={has_empty}:a={a_sub}",
                    out.join(",")
                ));
                ws.send_text("topics done");
            }
            "cork" => {
                let log = self.log.clone();
                let r = ws.cork(|w| {
                    let s1 = w.send_text("c1").to_bun();
                    let inner = w.cork(|w2| {
                        let s2 = w2.send_text("c2").to_bun();
                        let c = w2.close(1000, "closed in cork").is_ok();
                        let s3 = w2.send_text("c3").to_bun();
                        let inner2 = w2.cork(|w3| w3.send_text("c4").to_bun());
                        format!("{s2}:{c}:{s3}:{inner2}")
                    });
                    let s5 = w.send_text("c5").to_bun();
                    format!("{s1}:{inner}:{s5}")
                });
                log.push(format!("cork:{r}"));
            }
            "corkpanic" => {
                ws.cork(|w| {
                    w.cork(|_| panic!("panic in nested cork"));
                });
            }
            "corkcatch" => {
                // Catch the nested cork's panic in the outer cork closure.
                let r = ws.cork(|w| {
                    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        w.cork(|_| -> i32 { panic!("inner") })
                    }));
                    let s = w.send_text("after caught").to_bun();
                    (p.is_err(), s)
                });
                self.log.push(format!("corkcatch:{r:?}"));
            }
            "panic" => panic!("message panics"),
            "panicclose" => {
                // closes the others then panics
                for other in a.split(',') {
                    if let Some(id) = self.id(other) {
                        let _ = ws.server().close(id, 1000, "closed by panicker");
                    }
                }
                panic!("message panics while others close");
            }
            "flood" => {
                let block = vec![0u8; 65536];
                while ws.send_binary(&block) == SendStatus::Sent(65536) {}
                self.log.push("flooded");
            }
            _ => {}
        }
    }

    fn close(&self, ws: &mut ServerWebSocket<D>, code: u16, reason: &str) {
        let name = ws.data().name.clone();
        self.log.push(format!(
            "close:{name}:{code}:{reason}:state={}",
            ws.ready_state().to_bun()
        ));
        if name.starts_with("closepub") {
            let p = ws.publish("room", "from close", false);
            let s = ws.subscribe("room3");
            let u = ws.unsubscribe("room");
            let sp = ws.server().publish("room", "server pub from close", false);
            let c = ws.server().subscriber_count("room");
            let own = ws.server().send(ws.id(), "to self", false);
            let with = ws.server().with_socket(ws.id(), |_| ());
            self.log.push(format!(
                "closepub:{name}:pub={p:?}:sub={s}:unsub={u}:spub={sp:?}:count={c}:own={own:?}:with={with:?}"
            ));
        }
        if name.starts_with("closestop") {
            ws.server().stop();
            self.log.push(format!("close-stopped:{name}"));
        }
        if name.starts_with("closepanic") {
            panic!("close panics");
        }
    }

    fn drain(&self, ws: &mut ServerWebSocket<D>) {
        let name = ws.data().name.clone();
        self.log.push(format!("drain:{name}"));
        if name.starts_with("drainstop") {
            ws.server().stop();
            self.use_after("after-stop-drain", ws);
        }
    }

    fn subscription(&self, server: &Server<D>, id: SocketId, topic: &str, old: usize, new: usize) {
        let mode = self.sub_mode.lock().unwrap().clone();
        let name = self.name_of(id);
        self.log
            .push(format!("subscription:{name}:{topic}:{old}:{new}"));
        if old > new && !mode.is_empty() {
            match mode.as_str() {
                "close" => {
                    let r = server.close(id, 1000, "closed from subscription");
                    self.log.push(format!("sub-close:{name}:{}", r.is_ok()));
                }
                "stop" => {
                    server.stop();
                    self.log.push(format!("sub-stop:{name}"));
                }
                "with_unsub" => {
                    let r = server.with_socket(id, |ws| {
                        let a = ws.unsubscribe("room");
                        let b = ws.unsubscribe("room2");
                        (a, b)
                    });
                    self.log.push(format!("sub-with-unsub:{name}:{r:?}"));
                }
                "with_term" => {
                    let r = server.with_socket(id, |ws| ws.terminate());
                    self.log.push(format!("sub-with-term:{name}:{r:?}"));
                }
                "with_send" => {
                    let r = server.with_socket(id, |ws| ws.send_text("from subscription").to_bun());
                    self.log.push(format!("sub-with-send:{name}:{r:?}"));
                }
                _ => {}
            }
        }
    }

    fn error(&self, ws: Option<&mut ServerWebSocket<D>>, error: &Error) {
        let name = ws.map(|w| w.data().name.clone()).unwrap_or_default();
        self.log.push(format!("error:{name}:{error}"));
    }
}

fn attack_server(mode: &str) -> (Attack, Running<D>) {
    let a = Attack::default();
    *a.sub_mode.lock().unwrap() = mode.to_string();
    let r = start(WebSocketOptions::default(), a.clone());
    *a.handle.lock().unwrap() = Some(r.handle.clone());
    (a, r)
}

fn get(port: u16, path: &str) -> String {
    http_exchange(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
    )
}

// ---------------------------------------------------------------- close paths

#[test]
fn close_then_use_in_message() {
    let (a, mut r) = attack_server("");
    let mut c = connect(&r.url("/?name=c1"));
    c.send(M::text("close")).unwrap();
    let close = recv_close(&mut c);
    wait_for("close handler", || a.log.count_prefix("close:c1") == 1);
    r.stop();
    let after = a.log.find("after-close").unwrap();
    eprintln!("{after} close frame={close:?}");
    assert!(
        after.contains("send=0:sub=false:unsub=false:issub=false:subs=0:pub=Dropped"),
        "{after}"
    );
    assert_eq!(a.drops.load(Ordering::SeqCst), 1);
    assert_eq!(a.log.count_prefix("close:"), 1);
}

#[test]
fn terminate_then_use_in_message() {
    let (a, mut r) = attack_server("");
    let mut c = connect(&r.url("/?name=c1"));
    c.send(M::text("terminate")).unwrap();
    wait_for("close handler", || a.log.count_prefix("close:c1") == 1);
    r.stop();
    let after = a.log.find("after-terminate").unwrap();
    assert!(after.contains("send=0:sub=false"), "{after}");
    assert_eq!(a.drops.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------- stop()

#[test]
fn stop_inside_open() {
    let (a, mut r) = attack_server("");
    let mut other = connect(&r.url("/?name=other"));
    let mut c = connect(&r.url("/?name=stopopen"));
    let _ = recv_close(&mut other);
    let _ = c.read();
    wait_for("run returns", || r.finished());
    r.stop();
    eprintln!("{:?}", a.log.events());
    assert_eq!(a.drops.load(Ordering::SeqCst), 2);
    assert_eq!(a.log.count_prefix("close:"), 2);
}

#[test]
fn stop_inside_message() {
    let (a, mut r) = attack_server("");
    let mut other = connect(&r.url("/?name=other"));
    let mut c = connect(&r.url("/?name=c1"));
    c.send(M::text("stop")).unwrap();
    let _ = recv_close(&mut other);
    let _ = recv_close(&mut c);
    wait_for("run returns", || r.finished());
    r.stop();
    eprintln!("{:?}", a.log.events());
    assert_eq!(a.drops.load(Ordering::SeqCst), 2);
    assert_eq!(a.log.count_prefix("close:"), 2);
}

#[test]
fn stop_inside_close() {
    let (a, mut r) = attack_server("");
    let mut others: Vec<_> = (0..3)
        .map(|i| connect(&r.url(&format!("/?name=o{i}"))))
        .collect();
    let mut c = connect(&r.url("/?name=closestop"));
    c.close(None).unwrap();
    for o in &mut others {
        let _ = recv_close(o);
    }
    wait_for("run returns", || r.finished());
    r.stop();
    assert_eq!(a.drops.load(Ordering::SeqCst), 4);
    assert_eq!(a.log.count_prefix("close:"), 4);
}

#[test]
fn stop_inside_drain() {
    let (a, mut r) = attack_server("");
    let mut other = connect(&r.url("/?name=other"));
    let mut c = connect(&r.url("/?name=drainstop"));
    c.send(M::text("flood")).unwrap();
    wait_for("flooded", || a.log.has("flooded"));
    // read everything so drain fires
    let deadline = Instant::now() + Duration::from_secs(20);
    while !a.log.has("drain:drainstop") && Instant::now() < deadline {
        match c.read() {
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = recv_close(&mut other);
    wait_for("run returns", || r.finished());
    r.stop();
    eprintln!("{:?}", a.log.find("after-stop-drain"));
    assert_eq!(a.drops.load(Ordering::SeqCst), 2);
}

#[test]
fn stop_inside_fetch_without_upgrade() {
    let (a, mut r) = attack_server("");
    let mut other = connect(&r.url("/?name=other"));
    let resp = get(r.port, "/stop");
    eprintln!("response to /stop: {resp:?}");
    let _ = recv_close(&mut other);
    wait_for("run returns", || r.finished());
    r.stop();
    assert!(a.log.has("fetch-stopped"));
    assert_eq!(a.drops.load(Ordering::SeqCst), 1);
    // The response that was being answered when the server stopped still
    // goes out, and ends the connection.
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("Connection: close\r\n"), "{resp}");
    assert!(resp.ends_with("\r\n\r\nstopped"), "{resp}");
}

/// upgrade() succeeds, then stop() in the same fetch: the socket that
/// opens afterwards must still get its close handler and drop its data,
/// and must not stay in the registry.
#[test]
fn stop_inside_fetch_after_upgrade() {
    let (a, mut r) = attack_server("");
    // A client that does not answer the close frame keeps the loop alive.
    let _keep = connect(&r.url("/?name=keep"));
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(&handshake("/stopup?name=zombie", "")).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    eprintln!("zombie client got {answer:?}");
    // The upgrade was abandoned when the server stopped.
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    // Ask the loop (through the handle, from this thread) to use the id.
    let zid = a.id("zombie");
    eprintln!("zombie id: {zid:?}");
    let log = a.log.clone();
    if let Some(zid) = zid {
        let res = r.handle.defer(move |srv| {
            let pending = srv.pending_websockets();
            let st = srv.send(zid, "to zombie", false);
            let w = srv.with_socket(zid, |ws| ws.send_text("x").to_bun());
            log.push(format!(
                "zombie-later:pending={pending}:send={st:?}:with={w:?}"
            ));
        });
        eprintln!("defer: {res:?}");
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(_keep);
    wait_for("run returns", || r.finished());
    r.stop();
    eprintln!("{:#?}", a.log.events());
    assert_eq!(
        a.drops.load(Ordering::SeqCst),
        2,
        "every D dropped once (keep + zombie)"
    );
    assert_eq!(
        a.log.count_prefix("close:"),
        a.log.count_prefix("open:"),
        "one close per open"
    );
}

// ------------------------------------------------------------- close handler

#[test]
fn pubsub_inside_close_handler() {
    let (a, mut r) = attack_server("");
    let mut listener = connect(&r.url("/?name=sublistener"));
    let mut c = connect(&r.url("/?name=closepub-sub1"));
    c.close(None).unwrap();
    wait_for("close", || a.log.count_prefix("closepub:") == 1);
    // the listener gets the socket's publish from the close handler (Bun
    // since 1.1.27), then the server's
    assert_eq!(recv(&mut listener), M::text("from close"));
    let m = recv(&mut listener);
    eprintln!("listener got {m:?}");
    assert_eq!(m, M::text("server pub from close"));
    r.stop();
    let line = a.log.find("closepub:").unwrap();
    // Inside the close handler the socket is closed: its own calls are
    // dropped but for publish, the server's work, and its id no longer
    // resolves.
    assert_eq!(
        line,
        "closepub:closepub-sub1:pub=Published(10):sub=false:unsub=false:spub=Published(21):count=1:own=Dropped:with=None"
    );
    assert_eq!(a.drops.load(Ordering::SeqCst), 2);
}

// --------------------------------------------------------------- with_socket

#[test]
fn with_socket_on_self_is_none() {
    let (a, mut r) = attack_server("");
    let mut c = connect(&r.url("/?name=c1"));
    c.send(M::text("withself")).unwrap();
    assert_eq!(recv_text(&mut c), "None");
    r.stop();
    assert!(a.log.has("withself:None"));
}

#[test]
fn with_socket_other_closed_inside_closure() {
    let (a, mut r) = attack_server("");
    let mut b = connect(&r.url("/?name=B"));
    let mut c = connect(&r.url("/?name=c1"));
    c.send(M::text("withclose B")).unwrap();
    assert_eq!(recv_text(&mut c), "ok");
    let cl = recv_close(&mut b);
    eprintln!("B close frame {cl:?}");
    wait_for("close B", || a.log.count_prefix("close:B") == 1);
    let _t = connect(&r.url("/?name=T"));
    wait_for("T open", || a.log.count_prefix("open:T") == 1);
    c.send(M::text("withterm T")).unwrap();
    assert_eq!(recv_text(&mut c), "ok");
    wait_for("close T", || a.log.count_prefix("close:T") == 1);
    r.stop();
    assert_eq!(
        a.log.find("withclose-inside:").unwrap(),
        "withclose-inside:true:0:2"
    );
    assert_eq!(
        a.log.find("withclose:").unwrap(),
        "withclose:Some(\"B\"):again=None:send=Dropped"
    );
    assert_eq!(a.log.find("withterm:").unwrap(), "withterm:Some(0)");
    assert_eq!(cl, Some((4001, "closed by other".into())));
    assert_eq!(a.log.count_prefix("close:B"), 1);
    assert_eq!(a.drops.load(Ordering::SeqCst), 3);
}

/// A panic inside with_socket after closing that socket: its close handler
/// must still run once and its data must be dropped once.
#[test]
fn panic_in_with_socket_after_close() {
    let (a, mut r) = attack_server("");
    let mut b = connect(&r.url("/?name=B"));
    let mut c = connect(&r.url("/?name=c1"));
    c.send(M::text("withpanic B")).unwrap();
    let cl = recv_close(&mut b);
    eprintln!("B got {cl:?}");
    let cc = recv_close(&mut c);
    eprintln!("c1 got {cc:?}");
    std::thread::sleep(Duration::from_millis(300));
    r.stop();
    eprintln!("{:#?}", a.log.events());
    assert_eq!(
        a.log.count_prefix("close:B"),
        1,
        "B's close handler runs once"
    );
    assert_eq!(a.drops.load(Ordering::SeqCst), 2, "both D dropped");
}

/// Two &mut ServerWebSocket at once (nested with_socket). Swapping the
/// sockets themselves does not compile (tests/compile_fail); swapping their
/// data is fine and moves nothing else.
#[test]
fn nested_with_socket_swap() {
    let (a, mut r) = attack_server("");
    let ca = connect(&r.url("/?name=A"));
    let mut cb = connect(&r.url("/?name=B"));
    wait_for("both open", || a.log.count_prefix("open:") == 2);
    eprintln!("{}", get(r.port, "/swap"));
    // A's client goes away: its close handler runs.
    drop(ca);
    wait_for("A closed", || a.log.count_prefix("close:") == 1);
    std::thread::sleep(Duration::from_millis(200));
    // A is gone; is it still reachable by id?
    eprintln!("send to A: {}", get(r.port, "/send?name=A"));
    eprintln!("send to B: {}", get(r.port, "/send?name=B"));
    eprintln!("pending: {}", get(r.port, "/pending"));
    cb.send(M::text("echo still-here")).unwrap();
    assert_eq!(recv_text(&mut cb), "via fetch");
    assert_eq!(recv_text(&mut cb), "still-here");
    r.stop();
    eprintln!("{:#?}", a.log.events());
    assert!(a.log.has("swapped:Some(Some(()))"));
    assert!(
        a.log.find("fetch-send:A:Dropped").is_some(),
        "a closed socket's id must resolve to nothing"
    );
    assert!(
        a.log.find("fetch-send:B:Sent(9):pending=1").is_some(),
        "B is still B"
    );
    // A's socket closed carrying B's data, and the other way round.
    assert!(a.log.find("close:B:").is_some());
    assert_eq!(a.drops.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------- subscription handler

fn subscription_during_peer_close(mode: &str) {
    let (a, mut r) = attack_server(mode);
    let c = connect(&r.url("/?name=sub-victim"));
    let mut other = connect(&r.url("/?name=other"));
    wait_for("open", || a.log.count_prefix("open:") == 2);
    // The peer drops the TCP connection: uWebSockets' own close path runs
    // the subscription handler for each topic, with no frame for the socket.
    drop(c);
    wait_for("close", || a.log.count_prefix("close:sub-victim") >= 1);
    std::thread::sleep(Duration::from_millis(300));
    if mode == "stop" {
        // The handler stopped the server: the other socket is told so.
        assert_eq!(
            recv_close(&mut other),
            Some((1001, "server stopping".into()))
        );
        wait_for("run returns", || r.finished());
    } else {
        other.send(M::text("echo alive")).unwrap();
        assert_eq!(recv_text(&mut other), "alive");
    }
    r.stop();
    eprintln!("{:#?}", a.log.events());
    assert_eq!(
        a.log.count_prefix("close:sub-victim"),
        1,
        "close handler runs once"
    );
    assert_eq!(
        a.log.count_prefix("close:other"),
        1,
        "close handler runs once"
    );
    assert_eq!(a.drops.load(Ordering::SeqCst), 2);
    // The closing socket's id resolved to nothing in its subscription events.
    match mode {
        "close" => assert!(a.log.has("sub-close:sub-victim:true")),
        "with_unsub" => assert!(a.log.has("sub-with-unsub:sub-victim:None")),
        "with_send" => assert!(a.log.has("sub-with-send:sub-victim:None")),
        "with_term" => assert!(a.log.has("sub-with-term:sub-victim:None")),
        _ => {}
    }
}

#[test]
fn subscription_handler_closes_the_closing_socket() {
    subscription_during_peer_close("close");
}

#[test]
fn subscription_handler_stops_while_socket_closes() {
    subscription_during_peer_close("stop");
}

#[test]
fn subscription_handler_unsubscribes_the_closing_socket() {
    subscription_during_peer_close("with_unsub");
}

#[test]
fn subscription_handler_sends_to_the_closing_socket() {
    subscription_during_peer_close("with_send");
}

// ------------------------------------------------------------------- upgrade

#[test]
fn upgrade_twice_and_body_after_upgrade() {
    let (a, mut r) = attack_server("");
    let (mut c, resp) = connect_with(r.url("/twice?name=t"));
    eprintln!("twice response: {:?} {:?}", resp.status(), resp.headers());
    assert!(resp.headers().get("x-after").is_none());
    c.send(M::text("echo hi")).unwrap();
    assert_eq!(recv_text(&mut c), "hi");
    let (mut c2, resp2) = connect_with(r.url("/body?name=b"));
    assert_eq!(resp2.status(), 101);
    assert!(resp2.headers().get("x-after").is_none());
    c2.send(M::text("echo hi2")).unwrap();
    assert_eq!(recv_text(&mut c2), "hi2");
    drop(c);
    drop(c2);
    r.stop();
    assert!(a.log.has("twice:true:false"));
    assert_eq!(
        a.drops.load(Ordering::SeqCst),
        3,
        "2 sockets + refused second data"
    );
}

#[test]
fn raw_upgrade_response_bytes() {
    let (a, mut r) = attack_server("");
    let out = raw_exchange(r.port, &handshake("/body?name=b", ""));
    let text = String::from_utf8_lossy(&out);
    eprintln!("{text:?}");
    assert!(!text.contains("BODY-AFTER-UPGRADE"));
    assert!(text.starts_with("HTTP/1.1 101"));
    r.stop();
    let _ = a;
}

#[test]
fn upgrade_header_injection_is_refused() {
    let (a, mut r) = attack_server("");
    let cases = [
        ("X-A", "1%0D%0AInjected:%20yes", false),
        ("X-A", "1%0AInjected:%20yes", false),
        ("X-A", "1%0DInjected:%20yes", false),
        ("X-A", "a%00b", false),
        ("X-A%0D%0AInjected", "x", false),
        ("X%3AA", "x", false),
        ("Upgrade", "h2c", false),
        ("Connection", "close", false),
        ("Sec-WebSocket-Accept", "x", false),
        ("Sec-WebSocket-Extensions", "x", false),
        ("Content-Length", "5", false),
        ("Transfer-Encoding", "chunked", false),
        ("Sec-WebSocket-Protocol", "x%0D%0AInjected:%20yes", false),
        ("Set-Cookie", "session=1", true),
    ];
    for (k, v, accepted) in cases {
        let head = http_exchange(r.port, &handshake(&format!("/hdr?name=h&k={k}&v={v}"), ""));
        eprintln!("{k}={v}: {head:?}");
        assert!(
            !head.to_ascii_lowercase().contains("\r\ninjected"),
            "{k}={v}: {head}"
        );
        let status = if accepted {
            "HTTP/1.1 101 "
        } else {
            "HTTP/1.1 400 "
        };
        assert!(head.starts_with(status), "{k}={v}: {head}");
    }
    for (p, accepted) in [
        ("chat%0D%0AInjected:%20yes", false),
        ("chat%0AX:%20y", false),
        ("chat", true),
    ] {
        let head = http_exchange(
            r.port,
            &handshake(
                &format!("/proto?name=p&p={p}"),
                "Sec-WebSocket-Protocol: chat, chat\r\n",
            ),
        );
        eprintln!("protocol {p}: {head:?}");
        assert!(!head.to_ascii_lowercase().contains("\r\ninjected"));
        assert_eq!(head.starts_with("HTTP/1.1 101 "), accepted, "{head}");
    }
    // Two protocol headers, the second never offered: refused.
    let head = http_exchange(
        r.port,
        &handshake("/proto2?name=p2", "Sec-WebSocket-Protocol: chat\r\n"),
    );
    eprintln!("two protocol headers: {head:?}");
    assert!(!head.starts_with("HTTP/1.1 101 "), "{head}");
    r.stop();
    assert!(a.log.has("proto2:false"));
    assert_eq!(a.log.count_prefix("hdr:true"), 1);
    assert_eq!(a.log.count_prefix("hdr:false"), cases.len() - 1);
}

// ------------------------------------------------------------------ topics

#[test]
fn hundred_thousand_topics_then_close() {
    let (a, mut r) = attack_server("");
    let mut c = connect(&r.url("/?name=many"));
    let t = Instant::now();
    c.send(M::text("subn 100000")).unwrap();
    let reply = recv_text(&mut c);
    eprintln!("subscribe 100000: {reply} in {:?}", t.elapsed());
    assert_eq!(reply, "100000 100000");
    let rss_before = rss_kb();
    let t = Instant::now();
    c.close(None).unwrap();
    let _ = c.read();
    wait_for("close", || a.log.count_prefix("close:many") == 1);
    eprintln!("close with 100000 topics: {:?}", t.elapsed());
    eprintln!("rss (KB) before close {rss_before}, after {}", rss_kb());
    eprintln!(
        "subscription events: {}",
        a.log.count_prefix("subscription:")
    );
    r.stop();
    // One event per topic joined, one per topic left.
    assert_eq!(a.log.count_prefix("subscription:many:"), 200_000);
    assert_eq!(a.log.count_prefix("close:many:"), 1);
    assert_eq!(a.drops.load(Ordering::SeqCst), 1);
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn odd_topic_names() {
    let (a, mut r) = attack_server("");
    let mut c = connect(&r.url("/?name=odd"));
    c.send(M::text("topics")).unwrap();
    loop {
        match recv(&mut c) {
            M::Text(t) if t.as_str() == "topics done" => break,
            other => eprintln!("got {:?}", other.len()),
        }
    }
    r.stop();
    assert_eq!(
        a.log.find("topics:").unwrap(),
        "topics:0:true:true:1:Published(8),65536:true:true:1:Published(8),3:true:true:1:Published(8),\
         unsub0:true,unsub65536:true,unsub3:true:nul=true:big=true:empty=true:a=false"
    );
}

// ------------------------------------------------------------------- cork

#[test]
fn nested_cork_and_close_inside_cork() {
    let (a, mut r) = attack_server("");
    let mut c = connect(&r.url("/?name=corker"));
    c.send(M::text("cork")).unwrap();
    let mut got = Vec::new();
    loop {
        match c.read() {
            Ok(M::Text(t)) => got.push(t.to_string()),
            Ok(M::Close(f)) => {
                got.push(format!("close {f:?}"));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    eprintln!("client got {got:?}");
    wait_for("close", || a.log.count_prefix("close:corker") == 1);
    r.stop();
    // Sent, sent, closed; then every send and cork is dropped.
    assert_eq!(a.log.find("cork:").unwrap(), "cork:2:2:true:0:0:0");
    assert_eq!(got[..2], ["c1", "c2"]);
    assert!(got[2].contains("closed in cork"), "{got:?}");
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(a.drops.load(Ordering::SeqCst), 1);
}

#[test]
fn panic_in_nested_cork() {
    let (a, mut r) = attack_server("");
    let mut c = connect(&r.url("/?name=corkp"));
    c.send(M::text("corkpanic")).unwrap();
    let cl = recv_close(&mut c);
    eprintln!("{cl:?}");
    let mut c2 = connect(&r.url("/?name=corkc"));
    c2.send(M::text("corkcatch")).unwrap();
    let m = recv(&mut c2);
    eprintln!("{m:?}");
    wait_for("corkcatch", || a.log.find("corkcatch").is_some());
    r.stop();
    eprintln!("{:#?}", a.log.events());
    // The panicking handler's socket closed with 1011; the caught panic
    // left the other one usable.
    assert_eq!(cl, Some((1011, "internal error".into())));
    assert_eq!(m, M::text("after caught"));
    assert!(a.log.has("corkcatch:(true, 12)"));
    assert_eq!(a.drops.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------- panics

#[test]
fn panics_while_others_close() {
    let (a, mut r) = attack_server("");
    let mut others: Vec<_> = ["closepanic-1", "closepanic-2", "o3"]
        .iter()
        .map(|n| connect(&r.url(&format!("/?name={n}"))))
        .collect();
    let mut c = connect(&r.url("/?name=panicker"));
    c.send(M::text("panicclose closepanic-1,closepanic-2,o3"))
        .unwrap();
    for o in &mut others {
        let _ = recv_close(o);
    }
    let cl = recv_close(&mut c);
    eprintln!("panicker: {cl:?}");
    // panic in open, fetch and the upgraded-then-panicked fetch
    let mut po = connect(&r.url("/?name=panicopen"));
    let _ = recv_close(&mut po);
    let resp = get(r.port, "/panic");
    assert!(resp.starts_with("HTTP/1.1 500"), "{resp}");
    let out = raw_exchange(r.port, &handshake("/upstop-panic?name=up", ""));
    eprintln!("{:?}", String::from_utf8_lossy(&out));
    // stop while a close handler panics
    let _x = connect(&r.url("/?name=closepanic-3"));
    std::thread::sleep(Duration::from_millis(100));
    r.stop();
    eprintln!("{:#?}", a.log.events());
    assert_eq!(
        a.drops.load(Ordering::SeqCst),
        7,
        "4 + panicopen + up + closepanic-3"
    );
}

// ------------------------------------------------------------- Drop of T

#[test]
fn data_drop_panics_and_uses_handle() {
    let (a, mut r) = attack_server("");
    let c1 = connect(&r.url("/?name=droppanic-1"));
    let c2 = connect(&r.url("/?name=drophandle-1"));
    let mut c3 = connect(&r.url("/?name=drophandle-droppanic-2"));
    let _c4 = connect(&r.url("/?name=drophandle-stays"));
    let _c5 = connect(&r.url("/?name=droppanic-stays"));
    drop(c1);
    drop(c2);
    c3.send(M::text("close")).unwrap();
    wait_for("3 drops", || a.drops.load(Ordering::SeqCst) == 3);
    // a refused upgrade drops its data in fetch
    let out = raw_exchange(r.port, &handshake("/twice?name=droppanic-twice", ""));
    eprintln!("{:?}", String::from_utf8_lossy(&out).lines().next());
    std::thread::sleep(Duration::from_millis(200));
    r.stop();
    eprintln!("{:#?}", a.log.events());
    assert_eq!(a.drops.load(Ordering::SeqCst), 7);
}

#[test]
fn data_drop_stops_server() {
    let (a, mut r) = attack_server("");
    let _c = connect(&r.url("/?name=o"));
    let c1 = connect(&r.url("/?name=dropstop"));
    drop(c1);
    wait_for("run returns", || r.finished());
    r.stop();
    eprintln!("{:#?}", a.log.events());
    assert_eq!(a.drops.load(Ordering::SeqCst), 2);
}

fn subscription_during_server_close(mode: &str) {
    let (a, mut r) = attack_server(mode);
    let _victim = connect(&r.url("/?name=sub-victim"));
    let mut other = connect(&r.url("/?name=other"));
    wait_for("open", || a.log.count_prefix("open:") == 2);
    // Another socket's handler closes the victim: uWebSockets' end() runs
    // the subscription handler for each topic, with no frame for the victim.
    other.send(M::text("closeother sub-victim")).unwrap();
    assert_eq!(recv_text(&mut other), "ok");
    wait_for("close", || a.log.count_prefix("close:sub-victim") >= 1);
    std::thread::sleep(Duration::from_millis(300));
    other.send(M::text("echo alive")).unwrap();
    let alive = recv_text(&mut other);
    r.stop();
    eprintln!("{:#?}", a.log.events());
    assert_eq!(alive, "alive");
    assert_eq!(
        a.log.count_prefix("close:sub-victim"),
        1,
        "close handler runs once"
    );
    assert_eq!(a.drops.load(Ordering::SeqCst), 2);
}

#[test]
fn subscription_handler_unsubscribes_during_server_close() {
    subscription_during_server_close("with_unsub");
}

#[test]
fn subscription_handler_terminates_during_server_close() {
    subscription_during_server_close("with_term");
}

#[test]
fn subscription_handler_terminates_during_peer_close() {
    subscription_during_peer_close("with_term");
}

#[test]
fn nested_with_socket_swap_then_use() {
    let (a, mut r) = attack_server("");
    let mut ca = connect(&r.url("/?name=A"));
    let mut cb = connect(&r.url("/?name=B"));
    wait_for("both open", || a.log.count_prefix("open:") == 2);
    eprintln!("{}", get(r.port, "/swap2"));
    let mut reads = Vec::new();
    for c in [&mut ca, &mut cb] {
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = c.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
        }
        reads.push(c.read().map(|m| m.to_string()).ok());
    }
    r.stop();
    eprintln!("{:#?}", a.log.events());
    // `wa` is still A's socket after swapping the data: the message goes to
    // A's client, A's id is unchanged, and A now holds B's data.
    assert_eq!(
        a.log.find("swap2:").unwrap(),
        "swap2:Some((Sent(41), true, \"B\"))"
    );
    assert_eq!(
        reads[0].as_deref(),
        Some("sent through A's reference after the swap")
    );
    assert_eq!(reads[1], None, "B's client gets nothing");
}
