//! A raw WebSocket server for client tests: one connection, the handshake
//! read byte by byte, and whatever the test writes after it.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;

use tungstenite::handshake::derive_accept_key;

use super::TIMEOUT;

/// A one-connection raw server: reads the handshake request and hands the
/// stream and the client's key to `serve`. Returns the URL to connect to.
pub fn raw_server(
    serve: impl FnOnce(&mut TcpStream, &str) + Send + 'static,
) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "request ended early");
            request.push(byte[0]);
        }
        let request = String::from_utf8(request).unwrap();
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .expect("a key")
            .to_string();
        serve(&mut s, &key);
    });
    (format!("ws://127.0.0.1:{port}/"), thread)
}

/// The head of a 101 answer to `key`, with `extra` header lines (each
/// ending in CRLF).
pub fn accept_head(key: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
        derive_accept_key(key.as_bytes())
    )
}

/// An unmasked (server) frame: first byte `first`, then `payload` with the
/// shortest length encoding.
pub fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![first];
    let len = payload.len();
    if len < 126 {
        f.push(len as u8);
    } else if len < 65536 {
        f.push(126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

/// A masked (client) frame: first byte `first`, `payload` masked with
/// `mask`, the shortest length encoding.
pub fn masked_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![first];
    let len = payload.len();
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if len < 65536 {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}
