//! Writing the files of a CA and of an iked certdir: whole files put in
//! place by rename (a crash leaves the old file or the new, never half of
//! one), created with their final mode, and owned by root when we are root.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of private keys and password files.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of certificates, CRLs and public keys.
pub const PUBLIC_FILE: u32 = 0o644;
/// Mode of `private/`.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of the other directories.
pub const PUBLIC_DIR: u32 = 0o755;

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Gives `path` to root when we are root: iked accepts keys owned by root
/// only, and a directory with the set-group-ID bit would give a file
/// another group.
fn own_by_root(path: &Path) -> Result<(), String> {
    if running_as_root() {
        std::os::unix::fs::chown(path, Some(0), Some(0))
            .map_err(|e| format!("cannot give {} to root: {e}", path.display()))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` with `mode`, replacing any file there.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let temporary = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)
            .map_err(|e| format!("cannot create {}: {e}", temporary.display()))?;
        // The umask may have taken bits away; set exactly what we mean.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot set the mode of {}: {e}", temporary.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
        own_by_root(&temporary)?;
        fs::rename(&temporary, path)
            .map_err(|e| format!("cannot put {} in place: {e}", path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Writes `bytes` to `path` only if nothing is there yet.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    if path.exists() {
        return Err(format!("{} exists already", path.display()));
    }
    write(path, bytes, mode)
}

pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Makes `dir` (and its parents) if missing; a `private` directory that is
/// open to group or others is closed to them (iked refuses it otherwise).
pub fn make_dir(dir: &Path, mode: u32) -> Result<(), String> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let current = meta.permissions().mode() & 0o777;
            if mode == PRIVATE_DIR && current & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR))
                    .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
                eprintln!(
                    "ikectl: {} was mode {current:03o}, now {PRIVATE_DIR:03o}",
                    dir.display()
                );
            }
            Ok(())
        }
        Ok(_) => Err(format!("{} exists and is not a directory", dir.display())),
        Err(_) => {
            if let Some(parent) = dir.parent() {
                if !parent.as_os_str().is_empty() && !parent.exists() {
                    make_dir(parent, PUBLIC_DIR)?;
                }
            }
            fs::create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))
                .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
            own_by_root(dir)
        }
    }
}

/// The directories of iked's certdir (iked.conf(5), `set certdir`).
pub fn make_certdir(certdir: &Path) -> Result<(), String> {
    make_dir(certdir, PUBLIC_DIR)?;
    for sub in ["ca", "certs", "crls"] {
        make_dir(&certdir.join(sub), PUBLIC_DIR)?;
    }
    make_dir(&certdir.join("private"), PRIVATE_DIR)?;
    for sub in ["ipv4", "ipv6", "fqdn", "ufqdn"] {
        make_dir(&certdir.join("pubkeys").join(sub), PUBLIC_DIR)?;
    }
    Ok(())
}

/// An exclusive lock on a CA, held while a command changes it, so that two
/// ikectl at once never hand out one serial number twice.
pub struct CaLock {
    _lock: nix::fcntl::Flock<File>,
}

impl CaLock {
    pub fn take(ca_dir: &Path) -> Result<CaLock, String> {
        let path: PathBuf = ca_dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(PRIVATE_FILE)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("cannot lock {}: {}", path.display(), e.desc()))?;
        Ok(CaLock { _lock: lock })
    }
}

/// `unix` seconds as an ASN.1 time string: UTCTime (YYMMDDHHMMSSZ) before
/// 2050, GeneralizedTime after (RFC 5280 section 4.1.2.5), as openssl's
/// index.txt has them.
pub fn asn1_time_text(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let seconds = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (the proleptic Gregorian
    // calendar, in eras of 400 years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let clock = format!(
        "{month:02}{day:02}{:02}{:02}{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if (1950..2050).contains(&year) {
        format!("{:02}{clock}", year % 100)
    } else {
        format!("{year:04}{clock}")
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times_are_those_openssl_reads() {
        assert_eq!(asn1_time_text(0), "700101000000Z");
        assert_eq!(asn1_time_text(951_782_400), "000229000000Z");
        assert_eq!(asn1_time_text(1_796_183_696), "261202035456Z");
        assert_eq!(asn1_time_text(2_524_608_000), "20500101000000Z");
        for unix in [0, 951_782_400, 1_796_183_696, 2_524_608_000, 4_102_444_799] {
            let parsed = openssl::asn1::Asn1Time::from_str(&asn1_time_text(unix)).unwrap();
            let reference = openssl::asn1::Asn1Time::from_unix(unix).unwrap();
            let diff = parsed.diff(&reference).unwrap();
            assert_eq!((diff.days, diff.secs), (0, 0), "{unix}");
        }
    }

    #[test]
    fn files_get_their_mode_and_private_dirs_are_closed() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("private/local.key");
        make_certdir(dir.path()).unwrap();
        write(&key, b"secret", PRIVATE_FILE).unwrap();
        assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(dir.path().join("private")).unwrap().mode() & 0o777,
            0o700
        );
        assert!(write_new(&key, b"other", PRIVATE_FILE)
            .unwrap_err()
            .contains("exists already"));
        assert_eq!(fs::read(&key).unwrap(), b"secret");
        fs::set_permissions(
            dir.path().join("private"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        make_certdir(dir.path()).unwrap();
        assert_eq!(
            fs::metadata(dir.path().join("private")).unwrap().mode() & 0o777,
            0o700
        );
        // Nothing but the key is left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("private"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["local.key"]);
    }
}
