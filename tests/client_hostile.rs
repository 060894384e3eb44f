//! The client against raw servers that misbehave: wrong handshakes,
//! masked or broken frames, and the closing handshake byte by byte.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::client::*;
use common::raw::{accept_head, frame, raw_server};
use uws::ConnectOptions;

/// Reads one client frame: (first byte, whether masked, unmasked payload).
fn read_frame(s: &mut TcpStream) -> (u8, bool, Vec<u8>) {
    let (first, mask, payload) = read_masked_frame(s);
    (first, mask.is_some(), payload)
}

/// Reads one client frame: (first byte, its mask, unmasked payload).
fn read_masked_frame(s: &mut TcpStream) -> (u8, Option<[u8; 4]>, Vec<u8>) {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).unwrap();
    let masked = head[1] & 0x80 != 0;
    let mut len = (head[1] & 0x7f) as usize;
    if len == 126 {
        let mut l = [0u8; 2];
        s.read_exact(&mut l).unwrap();
        len = u16::from_be_bytes(l) as usize;
    } else if len == 127 {
        let mut l = [0u8; 8];
        s.read_exact(&mut l).unwrap();
        len = u64::from_be_bytes(l) as usize;
    }
    let mut mask = [0u8; 4];
    if masked {
        s.read_exact(&mut mask).unwrap();
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    (head[0], masked.then_some(mask), payload)
}

#[test]
fn every_frame_has_its_own_mask_and_every_length_encoding_reads_back() {
    // Lengths across the three encodings (7-bit, 16-bit, 64-bit).
    let lengths: Vec<usize> = (0..96)
        .map(|i| [0, 5, 125, 126, 200, 65535, 65536, 70000][i % 8])
        .collect();
    let texts: Vec<String> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            (0..n)
                .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
                .collect()
        })
        .collect();
    let expected = texts.clone();
    let (url, server) = raw_server(move |s, key| {
        s.write_all(accept_head(key, "").as_bytes()).unwrap();
        let mut masks = std::collections::HashSet::new();
        for text in &expected {
            let (first, mask, payload) = read_masked_frame(s);
            assert_eq!(first, 0x81, "a final text frame");
            masks.insert(mask.expect("client frames are masked"));
            assert_eq!(payload, text.as_bytes(), "payload of {} bytes", text.len());
        }
        // 96 random 32-bit masks: a repeat is a one in a million event.
        assert!(
            masks.len() >= 95,
            "only {} distinct masks in 96 frames",
            masks.len()
        );
        s.write_all(&frame(0x88, &[0x03, 0xe8])).unwrap();
        assert_eq!(read_close(s), 1000);
    });
    let recorder = Recorder::new(Script {
        send: texts,
        ..Script::default()
    });
    spawn(&url, ConnectOptions::default(), &recorder).join();
    server.join().unwrap();
    assert_eq!(recorder.drops(), 1);
}

/// Reads the client's close frame: its code.
fn read_close(s: &mut TcpStream) -> u16 {
    loop {
        let (first, masked, payload) = read_frame(s);
        assert!(masked, "client frames are masked");
        if first & 0x0f == 8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

fn handshake_error(
    serve: impl FnOnce(&mut TcpStream, &str) + Send + 'static,
    options: ConnectOptions,
) -> (String, String) {
    let (url, server) = raw_server(serve);
    let recorder = Recorder::new(Script::default());
    spawn(&url, options, &recorder).join();
    server.join().unwrap();
    let events = recorder.log.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], "error-state:3");
    assert_eq!(recorder.drops(), 1);
    let debug = recorder.errors.lock().unwrap().pop().unwrap();
    (events[1].clone(), debug)
}

#[test]
fn a_wrong_accept_is_refused() {
    let (error, debug) = handshake_error(
        |s, _key| {
            let head = accept_head("not the key we got here.", "");
            s.write_all(head.as_bytes()).unwrap();
        },
        ConnectOptions::default(),
    );
    assert!(error.contains("wrong Sec-WebSocket-Accept"), "{error}");
    assert!(
        debug.starts_with("Handshake {") && debug.contains("status: Some(101)"),
        "{debug}"
    );
}

#[test]
fn another_status_than_101_is_refused() {
    let (error, debug) = handshake_error(
        |s, _key| {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
                .unwrap();
        },
        ConnectOptions::default(),
    );
    assert!(
        error.contains("\"HTTP/1.1 200 OK\" instead of 101"),
        "{error}"
    );
    assert!(debug.contains("status: Some(200)"), "{debug}");
    let (error, _) = handshake_error(
        |s, _key| s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").unwrap(),
        ConnectOptions::default(),
    );
    assert!(error.contains("not an HTTP response"), "{error}");
}

#[test]
fn missing_upgrade_headers_are_refused() {
    let (error, _) = handshake_error(
        |s, key| {
            let head = accept_head(key, "").replace("Upgrade: websocket\r\n", "");
            s.write_all(head.as_bytes()).unwrap();
        },
        ConnectOptions::default(),
    );
    assert!(
        error.contains("no \"Upgrade: websocket\" header"),
        "{error}"
    );
    let (error, _) = handshake_error(
        |s, key| {
            let head = accept_head(key, "").replace("Connection: Upgrade", "Connection: close");
            s.write_all(head.as_bytes()).unwrap();
        },
        ConnectOptions::default(),
    );
    assert!(
        error.contains("no \"Connection: Upgrade\" header"),
        "{error}"
    );
}

#[test]
fn a_protocol_or_extension_we_did_not_offer_is_refused() {
    let offer_soap = ConnectOptions {
        protocols: vec!["soap".into()],
        ..Default::default()
    };
    let (error, _) = handshake_error(
        |s, key| {
            let head = accept_head(key, "Sec-WebSocket-Protocol: wamp\r\n");
            s.write_all(head.as_bytes()).unwrap();
        },
        offer_soap,
    );
    assert!(
        error.contains("chose the subprotocol \"wamp\", which we did not offer"),
        "{error}"
    );
    let (error, _) = handshake_error(
        |s, key| {
            let head = accept_head(key, "Sec-WebSocket-Protocol: soap\r\n");
            s.write_all(head.as_bytes()).unwrap();
        },
        ConnectOptions::default(),
    );
    assert!(error.contains("which we did not offer"), "{error}");
    let (error, _) = handshake_error(
        |s, key| {
            let head = accept_head(key, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
            s.write_all(head.as_bytes()).unwrap();
        },
        ConnectOptions::default(),
    );
    assert!(
        error.contains("chose the extension \"permessage-deflate\", which we did not offer"),
        "{error}"
    );
}

#[test]
fn a_response_head_without_end_is_refused() {
    let (error, _) = handshake_error(
        |s, _key| {
            let mut head = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
            for i in 0..1000 {
                head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(20)).as_bytes());
            }
            let _ = s.write_all(&head);
            // Wait until the client gives up.
            let _ = s.read(&mut [0u8; 16]);
        },
        ConnectOptions::default(),
    );
    assert!(error.contains("larger than 16 KiB"), "{error}");
}

/// Completes the handshake, then runs `after`; returns the client's events.
fn after_handshake(after: impl FnOnce(&mut TcpStream) + Send + 'static) -> Vec<String> {
    let (url, server) = raw_server(move |s, key| {
        s.write_all(accept_head(key, "").as_bytes()).unwrap();
        after(s);
    });
    let recorder = Recorder::new(Script::default());
    spawn(&url, ConnectOptions::default(), &recorder).join();
    server.join().unwrap();
    assert_eq!(recorder.drops(), 1);
    recorder.log.events()
}

#[test]
fn frames_in_the_same_packet_as_the_head_are_delivered() {
    let (url, server) = raw_server(|s, key| {
        let mut all = accept_head(key, "").into_bytes();
        all.extend(frame(0x81, b"first"));
        all.extend(frame(0x82, &[1, 2, 3]));
        all.extend(frame(0x88, &[0x03, 0xe8, b'o', b'k']));
        s.write_all(&all).unwrap();
        assert_eq!(read_close(s), 1000);
    });
    let recorder = Recorder::new(Script::default());
    spawn(&url, ConnectOptions::default(), &recorder).join();
    server.join().unwrap();
    assert_eq!(
        recorder.log.events(),
        ["open:", "message:first", "binary:3", "close:1000:ok"]
    );
}

#[test]
fn a_masked_server_frame_fails_with_1002() {
    let events = after_handshake(|s| {
        // "hi", masked: servers must not mask.
        s.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
            .unwrap();
        assert_eq!(read_close(s), 1002);
    });
    // The patched parser (vendor/patches/0005) refuses the mask bit itself,
    // as an invalid frame (with UWS_UNPATCHED=1 our shim finds it: "Received
    // a masked frame").
    assert_eq!(events, ["open:", "close:1002:Received invalid frame"]);
}

#[test]
fn protocol_errors_fail_with_the_right_code() {
    // Reserved bits set.
    let events = after_handshake(|s| {
        s.write_all(&frame(0xc1, b"x")).unwrap();
        assert_eq!(read_close(s), 1002);
    });
    assert_eq!(events, ["open:", "close:1002:Received invalid frame"]);
    // A reserved opcode.
    let events = after_handshake(|s| {
        s.write_all(&frame(0x83, b"x")).unwrap();
        assert_eq!(read_close(s), 1002);
    });
    assert_eq!(events[1], "close:1002:Received invalid frame");
    // Text that is not UTF-8.
    let events = after_handshake(|s| {
        s.write_all(&frame(0x81, &[0xff, 0xfe])).unwrap();
        assert_eq!(read_close(s), 1007);
    });
    assert_eq!(events, ["open:", "close:1007:Received invalid UTF-8"]);
    // A close frame with a code nobody may send.
    let events = after_handshake(|s| {
        s.write_all(&frame(0x88, &999u16.to_be_bytes())).unwrap();
        assert_eq!(read_close(s), 1002);
    });
    assert_eq!(
        events,
        ["open:", "close:1002:Received invalid close payload"]
    );
}

#[test]
fn invalid_text_fails_fast_before_the_message_ends() {
    let events = after_handshake(|s| {
        // "κό" then an invalid byte, in fragments; the last never comes.
        s.write_all(&frame(0x01, &[0xce, 0xba, 0xe1])).unwrap();
        s.write_all(&frame(0x00, &[0xbd, 0xb9])).unwrap();
        s.write_all(&frame(0x00, &[0xff])).unwrap();
        assert_eq!(read_close(s), 1007);
    });
    assert_eq!(events, ["open:", "close:1007:Received invalid UTF-8"]);
    // A code point split across fragments is fine.
    let events = after_handshake(|s| {
        s.write_all(&frame(0x01, &[b'a', 0xe2])).unwrap();
        s.write_all(&frame(0x00, &[0x82])).unwrap();
        s.write_all(&frame(0x80, &[0xac])).unwrap();
        s.write_all(&frame(0x88, &[0x03, 0xe8])).unwrap();
        assert_eq!(read_close(s), 1000);
    });
    assert_eq!(events, ["open:", "message:a€", "close:1000:"]);
}

#[test]
fn fragments_are_joined_and_pings_answered_between_them() {
    let events = after_handshake(|s| {
        let mut all = frame(0x01, b"frag");
        all.extend(frame(0x89, b"p"));
        all.extend(frame(0x00, b"men"));
        all.extend(frame(0x80, b"ted"));
        s.write_all(&all).unwrap();
        let (first, masked, payload) = read_frame(s);
        assert_eq!((first, masked, payload.as_slice()), (0x8a, true, &b"p"[..]));
        s.write_all(&frame(0x88, &[0x03, 0xe8])).unwrap();
        assert_eq!(read_close(s), 1000);
    });
    assert_eq!(
        events,
        ["open:", "ping:p", "message:fragmented", "close:1000:"]
    );
}

#[test]
fn the_client_waits_for_the_server_to_close_tcp() {
    let events = after_handshake(|s| {
        s.write_all(&frame(0x88, &[0x0f, 0xa0, b'b', b'y', b'e']))
            .unwrap();
        assert_eq!(read_close(s), 4000);
        // The client answered and now waits for us: no FIN from it.
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        match s.read(&mut [0u8; 1]) {
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{e}"
            ),
            Ok(n) => panic!("the client closed first ({n} bytes)"),
        }
        // We close; the client is done.
    });
    assert_eq!(events, ["open:", "close:4000:bye"]);
}

#[test]
fn a_connection_lost_after_open_is_1006() {
    let events = after_handshake(|s| {
        s.write_all(&frame(0x81, b"then gone")).unwrap();
    });
    assert_eq!(events, ["open:", "message:then gone", "close:1006:"]);
}

#[test]
fn backpressure_then_drain() {
    struct Flood(common::probe::EventLog);
    impl uws::ClientHandler for Flood {
        type Data = ();
        fn open(&self, ws: &mut uws::ClientWebSocket<()>) {
            let chunk = vec![7u8; 1 << 20];
            for _ in 0..256 {
                if ws.send_binary(&chunk) == uws::SendStatus::Backpressure {
                    self.0
                        .push(format!("backpressure:{}", ws.buffered_amount() > 0));
                    return;
                }
            }
            self.0.push("never backpressure");
        }
        fn drain(&self, ws: &mut uws::ClientWebSocket<()>) {
            if ws.buffered_amount() == 0 {
                self.0.push("drained");
                let _ = ws.close(1000, "");
            }
        }
    }
    let (url, server) = raw_server(|s, key| {
        s.write_all(accept_head(key, "").as_bytes()).unwrap();
        // Read nothing for a while: the client's buffers fill up.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(read_close(s), 1000);
        s.write_all(&frame(0x88, &[0x03, 0xe8])).unwrap();
    });
    let log = common::probe::EventLog::default();
    let l = log.clone();
    std::thread::spawn(move || {
        uws::connect(&url, ConnectOptions::default(), Flood(l), ()).unwrap();
        uws::run();
    })
    .join()
    .unwrap();
    server.join().unwrap();
    assert_eq!(log.events(), ["backpressure:true", "drained"]);
}

#[test]
fn what_the_client_sends_is_masked() {
    let (url, server) = raw_server(|s, key| {
        s.write_all(accept_head(key, "").as_bytes()).unwrap();
        let (first, masked, payload) = read_frame(s);
        assert_eq!((first, masked), (0x81, true));
        assert_eq!(payload, b"hello server");
        let long = read_frame(s);
        assert_eq!((long.0, long.1, long.2.len()), (0x81, true, 70_000));
        assert!(long.2.iter().all(|&b| b == b'z'));
        s.write_all(&frame(0x88, &[0x03, 0xe8])).unwrap();
        assert_eq!(read_close(s), 1000);
    });
    let recorder = Recorder::new(Script {
        send: vec!["hello server".into(), "z".repeat(70_000)],
        ..Default::default()
    });
    spawn(&url, ConnectOptions::default(), &recorder).join();
    server.join().unwrap();
    assert_eq!(recorder.log.events(), ["open:", "close:1000:"]);
}
