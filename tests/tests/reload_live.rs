//! Reload with live SAs, iked against iked in the namespace lab (issue 16,
//! "Reload semantics"): a policy added (it starts, its flows are trapped),
//! changed in its flows (its SA is replaced, the peer told) and in its
//! lifetime only (its SA stays), removed (its SA deleted with the peer, its
//! kernel policies gone); a configuration the parser refuses, and one ca
//! refuses at prepare (a private key that does not parse), change nothing
//! in any process. After each step: `ikectl --json show sa` on both sides
//! and the XFRM policies in A's namespace, which must be exactly the
//! configured flows.
//!
//! A child that does not answer the prepare in time (pfkey, frozen) aborts
//! the reload for all, and the daemon keeps serving with the old
//! configuration.
//!
//! This kernel has no ESP: Child SA installs fail and the IKE SAs stay up
//! (interop_strongswan.rs); the kernel lab proves traffic. The steps build
//! on each other: one test.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use iked_common::test_pki::{CertSpec, Chain, KeyKind};
use iked_tests::lab::Lab;
use iked_tests::{
    fresh_netns, require_root, show_sa, wait_until, xfrm_listing, Daemon, Frozen, Scratch,
};

const PSK: &str = "reload-live-psk-0123456789";

/// A's policy "one": unchanged through the test but for one lifetime.
fn one(extra: &str) -> String {
    format!(
        "ikev2 \"one\" active esp from 10.1.0.0/24 to 10.2.0.0/24 \
         local 198.18.0.1 peer 198.18.0.2 {extra} psk \"{PSK}\"\n"
    )
}

/// A's policy "two" with inner networks 10.1.N.0/24 -> 10.2.N.0/24; its
/// own identity lets B tell it from "one".
fn two(net: u8) -> String {
    format!(
        "ikev2 \"two\" active esp from 10.1.{net}.0/24 to 10.2.{net}.0/24 \
         local 198.18.0.1 peer 198.18.0.2 srcid \"two.a.test\" psk \"{PSK}\"\n"
    )
}

/// B answers both: "two" for the identity two.a.test, any of its nets.
fn b_config() -> String {
    format!(
        "set passive\n\
         ikev2 \"one\" passive esp from 10.2.0.0/24 to 10.1.0.0/24 \
         local 198.18.0.2 peer 198.18.0.1 psk \"{PSK}\"\n\
         ikev2 \"two\" passive esp from 10.2.0.0/16 to 10.1.0.0/16 \
         local 198.18.0.2 peer 198.18.0.1 dstid \"two.a.test\" psk \"{PSK}\"\n"
    )
}

/// The established IKE SAs of a daemon: (policy, initiator SPI).
fn established(daemon: &Daemon) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = show_sa(daemon)
        .iter()
        .filter(|sa| sa["state"] == "established")
        .map(|sa| {
            (
                sa["policy"].as_str().unwrap_or_default().to_string(),
                sa["spi_i"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn policies_of(sas: &[(String, String)]) -> Vec<&str> {
    sas.iter().map(|(p, _)| p.as_str()).collect()
}

fn spi_of<'a>(sas: &'a [(String, String)], policy: &str) -> &'a str {
    sas.iter()
        .find(|(p, _)| p == policy)
        .map(|(_, spi)| spi.as_str())
        .unwrap_or_else(|| panic!("no established IKE SA of {policy} in {sas:?}"))
}

/// Our outbound XFRM policies in `ns`: "src A dst B" of each.
fn our_out_policies(ns: &str) -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "xfrm", "policy", "list", "dir", "out"])
        .output()
        .expect("ip xfrm policy");
    let listing = String::from_utf8_lossy(&out.stdout);
    xfrm_listing::ours(&listing)
        .iter()
        .filter_map(|entry| {
            let words: Vec<&str> = entry.split_whitespace().collect();
            match words.as_slice() {
                ["src", src, "dst", dst, ..] => Some(format!("src {src} dst {dst}")),
                _ => None,
            }
        })
        .collect()
}

fn flows(nets: &[u8]) -> BTreeSet<String> {
    nets.iter()
        .map(|n| format!("src 10.1.{n}.0/24 dst 10.2.{n}.0/24"))
        .collect()
}

/// `ikectl reload` on `daemon` after writing `text`: its output.
fn reload(daemon: &Daemon, text: &str) -> std::process::Output {
    daemon.rewrite_config(text);
    daemon.ikectl(&["reload"])
}

fn reload_ok(daemon: &Daemon, text: &str) -> String {
    let out = reload(daemon, text);
    assert!(
        out.status.success(),
        "reload refused: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log_text()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A certdir with a valid CA and certificate but a private key that does
/// not parse: the parent reads it (modes are right), ca refuses it.
fn certdir_with_bad_key(dir: &Path) {
    let chain = Chain::new(
        KeyKind::P256,
        &CertSpec::end_entity("a.ike.test", KeyKind::P256),
    );
    let put = |relative: &str, bytes: &[u8], dir_mode: u32, mode: u32| {
        let path = dir.join(relative);
        let parent = path.parent().unwrap();
        std::fs::create_dir_all(parent).unwrap();
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(dir_mode)).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    put("ca/root.crt", &chain.root.cert_pem(), 0o755, 0o644);
    put("certs/a.ike.test.crt", &chain.leaf.cert_pem(), 0o755, 0o644);
    put(
        "private/local.key",
        b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
        0o700,
        0o600,
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn reload_adds_changes_and_removes_policies_with_live_sas_atomically() {
    require_root("reload_adds_changes_and_removes_policies_with_live_sas_atomically");
    let lab = Lab::new("rl");
    let b = Daemon::start_in(Some(&lab.b), "reload-live-b", &b_config());
    let a = Daemon::start_in(Some(&lab.a), "reload-live-a", &one(""));
    let context = || {
        format!(
            "--- A: {:?}\n{:?}\n--- A log ---\n{}\n--- B log ---\n{}",
            established(&a),
            our_out_policies(&lab.a),
            a.log_text(),
            b.log_text()
        )
    };
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        wait_until(what, Duration::from_secs(30), check, context)
    };
    wait("policy one established", &|| {
        policies_of(&established(&a)) == ["one"] && our_out_policies(&lab.a) == flows(&[0])
    });
    let one_spi = spi_of(&established(&a), "one").to_string();

    // Add: "two" starts at once; "one" keeps its SA.
    let said = reload_ok(&a, &format!("{}{}", one(""), two(2)));
    assert!(said.contains("configuration 2 loaded from"), "{said}");
    wait("policy two added and established on both sides", &|| {
        policies_of(&established(&a)) == ["one", "two"]
            && policies_of(&established(&b)) == ["one", "two"]
            && our_out_policies(&lab.a) == flows(&[0, 2])
    });
    assert_eq!(spi_of(&established(&a), "one"), one_spi, "one's SA stays");
    let two_spi = spi_of(&established(&a), "two").to_string();
    println!(
        "added: {:?}, {:?}",
        established(&a),
        our_out_policies(&lab.a)
    );

    // Change two's flows: its SA is replaced (B deletes the old one), its
    // kernel policies follow; one is untouched.
    reload_ok(&a, &format!("{}{}", one(""), two(3)));
    wait("policy two replaced on both sides", &|| {
        let sas = established(&a);
        policies_of(&sas) == ["one", "two"]
            && spi_of(&sas, "two") != two_spi
            && policies_of(&established(&b)) == ["one", "two"]
            && our_out_policies(&lab.a) == flows(&[0, 3])
    });
    let new_two_spi = spi_of(&established(&a), "two").to_string();
    assert!(
        !established(&b).iter().any(|(_, spi)| *spi == two_spi),
        "B still holds the replaced SA: {:?}",
        established(&b)
    );
    assert_eq!(spi_of(&established(&a), "one"), one_spi);
    println!(
        "changed: {:?}, {:?}",
        established(&a),
        our_out_policies(&lab.a)
    );

    // Change one's lifetime only: nothing its SA was made with; it stays.
    reload_ok(&a, &format!("{}{}", one("lifetime 30m"), two(3)));
    a.ikectl_ok(&["show", "sa"]);
    assert_eq!(
        established(&a),
        vec![
            ("one".to_string(), one_spi.clone()),
            ("two".to_string(), new_two_spi.clone())
        ]
    );

    // Remove two: its SA deleted with the peer, its kernel policies gone.
    reload_ok(&a, &one("lifetime 30m"));
    wait("policy two removed on both sides", &|| {
        policies_of(&established(&a)) == ["one"]
            && policies_of(&established(&b)) == ["one"]
            && our_out_policies(&lab.a) == flows(&[0])
    });
    assert_eq!(spi_of(&established(&a), "one"), one_spi);
    println!(
        "removed: {:?}, {:?}",
        established(&a),
        our_out_policies(&lab.a)
    );
    let before = (established(&a), our_out_policies(&lab.a));

    // A configuration the parser refuses: file:line:col, nothing changes.
    let out = reload(&a, &format!("{}{}ikev2 \"bad\" bogus\n", one(""), two(4)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let at = format!("{}:3:", a.config.display());
    assert!(
        stderr.contains("reload failed, keeping the current configuration") && stderr.contains(&at),
        "{stderr}"
    );
    println!("refused by the parser: {}", stderr.trim());

    // A configuration ca refuses at prepare: ikev2 and pfkey had prepared
    // it and drop it; nothing of it (the new policy's trap, two's) is in
    // force anywhere.
    let scratch = Scratch::new("reload-live-certdir");
    let certdir = scratch.file("pki");
    certdir_with_bad_key(&certdir);
    let with_cert = format!(
        "set certdir \"{}\"\n{}{}\
         ikev2 \"cert\" passive esp from 10.1.9.0/24 to 10.2.9.0/24 \
         local 198.18.0.1 peer 198.18.0.9 dstid \"b.ike.test\"\n",
        certdir.display(),
        one(""),
        two(4)
    );
    let out = reload(&a, &with_cert);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("reload failed, keeping the current configuration")
            && stderr.contains("ca refused it")
            && stderr.contains("local.key"),
        "{stderr}"
    );
    println!("refused by ca: {}", stderr.trim());
    for role in ["ikev2", "pfkey"] {
        let dropped = a.log_text().lines().any(|l| {
            l.contains(&format!("{role}: configuration"))
                && l.contains("dropped: the reload was aborted")
        });
        assert!(
            dropped,
            "{role} did not drop the prepared configuration\n{}",
            a.log_text()
        );
    }
    // Give a wrongly committed configuration time to show.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!((established(&a), our_out_policies(&lab.a)), before);
    assert_eq!(policies_of(&established(&b)), ["one"]);

    // And a good reload after the refusals works.
    reload_ok(&a, &format!("{}{}", one(""), two(5)));
    wait("policy two back after the refusals", &|| {
        policies_of(&established(&a)) == ["one", "two"]
            && our_out_policies(&lab.a) == flows(&[0, 5])
    });
    assert_eq!(spi_of(&established(&a), "one"), one_spi);
}

/// A passive policy whose trap is installed: the XFRM policies show
/// which configuration pfkey and ikev2 have in force.
fn trapped(net: u8) -> String {
    format!(
        "ikev2 \"t{net}\" passive esp from 10.1.{net}.0/24 to 10.2.{net}.0/24 \
         local 198.18.0.1 peer 198.18.0.2 psk \"{PSK}\"\n"
    )
}

#[test]
#[ignore = "needs root, network namespaces and a cgroup freezer: run by .ci/run"]
fn a_child_that_does_not_answer_the_prepare_aborts_the_reload_for_all() {
    require_root("a_child_that_does_not_answer_the_prepare_aborts_the_reload_for_all");
    const NS: &str = "iked-rl-silent";
    fresh_netns(NS);
    let mut daemon = Daemon::start_in(
        Some(NS),
        "reload-silent",
        &format!("set passive\n{}", trapped(1)),
    );
    wait_until(
        "the trap of configuration 1",
        Duration::from_secs(10),
        || our_out_policies(NS) == flows(&[1]),
        || format!("{:?}\n{}", our_out_policies(NS), daemon.log_text()),
    );
    let pfkey = daemon.children()["pfkey"];
    let frozen = Frozen::freeze(pfkey, "reload-silent");
    let started = std::time::Instant::now();
    let out = reload(&daemon, &format!("set passive\n{}", trapped(2)));
    let waited = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("reload failed, keeping the current configuration: configuration 2")
            && stderr.contains("pfkey did not answer within 5 s"),
        "{stderr}"
    );
    println!("with pfkey frozen, after {waited:?}: {}", stderr.trim());
    drop(frozen);
    // ikev2 had prepared it and dropped it: its trap never comes.
    daemon.expect_log(
        "ikev2: configuration 2 dropped: the reload was aborted",
        Duration::from_secs(5),
    );
    // pfkey, thawed, reads the prepare and then the abort.
    daemon.expect_log(
        "pfkey: configuration 2 dropped: the reload was aborted",
        Duration::from_secs(5),
    );
    assert!(daemon.is_running(), "{}", daemon.log_text());
    assert_eq!(our_out_policies(NS), flows(&[1]), "{}", daemon.log_text());
    // The next reload goes through, with a number the aborted one never used.
    let said = reload_ok(&daemon, &format!("set passive\n{}", trapped(3)));
    assert!(said.contains("configuration 3 loaded"), "{said}");
    wait_until(
        "the trap of configuration 3 alone",
        Duration::from_secs(10),
        || our_out_policies(NS) == flows(&[3]),
        || format!("{:?}\n{}", our_out_policies(NS), daemon.log_text()),
    );
    daemon.stop_within(Duration::from_secs(10));
    let _ = Command::new("ip").args(["netns", "del", NS]).status();
}
