//! Client virtual addresses (RFC 7296 §3.15): the address the gateway's
//! CFG_REPLY gave us, put on the policy's interface (`iface`, default
//! `lo`) as a /32 or /128 so that traffic from it matches the Child SA.
//! ikev2 asks (AddAddress/DeleteAddress); pfkey holds CAP_NET_ADMIN and
//! checks: only for a flow with `request address` (its
//! `virtual_ip_interface`), only an address inside the flow's local side
//! of traffic, never one the host already has (added with NLM_F_EXCL, so
//! we never take over, nor later remove, someone else's), at most
//! [`MAX_ADDRESSES_PER_POLICY`] per policy. Everything added is tracked
//! and reported to the parent (which removes what is left if pfkey dies);
//! it goes at flush and when a reload drops the policy's `request`.

use std::collections::HashMap;
use std::net::IpAddr;

use iked_common::config::Prefix;
use iked_common::kernel::{max_prefix, FailureKind, Flow, KernelFailure};

use crate::backend::local_failure;
use crate::route_socket::RouteSocket;
use crate::rtnetlink_codec::AddressSpec;

/// Most addresses pfkey keeps on interfaces for one policy: one per
/// family per IKE SA, with room for an IKE SA that is replaced while its
/// successor comes up.
pub const MAX_ADDRESSES_PER_POLICY: usize = 8;

/// One address we added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedAddress {
    pub interface: String,
    pub spec: AddressSpec,
}

/// The addresses we added, by (policy, address).
#[derive(Debug, Default)]
pub struct VirtualAddresses {
    added: HashMap<(String, IpAddr), AddedAddress>,
}

fn refused(message: String) -> KernelFailure {
    local_failure(FailureKind::NotPermitted, format!("refused: {message}"))
}

/// The interface a flow of `policy` lets ikev2 put `address` on: a flow
/// of that policy with `virtual_ip_interface` whose local side of traffic
/// contains the address.
pub fn check_address<'f>(
    flows: &'f [Flow],
    policy: &str,
    address: IpAddr,
) -> Result<&'f str, KernelFailure> {
    let what = format!("address {address} for policy {policy}");
    if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
        return Err(refused(format!(
            "{what}: not a unicast address a gateway can assign"
        )));
    }
    if let IpAddr::V4(v4) = address {
        if v4.is_broadcast() {
            return Err(refused(format!("{what}: the broadcast address")));
        }
    }
    let of_policy: Vec<&Flow> = flows.iter().filter(|f| f.name == policy).collect();
    if of_policy.is_empty() {
        return Err(refused(format!(
            "{what}: no configured flow of that policy"
        )));
    }
    let with_iface: Vec<(&Flow, &str)> = of_policy
        .iter()
        .filter_map(|f| f.virtual_ip_interface.as_deref().map(|i| (*f, i)))
        .collect();
    if with_iface.is_empty() {
        return Err(refused(format!(
            "{what}: the policy has no `request address`, so no address may be installed for it"
        )));
    }
    let mut reasons = Vec::new();
    for (flow, iface) in with_iface {
        let ours = Prefix {
            addr: flow.selector.src,
            len: flow.selector.src_prefix,
        };
        if flow.local == address || (flow.peer.address().is_some() && flow.peer.admits(address)) {
            reasons.push(format!("it is a gateway address of flow {}", flow.name));
        } else if !ours.contains(address) {
            reasons.push(format!("outside our side {ours} of flow {}", flow.name));
        } else {
            return Ok(iface);
        }
    }
    Err(refused(format!("{what}: {}", reasons.join("; "))))
}

impl VirtualAddresses {
    /// Whether we added `address` for `policy`.
    pub fn contains(&self, policy: &str, address: IpAddr) -> bool {
        self.added.contains_key(&(policy.to_string(), address))
    }

    pub fn len(&self) -> usize {
        self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
    }

    fn count_of(&self, policy: &str) -> usize {
        self.added.keys().filter(|(p, _)| p == policy).count()
    }

    /// Adds `address` on `interface` for `policy` (checked by
    /// [`check_address`]); already added for it: nothing to do (None).
    pub fn add(
        &mut self,
        socket: &mut RouteSocket,
        policy: &str,
        interface: &str,
        address: IpAddr,
    ) -> Result<Option<AddedAddress>, KernelFailure> {
        if self.contains(policy, address) {
            return Ok(None);
        }
        if let Some(((other, _), _)) = self.added.iter().find(|((_, a), _)| *a == address) {
            return Err(refused(format!(
                "address {address} for policy {policy}: already installed for policy {other}"
            )));
        }
        let count = self.count_of(policy);
        if count >= MAX_ADDRESSES_PER_POLICY {
            return Err(refused(format!(
                "address {address} for policy {policy}: it already has {count} addresses \
                 installed (at most {MAX_ADDRESSES_PER_POLICY})"
            )));
        }
        let index = socket.link_index(interface)?;
        let spec = AddressSpec {
            address,
            prefix: max_prefix(address),
            index,
        };
        match socket.add_address(&spec) {
            Ok(()) => {}
            Err(f) if f.kind == FailureKind::AlreadyExists => {
                return Err(refused(format!(
                    "address {address} for policy {policy}: the host already has it on \
                     {interface}; it is not ours to add or remove"
                )))
            }
            Err(f) => return Err(f),
        }
        let added = AddedAddress {
            interface: interface.to_string(),
            spec,
        };
        self.added
            .insert((policy.to_string(), address), added.clone());
        Ok(Some(added))
    }

    /// Removes an address we added for `policy`; one the kernel no longer
    /// has is forgotten. Err when it is not ours, or the kernel refused
    /// (then it stays tracked).
    pub fn delete(
        &mut self,
        socket: &mut RouteSocket,
        policy: &str,
        address: IpAddr,
    ) -> Result<AddedAddress, KernelFailure> {
        let key = (policy.to_string(), address);
        let Some(added) = self.added.get(&key).cloned() else {
            return Err(refused(format!(
                "delete address {address} for policy {policy}: not installed by us"
            )));
        };
        match socket.delete_address(&added.spec) {
            Ok(()) => {}
            Err(f) if f.kind == FailureKind::NotFound => {
                log::info!(
                    "address {address} was already gone from {}",
                    added.interface
                );
            }
            Err(f) => return Err(f),
        }
        self.added.remove(&key);
        Ok(added)
    }

    /// The (policy, address) pairs whose policy no longer lets ikev2
    /// install them on the interface they are on.
    pub fn stale(&self, flows: &[Flow]) -> Vec<(String, IpAddr)> {
        self.added
            .iter()
            .filter(|((policy, address), added)| {
                check_address(flows, policy, *address).map_or(true, |i| i != added.interface)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Every (policy, address) we added.
    pub fn all(&self) -> Vec<(String, IpAddr)> {
        self.added.keys().cloned().collect()
    }
}

/// For the parent (root): removes the addresses pfkey reported and did
/// not remove, through a route socket of its own. Already gone is fine.
pub fn remove_addresses(addresses: &[(u32, IpAddr)]) -> Result<(), String> {
    if addresses.is_empty() {
        return Ok(());
    }
    let fd = crate::route_socket::open_route_socket()?;
    let mut socket = RouteSocket::new(fd)?;
    let mut failures = Vec::new();
    for (index, address) in addresses {
        let spec = AddressSpec {
            address: *address,
            prefix: max_prefix(*address),
            index: *index,
        };
        match socket.delete_address(&spec) {
            Ok(()) => {}
            Err(f) if f.kind == FailureKind::NotFound => {}
            Err(f) => failures.push(f.message),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{ip, net};
    use iked_common::kernel::{Encryption, FlowPeer, IpsecMode, SaLimits};

    /// A client's flow with `from dynamic` (our side any address) and
    /// `request address any` on `lo`.
    fn client(iface: Option<&str>) -> Flow {
        Flow {
            name: "vpn".into(),
            selector: net("0.0.0.0", 0, "10.1.0.0", 16),
            local: ip("198.18.5.2"),
            peer: FlowPeer::Address(ip("198.18.0.1")),
            mode: IpsecMode::Tunnel,
            encryption: vec![Encryption::AesGcm16],
            integrity: vec![],
            limits: SaLimits::default(),
            pools: Vec::new(),
            virtual_ip_interface: iface.map(str::to_string),
        }
    }

    #[test]
    fn an_address_only_for_a_policy_that_requests_one() {
        let flows = vec![client(Some("lo"))];
        assert_eq!(check_address(&flows, "vpn", ip("10.9.0.5")).unwrap(), "lo");
        let e = check_address(&[client(None)], "vpn", ip("10.9.0.5")).unwrap_err();
        assert_eq!(e.kind, FailureKind::NotPermitted);
        assert_eq!(
            e.message,
            "refused: address 10.9.0.5 for policy vpn: the policy has no `request address`, \
             so no address may be installed for it"
        );
        let e = check_address(&flows, "other", ip("10.9.0.5")).unwrap_err();
        assert!(
            e.message.contains("no configured flow of that policy"),
            "{}",
            e.message
        );
    }

    #[test]
    fn odd_addresses_and_gateway_addresses_are_refused() {
        let flows = vec![client(Some("lo"))];
        for bad in [
            "0.0.0.0",
            "127.0.0.2",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "ff02::1",
        ] {
            let e = check_address(&flows, "vpn", ip(bad)).unwrap_err();
            assert_eq!(e.kind, FailureKind::NotPermitted, "{bad}");
        }
        for gateway in ["198.18.5.2", "198.18.0.1"] {
            let e = check_address(&flows, "vpn", ip(gateway)).unwrap_err();
            assert!(
                e.message.contains("a gateway address of flow vpn"),
                "{}",
                e.message
            );
        }
        // Our side of traffic limited: the address must lie inside it.
        let mut narrow = client(Some("lo"));
        narrow.selector = net("10.9.0.0", 24, "10.1.0.0", 16);
        let e = check_address(&[narrow.clone()], "vpn", ip("10.8.0.1")).unwrap_err();
        assert!(
            e.message.contains("outside our side 10.9.0.0/24"),
            "{}",
            e.message
        );
        assert!(check_address(&[narrow], "vpn", ip("10.9.0.1")).is_ok());
        // An IPv6 address for an IPv4-only flow.
        assert!(check_address(&flows, "vpn", ip("2001:db8::5")).is_err());
    }

    #[test]
    fn stale_addresses_follow_the_flows() {
        // Bookkeeping only: entries are inserted as `add` would.
        let mut book = VirtualAddresses::default();
        book.added.insert(
            ("vpn".into(), ip("10.9.0.5")),
            AddedAddress {
                interface: "lo".into(),
                spec: AddressSpec {
                    address: ip("10.9.0.5"),
                    prefix: 32,
                    index: 1,
                },
            },
        );
        assert!(book.stale(&[client(Some("lo"))]).is_empty());
        assert_eq!(book.stale(&[client(None)]).len(), 1);
        assert_eq!(book.stale(&[client(Some("dummy0"))]).len(), 1);
        assert_eq!(book.stale(&[]).len(), 1);
        assert!(book.contains("vpn", ip("10.9.0.5")));
        assert_eq!(book.count_of("vpn"), 1);
    }
}
