//! AUTH octets (RFC 7296 section 2.15); the byte-exact check against
//! strongSwan's AUTH values is in crypto_interop.rs.

use iked_common::crypto::auth::{maced_id, KEY_PAD};
use iked_common::crypto::{psk_auth, signed_octets, verify_psk_auth, PrfAlg};

#[test]
fn signed_octets_layout() {
    let prf = PrfAlg::HmacSha256;
    let (message, nonce, sk_p, id) = (
        b"IKE_SA_INIT bytes".to_vec(),
        [5u8; 32],
        [6u8; 32],
        [2u8, 0, 0, 0, b'a'],
    );
    let octets = signed_octets(prf, &message, &nonce, &sk_p, &id).unwrap();
    let maced = prf.prf(&sk_p, &id).unwrap();
    assert_eq!(octets, [&message[..], &nonce[..], maced.expose()].concat());
    assert_eq!(maced_id(prf, &sk_p, &id).unwrap().expose(), maced.expose());
}

#[test]
fn psk_auth_and_verification() {
    assert_eq!(KEY_PAD, b"Key Pad for IKEv2");
    assert_eq!(KEY_PAD.len(), 17, "no terminating NUL");
    let octets = b"signed octets".to_vec();
    for prf in [
        PrfAlg::HmacSha1,
        PrfAlg::HmacSha256,
        PrfAlg::HmacSha384,
        PrfAlg::HmacSha512,
    ] {
        let auth = psk_auth(prf, b"secret", &octets).unwrap();
        let inner = prf.prf(b"secret", KEY_PAD).unwrap();
        assert_eq!(auth, prf.prf(inner.expose(), &octets).unwrap().expose());
        assert_eq!(auth.len(), prf.output_len());
        assert!(verify_psk_auth(prf, b"secret", &octets, &auth).unwrap());
        assert!(!verify_psk_auth(prf, b"secreT", &octets, &auth).unwrap());
        assert!(!verify_psk_auth(prf, b"secret", b"other octets", &auth).unwrap());
        let mut flipped = auth.clone();
        flipped[0] ^= 1;
        assert!(!verify_psk_auth(prf, b"secret", &octets, &flipped).unwrap());
        // Wrong lengths are a mismatch, not a panic.
        assert!(!verify_psk_auth(prf, b"secret", &octets, &auth[..auth.len() - 1]).unwrap());
        assert!(!verify_psk_auth(prf, b"secret", &octets, &[]).unwrap());
    }
}
