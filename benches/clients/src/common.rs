//! What both client load generators share: the command line, the
//! per-second rates and the RESULT line (the format of benches/loadgen).

use std::time::{Duration, Instant};

pub struct Args {
    pub port: u16,
    pub clients: usize,
    pub inflight: usize,
    pub size: usize,
    pub seconds: u64,
}

pub fn args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str, default: u64| -> u64 {
        match argv.iter().position(|a| a == name) {
            None => default,
            Some(i) => argv
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| {
                    eprintln!("bad value for {name}");
                    std::process::exit(2)
                }),
        }
    };
    Args {
        port: get("--port", 3000) as u16,
        clients: get("--clients", 64) as usize,
        inflight: get("--inflight", 128) as usize,
        size: get("--size", 32) as usize,
        seconds: get("--seconds", 10),
    }
}

/// Echoes counted per whole second of the run.
pub struct Rates {
    start: Instant,
    /// Count at the end of each whole second so far.
    marks: Vec<u64>,
}

impl Rates {
    pub fn new() -> Rates {
        Rates {
            start: Instant::now(),
            marks: Vec::new(),
        }
    }

    /// Records `count` (echoes so far); true once the run is over.
    pub fn tick(&mut self, count: u64, seconds: u64) -> bool {
        let elapsed = self.start.elapsed();
        while elapsed >= Duration::from_secs(self.marks.len() as u64 + 1) {
            self.marks.push(count);
        }
        self.marks.len() as u64 >= seconds
    }

    /// Prints the RESULT line.
    pub fn report(&self, a: &Args, count: u64) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let mut per: Vec<u64> = self
            .marks
            .iter()
            .scan(0, |prev, &m| {
                let r = m - *prev;
                *prev = m;
                Some(r)
            })
            .collect();
        per.sort_unstable();
        let med = per.get(per.len() / 2).copied().unwrap_or(0);
        let (min, max) = (
            per.first().copied().unwrap_or(0),
            per.last().copied().unwrap_or(0),
        );
        println!(
            "RESULT mode=echo clients={} inflight={} size={} messages={count} seconds={elapsed:.3} \
             rate={:.0} rate_median={med} rate_min={min} rate_max={max} cpu_s={:.3}",
            a.clients,
            a.inflight,
            a.size,
            count as f64 / elapsed,
            cpu_seconds()
        );
    }
}

/// User + system CPU time of this process, from /proc.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    (ticks(11) + ticks(12)) / 100.0
}
