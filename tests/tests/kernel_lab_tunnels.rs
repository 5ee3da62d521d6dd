//! Tunnels carrying traffic through real ESP, in the kernel lab (Debian's
//! stock kernel under qemu, tests/lab/kernel-lab.sh): iked to iked and iked
//! to strongSwan (kernel XFRM) in both directions, a Child SA rekeyed under
//! a running ping, and a tunnel started by the kernel's ACQUIRE. iked and
//! strongSwan route their tunnels themselves: no side running either gets
//! a hand-added route (`Lab::with_hand_routes`), except where traffic must
//! reach a trap policy before any Child SA (and so any route of ours)
//! exists.
//!
//! On the build machine each test boots the VM and runs itself inside it,
//! where IKED_KERNEL_LAB is set.

use std::time::Duration;

use iked_tests::lab::{
    assert_esp_and_ike_only, Capture, Connection, Lab, Side, Strongswan, SwanKernel, PSK_CAMELLIA,
    PSK_GCM,
};
use iked_tests::{in_kernel_lab, run_in_kernel_lab, show_sa, wait_until, Daemon};
use serde_json::Value;

fn installed_children(daemon: &Daemon, name: &str) -> Vec<Value> {
    show_sa(daemon)
        .into_iter()
        .filter(|sa| sa["policy"] == name && sa["state"] == "established")
        .flat_map(|sa| sa["children"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["installed"] == true)
        .collect()
}

/// What the captures on each veth keep: all but ARP and ICMPv6 (neighbour
/// discovery).
const CAPTURE_FILTER: &[&str] = &["not", "arp", "and", "not", "icmp6"];

fn ping(lab: &Lab, conn: Connection, count: u32, interval: &str) -> (u32, String) {
    ping_from(lab, Side::A, conn, count, interval, true)
}

fn inner_address(side: Side, conn: Connection) -> String {
    format!("10.{}.{}.1", side.inner_net(), conn.inner)
}

/// Pings the other side's inner address from `from`; with `bind_source`
/// from `from`'s inner address (`-I`), else from whatever source the
/// routes give.
fn ping_from(
    lab: &Lab,
    from: Side,
    conn: Connection,
    count: u32,
    interval: &str,
    bind_source: bool,
) -> (u32, String) {
    let src = inner_address(from, conn);
    let dst = inner_address(from.other(), conn);
    let count = count.to_string();
    let mut args = vec!["ping", "-c", &count, "-i", interval, "-W", "1"];
    if bind_source {
        args.extend(["-I", &src]);
    }
    args.push(&dst);
    let out = lab.exec(from, &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let received = text
        .lines()
        .find_map(|l| {
            l.split(", ")
                .find_map(|p| p.strip_suffix(" received")?.parse().ok())
        })
        .unwrap_or(0);
    (received, text)
}

/// Pings through the tunnel, checks the wire carries only ESP (and IKE) and
/// that side A's `show sa` counts the traffic on its Child SA.
fn assert_ping_goes_through_esp(
    lab: &Lab,
    a: &Daemon,
    conn: Connection,
    context: &dyn Fn() -> String,
) {
    assert_ping_from_goes_through_esp(lab, a, conn, Side::A, true, context)
}

/// The same, with the ping sent from side `from`, from its inner address
/// (`bind_source`) or from the source its routes give: each side must put
/// at least five ESP packets on the wire (echo requests one way, replies
/// the other) and nothing in clear.
fn assert_ping_from_goes_through_esp(
    lab: &Lab,
    a: &Daemon,
    conn: Connection,
    from: Side,
    bind_source: bool,
    context: &dyn Fn() -> String,
) {
    let captures = [
        Capture::start(lab, Side::A, CAPTURE_FILTER),
        Capture::start(lab, Side::B, CAPTURE_FILTER),
    ];
    let (received, text) = ping_from(lab, from, conn, 5, "0.2", bind_source);
    assert_eq!(
        received,
        5,
        "pings through the tunnel:\n{text}\n{}",
        context()
    );
    for (side, capture) in [Side::A, Side::B].into_iter().zip(captures) {
        let wire = capture.stop();
        assert_esp_and_ike_only(side, &wire, 5, &format!("5 pings from {from:?}"));
    }
    // The kernel counted the echo requests out and the replies in.
    let children = installed_children(a, conn.name);
    let counted = |c: &Value, key: &str| c[key].as_u64().is_some_and(|n| n > 0);
    assert!(
        children
            .iter()
            .any(|c| counted(c, "bytes_in") && counted(c, "bytes_out")),
        "no Child SA of side A shows bytes in and out after the pings: {children:#?}\n{}",
        context()
    );
}

/// iked's log and strongSwan's SAs, for a failure's message.
fn iked_and_swan(a: &Daemon, swan: &Strongswan) -> String {
    format!(
        "--- iked ---\n{}\n--- strongSwan ---\n{}",
        a.log_text(),
        swan.list_sas()
    )
}

/// strongSwan initiates `conn`'s Child SA (and its IKE SA) with iked.
fn swan_initiates(swan: &Strongswan, conn: Connection, a: &Daemon) {
    let out = swan.swanctl(&["--initiate", "--child", conn.name, "--timeout", "30"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        a.log_text()
    );
}

/// Waits until iked and strongSwan both show `conn`'s Child SA installed.
fn wait_installed_on_both(
    a: &Daemon,
    swan: &Strongswan,
    conn: Connection,
    context: &dyn Fn() -> String,
) {
    wait_until(
        "installed Child SAs on iked and strongSwan",
        Duration::from_secs(30),
        || !installed_children(a, conn.name).is_empty() && swan.list_sas().contains("INSTALLED"),
        context,
    );
}

fn iked_policy(conn: Connection, side: Side, active: bool, extra: &str) -> String {
    conn.iked_policy(side, active)
        .replace(" psk ", &format!(" {extra} psk "))
}

fn modprobe() {
    iked_tests::lab::modprobe(&[
        "esp4",
        "esp6",
        "xfrm_user",
        "xfrm4_tunnel",
        "veth",
        "aes",
        "gcm",
        "chacha20poly1305",
        "sha256",
        "camellia_generic",
    ]);
}

fn iked_to_iked(initiator: Side) {
    modprobe();
    let conn = PSK_GCM;
    // Both sides route their own tunnels.
    let lab = Lab::with_hand_routes("t", &[]);
    let a = Daemon::start_in(
        Some(&lab.a),
        "a",
        &format!("set passive\n{}", iked_policy(conn, Side::A, false, "")),
    );
    let b = Daemon::start_in(
        Some(&lab.b),
        "b",
        &format!("set passive\n{}", iked_policy(conn, Side::B, false, "")),
    );
    let (starter, other) = if initiator == Side::A {
        (&a, &b)
    } else {
        (&b, &a)
    };
    starter.ikectl_ok(&["initiate", conn.name]);
    let context = || format!("--- A ---\n{}\n--- B ---\n{}", a.log_text(), b.log_text());
    wait_until(
        "installed Child SAs on both iked",
        Duration::from_secs(30),
        || {
            !installed_children(starter, conn.name).is_empty()
                && !installed_children(other, conn.name).is_empty()
        },
        context,
    );
    assert_ping_goes_through_esp(&lab, &a, conn, &context);
}

fn iked_to_strongswan(iked_initiates: bool) {
    modprobe();
    let conn = PSK_GCM;
    // iked and strongSwan (install_routes) route their own tunnels.
    let lab = Lab::with_hand_routes("s", &[]);
    let swan = Strongswan::start(&lab, Side::B, SwanKernel::Netlink, &[conn]);
    let a = Daemon::start_in(
        Some(&lab.a),
        "a",
        &format!("set passive\n{}", iked_policy(conn, Side::A, false, "")),
    );
    if iked_initiates {
        a.ikectl_ok(&["initiate", conn.name]);
    } else {
        swan_initiates(&swan, conn, &a);
    }
    let context = || iked_and_swan(&a, &swan);
    wait_installed_on_both(&a, &swan, conn, &context);
    assert_ping_goes_through_esp(&lab, &a, conn, &context);
}

#[test]
#[ignore = "needs root and the kernel lab (qemu): run by .ci/run"]
fn iked_to_iked_a_initiates() {
    if !in_kernel_lab() {
        return run_in_kernel_lab("iked_to_iked_a_initiates", 300);
    }
    iked_to_iked(Side::A);
}

#[test]
#[ignore = "needs root and the kernel lab (qemu): run by .ci/run"]
fn iked_to_iked_b_initiates() {
    if !in_kernel_lab() {
        return run_in_kernel_lab("iked_to_iked_b_initiates", 300);
    }
    iked_to_iked(Side::B);
}

#[test]
#[ignore = "needs root, strongSwan and the kernel lab (qemu): run by .ci/run"]
fn iked_initiates_to_strongswan() {
    if !in_kernel_lab() {
        return run_in_kernel_lab("iked_initiates_to_strongswan", 300);
    }
    iked_to_strongswan(true);
}

#[test]
#[ignore = "needs root, strongSwan and the kernel lab (qemu): run by .ci/run"]
fn strongswan_initiates_to_iked() {
    if !in_kernel_lab() {
        return run_in_kernel_lab("strongswan_initiates_to_iked", 300);
    }
    iked_to_strongswan(false);
}

/// A Child SA with a 20 s lifetime is rekeyed while a ping runs every
/// 0.2 s; at most one packet may be lost.
#[test]
#[ignore = "needs root and the kernel lab (qemu): run by .ci/run"]
fn child_rekey_under_ping_loses_at_most_one_packet() {
    if !in_kernel_lab() {
        return run_in_kernel_lab("child_rekey_under_ping_loses_at_most_one_packet", 400);
    }
    modprobe();
    let conn = PSK_GCM;
    let lab = Lab::with_hand_routes("k", &[]);
    let a = Daemon::start_in(
        Some(&lab.a),
        "a",
        &format!(
            "set passive\n{}",
            iked_policy(conn, Side::A, false, "lifetime 20s")
        ),
    );
    let b = Daemon::start_in(
        Some(&lab.b),
        "b",
        &format!(
            "set passive\n{}",
            iked_policy(conn, Side::B, false, "lifetime 20s")
        ),
    );
    assert!(a.ikectl(&["initiate", conn.name]).status.success());
    let context = || format!("--- A ---\n{}\n--- B ---\n{}", a.log_text(), b.log_text());
    wait_until(
        "installed Child SAs",
        Duration::from_secs(30),
        || {
            !installed_children(&a, conn.name).is_empty()
                && !installed_children(&b, conn.name).is_empty()
        },
        context,
    );
    let first_spi = installed_children(&a, conn.name)[0]["spi_in"].clone();
    // 35 s of pings every 0.2 s: the 20 s lifetime forces a rekey in between.
    let (received, text) = ping(&lab, conn, 175, "0.2");
    let spis: Vec<Value> = installed_children(&a, conn.name)
        .iter()
        .map(|c| c["spi_in"].clone())
        .collect();
    assert!(
        !spis.contains(&first_spi),
        "the Child SA was rekeyed (SPI {first_spi} gone, now {spis:?})\n{}",
        context()
    );
    assert!(
        received >= 174,
        "lost {} of 175 pings during the rekey:\n{text}",
        175 - received
    );
}

/// Side B is passive; side A does not start by itself either (`set
/// passive`), but its policy is in the kernel: the first packet makes the
/// kernel ACQUIRE an SA, iked negotiates it, and the next ping passes.
#[test]
#[ignore = "needs root and the kernel lab (qemu): run by .ci/run"]
fn traffic_starts_the_tunnel_through_acquire() {
    if !in_kernel_lab() {
        return run_in_kernel_lab("traffic_starts_the_tunnel_through_acquire", 300);
    }
    modprobe();
    let conn = PSK_GCM;
    // A's first packet must reach its trap policy before any Child SA (and
    // so any route of ours) exists: A keeps its hand-added route. B answers
    // through the route iked installs with the Child SA.
    let lab = Lab::with_hand_routes("q", &[Side::A]);
    let a = Daemon::start_in(
        Some(&lab.a),
        "a",
        &format!("set passive\n{}", iked_policy(conn, Side::A, true, "")),
    );
    let b = Daemon::start_in(
        Some(&lab.b),
        "b",
        &format!("set passive\n{}", iked_policy(conn, Side::B, false, "")),
    );
    let context = || format!("--- A ---\n{}\n--- B ---\n{}", a.log_text(), b.log_text());
    assert!(
        show_sa(&a).is_empty(),
        "no SA before traffic\n{}",
        context()
    );
    // The first packets trigger the ACQUIRE and may be dropped meanwhile.
    let _ = ping(&lab, conn, 3, "1");
    wait_until(
        "a tunnel started by ACQUIRE",
        Duration::from_secs(30),
        || {
            !installed_children(&a, conn.name).is_empty()
                && !installed_children(&b, conn.name).is_empty()
        },
        context,
    );
    assert!(a.log_text().contains("ACQUIRE"), "{}", context());
    let (received, text) = ping(&lab, conn, 1, "0.2");
    assert_eq!(
        received,
        1,
        "the first ping after the tunnel came up:\n{text}\n{}",
        context()
    );
}

/// Waits until side A's kernel holds iked's outbound trap policy for
/// `conn`'s flow (installed by pfkey right after the configuration).
fn wait_for_trap(lab: &Lab, a: &Daemon, conn: Connection) {
    let remote = conn.local_ts(Side::B);
    wait_until(
        "iked's trap policy in side A's kernel",
        Duration::from_secs(15),
        || {
            let out = lab.exec(Side::A, &["ip", "xfrm", "policy", "list", "dir", "out"]);
            String::from_utf8_lossy(&out.stdout).contains(&format!("dst {remote}"))
        },
        || a.log_text(),
    );
}

/// Issue 17: with a passive policy loaded and no SA, a ping between the
/// protected networks does not leave the gateway in clear (the trap holds
/// it back); once strongSwan has initiated, the same ping passes, in ESP.
/// The Child SA is Camellia-256-CBC with HMAC-SHA2-256 (and the IKE SA
/// too), installed as the kernel's cbc(camellia).
#[test]
#[ignore = "needs root, strongSwan and the kernel lab (qemu): run by .ci/run"]
fn passive_policy_sends_nothing_in_clear_until_strongswan_initiates_camellia() {
    if !in_kernel_lab() {
        return run_in_kernel_lab(
            "passive_policy_sends_nothing_in_clear_until_strongswan_initiates_camellia",
            400,
        );
    }
    modprobe();
    let conn = PSK_CAMELLIA;
    let lab = Lab::new("n");
    let swan = Strongswan::start(&lab, Side::B, SwanKernel::Netlink, &[conn]);
    let a = Daemon::start_in(
        Some(&lab.a),
        "a",
        &format!("set passive\n{}", iked_policy(conn, Side::A, false, "")),
    );
    wait_for_trap(&lab, &a, conn);
    assert!(show_sa(&a).is_empty(), "no SA yet\n{}", a.log_text());

    let capture = Capture::start(&lab, Side::A, CAPTURE_FILTER);
    let (received, text) = ping(&lab, conn, 3, "0.3");
    let wire = capture.stop();
    assert_eq!(received, 0, "nothing answers without a tunnel:\n{text}");
    let icmp: Vec<&str> = wire.lines().filter(|l| l.contains("ICMP")).collect();
    assert!(
        icmp.is_empty(),
        "ICMP between the protected networks left side A in clear:\n{icmp:#?}\nall:\n{wire}"
    );
    println!(
        "without an SA: {received} of 3 pings answered, {} ICMP packets on the wire",
        icmp.len()
    );

    swan_initiates(&swan, conn, &a);
    let context = || iked_and_swan(&a, &swan);
    wait_installed_on_both(&a, &swan, conn, &context);
    let children = installed_children(&a, conn.name);
    assert_eq!(children[0]["encryption"], "camellia-256", "{children:#?}");
    let states = lab.exec(Side::A, &["ip", "xfrm", "state", "list"]);
    let states = String::from_utf8_lossy(&states.stdout);
    assert_eq!(
        states.matches("enc cbc(camellia)").count(),
        2,
        "both ESP SAs use the kernel's cbc(camellia):\n{states}"
    );
    assert!(
        swan.list_sas().contains("CAMELLIA_CBC-256"),
        "{}",
        swan.list_sas()
    );
    assert_ping_goes_through_esp(&lab, &a, conn, &context);
}

/// What `ip` shows of the routes and rules in one side's namespace.
fn routing_state(lab: &Lab, side: Side) -> String {
    let mut text = String::new();
    for args in [
        &["ip", "route", "show", "table", "all"][..],
        &["ip", "-6", "route", "show", "table", "all"][..],
        &["ip", "rule", "show"][..],
        &["ip", "-6", "rule", "show"][..],
    ] {
        let out = lab.exec(side, args);
        text += &format!(
            "$ {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    text
}

/// Issue 17: no hand-added route on either side. iked routes the remote
/// network into its own table (with its inner address as source, so a ping
/// without `-I` enters the tunnel), strongSwan into its table 220; pings
/// cross in ESP both ways, counted on the wire in each direction; after
/// `ikectl terminate` iked's route and rule are gone.
#[test]
#[ignore = "needs root, strongSwan and the kernel lab (qemu): run by .ci/run"]
fn iked_routes_its_tunnel_to_strongswan_and_removes_the_route_at_terminate() {
    if !in_kernel_lab() {
        return run_in_kernel_lab(
            "iked_routes_its_tunnel_to_strongswan_and_removes_the_route_at_terminate",
            300,
        );
    }
    modprobe();
    let conn = PSK_GCM;
    let lab = Lab::with_hand_routes("r", &[]);
    let remote_net = format!("10.{}.{}.0/24", Side::B.inner_net(), conn.inner);
    let before = routing_state(&lab, Side::A);
    assert!(
        !before.contains(&remote_net) && !before.contains("lookup 222"),
        "no route to {remote_net} before the tunnel:\n{before}"
    );
    let swan = Strongswan::start(&lab, Side::B, SwanKernel::Netlink, &[conn]);
    let a = Daemon::start_in(
        Some(&lab.a),
        "a",
        &format!("set passive\n{}", iked_policy(conn, Side::A, false, "")),
    );
    a.ikectl_ok(&["initiate", conn.name]);
    let context = || {
        format!(
            "--- iked ---\n{}\n--- strongSwan ---\n{}\n--- A's routes ---\n{}\n--- B's routes ---\n{}",
            a.log_text(),
            swan.list_sas(),
            routing_state(&lab, Side::A),
            routing_state(&lab, Side::B)
        )
    };
    wait_installed_on_both(&a, &swan, conn, &context);
    let table = String::from_utf8_lossy(
        &lab.exec(Side::A, &["ip", "route", "show", "table", "222"])
            .stdout,
    )
    .into_owned();
    println!("iked's table 222 on side A:\n{table}");
    assert!(
        table.lines().any(|l| l.trim()
            == format!(
                "{remote_net} dev veth-a proto static scope link src {}",
                inner_address(Side::A, conn)
            )),
        "iked's route, with the inner source:\n{}",
        context()
    );
    let rules =
        String::from_utf8_lossy(&lab.exec(Side::A, &["ip", "rule", "show"]).stdout).into_owned();
    assert!(
        rules
            .lines()
            .any(|l| l.starts_with("222:") && l.contains("lookup 222")),
        "{rules}"
    );
    let main =
        String::from_utf8_lossy(&lab.exec(Side::A, &["ip", "route", "show"]).stdout).into_owned();
    assert!(
        !main.contains(&remote_net),
        "the main table is untouched:\n{main}"
    );
    // Both ways, without -I: each side's routes pick its inner source.
    assert_ping_from_goes_through_esp(&lab, &a, conn, Side::A, false, &context);
    assert_ping_from_goes_through_esp(&lab, &a, conn, Side::B, false, &context);

    a.ikectl_ok(&["terminate", conn.name]);
    wait_until(
        "the IKE SA gone after terminate",
        Duration::from_secs(15),
        || show_sa(&a).is_empty(),
        context,
    );
    wait_until(
        "iked's route and rule gone after terminate",
        Duration::from_secs(10),
        || {
            let after = routing_state(&lab, Side::A);
            !after.contains(&remote_net) && !after.contains("lookup 222")
        },
        context,
    );
    println!("side A after terminate:\n{}", routing_state(&lab, Side::A));
}
