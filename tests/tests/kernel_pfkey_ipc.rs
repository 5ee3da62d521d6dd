//! The real pfkey-proc, started the way the parent starts it and driven
//! only through its IPC channels: after it has dropped to the unprivileged
//! user with CAP_NET_ADMIN alone, requests outside the configured flows are
//! refused, requests inside reach the kernel and are reported to the parent,
//! a kernel failure comes back typed while the process keeps serving, and
//! shutdown removes exactly what it installed.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use iked_common::child::PARENT_CHANNEL_FD;
use iked_common::ipc::{
    self, ChildConfig, ChildToParent, DescriptorPurpose, Ikev2ToPfkey, ParentToChild, PfkeyToIkev2,
    Role, Verbosity, IPC_VERSION,
};
use iked_common::kernel::{
    Encryption, FailureKind, Flow, Integrity, IpsecMode, IpsecProtocol, KernelEntry,
    KernelSocketKind, Lifetime, PolicyDirection, PolicyParams, SaId, SaParams, SaTemplate,
    SecretBytes, Selector,
};
use iked_tests::{binary, require_root};

fn sh(command: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "`{command}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A NETLINK_XFRM socket, as the parent opens it (nix has no constant).
fn xfrm_socket() -> OwnedFd {
    netlink_socket(nix::libc::NETLINK_XFRM)
}

fn netlink_socket(protocol: i32) -> OwnedFd {
    // SAFETY: a plain system call with integer arguments.
    let fd = unsafe {
        nix::libc::socket(
            nix::libc::AF_NETLINK,
            nix::libc::SOCK_RAW | nix::libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    assert!(
        fd >= 0,
        "netlink socket ({protocol}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: socket(2) just returned this descriptor to us alone.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

/// Bounds every wait on a channel: a silent child fails the test.
fn with_timeout(fd: BorrowedFd<'_>) {
    let tv = nix::sys::time::TimeVal::new(10, 0);
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
        .expect("SO_RCVTIMEO");
}

/// The next message from the child other than its counters: pfkey sends
/// `PfkeyStats` whenever a count changes (`ikectl show stats`), between
/// the messages this test follows.
fn from_child(fd: &OwnedFd, what: &str) -> ChildToParent {
    loop {
        let message = ipc::recv::<ChildToParent>(fd.as_fd())
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
            .expect_descriptors(0)
            .unwrap()
            .0;
        if !matches!(message, ChildToParent::PfkeyStats(_)) {
            return message;
        }
    }
}

fn to_ikev2(fd: &OwnedFd, what: &str) -> PfkeyToIkev2 {
    ipc::recv::<PfkeyToIkev2>(fd.as_fd())
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
        .expect_descriptors(0)
        .unwrap()
        .0
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn site() -> Selector {
    Selector::between(ip("10.1.0.0"), 16, ip("10.2.0.0"), 16)
}

fn out_policy(selector: Selector, peer: &str) -> PolicyParams {
    PolicyParams {
        selector,
        direction: PolicyDirection::Out,
        priority: 3000,
        template: SaTemplate {
            src: ip("192.0.2.1"),
            dst: ip(peer),
            protocol: IpsecProtocol::Esp,
            mode: IpsecMode::Tunnel,
            reqid: iked_common::kernel::LARVAL_REQID + 9,
        },
    }
}

#[test]
#[ignore = "needs root: run by .ci/run"]
fn pfkey_process_serves_only_the_configured_flows_over_ipc() {
    require_root("pfkey_process_serves_only_the_configured_flows_over_ipc");
    let iked = binary("iked");
    let user = nix::unistd::User::from_name("_iked_pfkey")
        .expect("getpwnam")
        .expect("user _iked_pfkey (the pfkey process's own) must exist, as scripts/test-all.sh creates it");
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        sh("ip link set lo up");
        sh("ip xfrm policy add src 172.16.0.0/16 dst 172.17.0.0/16 dir out priority 10");

        let (parent_end, child_end) = ipc::seqpacket_pair().unwrap();
        let (ikev2_end, pfkey_sibling) = ipc::seqpacket_pair().unwrap();
        with_timeout(parent_end.as_fd());
        with_timeout(ikev2_end.as_fd());
        let raw = child_end.as_raw_fd();
        let mut command = Command::new(iked);
        command
            .args(["--privsep-child", "pfkey", "-d"])
            .stdin(Stdio::null())
            .env_clear();
        // SAFETY: only dup2/fcntl between fork and exec, as the parent does.
        unsafe {
            command.pre_exec(move || {
                if raw == PARENT_CHANNEL_FD {
                    if nix::libc::fcntl(raw, nix::libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if nix::libc::dup2(raw, PARENT_CHANNEL_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("start pfkey-proc");
        drop(child_end);

        // The parent's side of the startup protocol.
        ipc::send(
            parent_end.as_fd(),
            &ParentToChild::Hello {
                version: IPC_VERSION,
                verbosity: Verbosity::Debug,
                chroot_dir: "/var/empty".into(),
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            },
            &[],
        )
        .unwrap();
        assert_eq!(
            from_child(&parent_end, "Hello"),
            ChildToParent::Hello {
                version: IPC_VERSION,
                role: Role::Pfkey
            }
        );
        let (requests, events) = (xfrm_socket(), xfrm_socket());
        let routes = netlink_socket(nix::libc::NETLINK_ROUTE);
        for (purpose, fd) in [
            (
                DescriptorPurpose::KernelRequests(KernelSocketKind::Xfrm),
                requests.as_fd(),
            ),
            (
                DescriptorPurpose::KernelEvents(KernelSocketKind::Xfrm),
                events.as_fd(),
            ),
            (
                DescriptorPurpose::Sibling(Role::Ikev2),
                pfkey_sibling.as_fd(),
            ),
            (DescriptorPurpose::RouteNetlink, routes.as_fd()),
        ] {
            ipc::send(
                parent_end.as_fd(),
                &ParentToChild::Descriptor(purpose),
                &[fd],
            )
            .unwrap();
        }
        drop((requests, events, pfkey_sibling, routes));
        ipc::send(
            parent_end.as_fd(),
            &ParentToChild::DropPrivileges {
                on_violation: iked_common::privileges::sandbox::ViolationAction::Kill,
            },
            &[],
        )
        .unwrap();
        assert_eq!(from_child(&parent_end, "Ready"), ChildToParent::Ready);
        let flow = Flow {
            name: "site".into(),
            selector: site(),
            local: ip("192.0.2.1"),
            peer: iked_common::kernel::FlowPeer::Address(ip("192.0.2.2")),
            mode: IpsecMode::Tunnel,
            encryption: vec![Encryption::AesCbc],
            integrity: vec![Integrity::HmacSha256_128],
            limits: iked_common::kernel::SaLimits::default(),
            pools: Vec::new(),
            virtual_ip_interface: None,
        };
        ipc::send(
            parent_end.as_fd(),
            &ParentToChild::Config(ChildConfig::Pfkey {
                generation: 4,
                flows: vec![flow],
                routing: Default::default(),
            }),
            &[],
        )
        .unwrap();
        assert_eq!(
            from_child(&parent_end, "ConfigApplied"),
            ChildToParent::ConfigApplied { generation: 4 }
        );

        // Outside the flows: another peer, wider traffic. Refused, and the
        // parent hears of no new entry.
        for (id, policy) in [
            (1, out_policy(site(), "203.0.113.9")),
            (
                2,
                out_policy(
                    Selector {
                        src_prefix: 8,
                        ..site()
                    },
                    "192.0.2.2",
                ),
            ),
        ] {
            ipc::send(
                ikev2_end.as_fd(),
                &Ikev2ToPfkey::AddPolicy { id, policy },
                &[],
            )
            .unwrap();
            match to_ikev2(&ikev2_end, "refusal") {
                PfkeyToIkev2::Failed { id: got, failure } => {
                    assert_eq!(got, id);
                    assert_eq!(failure.kind, FailureKind::NotPermitted, "{failure:?}");
                }
                other => panic!("request {id} outside the flows: {other:?}"),
            }
        }
        let listing = sh("ip xfrm policy list");
        assert!(
            !listing.contains("10.1.0.0/16"),
            "refused policy reached the kernel:\n{listing}"
        );

        // Inside the flow: installed and reported.
        let policy = out_policy(site(), "192.0.2.2");
        ipc::send(
            ikev2_end.as_fd(),
            &Ikev2ToPfkey::AddPolicy { id: 3, policy },
            &[],
        )
        .unwrap();
        assert_eq!(to_ikev2(&ikev2_end, "Done"), PfkeyToIkev2::Done { id: 3 });
        let ours = KernelEntry::Policy {
            selector: site(),
            direction: PolicyDirection::Out,
        };
        assert_eq!(
            from_child(&parent_end, "KernelEntryAdded"),
            ChildToParent::KernelEntryAdded(ours.clone())
        );
        let listing = sh("ip xfrm policy list");
        assert!(
            listing.contains("src 10.1.0.0/16 dst 10.2.0.0/16 \n\tdir out priority 3000"),
            "{listing}"
        );

        // An SA this kernel cannot hold (no ESP): a typed failure, and the
        // process goes on serving.
        let sa = SaParams {
            id: SaId {
                src: ip("192.0.2.1"),
                dst: ip("192.0.2.2"),
                protocol: IpsecProtocol::Esp,
                spi: 0x4242,
            },
            mode: IpsecMode::Tunnel,
            reqid: iked_common::kernel::LARVAL_REQID + 9,
            selector: site(),
            encryption: Encryption::AesCbc,
            encryption_key: SecretBytes::new(vec![0x11; 16]),
            integrity: Some(Integrity::HmacSha256_128),
            integrity_key: SecretBytes::new(vec![0x22; 32]),
            // Within the flow's limits, so that the kernel is asked.
            lifetime: Lifetime {
                soft_seconds: 3600,
                hard_seconds: 3960,
                ..Lifetime::default()
            },
            replay_window: 32,
            esn: false,
            encap: None,
        };
        ipc::send(ikev2_end.as_fd(), &Ikev2ToPfkey::AddSa { id: 4, sa }, &[]).unwrap();
        match to_ikev2(&ikev2_end, "SA failure") {
            PfkeyToIkev2::Failed { id: 4, failure } => {
                assert_eq!(failure.kind, FailureKind::Unsupported, "{failure:?}");
                assert!(
                    failure.message.contains("kernel has no ESP support"),
                    "{}",
                    failure.message
                );
            }
            other => panic!("SA add on a kernel without ESP: {other:?}"),
        }
        ipc::send(ikev2_end.as_fd(), &Ikev2ToPfkey::Ping { id: 5 }, &[]).unwrap();
        assert_eq!(to_ikev2(&ikev2_end, "Pong"), PfkeyToIkev2::Pong { id: 5 });

        // Shutdown: ours removed and reported, the other policy stays.
        ipc::send(parent_end.as_fd(), &ParentToChild::Shutdown, &[]).unwrap();
        assert_eq!(
            from_child(&parent_end, "KernelEntryRemoved"),
            ChildToParent::KernelEntryRemoved(ours)
        );
        assert_eq!(
            from_child(&parent_end, "ShutdownComplete"),
            ChildToParent::ShutdownComplete
        );
        let status = child.wait().expect("wait for pfkey-proc");
        assert!(status.success(), "pfkey-proc exited with {status}");
        let listing = sh("ip xfrm policy list");
        assert!(
            !listing.contains("10.1.0.0/16"),
            "our policy survived shutdown:\n{listing}"
        );
        assert!(
            listing.contains("172.16.0.0/16"),
            "the other policy was removed:\n{listing}"
        );
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e));
}
