//! Echo server: sends every message back with its opcode, and answers
//! every other HTTP request 200 with its body echoed (any method).
//!
//! ```text
//! cargo run --release --example echo -- --port 3000 [--host 127.0.0.1]
//!     [--max-payload BYTES] [--idle-timeout SECS] [--compress]
//!     [--reply TEXT] [--cert PATH --key PATH]
//! ```
//!
//! `--reply TEXT` answers every other HTTP request at once with 200 and
//! TEXT instead (the HTTP benchmark's endpoint: `fetch` returns the
//! response, like Bun's `fetch() { return new Response(TEXT) }`).
//!
//! `--cert` and `--key` serve wss:// with that certificate chain and key
//! (build with `--features tls`).
//!
//! `--compress` negotiates permessage-deflate (dedicated windows) and
//! compresses every reply, the setting Autobahn's groups 12 and 13 need.
//!
//! Prints `listening on HOST:PORT` once bound (`--port 0`: any free port).

#[path = "common/args.rs"]
mod args;

use std::io::Write;
use uws::{
    serve, Compressor, Message, Pem, PerMessageDeflate, Request, Response, ServeOptions, Server,
    ServerWebSocket, TlsOptions, UpgradeOptions, WebSocketHandler, WebSocketOptions,
};

struct Echo {
    compress: bool,
    reply: Option<String>,
}

impl WebSocketHandler for Echo {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        if server.upgrade(req, UpgradeOptions::new(())) {
            return Response::new("");
        }
        if let Some(reply) = &self.reply {
            return Response::new(reply.as_str());
        }
        // The body arrives after fetch returns: answer once it is whole.
        if let Some(pending) = server.defer_request(req) {
            pending.on_body(|_server, body, pending| {
                let _ = match body {
                    Ok(body) => pending.respond(Response::new(body.into_bytes())),
                    // Too large: the client got 413 already.
                    Err(_) => Ok(()),
                };
            });
        }
        Response::new("")
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        if self.compress {
            ws.send_compressed(message);
        } else {
            ws.send(message);
        }
    }
}

const USAGE: &str = "\
usage: echo [--port N] [--host ADDR] [--max-payload BYTES] [--idle-timeout SECS]
            [--compress] [--reply TEXT] [--cert PATH --key PATH]
  --port N               port to listen on (default 3000; 0: any free port)
  --host ADDR            address to bind (default 127.0.0.1)
  --max-payload BYTES    largest message accepted (default 16 MiB)
  --idle-timeout SECS    close sockets idle this long (default 120)
  --compress             negotiate permessage-deflate, compress every reply
  --reply TEXT           answer other HTTP requests at once with 200 TEXT
  --cert PATH --key PATH serve wss:// (build with --features tls)
";

fn main() {
    let args = args::Args::from_env(
        USAGE,
        &[
            "--port",
            "--host",
            "--max-payload",
            "--idle-timeout",
            "--cert",
            "--key",
            "--reply",
        ],
        &["--compress"],
    );
    let defaults = WebSocketOptions::default();
    let mut options = ServeOptions {
        hostname: args.get("--host", "127.0.0.1".to_string()),
        port: args.get("--port", 3000),
        websocket: WebSocketOptions {
            max_payload_length: args.get("--max-payload", defaults.max_payload_length),
            idle_timeout: args.get("--idle-timeout", defaults.idle_timeout),
            per_message_deflate: args.flag("--compress").then_some(PerMessageDeflate {
                compress: Compressor::Dedicated,
                decompress: Compressor::Dedicated,
            }),
            ..defaults
        },
        ..Default::default()
    };
    let cert = args.get("--cert", String::new());
    let key = args.get("--key", String::new());
    if !cert.is_empty() || !key.is_empty() {
        options.tls = Some(TlsOptions::new(
            Pem::File(cert.into()),
            Pem::File(key.into()),
        ));
    }
    let reply = args.get("--reply", String::new());
    let echo = Echo {
        compress: args.flag("--compress"),
        reply: (!reply.is_empty()).then_some(reply),
    };
    let app = serve(options, echo).unwrap_or_else(|e| {
        eprintln!("echo: {e}");
        std::process::exit(1)
    });
    println!("listening on {}:{}", app.hostname(), app.port());
    let _ = std::io::stdout().flush();
    app.run();
}
