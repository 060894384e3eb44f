//! User code from every place the crate calls it (handlers, closures,
//! jobs, timers, body callbacks and wakers, producers, client handlers,
//! `Drop` of user values) trying to reach an abort, a crash, a hang, a
//! second `&mut` or a use after free. Each test asserts the safe outcome.
//! Scenarios that can end the process run in a child process.
//!
//! The first section found defects (each test's comment says what it was);
//! the second found nothing and stays as regression tests.
#![allow(clippy::type_complexity)]

mod common;

use common::child::{child_must_pass, is_child};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::Write;
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use uws::*;

/// Runs the body of test `name` in a child process, which must exit 0.
macro_rules! in_child {
    ($name:literal, $secs:expr) => {
        if !is_child($name) {
            child_must_pass($name, Duration::from_secs($secs), None);
            return;
        }
    };
}

/// Counts drops of socket data and handler calls (per thread: each
/// scenario runs in a child).
mod counts {
    use std::cell::Cell;
    thread_local! {
        pub static DROPS: Cell<usize> = const { Cell::new(0) };
        pub static CLOSES: Cell<usize> = const { Cell::new(0) };
        pub static CLIENT_CLOSES: Cell<usize> = const { Cell::new(0) };
        pub static ERRORS: Cell<usize> = const { Cell::new(0) };
    }
    pub fn bump(c: &'static std::thread::LocalKey<Cell<usize>>) {
        c.with(|c| c.set(c.get() + 1));
    }
    pub fn get(c: &'static std::thread::LocalKey<Cell<usize>>) -> usize {
        c.with(Cell::get)
    }
}

/// Socket data that counts its drop.
pub struct Counted;
impl Drop for Counted {
    fn drop(&mut self) {
        counts::bump(&counts::DROPS);
    }
}

/// A server on a thread of its own whose App lives in the thread-local of
/// module `$m` (`$m::APP`), run by `uws::run`. Returns its port and thread.
macro_rules! spawn_in_thread_local {
    ($m:ident, $handler:expr) => {{
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let app = serve(common::scenario_options(), $handler).unwrap();
            tx.send(app.port()).unwrap();
            $m::APP.with(|a| *a.borrow_mut() = Some(app));
            uws::run();
            let app = $m::APP.with(|a| a.borrow_mut().take());
            drop(app);
        });
        let port = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        (port, thread)
    }};
}

// ========================================================================
// These found defects, now fixed (each test's comment says what it was).
// ========================================================================

// ------------------------------------------------------------------------
// F1. The server's registry stays borrowed while an owned client's close
// handler runs (`stop_now` -> `close_all` -> `stop_owned(self.registry
// .borrow().number(), true)`: the `Ref` temporary lives for the whole
// call). A client close handler that closes a server socket makes that
// socket's close callback `forget` it with `registry.borrow_mut()`:
// BorrowMutError inside an `extern "C"` callback, an abort.

mod f1 {
    use super::*;

    pub struct Srv;

    thread_local! {
        pub static APP: RefCell<Option<App<Srv>>> = const { RefCell::new(None) };
        pub static SERVER_IDS: RefCell<Vec<SocketId>> = const { RefCell::new(Vec::new()) };
        pub static CLOSES: Cell<usize> = const { Cell::new(0) };
    }

    impl WebSocketHandler for Srv {
        type Data = ();
        fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
            server.upgrade(req, UpgradeOptions::new(()));
            Response::new("")
        }
        fn open(&self, ws: &mut ServerWebSocket<()>) {
            SERVER_IDS.with(|s| s.borrow_mut().push(ws.id()));
        }
        fn message(&self, ws: &mut ServerWebSocket<()>, _m: Message<'_>) {
            ws.server().stop_now();
        }
        fn close(&self, _ws: &mut ServerWebSocket<()>, _code: u16, _reason: &str) {
            CLOSES.with(|c| c.set(c.get() + 1));
        }
    }

    pub struct Cli;
    impl ClientHandler for Cli {
        type Data = ();
        fn open(&self, ws: &mut ClientWebSocket<()>) {
            ws.send("go");
        }
        fn close(&self, _ws: &mut ClientWebSocket<()>, _code: u16, _reason: &str) {
            // Close the server's side of this connection by id, from the
            // App kept in a thread-local.
            APP.with(|a| {
                if let Ok(a) = a.try_borrow() {
                    if let Some(app) = a.as_ref() {
                        for id in SERVER_IDS.with(|s| s.borrow().clone()) {
                            let _ = app.close(id, 1000, "from the client's close");
                        }
                    }
                }
            });
        }
    }
}

#[test]
fn an_owned_client_close_handler_that_closes_a_server_socket_during_stop_now() {
    in_child!(
        "an_owned_client_close_handler_that_closes_a_server_socket_during_stop_now",
        30
    );
    use f1::*;
    let app = serve(common::scenario_options(), Srv).unwrap();
    let url = format!("ws://127.0.0.1:{}/", app.port());
    app.connect(&url, ConnectOptions::default(), Cli, ())
        .unwrap();
    APP.with(|a| *a.borrow_mut() = Some(app));
    uws::run();
    APP.with(|a| drop(a.borrow_mut().take()));
    assert_eq!(CLOSES.with(Cell::get), 1, "the server socket closed once");
}

// ------------------------------------------------------------------------
// F1b. The same borrow, reached through an owned client that has not
// opened yet: `stop_owned` abandons it at once (`ClientCore::shut` ->
// `abort` -> `fail`), whatever the clients' gate says, and its `error`
// handler runs under the borrow. Closing a server socket from there
// aborts the process the same way.

mod f1b {
    use super::*;

    pub struct Srv;
    thread_local! {
        pub static APP: RefCell<Option<App<Srv>>> = const { RefCell::new(None) };
        pub static SERVER_IDS: RefCell<Vec<SocketId>> = const { RefCell::new(Vec::new()) };
        pub static ERRORS: Cell<usize> = const { Cell::new(0) };
    }

    impl WebSocketHandler for Srv {
        type Data = Counted;
        fn fetch(&self, req: &mut Request<'_>, server: &Server<Counted>) -> Response {
            server.upgrade(req, UpgradeOptions::new(Counted));
            Response::new("")
        }
        fn open(&self, ws: &mut ServerWebSocket<Counted>) {
            SERVER_IDS.with(|s| s.borrow_mut().push(ws.id()));
        }
        fn message(&self, ws: &mut ServerWebSocket<Counted>, _m: Message<'_>) {
            ws.server().stop_now();
        }
        fn close(&self, _ws: &mut ServerWebSocket<Counted>, _c: u16, _r: &str) {
            counts::bump(&counts::CLOSES);
        }
    }

    /// Opens and asks the server to stop.
    pub struct Opens;
    impl ClientHandler for Opens {
        type Data = ();
        fn open(&self, ws: &mut ClientWebSocket<()>) {
            ws.send("go");
        }
    }

    /// Never gets an answer; its error closes the server's sockets.
    pub struct Waits;
    impl ClientHandler for Waits {
        type Data = ();
        fn error(&self, _ws: Option<&mut ClientWebSocket<()>>, _e: &Error) {
            ERRORS.with(|e| e.set(e.get() + 1));
            APP.with(|a| {
                if let Ok(a) = a.try_borrow() {
                    if let Some(app) = a.as_ref() {
                        for id in SERVER_IDS.with(|s| s.borrow().clone()) {
                            let _ = app.close(id, 1000, "from a client's error");
                        }
                    }
                }
            });
        }
    }
}

#[test]
fn an_owned_client_error_handler_that_closes_a_server_socket_during_stop_now() {
    in_child!(
        "an_owned_client_error_handler_that_closes_a_server_socket_during_stop_now",
        30
    );
    use f1b::*;
    // Takes the connection (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("ws://127.0.0.1:{}/", silent.local_addr().unwrap().port());
    let app = serve(common::scenario_options(), Srv).unwrap();
    let url = format!("ws://127.0.0.1:{}/", app.port());
    app.connect(&silent_url, ConnectOptions::default(), Waits, ())
        .unwrap();
    app.connect(&url, ConnectOptions::default(), Opens, ())
        .unwrap();
    APP.with(|a| *a.borrow_mut() = Some(app));
    uws::run();
    APP.with(|a| drop(a.borrow_mut().take()));
    drop(silent);
    assert_eq!(ERRORS.with(Cell::get), 1);
    assert_eq!(counts::get(&counts::CLOSES), 1);
    assert_eq!(counts::get(&counts::DROPS), 1);
}

// ------------------------------------------------------------------------
// F2. `uws_loop_get` asks the kernel for a loop's descriptors (and gives
// them back) before uWebSockets makes the loop, which then takes them
// again: another thread can take a descriptor in between, and the loop is
// made without it (the write through NULL that the probe was meant to
// prevent). A thread that keeps taking and giving back one descriptor
// while new threads serve at the limit shows it.

struct Nothing;
impl WebSocketHandler for Nothing {
    type Data = ();
    fn fetch(&self, _req: &mut Request<'_>, _server: &Server<()>) -> Response {
        Response::new("")
    }
}

#[test]
fn serve_on_new_threads_at_the_descriptor_limit_while_another_thread_takes_one() {
    const NAME: &str =
        "serve_on_new_threads_at_the_descriptor_limit_while_another_thread_takes_one";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(120), Some(256));
    }
    let mut files = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        files.push(f);
    }
    // Exactly four free: what the probe asks for.
    files.truncate(files.len() - 4);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let f = std::fs::File::open("/dev/null");
                for _ in 0..50 {
                    std::hint::spin_loop();
                }
                drop(f);
                for _ in 0..50 {
                    std::hint::spin_loop();
                }
            }
        })
    };
    let mut outcomes = [0usize; 2];
    for _ in 0..2000 {
        let r = std::thread::spawn(|| serve(common::scenario_options(), Nothing).map(drop))
            .join()
            .expect("serve panicked");
        outcomes[usize::from(r.is_ok())] += 1;
    }
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
    drop(files);
    // Every attempt ended with a result (an error, at the limit).
    assert_eq!(outcomes.iter().sum::<usize>(), 2000, "{outcomes:?}");
}

// ------------------------------------------------------------------------
// F3. A timer refused for want of a descriptor hands back an id whose
// slot goes back to the free list with its generation unchanged: the next
// timer takes the same slot and generation, so the refused id names it,
// and clearing the refused id clears the other timer.

struct Errors(Mutex<Vec<String>>);
impl WebSocketHandler for Errors {
    type Data = ();
    fn fetch(&self, _req: &mut Request<'_>, _server: &Server<()>) -> Response {
        Response::new("")
    }
    fn error(&self, _ws: Option<&mut ServerWebSocket<()>>, error: &Error) {
        self.0.lock().unwrap().push(error.to_string());
    }
}

#[test]
fn a_refused_timer_id_does_not_name_the_next_timer() {
    const NAME: &str = "a_refused_timer_id_does_not_name_the_next_timer";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(60), Some(256));
    }
    let app = serve(common::scenario_options(), Errors(Mutex::new(Vec::new()))).unwrap();
    let mut files = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        files.push(f);
    }
    let refused = app.set_timeout(Duration::from_millis(1), |_| {});
    drop(files);
    assert_eq!(app.handler().0.lock().unwrap().len(), 1, "refused and told");
    let fired = Rc::new(Cell::new(false));
    let set = {
        let fired = fired.clone();
        app.set_timeout(Duration::from_millis(1), move |s| {
            fired.set(true);
            s.stop();
        })
    };
    assert_ne!(refused, set, "a refused timer's id names nothing");
    assert!(!app.clear_timer(refused), "a refused timer was never set");
    // The timer that was made still fires (and stops the server).
    app.set_timeout(Duration::from_secs(5), |s| s.stop());
    uws::run();
    assert!(
        fired.get(),
        "the second timer was cleared through the refused id"
    );
}

// ------------------------------------------------------------------------
// F4. `serve_threaded` whose other thread fails to start (here: no
// descriptor for its loop) drops the first thread's App, whose stop goes
// through `Cluster::stop_all`, which walks the peers: they are only set
// on success, so nothing stops this thread and its keepalive timer (24
// days, keeps the loop running) is never closed. The next `uws::run` on
// the thread does not return.

#[test]
fn a_failed_serve_threaded_leaves_nothing_on_the_loop() {
    const NAME: &str = "a_failed_serve_threaded_leaves_nothing_on_the_loop";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(30), Some(256));
    }
    // This thread's loop exists from now on.
    drop(serve(common::scenario_options(), Nothing).unwrap());
    let mut files = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        files.push(f);
    }
    // Two free: the listening socket and the first thread's keepalive
    // timer; the second thread cannot make its loop.
    files.truncate(files.len() - 2);
    let r = serve_threaded(
        ServeOptions {
            threads: 2,
            ..common::scenario_options()
        },
        Nothing,
    );
    drop(files);
    assert!(r.is_err(), "the second thread could not start");
    drop(r);
    // Nothing of the failed server is left: run returns at once.
    uws::run();
}

// ========================================================================
// PASSING: attacks that found nothing; kept as regression tests.
// ========================================================================

// ------------------------------------------------------------------------
// P1. `Server::with_socket` runs its closure outside the server's gate
// (runtime::catch, not Gate::call). From a client handler (the server's
// gate at 0), the closure corks the socket and stops the server at once:
// `close_all` runs immediately and closes the socket under the closure's
// `&mut` and inside uWebSockets' cork of it.

mod p1 {
    use super::*;

    pub struct Srv;
    thread_local! {
        pub static APP: RefCell<Option<App<Srv>>> = const { RefCell::new(None) };
        pub static SID: Cell<Option<SocketId>> = const { Cell::new(None) };
        pub static AFTER: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    impl WebSocketHandler for Srv {
        type Data = Counted;
        fn fetch(&self, req: &mut Request<'_>, server: &Server<Counted>) -> Response {
            server.upgrade(req, UpgradeOptions::new(Counted));
            Response::new("")
        }
        fn open(&self, ws: &mut ServerWebSocket<Counted>) {
            SID.with(|s| s.set(Some(ws.id())));
            ws.send("hello");
        }
        fn close(&self, _ws: &mut ServerWebSocket<Counted>, _c: u16, _r: &str) {
            counts::bump(&counts::CLOSES);
        }
    }

    pub struct Cli;
    impl ClientHandler for Cli {
        type Data = ();
        fn message(&self, _ws: &mut ClientWebSocket<()>, _m: Message<'_>) {
            let id = SID.with(Cell::get).unwrap();
            APP.with(|a| {
                let a = a.borrow();
                let app = a.as_ref().unwrap();
                let ran = app.with_socket(id, |ws| {
                    ws.cork(|ws| {
                        ws.send("a");
                        ws.server().stop_now();
                        let log = format!(
                            "{:?} {} {:?}",
                            ws.send("b"),
                            ws.subscribe("t"),
                            ws.ready_state()
                        );
                        ws.terminate();
                        AFTER.with(|l| l.borrow_mut().push(log));
                    })
                });
                assert!(ran.is_some());
            });
        }
        fn close(&self, _ws: &mut ClientWebSocket<()>, _c: u16, _r: &str) {
            counts::bump(&counts::CLIENT_CLOSES);
        }
    }
}

#[test]
fn with_socket_from_a_client_handler_stops_the_server_now_inside_cork() {
    in_child!(
        "with_socket_from_a_client_handler_stops_the_server_now_inside_cork",
        30
    );
    use p1::*;
    let app = serve(common::scenario_options(), Srv).unwrap();
    let url = format!("ws://127.0.0.1:{}/", app.port());
    app.connect(&url, ConnectOptions::default(), Cli, ())
        .unwrap();
    APP.with(|a| *a.borrow_mut() = Some(app));
    uws::run();
    APP.with(|a| drop(a.borrow_mut().take()));
    assert_eq!(counts::get(&counts::CLOSES), 1);
    assert_eq!(counts::get(&counts::DROPS), 1);
    assert_eq!(counts::get(&counts::CLIENT_CLOSES), 1);
    let after = AFTER.with(|l| l.borrow().clone());
    assert_eq!(after.len(), 1);
    assert!(after[0].starts_with("Dropped false"), "{after:?}");
}

// ------------------------------------------------------------------------
// P2. An owned client's data whose `Drop` drops the App that owns the
// client (from a thread-local), then panics. The App is freed at once
// (its own gate is at 0: this is the client's gate), inside the client's
// close callback, with the client's slot being freed.

mod p2 {
    use super::*;

    pub struct Srv;
    thread_local! {
        pub static APP: RefCell<Option<App<Srv>>> = const { RefCell::new(None) };
    }

    impl WebSocketHandler for Srv {
        type Data = Counted;
        fn fetch(&self, req: &mut Request<'_>, server: &Server<Counted>) -> Response {
            server.upgrade(req, UpgradeOptions::new(Counted));
            Response::new("")
        }
        fn close(&self, _ws: &mut ServerWebSocket<Counted>, _c: u16, _r: &str) {
            counts::bump(&counts::CLOSES);
        }
    }

    pub struct DropsOwner;
    impl Drop for DropsOwner {
        fn drop(&mut self) {
            let app = APP.with(|a| a.borrow_mut().take());
            drop(app);
            panic!("client data panics after dropping its owner");
        }
    }

    pub struct Cli;
    impl ClientHandler for Cli {
        type Data = DropsOwner;
        fn open(&self, ws: &mut ClientWebSocket<DropsOwner>) {
            ws.close(1000, "bye").unwrap();
        }
        fn close(&self, _ws: &mut ClientWebSocket<DropsOwner>, _c: u16, _r: &str) {
            counts::bump(&counts::CLIENT_CLOSES);
        }
        fn error(&self, _ws: Option<&mut ClientWebSocket<DropsOwner>>, _e: &Error) {
            counts::bump(&counts::ERRORS);
        }
    }
}

#[test]
fn owned_client_data_whose_drop_drops_its_owner_and_panics() {
    in_child!(
        "owned_client_data_whose_drop_drops_its_owner_and_panics",
        30
    );
    use p2::*;
    let app = serve(common::scenario_options(), Srv).unwrap();
    let url = format!("ws://127.0.0.1:{}/", app.port());
    app.connect(&url, ConnectOptions::default(), Cli, DropsOwner)
        .unwrap();
    APP.with(|a| *a.borrow_mut() = Some(app));
    uws::run();
    assert!(
        APP.with(|a| a.borrow().is_none()),
        "the data dropped the App"
    );
    assert_eq!(counts::get(&counts::CLIENT_CLOSES), 1);
    assert_eq!(counts::get(&counts::CLOSES), 1);
    assert_eq!(counts::get(&counts::DROPS), 1);
}

// ------------------------------------------------------------------------
// P3. `ClientHandle::with_socket` from a server handler (the clients' gate
// at 0): the closure terminates the client, whose close (deferred while
// the closure holds it) runs after it; that close handler drops the App
// whose handler is running and panics.

mod p3 {
    use super::*;

    pub struct Srv;
    thread_local! {
        pub static APP: RefCell<Option<App<Srv>>> = const { RefCell::new(None) };
        pub static CLIENT: RefCell<Option<ClientHandle<()>>> = const { RefCell::new(None) };
        pub static AFTER: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    impl WebSocketHandler for Srv {
        type Data = Counted;
        fn fetch(&self, req: &mut Request<'_>, server: &Server<Counted>) -> Response {
            server.upgrade(req, UpgradeOptions::new(Counted));
            Response::new("")
        }
        fn message(&self, ws: &mut ServerWebSocket<Counted>, m: Message<'_>) {
            let ran = CLIENT.with(|c| c.borrow().as_ref().unwrap().with_socket(|c| c.terminate()));
            // The App is gone (doomed, so stopped: sends are dropped) but
            // this handler's socket and message stay valid until it returns.
            let log = format!("{ran:?} {:?} {:?}", m, ws.send("late"));
            AFTER.with(|l| l.borrow_mut().push(log));
        }
        fn close(&self, _ws: &mut ServerWebSocket<Counted>, _c: u16, _r: &str) {
            counts::bump(&counts::CLOSES);
        }
    }

    pub struct Cli;
    impl ClientHandler for Cli {
        type Data = ();
        fn open(&self, ws: &mut ClientWebSocket<()>) {
            ws.send("x");
        }
        fn close(&self, _ws: &mut ClientWebSocket<()>, _c: u16, _r: &str) {
            counts::bump(&counts::CLIENT_CLOSES);
            let app = APP.with(|a| a.borrow_mut().take());
            drop(app);
            panic!("client close handler panics after dropping the App");
        }
    }
}

#[test]
fn client_with_socket_from_a_server_handler_whose_close_drops_the_app() {
    in_child!(
        "client_with_socket_from_a_server_handler_whose_close_drops_the_app",
        30
    );
    use p3::*;
    let app = serve(common::scenario_options(), Srv).unwrap();
    let url = format!("ws://127.0.0.1:{}/", app.port());
    let h = uws::connect(&url, ConnectOptions::default(), Cli, ()).unwrap();
    CLIENT.with(|c| *c.borrow_mut() = Some(h));
    APP.with(|a| *a.borrow_mut() = Some(app));
    uws::run();
    assert!(APP.with(|a| a.borrow().is_none()));
    assert_eq!(counts::get(&counts::CLIENT_CLOSES), 1);
    assert_eq!(counts::get(&counts::CLOSES), 1);
    assert_eq!(counts::get(&counts::DROPS), 1);
    let after = AFTER.with(|l| l.borrow().clone());
    assert_eq!(after, vec!["Some(()) Text(\"x\") Dropped".to_string()]);
}

// ------------------------------------------------------------------------
// P4. A body waker whose destructor (not `wake`) drops the App and panics.
// The loop holds the last clone of the waker; the client goes away, the
// abort wakes it (Waker::wake consumes it) and the destructor runs.

mod p4 {
    use super::*;

    pub struct Defers(pub Mutex<std::sync::mpsc::Sender<PendingRequest<()>>>);
    impl WebSocketHandler for Defers {
        type Data = ();
        fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
            if let Some(p) = server.defer_request(req) {
                let _ = self.0.lock().unwrap().send(p);
            }
            Response::new("")
        }
    }
    thread_local! {
        pub static APP: RefCell<Option<App<Defers>>> = const { RefCell::new(None) };
    }

    pub struct DropsAppOnDrop(pub Arc<AtomicUsize>);
    impl Wake for DropsAppOnDrop {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    impl Drop for DropsAppOnDrop {
        fn drop(&mut self) {
            let app = APP.with(|a| a.borrow_mut().take());
            let had = app.is_some();
            drop(app);
            if had {
                self.0.fetch_add(100, Ordering::SeqCst);
                panic!("waker destructor panics after dropping the App");
            }
        }
    }
}

#[test]
fn a_body_waker_whose_destructor_drops_the_app_and_panics() {
    in_child!("a_body_waker_whose_destructor_drops_the_app_and_panics", 30);
    let (ptx, prx) = std::sync::mpsc::channel();
    let (port, thread) = spawn_in_thread_local!(p4, p4::Defers(Mutex::new(ptx)));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
        .unwrap();
    let pending = prx.recv_timeout(Duration::from_secs(10)).unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let waker = Waker::from(Arc::new(p4::DropsAppOnDrop(seen.clone())));
    {
        let mut f = std::pin::pin!(pending.body());
        assert!(f
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
    }
    drop(waker);
    drop(s);
    thread.join().unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 101, "woken once, dropped once");
    assert!(pending.is_aborted());
}

// ------------------------------------------------------------------------
// P5. A timer's closure whose captured value drops the App and panics,
// dropped when `stop` (called inside `fetch`) clears the timers.

mod p5 {
    use super::*;

    pub struct Srv;
    thread_local! {
        pub static APP: RefCell<Option<App<Srv>>> = const { RefCell::new(None) };
        pub static FIRED: Cell<usize> = const { Cell::new(0) };
    }
    pub static DROPPED_APP: AtomicUsize = AtomicUsize::new(0);
    pub struct DropsApp;
    impl Drop for DropsApp {
        fn drop(&mut self) {
            let app = APP.with(|a| a.borrow_mut().take());
            let had = app.is_some();
            drop(app);
            if had {
                DROPPED_APP.fetch_add(1, Ordering::SeqCst);
                panic!("timer closure's value panics after dropping the App");
            }
        }
    }
    impl WebSocketHandler for Srv {
        type Data = ();
        fn fetch(&self, _req: &mut Request<'_>, server: &Server<()>) -> Response {
            let guard = DropsApp;
            server.set_interval(Duration::from_secs(3600), move |_| {
                let _ = &guard;
                FIRED.with(|f| f.set(f.get() + 1));
            });
            server.set_timeout(Duration::from_millis(1), |s| {
                s.set_timeout(Duration::from_millis(1), |_| {});
            });
            server.stop();
            // The App is doomed now; the server is still usable here.
            let _ = server.set_timeout(Duration::from_millis(1), |_| {
                FIRED.with(|f| f.set(f.get() + 1000));
            });
            Response::new(format!("stopping={}", server.pending_requests()))
        }
    }
}

#[test]
fn a_timer_closure_whose_drop_drops_the_app_when_stop_clears_it() {
    in_child!(
        "a_timer_closure_whose_drop_drops_the_app_when_stop_clears_it",
        30
    );
    let (port, thread) = spawn_in_thread_local!(p5, p5::Srv);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = common::read_until_closed(&mut s, Duration::from_secs(5));
    assert!(r.ends_with("stopping=0"), "{r}");
    thread.join().unwrap();
    assert_eq!(p5::DROPPED_APP.load(Ordering::SeqCst), 1);
    assert_eq!(p5::FIRED.with(Cell::get), 0);
}

// ------------------------------------------------------------------------
// P6. An `on_body` callback that drops the App, answers the request it was
// handed back, and panics.

mod p6 {
    use super::*;

    pub struct Srv;
    pub static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
    thread_local! {
        pub static APP: RefCell<Option<App<Srv>>> = const { RefCell::new(None) };
    }
    impl WebSocketHandler for Srv {
        type Data = ();
        fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
            let pending = server.defer_request(req).unwrap();
            pending.on_body(|server, body, pending| {
                let app = APP.with(|a| a.borrow_mut().take());
                drop(app);
                let r = pending.respond(Response::new(format!(
                    "{} {}",
                    body.map(|b| b.bytes().len()).unwrap_or(0),
                    server.port()
                )));
                let r = r.map_err(|e| matches!(e, Error::NotRunning).then_some("NotRunning"));
                LOG.lock().unwrap().push(format!("{r:?}"));
                panic!("on_body panics after dropping the App");
            });
            Response::new("")
        }
    }
}

#[test]
fn an_on_body_callback_that_drops_the_app_answers_and_panics() {
    in_child!(
        "an_on_body_callback_that_drops_the_app_answers_and_panics",
        30
    );
    let (port, thread) = spawn_in_thread_local!(p6, p6::Srv);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping")
        .unwrap();
    let r = common::read_until_closed(&mut s, Duration::from_secs(5));
    // The App went away before the answer could be sent: the connection
    // closes (or gets an error status), nothing else.
    assert!(!r.contains(" 200 "), "{r}");
    thread.join().unwrap();
    // Answering after the App went away is refused, and said so.
    assert_eq!(
        *p6::LOG.lock().unwrap(),
        vec!["Err(Some(\"NotRunning\"))".to_string()]
    );
}

// ------------------------------------------------------------------------
// P7. A socket's data that owns the socket's own App (moved out of the
// thread-local in `fetch`): the App is dropped when the socket's data is,
// inside that socket's close callback, and must wait to be freed.

mod p7 {
    use super::*;

    pub struct Srv;
    pub static OWNER_DROPS: AtomicUsize = AtomicUsize::new(0);
    pub static CLOSES: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        pub static APP: RefCell<Option<App<Srv>>> = const { RefCell::new(None) };
    }
    pub struct Owner(pub Option<App<Srv>>);
    impl Drop for Owner {
        fn drop(&mut self) {
            OWNER_DROPS.fetch_add(1, Ordering::SeqCst);
            // The App goes here, with its last socket's slot being freed.
            drop(self.0.take());
            panic!("data owning its App panics after dropping it");
        }
    }
    impl WebSocketHandler for Srv {
        type Data = Owner;
        fn fetch(&self, req: &mut Request<'_>, server: &Server<Owner>) -> Response {
            let app = APP.with(|a| a.borrow_mut().take());
            server.upgrade(req, UpgradeOptions::new(Owner(app)));
            Response::new("")
        }
        fn message(&self, ws: &mut ServerWebSocket<Owner>, m: Message<'_>) {
            ws.send(m);
        }
        fn close(&self, ws: &mut ServerWebSocket<Owner>, _c: u16, _r: &str) {
            CLOSES.fetch_add(1, Ordering::SeqCst);
            // The server is still there for the close handler.
            let _ = ws.server().publish("t", "x");
        }
    }
}

#[test]
fn socket_data_that_owns_its_own_app() {
    in_child!("socket_data_that_owns_its_own_app", 30);
    let (port, thread) = spawn_in_thread_local!(p7, p7::Srv);
    let mut c = common::connect(&format!("ws://127.0.0.1:{port}/"));
    c.send(tungstenite::Message::text("echo")).unwrap();
    assert_eq!(common::recv_text(&mut c), "echo");
    c.close(None).unwrap();
    let _ = c.read();
    thread.join().unwrap();
    assert_eq!(p7::CLOSES.load(Ordering::SeqCst), 1);
    assert_eq!(p7::OWNER_DROPS.load(Ordering::SeqCst), 1);
}
