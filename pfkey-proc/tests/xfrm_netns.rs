//! pfkey-proc's XFRM backend on this machine's kernel, in a private network
//! namespace: policies added, dumped and removed; an SA add that the kernel
//! cannot do (no ESP here) becomes a clear failure and the service goes on;
//! ACQUIRE arrives; only our entries are flushed; requests outside the
//! configured flows never reach the kernel.

mod common;

use std::time::Duration;

use common::*;
use iked_common::ipc::{ChildToParent, Ikev2ToPfkey, PfkeyToIkev2};
use iked_common::kernel::{
    Encryption, FailureKind, IpsecMode, IpsecProtocol, KernelEntry, KernelEvent, KernelSocketKind,
    Lifetime, PolicyDirection,
};

const LOCAL: &str = "192.0.2.1";
const PEER: &str = "192.0.2.2";

fn site_selector() -> iked_common::kernel::Selector {
    net("10.1.0.0", 16, "10.2.0.0", 16)
}

#[test]
#[ignore = "needs root: run by .ci/run"]
fn xfrm_policies_errors_acquire_and_flush_on_this_kernel() {
    require_root();
    in_new_netns(|| {
        // Loopback never passes through XFRM (NOXFRM): use a veth pair.
        sh("ip link set lo up && ip link add va type veth peer name vb && ip link set vb up \
            && ip addr add 10.1.0.1/24 dev va && ip link set va up && ip route add 10.2.0.0/16 dev va");
        // Another daemon's policy, present before we start: must survive us.
        sh(
            "ip xfrm policy add src 172.16.0.0/16 dst 172.17.0.0/16 dir out priority 10 \
            tmpl src 198.51.100.1 dst 198.51.100.2 proto esp mode tunnel reqid 99",
        );

        let mut service = open_service(KernelSocketKind::Xfrm);
        assert_eq!(service.kind(), KernelSocketKind::Xfrm);
        let applied = service.apply_config(&config(vec![flow(
            "site",
            site_selector(),
            LOCAL,
            PEER,
            IpsecMode::Tunnel,
        )]));
        assert!(applied.to_parent.is_empty(), "nothing installed yet");

        // Policies: out, in, fwd, all through the IPC requests.
        let out = policy(
            site_selector(),
            PolicyDirection::Out,
            LOCAL,
            PEER,
            IpsecMode::Tunnel,
            REQID,
        );
        let inb = policy(
            site_selector().reversed(),
            PolicyDirection::In,
            PEER,
            LOCAL,
            IpsecMode::Tunnel,
            REQID,
        );
        let fwd = policy(
            site_selector().reversed(),
            PolicyDirection::Fwd,
            PEER,
            LOCAL,
            IpsecMode::Tunnel,
            REQID,
        );
        let mut reported = Vec::new();
        for (id, p) in [(1, out), (2, inb), (3, fwd)] {
            let outcome = service.handle_request(Ikev2ToPfkey::AddPolicy { id, policy: p });
            assert_eq!(outcome.to_ikev2, vec![PfkeyToIkev2::Done { id }]);
            reported.extend(outcome.to_parent);
        }
        assert_eq!(
            reported.len(),
            3,
            "each added policy reported to the parent: {reported:?}"
        );
        assert!(reported.iter().all(|m| matches!(
            m,
            ChildToParent::KernelEntryAdded(KernelEntry::Policy { .. })
        )));

        // Dumped by us...
        let dumped = service.backend_mut().dump_policies().unwrap();
        for p in [out, inb, fwd] {
            let found = dumped
                .iter()
                .find(|d| d.selector == p.selector && d.direction == p.direction)
                .unwrap_or_else(|| panic!("policy {:?} missing from dump {dumped:?}", p.direction));
            assert_eq!(found.priority, 2000);
            assert_eq!(found.template, Some(p.template));
        }
        assert_eq!(dumped.len(), 4, "ours and the other daemon's: {dumped:?}");
        // ...and seen the same by iproute2, an independent decoder.
        let listing = sh("ip xfrm policy list");
        assert!(
            listing.contains("src 10.1.0.0/16 dst 10.2.0.0/16 \n\tdir out priority 2000"),
            "{listing}"
        );
        assert!(
            listing.contains("src 10.2.0.0/16 dst 10.1.0.0/16 \n\tdir fwd priority 2000"),
            "{listing}"
        );
        assert!(
            listing.contains(&format!(
                "tmpl src 192.0.2.1 dst 192.0.2.2\n\t\tproto esp reqid {REQID} mode tunnel"
            )),
            "{listing}"
        );

        // The same policy twice: a typed failure, not a crash.
        match service
            .handle_request(Ikev2ToPfkey::AddPolicy { id: 4, policy: out })
            .to_ikev2
            .as_slice()
        {
            [PfkeyToIkev2::Failed { id: 4, failure }] => {
                assert_eq!(failure.kind, FailureKind::AlreadyExists);
                assert_eq!(failure.errno, 17);
            }
            other => panic!("duplicate policy: {other:?}"),
        }

        // An SA: this kernel has no ESP, so the add fails with a clear reason.
        let sa = static_sa(
            LOCAL,
            PEER,
            0x1001,
            site_selector(),
            IpsecMode::Tunnel,
            REQID,
            Encryption::AesCbc,
            Lifetime::default(),
        );
        let outcome = service.handle_request(Ikev2ToPfkey::AddSa { id: 5, sa });
        assert!(
            outcome.to_parent.is_empty(),
            "nothing installed: {outcome:?}"
        );
        match outcome.to_ikev2.as_slice() {
            [PfkeyToIkev2::Failed { id: 5, failure }] => {
                assert_eq!(failure.kind, FailureKind::Unsupported, "{failure:?}");
                assert_eq!(failure.errno, nix::libc::EPROTONOSUPPORT);
                assert!(
                    failure
                        .message
                        .starts_with("add SA: kernel has no ESP support (esp4/esp6 not loaded)"),
                    "{}",
                    failure.message
                );
            }
            other => panic!("SA add on a kernel without ESP: {other:?}"),
        }
        // ...and the service keeps working.
        assert_eq!(
            request(&mut service, Ikev2ToPfkey::Ping { id: 6 }),
            PfkeyToIkev2::Pong { id: 6 }
        );

        // An SPI for an inbound SA from the peer (a larval SA in the kernel).
        let spi = match request(
            &mut service,
            Ikev2ToPfkey::AllocateSpi {
                id: 7,
                src: common::ip(PEER),
                dst: common::ip(LOCAL),
                protocol: IpsecProtocol::Esp,
                reqid: REQID,
                min: 0x1000,
                max: 0x1fff,
            },
        ) {
            PfkeyToIkev2::SpiAllocated { id: 7, spi } => spi,
            other => panic!("allocate SPI: {other:?}"),
        };
        assert!((0x1000..=0x1fff).contains(&spi), "spi 0x{spi:x}");
        let states = sh("ip xfrm state list");
        assert!(
            states.contains(&format!(
                "src 192.0.2.2 dst 192.0.2.1\n\tproto esp spi 0x{spi:08x}"
            )),
            "{states}"
        );

        // ACQUIRE: outbound traffic hits our policy and no SA exists.
        let socket = std::net::UdpSocket::bind("10.1.0.1:0").unwrap();
        let _ = socket.send_to(b"trigger", "10.2.0.5:9");
        let (acquire, others) = wait_for_event(&mut service, Duration::from_secs(5), |e| {
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
                assert_eq!(
                    (src, dst, reqid),
                    (common::ip(LOCAL), common::ip(PEER), REQID)
                );
                assert_eq!(selector.src, common::ip("10.1.0.1"));
                assert_eq!(selector.dst, common::ip("10.2.0.5"));
                assert_eq!(selector.protocol, 17);
                assert_eq!(selector.dst_port, 9);
            }
            other => panic!("no ACQUIRE within 5 s: {other:?}, also saw {others:?}"),
        }

        // Stop: our policies and larval SA go, the other daemon's policy stays.
        let outcome = service.flush_ours();
        let removed: Vec<_> = outcome
            .to_parent
            .iter()
            .filter(|m| matches!(m, ChildToParent::KernelEntryRemoved(_)))
            .collect();
        assert_eq!(
            removed.len(),
            4,
            "3 policies + 1 allocated SPI: {outcome:?}"
        );
        assert_eq!(service.installed().count(), 0);
        let left = service.backend_mut().dump_policies().unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].selector, net("172.16.0.0", 16, "172.17.0.0", 16));
        let states = sh("ip xfrm state list");
        assert!(!states.contains(&format!("spi 0x{spi:08x}")), "{states}");
    });
}

#[test]
#[ignore = "needs root: run by .ci/run"]
fn requests_outside_the_flows_never_reach_the_kernel() {
    require_root();
    in_new_netns(|| {
        sh("ip link set lo up");
        let mut service = open_service(KernelSocketKind::Xfrm);
        service.apply_config(&config(vec![flow(
            "site",
            site_selector(),
            LOCAL,
            PEER,
            IpsecMode::Tunnel,
        )]));

        let wider = policy(
            net("10.0.0.0", 8, "10.2.0.0", 16),
            PolicyDirection::Out,
            LOCAL,
            PEER,
            IpsecMode::Tunnel,
            REQID,
        );
        let elsewhere = policy(
            site_selector(),
            PolicyDirection::Out,
            LOCAL,
            "203.0.113.66",
            IpsecMode::Tunnel,
            REQID,
        );
        for (id, p) in [(1, wider), (2, elsewhere)] {
            let outcome = service.handle_request(Ikev2ToPfkey::AddPolicy { id, policy: p });
            assert!(outcome.to_parent.is_empty());
            match outcome.to_ikev2.as_slice() {
                [PfkeyToIkev2::Failed { failure, .. }] => {
                    assert_eq!(failure.kind, FailureKind::NotPermitted);
                    assert!(
                        failure.message.starts_with("refused: "),
                        "{}",
                        failure.message
                    );
                }
                other => panic!("policy {id} outside the flows: {other:?}"),
            }
        }
        let stranger = static_sa(
            LOCAL,
            "203.0.113.66",
            0x2000,
            site_selector(),
            IpsecMode::Tunnel,
            REQID,
            Encryption::AesGcm16,
            Lifetime::default(),
        );
        match request(
            &mut service,
            Ikev2ToPfkey::AddSa {
                id: 3,
                sa: stranger,
            },
        ) {
            PfkeyToIkev2::Failed { id: 3, failure } => {
                assert_eq!(failure.kind, FailureKind::NotPermitted)
            }
            other => panic!("SA to an unconfigured peer: {other:?}"),
        }
        // Deleting what we did not install (another daemon's policy).
        match request(
            &mut service,
            Ikev2ToPfkey::DeletePolicy {
                id: 4,
                selector: site_selector(),
                direction: PolicyDirection::Out,
            },
        ) {
            PfkeyToIkev2::Failed { id: 4, failure } => {
                assert_eq!(failure.kind, FailureKind::NotPermitted)
            }
            other => panic!("delete of a foreign policy: {other:?}"),
        }
        assert!(
            service.backend_mut().dump_policies().unwrap().is_empty(),
            "nothing reached the kernel"
        );
        assert!(sh("ip xfrm policy list").trim().is_empty());

        // A reload that drops the flow removes what it allowed.
        let ok = policy(
            site_selector(),
            PolicyDirection::Out,
            LOCAL,
            PEER,
            IpsecMode::Tunnel,
            REQID,
        );
        assert_done(
            request(&mut service, Ikev2ToPfkey::AddPolicy { id: 5, policy: ok }),
            5,
        );
        let outcome = service.apply_config(&config(vec![]));
        assert_eq!(outcome.to_parent.len(), 1, "{outcome:?}");
        assert!(service.backend_mut().dump_policies().unwrap().is_empty());
    });
}

#[test]
#[ignore = "needs root: run by .ci/run"]
fn parent_removes_listed_entries_with_its_own_socket() {
    require_root();
    in_new_netns(|| {
        sh("ip link set lo up");
        let mut service = open_service(KernelSocketKind::Xfrm);
        service.apply_config(&config(vec![flow(
            "site",
            site_selector(),
            LOCAL,
            PEER,
            IpsecMode::Tunnel,
        )]));
        let out = policy(
            site_selector(),
            PolicyDirection::Out,
            LOCAL,
            PEER,
            IpsecMode::Tunnel,
            REQID,
        );
        let added = service.handle_request(Ikev2ToPfkey::AddPolicy { id: 1, policy: out });
        let entries: Vec<KernelEntry> = added
            .to_parent
            .into_iter()
            .map(|m| match m {
                ChildToParent::KernelEntryAdded(e) => e,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(entries.len(), 1);
        sh("ip xfrm policy add src 172.16.0.0/16 dst 172.17.0.0/16 dir out");
        // pfkey-proc "died": the parent removes the list it kept.
        drop(service);
        iked_pfkey::service::remove_entries(KernelSocketKind::Xfrm, &entries).unwrap();
        let listing = sh("ip xfrm policy list");
        assert!(!listing.contains("10.1.0.0/16"), "{listing}");
        assert!(listing.contains("172.16.0.0/16"), "{listing}");
        // Already gone is not an error.
        iked_pfkey::service::remove_entries(KernelSocketKind::Xfrm, &entries).unwrap();
    });
}
