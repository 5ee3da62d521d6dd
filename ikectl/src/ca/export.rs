//! `ca NAME certificate HOST export`: a gzipped tarball HOST.tgz in the
//! current directory, laid out as an iked certdir so that
//! `tar -xzpf HOST.tgz -C /etc/iked` installs it on the peer (as OpenBSD's
//! ikectl does):
//!
//! - `ca/NAME.crt`, `crls/NAME.crl`: the CA certificate and its CRL;
//! - `certs/HOST.crt`, `private/local.key` (mode 600), `local.pub`;
//! - `export/peer.txt` with `peer PEER`;
//! - `export/HOST.pfx` with `password PASS`: certificate, key and CA
//!   certificate as PKCS#12, for clients that import one file.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use openssl::pkcs12::Pkcs12;
use openssl::stack::Stack;

use super::authority::Ca;
use super::files::{self, PRIVATE_FILE};
use super::host::HostId;
use super::options::ExportOptions;

/// The archive's name: HOST.tgz, colons (IPv6) made '_' as OpenBSD does
/// for file systems that refuse them.
pub fn archive_name(host: &HostId) -> String {
    format!("{}.tgz", host.to_string().replace(':', "_"))
}

struct Archive {
    builder: tar::Builder<GzEncoder<Vec<u8>>>,
    mtime: u64,
}

impl Archive {
    fn new() -> Archive {
        Archive {
            builder: tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default())),
            mtime: files::now().max(0) as u64,
        }
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> Result<tar::Header, String> {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        // Root's, as iked wants its keys, when unpacked by root with -p.
        header.set_uid(0);
        header.set_gid(0);
        header
            .set_username("root")
            .and_then(|()| header.set_groupname("root"))
            .map_err(|e| format!("archive header: {e}"))?;
        header.set_mtime(self.mtime);
        Ok(header)
    }

    fn dir(&mut self, path: &str, mode: u32) -> Result<(), String> {
        let mut header = self.header(tar::EntryType::Directory, mode, 0)?;
        self.builder
            .append_data(&mut header, path, std::io::empty())
            .map_err(|e| format!("archive {path}: {e}"))
    }

    fn file(&mut self, path: &str, bytes: &[u8], mode: u32) -> Result<(), String> {
        let mut header = self.header(tar::EntryType::Regular, mode, bytes.len() as u64)?;
        self.builder
            .append_data(&mut header, path, bytes)
            .map_err(|e| format!("archive {path}: {e}"))
    }

    fn finish(self) -> Result<Vec<u8>, String> {
        let gz = self
            .builder
            .into_inner()
            .map_err(|e| format!("archive: {e}"))?;
        let mut gz = gz;
        gz.flush().map_err(|e| format!("archive: {e}"))?;
        gz.finish().map_err(|e| format!("archive: {e}"))
    }
}

pub fn export(
    ca: &Ca,
    host: &HostId,
    options: &ExportOptions,
    out_dir: &Path,
) -> Result<String, String> {
    ca.require()?;
    let (cert, key) = ca.host_pair(host)?;
    let out: PathBuf = out_dir.join(archive_name(host));
    if out.exists() {
        return Err(format!(
            "{} exists already: move it away first",
            out.display()
        ));
    }
    let ssl = |what: &'static str| move |e: openssl::error::ErrorStack| format!("{what}: {e}");
    let ca_pem = files::read(&ca.cert_path())?;
    let mut archive = Archive::new();
    let mut listed = Vec::new();
    for (dir, mode) in [
        ("ca/", 0o755),
        ("certs/", 0o755),
        ("crls/", 0o755),
        ("export/", 0o755),
        ("private/", 0o700),
    ] {
        archive.dir(dir, mode)?;
    }
    let mut add = |archive: &mut Archive, path: String, bytes: &[u8], mode: u32| {
        listed.push(path.clone());
        archive.file(&path, bytes, mode)
    };
    add(&mut archive, format!("ca/{}.crt", ca.name), &ca_pem, 0o644)?;
    if ca.crl_path().exists() {
        add(
            &mut archive,
            format!("crls/{}.crl", ca.name),
            &files::read(&ca.crl_path())?,
            0o644,
        )?;
    }
    add(
        &mut archive,
        format!("certs/{host}.crt"),
        &cert.to_pem().map_err(ssl("PEM"))?,
        0o644,
    )?;
    add(
        &mut archive,
        "private/local.key".into(),
        &key.private_key_to_pem_pkcs8().map_err(ssl("key PEM"))?,
        0o600,
    )?;
    add(
        &mut archive,
        "local.pub".into(),
        &key.public_key_to_pem().map_err(ssl("public key PEM"))?,
        0o644,
    )?;
    if let Some(peer) = &options.peer {
        add(
            &mut archive,
            "export/peer.txt".into(),
            format!("{peer}\n").as_bytes(),
            0o644,
        )?;
    }
    if let Some(password) = &options.password {
        let mut chain = Stack::new().map_err(ssl("stack"))?;
        chain.push(ca.certificate()?).map_err(ssl("stack"))?;
        let pkcs12 = Pkcs12::builder()
            .name(&host.to_string())
            .pkey(&key)
            .cert(&cert)
            .ca(chain)
            .build2(password)
            .map_err(ssl("PKCS#12"))?;
        add(
            &mut archive,
            format!("export/{}.pfx", host.to_string().replace(':', "_")),
            &pkcs12.to_der().map_err(ssl("PKCS#12"))?,
            0o600,
        )?;
    }
    let bytes = archive.finish()?;
    // It holds a private key: ours alone.
    files::write_new(&out, &bytes, PRIVATE_FILE)?;
    Ok(format!(
        "exported '{host}' into {} ({}): unpack it on the peer with 'tar -xzpf {} -C /etc/iked'",
        out.display(),
        listed.join(", "),
        archive_name(host)
    ))
}
