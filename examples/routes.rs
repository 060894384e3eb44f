//! Bun's `routes`: static responses served by the native side, `:param`
//! routes, per-method handlers, a wildcard, a redirect, `request_ip`,
//! `reload`, a WebSocket route, and `fetch` for everything else.
//!
//! ```text
//! cargo run --release --example routes -- --port 3000 [--host 127.0.0.1]
//! ```
//!
//! Answers:
//! - `GET /` `Home` (static; `Home 2` after `/reload`), `GET /api/status` `OK` (static)
//! - `GET /users/:id` `Hello User {id}!` (decoded: `/users/J%C3%BCrgen` gives `Hello User Jürgen!`)
//! - `/api/posts`: `GET` `List posts`, `POST` 201 `created: {body}`
//! - `/api/*` 404 `Not found` (static)
//! - `GET /blog/hello` 302 to `/blog/hello/world`
//! - `GET /ip` the client's address
//! - `GET /reload` reloads the routes so that `/` answers `Home 2` (answers `reloaded`)
//! - `GET /ws` a WebSocket that echoes
//! - anything else: 404 `Unmatched route` (`fetch`)
//!
//! The same server in Bun (benches/bun/routes.js is the benchmark's copy):
//!
//! ```js
//! const server = Bun.serve({
//!   routes: {
//!     "/": new Response("Home"),
//!     "/api/status": new Response("OK"),
//!     "/users/:id": req => new Response(`Hello User ${req.params.id}!`),
//!     "/api/posts": {
//!       GET: () => new Response("List posts"),
//!       POST: async req => new Response(`created: ${await req.text()}`, { status: 201 }),
//!     },
//!     "/api/*": new Response("Not found", { status: 404 }),
//!     "/blog/hello": Response.redirect("/blog/hello/world"),
//!     "/ip": (req, server) => new Response(server.requestIP(req).address),
//!     "/reload": () => { server.reload({ routes: { ...routes, "/": new Response("Home 2") } }); ... },
//!     "/ws": (req, server) => server.upgrade(req) ? undefined : new Response("Upgrade failed", { status: 400 }),
//!   },
//!   fetch: () => new Response("Unmatched route", { status: 404 }),
//!   websocket: { message(ws, m) { ws.send(m) } },
//! });
//! ```
//!
//! Prints `listening on HOST:PORT` once bound (`--port 0`: any free port).

#[path = "common/args.rs"]
mod args;

use std::io::Write;
use uws::{
    serve, Message, Methods, Request, Response, Routes, ServeOptions, Server, ServerWebSocket,
    UpgradeOptions, WebSocketHandler,
};

struct Site;

/// The routes, with `home` as the answer of `/`.
fn routes(home: &str) -> Routes<()> {
    Routes::new()
        // "/": new Response("Home"),
        .route("/", Response::new(home))
        // "/api/status": new Response("OK"),
        .route("/api/status", Response::new("OK"))
        // "/users/:id": req => new Response(`Hello User ${req.params.id}!`),
        .route("/users/:id", |req: &mut Request<'_>, _: &Server<()>| {
            Response::new(format!(
                "Hello User {}!",
                req.param("id").unwrap_or_default()
            ))
        })
        // "/api/posts": { GET: ..., POST: ... },
        .route(
            "/api/posts",
            Methods::new().get(Response::new("List posts")).post(
                |req: &mut Request<'_>, server: &Server<()>| {
                    // The body arrives after the handler returns.
                    if let Some(pending) = server.defer_request(req) {
                        pending.on_body(|_server, body, pending| {
                            let _ = match body {
                                Ok(body) => pending.respond(
                                    Response::new(format!(
                                        "created: {}",
                                        String::from_utf8_lossy(body.bytes())
                                    ))
                                    .with_status(201),
                                ),
                                // Too large: the client got 413 already.
                                Err(_) => Ok(()),
                            };
                        });
                    }
                    Response::new("")
                },
            ),
        )
        // "/api/*": new Response("Not found", { status: 404 }),
        .route("/api/*", Response::new("Not found").with_status(404))
        // "/blog/hello": Response.redirect("/blog/hello/world"),
        .route("/blog/hello", Response::redirect("/blog/hello/world"))
        // "/ip": (req, server) => new Response(server.requestIP(req).address),
        .route(
            "/ip",
            |req: &mut Request<'_>, server: &Server<()>| match server.request_ip(req) {
                Some(address) => Response::new(address.ip().to_string()),
                None => Response::new("unix socket"),
            },
        )
        // "/reload": () => { server.reload({ routes: {..., "/": new Response("Home 2")} }) }
        .route(
            "/reload",
            |_: &mut Request<'_>, server: &Server<()>| match server.reload(routes("Home 2")) {
                Ok(()) => Response::new("reloaded"),
                Err(e) => Response::new(e.to_string()).with_status(500),
            },
        )
        // "/ws": (req, server) => server.upgrade(req) ? undefined : new Response(...)
        .route("/ws", |req: &mut Request<'_>, server: &Server<()>| {
            if server.upgrade(req, UpgradeOptions::new(())) {
                return Response::new("");
            }
            Response::new("Upgrade failed").with_status(400)
        })
}

impl WebSocketHandler for Site {
    type Data = ();

    fn routes(&self) -> Routes<()> {
        routes("Home")
    }

    // fetch: () => new Response("Unmatched route", { status: 404 })
    fn fetch(&self, _req: &mut Request<'_>, _server: &Server<()>) -> Response {
        Response::new("Unmatched route").with_status(404)
    }

    // websocket: { message(ws, m) { ws.send(m) } }
    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        ws.send(message, false);
    }
}

const USAGE: &str = "\
usage: routes [--port N] [--host ADDR]
  --port N      port to listen on (default 3000; 0: any free port)
  --host ADDR   address to bind (default 127.0.0.1)
";

fn main() {
    let args = args::Args::from_env(USAGE, &["--port", "--host"], &[]);
    let options = ServeOptions {
        hostname: args.get("--host", "127.0.0.1".to_string()),
        port: args.get("--port", 3000),
        ..Default::default()
    };
    let app = serve(options, Site).unwrap_or_else(|e| {
        eprintln!("routes: {e}");
        std::process::exit(1)
    });
    println!("listening on {}:{}", app.hostname(), app.port());
    let _ = std::io::stdout().flush();
    app.run();
}
