//! Identities against certificates: the peer's ID payload must be named by
//! its certificate (RFC 7296 §3.5, RFC 4945 §3.1), and by the policy's
//! `dstid` when one is set; and our own identity as it goes on the wire.

use std::net::IpAddr;

use iked_common::config::IdentitySpec;
use iked_common::ipc::WireIdentity;
use openssl::x509::{X509Name, X509NameRef, X509Ref};

/// ID types of RFC 7296 §3.5.
pub const ID_IPV4_ADDR: u8 = 1;
pub const ID_FQDN: u8 = 2;
pub const ID_RFC822_ADDR: u8 = 3;
pub const ID_IPV6_ADDR: u8 = 5;
pub const ID_DER_ASN1_DN: u8 = 9;
pub const ID_KEY_ID: u8 = 11;

/// The most relative distinguished names a DN may have, as text or DER.
const MAX_DN_ENTRIES: usize = 32;

/// A DN in the text form iked.conf uses, "C=XX, O=Example, CN=gw" (or the
/// OpenBSD form "/C=XX/O=Example/CN=gw"), as an X509Name: encoded by the
/// configuration's own DN code, so ca and the parser agree on the DER.
pub fn dn_from_text(text: &str) -> Result<X509Name, String> {
    let der = iked_common::config::dn::to_der(text).map_err(|e| format!("DN {text:?}: {e}"))?;
    X509Name::from_der(&der).map_err(|e| format!("DN {text:?}: {e}"))
}

/// Whether two names have the same entries in the same order: the same
/// attribute types and the same values as text (so a PrintableString and
/// a UTF8String of the same characters are equal; RFC 5280 §7.1 compares
/// names after such normalisation, never as raw bytes).
pub fn same_name(a: &X509NameRef, b: &X509NameRef) -> bool {
    let (mut a, mut b) = (a.entries(), b.entries());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                if x.object().nid() != y.object().nid() {
                    return false;
                }
                match (x.data().to_string(), y.data().to_string()) {
                    (Ok(x), Ok(y)) if x == y => {}
                    _ => return false,
                }
            }
            _ => return false,
        }
    }
}

/// The DN of an ID_DER_ASN1_DN payload. Trailing bytes after the DER are
/// refused: the payload is one name.
pub fn dn_from_der(body: &[u8]) -> Result<X509Name, String> {
    let name = X509Name::from_der(body).map_err(|_| "the ID's DN is not valid DER".to_string())?;
    let again = name
        .to_der()
        .map_err(|_| "the ID's DN is not valid DER".to_string())?;
    if again.len() != body.len() {
        return Err("the ID's DN has trailing bytes".into());
    }
    if name.entries().count() > MAX_DN_ENTRIES {
        return Err(format!(
            "the ID's DN has more than {MAX_DN_ENTRIES} components"
        ));
    }
    Ok(name)
}

/// A name as "C=XX, O=Example, CN=gw", for logs and `show certstore`.
pub fn name_text(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let field = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{field}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A configured identity as it goes on the wire (RFC 7296 §3.5); a DN is
/// DER-encoded from its text.
pub fn wire_of(spec: &IdentitySpec) -> Result<WireIdentity, String> {
    Ok(match spec {
        IdentitySpec::Fqdn(name) => WireIdentity {
            id_type: ID_FQDN,
            body: name.as_bytes().to_vec(),
        },
        IdentitySpec::UserFqdn(name) => WireIdentity {
            id_type: ID_RFC822_ADDR,
            body: name.as_bytes().to_vec(),
        },
        IdentitySpec::Address(IpAddr::V4(a)) => WireIdentity {
            id_type: ID_IPV4_ADDR,
            body: a.octets().to_vec(),
        },
        IdentitySpec::Address(IpAddr::V6(a)) => WireIdentity {
            id_type: ID_IPV6_ADDR,
            body: a.octets().to_vec(),
        },
        IdentitySpec::Asn1Dn(text) => WireIdentity {
            id_type: ID_DER_ASN1_DN,
            body: iked_common::config::dn::to_der(text).map_err(|e| format!("DN {text:?}: {e}"))?,
        },
        IdentitySpec::KeyId(key) => WireIdentity {
            id_type: ID_KEY_ID,
            body: key.clone(),
        },
    })
}

/// A wire identity for messages: "fqdn gw.example", "DN C=XX, CN=gw", ...
pub fn describe(id: &WireIdentity) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match id.id_type {
        ID_IPV4_ADDR | ID_IPV6_ADDR => match address_of(id) {
            Some(a) => format!("address {a}"),
            None => format!("a malformed address ID of {} octets", id.body.len()),
        },
        ID_FQDN => format!("fqdn {}", text(&id.body)),
        ID_RFC822_ADDR => format!("ufqdn {}", text(&id.body)),
        ID_DER_ASN1_DN => match dn_from_der(&id.body) {
            Ok(name) => format!("DN {}", name_text(&name)),
            Err(e) => e,
        },
        ID_KEY_ID => "a key ID".into(),
        other => format!("an ID of type {other}"),
    }
}

fn address_of(id: &WireIdentity) -> Option<IpAddr> {
    match id.id_type {
        ID_IPV4_ADDR => <[u8; 4]>::try_from(id.body.as_slice())
            .ok()
            .map(IpAddr::from),
        ID_IPV6_ADDR => <[u8; 16]>::try_from(id.body.as_slice())
            .ok()
            .map(IpAddr::from),
        _ => None,
    }
}

/// Whether two wire identities name the same thing: DNs compared as names,
/// host and mail names without regard to ASCII case (RFC 4343, RFC 5280
/// §7.5), others byte for byte.
pub fn same_identity(a: &WireIdentity, b: &WireIdentity) -> bool {
    if a.id_type != b.id_type {
        return false;
    }
    match a.id_type {
        ID_DER_ASN1_DN => match (dn_from_der(&a.body), dn_from_der(&b.body)) {
            (Ok(x), Ok(y)) => same_name(&x, &y),
            _ => false,
        },
        ID_FQDN | ID_RFC822_ADDR => a.body.eq_ignore_ascii_case(&b.body),
        _ => a.body == b.body,
    }
}

/// Whether the policy's `dstid` names the peer's ID payload.
pub fn check_dstid(dstid: &IdentitySpec, peer: &WireIdentity) -> Result<(), String> {
    let wanted = wire_of(dstid).map_err(|e| format!("the policy's dstid: {e}"))?;
    if same_identity(&wanted, peer) {
        Ok(())
    } else {
        Err(format!(
            "the peer's ID ({}) is not the policy's dstid ({})",
            describe(peer),
            describe(&wanted)
        ))
    }
}

/// Whether `cert` names the peer's ID payload (RFC 4945 §3.1): the subject
/// DN for ID_DER_ASN1_DN, a subjectAltName of the ID's kind for the others.
pub fn check_certificate_names(cert: &X509Ref, peer: &WireIdentity) -> Result<(), String> {
    let sans = cert.subject_alt_names();
    let san_matches = |pick: &dyn Fn(&openssl::x509::GeneralNameRef) -> bool| {
        sans.as_ref().is_some_and(|s| s.iter().any(pick))
    };
    let named = match peer.id_type {
        ID_DER_ASN1_DN => {
            let name = dn_from_der(&peer.body)?;
            same_name(&name, cert.subject_name())
        }
        ID_FQDN => san_matches(&|n| {
            n.dnsname()
                .is_some_and(|d| d.as_bytes().eq_ignore_ascii_case(&peer.body))
        }),
        ID_RFC822_ADDR => san_matches(&|n| {
            n.email()
                .is_some_and(|d| d.as_bytes().eq_ignore_ascii_case(&peer.body))
        }),
        ID_IPV4_ADDR | ID_IPV6_ADDR => {
            if address_of(peer).is_none() {
                return Err(describe(peer));
            }
            san_matches(&|n| n.ipaddress() == Some(peer.body.as_slice()))
        }
        other => {
            return Err(format!(
                "an ID of type {other} cannot be checked against a certificate"
            ))
        }
    };
    if named {
        Ok(())
    } else {
        Err(format!(
            "the peer's ID ({}) is not named by its certificate ({})",
            describe(peer),
            certificate_names(cert)
        ))
    }
}

/// Subject and subjectAltNames, for messages.
pub fn certificate_names(cert: &X509Ref) -> String {
    let mut text = format!("subject {}", name_text(cert.subject_name()));
    let sans = san_texts(cert);
    if !sans.is_empty() {
        text.push_str(", subjectAltName ");
        text.push_str(&sans.join(", "));
    }
    text
}

/// The subjectAltNames as "DNS:gw.example", "email:a@b", "IP:198.18.0.1".
pub fn san_texts(cert: &X509Ref) -> Vec<String> {
    let Some(sans) = cert.subject_alt_names() else {
        return Vec::new();
    };
    sans.iter()
        .filter_map(|n| {
            if let Some(d) = n.dnsname() {
                Some(format!("DNS:{d}"))
            } else if let Some(e) = n.email() {
                Some(format!("email:{e}"))
            } else {
                n.ipaddress().and_then(|ip| match ip.len() {
                    4 => <[u8; 4]>::try_from(ip)
                        .ok()
                        .map(|a| format!("IP:{}", IpAddr::from(a))),
                    16 => <[u8; 16]>::try_from(ip)
                        .ok()
                        .map(|a| format!("IP:{}", IpAddr::from(a))),
                    _ => None,
                })
            }
        })
        .collect()
}

/// The configured identity a raw public key in `pubkeys/` belongs to,
/// matched against the peer's ID payload.
pub fn spec_names(spec: &IdentitySpec, peer: &WireIdentity) -> bool {
    wire_of(spec).is_ok_and(|w| same_identity(&w, peer))
}
