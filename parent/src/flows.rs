//! The flows pfkey may install, derived from the policies: each `from/to`
//! pair of a policy with a fixed local and peer address, with the ESP
//! algorithms its Child SA proposals allow. pfkey refuses anything else.

use iked_common::config::{Encapsulation, Policy, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG};
use iked_common::kernel::{Encryption, Flow, Integrity, IpsecMode, SaLimits};
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

/// Flows of every policy whose local and peer are single addresses. A
/// policy without `from/to` protects the traffic between the two gateways
/// (its flow comes from the parser). `natt_port` is the port the daemon
/// takes ESP in UDP on (None: `-T`).
pub fn flows_of(policies: &[Policy], natt_port: Option<u16>) -> Vec<Flow> {
    let mut flows = Vec::new();
    for policy in policies {
        let (Some(local), Some(peer)) = (policy.local, policy.peer) else {
            log::debug!(
                "policy {}: no fixed local and peer address, so no kernel flow",
                policy.name
            );
            continue;
        };
        if !local.is_host() || !peer.is_host() {
            continue;
        }
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
            flows.push(Flow {
                name: policy.name.clone(),
                selector,
                local: local.addr,
                peer: iked_common::kernel::FlowPeer::Address(peer.addr),
                mode: match policy.encapsulation {
                    Encapsulation::Tunnel => IpsecMode::Tunnel,
                    Encapsulation::Transport => IpsecMode::Transport,
                },
                encryption: ciphers.clone(),
                integrity: integrities.clone(),
                limits: limits.clone(),
                pools: Vec::new(),
                virtual_ip_interface: None,
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
             ikev2 \"any\" passive esp from 10.1.2.0/24 to 10.2.2.0/24 peer any psk \"k\"\n\
             ikev2 \"hosts\" transport local 198.18.0.1 peer 198.18.0.3 \
             childsa enc aes-256 auth hmac-sha2-256 psk \"k\"\n",
            &[],
        )
        .unwrap();
        let flows = flows_of(&config.policies, Some(4500));
        assert_eq!(flows.len(), 2, "the policy with peer any yields none");
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
