//! Injectable randomness, so the sans-I/O engine can be deterministic in tests.

use super::{CryptoError, Result};

/// A source of random bytes for IVs (and anything else the engine draws).
///
/// Production code uses [`OpensslRandom`]; tests pass a closure or a seeded
/// generator to make sealed messages reproducible.
pub trait RandomSource {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()>;
}

/// OpenSSL's CSPRNG (`RAND_bytes`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpensslRandom;

impl RandomSource for OpensslRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        openssl::rand::rand_bytes(buf).map_err(|_| CryptoError::Random)
    }
}

/// Any `FnMut(&mut [u8])` is a random source (handy in tests).
impl<F: FnMut(&mut [u8])> RandomSource for F {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        self(buf);
        Ok(())
    }
}
