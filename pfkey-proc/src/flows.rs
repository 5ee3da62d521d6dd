//! The gate between ikev2-proc and the kernel: a request is carried out only
//! if a configured flow covers it. ikev2-proc parses untrusted packets and
//! may be compromised; this check is what keeps it from installing an SA for
//! a peer nobody configured, traffic no policy names, or a weak transform.
//!
//! A flow of a `peer any` or `peer NET` policy (road warriors) names a
//! range of peer addresses: its SAs and policies still join our one
//! configured `local` address to one peer address each, inside the range.
//! The peer's side of the traffic must lie in the flow's remote side, or
//! be one single address (a /32 or /128) inside one of the flow's address
//! pools: the lease ikev2 handed that peer (RFC 7296 §3.15). A selector
//! that names more of a pool than one address is refused, so that no
//! entry can take the traffic of the pool's other clients; which peer
//! holds which lease is kept by [`crate::leases`].

use std::net::IpAddr;

use iked_common::config::Prefix;
use iked_common::kernel::{
    max_prefix, FailureKind, Flow, IpsecProtocol, KernelFailure, PolicyDirection, PolicyParams,
    SaParams, Selector,
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

/// The peer's side of `selector` for traffic leaving us (`outbound`: its
/// destination) or coming to us (its source).
fn remote_side(selector: &Selector, outbound: bool) -> (IpAddr, u8) {
    if outbound {
        (selector.dst, selector.dst_prefix)
    } else {
        (selector.src, selector.src_prefix)
    }
}

fn with_remote_host(selector: Selector, host: IpAddr, outbound: bool) -> Selector {
    let prefix = max_prefix(host);
    if outbound {
        Selector {
            dst: host,
            dst_prefix: prefix,
            ..selector
        }
    } else {
        Selector {
            src: host,
            src_prefix: prefix,
            ..selector
        }
    }
}

/// Whether the prefixes share any address (same family only).
fn overlaps(pool: &Prefix, addr: IpAddr, prefix: u8) -> bool {
    if pool.len <= prefix {
        pool.contains(addr)
    } else {
        Prefix { addr, len: prefix }.contains(pool.addr)
    }
}

/// The pool address `selector` names as the peer's side, if it names one:
/// a single address inside one of the flow's pools.
fn leased_address(flow: &Flow, selector: &Selector, outbound: bool) -> Option<IpAddr> {
    let (addr, prefix) = remote_side(selector, outbound);
    (prefix == max_prefix(addr) && flow.pools.iter().any(|p| p.contains(addr))).then_some(addr)
}

/// Whether `flow` may carry `selector` (oriented as the traffic flows:
/// `outbound` from us to the peer). Ok(Some(lease)) when the peer's side
/// is one address of a pool, Ok(None) when it lies inside the flow's
/// remote side and outside every pool; the reason otherwise.
pub fn check_traffic(
    flow: &Flow,
    selector: &Selector,
    outbound: bool,
) -> Result<Option<IpAddr>, String> {
    let allowed = if outbound {
        flow.selector
    } else {
        flow.selector.reversed()
    };
    if let Some(lease) = leased_address(flow, selector, outbound) {
        if with_remote_host(allowed, lease, outbound).contains(selector) {
            return Ok(Some(lease));
        }
        return Err(format!(
            "traffic {selector} is outside flow {} ({allowed}, with the peer's side one \
             address of its pools)",
            flow.name
        ));
    }
    if !allowed.contains(selector) {
        return Err(format!(
            "traffic {selector} is outside flow {} ({allowed})",
            flow.name
        ));
    }
    let (addr, prefix) = remote_side(selector, outbound);
    if let Some(pool) = flow.pools.iter().find(|p| overlaps(p, addr, prefix)) {
        return Err(format!(
            "traffic {selector}: the peer's side {addr}/{prefix} overlaps pool {pool} of flow \
             {}, of which an entry may name one leased address only",
            flow.name
        ));
    }
    Ok(None)
}

/// The pool address an SA admitted under `flow` carries traffic for (the
/// peer's lease), if any.
pub fn sa_lease(flow: &Flow, sa: &SaParams) -> Option<IpAddr> {
    let outbound = sa_direction(flow, sa.id.src, sa.id.dst) == Some(SaDirection::Outbound);
    leased_address(flow, &sa.selector, outbound)
}

/// The pool address a policy admitted under `flow` selects, if any.
pub fn policy_lease(flow: &Flow, p: &PolicyParams) -> Option<IpAddr> {
    leased_address(flow, &p.selector, p.direction == PolicyDirection::Out)
}

/// The peer address an SA joins us to.
pub fn sa_peer(flow: &Flow, sa: &SaParams) -> IpAddr {
    match sa_direction(flow, sa.id.src, sa.id.dst) {
        Some(SaDirection::Outbound) => sa.id.dst,
        _ => sa.id.src,
    }
}

/// The peer address a policy's template names.
pub fn policy_peer(p: &PolicyParams) -> IpAddr {
    match p.direction {
        PolicyDirection::Out => p.template.dst,
        PolicyDirection::In | PolicyDirection::Fwd => p.template.src,
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
        let traffic = check_traffic(flow, &sa.selector, direction == SaDirection::Outbound);
        if flow.mode != sa.mode {
            reasons.push(format!("flow {} wants {:?} mode", flow.name, flow.mode));
        } else if let Err(reason) = traffic {
            reasons.push(reason);
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

fn overlaps_a_pool(flow: &Flow, selector: &Selector, outbound: bool) -> bool {
    let (addr, prefix) = remote_side(selector, outbound);
    flow.pools.iter().any(|p| overlaps(p, addr, prefix))
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
        let outbound = p.direction == PolicyDirection::Out;
        let gateways_match = if outbound {
            p.template.src == flow.local && flow.peer.admits(p.template.dst)
        } else {
            flow.peer.admits(p.template.src) && p.template.dst == flow.local
        };
        match check_traffic(flow, &p.selector, outbound) {
            Ok(_) => {}
            // Traffic of the flow's, but naming more of a pool than one
            // address: said, not skipped.
            Err(reason) if overlaps_a_pool(flow, &p.selector, outbound) => {
                reasons.push(reason);
                continue;
            }
            Err(_) => continue,
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

    /// A gateway's `peer any` flow: our 10.1.0.0/16 to the pool
    /// 10.9.0.0/24 (`to dynamic`), from 198.18.0.1 to any peer.
    fn road_warriors() -> Flow {
        Flow {
            name: "rw".into(),
            selector: net("10.1.0.0", 16, "10.9.0.0", 24),
            local: ip("198.18.0.1"),
            peer: iked_common::kernel::FlowPeer::Range(Prefix {
                addr: ip("0.0.0.0"),
                len: 0,
            }),
            pools: vec![Prefix {
                addr: ip("10.9.0.0"),
                len: 24,
            }],
            ..flows().remove(0)
        }
    }

    #[test]
    fn a_range_flow_admits_any_peer_but_only_our_local() {
        let f = vec![road_warriors()];
        let out = sa(
            "198.18.0.1",
            "203.0.113.7",
            net("10.1.0.0", 16, "10.9.0.5", 32),
        );
        assert_eq!(check_sa(&f, &out).unwrap().name, "rw");
        assert_eq!(sa_lease(&f[0], &out), Some(ip("10.9.0.5")));
        assert_eq!(sa_peer(&f[0], &out), ip("203.0.113.7"));
        let inb = sa(
            "198.51.100.3",
            "198.18.0.1",
            net("10.9.0.6", 32, "10.1.2.0", 24),
        );
        assert_eq!(check_sa(&f, &inb).unwrap().name, "rw");
        assert_eq!(sa_lease(&f[0], &inb), Some(ip("10.9.0.6")));
        assert_eq!(sa_peer(&f[0], &inb), ip("198.51.100.3"));
        // From another local address: not ours to install.
        let other_local = sa(
            "198.18.0.2",
            "203.0.113.7",
            net("10.1.0.0", 16, "10.9.0.5", 32),
        );
        assert!(check_sa(&f, &other_local)
            .unwrap_err()
            .message
            .contains("no configured flow names these gateways"));
        let esp = IpsecProtocol::Esp;
        assert!(check_spi_request(&f, ip("203.0.113.9"), ip("198.18.0.1"), esp, 256, 999).is_ok());
        assert!(check_spi_request(&f, ip("203.0.113.9"), ip("198.18.0.9"), esp, 256, 999).is_err());
        // An IPv6 peer is outside an IPv4 range.
        assert!(check_spi_request(&f, ip("2001:db8::9"), ip("198.18.0.1"), esp, 256, 999).is_err());
    }

    #[test]
    fn a_peer_net_flow_refuses_peers_outside_the_net() {
        let mut rw = road_warriors();
        rw.peer = iked_common::kernel::FlowPeer::Range(Prefix {
            addr: ip("198.19.0.0"),
            len: 16,
        });
        let f = vec![rw];
        let inside = sa(
            "198.18.0.1",
            "198.19.4.4",
            net("10.1.0.0", 16, "10.9.0.5", 32),
        );
        assert!(check_sa(&f, &inside).is_ok());
        let outside = sa(
            "198.18.0.1",
            "198.20.4.4",
            net("10.1.0.0", 16, "10.9.0.5", 32),
        );
        assert!(check_sa(&f, &outside).is_err());
        let sel = net("10.1.0.0", 16, "10.9.0.5", 32);
        let e = check_policy(
            &f,
            &policy(PolicyDirection::Out, sel, "198.18.0.1", "198.20.4.4"),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("flow rw protects it between 198.18.0.1 and 198.19.0.0/16, not 198.18.0.1 and 198.20.4.4"),
            "{}",
            e.message
        );
    }

    #[test]
    fn only_one_pool_address_at_a_time_may_be_named() {
        let f = vec![road_warriors()];
        // The whole pool, or a part wider than one address: refused, even
        // though `to dynamic` makes the pool the flow's remote side.
        for (addr, prefix) in [("10.9.0.0", 24), ("10.9.0.4", 30), ("10.0.0.0", 8)] {
            let wide = sa(
                "198.18.0.1",
                "203.0.113.7",
                net("10.1.0.0", 16, addr, prefix),
            );
            let e = check_sa(&f, &wide).unwrap_err();
            assert_eq!(e.kind, FailureKind::NotPermitted);
            assert!(
                e.message.contains("overlaps pool 10.9.0.0/24")
                    || e.message.contains("outside flow rw"),
                "{addr}/{prefix}: {}",
                e.message
            );
        }
        let whole = sa(
            "198.18.0.1",
            "203.0.113.7",
            net("10.1.0.0", 16, "10.9.0.0", 24),
        );
        assert!(check_sa(&f, &whole)
            .unwrap_err()
            .message
            .contains("the peer's side 10.9.0.0/24 overlaps pool 10.9.0.0/24 of flow rw"));
        // One address outside the pool (and outside the flow's `to`).
        let stray = sa(
            "198.18.0.1",
            "203.0.113.7",
            net("10.1.0.0", 16, "10.8.0.1", 32),
        );
        assert!(check_sa(&f, &stray)
            .unwrap_err()
            .message
            .contains("outside flow rw"));
        // A lease, but our side wider than the flow's `from`.
        let wider = sa(
            "198.18.0.1",
            "203.0.113.7",
            net("10.0.0.0", 8, "10.9.0.5", 32),
        );
        assert!(check_sa(&f, &wider)
            .unwrap_err()
            .message
            .contains("with the peer's side one address of its pools"));
        // Policies: the same rule, with the reason given.
        let e = check_policy(
            &f,
            &policy(
                PolicyDirection::Out,
                net("10.1.0.0", 16, "10.9.0.0", 24),
                "198.18.0.1",
                "203.0.113.7",
            ),
        )
        .unwrap_err();
        assert!(
            e.message.contains("overlaps pool 10.9.0.0/24"),
            "{}",
            e.message
        );
        let lease_in = policy(
            PolicyDirection::Fwd,
            net("10.9.0.5", 32, "10.1.0.0", 16),
            "203.0.113.7",
            "198.18.0.1",
        );
        let flow = check_policy(&f, &lease_in).unwrap();
        assert_eq!(policy_lease(flow, &lease_in), Some(ip("10.9.0.5")));
        assert_eq!(policy_peer(&lease_in), ip("203.0.113.7"));
    }

    #[test]
    fn a_pool_beside_static_remote_networks() {
        // `to 10.2.0.0/16` and `config address 10.9.0.0/24`: either the
        // configured networks or one lease.
        let mut rw = road_warriors();
        rw.selector = net("10.1.0.0", 16, "10.2.0.0", 16);
        let f = vec![rw];
        let network = sa(
            "198.18.0.1",
            "203.0.113.7",
            net("10.1.0.0", 16, "10.2.3.0", 24),
        );
        assert!(check_sa(&f, &network).is_ok());
        assert_eq!(sa_lease(&f[0], &network), None);
        let lease = sa(
            "198.18.0.1",
            "203.0.113.7",
            net("10.1.0.0", 16, "10.9.0.77", 32),
        );
        assert!(check_sa(&f, &lease).is_ok());
        assert_eq!(sa_lease(&f[0], &lease), Some(ip("10.9.0.77")));
        let part = sa(
            "198.18.0.1",
            "203.0.113.7",
            net("10.1.0.0", 16, "10.9.0.0", 25),
        );
        assert!(check_sa(&f, &part).is_err());
        // A static flow without pools names no lease.
        let site = sa(
            "192.0.2.1",
            "192.0.2.2",
            net("10.1.0.0", 16, "10.2.0.1", 32),
        );
        assert_eq!(sa_lease(&flows()[0], &site), None);
    }

    #[test]
    fn ipv6_pools_take_a_single_128() {
        let mut rw = road_warriors();
        rw.selector = net("2001:db8:1::", 48, "2001:db8:9::", 64);
        rw.local = ip("2001:db8::1");
        rw.peer = iked_common::kernel::FlowPeer::Range(Prefix {
            addr: ip("::"),
            len: 0,
        });
        rw.pools = vec![Prefix {
            addr: ip("2001:db8:9::"),
            len: 64,
        }];
        let f = vec![rw];
        let host = sa(
            "2001:db8::1",
            "2001:db8:ff::2",
            net("2001:db8:1::", 48, "2001:db8:9::5", 128),
        );
        assert!(check_sa(&f, &host).is_ok());
        let wide = sa(
            "2001:db8::1",
            "2001:db8:ff::2",
            net("2001:db8:1::", 48, "2001:db8:9::", 120),
        );
        assert!(check_sa(&f, &wide).is_err());
    }
}
