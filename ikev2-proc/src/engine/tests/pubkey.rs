//! Issue 13: public-key authentication between two engines: certificates
//! of every key kind (test_pki), AUTH methods 1, 9, 10, 11 and 14, CERT and
//! CERTREQ on the wire in RFC 7296 order, and the refusals (a key that
//! does not fit its method, a chain of another CA, a PSK where a signature
//! is due, too many certificates) with nothing installed.
//!
//! Public-key policies are answered by the real ca code
//! (`iked_ca::auth::AuthService`) with a store of test_pki certificates,
//! as ca-proc would after the parent read `certdir`.

use super::*;

use std::collections::HashSet;

use iked_ca::auth::AuthService;
use iked_common::config::{AuthSpec, IdentitySpec, SignatureAuth};
use iked_common::ipc::{CaPolicy, CertStoreFiles, SecretStoreFile, StoreFile, WireIdentity};
use iked_common::test_pki::{CertSpec, Issued, KeyKind};
use iked_common::wire::{AuthMethod, CertEncoding, PayloadType};
use openssl::x509::X509;

/// ca for the public-key policies, and what it saw.
pub(super) struct TestCa {
    service: AuthService,
    /// The public-key policies; other policies' requests get the
    /// harness's PSK answers.
    policies: HashSet<String>,
    /// SignAuth requests: (peer hash algorithms, CERTREQ authorities).
    signs: Vec<(Vec<u16>, Vec<Vec<u8>>)>,
    /// VerifyAuth requests: (AUTH method, peer ID, CERT count).
    verifies: Vec<(u8, WireIdentity, usize)>,
    /// Verdicts given: (ok, reason).
    pub(super) verdicts: Vec<(bool, String)>,
    /// A lying signer: claim this AUTH method whatever ca signed.
    claim_method: Option<u8>,
    /// Send our chain this many times over (too many CERT payloads).
    chain_copies: usize,
}

impl TestCa {
    /// ca's answer to a request of a public-key policy; None for others.
    pub(super) fn answer(&mut self, request: &Ikev2ToCa) -> Option<CaToIkev2> {
        match request {
            Ikev2ToCa::SignAuth {
                policy,
                peer_hash_algorithms,
                cert_authorities,
                ..
            } if self.policies.contains(policy) => {
                self.signs
                    .push((peer_hash_algorithms.clone(), cert_authorities.clone()));
                Some(match self.service.handle(request.clone()) {
                    CaToIkev2::Auth {
                        id,
                        auth_method,
                        auth_data,
                        certs,
                    } => CaToIkev2::Auth {
                        id,
                        auth_method: self.claim_method.unwrap_or(auth_method),
                        auth_data,
                        certs: (0..self.chain_copies.max(1))
                            .flat_map(|_| certs.iter().cloned())
                            .collect(),
                    },
                    other => other,
                })
            }
            Ikev2ToCa::VerifyAuth {
                policy,
                auth_method,
                peer_id,
                certs,
                ..
            } if self.policies.contains(policy) => {
                self.verifies
                    .push((*auth_method, peer_id.clone(), certs.len()));
                let reply = self.service.handle(request.clone());
                if let CaToIkev2::Verified { ok, reason, .. } = &reply {
                    self.verdicts.push((*ok, reason.clone()));
                }
                Some(reply)
            }
            _ => None,
        }
    }

    /// ca's Store message after its configuration.
    fn store(&self) -> CaToIkev2 {
        self.service.store_announcement(1)
    }
}

/// A root and an intermediate CA; end entities issued under them.
pub(super) struct Pki {
    root: Issued,
    intermediate: Issued,
}

impl Pki {
    pub(super) fn new(name: &str) -> Pki {
        let root = Issued::self_signed(&CertSpec::ca(&format!("{name} root"), KeyKind::P256));
        let intermediate =
            root.issue(&CertSpec::ca(&format!("{name} intermediate"), KeyKind::P256).serial(2));
        Pki { root, intermediate }
    }

    pub(super) fn leaf(&self, common_name: &str, kind: KeyKind, serial: u32) -> Issued {
        self.intermediate
            .issue(&CertSpec::end_entity(common_name, kind).serial(serial))
    }
}

/// The subject DN test_pki gives `common_name`, as iked.conf writes it.
pub(super) fn dn(common_name: &str) -> IdentitySpec {
    IdentitySpec::Asn1Dn(format!("C=XX, O=iked test, CN={common_name}"))
}

/// A public-key version of `policy`: `ikeauth`, the peer's DN as dstid.
pub(super) fn signed(mut policy: Policy, auth: SignatureAuth, peer_cn: &str) -> Policy {
    policy.auth = AuthSpec::PublicKey(auth);
    policy.dstid = Some(dn(peer_cn));
    policy
}

/// Gives `node` a ca for `policies` (name, ikeauth, the peer's CN for
/// dstid) holding `leaf` under `pki`, trusting `trusts`; ca's Store
/// reaches the engine at once unless `store` is false.
pub(super) fn give_ca(
    node: &mut Node,
    now: Instant,
    pki: &Pki,
    leaf: &Issued,
    trusts: &Pki,
    policies: &[(&str, SignatureAuth, &str)],
    store: bool,
) {
    let file = |path: &str, bytes: Vec<u8>| StoreFile {
        path: format!("/etc/iked/{path}"),
        bytes,
    };
    let files = CertStoreFiles {
        dir: "/etc/iked".into(),
        ca_certs: vec![file("ca/ca.crt", trusts.root.cert_pem())],
        certs: vec![
            file("certs/local.crt", leaf.cert_pem()),
            file("certs/intermediate.crt", pki.intermediate.cert_pem()),
        ],
        private_key: Some(SecretStoreFile {
            path: "/etc/iked/private/local.key".into(),
            bytes: leaf.key_pem(),
        }),
        ..CertStoreFiles::default()
    };
    let ca_policies = policies
        .iter()
        .map(|(name, auth, peer)| CaPolicy {
            name: name.to_string(),
            auth: *auth,
            srcid: None,
            dstid: Some(dn(peer)),
        })
        .collect();
    let mut service = AuthService::default();
    service
        .apply(1, Vec::new(), ca_policies, &files)
        .expect("the store applies");
    let ca = TestCa {
        service,
        policies: policies.iter().map(|(p, ..)| p.to_string()).collect(),
        signs: Vec::new(),
        verifies: Vec::new(),
        verdicts: Vec::new(),
        claim_method: None,
        chain_copies: 1,
    };
    if store {
        node.engine.handle_ca(now, ca.store()).unwrap();
    }
    node.pki = Some(ca);
}

/// Gives A a ca for policy ab and B one for policy ba (`auths`), each
/// holding its leaf under its issuer's intermediate and trusting
/// `trusts`; A's Store reaches its engine at once unless `a_store` is
/// false (B's always does).
fn give_both_cas(
    w: &mut World,
    (a_issuer, a_leaf): (&Pki, &Issued),
    (b_issuer, b_leaf): (&Pki, &Issued),
    trusts: &Pki,
    (a_auth, b_auth): (SignatureAuth, SignatureAuth),
    a_store: bool,
) {
    let now = w.now;
    let a_policies = [("ab", a_auth, "b.ike.test")];
    give_ca(
        &mut w.a,
        now,
        a_issuer,
        a_leaf,
        trusts,
        &a_policies,
        a_store,
    );
    let b_policies = [("ba", b_auth, "a.ike.test")];
    give_ca(&mut w.b, now, b_issuer, b_leaf, trusts, &b_policies, true);
}

/// Configures the usual policies (A active) made public-key with
/// `a_auth` and `b_auth`, each naming the other's DN as dstid.
fn configure_signed(w: &mut World, a_auth: SignatureAuth, b_auth: SignatureAuth) {
    w.configure(
        vec![signed(a_policy(), a_auth, "b.ike.test")],
        vec![signed(b_policy(), b_auth, "a.ike.test")],
    );
}

/// A with `a_key`/`a_auth`, B with `b_key`/`b_auth`, one PKI, the usual
/// policies (A active) made public-key; configured, not yet settled.
fn cert_world(
    a_key: KeyKind,
    a_auth: SignatureAuth,
    b_key: KeyKind,
    b_auth: SignatureAuth,
) -> (World, Pki) {
    cert_world_started_by(true, (a_key, a_auth), (b_key, b_auth))
}

/// [`cert_world`] where A initiates (`a_starts`) or B does.
fn cert_world_started_by(
    a_starts: bool,
    (a_key, a_auth): (KeyKind, SignatureAuth),
    (b_key, b_auth): (KeyKind, SignatureAuth),
) -> (World, Pki) {
    let pki = Pki::new("iked");
    let mut w = unfragmented_world();
    give_both_cas(
        &mut w,
        (&pki, &pki.leaf("a.ike.test", a_key, 10)),
        (&pki, &pki.leaf("b.ike.test", b_key, 11)),
        &pki,
        (a_auth, b_auth),
        true,
    );
    let (mut pa, mut pb) = (
        signed(a_policy(), a_auth, "b.ike.test"),
        signed(b_policy(), b_auth, "a.ike.test"),
    );
    if !a_starts {
        pa.initiation = iked_common::config::PolicyInitiation::Passive;
        pb.initiation = iked_common::config::PolicyInitiation::Active;
    }
    w.b.engine
        .set_config(w.now, vec![pb], InitiationMode::Active, 0);
    w.a.engine
        .set_config(w.now, vec![pa], InitiationMode::Active, 0);
    (w, pki)
}

/// Two engines with IKE fragmentation off: these tests read IKE_AUTH's
/// payloads from its SK message, and with fragmentation on (the default)
/// a certificate chain's IKE_AUTH goes as SKF fragments instead.
/// Fragmented certificate exchanges are tested in fragments.rs and
/// against strongSwan (tests/tests/interop_cert_fragments.rs).
pub(super) fn unfragmented_world() -> World {
    let mut s = settings();
    s.fragmentation.enabled = false;
    World::with(s.clone(), s)
}

pub(super) fn ca_of(node: &Node) -> &TestCa {
    node.pki.as_ref().expect("a ca with certificates")
}

/// The decrypted payloads of the IKE_AUTH messages `from` sent, opened by
/// `to` (whose IKE SA is still there).
pub(super) fn auth_messages(from: &Node, to: &Node, response: bool) -> Vec<Vec<Payload>> {
    auth_messages_of(from, to, None, response)
}

/// [`auth_messages`] of `to`'s IKE SA `spi` only, when given.
fn auth_messages_of(
    from: &Node,
    to: &Node,
    only: Option<u64>,
    response: bool,
) -> Vec<Vec<Payload>> {
    from.sent
        .iter()
        .filter_map(|(_, _, d)| {
            let h = Header::decode(d).ok()?.header;
            if h.exchange != ExchangeType::IkeAuth || h.flags.response != response {
                return None;
            }
            // The receiver's SPI: the responder's if the initiator sent it.
            let spi = if h.flags.initiator {
                h.responder_spi
            } else {
                h.initiator_spi
            };
            if only.is_some_and(|o| o != spi) {
                return None;
            }
            open_with(to, spi, d)
        })
        .collect()
}

/// The payloads of the IKE_SA_INIT messages `node` sent.
fn sa_init_messages(node: &Node, response: bool) -> Vec<Vec<Payload>> {
    node.sent
        .iter()
        .filter_map(|(_, _, d)| Message::decode(d).ok())
        .filter(|m| {
            m.header.exchange == ExchangeType::IkeSaInit && m.header.flags.response == response
        })
        .map(|m| m.payloads)
        .collect()
}

pub(super) fn auth_method(payloads: &[Payload]) -> Option<u8> {
    payloads.iter().find_map(|p| match p {
        Payload::Authentication(a) => Some(a.method.value()),
        _ => None,
    })
}

fn established_with_child(w: &World) {
    assert_one_matching_ike(w);
    assert_one_matching_child(w);
    assert_eq!(w.a.sas.len(), 2);
    assert_eq!(w.b.sas.len(), 2);
}

/// Nothing came about: no IKE SA left, and no SA ever asked of pfkey.
fn nothing_installed(w: &World) {
    assert!(w.a.engine.ike_spis().is_empty() && w.b.engine.ike_spis().is_empty());
    assert_eq!(
        (w.a.sa_requests, w.b.sa_requests),
        (0, 0),
        "no SA install asked"
    );
    assert!(w.a.sas.is_empty() && w.b.sas.is_empty());
}

#[test]
fn every_key_kind_and_method_authenticates_both_ways() {
    use SignatureAuth::*;
    // (A's key, A's ikeauth, B's key, B's ikeauth, method A sends, method B sends).
    let cases = [
        (KeyKind::Rsa(2048), Rsa, KeyKind::Rsa(2048), Rsa, 1, 1),
        (KeyKind::P256, Ecdsa256, KeyKind::P256, Ecdsa256, 9, 9),
        (KeyKind::P384, Ecdsa384, KeyKind::P384, Ecdsa384, 10, 10),
        (KeyKind::P521, Ecdsa521, KeyKind::P521, Ecdsa521, 11, 11),
        (KeyKind::Ed25519, Any, KeyKind::Ed25519, Any, 14, 14),
        (KeyKind::Rsa(2048), Rfc7427, KeyKind::P256, Rfc7427, 14, 14),
        (KeyKind::P384, Any, KeyKind::Rsa(2048), Any, 14, 14),
        (KeyKind::Ed25519, Rfc7427, KeyKind::P521, Any, 14, 14),
    ];
    for (a_key, a_auth, b_key, b_auth, a_method, b_method) in cases {
        let what = format!("{a_key:?}/{a_auth:?} - {b_key:?}/{b_auth:?}");
        let (mut w, pki) = cert_world(a_key, a_auth, b_key, b_auth);
        w.settle();
        established_with_child(&w);
        let request = auth_messages(&w.a, &w.b, false);
        let response = auth_messages(&w.b, &w.a, true);
        assert_eq!(auth_method(&request[0]), Some(a_method), "{what}");
        assert_eq!(auth_method(&response[0]), Some(b_method), "{what}");
        // Each ca was told the other's hash algorithms and CA.
        for node in [&w.a, &w.b] {
            assert_eq!(
                ca_of(node).signs,
                vec![(vec![2, 3, 4, 5], vec![pki.root.spki_sha1()])],
                "{what}"
            );
            assert_eq!(ca_of(node).verdicts, vec![(true, String::new())], "{what}");
        }
        let (method, peer_id, certs) = ca_of(&w.b).verifies[0].clone();
        assert_eq!((method, peer_id.id_type, certs), (a_method, 9, 2), "{what}");
        assert_eq!(
            peer_id.body,
            iked_common::config::dn::to_der("C=XX, O=iked test, CN=a.ike.test").unwrap()
        );
    }
}

#[test]
fn either_side_may_initiate() {
    let (mut w, _) = cert_world_started_by(
        false,
        (KeyKind::P256, SignatureAuth::Any),
        (KeyKind::Ed25519, SignatureAuth::Rfc7427),
    );
    w.settle();
    established_with_child(&w);
    let spi = w.b.established()[0];
    assert!(w.b.engine.ike(spi).unwrap().initiator, "B initiated");
    assert_eq!(auth_method(&auth_messages(&w.b, &w.a, false)[0]), Some(14));
    assert_eq!(auth_method(&auth_messages(&w.a, &w.b, true)[0]), Some(14));
}

#[test]
fn cert_and_certreq_travel_where_rfc_7296_puts_them() {
    let (mut w, pki) = cert_world(
        KeyKind::P256,
        SignatureAuth::Any,
        KeyKind::P256,
        SignatureAuth::Any,
    );
    w.settle();
    established_with_child(&w);
    let kinds = |payloads: &[Payload]| -> Vec<PayloadType> {
        payloads.iter().map(|p| p.payload_type()).collect()
    };
    // IKE_SA_INIT: the initiator announces its hash algorithms; the
    // responder too, and asks for certificates of its CA.
    let hash_algorithms = |payloads: &[Payload]| {
        payloads.iter().find_map(|p| match p {
            Payload::Notify(n) => n.signature_hash_algorithms(),
            _ => None,
        })
    };
    let init_request = &sa_init_messages(&w.a, false)[0];
    assert_eq!(hash_algorithms(init_request), Some(vec![2, 3, 4, 5]));
    assert!(!kinds(init_request).contains(&PayloadType::CertificateRequest));
    let init_response = &sa_init_messages(&w.b, true)[0];
    assert_eq!(hash_algorithms(init_response), Some(vec![2, 3, 4, 5]));
    let certreq = |payloads: &[Payload]| {
        payloads.iter().find_map(|p| match p {
            Payload::CertificateRequest(r) => Some((r.encoding, r.authorities.clone())),
            _ => None,
        })
    };
    assert_eq!(
        certreq(init_response),
        Some((CertEncoding::X509Signature, pki.root.spki_sha1()))
    );
    // IKE_AUTH request: IDi, CERT (leaf, intermediate), N(INITIAL_CONTACT),
    // CERTREQ, IDr, AUTH, then the Child SA.
    let spi = w.a.established()[0];
    let request = &auth_messages(&w.a, &w.b, false)[0];
    assert_eq!(
        kinds(request)[..7],
        [
            PayloadType::IdInitiator,
            PayloadType::Certificate,
            PayloadType::Certificate,
            PayloadType::Notify,
            PayloadType::CertificateRequest,
            PayloadType::IdResponder,
            PayloadType::Authentication,
        ]
    );
    assert_eq!(
        certreq(request),
        Some((CertEncoding::X509Signature, pki.root.spki_sha1()))
    );
    let certs: Vec<&Vec<u8>> = request
        .iter()
        .filter_map(|p| match p {
            Payload::Certificate(c) if c.encoding == CertEncoding::X509Signature => Some(&c.data),
            _ => None,
        })
        .collect();
    assert_eq!(certs[1], &pki.intermediate.cert_der());
    assert_eq!(
        X509::from_der(certs[0])
            .unwrap()
            .subject_name()
            .to_der()
            .unwrap(),
        iked_common::config::dn::to_der("C=XX, O=iked test, CN=a.ike.test").unwrap()
    );
    // IKE_AUTH response: IDr, CERT, CERT, AUTH, then the Child SA.
    let response = &auth_messages(&w.b, &w.a, true)[0];
    assert_eq!(
        kinds(response)[..4],
        [
            PayloadType::IdResponder,
            PayloadType::Certificate,
            PayloadType::Certificate,
            PayloadType::Authentication,
        ]
    );
    // Our IDs are the DNs ca named (no srcid).
    let sa = w.a.engine.ike(spi).unwrap();
    assert_eq!(
        sa.local_id,
        iked_common::wire::Identity::DerAsn1Dn(
            iked_common::config::dn::to_der("C=XX, O=iked test, CN=a.ike.test").unwrap()
        )
    );
}

#[test]
fn a_psk_policy_sends_no_signature_payloads() {
    let mut w = unfragmented_world();
    w.handshake();
    assert_one_matching_ike(&w);
    for payloads in sa_init_messages(&w.a, false)
        .iter()
        .chain(&sa_init_messages(&w.b, true))
    {
        assert!(payloads.iter().all(|p| !matches!(
            p,
            Payload::CertificateRequest(_) | Payload::Certificate(_)
        ) && !matches!(p, Payload::Notify(n) if n.notify_type == NotifyType::SignatureHashAlgorithms)));
    }
}

#[test]
fn a_key_that_does_not_fit_its_claimed_method_is_refused_and_nothing_installed() {
    // A signs with RSA and claims ECDSA P-256 (CVE-2020-16088's shape).
    let (mut w, _) = cert_world(
        KeyKind::Rsa(2048),
        SignatureAuth::Rsa,
        KeyKind::P256,
        SignatureAuth::Any,
    );
    w.a.pki.as_mut().unwrap().claim_method = Some(9);
    let log = capture_info_log(|| w.settle());
    nothing_installed(&w);
    let (ok, reason) = ca_of(&w.b).verdicts[0].clone();
    assert!(!ok);
    assert!(reason.contains("RSA"), "{reason}");
    assert!(
        log.iter()
            .any(|l| l.contains("the initiator's AUTH is refused") && l.contains("RSA")),
        "{log:#?}"
    );
    assert_eq!(exchanges_sent(&w.b, ExchangeType::IkeAuth, true), 1);
    assert!(log.iter().any(|l| l.contains("AUTHENTICATION_FAILED")));
}

#[test]
fn a_method_the_policy_does_not_accept_is_refused_before_ca_is_asked() {
    // B wants ECDSA P-256 (9); A sends RSA (1).
    let (mut w, _) = cert_world(
        KeyKind::Rsa(2048),
        SignatureAuth::Rsa,
        KeyKind::P256,
        SignatureAuth::Ecdsa256,
    );
    let log = capture_info_log(|| w.settle());
    nothing_installed(&w);
    assert!(ca_of(&w.b).verifies.is_empty(), "ca was not asked");
    assert!(
        log.iter().any(|l| l.contains("AUTHENTICATION_FAILED")
            && l.contains("AUTH method is 1")
            && l.contains("'ecdsa256'")),
        "{log:#?}"
    );
}

#[test]
fn a_chain_of_another_ca_is_refused_and_nothing_installed() {
    let ours = Pki::new("iked");
    let theirs = Pki::new("elsewhere");
    let mut w = unfragmented_world();
    // A's certificate is of another PKI than the one B trusts.
    give_both_cas(
        &mut w,
        (&theirs, &theirs.leaf("a.ike.test", KeyKind::P256, 10)),
        (&ours, &ours.leaf("b.ike.test", KeyKind::P256, 11)),
        &ours,
        (SignatureAuth::Any, SignatureAuth::Any),
        true,
    );
    configure_signed(&mut w, SignatureAuth::Any, SignatureAuth::Any);
    let log = capture_info_log(|| w.settle());
    nothing_installed(&w);
    let (ok, reason) = ca_of(&w.b).verdicts[0].clone();
    assert!(!ok && reason.contains("certificate chain"), "{reason}");
    assert!(
        log.iter()
            .any(|l| l.contains("refused") && l.contains("AUTHENTICATION_FAILED")),
        "{log:#?}"
    );
    // A heard of it: its attempt failed (and is to be retried).
    assert!(w.a.engine.ike_spis().is_empty());
}

#[test]
fn a_psk_where_a_signature_is_due_and_the_reverse_fail_naming_both() {
    for pubkey_side_is_b in [true, false] {
        let p = Pki::new("iked");
        let mut w = unfragmented_world();
        let now = w.now;
        let (mut pa, mut pb) = (a_policy(), b_policy());
        if pubkey_side_is_b {
            give_ca(
                &mut w.b,
                now,
                &p,
                &p.leaf("b.ike.test", KeyKind::P256, 11),
                &p,
                &[("ba", SignatureAuth::Any, "a.ike.test")],
                true,
            );
            pb.auth = AuthSpec::PublicKey(SignatureAuth::Any);
        } else {
            give_ca(
                &mut w.a,
                now,
                &p,
                &p.leaf("a.ike.test", KeyKind::P256, 10),
                &p,
                &[("ab", SignatureAuth::Any, "b.ike.test")],
                true,
            );
            pa.auth = AuthSpec::PublicKey(SignatureAuth::Any);
        }
        w.configure(vec![pa], vec![pb]);
        let log = capture_info_log(|| w.settle());
        nothing_installed(&w);
        let expected = if pubkey_side_is_b {
            "the peer's AUTH method is 2 (Shared Key Message Integrity Code), policy ba is 'signature'"
        } else {
            // B announced no hash algorithms (a PSK policy): A signs with
            // its key's own method.
            "the peer's AUTH method is 9 (ECDSA with SHA-256 on the P-256 curve), policy ba is 'psk' (accepts 2)"
        };
        assert!(
            log.iter()
                .any(|l| l.contains(expected) && l.contains("AUTHENTICATION_FAILED")),
            "{pubkey_side_is_b}: {log:#?}"
        );
    }
}

#[test]
fn psk_and_certificate_policies_side_by_side() {
    let p = Pki::new("iked");
    let mut w = unfragmented_world();
    let now = w.now;
    let mut psk_a = a_policy();
    psk_a.name = "psk-ab".into();
    psk_a.srcid = Some(IdentitySpec::Fqdn("psk-a.ike.test".into()));
    let mut cert_a = signed(
        policy(
            "cert-ab",
            A,
            Some(B),
            vec![selector("10.3.0.0", 16, "10.4.0.0", 16)],
            true,
        ),
        SignatureAuth::Any,
        "b.ike.test",
    );
    cert_a.srcid = None;
    let mut psk_b = b_policy();
    psk_b.name = "psk-ba".into();
    psk_b.dstid = Some(IdentitySpec::Fqdn("psk-a.ike.test".into()));
    let cert_b = signed(
        policy(
            "cert-ba",
            B,
            Some(A),
            vec![selector("10.4.0.0", 16, "10.3.0.0", 16)],
            false,
        ),
        SignatureAuth::Any,
        "a.ike.test",
    );
    give_ca(
        &mut w.a,
        now,
        &p,
        &p.leaf("a.ike.test", KeyKind::P384, 10),
        &p,
        &[("cert-ab", SignatureAuth::Any, "b.ike.test")],
        true,
    );
    give_ca(
        &mut w.b,
        now,
        &p,
        &p.leaf("b.ike.test", KeyKind::Rsa(2048), 11),
        &p,
        &[("cert-ba", SignatureAuth::Any, "a.ike.test")],
        true,
    );
    // B lists the PSK policy first: the DN IDi must still pick cert-ba.
    w.configure(vec![psk_a, cert_a], vec![psk_b, cert_b]);
    w.settle();
    let mut policies: Vec<(String, Option<u8>)> =
        w.b.established()
            .iter()
            .map(|s| {
                let sa = w.b.engine.ike(*s).unwrap();
                let requests = auth_messages_of(&w.a, &w.b, Some(*s), false);
                (
                    sa.policy.clone(),
                    requests.first().and_then(|r| auth_method(r)),
                )
            })
            .collect();
    policies.sort();
    assert_eq!(
        policies,
        vec![
            ("cert-ba".to_string(), Some(14)),
            ("psk-ba".to_string(), Some(2))
        ]
    );
    assert_eq!(w.a.sas.len(), 4);
    assert_eq!(w.b.sas.len(), 4);
}

/// A and B with certificates; A's ca has not sent its Store yet.
fn world_without_a_store() -> World {
    let p = Pki::new("iked");
    let mut w = unfragmented_world();
    give_both_cas(
        &mut w,
        (&p, &p.leaf("a.ike.test", KeyKind::P256, 10)),
        (&p, &p.leaf("b.ike.test", KeyKind::P256, 11)),
        &p,
        (SignatureAuth::Any, SignatureAuth::Any),
        false,
    );
    configure_signed(&mut w, SignatureAuth::Any, SignatureAuth::Any);
    w
}

#[test]
fn ike_auth_waits_for_cas_store_and_goes_on_when_it_comes() {
    // As at start-up: the peer answers IKE_SA_INIT before ca has read
    // the certificate store.
    let mut w = world_without_a_store();
    let log = capture_info_log(|| w.settle());
    assert!(
        log.iter().any(|l| l.contains("IKE_AUTH waits")
            && l.contains(
                "policy ab uses public keys, and ca has not sent its certificate store yet"
            )),
        "{log:#?}"
    );
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeAuth, false), 0);
    assert_eq!(w.a.engine.ike_spis().len(), 1, "the IKE SA waits");
    // ca's Store comes a little later: IKE_AUTH goes out at once.
    w.advance_by(Duration::from_secs(2));
    let store = ca_of(&w.a).store();
    w.a.engine.handle_ca(w.now, store).unwrap();
    w.settle();
    established_with_child(&w);
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeSaInit, false), 1);
}

#[test]
fn without_cas_store_the_attempt_fails_in_time_and_is_retried() {
    let mut w = world_without_a_store();
    w.settle();
    let log = capture_info_log(|| w.advance_by(Settings::default().half_open_timeout));
    assert!(
        log.iter().any(|l| l
            .contains("policy ab: IKE_AUTH not started: no identity of ours from ca's certificate store within 30 s")),
        "{log:#?}"
    );
    assert!(w.a.engine.ike_spis().is_empty());
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeAuth, false), 0);
    // The Store comes; the policy's restart gets through.
    let store = ca_of(&w.a).store();
    w.a.engine.handle_ca(w.now, store).unwrap();
    w.advance_by(Settings::default().restart_delay + Duration::from_secs(1));
    established_with_child(&w);
}

#[test]
fn more_than_sixteen_certificates_are_refused() {
    let (mut w, _) = cert_world(
        KeyKind::P256,
        SignatureAuth::Any,
        KeyKind::P256,
        SignatureAuth::Any,
    );
    // Leaf and intermediate nine times over: 18 CERT payloads.
    w.a.pki.as_mut().unwrap().chain_copies = 9;
    let log = capture_info_log(|| w.settle());
    nothing_installed(&w);
    assert!(ca_of(&w.b).verifies.is_empty());
    assert!(
        log.iter().any(
            |l| l.contains("more than 16 CERT payloads") && l.contains("AUTHENTICATION_FAILED")
        ),
        "{log:#?}"
    );
}

#[test]
fn certificates_of_other_encodings_are_not_passed_to_ca() {
    let payloads = vec![
        Payload::Certificate(iked_common::wire::Certificate {
            encoding: CertEncoding::from_value(12),
            data: b"http://example/cert".to_vec(),
        }),
        Payload::Certificate(iked_common::wire::Certificate {
            encoding: CertEncoding::X509Signature,
            data: vec![0x30, 0x00],
        }),
    ];
    assert_eq!(
        crate::engine::signature_auth::peer_certificates(&payloads),
        Ok(vec![vec![0x30, 0x00]])
    );
    assert_eq!(AuthMethod::from_value(14).value(), 14);
}

/// `leaf`'s certificate again, its subject's O and CN as PrintableString
/// instead of UTF8String: the same name, another DER encoding.
fn with_printable_subject(pki: &Pki, leaf: Issued) -> Issued {
    use openssl::asn1::{Asn1Time, Asn1Type};
    use openssl::x509::extension::{BasicConstraints, KeyUsage};
    use openssl::x509::{X509Builder, X509NameBuilder};
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("C", "XX").unwrap();
    for (field, value) in [("O", "iked test"), ("CN", "b.ike.test")] {
        name.append_entry_by_text_with_type(field, value, Asn1Type::PRINTABLESTRING)
            .unwrap();
    }
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(leaf.cert.serial_number()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(pki.intermediate.cert.subject_name())
        .unwrap();
    b.set_pubkey(&leaf.key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.sign(
        &pki.intermediate.key,
        openssl::hash::MessageDigest::sha256(),
    )
    .unwrap();
    Issued {
        cert: b.build(),
        key: leaf.key,
    }
}

#[test]
fn a_dn_of_another_encoding_is_compared_as_a_name_not_refused_as_bytes() {
    let p = Pki::new("iked");
    let mut w = unfragmented_world();
    let b_leaf = with_printable_subject(&p, p.leaf("b.ike.test", KeyKind::P256, 11));
    let subject = b_leaf.cert.subject_name().to_der().unwrap();
    let configured = iked_common::config::dn::to_der("C=XX, O=iked test, CN=b.ike.test").unwrap();
    assert_ne!(subject, configured, "two encodings of one name");
    give_both_cas(
        &mut w,
        (&p, &p.leaf("a.ike.test", KeyKind::P256, 10)),
        (&p, &b_leaf),
        &p,
        (SignatureAuth::Any, SignatureAuth::Any),
        true,
    );
    configure_signed(&mut w, SignatureAuth::Any, SignatureAuth::Any);
    w.settle();
    established_with_child(&w);
    // B presented its certificate's own encoding; A's ca found the name
    // equal to A's dstid.
    let spi = w.a.established()[0];
    assert_eq!(
        w.a.engine.ike(spi).unwrap().peer_id,
        Some(iked_common::wire::Identity::DerAsn1Dn(subject))
    );
    assert_eq!(ca_of(&w.a).verdicts, vec![(true, String::new())]);
}

#[test]
fn the_initiator_refuses_a_responder_method_its_policy_does_not_accept() {
    // A takes only ECDSA P-256 (9); B signs with RSA under Digital
    // Signature (14).
    let (mut w, _) = cert_world(
        KeyKind::P256,
        SignatureAuth::Ecdsa256,
        KeyKind::Rsa(2048),
        SignatureAuth::Any,
    );
    let log = capture_info_log(|| w.settle());
    assert!(ca_of(&w.a).verifies.is_empty(), "A's ca was not asked");
    assert!(
        log.iter().any(|l| l.contains("responder")
            && l.contains("AUTHENTICATION_FAILED")
            && l.contains("the peer's AUTH method is 14 (Digital Signature), policy ab is 'ecdsa256' (accepts 9)")),
        "{log:#?}"
    );
    // A asked for no SA; B, which had answered and installed its Child
    // SA, drops it and the IKE SA on A's AUTHENTICATION_FAILED (RFC 7296
    // §2.21.2).
    assert_eq!(w.a.sa_requests, 0);
    assert!(w.a.engine.ike_spis().is_empty() && w.b.engine.ike_spis().is_empty());
    assert!(w.b.sas.is_empty(), "{:?}", w.b.sas.keys());
    assert!(
        log.iter()
            .any(|l| l
                .contains("refused our authentication (AUTHENTICATION_FAILED in INFORMATIONAL)"))
    );
}

#[test]
fn a_store_naming_no_identity_for_the_policy_is_waited_past() {
    // As after a reload that added the policy, before ca's new Store.
    let mut w = world_without_a_store();
    let CaToIkev2::Store {
        generation,
        cert_authorities,
        ..
    } = ca_of(&w.a).store()
    else {
        panic!("a Store");
    };
    let stale = CaToIkev2::Store {
        generation,
        cert_authorities,
        local_ids: Vec::new(),
    };
    w.a.engine.handle_ca(w.now, stale).unwrap();
    let log = capture_info_log(|| w.settle());
    assert!(
        log.iter().any(|l| l.contains(
            "IKE_AUTH waits: ca's certificate store names no identity of ours for policy ab"
        )),
        "{log:#?}"
    );
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeAuth, false), 0);
    let store = ca_of(&w.a).store();
    w.a.engine.handle_ca(w.now, store).unwrap();
    w.settle();
    established_with_child(&w);
}
