//! Reads the certificate store under `set certdir` (OpenBSD iked's
//! layout) for ca-proc: the parent opens and reads the files, checks their
//! owner and mode, and hands the bytes over; it never parses a certificate
//! (untrusted DER is for the confined ca only).
//!
//! - `ca/*`, `certs/*`, `crls/*`: trusted CAs, our certificate and
//!   intermediates, revocation lists.
//! - `private/local.key`: our private key. It and `private/` must be owned
//!   by root and closed to group and others, as iked.conf is.
//! - `pubkeys/{ipv4,ipv6,fqdn,ufqdn}/ID`: raw public keys of peers, the
//!   file name being the identity.
//!
//! Every directory and file must be owned by root and not writable by
//! group or others: whoever can write a CA into `ca/` can authenticate as
//! anyone. Each refusal names the file and what to change.

use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use iked_common::config::{AuthSpec, Config, IdentitySpec};
use iked_common::ipc::{CaPolicy, CertStoreFiles, PeerPublicKey, SecretStoreFile, StoreFile};

/// The largest file read (certificates, CRLs and keys are kilobytes; a
/// large CRL stays well below).
pub const MAX_STORE_FILE: u64 = 1 << 20;
/// The largest private key file.
pub const MAX_KEY_FILE: u64 = 64 << 10;
/// Files read per directory.
pub const MAX_FILES_PER_DIR: usize = 1024;
/// All files together: the store travels to ca in one message (16 MiB cap).
pub const MAX_STORE_BYTES: u64 = 8 << 20;

/// The public-key policies, as ca needs them.
pub fn pubkey_policies(config: &Config) -> Vec<CaPolicy> {
    config
        .policies
        .iter()
        .filter_map(|p| match p.auth {
            AuthSpec::PublicKey(auth) => Some(CaPolicy {
                name: p.name.clone(),
                auth,
                srcid: p.srcid.clone(),
                dstid: p.dstid.clone(),
            }),
            AuthSpec::Psk => None,
        })
        .collect()
}

/// The store's files when some policy uses public keys; nothing (and no
/// file opened) otherwise.
pub fn read_for(config: &Config) -> Result<CertStoreFiles, String> {
    let users: Vec<&str> = config
        .policies
        .iter()
        .filter(|p| matches!(p.auth, AuthSpec::PublicKey(_)))
        .map(|p| p.name.as_str())
        .collect();
    // An EAP client (an active policy with `eap`) proves itself with the
    // MSK (RFC 7296 §2.16), never with our key: a store for EAP clients
    // alone needs none.
    let signs = config.policies.iter().any(|p| {
        matches!(p.auth, AuthSpec::PublicKey(_))
            && !(p.remote_access.eap.is_some()
                && p.initiation == iked_common::config::PolicyInitiation::Active)
    });
    match users.first() {
        None => Ok(CertStoreFiles::default()),
        Some(first) => read_with(Path::new(&config.certdir), signs).map_err(|e| {
            format!(
                "certificate store for policy {first}{}: {e}",
                if users.len() > 1 { " and others" } else { "" }
            )
        }),
    }
}

struct Reader {
    total: u64,
}

/// Refuses what others than root could change: not owned by root (or, for
/// `iked -n` run unprivileged, by the reader), or writable by group or
/// others.
fn check_not_writable_by_others(meta: &std::fs::Metadata) -> Result<(), String> {
    let reader = nix::unistd::Uid::effective().as_raw();
    if meta.uid() != 0 && meta.uid() != reader {
        return Err(format!(
            "owned by uid {}, not root: refusing what others could change (chown root)",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "mode {mode:04o} lets group or others write it (chmod go-w)"
        ));
    }
    Ok(())
}

/// Reads the layout under `dir`.
#[cfg(test)]
pub fn read(dir: &Path) -> Result<CertStoreFiles, String> {
    read_with(dir, true)
}

/// [`read`]; without `need_key`, a missing `private/local.key` is no
/// error (no key is then sent to ca).
fn read_with(dir: &Path, need_key: bool) -> Result<CertStoreFiles, String> {
    let named = |path: &Path, e: String| format!("{}: {e}", path.display());
    let meta = std::fs::metadata(dir).map_err(|e| named(dir, format!("cannot open: {e}")))?;
    if !meta.is_dir() {
        return Err(named(dir, "not a directory".into()));
    }
    check_not_writable_by_others(&meta).map_err(|e| named(dir, e))?;
    let mut reader = Reader { total: 0 };
    let mut files = CertStoreFiles {
        dir: dir.display().to_string(),
        ..Default::default()
    };
    files.ca_certs = reader.directory(&dir.join("ca"))?;
    files.certs = reader.directory(&dir.join("certs"))?;
    files.crls = reader.directory(&dir.join("crls"))?;
    let private = dir.join("private");
    files.private_key = if need_key || private.join("local.key").exists() {
        Some(reader.private_key(&private)?)
    } else {
        None
    };
    // pubkeys/ itself: whoever may write it may replace the directories
    // below it.
    let pubkeys = dir.join("pubkeys");
    if let Ok(meta) = std::fs::metadata(&pubkeys) {
        if !meta.is_dir() {
            return Err(named(&pubkeys, "not a directory".into()));
        }
        check_not_writable_by_others(&meta).map_err(|e| named(&pubkeys, e))?;
    }
    for (kind, identity) in [
        ("ipv4", identity_ipv4 as fn(&str) -> Option<IdentitySpec>),
        ("ipv6", identity_ipv6),
        ("fqdn", identity_fqdn),
        ("ufqdn", identity_ufqdn),
    ] {
        let kind_dir = dir.join("pubkeys").join(kind);
        for file in reader.directory(&kind_dir)? {
            let name = Path::new(&file.path)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let identity = identity(&name).ok_or_else(|| {
                format!(
                    "{}: the file name is not an identity of pubkeys/{kind}/",
                    file.path
                )
            })?;
            files.pubkeys.push(PeerPublicKey { identity, file });
        }
    }
    Ok(files)
}

fn identity_ipv4(name: &str) -> Option<IdentitySpec> {
    name.parse::<Ipv4Addr>()
        .ok()
        .map(|a| IdentitySpec::Address(a.into()))
}

fn identity_ipv6(name: &str) -> Option<IdentitySpec> {
    name.parse::<Ipv6Addr>()
        .ok()
        .map(|a| IdentitySpec::Address(a.into()))
}

fn identity_fqdn(name: &str) -> Option<IdentitySpec> {
    (!name.contains('@') && !name.is_empty()).then(|| IdentitySpec::Fqdn(name.to_string()))
}

fn identity_ufqdn(name: &str) -> Option<IdentitySpec> {
    name.split_once('@')
        .filter(|(user, domain)| !user.is_empty() && !domain.is_empty())
        .map(|_| IdentitySpec::UserFqdn(name.to_string()))
}

impl Reader {
    /// The regular files of `dir` in name order, skipping hidden ones; a
    /// missing directory is an empty one.
    fn directory(&mut self, dir: &Path) -> Result<Vec<StoreFile>, String> {
        let named = |path: &Path, e: String| format!("{}: {e}", path.display());
        let meta = match std::fs::metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(named(dir, format!("cannot open: {e}"))),
        };
        if !meta.is_dir() {
            return Err(named(dir, "not a directory".into()));
        }
        check_not_writable_by_others(&meta).map_err(|e| named(dir, e))?;
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| named(dir, format!("cannot read: {e}")))? {
            let entry = entry.map_err(|e| named(dir, format!("cannot read: {e}")))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if paths.len() == MAX_FILES_PER_DIR {
                return Err(named(dir, format!("more than {MAX_FILES_PER_DIR} files")));
            }
            paths.push(entry.path());
        }
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            // Subdirectories (pubkeys/ has them) are not files of this one.
            if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let bytes = self.file(&path, MAX_STORE_FILE, check_not_writable_by_others)?;
            files.push(StoreFile {
                path: path.display().to_string(),
                bytes,
            });
        }
        Ok(files)
    }

    /// `private/local.key`, with `private/` checked as iked.conf is.
    fn private_key(&mut self, dir: &Path) -> Result<SecretStoreFile, String> {
        let named = |path: &Path, e: String| format!("{}: {e}", path.display());
        let meta = std::fs::metadata(dir).map_err(|e| {
            named(
                dir,
                format!("cannot open ({e}): a public-key policy needs private/local.key"),
            )
        })?;
        if !meta.is_dir() {
            return Err(named(dir, "not a directory".into()));
        }
        check_private(&meta).map_err(|e| named(dir, e))?;
        let path = dir.join("local.key");
        let bytes = self.file(&path, MAX_KEY_FILE, check_private)?;
        Ok(SecretStoreFile {
            path: path.display().to_string(),
            bytes,
        })
    }

    /// Reads one regular file, checked by `check` on the descriptor read
    /// (no window between the check and the read), within the caps.
    fn file(
        &mut self,
        path: &Path,
        cap: u64,
        check: fn(&std::fs::Metadata) -> Result<(), String>,
    ) -> Result<Vec<u8>, String> {
        let named = |e: String| format!("{}: {e}", path.display());
        let file = std::fs::File::open(path).map_err(|e| named(format!("cannot open: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| named(format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(named("not a regular file".into()));
        }
        check(&meta).map_err(named)?;
        if meta.len() > cap {
            return Err(named(format!("larger than {cap} bytes")));
        }
        if self.total + meta.len() > MAX_STORE_BYTES {
            return Err(named(format!(
                "the store's files exceed {MAX_STORE_BYTES} bytes in all"
            )));
        }
        // Sized once from the size (the key's cap for the key): a private
        // key must leave no outgrown copy behind in our memory.
        let capacity = if cap == MAX_KEY_FILE { cap } else { meta.len() };
        let mut bytes = Vec::with_capacity(capacity as usize + 1);
        file.take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| named(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > cap {
            return Err(named(format!("larger than {cap} bytes")));
        }
        self.total += bytes.len() as u64;
        Ok(bytes)
    }
}

/// The private key and its directory: closed to group and others, owned
/// by root (iked.conf's rule, `check_secret_file_mode`).
fn check_private(meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_dir() {
        return iked_common::config::check_secret_file_mode(meta);
    }
    check_not_writable_by_others(meta)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {mode:04o} lets group or others into the directory of our private key \
             (chmod 700)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
