//! Group chat: the chat room of Bun's WebSocket guide and of Bun's
//! WebSocket benchmark.
//!
//! ```text
//! cargo run --release --example chat -- --port 3000 [--host 127.0.0.1] [--clients 16]
//! ```
//!
//! Clients connect to `/?name=NAME` (or send a `name` cookie). Every socket
//! joins the room `room`; once `--clients` sockets have joined, the server
//! publishes `ready`. Each message is published to the room as
//! `NAME: message`, the sender included. Prints `listening on HOST:PORT`
//! once bound.

#[path = "common/args.rs"]
mod args;

use std::cell::Cell;
use std::io::Write;
use uws::{
    serve, Message, Request, Response, ServeOptions, Server, ServerWebSocket, UpgradeOptions,
    WebSocketHandler,
};

const ROOM: &str = "room";

struct Chat {
    /// Sockets still to join before `ready` is published.
    waiting_for: Cell<usize>,
}

/// Per socket: the line being published, `NAME: ` followed by the message,
/// built in place so that steady-state messages allocate nothing.
struct Member {
    line: String,
    prefix: usize,
}

impl WebSocketHandler for Chat {
    type Data = Member;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Member>) -> Response {
        // const name = new URL(req.url).searchParams.get("name") ?? cookies.name
        let name = match req.query_param("name") {
            Some(name) => name.into_owned(),
            None => req.cookie("name").unwrap_or("anonymous").to_owned(),
        };
        let line = format!("{name}: ");
        let member = Member {
            prefix: line.len(),
            line,
        };
        if server.upgrade(req, UpgradeOptions::new(member)) {
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
        let Message::Text(text) = message else { return };
        let member = ws.data_mut();
        member.line.truncate(member.prefix);
        member.line.push_str(text);
        let ws = &*ws;
        ws.server().publish(ROOM, ws.data().line.as_str(), false);
    }
}

fn main() {
    let args = args::Args::from_env();
    let options = ServeOptions {
        hostname: args.get("--host", "127.0.0.1".to_string()),
        port: args.get("--port", 3000),
        ..Default::default()
    };
    let chat = Chat {
        waiting_for: Cell::new(args.get("--clients", 16)),
    };
    let app = serve(options, chat).unwrap_or_else(|e| {
        eprintln!("chat: {e}");
        std::process::exit(1)
    });
    println!("listening on {}:{}", app.hostname(), app.port());
    let _ = std::io::stdout().flush();
    app.run();
}
