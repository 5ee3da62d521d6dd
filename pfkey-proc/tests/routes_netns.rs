//! pfkey's routes against this machine's kernel, in fresh network
//! namespaces (rtnetlink works here in full; only ESP SAs are missing, so
//! the route manager is driven as the service drives it when an outbound
//! tunnel-mode SA is installed or removed): the route to the remote
//! network with the inner source in our table and our rule, shared by the
//! SAs that need it, removed with the last; the gateway towards a peer
//! off the link; no route where the host's routes already do it; IPv6;
//! table changes, `noroutes`, stale routes of an earlier run; source
//! lookups.

mod common;

use std::net::IpAddr;
use std::os::fd::{FromRawFd, OwnedFd};

use common::{in_new_netns, require_root, sh};
use iked_common::kernel::{IpsecProtocol, SaId, Selector};
use iked_common::routing::{RouteSettings, DEFAULT_ROUTING_TABLE, ROUTING_RULE_PRIORITY};
use iked_pfkey::route_socket::RouteSocket;
use iked_pfkey::routes::{RouteManager, RouteNeed};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A NETLINK_ROUTE socket in the calling thread's namespace, as the parent
/// opens it for pfkey.
fn manager() -> RouteManager {
    let fd = iked_pfkey::route_socket::open_route_socket().expect("route socket");
    RouteManager::new(RouteSocket::new(fd).expect("take route socket"))
}

/// A link (one end of a veth pair) with our gateway address and inner addresses on lo.
fn gateway_host() {
    sh("ip link set lo up \
        && ip link add dum0 type veth peer name dum0p && ip link set dum0p up && ip link set dum0 up \
        && ip addr add 198.18.0.1/24 dev dum0 \
        && ip addr add 2001:db8:18::1/64 dev dum0 nodad \
        && ip addr add 10.1.1.1/32 dev lo \
        && ip addr add 2001:db8:a::1/128 dev lo \
        && ip route add 198.19.5.0/24 via 198.18.0.254 dev dum0");
}

fn sa(src: &str, dst: &str, spi: u32) -> SaId {
    SaId {
        src: ip(src),
        dst: ip(dst),
        protocol: IpsecProtocol::Esp,
        spi,
    }
}

fn need(sa: SaId, local: (&str, u8), remote: (&str, u8)) -> RouteNeed {
    RouteNeed::of(
        sa,
        &Selector::between(ip(local.0), local.1, ip(remote.0), remote.1),
    )
}

/// The routes in table `n` (none when the kernel has no such table: it
/// goes with its last route).
fn table(n: u32, v6: bool) -> String {
    let out = std::process::Command::new("ip")
        .args([if v6 { "-6" } else { "-4" }, "route", "show", "table"])
        .arg(n.to_string())
        .output()
        .expect("ip route");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("FIB table does not exist") {
        return String::new();
    }
    assert!(out.status.success(), "ip route show table {n}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rules(v6: bool) -> String {
    sh(&format!("ip {} rule show", if v6 { "-6" } else { "-4" }))
}

fn our_rule_is_there(v6: bool) -> bool {
    rules(v6).lines().any(|l| {
        l.starts_with(&format!("{ROUTING_RULE_PRIORITY}:"))
            && l.contains(&format!("lookup {DEFAULT_ROUTING_TABLE}"))
    })
}

#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn a_tunnel_sa_routes_its_remote_network_from_the_inner_address_until_its_last_sa_goes() {
    require_root();
    in_new_netns(|| {
        gateway_host();
        let mut routes = manager();
        routes.apply_settings(RouteSettings::default());
        assert!(!our_rule_is_there(false), "no rule before a route");

        let first = sa("198.18.0.1", "198.18.0.2", 0x1001);
        routes.sa_installed(need(first, ("10.1.1.0", 24), ("10.2.1.0", 24)));
        let shown = table(DEFAULT_ROUTING_TABLE, false);
        assert_eq!(
            shown.trim(),
            "10.2.1.0/24 dev dum0 proto static scope link src 10.1.1.1",
            "{shown}"
        );
        assert!(our_rule_is_there(false), "{}", rules(false));
        assert!(
            sh("ip route show table main")
                .lines()
                .all(|l| !l.contains("10.2.1.0")),
            "the main table is untouched"
        );
        // The kernel now sends the gateway's own traffic there from the
        // inner address, which the tunnel's policy matches.
        let get = sh("ip route get 10.2.1.7");
        assert!(
            get.contains("dev dum0") && get.contains("src 10.1.1.1"),
            "{get}"
        );

        // A rekey: the new SA comes before the old one goes; one route.
        let second = sa("198.18.0.1", "198.18.0.2", 0x1002);
        routes.sa_installed(need(second, ("10.1.1.0", 24), ("10.2.1.0", 24)));
        assert_eq!(table(DEFAULT_ROUTING_TABLE, false).lines().count(), 1);
        routes.sa_removed(&first);
        assert_eq!(
            table(DEFAULT_ROUTING_TABLE, false).lines().count(),
            1,
            "still needed by the new SA"
        );
        routes.sa_removed(&second);
        assert_eq!(
            table(DEFAULT_ROUTING_TABLE, false),
            "",
            "gone with the last SA"
        );
        assert!(
            !our_rule_is_there(false),
            "the rule went with the last route"
        );
        // Removing it again, or an SA never routed, is harmless.
        routes.sa_removed(&second);
        routes.sa_removed(&sa("198.18.0.1", "198.18.0.2", 0x9999));
    });
}

#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn a_peer_off_the_link_is_reached_through_its_gateway_and_a_net_without_our_address_gets_no_source()
{
    require_root();
    in_new_netns(|| {
        gateway_host();
        let mut routes = manager();
        routes.apply_settings(RouteSettings::default());
        routes.sa_installed(need(
            sa("198.18.0.1", "198.19.5.5", 0x2001),
            ("10.1.0.0", 16),
            ("10.3.0.0", 16),
        ));
        routes.sa_installed(need(
            sa("198.18.0.1", "198.18.0.2", 0x2002),
            ("10.9.0.0", 24),
            ("10.4.0.0", 24),
        ));
        let shown = table(DEFAULT_ROUTING_TABLE, false);
        let lines: Vec<&str> = shown.lines().map(str::trim).collect();
        assert!(
            lines.contains(&"10.3.0.0/16 via 198.18.0.254 dev dum0 proto static src 10.1.1.1"),
            "{shown}"
        );
        assert!(
            lines.contains(&"10.4.0.0/24 dev dum0 proto static scope link"),
            "no address of ours in 10.9.0.0/24: no source\n{shown}"
        );
        assert_eq!(routes.installed().len(), 2);
        routes.remove_all();
        assert_eq!(table(DEFAULT_ROUTING_TABLE, false), "");
        assert!(!our_rule_is_there(false));
    });
}

#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn no_route_is_added_where_the_hosts_own_routes_already_do_it() {
    require_root();
    in_new_netns(|| {
        gateway_host();
        sh("ip route add 10.5.0.0/16 dev dum0 src 10.1.1.1 \
            && ip route add 10.6.0.0/16 dev dum0");
        let mut routes = manager();
        routes.apply_settings(RouteSettings::default());
        // Covered, same interface, same source: nothing to add.
        routes.sa_installed(need(
            sa("198.18.0.1", "198.18.0.2", 0x3001),
            ("10.1.1.0", 24),
            ("10.5.1.0", 24),
        ));
        assert_eq!(table(DEFAULT_ROUTING_TABLE, false), "");
        assert!(!our_rule_is_there(false));
        // Covered, but the host's route would send from the outer address:
        // ours adds the inner source.
        routes.sa_installed(need(
            sa("198.18.0.1", "198.18.0.2", 0x3002),
            ("10.1.1.0", 24),
            ("10.6.1.0", 24),
        ));
        assert_eq!(
            table(DEFAULT_ROUTING_TABLE, false).trim(),
            "10.6.1.0/24 dev dum0 proto static scope link src 10.1.1.1"
        );
        // A host-to-host tunnel between the gateways: the connected route
        // already covers the peer with our outer address as source.
        routes.sa_installed(need(
            sa("198.18.0.1", "198.18.0.2", 0x3003),
            ("198.18.0.1", 32),
            ("198.18.0.2", 32),
        ));
        assert_eq!(table(DEFAULT_ROUTING_TABLE, false).lines().count(), 1);
        routes.remove_all();
        // The host's own routes were never touched.
        let main = sh("ip route show table main");
        assert!(
            main.contains("10.5.0.0/16") && main.contains("10.6.0.0/16"),
            "{main}"
        );
    });
}

#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn ipv6_tunnels_get_routes_and_a_rule_of_their_own() {
    require_root();
    in_new_netns(|| {
        gateway_host();
        let mut routes = manager();
        routes.apply_settings(RouteSettings::default());
        let v6 = sa("2001:db8:18::1", "2001:db8:18::2", 0x4001);
        routes.sa_installed(need(v6, ("2001:db8:a::", 64), ("2001:db8:b::", 64)));
        let shown = table(DEFAULT_ROUTING_TABLE, true);
        assert!(
            shown.contains("2001:db8:b::/64 dev dum0 proto static src 2001:db8:a::1"),
            "{shown}"
        );
        assert!(our_rule_is_there(true), "{}", rules(true));
        assert!(!our_rule_is_there(false), "no IPv4 route, no IPv4 rule");
        routes.sa_removed(&v6);
        assert_eq!(table(DEFAULT_ROUTING_TABLE, true), "");
        assert!(!our_rule_is_there(true));
    });
}

#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn settings_move_or_remove_the_routes_and_a_new_run_clears_what_an_old_one_left() {
    require_root();
    in_new_netns(|| {
        gateway_host();
        let mut routes = manager();
        routes.apply_settings(RouteSettings::default());
        let one = sa("198.18.0.1", "198.18.0.2", 0x5001);
        routes.sa_installed(need(one, ("10.1.1.0", 24), ("10.2.1.0", 24)));
        routes.apply_settings(RouteSettings {
            enabled: true,
            table: 100,
        });
        assert_eq!(table(DEFAULT_ROUTING_TABLE, false), "");
        assert!(
            table(100, false).contains("10.2.1.0/24"),
            "{}",
            table(100, false)
        );
        assert!(rules(false).contains("lookup 100"), "{}", rules(false));
        routes.apply_settings(RouteSettings {
            enabled: false,
            table: 100,
        });
        assert_eq!(table(100, false), "", "set noroutes removes them");
        assert!(!rules(false).contains("lookup 100"));
        // Turned on again, the SA still there gets its route back.
        routes.apply_settings(RouteSettings::default());
        assert!(table(DEFAULT_ROUTING_TABLE, false).contains("10.2.1.0/24"));

        // The process dies without its flush; the next run clears the table
        // and the rule at its first configuration.
        drop(routes);
        sh("ip route add 10.7.0.0/16 dev dum0 table 222");
        let mut next = manager();
        next.apply_settings(RouteSettings::default());
        assert_eq!(table(DEFAULT_ROUTING_TABLE, false), "");
        assert!(!our_rule_is_there(false));
    });
}

#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn source_lookups_name_the_kernels_source_and_fail_without_a_route() {
    require_root();
    in_new_netns(|| {
        gateway_host();
        let mut routes = manager();
        assert_eq!(
            routes.lookup_source(ip("198.18.0.2")).unwrap(),
            ip("198.18.0.1")
        );
        assert_eq!(
            routes.lookup_source(ip("198.19.5.5")).unwrap(),
            ip("198.18.0.1")
        );
        assert_eq!(
            routes.lookup_source(ip("2001:db8:18::2")).unwrap(),
            ip("2001:db8:18::1")
        );
        let unreachable = routes.lookup_source(ip("198.19.200.1")).unwrap_err();
        assert!(
            unreachable.message.contains("198.19.200.1")
                && unreachable.message.contains("unreachable"),
            "{unreachable:?}"
        );
        let refused = routes.lookup_source(ip("0.0.0.0")).unwrap_err();
        assert!(
            refused.message.contains("not a unicast address"),
            "{refused:?}"
        );
    });
}

/// The socket stays in the namespace it was opened in: a lookup through a
/// socket opened in another namespace sees that one's routes (what lets
/// the parent open pfkey's socket before pfkey starts).
#[test]
#[ignore = "needs root (network namespaces): run by .ci/run"]
fn the_route_socket_belongs_to_the_namespace_it_was_opened_in() {
    require_root();
    let (fd_raw, addr) = in_new_netns(|| {
        gateway_host();
        let fd = iked_pfkey::route_socket::open_route_socket().unwrap();
        (std::os::fd::IntoRawFd::into_raw_fd(fd), ip("198.18.0.2"))
    });
    // SAFETY: the descriptor was just released to us by into_raw_fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd_raw) };
    in_new_netns(move || {
        let mut routes = RouteManager::new(RouteSocket::new(fd).unwrap());
        assert_eq!(routes.lookup_source(addr).unwrap(), ip("198.18.0.1"));
    });
}
