//! `Server::upgrade` after `Server::defer_request` in the same `fetch`:
//! refused, and the options (with the socket data) are dropped inside the
//! gate, whatever their destructor does.
#![allow(clippy::type_complexity)]

mod common;

use common::child::{child_must_pass, is_child};
use std::cell::RefCell;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uws::*;

// Helpers

// ------------------------------------------------------------------------
// B. `Server::upgrade` after `Server::defer_request` in the same `fetch`.
//
// `upgrade` does not check that the request was deferred: it accepts the
// options and returns `true`. The request stays pending, so `fetch`'s
// epilogue drops the stored options (and the socket data in them) itself:
// after the server's callback count was decreased, and outside any
// `catch_unwind`.

/// A WebSocket handshake request.
const HANDSHAKE: &[u8] =
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// What the data's destructor does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OnDrop {
    Panic,
    DropApp,
}

/// Socket data whose destructor panics or drops the App.
struct Data {
    on_drop: OnDrop,
    drops: Arc<AtomicUsize>,
}

impl Drop for Data {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        match self.on_drop {
            OnDrop::Panic => panic!("data dropped"),
            OnDrop::DropApp => drop(LATE.with(|l| l.borrow_mut().take())),
        }
    }
}

/// Defers the request, then also upgrades it.
struct DeferThenUpgrade {
    on_drop: OnDrop,
    drops: Arc<AtomicUsize>,
    upgraded: Arc<AtomicUsize>,
    pending: Mutex<Vec<PendingRequest<Data>>>,
}

impl WebSocketHandler for DeferThenUpgrade {
    type Data = Data;
    fn fetch(&self, req: &mut Request<'_>, server: &Server<Data>) -> Response {
        let pending = server.defer_request(req);
        let data = Data {
            on_drop: self.on_drop,
            drops: self.drops.clone(),
        };
        if server.upgrade(req, UpgradeOptions::new(data)) {
            self.upgraded.fetch_add(1, Ordering::SeqCst);
        }
        // Keep the request pending (answered when the server goes).
        self.pending.lock().unwrap().extend(pending);
        Response::new("")
    }
    fn error(&self, _ws: Option<&mut ServerWebSocket<Data>>, _error: &Error) {}
}

thread_local! {
    static LATE: RefCell<Option<App<DeferThenUpgrade>>> = const { RefCell::new(None) };
}

/// Runs the scenario: a handshake to a `DeferThenUpgrade` server whose
/// data does `on_drop`. Returns (upgrade returned true, data drops).
fn defer_then_upgrade(on_drop: OnDrop) -> (usize, usize) {
    let drops = Arc::new(AtomicUsize::new(0));
    let upgraded = Arc::new(AtomicUsize::new(0));
    let (d, u) = (drops.clone(), upgraded.clone());
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let h = DeferThenUpgrade {
            on_drop,
            drops: d,
            upgraded: u,
            pending: Mutex::new(Vec::new()),
        };
        let app = serve(common::scenario_options(), h).unwrap();
        tx.send((app.port(), app.handle())).unwrap();
        LATE.with(|l| *l.borrow_mut() = Some(app));
        uws::run();
        LATE.with(|l| drop(l.borrow_mut().take()));
    });
    let (port, handle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // Both connections first: the first handshake's data may drop the App
    // (and its listening socket) at once. The second request, on another
    // connection, keeps the loop busy in the HTTP context; it may meet a
    // closed connection.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut t = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(HANDSHAKE).unwrap();
    let _ = t.write_all(HANDSHAKE);
    let _ = common::read_until_closed(&mut s, Duration::from_millis(500));
    let _ = handle.stop();
    thread.join().unwrap();
    (
        upgraded.load(Ordering::SeqCst),
        drops.load(Ordering::SeqCst),
    )
}

/// Defer, then upgrade, with data whose destructor panics.
///
/// Checks: either `upgrade` refuses a deferred request (returns false
/// and drops the data inside `fetch`), or the crate contains the panic of
/// the data's destructor as it does everywhere else.
/// Before the fix: `upgrade` returns true, `fetch` returns, and the crate drops the
/// data outside `catch_unwind` in the `extern "C"` request callback: the
/// process aborts.
#[test]
fn defer_then_upgrade_drops_data_that_panics_inside_the_gate() {
    const NAME: &str = "defer_then_upgrade_drops_data_that_panics_inside_the_gate";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(30), None);
    }
    let (_upgraded, drops) = defer_then_upgrade(OnDrop::Panic);
    assert_eq!(drops, 2);
}

/// Defer, then upgrade, with data whose destructor drops the App (kept in
/// a thread-local of the server's thread).
///
/// Checks: the App is freed once none of its callbacks runs (as for a
/// drop inside any handler); nothing reads freed memory.
/// Before the fix: the data is dropped after `fetch` counted itself out, so the App
/// is freed at once, inside uWebSockets' request handler, which then goes
/// on in the freed HTTP context (valgrind: invalid reads/writes; natively
/// an abort, a crash, or nothing visible, depending on the allocator).
#[test]
fn defer_then_upgrade_with_data_that_drops_the_app_frees_it_later() {
    const NAME: &str = "defer_then_upgrade_with_data_that_drops_the_app_frees_it_later";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(120), None);
    }
    let (_upgraded, drops) = defer_then_upgrade(OnDrop::DropApp);
    assert!(drops >= 1);
}

/// What `upgrade` returns for a request that was deferred.
///
/// Checks: `false` (the request was taken out of `fetch`; `defer_request`
/// refuses a request that was upgraded, and the converse should hold).
/// Before the fix: `true`, and no socket ever opens for it (the data is dropped
/// when `fetch` returns).
#[test]
fn upgrade_after_defer_is_refused() {
    struct H(
        Arc<AtomicUsize>,
        Arc<AtomicUsize>,
        Mutex<Vec<PendingRequest<()>>>,
    );
    impl WebSocketHandler for H {
        type Data = ();
        fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
            let p = server.defer_request(req);
            if server.upgrade(req, UpgradeOptions::new(())) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            self.2.lock().unwrap().extend(p);
            Response::new("")
        }
        fn open(&self, _ws: &mut ServerWebSocket<()>) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (up, opens) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (u, o) = (up.clone(), opens.clone());
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let app = serve(common::scenario_options(), H(u, o, Mutex::new(Vec::new()))).unwrap();
        tx.send((app.port(), app.handle())).unwrap();
        app.run();
    });
    let (port, handle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(HANDSHAKE).unwrap();
    let _ = common::read_until_closed(&mut s, Duration::from_millis(300));
    handle.stop().unwrap();
    thread.join().unwrap();
    assert_eq!(
        (up.load(Ordering::SeqCst), opens.load(Ordering::SeqCst)),
        (0, 0),
        "(upgrade returned true, sockets opened)"
    );
}
