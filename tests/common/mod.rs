//! Test harness: a real server on its own thread on 127.0.0.1:0, and
//! real clients (tungstenite, or raw TCP) with bounded waits.
#![allow(dead_code)]

pub mod deflate;
pub mod probe;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
use tungstenite::stream::MaybeTlsStream;
use uws::{serve, ServeOptions, ServerHandle, WebSocketHandler, WebSocketOptions};

/// Longest any single wait in a test may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub type Client = tungstenite::WebSocket<MaybeTlsStream<TcpStream>>;

/// A server running on its own thread; stopped and joined on drop.
pub struct Running<T: 'static> {
    pub port: u16,
    pub handle: ServerHandle<T>,
    thread: Option<JoinHandle<()>>,
}

pub fn start<H: WebSocketHandler + Send>(
    websocket: WebSocketOptions,
    handler: H,
) -> Running<H::Data> {
    start_with(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            websocket,
            ..Default::default()
        },
        handler,
    )
}

pub fn start_with<H: WebSocketHandler + Send>(
    options: ServeOptions,
    handler: H,
) -> Running<H::Data> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let app = serve(options, handler).expect("serve");
        tx.send((app.port(), app.handle())).unwrap();
        app.run();
    });
    let (port, handle) = rx.recv_timeout(TIMEOUT).expect("server did not start");
    Running {
        port,
        handle,
        thread: Some(thread),
    }
}

impl<T: 'static> Running<T> {
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, path)
    }

    /// Stops the server and waits (bounded) for `run` to return.
    pub fn stop(&mut self) {
        let _ = self.handle.stop();
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + TIMEOUT;
            while !t.is_finished() {
                assert!(Instant::now() < deadline, "server did not stop in time");
                std::thread::sleep(Duration::from_millis(10));
            }
            t.join().expect("server thread panicked");
        }
    }

    /// Whether `run` has returned.
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl<T: 'static> Drop for Running<T> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop();
        } else {
            let _ = self.handle.stop();
        }
    }
}

/// A tungstenite client with read/write timeouts.
pub fn connect(url: &str) -> Client {
    let (client, _) = connect_with(url);
    client
}

pub fn connect_with(
    request: impl tungstenite::client::IntoClientRequest,
) -> (Client, tungstenite::handshake::client::Response) {
    let request = request.into_client_request().unwrap();
    let port = request.uri().port_u16().unwrap();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let (ws, response) =
        tungstenite::client(request, MaybeTlsStream::Plain(stream)).expect("handshake");
    (ws, response)
}

/// Reads the next data message, skipping pings/pongs.
pub fn recv(client: &mut Client) -> tungstenite::Message {
    loop {
        match client.read().expect("read") {
            m @ (tungstenite::Message::Text(_)
            | tungstenite::Message::Binary(_)
            | tungstenite::Message::Close(_)) => return m,
            _ => continue,
        }
    }
}

pub fn recv_text(client: &mut Client) -> String {
    match recv(client) {
        tungstenite::Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Reads until the server's close frame; returns its code and reason.
pub fn recv_close(client: &mut Client) -> Option<(u16, String)> {
    loop {
        match client.read() {
            Ok(tungstenite::Message::Close(frame)) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            Ok(_) => continue,
            Err(e) => panic!("connection ended without a close frame: {e}"),
        }
    }
}

pub fn close_frame(code: u16, reason: &str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    })
}

/// Polls `cond` until it holds or the timeout passes.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends raw bytes on a fresh TCP connection and reads until the server
/// closes or `TIMEOUT`.
pub fn raw_exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// A raw handshake request with the given extra header lines.
pub fn handshake(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// Sends one raw request and returns the first complete response (head,
/// and body by Content-Length), without waiting for the connection to end.
pub fn http_exchange(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(head_end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..head_end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if out.len() >= head_end + 4 + length {
                break;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct Example {
    child: std::process::Child,
    pub port: u16,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a built example (cargo builds them for `cargo test`) and waits
/// for its `listening on HOST:PORT` line.
pub fn run_example(name: &str, args: &[&str]) -> Example {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let mut child = std::process::Command::new(dir.join(name))
        .args(["--port", "0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start example {name} in {}: {e}", dir.display()));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Example { child, port }
}
