//! The client's half of the opening handshake (RFC 6455 section 4, RFC
//! 7692 for permessage-deflate): the request we send, and the strict
//! check of the server's answer.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::client::options::ConnectOptions;
use crate::client::url::Target;
use crate::options::{Compressor, PerMessageDeflate};
use crate::sys;

/// What we sent and what a valid answer must match.
#[derive(Debug)]
pub(crate) struct Offer {
    /// The `Sec-WebSocket-Accept` a valid answer carries.
    accept: [u8; 28],
    protocols: Vec<String>,
    deflate: Option<PerMessageDeflate>,
}

/// A valid answer: what the server chose.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) protocol: Option<String>,
    pub(crate) extensions: Option<String>,
    pub(crate) deflate: Deflate,
}

/// permessage-deflate as negotiated (see `uws_client_deflate_t`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deflate {
    pub(crate) enabled: bool,
    /// Our compressor's window bits; 0 when we never compress.
    pub(crate) deflate_window: u8,
    pub(crate) deflate_mem_level: u8,
    pub(crate) deflate_reset: bool,
    /// The server's window bits, for a decompressor of our own ...
    pub(crate) inflate_window: u8,
    /// ... or the loop's shared one (the server resets every message).
    pub(crate) inflate_shared: bool,
}

impl Deflate {
    pub(crate) fn native(self) -> sys::uws_client_deflate_t {
        sys::uws_client_deflate_t {
            enabled: self.enabled.into(),
            deflate_window: self.deflate_window.into(),
            deflate_mem_level: self.deflate_mem_level.into(),
            deflate_reset: self.deflate_reset.into(),
            inflate_window: self.inflate_window.into(),
            inflate_shared: self.inflate_shared.into(),
        }
    }
}

/// Why an answer is not a valid upgrade: the HTTP status (when a status
/// line was read) and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: Option<u16>,
    pub(crate) reason: String,
}

fn refuse(status: Option<u16>, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// 16 unpredictable bytes (the key is a nonce): SipHash with the
/// process's random keys over a counter and the time.
fn nonce() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = [0u8; 16];
    for half in out.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `Sec-WebSocket-Accept` for a key.
fn accept_for(key: &str) -> [u8; 28] {
    debug_assert_eq!(key.len(), 24);
    let mut accept = [0u8; 28];
    // SAFETY: the key is 24 bytes (16 bytes in base64) and the output 28,
    // as the function requires.
    unsafe { sys::uws_websocket_accept(key.as_ptr().cast(), accept.as_mut_ptr().cast()) };
    accept
}

/// Window bits and zlib memLevel of a compressor setting (what a server's
/// dedicated compressor uses for it); `None` for none.
fn compressor(c: Compressor) -> Option<(u8, u8)> {
    use Compressor::*;
    Some(match c {
        Disable => return None,
        Kb3 => (9, 1),
        Kb4 => (9, 2),
        Kb8 => (10, 3),
        Kb16 => (11, 4),
        Kb32 => (12, 5),
        Kb64 => (13, 6),
        Kb128 => (14, 7),
        Shared | Dedicated | Kb256 => (15, 8),
    })
}

/// Window bits of a dedicated decompressor; `None` for a shared one.
fn decompressor(c: Compressor) -> Option<u8> {
    use Compressor::*;
    match c {
        Disable | Shared => None,
        Kb3 | Kb4 => Some(12),
        Kb8 => Some(13),
        Kb16 => Some(14),
        Dedicated | Kb32 | Kb64 | Kb128 | Kb256 => Some(15),
    }
}

/// The `Sec-WebSocket-Extensions` offer for these settings: we always let
/// the server limit our window (`client_max_window_bits`), promise not to
/// keep context when our compressor is shared, and ask the server for no
/// context takeover (a shared decompressor) or a smaller window.
fn deflate_offer(p: PerMessageDeflate) -> String {
    let mut offer = "permessage-deflate; client_max_window_bits".to_owned();
    if p.compress == Compressor::Shared {
        offer.push_str("; client_no_context_takeover");
    }
    match decompressor(p.decompress) {
        None => offer.push_str("; server_no_context_takeover"),
        Some(bits) if bits < 15 => offer.push_str(&format!("; server_max_window_bits={bits}")),
        Some(_) => {}
    }
    offer
}

impl Offer {
    /// The handshake request for `target` with `options`, and what its
    /// answer must match.
    pub(crate) fn new(target: &Target, options: &ConnectOptions) -> (Vec<u8>, Offer) {
        let key = base64(&nonce());
        let deflate = options
            .websocket
            .per_message_deflate
            .filter(|p| p.compress != Compressor::Disable || p.decompress != Compressor::Disable);
        let mut r = format!("GET {} HTTP/1.1\r\n", target.resource);
        if !options
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            r.push_str(&format!("Host: {}\r\n", target.authority));
        }
        r.push_str(&format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        ));
        if !options.protocols.is_empty() {
            r.push_str(&format!(
                "Sec-WebSocket-Protocol: {}\r\n",
                options.protocols.join(", ")
            ));
        }
        if let Some(p) = deflate {
            r.push_str(&format!(
                "Sec-WebSocket-Extensions: {}\r\n",
                deflate_offer(p)
            ));
        }
        for (k, v) in &options.headers {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        r.push_str("\r\n");
        let offer = Offer {
            accept: accept_for(&key),
            protocols: options.protocols.clone(),
            deflate,
        };
        (r.into_bytes(), offer)
    }

    /// Checks the server's response head (status line to empty line):
    /// 101, `Upgrade: websocket`, `Connection: upgrade`, the right
    /// `Sec-WebSocket-Accept`, and no protocol or extension we did not
    /// offer.
    pub(crate) fn check(&self, head: &[u8]) -> Result<Accepted, Refusal> {
        let head = std::str::from_utf8(head)
            .map_err(|_| refuse(None, "the response head is not valid text"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| {
                refuse(
                    None,
                    format!("not an HTTP response: {:?}", truncated(status_line)),
                )
            })?;
        if status != 101 {
            return Err(refuse(
                Some(status),
                format!(
                    "the server answered {:?} instead of 101 Switching Protocols",
                    truncated(status_line)
                ),
            ));
        }
        let status = Some(status);
        let mut upgrade = false;
        let mut connection = false;
        let mut accept = None;
        let mut protocol: Option<&str> = None;
        let mut extensions: Option<String> = None;
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| refuse(status, format!("malformed header {:?}", truncated(line))))?;
            let value = value.trim_matches([' ', '\t']);
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("upgrade") {
                upgrade |= value.eq_ignore_ascii_case("websocket");
            } else if is("connection") {
                connection |= value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
            } else if is("sec-websocket-accept") {
                if accept.replace(value).is_some() {
                    return Err(refuse(status, "two Sec-WebSocket-Accept headers"));
                }
            } else if is("sec-websocket-protocol") {
                if protocol.replace(value).is_some() {
                    return Err(refuse(status, "two Sec-WebSocket-Protocol headers"));
                }
            } else if is("sec-websocket-extensions") && !value.is_empty() {
                let all = extensions.get_or_insert_with(String::new);
                if !all.is_empty() {
                    all.push_str(", ");
                }
                all.push_str(value);
            }
        }
        if !upgrade {
            return Err(refuse(status, "no \"Upgrade: websocket\" header"));
        }
        if !connection {
            return Err(refuse(status, "no \"Connection: Upgrade\" header"));
        }
        match accept {
            None => return Err(refuse(status, "no Sec-WebSocket-Accept header")),
            Some(a) if a.as_bytes() != self.accept => {
                return Err(refuse(
                    status,
                    format!(
                        "wrong Sec-WebSocket-Accept {:?} (expected {:?})",
                        truncated(a),
                        String::from_utf8_lossy(&self.accept)
                    ),
                ))
            }
            Some(_) => {}
        }
        let protocol = match protocol {
            None => None,
            Some(p) if self.protocols.iter().any(|o| o == p) => Some(p.to_owned()),
            Some(p) => {
                return Err(refuse(
                    status,
                    format!("the server chose the subprotocol {p:?}, which we did not offer"),
                ))
            }
        };
        let deflate = match (&extensions, self.deflate) {
            (None, _) => Deflate::default(),
            (Some(e), None) => {
                return Err(refuse(
                    status,
                    format!(
                        "the server chose the extension {:?}, which we did not offer",
                        truncated(e)
                    ),
                ))
            }
            (Some(e), Some(p)) => negotiate(e, p).map_err(|reason| refuse(status, reason))?,
        };
        Ok(Accepted {
            protocol,
            extensions,
            deflate,
        })
    }
}

fn truncated(s: &str) -> &str {
    let mut end = s.len().min(100);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The server's permessage-deflate answer `e` to our offer with settings
/// `p`.
fn negotiate(e: &str, p: PerMessageDeflate) -> Result<Deflate, String> {
    if e.contains(',') {
        return Err(format!(
            "the server chose several extensions ({e:?}); we offered one"
        ));
    }
    let mut parts = e.split(';').map(|s| s.trim());
    let name = parts.next().unwrap_or_default();
    if !name.eq_ignore_ascii_case("permessage-deflate") {
        return Err(format!(
            "the server chose the extension {name:?}, which we did not offer"
        ));
    }
    let (mut server_no_takeover, mut client_no_takeover) = (false, false);
    let (mut server_bits, mut client_bits) = (None, None);
    for param in parts {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        let bits = |v: Option<&str>| {
            v.and_then(|v| v.parse::<u8>().ok())
                .filter(|b| (8..=15).contains(b))
                .ok_or_else(|| format!("bad permessage-deflate parameter {param:?}"))
        };
        let duplicate = || format!("permessage-deflate parameter {key:?} given twice");
        match key.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => {
                if std::mem::replace(&mut server_no_takeover, true) {
                    return Err(duplicate());
                }
            }
            "client_no_context_takeover" if value.is_none() => {
                if std::mem::replace(&mut client_no_takeover, true) {
                    return Err(duplicate());
                }
            }
            "server_max_window_bits" => {
                if server_bits.replace(bits(value)?).is_some() {
                    return Err(duplicate());
                }
            }
            "client_max_window_bits" => {
                if client_bits.replace(bits(value)?).is_some() {
                    return Err(duplicate());
                }
            }
            _ => return Err(format!("unknown permessage-deflate parameter {param:?}")),
        }
    }
    let (mut deflate_window, deflate_mem_level) = compressor(p.compress).unwrap_or((0, 0));
    if let Some(limit) = client_bits {
        deflate_window = deflate_window.min(limit);
    }
    // zlib cannot make raw deflate streams with 8-bit windows: rather
    // than break the server's limit, we send uncompressed.
    if deflate_window < 9 {
        deflate_window = 0;
    }
    // A shared compressor keeps no context; a server may also forbid it.
    let deflate_reset = client_no_takeover || p.compress == Compressor::Shared;
    // Our shared decompressor resets every message: only when the server
    // promised to. Otherwise a window as large as the server may use.
    let inflate_shared = server_no_takeover && decompressor(p.decompress).is_none();
    Ok(Deflate {
        enabled: true,
        deflate_window,
        deflate_mem_level,
        deflate_reset,
        inflate_window: server_bits.unwrap_or(15).max(9),
        inflate_shared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(protocols: &[&str], deflate: Option<PerMessageDeflate>) -> (String, Offer) {
        let target = Target::parse("ws://example.com:8080/chat?x=1").unwrap();
        let mut options = ConnectOptions {
            protocols: protocols.iter().map(|p| p.to_string()).collect(),
            headers: vec![("Authorization".into(), "Bearer t".into())],
            ..Default::default()
        };
        options.websocket.per_message_deflate = deflate;
        let (request, offer) = Offer::new(&target, &options);
        (String::from_utf8(request).unwrap(), offer)
    }

    fn response(offer: &Offer, extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            String::from_utf8_lossy(&offer.accept)
        )
    }

    #[test]
    fn base64_and_the_accept_of_rfc_6455() {
        assert_eq!(base64(b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(
            &accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_ne!(nonce(), nonce());
    }

    #[test]
    fn the_request_has_everything_the_server_needs() {
        let (request, _) = offer(&["soap", "wamp"], Some(PerMessageDeflate::default()));
        assert!(request.starts_with("GET /chat?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n"));
        for line in [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: soap, wamp",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; \
             client_no_context_takeover; server_no_context_takeover",
            "Authorization: Bearer t",
        ] {
            assert!(
                request.contains(&format!("\r\n{line}\r\n")),
                "{line} in {request}"
            );
        }
        assert!(request.ends_with("\r\n\r\n"));
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        assert_eq!(key.len(), 24);
        let (plain, _) = offer(&[], None);
        assert!(!plain.contains("Sec-WebSocket-Protocol") && !plain.contains("Extensions"));
    }

    #[test]
    fn a_valid_answer_is_accepted() {
        let (_, o) = offer(&["soap", "wamp"], None);
        let a = o
            .check(response(&o, "Sec-WebSocket-Protocol: wamp\r\n").as_bytes())
            .unwrap();
        assert_eq!(a.protocol.as_deref(), Some("wamp"));
        assert!(!a.deflate.enabled);
        // Case and spacing do not matter; several Connection tokens are fine.
        let head = format!(
            "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, upgrade\r\n\
             sec-websocket-accept:{}\r\n\r\n",
            String::from_utf8_lossy(&o.accept)
        );
        assert_eq!(o.check(head.as_bytes()).unwrap().protocol, None);
    }

    #[test]
    fn invalid_answers_are_refused() {
        let (_, o) = offer(&["soap"], None);
        let good = response(&o, "");
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string(),
                Some(200),
                "instead of 101",
            ),
            ("SSH-2.0-OpenSSH\r\n\r\n".into(), None, "not an HTTP"),
            (good.replace("websocket", "h2c"), Some(101), "Upgrade"),
            (
                good.replace("Connection: Upgrade", "Connection: close"),
                Some(101),
                "Connection",
            ),
            (
                good.replace(
                    &String::from_utf8_lossy(&o.accept).to_string(),
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                ),
                Some(101),
                "wrong Sec-WebSocket-Accept",
            ),
            (
                response(&o, "Sec-WebSocket-Protocol: wamp\r\n"),
                Some(101),
                "did not offer",
            ),
            (
                response(&o, "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
                Some(101),
                "did not offer",
            ),
            (
                good.replace("Upgrade: websocket\r\n", "garbage\r\n"),
                Some(101),
                "malformed",
            ),
        ];
        for (head, status, why) in cases {
            let r = o.check(head.as_bytes()).unwrap_err();
            assert_eq!(r.status, status, "{head}");
            assert!(r.reason.contains(why), "{why}: {}", r.reason);
        }
        let missing = good
            .lines()
            .filter(|l| !l.starts_with("Sec-WebSocket-Accept"))
            .collect::<Vec<_>>()
            .join("\r\n");
        assert!(o.check(missing.as_bytes()).is_err());
    }

    #[test]
    fn deflate_follows_the_servers_answer() {
        let shared = PerMessageDeflate::default();
        let dedicated = PerMessageDeflate {
            compress: Compressor::Dedicated,
            decompress: Compressor::Dedicated,
        };
        // The server promised no context takeover: our shared decompressor.
        let d = negotiate("permessage-deflate; server_no_context_takeover", shared).unwrap();
        assert!(d.enabled && d.inflate_shared && d.deflate_reset);
        assert_eq!(d.deflate_window, 15);
        // It did not (uWebSockets ignores the request): a window of our own.
        let d = negotiate("permessage-deflate", shared).unwrap();
        assert!(!d.inflate_shared);
        assert_eq!(d.inflate_window, 15);
        // It limits our window and forbids our context.
        let d = negotiate(
            "permessage-deflate; client_max_window_bits=9; client_no_context_takeover",
            dedicated,
        )
        .unwrap();
        assert_eq!((d.deflate_window, d.deflate_reset), (9, true));
        // A limit zlib cannot meet: we send uncompressed.
        let d = negotiate("permessage-deflate; client_max_window_bits=8", dedicated).unwrap();
        assert_eq!(d.deflate_window, 0);
        let d = negotiate("permessage-deflate; server_max_window_bits=10", dedicated).unwrap();
        assert_eq!(d.inflate_window, 10);
        for bad in [
            "x-webkit-deflate-frame",
            "permessage-deflate; foo",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate, permessage-deflate",
        ] {
            assert!(negotiate(bad, shared).is_err(), "{bad}");
        }
        assert_eq!(
            deflate_offer(PerMessageDeflate {
                compress: Compressor::Kb8,
                decompress: Compressor::Kb8
            }),
            "permessage-deflate; client_max_window_bits; server_max_window_bits=13"
        );
    }
}

#[cfg(test)]
#[path = "handshake_randomized.rs"]
mod randomized;
