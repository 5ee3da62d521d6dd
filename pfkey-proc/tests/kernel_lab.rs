//! End-to-end on a kernel with ESP: pfkey-proc's service installs SAs and
//! policies with static keys (no `ip xfrm` for ours) between two network
//! namespaces; ping passes and tcpdump shows ESP with our SPIs; ACQUIRE and
//! soft then hard EXPIRE arrive; stopping removes ours and nothing else.
//!
//! On the build machine (root) each test boots the project's kernel lab
//! (tests/lab/kernel-lab.sh, Debian's stock kernel under qemu) and runs
//! itself inside, where IKED_KERNEL_LAB=1 selects the scenario.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use iked_common::ipc::{ChildToParent, Ikev2ToPfkey, PfkeyToIkev2};
use iked_common::kernel::{
    Encryption, IpsecMode, KernelEntry, KernelEvent, KernelSocketKind, Lifetime, PolicyDirection,
    SaParams, Selector,
};
use iked_pfkey::service::PfkeyService;

const A_OUTER: &str = "198.18.0.1";
const B_OUTER: &str = "198.18.0.2";

fn in_lab() -> bool {
    std::env::var_os("IKED_KERNEL_LAB").is_some()
}

/// Boots the lab VM and runs this same test inside it.
fn run_in_lab(test_name: &str) {
    require_root();
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/lab/kernel-lab.sh");
    let status = Command::new(&harness)
        .arg("setup")
        .status()
        .expect("run kernel-lab.sh setup");
    assert!(status.success(), "kernel-lab.sh setup failed: {status}");
    let me = std::env::current_exe().unwrap();
    let status = Command::new(&harness)
        .args(["run", "--timeout", "400", "--"])
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

/// Opens a service whose sockets live in network namespace `ns`.
fn service_in(ns: &str, kind: KernelSocketKind) -> PfkeyService {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let netns = File::open(&path).expect("open netns");
        // SAFETY: setns(2) on a namespace descriptor we own; this thread only.
        let rc = unsafe { nix::libc::setns(netns.as_raw_fd(), nix::libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        open_service(kind)
    })
    .join()
    .unwrap()
}

fn setup_namespaces() {
    sh("modprobe -a esp4 xfrm_user af_key veth aes gcm chacha20poly1305 sha256 2>&1 || true");
    sh("ip netns add a && ip netns add b \
        && ip link add va netns a type veth peer name vb netns b \
        && ip -n a addr add 198.18.0.1/24 dev va && ip -n b addr add 198.18.0.2/24 dev vb \
        && ip -n a link set va up && ip -n b link set vb up \
        && ip -n a link set lo up && ip -n b link set lo up \
        && ip -n a addr add 10.1.0.1/32 dev lo && ip -n b addr add 10.2.0.1/32 dev lo \
        && ip -n a route add 10.2.0.0/16 dev va src 10.1.0.1 \
        && ip -n b route add 10.1.0.0/16 dev vb src 10.2.0.1");
}

/// Flow of namespace a (10.1/16 behind 198.18.0.1) and its mirror in b.
fn flows_a_b() -> (iked_common::kernel::Flow, iked_common::kernel::Flow) {
    let a_view = net("10.1.0.0", 16, "10.2.0.0", 16);
    (
        flow("a-to-b", a_view, A_OUTER, B_OUTER, IpsecMode::Tunnel),
        flow(
            "b-to-a",
            a_view.reversed(),
            B_OUTER,
            A_OUTER,
            IpsecMode::Tunnel,
        ),
    )
}

fn install_policies(service: &mut PfkeyService, local_view: Selector, local: &str, peer: &str) {
    let out = policy(
        local_view,
        PolicyDirection::Out,
        local,
        peer,
        IpsecMode::Tunnel,
        1,
    );
    let inb = policy(
        local_view.reversed(),
        PolicyDirection::In,
        peer,
        local,
        IpsecMode::Tunnel,
        1,
    );
    let fwd = policy(
        local_view.reversed(),
        PolicyDirection::Fwd,
        peer,
        local,
        IpsecMode::Tunnel,
        1,
    );
    for (id, p) in [(101, out), (102, inb), (103, fwd)] {
        assert_done(
            request(service, Ikev2ToPfkey::AddPolicy { id, policy: p }),
            id,
        );
    }
}

fn add_sa(service: &mut PfkeyService, id: u64, sa: SaParams) {
    let reply = request(service, Ikev2ToPfkey::AddSa { id, sa });
    assert_eq!(reply, PfkeyToIkev2::Done { id }, "SA {id}");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Both SAs of one algorithm: a→b with `spi_ab`, b→a with `spi_ba`,
/// installed in both namespaces.
fn install_pair(
    a: &mut PfkeyService,
    b: &mut PfkeyService,
    encryption: Encryption,
    spi_ab: u32,
    spi_ba: u32,
) -> Vec<SaParams> {
    let a_view = net("10.1.0.0", 16, "10.2.0.0", 16);
    let ab = static_sa(
        A_OUTER,
        B_OUTER,
        spi_ab,
        a_view,
        IpsecMode::Tunnel,
        1,
        encryption,
        Lifetime::default(),
    );
    let ba = static_sa(
        B_OUTER,
        A_OUTER,
        spi_ba,
        a_view.reversed(),
        IpsecMode::Tunnel,
        1,
        encryption,
        Lifetime::default(),
    );
    add_sa(a, 201, ab.clone());
    add_sa(a, 202, ba.clone());
    add_sa(b, 203, ab.clone());
    add_sa(b, 204, ba.clone());
    vec![ab, ba]
}

fn delete_pair(a: &mut PfkeyService, b: &mut PfkeyService, sas: &[SaParams]) {
    for (n, sa) in sas.iter().enumerate() {
        for service in [&mut *a, &mut *b] {
            let id = 300 + n as u64;
            assert_done(
                request(service, Ikev2ToPfkey::DeleteSa { id, sa: sa.id }),
                id,
            );
        }
    }
}

/// Pings b's inner address from a's while tcpdump watches the veth; returns
/// tcpdump's decoded lines.
fn ping_and_capture() -> String {
    let pcap = "/tmp/esp.pcap";
    let mut dump = Command::new("ip")
        .args([
            "netns", "exec", "a", "tcpdump", "-n", "-i", "va", "-U", "-w", pcap, "esp",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_secs(2));
    let ping = Command::new("ip")
        .args([
            "netns", "exec", "a", "ping", "-c", "3", "-i", "0.3", "-W", "3", "-I", "10.1.0.1",
            "10.2.0.1",
        ])
        .output()
        .expect("ping");
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY-free: kill(2) on the child we spawned, by its pid.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dump.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    dump.wait().unwrap();
    assert!(
        ping.status.success(),
        "ping through the tunnel failed: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    sh(&format!("tcpdump -n -r {pcap} 2>/dev/null"))
}

fn lab_scenario(kind: KernelSocketKind) {
    setup_namespaces();
    // Another IPsec user's SA and policy, present before we start.
    sh("ip -n a xfrm state add src 198.18.0.1 dst 198.18.0.99 proto esp spi 0x00009999 mode tunnel \
        aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128");
    sh(
        "ip -n a xfrm policy add src 172.16.0.0/16 dst 172.17.0.0/16 dir out priority 10 \
        tmpl src 198.18.0.1 dst 198.18.0.99 proto esp mode tunnel reqid 99",
    );

    let mut a = service_in("a", kind);
    let mut b = service_in("b", kind);
    assert_eq!(a.kind(), kind);
    let (flow_a, flow_b) = flows_a_b();
    a.apply_config(&config(vec![flow_a.clone()]));
    b.apply_config(&config(vec![flow_b.clone()]));
    let a_view = flow_a.selector;
    install_policies(&mut a, a_view, A_OUTER, B_OUTER);
    install_policies(&mut b, a_view.reversed(), B_OUTER, A_OUTER);

    // ACQUIRE first: policies, no SA yet.
    let _ = Command::new("ip")
        .args([
            "netns", "exec", "a", "ping", "-c", "1", "-W", "1", "-I", "10.1.0.1", "10.2.0.1",
        ])
        .output();
    let (acquire, seen) = wait_for_event(&mut a, Duration::from_secs(10), |e| {
        matches!(e, KernelEvent::Acquire { .. })
    });
    match acquire {
        Some(KernelEvent::Acquire {
            selector,
            src,
            dst,
            reqid,
            ..
        }) => {
            assert_eq!((src, dst, reqid), (ip(A_OUTER), ip(B_OUTER), 1));
            assert_eq!(
                (selector.src, selector.dst),
                (ip("10.1.0.1"), ip("10.2.0.1"))
            );
            println!("lab[{}]: ACQUIRE received for {selector}", kind.name());
        }
        other => panic!("no ACQUIRE: {other:?}, saw {seen:?}"),
    }

    // Traffic through each transform, keys checked against iproute2's view.
    let transforms = [
        (
            Encryption::AesGcm16,
            0x0a0b_0001u32,
            0x0b0a_0001u32,
            "rfc4106(gcm(aes))",
        ),
        (Encryption::AesCbc, 0x0a0b_0002, 0x0b0a_0002, "cbc(aes)"),
        (
            Encryption::ChaCha20Poly1305,
            0x0a0b_0003,
            0x0b0a_0003,
            "rfc7539esp(chacha20,poly1305)",
        ),
    ];
    for (encryption, spi_ab, spi_ba, kernel_name) in transforms {
        let sas = install_pair(&mut a, &mut b, encryption, spi_ab, spi_ba);
        let state = sh("ip -n a xfrm state list");
        let key_hex = hex_of(sas[0].encryption_key.expose());
        assert!(
            state.contains(&format!("{kernel_name} 0x{key_hex}")),
            "kernel key for {kernel_name} differs from ours ({key_hex}):\n{state}"
        );
        if let Some(integrity_key) = sas[0]
            .integrity
            .map(|_| hex_of(sas[0].integrity_key.expose()))
        {
            assert!(
                state.contains(&format!("hmac(sha256) 0x{integrity_key} 128")),
                "{state}"
            );
        }
        let capture = ping_and_capture();
        for spi in [spi_ab, spi_ba] {
            assert!(
                capture.contains(&format!("ESP(spi=0x{spi:08x}")),
                "{} SPI 0x{spi:08x} not seen by tcpdump:\n{capture}",
                encryption.name()
            );
        }
        println!(
            "lab[{}]: ping through {} ok, tcpdump saw ESP spi 0x{spi_ab:08x} and 0x{spi_ba:08x}",
            kind.name(),
            encryption.name()
        );
        delete_pair(&mut a, &mut b, &sas);
    }

    // An allocated SPI completed into a full SA (the inbound SA's usual path).
    let spi = match request(
        &mut b,
        Ikev2ToPfkey::AllocateSpi {
            id: 400,
            src: ip(A_OUTER),
            dst: ip(B_OUTER),
            protocol: iked_common::kernel::IpsecProtocol::Esp,
            reqid: 1,
            min: 0x1000_0000,
            max: 0x1fff_ffff,
        },
    ) {
        PfkeyToIkev2::SpiAllocated { id: 400, spi } => spi,
        other => panic!("allocate SPI: {other:?}"),
    };
    let inbound = static_sa(
        A_OUTER,
        B_OUTER,
        spi,
        a_view,
        IpsecMode::Tunnel,
        1,
        Encryption::AesGcm16,
        Lifetime::default(),
    );
    add_sa(&mut b, 401, inbound.clone());
    add_sa(&mut a, 402, inbound.clone());
    let back = static_sa(
        B_OUTER,
        A_OUTER,
        0x0b0a_0004,
        a_view.reversed(),
        IpsecMode::Tunnel,
        1,
        Encryption::AesGcm16,
        Lifetime::default(),
    );
    add_sa(&mut a, 403, back.clone());
    add_sa(&mut b, 404, back.clone());
    let capture = ping_and_capture();
    assert!(
        capture.contains(&format!("ESP(spi=0x{spi:08x}")),
        "allocated SPI 0x{spi:08x} unused:\n{capture}"
    );
    println!(
        "lab[{}]: allocated SPI 0x{spi:08x} completed and carried traffic",
        kind.name()
    );
    delete_pair(&mut a, &mut b, &[inbound, back]);

    // Lifetimes: soft EXPIRE at 5 s, hard at 8 s; the kernel then deletes it.
    let short = Lifetime {
        soft_bytes: 0,
        hard_bytes: 0,
        soft_seconds: 5,
        hard_seconds: 8,
    };
    let expiring = static_sa(
        A_OUTER,
        B_OUTER,
        0x0a0b_0005,
        a_view,
        IpsecMode::Tunnel,
        1,
        Encryption::AesGcm16,
        short,
    );
    add_sa(&mut a, 500, expiring.clone());
    let (soft, seen) = wait_for_event(&mut a, Duration::from_secs(12), |e| {
        matches!(e, KernelEvent::Expire { hard: false, .. })
    });
    assert_eq!(
        soft,
        Some(KernelEvent::Expire {
            sa: expiring.id,
            reqid: 1,
            hard: false
        }),
        "soft expire; also saw {seen:?}"
    );
    println!("lab[{}]: soft EXPIRE received", kind.name());
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    let mut hard_outcome = None;
    while std::time::Instant::now() < deadline && hard_outcome.is_none() {
        let outcome = a.on_kernel_event();
        if outcome.to_ikev2.iter().any(|m| {
            matches!(
                m,
                PfkeyToIkev2::Event(KernelEvent::Expire { hard: true, .. })
            )
        }) {
            hard_outcome = Some(outcome);
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let hard_outcome = hard_outcome.expect("no hard EXPIRE within 12 s after the soft one");
    assert!(hard_outcome
        .to_ikev2
        .contains(&PfkeyToIkev2::Event(KernelEvent::Expire {
            sa: expiring.id,
            reqid: 1,
            hard: true
        })));
    assert!(
        hard_outcome
            .to_parent
            .contains(&ChildToParent::KernelEntryRemoved(KernelEntry::Sa(
                expiring.id
            ))),
        "the parent learns the kernel deleted it: {hard_outcome:?}"
    );
    println!("lab[{}]: hard EXPIRE received", kind.name());

    // Stop: ours go, the other user's SA and policy stay.
    for service in [&mut a, &mut b] {
        service.flush_ours();
        assert_eq!(service.installed().count(), 0);
    }
    let states = sh("ip -n a xfrm state list");
    assert!(
        states.contains("spi 0x00009999"),
        "foreign SA removed:\n{states}"
    );
    assert!(
        !states.contains("spi 0x0a0b") && !states.contains("spi 0x0b0a"),
        "ours left:\n{states}"
    );
    let policies = sh("ip -n a xfrm policy list");
    assert!(
        policies.contains("172.16.0.0/16"),
        "foreign policy removed:\n{policies}"
    );
    assert!(
        !policies.contains("10.1.0.0/16"),
        "our policy left:\n{policies}"
    );
    assert!(sh("ip -n b xfrm state list").trim().is_empty());
    assert!(sh("ip -n b xfrm policy list").trim().is_empty());
    println!(
        "lab[{}]: flush removed ours only; all checks passed",
        kind.name()
    );
}

#[test]
#[ignore = "needs root: run by .ci/run (boots the kernel lab VM)"]
fn kernel_lab_xfrm() {
    if in_lab() {
        lab_scenario(KernelSocketKind::Xfrm);
    } else {
        run_in_lab("kernel_lab_xfrm");
    }
}
