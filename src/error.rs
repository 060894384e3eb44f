//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong when starting or running a server.
///
/// Bad option values are reported here instead of reaching uWebSockets,
/// which would abort the process on some of them.
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
    /// Binding the listening socket failed (address in use, permission, bad
    /// host name).
    #[error("could not listen on {address}")]
    Listen {
        /// The address as given (`host:port` or a unix socket path).
        address: String,
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
    /// The server has stopped (or its thread has gone): nothing can reach it.
    #[error("the server is not running")]
    NotRunning,
}
