//! Distinguished names as iked.conf writes them (`srcid`, `dstid` of type
//! ID_DER_ASN1_DN, RFC 7296 §3.5), in either of two spellings:
//!
//! - OpenBSD iked.conf(5): a leading slash, `/C=DE/O=Example/CN=gw-a`;
//! - strongSwan and OpenSSL's one-line form: `C=DE, O=Example, CN=gw-a`.
//!
//! Both list the RDNs in the order of the DER encoding (most significant
//! first), as certificates show their subjects; not RFC 4514's reversed
//! order. A backslash takes the next character literally (`\,`, `\/`,
//! `\\`). The canonical text, kept in `IdentitySpec::Asn1Dn`, is the comma
//! form with `,` and `\` escaped; [`to_der`] encodes it with OpenSSL (the
//! attribute names are OpenSSL's: C, ST, L, O, OU, CN, emailAddress, DC,
//! serialNumber, ...). Comparing a DN with a certificate is ca's job: DER
//! encodings of the same name differ (PrintableString or UTF8String), so
//! bytes are no test of equality.

use openssl::x509::X509NameBuilder;

/// Longest DN text accepted (an ID payload holds at most a few hundred
/// octets in practice; a certificate subject is rarely over 200).
pub const MAX_DN_TEXT: usize = 1024;

/// The RDNs of `text`: (attribute, value) pairs in order, or what is wrong.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.len() > MAX_DN_TEXT {
        return Err(format!("longer than {MAX_DN_TEXT} characters"));
    }
    let (body, separator) = match text.strip_prefix('/') {
        Some(rest) => (rest, '/'),
        None => (text, ','),
    };
    if body.trim().is_empty() {
        return Err("no attribute".into());
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                // Kept escaped: the split on '=' below must not see it.
                Some(next) => {
                    current.push('\\');
                    current.push(next);
                }
                None => return Err("ends with a lone backslash".into()),
            },
            c if c == separator => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    let mut rdns = Vec::new();
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            // "/C=DE/" or "C=DE,,O=x": an empty RDN.
            return Err("an empty attribute (two separators in a row, or one at the end)".into());
        }
        let Some((attribute, value)) = split_unescaped(part) else {
            return Err(format!("'{part}' is not ATTRIBUTE=value"));
        };
        let attribute = attribute.trim();
        let value = unescape(value.trim());
        if attribute.is_empty() || value.is_empty() {
            return Err(format!("'{part}' is not ATTRIBUTE=value"));
        }
        if !attribute
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.')
        {
            return Err(format!("'{attribute}' is not an attribute name"));
        }
        rdns.push((attribute.to_string(), value));
    }
    if rdns.is_empty() {
        return Err("no attribute".into());
    }
    // OpenSSL knows the attribute names (and dotted OIDs) and checks the
    // values' sizes (C is two letters).
    der_of(&rdns)?;
    Ok(rdns)
}

/// The canonical text of a DN (comma form), or what is wrong with `text`.
pub fn canonical(text: &str) -> Result<String, String> {
    Ok(render(&parse(text)?))
}

/// The DER encoding of a DN in either spelling (an X.501 Name, as an
/// ID_DER_ASN1_DN payload carries it).
pub fn to_der(text: &str) -> Result<Vec<u8>, String> {
    der_of(&parse(text)?)
}

fn der_of(rdns: &[(String, String)]) -> Result<Vec<u8>, String> {
    let mut builder = X509NameBuilder::new().map_err(|e| format!("openssl: {e}"))?;
    for (attribute, value) in rdns {
        builder
            .append_entry_by_text(attribute, value)
            .map_err(|_| format!("'{attribute}={value}': unknown attribute or invalid value"))?;
    }
    builder
        .build()
        .to_der()
        .map_err(|e| format!("cannot encode: {e}"))
}

fn render(rdns: &[(String, String)]) -> String {
    rdns.iter()
        .map(|(a, v)| {
            let mut value = String::new();
            for c in v.chars() {
                if matches!(c, ',' | '\\') {
                    value.push('\\');
                }
                value.push(c);
            }
            format!("{a}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits at the first '=' that is not escaped.
fn split_unescaped(part: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in part.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '=' if !escaped => return Some((&part[..i], &part[i + 1..])),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_give_one_canonical_text_and_one_encoding() {
        let comma = canonical("C=CH, O=strongSwan, CN=moon.strongswan.org").unwrap();
        let slash = canonical("/C=CH/O=strongSwan/CN=moon.strongswan.org").unwrap();
        assert_eq!(comma, "C=CH, O=strongSwan, CN=moon.strongswan.org");
        assert_eq!(comma, slash);
        assert_eq!(to_der(&comma).unwrap(), to_der(&slash).unwrap());
        // The canonical text parses back to itself.
        assert_eq!(canonical(&comma).unwrap(), comma);
    }

    #[test]
    fn the_encoding_is_the_name_openssl_reads_back_in_order() {
        let der = to_der("C=DE, O=Example GmbH, OU=VPN, CN=gw-a").unwrap();
        let name = openssl::x509::X509Name::from_der(&der).unwrap();
        let entries: Vec<(String, String)> = name
            .entries()
            .map(|e| {
                (
                    e.object().nid().short_name().unwrap().to_string(),
                    e.data().to_string().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("C".to_string(), "DE".to_string()),
                ("O".to_string(), "Example GmbH".to_string()),
                ("OU".to_string(), "VPN".to_string()),
                ("CN".to_string(), "gw-a".to_string()),
            ]
        );
    }

    #[test]
    fn escapes_keep_separators_inside_values() {
        let text = canonical(r"O=Example\, Inc., CN=a\/b").unwrap();
        assert_eq!(text, r"O=Example\, Inc., CN=a/b");
        let rdns = parse(&text).unwrap();
        assert_eq!(rdns[0].1, "Example, Inc.");
        assert_eq!(
            parse(r"/O=x\/y/CN=z").unwrap()[0],
            ("O".into(), "x/y".into())
        );
        // An email address in a DN (OpenBSD's example).
        assert!(to_der("/C=DE/CN=10.0.0.1/emailAddress=reyk@example.com").is_ok());
    }

    #[test]
    fn what_is_not_a_dn_is_refused_with_the_reason() {
        for (text, why) in [
            ("", "no attribute"),
            ("/", "no attribute"),
            ("C=DE,, CN=x", "empty attribute"),
            ("C=DE, CN=x,", "empty attribute"),
            ("C=DE, CN", "'CN' is not ATTRIBUTE=value"),
            ("C=, CN=x", "not ATTRIBUTE=value"),
            ("=DE", "not ATTRIBUTE=value"),
            ("Bogus=1, CN=x", "unknown attribute"),
            ("C=Germany", "invalid value"),
            ("C D=x", "not an attribute name"),
            ("CN=x\\", "lone backslash"),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.contains(why), "{text:?}: {e}");
        }
        assert!(parse(&format!("CN={}", "x".repeat(MAX_DN_TEXT))).is_err());
    }
}
