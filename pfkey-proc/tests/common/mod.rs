//! Helpers shared by pfkey-proc's kernel tests (network namespaces, flows,
//! static keys). Everything here runs only as root, in namespaces the test
//! creates, so the host's own IPsec state is never touched.

#![allow(dead_code)]

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use iked_common::ipc::{ChildConfig, Ikev2ToPfkey, PfkeyToIkev2};
use iked_common::kernel::{
    Encryption, Flow, Integrity, IpsecMode, IpsecProtocol, KernelEvent, KernelSocketKind, Lifetime,
    PolicyDirection, PolicyParams, SaId, SaLimits, SaParams, SaTemplate, SecretBytes, Selector,
};
use iked_pfkey::service::PfkeyService;

/// Fails (never skips) when not root: these tests are run by .ci/run as root.
/// Reqids for the tests' SAs and policies: pfkey installs only reqids
/// from iked's own range (the mark of our entries).
pub const REQID: u32 = iked_common::kernel::LARVAL_REQID + 1;
pub const REQID_2: u32 = iked_common::kernel::LARVAL_REQID + 2;
/// The IPv6 flow's own reqid.
pub const REQID_6: u32 = iked_common::kernel::LARVAL_REQID + 6;

pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root (network namespaces, XFRM): run it through .ci/run as root"
    );
}

/// Runs `f` on a fresh thread moved into a fresh network namespace; sockets
/// and child processes it creates live in that namespace.
pub fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare(2) with a valid flag; affects this thread only.
        let rc = unsafe { nix::libc::unshare(nix::libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Runs a shell command (in the calling thread's namespace) and returns its
/// stdout, failing the test if it fails.
pub fn sh(command: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "`{command}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn net(src: &str, src_prefix: u8, dst: &str, dst_prefix: u8) -> Selector {
    Selector::between(ip(src), src_prefix, ip(dst), dst_prefix)
}

pub fn flow(name: &str, selector: Selector, local: &str, peer: &str, mode: IpsecMode) -> Flow {
    Flow {
        name: name.into(),
        selector,
        local: ip(local),
        peer: iked_common::kernel::FlowPeer::Address(ip(peer)),
        mode,
        encryption: vec![
            Encryption::AesCbc,
            Encryption::AesGcm16,
            Encryption::ChaCha20Poly1305,
            Encryption::CamelliaCbc,
        ],
        integrity: vec![
            Integrity::HmacSha1_96,
            Integrity::HmacSha256_128,
            Integrity::HmacSha384_192,
            Integrity::HmacSha512_256,
        ],
        // Every key length and ESN setting, NAT-T on 4500, the default
        // Child SA lifetime: what the lab's SAs use.
        limits: SaLimits {
            esn: vec![false, true],
            ..SaLimits::default()
        },
        pools: Vec::new(),
        virtual_ip_interface: None,
    }
}

/// The same SA with another integrity transform (static key, test only).
pub fn with_integrity(mut sa: SaParams, integrity: Integrity) -> SaParams {
    let seed = sa.id.spi.to_le_bytes();
    sa.integrity = Some(integrity);
    sa.integrity_key = SecretBytes::new(
        (0..integrity.key_length())
            .map(|i| seed[i % 4] ^ (i as u8).wrapping_mul(29))
            .collect(),
    );
    sa
}

pub fn config(flows: Vec<Flow>) -> ChildConfig {
    ChildConfig::Pfkey {
        generation: 1,
        flows,
        routing: Default::default(),
    }
}

pub fn open_service(kind: KernelSocketKind) -> PfkeyService {
    let sockets = iked_pfkey::socket::open_kernel_sockets(Some(kind)).expect("open kernel sockets");
    PfkeyService::new(sockets.kind, sockets.requests, sockets.events).expect("start service")
}

/// Sends one request and returns the single reply to ikev2.
pub fn request(service: &mut PfkeyService, request: Ikev2ToPfkey) -> PfkeyToIkev2 {
    let outcome = service.handle_request(request);
    assert_eq!(
        outcome.to_ikev2.len(),
        1,
        "one reply per request: {outcome:?}"
    );
    outcome.to_ikev2.into_iter().next().unwrap()
}

pub fn assert_done(reply: PfkeyToIkev2, id: u64) {
    assert_eq!(reply, PfkeyToIkev2::Done { id }, "request {id}");
}

/// A policy for traffic `selector` in `direction`, tunnelled between `src`
/// and `dst` (the SA's endpoints for that direction).
pub fn policy(
    selector: Selector,
    direction: PolicyDirection,
    src: &str,
    dst: &str,
    mode: IpsecMode,
    reqid: u32,
) -> PolicyParams {
    PolicyParams {
        selector,
        direction,
        priority: 2000,
        template: SaTemplate {
            src: ip(src),
            dst: ip(dst),
            protocol: IpsecProtocol::Esp,
            mode,
            reqid,
        },
    }
}

/// An SA with static keys (test only): the key octets are derived from the
/// SPI so each direction differs and both namespaces agree.
#[allow(clippy::too_many_arguments)]
pub fn static_sa(
    src: &str,
    dst: &str,
    spi: u32,
    selector: Selector,
    mode: IpsecMode,
    reqid: u32,
    encryption: Encryption,
    lifetime: Lifetime,
) -> SaParams {
    let seed = spi.to_be_bytes();
    let key = |n: usize, salt: u8| -> SecretBytes {
        SecretBytes::new(
            (0..n)
                .map(|i| seed[i % 4] ^ (i as u8).wrapping_mul(salt))
                .collect(),
        )
    };
    let (encryption_key, integrity, integrity_key) = match encryption {
        Encryption::AesCbc | Encryption::CamelliaCbc => {
            (key(16, 7), Some(Integrity::HmacSha256_128), key(32, 13))
        }
        Encryption::AesGcm16 => (key(20, 7), None, SecretBytes::new(vec![])),
        Encryption::ChaCha20Poly1305 => (key(36, 7), None, SecretBytes::new(vec![])),
    };
    // pfkey refuses an SA that never expires: one given no time limit
    // gets an hour (soft) and the default margin (hard).
    let lifetime = if lifetime.soft_seconds == 0 && lifetime.hard_seconds == 0 {
        Lifetime {
            soft_seconds: 3600,
            hard_seconds: 3960,
            ..lifetime
        }
    } else {
        lifetime
    };
    SaParams {
        id: SaId {
            src: ip(src),
            dst: ip(dst),
            protocol: IpsecProtocol::Esp,
            spi,
        },
        mode,
        reqid,
        selector,
        encryption,
        encryption_key,
        integrity,
        integrity_key,
        lifetime,
        replay_window: 64,
        esn: false,
        encap: None,
    }
}

/// Polls the service's event socket until `want` matches an event forwarded
/// to ikev2, or `limit` passes. Returns every event seen.
pub fn wait_for_event(
    service: &mut PfkeyService,
    limit: Duration,
    want: impl Fn(&KernelEvent) -> bool,
) -> (Option<KernelEvent>, Vec<KernelEvent>) {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        for message in service.on_kernel_event().to_ikev2 {
            if let PfkeyToIkev2::Event(event) = message {
                if want(&event) {
                    return (Some(event), seen);
                }
                seen.push(event);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (None, seen)
}
