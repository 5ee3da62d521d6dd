//! pfkey's side of the two-phase reload (parent/src/daemon/reload.rs):
//! prepare checks the flows and keeps them aside; commit installs them
//! and removes our kernel entries no longer in any configured flow, so
//! that pfkey ends with exactly the configured flows.

use iked_common::ipc::ChildConfig;

/// Most flows one configuration may give pfkey: each is checked against
/// every request of ikev2, so the count is bounded.
pub const MAX_FLOWS: usize = 4096;

/// Reload, phase one: whether pfkey can take this configuration. Nothing
/// changes here. (Checks of what the kernel interface can install belong
/// here too: they run before anything is committed.)
pub fn check(config: &ChildConfig) -> Result<(), String> {
    match config {
        ChildConfig::Pfkey { flows, .. } if flows.len() > MAX_FLOWS => Err(format!(
            "{} flows, more than the {MAX_FLOWS} pfkey takes",
            flows.len()
        )),
        ChildConfig::Pfkey { .. } => Ok(()),
        _ => Err("not a configuration for pfkey".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{flow_selector, ip};
    use iked_common::kernel::{Encryption, Flow, FlowPeer, IpsecMode, SaLimits};
    use iked_common::routing::RouteSettings;

    fn with_flows(count: usize) -> ChildConfig {
        let flow = Flow {
            name: "p".into(),
            selector: flow_selector(),
            local: ip("192.0.2.1"),
            peer: FlowPeer::Address(ip("192.0.2.2")),
            mode: IpsecMode::Tunnel,
            encryption: vec![Encryption::AesGcm16],
            integrity: vec![],
            limits: SaLimits::default(),
            pools: Vec::new(),
            virtual_ip_interface: None,
        };
        ChildConfig::Pfkey {
            generation: 2,
            flows: vec![flow; count],
            routing: RouteSettings::default(),
        }
    }

    #[test]
    fn refuses_too_many_flows_and_others_configurations() {
        assert!(check(&with_flows(2)).is_ok());
        let error = check(&with_flows(MAX_FLOWS + 1)).unwrap_err();
        assert!(error.contains("more than the 4096"), "{error}");
        let ikev2 = ChildConfig::Ikev2 {
            generation: 2,
            mode: iked_common::ipc::InitiationMode::Active,
            policies: vec![],
            dpd_check_interval: 0,
            fragmentation: Default::default(),
            mobike: false,
        };
        assert!(check(&ikev2).is_err());
    }
}
