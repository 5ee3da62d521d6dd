//! The certificate store of a running iked (`set certdir`): files others
//! could read or change are refused at start (iked exits naming the file)
//! and on reload or `ikectl reset ca` (the store in force stays); a store
//! whose contents ca refuses stops the start, and is reported and skipped
//! on a reset; `ikectl show certstore` lists what ca loaded.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use iked_common::test_pki::{CertSpec, Chain, KeyKind};
use iked_tests::{binary, require_root, Daemon, Scratch};

/// A certdir with a CA, our certificate, its intermediate and our key,
/// as an operator installs them (root's, 0755 directories, 0644
/// certificates, private/ 0700 and its key 0600).
fn install_store(dir: &Path, chain: &Chain) {
    let put = |relative: &str, bytes: &[u8], mode: u32| {
        let path = dir.join(relative);
        let parent = path.parent().unwrap();
        std::fs::create_dir_all(parent).unwrap();
        let dir_mode = if parent.ends_with("private") {
            0o700
        } else {
            0o755
        };
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(dir_mode)).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    put("ca/root.crt", &chain.root.cert_pem(), 0o644);
    put("certs/a.ike.test.crt", &chain.leaf.cert_pem(), 0o644);
    put(
        "certs/intermediate.crt",
        &chain.intermediate.cert_pem(),
        0o644,
    );
    put("private/local.key", &chain.leaf.key_pem(), 0o600);
}

fn config_for(certdir: &Path) -> String {
    format!(
        "set passive\nset certdir \"{}\"\n\
         ikev2 \"cert\" passive esp from 10.0.0.0/24 to 10.1.0.0/24 peer 198.18.0.2 \
         dstid \"b.ike.test\"\n",
        certdir.display()
    )
}

fn chain() -> Chain {
    Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("a.ike.test", KeyKind::P256),
    )
}

/// iked -d in a network namespace of its own: its exit status and output.
fn run_iked(scratch: &Scratch, config: &Path) -> (Option<i32>, String) {
    let out = Command::new("timeout")
        .arg("20")
        .arg("unshare")
        .arg("-n")
        .arg(binary("iked"))
        .arg("-d")
        .arg("-f")
        .arg(config)
        .arg("-s")
        .arg(scratch.file("iked.sock"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test-all.sh"]
fn a_private_key_others_can_read_stops_the_start_naming_the_file() {
    require_root("a_private_key_others_can_read_stops_the_start_naming_the_file");
    let scratch = Scratch::new("certstore-start");
    let certdir = scratch.file("pki");
    install_store(&certdir, &chain());
    let config = scratch.config("iked.conf", &config_for(&certdir));
    let key = certdir.join("private/local.key");
    for (path, mode, expected) in [
        (
            key.clone(),
            0o640,
            "mode 0640 lets group or others read or write it",
        ),
        (
            certdir.join("private"),
            0o755,
            "mode 0755 lets group or others",
        ),
        (
            certdir.join("ca"),
            0o777,
            "mode 0777 lets group or others write it",
        ),
    ] {
        let before = std::fs::metadata(&path).unwrap().permissions();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let (code, stderr) = run_iked(&scratch, &config);
        println!("{} {mode:04o}: {}", path.display(), stderr.trim());
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("{}: {expected}", path.display())),
            "{stderr}"
        );
        assert!(!scratch.file("iked.sock").exists(), "nothing started");
        // iked -n says the same.
        let check = Command::new(binary("iked"))
            .arg("-n")
            .arg("-f")
            .arg(&config)
            .output()
            .unwrap();
        assert!(!check.status.success());
        assert!(String::from_utf8_lossy(&check.stderr).contains(expected));
        std::fs::set_permissions(&path, before).unwrap();
    }
    std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
    let (code, stderr) = run_iked(&scratch, &config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: owned by uid 65534, not root", key.display())),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test-all.sh"]
fn a_store_ca_cannot_parse_stops_the_start_naming_the_file() {
    require_root("a_store_ca_cannot_parse_stops_the_start_naming_the_file");
    let scratch = Scratch::new("certstore-garbled");
    let certdir = scratch.file("pki");
    install_store(&certdir, &chain());
    let garbled = certdir.join("ca/garbled.crt");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let config = scratch.config("iked.conf", &config_for(&certdir));
    let (code, stderr) = run_iked(&scratch, &config);
    println!("{}", stderr.trim());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: not a PEM certificate", garbled.display())),
        "{stderr}"
    );
}

fn show_certstore(daemon: &Daemon) -> String {
    String::from_utf8_lossy(&daemon.ikectl_ok(&["show", "certstore"]).stdout).into_owned()
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test-all.sh"]
fn show_certstore_lists_the_store_and_a_refused_reset_or_reload_keeps_it() {
    require_root("show_certstore_lists_the_store_and_a_refused_reset_or_reload_keeps_it");
    let chain = chain();
    // The store lives outside the daemon's scratch: it must exist before.
    let pki = Scratch::new("certstore-pki");
    let certdir: PathBuf = pki.file("pki");
    install_store(&certdir, &chain);
    let mut daemon = Daemon::start("certstore-show", &config_for(&certdir));
    daemon.expect_log("certificate store", Duration::from_secs(5));
    let shown = show_certstore(&daemon);
    println!("{shown}");
    for expected in [
        format!("certificate store: {}", certdir.display()),
        "trusted CAs: 1".to_string(),
        "C=XX, O=iked test, CN=iked test root".to_string(),
        "our key: ECDSA P-256; our certificate and chain:".to_string(),
        "C=XX, O=iked test, CN=a.ike.test".to_string(),
        "subjectAltName DNS:a.ike.test".to_string(),
        "CRLs: 0".to_string(),
    ] {
        assert!(shown.contains(&expected), "{expected}:\n{shown}");
    }

    let json = daemon.ikectl_ok(&["--json", "show", "certstore"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["ok"], true, "{value}");
    assert_eq!(
        value["certstore"]["local_chain"][0]["subject"], "C=XX, O=iked test, CN=a.ike.test",
        "{value}"
    );
    assert_eq!(value["certstore"]["local_key"], "ECDSA P-256", "{value}");

    // A CRL added and `reset ca`: in force.
    let crl = certdir.join("crls/root.crl");
    std::fs::create_dir_all(crl.parent().unwrap()).unwrap();
    std::fs::write(&crl, chain.root.crl(&[], 30).to_pem().unwrap()).unwrap();
    let reset = daemon.ikectl_ok(&["reset", "ca"]);
    let said = String::from_utf8_lossy(&reset.stdout);
    assert!(said.contains("1 CRLs"), "{said}");
    assert!(show_certstore(&daemon).contains("CRLs: 1"));

    // A garbled CA: ca refuses it, names the file, keeps the store.
    let garbled = certdir.join("ca/zz-garbled.crt");
    std::fs::write(&garbled, "not a certificate\n").unwrap();
    let reset = daemon.ikectl(&["reset", "ca"]);
    let stderr = String::from_utf8_lossy(&reset.stderr);
    assert!(!reset.status.success(), "{stderr}");
    assert!(stderr.contains(&garbled.display().to_string()), "{stderr}");
    assert!(stderr.contains("keeping the previous one"), "{stderr}");
    let shown = show_certstore(&daemon);
    assert!(
        shown.contains("trusted CAs: 1") && shown.contains("CRLs: 1"),
        "{shown}"
    );
    assert!(shown.contains("last store refused: "), "{shown}");
    std::fs::remove_file(&garbled).unwrap();

    // A key others can read: the parent refuses, on reset and on reload.
    let key = certdir.join("private/local.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let reset = daemon.ikectl(&["reset", "ca"]);
    let stderr = String::from_utf8_lossy(&reset.stderr);
    assert!(!reset.status.success());
    assert!(
        stderr.contains(&format!(
            "reset ca failed, keeping the current store: certificate store for policy cert: {}: mode 0644",
            key.display()
        )),
        "{stderr}"
    );
    let reload = daemon.ikectl(&["reload"]);
    let stderr = String::from_utf8_lossy(&reload.stderr);
    assert!(!reload.status.success());
    assert!(
        stderr.contains("reload failed, keeping the current configuration: certificate store"),
        "{stderr}"
    );
    assert!(daemon.is_running());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let reload = daemon.ikectl_ok(&["reload"]);
    let said = String::from_utf8_lossy(&reload.stdout);
    assert!(said.contains("configuration 2 loaded from"), "{said}");
    let shown = show_certstore(&daemon);
    assert!(!shown.contains("last store refused"), "{shown}");
    assert!(shown.contains("(configuration 2)"), "{shown}");

    // A reload whose store ca refuses is not reported as a success, and
    // aborts for every process (parent/src/daemon/reload.rs).
    std::fs::write(&garbled, "not a certificate\n").unwrap();
    let reload = daemon.ikectl(&["reload"]);
    let stderr = String::from_utf8_lossy(&reload.stderr);
    assert!(!reload.status.success(), "{stderr}");
    assert!(
        stderr.contains("reload failed, keeping the current configuration: configuration 3")
            && stderr.contains("ca refused it: certificate store of configuration 3 refused"),
        "{stderr}"
    );
    let shown = show_certstore(&daemon);
    assert!(shown.contains("(configuration 2)"), "{shown}");
    println!("reload with a garbled CA: {}", stderr.trim());
}

/// Two iked with certificates of one CA, in the namespace lab: the IKE SA
/// comes up authenticated by signatures (ca signing and verifying under
/// its real sandbox), with FQDN identities one way and our certificate's
/// DN the other; then a responder given a CRL revoking the initiator's
/// certificate, and one that trusts another CA, refuse the same initiator,
/// saying why, and nothing is established.
#[test]
#[ignore = "needs root and network namespaces: run by scripts/test-all.sh"]
fn two_iked_authenticate_each_other_with_certificates_and_a_stranger_ca_is_refused() {
    use iked_tests::lab::{Lab, Side};
    use iked_tests::{show_sa, wait_until};
    require_root("two_iked_authenticate_each_other_with_certificates_and_a_stranger_ca_is_refused");
    let a_chain = chain();
    let b_leaf = a_chain
        .intermediate
        .issue(&CertSpec::end_entity("b.ike.test", KeyKind::P256).serial(2));
    let b_chain = Chain {
        root: iked_common::test_pki::Issued {
            cert: a_chain.root.cert.clone(),
            key: a_chain.root.key.clone(),
        },
        intermediate: iked_common::test_pki::Issued {
            cert: a_chain.intermediate.cert.clone(),
            key: a_chain.intermediate.key.clone(),
        },
        leaf: b_leaf,
    };
    let pki = Scratch::new("certstore-pair");
    let (dir_a, dir_b) = (pki.file("a"), pki.file("b"));
    install_store(&dir_a, &a_chain);
    install_store(&dir_b, &b_chain);
    let lab = Lab::new("cst");
    let policy = |certdir: &Path, local: Side, ids: &str| {
        format!(
            "set passive\nset certdir \"{}\"\n\
             ikev2 \"cert\" passive esp local {} peer {} \\\n  \
             ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 {ids}\n",
            certdir.display(),
            local.outer_v4(),
            local.other().outer_v4(),
        )
    };
    // A names itself by FQDN; B takes the DN of its certificate (no srcid).
    let a = Daemon::start_in(
        Some(&lab.a),
        "cst-a",
        &policy(
            &dir_a,
            Side::A,
            "srcid a.ike.test dstid \"C=XX, O=iked test, CN=b.ike.test\"",
        ),
    );
    let mut b = Daemon::start_in(
        Some(&lab.b),
        "cst-b",
        &policy(&dir_b, Side::B, "dstid a.ike.test"),
    );
    a.ikectl_ok(&["initiate", "cert"]);
    let context = || format!("--- a ---\n{}\n--- b ---\n{}", a.log_text(), b.log_text());
    wait_until(
        "the IKE SA established on both sides",
        Duration::from_secs(30),
        || {
            [&a, &b]
                .iter()
                .all(|d| show_sa(d).iter().any(|sa| sa["state"] == "established"))
        },
        context,
    );
    let log_b = b.log_text();
    assert!(
        log_b.contains(
            "policy cert: peer authenticated by certificate C=XX, O=iked test, CN=a.ike.test"
        ),
        "{log_b}"
    );
    let log_a = a.log_text();
    assert!(
        log_a.contains(
            "policy cert: peer authenticated by certificate C=XX, O=iked test, CN=b.ike.test"
        ),
        "{log_a}"
    );
    let sas = show_sa(&a);
    println!("a: {}", serde_json::to_string(&sas[0]).unwrap());

    // B gets CRLs revoking a's certificate: the next IKE_AUTH is refused.
    let crls = dir_b.join("crls");
    std::fs::create_dir_all(&crls).unwrap();
    std::fs::set_permissions(&crls, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        crls.join("root.crl"),
        a_chain.root.crl(&[], 30).to_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(
        crls.join("intermediate.crl"),
        a_chain
            .intermediate
            .crl(&[&a_chain.leaf], 30)
            .to_pem()
            .unwrap(),
    )
    .unwrap();
    b.ikectl_ok(&["reset", "ca"]);
    a.ikectl_ok(&["terminate", "cert"]);
    wait_until(
        "a's IKE SA gone",
        Duration::from_secs(10),
        || show_sa(&a).is_empty(),
        || a.log_text(),
    );
    a.ikectl_ok(&["initiate", "cert"]);
    b.expect_log(
        "policy cert: peer refused: certificate chain refused: certificate revoked",
        Duration::from_secs(20),
    );
    assert!(
        show_sa(&b).iter().all(|sa| sa["state"] != "established"),
        "a revoked peer got an IKE SA: {}",
        b.log_text()
    );
    std::fs::remove_file(crls.join("root.crl")).unwrap();
    std::fs::remove_file(crls.join("intermediate.crl")).unwrap();

    // B now trusts another CA only: the same initiator is refused.
    let stranger =
        iked_common::test_pki::Issued::self_signed(&CertSpec::ca("iked test root", KeyKind::P256));
    std::fs::write(dir_b.join("ca/root.crt"), stranger.cert_pem()).unwrap();
    b.ikectl_ok(&["reset", "ca"]);
    // The refused attempt may still be winding down on a's side.
    let _ = a.ikectl(&["terminate", "cert"]);
    wait_until(
        "a's IKE SA gone",
        Duration::from_secs(10),
        || show_sa(&a).is_empty(),
        || a.log_text(),
    );
    a.ikectl_ok(&["initiate", "cert"]);
    b.expect_log(
        "policy cert: peer refused: certificate chain refused: unable to get local issuer \
         certificate",
        Duration::from_secs(20),
    );
    let log_b = b.log_text();
    let refusal = log_b
        .lines()
        .rfind(|l| l.contains("peer refused"))
        .unwrap_or_default()
        .to_string();
    println!("b: {refusal}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        show_sa(&b).iter().all(|sa| sa["state"] != "established"),
        "{}",
        b.log_text()
    );
}
