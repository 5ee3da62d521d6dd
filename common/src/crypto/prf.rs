//! Pseudorandom functions and prf+ (RFC 7296 sections 2.13 and 3.3.2).

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use super::{CryptoError, Result, SecretBytes};

/// The PRF transforms we implement (IANA "Transform Type 2" IDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    pub(crate) fn digest(self) -> MessageDigest {
        match self {
            PrfAlg::HmacSha1 => MessageDigest::sha1(),
            PrfAlg::HmacSha256 => MessageDigest::sha256(),
            PrfAlg::HmacSha384 => MessageDigest::sha384(),
            PrfAlg::HmacSha512 => MessageDigest::sha512(),
        }
    }

    /// prf(key, data).
    pub fn prf(self, key: &[u8], data: &[u8]) -> Result<SecretBytes> {
        self.prf_parts(key, &[data])
    }

    /// prf(key, part1 | part2 | ...), without concatenating the parts first.
    pub fn prf_parts(self, key: &[u8], parts: &[&[u8]]) -> Result<SecretBytes> {
        let pkey = PKey::hmac(key)?;
        let mut out = SecretBytes::zeroed(self.output_len());
        hmac_into(self.digest(), &pkey, parts, out.expose_mut())?;
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
        let pkey = PKey::hmac(key)?;
        let mut out = SecretBytes::zeroed(blocks * block);
        let buf = out.expose_mut();
        for index in 0..blocks {
            let (done, rest) = buf.split_at_mut(index * block);
            let mut signer = Signer::new(self.digest(), &pkey)?;
            if index > 0 {
                // Tn-1: the block just written.
                signer.update(&done[(index - 1) * block..])?;
            }
            for part in seed {
                signer.update(part)?;
            }
            signer.update(&[(index + 1) as u8])?;
            signer.sign(&mut rest[..block])?;
        }
        out.truncate(len);
        Ok(out)
    }
}

/// HMAC over `parts`, written to `out` (which must be the digest length).
pub(crate) fn hmac_into(
    digest: MessageDigest,
    key: &PKey<openssl::pkey::Private>,
    parts: &[&[u8]],
    out: &mut [u8],
) -> Result<()> {
    let mut signer = Signer::new(digest, key)?;
    for part in parts {
        signer.update(part)?;
    }
    let written = signer.sign(out)?;
    debug_assert_eq!(written, out.len());
    Ok(())
}
