//! Group chat: the chat room of Bun's WebSocket guide and of Bun's
//! WebSocket benchmark.
//!
//! ```text
//! cargo run --release --example chat -- --port 3000 [--host 127.0.0.1] [--clients 16] [--threads 1]
//! ```
//!
//! Clients connect to `/?name=NAME` (or send a `name` cookie). Every socket
//! joins the room `room`; once `--clients` sockets have joined (on all
//! threads), the server publishes `ready`. With `--threads N` the server
//! runs N event loops (0: one per core) and the room spans them all. Each message is published to the room as
//! `NAME: message`, the sender included. Prints `listening on HOST:PORT`
//! once bound.

#[path = "../common/args.rs"]
mod args;
mod room;

use std::io::Write;
use uws::{serve_threaded, ServeOptions};

const USAGE: &str = "\
usage: chat [--port N] [--host ADDR] [--clients N] [--threads N]
  --port N       port to listen on (default 3000; 0: any free port)
  --host ADDR    address to bind (default 127.0.0.1)
  --clients N    publish `ready` once N sockets joined (default 16)
  --threads N    event loops, one thread each (default 1; 0: one per core)
";

fn main() {
    let args = args::Args::from_env(USAGE, &["--port", "--host", "--clients", "--threads"], &[]);
    let options = ServeOptions {
        hostname: args.get("--host", "127.0.0.1".to_string()),
        port: args.get("--port", 3000),
        threads: args.get("--threads", 1),
        ..Default::default()
    };
    let chat = room::Chat::new(args.get("--clients", 16));
    let app = serve_threaded(options, chat).unwrap_or_else(|e| {
        eprintln!("chat: {e}");
        std::process::exit(1)
    });
    println!("listening on {}:{}", app.hostname(), app.port());
    let _ = std::io::stdout().flush();
    app.run();
}
