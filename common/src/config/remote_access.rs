//! The remote-access grammar of iked.conf(5), after OpenBSD's:
//!
//! ```text
//! ikev2 ... config address NET | config netmask ADDR | config name-server ADDR
//!           | config netbios-server ADDR | config dhcp-server ADDR
//!           | config protected-subnet NET | config access-server ADDR
//!           request address any | request name-server any
//!           iface NAME
//!           eap "mschap-v2"
//!           from NET to dynamic | from dynamic to NET
//! user "name" "password"
//! ```
//!
//! and the load-time checks that keep a road-warrior policy one that
//! pfkey can still enforce (a single local address, passive, pools that
//! make sense) and that EAP has what it needs (certificates on our side,
//! a `user` for a client). Every error names the word it is about.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use super::lexer::TokenKind;
use super::policy::{
    AuthSpec, ConfigAttributeSpec, EapMethod, IdentitySpec, PolicyInitiation, PreSharedKey, Prefix,
    RemoteAccess, UserCredential,
};
use super::policy_parser::{prefix, Words};
use super::{ConfigError, Location};

/// Prefix lengths an IPv4 pool may have: a /8 is the largest network a
/// gateway could sensibly lease from (16 million clients), a /30 the
/// smallest with two addresses left once the network and broadcast
/// addresses are taken out.
pub const IPV4_POOL_PREFIX: RangeInclusive<u8> = 8..=30;
/// Prefix lengths an IPv6 pool may have: from a /64 (a whole subnet, the
/// usual size) to a /126 (four addresses).
pub const IPV6_POOL_PREFIX: RangeInclusive<u8> = 64..=126;
/// Most `config` lines one policy may have (RFC 7296 §3.15.1 attributes
/// in one CFG_REPLY must fit in one IKE message).
pub const MAX_CONFIG_ATTRIBUTES: usize = 64;
/// Longest `user` name, in bytes: an EAP-Identity and the MSCHAPv2 name
/// field must carry it (RFC 2759 §4: the peer name is at most 256 octets).
pub const MAX_USER_NAME: usize = 255;
/// Longest `user` password, in characters: RFC 2759 §4 takes at most 256
/// Unicode characters.
pub const MAX_USER_PASSWORD: usize = 256;
/// Most `user` lines: ca holds them all in memory.
pub const MAX_USERS: usize = 100_000;
/// Most bytes of user names and passwords in all: ca gets them with its
/// configuration in one IPC message (`ipc::MAX_MESSAGE`, 16 MiB, which
/// the certificate store shares).
pub const MAX_USERS_BYTES: usize = 4 << 20;
/// Longest Linux interface name (IFNAMSIZ - 1).
pub const MAX_INTERFACE_NAME: usize = 15;

/// The options of `config` and what each takes, as iked.conf(5) lists them.
pub const CONFIG_OPTIONS: &[(&str, &str)] = &[
    ("address", "NET"),
    ("netmask", "ADDR"),
    ("name-server", "ADDR"),
    ("netbios-server", "ADDR"),
    ("dhcp-server", "ADDR"),
    ("protected-subnet", "NET"),
    ("access-server", "ADDR"),
];

/// The options of `request` (each takes `any`).
pub const REQUEST_OPTIONS: &[(&str, &str)] = &[
    // INTERNAL_IP4_ADDRESS / INTERNAL_IP6_ADDRESS
    ("address", "any"),
    // INTERNAL_IP4_DNS / INTERNAL_IP6_DNS
    ("name-server", "any"),
];

/// The EAP methods `eap` takes.
pub const EAP_METHODS: &[(&str, EapMethod)] = &[
    // EAP type 26 (RFC 2759, draft-kamath-pppext-eap-mschapv2)
    ("mschap-v2", EapMethod::MsChapV2),
];

fn error(location: &Location, message: impl Into<String>) -> ConfigError {
    ConfigError {
        location: location.clone(),
        message: message.into(),
    }
}

fn option_names(table: &[(&str, &str)]) -> String {
    table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Whether `name` is an interface name Linux takes (net/core/dev.c
/// dev_valid_name): 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
/// whitespace.
pub fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_INTERFACE_NAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// A single address (no prefix length).
fn address(word: &str, at: &Location, what: &str) -> Result<IpAddr, ConfigError> {
    word.parse::<IpAddr>().map_err(|_| {
        error(
            at,
            format!("'{what}' needs a single IP address, not '{word}'"),
        )
    })
}

/// A network with its prefix length; refuses host bits set.
fn network(word: &str, at: &Location, what: &str) -> Result<Prefix, ConfigError> {
    if word == "any" {
        return Err(error(
            at,
            format!("'{what}' needs a network such as 10.9.0.0/24, not 'any'"),
        ));
    }
    let net = prefix(word, at, None)?;
    let canonical = Prefix {
        addr: masked(net.addr, net.len),
        len: net.len,
    };
    if canonical != net {
        return Err(error(
            at,
            format!("'{word}' has bits set after its prefix length: write {canonical}"),
        ));
    }
    Ok(net)
}

/// `addr` with every bit after the first `len` cleared.
fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

/// Whether two prefixes share an address.
pub fn overlap(a: &Prefix, b: &Prefix) -> bool {
    a.contains(b.addr) || b.contains(a.addr)
}

/// Whether `addr` is an IPv4 netmask: ones, then zeros.
fn is_netmask(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            bits.leading_ones() + bits.trailing_zeros() == 32
        }
        IpAddr::V6(_) => false,
    }
}

/// The remote-access words of one `ikev2` statement as written, with
/// where each was, for the checks once the whole statement is read.
#[derive(Default)]
pub(super) struct Written {
    pub access: RemoteAccess,
    config_at: Option<Location>,
    request_at: Option<Location>,
    iface_at: Option<Location>,
    eap_at: Option<Location>,
    /// `config address` pools with where each was written.
    pub pools: Vec<(Prefix, Location)>,
}

impl Written {
    /// `config OPTION VALUE`, the word `config` at `at`.
    pub fn config(&mut self, w: &mut Words<'_>, at: &Location) -> Result<(), ConfigError> {
        let expected = || {
            format!(
                "'config' needs an option and a value: one of {}",
                option_names(CONFIG_OPTIONS)
            )
        };
        let (option, option_at) = match w.take() {
            Some((TokenKind::Word(o), l)) => (o.as_str(), *l),
            Some((_, l)) => return Err(error(l, expected())),
            None => return Err(error(at, expected())),
        };
        let unknown = || {
            error(
                option_at,
                format!(
                    "unknown config option '{option}': expected one of {}",
                    option_names(CONFIG_OPTIONS)
                ),
            )
        };
        if !CONFIG_OPTIONS.iter().any(|(name, _)| *name == option) {
            return Err(unknown());
        }
        let what = format!("config {option}");
        let (value, value_at) = w.value(&what, option_at)?;
        let attribute = match option {
            "address" => {
                let pool = network(value, value_at, &what)?;
                let (family, range) = match pool.addr {
                    IpAddr::V4(_) => ("IPv4", IPV4_POOL_PREFIX),
                    IpAddr::V6(_) => ("IPv6", IPV6_POOL_PREFIX),
                };
                if !range.contains(&pool.len) {
                    // OpenBSD takes one address as a static lease; ours
                    // are pools, leased per identity.
                    let hint = if pool.is_host() {
                        " (one address is not a pool: give the network to lease from)"
                    } else {
                        ""
                    };
                    return Err(error(
                        value_at,
                        format!(
                            "address pool {pool}: an {family} pool must be a /{} to /{}{hint}",
                            range.start(),
                            range.end()
                        ),
                    ));
                }
                if let Some((other, _)) = self.pools.iter().find(|(p, _)| overlap(p, &pool)) {
                    return Err(error(
                        value_at,
                        format!("address pool {pool} overlaps pool {other} of the same policy"),
                    ));
                }
                self.pools.push((pool, value_at.clone()));
                ConfigAttributeSpec::AddressPool(pool)
            }
            "netmask" => {
                let mask = address(value, value_at, &what)?;
                if !is_netmask(mask) {
                    return Err(error(
                        value_at,
                        format!("'{value}' is not an IPv4 netmask such as 255.255.255.0"),
                    ));
                }
                ConfigAttributeSpec::Netmask(mask)
            }
            "name-server" => ConfigAttributeSpec::NameServer(address(value, value_at, &what)?),
            "netbios-server" => {
                let server = address(value, value_at, &what)?;
                if server.is_ipv6() {
                    // RFC 7296 §3.15.1 has INTERNAL_IP4_NBNS only.
                    return Err(error(
                        value_at,
                        "'config netbios-server' takes an IPv4 address (IKEv2 has no IPv6 NBNS)",
                    ));
                }
                ConfigAttributeSpec::NetbiosServer(server)
            }
            "dhcp-server" => ConfigAttributeSpec::DhcpServer(address(value, value_at, &what)?),
            "protected-subnet" => {
                ConfigAttributeSpec::ProtectedSubnet(network(value, value_at, &what)?)
            }
            "access-server" => ConfigAttributeSpec::AccessServer(address(value, value_at, &what)?),
            _ => return Err(unknown()),
        };
        if self.access.config.contains(&attribute) {
            return Err(error(
                value_at,
                format!("'config {option} {value}' given twice"),
            ));
        }
        if self.access.config.len() >= MAX_CONFIG_ATTRIBUTES {
            return Err(error(
                at,
                format!("more than {MAX_CONFIG_ATTRIBUTES} 'config' lines in one policy"),
            ));
        }
        self.access.config.push(attribute);
        self.config_at.get_or_insert_with(|| at.clone());
        Ok(())
    }

    /// `request address any` or `request name-server any`.
    pub fn request(&mut self, w: &mut Words<'_>, at: &Location) -> Result<(), ConfigError> {
        let expected = || {
            format!(
                "'request' needs 'address any' or 'name-server any' (one of {})",
                option_names(REQUEST_OPTIONS)
            )
        };
        let (option, option_at) = match w.take() {
            Some((TokenKind::Word(o), l)) => (o.as_str(), *l),
            Some((_, l)) => return Err(error(l, expected())),
            None => return Err(error(at, expected())),
        };
        let flag = match option {
            "address" => &mut self.access.request_address,
            "name-server" => &mut self.access.request_name_server,
            other => {
                return Err(error(
                    option_at,
                    format!("unknown request option '{other}': {}", expected()),
                ))
            }
        };
        let (value, value_at) = w.value(&format!("request {option}"), option_at)?;
        if value != "any" {
            return Err(error(
                value_at,
                format!("'request {option}' takes 'any' (the gateway chooses), not '{value}'"),
            ));
        }
        if *flag {
            return Err(error(at, format!("'request {option} any' given twice")));
        }
        *flag = true;
        self.request_at.get_or_insert_with(|| at.clone());
        Ok(())
    }

    /// `iface NAME`.
    pub fn iface(&mut self, w: &mut Words<'_>, at: &Location) -> Result<(), ConfigError> {
        if self.iface_at.is_some() {
            return Err(error(at, "'iface' given twice"));
        }
        let (name, name_at) = w.value("iface", at)?;
        if !is_interface_name(name) {
            return Err(error(
                name_at,
                format!(
                    "invalid interface name {name:?}: expected 1 to {MAX_INTERFACE_NAME} \
                     characters without '/', ':' or spaces"
                ),
            ));
        }
        self.access.iface = Some(name.to_string());
        self.iface_at = Some(at.clone());
        Ok(())
    }

    /// `eap "METHOD"`.
    pub fn eap(&mut self, w: &mut Words<'_>, at: &Location) -> Result<(), ConfigError> {
        if self.eap_at.is_some() {
            return Err(error(at, "'eap' given twice"));
        }
        let supported = EAP_METHODS
            .iter()
            .map(|(n, _)| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let (name, name_at) = w.value("eap", at).map_err(|_| {
            error(
                at,
                format!("'eap' needs the EAP method: the supported one is {supported}"),
            )
        })?;
        let method = EAP_METHODS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                error(
                    name_at,
                    format!("unsupported EAP method {name:?}: the supported one is {supported}"),
                )
            })?;
        self.access.eap = Some(method);
        self.eap_at = Some(at.clone());
        Ok(())
    }
}

/// What a policy's remote-access checks need of the rest of it.
pub(super) struct PolicyFacts<'a> {
    pub name: &'a str,
    pub initiation: PolicyInitiation,
    /// Where `active` or `passive` was written, if it was.
    pub initiation_at: Option<&'a Location>,
    /// `peer any` or `peer NET` as written: where, and the word.
    pub unknown_peer: Option<(&'a Location, &'a str)>,
    pub local: Option<Prefix>,
    pub auth: AuthSpec,
    /// Where `psk` (or `ikeauth psk`) was written.
    pub auth_at: Option<&'a Location>,
    pub srcid: Option<(&'a IdentitySpec, &'a Location)>,
    /// Where `from dynamic` was written, if it was.
    pub from_dynamic_at: Option<&'a Location>,
}

/// What can only be checked once the whole file is read: the `user` an
/// EAP client policy authenticates as, named by its srcid.
#[derive(Debug, Default)]
pub struct LaterChecks {
    /// (policy, user name, where the srcid was).
    pub eap_client_user: Option<(String, String, Location)>,
}

impl Written {
    /// The checks of one policy once its statement is read, in the order
    /// an operator would fix them. Returns what the file-wide checks need.
    pub fn check(&self, facts: &PolicyFacts<'_>) -> Result<LaterChecks, ConfigError> {
        let name = facts.name;
        let active = facts.initiation == PolicyInitiation::Active;
        if let Some((peer_at, word)) = facts.unknown_peer {
            let what = if word == "any" {
                "'peer any'".to_string()
            } else {
                format!("'peer {word}'")
            };
            if active {
                return Err(error(
                    facts.initiation_at.unwrap_or(peer_at),
                    format!(
                        "policy '{name}': {what} admits peers whose address is not known in \
                         advance, so the policy cannot initiate: make it passive"
                    ),
                ));
            }
            if !facts.local.is_some_and(|l| l.is_host()) {
                return Err(error(
                    peer_at,
                    format!(
                        "policy '{name}': {what} needs 'local ADDR', the one address of ours \
                         that its peers connect to (pfkey installs their SAs only from a \
                         configured address)"
                    ),
                ));
            }
        }
        if let Some(eap_at) = &self.eap_at {
            if facts.auth == AuthSpec::Psk {
                return Err(error(
                    facts.auth_at.unwrap_or(eap_at),
                    format!(
                        "policy '{name}': 'eap' cannot go with 'psk': with EAP the gateway \
                         proves itself with its certificate (RFC 7296 2.16); remove the psk"
                    ),
                ));
            }
        }
        if let Some(config_at) = &self.config_at {
            if active {
                return Err(error(
                    config_at,
                    format!(
                        "policy '{name}': 'config' hands out settings to the initiators that \
                         ask for them, so it belongs on a passive policy (an active policy \
                         asks with 'request')"
                    ),
                ));
            }
        }
        if let Some(request_at) = &self.request_at {
            if !active {
                return Err(error(
                    request_at,
                    format!(
                        "policy '{name}': 'request' asks the gateway for settings as \
                         initiator, so it needs an active policy"
                    ),
                ));
            }
        }
        if let Some(iface_at) = &self.iface_at {
            if !self.access.request_address {
                return Err(error(
                    iface_at,
                    format!(
                        "policy '{name}': 'iface' is where the address the gateway hands us \
                         goes: it needs 'request address any'"
                    ),
                ));
            }
        }
        if let Some(from_at) = facts.from_dynamic_at {
            if !self.access.request_address {
                return Err(error(
                    from_at,
                    format!(
                        "policy '{name}': 'from dynamic' uses the address the gateway hands \
                         us: it needs 'request address any'"
                    ),
                ));
            }
        }
        if let Some(local) = facts.local.filter(|l| l.is_host()) {
            if let Some((pool, at)) = self.pools.iter().find(|(p, _)| p.contains(local.addr)) {
                return Err(error(
                    at,
                    format!(
                        "policy '{name}': address pool {pool} holds our own local address {}",
                        local.addr
                    ),
                ));
            }
        }
        let mut later = LaterChecks::default();
        if let (Some(eap_at), true) = (&self.eap_at, active) {
            let Some((srcid, srcid_at)) = facts.srcid else {
                return Err(error(
                    eap_at,
                    format!(
                        "policy '{name}': as initiator, 'eap' authenticates as the user its \
                         'srcid' names: add 'srcid NAME' and a line 'user \"NAME\" \"PASSWORD\"'"
                    ),
                ));
            };
            later.eap_client_user = Some((name.to_string(), srcid.to_string(), srcid_at.clone()));
        }
        Ok(later)
    }
}

/// `user NAME PASSWORD` (after the keyword at `at`). The password is never
/// part of an error message.
pub(super) fn parse_user(
    words: &[(TokenKind, &Location)],
    at: &Location,
) -> Result<UserCredential, ConfigError> {
    let usage = "'user' needs a name and a password: user \"NAME\" \"PASSWORD\"";
    let name = match words.first() {
        Some((TokenKind::Word(n) | TokenKind::Quoted(n), name_at)) => {
            if n.is_empty() || n.len() > MAX_USER_NAME || n.chars().any(char::is_control) {
                return Err(error(
                    name_at,
                    format!(
                        "invalid user name {n:?}: expected 1 to {MAX_USER_NAME} bytes without \
                         control characters"
                    ),
                ));
            }
            n.clone()
        }
        Some((_, l)) => return Err(error(l, usage)),
        None => return Err(error(at, usage)),
    };
    let password = match words.get(1) {
        Some((TokenKind::Word(p) | TokenKind::Quoted(p), password_at)) => {
            let length = p.chars().count();
            if length == 0 || length > MAX_USER_PASSWORD {
                return Err(error(
                    password_at,
                    format!(
                        "user {name:?}: the password must have 1 to {MAX_USER_PASSWORD} \
                         characters (RFC 2759), it has {length}"
                    ),
                ));
            }
            PreSharedKey::new(p.as_bytes().to_vec())
        }
        Some((_, l)) => return Err(error(l, usage)),
        None => {
            return Err(error(
                at,
                format!("user {name:?} needs a password: user \"NAME\" \"PASSWORD\""),
            ))
        }
    };
    if let Some((_, extra)) = words.get(2) {
        return Err(error(
            extra,
            format!("unexpected text after the password of user {name:?}"),
        ));
    }
    Ok(UserCredential { name, password })
}

/// The flows of `from SRC to dynamic` (the remote side is the policy's
/// pools): one per pool of SRC's family, or of either family when SRC is
/// `any`. `to_at` is where `dynamic` was written.
pub(super) fn dynamic_flows(
    name: &str,
    src: Prefix,
    src_any: bool,
    pools: &[(Prefix, Location)],
    to_at: &Location,
) -> Result<Vec<(Prefix, Prefix)>, ConfigError> {
    let flows: Vec<(Prefix, Prefix)> = pools
        .iter()
        .filter_map(|(pool, _)| {
            if src_any {
                let any = Prefix {
                    addr: masked(pool.addr, 0),
                    len: 0,
                };
                Some((any, *pool))
            } else {
                (src.addr.is_ipv4() == pool.addr.is_ipv4()).then_some((src, *pool))
            }
        })
        .collect();
    if flows.is_empty() {
        let family = if src_any {
            String::new()
        } else if src.addr.is_ipv4() {
            "IPv4 ".to_string()
        } else {
            "IPv6 ".to_string()
        };
        return Err(error(
            to_at,
            format!(
                "policy '{name}': 'to dynamic' means the addresses the policy hands out, \
                 but it has no {family}pool: add 'config address NET'"
            ),
        ));
    }
    Ok(flows)
}

/// The /0 of `addr`'s family: our side of `from dynamic` until the
/// gateway names our address.
pub(super) fn any_of_family(addr: IpAddr) -> Prefix {
    Prefix {
        addr: masked(addr, 0),
        len: 0,
    }
}
