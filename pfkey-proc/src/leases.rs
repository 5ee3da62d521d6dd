//! Which peer each pool address of our installed entries belongs to. A
//! road warrior's lease (RFC 7296 §3.15) is one address of a policy's
//! pool, and every client of that policy shares its flow: without this, a
//! compromised ikev2 could install, for peer P2, SAs and policies naming
//! the address leased to P1, and take P1's traffic. So from the first
//! entry of ours naming a pool address until the last one is gone, the
//! address belongs to one peer address; an entry naming it for another
//! peer is refused. Two clients behind one NAT share a peer address; they
//! are told apart by their leases and reqids (crate::reqids), not here.
//! Memory is bounded by the entries pfkey keeps (`MAX_INSTALLED`).

use std::collections::HashMap;
use std::net::IpAddr;

use iked_common::kernel::{FailureKind, KernelEntry, KernelFailure};

use crate::backend::local_failure;
use crate::reqids::release_one;

#[derive(Debug, Default)]
pub struct LeaseOwners {
    /// Each leased address's peer and how many of our entries name it.
    owners: HashMap<IpAddr, (IpAddr, usize)>,
    /// The lease and peer each of our entries was installed with.
    entries: HashMap<KernelEntry, (IpAddr, IpAddr)>,
}

impl LeaseOwners {
    /// Whether an entry may name `lease` for `peer`. `entry`, when it is
    /// one already bound, is not counted against itself (an update).
    pub fn check(
        &self,
        lease: IpAddr,
        peer: IpAddr,
        entry: &KernelEntry,
    ) -> Result<(), KernelFailure> {
        match self.owners.get(&lease) {
            Some((owner, count)) if *owner != peer => {
                let only_itself =
                    *count == 1 && self.entries.get(entry).is_some_and(|(l, _)| *l == lease);
                if only_itself {
                    return Ok(());
                }
                Err(local_failure(
                    FailureKind::NotPermitted,
                    format!(
                        "refused: {entry}: pool address {lease} is installed for peer {owner}, \
                         not {peer}"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Records that `entry` names `lease` for `peer`.
    pub fn bind(&mut self, lease: IpAddr, peer: IpAddr, entry: KernelEntry) {
        match self.entries.insert(entry, (lease, peer)) {
            Some(old) if old == (lease, peer) => return,
            Some((old_lease, _)) => release_one(&mut self.owners, &old_lease),
            None => {}
        }
        let owner = self.owners.entry(lease).or_insert((peer, 0));
        // Rebinding the only entry to a new peer (a migration) moves the
        // lease with it.
        if owner.1 == 0 {
            owner.0 = peer;
        }
        owner.1 += 1;
    }

    /// `entry` is gone from the kernel.
    pub fn release(&mut self, entry: &KernelEntry) {
        if let Some((lease, _)) = self.entries.remove(entry) {
            release_one(&mut self.owners, &lease);
        }
    }

    /// The client holding `lease` moved from `old` to `new` (MOBIKE, a
    /// NAT mapping change): the lease and every entry naming it go with
    /// it, so that its entries not yet moved can follow and no other peer
    /// can claim it meanwhile.
    pub fn move_peer(&mut self, lease: IpAddr, old: IpAddr, new: IpAddr) {
        if let Some(owner) = self.owners.get_mut(&lease).filter(|o| o.0 == old) {
            owner.0 = new;
            for (l, peer) in self.entries.values_mut() {
                if *l == lease && *peer == old {
                    *peer = new;
                }
            }
        }
    }

    /// The lease `entry` names, if any.
    pub fn lease_of(&self, entry: &KernelEntry) -> Option<IpAddr> {
        self.entries.get(entry).map(|(lease, _)| *lease)
    }

    /// The peer holding `lease`, if an entry of ours names it.
    pub fn owner(&self, lease: IpAddr) -> Option<IpAddr> {
        self.owners.get(&lease).map(|(peer, _)| *peer)
    }

    /// How many leases our entries name (tests, diagnostics).
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::ip;
    use iked_common::kernel::{IpsecProtocol, PolicyDirection, SaId, Selector};

    fn sa(peer: &str, spi: u32) -> KernelEntry {
        KernelEntry::Sa(SaId {
            src: ip("192.0.2.1"),
            dst: ip(peer),
            protocol: IpsecProtocol::Esp,
            spi,
        })
    }

    fn policy(lease: &str) -> KernelEntry {
        KernelEntry::Policy {
            selector: Selector::between(ip("0.0.0.0"), 0, ip(lease), 32),
            direction: PolicyDirection::Out,
        }
    }

    #[test]
    fn a_lease_stays_with_one_peer_until_its_last_entry_is_gone() {
        let lease = ip("10.9.0.5");
        let (p1, p2) = (ip("198.18.1.1"), ip("198.18.1.2"));
        let mut leases = LeaseOwners::default();
        leases.check(lease, p1, &sa("198.18.1.1", 0x100)).unwrap();
        leases.bind(lease, p1, sa("198.18.1.1", 0x100));
        leases.bind(lease, p1, policy("10.9.0.5"));
        assert!(leases.check(lease, p1, &sa("198.18.1.1", 0x101)).is_ok());
        let e = leases
            .check(lease, p2, &sa("198.18.1.2", 0x200))
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::NotPermitted);
        assert_eq!(
            e.message,
            "refused: SA 192.0.2.1 -> 198.18.1.2 spi 0x00000200: pool address 10.9.0.5 is \
             installed for peer 198.18.1.1, not 198.18.1.2"
        );
        // The policy (same key) for P2 while P1's SA still names it: no.
        assert!(leases.check(lease, p2, &policy("10.9.0.5")).is_err());
        leases.release(&sa("198.18.1.1", 0x100));
        assert!(leases.check(lease, p2, &sa("198.18.1.2", 0x200)).is_err());
        leases.release(&policy("10.9.0.5"));
        assert!(leases.is_empty());
        assert!(leases.check(lease, p2, &sa("198.18.1.2", 0x200)).is_ok());
    }

    #[test]
    fn the_only_entry_of_a_lease_may_move_to_a_new_peer() {
        let lease = ip("10.9.0.5");
        let (p1, p2) = (ip("198.18.1.1"), ip("198.18.1.2"));
        let mut leases = LeaseOwners::default();
        leases.bind(lease, p1, policy("10.9.0.5"));
        assert!(leases.check(lease, p2, &policy("10.9.0.5")).is_ok());
        leases.bind(lease, p2, policy("10.9.0.5"));
        assert_eq!(leases.owner(lease), Some(p2));
        assert_eq!(leases.len(), 1);
        leases.release(&policy("10.9.0.5"));
        assert!(leases.is_empty());
    }

    #[test]
    fn distinct_leases_of_one_peer_are_independent() {
        let p = ip("198.18.1.1");
        let mut leases = LeaseOwners::default();
        leases.bind(ip("10.9.0.5"), p, policy("10.9.0.5"));
        leases.bind(ip("10.9.0.6"), p, policy("10.9.0.6"));
        assert_eq!(leases.len(), 2);
        assert_eq!(leases.lease_of(&policy("10.9.0.6")), Some(ip("10.9.0.6")));
        leases.release(&policy("10.9.0.5"));
        assert_eq!(leases.owner(ip("10.9.0.5")), None);
        assert_eq!(leases.owner(ip("10.9.0.6")), Some(p));
    }
}
