//! The Encrypted payload: lengths, round trips for every transform, and
//! every kind of tampering failing with the one opaque error.

use iked_common::crypto::{CryptoError, EncrAlg, IntegAlg, OpensslRandom, SkCipher, SkTransform};
use openssl::symm::{Cipher, Crypter, Mode};

fn transforms() -> Vec<SkTransform> {
    let mut all = Vec::new();
    for key_bits in [128, 192, 256] {
        for integ in [
            IntegAlg::HmacSha1_96,
            IntegAlg::HmacSha256_128,
            IntegAlg::HmacSha384_192,
            IntegAlg::HmacSha512_256,
        ] {
            all.push(SkTransform::new(EncrAlg::AesCbc { key_bits }, Some(integ)).unwrap());
        }
        all.push(
            SkTransform::new(
                EncrAlg::CamelliaCbc { key_bits },
                Some(IntegAlg::HmacSha256_128),
            )
            .unwrap(),
        );
        for icv_len in [8, 12, 16] {
            all.push(SkTransform::new(EncrAlg::AesGcm { key_bits, icv_len }, None).unwrap());
        }
    }
    all.push(SkTransform::new(EncrAlg::ChaCha20Poly1305, None).unwrap());
    all
}

/// Distinct, recognisable key bytes of the right lengths.
fn cipher_pair(transform: SkTransform, seed: u8) -> (SkCipher, SkCipher) {
    let encr: Vec<u8> = (0..transform.encr_keymat_len())
        .map(|i| seed.wrapping_add(i as u8))
        .collect();
    let integ: Vec<u8> = (0..transform.integ_key_len())
        .map(|i| seed ^ (i as u8))
        .collect();
    (
        SkCipher::new(transform, &encr, &integ).unwrap(),
        SkCipher::new(transform, &encr, &integ).unwrap(),
    )
}

/// A fake IKE header plus SK payload header; the contents only need to be
/// authenticated, not meaningful.
fn prefix(body_len: usize) -> Vec<u8> {
    let mut header = vec![0x11; 28];
    header[24..28].copy_from_slice(&((28 + 4 + body_len) as u32).to_be_bytes());
    header.extend_from_slice(&[0x23, 0, 0, 0]);
    header[30..32].copy_from_slice(&((4 + body_len) as u16).to_be_bytes());
    header
}

fn counter_rng() -> impl FnMut(&mut [u8]) {
    let mut next = 0u8;
    move |buf: &mut [u8]| {
        for b in buf {
            *b = next;
            next = next.wrapping_add(1);
        }
    }
}

fn assert_integrity_failure(result: Result<Vec<u8>, CryptoError>, what: &str) {
    match result {
        Err(err @ CryptoError::IntegrityCheckFailed) => {
            assert_eq!(err.to_string(), "integrity check failed")
        }
        other => panic!("{what}: expected IntegrityCheckFailed, got {other:?}"),
    }
}

#[test]
fn key_and_icv_lengths_per_transform() {
    let gcm = SkTransform::new(
        EncrAlg::AesGcm {
            key_bits: 128,
            icv_len: 16,
        },
        None,
    )
    .unwrap();
    assert_eq!(
        (
            gcm.encr_keymat_len(),
            gcm.integ_key_len(),
            gcm.iv_len(),
            gcm.icv_len()
        ),
        (20, 0, 8, 16)
    );
    let gcm8 = SkTransform::new(
        EncrAlg::AesGcm {
            key_bits: 256,
            icv_len: 8,
        },
        None,
    )
    .unwrap();
    assert_eq!((gcm8.encr_keymat_len(), gcm8.icv_len()), (36, 8));
    let chacha = SkTransform::new(EncrAlg::ChaCha20Poly1305, None).unwrap();
    assert_eq!(
        (chacha.encr_keymat_len(), chacha.iv_len(), chacha.icv_len()),
        (36, 8, 16)
    );
    let cbc = SkTransform::new(
        EncrAlg::AesCbc { key_bits: 256 },
        Some(IntegAlg::HmacSha384_192),
    )
    .unwrap();
    assert_eq!(
        (
            cbc.encr_keymat_len(),
            cbc.integ_key_len(),
            cbc.iv_len(),
            cbc.icv_len()
        ),
        (32, 48, 16, 24)
    );
    let sha1 = SkTransform::new(
        EncrAlg::AesCbc { key_bits: 128 },
        Some(IntegAlg::HmacSha1_96),
    )
    .unwrap();
    assert_eq!((sha1.integ_key_len(), sha1.icv_len()), (20, 12));
    assert_eq!(IntegAlg::HmacSha512_256.icv_len(), 32);
    assert_eq!(IntegAlg::HmacSha256_128.icv_len(), 16);
    // ESP-only transforms still know their KEYMAT (RFC 3686, 4309, 4543).
    assert_eq!(EncrAlg::from_iana(13, Some(128)).unwrap().keymat_len(), 20);
    assert_eq!(EncrAlg::from_iana(16, Some(256)).unwrap().keymat_len(), 35);
    assert_eq!(EncrAlg::from_iana(21, Some(192)).unwrap().keymat_len(), 28);
    assert_eq!(EncrAlg::from_iana(11, None).unwrap().keymat_len(), 0);
}

#[test]
fn transform_ids_round_trip_and_bad_ones_are_refused() {
    for id in [12, 13, 14, 15, 16, 18, 19, 20, 21, 23] {
        for bits in [128, 192, 256] {
            let alg = EncrAlg::from_iana(id, Some(bits)).unwrap();
            assert_eq!((alg.iana_id(), alg.key_len_attr()), (id, Some(bits)));
        }
        assert!(
            EncrAlg::from_iana(id, None).is_err(),
            "{id} needs a key length"
        );
        assert!(EncrAlg::from_iana(id, Some(64)).is_err());
    }
    assert_eq!(
        EncrAlg::from_iana(28, None).unwrap(),
        EncrAlg::ChaCha20Poly1305
    );
    assert!(EncrAlg::from_iana(28, Some(256)).is_err());
    assert!(
        EncrAlg::from_iana(3, Some(192)).is_err(),
        "3DES is not implemented"
    );
    for id in [2, 12, 13, 14] {
        assert_eq!(IntegAlg::from_iana(id).unwrap().iana_id(), id);
    }
    assert_eq!(
        IntegAlg::from_iana(5),
        None,
        "AES-XCBC-96 is not implemented"
    );
    // AEAD with an integrity transform, CBC without one, and ESP-only ciphers.
    assert!(SkTransform::new(
        EncrAlg::AesGcm {
            key_bits: 128,
            icv_len: 16
        },
        Some(IntegAlg::HmacSha256_128)
    )
    .is_err());
    assert!(SkTransform::new(EncrAlg::AesCbc { key_bits: 128 }, None).is_err());
    assert!(SkTransform::new(EncrAlg::Null, Some(IntegAlg::HmacSha256_128)).is_err());
    assert!(SkTransform::new(
        EncrAlg::AesCtr { key_bits: 128 },
        Some(IntegAlg::HmacSha256_128)
    )
    .is_err());
}

#[test]
fn wrong_key_lengths_are_refused() {
    let cbc = SkTransform::new(
        EncrAlg::AesCbc { key_bits: 256 },
        Some(IntegAlg::HmacSha256_128),
    )
    .unwrap();
    assert!(matches!(
        SkCipher::new(cbc, &[0; 16], &[0; 32]),
        Err(CryptoError::BadKeyLength { what: "SK_e", .. })
    ));
    assert!(matches!(
        SkCipher::new(cbc, &[0; 32], &[0; 20]),
        Err(CryptoError::BadKeyLength { what: "SK_a", .. })
    ));
    let gcm = SkTransform::new(
        EncrAlg::AesGcm {
            key_bits: 128,
            icv_len: 16,
        },
        None,
    )
    .unwrap();
    assert!(matches!(
        SkCipher::new(gcm, &[0; 16], &[]),
        Err(CryptoError::BadKeyLength { expected: 20, .. })
    ));
}

/// sealed_len is exact and computable before sealing; round trips for every
/// transform and plaintext lengths across block boundaries.
#[test]
fn seal_open_round_trip_every_transform() {
    for transform in transforms() {
        let (mut sender, receiver) = cipher_pair(transform, 7);
        let mut rng = OpensslRandom;
        for len in 0..=70 {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 3) as u8).collect();
            let body_len = transform.sealed_len(len);
            let aad = prefix(body_len);
            let body = sender.seal(&aad, &plaintext, &mut rng).unwrap();
            assert_eq!(body.len(), body_len, "{transform:?} len {len}");
            assert_eq!(
                receiver.open(&aad, &body).unwrap(),
                plaintext,
                "{transform:?} len {len}"
            );
            assert!(transform.max_plaintext_len(body_len).unwrap() >= len);
            assert_eq!(
                transform.sealed_len(transform.max_plaintext_len(body_len).unwrap()),
                body_len
            );
            if !transform.encr().is_aead() {
                assert_eq!(
                    (body_len - transform.iv_len() - transform.icv_len()) % 16,
                    0,
                    "CBC alignment"
                );
            } else {
                // RFC 7634 section 3 / RFC 5282: no padding, pad length 0.
                assert_eq!(body_len, 8 + len + 1 + transform.icv_len());
            }
        }
    }
}

/// CBC IVs come from the injected source, so sealing is reproducible; AEAD
/// IVs are a counter with a start drawn from that source, so one cipher
/// never repeats an IV.
#[test]
fn ivs_injected_for_cbc_and_unique_for_aead() {
    let cbc = SkTransform::new(
        EncrAlg::AesCbc { key_bits: 128 },
        Some(IntegAlg::HmacSha256_128),
    )
    .unwrap();
    let (mut one, _) = cipher_pair(cbc, 1);
    let (mut two, _) = cipher_pair(cbc, 1);
    let aad = prefix(cbc.sealed_len(5));
    let first = one.seal(&aad, b"hello", &mut counter_rng()).unwrap();
    let second = two.seal(&aad, b"hello", &mut counter_rng()).unwrap();
    assert_eq!(first, second, "same injected IV, same output");
    assert_eq!(
        &first[..16],
        &(0u8..16).collect::<Vec<_>>()[..],
        "IV taken from the source"
    );
    let third = one.seal(&aad, b"hello", &mut OpensslRandom).unwrap();
    assert_ne!(first[..16], third[..16]);

    for transform in [
        SkTransform::new(
            EncrAlg::AesGcm {
                key_bits: 256,
                icv_len: 16,
            },
            None,
        )
        .unwrap(),
        SkTransform::new(EncrAlg::ChaCha20Poly1305, None).unwrap(),
    ] {
        let (mut sender, receiver) = cipher_pair(transform, 2);
        let aad = prefix(transform.sealed_len(5));
        let mut ivs = std::collections::HashSet::new();
        // The same fresh source every time: only the first seal draws from it
        // (the counter's start, 0x0001020304050607), later IVs count up.
        for n in 0..100u64 {
            let body = sender.seal(&aad, b"hello", &mut counter_rng()).unwrap();
            assert_eq!(
                body[..8],
                (0x0001020304050607 + n).to_be_bytes(),
                "{transform:?}"
            );
            assert!(ivs.insert(body[..8].to_vec()), "IV reused");
            assert_eq!(receiver.open(&aad, &body).unwrap(), b"hello");
        }
        // A second cipher made from the same keys starts elsewhere.
        let (mut again, _) = cipher_pair(transform, 2);
        let body = again.seal(&aad, b"hello", &mut OpensslRandom).unwrap();
        assert!(!ivs.contains(&body[..8]), "restarted IV sequence");
    }
}

/// Flipping any bit of the AAD, IV, ciphertext or ICV fails; so does every
/// truncation and any appended byte.
#[test]
fn tampering_fails_with_one_opaque_error() {
    for transform in transforms() {
        let (mut sender, receiver) = cipher_pair(transform, 9);
        let plaintext = b"\x29\x00\x00\x0cIDi payload and more payloads.".to_vec();
        let aad = prefix(transform.sealed_len(plaintext.len()));
        let body = sender.seal(&aad, &plaintext, &mut OpensslRandom).unwrap();
        for pos in 0..body.len() {
            let mut bad = body.clone();
            bad[pos] ^= 0x01;
            assert_integrity_failure(
                receiver.open(&aad, &bad),
                &format!("{transform:?} body byte {pos}"),
            );
        }
        for pos in 0..aad.len() {
            let mut bad = aad.clone();
            bad[pos] ^= 0x80;
            assert_integrity_failure(
                receiver.open(&bad, &body),
                &format!("{transform:?} AAD byte {pos}"),
            );
        }
        for len in 0..body.len() {
            assert_integrity_failure(
                receiver.open(&aad, &body[..len]),
                &format!("{transform:?} truncated to {len}"),
            );
        }
        assert_integrity_failure(
            receiver.open(&aad, &[&body[..], &[0]].concat()),
            "appended byte",
        );
        // A different key fails too.
        let (_, other) = cipher_pair(transform, 10);
        assert_integrity_failure(other.open(&aad, &body), "other key");
        assert_eq!(receiver.open(&aad, &body).unwrap(), plaintext);
    }
}

fn hmac_sha256_128(key: &[u8], data: &[u8]) -> Vec<u8> {
    IntegAlg::HmacSha256_128.compute_icv(key, data).unwrap()
}

/// Hand-built CBC bodies with a valid ICV: a pad length that does not fit is
/// refused; longer-than-minimal padding with arbitrary bytes is accepted
/// (RFC 7296 section 3.14: "MUST accept any length that results in proper alignment").
#[test]
fn cbc_padding_rules() {
    let transform = SkTransform::new(
        EncrAlg::AesCbc { key_bits: 128 },
        Some(IntegAlg::HmacSha256_128),
    )
    .unwrap();
    let (encr_key, integ_key) = ([3u8; 16], [4u8; 32]);
    let receiver = SkCipher::new(transform, &encr_key, &integ_key).unwrap();
    let iv = [5u8; 16];
    let build = |padded: &[u8]| {
        let mut c =
            Crypter::new(Cipher::aes_128_cbc(), Mode::Encrypt, &encr_key, Some(&iv)).unwrap();
        c.pad(false);
        let mut ct = vec![0; padded.len() + 16];
        let n = c.update(padded, &mut ct).unwrap();
        ct.truncate(n);
        let body_len = 16 + ct.len() + 16;
        let aad = prefix(body_len);
        let mut body = [&iv[..], &ct[..]].concat();
        let icv = hmac_sha256_128(&integ_key, &[&aad[..], &body[..]].concat());
        body.extend_from_slice(&icv);
        (aad, body)
    };
    // 3 payload bytes, 28 padding bytes of 0xa5, pad length 28: 32 bytes.
    let mut padded = vec![1, 2, 3];
    padded.extend([0xa5; 28]);
    padded.push(28);
    let (aad, body) = build(&padded);
    assert_eq!(receiver.open(&aad, &body).unwrap(), vec![1, 2, 3]);
    // Pad length 31 in 32 bytes: empty payloads, fine.
    let mut all_padding = vec![0u8; 31];
    all_padding.push(31);
    let (aad, body) = build(&all_padding);
    assert_eq!(receiver.open(&aad, &body).unwrap(), Vec::<u8>::new());
    // Pad length 32 or 255 in 32 bytes: does not fit.
    for pad_len in [32u8, 200, 255] {
        let mut bad = vec![0u8; 31];
        bad.push(pad_len);
        let (aad, body) = build(&bad);
        assert_integrity_failure(receiver.open(&aad, &body), &format!("pad length {pad_len}"));
    }
}

/// The same for AEAD: any padding that fits is accepted, none that does not.
#[test]
fn aead_padding_rules() {
    let transform = SkTransform::new(
        EncrAlg::AesGcm {
            key_bits: 128,
            icv_len: 16,
        },
        None,
    )
    .unwrap();
    let keymat = [6u8; 20];
    let receiver = SkCipher::new(transform, &keymat, &[]).unwrap();
    let iv = [7u8; 8];
    let nonce = [&keymat[16..], &iv[..]].concat();
    let build = |padded: &[u8]| {
        let body_len = 8 + padded.len() + 16;
        let aad = prefix(body_len);
        let mut tag = [0u8; 16];
        let ct = openssl::symm::encrypt_aead(
            Cipher::aes_128_gcm(),
            &keymat[..16],
            Some(&nonce),
            &aad,
            padded,
            &mut tag,
        )
        .unwrap();
        (aad, [&iv[..], &ct[..], &tag[..]].concat())
    };
    let (aad, body) = build(&[9, 9, 0xee, 0xee, 0xee, 3]);
    assert_eq!(receiver.open(&aad, &body).unwrap(), vec![9, 9]);
    let (aad, body) = build(&[9, 9, 2]);
    assert_eq!(
        receiver.open(&aad, &body).unwrap(),
        Vec::<u8>::new(),
        "all padding"
    );
    let (aad, body) = build(&[9, 9, 3]);
    assert_integrity_failure(receiver.open(&aad, &body), "pad length beyond the data");
}

#[test]
fn oversized_plaintext_is_refused() {
    let transform = SkTransform::new(
        EncrAlg::AesGcm {
            key_bits: 128,
            icv_len: 16,
        },
        None,
    )
    .unwrap();
    let (mut sender, _) = cipher_pair(transform, 1);
    let largest = transform.max_plaintext_len(65535 - 4).unwrap();
    assert!(sender
        .seal(&prefix(0), &vec![0; largest], &mut OpensslRandom)
        .is_ok());
    assert!(matches!(
        sender.seal(&prefix(0), &vec![0; largest + 1], &mut OpensslRandom),
        Err(CryptoError::TooLarge(_))
    ));
    assert_eq!(
        transform.max_plaintext_len(8 + 16),
        None,
        "no room for the pad length octet"
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Arbitrary bytes as an SK body (any length) under every transform:
        /// always the one opaque error, never a panic.
        #[test]
        fn open_of_garbage_is_an_integrity_failure(
            body in proptest::collection::vec(any::<u8>(), 0..200),
            aad in proptest::collection::vec(any::<u8>(), 0..40),
            pick in any::<proptest::sample::Index>(),
        ) {
            let all = transforms();
            let transform = all[pick.index(all.len())];
            let (_, receiver) = cipher_pair(transform, 3);
            prop_assert!(matches!(receiver.open(&aad, &body), Err(CryptoError::IntegrityCheckFailed)));
        }

        /// Round trip for arbitrary payload bytes and prefixes.
        #[test]
        fn seal_then_open_round_trips(
            payloads in proptest::collection::vec(any::<u8>(), 0..300),
            aad in proptest::collection::vec(any::<u8>(), 0..40),
            pick in any::<proptest::sample::Index>(),
        ) {
            let all = transforms();
            let transform = all[pick.index(all.len())];
            let (mut sender, receiver) = cipher_pair(transform, 4);
            let body = sender.seal(&aad, &payloads, &mut counter_rng()).unwrap();
            prop_assert_eq!(body.len(), transform.sealed_len(payloads.len()));
            prop_assert_eq!(receiver.open(&aad, &body).unwrap(), payloads);
        }
    }
}
