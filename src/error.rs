//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong when starting or running a server, or
/// when connecting as a client.
///
/// Bad option values are reported here instead of reaching uWebSockets,
/// which would abort the process on some of them.
///
/// Its `Debug` form is the sentence of its `Display` (plus any cause the
/// sentence does not already say), so `fn main() -> Result<(), uws::Error>`
/// ends with `Error: could not listen on 0.0.0.0:3000: Address already in
/// use (os error 98)`, not with a struct dump. `{:#?}` gives the
/// structured form, `Listen { address: "0.0.0.0:3000", source: Os { .. } }`.
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
#[derive(thiserror::Error)]
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
    /// [`PendingRequest::upgrade`](crate::PendingRequest::upgrade) was
    /// called on a request that is not a WebSocket handshake (no
    /// `Upgrade: websocket`, `Connection: upgrade`, a valid
    /// `Sec-WebSocket-Key` and version 13); the client was answered 400.
    /// Check [`PendingRequest::is_websocket_upgrade`](crate::PendingRequest::is_websocket_upgrade)
    /// first to answer such requests another way.
    #[error("the request is not a WebSocket handshake")]
    NotWebSocketHandshake,
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

/// `{:?}`: the sentence and its causes, as `main` shows them; `{:#?}`: the
/// variant and its fields.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            // One line, as a derived Debug prints it with `{:?}`.
            return write!(f, "{:?}", Structured(self));
        }
        let sentence = self.to_string();
        f.write_str(&sentence)?;
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !sentence.contains(&text) {
                causes.push(text);
            }
            source = cause.source();
        }
        if !causes.is_empty() {
            f.write_str("\n\nCaused by:")?;
            for (n, cause) in causes.iter().enumerate() {
                write!(f, "\n    {n}: {cause}")?;
            }
        }
        Ok(())
    }
}

/// The derived-style Debug of an [`Error`].
struct Structured<'a>(&'a Error);

impl std::fmt::Debug for Structured<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Error::InvalidOption { name, reason } => f
                .debug_struct("InvalidOption")
                .field("name", name)
                .field("reason", reason)
                .finish(),
            Error::Create(why) => f.debug_tuple("Create").field(why).finish(),
            Error::Listen { address, source } => f
                .debug_struct("Listen")
                .field("address", address)
                .field("source", source)
                .finish(),
            Error::Tls { path, reason } => f
                .debug_struct("Tls")
                .field("path", path)
                .field("reason", reason)
                .finish(),
            Error::UnixPath(path) => f.debug_tuple("UnixPath").field(path).finish(),
            Error::HandlerPanic { handler, message } => f
                .debug_struct("HandlerPanic")
                .field("handler", handler)
                .field("message", message)
                .finish(),
            Error::Resources { what, source } => f
                .debug_struct("Resources")
                .field("what", what)
                .field("source", source)
                .finish(),
            Error::NotRunning => f.write_str("NotRunning"),
            Error::Aborted => f.write_str("Aborted"),
            Error::BodyTooLarge { limit } => f
                .debug_struct("BodyTooLarge")
                .field("limit", limit)
                .finish(),
            Error::QueueFull { limit } => {
                f.debug_struct("QueueFull").field("limit", limit).finish()
            }
            Error::NotWebSocketHandshake => f.write_str("NotWebSocketHandshake"),
            Error::Dns { host, source } => f
                .debug_struct("Dns")
                .field("host", host)
                .field("source", source)
                .finish(),
            Error::Connect { url, source } => f
                .debug_struct("Connect")
                .field("url", url)
                .field("source", source)
                .finish(),
            Error::TlsHandshake { url, reason } => f
                .debug_struct("TlsHandshake")
                .field("url", url)
                .field("reason", reason)
                .finish(),
            Error::Handshake {
                url,
                status,
                reason,
            } => f
                .debug_struct("Handshake")
                .field("url", url)
                .field("status", status)
                .field("reason", reason)
                .finish(),
            Error::Bus { state, reason } => f
                .debug_struct("Bus")
                .field("state", state)
                .field("reason", reason)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_use() -> Error {
        Error::Listen {
            address: "0.0.0.0:3000".into(),
            source: std::io::Error::from_raw_os_error(98),
        }
    }

    #[test]
    fn debug_is_the_sentence_and_alternate_debug_the_structure() {
        let e = in_use();
        let sentence = e.to_string();
        assert!(
            sentence.starts_with("could not listen on 0.0.0.0:3000: "),
            "{sentence}"
        );
        assert_eq!(format!("{e:?}"), sentence);
        let structured = format!("{e:#?}");
        assert!(
            structured.starts_with("Listen { address: \"0.0.0.0:3000\", source: Os { code: 98"),
            "{structured}"
        );
        assert_eq!(format!("{:#?}", Error::NotRunning), "NotRunning");
        assert_eq!(
            format!("{:#?}", Error::QueueFull { limit: 3 }),
            "QueueFull { limit: 3 }"
        );
    }

    #[test]
    fn causes_the_sentence_does_not_say_are_listed() {
        #[derive(Debug)]
        struct Root;
        impl std::fmt::Display for Root {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the root cause")
            }
        }
        impl std::error::Error for Root {}
        let e = Error::Connect {
            url: "ws://x/".into(),
            source: std::io::Error::other(Root),
        };
        // io::Error::other displays its inner error, so the sentence says
        // it already, and Root has no cause of its own.
        assert_eq!(format!("{e:?}"), e.to_string());
        // A cause that the sentence leaves out is listed.
        #[derive(Debug)]
        struct Outer(Root);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("refused")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Error::Connect {
            url: "ws://x/".into(),
            source: std::io::Error::other(Outer(Root)),
        };
        assert_eq!(
            format!("{e:?}"),
            "could not connect to ws://x/: refused\n\nCaused by:\n    0: the root cause"
        );
    }
}
