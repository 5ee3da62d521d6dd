//! Tunnels carrying traffic through real ESP, in the kernel lab (Debian's
//! stock kernel under qemu, tests/lab/kernel-lab.sh): iked to iked and iked
//! to strongSwan (kernel XFRM) in both directions, a Child SA rekeyed under
//! a running ping, and a tunnel started by the kernel's ACQUIRE.
//!
//! On the build machine each test boots the VM and runs itself inside it,
//! where IKED_KERNEL_LAB is set.

use std::process::{Child, Command};
use std::time::Duration;

use iked_tests::lab::{Connection, Lab, Side, Strongswan, SwanKernel, PSK_GCM};
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

/// tcpdump of what one side sends on its veth (`-Q out`: Linux also shows
/// decrypted inbound tunnel packets on the interface, which never crossed
/// the wire in the clear), until stopped.
struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(lab: &Lab, side: Side) -> Capture {
        let ns = lab.ns(side);
        let dev = if side == Side::A { "veth-a" } else { "veth-b" };
        let file = std::env::temp_dir().join(format!("capture-{ns}.txt"));
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tcpdump", "-n", "-l", "-Q", "out", "-i", dev,
            ])
            .args(["not", "arp", "and", "not", "icmp6"])
            .stdout(std::fs::File::create(&file).expect("capture file"))
            .stderr(std::fs::File::create(file.with_extension("err")).expect("capture log"))
            .spawn()
            .expect("tcpdump");
        // tcpdump says "listening on" once the capture is in place.
        wait_until(
            "tcpdump to start",
            Duration::from_secs(10),
            || {
                std::fs::read_to_string(file.with_extension("err"))
                    .is_ok_and(|t| t.contains("listening on"))
            },
            String::new,
        );
        Capture { child, file }
    }

    fn stop(mut self) -> String {
        std::thread::sleep(Duration::from_millis(300));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }
}

fn ping(lab: &Lab, conn: Connection, count: u32, interval: &str) -> (u32, String) {
    let src = format!("10.{}.{}.1", Side::A.inner_net(), conn.inner);
    let dst = format!("10.{}.{}.1", Side::B.inner_net(), conn.inner);
    let out = lab.exec(
        Side::A,
        &[
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "1",
            "-I",
            &src,
            &dst,
        ],
    );
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
    let captures = [Capture::start(lab, Side::A), Capture::start(lab, Side::B)];
    let (received, text) = ping(lab, conn, 5, "0.2");
    assert_eq!(
        received,
        5,
        "pings through the tunnel:\n{text}\n{}",
        context()
    );
    for (side, capture) in [Side::A, Side::B].into_iter().zip(captures) {
        let wire = capture.stop();
        let esp = wire.lines().filter(|l| l.contains("ESP(spi=")).count();
        assert!(esp >= 5, "side {side:?} sent {esp} ESP packets:\n{wire}");
        let clear: Vec<&str> = wire
            .lines()
            .filter(|l| {
                !l.trim().is_empty()
                    && !l.contains("ESP(spi=")
                    && !l.contains(".500:")
                    && !l.contains(".4500:")
                    && !l.contains("isakmp")
            })
            .collect();
        assert!(
            clear.is_empty(),
            "side {side:?} sent more than ESP and IKE:\n{clear:?}\nall:\n{wire}"
        );
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

fn iked_policy(conn: Connection, side: Side, active: bool, extra: &str) -> String {
    conn.iked_policy(side, active)
        .replace(" psk ", &format!(" {extra} psk "))
}

fn modprobe() {
    let _ = Command::new("modprobe")
        .args([
            "-a",
            "esp4",
            "esp6",
            "xfrm_user",
            "xfrm4_tunnel",
            "veth",
            "aes",
            "gcm",
            "chacha20poly1305",
            "sha256",
        ])
        .status();
}

fn iked_to_iked(initiator: Side) {
    modprobe();
    let conn = PSK_GCM;
    let lab = Lab::new("t");
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
    let out = starter.ikectl(&["initiate", conn.name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let lab = Lab::new("s");
    let swan = Strongswan::start(&lab, Side::B, SwanKernel::Netlink, &[conn]);
    let a = Daemon::start_in(
        Some(&lab.a),
        "a",
        &format!("set passive\n{}", iked_policy(conn, Side::A, false, "")),
    );
    if iked_initiates {
        let out = a.ikectl(&["initiate", conn.name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        let out = swan.swanctl(&["--initiate", "--child", conn.name, "--timeout", "30"]);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            a.log_text()
        );
    }
    let context = || {
        format!(
            "--- iked ---\n{}\n--- strongSwan ---\n{}",
            a.log_text(),
            swan.list_sas()
        )
    };
    wait_until(
        "installed Child SAs on iked and strongSwan",
        Duration::from_secs(30),
        || !installed_children(&a, conn.name).is_empty() && swan.list_sas().contains("INSTALLED"),
        context,
    );
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
    let lab = Lab::new("k");
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
    let lab = Lab::new("q");
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
