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
//!
//! # Layout
//!
//! One `impl Engine` spread over files by layer, top to bottom:
//!
//! - `api.rs`: every `pub fn`, the events in; the only place `now` is set.
//! - Dispatch: `message.rs` (inbound half: decode, open, message IDs, the
//!   response cache, then the exchange handler), `ipc.rs` (a ca or pfkey
//!   reply resumes the SA that waits), `timers.rs` (what is due),
//!   `tasks.rs` (the queue of requests an IKE SA is to make, window 1, and
//!   their adoption by a rekeyed IKE SA), `kernel_events.rs` (ACQUIRE,
//!   EXPIRE, trap policies), `control.rs` (`show sa` and its counters).
//! - `exchange/`: the protocol, one file per exchange and role, as
//!   strongSwan's tasks: `ike_sa_init`, `ike_auth`, `ike_establish` (an IKE
//!   SA coming up, both roles), `child_create`, `ike_rekey`,
//!   `informational`, `mobike` (RFC 4555, both roles), `eap` with
//!   `eap_initiator` and `eap_responder` (the EAP rounds of IKE_AUTH, RFC
//!   7296 §2.16: the engine carries EAP packets, ca runs EAP and holds
//!   the MSK), with `_responder` files where a role is long;
//!   `config_payload` is the Configuration payload of IKE_AUTH (RFC 7296
//!   §3.15) for road warriors, both roles, called in one line from each
//!   IKE_AUTH step.
//! - Below the exchanges: `message.rs` (outbound half: seal, send request
//!   or response, retransmit, `refuse`), `fragments.rs` (IKE
//!   fragmentation, RFC 7383: what `message.rs` seals into fragments and
//!   the bounded reassembly of a peer's), `digest.rs` (payload lookup and
//!   builders), `keys.rs`, `nat.rs`, `identity.rs` (with `dn_text.rs`, a
//!   DN shown as text), `signature_auth.rs` (what public keys add to
//!   IKE_SA_INIT and IKE_AUTH: SIGNATURE_HASH_ALGORITHMS, CERTREQ, CERT,
//!   the AUTH methods a policy takes, ca's Store), `admission.rs` (what an
//!   unauthenticated peer may cost: cookies, half-open counts),
//!   `migration.rs` (an established IKE SA and its Child SAs moved to new
//!   addresses: MOBIKE, NAT mapping changes),
//!   `pool.rs` (address pools and the leases of road warriors, keyed by
//!   the authenticated identity; the addresses a gateway gave us),
//!   `sa_table.rs`, `child_sa.rs`, `state.rs` (the SA types; what only
//!   IKE_SA_INIT and IKE_AUTH need is an IKE SA's `Handshake`, dropped
//!   whole at establishment, as rustls keeps each handshake state's data
//!   in that state).
//!
//! # Rules that keep it so
//!
//! - An exchange module calls the layers below it, and forward only into
//!   the next step of the same negotiation (`ike_sa_init` -> `ike_auth` ->
//!   `ike_establish`); never a dispatcher, never back.
//! - Only `message.rs` emits [`Action::Send`] and moves message IDs, the
//!   window and the response cache (a responder's IKE SA is born expecting
//!   message 1, IKE_SA_INIT having been 0); `nat.rs` alone sends NAT
//!   keepalives.
//! - Only `sa_table.rs` writes the IKE SA map and its indexes (`by_policy`,
//!   `by_identity`, `by_init`) and removes an IKE SA; only `child_sa.rs`
//!   writes the Child SA map, its counts and the kernel-policy owners.
//! - Only `child_sa.rs` and `kernel_events.rs` ask pfkey to add or delete
//!   an SA or a policy, and `migration.rs` to move or (when a move
//!   failed) delete them; only `migration.rs` changes an established IKE
//!   SA's addresses.
//! - Deadlines only through `timers.rs`: it alone reads and writes the
//!   timer heap and acts on what is due, and an SA's deadlines are named
//!   timers in a table whose only writers are its methods there
//!   (`IkeTimer`: half-open, preparing, replaced, rekey; `ChildTimer`:
//!   rekey, delete-replaced; a request's `RetransmitTimer`, held by the
//!   request so that it goes with it, and a fragment reassembly's
//!   `ReassemblyTimer`, held by the reassembly).
//! - Items are `pub(super)` (`pub(in crate::engine)` under `exchange/`);
//!   the only `pub fn`s are in `api.rs`, and only the types of `state.rs`
//!   (the timer tables of `timers.rs` among them, re-exported there) and
//!   the `cfg(test)` accessors below are `pub(crate)`.
//! - Tests (`tests/`: a harness in `mod.rs`, cases by topic) drive the
//!   public API and a few `cfg(test)` accessors below; `tests/digest.rs`
//!   holds the bytes of seeded runs, which a restructuring must not change.

mod admission;
mod api;
mod child_sa;
mod control;
mod control_verbs;
mod digest;
mod dn_text;
mod exchange;
mod fragments;
mod identity;
mod ipc;
mod kernel_events;
mod keys;
pub use keys::{enable_key_log, key_log_enabled};
mod message;
mod migration;
mod nat;
mod pool;
pub mod proposals;
pub mod reload;
mod reqids;
mod sa_table;
pub mod selectors;
mod signature_auth;
mod state;
mod stats;
mod tasks;
#[cfg(test)]
mod tests;
mod timers;
mod tunables;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use iked_common::config::{FragmentationSettings, Policy};
use iked_common::crypto::RandomSource;
use iked_common::ipc::{ControlReply, Ikev2ToCa, Ikev2ToPfkey, InitiationMode};
use iked_common::kernel::Selector;
use iked_common::logging::RateLimit;
use iked_common::wire::Identity;

#[cfg(test)]
use state::Task;
use state::*;

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
    /// How long an initiation without a configured local address waits for
    /// pfkey's source address lookup before it fails (pfkey answers at once
    /// unless it is stuck).
    pub source_lookup_timeout: Duration,
    /// MOBIKE (RFC 4555): announced in IKE_AUTH and UPDATE_SA_ADDRESSES
    /// followed (`set mobike`, the default), or neither (`set nomobike`);
    /// the shell sets it from each configuration, for IKE SAs negotiated
    /// from then on.
    pub mobike: bool,
    /// IKE fragmentation (RFC 7383): announced or not, and the largest IP
    /// datagram an encrypted message may make before it is fragmented
    /// (`set fragmentation|nofragmentation`, `set fragment_size`; the
    /// shell sets it from each configuration).
    pub fragmentation: FragmentationSettings,
    /// A peer's message in more fragments than this is dropped (RFC 7383
    /// §2.6 leaves the bound to us).
    pub max_fragments: u16,
    /// A peer's message whose fragments hold more than this many bytes is
    /// discarded.
    pub max_reassembled_len: usize,
    /// A message not complete this long after its first fragment is
    /// discarded (RFC 7383 §2.6; shorter than a requester's give-up time,
    /// to free memory, and longer than its first retransmissions, which
    /// fill the gaps).
    pub fragment_timeout: Duration,
    /// What the reassembly buffers of all IKE SAs may hold together:
    /// past it new fragments are dropped.
    pub fragment_memory_cap: usize,
    /// `set enforcesingleikesa`: a new IKE SA of a policy replaces the
    /// older ones with the same peer identity (deleted with the peer).
    pub enforce_single_ike_sa: bool,
    /// This engine's place among the gateway's ikev2 workers
    /// (`set workers`, iked_common::workers): the SPIs it picks name it,
    /// and work one worker must do (a policy's initiations) is its own by
    /// `WorkerSlot::owns_key`.
    pub worker: iked_common::workers::WorkerSlot,
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
            source_lookup_timeout: Duration::from_secs(5),
            mobike: true,
            fragmentation: FragmentationSettings::default(),
            // A chain of three RSA-4096 certificates with its IKE_AUTH is
            // about 8 KiB: 8 fragments at 1280 bytes, 16 at 576.
            max_fragments: 32,
            max_reassembled_len: 64 * 1024,
            fragment_timeout: Duration::from_secs(30),
            // 512 messages of 64 KiB, thousands of real IKE_AUTHs at once.
            fragment_memory_cap: 32 * 1024 * 1024,
            enforce_single_ike_sa: false,
            worker: iked_common::workers::WorkerSlot::SINGLE,
        }
    }
}

/// A pfkey or ca reply the engine refuses: an answer to a request it never
/// made, a protocol error between the processes (the shell exits on it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A reply to an SPI, install, delete or AUTH request never made.
    #[error("reply to request {id}, which was never made")]
    NeverAsked { id: u64 },
    /// Counters for a `show sa` read never made.
    #[error("counters for request {id}, which was never made")]
    CountersNeverAsked { id: u64 },
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
    /// An SA event for `ikectl monitor` (stats.rs), for the parent.
    Event(Box<iked_common::stats::SaEvent>),
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
    /// Reqids of traps and Child SAs (never one in use).
    reqids: reqids::ReqidPool,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    actions: VecDeque<Action>,
    cookie_secrets: CookieSecrets,
    /// Outbound "trap" policies of the policies' flows (all but `notrap`
    /// ones), by (policy, flow index): traffic hitting one without an SA is
    /// not sent in clear, and makes the kernel send an ACQUIRE (acted on
    /// for active policies). Child SAs of that flow use the trap's reqid.
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
    /// ca's certificate store summary (`CaToIkev2::Store`), once it came:
    /// public-key policies need it for IKE_AUTH.
    ca_store: Option<signature_auth::CaStore>,
    /// Bytes the reassembly buffers of all IKE SAs hold (RFC 7383), each
    /// SA's share given back when its buffer goes.
    fragment_memory: fragments::FragmentMemory,
    /// Address pools and leases of remote-access policies, and the
    /// addresses gateways gave us (`pool.rs`).
    leases: pool::Leases,
    /// `show stats` counters (stats.rs).
    stats: stats::Counters,
    /// Tests only: draw key-exchange private keys from this counter instead
    /// of OpenSSL's generator, so that seeded runs are byte for byte
    /// reproducible. Seeded from the injected random source at the first
    /// key exchange unless a test set it (the datagram digest test).
    #[cfg(test)]
    test_ke_stream: Option<u64>,
    /// Tests only: the address our CFG_REQUEST names instead of asking
    /// for any (a client that wants a particular one, RFC 7296 §3.15.1).
    #[cfg(test)]
    test_requested_address: Option<IpAddr>,
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

    /// Our CFG_REQUEST names `address` from now on (see `test_requested_address`).
    pub(crate) fn request_address_in_tests(&mut self, address: IpAddr) {
        self.test_requested_address = Some(address);
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

/// Names of the bits of [`Engine::fuzz_states`].
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub const FUZZ_STATES: [&str; 27] = [
    "half-open SAs, cookies not required",
    "half-open SAs, cookies required",
    "IKE: SA_INIT sent",
    "IKE: SA_INIT answered",
    "IKE: AUTH preparing",
    "IKE: AUTH sent",
    "IKE: AUTH checking",
    "IKE: established",
    "IKE: rekeyed",
    "IKE: deleting",
    "request: CREATE_CHILD_SA new Child",
    "request: CREATE_CHILD_SA Child rekey",
    "request: CREATE_CHILD_SA IKE rekey",
    "request: delete Child",
    "request: delete IKE",
    "request: DPD",
    "Child: established",
    "Child: rekeying",
    "Child: rekeyed",
    "Child: deleting",
    "waiting for ca (AUTH)",
    "waiting for pfkey (SPI, SA install)",
    "cookies required (half-open count at the threshold)",
    "IKE: source lookup",
    "fragments: a message being reassembled",
    "fragments: a fragmented request outstanding",
    "EAP: a conversation under way (RFC 7296 §2.16)",
];

/// The stateful fuzzer's view (src/fuzzing/): which states the SAs and
/// requests are in now, one bit per [`FUZZ_STATES`] name. Only with the
/// "fuzzing" feature, never in the daemon.
#[cfg(feature = "fuzzing")]
impl Engine {
    #[doc(hidden)]
    pub fn fuzz_states(&self) -> u32 {
        let mut bits = 0u32;
        let cookies = self.half_open >= self.settings.cookie_threshold;
        if cookies {
            bits |= 1 << 22;
        }
        if self.half_open > 0 {
            bits |= 1 << u32::from(cookies);
        }
        for sa in self.ikes.values() {
            // Exhaustive, so that a new state cannot go uncounted.
            bits |= 1
                << match sa.state {
                    IkeState::SourceLookup => 23,
                    IkeState::InitSent => 2,
                    IkeState::InitDone => 3,
                    IkeState::AuthPreparing => 4,
                    IkeState::AuthSent => 5,
                    IkeState::AuthResponding => 6,
                    IkeState::Established => 7,
                    IkeState::Rekeyed => 8,
                    IkeState::Deleting => 9,
                };
            if sa.fragments.reassembling() {
                bits |= 1 << 24;
            }
            if sa.eap.is_some() {
                bits |= 1 << 26;
            }
            if sa
                .outstanding
                .as_ref()
                .is_some_and(|o| o.datagrams.len() > 1)
            {
                bits |= 1 << 25;
            }
            if let Some(out) = &sa.outstanding {
                bits |= 1
                    << match &out.ctx {
                        RequestCtx::SaInit | RequestCtx::Auth { .. } => continue,
                        RequestCtx::CreateChild { child } if child.rekey_of.is_none() => 10,
                        RequestCtx::CreateChild { .. } => 11,
                        RequestCtx::RekeyIke { .. } => 12,
                        RequestCtx::DeleteChildren { .. } => 13,
                        RequestCtx::DeleteIke => 14,
                        RequestCtx::Dpd => 15,
                        // Not a fuzz state of its own yet: the fuzzer
                        // makes no address changes.
                        RequestCtx::Mobike(_) => continue,
                    };
            }
        }
        for child in self.children.values() {
            bits |= 1
                << match child.state {
                    ChildState::Established => 16,
                    ChildState::Rekeying => 17,
                    ChildState::Rekeyed => 18,
                    ChildState::Deleting => 19,
                };
        }
        for (_, wait) in self.waits.values() {
            bits |= 1
                << match wait {
                    Wait::RequestSign
                    | Wait::AnswerSign
                    | Wait::VerifyResponder
                    | Wait::VerifyInitiator
                    | Wait::Eap
                    | Wait::EapSign => 20,
                    Wait::RequestSpi
                    | Wait::AnswerSpi
                    | Wait::InstallSa { .. }
                    | Wait::SourceAddress
                    | Wait::MobikeSource
                    | Wait::Migrate { .. } => 21,
                    Wait::Other => continue,
                };
        }
        bits
    }
}

#[cfg(feature = "fuzzing")]
impl Engine {
    /// For the stateful fuzzer: opens `datagram`, which this engine sent
    /// on one of its IKE SAs, lets `edit` change it as a clear message
    /// (the IKE header, then the inner payloads as if they followed it),
    /// and seals the result again with the SA's keys (RFC 7296 §3.14), so
    /// that the peer authenticates and processes the edited payloads.
    #[doc(hidden)]
    pub fn fuzz_reseal(
        &mut self,
        datagram: &[u8],
        edit: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Option<Vec<u8>> {
        use iked_common::wire::{encrypted_span, Header, Message, PayloadType};
        let message = Message::decode(datagram).ok()?;
        let h = message.header;
        let spi = if h.flags.initiator {
            h.initiator_spi
        } else {
            h.responder_spi
        };
        let cipher = self.ikes.get(&spi)?.out_cipher.as_ref()?;
        let sk = message.encrypted()?;
        let span = encrypted_span(datagram).ok()?;
        let (aad, body) = datagram.split_at_checked(span)?;
        let plaintext = cipher.open(aad, body).ok()?;
        let mut clear = datagram.get(..28)?.to_vec();
        clear[16] = sk.first_inner.value();
        clear.extend_from_slice(&plaintext);
        edit(&mut clear);
        let len = u32::try_from(clear.len()).ok()?.to_be_bytes();
        clear.get_mut(24..28)?.copy_from_slice(&len);
        let header = Header::decode(&clear).map_or(h, |d| d.header);
        let first = PayloadType::from_value(*clear.get(16)?);
        self.seal_encoded(spi, &header, first, clear.get(28..)?)
    }

    /// For the stateful fuzzer: opens the IKE Fragment message `datagram`
    /// (RFC 7383 §2.5), which this engine sent, lets `edit` change the
    /// fragment's content, and seals it again as fragment `number` of
    /// `total` (any numbers: a newer or older set, a replay, too many),
    /// so that the peer's reassembly sees authenticated hostile fragments.
    #[doc(hidden)]
    pub fn fuzz_reseal_fragment(
        &mut self,
        datagram: &[u8],
        (number, total): (u16, u16),
        edit: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Option<Vec<u8>> {
        use iked_common::wire::{encrypted_span, Message, PayloadType};
        let message = Message::decode(datagram).ok()?;
        let h = message.header;
        let spi = if h.flags.initiator {
            h.initiator_spi
        } else {
            h.responder_spi
        };
        let skf = fragments::fragment_of(&message)?;
        let first = if number == 1 && skf.fragment_number == 1 {
            skf.first_inner
        } else if number == 1 {
            // Not known from a later fragment: what a lying peer might say.
            PayloadType::Notify
        } else {
            PayloadType::NoNextPayload
        };
        let cipher = self.ikes.get(&spi)?.out_cipher.as_ref()?;
        let span = encrypted_span(datagram).ok()?;
        let (aad, body) = datagram.split_at_checked(span)?;
        let mut chunk = cipher.open(aad, body).ok()?;
        edit(&mut chunk);
        self.seal_fragment(spi, &h, (number, total), first, &chunk)
    }
}
