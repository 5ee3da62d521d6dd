//! The Configuration payload in IKE_AUTH (RFC 7296 §2.19, §3.15), both
//! roles, and what follows from it: a gateway leases an address from the
//! policy's pool (`engine/pool.rs`), narrows the client's traffic selector
//! to it and gives the client's Child SAs a reqid of their own; a client
//! (`request address any`) asks for an address, takes it as its side of
//! the Child SA and has pfkey put it on the policy's interface.
//!
//! The shared IKE_AUTH code calls each step here in one line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use iked_common::config::{ConfigAttributeSpec, Policy};
use iked_common::ipc::Ikev2ToPfkey;
use iked_common::kernel::{max_prefix, Selector};
use iked_common::wire::{
    CfgType, Configuration, CpAttribute, CpAttributeType, NotifyType, Payload, TrafficSelector,
};

use crate::engine::identity::identity_text;
use crate::engine::pool::{AddressWish, LeaseOwner};
use crate::engine::selectors;
use crate::engine::state::*;
use crate::engine::Engine;

/// INTERNAL_IP4_SERVER / INTERNAL_IP6_SERVER, `config access-server`:
/// the values OpenBSD iked sends (MS-IKEE §2.2.2.1.1; IANA has since
/// given 23 and 24 other names, which a client that knows neither
/// ignores).
const INTERNAL_IP4_SERVER: u16 = 23;
const INTERNAL_IP6_SERVER: u16 = 24;

/// What a client asked for in its CFG_REQUEST (RFC 7296 §3.15.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConfigRequest {
    /// One per INTERNAL_IP4_ADDRESS / INTERNAL_IP6_ADDRESS family asked.
    pub wishes: Vec<AddressWish>,
}

/// The CFG_REQUEST of a peer's IKE_AUTH, if it sent one.
fn config_request_of(inner: &[Payload]) -> Option<ConfigRequest> {
    let cp = inner.iter().find_map(|p| match p {
        Payload::Configuration(cp) if cp.cfg_type == CfgType::Request => Some(cp),
        _ => None,
    })?;
    let mut request = ConfigRequest::default();
    for attribute in &cp.attributes {
        let wish = match attribute.attribute_type {
            CpAttributeType::InternalIp4Address => AddressWish {
                v6: false,
                requested: <[u8; 4]>::try_from(attribute.value.as_slice())
                    .ok()
                    .map(Ipv4Addr::from)
                    .filter(|a| !a.is_unspecified())
                    .map(IpAddr::V4),
            },
            // 16 octets of address, one of prefix length.
            CpAttributeType::InternalIp6Address => AddressWish {
                v6: true,
                requested: attribute
                    .value
                    .get(..16)
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .map(Ipv6Addr::from)
                    .filter(|a| !a.is_unspecified())
                    .map(IpAddr::V6),
            },
            _ => continue,
        };
        // One address per family (the decoder caps the attribute count).
        if !request.wishes.iter().any(|w| w.v6 == wish.v6) {
            request.wishes.push(wish);
        }
    }
    Some(request)
}

fn address_attribute(addr: IpAddr) -> CpAttribute {
    match addr {
        IpAddr::V4(a) => CpAttribute::new(CpAttributeType::InternalIp4Address, a.octets().to_vec()),
        IpAddr::V6(a) => {
            let mut value = a.octets().to_vec();
            value.push(128);
            CpAttribute::new(CpAttributeType::InternalIp6Address, value)
        }
    }
}

/// The attributes of one `config` line other than a pool (RFC 7296
/// §3.15.1), by the family of its address.
fn config_line_attribute(spec: &ConfigAttributeSpec) -> Option<CpAttribute> {
    let by_family = |addr: &IpAddr, v4: CpAttributeType, v6: Option<CpAttributeType>| match addr {
        IpAddr::V4(a) => Some(CpAttribute::new(v4, a.octets().to_vec())),
        IpAddr::V6(a) => v6.map(|t| CpAttribute::new(t, a.octets().to_vec())),
    };
    match spec {
        ConfigAttributeSpec::AddressPool(_) => None,
        ConfigAttributeSpec::Netmask(addr) => {
            by_family(addr, CpAttributeType::InternalIp4Netmask, None)
        }
        ConfigAttributeSpec::NameServer(addr) => by_family(
            addr,
            CpAttributeType::InternalIp4Dns,
            Some(CpAttributeType::InternalIp6Dns),
        ),
        ConfigAttributeSpec::NetbiosServer(addr) => {
            by_family(addr, CpAttributeType::InternalIp4Nbns, None)
        }
        ConfigAttributeSpec::DhcpServer(addr) => by_family(
            addr,
            CpAttributeType::InternalIp4Dhcp,
            Some(CpAttributeType::InternalIp6Dhcp),
        ),
        ConfigAttributeSpec::AccessServer(addr) => by_family(
            addr,
            CpAttributeType::from_value(INTERNAL_IP4_SERVER),
            Some(CpAttributeType::from_value(INTERNAL_IP6_SERVER)),
        ),
        ConfigAttributeSpec::ProtectedSubnet(prefix) => Some(match prefix.addr {
            // Address and netmask (§3.15.1).
            IpAddr::V4(a) => {
                let len = u32::from(prefix.len.min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let mut value = a.octets().to_vec();
                value.extend_from_slice(&mask.to_be_bytes());
                CpAttribute::new(CpAttributeType::InternalIp4Subnet, value)
            }
            // Address and prefix length.
            IpAddr::V6(a) => {
                let mut value = a.octets().to_vec();
                value.push(prefix.len.min(128));
                CpAttribute::new(CpAttributeType::InternalIp6Subnet, value)
            }
        }),
    }
}

/// The families our side of a client policy's flows ask an address for:
/// those of its flows' source (`from dynamic` is the family's /0).
fn families_of(policy: &Policy) -> Vec<bool> {
    let mut families = Vec::new();
    for flow in &policy.flows {
        let v6 = flow.src.is_ipv6();
        if !families.contains(&v6) {
            families.push(v6);
        }
    }
    families
}

fn host(mut flow: Selector, local: bool, addr: IpAddr) -> Selector {
    if local {
        flow.src = addr;
        flow.src_prefix = max_prefix(addr);
    } else {
        flow.dst = addr;
        flow.dst_prefix = max_prefix(addr);
    }
    flow
}

impl Engine {
    // ------------------------------------------------------------------
    // Gateway (responder)
    // ------------------------------------------------------------------

    /// Keeps the CFG_REQUEST of the initiator's IKE_AUTH until its AUTH
    /// (or EAP) is done: nothing is leased to an unauthenticated peer.
    pub(in crate::engine) fn note_config_request(&mut self, spi: u64, inner: &[Payload]) {
        let request = config_request_of(inner);
        if let Some(handshake) = self
            .ikes
            .get_mut(&spi)
            .and_then(|sa| sa.handshake.as_deref_mut())
        {
            if request.is_some() {
                handshake.peer_config_request = request;
            }
        }
    }

    /// The peer is authenticated: leases it an address if it asked for one
    /// and the policy hands them out. Err: the reason it gets
    /// INTERNAL_ADDRESS_FAILURE (logged here), no Child SA, and its IKE SA
    /// is deleted.
    pub(in crate::engine) fn lease_for_peer(&mut self, spi: u64) -> Result<(), String> {
        let Some(sa) = self.ikes.get(&spi) else {
            return Ok(());
        };
        let Some(policy) = self.policy(&sa.policy) else {
            return Ok(());
        };
        if !policy.remote_access.hands_out_addresses() {
            return Ok(());
        }
        let Some(request) = sa
            .handshake
            .as_deref()
            .and_then(|h| h.peer_config_request.clone())
        else {
            return Ok(());
        };
        if request.wishes.is_empty() {
            return Ok(());
        }
        let owner = match (&sa.eap_identity, &sa.peer_id) {
            (Some(name), _) => LeaseOwner::Eap(name.clone()),
            (None, Some(id)) => LeaseOwner::Ike(id.clone()),
            (None, None) => return Err("the peer has no identity".into()),
        };
        let who = match &owner {
            LeaseOwner::Eap(name) => name.clone(),
            LeaseOwner::Ike(id) => identity_text(id),
        };
        let (policy_name, peer) = (sa.policy.clone(), sa.peer);
        match self
            .leases
            .lease(&policy_name, &owner, spi, &request.wishes)
        {
            Ok(addresses) => {
                let text: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
                log::info!(
                    "policy {policy_name}: {} leased to {who} ({peer})",
                    text.join(", ")
                );
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    sa.virtual_ips = addresses;
                }
                Ok(())
            }
            Err(refusal) => {
                let why = format!("no address for {who} ({peer}): {refusal}");
                log::warn!("policy {policy_name}: {why}; answering INTERNAL_ADDRESS_FAILURE");
                Err(why)
            }
        }
    }

    /// Responder narrowing of a new Child SA's selectors (RFC 7296 §2.9):
    /// for a policy that hands out addresses the peer's side is its lease
    /// alone (a /32 or /128 of each family it holds), never the rest of
    /// the flow's `to`; otherwise the policy's flows. Err: why the peer
    /// gets TS_UNACCEPTABLE.
    pub(in crate::engine) fn narrow_peer_selectors(
        &self,
        spi: u64,
        policy: &Policy,
        tsi: &[TrafficSelector],
        tsr: &[TrafficSelector],
    ) -> Result<(Selector, usize), String> {
        let outside_flows = || {
            format!(
                "traffic selectors {} / {} are outside the policy's flows",
                selectors::ts_text(tsi),
                selectors::ts_text(tsr)
            )
        };
        if !policy.remote_access.hands_out_addresses() {
            return selectors::narrow(&policy.flows, tsi, tsr).ok_or_else(outside_flows);
        }
        let leases = self
            .ikes
            .get(&spi)
            .map(|sa| sa.virtual_ips.clone())
            .unwrap_or_default();
        let mut restricted = Vec::new();
        let mut index_of = Vec::new();
        for (index, flow) in policy.flows.iter().enumerate() {
            for addr in leases.iter().filter(|a| a.is_ipv6() == flow.dst.is_ipv6()) {
                restricted.push(host(*flow, false, *addr));
                index_of.push(index);
            }
        }
        if let Some((flow, i)) = selectors::narrow(&restricted, tsi, tsr) {
            if let Some(index) = index_of.get(i) {
                return Ok((flow, *index));
            }
        }
        if selectors::narrow(&policy.flows, tsi, tsr).is_none() {
            return Err(outside_flows());
        }
        let lease: Vec<String> = leases.iter().map(|a| a.to_string()).collect();
        Err(format!(
            "traffic selectors {} lie outside its lease ({})",
            selectors::ts_text(tsi),
            if lease.is_empty() {
                "it asked for no address".to_string()
            } else {
                lease.join(", ")
            }
        ))
    }

    /// The reqid of a new Child SA of flow `flow_index` on IKE SA `spi`:
    /// for a client holding a lease, its own (one per client and flow, so
    /// that clients behind one NAT never share an XFRM template), else the
    /// flow's usual one.
    pub(in crate::engine) fn child_reqid(
        &mut self,
        spi: u64,
        policy: &str,
        flow_index: usize,
    ) -> u32 {
        match self.leases.reqid(spi, flow_index) {
            Some(Some(reqid)) => reqid,
            Some(None) => {
                let reqid = self.new_reqid();
                // Held by the lease until it goes back to the pool.
                self.reqids.take(reqid);
                self.leases.set_reqid(spi, flow_index, reqid);
                reqid
            }
            None => self.reqid_for(policy, flow_index),
        }
    }

    /// Our CFG_REPLY for the IKE_AUTH response, if the peer sent a
    /// CFG_REQUEST: its lease and the policy's other `config` lines.
    pub(in crate::engine) fn config_reply(&self, spi: u64) -> Option<Payload> {
        let sa = self.ikes.get(&spi)?;
        let request = sa.handshake.as_deref()?.peer_config_request.as_ref()?;
        let policy = self.policy(&sa.policy)?;
        if !request.wishes.is_empty()
            && policy.remote_access.hands_out_addresses()
            && sa.virtual_ips.is_empty()
        {
            return None;
        }
        let mut attributes: Vec<CpAttribute> = sa
            .virtual_ips
            .iter()
            .copied()
            .map(address_attribute)
            .collect();
        attributes.extend(
            policy
                .remote_access
                .config
                .iter()
                .filter_map(config_line_attribute),
        );
        if attributes.is_empty() {
            return None;
        }
        Some(Payload::Configuration(Configuration {
            cfg_type: CfgType::Reply,
            attributes,
        }))
    }

    // ------------------------------------------------------------------
    // Client (initiator)
    // ------------------------------------------------------------------

    /// Our CFG_REQUEST for IKE_AUTH (`request address any`, `request
    /// name-server any`): empty attributes ask for a value (§3.15.1).
    pub(in crate::engine) fn config_request(&self, spi: u64) -> Option<Payload> {
        let sa = self.ikes.get(&spi)?;
        let policy = self.policy(&sa.policy)?;
        let ra = &policy.remote_access;
        if !ra.request_address && !ra.request_name_server {
            return None;
        }
        let mut attributes = Vec::new();
        for v6 in families_of(policy) {
            if ra.request_address {
                #[allow(unused_mut)]
                let mut attribute = CpAttribute::new(
                    if v6 {
                        CpAttributeType::InternalIp6Address
                    } else {
                        CpAttributeType::InternalIp4Address
                    },
                    Vec::new(),
                );
                #[cfg(test)]
                if let Some(named) = self.test_requested_address {
                    if named.is_ipv6() == v6 {
                        attribute = address_attribute(named);
                    }
                }
                attributes.push(attribute);
            }
            if ra.request_name_server {
                attributes.push(CpAttribute::new(
                    if v6 {
                        CpAttributeType::InternalIp6Dns
                    } else {
                        CpAttributeType::InternalIp4Dns
                    },
                    Vec::new(),
                ));
            }
        }
        Some(Payload::Configuration(Configuration {
            cfg_type: CfgType::Request,
            attributes,
        }))
    }

    /// The gateway's IKE_AUTH response is verified: takes the addresses of
    /// its CFG_REPLY as ours and asks pfkey to put each on the policy's
    /// interface (before the Child SA goes in: pfkey serves requests in
    /// order). Err: why the IKE SA fails (we asked for an address and got
    /// none).
    pub(in crate::engine) fn take_config_reply(
        &mut self,
        spi: u64,
        inner: &[Payload],
    ) -> Result<(), String> {
        let Some(sa) = self.ikes.get(&spi) else {
            return Ok(());
        };
        let Some(policy) = self.policy(&sa.policy) else {
            return Ok(());
        };
        let ra = &policy.remote_access;
        if !ra.request_address && !ra.request_name_server {
            return Ok(());
        }
        let families = families_of(policy);
        let reply = inner.iter().find_map(|p| match p {
            Payload::Configuration(cp) if cp.cfg_type == CfgType::Reply => Some(cp),
            _ => None,
        });
        let mut addresses = Vec::new();
        let mut dns = Vec::new();
        for attribute in reply.map(|r| r.attributes.as_slice()).unwrap_or_default() {
            let value = attribute.value.as_slice();
            let v4 = <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from);
            let v6 = value
                .get(..16)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(Ipv6Addr::from);
            match attribute.attribute_type {
                CpAttributeType::InternalIp4Address => {
                    addresses.extend(v4.filter(|a| !a.is_unspecified()).map(IpAddr::V4))
                }
                CpAttributeType::InternalIp6Address => {
                    addresses.extend(v6.filter(|a| !a.is_unspecified()).map(IpAddr::V6))
                }
                CpAttributeType::InternalIp4Dns => dns.extend(v4.map(IpAddr::V4)),
                CpAttributeType::InternalIp6Dns => dns.extend(v6.map(IpAddr::V6)),
                _ => {}
            }
        }
        // One per family we asked for, the first: what our selectors use.
        let mut ours: Vec<IpAddr> = Vec::new();
        for addr in addresses {
            if families.contains(&addr.is_ipv6())
                && !ours.iter().any(|a| a.is_ipv6() == addr.is_ipv6())
            {
                ours.push(addr);
            }
        }
        let policy_name = sa.policy.clone();
        let peer = sa.peer;
        if !dns.is_empty() {
            let text: Vec<String> = dns.iter().map(|a| a.to_string()).collect();
            log::info!(
                "policy {policy_name}: gateway {peer} names DNS servers {} (not applied: iked does not rewrite resolv.conf)",
                text.join(", ")
            );
        }
        if !ra.request_address {
            return Ok(());
        }
        if ours.is_empty() {
            let refused = crate::engine::digest::Inbound::of(inner)
                .notify(NotifyType::InternalAddressFailure)
                .is_some();
            return Err(if refused {
                format!("gateway {peer} has no address for us (INTERNAL_ADDRESS_FAILURE)")
            } else if reply.is_some() {
                format!("gateway {peer} answered our address request without an address")
            } else {
                format!("gateway {peer} ignored our address request (no CFG_REPLY)")
            });
        }
        let text: Vec<String> = ours.iter().map(|a| a.to_string()).collect();
        log::info!(
            "policy {policy_name}: gateway {peer} gave us {}",
            text.join(", ")
        );
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.virtual_ips = ours.clone();
        }
        for address in ours {
            if self.leases.hold_client_address(&policy_name, address, spi) {
                let policy = policy_name.clone();
                self.ask_pfkey(spi, Wait::Other, |id| Ikev2ToPfkey::AddAddress {
                    id,
                    policy,
                    address,
                });
            }
        }
        Ok(())
    }

    /// A Child SA we negotiated as a client with an assigned address: our
    /// side of a `from dynamic` flow (we proposed the family's /0) must be
    /// that address (the gateway narrowed our /0 to it).
    pub(in crate::engine) fn our_side_is_assigned(
        &self,
        spi: u64,
        proposed: &Selector,
        flow: &Selector,
    ) -> bool {
        let Some(sa) = self.ikes.get(&spi) else {
            return false;
        };
        let asked = self
            .policy(&sa.policy)
            .is_some_and(|p| p.remote_access.request_address);
        if !asked || proposed.src_prefix != 0 {
            return true;
        }
        let ok = sa
            .virtual_ips
            .iter()
            .any(|a| *a == flow.src && flow.src_prefix == max_prefix(*a));
        if !ok {
            log::warn!(
                "policy {}: the gateway narrowed our side to {}/{}, not our assigned address",
                sa.policy,
                flow.src,
                flow.src_prefix
            );
        }
        ok
    }

    /// A flow of a client policy as we propose it in CREATE_CHILD_SA: our
    /// side of a `from dynamic` flow (the family's /0) is the address the
    /// gateway gave us, once we have one; other flows stay as configured.
    pub(in crate::engine) fn client_flow(&self, spi: u64, flow: Selector) -> Selector {
        let Some(sa) = self.ikes.get(&spi) else {
            return flow;
        };
        let asked = self
            .policy(&sa.policy)
            .is_some_and(|p| p.remote_access.request_address);
        match sa
            .virtual_ips
            .iter()
            .find(|a| a.is_ipv6() == flow.src.is_ipv6())
        {
            Some(addr) if asked && flow.src_prefix == 0 => host(flow, true, *addr),
            _ => flow,
        }
    }

    // ------------------------------------------------------------------
    // Both roles: an IKE SA rekeyed or gone
    // ------------------------------------------------------------------

    /// IKE SA `new` replaced `old` by a rekey: it inherits the lease (as
    /// gateway) or the addresses (as client), and the EAP identity.
    pub(in crate::engine) fn inherit_remote_access(&mut self, old: u64, new: u64) {
        let Some(old_sa) = self.ikes.get(&old) else {
            return;
        };
        let (virtual_ips, eap_identity) = (old_sa.virtual_ips.clone(), old_sa.eap_identity.clone());
        if let Some(sa) = self.ikes.get_mut(&new) {
            sa.virtual_ips = virtual_ips;
            sa.eap_identity = eap_identity;
        }
        self.leases.inherit(old, new);
    }

    /// IKE SA `sa` (our SPI `spi`) is gone: its lease goes back to the pool
    /// when no other IKE SA of its identity holds it; as a client, the
    /// addresses no other IKE SA holds come off the interface.
    pub(in crate::engine) fn release_remote_access(&mut self, spi: u64, sa: &IkeSa) {
        for reqid in self.leases.release(spi) {
            self.reqids.release(reqid);
        }
        if sa.virtual_ips.is_empty() {
            return;
        }
        for address in self.leases.release_client(spi, &sa.virtual_ips, &sa.policy) {
            log::info!(
                "policy {}: removing our address {address} (its IKE SA is gone)",
                sa.policy
            );
            let policy = sa.policy.clone();
            self.ask_pfkey(spi, Wait::Other, |id| Ikev2ToPfkey::DeleteAddress {
                id,
                policy,
                address,
            });
        }
    }
}
