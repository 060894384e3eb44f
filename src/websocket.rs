//! One server-side WebSocket, as its handlers see it: Bun's `ServerWebSocket`.

use std::cell::Cell;
use std::ffi::c_void;
use std::net::IpAddr;

use crate::error::Error;
use crate::registry::SocketId;
use crate::server::{Core, Server};
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
    /// [`ServerWebSocket::publish`]) will get the message; the payload
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
    /// `1`: open.
    Open,
    /// `2`: `close` was called in this handler; the close handler runs
    /// when the handler returns.
    Closing,
    /// `3`: closed (inside the `close` handler).
    Closed,
}

impl ReadyState {
    /// Bun's number (1, 2 or 3).
    pub fn to_bun(self) -> i32 {
        match self {
            ReadyState::Open => 1,
            ReadyState::Closing => 2,
            ReadyState::Closed => 3,
        }
    }
}

/// The live state of a socket while some code holds its
/// `&mut ServerWebSocket`: kept on the stack of the callback, apart from the
/// socket's own data, so that native callbacks that arrive in the meantime
/// (a close caused by the handler itself) can record what happened
/// without touching what the handler borrows.
pub(crate) struct Frame {
    pub(crate) ws: *mut sys::uws_ws_t,
    pub(crate) core: *const Core,
    pub(crate) id: SocketId,
    pub(crate) state: Cell<ReadyState>,
    /// A close that arrived during the callback: code and reason, delivered
    /// to the close handler once the callback returns (boxed: one word to
    /// clear and test on the message path).
    pub(crate) deferred_close: Cell<Option<Box<DeferredClose>>>,
    pub(crate) prev: *const Frame,
}

/// A close code and reason, kept until the close handler can run.
pub(crate) type DeferredClose = (i32, Box<[u8]>);

impl Frame {
    /// A frame for `ws`, to be pushed on `core`'s list of frames.
    pub(crate) fn new(
        ws: *mut sys::uws_ws_t,
        core: &Core,
        id: SocketId,
        state: ReadyState,
    ) -> Frame {
        Frame {
            ws,
            core,
            id,
            state: Cell::new(state),
            deferred_close: Cell::new(None),
            prev: core.top.get(),
        }
    }
}

/// One server-side WebSocket with its contextual data `T` (Bun's
/// `ServerWebSocket<T>`, `ws.data`).
///
/// Handlers get `&mut ServerWebSocket<T>`; it cannot outlive the callback.
/// To reach the socket later use [`id`](Self::id) with
/// [`Server::send`](crate::Server::send) and friends.
///
/// ```no_run
/// # use uws::*;
/// # struct Chat;
/// # impl WebSocketHandler for Chat {
/// #   type Data = String;
/// #   fn fetch(&self, _: &mut Request<'_>, _: &Server<String>) -> Response { Response::new("") }
/// // message(ws, message) { ws.send(`${ws.data}: ${message}`) }
/// fn message(&self, ws: &mut ServerWebSocket<String>, msg: Message<'_>) {
///     if let Message::Text(text) = msg {
///         let reply = format!("{}: {text}", ws.data());
///         ws.send_text(&reply);
///     }
/// }
/// # }
/// ```
pub struct ServerWebSocket<T> {
    pub(crate) frame: *const Frame,
    pub(crate) id: SocketId,
    pub(crate) data: T,
}

struct CorkCall<'a, T, F, R> {
    ws: &'a mut ServerWebSocket<T>,
    f: Option<F>,
    result: Option<R>,
}

unsafe extern "C" fn cork_trampoline<T, F: FnOnce(&mut ServerWebSocket<T>) -> R, R>(
    arg: *mut c_void,
) {
    // SAFETY: `arg` is the `CorkCall` that `cork` passed, alive for the
    // whole native call that invokes us exactly once.
    let call = unsafe { &mut *(arg as *mut CorkCall<'_, T, F, R>) };
    if let Some(f) = call.f.take() {
        // A panic must not unwind through C++: keep it and resume it on the
        // Rust side of `cork`.
        call.result = Some(
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(call.ws))) {
                Ok(r) => r,
                Err(p) => {
                    CORK_PANIC.with(|slot| slot.set(Some(p)));
                    return;
                }
            },
        );
    }
}

thread_local! {
    static CORK_PANIC: Cell<Option<Box<dyn std::any::Any + Send>>> = const { Cell::new(None) };
}

impl<T> ServerWebSocket<T> {
    fn frame(&self) -> &Frame {
        // SAFETY: `frame` is set by whoever handed out this `&mut` and lives
        // on that caller's stack until the reference is gone.
        unsafe { &*self.frame }
    }

    /// The native socket while it is open.
    fn raw(&self) -> Option<*mut sys::uws_ws_t> {
        let f = self.frame();
        (f.state.get() == ReadyState::Open).then_some(f.ws)
    }

    fn ssl(&self) -> i32 {
        self.core().ssl
    }

    fn core(&self) -> &Core {
        // SAFETY: the core outlives every socket of its server.
        unsafe { &*self.frame().core }
    }

    /// The server this socket belongs to (Bun: the `server` in scope).
    pub fn server(&self) -> &Server<T> {
        Server::from_core(self.core())
    }

    /// The contextual data given to [`Server::upgrade`] (Bun's `ws.data`).
    pub fn data(&self) -> &T {
        &self.data
    }

    /// Mutable contextual data.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.data
    }

    /// This socket's id, to reach it later from elsewhere.
    pub fn id(&self) -> SocketId {
        self.id
    }

    /// Bun's `ws.readyState`.
    pub fn ready_state(&self) -> ReadyState {
        self.frame().state.get()
    }

    fn send_raw(
        &mut self,
        payload: &[u8],
        opcode: sys::uws_opcode_t,
        compress: bool,
    ) -> SendStatus {
        let Some(ws) = self.raw() else {
            return SendStatus::Dropped;
        };
        // SAFETY: the socket is open (checked through the frame) and `ws`
        // belongs to an app of kind `ssl`; the payload is borrowed for the call.
        let status = unsafe {
            sys::uws_ws_send(
                self.ssl(),
                ws,
                payload.as_ptr().cast(),
                payload.len(),
                opcode,
                self.core().compress(compress),
            )
        };
        SendStatus::from_native(status, payload.len())
    }

    /// Bun's `ws.send(data, compress)`: text for `&str`, binary for bytes.
    /// `compress` asks for per-message deflate when the connection
    /// negotiated it (ignored otherwise).
    pub fn send<'m>(&mut self, message: impl Into<Message<'m>>, compress: bool) -> SendStatus {
        let m = message.into();
        self.send_raw(m.as_bytes(), m.opcode(), compress)
    }

    /// Bun's `ws.sendText(text)`.
    pub fn send_text(&mut self, text: &str) -> SendStatus {
        self.send_raw(text.as_bytes(), sys::UWS_OPCODE_TEXT, false)
    }

    /// Bun's `ws.sendBinary(data)`.
    pub fn send_binary(&mut self, data: &[u8]) -> SendStatus {
        self.send_raw(data, sys::UWS_OPCODE_BINARY, false)
    }

    /// Bun's `ws.ping(data)`. Control frames carry at most 125 bytes: a
    /// longer payload is [`Dropped`](SendStatus::Dropped).
    pub fn ping(&mut self, data: &[u8]) -> SendStatus {
        if data.len() > 125 {
            return SendStatus::Dropped;
        }
        self.send_raw(data, sys::UWS_OPCODE_PING, false)
    }

    /// Bun's `ws.pong(data)`, at most 125 bytes as for [`ping`](Self::ping).
    pub fn pong(&mut self, data: &[u8]) -> SendStatus {
        if data.len() > 125 {
            return SendStatus::Dropped;
        }
        self.send_raw(data, sys::UWS_OPCODE_PONG, false)
    }

    /// Bun's `ws.publish(topic, data, compress)`: sends to every socket
    /// subscribed to `topic` except this one (unless `publish_to_self`).
    /// This socket need not be subscribed to anything.
    pub fn publish<'m>(
        &mut self,
        topic: &str,
        message: impl Into<Message<'m>>,
        compress: bool,
    ) -> PublishStatus {
        let m = message.into();
        let Some(ws) = self.raw() else {
            return PublishStatus::Dropped;
        };
        let core = self.core();
        if core.publish_to_self {
            return core.publish(topic, m, compress);
        }
        let bytes = m.as_bytes();
        // SAFETY: open socket of kind `ssl`; topic and payload are borrowed
        // for the call (uWebSockets copies what it queues).
        let published = unsafe {
            sys::uws_ws_publish(
                core.ssl,
                ws,
                topic.as_ptr().cast(),
                topic.len(),
                bytes.as_ptr().cast(),
                bytes.len(),
                m.opcode(),
                core.compress(compress),
            )
        };
        if published != 0 {
            PublishStatus::Published(bytes.len())
        } else {
            PublishStatus::NoSubscribers
        }
    }

    /// Bun's `ws.publishText(topic, text)`.
    pub fn publish_text(&mut self, topic: &str, text: &str) -> PublishStatus {
        self.publish(topic, Message::Text(text), false)
    }

    /// Bun's `ws.publishBinary(topic, data)`.
    pub fn publish_binary(&mut self, topic: &str, data: &[u8]) -> PublishStatus {
        self.publish(topic, Message::Binary(data), false)
    }

    /// Bun's `ws.subscribe(topic)`. Returns `false` when the socket is closed.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        let Some(ws) = self.raw() else { return false };
        // SAFETY: open socket of kind `ssl`; topic borrowed for the call.
        unsafe { sys::uws_ws_subscribe(self.ssl(), ws, topic.as_ptr().cast(), topic.len()) != 0 }
    }

    /// Bun's `ws.unsubscribe(topic)`. Returns whether it was subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let Some(ws) = self.raw() else { return false };
        // SAFETY: as in `subscribe`.
        unsafe { sys::uws_ws_unsubscribe(self.ssl(), ws, topic.as_ptr().cast(), topic.len()) != 0 }
    }

    /// Bun's `ws.isSubscribed(topic)`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        let Some(ws) = self.raw() else { return false };
        // SAFETY: as in `subscribe`.
        unsafe {
            sys::uws_ws_is_subscribed(self.ssl(), ws, topic.as_ptr().cast(), topic.len()) != 0
        }
    }

    /// Bun's `ws.subscriptions`: every topic this socket is subscribed to.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut topics = Vec::new();
        let Some(ws) = self.raw() else { return topics };
        unsafe extern "C" fn collect(arg: *mut c_void, topic: *const std::ffi::c_char, len: usize) {
            // SAFETY: `arg` is the Vec below; the topic bytes are valid for
            // this call.
            let (topics, bytes) = unsafe { (&mut *(arg as *mut Vec<String>), bytes(topic, len)) };
            topics.push(String::from_utf8_lossy(bytes).into_owned());
        }
        // SAFETY: open socket of kind `ssl`; `collect` only pushes to `topics`.
        unsafe {
            sys::uws_ws_iterate_topics(
                self.ssl(),
                ws,
                Some(collect),
                (&mut topics as *mut Vec<String>).cast(),
            );
        }
        topics
    }

    /// Bun's `ws.cork(cb)`: runs `f` with writes batched into one system
    /// call. Handlers already run corked; this matters for sends from
    /// elsewhere (a timer, another socket's handler).
    pub fn cork<R, F: FnOnce(&mut Self) -> R>(&mut self, f: F) -> R {
        let Some(ws) = self.raw() else { return f(self) };
        let ssl = self.ssl();
        let mut call = CorkCall {
            ws: self,
            f: Some(f),
            result: None,
        };
        // SAFETY: open socket; the trampoline gets `call`, which outlives
        // the native call, and catches any panic before returning.
        unsafe {
            sys::uws_ws_cork(
                ssl,
                ws,
                Some(cork_trampoline::<T, F, R>),
                (&mut call as *mut CorkCall<'_, T, F, R>).cast(),
            );
        }
        if let Some(p) = CORK_PANIC.with(|slot| slot.take()) {
            std::panic::resume_unwind(p);
        }
        match call.result {
            Some(r) => r,
            // uWebSockets calls the callback exactly once.
            None => unreachable!("cork callback did not run"),
        }
    }

    /// Bun's `ws.close(code, reason)`: sends a close frame and closes. The
    /// `close` handler runs once the current handler returns (at once when
    /// called from outside the socket's own handlers). The reason is cut to
    /// 123 bytes at a character boundary.
    ///
    /// Codes must be ones an endpoint may send (1000-1003, 1007-1014,
    /// 3000-4999); others give an error and leave the socket open.
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        check_close_code(code)?;
        if let Some(ws) = self.raw() {
            let reason = truncate_reason(reason);
            self.frame().state.set(ReadyState::Closing);
            // SAFETY: the socket was open; uWebSockets' close callback finds
            // this frame and defers our close handler.
            unsafe {
                sys::uws_ws_end(
                    self.ssl(),
                    ws,
                    code.into(),
                    reason.as_ptr().cast(),
                    reason.len(),
                )
            };
        }
        Ok(())
    }

    /// Bun's `ws.terminate()`: closes the TCP connection at once, without a
    /// close frame. The close handler sees 1006.
    pub fn terminate(&mut self) {
        if let Some(ws) = self.raw() {
            self.frame().state.set(ReadyState::Closing);
            // SAFETY: as in `close`.
            unsafe { sys::uws_ws_close(self.ssl(), ws) };
        }
    }

    /// Bun's `ws.getBufferedAmount()`: bytes queued in user space.
    pub fn buffered_amount(&self) -> usize {
        match self.raw() {
            // SAFETY: open socket of kind `ssl`.
            Some(ws) => unsafe { sys::uws_ws_buffered_amount(self.ssl(), ws) as usize },
            None => 0,
        }
    }

    /// Bun's `ws.remoteAddress`: the peer's IP (None on a unix socket or
    /// once closed).
    pub fn remote_address(&self) -> Option<IpAddr> {
        let ws = self.raw()?;
        let mut buf = [0u8; 16];
        let mut len = buf.len() as i32;
        // SAFETY: open socket; uSockets writes at most `len` bytes to `buf`.
        unsafe { sys::uws_ws_remote_address(self.ssl(), ws, buf.as_mut_ptr().cast(), &mut len) };
        ip_from_raw(&buf, len)
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ServerWebSocket<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerWebSocket")
            .field("id", &self.id)
            .field("ready_state", &self.ready_state())
            .field("data", &self.data)
            .finish()
    }
}

pub(crate) fn ip_from_raw(buf: &[u8; 16], len: i32) -> Option<IpAddr> {
    match len {
        4 => Some(IpAddr::from([buf[0], buf[1], buf[2], buf[3]])),
        16 => {
            let v6 = std::net::Ipv6Addr::from(*buf);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

/// # Safety
/// `data` must point to `len` readable bytes (or `len` must be 0, when it
/// may be anything, null included).
pub(crate) unsafe fn bytes<'a>(data: *const std::ffi::c_char, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(data.cast(), len) }
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

    #[test]
    fn mapped_ipv4_is_reported_as_ipv4() {
        let mut buf = [0u8; 16];
        buf[10] = 0xff;
        buf[11] = 0xff;
        buf[12..].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(ip_from_raw(&buf, 16), Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(ip_from_raw(&buf, 0), None);
    }
}
