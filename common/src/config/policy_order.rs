//! Which policy an incoming IKE SA gets (OpenBSD iked.conf(5)): policies
//! are evaluated in file order and the LAST matching one wins, unless a
//! matching `quick` policy comes first, which wins at once; `skip`
//! policies are never chosen for an incoming IKE SA; `default` policies
//! only when nothing else matches. Also the `{ a, b }` address lists of
//! `from`/`to` and the OpenBSD keywords that do not map to Linux.

use super::lexer::TokenKind;
use super::policy::{Policy, PolicyMatch};
use super::policy_parser::Words;
use super::{ConfigError, Location};

/// Entries of one `{ ... }` list.
pub const MAX_LIST_ENTRIES: usize = 64;
/// Flows of one policy, all `from ... to ...` pairs and lists expanded: a
/// Child SA per flow (limits.rs), so far more than a site needs.
pub const MAX_FLOWS_PER_POLICY: usize = 256;

fn error(location: &Location, message: impl Into<String>) -> ConfigError {
    ConfigError {
        location: location.clone(),
        message: message.into(),
    }
}

/// The policies that `matches` (the IKE SA so far: addresses) in the order
/// they are to be tried: first the `quick` ones in file order (the first
/// wins at once), then the others from the last to the first (the last
/// match wins), then the `default` ones; `skip` ones not at all. The
/// engine takes the first of these that also passes its later checks
/// (proposals, identities), which is the policy OpenBSD's rule picks among
/// those that match in every respect.
pub fn preference_order(policies: &[Policy], matches: impl Fn(&Policy) -> bool) -> Vec<&Policy> {
    let matching: Vec<&Policy> = policies.iter().filter(|p| matches(p)).collect();
    let of = |kind: PolicyMatch| matching.iter().copied().filter(move |p| p.matching == kind);
    of(PolicyMatch::Quick)
        .chain(of(PolicyMatch::Normal).rev())
        .chain(of(PolicyMatch::Default))
        .collect()
}

/// OpenBSD iked.conf(5) keywords of a policy that do not map to Linux or
/// are not implemented, with why: refused by name, never ignored.
pub fn refused_keyword(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "tap" => {
            "Linux has no enc(4) interfaces to tap IPsec traffic on; capture on the \
             interface (tcpdump -i IFACE) or use XFRM interfaces"
        }
        "rdomain" => {
            "OpenBSD routing domains do not exist on Linux (VRFs are not supported by iked)"
        }
        "tag" => {
            "pf(4) tags do not exist on Linux, and iked sets no XFRM marks; match the \
             traffic by address in nftables"
        }
        "ipcomp" => "IPcomp (RFC 3173) is not implemented",
        "fragmentation" | "nofragmentation" | "mobike" | "nomobike" => {
            "this is a global option: write 'set ...' on its own line"
        }
        _ => return None,
    })
}

/// `WORD` or `{ WORD, WORD ... }` (iked.conf(5) from/to lists), also
/// when a macro holds the braces: each entry with where it was written.
pub(super) fn address_list<'a>(
    w: &mut Words<'a>,
    after: &str,
    at: &'a Location,
) -> Result<Vec<(String, &'a Location)>, ConfigError> {
    let (first, first_at) = w.value(after, at)?;
    if first.contains('{') && first != "{" {
        // A macro's value: `nets = "{ 10.1.0.0/24, 10.2.0.0/24 }"`.
        let inner = first
            .trim()
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'));
        let Some(inner) = inner else {
            return Err(error(
                first_at,
                format!("'{first}': a list is '{{ a, b }}'"),
            ));
        };
        let entries: Vec<(String, &Location)> = inner
            .split([',', ' ', '\t'])
            .filter(|e| !e.is_empty())
            .map(|e| (e.to_string(), first_at))
            .collect();
        return checked_list(entries, first_at);
    }
    if first != "{" {
        return Ok(vec![(first.to_string(), first_at)]);
    }
    let mut entries = Vec::new();
    loop {
        match w.take() {
            Some((TokenKind::Word(close), _)) if close == "}" => break,
            Some((TokenKind::Word(comma), _)) if comma == "," => {}
            Some((TokenKind::Word(entry), entry_at)) if entry != "{" => {
                entries.push((entry.clone(), *entry_at));
            }
            Some((_, l)) => return Err(error(l, format!("'{after} {{': an address expected"))),
            None => return Err(error(first_at, format!("'{after} {{' has no closing '}}'"))),
        }
        if entries.len() > MAX_LIST_ENTRIES {
            return Err(error(
                first_at,
                format!("a list holds at most {MAX_LIST_ENTRIES} entries"),
            ));
        }
    }
    checked_list(entries, first_at)
}

fn checked_list<'a>(
    entries: Vec<(String, &'a Location)>,
    at: &Location,
) -> Result<Vec<(String, &'a Location)>, ConfigError> {
    if entries.is_empty() {
        return Err(error(at, "empty list '{ }'"));
    }
    if entries.len() > MAX_LIST_ENTRIES {
        return Err(error(
            at,
            format!("a list holds at most {MAX_LIST_ENTRIES} entries"),
        ));
    }
    Ok(entries)
}

/// Whether `adding` more flows fit the policy's cap.
pub(super) fn check_flow_count(
    existing: usize,
    adding: usize,
    at: &Location,
) -> Result<(), ConfigError> {
    if existing.saturating_add(adding) > MAX_FLOWS_PER_POLICY {
        return Err(error(
            at,
            format!(
                "more than {MAX_FLOWS_PER_POLICY} flows in one policy (every from/to pair \
                 of the lists counts)"
            ),
        ));
    }
    Ok(())
}

/// Whether `outer` admits every address `inner` does (None: any).
fn covers(outer: Option<super::Prefix>, inner: Option<super::Prefix>) -> bool {
    match (outer, inner) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => o.len <= i.len && o.contains(i.addr),
    }
}

/// Warnings about the configuration's policy order (iked.conf(5): the
/// last match wins): a policy that a later one always outmatches is never
/// chosen for an incoming IKE SA. Conservative: the later policy must
/// admit every address the earlier one does, have no `dstid`, the same
/// kind of authentication and EAP, and the same IKE proposals, so that it
/// accepts whatever the earlier one would. An active policy still
/// initiates, so the warning says so.
pub fn warnings(config: &super::Config) -> Vec<String> {
    let policies = &config.policies;
    let mut out = Vec::new();
    for (i, earlier) in policies.iter().enumerate() {
        if earlier.matching != PolicyMatch::Normal {
            continue;
        }
        let shadow = policies[i + 1..].iter().find(|later| {
            later.matching == PolicyMatch::Normal
                && later.dstid.is_none()
                && covers(later.peer, earlier.peer)
                && covers(later.local, earlier.local)
                && std::mem::discriminant(&later.auth) == std::mem::discriminant(&earlier.auth)
                && later.remote_access.eap == earlier.remote_access.eap
                && later.ike_proposals == earlier.ike_proposals
        });
        if let Some(later) = shadow {
            out.push(format!(
                "policy '{}' is never chosen for an incoming IKE SA: the later policy '{}' \
                 matches every peer it does and the last match wins (move '{}' after it, or \
                 mark it 'quick')",
                earlier.name, later.name, earlier.name
            ));
        }
    }
    out
}
