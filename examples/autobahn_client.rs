//! The standard Autobahn|Testsuite client driver: runs every case of a
//! fuzzing server (`wstest -m fuzzingserver`, `kosoku -m fuzzingserver`)
//! with our client, echoing what the server sends.
//!
//! ```text
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001
//!     [--agent NAME] [--compress] [--parallel N]
//! ```
//!
//! `getCaseCount`, then `runCase?case=N&agent=NAME` for every case (each
//! message is sent back with its opcode), then `updateReports`. With
//! `--compress` the client offers permessage-deflate (shared compressor
//! and decompressor, which asks the server for no context takeover) and
//! compresses every echo: what groups 12 and 13 need. `--parallel` runs
//! up to N cases at once (default 1, as the standard driver does), all on
//! one loop: each case that ends starts the next.
//! Exits 1 when a connection fails before it opens.

#[path = "common/args.rs"]
mod args;

use std::cell::Cell;
use std::rc::Rc;

use uws::{
    ClientHandler, ClientWebSocket, Compressor, ConnectOptions, Error, Message, PerMessageDeflate,
    WebSocketOptions,
};

const USAGE: &str = "usage: autobahn_client URL [--agent NAME] [--compress] [--parallel N]\n";
const VALUED: &[&str] = &["--agent", "--parallel"];

/// A step of the driver around the cases: keeps the first text message.
struct Step {
    text: Rc<Cell<Option<String>>>,
    failed: Rc<Cell<bool>>,
}

impl ClientHandler for Step {
    type Data = ();

    fn message(&self, _ws: &mut ClientWebSocket<()>, message: Message<'_>) {
        if let Message::Text(t) = message {
            self.text.set(Some(t.to_string()));
        }
    }

    fn error(&self, _ws: Option<&mut ClientWebSocket<()>>, error: &Error) {
        eprintln!("autobahn_client: {error}");
        self.failed.set(true);
    }
}

/// Connects to `url`, runs until the connection is closed; returns the
/// first text message and whether the connection failed.
fn step(url: &str, options: &ConnectOptions) -> (Option<String>, bool) {
    let text = Rc::new(Cell::new(None));
    let failed = Rc::new(Cell::new(false));
    let handler = Step {
        text: text.clone(),
        failed: failed.clone(),
    };
    if let Err(e) = uws::connect(url, options.clone(), handler, ()) {
        eprintln!("autobahn_client: {e}");
        std::process::exit(2);
    }
    uws::run();
    (text.take(), failed.get())
}

/// The cases: each one that ends starts the next.
#[derive(Clone)]
struct Cases {
    base: String,
    agent: String,
    options: ConnectOptions,
    compress: bool,
    count: usize,
    next: Rc<Cell<usize>>,
    failures: Rc<Cell<usize>>,
}

impl Cases {
    fn start_next(&self) {
        let case = self.next.get();
        if case > self.count {
            return;
        }
        self.next.set(case + 1);
        eprintln!("case {case}/{}", self.count);
        let url = format!("{}/runCase?case={case}&agent={}", self.base, self.agent);
        if let Err(e) = uws::connect(&url, self.options.clone(), self.clone(), ()) {
            eprintln!("autobahn_client: {e}");
            std::process::exit(2);
        }
    }
}

impl ClientHandler for Cases {
    type Data = ();

    fn message(&self, ws: &mut ClientWebSocket<()>, message: Message<'_>) {
        if self.compress {
            ws.send_compressed(message);
        } else {
            ws.send(message);
        }
    }

    fn close(&self, _ws: &mut ClientWebSocket<()>, _code: u16, _reason: &str) {
        self.start_next();
    }

    fn error(&self, _ws: Option<&mut ClientWebSocket<()>>, error: &Error) {
        eprintln!("autobahn_client: {error}");
        self.failures.set(self.failures.get() + 1);
        self.start_next();
    }
}

fn main() {
    let args = args::Args::with_positional(USAGE, VALUED, &["--compress"], 1..=1);
    let base = args.positional()[0].clone();
    let base = base.trim_end_matches('/');
    let agent = args.get("--agent", "uws".to_string());
    let compress = args.flag("--compress");
    let options = ConnectOptions {
        websocket: WebSocketOptions {
            per_message_deflate: compress.then_some(PerMessageDeflate {
                compress: Compressor::Shared,
                decompress: Compressor::Shared,
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let (count, failed) = step(&format!("{base}/getCaseCount"), &options);
    let count: usize = match count.and_then(|c| c.trim().parse().ok()) {
        Some(n) if !failed => n,
        _ => {
            eprintln!("autobahn_client: no case count from {base}/getCaseCount");
            std::process::exit(1);
        }
    };
    let cases = Cases {
        base: base.to_string(),
        agent: agent.clone(),
        options: options.clone(),
        compress,
        count,
        next: Rc::new(Cell::new(1)),
        failures: Rc::new(Cell::new(0)),
    };
    for _ in 0..args.get("--parallel", 1usize).max(1) {
        cases.start_next();
    }
    uws::run();
    let failures = cases.failures.get();
    step(&format!("{base}/updateReports?agent={agent}"), &options);
    eprintln!("autobahn_client: {count} cases run, {failures} connections failed");
    std::process::exit(i32::from(failures > 0));
}
