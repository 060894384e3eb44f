//! permessage-deflate (RFC 7692) against a client written here: frames are
//! compressed and inflated with flate2, the way a browser does it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use uws::{
    Compressor, Message, PerMessageDeflate, Request, Response, Server, ServerWebSocket,
    UpgradeOptions, WebSocketHandler, WebSocketOptions,
};

/// Echoes every message, asking for compression.
#[derive(Clone)]
struct Echo {
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl WebSocketHandler for Echo {
    type Data = ();
    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        server.upgrade(req, UpgradeOptions::new(()));
        Response::new("")
    }
    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        ws.send(message, true);
    }
    fn close(&self, _ws: &mut ServerWebSocket<()>, code: u16, reason: &str) {
        self.log.lock().unwrap().push(format!("{code}:{reason}"));
    }
}

fn server(deflate: Option<PerMessageDeflate>) -> (Echo, Running<()>) {
    let echo = Echo {
        log: Default::default(),
    };
    let running = start(
        WebSocketOptions {
            per_message_deflate: deflate,
            max_payload_length: 64 << 10,
            ..Default::default()
        },
        echo.clone(),
    );
    (echo, running)
}

struct Frame {
    fin_rsv_opcode: u8,
    payload: Vec<u8>,
}

struct DeflateClient {
    stream: TcpStream,
    inflater: Decompress,
    buf: Vec<u8>,
    /// The extensions header of the 101, lower-cased.
    extensions: String,
    pub wire_bytes: usize,
}

impl DeflateClient {
    fn connect(port: u16, offer: Option<&str>) -> DeflateClient {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let extra = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        stream.write_all(&handshake("/", &extra)).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "closed during handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        let extensions = head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-extensions:"))
            .unwrap_or("")
            .trim()
            .to_string();
        buf.drain(..head_end);
        DeflateClient {
            stream,
            inflater: Decompress::new(false),
            buf,
            extensions,
            wire_bytes: 0,
        }
    }

    fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let mut frame = vec![first];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len < 65536 {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).unwrap();
    }

    /// Sends one message compressed on its own (no context takeover).
    fn send_compressed(&mut self, opcode: u8, message: &[u8]) {
        let mut deflater = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(message.len() + 64);
        deflater
            .compress_vec(message, &mut out, FlushCompress::Sync)
            .unwrap();
        while deflater.total_in() < message.len() as u64 || !out.ends_with(&[0, 0, 0xff, 0xff]) {
            out.reserve(1024);
            deflater
                .compress_vec(&[], &mut out, FlushCompress::Sync)
                .unwrap();
        }
        out.truncate(out.len() - 4);
        self.send_frame(0x80 | 0x40 | opcode, &out);
    }

    fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 2 {
                let mut len = (self.buf[1] & 0x7f) as usize;
                let mut at = 2;
                if len == 126 && self.buf.len() >= 4 {
                    len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
                    at = 4;
                } else if len == 127 && self.buf.len() >= 10 {
                    len = u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize;
                    at = 10;
                }
                let header_complete = (self.buf[1] & 0x7f) < 126 || at > 2;
                if header_complete && self.buf.len() >= at + len {
                    let frame = Frame {
                        fin_rsv_opcode: self.buf[0],
                        payload: self.buf[at..at + len].to_vec(),
                    };
                    self.wire_bytes += at + len;
                    self.buf.drain(..at + len);
                    return Some(frame);
                }
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads a data message: (opcode, compressed on the wire, payload).
    fn read_message(&mut self) -> Option<(u8, bool, Vec<u8>)> {
        let frame = self.read_frame()?;
        let opcode = frame.fin_rsv_opcode & 0x0f;
        let compressed = frame.fin_rsv_opcode & 0x40 != 0;
        assert!(
            frame.fin_rsv_opcode & 0x80 != 0,
            "unfragmented replies expected"
        );
        if !compressed {
            return Some((opcode, false, frame.payload));
        }
        let mut input = frame.payload;
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(input.len() * 8 + 1024);
        let start = self.inflater.total_in();
        while self.inflater.total_in() - start < input.len() as u64 {
            out.reserve(64 << 10);
            let consumed = (self.inflater.total_in() - start) as usize;
            self.inflater
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                .expect("inflate");
        }
        Some((opcode, true, out))
    }
}

const OFFER: &str = "permessage-deflate; client_no_context_takeover; client_max_window_bits";

fn chat_payload() -> Vec<u8> {
    "alice: are we still on for the standup at ten? bob: yes, same room as always. "
        .repeat(40)
        .into_bytes()
}

#[test]
fn compressed_round_trips_of_text_and_binary() {
    for deflate in [
        PerMessageDeflate::default(),
        PerMessageDeflate {
            compress: Compressor::Dedicated,
            decompress: Compressor::Dedicated,
        },
        PerMessageDeflate {
            compress: Compressor::Kb4,
            decompress: Compressor::Kb8,
        },
    ] {
        let (_echo, server) = server(Some(deflate));
        let mut c = DeflateClient::connect(server.port, Some(OFFER));
        assert!(
            c.extensions.starts_with("permessage-deflate"),
            "{deflate:?}: {}",
            c.extensions
        );
        let text = chat_payload();
        for round in 0..3 {
            c.send_compressed(1, &text);
            let (op, compressed, payload) = c.read_message().expect("echo");
            assert_eq!((op, compressed), (1, true), "{deflate:?} round {round}");
            assert_eq!(payload, text);
            let binary: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
            c.send_compressed(2, &binary);
            let (op, compressed, payload) = c.read_message().expect("echo");
            assert_eq!((op, compressed), (2, true));
            assert_eq!(payload, binary);
        }
        // Uncompressed frames are fine on a compressed connection too.
        c.send_frame(0x81, b"plain");
        let (_, _, payload) = c.read_message().expect("echo");
        assert_eq!(payload, b"plain");
    }
}

#[test]
fn compression_shrinks_a_repetitive_chat_payload_on_the_wire() {
    let (_echo, server) = server(Some(PerMessageDeflate::default()));
    let mut c = DeflateClient::connect(server.port, Some(OFFER));
    let text = chat_payload();
    c.send_compressed(1, &text);
    let before = c.wire_bytes;
    let (_, compressed, payload) = c.read_message().unwrap();
    assert!(compressed);
    assert_eq!(payload, text);
    let on_wire = c.wire_bytes - before;
    assert!(
        on_wire * 10 < text.len(),
        "{on_wire} bytes on the wire for {}",
        text.len()
    );
}

#[test]
fn a_message_that_inflates_past_max_payload_length_is_refused() {
    let (echo, server) = server(Some(PerMessageDeflate::default()));
    let mut c = DeflateClient::connect(server.port, Some(OFFER));
    // 1 MiB of zeros deflates to about a kilobyte: small on the wire,
    // sixteen times the 64 KiB limit once inflated.
    c.send_compressed(2, &vec![0u8; 1 << 20]);
    assert!(c.read_message().is_none(), "the connection must fail");
    wait_for("close handler", || !echo.log.lock().unwrap().is_empty());
    let log = echo.log.lock().unwrap().clone();
    assert!(log[0].starts_with("1006:"), "{log:?}");
}

#[test]
fn clients_that_do_not_offer_it_get_plain_frames() {
    let (_echo, server) = server(Some(PerMessageDeflate::default()));
    let mut c = DeflateClient::connect(server.port, None);
    assert_eq!(c.extensions, "");
    c.send_frame(0x81, b"hello there");
    let (op, compressed, payload) = c.read_message().unwrap();
    assert_eq!(
        (op, compressed, payload.as_slice()),
        (1, false, &b"hello there"[..])
    );
}

#[test]
fn without_the_option_the_offer_is_declined() {
    let (_echo, server) = server(None);
    let mut c = DeflateClient::connect(server.port, Some(OFFER));
    assert_eq!(c.extensions, "");
    c.send_frame(0x82, &chat_payload());
    let (op, compressed, payload) = c.read_message().unwrap();
    assert_eq!((op, compressed), (2, false));
    assert_eq!(payload, chat_payload());
}

#[test]
fn compress_disable_sends_plain_even_when_asked() {
    let (_echo, server) = server(Some(PerMessageDeflate {
        compress: Compressor::Disable,
        decompress: Compressor::Shared,
    }));
    let mut c = DeflateClient::connect(server.port, Some(OFFER));
    assert!(c.extensions.starts_with("permessage-deflate"));
    c.send_compressed(1, &chat_payload());
    let (_, compressed, payload) = c.read_message().unwrap();
    assert!(!compressed, "compress: Disable must not compress");
    assert_eq!(payload, chat_payload());
}
