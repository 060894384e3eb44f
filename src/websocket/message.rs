//! What handlers send and receive: messages, send and publish results,
//! ready states and close codes. Shared by every kind of socket.

use crate::error::Error;
use crate::sys;

/// A WebSocket message, borrowed: received (pointing into uWebSockets'
/// receive buffer, valid during the handler) or to send.
///
/// Text messages are valid UTF-8: uWebSockets checks every text message,
/// fragmented ones included, and fails the connection otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (opcode 1): Bun's `string`.
    Text(&'a str),
    /// A binary message (opcode 2): Bun's `Buffer`.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn opcode(&self) -> sys::uws_opcode_t {
        match self {
            Message::Text(_) => sys::UWS_OPCODE_TEXT,
            Message::Binary(_) => sys::UWS_OPCODE_BINARY,
        }
    }
}

impl<'a> From<&'a str> for Message<'a> {
    fn from(s: &'a str) -> Self {
        Message::Text(s)
    }
}

impl<'a> From<&'a String> for Message<'a> {
    fn from(s: &'a String) -> Self {
        Message::Text(s)
    }
}

impl<'a> From<&'a [u8]> for Message<'a> {
    fn from(b: &'a [u8]) -> Self {
        Message::Binary(b)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Message<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        Message::Binary(b)
    }
}

impl<'a> From<&'a Vec<u8>> for Message<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        Message::Binary(b)
    }
}

/// What a send did: Bun's return value of `ws.send()`, as a type.
///
/// | Rust | Bun | meaning |
/// |---|---|---|
/// | `Sent(n)` | `n` | the message is written (or corked) for the kernel |
/// | `Backpressure` | `-1` | the message is **queued and will still be sent**; the socket's buffer is growing. Do not send it again. `drain` runs once it has been written. |
/// | `Dropped` | `0` | the message was **not** sent: the socket is over `backpressure_limit`, closing or closed |
///
/// [`to_bun`](Self::to_bun) gives Bun's number. Note that Bun's `0` is
/// ambiguous for an empty message that was sent; `Sent(0)` is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Sent; the payload length in bytes.
    Sent(usize),
    /// Queued in user space because the socket cannot take more now. It will
    /// be sent; wait for `drain` before sending much more.
    Backpressure,
    /// Not sent: over the backpressure limit, or the socket is closed.
    Dropped,
}

impl SendStatus {
    /// Bun's number for this status: bytes sent, `-1` or `0`.
    pub fn to_bun(self) -> i64 {
        match self {
            SendStatus::Sent(n) => n as i64,
            SendStatus::Backpressure => -1,
            SendStatus::Dropped => 0,
        }
    }

    pub(crate) fn from_native(status: sys::uws_send_status_t, len: usize) -> Self {
        match status {
            sys::UWS_SEND_SUCCESS => SendStatus::Sent(len),
            sys::UWS_SEND_BACKPRESSURE => SendStatus::Backpressure,
            _ => SendStatus::Dropped,
        }
    }
}

/// What a publish did. Bun returns one ambiguous number here; this says
/// which case it was.
///
/// uWebSockets queues published messages and writes them to every
/// subscriber at the end of the current event-loop iteration (or before the
/// subscriber's next own send, keeping order), corked together. So a publish
/// cannot know per subscriber whether the write hit backpressure: a
/// subscriber over its `backpressure_limit` silently misses the message
/// (and is closed with `close_on_backpressure_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishStatus {
    /// At least one subscriber (other than the sender, for
    /// [`ServerWebSocket::publish`](crate::ServerWebSocket::publish)) will get the message; the payload
    /// length in bytes.
    Published(usize),
    /// Nobody else is subscribed to the topic: nothing was sent.
    NoSubscribers,
    /// The publishing socket is closed: nothing was sent.
    Dropped,
}

impl PublishStatus {
    /// Bun's number: payload bytes when published, otherwise `0`.
    pub fn to_bun(self) -> i64 {
        match self {
            PublishStatus::Published(n) => n as i64,
            _ => 0,
        }
    }
}

/// Bun's `ws.readyState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    /// `0`: a client connection that has not opened yet (server sockets
    /// are never in this state).
    Connecting,
    /// `1`: open.
    Open,
    /// `2`: `close` was called in this handler; the close handler runs
    /// when the handler returns.
    Closing,
    /// `3`: closed (inside the `close` handler).
    Closed,
}

impl ReadyState {
    /// Bun's number (0 to 3).
    pub fn to_bun(self) -> i32 {
        match self {
            ReadyState::Connecting => 0,
            ReadyState::Open => 1,
            ReadyState::Closing => 2,
            ReadyState::Closed => 3,
        }
    }
}

pub(crate) fn check_close_code(code: u16) -> Result<(), Error> {
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => Ok(()),
        _ => Err(Error::InvalidOption {
            name: "code",
            reason: format!("{code} is not a close code an endpoint may send"),
        }),
    }
}

pub(crate) fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bun_numbers() {
        assert_eq!(SendStatus::Sent(5).to_bun(), 5);
        assert_eq!(SendStatus::Backpressure.to_bun(), -1);
        assert_eq!(SendStatus::Dropped.to_bun(), 0);
        assert_eq!(PublishStatus::Published(3).to_bun(), 3);
        assert_eq!(PublishStatus::NoSubscribers.to_bun(), 0);
        assert_eq!(ReadyState::Closing.to_bun(), 2);
        assert_eq!(ReadyState::Connecting.to_bun(), 0);
    }

    #[test]
    fn close_reasons_are_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123 && cut.len() >= 121);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate_reason("bye"), "bye");
    }

    #[test]
    fn close_codes() {
        for ok in [1000, 1001, 1011, 3000, 4999] {
            assert!(check_close_code(ok).is_ok(), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 2000, 5000] {
            assert!(check_close_code(bad).is_err(), "{bad}");
        }
    }
}
