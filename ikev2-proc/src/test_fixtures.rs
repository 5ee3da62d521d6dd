//! Fixtures shared by the engine's tests, the stateful fuzzer's driver
//! (feature "fuzzing") and the scale benchmark (`benches/scale.rs`
//! includes this file by path): only `iked_common` types, so it compiles
//! in all three. Never part of the daemon.

use iked_common::config::TransformSpec;

/// Deterministic xorshift64* RNG: reproducible runs, never for keys
/// that protect anything.
pub fn seeded(seed: u64) -> Box<dyn iked_common::crypto::RandomSource> {
    let mut state = seed.max(1);
    Box::new(move |buf: &mut [u8]| {
        for byte in buf.iter_mut() {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            *byte = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    })
}

/// One transform of a proposal.
pub fn t(transform_type: u8, id: u16, key_length: Option<u16>) -> TransformSpec {
    TransformSpec {
        transform_type,
        id,
        key_length,
    }
}
