//! Checks at load time that look past one statement: whether the kernel
//! interface in use can install what a policy's `childsa` names, and
//! whether a transport-mode policy's flows are the gateways' own traffic.
//!
//! They run where every configuration is read (startup, reload, `iked -n`:
//! [`check_written`] from the parser), and once the parent knows which
//! kernel interface it opened ([`check_kernel`], which also fits the
//! default proposals to it). A refusal names `file:line:col` of what is
//! refused and why; on reload the old configuration stays in force.

use super::policy::{
    Encapsulation, Policy, TransformSpec, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG,
};
use super::policy_parser::{CIPHERS, INTEGRITY};
use super::{Config, ConfigError, Location};
use crate::config::lexer::TokenKind;
use crate::kernel::KernelSocketKind;

/// HMAC-SHA-256-128 (RFC 4868), IKEv2 integrity transform 12.
const AUTH_HMAC_SHA2_256_128: u16 = 12;

/// Where the parts of each policy were written, for errors found after
/// the parse. Locations say nothing about what a configuration does, so
/// two maps always compare equal: a policy that only moved to another line
/// is not a changed policy.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    policies: Vec<PolicySource>,
}

impl PartialEq for SourceMap {
    fn eq(&self, _: &SourceMap) -> bool {
        true
    }
}

impl Eq for SourceMap {}

impl SourceMap {
    pub fn record(&mut self, source: PolicySource) {
        self.policies.push(source);
    }

    fn of(&self, policy: &str) -> Option<&PolicySource> {
        self.policies.iter().find(|p| p.name == policy)
    }
}

/// One `childsa` word with a value (`enc aes-128-gcm`) or a flag (`esn`).
#[derive(Debug, Clone)]
struct WrittenTransform {
    keyword: String,
    value: String,
    at: Location,
}

/// Where one `ikev2` statement and its parts were written.
#[derive(Debug, Clone)]
pub struct PolicySource {
    name: String,
    at: Location,
    transport_at: Option<Location>,
    /// Every `from` keyword, in order.
    flows_at: Vec<Location>,
    /// The words of every `childsa` block, in order.
    child: Vec<WrittenTransform>,
}

impl PolicySource {
    /// Scans the words of an `ikev2` statement (after the keyword) that
    /// the policy parser accepted.
    pub fn scan(name: &str, words: &[(TokenKind, &Location)], start: &Location) -> PolicySource {
        let mut source = PolicySource {
            name: name.to_string(),
            at: start.clone(),
            transport_at: None,
            flows_at: Vec::new(),
            child: Vec::new(),
        };
        let word = |i: usize| match words.get(i) {
            Some((TokenKind::Word(w), at)) => Some((w.as_str(), *at)),
            _ => None,
        };
        let mut i = 0;
        while i < words.len() {
            match word(i) {
                Some(("transport", at)) => source.transport_at = Some(at.clone()),
                Some(("from", at)) => source.flows_at.push(at.clone()),
                Some(("childsa", _)) => {
                    while let Some((sub, at)) = word(i + 1) {
                        match sub {
                            "enc" | "auth" | "group" => {
                                let Some((value, value_at)) = word(i + 2) else {
                                    break;
                                };
                                source.child.push(WrittenTransform {
                                    keyword: sub.to_string(),
                                    value: value.to_string(),
                                    at: value_at.clone(),
                                });
                                i += 2;
                            }
                            "esn" | "noesn" => {
                                source.child.push(WrittenTransform {
                                    keyword: sub.to_string(),
                                    value: String::new(),
                                    at: at.clone(),
                                });
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
        source
    }
}

/// What the kernel interface in use can install, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelAlgorithms {
    /// Linux PF_KEY (net/key/af_key.c): its algorithm table has no
    /// combined-mode cipher, only the pre-RFC 4868 96-bit truncation of
    /// HMAC-SHA-256, and its SA extensions carry no 64-bit sequence number.
    LinuxPfkey,
    /// XFRM netlink. `unavailable` are the ciphers and integrity
    /// algorithms (IKEv2 transforms) the kernel refused when asked; `None`
    /// when it could not be asked or did not answer for any algorithm,
    /// with the reason for the warning.
    Xfrm {
        unavailable: Vec<TransformSpec>,
        unknown: Option<String>,
    },
}

impl KernelAlgorithms {
    /// What is known without asking the kernel: everything for PF_KEY,
    /// nothing for XFRM.
    pub fn assumed(kind: KernelSocketKind) -> KernelAlgorithms {
        match kind {
            KernelSocketKind::Pfkey => KernelAlgorithms::LinuxPfkey,
            KernelSocketKind::Xfrm => KernelAlgorithms::Xfrm {
                unavailable: Vec::new(),
                unknown: None,
            },
        }
    }

    fn kind(&self) -> KernelSocketKind {
        match self {
            KernelAlgorithms::LinuxPfkey => KernelSocketKind::Pfkey,
            KernelAlgorithms::Xfrm { .. } => KernelSocketKind::Xfrm,
        }
    }

    /// Why `t` cannot be installed, or `None` if it can (or nobody knows).
    fn refusal(&self, t: &TransformSpec) -> Option<String> {
        match self {
            KernelAlgorithms::LinuxPfkey => pfkey_refusal(t),
            KernelAlgorithms::Xfrm { unavailable, .. } => {
                let same = |u: &TransformSpec| {
                    u.transform_type == t.transform_type
                        && u.id == t.id
                        && (u.key_length.is_none() || u.key_length == t.key_length)
                };
                unavailable.iter().any(same).then(|| {
                    "the kernel's XFRM refused an SA with it when asked at start \
                     (is its crypto module built or loadable?)"
                        .to_string()
                })
            }
        }
    }
}

fn pfkey_refusal(t: &TransformSpec) -> Option<String> {
    match t.transform_type {
        TRANSFORM_ENCR if is_combined_mode(t) => Some(
            "Linux PF_KEY has no combined-mode (AEAD) ciphers, so such an SA could be \
             negotiated but never installed; use a CBC cipher with 'auth', or 'set kernel xfrm'"
                .into(),
        ),
        TRANSFORM_INTEG if t.id == AUTH_HMAC_SHA2_256_128 => Some(
            "Linux PF_KEY truncates hmac-sha2-256 to 96 bits, not the 128 of RFC 4868 that \
             peers use, so the SA would drop every packet; use hmac-sha2-384, hmac-sha2-512 \
             or hmac-sha1, or 'set kernel xfrm'"
                .into(),
        ),
        TRANSFORM_ESN if t.id == 1 => Some(
            "Linux PF_KEY cannot install extended sequence numbers (RFC 4303 §2.2.1); \
             use 'noesn' or 'set kernel xfrm'"
                .into(),
        ),
        _ => None,
    }
}

fn is_combined_mode(t: &TransformSpec) -> bool {
    t.transform_type == TRANSFORM_ENCR
        && CIPHERS
            .iter()
            .any(|c| c.1 == t.id && c.2 == t.key_length && c.3)
}

/// The transform a written `childsa` word stands for, if it names one the
/// kernel installs (groups are IKE's business, not the kernel's).
fn written_transform(w: &WrittenTransform) -> Option<TransformSpec> {
    let spec = |transform_type, id, key_length| TransformSpec {
        transform_type,
        id,
        key_length,
    };
    match w.keyword.as_str() {
        "enc" => CIPHERS
            .iter()
            .find(|c| c.0 == w.value)
            .map(|c| spec(TRANSFORM_ENCR, c.1, c.2)),
        "auth" => INTEGRITY
            .iter()
            .find(|c| c.0 == w.value)
            .map(|c| spec(TRANSFORM_INTEG, c.1, None)),
        "esn" => Some(spec(TRANSFORM_ESN, 1, None)),
        _ => None,
    }
}

fn refused(at: &Location, message: String) -> ConfigError {
    ConfigError {
        location: at.clone(),
        message,
    }
}

/// The checks every read of the file makes: transport-mode flows, ciphers
/// iked gives no kernel, and the algorithms of `set kernel pfkey` when the
/// file names it.
pub fn check_written(config: &Config) -> Result<(), ConfigError> {
    for policy in &config.policies {
        check_transport(policy, config.sources.of(&policy.name))?;
        check_installable(policy, config.sources.of(&policy.name))?;
    }
    if config.kernel == Some(KernelSocketKind::Pfkey) {
        check_algorithms(config, &KernelAlgorithms::LinuxPfkey)?;
    }
    Ok(())
}

/// The checks once the kernel interface is open: refuses each `childsa`
/// algorithm written that `kernel` surely cannot install, drops from the
/// Child SA proposals the defaults it cannot install (so they are never
/// negotiated), and returns warnings for what cannot be known.
pub fn check_kernel(
    config: &mut Config,
    kernel: &KernelAlgorithms,
) -> Result<Vec<String>, ConfigError> {
    check_algorithms(config, kernel)?;
    let mut warnings = Vec::new();
    // What check_algorithms let through and the kernel still refuses
    // comes from the defaults: left out of what is proposed.
    for index in 0..config.policies.len() {
        let policy = &mut config.policies[index];
        for proposal in &mut policy.child_proposals {
            proposal
                .transforms
                .retain(|t| t.transform_type != TRANSFORM_INTEG || kernel.refusal(t).is_none());
        }
        policy.child_proposals.retain(|p| {
            let lost_integrity = p.of_type(TRANSFORM_ENCR).any(|t| !is_combined_mode(t))
                && p.of_type(TRANSFORM_INTEG).next().is_none();
            !lost_integrity && p.transforms.iter().all(|t| kernel.refusal(t).is_none())
        });
        if policy.child_proposals.is_empty() {
            return Err(refused(
                &source_at(config, index),
                format!(
                    "policy '{}': the kernel interface ({}) can install none of the default \
                     Child SA algorithms; name them with 'childsa'",
                    config.policies[index].name,
                    kernel.kind().name()
                ),
            ));
        }
    }
    // Only worth saying when there is a Child SA to install.
    if let (
        KernelAlgorithms::Xfrm {
            unknown: Some(why), ..
        },
        false,
    ) = (kernel, config.policies.is_empty())
    {
        warnings.push(format!(
            "cannot tell which ESP algorithms the kernel installs ({why}); Child SAs may be \
             negotiated and then fail to install"
        ));
    }
    Ok(warnings)
}

fn source_at(config: &Config, index: usize) -> Location {
    config
        .sources
        .of(&config.policies[index].name)
        .map(|s| s.at.clone())
        .unwrap_or_default()
}

/// Refuses each `childsa` algorithm written that `kernel` cannot install.
fn check_algorithms(config: &Config, kernel: &KernelAlgorithms) -> Result<(), ConfigError> {
    for policy in &config.policies {
        let Some(source) = config.sources.of(&policy.name) else {
            continue;
        };
        for written in &source.child {
            let Some(t) = written_transform(written) else {
                continue;
            };
            if let Some(reason) = kernel.refusal(&t) {
                let what = if written.value.is_empty() {
                    written.keyword.clone()
                } else {
                    format!("{} {}", written.keyword, written.value)
                };
                return Err(refused(
                    &written.at,
                    format!(
                        "policy '{}': 'childsa {what}' cannot be installed through {}: {reason}",
                        policy.name,
                        kernel_interface_name(kernel.kind())
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a `childsa` cipher iked hands to no kernel interface (the
/// shorter AES-GCM ICVs: kernel.rs `Encryption` has AES-GCM-16 only), so
/// that it is never negotiated for an SA that cannot be installed.
fn check_installable(policy: &Policy, source: Option<&PolicySource>) -> Result<(), ConfigError> {
    let Some(source) = source else {
        return Ok(());
    };
    for written in &source.child {
        let Some(t) = written_transform(written) else {
            continue;
        };
        let id = crate::wire::EncrId::from_value(t.id);
        if t.transform_type == TRANSFORM_ENCR && crate::kernel::Encryption::from_encr(id).is_none()
        {
            return Err(refused(
                &written.at,
                format!(
                    "policy '{}': 'childsa enc {}' cannot be installed: iked gives the kernel \
                     AES-GCM with the 16-byte ICV only (aes-128-gcm, aes-192-gcm, aes-256-gcm); \
                     the shorter ICVs are for 'ikesa'",
                    policy.name, written.value
                ),
            ));
        }
    }
    Ok(())
}

fn kernel_interface_name(kind: KernelSocketKind) -> &'static str {
    match kind {
        KernelSocketKind::Pfkey => "PF_KEY (set kernel pfkey)",
        KernelSocketKind::Xfrm => "XFRM",
    }
}

/// RFC 4301 §4.1: a transport-mode SA protects the traffic of its two
/// endpoints only, so every flow must go from our address to the peer's.
fn check_transport(policy: &Policy, source: Option<&PolicySource>) -> Result<(), ConfigError> {
    if policy.encapsulation != Encapsulation::Transport {
        return Ok(());
    }
    let fallback = source
        .map(|s| s.transport_at.clone().unwrap_or_else(|| s.at.clone()))
        .unwrap_or_default();
    // Each written `from` gives one flow unless it expanded (dynamic).
    let flow_at = |index: usize| {
        source
            .filter(|s| s.flows_at.len() == policy.flows.len())
            .and_then(|s| s.flows_at.get(index).cloned())
            .or_else(|| source.and_then(|s| s.flows_at.first().cloned()))
            .unwrap_or_else(|| fallback.clone())
    };
    for (index, flow) in policy.flows.iter().enumerate() {
        let max = |a: std::net::IpAddr| crate::kernel::max_prefix(a);
        let src = format!("{}/{}", flow.src, flow.src_prefix);
        let dst = format!("{}/{}", flow.dst, flow.dst_prefix);
        let problem = if flow.src_prefix != max(flow.src) {
            Some(format!("its source {src} is a network, not our address"))
        } else if flow.dst_prefix != max(flow.dst) {
            Some(format!(
                "its destination {dst} is a network, not the peer's address"
            ))
        } else if let Some(local) = policy.local.filter(|l| l.addr != flow.src) {
            Some(format!(
                "its source {} is not our address (local {})",
                flow.src, local.addr
            ))
        } else {
            policy.peer.filter(|p| !p.contains(flow.dst)).map(|peer| {
                format!(
                    "its destination {} is not the peer's address (peer {peer})",
                    flow.dst
                )
            })
        };
        if let Some(problem) = problem {
            return Err(refused(
                &flow_at(index),
                format!(
                    "policy '{}': transport mode protects only the traffic between the two \
                     gateways (RFC 4301 §4.1), but the flow from {src} to {dst} is not theirs: \
                     {problem}; use 'tunnel', or 'from LOCAL to PEER'",
                    policy.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests_checks.rs"]
mod tests;
