//! IKE and Child SAs, the work in flight on them, and the other types the
//! engine holds (waits, traps, counter reads, cookie secrets). What an IKE
//! SA needs only until it is established is its `Handshake`, dropped then;
//! its deadlines are the timer tables of `timers.rs`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use iked_common::crypto::keys::{ChildSaKeys, IkeSaKeys};
use iked_common::crypto::{KeMethod, KeyExchange, SkCipher};
use iked_common::ipc::IkeSaInfo;
use iked_common::kernel::{SaId, Selector};
use iked_common::wire::{Identity, SecurityAssociation};

pub(crate) use crate::engine::exchange::eap::EapExchange;
pub(crate) use crate::engine::exchange::mobike::{Mobike, MobikeRequest, MobikeTask};
pub(crate) use crate::engine::fragments::Fragments;
use crate::engine::proposals::{ChildSuite, IkeSuite};
pub(crate) use crate::engine::timers::{
    ChildTimer, ChildTimers, IkeTimer, IkeTimers, RetransmitTimer,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IkeState {
    /// Initiator without a configured local address: waiting for pfkey's
    /// route lookup to name the source address (IKE_SA_INIT's NAT
    /// detection hashes it, RFC 7296 §2.23), bounded by
    /// `source_lookup_timeout`.
    SourceLookup,
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
    pub(super) fn text(self) -> &'static str {
        match self {
            IkeState::SourceLookup => "source lookup",
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
    /// MOBIKE (RFC 4555): our UPDATE_SA_ADDRESSES or return-routability check.
    Mobike(MobikeRequest),
}

pub(crate) struct Outstanding {
    pub message_id: u32,
    /// The request as sent: one datagram, or its fragments (RFC 7383),
    /// all sent again on each retransmission (§2.6: the same fragments).
    pub datagrams: Vec<Vec<u8>>,
    pub transmissions: u32,
    /// When it is sent again.
    pub deadline: RetransmitTimer,
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

/// Work an IKE SA has to do as the requester, one at a time (window 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Task {
    CreateChild {
        flow_index: usize,
    },
    RekeyChild {
        spi_in: u32,
    },
    RekeyIke,
    DeleteChildren {
        spis: Vec<u32>,
    },
    DeleteIke,
    Dpd,
    /// MOBIKE (RFC 4555, `exchange/mobike.rs`).
    Mobike(MobikeTask),
}

/// What an IKE SA holds only while IKE_SA_INIT and IKE_AUTH run (RFC 7296
/// §1.2): the nonces, our key exchange, the proposals, the cookie, the
/// IKE_SA_INIT messages that AUTH signs (§2.15), the initiator's check of
/// the responder's AUTH and the half-open counts. Dropped whole when the SA
/// is established, so an established SA carries none of it.
#[derive(Default)]
pub(crate) struct Handshake {
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    /// Initiator: our key exchange, until the response completes it.
    pub kex: Option<KeyExchange>,
    pub ke_method: Option<KeMethod>,
    /// Initiator: what our IKE_SA_INIT offered.
    pub offered: Option<SecurityAssociation>,
    /// Responder: the IKE proposal accepted in IKE_SA_INIT (it chooses the
    /// policy in IKE_AUTH).
    pub accepted_ike: Option<iked_common::wire::Proposal>,
    /// Initiator: the cookie the responder asked for (§2.6).
    pub cookie: Option<Vec<u8>>,
    pub init_request: Vec<u8>,
    pub init_response: Vec<u8>,
    /// Initiator: the IKE_AUTH response while ca checks its AUTH.
    pub auth_check: Option<AuthCheck>,
    /// Initiator of a public-key policy: IKE_AUTH waits for ca's first
    /// certificate store (`CaToIkev2::Store`), within the Preparing timer.
    pub awaiting_store: bool,
    /// The peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4), for ca.
    pub peer_hash_algorithms: Vec<u16>,
    /// The CA hashes of the peer's CERTREQ payloads (RFC 7296 §3.7), for ca.
    pub peer_cert_authorities: Vec<Vec<u8>>,
    /// Responder: the initiator's CFG_REQUEST (RFC 7296 §3.15), kept until
    /// it is authenticated (engine/exchange/config_payload.rs).
    pub peer_config_request: Option<crate::engine::exchange::config_payload::ConfigRequest>,
    /// Counted in the half-open total (responder, not yet established).
    pub half_open: bool,
    /// Its IKE_SA_INIT carried a valid cookie: counted in the
    /// cookie-proven share of its source address.
    pub half_open_cookie: bool,
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
    /// What only IKE_SA_INIT and IKE_AUTH need: there until the SA is
    /// established, then dropped (a rekeyed SA is born without it).
    pub handshake: Option<Box<Handshake>>,
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
    /// Last response sent: (message ID, its datagram or fragments), for
    /// retransmitted requests.
    pub cached_response: Option<(u32, Vec<Vec<u8>>)>,
    pub answering: Option<Answer>,
    pub children: Vec<u32>,
    pub established: Option<Instant>,
    /// Its deadlines: rekey, and removal unless it moves on first.
    pub timers: IkeTimers,
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
    /// The IKE SA that replaced this one by rekeying.
    pub successor: Option<u64>,
    /// Deleted on purpose (operator, reload): do not start the policy again.
    pub no_restart: bool,
    /// PFS group a peer asked for with INVALID_KE_PAYLOAD (RFC 7296 §1.3).
    pub child_ke_hint: Option<KeMethod>,
    /// KE group a peer asked for when we rekeyed this IKE SA.
    pub rekey_ke_hint: Option<KeMethod>,
    /// IKE fragmentation (RFC 7383): negotiated or not, and the peer's
    /// messages being reassembled.
    pub fragments: Fragments,
    /// The EAP conversation of IKE_AUTH (RFC 7296 §2.16) while it runs:
    /// dropped when the SA is established (`exchange/eap.rs`).
    pub eap: Option<Box<EapExchange>>,
    /// Addresses of the Configuration payload (RFC 7296 §3.15): as
    /// gateway, the peer's lease; as client, what the gateway gave us.
    pub virtual_ips: Vec<std::net::IpAddr>,
    /// The name the peer proved with EAP (RFC 7296 §2.16), set by the EAP
    /// rounds once ca says Succeeded: leases are keyed by it. As client,
    /// the name we proved (for `show sa`).
    pub eap_identity: Option<String>,
    /// MOBIKE (RFC 4555): negotiated or not, the peer's other addresses,
    /// an address update in progress.
    pub mobike: Mobike,
}

impl IkeSa {
    /// An IKE SA of `policy` between `local` and `peer`, nothing negotiated
    /// yet: the one base of the initiator's (`initiate`), the responder's
    /// (`on_sa_init_request`) and a rekey's (`make_rekeyed_ike`) IKE SA,
    /// each of which names only what differs: the first two their
    /// `Handshake`, which a rekeyed SA, born established, has none of.
    pub(super) fn new(
        policy: String,
        local: SocketAddr,
        peer: SocketAddr,
        local_id: Identity,
        now: Instant,
    ) -> IkeSa {
        IkeSa {
            spi_i: 0,
            spi_r: 0,
            initiator: false,
            policy,
            local,
            peer,
            state: IkeState::InitSent,
            suite: None,
            handshake: None,
            keys: None,
            out_cipher: None,
            in_cipher: None,
            local_id,
            peer_id: None,
            natt: false,
            nat_detected: false,
            behind_nat: false,
            next_message_id: 0,
            expected_message_id: 0,
            outstanding: None,
            prep: None,
            queue: VecDeque::new(),
            cached_response: None,
            answering: None,
            children: Vec::new(),
            established: None,
            timers: IkeTimers::default(),
            last_heard: now,
            last_sent: now,
            created: now,
            scheduled: None,
            first_flow: 0,
            peer_rekey: None,
            half_open_key: None,
            successor: None,
            no_restart: false,
            child_ke_hint: None,
            rekey_ke_hint: None,
            fragments: Fragments::default(),
            eap: None,
            virtual_ips: Vec::new(),
            eap_identity: None,
            mobike: Mobike::default(),
        }
    }
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
    /// Which of the pair pfkey confirmed in the kernel (inbound,
    /// outbound): when the other fails, this half is removed again.
    pub sas_in_kernel: (bool, bool),
    /// This Child SA holds the flow's kernel policies (passed on at rekey).
    /// The flow's outbound policy is a trap installed at config time: the
    /// Child SA adds and removes only its inbound policies.
    pub trap_out: bool,
    pub established: Instant,
    /// Its own deadline: a rekey, or the delete of a replaced SA.
    pub timers: ChildTimers,
    /// The lowest nonce of the exchange that created it (§2.8.1 collisions).
    pub min_nonce: Vec<u8>,
    /// Set on the old SA when the peer rekeyed it while our rekey was pending.
    pub peer_rekey: Option<u32>,
}

// What the engine holds beside the SAs.

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

/// A `show sa` waiting for the kernel's counters.
pub(crate) struct CounterQuery {
    /// The control request to answer.
    pub(super) control_id: u64,
    pub(super) deadline: Instant,
    /// The SA list as it was when asked, filled in when the counters come.
    pub(super) list: Vec<IkeSaInfo>,
    /// How many IKE SAs there were (the list may be cut to the size limit).
    pub(super) total: u64,
    /// Each listed Child SA's kernel SAs, by its inbound SPI text:
    /// (inbound, outbound).
    pub(super) sas: HashMap<String, (SaId, SaId)>,
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
    /// An SA install for a Child SA (by inbound SPI): its inbound or its
    /// outbound SA.
    InstallSa { child: u32, inbound: bool },
    /// The source address towards the peer (initiator without a
    /// configured local address).
    SourceAddress,
    /// A step of the EAP conversation ca runs (RFC 7296 §2.16), either role.
    Eap,
    /// Our AUTH within EAP: the gateway's certificate AUTH of its first
    /// answer, or the client's MSK-based AUTH.
    EapSign,
    /// pfkey's answer to a Child SA's migration (migration.rs).
    Migrate { child: u32 },
    /// The source address towards the peer now (MOBIKE initiator whose
    /// requests go unanswered: has our address changed?).
    MobikeSource,
    /// A policy install, a delete: only the outcome is logged.
    Other,
}

pub(crate) struct Trap {
    pub reqid: u32,
    pub policy: iked_common::kernel::PolicyParams,
}
