//! Where an open socket lives on the Rust side: one heap slot per socket,
//! made at upgrade and freed right after its close handler.
//!
//! The slot has two parts. [`SocketState`] is what the native callbacks and
//! the server need (the native pointer, the id, whether a handler holds the
//! socket now, a close that arrived meanwhile); it is only ever reached
//! through shared references. The other part is what a handler gets as
//! `&mut ServerWebSocket<T>`: a pointer to the state and the user's data.
//! Because the two never overlap, a close that arrives while a handler
//! holds the `&mut` can be recorded without touching what it borrows.

use std::cell::Cell;
use std::ptr;

use crate::registry::SocketId;
use crate::server::Core;
use crate::sys;
use crate::websocket::{ReadyState, ServerWebSocket};

/// A close code and reason, kept until the close handler can run.
pub(crate) struct Closed {
    pub(crate) code: i32,
    pub(crate) reason: Box<[u8]>,
}

/// The part of a socket that is shared: see the module docs.
pub(crate) struct SocketState {
    /// The native socket; set when it opens.
    pub(crate) ws: Cell<*mut sys::uws_ws_t>,
    pub(crate) core: *const Core,
    pub(crate) id: Cell<SocketId>,
    pub(crate) ready: Cell<ReadyState>,
    /// A `&mut ServerWebSocket` to this socket is handed out now.
    pub(crate) busy: Cell<bool>,
    /// A close that arrived while busy (boxed: one word to test on the
    /// message path).
    pub(crate) deferred_close: Cell<Option<Box<Closed>>>,
}

impl SocketState {
    /// The native socket while it is open.
    pub(crate) fn open_ws(&self) -> Option<*mut sys::uws_ws_t> {
        (self.ready.get() == ReadyState::Open).then(|| self.ws.get())
    }
}

/// The sized twin of [`ServerWebSocket`]: same fields, same layout, minus
/// the zero-length tail that makes the public type unsized.
#[repr(C)]
pub(crate) struct Handed<T> {
    state: *const SocketState,
    data: T,
}

/// One socket's heap slot. `state` comes first, so a pointer to the slot is
/// also a pointer to its state whatever `T` is (the registry and the native
/// side keep it type-erased).
#[repr(C)]
pub(crate) struct Slot<T> {
    pub(crate) state: SocketState,
    handed: Handed<T>,
}

impl<T> Slot<T> {
    /// A new slot holding `data`, not yet open. Freed with [`free`](Self::free).
    pub(crate) fn new(core: *const Core, data: T) -> *mut Slot<T> {
        let slot = Box::into_raw(Box::new(Slot {
            state: SocketState {
                ws: Cell::new(ptr::null_mut()),
                core,
                id: Cell::new(SocketId::NONE),
                ready: Cell::new(ReadyState::Open),
                busy: Cell::new(false),
                deferred_close: Cell::new(None),
            },
            handed: Handed {
                state: ptr::null(),
                data,
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
    pub(crate) unsafe fn socket<'a>(slot: *mut Slot<T>) -> &'a mut ServerWebSocket<T> {
        // SAFETY: `ServerWebSocket<T>` is `Handed<T>` plus a zero-length
        // `[()]` tail, both `repr(C)`, so the fat pointer with length 0
        // covers exactly the handed part; uniqueness is the caller's promise.
        unsafe {
            let handed = ptr::addr_of_mut!((*slot).handed);
            &mut *(ptr::slice_from_raw_parts_mut(handed.cast::<()>(), 0) as *mut ServerWebSocket<T>)
        }
    }

    /// Frees the slot and drops the data.
    ///
    /// # Safety
    /// `slot` came from [`new`](Self::new), is not borrowed, and is not
    /// used again.
    pub(crate) unsafe fn free(slot: *mut Slot<T>) -> Box<Slot<T>> {
        // SAFETY: caller's promise; made by `Box::into_raw` in `new`.
        unsafe { Box::from_raw(slot) }
    }
}
