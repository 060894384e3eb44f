//! Open sockets by [`SocketId`]: how a socket is reached outside its own
//! callbacks without holding a pointer that could dangle.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};

/// A small copyable name for one WebSocket, valid across callbacks, timers
/// and threads. It never dangles: once the socket has closed, the server
/// resolves it to nothing and sends through it return
/// [`SendStatus::Dropped`](crate::SendStatus::Dropped), like Bun's `send`
/// on a closed socket. Ids of closed sockets are not reused for new ones.
///
/// An id names its server too: used with another server (even one with the
/// same data type) it resolves to nothing.
///
/// ```
/// use uws::*;
///
/// struct Room;
/// impl WebSocketHandler for Room {
///     type Data = ();
///     fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
///         server.upgrade(req, UpgradeOptions::new(()));
///         Response::new("")
///     }
///     fn open(&self, ws: &mut ServerWebSocket<()>) {
///         let id: SocketId = ws.id();
///         // Later, from a timer or another socket's handler:
///         //   ws.server().send(id, "hello");
///         // and from another thread, through a ServerHandle:
///         //   handle.send(id, "hello");
///         let _ = id;
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId {
    server: u32,
    index: u32,
    generation: u32,
}

impl SocketId {
    /// The number of the server (thread of a server) that made it.
    pub(crate) fn server(&self) -> u32 {
        self.server
    }

    /// Placeholder until the socket is registered on open.
    pub(crate) const NONE: SocketId = SocketId {
        server: u32::MAX,
        index: u32::MAX,
        generation: u32::MAX,
    };
}

struct Entry {
    /// The socket's slot (type-erased; its state comes first), null when free.
    slot: *mut c_void,
    generation: u32,
}

pub(crate) struct Registry {
    server: u32,
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
}

impl Registry {
    /// An empty registry of a server with a process-wide unique number.
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Registry {
            server: NEXT.fetch_add(1, Ordering::Relaxed),
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    /// The number of the server this registry belongs to.
    pub(crate) fn server(&self) -> u32 {
        self.server
    }

    pub(crate) fn insert(&mut self, slot: *mut c_void) -> SocketId {
        self.live += 1;
        let server = self.server;
        match self.free.pop() {
            Some(index) => {
                let e = &mut self.entries[index as usize];
                e.slot = slot;
                SocketId {
                    server,
                    index,
                    generation: e.generation,
                }
            }
            None => {
                let index = u32::try_from(self.entries.len()).expect("more than 2^32 sockets");
                self.entries.push(Entry {
                    slot,
                    generation: 0,
                });
                SocketId {
                    server,
                    index,
                    generation: 0,
                }
            }
        }
    }

    fn entry(&self, id: SocketId) -> Option<&Entry> {
        let e = self.entries.get(id.index as usize)?;
        (id.server == self.server && e.generation == id.generation && !e.slot.is_null())
            .then_some(e)
    }

    /// Forgets the socket; its id resolves to nothing from now on.
    pub(crate) fn remove(&mut self, id: SocketId) {
        if self.entry(id).is_none() {
            return;
        }
        let e = &mut self.entries[id.index as usize];
        e.slot = std::ptr::null_mut();
        // A slot whose generation wrapped around is retired for good.
        if let Some(g) = e.generation.checked_add(1) {
            e.generation = g;
            self.free.push(id.index);
        }
        self.live -= 1;
    }

    /// The slot of an open socket.
    pub(crate) fn get(&self, id: SocketId) -> Option<*mut c_void> {
        self.entry(id).map(|e| e.slot)
    }

    /// The process-wide number of this registry (its server's).
    pub(crate) fn number(&self) -> u32 {
        self.server
    }

    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Ids of every open socket.
    pub(crate) fn ids(&self) -> Vec<SocketId> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.slot.is_null())
            .map(|(i, e)| SocketId {
                server: self.server,
                index: i as u32,
                generation: e.generation,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(n: usize) -> *mut c_void {
        n as *mut c_void
    }

    #[test]
    fn stale_ids_resolve_to_nothing_even_when_the_index_is_reused() {
        let mut r = Registry::new();
        let a = r.insert(fake(8));
        assert_eq!(r.get(a), Some(fake(8)));
        r.remove(a);
        assert!(r.get(a).is_none());
        let b = r.insert(fake(16));
        assert_ne!(a, b);
        assert!(r.get(a).is_none());
        assert_eq!(r.get(b), Some(fake(16)));
        assert_eq!(r.live(), 1);
        r.remove(a);
        assert_eq!(
            r.live(),
            1,
            "removing a stale id must not touch the new socket"
        );
        assert_eq!(r.ids(), vec![b]);
    }

    #[test]
    fn ids_of_another_server_resolve_to_nothing() {
        let mut one = Registry::new();
        let mut two = Registry::new();
        let a = one.insert(fake(8));
        let b = two.insert(fake(16));
        assert_eq!((a.index, a.generation), (b.index, b.generation));
        assert!(two.get(a).is_none());
        assert!(one.get(b).is_none());
        two.remove(a);
        assert_eq!(two.get(b), Some(fake(16)));
    }
}
