//! Kernel-facing vocabulary shared by the parent, ikev2 and pfkey: which key
//! socket is in use, the flows pfkey may install, the SAs and policies ikev2
//! asks for, the events the kernel reports, and what entries we put in the
//! kernel.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::wire::{EncrId, IntegId};

/// The kernel key interface (`set kernel pfkey|xfrm`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSocketKind {
    /// Linux XFRM netlink (NETLINK_XFRM).
    Xfrm,
    /// PF_KEY v2 (RFC 2367) with the KAME/Linux extensions.
    Pfkey,
}

impl KernelSocketKind {
    pub fn name(self) -> &'static str {
        match self {
            KernelSocketKind::Xfrm => "xfrm",
            KernelSocketKind::Pfkey => "pfkey",
        }
    }
}

/// Direction of a security policy.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyDirection {
    In,
    Out,
    Fwd,
}

/// The IPsec protocol of an SA. Only ESP: AH protects nothing ESP with
/// integrity cannot, and RFC 8221 §4 keeps it for legacy use only.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpsecProtocol {
    Esp,
}

impl IpsecProtocol {
    /// The IP protocol number (IANA): ESP is 50.
    pub fn number(self) -> u8 {
        match self {
            IpsecProtocol::Esp => 50,
        }
    }

    pub fn from_number(number: u8) -> Option<IpsecProtocol> {
        (number == 50).then_some(IpsecProtocol::Esp)
    }
}

/// Tunnel or transport mode (RFC 4301 §4.1).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpsecMode {
    Transport,
    Tunnel,
}

/// A traffic selector as the kernel sees it: two prefixes, an IP protocol and
/// ports. Zero protocol or port means any.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selector {
    pub src: IpAddr,
    pub src_prefix: u8,
    pub dst: IpAddr,
    pub dst_prefix: u8,
    /// IP protocol, 0 for any.
    pub protocol: u8,
    /// Source port, 0 for any.
    pub src_port: u16,
    /// Destination port, 0 for any.
    pub dst_port: u16,
}

/// Largest prefix length for an address of this family.
pub fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Whether `addr` lies in `net`/`prefix` (same family required).
fn in_prefix(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

impl Selector {
    /// A selector between two prefixes, any protocol and port.
    pub fn between(src: IpAddr, src_prefix: u8, dst: IpAddr, dst_prefix: u8) -> Selector {
        Selector {
            src,
            src_prefix,
            dst,
            dst_prefix,
            protocol: 0,
            src_port: 0,
            dst_port: 0,
        }
    }

    /// A selector for exactly one pair of hosts, any protocol.
    pub fn hosts(src: IpAddr, dst: IpAddr) -> Selector {
        Selector::between(src, max_prefix(src), dst, max_prefix(dst))
    }

    /// The same traffic seen from the other side.
    pub fn reversed(&self) -> Selector {
        Selector {
            src: self.dst,
            src_prefix: self.dst_prefix,
            dst: self.src,
            dst_prefix: self.src_prefix,
            protocol: self.protocol,
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }

    /// Both addresses of one family and prefixes no longer than the address.
    pub fn is_well_formed(&self) -> bool {
        self.src.is_ipv4() == self.dst.is_ipv4()
            && self.src_prefix <= max_prefix(self.src)
            && self.dst_prefix <= max_prefix(self.dst)
    }

    /// Whether every packet `inner` matches also matches `self`.
    pub fn contains(&self, inner: &Selector) -> bool {
        self.is_well_formed()
            && inner.is_well_formed()
            && inner.src_prefix >= self.src_prefix
            && inner.dst_prefix >= self.dst_prefix
            && in_prefix(self.src, self.src_prefix, inner.src)
            && in_prefix(self.dst, self.dst_prefix, inner.dst)
            && (self.protocol == 0 || self.protocol == inner.protocol)
            && (self.src_port == 0 || self.src_port == inner.src_port)
            && (self.dst_port == 0 || self.dst_port == inner.dst_port)
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.src, self.src_prefix)?;
        if self.src_port != 0 {
            write!(f, " port {}", self.src_port)?;
        }
        write!(f, " -> {}/{}", self.dst, self.dst_prefix)?;
        if self.dst_port != 0 {
            write!(f, " port {}", self.dst_port)?;
        }
        if self.protocol != 0 {
            write!(f, " proto {}", self.protocol)?;
        }
        Ok(())
    }
}

/// ESP encryption transforms pfkey can install.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// AES-CBC (RFC 3602); needs an integrity transform.
    AesCbc,
    /// AES-GCM with a 16-octet ICV (RFC 4106).
    AesGcm16,
    /// ChaCha20-Poly1305 (RFC 7634).
    ChaCha20Poly1305,
    /// Camellia-CBC (RFC 4312); needs an integrity transform.
    CamelliaCbc,
}

impl Encryption {
    /// The ESP cipher the kernel is given for an IKE ENCR transform (RFC 7296
    /// §3.3.2), `None` for those we do not install: the one table from the
    /// IANA registry to the kernel's ciphers, for the flows the parent
    /// derives and the Child SAs ikev2 negotiates alike.
    pub const fn from_encr(id: EncrId) -> Option<Encryption> {
        match id {
            EncrId::AesCbc => Some(Encryption::AesCbc),
            EncrId::AesGcm16 => Some(Encryption::AesGcm16),
            EncrId::Chacha20Poly1305 => Some(Encryption::ChaCha20Poly1305),
            EncrId::CamelliaCbc => Some(Encryption::CamelliaCbc),
            _ => None,
        }
    }

    /// Combined-mode ciphers carry their own integrity.
    pub fn is_aead(self) -> bool {
        !matches!(self, Encryption::AesCbc | Encryption::CamelliaCbc)
    }

    /// Valid key lengths in octets, salt included for AEAD (RFC 4106 §8.1,
    /// RFC 7634 §2: four salt octets follow the key).
    pub fn key_lengths(self) -> &'static [usize] {
        match self {
            Encryption::AesCbc | Encryption::CamelliaCbc => &[16, 24, 32],
            Encryption::AesGcm16 => &[20, 28, 36],
            Encryption::ChaCha20Poly1305 => &[36],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encryption::AesCbc => "aes-cbc",
            Encryption::AesGcm16 => "aes-gcm-16",
            Encryption::ChaCha20Poly1305 => "chacha20-poly1305",
            Encryption::CamelliaCbc => "camellia-cbc",
        }
    }
}

/// ESP integrity transforms (RFC 4868 for the SHA-2 ones).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integrity {
    HmacSha1_96,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl Integrity {
    /// The ESP integrity transform for an IKE INTEG transform, `None` for
    /// those we do not install (the counterpart of [`Encryption::from_encr`]).
    pub const fn from_integ(id: IntegId) -> Option<Integrity> {
        match id {
            IntegId::HmacSha1_96 => Some(Integrity::HmacSha1_96),
            IntegId::HmacSha2_256_128 => Some(Integrity::HmacSha256_128),
            IntegId::HmacSha2_384_192 => Some(Integrity::HmacSha384_192),
            IntegId::HmacSha2_512_256 => Some(Integrity::HmacSha512_256),
            _ => None,
        }
    }

    pub fn key_length(self) -> usize {
        match self {
            Integrity::HmacSha1_96 => 20,
            Integrity::HmacSha256_128 => 32,
            Integrity::HmacSha384_192 => 48,
            Integrity::HmacSha512_256 => 64,
        }
    }

    /// Length of the truncated ICV in bits.
    pub fn truncated_bits(self) -> u32 {
        match self {
            Integrity::HmacSha1_96 => 96,
            Integrity::HmacSha256_128 => 128,
            Integrity::HmacSha384_192 => 192,
            Integrity::HmacSha512_256 => 256,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Integrity::HmacSha1_96 => "hmac-sha1-96",
            Integrity::HmacSha256_128 => "hmac-sha256-128",
            Integrity::HmacSha384_192 => "hmac-sha384-192",
            Integrity::HmacSha512_256 => "hmac-sha512-256",
        }
    }
}

/// Key material: zeroed when dropped, never printed.
#[derive(Serialize, Deserialize, Clone, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

/// Keys compare in constant time, like every secret (`ct_eq`).
impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        crate::crypto::secret::ct_eq(&self.0, &other.0)
    }
}

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes({} octets)", self.0.len())
    }
}

/// What a flow (one configured policy) allows pfkey to install: traffic
/// between two networks, protected between two gateways, with these
/// transforms. The selector is seen from our side (local → remote).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// The configured policy's name, for logs.
    pub name: String,
    pub selector: Selector,
    /// Our gateway address (outer source of outbound ESP).
    pub local: IpAddr,
    /// The peer's gateway address: one, or any in a range for a policy
    /// with `peer any` or `peer NET` (road warriors).
    pub peer: FlowPeer,
    pub mode: IpsecMode,
    pub encryption: Vec<Encryption>,
    pub integrity: Vec<Integrity>,
    /// What else an SA of this flow must keep to (pfkey checks each).
    pub limits: SaLimits,
    /// The policy's address pools (`config address NET`): the remote
    /// side of an SA's traffic may also be one single address inside one
    /// of them (the lease ikev2 handed the peer), besides lying inside
    /// the selector's remote side.
    pub pools: Vec<crate::config::Prefix>,
    /// A client policy with `request address any`: the interface on
    /// which ikev2 may ask pfkey to put the address the gateway gave us
    /// (`iface`, default `lo`). None: ikev2 may install no address for it.
    pub virtual_ip_interface: Option<String>,
}

/// The peer side of a [`Flow`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowPeer {
    /// A configured peer address (`peer ADDR`).
    Address(IpAddr),
    /// Any address inside this prefix (`peer NET`; `peer any` is the
    /// family's /0). SAs and policies still name one peer address each.
    Range(crate::config::Prefix),
}

impl FlowPeer {
    /// Whether `addr` may be this flow's peer.
    pub fn admits(&self, addr: IpAddr) -> bool {
        match self {
            FlowPeer::Address(a) => *a == addr,
            FlowPeer::Range(prefix) => prefix.contains(addr),
        }
    }

    /// The one configured address, if there is one.
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            FlowPeer::Address(a) => Some(*a),
            FlowPeer::Range(_) => None,
        }
    }
}

impl std::fmt::Display for FlowPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlowPeer::Address(a) => write!(f, "{a}"),
            FlowPeer::Range(p) => write!(f, "{p}"),
        }
    }
}

/// Moving the outer addresses of one Child SA's kernel state (both SAs
/// and the policies whose templates name them) to new gateway
/// addresses: MOBIKE's UPDATE_SA_ADDRESSES (RFC 4555 §3.5) or a NAT
/// mapping change (RFC 7296 §2.23). pfkey does it with XFRM_MSG_MIGRATE
/// or, where that is missing, by adding the SAs anew and replacing the
/// policies; only when a flow admits the new peer address.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The two SAs as installed now (inbound: peer -> us; outbound).
    pub inbound: SaId,
    pub outbound: SaId,
    pub reqid: u32,
    pub mode: IpsecMode,
    /// The policies (out, in, fwd) whose templates carry the old addresses.
    pub policies: Vec<(Selector, PolicyDirection)>,
    /// The gateway addresses after the move.
    pub new_local: IpAddr,
    pub new_peer: IpAddr,
    /// ESP in UDP after the move (RFC 3948), with the peer's new port;
    /// None: plain ESP.
    pub encap: Option<UdpEncap>,
}

/// Smallest anti-replay window pfkey installs, in packets: RFC 4303
/// §3.4.3 makes 32 the window every implementation must support, and 0
/// would turn replay protection off. There is no exception: ikev2 always
/// asks for 64 (transport mode and ESN-less SAs included), and no test
/// needs an SA without anti-replay.
pub const MIN_REPLAY_WINDOW: u32 = 32;

/// The limits of a flow's policy beyond gateways, mode, traffic and
/// cipher family, derived by the parent from the configuration, so that a
/// compromised ikev2 cannot install an SA weaker or longer-lived than the
/// policy allows (pfkey-proc/src/flows.rs has the rules).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SaLimits {
    /// Encryption key lengths allowed, in octets with the salt for AEAD
    /// (as [`SaParams::encryption_key`] carries them). Empty: any length
    /// valid for the cipher ([`Encryption::key_lengths`]).
    pub encryption_keys: Vec<(Encryption, usize)>,
    /// ESN settings the policy's proposals allow (RFC 7296 §3.3.2).
    pub esn: Vec<bool>,
    /// The policy's Child SA lifetime (`lifetime T`): an SA's soft limit
    /// may not exceed it, nor its hard limit exceed it by more than a
    /// tenth (ikev2's margin); neither may be 0 (unlimited).
    pub max_seconds: u64,
    /// The policy's `bytes B`; 0: no byte limit is configured.
    pub max_bytes: u64,
    /// Our UDP port for ESP in UDP (RFC 3948), the daemon's NAT-T port;
    /// None when NAT-T is disabled (`iked -T`): no SA may be encapsulated.
    pub natt_port: Option<u16>,
}

impl Default for SaLimits {
    /// What a policy without any of the settings gets: the configuration's
    /// defaults (three hours, no ESN, NAT-T on 4500).
    fn default() -> Self {
        SaLimits {
            encryption_keys: Vec::new(),
            esn: vec![false],
            max_seconds: crate::config::DEFAULT_CHILD_LIFETIME,
            max_bytes: 0,
            natt_port: Some(4500),
        }
    }
}

/// Soft and hard limits of an SA; 0 is no limit. The kernel reports a soft
/// EXPIRE (rekey) then a hard one (SA deleted).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetime {
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_seconds: u64,
    pub hard_seconds: u64,
}

/// UDP encapsulation of ESP for NAT traversal (RFC 3948).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    pub src_port: u16,
    pub dst_port: u16,
}

/// Identifies an SA in the kernel (RFC 4301 §4.1: destination, protocol,
/// SPI; the source helps PF_KEY find it).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SaId {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpsecProtocol,
    pub spi: u32,
}

impl std::fmt::Display for SaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SA {} -> {} spi 0x{:08x}", self.src, self.dst, self.spi)
    }
}

/// What the kernel has counted on one SA since it was added (its current
/// lifetime: XFRM `curlft`, PF_KEY SADB_EXT_LIFETIME_CURRENT).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaCounters {
    /// Octets of IP payload the SA protected or unprotected.
    pub bytes: u64,
    pub packets: u64,
}

/// The reqids iked gives every SA and policy it installs: the mark by which
/// its kernel entries are told from anyone else's, so that a fresh start
/// can remove what a dead instance left (and the parent can sweep what a
/// dead pfkey had not yet reported) without touching foreign entries.
///
/// Why a reqid range and not an XFRM mark or if_id: a mark or if_id
/// changes which packets a policy or SA matches (a policy with mark v/m
/// only sees packets whose mark & m == v), while the reqid only ties
/// policy templates to SAs; and PF_KEY has no marks at all, but carries
/// the reqid both in SADB_X_EXT_SA2 and in each policy's
/// sadb_x_ipsecrequest. Linux keeps PF_KEY reqids only up to
/// IPSEC_MANUAL_REQID_MAX (0x3fff; above it the kernel picks its own), so
/// the range is the top quarter of that space: strongSwan numbers its
/// reqids upwards from 1, libreswan's automatic ones start above 0x3fff.
/// Documented in iked(8): other software must not use these reqids.
pub const IKED_REQIDS: std::ops::RangeInclusive<u32> = 0x3000..=0x3fff;

/// More reqids of ours, for XFRM only (its reqids are 32 bits wide): a
/// gateway with more than 4,095 flows and Child SAs at once takes them from
/// here once [`IKED_REQIDS`] is full. Far above what strongSwan (upwards
/// from 1) and libreswan (upwards from 0x4000) use.
pub const IKED_WIDE_REQIDS: std::ops::RangeInclusive<u32> = 0x6900_0000..=0x69ff_ffff;

/// The reqid of a larval SA (an SPI allocated before its Child SA has a
/// reqid of its own): marked as ours like every other entry. The update
/// that completes the SA gives it its real reqid. Never a Child SA's.
pub const LARVAL_REQID: u32 = *IKED_REQIDS.start();

/// Whether `reqid` marks an entry as iked's ([`IKED_REQIDS`] or
/// [`IKED_WIDE_REQIDS`]).
pub fn reqid_is_ours(reqid: u32) -> bool {
    IKED_REQIDS.contains(&reqid) || IKED_WIDE_REQIDS.contains(&reqid)
}

/// Everything needed to install one SA.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SaParams {
    pub id: SaId,
    pub mode: IpsecMode,
    /// Ties the SA to the policies whose template names the same reqid.
    pub reqid: u32,
    /// The inner traffic this SA may carry, as it flows through the SA.
    pub selector: Selector,
    pub encryption: Encryption,
    /// Key octets, followed by the salt for AEAD transforms.
    pub encryption_key: SecretBytes,
    /// None for AEAD transforms.
    pub integrity: Option<Integrity>,
    pub integrity_key: SecretBytes,
    pub lifetime: Lifetime,
    /// Anti-replay window in packets; 0 disables replay protection.
    pub replay_window: u32,
    /// 64-bit extended sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    pub encap: Option<UdpEncap>,
}

/// The SA a policy asks for: template of RFC 4301 §4.4.1.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SaTemplate {
    /// Tunnel endpoints (ignored by the kernel in transport mode).
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpsecProtocol,
    pub mode: IpsecMode,
    pub reqid: u32,
}

/// One security policy: traffic matching `selector` in `direction` must use
/// an SA like `template`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyParams {
    pub selector: Selector,
    pub direction: PolicyDirection,
    /// Lower is preferred (Linux XFRM); kept the same for both backends.
    pub priority: u32,
    pub template: SaTemplate,
}

/// What the kernel tells us on its own.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// Outbound traffic hit a policy with no SA: negotiate one.
    Acquire {
        /// The packet's selector (full-length prefixes).
        selector: Selector,
        /// The template's endpoints.
        src: IpAddr,
        dst: IpAddr,
        reqid: u32,
        /// Kernel sequence number to echo in the SA that answers it.
        seq: u32,
    },
    /// An SA reached a soft (rekey) or hard (deleted) limit.
    Expire { sa: SaId, reqid: u32, hard: bool },
    /// A policy reached a lifetime limit.
    PolicyExpire {
        selector: Selector,
        direction: PolicyDirection,
        hard: bool,
    },
}

/// One entry we installed, precise enough to delete it again.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
pub enum KernelEntry {
    /// An SA (RFC 4301 §4.1: destination, protocol, SPI; plus source).
    Sa(SaId),
    /// A policy, identified by its selector and direction.
    Policy {
        selector: Selector,
        direction: PolicyDirection,
    },
}

impl std::fmt::Display for KernelEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelEntry::Sa(id) => id.fmt(f),
            KernelEntry::Policy {
                selector,
                direction,
            } => write!(f, "policy {selector} dir {direction:?}"),
        }
    }
}

/// Why the kernel refused a request: a class the caller can act on, the
/// errno, and a sentence for the log.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct KernelFailure {
    pub kind: FailureKind,
    /// The errno the kernel returned, 0 when the failure is ours.
    pub errno: i32,
    pub message: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Outside every configured flow: pfkey refused it before the kernel saw it.
    NotPermitted,
    /// Malformed request (key length, selector families, SPI range).
    Invalid,
    /// The kernel lacks ESP, an algorithm, or the interface.
    Unsupported,
    AlreadyExists,
    NotFound,
    /// Any other kernel error.
    Kernel,
}

impl std::fmt::Display for KernelFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(src: &str, sp: u8, dst: &str, dp: u8) -> Selector {
        Selector::between(src.parse().unwrap(), sp, dst.parse().unwrap(), dp)
    }

    #[test]
    fn our_reqid_ranges_are_recognised_and_the_narrow_one_fits_pf_key() {
        assert!(reqid_is_ours(LARVAL_REQID));
        assert!(reqid_is_ours(*IKED_REQIDS.end()));
        assert!(reqid_is_ours(*IKED_WIDE_REQIDS.start()) && reqid_is_ours(*IKED_WIDE_REQIDS.end()));
        // PF_KEY keeps no reqid above IPSEC_MANUAL_REQID_MAX.
        assert!(*IKED_REQIDS.end() <= 0x3fff);
        for foreign in [0, 1, 0x2fff, 0x4000, 0x68ff_ffff, 0x6a00_0000, u32::MAX] {
            assert!(!reqid_is_ours(foreign), "{foreign:#x}");
        }
    }

    #[test]
    fn selector_containment_follows_prefixes_protocol_and_ports() {
        let flow = sel("10.1.0.0", 16, "10.2.0.0", 24);
        assert!(flow.contains(&sel("10.1.5.0", 24, "10.2.0.7", 32)));
        assert!(flow.contains(&flow));
        assert!(!flow.contains(&sel("10.1.0.0", 8, "10.2.0.0", 24)));
        assert!(!flow.contains(&sel("10.3.0.0", 16, "10.2.0.0", 24)));
        assert!(!flow.contains(&sel("10.1.0.0", 16, "10.2.1.0", 24)));
        assert!(!flow.contains(&flow.reversed()));
        assert!(!flow.contains(&sel("::", 0, "::", 0)));
        let mut tcp = flow;
        tcp.protocol = 6;
        tcp.dst_port = 443;
        assert!(flow.contains(&tcp));
        assert!(!tcp.contains(&flow));
        let mut udp = tcp;
        udp.protocol = 17;
        assert!(!tcp.contains(&udp));
        let v6 = sel("2001:db8::", 32, "2001:db8:1::", 48);
        assert!(v6.contains(&sel("2001:db8:5::", 48, "2001:db8:1::1", 128)));
        assert!(!v6.contains(&sel("2001:db9::", 48, "2001:db8:1::1", 128)));
    }

    #[test]
    fn malformed_selectors_contain_nothing() {
        let mixed = sel("10.0.0.0", 8, "2001:db8::", 32);
        assert!(!mixed.is_well_formed());
        assert!(!sel("0.0.0.0", 0, "0.0.0.0", 0).contains(&mixed));
        let long = sel("10.0.0.0", 33, "10.0.0.0", 8);
        assert!(!long.is_well_formed());
        assert!(!long.contains(&sel("10.0.0.0", 33, "10.0.0.0", 8)));
    }

    #[test]
    fn only_what_the_kernel_installs_maps_from_the_ike_registries() {
        let ciphers: Vec<_> = EncrId::ALL
            .iter()
            .filter_map(|&id| Encryption::from_encr(id).map(|e| (id, e)))
            .collect();
        assert_eq!(
            ciphers,
            [
                (EncrId::AesCbc, Encryption::AesCbc),
                (EncrId::AesGcm16, Encryption::AesGcm16),
                (EncrId::CamelliaCbc, Encryption::CamelliaCbc),
                (EncrId::Chacha20Poly1305, Encryption::ChaCha20Poly1305),
            ]
        );
        let integrities: Vec<_> = IntegId::ALL
            .iter()
            .filter_map(|&id| Integrity::from_integ(id).map(|i| (id, i)))
            .collect();
        assert_eq!(
            integrities,
            [
                (IntegId::HmacSha1_96, Integrity::HmacSha1_96),
                (IntegId::HmacSha2_256_128, Integrity::HmacSha256_128),
                (IntegId::HmacSha2_384_192, Integrity::HmacSha384_192),
                (IntegId::HmacSha2_512_256, Integrity::HmacSha512_256),
            ]
        );
    }

    #[test]
    fn secret_bytes_are_never_printed() {
        let key = SecretBytes::new(vec![0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(format!("{key:?}"), "SecretBytes(4 octets)");
    }
}
