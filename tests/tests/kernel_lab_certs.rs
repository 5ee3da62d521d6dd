//! A certificate-authenticated tunnel carrying traffic through real ESP,
//! in the kernel lab (tests/lab/kernel-lab.sh; issue 13): iked on side A
//! and strongSwan (kernel XFRM) on side B authenticate with ECDSA P-256
//! certificates of one test CA; iked starts the tunnel, a ping crosses it
//! as ESP on the wire; then strongSwan starts it again after `ikectl
//! terminate`, and the ping crosses again. Shaped after
//! kernel_lab_tunnels.rs.
//!
//! On the build machine the test boots the VM and runs itself inside it,
//! where IKED_KERNEL_LAB is set.

#[path = "support/certs.rs"]
mod certs;

use std::time::Duration;

use iked_common::test_pki::KeyKind;
use iked_tests::certlab::{CertConnection, CertPair, ECDSA256};
use iked_tests::lab::{assert_esp_and_ike_only, Capture, Lab, Side, SwanKernel};
use iked_tests::{in_kernel_lab, run_in_kernel_lab, show_sa, wait_until};
use serde_json::Value;

use certs::TwoLevel;

fn modprobe() {
    iked_tests::lab::modprobe(&[
        "esp4",
        "xfrm_user",
        "xfrm4_tunnel",
        "veth",
        "aes",
        "gcm",
        "sha256",
    ]);
}

fn installed_children(pair: &CertPair, name: &str) -> Vec<Value> {
    show_sa(&pair.iked)
        .into_iter()
        .filter(|sa| sa["policy"] == name && sa["state"] == "established")
        .flat_map(|sa| sa["children"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["installed"] == true)
        .collect()
}

/// `ip xfrm state list` in `side`'s namespace.
fn xfrm_states(pair: &CertPair, side: Side) -> String {
    let out = pair.lab.exec(side, &["ip", "xfrm", "state", "list"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the captures keep: all but ARP and ICMPv6 (neighbour discovery).
const CAPTURE_FILTER: &[&str] = &["not", "arp", "and", "not", "icmp6"];

/// Five pings from A's inner address to B's: all answered, each side put
/// at least five ESP packets on its veth and nothing else but IKE.
fn assert_ping_goes_through_esp(pair: &CertPair, conn: CertConnection) {
    let lab: &Lab = &pair.lab;
    let captures = [
        Capture::start(lab, Side::A, CAPTURE_FILTER),
        Capture::start(lab, Side::B, CAPTURE_FILTER),
    ];
    let src = conn.inner_address(Side::A);
    let dst = conn.inner_address(Side::B);
    let out = lab.exec(
        Side::A,
        &["ping", "-c", "5", "-i", "0.2", "-W", "1", "-I", &src, &dst],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let received: u32 = text
        .lines()
        .find_map(|l| {
            l.split(", ")
                .find_map(|p| p.strip_suffix(" received")?.parse().ok())
        })
        .unwrap_or(0);
    println!("{}", text.trim());
    assert_eq!(
        received,
        5,
        "pings through the tunnel:\n{text}\n{}",
        pair.context()
    );
    for (side, capture) in [Side::A, Side::B].into_iter().zip(captures) {
        let wire = capture.stop();
        assert_esp_and_ike_only(side, &wire, 5, "5 pings");
    }
    let children = installed_children(pair, conn.name);
    let counted = |c: &Value, key: &str| c[key].as_u64().is_some_and(|n| n > 0);
    assert!(
        children
            .iter()
            .any(|c| counted(c, "bytes_in") && counted(c, "bytes_out")),
        "no Child SA of iked counts the pings: {children:#?}\n{}",
        pair.context()
    );
}

fn wait_installed_on_both(pair: &CertPair, conn: CertConnection) {
    wait_until(
        "installed Child SAs on iked and strongSwan",
        Duration::from_secs(30),
        || {
            !installed_children(pair, conn.name).is_empty()
                && pair.swan.list_sas().contains("INSTALLED")
        },
        || pair.context(),
    );
}

#[test]
#[ignore = "needs root, strongSwan and the kernel lab (qemu): run by scripts/test-all.sh"]
fn certificate_tunnel_to_strongswan_carries_a_ping_both_ways_started() {
    if !in_kernel_lab() {
        return run_in_kernel_lab(
            "certificate_tunnel_to_strongswan_carries_a_ping_both_ways_started",
            400,
        );
    }
    modprobe();
    let conn = ECDSA256;
    let pki = TwoLevel::new(KeyKind::P256);
    // iked and strongSwan (install_routes) route their own tunnels.
    let lab = Lab::with_hand_routes("ci13-kc", &[]);
    let pair = CertPair::start_in(
        lab,
        SwanKernel::Netlink,
        "ci13-kc",
        conn,
        &pki.side(Side::A),
        &pki.side(Side::B),
    );

    // iked starts it.
    pair.initiate(conn, true);
    wait_installed_on_both(&pair, conn);
    let log = pair.swan.log_text();
    let verified = log
        .lines()
        .find(|l| l.contains("authentication of 'a.ike.test' with"))
        .unwrap_or_default();
    println!("strongSwan: {}", verified.trim());
    assert!(verified.contains("successful"), "{}", pair.context());
    let states = xfrm_states(&pair, Side::A);
    assert_eq!(
        states.matches("proto esp").count(),
        2,
        "two ESP SAs in A's kernel:\n{states}"
    );
    assert_ping_goes_through_esp(&pair, conn);

    // strongSwan starts it again.
    pair.iked.ikectl_ok(&["terminate", conn.name]);
    wait_until(
        "the SA gone on both sides",
        Duration::from_secs(20),
        || show_sa(&pair.iked).is_empty() && !pair.swan.list_sas().contains(conn.name),
        || pair.context(),
    );
    pair.initiate(conn, false);
    wait_installed_on_both(&pair, conn);
    let sas = show_sa(&pair.iked);
    assert_eq!(sas[0]["initiator"], false, "{sas:?}");
    assert_eq!(sas[0]["peer_id"], "b.ike.test", "{sas:?}");
    assert_ping_goes_through_esp(&pair, conn);
}

/// On a kernel that can hold ESP SAs, a refused certificate installs
/// nothing: strongSwan (kernel XFRM) initiates with a certificate that
/// expired yesterday; iked refuses it with the reason, and neither
/// kernel holds an SA. The same lab then brings the tunnel up with a valid
/// certificate, so the emptiness is the refusal's doing, not the kernel's.
#[test]
#[ignore = "needs root, strongSwan and the kernel lab (qemu): run by scripts/test-all.sh"]
fn an_expired_certificate_installs_nothing_in_a_kernel_with_esp() {
    if !in_kernel_lab() {
        return run_in_kernel_lab(
            "an_expired_certificate_installs_nothing_in_a_kernel_with_esp",
            400,
        );
    }
    modprobe();
    let conn = ECDSA256;
    let pki = TwoLevel::new(KeyKind::P256);
    let expired = pki.root.issue(
        &certs::gateway_spec(Side::B, KeyKind::P256)
            .valid_days(-30, -1)
            .serial(7),
    );
    {
        let pair = CertPair::start_in(
            Lab::with_hand_routes("ci13-kx", &[]),
            SwanKernel::Netlink,
            "ci13-kx",
            conn,
            &pki.side(Side::A),
            &certs::gateway(&[&pki.root], &[], &expired),
        );
        pair.swan_initiation_fails(conn);
        let reason = "certificate has expired";
        wait_until(
            "iked's refusal",
            Duration::from_secs(30),
            || pair.iked.log_text().contains(reason),
            || pair.context(),
        );
        let log = pair.iked.log_text();
        let line = log.lines().find(|l| l.contains(reason)).unwrap_or_default();
        println!("iked: {}", line.trim());
        for side in [Side::A, Side::B] {
            let s = xfrm_states(&pair, side);
            assert!(s.trim().is_empty(), "SAs in {side:?}'s kernel:\n{s}");
        }
        assert!(show_sa(&pair.iked).is_empty(), "{}", pair.context());
        println!("after the refusal: no SA in either kernel, none in ikectl show sa");
    }
    // The control: the valid certificate, the same setup.
    let pair = CertPair::start_in(
        Lab::with_hand_routes("ci13-kx", &[]),
        SwanKernel::Netlink,
        "ci13-kx",
        conn,
        &pki.side(Side::A),
        &pki.side(Side::B),
    );
    pair.initiate(conn, false);
    wait_installed_on_both(&pair, conn);
    let s = xfrm_states(&pair, Side::A);
    assert_eq!(s.matches("proto esp").count(), 2, "{s}");
    println!("with the valid certificate: 2 ESP SAs in side A's kernel");
}
