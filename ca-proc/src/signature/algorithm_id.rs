//! The AlgorithmIdentifier at the head of a Digital Signature AUTH payload
//! (RFC 7427 §3): the DER we emit, and a strict reader for what peers send.
//!
//! RFC 7427 lets simple implementations compare the object against known
//! blobs (its Appendix A). We parse instead, but only the shapes those
//! algorithms define, in DER: short tags, minimal definite lengths, nothing
//! left over. The dual encodings the specifications themselves allow are
//! accepted: NULL or absent parameters for sha*WithRSAEncryption and for the
//! hash inside RSASSA-PSS parameters (RFC 4055 §2.1, §5), and the
//! trailerField of RSASSA-PSS given explicitly as 1 (as in RFC 7427 A.4.3,
//! which OpenIKED and libreswan send) or omitted as DER wants (strongSwan).
//! Everything else is refused with the reason.

use super::{Hash, SignatureError};

/// A signature algorithm inside AUTH method 14.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// sha{256,384,512}WithRSAEncryption: RSASSA-PKCS1-v1_5 (RFC 7427 A.1).
    RsaPkcs1(Hash),
    /// id-RSASSA-PSS with that hash, MGF1 with the same hash and a salt as
    /// long as the hash, trailerField 1 (RFC 7427 A.4.3, RFC 4055 §3.1).
    RsaPss(Hash),
    /// ecdsa-with-SHA{256,384,512} (RFC 7427 A.3); the signature value is
    /// the DER Ecdsa-Sig-Value.
    Ecdsa(Hash),
    /// id-Ed25519 (RFC 8420 §2, RFC 8410 §3): the "Identity" hash.
    Ed25519,
}

impl SignatureAlgorithm {
    /// The IANA hash algorithm identifier this algorithm uses (RFC 7427 §4,
    /// RFC 8420 §2).
    pub fn hash_algorithm(self) -> u16 {
        match self {
            SignatureAlgorithm::RsaPkcs1(hash)
            | SignatureAlgorithm::RsaPss(hash)
            | SignatureAlgorithm::Ecdsa(hash) => hash.iana(),
            SignatureAlgorithm::Ed25519 => iked_common::crypto::signature_hash::IDENTITY,
        }
    }

    /// The DER AlgorithmIdentifier we emit for it.
    pub fn der(self) -> &'static [u8] {
        match self {
            SignatureAlgorithm::RsaPkcs1(Hash::Sha1) => &SHA1_WITH_RSA_DER,
            SignatureAlgorithm::RsaPkcs1(Hash::Sha256) => &SHA256_WITH_RSA_DER,
            SignatureAlgorithm::RsaPkcs1(Hash::Sha384) => &SHA384_WITH_RSA_DER,
            SignatureAlgorithm::RsaPkcs1(Hash::Sha512) => &SHA512_WITH_RSA_DER,
            SignatureAlgorithm::RsaPss(Hash::Sha1) => &PSS_DEFAULT_DER,
            SignatureAlgorithm::RsaPss(Hash::Sha256) => &PSS_SHA256_DER,
            SignatureAlgorithm::RsaPss(Hash::Sha384) => &PSS_SHA384_DER,
            SignatureAlgorithm::RsaPss(Hash::Sha512) => &PSS_SHA512_DER,
            SignatureAlgorithm::Ecdsa(Hash::Sha1) => &ECDSA_WITH_SHA1_DER,
            SignatureAlgorithm::Ecdsa(Hash::Sha256) => &ECDSA_WITH_SHA256_DER,
            SignatureAlgorithm::Ecdsa(Hash::Sha384) => &ECDSA_WITH_SHA384_DER,
            SignatureAlgorithm::Ecdsa(Hash::Sha512) => &ECDSA_WITH_SHA512_DER,
            SignatureAlgorithm::Ed25519 => &ED25519_DER,
        }
    }

    /// Its name, for logs and errors.
    pub fn name(self) -> String {
        match self {
            SignatureAlgorithm::RsaPkcs1(hash) => {
                format!("{}WithRSAEncryption", hash.name().to_lowercase())
            }
            SignatureAlgorithm::RsaPss(hash) => format!("RSASSA-PSS with {}", hash.name()),
            SignatureAlgorithm::Ecdsa(hash) => format!("ecdsa-with-{}", hash.name()),
            SignatureAlgorithm::Ed25519 => "Ed25519".to_string(),
        }
    }
}

// Object identifier contents (the octets after tag and length).
/// pkcs-1 (1.2.840.113549.1.1) arcs follow this prefix.
const PKCS1: [u8; 8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
const OID_SHA1_WITH_RSA: [u8; 9] = pkcs1(0x05);
const OID_MGF1: [u8; 9] = pkcs1(0x08);
const OID_RSASSA_PSS: [u8; 9] = pkcs1(0x0a);
const OID_SHA256_WITH_RSA: [u8; 9] = pkcs1(0x0b);
const OID_SHA384_WITH_RSA: [u8; 9] = pkcs1(0x0c);
const OID_SHA512_WITH_RSA: [u8; 9] = pkcs1(0x0d);
const OID_ECDSA_WITH_SHA1: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
const OID_ECDSA_WITH_SHA256: [u8; 8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ECDSA_WITH_SHA384: [u8; 8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const OID_ECDSA_WITH_SHA512: [u8; 8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const OID_DSA_WITH_SHA1: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03];
/// dsa-with-sha2 (2.16.840.1.101.3.4.3) arcs follow this prefix.
const OID_DSA_WITH_SHA2_PREFIX: [u8; 8] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
const OID_ED25519: [u8; 3] = [0x2b, 0x65, 0x70];
const OID_ED448: [u8; 3] = [0x2b, 0x65, 0x71];
const OID_SHA1: [u8; 5] = [0x2b, 0x0e, 0x03, 0x02, 0x1a];
const OID_SHA256: [u8; 9] = nist_hash(0x01);
const OID_SHA384: [u8; 9] = nist_hash(0x02);
const OID_SHA512: [u8; 9] = nist_hash(0x03);

const fn pkcs1(arc: u8) -> [u8; 9] {
    let mut oid = [0; 9];
    let mut i = 0;
    while i < PKCS1.len() {
        oid[i] = PKCS1[i];
        i += 1;
    }
    oid[8] = arc;
    oid
}

/// 2.16.840.1.101.3.4.2.arc (id-sha256 = 1, id-sha384 = 2, id-sha512 = 3).
const fn nist_hash(arc: u8) -> [u8; 9] {
    [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, arc]
}

const TAG_INTEGER: u8 = 0x02;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
/// [0]..[3] EXPLICIT, constructed (RSASSA-PSS-params, RFC 4055 §3.1).
const TAG_PSS_HASH: u8 = 0xa0;
const TAG_PSS_MGF: u8 = 0xa1;
const TAG_PSS_SALT: u8 = 0xa2;
const TAG_PSS_TRAILER: u8 = 0xa3;

// The AlgorithmIdentifiers we emit (RFC 7427 Appendix A, whose bytes the
// tests compare with ours).
/// Copies `part` into `der` at `at`; returns where the next part goes.
const fn put<const N: usize>(der: &mut [u8; N], at: usize, part: &[u8]) -> usize {
    let mut i = 0;
    while i < part.len() {
        der[at + i] = part[i];
        i += 1;
    }
    at + part.len()
}

/// An AlgorithmIdentifier of the 9-octet `oid` with parameters NULL.
const fn with_null_parameters(oid: [u8; 9]) -> [u8; 15] {
    let mut der = [0; 15];
    let at = put(&mut der, 0, &[TAG_SEQUENCE, 13, TAG_OID, 9]);
    let at = put(&mut der, at, &oid);
    put(&mut der, at, &[TAG_NULL, 0]);
    der
}

/// sha*WithRSAEncryption: parameters NULL (RFC 7427 A.1).
const fn rsa_pkcs1_der(arc: u8) -> [u8; 15] {
    with_null_parameters(pkcs1(arc))
}
const SHA1_WITH_RSA_DER: [u8; 15] = rsa_pkcs1_der(0x05);
const SHA256_WITH_RSA_DER: [u8; 15] = rsa_pkcs1_der(0x0b);
const SHA384_WITH_RSA_DER: [u8; 15] = rsa_pkcs1_der(0x0c);
const SHA512_WITH_RSA_DER: [u8; 15] = rsa_pkcs1_der(0x0d);
/// ecdsa-with-*: parameters absent (RFC 7427 A.3).
const ECDSA_WITH_SHA1_DER: [u8; 11] = [
    0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01,
];
const fn ecdsa_der(arc: u8) -> [u8; 12] {
    [
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, arc,
    ]
}
const ECDSA_WITH_SHA256_DER: [u8; 12] = ecdsa_der(0x02);
const ECDSA_WITH_SHA384_DER: [u8; 12] = ecdsa_der(0x03);
const ECDSA_WITH_SHA512_DER: [u8; 12] = ecdsa_der(0x04);
/// id-Ed25519, parameters absent (RFC 8420 A.1).
const ED25519_DER: [u8; 7] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
/// RSASSA-PSS with default (SHA-1) parameters (RFC 7427 A.4.2): never
/// emitted (we never sign with SHA-1); here so that `der` is total.
const PSS_DEFAULT_DER: [u8; 64] = [
    0x30, 0x3e, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x31, 0xa0,
    0x0b, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0xa1, 0x18, 0x30, 0x16,
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x09, 0x06, 0x05, 0x2b,
    0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x14, 0xa3, 0x03, 0x02, 0x01, 0x01,
];
/// RSASSA-PSS with a SHA-2 hash, MGF1 with the same hash, a salt of the
/// hash's length and trailerField 1, as RFC 7427 A.4.3 writes it for SHA-256.
const fn pss_der(hash_arc: u8, salt_len: u8) -> [u8; 72] {
    let hash = with_null_parameters(nist_hash(hash_arc));
    let mut der = [0; 72];
    let at = put(&mut der, 0, &[TAG_SEQUENCE, 0x46, TAG_OID, 0x09]);
    let at = put(&mut der, at, &pkcs1(0x0a));
    // RSASSA-PSS-params (RFC 4055 §3.1): hashAlgorithm,
    let at = put(&mut der, at, &[TAG_SEQUENCE, 0x39, TAG_PSS_HASH, 0x0f]);
    let at = put(&mut der, at, &hash);
    // maskGenAlgorithm (MGF1 with the same hash),
    let at = put(
        &mut der,
        at,
        &[TAG_PSS_MGF, 0x1c, TAG_SEQUENCE, 0x1a, TAG_OID, 0x09],
    );
    let at = put(&mut der, at, &pkcs1(0x08));
    let at = put(&mut der, at, &hash);
    // saltLength and trailerField.
    let at = put(
        &mut der,
        at,
        &[TAG_PSS_SALT, 0x03, TAG_INTEGER, 0x01, salt_len],
    );
    let at = put(
        &mut der,
        at,
        &[TAG_PSS_TRAILER, 0x03, TAG_INTEGER, 0x01, 0x01],
    );
    assert!(at == der.len(), "pss_der fills its 72 octets");
    der
}
const PSS_SHA256_DER: [u8; 72] = pss_der(0x01, 32);
const PSS_SHA384_DER: [u8; 72] = pss_der(0x02, 48);
const PSS_SHA512_DER: [u8; 72] = pss_der(0x03, 64);

fn malformed(why: impl Into<String>) -> SignatureError {
    SignatureError::Malformed(why.into())
}

/// One DER element: its tag and its contents.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
}

/// Splits one DER element off `input`. An AlgorithmIdentifier is at most
/// 255 octets (its length is one octet, RFC 7427 §3), so lengths past one
/// long-form octet are refused, as are BER forms (indefinite, non-minimal).
fn take_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), SignatureError> {
    let (&tag, rest) = input
        .split_first()
        .ok_or_else(|| malformed("AlgorithmIdentifier ends before a DER tag"))?;
    if tag & 0x1f == 0x1f {
        return Err(malformed(format!(
            "multi-octet DER tag {tag:#04x} in the AlgorithmIdentifier"
        )));
    }
    let (&first, rest) = rest
        .split_first()
        .ok_or_else(|| malformed("AlgorithmIdentifier ends before a DER length"))?;
    let (len, rest) = match first {
        0x00..=0x7f => (usize::from(first), rest),
        0x80 => {
            return Err(malformed(
                "indefinite length (BER, not DER) in the AlgorithmIdentifier",
            ))
        }
        0x81 => {
            let (&len, rest) = rest
                .split_first()
                .ok_or_else(|| malformed("AlgorithmIdentifier ends inside a DER length"))?;
            if len < 0x80 {
                return Err(malformed(
                    "non-minimal DER length in the AlgorithmIdentifier",
                ));
            }
            (usize::from(len), rest)
        }
        _ => {
            return Err(malformed(format!(
                "DER length form {first:#04x} too long for an AlgorithmIdentifier"
            )))
        }
    };
    if rest.len() < len {
        return Err(malformed(format!(
            "DER element of {len} octets with only {} left in the AlgorithmIdentifier",
            rest.len()
        )));
    }
    let (content, rest) = rest.split_at(len);
    Ok((Tlv { tag, content }, rest))
}

/// Exactly one DER element filling `input`.
fn single_tlv<'a>(input: &'a [u8], what: &str) -> Result<Tlv<'a>, SignatureError> {
    let (tlv, rest) = take_tlv(input)?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} octets after the {what}", rest.len())));
    }
    Ok(tlv)
}

/// An AlgorithmIdentifier: SEQUENCE { OID, parameters OPTIONAL }.
fn algorithm_identifier<'a>(
    tlv: Tlv<'a>,
    what: &str,
) -> Result<(&'a [u8], Option<Tlv<'a>>), SignatureError> {
    if tlv.tag != TAG_SEQUENCE {
        return Err(malformed(format!(
            "the {what} is DER tag {:#04x}, not a SEQUENCE",
            tlv.tag
        )));
    }
    let (oid, rest) = take_tlv(tlv.content)?;
    if oid.tag != TAG_OID {
        return Err(malformed(format!(
            "the {what} starts with DER tag {:#04x}, not an OBJECT IDENTIFIER",
            oid.tag
        )));
    }
    if oid.content.is_empty() {
        return Err(malformed(format!("empty OBJECT IDENTIFIER in the {what}")));
    }
    let parameters = if rest.is_empty() {
        None
    } else {
        Some(single_tlv(rest, &format!("parameters of the {what}"))?)
    };
    Ok((oid.content, parameters))
}

fn parameters_absent(parameters: Option<Tlv<'_>>, name: &str) -> Result<(), SignatureError> {
    match parameters {
        None => Ok(()),
        Some(_) => Err(malformed(format!(
            "{name} with parameters (they must be absent)"
        ))),
    }
}

fn parameters_null_or_absent(
    parameters: Option<Tlv<'_>>,
    name: &str,
) -> Result<(), SignatureError> {
    match parameters {
        None => Ok(()),
        Some(Tlv {
            tag: TAG_NULL,
            content: [],
        }) => Ok(()),
        Some(_) => Err(malformed(format!("{name} with parameters other than NULL"))),
    }
}

/// A hash AlgorithmIdentifier (RFC 4055 §2.1: NULL or absent parameters).
fn hash_algorithm(tlv: Tlv<'_>, what: &str) -> Result<Hash, SignatureError> {
    let (oid, parameters) = algorithm_identifier(tlv, what)?;
    let hash = match oid {
        o if o == OID_SHA1 => Hash::Sha1,
        o if o == OID_SHA256 => Hash::Sha256,
        o if o == OID_SHA384 => Hash::Sha384,
        o if o == OID_SHA512 => Hash::Sha512,
        other => {
            return Err(SignatureError::Unsupported(format!(
                "hash OID {} in the {what}",
                dotted(other)
            )))
        }
    };
    parameters_null_or_absent(parameters, what)?;
    Ok(hash)
}

/// A small non-negative DER INTEGER (salt length, trailer field).
fn small_integer(content: &[u8], what: &str) -> Result<u32, SignatureError> {
    match content {
        [] => Err(malformed(format!("empty INTEGER for the {what}"))),
        [first, ..] if first & 0x80 != 0 => {
            Err(malformed(format!("negative INTEGER for the {what}")))
        }
        [0, second, ..] if second & 0x80 == 0 => {
            Err(malformed(format!("non-minimal INTEGER for the {what}")))
        }
        _ if content.len() > 3 => Err(malformed(format!("INTEGER too large for the {what}"))),
        _ => Ok(content
            .iter()
            .fold(0u32, |value, &byte| value << 8 | u32::from(byte))),
    }
}

/// The contents of one [n] EXPLICIT element: a single inner element.
fn explicit_inner<'a>(tlv: Tlv<'a>, what: &str) -> Result<Tlv<'a>, SignatureError> {
    single_tlv(tlv.content, what)
}

/// RSASSA-PSS-params (RFC 4055 §3.1), requiring what RFC 7427 A.4.3 and
/// RFC 8247 §3.2 mean by "RSASSA-PSS with SHA-256" (and its 384/512
/// siblings): MGF1 with the same hash, salt as long as the hash, trailer 1.
fn pss_parameters(parameters: Option<Tlv<'_>>) -> Result<Hash, SignatureError> {
    let parameters = parameters
        .ok_or_else(|| malformed("RSASSA-PSS without parameters (RFC 4055 requires them)"))?;
    if parameters.tag != TAG_SEQUENCE {
        return Err(malformed(format!(
            "RSASSA-PSS parameters are DER tag {:#04x}, not a SEQUENCE",
            parameters.tag
        )));
    }
    // The defaults (RFC 4055 §3.1): SHA-1, MGF1 with SHA-1, salt 20, trailer 1.
    let (mut hash, mut mgf_hash, mut salt_len, mut trailer) = (Hash::Sha1, Hash::Sha1, 20, 1);
    let mut last_tag = 0;
    let mut rest = parameters.content;
    while !rest.is_empty() {
        let (field, after) = take_tlv(rest)?;
        rest = after;
        if field.tag <= last_tag {
            return Err(malformed(format!(
                "RSASSA-PSS parameter {:#04x} repeated or out of order",
                field.tag
            )));
        }
        last_tag = field.tag;
        match field.tag {
            TAG_PSS_HASH => {
                hash = hash_algorithm(
                    explicit_inner(field, "RSASSA-PSS hashAlgorithm")?,
                    "RSASSA-PSS hashAlgorithm",
                )?
            }
            TAG_PSS_MGF => {
                let mgf = explicit_inner(field, "RSASSA-PSS maskGenAlgorithm")?;
                let (oid, mgf_parameters) =
                    algorithm_identifier(mgf, "RSASSA-PSS maskGenAlgorithm")?;
                if oid != OID_MGF1 {
                    return Err(SignatureError::Unsupported(format!(
                        "RSASSA-PSS mask generation function {}, not MGF1",
                        dotted(oid)
                    )));
                }
                let mgf_parameters =
                    mgf_parameters.ok_or_else(|| malformed("MGF1 without its hash algorithm"))?;
                mgf_hash = hash_algorithm(mgf_parameters, "MGF1 hash algorithm")?;
            }
            TAG_PSS_SALT => {
                let salt = explicit_inner(field, "RSASSA-PSS saltLength")?;
                if salt.tag != TAG_INTEGER {
                    return Err(malformed("RSASSA-PSS saltLength is not an INTEGER"));
                }
                salt_len = small_integer(salt.content, "RSASSA-PSS saltLength")?;
            }
            TAG_PSS_TRAILER => {
                let field = explicit_inner(field, "RSASSA-PSS trailerField")?;
                if field.tag != TAG_INTEGER {
                    return Err(malformed("RSASSA-PSS trailerField is not an INTEGER"));
                }
                trailer = small_integer(field.content, "RSASSA-PSS trailerField")?;
            }
            other => {
                return Err(malformed(format!(
                    "unknown RSASSA-PSS parameter tag {other:#04x}"
                )))
            }
        }
    }
    if hash == Hash::Sha1 {
        return Err(SignatureError::Refused(
            "RSASSA-PSS with SHA-1 inside AUTH method 14 (RFC 8247 §3.2: MUST NOT)".into(),
        ));
    }
    if mgf_hash != hash {
        return Err(SignatureError::Refused(format!(
            "RSASSA-PSS parameters do not match: hash {} but MGF1 with {}",
            hash.name(),
            mgf_hash.name()
        )));
    }
    if salt_len as usize != hash.output_len() {
        return Err(SignatureError::Refused(format!(
            "RSASSA-PSS parameters do not match: salt of {salt_len} octets with {} (we require {})",
            hash.name(),
            hash.output_len()
        )));
    }
    if trailer != 1 {
        return Err(SignatureError::Refused(format!(
            "RSASSA-PSS trailerField {trailer} (RFC 4055: only 1)"
        )));
    }
    Ok(hash)
}

/// Reads the AlgorithmIdentifier of a method-14 AUTH payload (exactly
/// `der`, the octets its length octet announced).
pub fn parse(der: &[u8]) -> Result<SignatureAlgorithm, SignatureError> {
    let (oid, parameters) = algorithm_identifier(
        single_tlv(der, "AlgorithmIdentifier (its length octet)")?,
        "AlgorithmIdentifier",
    )?;
    let sha1 = |name: &str| {
        Err(SignatureError::Refused(format!(
            "{name} inside AUTH method 14: SHA-1 is refused (RFC 8247 §3.2)"
        )))
    };
    let rsa = |hash, name| parameters_null_or_absent(parameters, name).map(|()| hash);
    let ecdsa = |hash, name| parameters_absent(parameters, name).map(|()| hash);
    match oid {
        o if o == OID_SHA1_WITH_RSA => sha1("sha1WithRSAEncryption"),
        o if o == OID_ECDSA_WITH_SHA1 => sha1("ecdsa-with-SHA1"),
        o if o == OID_DSA_WITH_SHA1 => sha1("dsa-with-sha1"),
        o if o == OID_SHA256_WITH_RSA => Ok(SignatureAlgorithm::RsaPkcs1(rsa(
            Hash::Sha256,
            "sha256WithRSAEncryption",
        )?)),
        o if o == OID_SHA384_WITH_RSA => Ok(SignatureAlgorithm::RsaPkcs1(rsa(
            Hash::Sha384,
            "sha384WithRSAEncryption",
        )?)),
        o if o == OID_SHA512_WITH_RSA => Ok(SignatureAlgorithm::RsaPkcs1(rsa(
            Hash::Sha512,
            "sha512WithRSAEncryption",
        )?)),
        o if o == OID_ECDSA_WITH_SHA256 => Ok(SignatureAlgorithm::Ecdsa(ecdsa(
            Hash::Sha256,
            "ecdsa-with-SHA256",
        )?)),
        o if o == OID_ECDSA_WITH_SHA384 => Ok(SignatureAlgorithm::Ecdsa(ecdsa(
            Hash::Sha384,
            "ecdsa-with-SHA384",
        )?)),
        o if o == OID_ECDSA_WITH_SHA512 => Ok(SignatureAlgorithm::Ecdsa(ecdsa(
            Hash::Sha512,
            "ecdsa-with-SHA512",
        )?)),
        o if o == OID_ED25519 => {
            parameters_absent(parameters, "id-Ed25519")?;
            Ok(SignatureAlgorithm::Ed25519)
        }
        o if o == OID_RSASSA_PSS => Ok(SignatureAlgorithm::RsaPss(pss_parameters(parameters)?)),
        o if o == OID_ED448 => Err(SignatureError::Unsupported(
            "signature algorithm Ed448 (we implement Ed25519 only)".into(),
        )),
        o if o.starts_with(&OID_DSA_WITH_SHA2_PREFIX) => Err(SignatureError::Unsupported(
            "DSA signatures (RFC 8247: not for new deployments)".into(),
        )),
        other => Err(SignatureError::Unsupported(format!(
            "signature algorithm OID {}",
            dotted(other)
        ))),
    }
}

/// An OBJECT IDENTIFIER's contents in dotted form (for errors only), or
/// its hex when it is not a well-formed OID.
pub fn dotted(oid: &[u8]) -> String {
    let hex = || oid.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut fresh = true;
    for &byte in oid {
        if fresh && byte == 0x80 {
            return hex(); // non-minimal arc
        }
        if value > (u64::MAX >> 7) {
            return hex();
        }
        value = value << 7 | u64::from(byte & 0x7f);
        fresh = byte & 0x80 == 0;
        if fresh {
            arcs.push(value);
            value = 0;
        }
    }
    if !fresh || arcs.is_empty() {
        return hex();
    }
    let first = arcs[0];
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    std::iter::once(a)
        .chain(std::iter::once(b))
        .chain(arcs[1..].iter().copied())
        .map(|arc| arc.to_string())
        .collect::<Vec<_>>()
        .join(".")
}
