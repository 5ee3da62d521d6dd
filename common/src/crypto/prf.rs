//! Pseudorandom functions and prf+ (RFC 7296 sections 2.13 and 3.3.2).

use super::hmac::{HmacDigest, HmacKey};
use super::{CryptoError, Result, SecretBytes};

/// The PRF transforms we implement (IANA "Transform Type 2" IDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PrfAlg {
    /// PRF_HMAC_SHA1 (RFC 2104); allowed for interoperability, not preferred (RFC 8247).
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (RFC 4868).
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (RFC 4868).
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (RFC 4868).
    HmacSha512,
}

impl PrfAlg {
    pub const fn iana_id(self) -> u16 {
        match self {
            PrfAlg::HmacSha1 => 2,
            PrfAlg::HmacSha256 => 5,
            PrfAlg::HmacSha384 => 6,
            PrfAlg::HmacSha512 => 7,
        }
    }

    pub const fn from_iana(id: u16) -> Option<Self> {
        match id {
            2 => Some(PrfAlg::HmacSha1),
            5 => Some(PrfAlg::HmacSha256),
            6 => Some(PrfAlg::HmacSha384),
            7 => Some(PrfAlg::HmacSha512),
            _ => None,
        }
    }

    /// Output length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            PrfAlg::HmacSha1 => 20,
            PrfAlg::HmacSha256 => 32,
            PrfAlg::HmacSha384 => 48,
            PrfAlg::HmacSha512 => 64,
        }
    }

    /// The PRF's preferred key length: the length of SK_d, SK_pi and SK_pr
    /// (RFC 7296 section 2.14). For HMAC it is the output length (RFC 4868 section 2.3).
    pub const fn key_len(self) -> usize {
        self.output_len()
    }

    pub(crate) const fn digest(self) -> HmacDigest {
        match self {
            PrfAlg::HmacSha1 => HmacDigest::Sha1,
            PrfAlg::HmacSha256 => HmacDigest::Sha256,
            PrfAlg::HmacSha384 => HmacDigest::Sha384,
            PrfAlg::HmacSha512 => HmacDigest::Sha512,
        }
    }

    /// prf(key, data).
    pub fn prf(self, key: &[u8], data: &[u8]) -> Result<SecretBytes> {
        self.prf_parts(key, &[data])
    }

    /// prf(key, part1 | part2 | ...), without concatenating the parts first.
    pub fn prf_parts(self, key: &[u8], parts: &[&[u8]]) -> Result<SecretBytes> {
        let mut out = SecretBytes::zeroed(self.output_len());
        HmacKey::new(self.digest(), key)?.mac_into(parts, out.expose_mut())?;
        Ok(out)
    }

    /// prf+ (RFC 7296 section 2.13): T1 | T2 | ... truncated to `len` bytes, where
    /// T1 = prf(K, S | 0x01) and Tn = prf(K, Tn-1 | S | n). The counter is one
    /// octet, so at most 255 blocks can be produced.
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> Result<SecretBytes> {
        self.prf_plus_parts(key, &[seed], len)
    }

    /// prf+ with the seed given in parts (e.g. Ni, Nr, SPIi, SPIr).
    pub fn prf_plus_parts(self, key: &[u8], seed: &[&[u8]], len: usize) -> Result<SecretBytes> {
        let block = self.output_len();
        let blocks = len.div_ceil(block);
        if blocks > 255 {
            return Err(CryptoError::PrfPlusTooLong(len));
        }
        let hmac = HmacKey::new(self.digest(), key)?;
        let mut out = SecretBytes::zeroed(blocks * block);
        let buf = out.expose_mut();
        for index in 0..blocks {
            let counter = [(index + 1) as u8];
            let (done, rest) = buf.split_at_mut(index * block);
            // Tn-1 (the block just written; nothing for T1), S, the counter octet.
            let previous = &done[done.len().saturating_sub(block)..];
            let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
            parts.push(previous);
            parts.extend_from_slice(seed);
            parts.push(&counter);
            hmac.mac_into(&parts, &mut rest[..block])?;
        }
        out.truncate(len);
        Ok(out)
    }
}
