//! # uws: Bun's WebSocket server API on the uWebSockets core, in Rust
//!
//! Bun's WebSockets are uWebSockets with JavaScript on top. This crate puts
//! the same C++ core (uWebSockets v20.58.0 and uSockets, compiled by
//! `build.rs`) behind a safe Rust API shaped like `Bun.serve`, with no
//! JavaScript on the message path.
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
//!             ws.server().publish("room", &line, false);
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
//! | `ws.send()` → `N` / `-1` / `0` | [`SendStatus::Sent`] / [`Backpressure`](SendStatus::Backpressure) / [`Dropped`](SendStatus::Dropped) |
//! | `server.publish`, `ws.publish`, `subscriberCount` | [`Server::publish`], [`ServerWebSocket::publish`], [`Server::subscriber_count`] |
//! | `server.stop()` | [`Server::stop`] (closes with 1001) |
//!
//! ## Threads
//!
//! uWebSockets runs one event loop per thread; a server lives on the thread
//! that called [`serve`]. Other threads reach it through a
//! [`ServerHandle`] (`Send + Sync`). To use several cores, run one server
//! per thread on the same port: the kernel spreads connections
//! (SO_REUSEPORT).
//!
//! ## Panics
//!
//! A panic in a handler is caught before it reaches C++, reported to
//! [`WebSocketHandler::error`], and closes that socket with 1011 (a panic
//! in `fetch` answers 500). This needs `panic = "unwind"` (the default);
//! with `panic = "abort"` a handler panic ends the process.
#![deny(missing_docs)]

mod error;
mod ffi;
mod handler;
mod http;
mod options;
mod registry;
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

pub use error::Error;
pub use handler::WebSocketHandler;
pub use options::{
    Compressor, PerMessageDeflate, ServeOptions, SubprotocolPolicy, WebSocketOptions,
};

// zlib is linked through libz-sys (permessage-deflate in uWebSockets),
// OpenSSL through openssl-sys (uSockets' TLS).
pub use http::{Request, Response};
use libz_sys as _;
#[cfg(feature = "tls")]
use openssl_sys as _;
pub use registry::SocketId;
pub use server::{serve, App, OwnedMessage, Server, ServerHandle};
pub use tls::{Pem, TlsOptions};
pub use upgrade::UpgradeOptions;
pub use websocket::{Message, PublishStatus, ReadyState, SendStatus, ServerWebSocket};
