//! The decisions of a fuzz run, from a seed or from a fuzzer's bytes.

/// The decisions of one run: a seeded generator or a fuzzer's bytes.
pub struct Choices {
    source: Source,
}

enum Source {
    /// xorshift64*, small and reproducible from the printed seed.
    Seeded(u64),
    /// libFuzzer's input; zeros once it is used up (the run then ends).
    Bytes { data: Vec<u8>, pos: usize },
}

impl Choices {
    pub fn from_seed(seed: u64) -> Choices {
        // Spread nearby seeds apart (splitmix64), never zero for xorshift.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Choices {
            source: Source::Seeded((z ^ (z >> 31)).max(1)),
        }
    }

    pub fn from_bytes(data: &[u8]) -> Choices {
        Choices {
            source: Source::Bytes {
                data: data.to_vec(),
                pos: 0,
            },
        }
    }

    /// `octets` (1 to 8) octets' worth of choice.
    fn raw(&mut self, octets: usize) -> u64 {
        match &mut self.source {
            Source::Seeded(state) => {
                *state ^= *state >> 12;
                *state ^= *state << 25;
                *state ^= *state >> 27;
                state.wrapping_mul(0x2545_f491_4f6c_dd1d)
            }
            Source::Bytes { data, pos } => {
                let mut value = 0u64;
                for _ in 0..octets {
                    value = (value << 8) | u64::from(data.get(*pos).copied().unwrap_or(0));
                    *pos += 1;
                }
                value
            }
        }
    }

    /// A number in `0..bound` (0 when bound is 0 or 1, taking nothing).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound <= 1 {
            return 0;
        }
        let octets = match bound {
            0..=256 => 1,
            257..=65_536 => 2,
            _ => 4,
        };
        (self.raw(octets) % bound as u64) as usize
    }

    /// True one time in `n`.
    pub fn chance(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn u64(&mut self) -> u64 {
        self.raw(8)
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let value = self.raw(chunk.len()).to_be_bytes();
            chunk.copy_from_slice(&value[8 - chunk.len()..]);
        }
    }

    /// A fuzzer's input is used up.
    pub fn exhausted(&self) -> bool {
        matches!(&self.source, Source::Bytes { data, pos } if *pos >= data.len())
    }
}
