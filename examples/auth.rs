//! Authenticate, then upgrade: Bun's async `fetch` with a session lookup,
//! and messages saved to a "database" before they are acknowledged.
//!
//! ```text
//! cargo run --example auth -- --port 3000 [--host 127.0.0.1] [--delay-ms 10]
//! ```
//!
//! `GET /?token=T` is checked by a session store on another thread that
//! answers each lookup `--delay-ms` after it arrived (lookups overlap, as
//! Bun's awaited checks do: 200 logins at once take about one delay, not
//! 200): tokens starting with `ok` upgrade (the user
//! is the rest of the token, `ok-ann` is `ann`; a `Set-Cookie: session=...`
//! header comes with the 101), others get 401. Every text message is then
//! saved by a worker thread and acknowledged to its sender as
//! `saved: MESSAGE`. Prints `listening on HOST:PORT` once bound.
//!
//! The Bun version:
//!
//! ```js
//! Bun.serve({
//!   async fetch(req, server) {
//!     const user = await sessions.check(new URL(req.url).searchParams.get("token"));
//!     if (!user) return new Response("unauthorized", { status: 401 });
//!     server.upgrade(req, { data: { user }, headers: { "Set-Cookie": `session=${user.session}` } });
//!   },
//!   websocket: {
//!     async message(ws, message) {
//!       await saveMessageToDatabase(ws.data.user, message);
//!       ws.send(`saved: ${message}`);
//!     },
//!   },
//! });
//! ```

#[path = "common/args.rs"]
mod args;

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use uws::{
    serve, Message, OwnedMessage, PendingRequest, Request, Response, ServeOptions, Server,
    ServerHandle, ServerWebSocket, SocketId, UpgradeOptions, WebSocketHandler,
};

/// Who a socket belongs to.
struct User {
    name: String,
}

/// A message to save: who sent it, from which socket, and what.
struct Save {
    id: SocketId,
    user: String,
    text: String,
}

/// A session lookup: the token, the request waiting for it, and when
/// the store answers.
struct Lookup {
    token: String,
    pending: PendingRequest<User>,
    due: Instant,
}

struct Auth {
    sessions: mpsc::Sender<Lookup>,
    saves: mpsc::Sender<Save>,
    delay: Duration,
}

impl WebSocketHandler for Auth {
    type Data = User;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<User>) -> Response {
        let token = req.query_param("token").unwrap_or_default().into_owned();
        if let Some(pending) = server.defer_request(req) {
            // The store answers later; the request waits meanwhile.
            let _ = self.sessions.send(Lookup {
                token,
                pending,
                due: Instant::now() + self.delay,
            });
        }
        Response::new("")
    }

    fn message(&self, ws: &mut ServerWebSocket<User>, message: Message<'_>) {
        if let Message::Text(text) = message {
            // Reply after the save, from the worker, through the handle:
            // the handler itself never waits.
            let _ = self.saves.send(Save {
                id: ws.id(),
                user: ws.data().name.clone(),
                text: text.to_owned(),
            });
        }
    }
}

/// The session store: answers each lookup when it is due. Lookups come
/// in the order they are due (one delay for all), so waiting for each in
/// turn answers every one on time, however many overlap.
fn session_store() -> mpsc::Sender<Lookup> {
    let (tx, rx) = mpsc::channel::<Lookup>();
    std::thread::spawn(move || {
        for Lookup {
            token,
            pending,
            due,
        } in rx
        {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let result = match token.strip_prefix("ok") {
                Some(rest) => {
                    let name = rest.trim_start_matches('-');
                    let name = if name.is_empty() { "user" } else { name };
                    let session = format!("session={:x}; HttpOnly", fxhash(&token));
                    pending.upgrade(
                        UpgradeOptions::new(User { name: name.into() })
                            .with_header("Set-Cookie", session),
                    )
                }
                None => pending.respond(Response::new("unauthorized").with_status(401)),
            };
            // A client that gave up while we looked is not an error here.
            if let Err(e) = result {
                eprintln!("auth: {e}");
            }
        }
    });
    tx
}

/// The "database": saves each message, then acknowledges it to its sender.
fn saver(handle: mpsc::Receiver<ServerHandle<User>>, delay: Duration) -> mpsc::Sender<Save> {
    let (tx, rx) = mpsc::channel::<Save>();
    std::thread::spawn(move || {
        let Ok(handle) = handle.recv() else { return };
        let mut database: Vec<(String, String)> = Vec::new();
        for save in rx {
            std::thread::sleep(delay);
            let ack = OwnedMessage::from(format!("saved: {}", save.text));
            database.push((save.user, save.text));
            let _ = handle.send(save.id, ack, false);
        }
    });
    tx
}

/// A small, stable hash for the session cookie.
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

const USAGE: &str = "usage: auth [--port PORT] [--host HOST] [--delay-ms MS]
  GET /?token=okNAME upgrades as NAME after the session lookup (--delay-ms,
  default 10); other tokens get 401. Text messages are acknowledged as
  `saved: MESSAGE` once saved.
";

fn main() {
    let args = args::Args::from_env(USAGE, &["--port", "--host", "--delay-ms"], &[]);
    let delay = Duration::from_millis(args.get("--delay-ms", 10));
    let options = ServeOptions {
        hostname: args.get("--host", "127.0.0.1".to_string()),
        port: args.get("--port", 3000),
        ..Default::default()
    };
    let (handle_tx, handle_rx) = mpsc::channel();
    let auth = Auth {
        sessions: session_store(),
        delay,
        saves: saver(handle_rx, delay),
    };
    let app = serve(options, auth).unwrap_or_else(|e| {
        eprintln!("auth: {e}");
        std::process::exit(1)
    });
    let _ = handle_tx.send(app.handle());
    println!("listening on {}:{}", app.hostname(), app.port());
    let _ = std::io::stdout().flush();
    app.run();
}
