//! The remote-access tests' PKI (interop_roadwarrior.rs,
//! kernel_lab_roadwarrior.rs, interop_vip_client.rs): a root CA and the
//! gateway's ECDSA P-256 certificate ([`GW_ID`] as CN and DNS
//! subjectAltName); the clients hold no certificate (they authenticate
//! with EAP) and trust the root. Included with `#[path =
//! "support/rw_pki.rs"] mod rw_pki;` (test_pki is a dev-dependency
//! feature).

#![allow(dead_code)]

use iked_common::test_pki::{CertSpec, Issued, KeyKind, San};
use iked_tests::pki::GatewayPki;
use iked_tests::roadwarrior::{GW_ID, GW_WAN};

/// The gateway's material and what a client trusts.
pub struct RwPki {
    pub gateway: GatewayPki,
    pub client_trust: GatewayPki,
}

pub fn rw_pki() -> RwPki {
    let root =
        Issued::self_signed(&CertSpec::ca("iked road-warrior root", KeyKind::P256).serial(1));
    let gw = root.issue(
        &CertSpec::end_entity(GW_ID, KeyKind::P256)
            .sans(vec![
                San::Dns(GW_ID.to_string()),
                San::Ip(GW_WAN.parse().expect("address")),
            ])
            .serial(201),
    );
    RwPki {
        gateway: GatewayPki {
            trusted: vec![root.cert_pem()],
            chain: vec![gw.cert_pem()],
            key: gw.key_pem(),
            ..GatewayPki::default()
        },
        client_trust: trusting(&root),
    }
}

/// Material holding only `root` as trust anchor.
pub fn trusting(root: &Issued) -> GatewayPki {
    GatewayPki {
        trusted: vec![root.cert_pem()],
        ..GatewayPki::default()
    }
}
