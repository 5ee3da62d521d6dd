//! SignAuth and VerifyAuth for public-key policies through the whole
//! service: one side signs with its store, the other checks with its own.

use iked_common::config::{IdentitySpec, SignatureAuth};
use iked_common::ipc::{
    CaPolicy, CaToIkev2, CertStoreFiles, Ikev2ToCa, PeerPublicKey, SecretStoreFile, WireIdentity,
};
use iked_common::test_pki::{CertSpec, Chain, Issued, KeyKind, San};

use crate::auth::AuthService;
use crate::store::identity::{ID_DER_ASN1_DN, ID_FQDN};
use crate::store::tests::{file, files_trusting};

/// A PRF output of HMAC-SHA2-256 (transform 5) ends the signed octets.
const PRF_SHA256: u16 = 5;

fn policy(name: &str, auth: SignatureAuth, dstid: Option<IdentitySpec>) -> CaPolicy {
    CaPolicy {
        name: name.into(),
        auth,
        srcid: None,
        dstid,
    }
}

/// A service whose store trusts `root` and holds `ours` (certificate in
/// certs/ with `intermediates`, key in private/).
fn service(
    root: &Issued,
    ours: &Issued,
    intermediates: &[&Issued],
    policies: Vec<CaPolicy>,
) -> AuthService {
    let mut files = files_trusting(&[root], &[]);
    files.certs.push(file("certs/local.crt", ours.cert_pem()));
    for (i, c) in intermediates.iter().enumerate() {
        files
            .certs
            .push(file(&format!("certs/intermediate{i}.crt"), c.cert_pem()));
    }
    files.private_key = Some(SecretStoreFile {
        path: "/etc/iked/private/local.key".into(),
        bytes: ours.key_pem(),
    });
    let mut s = AuthService::default();
    s.apply(1, Vec::new(), policies, &files)
        .expect("store applies");
    s
}

fn octets() -> Vec<u8> {
    crate::signed_octets::tests::auth_input(0x08, 32, 32)
}

fn sign(s: &mut AuthService, policy: &str, peer_hashes: Vec<u16>) -> (u8, Vec<u8>, Vec<Vec<u8>>) {
    match s.handle(Ikev2ToCa::SignAuth {
        id: 1,
        policy: policy.into(),
        prf: PRF_SHA256,
        signed_octets: octets(),
        peer_hash_algorithms: peer_hashes,
        cert_authorities: Vec::new(),
        eap_session: None,
    }) {
        CaToIkev2::Auth {
            id: 1,
            auth_method,
            auth_data,
            certs,
        } => (auth_method, auth_data, certs),
        other => panic!("not signed: {other:?}"),
    }
}

struct Check<'a> {
    auth_method: u8,
    auth_data: &'a [u8],
    signed_octets: Vec<u8>,
    peer_id: WireIdentity,
    certs: Vec<Vec<u8>>,
}

/// ca's verdict: Ok(()) or the reason of the refusal.
fn verdict(s: &mut AuthService, policy: &str, check: Check<'_>) -> Result<(), String> {
    match s.handle(Ikev2ToCa::VerifyAuth {
        id: 2,
        policy: policy.into(),
        prf: PRF_SHA256,
        auth_method: check.auth_method,
        signed_octets: check.signed_octets,
        auth_data: check.auth_data.to_vec(),
        peer_id: check.peer_id,
        certs: check.certs,
        eap_session: None,
    }) {
        CaToIkev2::Verified {
            id: 2,
            ok: true,
            reason,
        } if reason.is_empty() => Ok(()),
        CaToIkev2::Verified {
            id: 2,
            ok: false,
            reason,
        } => Err(reason),
        other => panic!("no verdict: {other:?}"),
    }
}

fn fqdn(name: &str) -> WireIdentity {
    WireIdentity {
        id_type: ID_FQDN,
        body: name.as_bytes().to_vec(),
    }
}

#[test]
fn rsa_p256_and_ed25519_certificates_sign_and_verify_with_their_chains() {
    for kind in [KeyKind::Rsa(2048), KeyKind::P256, KeyKind::Ed25519] {
        let a = Chain::new(kind, &CertSpec::end_entity("a.ike.test", kind).serial(3));
        let b = Chain::new(kind, &CertSpec::end_entity("b.ike.test", kind).serial(4));
        let mut signer = service(
            &a.root,
            &a.leaf,
            &[&a.intermediate],
            vec![policy("p", SignatureAuth::Any, None)],
        );
        // The verifier trusts a's root.
        let mut checker = service(
            &a.root,
            &b.leaf,
            &[],
            vec![policy(
                "p",
                SignatureAuth::Any,
                Some(IdentitySpec::Fqdn("a.ike.test".into())),
            )],
        );
        // Ed25519 signs only with method 14 and the Identity hash (5).
        let offers = if kind == KeyKind::Ed25519 {
            [vec![5], vec![2, 5]]
        } else {
            [vec![], vec![2, 3, 4]]
        };
        for hashes in offers {
            let (method, data, certs) = sign(&mut signer, "p", hashes.clone());
            assert_eq!(
                certs,
                vec![a.leaf.cert_der(), a.intermediate.cert_der()],
                "{kind:?}"
            );
            let check = |signed_octets, peer_id| Check {
                auth_method: method,
                auth_data: &data,
                signed_octets,
                peer_id,
                certs: certs.clone(),
            };
            verdict(&mut checker, "p", check(octets(), fqdn("a.ike.test")))
                .unwrap_or_else(|e| panic!("{kind:?} method {method}: {e}"));
            // A valid signature over other octets.
            let mut other = octets();
            other[40] ^= 1;
            let e = verdict(&mut checker, "p", check(other, fqdn("a.ike.test")))
                .expect_err("wrong octets");
            println!("{kind:?} method {method}, wrong octets: {e}");
            // An ID the certificate does not name, and one dstid refuses.
            let e =
                verdict(&mut checker, "p", check(octets(), fqdn("b.ike.test"))).expect_err("dstid");
            assert!(e.contains("is not the policy's dstid"), "{e}");
        }
    }
}

#[test]
fn an_rsa_key_where_ecdsa_is_claimed_and_the_reverse_is_a_failure() {
    let rsa = Chain::new(
        KeyKind::Rsa(2048),
        &CertSpec::end_entity("a.ike.test", KeyKind::Rsa(2048)),
    );
    let ec = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("a.ike.test", KeyKind::P256),
    );
    for (signer_chain, claimed) in [(&rsa, 9u8), (&ec, 1u8)] {
        let mut signer = service(
            &signer_chain.root,
            &signer_chain.leaf,
            &[&signer_chain.intermediate],
            vec![policy("p", SignatureAuth::Any, None)],
        );
        let mut checker = service(
            &signer_chain.root,
            &ec.leaf,
            &[],
            vec![policy("p", SignatureAuth::Any, None)],
        );
        let (_, data, certs) = sign(&mut signer, "p", Vec::new());
        let e = verdict(
            &mut checker,
            "p",
            Check {
                auth_method: claimed,
                auth_data: &data,
                signed_octets: octets(),
                peer_id: fqdn("a.ike.test"),
                certs,
            },
        )
        .expect_err("mismatch");
        println!("method {claimed}: {e}");
        assert!(e.contains("but the peer's key is"), "{e}");
    }
}

#[test]
fn chain_and_identity_refusals_reach_ikev2_with_their_reason() {
    let good = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("a.ike.test", KeyKind::P256),
    );
    let expired = good.intermediate.issue(
        &CertSpec::end_entity("a.ike.test", KeyKind::P256)
            .valid_days(-30, -1)
            .serial(9),
    );
    let mut checker = service(
        &good.root,
        &good.leaf,
        &[],
        vec![policy("p", SignatureAuth::Any, None)],
    );
    let mut signer = service(
        &good.root,
        &good.leaf,
        &[&good.intermediate],
        vec![policy("p", SignatureAuth::Any, None)],
    );
    let (method, data, certs) = sign(&mut signer, "p", Vec::new());
    let check = |peer_id, certs| Check {
        auth_method: method,
        auth_data: &data,
        signed_octets: octets(),
        peer_id,
        certs,
    };
    let e = verdict(&mut checker, "p", check(fqdn("x.ike.test"), certs.clone())).expect_err("id");
    assert!(e.contains("is not named by its certificate"), "{e}");
    let e = verdict(
        &mut checker,
        "p",
        check(
            fqdn("a.ike.test"),
            vec![expired.cert_der(), good.intermediate.cert_der()],
        ),
    )
    .expect_err("expired");
    assert!(e.contains("certificate has expired"), "{e}");
    let e = verdict(
        &mut checker,
        "p",
        check(fqdn("a.ike.test"), vec![certs[0][..100].to_vec()]),
    )
    .expect_err("truncated");
    assert!(e.starts_with("certificate 1: not a DER certificate"), "{e}");
    let e = verdict(
        &mut checker,
        "p",
        check(fqdn("a.ike.test"), vec![certs[0].clone(); 100]),
    )
    .expect_err("flood");
    assert_eq!(e, "100 certificates sent, at most 16 accepted");
    let e = verdict(&mut checker, "p", check(fqdn("a.ike.test"), Vec::new())).expect_err("no cert");
    assert!(
        e.contains("no raw public key in pubkeys/ for fqdn a.ike.test"),
        "{e}"
    );
}

#[test]
fn a_dn_identity_and_the_store_announcement() {
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("a.ike.test", KeyKind::P256),
    );
    let mut s = service(
        &chain.root,
        &chain.leaf,
        &[&chain.intermediate],
        vec![
            policy("by-dn", SignatureAuth::Any, None),
            CaPolicy {
                srcid: Some(IdentitySpec::Fqdn("gw.ike.test".into())),
                ..policy("by-name", SignatureAuth::Any, None)
            },
        ],
    );
    let CaToIkev2::Store {
        generation,
        cert_authorities,
        local_ids,
    } = s.store_announcement(1)
    else {
        panic!("no Store");
    };
    assert_eq!(generation, 1);
    assert_eq!(cert_authorities, vec![chain.root.spki_sha1()]);
    let dn = WireIdentity {
        id_type: ID_DER_ASN1_DN,
        body: chain.leaf.cert.subject_name().to_der().unwrap(),
    };
    assert_eq!(
        local_ids,
        vec![
            ("by-dn".to_string(), dn.clone()),
            ("by-name".to_string(), fqdn("gw.ike.test"))
        ]
    );
    // Our DN as our ID is accepted by a peer with the same CA, and with a
    // dstid of the DN's text.
    let mut checker = service(
        &chain.root,
        &chain.leaf,
        &[],
        vec![policy(
            "p",
            SignatureAuth::Any,
            Some(IdentitySpec::Asn1Dn(
                "C=XX, O=iked test, CN=a.ike.test".into(),
            )),
        )],
    );
    let (method, data, certs) = sign(&mut s, "by-dn", vec![2]);
    verdict(
        &mut checker,
        "p",
        Check {
            auth_method: method,
            auth_data: &data,
            signed_octets: octets(),
            peer_id: dn,
            certs,
        },
    )
    .expect("DN identity");
}

#[test]
fn a_raw_public_key_from_pubkeys_authenticates_a_peer_without_certificate() {
    let peer = Issued::self_signed(
        &CertSpec::end_entity("b.ike.test", KeyKind::Ed25519)
            .sans(vec![San::Dns("b.ike.test".into())]),
    );
    // The peer signs with its key alone (no certs/).
    let mut signer = AuthService::default();
    signer
        .apply(
            1,
            Vec::new(),
            vec![CaPolicy {
                srcid: Some(IdentitySpec::Fqdn("b.ike.test".into())),
                ..policy("p", SignatureAuth::Any, None)
            }],
            &CertStoreFiles {
                private_key: Some(SecretStoreFile {
                    path: "/etc/iked/private/local.key".into(),
                    bytes: peer.key_pem(),
                }),
                ..Default::default()
            },
        )
        .unwrap();
    let (method, data, certs) = sign(&mut signer, "p", vec![2, 5]);
    assert!(certs.is_empty(), "a raw key sends no certificate");
    let mut checker = AuthService::default();
    checker
        .apply(
            1,
            Vec::new(),
            vec![policy("p", SignatureAuth::Any, None)],
            &CertStoreFiles {
                pubkeys: vec![PeerPublicKey {
                    identity: IdentitySpec::Fqdn("b.ike.test".into()),
                    file: file("pubkeys/fqdn/b.ike.test", peer.public_key_pem()),
                }],
                ..Default::default()
            },
        )
        .unwrap();
    let check = |peer_id| Check {
        auth_method: method,
        auth_data: &data,
        signed_octets: octets(),
        peer_id,
        certs: Vec::new(),
    };
    verdict(&mut checker, "p", check(fqdn("b.ike.test"))).expect("raw key");
    let e = verdict(&mut checker, "p", check(fqdn("c.ike.test"))).expect_err("unknown");
    assert!(e.contains("no raw public key"), "{e}");
}

#[test]
fn a_refused_store_keeps_the_previous_one_and_says_why() {
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("a.ike.test", KeyKind::P256),
    );
    let mut s = service(
        &chain.root,
        &chain.leaf,
        &[&chain.intermediate],
        vec![policy("p", SignatureAuth::Any, None)],
    );
    let mut broken = files_trusting(&[&chain.root], &[]);
    broken
        .ca_certs
        .push(file("ca/broken.crt", b"garbage".to_vec()));
    let e = s
        .apply(
            2,
            Vec::new(),
            vec![policy("p", SignatureAuth::Any, None)],
            &broken,
        )
        .expect_err("refused");
    assert!(e.contains("/etc/iked/ca/broken.crt"), "{e}");
    assert!(e.contains("keeping the previous one"), "{e}");
    assert_eq!(s.store_refusal(), Some(e.as_str()));
    assert_eq!(s.store_generation(), 1);
    // Still signs with the old store.
    let (_, _, certs) = sign(&mut s, "p", vec![2]);
    assert_eq!(certs.len(), 2);
    // Octets that are not AUTH input are not signed.
    let reply = s.handle(Ikev2ToCa::SignAuth {
        id: 5,
        policy: "p".into(),
        prf: PRF_SHA256,
        signed_octets: b"anything ikev2 would like signed".to_vec(),
        peer_hash_algorithms: vec![2],
        cert_authorities: Vec::new(),
        eap_session: None,
    });
    assert!(
        matches!(reply, CaToIkev2::Failed { id: 5, ref reason } if reason.starts_with("refusing to sign")),
        "{reply:?}"
    );
}
