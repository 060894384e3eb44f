//! A panic in any handler is contained: `error` hears of it, that socket
//! closes (1011 where a close frame can still go out), its data is dropped
//! once, and the server keeps serving everyone else.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::probe::{Data, EventLog};
use common::*;
use tungstenite::Message as M;
use uws::{
    Error, Message, Request, Response, SendStatus, Server, ServerWebSocket, UpgradeOptions,
    WebSocketHandler, WebSocketOptions,
};

#[derive(Clone, Default)]
struct Panicky {
    log: EventLog,
    drops: Arc<AtomicUsize>,
}

impl Panicky {
    fn maybe_panic(&self, ws: &ServerWebSocket<Data>, handler: &str) {
        if ws.data().name == handler {
            panic!("{handler} blew up");
        }
    }
}

impl WebSocketHandler for Panicky {
    type Data = Data;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Data>) -> Response {
        // The socket's name says which handler should panic.
        let panic_in = req.query_param("panic").unwrap_or_default().into_owned();
        let data = Data::new(panic_in, self.drops.clone());
        server.upgrade(req, UpgradeOptions::new(data));
        Response::new("")
    }

    fn open(&self, ws: &mut ServerWebSocket<Data>) {
        self.maybe_panic(ws, "open");
    }

    fn message(&self, ws: &mut ServerWebSocket<Data>, message: Message<'_>) {
        if message == Message::Text("flood") {
            // Fill the socket's buffer so that `drain` fires later.
            let block = vec![0u8; 65536];
            while ws.send_binary(&block) != SendStatus::Backpressure {}
            return;
        }
        ws.send(message);
    }

    fn close(&self, ws: &mut ServerWebSocket<Data>, code: u16, _reason: &str) {
        self.log.push(format!("close:{}:{code}", ws.data().name));
        self.maybe_panic(ws, "close");
    }

    fn drain(&self, ws: &mut ServerWebSocket<Data>) {
        self.maybe_panic(ws, "drain");
    }

    fn ping(&self, ws: &mut ServerWebSocket<Data>, _data: &[u8]) {
        self.maybe_panic(ws, "ping");
    }

    fn pong(&self, ws: &mut ServerWebSocket<Data>, _data: &[u8]) {
        self.maybe_panic(ws, "pong");
    }

    fn error(&self, _ws: Option<&mut ServerWebSocket<Data>>, error: &Error) {
        self.log.push(format!("error:{error}"));
    }
}

fn server() -> (Panicky, Running<Data>) {
    let p = Panicky::default();
    let running = start(
        WebSocketOptions {
            backpressure_limit: 64 << 20,
            ..Default::default()
        },
        p.clone(),
    );
    (p, running)
}

/// The server still echoes for a well-behaved client.
fn still_serves(server: &Running<Data>) {
    let mut c = connect(&server.url("/?panic=none"));
    c.send(M::text("still here")).unwrap();
    assert_eq!(recv(&mut c), M::text("still here"));
}

fn assert_contained(p: &Panicky, handler: &str, close_code: u16) {
    wait_for("error report", || {
        p.log.has(&format!(
            "error:handler `{handler}` panicked: {handler} blew up"
        ))
    });
    wait_for("close handler", || {
        p.log.count_prefix(&format!("close:{handler}:")) == 1
    });
    assert!(
        p.log.has(&format!("close:{handler}:{close_code}")),
        "{:?}",
        p.log.events()
    );
    wait_for("data dropped", || p.drops.load(Ordering::SeqCst) == 1);
}

#[test]
fn a_panic_in_open_closes_with_1011() {
    let (p, server) = server();
    let mut c = connect(&server.url("/?panic=open"));
    assert_eq!(recv_close(&mut c).map(|c| c.0), Some(1011));
    assert_contained(&p, "open", 1011);
    still_serves(&server);
}

#[test]
fn a_panic_in_ping_or_pong_closes_with_1011() {
    for (handler, frame) in [
        ("ping", M::Ping(b"x".to_vec().into())),
        ("pong", M::Pong(b"y".to_vec().into())),
    ] {
        let (p, server) = server();
        let mut c = connect(&server.url(&format!("/?panic={handler}")));
        c.send(frame).unwrap();
        assert_eq!(recv_close(&mut c).map(|c| c.0), Some(1011), "{handler}");
        assert_contained(&p, handler, 1011);
        still_serves(&server);
    }
}

#[test]
fn a_panic_in_drain_closes_with_1011() {
    let (p, server) = server();
    let mut c = connect(&server.url("/?panic=drain"));
    c.send(M::text("flood")).unwrap();
    // Read until the server's close frame: the flood first, then 1011 once
    // drain has run (and panicked).
    let code = loop {
        match c.read().expect("read") {
            M::Close(frame) => break frame.map(|f| u16::from(f.code)),
            _ => continue,
        }
    };
    assert_eq!(code, Some(1011));
    assert_contained(&p, "drain", 1011);
    still_serves(&server);
}

#[test]
fn a_panic_in_close_still_drops_the_data_once() {
    let (p, server) = server();
    let mut c = connect(&server.url("/?panic=close"));
    c.close(close_frame(4000, "bye")).unwrap();
    let _ = recv_close(&mut c);
    assert_contained(&p, "close", 4000);
    still_serves(&server);
    assert_eq!(
        p.log.count_prefix("close:close:"),
        1,
        "the close handler ran once"
    );
}
