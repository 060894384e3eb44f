//! wss:// clients: certificates checked against the system's roots and
//! extra CAs, host names checked, the loud opt-out (needs `--features tls`).
#![cfg(feature = "tls")]

mod common;

use common::certs::certificate;
use common::client::*;
use common::probe::Probe;
use common::*;
use uws::{ClientTls, ConnectOptions, Pem, ServeOptions, TlsOptions, WebSocketOptions};

fn tls_server(host: &str) -> (String, Running<common::probe::Data>) {
    let (cert, key) = certificate(host);
    let server = start_with(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            tls: Some(TlsOptions::new(Pem::Memory(cert.clone()), Pem::Memory(key))),
            websocket: WebSocketOptions::default(),
            stop_grace_period: std::time::Duration::from_secs(1),
            ..Default::default()
        },
        Probe::default(),
    );
    (cert, server)
}

fn trusting(ca: &str) -> ConnectOptions {
    ConnectOptions {
        tls: ClientTls {
            ca: Some(Pem::Memory(ca.to_string())),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn echo() -> Script {
    Script {
        send: vec!["echo over tls".into()],
        close_after: Some(1),
        echo: false,
    }
}

fn tls_error(url: &str, options: ConnectOptions) -> String {
    let recorder = Recorder::new(Script::default());
    spawn(url, options, &recorder).join();
    let events = recorder.log.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], "error-state:3");
    assert_eq!(recorder.drops(), 1);
    events[1].clone()
}

#[test]
fn wss_with_a_trusted_ca_and_the_right_host() {
    let (cert, server) = tls_server("localhost");
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{}/?name=t", server.port);
        let events = run_to_end(&url, trusting(&cert), echo());
        assert_eq!(
            events,
            ["open:", "message:over tls", "close:1000:done"],
            "{host}"
        );
    }
}

#[test]
fn an_untrusted_certificate_fails_the_handshake() {
    let (_cert, server) = tls_server("localhost");
    let url = format!("wss://localhost:{}/", server.port);
    let error = tls_error(&url, ConnectOptions::default());
    assert!(
        error.starts_with(&format!(
            "error:TLS handshake with {url} failed: certificate verify failed"
        )),
        "{error}"
    );
    // Another CA does not help.
    let (other, _) = certificate("localhost");
    let error = tls_error(&url, trusting(&other));
    assert!(error.contains("certificate verify failed"), "{error}");
}

#[test]
fn a_certificate_for_another_host_fails_the_handshake() {
    // Issued for other.test (and 127.0.0.1), reached as localhost.
    let (cert, server) = tls_server("other.test");
    let url = format!("wss://localhost:{}/", server.port);
    let error = tls_error(&url, trusting(&cert));
    assert!(
        error.contains("certificate verify failed: hostname mismatch"),
        "{error}"
    );
    // The IP in the certificate matches.
    let url = format!("wss://127.0.0.1:{}/?name=ip", server.port);
    let events = run_to_end(&url, trusting(&cert), echo());
    assert_eq!(events[0], "open:");
}

#[test]
fn the_opt_out_accepts_any_certificate() {
    let (_cert, server) = tls_server("other.test");
    let options = ConnectOptions {
        tls: ClientTls {
            danger_accept_invalid_certs: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let url = format!("wss://localhost:{}/?name=any", server.port);
    let events = run_to_end(&url, options, echo());
    assert_eq!(events, ["open:", "message:over tls", "close:1000:done"]);
}

#[test]
fn tls_to_a_plain_server_and_plain_to_a_tls_server_fail() {
    let plain = start(WebSocketOptions::default(), Probe::default());
    let url = format!("wss://127.0.0.1:{}/", plain.port);
    let error = tls_error(&url, ConnectOptions::default());
    assert!(
        error.starts_with(&format!("error:TLS handshake with {url} failed")),
        "{error}"
    );
    let (_cert, secure) = tls_server("localhost");
    let url = format!("ws://127.0.0.1:{}/", secure.port);
    let error = tls_error(&url, ConnectOptions::default());
    assert!(
        error.starts_with(&format!("error:WebSocket handshake with {url} failed")),
        "{error}"
    );
}

#[test]
fn a_ca_that_does_not_load_is_an_error_from_connect() {
    struct Nothing;
    impl uws::ClientHandler for Nothing {
        type Data = ();
    }
    let bad = ConnectOptions {
        tls: ClientTls {
            ca: Some(Pem::Memory("not a certificate".into())),
            ..Default::default()
        },
        ..Default::default()
    };
    let r = uws::connect("wss://127.0.0.1:1/", bad, Nothing, ());
    assert!(
        matches!(r, Err(uws::Error::Tls { .. })),
        "{:?}",
        r.map(|_| ())
    );
    let missing = ConnectOptions {
        tls: ClientTls {
            ca: Some(Pem::File("/nonexistent/ca.pem".into())),
            ..Default::default()
        },
        ..Default::default()
    };
    match uws::connect("wss://127.0.0.1:1/", missing, Nothing, ()) {
        Err(uws::Error::Tls { path, .. }) => assert_eq!(path, "/nonexistent/ca.pem"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}
