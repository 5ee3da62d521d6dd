//! The rtnetlink codec to the byte: what we send, as iproute2 would send
//! it, and what the kernel answers, including answers that lie.

use super::*;
use crate::xfrm_codec::{split_messages, NLMSG_HDRLEN};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ne16(v: u16) -> [u8; 2] {
    v.to_ne_bytes()
}

fn ne32(v: u32) -> [u8; 4] {
    v.to_ne_bytes()
}

/// A netlink header then `body`, as the kernel frames it.
fn message(message_type: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(ne32((NLMSG_HDRLEN + body.len()) as u32));
    m.extend(ne16(message_type));
    m.extend(ne16(flags));
    m.extend(ne32(seq));
    m.extend(ne32(0));
    m.extend(body);
    m
}

fn attribute(attr_type: u16, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend(ne16((4 + value.len()) as u16));
    a.extend(ne16(attr_type));
    a.extend(value);
    while a.len() % 4 != 0 {
        a.push(0);
    }
    a
}

fn rtmsg(family: u8, dst_len: u8, table: u8, protocol: u8, scope: u8, rtype: u8) -> Vec<u8> {
    let mut h = vec![family, dst_len, 0, 0, table, protocol, scope, rtype];
    h.extend(ne32(0));
    h
}

#[test]
fn a_route_with_gateway_and_source_is_encoded_as_iproute2_sends_it() {
    let route = RouteSpec {
        dst: ip("10.2.1.0"),
        prefix: 24,
        table: 222,
        oif: 7,
        gateway: Some(ip("198.18.0.254")),
        source: Some(ip("10.1.1.1")),
    };
    let bytes = encode_route(&route, true, 9).bytes.clone();
    let mut body = rtmsg(2, 24, 222, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST);
    body.extend(attribute(RTA_TABLE, &ne32(222)));
    body.extend(attribute(RTA_DST, &[10, 2, 1, 0]));
    body.extend(attribute(RTA_OIF, &ne32(7)));
    body.extend(attribute(RTA_GATEWAY, &[198, 18, 0, 254]));
    body.extend(attribute(RTA_PREFSRC, &[10, 1, 1, 1]));
    let flags = 0x1 | 0x4 | NLM_F_CREATE | NLM_F_REPLACE;
    assert_eq!(bytes, message(RTM_NEWROUTE, flags, 9, &body));
}

#[test]
fn an_on_link_route_has_link_scope_and_a_delete_matches_any_scope() {
    let route = RouteSpec {
        dst: ip("2001:db8:2::"),
        prefix: 64,
        table: 70_000,
        oif: 3,
        gateway: None,
        source: None,
    };
    let added = encode_route(&route, true, 1).bytes.clone();
    let fixed = &added[NLMSG_HDRLEN..NLMSG_HDRLEN + RTMSG_LEN];
    assert_eq!(fixed[0], 10, "AF_INET6");
    assert_eq!(fixed[1], 64);
    assert_eq!(
        fixed[4], RT_TABLE_COMPAT,
        "a table over 255 is in RTA_TABLE"
    );
    assert_eq!(fixed[6], RT_SCOPE_LINK);
    let deleted = encode_route(&route, false, 2).bytes.clone();
    let mut body = rtmsg(10, 64, RT_TABLE_COMPAT, 0, RT_SCOPE_NOWHERE, 0);
    body.extend(attribute(RTA_TABLE, &ne32(70_000)));
    let mut dst = [0u8; 16];
    dst[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 2]);
    body.extend(attribute(RTA_DST, &dst));
    assert_eq!(deleted, message(RTM_DELROUTE, 0x1 | 0x4, 2, &body));
}

#[test]
fn our_rule_looks_up_our_table_at_our_priority() {
    let bytes = encode_rule(false, 222, 222, true, 5).bytes.clone();
    let mut body = vec![2, 0, 0, 0, 222, 0, 0, FR_ACT_TO_TBL];
    body.extend(ne32(0));
    body.extend(attribute(FRA_PRIORITY, &ne32(222)));
    body.extend(attribute(FRA_TABLE, &ne32(222)));
    let flags = 0x1 | 0x4 | NLM_F_CREATE | NLM_F_EXCL;
    assert_eq!(bytes, message(RTM_NEWRULE, flags, 5, &body));
    let deleted = encode_rule(true, 222, 222, false, 6).bytes.clone();
    assert_eq!(&deleted[4..6], &ne16(RTM_DELRULE));
    assert_eq!(deleted[NLMSG_HDRLEN], 10);
}

#[test]
fn a_lookup_asks_for_one_host_and_a_fib_match_says_so() {
    let bytes = encode_get_route(ip("198.18.0.2"), true, 3).bytes.clone();
    let mut body = rtmsg(2, 32, 0, 0, 0, 0);
    body[8..12].copy_from_slice(&ne32(RTM_F_FIB_MATCH));
    body.extend(attribute(RTA_DST, &[198, 18, 0, 2]));
    assert_eq!(bytes, message(RTM_GETROUTE, 0x1, 3, &body));
    let plain = encode_get_route(ip("198.18.0.2"), false, 4).bytes.clone();
    assert_eq!(&plain[NLMSG_HDRLEN + 8..NLMSG_HDRLEN + 12], &ne32(0));
    let dump = encode_dump_addresses(true, 8).bytes.clone();
    assert_eq!(
        dump,
        message(RTM_GETADDR, 0x1 | NLM_F_DUMP, 8, &[10, 0, 0, 0, 0, 0, 0, 0])
    );
    let dump = encode_dump_routes(false, 9).bytes.clone();
    assert_eq!(
        dump,
        message(RTM_GETROUTE, 0x1 | NLM_F_DUMP, 9, &rtmsg(2, 0, 0, 0, 0, 0))
    );
}

fn kernel_route_reply() -> Vec<u8> {
    let mut body = rtmsg(2, 24, 254, 3, RT_SCOPE_UNIVERSE, RTN_UNICAST);
    body.extend(attribute(RTA_TABLE, &ne32(254)));
    body.extend(attribute(RTA_DST, &[10, 2, 1, 0]));
    body.extend(attribute(RTA_GATEWAY, &[198, 18, 0, 2]));
    body.extend(attribute(RTA_OIF, &ne32(4)));
    body.extend(attribute(RTA_PREFSRC, &[198, 18, 0, 1]));
    // Something we do not read (RTA_UID), skipped.
    body.extend(attribute(25, &ne32(0)));
    message(RTM_NEWROUTE, 0, 11, &body)
}

#[test]
fn a_kernel_route_is_read_with_its_prefix_table_interface_gateway_and_source() {
    let datagram = kernel_route_reply();
    let messages = split_messages(&datagram).unwrap();
    let route = decode_route(&messages[0]).unwrap();
    assert_eq!(
        route,
        RouteInfo {
            family: 2,
            prefix: 24,
            table: 254,
            scope: RT_SCOPE_UNIVERSE,
            route_type: RTN_UNICAST,
            dst: Some(ip("10.2.1.0")),
            oif: Some(4),
            gateway: Some(ip("198.18.0.2")),
            prefsrc: Some(ip("198.18.0.1")),
        }
    );
    // A default route has no RTA_DST; a table above 255 comes in RTA_TABLE.
    let mut body = rtmsg(10, 0, RT_TABLE_COMPAT, 4, 0, 1);
    body.extend(attribute(RTA_TABLE, &ne32(70_000)));
    let datagram = message(RTM_NEWROUTE, 0, 1, &body);
    let route = decode_route(&split_messages(&datagram).unwrap()[0]).unwrap();
    assert_eq!((route.dst, route.table, route.family), (None, 70_000, 10));
}

#[test]
fn lying_route_replies_are_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (message(RTM_NEWROUTE, 0, 1, &[2, 24, 0]), "rtmsg truncated"),
        (
            message(RTM_NEWROUTE, 0, 1, &rtmsg(2, 33, 254, 0, 0, 1)),
            "prefix /33",
        ),
        (
            message(RTM_NEWROUTE, 0, 1, &rtmsg(7, 0, 254, 0, 0, 1)),
            "family 7",
        ),
        (
            message(RTM_NEWROUTE, 0, 1, &{
                let mut b = rtmsg(2, 24, 254, 0, 0, 1);
                b.extend(attribute(RTA_GATEWAY, &[1, 2, 3]));
                b
            }),
            "RTA_GATEWAY: 3 octets for IPv4",
        ),
        (
            message(RTM_NEWROUTE, 0, 1, &{
                let mut b = rtmsg(2, 24, 254, 0, 0, 1);
                b.extend(attribute(RTA_OIF, &[1, 2]));
                b
            }),
            "RTA_OIF: 2 octets",
        ),
        (
            message(RTM_NEWROUTE, 0, 1, &{
                let mut b = rtmsg(2, 24, 254, 0, 0, 1);
                // An attribute claiming more than is there.
                b.extend(ne16(40));
                b.extend(ne16(RTA_DST));
                b
            }),
            "length 40",
        ),
        (
            message(RTM_NEWADDR, 0, 1, &rtmsg(2, 24, 254, 0, 0, 1)),
            "expected RTM_NEWROUTE",
        ),
    ];
    for (datagram, expected) in cases {
        let messages = split_messages(&datagram).unwrap();
        let error = decode_route(&messages[0]).unwrap_err();
        assert!(error.0.contains(expected), "{expected}: {error}");
    }
}

#[test]
fn addresses_prefer_the_local_one_and_need_one() {
    let mut body = vec![2, 24, 0, 0];
    body.extend(ne32(5));
    body.extend(attribute(IFA_ADDRESS, &[10, 9, 9, 9]));
    body.extend(attribute(IFA_LOCAL, &[10, 1, 1, 1]));
    let datagram = message(RTM_NEWADDR, 2, 1, &body);
    let address = decode_address(&split_messages(&datagram).unwrap()[0]).unwrap();
    assert_eq!(
        address,
        AddressInfo {
            address: ip("10.1.1.1"),
            prefix: 24,
            index: 5
        }
    );
    let mut body = vec![10, 64, 0, 0];
    body.extend(ne32(2));
    let mut v6 = [0u8; 16];
    v6[..2].copy_from_slice(&[0xfd, 0x01]);
    v6[15] = 1;
    body.extend(attribute(IFA_ADDRESS, &v6));
    let datagram = message(RTM_NEWADDR, 2, 1, &body);
    let address = decode_address(&split_messages(&datagram).unwrap()[0]).unwrap();
    assert_eq!(address.address, ip("fd01::1"));
    let mut body = vec![2, 24, 0, 0];
    body.extend(ne32(5));
    let datagram = message(RTM_NEWADDR, 2, 1, &body);
    let error = decode_address(&split_messages(&datagram).unwrap()[0]).unwrap_err();
    assert!(error.0.contains("without an address"), "{error}");
    let datagram = message(RTM_NEWADDR, 2, 1, &[2, 24]);
    assert!(decode_address(&split_messages(&datagram).unwrap()[0]).is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_kernel_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            route in any::<bool>(),
        ) {
            let message_type = if route { RTM_NEWROUTE } else { RTM_NEWADDR };
            let datagram = message(message_type, 0, 1, &data);
            let messages = split_messages(&datagram).unwrap();
            let _ = decode_route(&messages[0]);
            let _ = decode_address(&messages[0]);
            let _ = split_messages(&data);
        }

        #[test]
        fn arbitrary_link_answers_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let datagram = message(RTM_NEWLINK, 0, 1, &data);
            let messages = split_messages(&datagram).unwrap();
            if let Ok(link) = decode_link(&messages[0]) {
                prop_assert!(link.index > 0);
                prop_assert!(link.name.is_none_or(|n| n.len() < IFNAMSIZ));
            }
        }

        #[test]
        fn routes_we_encode_decode_to_what_we_asked(
            v6 in any::<bool>(),
            raw in any::<[u8; 16]>(),
            prefix in 0u8..=128,
            table in 1u32..=1_000_000,
            oif in 1u32..=10_000,
            gateway in any::<bool>(),
        ) {
            let dst = if v6 {
                IpAddr::from(raw)
            } else {
                IpAddr::from([raw[0], raw[1], raw[2], raw[3]])
            };
            let prefix = prefix.min(if v6 { 128 } else { 32 });
            let route = RouteSpec {
                dst,
                prefix,
                table,
                oif,
                gateway: gateway.then_some(dst),
                source: Some(dst),
            };
            let bytes = encode_route(&route, true, 1).bytes.clone();
            let mut messages = split_messages(&bytes).unwrap();
            // What we send reads back as what the kernel would store.
            messages[0].message_type = RTM_NEWROUTE;
            let info = decode_route(&messages[0]).unwrap();
            prop_assert_eq!(info.dst, Some(dst));
            prop_assert_eq!(info.prefix, prefix);
            prop_assert_eq!(info.table, table);
            prop_assert_eq!(info.oif, Some(oif));
            prop_assert_eq!(info.gateway, route.gateway);
            prop_assert_eq!(info.prefsrc, Some(dst));
        }
    }
}

#[test]
fn a_link_lookup_by_name_is_encoded_as_iproute2_sends_it() {
    let bytes = encode_get_link("lo", 4).bytes.clone();
    let mut body = vec![0u8; IFINFOMSG_LEN];
    body.extend(attribute(IFLA_IFNAME, b"lo\0"));
    assert_eq!(bytes, message(RTM_GETLINK, NLM_F_REQUEST, 4, &body));
}

#[test]
fn interface_names_are_checked() {
    for good in ["lo", "eth0", "wg-road.1", "abcdefghijklmno"] {
        assert!(valid_interface_name(good), "{good}");
    }
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "eth0:1",
        "a b",
        "abcdefghijklmnop",
        "x\0y",
    ] {
        assert!(!valid_interface_name(bad), "{bad:?}");
    }
}

fn ifinfomsg(index: i32) -> Vec<u8> {
    let mut h = vec![0, 0];
    h.extend(ne16(772)); // ARPHRD_LOOPBACK
    h.extend(index.to_ne_bytes());
    h.extend(ne32(0x49));
    h.extend(ne32(0));
    h
}

#[test]
fn a_link_answer_is_decoded_and_lies_are_refused() {
    let mut body = ifinfomsg(1);
    body.extend(attribute(IFLA_IFNAME, b"lo\0"));
    body.extend(attribute(4, &ne32(65536))); // IFLA_MTU, ignored
    let bytes = message(RTM_NEWLINK, 0, 4, &body);
    let m = &split_messages(&bytes).unwrap()[0];
    assert_eq!(
        decode_link(m).unwrap(),
        LinkInfo {
            index: 1,
            name: Some("lo".into())
        }
    );
    // Index 0 or negative, a truncated header, a name too long, the
    // wrong type: errors, never a panic.
    for index in [0, -3] {
        let bytes = message(RTM_NEWLINK, 0, 4, &ifinfomsg(index));
        let m = &split_messages(&bytes).unwrap()[0];
        assert!(decode_link(m).is_err());
    }
    let bytes = message(RTM_NEWLINK, 0, 4, &ifinfomsg(1)[..10]);
    let m = &split_messages(&bytes).unwrap()[0];
    assert!(decode_link(m)
        .unwrap_err()
        .to_string()
        .contains("ifinfomsg truncated"));
    let mut long = ifinfomsg(1);
    long.extend(attribute(IFLA_IFNAME, b"abcdefghijklmnopq\0"));
    let bytes = message(RTM_NEWLINK, 0, 4, &long);
    let m = &split_messages(&bytes).unwrap()[0];
    assert!(decode_link(m).is_err());
    let bytes = message(RTM_NEWADDR, 0, 4, &ifinfomsg(1));
    let m = &split_messages(&bytes).unwrap()[0];
    assert!(decode_link(m).is_err());
}

#[test]
fn a_virtual_address_is_added_exclusively_and_deleted() {
    let spec = AddressSpec {
        address: ip("10.9.0.5"),
        prefix: 32,
        index: 1,
    };
    let bytes = encode_address(&spec, true, 11).bytes.clone();
    let mut body = vec![2, 32, 0, RT_SCOPE_UNIVERSE];
    body.extend(ne32(1));
    body.extend(attribute(IFA_LOCAL, &[10, 9, 0, 5]));
    body.extend(attribute(IFA_ADDRESS, &[10, 9, 0, 5]));
    assert_eq!(
        bytes,
        message(
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            11,
            &body
        )
    );
    let bytes = encode_address(&spec, false, 12).bytes.clone();
    assert_eq!(
        bytes,
        message(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, 12, &body)
    );
    // IPv6: a /128 without duplicate address detection.
    let v6 = AddressSpec {
        address: ip("2001:db8:9::5"),
        prefix: 128,
        index: 3,
    };
    let bytes = encode_address(&v6, true, 13).bytes.clone();
    let octets = ip6_octets("2001:db8:9::5");
    let mut body = vec![10, 128, IFA_F_NODAD, RT_SCOPE_UNIVERSE];
    body.extend(ne32(3));
    body.extend(attribute(IFA_LOCAL, &octets));
    body.extend(attribute(IFA_ADDRESS, &octets));
    assert_eq!(
        bytes,
        message(
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            13,
            &body
        )
    );
}

fn ip6_octets(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}
