//! Every message that crosses a process boundary, in one place.
//!
//! One enum per direction and channel, so the whole set of things a process
//! can be asked fits on one screen. Messages are postcard-encoded, at most
//! [`MAX_MESSAGE`] bytes, and travel over SOCK_SEQPACKET sockets in frames
//! of at most [`FRAME_SIZE`] bytes ([`channel`] has the framing and the
//! non-blocking [`Channel`] every event loop uses); file descriptors ride on
//! a message's first frame as SCM_RIGHTS. A message that does not decode, or
//! bad framing, is a bug or a compromised peer: the receiver logs it and
//! exits (see [`IpcError`]).

use std::os::fd::{BorrowedFd, OwnedFd};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Defined with the configuration it comes from; carried in [`ChildConfig`].
pub use crate::config::InitiationMode;
use crate::config::{
    EapMethod, FragmentationSettings, IdentitySpec, Policy, PreSharedKey, SignatureAuth,
    UserCredential,
};
use crate::kernel::{
    Flow, IpsecProtocol, KernelEntry, KernelEvent, KernelFailure, KernelSocketKind, Migration,
    PolicyDirection, PolicyParams, SaCounters, SaId, SaParams, Selector,
};
use crate::routing::RouteSettings;
use std::net::IpAddr;

pub mod channel;
pub mod zeroizing;
pub use channel::{Channel, FRAME_SIZE, MAX_QUEUED_BYTES};
pub use zeroizing::SecretBuffer;

/// Bumped whenever any message below changes shape; checked in the startup
/// handshake so a parent never talks to a child from another build.
/// Version 3: framed messages (see [`channel`]); `SaList` carries the total.
/// Version 4: routes (pfkey's route socket and settings) and source
/// address lookups answered by pfkey.
pub const IPC_VERSION: u32 = 6;

/// Largest message a process accepts, reassembled from its frames;
/// anything larger is refused, never truncated. A policy takes about 170
/// bytes in the configuration ikev2 gets, so 16 MiB holds some 90,000
/// policies (1 MiB, the cap before messages were framed, held only about
/// 6,000: a limit large hub gateways reach). Framing makes the cap cheap:
/// nothing is allocated for it up front, a message's memory is taken only as
/// its frames arrive, and the socket buffers stay at their defaults.
pub const MAX_MESSAGE: usize = 16 << 20;

/// Largest `show sa` reply ([`ControlReply::SaList`]); a longer list is cut
/// and says so. It crosses the control socket to ikectl, where the parent
/// writes it while the client waits: kept at what a person or a script
/// reads at once (several thousand IKE SAs) until the list is paged.
pub const MAX_SA_LIST_REPLY: usize = 1 << 20;

/// At most this many descriptors ride on one message.
pub const MAX_FDS_PER_MESSAGE: usize = 4;

/// The four processes of the daemon.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Parent,
    Ikev2,
    Pfkey,
    Ca,
}

impl Role {
    /// The name used in logs ("lost child ikev2") and process titles.
    pub fn name(self) -> &'static str {
        match self {
            Role::Parent => "parent",
            Role::Ikev2 => "ikev2",
            Role::Pfkey => "pfkey",
            Role::Ca => "ca",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        [Role::Parent, Role::Ikev2, Role::Pfkey, Role::Ca]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How much the daemon logs: `ikectl log brief|verbose`, `iked -v`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Notices, warnings and errors.
    Brief,
    /// Also each exchange and state change (`-v`, `ikectl log verbose`).
    Verbose,
    /// Also per-message detail (`-vv`).
    Debug,
}

/// What a descriptor sent with [`ParentToChild::Descriptor`] is for.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorPurpose {
    /// A bound UDP socket for IKE (port 500) or NAT-T (port 4500), to ikev2.
    IkeUdp { port: u16, ipv6: bool },
    /// The kernel key socket for requests, to pfkey.
    KernelRequests(KernelSocketKind),
    /// A second kernel socket subscribed to events (ACQUIRE, EXPIRE), to pfkey.
    KernelEvents(KernelSocketKind),
    /// This child's end of a channel to a sibling process.
    Sibling(Role),
    /// A NETLINK_ROUTE socket, to pfkey: routes for tunnel-mode Child SAs
    /// and the source address lookups ikev2 asks for.
    RouteNetlink,
}

/// The part of the configuration each child is given: never more than it needs.
/// Secrets go to ca only; flows go to pfkey only.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ChildConfig {
    Ikev2 {
        generation: u64,
        mode: InitiationMode,
        /// The policies, without secrets.
        policies: Vec<Policy>,
        /// `set dpd_check_interval` in seconds; 0 disables DPD.
        dpd_check_interval: u32,
        /// `set fragmentation|nofragmentation`, `set fragment_size`
        /// (RFC 7383).
        fragmentation: FragmentationSettings,
        /// `set mobike|nomobike` (RFC 4555).
        mobike: bool,
        /// The engine's tunables and `set enforcesingleikesa`.
        engine: crate::config::EngineTunables,
    },
    Pfkey {
        generation: u64,
        /// Everything pfkey may install; requests outside are refused.
        flows: Vec<Flow>,
        /// Whether and where pfkey routes the remote networks of tunnel-mode
        /// Child SAs.
        routing: RouteSettings,
    },
    Ca {
        generation: u64,
        /// Pre-shared keys by policy name.
        psks: Vec<(String, PreSharedKey)>,
        /// The public-key policies: what ca signs and accepts for each.
        pubkey_policies: Vec<CaPolicy>,
        /// The certificate store's files as the parent read them from
        /// `set certdir`; ca parses and checks them (the parent only reads).
        store: Box<CertStoreFiles>,
        /// The policies with `eap`: the method, and for an initiator the
        /// user whose credentials it authenticates with.
        eap_policies: Vec<CaEapPolicy>,
        /// `user "name" "password"`: the EAP users (secrets, ca only).
        users: Vec<UserCredential>,
    },
}

/// What ca needs of a policy with `eap` (RemoteAccess::eap).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CaEapPolicy {
    pub name: String,
    pub method: EapMethod,
    /// As EAP client (an initiator policy): the `user` we authenticate
    /// as, named by the policy's `srcid`. None for a gateway's policy.
    pub client_user: Option<String>,
}

/// What ca needs of a public-key policy (AuthSpec::PublicKey).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CaPolicy {
    pub name: String,
    pub auth: SignatureAuth,
    /// Our identity; None = the subject DN of our certificate.
    pub srcid: Option<IdentitySpec>,
    /// The identity the peer must prove: its certificate must name it.
    pub dstid: Option<IdentitySpec>,
}

/// One file of the certificate store: its path (for messages) and contents.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct StoreFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The certificate store as read from disk (iked's layout under certdir).
/// Empty when no policy uses public keys. Only ca parses these bytes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CertStoreFiles {
    /// The directory, for messages.
    pub dir: String,
    /// `ca/*`: trusted CA certificates (PEM).
    pub ca_certs: Vec<StoreFile>,
    /// `certs/*`: our certificate and its intermediates (PEM).
    pub certs: Vec<StoreFile>,
    /// `crls/*`: revocation lists (PEM or DER).
    pub crls: Vec<StoreFile>,
    /// `private/local.key`: our private key (PEM). Zeroed when dropped.
    pub private_key: Option<SecretStoreFile>,
    /// `pubkeys/{ipv4,ipv6,fqdn,ufqdn}/ID`: raw public keys of peers.
    pub pubkeys: Vec<PeerPublicKey>,
}

/// A private key file; its bytes are zeroed when dropped and never printed.
#[derive(Serialize, Deserialize, Clone, PartialEq, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct SecretStoreFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for SecretStoreFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretStoreFile({}, {} bytes)",
            self.path,
            self.bytes.len()
        )
    }
}

/// A raw public key from `pubkeys/KIND/ID`: the identity it belongs to.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PeerPublicKey {
    pub identity: IdentitySpec,
    pub file: StoreFile,
}

/// An identity as it goes on the wire: ID type (RFC 7296 §3.5) and body.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WireIdentity {
    pub id_type: u8,
    /// The Identification Data alone (an address's octets, a name's
    /// ASCII, a DN's DER): not the type and reserved octets before it.
    pub body: Vec<u8>,
}

impl ChildConfig {
    pub fn generation(&self) -> u64 {
        match self {
            ChildConfig::Ikev2 { generation, .. }
            | ChildConfig::Pfkey { generation, .. }
            | ChildConfig::Ca { generation, .. } => *generation,
        }
    }
}

/// Parent → any child.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ParentToChild {
    /// First message on the channel. The child answers with
    /// [`ChildToParent::Hello`] or exits on a version mismatch.
    Hello {
        version: u32,
        verbosity: Verbosity,
        /// Where to chroot; resolved by the parent, which can read /etc.
        chroot_dir: String,
        /// The unprivileged user's ids, resolved by the parent.
        uid: u32,
        gid: u32,
    },
    /// Exactly one descriptor rides along.
    Descriptor(DescriptorPurpose),
    /// All descriptors were sent: drop privileges now and answer `Ready`.
    DropPrivileges {
        /// What the seccomp filter does with a forbidden system call: kill
        /// (production) or log (`iked -d --seccomp-log`).
        on_violation: crate::privileges::sandbox::ViolationAction,
    },
    /// A new configuration generation.
    Config(ChildConfig),
    SetVerbosity(Verbosity),
    /// Orderly shutdown: finish (pfkey: flush what we installed), answer
    /// [`ChildToParent::ShutdownComplete`], exit 0.
    Shutdown,
    /// ikev2: an operator's command from ikectl; answered by
    /// [`ChildToParent::ControlResult`] with the same id.
    Control {
        id: u64,
        command: ControlCommand,
    },
    /// ca: an operator's command about the certificate store; answered by
    /// [`ChildToParent::ControlResult`] with the same id.
    CaControl {
        id: u64,
        command: CaCommand,
    },
    /// Reload, phase one: check this configuration and keep it aside
    /// without applying it; answer [`ChildToParent::ConfigPrepared`] or
    /// [`ChildToParent::ConfigRefused`]. Nothing changes until
    /// [`ParentToChild::CommitConfig`] of the same generation.
    PrepareConfig(ChildConfig),
    /// Reload, phase two: every child prepared `generation`; switch to it
    /// and answer [`ChildToParent::ConfigApplied`].
    CommitConfig {
        generation: u64,
    },
    /// Reload abandoned (a child refused or did not answer in time): drop
    /// the prepared `generation`, the current configuration stays.
    AbortConfig {
        generation: u64,
    },
    /// pfkey: an operator's command about the kernel entries we installed
    /// (`ikectl show flows|couple|decouple`); answered by
    /// [`ChildToParent::ControlResult`] with the same id.
    PfkeyControl {
        id: u64,
        command: PfkeyCommand,
    },
}

/// Any child → parent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ChildToParent {
    Hello {
        version: u32,
        role: Role,
    },
    /// Privileges are dropped; the child serves from now on.
    Ready,
    ConfigApplied {
        generation: u64,
    },
    /// ca: the configuration's keys and policies are applied, but its
    /// certificate store was refused (`reason` names the file); the
    /// previous store stays in force.
    StoreRefused {
        generation: u64,
        reason: String,
    },
    /// pfkey: an entry now exists in the kernel because of us. The parent keeps
    /// the list so it can flush our entries even if pfkey dies (fail closed).
    KernelEntryAdded(KernelEntry),
    /// pfkey: that entry is gone again.
    KernelEntryRemoved(KernelEntry),
    /// pfkey: it put this host address (/32 or /128) on the interface of
    /// this index ([`Ikev2ToPfkey::AddAddress`]). The parent keeps the list
    /// so it can remove them even if pfkey dies, as for kernel entries.
    AddressAdded {
        interface: u32,
        address: IpAddr,
    },
    /// pfkey: that address is gone again.
    AddressRemoved {
        interface: u32,
        address: IpAddr,
    },
    ShutdownComplete,
    /// ikev2 or ca: the answer to [`ParentToChild::Control`] or
    /// [`ParentToChild::CaControl`].
    ControlResult {
        id: u64,
        reply: ControlReply,
    },
    /// The answer to [`ParentToChild::PrepareConfig`]: checked and kept
    /// aside, ready to commit.
    ConfigPrepared {
        generation: u64,
    },
    /// The answer to [`ParentToChild::PrepareConfig`]: this child cannot
    /// take the configuration (`reason` says why); the reload is aborted
    /// for all and the current configuration stays.
    ConfigRefused {
        generation: u64,
        reason: String,
    },
    /// ikev2: an SA event for `ikectl monitor` clients.
    Event(Box<crate::stats::SaEvent>),
    /// pfkey: its counters, sent when they change (`ikectl show stats`).
    PfkeyStats(crate::stats::PfkeyStats),
}

/// What the parent forwards from ikectl to ikev2.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ControlCommand {
    /// `ikectl show sa`
    ShowSa,
    /// `ikectl initiate NAME`: start the IKE SA of policy NAME now.
    Initiate { policy: String },
    /// `ikectl terminate NAME`: delete every IKE SA of policy NAME (with
    /// INFORMATIONAL DELETE to the peer) and its Child SAs.
    Terminate { policy: String },
    /// `ikectl show stats`: the engine's counters, answered with
    /// [`ControlReply::Stats`] (the parent adds its own).
    ShowStats,
    /// `ikectl show sa` narrowed: only IKE SAs of policy `policy` and/or
    /// with a peer whose address or identity is `peer`.
    ShowSaFiltered {
        policy: Option<String>,
        peer: Option<String>,
    },
    /// `ikectl terminate --sa SPI`: delete the one IKE SA whose initiator
    /// or responder SPI is `spi` (with INFORMATIONAL DELETE to the peer).
    TerminateSa { spi: u64 },
    /// `ikectl active|passive`: the initiation mode from now on; active
    /// starts the active policies that have no IKE SA.
    SetMode(InitiationMode),
    /// `ikectl reset sa`: delete every IKE SA (and its Child SAs), telling
    /// the peers; policies stay.
    ResetSas,
    /// `ikectl reset id ID`: delete the IKE SAs whose peer identity is ID.
    ResetId { id: String },
}

/// What the parent forwards from ikectl to ca.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaCommand {
    /// `ikectl show certstore`: what ca has loaded.
    ShowCertStore,
    /// `ikectl reset ca`: the parent has just sent the store re-read from
    /// certdir (a [`ChildConfig::Ca`]); ca answers whether it took it.
    StoreStatus,
}

/// `ikectl show certstore`: the store ca has in force.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CertStoreInfo {
    pub dir: String,
    /// The configuration generation the store came with.
    pub generation: u64,
    /// Why the last store offered was refused (the one shown stays).
    pub refusal: Option<String>,
    /// `ca/`.
    pub cas: Vec<CertificateInfo>,
    /// `private/local.key`: its key type, when loaded.
    pub local_key: Option<String>,
    /// Our certificate and the intermediates we send, end entity first.
    pub local_chain: Vec<CertificateInfo>,
    /// The rest of `certs/`.
    pub other_certs: Vec<CertificateInfo>,
    pub crls: Vec<CrlInfo>,
    /// `pubkeys/`: identity, key type, file.
    pub raw_keys: Vec<(String, String, String)>,
}

/// One certificate as `show certstore` prints it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CertificateInfo {
    pub file: String,
    pub subject: String,
    pub issuer: String,
    /// "DNS:gw.example", "email:a@b", "IP:198.18.0.1".
    pub sans: Vec<String>,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// "RSA (3072 bits)", "ECDSA P-256", "Ed25519".
    pub key: String,
}

/// One CRL as `show certstore` prints it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CrlInfo {
    pub file: String,
    pub issuer: String,
    pub last_update: String,
    pub next_update: Option<String>,
    pub revoked: u64,
}

/// One IKE SA as `ikectl show sa` prints it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct IkeSaInfo {
    pub policy: String,
    /// "SA_INIT sent", "AUTH sent", "established", "rekeying", "deleting", ...
    pub state: String,
    pub initiator: bool,
    pub local: std::net::SocketAddr,
    pub peer: std::net::SocketAddr,
    pub local_id: String,
    pub peer_id: String,
    /// IKE SPIs as 16 hex digits each.
    pub spi_i: String,
    pub spi_r: String,
    pub encryption: String,
    pub integrity: Option<String>,
    pub prf: String,
    pub dh_group: String,
    pub nat_t: bool,
    /// Seconds since established; None while negotiating.
    pub established_secs: Option<u64>,
    /// Seconds until the IKE SA rekeys; None if not scheduled.
    pub rekey_in_secs: Option<u64>,
    /// Addresses from a Configuration payload: as gateway, those leased
    /// to this peer; as client, those the gateway gave us.
    pub virtual_ips: Vec<std::net::IpAddr>,
    /// The identity the peer proved with EAP (RFC 7296 §2.16), when it
    /// differs from its IKE identity or the policy uses EAP.
    pub eap_identity: Option<String>,
    /// Whether both sides announced MOBIKE_SUPPORTED (RFC 4555 §3.1).
    pub mobike: bool,
    pub children: Vec<ChildSaInfo>,
}

/// One Child SA pair as `ikectl show sa` prints it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ChildSaInfo {
    /// "established", "rekeying", "deleting", "install failed", ...
    pub state: String,
    /// ESP SPIs as 8 hex digits.
    pub spi_in: String,
    pub spi_out: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    /// "tunnel" or "transport".
    pub mode: String,
    pub encryption: String,
    pub integrity: Option<String>,
    pub pfs_group: Option<String>,
    /// Whether the kernel holds the SAs (false when the install failed).
    pub installed: bool,
    /// Octets through the inbound and the outbound SA, as the kernel
    /// counts them; None when the kernel was not asked or did not answer
    /// (shown as such, never as a made-up zero).
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub established_secs: u64,
    pub rekey_in_secs: Option<u64>,
}

/// ikev2 → pfkey. Every request carries an id echoed in the reply, so
/// ikev2 never blocks waiting.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Ikev2ToPfkey {
    /// Liveness check used by the startup self-test.
    Ping {
        id: u64,
    },
    /// Reserve an inbound SPI in `min..=max` for an SA from `src` (the peer)
    /// to `dst` (us). Answered by [`PfkeyToIkev2::SpiAllocated`].
    AllocateSpi {
        id: u64,
        src: IpAddr,
        dst: IpAddr,
        protocol: IpsecProtocol,
        reqid: u32,
        min: u32,
        max: u32,
    },
    /// Install an SA (or complete one whose SPI was allocated).
    AddSa {
        id: u64,
        sa: SaParams,
    },
    /// Replace an existing SA of ours (same destination, protocol, SPI).
    UpdateSa {
        id: u64,
        sa: SaParams,
    },
    /// Remove an SA we installed.
    DeleteSa {
        id: u64,
        sa: SaId,
    },
    AddPolicy {
        id: u64,
        policy: PolicyParams,
    },
    /// Remove a policy we installed.
    DeletePolicy {
        id: u64,
        selector: Selector,
        direction: PolicyDirection,
    },
    /// Read the kernel's traffic counters of SAs we installed (at most
    /// [`MAX_COUNTER_REQUEST`]). Answered by [`PfkeyToIkev2::Counters`].
    GetCounters {
        id: u64,
        sas: Vec<SaId>,
    },
    /// The source address the kernel would use towards `peer` (a route
    /// lookup, which needs a socket ikev2 may not open). Answered by
    /// [`PfkeyToIkev2::SourceAddress`] or [`PfkeyToIkev2::Failed`].
    LookupSource {
        id: u64,
        peer: IpAddr,
    },
    /// A client's address from the gateway's CFG_REPLY, put on the flow's
    /// `virtual_ip_interface` (RTM_NEWADDR, as a /32 or /128) so that
    /// traffic from it matches the Child SA. pfkey refuses it for a
    /// policy without `request address`. Answered by Done or Failed.
    AddAddress {
        id: u64,
        policy: String,
        address: IpAddr,
    },
    /// Remove an address added by [`Ikev2ToPfkey::AddAddress`] (the IKE
    /// SA that got it is gone). Answered by Done or Failed.
    DeleteAddress {
        id: u64,
        policy: String,
        address: IpAddr,
    },
    /// Move a Child SA's SAs and policies to new outer addresses (MOBIKE,
    /// NAT mapping change). Answered by Done or Failed.
    Migrate {
        id: u64,
        migration: Migration,
    },
}

/// At most this many SAs in one [`Ikev2ToPfkey::GetCounters`]; pfkey
/// refuses a longer list.
pub const MAX_COUNTER_REQUEST: usize = 4096;

/// pfkey → ikev2.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum PfkeyToIkev2 {
    Pong {
        id: u64,
    },
    SpiAllocated {
        id: u64,
        spi: u32,
    },
    /// The request with this id was carried out.
    Done {
        id: u64,
    },
    /// Refused by pfkey (outside the flows) or failed in the kernel.
    Failed {
        id: u64,
        failure: KernelFailure,
    },
    /// The answer to [`Ikev2ToPfkey::GetCounters`]: each SA asked for, in
    /// the same order, with None where pfkey did not install it or the
    /// kernel could not say.
    Counters {
        id: u64,
        counters: Vec<(SaId, Option<SaCounters>)>,
    },
    /// Something the kernel reported on its own (ACQUIRE, EXPIRE).
    Event(KernelEvent),
    /// The answer to [`Ikev2ToPfkey::LookupSource`]: the kernel's preferred
    /// source address towards that peer.
    SourceAddress {
        id: u64,
        source: IpAddr,
    },
}

/// ikev2 → ca.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Ikev2ToCa {
    Ping {
        id: u64,
    },
    /// Our AUTH payload data for `policy` over `signed_octets` (RFC 7296
    /// §2.15; ikev2 builds the octets, including prf(SK_p, ID')). `prf` is
    /// the IKE SA's PRF transform ID. Answered by [`CaToIkev2::Auth`].
    SignAuth {
        id: u64,
        policy: String,
        prf: u16,
        signed_octets: Vec<u8>,
        /// The peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4); empty when
        /// it sent none. Only public-key policies use it.
        peer_hash_algorithms: Vec<u16>,
        /// The peer's CERTREQ (X.509 encoding): SHA-1 hashes of the
        /// SubjectPublicKeyInfo of the CAs it trusts, 20 bytes each.
        cert_authorities: Vec<Vec<u8>>,
        /// Some: our AUTH after EAP as client, made with this EAP
        /// session's MSK (RFC 7296 §2.16) instead of the policy's key.
        eap_session: Option<u64>,
    },
    /// Is the peer's AUTH payload right for `policy`? Answered by
    /// [`CaToIkev2::Verified`].
    VerifyAuth {
        id: u64,
        policy: String,
        prf: u16,
        auth_method: u8,
        signed_octets: Vec<u8>,
        auth_data: Vec<u8>,
        /// The peer's ID payload (IDi or IDr): its certificate must name it.
        peer_id: WireIdentity,
        /// The peer's CERT payloads of X.509 encoding (4), in the order
        /// received (end entity first). Others are not passed on.
        certs: Vec<Vec<u8>>,
        /// Some: the AUTH is the peer's MSK-based one after EAP (RFC 7296
        /// §2.16), checked with the MSK of this EAP session instead of a
        /// PSK or a certificate.
        eap_session: Option<u64>,
    },
    /// One step of an EAP conversation (RFC 3748) run by ca: as server,
    /// `message` is the peer's EAP Response (empty to start: ca answers
    /// with its first Request, EAP-Identity); as client, the gateway's
    /// EAP Request, Success or Failure. Answered by [`CaToIkev2::Eap`].
    /// `session` is ikev2's name for the conversation (the IKE SA's SPI).
    Eap {
        id: u64,
        session: u64,
        policy: String,
        role: EapRole,
        message: Vec<u8>,
    },
    /// The EAP conversation is over (its IKE SA is established or gone):
    /// ca forgets it and its MSK. No answer.
    EapEnd {
        session: u64,
    },
}

/// Which side of EAP ca plays for a session.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EapRole {
    /// We are the gateway (EAP server, RFC 3748 authenticator).
    Server,
    /// We are the client (EAP peer).
    Client,
}

/// What ca says after an EAP step.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum EapStep {
    /// Send this EAP packet to the peer in the next IKE_AUTH message and
    /// pass its answer back.
    Send(Vec<u8>),
    /// The method succeeded and ca holds the MSK. As server, `message` is
    /// the EAP-Success to send, `identity` the name the peer proved. As
    /// client, the gateway's EAP-Success was accepted (only after the
    /// method completed and the gateway proved itself, CVE-2021-45079's
    /// class); `message` is empty. Next comes the MSK-based AUTH.
    Succeeded { message: Vec<u8>, identity: String },
    /// Authentication failed: `message` is what to send (an EAP-Failure
    /// as server; empty as client), then AUTHENTICATION_FAILED.
    Failed { message: Vec<u8>, reason: String },
}

/// ca → ikev2.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum CaToIkev2 {
    Pong {
        id: u64,
    },
    /// AUTH payload contents: the method (2 = Shared Key MIC) and data.
    Auth {
        id: u64,
        auth_method: u8,
        auth_data: Vec<u8>,
        /// CERT payloads (X.509, encoding 4) to send before AUTH: our
        /// certificate first, then its intermediates. Empty for PSK and
        /// raw public keys.
        certs: Vec<Vec<u8>>,
    },
    /// The peer's AUTH was checked: `ok` false means AUTHENTICATION_FAILED,
    /// for the `reason` given (ca logs it too).
    Verified {
        id: u64,
        ok: bool,
        reason: String,
    },
    /// Sent by ca unasked after each configuration it applied: what ikev2
    /// needs before it may ask for a signature.
    Store {
        generation: u64,
        /// SHA-1 of the SubjectPublicKeyInfo of each trusted CA: the
        /// contents of our CERTREQ payloads (RFC 7296 §3.7).
        cert_authorities: Vec<Vec<u8>>,
        /// Our identity per public-key policy: `srcid` when configured,
        /// else our certificate's subject DN (ID_DER_ASN1_DN).
        local_ids: Vec<(String, WireIdentity)>,
    },
    /// The answer to [`Ikev2ToCa::Eap`].
    Eap {
        id: u64,
        session: u64,
        step: EapStep,
    },
    /// The request could not be served (no key for the policy, bad PRF).
    Failed {
        id: u64,
        reason: String,
    },
}

/// ikectl → parent, over the control socket.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ControlRequest {
    Hello {
        version: u32,
    },
    SetVerbosity(Verbosity),
    Reload,
    /// Forwarded to ikev2.
    Ikev2(ControlCommand),
    /// `ikectl show certstore`, forwarded to ca.
    ShowCertStore,
    /// `ikectl reset ca`: the parent re-reads the certificate store and
    /// gives it to ca, as a reload does.
    ResetCa,
    /// `ikectl monitor`: answered with `Done`, then a stream of
    /// [`ControlReply::Event`] until the client leaves.
    Monitor,
    /// `ikectl load FILE`: load another configuration file, with the
    /// checks and atomicity of a reload; root only. `path` is absolute.
    Load {
        path: String,
    },
    /// `ikectl active|passive`.
    SetMode(InitiationMode),
    /// `ikectl show flows`, `ikectl couple|decouple`: forwarded to pfkey.
    Pfkey(PfkeyCommand),
    /// `ikectl reset all|policy|user` (sa and id go to ikev2, ca above).
    Reset(ResetTarget),
}

/// parent → ikectl.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ControlReply {
    Hello {
        version: u32,
    },
    Done(String),
    Failed(String),
    /// `show sa`: the IKE SAs that fit into one message, of `total`. When
    /// `sas.len() < total` the list was cut to the message size limit
    /// (ikectl says so); it is never an error.
    SaList {
        sas: Vec<IkeSaInfo>,
        total: u64,
    },
    /// `show certstore`.
    CertStore(Box<CertStoreInfo>),
    /// `show stats`.
    Stats(Box<crate::stats::StatsReport>),
    /// One event of `ikectl monitor`.
    Event(Box<crate::stats::SaEvent>),
    /// `show flows`: the kernel entries pfkey installed.
    Flows(Box<FlowsInfo>),
}

/// What the parent forwards from ikectl to pfkey.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfkeyCommand {
    /// `ikectl show flows`.
    ShowFlows,
    /// `ikectl couple` (true) or `decouple` (false): put our IPsec
    /// policies into the kernel, or take them out while the SAs stay.
    Couple(bool),
}

/// `ikectl reset` targets the parent handles itself.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// Policies, SAs and users: the daemon runs with an empty
    /// configuration until the next reload.
    All,
    /// Every policy (their SAs are deleted with them) until a reload.
    Policy,
    /// The local user database (`user` lines) until a reload.
    User,
}

/// Most entries of each kind in a [`ControlReply::Flows`]; the totals say
/// how many there are.
pub const MAX_FLOWS_LISTED: usize = 4096;

/// `ikectl show flows`: what pfkey installed in the kernel.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct FlowsInfo {
    /// "xfrm" or "pfkey".
    pub kernel: String,
    /// False after `ikectl decouple`: the policies are held, not in the
    /// kernel.
    pub coupled: bool,
    pub policies: Vec<FlowPolicyInfo>,
    pub policies_total: u64,
    pub sas: Vec<FlowSaInfo>,
    pub sas_total: u64,
}

/// One IPsec policy of ours.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct FlowPolicyInfo {
    /// "10.1.0.0/16 -> 10.2.0.0/16 proto any".
    pub selector: String,
    /// "in", "out" or "fwd".
    pub direction: String,
    /// The template's endpoints and reqid, when known.
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub reqid: Option<u32>,
    /// "tunnel" or "transport", when known.
    pub mode: Option<String>,
    /// False while decoupled.
    pub in_kernel: bool,
}

/// One SA of ours.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct FlowSaInfo {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// "esp" or "ah".
    pub protocol: String,
    /// 8 hex digits.
    pub spi: String,
    /// The configured policy it was admitted under; None for a larval SA
    /// (an SPI reserved, not yet keyed).
    pub policy: Option<String>,
}

/// Why a message could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("peer closed the channel")]
    Closed,
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE}-byte cap")]
    Oversized(usize),
    #[error("malformed message ({len} bytes): {reason}")]
    Malformed { len: usize, reason: String },
    #[error("{0} descriptors attached, at most {MAX_FDS_PER_MESSAGE} allowed")]
    TooManyDescriptors(usize),
    #[error("descriptor control data truncated")]
    ControlTruncated,
    #[error("expected {expected} attached descriptor(s), got {got}")]
    DescriptorCount { expected: usize, got: usize },
    /// The peer has left this many bytes of ours unread: it is stuck or
    /// broken, and we stop rather than block or drop messages (see
    /// [`channel`]).
    #[error("peer not reading: {queued} bytes queued, limit {limit}")]
    QueueFull { queued: usize, limit: usize },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<nix::Error> for IpcError {
    fn from(e: nix::Error) -> Self {
        IpcError::Io(std::io::Error::from(e))
    }
}

/// A decoded message and the descriptors that came with it.
#[derive(Debug)]
pub struct Received<T> {
    pub message: T,
    pub descriptors: Vec<OwnedFd>,
}

impl<T> Received<T> {
    /// The message, insisting that it carried exactly `n` descriptors.
    pub fn expect_descriptors(self, n: usize) -> Result<(T, Vec<OwnedFd>), IpcError> {
        if self.descriptors.len() != n {
            return Err(IpcError::DescriptorCount {
                expected: n,
                got: self.descriptors.len(),
            });
        }
        Ok((self.message, self.descriptors))
    }
}

/// Encodes a message, refusing anything over the cap (before allocating
/// past it). The bytes are zeroed when dropped, and so is every smaller
/// buffer they outgrew ([`zeroizing`]): a message may carry keys.
pub fn encode<T: Serialize>(message: &T) -> Result<SecretBuffer, IpcError> {
    // Counted first, so the output is allocated once at its size and never
    // leaves an outgrown copy to zero.
    let encoded =
        postcard::serialize_with_flavor(message, zeroizing::CountingFlavor::new(MAX_MESSAGE))
            .and_then(|size| {
                postcard::serialize_with_flavor(
                    message,
                    zeroizing::ZeroizingFlavor::new(MAX_MESSAGE, size),
                )
            });
    match encoded {
        Ok(bytes) => Ok(bytes),
        Err(postcard::Error::SerializeBufferFull) => Err(IpcError::Oversized(MAX_MESSAGE + 1)),
        Err(e) => Err(IpcError::Malformed {
            len: 0,
            reason: e.to_string(),
        }),
    }
}

/// Decodes one datagram. Trailing bytes are an error: a datagram is exactly
/// one message.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, IpcError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(IpcError::Oversized(bytes.len()));
    }
    let (message, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| IpcError::Malformed {
            len: bytes.len(),
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(IpcError::Malformed {
            len: bytes.len(),
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(message)
}

/// Sends one message, with `descriptors` attached as SCM_RIGHTS, waiting
/// for the socket as long as it takes: only for the startup handshake and
/// one-peer clients such as ikectl. Event loops use [`Channel`], whose
/// sends never block.
pub fn send<T: Serialize>(
    socket: BorrowedFd<'_>,
    message: &T,
    descriptors: &[BorrowedFd<'_>],
) -> Result<(), IpcError> {
    channel::send_blocking(socket, message, descriptors)
}

/// Receives one message and any descriptors (close-on-exec set), waiting
/// for all its frames. A message over the cap, bad framing, cut control
/// data, or bytes that do not decode as `T` are errors; received
/// descriptors are closed when the error is dropped.
pub fn recv<T: DeserializeOwned>(socket: BorrowedFd<'_>) -> Result<Received<T>, IpcError> {
    channel::recv_blocking(socket)
}

/// A connected pair of SOCK_SEQPACKET sockets, close-on-exec.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), IpcError> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((a, b))
}

#[cfg(test)]
mod tests;
