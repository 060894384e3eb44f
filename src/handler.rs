//! The handler trait: Bun's `fetch` plus `websocket: { open, message, ... }`.

use crate::error::Error;
use crate::http::{Request, Response};
use crate::registry::SocketId;
use crate::routes::Routes;
use crate::server::Server;
use crate::websocket::{Message, ServerWebSocket};

/// One server's handlers: Bun's `fetch` and `websocket: { ... }` in one
/// object, called on the server's thread. Only `fetch` is required (Bun
/// requires it too); the others default to doing nothing.
///
/// Handlers take `&self`: the server is single-threaded, so keep mutable
/// state in `Cell`/`RefCell`, or per socket in [`Data`](Self::Data).
/// A panic in any handler is caught, passed to [`error`](Self::error), and
/// the socket it ran for is closed with 1011 (`fetch`: answered with 500).
///
/// ```no_run
/// use uws::*;
///
/// struct Echo;
///
/// impl WebSocketHandler for Echo {
///     type Data = ();
///
///     // fetch(req, server) { if (server.upgrade(req)) return; return new Response("no", { status: 400 }) }
///     fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
///         if server.upgrade(req, UpgradeOptions::new(())) {
///             return Response::new("");
///         }
///         Response::new("no").with_status(400)
///     }
///
///     // message(ws, message) { ws.send(message) }
///     fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
///         ws.send(message, false);
///     }
/// }
///
/// let app = serve(ServeOptions { port: 0, ..Default::default() }, Echo)?;
/// println!("listening on {}:{}", app.hostname(), app.port());
/// app.run();
/// # Ok::<(), uws::Error>(())
/// ```
pub trait WebSocketHandler: Sized + 'static {
    /// The contextual data of each socket (Bun's `ws.data`), given to
    /// [`Server::upgrade`].
    type Data: 'static;

    /// Every HTTP request. Call [`Server::upgrade`] to make it a WebSocket
    /// (the response returned then is ignored), or return the response.
    fn fetch(&self, req: &mut Request<'_>, server: &Server<Self::Data>) -> Response;

    /// Bun's `routes`: what the server starts with (see [`Routes`]);
    /// requests no route takes go to `fetch`. Called once per thread when
    /// the server is made; [`Server::reload`] replaces them later.
    fn routes(&self) -> Routes<Self::Data> {
        Routes::new()
    }

    /// A socket has opened (after `fetch` returned).
    fn open(&self, ws: &mut ServerWebSocket<Self::Data>) {
        let _ = ws;
    }

    /// A complete message arrived (fragments are joined first).
    fn message(&self, ws: &mut ServerWebSocket<Self::Data>, message: Message<'_>) {
        let _ = (ws, message);
    }

    /// The socket has closed: `code` and `reason` are the peer's close
    /// frame, ours, the code the server failed the connection with on a
    /// protocol error (1002, 1007 for invalid UTF-8, 1009 for a message over
    /// `max_payload_length`; the reason says why, e.g. "Received too big
    /// message"), or 1006 when the connection was lost. Runs exactly once per
    /// opened socket; `ws.data` is dropped right after.
    fn close(&self, ws: &mut ServerWebSocket<Self::Data>, code: u16, reason: &str) {
        let _ = (ws, code, reason);
    }

    /// The socket's send buffer has been written out after backpressure.
    fn drain(&self, ws: &mut ServerWebSocket<Self::Data>) {
        let _ = ws;
    }

    /// A ping arrived (uWebSockets has already answered it with a pong).
    fn ping(&self, ws: &mut ServerWebSocket<Self::Data>, data: &[u8]) {
        let _ = (ws, data);
    }

    /// A pong arrived.
    fn pong(&self, ws: &mut ServerWebSocket<Self::Data>, data: &[u8]) {
        let _ = (ws, data);
    }

    /// A socket subscribed to or left `topic` (also when it closes while
    /// subscribed); the counts are the topic's subscribers before and after.
    /// The socket is named by id because this runs inside the socket's own
    /// `subscribe`/`unsubscribe`/`close` call: while it closes, its id no
    /// longer resolves (`with_socket` gives `None`, sends are dropped).
    /// uWebSockets' own event, hidden by Bun.
    ///
    /// A server whose handler keeps this default never crosses into Rust
    /// for these events (a socket with many topics closes at C++ speed),
    /// unless it runs on several threads or has a [`Bus`](crate::Bus):
    /// those follow the topics through these events.
    fn subscription(
        &self,
        server: &Server<Self::Data>,
        ws: SocketId,
        topic: &str,
        old_count: usize,
        new_count: usize,
    ) {
        let _ = (ws, topic, old_count, new_count);
        server.core().subscription_events_unused();
    }

    /// A handler panicked (`ws` is the socket it ran for, if any). The
    /// default prints the error to stderr.
    fn error(&self, ws: Option<&mut ServerWebSocket<Self::Data>>, error: &Error) {
        let _ = ws;
        eprintln!("uws: {error}");
    }
}
