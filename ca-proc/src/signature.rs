//! The IKEv2 AUTH signature methods, as pure functions over OpenSSL keys:
//! RSA Digital Signature (1, RFC 7296 §3.8: RSASSA-PKCS1-v1_5 with SHA-1),
//! ECDSA with SHA-256/384/512 on P-256/384/521 (9, 10, 11, RFC 4754: the
//! signature is r||s, each as wide as the curve's field, not DER) and
//! Digital Signature (14, RFC 7427 §3: a length octet, a DER
//! AlgorithmIdentifier, the signature) with RSASSA-PSS, RSASSA-PKCS1-v1_5
//! with SHA-2, ECDSA (DER Ecdsa-Sig-Value) and Ed25519 (RFC 8420).
//!
//! [`verify`] treats a key that does not fit the claimed method as a
//! failure with its reason, never as a match (CVE-2020-16088: OpenIKED
//! accepted an AUTH whose method did not fit the peer's key).
//!
//! The octets to sign are the caller's (ca's auth service checks their
//! shape); nothing here holds state.

pub mod algorithm_id;
#[cfg(test)]
mod tests;

use std::fmt;

use iked_common::config::SignatureAuth;
use iked_common::crypto::signature_hash;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, Id, PKeyRef, Private, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};

pub use algorithm_id::SignatureAlgorithm;
pub use iked_common::crypto::signature_hash::OUR_HASH_ALGORITHMS;

/// RSA Digital Signature (RFC 7296 §3.8).
pub const AUTH_RSA_SIG: u8 = 1;
/// ECDSA with SHA-256 on the P-256 curve (RFC 4754 §3).
pub const AUTH_ECDSA_SHA256_P256: u8 = 9;
/// ECDSA with SHA-384 on the P-384 curve (RFC 4754 §3).
pub const AUTH_ECDSA_SHA384_P384: u8 = 10;
/// ECDSA with SHA-512 on the P-521 curve (RFC 4754 §3).
pub const AUTH_ECDSA_SHA512_P521: u8 = 11;
/// Digital Signature (RFC 7427 §3).
pub const AUTH_DIGITAL_SIGNATURE: u8 = 14;

/// The longest signature we look at: RSA with a 16384-bit modulus.
pub const MAX_SIGNATURE: usize = 2048;
/// The longest AUTH data of a signature method: a method-14 length octet,
/// the longest AlgorithmIdentifier it can announce, and a signature.
pub const MAX_AUTH_DATA: usize = 1 + 255 + MAX_SIGNATURE;

/// An AUTH payload's method and data, made by [`sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub auth_method: u8,
    pub auth_data: Vec<u8>,
}

/// Why a signature was not made or not accepted. Each names the problem,
/// for the log and for ikev2's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// The key does not fit the AUTH method (or the policy's `ikeauth`).
    KeyMismatch(String),
    /// The policy's `ikeauth` does not accept this AUTH method.
    NotAccepted(String),
    /// An AUTH method, signature algorithm or key type we do not implement.
    Unsupported(String),
    /// We implement it but refuse it: SHA-1 inside method 14, PSS
    /// parameters other than ours, no hash algorithm shared with the peer.
    Refused(String),
    /// The AUTH data is not well formed.
    Malformed(String),
    /// Well formed, the key fits, but the signature does not verify over
    /// the octets.
    BadSignature(String),
    /// OpenSSL failed while signing with our own key.
    Openssl(String),
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::KeyMismatch(why)
            | SignatureError::NotAccepted(why)
            | SignatureError::Refused(why)
            | SignatureError::BadSignature(why) => f.write_str(why),
            SignatureError::Unsupported(what) => write!(f, "unsupported: {what}"),
            SignatureError::Malformed(why) => write!(f, "malformed AUTH data: {why}"),
            SignatureError::Openssl(why) => write!(f, "signing failed in OpenSSL: {why}"),
        }
    }
}

impl std::error::Error for SignatureError {}

/// The hash functions the signature methods use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn digest(self) -> MessageDigest {
        match self {
            Hash::Sha1 => MessageDigest::sha1(),
            Hash::Sha256 => MessageDigest::sha256(),
            Hash::Sha384 => MessageDigest::sha384(),
            Hash::Sha512 => MessageDigest::sha512(),
        }
    }

    /// Output length in octets.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// The IANA hash algorithm identifier (RFC 7427 §4).
    pub fn iana(self) -> u16 {
        match self {
            Hash::Sha1 => signature_hash::SHA1,
            Hash::Sha256 => signature_hash::SHA2_256,
            Hash::Sha384 => signature_hash::SHA2_384,
            Hash::Sha512 => signature_hash::SHA2_512,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "SHA1",
            Hash::Sha256 => "SHA256",
            Hash::Sha384 => "SHA384",
            Hash::Sha512 => "SHA512",
        }
    }
}

/// The curves of AUTH methods 9, 10 and 11.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    /// The width of r and of s in the method 9/10/11 signature (RFC 4754 §7).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The classic AUTH method of the curve, and its hash (RFC 4754 §3).
    pub fn method(self) -> (u8, Hash) {
        match self {
            Curve::P256 => (AUTH_ECDSA_SHA256_P256, Hash::Sha256),
            Curve::P384 => (AUTH_ECDSA_SHA384_P384, Hash::Sha384),
            Curve::P521 => (AUTH_ECDSA_SHA512_P521, Hash::Sha512),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }
}

/// What a key is, as far as the AUTH methods care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// rsaEncryption: PKCS#1 v1.5 and PSS.
    Rsa {
        bits: u32,
    },
    /// id-RSASSA-PSS keys (RFC 4055 §1.2): PSS only.
    RsaPss {
        bits: u32,
    },
    Ecdsa(Curve),
    Ed25519,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Rsa { bits } => write!(f, "RSA ({bits} bits)"),
            KeyType::RsaPss { bits } => write!(f, "RSA-PSS ({bits} bits)"),
            KeyType::Ecdsa(curve) => write!(f, "ECDSA {}", curve.name()),
            KeyType::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// The type of `key`, or why no AUTH method can use it.
pub fn key_type<T: HasPublic>(key: &PKeyRef<T>) -> Result<KeyType, SignatureError> {
    match key.id() {
        Id::RSA => Ok(KeyType::Rsa { bits: key.bits() }),
        Id::RSA_PSS => Ok(KeyType::RsaPss { bits: key.bits() }),
        Id::ED25519 => Ok(KeyType::Ed25519),
        Id::ED448 => Err(SignatureError::Unsupported(
            "Ed448 keys (we implement Ed25519 only)".into(),
        )),
        Id::EC => {
            let ec = key
                .ec_key()
                .map_err(|e| SignatureError::Unsupported(format!("unreadable EC key: {e}")))?;
            match ec.group().curve_name() {
                Some(Nid::X9_62_PRIME256V1) => Ok(KeyType::Ecdsa(Curve::P256)),
                Some(Nid::SECP384R1) => Ok(KeyType::Ecdsa(Curve::P384)),
                Some(Nid::SECP521R1) => Ok(KeyType::Ecdsa(Curve::P521)),
                Some(nid) => Err(SignatureError::Unsupported(format!(
                    "EC key on curve {} (only P-256, P-384, P-521)",
                    nid.short_name().unwrap_or("unnamed")
                ))),
                None => Err(SignatureError::Unsupported(
                    "EC key on an unnamed curve (only P-256, P-384, P-521)".into(),
                )),
            }
        }
        other => {
            let name = match other {
                Id::DSA => "DSA".to_string(),
                Id::DH | Id::DHX => "DH".to_string(),
                Id::X25519 => "X25519".to_string(),
                Id::X448 => "X448".to_string(),
                _ => format!("number {}", other.as_raw()),
            };
            Err(SignatureError::Unsupported(format!(
                "key type {name} (only RSA, ECDSA and Ed25519)"
            )))
        }
    }
}

/// The name of an AUTH method, for logs and errors.
pub fn method_name(method: u8) -> &'static str {
    match method {
        AUTH_RSA_SIG => "RSA Digital Signature with SHA-1",
        2 => "Shared Key Message Integrity Code",
        3 => "DSS Digital Signature",
        AUTH_ECDSA_SHA256_P256 => "ECDSA with SHA-256 on P-256",
        AUTH_ECDSA_SHA384_P384 => "ECDSA with SHA-384 on P-384",
        AUTH_ECDSA_SHA512_P521 => "ECDSA with SHA-512 on P-521",
        12 => "Generic Secure Password",
        13 => "NULL Authentication",
        AUTH_DIGITAL_SIGNATURE => "Digital Signature",
        _ => "unknown",
    }
}

/// Whether `method` is one of the signature methods here.
pub fn is_signature_method(method: u8) -> bool {
    matches!(
        method,
        AUTH_RSA_SIG
            | AUTH_ECDSA_SHA256_P256
            | AUTH_ECDSA_SHA384_P384
            | AUTH_ECDSA_SHA512_P521
            | AUTH_DIGITAL_SIGNATURE
    )
}

fn ikeauth_name(auth: SignatureAuth) -> &'static str {
    match auth {
        SignatureAuth::Any => "(any signature method)",
        SignatureAuth::Rsa => "rsa",
        SignatureAuth::Ecdsa256 => "ecdsa256",
        SignatureAuth::Ecdsa384 => "ecdsa384",
        SignatureAuth::Ecdsa521 => "ecdsa521",
        SignatureAuth::Rfc7427 => "rfc7427",
    }
}

fn described(method: u8) -> String {
    format!("AUTH method {method} ({})", method_name(method))
}

fn openssl_error(e: openssl::error::ErrorStack) -> SignatureError {
    SignatureError::Openssl(e.to_string())
}

/// The method-14 algorithm we sign with for a key, given the peer's
/// SIGNATURE_HASH_ALGORITHMS: RSASSA-PSS for RSA (RFC 8247 §3.2: MUST),
/// ECDSA with the curve's own hash first, Ed25519 with "Identity"; `None`
/// when the peer offered no hash we share for this key.
pub fn rfc7427_algorithm(
    key_type: KeyType,
    peer_hash_algorithms: &[u16],
) -> Option<SignatureAlgorithm> {
    use Hash::{Sha256, Sha384, Sha512};
    let (preferences, make): (&[Hash], fn(Hash) -> SignatureAlgorithm) = match key_type {
        KeyType::Ed25519 => {
            return (peer_hash_algorithms.contains(&signature_hash::IDENTITY)
                && OUR_HASH_ALGORITHMS.contains(&signature_hash::IDENTITY))
            .then_some(SignatureAlgorithm::Ed25519)
        }
        KeyType::Rsa { .. } | KeyType::RsaPss { .. } => {
            (&[Sha256, Sha384, Sha512], SignatureAlgorithm::RsaPss)
        }
        KeyType::Ecdsa(Curve::P256) => (&[Sha256, Sha384, Sha512], SignatureAlgorithm::Ecdsa),
        KeyType::Ecdsa(Curve::P384) => (&[Sha384, Sha512, Sha256], SignatureAlgorithm::Ecdsa),
        KeyType::Ecdsa(Curve::P521) => (&[Sha512, Sha384, Sha256], SignatureAlgorithm::Ecdsa),
    };
    preferences
        .iter()
        .find(|hash| {
            peer_hash_algorithms.contains(&hash.iana())
                && OUR_HASH_ALGORITHMS.contains(&hash.iana())
        })
        .map(|&hash| make(hash))
}

/// Signs `octets` (RFC 7296 §2.15) with our `key` for a policy's
/// `ikeauth` (`wanted`), given the hash algorithms the peer announced
/// (empty when it sent no SIGNATURE_HASH_ALGORITHMS).
///
/// `Any` uses Digital Signature (14) when we share a hash with the peer,
/// else the key's classic method (1 for RSA, 9/10/11 by curve); Ed25519
/// has only method 14. `Rsa` and `Ecdsa*` force their method and refuse a
/// key that does not fit it; `Rfc7427` forces method 14.
pub fn sign(
    key: &PKeyRef<Private>,
    wanted: SignatureAuth,
    peer_hash_algorithms: &[u16],
    octets: &[u8],
) -> Result<Signed, SignatureError> {
    let key_type = key_type(key)?;
    let no_shared_hash = || {
        let offered = if peer_hash_algorithms.is_empty() {
            "the peer sent no SIGNATURE_HASH_ALGORITHMS".to_string()
        } else {
            format!(
                "the peer offers hash algorithms {}",
                peer_hash_algorithms
                    .iter()
                    .map(|&id| format!("{id} ({})", signature_hash::name(id)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match key_type {
            KeyType::Ed25519 => SignatureError::Refused(format!(
                "our key is Ed25519, which signs only with AUTH method 14 and the Identity hash (5), but {offered}"
            )),
            _ => SignatureError::Refused(format!(
                "AUTH method 14 (Digital Signature) with our {key_type} key needs a hash algorithm we share, but {offered}"
            )),
        }
    };
    let forced = |method: u8, fits: bool| {
        if fits {
            Ok(())
        } else {
            Err(SignatureError::KeyMismatch(format!(
                "ikeauth {} wants {} but our key is {key_type}",
                ikeauth_name(wanted),
                described(method)
            )))
        }
    };
    match wanted {
        SignatureAuth::Any => match rfc7427_algorithm(key_type, peer_hash_algorithms) {
            Some(algorithm) => sign_rfc7427(key, key_type, algorithm, octets),
            None => match key_type {
                KeyType::Rsa { .. } => sign_rsa_sha1(key, octets),
                KeyType::Ecdsa(curve) => sign_ecdsa_classic(key, curve, octets),
                KeyType::Ed25519 | KeyType::RsaPss { .. } => Err(no_shared_hash()),
            },
        },
        SignatureAuth::Rsa => {
            forced(AUTH_RSA_SIG, matches!(key_type, KeyType::Rsa { .. }))?;
            sign_rsa_sha1(key, octets)
        }
        SignatureAuth::Ecdsa256 | SignatureAuth::Ecdsa384 | SignatureAuth::Ecdsa521 => {
            let curve = match wanted {
                SignatureAuth::Ecdsa256 => Curve::P256,
                SignatureAuth::Ecdsa384 => Curve::P384,
                _ => Curve::P521,
            };
            forced(curve.method().0, key_type == KeyType::Ecdsa(curve))?;
            sign_ecdsa_classic(key, curve, octets)
        }
        SignatureAuth::Rfc7427 => {
            let algorithm =
                rfc7427_algorithm(key_type, peer_hash_algorithms).ok_or_else(no_shared_hash)?;
            sign_rfc7427(key, key_type, algorithm, octets)
        }
    }
}

fn sign_rsa_sha1(key: &PKeyRef<Private>, octets: &[u8]) -> Result<Signed, SignatureError> {
    let auth_data = sign_hashed(key, Scheme::RsaPkcs1, Hash::Sha1, octets)?;
    Ok(Signed {
        auth_method: AUTH_RSA_SIG,
        auth_data,
    })
}

/// How a signature over a hash is made and checked: RSA with PKCS#1
/// v1.5 padding, RSA-PSS (MGF1 with the same hash, a salt as long as
/// the hash: RFC 7427 §3 via RFC 4055), or ECDSA (a DER Ecdsa-Sig-Value,
/// as OpenSSL makes it; it refuses non-DER encodings).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    RsaPkcs1,
    RsaPss,
    Ecdsa,
}

fn sign_hashed(
    key: &PKeyRef<Private>,
    scheme: Scheme,
    hash: Hash,
    octets: &[u8],
) -> Result<Vec<u8>, SignatureError> {
    let mut signer = Signer::new(hash.digest(), key).map_err(openssl_error)?;
    match scheme {
        Scheme::RsaPkcs1 => signer
            .set_rsa_padding(Padding::PKCS1)
            .map_err(openssl_error)?,
        Scheme::RsaPss => {
            signer
                .set_rsa_padding(Padding::PKCS1_PSS)
                .map_err(openssl_error)?;
            signer
                .set_rsa_mgf1_md(hash.digest())
                .map_err(openssl_error)?;
            signer
                .set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                .map_err(openssl_error)?;
        }
        Scheme::Ecdsa => {}
    }
    signer.sign_oneshot_to_vec(octets).map_err(openssl_error)
}

/// Methods 9, 10, 11: r||s, each left-padded to the field width (RFC 4754 §7).
fn sign_ecdsa_classic(
    key: &PKeyRef<Private>,
    curve: Curve,
    octets: &[u8],
) -> Result<Signed, SignatureError> {
    let (auth_method, hash) = curve.method();
    let der = sign_hashed(key, Scheme::Ecdsa, hash, octets)?;
    let signature = EcdsaSig::from_der(&der).map_err(openssl_error)?;
    let width = i32::try_from(curve.field_len())
        .map_err(|_| SignatureError::Openssl("field width out of range".into()))?;
    let mut auth_data = signature.r().to_vec_padded(width).map_err(openssl_error)?;
    auth_data.extend(signature.s().to_vec_padded(width).map_err(openssl_error)?);
    Ok(Signed {
        auth_method,
        auth_data,
    })
}

fn sign_rfc7427(
    key: &PKeyRef<Private>,
    key_type: KeyType,
    algorithm: SignatureAlgorithm,
    octets: &[u8],
) -> Result<Signed, SignatureError> {
    fits_rfc7427(key_type, algorithm, "our")?;
    let signature = match algorithm {
        SignatureAlgorithm::RsaPkcs1(hash) => sign_hashed(key, Scheme::RsaPkcs1, hash, octets)?,
        SignatureAlgorithm::RsaPss(hash) => sign_hashed(key, Scheme::RsaPss, hash, octets)?,
        SignatureAlgorithm::Ecdsa(hash) => sign_hashed(key, Scheme::Ecdsa, hash, octets)?,
        SignatureAlgorithm::Ed25519 => Signer::new_without_digest(key)
            .and_then(|mut signer| signer.sign_oneshot_to_vec(octets))
            .map_err(openssl_error)?,
    };
    let der = algorithm.der();
    let der_len = u8::try_from(der.len())
        .map_err(|_| SignatureError::Openssl("AlgorithmIdentifier over 255 octets".into()))?;
    let mut auth_data = Vec::with_capacity(1 + der.len() + signature.len());
    auth_data.push(der_len);
    auth_data.extend_from_slice(der);
    auth_data.extend_from_slice(&signature);
    Ok(Signed {
        auth_method: AUTH_DIGITAL_SIGNATURE,
        auth_data,
    })
}

/// Whether a key of `key_type` can make `algorithm`'s signatures: the
/// check whose absence was CVE-2020-16088.
fn fits_rfc7427(
    key_type: KeyType,
    algorithm: SignatureAlgorithm,
    whose: &str,
) -> Result<(), SignatureError> {
    let fits = match algorithm {
        SignatureAlgorithm::RsaPkcs1(_) => matches!(key_type, KeyType::Rsa { .. }),
        SignatureAlgorithm::RsaPss(_) => {
            matches!(key_type, KeyType::Rsa { .. } | KeyType::RsaPss { .. })
        }
        SignatureAlgorithm::Ecdsa(_) => matches!(key_type, KeyType::Ecdsa(_)),
        SignatureAlgorithm::Ed25519 => key_type == KeyType::Ed25519,
    };
    if fits {
        Ok(())
    } else {
        Err(SignatureError::KeyMismatch(format!(
            "{} with {} but {whose} key is {key_type}",
            described(AUTH_DIGITAL_SIGNATURE),
            algorithm.name()
        )))
    }
}

/// Checks the peer's AUTH payload (`auth_method`, `auth_data`) over
/// `octets` with the peer's public `key`, for a policy that accepts
/// `accepted`: `Any` takes every method that fits the key, `Rsa` only 1,
/// `Ecdsa256|384|521` only 9|10|11, `Rfc7427` only 14.
///
/// Every refusal is an `Err` naming its reason: a method the policy does
/// not accept, a key that does not fit the method (never a match), SHA-1
/// or unknown algorithms inside method 14, malformed data, or a signature
/// that does not verify. Never panics, whatever the input.
pub fn verify(
    key: &PKeyRef<Public>,
    accepted: SignatureAuth,
    auth_method: u8,
    auth_data: &[u8],
    octets: &[u8],
) -> Result<(), SignatureError> {
    if !is_signature_method(auth_method) {
        return Err(SignatureError::Unsupported(format!(
            "{}: not a signature method we implement",
            described(auth_method)
        )));
    }
    let allowed = match accepted {
        SignatureAuth::Any => true,
        SignatureAuth::Rsa => auth_method == AUTH_RSA_SIG,
        SignatureAuth::Ecdsa256 => auth_method == AUTH_ECDSA_SHA256_P256,
        SignatureAuth::Ecdsa384 => auth_method == AUTH_ECDSA_SHA384_P384,
        SignatureAuth::Ecdsa521 => auth_method == AUTH_ECDSA_SHA512_P521,
        SignatureAuth::Rfc7427 => auth_method == AUTH_DIGITAL_SIGNATURE,
    };
    if !allowed {
        return Err(SignatureError::NotAccepted(format!(
            "{} but the policy has ikeauth {}",
            described(auth_method),
            ikeauth_name(accepted)
        )));
    }
    let key_type = key_type(key)?;
    if auth_data.len() > MAX_AUTH_DATA {
        return Err(SignatureError::Malformed(format!(
            "{} octets of AUTH data for {} (at most {MAX_AUTH_DATA})",
            auth_data.len(),
            described(auth_method)
        )));
    }
    let mismatch = || {
        SignatureError::KeyMismatch(format!(
            "{} but the peer's key is {key_type}",
            described(auth_method)
        ))
    };
    match auth_method {
        AUTH_RSA_SIG => {
            if !matches!(key_type, KeyType::Rsa { .. }) {
                return Err(mismatch());
            }
            verify_hashed(
                key,
                Scheme::RsaPkcs1,
                Hash::Sha1,
                auth_data,
                octets,
                &described(auth_method),
            )
        }
        AUTH_ECDSA_SHA256_P256 | AUTH_ECDSA_SHA384_P384 | AUTH_ECDSA_SHA512_P521 => {
            let curve = match auth_method {
                AUTH_ECDSA_SHA256_P256 => Curve::P256,
                AUTH_ECDSA_SHA384_P384 => Curve::P384,
                _ => Curve::P521,
            };
            if key_type != KeyType::Ecdsa(curve) {
                return Err(mismatch());
            }
            verify_ecdsa_classic(key, curve, auth_data, octets)
        }
        _ => verify_rfc7427(key, key_type, auth_data, octets),
    }
}

fn bad_signature(what: &str) -> SignatureError {
    SignatureError::BadSignature(format!(
        "the signature ({what}) does not verify over the AUTH octets with the peer's key"
    ))
}

/// Runs an OpenSSL verification; its errors (bad padding, bad DER) are a
/// failed signature, not a fault (the error queue is drained by the crate).
fn verified(
    result: Result<bool, openssl::error::ErrorStack>,
    what: &str,
) -> Result<(), SignatureError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => Err(bad_signature(what)),
    }
}

fn check_rsa_length<T: HasPublic>(
    key: &PKeyRef<T>,
    signature: &[u8],
    what: &str,
) -> Result<(), SignatureError> {
    let modulus = key.size();
    if signature.len() != modulus {
        return Err(SignatureError::Malformed(format!(
            "{what}: an RSA signature of {} octets for a key of {modulus}",
            signature.len()
        )));
    }
    Ok(())
}

/// Checks a signature of `scheme` (see [`Scheme`]); an RSA signature
/// must be as long as the key's modulus.
fn verify_hashed(
    key: &PKeyRef<Public>,
    scheme: Scheme,
    hash: Hash,
    signature: &[u8],
    octets: &[u8],
    what: &str,
) -> Result<(), SignatureError> {
    if scheme != Scheme::Ecdsa {
        check_rsa_length(key, signature, what)?;
    }
    let salt_len = i32::try_from(hash.output_len()).unwrap_or(i32::MAX);
    let result = Verifier::new(hash.digest(), key).and_then(|mut verifier| {
        match scheme {
            Scheme::RsaPkcs1 => verifier.set_rsa_padding(Padding::PKCS1)?,
            Scheme::RsaPss => {
                verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
                verifier.set_rsa_mgf1_md(hash.digest())?;
                verifier.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt_len))?;
            }
            Scheme::Ecdsa => {}
        }
        verifier.verify_oneshot(signature, octets)
    });
    verified(result, what)
}

/// Methods 9, 10, 11: exactly r||s of the curve's width (RFC 4754 §7).
fn verify_ecdsa_classic(
    key: &PKeyRef<Public>,
    curve: Curve,
    auth_data: &[u8],
    octets: &[u8],
) -> Result<(), SignatureError> {
    let (method, hash) = curve.method();
    let what = described(method);
    let width = curve.field_len();
    if auth_data.len() != 2 * width {
        return Err(SignatureError::Malformed(format!(
            "{what}: {} octets of signature, not r||s of 2 x {width}",
            auth_data.len()
        )));
    }
    let (r, s) = auth_data.split_at(width);
    let der = BigNum::from_slice(r)
        .and_then(|r| Ok((r, BigNum::from_slice(s)?)))
        .and_then(|(r, s)| EcdsaSig::from_private_components(r, s))
        .and_then(|signature| signature.to_der())
        .map_err(|_| bad_signature(&what))?;
    verify_hashed(key, Scheme::Ecdsa, hash, &der, octets, &what)
}

/// Method 14: length octet, AlgorithmIdentifier, signature (RFC 7427 §3).
fn verify_rfc7427(
    key: &PKeyRef<Public>,
    key_type: KeyType,
    auth_data: &[u8],
    octets: &[u8],
) -> Result<(), SignatureError> {
    let method = described(AUTH_DIGITAL_SIGNATURE);
    let Some((&der_len, rest)) = auth_data.split_first() else {
        return Err(SignatureError::Malformed(format!(
            "{method}: empty AUTH data"
        )));
    };
    let der_len = usize::from(der_len);
    if der_len == 0 || rest.len() <= der_len {
        return Err(SignatureError::Malformed(format!(
            "{method}: an AlgorithmIdentifier of {der_len} octets and a signature in {} octets",
            rest.len()
        )));
    }
    let (der, signature) = rest.split_at(der_len);
    let algorithm = algorithm_id::parse(der)?;
    if !OUR_HASH_ALGORITHMS.contains(&algorithm.hash_algorithm()) {
        return Err(SignatureError::Refused(format!(
            "{method} with {}: hash algorithm {} is not one we announced",
            algorithm.name(),
            algorithm.hash_algorithm()
        )));
    }
    fits_rfc7427(key_type, algorithm, "the peer's")?;
    if signature.len() > MAX_SIGNATURE {
        return Err(SignatureError::Malformed(format!(
            "{method}: a signature of {} octets",
            signature.len()
        )));
    }
    let what = format!("{method} with {}", algorithm.name());
    match algorithm {
        SignatureAlgorithm::RsaPkcs1(hash) => {
            verify_hashed(key, Scheme::RsaPkcs1, hash, signature, octets, &what)
        }
        SignatureAlgorithm::RsaPss(hash) => {
            verify_hashed(key, Scheme::RsaPss, hash, signature, octets, &what)
        }
        SignatureAlgorithm::Ecdsa(hash) => {
            verify_hashed(key, Scheme::Ecdsa, hash, signature, octets, &what)
        }
        SignatureAlgorithm::Ed25519 => {
            if signature.len() != 64 {
                return Err(SignatureError::Malformed(format!(
                    "{what}: a signature of {} octets, not 64",
                    signature.len()
                )));
            }
            let result = Verifier::new_without_digest(key)
                .and_then(|mut verifier| verifier.verify_oneshot(signature, octets));
            verified(result, &what)
        }
    }
}
