//! The policies of iked.conf: what to negotiate with whom, for which traffic.
//! This is the form the parser produces and the parent hands out: ikev2 gets
//! the policies (never a secret), ca gets the pre-shared keys by policy name,
//! pfkey gets the flows.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::kernel::Selector;

/// Transform types of RFC 7296 §3.3.2.
pub const TRANSFORM_ENCR: u8 = 1;
pub const TRANSFORM_PRF: u8 = 2;
pub const TRANSFORM_INTEG: u8 = 3;
pub const TRANSFORM_KE: u8 = 4;
pub const TRANSFORM_ESN: u8 = 5;

/// One transform as proposed: IANA type and ID, and the key length in bits
/// for ciphers with variable keys (RFC 7296 §3.3.5).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransformSpec {
    pub transform_type: u8,
    pub id: u16,
    pub key_length: Option<u16>,
}

/// One proposal: alternatives per transform type, in order of preference.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct ProposalSpec {
    pub transforms: Vec<TransformSpec>,
}

impl ProposalSpec {
    /// The transforms of one type, in order of preference.
    pub fn of_type(&self, transform_type: u8) -> impl Iterator<Item = &TransformSpec> {
        self.transforms
            .iter()
            .filter(move |t| t.transform_type == transform_type)
    }
}

/// Whether a policy starts negotiating by itself.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyInitiation {
    /// Initiate at start (unless `set passive`), and on kernel ACQUIRE.
    Active,
    /// Only answer; never initiate.
    Passive,
}

/// IPsec mode of the Child SAs.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulation {
    Tunnel,
    Transport,
}

/// An identity as configured (`srcid`, `dstid`), typed as in RFC 7296 §3.5.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentitySpec {
    Fqdn(String),
    /// user@domain (ID_RFC822_ADDR).
    UserFqdn(String),
    Address(IpAddr),
    /// A distinguished name in its textual form (ID_DER_ASN1_DN).
    Asn1Dn(String),
    KeyId(Vec<u8>),
}

impl std::fmt::Display for IdentitySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentitySpec::Fqdn(s) | IdentitySpec::UserFqdn(s) | IdentitySpec::Asn1Dn(s) => {
                f.write_str(s)
            }
            IdentitySpec::Address(a) => write!(f, "{a}"),
            IdentitySpec::KeyId(k) => {
                f.write_str("0x")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// An address with a prefix length (`10.1.0.0/24`, `peer 198.18.0.0/16`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Whether `addr` lies inside this prefix (same family only).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let (net, addr, bits) = match (self.addr, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u32::from(n) as u128, u32::from(a) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
            _ => return false,
        };
        let len = u32::from(self.len).min(bits);
        if len == 0 {
            return true;
        }
        let shift = bits - len;
        (net >> shift) == (addr >> shift)
    }

    /// A single host.
    pub fn is_host(&self) -> bool {
        self.len == crate::kernel::max_prefix(self.addr)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// How peers of a policy authenticate.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSpec {
    /// A pre-shared key (RFC 7296 §2.15); the key itself lives in ca-proc only.
    Psk,
    /// Signatures: ours made with `private/local.key`, the peer's checked
    /// against its certificate chain or a raw key from `pubkeys/`. Both
    /// directions use public keys (iked.conf(5): no PSK on one side only).
    PublicKey(SignatureAuth),
}

/// `ikeauth` of a public-key policy (iked.conf(5)): the AUTH method we send
/// and the one we accept (RFC 7296 §3.8, RFC 4754, RFC 7427).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAuth {
    /// No `ikeauth`: Digital Signature (14, RFC 7427) when the peer sent
    /// SIGNATURE_HASH_ALGORITHMS, else the key's own method (1 for RSA, 9,
    /// 10 or 11 for ECDSA by curve); the peer may use any of those that
    /// fits its key.
    Any,
    /// `ikeauth rsa`: RSA PKCS#1 v1.5 with SHA-1 (method 1).
    Rsa,
    /// `ikeauth ecdsa256|ecdsa384|ecdsa521`: methods 9, 10, 11 (RFC 4754).
    Ecdsa256,
    Ecdsa384,
    Ecdsa521,
    /// `ikeauth rfc7427`: Digital Signature (14) only.
    Rfc7427,
}

/// One `ikev2` policy of iked.conf.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub initiation: PolicyInitiation,
    pub encapsulation: Encapsulation,
    /// `natt`: always encapsulate ESP in UDP, NAT or not.
    pub force_natt: bool,
    /// Whether the flows get a trap policy in the kernel while no Child SA
    /// covers them, so that their traffic is held back instead of leaving
    /// in clear (and, for an active policy, starts the negotiation through
    /// ACQUIRE). `notrap` turns it off.
    pub trap: bool,
    /// `from ... to ...`: traffic selectors, from our side to the peer's.
    pub flows: Vec<Selector>,
    /// `local`: our address; None = any.
    pub local: Option<Prefix>,
    /// `peer`: the peer's address or range; None = any.
    pub peer: Option<Prefix>,
    /// `ikesa ...`: IKE SA proposals in order of preference.
    pub ike_proposals: Vec<ProposalSpec>,
    /// `childsa ...`: Child SA (ESP) proposals in order of preference. A KE
    /// transform here means PFS for rekeys and additional Child SAs.
    pub child_proposals: Vec<ProposalSpec>,
    pub srcid: Option<IdentitySpec>,
    pub dstid: Option<IdentitySpec>,
    /// `ikelifetime`: seconds until the IKE SA is rekeyed.
    pub ike_lifetime_secs: u64,
    /// `lifetime`: seconds until a Child SA is rekeyed.
    pub child_lifetime_secs: u64,
    /// `lifetime ... bytes`: bytes until a Child SA is rekeyed; 0 = no limit.
    pub child_lifetime_bytes: u64,
    pub auth: AuthSpec,
    /// Road warriors and virtual addresses: `config ...` (what we hand
    /// out as a gateway), `request ...` and `iface` (what we ask for as a
    /// client), `eap ...`. Empty for a site-to-site policy.
    pub remote_access: RemoteAccess,
    /// `quick`, `skip`, `default`: how the policy takes part in choosing
    /// the policy of an incoming IKE SA (iked.conf(5), policy_order.rs).
    pub matching: PolicyMatch,
}

/// `ikev2 [quick|skip|default]` (OpenBSD iked.conf(5)): policies are
/// evaluated in file order and the last matching one wins, unless a
/// matching `quick` policy comes first (it wins at once); a `skip` policy
/// is never chosen for an incoming IKE SA (it only initiates and installs
/// its flows); a `default` policy is chosen only when no other matches.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyMatch {
    #[default]
    Normal,
    Quick,
    Skip,
    Default,
}

/// The remote-access part of a policy (RFC 7296 §2.16, §3.15; OpenBSD
/// iked.conf(5) `config`, `request`, `iface`, `eap`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteAccess {
    /// `config OPTION VALUE` lines, in file order: what a gateway sends in
    /// its CFG_REPLY. `config address NET` are the pools.
    pub config: Vec<ConfigAttributeSpec>,
    /// `request address any`: as initiator, ask the gateway for an
    /// address (INTERNAL_IP4_ADDRESS / INTERNAL_IP6_ADDRESS, by the
    /// family of the policy's flows) and use it as our traffic selector.
    pub request_address: bool,
    /// `request name-server any`: also ask for DNS servers (logged; iked
    /// does not rewrite resolv.conf).
    pub request_name_server: bool,
    /// `iface NAME`: where a client installs the address it was given
    /// (by pfkey, which holds CAP_NET_ADMIN). None: `lo`.
    pub iface: Option<String>,
    /// `eap "mschap-v2"`: as responder, the initiator authenticates with
    /// EAP (RFC 7296 §2.16) while we sign with our certificate; as
    /// initiator, we authenticate with EAP as the `user` named by our
    /// `srcid` and check the gateway's certificate.
    pub eap: Option<EapMethod>,
}

impl RemoteAccess {
    /// The address pools (`config address NET`), in file order.
    pub fn pools(&self) -> impl Iterator<Item = &Prefix> {
        self.config.iter().filter_map(|c| match c {
            ConfigAttributeSpec::AddressPool(p) => Some(p),
            _ => None,
        })
    }

    /// Whether this policy hands out addresses (then the peer's traffic
    /// selector is narrowed to its lease, RFC 7296 §2.9).
    pub fn hands_out_addresses(&self) -> bool {
        self.pools().next().is_some()
    }
}

/// One `config` line of iked.conf(5): an attribute of the Configuration
/// payload a gateway sends (RFC 7296 §3.15.1).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigAttributeSpec {
    /// `config address NET`: a pool to lease single addresses from
    /// (INTERNAL_IP4_ADDRESS / INTERNAL_IP6_ADDRESS). The network and
    /// broadcast addresses of an IPv4 pool are not leased.
    AddressPool(Prefix),
    /// `config netmask ADDR` (INTERNAL_IP4_NETMASK).
    Netmask(IpAddr),
    /// `config name-server ADDR` (INTERNAL_IP4_DNS / INTERNAL_IP6_DNS).
    NameServer(IpAddr),
    /// `config netbios-server ADDR` (INTERNAL_IP4_NBNS).
    NetbiosServer(IpAddr),
    /// `config dhcp-server ADDR` (INTERNAL_IP4_DHCP / INTERNAL_IP6_DHCP).
    DhcpServer(IpAddr),
    /// `config protected-subnet NET` (INTERNAL_IP4_SUBNET / INTERNAL_IP6_SUBNET).
    ProtectedSubnet(Prefix),
    /// `config access-server ADDR` (INTERNAL_IP4_SERVER / INTERNAL_IP6_SERVER,
    /// RFC 4306 §3.15.1, as OpenBSD iked).
    AccessServer(IpAddr),
}

/// `eap "METHOD"`: the EAP method a policy's initiators authenticate with.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EapMethod {
    /// EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2, RFC 2759), EAP type 26.
    MsChapV2,
}

/// A `user "name" "password"` line: an EAP user, for ca-proc only. The
/// password is zeroed when dropped and never printed.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct UserCredential {
    pub name: String,
    pub password: PreSharedKey,
}

/// A pre-shared key, for ca-proc only. Zeroed when dropped; never printed.
#[derive(
    Serialize, Deserialize, Clone, PartialEq, Eq, zeroize::Zeroize, zeroize::ZeroizeOnDrop,
)]
pub struct PreSharedKey(Vec<u8>);

impl PreSharedKey {
    pub fn new(bytes: Vec<u8>) -> PreSharedKey {
        PreSharedKey(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PreSharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreSharedKey({} bytes)", self.0.len())
    }
}
