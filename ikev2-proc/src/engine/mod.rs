//! The IKEv2 protocol engine (RFC 7296), sans-I/O.
//!
//! The engine is a state machine fed events (a datagram, a timer, a kernel
//! event, an IPC reply, an operator command) with the current time, and it
//! answers with [`Action`]s (send a datagram, ask pfkey or ca, answer the
//! operator) and its next deadline. It does no I/O, reads no clock and draws
//! randomness only from the injected [`RandomSource`], so two engines can talk
//! to each other in a unit test, deterministically, in microseconds.
//!
//! State is kept for scale: IKE SAs in a hash map by our own SPI (the SPI we
//! chose is unique among our SAs and is in every message the peer sends us),
//! half-open responder SAs also by (initiator SPI, peer address) and
//! counted by source address, Child SAs by inbound SPI and counted by
//! policy, timers in a heap. No per-packet scan over all SAs.

mod exchanges;
pub mod proposals;
pub mod selectors;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use iked_common::config::{IdentitySpec, Policy, PolicyInitiation};
use iked_common::crypto::keys::{ChildSaKeys, IkeSaKeys};
use iked_common::crypto::{KeMethod, KeyExchange, RandomSource, SkCipher};
use iked_common::ipc::{
    ControlCommand, ControlReply, IkeSaInfo, Ikev2ToCa, Ikev2ToPfkey, InitiationMode, PfkeyToIkev2,
    MAX_COUNTER_REQUEST,
};
use iked_common::kernel::{IpsecProtocol, SaCounters, SaId, Selector};
use iked_common::logging::{held_back_text, RateLimit};
use iked_common::wire::{Identity, SecurityAssociation};

use proposals::{ChildSuite, IkeSuite};

/// Tunable constants of the protocol machinery.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The IKE port (500) and the NAT-T port (4500, RFC 3948 / RFC 7296 §2.23).
    pub ike_port: u16,
    pub natt_port: u16,
    /// First retransmission after this long, doubling each time (RFC 7296 §2.1).
    pub retransmit_base: Duration,
    /// Transmissions of a request before the peer is declared dead.
    pub retransmit_tries: u32,
    /// A responder's half-open IKE SA is dropped after this long.
    pub half_open_timeout: Duration,
    /// Above this many half-open SAs, IKE_SA_INIT needs a COOKIE (RFC 7296 §2.6).
    pub cookie_threshold: usize,
    /// Above this many, new IKE_SA_INIT requests are dropped.
    pub half_open_cap: usize,
    /// Half-open SAs one source address (an IPv6 /64) may hold before it
    /// must answer a cookie, and again as many made with a valid cookie;
    /// past that its IKE_SA_INIT requests are dropped. Counted after the
    /// cookie check: a spoofed flood cannot fill the cookie-proven share,
    /// so it cannot lock a real address out. Zero: no such limit.
    pub half_open_per_source: usize,
    /// IKE_SA_INIT requests larger than this are refused (RFC 7296 §2: an
    /// implementation MUST accept 1280 octets and SHOULD accept 3000). A
    /// half-open SA keeps its request until IKE_AUTH (it is signed, §2.15),
    /// so this bounds what an unauthenticated sender makes us hold.
    pub max_sa_init_request: usize,
    /// The cookie secret is replaced after this long; cookies of the
    /// previous secret are still accepted (RFC 7296 §2.6), so a cookie
    /// lives one to two of these.
    pub cookie_secret_lifetime: Duration,
    /// Child SAs one IKE SA may hold (raised to the policy's number of
    /// flows if that is larger); a CREATE_CHILD_SA past it gets
    /// NO_ADDITIONAL_SAS (RFC 7296 §1.3). Rekeys may exceed it up to
    /// `REKEY_OVERLAP_FACTOR` times.
    pub max_child_sas_per_ike: usize,
    /// Child SAs all IKE SAs of one policy may hold together.
    pub max_child_sas_per_policy: usize,
    /// An SA replaced by a rekey is deleted locally if the peer has not
    /// deleted it after this long.
    pub rekeyed_grace: Duration,
    /// Retry delay after a rekey refused with TEMPORARY_FAILURE.
    pub rekey_retry: Duration,
    /// NAT-keepalive interval behind a NAT (RFC 3948 §4: 20 s suggested).
    pub nat_keepalive: Duration,
    /// An active policy whose IKE SA was lost (dead peer, failure, the
    /// peer's DELETE) is started again after this long.
    pub restart_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ike_port: 500,
            natt_port: 4500,
            retransmit_base: Duration::from_secs(2),
            retransmit_tries: 5,
            half_open_timeout: Duration::from_secs(30),
            cookie_threshold: 500,
            half_open_cap: 20_000,
            // strongSwan's per-IP default (charon.block_threshold); a real
            // initiator holds one half-open SA for one round trip.
            half_open_per_source: 5,
            // Four times the largest IKE_SA_INIT seen in practice, about
            // 2 KiB (a 1568-octet ML-KEM-1024 or 1024-octet MODP-8192 KE,
            // long proposal lists, vendor IDs). At the 20,000 cap that is
            // at most 160 MiB of requests, not 1.3 GiB at 64 KiB.
            max_sa_init_request: 8 * 1024,
            // Covers an initiator's whole retransmission schedule of a
            // cookie'd request (2+4+8+16+32 s) without a new cookie; a
            // harvested cookie is dead within four minutes.
            cookie_secret_lifetime: Duration::from_secs(120),
            max_child_sas_per_ike: iked_common::limits::MAX_CHILD_SAS_PER_IKE_SA,
            max_child_sas_per_policy: iked_common::limits::MAX_CHILD_SAS_PER_POLICY,
            rekeyed_grace: Duration::from_secs(30),
            rekey_retry: Duration::from_secs(10),
            nat_keepalive: Duration::from_secs(20),
            restart_delay: Duration::from_secs(30),
        }
    }
}

/// What the engine asks the process shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send an IKE message from `local` to `remote`. The shell adds the
    /// four-octet non-ESP marker when `local` is on the NAT-T port
    /// (RFC 3948 §2.2) and picks the socket of that port and family.
    Send {
        local: SocketAddr,
        remote: SocketAddr,
        datagram: Vec<u8>,
    },
    /// Send a NAT-keepalive (one 0xff octet, no marker, RFC 3948 §2.3)
    /// from `local` (the NAT-T port) to `remote`.
    NatKeepalive {
        local: SocketAddr,
        remote: SocketAddr,
    },
    Pfkey(Ikev2ToPfkey),
    Ca(Ikev2ToCa),
    /// The answer to an operator's command.
    Control {
        id: u64,
        reply: ControlReply,
    },
}

/// Chooses the local address to initiate from when the policy names none
/// (the shell does a route lookup); None leaves it to the kernel.
pub type LocalAddressResolver = Box<dyn FnMut(IpAddr) -> Option<IpAddr>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IkeState {
    /// Initiator: IKE_SA_INIT sent.
    InitSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    InitDone,
    /// Initiator: preparing IKE_AUTH (SPI from pfkey, AUTH from ca).
    AuthPreparing,
    /// Initiator: IKE_AUTH sent, or its answer being checked.
    AuthSent,
    /// Responder: checking an IKE_AUTH request.
    AuthResponding,
    Established,
    /// Replaced by a rekeyed IKE SA; waiting for the DELETE.
    Rekeyed,
    /// DELETE sent.
    Deleting,
}

impl IkeState {
    fn text(self) -> &'static str {
        match self {
            IkeState::InitSent => "SA_INIT sent",
            IkeState::InitDone => "SA_INIT answered",
            IkeState::AuthPreparing => "AUTH preparing",
            IkeState::AuthSent => "AUTH sent",
            IkeState::AuthResponding => "AUTH checking",
            IkeState::Established => "established",
            IkeState::Rekeyed => "rekeyed",
            IkeState::Deleting => "deleting",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildState {
    Established,
    Rekeying,
    /// Replaced by a rekeyed Child SA; waiting for the DELETE exchange.
    Rekeyed,
    Deleting,
}

/// A Child SA being negotiated by us (we send the request).
pub(crate) struct ChildDraft {
    pub spi_in: u32,
    pub reqid: u32,
    pub flow: Selector,
    pub flow_index: usize,
    pub transport: bool,
    pub nonce: Vec<u8>,
    pub kex: Option<KeyExchange>,
    pub offered: SecurityAssociation,
    pub rekey_of: Option<u32>,
}

/// Work an IKE SA has to do as the requester, one at a time (window 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Task {
    CreateChild { flow_index: usize },
    RekeyChild { spi_in: u32 },
    RekeyIke,
    DeleteChildren { spis: Vec<u32> },
    DeleteIke,
    Dpd,
}

/// What our outstanding request was, to process its response.
pub(crate) enum RequestCtx {
    SaInit,
    Auth {
        child: Option<ChildDraft>,
    },
    CreateChild {
        child: ChildDraft,
    },
    RekeyIke {
        new_spi: u64,
        nonce: Vec<u8>,
        kex: KeyExchange,
        offered: SecurityAssociation,
    },
    DeleteChildren {
        spis: Vec<u32>,
    },
    DeleteIke,
    Dpd,
}

pub(crate) struct Outstanding {
    pub message_id: u32,
    pub datagram: Vec<u8>,
    pub transmissions: u32,
    pub deadline: Instant,
    pub ctx: RequestCtx,
}

/// A request of ours being prepared (waiting for pfkey or ca).
pub(crate) enum Prep {
    /// Initiator's IKE_AUTH: SPI then AUTH.
    Auth {
        child: Option<ChildDraft>,
        id_body: Vec<u8>,
    },
    CreateChild {
        flow_index: usize,
        rekey_of: Option<u32>,
    },
}

/// A peer's request being answered (waiting for pfkey or ca).
pub(crate) struct Answer {
    pub message_id: u32,
    pub kind: AnswerKind,
}

pub(crate) enum AnswerKind {
    /// Responder's IKE_AUTH.
    Auth(Box<AuthAnswer>),
    /// CREATE_CHILD_SA for a new or rekeyed Child SA.
    Child(Box<ChildAnswer>),
}

pub(crate) struct AuthAnswer {
    pub peer_id: Identity,
    pub initial_contact: bool,
    pub transport: bool,
    /// What the peer offered for the Child SA, looked at only once its
    /// AUTH is verified (then taken).
    pub child_offer: Option<ChildOffer>,
    /// The negotiated child: (accepted proposal, suite, narrowed flow, flow
    /// index), or the error; None until the peer's AUTH is verified.
    #[allow(clippy::type_complexity)]
    pub child: Option<
        Result<
            (iked_common::wire::Proposal, ChildSuite, Selector, usize),
            iked_common::wire::NotifyType,
        >,
    >,
    pub spi_in: Option<u32>,
    pub reqid: u32,
    pub id_body: Vec<u8>,
}

/// A peer's Child SA offer in IKE_AUTH: SA, TSi, TSr (RFC 7296 §1.2).
pub(crate) struct ChildOffer {
    pub sa: SecurityAssociation,
    pub tsi: Vec<iked_common::wire::TrafficSelector>,
    pub tsr: Vec<iked_common::wire::TrafficSelector>,
    pub transport_requested: bool,
}

pub(crate) struct ChildAnswer {
    pub proposal: iked_common::wire::Proposal,
    pub suite: ChildSuite,
    pub flow: Selector,
    pub flow_index: usize,
    pub transport: bool,
    pub peer_nonce: Vec<u8>,
    pub peer_ke: Option<Vec<u8>>,
    pub rekey_of: Option<u32>,
    pub reqid: u32,
}

/// Initiator state awaiting ca's verdict on the responder's AUTH.
pub(crate) struct AuthCheck {
    pub message: Vec<iked_common::wire::Payload>,
    pub child: Option<ChildDraft>,
}

/// One IKE SA.
pub(crate) struct IkeSa {
    pub spi_i: u64,
    pub spi_r: u64,
    pub initiator: bool,
    pub policy: String,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub state: IkeState,
    pub suite: Option<IkeSuite>,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub kex: Option<KeyExchange>,
    pub ke_method: Option<KeMethod>,
    pub offered: Option<SecurityAssociation>,
    /// Responder: the IKE proposal accepted in IKE_SA_INIT.
    pub accepted_ike: Option<iked_common::wire::Proposal>,
    pub cookie: Option<Vec<u8>>,
    pub init_request: Vec<u8>,
    pub init_response: Vec<u8>,
    pub keys: Option<IkeSaKeys>,
    pub out_cipher: Option<SkCipher>,
    pub in_cipher: Option<SkCipher>,
    pub local_id: Identity,
    pub peer_id: Option<Identity>,
    /// NAT-T in use: IKE on the NAT-T port, ESP in UDP (RFC 7296 §2.23).
    pub natt: bool,
    pub nat_detected: bool,
    /// Our own side is behind a NAT: we send NAT-keepalives.
    pub behind_nat: bool,
    pub next_message_id: u32,
    pub expected_message_id: u32,
    pub outstanding: Option<Outstanding>,
    pub prep: Option<Prep>,
    pub queue: VecDeque<Task>,
    /// Last response sent: (message ID, datagram), for retransmitted requests.
    pub cached_response: Option<(u32, Vec<u8>)>,
    pub answering: Option<Answer>,
    pub auth_check: Option<AuthCheck>,
    pub children: Vec<u32>,
    pub established: Option<Instant>,
    pub rekey_at: Option<Instant>,
    pub delete_at: Option<Instant>,
    pub last_heard: Instant,
    pub last_sent: Instant,
    /// When this SA's first exchange began (INITIAL_CONTACT staleness).
    pub created: Instant,
    pub scheduled: Option<Instant>,
    /// Flow of the first Child SA (ACQUIRE or the policy's first flow).
    pub first_flow: usize,
    /// Collision bookkeeping for IKE SA rekeys (RFC 7296 §2.8.1):
    /// the SA the peer created by rekeying this one while ours was pending.
    pub peer_rekey: Option<(u64, Vec<u8>)>,
    /// The responder's key in `by_init`.
    pub half_open_key: Option<(u64, SocketAddr)>,
    /// Counted in the half-open total (responder, not yet established).
    pub half_open: bool,
    /// Its IKE_SA_INIT carried a valid cookie: counted in the
    /// cookie-proven share of its source address.
    pub half_open_cookie: bool,
    /// The IKE SA that replaced this one by rekeying.
    pub successor: Option<u64>,
    /// Deleted on purpose (operator, reload): do not start the policy again.
    pub no_restart: bool,
    /// PFS group a peer asked for with INVALID_KE_PAYLOAD (RFC 7296 §1.3).
    pub child_ke_hint: Option<KeMethod>,
    /// KE group a peer asked for when we rekeyed this IKE SA.
    pub rekey_ke_hint: Option<KeMethod>,
}

/// One Child SA (a pair of ESP SAs).
pub(crate) struct ChildSa {
    pub ike: u64,
    /// Its IKE SA's policy, under which it is counted (`children_by_policy`).
    pub policy: String,
    pub spi_in: u32,
    pub spi_out: u32,
    pub reqid: u32,
    pub flow: Selector,
    pub flow_index: usize,
    pub transport: bool,
    pub suite: ChildSuite,
    pub keys: ChildSaKeys,
    /// We were the initiator of the exchange that created it (§2.17 key order).
    pub we_initiated: bool,
    pub state: ChildState,
    /// Both ESP SAs are in the kernel.
    pub installed: bool,
    pub install_failed: bool,
    pub pending_sa_installs: u8,
    /// This Child SA holds the flow's kernel policies (passed on at rekey).
    /// The flow's outbound policy is a trap installed at config time: the
    /// Child SA adds and removes only its inbound policies.
    pub trap_out: bool,
    pub established: Instant,
    pub rekey_at: Option<Instant>,
    /// The lowest nonce of the exchange that created it (§2.8.1 collisions).
    pub min_nonce: Vec<u8>,
    /// Set on the old SA when the peer rekeyed it while our rekey was pending.
    pub peer_rekey: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Inbound SPI for the child of the request we prepare.
    RequestSpi,
    /// Our AUTH for IKE_AUTH (initiator).
    RequestSign,
    /// Check of the responder's AUTH (initiator).
    VerifyResponder,
    /// Check of the initiator's AUTH (responder).
    VerifyInitiator,
    /// Inbound SPI for the child of the answer we prepare.
    AnswerSpi,
    /// Our AUTH for the IKE_AUTH response.
    AnswerSign,
    /// An SA install for a Child SA (by inbound SPI).
    InstallSa { child: u32 },
    /// A policy install, a delete: only the outcome is logged.
    Other,
}

/// The IKEv2 engine.
pub struct Engine {
    settings: Settings,
    rng: Box<dyn RandomSource>,
    now: Instant,
    policies: Vec<Policy>,
    mode: InitiationMode,
    dpd_interval: Option<Duration>,
    ikes: HashMap<u64, IkeSa>,
    /// Responder SAs by (initiator SPI, peer address of IKE_SA_INIT), for
    /// the life of the SA: retransmitted IKE_SA_INIT requests find them.
    by_init: HashMap<(u64, SocketAddr), u64>,
    /// Responder SAs not yet authenticated (cookie threshold, cap).
    half_open: usize,
    /// The same by source address (IPv6: by /64), for the per-source limit.
    half_open_by_source: HashMap<IpAddr, SourceCount>,
    by_policy: HashMap<String, HashSet<u64>>,
    /// Established IKE SAs by (policy, peer identity), for INITIAL_CONTACT.
    by_identity: HashMap<(String, Identity), HashSet<u64>>,
    children: HashMap<u32, ChildSa>,
    /// Child SAs (any state) of each policy, for its cap.
    children_by_policy: HashMap<String, usize>,
    waits: HashMap<u64, (u64, Wait)>,
    next_ipc_id: u64,
    next_reqid: u32,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    actions: VecDeque<Action>,
    cookie_secrets: CookieSecrets,
    resolver: Option<LocalAddressResolver>,
    /// Outbound "trap" policies of active policies, by (policy, flow
    /// index): traffic hitting one without an SA makes the kernel send an
    /// ACQUIRE. Child SAs of that flow use the trap's reqid.
    traps: HashMap<(String, usize), Trap>,
    /// Active policies to start again: (when, policy name).
    restarts: Vec<(Instant, String)>,
    /// Which Child SA holds each kernel policy we installed; when it goes,
    /// another Child SA of the same flow inherits the policy.
    policy_owner: HashMap<(Selector, iked_common::kernel::PolicyDirection), u32>,
    /// Child SAs by flow (narrowed selector), for that inheritance.
    flow_children: HashMap<Selector, HashSet<u32>>,
    /// `show sa` requests waiting for counters, by the pfkey request id.
    counter_queries: HashMap<u64, CounterQuery>,
    expired_counter_ids: VecDeque<u64>,
    /// Lines about unauthenticated requests (no proposal chosen, a wrong
    /// KE group) that anyone can repeat at line rate from forged
    /// addresses: rate-limited, so the log cannot be flooded.
    unauthenticated_log: RateLimit,
    /// Tests only: draw key-exchange private keys from this counter instead
    /// of OpenSSL's generator, so that seeded runs are byte for byte
    /// reproducible (the datagram digest test).
    #[cfg(test)]
    test_ke_stream: Option<u64>,
}

/// Log lines about unauthenticated requests: at most this many a second.
const UNAUTHENTICATED_LOG_BURST: u32 = 5;

/// How long `show sa` waits for pfkey's counters before answering without.
pub(crate) const COUNTERS_TIMEOUT: Duration = Duration::from_secs(2);

/// Counter reads that timed out, remembered so their late answers are not
/// taken for replies to requests never made.
const EXPIRED_COUNTER_IDS: usize = 64;

/// At most this many `show sa` wait for counters at once (each holds its
/// list); more are answered at once without counters.
const MAX_COUNTER_QUERIES: usize = 16;

/// A `show sa` waiting for the kernel's counters.
pub(crate) struct CounterQuery {
    /// The control request to answer.
    control_id: u64,
    deadline: Instant,
    /// The SA list as it was when asked, filled in when the counters come.
    list: Vec<IkeSaInfo>,
    /// How many IKE SAs there were (the list may be cut to the size limit).
    total: u64,
    /// Each listed Child SA's kernel SAs, by its inbound SPI text:
    /// (inbound, outbound).
    sas: HashMap<String, (SaId, SaId)>,
}

pub(crate) struct Trap {
    pub reqid: u32,
    pub policy: iked_common::kernel::PolicyParams,
}

/// Half-open SAs of one source address.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SourceCount {
    /// All of them.
    pub total: usize,
    /// Those whose IKE_SA_INIT carried a valid cookie.
    pub with_cookie: usize,
}

/// A cookie secret (RFC 7296 §2.6), zeroed when dropped.
pub(crate) type CookieSecret = zeroize::Zeroizing<[u8; 32]>;

/// The cookie secrets: the current one, which makes new cookies, and the
/// one before it, still accepted so that a cookie made just before a
/// rotation works. The first octet of a cookie is its secret's version.
pub(crate) struct CookieSecrets {
    pub version: u8,
    pub current: CookieSecret,
    pub previous: Option<CookieSecret>,
    /// When `current` is to be replaced.
    pub rotate_at: Instant,
}

impl Engine {
    /// A new engine. Fails only if the random source fails: without
    /// randomness there is no safe cookie secret, SPI or nonce, so the
    /// daemon must not run.
    pub fn new(
        settings: Settings,
        mut rng: Box<dyn RandomSource>,
        now: Instant,
    ) -> Result<Engine, iked_common::crypto::CryptoError> {
        let mut current = CookieSecret::new([0u8; 32]);
        rng.fill(current.as_mut())?;
        let cookie_secrets = CookieSecrets {
            version: 1,
            current,
            previous: None,
            rotate_at: now + settings.cookie_secret_lifetime,
        };
        Ok(Engine {
            settings,
            rng,
            now,
            policies: Vec::new(),
            mode: InitiationMode::Passive,
            dpd_interval: None,
            ikes: HashMap::new(),
            by_init: HashMap::new(),
            half_open: 0,
            half_open_by_source: HashMap::new(),
            by_policy: HashMap::new(),
            by_identity: HashMap::new(),
            children: HashMap::new(),
            children_by_policy: HashMap::new(),
            waits: HashMap::new(),
            next_ipc_id: 1,
            next_reqid: 1,
            timers: BinaryHeap::new(),
            actions: VecDeque::new(),
            cookie_secrets,
            resolver: None,
            traps: HashMap::new(),
            restarts: Vec::new(),
            policy_owner: HashMap::new(),
            flow_children: HashMap::new(),
            counter_queries: HashMap::new(),
            expired_counter_ids: VecDeque::new(),
            unauthenticated_log: RateLimit::new(UNAUTHENTICATED_LOG_BURST, Duration::from_secs(1)),
            #[cfg(test)]
            test_ke_stream: None,
        })
    }

    /// Sets the route lookup used when a policy names no local address.
    pub fn set_local_address_resolver(&mut self, resolver: LocalAddressResolver) {
        self.resolver = Some(resolver);
    }

    /// The next action for the shell, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// All pending actions.
    pub fn drain_actions(&mut self) -> Vec<Action> {
        self.actions.drain(..).collect()
    }

    /// When [`Engine::handle_timeout`] should next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let restart = self.restarts.iter().map(|(at, _)| *at).min();
        let counters = self.counter_queries.values().map(|q| q.deadline).min();
        [timer, restart, counters].into_iter().flatten().min()
    }

    /// Whether a policy has an IKE SA that is not going away.
    fn has_live_sa(&self, policy: &str) -> bool {
        self.by_policy.get(policy).is_some_and(|set| {
            set.iter().any(|spi| {
                self.ikes
                    .get(spi)
                    .is_some_and(|sa| !matches!(sa.state, IkeState::Deleting | IkeState::Rekeyed))
            })
        })
    }

    /// Starts again the active policies whose restart is due.
    fn run_restarts(&mut self) {
        let now = self.now;
        let due: Vec<String> = self
            .restarts
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, name)| name.clone())
            .collect();
        self.restarts.retain(|(at, _)| *at > now);
        for name in due {
            let still_active = self.mode == InitiationMode::Active
                && self
                    .policy(&name)
                    .is_some_and(|p| p.initiation == PolicyInitiation::Active);
            if still_active && !self.has_live_sa(&name) {
                log::info!("policy {name}: starting again");
                if let Err(e) = self.initiate(&name, None, 0) {
                    log::warn!("policy {name}: cannot initiate: {e}");
                }
            }
        }
    }

    /// After an IKE SA of `policy` went away: start the policy again later
    /// if it is active and has no IKE SA left.
    pub(crate) fn plan_restart(&mut self, policy: &str) {
        let active = self.mode == InitiationMode::Active
            && self
                .policy(policy)
                .is_some_and(|p| p.initiation == PolicyInitiation::Active);
        if active
            && !self.has_live_sa(policy)
            && !self.restarts.iter().any(|(_, name)| name == policy)
        {
            let at = self.now + self.settings.restart_delay;
            self.restarts.push((at, policy.to_string()));
        }
    }

    /// Number of IKE SAs (any state).
    pub fn ike_sa_count(&self) -> usize {
        self.ikes.len()
    }

    /// Number of Child SAs.
    pub fn child_sa_count(&self) -> usize {
        self.children.len()
    }

    /// A new configuration (RFC-independent: `iked.conf` reload). SAs of
    /// policies that are unchanged stay up; SAs of removed or changed
    /// policies are deleted; active policies without an SA are started.
    pub fn set_config(
        &mut self,
        now: Instant,
        policies: Vec<Policy>,
        mode: InitiationMode,
        dpd_check_interval: u32,
    ) {
        self.now = now;
        let old: HashMap<String, Policy> = self
            .policies
            .drain(..)
            .map(|p| (p.name.clone(), p))
            .collect();
        for (name, old_policy) in &old {
            let unchanged = policies.iter().any(|p| p == old_policy);
            if !unchanged {
                let spis: Vec<u64> = self
                    .by_policy
                    .get(name)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                if !spis.is_empty() {
                    log::info!(
                        "policy {name} changed or removed: deleting its {} IKE SA(s)",
                        spis.len()
                    );
                }
                for spi in spis {
                    // A changed policy is started afresh below, not later.
                    if let Some(sa) = self.ikes.get_mut(&spi) {
                        sa.no_restart = true;
                    }
                    self.request_delete_ike(spi);
                }
            }
        }
        self.policies = policies;
        self.mode = mode;
        self.sync_traps();
        self.dpd_interval =
            (dpd_check_interval > 0).then(|| Duration::from_secs(u64::from(dpd_check_interval)));
        if mode == InitiationMode::Active {
            let names: Vec<String> = self
                .policies
                .iter()
                .filter(|p| p.initiation == PolicyInitiation::Active)
                .map(|p| p.name.clone())
                .collect();
            for name in names {
                // SAs being deleted (changed policy) do not count.
                let has_sa = self.by_policy.get(&name).is_some_and(|s| {
                    s.iter().any(|spi| {
                        self.ikes
                            .get(spi)
                            .is_some_and(|sa| sa.state != IkeState::Deleting)
                    })
                });
                if !has_sa {
                    if let Err(e) = self.initiate(&name, None, 0) {
                        log::warn!("policy {name}: cannot initiate: {e}");
                    }
                }
            }
        }
    }

    /// An operator's command (`ikectl show sa|initiate|terminate`).
    pub fn handle_control(&mut self, now: Instant, id: u64, command: ControlCommand) {
        self.now = now;
        let reply = match command {
            ControlCommand::ShowSa => {
                let (list, total) = self.show_sa_capped();
                match self.ask_counters(id, list, total) {
                    Ok(()) => return,
                    Err(list) => ControlReply::SaList { sas: list, total },
                }
            }
            ControlCommand::Initiate { policy } => {
                if !self.policies.iter().any(|p| p.name == policy) {
                    ControlReply::Failed(format!("no policy named {policy}"))
                } else if self.by_policy.get(&policy).is_some_and(|s| {
                    s.iter().any(|spi| {
                        self.ikes.get(spi).is_some_and(|sa| {
                            !matches!(sa.state, IkeState::Rekeyed | IkeState::Deleting)
                        })
                    })
                }) {
                    ControlReply::Done(format!("policy {policy} already has an IKE SA"))
                } else {
                    match self.initiate(&policy, None, 0) {
                        Ok(()) => ControlReply::Done(format!("initiating policy {policy}")),
                        Err(e) => ControlReply::Failed(e),
                    }
                }
            }
            ControlCommand::Terminate { policy } => {
                let spis: Vec<u64> = self
                    .by_policy
                    .get(&policy)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                if spis.is_empty() {
                    ControlReply::Failed(format!("policy {policy} has no IKE SA"))
                } else {
                    for spi in &spis {
                        if let Some(sa) = self.ikes.get_mut(spi) {
                            sa.no_restart = true;
                        }
                        self.request_delete_ike(*spi);
                    }
                    self.restarts.retain(|(_, name)| *name != policy);
                    ControlReply::Done(format!(
                        "terminating {} IKE SA(s) of policy {policy}",
                        spis.len()
                    ))
                }
            }
        };
        self.actions.push_back(Action::Control { id, reply });
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        // Take what is due first, then serve each SA once: whatever the
        // service schedules anew waits for the next call, so a deadline
        // that stays in the past cannot spin here.
        let mut due = Vec::new();
        let mut seen = HashSet::new();
        while let Some(Reverse((at, spi))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(sa) = self.ikes.get_mut(&spi) {
                if sa.scheduled == Some(at) {
                    sa.scheduled = None;
                }
                if seen.insert(spi) {
                    due.push(spi);
                }
            }
        }
        for spi in due {
            self.service(spi);
        }
        self.run_restarts();
        self.expire_counter_queries();
    }

    /// Asks pfkey for the counters of the installed Child SAs in `list`;
    /// the control request is answered when they come. Gives the list back
    /// when there is nothing to ask.
    fn ask_counters(
        &mut self,
        control_id: u64,
        list: Vec<IkeSaInfo>,
        total: u64,
    ) -> Result<(), Vec<IkeSaInfo>> {
        if self.counter_queries.len() >= MAX_COUNTER_QUERIES {
            log::warn!(
                "show sa: {MAX_COUNTER_QUERIES} lists already wait for counters; listed without"
            );
            return Err(list);
        }
        let mut sas = HashMap::new();
        let mut ids = Vec::new();
        for info in &list {
            for child in info.children.iter().filter(|c| c.installed) {
                if ids.len() + 2 > MAX_COUNTER_REQUEST {
                    break;
                }
                let Some(pair) = u32::from_str_radix(&child.spi_in, 16)
                    .ok()
                    .and_then(|spi| self.child_sa_ids(spi))
                else {
                    continue;
                };
                if sas.insert(child.spi_in.clone(), pair).is_none() {
                    ids.extend([pair.0, pair.1]);
                }
            }
        }
        if ids.is_empty() {
            return Err(list);
        }
        let id = self.ipc_id();
        self.counter_queries.insert(
            id,
            CounterQuery {
                control_id,
                deadline: self.now + COUNTERS_TIMEOUT,
                list,
                total,
                sas,
            },
        );
        self.actions
            .push_back(Action::Pfkey(Ikev2ToPfkey::GetCounters { id, sas: ids }));
        Ok(())
    }

    /// The kernel SAs of a Child SA: (inbound, outbound), addressed as
    /// they were installed.
    fn child_sa_ids(&self, spi_in: u32) -> Option<(SaId, SaId)> {
        let child = self.children.get(&spi_in)?;
        let ike = self.ikes.get(&child.ike)?;
        let (local, peer) = (ike.local.ip(), ike.peer.ip());
        let sa = |src, dst, spi| SaId {
            src,
            dst,
            protocol: IpsecProtocol::Esp,
            spi,
        };
        Some((
            sa(peer, local, child.spi_in),
            sa(local, peer, child.spi_out),
        ))
    }

    /// Answers a waiting `show sa` with whatever counters came (None each
    /// when pfkey failed or was too slow).
    fn answer_counter_query(
        &mut self,
        query: CounterQuery,
        counters: &[(SaId, Option<SaCounters>)],
    ) {
        let by_sa: HashMap<SaId, SaCounters> = counters
            .iter()
            .filter_map(|(sa, c)| c.map(|c| (*sa, c)))
            .collect();
        let mut list = query.list;
        for child in list.iter_mut().flat_map(|info| info.children.iter_mut()) {
            if let Some((inbound, outbound)) = query.sas.get(&child.spi_in) {
                child.bytes_in = by_sa.get(inbound).map(|c| c.bytes);
                child.bytes_out = by_sa.get(outbound).map(|c| c.bytes);
            }
        }
        self.actions.push_back(Action::Control {
            id: query.control_id,
            reply: ControlReply::SaList {
                sas: list,
                total: query.total,
            },
        });
    }

    fn expire_counter_queries(&mut self) {
        let now = self.now;
        let due: Vec<u64> = self
            .counter_queries
            .iter()
            .filter(|(_, q)| q.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(query) = self.counter_queries.remove(&id) {
                log::warn!("show sa: pfkey did not send the counters in time; listed without");
                if self.expired_counter_ids.len() >= EXPIRED_COUNTER_IDS {
                    self.expired_counter_ids.pop_front();
                }
                self.expired_counter_ids.push_back(id);
                self.answer_counter_query(query, &[]);
            }
        }
    }

    /// Takes pfkey's answers to counter reads; gives back any other
    /// message. An answer to a read never made is an error, as for every
    /// pfkey reply.
    pub(crate) fn take_counter_reply(
        &mut self,
        message: PfkeyToIkev2,
    ) -> Result<Option<PfkeyToIkev2>, String> {
        let (id, counters) = match message {
            PfkeyToIkev2::Counters { id, counters } => (id, counters),
            PfkeyToIkev2::Failed { id, failure } if self.counter_queries.contains_key(&id) => {
                log::warn!("show sa: cannot read counters: {failure}");
                (id, Vec::new())
            }
            other => return Ok(Some(other)),
        };
        match self.counter_queries.remove(&id) {
            Some(query) => self.answer_counter_query(query, &counters),
            None if self.expired_counter_ids.contains(&id) => {
                log::debug!("show sa: counters {id} came after the list was sent")
            }
            None => return Err(format!("counters for request {id}, which was never made")),
        }
        Ok(None)
    }

    /// An info line about an unauthenticated request, rate-limited; the
    /// next line that goes out counts those held back.
    fn log_unauthenticated(&mut self, line: std::fmt::Arguments<'_>) {
        if let Some(held_back) = self.unauthenticated_log.allow(self.now) {
            log::info!("{line}{}", held_back_text(held_back));
        }
    }

    fn ipc_id(&mut self) -> u64 {
        let id = self.next_ipc_id;
        self.next_ipc_id = self.next_ipc_id.wrapping_add(1).max(1);
        id
    }

    fn ask_pfkey(&mut self, ike: u64, wait: Wait, build: impl FnOnce(u64) -> Ikev2ToPfkey) {
        let id = self.ipc_id();
        self.waits.insert(id, (ike, wait));
        self.actions.push_back(Action::Pfkey(build(id)));
    }

    fn ask_ca(&mut self, ike: u64, wait: Wait, build: impl FnOnce(u64) -> Ikev2ToCa) {
        let id = self.ipc_id();
        self.waits.insert(id, (ike, wait));
        self.actions.push_back(Action::Ca(build(id)));
    }

    /// Random bytes, or the random source's failure: never zeros in
    /// their place (a nonce or SPI nobody drew is worse than no exchange).
    fn random_bytes(&mut self, len: usize) -> Result<Vec<u8>, iked_common::crypto::CryptoError> {
        let mut bytes = vec![0u8; len];
        self.rng.fill(&mut bytes).inspect_err(|e| {
            log::error!("cannot draw {len} random octets: {e}");
        })?;
        Ok(bytes)
    }

    fn random_u64(&mut self) -> Result<u64, iked_common::crypto::CryptoError> {
        let mut bytes = [0u8; 8];
        self.rng.fill(&mut bytes).inspect_err(|e| {
            log::error!("cannot draw a random number: {e}");
        })?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// A fresh ephemeral key pair for `method`.
    fn new_key_exchange(
        &mut self,
        method: KeMethod,
    ) -> Result<KeyExchange, iked_common::crypto::CryptoError> {
        #[cfg(test)]
        if let Some(stream) = self.test_ke_stream.as_mut() {
            return KeyExchange::from_private_key(method, &test_private_key(stream, method));
        }
        KeyExchange::generate(method)
    }

    /// Responder side of a key exchange: our public value and the shared
    /// secret from the peer's public value.
    fn respond_key_exchange(
        &mut self,
        method: KeMethod,
        peer_public: &[u8],
    ) -> Result<(Vec<u8>, iked_common::crypto::SecretBytes), iked_common::crypto::CryptoError> {
        let ours = self.new_key_exchange(method)?;
        let shared = ours.complete(peer_public)?;
        Ok((ours.public_value().to_vec(), shared))
    }

    /// A fresh SPI of ours, never zero and not in use. A collision among
    /// 64-bit random SPIs is rare; several in a row mean the random source
    /// repeats itself, which is a failure too (never a loop forever).
    fn new_ike_spi(&mut self) -> Result<u64, iked_common::crypto::CryptoError> {
        for _ in 0..8 {
            let spi = self.random_u64()?;
            if spi != 0 && !self.ikes.contains_key(&spi) {
                return Ok(spi);
            }
        }
        log::error!("random source failed: it keeps drawing SPIs in use");
        Err(iked_common::crypto::CryptoError::Random)
    }

    /// Counts a new half-open responder SA from `source`.
    fn count_half_open(&mut self, source: IpAddr, with_cookie: bool) {
        self.half_open += 1;
        let count = self
            .half_open_by_source
            .entry(source_key(source))
            .or_default();
        count.total += 1;
        if with_cookie {
            count.with_cookie += 1;
        }
    }

    /// Takes an SA out of the half-open counts (it was authenticated or is
    /// gone); does nothing if it was not counted.
    fn uncount_half_open(&mut self, record: HalfOpenRecord) {
        let HalfOpenRecord {
            counted,
            source,
            with_cookie,
        } = record;
        if !counted {
            return;
        }
        self.half_open = self.half_open.saturating_sub(1);
        let Some(source) = source else {
            return;
        };
        let key = source_key(source);
        if let Some(count) = self.half_open_by_source.get_mut(&key) {
            count.total = count.total.saturating_sub(1);
            if with_cookie {
                count.with_cookie = count.with_cookie.saturating_sub(1);
            }
            if count.total == 0 {
                self.half_open_by_source.remove(&key);
            }
        }
    }

    /// The half-open SAs of a source address.
    fn half_open_of(&self, source: IpAddr) -> SourceCount {
        self.half_open_by_source
            .get(&source_key(source))
            .copied()
            .unwrap_or_default()
    }

    /// The cookie secrets as of now: replaced when their time is up. After
    /// two lifetimes without use both are stale and both are replaced, so
    /// a cookie is never accepted much past two lifetimes.
    fn rotate_cookie_secrets(&mut self) {
        let now = self.now;
        let lifetime = self.settings.cookie_secret_lifetime;
        if now < self.cookie_secrets.rotate_at {
            return;
        }
        let mut fresh = CookieSecret::new([0u8; 32]);
        if let Err(e) = self.rng.fill(fresh.as_mut()) {
            // Keep the (random) secrets we have; try again next time.
            log::error!("cannot replace the cookie secret: {e}");
            return;
        }
        let secrets = &mut self.cookie_secrets;
        // Rotations keep to their schedule however late they are applied:
        // a secret is current for one lifetime, then previous for one.
        let stale = now.saturating_duration_since(secrets.rotate_at) >= lifetime;
        let old = std::mem::replace(&mut secrets.current, fresh);
        secrets.previous = (!stale).then_some(old);
        // Versions 0..=255 wrap; only two are live at once.
        secrets.version = secrets.version.wrapping_add(1);
        secrets.rotate_at = if stale {
            now + lifetime
        } else {
            secrets.rotate_at + lifetime
        };
        log::debug!("cookie secret replaced (version {})", secrets.version);
    }

    /// The secret of a cookie version, if it is the current or previous one.
    fn cookie_secret_of(&self, version: u8) -> Option<&CookieSecret> {
        let secrets = &self.cookie_secrets;
        if version == secrets.version {
            Some(&secrets.current)
        } else if version == secrets.version.wrapping_sub(1) {
            secrets.previous.as_ref()
        } else {
            None
        }
    }

    /// How many Child SAs an IKE SA of `policy` may hold: the setting, or
    /// the policy's number of flows if larger (each flow gets its own).
    fn child_cap_per_ike(&self, policy: &str) -> usize {
        let flows = self.policy(policy).map_or(0, |p| p.flows.len());
        self.settings.max_child_sas_per_ike.max(flows)
    }

    /// Whether IKE SA `spi` may get one more Child SA: None if so, else why
    /// not. A rekey replaces an SA, so it may go past the caps, but only
    /// up to `REKEY_OVERLAP_FACTOR` times them.
    fn child_cap_reached(&self, spi: u64, rekey: bool) -> Option<String> {
        let sa = self.ikes.get(&spi)?;
        let factor = if rekey {
            iked_common::limits::REKEY_OVERLAP_FACTOR
        } else {
            1
        };
        let per_ike = self.child_cap_per_ike(&sa.policy).saturating_mul(factor);
        // Children of an SA that replaced this one by rekeying are counted
        // where they live; `sa.children` holds every state.
        if sa.children.len() >= per_ike {
            return Some(format!(
                "IKE SA {spi:016x} holds {} Child SAs (at most {per_ike})",
                sa.children.len()
            ));
        }
        let per_policy = self
            .settings
            .max_child_sas_per_policy
            .saturating_mul(factor);
        let of_policy = self
            .children_by_policy
            .get(&sa.policy)
            .copied()
            .unwrap_or(0);
        if of_policy >= per_policy {
            return Some(format!(
                "policy {} holds {of_policy} Child SAs (at most {per_policy})",
                sa.policy
            ));
        }
        None
    }

    fn new_reqid(&mut self) -> u32 {
        let reqid = self.next_reqid;
        self.next_reqid = self.next_reqid.wrapping_add(1).max(1);
        reqid
    }

    /// A rekey time: 90% of the lifetime minus up to 5% jitter from the RNG,
    /// so that both peers rarely rekey at the same moment.
    fn rekey_time(&mut self, lifetime_secs: u64) -> Option<Instant> {
        if lifetime_secs == 0 {
            return None;
        }
        // Longer than ten years means "never" in practice; capping keeps
        // the time arithmetic below from overflowing.
        let lifetime = Duration::from_secs(lifetime_secs.min(10 * 365 * 86_400));
        let base = lifetime.mul_f64(0.9);
        let span = lifetime.mul_f64(0.05).as_millis() as u64;
        // Without randomness (logged) the rekey simply has no jitter.
        let jitter = if span == 0 {
            0
        } else {
            self.random_u64().map_or(0, |r| r % span)
        };
        self.now
            .checked_add(base.saturating_sub(Duration::from_millis(jitter)))
    }

    fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// Pushes the SA's earliest deadline to the timer heap if it changed.
    fn schedule(&mut self, spi: u64) {
        let dpd = self.dpd_interval;
        let keepalive = self.settings.nat_keepalive;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let mut earliest: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e: Instant| e.min(t)));
            }
        };
        consider(sa.outstanding.as_ref().map(|o| o.deadline));
        consider(sa.delete_at);
        if sa.behind_nat && sa.natt {
            consider(Some(sa.last_sent + keepalive));
        }
        if sa.state == IkeState::Established {
            consider(sa.rekey_at);
            // DPD only when idle; while a request is in flight its own
            // retransmission timer decides liveness.
            if let Some(interval) = dpd {
                if sa.outstanding.is_none() && sa.prep.is_none() && sa.queue.is_empty() {
                    consider(Some(sa.last_heard + interval));
                }
            }
        }
        for child_spi in &sa.children {
            if let Some(child) = self.children.get(child_spi) {
                if matches!(child.state, ChildState::Established | ChildState::Rekeyed) {
                    consider(child.rekey_at);
                }
            }
        }
        if let Some(at) = earliest {
            if sa.scheduled.is_none_or(|s| s != at) {
                sa.scheduled = Some(at);
                self.timers.push(Reverse((at, spi)));
            }
        }
    }

    /// Identity payload for our side.
    fn local_identity(policy: Option<&Policy>, local: IpAddr) -> Identity {
        match policy.and_then(|p| p.srcid.as_ref()) {
            Some(spec) => identity_of(spec),
            None => address_identity(local),
        }
    }

    /// The SA list, cut to the reply size limit (a gateway with many
    /// thousand SAs must not make `ikectl show sa` kill the process),
    /// and how many IKE SAs there are: ikectl says when the list is cut.
    fn show_sa_capped(&self) -> (Vec<iked_common::ipc::IkeSaInfo>, u64) {
        let mut list = self.show_sa();
        let total = list.len();
        // Leave room for the envelope around the list.
        let limit = iked_common::ipc::MAX_SA_LIST_REPLY - 4096;
        // The longest prefix that fits, each entry measured once. The
        // kernel's byte counters are filled in later: room for two u64
        // varints per Child SA.
        let mut used = 0usize;
        let fits = list
            .iter()
            .take_while(|info| {
                used += postcard::experimental::serialized_size(info).unwrap_or(usize::MAX / 2)
                    + 20 * info.children.len();
                used <= limit
            })
            .count();
        list.truncate(fits);
        if list.len() < total {
            log::warn!(
                "show sa: listing {} of {total} IKE SAs (reply size limit)",
                list.len()
            );
        }
        (list, total as u64)
    }

    fn show_sa(&self) -> Vec<iked_common::ipc::IkeSaInfo> {
        let mut list: Vec<iked_common::ipc::IkeSaInfo> =
            self.ikes.values().map(|sa| self.ike_info(sa)).collect();
        list.sort_by(|a, b| (&a.policy, &a.spi_i).cmp(&(&b.policy, &b.spi_i)));
        list
    }

    fn ike_info(&self, sa: &IkeSa) -> iked_common::ipc::IkeSaInfo {
        use proposals::{encr_name, integ_name, ke_name, prf_name};
        let children = sa
            .children
            .iter()
            .filter_map(|spi| self.children.get(spi))
            .map(|c| iked_common::ipc::ChildSaInfo {
                state: match (c.state, c.install_failed) {
                    (_, true) => "install failed".into(),
                    (ChildState::Established, false) if !c.installed => "installing".into(),
                    (ChildState::Established, false) => "established".into(),
                    (ChildState::Rekeying, _) => "rekeying".into(),
                    (ChildState::Rekeyed, _) => "rekeyed".into(),
                    (ChildState::Deleting, _) => "deleting".into(),
                },
                spi_in: format!("{:08x}", c.spi_in),
                spi_out: format!("{:08x}", c.spi_out),
                local_ts: vec![selectors::side_text(
                    c.flow.src,
                    c.flow.src_prefix,
                    c.flow.src_port,
                    c.flow.protocol,
                )],
                remote_ts: vec![selectors::side_text(
                    c.flow.dst,
                    c.flow.dst_prefix,
                    c.flow.dst_port,
                    c.flow.protocol,
                )],
                mode: if c.transport { "transport" } else { "tunnel" }.into(),
                encryption: encr_name(c.suite.encr),
                integrity: c.suite.integ.map(integ_name),
                pfs_group: c.suite.ke.map(ke_name),
                installed: c.installed,
                // Filled in from pfkey's answer (ask_counters).
                bytes_in: None,
                bytes_out: None,
                established_secs: self.now.saturating_duration_since(c.established).as_secs(),
                rekey_in_secs: c
                    .rekey_at
                    .map(|t| t.saturating_duration_since(self.now).as_secs()),
            })
            .collect();
        iked_common::ipc::IkeSaInfo {
            policy: sa.policy.clone(),
            state: sa.state.text().into(),
            initiator: sa.initiator,
            local: sa.local,
            peer: sa.peer,
            local_id: identity_text(&sa.local_id),
            peer_id: sa.peer_id.as_ref().map(identity_text).unwrap_or_default(),
            spi_i: format!("{:016x}", sa.spi_i),
            spi_r: format!("{:016x}", sa.spi_r),
            encryption: sa.suite.map(|s| encr_name(s.encr)).unwrap_or_default(),
            integrity: sa.suite.and_then(|s| s.integ.map(integ_name)),
            prf: sa.suite.map(|s| prf_name(s.prf)).unwrap_or_default(),
            dh_group: sa
                .suite
                .map(|s| ke_name(s.ke))
                .or(sa.ke_method.map(ke_name))
                .unwrap_or_default(),
            nat_t: sa.natt,
            established_secs: sa
                .established
                .map(|t| self.now.saturating_duration_since(t).as_secs()),
            rekey_in_secs: sa
                .rekey_at
                .map(|t| t.saturating_duration_since(self.now).as_secs()),
            children,
        }
    }
}

/// What the half-open counts need to know of an SA leaving them.
pub(crate) struct HalfOpenRecord {
    pub counted: bool,
    pub source: Option<IpAddr>,
    pub with_cookie: bool,
}

impl HalfOpenRecord {
    /// Takes the SA out of the half-open state (its flag cleared).
    pub(crate) fn take(sa: &mut IkeSa) -> HalfOpenRecord {
        HalfOpenRecord {
            counted: std::mem::take(&mut sa.half_open),
            source: sa.half_open_key.map(|(_, addr)| addr.ip()),
            with_cookie: sa.half_open_cookie,
        }
    }
}

/// The key of a source address in the per-source half-open counts: the
/// address itself, or for IPv6 its /64, the smallest block a site or
/// subscriber is usually given (one host can use a whole /64 at will).
pub(crate) fn source_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(a) => {
            let prefix = u128::from(a) & !(u128::from(u64::MAX));
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// The wire form of a configured identity (RFC 7296 §3.5).
pub(crate) fn identity_of(spec: &IdentitySpec) -> Identity {
    match spec {
        IdentitySpec::Fqdn(name) => Identity::Fqdn(name.clone()),
        IdentitySpec::UserFqdn(name) => Identity::Rfc822(name.clone()),
        IdentitySpec::Address(addr) => address_identity(*addr),
        // A textual DN would need DER encoding; certificates are not supported yet.
        IdentitySpec::Asn1Dn(dn) => Identity::DerAsn1Dn(dn.as_bytes().to_vec()),
        IdentitySpec::KeyId(key) => Identity::KeyId(key.clone()),
    }
}

pub(crate) fn address_identity(addr: IpAddr) -> Identity {
    match addr {
        IpAddr::V4(a) => Identity::Ipv4(a),
        IpAddr::V6(a) => Identity::Ipv6(a),
    }
}

pub(crate) fn identity_text(id: &Identity) -> String {
    match id {
        Identity::Ipv4(a) => a.to_string(),
        Identity::Ipv6(a) => a.to_string(),
        Identity::Fqdn(s) | Identity::Rfc822(s) => s.clone(),
        Identity::KeyId(k) => format!(
            "keyid:{}",
            k.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        Identity::Null => "(null)".into(),
        other => format!("{:?}", other.id_type()),
    }
}

/// Test-only views of an engine's state (keys included): never compiled
/// into the daemon.
/// Tests only: a private key from a xorshift stream, its top bit clear so
/// that it is below the group order (ECP) or the prime (MODP).
#[cfg(test)]
fn test_private_key(stream: &mut u64, method: KeMethod) -> Vec<u8> {
    let len = match method {
        KeMethod::Ecp256 | KeMethod::Ecp384 | KeMethod::Ecp521 => method.public_value_len() / 2,
        _ => method.public_value_len(),
    };
    let mut key = vec![0u8; len];
    for byte in key.iter_mut() {
        *stream ^= *stream << 13;
        *stream ^= *stream >> 7;
        *stream ^= *stream << 17;
        *byte = (*stream >> 24) as u8;
    }
    key[0] &= 0x7f;
    if method == KeMethod::Ecp521 {
        key[0] &= 0x01;
    }
    key
}

#[cfg(test)]
impl Engine {
    /// Queues `task` on IKE SA `spi`, as the engine itself would.
    pub(crate) fn queue_task(&mut self, spi: u64, task: Task) {
        self.ikes
            .get_mut(&spi)
            .expect("queue_task: no such IKE SA")
            .queue
            .push_back(task);
    }

    /// Queues `task` on IKE SA `spi` and starts the next queued work.
    pub(crate) fn run_task(&mut self, spi: u64, task: Task) {
        self.queue_task(spi, task);
        self.pump(spi);
    }

    /// Key exchanges from a seeded stream from now on (see `test_ke_stream`).
    pub(crate) fn use_seeded_key_exchanges(&mut self, seed: u64) {
        self.test_ke_stream = Some(seed.max(1));
    }

    pub(crate) fn ike_spis(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.ikes.keys().copied().collect();
        v.sort_unstable();
        v
    }

    pub(crate) fn ike(&self, spi: u64) -> Option<&IkeSa> {
        self.ikes.get(&spi)
    }

    pub(crate) fn child(&self, spi: u32) -> Option<&ChildSa> {
        self.children.get(&spi)
    }

    pub(crate) fn child_spis(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.children.keys().copied().collect();
        v.sort_unstable();
        v
    }

    pub(crate) fn half_open_count(&self) -> usize {
        self.half_open
    }
}
