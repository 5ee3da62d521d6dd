//! A gateway's certificates and private key written where iked and
//! strongSwan read them: iked's certdir (OpenBSD's layout: `ca/`, `certs/`,
//! `crls/`, `private/local.key`, `pubkeys/`) and swanctl's directory
//! (`x509ca/`, `x509/`, `private/`, `x509crl/`).
//!
//! This works on PEM bytes only: the certificates themselves are made by
//! `iked_common::test_pki` in the test targets (a dev-dependency feature,
//! so that it never reaches the daemon's build through this library), or
//! by openssl(1) for strongSwan's own PKI (`gen-pki.sh`).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What one gateway holds.
#[derive(Debug, Clone, Default)]
pub struct GatewayPki {
    /// The CA certificates it trusts (PEM): the roots of its peers' chains.
    pub trusted: Vec<Vec<u8>>,
    /// Its own chain (PEM), end entity first, then the intermediates up to
    /// (not including) the root.
    pub chain: Vec<Vec<u8>>,
    /// Its private key (PEM, PKCS#8 or the key type's own format).
    pub key: Vec<u8>,
    /// Revocation lists (PEM or DER).
    pub crls: Vec<Vec<u8>>,
    /// Raw public keys (SubjectPublicKeyInfo PEM) by FQDN identity: our
    /// own and our peers', for authentication without certificates.
    pub raw_keys: Vec<(String, Vec<u8>)>,
}

/// The kinds of identity under iked's `pubkeys/` (OpenBSD's iked(8)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubkeyKind {
    Ipv4,
    Ipv6,
    Fqdn,
    Ufqdn,
}

impl PubkeyKind {
    fn dir(self) -> &'static str {
        match self {
            PubkeyKind::Ipv4 => "ipv4",
            PubkeyKind::Ipv6 => "ipv6",
            PubkeyKind::Fqdn => "fqdn",
            PubkeyKind::Ufqdn => "ufqdn",
        }
    }
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    // An existing directory keeps its mode through mkdir(2): set it.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Writes `bytes` to `path` with `mode`, owned by the caller (root in the
/// daemon tests).
fn write_file(path: &Path, bytes: &[u8], mode: u32) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
    file.write_all(bytes)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Writes `pki` as iked's certdir at `dir` (created): `ca/ca-N.crt` (the
/// trusted roots), `certs/LOCAL_ID.crt` (our certificate, named after our
/// identity as OpenBSD's iked names it) and `certs/intermediate-N.crt`,
/// `crls/crl-N.pem`, `private/local.key` (0600 in a 0700 directory) and an
/// empty `pubkeys/{ipv4,ipv6,fqdn,ufqdn}/`. Returns `dir`.
pub fn write_iked_certdir(dir: &Path, pki: &GatewayPki, local_id: &str) -> PathBuf {
    mkdir(dir, 0o755);
    for sub in ["ca", "certs", "crls"] {
        mkdir(&dir.join(sub), 0o755);
    }
    for kind in [
        PubkeyKind::Ipv4,
        PubkeyKind::Ipv6,
        PubkeyKind::Fqdn,
        PubkeyKind::Ufqdn,
    ] {
        mkdir(&dir.join("pubkeys").join(kind.dir()), 0o755);
    }
    mkdir(&dir.join("private"), 0o700);
    for (i, pem) in pki.trusted.iter().enumerate() {
        write_file(&dir.join(format!("ca/ca-{i}.crt")), pem, 0o644);
    }
    for (i, pem) in pki.chain.iter().enumerate() {
        let name = if i == 0 {
            format!("certs/{local_id}.crt")
        } else {
            format!("certs/intermediate-{i}.crt")
        };
        write_file(&dir.join(name), pem, 0o644);
    }
    for (i, crl) in pki.crls.iter().enumerate() {
        write_file(&dir.join(format!("crls/crl-{i}.pem")), crl, 0o644);
    }
    if !pki.key.is_empty() {
        write_file(&dir.join("private/local.key"), &pki.key, 0o600);
    }
    for (id, pem) in &pki.raw_keys {
        if id != local_id {
            write_iked_pubkey(dir, PubkeyKind::Fqdn, id, pem);
        }
    }
    dir.to_path_buf()
}

/// Adds a peer's raw public key (SubjectPublicKeyInfo PEM) to iked's
/// certdir as `pubkeys/KIND/ID`.
pub fn write_iked_pubkey(dir: &Path, kind: PubkeyKind, id: &str, pem: &[u8]) {
    let sub = dir.join("pubkeys").join(kind.dir());
    mkdir(&sub, 0o755);
    write_file(&sub.join(id), pem, 0o644);
}

/// The name swanctl.conf's `certs =` gives our certificate under `x509/`.
pub fn swanctl_cert_name(local_id: &str) -> String {
    format!("{local_id}.crt")
}

/// The name of trusted root `i` under swanctl's `x509ca/`.
pub fn swanctl_ca_name(i: usize) -> String {
    format!("ca-{i}.crt")
}

/// The name swanctl.conf's `pubkeys =` gives identity `id`'s raw key
/// under `pubkey/`.
pub fn swanctl_pubkey_name(id: &str) -> String {
    format!("{id}.pub")
}

/// Writes `pki` under a swanctl directory (`SWANCTL_DIR`): the trusted
/// roots and our intermediates in `x509ca/` (strongSwan sends the
/// intermediates of its own chain from there), our certificate in
/// `x509/LOCAL_ID.crt`, our key in `private/` (swanctl loads any key type
/// from there, PKCS#8 included), CRLs in `x509crl/`.
pub fn write_swanctl_credentials(swanctl: &Path, pki: &GatewayPki, local_id: &str) {
    for sub in ["x509ca", "x509", "x509crl"] {
        mkdir(&swanctl.join(sub), 0o755);
    }
    mkdir(&swanctl.join("private"), 0o700);
    for (i, pem) in pki.trusted.iter().enumerate() {
        write_file(&swanctl.join("x509ca").join(swanctl_ca_name(i)), pem, 0o644);
    }
    for (i, pem) in pki.chain.iter().enumerate() {
        let path = if i == 0 {
            swanctl.join("x509").join(swanctl_cert_name(local_id))
        } else {
            swanctl.join(format!("x509ca/intermediate-{i}.crt"))
        };
        write_file(&path, pem, 0o644);
    }
    for (i, crl) in pki.crls.iter().enumerate() {
        write_file(&swanctl.join(format!("x509crl/crl-{i}.pem")), crl, 0o644);
    }
    if !pki.raw_keys.is_empty() {
        mkdir(&swanctl.join("pubkey"), 0o755);
    }
    for (id, pem) in &pki.raw_keys {
        write_file(
            &swanctl.join("pubkey").join(swanctl_pubkey_name(id)),
            pem,
            0o644,
        );
    }
    if !pki.key.is_empty() {
        write_file(
            &swanctl.join(format!("private/{local_id}.key")),
            &pki.key,
            0o600,
        );
    }
}

/// Runs `tests/lab/gen-pki.sh` (the strongSwan interop lab's PKI: an RSA-3072 CA and RSA-2048
/// certificates for a.ike.test and b.ike.test, all made by openssl(1))
/// into `lab_dir`, and returns each side's material: (A, B).
pub fn gen_pki_sh(lab_dir: &Path) -> (GatewayPki, GatewayPki) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/gen-pki.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("--force")
        .env("IKE_LAB_DIR", lab_dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let pki = lab_dir.join("pki");
    let read = |name: &str| {
        std::fs::read(pki.join(name)).unwrap_or_else(|e| panic!("{}/{name}: {e}", pki.display()))
    };
    let side = |name: &str| GatewayPki {
        trusted: vec![read("ca.crt")],
        chain: vec![read(&format!("{name}.crt"))],
        key: read(&format!("{name}.key")),
        ..GatewayPki::default()
    };
    (side("a"), side("b"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn iked_certdir_has_openbsd_layout_and_modes() {
        let scratch = crate::Scratch::new("pki-layout");
        let pki = GatewayPki {
            trusted: vec![b"ROOT".to_vec()],
            chain: vec![b"LEAF".to_vec(), b"INTER".to_vec()],
            key: b"KEY".to_vec(),
            crls: vec![b"CRL".to_vec()],
            raw_keys: vec![("b.ike.test".to_string(), b"PEER".to_vec())],
        };
        let dir = write_iked_certdir(&scratch.file("certdir"), &pki, "a.ike.test");
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(std::fs::read(dir.join("ca/ca-0.crt")).unwrap(), b"ROOT");
        assert_eq!(
            std::fs::read(dir.join("certs/a.ike.test.crt")).unwrap(),
            b"LEAF"
        );
        assert_eq!(
            std::fs::read(dir.join("certs/intermediate-1.crt")).unwrap(),
            b"INTER"
        );
        assert_eq!(std::fs::read(dir.join("crls/crl-0.pem")).unwrap(), b"CRL");
        assert_eq!(mode("private"), 0o700);
        assert_eq!(mode("private/local.key"), 0o600);
        for kind in ["ipv4", "ipv6", "fqdn", "ufqdn"] {
            assert!(dir.join("pubkeys").join(kind).is_dir());
        }
        assert_eq!(
            std::fs::read(dir.join("pubkeys/fqdn/b.ike.test")).unwrap(),
            b"PEER"
        );
        write_iked_pubkey(&dir, PubkeyKind::Ipv4, "198.18.0.2", b"PUB");
        assert_eq!(
            std::fs::read(dir.join("pubkeys/ipv4/198.18.0.2")).unwrap(),
            b"PUB"
        );

        let swanctl = scratch.file("swanctl");
        write_swanctl_credentials(&swanctl, &pki, "b.ike.test");
        assert_eq!(
            std::fs::read(swanctl.join("x509/b.ike.test.crt")).unwrap(),
            b"LEAF"
        );
        assert_eq!(
            std::fs::read(swanctl.join("x509ca/intermediate-1.crt")).unwrap(),
            b"INTER"
        );
        assert_eq!(
            std::fs::read(swanctl.join("x509ca/ca-0.crt")).unwrap(),
            b"ROOT"
        );
        assert_eq!(
            std::fs::read(swanctl.join("pubkey/b.ike.test.pub")).unwrap(),
            b"PEER"
        );
        assert_eq!(
            std::fs::metadata(swanctl.join("private/b.ike.test.key"))
                .unwrap()
                .mode()
                & 0o777,
            0o600
        );
    }
}
