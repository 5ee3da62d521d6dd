//! Road warriors (issue 14): one gateway with a `peer any` policy and an
//! address pool, and many client engines with `request address any`, in
//! memory and deterministic. Leases, the Configuration payload both ways,
//! TS narrowing to the lease, reqids per client, clients behind one NAT,
//! the client's AddAddress/DeleteAddress.

use super::*;
use iked_common::config::{ConfigAttributeSpec, IdentitySpec, Prefix};
use iked_common::kernel::max_prefix;
use std::collections::HashSet;

const GATEWAY: &str = "198.18.0.1";

fn prefix(s: &str) -> Prefix {
    let (addr, len) = s.split_once('/').unwrap();
    Prefix {
        addr: ip(addr),
        len: len.parse().unwrap(),
    }
}

/// The gateway's policy: any peer, our 10.1.0.0/16 (or 2001:db8:1::/48)
/// to the pool (`to dynamic`), DNS and a protected subnet handed out.
pub(super) fn gateway_policy(pool: &str) -> Policy {
    let pool = prefix(pool);
    let flow = if pool.addr.is_ipv6() {
        Selector::between(ip("2001:db8:1::"), 48, pool.addr, pool.len)
    } else {
        Selector::between(ip("10.1.0.0"), 16, pool.addr, pool.len)
    };
    let mut p = policy("rw", GATEWAY, None, vec![flow], false);
    p.remote_access.config = vec![
        ConfigAttributeSpec::AddressPool(pool),
        ConfigAttributeSpec::NameServer(ip("10.1.0.53")),
        ConfigAttributeSpec::ProtectedSubnet(prefix("10.1.0.0/16")),
    ];
    p
}

/// A client's policy: `from dynamic to 10.1.0.0/16` (or the IPv6
/// network), `request address any`, `request name-server any`, `srcid`.
pub(super) fn client_policy(local: &str, name: &str, v6: bool) -> Policy {
    let flow = if v6 {
        Selector::between(ip("::"), 0, ip("2001:db8:1::"), 48)
    } else {
        Selector::between(ip("0.0.0.0"), 0, ip("10.1.0.0"), 16)
    };
    let mut p = policy("gw", local, Some(GATEWAY), vec![flow], true);
    p.srcid = Some(IdentitySpec::Fqdn(name.into()));
    p.remote_access.request_address = true;
    p.remote_access.request_name_server = true;
    p
}

/// One gateway, many clients, an optional NAT in front of some clients.
pub(super) struct Fleet {
    pub(super) now: Instant,
    pub(super) gateway: Node,
    pub(super) clients: Vec<Node>,
    by_addr: HashMap<IpAddr, usize>,
    net: VecDeque<Packet>,
    /// NAT: (private address, port) <-> (public address, port).
    nat_out: HashMap<SocketAddr, SocketAddr>,
    nat_in: HashMap<SocketAddr, SocketAddr>,
    /// Clients behind the NAT: private address -> public address.
    natted: HashMap<IpAddr, IpAddr>,
}

impl Fleet {
    pub(super) fn new(gateway_policy: Policy) -> Fleet {
        let now = Instant::now();
        let mut gateway = Node::new(GATEWAY, 0x6a7e, 0x2000_0000, settings(), now);
        gateway
            .engine
            .set_config(now, vec![gateway_policy], InitiationMode::Passive, 0);
        Fleet {
            now,
            gateway,
            clients: Vec::new(),
            by_addr: HashMap::new(),
            net: VecDeque::new(),
            nat_out: HashMap::new(),
            nat_in: HashMap::new(),
            natted: HashMap::new(),
        }
    }

    /// A client engine at `addr` (not yet configured); its index.
    pub(super) fn add_client(&mut self, addr: &str) -> usize {
        let index = self.clients.len();
        let seed = 0x1000 + index as u64;
        let spi_base = 0x4000_0000 + (index as u32) * 0x1000;
        self.clients
            .push(Node::new(addr, seed, spi_base, settings(), self.now));
        self.by_addr.insert(ip(addr), index);
        index
    }

    /// Client `index` starts: its policy, active.
    pub(super) fn start(&mut self, index: usize, policy: Policy) {
        self.clients[index]
            .engine
            .set_config(self.now, vec![policy], InitiationMode::Active, 0);
    }

    fn translate(&mut self, mut p: Packet) -> Packet {
        if let Some(public) = self.natted.get(&p.from.ip()).copied() {
            let next = 40_000 + self.nat_out.len() as u16;
            let mapped = *self
                .nat_out
                .entry(p.from)
                .or_insert(SocketAddr::new(public, next));
            self.nat_in.insert(mapped, p.from);
            p.from = mapped;
        }
        if let Some(private) = self.nat_in.get(&p.to) {
            p.to = *private;
        }
        p
    }

    /// [`Fleet::start`] then [`Fleet::settle`], with the info log of both.
    fn start_logged(&mut self, index: usize, policy: Policy) -> Vec<String> {
        capture_info_log(|| {
            self.start(index, policy);
            self.settle();
        })
    }

    pub(super) fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut busy = false;
            let (out, b) = self.gateway.step(self.now);
            busy |= b;
            let mut packets = out;
            for client in &mut self.clients {
                let (out, b) = client.step(self.now);
                busy |= b;
                packets.extend(out);
            }
            for p in packets {
                let p = self.translate(p);
                self.net.push_back(p);
            }
            if self.net.is_empty() && !busy {
                return;
            }
            while let Some(p) = self.net.pop_front() {
                let node = if p.to.ip() == self.gateway.addr {
                    &mut self.gateway
                } else if let Some(i) = self.by_addr.get(&p.to.ip()) {
                    &mut self.clients[*i]
                } else {
                    continue;
                };
                node.engine.handle_datagram(self.now, p.to, p.from, &p.data);
            }
        }
        panic!("the fleet did not settle");
    }

    /// The gateway's Child SA whose peer side is `addr`.
    fn gateway_child_for(&self, addr: IpAddr) -> Option<&crate::engine::state::ChildSa> {
        self.gateway
            .engine
            .child_spis()
            .into_iter()
            .filter_map(|s| self.gateway.engine.child(s))
            .find(|c| c.flow.dst == addr)
    }
}

/// The requests a node sent pfkey.
fn pfkey_requests(node: &Node) -> Vec<Ikev2ToPfkey> {
    node.pfkey_requests.clone()
}

fn added_addresses(node: &Node) -> Vec<IpAddr> {
    addresses_asked(node, true)
}

fn deleted_addresses(node: &Node) -> Vec<IpAddr> {
    addresses_asked(node, false)
}

/// The addresses a node asked pfkey to add (`added`) or to delete.
fn addresses_asked(node: &Node, added: bool) -> Vec<IpAddr> {
    pfkey_requests(node)
        .into_iter()
        .filter_map(|r| match r {
            Ikev2ToPfkey::AddAddress { address, .. } if added => Some(address),
            Ikev2ToPfkey::DeleteAddress { address, .. } if !added => Some(address),
            _ => None,
        })
        .collect()
}

/// The client's one established IKE SA and its one Child SA.
pub(super) fn client_state(node: &Node) -> (u64, Vec<IpAddr>, Selector) {
    let established = node.established();
    assert_eq!(established.len(), 1, "client IKE SAs: {established:x?}");
    let sa = node.engine.ike(established[0]).unwrap();
    let children = node.engine.child_spis();
    assert_eq!(children.len(), 1, "client Child SAs: {children:x?}");
    let child = node.engine.child(children[0]).unwrap();
    (established[0], sa.virtual_ips.clone(), child.flow)
}

pub(super) fn client_addr(i: usize) -> String {
    format!("198.18.{}.{}", 2 + i / 250, 1 + i % 250)
}

#[test]
fn five_hundred_road_warriors_each_get_their_own_pool_address() {
    let mut fleet = Fleet::new(gateway_policy("10.99.0.0/23"));
    const CLIENTS: usize = 500;
    for i in 0..CLIENTS {
        fleet.add_client(&client_addr(i));
    }
    let started = std::time::Instant::now();
    // In waves of 100, as clients come in practice (no cookie storm).
    for wave in 0..CLIENTS / 100 {
        for i in wave * 100..(wave + 1) * 100 {
            let p = client_policy(&client_addr(i), &format!("client-{i}.example"), false);
            fleet.start(i, p);
        }
        fleet.settle();
    }
    let pool = prefix("10.99.0.0/23");
    let mut seen = HashSet::new();
    let mut reqids = HashSet::new();
    for (i, client) in fleet.clients.iter().enumerate() {
        let (_, vips, flow) = client_state(client);
        assert_eq!(vips.len(), 1, "client {i}: {vips:?}");
        let vip = vips[0];
        assert!(pool.contains(vip), "client {i}: {vip} outside the pool");
        assert_ne!(vip, ip("10.99.0.0"), "network address leased");
        assert_ne!(vip, ip("10.99.1.255"), "broadcast address leased");
        assert!(seen.insert(vip), "client {i}: {vip} leased twice");
        // Our side of the Child SA is the address, the pfkey request for it
        // came before the first SA install.
        assert_eq!((flow.src, flow.src_prefix), (vip, 32), "client {i}");
        let requests = pfkey_requests(client);
        let add = requests
            .iter()
            .position(|r| matches!(r, Ikev2ToPfkey::AddAddress { address, .. } if *address == vip))
            .unwrap_or_else(|| panic!("client {i}: no AddAddress for {vip}"));
        let first_sa = requests
            .iter()
            .position(|r| matches!(r, Ikev2ToPfkey::AddSa { .. }))
            .unwrap();
        assert!(
            add < first_sa,
            "client {i}: AddAddress after the SA install"
        );
        // The gateway's Child SA: TSi = the lease, a reqid of its own.
        let child = fleet
            .gateway_child_for(vip)
            .unwrap_or_else(|| panic!("gateway: no Child SA for {vip}"));
        assert_eq!(child.flow.dst_prefix, 32);
        assert!(reqids.insert(child.reqid), "reqid {} shared", child.reqid);
    }
    assert_eq!(fleet.gateway.established().len(), CLIENTS);
    assert_eq!(fleet.gateway.engine.child_sa_count(), CLIENTS);
    assert_eq!(fleet.gateway.engine.leases.leased("rw"), CLIENTS);
    // show sa lists each client with its address.
    fleet
        .gateway
        .engine
        .handle_control(fleet.now, 7, ControlCommand::ShowSa);
    fleet.settle();
    let listed = fleet
        .gateway
        .control_replies
        .iter()
        .find_map(|(id, r)| match r {
            ControlReply::SaList { sas, .. } if *id == 7 => Some(sas.clone()),
            _ => None,
        })
        .expect("show sa answered");
    let listed_vips: HashSet<IpAddr> = listed
        .iter()
        .flat_map(|s| s.virtual_ips.iter().copied())
        .collect();
    assert_eq!(listed.len(), CLIENTS);
    assert_eq!(listed_vips, seen);
    println!(
        "{CLIENTS} road warriors: {} distinct addresses, {} distinct reqids, {:?} (wall clock, all engines)",
        seen.len(),
        reqids.len(),
        started.elapsed()
    );
}

#[test]
fn a_reconnecting_identity_gets_the_same_address_and_its_stale_sa_goes() {
    let mut fleet = Fleet::new(gateway_policy("10.99.0.0/24"));
    let a = fleet.add_client("198.18.2.1");
    let b = fleet.add_client("198.18.2.2");
    fleet.start(a, client_policy("198.18.2.1", "alice.example", false));
    fleet.settle();
    fleet.start(b, client_policy("198.18.2.2", "bob.example", false));
    fleet.settle();
    let (_, alice, _) = client_state(&fleet.clients[a]);
    let (_, bob, _) = client_state(&fleet.clients[b]);
    assert_ne!(alice, bob);
    // Alice's laptop restarts a second later (a fresh engine, same
    // identity): INITIAL_CONTACT.
    fleet.now += Duration::from_secs(1);
    fleet.clients[a] = Node::new("198.18.2.1", 0xa11ce, 0x5000_0000, settings(), fleet.now);
    fleet.start(a, client_policy("198.18.2.1", "alice.example", false));
    fleet.settle();
    let (_, again, flow) = client_state(&fleet.clients[a]);
    assert_eq!(
        again, alice,
        "same identity while its lease is held: same address"
    );
    assert_eq!(flow.src, alice[0]);
    // The stale IKE SA went with INITIAL_CONTACT, the lease stayed.
    assert_eq!(fleet.gateway.established().len(), 2);
    assert_eq!(fleet.gateway.engine.child_sa_count(), 2);
    assert_eq!(fleet.gateway.engine.leases.leased("rw"), 2);
    // The gateway's IKE SA for alice shows her address.
    let gw_sa = fleet
        .gateway
        .established()
        .into_iter()
        .filter_map(|s| fleet.gateway.engine.ike(s))
        .find(|s| s.peer.ip() == ip("198.18.2.1"))
        .unwrap();
    assert_eq!(gw_sa.virtual_ips, alice);
}

#[test]
fn an_empty_pool_answers_internal_address_failure_and_installs_nothing() {
    // A /29: six addresses.
    let mut fleet = Fleet::new(gateway_policy("10.99.0.0/29"));
    for i in 0..7 {
        fleet.add_client(&client_addr(i));
    }
    for i in 0..6 {
        fleet.start(
            i,
            client_policy(&client_addr(i), &format!("c{i}.example"), false),
        );
    }
    fleet.settle();
    let installed_before = fleet.gateway.sa_requests;
    let policies_before = fleet.gateway.policies.len();
    let log = fleet.start_logged(6, client_policy(&client_addr(6), "late.example", false));
    assert!(
        log.iter().any(|l| l.contains("no address for late.example")
            && l.contains("pool is empty")
            && l.contains("INTERNAL_ADDRESS_FAILURE")),
        "{log:#?}"
    );
    // The client was told, took no address and holds nothing.
    let late = &fleet.clients[6];
    assert!(
        log.iter()
            .any(|l| l.contains("has no address for us (INTERNAL_ADDRESS_FAILURE)")),
        "{log:#?}"
    );
    assert!(late.established().is_empty());
    assert!(late.sas.is_empty());
    assert!(added_addresses(late).is_empty());
    // The gateway installed nothing for it and deleted its IKE SA.
    assert_eq!(fleet.gateway.sa_requests, installed_before);
    assert_eq!(fleet.gateway.policies.len(), policies_before);
    assert_eq!(fleet.gateway.established().len(), 6);
    assert_eq!(fleet.gateway.engine.ike_sa_count(), 6);
    assert_eq!(fleet.gateway.engine.leases.leased("rw"), 6);
}

#[test]
fn a_client_asking_for_an_address_outside_the_pool_is_refused() {
    let mut fleet = Fleet::new(gateway_policy("10.99.0.0/24"));
    let c = fleet.add_client("198.18.2.1");
    fleet.clients[c]
        .engine
        .request_address_in_tests(ip("10.1.2.3"));
    let log = fleet.start_logged(c, client_policy("198.18.2.1", "mallory.example", false));
    assert!(
        log.iter()
            .any(|l| l.contains("it asks for 10.1.2.3, which lies outside the policy's pools")),
        "{log:#?}"
    );
    assert!(fleet.clients[c].established().is_empty());
    assert!(fleet.clients[c].sas.is_empty());
    assert_eq!(fleet.gateway.sa_requests, 0);
    assert!(fleet.gateway.policies.is_empty());
    assert_eq!(fleet.gateway.engine.ike_sa_count(), 0);
    assert_eq!(fleet.gateway.engine.leases.leased("rw"), 0);

    // One inside the pool and free is honoured.
    let d = fleet.add_client("198.18.2.2");
    fleet.clients[d]
        .engine
        .request_address_in_tests(ip("10.99.0.77"));
    fleet.start(d, client_policy("198.18.2.2", "dave.example", false));
    fleet.settle();
    let (_, vips, _) = client_state(&fleet.clients[d]);
    assert_eq!(vips, vec![ip("10.99.0.77")]);
}

#[test]
fn a_client_claiming_selectors_outside_its_lease_is_refused() {
    // The gateway's flows cover 10.77.0.0/24 too; the lease still rules.
    let mut gw = gateway_policy("10.99.0.0/24");
    gw.flows
        .push(Selector::between(ip("10.1.0.0"), 16, ip("10.77.0.0"), 24));
    let mut fleet = Fleet::new(gw);
    let c = fleet.add_client("198.18.2.1");
    // IKE_AUTH: TSi 10.77.0.0/24 (a static `from`), not the lease.
    let mut p = client_policy("198.18.2.1", "carol.example", false);
    p.flows = vec![Selector::between(ip("10.77.0.0"), 24, ip("10.1.0.0"), 16)];
    let log = fleet.start_logged(c, p);
    assert!(
        log.iter().any(|l| l.contains("10.77.0.0-10.77.0.255")
            && l.contains("lie outside its lease (10.99.0.1)")),
        "{log:#?}"
    );
    assert_eq!(fleet.gateway.sa_requests, 0, "nothing installed");
    assert_eq!(fleet.gateway.engine.child_sa_count(), 0);
    assert!(fleet.clients[c].sas.is_empty());

    // CREATE_CHILD_SA: first the lease's Child SA, then one for 10.77.0.0/24.
    let d = fleet.add_client("198.18.2.2");
    let mut p = client_policy("198.18.2.2", "dan.example", false);
    p.flows
        .push(Selector::between(ip("10.77.0.0"), 24, ip("10.1.0.0"), 16));
    let log = fleet.start_logged(d, p);
    assert!(
        log.iter().any(|l| l.contains("lie outside its lease")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("TS_UNACCEPTABLE")),
        "{log:#?}"
    );
    let (_, vips, flow) = client_state(&fleet.clients[d]);
    assert_eq!(flow.src, vips[0]);
    let gateway_children: Vec<Selector> = fleet
        .gateway
        .engine
        .child_spis()
        .into_iter()
        .filter_map(|s| fleet.gateway.engine.child(s).map(|c| c.flow))
        .collect();
    assert_eq!(gateway_children.len(), 1, "{gateway_children:?}");
    assert_eq!(gateway_children[0].dst, vips[0]);
}

#[test]
fn two_clients_behind_one_nat_are_distinct_with_their_own_ports() {
    let mut fleet = Fleet::new(gateway_policy("10.99.0.0/24"));
    let public = ip("198.18.100.1");
    let a = fleet.add_client("10.0.0.2");
    let b = fleet.add_client("10.0.0.3");
    fleet.natted.insert(ip("10.0.0.2"), public);
    fleet.natted.insert(ip("10.0.0.3"), public);
    fleet.start(a, client_policy("10.0.0.2", "alice.example", false));
    fleet.start(b, client_policy("10.0.0.3", "bob.example", false));
    fleet.settle();
    let (_, va, _) = client_state(&fleet.clients[a]);
    let (_, vb, _) = client_state(&fleet.clients[b]);
    assert_ne!(va, vb);
    let gw: Vec<_> = fleet
        .gateway
        .established()
        .into_iter()
        .filter_map(|s| fleet.gateway.engine.ike(s))
        .map(|s| (s.peer, s.natt, s.virtual_ips.clone()))
        .collect();
    assert_eq!(gw.len(), 2, "{gw:?}");
    assert!(gw
        .iter()
        .all(|(peer, natt, _)| peer.ip() == public && *natt));
    assert_ne!(gw[0].0.port(), gw[1].0.port());
    // Each client's outbound SA on the gateway: ESP in UDP to its own NAT
    // port, a reqid of its own, its lease as selector.
    let mut reqids = HashSet::new();
    for (peer, _, vips) in &gw {
        let child = fleet.gateway_child_for(vips[0]).unwrap();
        let out = fleet
            .gateway
            .sas
            .get(&child.spi_out)
            .expect("outbound SA installed");
        assert_eq!(out.id.dst, public);
        let encap = out.encap.expect("UDP encapsulation");
        assert_eq!(encap.dst_port, peer.port());
        assert_eq!(encap.src_port, 4500);
        assert_eq!(out.selector.dst, vips[0]);
        let inbound = fleet.gateway.sas.get(&child.spi_in).unwrap();
        assert_eq!(inbound.encap.unwrap().src_port, peer.port());
        assert!(reqids.insert(out.reqid));
        assert_eq!(inbound.reqid, out.reqid);
    }
    // Kernel policies: one set per client, templates told apart by reqid.
    let outs: Vec<_> = fleet
        .gateway
        .policies
        .iter()
        .filter(|p| p.direction == iked_common::kernel::PolicyDirection::Out)
        .collect();
    assert_eq!(outs.len(), 2);
    assert_ne!(outs[0].template.reqid, outs[1].template.reqid);
    assert!(outs.iter().all(|p| p.template.dst == public));
}

#[test]
fn the_client_adds_its_address_keeps_it_across_a_rekey_and_removes_it_when_the_sa_goes() {
    let mut fleet = Fleet::new(gateway_policy("10.99.0.0/24"));
    let c = fleet.add_client("198.18.2.1");
    let log = fleet.start_logged(c, client_policy("198.18.2.1", "alice.example", false));
    assert!(
        log.iter()
            .any(|l| l.contains("names DNS servers 10.1.0.53")),
        "{log:#?}"
    );
    let (spi, vips, _) = client_state(&fleet.clients[c]);
    assert_eq!(added_addresses(&fleet.clients[c]), vips);
    fleet.clients[c]
        .engine
        .handle_control(fleet.now, 9, ControlCommand::ShowSa);
    fleet.settle();
    let listed: Vec<Vec<IpAddr>> = fleet.clients[c]
        .control_replies
        .iter()
        .filter_map(|(id, r)| match r {
            ControlReply::SaList { sas, .. } if *id == 9 => {
                Some(sas.iter().flat_map(|s| s.virtual_ips.clone()).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(listed, vec![vips.clone()]);
    // IKE SA rekey: the address stays, on the new SA.
    fleet.clients[c].engine.run_task(spi, Task::RekeyIke);
    fleet.settle();
    let (new_spi, new_vips, _) = client_state(&fleet.clients[c]);
    assert_ne!(new_spi, spi);
    assert_eq!(new_vips, vips);
    assert!(deleted_addresses(&fleet.clients[c]).is_empty());
    assert_eq!(fleet.gateway.engine.leases.leased("rw"), 1);
    // Terminate: the address comes off, the gateway's lease goes back.
    fleet.clients[c].engine.handle_control(
        fleet.now,
        1,
        ControlCommand::Terminate {
            policy: "gw".into(),
        },
    );
    fleet.settle();
    assert!(fleet.clients[c].established().is_empty());
    assert_eq!(deleted_addresses(&fleet.clients[c]), vips);
    assert_eq!(fleet.gateway.engine.ike_sa_count(), 0);
    assert_eq!(fleet.gateway.engine.leases.leased("rw"), 0);
}

#[test]
fn a_gateway_that_gives_no_address_fails_the_client_with_the_reason() {
    // A gateway policy without a pool answers no address.
    let mut gw = gateway_policy("10.99.0.0/24");
    gw.remote_access
        .config
        .retain(|c| !matches!(c, ConfigAttributeSpec::AddressPool(_)));
    gw.flows = vec![Selector::between(ip("10.1.0.0"), 16, ip("0.0.0.0"), 0)];
    let mut fleet = Fleet::new(gw);
    let c = fleet.add_client("198.18.2.1");
    let log = fleet.start_logged(c, client_policy("198.18.2.1", "alice.example", false));
    assert!(
        log.iter()
            .any(|l| l.contains("answered our address request without an address")),
        "{log:#?}"
    );
    assert!(fleet.clients[c].established().is_empty());
    assert!(fleet.clients[c].sas.is_empty());
    assert!(added_addresses(&fleet.clients[c]).is_empty());
    assert_eq!(
        fleet.gateway.engine.ike_sa_count(),
        0,
        "deleted by the client"
    );
}

#[test]
fn an_ipv6_pool_leases_single_addresses() {
    let mut fleet = Fleet::new(gateway_policy("2001:db8:99::/64"));
    let a = fleet.add_client("198.18.2.1");
    let b = fleet.add_client("198.18.2.2");
    fleet.start(a, client_policy("198.18.2.1", "alice.example", true));
    fleet.start(b, client_policy("198.18.2.2", "bob.example", true));
    fleet.settle();
    let (_, va, fa) = client_state(&fleet.clients[a]);
    let (_, vb, _) = client_state(&fleet.clients[b]);
    let pool = prefix("2001:db8:99::/64");
    assert!(pool.contains(va[0]) && pool.contains(vb[0]));
    assert_ne!(va, vb);
    assert_ne!(
        va[0],
        ip("2001:db8:99::"),
        "the Subnet-Router anycast address"
    );
    assert_eq!((fa.src, fa.src_prefix), (va[0], max_prefix(va[0])));
    let child = fleet.gateway_child_for(va[0]).unwrap();
    assert_eq!(child.flow.dst_prefix, 128);
    assert_eq!(added_addresses(&fleet.clients[a]), va);
}

#[test]
fn leases_survive_a_reload_with_the_same_pools_and_go_with_changed_ones() {
    let gw = gateway_policy("10.99.0.0/24");
    let mut fleet = Fleet::new(gw.clone());
    let a = fleet.add_client("198.18.2.1");
    let b = fleet.add_client("198.18.2.2");
    fleet.start(a, client_policy("198.18.2.1", "alice.example", false));
    fleet.start(b, client_policy("198.18.2.2", "bob.example", false));
    fleet.settle();
    let (_, va, _) = client_state(&fleet.clients[a]);
    let (_, vb, _) = client_state(&fleet.clients[b]);
    // The same configuration again: SAs and leases stay.
    fleet
        .gateway
        .engine
        .set_config(fleet.now, vec![gw], InitiationMode::Passive, 0);
    fleet.settle();
    assert_eq!(fleet.gateway.established().len(), 2);
    assert_eq!(fleet.gateway.engine.leases.leased("rw"), 2);
    let c = fleet.add_client("198.18.2.3");
    fleet.start(c, client_policy("198.18.2.3", "carol.example", false));
    fleet.settle();
    let (_, vc, _) = client_state(&fleet.clients[c]);
    assert!(vc != va && vc != vb, "{vc:?} was leased already");
    // Another pool: the policy changed, its IKE SAs are deleted and
    // their leases go with them.
    fleet.gateway.engine.set_config(
        fleet.now,
        vec![gateway_policy("10.98.0.0/24")],
        InitiationMode::Passive,
        0,
    );
    fleet.settle();
    assert_eq!(fleet.gateway.engine.ike_sa_count(), 0);
    assert_eq!(fleet.gateway.engine.leases.leased("rw"), 0);
    for client in &fleet.clients {
        assert!(client.established().is_empty());
        let vips = added_addresses(client);
        assert_eq!(deleted_addresses(client), vips, "address taken off");
    }
}
