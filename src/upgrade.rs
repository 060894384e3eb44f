//! The HTTP side: the request `fetch` sees, the response it returns, and
//! the options of a WebSocket upgrade.

use std::any::Any;
use std::borrow::Cow;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::net::IpAddr;

use crate::sys;
use crate::websocket::{bytes, ip_from_raw};

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
    pub(crate) _borrow: PhantomData<&'a mut ()>,
}

impl<'a> Request<'a> {
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
        self.query()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
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
        self.header("cookie")
            .unwrap_or("")
            .split(';')
            .filter_map(|c| {
                let (k, v) = c.split_once('=')?;
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                Some((k.trim(), v))
            })
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

/// What `fetch` answers to a request it does not upgrade (Bun's
/// `Response`).
///
/// ```
/// use uws::Response;
/// // new Response("not here", { status: 404, headers: { "Content-Type": "text/plain" } })
/// let r = Response::new("not here").with_status(404).with_header("Content-Type", "text/plain");
/// assert_eq!(r.status(), 404);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A 200 response with this body.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Response {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Sets the status code (100-999; others are answered as 500).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header. Content-Length is computed and must not be given. A
    /// name or value that could break the response (CR, LF, NUL; a name
    /// that is not an HTTP token) makes the whole response a 500.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    fn is_valid(&self) -> bool {
        (100..=999).contains(&self.status)
            && self
                .headers
                .iter()
                .all(|(k, v)| valid_header(k, v) && !k.eq_ignore_ascii_case("content-length"))
    }

    /// Writes the response and ends it.
    pub(crate) fn write(&self, ssl: i32, res: *mut sys::uws_res_t) {
        if !self.is_valid() {
            return Response::new("invalid response")
                .with_status(500)
                .write(ssl, res);
        }
        let mut status = [0u8; 64];
        let line = status_line(self.status, &mut status);
        // SAFETY: `res` is the live response of the current request; all
        // buffers are borrowed for each call.
        unsafe {
            sys::uws_res_write_status(ssl, res, line.as_ptr().cast(), line.len());
            for (k, v) in &self.headers {
                sys::uws_res_write_header(
                    ssl,
                    res,
                    k.as_ptr().cast(),
                    k.len(),
                    v.as_ptr().cast(),
                    v.len(),
                );
            }
            sys::uws_res_end(ssl, res, self.body.as_ptr().cast(), self.body.len(), 0);
        }
    }
}

impl From<&str> for Response {
    fn from(body: &str) -> Self {
        Response::new(body)
    }
}

impl From<String> for Response {
    fn from(body: String) -> Self {
        Response::new(body)
    }
}

pub(crate) fn valid_header(name: &str, value: &str) -> bool {
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    !name.is_empty()
        && name.bytes().all(token)
        && !value.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0)
}

fn status_line(status: u16, buf: &mut [u8; 64]) -> &[u8] {
    let reason = match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        418 => "I'm a teapot",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    };
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{status} {reason}");
    let n = cursor.position() as usize;
    &buf[..n]
}

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
    /// [`protocol`](Self::protocol), as in Bun.
    pub headers: Vec<(String, String)>,
    /// The subprotocol to accept: one of [`Request::protocols`]. `None`
    /// accepts none (the client then decides whether to go on). Unlike
    /// uWebSockets' default, no protocol the app did not pick is ever
    /// echoed.
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
    fn status_lines() {
        let mut b = [0; 64];
        assert_eq!(status_line(404, &mut b), b"404 Not Found");
        assert_eq!(status_line(299, &mut b), b"299 ");
    }

    #[test]
    fn websocket_keys() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(b"!!!!!!!!!!!!!!!!!!!!!!!!"));
        assert!(!valid_key(b"AAAAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
    }

    #[test]
    fn header_validation() {
        assert!(valid_header("Set-Cookie", "a=b; Path=/"));
        assert!(!valid_header("X-Evil", "a\r\nInjected: yes"));
        assert!(!valid_header("Bad Name", "x"));
        assert!(!valid_header("", "x"));
    }
}
