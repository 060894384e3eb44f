//! Zero Rust heap allocations per message in steady state, on the echo
//! and publish paths, counted by a global allocator on the server thread.

mod common;
#[path = "../examples/chat/room.rs"]
mod room;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use tungstenite::Message as M;
use uws::{
    serve, Message, Request, Response, ServeOptions, Server, ServerHandle, ServerWebSocket,
    UpgradeOptions, WebSocketHandler,
};

struct Counting;

thread_local! {
    /// The counter of the server running on this thread, if any (tests run
    /// in parallel: each server counts its own thread only).
    static COUNTER: Cell<Option<&'static AtomicUsize>> = const { Cell::new(None) };
}

fn count_one() {
    if let Ok(Some(counter)) = COUNTER.try_with(Cell::get) {
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: forwards to the system allocator; the counter has no effect on it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Echoes binary messages; publishes text ones to `room` as `NAME: text`
/// (the chat example's way), alternating ws.publish and server.publish.
struct Hot;

struct Line {
    text: String,
    prefix: usize,
    flip: bool,
}

impl WebSocketHandler for Hot {
    type Data = Line;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Line>) -> Response {
        let text = format!("{}: ", req.query_param("name").unwrap_or_default());
        let line = Line {
            prefix: text.len(),
            text,
            flip: false,
        };
        server.upgrade(req, UpgradeOptions::new(line));
        Response::new("")
    }

    fn open(&self, ws: &mut ServerWebSocket<Line>) {
        ws.subscribe("room");
        ws.send_text("joined");
    }

    fn message(&self, ws: &mut ServerWebSocket<Line>, message: Message<'_>) {
        match message {
            Message::Binary(_) => {
                ws.send(message);
            }
            Message::Text(t) => {
                let line = ws.data_mut();
                line.text.truncate(line.prefix);
                line.text.push_str(t);
                line.flip = !line.flip;
                let flip = line.flip;
                // Move the line out and back so `ws` can be borrowed mutably
                // for publish: no allocation, just pointer moves.
                let text = std::mem::take(&mut ws.data_mut().text);
                if flip {
                    ws.publish("room", text.as_str());
                    ws.send_text(&text);
                } else {
                    ws.server().publish("room", text.as_str());
                }
                ws.data_mut().text = text;
            }
        }
    }
}

/// A server whose thread counts its allocations; stopped on drop.
struct Counted<T: 'static> {
    allocations: &'static AtomicUsize,
    port: u16,
    handle: ServerHandle<T>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn start_counted<H: WebSocketHandler + Send>(handler: H) -> Counted<H::Data> {
    let allocations: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        COUNTER.with(|c| c.set(Some(allocations)));
        let options = ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            ..Default::default()
        };
        let app = serve(options, handler).expect("serve");
        tx.send((app.port(), app.handle())).unwrap();
        app.run();
    });
    let (port, handle) = rx.recv_timeout(TIMEOUT).unwrap();
    Counted {
        allocations,
        port,
        handle,
        thread: Some(thread),
    }
}

impl<T: 'static> Counted<T> {
    fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }
}

impl<T: 'static> Drop for Counted<T> {
    fn drop(&mut self) {
        let _ = self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn allocations_during(counter: &AtomicUsize, rounds: usize, mut round: impl FnMut()) -> usize {
    let before = counter.load(Ordering::SeqCst);
    for _ in 0..rounds {
        round();
    }
    counter.load(Ordering::SeqCst) - before
}

#[test]
fn echo_and_publish_allocate_nothing_per_message_in_steady_state() {
    let server = start_counted(Hot);
    let mut a = connect(&server.url("/?name=a"));
    let mut b = connect(&server.url("/?name=b"));
    assert_eq!(recv_text(&mut a), "joined");
    assert_eq!(recv_text(&mut b), "joined");

    let mut echo = || {
        a.send(M::binary(vec![7u8; 100])).unwrap();
        assert_eq!(recv(&mut a), M::binary(vec![7u8; 100]));
    };
    // Warm up (buffers reach their size), then count.
    allocations_during(server.allocations, 50, &mut echo);
    let echo_allocations = allocations_during(server.allocations, 1000, &mut echo);

    let mut chat = |text: &str| {
        // ws.publish excludes a and the reply goes to a; then server.publish
        // reaches both.
        a.send(M::text(text)).unwrap();
        assert_eq!(recv_text(&mut b), format!("a: {text}"));
        assert_eq!(recv_text(&mut a), format!("a: {text}"));
        a.send(M::text(text)).unwrap();
        assert_eq!(recv_text(&mut a), format!("a: {text}"));
        assert_eq!(recv_text(&mut b), format!("a: {text}"));
    };
    allocations_during(server.allocations, 50, || {
        chat("warming up the line buffer")
    });
    let publish_allocations = allocations_during(server.allocations, 500, || chat("hello room"));

    assert_eq!(echo_allocations, 0, "allocations over 1000 echoes");
    assert_eq!(publish_allocations, 0, "allocations over 1000 publishes");
    // The counter works: the server thread did allocate while setting up.
    assert!(server.allocations.load(Ordering::SeqCst) > 0);
}

#[test]
fn the_chat_example_allocates_nothing_per_message_in_steady_state() {
    let server = start_counted(room::Chat::new(2));
    let mut a = connect(&server.url("/?name=ann"));
    let mut b = connect(&server.url("/?name=bob"));
    assert_eq!(recv_text(&mut a), "ready");
    assert_eq!(recv_text(&mut b), "ready");
    let mut round = || {
        a.send(M::text("hello everyone, how are you today?"))
            .unwrap();
        assert_eq!(recv_text(&mut a), "ann: hello everyone, how are you today?");
        assert_eq!(recv_text(&mut b), "ann: hello everyone, how are you today?");
    };
    allocations_during(server.allocations, 50, &mut round);
    assert_eq!(
        allocations_during(server.allocations, 1000, &mut round),
        0,
        "allocations over 1000 chat messages"
    );
}
