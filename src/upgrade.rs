//! Bun's `server.upgrade(req, { data, headers })`: the options, and the
//! rules for the headers of a 101 response.

use crate::http::{framing_header, valid_header};
use crate::options::SubprotocolPolicy;

/// Bun's `server.upgrade(req, { data, headers })` options.
///
/// ```
/// use uws::UpgradeOptions;
/// // server.upgrade(req, { data: { name }, headers: { "Set-Cookie": "seen=1" } })
/// let options = UpgradeOptions::new("ann".to_string()).with_header("Set-Cookie", "seen=1");
/// assert_eq!(options.data, "ann");
/// ```
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions<T> {
    /// The socket's contextual data (`ws.data`), dropped exactly once when
    /// the socket closes (or when the upgrade does not happen).
    pub data: T,
    /// Extra headers for the 101 response (for example Set-Cookie). A
    /// `Sec-WebSocket-Protocol` header here is taken as
    /// [`protocol`](Self::protocol), as in Bun (one at most). Headers the
    /// handshake or HTTP framing owns (Upgrade, Connection,
    /// Sec-WebSocket-Accept, Sec-WebSocket-Extensions, Content-Length,
    /// Transfer-Encoding) are refused.
    pub headers: Vec<(String, String)>,
    /// The subprotocol to accept: one of
    /// [`Request::protocols`](crate::Request::protocols). `None` answers
    /// as [`WebSocketOptions::subprotocols`](crate::WebSocketOptions::subprotocols)
    /// says: by default the client's first offer, as Bun does.
    pub protocol: Option<String>,
}

impl<T> UpgradeOptions<T> {
    /// Options with this data, no extra headers and no subprotocol.
    pub fn new(data: T) -> Self {
        UpgradeOptions {
            data,
            headers: Vec::new(),
            protocol: None,
        }
    }

    /// Adds a header to the 101 response.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Accepts this subprotocol.
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }
}

impl<T> UpgradeOptions<T> {
    /// Settles the subprotocol and checks the headers: `false` when the
    /// upgrade must be refused (a protocol the client did not offer, two
    /// of them, or a header that is invalid or owned by the handshake).
    pub(crate) fn prepare<'r>(
        &mut self,
        mut offered: impl Iterator<Item = &'r str>,
        policy: SubprotocolPolicy,
    ) -> bool {
        const RESERVED: [&str; 4] = [
            "upgrade",
            "connection",
            "sec-websocket-accept",
            "sec-websocket-extensions",
        ];
        let is_protocol = |k: &str| k.eq_ignore_ascii_case("sec-websocket-protocol");
        if let Some(i) = self.headers.iter().position(|(k, _)| is_protocol(k)) {
            let (_, chosen) = self.headers.remove(i);
            if self.protocol.as_ref().is_some_and(|p| *p != chosen) {
                return false;
            }
            self.protocol = Some(chosen);
        }
        let headers_ok = self.headers.iter().all(|(k, v)| {
            valid_header(k, v)
                && !framing_header(k)
                && !is_protocol(k)
                && !RESERVED.iter().any(|r| k.eq_ignore_ascii_case(r))
        });
        if !headers_ok {
            return false;
        }
        match &self.protocol {
            Some(chosen) => offered.any(|p| p == chosen),
            None => {
                if policy == SubprotocolPolicy::FirstOffered {
                    self.protocol = offered.next().map(str::to_owned);
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(
        options: &mut UpgradeOptions<()>,
        offered: &[&str],
        policy: SubprotocolPolicy,
    ) -> bool {
        options.prepare(offered.iter().copied(), policy)
    }

    #[test]
    fn the_first_offer_is_answered_unless_the_policy_is_explicit() {
        let mut o = UpgradeOptions::new(());
        assert!(prepared(
            &mut o,
            &["soap", "wamp"],
            SubprotocolPolicy::FirstOffered
        ));
        assert_eq!(o.protocol.as_deref(), Some("soap"));
        let mut o = UpgradeOptions::new(());
        assert!(prepared(
            &mut o,
            &["soap", "wamp"],
            SubprotocolPolicy::Explicit
        ));
        assert_eq!(o.protocol, None);
        let mut o = UpgradeOptions::new(()).with_protocol("wamp");
        assert!(prepared(
            &mut o,
            &["soap", "wamp"],
            SubprotocolPolicy::FirstOffered
        ));
        assert_eq!(o.protocol.as_deref(), Some("wamp"));
        let mut o = UpgradeOptions::new(()).with_protocol("mqtt");
        assert!(!prepared(
            &mut o,
            &["soap"],
            SubprotocolPolicy::FirstOffered
        ));
    }

    #[test]
    fn a_protocol_header_counts_once() {
        let mut o = UpgradeOptions::new(()).with_header("Sec-WebSocket-Protocol", "soap");
        assert!(prepared(&mut o, &["soap"], SubprotocolPolicy::Explicit));
        assert_eq!(o.protocol.as_deref(), Some("soap"));
        assert!(o.headers.is_empty());
        let mut o = UpgradeOptions::new(())
            .with_header("Sec-WebSocket-Protocol", "soap")
            .with_header("Sec-WebSocket-Protocol", "not-offered");
        assert!(!prepared(&mut o, &["soap"], SubprotocolPolicy::Explicit));
        let mut o = UpgradeOptions::new(())
            .with_protocol("soap")
            .with_header("sec-websocket-protocol", "wamp");
        assert!(!prepared(
            &mut o,
            &["soap", "wamp"],
            SubprotocolPolicy::Explicit
        ));
    }

    #[test]
    fn framing_and_handshake_headers_are_refused() {
        for name in [
            "Content-Length",
            "transfer-encoding",
            "Upgrade",
            "Connection",
            "Sec-WebSocket-Accept",
            "Sec-WebSocket-Extensions",
        ] {
            let mut o = UpgradeOptions::new(()).with_header(name, "1");
            assert!(
                !prepared(&mut o, &[], SubprotocolPolicy::Explicit),
                "{name}"
            );
        }
        let mut o = UpgradeOptions::new(()).with_header("X-Ok", "a\r\nInjected: yes");
        assert!(!prepared(&mut o, &[], SubprotocolPolicy::Explicit));
        let mut o = UpgradeOptions::new(()).with_header("Set-Cookie", "session=1");
        assert!(prepared(&mut o, &[], SubprotocolPolicy::Explicit));
    }
}
