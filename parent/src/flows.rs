//! The flows pfkey may install, derived from the policies: each `from/to`
//! pair of a policy with a fixed local and peer address, with the ESP
//! algorithms its Child SA proposals allow. pfkey refuses anything else.

use iked_common::config::{Encapsulation, Policy, TRANSFORM_ENCR, TRANSFORM_INTEG};
use iked_common::kernel::{Encryption, Flow, Integrity, IpsecMode};
use iked_common::wire::{EncrId, IntegId};

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Flows of every policy whose local and peer are single addresses. A
/// policy without `from/to` protects the traffic between the two gateways
/// (its flow comes from the parser).
pub fn flows_of(policies: &[Policy]) -> Vec<Flow> {
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
        // A policy without `from ... to` got its flow between the two
        // gateways from the parser, so the engine negotiates what pfkey allows.
        for selector in policy.flows.iter().copied() {
            flows.push(Flow {
                name: policy.name.clone(),
                selector,
                local: local.addr,
                peer: peer.addr,
                mode: match policy.encapsulation {
                    Encapsulation::Tunnel => IpsecMode::Tunnel,
                    Encapsulation::Transport => IpsecMode::Transport,
                },
                encryption: ciphers.clone(),
                integrity: integrities.clone(),
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
        let flows = flows_of(&config.policies);
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
        let flows = flows_of(&config.policies);
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].encryption, vec![Encryption::CamelliaCbc]);
        assert_eq!(flows[0].integrity, vec![Integrity::HmacSha256_128]);
    }
}
