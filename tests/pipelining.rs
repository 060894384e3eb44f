//! HTTP/1.1 pipelining: requests that arrive behind one another (in the
//! same read or while an earlier one is still being answered) are all
//! answered, in order, whether `fetch` answers at once or defers the
//! request and answers later; bodies (also split across reads and
//! chunked with trailers) stay with their request; `Connection: close`
//! ends the conversation after its answer; a client that leaves while a
//! request is pending aborts it and the server goes on.
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{converse, End};
use common::{start, wait_for};
use uws::{PendingRequest, Request, Response, Server, WebSocketHandler, WebSocketOptions};

/// `/sync/...` is answered in `fetch`; `/defer/...` is answered 150 ms
/// later from a timer, with its body; `/hold/...` waits until the test
/// takes it. Every answer's body is `path` (plus `:body` when there is one).
#[derive(Clone, Default)]
struct Mixed {
    held: Arc<Mutex<Vec<PendingRequest<()>>>>,
}

impl WebSocketHandler for Mixed {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        let path = req.path().to_owned();
        if path.starts_with("/sync") {
            return Response::new(path);
        }
        let pending = server.defer_request(req).expect("defer");
        if path.starts_with("/hold") {
            self.held.lock().unwrap().push(pending);
            return Response::new("");
        }
        pending.on_body(move |server, body, pending| {
            let body = body.expect("body");
            let text = if body.is_empty() {
                path.clone()
            } else {
                format!("{path}:{}", String::from_utf8_lossy(body.bytes()))
            };
            server.set_timeout(Duration::from_millis(150), move |_| {
                let _ = pending.respond(Response::new(text));
            });
        });
        Response::new("")
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// Sends `chunks` (50 ms apart) and returns the bodies of the answers and
/// how the connection ended.
fn answers(chunks: &[&[u8]], want: usize) -> (Vec<String>, End) {
    let server = start(WebSocketOptions::default(), Mixed::default());
    let c = converse(
        server.port,
        chunks,
        Duration::from_millis(50),
        want,
        Duration::from_secs(5),
    );
    for r in &c.replies {
        assert_eq!(r.status, 200, "{r:?}");
    }
    (c.replies.iter().map(|r| r.text()).collect(), c.end)
}

#[test]
fn synchronous_answers_to_pipelined_requests_come_in_order() {
    let all = format!("{}{}{}", get("/sync/1"), get("/sync/2"), get("/sync/3"));
    let (bodies, _) = answers(&[all.as_bytes()], 3);
    assert_eq!(bodies, ["/sync/1", "/sync/2", "/sync/3"]);
}

#[test]
fn requests_in_the_same_read_as_a_deferred_one_are_answered_in_order() {
    let all = format!(
        "{}{}{}{}",
        get("/defer/1"),
        get("/defer/2"),
        get("/sync/3"),
        get("/defer/4")
    );
    let (bodies, end) = answers(&[all.as_bytes()], 4);
    assert_eq!(bodies, ["/defer/1", "/defer/2", "/sync/3", "/defer/4"]);
    assert_eq!(end, End::Open, "the connection stays open");
}

#[test]
fn a_request_arriving_while_one_is_deferred_waits_its_turn() {
    let first = get("/defer/1");
    let second = get("/sync/2");
    let (bodies, _) = answers(&[first.as_bytes(), second.as_bytes()], 2);
    assert_eq!(bodies, ["/defer/1", "/sync/2"]);
}

#[test]
fn a_deferred_post_body_stays_with_its_request_also_split_across_reads() {
    let post = "POST /defer/p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789";
    let all = format!("{post}{}", get("/defer/after"));
    let (bodies, _) = answers(&[all.as_bytes()], 2);
    assert_eq!(bodies, ["/defer/p:0123456789", "/defer/after"]);

    // The body in three pieces, the last one with the next request.
    let (a, rest) = all.split_at(post.len() - 7);
    let (b, c) = rest.split_at(4);
    let (bodies, _) = answers(&[a.as_bytes(), b.as_bytes(), c.as_bytes()], 2);
    assert_eq!(bodies, ["/defer/p:0123456789", "/defer/after"]);
}

#[test]
fn a_chunked_body_with_trailers_then_a_get() {
    let post = "POST /defer/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: yes\r\n\r\n";
    let all = format!("{post}{}{}", get("/sync/s"), get("/defer/d"));
    let (bodies, _) = answers(&[all.as_bytes()], 3);
    assert_eq!(bodies, ["/defer/c:abcde", "/sync/s", "/defer/d"]);
}

#[test]
fn connection_close_ends_the_conversation_after_its_answer() {
    for first in ["/defer/closing", "/sync/closing"] {
        let all = format!(
            "GET {first} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{}",
            get("/sync/never")
        );
        let (bodies, end) = answers(&[all.as_bytes()], 2);
        assert_eq!(bodies, [first], "only the first request is answered");
        assert_eq!(end, End::Eof);
    }
}

#[test]
fn a_client_that_leaves_while_its_request_is_pending_aborts_it() {
    let handler = Mixed::default();
    let server = start(WebSocketOptions::default(), handler.clone());
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(format!("{}{}", get("/hold/1"), get("/sync/2")).as_bytes())
        .unwrap();
    wait_for("the held request", || {
        handler.held.lock().unwrap().len() == 1
    });
    drop(s);
    wait_for("the abort", || handler.held.lock().unwrap()[0].is_aborted());
    let held = handler.held.lock().unwrap().pop().unwrap();
    assert!(held.respond(Response::new("late")).is_err());
    // The server goes on.
    let all = format!("{}{}", get("/defer/a"), get("/sync/b"));
    let c = converse(
        server.port,
        &[all.as_bytes()],
        Duration::ZERO,
        2,
        Duration::from_secs(5),
    );
    let bodies: Vec<String> = c.replies.iter().map(|r| r.text()).collect();
    assert_eq!(bodies, ["/defer/a", "/sync/b"]);
}

#[test]
fn many_requests_behind_a_pending_one_are_all_answered_in_order() {
    // More than the server holds before it stops reading (64 KiB): it
    // pauses, and reads again once the first answer is out.
    let handler = Mixed::default();
    let server = start(WebSocketOptions::default(), handler.clone());
    let count = 4000;
    let mut all = get("/hold/first");
    for i in 0..count {
        all.push_str(&get(&format!("/sync/{i:05}")));
    }
    assert!(all.len() > 100 * 1024);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let writer = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || s.write_all(all.as_bytes()).unwrap())
    };
    wait_for("the held request", || {
        handler.held.lock().unwrap().len() == 1
    });
    let held = handler.held.lock().unwrap().pop().unwrap();
    held.respond(Response::new("/hold/first")).unwrap();
    s.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    let mut replies = Vec::new();
    while replies.len() < count + 1 {
        use std::io::Read;
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {} answers", replies.len());
        bytes.extend_from_slice(&buf[..n]);
        let (got, used) = common::http::parse_replies(&bytes);
        replies.extend(got.into_iter().map(|r| r.text()));
        bytes.drain(..used);
    }
    writer.join().unwrap();
    assert_eq!(replies[0], "/hold/first");
    for (i, r) in replies[1..].iter().enumerate() {
        assert_eq!(r, &format!("/sync/{i:05}"));
    }
}
