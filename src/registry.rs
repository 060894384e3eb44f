//! Open sockets by [`SocketId`]: how a socket is reached outside its own
//! callbacks without holding a pointer that could dangle.

use std::ffi::c_void;

use crate::sys;

/// A small copyable name for one WebSocket, valid across callbacks, timers
/// and threads. It never dangles: once the socket has closed, the server
/// resolves it to nothing and sends through it return
/// [`SendStatus::Dropped`](crate::SendStatus::Dropped), like Bun's `send`
/// on a closed socket. Ids of closed sockets are not reused for new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId {
    index: u32,
    generation: u32,
}

impl SocketId {
    /// Placeholder until the socket is registered on open.
    pub(crate) const NONE: SocketId = SocketId {
        index: u32::MAX,
        generation: u32::MAX,
    };
}

struct Entry {
    ws: *mut sys::uws_ws_t,
    slot: *mut c_void,
    generation: u32,
}

#[derive(Default)]
pub(crate) struct Registry {
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
}

impl Registry {
    pub(crate) fn insert(&mut self, ws: *mut sys::uws_ws_t, slot: *mut c_void) -> SocketId {
        self.live += 1;
        match self.free.pop() {
            Some(index) => {
                let e = &mut self.entries[index as usize];
                e.ws = ws;
                e.slot = slot;
                SocketId {
                    index,
                    generation: e.generation,
                }
            }
            None => {
                let index = u32::try_from(self.entries.len()).expect("more than 2^32 sockets");
                self.entries.push(Entry {
                    ws,
                    slot,
                    generation: 0,
                });
                SocketId {
                    index,
                    generation: 0,
                }
            }
        }
    }

    /// Forgets the socket; its id resolves to nothing from now on.
    pub(crate) fn remove(&mut self, id: SocketId) {
        if let Some(e) = self.entries.get_mut(id.index as usize) {
            if e.generation == id.generation && !e.ws.is_null() {
                e.ws = std::ptr::null_mut();
                e.slot = std::ptr::null_mut();
                // A slot whose generation wrapped around is retired for good.
                if let Some(g) = e.generation.checked_add(1) {
                    e.generation = g;
                    self.free.push(id.index);
                }
                self.live -= 1;
            }
        }
    }

    pub(crate) fn get(&self, id: SocketId) -> Option<(*mut sys::uws_ws_t, *mut c_void)> {
        let e = self.entries.get(id.index as usize)?;
        (e.generation == id.generation && !e.ws.is_null()).then_some((e.ws, e.slot))
    }

    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Ids of every open socket.
    pub(crate) fn ids(&self) -> Vec<SocketId> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.ws.is_null())
            .map(|(i, e)| SocketId {
                index: i as u32,
                generation: e.generation,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(n: usize) -> *mut sys::uws_ws_t {
        n as *mut sys::uws_ws_t
    }

    #[test]
    fn stale_ids_resolve_to_nothing_even_when_the_index_is_reused() {
        let mut r = Registry::default();
        let a = r.insert(fake(8), std::ptr::null_mut());
        assert_eq!(r.get(a).map(|x| x.0), Some(fake(8)));
        r.remove(a);
        assert!(r.get(a).is_none());
        let b = r.insert(fake(16), std::ptr::null_mut());
        assert_ne!(a, b);
        assert!(r.get(a).is_none());
        assert_eq!(r.get(b).map(|x| x.0), Some(fake(16)));
        assert_eq!(r.live(), 1);
        r.remove(a);
        assert_eq!(
            r.live(),
            1,
            "removing a stale id must not touch the new socket"
        );
        assert_eq!(r.ids(), vec![b]);
    }
}
