//! Client virtual addresses (AddAddress/DeleteAddress) against this
//! machine's kernel, in fresh network namespaces: the address the
//! gateway gave us put on the policy's interface as a /32 or /128,
//! reported to the parent, removed on delete, on flush, when a reload
//! drops `request address`, and by the parent's own path; refusals (no
//! `request address`, an address the host already has, outside the
//! flow, an interface that does not exist) leave the host untouched.

mod common;

use common::{in_new_netns, ip, net, require_root, sh};
use iked_common::ipc::{ChildConfig, ChildToParent, Ikev2ToPfkey, PfkeyToIkev2};
use iked_common::kernel::{FailureKind, Flow, IpsecMode, KernelSocketKind};
use iked_pfkey::route_socket::RouteSocket;
use iked_pfkey::routes::RouteManager;
use iked_pfkey::service::{Outcome, PfkeyService};

/// A client flow (`from dynamic`: our side any address) of policy `vpn`
/// with `request address any` on `iface`.
fn client_flow(iface: Option<&str>) -> Flow {
    let mut f = common::flow(
        "vpn",
        net("0.0.0.0", 0, "10.1.0.0", 16),
        "198.18.20.2",
        "198.18.20.1",
        IpsecMode::Tunnel,
    );
    f.virtual_ip_interface = iface.map(str::to_string);
    f
}

fn client_flow6(iface: &str) -> Flow {
    let mut f = common::flow(
        "vpn",
        net("::", 0, "2001:db8:1::", 48),
        "2001:db8:20::2",
        "2001:db8:20::1",
        IpsecMode::Tunnel,
    );
    f.virtual_ip_interface = Some(iface.to_string());
    f
}

fn config(generation: u64, flows: Vec<Flow>) -> ChildConfig {
    ChildConfig::Pfkey {
        generation,
        flows,
        routing: Default::default(),
    }
}

/// In a fresh namespace: lo up, and veth pair vip0 - vip0p, both up.
fn add_vip0() {
    sh(
        "ip link set lo up && ip link add vip0 type veth peer name vip0p \
        && ip link set vip0 up && ip link set vip0p up",
    );
}

fn service() -> PfkeyService {
    let mut service = common::open_service(KernelSocketKind::Xfrm);
    let fd = iked_pfkey::route_socket::open_route_socket().expect("route socket");
    service.attach_routes(RouteManager::new(
        RouteSocket::new(fd).expect("route socket"),
    ));
    service
}

fn add(service: &mut PfkeyService, id: u64, policy: &str, address: &str) -> Outcome {
    service.handle_request(Ikev2ToPfkey::AddAddress {
        id,
        policy: policy.into(),
        address: ip(address),
    })
}

fn delete(service: &mut PfkeyService, id: u64, policy: &str, address: &str) -> Outcome {
    service.handle_request(Ikev2ToPfkey::DeleteAddress {
        id,
        policy: policy.into(),
        address: ip(address),
    })
}

fn failure(outcome: &Outcome) -> &iked_common::kernel::KernelFailure {
    match &outcome.to_ikev2[..] {
        [PfkeyToIkev2::Failed { failure, .. }] => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn addresses(dev: &str) -> String {
    sh(&format!("ip addr show dev {dev}"))
}

fn index_of(dev: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            // /sys shows the namespace it was mounted in: ask ip instead.
            let out = sh(&format!("ip -o link show dev {dev}"));
            out.split(':').next().unwrap().trim().parse().unwrap()
        })
}

#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn a_virtual_address_is_added_reported_and_removed() {
    require_root();
    in_new_netns(|| {
        add_vip0();
        let index = index_of("vip0");
        let mut s = service();
        s.apply_config(&config(1, vec![client_flow(Some("vip0"))]));

        let o = add(&mut s, 1, "vpn", "10.9.0.5");
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 1 }]);
        assert_eq!(
            o.to_parent,
            vec![ChildToParent::AddressAdded {
                interface: index,
                address: ip("10.9.0.5")
            }]
        );
        let shown = addresses("vip0");
        assert!(
            shown.contains("inet 10.9.0.5/32 scope global vip0"),
            "{shown}"
        );
        // Asked again (a retransmitted request): done, nothing new.
        let o = add(&mut s, 2, "vpn", "10.9.0.5");
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 2 }]);
        assert!(o.to_parent.is_empty());

        let o = delete(&mut s, 3, "vpn", "10.9.0.5");
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 3 }]);
        assert_eq!(
            o.to_parent,
            vec![ChildToParent::AddressRemoved {
                interface: index,
                address: ip("10.9.0.5")
            }]
        );
        assert!(!addresses("vip0").contains("10.9.0.5"));
        // Not ours any more: refused, nothing touched.
        let o = delete(&mut s, 4, "vpn", "10.9.0.5");
        assert_eq!(failure(&o).kind, FailureKind::NotPermitted);
        assert!(
            failure(&o).message.contains("not installed by us"),
            "{}",
            failure(&o).message
        );

        // Flush at stop removes what is left.
        assert_eq!(add(&mut s, 5, "vpn", "10.9.0.6").to_ikev2.len(), 1);
        assert!(addresses("vip0").contains("10.9.0.6/32"));
        let o = s.flush_ours();
        assert!(o.to_parent.contains(&ChildToParent::AddressRemoved {
            interface: index,
            address: ip("10.9.0.6")
        }));
        assert!(!addresses("vip0").contains("10.9.0.6"));

        // A reload that drops `request address`: the address goes.
        assert_eq!(
            add(&mut s, 6, "vpn", "10.9.0.7").to_ikev2,
            vec![PfkeyToIkev2::Done { id: 6 }]
        );
        let o = s.apply_config(&config(2, vec![client_flow(None)]));
        assert!(o.to_parent.contains(&ChildToParent::AddressRemoved {
            interface: index,
            address: ip("10.9.0.7")
        }));
        assert!(!addresses("vip0").contains("10.9.0.7"));
    });
}

#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn an_ipv6_virtual_address_is_a_128_without_dad() {
    require_root();
    in_new_netns(|| {
        add_vip0();
        let mut s = service();
        s.apply_config(&config(1, vec![client_flow6("vip0")]));
        let o = add(&mut s, 1, "vpn", "2001:db8:9::5");
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 1 }]);
        let shown = sh("ip -6 addr show dev vip0");
        let ours = shown
            .lines()
            .find(|l| l.contains("inet6 2001:db8:9::5/128 scope global"))
            .unwrap_or_else(|| panic!("{shown}"));
        assert!(!ours.contains("tentative"), "usable at once: {shown}");
        let o = delete(&mut s, 2, "vpn", "2001:db8:9::5");
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 2 }]);
        assert!(!sh("ip -6 addr show dev vip0").contains("2001:db8:9::5"));
    });
}

#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn refused_addresses_leave_the_host_untouched() {
    require_root();
    in_new_netns(|| {
        add_vip0();
        sh("ip addr add 10.9.0.9/32 dev vip0");
        let before = addresses("vip0");
        let mut narrow = client_flow(Some("vip0"));
        narrow.selector = net("10.9.0.0", 24, "10.1.0.0", 16);
        let mut other = client_flow(None);
        other.name = "site".into();
        let mut s = service();
        s.apply_config(&config(1, vec![narrow, other]));

        // A policy without `request address`.
        let o = add(&mut s, 1, "site", "10.9.0.5");
        assert_eq!(failure(&o).kind, FailureKind::NotPermitted);
        assert!(failure(&o).message.contains("has no `request address`"));
        // Outside our side of the flow.
        let o = add(&mut s, 2, "vpn", "10.8.0.5");
        assert!(
            failure(&o).message.contains("outside our side 10.9.0.0/24"),
            "{}",
            failure(&o).message
        );
        // The host's own address: not ours to add, nor later to remove.
        let o = add(&mut s, 3, "vpn", "10.9.0.9");
        assert!(
            failure(&o)
                .message
                .contains("the host already has it on vip0"),
            "{}",
            failure(&o).message
        );
        let o = delete(&mut s, 4, "vpn", "10.9.0.9");
        assert_eq!(failure(&o).kind, FailureKind::NotPermitted);
        assert!(o.to_parent.is_empty());
        assert_eq!(addresses("vip0"), before, "nothing changed");

        // An interface that does not exist.
        s.apply_config(&config(2, vec![client_flow(Some("nosuch0"))]));
        let o = add(&mut s, 5, "vpn", "10.9.0.5");
        assert_eq!(failure(&o).kind, FailureKind::NotFound);
        assert_eq!(failure(&o).message, "interface nosuch0: no such interface");
        assert!(s.flush_ours().to_parent.is_empty());
        assert_eq!(addresses("vip0"), before);
    });
}

#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn the_parent_removes_addresses_pfkey_left() {
    require_root();
    in_new_netns(|| {
        sh("ip link set lo up");
        let mut s = service();
        s.apply_config(&config(1, vec![client_flow(Some("lo"))]));
        let o = add(&mut s, 1, "vpn", "10.9.0.5");
        let [ChildToParent::AddressAdded { interface, address }] = o.to_parent[..] else {
            panic!("{o:?}")
        };
        assert!(addresses("lo").contains("10.9.0.5/32"));
        // pfkey "dies" without flushing; the parent removes it from what
        // was reported. A second run finds it gone: no error.
        drop(s);
        iked_pfkey::addresses::remove_addresses(&[(interface, address)]).unwrap();
        assert!(!addresses("lo").contains("10.9.0.5"));
        iked_pfkey::addresses::remove_addresses(&[(interface, address)]).unwrap();
    });
}
