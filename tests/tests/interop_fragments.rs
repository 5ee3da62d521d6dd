//! IKE fragmentation (RFC 7383) against strongSwan 5.9.8 with PSK: an
//! IKE_AUTH with PSK is small, so strongSwan is told to fragment above
//! 200 bytes (`charon.fragment_size`); iked must reassemble strongSwan's
//! fragments, as initiator (the IKE_AUTH response) and as responder (the
//! request), and both must see the other announce fragmentation. The
//! certificate-sized case over a 1280-byte path (iked fragmenting too) is
//! in the certificate interop tests.

use std::time::Duration;

use iked_tests::lab::{Capture, Connection, Lab, Side, Strongswan, SwanKernel, PSK_CBC, PSK_GCM};
use iked_tests::{show_sa, wait_until, Daemon};
use serde_json::Value;

fn established_with_child(sas: &[Value], name: &str) -> bool {
    sas.iter().any(|sa| {
        sa["policy"] == name
            && sa["state"] == "established"
            && sa["children"].as_array().is_some_and(|c| !c.is_empty())
    })
}

/// strongSwan's IKE fragments above this many bytes.
const SWAN_FRAGMENT_SIZE: usize = 200;

/// A pcap filter for IKE Fragment messages: the IKE header's Next Payload
/// (octet 16) is SKF (53), on port 500 right after the UDP header, on port
/// 4500 after the four-octet non-ESP marker (RFC 3948 §2.2).
const SKF_FILTER: &[&str] =
    &["(udp port 500 and udp[24] = 53) or (udp port 4500 and udp[8:4] = 0 and udp[28] = 53)"];

/// Brings `conn` up and returns (iked's log, strongSwan's log, the IKE
/// Fragment messages strongSwan sent as tcpdump saw them on its veth).
fn bring_up(
    tag: &str,
    conn: Connection,
    iked_initiates: bool,
    iked_settings: &str,
) -> (String, String, String) {
    let lab = Lab::new(tag);
    let swan = Strongswan::start_with_settings(
        &lab,
        Side::B,
        SwanKernel::Libipsec,
        &[conn],
        iked_tests::lab::SwanRetransmission::Lab,
        &format!("    fragment_size = {SWAN_FRAGMENT_SIZE}\n"),
    );
    let policy = conn.iked_policy(Side::A, false);
    let iked = Daemon::start_with(
        Some(&lab.a),
        tag,
        &format!("set passive\n{iked_settings}{policy}"),
        &["-v"],
    );
    let context = || {
        format!(
            "--- iked log ---\n{}\n--- charon log ---\n{}",
            iked.log_text(),
            swan.log_text()
        )
    };
    let capture = Capture::start(&lab, Side::B, SKF_FILTER);
    if iked_initiates {
        let out = iked.ikectl(&["initiate", conn.name]);
        assert!(out.status.success(), "ikectl initiate failed");
    } else {
        let out = swan.swanctl(&["--initiate", "--child", conn.name, "--timeout", "30"]);
        assert!(
            out.status.success(),
            "swanctl --initiate: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            context()
        );
    }
    wait_until(
        "IKE and Child SA established on both sides",
        Duration::from_secs(30),
        || {
            let sas = swan.list_sas();
            established_with_child(&show_sa(&iked), conn.name) && sas.contains("ESTABLISHED")
        },
        context,
    );
    (iked.log_text(), swan.log_text(), capture.stop())
}

fn round(tag: &str, conn: Connection, iked_initiates: bool, iked_settings: &str) {
    let (iked_log, swan_log, wire) = bring_up(tag, conn, iked_initiates, iked_settings);
    let on_wire: Vec<&str> = wire.lines().filter(|l| l.contains(" > ")).collect();
    println!(
        "strongSwan's IKE fragments on the wire:\n{}",
        on_wire.join("\n")
    );
    assert!(on_wire.len() >= 2, "no fragments seen on the wire: {wire}");
    let context = || format!("--- iked log ---\n{iked_log}\n--- charon log ---\n{swan_log}");
    let (ours, theirs) = if iked_initiates {
        ("response", "request")
    } else {
        ("request", "response")
    };
    let reassembled: Vec<&str> = iked_log
        .lines()
        .filter(|l| l.contains(&format!("IKE_AUTH {ours} 1 reassembled from")))
        .collect();
    println!("iked: {reassembled:?}");
    assert!(!reassembled.is_empty(), "{}", context());
    let split: Vec<&str> = swan_log
        .lines()
        .filter(|l| l.contains("splitting IKE message"))
        .collect();
    println!("strongSwan: {split:?}");
    assert!(!split.is_empty(), "{}", context());
    // What iked sent: whole (its PSK IKE_AUTH fits 576 bytes) or in
    // fragments strongSwan put together.
    let fragments_sent = iked_log
        .lines()
        .any(|l| l.contains(&format!("IKE_AUTH {theirs} 1 (")) && l.contains("fragments"));
    if fragments_sent {
        assert!(
            swan_log.contains("reassembled fragmented IKE message"),
            "{}",
            context()
        );
    }
    println!("iked sent its IKE_AUTH {theirs} in fragments: {fragments_sent}");
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by .ci/run"]
fn strongswan_fragments_are_reassembled_iked_initiating_cbc() {
    round("frg-cbc-i", PSK_CBC, true, "");
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by .ci/run"]
fn strongswan_fragments_are_reassembled_strongswan_initiating_gcm() {
    round("frg-gcm-r", PSK_GCM, false, "set fragment_size 576\n");
}

#[test]
#[ignore = "needs root, namespaces and strongSwan: run by .ci/run"]
fn with_nofragmentation_strongswan_sends_its_ike_auth_whole() {
    let (iked_log, swan_log, wire) = bring_up("frg-off", PSK_GCM, false, "set nofragmentation\n");
    assert!(!wire.contains(" > "), "fragments on the wire: {wire}");
    assert!(iked_log.contains("IKE fragmentation off"), "{iked_log}");
    assert!(
        !swan_log.contains("splitting IKE message"),
        "strongSwan fragmented though iked did not announce it:\n{swan_log}"
    );
    assert!(!iked_log.contains("reassembled from"), "{iked_log}");
}
