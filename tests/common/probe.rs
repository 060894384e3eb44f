//! A handler that logs every event and obeys text commands, so one server
//! can exercise the whole `ServerWebSocket` API from a test's client.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use uws::{
    Error, Message, Request, Response, SendStatus, Server, ServerWebSocket, SocketId,
    UpgradeOptions, WebSocketHandler,
};

/// Per-socket data that counts its own drops.
pub struct Data {
    pub name: String,
    drops: Arc<AtomicUsize>,
}

impl Data {
    /// Data named `name` that counts its drop in `drops`.
    pub fn new(name: String, drops: Arc<AtomicUsize>) -> Data {
        Data { name, drops }
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
pub struct Probe {
    pub log: Arc<Mutex<Vec<String>>>,
    pub drops: Arc<AtomicUsize>,
    pub ids: Arc<Mutex<Vec<(String, SocketId)>>>,
}

impl Probe {
    pub fn events(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn has(&self, event: &str) -> bool {
        self.log.lock().unwrap().iter().any(|e| e == event)
    }

    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }

    pub fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }

    pub fn id(&self, name: &str) -> SocketId {
        self.ids
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| n == name)
            .expect("no such socket")
            .1
    }

    fn push(&self, event: String) {
        self.log.lock().unwrap().push(event);
    }
}

fn status(s: SendStatus) -> String {
    s.to_bun().to_string()
}

impl WebSocketHandler for Probe {
    type Data = Data;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Data>) -> Response {
        let name = req.query_param("name").unwrap_or_default().into_owned();
        let data = Data::new(name, self.drops.clone());
        if server.upgrade(req, UpgradeOptions::new(data)) {
            return Response::new("");
        }
        Response::new("not a websocket").with_status(400)
    }

    fn open(&self, ws: &mut ServerWebSocket<Data>) {
        self.ids
            .lock()
            .unwrap()
            .push((ws.data().name.clone(), ws.id()));
        self.push(format!("open:{}", ws.data().name));
        match ws.data().name.as_str() {
            "closer" => {
                ws.send_text("welcome and goodbye");
                let _ = ws.close(4002, "go away");
            }
            "terminator" => ws.terminate(),
            _ => {}
        }
    }

    fn message(&self, ws: &mut ServerWebSocket<Data>, message: Message<'_>) {
        let text = match message {
            Message::Binary(b) => {
                ws.send_binary(b);
                return;
            }
            Message::Text(t) => t,
        };
        let mut words = text.splitn(3, ' ');
        let cmd = words.next().unwrap_or("");
        let a = words.next().unwrap_or("");
        let b = words.next().unwrap_or("");
        let name = ws.data().name.clone();
        self.push(format!("message:{name}:{text}"));
        match cmd {
            "echo" => {
                ws.send_text(&text[5.min(text.len())..]);
            }
            "sub" => {
                let r = ws.subscribe(a);
                ws.send_text(&r.to_string());
            }
            "unsub" => {
                let r = ws.unsubscribe(a);
                ws.send_text(&r.to_string());
            }
            "issub" => {
                let r = ws.is_subscribed(a);
                ws.send_text(&r.to_string());
            }
            "subs" => {
                let mut all = ws.subscriptions();
                all.sort();
                ws.send_text(&all.join(","));
            }
            "count" => {
                let n = ws.server().subscriber_count(a);
                ws.send_text(&n.to_string());
            }
            "pending" => {
                let n = ws.server().pending_websockets();
                ws.send_text(&n.to_string());
            }
            "pub" => {
                let r = ws.publish(a, b, false);
                self.push(format!("published:{name}:{r:?}"));
            }
            "pubbin" => {
                let r = ws.publish_binary(a, b.as_bytes());
                self.push(format!("published:{name}:{r:?}"));
            }
            "spub" => {
                let r = ws.server().publish(a, b, false);
                self.push(format!("spublished:{name}:{r:?}"));
            }
            "addr" => {
                let addr = ws
                    .remote_address()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                ws.send_text(&addr);
            }
            "state" => {
                let s = ws.ready_state().to_bun();
                ws.send_text(&s.to_string());
            }
            "data" => {
                let d = ws.data().name.clone();
                ws.send_text(&d);
            }
            "rename" => {
                ws.data_mut().name = a.to_string();
            }
            "ping" => {
                let r = ws.ping(a.as_bytes());
                self.push(format!("sent-ping:{}", status(r)));
            }
            "pong" => {
                let r = ws.pong(a.as_bytes());
                self.push(format!("sent-pong:{}", status(r)));
            }
            "cork" => {
                let r = ws.cork(|ws| {
                    ws.send_text("c1");
                    ws.send_text("c2");
                    ws.send_text("c3");
                    7
                });
                self.push(format!("corked:{r}"));
            }
            "close" => {
                let code: u16 = a.parse().unwrap_or(1000);
                let r = ws.close(code, b);
                let after = ws.send_text("after close");
                self.push(format!(
                    "closing:{name}:{}:{}:{}",
                    r.is_ok(),
                    ws.ready_state().to_bun(),
                    status(after)
                ));
            }
            "terminate" => {
                ws.terminate();
                let after = ws.send_text("after terminate");
                self.push(format!("terminated:{name}:{}", status(after)));
            }
            "panic" => panic!("boom"),
            "flood" => {
                // Send `a` messages of `b` bytes, stopping at the first one
                // that is not plainly sent.
                let n: usize = a.parse().unwrap_or(1000);
                let size: usize = b.parse().unwrap_or(65536);
                let payload = vec![b'x'; size];
                let mut sent = 0;
                let mut last = SendStatus::Sent(0);
                for _ in 0..n {
                    last = ws.send_binary(&payload);
                    if !matches!(last, SendStatus::Sent(_)) {
                        break;
                    }
                    sent += 1;
                }
                let buffered = ws.buffered_amount();
                self.push(format!(
                    "flood:{name}:{sent}:{}:{}",
                    status(last),
                    buffered > 0
                ));
            }
            "floodall" => {
                // Keep sending past backpressure until dropped.
                let payload = vec![b'y'; 65536];
                let mut statuses = Vec::new();
                for _ in 0..100_000 {
                    let s = ws.send_binary(&payload);
                    if statuses.last() != Some(&s.to_bun()) {
                        statuses.push(s.to_bun());
                    }
                    if s == SendStatus::Dropped {
                        break;
                    }
                }
                let seq: Vec<String> = statuses
                    .iter()
                    .map(|s| if *s > 0 { "N".into() } else { s.to_string() })
                    .collect();
                self.push(format!("floodall:{name}:{}", seq.join(",")));
            }
            "stop" => ws.server().stop(),
            _ => {}
        }
    }

    fn close(&self, ws: &mut ServerWebSocket<Data>, code: u16, reason: &str) {
        let after = ws.send_text("in close");
        self.push(format!("close:{}:{code}:{reason}", ws.data().name));
        self.push(format!(
            "close-state:{}:{}:{}",
            ws.data().name,
            ws.ready_state().to_bun(),
            status(after)
        ));
    }

    fn drain(&self, ws: &mut ServerWebSocket<Data>) {
        self.push(format!("drain:{}", ws.data().name));
    }

    fn ping(&self, ws: &mut ServerWebSocket<Data>, data: &[u8]) {
        self.push(format!(
            "ping:{}:{}",
            ws.data().name,
            String::from_utf8_lossy(data)
        ));
    }

    fn pong(&self, ws: &mut ServerWebSocket<Data>, data: &[u8]) {
        self.push(format!(
            "pong:{}:{}",
            ws.data().name,
            String::from_utf8_lossy(data)
        ));
    }

    fn subscription(
        &self,
        _server: &Server<Data>,
        ws: SocketId,
        topic: &str,
        old: usize,
        new: usize,
    ) {
        let name = self
            .ids
            .lock()
            .unwrap()
            .iter()
            .find(|(_, id)| *id == ws)
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        self.push(format!("subscription:{name}:{topic}:{old}:{new}"));
    }

    fn error(&self, ws: Option<&mut ServerWebSocket<Data>>, error: &Error) {
        let name = ws.map(|w| w.data().name.clone()).unwrap_or_default();
        self.push(format!("error:{name}:{error}"));
    }
}
