//! Reaching a client connection later, from its own thread or others:
//! [`ClientHandle`].

use std::marker::PhantomData;
use std::sync::Arc;

use crate::client::hub::Hub;
use crate::client::ClientCore;
use crate::client::ClientWebSocket;
use crate::error::Error;
use crate::registry::SocketId;
use crate::server::Shared;
use crate::websocket::dispatch::with_open;
use crate::websocket::slot::Slot;
use crate::websocket::{
    check_close_code, send_on, truncate_reason, AsMessage, ClientSide, OwnedMessage,
};

/// A `Send + Sync` handle to one client connection: what
/// [`connect`](crate::connect) returns, and
/// [`ClientWebSocket::handle`](crate::ClientWebSocket::handle) gives.
///
/// Sends, closes and [`defer`](Self::defer)red closures are queued to the
/// connection's loop (and run there, in order, woken at once); they fail
/// with [`Error::NotRunning`] once the connection's thread is gone, and a
/// send to a connection that is not open (yet, or any more) is dropped.
/// On the connection's own thread, [`with_socket`](Self::with_socket)
/// reaches the socket directly.
///
/// ```no_run
/// use uws::*;
///
/// struct Printer;
/// impl ClientHandler for Printer {
///     type Data = ();
///     fn message(&self, _ws: &mut ClientWebSocket<()>, message: Message<'_>) {
///         println!("{message:?}");
///     }
/// }
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// std::thread::spawn(move || {
///     let handle = connect("ws://127.0.0.1:3000/", ConnectOptions::default(), Printer, ()).unwrap();
///     tx.send(handle).unwrap();
///     run();
/// });
/// let handle: ClientHandle<()> = rx.recv().unwrap();
/// // From this thread: queued, sent once the connection is open.
/// handle.send("hello")?;
/// handle.close(1000, "bye")?;
/// # Ok::<(), uws::Error>(())
/// ```
pub struct ClientHandle<T> {
    shared: Arc<Shared<Hub>>,
    id: SocketId,
    _data: PhantomData<fn(T)>,
}

impl<T> Clone for ClientHandle<T> {
    fn clone(&self) -> Self {
        ClientHandle::new(self.shared.clone(), self.id)
    }
}

impl<T> std::fmt::Debug for ClientHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Runs `f` on the connection `id` of `hub` if it is open and not busy.
///
/// The registry holds connections of every data type: only a handle made
/// for a connection of data `T` may call this with its id (ids are not
/// reused for another connection).
fn with_socket_in<T, R>(
    hub: &Hub,
    id: SocketId,
    f: impl FnOnce(&mut ClientWebSocket<T>) -> R,
) -> Option<R> {
    let slot = hub.slot(id)? as *mut Slot<ClientSide, T>;
    // SAFETY: registered slots are live; the handle's type says this one
    // holds a `T`; a close that `f` causes runs the close handler after it
    // through the core's hook, which frees the slot.
    unsafe {
        let core = (*slot).state.core;
        with_open(slot, f, |code, reason| {
            ClientCore::close_deferred(core, slot.cast(), code, reason)
        })
    }
}

impl<T> ClientHandle<T> {
    pub(crate) fn new(shared: Arc<Shared<Hub>>, id: SocketId) -> Self {
        ClientHandle {
            shared,
            id,
            _data: PhantomData,
        }
    }

    /// The connection's id ([`ClientWebSocket::id`](crate::WebSocket::id)).
    pub fn id(&self) -> SocketId {
        self.id
    }
}

impl<T: 'static> ClientHandle<T> {
    /// Runs `f` on the connection's thread, soon, with the socket: `None`
    /// when it is not open (still connecting, closing or closed) or a
    /// handler holds it right now. A panic in `f` is caught there and
    /// printed to stderr (it has no handler to go to).
    pub fn defer(
        &self,
        f: impl FnOnce(Option<&mut ClientWebSocket<T>>) + Send + 'static,
    ) -> Result<(), Error> {
        let id = self.id;
        self.shared.queue(Box::new(move |hub: &Hub| {
            let mut f = Some(f);
            let ran = with_socket_in(hub, id, |ws| (f.take().expect("runs once"))(Some(ws)));
            if ran.is_none() {
                if let Some(f) = f {
                    f(None);
                }
            }
        }))
    }

    /// Bun's `ws.send(data)` from anywhere (see [`WebSocket::send`](crate::WebSocket::send)):
    /// queued; dropped unless the connection is open when it runs. Takes
    /// anything [`AsMessage`]: an owned `String` or `Vec<u8>` is moved
    /// to the connection's thread, a borrowed one copied once.
    pub fn send(&self, message: impl AsMessage) -> Result<(), Error> {
        self.queue_send(message.into_owned(), false)
    }

    /// As [`send`](Self::send), compressed when the connection negotiated
    /// per-message deflate (Bun's `ws.send(data, true)`).
    pub fn send_compressed(&self, message: impl AsMessage) -> Result<(), Error> {
        self.queue_send(message.into_owned(), true)
    }

    fn queue_send(&self, message: OwnedMessage, compress: bool) -> Result<(), Error> {
        let id = self.id;
        self.shared.queue(Box::new(move |hub: &Hub| {
            if let Some(state) = hub.connection(id) {
                // SAFETY: registered, so live for this call.
                send_on::<ClientSide>(unsafe { &*state }, message.as_message(), compress);
            }
        }))
    }

    /// Bun's `ws.close(code, reason)` from anywhere (see
    /// [`WebSocket::close`](crate::WebSocket::close)). A connection that
    /// has not opened yet is abandoned: its `error` gets
    /// [`Error::Connect`] (`ConnectionAborted`).
    pub fn close(&self, code: u16, reason: &str) -> Result<(), Error> {
        check_close_code(code)?;
        let (id, reason) = (self.id, truncate_reason(reason).to_owned());
        self.shared.queue(Box::new(move |hub: &Hub| {
            hub.shut(id, false, code, &reason)
        }))
    }

    /// Bun's `ws.terminate()` from anywhere (see
    /// [`WebSocket::terminate`](crate::WebSocket::terminate)); abandons a
    /// connection that has not opened, as [`close`](Self::close) does.
    pub fn terminate(&self) -> Result<(), Error> {
        let id = self.id;
        self.shared
            .queue(Box::new(move |hub: &Hub| hub.shut(id, true, 1006, "")))
    }

    /// Runs `f` on the socket now, when called on the connection's own
    /// thread while it is open and no handler holds it (a handler of
    /// another socket may call this). `None` otherwise: use
    /// [`defer`](Self::defer) from other threads.
    ///
    /// A close that `f` causes runs the close handler when `f` returns,
    /// also when `f` panics (the panic then goes on to the caller).
    pub fn with_socket<R>(&self, f: impl FnOnce(&mut ClientWebSocket<T>) -> R) -> Option<R> {
        let hub = Hub::existing()?;
        // SAFETY: this thread's hub, live until the thread exits.
        let hub = unsafe { &*hub };
        if !Arc::ptr_eq(&hub.shared, &self.shared) {
            return None;
        }
        with_socket_in(hub, self.id, f)
    }

    /// Sends now on the connection's own thread (see
    /// [`with_socket`](Self::with_socket)); [`Dropped`](crate::SendStatus::Dropped)
    /// on other threads or when it is not open.
    pub fn send_now(&self, message: impl AsMessage) -> crate::SendStatus {
        self.with_socket(|ws| ws.send(message))
            .unwrap_or(crate::SendStatus::Dropped)
    }

    /// As [`send_now`](Self::send_now), compressed when the connection
    /// negotiated per-message deflate.
    pub fn send_now_compressed(&self, message: impl AsMessage) -> crate::SendStatus {
        self.with_socket(|ws| ws.send_compressed(message))
            .unwrap_or(crate::SendStatus::Dropped)
    }
}
