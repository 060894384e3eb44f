//! A small seeded generator for the randomized tests of our Rust parsers
//! (the client's handshake check, URLs, query strings, cookies): the same
//! inputs every run, no dependency. fuzz/README.md says how these tests
//! sit next to the libFuzzer targets of the native parsers.

/// SplitMix64.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items`.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `input` changed a few times: bytes replaced, inserted, removed or
    /// taken from `dictionary` (pieces that matter to the parser).
    pub(crate) fn mutate(&mut self, input: &[u8], dictionary: &[&[u8]]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(6) {
                0 if at < out.len() => out[at] = self.next() as u8,
                1 => out.insert(at, self.next() as u8),
                2 if at < out.len() => {
                    let end = (at + 1 + self.below(8)).min(out.len());
                    out.drain(at..end);
                }
                3 | 4 => {
                    let piece = *self.pick(dictionary);
                    out.splice(at..at, piece.iter().copied());
                }
                _ if !out.is_empty() => {
                    // A copy of a stretch elsewhere (repeats a header, say).
                    let from = self.below(out.len());
                    let len = 1 + self.below((out.len() - from).min(32));
                    let piece: Vec<u8> = out[from..from + len].to_vec();
                    out.splice(at..at, piece);
                }
                _ => {}
            }
        }
        out
    }
}
