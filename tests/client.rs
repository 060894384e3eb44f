//! The WebSocket client against our own server (the probe handler).

mod common;

use common::client::*;
use common::probe::Probe;
use common::*;
use uws::{ConnectOptions, WebSocketOptions};

fn script(send: &[&str], close_after: Option<usize>) -> Script {
    Script {
        send: send.iter().map(|s| s.to_string()).collect(),
        close_after,
        echo: false,
    }
}

#[test]
fn echo_round_trip_and_clean_close() {
    let probe = Probe::default();
    let server = start(WebSocketOptions::default(), probe.clone());
    let events = run_to_end(
        &server.url("/?name=c"),
        ConnectOptions::default(),
        script(&["echo hello", "echo world"], Some(2)),
    );
    assert_eq!(
        events,
        ["open:", "message:hello", "message:world", "close:1000:done"]
    );
    wait_for("the server's close", || probe.has("close:c:1000:done"));
}
