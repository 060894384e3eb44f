//! Delivery latency: the time from the `send` call that handed a message to
//! the kernel to the `recv` that brought it to a member, kept in a histogram
//! that allocates nothing while recording.

use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds since the first call: send and receive times as plain
/// numbers, so that a delivery's latency is one subtraction.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Sub-buckets per power of two (2^5 = 32): quantiles within about 3%.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// A log-linear histogram of nanoseconds.
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max: u64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        (shift as usize + 1) * SUB + ((v >> shift) as usize - SUB)
    }

    /// The smallest value of bucket `i`.
    fn low(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let shift = i / SUB - 1;
        ((i % SUB + SUB) as u64) << shift
    }

    pub fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.count += 1;
        self.max = self.max.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which a fraction `q` of the samples lie (the lower
    /// end of its bucket), 0 without samples.
    pub fn quantile(&self, q: f64) -> u64 {
        let rank = ((self.count as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::low(i).min(self.max);
            }
        }
        self.max
    }

    /// `lat_p50_us=.. lat_p99_us=.. lat_max_us=.. lat_samples=..` for a
    /// RESULT line.
    pub fn fields(&self) -> String {
        let us = |ns: u64| ns as f64 / 1000.0;
        format!(
            "lat_p50_us={:.1} lat_p99_us={:.1} lat_max_us={:.1} lat_samples={}",
            us(self.quantile(0.50)),
            us(self.quantile(0.99)),
            us(self.max()),
            self.count()
        )
    }
}

/// Chat latency bookkeeping for one batch at a time: every client sends the
/// same frames; member `r` gets sender `k`'s messages in the order `k` sent
/// them, so the `j`-th message from `k` at `r` is `k`'s frame `j`.
pub struct ChatLatency {
    n: usize,
    /// Where each frame of the batch ends, in bytes from the batch start.
    frame_end: Vec<u64>,
    /// Messages from sender `k` seen at member `r` this batch: `seen[r * n + k]`.
    seen: Vec<u32>,
    pub hist: Histogram,
}

impl ChatLatency {
    pub fn new(n: usize, frame_end: Vec<u64>) -> ChatLatency {
        ChatLatency {
            n,
            frame_end,
            seen: vec![0; n * n],
            hist: Histogram::new(),
        }
    }

    /// A new batch starts: nothing seen yet.
    pub fn reset(&mut self) {
        self.seen.fill(0);
    }

    /// Member `r` received, at `at` ([`now_ns`]), the next message of
    /// sender `k`, whose sends are `marks`: (bytes of the batch accepted so
    /// far, [`now_ns`] when the call started), in order.
    pub fn record(&mut self, r: usize, k: usize, at: u64, marks: &[(u64, u64)]) {
        if k >= self.n {
            return;
        }
        let j = &mut self.seen[r * self.n + k];
        let Some(&end) = self.frame_end.get(*j as usize) else {
            return;
        };
        *j += 1;
        if let Some(&(_, sent)) = marks.iter().find(|(upto, _)| *upto >= end) {
            self.hist.record(at.saturating_sub(sent));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn buckets_are_monotonic_and_within_3_percent() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 20, 123_456_789, u64::MAX / 3]) {
            let i = Histogram::index(v);
            assert!(i >= last || v < 100_000, "index goes back at {v}");
            last = i;
            let low = Histogram::low(i);
            assert!(
                low <= v && (v - low) as f64 <= v as f64 * 0.032,
                "{v} -> {low}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 500_000.0).abs() < 500_000.0 * 0.04, "{p50}");
        assert!((p99 - 990_000.0).abs() < 990_000.0 * 0.04, "{p99}");
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(h.count(), 1000);
    }
}
