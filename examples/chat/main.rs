//! Group chat: the chat room of Bun's WebSocket guide and of Bun's
//! WebSocket benchmark.
//!
//! ```text
//! cargo run --release --example chat -- --port 3000 [--host 127.0.0.1] [--clients 16] [--threads 1]
//! cargo run --release --features redis --example chat -- --port 3001 --redis redis://127.0.0.1:6379
//! ```
//!
//! Clients connect to `/?name=NAME` (or send a `name` cookie). Every socket
//! joins the room `room`; once `--clients` sockets have joined (on all
//! threads), the server publishes `ready`. With `--threads N` the server
//! runs N event loops (0: one per core) and the room spans them all. Each message is published to the room as
//! `NAME: message`, the sender included. Prints `listening on HOST:PORT`
//! once bound.
//!
//! With `--redis URL` (`--redis-cluster URL`, `--nats URL`) the room spans
//! every process started with the same URL: the bus carries each line to
//! the others (needs the cargo feature `redis` or `nats`). Each process
//! counts its own members for `ready`, and tells only them.

#[path = "../common/args.rs"]
mod args;
mod room;

use std::io::Write;
use uws::{serve_threaded, ServeOptions};

const USAGE: &str = "\
usage: chat [--port N] [--host ADDR] [--clients N] [--threads N] [--redis URL | --redis-cluster URL | --nats URL]
  --port N       port to listen on (default 3000; 0: any free port)
  --host ADDR    address to bind (default 127.0.0.1)
  --clients N    publish `ready` once N sockets joined (default 16)
  --threads N    event loops, one thread each (default 1; 0: one per core)
  --redis URL    share the room over Redis pub/sub (feature `redis`)
  --redis-cluster URL   ... over a Redis Cluster's sharded pub/sub
  --nats URL     share the room over NATS (feature `nats`)
";

/// The bus named on the command line, if any.
fn bus(args: &args::Args) -> Option<uws::Bus> {
    let url = |flag: &str| Some(args.get(flag, String::new())).filter(|u| !u.is_empty());
    #[cfg(feature = "redis")]
    if let Some(url) = url("--redis") {
        return Some(uws::Bus::redis(url));
    }
    #[cfg(feature = "redis")]
    if let Some(url) = url("--redis-cluster") {
        return Some(uws::Bus::redis_cluster([url]));
    }
    #[cfg(feature = "nats")]
    if let Some(url) = url("--nats") {
        return Some(uws::Bus::nats(url));
    }
    for flag in ["--redis", "--redis-cluster", "--nats"] {
        if url(flag).is_some() {
            let feature = flag.trim_start_matches("--").trim_end_matches("-cluster");
            eprintln!("chat: {flag} needs the example built with `--features {feature}`");
            std::process::exit(2);
        }
    }
    None
}

fn main() {
    let args = args::Args::from_env(
        USAGE,
        &[
            "--port",
            "--host",
            "--clients",
            "--threads",
            "--redis",
            "--redis-cluster",
            "--nats",
        ],
        &[],
    );
    let options = ServeOptions {
        hostname: args.get("--host", "127.0.0.1".to_string()),
        port: args.get("--port", 3000),
        threads: args.get("--threads", 1),
        bus: bus(&args),
        ..Default::default()
    };
    let clients = args.get("--clients", 16);
    let chat = match options.bus {
        Some(_) => room::Chat::spanning(clients),
        None => room::Chat::new(clients),
    };
    let app = serve_threaded(options, chat).unwrap_or_else(|e| {
        eprintln!("chat: {e}");
        std::process::exit(1)
    });
    println!("listening on {}:{}", app.hostname(), app.port());
    let _ = std::io::stdout().flush();
    app.run();
}
