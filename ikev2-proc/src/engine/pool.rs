//! Address pools and leases of remote-access policies (`config address
//! NET`, RFC 7296 §2.19, §3.15): which single address each authenticated
//! client holds.
//!
//! A lease belongs to an identity on a policy (the EAP identity when the
//! client proved one, else its IKE ID) and is held while any IKE SA of that
//! identity on that policy lives: a rekeyed IKE SA inherits it, and the
//! same identity reconnecting while it is held gets the same address. It
//! goes back to the pool when its last IKE SA goes.
//!
//! Allocation is O(1): a cursor over addresses never handed out, and a
//! free list of those given back; two maps (owner -> lease, address ->
//! owner). No pool is ever scanned per client, so a /16 of road warriors
//! costs what one does.
//!
//! The client side's addresses (what a gateway gave us) are counted here
//! too, by the IKE SAs that hold them, so that the address goes off the
//! interface only when the last of them (not a rekeyed one) is gone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use iked_common::config::{Policy, Prefix};
use iked_common::wire::Identity;

/// Who a lease belongs to: the identity the client authenticated with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum LeaseOwner {
    /// The name proved with EAP (RFC 7296 §2.16).
    Eap(String),
    /// The IKE identity (IDi) proved by AUTH.
    Ike(Identity),
}

/// One address a client asks for in its CFG_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddressWish {
    pub v6: bool,
    /// A non-zero INTERNAL_IP4_ADDRESS / INTERNAL_IP6_ADDRESS: the address
    /// the client would like (RFC 7296 §3.15.1), else None.
    pub requested: Option<IpAddr>,
}

/// Why no lease was given: answered with INTERNAL_ADDRESS_FAILURE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseRefusal {
    /// The client asked for an address outside every pool of its family.
    OutsidePool(IpAddr),
    /// Every address of the family's pools is leased.
    Exhausted { v6: bool },
    /// The policy has no pool of any family the client asked for.
    NoPool,
}

impl std::fmt::Display for LeaseRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseRefusal::OutsidePool(a) => {
                write!(f, "it asks for {a}, which lies outside the policy's pools")
            }
            LeaseRefusal::Exhausted { v6 } => write!(
                f,
                "the policy's IPv{} pool is empty (every address is leased)",
                if *v6 { 6 } else { 4 }
            ),
            LeaseRefusal::NoPool => {
                f.write_str("the policy has no pool of the address family it asks for")
            }
        }
    }
}

fn to_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// One `config address NET`: the leasable addresses as offsets from the
/// network address.
#[derive(Debug, Clone)]
struct AddressPool {
    prefix: Prefix,
    v6: bool,
    network: u128,
    /// The first and last offsets that may be leased.
    first: u128,
    last: u128,
    /// The next offset never handed out yet.
    cursor: u128,
    /// Offsets given back, oldest first; an entry counts only while it is
    /// in `in_free` (one leased by name meanwhile is stale and skipped).
    free: VecDeque<u128>,
    in_free: HashSet<u128>,
}

impl AddressPool {
    fn new(prefix: Prefix) -> AddressPool {
        let v6 = prefix.addr.is_ipv6();
        let width: u32 = if v6 { 128 } else { 32 };
        let host_bits = width - u32::from(prefix.len).min(width);
        let host_mask = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let network = to_bits(prefix.addr) & !host_mask;
        // IPv4: not the network and broadcast addresses, but a /31 or /32
        // has none (RFC 3021). IPv6: not the Subnet-Router anycast address
        // (RFC 4291 §2.6.1), offset 0.
        let (first, last) = match (v6, host_bits) {
            (false, 0..=1) => (0, host_mask),
            (false, _) => (1, host_mask - 1),
            (true, 0..=1) => (0, host_mask),
            (true, _) => (1, host_mask),
        };
        AddressPool {
            prefix,
            v6,
            network,
            first,
            last,
            cursor: first,
            free: VecDeque::new(),
            in_free: HashSet::new(),
        }
    }

    fn address(&self, offset: u128) -> IpAddr {
        let bits = self.network | offset;
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(bits))
        } else {
            IpAddr::V4(Ipv4Addr::from(bits as u32))
        }
    }

    /// The offset of `addr` if this pool may lease it.
    fn offset_of(&self, addr: IpAddr) -> Option<u128> {
        if addr.is_ipv6() != self.v6 || !self.prefix.contains(addr) {
            return None;
        }
        let offset = to_bits(addr) - self.network;
        (self.first..=self.last).contains(&offset).then_some(offset)
    }

    /// Takes `offset`, known not to be leased, out of the free list.
    fn take_named(&mut self, offset: u128) {
        // Its entry in `free` goes stale; the cursor skips leased ones.
        self.in_free.remove(&offset);
    }

    /// The next address to lease, given what is leased now.
    fn take_next(&mut self, leased: &HashMap<IpAddr, LeaseOwner>) -> Option<IpAddr> {
        while let Some(offset) = self.free.pop_front() {
            if self.in_free.remove(&offset) {
                return Some(self.address(offset));
            }
        }
        // Addresses past the cursor are leased only when a client named
        // one: skipping them costs at most one step per such lease.
        while self.cursor <= self.last {
            let offset = self.cursor;
            self.cursor = self.cursor.saturating_add(1);
            if self.cursor == offset {
                // u128::MAX reached: the last one.
                self.last = offset.saturating_sub(1);
            }
            let addr = self.address(offset);
            if !leased.contains_key(&addr) && !self.in_free.contains(&offset) {
                return Some(addr);
            }
        }
        None
    }

    fn give_back(&mut self, addr: IpAddr) {
        let Some(offset) = self.offset_of(addr) else {
            return;
        };
        if self.in_free.insert(offset) {
            self.free.push_back(offset);
        }
        // Stale entries (addresses leased by name while free) are dropped
        // once they outnumber the live ones: the list stays O(free).
        if self.free.len() > 2 * self.in_free.len() + 64 {
            let live = &self.in_free;
            let mut seen = HashSet::new();
            self.free.retain(|o| live.contains(o) && seen.insert(*o));
        }
    }
}

/// A client's lease.
#[derive(Debug, Clone, Default)]
struct Lease {
    addresses: Vec<IpAddr>,
    /// The IKE SAs (our SPIs) that hold it.
    holders: HashSet<u64>,
    /// The reqid of this client's Child SAs of each flow (by flow index):
    /// its own, so that two clients behind one NAT (one outer address)
    /// never share an XFRM template.
    reqids: Vec<(usize, u32)>,
}

/// The pools and leases of one policy.
#[derive(Debug, Clone)]
struct PolicyLeases {
    pools: Vec<AddressPool>,
    by_owner: HashMap<LeaseOwner, Lease>,
    by_address: HashMap<IpAddr, LeaseOwner>,
}

impl PolicyLeases {
    fn new(prefixes: &[Prefix]) -> PolicyLeases {
        PolicyLeases {
            pools: prefixes.iter().copied().map(AddressPool::new).collect(),
            by_owner: HashMap::new(),
            by_address: HashMap::new(),
        }
    }

    fn prefixes(&self) -> Vec<Prefix> {
        self.pools.iter().map(|p| p.prefix).collect()
    }

    fn pool_of(&self, addr: IpAddr) -> Option<(usize, u128)> {
        self.pools
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.offset_of(addr).map(|o| (i, o)))
    }

    /// Leases `addr` to `owner` if it lies in a pool and is free.
    fn lease_named(&mut self, owner: &LeaseOwner, addr: IpAddr) -> bool {
        let Some((index, offset)) = self.pool_of(addr) else {
            return false;
        };
        if self.by_address.contains_key(&addr) {
            return false;
        }
        self.pools[index].take_named(offset);
        self.by_address.insert(addr, owner.clone());
        true
    }

    fn lease_next(&mut self, owner: &LeaseOwner, v6: bool) -> Option<IpAddr> {
        let leased = &self.by_address;
        let addr = self
            .pools
            .iter_mut()
            .filter(|p| p.v6 == v6)
            .find_map(|p| p.take_next(leased))?;
        self.by_address.insert(addr, owner.clone());
        Some(addr)
    }

    fn unlease(&mut self, addr: IpAddr) {
        self.by_address.remove(&addr);
        if let Some((index, _)) = self.pool_of(addr) {
            self.pools[index].give_back(addr);
        }
    }

    fn lease(
        &mut self,
        owner: &LeaseOwner,
        holder: u64,
        wishes: &[AddressWish],
    ) -> Result<Vec<IpAddr>, LeaseRefusal> {
        // Named addresses must lie in a pool of their family, even when the
        // owner already holds one: a client is told its request is wrong.
        // (A family the policy has no pool of is not handed out at all.)
        for wish in wishes {
            if let Some(addr) = wish.requested {
                let family_pooled = self.pools.iter().any(|p| p.v6 == addr.is_ipv6());
                if family_pooled && self.pool_of(addr).is_none() {
                    return Err(LeaseRefusal::OutsidePool(addr));
                }
            }
        }
        let held: Vec<IpAddr> = self
            .by_owner
            .get(owner)
            .map(|l| l.addresses.clone())
            .unwrap_or_default();
        let mut new = Vec::new();
        let mut result = Vec::new();
        let mut refusal = None;
        for wish in wishes {
            if !self.pools.iter().any(|p| p.v6 == wish.v6) {
                continue;
            }
            if let Some(addr) = held.iter().find(|a| a.is_ipv6() == wish.v6) {
                if !result.contains(addr) {
                    result.push(*addr);
                }
                continue;
            }
            if result.iter().any(|a: &IpAddr| a.is_ipv6() == wish.v6) {
                continue;
            }
            let named = wish.requested.filter(|addr| self.lease_named(owner, *addr));
            match named.or_else(|| self.lease_next(owner, wish.v6)) {
                Some(addr) => {
                    new.push(addr);
                    result.push(addr);
                }
                None => {
                    refusal = Some(LeaseRefusal::Exhausted { v6: wish.v6 });
                    break;
                }
            }
        }
        let refusal = refusal.or_else(|| result.is_empty().then_some(LeaseRefusal::NoPool));
        if let Some(refusal) = refusal {
            for addr in new {
                self.unlease(addr);
            }
            return Err(refusal);
        }
        let lease = self.by_owner.entry(owner.clone()).or_default();
        lease.addresses.extend(new);
        lease.holders.insert(holder);
        Ok(result)
    }
}

/// All leases of all policies, and the addresses we hold as a client.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    policies: HashMap<String, PolicyLeases>,
    /// Which lease each IKE SA holds (our SPI -> policy, owner).
    holders: HashMap<u64, (String, LeaseOwner)>,
    /// As a client: the IKE SAs holding each address a gateway gave us
    /// on a policy.
    client: HashMap<(String, IpAddr), HashSet<u64>>,
}

impl Leases {
    /// A new configuration: a policy whose pools are unchanged keeps its
    /// leases; one whose pools changed starts afresh, keeping the leases
    /// (of IKE SAs still draining) whose addresses lie in the new pools so
    /// that none is handed out twice; a policy without pools has none.
    /// Returns the reqids held by leases that went with their policy's
    /// pools (the caller gives them back).
    #[must_use]
    pub(crate) fn sync(&mut self, policies: &[Policy]) -> Vec<u32> {
        let mut next = HashMap::new();
        for policy in policies {
            let prefixes: Vec<Prefix> = policy.remote_access.pools().copied().collect();
            if prefixes.is_empty() {
                continue;
            }
            let table = match self.policies.remove(&policy.name) {
                Some(old) if old.prefixes() == prefixes => old,
                Some(old) => {
                    let mut fresh = PolicyLeases::new(&prefixes);
                    for (owner, lease) in old.by_owner {
                        let kept: Vec<IpAddr> = lease
                            .addresses
                            .iter()
                            .copied()
                            .filter(|a| fresh.lease_named(&owner, *a))
                            .collect();
                        fresh.by_owner.insert(
                            owner,
                            Lease {
                                addresses: kept,
                                ..lease
                            },
                        );
                    }
                    fresh
                }
                None => PolicyLeases::new(&prefixes),
            };
            next.insert(policy.name.clone(), table);
        }
        let mut freed = Vec::new();
        for (_, gone) in std::mem::replace(&mut self.policies, next) {
            for lease in gone.by_owner.into_values() {
                freed.extend(lease.reqids.into_iter().map(|(_, r)| r));
            }
        }
        let kept = &self.policies;
        self.holders
            .retain(|_, (policy, _)| kept.contains_key(policy));
        freed
    }

    /// A lease for `owner` on `policy`, held by IKE SA `holder`: the
    /// addresses it already holds, else new ones (a named one if it is in a
    /// pool and free).
    pub(crate) fn lease(
        &mut self,
        policy: &str,
        owner: &LeaseOwner,
        holder: u64,
        wishes: &[AddressWish],
    ) -> Result<Vec<IpAddr>, LeaseRefusal> {
        let Some(table) = self.policies.get_mut(policy) else {
            return Err(LeaseRefusal::NoPool);
        };
        let addresses = table.lease(owner, holder, wishes)?;
        self.holders
            .insert(holder, (policy.to_string(), owner.clone()));
        Ok(addresses)
    }

    /// IKE SA `new` replaced `old` by a rekey: it holds what `old` held.
    pub(crate) fn inherit(&mut self, old: u64, new: u64) {
        if let Some((policy, owner)) = self.holders.get(&old).cloned() {
            if let Some(lease) = self
                .policies
                .get_mut(&policy)
                .and_then(|t| t.by_owner.get_mut(&owner))
            {
                lease.holders.insert(new);
            }
            self.holders.insert(new, (policy, owner));
        }
        let keys: Vec<(String, IpAddr)> = self
            .client
            .iter()
            .filter(|(_, set)| set.contains(&old))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.client.entry(key).or_default().insert(new);
        }
    }

    /// IKE SA `holder` is gone. Returns the reqids of the lease when it was
    /// its last holder (the lease went back to the pool).
    pub(crate) fn release(&mut self, holder: u64) -> Vec<u32> {
        let Some((policy, owner)) = self.holders.remove(&holder) else {
            return Vec::new();
        };
        let Some(table) = self.policies.get_mut(&policy) else {
            return Vec::new();
        };
        let Some(lease) = table.by_owner.get_mut(&owner) else {
            return Vec::new();
        };
        lease.holders.remove(&holder);
        if !lease.holders.is_empty() {
            return Vec::new();
        }
        let Some(lease) = table.by_owner.remove(&owner) else {
            return Vec::new();
        };
        for addr in &lease.addresses {
            if table.by_address.get(addr) == Some(&owner) {
                table.unlease(*addr);
            }
        }
        lease.reqids.into_iter().map(|(_, r)| r).collect()
    }

    /// The reqid of the Child SAs of flow `flow_index` of the client whose
    /// lease IKE SA `holder` holds; None when it holds none (then the
    /// policy's usual reqid applies).
    pub(crate) fn reqid(&self, holder: u64, flow_index: usize) -> Option<Option<u32>> {
        let (policy, owner) = self.holders.get(&holder)?;
        let lease = self.policies.get(policy)?.by_owner.get(owner)?;
        Some(
            lease
                .reqids
                .iter()
                .find(|(i, _)| *i == flow_index)
                .map(|(_, r)| *r),
        )
    }

    /// Records the reqid of a client's Child SAs of a flow (see `reqid`).
    pub(crate) fn set_reqid(&mut self, holder: u64, flow_index: usize, reqid: u32) {
        let Some((policy, owner)) = self.holders.get(&holder) else {
            return;
        };
        if let Some(lease) = self
            .policies
            .get_mut(policy)
            .and_then(|t| t.by_owner.get_mut(owner))
        {
            lease.reqids.push((flow_index, reqid));
        }
    }

    /// As a client: IKE SA `holder` of `policy` holds `addr`. True when it
    /// is the first (the address is to be put on the interface).
    pub(crate) fn hold_client_address(&mut self, policy: &str, addr: IpAddr, holder: u64) -> bool {
        let set = self.client.entry((policy.to_string(), addr)).or_default();
        let first = set.is_empty();
        set.insert(holder);
        first
    }

    /// As a client: IKE SA `holder` is gone. The addresses nobody holds
    /// any more (to take off the interface), with their policies.
    pub(crate) fn release_client(
        &mut self,
        holder: u64,
        addresses: &[IpAddr],
        policy: &str,
    ) -> Vec<IpAddr> {
        let mut gone = Vec::new();
        for addr in addresses {
            let key = (policy.to_string(), *addr);
            if let Some(set) = self.client.get_mut(&key) {
                set.remove(&holder);
                if set.is_empty() {
                    self.client.remove(&key);
                    gone.push(*addr);
                }
            }
        }
        gone
    }

    /// How many addresses of `policy` are leased (tests, show).
    #[cfg(test)]
    pub(crate) fn leased(&self, policy: &str) -> usize {
        self.policies.get(policy).map_or(0, |t| t.by_address.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(s: &str) -> Prefix {
        let (addr, len) = s.split_once('/').unwrap();
        Prefix {
            addr: addr.parse().unwrap(),
            len: len.parse().unwrap(),
        }
    }

    fn owner(n: u32) -> LeaseOwner {
        LeaseOwner::Eap(format!("user{n}"))
    }

    const V4: [AddressWish; 1] = [AddressWish {
        v6: false,
        requested: None,
    }];

    fn pool_config(pool: &str) -> Vec<iked_common::config::ConfigAttributeSpec> {
        vec![iked_common::config::ConfigAttributeSpec::AddressPool(
            prefix(pool),
        )]
    }

    /// Policy "rw" of 198.18.0.1 leasing from `pool`.
    fn rw_policy(pool: &str) -> Policy {
        let mut policy = crate::test_fixtures::psk_tunnel_policy(
            "rw",
            "198.18.0.1".parse().unwrap(),
            None,
            Vec::new(),
            false,
        );
        policy.remote_access.config = pool_config(pool);
        policy
    }

    /// Leases of the one policy `policy`.
    fn leases_for(policy: &Policy) -> Leases {
        let mut leases = Leases::default();
        assert!(leases.sync(std::slice::from_ref(policy)).is_empty());
        leases
    }

    fn table(pools: &[&str]) -> PolicyLeases {
        let prefixes: Vec<Prefix> = pools.iter().map(|p| prefix(p)).collect();
        PolicyLeases::new(&prefixes)
    }

    #[test]
    fn ipv4_pool_leases_all_but_network_and_broadcast_then_is_empty() {
        let mut t = table(&["198.18.5.0/29"]);
        let got: Vec<IpAddr> = (0..6)
            .map(|n| t.lease(&owner(n), u64::from(n), &V4).unwrap()[0])
            .collect();
        let want: Vec<IpAddr> = (1..=6)
            .map(|h| format!("198.18.5.{h}").parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            t.lease(&owner(9), 9, &V4),
            Err(LeaseRefusal::Exhausted { v6: false })
        );
    }

    #[test]
    fn same_owner_same_address_and_freed_addresses_come_back() {
        let mut policy = rw_policy("198.18.6.0/30");
        let mut leases = leases_for(&policy);
        let a = leases.lease("rw", &owner(1), 100, &V4).unwrap();
        // A second IKE SA of the same identity, then a rekey: one lease.
        assert_eq!(leases.lease("rw", &owner(1), 101, &V4).unwrap(), a);
        leases.inherit(101, 102);
        let b = leases.lease("rw", &owner(2), 200, &V4).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            leases.lease("rw", &owner(3), 300, &V4),
            Err(LeaseRefusal::Exhausted { v6: false })
        );
        assert!(leases.release(100).is_empty());
        assert!(leases.release(101).is_empty());
        assert_eq!(leases.leased("rw"), 2, "held by 102 still");
        leases.release(102);
        assert_eq!(leases.leased("rw"), 1);
        assert_eq!(leases.lease("rw", &owner(3), 300, &V4).unwrap(), a);
        // A reload with the same pools keeps the leases.
        assert!(leases.sync(std::slice::from_ref(&policy)).is_empty());
        assert_eq!(leases.leased("rw"), 2);
        assert_eq!(leases.lease("rw", &owner(2), 201, &V4).unwrap(), b);
        leases.set_reqid(201, 0, 0x77);
        // Other pools: leases that fit stay (their SAs drain), the rest go.
        policy.remote_access.config = pool_config("198.18.6.0/31");
        assert!(leases.sync(std::slice::from_ref(&policy)).is_empty());
        assert_eq!(
            leases.leased("rw"),
            1,
            "198.18.6.1 fits the /31, .2 does not"
        );
        // The policy gone: its leases' reqids are given back.
        assert_eq!(leases.sync(&[]), vec![0x77]);
        assert_eq!(leases.leased("rw"), 0);
        assert!(leases.release(201).is_empty());
    }

    #[test]
    fn named_addresses_inside_the_pool_are_honoured_outside_refused() {
        let mut t = table(&["198.18.7.0/24", "2001:db8:7::/64"]);
        let wish = |a: &str| AddressWish {
            v6: a.contains(':'),
            requested: Some(a.parse().unwrap()),
        };
        assert_eq!(
            t.lease(&owner(1), 1, &[wish("198.18.7.77")]).unwrap(),
            vec![ip("198.18.7.77")]
        );
        // Taken: another one instead.
        assert_eq!(
            t.lease(&owner(2), 2, &[wish("198.18.7.77")]).unwrap(),
            vec![ip("198.18.7.1")]
        );
        assert_eq!(
            t.lease(&owner(3), 3, &[wish("198.18.8.1")]),
            Err(LeaseRefusal::OutsidePool(ip("198.18.8.1")))
        );
        assert_eq!(
            t.lease(&owner(3), 3, &[wish("198.18.7.255")]),
            Err(LeaseRefusal::OutsidePool(ip("198.18.7.255")))
        );
        // Both families at once; IPv6 skips the anycast address.
        let both = [
            V4[0],
            AddressWish {
                v6: true,
                requested: None,
            },
        ];
        assert_eq!(
            t.lease(&owner(4), 4, &both).unwrap(),
            vec![ip("198.18.7.2"), ip("2001:db8:7::1")]
        );
        // The cursor skips the address named earlier.
        for n in 3..77 {
            assert_eq!(
                t.lease(&owner(100 + n), 0, &V4).unwrap(),
                vec![ip(&format!("198.18.7.{n}"))]
            );
        }
        assert_eq!(
            t.lease(&owner(500), 0, &V4).unwrap(),
            vec![ip("198.18.7.78")]
        );
    }

    #[test]
    fn a_family_without_a_pool_is_ignored_not_refused() {
        let mut t = table(&["198.18.10.0/24"]);
        let wishes = [
            V4[0],
            AddressWish {
                v6: true,
                requested: Some(ip("2001:db8::5")),
            },
        ];
        assert_eq!(
            t.lease(&owner(1), 1, &wishes).unwrap(),
            vec![ip("198.18.10.1")]
        );
        let only_v6 = [AddressWish {
            v6: true,
            requested: None,
        }];
        assert_eq!(t.lease(&owner(2), 2, &only_v6), Err(LeaseRefusal::NoPool));
        assert_eq!(t.by_address.len(), 1);
    }

    #[test]
    fn free_list_stays_bounded_when_free_addresses_are_named() {
        let mut t = table(&["198.18.9.0/24"]);
        let a = t.lease(&owner(1), 1, &V4).unwrap()[0];
        t.unlease(a);
        t.by_owner.clear();
        for round in 0..10_000u32 {
            let wish = [AddressWish {
                v6: false,
                requested: Some(a),
            }];
            assert_eq!(t.lease(&owner(round), 1, &wish).unwrap(), vec![a]);
            t.unlease(a);
            t.by_owner.clear();
        }
        assert!(t.pools[0].free.len() <= 70, "{}", t.pools[0].free.len());
        assert_eq!(t.lease(&owner(1), 1, &V4).unwrap(), vec![a]);
        assert_eq!(t.lease(&owner(2), 2, &V4).unwrap(), vec![ip("198.18.9.2")]);
    }

    /// 100,000 clients on one /15: every lease distinct, half of them
    /// given back and leased again from the free list. The time is
    /// printed, not asserted.
    #[test]
    fn a_hundred_thousand_leases_on_one_pool() {
        let mut leases = leases_for(&rw_policy("10.128.0.0/15"));
        let started = std::time::Instant::now();
        let mut seen = HashSet::new();
        for n in 0..100_000u32 {
            let a = leases.lease("rw", &owner(n), u64::from(n), &V4).unwrap()[0];
            assert!(seen.insert(a), "{a} twice");
        }
        for n in (0..100_000u32).step_by(2) {
            leases.release(u64::from(n));
        }
        for n in (0..100_000u32).step_by(2) {
            let holder = 1_000_000 + u64::from(n);
            let a = leases
                .lease("rw", &owner(n + 1_000_000), holder, &V4)
                .unwrap()[0];
            assert!(leases.policies["rw"].by_address.contains_key(&a));
        }
        assert_eq!(leases.leased("rw"), 100_000);
        println!(
            "150,000 leases and 50,000 releases on a /15: {:?}",
            started.elapsed()
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
}
