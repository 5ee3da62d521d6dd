//! XFRM_MSG_MIGRATE on this machine's kernel (it has XFRM policies but no
//! ESP, so only policies can be moved here; the SAs move in the kernel
//! lab, kernel_lab.rs): a policy's template moves to new gateway
//! addresses, IPv4 to IPv6 too; a policy that is not there is a clear
//! NotFound; the request carries our mark's reqid check.

mod common;

use common::{in_new_netns, ip, net, policy, require_root, sh, REQID};
use iked_common::kernel::{FailureKind, IpsecMode, IpsecProtocol, PolicyDirection};
use iked_pfkey::backend::{KernelBackend, MigrateRequest};
use iked_pfkey::marking::MarkedBackend;
use iked_pfkey::xfrm::XfrmBackend;

fn backend() -> MarkedBackend {
    let sockets =
        iked_pfkey::socket::open_kernel_sockets(Some(iked_common::kernel::KernelSocketKind::Xfrm))
            .expect("xfrm sockets");
    MarkedBackend::new(Box::new(
        XfrmBackend::new(sockets.requests, sockets.events).expect("xfrm backend"),
    ))
}

fn request(direction: PolicyDirection, old: (&str, &str), new: (&str, &str)) -> MigrateRequest {
    MigrateRequest {
        selector: selector_for(direction),
        direction,
        old_src: ip(old.0),
        old_dst: ip(old.1),
        new_src: ip(new.0),
        new_dst: ip(new.1),
        protocol: IpsecProtocol::Esp,
        mode: IpsecMode::Tunnel,
        reqid: REQID,
        encap: None,
    }
}

fn selector_for(direction: PolicyDirection) -> iked_common::kernel::Selector {
    let out = net("10.1.0.0", 16, "10.9.0.5", 32);
    if direction == PolicyDirection::Out {
        out
    } else {
        out.reversed()
    }
}

#[test]
#[ignore = "needs root (network namespaces, XFRM): run by .ci/run"]
fn policies_move_to_new_gateway_addresses() {
    require_root();
    in_new_netns(|| {
        sh("ip link set lo up");
        let mut b = backend();
        let out = policy(
            selector_for(PolicyDirection::Out),
            PolicyDirection::Out,
            "198.18.0.1",
            "198.18.1.7",
            IpsecMode::Tunnel,
            REQID,
        );
        let inb = policy(
            selector_for(PolicyDirection::In),
            PolicyDirection::In,
            "198.18.1.7",
            "198.18.0.1",
            IpsecMode::Tunnel,
            REQID,
        );
        b.add_policy(&out).unwrap();
        b.add_policy(&inb).unwrap();

        b.migrate(&request(
            PolicyDirection::Out,
            ("198.18.0.1", "198.18.1.7"),
            ("198.18.0.1", "198.19.2.9"),
        ))
        .expect("migrate out policy");
        b.migrate(&request(
            PolicyDirection::In,
            ("198.18.1.7", "198.18.0.1"),
            ("198.19.2.9", "198.18.0.1"),
        ))
        .expect("migrate in policy");
        let shown = sh("ip xfrm policy");
        println!("{shown}");
        assert!(
            shown.contains("tmpl src 198.18.0.1 dst 198.19.2.9"),
            "out template moved: {shown}"
        );
        assert!(
            shown.contains("tmpl src 198.19.2.9 dst 198.18.0.1"),
            "in template moved: {shown}"
        );
        assert!(!shown.contains("198.18.1.7"), "{shown}");
        // Our dump reads the moved templates back.
        let dumped = b.dump_policies().unwrap();
        let template = dumped
            .iter()
            .find(|p| p.direction == PolicyDirection::Out)
            .and_then(|p| p.template)
            .unwrap();
        assert_eq!(
            (template.src, template.dst),
            (ip("198.18.0.1"), ip("198.19.2.9"))
        );

        // To IPv6 outer addresses (the inner traffic stays IPv4).
        b.migrate(&request(
            PolicyDirection::Out,
            ("198.18.0.1", "198.19.2.9"),
            ("2001:db8::1", "2001:db8:1::9"),
        ))
        .expect("migrate to IPv6");
        let shown = sh("ip xfrm policy");
        assert!(
            shown.contains("tmpl src 2001:db8::1 dst 2001:db8:1::9"),
            "{shown}"
        );

        // A policy that is not there: the kernel's ENOENT, said clearly.
        let mut missing = request(
            PolicyDirection::Fwd,
            ("198.19.2.9", "198.18.0.1"),
            ("198.19.2.10", "198.18.0.1"),
        );
        missing.selector = net("10.7.0.0", 16, "10.1.0.0", 16);
        let f = b.migrate(&missing).unwrap_err();
        assert_eq!(f.kind, FailureKind::NotFound, "{}", f.message);
        assert!(f.message.starts_with("migrate: "), "{}", f.message);
        // A reqid that is not ours is refused before the kernel.
        let mut foreign = request(
            PolicyDirection::In,
            ("198.19.2.9", "198.18.0.1"),
            ("198.19.2.10", "198.18.0.1"),
        );
        foreign.reqid = 7;
        let f = b.migrate(&foreign).unwrap_err();
        assert_eq!(f.kind, FailureKind::NotPermitted);
        assert!(sh("ip xfrm policy").contains("tmpl src 198.19.2.9 dst 198.18.0.1"));
    });
}
