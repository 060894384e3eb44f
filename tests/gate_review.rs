//! Hostile review of the gate for user code (issue 19): safe programs that
//! run user code from every place the crate calls it (handlers, closures,
//! jobs, timers, body callbacks and wakers, producers, client handlers,
//! `Drop` of user values) and try to reach an abort, a crash, a hang, a
//! second `&mut` or a use after free. Each test asserts the safe outcome.
//! Scenarios that can end the process run in a child process.
#![allow(clippy::type_complexity)]

mod common;

use common::child::{child_must_pass, is_child};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use uws::*;

fn options() -> ServeOptions {
    ServeOptions {
        hostname: "127.0.0.1".into(),
        port: 0,
        stop_grace_period: Duration::from_millis(300),
        ..Default::default()
    }
}

/// Runs the body of test `name` in a child process, which must exit 0.
macro_rules! in_child {
    ($name:literal, $secs:expr) => {
        if !is_child($name) {
            child_must_pass($name, Duration::from_secs($secs), None);
            return;
        }
    };
}

// ========================================================================
// FAILING: these show a defect today (see the report for root causes).
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
            ws.send("go", false);
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
    let app = serve(options(), Srv).unwrap();
    let url = format!("ws://127.0.0.1:{}/", app.port());
    app.connect(&url, ConnectOptions::default(), Cli, ()).unwrap();
    APP.with(|a| *a.borrow_mut() = Some(app));
    uws::run();
    APP.with(|a| drop(a.borrow_mut().take()));
    assert_eq!(CLOSES.with(Cell::get), 1, "the server socket closed once");
}

// ========================================================================
// PASSING: attacks that found nothing; kept as regression tests.
// ========================================================================
