//! Fixtures shared by the engine's tests and the scale benchmark
//! (`benches/scale.rs` includes this file by path): only `iked_common`
//! types, so it compiles in both.

use std::net::IpAddr;

use iked_common::config::TransformSpec;
use iked_common::kernel::Selector;

/// Deterministic xorshift64* RNG.
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

/// A selector of any protocol and port between two prefixes.
pub fn selector_between(src: IpAddr, src_prefix: u8, dst: IpAddr, dst_prefix: u8) -> Selector {
    Selector {
        src,
        src_prefix,
        dst,
        dst_prefix,
        protocol: 0,
        src_port: 0,
        dst_port: 0,
    }
}
