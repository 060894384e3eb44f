//! The request `fetch` sees: Bun's `Request`.

use std::any::Any;
use std::borrow::Cow;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::net::IpAddr;

use crate::ffi::{bytes, ip_from_raw};
use crate::sys;

/// An HTTP request, as `fetch` sees it (Bun's `Request`). Borrowed from
/// uWebSockets' receive buffer: valid during `fetch` only.
pub struct Request<'a> {
    pub(crate) raw: *mut sys::uws_req_t,
    pub(crate) res: *mut sys::uws_res_t,
    pub(crate) ssl: i32,
    /// Set when uWebSockets routed the request as a WebSocket handshake.
    pub(crate) ws_context: *mut c_void,
    /// The upgrade `Server::upgrade` accepted: an `UpgradeOptions<T>`.
    pub(crate) upgrade: Option<Box<dyn Any>>,
    /// `Server::defer_request` took it: answered later.
    pub(crate) deferred: bool,
    /// The server whose `fetch` got it: only that server may take it out
    /// (its connection, context, TLS kind and data type are that server's).
    pub(crate) server: *const crate::server::Core,
    /// The parameter names of the route that took it (crate::routes),
    /// alive while its handler runs.
    pub(crate) params: Option<std::ptr::NonNull<[Box<str>]>>,
    /// The idle timeout `Server::timeout` set (seconds).
    pub(crate) timeout: Option<u32>,
    _borrow: PhantomData<&'a mut ()>,
}

impl<'a> Request<'a> {
    /// The request of a running request handler.
    pub(crate) fn new(
        raw: *mut sys::uws_req_t,
        res: *mut sys::uws_res_t,
        ssl: i32,
        ws_context: *mut c_void,
        server: *const crate::server::Core,
    ) -> Self {
        Request {
            raw,
            res,
            ssl,
            ws_context,
            upgrade: None,
            deferred: false,
            server,
            params: None,
            timeout: None,
            _borrow: PhantomData,
        }
    }

    fn text(
        &self,
        get: unsafe extern "C" fn(*mut sys::uws_req_t, *mut usize) -> *const std::ffi::c_char,
    ) -> &'a str {
        let mut len = 0;
        // SAFETY: `raw` is the live request of this `fetch`; uWebSockets
        // returns a view into its buffer, valid for 'a.
        let b = unsafe { bytes(get(self.raw, &mut len), len) };
        std::str::from_utf8(b).unwrap_or("")
    }

    /// The method as sent (`"GET"`, `"POST"`, ...).
    pub fn method(&self) -> &'a str {
        self.text(sys::uws_req_method)
    }

    /// The path, without the query string (`/chat`).
    pub fn path(&self) -> &'a str {
        self.text(sys::uws_req_url)
    }

    /// The request target as sent: path and query (`/chat?name=ann`).
    pub fn path_and_query(&self) -> &'a str {
        self.text(sys::uws_req_full_url)
    }

    /// The full URL, like Bun's `req.url`: `http://HOST/path?query`, from
    /// the Host header (`ws`/`wss` are not used, as in Bun).
    pub fn url(&self) -> String {
        let scheme = if self.ssl != 0 { "https" } else { "http" };
        format!(
            "{scheme}://{}{}",
            self.header("host").unwrap_or(""),
            self.path_and_query()
        )
    }

    /// Bun's `req.params.name`: the value of the route's `:name` segment,
    /// percent-decoded (`/users/J%C3%BCrgen` gives `Jürgen` for
    /// `/users/:id`; bytes that are not UTF-8 become U+FFFD). `None` in
    /// `fetch` and for a name the route's pattern does not have.
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        let index = self.param_names().iter().position(|n| &**n == name)?;
        self.raw_param(index).map(crate::routes::decode_segment)
    }

    /// Bun's `req.params`: every `:name` of the route with its decoded
    /// value, in pattern order (empty in `fetch`).
    pub fn params(&self) -> Vec<(&str, Cow<'a, str>)> {
        self.param_names()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((&**n, crate::routes::decode_segment(self.raw_param(i)?))))
            .collect()
    }

    fn param_names(&self) -> &[Box<str>] {
        match self.params {
            // SAFETY: set by the route table that routed this request,
            // which lives while its handler (the holder of `self`) runs.
            Some(names) => unsafe { names.as_ref() },
            None => &[],
        }
    }

    fn raw_param(&self, index: usize) -> Option<&'a [u8]> {
        let mut len = 0;
        // SAFETY: `raw` is the live request; uWebSockets returns a view into
        // its buffer (null past the last parameter).
        let p = unsafe { sys::uws_req_parameter(self.raw, u32::try_from(index).ok()?, &mut len) };
        // SAFETY: non-null results point to `len` bytes of the request.
        (!p.is_null()).then(|| unsafe { bytes(p, len) })
    }

    /// The raw query string without `?` (`name=ann&room=1`).
    pub fn query(&self) -> &'a str {
        self.text(sys::uws_req_query)
    }

    /// One query parameter, percent-decoded (`+` is a space). The first
    /// one wins when the name repeats.
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query_params().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Every query parameter, percent-decoded, in order.
    pub fn query_params(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + 'a {
        query_pairs(self.query())
    }

    /// A header's raw value; the name is matched case-insensitively.
    pub fn header_bytes(&self, name: &str) -> Option<&'a [u8]> {
        let mut stack = [0u8; 64];
        let heap;
        let lower: &[u8] = if name.len() <= stack.len() {
            let buf = &mut stack[..name.len()];
            buf.copy_from_slice(name.as_bytes());
            buf.make_ascii_lowercase();
            buf
        } else {
            heap = name.to_ascii_lowercase();
            heap.as_bytes()
        };
        let mut len = 0;
        // SAFETY: live request; uWebSockets stores header names lower-cased
        // and returns a view valid for 'a (null when absent).
        let p =
            unsafe { sys::uws_req_header(self.raw, lower.as_ptr().cast(), lower.len(), &mut len) };
        // SAFETY: non-null results point to `len` bytes of the request.
        (!p.is_null()).then(|| unsafe { bytes(p, len) })
    }

    /// A header's value, matched case-insensitively; `None` when absent or
    /// not UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.header_bytes(name)
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Every header as (lower-case name, value), in the order received.
    pub fn headers(&self) -> Vec<(&'a str, &'a str)> {
        let mut all: Vec<(&'a str, &'a str)> = Vec::new();
        unsafe extern "C" fn each(
            arg: *mut c_void,
            k: *const std::ffi::c_char,
            kl: usize,
            v: *const std::ffi::c_char,
            vl: usize,
        ) {
            // SAFETY: `arg` is the Vec below; key and value point into the
            // request buffer, which outlives 'a.
            let (all, k, v) = unsafe {
                (
                    &mut *(arg as *mut Vec<(&str, &str)>),
                    bytes(k, kl),
                    bytes(v, vl),
                )
            };
            if let (Ok(k), Ok(v)) = (std::str::from_utf8(k), std::str::from_utf8(v)) {
                all.push((k, v));
            }
        }
        // SAFETY: live request; `each` only pushes views of it into `all`.
        unsafe {
            sys::uws_req_for_each_header(
                self.raw,
                Some(each),
                (&mut all as *mut Vec<(&str, &str)>).cast(),
            )
        };
        all
    }

    /// One cookie's value from the Cookie header(s).
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.cookies().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Every cookie as (name, value).
    pub fn cookies(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        cookie_pairs(self.header("cookie").unwrap_or(""))
    }

    /// The subprotocols the client offered (Sec-WebSocket-Protocol), in its
    /// order of preference.
    pub fn protocols(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.header("sec-websocket-protocol")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
    }

    /// The client's IP address (None on a unix socket).
    pub fn remote_address(&self) -> Option<IpAddr> {
        let mut buf = [0u8; 16];
        let mut len = buf.len() as i32;
        // SAFETY: `res` is the live response of this request; uSockets
        // writes at most `len` bytes.
        unsafe {
            sys::uws_res_remote_address(self.ssl, self.res, buf.as_mut_ptr().cast(), &mut len)
        };
        ip_from_raw(&buf, len)
    }

    /// Whether this is a valid WebSocket handshake (RFC 6455 4.2.1): GET,
    /// `Upgrade: websocket`, `Connection: upgrade`, version 13 and a key
    /// of 16 bytes in base64.
    pub fn is_websocket_upgrade(&self) -> bool {
        let has_token = |name: &str, token: &str| {
            self.header(name)
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        !self.ws_context.is_null()
            && self.method() == "GET"
            && has_token("upgrade", "websocket")
            && has_token("connection", "upgrade")
            && self.header("sec-websocket-version") == Some("13")
            && self
                .header_bytes("sec-websocket-key")
                .is_some_and(valid_key)
    }
}

/// A `Sec-WebSocket-Key` as RFC 6455 4.1 makes it: 16 random bytes in
/// base64, so 22 base64 characters and `==`. (uWebSockets only checks the
/// length.)
fn valid_key(key: &[u8]) -> bool {
    let base64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    key.len() == 24 && key[..22].iter().all(base64) && key[22..] == *b"=="
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path_and_query", &self.path_and_query())
            .finish()
    }
}

/// The parameters of a query string, percent-decoded, in order.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

/// The (name, value) pairs of a Cookie header; a quoted value loses its
/// quotes.
fn cookie_pairs(header: &str) -> impl Iterator<Item = (&str, &str)> + '_ {
    header.split(';').filter_map(|c| {
        let (k, v) = c.split_once('=')?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        Some((k.trim(), v))
    })
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("a+b%20c"), "a b c");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%"), "end%");
        assert_eq!(percent_decode("end%4"), "end%4");
    }

    #[test]
    fn websocket_keys() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(b"!!!!!!!!!!!!!!!!!!!!!!!!"));
        assert!(!valid_key(b"AAAAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
    }
}

#[cfg(test)]
#[path = "request_randomized.rs"]
mod randomized;
