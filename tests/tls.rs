//! wss:// with a certificate made by the test (needs `--features tls`).
//! The client side is rustls and the certificates come from rcgen: the
//! tests need no OpenSSL of their own.
#![cfg(feature = "tls")]

mod common;

use std::net::TcpStream;
use std::sync::Arc;

use common::certs::{certificate, certificate_for};
use common::probe::Probe;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tungstenite::Message as M;
use uws::{serve, Error, Pem, ServeOptions, TlsOptions, WebSocketOptions};

/// `key` as an encrypted PKCS#8 PEM (PBES2: PBKDF2-SHA256, AES-256-CBC).
fn encrypted_key(key: &rcgen::KeyPair, passphrase: &str) -> String {
    let der = key.serialize_der();
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"uws salt", &[7; 16])
            .unwrap();
    let encrypted = info.encrypt_with_params(params, passphrase).unwrap();
    encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

fn tls_server(tls: TlsOptions) -> (Probe, Running<common::probe::Data>) {
    let probe = Probe::default();
    let running = start_with(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            tls: Some(tls),
            websocket: WebSocketOptions::default(),
            ..Default::default()
        },
        probe.clone(),
    );
    (probe, running)
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;
type TlsClient = tungstenite::WebSocket<TlsStream>;

/// A TLS connection to 127.0.0.1:`port` for server name `host` that trusts
/// `trusted_cert` and, when given, presents `identity` (cert PEM, key PEM).
/// Errors if the TLS handshake fails.
fn tls_connect(
    port: u16,
    host: &str,
    trusted_cert: &str,
    identity: Option<(&str, &str)>,
) -> std::io::Result<TlsStream> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(trusted_cert.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let mut tls = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(tls, tcp))
}

fn wss(port: u16, host: &str, trusted_cert: &str, path: &str) -> TlsClient {
    let stream = tls_connect(port, host, trusted_cert, None).expect("TLS handshake");
    let (ws, response) =
        tungstenite::client(format!("wss://{host}:{port}{path}"), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

fn text(c: &mut TlsClient) -> String {
    loop {
        match c.read().unwrap() {
            M::Text(t) => return t.to_string(),
            M::Ping(_) | M::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn wss_echo_and_pub_sub_from_in_memory_pem() {
    let (cert, key) = certificate("localhost");
    let (_probe, server) = tls_server(TlsOptions::new(Pem::Memory(cert.clone()), Pem::Memory(key)));
    let mut a = wss(server.port, "localhost", &cert, "/?name=a");
    let mut b = wss(server.port, "localhost", &cert, "/?name=b");
    a.send(M::text("echo over tls")).unwrap();
    assert_eq!(text(&mut a), "over tls");
    for c in [&mut a, &mut b] {
        c.send(M::text("sub room")).unwrap();
        assert_eq!(text(c), "true");
    }
    a.send(M::text("pub room secret news")).unwrap();
    assert_eq!(text(&mut b), "secret news");
    a.send(M::text("spub room to all")).unwrap();
    assert_eq!(text(&mut a), "to all");
    assert_eq!(text(&mut b), "to all");
}

#[test]
fn certificate_files_and_sni_server_names() {
    let dir = std::env::temp_dir().join(format!("uws-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = certificate("localhost");
    let (other_cert, other_key) = certificate("other.test");
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let mut tls = TlsOptions::new(
        Pem::File(dir.join("cert.pem")),
        Pem::File(dir.join("key.pem")),
    );
    tls.server_names.push((
        "other.test".into(),
        TlsOptions::new(Pem::Memory(other_cert.clone()), Pem::Memory(other_key)),
    ));
    let (_probe, server) = tls_server(tls);
    let mut a = wss(server.port, "localhost", &cert, "/?name=a");
    a.send(M::text("echo main")).unwrap();
    assert_eq!(text(&mut a), "main");
    // The SNI name gets its own certificate (verification would fail otherwise).
    let mut b = wss(server.port, "other.test", &other_cert, "/?name=b");
    b.send(M::text("echo sni")).unwrap();
    assert_eq!(text(&mut b), "sni");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_plain_text_client_fails_cleanly_and_the_server_goes_on() {
    let (cert, key) = certificate("localhost");
    let (probe, server) = tls_server(TlsOptions::new(Pem::Memory(cert.clone()), Pem::Memory(key)));
    let reply = raw_exchange(server.port, &handshake("/?name=plain", ""));
    assert!(
        !reply.starts_with(b"HTTP/1.1 101"),
        "no plain-text upgrade over a TLS port"
    );
    let mut a = wss(server.port, "localhost", &cert, "/?name=a");
    a.send(M::text("echo fine")).unwrap();
    assert_eq!(text(&mut a), "fine");
    assert!(!probe.has("open:plain"));
}

fn serve_error(tls: TlsOptions) -> Error {
    serve(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            tls: Some(tls),
            ..Default::default()
        },
        Probe::default(),
    )
    .map(|_| ())
    .unwrap_err()
}

#[test]
fn missing_bad_and_mismatched_certificates_are_errors_not_plain_listeners() {
    let (cert, key) = certificate("localhost");
    let (_, other_key) = certificate("localhost");
    let e = serve_error(TlsOptions::new(
        Pem::File("/nonexistent/cert.pem".into()),
        Pem::Memory(key.clone()),
    ));
    assert!(
        matches!(&e, Error::Tls { path, .. } if path == "/nonexistent/cert.pem"),
        "{e}"
    );
    let e = serve_error(TlsOptions::new(
        Pem::Memory("not a certificate".into()),
        Pem::Memory(key),
    ));
    assert!(matches!(&e, Error::Tls { .. }), "{e}");
    let e = serve_error(TlsOptions::new(
        Pem::Memory(cert.clone()),
        Pem::Memory(other_key),
    ));
    assert!(e.to_string().contains("mismatch"), "{e}");
    // A bad certificate for an SNI name is an error too, not a silent skip.
    let (good_cert, good_key) = certificate("localhost");
    let mut tls = TlsOptions::new(Pem::Memory(good_cert), Pem::Memory(good_key));
    tls.server_names.push((
        "other.test".into(),
        TlsOptions::new(Pem::Memory(cert), Pem::Memory("garbage".into())),
    ));
    let e = serve_error(tls);
    assert!(matches!(&e, Error::Tls { .. }), "{e}");
}

#[test]
fn the_echo_example_serves_wss_with_cert_and_key_files() {
    let dir = std::env::temp_dir().join(format!("uws-echo-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = certificate("localhost");
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let cert_path = dir.join("cert.pem").display().to_string();
    let key_path = dir.join("key.pem").display().to_string();
    let echo = run_example("echo", &["--cert", &cert_path, "--key", &key_path]);
    let mut c = wss(echo.port, "localhost", &cert, "/");
    c.send(M::text("secure echo")).unwrap();
    assert_eq!(text(&mut c), "secure echo");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_encrypted_key_needs_its_passphrase() {
    let key = rcgen::KeyPair::generate().unwrap();
    let own_cert = certificate_for("localhost", &key);
    let encrypted = encrypted_key(&key, "open sesame");

    let mut tls = TlsOptions::new(
        Pem::Memory(own_cert.clone()),
        Pem::Memory(encrypted.clone()),
    );
    tls.passphrase = Some("wrong".into());
    assert!(matches!(serve_error(tls), Error::Tls { .. }));

    let mut tls = TlsOptions::new(Pem::Memory(own_cert.clone()), Pem::Memory(encrypted));
    tls.passphrase = Some("open sesame".into());
    let (_probe, server) = tls_server(tls);
    let mut c = wss(server.port, "localhost", &own_cert, "/?name=a");
    c.send(M::text("echo unlocked")).unwrap();
    assert_eq!(text(&mut c), "unlocked");
}

#[test]
fn with_a_ca_client_certificates_are_verified_when_presented() {
    let (cert, key) = certificate("localhost");
    let mut tls = TlsOptions::new(Pem::Memory(cert.clone()), Pem::Memory(key.clone()));
    tls.ca = Some(Pem::Memory(cert.clone()));
    let (probe, server) = tls_server(tls);
    let connect_with = |identity: Option<(&str, &str)>, name: &str| match tls_connect(
        server.port,
        "localhost",
        &cert,
        identity,
    ) {
        Err(_) => false,
        Ok(stream) => tungstenite::client(
            format!("wss://localhost:{}/?name={name}", server.port),
            stream,
        )
        .is_ok(),
    };
    // Signed by the CA (here: the CA itself): accepted.
    assert!(connect_with(Some((&cert, &key)), "trusted"));
    // Signed by nobody the server trusts: refused.
    let (other_cert, other_key) = certificate("stranger");
    assert!(
        !connect_with(Some((&other_cert, &other_key)), "stranger"),
        "an untrusted client certificate must be refused"
    );
    // uSockets asks for a certificate but does not require one.
    assert!(connect_with(None, "anonymous"));
    wait_for("opens", || {
        probe.has("open:trusted") && probe.has("open:anonymous")
    });
    assert!(!probe.has("open:stranger"));
}
