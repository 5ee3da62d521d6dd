//! The `ikev2` statement of iked.conf(5):
//!
//! ```text
//! ikev2 ["name"] [active|passive] [esp] [tunnel|transport] [natt] [notrap] [inet|inet6]
//!       [proto P] {from SRC [port P] to DST [port P]} [local ADDR] [peer ADDR]
//!       {ikesa {enc X|auth X|prf X|group X}} {childsa {enc X|auth X|group X|esn|noesn}}
//!       [srcid ID] [dstid ID] [ikelifetime T] [lifetime T [bytes B]]
//!       [[ikeauth] psk "S"|psk 0xHEX|rsa|ecdsa256|ecdsa384|ecdsa521|rfc7427|signature]
//! ```
//!
//! The authentication method is written as in OpenBSD (a bare `psk ...`,
//! `rsa`, ...), optionally after the word `ikeauth`; without one the
//! policy uses public keys, any signature method that fits the key
//! (OpenBSD's default).
//!
//! Keywords after the name may come in any order. Every error names the
//! position of the offending word.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::lexer::TokenKind;
use super::policy::*;
use super::{ConfigError, Location};
use crate::kernel::Selector;

/// Default IKE SA lifetime (seconds) before it is rekeyed.
pub const DEFAULT_IKE_LIFETIME: u64 = 86_400;
/// Default Child SA lifetime (seconds) before it is rekeyed.
pub const DEFAULT_CHILD_LIFETIME: u64 = 10_800;
/// Lifetimes below this make no sense and would storm the peer with rekeys.
const MIN_LIFETIME: u64 = 10;

fn error(location: &Location, message: impl Into<String>) -> ConfigError {
    ConfigError {
        location: location.clone(),
        message: message.into(),
    }
}

// IANA transform IDs (RFC 7296 §3.3.2 and the IKEv2 registry).
const ENCR_AES_CBC: u16 = 12;
const ENCR_AES_GCM_8: u16 = 18;
const ENCR_AES_GCM_12: u16 = 19;
const ENCR_AES_GCM_16: u16 = 20;
const ENCR_CAMELLIA_CBC: u16 = 23;
const ENCR_CHACHA20_POLY1305: u16 = 28;

/// `enc` names: (name, transform ID, key length in bits, combined mode).
pub(super) const CIPHERS: &[(&str, u16, Option<u16>, bool)] = &[
    ("aes-128", ENCR_AES_CBC, Some(128), false),
    ("aes-192", ENCR_AES_CBC, Some(192), false),
    ("aes-256", ENCR_AES_CBC, Some(256), false),
    ("aes-128-gcm", ENCR_AES_GCM_16, Some(128), true),
    ("aes-192-gcm", ENCR_AES_GCM_16, Some(192), true),
    ("aes-256-gcm", ENCR_AES_GCM_16, Some(256), true),
    ("aes-128-gcm-12", ENCR_AES_GCM_12, Some(128), true),
    ("aes-256-gcm-12", ENCR_AES_GCM_12, Some(256), true),
    ("aes-128-gcm-8", ENCR_AES_GCM_8, Some(128), true),
    ("aes-256-gcm-8", ENCR_AES_GCM_8, Some(256), true),
    ("chacha20-poly1305", ENCR_CHACHA20_POLY1305, None, true),
    ("camellia-128", ENCR_CAMELLIA_CBC, Some(128), false),
    ("camellia-192", ENCR_CAMELLIA_CBC, Some(192), false),
    ("camellia-256", ENCR_CAMELLIA_CBC, Some(256), false),
];

/// `auth` names: integrity transform IDs.
pub(super) const INTEGRITY: &[(&str, u16)] = &[
    ("hmac-sha1", 2),
    ("hmac-sha2-256", 12),
    ("hmac-sha2-384", 13),
    ("hmac-sha2-512", 14),
];

/// `prf` names: PRF transform IDs.
pub(super) const PRFS: &[(&str, u16)] = &[
    ("hmac-sha1", 2),
    ("hmac-sha2-256", 5),
    ("hmac-sha2-384", 6),
    ("hmac-sha2-512", 7),
];

/// `group` names: key exchange method IDs.
pub(super) const GROUPS: &[(&str, u16)] = &[
    ("modp2048", 14),
    ("modp3072", 15),
    ("modp4096", 16),
    ("modp6144", 17),
    ("modp8192", 18),
    ("ecp256", 19),
    ("ecp384", 20),
    ("ecp521", 21),
    ("curve25519", 31),
    ("x25519", 31),
    ("curve448", 32),
    ("x448", 32),
];

fn names(table: &[(&str, u16)]) -> String {
    table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// The transform ID `value` names in `table`, or an error listing the names.
fn lookup(
    table: &[(&str, u16)],
    what: &str,
    value: &str,
    at: &Location,
) -> Result<u16, ConfigError> {
    table
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, id)| *id)
        .ok_or_else(|| {
            error(
                at,
                format!("unknown {what} '{value}': expected one of {}", names(table)),
            )
        })
}

fn cipher_names() -> String {
    CIPHERS.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
}

fn spec(transform_type: u8, id: u16, key_length: Option<u16>) -> TransformSpec {
    TransformSpec {
        transform_type,
        id,
        key_length,
    }
}

fn is_aead(t: &TransformSpec) -> bool {
    t.transform_type == TRANSFORM_ENCR
        && matches!(
            t.id,
            ENCR_AES_GCM_8 | ENCR_AES_GCM_12 | ENCR_AES_GCM_16 | ENCR_CHACHA20_POLY1305
        )
}

/// One `ikesa`/`childsa` block as written, before defaults and splitting.
#[derive(Default)]
struct Block {
    encryption: Vec<TransformSpec>,
    integrity: Vec<TransformSpec>,
    prf: Vec<TransformSpec>,
    groups: Vec<TransformSpec>,
    /// `group none` was given: no PFS.
    no_group: bool,
    esn: Option<bool>,
    location: Location,
}

fn default_prfs() -> Vec<TransformSpec> {
    [5, 6, 7]
        .iter()
        .map(|&id| spec(TRANSFORM_PRF, id, None))
        .collect()
}

fn default_integrity() -> Vec<TransformSpec> {
    [12, 13, 14]
        .iter()
        .map(|&id| spec(TRANSFORM_INTEG, id, None))
        .collect()
}

fn default_ike_groups() -> Vec<TransformSpec> {
    [31, 19, 14]
        .iter()
        .map(|&id| spec(TRANSFORM_KE, id, None))
        .collect()
}

fn default_ciphers(aead: bool) -> Vec<TransformSpec> {
    let names: &[&str] = if aead {
        &["aes-256-gcm", "aes-128-gcm"]
    } else {
        &["aes-256", "aes-128"]
    };
    names
        .iter()
        .filter_map(|n| CIPHERS.iter().find(|c| c.0 == *n))
        .map(|c| spec(TRANSFORM_ENCR, c.1, c.2))
        .collect()
}

/// Turns blocks into proposals: defaults filled in, AEAD and non-AEAD
/// ciphers split into separate proposals (RFC 5282 §8: an AEAD proposal
/// carries no integrity transform).
fn proposals(blocks: &[Block], ike: bool) -> Result<Vec<ProposalSpec>, ConfigError> {
    let default_block;
    let blocks = if blocks.is_empty() {
        default_block = [Block::default()];
        &default_block[..]
    } else {
        blocks
    };
    let mut out = Vec::new();
    for block in blocks {
        let (aead, plain): (Vec<_>, Vec<_>) = if block.encryption.is_empty() {
            (default_ciphers(true), default_ciphers(false))
        } else {
            block.encryption.iter().partition(|t| is_aead(t))
        };
        if plain.is_empty() && !block.integrity.is_empty() {
            return Err(error(
                &block.location,
                "'auth' has no use with only combined-mode (AEAD) ciphers",
            ));
        }
        let prf = if block.prf.is_empty() {
            default_prfs()
        } else {
            block.prf.clone()
        };
        let groups = if block.no_group {
            Vec::new()
        } else if block.groups.is_empty() && ike {
            default_ike_groups()
        } else {
            block.groups.clone()
        };
        for (ciphers, with_integrity) in [(aead, false), (plain, true)] {
            if ciphers.is_empty() {
                continue;
            }
            let mut transforms = ciphers;
            if with_integrity {
                if block.integrity.is_empty() {
                    transforms.extend(default_integrity());
                } else {
                    transforms.extend(block.integrity.iter().copied());
                }
            }
            if ike {
                transforms.extend(prf.iter().copied());
            }
            transforms.extend(groups.iter().copied());
            if !ike {
                // RFC 7296 §3.3.2: ESN 0 = no extended sequence numbers.
                let esn = u16::from(block.esn.unwrap_or(false));
                transforms.push(spec(TRANSFORM_ESN, esn, None));
            }
            out.push(ProposalSpec { transforms });
        }
    }
    Ok(out)
}

/// Parses `word` as an address with an optional prefix, or `any`.
pub(super) fn prefix(
    word: &str,
    at: &Location,
    any_family: Option<bool>,
) -> Result<Prefix, ConfigError> {
    if word == "any" {
        let v6 = any_family.unwrap_or(false);
        return Ok(Prefix {
            addr: if v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            },
            len: 0,
        });
    }
    let (addr, len) = match word.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (word, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        error(
            at,
            format!("'{word}' is not an address (hostnames are not supported: use an IP address)"),
        )
    })?;
    let max = crate::kernel::max_prefix(addr);
    let len = match len {
        None => max,
        Some(l) => l.parse::<u8>().ok().filter(|&l| l <= max).ok_or_else(|| {
            error(
                at,
                format!("invalid prefix length in '{word}': expected 0..{max}"),
            )
        })?,
    };
    Ok(Prefix { addr, len })
}

/// The type of an identity follows from how it is written (iked.conf(5)):
/// an address, `@fqdn`, a DN (OpenBSD's leading `/`, or `ATTR=value, ...`:
/// a name or mail address never holds `=`), `user@domain`, else an FQDN.
fn identity(word: &str, at: &Location) -> Result<IdentitySpec, ConfigError> {
    Ok(if let Ok(addr) = word.parse::<IpAddr>() {
        IdentitySpec::Address(addr)
    } else if let Some(fqdn) = word.strip_prefix('@') {
        IdentitySpec::Fqdn(fqdn.to_string())
    } else if word.starts_with('/') || word.contains('=') {
        let dn = super::dn::canonical(word).map_err(|why| {
            error(
                at,
                format!("'{word}' is not a distinguished name: {why} (write \"C=DE, O=Example, CN=gw-a\" or /C=DE/O=Example/CN=gw-a)"),
            )
        })?;
        IdentitySpec::Asn1Dn(dn)
    } else if word.contains('@') {
        IdentitySpec::UserFqdn(word.to_string())
    } else {
        IdentitySpec::Fqdn(word.to_string())
    })
}

/// `rsa`, `ecdsa256`, ... (OpenBSD's `methodxfs`): the signature method of
/// a public-key policy.
pub(super) const SIGNATURE_METHODS: &[(&str, SignatureAuth)] = &[
    ("rsa", SignatureAuth::Rsa),
    ("ecdsa256", SignatureAuth::Ecdsa256),
    ("ecdsa384", SignatureAuth::Ecdsa384),
    ("ecdsa521", SignatureAuth::Ecdsa521),
    ("rfc7427", SignatureAuth::Rfc7427),
    ("signature", SignatureAuth::Any),
];

/// How a policy authenticates as written, before the default applies.
enum AuthWritten {
    Psk(Vec<u8>),
    Signature(SignatureAuth),
}

/// `10`, `30s`, `10m`, `8h`, `1d`.
fn duration(word: &str, at: &Location) -> Result<u64, ConfigError> {
    let (digits, unit) = match word.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => word.split_at(i),
        None => (word, ""),
    };
    let multiplier = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    let seconds = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            error(
                at,
                format!("invalid time '{word}': expected a number with s, m, h or d"),
            )
        })?;
    if seconds < MIN_LIFETIME {
        return Err(error(
            at,
            format!("lifetime '{word}' is too short: at least {MIN_LIFETIME} s"),
        ));
    }
    Ok(seconds)
}

/// `1000`, `500K`, `100M`, `4G`.
fn byte_count(word: &str, at: &Location) -> Result<u64, ConfigError> {
    let (digits, multiplier) = match word.chars().last() {
        Some('k' | 'K') => (&word[..word.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&word[..word.len() - 1], 1 << 20),
        Some('g' | 'G') => (&word[..word.len() - 1], 1 << 30),
        _ => (word, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            error(
                at,
                format!("invalid byte count '{word}': expected a number with K, M or G"),
            )
        })
}

fn protocol(word: &str, at: &Location) -> Result<u8, ConfigError> {
    match word {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "ipv6-icmp" | "icmp6" => Ok(58),
        "sctp" => Ok(132),
        "gre" => Ok(47),
        n => n.parse::<u8>().map_err(|_| {
            error(
                at,
                format!("unknown protocol '{word}': use tcp, udp, icmp, icmp6 or a number"),
            )
        }),
    }
}

fn port(word: &str, at: &Location) -> Result<u16, ConfigError> {
    word.parse::<u16>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| error(at, format!("invalid port '{word}': expected 1..65535")))
}

fn psk(kind: &TokenKind, at: &Location) -> Result<Vec<u8>, ConfigError> {
    let bytes = match kind {
        TokenKind::Word(w) if w.starts_with("0x") => {
            let hex = &w[2..];
            if hex.is_empty() || hex.len() % 2 != 0 {
                return Err(error(
                    at,
                    "hexadecimal psk needs an even, non-zero number of digits",
                ));
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| error(at, "psk: invalid hexadecimal digit"))?
        }
        TokenKind::Word(w) | TokenKind::Quoted(w) => w.as_bytes().to_vec(),
        _ => return Err(error(at, "psk needs a quoted string or 0xHEX")),
    };
    if bytes.is_empty() {
        return Err(error(at, "empty psk"));
    }
    Ok(bytes)
}

fn auth_methods_expected() -> String {
    let names: Vec<&str> = SIGNATURE_METHODS.iter().map(|(n, _)| *n).collect();
    format!("expected psk \"KEY\" or one of {}", names.join(", "))
}

/// `ikeauth METHOD`, or the method alone as OpenBSD writes it, from
/// `keyword` on: a PSK with its key, or a signature method.
fn auth_method(
    keyword: &str,
    at: &Location,
    w: &mut Words<'_>,
) -> Result<AuthWritten, ConfigError> {
    let (method, method_at) = if keyword == "ikeauth" {
        match w.take() {
            Some((TokenKind::Word(m), l)) => (m.as_str(), *l),
            Some((_, l)) => return Err(error(l, auth_methods_expected())),
            None => return Err(error(at, auth_methods_expected())),
        }
    } else {
        (keyword, at)
    };
    if method == "psk" {
        return match w.take() {
            Some((kind, vat)) => Ok(AuthWritten::Psk(psk(kind, vat)?)),
            None => Err(error(method_at, "psk needs a quoted string or 0xHEX")),
        };
    }
    SIGNATURE_METHODS
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, m)| AuthWritten::Signature(*m))
        .ok_or_else(|| {
            error(
                method_at,
                format!("unknown ikeauth '{method}': {}", auth_methods_expected()),
            )
        })
}

/// A cursor over the words of one statement.
pub(super) struct Words<'a> {
    words: &'a [(TokenKind, &'a Location)],
    next: usize,
    /// Where the statement started, for errors about what is missing.
    start: &'a Location,
}

impl<'a> Words<'a> {
    fn peek(&self) -> Option<&'a (TokenKind, &'a Location)> {
        self.words.get(self.next)
    }

    pub(super) fn take(&mut self) -> Option<&'a (TokenKind, &'a Location)> {
        let word = self.words.get(self.next);
        if word.is_some() {
            self.next += 1;
        }
        word
    }

    /// The next word as a bare word (or quoted string), or an error saying
    /// what `after` needs.
    pub(super) fn value(
        &mut self,
        after: &str,
        at: &Location,
    ) -> Result<(&'a str, &'a Location), ConfigError> {
        match self.take() {
            Some((TokenKind::Word(w) | TokenKind::Quoted(w), l)) => Ok((w.as_str(), l)),
            Some((_, l)) => Err(error(l, format!("'{after}' needs a value"))),
            None => Err(error(at, format!("'{after}' needs a value"))),
        }
    }

    /// `port N` if it comes next, else 0 (any port).
    fn optional_port(&mut self) -> Result<u16, ConfigError> {
        if self.peek_word() != Some("port") {
            return Ok(0);
        }
        let Some((_, at)) = self.take() else {
            return Ok(0);
        };
        let (value, value_at) = self.value("port", at)?;
        port(value, value_at)
    }

    fn peek_word(&self) -> Option<&'a str> {
        match self.peek() {
            Some((TokenKind::Word(w), _)) => Some(w.as_str()),
            _ => None,
        }
    }
}

/// The remote side of one `from ... to ...` as written.
enum FlowRemote<'a> {
    Net(Prefix),
    /// `to dynamic`: the policy's pools, known once the statement is read.
    /// Whether our side was `any` (then one flow per pool of either family).
    Dynamic {
        src_any: bool,
        at: &'a Location,
    },
}

/// One parsed `ikev2` statement.
pub struct ParsedPolicy {
    pub policy: Policy,
    /// The PSK, for ca only.
    pub secret: Option<Vec<u8>>,
    /// The `config address` pools with where each was written, for the
    /// file-wide check that no two policies share an address.
    pub pools: Vec<(Prefix, Location)>,
    pub later: super::remote_access::LaterChecks,
}

/// Parses the words of an `ikev2` statement (after the keyword).
pub fn parse_policy(
    words: &[(TokenKind, &Location)],
    start: &Location,
    index: usize,
) -> Result<ParsedPolicy, ConfigError> {
    let mut w = Words {
        words,
        next: 0,
        start,
    };
    let name = match w.peek() {
        Some((TokenKind::Quoted(n), _)) => {
            w.take();
            n.clone()
        }
        _ => format!("policy{}", index + 1),
    };
    let mut initiation = PolicyInitiation::Passive;
    let mut encapsulation = Encapsulation::Tunnel;
    let mut force_natt = false;
    let mut trap = true;
    let mut family: Option<bool> = None; // Some(true) = inet6
    let mut proto = 0u8;
    let mut raw_flows: Vec<(Prefix, u16, FlowRemote<'_>, u16)> = Vec::new();
    let mut from_dynamic_at: Option<&Location> = None;
    let mut local = None;
    let mut peer = None;
    // `peer any` / `peer NET` as written: where, and the word.
    let mut unknown_peer: Option<(&Location, &str)> = None;
    let mut initiation_at: Option<&Location> = None;
    let mut auth_at: Option<&Location> = None;
    let mut srcid_at: Option<&Location> = None;
    let mut remote = super::remote_access::Written::default();
    let mut ike_blocks: Vec<Block> = Vec::new();
    let mut child_blocks: Vec<Block> = Vec::new();
    let mut srcid = None;
    let mut dstid = None;
    let mut ike_lifetime = DEFAULT_IKE_LIFETIME;
    let mut child_lifetime = DEFAULT_CHILD_LIFETIME;
    let mut child_bytes = 0;
    let mut auth: Option<AuthWritten> = None;
    let mut seen: Vec<&str> = Vec::new();
    let mut matching = PolicyMatch::Normal;

    while let Some((kind, at)) = w.take() {
        let TokenKind::Word(keyword) = kind else {
            return Err(error(
                at,
                "unexpected quoted string: a keyword was expected",
            ));
        };
        let once = |seen: &mut Vec<&str>, key: &'static str| {
            if seen.contains(&key) {
                Err(error(at, format!("'{key}' given twice")))
            } else {
                seen.push(key);
                Ok(())
            }
        };
        match keyword.as_str() {
            "active" | "passive" => {
                once(&mut seen, "active/passive")?;
                initiation_at = Some(at);
                initiation = if keyword == "active" {
                    PolicyInitiation::Active
                } else {
                    PolicyInitiation::Passive
                };
            }
            "esp" => once(&mut seen, "esp")?,
            "ah" => return Err(error(at, "AH is not supported: use esp")),
            "tunnel" | "transport" => {
                once(&mut seen, "tunnel/transport")?;
                encapsulation = if keyword == "tunnel" {
                    Encapsulation::Tunnel
                } else {
                    Encapsulation::Transport
                };
            }
            "natt" => {
                once(&mut seen, "natt")?;
                force_natt = true;
            }
            "notrap" => {
                once(&mut seen, "notrap")?;
                trap = false;
            }
            "inet" | "inet6" => {
                once(&mut seen, "inet/inet6")?;
                family = Some(keyword == "inet6");
            }
            "proto" => {
                once(&mut seen, "proto")?;
                let (value, vat) = w.value("proto", at)?;
                proto = protocol(value, vat)?;
            }
            "from" => {
                let sources = super::policy_order::address_list(&mut w, "from", at)?;
                let src_port = w.optional_port()?;
                let last_src = sources.last().map_or(*at, |(_, l)| l);
                match w.take() {
                    Some((TokenKind::Word(to), _)) if to == "to" => {}
                    Some((_, l)) => return Err(error(l, "expected 'to' after 'from ...'")),
                    None => return Err(error(last_src, "expected 'to' after 'from ...'")),
                }
                let destinations = super::policy_order::address_list(&mut w, "to", last_src)?;
                let dst_port = w.optional_port()?;
                super::policy_order::check_flow_count(
                    raw_flows.len(),
                    sources.len() * destinations.len(),
                    at,
                )?;
                for (src_word, src_at) in &sources {
                    for (dst_word, dst_at) in &destinations {
                        let (src_word, src_at, dst_word, dst_at) =
                            (src_word.as_str(), *src_at, dst_word.as_str(), *dst_at);
                        // `any` takes the family of the other side when that is known.
                        let hint = |other: &str| {
                            other
                                .parse::<IpAddr>()
                                .ok()
                                .or_else(|| other.split('/').next()?.parse().ok())
                                .map(|a: IpAddr| a.is_ipv6())
                        };
                        match (src_word == "dynamic", dst_word == "dynamic") {
                            (true, true) => {
                                return Err(error(
                                    dst_at,
                                    "'from dynamic to dynamic': only one side can be dynamic",
                                ))
                            }
                            (false, true) => {
                                // Our side of a gateway's flow towards the
                                // addresses it hands out (RFC 7296 §3.15).
                                let src = prefix(src_word, src_at, family)?;
                                let remote = FlowRemote::Dynamic {
                                    src_any: src_word == "any" && family.is_none(),
                                    at: dst_at,
                                };
                                raw_flows.push((src, src_port, remote, dst_port));
                            }
                            (true, false) => {
                                // A client's side: the family's /0 until the
                                // gateway names our address.
                                let dst = prefix(dst_word, dst_at, family)?;
                                from_dynamic_at.get_or_insert(src_at);
                                let src = super::remote_access::any_of_family(dst.addr);
                                raw_flows.push((src, src_port, FlowRemote::Net(dst), dst_port));
                            }
                            (false, false) => {
                                let src =
                                    prefix(src_word, src_at, family.or_else(|| hint(dst_word)))?;
                                let dst =
                                    prefix(dst_word, dst_at, family.or_else(|| hint(src_word)))?;
                                if src.addr.is_ipv4() != dst.addr.is_ipv4() {
                                    return Err(error(
                                dst_at,
                                format!(
                                    "'{src_word}' and '{dst_word}' are of different address families"
                                ),
                            ));
                                }
                                raw_flows.push((src, src_port, FlowRemote::Net(dst), dst_port));
                            }
                        }
                    }
                }
            }
            "quick" | "skip" | "default" => {
                once(&mut seen, "quick/skip/default")?;
                matching = match keyword.as_str() {
                    "quick" => PolicyMatch::Quick,
                    "skip" => PolicyMatch::Skip,
                    _ => PolicyMatch::Default,
                };
            }
            refused if super::policy_order::refused_keyword(refused).is_some() => {
                let why = super::policy_order::refused_keyword(refused).unwrap_or_default();
                return Err(error(at, format!("'{refused}' is refused: {why}")));
            }
            "local" | "peer" => {
                once(&mut seen, if keyword == "local" { "local" } else { "peer" })?;
                let (value, vat) = w.value(keyword, at)?;
                let p = if value == "any" {
                    None
                } else {
                    Some(prefix(value, vat, family)?)
                };
                if keyword == "peer" && p.is_none_or(|p| !p.is_host()) {
                    unknown_peer = Some((vat, value));
                }
                if keyword == "local" {
                    if let Some(p) = p {
                        if !p.is_host() {
                            return Err(error(vat, "'local' must be a single address"));
                        }
                    }
                    local = p;
                } else {
                    peer = p;
                }
            }
            "ikesa" | "childsa" => {
                let ike = keyword == "ikesa";
                let mut block = Block {
                    location: (*at).clone(),
                    ..Block::default()
                };
                let mut any = false;
                while let Some(sub) = w.peek_word() {
                    let table_value =
                        |w: &mut Words<'_>| -> Result<(String, Location), ConfigError> {
                            let (_, sat) = w
                                .take()
                                .map(|(k, l)| (k, *l))
                                .ok_or_else(|| error(at, sub))?;
                            let (v, vat) = w.value(sub, sat)?;
                            Ok((v.to_string(), vat.clone()))
                        };
                    match sub {
                        "enc" => {
                            let (v, vat) = table_value(&mut w)?;
                            let c = CIPHERS.iter().find(|c| c.0 == v).ok_or_else(|| {
                                error(
                                    &vat,
                                    format!(
                                        "unknown cipher '{v}': expected one of {}",
                                        cipher_names()
                                    ),
                                )
                            })?;
                            block.encryption.push(spec(TRANSFORM_ENCR, c.1, c.2));
                        }
                        "auth" => {
                            let (v, vat) = table_value(&mut w)?;
                            let id = lookup(INTEGRITY, "auth", &v, &vat)?;
                            block.integrity.push(spec(TRANSFORM_INTEG, id, None));
                        }
                        "prf" if ike => {
                            let (v, vat) = table_value(&mut w)?;
                            let id = lookup(PRFS, "prf", &v, &vat)?;
                            block.prf.push(spec(TRANSFORM_PRF, id, None));
                        }
                        "group" => {
                            let (v, vat) = table_value(&mut w)?;
                            if v == "none" && !ike {
                                block.no_group = true;
                            } else {
                                let id = lookup(GROUPS, "group", &v, &vat)?;
                                block.groups.push(spec(TRANSFORM_KE, id, None));
                            }
                        }
                        "esn" | "noesn" if !ike => {
                            w.take();
                            block.esn = Some(sub == "esn");
                        }
                        _ => break,
                    }
                    any = true;
                }
                if !any {
                    return Err(error(
                        at,
                        format!(
                            "'{keyword}' needs at least one of enc, auth, {}group",
                            if ike { "prf, " } else { "" }
                        ),
                    ));
                }
                if ike {
                    ike_blocks.push(block)
                } else {
                    child_blocks.push(block)
                }
            }
            "srcid" | "dstid" => {
                once(
                    &mut seen,
                    if keyword == "srcid" { "srcid" } else { "dstid" },
                )?;
                let (value, vat) = w.value(keyword, at)?;
                let id = Some(identity(value, vat)?);
                if keyword == "srcid" {
                    srcid = id;
                    srcid_at = Some(vat);
                } else {
                    dstid = id
                }
            }
            "ikelifetime" => {
                once(&mut seen, "ikelifetime")?;
                let (value, vat) = w.value("ikelifetime", at)?;
                ike_lifetime = duration(value, vat)?;
            }
            "lifetime" => {
                once(&mut seen, "lifetime")?;
                let (value, vat) = w.value("lifetime", at)?;
                child_lifetime = duration(value, vat)?;
                if w.peek_word() == Some("bytes") {
                    let (_, bat) = w
                        .take()
                        .map(|(k, l)| (k, *l))
                        .ok_or_else(|| error(at, "bytes"))?;
                    let (value, vat) = w.value("bytes", bat)?;
                    child_bytes = byte_count(value, vat)?;
                }
            }
            "ikeauth" | "psk" | "signature" => {
                once(&mut seen, "ikeauth")?;
                auth_at = Some(at);
                auth = Some(auth_method(keyword, at, &mut w)?);
            }
            "rsa" | "ecdsa256" | "ecdsa384" | "ecdsa521" | "rfc7427" => {
                once(&mut seen, "ikeauth")?;
                auth = Some(auth_method(keyword, at, &mut w)?);
            }
            // Road warriors (remote_access.rs): what a gateway hands out,
            // what a client asks for, where it puts its address, EAP.
            "config" => remote.config(&mut w, at)?,
            "request" => remote.request(&mut w, at)?,
            "iface" => remote.iface(&mut w, at)?,
            "eap" => remote.eap(&mut w, at)?,
            other => {
                return Err(error(
                    at,
                    format!("syntax error: unknown keyword '{other}' in ikev2 policy"),
                ))
            }
        }
    }

    // No method: public keys, any signature that fits the key (iked.conf(5)).
    let (auth, secret) = match auth {
        Some(AuthWritten::Psk(secret)) => (AuthSpec::Psk, Some(secret)),
        Some(AuthWritten::Signature(method)) => (AuthSpec::PublicKey(method), None),
        None => (AuthSpec::PublicKey(SignatureAuth::Any), None),
    };
    if let (Some(l), Some(p)) = (local, peer) {
        if l.addr.is_ipv4() != p.addr.is_ipv4() {
            return Err(error(
                w.start,
                format!("policy '{name}': local and peer are of different address families"),
            ));
        }
    }
    let later = remote.check(&super::remote_access::PolicyFacts {
        name: &name,
        initiation,
        initiation_at,
        unknown_peer,
        local,
        auth,
        auth_at,
        srcid: srcid.as_ref().zip(srcid_at),
        from_dynamic_at,
    })?;
    let mut flows: Vec<Selector> = Vec::new();
    for (src, src_port, dst, dst_port) in raw_flows {
        let pairs = match dst {
            FlowRemote::Net(dst) => vec![(src, dst)],
            FlowRemote::Dynamic { src_any, at } => {
                super::remote_access::dynamic_flows(&name, src, src_any, &remote.pools, at)?
            }
        };
        flows.extend(pairs.into_iter().map(|(src, dst)| Selector {
            src: src.addr,
            src_prefix: src.len,
            dst: dst.addr,
            dst_prefix: dst.len,
            protocol: proto,
            src_port,
            dst_port,
        }));
    }
    // A policy without `from ... to` protects the traffic between the two
    // gateways themselves: one flow, the same for the engine (what it
    // proposes and accepts) and for pfkey (what it may install).
    if let (true, Some(l), Some(p)) = (flows.is_empty(), local, peer) {
        if l.is_host() && p.is_host() {
            flows.push(Selector {
                protocol: proto,
                ..Selector::hosts(l.addr, p.addr)
            });
        }
    }
    let policy = Policy {
        name,
        initiation,
        encapsulation,
        force_natt,
        trap,
        flows,
        local,
        peer,
        ike_proposals: proposals(&ike_blocks, true)?,
        child_proposals: proposals(&child_blocks, false)?,
        srcid,
        dstid,
        ike_lifetime_secs: ike_lifetime,
        child_lifetime_secs: child_lifetime,
        child_lifetime_bytes: child_bytes,
        auth,
        remote_access: remote.access,
        matching,
    };
    Ok(ParsedPolicy {
        policy,
        secret,
        pools: remote.pools,
        later,
    })
}
