//! prf+, key lengths and the order of keys in KEYMAT (RFC 7296 sections
//! 2.13, 2.14, 2.17, 2.18; RFC 9370 section 2.2). Byte-exact agreement with
//! another implementation is in crypto_interop.rs.

use iked_common::crypto::keys::{rekey_skeyseed, skeyseed};
use iked_common::crypto::{
    ChildSaKeys, CryptoError, EncrAlg, IkeSaKeys, IntegAlg, PrfAlg, SkTransform,
};

const PRFS: [PrfAlg; 4] = [
    PrfAlg::HmacSha1,
    PrfAlg::HmacSha256,
    PrfAlg::HmacSha384,
    PrfAlg::HmacSha512,
];

/// prf+ is T1 | T2 | ... with T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n),
/// checked against the PRF itself; shorter outputs are prefixes.
#[test]
fn prf_plus_is_the_section_2_13_chain() {
    let key = b"prf+ key";
    let seed = b"seed bytes: Ni | Nr | SPIi | SPIr";
    for prf in PRFS {
        let n = prf.output_len();
        let mut expected = Vec::new();
        let mut previous = Vec::new();
        for counter in 1u8..=4 {
            let block = prf
                .prf(key, &[&previous[..], seed, &[counter]].concat())
                .unwrap();
            previous = block.expose().to_vec();
            expected.extend_from_slice(&previous);
        }
        let out = prf.prf_plus(key, seed, 4 * n).unwrap();
        assert_eq!(out.expose(), &expected[..], "{prf:?}");
        for len in [0, 1, n - 1, n, n + 1, 3 * n + 5] {
            assert_eq!(
                prf.prf_plus(key, seed, len).unwrap().expose(),
                &expected[..len],
                "{prf:?} {len}"
            );
        }
        let parts = prf
            .prf_plus_parts(key, &[&seed[..5], &seed[5..]], 2 * n)
            .unwrap();
        assert_eq!(parts.expose(), &expected[..2 * n]);
        assert_eq!(PrfAlg::from_iana(prf.iana_id()), Some(prf));
    }
}

/// The counter is one octet: 255 blocks at most.
#[test]
fn prf_plus_stops_at_255_blocks() {
    let prf = PrfAlg::HmacSha256;
    assert_eq!(prf.prf_plus(b"k", b"s", 255 * 32).unwrap().len(), 255 * 32);
    assert!(matches!(
        prf.prf_plus(b"k", b"s", 255 * 32 + 1),
        Err(CryptoError::PrfPlusTooLong(_))
    ));
}

#[test]
fn skeyseed_is_prf_of_nonces_over_shared_secret() {
    let (ni, nr, shared) = ([1u8; 32], [2u8; 48], [3u8; 256]);
    for prf in PRFS {
        let seed = skeyseed(prf, &ni, &nr, &shared).unwrap();
        assert_eq!(
            seed.expose(),
            prf.prf(&[&ni[..], &nr[..]].concat(), &shared)
                .unwrap()
                .expose()
        );
    }
}

/// Lengths and order: SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr.
#[test]
fn ike_sa_keys_lengths_and_order() {
    let (ni, nr, spi_i, spi_r) = ([1u8; 16], [2u8; 16], [3u8; 8], [4u8; 8]);
    let cases = [
        (
            PrfAlg::HmacSha256,
            EncrAlg::AesCbc { key_bits: 256 },
            Some(IntegAlg::HmacSha256_128),
            32,
            32,
        ),
        (
            PrfAlg::HmacSha384,
            EncrAlg::AesCbc { key_bits: 128 },
            Some(IntegAlg::HmacSha384_192),
            16,
            48,
        ),
        (
            PrfAlg::HmacSha512,
            EncrAlg::CamelliaCbc { key_bits: 192 },
            Some(IntegAlg::HmacSha512_256),
            24,
            64,
        ),
        (
            PrfAlg::HmacSha1,
            EncrAlg::AesCbc { key_bits: 128 },
            Some(IntegAlg::HmacSha1_96),
            16,
            20,
        ),
        (
            PrfAlg::HmacSha256,
            EncrAlg::AesGcm {
                key_bits: 128,
                icv_len: 16,
            },
            None,
            20,
            0,
        ),
        (
            PrfAlg::HmacSha256,
            EncrAlg::AesGcm {
                key_bits: 256,
                icv_len: 8,
            },
            None,
            36,
            0,
        ),
        (PrfAlg::HmacSha512, EncrAlg::ChaCha20Poly1305, None, 36, 0),
    ];
    for (prf, encr, integ, encr_len, integ_len) in cases {
        let transform = SkTransform::new(encr, integ).unwrap();
        let seed = [9u8; 32];
        let keys = IkeSaKeys::derive(prf, &seed, &ni, &nr, &spi_i, &spi_r, transform).unwrap();
        let p = prf.key_len();
        let lengths = [p, integ_len, integ_len, encr_len, encr_len, p, p];
        let got = [
            &keys.sk_d,
            &keys.sk_ai,
            &keys.sk_ar,
            &keys.sk_ei,
            &keys.sk_er,
            &keys.sk_pi,
            &keys.sk_pr,
        ];
        let keymat = prf
            .prf_plus(
                &seed,
                &[&ni[..], &nr[..], &spi_i[..], &spi_r[..]].concat(),
                lengths.iter().sum(),
            )
            .unwrap();
        let mut pos = 0;
        for (key, len) in got.iter().zip(lengths) {
            assert_eq!(
                key.expose(),
                &keymat.expose()[pos..pos + len],
                "{prf:?} {encr:?}"
            );
            pos += len;
        }
        // The SK ciphers accept these keys, in the right roles.
        let (out_i, in_i) = keys.sk_ciphers(transform, true).unwrap();
        let (out_r, in_r) = keys.sk_ciphers(transform, false).unwrap();
        let mut out_i = out_i;
        let mut out_r = out_r;
        let aad = [0u8; 32];
        let from_i = out_i
            .seal(&aad, b"request", &mut iked_common::crypto::OpensslRandom)
            .unwrap();
        assert_eq!(in_r.open(&aad, &from_i).unwrap(), b"request");
        assert!(
            in_i.open(&aad, &from_i).is_err(),
            "the initiator cannot open its own direction"
        );
        let from_r = out_r
            .seal(&aad, b"response", &mut iked_common::crypto::OpensslRandom)
            .unwrap();
        assert_eq!(in_i.open(&aad, &from_r).unwrap(), b"response");
    }
}

/// KEYMAT order (section 2.17): encr_i | integ_i | encr_r | integ_r; PFS
/// puts g^ir before the nonces; RFC 9370 puts further secrets after them.
#[test]
fn child_keymat_order_and_seeds() {
    let prf = PrfAlg::HmacSha256;
    let (sk_d, ni, nr) = ([7u8; 32], [1u8; 32], [2u8; 32]);
    let (g_ir, sk1, sk2) = ([3u8; 256], [4u8; 32], [5u8; 1568]);
    let encr = EncrAlg::AesCbc { key_bits: 256 };
    let integ = Some(IntegAlg::HmacSha512_256);
    for (shared, seed) in [
        (vec![], [&ni[..], &nr[..]].concat()),
        (vec![&g_ir[..]], [&g_ir[..], &ni[..], &nr[..]].concat()),
        (
            vec![&g_ir[..], &sk1[..], &sk2[..]],
            [&g_ir[..], &ni[..], &nr[..], &sk1[..], &sk2[..]].concat(),
        ),
    ] {
        let keys = ChildSaKeys::derive(prf, &sk_d, &shared, &ni, &nr, encr, integ).unwrap();
        let keymat = prf.prf_plus(&sk_d, &seed, 2 * (32 + 64)).unwrap();
        let k = keymat.expose();
        assert_eq!(keys.encr_i.expose(), &k[..32]);
        assert_eq!(keys.integ_i.expose(), &k[32..96]);
        assert_eq!(keys.encr_r.expose(), &k[96..128]);
        assert_eq!(keys.integ_r.expose(), &k[128..192]);
    }
    // AEAD: no integrity keys, salt included.
    let gcm = ChildSaKeys::derive(
        prf,
        &sk_d,
        &[],
        &ni,
        &nr,
        EncrAlg::AesGcm {
            key_bits: 256,
            icv_len: 16,
        },
        None,
    )
    .unwrap();
    assert_eq!(
        (
            gcm.encr_i.len(),
            gcm.integ_i.len(),
            gcm.encr_r.len(),
            gcm.integ_r.len()
        ),
        (36, 0, 36, 0)
    );
    let by_len = ChildSaKeys::derive_with_lengths(prf, &sk_d, &[], &ni, &nr, 36, 0).unwrap();
    assert_eq!(by_len.encr_r.expose(), gcm.encr_r.expose());
}

/// Section 2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr); RFC 9370
/// section 2.2.4 appends further shared secrets after the nonces.
#[test]
fn rekeyed_skeyseed() {
    let (sk_d, ni, nr, g_ir, sk1) = ([7u8; 48], [1u8; 32], [2u8; 32], [3u8; 97], [4u8; 32]);
    let prf = PrfAlg::HmacSha384;
    let seed = rekey_skeyseed(prf, &sk_d, &[&g_ir], &ni, &nr).unwrap();
    assert_eq!(
        seed.expose(),
        prf.prf(&sk_d, &[&g_ir[..], &ni[..], &nr[..]].concat())
            .unwrap()
            .expose()
    );
    let hybrid = rekey_skeyseed(prf, &sk_d, &[&g_ir, &sk1], &ni, &nr).unwrap();
    assert_eq!(
        hybrid.expose(),
        prf.prf(&sk_d, &[&g_ir[..], &ni[..], &nr[..], &sk1[..]].concat())
            .unwrap()
            .expose()
    );
}

#[test]
fn key_debug_output_shows_lengths_only() {
    let transform = SkTransform::new(
        EncrAlg::AesGcm {
            key_bits: 128,
            icv_len: 16,
        },
        None,
    )
    .unwrap();
    let keys = IkeSaKeys::derive(
        PrfAlg::HmacSha256,
        &[0xab; 32],
        &[1],
        &[2],
        &[3; 8],
        &[4; 8],
        transform,
    )
    .unwrap();
    let shown = format!("{keys:?}");
    assert!(shown.contains("sk_ei: SecretBytes(20 bytes)"), "{shown}");
    let hex_of_sk_ei = hex::encode(keys.sk_ei.expose());
    assert!(!shown.contains(&hex_of_sk_ei[..8]), "{shown}");
    assert!(!shown.contains('['), "no byte arrays printed: {shown}");
}
