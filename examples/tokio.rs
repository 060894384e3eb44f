//! uws from tokio: the server runs its loop on a thread of its own and
//! hands its `ServerHandle` back; tokio tasks decide upgrades, read bodies
//! and publish through the handle.
//!
//! ```text
//! cargo run --example tokio -- --port 3000 [--host 127.0.0.1] [--tick-ms 1000]
//! ```
//!
//! `GET /?token=ok...` is checked in a tokio task (a pretend session store
//! with a 10 ms lookup) and upgraded, others get 401; every socket joins
//! the topic `ticks`, where a tokio interval publishes `tick N`. `POST /`
//! answers with the length of its body, read with `.await`. Prints
//! `listening on HOST:PORT` once bound.

#[path = "common/args.rs"]
mod args;

use std::io::Write;
use std::time::Duration;

use uws::{
    serve, Request, Response, ServeOptions, Server, ServerWebSocket, UpgradeOptions,
    WebSocketHandler,
};

struct Tasks {
    runtime: tokio::runtime::Handle,
}

impl WebSocketHandler for Tasks {
    type Data = String;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<String>) -> Response {
        let token = req.query_param("token").unwrap_or_default().into_owned();
        let Some(pending) = server.defer_request(req) else {
            return Response::new("");
        };
        self.runtime.spawn(async move {
            if pending.method() == "POST" {
                let answer = match pending.body().await {
                    Ok(body) => Response::new(format!("{} bytes", body.len())),
                    Err(e) => Response::new(e.to_string()).with_status(400),
                };
                let _ = pending.respond(answer);
                return;
            }
            // A session lookup that takes a while.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = match token.strip_prefix("ok") {
                Some(user) => pending.upgrade(UpgradeOptions::new(user.to_owned())),
                None => pending.respond(Response::new("unauthorized").with_status(401)),
            };
        });
        Response::new("")
    }

    fn open(&self, ws: &mut ServerWebSocket<String>) {
        ws.subscribe("ticks");
    }
}

const USAGE: &str = "usage: tokio [--port PORT] [--host HOST] [--tick-ms MS]
  GET /?token=ok... upgrades after a lookup in a tokio task (others: 401);
  sockets receive `tick N` every --tick-ms (default 1000); POST / answers
  with the length of its body.
";

#[tokio::main]
async fn main() {
    let args = args::Args::from_env(USAGE, &["--port", "--host", "--tick-ms"], &[]);
    let options = ServeOptions {
        hostname: args.get("--host", "127.0.0.1".to_string()),
        port: args.get("--port", 3000),
        ..Default::default()
    };
    let tick = Duration::from_millis(args.get("--tick-ms", 1000));
    let runtime = tokio::runtime::Handle::current();
    // The App is not Send: it lives and runs on a thread of its own.
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let app = serve(options, Tasks { runtime }).unwrap_or_else(|e| {
            eprintln!("tokio: {e}");
            std::process::exit(1)
        });
        tx.send((app.hostname().to_owned(), app.port(), app.handle()))
            .unwrap();
        app.run();
    });
    let (host, port, handle) = rx.recv().unwrap();
    println!("listening on {host}:{port}");
    let _ = std::io::stdout().flush();
    let mut interval = tokio::time::interval(tick);
    let mut n = 0u64;
    loop {
        interval.tick().await;
        n += 1;
        // Fails once the server has stopped.
        if handle.publish("ticks", format!("tick {n}")).is_err() {
            break;
        }
    }
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
}
