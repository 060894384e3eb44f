//! The standard Autobahn|Testsuite client driver: runs every case of a
//! fuzzing server (`wstest -m fuzzingserver`, `kosoku -m fuzzingserver`)
//! with our client, echoing what the server sends.
//!
//! ```text
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001
//!     [--agent NAME] [--compress]
//! ```
//!
//! `getCaseCount`, then `runCase?case=N&agent=NAME` for every case (each
//! message is sent back with its opcode), then `updateReports`. With
//! `--compress` the client offers permessage-deflate (shared compressor
//! and decompressor, which asks the server for no context takeover) and
//! compresses every echo: what groups 12 and 13 need.
//! Exits 1 when a connection fails before it opens.

#[path = "common/args.rs"]
mod args;

use std::cell::Cell;
use std::rc::Rc;

use uws::{
    ClientHandler, ClientWebSocket, Compressor, ConnectOptions, Error, Message, PerMessageDeflate,
    WebSocketOptions,
};

const USAGE: &str = "usage: autobahn_client URL [--agent NAME] [--compress]\n";

/// One step of the driver.
struct Step {
    /// Echo every message (a case), or keep the first text (the count).
    echo: bool,
    compress: bool,
    text: Rc<Cell<Option<String>>>,
    failed: Rc<Cell<bool>>,
}

impl ClientHandler for Step {
    type Data = ();

    fn message(&self, ws: &mut ClientWebSocket<()>, message: Message<'_>) {
        if self.echo {
            ws.send(message, self.compress);
        } else if let Message::Text(t) = message {
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
fn step(url: &str, options: &ConnectOptions, echo: bool, compress: bool) -> (Option<String>, bool) {
    let text = Rc::new(Cell::new(None));
    let failed = Rc::new(Cell::new(false));
    let handler = Step {
        echo,
        compress,
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

fn main() {
    let args = args::Args::from_env();
    args.check(USAGE, &["--agent"], &["--compress"], 1..=1);
    let base = args.positional(&["--agent"]).remove(0);
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
    let (count, failed) = step(&format!("{base}/getCaseCount"), &options, false, false);
    let count: usize = match count.and_then(|c| c.trim().parse().ok()) {
        Some(n) if !failed => n,
        _ => {
            eprintln!("autobahn_client: no case count from {base}/getCaseCount");
            std::process::exit(1);
        }
    };
    let mut failures = 0;
    for case in 1..=count {
        eprintln!("case {case}/{count}");
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        if step(&url, &options, true, compress).1 {
            failures += 1;
        }
    }
    step(
        &format!("{base}/updateReports?agent={agent}"),
        &options,
        false,
        false,
    );
    eprintln!("autobahn_client: {count} cases run, {failures} connections failed");
    std::process::exit(i32::from(failures > 0));
}
