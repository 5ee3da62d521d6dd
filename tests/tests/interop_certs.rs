//! Certificate authentication between iked and strongSwan 5.9.8 in network
//! namespaces on this machine's kernel (issue 13): RSA (the interop lab's
//! `rsa` connection, AUTH method 1, with strongSwan's own openssl-made
//! PKI), RSA with RFC 7427 signatures, ECDSA P-256 (method 9) and Ed25519
//! (RFC 8420 in method 14), and ECDSA P-256 raw public keys without any
//! certificate (iked's pubkeys/, strongSwan's `pubkeys =`), each started
//! by either side; the IKE and Child SAs as both see them, the AUTH
//! method strongSwan verified, the keys byte for byte; a PKI made by
//! `ikectl ca`; and certificates iked must
//! refuse (expired, issued by a CA it does not trust, revoked by a CRL),
//! with the reason in its log and nothing installed.
//!
//! strongSwan runs with kernel-libipsec, as in interop_strongswan.rs: the
//! exchange moves to port 4500, and our own Child SA install fails here
//! (no ESP in this kernel). Traffic through real ESP is proven in the
//! kernel lab (kernel_lab_certs.rs).

#[path = "support/certs.rs"]
mod certs;

use std::time::Duration;

use iked_common::test_pki::{new_key, CertSpec, Issued, KeyKind};
use iked_tests::certlab::{
    start_strongswan_pair, strongswan_pair_context, CertConnection, CertPair, ECDSA256, ED25519,
    RAW_P256, RSA, RSA_7427,
};
use iked_tests::lab::{compare_keys, Lab, Side, SwanKernel};
use iked_tests::pki::{gen_pki_sh, GatewayPki};
use iked_tests::{show_sa, wait_until, Scratch};

use certs::{gateway, gateway_spec, TwoLevel};

/// How strongSwan 5.9.8 names, in "authentication of 'ID' with METHOD
/// successful", the AUTH method a connection's peers use.
fn swan_method_name(conn: CertConnection) -> &'static str {
    match conn.name {
        "rsa" => "RSA signature",
        // PKCS#1 v1.5 or PSS with a SHA-2 (RFC 8017, RFC 4055).
        "rsa-7427" => "RSA_EMSA_",
        "ecdsa256" => "ECDSA-256 signature",
        "ed25519" => "ED25519",
        // ECDSA in Digital Signature authentication (RFC 7427 §3).
        "raw-p256" => "ECDSA_WITH_SHA",
        other => panic!("no AUTH method name for {other}"),
    }
}

/// Each side's PKI for `conn`: the interop lab's own (gen-pki.sh, made by
/// openssl(1)) for `rsa`, test_pki certificates of the connection's key
/// type otherwise.
fn pki_for(conn: CertConnection, scratch: &Scratch) -> (GatewayPki, GatewayPki) {
    let key = match conn.name {
        "rsa" => return gen_pki_sh(&scratch.file("gen-pki")),
        "rsa-7427" => KeyKind::Rsa(2048),
        "ecdsa256" => KeyKind::P256,
        "ed25519" => KeyKind::Ed25519,
        "raw-p256" => return raw_keys(KeyKind::P256),
        other => panic!("no PKI for {other}"),
    };
    let pki = TwoLevel::new(key);
    (pki.side(Side::A), pki.side(Side::B))
}

/// Each side's key and both public keys, no certificate anywhere.
fn raw_keys(kind: KeyKind) -> (GatewayPki, GatewayPki) {
    let (a, b) = (new_key(kind), new_key(kind));
    let public = vec![
        (
            Side::A.id().to_string(),
            a.public_key_to_pem().expect("spki"),
        ),
        (
            Side::B.id().to_string(),
            b.public_key_to_pem().expect("spki"),
        ),
    ];
    let side = |key: &openssl::pkey::PKey<openssl::pkey::Private>| GatewayPki {
        key: key.private_key_to_pem_pkcs8().expect("pkcs8"),
        raw_keys: public.clone(),
        ..GatewayPki::default()
    };
    (side(&a), side(&b))
}

/// `conn` up between iked and strongSwan, started by `iked_initiates`'s
/// side; both sides' views of it, the AUTH methods, the keys; then
/// `ikectl terminate`.
fn full_round(tag: &str, conn: CertConnection, iked_initiates: bool) {
    iked_tests::require_root(tag);
    let scratch = Scratch::new(&format!("{tag}-pki"));
    let (a, b) = pki_for(conn, &scratch);
    let pair = CertPair::start(tag, conn, &a, &b);
    round(tag, conn, pair, iked_initiates);
}

/// [`full_round`] on a started pair.
fn round(tag: &str, conn: CertConnection, mut pair: CertPair, iked_initiates: bool) {
    pair.initiate(conn, iked_initiates);
    pair.wait_established(conn);

    // iked's view.
    let sa = &pair.iked_sa(conn.name);
    assert_eq!(sa["initiator"], iked_initiates, "{sa}");
    assert_eq!(sa["local_id"], "a.ike.test", "{sa}");
    assert_eq!(sa["peer_id"], "b.ike.test", "{sa}");
    let child = &sa["children"][0];
    assert_eq!(
        (
            child["local_ts"][0].as_str(),
            child["remote_ts"][0].as_str()
        ),
        (
            Some(conn.local_ts(Side::A).as_str()),
            Some(conn.local_ts(Side::B).as_str())
        ),
        "{sa}"
    );
    // strongSwan's view: the IKE SA between the two FQDNs, the Child SA
    // with the selectors.
    let swan = pair.swan.list_sas();
    println!("{tag}: swanctl --list-sas:\n{swan}");
    println!(
        "{tag}: ikectl show sa:\n{}",
        String::from_utf8_lossy(&pair.iked.ikectl(&["show", "sa"]).stdout)
    );
    for needle in [
        format!("{}: #", conn.name),
        "ESTABLISHED".to_string(),
        "local  'b.ike.test'".to_string(),
        "remote 'a.ike.test'".to_string(),
        "INSTALLED".to_string(),
        format!("local  {}", conn.local_ts(Side::B)),
        format!("remote {}", conn.local_ts(Side::A)),
    ] {
        assert!(swan.contains(&needle), "no {needle:?} in:\n{swan}");
    }
    // The AUTH method each side verified of the other: strongSwan says it;
    // iked's AUTH payload must be the connection's method, and strongSwan
    // must have signed with it too (iked accepted it).
    let log = pair.swan.log_text();
    let method = swan_method_name(conn);
    let verified = log
        .lines()
        .find(|l| l.contains("authentication of 'a.ike.test' with"))
        .unwrap_or_else(|| panic!("strongSwan verified no AUTH of iked\n{}", pair.context()));
    println!("{tag}: strongSwan: {}", verified.trim());
    assert!(
        verified.contains(method) && verified.contains("successful"),
        "iked's AUTH is not {method}: {verified}"
    );
    let signed = log
        .lines()
        .find(|l| l.contains("authentication of 'b.ike.test' (myself) with"))
        .unwrap_or_else(|| panic!("strongSwan signed nothing\n{}", pair.context()));
    assert!(signed.contains(method), "strongSwan signed with: {signed}");
    // strongSwan received iked's certificate (it asked with CERTREQ), or,
    // with raw keys, none.
    assert_eq!(
        log.contains("received end entity cert"),
        !conn.raw_keys,
        "CERT payloads from iked\n{}",
        pair.context()
    );
    let compared = compare_keys(&log, &pair.iked.log_text())
        .unwrap_or_else(|e| panic!("{e}\n{}", pair.context()));
    assert!(compared >= 8, "only {compared} keys compared");
    println!("{tag}: {compared} keys equal on both sides");
    pair.iked
        .wait_for_log("cannot install Child SA", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", pair.context()));

    let out = pair.iked.ikectl(&["terminate", conn.name]);
    assert!(
        out.status.success(),
        "ikectl terminate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(
        "the SA gone on both sides",
        Duration::from_secs(15),
        || {
            show_sa(&pair.iked)
                .iter()
                .all(|sa| sa["policy"] != conn.name)
                && !pair.swan.list_sas().contains(conn.name)
        },
        || pair.context(),
    );
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn rsa_iked_initiates() {
    full_round("ci13-rsa-i", RSA, true);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn rsa_strongswan_initiates() {
    full_round("ci13-rsa-r", RSA, false);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn rsa_rfc7427_iked_initiates() {
    full_round("ci13-r7427-i", RSA_7427, true);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn rsa_rfc7427_strongswan_initiates() {
    full_round("ci13-r7427-r", RSA_7427, false);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn ecdsa_p256_iked_initiates() {
    full_round("ci13-p256-i", ECDSA256, true);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn ecdsa_p256_strongswan_initiates() {
    full_round("ci13-p256-r", ECDSA256, false);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn ed25519_iked_initiates() {
    full_round("ci13-ed-i", ED25519, true);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn ed25519_strongswan_initiates() {
    full_round("ci13-ed-r", ED25519, false);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn raw_p256_public_keys_iked_initiates() {
    full_round("ci13-raw-i", RAW_P256, true);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn raw_p256_public_keys_strongswan_initiates() {
    full_round("ci13-raw-r", RAW_P256, false);
}

/// `ikectl ca` (built on the openssl crate) makes the PKI: a CA with its
/// default ECDSA P-256 key, certificates for a.ike.test and b.ike.test.
/// `ikectl ca lab install` and `ikectl ca lab certificate a.ike.test
/// install` write iked's certdir (its CRL included); strongSwan gets the
/// CA's certificate and CRL and b.ike.test's certificate and key from the
/// CA directory. Each side accepts the other's ikectl-made certificate.
fn ikectl_pki_round(tag: &str, iked_initiates: bool) {
    iked_tests::require_root(tag);
    let scratch = Scratch::new(&format!("{tag}-ikectl"));
    let base = scratch.file("ssl");
    let certdir = scratch.file("iked");
    let ikectl = |args: &[&str]| {
        let out = std::process::Command::new(iked_tests::binary("ikectl"))
            .args(args)
            .env("IKECTL_CA_DIR", &base)
            .current_dir(&scratch.0)
            .output()
            .expect("run ikectl");
        assert!(
            out.status.success(),
            "ikectl {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dir = certdir.to_str().expect("path");
    ikectl(&["ca", "lab", "create"]);
    for side in [Side::A, Side::B] {
        ikectl(&["ca", "lab", "certificate", side.id(), "create"]);
    }
    ikectl(&["ca", "lab", "install", dir]);
    ikectl(&["ca", "lab", "certificate", Side::A.id(), "install", dir]);
    let ca_dir = base.join("lab");
    let read = |p: &str| {
        std::fs::read(ca_dir.join(p)).unwrap_or_else(|e| panic!("{}/{p}: {e}", ca_dir.display()))
    };
    let b = GatewayPki {
        trusted: vec![read("ca.crt")],
        chain: vec![read(&format!("{}.crt", Side::B.id()))],
        key: read(&format!("private/{}.key", Side::B.id())),
        crls: vec![read("ca.crl")],
        ..GatewayPki::default()
    };
    let pair = CertPair::start_with_certdir(
        Lab::new(tag),
        SwanKernel::Libipsec,
        tag,
        ECDSA256,
        &certdir,
        &b,
    );
    round(tag, ECDSA256, pair, iked_initiates);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn an_ikectl_made_pki_works_with_strongswan_iked_initiates() {
    ikectl_pki_round("ci13-ikca-i", true);
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn an_ikectl_made_pki_works_with_strongswan_strongswan_initiates() {
    ikectl_pki_round("ci13-ikca-r", false);
}

/// The harness itself: strongSwan on both sides with the same PKIs and
/// connections accepts them (so that a failure against iked is iked's).
#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn strongswan_accepts_the_test_pkis_between_two_strongswans() {
    iked_tests::require_root("strongswan_accepts_the_test_pkis_between_two_strongswans");
    for conn in [RSA, RSA_7427, ECDSA256, ED25519] {
        let scratch = Scratch::new("ci13-swan2-pki");
        let (a, b) = pki_for(conn, &scratch);
        let lab = Lab::new("ci13-swan2");
        let (swan_a, swan_b) = start_strongswan_pair(&lab, conn, &a, &b);
        let out = swan_a.swanctl(&["--initiate", "--child", conn.name, "--timeout", "30"]);
        let context = || strongswan_pair_context(&swan_a, &swan_b);
        assert!(
            out.status.success(),
            "{}: {}\n{}",
            conn.name,
            String::from_utf8_lossy(&out.stdout),
            context()
        );
        let verified = swan_b
            .log_text()
            .lines()
            .find(|l| l.contains("authentication of 'a.ike.test' with"))
            .map(str::to_string)
            .unwrap_or_default();
        println!("{}: {}", conn.name, verified.trim());
        assert!(
            verified.contains(swan_method_name(conn)),
            "{}: {verified}\n{}",
            conn.name,
            context()
        );
        assert!(swan_b.list_sas().contains("INSTALLED"), "{}", context());
    }
}

/// strongSwan presents a certificate iked must refuse: the IKE SA fails
/// with AUTHENTICATION_FAILED, iked's log gives `reason` (every word of
/// it on one line), and no Child SA exists on either side (nothing in the
/// kernel's SAD).
fn refused(tag: &str, a: &GatewayPki, b: &GatewayPki, reason: &[&str], iked_initiates: bool) {
    refused_on(tag, RSA_7427, a, b, reason, iked_initiates)
}

/// [`refused`] on connection `conn`.
fn refused_on(
    tag: &str,
    conn: CertConnection,
    a: &GatewayPki,
    b: &GatewayPki,
    reason: &[&str],
    iked_initiates: bool,
) {
    iked_tests::require_root(tag);
    let pair = CertPair::start(tag, conn, a, b);
    if iked_initiates {
        let out = pair.iked.ikectl(&["initiate", conn.name]);
        assert!(
            out.status.success(),
            "ikectl initiate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        pair.swan_initiation_fails(conn);
    }
    let has_reason = |log: &str| {
        log.lines()
            .find(|l| reason.iter().all(|r| l.contains(r)))
            .map(str::to_string)
    };
    wait_until(
        "iked to refuse the certificate",
        Duration::from_secs(30),
        || has_reason(&pair.iked.log_text()).is_some(),
        || format!("wanted a line with {reason:?}\n{}", pair.context()),
    );
    let log = pair.iked.log_text();
    println!(
        "{tag}: iked: {}",
        has_reason(&log).unwrap_or_default().trim()
    );
    // strongSwan learns of it (AUTHENTICATION_FAILED in the IKE_AUTH
    // response, or in an INFORMATIONAL when iked initiated), and no SA
    // lives on.
    wait_until(
        "strongSwan told of the failure, and no SA left",
        Duration::from_secs(30),
        || {
            let swan_log = pair.swan.log_text();
            // "received AUTHENTICATION_FAILED notify error" (its IKE_AUTH
            // request refused), or "INFORMATIONAL request 2 [ N(AUTH_FAILED)
            // ]" (its response refused, RFC 7296 §2.21.2).
            (swan_log.contains("AUTHENTICATION_FAILED") || swan_log.contains("N(AUTH_FAILED)"))
                && !pair.swan.list_sas().contains("INSTALLED")
                && show_sa(&pair.iked).iter().all(|sa| {
                    sa["state"] != "established"
                        && sa["children"].as_array().is_none_or(|c| c.is_empty())
                })
        },
        || pair.context(),
    );
    let states = pair.lab.exec(Side::A, &["ip", "xfrm", "state", "list"]);
    let states = String::from_utf8_lossy(&states.stdout);
    assert!(states.trim().is_empty(), "SAs in the kernel:\n{states}");
    let log = pair.iked.log_text();
    assert!(
        !log.contains("installing"),
        "nothing may be installed:\n{log}"
    );
}

/// A PKI whose b.ike.test certificate expired yesterday (same root as
/// iked's own: only the validity is wrong).
fn with_expired_b() -> (GatewayPki, GatewayPki) {
    let good = TwoLevel::new(KeyKind::Rsa(2048));
    let expired = good
        .root
        .issue(&gateway_spec(Side::B, KeyKind::Rsa(2048)).valid_days(-30, -1));
    (good.side(Side::A), gateway(&[&good.root], &[], &expired))
}

/// A PKI where b.ike.test's certificate comes from a root iked does not
/// trust (strongSwan trusts both roots, so only iked refuses).
fn with_b_from_another_ca() -> (GatewayPki, GatewayPki) {
    let good = TwoLevel::new(KeyKind::Rsa(2048));
    let other = Issued::self_signed(&CertSpec::ca("some other root", KeyKind::Rsa(2048)));
    let b = other.issue(&gateway_spec(Side::B, KeyKind::Rsa(2048)));
    (good.side(Side::A), gateway(&[&good.root, &other], &[], &b))
}

/// A PKI where iked's crls/ holds the root's CRL, which revokes
/// b.ike.test's certificate (and strongSwan, without the CRL, accepts
/// iked's).
fn with_b_revoked() -> (GatewayPki, GatewayPki) {
    let good = TwoLevel::new(KeyKind::Rsa(2048));
    let crl = good.root.crl(&[&good.b], 30).to_pem().expect("crl pem");
    let mut a = good.side(Side::A);
    a.crls.push(crl);
    (a, good.side(Side::B))
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn a_certificate_of_the_initiator_revoked_by_a_crl_is_refused() {
    let (a, b) = with_b_revoked();
    refused(
        "ci13-revoked-r",
        &a,
        &b,
        &["peer refused", "revoked", "CN=b.ike.test"],
        false,
    );
}

/// Key-type mismatch end to end (CVE-2020-16088 was one in OpenIKED):
/// iked's policy takes ECDSA P-256 (`ikeauth ecdsa256`), strongSwan signs
/// with its RSA certificate (method 1): refused, never a match.
#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn an_rsa_signature_where_the_policy_takes_ecdsa256_is_refused() {
    let pki = TwoLevel::new(KeyKind::Rsa(2048));
    let conn = CertConnection {
        name: "mismatch",
        ikeauth: Some("ecdsa256"),
        ..RSA
    };
    refused_on(
        "ci13-keytype-r",
        conn,
        &pki.side(Side::A),
        &pki.side(Side::B),
        &[
            "refused with AUTHENTICATION_FAILED",
            "AUTH method is 1",
            "accepts 9",
        ],
        false,
    );
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn an_expired_certificate_of_the_initiator_is_refused() {
    let (a, b) = with_expired_b();
    refused(
        "ci13-expired-r",
        &a,
        &b,
        &["peer refused", "certificate has expired", "CN=b.ike.test"],
        false,
    );
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn an_expired_certificate_of_the_responder_is_refused() {
    let (a, b) = with_expired_b();
    refused(
        "ci13-expired-i",
        &a,
        &b,
        &["peer refused", "certificate has expired", "CN=b.ike.test"],
        true,
    );
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn a_certificate_of_the_initiator_from_an_untrusted_ca_is_refused() {
    let (a, b) = with_b_from_another_ca();
    refused(
        "ci13-wrongca-r",
        &a,
        &b,
        &[
            "peer refused",
            "unable to get local issuer certificate",
            "CN=b.ike.test",
        ],
        false,
    );
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by scripts/test-all.sh"]
fn a_certificate_of_the_responder_from_an_untrusted_ca_is_refused() {
    let (a, b) = with_b_from_another_ca();
    refused(
        "ci13-wrongca-i",
        &a,
        &b,
        &[
            "peer refused",
            "unable to get local issuer certificate",
            "CN=b.ike.test",
        ],
        true,
    );
}
