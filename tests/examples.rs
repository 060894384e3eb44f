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
    let r = http_exchange(echo.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 426 "), "{r}");
}
