//! Which end of a connection a socket is: the server's or the client's.
//!
//! One [`WebSocket`](super::WebSocket) implementation serves both ends; the
//! side picks the native calls that differ (a client masks what it sends
//! and closes its own way) and where the socket's shared facts live.

use std::ffi::{c_char, c_int};

use crate::registry::SocketId;
use crate::sys;

/// The native send of one side: socket, payload, opcode, compress.
pub(crate) type SendFn = unsafe extern "C" fn(
    c_int,
    *mut sys::uws_ws_t,
    *const c_char,
    usize,
    sys::uws_opcode_t,
    c_int,
) -> sys::uws_send_status_t;
/// The native end (close frame, then the close callback): socket, code,
/// reason.
pub(crate) type EndFn =
    unsafe extern "C" fn(c_int, *mut sys::uws_ws_t, c_int, *const c_char, usize);
/// The native close (at once, the close callback sees 1006).
pub(crate) type CloseFn = unsafe extern "C" fn(c_int, *mut sys::uws_ws_t);

pub(crate) mod private {
    use super::*;

    /// What a side must provide (sealed: only this crate's sides exist).
    pub trait Sealed: 'static {
        /// What every socket of this side points at: the server's `Core`,
        /// or a client connection's own.
        type Core: 'static;
        /// `"ServerWebSocket"` or `"ClientWebSocket"` (for `Debug`).
        const NAME: &'static str;
        /// Sends one message. Safety: `ws` is an open socket of this side
        /// and kind `ssl`; the payload is readable for the call.
        const SEND: SendFn;
        /// Sends a close frame and runs the close callback (same contract).
        const END: EndFn;
        /// Closes the connection at once (same contract).
        const CLOSE: CloseFn;
        /// Plain (0) or TLS (1), as the shim's functions take it.
        fn ssl(core: &Self::Core) -> c_int;
        /// Closes the open socket `ws` (id `id`) at once; inside a callback
        /// of its owner, at the loop's next wakeup instead (a handler may
        /// still read views of the socket's buffers, which the close frees).
        fn terminate(core: &Self::Core, id: SocketId, ws: *mut sys::uws_ws_t);
        /// The native `compress` flag for a send that asked for `asked`.
        fn compress(core: &Self::Core, asked: bool) -> c_int;
    }
}

/// The end of a connection a [`WebSocket`](crate::WebSocket) is:
/// [`ServerSide`] or [`ClientSide`]. Sealed: there are no others.
pub trait Side: private::Sealed {}

/// A socket a server accepted ([`ServerWebSocket`](crate::ServerWebSocket)).
#[derive(Debug)]
pub enum ServerSide {}

impl private::Sealed for ServerSide {
    type Core = crate::server::Core;
    const NAME: &'static str = "ServerWebSocket";
    const SEND: SendFn = sys::uws_ws_send;
    const END: EndFn = sys::uws_ws_end;
    const CLOSE: CloseFn = sys::uws_ws_close;

    fn ssl(core: &Self::Core) -> c_int {
        core.ssl
    }

    fn terminate(core: &Self::Core, id: SocketId, ws: *mut sys::uws_ws_t) {
        core.terminate(id, ws);
    }

    fn compress(core: &Self::Core, asked: bool) -> c_int {
        core.compress(asked)
    }
}

impl Side for ServerSide {}

/// A connection this process opened ([`ClientWebSocket`](crate::ClientWebSocket)).
#[derive(Debug)]
pub enum ClientSide {}

impl private::Sealed for ClientSide {
    type Core = crate::client::ClientCore;
    const NAME: &'static str = "ClientWebSocket";
    const SEND: SendFn = sys::uws_client_send;
    const END: EndFn = sys::uws_client_end;
    const CLOSE: CloseFn = sys::uws_client_close;

    fn ssl(core: &Self::Core) -> c_int {
        core.ssl
    }

    fn compress(core: &Self::Core, asked: bool) -> c_int {
        (asked && core.compress_sends.get()).into()
    }

    fn terminate(core: &Self::Core, id: SocketId, ws: *mut sys::uws_ws_t) {
        core.terminate(id, ws);
    }
}

impl Side for ClientSide {}
