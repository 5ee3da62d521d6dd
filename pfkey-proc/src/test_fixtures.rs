//! Fixtures shared by the unit tests of the codecs, the flow checks and
//! the service.

use std::net::IpAddr;

use iked_common::kernel::{
    Encryption, IpsecMode, IpsecProtocol, Lifetime, PolicyDirection, PolicyParams, SaId, SaParams,
    SaTemplate, SecretBytes, Selector,
};

/// Hex with spaces and `z<N>` runs of N zero octets, for readable layouts.
pub fn bytes(spec: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for token in spec.split_whitespace() {
        if let Some(n) = token.strip_prefix('z') {
            out.resize(out.len() + n.parse::<usize>().unwrap(), 0);
        } else {
            out.extend(hex::decode(token).unwrap());
        }
    }
    out
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `src/sp -> dst/dp`, any protocol and port.
pub fn net(src: &str, sp: u8, dst: &str, dp: u8) -> Selector {
    Selector::between(ip(src), sp, ip(dst), dp)
}

/// 10.1.0.0/16 -> 10.2.0.0/16, any protocol: the flow most tests use.
pub fn flow_selector() -> Selector {
    net("10.1.0.0", 16, "10.2.0.0", 16)
}

/// The outbound ESP tunnel policy 192.0.2.1 -> 192.0.2.2 for
/// [`flow_selector`], reqid 5, priority 1000.
pub fn tunnel_policy() -> PolicyParams {
    PolicyParams {
        selector: flow_selector(),
        direction: PolicyDirection::Out,
        priority: 1000,
        template: SaTemplate {
            src: ip("192.0.2.1"),
            dst: ip("192.0.2.2"),
            protocol: IpsecProtocol::Esp,
            mode: IpsecMode::Tunnel,
            reqid: 5,
        },
    }
}

/// An ESP tunnel SA with AES-GCM-16 (a constant 20-octet key), reqid 1,
/// window 32, the default Child SA lifetime (10800 s soft, 11880 s hard):
/// within every limit of a flow with the default [`SaLimits`].
///
/// [`SaLimits`]: iked_common::kernel::SaLimits
pub fn esp_gcm_sa(src: &str, dst: &str, spi: u32, selector: Selector) -> SaParams {
    SaParams {
        id: SaId {
            src: ip(src),
            dst: ip(dst),
            protocol: IpsecProtocol::Esp,
            spi,
        },
        mode: IpsecMode::Tunnel,
        reqid: 1,
        selector,
        encryption: Encryption::AesGcm16,
        encryption_key: SecretBytes::new(vec![3; 20]),
        integrity: None,
        integrity_key: SecretBytes::new(vec![]),
        lifetime: Lifetime {
            soft_seconds: 10_800,
            hard_seconds: 11_880,
            ..Lifetime::default()
        },
        replay_window: 32,
        esn: false,
        encap: None,
    }
}
