//! One WebSocket, as its handlers see it: Bun's `ServerWebSocket`, and the
//! client's socket, with one implementation for both ends.

pub(crate) mod dispatch;
mod message;
mod side;
pub(crate) mod slot;

use std::ffi::c_void;
use std::marker::PhantomData;
use std::net::IpAddr;

use crate::error::Error;
use crate::ffi::{bytes, ip_from_raw};
use crate::registry::SocketId;
use crate::server::Server;
use crate::sys;

pub(crate) use message::{check_close_code, truncate_reason};
pub use message::{Message, PublishStatus, ReadyState, SendStatus};
pub use side::{ClientSide, ServerSide, Side};
use slot::SocketState;

/// One WebSocket with its contextual data `T`, on either end of a
/// connection: see [`ServerWebSocket`] and [`ClientWebSocket`](crate::ClientWebSocket), the names
/// to use. Both offer the same methods to send, close and inspect a
/// socket; the server's adds pub/sub, the client's its protocol.
///
/// Handlers get `&mut WebSocket<S, T>`; it cannot outlive the callback.
/// To reach the socket later use its [`id`](Self::id) (servers) or a
/// [`ClientHandle`](crate::ClientHandle) (clients).
///
/// The type is unsized (like `str` or `Path`): it only exists behind the
/// reference a handler is given, so it cannot be moved, swapped or replaced
/// (`std::mem::swap` needs a sized type). Its data can:
/// `std::mem::swap(a.data_mut(), b.data_mut())` is fine.
#[repr(C)]
pub struct WebSocket<S: Side, T> {
    state: *const SocketState<S::Core>,
    data: T,
    side: PhantomData<S>,
    _unsized: [()],
}

/// One server-side WebSocket with its contextual data `T` (Bun's
/// `ServerWebSocket<T>`, `ws.data`).
///
/// Handlers get `&mut ServerWebSocket<T>`; it cannot outlive the callback.
/// To reach the socket later use [`id`](WebSocket::id) with
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
pub type ServerWebSocket<T> = WebSocket<ServerSide, T>;

struct CorkCall<'a, S: Side, T, F, R> {
    ws: &'a mut WebSocket<S, T>,
    f: Option<F>,
    result: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn cork_trampoline<S: Side, T, F: FnOnce(&mut WebSocket<S, T>) -> R, R>(
    arg: *mut c_void,
) {
    // SAFETY: `arg` is the `CorkCall` that `cork` passed, alive for the
    // whole native call that invokes us exactly once.
    let call = unsafe { &mut *(arg as *mut CorkCall<'_, S, T, F, R>) };
    if let Some(f) = call.f.take() {
        // A panic must not unwind through C++: it is resumed on the Rust
        // side of `cork`.
        let ws = &mut *call.ws;
        call.result = Some(crate::runtime::catch(|| f(ws)));
    }
}

/// Sends on a socket by its state: dropped unless it is open.
fn send_raw<S: Side>(
    state: &SocketState<S::Core>,
    payload: &[u8],
    opcode: sys::uws_opcode_t,
    compress: bool,
) -> SendStatus {
    let Some(ws) = state.open_ws() else {
        return SendStatus::Dropped;
    };
    // SAFETY: the core outlives its sockets' states.
    let core = unsafe { &*state.core };
    // SAFETY: the socket is open (checked through its state) and `ws` is
    // of this side and kind `ssl`; the payload is borrowed for the call.
    let status = unsafe {
        (S::SEND)(
            S::ssl(core),
            ws,
            payload.as_ptr().cast(),
            payload.len(),
            opcode,
            S::compress(core, compress),
        )
    };
    SendStatus::from_native(status, payload.len())
}

/// Sends `message` on the socket whose state this is (by id, from outside
/// its handlers); dropped unless it is open.
pub(crate) fn send_on<S: Side>(
    state: &SocketState<S::Core>,
    message: Message<'_>,
    compress: bool,
) -> SendStatus {
    send_raw::<S>(state, message.as_bytes(), message.opcode(), compress)
}

impl<S: Side, T> WebSocket<S, T> {
    fn state(&self) -> &SocketState<S::Core> {
        // SAFETY: the state lives in the same slot as this socket, outside
        // the part `self` covers, until the slot is freed after the close
        // handler, which cannot be while `self` is borrowed.
        unsafe { &*self.state }
    }

    /// The native socket while it is open.
    fn raw(&self) -> Option<*mut sys::uws_ws_t> {
        self.state().open_ws()
    }

    fn ssl(&self) -> i32 {
        S::ssl(self.core())
    }

    pub(crate) fn core(&self) -> &S::Core {
        // SAFETY: the core outlives every socket that points at it.
        unsafe { &*self.state().core }
    }

    /// The contextual data (Bun's `ws.data`): given to
    /// [`Server::upgrade`] or to [`connect`](crate::connect).
    pub fn data(&self) -> &T {
        &self.data
    }

    /// Mutable contextual data.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.data
    }

    /// This socket's id, to reach it later from elsewhere.
    pub fn id(&self) -> SocketId {
        self.state().id.get()
    }

    /// Bun's `ws.readyState`.
    pub fn ready_state(&self) -> ReadyState {
        self.state().ready.get()
    }

    fn send_raw(
        &mut self,
        payload: &[u8],
        opcode: sys::uws_opcode_t,
        compress: bool,
    ) -> SendStatus {
        send_raw::<S>(self.state(), payload, opcode, compress)
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
        // SAFETY: open socket (corking works the same on both sides); the
        // trampoline gets `call`, which outlives the native call, and
        // catches any panic before returning.
        unsafe {
            sys::uws_ws_cork(
                ssl,
                ws,
                Some(cork_trampoline::<S, T, F, R>),
                (&mut call as *mut CorkCall<'_, S, T, F, R>).cast(),
            );
        }
        match call.result {
            Some(Ok(r)) => r,
            Some(Err(p)) => crate::runtime::resume(p),
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
            self.state().ready.set(ReadyState::Closing);
            // SAFETY: the socket was open; the native close callback sees
            // it busy and defers our close handler.
            unsafe {
                (S::END)(
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
    /// close frame. The close handler sees 1006. Inside a handler the
    /// connection closes (and the close handler runs) right after the
    /// current loop iteration: until then the message or request it reads
    /// stays valid, and sends are dropped.
    pub fn terminate(&mut self) {
        if let Some(ws) = self.raw() {
            self.state().ready.set(ReadyState::Closing);
            S::terminate(self.core(), self.id(), ws);
        }
    }

    /// Bun's `ws.getBufferedAmount()`: bytes queued in user space.
    pub fn buffered_amount(&self) -> usize {
        match self.raw() {
            // SAFETY: open socket of kind `ssl` (either side).
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

impl<T> ServerWebSocket<T> {
    /// The server this socket belongs to (Bun: the `server` in scope).
    pub fn server(&self) -> &Server<T> {
        Server::from_core(self.core())
    }

    /// Bun's `ws.publish(topic, data, compress)`: sends to every socket
    /// subscribed to `topic` except this one (unless `publish_to_self`).
    /// This socket need not be subscribed to anything. In the `close`
    /// handler (the chat's "has left the chat") the socket is already out
    /// of its topics and the message reaches the other subscribers, as in
    /// Bun. `NoSubscribers` when nobody else gets it.
    pub fn publish<'m>(
        &mut self,
        topic: &str,
        message: impl Into<Message<'m>>,
        compress: bool,
    ) -> PublishStatus {
        let m = message.into();
        let core = self.core();
        let Some(ws) = self.raw() else {
            // Closed (in its `close` handler, like Bun since 1.1.27):
            // uWebSockets took the socket out of all its topics before the
            // close handler, so a publish as the server reaches exactly the
            // other subscribers.
            return match self.state().ready.get() {
                ReadyState::Closed => core.publish(topic, m, compress),
                _ => PublishStatus::Dropped,
            };
        };
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
        let forwarded = core.forward(topic, m, compress);
        let bus = core.publish_to_bus(topic, m, compress);
        if published != 0 || forwarded || bus {
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
        let ssl = self.ssl();
        self.core().subscribing(ws, || {
            // SAFETY: open socket of kind `ssl`; topic borrowed for the call.
            unsafe { sys::uws_ws_subscribe(ssl, ws, topic.as_ptr().cast(), topic.len()) != 0 }
        })
    }

    /// Bun's `ws.unsubscribe(topic)`. Returns whether it was subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let Some(ws) = self.raw() else { return false };
        let ssl = self.ssl();
        self.core().subscribing(ws, || {
            // SAFETY: as in `subscribe`.
            unsafe { sys::uws_ws_unsubscribe(ssl, ws, topic.as_ptr().cast(), topic.len()) != 0 }
        })
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
}

impl<S: Side, T: std::fmt::Debug> std::fmt::Debug for WebSocket<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(S::NAME)
            .field("id", &self.id())
            .field("ready_state", &self.ready_state())
            .field("data", &self.data)
            .finish()
    }
}
