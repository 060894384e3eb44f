//! # uws: Bun's WebSocket server API on the uWebSockets core, in Rust
//!
//! Bun's WebSockets are uWebSockets with JavaScript on top. This crate puts
//! the same C++ core (uWebSockets v20.58.0 and uSockets, compiled by
//! `build.rs`) behind a safe Rust API shaped like `Bun.serve`, with no
//! JavaScript on the message path; and Bun's client, `new WebSocket(url)`,
//! on the same core ([`connect`], see [A client](#a-client)).
//!
//! ## Install
//!
//! ```toml
//! [dependencies]
//! uws = "0.1"
//! # wss:// and https:// through the system's OpenSSL 3:
//! # uws = { version = "0.1", features = ["tls"] }
//! # pub/sub across servers through Redis or NATS:
//! # uws = { version = "0.1", features = ["redis"] }   # or "nats"
//! ```
//!
//! A default build needs the Rust toolchain and a C/C++ compiler (gcc/g++
//! or clang, C++17): the pinned uWebSockets sources come through cargo and
//! are compiled by `build.rs`; nothing else to install. What each feature
//! adds and needs: [Cargo features](#cargo-features).
//!
//! ## A Bun server and its Rust port
//!
//! ```js
//! // Bun
//! const server = Bun.serve({
//!   port: 3000,
//!   fetch(req, server) {
//!     const name = new URL(req.url).searchParams.get("name") ?? "anon";
//!     if (server.upgrade(req, { data: { name } })) return;
//!     return new Response("Upgrade failed", { status: 400 });
//!   },
//!   websocket: {
//!     open(ws) { ws.subscribe("room"); },
//!     message(ws, message) { server.publish("room", `${ws.data.name}: ${message}`); },
//!     close(ws, code, reason) { ws.unsubscribe("room"); },
//!   },
//! });
//! console.log(`listening on ${server.hostname}:${server.port}`);
//! ```
//!
//! ```no_run
//! // Rust
//! use uws::*;
//!
//! struct Chat;
//!
//! struct User { name: String }
//!
//! impl WebSocketHandler for Chat {
//!     type Data = User;
//!
//!     fn fetch(&self, req: &mut Request<'_>, server: &Server<User>) -> Response {
//!         let name = req.query_param("name").unwrap_or("anon".into()).into_owned();
//!         if server.upgrade(req, UpgradeOptions::new(User { name })) {
//!             return Response::new("");
//!         }
//!         Response::new("Upgrade failed").with_status(400)
//!     }
//!
//!     fn open(&self, ws: &mut ServerWebSocket<User>) {
//!         ws.subscribe("room");
//!     }
//!
//!     fn message(&self, ws: &mut ServerWebSocket<User>, message: Message<'_>) {
//!         if let Message::Text(text) = message {
//!             let line = format!("{}: {text}", ws.data().name);
//!             ws.server().publish("room", &line);
//!         }
//!     }
//!
//!     // No unsubscribe needed: a closing socket leaves its topics.
//! }
//!
//! fn main() -> Result<(), Error> {
//!     let app = serve(ServeOptions { port: 3000, ..Default::default() }, Chat)?;
//!     println!("listening on {}:{}", app.hostname(), app.port());
//!     app.run();
//!     Ok(())
//! }
//! ```
//!
//! ## How the pieces map
//!
//! | Bun | uws |
//! |---|---|
//! | `Bun.serve({ ... })` | [`serve`]`(`[`ServeOptions`]`, handler)` then [`App::run`] |
//! | `fetch`, `websocket: { open, message, close, drain, ping, pong }` | methods of [`WebSocketHandler`] |
//! | `server.upgrade(req, { data, headers })` | [`Server::upgrade`] with [`UpgradeOptions`] |
//! | `ws.data` | [`ServerWebSocket::data`] / [`data_mut`](ServerWebSocket::data_mut) |
//! | `ws.send(msg)`, `ws.send(msg, true)` | [`ws.send(msg)`](WebSocket::send), [`ws.send_compressed(msg)`](WebSocket::send_compressed): `msg` is anything [`AsMessage`] (`&str`, `String`, `&[u8]`, `Vec<u8>`, ...) |
//! | `ws.send()` → `N` / `-1` / `0` | [`SendStatus::Sent`] / [`Backpressure`](SendStatus::Backpressure) / [`Dropped`](SendStatus::Dropped) |
//! | `server.publish`, `ws.publish`, `subscriberCount` | [`Server::publish`], [`ServerWebSocket::publish`] (`_compressed` for `compress: true`), [`Server::subscriber_count`] |
//! | `server.stop()`, `server.stop(true)` | [`Server::stop`] (closes with 1001), [`Server::stop_now`] |
//! | `server.pendingWebSockets` | [`Server::pending_websockets`] |
//! | a Redis subscriber calling `server.publish` | [`ServeOptions::bus`]: `Bus::redis`, `Bus::nats` |
//! | `new WebSocket(url, protocols \| { headers })` | [`connect`]`(url, `[`ConnectOptions`]`, handler, data)` then [`run`] |
//! | `ws.onopen`, `onmessage`, `onclose`, `onerror` | methods of [`ClientHandler`] |
//! | `ws.protocol`, `ws.url`, `ws.readyState` | [`ClientWebSocket::protocol`], [`url`](ClientWebSocket::url), [`WebSocket::ready_state`] |
//! | `routes: { ... }` | [`WebSocketHandler::routes`] returning [`Routes`] (see "Routes" below) |
//! | `server.reload({ routes, fetch })`, `server.requestIP(req)`, `server.timeout(req, s)` | [`Server::reload`], [`Server::request_ip`], [`Server::timeout`] |
//!
//! ## Routes
//!
//! Bun's `routes` object, line by line. The router is uWebSockets' own
//! (the one Bun's is built on): exact segments before `:params` before a
//! trailing `*`, then `fetch`. A static response is written by the native
//! side from bytes prepared when the routes are installed, without calling
//! into Rust; a handler runs like `fetch` (it may upgrade, defer, read the
//! body, stream; a panic answers 500 and reaches `error`).
//!
//! ```no_run
//! // Bun.serve({
//! //   routes: {
//! //     "/api/status": new Response("OK"),
//! //     "/users/:id": req => new Response(`Hello User ${req.params.id}!`),
//! //     "/api/posts": {
//! //       GET: () => new Response("List posts"),
//! //       POST: async req => new Response(`created: ${await req.text()}`, { status: 201 }),
//! //     },
//! //     "/api/*": new Response("Not found", { status: 404 }),
//! //     "/blog/hello": Response.redirect("/blog/hello/world"),
//! //     "/ws": (req, server) => server.upgrade(req) ? undefined : new Response("no", { status: 400 }),
//! //   },
//! //   fetch(req) { return new Response("Unmatched route", { status: 404 }) },
//! // })
//! use uws::*;
//!
//! struct Site;
//! impl WebSocketHandler for Site {
//!     type Data = ();
//!
//!     // routes: {
//!     fn routes(&self) -> Routes<()> {
//!         Routes::new()
//!             // "/api/status": new Response("OK"),
//!             .route("/api/status", Response::new("OK"))
//!             // "/users/:id": req => new Response(`Hello User ${req.params.id}!`),
//!             .route("/users/:id", |req: &mut Request<'_>, _: &Server<()>| {
//!                 Response::new(format!("Hello User {}!", req.param("id").unwrap_or_default()))
//!             })
//!             // "/api/posts": { GET: ..., POST: ... },
//!             .route(
//!                 "/api/posts",
//!                 Methods::new()
//!                     .get(Response::new("List posts"))
//!                     .post(|req: &mut Request<'_>, server: &Server<()>| {
//!                         // `await req.text()`: the body comes after the handler returns.
//!                         if let Some(pending) = server.defer_request(req) {
//!                             pending.on_body(|_, body, pending| {
//!                                 if let Ok(body) = body {
//!                                     let text = String::from_utf8_lossy(body.bytes()).into_owned();
//!                                     let _ = pending.respond(
//!                                         Response::new(format!("created: {text}")).with_status(201),
//!                                     );
//!                                 }
//!                             });
//!                         }
//!                         Response::new("")
//!                     }),
//!             )
//!             // "/api/*": new Response("Not found", { status: 404 }),
//!             .route("/api/*", Response::new("Not found").with_status(404))
//!             // "/blog/hello": Response.redirect("/blog/hello/world"),
//!             .route("/blog/hello", Response::redirect("/blog/hello/world"))
//!             // "/ws": (req, server) => server.upgrade(req) ? undefined : ...,
//!             .route("/ws", |req: &mut Request<'_>, server: &Server<()>| {
//!                 if server.upgrade(req, UpgradeOptions::new(())) {
//!                     return Response::new("");
//!                 }
//!                 Response::new("no").with_status(400)
//!             })
//!     }
//!
//!     // fetch(req) { return new Response("Unmatched route", { status: 404 }) }
//!     fn fetch(&self, _req: &mut Request<'_>, _server: &Server<()>) -> Response {
//!         Response::new("Unmatched route").with_status(404)
//!     }
//! }
//!
//! let app = serve(ServeOptions { port: 3000, ..Default::default() }, Site)?;
//! app.run();
//! # Ok::<(), uws::Error>(())
//! ```
//!
//! | Bun | uws |
//! |---|---|
//! | `"/path": new Response(...)` (static) | `.route("/path", Response::new(...))`: answered natively, any method |
//! | `"/path": (req, server) => ...` | `.route("/path", \|req, server\| ...)`: any method |
//! | `"/path": { GET, POST, ... }` | `.route("/path", `[`Methods`]`::new().get(..).post(..))`; GET answers HEAD; another method falls through to the next matching route, then `fetch` |
//! | `req.params.id` | [`Request::param`]`("id")` (percent-decoded), [`Request::params`] |
//! | `"/api/*"` | `.route("/api/*", ...)`: a trailing `*` only |
//! | `Response.redirect(url[, status])` | [`Response::redirect`] (302), [`Response::redirect_with_status`] |
//! | `fetch` for the rest | [`WebSocketHandler::fetch`], or [`Routes::fetch`] to replace it with the routes |
//! | `server.reload({ routes, fetch })` | [`Server::reload`]`(Routes)`: connections stay, each request sees one table |
//! | `server.requestIP(req)` | [`Server::request_ip`] (address and port) |
//! | `server.timeout(req, seconds)` | [`Server::timeout`] (0: none) |
//!
//! Route closures are `Fn + 'static` (not `Send`): [`WebSocketHandler::routes`]
//! runs on each thread of a server (once per thread with
//! [`serve_threaded`]), and [`Server::reload`] replaces the routes of the
//! thread it runs on. `cargo run --example routes` serves the table above.
//!
//! ## A client
//!
//! ```no_run
//! // Bun
//! // const ws = new WebSocket("ws://localhost:3000/chat", ["soap"]);
//! // ws.onopen = () => ws.send("hello");
//! // ws.onmessage = (e) => { console.log(e.data); ws.close(1000); };
//! use uws::*;
//!
//! struct Hello;
//! impl ClientHandler for Hello {
//!     type Data = ();
//!     fn open(&self, ws: &mut ClientWebSocket<()>) {
//!         ws.send_text("hello");
//!     }
//!     fn message(&self, ws: &mut ClientWebSocket<()>, message: Message<'_>) {
//!         println!("{message:?}");
//!         let _ = ws.close(1000, "");
//!     }
//! }
//!
//! let options = ConnectOptions { protocols: vec!["soap".into()], ..Default::default() };
//! connect("ws://localhost:3000/chat", options, Hello, ())?;
//! run(); // until nothing is left on this thread's loop
//! # Ok::<(), uws::Error>(())
//! ```
//!
//! A [`ClientWebSocket`] and a [`ServerWebSocket`] are the same
//! [`WebSocket`] type on either [`Side`]: sending, closing and the rest
//! are one implementation, with the same guarantees. A server can open
//! connections of its own with [`Server::connect`].
//!
//! ## Threads
//!
//! uWebSockets runs one event loop per thread; a server lives on the thread
//! that called [`serve`]. Other threads reach it through a
//! [`ServerHandle`] (`Send + Sync`). To use several cores, [`serve_threaded`]
//! runs one server on N loops (`ServeOptions { threads: N, .. }`, 0 for one
//! per core) with one listening socket and pub/sub across the loops: a
//! room keeps every member, whichever thread each landed on. Its handler
//! is shared (`Send + Sync`); socket data stays on its thread.
//!
//! ## Across servers
//!
//! Several servers (processes, machines) share pub/sub through a message
//! bus, as Socket.IO's Redis adapter does for Socket.IO: set
//! [`ServeOptions::bus`] to `Bus::redis`, `Bus::redis_cluster` or
//! `Bus::nats` (cargo features `redis`, `nats`), and a publish on any
//! server reaches the subscribers of every server, once each. A bridge
//! thread owns the bus connections; the loops hand it publishes through a
//! bounded queue and get the bus's messages as jobs, like calls through a
//! [`ServerHandle`]. Delivery across servers is at most once (like Redis
//! pub/sub); [`Server::bus_status`] counts what was dropped. See [`Bus`].
//!
//! ## Using it from async code
//!
//! An [`App`] is not `Send`: it runs its loop on a thread of its own, and
//! hands its [`ServerHandle`] back (a channel is enough). Async code then
//! publishes, sends and stops through the handle; handlers never block
//! (no `block_on`, no waiting on a lock held by async code): to answer
//! later, keep [`ws.id()`](ServerWebSocket::id) and send through the
//! handle when the answer is ready.
//!
//! ```no_run
//! use std::sync::mpsc;
//! use uws::*;
//!
//! struct Jobs;
//! impl WebSocketHandler for Jobs {
//!     type Data = ();
//!     fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
//!         server.upgrade(req, UpgradeOptions::new(()));
//!         Response::new("")
//!     }
//!     fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
//!         // Hand the work to another thread (a tokio task, a pool) with the
//!         // socket's id; it answers through the handle.
//!         let (id, job) = (ws.id(), message.as_bytes().to_vec());
//!         let handle = ws.server().handle();
//!         std::thread::spawn(move || {
//!             let answer = format!("{} bytes done", job.len());
//!             let _ = handle.send(id, answer);
//!         });
//!     }
//! }
//!
//! let (tx, rx) = mpsc::channel();
//! std::thread::spawn(move || {
//!     let app = serve(ServeOptions { port: 0, ..Default::default() }, Jobs).unwrap();
//!     tx.send(app.handle()).unwrap();
//!     app.run();
//! });
//! let handle: ServerHandle<()> = rx.recv().unwrap();
//! // ... later, from async code:
//! handle.stop().unwrap();
//! ```
//!
//! Calls through a handle are queued to the server's loop, at most
//! [`ServeOptions::queue_limit`] at a time ([`Error::QueueFull`] past it);
//! the status of a queued send or publish is not reported back.
//!
//! ## Cargo features
//!
//! None is on by default.
//!
//! | feature | turns on | needs on the machine |
//! |---|---|---|
//! | `tls` | `wss://` and `https://`: [`ServeOptions::tls`] with [`TlsOptions`], `wss://` URLs for [`connect`] (without it both are an [`Error::InvalidOption`]) | OpenSSL 3 headers and `pkg-config` (Debian: `libssl-dev pkg-config`) |
//! | `tls-vendored` | `tls`, with OpenSSL built from source and linked statically | `perl` and `make` (no OpenSSL headers) |
//! | `redis` | `Bus::redis`, `Bus::redis_cluster` (see [`Bus`]): pub/sub across servers through Redis ([Across servers](#across-servers)) | Rust 1.88; a Redis server to talk to |
//! | `nats` | `Bus::nats`: the same through NATS | Rust 1.89; a NATS server to talk to |
//! | `bindgen` | regenerates `src/sys.rs` from the shim header at build time (for work on the crate itself) | libclang (Debian: `libclang-dev`) |
//!
//! Permessage-deflate is always built in (zlib from source through
//! `libz-sys`; see [`PerMessageDeflate`]). The bus features bring their
//! clients' dependencies (a tokio runtime on the bridge's own thread);
//! a default build compiles none of them.
//!
//! ## What makes it sound
//!
//! Safe code cannot reach freed memory through this API. These invariants
//! carry that promise (every `unsafe` block relies on one of them):
//!
//! - **A socket is handed out only while it is busy.** A
//!   `&mut ServerWebSocket` (or `&mut ClientWebSocket`) exists only during
//!   a handler call or a [`Server::with_socket`] (or
//!   [`ClientHandle::with_socket`]) closure, and the socket is marked busy for
//!   that long: `with_socket` on a busy socket returns `None`, and a close
//!   that arrives meanwhile (the handler closed it, or stopped the server)
//!   is recorded and its close handler runs when the handler returns (also
//!   on unwind). The socket's state lives beside what the `&mut` covers,
//!   never inside it.
//! - **A socket cannot be moved.** [`ServerWebSocket`] is unsized, like
//!   `str`: it only exists behind the reference a handler gets, so two of
//!   them cannot be swapped or replaced. Their data can.
//! - **Ids are checked on use.** A [`SocketId`] names a server (or a
//!   thread's clients), a slot and a generation; once the socket is closing
//!   (from the first event of its close on) it resolves to nothing, and
//!   sends through it are dropped. A [`ClientHandle`] only resolves its own
//!   connection's id, so its data type always matches. Data is dropped
//!   exactly once, right after the close handler (or, for a client
//!   connection that never opened, after `error`).
//! - **An App is freed only when none of its callbacks runs.** Dropping an
//!   App inside one of its own callbacks (it was kept in a thread-local or
//!   an `Rc`) stops it at once and frees it at the next point where none of
//!   its callbacks runs. [`App::run`] refuses to run the loop inside a
//!   handler.
//! - **The loop outlives every App of its thread.** The thread's event
//!   loop is freed after its last App, also when thread-locals drop Apps
//!   during thread exit; handles stop reaching servers whose thread has
//!   exited.
//! - **User code runs through one gate.** Each server, and the client
//!   connections of each thread, has a gate: handler methods, closures
//!   (jobs, timers, body callbacks, stream producers), `Waker::wake` and
//!   the `Drop` of user values (socket data, closures, wakers, upgrade
//!   options) all run through it. It counts the call in (so an App dropped
//!   there is only stopped, and freed where none of its callbacks runs),
//!   catches a panic and reports it to `error`, and counts out. Nothing of
//!   the crate's is locked or borrowed while user code runs: a waker may
//!   poll again inside `wake`. Every native entry point counts itself in
//!   before anything else, so a value it drops on the way out is inside
//!   too (`tests/source_rules.rs` checks both on the source).
//! - **Nothing unwinds into C++.** Panics in handlers, closures, jobs,
//!   wakers and destructors of data are caught at the gate.
//! - **The system saying no is an error, not a crash.** A process out of
//!   file descriptors gets [`Error::Resources`] for a loop, a timer or a
//!   connection it could not make; jobs that must arrive (a resolved host,
//!   a connection's failure) never meet a full queue.
//!
//! ## Panics
//!
//! A panic in a handler is caught before it reaches C++, reported to
//! [`WebSocketHandler::error`], and closes that socket with 1011 (a panic
//! in `fetch` answers 500). This needs `panic = "unwind"` (the default);
//! with `panic = "abort"` a handler panic ends the process.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]
// docs.rs (`--cfg docsrs`, nightly): badges on feature-gated items.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bus;
mod client;
mod error;
mod ffi;
mod handler;
mod http;
mod options;
#[cfg(test)]
mod randomized;
mod registry;
mod routes;
mod runtime;
mod server;
mod tls;
mod upgrade;
mod websocket;

#[cfg(not(feature = "bindgen"))]
#[rustfmt::skip]
#[allow(non_camel_case_types, non_upper_case_globals, dead_code, clippy::all)]
mod sys;
#[cfg(feature = "bindgen")]
#[allow(non_camel_case_types, non_upper_case_globals, dead_code, clippy::all)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/sys.rs"));
}

pub use bus::{Bus, BusState, BusStatus};
pub use client::{
    connect, run, ClientHandle, ClientHandler, ClientTls, ClientWebSocket, ConnectOptions,
};
pub use error::Error;
pub use handler::WebSocketHandler;
pub use options::{
    Compressor, PerMessageDeflate, ServeOptions, SubprotocolPolicy, WebSocketOptions,
};

// zlib is linked through libz-sys (permessage-deflate in uWebSockets),
// OpenSSL through openssl-sys (uSockets' TLS).
pub use http::{Body, BodyFuture, BodyWriter, Flow, PendingRequest, Request, Response};
use libz_sys as _;
#[cfg(feature = "tls")]
use openssl_sys as _;
pub use registry::SocketId;
pub use routes::{Methods, Route, RouteHandler, Routes};
pub use server::{serve, serve_threaded, App, Server, ServerHandle, TimerId};
pub use tls::{Pem, TlsOptions};
pub use upgrade::UpgradeOptions;
pub use websocket::{
    AsMessage, ClientSide, Message, OwnedMessage, PublishStatus, ReadyState, SendStatus,
    ServerSide, ServerWebSocket, Side, WebSocket,
};
