//! `ikectl show certstore` as text: what the ca process has in force.

use iked_common::ipc::{CertStoreInfo, CertificateInfo};

fn certificate(out: &mut String, c: &CertificateInfo) {
    out.push_str(&format!("  {}\n", c.subject));
    out.push_str(&format!("    issuer {}\n", c.issuer));
    if !c.sans.is_empty() {
        out.push_str(&format!("    subjectAltName {}\n", c.sans.join(", ")));
    }
    out.push_str(&format!(
        "    serial {}, {}, valid {} to {}\n",
        c.serial, c.key, c.not_before, c.not_after
    ));
    out.push_str(&format!("    file {}\n", c.file));
}

pub fn render(info: &CertStoreInfo) -> String {
    let mut out = String::new();
    let dir = if info.dir.is_empty() {
        "none (no policy uses public keys)"
    } else {
        &info.dir
    };
    out.push_str(&format!(
        "certificate store: {dir} (configuration {})\n",
        info.generation
    ));
    if let Some(refusal) = &info.refusal {
        out.push_str(&format!("last store refused: {refusal}\n"));
    }
    out.push_str(&format!("trusted CAs: {}\n", info.cas.len()));
    for c in &info.cas {
        certificate(&mut out, c);
    }
    match (&info.local_key, info.local_chain.first()) {
        (None, _) => out.push_str("our key: none\n"),
        (Some(key), None) => out.push_str(&format!("our key: {key}, no certificate (raw key)\n")),
        (Some(key), Some(_)) => {
            out.push_str(&format!("our key: {key}; our certificate and chain:\n"));
            for c in &info.local_chain {
                certificate(&mut out, c);
            }
        }
    }
    if !info.other_certs.is_empty() {
        out.push_str(&format!("other certificates: {}\n", info.other_certs.len()));
        for c in &info.other_certs {
            certificate(&mut out, c);
        }
    }
    out.push_str(&format!("CRLs: {}\n", info.crls.len()));
    for crl in &info.crls {
        out.push_str(&format!(
            "  {}: {} revoked, updated {}, next update {}\n    file {}\n",
            crl.issuer,
            crl.revoked,
            crl.last_update,
            crl.next_update.as_deref().unwrap_or("none"),
            crl.file
        ));
    }
    out.push_str(&format!("raw public keys: {}\n", info.raw_keys.len()));
    for (identity, key, file) in &info.raw_keys {
        out.push_str(&format!("  {identity}: {key} ({file})\n"));
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use iked_common::ipc::CrlInfo;

    #[test]
    fn a_store_renders_every_part() {
        let cert = CertificateInfo {
            file: "/etc/iked/ca/root.crt".into(),
            subject: "C=XX, O=iked test, CN=root".into(),
            issuer: "C=XX, O=iked test, CN=root".into(),
            sans: vec!["DNS:gw.example".into()],
            serial: "01".into(),
            not_before: "Jan  1 00:00:00 2026 GMT".into(),
            not_after: "Jan  1 00:00:00 2036 GMT".into(),
            key: "ECDSA P-256".into(),
        };
        let text = render(&CertStoreInfo {
            dir: "/etc/iked".into(),
            generation: 3,
            refusal: Some("/etc/iked/ca/x.crt: not a PEM certificate".into()),
            cas: vec![cert.clone()],
            local_key: Some("ECDSA P-256".into()),
            local_chain: vec![cert],
            other_certs: Vec::new(),
            crls: vec![CrlInfo {
                file: "/etc/iked/crls/root.crl".into(),
                issuer: "CN=root".into(),
                last_update: "then".into(),
                next_update: None,
                revoked: 2,
            }],
            raw_keys: vec![(
                "b.example".into(),
                "Ed25519".into(),
                "/etc/iked/pubkeys/fqdn/b.example".into(),
            )],
        });
        for expected in [
            "certificate store: /etc/iked (configuration 3)",
            "last store refused: /etc/iked/ca/x.crt",
            "trusted CAs: 1",
            "subjectAltName DNS:gw.example",
            "our key: ECDSA P-256; our certificate and chain:",
            "CN=root: 2 revoked, updated then, next update none",
            "b.example: Ed25519 (/etc/iked/pubkeys/fqdn/b.example)",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
    }
}
