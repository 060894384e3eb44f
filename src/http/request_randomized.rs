//! Randomized test of the request's query and cookie parsing (what
//! `Request::query_params` and `Request::cookies` do over the shim's raw
//! query string and Cookie header; the shim's getters themselves are the
//! `shim_request` libFuzzer target): random parameters and cookies,
//! written as a client writes them, read back as they were; random and
//! mutated text never panics and gives only pieces of itself.

use super::*;
use crate::randomized::Rng;

const CHARS: &[&str] = &[
    "a", "Z", "0", " ", "+", "%", "&", "=", "?", "é", "€", "😀", "\"", ";", "/", "~",
];

fn random_text(rng: &mut Rng, max: usize) -> String {
    (0..rng.below(max + 1)).map(|_| *rng.pick(CHARS)).collect()
}

/// Percent-encoding as a form or a client library writes it: unreserved
/// bytes as they are, a space as `+` or `%20`, the rest `%XX` (either case).
fn encode(rng: &mut Rng, s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' if rng.below(2) == 0 => out.push('+'),
            _ if rng.below(2) == 0 => out.push_str(&format!("%{b:02X}")),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

#[test]
fn query_parameters_read_back_as_written() {
    let mut rng = Rng::new(0x5eed_0004);
    for _ in 0..5000 {
        let pairs: Vec<(String, String)> = (0..rng.below(5))
            .map(|_| (random_text(&mut rng, 6), random_text(&mut rng, 6)))
            .collect();
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(&mut rng, k), encode(&mut rng, v)))
            .collect::<Vec<_>>()
            .join(if rng.below(4) == 0 { "&&" } else { "&" });
        let read: Vec<(String, String)> = query_pairs(&query)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(read, pairs, "{query:?}");
    }
}

#[test]
fn any_query_text_decodes_without_panic() {
    let mut rng = Rng::new(0x5eed_0005);
    for _ in 0..20_000 {
        let text = random_text(&mut rng, 24);
        for (k, v) in query_pairs(&text) {
            assert!(!k.contains('&') || text.contains("%26"), "{text:?}");
            // Text with nothing to decode is given back as it is.
            if !text.contains(['%', '+']) {
                assert!(
                    matches!((&k, &v), (Cow::Borrowed(_), Cow::Borrowed(_))),
                    "{text:?}"
                );
            }
        }
        let decoded = percent_decode(&text);
        assert!(decoded.len() <= 3 * text.len(), "{text:?}");
    }
}

/// A cookie name (an RFC 6265 token) or value (cookie-octets).
fn cookie_text(rng: &mut Rng, value: bool) -> String {
    const NAME: &[u8] = b"abcXYZ019!#$&'*+-.^_`|~";
    const VALUE: &[u8] = b"abcXYZ019!#$&'()*+-./:<=>?@[]^_`{|}~";
    let set = if value { VALUE } else { NAME };
    let min = usize::from(!value);
    (0..min + rng.below(8))
        .map(|_| *rng.pick(set) as char)
        .collect()
}

#[test]
fn cookies_read_back_as_written() {
    let mut rng = Rng::new(0x5eed_0006);
    for _ in 0..5000 {
        let cookies: Vec<(String, String)> = (0..rng.below(5))
            .map(|_| (cookie_text(&mut rng, false), cookie_text(&mut rng, true)))
            .collect();
        let header = cookies
            .iter()
            .map(|(k, v)| {
                if rng.below(3) == 0 {
                    format!("{k}=\"{v}\"")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join(*rng.pick(&["; ", ";", " ;  "]));
        let read: Vec<(&str, &str)> = cookie_pairs(&header).collect();
        let expected: Vec<(&str, &str)> = cookies
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(read, expected, "{header:?}");
    }
}

#[test]
fn any_cookie_header_gives_pieces_of_itself() {
    let mut rng = Rng::new(0x5eed_0007);
    for _ in 0..20_000 {
        let header = random_text(&mut rng, 24);
        for (k, v) in cookie_pairs(&header) {
            assert!(!k.contains(';') && !v.contains(';'), "{header:?}");
            assert_eq!(k, k.trim(), "{header:?}");
            assert!(header.contains(k) && header.contains(v), "{header:?}");
        }
    }
}
