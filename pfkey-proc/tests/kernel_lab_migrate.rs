//! Migrate on a kernel with ESP (the kernel lab VM): a road warrior's
//! ESP SA pair and policies, installed through pfkey-proc's service with
//! static keys on a `peer any` gateway flow with a pool, carry ping; the
//! client changes its address (MOBIKE's UPDATE_SA_ADDRESSES) and both
//! sides migrate: ping continues and tcpdump sees the same SPIs on the
//! new addresses only; the client moves again, now behind "a NAT" (UDP
//! encapsulation, the client on port 4501): tcpdump sees the SPIs inside
//! UDP 4501 <-> 4500. The kernel keeps keys and sequence numbers across
//! the moves (no new SA is negotiated). Flush removes everything.
//!
//! On the build machine (root) the test boots the kernel lab
//! (tests/lab/kernel-lab.sh) and runs itself inside, where
//! IKED_KERNEL_LAB=1 selects the scenario.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use iked_common::config::Prefix;
use iked_common::ipc::{Ikev2ToPfkey, PfkeyToIkev2};
use iked_common::kernel::{
    Encryption, Flow, FlowPeer, IpsecMode, KernelEntry, KernelSocketKind, Lifetime, Migration,
    PolicyDirection, SaParams, Selector, UdpEncap,
};
use iked_pfkey::service::PfkeyService;

const GW_NS: &str = "mg-gw";
const CL_NS: &str = "mg-cl";
const GW: &str = "198.18.0.1";
/// The client's first, second and third outer address.
const CL_1: &str = "198.18.0.2";
const CL_2: &str = "198.18.0.3";
const CL_3: &str = "198.18.0.4";
const GW_INNER: &str = "10.1.0.1";
const LEASE: &str = "10.9.0.5";
const SPI_OUT: u32 = 0x0a0b_0101;
const SPI_IN: u32 = 0x0b0a_0101;
const CLIENT_NATT_PORT: u16 = 4501;

fn in_lab() -> bool {
    std::env::var_os("IKED_KERNEL_LAB").is_some()
}

fn run_in_lab(test_name: &str) {
    require_root();
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/lab/kernel-lab.sh");
    let status = Command::new(&harness)
        .arg("setup")
        .status()
        .expect("run kernel-lab.sh setup");
    assert!(status.success(), "kernel-lab.sh setup failed: {status}");
    let me = std::env::current_exe().unwrap();
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(&harness)
        .arg("run")
        .arg("--share")
        .arg(&workspace)
        .args(["--timeout", "300", "--"])
        .arg(me)
        .args([
            "--exact",
            test_name,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .status()
        .expect("run kernel-lab.sh");
    assert!(
        status.success(),
        "{test_name} failed inside the kernel lab: {status}"
    );
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let netns = File::open(&path).expect("open netns");
        // SAFETY: setns(2) on a namespace descriptor we own; this thread only.
        let rc = unsafe { nix::libc::setns(netns.as_raw_fd(), nix::libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// A UDP socket on `port` that takes ESP in UDP and bypasses IPsec, as
/// the parent prepares ikev2's NAT-T socket.
fn encap_socket_in(ns: &str, port: u16) -> std::net::UdpSocket {
    in_ns(ns, move || {
        let socket = std::net::UdpSocket::bind(("0.0.0.0", port)).expect("bind NAT-T port");
        let fd = std::os::fd::AsFd::as_fd(&socket);
        iked_pfkey::bypass::bypass_ipsec(fd, false, KernelSocketKind::Xfrm).unwrap();
        iked_pfkey::bypass::enable_esp_in_udp(fd).unwrap();
        socket
    })
}

fn setup_namespaces() {
    sh("modprobe -a esp4 xfrm_user veth aes gcm 2>&1 || true");
    sh(&format!(
        "ip netns add {GW_NS} && ip netns add {CL_NS} \
        && ip link add mgw netns {GW_NS} type veth peer name mcl netns {CL_NS} \
        && ip -n {GW_NS} addr add {GW}/24 dev mgw \
        && ip -n {CL_NS} addr add {CL_1}/24 dev mcl && ip -n {CL_NS} addr add {CL_2}/24 dev mcl \
        && ip -n {CL_NS} addr add {CL_3}/24 dev mcl \
        && ip -n {GW_NS} link set mgw up && ip -n {CL_NS} link set mcl up \
        && ip -n {GW_NS} link set lo up && ip -n {CL_NS} link set lo up \
        && ip -n {GW_NS} addr add {GW_INNER}/32 dev lo && ip -n {CL_NS} addr add {LEASE}/32 dev lo \
        && ip -n {GW_NS} route add {LEASE}/32 dev mgw src {GW_INNER} \
        && ip -n {CL_NS} route add 10.1.0.0/16 dev mcl src {LEASE}"
    ));
}

/// The gateway's `peer any`-style flow: 10.1.0.0/16 to its pool
/// 10.9.0.0/24, from GW to any peer in 198.18.0.0/24.
fn gateway_flow() -> Flow {
    let mut f = flow(
        "rw",
        net("10.1.0.0", 16, "10.9.0.0", 24),
        GW,
        CL_1,
        IpsecMode::Tunnel,
    );
    f.peer = FlowPeer::Range(Prefix {
        addr: ip("198.18.0.0"),
        len: 24,
    });
    f.pools = vec![Prefix {
        addr: ip("10.9.0.0"),
        len: 24,
    }];
    f
}

/// The client's flows: one per outer address it may have (its policy
/// names each as a local address), NAT-T on its own port.
fn client_flows() -> Vec<Flow> {
    [CL_1, CL_2, CL_3]
        .into_iter()
        .map(|local| {
            let mut f = flow(
                "vpn",
                net(LEASE, 32, "10.1.0.0", 16),
                local,
                GW,
                IpsecMode::Tunnel,
            );
            f.limits.natt_port = Some(CLIENT_NATT_PORT);
            f
        })
        .collect()
}

/// Gateway's view: out is 10.1.0.0/16 -> lease.
fn gw_view() -> Selector {
    net("10.1.0.0", 16, LEASE, 32)
}

fn sa_pair(client: &str) -> (SaParams, SaParams) {
    let sa = |src: &str, dst: &str, spi, selector| {
        static_sa(
            src,
            dst,
            spi,
            selector,
            IpsecMode::Tunnel,
            REQID,
            Encryption::AesGcm16,
            Lifetime::default(),
        )
    };
    (
        sa(GW, client, SPI_OUT, gw_view()),
        sa(client, GW, SPI_IN, gw_view().reversed()),
    )
}

/// The three policies of `local`'s side, `local_view` its outbound
/// traffic.
fn policies(
    local_view: Selector,
    local: &str,
    peer: &str,
) -> Vec<iked_common::kernel::PolicyParams> {
    vec![
        policy(
            local_view,
            PolicyDirection::Out,
            local,
            peer,
            IpsecMode::Tunnel,
            REQID,
        ),
        policy(
            local_view.reversed(),
            PolicyDirection::In,
            peer,
            local,
            IpsecMode::Tunnel,
            REQID,
        ),
        policy(
            local_view.reversed(),
            PolicyDirection::Fwd,
            peer,
            local,
            IpsecMode::Tunnel,
            REQID,
        ),
    ]
}

fn install(
    service: &mut PfkeyService,
    sas: &[SaParams],
    policies: Vec<iked_common::kernel::PolicyParams>,
) {
    for (n, sa) in sas.iter().enumerate() {
        let id = 10 + n as u64;
        assert_done(
            request(service, Ikev2ToPfkey::AddSa { id, sa: sa.clone() }),
            id,
        );
    }
    for (n, p) in policies.into_iter().enumerate() {
        let id = 20 + n as u64;
        assert_done(
            request(service, Ikev2ToPfkey::AddPolicy { id, policy: p }),
            id,
        );
    }
}

/// The migration of one side: its SAs as installed now (`inbound`,
/// `outbound`), its policies, the new addresses.
fn migration(
    inbound: &SaParams,
    outbound: &SaParams,
    local_view: Selector,
    new_local: &str,
    new_peer: &str,
    encap: Option<UdpEncap>,
) -> Migration {
    Migration {
        inbound: inbound.id,
        outbound: outbound.id,
        reqid: REQID,
        mode: IpsecMode::Tunnel,
        policies: vec![
            (local_view, PolicyDirection::Out),
            (local_view.reversed(), PolicyDirection::In),
            (local_view.reversed(), PolicyDirection::Fwd),
        ],
        new_local: ip(new_local),
        new_peer: ip(new_peer),
        encap,
    }
}

fn migrate(service: &mut PfkeyService, id: u64, m: Migration) {
    let reply = request(service, Ikev2ToPfkey::Migrate { id, migration: m });
    assert_eq!(reply, PfkeyToIkev2::Done { id }, "migrate {id}");
}

/// Pings the gateway's inner address from the client's lease while
/// tcpdump on the gateway's link records `filter`; tcpdump's lines.
fn ping_and_capture(filter: &str) -> String {
    let pcap = "/tmp/migrate.pcap";
    let mut dump = Command::new("ip")
        .args([
            "netns", "exec", GW_NS, "tcpdump", "-n", "-i", "mgw", "-U", "-w", pcap,
        ])
        .args(filter.split(' '))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcpdump");
    let stderr = dump.stderr.take().expect("tcpdump stderr");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("listening on") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("tcpdump did not start capturing within 20 s");
    let ping = Command::new("ip")
        .args([
            "netns", "exec", CL_NS, "ping", "-c", "3", "-i", "0.3", "-W", "3", "-I", LEASE,
            GW_INNER,
        ])
        .output()
        .expect("ping");
    std::thread::sleep(Duration::from_millis(500));
    // Stop only the tcpdump we started, by its pid.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dump.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    dump.wait().unwrap();
    if !ping.status.success() {
        let diagnostics = sh(&format!(
            "for n in {GW_NS} {CL_NS}; do echo \"== $n\"; ip -n $n -s xfrm state; ip -n $n xfrm policy; \
             ip netns exec $n grep -v ' 0$' /proc/net/xfrm_stat; done; tcpdump -n -r {pcap} 2>&1"
        ));
        panic!(
            "ping {LEASE} -> {GW_INNER} failed: {}{}\n{diagnostics}",
            String::from_utf8_lossy(&ping.stdout),
            String::from_utf8_lossy(&ping.stderr)
        );
    }
    sh(&format!("tcpdump -n -r {pcap} 2>/dev/null"))
}

/// Both SPIs seen between `client` and the gateway, and none elsewhere.
fn assert_esp_between(capture: &str, client: &str, gw_end: &str, client_end: &str) {
    let inbound = format!("{client_end} > {gw_end}: ");
    let outbound = format!("{gw_end} > {client_end}: ");
    for (direction, spi) in [(&inbound, SPI_IN), (&outbound, SPI_OUT)] {
        let seen = capture
            .lines()
            .any(|l| l.contains(direction.as_str()) && l.contains(&format!("ESP(spi=0x{spi:08x}")));
        assert!(seen, "ESP {direction}spi 0x{spi:08x} not seen:\n{capture}");
    }
    for line in capture.lines().filter(|l| l.contains("ESP(")) {
        assert!(
            line.contains(client),
            "ESP off the client's address {client}: {line}"
        );
    }
}

fn scenario() {
    setup_namespaces();
    let mut gw = in_ns(GW_NS, || open_service(KernelSocketKind::Xfrm));
    let mut cl = in_ns(CL_NS, || open_service(KernelSocketKind::Xfrm));
    gw.apply_config(&config(vec![gateway_flow()]));
    cl.apply_config(&config(client_flows()));

    let (out, inb) = sa_pair(CL_1);
    install(
        &mut gw,
        &[out.clone(), inb.clone()],
        policies(gw_view(), GW, CL_1),
    );
    install(
        &mut cl,
        &[out.clone(), inb.clone()],
        policies(gw_view().reversed(), CL_1, GW),
    );
    let capture = ping_and_capture("esp");
    assert_esp_between(&capture, CL_1, GW, CL_1);
    println!("lab: road warrior at {CL_1}: ping ok, ESP spi 0x{SPI_OUT:08x}/0x{SPI_IN:08x}");

    // MOBIKE: the client is now at CL_2. The gateway moves the peer side,
    // the client its own side.
    migrate(
        &mut gw,
        30,
        migration(&inb, &out, gw_view(), GW, CL_2, None),
    );
    migrate(
        &mut cl,
        31,
        migration(&out, &inb, gw_view().reversed(), CL_2, GW, None),
    );
    let state = sh(&format!("ip -n {GW_NS} xfrm state"));
    assert!(
        !state.contains(CL_1),
        "nothing left at the old address:\n{state}"
    );
    assert_eq!(
        state.matches("proto esp").count(),
        2,
        "two SAs, moved in place:\n{state}"
    );
    // Keys and sequence numbers were kept: three pings went out before.
    assert!(
        state.contains("oseq 0x3"),
        "sequence numbers kept:\n{state}"
    );
    let shown = sh(&format!("ip -n {GW_NS} xfrm policy"));
    assert!(
        shown.contains(&format!("tmpl src {GW} dst {CL_2}")),
        "{shown}"
    );
    let capture = ping_and_capture("esp");
    assert_esp_between(&capture, CL_2, GW, CL_2);
    let (out2, inb2) = sa_pair(CL_2);
    for sa in [&out2, &inb2] {
        assert!(
            gw.installed().any(|e| *e == KernelEntry::Sa(sa.id)),
            "pfkey records {} under its new addresses",
            sa.id
        );
    }
    println!("lab: client moved to {CL_2}: ping ok, same SPIs on the new address only");

    // Behind a NAT now: ESP in UDP, the client on its own port.
    let _gw_socket = encap_socket_in(GW_NS, 4500);
    let _cl_socket = encap_socket_in(CL_NS, CLIENT_NATT_PORT);
    let to_client = UdpEncap {
        src_port: 4500,
        dst_port: CLIENT_NATT_PORT,
    };
    let to_gateway = UdpEncap {
        src_port: CLIENT_NATT_PORT,
        dst_port: 4500,
    };
    migrate(
        &mut gw,
        40,
        migration(&inb2, &out2, gw_view(), GW, CL_3, Some(to_client)),
    );
    migrate(
        &mut cl,
        41,
        migration(
            &out2,
            &inb2,
            gw_view().reversed(),
            CL_3,
            GW,
            Some(to_gateway),
        ),
    );
    let state = sh(&format!("ip -n {GW_NS} xfrm state"));
    assert!(
        state.contains(&format!(
            "encap type espinudp sport 4500 dport {CLIENT_NATT_PORT}"
        )),
        "{state}"
    );
    assert!(
        state.contains(&format!(
            "encap type espinudp sport {CLIENT_NATT_PORT} dport 4500"
        )),
        "{state}"
    );
    let capture = ping_and_capture("udp");
    assert_esp_between(
        &capture,
        CL_3,
        &format!("{GW}.4500"),
        &format!("{CL_3}.{CLIENT_NATT_PORT}"),
    );
    println!(
        "lab: client moved to {CL_3} with ESP in UDP {CLIENT_NATT_PORT} <-> 4500: ping ok, same SPIs"
    );

    // Back to plain ESP is refused (MIGRATE keeps encapsulation).
    let (out3, inb3) = sa_pair(CL_3);
    let reply = request(
        &mut gw,
        Ikev2ToPfkey::Migrate {
            id: 50,
            migration: migration(&inb3, &out3, gw_view(), GW, CL_2, None),
        },
    );
    assert!(
        matches!(&reply, PfkeyToIkev2::Failed { failure, .. } if failure.message.contains("UDP-encapsulated")),
        "{reply:?}"
    );

    gw.flush_ours();
    cl.flush_ours();
    for ns in [GW_NS, CL_NS] {
        let state = sh(&format!("ip -n {ns} xfrm state"));
        assert!(state.trim().is_empty(), "{ns}: {state}");
        // The NAT-T sockets' own bypass policies stay (they are the
        // sockets', listed as "socket"); no policy with a template does.
        let policies = sh(&format!("ip -n {ns} xfrm policy"));
        assert!(!policies.contains("tmpl"), "{ns}: {policies}");
    }
    println!("lab: migrate: all checks passed");
}

#[test]
#[ignore = "needs root: run by .ci/run (boots the kernel lab VM)"]
fn kernel_lab_migrate() {
    if in_lab() {
        scenario();
    } else {
        run_in_lab("kernel_lab_migrate");
    }
}
