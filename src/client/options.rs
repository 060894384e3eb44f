//! Client options: Bun's `new WebSocket(url, protocols | { headers })`,
//! plus the same WebSocket settings a server has.

use std::time::Duration;

use crate::error::Error;
use crate::http::{framing_header, valid_header};
use crate::options::WebSocketOptions;
use crate::sys;
use crate::tls::Pem;

/// How to connect: the second argument of Bun's `new WebSocket(url, ...)`
/// and the settings of the connection.
///
/// ```
/// use std::time::Duration;
/// use uws::{ConnectOptions, WebSocketOptions};
///
/// // new WebSocket(url, { protocols: ["soap", "wamp"], headers: { Authorization: "Bearer t" } })
/// let options = ConnectOptions {
///     protocols: vec!["soap".into(), "wamp".into()],
///     headers: vec![("Authorization".into(), "Bearer t".into())],
///     connect_timeout: Some(Duration::from_secs(5)),
///     websocket: WebSocketOptions { max_payload_length: 1 << 20, ..Default::default() },
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Subprotocols to offer, in order of preference (Bun's `protocols`,
    /// `new WebSocket(url, ["soap", "wamp"])`). The server's choice is in
    /// [`ClientWebSocket::protocol`](crate::ClientWebSocket::protocol); a
    /// server that picks one we did not offer fails the connection. Each
    /// must be an HTTP token, and none twice.
    pub protocols: Vec<String>,
    /// Extra request headers (Bun's `headers`, a Bun extension to the
    /// browser API), e.g. `Authorization` or `Cookie`. A `Host` header
    /// replaces the one made from the URL. Headers the handshake owns
    /// (Upgrade, Connection, Sec-WebSocket-*) and framing headers are
    /// refused: [`connect`](crate::connect) returns an error.
    pub headers: Vec<(String, String)>,
    /// The connection's WebSocket settings, as for a server:
    /// `max_payload_length`, `idle_timeout` and `send_pings` (a ping when
    /// the server has been silent for a while, closed when it stays
    /// silent), `backpressure_limit` and `close_on_backpressure_limit`,
    /// `reset_idle_timeout_on_send`, `max_lifetime`, and
    /// `per_message_deflate`: when set, permessage-deflate is offered to
    /// the server with these compressor settings (`compress` for what we
    /// send, `decompress` for what the server sends). `publish_to_self`
    /// and `subprotocols` do not apply to clients.
    pub websocket: WebSocketOptions,
    /// Give up when the connection has not opened (TCP, TLS and the
    /// WebSocket handshake) within this time: [`Error::Connect`] with
    /// `TimedOut`. `None` waits as long as the operating system does.
    /// Default 30 seconds.
    pub connect_timeout: Option<Duration>,
    /// `wss://` settings (certificate checks).
    pub tls: ClientTls,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            protocols: Vec::new(),
            headers: Vec::new(),
            websocket: WebSocketOptions::default(),
            connect_timeout: Some(Duration::from_secs(30)),
            tls: ClientTls::default(),
        }
    }
}

/// How a `wss://` connection checks the server (needs the `tls` cargo
/// feature). By default the server's certificate must chain to one of
/// the system's trusted roots and be for the URL's host (name or IP).
///
/// ```
/// use uws::{ClientTls, ConnectOptions, Pem};
/// // Trust a private CA as well (Node's and Bun's `tls: { ca }`).
/// let options = ConnectOptions {
///     tls: ClientTls { ca: Some(Pem::File("ca.pem".into())), ..Default::default() },
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificates to trust besides the system's roots (one or more
    /// PEM certificates). A file that cannot be read or parsed is an error
    /// from [`connect`](crate::connect).
    pub ca: Option<Pem>,
    /// Accept any certificate, for any host name: no protection against a
    /// man in the middle. For tests against self-signed servers only
    /// (Bun's `tls: { rejectUnauthorized: false }`).
    pub danger_accept_invalid_certs: bool,
}

/// Headers the handshake writes itself.
const RESERVED: [&str; 7] = [
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "sec-websocket-protocol",
];

fn invalid(name: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidOption {
        name,
        reason: reason.into(),
    }
}

impl ConnectOptions {
    /// Checks the options; returns the native settings.
    pub(crate) fn check(&self) -> Result<sys::uws_client_options_t, Error> {
        for (i, p) in self.protocols.iter().enumerate() {
            if !valid_header(p, "") {
                return Err(invalid(
                    "protocols",
                    format!("{p:?} is not a valid subprotocol name (an HTTP token)"),
                ));
            }
            if self.protocols[..i].contains(p) {
                return Err(invalid("protocols", format!("{p:?} is offered twice")));
            }
        }
        for (name, value) in &self.headers {
            if !valid_header(name, value) {
                return Err(invalid(
                    "headers",
                    format!("{name:?} is not a valid header (name or value)"),
                ));
            }
            if framing_header(name) || RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
                let hint = if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                    " (offer subprotocols with `protocols`)"
                } else {
                    ""
                };
                return Err(invalid(
                    "headers",
                    format!("{name} is written by the handshake itself{hint}"),
                ));
            }
        }
        if self
            .connect_timeout
            .is_some_and(|t| t.is_zero() || t > Duration::from_secs(u32::MAX as u64 / 1000))
        {
            return Err(invalid(
                "connect_timeout",
                "must be more than 0 and under 49 days",
            ));
        }
        // The same checks and values as a server's.
        let b = self.websocket.to_behavior()?;
        Ok(sys::uws_client_options_t {
            max_payload_length: b.max_payload_length,
            idle_timeout: b.idle_timeout,
            max_backpressure: b.max_backpressure,
            close_on_backpressure_limit: b.close_on_backpressure_limit,
            reset_idle_timeout_on_send: b.reset_idle_timeout_on_send,
            send_pings_automatically: b.send_pings_automatically,
            max_lifetime: b.max_lifetime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut ConnectOptions)) -> Result<sys::uws_client_options_t, Error> {
        let mut o = ConnectOptions::default();
        f(&mut o);
        o.check()
    }

    #[test]
    fn defaults_are_a_servers() {
        let o = with(|_| {}).unwrap();
        assert_eq!(o.max_payload_length, 16 << 20);
        assert_eq!(o.idle_timeout, 120);
        assert_eq!(o.send_pings_automatically, 1);
        assert_eq!(
            ConnectOptions::default().connect_timeout,
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn bad_protocols_and_headers_are_refused() {
        assert!(with(|o| o.protocols = vec!["soap".into(), "wamp".into()]).is_ok());
        assert!(with(|o| o.protocols = vec!["a b".into()]).is_err());
        assert!(with(|o| o.protocols = vec!["".into()]).is_err());
        assert!(with(|o| o.protocols = vec!["x".into(), "x".into()]).is_err());
        assert!(with(|o| o.headers = vec![("Cookie".into(), "a=1".into())]).is_ok());
        assert!(with(|o| o.headers = vec![("Host".into(), "example.com".into())]).is_ok());
        for name in [
            "Upgrade",
            "connection",
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Extensions",
            "Content-Length",
            "bad name",
        ] {
            assert!(
                with(|o| o.headers = vec![(name.into(), "x".into())]).is_err(),
                "{name}"
            );
        }
        assert!(with(|o| o.headers = vec![("X".into(), "a\r\nInjected: 1".into())]).is_err());
        assert!(with(|o| o.connect_timeout = Some(Duration::ZERO)).is_err());
        assert!(with(|o| o.websocket.idle_timeout = 5000).is_err());
    }
}
