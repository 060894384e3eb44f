//! The HTTP/1.1 request parser against hostile and unusual input, byte by
//! byte: what waits for more, what is refused at once (and with which
//! status), what cannot smuggle a request past the server
//! (vendor/patches/0006-0010).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{converse, Conversation, End};
use common::*;
use uws::{Request, Response, ServeOptions, Server, WebSocketHandler, WebSocketOptions};

/// Answers every request with 200 and `METHOD TARGET host=HOST` as body, and
/// logs that line: a request the server executed shows in the log.
#[derive(Clone, Default)]
struct Seen {
    log: Arc<Mutex<Vec<String>>>,
}

impl WebSocketHandler for Seen {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, _server: &Server<()>) -> Response {
        let line = format!(
            "{} {} host={}",
            req.method(),
            req.path_and_query(),
            req.header("host").unwrap_or("-")
        );
        self.log.lock().unwrap().push(line.clone());
        Response::new(line)
    }
}

impl Seen {
    fn saw(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

fn site() -> (Seen, Running<()>) {
    let seen = Seen::default();
    let running = start(WebSocketOptions::default(), seen.clone());
    (seen, running)
}

fn site_with(options: ServeOptions) -> (Seen, Running<()>) {
    let seen = Seen::default();
    let running = start_with(
        ServeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            ..options
        },
        seen.clone(),
    );
    (seen, running)
}

const PAUSE: Duration = Duration::from_millis(30);

/// One request, in one write; expects `want` responses.
fn ask(port: u16, request: &[u8], want: usize) -> Conversation {
    converse(port, &[request], PAUSE, want, TIMEOUT)
}

/// Asserts that `request` was refused at once with `status` and the
/// connection closed, and that nothing reached `fetch`.
fn assert_refused(seen: &Seen, port: u16, what: &str, request: &[u8], status: u16) {
    let before = seen.log.lock().unwrap().len();
    let c = ask(port, request, 1);
    assert_eq!(c.statuses(), vec![status], "{what}: {c:?}");
    assert_ne!(
        c.end,
        End::Open,
        "{what}: the connection stayed open: {c:?}"
    );
    assert!(
        c.took < Duration::from_secs(3),
        "{what}: answered after {:?}",
        c.took
    );
    let log = seen.log.lock().unwrap();
    assert_eq!(log.len(), before, "{what}: reached fetch: {log:?}");
}

// ---------------------------------------------------------------------------
// Incomplete is not invalid (0006)
// ---------------------------------------------------------------------------

#[test]
fn a_request_cut_anywhere_waits_for_the_rest() {
    let (seen, server) = site();
    let request = b"GET /pieces?x=1 HTTP/1.1\r\nHost: a.example\r\nX-Empty:\r\n\r\n";
    for cut in 1..request.len() {
        let (first, rest) = request.split_at(cut);
        let c = converse(server.port, &[first, rest], PAUSE, 1, TIMEOUT);
        assert_eq!(
            c.statuses(),
            vec![200],
            "cut after {cut} bytes ({:?}): {c:?}",
            String::from_utf8_lossy(first)
        );
        assert_eq!(c.replies[0].text(), "GET /pieces?x=1 host=a.example");
    }
    assert_eq!(seen.log.lock().unwrap().len(), request.len() - 1);
}

#[test]
fn a_long_url_split_by_tcp_is_read_whole() {
    // What a 3 KB URL looks like after TCP cut it at a 1448-byte segment.
    let (_seen, server) = site();
    let path = format!("/long/{}", "u".repeat(3000));
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
    let (first, rest) = request.as_bytes().split_at(1448);
    let c = converse(server.port, &[first, rest], PAUSE, 1, TIMEOUT);
    assert_eq!(c.statuses(), vec![200], "{c:?}");
    assert_eq!(c.replies[0].text(), format!("GET {path} host=a"));
}

#[test]
fn invalid_bytes_in_the_head_are_refused_with_400_at_once() {
    let (seen, server) = site();
    let cases: &[(&str, &[u8])] = &[
        (
            "a bracket in a field name",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Invalid[]: test\r\n\r\n",
        ),
        (
            "a space before the colon",
            b"GET / HTTP/1.1\r\nHost: a\r\nName : value\r\n\r\n",
        ),
        (
            "an obs-fold continuation line",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n",
        ),
        (
            "a bare CR in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",
        ),
        (
            "a NUL in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n",
        ),
        (
            "a bell in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: test\x07\r\n\r\n",
        ),
        (
            "a DEL in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: te\x7fst\r\n\r\n",
        ),
        (
            "a bare LF ending a header line",
            b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n",
        ),
        (
            "a CR that is not a line end",
            b"GET / HTTP/1.1\r\nHost: a\r\n\rSome-Header: Test\r\n\r\n",
        ),
        (
            "an empty field name",
            b"GET / HTTP/1.1\r\nHost: a\r\n: nameless\r\n\r\n",
        ),
        (
            "a control byte in the target",
            b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "two spaces after the method",
            b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "a lower-case protocol name",
            b"GET / http/1.1\r\nHost: a\r\n\r\n",
        ),
        ("no version", b"GET / \r\n\r\n"),
        ("no target", b"GET HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("a method of 65 letters", &[b'A'; 65]),
        (
            "a line before the request",
            b"Extra lineGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        assert_refused(&seen, server.port, what, request, 400);
    }
}

#[test]
fn a_version_other_than_1_x_is_refused_with_505() {
    let (seen, server) = site();
    for version in ["HTTP/9.9", "HTTP/2.0", "HTTP/0.9"] {
        let request = format!("GET / {version}\r\nHost: a\r\n\r\n");
        assert_refused(&seen, server.port, version, request.as_bytes(), 505);
    }
}

#[test]
fn more_header_lines_than_the_parser_takes_get_431() {
    let (seen, server) = site();
    // Bun's limit: 198 fields (Host and 197 more) pass, 199 do not.
    let mut request = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..198 {
        request.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    assert!(request.len() < 4096);
    assert_refused(&seen, server.port, "199 header lines", &request, 431);
}

#[test]
fn tokens_may_use_every_tchar_and_values_obs_text() {
    let (_seen, server) = site();
    let c = ask(
        server.port,
        b"GET / HTTP/1.1\r\nHost: a\r\nX!#$%&'*+-.^_`|~Name: caf\xc3\xa9 \t ok\r\n\r\n",
        1,
    );
    assert_eq!(c.statuses(), vec![200], "{c:?}");
}

// ---------------------------------------------------------------------------
// One limit for the head, however it arrives (0007)
// ---------------------------------------------------------------------------

/// A request whose head takes exactly `size` bytes.
fn head_of(size: usize) -> Vec<u8> {
    let start = b"GET /big HTTP/1.1\r\nHost: a\r\nX-Filler: ";
    let end = b"\r\n\r\n";
    let mut out = start.to_vec();
    out.resize(size - end.len(), b'f');
    out.extend_from_slice(end);
    out
}

/// Sends `request` in one write, or cut into `pieces` writes.
fn send_head(port: u16, request: &[u8], pieces: usize) -> Conversation {
    let step = request.len().div_ceil(pieces);
    let chunks: Vec<&[u8]> = request.chunks(step).collect();
    converse(port, &chunks, PAUSE, 1, TIMEOUT)
}

#[test]
fn a_head_up_to_16_kib_is_taken_however_it_arrives() {
    let (seen, server) = site();
    for pieces in [1, 2, 5] {
        for size in [8 * 1024, 16 * 1024] {
            let c = send_head(server.port, &head_of(size), pieces);
            assert_eq!(c.statuses(), vec![200], "{size} bytes in {pieces}: {c:?}");
        }
    }
    assert_eq!(seen.log.lock().unwrap().len(), 6);
}

#[test]
fn a_head_over_16_kib_gets_431_however_it_arrives() {
    let (seen, server) = site();
    for pieces in [1, 2, 5] {
        for size in [16 * 1024 + 1, 100 * 1024] {
            let c = send_head(server.port, &head_of(size), pieces);
            assert_eq!(c.statuses(), vec![431], "{size} bytes in {pieces}: {c:?}");
            assert_ne!(c.end, End::Open, "{c:?}");
        }
    }
    assert!(seen.log.lock().unwrap().is_empty());
}

#[test]
fn the_head_limit_is_an_option() {
    let (_seen, small) = site_with(ServeOptions {
        max_header_size: 4096,
        ..Default::default()
    });
    for pieces in [1, 3] {
        let c = send_head(small.port, &head_of(4096), pieces);
        assert_eq!(c.statuses(), vec![200], "{c:?}");
        let c = send_head(small.port, &head_of(4097), pieces);
        assert_eq!(c.statuses(), vec![431], "{c:?}");
    }
    let (_seen, large) = site_with(ServeOptions {
        max_header_size: 256 * 1024,
        ..Default::default()
    });
    for pieces in [1, 4] {
        let c = send_head(large.port, &head_of(200 * 1024), pieces);
        assert_eq!(c.statuses(), vec![200], "{c:?}");
        let c = send_head(large.port, &head_of(256 * 1024 + 1), pieces);
        assert_eq!(c.statuses(), vec![431], "{c:?}");
    }
}

// ---------------------------------------------------------------------------
// Where a request ends is never ambiguous (0008)
// ---------------------------------------------------------------------------

#[test]
fn two_different_content_lengths_are_refused_and_smuggle_nothing() {
    // With the first length winning, "GET /smuggled" hid in the body of
    // the first request and then ran as a request of its own.
    let (seen, server) = site();
    let hidden = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut request =
        b"POST /front HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 41\r\n\r\nhello"
            .to_vec();
    request.extend_from_slice(hidden);
    let c = ask(server.port, &request, 2);
    assert_eq!(c.statuses(), vec![400], "{c:?}");
    assert_ne!(c.end, End::Open, "{c:?}");
    assert!(!seen.saw("/smuggled"), "{:?}", seen.log.lock().unwrap());
    assert!(!seen.saw("/front"), "{:?}", seen.log.lock().unwrap());
}

#[test]
fn framing_headers_that_do_not_say_one_thing_are_refused() {
    let (seen, server) = site();
    let cases: &[(&str, &[u8])] = &[
        (
            "two Host headers",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ),
        ("no Host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"),
        ("no header at all", b"GET / HTTP/1.1\r\n\r\n"),
        (
            "Content-Length with Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: a\r\ncontent-LengtH: 5\r\nTransFer-Encoding: chunked\r\n\r\nc\r\nHellO world1\r\n0\r\n\r\n",
        ),
        (
            "a Content-Length list",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
        ),
        (
            "an empty Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
        ),
        (
            "a negative Content-Length",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1234\r\n\r\n",
        ),
        (
            "an overflowing Content-Length",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 123456789123456789123456789\r\n\r\n",
        ),
        (
            "a Content-Length in hex",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello",
        ),
        (
            "chunked, then identity",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "identity alone",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nhello",
        ),
        (
            "gzip before chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "two Transfer-Encoding headers",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "a misspelt chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        assert_refused(&seen, server.port, what, request, 400);
    }
}

#[test]
fn bodies_framed_one_way_are_taken_and_the_next_request_follows() {
    let (seen, server) = site();
    let cases: &[(&str, &[u8])] = &[
        (
            "Content-Length",
            b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "the same Content-Length twice",
            b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "Transfer-Encoding: Chunked",
            b"POST /first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\nc\r\nHellO world1\r\n0\r\n\r\n",
        ),
        ("an empty Host", b"GET /first HTTP/1.1\r\nHost:\r\n\r\n"),
    ];
    for (what, request) in cases {
        let mut both = request.to_vec();
        both.extend_from_slice(b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n");
        let c = ask(server.port, &both, 2);
        assert_eq!(c.statuses(), vec![200, 200], "{what}: {c:?}");
        assert!(
            c.replies[1].text().starts_with("GET /second "),
            "{what}: {c:?}"
        );
        assert_eq!(c.end, End::Open, "{what}: {c:?}");
    }
    assert_eq!(seen.log.lock().unwrap().len(), 2 * cases.len());
}

// ---------------------------------------------------------------------------
// Chunked bodies, strictly (0009)
// ---------------------------------------------------------------------------

/// A chunked POST with `body` as its encoded body, then a second request.
fn chunked_then_next(body: &[u8]) -> Vec<u8> {
    let mut out =
        b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    out
}

#[test]
fn valid_chunked_bodies_end_where_they_say_and_the_next_request_follows() {
    let (seen, server) = site();
    let bodies: &[(&str, &[u8])] = &[
        ("plain", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        ("an extension", b"5;a=b\r\nhello\r\n0\r\n\r\n"),
        (
            "extensions with spaces and quotes",
            b"5 ; name=\"quoted; value\" ;flag\r\nhello\r\n0;last\r\n\r\n",
        ),
        (
            "upper-case hex and leading zeros",
            b"00A\r\n0123456789\r\n000\r\n\r\n",
        ),
        (
            "trailer fields",
            b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n",
        ),
        ("no data at all", b"0\r\n\r\n"),
    ];
    for (what, body) in bodies {
        let request = chunked_then_next(body);
        // In one write, and cut into single bytes' worth of writes around
        // the body (each arrives in its own read).
        let c = ask(server.port, &request, 2);
        assert_eq!(c.statuses(), vec![200, 200], "{what}: {c:?}");
        assert!(
            c.replies[1].text().starts_with("GET /next "),
            "{what}: {c:?}"
        );
        let head_end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut chunks: Vec<&[u8]> = vec![&request[..head_end]];
        chunks.extend(request[head_end..head_end + body.len()].chunks(1));
        chunks.push(&request[head_end + body.len()..]);
        let c = converse(server.port, &chunks, Duration::from_millis(2), 2, TIMEOUT);
        assert_eq!(c.statuses(), vec![200, 200], "{what}, byte by byte: {c:?}");
    }
    assert!(seen.saw("GET /next"));
}

#[test]
fn invalid_chunked_bodies_are_refused_and_swallow_nothing() {
    let (seen, server) = site();
    let bodies: &[(&str, &[u8])] = &[
        ("a bare LF after the size", b"5\nhello\r\n0\r\n\r\n"),
        ("a bare CR after the size", b"5\rhello\r\n0\r\n\r\n"),
        ("more data than the size says", b"3\r\nhello\r\n0\r\n\r\n"),
        ("data not followed by CRLF", b"5\r\nhelloXY0\r\n\r\n"),
        ("a bare LF after the data", b"5\r\nhello\n0\r\n\r\n"),
        ("no size", b"\r\nhello\r\n0\r\n\r\n"),
        ("a size that is not hex", b"g\r\nhello\r\n0\r\n\r\n"),
        ("a sign before the size", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("a 0x prefix", b"0x5\r\nhello\r\n0\r\n\r\n"),
        (
            "a size that overflows",
            b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        ("a space inside the size", b"1 0\r\nhello\r\n0\r\n\r\n"),
        (
            "a control byte in an extension",
            b"5;a=\x01\r\nhello\r\n0\r\n\r\n",
        ),
        ("a folded trailer line", b"0\r\nX-A: 1\r\n  2\r\n\r\n"),
        ("a bare LF ending the body", b"0\r\n\n"),
    ];
    for (what, body) in bodies {
        let before = seen.log.lock().unwrap().len();
        let c = ask(server.port, &chunked_then_next(body), 2);
        // The POST's head was fine: fetch answered it before its body
        // turned out invalid. Then the 400, the connection closed, and
        // /next never ran.
        assert_eq!(c.statuses(), vec![200, 400], "{what}: {c:?}");
        assert_ne!(c.end, End::Open, "{what}: {c:?}");
        assert_eq!(seen.log.lock().unwrap().len(), before + 1, "{what}");
        assert!(
            !seen.saw("GET /next"),
            "{what}: {:?}",
            seen.log.lock().unwrap()
        );
    }
}

#[test]
fn answers_to_earlier_requests_go_out_before_an_error() {
    // Pipelined: a valid request, then an invalid one, in one read. The
    // first one's answer is sent, then the 400 (not the 400 alone, which a
    // client would take for the answer to its first request).
    let (seen, server) = site();
    let c = ask(
        server.port,
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nX-Invalid[]: x\r\n\r\n",
        2,
    );
    assert_eq!(c.statuses(), vec![200, 400], "{c:?}");
    assert_eq!(c.replies[0].text(), "GET /a host=a");
    assert_ne!(c.end, End::Open, "{c:?}");
    assert!(!seen.saw("/b"));
}

// ---------------------------------------------------------------------------
// HTTP/1.0 and absolute-form targets are served (0010)
// ---------------------------------------------------------------------------

#[test]
fn http_1_0_requests_are_answered_and_the_connection_closed() {
    // curl --http1.0, many health checks: no Host needed, no keep-alive.
    let (seen, server) = site();
    for request in [
        &b"GET /health HTTP/1.0\r\n\r\n"[..],
        b"GET /health HTTP/1.0\r\nHost: a\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
        b"GET /health HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
    ] {
        let c = ask(server.port, request, 1);
        assert_eq!(c.statuses(), vec![200], "{c:?}");
        assert!(c.replies[0].text().starts_with("GET /health "), "{c:?}");
        assert_ne!(c.end, End::Open, "{c:?}");
    }
    assert_eq!(seen.log.lock().unwrap().len(), 3);
    // A later HTTP/1.x is read as 1.1.
    let c = ask(server.port, b"GET /later HTTP/1.2\r\nHost: a\r\n\r\n", 1);
    assert_eq!(c.statuses(), vec![200], "{c:?}");
}

#[test]
fn http_1_0_gets_no_100_continue_and_no_transfer_coding() {
    let (seen, server) = site();
    let c = converse(
        server.port,
        &[b"POST /e HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"],
        PAUSE,
        1,
        TIMEOUT,
    );
    assert_eq!(c.statuses(), vec![200], "{c:?}");
    assert!(c.interim.is_empty(), "{c:?}");
    // HTTP/1.1 does get it.
    let c = converse(
        server.port,
        &[b"POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"],
        PAUSE,
        1,
        TIMEOUT,
    );
    assert_eq!(c.statuses(), vec![200], "{c:?}");
    assert_eq!(c.interim.len(), 1, "{c:?}");
    assert_eq!(c.interim[0].status, 100, "{c:?}");
    assert_refused(
        &seen,
        server.port,
        "Transfer-Encoding in HTTP/1.0",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn absolute_form_targets_are_served_with_the_target_s_host() {
    let (_seen, server) = site();
    for (target, want) in [
        (
            "http://example.com/abs?q=1",
            "GET /abs?q=1 host=example.com",
        ),
        ("https://example.com:8443/", "GET / host=example.com:8443"),
        ("HTTPS://example.com/x", "GET /x host=example.com"),
        ("HTTP://[::1]:80/v6", "GET /v6 host=[::1]:80"),
        ("http://example.com", "GET / host=example.com"),
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: other.example\r\n\r\n");
        let c = ask(server.port, request.as_bytes(), 1);
        assert_eq!(c.statuses(), vec![200], "{target}: {c:?}");
        assert_eq!(c.replies[0].text(), want, "{target}");
    }
    // HTTP/1.0 may leave Host out: the target gives it.
    let c = ask(
        server.port,
        b"GET http://example.com/old HTTP/1.0\r\n\r\n",
        1,
    );
    assert_eq!(c.statuses(), vec![200], "{c:?}");
    assert_eq!(c.replies[0].text(), "GET /old host=example.com");
}

#[test]
fn targets_that_are_neither_origin_nor_http_absolute_form_are_refused() {
    let (seen, server) = site();
    for target in [
        "HTTPZ://example.com/",
        "H-TTP://example.com/",
        "ftp://example.com/",
        "http:/example.com/",
        "http://user@example.com/",
        "http:///path",
        "http://example.com?q",
        "example.com:443",
        "*",
        "^",
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_refused(&seen, server.port, target, request.as_bytes(), 400);
    }
    // Absolute-form with HTTP/1.1 still needs its Host header.
    assert_refused(
        &seen,
        server.port,
        "absolute-form without Host",
        b"GET http://example.com/ HTTP/1.1\r\n\r\n",
        400,
    );
}
