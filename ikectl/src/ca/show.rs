//! `show ca NAME certificates [HOST]`.

use std::fs;

use openssl::hash::MessageDigest;
use openssl::x509::X509;

use super::authority::{describe_key, dn_text, serial_hex, Ca, IndexEntry};
use super::files;
use super::host::HostId;

fn sans(cert: &X509) -> String {
    let Some(names) = cert.subject_alt_names() else {
        return "none".into();
    };
    let mut out = Vec::new();
    for name in names.iter() {
        if let Some(dns) = name.dnsname() {
            out.push(format!("DNS:{dns}"));
        } else if let Some(email) = name.email() {
            out.push(format!("email:{email}"));
        } else if let Some(ip) = name.ipaddress() {
            let address: Option<std::net::IpAddr> = match ip.len() {
                4 => <[u8; 4]>::try_from(ip).ok().map(Into::into),
                16 => <[u8; 16]>::try_from(ip).ok().map(Into::into),
                _ => None,
            };
            out.push(address.map_or("IP:?".into(), |a| format!("IP:{a}")));
        }
    }
    out.join(", ")
}

/// A certificate in a few lines: subject, serial, status, validity, key,
/// subjectAltName and fingerprint.
fn summary(label: &str, cert: &X509, index: &[IndexEntry]) -> Result<String, String> {
    let serial = serial_hex(cert.serial_number())?;
    let now = openssl::asn1::Asn1Time::from_unix(files::now()).map_err(|e| e.to_string())?;
    let status = match index.iter().find(|e| e.serial == serial) {
        Some(entry) if entry.status == 'R' => format!("revoked {}", entry.revoked_at),
        _ if *cert.not_after() < now => "expired".into(),
        _ if *cert.not_before() > now => "not yet valid".into(),
        Some(_) => "valid".into(),
        None => "valid, not in the index".into(),
    };
    let key = cert
        .public_key()
        .map(|k| describe_key(&k))
        .unwrap_or_else(|_| "unreadable key".into());
    let fingerprint = cert
        .digest(MessageDigest::sha256())
        .map_err(|e| e.to_string())?
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(format!(
        "{label}: serial {serial}, {status}\n  subject {}\n  issuer {}\n  valid {} until {}\n  \
         key {key}, subjectAltName {}\n  SHA-256 {fingerprint}\n",
        dn_text(cert.subject_name()),
        dn_text(cert.issuer_name()),
        cert.not_before(),
        cert.not_after(),
        sans(cert),
    ))
}

pub fn show(ca: &Ca, host: Option<&HostId>) -> Result<String, String> {
    ca.require()?;
    let index = ca.index()?;
    if let Some(host) = host {
        let cert = ca.host_certificate(host)?;
        let text = cert.to_text().map_err(|e| e.to_string())?;
        return Ok(format!(
            "{}{}",
            summary(&host.to_string(), &cert, &index)?,
            String::from_utf8_lossy(&text)
        ));
    }
    let mut hosts = Vec::new();
    for entry in fs::read_dir(&ca.dir).map_err(|e| format!("{}: {e}", ca.dir.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", ca.dir.display()))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(host) = name.strip_suffix(".crt") {
            if host != "ca" && !host.starts_with('.') {
                hosts.push(host.to_string());
            }
        }
    }
    hosts.sort();
    let mut out = summary(&format!("CA {}", ca.name), &ca.certificate()?, &index)?;
    for host in &hosts {
        let path = ca.dir.join(format!("{host}.crt"));
        let cert =
            X509::from_pem(&files::read(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
        out += &summary(host, &cert, &index)?;
    }
    // Revoked certificates whose files were deleted are still in the CRL.
    for entry in index
        .iter()
        .filter(|e| e.status == 'R' && !hosts.contains(&e.host))
    {
        out += &format!(
            "{}: serial {}, revoked {} (certificate deleted)\n",
            entry.host, entry.serial, entry.revoked_at
        );
    }
    out += &format!("{} host certificate(s)", hosts.len());
    Ok(out)
}
