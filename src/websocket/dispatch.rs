//! The `extern "C"` trampolines of a socket's events and the bookkeeping
//! around them, shared by server and client sockets.
//!
//! Every native event of an open socket comes in here and is dispatched,
//! statically, to an [`Events`] implementation (the server's handler
//! context, or a client connection). Each trampoline counts itself in as a
//! callback of its owner, marks the socket busy while a handler holds its
//! `&mut`, runs a close that arrived meanwhile once the handler returns,
//! and catches panics before they reach C++.
//!
//! The owner is reached through a raw pointer, never a reference that
//! lives across a close: a client connection is freed right after its
//! close handler ([`Events::released`]).

use std::ffi::{c_char, c_int, c_void};

use crate::error::Error;
use crate::ffi::bytes;
use crate::registry::SocketId;
use crate::runtime::{self, Entered, Gate};
use crate::sys;
use crate::websocket::side::private::Sealed;
use crate::websocket::slot::{Closed, Slot, SocketState};
use crate::websocket::{Message, ReadyState, Side, WebSocket};

/// The handlers of one side's sockets, as the trampolines see them.
pub(crate) trait Events: Sized + 'static {
    /// Which end the sockets are.
    type Side: Side;
    /// The sockets' contextual data.
    type Data: 'static;

    /// The owner's gate, through which every call into user code goes:
    /// the server's, or the thread's clients'. It outlives `self`.
    fn gate(&self) -> *const Gate;
    /// The socket is closing: from now on its id resolves to nothing.
    fn forget(&self, id: SocketId);
    /// The native socket opened.
    fn opened(&self, state: &SocketState<Core<Self>>, ws: *mut sys::uws_ws_t, slot: *mut c_void);
    /// An opened socket's close handler is about to run (once per socket).
    fn closing(&self) {}
    /// Reports an error (a caught panic) to the handler.
    fn report(&self, ws: Option<&mut Socket<Self>>, error: &Error);
    /// The handler methods.
    fn open(&self, ws: &mut Socket<Self>);
    /// A message arrived.
    fn message(&self, ws: &mut Socket<Self>, message: Message<'_>);
    /// The send buffer drained.
    fn drain(&self, ws: &mut Socket<Self>);
    /// A ping arrived.
    fn ping(&self, ws: &mut Socket<Self>, data: &[u8]);
    /// A pong arrived.
    fn pong(&self, ws: &mut Socket<Self>, data: &[u8]);
    /// The socket closed.
    fn close(&self, ws: &mut Socket<Self>, code: u16, reason: &str);

    /// Runs last, once a socket's slot has been freed: a client connection
    /// frees itself here. `this` must not be used afterwards.
    ///
    /// # Safety
    /// `this` is valid and no reference to it is alive.
    unsafe fn released(this: *const Self) {
        let _ = this;
    }
}

/// The handler methods of an [`Events`] implementation whose `handler`
/// field has methods of the same names (the server's and the client's
/// handler traits), `report` going to its `error`.
macro_rules! handler_events {
    () => {
        fn report(
            &self,
            ws: Option<&mut $crate::websocket::dispatch::Socket<Self>>,
            error: &$crate::Error,
        ) {
            self.handler.error(ws, error);
        }

        fn open(&self, ws: &mut $crate::websocket::dispatch::Socket<Self>) {
            self.handler.open(ws);
        }

        fn message(
            &self,
            ws: &mut $crate::websocket::dispatch::Socket<Self>,
            message: $crate::Message<'_>,
        ) {
            self.handler.message(ws, message);
        }

        fn drain(&self, ws: &mut $crate::websocket::dispatch::Socket<Self>) {
            self.handler.drain(ws);
        }

        fn ping(&self, ws: &mut $crate::websocket::dispatch::Socket<Self>, data: &[u8]) {
            self.handler.ping(ws, data);
        }

        fn pong(&self, ws: &mut $crate::websocket::dispatch::Socket<Self>, data: &[u8]) {
            self.handler.pong(ws, data);
        }

        fn close(
            &self,
            ws: &mut $crate::websocket::dispatch::Socket<Self>,
            code: u16,
            reason: &str,
        ) {
            self.handler.close(ws, code, reason);
        }
    };
}
pub(crate) use handler_events;

/// The socket type of an [`Events`] implementation.
pub(crate) type Socket<E> = WebSocket<<E as Events>::Side, <E as Events>::Data>;
/// Its slot.
pub(crate) type SlotOf<E> = Slot<<E as Events>::Side, <E as Events>::Data>;
type Core<E> = <<E as Events>::Side as Sealed>::Core;

/// Reports through the handler, containing a panic of the error handler
/// itself (it has nowhere left to report to).
pub(crate) fn report<E: Events>(e: &E, ws: Option<&mut Socket<E>>, error: &Error) {
    // SAFETY: the gate outlives its owner's sockets and `e`.
    let gate = unsafe { &*e.gate() };
    let _ = gate.call("error", || e.report(ws, error));
}

/// Runs `f` with the socket handed out (busy), through the gate the
/// caller counted itself in at (`entered`), containing and reporting a
/// panic. Returns whether `f` panicked.
///
/// # Safety
/// `e` is valid; `slot` is a live slot of its sockets, not busy.
pub(crate) unsafe fn handed<E: Events>(
    e: *const E,
    entered: &Entered<'_>,
    slot: *mut SlotOf<E>,
    name: &'static str,
    f: impl FnOnce(&mut Socket<E>),
) -> bool {
    // SAFETY: live slot; the state is reached shared only.
    let state = unsafe { &(*slot).state };
    state.busy.set(true);
    // SAFETY: not busy before (caller's promise), so from here until
    // `busy` is cleared the only access to the handed part is this one.
    let ws = unsafe { Slot::socket(slot) };
    // SAFETY: `e` is valid (caller's promise); its gate outlives it.
    let result = unsafe { &*(*e).gate() }.call_entered(entered, name, || f(&mut *ws));
    let panicked = result.is_err();
    if let Err(error) = result {
        // SAFETY: `e` is valid (caller's promise); the socket is busy, so
        // nothing can have freed it or its owner.
        report(unsafe { &*e }, Some(ws), &error);
    }
    state.busy.set(false);
    panicked
}

/// Runs a handler on an open socket, then deals with what happened
/// meanwhile: a close that arrived runs the close handler now, a panic
/// closes with 1011. Nothing touches `e` after a close.
///
/// # Safety
/// `e` is valid; `slot` is a live slot of its sockets.
pub(crate) unsafe fn dispatch<E: Events>(
    e: *const E,
    slot: *mut SlotOf<E>,
    name: &'static str,
    f: impl FnOnce(&mut Socket<E>),
) {
    let (busy, ws) = {
        // SAFETY: live slot, state reached shared.
        let state = unsafe { &(*slot).state };
        (state.busy.get(), state.ws.get())
    };
    // uWebSockets does not reenter a socket's handlers; should it ever,
    // the event is dropped rather than a second `&mut` made.
    if busy {
        return;
    }
    // SAFETY: `e` is valid until the close below; its gate outlives it.
    let entered = unsafe { &*(*e).gate() }.enter();
    // SAFETY: live and not busy.
    let panicked = unsafe { handed(e, &entered, slot, name, f) };
    // SAFETY: live slot; `deferred` and `ready` are read before anything
    // below may free it.
    let (deferred, ready) = unsafe {
        let state = &(*slot).state;
        (state.deferred_close.take(), state.ready.get())
    };
    match deferred {
        // SAFETY: not busy any more; the socket closed during `f` and its
        // close handler is still owed.
        Some(closed) => unsafe { close_now(e, slot, closed.code, &closed.reason) },
        None if panicked && ready == ReadyState::Open => {
            let reason = "internal error";
            // SAFETY: the socket is still open, so its slot and the core it
            // points at are alive; its close callback comes back into
            // `on_close`, which finds it not busy and runs the close
            // handler at once.
            unsafe {
                let ssl = E::Side::ssl(&*(*slot).state.core);
                (E::Side::END)(ssl, ws, 1011, reason.as_ptr().cast(), reason.len())
            };
        }
        None => {}
    }
}

/// Runs the close handler and frees the slot (dropping the data), then
/// releases `e`.
///
/// # Safety
/// `e` is valid and not referenced; `slot` is a live slot of its sockets,
/// not busy; both may be freed here.
pub(crate) unsafe fn close_now<E: Events>(
    e: *const E,
    slot: *mut SlotOf<E>,
    code: i32,
    reason: &[u8],
) {
    // SAFETY: valid until `released` below; its gate outlives it.
    let gate = unsafe { &*(*e).gate() };
    let entered = gate.enter();
    {
        // SAFETY: live slot, state reached shared.
        let state = unsafe { &(*slot).state };
        // SAFETY: as above.
        unsafe {
            (*e).forget(state.id.get());
            (*e).closing();
        }
        state.ready.set(ReadyState::Closed);
    }
    let reason = String::from_utf8_lossy(reason);
    let code = u16::try_from(code).unwrap_or(1006);
    // SAFETY: live and not busy. In the Closed state every send inside
    // the close handler returns Dropped.
    unsafe { handed(e, &entered, slot, "close", |s| (*e).close(s, code, &reason)) };
    // SAFETY: made by `Slot::new`; this is the one place that frees an
    // opened socket, and nothing refers to it any more (unregistered, not
    // busy).
    if let Err(err) = gate.dispose(unsafe { Slot::free(slot) }) {
        // SAFETY: `e` is still valid.
        report(unsafe { &*e }, None, &err);
    }
    drop(entered);
    // SAFETY: nothing uses `e` after `released`.
    unsafe { E::released(e) };
}

/// Runs `f` on a socket from outside its handlers (`with_socket`): `None`
/// when it is not open or a handler holds it now. A close that `f` causes
/// (or that arrives meanwhile) runs `closed` when `f` returns, also when
/// `f` panics (the panic then goes on to the caller).
///
/// # Safety
/// `slot` is a live, registered slot; `closed` runs its close handler and
/// frees it (as `close_now`).
pub(crate) unsafe fn with_open<S: Side, T, R>(
    slot: *mut Slot<S, T>,
    f: impl FnOnce(&mut WebSocket<S, T>) -> R,
    closed: impl FnOnce(i32, &[u8]),
) -> Option<R> {
    // SAFETY: live slot; the state is reached shared, and not used once
    // the slot may be freed.
    let state = unsafe { &(*slot).state };
    if state.busy.get() || state.open_ws().is_none() {
        return None;
    }
    state.busy.set(true);
    // SAFETY: the socket is open and was not busy, so nothing else borrows
    // its handed part until `busy` is cleared below.
    let result = runtime::catch(|| f(unsafe { Slot::socket(slot) }));
    state.busy.set(false);
    if let Some(c) = state.deferred_close.take() {
        // Not busy any more; the socket closed during `f` and its close
        // handler is owed. The slot is freed inside: `state` is not used
        // after this.
        closed(c.code, &c.reason);
    }
    match result {
        Ok(r) => Some(r),
        Err(p) => runtime::resume(p),
    }
}

pub(crate) unsafe extern "C" fn on_open<E: Events>(
    c: *mut c_void,
    ws: *mut sys::uws_ws_t,
    user: *mut c_void,
) {
    let (e, slot) = (c as *const E, user as *mut SlotOf<E>);
    // SAFETY: `c` is the owner registered with this socket, `user` its
    // slot, which nothing borrows yet.
    unsafe {
        (*e).opened(&(*slot).state, ws, user);
        dispatch(e, slot, "open", |s| (*e).open(s));
    }
}

pub(crate) unsafe extern "C" fn on_message<E: Events>(
    c: *mut c_void,
    _ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
    opcode: sys::uws_opcode_t,
) {
    let e = c as *const E;
    // SAFETY: owner and slot as in `on_open`; the payload is valid during
    // the call, and uWebSockets has checked that text messages are UTF-8.
    unsafe {
        let payload = bytes(data, length);
        let message = if opcode == sys::UWS_OPCODE_TEXT {
            Message::Text(std::str::from_utf8_unchecked(payload))
        } else {
            Message::Binary(payload)
        };
        dispatch(e, user.cast(), "message", |s| (*e).message(s, message));
    }
}

pub(crate) unsafe extern "C" fn on_drain<E: Events>(
    c: *mut c_void,
    _ws: *mut sys::uws_ws_t,
    user: *mut c_void,
) {
    let e = c as *const E;
    // SAFETY: as in `on_message`.
    unsafe { dispatch(e, user.cast(), "drain", |s| (*e).drain(s)) };
}

/// Ping and pong: a handler method taking the frame's payload.
///
/// # Safety
/// As for `on_message`.
unsafe fn on_control<E: Events>(
    c: *mut c_void,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
    name: &'static str,
    method: fn(&E, &mut Socket<E>, &[u8]),
) {
    let e = c as *const E;
    // SAFETY: as in `on_message`.
    unsafe {
        let payload = bytes(data, length);
        dispatch(e, user.cast(), name, |s| method(&*e, s, payload));
    }
}

pub(crate) unsafe extern "C" fn on_ping<E: Events>(
    c: *mut c_void,
    _ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
) {
    // SAFETY: the native ping callback's arguments, as `on_control` needs.
    unsafe { on_control(c, user, data, length, "ping", E::ping) }
}

pub(crate) unsafe extern "C" fn on_pong<E: Events>(
    c: *mut c_void,
    _ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    data: *const c_char,
    length: usize,
) {
    // SAFETY: the native pong callback's arguments, as `on_control` needs.
    unsafe { on_control(c, user, data, length, "pong", E::pong) }
}

pub(crate) unsafe extern "C" fn on_close<E: Events>(
    c: *mut c_void,
    _ws: *mut sys::uws_ws_t,
    user: *mut c_void,
    code: c_int,
    message: *const c_char,
    length: usize,
) {
    let (e, slot) = (c as *const E, user as *mut SlotOf<E>);
    // SAFETY: owner and slot as in `on_open`; the reason bytes are valid
    // for this call (copied when deferred). A busy socket is borrowed by a
    // handler: the close is recorded and runs when that handler returns.
    unsafe {
        let reason = bytes(message, length);
        let state = &(*slot).state;
        if state.busy.get() {
            if state.ready.get() == ReadyState::Open {
                state.ready.set(ReadyState::Closed);
            }
            (*e).forget(state.id.get());
            state.deferred_close.set(Some(Box::new(Closed {
                code,
                reason: reason.into(),
            })));
        } else {
            close_now(e, slot, code, reason);
        }
    }
}
