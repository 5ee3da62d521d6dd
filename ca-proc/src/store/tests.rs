//! The store against certificates made in the test (iked_common::test_pki):
//! each refusal issue 13 lists, and the accepts.

use super::identity::*;
use super::*;
use iked_common::ipc::{PeerPublicKey, SecretStoreFile};
use iked_common::test_pki::{CertSpec, Chain, Issued, KeyKind, San};
use openssl::asn1::Asn1Time;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509Builder, X509NameBuilder};

pub(crate) fn file(path: &str, bytes: Vec<u8>) -> StoreFile {
    StoreFile {
        path: format!("/etc/iked/{path}"),
        bytes,
    }
}

/// The files of a store trusting `roots`, with `crls`.
pub(crate) fn files_trusting(roots: &[&Issued], crls: &[X509Crl]) -> CertStoreFiles {
    CertStoreFiles {
        dir: "/etc/iked".into(),
        ca_certs: roots
            .iter()
            .enumerate()
            .map(|(i, r)| file(&format!("ca/ca{i}.crt"), r.cert_pem()))
            .collect(),
        crls: crls
            .iter()
            .enumerate()
            .map(|(i, c)| file(&format!("crls/crl{i}.pem"), c.to_pem().unwrap()))
            .collect(),
        ..Default::default()
    }
}

fn store_trusting(roots: &[&Issued], crls: &[X509Crl]) -> CertStore {
    CertStore::load(&files_trusting(roots, crls)).expect("store loads")
}

/// What the peer sends: end entity first, then the intermediate.
fn sent(chain: &Chain) -> Vec<Vec<u8>> {
    vec![chain.leaf.cert_der(), chain.intermediate.cert_der()]
}

fn refusal(store: &CertStore, certs: &[Vec<u8>]) -> String {
    match store.verify_chain(certs) {
        Ok(_) => panic!("the chain was accepted"),
        Err(reason) => reason,
    }
}

fn fqdn(name: &str) -> WireIdentity {
    WireIdentity {
        id_type: ID_FQDN,
        body: name.as_bytes().to_vec(),
    }
}

#[test]
fn rsa_p256_and_ed25519_chains_are_accepted_and_name_their_fqdn() {
    for kind in [KeyKind::Rsa(2048), KeyKind::P256, KeyKind::Ed25519] {
        let chain = Chain::new(kind, &CertSpec::end_entity("b.ike.test", kind).serial(7));
        let store = store_trusting(&[&chain.root], &[]);
        let verified = store.verify_chain(&sent(&chain)).expect("accepted");
        check_certificate_names(&verified.leaf, &fqdn("b.ike.test")).expect("named");
        check_certificate_names(&verified.leaf, &fqdn("B.IKE.test")).expect("any case");
        assert_eq!(store.cert_authorities(), vec![chain.root.spki_sha1()]);
    }
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let expired = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("b.ike.test", KeyKind::P256).valid_days(-30, -1),
    );
    let store = store_trusting(&[&expired.root], &[]);
    let reason = refusal(&store, &sent(&expired));
    assert!(reason.contains("certificate has expired"), "{reason}");
    assert!(reason.contains("CN=b.ike.test"), "{reason}");

    let future = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("b.ike.test", KeyKind::P256).valid_days(2, 30),
    );
    let store = store_trusting(&[&future.root], &[]);
    let reason = refusal(&store, &sent(&future));
    assert!(reason.contains("certificate is not yet valid"), "{reason}");
}

#[test]
fn a_chain_of_another_ca_is_refused() {
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("b.ike.test", KeyKind::P256),
    );
    let other = Issued::self_signed(&CertSpec::ca("iked test root", KeyKind::P256));
    let store = store_trusting(&[&other], &[]);
    let reason = refusal(&store, &sent(&chain));
    assert!(
        reason.starts_with("certificate chain refused: "),
        "{reason}"
    );
    assert!(
        reason.contains("unable to get local issuer certificate")
            || reason.contains("certificate signature failure"),
        "{reason}"
    );
    // Nothing trusted at all: refused, saying why.
    let empty = CertStore::default();
    let reason = refusal(&empty, &sent(&chain));
    assert!(reason.contains("no trusted CA"), "{reason}");
}

#[test]
fn a_certificate_revoked_by_a_crl_is_refused_and_crls_are_checked_against_their_issuer() {
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("b.ike.test", KeyKind::P256).serial(40),
    );
    let sibling = chain
        .intermediate
        .issue(&CertSpec::end_entity("c.ike.test", KeyKind::P256).serial(41));
    let root_crl = || chain.root.crl(&[], 30);
    let revoking = chain.intermediate.crl(&[&chain.leaf], 30);
    let store = CertStore::load(&{
        let mut f = files_trusting(&[&chain.root], &[root_crl(), revoking]);
        f.certs.push(file(
            "certs/intermediate.crt",
            chain.intermediate.cert_pem(),
        ));
        f
    })
    .expect("store");
    let reason = refusal(&store, &sent(&chain));
    assert!(reason.contains("certificate revoked"), "{reason}");
    // The intermediate's CRL revokes serial 40 only: its sibling passes.
    store
        .verify_chain(&[sibling.cert_der(), chain.intermediate.cert_der()])
        .expect("the sibling is not revoked");

    // The same serial revoked by another CA's CRL does not revoke ours:
    // openssl looks for the CRL of the certificate's own issuer, and with
    // CRLs present every issuer must have one (CRL_CHECK_ALL).
    let other = Issued::self_signed(&CertSpec::ca("other root", KeyKind::P256));
    let stranger = other.issue(&CertSpec::end_entity("x", KeyKind::P256).serial(40));
    let store = store_trusting(
        &[&chain.root, &other],
        &[root_crl(), other.crl(&[&stranger], 30)],
    );
    let reason = refusal(&store, &sent(&chain));
    assert!(reason.contains("unable to get certificate CRL"), "{reason}");
    assert!(reason.contains("CN=b.ike.test"), "{reason}");
}

#[test]
fn a_crl_no_trusted_ca_issued_is_refused_when_loading() {
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("b.ike.test", KeyKind::P256),
    );
    let other = Issued::self_signed(&CertSpec::ca("other root", KeyKind::P256));
    let e = CertStore::load(&files_trusting(&[&chain.root], &[other.crl(&[], 30)]))
        .err()
        .expect("refused");
    assert!(e.starts_with("/etc/iked/crls/crl0.pem: no CA"), "{e}");
}

#[test]
fn identities_must_be_named_by_the_certificate() {
    let spec = CertSpec::end_entity("b.ike.test", KeyKind::P256).sans(vec![
        San::Dns("gw.ike.test".into()),
        San::Email("vpn@ike.test".into()),
        San::Ip("198.18.0.2".parse().unwrap()),
        San::Ip("2001:db8::2".parse().unwrap()),
    ]);
    let chain = Chain::new(KeyKind::P256, &spec);
    let store = store_trusting(&[&chain.root], &[]);
    let leaf = store.verify_chain(&sent(&chain)).expect("accepted").leaf;
    let id = |id_type, body: &[u8]| WireIdentity {
        id_type,
        body: body.to_vec(),
    };
    for ok in [
        fqdn("gw.ike.test"),
        id(ID_RFC822_ADDR, b"vpn@ike.test"),
        id(ID_IPV4_ADDR, &[198, 18, 0, 2]),
        id(
            ID_IPV6_ADDR,
            &"2001:db8::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        ),
        id(ID_DER_ASN1_DN, &leaf.subject_name().to_der().unwrap()),
        wire_of(&IdentitySpec::Asn1Dn(
            "C=XX, O=iked test, CN=b.ike.test".into(),
        ))
        .unwrap(),
        wire_of(&IdentitySpec::Asn1Dn(
            "/C=XX/O=iked test/CN=b.ike.test".into(),
        ))
        .unwrap(),
    ] {
        check_certificate_names(&leaf, &ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    for (bad, why) in [
        (fqdn("b.ike.test"), "the CN is no subjectAltName"),
        (fqdn("other.ike.test"), "another name"),
        (
            id(ID_RFC822_ADDR, b"gw.ike.test"),
            "a DNS name as a mail address",
        ),
        (id(ID_IPV4_ADDR, &[198, 18, 0, 3]), "another address"),
        (
            wire_of(&IdentitySpec::Asn1Dn(
                "C=XX, O=iked test, CN=a.ike.test".into(),
            ))
            .unwrap(),
            "another DN",
        ),
        (
            wire_of(&IdentitySpec::Asn1Dn(
                "CN=b.ike.test, O=iked test, C=XX".into(),
            ))
            .unwrap(),
            "the same entries in another order",
        ),
    ] {
        let e = check_certificate_names(&leaf, &bad).expect_err(why);
        assert!(e.contains("is not named by its certificate"), "{why}: {e}");
    }
    for malformed in [
        id(ID_IPV4_ADDR, &[1, 2, 3]),
        id(ID_DER_ASN1_DN, b"\x30\x03abc"),
        id(ID_KEY_ID, b"k"),
    ] {
        assert!(check_certificate_names(&leaf, &malformed).is_err());
    }
}

#[test]
fn the_policys_dstid_must_be_the_peers_id() {
    check_dstid(
        &IdentitySpec::Fqdn("GW.ike.test".into()),
        &fqdn("gw.ike.test"),
    )
    .expect("same");
    let e = check_dstid(
        &IdentitySpec::Fqdn("gw.ike.test".into()),
        &fqdn("b.ike.test"),
    )
    .expect_err("other");
    assert!(
        e.contains("the peer's ID (fqdn b.ike.test) is not the policy's dstid (fqdn gw.ike.test)"),
        "{e}"
    );
    let dn = IdentitySpec::Asn1Dn("C=XX, O=iked test, CN=gw".into());
    let mut name = X509NameBuilder::new().unwrap();
    // The same DN encoded with other string types: equal as a name.
    name.append_entry_by_text_with_type("C", "XX", openssl::asn1::Asn1Type::PRINTABLESTRING)
        .unwrap();
    name.append_entry_by_text_with_type("O", "iked test", openssl::asn1::Asn1Type::UTF8STRING)
        .unwrap();
    name.append_entry_by_text_with_type("CN", "gw", openssl::asn1::Asn1Type::PRINTABLESTRING)
        .unwrap();
    let other_encoding = WireIdentity {
        id_type: ID_DER_ASN1_DN,
        body: name.build().to_der().unwrap(),
    };
    assert_ne!(wire_of(&dn).unwrap().body, other_encoding.body);
    check_dstid(&dn, &other_encoding).expect("same name");
    assert!(check_dstid(&dn, &fqdn("gw")).is_err());
    assert!(dn_from_text("C=XX, nonsense").is_err());
    assert!(dn_from_text("C=XX, NOSUCHFIELD=1").is_err());
}

#[test]
fn truncated_garbled_and_padded_der_is_refused() {
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("b.ike.test", KeyKind::P256),
    );
    let store = store_trusting(&[&chain.root], &[]);
    let der = chain.leaf.cert_der();
    let truncated = der[..der.len() - 20].to_vec();
    let reason = refusal(&store, &[truncated, chain.intermediate.cert_der()]);
    assert!(
        reason.starts_with("certificate 1: not a DER certificate"),
        "{reason}"
    );
    let mut padded = der.clone();
    padded.extend_from_slice(b"tail");
    let reason = refusal(&store, &[padded]);
    assert_eq!(
        reason,
        "certificate 1: 4 octets after the certificate's DER"
    );
    // A flipped octet in the signature parses, and fails the check.
    let mut garbled = der.clone();
    let last = garbled.len() - 3;
    garbled[last] ^= 0x55;
    let reason = refusal(&store, &[garbled, chain.intermediate.cert_der()]);
    assert!(reason.contains("signature failure"), "{reason}");
    let reason = refusal(
        &store,
        &[chain.leaf.cert_der(), b"\x30\x82\xff\xff".to_vec()],
    );
    assert!(
        reason.starts_with("certificate 2: not a DER certificate"),
        "{reason}"
    );
    assert_eq!(refusal(&store, &[]), "no certificate sent");
}

#[test]
fn a_hundred_certificate_chain_is_refused_before_parsing_and_so_is_a_huge_one() {
    let store = CertStore::default();
    let started = std::time::Instant::now();
    let flood = vec![vec![0u8; 1000]; 100];
    assert_eq!(
        refusal(&store, &flood),
        "100 certificates sent, at most 16 accepted"
    );
    println!("100-certificate chain refused in {:?}", started.elapsed());
    let reason = refusal(&store, &[vec![0x30; MAX_CERT_SIZE + 1]]);
    assert!(reason.contains("at most 65536 accepted"), "{reason}");
}

/// A CA certificate of `subject` for `key`, signed by `signer` as `issuer`.
fn ca_cert(subject: &str, key: &PKey<Private>, issuer: &str, signer: &PKey<Private>) -> X509 {
    let name = |cn: &str| {
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", cn).unwrap();
        n.build()
    };
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name(subject)).unwrap();
    b.set_issuer_name(&name(issuer)).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .key_cert_sign()
            .digital_signature()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

#[test]
fn a_chain_loop_is_refused() {
    // A is signed by B and B by A; the leaf is signed by A. No anchor is
    // reachable, and openssl must not go round forever.
    let ka = iked_common::test_pki::new_key(KeyKind::P256);
    let kb = iked_common::test_pki::new_key(KeyKind::P256);
    let leaf_key = iked_common::test_pki::new_key(KeyKind::P256);
    let a = ca_cert("loop A", &ka, "loop B", &kb);
    let b = ca_cert("loop B", &kb, "loop A", &ka);
    let mut leaf = X509Builder::new().unwrap();
    leaf.set_version(2).unwrap();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", "leaf").unwrap();
    leaf.set_subject_name(&n.build()).unwrap();
    leaf.set_issuer_name(a.subject_name()).unwrap();
    leaf.set_pubkey(&leaf_key).unwrap();
    leaf.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    leaf.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    leaf.sign(&ka, MessageDigest::sha256()).unwrap();
    let leaf = leaf.build();
    let root = Issued::self_signed(&CertSpec::ca("iked test root", KeyKind::P256));
    let store = store_trusting(&[&root], &[]);
    let started = std::time::Instant::now();
    let mut certs = vec![leaf.to_der().unwrap()];
    for _ in 0..7 {
        certs.push(a.to_der().unwrap());
        certs.push(b.to_der().unwrap());
    }
    let reason = refusal(&store, &certs);
    assert!(
        reason.starts_with("certificate chain refused: "),
        "{reason}"
    );
    println!("chain loop refused in {:?}: {reason}", started.elapsed());
}

#[test]
fn path_length_basic_constraints_and_key_usage_are_enforced() {
    // The root allows no intermediate below it.
    let root = Issued::self_signed(&CertSpec::ca("iked test root", KeyKind::P256).path_len(0));
    let intermediate = root.issue(&CertSpec::ca("iked test intermediate", KeyKind::P256).serial(2));
    let leaf = intermediate.issue(&CertSpec::end_entity("b.ike.test", KeyKind::P256));
    let store = store_trusting(&[&root], &[]);
    let reason = refusal(&store, &[leaf.cert_der(), intermediate.cert_der()]);
    assert!(
        reason.contains("path length constraint exceeded"),
        "{reason}"
    );

    // An end entity cannot issue certificates.
    let root = Issued::self_signed(&CertSpec::ca("iked test root", KeyKind::P256));
    let not_ca = root.issue(&CertSpec::end_entity("not a ca", KeyKind::P256).serial(3));
    let leaf = not_ca.issue(&CertSpec::end_entity("b.ike.test", KeyKind::P256));
    let store = store_trusting(&[&root], &[]);
    let reason = refusal(&store, &[leaf.cert_der(), not_ca.cert_der()]);
    assert!(reason.contains("invalid CA certificate"), "{reason}");

    // keyUsage without digitalSignature.
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("b.ike.test", KeyKind::P256).without_digital_signature(),
    );
    let store = store_trusting(&[&chain.root], &[]);
    let reason = refusal(&store, &sent(&chain));
    assert!(
        reason.contains("key usage does not allow signatures"),
        "{reason}"
    );
}

#[test]
fn our_certificate_is_the_one_of_our_key_with_its_intermediates_and_names_us() {
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("a.ike.test", KeyKind::P256),
    );
    let unrelated = Issued::self_signed(&CertSpec::end_entity("someone else", KeyKind::P256));
    let mut files = files_trusting(&[&chain.root], &[]);
    files.certs = vec![
        file("certs/other.crt", unrelated.cert_pem()),
        file("certs/intermediate.crt", chain.intermediate.cert_pem()),
        file("certs/a.ike.test.crt", chain.leaf.cert_pem()),
    ];
    files.private_key = Some(SecretStoreFile {
        path: "/etc/iked/private/local.key".into(),
        bytes: chain.leaf.key_pem(),
    });
    let store = CertStore::load(&files).expect("loads");
    let local = store.local.as_ref().expect("our credential");
    assert_eq!(
        local.chain_der,
        vec![chain.leaf.cert_der(), chain.intermediate.cert_der()]
    );
    let ours = store.local_identity(None).expect("the DN");
    assert_eq!(ours.id_type, ID_DER_ASN1_DN);
    assert_eq!(ours.body, chain.leaf.cert.subject_name().to_der().unwrap());
    let srcid = IdentitySpec::Asn1Dn("C=XX, O=iked test, CN=a.ike.test".into());
    assert_eq!(store.local_identity(Some(&srcid)).unwrap(), ours);
    assert_eq!(
        store
            .local_identity(Some(&IdentitySpec::Fqdn("a.ike.test".into())))
            .unwrap(),
        fqdn("a.ike.test")
    );
    // A key without a certificate: a raw key, no DN to take.
    files.private_key = Some(SecretStoreFile {
        path: "/etc/iked/private/local.key".into(),
        bytes: unrelated.key_pem(),
    });
    files.certs.remove(0);
    let store = CertStore::load(&files).expect("loads");
    assert!(store.local.as_ref().unwrap().chain.is_empty());
    assert!(store.local_identity(None).is_err());
}

#[test]
fn raw_public_keys_are_found_by_the_peers_identity() {
    let peer = Issued::self_signed(&CertSpec::end_entity("b.ike.test", KeyKind::Ed25519));
    let files = CertStoreFiles {
        pubkeys: vec![
            PeerPublicKey {
                identity: IdentitySpec::Fqdn("b.ike.test".into()),
                file: file("pubkeys/fqdn/b.ike.test", peer.public_key_pem()),
            },
            PeerPublicKey {
                identity: IdentitySpec::Address("198.18.0.2".parse().unwrap()),
                file: file("pubkeys/ipv4/198.18.0.2", peer.public_key_pem()),
            },
        ],
        ..Default::default()
    };
    let store = CertStore::load(&files).expect("loads");
    let found = store.raw_key_for(&fqdn("B.ike.test")).expect("by name");
    assert!(found.key.public_eq(&peer.key));
    assert!(store
        .raw_key_for(&WireIdentity {
            id_type: ID_IPV4_ADDR,
            body: vec![198, 18, 0, 2]
        })
        .is_some());
    assert!(store.raw_key_for(&fqdn("c.ike.test")).is_none());
}

#[test]
fn bad_files_are_refused_naming_the_file() {
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("b.ike.test", KeyKind::P256),
    );
    let mut files = files_trusting(&[&chain.root], &[]);
    files.ca_certs.push(file(
        "ca/garbled.crt",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
    ));
    let e = CertStore::load(&files).err().unwrap();
    assert!(
        e.starts_with("/etc/iked/ca/garbled.crt: not a PEM certificate"),
        "{e}"
    );
    files.ca_certs.pop();
    files
        .ca_certs
        .push(file("ca/empty.crt", b"nothing here\n".to_vec()));
    let e = CertStore::load(&files).err().unwrap();
    assert!(e.starts_with("/etc/iked/ca/empty.crt: "), "{e}");
    files.ca_certs.pop();
    files.private_key = Some(SecretStoreFile {
        path: "/etc/iked/private/local.key".into(),
        bytes: b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
    });
    let e = CertStore::load(&files).err().unwrap();
    assert!(
        e.starts_with("/etc/iked/private/local.key: not a private key"),
        "{e}"
    );
    files.private_key = None;
    files.pubkeys.push(PeerPublicKey {
        identity: IdentitySpec::Fqdn("x".into()),
        file: file("pubkeys/fqdn/x", chain.leaf.cert_pem()),
    });
    let e = CertStore::load(&files).err().unwrap();
    assert!(
        e.starts_with("/etc/iked/pubkeys/fqdn/x: not a public key"),
        "{e}"
    );
    // A key no AUTH method can use: refused when loading.
    files.pubkeys.clear();
    let ed448 = openssl::pkey::PKey::generate_ed448().unwrap();
    files.private_key = Some(SecretStoreFile {
        path: "/etc/iked/private/local.key".into(),
        bytes: ed448.private_key_to_pem_pkcs8().unwrap(),
    });
    let e = CertStore::load(&files).err().unwrap();
    assert_eq!(
        e,
        "/etc/iked/private/local.key: unsupported: Ed448 keys (we implement Ed25519 only)"
    );
}

#[test]
fn an_expired_crl_refuses_the_chain_it_covers() {
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("b.ike.test", KeyKind::P256).serial(5),
    );
    let store = CertStore::load(&{
        let mut f = files_trusting(
            &[&chain.root],
            &[chain.root.crl(&[], 30), chain.intermediate.crl(&[], -1)],
        );
        f.certs.push(file(
            "certs/intermediate.crt",
            chain.intermediate.cert_pem(),
        ));
        f
    })
    .expect("store");
    let reason = refusal(&store, &sent(&chain));
    assert!(reason.contains("CRL has expired"), "{reason}");
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    fn store() -> &'static (CertStore, Vec<u8>) {
        static STORE: std::sync::OnceLock<(CertStore, Vec<u8>)> = std::sync::OnceLock::new();
        STORE.get_or_init(|| {
            let chain = Chain::new(
                KeyKind::P256,
                &CertSpec::end_entity("b.ike.test", KeyKind::P256),
            );
            (
                CertStore::load(&files_trusting(&[&chain.root], &[])).expect("store"),
                chain.leaf.cert_der(),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any bytes as certificates, mutated certificates and any ID
        /// payload: a verdict, never a panic, and never an accept.
        #[test]
        fn random_and_mutated_certificates_are_refused_without_panic(
            noise in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..4),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            id_type in any::<u8>(),
            id_body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let (store, leaf) = store();
            prop_assert!(store.verify_chain(&noise).is_err());
            let mut mutated = leaf.clone();
            for (at, xor) in flips {
                let at = at % mutated.len();
                mutated[at] ^= xor.max(1);
            }
            // Without its intermediate the leaf never verifies; mutated,
            // its parse and check must not panic either.
            prop_assert!(store.verify_chain(&[mutated.clone()]).is_err());
            let id = WireIdentity { id_type, body: id_body };
            if let Ok(cert) = X509::from_der(&mutated) {
                let _ = check_certificate_names(&cert, &id);
            }
            let _ = describe(&id);
            let _ = store.raw_key_for(&id);
        }
    }
}
