//! Which policy each reqid of ours belongs to. The kernel ties an SA to a
//! policy by reqid (and, in tunnel mode, the gateway addresses; in
//! transport mode by reqid alone): an SA that a compromised ikev2 installs
//! with the reqid of another policy's kernel policy would carry that
//! policy's traffic. So a reqid, from the first entry of ours that uses
//! it until the last one is gone, belongs to one policy between one pair of
//! gateways; an SA or policy of another with the same reqid is refused, and
//! reqid 0 (which a template matches to any SA) always is. A policy may
//! use several reqids (one per flow, a new one per passive Child SA).
//! For a flow of a peer range (road warriors) the pair of gateways is the
//! one peer address the entry names: the many clients of one flow each
//! have reqids of their own (ikev2 picks them), and a client's reqid is
//! not another peer address's; a migration moves it with its client.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use iked_common::kernel::{FailureKind, Flow, FlowPeer, KernelEntry, KernelFailure};

use crate::backend::local_failure;

/// The policy and gateways a reqid is kept to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqidOwner {
    pub policy: String,
    pub local: IpAddr,
    pub peer: iked_common::kernel::FlowPeer,
}

impl ReqidOwner {
    pub fn of(flow: &Flow) -> ReqidOwner {
        ReqidOwner {
            policy: flow.name.clone(),
            local: flow.local,
            peer: flow.peer,
        }
    }

    /// The owner of an entry of `flow` that names peer address `peer`:
    /// for a range flow, that one address.
    pub fn of_entry(flow: &Flow, peer: IpAddr) -> ReqidOwner {
        ReqidOwner {
            peer: match flow.peer {
                FlowPeer::Range(_) => FlowPeer::Address(peer),
                single => single,
            },
            ..ReqidOwner::of(flow)
        }
    }
}

/// One entry fewer uses `key` of `owners` (an owner and a count of
/// entries): the last one gone, so is the owner. Shared with
/// crate::leases, whose pool addresses are held the same way.
pub(crate) fn release_one<K: Eq + Hash, O>(owners: &mut HashMap<K, (O, usize)>, key: &K) {
    if let Some((_, count)) = owners.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            owners.remove(key);
        }
    }
}

/// The reqids of our installed entries: bounded by the entries pfkey
/// keeps (`MAX_INSTALLED`).
#[derive(Debug, Default)]
pub struct ReqidOwners {
    /// Each reqid's owner and how many of our entries use it.
    owners: HashMap<u32, (ReqidOwner, usize)>,
    /// The reqid each of our SAs and policies was installed with.
    entries: HashMap<KernelEntry, u32>,
}

impl ReqidOwners {
    /// Whether an entry of `flow` may use `reqid`.
    pub fn check(&self, reqid: u32, flow: &Flow) -> Result<(), KernelFailure> {
        self.check_owner(reqid, &ReqidOwner::of(flow))
    }

    /// Whether an entry of `wanted` may use `reqid`.
    pub fn check_owner(&self, reqid: u32, wanted: &ReqidOwner) -> Result<(), KernelFailure> {
        if reqid == 0 {
            return Err(local_failure(
                FailureKind::NotPermitted,
                "refused: reqid 0 (a template with reqid 0 takes any SA)".into(),
            ));
        }
        match self.owners.get(&reqid) {
            Some((owner, _)) if owner != wanted => Err(local_failure(
                FailureKind::NotPermitted,
                format!(
                    "refused: reqid {reqid} belongs to policy {} ({} - {}), not to {} ({} - {})",
                    owner.policy, owner.local, owner.peer, wanted.policy, wanted.local, wanted.peer
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Records that `entry` is installed with `reqid` for `owner`.
    pub fn bind(&mut self, reqid: u32, owner: ReqidOwner, entry: KernelEntry) {
        match self.entries.insert(entry, reqid) {
            Some(old) if old == reqid => return,
            Some(old) => release_one(&mut self.owners, &old),
            None => {}
        }
        self.owners.entry(reqid).or_insert((owner, 0)).1 += 1;
    }

    /// `entry` is gone from the kernel.
    pub fn release(&mut self, entry: &KernelEntry) {
        if let Some(reqid) = self.entries.remove(entry) {
            release_one(&mut self.owners, &reqid);
        }
    }

    /// The client that uses `reqid` moved from peer address `old` to
    /// `new` (a migration): the reqid goes with it.
    pub fn move_peer(&mut self, reqid: u32, old: IpAddr, new: IpAddr) {
        if let Some((owner, _)) = self.owners.get_mut(&reqid) {
            if owner.peer == FlowPeer::Address(old) {
                owner.peer = FlowPeer::Address(new);
            }
        }
    }

    /// The reqid `entry` was installed with.
    pub fn reqid_of(&self, entry: &KernelEntry) -> Option<u32> {
        self.entries.get(entry).copied()
    }

    /// The owner of `reqid`, while an entry of ours uses it.
    pub fn owner_of(&self, reqid: u32) -> Option<&ReqidOwner> {
        self.owners.get(&reqid).map(|(owner, _)| owner)
    }

    /// How many reqids are in use (tests, diagnostics).
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
    use crate::test_fixtures::{flow_selector, ip};
    use iked_common::kernel::{Encryption, IpsecMode, SaId, SaLimits};

    fn flow(name: &str, peer: &str) -> Flow {
        Flow {
            name: name.into(),
            selector: flow_selector(),
            local: ip("192.0.2.1"),
            peer: iked_common::kernel::FlowPeer::Address(ip(peer)),
            mode: IpsecMode::Tunnel,
            encryption: vec![Encryption::AesGcm16],
            integrity: vec![],
            limits: SaLimits::default(),
            pools: Vec::new(),
            virtual_ip_interface: None,
        }
    }

    fn sa(spi: u32) -> KernelEntry {
        KernelEntry::Sa(SaId {
            src: ip("192.0.2.1"),
            dst: ip("192.0.2.2"),
            protocol: iked_common::kernel::IpsecProtocol::Esp,
            spi,
        })
    }

    #[test]
    fn a_reqid_stays_with_one_policy_until_its_last_entry_is_gone() {
        let (site, other) = (flow("site", "192.0.2.2"), flow("other", "192.0.2.3"));
        let mut owners = ReqidOwners::default();
        owners.check(7, &site).unwrap();
        owners.bind(7, ReqidOwner::of(&site), sa(0x100));
        owners.bind(7, ReqidOwner::of(&site), sa(0x101));
        assert!(
            owners.check(7, &site).is_ok(),
            "the same policy may reuse it"
        );
        let e = owners.check(7, &other).unwrap_err();
        assert_eq!(e.kind, FailureKind::NotPermitted);
        assert_eq!(
            e.message,
            "refused: reqid 7 belongs to policy site (192.0.2.1 - 192.0.2.2), \
             not to other (192.0.2.1 - 192.0.2.3)"
        );
        owners.release(&sa(0x100));
        assert!(owners.check(7, &other).is_err(), "one entry still uses it");
        owners.release(&sa(0x101));
        assert!(owners.is_empty());
        assert!(owners.check(7, &other).is_ok(), "free again");
    }

    #[test]
    fn clients_of_a_range_flow_each_keep_their_reqids() {
        let rw = Flow {
            peer: FlowPeer::Range(iked_common::config::Prefix {
                addr: ip("0.0.0.0"),
                len: 0,
            }),
            ..flow("rw", "192.0.2.2")
        };
        let (p1, p2) = (ip("198.18.1.1"), ip("198.18.1.2"));
        let mut owners = ReqidOwners::default();
        owners.bind(7, ReqidOwner::of_entry(&rw, p1), sa(0x100));
        owners.bind(8, ReqidOwner::of_entry(&rw, p2), sa(0x200));
        assert!(owners
            .check_owner(7, &ReqidOwner::of_entry(&rw, p1))
            .is_ok());
        let e = owners
            .check_owner(7, &ReqidOwner::of_entry(&rw, p2))
            .unwrap_err();
        assert_eq!(
            e.message,
            "refused: reqid 7 belongs to policy rw (192.0.2.1 - 198.18.1.1), \
             not to rw (192.0.2.1 - 198.18.1.2)"
        );
        // The first client moves: its reqid goes with it.
        let p3 = ip("198.18.1.3");
        owners.move_peer(7, p1, p3);
        assert!(owners
            .check_owner(7, &ReqidOwner::of_entry(&rw, p3))
            .is_ok());
        assert!(owners
            .check_owner(7, &ReqidOwner::of_entry(&rw, p1))
            .is_err());
        // A static flow's owner is its configured peer whatever the entry.
        let site = flow("site", "192.0.2.2");
        assert_eq!(ReqidOwner::of_entry(&site, p1), ReqidOwner::of(&site));
    }

    #[test]
    fn reqid_zero_is_refused() {
        let e = ReqidOwners::default()
            .check(0, &flow("site", "192.0.2.2"))
            .unwrap_err();
        assert!(e.message.contains("refused: reqid 0"), "{}", e.message);
    }

    #[test]
    fn rebinding_an_entry_moves_its_count() {
        let site = flow("site", "192.0.2.2");
        let mut owners = ReqidOwners::default();
        owners.bind(7, ReqidOwner::of(&site), sa(0x100));
        owners.bind(8, ReqidOwner::of(&site), sa(0x100));
        assert_eq!(owners.len(), 1);
        owners.release(&sa(0x100));
        assert!(owners.is_empty());
    }
}
