//! What handlers send and receive: messages, send and publish results,
//! ready states and close codes. Shared by every kind of socket.

use std::borrow::Cow;

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

/// An owned message: what a message becomes when it must outlive the
/// call, e.g. to be sent from another thread through a
/// [`ServerHandle`](crate::ServerHandle) or a
/// [`ClientHandle`](crate::ClientHandle). Every sending method takes one
/// as it takes a [`Message`] (see [`AsMessage`]).
///
/// ```
/// use uws::{Message, OwnedMessage};
///
/// let text = OwnedMessage::from("hello");
/// let bytes = OwnedMessage::from(vec![1u8, 2, 3]);
/// assert_eq!(text.as_message(), Message::Text("hello"));
/// assert_eq!(bytes.as_message().len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedMessage {
    /// Text.
    Text(String),
    /// Binary.
    Binary(Vec<u8>),
}

impl OwnedMessage {
    /// Borrows it as a [`Message`].
    pub fn as_message(&self) -> Message<'_> {
        match self {
            OwnedMessage::Text(s) => Message::Text(s),
            OwnedMessage::Binary(b) => Message::Binary(b),
        }
    }
}

impl From<String> for OwnedMessage {
    fn from(s: String) -> Self {
        OwnedMessage::Text(s)
    }
}

impl From<&str> for OwnedMessage {
    fn from(s: &str) -> Self {
        OwnedMessage::Text(s.to_owned())
    }
}

impl From<&String> for OwnedMessage {
    fn from(s: &String) -> Self {
        OwnedMessage::Text(s.clone())
    }
}

impl From<Vec<u8>> for OwnedMessage {
    fn from(b: Vec<u8>) -> Self {
        OwnedMessage::Binary(b)
    }
}

impl From<&[u8]> for OwnedMessage {
    fn from(b: &[u8]) -> Self {
        OwnedMessage::Binary(b.to_owned())
    }
}

impl From<Message<'_>> for OwnedMessage {
    fn from(m: Message<'_>) -> Self {
        match m {
            Message::Text(s) => OwnedMessage::Text(s.to_owned()),
            Message::Binary(b) => OwnedMessage::Binary(b.to_owned()),
        }
    }
}

/// Anything that is naturally a WebSocket message: what every sending and
/// publishing method takes ([`WebSocket::send`](crate::WebSocket::send),
/// [`ServerWebSocket::publish`](crate::ServerWebSocket::publish),
/// [`Server::publish`](crate::Server::publish),
/// [`Server::send`](crate::Server::send), [`ServerHandle`](crate::ServerHandle)'s and
/// [`ClientHandle`](crate::ClientHandle)'s `send` and `publish`).
///
/// | you pass | it is sent as | copied? |
/// |---|---|---|
/// | `&str`, `String`, `&String`, `Box<str>`, `Cow<str>` | text (Bun's `string`) | no |
/// | `&[u8]`, `Vec<u8>`, `&Vec<u8>`, `&[u8; N]`, `[u8; N]`, `Box<[u8]>`, `Cow<[u8]>` | binary (Bun's `Buffer`) | no |
/// | [`Message`], [`OwnedMessage`] (or references to them) | as it says | no |
///
/// A send on the socket's own thread only borrows the payload for the
/// native call, whether you pass it by value or by reference: an owned
/// `String` is not copied, only dropped after the call. A send that must
/// cross threads (through a handle, or to a socket of another thread of
/// the server) needs the payload owned: a `String`, a `Vec<u8>` or an
/// [`OwnedMessage`] is moved there as it is, a borrowed one is copied
/// once ([`into_owned`](Self::into_owned)).
///
/// ```
/// # fn demo(ws: &mut uws::ServerWebSocket<()>) {
/// ws.send("text");                      // &str: text
/// ws.send(format!("{} users", 3));      // String: text, not copied
/// ws.send(&vec![1u8, 2, 3]);            // &Vec<u8>: binary
/// ws.send(vec![1u8, 2, 3]);             // Vec<u8>: binary
/// ws.send(b"raw");                      // &[u8; 3]: binary
/// ws.send_compressed("long text...");   // Bun: ws.send(msg, true)
/// # }
/// ```
///
/// Your own types can implement it (one method: borrow the payload as a
/// [`Message`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a WebSocket message",
    label = "expected text or bytes",
    note = "send text as `&str` or `String`, binary as `&[u8]` or `Vec<u8>` (or a `uws::Message`, `uws::OwnedMessage`)"
)]
pub trait AsMessage {
    /// The message, borrowed for the call.
    fn as_message(&self) -> Message<'_>;

    /// The message, owned: moves the payload when `self` owns it, copies
    /// it otherwise (the default).
    fn into_owned(self) -> OwnedMessage
    where
        Self: Sized,
    {
        OwnedMessage::from(self.as_message())
    }
}

impl<M: AsMessage + ?Sized> AsMessage for &M {
    fn as_message(&self) -> Message<'_> {
        (**self).as_message()
    }
}

impl AsMessage for Message<'_> {
    fn as_message(&self) -> Message<'_> {
        *self
    }
}

impl AsMessage for OwnedMessage {
    fn as_message(&self) -> Message<'_> {
        OwnedMessage::as_message(self)
    }

    fn into_owned(self) -> OwnedMessage {
        self
    }
}

impl AsMessage for str {
    fn as_message(&self) -> Message<'_> {
        Message::Text(self)
    }
}

impl AsMessage for String {
    fn as_message(&self) -> Message<'_> {
        Message::Text(self)
    }

    fn into_owned(self) -> OwnedMessage {
        OwnedMessage::Text(self)
    }
}

impl AsMessage for Box<str> {
    fn as_message(&self) -> Message<'_> {
        Message::Text(self)
    }

    fn into_owned(self) -> OwnedMessage {
        OwnedMessage::Text(self.into())
    }
}

impl AsMessage for Cow<'_, str> {
    fn as_message(&self) -> Message<'_> {
        Message::Text(self)
    }

    fn into_owned(self) -> OwnedMessage {
        OwnedMessage::Text(Cow::into_owned(self))
    }
}

impl AsMessage for [u8] {
    fn as_message(&self) -> Message<'_> {
        Message::Binary(self)
    }
}

impl<const N: usize> AsMessage for [u8; N] {
    fn as_message(&self) -> Message<'_> {
        Message::Binary(self)
    }
}

impl AsMessage for Vec<u8> {
    fn as_message(&self) -> Message<'_> {
        Message::Binary(self)
    }

    fn into_owned(self) -> OwnedMessage {
        OwnedMessage::Binary(self)
    }
}

impl AsMessage for Box<[u8]> {
    fn as_message(&self) -> Message<'_> {
        Message::Binary(self)
    }

    fn into_owned(self) -> OwnedMessage {
        OwnedMessage::Binary(self.into())
    }
}

impl AsMessage for Cow<'_, [u8]> {
    fn as_message(&self) -> Message<'_> {
        Message::Binary(self)
    }

    fn into_owned(self) -> OwnedMessage {
        OwnedMessage::Binary(Cow::into_owned(self))
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
    fn text_stays_text_and_bytes_stay_binary() {
        fn kind(m: impl AsMessage) -> (bool, Vec<u8>) {
            let m = m.as_message();
            (matches!(m, Message::Text(_)), m.as_bytes().to_vec())
        }
        let s = String::from("hi");
        assert_eq!(kind("hi"), (true, b"hi".to_vec()));
        assert_eq!(kind(&s), (true, b"hi".to_vec()));
        assert_eq!(kind(s.clone()), (true, b"hi".to_vec()));
        assert_eq!(kind(Box::<str>::from("hi")), (true, b"hi".to_vec()));
        assert_eq!(kind(Cow::Borrowed("hi")), (true, b"hi".to_vec()));
        assert_eq!(kind(Message::Text("hi")), (true, b"hi".to_vec()));
        assert_eq!(kind(OwnedMessage::from("hi")), (true, b"hi".to_vec()));
        let v = vec![1u8, 2];
        assert_eq!(kind(&v[..]), (false, vec![1, 2]));
        assert_eq!(kind(&v), (false, vec![1, 2]));
        assert_eq!(kind(v.clone()), (false, vec![1, 2]));
        assert_eq!(kind([1u8, 2]), (false, vec![1, 2]));
        assert_eq!(kind(b"\x01\x02"), (false, vec![1, 2]));
        assert_eq!(kind(Cow::<[u8]>::Owned(vec![1, 2])), (false, vec![1, 2]));
        assert_eq!(kind(Message::Binary(&v)), (false, vec![1, 2]));
        assert_eq!(kind(OwnedMessage::from(v.clone())), (false, vec![1, 2]));
    }

    #[test]
    fn owned_payloads_move_without_a_copy() {
        let s = String::from("payload");
        let at = s.as_ptr();
        match s.into_owned() {
            OwnedMessage::Text(t) => assert_eq!(t.as_ptr(), at),
            other => panic!("{other:?}"),
        }
        let v = vec![7u8; 32];
        let at = v.as_ptr();
        match v.into_owned() {
            OwnedMessage::Binary(b) => assert_eq!(b.as_ptr(), at),
            other => panic!("{other:?}"),
        }
        let m = OwnedMessage::Binary(vec![1u8; 8]);
        let at = m.as_message().as_bytes().as_ptr();
        assert_eq!(
            AsMessage::into_owned(m).as_message().as_bytes().as_ptr(),
            at
        );
        // A borrowed one is copied: the owner keeps its own.
        let s = String::from("kept");
        assert_eq!((&s).into_owned(), OwnedMessage::Text("kept".into()));
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
