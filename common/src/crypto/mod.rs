//! IKEv2 cryptography over OpenSSL: key exchange, PRFs and key derivation,
//! the Encrypted payload, and AUTH octets.
//!
//! Every primitive comes from the `openssl` crate; this module only arranges
//! them as RFC 7296 and its companions require. Algorithms are named by our
//! own small enums carrying their IANA transform IDs (RFC 7296 section 3.3.2),
//! so this module does not depend on the wire codec.
//!
//! - [`kex`]: Diffie-Hellman / key exchange methods (MODP, ECP, Curve25519/448).
//! - [`prf`]: PRFs and prf+ (RFC 7296 section 2.13).
//! - [`keys`]: SKEYSEED, SK_*, rekeyed SKEYSEED, Child SA KEYMAT (sections 2.14, 2.17, 2.18).
//! - [`sk`]: encryption and integrity transforms, the Encrypted payload (section 3.14, RFC 5282, RFC 7634).
//! - [`auth`]: AUTH signed octets and shared-key AUTH (section 2.15).
//! - [`secret`]: the zeroizing byte buffer every key lives in.
//! - [`random`]: the injectable randomness source for IVs.
//! - [`signature_hash`]: the RFC 7427 hash algorithm identifiers we announce.
//!
//! The initiator's side of IKE_SA_INIT and IKE_AUTH, as the engine uses it
//! (the responder calls [`kex::respond`] instead of generate/complete):
//!
//! ```
//! use iked_common::crypto::{kex, psk_auth, signed_octets, ChildSaKeys, EncrAlg, IkeSaKeys,
//!     KeMethod, KeyExchange, OpensslRandom, PrfAlg, SkTransform};
//!
//! let (prf, method) = (PrfAlg::HmacSha256, KeMethod::Curve25519);
//! let transform = SkTransform::new(EncrAlg::AesGcm { key_bits: 128, icv_len: 16 }, None)?;
//! let ours = KeyExchange::generate(method)?;                // KEi: ours.public_value()
//! let (ni, spi_i) = ([1u8; 32], [2u8; 8]);
//! # let (their_public, _) = kex::respond(method, ours.public_value())?;
//! # let (nr, spi_r) = ([3u8; 32], [4u8; 8]);
//! // IKE_SA_INIT response: KEr = their_public, Nr, SPIr.
//! let shared = ours.complete(&their_public)?;
//! let keys = IkeSaKeys::from_ike_sa_init(prf, shared.expose(), &ni, &nr, &spi_i, &spi_r, transform)?;
//! let (mut outbound, _inbound) = keys.sk_ciphers(transform, true)?;
//!
//! // AUTH over our IKE_SA_INIT request (ca-proc computes the PSK part).
//! # let (ike_sa_init_request, id_body) = (vec![0u8; 240], b"\x02\0\0\0a.ike.test".to_vec());
//! let octets = signed_octets(prf, &ike_sa_init_request, &nr, keys.sk_pi.expose(), &id_body)?;
//! let auth = psk_auth(prf, b"the pre-shared key", &octets)?;
//!
//! // IKE_AUTH: the header carries final lengths before sealing.
//! # let inner_payloads = [&id_body[..], &auth[..]].concat();
//! let body_len = transform.sealed_len(inner_payloads.len());
//! # let header_and_sk_header = vec![0u8; 32];
//! // ... write the IKE header and SK header with body_len, then:
//! let sk_body = outbound.seal(&header_and_sk_header, &inner_payloads, &mut OpensslRandom)?;
//! assert_eq!(sk_body.len(), body_len);
//!
//! // First Child SA: no PFS.
//! let child = ChildSaKeys::derive(prf, keys.sk_d.expose(), &[], &ni, &nr,
//!     EncrAlg::AesGcm { key_bits: 128, icv_len: 16 }, None)?;
//! assert_eq!(child.encr_i.len(), 20); // key and 4-byte salt
//! # Ok::<(), iked_common::crypto::CryptoError>(())
//! ```

pub mod auth;
mod hmac;
pub mod kex;
pub mod keys;
pub mod prf;
pub mod random;
pub mod secret;
pub mod signature_hash;
pub mod sk;
pub mod x509_store;

pub use auth::{psk_auth, signed_octets, verify_psk_auth};
pub use kex::{KeMethod, KeyExchange};
pub use keys::{ChildSaKeys, IkeSaKeys};
pub use prf::PrfAlg;
pub use random::{OpensslRandom, RandomSource};
pub use secret::SecretBytes;
pub use sk::{EncrAlg, IntegAlg, SkCipher, SkTransform};

/// Errors of the cryptographic layer. None of them carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The peer's key exchange data is not acceptable (RFC 7296 section 3.4,
    /// RFC 6989, RFC 8031 section 2): wrong length, out of range, not on the
    /// curve, or giving an all-zero shared secret.
    #[error("invalid {method:?} public value from peer: {reason}")]
    InvalidPeerPublicValue {
        method: KeMethod,
        reason: &'static str,
    },
    /// A transform ID or key length we do not implement, or a combination
    /// that makes no sense (e.g. AEAD with a separate integrity transform).
    #[error("unsupported transform: {0}")]
    UnsupportedTransform(String),
    /// A key of the wrong length was handed to a transform.
    #[error("{what}: key is {got} bytes, expected {expected}")]
    BadKeyLength {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A private key given for a known-answer test was unusable.
    #[error("invalid private key for {0:?}")]
    InvalidPrivateKey(KeMethod),
    /// prf+ was asked for more than 255 blocks (RFC 7296 section 2.13).
    #[error("prf+ output of {0} bytes exceeds 255 iterations")]
    PrfPlusTooLong(usize),
    /// The Encrypted payload failed to verify or decrypt. Deliberately one
    /// opaque error for every cause (ICV, tag, length, padding).
    #[error("integrity check failed")]
    IntegrityCheckFailed,
    /// The per-key AEAD IV counter ran out; the IKE SA must be rekeyed.
    #[error("AEAD IV space exhausted for this key")]
    IvExhausted,
    /// Input too large for the operation (e.g. plaintext longer than an IKE message can be).
    #[error("input too large: {0}")]
    TooLarge(&'static str),
    /// The random source failed.
    #[error("random source failed")]
    Random,
    /// A misuse of an internal interface (a bug in this module).
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// OpenSSL reported an error (not for peer-controlled failures, which map to the variants above).
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

pub type Result<T> = std::result::Result<T, CryptoError>;
