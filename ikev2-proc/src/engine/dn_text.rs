//! An ID_DER_ASN1_DN (a DER X.501 Name, RFC 5280 §4.1.2.4) as text for
//! logs and `show sa`: "C=XX, O=Example, CN=gw-a", in the order of the
//! encoding, as certificates show subjects and iked.conf writes DNs.
//!
//! Only for display, and decoded here in safe Rust rather than by OpenSSL:
//! certificates and names are checked by ca alone; this walker reads the
//! three nesting levels of a Name and nothing else, with caps, and gives
//! up (None) on anything irregular.

/// Attributes shown; a Name with more is not rendered.
const MAX_ATTRIBUTES: usize = 32;
/// Characters of the text; a longer one is cut with "...".
const MAX_TEXT: usize = 256;

/// Attribute types by OID (RFC 4519, RFC 2985), as OpenSSL names them.
const NAMES: &[(&[u64], &str)] = &[
    (&[2, 5, 4, 3], "CN"),
    (&[2, 5, 4, 4], "SN"),
    (&[2, 5, 4, 5], "serialNumber"),
    (&[2, 5, 4, 6], "C"),
    (&[2, 5, 4, 7], "L"),
    (&[2, 5, 4, 8], "ST"),
    (&[2, 5, 4, 9], "street"),
    (&[2, 5, 4, 10], "O"),
    (&[2, 5, 4, 11], "OU"),
    (&[2, 5, 4, 12], "title"),
    (&[2, 5, 4, 42], "GN"),
    (&[1, 2, 840, 113_549, 1, 9, 1], "emailAddress"),
    (&[0, 9, 2342, 19_200_300, 100, 1, 1], "UID"),
    (&[0, 9, 2342, 19_200_300, 100, 1, 25], "DC"),
];

/// The Name in `der` as text, or None when it is not a plain DER Name.
pub(super) fn dn_text(der: &[u8]) -> Option<String> {
    let (tag, rdns, rest) = tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    let mut input = rdns;
    while !input.is_empty() {
        let (tag, set, rest) = tlv(input)?;
        if tag != 0x31 {
            return None;
        }
        input = rest;
        let mut values = Vec::new();
        let mut set = set;
        while !set.is_empty() {
            let (tag, attribute, rest) = tlv(set)?;
            if tag != 0x30 || parts.len() + values.len() >= MAX_ATTRIBUTES {
                return None;
            }
            set = rest;
            values.push(attribute_text(attribute)?);
        }
        if values.is_empty() {
            return None;
        }
        parts.push(values.join(" + "));
    }
    if parts.is_empty() {
        return None;
    }
    let mut text = parts.join(", ");
    if text.chars().count() > MAX_TEXT {
        text = text.chars().take(MAX_TEXT).collect::<String>() + "...";
    }
    Some(text)
}

/// One AttributeTypeAndValue: "CN=gw-a".
fn attribute_text(attribute: &[u8]) -> Option<String> {
    let (tag, oid, rest) = tlv(attribute)?;
    if tag != 0x06 {
        return None;
    }
    let (value_tag, value, rest) = tlv(rest)?;
    if !rest.is_empty() {
        return None;
    }
    let arcs = oid_arcs(oid)?;
    let name = NAMES
        .iter()
        .find(|(known, _)| *known == arcs.as_slice())
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| {
            arcs.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(".")
        });
    // UTF8String, PrintableString, IA5String, T61String (ASCII only).
    let text = match value_tag {
        0x0c | 0x13 | 0x16 | 0x14 => std::str::from_utf8(value)
            .ok()
            .filter(|s| value_tag == 0x0c || s.is_ascii())?,
        _ => return Some(format!("{name}=#{}", hex(value))),
    };
    let mut out = format!("{name}=");
    for c in text.chars() {
        match c {
            ',' | '\\' | '+' => {
                out.push('\\');
                out.push(c);
            }
            // A log line stays one line.
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    Some(out)
}

/// The arcs of an OBJECT IDENTIFIER's content (X.690 §8.19).
fn oid_arcs(content: &[u8]) -> Option<Vec<u64>> {
    if content.is_empty() || content.len() > 32 {
        return None;
    }
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for (i, byte) in content.iter().enumerate() {
        value = value.checked_mul(128)? | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        } else if i + 1 == content.len() {
            return None;
        }
    }
    Some(arcs)
}

/// One DER TLV with a one-octet tag: (tag, content, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => (usize::from(*rest.first()?), rest.get(1..)?),
        0x82 => {
            let bytes = rest.get(..2)?;
            (
                usize::from(bytes[0]) << 8 | usize::from(bytes[1]),
                rest.get(2..)?,
            )
        }
        // Longer than 64 KiB, or indefinite: not an ID payload's Name.
        _ => return None,
    };
    let content = rest.get(..len)?;
    Some((tag, content, rest.get(len..)?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(32).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(text: &str) -> Vec<u8> {
        iked_common::config::dn::to_der(text).unwrap()
    }

    #[test]
    fn names_read_back_as_iked_conf_writes_them() {
        for text in [
            "C=XX, O=iked test, CN=a.ike.test",
            "C=DE, ST=Berlin, L=Berlin, O=Example GmbH, OU=VPN, CN=gw-a, emailAddress=ops@example.com",
            "DC=net, DC=example, CN=gw",
        ] {
            assert_eq!(dn_text(&der(text)).as_deref(), Some(text));
        }
        assert_eq!(
            dn_text(&der(r"O=Example\, Inc., CN=x")).as_deref(),
            Some(r"O=Example\, Inc., CN=x")
        );
    }

    #[test]
    fn other_string_types_and_unknown_attributes() {
        use openssl::asn1::Asn1Type;
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text_with_type("CN", "gw-b", Asn1Type::PRINTABLESTRING)
            .unwrap();
        name.append_entry_by_text("1.2.3.4", "x").unwrap();
        let der = name.build().to_der().unwrap();
        assert_eq!(dn_text(&der).as_deref(), Some("CN=gw-b, 1.2.3.4=x"));
        // O as a BMPString (UCS-2 "é"), by hand: shown as hex.
        let bmp = [
            0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x1e, 0x02, 0x00,
            0xe9,
        ];
        assert_eq!(dn_text(&bmp).as_deref(), Some("O=#00e9"));
    }

    #[test]
    fn anything_else_is_none_and_never_a_panic() {
        let good = der("C=XX, O=iked test, CN=a.ike.test");
        assert!(dn_text(&[]).is_none());
        assert!(dn_text(&[0x30, 0x00]).is_none());
        assert!(dn_text(b"CN=not der").is_none());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(dn_text(&trailing).is_none());
        // Every truncation, and every octet set to every value.
        for len in 0..good.len() {
            assert!(dn_text(&good[..len]).is_none(), "{len}");
        }
        for at in 0..good.len() {
            for value in 0..=255u8 {
                let mut bad = good.clone();
                bad[at] = value;
                if let Some(text) = dn_text(&bad) {
                    assert!(text.chars().count() <= MAX_TEXT + 3);
                    assert!(!text.contains('\n'));
                }
            }
        }
        // Random input.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut bytes = vec![0x30u8];
            for _ in 0..(x % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(x as u8);
            }
            let _ = dn_text(&bytes);
        }
    }

    #[test]
    fn long_names_are_cut_and_too_many_attributes_refused() {
        // Attribute values are at most 64 characters (RFC 5280 upper bounds).
        let long = vec![format!("OU={}", "x".repeat(60)); 6].join(", ");
        let text = dn_text(&der(&long)).unwrap();
        assert!(text.ends_with("...") && text.chars().count() == MAX_TEXT + 3);
        let many = vec!["O=x"; MAX_ATTRIBUTES + 1].join(", ");
        assert!(dn_text(&der(&many)).is_none());
    }
}
