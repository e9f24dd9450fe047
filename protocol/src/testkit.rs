//! Test helpers: a seeded PRNG so randomized tests replay exactly.
//!
//! SplitMix64 is enough here: the tests need reproducible, well-spread
//! values, not cryptographic ones, and a hand-rolled generator keeps the
//! crate free of a `rand` dependency whose stream could change between
//! versions and silently change what a seed means.

/// Seeded generator. Tests put `rng.seed()` in every assertion message so a
/// failure names the seed that reproduces it.
#[derive(Debug, Clone)]
pub struct Prng {
    seed: u64,
    state: u64,
}

impl Prng {
    pub fn new(seed: u64) -> Self {
        Self { seed, state: seed }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0); the modulo bias is irrelevant
    /// for test data.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next_u64() % bound
    }

    pub fn range_i64(&mut self, low: i64, high_inclusive: i64) -> i64 {
        assert!(low <= high_inclusive);
        let span = high_inclusive.wrapping_sub(low) as u64;
        if span == u64::MAX {
            return self.next_u64() as i64;
        }
        low.wrapping_add(self.below(span + 1) as i64)
    }

    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            *byte = self.next_u64() as u8;
        }
    }

    pub fn bytes(&mut self, len_max: usize) -> Vec<u8> {
        let mut out = vec![0; self.below(len_max as u64 + 1) as usize];
        self.fill(&mut out);
        out
    }

    /// A short ASCII identifier, like a topic or client id.
    pub fn name(&mut self, len_max: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789._-";
        let len = 1 + self.below(len_max as u64) as usize;
        (0..len)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}
