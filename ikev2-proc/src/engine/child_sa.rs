//! Child SAs: install and removal in the kernel, and ownership of the kernel policies.

use std::net::IpAddr;

use iked_common::crypto::keys::ChildSaKeys;
use iked_common::ipc::Ikev2ToPfkey;
use iked_common::kernel::{
    FailureKind, IpsecMode, IpsecProtocol, Lifetime, PolicyDirection, PolicyParams, SaId, SaParams,
    SaTemplate, SecretBytes as KernelSecret, Selector, UdpEncap,
};
use iked_common::wire::{NotifyType, Payload};

use crate::engine::digest::*;
use crate::engine::proposals::ChildSuite;
use crate::engine::Engine;
use crate::engine::{proposals, selectors};

use crate::engine::keys::*;
use crate::engine::state::*;

/// Inbound ESP SPIs are taken from this range (below 256 is reserved, RFC 4303 §2.1).
pub(super) const SPI_MIN: u32 = 0x100;

pub(super) const SPI_MAX: u32 = 0xffff_ffff;

/// Anti-replay window of the ESP SAs we install.
pub(super) const REPLAY_WINDOW: u32 = 64;

pub(super) fn answer_peer_spi(answer: &AuthAnswer) -> Option<u32> {
    let (proposal, ..) = answer.child.as_ref()?.as_ref().ok()?;
    <[u8; 4]>::try_from(proposal.spi.as_slice())
        .ok()
        .map(u32::from_be_bytes)
}

/// The kernel policies of a Child SA: out, in, and fwd in tunnel mode
/// (RFC 4301 §4.4.1; Linux needs fwd for forwarded traffic).
pub(super) fn policy_entries(sa: &IkeSa, child: &ChildSa) -> Vec<PolicyParams> {
    let mode = if child.transport {
        IpsecMode::Transport
    } else {
        IpsecMode::Tunnel
    };
    let (local, peer) = (sa.local.ip(), sa.peer.ip());
    let specificity = u32::from(child.flow.src_prefix) + u32::from(child.flow.dst_prefix);
    let priority = 2000u32.saturating_sub(specificity);
    let out = PolicyParams {
        selector: child.flow,
        direction: PolicyDirection::Out,
        priority,
        template: SaTemplate {
            src: local,
            dst: peer,
            protocol: IpsecProtocol::Esp,
            mode,
            reqid: child.reqid,
        },
    };
    let inbound_template = SaTemplate {
        src: peer,
        dst: local,
        protocol: IpsecProtocol::Esp,
        mode,
        reqid: child.reqid,
    };
    let mut list = Vec::new();
    if !child.trap_out {
        list.push(out);
    }
    list.extend([PolicyParams {
        selector: child.flow.reversed(),
        direction: PolicyDirection::In,
        priority,
        template: inbound_template,
    }]);
    if !child.transport {
        list.push(PolicyParams {
            selector: child.flow.reversed(),
            direction: PolicyDirection::Fwd,
            priority,
            template: inbound_template,
        });
    }
    list
}

impl Engine {
    /// Asks pfkey for an inbound ESP SPI from `peer` to `local` (RFC 4303
    /// §2.1) for a Child SA of IKE SA `spi`; the reply resumes `wait`.
    pub(super) fn allocate_spi(
        &mut self,
        spi: u64,
        wait: Wait,
        peer: IpAddr,
        local: IpAddr,
        reqid: u32,
    ) {
        self.ask_pfkey(spi, wait, |id| Ikev2ToPfkey::AllocateSpi {
            id,
            src: peer,
            dst: local,
            protocol: IpsecProtocol::Esp,
            reqid,
            min: SPI_MIN,
            max: SPI_MAX,
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_child(
        &mut self,
        ike: u64,
        spi_in: u32,
        spi_out: u32,
        reqid: u32,
        flow: Selector,
        flow_index: usize,
        transport: bool,
        suite: ChildSuite,
        keys: ChildSaKeys,
        we_initiated: bool,
        min_nonce: Vec<u8>,
    ) {
        let lifetime = self
            .ikes
            .get(&ike)
            .and_then(|sa| self.policy(&sa.policy))
            .map_or(0, |p| p.child_lifetime_secs);
        let rekey_at = self.rekey_time(lifetime);
        trace_key("encryption initiator key", keys.encr_i.expose());
        trace_key("encryption responder key", keys.encr_r.expose());
        if !keys.integ_i.is_empty() {
            trace_key("integrity initiator key", keys.integ_i.expose());
            trace_key("integrity responder key", keys.integ_r.expose());
        }
        let ike = self.current_ike(ike);
        let trap_out = self
            .ikes
            .get(&ike)
            .and_then(|sa| self.traps.get(&(sa.policy.clone(), flow_index)))
            .is_some_and(|trap| trap.reqid == reqid && trap.policy.selector == flow);
        let policy = self
            .ikes
            .get(&ike)
            .map(|sa| sa.policy.clone())
            .unwrap_or_default();
        *self.children_by_policy.entry(policy.clone()).or_default() += 1;
        let child = ChildSa {
            ike,
            policy,
            trap_out,
            spi_in,
            spi_out,
            reqid,
            flow,
            flow_index,
            transport,
            suite,
            keys,
            we_initiated,
            state: ChildState::Established,
            installed: false,
            install_failed: false,
            pending_sa_installs: 0,
            sas_in_kernel: (false, false),
            established: self.now,
            timers: ChildTimers::starting(ChildTimer::Rekey, rekey_at),
            min_nonce,
            peer_rekey: None,
        };
        if let Some(sa) = self.ikes.get_mut(&ike) {
            sa.children.push(spi_in);
            log::info!(
                "policy {}: Child SA {spi_in:08x}/{spi_out:08x} {} {}{}",
                sa.policy,
                flow,
                if transport { "transport" } else { "tunnel" },
                if sa.natt { " (UDP encapsulated)" } else { "" },
            );
        }
        self.flow_children.entry(flow).or_default().insert(spi_in);
        self.reqids.take(child.reqid);
        self.children.insert(spi_in, child);
        self.on_child_up(spi_in);
        self.install_child(spi_in);
    }

    pub(super) fn sa_params(&self, child: &ChildSa, inbound: bool) -> Option<SaParams> {
        let sa = self.ikes.get(&child.ike)?;
        let policy = self.policy(&sa.policy);
        let (encryption, integrity) = child.suite.kernel_transforms()?;
        let k = &child.keys;
        // §2.17: the _i keys protect initiator → responder traffic.
        let (encr, integ) = match (inbound, child.we_initiated) {
            (false, true) | (true, false) => (&k.encr_i, &k.integ_i),
            _ => (&k.encr_r, &k.integ_r),
        };
        let (src, dst, spi, selector) = if inbound {
            (
                sa.peer.ip(),
                sa.local.ip(),
                child.spi_in,
                child.flow.reversed(),
            )
        } else {
            (sa.local.ip(), sa.peer.ip(), child.spi_out, child.flow)
        };
        let encap = sa.natt.then(|| {
            if inbound {
                UdpEncap {
                    src_port: sa.peer.port(),
                    dst_port: sa.local.port(),
                }
            } else {
                UdpEncap {
                    src_port: sa.local.port(),
                    dst_port: sa.peer.port(),
                }
            }
        });
        let seconds = policy.map_or(0, |p| p.child_lifetime_secs);
        let bytes = policy.map_or(0, |p| p.child_lifetime_bytes);
        Some(SaParams {
            id: SaId {
                src,
                dst,
                protocol: IpsecProtocol::Esp,
                spi,
            },
            mode: if child.transport {
                IpsecMode::Transport
            } else {
                IpsecMode::Tunnel
            },
            reqid: child.reqid,
            selector,
            encryption,
            encryption_key: KernelSecret::new(encr.expose().to_vec()),
            integrity,
            integrity_key: KernelSecret::new(integ.expose().to_vec()),
            // Our own timer rekeys at about 90%; the kernel's soft limit is
            // the fallback and the hard limit the end (§2.8).
            lifetime: Lifetime {
                soft_bytes: bytes.saturating_mul(9) / 10,
                hard_bytes: bytes,
                soft_seconds: seconds,
                hard_seconds: seconds.saturating_add(seconds / 10),
            },
            replay_window: REPLAY_WINDOW,
            esn: child.suite.esn,
            encap,
        })
    }

    pub(super) fn install_child(&mut self, spi_in: u32) {
        let Some(child) = self.children.get(&spi_in) else {
            return;
        };
        let ike = child.ike;
        let (Some(inbound), Some(outbound)) =
            (self.sa_params(child, true), self.sa_params(child, false))
        else {
            return;
        };
        if let Some(child) = self.children.get_mut(&spi_in) {
            child.pending_sa_installs = 2;
        }
        let wait = |inbound| Wait::InstallSa {
            child: spi_in,
            inbound,
        };
        self.ask_pfkey(ike, wait(true), |id| Ikev2ToPfkey::AddSa {
            id,
            sa: inbound,
        });
        self.ask_pfkey(ike, wait(false), |id| Ikev2ToPfkey::AddSa {
            id,
            sa: outbound,
        });
    }

    pub(super) fn sa_install_done(
        &mut self,
        ike: u64,
        spi_in: u32,
        inbound: bool,
        failure: Option<iked_common::kernel::KernelFailure>,
    ) {
        let policy_name = self
            .ikes
            .get(&ike)
            .map(|sa| sa.policy.clone())
            .unwrap_or_default();
        let Some(child) = self.children.get_mut(&spi_in) else {
            return;
        };
        child.pending_sa_installs = child.pending_sa_installs.saturating_sub(1);
        if failure.is_none() {
            if inbound {
                child.sas_in_kernel.0 = true;
            } else {
                child.sas_in_kernel.1 = true;
            }
        }
        if let Some(failure) = failure {
            if !child.install_failed {
                // pfkey's message says what the kernel lacks (ESP, an
                // algorithm, PF_KEY's combined-mode ciphers): no guess here.
                let reason = &failure.message;
                log::error!(
                    "cannot install Child SA {:08x}/{:08x} of policy {policy_name}: {reason}; keeping the negotiated SA",
                    child.spi_in,
                    child.spi_out
                );
            }
            let refused = !child.install_failed && failure.kind == FailureKind::NotPermitted;
            child.install_failed = true;
            if child.pending_sa_installs == 0 {
                self.remove_installed_half(ike, spi_in);
            }
            if refused {
                // pfkey refused it as outside every configured flow: the
                // peer must not think it is in use (architecture step 6).
                if let Some(sa) = self.ikes.get_mut(&ike) {
                    sa.queue
                        .push_back(Task::DeleteChildren { spis: vec![spi_in] });
                }
            }
            return;
        }
        if child.pending_sa_installs > 0 {
            return;
        }
        if child.install_failed {
            // The other half failed first: this one must not stay alone.
            self.remove_installed_half(ike, spi_in);
            return;
        }
        child.installed = true;
        let Some(sa) = self.ikes.get(&ike) else {
            return;
        };
        let Some(child) = self.children.get(&spi_in) else {
            return;
        };
        // A policy already held by a live Child SA of the same flow (the SA
        // this one replaces, or a duplicate) stays as it is.
        let policies: Vec<PolicyParams> = policy_entries(sa, child)
            .into_iter()
            .filter(|p| {
                self.policy_owner
                    .get(&(p.selector, p.direction))
                    .is_none_or(|owner| !self.children.contains_key(owner))
            })
            .collect();
        for policy in policies {
            self.policy_owner
                .insert((policy.selector, policy.direction), spi_in);
            self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::AddPolicy {
                id,
                policy,
            });
        }
    }

    /// A Child SA whose pair did not go in whole: removes what did, once
    /// both answers are in, so that no SA of ours stays in the kernel
    /// alone (an outbound SA without its inbound one would carry traffic
    /// through a trap policy of the same reqid; an inbound one would accept
    /// it). The inbound SPI is always given back: if its SA failed, its
    /// larval SA is still there. No policy was asked for yet.
    fn remove_installed_half(&mut self, ike: u64, spi_in: u32) {
        let Some(child) = self.children.get_mut(&spi_in) else {
            return;
        };
        let (_, outbound_in) = std::mem::take(&mut child.sas_in_kernel);
        let spi_out = child.spi_out;
        let Some(sa) = self.ikes.get(&ike) else {
            return;
        };
        let (local, peer) = (sa.local.ip(), sa.peer.ip());
        log::warn!(
            "Child SA {spi_in:08x}/{spi_out:08x} not installed whole: removing what went in{}",
            if outbound_in {
                " (its outbound SA) and its inbound SPI"
            } else {
                " and its inbound SPI"
            }
        );
        let mut ids = vec![SaId {
            src: peer,
            dst: local,
            protocol: IpsecProtocol::Esp,
            spi: spi_in,
        }];
        if outbound_in {
            ids.push(SaId {
                src: local,
                dst: peer,
                protocol: IpsecProtocol::Esp,
                spi: spi_out,
            });
        }
        for sa_id in ids {
            self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::DeleteSa {
                id,
                sa: sa_id,
            });
        }
    }

    /// Gives back an inbound SPI allocated for a Child SA that was then
    /// refused: its larval SA would otherwise wait in the kernel (and in
    /// pfkey's count) until the kernel's acquire timeout.
    pub(super) fn release_spi(&mut self, ike: u64, spi_in: u32) {
        let Some(sa) = self.ikes.get(&ike) else {
            return;
        };
        let larval = SaId {
            src: sa.peer.ip(),
            dst: sa.local.ip(),
            protocol: IpsecProtocol::Esp,
            spi: spi_in,
        };
        self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::DeleteSa {
            id,
            sa: larval,
        });
    }

    /// [`Engine::release_spi`] for the Child SA we asked for, if any, in a
    /// request that failed.
    pub(super) fn release_draft(&mut self, ike: u64, draft: Option<ChildDraft>) {
        if let Some(draft) = draft {
            self.release_spi(ike, draft.spi_in);
        }
    }

    /// Removes a Child SA and its kernel entries.
    pub(super) fn remove_child(&mut self, spi_in: u32) {
        self.on_child_removed(spi_in);
        let Some(child) = self.children.remove(&spi_in) else {
            return;
        };
        self.reqids.release(child.reqid);
        if let Some(count) = self.children_by_policy.get_mut(&child.policy) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.children_by_policy.remove(&child.policy);
            }
        }
        let ike = child.ike;
        if let Some(sa) = self.ikes.get_mut(&ike) {
            sa.children.retain(|c| *c != spi_in);
            log::info!(
                "policy {}: Child SA {:08x}/{:08x} deleted",
                sa.policy,
                child.spi_in,
                child.spi_out
            );
        }
        let Some(sa) = self.ikes.get(&ike) else {
            return;
        };
        let (local, peer) = (sa.local.ip(), sa.peer.ip());
        // Policies this child holds go to another live Child SA of the same
        // flow if there is one (rekey, duplicates), else out of the kernel.
        let mut policies = Vec::new();
        for policy in policy_entries(sa, &child) {
            let key = (policy.selector, policy.direction);
            if self.policy_owner.get(&key) != Some(&spi_in) {
                continue;
            }
            let heir = self.flow_children.get(&child.flow).and_then(|set| {
                set.iter()
                    .copied()
                    .find(|c| *c != spi_in && self.children.contains_key(c))
            });
            match heir {
                Some(heir) => {
                    self.policy_owner.insert(key, heir);
                }
                None => {
                    self.policy_owner.remove(&key);
                    policies.push(policy);
                }
            }
        }
        if let Some(set) = self.flow_children.get_mut(&child.flow) {
            set.remove(&spi_in);
            if set.is_empty() {
                self.flow_children.remove(&child.flow);
            }
        }
        if child.installed || child.pending_sa_installs > 0 {
            let ids = [
                SaId {
                    src: peer,
                    dst: local,
                    protocol: IpsecProtocol::Esp,
                    spi: child.spi_in,
                },
                SaId {
                    src: local,
                    dst: peer,
                    protocol: IpsecProtocol::Esp,
                    spi: child.spi_out,
                },
            ];
            for sa_id in ids {
                self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::DeleteSa {
                    id,
                    sa: sa_id,
                });
            }
        }
        for policy in policies {
            self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::DeletePolicy {
                id,
                selector: policy.selector,
                direction: policy.direction,
            });
        }
    }

    /// How many Child SAs an IKE SA of `policy` may hold: the setting, or
    /// the policy's number of flows if larger (each flow gets its own).
    pub(super) fn child_cap_per_ike(&self, policy: &str) -> usize {
        let flows = self.policy(policy).map_or(0, |p| p.flows.len());
        self.settings.max_child_sas_per_ike.max(flows)
    }

    /// Whether IKE SA `spi` may get one more Child SA: None if so, else why
    /// not. A rekey replaces an SA, so it may go past the caps, but only
    /// up to `REKEY_OVERLAP_FACTOR` times them.
    pub(super) fn child_cap_reached(&self, spi: u64, rekey: bool) -> Option<String> {
        let sa = self.ikes.get(&spi)?;
        let factor = if rekey {
            iked_common::limits::REKEY_OVERLAP_FACTOR
        } else {
            1
        };
        let per_ike = self.child_cap_per_ike(&sa.policy).saturating_mul(factor);
        // Children of an SA that replaced this one by rekeying are counted
        // where they live; `sa.children` holds every state.
        if sa.children.len() >= per_ike {
            return Some(format!(
                "IKE SA {spi:016x} holds {} Child SAs (at most {per_ike})",
                sa.children.len()
            ));
        }
        let per_policy = self
            .settings
            .max_child_sas_per_policy
            .saturating_mul(factor);
        let of_policy = self
            .children_by_policy
            .get(&sa.policy)
            .copied()
            .unwrap_or(0);
        if of_policy >= per_policy {
            return Some(format!(
                "policy {} holds {of_policy} Child SAs (at most {per_policy})",
                sa.policy
            ));
        }
        None
    }

    /// Finishes a Child SA from the responder's answer to our request.
    pub(super) fn complete_child_as_initiator(
        &mut self,
        spi: u64,
        draft: ChildDraft,
        inner: &[Payload],
        shared: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
    ) -> Option<u32> {
        let msg = Inbound::of(inner);
        let sa = self.ikes.get(&spi)?;
        let policy_name = sa.policy.clone();
        let accepted = msg
            .sa
            .and_then(|answer| proposals::accepted_matches(&draft.offered, answer));
        let Some(proposal) = accepted else {
            log::warn!("policy {policy_name}: Child SA answer has no acceptable proposal");
            return None;
        };
        let suite = proposals::child_suite(&proposal)?;
        let spi_out = <[u8; 4]>::try_from(proposal.spi.as_slice())
            .ok()
            .map(u32::from_be_bytes)?;
        let Some((tsi, tsr)) = msg.ts() else {
            log::warn!("policy {policy_name}: Child SA answer without traffic selectors");
            return None;
        };
        let Some(flow) = selectors::accept_narrowed(&draft.flow, &tsi.selectors, &tsr.selectors)
        else {
            log::warn!(
                "policy {policy_name}: responder's traffic selectors are outside our proposal"
            );
            return None;
        };
        if !self.our_side_is_assigned(spi, &draft.flow, &flow) {
            return None;
        }
        let transport = msg.notify(NotifyType::UseTransportMode).is_some();
        if transport != draft.transport {
            log::warn!("policy {policy_name}: peer disagrees on transport mode");
            return None;
        }
        let keys = child_keys(sa, &suite, shared, ni, nr)?;
        self.add_child(
            spi,
            draft.spi_in,
            spi_out,
            draft.reqid,
            flow,
            draft.flow_index,
            transport,
            suite,
            keys,
            true,
            lower_nonce(ni, nr).to_vec(),
        );
        Some(draft.spi_in)
    }
}
