//! iked against libreswan 4.10 (pluto, unpacked from Debian's packages by
//! tests/lab/libreswan.sh) in network namespaces on this machine's kernel,
//! at the IKE level: this kernel has XFRM policies but no ESP, and pluto
//! has no userspace ESP, so its own Child SA install fails here ("netlink
//! response for Add SA ...: Protocol not supported (errno 93)", or errno
//! 38 for AES-GCM). As
//! responder it then answers IKE_AUTH with TS_UNACCEPTABLE and keeps the IKE
//! SA; as initiator it drops its IKE SA without a Delete and starts a new
//! one. IKE SAs, their keys and SPIs, IKE SA rekeys from both sides, DELETE
//! from both sides and iked's DPD are proven here (pluto 4.10 schedules its
//! own liveness probes only over an established Child SA: kernel lab); traffic through real ESP, Child
//! SA rekeys, IPv6 and transport mode tunnels in the kernel lab
//! (kernel_lab_libreswan.rs).

use std::time::{Duration, Instant};

use iked_tests::lab::{Connection, Lab, Side, PSK_CBC, PSK_GCM, PSK_V6};
use iked_tests::libreswan::{conn_section, iked_policy, libreswan_keys, Libreswan, SwanMode};
use iked_tests::{iked_keys, show_sa, wait_until, Daemon};
use serde_json::Value;

fn established_ike_spis(iked: &Daemon, name: &str) -> Vec<String> {
    show_sa(iked)
        .iter()
        .filter(|sa| sa["policy"] == name && sa["state"] == "established")
        .map(spis)
        .collect()
}

fn spis(sa: &Value) -> String {
    format!(
        "{}/{}",
        sa["spi_i"].as_str().unwrap_or_default(),
        sa["spi_r"].as_str().unwrap_or_default()
    )
}

struct Pair {
    iked: Daemon,
    pluto: Libreswan,
    conn: Connection,
    _lab: Lab,
}

impl Pair {
    /// iked on side A, pluto on side B with `conn` loaded.
    fn new(
        tag: &str,
        conn: Connection,
        iked_extra: &str,
        pluto_extra: &str,
        iked_settings: &str,
    ) -> Pair {
        iked_tests::require_root(tag);
        let lab = Lab::new(tag);
        let pluto = Libreswan::start(
            &lab,
            Side::B,
            &[conn_section(conn, Side::B, SwanMode::Tunnel, pluto_extra)],
        );
        pluto.add(conn.name);
        // --log-keys: the keys are compared with pluto's.
        let iked = Daemon::start_with(
            Some(&lab.a),
            tag,
            &format!(
                "set passive\n{iked_settings}{}",
                iked_policy(conn, Side::A, SwanMode::Tunnel, iked_extra)
            ),
            &["--log-keys"],
        );
        Pair {
            iked,
            pluto,
            conn,
            _lab: lab,
        }
    }

    fn context(&self) -> String {
        format!(
            "--- iked log ---\n{}\n{}",
            self.iked.log_text(),
            self.pluto.context()
        )
    }

    /// iked initiates; both sides hold the same established IKE SA.
    fn iked_initiates(&self) -> String {
        let out = self.iked.ikectl(&["initiate", self.conn.name]);
        assert!(
            out.status.success(),
            "ikectl initiate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_for_one_shared_ike_sa("the IKE SA on both sides")
    }

    /// Waits until iked and pluto each hold exactly one established IKE SA
    /// of the connection, the same one (same SPIs); returns its SPIs.
    fn wait_for_one_shared_ike_sa(&self, what: &str) -> String {
        self.wait_for_shared_ike_sa(None, what, Duration::from_secs(30))
    }

    fn assert_ike_keys_match(&self) {
        let theirs = libreswan_keys(&self.pluto.log_text());
        let ours = iked_keys(&self.iked.log_text());
        for (their_label, our_label) in [("SK_pi", "Sk_pi secret"), ("SK_pr", "Sk_pr secret")] {
            let theirs = theirs
                .iter()
                .find(|(l, _)| l == their_label)
                .unwrap_or_else(|| panic!("pluto logged no {their_label}\n{}", self.context()));
            let ours = ours
                .iter()
                .find(|(l, _)| l == our_label)
                .unwrap_or_else(|| panic!("iked logged no {our_label}\n{}", self.context()));
            assert!(ours.1.len() >= 32, "{our_label} is {}", ours.1);
            assert_eq!(
                ours.1, theirs.1,
                "{our_label} differs from pluto's {their_label}"
            );
        }
    }
}

/// iked initiates: the IKE SA comes up with equal SPIs and keys on both
/// sides; pluto cannot install the Child SA here and answers with
/// TS_UNACCEPTABLE, which iked reports as the peer's refusal and keeps the
/// IKE SA; iked's DELETE then removes it on both sides.
fn iked_initiates_round(tag: &str, conn: Connection) {
    let pair = Pair::new(tag, conn, "", "", "");
    let spis = pair.iked_initiates();
    println!("{tag}: IKE SA {spis} on iked and libreswan");
    let sas = show_sa(&pair.iked);
    let sa = sas.iter().find(|sa| sa["policy"] == conn.name).unwrap();
    assert_eq!(sa["initiator"], true);
    assert_eq!(sa["peer_id"], "b.ike.test");
    pair.assert_ike_keys_match();
    wait_until(
        "iked to report the peer's refusal of the Child SA",
        Duration::from_secs(10),
        || {
            pair.iked
                .log_text()
                .contains("no Child SA: peer refused it: TS_UNACCEPTABLE")
        },
        || pair.context(),
    );
    let summary = pair.pluto.log_summary();
    assert!(
        // "esp.SPI@" for IPv4, "esp:SPI@" for IPv6.
        summary.contains("netlink response for Add SA esp"),
        "pluto's refusal comes from this kernel's lack of ESP (EPROTONOSUPPORT for CBC, ENOSYS for GCM):\n{summary}"
    );
    let out = pair.iked.ikectl(&["terminate", conn.name]);
    assert!(out.status.success());
    wait_until(
        "the IKE SA gone on both sides after iked's DELETE",
        Duration::from_secs(15),
        || {
            show_sa(&pair.iked)
                .iter()
                .all(|sa| sa["policy"] != conn.name)
                && pair.pluto.established_ike_spis().is_empty()
        },
        || pair.context(),
    );
    assert!(
        pair.pluto
            .log_summary()
            .contains("received Delete SA payload")
            || pair.pluto.log_summary().contains("deleting state"),
        "pluto deleted the IKE SA on iked's request:\n{}",
        pair.pluto.context()
    );
}

#[test]
#[ignore = "needs root, namespaces and libreswan (tests/lab/libreswan.sh): run by .ci/run"]
fn libreswan_psk_cbc_iked_initiates() {
    iked_initiates_round("lsw-cbc-i", PSK_CBC);
}

#[test]
#[ignore = "needs root, namespaces and libreswan (tests/lab/libreswan.sh): run by .ci/run"]
fn libreswan_psk_gcm_iked_initiates() {
    iked_initiates_round("lsw-gcm-i", PSK_GCM);
}

#[test]
#[ignore = "needs root, namespaces and libreswan (tests/lab/libreswan.sh): run by .ci/run"]
fn libreswan_psk_v6_iked_initiates() {
    iked_initiates_round("lsw-v6-i", PSK_V6);
}

/// libreswan initiates: iked answers, the IKE SA iked holds is the one
/// pluto created (same SPIs, same keys). pluto's own Child SA install then
/// fails on this kernel, and pluto drops its IKE SA without a Delete and
/// starts anew; the test stops it by unloading the connection.
fn libreswan_initiates_round(tag: &str, conn: Connection) {
    let pair = Pair::new(tag, conn, "", "", "");
    pair.pluto.initiate(conn.name);
    let mut first = String::new();
    wait_until(
        "iked to hold the IKE SA pluto started",
        Duration::from_secs(30),
        || {
            let Some((_, spis)) = pair.pluto.logged_ike_spis().into_iter().next() else {
                return false;
            };
            first = spis.clone();
            established_ike_spis(&pair.iked, conn.name).contains(&spis)
        },
        || pair.context(),
    );
    println!("{tag}: pluto's first IKE SA {first} is established on iked");
    pair.delete_and_count(tag, &first);
}

impl Pair {
    fn delete_and_count(&self, tag: &str, first: &str) {
        let sa = show_sa(&self.iked)
            .into_iter()
            .find(|sa| spis(sa) == first)
            .expect("the IKE SA");
        assert_eq!(sa["initiator"], false);
        assert_eq!(sa["peer_id"], "b.ike.test");
        self.assert_ike_keys_match();
        let log = self.iked.log_text();
        assert!(
            log.contains("cannot install Child SA"),
            "iked says why its Child SA is not installed:\n{log}"
        );
        self.pluto.delete(self.conn.name);
        let held = established_ike_spis(&self.iked, self.conn.name).len();
        let started = self.pluto.logged_ike_spis().len();
        println!(
            "{tag}: pluto started {started} IKE SA(s) before it was stopped; iked holds {held} (pluto's revivals send no INITIAL_CONTACT)"
        );
    }
}

#[test]
#[ignore = "needs root, namespaces and libreswan (tests/lab/libreswan.sh): run by .ci/run"]
fn libreswan_psk_cbc_libreswan_initiates() {
    libreswan_initiates_round("lsw-cbc-r", PSK_CBC);
}

#[test]
#[ignore = "needs root, namespaces and libreswan (tests/lab/libreswan.sh): run by .ci/run"]
fn libreswan_psk_gcm_libreswan_initiates() {
    libreswan_initiates_round("lsw-gcm-r", PSK_GCM);
}

/// The IKE SA rekeyed by libreswan (whack --rekey-ike), then by iked (its
/// lifetime runs out), each proven by new SPIs, the same on both sides;
/// then libreswan's DELETE removes it from iked.
#[test]
#[ignore = "needs root, namespaces and libreswan (tests/lab/libreswan.sh): run by .ci/run"]
fn libreswan_ike_rekeys_from_both_sides_and_its_delete() {
    let conn = PSK_CBC;
    let pair = Pair::new("lsw-rekey", conn, "ikelifetime 30s", "", "");
    let first = pair.iked_initiates();

    pair.pluto.rekey_ike(conn.name);
    let second = pair.wait_for_one_shared_ike_sa_other_than(&first, "libreswan's IKE SA rekey");
    println!("libreswan rekeyed the IKE SA: {first} -> {second}");

    // iked's ikelifetime (30 s) comes due: it rekeys the IKE SA itself.
    let third = pair.wait_for_one_shared_ike_sa_other_than_within(
        &second,
        "iked's own IKE SA rekey",
        Duration::from_secs(45),
    );
    println!("iked rekeyed the IKE SA: {second} -> {third}");
    let sa = show_sa(&pair.iked)
        .into_iter()
        .find(|sa| spis(sa) == third)
        .expect("the rekeyed IKE SA");
    // The new IKE SA's SPIi is the rekey initiator's: ours.
    assert_eq!(sa["initiator"], true, "{sa}");

    pair.pluto.terminate(conn.name);
    wait_until(
        "iked to remove the IKE SA on libreswan's DELETE",
        Duration::from_secs(15),
        || established_ike_spis(&pair.iked, conn.name).is_empty(),
        || pair.context(),
    );
    assert!(
        pair.iked.log_text().contains("deleted by peer"),
        "{}",
        pair.context()
    );
}

impl Pair {
    fn wait_for_one_shared_ike_sa_other_than(&self, old: &str, what: &str) -> String {
        self.wait_for_one_shared_ike_sa_other_than_within(old, what, Duration::from_secs(30))
    }

    fn wait_for_one_shared_ike_sa_other_than_within(
        &self,
        old: &str,
        what: &str,
        timeout: Duration,
    ) -> String {
        self.wait_for_shared_ike_sa(Some(old), what, timeout)
    }

    /// Waits until iked and pluto each hold exactly one established IKE SA
    /// of the connection, the same one (same SPIs) and, with `old`, not
    /// that one; returns its SPIs.
    fn wait_for_shared_ike_sa(&self, old: Option<&str>, what: &str, timeout: Duration) -> String {
        let mut shared = String::new();
        wait_until(
            what,
            timeout,
            || {
                let ours = established_ike_spis(&self.iked, self.conn.name);
                let theirs = self.pluto.established_ike_spis();
                if ours.len() == 1 && ours == theirs && old != Some(ours[0].as_str()) {
                    shared = ours[0].clone();
                    true
                } else {
                    false
                }
            },
            || self.context(),
        );
        shared
    }
}

/// iked's DPD: iked probes pluto every 2 s and pluto answers; then pluto
/// vanishes without a word and iked's DPD removes the IKE SA.
#[test]
#[ignore = "needs root, namespaces and libreswan (tests/lab/libreswan.sh): run by .ci/run"]
fn iked_dpd_is_answered_by_libreswan_and_reaps_it_once_gone() {
    let conn = PSK_GCM;
    let mut pair = Pair::new("lsw-dpdi", conn, "", "", "set dpd_check_interval 2\n");
    let spis = pair.iked_initiates();
    std::thread::sleep(Duration::from_secs(9));
    assert_eq!(
        established_ike_spis(&pair.iked, conn.name),
        vec![spis.clone()],
        "{}",
        pair.context()
    );
    let answered = pair
        .pluto
        .log_text()
        .lines()
        .filter(|l| l.contains("received an INFORMATIONAL liveness check request"))
        .count();
    println!("pluto answered {answered} DPD probes of iked");
    assert!(answered >= 2, "iked probed pluto:\n{}", pair.context());

    let killed = Instant::now();
    pair.pluto.kill();
    // iked retransmits a probe 5 times (2+4+8+16+32 s) before it gives up.
    wait_until(
        "iked's DPD to remove the IKE SA of the vanished peer",
        Duration::from_secs(90),
        || established_ike_spis(&pair.iked, conn.name).is_empty(),
        || pair.iked.log_text(),
    );
    println!(
        "iked removed the dead peer's IKE SA {:.1} s after pluto was killed",
        killed.elapsed().as_secs_f64()
    );
    assert!(pair
        .iked
        .log_text()
        .contains("peer is dead (no answer to DPD)"));
}
