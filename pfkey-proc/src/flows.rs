//! The gate between ikev2-proc and the kernel: a request is carried out only
//! if a configured flow covers it. ikev2-proc parses untrusted packets and
//! may be compromised; this check is what keeps it from installing an SA for
//! a peer nobody configured, traffic no policy names, or a weak transform.

use std::net::IpAddr;

use iked_common::kernel::{
    FailureKind, Flow, IpsecProtocol, KernelFailure, PolicyDirection, PolicyParams, SaParams,
};

use crate::backend::local_failure;

fn refused(message: String) -> KernelFailure {
    local_failure(FailureKind::NotPermitted, format!("refused: {message}"))
}

/// Which way an SA carries traffic, seen from us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaDirection {
    /// From us to the peer.
    Outbound,
    /// From the peer to us.
    Inbound,
}

fn sa_direction(flow: &Flow, src: IpAddr, dst: IpAddr) -> Option<SaDirection> {
    if src == flow.local && flow.peer.admits(dst) {
        Some(SaDirection::Outbound)
    } else if flow.peer.admits(src) && dst == flow.local {
        Some(SaDirection::Inbound)
    } else {
        None
    }
}

/// An SPI may be allocated only for an inbound SA from a configured peer.
/// SPIs 0-255 are reserved (RFC 4303 §2.1).
pub fn check_spi_request(
    flows: &[Flow],
    src: IpAddr,
    dst: IpAddr,
    protocol: IpsecProtocol,
    min: u32,
    max: u32,
) -> Result<&Flow, KernelFailure> {
    if min < 256 || min > max {
        return Err(local_failure(
            FailureKind::Invalid,
            format!("SPI range 0x{min:x}-0x{max:x} is empty or reserved (RFC 4303 §2.1)"),
        ));
    }
    let _ = protocol; // ESP is the only protocol the type admits.
    flows
        .iter()
        .find(|f| sa_direction(f, src, dst) == Some(SaDirection::Inbound))
        .ok_or_else(|| {
            refused(format!(
                "SPI for SA {src} -> {dst}: no configured flow has peer {src} and local {dst}"
            ))
        })
}

/// An SA must join the two gateways of a flow in its mode, carry only
/// traffic inside the flow (in the SA's direction), and use transforms the
/// flow allows.
pub fn check_sa<'f>(flows: &'f [Flow], sa: &SaParams) -> Result<&'f Flow, KernelFailure> {
    if sa.id.spi < 256 {
        return Err(local_failure(
            FailureKind::Invalid,
            format!("{}: SPI below 256 is reserved (RFC 4303 §2.1)", sa.id),
        ));
    }
    let candidates: Vec<(&Flow, SaDirection)> = flows
        .iter()
        .filter_map(|f| sa_direction(f, sa.id.src, sa.id.dst).map(|d| (f, d)))
        .collect();
    if candidates.is_empty() {
        return Err(refused(format!(
            "{}: no configured flow names these gateways",
            sa.id
        )));
    }
    let mut reasons = Vec::new();
    for (flow, direction) in candidates {
        let allowed_traffic = match direction {
            SaDirection::Outbound => flow.selector,
            SaDirection::Inbound => flow.selector.reversed(),
        };
        if flow.mode != sa.mode {
            reasons.push(format!("flow {} wants {:?} mode", flow.name, flow.mode));
        } else if !allowed_traffic.contains(&sa.selector) {
            reasons.push(format!(
                "traffic {} is outside flow {} ({})",
                sa.selector, flow.name, allowed_traffic
            ));
        } else if !flow.encryption.contains(&sa.encryption) {
            reasons.push(format!(
                "flow {} does not allow {}",
                flow.name,
                sa.encryption.name()
            ));
        } else if let Some(integrity) = sa.integrity.filter(|i| !flow.integrity.contains(i)) {
            reasons.push(format!(
                "flow {} does not allow {}",
                flow.name,
                integrity.name()
            ));
        } else if let Err(reason) = crate::sa_limits::check_limits(flow, sa, direction) {
            reasons.push(reason);
        } else {
            return Ok(flow);
        }
    }
    Err(refused(format!("{}: {}", sa.id, reasons.join("; "))))
}

/// A policy must select traffic inside a flow (reversed for in and fwd) and
/// require an SA between that flow's gateways in its mode.
pub fn check_policy<'f>(flows: &'f [Flow], p: &PolicyParams) -> Result<&'f Flow, KernelFailure> {
    if !p.selector.is_well_formed() {
        return Err(local_failure(
            FailureKind::Invalid,
            format!("malformed selector {}", p.selector),
        ));
    }
    let mut reasons = Vec::new();
    for flow in flows {
        let (allowed, gateways_match) = match p.direction {
            PolicyDirection::Out => (
                flow.selector,
                p.template.src == flow.local && flow.peer.admits(p.template.dst),
            ),
            PolicyDirection::In | PolicyDirection::Fwd => (
                flow.selector.reversed(),
                flow.peer.admits(p.template.src) && p.template.dst == flow.local,
            ),
        };
        if !allowed.contains(&p.selector) {
            continue;
        }
        if !gateways_match {
            reasons.push(format!(
                "flow {} protects it between {} and {}, not {} and {}",
                flow.name, flow.local, flow.peer, p.template.src, p.template.dst
            ));
        } else if p.template.mode != flow.mode {
            reasons.push(format!("flow {} wants {:?} mode", flow.name, flow.mode));
        } else {
            return Ok(flow);
        }
    }
    if reasons.is_empty() {
        reasons.push("no configured flow contains this traffic".into());
    }
    Err(refused(format!(
        "policy {} dir {:?}: {}",
        p.selector,
        p.direction,
        reasons.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{esp_gcm_sa, ip, net};
    use iked_common::kernel::{Encryption, Integrity, IpsecMode, SaTemplate, Selector};

    fn flows() -> Vec<Flow> {
        vec![Flow {
            name: "site".into(),
            selector: net("10.1.0.0", 16, "10.2.0.0", 16),
            local: ip("192.0.2.1"),
            peer: iked_common::kernel::FlowPeer::Address(ip("192.0.2.2")),
            mode: IpsecMode::Tunnel,
            encryption: vec![Encryption::AesGcm16],
            integrity: vec![],
            limits: iked_common::kernel::SaLimits::default(),
            pools: Vec::new(),
            virtual_ip_interface: None,
        }]
    }

    fn sa(src: &str, dst: &str, selector: Selector) -> SaParams {
        esp_gcm_sa(src, dst, 0x1000, selector)
    }

    #[test]
    fn sas_inside_a_flow_pass_in_both_directions() {
        let f = flows();
        let out = sa(
            "192.0.2.1",
            "192.0.2.2",
            net("10.1.0.0", 16, "10.2.3.0", 24),
        );
        assert_eq!(check_sa(&f, &out).unwrap().name, "site");
        let inb = sa(
            "192.0.2.2",
            "192.0.2.1",
            net("10.2.3.0", 24, "10.1.0.0", 16),
        );
        assert_eq!(check_sa(&f, &inb).unwrap().name, "site");
    }

    #[test]
    fn sa_for_unknown_peer_is_refused() {
        let bad = sa(
            "192.0.2.1",
            "198.51.100.9",
            net("10.1.0.0", 16, "10.2.0.0", 16),
        );
        let err = check_sa(&flows(), &bad).unwrap_err();
        assert_eq!(err.kind, FailureKind::NotPermitted);
        assert!(
            err.message
                .contains("no configured flow names these gateways"),
            "{}",
            err.message
        );
    }

    #[test]
    fn sa_outside_the_flow_or_with_wrong_direction_is_refused() {
        let f = flows();
        let wider = sa("192.0.2.1", "192.0.2.2", net("10.0.0.0", 8, "10.2.0.0", 16));
        assert!(check_sa(&f, &wider)
            .unwrap_err()
            .message
            .contains("outside flow site"));
        // Outbound SA carrying the inbound traffic.
        let reversed = sa(
            "192.0.2.1",
            "192.0.2.2",
            net("10.2.0.0", 16, "10.1.0.0", 16),
        );
        assert_eq!(
            check_sa(&f, &reversed).unwrap_err().kind,
            FailureKind::NotPermitted
        );
    }

    #[test]
    fn sa_with_an_algorithm_or_mode_the_flow_does_not_allow_is_refused() {
        let f = flows();
        let mut cbc = sa(
            "192.0.2.1",
            "192.0.2.2",
            net("10.1.0.0", 16, "10.2.0.0", 16),
        );
        cbc.encryption = Encryption::AesCbc;
        cbc.integrity = Some(Integrity::HmacSha256_128);
        let err = check_sa(&f, &cbc).unwrap_err();
        assert!(
            err.message.contains("does not allow aes-cbc"),
            "{}",
            err.message
        );
        let mut transport = sa(
            "192.0.2.1",
            "192.0.2.2",
            net("10.1.0.0", 16, "10.2.0.0", 16),
        );
        transport.mode = IpsecMode::Transport;
        assert!(check_sa(&f, &transport)
            .unwrap_err()
            .message
            .contains("Tunnel mode"));
    }

    #[test]
    fn reserved_spis_are_invalid() {
        let mut low = sa(
            "192.0.2.1",
            "192.0.2.2",
            net("10.1.0.0", 16, "10.2.0.0", 16),
        );
        low.id.spi = 255;
        assert_eq!(
            check_sa(&flows(), &low).unwrap_err().kind,
            FailureKind::Invalid
        );
        let f = flows();
        let e = check_spi_request(
            &f,
            ip("192.0.2.2"),
            ip("192.0.2.1"),
            IpsecProtocol::Esp,
            1,
            9,
        )
        .unwrap_err();
        assert_eq!(e.kind, FailureKind::Invalid);
    }

    #[test]
    fn spi_only_for_inbound_sas_from_a_configured_peer() {
        let f = flows();
        let esp = IpsecProtocol::Esp;
        assert!(
            check_spi_request(&f, ip("192.0.2.2"), ip("192.0.2.1"), esp, 256, u32::MAX).is_ok()
        );
        let outbound = check_spi_request(&f, ip("192.0.2.1"), ip("192.0.2.2"), esp, 256, u32::MAX)
            .unwrap_err();
        assert_eq!(outbound.kind, FailureKind::NotPermitted);
        let stranger =
            check_spi_request(&f, ip("203.0.113.5"), ip("192.0.2.1"), esp, 256, u32::MAX)
                .unwrap_err();
        assert_eq!(stranger.kind, FailureKind::NotPermitted);
    }

    fn policy(dir: PolicyDirection, sel: Selector, src: &str, dst: &str) -> PolicyParams {
        PolicyParams {
            selector: sel,
            direction: dir,
            priority: 1000,
            template: SaTemplate {
                src: ip(src),
                dst: ip(dst),
                protocol: IpsecProtocol::Esp,
                mode: IpsecMode::Tunnel,
                reqid: 1,
            },
        }
    }

    #[test]
    fn policies_follow_direction_and_template_endpoints() {
        let f = flows();
        let out = net("10.1.0.0", 16, "10.2.0.0", 16);
        assert!(check_policy(
            &f,
            &policy(PolicyDirection::Out, out, "192.0.2.1", "192.0.2.2")
        )
        .is_ok());
        let inb = out.reversed();
        assert!(check_policy(
            &f,
            &policy(PolicyDirection::In, inb, "192.0.2.2", "192.0.2.1")
        )
        .is_ok());
        assert!(check_policy(
            &f,
            &policy(PolicyDirection::Fwd, inb, "192.0.2.2", "192.0.2.1")
        )
        .is_ok());
        // In-policy with the outbound selector: outside every flow.
        let e = check_policy(
            &f,
            &policy(PolicyDirection::In, out, "192.0.2.2", "192.0.2.1"),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("no configured flow contains this traffic"),
            "{}",
            e.message
        );
        // Right traffic, tunnel to a third party: would divert the flow.
        let e = check_policy(
            &f,
            &policy(PolicyDirection::Out, out, "192.0.2.1", "203.0.113.5"),
        )
        .unwrap_err();
        assert_eq!(e.kind, FailureKind::NotPermitted);
        assert!(
            e.message.contains("not 192.0.2.1 and 203.0.113.5"),
            "{}",
            e.message
        );
    }

    #[test]
    fn no_flows_means_nothing_is_allowed() {
        let out = net("10.1.0.0", 16, "10.2.0.0", 16);
        let p = policy(PolicyDirection::Out, out, "192.0.2.1", "192.0.2.2");
        assert_eq!(
            check_policy(&[], &p).unwrap_err().kind,
            FailureKind::NotPermitted
        );
        let s = sa("192.0.2.1", "192.0.2.2", out);
        assert_eq!(
            check_sa(&[], &s).unwrap_err().kind,
            FailureKind::NotPermitted
        );
    }
}
