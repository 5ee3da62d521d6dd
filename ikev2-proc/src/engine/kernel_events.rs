//! Kernel events: ACQUIRE, soft and hard EXPIRE, and the trap policies that make ACQUIREs
//! and keep the flows of every policy from leaving in clear.

use std::collections::HashMap;
use std::net::IpAddr;

use iked_common::config::Encapsulation;
use iked_common::ipc::Ikev2ToPfkey;
use iked_common::kernel::{
    IpsecMode, IpsecProtocol, KernelEvent, PolicyDirection, PolicyParams, SaTemplate, Selector,
};

use crate::engine::Engine;

use crate::engine::state::*;

impl Engine {
    /// Installs the outbound trap policies of the policies' flows and
    /// removes those of policies gone or changed (config load and reload).
    ///
    /// A trap is an outbound policy that requires ESP to the peer: while no
    /// SA of its reqid is in the kernel, the kernel sends nothing of the
    /// flow in clear but holds or drops it and reports an ACQUIRE. An
    /// active policy initiates on it; a passive one only records it, so its
    /// traffic waits for the peer to start a Child SA (issue 17). The Child
    /// SAs of the flow take the trap's reqid, so the trap becomes their
    /// outbound policy; one narrowed to less than the flow installs its own,
    /// more specific one (a better priority), and the trap stays beneath.
    /// `notrap` policies get none: their traffic leaves in clear while no
    /// Child SA covers it. A trap needs both gateway addresses for its
    /// template; policies with a range for a peer have no kernel flows.
    pub(super) fn sync_traps(&mut self) {
        let mut wanted: HashMap<(String, usize), PolicyParams> = HashMap::new();
        for policy in &self.policies {
            if !policy.trap {
                continue;
            }
            let (Some(local), Some(peer)) = (policy.local, policy.peer) else {
                continue;
            };
            if !local.is_host() || !peer.is_host() {
                continue;
            }
            let mode = if policy.encapsulation == Encapsulation::Transport {
                IpsecMode::Transport
            } else {
                IpsecMode::Tunnel
            };
            for (index, flow) in policy.flows.iter().enumerate() {
                let specificity = u32::from(flow.src_prefix) + u32::from(flow.dst_prefix);
                wanted.insert(
                    (policy.name.clone(), index),
                    PolicyParams {
                        selector: *flow,
                        direction: PolicyDirection::Out,
                        priority: 2000u32.saturating_sub(specificity),
                        template: SaTemplate {
                            src: local.addr,
                            dst: peer.addr,
                            protocol: IpsecProtocol::Esp,
                            mode,
                            reqid: 0,
                        },
                    },
                );
            }
        }
        let mut stale: Vec<(String, usize)> = self
            .traps
            .iter()
            .filter(|(key, trap)| {
                wanted.get(*key).is_none_or(|w| {
                    w.selector != trap.policy.selector
                        || w.template.src != trap.policy.template.src
                        || w.template.dst != trap.policy.template.dst
                        || w.template.mode != trap.policy.template.mode
                })
            })
            .map(|(key, _)| key.clone())
            .collect();
        // Key order, as for the new traps below: the same requests and
        // reqids every run.
        stale.sort();
        for key in stale {
            if let Some(trap) = self.traps.remove(&key) {
                self.reqids.release(trap.reqid);
                let (selector, direction) = (trap.policy.selector, trap.policy.direction);
                self.ask_pfkey(0, Wait::Other, |id| Ikev2ToPfkey::DeletePolicy {
                    id,
                    selector,
                    direction,
                });
            }
        }
        let mut keys: Vec<(String, usize)> = wanted.keys().cloned().collect();
        keys.sort();
        for key in keys {
            if self.traps.contains_key(&key) {
                continue;
            }
            let Some(mut policy) = wanted.remove(&key) else {
                continue;
            };
            policy.template.reqid = self.new_reqid();
            log::debug!("policy {}: trap for {}", key.0, policy.selector);
            let install = policy;
            self.ask_pfkey(0, Wait::Other, |id| Ikev2ToPfkey::AddPolicy {
                id,
                policy: install,
            });
            self.reqids.take(policy.template.reqid);
            self.traps.insert(
                key,
                Trap {
                    reqid: policy.template.reqid,
                    policy,
                },
            );
        }
    }

    pub(super) fn on_kernel_event(&mut self, event: KernelEvent) {
        match event {
            KernelEvent::Acquire { selector, dst, .. } => self.on_acquire(selector, dst),
            KernelEvent::Expire { sa, hard, .. } => {
                // Children are keyed by inbound SPI: only the inbound SA's
                // EXPIRE (destination: our side of its IKE SA) is acted on;
                // the outbound SA expires at the same moment.
                let child = self.children.get(&sa.spi).and_then(|c| {
                    let ike = self.ikes.get(&c.ike)?;
                    (ike.local.ip() == sa.dst || ike.local.ip().is_unspecified()).then_some(sa.spi)
                });
                let Some(child) = child else {
                    log::debug!("EXPIRE for an SA we do not track by inbound SPI: {sa}");
                    return;
                };
                let Some(c) = self.children.get(&child) else {
                    return;
                };
                let ike = c.ike;
                if hard {
                    log::info!("Child SA {child:08x} reached its hard lifetime");
                    if let Some(s) = self.ikes.get_mut(&ike) {
                        s.queue
                            .push_back(Task::DeleteChildren { spis: vec![child] });
                    }
                } else if c.state == ChildState::Established {
                    let task = Task::RekeyChild { spi_in: child };
                    if let Some(s) = self.ikes.get_mut(&ike) {
                        if !s.queue.contains(&task) {
                            s.queue.push_back(task);
                        }
                    }
                }
                self.pump(ike);
                self.schedule(ike);
            }
            KernelEvent::PolicyExpire { .. } => {}
        }
    }

    pub(super) fn on_acquire(&mut self, selector: Selector, dst: IpAddr) {
        let found = self.policies.iter().find_map(|p| {
            if p.initiation != iked_common::config::PolicyInitiation::Active {
                return None;
            }
            p.flows
                .iter()
                .position(|f| f.contains(&selector))
                .map(|index| (p.name.clone(), index))
        });
        let Some((name, flow_index)) = found else {
            // A passive policy's trap: the traffic is held back in the
            // kernel until the peer starts a Child SA.
            log::debug!("ACQUIRE for {selector}: no active policy covers it; its traffic waits for the peer");
            return;
        };
        let mut existing: Vec<u64> = self
            .by_policy
            .get(&name)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        // SPI order, not the set's (random) order: the same run every time.
        existing.sort_unstable();
        for spi in &existing {
            let Some(sa) = self.ikes.get(spi) else {
                continue;
            };
            if sa.state == IkeState::Established {
                let have = sa.children.iter().any(|c| {
                    self.children
                        .get(c)
                        .is_some_and(|c| c.flow_index == flow_index)
                });
                let task = Task::CreateChild { flow_index };
                if !have && !sa.queue.contains(&task) {
                    if let Some(sa) = self.ikes.get_mut(spi) {
                        sa.queue.push_back(task);
                    }
                    self.pump(*spi);
                    self.schedule(*spi);
                }
                return;
            }
            if !matches!(sa.state, IkeState::Rekeyed | IkeState::Deleting) {
                return; // negotiating already
            }
        }
        let peer = self
            .policy(&name)
            .and_then(|p| p.peer)
            .filter(|p| p.is_host())
            .map(|p| p.addr)
            .unwrap_or(dst);
        log::info!("ACQUIRE for {selector}: starting policy {name}");
        if let Err(e) = self.initiate(&name, Some(peer), flow_index) {
            log::warn!("policy {name}: cannot initiate: {e}");
        }
    }
}
