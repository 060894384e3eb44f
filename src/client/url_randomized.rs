//! Randomized test of `Target::parse`: URLs built from random parts parse
//! to those parts, and mutations of them never panic; whatever parses
//! prints (`Target::url`) to a URL that parses back to the same target.

use super::*;
use crate::randomized::Rng;

const DICTIONARY: &[&[u8]] = &[
    b"://",
    b"ws",
    b"wss",
    b"[",
    b"]",
    b"::1",
    b":",
    b"@",
    b"/",
    b"?",
    b"#",
    b"%20",
    b" ",
    b"0",
    b"65536",
    b"443",
    b"80",
    b"\xc3\xa9",
    b"[::ffff:1.2.3.4]",
    b"1.2.3.4",
];

fn random_url(rng: &mut Rng) -> (String, bool, String, u16, String) {
    let (scheme, tls) = *rng.pick(&[
        ("ws", false),
        ("wss", true),
        ("http", false),
        ("HTTPS", true),
    ]);
    let host = rng
        .pick(&[
            "example.com",
            "localhost",
            "127.0.0.1",
            "::1",
            "fe80::1",
            "a-b.c",
            "xn--bcher-kva.example",
        ])
        .to_string();
    let written_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let port: Option<u16> = match rng.below(3) {
        0 => None,
        1 => Some(1 + rng.below(65535) as u16),
        _ => Some(if tls { 443 } else { 80 }),
    };
    let path = rng.pick(&["", "/", "/chat", "/a/b/c", "/%20x"]).to_string();
    let query = rng.pick(&["", "?", "?x=1", "?a=b&c=%41"]).to_string();
    let url = format!(
        "{scheme}://{written_host}{}{path}{query}",
        port.map(|p| format!(":{p}")).unwrap_or_default()
    );
    let resource = match (path.as_str(), query.as_str()) {
        ("", "") => "/".to_owned(),
        ("", q) => format!("/{q}"),
        (p, q) => format!("{p}{q}"),
    };
    let port = port.unwrap_or(if tls { 443 } else { 80 });
    (url, tls, host, port, resource)
}

fn check_parsed(url: &str, t: &Target) {
    assert!(t.resource.starts_with('/'), "{url:?} -> {t:?}");
    assert!(t.port != 0 && !t.host.is_empty(), "{url:?} -> {t:?}");
    let again = Target::parse(&t.url()).unwrap_or_else(|e| panic!("{url:?} -> {t:?} -> {e}"));
    assert_eq!(&again, t, "{url:?} does not survive printing");
}

#[test]
fn urls_parse_to_their_parts_and_mutations_never_panic() {
    let mut rng = Rng::new(0x5eed_0003);
    let (mut parsed, mut refused) = (0u32, 0u32);
    for _ in 0..5000 {
        let (url, tls, host, port, resource) = random_url(&mut rng);
        let t = Target::parse(&url).unwrap_or_else(|e| panic!("{url:?}: {e}"));
        assert_eq!(
            (t.tls, &t.host, t.port, &t.resource),
            (tls, &host, port, &resource),
            "{url:?}"
        );
        check_parsed(&url, &t);
        for _ in 0..10 {
            let mutated = rng.mutate(url.as_bytes(), DICTIONARY);
            let Ok(mutated) = String::from_utf8(mutated) else {
                continue;
            };
            match Target::parse(&mutated) {
                Ok(t) => {
                    parsed += 1;
                    check_parsed(&mutated, &t);
                }
                Err(_) => refused += 1,
            }
        }
    }
    assert!(
        parsed > 1000 && refused > 1000,
        "{parsed} parsed, {refused} refused"
    );
}
