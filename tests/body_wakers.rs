//! The waker of a pending request's body future is user code: it is woken
//! and dropped through the server's gate (counted in, its panic caught, no
//! lock of ours held), whatever it does.
#![allow(clippy::type_complexity)]

mod common;

use common::child::{child_must_pass, is_child};
use std::cell::RefCell;
use std::future::Future;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use uws::*;

// Helpers

/// Polls `f` once with `waker`.
fn poll_once<F: Future>(f: F, waker: &Waker) -> Poll<F::Output> {
    let mut f = std::pin::pin!(f);
    f.as_mut().poll(&mut Context::from_waker(waker))
}

// ------------------------------------------------------------------------
// A. The body future's waker runs inside uWebSockets' data callback.
//
// `PendingRequest::body()` stores the waker of whoever polls it; when the
// last chunk arrives, the loop wakes it from inside the response's data
// callback (an `extern "C"` function), holding the body's mutex, without
// counting itself as a callback of the server and without catching a
// panic. A `Waker` is user code (`std::task::Wake` is a safe trait).

/// Hands every deferred request to the test's thread.
struct Defers(Mutex<mpsc::Sender<PendingRequest<()>>>);

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
    static DEFERS: RefCell<Option<App<Defers>>> = const { RefCell::new(None) };
}

/// Starts a `Defers` server on a thread of its own (its App in the
/// thread-local `DEFERS`, the loop run by `uws::run`). Returns the port,
/// a handle, the deferred requests and the thread.
fn defers() -> (
    u16,
    ServerHandle<()>,
    mpsc::Receiver<PendingRequest<()>>,
    std::thread::JoinHandle<()>,
) {
    let (ptx, prx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let app = serve(common::scenario_options(), Defers(Mutex::new(ptx))).unwrap();
        tx.send((app.port(), app.handle())).unwrap();
        DEFERS.with(|d| *d.borrow_mut() = Some(app));
        uws::run();
        DEFERS.with(|d| drop(d.borrow_mut().take()));
    });
    let (port, handle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (port, handle, prx, thread)
}

/// Sends a POST head announcing a 4-byte body, and returns the stream and
/// the deferred request once the server has it.
fn post_head(
    port: u16,
    prx: &mpsc::Receiver<PendingRequest<()>>,
) -> (TcpStream, PendingRequest<()>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
        .unwrap();
    let p = prx.recv_timeout(Duration::from_secs(10)).unwrap();
    (s, p)
}

/// A waker that panics when woken.
struct PanicsOnWake;

impl Wake for PanicsOnWake {
    fn wake(self: Arc<Self>) {
        panic!("waker panicked");
    }
}

/// A waker whose `wake` panics, woken by the loop when the body arrives.
///
/// Checks: the panic is contained like any other user panic (the
/// crate's "nothing unwinds into C++"), the server goes on, and the
/// request can still be answered.
/// Before the fix: the panic unwinds out of the `extern "C"` data callback and the
/// process aborts ("panic in a function that cannot unwind").
#[test]
fn a_body_waker_that_panics_is_contained() {
    const NAME: &str = "a_body_waker_that_panics_is_contained";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(30), None);
    }
    let (port, handle, prx, thread) = defers();
    let (mut s, pending) = post_head(port, &prx);
    let waker = Waker::from(Arc::new(PanicsOnWake));
    assert!(poll_once(pending.body(), &waker).is_pending());
    s.write_all(b"ping").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pending.respond(Response::new("answered")).unwrap();
    let r = common::read_until_closed(&mut s, Duration::from_secs(2));
    assert!(r.ends_with("answered"), "{r}");
    handle.stop().unwrap();
    thread.join().unwrap();
}

/// A waker that drops the server's App (kept in a thread-local of the
/// server's thread) when woken: `wake` runs on the loop's thread.
struct DropsApp;

impl Wake for DropsApp {
    fn wake(self: Arc<Self>) {
        drop(DEFERS.with(|d| d.borrow_mut().take()));
    }
}

/// A waker that drops the App from inside the loop's data callback.
///
/// Checks: as for any user code that drops an App inside one of its
/// callbacks, the App is stopped then and freed once none of its
/// callbacks runs; nothing reads freed memory.
/// Before the fix: the data callback does not count itself as a callback of the
/// server, so `App::drop` frees the native app (its HTTP context included)
/// at once, and uWebSockets goes on in the freed context when the callback
/// returns (valgrind: invalid reads/writes; without valgrind a crash or
/// a silent corruption, depending on the allocator).
#[test]
fn a_body_waker_that_drops_the_app_frees_it_after_the_data_callback() {
    const NAME: &str = "a_body_waker_that_drops_the_app_frees_it_after_the_data_callback";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(120), None);
    }
    let (port, _handle, prx, thread) = defers();
    let (mut s, pending) = post_head(port, &prx);
    let waker = Waker::from(Arc::new(DropsApp));
    assert!(poll_once(pending.body(), &waker).is_pending());
    // A second connection with a request in flight, so that the loop has
    // more to do in the freed context.
    let mut other = TcpStream::connect(("127.0.0.1", port)).unwrap();
    other
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let _second = prx.recv_timeout(Duration::from_secs(10)).unwrap();
    s.write_all(b"ping").unwrap();
    let _ = common::read_until_closed(&mut s, Duration::from_millis(500));
    let _ = common::read_until_closed(&mut other, Duration::from_millis(200));
    // The App is gone; the thread's loop has nothing left and returns.
    thread.join().unwrap();
}

/// A waker that polls the body again from inside `wake` (an executor that
/// runs a task as soon as it is woken).
struct PollsAgain(Arc<PendingRequest<()>>, Arc<AtomicUsize>);

impl Wake for PollsAgain {
    fn wake(self: Arc<Self>) {
        let noop = Waker::from(Arc::new(Noop));
        if let Poll::Ready(Ok(body)) = poll_once(self.0.body(), &noop) {
            self.1.store(body.len(), Ordering::SeqCst);
        }
    }
}

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// A waker that polls the body future again inside `wake`.
///
/// Checks: the second poll returns the body (it is ready: that is why
/// the waker was woken), and the server goes on.
/// Before the fix: the loop wakes the waker while it holds the body's mutex, the
/// poll inside `wake` locks it again on the same thread, and the server's
/// thread deadlocks: nothing is served any more and a stop never ends.
#[test]
fn a_body_waker_may_poll_again_inside_wake() {
    const NAME: &str = "a_body_waker_may_poll_again_inside_wake";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(30), None);
    }
    let (port, handle, prx, thread) = defers();
    let (mut s, pending) = post_head(port, &prx);
    let pending = Arc::new(pending);
    let got = Arc::new(AtomicUsize::new(0));
    let waker = Waker::from(Arc::new(PollsAgain(pending.clone(), got.clone())));
    assert!(poll_once(pending.body(), &waker).is_pending());
    drop(waker);
    s.write_all(b"ping").unwrap();
    let start = Instant::now();
    while got.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if got.load(Ordering::SeqCst) == 0 {
        // Is the server still serving? A new request gets no answer.
        let mut probe = TcpStream::connect(("127.0.0.1", port)).unwrap();
        probe
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let served = prx.recv_timeout(Duration::from_secs(2)).is_ok();
        panic!("the waker's poll never returned (new requests served: {served})");
    }
    handle.stop().unwrap();
    thread.join().unwrap();
}

/// A waker whose destructor panics.
struct PanicsOnDrop;

impl Wake for PanicsOnDrop {
    fn wake(self: Arc<Self>) {}
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("waker dropped");
    }
}

/// The body was polled (the loop keeps the waker), then the request is
/// answered with a streamed body: when the stream ends in a writable
/// event, the loop drops the request's state, and the stored waker with it.
///
/// Checks: the waker's destructor panic is contained (as the crate does
/// for the producer's own destructor), the response ends, the server goes on.
/// Before the fix: the waker is dropped inside the `extern "C"` writable callback,
/// outside `catch_unwind` (and with the server's table of pending requests
/// mutably borrowed): the process aborts.
#[test]
fn a_stored_body_waker_whose_drop_panics_is_contained_when_a_stream_ends() {
    const NAME: &str = "a_stored_body_waker_whose_drop_panics_is_contained_when_a_stream_ends";
    if !is_child(NAME) {
        return child_must_pass(NAME, Duration::from_secs(30), None);
    }
    let (port, handle, prx, thread) = defers();
    // The body never comes: the waker stays stored.
    let (mut s, pending) = post_head(port, &prx);
    let waker = Waker::from(Arc::new(PanicsOnDrop));
    assert!(poll_once(pending.body(), &waker).is_pending());
    drop(waker);
    let big = vec![b'x'; 16 << 20];
    let mut calls = 0;
    pending
        .stream(Response::new(""), move |w| {
            calls += 1;
            if calls == 1 {
                // More than the socket takes at once: the rest waits for
                // a writable event.
                w.write(&big);
                return Flow::More;
            }
            Flow::Done
        })
        .unwrap();
    let r = common::read_until_closed(&mut s, Duration::from_secs(3));
    assert!(
        r.ends_with("0\r\n\r\n"),
        "{} bytes, no end of the chunked body",
        r.len()
    );
    handle.stop().unwrap();
    thread.join().unwrap();
}
