//! The client examples, run as a user runs them: built binaries against a
//! server of ours on port 0.

mod common;

use std::process::{Command, Output};

use common::probe::Probe;
use common::*;
use uws::WebSocketOptions;

fn example(name: &str, args: &[&str]) -> Output {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    Command::new(dir.join(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run example {name} in {}: {e}", dir.display()))
}

#[test]
fn client_sends_prints_and_exits_after_count() {
    let probe = Probe::default();
    let server = start(WebSocketOptions::default(), probe.clone());
    let url = server.url("/?name=cli");
    let out = example(
        "client",
        &[
            &url,
            "--protocol",
            "soap",
            "--protocol",
            "wamp",
            "--header",
            "X-Test: yes",
            "--send",
            "echo one",
            "--send",
            "echo two",
            "--count",
            "2",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "open soap\nmessage one\nmessage two\n", "{out:?}");
    assert!(out.status.success(), "{out:?}");
    wait_for("the server's close", || probe.has("close:cli:1000:"));
}

#[test]
fn client_prints_the_servers_close_and_errors() {
    let server = start(WebSocketOptions::default(), Probe::default());
    let out = example("client", &[&server.url("/?name=closer")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout, "open\nmessage welcome and goodbye\nclose 4002 go away\n",
        "{out:?}"
    );
    assert!(out.status.success());
    let out = example("client", &["ws://127.0.0.1:1/"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("error: could not connect"), "{stdout}");
    assert_eq!(out.status.code(), Some(1));
    let out = example("client", &["--nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: client URL"));
    let out = example("client", &["--help"]);
    assert_eq!(out.status.code(), Some(0));
}
