//! Hash algorithms for the Digital Signature authentication method
//! (RFC 7427 §4, IANA "IKEv2 Hash Algorithms"), as carried in the
//! SIGNATURE_HASH_ALGORITHMS notification. Here rather than in ca-proc so
//! that ikev2 (which announces them) and ca (which signs and verifies with
//! them) share one list without ikev2 depending on ca.

/// SHA-1 (1): RFC 8247 §3.2 says MUST NOT; we neither announce nor accept it
/// inside method 14.
pub const SHA1: u16 = 1;
/// SHA2-256 (2, RFC 7427 §4).
pub const SHA2_256: u16 = 2;
/// SHA2-384 (3, RFC 7427 §4).
pub const SHA2_384: u16 = 3;
/// SHA2-512 (4, RFC 7427 §4).
pub const SHA2_512: u16 = 4;
/// "Identity" (5, RFC 8420 §2): the signature algorithm takes the octets
/// themselves (Ed25519, Ed448).
pub const IDENTITY: u16 = 5;

/// What we announce in SIGNATURE_HASH_ALGORITHMS and accept inside AUTH
/// method 14, in our order of preference. No SHA-1 (RFC 8247 §3.2).
pub const OUR_HASH_ALGORITHMS: &[u16] = &[SHA2_256, SHA2_384, SHA2_512, IDENTITY];

/// The IANA name of a hash algorithm identifier, for logs and errors.
pub fn name(id: u16) -> &'static str {
    match id {
        SHA1 => "SHA1",
        SHA2_256 => "SHA2-256",
        SHA2_384 => "SHA2-384",
        SHA2_512 => "SHA2-512",
        IDENTITY => "Identity",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn we_announce_no_sha1_and_the_rfc_8247_must() {
        assert!(!OUR_HASH_ALGORITHMS.contains(&SHA1));
        assert!(OUR_HASH_ALGORITHMS.contains(&SHA2_256));
        assert!(OUR_HASH_ALGORITHMS.contains(&IDENTITY));
        assert_eq!(name(SHA2_512), "SHA2-512");
        assert_eq!(name(6), "unknown");
    }
}
