//! Encryption and integrity transforms and the Encrypted payload (SK)
//! (RFC 7296 section 3.14; AEAD: RFC 5282, RFC 7634).
//!
//! The caller (the engine) owns message layout: it asks [`SkTransform::sealed_len`]
//! for the body length, writes the IKE header and the SK payload header with
//! final lengths, then calls [`SkCipher::seal`] with those header bytes as the
//! `aad_prefix` and appends the result. [`SkCipher::open`] takes the same
//! prefix and the SK payload body (everything after its 4-byte generic
//! header). The same calls serve Encrypted Fragment payloads (RFC 7383): the
//! prefix is then the IKE header plus the 8-byte SKF header.
//!
//! SK payload body layout: IV | ciphertext of (payloads | padding | pad length) | ICV.

use openssl::symm::{Cipher, Crypter, Mode};

use super::hmac::HmacKey;
use super::random::RandomSource;
use super::{CryptoError, Result, SecretBytes};
use crate::wire::{EncrId, IntegId};

/// Largest payload data an SK payload can carry: its length field is 16 bits.
const MAX_SK_PAYLOAD_LEN: usize = 65535;
const SK_HEADER_LEN: usize = 4;

/// Encryption transforms (IANA "Transform Type 1" IDs).
///
/// Key sizes are in bits as carried by the Key Length attribute. Some are
/// only used for ESP/AH Child SAs: we know their KEYMAT lengths (section 2.17)
/// but do not use them for the Encrypted payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EncrAlg {
    /// ENCR_NULL (11), ESP only.
    Null,
    /// ENCR_AES_CBC (12), 128/192/256-bit keys (RFC 3602).
    AesCbc { key_bits: u16 },
    /// ENCR_AES_CTR (13), ESP only; KEYMAT carries a 4-byte nonce (RFC 3686 section 5.1).
    AesCtr { key_bits: u16 },
    /// ENCR_AES_CCM_8/12/16 (14/15/16), ESP only here; 3-byte salt (RFC 4309 section 7.1).
    AesCcm { key_bits: u16, icv_len: u8 },
    /// ENCR_AES_GCM_8/12/16 (18/19/20); 4-byte salt (RFC 4106 section 8.1, RFC 5282).
    AesGcm { key_bits: u16, icv_len: u8 },
    /// ENCR_NULL_AUTH_AES_GMAC (21), ESP only; 4-byte salt (RFC 4543 section 3.2).
    NullAuthAesGmac { key_bits: u16 },
    /// ENCR_CAMELLIA_CBC (23), 128/192/256-bit keys (RFC 5529).
    CamelliaCbc { key_bits: u16 },
    /// ENCR_CHACHA20_POLY1305 (28); 256-bit key plus 4-byte salt (RFC 7634).
    ChaCha20Poly1305,
}

impl EncrAlg {
    /// From a transform ID and its Key Length attribute (RFC 7296 section
    /// 3.3.5: required for variable-length ciphers, absent for fixed ones).
    pub fn from_iana(id: u16, key_len_attr: Option<u16>) -> Result<Self> {
        let unsupported = || {
            Err(CryptoError::UnsupportedTransform(format!(
                "ENCR {id} with key length {key_len_attr:?}"
            )))
        };
        let aes_bits = match key_len_attr {
            Some(bits @ (128 | 192 | 256)) => Some(bits),
            _ => None,
        };
        let alg = match (EncrId::from_value(id), aes_bits, key_len_attr) {
            (EncrId::Null, _, None) => EncrAlg::Null,
            (EncrId::AesCbc, Some(key_bits), _) => EncrAlg::AesCbc { key_bits },
            (EncrId::AesCtr, Some(key_bits), _) => EncrAlg::AesCtr { key_bits },
            (EncrId::AesCcm8, Some(key_bits), _) => EncrAlg::AesCcm {
                key_bits,
                icv_len: 8,
            },
            (EncrId::AesCcm12, Some(key_bits), _) => EncrAlg::AesCcm {
                key_bits,
                icv_len: 12,
            },
            (EncrId::AesCcm16, Some(key_bits), _) => EncrAlg::AesCcm {
                key_bits,
                icv_len: 16,
            },
            (EncrId::AesGcm8, Some(key_bits), _) => EncrAlg::AesGcm {
                key_bits,
                icv_len: 8,
            },
            (EncrId::AesGcm12, Some(key_bits), _) => EncrAlg::AesGcm {
                key_bits,
                icv_len: 12,
            },
            (EncrId::AesGcm16, Some(key_bits), _) => EncrAlg::AesGcm {
                key_bits,
                icv_len: 16,
            },
            (EncrId::NullAuthAesGmac, Some(key_bits), _) => EncrAlg::NullAuthAesGmac { key_bits },
            (EncrId::CamelliaCbc, Some(key_bits), _) => EncrAlg::CamelliaCbc { key_bits },
            (EncrId::Chacha20Poly1305, _, None) => EncrAlg::ChaCha20Poly1305,
            _ => return unsupported(),
        };
        Ok(alg)
    }

    pub const fn iana_id(self) -> u16 {
        self.encr_id().value()
    }

    /// The transform's entry in the IANA registry.
    pub const fn encr_id(self) -> EncrId {
        match self {
            EncrAlg::Null => EncrId::Null,
            EncrAlg::AesCbc { .. } => EncrId::AesCbc,
            EncrAlg::AesCtr { .. } => EncrId::AesCtr,
            EncrAlg::AesCcm { icv_len: 8, .. } => EncrId::AesCcm8,
            EncrAlg::AesCcm { icv_len: 12, .. } => EncrId::AesCcm12,
            EncrAlg::AesCcm { .. } => EncrId::AesCcm16,
            EncrAlg::AesGcm { icv_len: 8, .. } => EncrId::AesGcm8,
            EncrAlg::AesGcm { icv_len: 12, .. } => EncrId::AesGcm12,
            EncrAlg::AesGcm { .. } => EncrId::AesGcm16,
            EncrAlg::NullAuthAesGmac { .. } => EncrId::NullAuthAesGmac,
            EncrAlg::CamelliaCbc { .. } => EncrId::CamelliaCbc,
            EncrAlg::ChaCha20Poly1305 => EncrId::Chacha20Poly1305,
        }
    }

    /// The Key Length attribute to send, if the transform takes one.
    pub const fn key_len_attr(self) -> Option<u16> {
        match self {
            EncrAlg::Null | EncrAlg::ChaCha20Poly1305 => None,
            EncrAlg::AesCbc { key_bits }
            | EncrAlg::AesCtr { key_bits }
            | EncrAlg::AesCcm { key_bits, .. }
            | EncrAlg::AesGcm { key_bits, .. }
            | EncrAlg::NullAuthAesGmac { key_bits }
            | EncrAlg::CamelliaCbc { key_bits } => Some(key_bits),
        }
    }

    /// Cipher key length in bytes, without salt or nonce.
    pub const fn key_len(self) -> usize {
        match self.key_len_attr() {
            Some(bits) => bits as usize / 8,
            None => match self {
                EncrAlg::ChaCha20Poly1305 => 32,
                _ => 0,
            },
        }
    }

    /// Bytes of KEYMAT taken after the key as salt or nonce.
    pub const fn salt_len(self) -> usize {
        match self {
            EncrAlg::AesGcm { .. }
            | EncrAlg::AesCtr { .. }
            | EncrAlg::NullAuthAesGmac { .. }
            | EncrAlg::ChaCha20Poly1305 => 4,
            EncrAlg::AesCcm { .. } => 3,
            _ => 0,
        }
    }

    /// Bytes of KEYMAT for one direction: key then salt (SK_ei/SK_er, or a
    /// Child SA's encryption key).
    pub const fn keymat_len(self) -> usize {
        self.key_len() + self.salt_len()
    }

    /// Combined-mode (AEAD) transforms need no separate integrity transform.
    pub const fn is_aead(self) -> bool {
        matches!(
            self,
            EncrAlg::AesCcm { .. }
                | EncrAlg::AesGcm { .. }
                | EncrAlg::NullAuthAesGmac { .. }
                | EncrAlg::ChaCha20Poly1305
        )
    }
}

/// Integrity transforms (IANA "Transform Type 3" IDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum IntegAlg {
    /// AUTH_HMAC_SHA1_96 (2), RFC 2404.
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (12), RFC 4868.
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (13), RFC 4868.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (14), RFC 4868.
    HmacSha512_256,
}

impl IntegAlg {
    pub const fn iana_id(self) -> u16 {
        self.integ_id().value()
    }

    /// The transform's entry in the IANA registry.
    pub const fn integ_id(self) -> IntegId {
        match self {
            IntegAlg::HmacSha1_96 => IntegId::HmacSha1_96,
            IntegAlg::HmacSha256_128 => IntegId::HmacSha2_256_128,
            IntegAlg::HmacSha384_192 => IntegId::HmacSha2_384_192,
            IntegAlg::HmacSha512_256 => IntegId::HmacSha2_512_256,
        }
    }

    pub const fn from_iana(id: u16) -> Option<Self> {
        match IntegId::from_value(id) {
            IntegId::HmacSha1_96 => Some(IntegAlg::HmacSha1_96),
            IntegId::HmacSha2_256_128 => Some(IntegAlg::HmacSha256_128),
            IntegId::HmacSha2_384_192 => Some(IntegAlg::HmacSha384_192),
            IntegId::HmacSha2_512_256 => Some(IntegAlg::HmacSha512_256),
            _ => None,
        }
    }

    /// Key length: the hash output length (RFC 2404 section 3, RFC 4868 section 2.1.1).
    pub const fn key_len(self) -> usize {
        self.prf().output_len()
    }

    /// ICV length: the truncated HMAC output.
    pub const fn icv_len(self) -> usize {
        self.key_len() / 2
            + if matches!(self, IntegAlg::HmacSha1_96) {
                2
            } else {
                0
            }
    }

    const fn prf(self) -> super::PrfAlg {
        match self {
            IntegAlg::HmacSha1_96 => super::PrfAlg::HmacSha1,
            IntegAlg::HmacSha256_128 => super::PrfAlg::HmacSha256,
            IntegAlg::HmacSha384_192 => super::PrfAlg::HmacSha384,
            IntegAlg::HmacSha512_256 => super::PrfAlg::HmacSha512,
        }
    }

    /// The ICV (truncated HMAC) of `data` under `key`.
    pub fn compute_icv(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
        self.icv_parts(&HmacKey::new(self.prf().digest(), key)?, &[data])
    }

    fn icv_parts(self, key: &HmacKey, parts: &[&[u8]]) -> Result<Vec<u8>> {
        let mut full = SecretBytes::zeroed(self.key_len());
        key.mac_into(parts, full.expose_mut())?;
        Ok(full.expose()[..self.icv_len()].to_vec())
    }
}

/// An Encrypted payload transform: encryption plus integrity (or an AEAD alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SkTransform {
    encr: EncrAlg,
    integ: Option<IntegAlg>,
}

impl SkTransform {
    /// Checks that the pair makes an Encrypted payload transform: AEAD
    /// without an integrity transform (RFC 5282 section 8, RFC 7634 section 4),
    /// a CBC cipher with one.
    pub fn new(encr: EncrAlg, integ: Option<IntegAlg>) -> Result<Self> {
        let ok = match encr {
            EncrAlg::AesCbc { .. } | EncrAlg::CamelliaCbc { .. } => integ.is_some(),
            EncrAlg::AesGcm { .. } | EncrAlg::ChaCha20Poly1305 => integ.is_none(),
            _ => false,
        };
        if !ok {
            return Err(CryptoError::UnsupportedTransform(format!(
                "{encr:?} with {integ:?} for the Encrypted payload"
            )));
        }
        Ok(Self { encr, integ })
    }

    pub fn encr(&self) -> EncrAlg {
        self.encr
    }

    pub fn integ(&self) -> Option<IntegAlg> {
        self.integ
    }

    /// Length of SK_ei / SK_er (key plus salt).
    pub fn encr_keymat_len(&self) -> usize {
        self.encr.keymat_len()
    }

    /// Length of SK_ai / SK_ar (zero for AEAD).
    pub fn integ_key_len(&self) -> usize {
        self.integ.map_or(0, IntegAlg::key_len)
    }

    /// IV length on the wire: the block size for CBC (RFC 7296 section
    /// 3.14), 8 bytes for GCM (RFC 5282 section 3.1) and ChaCha20-Poly1305
    /// (RFC 7634 section 3).
    pub fn iv_len(&self) -> usize {
        if self.encr.is_aead() {
            8
        } else {
            16
        }
    }

    /// Alignment of payloads | padding | pad length: the cipher block for
    /// CBC; none for AEAD (RFC 5282 section 3).
    fn alignment(&self) -> usize {
        if self.encr.is_aead() {
            1
        } else {
            16
        }
    }

    /// ICV length: truncated HMAC, or the AEAD tag.
    pub fn icv_len(&self) -> usize {
        match (self.encr, self.integ) {
            (EncrAlg::AesGcm { icv_len, .. }, _) => icv_len as usize,
            (EncrAlg::ChaCha20Poly1305, _) => 16,
            (_, Some(integ)) => integ.icv_len(),
            _ => 0,
        }
    }

    /// Length of the SK payload body (IV, encrypted payloads with minimal
    /// padding and the pad length octet, ICV) for `plaintext_len` bytes of
    /// inner payloads, exactly what [`SkCipher::seal`] will return. The engine
    /// needs it before sealing to write the header lengths.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        let align = self.alignment();
        let padded = (plaintext_len + 1).div_ceil(align) * align;
        self.iv_len() + padded + self.icv_len()
    }

    /// The most inner-payload bytes that fit in an SK body of `body_len`
    /// bytes (for splitting into RFC 7383 fragments); `None` if nothing fits.
    pub fn max_plaintext_len(&self, body_len: usize) -> Option<usize> {
        let room = body_len.checked_sub(self.iv_len() + self.icv_len())?;
        let aligned = room / self.alignment() * self.alignment();
        aligned.checked_sub(1)
    }

    fn cipher(&self) -> Result<Cipher> {
        Ok(match self.encr {
            EncrAlg::AesCbc { key_bits: 128 } => Cipher::aes_128_cbc(),
            EncrAlg::AesCbc { key_bits: 192 } => Cipher::aes_192_cbc(),
            EncrAlg::AesCbc { key_bits: 256 } => Cipher::aes_256_cbc(),
            EncrAlg::CamelliaCbc { key_bits: 128 } => Cipher::camellia_128_cbc(),
            EncrAlg::CamelliaCbc { key_bits: 192 } => Cipher::camellia_192_cbc(),
            EncrAlg::CamelliaCbc { key_bits: 256 } => Cipher::camellia_256_cbc(),
            EncrAlg::AesGcm { key_bits: 128, .. } => Cipher::aes_128_gcm(),
            EncrAlg::AesGcm { key_bits: 192, .. } => Cipher::aes_192_gcm(),
            EncrAlg::AesGcm { key_bits: 256, .. } => Cipher::aes_256_gcm(),
            EncrAlg::ChaCha20Poly1305 => Cipher::chacha20_poly1305(),
            other => {
                return Err(CryptoError::UnsupportedTransform(format!(
                    "{other:?} for the Encrypted payload"
                )))
            }
        })
    }
}

/// One direction of the Encrypted payload: keys for sealing what we send
/// (SK_ei/SK_ai as initiator) or for opening what we receive.
pub struct SkCipher {
    transform: SkTransform,
    cipher: Cipher,
    /// Cipher key followed by the salt for AEAD transforms.
    encr_keymat: SecretBytes,
    integ_key: Option<HmacKey>,
    /// AEAD IVs. RFC 5282 section 3.1 and RFC 7634 section 2 require a
    /// unique IV per key: a counter guarantees it within this cipher, and
    /// its random start (drawn from the injected source at the first seal)
    /// keeps a second cipher made from the same keys by mistake from
    /// replaying the same sequence.
    aead_iv: Option<AeadIvCounter>,
}

#[derive(Clone, Copy)]
struct AeadIvCounter {
    start: u64,
    used: u64,
}

impl std::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkCipher")
            .field("transform", &self.transform)
            .finish_non_exhaustive()
    }
}

impl SkCipher {
    /// `encr_keymat` is SK_e (key | salt); `integ_key` is SK_a (empty for AEAD).
    pub fn new(transform: SkTransform, encr_keymat: &[u8], integ_key: &[u8]) -> Result<Self> {
        if encr_keymat.len() != transform.encr_keymat_len() {
            return Err(CryptoError::BadKeyLength {
                what: "SK_e",
                expected: transform.encr_keymat_len(),
                got: encr_keymat.len(),
            });
        }
        if integ_key.len() != transform.integ_key_len() {
            return Err(CryptoError::BadKeyLength {
                what: "SK_a",
                expected: transform.integ_key_len(),
                got: integ_key.len(),
            });
        }
        let integ_key = match transform.integ {
            Some(integ) => Some(HmacKey::new(integ.prf().digest(), integ_key)?),
            None => None,
        };
        Ok(Self {
            transform,
            cipher: transform.cipher()?,
            encr_keymat: SecretBytes::from_slice(encr_keymat),
            integ_key,
            aead_iv: None,
        })
    }

    pub fn transform(&self) -> SkTransform {
        self.transform
    }

    /// Encrypts `payloads` (the inner payloads, already encoded) and returns
    /// the SK payload body: IV | ciphertext | ICV, of length
    /// `transform().sealed_len(payloads.len())`. `aad_prefix` is the message
    /// from the IKE header through the SK (or SKF) payload header, already
    /// carrying the final lengths. `rng` supplies CBC IVs and the starting
    /// point of the AEAD IV counter.
    pub fn seal(
        &mut self,
        aad_prefix: &[u8],
        payloads: &[u8],
        rng: &mut dyn RandomSource,
    ) -> Result<Vec<u8>> {
        let transform = self.transform;
        let total = transform.sealed_len(payloads.len());
        if total > MAX_SK_PAYLOAD_LEN - SK_HEADER_LEN {
            return Err(CryptoError::TooLarge("Encrypted payload"));
        }
        let iv_len = transform.iv_len();
        let icv_len = transform.icv_len();
        let padded_len = total - iv_len - icv_len;
        // payloads | padding (zeros) | pad length
        let mut plaintext = SecretBytes::zeroed(padded_len);
        let pad_len = padded_len - payloads.len() - 1;
        plaintext.expose_mut()[..payloads.len()].copy_from_slice(payloads);
        plaintext.expose_mut()[padded_len - 1] = pad_len as u8;

        let mut out = Vec::with_capacity(total);
        if transform.encr.is_aead() {
            let mut counter = match self.aead_iv {
                Some(counter) => counter,
                None => {
                    let mut start = [0u8; 8];
                    rng.fill(&mut start)?;
                    AeadIvCounter {
                        start: u64::from_be_bytes(start),
                        used: 0,
                    }
                }
            };
            if counter.used == u64::MAX {
                return Err(CryptoError::IvExhausted);
            }
            let iv = counter.start.wrapping_add(counter.used).to_be_bytes();
            counter.used += 1;
            self.aead_iv = Some(counter);
            let mut tag = vec![0; icv_len];
            let ciphertext = aead_encrypt(
                self.cipher,
                self.encr_keymat.expose(),
                transform.encr.key_len(),
                &iv,
                aad_prefix,
                plaintext.expose(),
                &mut tag,
            )?;
            out.extend_from_slice(&iv);
            out.extend_from_slice(&ciphertext);
            out.extend_from_slice(&tag);
        } else {
            let mut iv = vec![0; iv_len];
            rng.fill(&mut iv)?;
            let ciphertext = cbc_crypt(
                self.cipher,
                Mode::Encrypt,
                self.encr_keymat.expose(),
                &iv,
                plaintext.expose(),
            )?;
            out.extend_from_slice(&iv);
            out.extend_from_slice(&ciphertext);
            let (integ, key) = self.integ()?;
            let icv = integ.icv_parts(key, &[aad_prefix, &out])?;
            out.extend_from_slice(&icv);
        }
        debug_assert_eq!(out.len(), total);
        Ok(out)
    }

    /// Verifies and decrypts an SK payload body (IV | ciphertext | ICV) and
    /// returns the inner payloads with padding removed. Every failure,
    /// including a truncated body, is [`CryptoError::IntegrityCheckFailed`].
    pub fn open(&self, aad_prefix: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        self.open_inner(aad_prefix, body)
            .map_err(|_| CryptoError::IntegrityCheckFailed)
    }

    fn open_inner(&self, aad_prefix: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        let transform = self.transform;
        let iv_len = transform.iv_len();
        let icv_len = transform.icv_len();
        let align = transform.alignment();
        let fail = || CryptoError::IntegrityCheckFailed;
        let (iv, rest) = body.split_at_checked(iv_len).ok_or_else(fail)?;
        let ciphertext_len = rest.len().checked_sub(icv_len).ok_or_else(fail)?;
        let (ciphertext, icv) = rest.split_at(ciphertext_len);
        if ciphertext.is_empty() || ciphertext.len() % align != 0 {
            return Err(fail());
        }
        let plaintext = if transform.encr.is_aead() {
            aead_decrypt(
                self.cipher,
                self.encr_keymat.expose(),
                transform.encr.key_len(),
                iv,
                aad_prefix,
                ciphertext,
                icv,
            )?
        } else {
            // Encrypt-then-MAC: check the ICV before touching the ciphertext,
            // so padding is only ever looked at in authenticated data.
            let (integ, key) = self.integ()?;
            let expected = integ.icv_parts(key, &[aad_prefix, iv, ciphertext])?;
            if !super::secret::ct_eq(&expected, icv) {
                return Err(fail());
            }
            cbc_crypt(
                self.cipher,
                Mode::Decrypt,
                self.encr_keymat.expose(),
                iv,
                ciphertext,
            )?
        };
        let mut plaintext = SecretBytes::new(plaintext);
        // RFC 7296 section 3.14 / RFC 5282 section 3: accept any pad length that fits.
        let pad_len = *plaintext.expose().last().ok_or_else(fail)? as usize;
        let payload_len = plaintext.len().checked_sub(pad_len + 1).ok_or_else(fail)?;
        plaintext.truncate(payload_len);
        Ok(plaintext.expose().to_vec())
    }

    fn integ(&self) -> Result<(IntegAlg, &HmacKey)> {
        match (self.transform.integ, &self.integ_key) {
            (Some(integ), Some(key)) => Ok((integ, key)),
            _ => Err(CryptoError::UnsupportedTransform(
                "missing integrity key".into(),
            )),
        }
    }
}

/// CBC without OpenSSL padding (the IKE padding is ours); `data` is block-aligned.
fn cbc_crypt(cipher: Cipher, mode: Mode, key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut crypter = Crypter::new(cipher, mode, key, Some(iv))?;
    crypter.pad(false);
    let mut out = vec![0; data.len() + cipher.block_size()];
    let mut written = crypter.update(data, &mut out)?;
    written += crypter.finalize(&mut out[written..])?;
    out.truncate(written);
    Ok(out)
}

/// The AEAD nonce: salt (the last KEYMAT bytes) | explicit IV (RFC 4106
/// section 4, RFC 7634 section 2).
fn aead_nonce(keymat: &[u8], key_len: usize, iv: &[u8]) -> Result<([u8; 12], usize)> {
    let salt = keymat
        .get(key_len..)
        .ok_or(CryptoError::IntegrityCheckFailed)?;
    let mut nonce = [0u8; 12];
    if salt.len() + iv.len() != nonce.len() {
        return Err(CryptoError::IntegrityCheckFailed);
    }
    nonce[..salt.len()].copy_from_slice(salt);
    nonce[salt.len()..].copy_from_slice(iv);
    Ok((nonce, key_len))
}

fn aead_encrypt(
    cipher: Cipher,
    keymat: &[u8],
    key_len: usize,
    iv: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    tag: &mut [u8],
) -> Result<Vec<u8>> {
    let (nonce, key_len) = aead_nonce(keymat, key_len, iv)?;
    let key = &keymat[..key_len];
    Ok(aead_seal_raw(cipher, key, &nonce, aad, plaintext, tag)?)
}

fn aead_decrypt(
    cipher: Cipher,
    keymat: &[u8],
    key_len: usize,
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<Vec<u8>> {
    let (nonce, key_len) = aead_nonce(keymat, key_len, iv)?;
    let key = &keymat[..key_len];
    Ok(aead_open_raw(cipher, key, &nonce, aad, ciphertext, tag)?)
}

fn aead_seal_raw(
    cipher: Cipher,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    tag: &mut [u8],
) -> std::result::Result<Vec<u8>, openssl::error::ErrorStack> {
    openssl::symm::encrypt_aead(cipher, key, Some(nonce), aad, plaintext, tag)
}

fn aead_open_raw(
    cipher: Cipher,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> std::result::Result<Vec<u8>, openssl::error::ErrorStack> {
    openssl::symm::decrypt_aead(cipher, key, Some(nonce), aad, ciphertext, tag)
}

#[cfg(test)]
mod tests {
    //! Known answers for the raw primitives under the Encrypted payload; the
    //! public API is exercised by common/tests/crypto_sk.rs.
    use super::*;

    fn kat() -> serde_json::Value {
        serde_json::from_str(include_str!("../../testdata/crypto/rfc-kat.json")).unwrap()
    }

    fn hex_field(v: &serde_json::Value, name: &str) -> Vec<u8> {
        hex::decode(v[name].as_str().unwrap_or_else(|| panic!("missing {name}"))).unwrap()
    }

    /// RFC 3602 section 4, cases 1-4 (AES-128-CBC), both directions.
    #[test]
    fn rfc3602_aes_cbc() {
        let kat = kat();
        let cases = kat["rfc3602_aes_cbc"].as_array().unwrap();
        assert_eq!(cases.len(), 4);
        for case in cases {
            let (key, iv) = (hex_field(case, "key"), hex_field(case, "iv"));
            let (plain, cipher) = (hex_field(case, "plaintext"), hex_field(case, "ciphertext"));
            let encrypted =
                cbc_crypt(Cipher::aes_128_cbc(), Mode::Encrypt, &key, &iv, &plain).unwrap();
            assert_eq!(encrypted, cipher, "case {}", case["case"]);
            let decrypted =
                cbc_crypt(Cipher::aes_128_cbc(), Mode::Decrypt, &key, &iv, &cipher).unwrap();
            assert_eq!(decrypted, plain, "case {}", case["case"]);
        }
    }

    /// RFC 3713 appendix A (128-bit key): one block, so CBC with a zero IV
    /// gives the ECB result. (RFC 3713 is not in the shared RFC set; the
    /// vector agrees with `openssl enc -camellia-128-ecb`.)
    #[test]
    fn rfc3713_camellia_128() {
        let key = hex::decode("0123456789abcdeffedcba9876543210").unwrap();
        let expected = hex::decode("67673138549669730857065648eabe43").unwrap();
        let got = cbc_crypt(
            Cipher::camellia_128_cbc(),
            Mode::Encrypt,
            &key,
            &[0; 16],
            &key,
        )
        .unwrap();
        assert_eq!(got, expected);
        let back = cbc_crypt(
            Cipher::camellia_128_cbc(),
            Mode::Decrypt,
            &key,
            &[0; 16],
            &expected,
        )
        .unwrap();
        assert_eq!(back, key);
    }

    /// RFC 8439 section 2.8.2, through the same salt | IV nonce layout the
    /// Encrypted payload uses (RFC 7634 section 2: the "32-bit fixed-common
    /// part" is our salt).
    #[test]
    fn rfc8439_chacha20_poly1305() {
        let kat = kat();
        let v = &kat["rfc8439_aead"];
        let mut keymat = hex_field(v, "key");
        keymat.extend(hex_field(v, "fixed"));
        let (iv, aad) = (hex_field(v, "iv"), hex_field(v, "aad"));
        let (plain, cipher, tag) = (
            hex_field(v, "plaintext"),
            hex_field(v, "ciphertext"),
            hex_field(v, "tag"),
        );
        let mut got_tag = [0u8; 16];
        let got = aead_encrypt(
            Cipher::chacha20_poly1305(),
            &keymat,
            32,
            &iv,
            &aad,
            &plain,
            &mut got_tag,
        )
        .unwrap();
        assert_eq!(got, cipher);
        assert_eq!(got_tag.to_vec(), tag);
        let opened = aead_decrypt(
            Cipher::chacha20_poly1305(),
            &keymat,
            32,
            &iv,
            &aad,
            &cipher,
            &tag,
        )
        .unwrap();
        assert_eq!(opened, plain);
        let mut bad_tag = tag.clone();
        bad_tag[15] ^= 1;
        assert!(aead_decrypt(
            Cipher::chacha20_poly1305(),
            &keymat,
            32,
            &iv,
            &aad,
            &cipher,
            &bad_tag
        )
        .is_err());
    }
}
