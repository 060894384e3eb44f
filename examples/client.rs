//! WebSocket client: Bun's `new WebSocket(url, protocols | { headers })`
//! from the command line.
//!
//! ```text
//! cargo run --example client -- URL [--header 'K: V']... [--protocol P]...
//!     [--send TEXT]... [--count N] [--ca PATH]
//! ```
//!
//! Connects to URL (`ws://` or `wss://`, the latter with `--features
//! tls`), offering each `--protocol` and sending each `--header`; prints
//! `open` and the protocol the server chose (if any), sends each `--send`
//! text in order, prints every text message as `message TEXT` and every
//! binary one as `binary LEN`. Exits 0 after `--count` messages (closing
//! with 1000), or when the connection closes (printing `close CODE
//! REASON`). On failure it prints `error: ...` and exits 1. `--ca` trusts
//! the CA certificates in PATH besides the system's roots.

#[path = "common/args.rs"]
mod args;

use std::cell::Cell;
use std::rc::Rc;

use uws::{ClientHandler, ClientTls, ClientWebSocket, ConnectOptions, Error, Message, Pem};

const USAGE: &str = "usage: client URL [--header 'K: V']... [--protocol P]... [--send TEXT]... \
[--count N] [--ca PATH]\n";
const VALUED: &[&str] = &["--header", "--protocol", "--send", "--count", "--ca"];

struct Client {
    send: Vec<String>,
    /// Close after this many messages.
    count: Option<usize>,
    /// The exit status.
    status: Rc<Cell<i32>>,
}

impl ClientHandler for Client {
    /// Messages received so far.
    type Data = usize;

    // ws.onopen = () => { console.log("open", ws.protocol); for (t of texts) ws.send(t) }
    fn open(&self, ws: &mut ClientWebSocket<usize>) {
        match ws.protocol() {
            Some(p) => println!("open {p}"),
            None => println!("open"),
        }
        for text in &self.send {
            ws.send_text(text);
        }
        if self.count == Some(0) {
            let _ = ws.close(1000, "");
        }
    }

    // ws.onmessage = (e) => console.log(...)
    fn message(&self, ws: &mut ClientWebSocket<usize>, message: Message<'_>) {
        match message {
            Message::Text(t) => println!("message {t}"),
            Message::Binary(b) => println!("binary {}", b.len()),
        }
        *ws.data_mut() += 1;
        if Some(*ws.data()) == self.count {
            let _ = ws.close(1000, "");
        }
    }

    // ws.onclose = (e) => console.log("close", e.code, e.reason)
    fn close(&self, ws: &mut ClientWebSocket<usize>, code: u16, reason: &str) {
        if Some(*ws.data()) != self.count {
            println!("close {code} {reason}");
        }
    }

    // ws.onerror = (e) => { console.error(e); process.exit(1) }
    fn error(&self, _ws: Option<&mut ClientWebSocket<usize>>, error: &Error) {
        println!("error: {error}");
        self.status.set(1);
    }
}

fn main() {
    let args = args::Args::with_positional(USAGE, VALUED, &[], 1..=1);
    let url = args.positional()[0].clone();
    let mut headers = Vec::new();
    for header in args.values("--header") {
        let Some((name, value)) = header.split_once(':') else {
            eprint!("bad header {header:?} (expected 'Name: value')\n{USAGE}");
            std::process::exit(2);
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let ca = args.values("--ca").pop().map(|p| Pem::File(p.into()));
    let count = args
        .values("--count")
        .last()
        .map(|_| args.get("--count", 0usize));
    let options = ConnectOptions {
        protocols: args.values("--protocol"),
        headers,
        tls: ClientTls {
            ca,
            ..Default::default()
        },
        ..Default::default()
    };
    let status = Rc::new(Cell::new(0));
    let client = Client {
        send: args.values("--send"),
        count,
        status: status.clone(),
    };
    if let Err(e) = uws::connect(&url, options, client, 0) {
        println!("error: {e}");
        std::process::exit(1);
    }
    uws::run();
    std::process::exit(status.get());
}
