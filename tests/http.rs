//! The HTTP side: `fetch`, responses, upgrades, subprotocols, listening.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tungstenite::client::IntoClientRequest;
use uws::{
    serve, Error, Message, OwnedMessage, Request, Response, ServeOptions, Server, ServerWebSocket,
    SubprotocolPolicy, UpgradeOptions, WebSocketHandler, WebSocketOptions,
};

/// Answers plain requests by path and upgrades `/ws...` according to the
/// query: `proto=NAME` picks a subprotocol, `bunproto=NAME` picks it the
/// Bun way (a header), `cookie=V` adds a Set-Cookie to the 101.
#[derive(Clone, Default)]
struct Site {
    seen: Arc<Mutex<Vec<String>>>,
}

impl WebSocketHandler for Site {
    type Data = String;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<String>) -> Response {
        let mut seen = vec![
            format!("method={}", req.method()),
            format!("path={}", req.path()),
            format!("target={}", req.path_and_query()),
            format!("url={}", req.url()),
            format!("query={}", req.query()),
        ];
        if let Some(v) = req.header("X-MiXeD-Case") {
            seen.push(format!("header={v}"));
        }
        for (k, v) in req.cookies() {
            seen.push(format!("cookie:{k}={v}"));
        }
        let offered: Vec<&str> = req.protocols().collect();
        seen.push(format!("offered={}", offered.join("|")));
        self.seen.lock().unwrap().extend(seen);
        match req.path() {
            "/panic" => panic!("fetch failed"),
            "/teapot" => {
                return Response::new("short and stout")
                    .with_status(418)
                    .with_header("X-Brew", "earl grey")
            }
            "/bad-header" => return Response::new("x").with_header("X-Evil", "a\r\nInjected: 1"),
            "/param" => {
                let v = req
                    .query_param("q")
                    .map(|v| v.into_owned())
                    .unwrap_or_else(|| "none".into());
                return Response::new(v);
            }
            _ => {}
        }
        let mut options =
            UpgradeOptions::new(req.query_param("name").unwrap_or_default().into_owned());
        if let Some(p) = req.query_param("proto") {
            options = options.with_protocol(p.into_owned());
        }
        if let Some(p) = req.query_param("bunproto") {
            options = options.with_header("Sec-WebSocket-Protocol", p.into_owned());
        }
        if let Some(c) = req.query_param("cookie") {
            options = options.with_header("Set-Cookie", format!("session={c}; Path=/"));
        }
        if req.query_param("evil").is_some() {
            options = options.with_header("X-Evil", "a\r\nb");
        }
        let first = server.upgrade(req, options);
        // A request upgrades once; a refused one is not retried here.
        let second = first && server.upgrade(req, UpgradeOptions::new("again".into()));
        self.seen
            .lock()
            .unwrap()
            .push(format!("upgrade={first},{second}"));
        if first {
            return Response::new("ignored");
        }
        Response::new("no upgrade").with_status(400)
    }

    fn open(&self, ws: &mut ServerWebSocket<String>) {
        let greeting = format!("hello {}", ws.data());
        ws.send_text(&greeting);
    }

    fn message(&self, ws: &mut ServerWebSocket<String>, message: Message<'_>) {
        ws.send(message, false);
    }

    fn error(&self, _ws: Option<&mut ServerWebSocket<String>>, error: &Error) {
        self.seen.lock().unwrap().push(format!("error={error}"));
    }
}

fn site() -> (Site, Running<String>) {
    let site = Site::default();
    let running = start(WebSocketOptions::default(), site.clone());
    (site, running)
}

fn http(port: u16, request: &str) -> String {
    http_exchange(port, request.as_bytes())
}

#[test]
fn fetch_sees_plain_requests_and_its_response_is_sent() {
    let (site, server) = site();
    let r = http(
        server.port,
        "POST /teapot?x=1&y=%20z HTTP/1.1\r\nHost: example.test:9\r\nx-mixed-CASE: yes\r\n\
         Cookie: a=1; b=\"two\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 418 "), "{r}");
    assert!(r.contains("X-Brew: earl grey\r\n"), "{r}");
    assert!(r.ends_with("short and stout"), "{r}");
    let seen = site.seen.lock().unwrap().clone();
    for want in [
        "method=POST",
        "path=/teapot",
        "target=/teapot?x=1&y=%20z",
        "url=http://example.test:9/teapot?x=1&y=%20z",
        "query=x=1&y=%20z",
        "header=yes",
        "cookie:a=1",
        "cookie:b=two",
    ] {
        assert!(seen.iter().any(|s| s == want), "missing {want} in {seen:?}");
    }
}

#[test]
fn query_parameters_are_decoded() {
    let (_site, server) = site();
    let r = http(
        server.port,
        "GET /param?q=caf%C3%A9+au+lait HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.ends_with("café au lait"), "{r}");
}

#[test]
fn a_request_that_is_not_a_handshake_is_not_upgraded() {
    let (site, server) = site();
    let r = http(
        server.port,
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    // Wrong version: refused with 426 before `fetch` (RFC 6455 4.2.2).
    let r = http(
        server.port,
        &String::from_utf8(handshake("/ws", ""))
            .unwrap()
            .replace("Version: 13", "Version: 8"),
    );
    assert!(r.starts_with("HTTP/1.1 426 "), "{r}");
    // No version: not a handshake, `fetch` refuses to upgrade it.
    let r = http(
        server.port,
        &String::from_utf8(handshake("/ws", ""))
            .unwrap()
            .replace("Sec-WebSocket-Version: 13\r\n", ""),
    );
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    assert!(
        site.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| *s == "upgrade=false,false")
            .count()
            == 2
    );
}

#[test]
fn upgrade_sends_extra_headers_and_opens_with_the_data() {
    let (site, server) = site();
    let (mut c, response) = connect_with(server.url("/ws?name=ann&cookie=s3cret"));
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["set-cookie"], "session=s3cret; Path=/");
    assert!(response.headers().get("sec-websocket-protocol").is_none());
    assert_eq!(recv_text(&mut c), "hello ann");
    assert!(
        site.seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "upgrade=true,false"),
        "a request upgrades once"
    );
}

#[test]
fn an_upgrade_with_an_unsafe_header_is_refused() {
    let (_site, server) = site();
    let r = http(
        server.port,
        &String::from_utf8(handshake("/ws?evil=1", "")).unwrap(),
    );
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
}

fn offer(url: &str, protocols: &str) -> tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    request
}

#[test]
fn the_first_offered_subprotocol_is_answered_by_default_as_in_bun() {
    let (_site, server) = site();
    // Offered, none chosen: Bun answers the first offer.
    let (_c, response) = connect_with(offer(&server.url("/ws?name=a"), "chat, superchat"));
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    // Nothing offered: nothing answered.
    let (_c, response) = connect_with(server.url("/ws?name=n"));
    assert!(response.headers().get("sec-websocket-protocol").is_none());
}

#[test]
fn with_the_explicit_policy_only_a_subprotocol_the_app_chose_is_sent_back() {
    let site = Site::default();
    let server = start(
        WebSocketOptions {
            subprotocols: SubprotocolPolicy::Explicit,
            ..Default::default()
        },
        site.clone(),
    );
    // Offered but not chosen: no protocol header (uWebSockets alone would echo "chat").
    let r = http(
        server.port,
        &String::from_utf8(handshake(
            "/ws?name=a",
            "Sec-WebSocket-Protocol: chat, superchat\r\n",
        ))
        .unwrap(),
    );
    assert!(r.starts_with("HTTP/1.1 101 "), "{r}");
    assert!(
        !r.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{r}"
    );
    // Chosen from the offer, either way.
    let (_c, response) = connect_with(offer(
        &server.url("/ws?name=b&proto=superchat"),
        "chat, superchat",
    ));
    assert_eq!(response.headers()["sec-websocket-protocol"], "superchat");
    let (_c, response) = connect_with(offer(
        &server.url("/ws?name=c&bunproto=chat"),
        "chat, superchat",
    ));
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    // Chosen but not offered: refused.
    let r = http(
        server.port,
        &String::from_utf8(handshake(
            "/ws?proto=other",
            "Sec-WebSocket-Protocol: chat\r\n",
        ))
        .unwrap(),
    );
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    assert!(site
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s == "offered=chat|superchat"));
}

#[test]
fn a_panic_in_fetch_answers_500_and_the_server_goes_on() {
    let (site, server) = site();
    let r = http(
        server.port,
        "GET /panic HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 500 "), "{r}");
    assert!(site
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s == "error=handler `fetch` panicked: fetch failed"));
    let r = http(
        server.port,
        "GET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 418 "), "{r}");
}

#[test]
fn a_response_with_an_unsafe_header_becomes_a_500() {
    let (_site, server) = site();
    let r = http(
        server.port,
        "GET /bad-header HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 500 "), "{r}");
    assert!(!r.contains("Injected"), "{r}");
}

#[test]
fn serve_reports_a_taken_port_and_bad_options_as_errors() {
    let (_site, server) = site();
    let taken = ServeOptions {
        hostname: "127.0.0.1".into(),
        port: server.port,
        ..Default::default()
    };
    // SO_REUSEPORT lets a second server share a port; use a plain socket
    // holding a port without it to provoke the error.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let err = serve(
        ServeOptions {
            port,
            ..taken.clone()
        },
        Site::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Listen { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()));
    let err = serve(
        ServeOptions {
            websocket: WebSocketOptions {
                idle_timeout: 5000,
                ..Default::default()
            },
            ..taken
        },
        Site::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                name: "idle_timeout",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_server_can_listen_on_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("uws-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let _ = std::fs::remove_file(&path);
    let running = start_with(
        ServeOptions {
            unix: Some(path.clone()),
            ..Default::default()
        },
        Site::default(),
    );
    assert_eq!(running.port, 0);
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 418 "), "{out}");
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn another_thread_can_publish_through_a_handle() {
    #[derive(Clone)]
    struct Room;
    impl WebSocketHandler for Room {
        type Data = ();
        fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
            accept_upgrade(req, server)
        }
        fn open(&self, ws: &mut ServerWebSocket<()>) {
            ws.subscribe("news");
            ws.send_text("joined");
        }
    }
    let server = start(WebSocketOptions::default(), Room);
    let mut c = connect(&server.url("/"));
    assert_eq!(recv_text(&mut c), "joined");
    let handle = server.handle.clone();
    std::thread::spawn(move || {
        handle
            .publish("news", OwnedMessage::from("from a thread"), false)
            .unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(recv_text(&mut c), "from a thread");
}

#[cfg(not(feature = "tls"))]
#[test]
fn tls_without_the_feature_is_an_error() {
    let err = serve(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            tls: Some(uws::TlsOptions::new(
                uws::Pem::Memory("cert".into()),
                uws::Pem::Memory("key".into()),
            )),
            ..Default::default()
        },
        Site::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidOption { name: "tls", .. }),
        "{err}"
    );
}
