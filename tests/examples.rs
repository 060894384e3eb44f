//! The examples, run as a user runs them: built binaries on port 0.

mod common;

use common::*;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message as M;

#[test]
fn chat_publishes_ready_then_every_line_to_everyone() {
    let chat = run_example("chat", &["--clients", "3"]);
    let url = |q: &str| format!("ws://127.0.0.1:{}/{q}", chat.port);
    let mut ann = connect(&url("?name=ann"));
    let mut bob = connect(&url("?name=bob"));
    let mut request = url("").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Cookie", "theme=dark; name=cat".parse().unwrap());
    let (mut cat, _) = connect_with(request);
    for c in [&mut ann, &mut bob, &mut cat] {
        assert_eq!(recv_text(c), "ready");
    }
    // One line at a time: lines from different sockets may arrive in
    // either order.
    bob.send(M::text("hello")).unwrap();
    for c in [&mut ann, &mut bob, &mut cat] {
        assert_eq!(recv_text(c), "bob: hello");
    }
    cat.send(M::text("hi bob")).unwrap();
    for c in [&mut ann, &mut bob, &mut cat] {
        assert_eq!(recv_text(c), "cat: hi bob");
    }
}

#[test]
fn echo_returns_each_opcode_and_enforces_max_payload() {
    let echo = run_example("echo", &["--max-payload", "100", "--idle-timeout", "30"]);
    let mut c = connect(&format!("ws://127.0.0.1:{}/", echo.port));
    c.send(M::text("text")).unwrap();
    assert_eq!(recv(&mut c), M::text("text"));
    c.send(M::binary(vec![1u8, 2, 3])).unwrap();
    assert_eq!(recv(&mut c), M::binary(vec![1u8, 2, 3]));
    c.send(M::binary(vec![0u8; 101])).unwrap();
    // An oversized message fails the connection with 1009, as Bun does.
    assert_eq!(
        recv_close(&mut c),
        Some((1009, "Received too big message".to_string()))
    );
    // Any other request: 200 with its body echoed, whatever the method.
    let r = http_exchange(echo.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert!(r.ends_with("Content-Length: 0\r\n\r\n"), "{r}");
    for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let r = http_exchange(
            echo.port,
            format!("{method} /x HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nsome body")
                .as_bytes(),
        );
        assert!(r.starts_with("HTTP/1.1 200 "), "{method}: {r}");
        assert!(r.ends_with("\r\n\r\nsome body"), "{method}: {r}");
    }
}

#[test]
fn echo_with_reply_answers_http_requests_at_once_and_still_echoes() {
    let echo = run_example("echo", &["--reply", "Hello, World!"]);
    // Pipelined keep-alive requests, a body too: each gets the reply, in order.
    let two = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /y HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", echo.port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    std::io::Write::write_all(&mut s, two).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.windows(13).filter(|w| w == b"Hello, World!").count() < 2 {
        let n = std::io::Read::read(&mut s, &mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(got).unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 ").count(), 2, "{text}");
    assert_eq!(text.matches("Content-Length: 13\r\n").count(), 2, "{text}");
    let mut c = connect(&format!("ws://127.0.0.1:{}/", echo.port));
    c.send(M::text("still echoes")).unwrap();
    assert_eq!(recv(&mut c), M::text("still echoes"));
}

#[test]
fn routes_answers_each_route_of_the_issue_list() {
    let site = run_example("routes", &[]);
    let port = site.port;
    let get = |path: &str| {
        http_exchange(
            port,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
    };
    let answer = |r: &str| -> (u16, String) {
        let status = r[9..12].parse().unwrap();
        let body = r.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, body)
    };
    assert_eq!(answer(&get("/")), (200, "Home".into()));
    assert_eq!(answer(&get("/api/status")), (200, "OK".into()));
    assert_eq!(answer(&get("/users/42")), (200, "Hello User 42!".into()));
    assert_eq!(
        answer(&get("/users/J%C3%BCrgen")),
        (200, "Hello User Jürgen!".into())
    );
    assert_eq!(answer(&get("/api/posts")), (200, "List posts".into()));
    let r = http_exchange(
        port,
        b"POST /api/posts HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"a\":\"b c\"}",
    );
    assert_eq!(answer(&r), (201, "created: {\"a\":\"b c\"}".into()));
    assert_eq!(
        answer(&get("/api/anything/else")),
        (404, "Not found".into())
    );
    let r = get("/blog/hello");
    assert_eq!(answer(&r), (302, String::new()));
    assert!(r.contains("\r\nLocation: /blog/hello/world\r\n"), "{r}");
    assert_eq!(answer(&get("/ip")), (200, "127.0.0.1".into()));
    assert_eq!(
        answer(&get("/nothing/here")),
        (404, "Unmatched route".into())
    );
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/ws"));
    ws.send(M::text("echo")).unwrap();
    assert_eq!(recv(&mut ws), M::text("echo"));
    // Reloading swaps the routes; the WebSocket stays open.
    assert_eq!(answer(&get("/reload")), (200, "reloaded".into()));
    assert_eq!(answer(&get("/")), (200, "Home 2".into()));
    assert_eq!(answer(&get("/api/status")), (200, "OK".into()));
    ws.send(M::text("still open")).unwrap();
    assert_eq!(recv(&mut ws), M::text("still open"));
}

/// Runs a built example to its end (with a bound on the time it may take).
fn example_output(name: &str, args: &[&str]) -> std::process::Output {
    let mut child = std::process::Command::new(example_path(name))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("example {name} {args:?} kept running");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn examples_print_usage_for_help_and_refuse_unknown_or_incomplete_flags() {
    for name in ["chat", "echo", "routes"] {
        let usage = format!("usage: {name} [--port N]");
        for help in ["--help", "-h"] {
            let out = example_output(name, &[help]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{name} {help}");
            assert!(stdout.starts_with(&usage), "{name} {help}: {stdout}");
            assert!(out.stderr.is_empty(), "{name} {help}");
        }
        for (args, problem) in [
            (&["--bogus"][..], "unknown argument \"--bogus\""),
            (&["--port", "0", "extra"][..], "unknown argument \"extra\""),
            (&["--port"][..], "--port needs a value"),
        ] {
            let out = example_output(name, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
            assert!(
                stderr.starts_with(&format!("{problem}\n{usage}")),
                "{name} {args:?}: {stderr}"
            );
            assert!(out.stdout.is_empty(), "{name} {args:?} started anyway");
        }
    }
}
