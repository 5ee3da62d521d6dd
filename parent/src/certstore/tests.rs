//! The layout read from disk, and the refusals of files others could read
//! or change, each naming the file.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// A certdir of a test: removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let path =
            std::env::temp_dir().join(format!("iked-certstore-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Dir(path)
    }

    fn put(&self, relative: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = self.0.join(relative);
        let parent = path.parent().unwrap();
        if !parent.exists() {
            std::fs::create_dir_all(parent).unwrap();
            let private = parent.ends_with("private");
            std::fs::set_permissions(
                parent,
                std::fs::Permissions::from_mode(if private { 0o700 } else { 0o755 }),
            )
            .unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// The layout of a working store.
    fn complete(name: &str) -> Dir {
        let dir = Dir::new(name);
        dir.put("ca/root.crt", b"root pem", 0o644);
        dir.put("certs/a.crt", b"our pem", 0o644);
        dir.put("certs/b-intermediate.crt", b"intermediate pem", 0o644);
        dir.put("crls/root.crl", b"crl", 0o644);
        dir.put("private/local.key", b"key", 0o600);
        dir.put("pubkeys/fqdn/b.ike.test", b"b key", 0o644);
        dir.put("pubkeys/ipv4/198.18.0.2", b"ip key", 0o644);
        dir.put("pubkeys/ipv6/2001:db8::2", b"ip6 key", 0o644);
        dir.put("pubkeys/ufqdn/vpn@ike.test", b"mail key", 0o644);
        dir.put("ca/.hidden", b"ignored", 0o644);
        dir
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_layout_is_read_in_name_order_with_identities_from_file_names() {
    let dir = Dir::complete("layout");
    let files = read(&dir.0).expect("read");
    let names = |v: &[StoreFile]| {
        v.iter()
            .map(|f| f.path.rsplit('/').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&files.ca_certs), ["root.crt"]);
    assert_eq!(names(&files.certs), ["a.crt", "b-intermediate.crt"]);
    assert_eq!(files.certs[0].bytes, b"our pem");
    assert_eq!(names(&files.crls), ["root.crl"]);
    assert_eq!(files.private_key.as_ref().unwrap().bytes, b"key");
    let ids: Vec<IdentitySpec> = files.pubkeys.iter().map(|k| k.identity.clone()).collect();
    assert_eq!(
        ids,
        [
            IdentitySpec::Address("198.18.0.2".parse().unwrap()),
            IdentitySpec::Address("2001:db8::2".parse().unwrap()),
            IdentitySpec::Fqdn("b.ike.test".into()),
            IdentitySpec::UserFqdn("vpn@ike.test".into()),
        ]
    );
    assert_eq!(files.dir, dir.0.display().to_string());
}

#[test]
fn a_private_key_or_directory_others_can_read_is_refused_naming_it() {
    let dir = Dir::complete("key-mode");
    let key = dir.0.join("private/local.key");
    for mode in [0o640, 0o604, 0o660, 0o644] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = read(&dir.0).expect_err("refused");
        println!("{mode:04o}: {e}");
        assert!(
            e.starts_with(&format!(
                "{}: mode {mode:04o} lets group or others read or write it",
                key.display()
            )),
            "{e}"
        );
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    read(&dir.0).expect("0400 is fine");
    let private = dir.0.join("private");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o750)).unwrap();
    let e = read(&dir.0).expect_err("refused");
    assert!(
        e.starts_with(&format!(
            "{}: mode 0750 lets group or others into the directory of our private key",
            private.display()
        )),
        "{e}"
    );
    assert!(e.contains("chmod 700"), "{e}");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_file(&key).unwrap();
    let e = read(&dir.0).expect_err("refused");
    assert!(
        e.starts_with(&format!("{}: cannot open", key.display())),
        "{e}"
    );
}

#[test]
fn a_ca_directory_or_certificate_others_can_write_is_refused() {
    let dir = Dir::complete("ca-mode");
    let root = dir.0.join("ca/root.crt");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = read(&dir.0).expect_err("refused");
    assert!(
        e.starts_with(&format!(
            "{}: mode 0666 lets group or others write it",
            root.display()
        )),
        "{e}"
    );
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ca = dir.0.join("ca");
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = read(&dir.0).expect_err("refused");
    assert!(
        e.starts_with(&format!("{}: mode 0777", ca.display())),
        "{e}"
    );
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pubkeys = dir.0.join("pubkeys");
    std::fs::set_permissions(&pubkeys, std::fs::Permissions::from_mode(0o775)).unwrap();
    let e = read(&dir.0).expect_err("refused");
    assert!(
        e.starts_with(&format!("{}: mode 0775", pubkeys.display())),
        "{e}"
    );
    std::fs::set_permissions(&pubkeys, std::fs::Permissions::from_mode(0o755)).unwrap();
    read(&dir.0).expect("fixed");
}

#[test]
fn oversized_files_bad_identities_and_missing_dirs_are_told_apart() {
    let dir = Dir::complete("caps");
    let big = dir.put(
        "certs/huge.crt",
        &vec![b'A'; MAX_STORE_FILE as usize + 1],
        0o644,
    );
    let e = read(&dir.0).expect_err("refused");
    assert_eq!(e, format!("{}: larger than 1048576 bytes", big.display()));
    std::fs::remove_file(&big).unwrap();
    let bad = dir.put("pubkeys/ipv4/not-an-address", b"k", 0o644);
    let e = read(&dir.0).expect_err("refused");
    assert_eq!(
        e,
        format!(
            "{}: the file name is not an identity of pubkeys/ipv4/",
            bad.display()
        )
    );
    std::fs::remove_file(&bad).unwrap();
    // crls/ and pubkeys/ are optional.
    std::fs::remove_dir_all(dir.0.join("crls")).unwrap();
    std::fs::remove_dir_all(dir.0.join("pubkeys")).unwrap();
    let files = read(&dir.0).expect("read");
    assert!(files.crls.is_empty() && files.pubkeys.is_empty());
    let e = read(&dir.0.join("nonexistent")).expect_err("refused");
    assert!(e.contains("nonexistent: cannot open"), "{e}");
}

#[test]
fn nothing_is_read_without_a_public_key_policy() {
    let mut config = Config {
        certdir: "/nonexistent/iked".into(),
        ..Default::default()
    };
    assert_eq!(read_for(&config).unwrap(), CertStoreFiles::default());
    let parsed = iked_common::config::parse_str(
        "t.conf",
        "ikev2 \"cert\" passive esp from 10.0.0.0/24 to 10.1.0.0/24 peer 198.18.0.2 psk \"k\"\n",
        &[],
    )
    .unwrap();
    config.policies = parsed.policies;
    assert_eq!(read_for(&config).unwrap(), CertStoreFiles::default());
    for p in &mut config.policies {
        p.auth = AuthSpec::PublicKey(iked_common::config::SignatureAuth::Any);
    }
    let e = read_for(&config).expect_err("refused");
    assert!(
        e.starts_with("certificate store for policy cert: /nonexistent/iked: cannot open"),
        "{e}"
    );
    assert_eq!(pubkey_policies(&config).len(), 1);
}

#[test]
#[ignore = "needs root (chown): run by scripts/test-all.sh"]
fn files_root_does_not_own_are_refused() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "files_root_does_not_own_are_refused needs root to chown test files"
    );
    let dir = Dir::complete("owner");
    for relative in ["private/local.key", "private", "ca/root.crt", "certs"] {
        let path = dir.0.join(relative);
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let e = read(&dir.0).expect_err("refused");
        println!("{relative}: {e}");
        assert!(
            e.starts_with(&format!("{}: owned by uid 65534, not root", path.display())),
            "{e}"
        );
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
    }
    read(&dir.0).expect("all root's again");
}

#[test]
fn a_store_for_eap_clients_alone_needs_no_private_key() {
    let dir = Dir::new("eap-client");
    dir.put("ca/root.crt", b"root pem", 0o644);
    let files = read_with(&dir.0, false).expect("no key needed");
    assert!(files.private_key.is_none());
    assert_eq!(files.ca_certs.len(), 1);
    let e = read_with(&dir.0, true).expect_err("a signing policy needs the key");
    assert!(e.contains("private/local.key"), "{e}");
    // An empty private/ is no key either; a key there is still read.
    std::fs::create_dir(dir.0.join("private")).unwrap();
    std::fs::set_permissions(
        dir.0.join("private"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    assert!(read_with(&dir.0, false).unwrap().private_key.is_none());
    dir.put("private/local.key", b"key", 0o600);
    assert!(read_with(&dir.0, false).unwrap().private_key.is_some());
}
