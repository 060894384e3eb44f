//! The chat room handler, shared by the example and the allocation test.

use std::cell::{Cell, RefCell};
use uws::{Message, Request, Response, Server, ServerWebSocket, UpgradeOptions, WebSocketHandler};

pub const ROOM: &str = "room";

pub struct Chat {
    /// Sockets still to join before `ready` is published.
    waiting_for: Cell<usize>,
    /// The line being published, `NAME: message`, built in one buffer
    /// reused for every message: steady-state messages allocate nothing.
    line: RefCell<String>,
}

/// Per socket: the member's name (Bun's `ws.data.name`).
pub struct Member {
    pub name: String,
}

impl WebSocketHandler for Chat {
    type Data = Member;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Member>) -> Response {
        // const name = new URL(req.url).searchParams.get("name") ?? cookies.name
        let name = match req.query_param("name") {
            Some(name) => name.into_owned(),
            None => req.cookie("name").unwrap_or("anonymous").to_owned(),
        };
        if server.upgrade(req, UpgradeOptions::new(Member { name })) {
            return Response::new("");
        }
        Response::new("Upgrade failed").with_status(400)
    }

    fn open(&self, ws: &mut ServerWebSocket<Member>) {
        ws.subscribe(ROOM);
        match self.waiting_for.get() {
            0 => {}
            1 => {
                self.waiting_for.set(0);
                ws.server().publish(ROOM, "ready", false);
            }
            n => self.waiting_for.set(n - 1),
        }
    }

    fn message(&self, ws: &mut ServerWebSocket<Member>, message: Message<'_>) {
        // server.publish("room", `${ws.data.name}: ${message}`)
        let Message::Text(text) = message else { return };
        let mut line = self.line.borrow_mut();
        line.clear();
        line.push_str(&ws.data().name);
        line.push_str(": ");
        line.push_str(text);
        ws.server().publish(ROOM, line.as_str(), false);
    }
}

impl Chat {
    /// A room that publishes `ready` once `clients` sockets have joined.
    pub fn new(clients: usize) -> Chat {
        Chat {
            waiting_for: Cell::new(clients),
            line: RefCell::new(String::new()),
        }
    }
}
