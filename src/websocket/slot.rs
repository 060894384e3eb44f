//! Where an open socket lives on the Rust side: one heap slot per socket,
//! made at upgrade and freed right after its close handler.
//!
//! The slot has two parts. [`SocketState`] is what the native callbacks and
//! the server or client need (the native pointer, the id, whether a handler
//! holds the socket now, a close that arrived meanwhile); it is only ever
//! reached through shared references. The other part is what a handler gets
//! as `&mut WebSocket<S, T>`: a pointer to the state and the user's data.
//! Server and client sockets use the same slots; the side `S` says what
//! the state's `core` is.
//! Because the two never overlap, a close that arrives while a handler
//! holds the `&mut` can be recorded without touching what it borrows.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr;

use crate::registry::SocketId;
use crate::sys;
use crate::websocket::{ReadyState, Side, WebSocket};

/// A close code and reason, kept until the close handler can run.
pub(crate) struct Closed {
    pub(crate) code: i32,
    pub(crate) reason: Box<[u8]>,
}

/// The part of a socket that is shared: see the module docs. `C` is what
/// every socket of its side knows (the server's `Core`, a client
/// connection's own).
pub(crate) struct SocketState<C> {
    /// The native socket; set when it opens.
    pub(crate) ws: Cell<*mut sys::uws_ws_t>,
    pub(crate) core: *const C,
    pub(crate) id: Cell<SocketId>,
    pub(crate) ready: Cell<ReadyState>,
    /// A `&mut WebSocket` to this socket is handed out now.
    pub(crate) busy: Cell<bool>,
    /// A close that arrived while busy (boxed: one word to test on the
    /// message path).
    pub(crate) deferred_close: Cell<Option<Box<Closed>>>,
}

impl<C> SocketState<C> {
    /// The native socket while it is open.
    pub(crate) fn open_ws(&self) -> Option<*mut sys::uws_ws_t> {
        (self.ready.get() == ReadyState::Open).then(|| self.ws.get())
    }
}

/// The sized twin of [`WebSocket`]: same fields, same layout, minus the
/// zero-length tail that makes the public type unsized.
#[repr(C)]
pub(crate) struct Handed<S: Side, T> {
    state: *const SocketState<S::Core>,
    data: T,
    side: PhantomData<S>,
}

/// One socket's heap slot. `state` comes first, so a pointer to the slot is
/// also a pointer to its state whatever `T` is (the registry and the native
/// side keep it type-erased).
#[repr(C)]
pub(crate) struct Slot<S: Side, T> {
    pub(crate) state: SocketState<S::Core>,
    handed: Handed<S, T>,
}

impl<S: Side, T> Slot<S, T> {
    /// A new slot holding `data`, in the `ready` state but without a native
    /// socket yet. Freed with [`free`](Self::free).
    pub(crate) fn new(core: *const S::Core, data: T, ready: ReadyState) -> *mut Slot<S, T> {
        let slot = Box::into_raw(Box::new(Slot {
            state: SocketState {
                ws: Cell::new(ptr::null_mut()),
                core,
                id: Cell::new(SocketId::NONE),
                ready: Cell::new(ready),
                busy: Cell::new(false),
                deferred_close: Cell::new(None),
            },
            handed: Handed {
                state: ptr::null(),
                data,
                side: PhantomData,
            },
        }));
        // SAFETY: just allocated; the state pointer is to the same
        // allocation, which never moves.
        unsafe { (*slot).handed.state = ptr::addr_of!((*slot).state) };
        slot
    }

    /// The socket as handlers see it.
    ///
    /// # Safety
    /// `slot` is live and nothing else borrows its handed part for `'a`
    /// (the caller marks the state busy for that long).
    pub(crate) unsafe fn socket<'a>(slot: *mut Slot<S, T>) -> &'a mut WebSocket<S, T> {
        // SAFETY: `WebSocket<S, T>` is `Handed<S, T>` plus a zero-length
        // `[()]` tail, both `repr(C)`, so the fat pointer with length 0
        // covers exactly the handed part; uniqueness is the caller's promise.
        unsafe {
            let handed = ptr::addr_of_mut!((*slot).handed);
            &mut *(ptr::slice_from_raw_parts_mut(handed.cast::<()>(), 0) as *mut WebSocket<S, T>)
        }
    }

    /// Frees the slot and drops the data.
    ///
    /// # Safety
    /// `slot` came from [`new`](Self::new), is not borrowed, and is not
    /// used again.
    pub(crate) unsafe fn free(slot: *mut Slot<S, T>) -> Box<Slot<S, T>> {
        // SAFETY: caller's promise; made by `Box::into_raw` in `new`.
        unsafe { Box::from_raw(slot) }
    }
}
