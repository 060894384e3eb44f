//! Which end of a connection a socket is: the server's or the client's.
//!
//! One [`WebSocket`](super::WebSocket) implementation serves both ends; the
//! side picks the native calls that differ (a client masks what it sends
//! and closes its own way) and where the socket's shared facts live.

use std::ffi::{c_char, c_int};

use crate::sys;

pub(crate) mod private {
    use super::*;

    /// What a side must provide (sealed: only this crate's sides exist).
    pub trait Sealed: 'static {
        /// What every socket of this side points at: the server's `Core`,
        /// or a client connection's own.
        type Core: 'static;
        /// `"ServerWebSocket"` or `"ClientWebSocket"` (for `Debug`).
        const NAME: &'static str;
        /// Plain (0) or TLS (1), as the shim's functions take it.
        fn ssl(core: &Self::Core) -> c_int;
        /// The native `compress` flag for a send that asked for `asked`.
        fn compress(core: &Self::Core, asked: bool) -> c_int;
        /// Sends one message.
        ///
        /// # Safety
        /// `ws` is an open socket of this side and kind `ssl`; `data`
        /// points at `length` readable bytes (or `length` is 0).
        unsafe fn send(
            ssl: c_int,
            ws: *mut sys::uws_ws_t,
            data: *const c_char,
            length: usize,
            opcode: sys::uws_opcode_t,
            compress: c_int,
        ) -> sys::uws_send_status_t;
        /// Sends a close frame and runs the close callback.
        ///
        /// # Safety
        /// As for [`send`](Self::send), with `message` and `length`.
        unsafe fn end(
            ssl: c_int,
            ws: *mut sys::uws_ws_t,
            code: c_int,
            message: *const c_char,
            length: usize,
        );
        /// Closes the connection at once (the close callback sees 1006).
        ///
        /// # Safety
        /// `ws` is an open socket of this side and kind `ssl`.
        unsafe fn close(ssl: c_int, ws: *mut sys::uws_ws_t);
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

    fn ssl(core: &Self::Core) -> c_int {
        core.ssl
    }

    fn compress(core: &Self::Core, asked: bool) -> c_int {
        core.compress(asked)
    }

    unsafe fn send(
        ssl: c_int,
        ws: *mut sys::uws_ws_t,
        data: *const c_char,
        length: usize,
        opcode: sys::uws_opcode_t,
        compress: c_int,
    ) -> sys::uws_send_status_t {
        // SAFETY: the caller's promise.
        unsafe { sys::uws_ws_send(ssl, ws, data, length, opcode, compress) }
    }

    unsafe fn end(
        ssl: c_int,
        ws: *mut sys::uws_ws_t,
        code: c_int,
        message: *const c_char,
        length: usize,
    ) {
        // SAFETY: the caller's promise.
        unsafe { sys::uws_ws_end(ssl, ws, code, message, length) }
    }

    unsafe fn close(ssl: c_int, ws: *mut sys::uws_ws_t) {
        // SAFETY: the caller's promise.
        unsafe { sys::uws_ws_close(ssl, ws) }
    }
}

impl Side for ServerSide {}

/// A connection this process opened ([`ClientWebSocket`](crate::ClientWebSocket)).
#[derive(Debug)]
pub enum ClientSide {}

impl private::Sealed for ClientSide {
    type Core = crate::client::ClientCore;
    const NAME: &'static str = "ClientWebSocket";

    fn ssl(core: &Self::Core) -> c_int {
        core.ssl
    }

    fn compress(core: &Self::Core, asked: bool) -> c_int {
        (asked && core.compress_sends.get()).into()
    }

    unsafe fn send(
        ssl: c_int,
        ws: *mut sys::uws_ws_t,
        data: *const c_char,
        length: usize,
        opcode: sys::uws_opcode_t,
        compress: c_int,
    ) -> sys::uws_send_status_t {
        // SAFETY: the caller's promise.
        unsafe { sys::uws_client_send(ssl, ws, data, length, opcode, compress) }
    }

    unsafe fn end(
        ssl: c_int,
        ws: *mut sys::uws_ws_t,
        code: c_int,
        message: *const c_char,
        length: usize,
    ) {
        // SAFETY: the caller's promise.
        unsafe { sys::uws_client_end(ssl, ws, code, message, length) }
    }

    unsafe fn close(ssl: c_int, ws: *mut sys::uws_ws_t) {
        // SAFETY: the caller's promise.
        unsafe { sys::uws_client_close(ssl, ws) }
    }
}

impl Side for ClientSide {}
