//! WebSocket clients: Bun's `new WebSocket(url, protocols | { headers })`
//! on the same core as the servers.
//!
//! A connection runs on the event loop of the thread that opened it,
//! next to any server of that thread: [`connect`] then [`run`] on a
//! thread of its own, or [`Server::connect`](crate::Server::connect) from
//! a server's handlers (a proxy, a bridge, a fan-in). Its handler
//! ([`ClientHandler`]) sees a [`ClientWebSocket`], which has the same
//! methods as a server's socket, from the same code.

mod conn;
mod handle;
mod handshake;
mod hub;
mod options;
mod url;

use crate::error::Error;
use crate::websocket::{ClientSide, Message, WebSocket};

pub use conn::ClientCore;
pub use handle::ClientHandle;
pub(crate) use hub::{in_callback, Hub};
pub use options::{ClientTls, ConnectOptions};

/// A client connection with its contextual data `T`: what Bun's
/// `new WebSocket(url)` returns, as its handlers see it.
///
/// It has the methods of a [`ServerWebSocket`](crate::ServerWebSocket)
/// (the same implementation): [`send`](WebSocket::send) (masked, as a
/// client must), [`close`](WebSocket::close),
/// [`terminate`](WebSocket::terminate), [`ping`](WebSocket::ping),
/// [`cork`](WebSocket::cork), [`buffered_amount`](WebSocket::buffered_amount),
/// [`data`](WebSocket::data), ... plus [`protocol`](Self::protocol),
/// [`url`](Self::url) and [`handle`](Self::handle).
///
/// Frames are masked as RFC 6455 requires, with masks an intermediary
/// cannot predict: they come from the kernel's random generator
/// (`getrandom`, one call per 64 frames).
///
/// ```no_run
/// use uws::*;
///
/// struct Echo;
/// impl ClientHandler for Echo {
///     type Data = u32;
///     // ws.onmessage = (event) => { ws.send(event.data) }
///     fn message(&self, ws: &mut ClientWebSocket<u32>, message: Message<'_>) {
///         *ws.data_mut() += 1;
///         ws.send(message, false);
///     }
/// }
/// ```
pub type ClientWebSocket<T> = WebSocket<ClientSide, T>;

impl<T> ClientWebSocket<T> {
    /// Bun's `ws.protocol`: the subprotocol the server chose from
    /// [`ConnectOptions::protocols`], if any.
    pub fn protocol(&self) -> Option<&str> {
        self.core().protocol.get().and_then(|p| p.as_deref())
    }

    /// Bun's `ws.extensions`: the server's `Sec-WebSocket-Extensions`
    /// answer (e.g. `permessage-deflate; server_no_context_takeover`), if
    /// any.
    pub fn extensions(&self) -> Option<&str> {
        self.core().extensions.get().and_then(|e| e.as_deref())
    }

    /// Bun's `ws.url`: the URL connected to (normalised).
    pub fn url(&self) -> &str {
        &self.core().url
    }

    /// A handle to this connection, for later and for other threads.
    pub fn handle(&self) -> ClientHandle<T> {
        // SAFETY: the hub outlives every connection of its thread.
        let hub = unsafe { &*self.core().hub };
        ClientHandle::new(hub.shared.clone(), self.id())
    }
}

/// One client connection's handlers: Bun's `ws.onopen`, `onmessage`,
/// `onclose`, `onerror` (plus uWebSockets' `drain`, `ping`, `pong`), called
/// on the connection's thread. All default to doing nothing but `error`,
/// which prints.
///
/// `close` runs exactly once for every connection that opened; a
/// connection that never opened (the host did not resolve, the server
/// refused, TLS or the handshake failed, it timed out or was closed
/// before) gets `error` instead, and never `close`. A panic in a handler
/// is caught, passed to `error`, and closes the connection with 1011.
///
/// ```no_run
/// use uws::*;
///
/// struct Chat;
/// impl ClientHandler for Chat {
///     type Data = String; // our name
///
///     // ws.onopen = () => ws.send(`hello from ${name}`)
///     fn open(&self, ws: &mut ClientWebSocket<String>) {
///         let hello = format!("hello from {}", ws.data());
///         ws.send_text(&hello);
///     }
///     // ws.onmessage = (e) => console.log(e.data)
///     fn message(&self, _ws: &mut ClientWebSocket<String>, message: Message<'_>) {
///         println!("{message:?}");
///     }
///     // ws.onclose = (e) => console.log(e.code, e.reason)
///     fn close(&self, _ws: &mut ClientWebSocket<String>, code: u16, reason: &str) {
///         println!("closed {code} {reason}");
///     }
///     // ws.onerror = (e) => console.error(e)
///     fn error(&self, _ws: Option<&mut ClientWebSocket<String>>, error: &Error) {
///         eprintln!("{error}");
///     }
/// }
///
/// connect("ws://127.0.0.1:3000/chat", ConnectOptions::default(), Chat, "ann".to_string())?;
/// run();
/// # Ok::<(), uws::Error>(())
/// ```
pub trait ClientHandler: Sized + 'static {
    /// The contextual data of each connection (given to [`connect`]).
    type Data: 'static;

    /// The connection is open (the server accepted the handshake).
    fn open(&self, ws: &mut ClientWebSocket<Self::Data>) {
        let _ = ws;
    }

    /// A complete message arrived (fragments joined, decompressed, text
    /// checked to be UTF-8).
    fn message(&self, ws: &mut ClientWebSocket<Self::Data>, message: Message<'_>) {
        let _ = (ws, message);
    }

    /// The connection has closed: `code` and `reason` are the server's
    /// close frame, ours, or 1006 when the connection was lost (the reason
    /// then may say why). Runs exactly once per opened connection; the data
    /// is dropped right after.
    fn close(&self, ws: &mut ClientWebSocket<Self::Data>, code: u16, reason: &str) {
        let _ = (ws, code, reason);
    }

    /// The send buffer has been written out after backpressure.
    fn drain(&self, ws: &mut ClientWebSocket<Self::Data>) {
        let _ = ws;
    }

    /// A ping arrived (it has already been answered with a pong).
    fn ping(&self, ws: &mut ClientWebSocket<Self::Data>, data: &[u8]) {
        let _ = (ws, data);
    }

    /// A pong arrived.
    fn pong(&self, ws: &mut ClientWebSocket<Self::Data>, data: &[u8]) {
        let _ = (ws, data);
    }

    /// The connection failed before it opened (`ws` is it, with
    /// [`ReadyState::Closed`](crate::ReadyState::Closed); its data is
    /// dropped right after), or a handler panicked (`ws` is the socket it
    /// ran for, `None` when the data's destructor panicked). The error
    /// says what: [`Error::Dns`], [`Error::Connect`],
    /// [`Error::TlsHandshake`], [`Error::Handshake`],
    /// [`Error::HandlerPanic`]. The default prints it to stderr.
    fn error(&self, ws: Option<&mut ClientWebSocket<Self::Data>>, error: &Error) {
        let _ = ws;
        eprintln!("uws: {error}");
    }
}

/// Bun's `new WebSocket(url, { protocols, headers })`: starts connecting
/// to `url` (`ws://` or `wss://`) on this thread's event loop, with
/// `handler` for its events and `data` as its contextual data. Returns at
/// once; the connection opens (or fails) while the loop runs: call
/// [`run`] (or [`App::run`](crate::App::run) when a server shares the
/// thread).
///
/// Errors here are only about the arguments (a bad URL or option, a CA
/// file that does not load); everything that happens on the network
/// reaches `handler.error`.
///
/// ```no_run
/// use uws::*;
///
/// struct Hello;
/// impl ClientHandler for Hello {
///     type Data = ();
///     fn open(&self, ws: &mut ClientWebSocket<()>) {
///         println!("open, protocol {:?}", ws.protocol());
///         ws.send_text("hello");
///     }
///     fn message(&self, ws: &mut ClientWebSocket<()>, message: Message<'_>) {
///         println!("got {message:?}");
///         let _ = ws.close(1000, "done");
///     }
/// }
///
/// // const ws = new WebSocket("ws://localhost:3000", ["soap", "wamp"]);
/// let options = ConnectOptions { protocols: vec!["soap".into(), "wamp".into()], ..Default::default() };
/// connect("ws://localhost:3000", options, Hello, ())?;
/// run(); // returns once the connection is closed
/// # Ok::<(), uws::Error>(())
/// ```
pub fn connect<H: ClientHandler>(
    url: &str,
    options: ConnectOptions,
    handler: H,
    data: H::Data,
) -> Result<ClientHandle<H::Data>, Error> {
    conn::connect(url, options, handler, data, None)
}

/// A connection opened by the server with registry number `owner`.
pub(crate) fn connect_owned<H: ClientHandler>(
    url: &str,
    options: ConnectOptions,
    handler: H,
    data: H::Data,
    owner: u32,
) -> Result<ClientHandle<H::Data>, Error> {
    conn::connect(url, options, handler, data, Some(owner))
}

/// Closes the connections the server `owner` opened (it is stopping).
pub(crate) fn stop_owned(owner: u32, now: bool) {
    if let Some(hub) = Hub::existing() {
        // SAFETY: this thread's hub, live until the thread exits.
        unsafe { (*hub).stop_owned(owner, now) };
    }
}

/// Runs this thread's event loop until nothing is left on it: every
/// client connection closed and every server stopped (Bun's process
/// staying alive while sockets are open). Returns at once when the
/// thread has nothing on its loop.
///
/// # Panics
/// When called from inside a handler: the loop cannot run inside itself.
pub fn run() {
    crate::server::run_thread_loop();
}
