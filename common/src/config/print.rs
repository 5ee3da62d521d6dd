//! The configuration as read, printed back in iked.conf(5) syntax
//! (`iked -n -v`): defaults filled in, `to dynamic` expanded into its
//! flows, one keyword per line. Secrets (PSKs, user passwords) are never
//! printed: a placeholder stands in their place.

use std::fmt::Write;

use super::policy::*;
use super::policy_parser::{CIPHERS, GROUPS, INTEGRITY, PRFS, SIGNATURE_METHODS};
use super::{Config, InitiationMode};
use crate::kernel::KernelSocketKind;

/// What stands for a secret in the printed configuration.
pub const HIDDEN_SECRET: &str = "(not shown)";

fn name_of(table: &'static [(&'static str, u16)], id: u16) -> &'static str {
    table
        .iter()
        .find(|(_, i)| *i == id)
        .map(|(n, _)| *n)
        .unwrap_or("?")
}

/// An identity as written, so that it reads back as the same type: an
/// FQDN that would read as another type gets OpenBSD's leading `@`.
fn identity(id: &IdentitySpec) -> String {
    match id {
        IdentitySpec::Fqdn(name)
            if name.contains(['@', '='])
                || name.starts_with('/')
                || name.parse::<std::net::IpAddr>().is_ok() =>
        {
            quoted(&format!("@{name}"))
        }
        other => quoted(&other.to_string()),
    }
}

/// A transform as iked.conf(5) names it: `enc aes-256`, `group x25519`.
fn transform(t: &TransformSpec, ike: bool) -> String {
    match t.transform_type {
        TRANSFORM_ENCR => CIPHERS
            .iter()
            .find(|c| c.1 == t.id && c.2 == t.key_length)
            .map(|c| format!("enc {}", c.0))
            .unwrap_or_else(|| format!("enc {}", t.id)),
        TRANSFORM_INTEG => format!("auth {}", name_of(INTEGRITY, t.id)),
        TRANSFORM_PRF if ike => format!("prf {}", name_of(PRFS, t.id)),
        TRANSFORM_KE => format!("group {}", name_of(GROUPS, t.id)),
        TRANSFORM_ESN => if t.id == 1 { "esn" } else { "noesn" }.to_string(),
        _ => String::new(),
    }
}

fn proposal(keyword: &str, p: &ProposalSpec, ike: bool) -> String {
    let words: Vec<String> = p
        .transforms
        .iter()
        .map(|t| transform(t, ike))
        .filter(|w| !w.is_empty())
        .collect();
    format!("{keyword} {}", words.join(" "))
}

fn quoted(text: &str) -> String {
    format!("\"{text}\"")
}

fn attribute(a: &ConfigAttributeSpec) -> String {
    match a {
        ConfigAttributeSpec::AddressPool(p) => format!("config address {p}"),
        ConfigAttributeSpec::Netmask(a) => format!("config netmask {a}"),
        ConfigAttributeSpec::NameServer(a) => format!("config name-server {a}"),
        ConfigAttributeSpec::NetbiosServer(a) => format!("config netbios-server {a}"),
        ConfigAttributeSpec::DhcpServer(a) => format!("config dhcp-server {a}"),
        ConfigAttributeSpec::ProtectedSubnet(p) => format!("config protected-subnet {p}"),
        ConfigAttributeSpec::AccessServer(a) => format!("config access-server {a}"),
    }
}

/// One policy, one keyword (or `from ... to ...` pair) per line.
/// `all`: the lifetimes also when they are the defaults.
fn policy_lines(policy: &Policy, all: bool) -> Vec<String> {
    let matching = match policy.matching {
        PolicyMatch::Normal => "",
        PolicyMatch::Quick => " quick",
        PolicyMatch::Skip => " skip",
        PolicyMatch::Default => " default",
    };
    let mut words = vec![
        format!("ikev2 {}{matching}", quoted(&policy.name)),
        match policy.initiation {
            PolicyInitiation::Active => "active",
            PolicyInitiation::Passive => "passive",
        }
        .to_string(),
        "esp".to_string(),
        match policy.encapsulation {
            Encapsulation::Tunnel => "tunnel",
            Encapsulation::Transport => "transport",
        }
        .to_string(),
    ];
    if policy.force_natt {
        words.push("natt".into());
    }
    if !policy.trap {
        words.push("notrap".into());
    }
    let access = &policy.remote_access;
    let protocol = policy.flows.first().map(|f| f.protocol).unwrap_or(0);
    if protocol != 0 {
        words.push(format!("proto {protocol}"));
    }
    for flow in &policy.flows {
        // A client's side before the gateway names its address.
        let src = if access.request_address && flow.src_prefix == 0 {
            "dynamic".to_string()
        } else {
            format!("{}/{}", flow.src, flow.src_prefix)
        };
        let mut line = format!("from {src}");
        if flow.src_port != 0 {
            let _ = write!(line, " port {}", flow.src_port);
        }
        let _ = write!(line, " to {}/{}", flow.dst, flow.dst_prefix);
        if flow.dst_port != 0 {
            let _ = write!(line, " port {}", flow.dst_port);
        }
        words.push(line);
    }
    // Not given is `any`; written out only when given, since an explicit
    // `peer any` is held to the road-warrior checks.
    let side = |p: Prefix| {
        if p.is_host() {
            p.addr.to_string()
        } else {
            p.to_string()
        }
    };
    if let Some(local) = policy.local {
        words.push(format!("local {}", side(local)));
    }
    match policy.peer {
        Some(peer) => words.push(format!("peer {}", side(peer))),
        None if policy.initiation == PolicyInitiation::Passive
            && policy.local.is_some_and(|l| l.is_host()) =>
        {
            words.push("peer any".into())
        }
        None => {}
    }
    words.extend(
        policy
            .ike_proposals
            .iter()
            .map(|p| proposal("ikesa", p, true)),
    );
    words.extend(
        policy
            .child_proposals
            .iter()
            .map(|p| proposal("childsa", p, false)),
    );
    if let Some(id) = &policy.srcid {
        words.push(format!("srcid {}", identity(id)));
    }
    if let Some(id) = &policy.dstid {
        words.push(format!("dstid {}", identity(id)));
    }
    if all || policy.ike_lifetime_secs != super::DEFAULT_IKE_LIFETIME {
        words.push(format!("ikelifetime {}", policy.ike_lifetime_secs));
    }
    let mut lifetime = format!("lifetime {}", policy.child_lifetime_secs);
    if policy.child_lifetime_bytes != 0 {
        let _ = write!(lifetime, " bytes {}", policy.child_lifetime_bytes);
    }
    if all
        || policy.child_lifetime_secs != super::DEFAULT_CHILD_LIFETIME
        || policy.child_lifetime_bytes != 0
    {
        words.push(lifetime);
    }
    words.push(match policy.auth {
        AuthSpec::Psk => format!("psk {}", quoted(HIDDEN_SECRET)),
        AuthSpec::PublicKey(method) => SIGNATURE_METHODS
            .iter()
            .find(|(_, m)| *m == method)
            .map(|(n, _)| n.to_string())
            .unwrap_or_else(|| "signature".into()),
    });
    if let Some(eap) = access.eap {
        let name = super::remote_access::EAP_METHODS
            .iter()
            .find(|(_, m)| *m == eap)
            .map(|(n, _)| *n)
            .unwrap_or("?");
        words.push(format!("eap {}", quoted(name)));
    }
    words.extend(access.config.iter().map(attribute));
    if access.request_address {
        words.push("request address any".into());
    }
    if access.request_name_server {
        words.push("request name-server any".into());
    }
    if let Some(iface) = &access.iface {
        words.push(format!("iface {iface}"));
    }
    words
}

/// The `set` lines of a configuration, every setting written out.
fn global_lines(config: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = |text: String| lines.push(text);
    line(
        match config.mode {
            InitiationMode::Active => "set active",
            InitiationMode::Passive => "set passive",
        }
        .into(),
    );
    if let Some(kind) = config.kernel {
        line(format!(
            "set kernel {}",
            match kind {
                KernelSocketKind::Xfrm => "xfrm",
                KernelSocketKind::Pfkey => "pfkey",
            }
        ));
    }
    line(format!(
        "set dpd_check_interval {}",
        config.dpd_check_interval
    ));
    if let Some(group) = &config.control_group {
        line(format!("set control_group {}", quoted(group)));
    }
    line(
        if config.routing.enabled {
            "set routes"
        } else {
            "set noroutes"
        }
        .into(),
    );
    line(format!("set routing_table {}", config.routing.table));
    line(format!("set certdir {}", quoted(&config.certdir)));
    line(
        if config.fragmentation.enabled {
            "set fragmentation"
        } else {
            "set nofragmentation"
        }
        .into(),
    );
    line(format!(
        "set fragment_size {}",
        config.fragmentation.max_datagram
    ));
    line(
        if config.mobike {
            "set mobike"
        } else {
            "set nomobike"
        }
        .into(),
    );
    lines.extend(super::settings::print_lines(config));
    lines
}

/// The whole configuration in iked.conf(5) syntax, every setting written
/// out, secrets replaced by [`HIDDEN_SECRET`]. Parsing it gives the same
/// policies and settings back (only the secrets differ).
pub fn normalized(config: &Config) -> String {
    normalized_with(config, true)
}

/// The configuration as [`normalized`] prints it, but only the global
/// settings that differ from their defaults (`iked -n`; `-nv` prints all).
pub fn normalized_brief(config: &Config) -> String {
    normalized_with(config, false)
}

fn normalized_with(config: &Config, all: bool) -> String {
    let defaults = global_lines(&Config::default());
    let mut out = String::from("# secrets (psk, user passwords) are not shown\n");
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    for text in global_lines(config) {
        if all || !defaults.contains(&text) {
            line(text);
        }
    }
    for user in &config.users {
        line(format!(
            "user {} {}",
            quoted(&user.name),
            quoted(HIDDEN_SECRET)
        ));
    }
    for policy in &config.policies {
        let lines = policy_lines(policy, all);
        let last = lines.len() - 1;
        for (i, text) in lines.into_iter().enumerate() {
            let indent = if i == 0 { "" } else { "\t" };
            let continuation = if i == last { "" } else { " \\" };
            line(format!("{indent}{text}{continuation}"));
        }
    }
    out
}
