//! HTTP mode: N keep-alive connections, each with `--pipeline K` requests in
//! flight (K = 1: one request, its response, the next request; K > 1: K
//! requests written together, a new one per response). Responses are parsed
//! for their status and Content-Length only.

use std::time::Duration;

use crate::{cpu_fields, Conn, Gen, Ticker};

impl Conn {
    /// Feeds response bytes; counts whole `200` responses in `msgs`.
    pub(crate) fn feed_http(&mut self, data: &[u8]) -> Result<(), String> {
        let mut i = 0;
        while i < data.len() {
            if self.body_left > 0 {
                let take = self.body_left.min((data.len() - i) as u64);
                i += take as usize;
                self.body_left -= take;
                if self.body_left == 0 {
                    self.msgs += 1;
                }
                continue;
            }
            if self.hs.is_empty() {
                // Usual case: the whole head is in this read.
                if let Some(end) = head_end(&data[i..]) {
                    self.begin_response(&data[i..i + end])?;
                    i += end;
                    continue;
                }
            }
            // A head split across reads: gather it, then go on after it.
            let had = self.hs.len();
            self.hs.extend_from_slice(&data[i..]);
            let Some(end) = head_end(&self.hs) else {
                if self.hs.len() > 16 * 1024 {
                    return Err("oversized HTTP response head".into());
                }
                return Ok(());
            };
            let head = std::mem::take(&mut self.hs);
            self.begin_response(&head[..end])?;
            i += end - had;
        }
        Ok(())
    }

    fn begin_response(&mut self, head: &[u8]) -> Result<(), String> {
        if !head.starts_with(b"HTTP/1.1 200 ") {
            let line = head.split(|&b| b == b'\r').next().unwrap_or(b"");
            return Err(format!(
                "unexpected response {:?}",
                String::from_utf8_lossy(line)
            ));
        }
        let length = head
            .split(|&b| b == b'\n')
            .find_map(|line| {
                let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
                name.eq_ignore_ascii_case(b"content-length")
                    .then(|| {
                        String::from_utf8_lossy(&value[1..])
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
                    .flatten()
            })
            .ok_or("response without Content-Length")?;
        self.data_bytes += length;
        if length == 0 {
            self.msgs += 1;
        } else {
            self.body_left = length;
        }
        Ok(())
    }
}

/// Where the head ends (after its blank line), if it is all there.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

pub(crate) fn run_http(mut g: Gen) -> Result<(), String> {
    let n = g.o.clients;
    let k = g.o.pipeline.max(1);
    g.connect_all(false)?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}.{}.{}.{}:{}\r\n\r\n",
        g.o.host[0], g.o.host[1], g.o.host[2], g.o.host[3], g.o.port
    )
    .into_bytes();
    let limit = match (g.o.seconds, g.o.messages) {
        (Some(s), _) => s,
        (None, Some(_)) => 600.0,
        (None, None) => 10.0,
    };
    let target = g.o.messages.unwrap_or(u64::MAX);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut ticker = Ticker::new("responses", g.o.quiet);
    let start = ticker.start;
    let deadline = start + Duration::from_secs_f64(limit);
    let ep = g.ep;
    let mut responses: u64 = 0;

    for (idx, c) in g.conns.iter_mut().enumerate() {
        for _ in 0..k {
            c.out.extend_from_slice(&request);
        }
        Gen::flush(ep, idx, c, &mut g.sends)?;
    }
    'run: loop {
        let now = std::time::Instant::now();
        let wait_ms = ticker.poll(now, responses);
        if now >= deadline {
            break;
        }
        let to_deadline = (deadline - now).as_millis() as i32 + 1;
        let got = g.wait(&mut events, wait_ms.min(to_deadline))?;
        for e in &events[..got] {
            let (ev, idx) = (e.events, e.u64 as usize);
            g.on_event(idx, ev)?;
            let c = &mut g.conns[idx];
            let m = c.msgs;
            if m > 0 {
                c.msgs = 0;
                responses += m;
                if responses >= target {
                    responses = target;
                    break 'run;
                }
                for _ in 0..m {
                    c.out.extend_from_slice(&request);
                }
                Gen::flush(ep, idx, c, &mut g.sends)?;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(m) = g.o.messages {
        if responses < m {
            return Err(format!(
                "time limit reached after {responses} of {m} responses"
            ));
        }
    }
    g.close_all();
    let (med, min, max) = ticker.summary(responses, elapsed);
    println!(
        "RESULT mode=http clients={n} pipeline={k} requests={responses} seconds={elapsed:.3} \
         rate={:.0} rate_median={med:.0} rate_min={min:.0} rate_max={max:.0} intervals={} \
         response_bytes={:.0} {}",
        responses as f64 / elapsed,
        ticker.rates.len(),
        g.recv_bytes as f64 / responses.max(1) as f64,
        cpu_fields(&g, elapsed)
    );
    Ok(())
}
