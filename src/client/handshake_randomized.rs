//! Randomized test of the client's response check (`Offer::check`): the
//! Rust half of the client handshake, whose native half (gathering the
//! head across reads) is the `client_handshake` libFuzzer target. Random
//! offers get well-formed answers (headers in any order and case, extra
//! headers, a protocol, permessage-deflate parameters), which must be
//! accepted as sent, and mutations of them (bytes changed, inserted,
//! removed, pieces of headers spliced in), which must never panic and, when
//! accepted, must not accept more than was offered or promised.

use super::*;
use crate::randomized::Rng;

const PROTOCOLS: &[&str] = &["chat", "superchat", "v2.json", "x"];
const COMPRESSORS: &[Compressor] = &[
    Compressor::Disable,
    Compressor::Shared,
    Compressor::Dedicated,
    Compressor::Kb3,
    Compressor::Kb8,
    Compressor::Kb32,
    Compressor::Kb256,
];
const DICTIONARY: &[&[u8]] = &[
    b"\r\n",
    b":",
    b", ",
    b"; ",
    b"=",
    b"\"",
    b"HTTP/1.1 101 ",
    b"HTTP/1.0 200 OK\r\n",
    b"Upgrade: websocket\r\n",
    b"Connection: keep-alive, Upgrade\r\n",
    b"Sec-WebSocket-Accept: ",
    b"Sec-WebSocket-Protocol: chat\r\n",
    b"Sec-WebSocket-Protocol: other\r\n",
    b"Sec-WebSocket-Extensions: permessage-deflate\r\n",
    b"Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n",
    b"server_no_context_takeover",
    b"client_no_context_takeover",
    b"server_max_window_bits=8",
    b"client_max_window_bits=9",
    b"client_max_window_bits=\"15\"",
    b"server_max_window_bits=16",
    b"\xc3\xa9",
    b"\xff",
    b"\t",
];

/// A random offer: some protocols, maybe permessage-deflate.
fn random_offer(rng: &mut Rng) -> (Offer, Vec<String>, Option<PerMessageDeflate>) {
    let target = Target::parse("ws://example.com/chat").expect("a valid URL");
    let protocols: Vec<String> = PROTOCOLS
        .iter()
        .filter(|_| rng.below(2) == 0)
        .map(|p| p.to_string())
        .collect();
    let deflate = (rng.below(3) != 0).then(|| PerMessageDeflate {
        compress: *rng.pick(COMPRESSORS),
        decompress: *rng.pick(COMPRESSORS),
    });
    let mut options = ConnectOptions {
        protocols: protocols.clone(),
        ..Default::default()
    };
    options.websocket.per_message_deflate = deflate;
    let (_, offer) = Offer::new(&target, &options);
    let deflate = offer.deflate;
    (offer, protocols, deflate)
}

fn random_case(rng: &mut Rng, s: &str) -> String {
    s.chars()
        .map(|c| {
            if rng.below(2) == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// A well-formed answer to `offer`, with what it chose.
fn answer(
    rng: &mut Rng,
    offer: &Offer,
    protocols: &[String],
    deflate: Option<PerMessageDeflate>,
) -> (Vec<u8>, Option<String>, Option<String>) {
    let accept = String::from_utf8_lossy(&offer.accept).into_owned();
    let mut headers = vec![
        format!("{}: websocket", random_case(rng, "Upgrade")),
        format!(
            "{}: {}",
            random_case(rng, "Connection"),
            rng.pick(&["Upgrade", "upgrade", "keep-alive, Upgrade"])
        ),
        format!(
            "{}:{}{accept}",
            random_case(rng, "Sec-WebSocket-Accept"),
            rng.pick(&["", " ", "\t"])
        ),
    ];
    let protocol =
        (!protocols.is_empty() && rng.below(2) == 0).then(|| rng.pick(protocols).clone());
    if let Some(p) = &protocol {
        headers.push(format!("Sec-WebSocket-Protocol: {p}"));
    }
    let mut extension = None;
    if deflate.is_some() && rng.below(3) != 0 {
        let mut e = "permessage-deflate".to_owned();
        for param in [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits=",
            "client_max_window_bits=",
        ] {
            if rng.below(2) == 0 {
                e.push_str("; ");
                e.push_str(param);
                if param.ends_with('=') {
                    e.push_str(&(8 + rng.below(8)).to_string());
                }
            }
        }
        headers.push(format!("Sec-WebSocket-Extensions: {e}"));
        extension = Some(e);
    }
    for _ in 0..rng.below(3) {
        headers.push(format!("X-Extra-{}: {}", rng.below(100), rng.next()));
    }
    // Any order.
    for i in (1..headers.len()).rev() {
        headers.swap(i, rng.below(i + 1));
    }
    let status = rng.pick(&[
        "HTTP/1.1 101 Switching Protocols",
        "HTTP/1.1 101 OK",
        "HTTP/1.0 101 x",
    ]);
    let head = format!("{status}\r\n{}\r\n\r\n", headers.join("\r\n"));
    (head.into_bytes(), protocol, extension)
}

/// What an accepted answer must satisfy, whatever it was.
fn check_accepted(
    head: &[u8],
    a: &Accepted,
    protocols: &[String],
    deflate: Option<PerMessageDeflate>,
) {
    let shown = String::from_utf8_lossy(head);
    assert!(
        head.starts_with(b"HTTP/1.1 101") || head.starts_with(b"HTTP/1.0 101"),
        "accepted without a 101: {shown:?}"
    );
    if let Some(p) = &a.protocol {
        assert!(
            protocols.contains(p),
            "accepted a protocol not offered: {shown:?}"
        );
    }
    let d = a.deflate;
    if !d.enabled {
        assert_eq!(d, Deflate::default(), "{shown:?}");
        return;
    }
    assert!(
        deflate.is_some(),
        "deflate accepted but not offered: {shown:?}"
    );
    let e = a
        .extensions
        .as_deref()
        .expect("deflate without an extension")
        .to_ascii_lowercase();
    assert!((9..=15).contains(&d.inflate_window), "{shown:?}");
    assert!(
        d.deflate_window == 0 || (9..=15).contains(&d.deflate_window),
        "{shown:?}"
    );
    if d.deflate_window != 0 {
        assert!((1..=9).contains(&d.deflate_mem_level), "{shown:?}");
    }
    // The shared decompressor resets every message: only on the promise.
    if d.inflate_shared {
        assert!(e.contains("server_no_context_takeover"), "{shown:?}");
    }
    if e.contains("client_no_context_takeover") {
        assert!(d.deflate_reset, "{shown:?}");
    }
}

#[test]
fn well_formed_answers_are_accepted_as_sent_and_mutations_never_panic() {
    let mut rng = Rng::new(0x5eed_0001);
    let (mut accepted, mut refused) = (0u32, 0u32);
    for _ in 0..3000 {
        let (offer, protocols, deflate) = random_offer(&mut rng);
        let (head, protocol, extension) = answer(&mut rng, &offer, &protocols, deflate);
        let shown = String::from_utf8_lossy(&head).into_owned();
        let a = offer
            .check(&head)
            .unwrap_or_else(|r| panic!("refused {shown:?}: {r:?}"));
        assert_eq!(a.protocol, protocol, "{shown:?}");
        assert_eq!(a.extensions, extension, "{shown:?}");
        assert_eq!(a.deflate.enabled, extension.is_some(), "{shown:?}");
        check_accepted(&head, &a, &protocols, deflate);
        for _ in 0..20 {
            let mutated = rng.mutate(&head, DICTIONARY);
            match offer.check(&mutated) {
                Ok(a) => {
                    accepted += 1;
                    check_accepted(&mutated, &a, &protocols, deflate);
                }
                Err(r) => {
                    refused += 1;
                    if let Some(status) = r.status {
                        let code = format!("{status:03}");
                        assert!(
                            mutated.starts_with(format!("HTTP/1.1 {code}").as_bytes())
                                || mutated.starts_with(format!("HTTP/1.0 {code}").as_bytes()),
                            "status {status} from {:?}",
                            String::from_utf8_lossy(&mutated)
                        );
                    }
                    assert!(!r.reason.is_empty());
                }
            }
        }
    }
    // Both sides were reached.
    assert!(
        accepted > 1000 && refused > 1000,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(0x5eed_0002);
    let (offer, _, _) = random_offer(&mut rng);
    for _ in 0..20_000 {
        let len = rng.below(64);
        let mut head: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if rng.below(2) == 0 {
            head.splice(0..0, b"HTTP/1.1 101 ".iter().copied());
        }
        let _ = offer.check(&head);
    }
}
