//! Fixtures shared by the engine's tests, the stateful fuzzer's driver
//! (feature "fuzzing") and the scale benchmark (`benches/scale.rs`
//! includes this file by path): only `iked_common` types, so it compiles
//! in all three. Never part of the daemon.

use std::net::IpAddr;

use iked_common::config::{
    AuthSpec, Encapsulation, Policy, PolicyInitiation, Prefix, TransformSpec,
};
use iked_common::kernel::Selector;

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

/// A PSK tunnel policy between two single addresses (host prefixes), without proposals
/// (each user sets its own with struct update syntax), an IKE SA lifetime
/// of an hour and a Child SA lifetime of 20 minutes.
pub fn psk_tunnel_policy(
    name: &str,
    local: IpAddr,
    peer: Option<IpAddr>,
    flows: Vec<Selector>,
    active: bool,
) -> Policy {
    let host = |addr| Prefix {
        addr,
        len: iked_common::kernel::max_prefix(addr),
    };
    Policy {
        name: name.into(),
        initiation: if active {
            PolicyInitiation::Active
        } else {
            PolicyInitiation::Passive
        },
        encapsulation: Encapsulation::Tunnel,
        force_natt: false,
        trap: true,
        flows,
        local: Some(host(local)),
        peer: peer.map(host),
        ike_proposals: Vec::new(),
        child_proposals: Vec::new(),
        srcid: None,
        dstid: None,
        ike_lifetime_secs: 3600,
        child_lifetime_secs: 1200,
        child_lifetime_bytes: 0,
        auth: AuthSpec::Psk,
        remote_access: Default::default(),
        matching: Default::default(),
    }
}
