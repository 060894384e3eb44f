//! permessage-deflate (RFC 7692) against a client written here: frames are
//! compressed and inflated with flate2, the way a browser does it.

mod common;

use common::deflate::{deflate_message, DeflateClient, OFFER};
use common::*;
use uws::{
    Compressor, Message, PerMessageDeflate, Request, Response, Server, ServerWebSocket,
    WebSocketHandler, WebSocketOptions,
};

/// Echoes every message, asking for compression.
#[derive(Clone)]
struct Echo {
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl WebSocketHandler for Echo {
    type Data = ();
    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        accept_upgrade(req, server)
    }
    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        ws.send_compressed(message);
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

/// Reads frames until a close frame; returns its code and reason.
fn close_frame_of(c: &mut DeflateClient) -> (u16, String) {
    loop {
        let frame = c.read_frame().expect("a close frame before the end");
        if frame.fin_rsv_opcode & 0x0f == 8 {
            let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
            let reason = String::from_utf8(frame.payload[2..].to_vec()).unwrap();
            return (code, reason);
        }
    }
}

#[test]
fn a_message_that_inflates_past_max_payload_length_is_refused_with_1009() {
    let (echo, server) = server(Some(PerMessageDeflate::default()));
    let mut c = DeflateClient::connect(server.port, Some(OFFER));
    // 1 MiB of zeros deflates to about a kilobyte: small on the wire,
    // sixteen times the 64 KiB limit once inflated.
    c.send_compressed(2, &vec![0u8; 1 << 20]);
    let reason = "Received too big message";
    assert_eq!(close_frame_of(&mut c), (1009, reason.to_string()));
    assert!(c.read_frame().is_none(), "the connection must end");
    wait_for("close handler", || !echo.log.lock().unwrap().is_empty());
    let log = echo.log.lock().unwrap().clone();
    assert_eq!(log[0], format!("1009:{reason}"), "{log:?}");
}

#[test]
fn a_fragmented_message_that_inflates_past_max_payload_length_is_refused_with_1009() {
    let (echo, server) = server(Some(PerMessageDeflate::default()));
    let mut c = DeflateClient::connect(server.port, Some(OFFER));
    let out = deflate_message(&vec![0u8; 1 << 20]);
    let (first, rest) = out.split_at(out.len() / 2);
    c.send_frame(0x40 | 2, first);
    c.send_frame(0x80, rest);
    assert_eq!(close_frame_of(&mut c).0, 1009);
    wait_for("close handler", || !echo.log.lock().unwrap().is_empty());
    let log = echo.log.lock().unwrap().clone();
    assert_eq!(log[0], "1009:Received too big message", "{log:?}");
}

#[test]
fn compressed_data_that_does_not_inflate_is_refused_with_1007() {
    let (echo, server) = server(Some(PerMessageDeflate::default()));
    let mut c = DeflateClient::connect(server.port, Some(OFFER));
    // A deflate block of reserved type (BTYPE 11): invalid from its header.
    c.send_frame(0x80 | 0x40 | 2, &[0xff, 0xff, 0xff, 0xff]);
    let reason = "Received invalid compressed data";
    assert_eq!(close_frame_of(&mut c), (1007, reason.to_string()));
    wait_for("close handler", || !echo.log.lock().unwrap().is_empty());
    let log = echo.log.lock().unwrap().clone();
    assert_eq!(log[0], format!("1007:{reason}"), "{log:?}");
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
