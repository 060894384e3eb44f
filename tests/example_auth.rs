//! examples/auth.rs: session lookups overlap, as Bun's awaited checks do.
//! Twenty logins sent at once to a store with a 1 s delay are all
//! upgraded in about one delay; one lookup after another would take 20 s.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{handshake, run_example, TIMEOUT};

const LOGINS: usize = 20;
const DELAY_MS: u64 = 1000;

#[test]
fn concurrent_logins_are_looked_up_concurrently() {
    let auth = run_example("auth", &["--delay-ms", &DELAY_MS.to_string()]);
    let started = Instant::now();
    let mut sockets: Vec<TcpStream> = (0..LOGINS)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", auth.port)).unwrap();
            s.set_read_timeout(Some(TIMEOUT * 2)).unwrap();
            s.write_all(&handshake(&format!("/?token=ok-u{i}"), ""))
                .unwrap();
            s
        })
        .collect();
    for s in sockets.iter_mut() {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "closed before the answer");
            got.push(byte[0]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 101 "),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    let took = started.elapsed();
    // Not a speed claim: one lookup after another needs LOGINS delays
    // (20 s); overlapping ones need one. Half of the serial time leaves
    // room for any machine.
    let serial = Duration::from_millis(DELAY_MS) * LOGINS as u32;
    assert!(
        took < serial / 2,
        "{LOGINS} logins took {took:?}: the lookups ran one after another"
    );
}
