//! What `fetch` answers: Bun's `Response`, and how it is written.

use crate::sys;

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

    /// Bun's `Response.redirect(url)`: 302 Found with `Location: url` and
    /// no body.
    pub fn redirect(url: impl Into<String>) -> Self {
        Response::redirect_with_status(url, 302)
    }

    /// Bun's `Response.redirect(url, status)` (301, 303, 307, 308, ...).
    pub fn redirect_with_status(url: impl Into<String>, status: u16) -> Self {
        Response::new("")
            .with_status(status)
            .with_header("Location", url)
    }

    /// Sets the status code (100-999; others are answered as 500).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header. Content-Length is computed and must not be given, nor
    /// Transfer-Encoding. A name or value that could break the response
    /// (CR, LF, NUL; a name that is not an HTTP token) makes the whole
    /// response a 500.
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

    /// The status line (without `HTTP/1.1 `) and header lines, as the
    /// native side writes a prebuilt response; `None` when invalid.
    pub(crate) fn prebuilt_head(&self) -> Option<String> {
        if !self.is_valid() {
            return None;
        }
        let mut line = [0u8; 64];
        let mut head = String::from_utf8_lossy(status_line(self.status, &mut line)).into_owned();
        for (k, v) in &self.headers {
            head.push_str("\r\n");
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
        }
        Some(head)
    }

    pub(crate) fn into_body(self) -> Vec<u8> {
        self.body
    }

    fn is_valid(&self) -> bool {
        (100..=999).contains(&self.status)
            && self
                .headers
                .iter()
                .all(|(k, v)| valid_header(k, v) && !framing_header(k))
    }

    /// Writes the status line and headers (an invalid response becomes a
    /// 500 with no headers), with `Connection: close` when `close` (for a
    /// body streamed in parts; `write` lets uWebSockets add it). Returns
    /// whether the response was valid.
    pub(crate) fn write_head(&self, ssl: i32, res: *mut sys::uws_res_t, close: bool) -> bool {
        let valid = self.is_valid();
        let status = if valid { self.status } else { 500 };
        let mut line = [0u8; 64];
        let line = status_line(status, &mut line);
        // SAFETY: `res` is the live response of the current request; the
        // line is borrowed for the call.
        unsafe { sys::uws_res_write_status(ssl, res, line.as_ptr().cast(), line.len()) };
        for (k, v) in self.headers.iter().filter(|_| valid) {
            write_header(ssl, res, k, v);
        }
        if close {
            write_header(ssl, res, "Connection", "close");
        }
        valid
    }

    /// Writes the response and ends it; `close` ends the connection after
    /// it (with `Connection: close`); `head` leaves the body out (the
    /// answer to a HEAD request, whose Content-Length is the body's).
    pub(crate) fn write(&self, ssl: i32, res: *mut sys::uws_res_t, close: bool, head: bool) {
        let body: &[u8] = if self.write_head(ssl, res, false) {
            &self.body
        } else {
            b"invalid response"
        };
        // SAFETY: as in `write_head`; this ends the response (uWebSockets
        // adds Content-Length, and with `close` the Connection header, and
        // closes the connection once it is written).
        unsafe {
            if head {
                sys::uws_res_end_without_body(ssl, res, 1, body.len(), close.into());
            } else {
                sys::uws_res_end(ssl, res, body.as_ptr().cast(), body.len(), close.into());
            }
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

/// Writes one header of the response `res` (live, of a request still
/// waiting for its answer, before its end).
pub(crate) fn write_header(ssl: i32, res: *mut sys::uws_res_t, name: &str, value: &str) {
    // SAFETY: as the caller promises; both strings are borrowed for the call.
    unsafe {
        sys::uws_res_write_header(
            ssl,
            res,
            name.as_ptr().cast(),
            name.len(),
            value.as_ptr().cast(),
            value.len(),
        )
    };
}

/// Headers that say where a message ends: uWebSockets writes them itself.
pub(crate) fn framing_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let mut b = [0; 64];
        assert_eq!(status_line(404, &mut b), b"404 Not Found");
        assert_eq!(status_line(299, &mut b), b"299 ");
    }

    #[test]
    fn header_validation() {
        assert!(valid_header("Set-Cookie", "a=b; Path=/"));
        assert!(!valid_header("X-Evil", "a\r\nInjected: yes"));
        assert!(!valid_header("Bad Name", "x"));
        assert!(!valid_header("", "x"));
    }
}
