//! The flows pfkey may install, derived from the policies: each `from/to`
//! pair of a policy with a fixed local address, towards its fixed peer
//! address or (road warriors: `peer any`, `peer NET`) any peer address in
//! a range, with the ESP algorithms its Child SA proposals allow, the
//! policy's address pools and, for a client that requests an address, the
//! interface it may go on. pfkey refuses anything else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use iked_common::config::{
    Encapsulation, Policy, PolicyInitiation, Prefix, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG,
};
use iked_common::kernel::{Encryption, Flow, FlowPeer, Integrity, IpsecMode, SaLimits};
use iked_common::wire::{EncrId, IntegId};

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The ESP key length in octets (salt included) of an ENCR transform with
/// `bits` of key (RFC 4106 §8.1, RFC 7634 §2: 4 salt octets for AEAD);
/// every length the cipher takes when the transform names none.
fn key_octets(cipher: Encryption, bits: Option<u16>) -> Vec<usize> {
    match bits {
        Some(bits) => {
            let salt = if cipher.is_aead() { 4 } else { 0 };
            vec![usize::from(bits) / 8 + salt]
        }
        None => cipher.key_lengths().to_vec(),
    }
}

/// What pfkey holds an SA of `policy` to besides its transforms: key
/// lengths, ESN, lifetimes, the NAT-T port (`natt_port`, None with `-T`).
fn limits_of(policy: &Policy, natt_port: Option<u16>) -> SaLimits {
    let mut encryption_keys = Vec::new();
    let mut esn = Vec::new();
    for proposal in &policy.child_proposals {
        for t in proposal.of_type(TRANSFORM_ENCR) {
            if let Some(cipher) = Encryption::from_encr(EncrId::from_value(t.id)) {
                for octets in key_octets(cipher, t.key_length) {
                    push_unique(&mut encryption_keys, (cipher, octets));
                }
            }
        }
        for t in proposal.of_type(TRANSFORM_ESN) {
            push_unique(&mut esn, t.id == 1);
        }
    }
    if esn.is_empty() {
        // RFC 7296 §3.3.2: a proposal without ESN transform means none.
        esn.push(false);
    }
    SaLimits {
        encryption_keys,
        esn,
        max_seconds: policy.child_lifetime_secs,
        max_bytes: policy.child_lifetime_bytes,
        natt_port,
    }
}

/// The peer side of `policy`'s flows, given our single `local` address:
/// its one address, or for a passive policy the range `peer NET` names,
/// or with `peer any` (or no `peer`) the /0 of our address's family (the
/// outer addresses of an SA are of one family). None: an active policy
/// without a fixed peer address, which no SA can be installed for.
fn peer_of(policy: &Policy, local: IpAddr) -> Option<FlowPeer> {
    match policy.peer {
        Some(peer) if peer.is_host() => Some(FlowPeer::Address(peer.addr)),
        _ if policy.initiation == PolicyInitiation::Active => None,
        Some(range) => Some(FlowPeer::Range(range)),
        None => Some(FlowPeer::Range(Prefix {
            addr: match local {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            },
            len: 0,
        })),
    }
}

/// Flows of every policy with a single local address and a peer address
/// or range (see [`peer_of`]). A policy without `from/to` protects the
/// traffic between the two gateways (its flow comes from the parser).
/// `natt_port` is the port the daemon takes ESP in UDP on (None: `-T`).
pub fn flows_of(policies: &[Policy], natt_port: Option<u16>) -> Vec<Flow> {
    let mut flows = Vec::new();
    for policy in policies {
        let Some(local) = policy.local.filter(|l| l.is_host()) else {
            log::debug!(
                "policy {}: no single local address, so no kernel flow",
                policy.name
            );
            continue;
        };
        let Some(peer) = peer_of(policy, local.addr) else {
            log::debug!(
                "policy {}: active without a single peer address, so no kernel flow",
                policy.name
            );
            continue;
        };
        let access = &policy.remote_access;
        // A client's address goes on `iface`, by default on lo.
        let virtual_ip_interface = access
            .request_address
            .then(|| access.iface.clone().unwrap_or_else(|| "lo".to_string()));
        let mut ciphers = Vec::new();
        let mut integrities = Vec::new();
        for proposal in &policy.child_proposals {
            proposal
                .of_type(TRANSFORM_ENCR)
                .filter_map(|t| Encryption::from_encr(EncrId::from_value(t.id)))
                .for_each(|e| push_unique(&mut ciphers, e));
            proposal
                .of_type(TRANSFORM_INTEG)
                .filter_map(|t| Integrity::from_integ(IntegId::from_value(t.id)))
                .for_each(|i| push_unique(&mut integrities, i));
        }
        let limits = limits_of(policy, natt_port);
        // A policy without `from ... to` got its flow between the two
        // gateways from the parser, so the engine negotiates what pfkey allows.
        for selector in policy.flows.iter().copied() {
            // The leases the peer's side of this flow may be: the pools
            // of the selector's family.
            let pools = access
                .pools()
                .filter(|pool| pool.addr.is_ipv4() == selector.dst.is_ipv4())
                .copied()
                .collect();
            flows.push(Flow {
                name: policy.name.clone(),
                selector,
                local: local.addr,
                peer,
                mode: match policy.encapsulation {
                    Encapsulation::Tunnel => IpsecMode::Tunnel,
                    Encapsulation::Transport => IpsecMode::Transport,
                },
                encryption: ciphers.clone(),
                integrity: integrities.clone(),
                limits: limits.clone(),
                pools,
                virtual_ip_interface: virtual_ip_interface.clone(),
            });
        }
    }
    flows
}

#[cfg(test)]
mod tests {
    use super::*;
    use iked_common::config::parse_str;
    use iked_common::kernel::Selector;

    #[test]
    fn flows_follow_the_policies() {
        let config = parse_str(
            "t",
            "ikev2 \"gcm\" active esp from 10.1.1.0/24 to 10.2.1.0/24 \
             local 198.18.0.1 peer 198.18.0.2 childsa enc aes-128-gcm psk \"k\"\n\
             ikev2 \"nolocal\" passive esp from 10.1.2.0/24 to 10.2.2.0/24 psk \"k\"\n\
             ikev2 \"nopeer\" active esp from 10.1.3.0/24 to 10.2.3.0/24 local 198.18.0.1 \
             psk \"k\"\n\
             ikev2 \"hosts\" transport local 198.18.0.1 peer 198.18.0.3 \
             childsa enc aes-256 auth hmac-sha2-256 psk \"k\"\n",
            &[],
        )
        .unwrap();
        let flows = flows_of(&config.policies, Some(4500));
        assert_eq!(
            flows.len(),
            2,
            "no flow without a local address, nor for an active policy without a peer"
        );
        assert!(flows.iter().all(|f| matches!(f.peer, FlowPeer::Address(_))
            && f.pools.is_empty()
            && f.virtual_ip_interface.is_none()));
        assert_eq!(flows[0].name, "gcm");
        assert_eq!(flows[0].selector.to_string(), "10.1.1.0/24 -> 10.2.1.0/24");
        assert_eq!(flows[0].encryption, vec![Encryption::AesGcm16]);
        assert!(flows[0].integrity.is_empty());
        assert_eq!(flows[0].mode, IpsecMode::Tunnel);
        assert_eq!(
            flows[1].selector,
            Selector::hosts("198.18.0.1".parse().unwrap(), "198.18.0.3".parse().unwrap())
        );
        assert_eq!(flows[1].mode, IpsecMode::Transport);
        assert_eq!(flows[1].encryption, vec![Encryption::AesCbc]);
        assert_eq!(flows[1].integrity, vec![Integrity::HmacSha256_128]);
    }

    #[test]
    fn limits_follow_the_child_proposals_and_lifetimes() {
        let config = parse_str(
            "t",
            "ikev2 \"a\" active esp from 10.1.1.0/24 to 10.2.1.0/24 \
             local 198.18.0.1 peer 198.18.0.2 \
             childsa enc aes-128-gcm childsa enc aes-256 auth hmac-sha2-256 esn \
             lifetime 600 bytes 1000000 psk \"k\"\n",
            &[],
        )
        .unwrap();
        let flows = flows_of(&config.policies, None);
        let limits = &flows[0].limits;
        assert_eq!(
            limits.encryption_keys,
            vec![(Encryption::AesGcm16, 20), (Encryption::AesCbc, 32)]
        );
        assert_eq!(limits.esn, vec![false, true]);
        assert_eq!((limits.max_seconds, limits.max_bytes), (600, 1_000_000));
        assert_eq!(limits.natt_port, None);
    }

    /// Road-warrior gateways: `peer any` is any address of our local
    /// address's family, `peer NET` that range; the pools of the
    /// selector's family go with each flow; an implicit peer on a passive
    /// policy is `peer any`.
    #[test]
    fn road_warrior_flows_admit_a_range_of_peers_and_carry_the_pools() {
        let config = parse_str(
            "t",
            "ikev2 \"rw\" esp from 10.1.0.0/16 to dynamic from fd00:1::/48 to dynamic \
             local 198.18.0.1 peer any config address 10.9.0.0/24 config address fd00:9::/64 \
             config name-server 10.1.0.53\n\
             ikev2 \"net\" esp from 10.3.0.0/16 to 10.4.0.0/16 local 2001:db8::1 \
             peer 2001:db8:1::/48\n\
             ikev2 \"implicit\" passive esp from 10.5.0.0/16 to 10.6.0.0/16 local 198.18.0.1\n",
            &[],
        )
        .unwrap();
        let flows = flows_of(&config.policies, Some(4500));
        let shown: Vec<(String, String, Vec<String>)> = flows
            .iter()
            .map(|f| {
                (
                    f.selector.to_string(),
                    f.peer.to_string(),
                    f.pools.iter().map(|p| p.to_string()).collect(),
                )
            })
            .collect();
        let owned = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shown,
            vec![
                (
                    "10.1.0.0/16 -> 10.9.0.0/24".to_string(),
                    "0.0.0.0/0".to_string(),
                    owned(&["10.9.0.0/24"])
                ),
                (
                    "fd00:1::/48 -> fd00:9::/64".to_string(),
                    "0.0.0.0/0".to_string(),
                    owned(&["fd00:9::/64"])
                ),
                (
                    "10.3.0.0/16 -> 10.4.0.0/16".to_string(),
                    "2001:db8:1::/48".to_string(),
                    vec![]
                ),
                (
                    "10.5.0.0/16 -> 10.6.0.0/16".to_string(),
                    "0.0.0.0/0".to_string(),
                    vec![]
                ),
            ]
        );
        let any = flows[0].peer;
        assert!(any.admits("203.0.113.7".parse().unwrap()));
        assert!(!any.admits("2001:db8::7".parse().unwrap()));
        assert!(flows[2].peer.admits("2001:db8:1::9".parse().unwrap()));
        assert!(!flows[2].peer.admits("2001:db8:2::9".parse().unwrap()));
        assert!(flows
            .iter()
            .all(|f| f.local == flows[0].local || f.local.is_ipv6()));
        assert!(flows.iter().all(|f| f.virtual_ip_interface.is_none()));
    }

    /// A client that requests an address may have it put on its `iface`,
    /// by default lo; its flows are the /0 of the family on our side.
    #[test]
    fn client_flows_name_the_interface_of_the_virtual_address() {
        let config = parse_str(
            "t",
            "ikev2 \"c\" active esp from dynamic to 10.1.0.0/16 local 198.18.0.2 \
             peer 198.18.0.1 request address any iface vpn0\n\
             ikev2 \"lo\" active esp from dynamic to 10.2.0.0/16 local 198.18.0.2 \
             peer 198.18.0.3 request address any\n",
            &[],
        )
        .unwrap();
        let flows = flows_of(&config.policies, Some(4500));
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].selector.to_string(), "0.0.0.0/0 -> 10.1.0.0/16");
        assert_eq!(
            flows[0].peer,
            FlowPeer::Address("198.18.0.1".parse().unwrap())
        );
        assert_eq!(flows[0].virtual_ip_interface.as_deref(), Some("vpn0"));
        assert_eq!(flows[1].virtual_ip_interface.as_deref(), Some("lo"));
        assert!(flows.iter().all(|f| f.pools.is_empty()));
    }

    /// Camellia in `childsa` reaches the flow, so pfkey lets ikev2 install
    /// the Child SA that negotiated it.
    #[test]
    fn camellia_child_sas_are_allowed_by_their_flow() {
        let config = parse_str(
            "t",
            "ikev2 \"cam\" esp from 10.1.0.0/24 to 10.2.0.0/24 local 198.18.0.1 \
             peer 198.18.0.2 childsa enc camellia-256 auth hmac-sha2-256 group modp2048 psk \"k\"\n",
            &[],
        )
        .unwrap();
        let flows = flows_of(&config.policies, None);
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].encryption, vec![Encryption::CamelliaCbc]);
        assert_eq!(flows[0].integrity, vec![Integrity::HmacSha256_128]);
    }
}
