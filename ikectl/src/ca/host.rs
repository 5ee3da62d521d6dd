//! What a HOST argument names: an FQDN, an IP address or user@fqdn, the
//! three IKE identities (RFC 7296 section 3.5: ID_FQDN, ID_IPV4_ADDR /
//! ID_IPV6_ADDR, ID_RFC822_ADDR) a certificate's subjectAltName can carry.

use std::fmt;
use std::net::IpAddr;

/// The longest DNS name (RFC 1035 section 2.3.4).
const MAX_NAME: usize = 253;
/// The longest DNS label (RFC 1035 section 2.3.4).
const MAX_LABEL: usize = 63;
/// The longest local part of an address (RFC 5321 section 4.5.3.1.1).
const MAX_LOCAL_PART: usize = 64;

/// A host identity, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostId {
    /// A DNS name, lower-cased: a subjectAltName dNSName.
    Fqdn(String),
    /// An address: a subjectAltName iPAddress.
    Ip(IpAddr),
    /// user@fqdn: a subjectAltName rfc822Name.
    UserFqdn(String),
}

impl HostId {
    /// Parses `text` as an IP address, user@fqdn or FQDN, in that order
    /// (an address is never taken for a name).
    pub fn parse(text: &str) -> Result<HostId, String> {
        if text.is_empty() {
            return Err("the host is empty: give an FQDN, an IP address or user@fqdn".into());
        }
        if let Ok(address) = text.parse::<IpAddr>() {
            return Ok(HostId::Ip(address));
        }
        if let Some((user, domain)) = text.rsplit_once('@') {
            check_local_part(user)
                .map_err(|e| format!("'{text}' is not a valid user@fqdn: {e}"))?;
            check_dns_name(domain)
                .map_err(|e| format!("'{text}' is not a valid user@fqdn: {e}"))?;
            return Ok(HostId::UserFqdn(format!(
                "{user}@{}",
                domain.to_ascii_lowercase()
            )));
        }
        check_dns_name(text).map_err(|e| {
            format!("'{text}' is neither an IP address nor a valid FQDN or user@fqdn: {e}")
        })?;
        Ok(HostId::Fqdn(text.to_ascii_lowercase()))
    }

    /// The directory under `pubkeys/` iked looks for this kind of
    /// identity in.
    pub fn pubkeys_dir(&self) -> &'static str {
        match self {
            HostId::Fqdn(_) => "fqdn",
            HostId::Ip(IpAddr::V4(_)) => "ipv4",
            HostId::Ip(IpAddr::V6(_)) => "ipv6",
            HostId::UserFqdn(_) => "ufqdn",
        }
    }

    /// How the subjectAltName shows it.
    pub fn san_text(&self) -> String {
        match self {
            HostId::Fqdn(name) => format!("DNS:{name}"),
            HostId::Ip(address) => format!("IP:{address}"),
            HostId::UserFqdn(address) => format!("email:{address}"),
        }
    }
}

/// The canonical form: the name of the files of this host.
impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostId::Fqdn(name) | HostId::UserFqdn(name) => f.write_str(name),
            HostId::Ip(address) => write!(f, "{address}"),
        }
    }
}

fn check_dns_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("the domain is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("the name is longer than {MAX_NAME} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row)".into());
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "the label '{label}' is longer than {MAX_LABEL} characters"
            ));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("the label '{label}' has the character {bad:?}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label '{label}' starts or ends with '-'"));
        }
    }
    Ok(())
}

fn check_local_part(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the user part is empty".into());
    }
    if user.len() > MAX_LOCAL_PART {
        return Err(format!(
            "the user part is longer than {MAX_LOCAL_PART} characters"
        ));
    }
    // The dot-atom of RFC 5322 section 3.2.3, without quoted strings: what
    // fits an rfc822Name and a file name alike.
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    if let Some(bad) = user
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || SPECIALS.contains(*c)) || *c == '/')
    {
        return Err(format!("the user part has the character {bad:?}"));
    }
    if user.starts_with('.') || user.ends_with('.') || user.contains("..") {
        return Err("the user part has a misplaced '.'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_user_addresses_are_told_apart() {
        assert_eq!(
            HostId::parse("VPN.Example.org").unwrap(),
            HostId::Fqdn("vpn.example.org".into())
        );
        assert_eq!(
            HostId::parse("198.18.0.1").unwrap(),
            HostId::Ip("198.18.0.1".parse().unwrap())
        );
        let v6 = HostId::parse("2001:DB8::1").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::1");
        assert_eq!(v6.pubkeys_dir(), "ipv6");
        let user = HostId::parse("alice@Example.org").unwrap();
        assert_eq!(user, HostId::UserFqdn("alice@example.org".into()));
        assert_eq!(user.san_text(), "email:alice@example.org");
        assert_eq!(user.pubkeys_dir(), "ufqdn");
        assert_eq!(HostId::parse("gw").unwrap().pubkeys_dir(), "fqdn");
    }

    #[test]
    fn bad_hosts_are_refused_with_the_reason() {
        for (bad, reason) in [
            ("", "empty"),
            ("etc/passwd", "character '/'"),
            ("../etc/passwd", "empty label"),
            ("a..b", "empty label"),
            ("-a.example", "starts or ends"),
            ("a b", "character ' '"),
            ("@example.org", "user part is empty"),
            ("a/b@example.org", "character '/'"),
            ("alice@", "domain is empty"),
            ("alice@bad..org", "empty label"),
        ] {
            let error = HostId::parse(bad).unwrap_err();
            assert!(error.contains(reason), "{bad:?}: {error}");
        }
        let long = format!("{}.org", "a".repeat(64));
        assert!(HostId::parse(&long).unwrap_err().contains("longer than 63"));
    }
}
