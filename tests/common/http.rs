//! Raw HTTP exchanges: send bytes (maybe in pieces), read what the server
//! answers and how the connection ended.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::TIMEOUT;

/// How a connection ended from the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed it (FIN).
    Eof,
    /// The server reset it (closed with unread data).
    Reset,
    /// Still open when we stopped waiting.
    Open,
}

/// The status code of an HTTP response, if `bytes` starts with one.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.get(..12)?).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    rest.parse().ok()
}

/// What the server did with a request.
#[derive(Debug)]
pub struct Answer {
    /// What it sent (up to the end of its first response, if any).
    pub bytes: Vec<u8>,
    pub end: End,
    pub took: Duration,
}

impl Answer {
    pub fn status(&self) -> Option<u16> {
        status_of(&self.bytes)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Whether `bytes` hold one complete HTTP response (headers, then as many
/// body bytes as its Content-Length says).
pub fn complete_response(bytes: &[u8]) -> bool {
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(n) => bytes.len() >= head_end + 4 + n,
        // A 101 has no body; otherwise, without a length, the body runs to
        // the end of the connection.
        None => status_of(bytes) == Some(101),
    }
}

/// Sends `chunks` on a fresh connection (pausing `pause` between them) and
/// reads until the server has sent one complete response or ended the
/// connection, or `TIMEOUT` passes.
pub fn exchange(port: u16, chunks: &[&[u8]], pause: Duration) -> Answer {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        if s.write_all(chunk).is_err() {
            break; // Already refused and closed: read what was said.
        }
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    let end = loop {
        let left = TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            break End::Open;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break End::Eof,
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                if complete_response(&bytes) {
                    // Give a closing server a moment to show it.
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    break match s.read(&mut buf) {
                        Ok(0) => End::Eof,
                        Err(e) if e.kind() == ErrorKind::ConnectionReset => End::Reset,
                        _ => End::Open,
                    };
                }
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break End::Open
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("read: {e}"),
        }
    };
    Answer {
        bytes,
        end,
        took: started.elapsed(),
    }
}

/// One HTTP response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Splits `bytes` into the complete responses at its start (interim 1xx
/// ones included); returns them and how many bytes they took.
pub fn parse_replies(mut bytes: &[u8]) -> (Vec<Reply>, usize) {
    let mut replies = Vec::new();
    let mut used = 0;
    while let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let Some(status) = lines
            .next()
            .and_then(|l| l.strip_prefix("HTTP/1.1 "))
            .and_then(|l| l.get(..3))
            .and_then(|c| c.parse().ok())
        else {
            break;
        };
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        if bytes.len() < head_end + 4 + length {
            break;
        }
        let body = bytes[head_end + 4..head_end + 4 + length].to_vec();
        replies.push(Reply {
            status,
            headers,
            body,
        });
        bytes = &bytes[head_end + 4 + length..];
        used += head_end + 4 + length;
    }
    (replies, used)
}

/// What a connection got: the final (non-1xx) responses, how the
/// connection ended, and any bytes after the last complete response.
#[derive(Debug)]
pub struct Conversation {
    pub replies: Vec<Reply>,
    /// Interim (1xx) responses, e.g. 100 Continue.
    pub interim: Vec<Reply>,
    pub end: End,
    pub rest: Vec<u8>,
    pub took: Duration,
}

impl Conversation {
    pub fn statuses(&self) -> Vec<u16> {
        self.replies.iter().map(|r| r.status).collect()
    }
}

/// Sends `chunks` on a fresh connection, `pause` apart, then reads until
/// `want` final responses came, the server ended the connection, or
/// `wait` passed since the last write. With `want` reached it waits a
/// moment more to see whether the server closes.
pub fn converse(
    port: u16,
    chunks: &[&[u8]],
    pause: Duration,
    want: usize,
    wait: Duration,
) -> Conversation {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    let mut end = None;
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        if s.write_all(chunk).is_err() {
            break; // Refused and closed already: read what was said.
        }
    }
    let deadline = Instant::now() + wait;
    loop {
        let finals = parse_replies(&bytes)
            .0
            .iter()
            .filter(|r| r.status >= 200)
            .count();
        let left = if finals >= want {
            Duration::from_millis(100)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        if left.is_zero() {
            break;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => {
                end = Some(End::Eof);
                break;
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                end = Some(End::Reset);
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if finals >= want {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("read: {e}"),
        }
    }
    let (replies, used) = parse_replies(&bytes);
    let (replies, interim) = replies.into_iter().partition(|r| r.status >= 200);
    Conversation {
        replies,
        interim,
        end: end.unwrap_or(End::Open),
        rest: bytes[used..].to_vec(),
        took: started.elapsed(),
    }
}
