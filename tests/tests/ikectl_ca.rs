//! `ikectl ca ...`: the built ikectl makes a CA, host certificates for an
//! FQDN, an IP address and a user@fqdn, installs, exports, revokes and
//! deletes; everything it writes is checked here with the openssl crate
//! (chains through an X509Store, CRLs, subjectAltNames, key types) and
//! with tar(1) for the export. No daemon is involved.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use iked_tests::lab::{Lab, Side};
use iked_tests::{binary, require_root, Scratch};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey};
use openssl::ssl::SslFiletype;
use openssl::stack::Stack;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Crl, X509StoreContext, X509};

/// A CA base directory and a certdir in a scratch directory.
struct Pki {
    scratch: Scratch,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        Pki {
            scratch: Scratch::new(&format!("ikectl-ca-{tag}")),
        }
    }

    fn base(&self) -> PathBuf {
        self.scratch.file("ssl")
    }

    fn ca_dir(&self, name: &str) -> PathBuf {
        self.base().join(name)
    }

    fn certdir(&self) -> PathBuf {
        self.scratch.file("iked")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(binary("ikectl"))
            .args(args)
            .env("IKECTL_CA_DIR", self.base())
            .current_dir(&self.scratch.0)
            .output()
            .expect("run ikectl")
    }

    /// Runs ikectl and returns its standard output; fails unless it exits 0.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "ikectl {args:?}: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    /// Runs ikectl and returns its standard error; fails unless it exits
    /// non-zero with a message.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(
            !output.status.success() && output.status.code().is_some(),
            "ikectl {args:?} should fail: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(!stderr.trim().is_empty(), "ikectl {args:?}: no error text");
        stderr
    }

    /// Runs ikectl with `input` on its standard input; fails unless it
    /// exits 0.
    fn ok_with_input(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(binary("ikectl"))
            .args(args)
            .env("IKECTL_CA_DIR", self.base())
            .current_dir(&self.scratch.0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run ikectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "ikectl {args:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    fn cert(&self, path: &Path) -> X509 {
        X509::from_pem(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// Verifies `leaf` against `ca` alone, with `crl` checked when given;
/// Err carries openssl's reason.
fn verify(ca: &X509, leaf: &X509, crl: Option<&Path>) -> Result<(), String> {
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(ca.clone()).unwrap();
    let mut flags = X509VerifyFlags::X509_STRICT;
    if let Some(crl) = crl {
        store
            .add_lookup(X509Lookup::file())
            .unwrap()
            .load_crl_file(crl, SslFiletype::PEM)
            .unwrap_or_else(|e| panic!("{}: {e}", crl.display()));
        flags |= X509VerifyFlags::CRL_CHECK;
    }
    store.set_flags(flags).unwrap();
    let store = store.build();
    let mut context = X509StoreContext::new().unwrap();
    let chain = Stack::new().unwrap();
    let result = context
        .init(&store, leaf, &chain, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error()))
        })
        .unwrap();
    match result {
        (true, _) => Ok(()),
        (false, error) => Err(error.error_string().to_string()),
    }
}

/// The subjectAltNames as "DNS:x", "IP:a", "email:u@x".
fn sans(cert: &X509) -> Vec<String> {
    let mut out = Vec::new();
    for name in cert.subject_alt_names().expect("subjectAltName").iter() {
        if let Some(dns) = name.dnsname() {
            out.push(format!("DNS:{dns}"));
        } else if let Some(email) = name.email() {
            out.push(format!("email:{email}"));
        } else if let Some(ip) = name.ipaddress() {
            let address: IpAddr = match ip.len() {
                4 => <[u8; 4]>::try_from(ip).unwrap().into(),
                _ => <[u8; 16]>::try_from(ip).unwrap().into(),
            };
            out.push(format!("IP:{address}"));
        }
    }
    out
}

fn common_name(cert: &X509) -> String {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .expect("CN")
        .data()
        .to_string()
        .unwrap()
}

fn text(cert: &X509) -> String {
    String::from_utf8(cert.to_text().unwrap()).unwrap()
}

fn curve(cert: &X509) -> Option<Nid> {
    cert.public_key()
        .unwrap()
        .ec_key()
        .ok()
        .and_then(|ec| ec.group().curve_name())
}

#[test]
fn a_ca_issues_fqdn_ip_and_user_certificates_that_verify_with_their_san_and_key() {
    let pki = Pki::new("issue");
    let out = pki.ok(&["ca", "vpn", "create"]);
    assert!(out.contains("CA 'vpn' created"), "{out}");
    pki.ok(&["ca", "vpn", "certificate", "gw.example.org", "create"]);
    pki.ok(&["ca", "vpn", "certificate", "198.18.0.1", "create", "rsa"]);
    pki.ok(&[
        "ca",
        "vpn",
        "certificate",
        "alice@example.org",
        "create",
        "client",
        "altname",
        "2001:db8::5",
    ]);
    let dir = pki.ca_dir("vpn");
    let ca = pki.cert(&dir.join("ca.crt"));

    // The CA: self-signed, P-256, CA:TRUE critical, keyCertSign and cRLSign.
    assert_eq!(curve(&ca), Some(Nid::X9_62_PRIME256V1));
    assert!(ca.verify(&ca.public_key().unwrap()).unwrap());
    let ca_text = text(&ca);
    assert!(
        ca_text.contains("X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0"),
        "{ca_text}"
    );
    assert!(ca_text.contains("Certificate Sign, CRL Sign"), "{ca_text}");
    assert_eq!(common_name(&ca), "vpn CA");

    let cases = [
        ("gw.example.org", vec!["DNS:gw.example.org"]),
        ("198.18.0.1", vec!["IP:198.18.0.1"]),
        (
            "alice@example.org",
            vec!["email:alice@example.org", "IP:2001:db8::5"],
        ),
    ];
    let mut serials = vec![ca
        .serial_number()
        .to_bn()
        .unwrap()
        .to_dec_str()
        .unwrap()
        .to_string()];
    for (host, expected_sans) in &cases {
        let cert = pki.cert(&dir.join(format!("{host}.crt")));
        verify(&ca, &cert, None).unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(&sans(&cert), expected_sans, "{host}");
        assert_eq!(common_name(&cert), *host);
        let cert_text = text(&cert);
        assert!(
            cert_text.contains("X509v3 Key Usage: critical\n                Digital Signature"),
            "{host}: {cert_text}"
        );
        assert!(cert_text.contains("CA:FALSE"), "{host}");
        assert!(
            cert_text.contains("ipsec Internet Key Exchange"),
            "{host}: {cert_text}"
        );
        // The key in private/ is the certificate's.
        let key = PKey::private_key_from_pem(
            &fs::read(dir.join("private").join(format!("{host}.key"))).unwrap(),
        )
        .unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key), "{host}");
        assert_eq!(
            mode(&dir.join("private").join(format!("{host}.key"))),
            0o600
        );
        serials.push(
            cert.serial_number()
                .to_bn()
                .unwrap()
                .to_dec_str()
                .unwrap()
                .to_string(),
        );
    }
    // ECDSA P-256 by default, RSA on request.
    let gw = pki.cert(&dir.join("gw.example.org.crt"));
    assert_eq!(curve(&gw), Some(Nid::X9_62_PRIME256V1));
    let ip = pki.cert(&dir.join("198.18.0.1.crt"));
    assert_eq!(ip.public_key().unwrap().id(), Id::RSA);
    assert_eq!(ip.public_key().unwrap().bits(), 3072);
    // Default usage: server and client; `client` leaves serverAuth out.
    assert!(text(&gw).contains("TLS Web Server Authentication, TLS Web Client Authentication"));
    let alice = text(&pki.cert(&dir.join("alice@example.org.crt")));
    assert!(alice.contains("TLS Web Client Authentication") && !alice.contains("Server Auth"));
    // Unique serial numbers, the CA's included.
    let mut unique = serials.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), serials.len(), "serials {serials:?}");

    // The CA's files: key 600 in a 700 directory.
    assert_eq!(mode(&dir.join("private/ca.key")), 0o600);
    assert_eq!(mode(&dir.join("private")), 0o700);
    assert_eq!(mode(&dir.join("ca.crt")), 0o644);

    // show lists them all.
    let shown = pki.ok(&["show", "ca", "vpn", "certificates"]);
    for (host, _) in &cases {
        assert!(shown.contains(&format!("{host}: serial ")), "{shown}");
    }
    assert!(shown.contains("3 host certificate(s)"), "{shown}");
    assert!(
        shown.contains("key RSA 3072, subjectAltName IP:198.18.0.1"),
        "{shown}"
    );
    let detail = pki.ok(&["show", "ca", "vpn", "certificates", "gw.example.org"]);
    assert!(detail.contains("DNS:gw.example.org") && detail.contains("Signature Algorithm"));
    // --json gives the same as a message.
    let json = pki.ok(&["--json", "show", "ca", "vpn", "certificates"]);
    let value: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(value["ok"], true);
    assert!(value["message"]
        .as_str()
        .unwrap()
        .contains("gw.example.org"));
}

#[test]
fn a_subject_and_rsa_ca_and_validity_are_as_asked() {
    let pki = Pki::new("subject");
    pki.ok(&[
        "ca",
        "corp",
        "create",
        "rsa",
        "c",
        "de",
        "o",
        "Example",
        "ou",
        "VPN",
        "cn",
        "Corp Root",
        "days",
        "1000",
    ]);
    pki.ok(&[
        "ca",
        "corp",
        "certificate",
        "gw.example.com",
        "create",
        "days",
        "10",
    ]);
    let dir = pki.ca_dir("corp");
    let ca = pki.cert(&dir.join("ca.crt"));
    assert_eq!(ca.public_key().unwrap().id(), Id::RSA);
    let subject = |cert: &X509| -> Vec<(String, String)> {
        cert.subject_name()
            .entries()
            .map(|e| {
                (
                    e.object().nid().short_name().unwrap().to_string(),
                    e.data().to_string().unwrap(),
                )
            })
            .collect()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        subject(&ca),
        pairs(&[
            ("C", "DE"),
            ("O", "Example"),
            ("OU", "VPN"),
            ("CN", "Corp Root")
        ])
    );
    let host = pki.cert(&dir.join("gw.example.com.crt"));
    // The host takes C, O and OU of its CA.
    assert_eq!(
        subject(&host),
        pairs(&[
            ("C", "DE"),
            ("O", "Example"),
            ("OU", "VPN"),
            ("CN", "gw.example.com")
        ])
    );
    // The host key is P-256 even under an RSA CA; validity as asked.
    assert_eq!(curve(&host), Some(Nid::X9_62_PRIME256V1));
    let span = host.not_before().diff(host.not_after()).unwrap();
    assert_eq!(span.days, 10, "{span:?}");
    let span = ca.not_before().diff(ca.not_after()).unwrap();
    assert_eq!(span.days, 1000, "{span:?}");
    verify(&ca, &host, None).unwrap();
    // Longer than the CA: refused.
    let error = pki.fails(&[
        "ca",
        "corp",
        "certificate",
        "long.example.com",
        "create",
        "days",
        "2000",
    ]);
    assert!(error.contains("would outlive the CA"), "{error}");
    assert!(!dir.join("long.example.com.crt").exists());
}

#[test]
#[ignore = "needs root (files owned by root): run by scripts/test-all.sh"]
fn install_writes_the_certdir_with_root_owned_private_key() {
    require_root("installing keys owned by root");
    let pki = Pki::new("install");
    pki.ok(&["ca", "vpn", "create"]);
    pki.ok(&["ca", "vpn", "certificate", "gw.example.org", "create"]);
    let certdir = pki.certdir();
    let certdir_text = certdir.to_str().unwrap();
    let out = pki.ok(&["ca", "vpn", "install", certdir_text]);
    assert!(
        out.contains("ca/vpn.crt") && out.contains("crls/vpn.crl"),
        "{out}"
    );
    pki.ok(&[
        "ca",
        "vpn",
        "certificate",
        "gw.example.org",
        "install",
        certdir_text,
    ]);

    let ca = pki.cert(&certdir.join("ca/vpn.crt"));
    let cert = pki.cert(&certdir.join("certs/gw.example.org.crt"));
    verify(&ca, &cert, None).unwrap();
    verify(&ca, &cert, Some(&certdir.join("crls/vpn.crl"))).unwrap();
    let key_path = certdir.join("private/local.key");
    let key = PKey::private_key_from_pem(&fs::read(&key_path).unwrap()).unwrap();
    assert!(cert.public_key().unwrap().public_eq(&key));
    let public = PKey::public_key_from_pem(&fs::read(certdir.join("local.pub")).unwrap()).unwrap();
    assert!(public.public_eq(&key));
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(mode(&certdir.join("private")), 0o700);
    for path in [&key_path, &certdir.join("private")] {
        let meta = fs::metadata(path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", path.display());
    }
    for sub in [
        "ca",
        "certs",
        "crls",
        "pubkeys/fqdn",
        "pubkeys/ipv4",
        "pubkeys/ipv6",
        "pubkeys/ufqdn",
    ] {
        assert_eq!(mode(&certdir.join(sub)), 0o755, "{sub}");
    }

    // Installing another host keeps the key it replaces.
    pki.ok(&["ca", "vpn", "certificate", "198.18.0.7", "create"]);
    let out = pki.ok(&[
        "ca",
        "vpn",
        "certificate",
        "198.18.0.7",
        "install",
        certdir_text,
    ]);
    assert!(out.contains("local.key.old"), "{out}");
    let old = PKey::private_key_from_pem(&fs::read(certdir.join("private/local.key.old")).unwrap())
        .unwrap();
    assert!(old.public_eq(&key));
    assert_eq!(mode(&certdir.join("private/local.key.old")), 0o600);
}

#[test]
fn revoke_puts_the_serial_in_a_crl_the_ca_signed_and_openssl_refuses_the_certificate() {
    let pki = Pki::new("revoke");
    pki.ok(&["ca", "vpn", "create", "password", "s3cret-pass"]);
    pki.ok(&["ca", "vpn", "certificate", "bob@example.org", "create"]);
    pki.ok(&["ca", "vpn", "certificate", "gw.example.org", "create"]);
    let dir = pki.ca_dir("vpn");
    // The password-protected CA key is encrypted and its password file 600.
    let key_pem = fs::read_to_string(dir.join("private/ca.key")).unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{key_pem}"
    );
    assert_eq!(mode(&dir.join("ikeca.passwd")), 0o600);

    let ca = pki.cert(&dir.join("ca.crt"));
    let bob = pki.cert(&dir.join("bob@example.org.crt"));
    let gw = pki.cert(&dir.join("gw.example.org.crt"));
    let crl_path = dir.join("ca.crl");
    let empty = X509Crl::from_pem(&fs::read(&crl_path).unwrap()).unwrap();
    assert!(empty.get_revoked().is_none_or(|r| r.is_empty()));
    verify(&ca, &bob, Some(&crl_path)).unwrap();
    let crl_number = || fs::read_to_string(dir.join("crlnumber")).unwrap();
    let number_before = crl_number();

    let out = pki.ok(&["ca", "vpn", "certificate", "bob@example.org", "revoke"]);
    assert!(out.contains("revoked"), "{out}");
    let crl = X509Crl::from_pem(&fs::read(dir.join("ca.crl")).unwrap()).unwrap();
    assert!(
        crl.verify(&ca.public_key().unwrap()).unwrap(),
        "CRL not signed by the CA"
    );
    assert_eq!(
        crl.issuer_name().to_der().unwrap(),
        ca.subject_name().to_der().unwrap()
    );
    let revoked: Vec<_> = crl
        .get_revoked()
        .expect("revoked entries")
        .iter()
        .map(|r| r.serial_number().to_bn().unwrap().to_vec())
        .collect();
    assert_eq!(revoked, [bob.serial_number().to_bn().unwrap().to_vec()]);
    let error = verify(&ca, &bob, Some(&crl_path)).unwrap_err();
    assert!(error.contains("revoked"), "{error}");
    verify(&ca, &gw, Some(&crl_path)).unwrap();
    // The next CRL gets the next number.
    assert_eq!(
        (number_before.as_str(), crl_number().as_str()),
        ("02\n", "03\n")
    );
    let shown = pki.ok(&["show", "ca", "vpn", "certificates"]);
    assert!(
        shown.contains("bob@example.org: serial 02, revoked"),
        "{shown}"
    );
    // Twice is an error; after a delete the serial stays in the CRL.
    let error = pki.fails(&["ca", "vpn", "certificate", "bob@example.org", "revoke"]);
    assert!(error.contains("revoked already"), "{error}");
    pki.ok(&["ca", "vpn", "certificate", "bob@example.org", "delete"]);
    assert!(!dir.join("bob@example.org.crt").exists());
    pki.ok(&["ca", "vpn", "certificate", "gw.example.org", "revoke"]);
    let crl = X509Crl::from_pem(&fs::read(dir.join("ca.crl")).unwrap()).unwrap();
    assert_eq!(crl.get_revoked().unwrap().len(), 2);
    // `crl` signs it again with the same serials.
    let out = pki.ok(&["ca", "vpn", "crl"]);
    assert!(out.contains("2 revoked serial(s)"), "{out}");
    let renewed = X509Crl::from_pem(&fs::read(dir.join("ca.crl")).unwrap()).unwrap();
    assert!(renewed.verify(&ca.public_key().unwrap()).unwrap());
    assert_eq!(renewed.get_revoked().unwrap().len(), 2);
    assert_eq!(crl_number(), "05\n");
    // A new certificate for bob after the delete gets a new serial.
    pki.ok(&["ca", "vpn", "certificate", "bob@example.org", "create"]);
    let bob2 = pki.cert(&dir.join("bob@example.org.crt"));
    assert_ne!(
        bob2.serial_number().to_bn().unwrap().to_vec(),
        bob.serial_number().to_bn().unwrap().to_vec()
    );
    verify(&ca, &bob2, Some(&crl_path)).unwrap();
}

#[test]
fn export_is_a_tarball_laid_out_as_a_certdir_with_optional_pkcs12() {
    let pki = Pki::new("export");
    pki.ok(&["ca", "vpn", "create"]);
    pki.ok(&["ca", "vpn", "certificate", "2001:db8::7", "create"]);
    // The password from standard input, out of the process list.
    let out = pki.ok_with_input(
        &[
            "ca",
            "vpn",
            "certificate",
            "2001:db8::7",
            "export",
            "peer",
            "gw.example.org",
            "password",
            "-",
        ],
        "export-pass\n",
    );
    let archive = pki.scratch.file("2001_db8__7.tgz");
    assert!(out.contains("2001_db8__7.tgz"), "{out}");
    assert_eq!(mode(&archive), 0o600);
    let listing = Command::new("tar")
        .arg("-tvzf")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(listing.status.success());
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    let mut names: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca/",
            "ca/vpn.crt",
            "certs/",
            "certs/2001:db8::7.crt",
            "crls/",
            "crls/vpn.crl",
            "export/",
            "export/2001_db8__7.pfx",
            "export/peer.txt",
            "local.pub",
            "private/",
            "private/local.key",
        ],
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw------- root/root") && l.ends_with("private/local.key")),
        "{listing}"
    );
    let unpacked = pki.scratch.file("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let status = Command::new("tar")
        .arg("-xpzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    let ca = pki.cert(&unpacked.join("ca/vpn.crt"));
    let cert = pki.cert(&unpacked.join("certs/2001:db8::7.crt"));
    verify(&ca, &cert, Some(&unpacked.join("crls/vpn.crl"))).unwrap();
    assert_eq!(sans(&cert), ["IP:2001:db8::7"]);
    let key =
        PKey::private_key_from_pem(&fs::read(unpacked.join("private/local.key")).unwrap()).unwrap();
    assert!(cert.public_key().unwrap().public_eq(&key));
    assert_eq!(mode(&unpacked.join("private/local.key")), 0o600);
    assert_eq!(
        fs::read_to_string(unpacked.join("export/peer.txt")).unwrap(),
        "gw.example.org\n"
    );
    let pkcs12 = openssl::pkcs12::Pkcs12::from_der(
        &fs::read(unpacked.join("export/2001_db8__7.pfx")).unwrap(),
    )
    .unwrap()
    .parse2("export-pass")
    .unwrap();
    assert!(pkcs12.pkey.unwrap().public_eq(&key));
    assert_eq!(
        pkcs12.cert.unwrap().to_der().unwrap(),
        cert.to_der().unwrap()
    );
    assert_eq!(
        pkcs12.ca.unwrap().iter().next().unwrap().to_der().unwrap(),
        ca.to_der().unwrap()
    );

    // A second export does not overwrite the first.
    let error = pki.fails(&["ca", "vpn", "certificate", "2001:db8::7", "export"]);
    assert!(error.contains("exists already"), "{error}");
}

#[test]
fn raw_keys_are_made_imported_installed_and_deleted() {
    let pki = Pki::new("keys");
    pki.ok(&["ca", "vpn", "create"]);
    let dir = pki.ca_dir("vpn");
    let certdir = pki.certdir();
    let certdir_text = certdir.to_str().unwrap();
    pki.ok(&[
        "ca",
        "vpn",
        "key",
        "gw1.example.org",
        "create",
        "rsa",
        "2048",
    ]);
    let key_path = dir.join("private/gw1.example.org.key");
    let key = PKey::private_key_from_pem(&fs::read(&key_path).unwrap()).unwrap();
    assert_eq!((key.id(), key.bits()), (Id::RSA, 2048));
    assert_eq!(mode(&key_path), 0o600);
    let error = pki.fails(&["ca", "vpn", "key", "gw1.example.org", "create"]);
    assert!(error.contains("exists already"), "{error}");

    pki.ok(&[
        "ca",
        "vpn",
        "key",
        "gw1.example.org",
        "install",
        certdir_text,
    ]);
    let local =
        PKey::private_key_from_pem(&fs::read(certdir.join("private/local.key")).unwrap()).unwrap();
    assert!(local.public_eq(&key));
    assert_eq!(mode(&certdir.join("private/local.key")), 0o600);
    // The peer's raw key where iked looks for it.
    pki.ok(&[
        "ca",
        "vpn",
        "key",
        "gw1.example.org",
        "pubkey",
        certdir_text,
    ]);
    let peer =
        PKey::public_key_from_pem(&fs::read(certdir.join("pubkeys/fqdn/gw1.example.org")).unwrap())
            .unwrap();
    assert!(peer.public_eq(&key));

    // A certificate for a host with a key uses that key; a different type
    // asked for is an error.
    let error = pki.fails(&[
        "ca",
        "vpn",
        "certificate",
        "gw1.example.org",
        "create",
        "ecdsa",
    ]);
    assert!(
        error.contains("is RSA 2048 but ECDSA P-256 was asked for"),
        "{error}"
    );
    pki.ok(&["ca", "vpn", "certificate", "gw1.example.org", "create"]);
    let cert = pki.cert(&dir.join("gw1.example.org.crt"));
    assert!(cert.public_key().unwrap().public_eq(&key));

    // Import: an Ed25519 key in PEM, a garbage file refused.
    let ed = PKey::generate_ed25519().unwrap();
    let import = pki.scratch.file("ed.pem");
    fs::write(&import, ed.private_key_to_pem_pkcs8().unwrap()).unwrap();
    pki.ok(&[
        "ca",
        "vpn",
        "key",
        "198.18.0.9",
        "import",
        import.to_str().unwrap(),
    ]);
    let imported =
        PKey::private_key_from_pem(&fs::read(dir.join("private/198.18.0.9.key")).unwrap()).unwrap();
    assert!(imported.public_eq(&ed));
    pki.ok(&["ca", "vpn", "key", "198.18.0.9", "pubkey", certdir_text]);
    assert!(certdir.join("pubkeys/ipv4/198.18.0.9").exists());
    let garbage = pki.scratch.file("garbage.pem");
    fs::write(&garbage, b"not a key").unwrap();
    let error = pki.fails(&[
        "ca",
        "vpn",
        "key",
        "other.example",
        "import",
        garbage.to_str().unwrap(),
    ]);
    assert!(error.contains("no unencrypted private key"), "{error}");
    assert!(!dir.join("private/other.example.key").exists());

    pki.ok(&["ca", "vpn", "key", "198.18.0.9", "delete"]);
    assert!(!dir.join("private/198.18.0.9.key").exists());
    let error = pki.fails(&["ca", "vpn", "key", "198.18.0.9", "delete"]);
    assert!(error.contains("has no key"), "{error}");
}

#[test]
fn bad_input_is_refused_with_a_reason_and_delete_removes_the_ca() {
    let pki = Pki::new("bad");
    let error = pki.fails(&["ca", "nosuch", "certificate", "gw.example.org", "create"]);
    assert!(error.contains("CA 'nosuch' does not exist"), "{error}");
    let error = pki.fails(&["show", "ca", "nosuch", "certificates"]);
    assert!(error.contains("CA 'nosuch' does not exist"), "{error}");
    let error = pki.fails(&["ca", "nosuch", "delete"]);
    assert!(error.contains("does not exist"), "{error}");
    let error = pki.fails(&["ca", "../etc", "create"]);
    assert!(error.contains("the CA name '../etc'"), "{error}");

    // A directory holding something else is not made a CA.
    fs::create_dir_all(pki.ca_dir("certs")).unwrap();
    fs::write(pki.ca_dir("certs").join("system.pem"), b"x").unwrap();
    let error = pki.fails(&["ca", "certs", "create"]);
    assert!(error.contains("exists and is not empty"), "{error}");
    assert_eq!(fs::read_dir(pki.ca_dir("certs")).unwrap().count(), 1);

    pki.ok(&["ca", "vpn", "create"]);
    let error = pki.fails(&["ca", "vpn", "create"]);
    assert!(error.contains("exists already"), "{error}");
    pki.ok(&["ca", "vpn", "certificate", "gw.example.org", "create"]);
    let before = fs::read(pki.ca_dir("vpn").join("gw.example.org.crt")).unwrap();
    let error = pki.fails(&["ca", "vpn", "certificate", "gw.example.org", "create"]);
    assert!(
        error.contains("a certificate for 'gw.example.org' exists already"),
        "{error}"
    );
    assert_eq!(
        fs::read(pki.ca_dir("vpn").join("gw.example.org.crt")).unwrap(),
        before
    );
    for (host, reason) in [
        ("bad..example.org", "empty label"),
        ("a/b", "character '/'"),
        ("@example.org", "user part is empty"),
    ] {
        let error = pki.fails(&["ca", "vpn", "certificate", host, "create"]);
        assert!(error.contains(reason), "{host}: {error}");
    }
    let error = pki.fails(&[
        "ca",
        "vpn",
        "certificate",
        "x.example.org",
        "create",
        "bogus",
    ]);
    assert!(error.contains("unknown option 'bogus'"), "{error}");
    // "ca" would be the CA's own files.
    for args in [
        &["ca", "vpn", "certificate", "CA", "delete"][..],
        &["ca", "vpn", "key", "ca", "delete"][..],
    ] {
        let error = pki.fails(args);
        assert!(error.contains("names the CA's own files"), "{error}");
    }
    assert!(pki.ca_dir("vpn").join("private/ca.key").exists());
    let error = pki.fails(&[
        "ca",
        "vpn",
        "certificate",
        "x.example.org",
        "create",
        "altname",
    ]);
    assert!(error.contains("'altname' needs a value"), "{error}");
    let error = pki.fails(&["ca", "vpn", "certificate", "none.example.org", "revoke"]);
    assert!(
        error.contains("has no certificate for 'none.example.org'"),
        "{error}"
    );
    let error = pki.fails(&["ca", "vpn", "certificate", "none.example.org", "install"]);
    assert!(error.contains("has no certificate"), "{error}");
    // Nothing was made by the refused commands.
    let shown = pki.ok(&["show", "ca", "vpn", "certificates"]);
    assert!(shown.contains("1 host certificate(s)"), "{shown}");
    assert!(!pki.ca_dir("vpn").join("private/x.example.org.key").exists());

    let out = pki.ok(&["ca", "vpn", "delete"]);
    assert!(out.contains("deleted"), "{out}");
    assert!(!pki.ca_dir("vpn").exists());
    let error = pki.fails(&["show", "ca", "vpn", "certificates"]);
    assert!(error.contains("does not exist"), "{error}");
}

/// A charon of strongSwan in one side of a [`Lab`], authenticating with
/// the `local` certificate of CA `lab` made by ikectl and expecting the
/// peer `remote`, the CA certificate and its CRL loaded.
struct Charon {
    child: std::process::Child,
    dir: PathBuf,
}

impl Charon {
    fn start(lab: &Lab, side: Side, pki: &Pki, local: &str, remote: &str) -> Charon {
        let dir = pki.scratch.file(&format!("swan-{side:?}"));
        let swanctl = dir.join("swanctl");
        for sub in ["x509", "x509ca", "x509crl", "private"] {
            fs::create_dir_all(swanctl.join(sub)).unwrap();
        }
        let ca_dir = pki.ca_dir("lab");
        fs::copy(ca_dir.join("ca.crt"), swanctl.join("x509ca/ca.crt")).unwrap();
        fs::copy(ca_dir.join("ca.crl"), swanctl.join("x509crl/ca.crl")).unwrap();
        fs::copy(
            ca_dir.join(format!("{local}.crt")),
            swanctl.join("x509/local.crt"),
        )
        .unwrap();
        fs::copy(
            ca_dir.join(format!("private/{local}.key")),
            swanctl.join("private/local.key"),
        )
        .unwrap();
        let vici = dir.join("vici");
        fs::write(
            dir.join("strongswan.conf"),
            format!(
                "charon-systemd {{\n journal {{\n  default = -1\n }}\n}}\n\
                 charon {{\n load_modular = no\n \
                 load = random nonce openssl aes sha1 sha2 hmac gcm kdf curve25519 pem pkcs1 \
                 pkcs8 x509 revocation constraints pubkey kernel-libipsec kernel-netlink \
                 socket-default vici\n retransmit_tries = 2\n retransmit_timeout = 2.0\n \
                 plugins {{\n  vici {{\n   socket = unix://{vici}\n  }}\n }}\n \
                 filelog {{\n  lab {{\n   path = {log}\n   flush_line = yes\n   default = 1\n   ike = 2\n   cfg = 2\n  }}\n }}\n}}\n\
                 swanctl {{\n load = random nonce openssl aes sha1 sha2 hmac pem pkcs1 pkcs8 x509 pubkey\n}}\n",
                vici = vici.display(),
                log = dir.join("charon.log").display(),
            ),
        )
        .unwrap();
        fs::write(
            swanctl.join("swanctl.conf"),
            format!(
                "connections {{\n c {{\n  version = 2\n  local_addrs = {la}\n  remote_addrs = {ra}\n  \
                 proposals = aes256-sha256-ecp256\n  \
                 local {{\n   auth = pubkey\n   certs = local.crt\n   id = {local}\n  }}\n  \
                 remote {{\n   auth = pubkey\n   id = {remote}\n  }}\n  \
                 children {{\n   c {{\n    local_ts = {la}/32\n    remote_ts = {ra}/32\n    \
                 esp_proposals = aes256gcm16\n    start_action = none\n   }}\n  }}\n }}\n}}\n",
                la = side.outer_v4(),
                ra = side.other().outer_v4(),
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", lab.ns(side), "/usr/sbin/charon-systemd"])
            .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("charon-systemd (apt-get install charon-systemd strongswan-swanctl)");
        let mut charon = Charon { child, dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !vici.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "strongSwan's vici socket did not appear"
            );
            assert!(charon.child.try_wait().unwrap().is_none(), "charon exited");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let loaded = charon.swanctl(&["--load-all", "--noprompt"]);
        assert!(
            loaded.status.success(),
            "swanctl --load-all: {}{}",
            String::from_utf8_lossy(&loaded.stdout),
            String::from_utf8_lossy(&loaded.stderr)
        );
        charon
    }

    fn swanctl(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("40")
            .arg("swanctl")
            .args(args)
            .arg("--uri")
            .arg(format!("unix://{}", self.dir.join("vici").display()))
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .env("SWANCTL_DIR", self.dir.join("swanctl"))
            .output()
            .expect("swanctl")
    }

    fn sas(&self) -> String {
        String::from_utf8_lossy(&self.swanctl(&["--list-sas"]).stdout).to_string()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two strongSwan peers authenticate each other with what ikectl made;
/// `revoke` revokes B's certificate first, which A must then refuse.
fn strongswan_pair(tag: &str, a: (&str, &[&str]), b: (&str, &[&str]), ca: &[&str], revoke: bool) {
    let pki = Pki::new(tag);
    let mut create = vec!["ca", "lab", "create"];
    create.extend(ca);
    pki.ok(&create);
    for (host, options) in [a, b] {
        let mut args = vec!["ca", "lab", "certificate", host, "create"];
        args.extend(options);
        pki.ok(&args);
    }
    if revoke {
        pki.ok(&["ca", "lab", "certificate", b.0, "revoke"]);
    }
    let lab = Lab::new(&format!("ikca-{tag}"));
    let charon_b = Charon::start(&lab, Side::B, &pki, b.0, a.0);
    let charon_a = Charon::start(&lab, Side::A, &pki, a.0, b.0);
    // The IKE SA is what the certificates decide; the Child SA is not
    // this test's business.
    let _ = charon_a.swanctl(&["--initiate", "--child", "c", "--timeout", "15"]);
    let sas = (charon_a.sas(), charon_b.sas());
    let logs = (charon_a.log(), charon_b.log());
    drop((charon_a, charon_b));
    drop(lab);
    let established = |sas: &str| sas.contains("ESTABLISHED");
    if revoke {
        assert!(!established(&sas.0) && !established(&sas.1), "{sas:?}");
        assert!(logs.0.contains("certificate was revoked"), "{}", logs.0);
    } else {
        assert!(
            established(&sas.0) && established(&sas.1),
            "A: {}\nB: {}\nlog A: {}",
            sas.0,
            sas.1,
            logs.0
        );
        for (log, peer) in [(&logs.0, b.0), (&logs.1, a.0)] {
            assert!(
                log.contains("crl correctly signed by \"O=iked, CN=lab CA\""),
                "{log}"
            );
            assert!(log.contains("certificate status is good"), "{log}");
            assert!(
                log.contains(&format!("authentication of '{peer}' with")),
                "{log}"
            );
        }
        assert!(sas.0.contains(&format!("remote '{}'", b.0)), "{}", sas.0);
    }
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan: run by scripts/test-all.sh"]
fn strongswan_accepts_an_ikectl_pki_with_ecdsa_rsa_fqdn_ip_and_user_identities() {
    require_root("strongSwan peers in namespaces");
    // ECDSA P-256 CA; an ECDSA FQDN gateway and an RSA IP gateway.
    strongswan_pair(
        "ec",
        ("gw-a.example.org", &[]),
        ("198.18.0.2", &["rsa"]),
        &[],
        false,
    );
    // RSA CA; a user@fqdn road warrior and an FQDN gateway.
    strongswan_pair(
        "rsa",
        ("alice@example.org", &["client"]),
        ("gw-b.example.org", &["server"]),
        &["rsa"],
        false,
    );
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan: run by scripts/test-all.sh"]
fn strongswan_refuses_a_certificate_revoked_by_ikectl() {
    require_root("strongSwan peers in namespaces");
    strongswan_pair(
        "rev",
        ("gw-a.example.org", &[]),
        ("gw-b.example.org", &[]),
        &[],
        true,
    );
}
