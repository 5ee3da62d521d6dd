//! Test PKIs for the certificate tests (interop_certs.rs,
//! interop_cert_fragments.rs, kernel_lab_certs.rs), made with
//! `iked_common::test_pki` and handed to the layout writers of
//! `iked_tests::pki` as PEM. Included by each of those files with
//! `#[path = "support/certs.rs"] mod certs;`: test_pki is a dev-dependency
//! feature, which the tests library (also built for the daemon's
//! workspace builds) must not use.

#![allow(dead_code)]

use iked_common::test_pki::{CertSpec, Issued, KeyKind, San};
use iked_tests::lab::Side;
use iked_tests::pki::GatewayPki;

/// A gateway's end-entity certificate: CN and DNS subjectAltName its FQDN
/// identity, also its outer address as an IP subjectAltName.
pub fn gateway_spec(side: Side, key: KeyKind) -> CertSpec {
    CertSpec::end_entity(side.id(), key)
        .sans(vec![
            San::Dns(side.id().to_string()),
            San::Ip(side.outer_v4().parse().expect("address")),
        ])
        .serial(match side {
            Side::A => 101,
            Side::B => 102,
        })
}

/// One side's material: trusting `trusted`, holding `leaf` issued below
/// `intermediates` (nearest first).
pub fn gateway(trusted: &[&Issued], intermediates: &[&Issued], leaf: &Issued) -> GatewayPki {
    let mut chain = vec![leaf.cert_pem()];
    chain.extend(intermediates.iter().map(|i| i.cert_pem()));
    GatewayPki {
        trusted: trusted.iter().map(|t| t.cert_pem()).collect(),
        chain,
        key: leaf.key_pem(),
        ..GatewayPki::default()
    }
}

/// A root CA and the two gateways' certificates directly below it, every
/// key of `key`.
pub struct TwoLevel {
    pub root: Issued,
    pub a: Issued,
    pub b: Issued,
}

impl TwoLevel {
    pub fn new(key: KeyKind) -> TwoLevel {
        let root = Issued::self_signed(&CertSpec::ca("iked interop root", key).serial(1));
        let a = root.issue(&gateway_spec(Side::A, key));
        let b = root.issue(&gateway_spec(Side::B, key));
        TwoLevel { root, a, b }
    }

    pub fn side(&self, side: Side) -> GatewayPki {
        let leaf = if side == Side::A { &self.a } else { &self.b };
        gateway(&[&self.root], &[], leaf)
    }
}

/// Root, intermediate and the two gateways' certificates below the
/// intermediate: each side sends a 2-certificate chain and trusts the root.
pub struct ThreeLevel {
    pub root: Issued,
    pub intermediate: Issued,
    pub a: Issued,
    pub b: Issued,
}

impl ThreeLevel {
    pub fn new(key: KeyKind) -> ThreeLevel {
        let root = Issued::self_signed(&CertSpec::ca("iked interop root", key).serial(1));
        let intermediate = root.issue(&CertSpec::ca("iked interop intermediate", key).serial(2));
        let a = intermediate.issue(&gateway_spec(Side::A, key));
        let b = intermediate.issue(&gateway_spec(Side::B, key));
        ThreeLevel {
            root,
            intermediate,
            a,
            b,
        }
    }

    /// `side`'s material: it sends its leaf and the intermediate, and
    /// trusts the root and (as strongSwan 5.9.8 sends no intermediate) the
    /// intermediate too.
    pub fn side(&self, side: Side) -> GatewayPki {
        let leaf = if side == Side::A { &self.a } else { &self.b };
        gateway(
            &[&self.root, &self.intermediate],
            &[&self.intermediate],
            leaf,
        )
    }
}
