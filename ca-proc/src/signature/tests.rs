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

/// Hex as the RFCs print it: spaces, newlines and a "0000:" offset column
/// are ignored.
fn unhex(text: &str) -> Vec<u8> {
    let digits: String = text
        .lines()
        .map(|line| match line.split_once(':') {
            Some((_, rest)) => rest,
            None => line,
        })
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    hex::decode(digits).expect("hex")
}

// ---------------------------------------------------------------------------
// RFC 4754 §8: the ECDSA test vectors (message "abc").

struct Rfc4754Vector {
    method: u8,
    nid: openssl::nid::Nid,
    gwx: &'static str,
    gwy: &'static str,
    r: &'static str,
    s: &'static str,
    /// The whole AUTH payload the RFC prints.
    payload: &'static str,
}

const RFC4754_VECTORS: &[Rfc4754Vector] = &[
    Rfc4754Vector {
        method: 9,
        nid: openssl::nid::Nid::X9_62_PRIME256V1,
        gwx: "2442A5CC 0ECD015F A3CA31DC 8E2BBC70 BF42D60C BCA20085 E0822CB0 4235E970",
        gwy: "6FC98BD7 E50211A4 A27102FA 3549DF79 EBCB4BF2 46B80945 CDDFE7D5 09BBFD7D",
        r: "CB28E099 9B9C7715 FD0A80D8 E47A7707 9716CBBF 917DD72E 97566EA1 C066957C",
        s: "86FA3BB4 E26CAD5B F90B7F81 899256CE 7594BB1E A0C89212 748BFF3B 3D5B0315",
        payload: "00000048 00090000 CB28E099 9B9C7715 FD0A80D8 E47A7707 9716CBBF 917DD72E
                  97566EA1 C066957C 86FA3BB4 E26CAD5B F90B7F81 899256CE 7594BB1E A0C89212
                  748BFF3B 3D5B0315",
    },
    Rfc4754Vector {
        method: 10,
        nid: openssl::nid::Nid::SECP384R1,
        gwx: "96281BF8 DD5E0525 CA049C04 8D345D30 82968D10 FEDF5C5A CA0C64E6 465A97EA
              5CE10C9D FEC21797 41571072 1F437922",
        gwy: "447688BA 94708EB6 E2E4D59F 6AB6D7ED FF9301D2 49FE49C3 3096655F 5D502FAD
              3D383B91 C5E7EDAA 2B714CC9 9D5743CA",
        r: "FB017B91 4E291494 32D8BAC2 9A514640 B46F53DD AB2C6994 8084E293 0F1C8F7E
            08E07C9C 63F2D21A 07DCB56A 6AF56EB3",
        s: "B263A130 5E057F98 4D38726A 1B468741 09F417BC A112674C 528262A4 0A629AF1
            CBB9F516 CE0FA7D2 FF630863 A00E8B9F",
        payload: "00000068 000A0000 FB017B91 4E291494 32D8BAC2 9A514640 B46F53DD AB2C6994
                  8084E293 0F1C8F7E 08E07C9C 63F2D21A 07DCB56A 6AF56EB3 B263A130 5E057F98
                  4D38726A 1B468741 09F417BC A112674C 528262A4 0A629AF1 CBB9F516 CE0FA7D2
                  FF630863 A00E8B9F",
    },
    Rfc4754Vector {
        method: 11,
        nid: openssl::nid::Nid::SECP521R1,
        gwx: "0151518F 1AF0F563 517EDD54 85190DF9 5A4BF57B 5CBA4CF2 A9A3F647 4725A35F
              7AFE0A6D DEB8BEDB CD6A197E 592D4018 8901CECD 650699C9 B5E456AE A5ADD190
              52A8",
        gwy: "006F3B14 2EA1BFFF 7E2837AD 44C9E4FF 6D2D34C7 3184BBAD 90026DD5 E6E85317
              D9DF45CA D7803C6C 20035B2F 3FF63AFF 4E1BA64D 1C077577 DA3F4286 C58F0AEA
              E643",
        r: "0154FD38 36AF92D0 DCA57DD5 341D3053 988534FD E8318FC6 AAAAB68E 2E6F4339
            B19F2F28 1A7E0B22 C269D93C F8794A92 78880ED7 DBB8D936 2CAEACEE 54432055
            2251",
        s: "017705A7 030290D1 CEB605A9 A1BB03FF 9CDD521E 87A696EC 926C8C10 C8362DF4
            97536710 1F67D1CF 9BCCBF2F 3D239534 FA509E70 AAC851AE 01AAC68D 62F86647
            2660",
        payload: "0000008C 000B0000 0154FD38 36AF92D0 DCA57DD5 341D3053 988534FD E8318FC6
                  AAAAB68E 2E6F4339 B19F2F28 1A7E0B22 C269D93C F8794A92 78880ED7 DBB8D936
                  2CAEACEE 54432055 22510177 05A70302 90D1CEB6 05A9A1BB 03FF9CDD 521E87A6
                  96EC926C 8C10C836 2DF49753 67101F67 D1CF9BCC BF2F3D23 9534FA50 9E70AAC8
                  51AE01AA C68D62F8 66472660",
    },
];

fn rfc4754_public_key(vector: &Rfc4754Vector) -> PKey<Public> {
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    let group = EcGroup::from_curve_name(vector.nid).expect("curve");
    let x = BigNum::from_slice(&unhex(vector.gwx)).expect("x");
    let y = BigNum::from_slice(&unhex(vector.gwy)).expect("y");
    let key = EcKey::from_public_key_affine_coordinates(&group, &x, &y).expect("point");
    PKey::from_ec_key(key).expect("PKey")
}

#[test]
fn rfc4754_vectors_verify_as_r_concatenated_with_s() {
    for vector in RFC4754_VECTORS {
        let payload = unhex(vector.payload);
        // The generic payload header gives the payload's length; then the
        // method and three reserved octets (RFC 7296 §3.8), and the data.
        // RFC 4754 prints them as "00 MM 00 00", the method one octet late
        // (a misprint: §3.8 puts it first); the data after them is the
        // same either way.
        assert_eq!(
            usize::from(u16::from_be_bytes([payload[2], payload[3]])),
            payload.len()
        );
        assert_eq!(payload[4..8], [0, vector.method, 0, 0]);
        let auth_data = &payload[8..];
        // RFC 4754 §7: r then s, each as wide as the field, not DER.
        let rs = [unhex(vector.r), unhex(vector.s)].concat();
        assert_eq!(auth_data, &rs[..], "method {}", vector.method);
        let curve = match vector.method {
            9 => Curve::P256,
            10 => Curve::P384,
            _ => Curve::P521,
        };
        assert_eq!(auth_data.len(), 2 * curve.field_len());

        let key = rfc4754_public_key(vector);
        assert_eq!(key_type(&key), Ok(KeyType::Ecdsa(curve)));
        let forced = match vector.method {
            9 => SignatureAuth::Ecdsa256,
            10 => SignatureAuth::Ecdsa384,
            _ => SignatureAuth::Ecdsa521,
        };
        for accepted in [SignatureAuth::Any, forced] {
            verify(&key, accepted, vector.method, auth_data, b"abc")
                .unwrap_or_else(|e| panic!("RFC 4754 method {}: {e}", vector.method));
        }
        // The same signature over other octets, or with r and s swapped,
        // or as DER instead of r||s, is refused.
        assert!(matches!(
            verify(&key, SignatureAuth::Any, vector.method, auth_data, b"abd"),
            Err(SignatureError::BadSignature(_))
        ));
        let swapped = [unhex(vector.s), unhex(vector.r)].concat();
        assert!(matches!(
            verify(&key, SignatureAuth::Any, vector.method, &swapped, b"abc"),
            Err(SignatureError::BadSignature(_))
        ));
        let der = openssl::ecdsa::EcdsaSig::from_private_components(
            openssl::bn::BigNum::from_slice(&unhex(vector.r)).expect("r"),
            openssl::bn::BigNum::from_slice(&unhex(vector.s)).expect("s"),
        )
        .and_then(|sig| sig.to_der())
        .expect("DER");
        assert!(matches!(
            verify(&key, SignatureAuth::Any, vector.method, &der, b"abc"),
            Err(SignatureError::Malformed(_))
        ));
        // The vector's key with another curve's method is a mismatch.
        for other in [9u8, 10, 11].into_iter().filter(|&m| m != vector.method) {
            let error = verify(&key, SignatureAuth::Any, other, auth_data, b"abc")
                .expect_err("another curve's method");
            assert_eq!(
                error,
                SignatureError::KeyMismatch(format!(
                    "AUTH method {other} ({}) but the peer's key is ECDSA {}",
                    method_name(other),
                    curve.name()
                ))
            );
        }
    }
}

#[test]
fn our_ecdsa_signatures_are_r_and_s_of_the_field_width() {
    use openssl::bn::BigNum;
    use openssl::ecdsa::EcdsaSig;
    use openssl::hash::hash;
    for (kind, wanted, curve) in [
        (KeyKind::P256, SignatureAuth::Ecdsa256, Curve::P256),
        (KeyKind::P384, SignatureAuth::Ecdsa384, Curve::P384),
        (KeyKind::P521, SignatureAuth::Ecdsa521, Curve::P521),
    ] {
        let key = new_key(kind);
        let ec = key.ec_key().expect("EC");
        let (method, digest_hash) = curve.method();
        // Enough signatures that some r or s has leading zero octets
        // (P-521's top octet is at most 0x01; 32 runs of P-256/384 give a
        // leading zero with probability about 12%): the width is fixed.
        for _ in 0..32 {
            let signed = sign(&key, wanted, &[], OCTETS).expect("sign");
            assert_eq!(signed.auth_method, method);
            assert_eq!(signed.auth_data.len(), 2 * curve.field_len());
            let (r, s) = signed.auth_data.split_at(curve.field_len());
            // Checked with the digest directly, not through our verify.
            let sig = EcdsaSig::from_private_components(
                BigNum::from_slice(r).expect("r"),
                BigNum::from_slice(s).expect("s"),
            )
            .expect("sig");
            let digest = hash(digest_hash.digest(), OCTETS).expect("hash");
            assert!(sig.verify(&digest, &ec).expect("verify"), "{kind:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// RFC 7427 Appendix A (and RFC 8420 A.1): the AlgorithmIdentifiers.

/// The objects as the RFCs print them, with what they identify (or, for
/// those we refuse, the start of the reason).
const RFC7427_OBJECTS: &[(&str, &str, Result<SignatureAlgorithm, &str>)] = &[
    (
        "A.1.1 sha1WithRSAEncryption",
        "0000: 300d 0609 2a86 4886 f70d 0101 0505 00",
        Err("sha1WithRSAEncryption inside AUTH method 14: SHA-1 is refused"),
    ),
    (
        "A.1.2 sha256WithRSAEncryption",
        "0000: 300d 0609 2a86 4886 f70d 0101 0b05 00",
        Ok(SignatureAlgorithm::RsaPkcs1(Hash::Sha256)),
    ),
    (
        "A.1.3 sha384WithRSAEncryption",
        "0000: 300d 0609 2a86 4886 f70d 0101 0c05 00",
        Ok(SignatureAlgorithm::RsaPkcs1(Hash::Sha384)),
    ),
    (
        "A.1.4 sha512WithRSAEncryption",
        "0000: 300d 0609 2a86 4886 f70d 0101 0d05 00",
        Ok(SignatureAlgorithm::RsaPkcs1(Hash::Sha512)),
    ),
    (
        "A.2.1 dsa-with-sha1",
        "0000: 3009 0607 2a86 48ce 3804 03",
        Err("dsa-with-sha1 inside AUTH method 14: SHA-1 is refused"),
    ),
    (
        "A.2.2 dsa-with-sha256",
        "0000: 300b 0609 6086 4801 6503 0403 02",
        Err("unsupported: DSA signatures"),
    ),
    (
        "A.3.1 ecdsa-with-sha1",
        "0000: 3009 0607 2a86 48ce 3d04 01",
        Err("ecdsa-with-SHA1 inside AUTH method 14: SHA-1 is refused"),
    ),
    (
        "A.3.2 ecdsa-with-sha256",
        "0000: 300a 0608 2a86 48ce 3d04 0302",
        Ok(SignatureAlgorithm::Ecdsa(Hash::Sha256)),
    ),
    (
        "A.3.3 ecdsa-with-sha384",
        "0000: 300a 0608 2a86 48ce 3d04 0303",
        Ok(SignatureAlgorithm::Ecdsa(Hash::Sha384)),
    ),
    (
        "A.3.4 ecdsa-with-sha512",
        "0000: 300a 0608 2a86 48ce 3d04 0304",
        Ok(SignatureAlgorithm::Ecdsa(Hash::Sha512)),
    ),
    (
        "A.4.1 RSASSA-PSS with empty parameters",
        "0000: 300d 0609 2a86 4886 f70d 0101 0a30 00",
        Err("RSASSA-PSS with SHA-1 inside AUTH method 14"),
    ),
    (
        "A.4.2 RSASSA-PSS with default parameters",
        "0000: 303e 0609 2a86 4886 f70d 0101 0a30 31a0
         0010: 0b30 0906 052b 0e03 021a 0500 a118 3016
         0020: 0609 2a86 4886 f70d 0101 0830 0906 052b
         0030: 0e03 021a 0500 a203 0201 14a3 0302 0101",
        Err("RSASSA-PSS with SHA-1 inside AUTH method 14"),
    ),
    (
        "A.4.3 RSASSA-PSS with SHA-256",
        "0000: 3046 0609 2a86 4886 f70d 0101 0a30 39a0
         0010: 0f30 0d06 0960 8648 0165 0304 0201 0500
         0020: a11c 301a 0609 2a86 4886 f70d 0101 0830
         0030: 0d06 0960 8648 0165 0304 0201 0500 a203
         0040: 0201 20a3 0302 0101",
        Ok(SignatureAlgorithm::RsaPss(Hash::Sha256)),
    ),
    (
        "RFC 8420 A.1 id-Ed25519",
        "3005 0603 2B65 70",
        Ok(SignatureAlgorithm::Ed25519),
    ),
    (
        "RFC 8420 A.2 id-Ed448",
        "3005 0603 2B65 71",
        Err("unsupported: signature algorithm Ed448"),
    ),
];

#[test]
fn rfc7427_appendix_a_objects_byte_for_byte() {
    for &(name, text, expected) in RFC7427_OBJECTS {
        let der = unhex(text);
        match expected {
            Ok(algorithm) => {
                assert_eq!(algorithm_id::parse(&der), Ok(algorithm), "{name}");
                // What we emit for it is the RFC's object, octet for octet.
                assert_eq!(algorithm.der(), &der[..], "{name}");
            }
            Err(reason) => {
                let error = algorithm_id::parse(&der).expect_err(name);
                assert!(
                    error.to_string().starts_with(reason),
                    "{name}: {error} (expected {reason:?})"
                );
            }
        }
    }
}

#[test]
fn what_we_emit_in_method_14_is_a_length_octet_and_the_rfc_object() {
    let cases = [
        (
            KeyKind::Rsa(2048),
            &[2u16][..],
            "A.4.3 RSASSA-PSS with SHA-256",
        ),
        (KeyKind::P256, &[2], "A.3.2 ecdsa-with-sha256"),
        (KeyKind::P384, &[3], "A.3.3 ecdsa-with-sha384"),
        (KeyKind::P521, &[4], "A.3.4 ecdsa-with-sha512"),
        (KeyKind::Ed25519, &[5], "RFC 8420 A.1 id-Ed25519"),
    ];
    for (kind, hashes, name) in cases {
        let object = RFC7427_OBJECTS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, text, _)| unhex(text))
            .expect("object");
        let signed = sign(&new_key(kind), SignatureAuth::Rfc7427, hashes, OCTETS).expect("sign");
        assert_eq!(signed.auth_method, AUTH_DIGITAL_SIGNATURE);
        assert_eq!(usize::from(signed.auth_data[0]), object.len(), "{name}");
        assert_eq!(&signed.auth_data[1..=object.len()], &object[..], "{name}");
    }
    // RFC 7427 B.1: how the AUTH payload of method 14 starts (with the
    // sha1WithRSAEncryption object, which we refuse).
    let b1 = unhex("0e00 0000 0f30 0d06 092a 8648 86f7 0d01 0105 0500");
    let key = public(&rsa());
    let mut auth_data = b1[4..].to_vec();
    auth_data.extend([0u8; 256]);
    let error = verify(&key, SignatureAuth::Any, b1[0], &auth_data, OCTETS).expect_err("SHA-1");
    assert!(matches!(error, SignatureError::Refused(_)), "{error}");
}

#[test]
fn rsassa_pss_sha384_and_sha512_objects_follow_the_sha256_one() {
    // RFC 7427 prints only SHA-256; the others differ in the hash OID's
    // last arc (id-sha384 = 2, id-sha512 = 3) and the salt (48, 64).
    let sha256 = SignatureAlgorithm::RsaPss(Hash::Sha256).der().to_vec();
    for (hash, arc, salt) in [(Hash::Sha384, 0x02u8, 48u8), (Hash::Sha512, 0x03, 64)] {
        let mut expected = sha256.clone();
        expected[0x1d] = arc; // hashAlgorithm's OID, last octet
        expected[0x3b] = arc; // MGF1's hash OID, last octet
        expected[0x42] = salt;
        let der = SignatureAlgorithm::RsaPss(hash).der();
        assert_eq!(der, &expected[..], "{hash:?}");
        assert_eq!(
            algorithm_id::parse(der),
            Ok(SignatureAlgorithm::RsaPss(hash))
        );
    }
}

/// The dual encodings the specifications allow, which peers send.
#[test]
fn the_allowed_alternative_encodings_are_accepted() {
    // strongSwan: RSASSA-PSS parameters without the default trailerField.
    let pss = SignatureAlgorithm::RsaPss(Hash::Sha256).der();
    let mut without_trailer = pss[..pss.len() - 5].to_vec();
    without_trailer[1] -= 5;
    without_trailer[14] -= 5;
    assert_eq!(
        algorithm_id::parse(&without_trailer),
        Ok(SignatureAlgorithm::RsaPss(Hash::Sha256))
    );
    // RFC 4055 §2.1: hash parameters absent instead of NULL.
    let absent_nulls = unhex(
        "3042 0609 2a86 4886 f70d 0101 0a30 35a0 0d30 0b06 0960 8648 0165 0304 0201
         a11a 3018 0609 2a86 4886 f70d 0101 0830 0b06 0960 8648 0165 0304 0201
         a203 0201 20a3 0302 0101",
    );
    assert_eq!(
        algorithm_id::parse(&absent_nulls),
        Ok(SignatureAlgorithm::RsaPss(Hash::Sha256))
    );
    // RFC 4055 §5: sha256WithRSAEncryption with its NULL omitted.
    let no_null = unhex("300b 0609 2a86 4886 f70d 0101 0b");
    assert_eq!(
        algorithm_id::parse(&no_null),
        Ok(SignatureAlgorithm::RsaPkcs1(Hash::Sha256))
    );
}

/// RSASSA-PSS parameters that are not "SHA-x, MGF1 with SHA-x, salt x".
#[test]
fn pss_parameters_that_do_not_match_are_refused() {
    let pss = SignatureAlgorithm::RsaPss(Hash::Sha256).der().to_vec();
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut der = pss.clone();
        edit(&mut der);
        algorithm_id::parse(&der)
    };
    let cases: Vec<(&str, Result<SignatureAlgorithm, SignatureError>, &str)> = vec![
        (
            "salt 20",
            with(&|d| d[0x42] = 20),
            "RSASSA-PSS parameters do not match: salt of 20 octets with SHA256 (we require 32)",
        ),
        (
            "MGF1 with SHA-512",
            with(&|d| d[0x3b] = 0x03),
            "RSASSA-PSS parameters do not match: hash SHA256 but MGF1 with SHA512",
        ),
        (
            "hash SHA-384 with salt 32",
            with(&|d| {
                d[0x1d] = 0x02;
                d[0x3b] = 0x02
            }),
            "RSASSA-PSS parameters do not match: salt of 32 octets with SHA384 (we require 48)",
        ),
        (
            "trailerField 2",
            with(&|d| d[0x47] = 2),
            "RSASSA-PSS trailerField 2 (RFC 4055: only 1)",
        ),
        (
            "MGF other than MGF1",
            with(&|d| d[0x2e] = 0x09),
            "unsupported: RSASSA-PSS mask generation function 1.2.840.113549.1.1.9, not MGF1",
        ),
        (
            "salt as a negative INTEGER",
            with(&|d| d[0x42] = 0xa0),
            "malformed AUTH data: negative INTEGER for the RSASSA-PSS saltLength",
        ),
        (
            "fields out of order ([2] tagged [3], then [3])",
            with(&|d| d[0x3e] = 0xa3),
            "malformed AUTH data: RSASSA-PSS parameter 0xa3 repeated or out of order",
        ),
    ];
    for (name, result, reason) in cases {
        match result {
            Err(error) => assert_eq!(error.to_string(), reason, "{name}"),
            Ok(algorithm) => panic!("{name}: accepted as {algorithm:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// RFC 8032 §7.1: Ed25519 is deterministic, our signature is the vector's.

#[test]
fn rfc8032_ed25519_vectors_through_method_14() {
    let vectors = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac
             18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];
    for (secret, public_key, message, signature) in vectors {
        let key = PKey::private_key_from_raw_bytes(&unhex(secret), openssl::pkey::Id::ED25519)
            .expect("Ed25519 secret");
        let public_key =
            PKey::public_key_from_raw_bytes(&unhex(public_key), openssl::pkey::Id::ED25519)
                .expect("Ed25519 public");
        let message = unhex(message);
        let signed = sign(&key, SignatureAuth::Any, &[2, 5], &message).expect("sign");
        assert_eq!(signed.auth_method, AUTH_DIGITAL_SIGNATURE);
        let expected = [&[7u8][..], &unhex("3005 0603 2B65 70"), &unhex(signature)].concat();
        assert_eq!(hex::encode(&signed.auth_data), hex::encode(&expected));
        verify(&public_key, SignatureAuth::Rfc7427, 14, &expected, &message).expect("verify");
        verify(&public_key, SignatureAuth::Any, 14, &expected, b"other").expect_err("other");
    }
}

// ---------------------------------------------------------------------------
// Keys that do not fit the method: refused with the reason, never a match
// (CVE-2020-16088).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
    P521,
    Ed25519,
}

fn family(kind: KeyKind) -> Family {
    match kind {
        KeyKind::Rsa(_) => Family::Rsa,
        KeyKind::P256 => Family::P256,
        KeyKind::P384 => Family::P384,
        KeyKind::P521 => Family::P521,
        KeyKind::Ed25519 => Family::Ed25519,
    }
}

/// A method-14 AUTH data with sha256WithRSAEncryption, made with OpenSSL
/// directly (we sign PSS, but accept PKCS#1 v1.5 with SHA-2).
fn rsa_pkcs1_sha256_method_14(key: &PKey<Private>, octets: &[u8]) -> Vec<u8> {
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key).expect("signer");
    let signature = signer.sign_oneshot_to_vec(octets).expect("sign");
    let der = SignatureAlgorithm::RsaPkcs1(Hash::Sha256).der();
    [&[der.len() as u8][..], der, &signature].concat()
}

#[test]
fn every_key_that_does_not_fit_the_method_is_refused_with_its_reason() {
    let kinds = [
        KeyKind::Rsa(2048),
        KeyKind::P256,
        KeyKind::P384,
        KeyKind::P521,
        KeyKind::Ed25519,
    ];
    // Valid signatures, each made by a key of its family, with the
    // families whose keys may check it (which then fail on the signature).
    struct Case {
        name: &'static str,
        signer: KeyKind,
        method: u8,
        auth_data: Vec<u8>,
        fits: &'static [Family],
    }
    let mut cases = Vec::new();
    for signer in kinds {
        let key = new_key(signer);
        let mut add = |name, signed: Signed, fits| {
            cases.push(Case {
                name,
                signer,
                method: signed.auth_method,
                auth_data: signed.auth_data,
                fits,
            })
        };
        match family(signer) {
            Family::Rsa => {
                add(
                    "method 1",
                    sign(&key, SignatureAuth::Rsa, &[], OCTETS).unwrap(),
                    &[Family::Rsa],
                );
                add(
                    "14 RSASSA-PSS",
                    sign(&key, SignatureAuth::Rfc7427, &[2], OCTETS).unwrap(),
                    &[Family::Rsa],
                );
                add(
                    "14 sha256WithRSAEncryption",
                    Signed {
                        auth_method: 14,
                        auth_data: rsa_pkcs1_sha256_method_14(&key, OCTETS),
                    },
                    &[Family::Rsa],
                );
            }
            Family::P256 | Family::P384 | Family::P521 => {
                let f = family(signer);
                add(
                    "classic ECDSA",
                    sign(&key, SignatureAuth::Any, &[], OCTETS).unwrap(),
                    match f {
                        Family::P256 => &[Family::P256],
                        Family::P384 => &[Family::P384],
                        _ => &[Family::P521],
                    },
                );
                add(
                    "14 ECDSA",
                    sign(&key, SignatureAuth::Rfc7427, &[2, 3, 4], OCTETS).unwrap(),
                    &[Family::P256, Family::P384, Family::P521],
                );
            }
            Family::Ed25519 => add(
                "14 Ed25519",
                sign(&key, SignatureAuth::Any, &[5], OCTETS).unwrap(),
                &[Family::Ed25519],
            ),
        }
    }
    let mut mismatches = 0;
    for checker in kinds {
        // A fresh key: even one of the right family did not sign this.
        let key = public(&new_key(checker));
        let key_name = key_type(&key).expect("key type").to_string();
        for case in &cases {
            let result = verify(
                &key,
                SignatureAuth::Any,
                case.method,
                &case.auth_data,
                OCTETS,
            );
            let what = format!(
                "{} by {:?} checked with {checker:?}",
                case.name, case.signer
            );
            if case.fits.contains(&family(checker)) {
                assert!(
                    matches!(result, Err(SignatureError::BadSignature(_))),
                    "{what}: {result:?}"
                );
            } else {
                mismatches += 1;
                match result {
                    Err(SignatureError::KeyMismatch(reason)) => {
                        assert!(reason.starts_with(&format!("AUTH method {} (", case.method)));
                        assert!(
                            reason.ends_with(&format!("but the peer's key is {key_name}")),
                            "{what}: {reason}"
                        );
                    }
                    other => panic!("{what}: {other:?}"),
                }
            }
        }
    }
    assert_eq!(mismatches, 34);
}

#[test]
fn mismatch_reasons_name_method_algorithm_and_key() {
    let rsa_key = rsa();
    let p256 = new_key(KeyKind::P256);
    let ed = new_key(KeyKind::Ed25519);
    let pss = sign(&rsa_key, SignatureAuth::Rfc7427, &[2], OCTETS).unwrap();
    let ecdsa14 = sign(&p256, SignatureAuth::Rfc7427, &[2], OCTETS).unwrap();
    let ed14 = sign(&ed, SignatureAuth::Rfc7427, &[5], OCTETS).unwrap();
    let rsa1 = sign(&rsa_key, SignatureAuth::Rsa, &[], OCTETS).unwrap();
    let cases = [
        (
            &p256,
            &pss,
            "AUTH method 14 (Digital Signature) with RSASSA-PSS with SHA256 but the peer's key is ECDSA P-256",
        ),
        (
            &rsa_key,
            &ecdsa14,
            "AUTH method 14 (Digital Signature) with ecdsa-with-SHA256 but the peer's key is RSA (2048 bits)",
        ),
        (
            &rsa_key,
            &ed14,
            "AUTH method 14 (Digital Signature) with Ed25519 but the peer's key is RSA (2048 bits)",
        ),
        (
            &ed,
            &ecdsa14,
            "AUTH method 14 (Digital Signature) with ecdsa-with-SHA256 but the peer's key is Ed25519",
        ),
        (
            &ed,
            &rsa1,
            "AUTH method 1 (RSA Digital Signature with SHA-1) but the peer's key is Ed25519",
        ),
        (
            &p256,
            &rsa1,
            "AUTH method 1 (RSA Digital Signature with SHA-1) but the peer's key is ECDSA P-256",
        ),
    ];
    for (key, signed, reason) in cases {
        let error = verify(
            &public(key),
            SignatureAuth::Any,
            signed.auth_method,
            &signed.auth_data,
            OCTETS,
        )
        .expect_err(reason);
        assert_eq!(error, SignatureError::KeyMismatch(reason.to_string()));
        assert_eq!(error.to_string(), reason);
    }
}

fn rsa_pss_only_key() -> PKey<Private> {
    let mut ctx = openssl::pkey_ctx::PkeyCtx::new_id(openssl::pkey::Id::RSA_PSS).expect("ctx");
    ctx.keygen_init().expect("keygen");
    ctx.set_rsa_keygen_bits(2048).expect("bits");
    ctx.keygen().expect("RSA-PSS key")
}

#[test]
fn an_rsa_pss_key_signs_and_verifies_only_pss() {
    let key = rsa_pss_only_key();
    assert_eq!(key_type(&key), Ok(KeyType::RsaPss { bits: 2048 }));
    let signed = sign(&key, SignatureAuth::Any, ALL_HASHES, OCTETS).expect("sign");
    assert_eq!(signed.auth_method, 14);
    let public_key = public(&key);
    verify(
        &public_key,
        SignatureAuth::Any,
        14,
        &signed.auth_data,
        OCTETS,
    )
    .expect("verify");
    // No method 1 and no PKCS#1 v1.5 for a key restricted to PSS.
    assert_eq!(
        sign(&key, SignatureAuth::Any, &[], OCTETS),
        Err(SignatureError::Refused(
            "AUTH method 14 (Digital Signature) with our RSA-PSS (2048 bits) key needs a hash \
             algorithm we share, but the peer sent no SIGNATURE_HASH_ALGORITHMS"
                .into()
        ))
    );
    assert!(matches!(
        sign(&key, SignatureAuth::Rsa, &[], OCTETS),
        Err(SignatureError::KeyMismatch(_))
    ));
    let other = rsa();
    let rsa1 = sign(&other, SignatureAuth::Rsa, &[], OCTETS).unwrap();
    assert_eq!(
        verify(&public_key, SignatureAuth::Any, 1, &rsa1.auth_data, OCTETS),
        Err(SignatureError::KeyMismatch(
            "AUTH method 1 (RSA Digital Signature with SHA-1) but the peer's key is RSA-PSS (2048 bits)"
                .into()
        ))
    );
    let pkcs1 = rsa_pkcs1_sha256_method_14(&other, OCTETS);
    assert!(matches!(
        verify(&public_key, SignatureAuth::Any, 14, &pkcs1, OCTETS),
        Err(SignatureError::KeyMismatch(_))
    ));
}

#[test]
fn keys_of_no_auth_method_are_refused() {
    let x25519 = PKey::generate_x25519().expect("X25519");
    let ed448 = PKey::generate_ed448().expect("Ed448");
    let k1 = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP256K1).expect("k1"),
    )
    .and_then(PKey::from_ec_key)
    .expect("secp256k1");
    for (name, key, reason) in [
        (
            "X25519",
            x25519,
            "unsupported: key type X25519 (only RSA, ECDSA and Ed25519)",
        ),
        (
            "Ed448",
            ed448,
            "unsupported: Ed448 keys (we implement Ed25519 only)",
        ),
        (
            "secp256k1",
            k1,
            "unsupported: EC key on curve secp256k1 (only P-256, P-384, P-521)",
        ),
    ] {
        let error = sign(&key, SignatureAuth::Any, ALL_HASHES, OCTETS).expect_err(name);
        assert_eq!(error.to_string(), reason, "{name}");
        let error =
            verify(&public(&key), SignatureAuth::Any, 14, &[7; 80], OCTETS).expect_err(name);
        assert_eq!(error.to_string(), reason, "{name}");
    }
}

// ---------------------------------------------------------------------------
// The policy's `ikeauth`: what sign() chooses, what verify() accepts.

#[test]
fn sign_chooses_the_method_from_ikeauth_key_and_peer_hashes() {
    let rsa_key = rsa();
    let p256 = new_key(KeyKind::P256);
    let p384 = new_key(KeyKind::P384);
    let p521 = new_key(KeyKind::P521);
    let ed = new_key(KeyKind::Ed25519);
    let method14 = |key: &PKey<Private>, hashes: &[u16]| {
        let signed = sign(key, SignatureAuth::Any, hashes, OCTETS).expect("sign");
        assert_eq!(signed.auth_method, 14);
        let der_len = usize::from(signed.auth_data[0]);
        algorithm_id::parse(&signed.auth_data[1..=der_len]).expect("our object")
    };
    // RSA: PSS (RFC 8247 §3.2), SHA-256 first.
    assert_eq!(
        method14(&rsa_key, ALL_HASHES),
        SignatureAlgorithm::RsaPss(Hash::Sha256)
    );
    assert_eq!(
        method14(&rsa_key, &[4, 3]),
        SignatureAlgorithm::RsaPss(Hash::Sha384)
    );
    assert_eq!(
        method14(&rsa_key, &[4]),
        SignatureAlgorithm::RsaPss(Hash::Sha512)
    );
    // ECDSA: the curve's own hash first, else another shared one.
    assert_eq!(
        method14(&p256, ALL_HASHES),
        SignatureAlgorithm::Ecdsa(Hash::Sha256)
    );
    assert_eq!(
        method14(&p384, ALL_HASHES),
        SignatureAlgorithm::Ecdsa(Hash::Sha384)
    );
    assert_eq!(
        method14(&p521, ALL_HASHES),
        SignatureAlgorithm::Ecdsa(Hash::Sha512)
    );
    assert_eq!(
        method14(&p521, &[2]),
        SignatureAlgorithm::Ecdsa(Hash::Sha256)
    );
    assert_eq!(method14(&ed, &[5]), SignatureAlgorithm::Ed25519);
    // Hashes we do not share (SHA-1, unknown, Identity for a non-EdDSA
    // key): the classic method.
    for hashes in [&[][..], &[1], &[1, 6, 0xffff], &[5]] {
        let method = |key: &PKey<Private>| {
            sign(key, SignatureAuth::Any, hashes, OCTETS)
                .unwrap()
                .auth_method
        };
        assert_eq!(method(&rsa_key), 1, "{hashes:?}");
        assert_eq!(method(&p256), 9, "{hashes:?}");
        assert_eq!(method(&p384), 10, "{hashes:?}");
        assert_eq!(method(&p521), 11, "{hashes:?}");
    }
    // Forced methods ignore the peer's hashes.
    assert_eq!(
        sign(&rsa_key, SignatureAuth::Rsa, ALL_HASHES, OCTETS)
            .unwrap()
            .auth_method,
        1
    );
    assert_eq!(
        sign(&p256, SignatureAuth::Ecdsa256, ALL_HASHES, OCTETS)
            .unwrap()
            .auth_method,
        9
    );
    // Ed25519 without the Identity hash: no method at all.
    for hashes in [&[][..], &[2, 3, 4]] {
        for wanted in [SignatureAuth::Any, SignatureAuth::Rfc7427] {
            let error = sign(&ed, wanted, hashes, OCTETS).expect_err("no Identity");
            assert!(matches!(error, SignatureError::Refused(_)));
            assert!(
                error.to_string().starts_with(
                    "our key is Ed25519, which signs only with AUTH method 14 and the Identity hash (5), but the peer"
                ),
                "{error}"
            );
        }
    }
    assert_eq!(
        sign(&ed, SignatureAuth::Any, &[2, 3], OCTETS)
            .unwrap_err()
            .to_string(),
        "our key is Ed25519, which signs only with AUTH method 14 and the Identity hash (5), \
         but the peer offers hash algorithms 2 (SHA2-256), 3 (SHA2-384)"
    );
    // ikeauth rfc7427 with a peer that sent no SIGNATURE_HASH_ALGORITHMS.
    assert_eq!(
        sign(&p256, SignatureAuth::Rfc7427, &[], OCTETS)
            .unwrap_err()
            .to_string(),
        "AUTH method 14 (Digital Signature) with our ECDSA P-256 key needs a hash algorithm we \
         share, but the peer sent no SIGNATURE_HASH_ALGORITHMS"
    );
}

#[test]
fn forced_methods_refuse_keys_that_do_not_fit() {
    let cases = [
        (KeyKind::P256, SignatureAuth::Rsa, "ikeauth rsa wants AUTH method 1 (RSA Digital Signature with SHA-1) but our key is ECDSA P-256"),
        (KeyKind::Ed25519, SignatureAuth::Rsa, "ikeauth rsa wants AUTH method 1 (RSA Digital Signature with SHA-1) but our key is Ed25519"),
        (KeyKind::Rsa(2048), SignatureAuth::Ecdsa256, "ikeauth ecdsa256 wants AUTH method 9 (ECDSA with SHA-256 on P-256) but our key is RSA (2048 bits)"),
        (KeyKind::P256, SignatureAuth::Ecdsa384, "ikeauth ecdsa384 wants AUTH method 10 (ECDSA with SHA-384 on P-384) but our key is ECDSA P-256"),
        (KeyKind::P384, SignatureAuth::Ecdsa521, "ikeauth ecdsa521 wants AUTH method 11 (ECDSA with SHA-512 on P-521) but our key is ECDSA P-384"),
        (KeyKind::P521, SignatureAuth::Ecdsa256, "ikeauth ecdsa256 wants AUTH method 9 (ECDSA with SHA-256 on P-256) but our key is ECDSA P-521"),
        (KeyKind::Ed25519, SignatureAuth::Ecdsa256, "ikeauth ecdsa256 wants AUTH method 9 (ECDSA with SHA-256 on P-256) but our key is Ed25519"),
    ];
    for (kind, wanted, reason) in cases {
        let error = sign(&new_key(kind), wanted, ALL_HASHES, OCTETS).expect_err(reason);
        assert_eq!(error, SignatureError::KeyMismatch(reason.into()));
    }
}

#[test]
fn verify_accepts_only_the_methods_ikeauth_allows() {
    let rsa_key = rsa();
    let p256 = new_key(KeyKind::P256);
    let rsa1 = sign(&rsa_key, SignatureAuth::Rsa, &[], OCTETS).unwrap();
    let rsa14 = sign(&rsa_key, SignatureAuth::Rfc7427, &[2], OCTETS).unwrap();
    let ec9 = sign(&p256, SignatureAuth::Ecdsa256, &[], OCTETS).unwrap();
    let ec14 = sign(&p256, SignatureAuth::Rfc7427, &[2], OCTETS).unwrap();
    let (rsa_public, p256_public) = (public(&rsa_key), public(&p256));
    let table: [(SignatureAuth, [bool; 4]); 6] = [
        // accepted: rsa1, rsa14, ec9, ec14
        (SignatureAuth::Any, [true, true, true, true]),
        (SignatureAuth::Rsa, [true, false, false, false]),
        (SignatureAuth::Ecdsa256, [false, false, true, false]),
        (SignatureAuth::Ecdsa384, [false, false, false, false]),
        (SignatureAuth::Ecdsa521, [false, false, false, false]),
        (SignatureAuth::Rfc7427, [false, true, false, true]),
    ];
    for (accepted, expected) in table {
        let signed = [
            (&rsa_public, &rsa1),
            (&rsa_public, &rsa14),
            (&p256_public, &ec9),
            (&p256_public, &ec14),
        ];
        for ((key, signed), ok) in signed.into_iter().zip(expected) {
            let result = verify(key, accepted, signed.auth_method, &signed.auth_data, OCTETS);
            if ok {
                result
                    .unwrap_or_else(|e| panic!("{accepted:?} method {}: {e}", signed.auth_method));
            } else {
                match result {
                    Err(SignatureError::NotAccepted(reason)) => assert!(
                        reason.starts_with(&format!("AUTH method {} (", signed.auth_method))
                            && reason.contains("but the policy has ikeauth"),
                        "{reason}"
                    ),
                    other => panic!("{accepted:?} method {}: {other:?}", signed.auth_method),
                }
            }
        }
    }
    assert_eq!(
        verify(
            &rsa_public,
            SignatureAuth::Rsa,
            14,
            &rsa14.auth_data,
            OCTETS
        )
        .unwrap_err()
        .to_string(),
        "AUTH method 14 (Digital Signature) but the policy has ikeauth rsa"
    );
    // Methods that are not signatures, or unknown.
    for method in [0u8, 2, 3, 12, 13, 15, 255] {
        let error = verify(
            &rsa_public,
            SignatureAuth::Any,
            method,
            &rsa1.auth_data,
            OCTETS,
        )
        .expect_err("not a signature method");
        assert!(
            matches!(error, SignatureError::Unsupported(_)),
            "{method}: {error}"
        );
    }
}

// ---------------------------------------------------------------------------
// The signature formats, checked independently of OpenSSL's verify.

/// MGF1 (RFC 8017 B.2.1).
fn mgf1(hash: openssl::hash::MessageDigest, seed: &[u8], len: usize) -> Vec<u8> {
    let mut mask = Vec::new();
    let mut counter: u32 = 0;
    while mask.len() < len {
        let block = openssl::hash::hash(hash, &[seed, &counter.to_be_bytes()].concat()).unwrap();
        mask.extend_from_slice(&block);
        counter += 1;
    }
    mask.truncate(len);
    mask
}

fn rsa_public_raw(key: &PKey<Private>, signature: &[u8]) -> Vec<u8> {
    let rsa = key.rsa().expect("RSA");
    let mut em = vec![0; rsa.size() as usize];
    let len = rsa
        .public_decrypt(signature, &mut em, openssl::rsa::Padding::NONE)
        .expect("raw RSA");
    em.truncate(len);
    em
}

#[test]
fn method_1_is_emsa_pkcs1_v1_5_with_sha1() {
    let key = rsa();
    let signed = sign(&key, SignatureAuth::Rsa, &[], OCTETS).unwrap();
    assert_eq!(signed.auth_data.len(), 256);
    let em = rsa_public_raw(&key, &signed.auth_data);
    // RFC 8017 §9.2: 00 01 FF.. 00 DigestInfo(SHA-1) H.
    let digest_info = unhex("3021300906052b0e03021a05000414");
    let hash = openssl::hash::hash(openssl::hash::MessageDigest::sha1(), OCTETS).unwrap();
    let t = [&digest_info[..], &hash].concat();
    let mut expected = vec![0x00, 0x01];
    expected.resize(256 - t.len() - 1, 0xff);
    expected.push(0x00);
    expected.extend_from_slice(&t);
    assert_eq!(em, expected);
}

#[test]
fn our_pss_uses_mgf1_with_the_same_hash_and_a_salt_of_its_length() {
    let key = rsa();
    for (hashes, hash) in [
        (&[2u16][..], Hash::Sha256),
        (&[3], Hash::Sha384),
        (&[4], Hash::Sha512),
    ] {
        let signed = sign(&key, SignatureAuth::Rfc7427, hashes, OCTETS).unwrap();
        let der_len = usize::from(signed.auth_data[0]);
        let em = rsa_public_raw(&key, &signed.auth_data[1 + der_len..]);
        // RFC 8017 §9.1.2 for a 2048-bit modulus: emLen = 256,
        // EM = maskedDB || H || 0xbc.
        assert_eq!(em.len(), 256);
        assert_eq!(em[255], 0xbc);
        let h_len = hash.output_len();
        let (masked_db, h) = em[..255].split_at(255 - h_len);
        let mut db: Vec<u8> = masked_db
            .iter()
            .zip(mgf1(hash.digest(), h, masked_db.len()))
            .map(|(a, b)| a ^ b)
            .collect();
        db[0] &= 0x7f; // the top bit beyond emBits
        let one = db.iter().position(|&b| b != 0).expect("separator");
        assert_eq!(db[one], 0x01);
        let salt = &db[one + 1..];
        assert_eq!(salt.len(), h_len, "{hash:?}: salt length");
        let m_hash = openssl::hash::hash(hash.digest(), OCTETS).unwrap();
        let m_prime = [&[0u8; 8][..], &m_hash, salt].concat();
        assert_eq!(
            &openssl::hash::hash(hash.digest(), &m_prime).unwrap()[..],
            h
        );
    }
}

// ---------------------------------------------------------------------------
// Hostile AUTH data: refused, never a panic, never a match.

fn assert_refused(
    key: &PKey<Public>,
    accepted: SignatureAuth,
    method: u8,
    auth_data: &[u8],
    octets: &[u8],
    what: &str,
) {
    let result = verify(key, accepted, method, auth_data, octets);
    assert!(result.is_err(), "{what}: accepted");
}

#[test]
fn truncated_extended_and_bit_flipped_signatures_are_refused() {
    let mut checked = 0usize;
    for (kind, wanted, hashes) in [
        (KeyKind::Rsa(2048), SignatureAuth::Rsa, &[][..]),
        (KeyKind::Rsa(2048), SignatureAuth::Rfc7427, &[2][..]),
        (KeyKind::P256, SignatureAuth::Ecdsa256, &[]),
        (KeyKind::P384, SignatureAuth::Ecdsa384, &[]),
        (KeyKind::P521, SignatureAuth::Ecdsa521, &[]),
        (KeyKind::P256, SignatureAuth::Rfc7427, &[2]),
        (KeyKind::P521, SignatureAuth::Rfc7427, &[4]),
        (KeyKind::Ed25519, SignatureAuth::Rfc7427, &[5]),
    ] {
        let key = new_key(kind);
        let public_key = public(&key);
        let signed = sign(&key, wanted, hashes, OCTETS).expect("sign");
        let (method, data) = (signed.auth_method, &signed.auth_data);
        verify(&public_key, SignatureAuth::Any, method, data, OCTETS).expect("the original");
        for len in 0..data.len() {
            assert_refused(
                &public_key,
                SignatureAuth::Any,
                method,
                &data[..len],
                OCTETS,
                "truncated",
            );
            checked += 1;
        }
        for extra in [&[0u8][..], &[0xff], &[0; 64]] {
            let longer = [&data[..], extra].concat();
            assert_refused(
                &public_key,
                SignatureAuth::Any,
                method,
                &longer,
                OCTETS,
                "extended",
            );
            checked += 1;
        }
        for bit in 0..data.len() * 8 {
            let mut flipped = data.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_refused(
                &public_key,
                SignatureAuth::Any,
                method,
                &flipped,
                OCTETS,
                &format!("{kind:?} bit {bit}"),
            );
            checked += 1;
        }
        // The octets changed instead, one bit at a time.
        for bit in 0..OCTETS.len() * 8 {
            let mut octets = OCTETS.to_vec();
            octets[bit / 8] ^= 1 << (bit % 8);
            assert_refused(
                &public_key,
                SignatureAuth::Any,
                method,
                data,
                &octets,
                "octets",
            );
            checked += 1;
        }
    }
    println!("{checked} altered AUTH payloads refused");
    assert!(checked > 10_000);
}

/// Garbled AlgorithmIdentifiers, each refused as malformed with its reason.
#[test]
fn garbled_algorithm_identifiers_are_refused_with_a_reason() {
    let cases: &[(&str, &str, &str)] = &[
        ("empty", "", "ends before a DER tag"),
        ("tag only", "30", "ends before a DER length"),
        (
            "not a SEQUENCE",
            "310a 0608 2a86 48ce 3d04 0302",
            "is DER tag 0x31, not a SEQUENCE",
        ),
        (
            "indefinite length",
            "3080 0608 2a86 48ce 3d04 0302 0000",
            "indefinite length",
        ),
        (
            "non-minimal length",
            "3081 0a06 082a 8648 ce3d 0403 02",
            "non-minimal DER length",
        ),
        (
            "two-octet length",
            "3082 000a 0608 2a86 48ce 3d04 0302",
            "too long for an AlgorithmIdentifier",
        ),
        (
            "length past the end",
            "300b 0608 2a86 48ce 3d04 0302",
            "with only 10 left",
        ),
        (
            "trailing octet",
            "300a 0608 2a86 48ce 3d04 0302 00",
            "1 octets after the AlgorithmIdentifier",
        ),
        ("no OID", "3002 0500", "not an OBJECT IDENTIFIER"),
        ("empty OID", "3002 0600", "empty OBJECT IDENTIFIER"),
        (
            "multi-octet tag",
            "3f0a 0608 2a86 48ce 3d04 0302",
            "multi-octet DER tag 0x3f",
        ),
        (
            "ECDSA with NULL parameters",
            "300c 0608 2a86 48ce 3d04 0302 0500",
            "with parameters (they must be absent)",
        ),
        (
            "Ed25519 with NULL parameters",
            "3007 0603 2b65 7005 00",
            "id-Ed25519 with parameters",
        ),
        (
            "RSA with non-NULL parameters",
            "300e 0609 2a86 4886 f70d 0101 0b04 0100",
            "other than NULL",
        ),
        (
            "RSA with two parameters",
            "300f 0609 2a86 4886 f70d 0101 0b05 0005 00",
            "octets after the parameters",
        ),
        (
            "PSS without parameters",
            "300b 0609 2a86 4886 f70d 0101 0a",
            "RSASSA-PSS without parameters",
        ),
        (
            "PSS parameters not a SEQUENCE",
            "300d 0609 2a86 4886 f70d 0101 0a05 00",
            "not a SEQUENCE",
        ),
        (
            "PSS unknown field",
            "300f 0609 2a86 4886 f70d 0101 0a30 02a4 00",
            "unknown RSASSA-PSS parameter tag 0xa4",
        ),
        (
            "PSS empty hash field",
            "300f 0609 2a86 4886 f70d 0101 0a30 02a0 00",
            "ends before a DER tag",
        ),
        (
            "unknown OID",
            "3005 0603 2a03 04",
            "unsupported: signature algorithm OID 1.2.3.4",
        ),
        (
            "bad OID arc",
            "3005 0603 2a83 80",
            "unsupported: signature algorithm OID 2a8380",
        ),
    ];
    for &(name, text, reason) in cases {
        let error = algorithm_id::parse(&unhex(text)).expect_err(name);
        assert!(error.to_string().contains(reason), "{name}: {error}");
    }
}

#[test]
fn method_14_framing_errors_are_refused_with_a_reason() {
    let key = public(&rsa());
    let pss = SignatureAlgorithm::RsaPss(Hash::Sha256).der();
    let framed = |len: u8, tail: &[u8]| [&[len][..], pss, tail].concat();
    let cases = [
        ("empty", vec![], "empty AUTH data"),
        (
            "length 0",
            vec![0, 1, 2, 3],
            "an AlgorithmIdentifier of 0 octets",
        ),
        (
            "length past the end",
            framed(200, &[0; 10]),
            "an AlgorithmIdentifier of 200 octets and a signature in 82 octets",
        ),
        (
            "no signature",
            framed(72, &[]),
            "an AlgorithmIdentifier of 72 octets and a signature in 72 octets",
        ),
        (
            "length one short",
            framed(71, &[0; 256]),
            "DER element of 70 octets with only 69 left",
        ),
        (
            "short signature",
            framed(72, &[1; 255]),
            "an RSA signature of 255 octets for a key of 256",
        ),
        (
            "too long",
            framed(72, &[1; MAX_AUTH_DATA]),
            "octets of AUTH data for AUTH method 14",
        ),
    ];
    for (name, data, reason) in cases {
        let error = verify(&key, SignatureAuth::Any, 14, &data, OCTETS).expect_err(name);
        assert!(
            matches!(error, SignatureError::Malformed(_)),
            "{name}: {error}"
        );
        assert!(error.to_string().contains(reason), "{name}: {error}");
    }
    // Ed25519 signatures are 64 octets.
    let ed = public(&new_key(KeyKind::Ed25519));
    let data = [&[7u8][..], &unhex("3005 0603 2B65 70"), &[0; 63]].concat();
    assert!(verify(&ed, SignatureAuth::Any, 14, &data, OCTETS)
        .unwrap_err()
        .to_string()
        .contains("a signature of 63 octets, not 64"));
}

mod hostile {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// One public key per family, made once for all cases.
    fn keys() -> &'static [PKey<Public>] {
        static KEYS: OnceLock<Vec<PKey<Public>>> = OnceLock::new();
        KEYS.get_or_init(|| {
            [
                KeyKind::Rsa(2048),
                KeyKind::P256,
                KeyKind::P384,
                KeyKind::P521,
                KeyKind::Ed25519,
            ]
            .into_iter()
            .map(|kind| public(&new_key(kind)))
            .collect()
        })
    }

    /// The AlgorithmIdentifiers we know, as seeds for mutation.
    fn objects() -> Vec<Vec<u8>> {
        RFC7427_OBJECTS
            .iter()
            .map(|(_, text, _)| unhex(text))
            .collect()
    }

    fn accepted() -> impl Strategy<Value = SignatureAuth> {
        prop_oneof![
            Just(SignatureAuth::Any),
            Just(SignatureAuth::Rsa),
            Just(SignatureAuth::Ecdsa256),
            Just(SignatureAuth::Ecdsa384),
            Just(SignatureAuth::Ecdsa521),
            Just(SignatureAuth::Rfc7427),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Random bytes under any method, any key, any ikeauth.
        #[test]
        fn random_auth_data_is_refused(
            method in prop_oneof![Just(1u8), Just(9), Just(10), Just(11), Just(14), any::<u8>()],
            data in proptest::collection::vec(any::<u8>(), 0..700),
            key in 0usize..5,
            accepted in accepted(),
        ) {
            prop_assert!(verify(&keys()[key], accepted, method, &data, OCTETS).is_err());
        }

        /// Method 14 with a known AlgorithmIdentifier, mutated (octets
        /// changed, cut, or inserted) and a random signature after it.
        #[test]
        fn mutated_method_14_is_refused(
            object in 0usize..RFC7427_OBJECTS.len(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4),
            length_delta in -3i16..4,
            signature in proptest::collection::vec(any::<u8>(), 0..600),
            key in 0usize..5,
        ) {
            let mut der = objects()[object].clone();
            for (position, byte, kind) in edits {
                let at = position % (der.len() + 1);
                match kind {
                    0 if at < der.len() => der[at] = byte,
                    1 if at < der.len() => { der.remove(at); }
                    _ => der.insert(at, byte),
                }
            }
            let len = (der.len() as i16 + length_delta).clamp(0, 255) as u8;
            let data = [&[len][..], &der, &signature].concat();
            // The parser alone must not panic either.
            let _ = algorithm_id::parse(&der);
            prop_assert!(verify(&keys()[key], SignatureAuth::Any, 14, &data, OCTETS).is_err());
        }

        /// The OID printer takes any octets.
        #[test]
        fn dotted_takes_any_octets(oid in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert!(!algorithm_id::dotted(&oid).is_empty() || oid.is_empty());
        }
    }
}

#[test]
fn method_14_ecdsa_takes_every_sha2_on_every_curve_and_only_canonical_der() {
    for kind in [KeyKind::P256, KeyKind::P384, KeyKind::P521] {
        let key = new_key(kind);
        let public_key = public(&key);
        for (hash_id, hash) in [(2u16, Hash::Sha256), (3, Hash::Sha384), (4, Hash::Sha512)] {
            let signed = sign(&key, SignatureAuth::Rfc7427, &[hash_id], OCTETS).unwrap();
            let der_len = usize::from(signed.auth_data[0]);
            let (object, signature) = signed.auth_data[1..].split_at(der_len);
            assert_eq!(
                algorithm_id::parse(object),
                Ok(SignatureAlgorithm::Ecdsa(hash))
            );
            verify(
                &public_key,
                SignatureAuth::Rfc7427,
                14,
                &signed.auth_data,
                OCTETS,
            )
            .unwrap_or_else(|e| panic!("{kind:?} {hash:?}: {e}"));
            // The same Ecdsa-Sig-Value in BER (a long-form length where
            // the short form fits) is refused: only DER is a signature.
            assert_eq!(signature[0], 0x30);
            if signature[1] < 0x80 {
                let ber = [&[0x30, 0x81][..], &signature[1..]].concat();
                let data = [&signed.auth_data[..=der_len], &ber].concat();
                assert!(
                    matches!(
                        verify(&public_key, SignatureAuth::Any, 14, &data, OCTETS),
                        Err(SignatureError::BadSignature(_))
                    ),
                    "{kind:?} {hash:?}: BER accepted"
                );
            }
            // And r||s, the classic methods' form, is not method 14's.
            let sig = openssl::ecdsa::EcdsaSig::from_der(signature).unwrap();
            let width = key_type(&key).map(|t| match t {
                KeyType::Ecdsa(curve) => curve.field_len() as i32,
                _ => unreachable!(),
            });
            let width = width.unwrap();
            let rs = [
                sig.r().to_vec_padded(width).unwrap(),
                sig.s().to_vec_padded(width).unwrap(),
            ]
            .concat();
            let data = [&signed.auth_data[..=der_len], &rs].concat();
            assert!(verify(&public_key, SignatureAuth::Any, 14, &data, OCTETS).is_err());
        }
    }
}
