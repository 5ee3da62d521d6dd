//! Moving one Child SA's kernel state to new gateway addresses: MOBIKE's
//! UPDATE_SA_ADDRESSES (RFC 4555 §3.5) or a NAT mapping change (RFC 7296
//! §2.23), asked by ikev2 as [`Migration`].
//!
//! Checked like an install, since the result is one: both SAs and every
//! policy must be ours, with the migration's reqid, admitted under one
//! flow; a flow of the same policy must admit the new peer address and
//! have the new local address as its `local` (pfkey installs only from
//! configured addresses: a gateway's local stays, its road warriors' peer
//! addresses change inside the `peer` range; a client may move only
//! between local addresses its policy names, one flow each). A lease the
//! SAs carry must belong to the old (or already the new) peer address.
//! Tunnel mode only (transport-mode selectors name the old addresses,
//! which MIGRATE does not change). UDP encapsulation only on our NAT-T port; XFRM_MSG_MIGRATE keeps an
//! SA's encapsulation when asked for none, so a move from ESP in UDP back
//! to plain ESP is refused (the Child SA must be rekeyed).
//!
//! Carried out with one XFRM_MSG_MIGRATE per policy (out first, then in
//! and fwd): the kernel moves each policy's template and, in the same
//! step, the SAs it finds by old addresses, protocol, mode and reqid;
//! it replaces them atomically (the new SA is inserted before the old one
//! is deleted, with keys, counters and replay state kept). As it does not
//! look at SPIs, a migration is refused while another SA of ours has the
//! same gateways and reqid (a rekey's old SA: migrate once it is gone).
//! PF_KEY has no MIGRATE in our codec and pfkey keeps no keys to add the
//! SAs anew: refused there with the reason, so ikev2 rekeys instead.
//! Finding the same-reqid SAs scans our SAs: a migration is a rare,
//! per-client event, never per packet.

use std::net::IpAddr;

use iked_common::ipc::ChildToParent;
use iked_common::kernel::{
    FailureKind, Flow, IpsecMode, IpsecProtocol, KernelEntry, KernelFailure, KernelSocketKind,
    Migration, PolicyDirection, SaId, UdpEncap,
};

use super::{Outcome, PfkeyService};
use crate::backend::{local_failure, MigrateRequest};

fn refused(migration: &Migration, message: String) -> KernelFailure {
    local_failure(
        FailureKind::NotPermitted,
        format!(
            "refused: migrate {} / {} to {} - {}: {message}",
            migration.outbound, migration.inbound, migration.new_local, migration.new_peer
        ),
    )
}

fn moved(id: &SaId, src: IpAddr, dst: IpAddr) -> SaId {
    SaId { src, dst, ..*id }
}

impl PfkeyService {
    /// Checks `m` and moves its SAs and policies.
    pub(super) fn migrate(
        &mut self,
        m: &Migration,
        outcome: &mut Outcome,
    ) -> Result<(), KernelFailure> {
        if self.backend.kind() == KernelSocketKind::Pfkey {
            return Err(local_failure(
                FailureKind::Unsupported,
                format!(
                    "migrate {}: PF_KEY: iked moves SAs to new addresses only over XFRM \
                     (XFRM_MSG_MIGRATE), and pfkey keeps no keys to add them anew; the Child \
                     SA must be rekeyed instead",
                    m.outbound
                ),
            ));
        }
        let flow = self.check_migration(m)?;
        let natt_port = flow.limits.natt_port;
        let (old_local, old_peer) = (m.outbound.src, m.outbound.dst);
        let leases: Vec<IpAddr> = std::iter::once(KernelEntry::Sa(m.outbound))
            .chain(std::iter::once(KernelEntry::Sa(m.inbound)))
            .chain(
                m.policies
                    .iter()
                    .map(|(selector, direction)| KernelEntry::Policy {
                        selector: *selector,
                        direction: *direction,
                    }),
            )
            .filter_map(|e| self.leases.lease_of(&e))
            .collect();
        for lease in &leases {
            match self.leases.owner(*lease) {
                Some(owner) if owner != old_peer && owner != m.new_peer => {
                    return Err(refused(
                        m,
                        format!("pool address {lease} is installed for peer {owner}"),
                    ))
                }
                _ => {}
            }
        }
        if let Some(encap) = m.encap {
            if natt_port != Some(encap.src_port) {
                return Err(refused(
                    m,
                    match natt_port {
                        Some(port) => format!(
                            "UDP encapsulation on our port {}, not the NAT-T port {port}",
                            encap.src_port
                        ),
                        None => "UDP encapsulation, but NAT-T is disabled".into(),
                    },
                ));
            }
            if encap.dst_port == 0 {
                return Err(refused(m, "UDP encapsulation to the peer's port 0".into()));
            }
        } else if self.encapsulated.contains(&m.outbound) || self.encapsulated.contains(&m.inbound)
        {
            return Err(refused(
                m,
                "the SAs are UDP-encapsulated and XFRM_MSG_MIGRATE cannot remove that: the \
                 Child SA must be rekeyed"
                    .into(),
            ));
        }
        // Out first (it moves the outbound SA), then in and fwd (the first
        // of them moves the inbound SA, the rest their templates only).
        let mut policies = m.policies.clone();
        policies.sort_by_key(|(_, d)| *d != PolicyDirection::Out);
        let mut done = Vec::new();
        let (mut outbound_moved, mut inbound_moved) = (false, false);
        for (selector, direction) in policies {
            let outbound = direction == PolicyDirection::Out;
            let request = MigrateRequest {
                selector,
                direction,
                old_src: if outbound { old_local } else { old_peer },
                old_dst: if outbound { old_peer } else { old_local },
                new_src: if outbound { m.new_local } else { m.new_peer },
                new_dst: if outbound { m.new_peer } else { m.new_local },
                protocol: IpsecProtocol::Esp,
                mode: m.mode,
                reqid: m.reqid,
                encap: m.encap.map(|e| {
                    if outbound {
                        e
                    } else {
                        UdpEncap {
                            src_port: e.dst_port,
                            dst_port: e.src_port,
                        }
                    }
                }),
            };
            if let Err(f) = self.backend.migrate(&request) {
                let so_far = if done.is_empty() {
                    "nothing was moved".to_string()
                } else {
                    format!("moved before: {}", done.join(", "))
                };
                return Err(KernelFailure {
                    message: format!("{} ({so_far})", f.message),
                    ..f
                });
            }
            if done.is_empty() {
                // The kernel moved something: the client's lease and
                // reqid follow.
                for lease in &leases {
                    self.leases.move_peer(*lease, old_peer, m.new_peer);
                }
                self.reqids.move_peer(m.reqid, old_peer, m.new_peer);
            }
            done.push(format!("policy {selector} dir {direction:?}"));
            if outbound && !outbound_moved {
                outbound_moved = true;
                let new = moved(&m.outbound, m.new_local, m.new_peer);
                self.sa_moved(&m.outbound, new, m.encap.is_some(), true, outcome);
            } else if !outbound && !inbound_moved {
                inbound_moved = true;
                let new = moved(&m.inbound, m.new_peer, m.new_local);
                self.sa_moved(&m.inbound, new, m.encap.is_some(), false, outcome);
            }
        }
        log::info!(
            "moved {} and {} to {} - {}{}",
            m.outbound,
            m.inbound,
            m.new_local,
            m.new_peer,
            match m.encap {
                Some(e) => format!(" (ESP in UDP, peer port {})", e.dst_port),
                None => String::new(),
            }
        );
        Ok(())
    }

    /// The flow the migration stays inside, or why it may not be done.
    fn check_migration(&self, m: &Migration) -> Result<Flow, KernelFailure> {
        let (out, inb) = (&m.outbound, &m.inbound);
        if m.mode != IpsecMode::Tunnel {
            // Transport-mode SAs and policies select the gateways' own
            // addresses, which MIGRATE leaves as they are.
            return Err(refused(
                m,
                "transport mode: the selectors name the old addresses and MIGRATE keeps them; \
                 the Child SA must be rekeyed"
                    .into(),
            ));
        }
        if out.src != inb.dst || out.dst != inb.src {
            return Err(refused(
                m,
                "the two SAs do not join the same gateways".into(),
            ));
        }
        if m.new_local.is_ipv4() != m.new_peer.is_ipv4() || m.new_local == m.new_peer {
            return Err(refused(
                m,
                "new addresses of two families, or one address".into(),
            ));
        }
        for sa in [out, inb] {
            let entry = KernelEntry::Sa(*sa);
            if !self.installed.contains(&entry) || self.allocated.contains(sa) {
                return Err(refused(m, format!("{sa} is not an SA installed by us")));
            }
            if self.reqids.reqid_of(&entry) != Some(m.reqid) {
                return Err(refused(m, format!("{sa} does not have reqid {}", m.reqid)));
            }
        }
        if !m.policies.iter().any(|(_, d)| *d == PolicyDirection::Out)
            || !m.policies.iter().any(|(_, d)| *d != PolicyDirection::Out)
        {
            return Err(refused(
                m,
                "an out policy and an in or fwd policy are needed to move both SAs".into(),
            ));
        }
        for (selector, direction) in &m.policies {
            let entry = KernelEntry::Policy {
                selector: *selector,
                direction: *direction,
            };
            if !self.installed.contains(&entry) {
                return Err(refused(
                    m,
                    format!("policy {selector} dir {direction:?} is not installed by us"),
                ));
            }
            if self.reqids.reqid_of(&entry) != Some(m.reqid) {
                return Err(refused(
                    m,
                    format!(
                        "policy {selector} dir {direction:?} does not have reqid {}",
                        m.reqid
                    ),
                ));
            }
        }
        let policy = match (self.sa_policy.get(out), self.sa_policy.get(inb)) {
            (Some(a), Some(b)) if a == b => a.clone(),
            _ => return Err(refused(m, "the SAs belong to different policies".into())),
        };
        // The kernel picks SAs by gateways and reqid: another SA of ours
        // with both would be moved instead of, or besides, the one named.
        if let Some(other) = self.sa_policy.keys().find(|sa| {
            *sa != out
                && *sa != inb
                && ((sa.src, sa.dst) == (out.src, out.dst)
                    || (sa.src, sa.dst) == (inb.src, inb.dst))
                && self.reqids.reqid_of(&KernelEntry::Sa(**sa)) == Some(m.reqid)
        }) {
            return Err(refused(
                m,
                format!(
                    "{other} has the same gateways and reqid, and the kernel's MIGRATE cannot \
                     tell them apart: migrate once the rekey is complete"
                ),
            ));
        }
        let of_policy: Vec<&Flow> = self.flows.iter().filter(|f| f.name == policy).collect();
        if of_policy.is_empty() {
            return Err(refused(m, format!("policy {policy} has no flow any more")));
        }
        if !of_policy
            .iter()
            .any(|f| f.local == out.src && f.peer.admits(out.dst))
        {
            return Err(refused(
                m,
                format!("{out} does not leave from a local address of policy {policy}: not its outbound SA"),
            ));
        }
        let mut reasons = Vec::new();
        for flow in of_policy {
            if flow.mode != m.mode {
                reasons.push(format!("flow {} wants {:?} mode", flow.name, flow.mode));
            } else if m.new_local != flow.local {
                reasons.push(format!(
                    "flow {} installs SAs from {} only, not {}",
                    flow.name, flow.local, m.new_local
                ));
            } else if !flow.peer.admits(m.new_peer) {
                reasons.push(format!(
                    "flow {} admits peers {}, not {}",
                    flow.name, flow.peer, m.new_peer
                ));
            } else {
                return Ok(flow.clone());
            }
        }
        Err(refused(m, reasons.join("; ")))
    }

    /// Our records of SA `old`, which the kernel now has as `new`.
    fn sa_moved(
        &mut self,
        old: &SaId,
        new: SaId,
        encapsulated: bool,
        outbound: bool,
        outcome: &mut Outcome,
    ) {
        if *old == new {
            // Same addresses (a NAT mapping change of ports only): the
            // SA keeps its id; only its encapsulation changed.
            if encapsulated {
                self.encapsulated.insert(new);
            }
            return;
        }
        let old_entry = KernelEntry::Sa(*old);
        let new_entry = KernelEntry::Sa(new);
        if let Some(reqid) = self.reqids.reqid_of(&old_entry) {
            if let Some(owner) = self.reqids.owner_of(reqid).cloned() {
                self.reqids.bind(reqid, owner, new_entry.clone());
            }
        }
        self.reqids.release(&old_entry);
        if let Some(lease) = self.leases.lease_of(&old_entry) {
            self.leases.release(&old_entry);
            let peer = if outbound { new.dst } else { new.src };
            self.leases.bind(lease, peer, new_entry.clone());
        }
        if let Some(policy) = self.sa_policy.remove(old) {
            self.sa_policy.insert(new, policy);
        }
        self.encapsulated.remove(old);
        if encapsulated {
            self.encapsulated.insert(new);
        }
        if outbound {
            if let Some(routes) = self.routes.as_mut() {
                routes.sa_moved(old, new);
            }
        }
        // Reported added before removed: the parent's list never lacks it.
        if self.installed.insert(new_entry.clone()) {
            outcome
                .to_parent
                .push(ChildToParent::KernelEntryAdded(new_entry));
        }
        if self.installed.remove(&old_entry) {
            outcome
                .to_parent
                .push(ChildToParent::KernelEntryRemoved(old_entry));
        }
    }
}
