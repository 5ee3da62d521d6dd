//! Two engines against each other in memory: injected clock, seeded RNG,
//! a tiny in-test ca (real PSK AUTH from crypto::auth) and pfkey (SPIs from
//! a counter, installs recorded).

mod child;
mod config_control;
mod control_verbs;
mod digest;
mod eap;
mod fragments;
mod handshake;
mod ike_rekey;
mod loss_retransmit;
mod mobike;
mod nat;
mod pubkey;
mod refusals;
mod reload;
mod remote_access;
mod robustness;
mod source_lookup;
mod stats;
mod tunables;

use super::{Action, Engine, IkeState, Settings, Task};
use iked_common::config::{
    Encapsulation, Policy, PolicyInitiation, ProposalSpec, TRANSFORM_ENCR, TRANSFORM_ESN,
    TRANSFORM_INTEG, TRANSFORM_KE, TRANSFORM_PRF,
};
use iked_common::crypto::{psk_auth, verify_psk_auth, PrfAlg};
use iked_common::ipc::{
    CaToIkev2, ControlCommand, ControlReply, Ikev2ToCa, Ikev2ToPfkey, InitiationMode, PfkeyToIkev2,
};
use iked_common::kernel::{
    FailureKind, IpsecProtocol, KernelEvent, KernelFailure, PolicyParams, SaCounters, SaId,
    SaParams, Selector,
};
use iked_common::wire::{ExchangeType, Header};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::test_fixtures::{psk_tunnel_policy, seeded, t};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ike_proposal(groups: &[u16]) -> ProposalSpec {
    let mut transforms = vec![t(TRANSFORM_ENCR, 20, Some(256)), t(TRANSFORM_PRF, 5, None)];
    transforms.extend(groups.iter().map(|g| t(TRANSFORM_KE, *g, None)));
    ProposalSpec { transforms }
}

fn child_proposal(pfs: Option<u16>) -> ProposalSpec {
    let mut transforms = vec![
        t(TRANSFORM_ENCR, 12, Some(128)),
        t(TRANSFORM_INTEG, 12, None),
        t(TRANSFORM_ESN, 0, None),
    ];
    if let Some(g) = pfs {
        transforms.push(t(TRANSFORM_KE, g, None));
    }
    ProposalSpec { transforms }
}

fn selector(src: &str, sp: u8, dst: &str, dp: u8) -> Selector {
    Selector::between(ip(src), sp, ip(dst), dp)
}

fn policy(
    name: &str,
    local: &str,
    peer: Option<&str>,
    flows: Vec<Selector>,
    active: bool,
) -> Policy {
    Policy {
        ike_proposals: vec![ike_proposal(&[19, 31])],
        child_proposals: vec![child_proposal(None)],
        ..psk_tunnel_policy(name, ip(local), peer.map(ip), flows, active)
    }
}

/// One daemon's ikev2 engine plus its fake ca and pfkey.
struct Node {
    engine: Engine,
    addr: IpAddr,
    psk: Vec<u8>,
    next_spi: u32,
    /// SAs in the "kernel", by SPI.
    sas: HashMap<u32, SaParams>,
    policies: Vec<PolicyParams>,
    deleted_sas: Vec<SaId>,
    /// Simulate this machine's kernel: no ESP.
    no_esp: bool,
    /// Simulate pfkey refusing every SA as outside its flows.
    refuse: bool,
    /// Simulate the kernel refusing the SAs towards this address (an SPI
    /// already taken): one half of each pair fails.
    refuse_sas_to: Option<IpAddr>,
    /// What the "kernel" counted on each installed SA, by SPI (zero when
    /// absent, as for a fresh SA).
    traffic: HashMap<u32, SaCounters>,
    /// Simulate a pfkey that never answers counter reads.
    counters_unanswered: bool,
    /// Counter reads asked for: (request id, SAs).
    counter_requests: Vec<(u64, Vec<SaId>)>,
    control_replies: Vec<(u64, ControlReply)>,
    /// Monitor events, in order (stats.rs).
    events: Vec<iked_common::stats::SaEvent>,
    sent: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    keepalives: Vec<(SocketAddr, SocketAddr)>,
    /// Keep ca's requests unanswered (in `held_ca`) until the test lets go.
    hold_ca: bool,
    held_ca: Vec<Ikev2ToCa>,
    /// Every request to ca and pfkey, in order, as postcard bytes (for the
    /// digest test only: the two enums share variant indices and postcard
    /// ignores trailing bytes, so a pfkey request can decode as a ca one;
    /// tests look at `ca_requests` and `pfkey_requests`).
    ipc_sent: Vec<Vec<u8>>,
    /// Every request to ca, in order.
    ca_requests: Vec<Ikev2ToCa>,
    /// Every request to pfkey, in order.
    pfkey_requests: Vec<Ikev2ToPfkey>,
    /// How pfkey answers source address lookups.
    source_lookups: SourceLookups,
    /// Lookups held unanswered: (request id, peer).
    held_source_lookups: Vec<(u64, IpAddr)>,
    /// The ca of public-key policies (certificates, signatures); PSK
    /// policies get the PSK answers below.
    pki: Option<pubkey::TestCa>,
    /// AddSa and UpdateSa requests pfkey got, refused or not.
    sa_requests: usize,
    /// The ca side of EAP (eap.rs): asked before `pki`.
    eap_ca: Option<eap::EapCa>,
    /// The sessions of the `EapEnd` messages ca got (they take no answer).
    eap_ends: Vec<u64>,
    /// Migrate requests pfkey got (MOBIKE, NAT mapping changes), applied
    /// to `sas` and `policies` as the kernel would.
    migrations: Vec<iked_common::kernel::Migration>,
    /// Simulate a pfkey that cannot migrate (PF_KEY, a kernel without
    /// XFRM_MIGRATE).
    refuse_migrations: bool,
}

/// How the test's pfkey answers `LookupSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceLookups {
    /// At once, with the node's address.
    Answer,
    /// Not until the test answers (or never).
    Hold,
    /// With a failure, as for a peer without a route.
    Fail,
}

struct Packet {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

struct World {
    now: Instant,
    a: Node,
    b: Node,
    net: VecDeque<Packet>,
    /// Decides whether a packet is delivered (false drops it).
    filter: Box<dyn FnMut(&Packet) -> bool>,
    /// NAT in front of A: A's private address and the public one.
    nat: Option<(IpAddr, IpAddr)>,
    delivered: usize,
}

const A: &str = "192.0.2.1";

const B: &str = "192.0.2.2";

fn a_policy() -> Policy {
    policy(
        "ab",
        A,
        Some(B),
        vec![selector("10.1.0.0", 16, "10.2.0.0", 16)],
        true,
    )
}

fn b_policy() -> Policy {
    policy(
        "ba",
        B,
        Some(A),
        vec![selector("10.2.0.0", 16, "10.1.0.0", 16)],
        false,
    )
}

fn settings() -> Settings {
    Settings::default()
}

impl Node {
    fn new(addr: &str, seed: u64, spi_base: u32, settings: Settings, now: Instant) -> Node {
        Node {
            engine: Engine::new(settings, seeded(seed), now).unwrap(),
            addr: ip(addr),
            psk: b"correct horse battery staple".to_vec(),
            next_spi: spi_base,
            sas: HashMap::new(),
            policies: Vec::new(),
            deleted_sas: Vec::new(),
            no_esp: false,
            refuse: false,
            refuse_sas_to: None,
            traffic: HashMap::new(),
            counters_unanswered: false,
            counter_requests: Vec::new(),
            control_replies: Vec::new(),
            events: Vec::new(),
            sent: Vec::new(),
            keepalives: Vec::new(),
            hold_ca: false,
            held_ca: Vec::new(),
            ipc_sent: Vec::new(),
            ca_requests: Vec::new(),
            pfkey_requests: Vec::new(),
            source_lookups: SourceLookups::Answer,
            held_source_lookups: Vec::new(),
            pki: None,
            sa_requests: 0,
            eap_ca: None,
            eap_ends: Vec::new(),
            migrations: Vec::new(),
            refuse_migrations: false,
        }
    }

    /// Runs one round of actions; returns datagrams to send and whether anything happened.
    fn step(&mut self, now: Instant) -> (Vec<Packet>, bool) {
        let mut out = Vec::new();
        let mut busy = false;
        while let Some(action) = self.engine.poll_action() {
            busy = true;
            match action {
                Action::Send {
                    local,
                    remote,
                    datagram,
                } => {
                    self.sent.push((local, remote, datagram.clone()));
                    out.push(Packet {
                        from: local,
                        to: remote,
                        data: datagram,
                    });
                }
                Action::Ca(Ikev2ToCa::EapEnd { session }) => {
                    let request = Ikev2ToCa::EapEnd { session };
                    self.ipc_sent.push(postcard::to_allocvec(&request).unwrap());
                    self.ca_requests.push(request);
                    if let Some(ca) = self.eap_ca.as_mut() {
                        ca.end(session);
                    }
                    self.eap_ends.push(session);
                }
                Action::Ca(request) if self.hold_ca => {
                    self.ipc_sent.push(postcard::to_allocvec(&request).unwrap());
                    self.ca_requests.push(request.clone());
                    self.held_ca.push(request)
                }
                Action::Ca(request) => {
                    self.ipc_sent.push(postcard::to_allocvec(&request).unwrap());
                    self.ca_requests.push(request.clone());
                    let reply = self.ca(request);
                    self.engine.handle_ca(now, reply).unwrap();
                }
                Action::Pfkey(request) => {
                    self.ipc_sent.push(postcard::to_allocvec(&request).unwrap());
                    self.pfkey_requests.push(request.clone());
                    if let Some(reply) = self.pfkey(request) {
                        self.engine.handle_pfkey(now, reply).unwrap();
                    }
                }
                Action::Control { id, reply } => self.control_replies.push((id, reply)),
                Action::NatKeepalive { local, remote } => self.keepalives.push((local, remote)),
                Action::Event(event) => self.events.push(*event),
            }
        }
        (out, busy)
    }

    fn ca(&mut self, request: Ikev2ToCa) -> CaToIkev2 {
        if let Some(reply) = self.eap_ca.as_mut().and_then(|ca| ca.answer(&request)) {
            return reply;
        }
        if let Some(reply) = self.pki.as_mut().and_then(|pki| pki.answer(&request)) {
            return reply;
        }
        match request {
            Ikev2ToCa::Ping { id } => CaToIkev2::Pong { id },
            Ikev2ToCa::Eap { id, session, .. } => CaToIkev2::Eap {
                id,
                session,
                step: iked_common::ipc::EapStep::Failed {
                    message: Vec::new(),
                    reason: "the harness runs no EAP".into(),
                },
            },
            Ikev2ToCa::EapEnd { session } => CaToIkev2::Failed {
                id: session,
                reason: "EapEnd takes no answer".into(),
            },
            Ikev2ToCa::SignAuth {
                id,
                prf,
                signed_octets,
                ..
            } => {
                let prf = PrfAlg::from_iana(prf).unwrap();
                CaToIkev2::Auth {
                    id,
                    auth_method: 2,
                    auth_data: psk_auth(prf, &self.psk, &signed_octets).unwrap(),
                    certs: Vec::new(),
                }
            }
            Ikev2ToCa::VerifyAuth {
                id,
                prf,
                auth_method,
                signed_octets,
                auth_data,
                ..
            } => {
                let prf = PrfAlg::from_iana(prf).unwrap();
                let ok = auth_method == 2
                    && verify_psk_auth(prf, &self.psk, &signed_octets, &auth_data).unwrap();
                CaToIkev2::Verified {
                    id,
                    ok,
                    reason: String::new(),
                }
            }
        }
    }

    fn pfkey(&mut self, request: Ikev2ToPfkey) -> Option<PfkeyToIkev2> {
        Some(match request {
            Ikev2ToPfkey::Ping { id } => PfkeyToIkev2::Pong { id },
            Ikev2ToPfkey::AddAddress { id, .. } | Ikev2ToPfkey::DeleteAddress { id, .. } => {
                PfkeyToIkev2::Done { id }
            }
            Ikev2ToPfkey::Migrate { id, .. } if self.refuse_migrations => PfkeyToIkev2::Failed {
                id,
                failure: KernelFailure {
                    kind: FailureKind::Unsupported,
                    errno: 0,
                    message: "migrate: not supported over PF_KEY".into(),
                },
            },
            Ikev2ToPfkey::Migrate { id, migration } => {
                self.migrate(&migration);
                self.migrations.push(migration);
                PfkeyToIkev2::Done { id }
            }
            Ikev2ToPfkey::AllocateSpi { id, .. } => {
                self.next_spi += 1;
                PfkeyToIkev2::SpiAllocated {
                    id,
                    spi: self.next_spi,
                }
            }
            Ikev2ToPfkey::AddSa { id, sa } | Ikev2ToPfkey::UpdateSa { id, sa } => {
                self.sa_requests += 1;
                if self.refuse {
                    PfkeyToIkev2::Failed {
                        id,
                        failure: KernelFailure {
                            kind: FailureKind::NotPermitted,
                            errno: 0,
                            message: "outside every configured flow".into(),
                        },
                    }
                } else if self.no_esp {
                    PfkeyToIkev2::Failed {
                        id,
                        failure: KernelFailure {
                            kind: FailureKind::Unsupported,
                            errno: 93,
                            message: "Requested type not found".into(),
                        },
                    }
                } else if self.refuse_sas_to == Some(sa.id.dst) {
                    PfkeyToIkev2::Failed {
                        id,
                        failure: KernelFailure {
                            kind: FailureKind::AlreadyExists,
                            errno: 17,
                            message: "add SA: entry already exists (EEXIST)".into(),
                        },
                    }
                } else {
                    self.sas.insert(sa.id.spi, sa);
                    PfkeyToIkev2::Done { id }
                }
            }
            Ikev2ToPfkey::DeleteSa { id, sa } => {
                self.sas.remove(&sa.spi);
                self.deleted_sas.push(sa);
                PfkeyToIkev2::Done { id }
            }
            Ikev2ToPfkey::AddPolicy { id, policy } => {
                self.policies.push(policy);
                PfkeyToIkev2::Done { id }
            }
            Ikev2ToPfkey::DeletePolicy {
                id,
                selector,
                direction,
            } => {
                self.policies
                    .retain(|p| !(p.selector == selector && p.direction == direction));
                PfkeyToIkev2::Done { id }
            }
            Ikev2ToPfkey::LookupSource { id, peer } => match self.source_lookups {
                SourceLookups::Answer => PfkeyToIkev2::SourceAddress {
                    id,
                    source: self.addr,
                },
                SourceLookups::Hold => {
                    self.held_source_lookups.push((id, peer));
                    return None;
                }
                SourceLookups::Fail => PfkeyToIkev2::Failed {
                    id,
                    failure: KernelFailure {
                        kind: FailureKind::NotFound,
                        errno: 101,
                        message: format!("route lookup for {peer}: Network is unreachable"),
                    },
                },
            },
            Ikev2ToPfkey::GetCounters { id, sas } => {
                self.counter_requests.push((id, sas.clone()));
                if self.counters_unanswered {
                    return None;
                }
                // As pfkey does: counters only for SAs it installed.
                let counters = sas
                    .into_iter()
                    .map(|sa| {
                        let installed = self.sas.get(&sa.spi).is_some_and(|p| p.id == sa);
                        let counted = self.traffic.get(&sa.spi).copied().unwrap_or_default();
                        (sa, installed.then_some(counted))
                    })
                    .collect();
                PfkeyToIkev2::Counters { id, counters }
            }
        })
    }

    /// What XFRM_MSG_MIGRATE does to the "kernel": the two SAs and the
    /// policies' templates get the new outer addresses and encapsulation.
    fn migrate(&mut self, m: &iked_common::kernel::Migration) {
        for (id, inbound) in [(m.inbound, true), (m.outbound, false)] {
            let Some(sa) = self.sas.get_mut(&id.spi).filter(|sa| sa.id == id) else {
                continue;
            };
            let (src, dst) = if inbound {
                (m.new_peer, m.new_local)
            } else {
                (m.new_local, m.new_peer)
            };
            sa.id.src = src;
            sa.id.dst = dst;
            sa.encap = m.encap.map(|e| {
                if inbound {
                    iked_common::kernel::UdpEncap {
                        src_port: e.dst_port,
                        dst_port: e.src_port,
                    }
                } else {
                    e
                }
            });
        }
        for policy in &mut self.policies {
            if m.policies.contains(&(policy.selector, policy.direction)) {
                let out = policy.direction == iked_common::kernel::PolicyDirection::Out;
                policy.template.src = if out { m.new_local } else { m.new_peer };
                policy.template.dst = if out { m.new_peer } else { m.new_local };
            }
        }
    }

    fn established(&self) -> Vec<u64> {
        self.engine
            .ike_spis()
            .into_iter()
            .filter(|s| {
                self.engine
                    .ike(*s)
                    .is_some_and(|sa| sa.state == IkeState::Established)
            })
            .collect()
    }
}

impl World {
    fn new() -> World {
        World::with(settings(), settings())
    }

    fn with(sa: Settings, sb: Settings) -> World {
        let now = Instant::now();
        World {
            now,
            a: Node::new(A, 0x1111, 0x1000_0000, sa, now),
            b: Node::new(B, 0x2222, 0x2000_0000, sb, now),
            net: VecDeque::new(),
            filter: Box::new(|_| true),
            nat: None,
            delivered: 0,
        }
    }

    fn configure(&mut self, pa: Vec<Policy>, pb: Vec<Policy>) {
        self.b
            .engine
            .set_config(self.now, pb, InitiationMode::Passive, 0);
        self.a
            .engine
            .set_config(self.now, pa, InitiationMode::Active, 0);
    }

    fn configure_dpd(&mut self, pa: Vec<Policy>, pb: Vec<Policy>, dpd: u32) {
        self.b
            .engine
            .set_config(self.now, pb, InitiationMode::Passive, dpd);
        self.a
            .engine
            .set_config(self.now, pa, InitiationMode::Active, dpd);
    }

    /// Applies the NAT in front of A, if any.
    fn translate(&self, mut packet: Packet) -> Packet {
        if let Some((private, public)) = self.nat {
            if packet.from.ip() == private {
                let port = packet.from.port() + 10_000;
                packet.from = SocketAddr::new(public, port);
            }
            if packet.to.ip() == public {
                packet.to = SocketAddr::new(private, packet.to.port() - 10_000);
            }
        }
        packet
    }

    /// Delivers and processes until nothing moves (bounded).
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let (pa, busy_a) = self.a.step(self.now);
            let (pb, busy_b) = self.b.step(self.now);
            for p in pa.into_iter().chain(pb) {
                let p = self.translate(p);
                if (self.filter)(&p) {
                    self.net.push_back(p);
                }
            }
            let Some(packet) = self.net.pop_front() else {
                if !busy_a && !busy_b {
                    return;
                }
                continue;
            };
            self.deliver(packet);
        }
        panic!("the engines did not settle");
    }

    fn deliver(&mut self, packet: Packet) {
        self.delivered += 1;
        let node = if packet.to.ip() == self.a.addr {
            &mut self.a
        } else if packet.to.ip() == self.b.addr {
            &mut self.b
        } else {
            return;
        };
        node.engine
            .handle_datagram(self.now, packet.to, packet.from, &packet.data);
    }

    /// Advances the clock to the next deadline of either engine (bounded).
    fn advance(&mut self) -> bool {
        let next = [self.a.engine.next_deadline(), self.b.engine.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else {
            return false;
        };
        if next > self.now {
            self.now = next;
        }
        self.a.engine.handle_timeout(self.now);
        self.b.engine.handle_timeout(self.now);
        self.settle();
        true
    }

    fn advance_by(&mut self, duration: Duration) {
        let end = self.now + duration;
        for _ in 0..10_000 {
            let next = [self.a.engine.next_deadline(), self.b.engine.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(next) if next <= end => {
                    self.now = self.now.max(next);
                    self.a.engine.handle_timeout(self.now);
                    self.b.engine.handle_timeout(self.now);
                    self.settle();
                }
                _ => {
                    self.now = end;
                    self.a.engine.handle_timeout(self.now);
                    self.b.engine.handle_timeout(self.now);
                    self.settle();
                    return;
                }
            }
        }
        panic!("too many timer events");
    }

    /// Steps both engines (bounded) delivering each batch of datagrams
    /// backwards and twice over, the first two swapped in flight: a
    /// network that duplicates and reorders.
    fn deliver_backwards_twice_swapped(&mut self) {
        for _ in 0..200 {
            let (pa, _) = self.a.step(self.now);
            let (pb, _) = self.b.step(self.now);
            let mut batch: Vec<Packet> = pa.into_iter().chain(pb).collect();
            batch.reverse();
            for p in batch {
                self.net.push_back(Packet {
                    from: p.from,
                    to: p.to,
                    data: p.data.clone(),
                });
                self.net.push_back(p);
            }
            if self.net.is_empty() {
                break;
            }
            let mut items: Vec<Packet> = self.net.drain(..).collect();
            if items.len() >= 2 {
                items.swap(0, 1);
            }
            for p in items {
                self.deliver(p);
            }
        }
    }

    fn handshake(&mut self) {
        self.configure(vec![a_policy()], vec![b_policy()]);
        self.settle();
    }
}

/// A soft or hard EXPIRE of the ESP SA from `src` to `dst` with `spi`.
fn esp_expire(src: &str, dst: &str, spi: u32, hard: bool) -> KernelEvent {
    KernelEvent::Expire {
        sa: SaId {
            src: ip(src),
            dst: ip(dst),
            protocol: IpsecProtocol::Esp,
            spi,
        },
        reqid: 0,
        hard,
    }
}

/// The one Child SA pair both sides hold, checked to match.
fn assert_one_matching_child(w: &World) -> (u32, u32) {
    let a_children = w.a.engine.child_spis();
    let b_children = w.b.engine.child_spis();
    assert_eq!(a_children.len(), 1, "A children: {a_children:x?}");
    assert_eq!(b_children.len(), 1, "B children: {b_children:x?}");
    let ca = w.a.engine.child(a_children[0]).unwrap();
    let cb = w.b.engine.child(b_children[0]).unwrap();
    assert_eq!(ca.spi_in, cb.spi_out);
    assert_eq!(ca.spi_out, cb.spi_in);
    assert_eq!(ca.keys.encr_i.expose(), cb.keys.encr_i.expose());
    assert_eq!(ca.keys.encr_r.expose(), cb.keys.encr_r.expose());
    assert_eq!(ca.keys.integ_i.expose(), cb.keys.integ_i.expose());
    assert_eq!(ca.keys.integ_r.expose(), cb.keys.integ_r.expose());
    (ca.spi_in, cb.spi_in)
}

/// A's address behind the NAT of [`configure_a_behind_nat`], and what B
/// sees instead.
const NAT_PRIVATE: &str = "10.99.0.1";
const NAT_PUBLIC: &str = "198.51.100.7";

/// Puts A behind a NAT (NAT_PRIVATE seen as NAT_PUBLIC), gives A an active
/// policy towards B and B a passive one for any peer, and lets them settle.
fn configure_a_behind_nat(w: &mut World) {
    w.a.addr = ip(NAT_PRIVATE);
    w.nat = Some((ip(NAT_PRIVATE), ip(NAT_PUBLIC)));
    let pa = policy(
        "ab",
        NAT_PRIVATE,
        Some(B),
        vec![selector("10.1.0.0", 16, "10.2.0.0", 16)],
        true,
    );
    let pb = policy(
        "ba",
        B,
        None,
        vec![selector("10.2.0.0", 16, "10.1.0.0", 16)],
        false,
    );
    w.configure(vec![pa], vec![pb]);
    w.settle();
}

fn assert_one_matching_ike(w: &World) -> u64 {
    let a = w.a.established();
    let b = w.b.established();
    assert_eq!(a.len(), 1, "A IKE SAs: {:x?}", w.a.engine.ike_spis());
    assert_eq!(b.len(), 1, "B IKE SAs: {:x?}", w.b.engine.ike_spis());
    let sa = w.a.engine.ike(a[0]).unwrap();
    let sb = w.b.engine.ike(b[0]).unwrap();
    assert_eq!((sa.spi_i, sa.spi_r), (sb.spi_i, sb.spi_r));
    assert_ne!(sa.initiator, sb.initiator);
    let (ka, kb) = (sa.keys.as_ref().unwrap(), sb.keys.as_ref().unwrap());
    for (x, y) in [
        (&ka.sk_d, &kb.sk_d),
        (&ka.sk_ai, &kb.sk_ai),
        (&ka.sk_ar, &kb.sk_ar),
        (&ka.sk_ei, &kb.sk_ei),
        (&ka.sk_er, &kb.sk_er),
        (&ka.sk_pi, &kb.sk_pi),
        (&ka.sk_pr, &kb.sk_pr),
    ] {
        assert_eq!(x.expose(), y.expose());
    }
    assert!(!ka.sk_d.expose().is_empty());
    a[0]
}

/// A policy keeps its outbound trap policy when no Child SA is up (an
/// active one initiates on its ACQUIRE, a passive one holds its traffic
/// back until the peer initiates); nothing else stays.
fn assert_only_trap(node: &Node) {
    assert_eq!(node.policies.len(), 1, "{:?}", node.policies);
    assert_eq!(
        node.policies[0].direction,
        iked_common::kernel::PolicyDirection::Out
    );
}

fn exchanges_sent(node: &Node, exchange: ExchangeType, response: bool) -> usize {
    node.sent
        .iter()
        .filter(|(_, _, d)| {
            Header::decode(d)
                .is_ok_and(|h| h.header.exchange == exchange && h.header.flags.response == response)
        })
        .count()
}

type PacketFilter = Box<dyn FnMut(&Packet) -> bool>;

type HeldPackets = std::rc::Rc<std::cell::RefCell<Vec<Packet>>>;

/// Holds the first datagram matching `pick` until released.
fn hold_first(pick: impl Fn(&Packet) -> bool + 'static) -> (PacketFilter, HeldPackets) {
    let held = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let store = held.clone();
    let mut done = false;
    (
        Box::new(move |p: &Packet| {
            if !done && pick(p) {
                done = true;
                store.borrow_mut().push(Packet {
                    from: p.from,
                    to: p.to,
                    data: p.data.clone(),
                });
                return false;
            }
            true
        }),
        held,
    )
}

fn is_request_from(p: &Packet, from: IpAddr, exchange: ExchangeType) -> bool {
    p.from.ip() == from
        && Header::decode(&p.data)
            .is_ok_and(|h| h.header.exchange == exchange && !h.header.flags.response)
}

struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if record.level() <= log::Level::Info {
            CAPTURED.with(|lines| {
                if let Some(lines) = lines.borrow_mut().as_mut() {
                    lines.push(record.args().to_string());
                }
            });
        }
        if std::env::var_os("IKED_TEST_LOG").is_some() {
            eprintln!("{} {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

static STDERR_LOG: StderrLog = StderrLog;

thread_local! {
    /// Info-and-above lines logged on this test's thread, while capturing.
    static CAPTURED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` and returns the info-and-above lines it logged on this thread
/// (other tests' threads are not captured).
fn capture_info_log(f: impl FnOnce()) -> Vec<String> {
    let _ = log::set_logger(&STDERR_LOG);
    if log::max_level() < log::LevelFilter::Info {
        log::set_max_level(log::LevelFilter::Info);
    }
    CAPTURED.with(|lines| *lines.borrow_mut() = Some(Vec::new()));
    f();
    CAPTURED.with(|lines| lines.borrow_mut().take().unwrap_or_default())
}

#[allow(dead_code)]
fn enable_test_log() {
    let _ = log::set_logger(&STDERR_LOG);
    log::set_max_level(log::LevelFilter::Debug);
}

// ----------------------------------------------------------------------
// Hostile input (issue 10): cookies, half-open economics, Child SA caps,
// nothing done for unauthenticated peers.
// ----------------------------------------------------------------------

use iked_common::wire::{Message, Notify, NotifyType, Payload, VendorId};

/// The payloads of an encrypted message to `node`, opened with the keys of
/// its IKE SA `spi`.
fn open_with(node: &Node, spi: u64, datagram: &[u8]) -> Option<Vec<Payload>> {
    let sa = node.engine.ike(spi)?;
    let message = Message::decode(datagram).ok()?;
    let sk = message.encrypted()?;
    let span = iked_common::wire::encrypted_span(datagram).ok()?;
    let (aad, body) = datagram.split_at_checked(span)?;
    let plaintext = sa.in_cipher.as_ref()?.open(aad, body).ok()?;
    iked_common::wire::decode_payloads(sk.first_inner, &plaintext, &message.header).ok()
}
