//! pfkey's side of the two-phase reload (parent/src/daemon/reload.rs):
//! prepare checks the flows and keeps them aside; commit installs them
//! and removes our kernel entries no longer in any configured flow, so
//! that pfkey ends with exactly the configured flows.

use iked_common::ipc::ChildConfig;

/// Reload, phase one: whether pfkey can take this configuration. Nothing
/// changes here. The number of flows is bounded by the IPC message cap
/// (`ipc::MAX_MESSAGE`), as at start. (Checks of what the kernel
/// interface can install belong here too: they run before anything is
/// committed.)
pub fn check(config: &ChildConfig) -> Result<(), String> {
    match config {
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
    fn takes_its_own_configuration_and_refuses_others() {
        // As many flows as a large hub has: no count of its own.
        assert!(check(&with_flows(6_000)).is_ok());
        let ikev2 = ChildConfig::Ikev2 {
            generation: 2,
            mode: iked_common::ipc::InitiationMode::Active,
            policies: vec![],
            dpd_check_interval: 0,
            fragmentation: Default::default(),
            mobike: false,
            engine: Default::default(),
        };
        assert!(check(&ikev2).is_err());
    }
}
