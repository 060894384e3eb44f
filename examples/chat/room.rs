//! The chat room handler, shared by the example and the allocation test.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use uws::{Message, Request, Response, Server, ServerWebSocket, UpgradeOptions, WebSocketHandler};

pub const ROOM: &str = "room";

/// Shared by every thread of the server (`--threads`).
pub struct Chat {
    /// Sockets still to join before `ready` is published, on all threads.
    waiting_for: AtomicUsize,
    /// Where `ready` is published: the room, or (when the room spans
    /// processes over a bus) a topic of this process's own members.
    lobby: String,
}

thread_local! {
    /// The line being published, `NAME: message`, built in one buffer per
    /// thread reused for every message: steady-state messages allocate
    /// nothing.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
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
        if self.lobby != ROOM {
            ws.subscribe(&self.lobby);
        }
        let last = self
            .waiting_for
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            == Ok(1);
        if last {
            ws.server().publish(&self.lobby, "ready");
        }
    }

    fn message(&self, ws: &mut ServerWebSocket<Member>, message: Message<'_>) {
        // server.publish("room", `${ws.data.name}: ${message}`)
        let Message::Text(text) = message else { return };
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            line.push_str(&ws.data().name);
            line.push_str(": ");
            line.push_str(text);
            ws.server().publish(ROOM, line.as_str());
        });
    }
}

impl Chat {
    /// A room that publishes `ready` once `clients` sockets have joined.
    pub fn new(clients: usize) -> Chat {
        Chat {
            waiting_for: AtomicUsize::new(clients),
            lobby: ROOM.into(),
        }
    }

    /// A room that spans processes (over a bus): `ready` goes to the
    /// `clients` members of this process only, once they have joined.
    #[allow(dead_code)] // the allocation test shares this file
    pub fn spanning(clients: usize) -> Chat {
        Chat {
            waiting_for: AtomicUsize::new(clients),
            lobby: format!("lobby-{}", std::process::id()),
        }
    }
}
