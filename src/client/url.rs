//! `ws://` and `wss://` URLs: what a client connects to.

use std::net::IpAddr;

use crate::error::Error;

/// A parsed WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `wss://`.
    pub(crate) tls: bool,
    /// The host as written, without IPv6 brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The `Host` header value (with brackets and a non-default port).
    pub(crate) authority: String,
    /// Path and query, at least `/`.
    pub(crate) resource: String,
}

fn invalid(url: &str, reason: &str) -> Error {
    Error::InvalidOption {
        name: "url",
        reason: format!("{url:?}: {reason}"),
    }
}

impl Target {
    /// Parses `ws://host[:port][/path][?query]` (or `wss://`, or `http://`
    /// and `https://`, which WebSocket clients accept as the same).
    pub(crate) fn parse(url: &str) -> Result<Target, Error> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid(url, "not an absolute URL (ws://host/path)"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            _ => return Err(invalid(url, "the scheme must be ws:// or wss://")),
        };
        if url.contains('#') {
            return Err(invalid(url, "a WebSocket URL has no fragment"));
        }
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(invalid(
                url,
                "contains spaces or control characters (percent-encode them)",
            ));
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(end);
        let resource = match resource.strip_prefix('?') {
            Some(query) => format!("/?{query}"),
            None if resource.is_empty() => "/".to_owned(),
            None => resource.to_owned(),
        };
        if authority.contains('@') {
            return Err(invalid(url, "user information in the URL is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid(url, "unclosed [ in the host"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid(url, "not an IPv6 address between [ ]"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| invalid(url, "unexpected text after the host"))?,
                ),
            };
            (host, port)
        } else {
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            // Else "ws://::1/" would be host ":" on port 1, and a host
            // with a bracket would print as a URL that does not parse.
            if host.contains([':', '[', ']']) {
                return Err(invalid(url, "an IPv6 address must be written in [ ]"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(invalid(url, "no host"));
        }
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| invalid(url, "the port must be a number from 1 to 65535"))?,
        };
        let default_port = if tls { 443 } else { 80 };
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let authority = if port == default_port {
            bracketed
        } else {
            format!("{bracketed}:{port}")
        };
        Ok(Target {
            tls,
            host: host.to_owned(),
            port,
            authority,
            resource,
        })
    }

    /// The host as an IP address, when it is one.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The URL, normalised (for errors and [`ClientWebSocket::url`](crate::ClientWebSocket::url)).
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.authority, self.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_into_host_port_and_resource() {
        let t = Target::parse("ws://example.com/chat?room=1").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.resource.as_str()),
            (false, "example.com", 80, "/chat?room=1")
        );
        assert_eq!(t.authority, "example.com");
        let t = Target::parse("wss://127.0.0.1:8443").unwrap();
        assert_eq!((t.tls, t.port, t.resource.as_str()), (true, 8443, "/"));
        assert_eq!(t.authority, "127.0.0.1:8443");
        assert_eq!(t.ip(), Some("127.0.0.1".parse().unwrap()));
        let t = Target::parse("ws://[::1]:9001?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.resource.as_str()),
            ("::1", 9001, "/?x=1")
        );
        assert_eq!(t.authority, "[::1]:9001");
        assert_eq!(t.url(), "ws://[::1]:9001/?x=1");
        assert_eq!(Target::parse("WSS://h:443/").unwrap().authority, "h");
        assert!(Target::parse("https://h/").unwrap().tls);
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in [
            "example.com",
            "ftp://example.com/",
            "ws://",
            "ws://:80/",
            "ws://h:0/",
            "ws://h:65536/",
            "ws://h:x/",
            "ws://h/#frag",
            "ws://h/a b",
            "ws://u:p@h/",
            "ws://[::1/",
            "ws://[nope]/",
            "ws://::1/",
            "ws://:[fe80::1]:80/",
            "ws://a]b/",
            "ws://h/\r\nInjected: 1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
#[path = "url_randomized.rs"]
mod randomized;
