//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong when starting or running a server, or
/// when connecting as a client.
///
/// Bad option values are reported here instead of reaching uWebSockets,
/// which would abort the process on some of them.
///
/// ```
/// use uws::{serve, Error, Request, Response, ServeOptions, Server, WebSocketHandler, WebSocketOptions};
///
/// struct Nothing;
/// impl WebSocketHandler for Nothing {
///     type Data = ();
///     fn fetch(&self, _: &mut Request<'_>, _: &Server<()>) -> Response {
///         Response::new("")
///     }
/// }
///
/// let options = ServeOptions {
///     websocket: WebSocketOptions { idle_timeout: 100_000, ..Default::default() },
///     ..Default::default()
/// };
/// match serve(options, Nothing) {
///     Err(Error::InvalidOption { name, reason }) => println!("{name}: {reason}"),
///     other => panic!("expected an error, got {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option is out of range or inconsistent.
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption {
        /// The option's name, as in [`ServeOptions`](crate::ServeOptions) or
        /// [`WebSocketOptions`](crate::WebSocketOptions).
        name: &'static str,
        /// Why the value was refused.
        reason: String,
    },
    /// The native app could not be created.
    #[error("could not create the server: {0}")]
    Create(String),
    /// Binding the listening socket failed: the address is in use (another
    /// server has the port; see
    /// [`ServeOptions::reuse_port`](crate::ServeOptions::reuse_port)),
    /// permission was denied, or the host name does not resolve.
    #[error("could not listen on {address}: {source}")]
    Listen {
        /// The address as given (`host:port` or a unix socket path).
        address: String,
        /// Why, as the operating system said it.
        source: std::io::Error,
    },
    /// A certificate, key, CA or DH parameters file could not be loaded.
    #[error("TLS: {path}: {reason}")]
    Tls {
        /// The file(s) concerned.
        path: String,
        /// Why (an I/O error, or OpenSSL's errors).
        reason: String,
    },
    /// A unix socket path cannot be passed to the native layer.
    #[error("unusable unix socket path {0:?}")]
    UnixPath(PathBuf),
    /// A handler panicked. The panic was caught at the FFI boundary; the
    /// socket it ran for is closed with 1011.
    #[error("handler `{handler}` panicked: {message}")]
    HandlerPanic {
        /// The handler that panicked (`"message"`, `"open"`, ...).
        handler: &'static str,
        /// The panic payload when it was a string.
        message: String,
    },
    /// The system refused a resource: most often the process is out of
    /// file descriptors (`EMFILE`), which a busy server reaches. Nothing
    /// was made; the server goes on.
    #[error("could not make {what}: {source}")]
    Resources {
        /// What could not be made (`"an event loop"`, `"a timer"`).
        what: &'static str,
        /// Why, as the operating system said it.
        source: std::io::Error,
    },
    /// The server has stopped (or its thread has gone): nothing can reach it.
    #[error("the server is not running")]
    NotRunning,
    /// A pending request can no longer be answered: the client went away,
    /// its body was too large (the server answered 413), or the server
    /// stopped.
    #[error("the request was aborted")]
    Aborted,
    /// A request body was larger than
    /// [`ServeOptions::max_request_body_size`](crate::ServeOptions::max_request_body_size);
    /// the client was answered 413 and the connection closed.
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Too many calls from other threads are waiting for the server's loop
    /// ([`ServeOptions::queue_limit`](crate::ServeOptions::queue_limit)):
    /// this one was not queued. Retry later, or slow down.
    #[error("the server's queue is full ({limit} calls waiting)")]
    QueueFull {
        /// The limit that was reached.
        limit: usize,
    },
    /// A client connection's host name did not resolve.
    #[error("could not resolve {host}: {source}")]
    Dns {
        /// The host name from the URL.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// A client connection could not be made: refused, unreachable, reset,
    /// timed out (`ErrorKind::TimedOut`, see
    /// [`ConnectOptions::connect_timeout`](crate::ConnectOptions::connect_timeout)),
    /// or closed by the application before it opened
    /// (`ErrorKind::ConnectionAborted`).
    #[error("could not connect to {url}: {source}")]
    Connect {
        /// The URL connected to.
        url: String,
        /// What the operating system (or the timeout) said.
        source: std::io::Error,
    },
    /// The TLS handshake of a `wss://` connection failed: the server's
    /// certificate is not trusted or not for this host, the server does
    /// not speak TLS, or it refused ours.
    #[error("TLS handshake with {url} failed: {reason}")]
    TlsHandshake {
        /// The URL connected to.
        url: String,
        /// Why, as far as OpenSSL told (e.g. "certificate verify failed:
        /// hostname mismatch").
        reason: String,
    },
    /// The server's answer to a client's WebSocket handshake was not a
    /// valid upgrade: another status than 101, a wrong
    /// `Sec-WebSocket-Accept`, a subprotocol or extension we did not
    /// offer, or the connection closed before the answer.
    #[error("WebSocket handshake with {url} failed: {reason}")]
    Handshake {
        /// The URL connected to.
        url: String,
        /// The HTTP status of the answer, when one was read.
        status: Option<u16>,
        /// What was wrong.
        reason: String,
    },
    /// The pub/sub bus ([`Bus`](crate::Bus)) changed state: connected,
    /// lost (the bridge reconnects by itself; local delivery goes on), or
    /// something the bus reported. Passed to
    /// [`WebSocketHandler::error`](crate::WebSocketHandler::error) on the
    /// server's (first) thread, with no socket; not a failure of the
    /// server. [`Server::bus_status`](crate::Server::bus_status) has the
    /// state and the counters at any time.
    #[error("bus {state}: {reason}")]
    Bus {
        /// The state now.
        state: crate::BusState,
        /// What happened, with the bus's URL (never its password).
        reason: String,
    },
}
