//! An IKE SA becoming established: duplicates, INITIAL_CONTACT, the first Child SA, more Child SAs.

use crate::engine::Engine;

use crate::engine::admission::*;
use crate::engine::identity::*;
use crate::engine::state::*;

impl Engine {
    /// RFC 7296 §2.4: INITIAL_CONTACT: other IKE SAs of the same policy
    /// with the same peer identity are stale; delete them without DELETE.
    pub(in crate::engine) fn drop_stale_sas(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(peer_id) = sa.peer_id.clone() else {
            return;
        };
        let mut stale: Vec<u64> = self
            .by_identity
            .get(&(sa.policy.clone(), peer_id))
            .map(|set| {
                set.iter()
                    .copied()
                    .filter(|other| *other != spi)
                    // Road warriors: two EAP users may send one IKE ID
                    // (their private address behind a NAT); only the
                    // user's own SAs are stale.
                    .filter(|other| {
                        self.ikes
                            .get(other)
                            .is_some_and(|o| o.eap_identity == sa.eap_identity)
                    })
                    // Only SAs that existed before this one began: one
                    // established meanwhile (both sides initiating at once)
                    // is not stale, and the peer holds it too.
                    .filter(|other| {
                        self.ikes
                            .get(other)
                            .and_then(|o| o.established)
                            .is_some_and(|t| t < sa.created)
                    })
                    .collect()
            })
            .unwrap_or_default();
        // SPI order, not the set's (random) order.
        stale.sort_unstable();
        for other in stale {
            log::info!("IKE SA {other:016x}: peer sent INITIAL_CONTACT, dropping the stale SA");
            self.delete_ike_local(other, "INITIAL_CONTACT");
        }
    }

    /// Both gateways initiated at once and now hold two IKE SAs with each
    /// other, one in each role. Both sides see the same two SPI pairs, so
    /// both keep the one with the lower (SPIi, SPIr); whoever initiated the
    /// other deletes it (its Child SAs go with it; the flow's kernel
    /// policies pass to the survivor's).
    pub(in crate::engine) fn resolve_duplicate(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(peer_id) = sa.peer_id.clone() else {
            return;
        };
        let mine = (sa.spi_i, sa.spi_r);
        let role = sa.initiator;
        let mut twins: Vec<(u64, (u64, u64), bool)> = self
            .by_identity
            .get(&(sa.policy.clone(), peer_id))
            .map(|set| {
                set.iter()
                    .filter(|other| **other != spi)
                    .filter_map(|other| self.ikes.get(other).map(|o| (*other, o)))
                    .filter(|(_, o)| o.state == IkeState::Established && o.initiator != role)
                    .map(|(other, o)| (other, (o.spi_i, o.spi_r), o.initiator))
                    .collect()
            })
            .unwrap_or_default();
        twins.sort_unstable();
        for (other, theirs, other_is_ours) in twins {
            let (loser, loser_is_ours) = if mine < theirs {
                (other, other_is_ours)
            } else {
                (spi, role)
            };
            log::info!("IKE SA {loser:016x} duplicates another with the same peer (both sides initiated): {}", if loser_is_ours { "deleting it" } else { "the peer deletes it" });
            if loser_is_ours {
                if let Some(l) = self.ikes.get_mut(&loser) {
                    l.no_restart = true;
                }
                self.request_delete_ike(loser);
            }
            if loser == spi {
                return;
            }
        }
    }

    pub(in crate::engine) fn establish(&mut self, spi: u64) {
        let Some(policy) = self
            .ikes
            .get(&spi)
            .and_then(|sa| self.policy(&sa.policy))
            .cloned()
        else {
            return;
        };
        let rekey_at = self.rekey_time(policy.ike_lifetime_secs);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.state = IkeState::Established;
        sa.established = Some(self.now);
        sa.timers.stop_removal();
        sa.timers.set_or_stop(IkeTimer::Rekey, rekey_at);
        let record = HalfOpenRecord::take(sa);
        // Only IKE_SA_INIT and IKE_AUTH needed it (the signed octets are
        // most of an SA's memory).
        sa.handshake = None;
        let eap = sa.eap.take();
        log::info!(
            "policy {}: IKE SA {:016x}/{:016x} established with {} ({}){}",
            sa.policy,
            sa.spi_i,
            sa.spi_r,
            sa.peer,
            sa.peer_id.as_ref().map(identity_text).unwrap_or_default(),
            if sa.natt { ", NAT-T" } else { "" }
        );
        self.uncount_half_open(record);
        self.end_eap_session(spi, eap);
        self.index_identity(spi);
        self.on_ike_up(spi);
        self.resolve_duplicate(spi);
        self.enforce_single_ike_sa(spi);
    }

    pub(in crate::engine) fn queue_additional_children(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(policy) = self.policy(&sa.policy) else {
            return;
        };
        let have: Vec<usize> = sa
            .children
            .iter()
            .filter_map(|c| self.children.get(c))
            .map(|c| c.flow_index)
            .collect();
        let first = sa.first_flow;
        let wanted: Vec<usize> = (0..policy.flows.len())
            .filter(|i| *i != first && !have.contains(i))
            .collect();
        if let Some(sa) = self.ikes.get_mut(&spi) {
            for flow_index in wanted {
                sa.queue.push_back(Task::CreateChild { flow_index });
            }
        }
    }
}
