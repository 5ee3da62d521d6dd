//! Moving an established IKE SA and its Child SAs to new addresses:
//! MOBIKE's UPDATE_SA_ADDRESSES (RFC 4555 §3.5, `exchange/mobike.rs`) and a
//! NAT mapping change (RFC 7296 §2.23).
//!
//! An IKE SA's `local`, `peer` and NAT flags are the path its Child SAs are
//! installed on: every SA and policy of its Child SAs is computed from
//! them (`child_sa.rs`), so they change only here, after establishment,
//! together with each Child SA's `Ikev2ToPfkey::Migrate` and the indexes
//! that hold the addresses. While a MOBIKE address update waits for its
//! return-routability check, IKE messages already go to the new path
//! (`Mobike::pending`, read through [`IkeSa::ike_path`]) and the Child SAs
//! stay where they are.

use std::net::SocketAddr;

use iked_common::config::Policy;
use iked_common::ipc::Ikev2ToPfkey;
use iked_common::kernel::{IpsecMode, IpsecProtocol, Migration, PolicyDirection, SaId, UdpEncap};

use crate::engine::child_sa::policy_entries;
use crate::engine::state::*;
use crate::engine::Engine;

/// Where an IKE SA is or is to be: both gateway addresses with their
/// ports, and what NAT detection found on that path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Path {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// ESP in UDP (RFC 3948) on this path.
    pub natt: bool,
    pub nat_detected: bool,
    /// We are behind the NAT: we send keepalives.
    pub behind_nat: bool,
}

impl IkeSa {
    /// The path its Child SAs are installed on.
    pub(crate) fn kernel_path(&self) -> Path {
        Path {
            local: self.local,
            peer: self.peer,
            natt: self.natt,
            nat_detected: self.nat_detected,
            behind_nat: self.behind_nat,
        }
    }

    /// Where its IKE messages go (ours, peer's): the path of an address
    /// update still being checked, else the kernel path.
    pub(crate) fn ike_path(&self) -> (SocketAddr, SocketAddr) {
        match &self.mobike.pending {
            Some(path) => (path.local, path.peer),
            None => (self.local, self.peer),
        }
    }
}

/// Whether `policy` admits a tunnel between these gateway addresses: each
/// inside the policy's `local` and `peer` (RFC 4555 §3.5: "acceptable
/// according to local policy"), in one family. pfkey checks again against
/// its flows before it moves anything.
pub(super) fn path_acceptable(policy: &Policy, local: SocketAddr, peer: SocketAddr) -> bool {
    local.is_ipv4() == peer.is_ipv4()
        && policy.peer.is_none_or(|p| p.contains(peer.ip()))
        && policy.local.is_none_or(|p| p.contains(local.ip()))
}

impl Engine {
    /// Moves IKE SA `spi` and its Child SAs to `to`: each Child SA's SAs
    /// and the kernel policies it holds are migrated by pfkey (keys, SPIs
    /// and selectors unchanged; new outer addresses and encapsulation),
    /// then the IKE SA takes the new path.
    pub(super) fn migrate_ike_sa(&mut self, spi: u64, mut to: Path, why: &str) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let from = sa.kernel_path();
        // XFRM_MSG_MIGRATE can change the ports of ESP in UDP but not take
        // the encapsulation away; ESP in UDP without a NAT is still valid
        // (RFC 3948), so it stays.
        to.natt |= from.natt;
        if from == to {
            if let Some(sa) = self.ikes.get_mut(&spi) {
                sa.mobike.pending = None;
            }
            return;
        }
        // What each Child SA holds in the kernel now, before the IKE SA's
        // addresses change (they name it).
        let (old_local, old_peer) = (from.local.ip(), from.peer.ip());
        let mut moves = Vec::new();
        for child_spi in &sa.children {
            let Some(child) = self.children.get(child_spi) else {
                continue;
            };
            if child.install_failed {
                continue;
            }
            let mut policies: Vec<_> = policy_entries(sa, child)
                .into_iter()
                .map(|p| (p.selector, p.direction))
                .filter(|key| self.policy_owner.get(key) == Some(child_spi))
                .collect();
            // The flow's trap is its outbound policy (same reqid): it moves
            // the outbound SA. Only the ports can change then: a trap has a
            // configured peer address.
            if child.trap_out {
                policies.insert(0, (child.flow, PolicyDirection::Out));
            }
            moves.push((
                *child_spi,
                Migration {
                    inbound: SaId {
                        src: old_peer,
                        dst: old_local,
                        protocol: IpsecProtocol::Esp,
                        spi: child.spi_in,
                    },
                    outbound: SaId {
                        src: old_local,
                        dst: old_peer,
                        protocol: IpsecProtocol::Esp,
                        spi: child.spi_out,
                    },
                    reqid: child.reqid,
                    mode: if child.transport {
                        IpsecMode::Transport
                    } else {
                        IpsecMode::Tunnel
                    },
                    policies,
                    new_local: to.local.ip(),
                    new_peer: to.peer.ip(),
                    // Outbound orientation, as SaParams' encap of our
                    // outbound SA: our port, then the peer's.
                    encap: to.natt.then(|| UdpEncap {
                        src_port: to.local.port(),
                        dst_port: to.peer.port(),
                    }),
                },
            ));
        }
        let policy = sa.policy.clone();
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.local = to.local;
        sa.peer = to.peer;
        sa.natt = to.natt;
        sa.nat_detected = to.nat_detected;
        sa.behind_nat = to.behind_nat;
        sa.mobike.pending = None;
        // A responder's SA stays findable by its IKE_SA_INIT under the
        // peer's current address.
        if let Some((spi_i, old)) = sa.half_open_key {
            if old != to.peer {
                sa.half_open_key = Some((spi_i, to.peer));
                if self.by_init.remove(&(spi_i, old)).is_some() {
                    self.by_init.insert((spi_i, to.peer), spi);
                }
            }
        }
        log::info!(
            "policy {policy}: IKE SA {spi:016x} moved from {} -> {} to {} -> {}{} ({why}): migrating {} Child SA(s)",
            from.local,
            from.peer,
            to.local,
            to.peer,
            if to.natt { ", ESP in UDP" } else { "" },
            moves.len()
        );
        for (child, migration) in moves {
            if let Some(sa) = self.ikes.get_mut(&spi) {
                sa.mobike.migrating.insert(child, migration.clone());
            }
            self.ask_pfkey(spi, Wait::Migrate { child }, |id| Ikev2ToPfkey::Migrate {
                id,
                migration,
            });
        }
        self.schedule(spi);
    }

    /// pfkey moved a Child SA, or could not. Then its SAs and policies are
    /// still at the old addresses, where they carry nothing: they are
    /// removed, the peer is told the Child SA is gone, and the initiator
    /// of an active policy negotiates it anew on the new path.
    pub(super) fn migration_done(
        &mut self,
        ike: u64,
        child: u32,
        failure: Option<iked_common::kernel::KernelFailure>,
    ) {
        let Some(sa) = self.ikes.get_mut(&ike) else {
            return;
        };
        let Some(old) = sa.mobike.migrating.remove(&child) else {
            return;
        };
        let Some(failure) = failure else {
            log::debug!(
                "Child SA {child:08x} moved to {} -> {}",
                old.new_local,
                old.new_peer
            );
            return;
        };
        let policy = sa.policy.clone();
        log::warn!(
            "policy {policy}: Child SA {child:08x} could not be moved to {} -> {}: {}; \
             removing it at its old addresses and deleting it with the peer",
            old.new_local,
            old.new_peer,
            failure.message
        );
        let Some(c) = self.children.get_mut(&child) else {
            return;
        };
        // remove_child must not delete at the new addresses what is not there.
        c.installed = false;
        c.pending_sa_installs = 0;
        c.sas_in_kernel = (false, false);
        let (flow_index, trap_out) = (c.flow_index, c.trap_out);
        for sa_id in [old.inbound, old.outbound] {
            self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::DeleteSa {
                id,
                sa: sa_id,
            });
        }
        for (selector, direction) in old.policies {
            if trap_out && direction == PolicyDirection::Out {
                continue;
            }
            if self.policy_owner.get(&(selector, direction)) == Some(&child) {
                self.policy_owner.remove(&(selector, direction));
            }
            self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::DeletePolicy {
                id,
                selector,
                direction,
            });
        }
        let active = self
            .policy(&policy)
            .is_some_and(|p| p.initiation == iked_common::config::PolicyInitiation::Active);
        if let Some(sa) = self.ikes.get_mut(&ike) {
            sa.queue
                .push_back(Task::DeleteChildren { spis: vec![child] });
            if active {
                sa.queue.push_back(Task::CreateChild { flow_index });
            }
        }
        self.pump(ike);
        self.schedule(ike);
    }

    /// Where an authenticated request of the peer came from (RFC 7296
    /// §2.11: its response goes back there), and a NAT mapping change
    /// (§2.23): only when a NAT was detected, we are not behind it, and
    /// MOBIKE is not in use (RFC 4555 §3.8: with MOBIKE only
    /// UPDATE_SA_ADDRESSES moves an SA), the SA follows the peer's new
    /// address and port. The message ID check before this has already
    /// refused replays, so an old packet cannot move it back.
    pub(super) fn note_request_path(&mut self, spi: u64, local: SocketAddr, remote: SocketAddr) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let authenticated = matches!(
            sa.state,
            IkeState::Established | IkeState::Rekeyed | IkeState::Deleting
        );
        if !authenticated {
            // IKE_AUTH: after IKE_SA_INIT the initiator may float to port
            // 4500 (§2.23; RFC 4555 §3.3), and a NAT may have changed its
            // port: the SA's addresses are those of IKE_AUTH.
            sa.mobike.request_path = None;
            if sa.peer != remote || sa.local != local {
                if !sa.local.ip().is_unspecified() && sa.local.ip() != local.ip() {
                    log::debug!(
                        "IKE SA {spi:016x}: request arrived at {local}, expected {}",
                        sa.local
                    );
                }
                sa.peer = remote;
                sa.local = local;
            }
            return;
        }
        if sa.ike_path() == (local, remote) {
            sa.mobike.request_path = None;
            return;
        }
        sa.mobike.request_path = Some((local, remote));
        if sa.mobike.negotiated() {
            log::debug!(
                "IKE SA {spi:016x}: request from {remote} to {local}, another path: answered there; \
                 with MOBIKE only UPDATE_SA_ADDRESSES moves the SA (RFC 4555 §3.8)"
            );
            return;
        }
        if !sa.nat_detected || sa.behind_nat {
            log::debug!(
                "IKE SA {spi:016x}: request from {remote} to {local}: addresses kept ({})",
                if sa.nat_detected {
                    "we are behind the NAT"
                } else {
                    "no NAT was detected"
                }
            );
            return;
        }
        let to = Path {
            local,
            peer: remote,
            ..sa.kernel_path()
        };
        let policy = sa.policy.clone();
        if !self
            .policy(&policy)
            .is_some_and(|p| path_acceptable(p, local, remote))
        {
            log::warn!(
                "policy {policy}: IKE SA {spi:016x}: authenticated request from {remote}, \
                 outside the policy's peer addresses: the SA is not moved"
            );
            return;
        }
        self.migrate_ike_sa(spi, to, "NAT mapping change, RFC 7296 §2.23");
    }
}
