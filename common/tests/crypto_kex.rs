//! Key exchange: agreement for every method, padding of shared secrets, and
//! rejection of bad peer values (RFC 7296 section 3.4, RFC 6989, RFC 8031).

use iked_common::crypto::kex::respond;
use iked_common::crypto::{CryptoError, KeMethod, KeyExchange};
use openssl::bn::BigNum;

fn rfc3526_prime(method: KeMethod) -> BigNum {
    let kat: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/crypto/rfc-kat.json")).unwrap();
    let hex = kat["rfc3526_modp_primes"][method.iana_id().to_string()]
        .as_str()
        .unwrap();
    BigNum::from_hex_str(hex).unwrap()
}

fn padded(n: &BigNum, len: usize) -> Vec<u8> {
    n.to_vec_padded(len as i32).unwrap()
}

fn assert_rejected(kex: &KeyExchange, peer: &[u8], what: &str) {
    match kex.complete(peer) {
        Err(CryptoError::InvalidPeerPublicValue { method, .. }) => {
            assert_eq!(method, kex.method(), "{what}")
        }
        other => panic!(
            "{:?} {what}: expected rejection, got {other:?}",
            kex.method()
        ),
    }
}

#[test]
fn every_method_agrees_and_has_the_right_lengths() {
    for method in KeMethod::ALL {
        assert_eq!(KeMethod::from_iana(method.iana_id()), Some(method));
        let initiator = KeyExchange::generate(method).unwrap();
        assert_eq!(
            initiator.public_value().len(),
            method.public_value_len(),
            "{method:?}"
        );
        let (responder_public, responder_secret) =
            respond(method, initiator.public_value()).unwrap();
        assert_eq!(responder_public.len(), method.public_value_len());
        let initiator_secret = initiator.complete(&responder_public).unwrap();
        assert_eq!(
            initiator_secret.len(),
            method.shared_secret_len(),
            "{method:?}"
        );
        assert_eq!(
            initiator_secret.expose(),
            responder_secret.expose(),
            "{method:?}"
        );
        assert_ne!(initiator.public_value(), &responder_public[..]);
    }
    for unknown in [0, 1, 2, 5, 13, 22, 30, 33, 35] {
        assert_eq!(KeMethod::from_iana(unknown), None);
    }
}

/// g^ir with leading zero bytes must keep them (RFC 7296 section 2.14: padded
/// to the modulus length); OpenSSL's DH strips them. Bounded loop: the chance
/// of no leading zero in 4000 exchanges is about 1e-7.
#[test]
fn shared_secrets_keep_leading_zeros() {
    for method in [KeMethod::Modp2048, KeMethod::Ecp256] {
        let mut seen_leading_zero = false;
        for _ in 0..4000 {
            let a = KeyExchange::generate(method).unwrap();
            let b = KeyExchange::generate(method).unwrap();
            let ab = a.complete(b.public_value()).unwrap();
            let ba = b.complete(a.public_value()).unwrap();
            assert_eq!(ab.expose(), ba.expose(), "{method:?}");
            assert_eq!(ab.len(), method.shared_secret_len());
            if ab.expose()[0] == 0 {
                seen_leading_zero = true;
                break;
            }
        }
        assert!(
            seen_leading_zero,
            "{method:?}: no shared secret with a leading zero byte"
        );
    }
}

/// RFC 6989 section 2.1: 1 < y < p-1, exact modulus length. The bounds are
/// the primes printed in RFC 3526.
#[test]
fn modp_peer_values_are_range_checked() {
    for method in [KeMethod::Modp2048, KeMethod::Modp3072, KeMethod::Modp4096] {
        let kex = KeyExchange::generate(method).unwrap();
        let len = method.public_value_len();
        let p = rfc3526_prime(method);
        assert_eq!(p.num_bytes() as usize, len);
        let one = BigNum::from_u32(1).unwrap();
        let two = BigNum::from_u32(2).unwrap();
        let mut p_minus_1 = BigNum::new().unwrap();
        p_minus_1.checked_sub(&p, &one).unwrap();
        let mut p_minus_2 = BigNum::new().unwrap();
        p_minus_2.checked_sub(&p, &two).unwrap();
        let mut p_plus_1 = BigNum::new().unwrap();
        p_plus_1.checked_add(&p, &one).unwrap();

        assert_rejected(&kex, &vec![0; len], "0");
        assert_rejected(&kex, &padded(&one, len), "1");
        assert_rejected(&kex, &padded(&p_minus_1, len), "p-1");
        assert_rejected(&kex, &padded(&p, len), "p");
        assert_rejected(&kex, &padded(&p_plus_1, len), "p+1");
        assert_rejected(&kex, &vec![0xff; len], "2^n-1");
        // The extremes inside the range are accepted: the bound is exactly p-1.
        kex.complete(&padded(&p_minus_2, len))
            .expect("p-2 is in range");
        match kex.complete(&padded(&p_minus_1, len)) {
            Err(CryptoError::InvalidPeerPublicValue { reason, .. }) => {
                assert!(reason.contains("range"), "p-1: {reason}")
            }
            other => panic!("p-1: {other:?}"),
        }
        kex.complete(&padded(&two, len))
            .expect("2 is a valid value");
        kex.complete(&padded(&BigNum::from_u32(4).unwrap(), len))
            .expect("4 is a valid value");

        let good = KeyExchange::generate(method).unwrap();
        let value = good.public_value();
        assert_rejected(&kex, &value[1..], "too short");
        assert_rejected(
            &kex,
            &[&[0u8][..], value].concat(),
            "too long (leading zero)",
        );
        assert_rejected(
            &kex,
            &[value, &[0u8][..]].concat(),
            "too long (trailing byte)",
        );
        assert_rejected(&kex, &[], "empty");
        // A rejected value does not spoil the key pair for the genuine reply.
        assert_eq!(
            kex.complete(value).unwrap().expose(),
            good.complete(kex.public_value()).unwrap().expose()
        );
    }
}

/// RFC 6989 section 2.3 / RFC 5903: points must be on the curve.
#[test]
fn ecp_peer_values_must_be_on_the_curve() {
    for method in [KeMethod::Ecp256, KeMethod::Ecp384, KeMethod::Ecp521] {
        let kex = KeyExchange::generate(method).unwrap();
        let good = KeyExchange::generate(method)
            .unwrap()
            .public_value()
            .to_vec();
        let half = good.len() / 2;
        let mut off_curve = good.clone();
        *off_curve.last_mut().unwrap() ^= 1;
        assert_rejected(&kex, &off_curve, "y changed");
        let mut off_curve_x = good.clone();
        off_curve_x[half - 1] ^= 1;
        assert_rejected(&kex, &off_curve_x, "x changed");
        assert_rejected(&kex, &vec![0; good.len()], "(0, 0)");
        assert_rejected(
            &kex,
            &vec![0xff; good.len()],
            "coordinates beyond the field",
        );
        assert_rejected(&kex, &good[..good.len() - 1], "too short");
        assert_rejected(&kex, &[&good[..], &[0u8][..]].concat(), "too long");
        assert_rejected(
            &kex,
            &[&[4u8][..], &good[..]].concat(),
            "with the 0x04 prefix",
        );
        assert_rejected(&kex, &good[..half], "x only");
        kex.complete(&good).expect("the genuine value still works");
    }
}

/// A coordinate equal to the field prime is the same residue as 0 but not a
/// valid encoding: P-256's p with a y that would be on the curve for x = 0.
#[test]
fn ecp_coordinate_equal_to_field_prime_is_rejected() {
    let p256 =
        hex::decode("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff").unwrap();
    // y^2 = b for x = 0; b = 5ac635d8...; a square root of b mod p:
    let b =
        BigNum::from_hex_str("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b")
            .unwrap();
    let p = BigNum::from_slice(&p256).unwrap();
    let mut ctx = openssl::bn::BigNumContext::new().unwrap();
    let mut y = BigNum::new().unwrap();
    y.mod_sqrt(&b, &p, &mut ctx).unwrap();
    let kex = KeyExchange::generate(KeMethod::Ecp256).unwrap();
    // (0, y) is on the curve and accepted; (p, y) names the same point but is rejected.
    let zero_x = [vec![0; 32], y.to_vec_padded(32).unwrap()].concat();
    kex.complete(&zero_x).expect("(0, sqrt(b)) is on P-256");
    let p_x = [p256, y.to_vec_padded(32).unwrap()].concat();
    assert_rejected(&kex, &p_x, "x = p");
}

/// RFC 8031 section 2 / RFC 7748 section 6: small-order points give an
/// all-zero shared secret, which must be refused.
#[test]
fn montgomery_small_order_points_are_rejected() {
    let x25519 = KeyExchange::generate(KeMethod::Curve25519).unwrap();
    let p25519 =
        hex::decode("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f").unwrap();
    let order8 =
        hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800").unwrap();
    let mut one = vec![0u8; 32];
    one[0] = 1;
    for (value, what) in [
        (vec![0u8; 32], "0"),
        (one, "1"),
        (order8, "order-8 point"),
        (p25519, "p (= 0)"),
    ] {
        assert_rejected(&x25519, &value, what);
    }
    assert_rejected(&x25519, &[9u8; 31], "too short");
    assert_rejected(&x25519, &[9u8; 33], "too long");

    let x448 = KeyExchange::generate(KeMethod::Curve448).unwrap();
    let mut one = vec![0u8; 56];
    one[0] = 1;
    assert_rejected(&x448, &[0u8; 56], "0");
    assert_rejected(&x448, &one, "1");
    assert_rejected(&x448, &[5u8; 32], "X25519-sized value");
}

#[test]
fn private_keys_for_known_answer_tests_are_checked() {
    assert!(matches!(
        KeyExchange::from_private_key(KeMethod::Ecp256, &[0; 32]),
        Err(CryptoError::InvalidPrivateKey(_) | CryptoError::Openssl(_))
    ));
    assert!(matches!(
        KeyExchange::from_private_key(KeMethod::Modp2048, &[1]),
        Err(CryptoError::InvalidPrivateKey(KeMethod::Modp2048))
    ));
    assert!(matches!(
        KeyExchange::from_private_key(KeMethod::Curve25519, &[1; 31]),
        Err(CryptoError::InvalidPrivateKey(KeMethod::Curve25519))
    ));
    // A MODP private exponent x gives g^x: 2^10 = 1024.
    let kex = KeyExchange::from_private_key(KeMethod::Modp2048, &[10]).unwrap();
    let mut expected = vec![0u8; 256];
    expected[254] = 4;
    assert_eq!(kex.public_value(), &expected[..]);
}

#[test]
fn debug_output_shows_no_key_material() {
    let kex = KeyExchange::from_private_key(KeMethod::Curve25519, &[0x41; 32]).unwrap();
    let shown = format!("{kex:?}");
    assert_eq!(shown, "KeyExchange { method: Curve25519, .. }");
    let secret = kex
        .complete(
            KeyExchange::generate(KeMethod::Curve25519)
                .unwrap()
                .public_value(),
        )
        .unwrap();
    assert_eq!(format!("{secret:?}"), "SecretBytes(32 bytes)");
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Arbitrary peer values of arbitrary length: a result or an error,
        /// never a panic; a wrong length is always an error.
        #[test]
        fn complete_with_arbitrary_bytes(
            peer in proptest::collection::vec(any::<u8>(), 0..140),
            pick in any::<proptest::sample::Index>(),
        ) {
            // MODP 2048 and up are slow to generate; the fast methods cover
            // every code path but the MODP range check, tested above.
            let methods = [KeMethod::Ecp256, KeMethod::Ecp384, KeMethod::Ecp521, KeMethod::Curve25519, KeMethod::Curve448];
            let method = methods[pick.index(methods.len())];
            let kex = KeyExchange::generate(method).unwrap();
            let result = kex.complete(&peer);
            if peer.len() != method.public_value_len() {
                prop_assert!(result.is_err());
            }
            if let Ok(secret) = result {
                prop_assert_eq!(secret.len(), method.shared_secret_len());
            }
        }

        #[test]
        fn modp_complete_with_arbitrary_bytes(peer in proptest::collection::vec(any::<u8>(), 250..260)) {
            let kex = KeyExchange::from_private_key(KeMethod::Modp2048, &[0x5a; 40]).unwrap();
            let result = kex.complete(&peer);
            if peer.len() != 256 {
                prop_assert!(result.is_err());
            }
        }
    }
}
