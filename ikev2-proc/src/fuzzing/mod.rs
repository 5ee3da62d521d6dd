//! Stateful fuzzing of the IKEv2 engine (issue 10): an initiator and a
//! responder engine, a network between them that drops, duplicates,
//! reorders, mutates and splices datagrams, third parties sending from
//! other addresses, a ca that answers AUTH requests with the real ca-proc
//! code (or fails, or never answers), a pfkey that grants, refuses, delays
//! or forgets, kernel events, operator commands, reloads, and a clock that
//! jumps. Every decision comes from one [`Choices`] stream: a u64 seed for
//! the stable `cargo test` (tests/engine_fuzz.rs), the fuzzer's bytes for
//! the cargo-fuzz target (fuzz/), so a failure replays exactly.
//!
//! Compiled only with the "fuzzing" feature: a library module rather than
//! a file included by both users, because it needs one view of engine
//! internals ([`Engine::fuzz_states`], for the coverage count of states)
//! that must never be part of the daemon's API.
//!
//! An *execution* is one event handed to one engine: one call of
//! `handle_datagram`, `handle_pfkey`, `handle_ca`, `handle_timeout`,
//! `handle_control`, `set_config` or `shutdown`.

mod choices;
mod events;
mod ipc_peers;
pub mod mutate;
mod stats;

pub use choices::Choices;
use ipc_peers::{ca_id, pfkey_id};
pub use stats::{Stats, WIRE_STATES};

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use iked_ca::auth::AuthService;
use iked_common::config::{
    AuthSpec, Encapsulation, Policy, PreSharedKey, Prefix, ProposalSpec, SignatureAuth,
    TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG, TRANSFORM_KE, TRANSFORM_PRF,
};
use iked_common::crypto::RandomSource;
use iked_common::ipc::{
    CaToIkev2, ControlCommand, Ikev2ToCa, Ikev2ToPfkey, InitiationMode, PfkeyToIkev2,
};
use iked_common::kernel::{
    FailureKind, IpsecProtocol, KernelEvent, KernelFailure, PolicyDirection, SaCounters, SaId,
    Selector,
};

use crate::engine::{Action, Engine, Settings, FUZZ_STATES};
use crate::test_fixtures::{psk_tunnel_policy, seeded, t};

/// Run options.
#[derive(Debug, Clone)]
pub struct Options {
    /// At most this many events per run.
    pub max_events: usize,
    /// Inject COOKIE notifies (on by default; off to show that the other
    /// mutations find the cookie crash too).
    pub inject_cookies: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_events: 400,
            inject_cookies: true,
        }
    }
}

/// Something the engine must never do short of panicking: refuse as
/// "never made" the first reply to a request it did make (the shell
/// exits on that error, which takes the daemon down).
#[derive(Debug)]
pub struct Failure(pub String);

/// The one place an engine is made. The driver's random source never
/// fails, so Engine::new (which refuses to run without randomness) cannot.
fn new_engine(settings: Settings, rng: Box<dyn RandomSource>, now: Instant) -> Engine {
    Engine::new(settings, rng, now).expect("the driver's random source does not fail")
}

// Addresses from the benchmark range 198.18.0.0/15 (RFC 2544), as the
// other tests use; nothing here touches a network.
const INITIATOR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const RESPONDER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PSK: &[u8] = b"engine fuzzing pre-shared key";

fn third_party(c: &mut Choices) -> SocketAddr {
    let ip = Ipv4Addr::new(
        198,
        18 + c.below(2) as u8,
        1 + c.below(255) as u8,
        c.below(256) as u8,
    );
    let port = if c.chance(4) {
        c.below(65_536) as u16
    } else {
        [500, 4500][c.below(2)]
    };
    SocketAddr::new(IpAddr::V4(ip), port)
}

fn host(addr: Ipv4Addr) -> Prefix {
    Prefix {
        addr: IpAddr::V4(addr),
        len: 32,
    }
}

fn flow(src: [u8; 2], dst: [u8; 2]) -> Selector {
    Selector {
        src: IpAddr::V4(Ipv4Addr::new(10, src[0], src[1], 0)),
        src_prefix: 24,
        dst: IpAddr::V4(Ipv4Addr::new(10, dst[0], dst[1], 0)),
        dst_prefix: 24,
        protocol: 0,
        src_port: 0,
        dst_port: 0,
    }
}

/// What varies between runs' configurations.
#[derive(Clone, Copy)]
struct Shape {
    ike_lifetime: u64,
    child_lifetime: u64,
    pfs: bool,
    transport: bool,
    /// UDP encapsulation without a NAT (IKE floats to 4500, keepalives).
    force_natt: bool,
    /// The responder's policy is also active (collisions, both initiate).
    both_active: bool,
    /// The responder's policy takes any peer of 198.18.0.0/15 (third
    /// parties get half-open SAs).
    wide: bool,
    flows: usize,
    /// DPD interval (0: none).
    dpd: u32,
    /// The initiator's policy names no local address: pfkey's source
    /// lookup comes first.
    no_local: bool,
    /// Both policies use public keys (Ed25519 signatures, CERT payloads,
    /// ca's Store) instead of the PSK.
    pubkey: bool,
    /// On top of public keys: both policies have `eap` (RFC 7296 §2.16),
    /// the initiator authenticates with EAP-MSCHAPv2 as alice, answered by
    /// ca's real EAP code in both roles.
    eap: bool,
    /// Road warrior (issue 14): the wide responder hands out addresses
    /// from a pool, the initiator asks for one (`request address any`,
    /// `from dynamic`): Configuration payloads to mutate and splice,
    /// leases, TS narrowing to the lease.
    remote_access: bool,
}

fn shape(c: &mut Choices) -> Shape {
    Shape {
        ike_lifetime: [0, 60, 120, 600, 3600][c.below(5)],
        child_lifetime: [0, 30, 45, 300, 1200][c.below(5)],
        pfs: c.chance(3),
        transport: c.chance(8),
        force_natt: c.chance(6),
        both_active: c.chance(6),
        wide: !c.chance(4),
        flows: 1 + c.below(2),
        dpd: [0, 0, 10, 60][c.below(4)],
        // Derived, not drawn, so that every seed's other choices stay as
        // they were: one run in five.
        no_local: false,
        pubkey: false,
        eap: false,
        remote_access: false,
    }
    .with_derived()
}

impl Shape {
    fn with_derived(mut self) -> Shape {
        self.no_local = self.child_lifetime == 45;
        // One run in ten.
        self.pubkey = self.ike_lifetime == 600 && self.pfs;
        // Half of those.
        self.eap = self.pubkey && self.dpd == 0;
        // About one run in six.
        self.remote_access = self.wide && !self.both_active && self.dpd == 10;
        self
    }
}

fn policy(
    name: &str,
    local: Ipv4Addr,
    peer: Prefix,
    active: bool,
    s: Shape,
    mirror: bool,
) -> Policy {
    let flows = (0..s.flows as u8)
        .map(|i| {
            let (a, b) = ([1, i], [2, i]);
            if mirror {
                flow(b, a)
            } else {
                flow(a, b)
            }
        })
        .collect();
    let mut child = vec![
        t(TRANSFORM_ENCR, 12, Some(128)),
        t(TRANSFORM_INTEG, 12, None),
        t(TRANSFORM_ESN, 0, None),
    ];
    if s.pfs {
        child.push(t(TRANSFORM_KE, 31, None));
    }
    Policy {
        encapsulation: if s.transport {
            Encapsulation::Transport
        } else {
            Encapsulation::Tunnel
        },
        force_natt: s.force_natt,
        peer: Some(peer),
        // X25519 first: cheap, so runs are many; P-256 offered too, so
        // INVALID_KE_PAYLOAD paths are reachable.
        ike_proposals: vec![ProposalSpec {
            transforms: vec![
                t(TRANSFORM_ENCR, 20, Some(256)),
                t(TRANSFORM_PRF, 5, None),
                t(TRANSFORM_KE, 31, None),
                t(TRANSFORM_KE, 19, None),
            ],
        }],
        child_proposals: vec![ProposalSpec { transforms: child }],
        ike_lifetime_secs: s.ike_lifetime,
        child_lifetime_secs: s.child_lifetime,
        auth: if s.pubkey {
            AuthSpec::PublicKey(SignatureAuth::Any)
        } else {
            AuthSpec::Psk
        },
        srcid: s
            .eap
            .then(|| iked_common::config::IdentitySpec::Fqdn(EAP_USER.into())),
        remote_access: iked_common::config::RemoteAccess {
            eap: s.eap.then_some(iked_common::config::EapMethod::MsChapV2),
            ..Default::default()
        },
        ..psk_tunnel_policy(name, IpAddr::V4(local), None, flows, active)
    }
}

/// The EAP user of EAP runs, and its password (both nodes know it: each
/// can be the client, when both initiate, and the gateway).
const EAP_USER: &str = "alice";
const EAP_PASSWORD: &[u8] = b"engine fuzzing EAP password";

struct Packet {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// One daemon's ikev2 engine with its ca and pfkey as the driver plays them.
struct Node {
    engine: Engine,
    addr: IpAddr,
    policies: Vec<Policy>,
    mode: InitiationMode,
    ca: AuthService,
    /// The signing key of public-key runs (ipc_peers::PubkeyCa).
    pubkey_ca: Option<ipc_peers::PubkeyCa>,
    /// Requests not answered yet, oldest first.
    ca_pending: Vec<Ikev2ToCa>,
    pfkey_pending: Vec<Ikev2ToPfkey>,
    /// Ids answered already (for duplicates and late replies).
    answered: VecDeque<u64>,
    highest_id: u64,
    /// Inbound SAs installed, for EXPIRE events.
    installed: Vec<SaId>,
    next_spi: u32,
    next_control: u64,
}

impl Node {
    fn new(addr: Ipv4Addr, settings: Settings, rng: u64, now: Instant) -> Node {
        Node {
            engine: new_engine(settings, seeded(rng), now),
            addr: IpAddr::V4(addr),
            policies: Vec::new(),
            mode: InitiationMode::Passive,
            ca: AuthService::default(),
            pubkey_ca: None,
            ca_pending: Vec::new(),
            pfkey_pending: Vec::new(),
            answered: VecDeque::new(),
            highest_id: 0,
            installed: Vec::new(),
            next_spi: 0x1000,
            next_control: 1,
        }
    }

    fn remember_answer(&mut self, id: u64) {
        if self.answered.len() >= 32 {
            self.answered.pop_front();
        }
        self.answered.push_back(id);
    }
}

/// The payload type of an Encrypted Fragment (SKF, RFC 7383 §2.5).
const SKF: u8 = 53;

/// (Fragment Number, Total Fragments) of an IKE Fragment message whose
/// SKF payload comes first, as ours do.
fn fragment_numbers(data: &[u8]) -> Option<(u16, u16)> {
    let fields = data.get(mutate::HEADER_LEN + 4..mutate::HEADER_LEN + 8)?;
    Some((
        u16::from_be_bytes([fields[0], fields[1]]),
        u16::from_be_bytes([fields[2], fields[3]]),
    ))
}

const MAX_CORPUS: usize = 96;
const MAX_NET: usize = 256;

struct World<'a> {
    c: &'a mut Choices,
    opts: &'a Options,
    stats: &'a mut Stats,
    now: Instant,
    /// 0: the initiator, 1: the responder.
    nodes: [Node; 2],
    net: Vec<Packet>,
    /// Datagrams seen on the wire, for splicing and replays.
    corpus: Vec<Vec<u8>>,
    /// Clear forms of encrypted messages (header, inner payloads).
    inner: Vec<Vec<u8>>,
    shape: Shape,
    events: usize,
    /// How hostile this run is: 0 calm (handshakes, rekeys and deletes
    /// run their course, with a rare fault), 1 mild, 2 hostile.
    chaos: usize,
}

/// One run: a fresh pair of engines driven by `c` for at most
/// `opts.max_events` events. Panics (the engine's) propagate: the caller
/// catches them per run.
pub fn run(c: &mut Choices, opts: &Options, stats: &mut Stats) -> Result<(), Failure> {
    stats.grow();
    stats.runs += 1;
    let now = Instant::now();
    let flood = c.chance(6);
    let mut responder = Settings::default();
    if !flood {
        // Cookies required from the first or after a few half-open SAs.
        responder.cookie_threshold = [0, 1, 2, 3, 8, 500][c.below(6)];
    }
    if !flood && c.chance(8) {
        responder.half_open_cap = 1 + c.below(20);
    }
    if c.chance(4) {
        responder.retransmit_tries = 1 + c.below(3) as u32;
    }
    let mut initiator = Settings::default();
    if c.chance(6) {
        initiator.cookie_threshold = c.below(3);
    }
    let (seed_i, seed_r) = (c.u64(), c.u64());
    // IKE fragmentation (RFC 7383), derived from the seeds rather than
    // drawn so that the other runs' choices stay as they were: one run in
    // three with a datagram size small enough that a PSK IKE_AUTH goes in
    // a few fragments, and in some of those the responder without
    // fragmentation (no fragments then, both ways).
    if seed_i % 3 == 0 {
        let size = 160 + (seed_r % 200) as u16;
        initiator.fragmentation.max_datagram = size;
        responder.fragmentation.max_datagram = size;
        responder.fragmentation.enabled = seed_r % 7 != 0;
    }
    let mut shape = shape(c);
    if flood {
        // Third parties must match a policy to get half-open SAs.
        shape.wide = true;
        shape.both_active = false;
    }
    let mut world = World {
        nodes: [
            Node::new(INITIATOR, initiator, seed_i, now),
            Node::new(RESPONDER, responder.clone(), seed_r, now),
        ],
        c,
        opts,
        stats,
        now,
        net: Vec::new(),
        corpus: Vec::new(),
        inner: Vec::new(),
        shape,
        events: 0,
        chaos: 0,
    };
    world.chaos = [0, 0, 1, 1, 2][world.c.below(5)];
    world.configure(shape);
    if flood {
        let count = responder.cookie_threshold + world.c.below(40);
        world.flood(count)?;
        if world.nodes[1].engine.fuzz_states() & 0b10 != 0 {
            world.stats.wire(5);
        }
    }
    let start = world.events;
    while world.events - start < opts.max_events && !world.c.exhausted() {
        world.step()?;
    }
    if world.c.chance(4) {
        let which = world.c.below(2);
        let now = world.now;
        world.nodes[which].engine.shutdown(now);
        world.after(which)?;
    }
    Ok(())
}

impl World<'_> {
    fn configure(&mut self, s: Shape) {
        let wide = Prefix {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)),
            len: 15,
        };
        let mut i_policy = policy("ab", INITIATOR, host(RESPONDER), true, s, false);
        if s.no_local {
            i_policy.local = None;
        }
        let mut r_policy = if s.wide && !s.both_active {
            policy("ba", RESPONDER, wide, false, s, true)
        } else {
            policy("ba", RESPONDER, host(INITIATOR), s.both_active, s, true)
        };
        if s.remote_access {
            use iked_common::config::ConfigAttributeSpec;
            let pool = Prefix {
                addr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 0)),
                len: 16,
            };
            r_policy.remote_access.config = vec![
                ConfigAttributeSpec::AddressPool(pool),
                ConfigAttributeSpec::NameServer(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 53))),
            ];
            for flow in &mut i_policy.flows {
                flow.src = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
                flow.src_prefix = 0;
            }
            i_policy.remote_access.request_address = true;
            i_policy.remote_access.request_name_server = true;
        }
        for (index, p) in [(1, r_policy), (0, i_policy)] {
            let node = &mut self.nodes[index];
            node.ca
                .set_keys(vec![(p.name.clone(), PreSharedKey::new(PSK.to_vec()))]);
            if s.eap {
                node.ca.apply_eap(
                    vec![iked_common::ipc::CaEapPolicy {
                        name: p.name.clone(),
                        method: iked_common::config::EapMethod::MsChapV2,
                        client_user: Some(EAP_USER.into()),
                    }],
                    vec![iked_common::config::UserCredential {
                        name: EAP_USER.into(),
                        password: PreSharedKey::new(EAP_PASSWORD.to_vec()),
                    }],
                );
                // Challenges from a fixed stream: a seed replays exactly.
                let mut state = 0x0e1a_9000_u64 + index as u64;
                node.ca.set_eap_random(Box::new(move |buf: &mut [u8]| {
                    for byte in buf.iter_mut() {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        *byte = (state >> 24) as u8;
                    }
                }));
            }
            node.policies = vec![p];
            node.mode = if index == 0 || s.both_active {
                InitiationMode::Active
            } else {
                InitiationMode::Passive
            };
            let (policies, mode) = (node.policies.clone(), node.mode);
            if s.pubkey {
                let ca = ipc_peers::PubkeyCa::new(&node.policies[0].name, index);
                // ca's Store, as it sends it after each configuration.
                let store = ca.store();
                node.pubkey_ca = Some(ca);
                let _ = node.engine.handle_ca(self.now, store);
            }
            node.engine.set_config(self.now, policies, mode, s.dpd);
            let _ = self.after(index);
        }
    }

    /// Many IKE_SA_INIT requests from third parties to the responder, as
    /// an attacker builds up half-open SAs (RFC 7296 §2.6).
    fn flood(&mut self, count: usize) -> Result<(), Failure> {
        let Some(template) = self.sa_init_template() else {
            return Ok(());
        };
        for _ in 0..count {
            let mut data = template.clone();
            self.c.fill(&mut data[0..8]);
            let from = third_party(self.c);
            self.deliver(1, from, data)?;
        }
        Ok(())
    }

    /// An IKE_SA_INIT request seen on the wire (the initiator's first).
    fn sa_init_template(&self) -> Option<Vec<u8>> {
        let is_init = |d: &Vec<u8>| {
            d.len() > mutate::HEADER_LEN && d[18] == 34 && d[19] & 0x20 == 0 && d[8..16] == [0; 8]
        };
        self.net
            .iter()
            .map(|p| &p.data)
            .chain(self.corpus.iter())
            .find(|d| is_init(d))
            .cloned()
    }

    fn node_at(&self, addr: IpAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr == addr)
    }

    fn remember(&mut self, data: &[u8]) {
        if self.corpus.len() < MAX_CORPUS {
            self.corpus.push(data.to_vec());
        } else {
            let at = self.c.below(MAX_CORPUS);
            self.corpus[at] = data.to_vec();
        }
    }

    /// Counts one execution and the states the engines are in after it.
    fn executed(&mut self) {
        self.events += 1;
        self.stats.executions += 1;
        let bits = self.nodes[0].engine.fuzz_states() | self.nodes[1].engine.fuzz_states();
        for (i, count) in self
            .stats
            .states
            .iter_mut()
            .take(FUZZ_STATES.len())
            .enumerate()
        {
            if bits & (1 << i) != 0 {
                *count += 1;
            }
        }
    }

    /// Takes the actions of node `index` after an event.
    fn after(&mut self, index: usize) -> Result<(), Failure> {
        for action in self.nodes[index].engine.drain_actions() {
            self.take_action(index, action);
        }
        Ok(())
    }

    fn observe_responder(&mut self, datagram: &[u8]) {
        let chain = mutate::payloads(datagram);
        if datagram.len() < mutate::HEADER_LEN {
            return;
        }
        let (exchange, response) = (datagram[18], datagram[19] & 0x20 != 0);
        if exchange == 34 && response {
            if let Some(first) = chain.first() {
                if first.kind == 41
                    && first.len >= 8
                    && u16::from_be_bytes([datagram[first.offset + 6], datagram[first.offset + 7]])
                        == mutate::COOKIE
                {
                    self.stats.wire(0);
                }
            }
        }
        if exchange == 35 && response && datagram.len() > 80 {
            self.stats.wire(2);
        }
    }

    /// Hands a datagram to node `index`.
    fn deliver(&mut self, index: usize, from: SocketAddr, data: Vec<u8>) -> Result<(), Failure> {
        let node = &self.nodes[index];
        let to = SocketAddr::new(node.addr, if from.port() == 4500 { 4500 } else { 500 });
        let cookie_case = index == 1
            && data.len() > mutate::HEADER_LEN
            && data[18] == 34
            && data[19] & 0x20 == 0
            && (node.engine.fuzz_states() & (1 << 22)) != 0
            && mutate::payloads(&data)
                .first()
                .is_some_and(|p| p.kind == 41);
        let now = self.now;
        self.nodes[index]
            .engine
            .handle_datagram(now, to, from, &data);
        self.executed();
        if cookie_case {
            let answered = self.nodes[1].engine.drain_actions();
            let full = answered.iter().any(|a| {
                matches!(a, Action::Send { datagram, .. }
                    if datagram.len() > 28 && datagram[8..16] != [0; 8] && datagram[18] == 34)
            });
            if full {
                self.stats.wire(1);
            }
            // Taken in order, as after() would have.
            for action in answered {
                self.take_action(1, action);
            }
        }
        self.after(index)
    }

    /// One action of node `index`: a datagram onto the network, an IPC
    /// request into the pending lists of the simulated ca and pfkey.
    fn take_action(&mut self, index: usize, action: Action) {
        match action {
            Action::Send {
                local,
                remote,
                datagram,
            } => {
                if index == 1 {
                    self.observe_responder(&datagram);
                }
                self.remember(&datagram);
                if self.net.len() < MAX_NET {
                    self.net.push(Packet {
                        from: local,
                        to: remote,
                        data: datagram,
                    });
                }
            }
            // No answer: ca forgets the session at once.
            Action::Ca(end @ Ikev2ToCa::EapEnd { .. }) => {
                let now = self.now;
                let _ = self.nodes[index].ca.handle_message_at(now, end);
            }
            Action::Ca(request) => {
                let node = &mut self.nodes[index];
                node.highest_id = node.highest_id.max(ca_id(&request));
                node.ca_pending.push(request);
            }
            Action::Pfkey(request) => {
                let node = &mut self.nodes[index];
                node.highest_id = node.highest_id.max(pfkey_id(&request));
                node.pfkey_pending.push(request);
            }
            Action::Control { .. } | Action::NatKeepalive { .. } | Action::Event(_) => {}
        }
    }

    /// One event, chosen by the stream: the peers' own traffic, IPC
    /// answers and time mostly, hostile events as often as the run's
    /// chaos says.
    fn step(&mut self) -> Result<(), Failure> {
        if self.c.below(100) < [3, 15, 40][self.chaos] {
            return match self.c.below(30) {
                0..=3 => self.third_party(),
                4..=7 => self.replay_mutated(),
                8..=10 => self.bogus_ipc(),
                11..=13 => self.kernel_event(),
                14..=16 => self.control(),
                17 => self.reload(),
                18 => {
                    let n = 1 + self.c.below(8);
                    self.flood(n)
                }
                19..=24 => self.network_fault(),
                _ => self.sealed_fault(),
            };
        }
        let pending = self
            .nodes
            .iter()
            .any(|n| !n.ca_pending.is_empty() || !n.pfkey_pending.is_empty());
        match (self.net.is_empty(), pending, self.c.below(20)) {
            (_, _, 0) | (true, false, _) => self.clock(),
            (false, true, r) if r < 11 => self.network(),
            (false, false, _) => self.network(),
            _ => self.answer_ipc(),
        }
    }

    /// A datagram in flight is lost, duplicated or mutated.
    fn network_fault(&mut self) -> Result<(), Failure> {
        let cookies = self.opts.inject_cookies;
        if self.net.is_empty() {
            return self.clock();
        }
        let at = self.c.below(self.net.len());
        let packet = self.net.remove(at);
        let Some(index) = self.node_at(packet.to.ip()) else {
            return Ok(());
        };
        match self.c.below(4) {
            // Lost.
            0 => Ok(()),
            // Duplicated: delivered now and again later.
            1 => {
                self.net.push(Packet {
                    from: packet.from,
                    to: packet.to,
                    data: packet.data.clone(),
                });
                self.deliver(index, packet.from, packet.data)
            }
            // Mutated (the original is lost or delivered later): an
            // encrypted message most often inside, sealed again with its
            // sender's keys, so the receiver authenticates the mutation.
            _ => {
                let sender = self.node_at(packet.from.ip());
                if let Some(sender) = sender {
                    let fragment = packet.data.len() > mutate::HEADER_LEN && packet.data[16] == SKF;
                    if fragment && !self.c.chance(4) {
                        return self.fragment_fault(index, sender, packet);
                    }
                }
                let mut data = packet.data.clone();
                let sealed = data.len() > mutate::HEADER_LEN && data[16] == 46;
                let resealed = match sender {
                    Some(sender) if sealed && !self.c.chance(4) => self.reseal(sender, &data),
                    _ => None,
                };
                match resealed {
                    Some(resealed) => data = resealed,
                    None => mutate::mutate(self.c, &mut data, &self.corpus, cookies),
                }
                let from = packet.from;
                if self.c.chance(2) {
                    self.net.push(packet);
                }
                self.deliver(index, from, data)
            }
        }
    }

    /// An encrypted datagram in flight mutated inside and sealed again
    /// (an authenticated peer's, or before IKE_AUTH an unauthenticated
    /// one's, hostile payloads).
    fn sealed_fault(&mut self) -> Result<(), Failure> {
        let sealed: Vec<usize> = (0..self.net.len())
            .filter(|&i| {
                let d = &self.net[i].data;
                d.len() > mutate::HEADER_LEN && (d[16] == 46 || d[16] == SKF)
            })
            .collect();
        if sealed.is_empty() {
            return self.network_fault();
        }
        let at = sealed[self.c.below(sealed.len())];
        let packet = self.net.remove(at);
        let (Some(index), Some(sender)) =
            (self.node_at(packet.to.ip()), self.node_at(packet.from.ip()))
        else {
            return Ok(());
        };
        if packet.data[16] == SKF {
            return self.fragment_fault(index, sender, packet);
        }
        let Some(data) = self.reseal(sender, &packet.data) else {
            return Ok(());
        };
        let from = packet.from;
        if self.c.chance(3) {
            self.net.push(packet);
        }
        self.deliver(index, from, data)
    }

    /// A fragment in flight (RFC 7383) made hostile, sealed again with its
    /// sender's keys where it must pass the ICV: delivered twice, renumbered
    /// into a newer set (more fragments: the reassembly restarts), an older
    /// one (fewer: dropped), past the cap on fragments, its content mutated,
    /// or its ICV broken. The original is lost or delivered later.
    fn fragment_fault(
        &mut self,
        index: usize,
        sender: usize,
        packet: Packet,
    ) -> Result<(), Failure> {
        let from = packet.from;
        let Some((number, total)) = fragment_numbers(&packet.data) else {
            return Ok(());
        };
        let renumbered = match self.c.below(6) {
            0 => {
                let copy = packet.data.clone();
                self.net.push(packet);
                return self.deliver(index, from, copy);
            }
            1 => {
                let total = total.saturating_add(1 + self.c.below(3) as u16);
                (1 + self.c.below(usize::from(total)) as u16, total)
            }
            2 if total > 1 => (number.min(total - 1), total - 1),
            3 => {
                let total = 33 + self.c.below(200) as u16;
                (1 + self.c.below(usize::from(total)) as u16, total)
            }
            4 => (number, total),
            _ => {
                let mut data = packet.data.clone();
                let last = data.len() - 1;
                data[last] ^= 1 + self.c.below(255) as u8;
                if self.c.chance(2) {
                    self.net.push(packet);
                }
                return self.deliver(index, from, data);
            }
        };
        let mutate_content = renumbered == (number, total) || self.c.chance(4);
        let c = &mut *self.c;
        let resealed = self.nodes[sender].engine.fuzz_reseal_fragment(
            &packet.data,
            renumbered,
            &mut |chunk| {
                // The content is a piece of a payload chain cut anywhere
                // (§2.5): bytes flipped, cut short or grown.
                if !mutate_content || chunk.is_empty() {
                    return;
                }
                match c.below(3) {
                    0 => {
                        for _ in 0..1 + c.below(3) {
                            let at = c.below(chunk.len());
                            chunk[at] ^= 1 << c.below(8);
                        }
                    }
                    1 => chunk.truncate(c.below(chunk.len())),
                    _ => {
                        let mut extra = vec![0u8; 1 + c.below(64)];
                        c.fill(&mut extra);
                        chunk.extend_from_slice(&extra);
                    }
                }
            },
        );
        let Some(data) = resealed else {
            return Ok(());
        };
        self.stats.wire(6);
        if self.c.chance(2) {
            self.net.push(packet);
        }
        self.deliver(index, from, data)
    }

    /// `data` (sent by node `sender`) opened, its clear form mutated
    /// (payloads spliced from other clear messages), and sealed again.
    fn reseal(&mut self, sender: usize, data: &[u8]) -> Option<Vec<u8>> {
        let cookies = self.opts.inject_cookies;
        let c = &mut *self.c;
        let (corpus, inner) = (&self.corpus, &mut self.inner);
        let mut seen = None;
        let out = self.nodes[sender].engine.fuzz_reseal(data, &mut |clear| {
            seen = Some(clear.clone());
            let others = if inner.is_empty() || c.chance(4) {
                corpus
            } else {
                &*inner
            };
            mutate::mutate(c, clear, others, cookies);
        });
        if let Some(clear) = seen {
            if self.inner.len() < MAX_CORPUS {
                self.inner.push(clear);
            } else {
                let at = self.c.below(MAX_CORPUS);
                self.inner[at] = clear;
            }
            self.stats.wire(4);
        }
        out
    }

    /// The network delivers a datagram in flight: the oldest, or one
    /// time in five (hostile runs: two in five) another (reordering).
    fn network(&mut self) -> Result<(), Failure> {
        let at = if self.c.below(5) < 1 + self.chaos / 2 {
            self.c.below(self.net.len())
        } else {
            0
        };
        let packet = self.net.remove(at);
        match self.node_at(packet.to.ip()) {
            Some(index) => self.deliver(index, packet.from, packet.data),
            None => Ok(()),
        }
    }

    /// A datagram from an address that is not the peer's: a flooder's
    /// IKE_SA_INIT, a captured message replayed or mutated, or junk.
    fn third_party(&mut self) -> Result<(), Failure> {
        let cookies = self.opts.inject_cookies;
        let from = third_party(self.c);
        let index = if self.c.chance(4) { 0 } else { 1 };
        let data = match self.c.below(4) {
            0 | 1 => {
                let Some(mut data) = self.sa_init_template() else {
                    return Ok(());
                };
                self.c.fill(&mut data[0..8]);
                if self.c.chance(2) {
                    mutate::mutate(self.c, &mut data, &self.corpus, cookies);
                }
                data
            }
            2 if !self.corpus.is_empty() => {
                let mut data = self.corpus[self.c.below(self.corpus.len())].clone();
                mutate::mutate(self.c, &mut data, &self.corpus, cookies);
                data
            }
            _ => {
                let mut data = vec![0u8; self.c.below(200)];
                self.c.fill(&mut data);
                if data.len() >= mutate::HEADER_LEN {
                    data[17] = 0x20;
                    mutate::fix_length(&mut data);
                }
                data
            }
        };
        self.deliver(index, from, data)
    }

    /// A captured datagram, mutated, from the real peer's address.
    fn replay_mutated(&mut self) -> Result<(), Failure> {
        let cookies = self.opts.inject_cookies;
        if self.corpus.is_empty() {
            return Ok(());
        }
        let mut data = self.corpus[self.c.below(self.corpus.len())].clone();
        mutate::mutate(self.c, &mut data, &self.corpus, cookies);
        let index = self.c.below(2);
        let from = SocketAddr::new(self.nodes[1 - index].addr, [500, 4500][self.c.below(2)]);
        self.deliver(index, from, data)
    }
}
