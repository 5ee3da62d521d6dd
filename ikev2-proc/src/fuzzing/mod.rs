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

pub mod mutate;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use iked_ca::auth::AuthService;
use iked_common::config::{
    AuthSpec, Encapsulation, Policy, PolicyInitiation, PreSharedKey, Prefix, ProposalSpec,
    TransformSpec, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG, TRANSFORM_KE, TRANSFORM_PRF,
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

/// The decisions of one run: a seeded generator or a fuzzer's bytes.
pub struct Choices {
    source: Source,
}

enum Source {
    /// xorshift64*, small and reproducible from the printed seed.
    Seeded(u64),
    /// libFuzzer's input; zeros once it is used up (the run then ends).
    Bytes { data: Vec<u8>, pos: usize },
}

impl Choices {
    pub fn from_seed(seed: u64) -> Choices {
        // Spread nearby seeds apart (splitmix64), never zero for xorshift.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Choices {
            source: Source::Seeded((z ^ (z >> 31)).max(1)),
        }
    }

    pub fn from_bytes(data: &[u8]) -> Choices {
        Choices {
            source: Source::Bytes {
                data: data.to_vec(),
                pos: 0,
            },
        }
    }

    /// `octets` (1 to 8) octets' worth of choice.
    fn raw(&mut self, octets: usize) -> u64 {
        match &mut self.source {
            Source::Seeded(state) => {
                *state ^= *state >> 12;
                *state ^= *state << 25;
                *state ^= *state >> 27;
                state.wrapping_mul(0x2545_f491_4f6c_dd1d)
            }
            Source::Bytes { data, pos } => {
                let mut value = 0u64;
                for _ in 0..octets {
                    value = (value << 8) | u64::from(data.get(*pos).copied().unwrap_or(0));
                    *pos += 1;
                }
                value
            }
        }
    }

    /// A number in `0..bound` (0 when bound is 0 or 1, taking nothing).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound <= 1 {
            return 0;
        }
        let octets = match bound {
            0..=256 => 1,
            257..=65_536 => 2,
            _ => 4,
        };
        (self.raw(octets) % bound as u64) as usize
    }

    /// True one time in `n`.
    pub fn chance(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn u64(&mut self) -> u64 {
        self.raw(8)
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let value = self.raw(chunk.len()).to_be_bytes();
            chunk.copy_from_slice(&value[8 - chunk.len()..]);
        }
    }

    /// A fuzzer's input is used up.
    pub fn exhausted(&self) -> bool {
        matches!(&self.source, Source::Bytes { data, pos } if *pos >= data.len())
    }
}

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

/// Observations made on the wire and on the IPC channels, next to the
/// engine's own states.
pub const WIRE_STATES: [&str; 6] = [
    "wire: responder demanded a COOKIE",
    "wire: IKE_SA_INIT with a COOKIE answered while cookies required",
    "wire: IKE_AUTH response with AUTH sent",
    "ipc: reply refused (not asked, or answered twice)",
    "wire: encrypted message mutated inside and sealed again",
    "flood: half-open SAs past the default threshold (runs)",
];

/// What the runs did, summed over runs.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub runs: u64,
    pub executions: u64,
    /// For each state of [`FUZZ_STATES`] then [`WIRE_STATES`]: after how
    /// many executions either engine was in it (or, for the wire states,
    /// how many times it was seen).
    pub states: Vec<u64>,
}

impl Stats {
    pub fn merge(&mut self, other: &Stats) {
        self.runs += other.runs;
        self.executions += other.executions;
        self.grow();
        for (i, n) in other.states.iter().enumerate() {
            self.states[i] += n;
        }
    }

    fn grow(&mut self) {
        self.states.resize(FUZZ_STATES.len() + WIRE_STATES.len(), 0);
    }

    fn wire(&mut self, index: usize) {
        self.grow();
        self.states[FUZZ_STATES.len() + index] += 1;
    }

    /// (name, count) of every state.
    pub fn report(&self) -> Vec<(&'static str, u64)> {
        FUZZ_STATES
            .iter()
            .chain(WIRE_STATES.iter())
            .enumerate()
            .map(|(i, name)| (*name, self.states.get(i).copied().unwrap_or(0)))
            .collect()
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

fn seeded_rng(seed: u64) -> Box<dyn RandomSource> {
    let mut state = seed.max(1);
    Box::new(move |buf: &mut [u8]| {
        for byte in buf.iter_mut() {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            *byte = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    })
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

fn transform(transform_type: u8, id: u16, key_length: Option<u16>) -> TransformSpec {
    TransformSpec {
        transform_type,
        id,
        key_length,
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
        transform(TRANSFORM_ENCR, 12, Some(128)),
        transform(TRANSFORM_INTEG, 12, None),
        transform(TRANSFORM_ESN, 0, None),
    ];
    if s.pfs {
        child.push(transform(TRANSFORM_KE, 31, None));
    }
    Policy {
        name: name.into(),
        initiation: if active {
            PolicyInitiation::Active
        } else {
            PolicyInitiation::Passive
        },
        encapsulation: if s.transport {
            Encapsulation::Transport
        } else {
            Encapsulation::Tunnel
        },
        force_natt: s.force_natt,
        flows,
        local: Some(host(local)),
        peer: Some(peer),
        // X25519 first: cheap, so runs are many; P-256 offered too, so
        // INVALID_KE_PAYLOAD paths are reachable.
        ike_proposals: vec![ProposalSpec {
            transforms: vec![
                transform(TRANSFORM_ENCR, 20, Some(256)),
                transform(TRANSFORM_PRF, 5, None),
                transform(TRANSFORM_KE, 31, None),
                transform(TRANSFORM_KE, 19, None),
            ],
        }],
        child_proposals: vec![ProposalSpec { transforms: child }],
        srcid: None,
        dstid: None,
        ike_lifetime_secs: s.ike_lifetime,
        child_lifetime_secs: s.child_lifetime,
        child_lifetime_bytes: 0,
        auth: AuthSpec::Psk,
    }
}

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
            engine: new_engine(settings, seeded_rng(rng), now),
            addr: IpAddr::V4(addr),
            policies: Vec::new(),
            mode: InitiationMode::Passive,
            ca: AuthService::default(),
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

fn ca_id(request: &Ikev2ToCa) -> u64 {
    match request {
        Ikev2ToCa::Ping { id }
        | Ikev2ToCa::SignAuth { id, .. }
        | Ikev2ToCa::VerifyAuth { id, .. } => *id,
    }
}

fn pfkey_id(request: &Ikev2ToPfkey) -> u64 {
    match request {
        Ikev2ToPfkey::Ping { id }
        | Ikev2ToPfkey::AllocateSpi { id, .. }
        | Ikev2ToPfkey::AddSa { id, .. }
        | Ikev2ToPfkey::UpdateSa { id, .. }
        | Ikev2ToPfkey::DeleteSa { id, .. }
        | Ikev2ToPfkey::AddPolicy { id, .. }
        | Ikev2ToPfkey::DeletePolicy { id, .. }
        | Ikev2ToPfkey::GetCounters { id, .. } => *id,
    }
}

fn failure(c: &mut Choices) -> KernelFailure {
    KernelFailure {
        kind: [
            FailureKind::NotFound,
            FailureKind::NotPermitted,
            FailureKind::Invalid,
            FailureKind::Unsupported,
            FailureKind::AlreadyExists,
            FailureKind::Kernel,
        ][c.below(6)],
        errno: c.below(200) as i32,
        message: "refused by the fuzzer".into(),
    }
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
        let i_policy = policy("ab", INITIATOR, host(RESPONDER), true, s, false);
        let r_policy = if s.wide && !s.both_active {
            policy("ba", RESPONDER, wide, false, s, true)
        } else {
            policy("ba", RESPONDER, host(INITIATOR), s.both_active, s, true)
        };
        for (index, p) in [(1, r_policy), (0, i_policy)] {
            let node = &mut self.nodes[index];
            node.ca
                .set_keys(vec![(p.name.clone(), PreSharedKey::new(PSK.to_vec()))]);
            node.policies = vec![p];
            node.mode = if index == 0 || s.both_active {
                InitiationMode::Active
            } else {
                InitiationMode::Passive
            };
            let (policies, mode) = (node.policies.clone(), node.mode);
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
            Action::Control { .. } | Action::NatKeepalive { .. } => {}
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
                d.len() > mutate::HEADER_LEN && d[16] == 46
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
        let Some(data) = self.reseal(sender, &packet.data) else {
            return Ok(());
        };
        let from = packet.from;
        if self.c.chance(3) {
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

    /// Answers one pending ca or pfkey request: mostly right, sometimes
    /// failed, twice, or never; out of order one time in four.
    fn answer_ipc(&mut self) -> Result<(), Failure> {
        let candidates: Vec<(usize, bool)> = (0..2)
            .flat_map(|i| {
                let n = &self.nodes[i];
                [
                    (!n.ca_pending.is_empty()).then_some((i, true)),
                    (!n.pfkey_pending.is_empty()).then_some((i, false)),
                ]
            })
            .flatten()
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let (index, ca) = candidates[self.c.below(candidates.len())];
        let len = if ca {
            self.nodes[index].ca_pending.len()
        } else {
            self.nodes[index].pfkey_pending.len()
        };
        let at = if self.c.chance(4) {
            self.c.below(len)
        } else {
            0
        };
        // 0 never answered, 1 twice, 2 and 3 failed, 4 wrong content,
        // others right: calm runs fail one answer in 100.
        let mode = self.c.below([100, 30, 12][self.chaos]);
        if mode == 0 {
            // Never answered.
            if ca {
                self.nodes[index].ca_pending.remove(at);
            } else {
                self.nodes[index].pfkey_pending.remove(at);
            }
            return Ok(());
        }
        let twice = mode == 1;
        let fail = mode == 2 || mode == 3;
        if ca {
            let request = self.nodes[index].ca_pending.remove(at);
            let id = ca_id(&request);
            let reply = if fail {
                CaToIkev2::Failed {
                    id,
                    reason: "refused by the fuzzer".into(),
                }
            } else if mode == 4 {
                // A right id with a wrong verdict or garbage AUTH data.
                match request {
                    Ikev2ToCa::VerifyAuth { .. } => CaToIkev2::Verified { id, ok: false },
                    _ => {
                        let mut auth_data = vec![0u8; mutate::edge_length(self.c).min(300)];
                        self.c.fill(&mut auth_data);
                        CaToIkev2::Auth {
                            id,
                            auth_method: [2, 1, 14, 0][self.c.below(4)],
                            auth_data,
                        }
                    }
                }
            } else {
                self.nodes[index].ca.handle(request)
            };
            self.send_ca(index, reply.clone(), true)?;
            if twice {
                self.send_ca(index, reply, false)?;
            }
        } else {
            let request = self.nodes[index].pfkey_pending.remove(at);
            let reply = self.kernel(index, request, fail);
            if let Some(reply) = reply {
                self.send_pfkey(index, reply.clone(), true)?;
                if twice {
                    self.send_pfkey(index, reply, false)?;
                }
            }
        }
        Ok(())
    }

    /// The fake kernel behind pfkey: SPIs from a counter, installs
    /// recorded, counters made up.
    fn kernel(&mut self, index: usize, request: Ikev2ToPfkey, fail: bool) -> Option<PfkeyToIkev2> {
        let id = pfkey_id(&request);
        if fail
            && !matches!(
                request,
                Ikev2ToPfkey::Ping { .. } | Ikev2ToPfkey::GetCounters { .. }
            )
        {
            return Some(PfkeyToIkev2::Failed {
                id,
                failure: failure(self.c),
            });
        }
        let weird = self.c.chance(30);
        let node = &mut self.nodes[index];
        Some(match request {
            Ikev2ToPfkey::Ping { id } => PfkeyToIkev2::Pong { id },
            Ikev2ToPfkey::AllocateSpi { id, min, .. } => {
                node.next_spi = node.next_spi.wrapping_add(1);
                let spi = if weird {
                    // Zero, below the asked range, or one already given.
                    [0, min.saturating_sub(1), node.next_spi.wrapping_sub(1)][self.c.below(3)]
                } else {
                    node.next_spi.max(min)
                };
                PfkeyToIkev2::SpiAllocated { id, spi }
            }
            Ikev2ToPfkey::AddSa { id, sa } | Ikev2ToPfkey::UpdateSa { id, sa } => {
                if sa.id.dst == node.addr && node.installed.len() < 64 {
                    node.installed.push(sa.id);
                }
                PfkeyToIkev2::Done { id }
            }
            Ikev2ToPfkey::DeleteSa { id, sa } => {
                node.installed.retain(|s| *s != sa);
                PfkeyToIkev2::Done { id }
            }
            Ikev2ToPfkey::AddPolicy { id, .. } | Ikev2ToPfkey::DeletePolicy { id, .. } => {
                PfkeyToIkev2::Done { id }
            }
            Ikev2ToPfkey::GetCounters { id, sas } => {
                let counters = sas
                    .into_iter()
                    .map(|sa| {
                        let n = self.c.u64();
                        (
                            sa,
                            (n & 3 != 0).then_some(SaCounters {
                                bytes: n >> 8,
                                packets: n >> 40,
                            }),
                        )
                    })
                    .collect();
                PfkeyToIkev2::Counters { id, counters }
            }
        })
    }

    /// `first`: the first reply to a request the engine made, which it
    /// must take (an error makes the shell exit).
    fn send_ca(&mut self, index: usize, reply: CaToIkev2, first: bool) -> Result<(), Failure> {
        let id = match &reply {
            CaToIkev2::Pong { id }
            | CaToIkev2::Auth { id, .. }
            | CaToIkev2::Verified { id, .. }
            | CaToIkev2::Failed { id, .. } => *id,
        };
        let now = self.now;
        let result = self.nodes[index].engine.handle_ca(now, reply.clone());
        self.executed();
        self.nodes[index].remember_answer(id);
        if let Err(e) = result {
            if first {
                return Err(Failure(format!(
                    "engine {index} refused the first reply to its own ca request {id}: {e} ({reply:?})"
                )));
            }
            self.stats.wire(3);
        }
        self.after(index)
    }

    fn send_pfkey(
        &mut self,
        index: usize,
        reply: PfkeyToIkev2,
        first: bool,
    ) -> Result<(), Failure> {
        let id = match &reply {
            PfkeyToIkev2::Pong { id }
            | PfkeyToIkev2::SpiAllocated { id, .. }
            | PfkeyToIkev2::Done { id }
            | PfkeyToIkev2::Failed { id, .. }
            | PfkeyToIkev2::Counters { id, .. } => Some(*id),
            PfkeyToIkev2::Event(_) => None,
        };
        let now = self.now;
        let text = first.then(|| format!("{reply:?}"));
        let result = self.nodes[index].engine.handle_pfkey(now, reply);
        self.executed();
        if let Some(id) = id {
            self.nodes[index].remember_answer(id);
        }
        if let Err(e) = result {
            if let Some(text) = text {
                return Err(Failure(format!(
                    "engine {index} refused the first reply to its own pfkey request: {e} ({text})"
                )));
            }
            self.stats.wire(3);
        }
        self.after(index)
    }

    /// Replies nobody asked for: a stale id answered again, an id never
    /// used, a reply of the wrong kind for a pending id.
    fn bogus_ipc(&mut self) -> Result<(), Failure> {
        let index = self.c.below(2);
        let node = &self.nodes[index];
        let id = match self.c.below(4) {
            0 if !node.answered.is_empty() => node.answered[self.c.below(node.answered.len())],
            1 => node.highest_id + 1 + self.c.below(4) as u64,
            2 => self.c.u64(),
            _ => {
                // A pending request's id, answered with the wrong kind (it
                // stays pending: its real answer may still come).
                let pending: Vec<u64> = node
                    .ca_pending
                    .iter()
                    .map(ca_id)
                    .chain(node.pfkey_pending.iter().map(pfkey_id))
                    .collect();
                if pending.is_empty() {
                    0
                } else {
                    pending[self.c.below(pending.len())]
                }
            }
        };
        if self.c.chance(2) {
            let reply = match self.c.below(4) {
                0 => CaToIkev2::Verified {
                    id,
                    ok: self.c.chance(2),
                },
                1 => CaToIkev2::Auth {
                    id,
                    auth_method: 2,
                    auth_data: vec![0; 32],
                },
                2 => CaToIkev2::Failed {
                    id,
                    reason: "bogus".into(),
                },
                _ => CaToIkev2::Pong { id },
            };
            let now = self.now;
            let result = self.nodes[index].engine.handle_ca(now, reply);
            self.executed();
            if result.is_err() {
                self.stats.wire(3);
            }
        } else {
            let reply = match self.c.below(5) {
                0 => PfkeyToIkev2::SpiAllocated {
                    id,
                    spi: self.c.u64() as u32,
                },
                1 => PfkeyToIkev2::Done { id },
                2 => PfkeyToIkev2::Failed {
                    id,
                    failure: failure(self.c),
                },
                3 => PfkeyToIkev2::Counters {
                    id,
                    counters: Vec::new(),
                },
                _ => PfkeyToIkev2::Pong { id },
            };
            let now = self.now;
            let result = self.nodes[index].engine.handle_pfkey(now, reply);
            self.executed();
            if result.is_err() {
                self.stats.wire(3);
            }
        }
        // A wrong-kind reply to a pending id consumed the engine's wait:
        // the real answer is now a reply "never made"; forget it.
        let node = &mut self.nodes[index];
        node.ca_pending.retain(|r| ca_id(r) != id);
        node.pfkey_pending.retain(|r| pfkey_id(r) != id);
        self.after(index)
    }

    /// Time passes: to the next deadline, a little, a lot, or not at all.
    fn clock(&mut self) -> Result<(), Failure> {
        let next = self
            .nodes
            .iter()
            .filter_map(|n| n.engine.next_deadline())
            .min();
        let step = match self.c.below(8) {
            0..=3 => next.map_or(Duration::from_secs(1), |t| {
                t.saturating_duration_since(self.now)
            }),
            4 => Duration::from_millis(self.c.below(3000) as u64),
            5 => Duration::from_secs(1 + self.c.below(120) as u64),
            6 => Duration::from_secs(self.c.below(4000) as u64),
            _ => Duration::ZERO,
        };
        self.now += step;
        let now = self.now;
        for index in 0..2 {
            if index == 0 || !self.c.chance(8) {
                self.nodes[index].engine.handle_timeout(now);
                self.executed();
                self.after(index)?;
            }
        }
        Ok(())
    }

    /// ACQUIRE, soft and hard EXPIRE (of a real SA or another), policy expiry.
    fn kernel_event(&mut self) -> Result<(), Failure> {
        let index = self.c.below(2);
        let node = &self.nodes[index];
        let event = match self.c.below(4) {
            0 => {
                let src = IpAddr::V4(Ipv4Addr::new(10, 1 + index as u8, self.c.below(2) as u8, 7));
                let dst = IpAddr::V4(Ipv4Addr::new(10, 2 - index as u8, self.c.below(2) as u8, 9));
                KernelEvent::Acquire {
                    selector: Selector {
                        src,
                        src_prefix: 32,
                        dst,
                        dst_prefix: 32,
                        protocol: 0,
                        src_port: 0,
                        dst_port: 0,
                    },
                    src: node.addr,
                    dst: self.nodes[1 - index].addr,
                    reqid: self.c.below(8) as u32,
                    seq: self.c.below(100) as u32,
                }
            }
            1 | 2 => {
                let sa = if !node.installed.is_empty() && !self.c.chance(5) {
                    node.installed[self.c.below(node.installed.len())]
                } else {
                    SaId {
                        src: self.nodes[1 - index].addr,
                        dst: node.addr,
                        protocol: IpsecProtocol::Esp,
                        spi: self.c.u64() as u32,
                    }
                };
                KernelEvent::Expire {
                    sa,
                    reqid: self.c.below(8) as u32,
                    hard: self.c.chance(3),
                }
            }
            _ => KernelEvent::PolicyExpire {
                selector: flow([1, 0], [2, 0]),
                direction: [
                    PolicyDirection::In,
                    PolicyDirection::Out,
                    PolicyDirection::Fwd,
                ][self.c.below(3)],
                hard: self.c.chance(2),
            },
        };
        self.send_pfkey(index, PfkeyToIkev2::Event(event), false)
    }

    /// `ikectl show sa`, `initiate`, `terminate` (of our policy or another).
    fn control(&mut self) -> Result<(), Failure> {
        let index = self.c.below(2);
        let policy = if self.c.chance(5) {
            "nonexistent".to_string()
        } else {
            self.nodes[index]
                .policies
                .first()
                .map_or_else(String::new, |p| p.name.clone())
        };
        let command = match self.c.below(3) {
            0 => ControlCommand::ShowSa,
            1 => ControlCommand::Initiate { policy },
            _ => ControlCommand::Terminate { policy },
        };
        let node = &mut self.nodes[index];
        let id = node.next_control;
        node.next_control += 1;
        let now = self.now;
        node.engine.handle_control(now, id, command);
        self.executed();
        self.after(index)
    }

    /// `ikectl reload`: the same configuration, a changed one, or none.
    fn reload(&mut self) -> Result<(), Failure> {
        let index = self.c.below(2);
        let mut policies = self.nodes[index].policies.clone();
        match self.c.below(3) {
            0 => {}
            1 => {
                let mut s = self.shape;
                s.ike_lifetime = [0, 90, 900][self.c.below(3)];
                s.child_lifetime = [0, 40, 400][self.c.below(3)];
                if let Some(p) = policies.first_mut() {
                    p.ike_lifetime_secs = s.ike_lifetime;
                    p.child_lifetime_secs = s.child_lifetime;
                }
            }
            _ => policies.clear(),
        }
        let mode = if self.c.chance(4) {
            InitiationMode::Passive
        } else {
            self.nodes[index].mode
        };
        let now = self.now;
        self.nodes[index].engine.set_config(
            now,
            policies,
            mode,
            [0, self.shape.dpd, 10, 30][self.c.below(4)],
        );
        self.executed();
        self.after(index)
    }
}
