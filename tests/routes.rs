//! Bun's `routes`: static responses answered natively, handlers, methods,
//! parameters, wildcards, precedence, fetch fallback, redirects, reload
//! under load, request_ip and timeout.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::{parse_replies, Reply};
use common::*;
use tungstenite::Message as M;
use uws::{
    serve, Error, Message, Methods, PendingRequest, Request, Response, Routes, ServeOptions,
    Server, ServerWebSocket, UpgradeOptions, WebSocketHandler, WebSocketOptions,
};

/// A keep-alive connection that sends requests and reads whole replies.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        Conn { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// Reads until `n` complete replies came (panics if the connection
    /// ends first).
    fn replies(&mut self, n: usize) -> Vec<Reply> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            let (mut got, used) = parse_replies(&self.buf);
            self.buf.drain(..used);
            out.append(&mut got);
            if out.len() >= n {
                assert_eq!(out.len(), n, "more replies than requests");
                return out;
            }
            match self.s.read(&mut chunk) {
                Ok(0) => panic!("connection closed after {} replies", out.len()),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) => panic!("read: {e} after {} replies", out.len()),
            }
        }
    }

    fn get(&mut self, path: &str) -> Reply {
        self.request("GET", path, "")
    }

    fn request(&mut self, method: &str, path: &str, body: &str) -> Reply {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.send(req.as_bytes());
        self.replies(1).remove(0)
    }
}

fn options() -> ServeOptions {
    ServeOptions {
        hostname: "127.0.0.1".into(),
        port: 0,
        stop_grace_period: Duration::from_secs(1),
        ..Default::default()
    }
}

/// Counts the calls of `fetch` and of route handlers.
#[derive(Clone, Default)]
struct Counts {
    fetch: Arc<AtomicUsize>,
    handlers: Arc<AtomicUsize>,
}

struct Counted {
    counts: Counts,
    routes: fn(&Counts) -> Routes<()>,
}

impl WebSocketHandler for Counted {
    type Data = ();

    fn routes(&self) -> Routes<()> {
        (self.routes)(&self.counts)
    }

    fn fetch(&self, req: &mut Request<'_>, _: &Server<()>) -> Response {
        self.counts.fetch.fetch_add(1, SeqCst);
        Response::new(format!("fetch {} {}", req.method(), req.path())).with_status(404)
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        ws.send(message, false);
    }
}

fn start_counted(routes: fn(&Counts) -> Routes<()>) -> (Running<()>, Counts) {
    let counts = Counts::default();
    let server = start_with(
        options(),
        Counted {
            counts: counts.clone(),
            routes,
        },
    );
    (server, counts)
}

/// A handler route that counts its calls and answers `text`.
fn counted(
    counts: &Counts,
    text: &'static str,
) -> impl Fn(&mut Request<'_>, &Server<()>) -> Response {
    let calls = counts.handlers.clone();
    move |_req: &mut Request<'_>, _: &Server<()>| {
        calls.fetch_add(1, SeqCst);
        Response::new(text)
    }
}

#[test]
fn static_routes_are_answered_without_calling_rust() {
    let (server, counts) = start_counted(|c| {
        Routes::new()
            .route(
                "/static",
                Response::new("fixed")
                    .with_status(201)
                    .with_header("Content-Type", "text/plain")
                    .with_header("X-Route", "static"),
            )
            .route("/dynamic", counted(c, "dynamic"))
    });
    let mut c = Conn::new(server.port);
    for _ in 0..50 {
        let r = c.get("/static");
        assert_eq!((r.status, r.text()), (201, "fixed".to_string()));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.header("x-route"), Some("static"));
    }
    // Also pipelined, and with other methods (a static route takes them all).
    c.send(b"GET /static HTTP/1.1\r\nHost: x\r\n\r\nPOST /static HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcPUT /static HTTP/1.1\r\nHost: x\r\n\r\n");
    for r in c.replies(3) {
        assert_eq!((r.status, r.text()), (201, "fixed".to_string()));
    }
    assert_eq!(counts.handlers.load(SeqCst), 0);
    assert_eq!(counts.fetch.load(SeqCst), 0);
    // The counters do count: a handler route and fetch each run once.
    assert_eq!(c.get("/dynamic").text(), "dynamic");
    assert_eq!(c.get("/elsewhere").text(), "fetch GET /elsewhere");
    assert_eq!(counts.handlers.load(SeqCst), 1);
    assert_eq!(counts.fetch.load(SeqCst), 1);
}

#[test]
fn params_are_percent_decoded_and_named_by_the_pattern() {
    let (server, _) = start_counted(|_| {
        Routes::new()
            .route("/users/:id", |req: &mut Request<'_>, _: &Server<()>| {
                Response::new(format!(
                    "Hello User {}!",
                    req.param("id").unwrap_or_default()
                ))
            })
            .route(
                "/orgs/:org/repos/:repo",
                |req: &mut Request<'_>, _: &Server<()>| {
                    let all: Vec<String> = req
                        .params()
                        .into_iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    Response::new(format!(
                        "{} missing={:?} query={}",
                        all.join(","),
                        req.param("nope"),
                        req.query()
                    ))
                },
            )
    });
    let mut c = Conn::new(server.port);
    assert_eq!(c.get("/users/J%C3%BCrgen").text(), "Hello User Jürgen!");
    assert_eq!(c.get("/users/a+b%20c").text(), "Hello User a+b c!");
    assert_eq!(c.get("/users/bad%zz%4").text(), "Hello User bad%zz%4!");
    assert_eq!(c.get("/users/%FF").text(), "Hello User \u{fffd}!");
    assert_eq!(
        c.get("/orgs/rust%2Dlang/repos/uws?x=1").text(),
        "org=rust-lang,repo=uws missing=None query=x=1"
    );
    // A parameter is one non-empty segment.
    assert_eq!(c.get("/users/").status, 404);
    assert_eq!(c.get("/users/a/b").text(), "fetch GET /users/a/b");
}

#[test]
fn precedence_is_exact_then_param_then_wildcard_then_fetch() {
    let (server, _) = start_counted(|_| {
        let say = |s: &'static str| move |_: &mut Request<'_>, _: &Server<()>| Response::new(s);
        // Given in the reverse of their precedence: order does not matter.
        Routes::new()
            .route("/p/*", Response::new("wildcard"))
            .route("/p/:x", say("param"))
            .route("/p/:x/deeper", say("param deeper"))
            .route("/p/exact", Response::new("exact"))
            .route("/p/exact/deeper", say("exact deeper"))
            .route("/*", Response::new("root wildcard"))
            .route("/", Response::new("root"))
    });
    let mut c = Conn::new(server.port);
    for (path, want) in [
        ("/p/exact", "exact"),
        ("/p/other", "param"),
        ("/p/exact/deeper", "exact deeper"),
        ("/p/other/deeper", "param deeper"),
        // The param route has no /p/x/else: back to the wildcard.
        ("/p/other/else", "wildcard"),
        ("/p/a/b/c", "wildcard"),
        ("/p/", "wildcard"),
        ("/p", "root wildcard"),
        ("/", "root"),
        ("/q/r", "root wildcard"),
    ] {
        assert_eq!(c.get(path).text(), want, "{path}");
    }
}

#[test]
fn unmatched_paths_go_to_fetch_and_wildcards_do_not_take_their_parent() {
    let (server, counts) = start_counted(|_| {
        Routes::new()
            .route("/api/status", Response::new("OK"))
            .route("/api/*", Response::new("Not found").with_status(404))
    });
    let mut c = Conn::new(server.port);
    assert_eq!(c.get("/api/status").text(), "OK");
    assert_eq!(c.get("/api/other").text(), "Not found");
    assert_eq!(c.get("/api").text(), "fetch GET /api");
    assert_eq!(c.get("/api/status/x").text(), "Not found");
    assert_eq!(c.get("/apix").text(), "fetch GET /apix");
    assert_eq!(counts.fetch.load(SeqCst), 2);
}

#[test]
fn methods_route_get_answers_head_and_other_methods_fall_through_like_bun() {
    let (server, counts) = start_counted(|c| {
        Routes::new()
            .route(
                "/posts",
                Methods::new()
                    .get(counted(c, "List posts"))
                    .post(Response::new("created").with_status(201))
                    .method("PURGE", Response::new("purged")),
            )
            .route(
                "/static-get",
                Methods::new().get(Response::new("static body")),
            )
            .route(
                "/own-head",
                Methods::new()
                    .get(Response::new("get body"))
                    .head(Response::new("").with_header("X-Head", "own")),
            )
            .route("/api/posts", Methods::new().get(Response::new("api posts")))
            .route("/api/*", Response::new("api wildcard"))
    });
    let mut c = Conn::new(server.port);
    assert_eq!(c.get("/posts").text(), "List posts");
    let r = c.request("POST", "/posts", "x");
    assert_eq!((r.status, r.text()), (201, "created".to_string()));
    assert_eq!(c.request("PURGE", "/posts", "").text(), "purged");
    // A method the route has no handler for falls through, as in Bun: to
    // the next route that matches, and to fetch when none does.
    assert_eq!(
        c.request("DELETE", "/posts", "").text(),
        "fetch DELETE /posts"
    );
    assert_eq!(c.request("post", "/posts", "").text(), "fetch post /posts");
    assert_eq!(counts.fetch.load(SeqCst), 2);
    assert_eq!(c.get("/api/posts").text(), "api posts");
    assert_eq!(c.request("DELETE", "/api/posts", "").text(), "api wildcard");

    // HEAD: GET's answer without its body (handler and static), then the
    // next response on the same connection starts right after the head.
    for (path, length) in [("/posts", 10), ("/static-get", 11)] {
        c.send(
            format!(
                "HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /posts HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .as_bytes(),
        );
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, next) = loop {
            let text = String::from_utf8_lossy(&bytes).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let rest = &bytes[end + 4..];
                let (replies, _) = parse_replies(rest);
                if replies.len() == 1 {
                    break (text[..end].to_ascii_lowercase(), replies[0].clone());
                }
            }
            let n = c.s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed");
            bytes.extend_from_slice(&chunk[..n]);
        };
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(
            head.contains(&format!("content-length: {length}")),
            "{head}"
        );
        assert_eq!(next.text(), "List posts");
    }
    // A route's own HEAD wins over GET's.
    c.send(b"HEAD /own-head HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    while !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed");
        bytes.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&bytes).contains("X-Head: own"));
}

#[test]
fn redirects_answer_302_with_location_by_default() {
    let (server, _) = start_counted(|_| {
        Routes::new()
            .route("/blog/hello", Response::redirect("/blog/hello/world"))
            .route(
                "/moved",
                Response::redirect_with_status("https://example.com/", 308),
            )
    });
    let mut c = Conn::new(server.port);
    let r = c.get("/blog/hello");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/blog/hello/world"));
    assert!(r.body.is_empty());
    let r = c.get("/moved");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://example.com/"));
}

#[test]
fn route_handlers_upgrade_defer_and_read_bodies_like_fetch() {
    thread_local! {
        static PENDING: RefCell<Vec<PendingRequest<()>>> = const { RefCell::new(Vec::new()) };
    }
    let (server, counts) = start_counted(|_| {
        Routes::new()
            .route("/ws", |req: &mut Request<'_>, server: &Server<()>| {
                if server.upgrade(req, UpgradeOptions::new(())) {
                    return Response::new("");
                }
                Response::new("Upgrade failed").with_status(400)
            })
            .route("/echo", |req: &mut Request<'_>, server: &Server<()>| {
                if let Some(pending) = server.defer_request(req) {
                    pending.on_body(|_, body, pending| {
                        let text = String::from_utf8_lossy(body.unwrap().bytes()).into_owned();
                        let _ = pending.respond(Response::new(format!("got {text}")));
                    });
                }
                Response::new("")
            })
            .route("/later", |req: &mut Request<'_>, server: &Server<()>| {
                if let Some(p) = server.defer_request(req) {
                    PENDING.with(|q| q.borrow_mut().push(p));
                }
                Response::new("")
            })
            .route("/answer", |_: &mut Request<'_>, _: &Server<()>| {
                let n = PENDING.with(|q| {
                    let all: Vec<_> = q.borrow_mut().drain(..).collect();
                    let n = all.len();
                    for p in all {
                        let _ = p.respond(Response::new("answered later"));
                    }
                    n
                });
                Response::new(format!("answered {n}"))
            })
            .route("/ws-static", Response::new("static, not a websocket"))
    });
    let mut ws = connect(&server.url("/ws"));
    ws.send(M::text("echo me")).unwrap();
    assert_eq!(recv(&mut ws), M::text("echo me"));
    // A handshake on a static route gets the static answer; elsewhere fetch.
    let r = http_exchange(server.port, &handshake("/ws-static", ""));
    assert!(r.ends_with("static, not a websocket"), "{r}");
    let r = http_exchange(server.port, &handshake("/nowhere", ""));
    assert!(r.ends_with("fetch GET /nowhere"), "{r}");
    // A body read by a route's deferred request.
    let mut c = Conn::new(server.port);
    assert_eq!(
        c.request("POST", "/echo", "some body").text(),
        "got some body"
    );
    // Deferred, answered from another route's handler.
    let mut later = Conn::new(server.port);
    later.send(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_for("the deferred request", || {
        c.get("/answer").text() == "answered 1"
    });
    assert_eq!(later.replies(1)[0].text(), "answered later");
    assert_eq!(counts.fetch.load(SeqCst), 1);
}

#[derive(Default)]
struct Panicky {
    errors: Arc<AtomicUsize>,
}

impl WebSocketHandler for Panicky {
    type Data = ();

    fn routes(&self) -> Routes<()> {
        Routes::new().route("/boom", |_: &mut Request<'_>, _: &Server<()>| -> Response {
            panic!("route handler panics")
        })
    }

    fn fetch(&self, _: &mut Request<'_>, _: &Server<()>) -> Response {
        Response::new("fetch")
    }

    fn error(&self, _: Option<&mut ServerWebSocket<()>>, error: &Error) {
        assert!(
            error.to_string().contains("route handler panics"),
            "{error}"
        );
        self.errors.fetch_add(1, SeqCst);
    }
}

#[test]
fn a_panicking_route_handler_answers_500_and_reports_like_fetch() {
    let handler = Panicky::default();
    let errors = handler.errors.clone();
    let server = start_with(options(), handler);
    let mut c = Conn::new(server.port);
    assert_eq!(c.get("/boom").status, 500);
    assert_eq!(errors.load(SeqCst), 1);
    // The connection and server go on.
    assert_eq!(c.get("/other").text(), "fetch");
}

struct Fixed(fn() -> Routes<()>);

impl WebSocketHandler for Fixed {
    type Data = ();
    fn routes(&self) -> Routes<()> {
        (self.0)()
    }
    fn fetch(&self, _: &mut Request<'_>, _: &Server<()>) -> Response {
        Response::new("fetch")
    }
}

#[test]
fn invalid_routes_are_refused_when_serving_and_reloading() {
    let say = |_: &mut Request<'_>, _: &Server<()>| Response::new("x");
    let bad: [fn() -> Routes<()>; 7] = [
        || Routes::new().route("no-slash", Response::new("x")),
        || Routes::new().route("/a/*/b", Response::new("x")),
        || Routes::new().route("/a/b*", Response::new("x")),
        || Routes::new().route("/a/:", Response::new("x")),
        || {
            Routes::new()
                .route("/a/:x", Response::new("x"))
                .route("/a/:y", Response::new("y"))
        },
        || Routes::new().route("/h", Response::new("x").with_header("Bad Name", "v")),
        || Routes::new().route("/m", Methods::new().method("GE T", Response::new("x"))),
    ];
    for routes in bad {
        match serve(options(), Fixed(routes)) {
            Err(Error::InvalidOption { name: "routes", .. }) => {}
            other => panic!("{:?} gave {:?}", routes(), other.map(|_| ())),
        }
    }
    // Reloading with a bad table keeps the old one.
    let app = serve(
        options(),
        Fixed(|| Routes::new().route("/", Response::new("old"))),
    )
    .unwrap();
    assert!(app.reload(bad[0]()).is_err());
    assert!(app
        .reload(Routes::new().route("/x", say).route("/x", say))
        .is_err());
    let port = app.port();
    let client = std::thread::spawn(move || {
        let r = Conn::new(port).get("/");
        r.text()
    });
    let handle = app.handle();
    let stopper = std::thread::spawn(move || {
        let text = client.join().unwrap();
        let _ = handle.stop();
        text
    });
    app.run();
    assert_eq!(stopper.join().unwrap(), "old");
}

/// Generation `g` of the reloaded table: every answer names its
/// generation and the route that gave it. Odd generations put extra
/// handler routes first, so a handler id of one generation names another
/// route (or none) in the other's table: answering with a mix of tables
/// would show.
fn generation(g: u32, reloads: Rc<Cell<u32>>) -> Routes<()> {
    let mut routes = Routes::new();
    if g % 2 == 1 {
        for i in 0..3 {
            routes = routes.route(
                &format!("/extra{i}"),
                move |_: &mut Request<'_>, _: &Server<()>| Response::new(format!("{g} extra{i}")),
            );
        }
    }
    let next = reloads.clone();
    routes
        .route("/s", Response::new(format!("{g} static")))
        .route("/h/:x", move |req: &mut Request<'_>, _: &Server<()>| {
            Response::new(format!(
                "{g} handler {}",
                req.param("x").unwrap_or_default()
            ))
        })
        .route(
            "/reload",
            move |_: &mut Request<'_>, server: &Server<()>| {
                let n = next.get() + 1;
                next.set(n);
                server.reload(generation(n, next.clone())).unwrap();
                Response::new(format!("{n} reloaded"))
            },
        )
        .fetch(move |req: &mut Request<'_>, _: &Server<()>| {
            Response::new(format!("{g} fetch {}", req.path()))
        })
}

struct Reloading;

impl WebSocketHandler for Reloading {
    type Data = ();
    fn routes(&self) -> Routes<()> {
        generation(0, Rc::new(Cell::new(0)))
    }
    fn fetch(&self, _: &mut Request<'_>, _: &Server<()>) -> Response {
        Response::new("the handler's fetch, replaced by the routes'").with_status(500)
    }
}

#[test]
fn reload_under_load_drops_no_connection_and_never_mixes_tables() {
    const CLIENTS: usize = 3;
    const ROUNDS: usize = 150;
    const RELOADS: u32 = 60;
    let server = start_with(options(), Reloading);
    let port = server.port;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            std::thread::spawn(move || {
                let mut c = Conn::new(port);
                let mut last = 0u32;
                let mut generations = std::collections::BTreeSet::new();
                for round in 0..ROUNDS {
                    // Three requests pipelined: a reload may land between them.
                    let x = format!("c{k}r{round}");
                    c.send(
                        format!(
                            "GET /s HTTP/1.1\r\nHost: x\r\n\r\nGET /h/{x} HTTP/1.1\r\nHost: x\r\n\r\nGET /none/{x} HTTP/1.1\r\nHost: x\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                    let replies = c.replies(3);
                    let wants = ["static".to_string(), format!("handler {x}"), format!("fetch /none/{x}")];
                    for (reply, want) in replies.iter().zip(wants) {
                        assert_eq!(reply.status, 200, "{reply:?}");
                        let text = reply.text();
                        let (g, rest) = text.split_once(' ').unwrap();
                        let g: u32 = g.parse().unwrap();
                        assert_eq!(rest, want, "generation {g} answered with another route");
                        assert!(g >= last, "generation went back from {last} to {g}");
                        last = g;
                        generations.insert(g);
                    }
                }
                generations.len()
            })
        })
        .collect();
    let reloader = std::thread::spawn(move || {
        let mut c = Conn::new(port);
        for n in 1..=RELOADS {
            assert_eq!(c.get("/reload").text(), format!("{n} reloaded"));
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    reloader.join().unwrap();
    let seen: Vec<usize> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    // The reloads happened while the clients ran (each saw several tables),
    // and afterwards the last table answers.
    assert!(
        seen.iter().any(|&n| n > 1),
        "no client saw a reload: {seen:?}"
    );
    let mut c = Conn::new(port);
    assert_eq!(c.get("/s").text(), format!("{RELOADS} static"));
}

struct Ip;

impl WebSocketHandler for Ip {
    type Data = ();
    fn routes(&self) -> Routes<()> {
        Routes::new().route("/ip", |req: &mut Request<'_>, server: &Server<()>| {
            Response::new(format!("{:?}", server.request_ip(req)))
        })
    }
    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        Response::new(format!("fetch {:?}", server.request_ip(req)))
    }
}

#[test]
fn request_ip_gives_the_clients_address_and_port() {
    let server = start_with(options(), Ip);
    let mut c = Conn::new(server.port);
    let local = c.s.local_addr().unwrap();
    assert_eq!(c.get("/ip").text(), format!("{:?}", Some(local)));
    assert_eq!(c.get("/other").text(), format!("fetch {:?}", Some(local)));
}

struct Timeouts {
    pending: RefCell<Vec<PendingRequest<()>>>,
}

impl WebSocketHandler for Timeouts {
    type Data = ();
    fn routes(&self) -> Routes<()> {
        Routes::new()
    }
    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        let seconds: u32 = req.query_param("t").unwrap().parse().unwrap();
        // Set twice: the last one counts (0 turns the first off).
        server.timeout(req, 1);
        server.timeout(req, seconds);
        if let Some(p) = server.defer_request(req) {
            self.pending.borrow_mut().push(p);
        }
        Response::new("")
    }
}

#[test]
fn timeout_closes_a_silent_pending_request_and_zero_turns_it_off() {
    let server = start_with(
        options(),
        Timeouts {
            pending: RefCell::new(Vec::new()),
        },
    );
    let mut short = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut off = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    off.write_all(b"GET /?t=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    short
        .write_all(b"GET /?t=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    short.set_read_timeout(Some(TIMEOUT)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    match short.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!(
            "the timed-out request got {other:?} after {:?}",
            started.elapsed()
        ),
    }
    // The same timer sweep would have closed the other one too.
    std::thread::sleep(Duration::from_millis(500));
    off.set_nonblocking(true).unwrap();
    match off.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the request without a timeout got {other:?}"),
    }
}

#[test]
fn a_reload_from_fetch_takes_effect_for_the_next_request_on_the_connection() {
    struct Swap;
    impl WebSocketHandler for Swap {
        type Data = ();
        fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
            if req.path() == "/install" {
                server
                    .reload(Routes::new().route("/", Response::new("routed")))
                    .unwrap();
                return Response::new("installed");
            }
            Response::new("fetch")
        }
    }
    let server = start_with(
        ServeOptions {
            websocket: WebSocketOptions::default(),
            ..options()
        },
        Swap,
    );
    let mut c = Conn::new(server.port);
    assert_eq!(c.get("/").text(), "fetch");
    // Pipelined in one write: the reload applies from the very next request.
    c.send(b"GET /install HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let texts: Vec<String> = c.replies(2).iter().map(Reply::text).collect();
    assert_eq!(texts, ["installed", "routed"]);
}

struct Threaded;

impl WebSocketHandler for Threaded {
    type Data = ();
    fn routes(&self) -> Routes<()> {
        // Made on each thread of the server.
        let thread = format!("{:?}", std::thread::current().id());
        Routes::new()
            .route("/static", Response::new("static"))
            .route("/thread", move |_: &mut Request<'_>, _: &Server<()>| {
                Response::new(thread.clone())
            })
    }
    fn fetch(&self, _: &mut Request<'_>, _: &Server<()>) -> Response {
        Response::new("fetch")
    }
}

#[test]
fn a_server_on_several_threads_routes_on_each() {
    let server = try_start_threaded(
        ServeOptions {
            threads: 2,
            ..options()
        },
        Threaded,
    )
    .unwrap();
    let mut threads = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let mut c = Conn::new(server.port);
        assert_eq!(c.get("/static").text(), "static");
        assert_eq!(c.get("/other").text(), "fetch");
        let thread = c.get("/thread").text();
        assert!(thread.starts_with("ThreadId("), "{thread}");
        threads.insert(thread);
    }
    // Each thread answers from the routes it made.
    assert!(!threads.is_empty() && threads.len() <= 2, "{threads:?}");
}
