//! HTTP mode: N keep-alive connections, each with `--pipeline K` requests in
//! flight (K = 1: one request, its response, the next request; K > 1: K
//! requests written together, a new one per response). Responses are parsed
//! for their status and Content-Length only. `--path` picks the request
//! target (a route of examples/routes.rs and benches/bun/routes.js).

use crate::{closed_loop, cpu_fields, Conn};

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

pub(crate) fn run_http(mut g: crate::Gen) -> Result<(), String> {
    let n = g.o.clients;
    let k = g.o.pipeline.max(1);
    g.connect_all(false)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}.{}.{}.{}:{}\r\n\r\n",
        g.o.path, g.o.host[0], g.o.host[1], g.o.host[2], g.o.host[3], g.o.port
    )
    .into_bytes();
    let (responses, elapsed, ticker) = closed_loop(&mut g, &request, k, "responses")?;
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
