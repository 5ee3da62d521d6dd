//! Identities (RFC 7296 §3.5) and the policies they select.

use std::net::IpAddr;

use iked_common::config::{IdentitySpec, Policy};
use iked_common::wire::Identity;

use crate::engine::Engine;

/// An ID payload as ca is given it: its type and Identification Data
/// (without the type and reserved octets that `id_body` signs).
pub(super) fn wire_identity(id: &Identity) -> iked_common::ipc::WireIdentity {
    iked_common::ipc::WireIdentity {
        id_type: id.id_type().value(),
        body: id.data(),
    }
}

pub(super) fn id_body(id: &Identity) -> Vec<u8> {
    let mut out = Vec::new();
    id.encode_body(&mut out);
    out
}

/// Whether the configured `dstid` may name the peer's ID payload `id`:
/// equal, or both DNs (compared as names by ca, never as bytes here: the
/// same name has several DER encodings).
pub(super) fn dstid_may_name(dstid: &IdentitySpec, id: &Identity) -> bool {
    match (dstid, id) {
        (IdentitySpec::Asn1Dn(_), Identity::DerAsn1Dn(_)) => true,
        _ => &identity_of(dstid) == id,
    }
}

/// The wire form of a configured identity (RFC 7296 §3.5).
pub(super) fn identity_of(spec: &IdentitySpec) -> Identity {
    match spec {
        IdentitySpec::Fqdn(name) => Identity::Fqdn(name.clone()),
        IdentitySpec::UserFqdn(name) => Identity::Rfc822(name.clone()),
        IdentitySpec::Address(addr) => address_identity(*addr),
        // The parser checked the text; DER through OpenSSL (config::dn).
        IdentitySpec::Asn1Dn(dn) => match iked_common::config::dn::to_der(dn) {
            Ok(der) => Identity::DerAsn1Dn(der),
            Err(why) => {
                log::warn!("DN identity {dn:?} cannot be encoded: {why}");
                Identity::DerAsn1Dn(dn.as_bytes().to_vec())
            }
        },
        IdentitySpec::KeyId(key) => Identity::KeyId(key.clone()),
    }
}

pub(super) fn address_identity(addr: IpAddr) -> Identity {
    match addr {
        IpAddr::V4(a) => Identity::Ipv4(a),
        IpAddr::V6(a) => Identity::Ipv6(a),
    }
}

pub(super) fn identity_text(id: &Identity) -> String {
    match id {
        Identity::Ipv4(a) => a.to_string(),
        Identity::Ipv6(a) => a.to_string(),
        Identity::Fqdn(s) | Identity::Rfc822(s) => s.clone(),
        Identity::KeyId(k) => format!(
            "keyid:{}",
            k.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        Identity::Null => "(null)".into(),
        // For display only (ca compares names): "C=XX, O=..., CN=...".
        Identity::DerAsn1Dn(der) => crate::engine::dn_text::dn_text(der)
            .unwrap_or_else(|| format!("a DN of {} octets that is no plain Name", der.len())),
        other => format!("{:?}", other.id_type()),
    }
}

impl Engine {
    /// The policies for an incoming IKE SA between these addresses, in
    /// the order iked.conf(5) prefers them (`quick` first, then the last
    /// match, `default` last, never `skip`): callers take the first that
    /// also passes their own checks.
    pub(super) fn policy_candidates(&self, local: IpAddr, peer: IpAddr) -> Vec<String> {
        iked_common::config::preference_order(&self.policies, |p| {
            p.peer.is_none_or(|prefix| prefix.contains(peer))
                && p.local
                    .is_none_or(|prefix| prefix.contains(local) || local.is_unspecified())
        })
        .into_iter()
        .map(|p| p.name.clone())
        .collect()
    }

    pub(super) fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// Identity payload for our side.
    pub(super) fn local_identity(policy: Option<&Policy>, local: IpAddr) -> Identity {
        match policy.and_then(|p| p.srcid.as_ref()) {
            Some(spec) => identity_of(spec),
            None => address_identity(local),
        }
    }
}
