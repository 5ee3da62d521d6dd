//! Known-answer tests from the RFCs, with the vectors extracted from the RFC
//! texts into testdata/crypto/rfc-kat.json (see extract-rfc-vectors.py).

use iked_common::crypto::{IntegAlg, KeMethod, KeyExchange, PrfAlg};
use serde_json::Value;

fn kat() -> Value {
    serde_json::from_str(include_str!("../testdata/crypto/rfc-kat.json")).unwrap()
}

fn hex_of(v: &Value, name: &str) -> Vec<u8> {
    hex::decode(v[name].as_str().unwrap_or_else(|| panic!("missing {name}"))).unwrap()
}

/// RFC 4231 section 4: HMAC-SHA-256/384/512 test cases 1-7; case 5 is
/// truncated to 128 bits, which we check through the truncating
/// integrity transforms and the PRF's prefix.
#[test]
fn rfc4231_hmac_sha2() {
    let kat = kat();
    let cases = kat["rfc4231_hmac"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for case in cases {
        let (key, data) = (hex_of(case, "key"), hex_of(case, "data"));
        let truncated = case["truncated_to_bits"].as_u64();
        for (prf, integ, field) in [
            (PrfAlg::HmacSha256, IntegAlg::HmacSha256_128, "sha256"),
            (PrfAlg::HmacSha384, IntegAlg::HmacSha384_192, "sha384"),
            (PrfAlg::HmacSha512, IntegAlg::HmacSha512_256, "sha512"),
        ] {
            let expected = hex_of(case, field);
            let out = prf.prf(&key, &data).unwrap();
            assert_eq!(out.len(), prf.output_len());
            match truncated {
                None => assert_eq!(out.expose(), &expected[..], "case {} {field}", case["case"]),
                Some(bits) => {
                    assert_eq!(expected.len() * 8, bits as usize);
                    assert_eq!(
                        &out.expose()[..expected.len()],
                        &expected[..],
                        "case 5 {field}"
                    );
                    let icv = integ.compute_icv(&key, &data).unwrap();
                    assert_eq!(icv.len(), integ.icv_len());
                    assert_eq!(&icv[..expected.len()], &expected[..], "case 5 {field} ICV");
                }
            }
            if truncated.is_none() {
                // The integrity transforms are the same HMAC cut to half (RFC 4868).
                let icv = integ.compute_icv(&key, &data).unwrap();
                assert_eq!(icv, expected[..integ.icv_len()]);
            }
        }
    }
}

/// RFC 5903 section 8: both sides of each ECP exchange, with the KE data in
/// the x | y encoding and the shared secret being x alone.
#[test]
fn rfc5903_ecp_key_exchanges() {
    let kat = kat();
    for (group, method) in [
        ("19", KeMethod::Ecp256),
        ("20", KeMethod::Ecp384),
        ("21", KeMethod::Ecp521),
    ] {
        let v = &kat["rfc5903_ecp"][group];
        let initiator = KeyExchange::from_private_key(method, &hex_of(v, "i")).unwrap();
        let responder = KeyExchange::from_private_key(method, &hex_of(v, "r")).unwrap();
        let gi = [hex_of(v, "gix"), hex_of(v, "giy")].concat();
        let gr = [hex_of(v, "grx"), hex_of(v, "gry")].concat();
        assert_eq!(initiator.public_value(), &gi[..], "group {group} g^i");
        assert_eq!(responder.public_value(), &gr[..], "group {group} g^r");
        let girx = hex_of(v, "girx");
        assert_eq!(
            initiator.complete(&gr).unwrap().expose(),
            &girx[..],
            "group {group}"
        );
        assert_eq!(
            responder.complete(&gi).unwrap().expose(),
            &girx[..],
            "group {group}"
        );
        assert_eq!(girx.len(), method.shared_secret_len());
        assert_eq!(method.iana_id().to_string(), group);
    }
}

fn montgomery(name: &str) -> KeMethod {
    if name == "x448" {
        KeMethod::Curve448
    } else {
        KeMethod::Curve25519
    }
}

/// RFC 7748 section 5.2: the X25519 / X448 functions on arbitrary inputs
/// (scalar clamping and masking of the u-coordinate's top bit included), and
/// the iterated test after 1 and 1,000 iterations.
#[test]
fn rfc7748_functions() {
    let kat = kat();
    for name in ["x25519", "x448"] {
        let method = montgomery(name);
        let vectors = kat["rfc7748"][format!("{name}_function")]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(vectors.len(), 2);
        for v in &vectors {
            let kex = KeyExchange::from_private_key(method, &hex_of(v, "scalar")).unwrap();
            let out = kex.complete(&hex_of(v, "u")).unwrap();
            assert_eq!(out.expose(), &hex_of(v, "output")[..], "{name}");
        }
        let it = &kat["rfc7748"][format!("{name}_iterated")];
        let mut k = hex_of(it, "initial");
        let mut u = k.clone();
        for round in 1..=1000 {
            let next = KeyExchange::from_private_key(method, &k)
                .unwrap()
                .complete(&u)
                .unwrap();
            u = std::mem::replace(&mut k, next.expose().to_vec());
            if round == 1 {
                assert_eq!(k, hex_of(it, "after_1"), "{name} after one iteration");
            }
        }
        assert_eq!(k, hex_of(it, "after_1000"), "{name} after 1,000 iterations");
    }
}

/// RFC 7748 sections 6.1 and 6.2: Alice and Bob's key exchange.
#[test]
fn rfc7748_key_exchanges() {
    let kat = kat();
    for name in ["x25519", "x448"] {
        let method = montgomery(name);
        let v = &kat["rfc7748"][format!("{name}_ecdh")];
        let alice = KeyExchange::from_private_key(method, &hex_of(v, "a")).unwrap();
        let bob = KeyExchange::from_private_key(method, &hex_of(v, "b")).unwrap();
        assert_eq!(alice.public_value(), &hex_of(v, "public_a")[..], "{name}");
        assert_eq!(bob.public_value(), &hex_of(v, "public_b")[..], "{name}");
        let shared = hex_of(v, "shared");
        assert_eq!(
            alice.complete(bob.public_value()).unwrap().expose(),
            &shared[..]
        );
        assert_eq!(
            bob.complete(alice.public_value()).unwrap().expose(),
            &shared[..]
        );
    }
}
