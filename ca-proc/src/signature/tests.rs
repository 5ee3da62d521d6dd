//! Unit tests of the AUTH signature methods: every method with keys made
//! here, the RFC known-answer vectors, every mismatch, hostile inputs.

use super::*;
use iked_common::config::SignatureAuth;
use iked_common::test_pki::{new_key, KeyKind};
use openssl::pkey::{PKey, Private, Public};

const OCTETS: &[u8] = b"IKE_SA_INIT message | nonce | prf(SK_p, ID')";
const ALL_HASHES: &[u16] = OUR_HASH_ALGORITHMS;

fn public(key: &PKey<Private>) -> PKey<Public> {
    PKey::public_key_from_der(&key.public_key_to_der().expect("public DER")).expect("public key")
}

fn rsa() -> PKey<Private> {
    new_key(KeyKind::Rsa(2048))
}

#[test]
fn every_method_signs_and_verifies() {
    let cases: &[(KeyKind, SignatureAuth, &[u16], u8)] = &[
        (KeyKind::Rsa(2048), SignatureAuth::Rsa, &[], AUTH_RSA_SIG),
        (KeyKind::Rsa(2048), SignatureAuth::Any, &[], AUTH_RSA_SIG),
        (KeyKind::P256, SignatureAuth::Ecdsa256, &[], 9),
        (KeyKind::P384, SignatureAuth::Ecdsa384, &[], 10),
        (KeyKind::P521, SignatureAuth::Ecdsa521, &[], 11),
        (KeyKind::P256, SignatureAuth::Any, &[], 9),
        (KeyKind::P384, SignatureAuth::Any, &[], 10),
        (KeyKind::P521, SignatureAuth::Any, &[], 11),
        (KeyKind::Rsa(2048), SignatureAuth::Any, ALL_HASHES, 14),
        (KeyKind::Rsa(3072), SignatureAuth::Rfc7427, &[4], 14),
        (KeyKind::P256, SignatureAuth::Rfc7427, ALL_HASHES, 14),
        (KeyKind::P384, SignatureAuth::Any, ALL_HASHES, 14),
        (KeyKind::P521, SignatureAuth::Any, ALL_HASHES, 14),
        (KeyKind::Ed25519, SignatureAuth::Any, ALL_HASHES, 14),
        (KeyKind::Ed25519, SignatureAuth::Rfc7427, &[5], 14),
    ];
    for &(kind, wanted, peer_hashes, method) in cases {
        let key = new_key(kind);
        let signed = sign(&key, wanted, peer_hashes, OCTETS)
            .unwrap_or_else(|e| panic!("{kind:?} {wanted:?}: {e}"));
        assert_eq!(signed.auth_method, method, "{kind:?} {wanted:?}");
        let public = public(&key);
        verify(
            &public,
            wanted,
            signed.auth_method,
            &signed.auth_data,
            OCTETS,
        )
        .unwrap_or_else(|e| panic!("{kind:?} {wanted:?}: {e}"));
        verify(
            &public,
            SignatureAuth::Any,
            signed.auth_method,
            &signed.auth_data,
            OCTETS,
        )
        .unwrap_or_else(|e| panic!("{kind:?} Any: {e}"));
        // The same signature over other octets is refused.
        let error = verify(
            &public,
            wanted,
            signed.auth_method,
            &signed.auth_data,
            b"other",
        )
        .expect_err("a signature over other octets");
        assert!(
            matches!(error, SignatureError::BadSignature(_)),
            "{kind:?}: {error}"
        );
    }
}

#[test]
fn an_ecdsa_method_with_an_rsa_key_is_refused_cve_2020_16088() {
    let rsa = rsa();
    let p256 = new_key(KeyKind::P256);
    let signed = sign(&p256, SignatureAuth::Ecdsa256, &[], OCTETS).expect("sign");
    let error = verify(
        &public(&rsa),
        SignatureAuth::Any,
        9,
        &signed.auth_data,
        OCTETS,
    )
    .expect_err("RSA key with method 9");
    assert_eq!(
        error.to_string(),
        "AUTH method 9 (ECDSA with SHA-256 on P-256) but the peer's key is RSA (2048 bits)"
    );
}
