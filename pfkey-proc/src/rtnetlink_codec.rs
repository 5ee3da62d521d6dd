//! Linux rtnetlink (NETLINK_ROUTE) messages for our routes, our rule and
//! route lookups, encoded and decoded by hand to the byte.
//!
//! Layouts follow the kernel's UAPI `<linux/rtnetlink.h>`,
//! `<linux/fib_rules.h>` and `<linux/if_addr.h>`: host byte order except
//! addresses (network order); netlink messages and attributes padded to 4
//! octets (the framing is the one XFRM uses, shared from
//! [`crate::xfrm_codec`]). Everything read from the kernel is length-checked
//! and returns an error rather than panicking; a dump is capped in entries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bytes::{decode_error, DecodeError, Reader, Writer, AF_INET, AF_INET6};
use crate::xfrm_codec::{
    split_attributes, MessageBuilder, NetlinkMessage, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};

// <linux/rtnetlink.h> message types.
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWRULE: u16 = 32;
pub const RTM_DELRULE: u16 = 33;

// <linux/netlink.h> flags for new entries.
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;

// Route attributes (enum rtattr_type_t).
pub const RTA_DST: u16 = 1;
pub const RTA_OIF: u16 = 4;
pub const RTA_GATEWAY: u16 = 5;
pub const RTA_PREFSRC: u16 = 7;
pub const RTA_TABLE: u16 = 15;

// Rule attributes (<linux/fib_rules.h>).
pub const FRA_PRIORITY: u16 = 6;
pub const FRA_TABLE: u16 = 15;
pub const FR_ACT_TO_TBL: u8 = 1;

// Address attributes (<linux/if_addr.h>).
pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
/// ifa_flags: no duplicate address detection (an IPv6 address from the
/// gateway's pool is usable at once, never "tentative").
pub const IFA_F_NODAD: u8 = 0x02;

// Link attributes (<linux/if_link.h>).
pub const IFLA_IFNAME: u16 = 3;
/// IFNAMSIZ, the terminating NUL included.
pub const IFNAMSIZ: usize = 16;
/// `struct ifinfomsg`.
pub const IFINFOMSG_LEN: usize = 16;

pub const RTN_UNICAST: u8 = 1;
pub const RTPROT_STATIC: u8 = 4;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
/// In a delete: any scope.
pub const RT_SCOPE_NOWHERE: u8 = 255;
/// Tables above 255 travel in RTA_TABLE; the header says "compat" then.
pub const RT_TABLE_COMPAT: u8 = 252;
/// RTM_GETROUTE: answer with the FIB entry that matched (its prefix and
/// table), not a host route for the address asked about (Linux 4.13).
pub const RTM_F_FIB_MATCH: u32 = 0x2000;

/// `struct rtmsg`, `struct fib_rule_hdr`: 12 octets each; `ifaddrmsg`: 8.
pub const RTMSG_LEN: usize = 12;
pub const FIB_RULE_HDR_LEN: usize = 12;
pub const IFADDRMSG_LEN: usize = 8;

/// At most this many entries of a dump are kept: a table of our own holds
/// one route per remote network, and a host with more addresses than this
/// is past what the source choice needs to see.
pub const MAX_DUMP_ENTRIES: usize = 100_000;

fn family_number(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => AF_INET as u8,
        IpAddr::V6(_) => AF_INET6 as u8,
    }
}

fn address_octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An address attribute of `family`: exactly 4 or 16 octets.
fn read_address(family: u8, value: &[u8], what: &str) -> Result<IpAddr, DecodeError> {
    match u16::from(family) {
        AF_INET => <[u8; 4]>::try_from(value)
            .map(|o| IpAddr::V4(Ipv4Addr::from(o)))
            .map_err(|_| decode_error(format!("{what}: {} octets for IPv4", value.len()))),
        AF_INET6 => <[u8; 16]>::try_from(value)
            .map(|o| IpAddr::V6(Ipv6Addr::from(o)))
            .map_err(|_| decode_error(format!("{what}: {} octets for IPv6", value.len()))),
        other => Err(decode_error(format!("{what}: address family {other}"))),
    }
}

fn read_u32(value: &[u8], what: &str) -> Result<u32, DecodeError> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_ne_bytes)
        .map_err(|_| decode_error(format!("{what}: {} octets, expected 4", value.len())))
}

/// The header's table field: the number itself when it fits, else
/// RT_TABLE_COMPAT with the number in an attribute.
fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RT_TABLE_COMPAT)
}

/// One route of ours: `dst/prefix` through `oif` (and `gateway`, when the
/// peer is not on the link), leaving from `source` when set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteSpec {
    pub dst: IpAddr,
    pub prefix: u8,
    pub table: u32,
    pub oif: u32,
    pub gateway: Option<IpAddr>,
    pub source: Option<IpAddr>,
}

#[allow(clippy::too_many_arguments)]
fn route_header(
    b: &mut MessageBuilder,
    family: u8,
    prefix: u8,
    table: u32,
    protocol: u8,
    scope: u8,
    route_type: u8,
    flags: u32,
) {
    b.body()
        .u8(family)
        .u8(prefix) // rtm_dst_len
        .u8(0) // rtm_src_len
        .u8(0) // rtm_tos
        .u8(header_table(table))
        .u8(protocol)
        .u8(scope)
        .u8(route_type)
        .u32_ne(flags);
}

/// RTM_NEWROUTE (create or replace: the table is ours) or RTM_DELROUTE.
pub fn encode_route(route: &RouteSpec, add: bool, seq: u32) -> Writer {
    let (message_type, flags) = if add {
        (
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    } else {
        (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK)
    };
    let mut b = MessageBuilder::new(message_type, flags, seq);
    // Without a gateway the remote network is "on the link": scope link. A
    // delete matches any scope, protocol and type (whatever is in our
    // table goes, as `ip route del` does it).
    let (protocol, scope, route_type) = match (add, route.gateway) {
        (true, Some(_)) => (RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST),
        (true, None) => (RTPROT_STATIC, RT_SCOPE_LINK, RTN_UNICAST),
        (false, _) => (0, RT_SCOPE_NOWHERE, 0),
    };
    route_header(
        &mut b,
        family_number(route.dst),
        route.prefix,
        route.table,
        protocol,
        scope,
        route_type,
        0,
    );
    b.attribute(RTA_TABLE, |w| {
        w.u32_ne(route.table);
    });
    b.attribute(RTA_DST, |w| {
        w.raw(&address_octets(route.dst));
    });
    if add {
        b.attribute(RTA_OIF, |w| {
            w.u32_ne(route.oif);
        });
        if let Some(gateway) = route.gateway {
            b.attribute(RTA_GATEWAY, |w| {
                w.raw(&address_octets(gateway));
            });
        }
        if let Some(source) = route.source {
            b.attribute(RTA_PREFSRC, |w| {
                w.raw(&address_octets(source));
            });
        }
    }
    b.finish()
}

/// RTM_GETROUTE for one destination: the route the kernel would use to
/// send there, or with `fib_match` the FIB entry that matched.
pub fn encode_get_route(dst: IpAddr, fib_match: bool, seq: u32) -> Writer {
    let mut b = MessageBuilder::new(RTM_GETROUTE, NLM_F_REQUEST, seq);
    let flags = if fib_match { RTM_F_FIB_MATCH } else { 0 };
    let prefix = match dst {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    route_header(&mut b, family_number(dst), prefix, 0, 0, 0, 0, flags);
    b.attribute(RTA_DST, |w| {
        w.raw(&address_octets(dst));
    });
    b.finish()
}

/// A dump of every route of one family (filtered by table on our side:
/// strict kernel-side filtering needs NETLINK_GET_STRICT_CHK).
pub fn encode_dump_routes(ipv6: bool, seq: u32) -> Writer {
    let mut b = MessageBuilder::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq);
    let family = if ipv6 { AF_INET6 } else { AF_INET } as u8;
    route_header(&mut b, family, 0, 0, 0, 0, 0, 0);
    b.finish()
}

/// A dump of the host's addresses of one family.
pub fn encode_dump_addresses(ipv6: bool, seq: u32) -> Writer {
    let mut b = MessageBuilder::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
    let family = if ipv6 { AF_INET6 } else { AF_INET } as u8;
    b.body().u8(family).u8(0).u8(0).u8(0).u32_ne(0);
    b.finish()
}

/// RTM_NEWRULE / RTM_DELRULE: "from all lookup `table`" at `priority`.
pub fn encode_rule(ipv6: bool, table: u32, priority: u32, add: bool, seq: u32) -> Writer {
    let (message_type, flags) = if add {
        (
            RTM_NEWRULE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    } else {
        (RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK)
    };
    let mut b = MessageBuilder::new(message_type, flags, seq);
    let family = if ipv6 { AF_INET6 } else { AF_INET } as u8;
    b.body()
        .u8(family)
        .u8(0) // dst_len
        .u8(0) // src_len
        .u8(0) // tos
        .u8(header_table(table))
        .u8(0)
        .u8(0)
        .u8(FR_ACT_TO_TBL)
        .u32_ne(0);
    b.attribute(FRA_PRIORITY, |w| {
        w.u32_ne(priority);
    });
    b.attribute(FRA_TABLE, |w| {
        w.u32_ne(table);
    });
    b.finish()
}

/// A route as the kernel reported it (RTM_NEWROUTE in a reply or dump).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteInfo {
    pub family: u8,
    /// The prefix of the matched entry (`dst_len`).
    pub prefix: u8,
    pub table: u32,
    pub scope: u8,
    pub route_type: u8,
    /// None for a default route.
    pub dst: Option<IpAddr>,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
}

pub fn decode_route(m: &NetlinkMessage) -> Result<RouteInfo, DecodeError> {
    if m.message_type != RTM_NEWROUTE {
        return Err(decode_error(format!(
            "expected RTM_NEWROUTE, got type {}",
            m.message_type
        )));
    }
    let (fixed, attrs) = m
        .payload
        .split_at_checked(RTMSG_LEN)
        .ok_or_else(|| decode_error("rtmsg truncated"))?;
    let mut r = Reader::new(fixed);
    let family = r.u8("rtm_family")?;
    let prefix = r.u8("rtm_dst_len")?;
    r.skip(2, "rtm_src_len/tos")?;
    let header_table = r.u8("rtm_table")?;
    r.skip(1, "rtm_protocol")?;
    let scope = r.u8("rtm_scope")?;
    let route_type = r.u8("rtm_type")?;
    let max = match u16::from(family) {
        AF_INET => 32,
        AF_INET6 => 128,
        other => return Err(decode_error(format!("route of address family {other}"))),
    };
    if prefix > max {
        return Err(decode_error(format!("route prefix /{prefix} over {max}")));
    }
    let mut info = RouteInfo {
        family,
        prefix,
        table: u32::from(header_table),
        scope,
        route_type,
        ..RouteInfo::default()
    };
    for (attr_type, value) in split_attributes(attrs)? {
        match attr_type {
            RTA_DST => info.dst = Some(read_address(family, value, "RTA_DST")?),
            RTA_OIF => info.oif = Some(read_u32(value, "RTA_OIF")?),
            RTA_GATEWAY => info.gateway = Some(read_address(family, value, "RTA_GATEWAY")?),
            RTA_PREFSRC => info.prefsrc = Some(read_address(family, value, "RTA_PREFSRC")?),
            RTA_TABLE => info.table = read_u32(value, "RTA_TABLE")?,
            // Multipath, metrics, cache info and the rest: not needed.
            _ => {}
        }
    }
    Ok(info)
}

/// One address of the host (RTM_NEWADDR in a dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressInfo {
    pub address: IpAddr,
    pub prefix: u8,
    pub index: u32,
}

pub fn decode_address(m: &NetlinkMessage) -> Result<AddressInfo, DecodeError> {
    if m.message_type != RTM_NEWADDR {
        return Err(decode_error(format!(
            "expected RTM_NEWADDR, got type {}",
            m.message_type
        )));
    }
    let (fixed, attrs) = m
        .payload
        .split_at_checked(IFADDRMSG_LEN)
        .ok_or_else(|| decode_error("ifaddrmsg truncated"))?;
    let mut r = Reader::new(fixed);
    let family = r.u8("ifa_family")?;
    let prefix = r.u8("ifa_prefixlen")?;
    r.skip(2, "ifa_flags/scope")?;
    let index = r.u32_ne("ifa_index")?;
    let (mut local, mut address) = (None, None);
    for (attr_type, value) in split_attributes(attrs)? {
        match attr_type {
            IFA_LOCAL => local = Some(read_address(family, value, "IFA_LOCAL")?),
            IFA_ADDRESS => address = Some(read_address(family, value, "IFA_ADDRESS")?),
            _ => {}
        }
    }
    // IFA_LOCAL is ours; IFA_ADDRESS is the peer's on point-to-point links
    // and the same as IFA_LOCAL elsewhere (IPv6 sends IFA_ADDRESS only).
    let address = local
        .or(address)
        .ok_or_else(|| decode_error("address message without an address"))?;
    Ok(AddressInfo {
        address,
        prefix,
        index,
    })
}

/// Whether `name` can be an interface name: 1 to 15 octets, none of them
/// NUL, '/', ':' or white space (what the kernel's dev_valid_name takes,
/// minus the alias separator), and not "." or "..".
pub fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b != 0 && b != b'/' && b != b':' && !b.is_ascii_whitespace())
}

/// RTM_GETLINK by name: answered by the link (RTM_NEWLINK), whose index
/// addresses take. The caller checks the name ([`valid_interface_name`]).
pub fn encode_get_link(name: &str, seq: u32) -> Writer {
    let mut b = MessageBuilder::new(RTM_GETLINK, NLM_F_REQUEST, seq);
    // ifinfomsg: AF_UNSPEC, type, index 0 (look up by name), flags, change.
    b.body().u8(0).u8(0).u16_ne(0).u32_ne(0).u32_ne(0).u32_ne(0);
    b.attribute(IFLA_IFNAME, |w| {
        w.raw(name.as_bytes()).u8(0);
    });
    b.finish()
}

/// A link as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: Option<String>,
}

pub fn decode_link(m: &NetlinkMessage) -> Result<LinkInfo, DecodeError> {
    if m.message_type != RTM_NEWLINK {
        return Err(decode_error(format!(
            "expected RTM_NEWLINK, got type {}",
            m.message_type
        )));
    }
    let (fixed, attrs) = m
        .payload
        .split_at_checked(IFINFOMSG_LEN)
        .ok_or_else(|| decode_error("ifinfomsg truncated"))?;
    let mut r = Reader::new(fixed);
    r.skip(4, "ifi_family/type")?;
    let index = r.i32_ne("ifi_index")?;
    let index = u32::try_from(index)
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| decode_error(format!("link index {index}")))?;
    let mut name = None;
    for (attr_type, value) in split_attributes(attrs)? {
        if attr_type == IFLA_IFNAME {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            if text.len() >= IFNAMSIZ {
                return Err(decode_error(format!(
                    "IFLA_IFNAME of {} octets",
                    text.len()
                )));
            }
            name = Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    Ok(LinkInfo { index, name })
}

/// One host address of ours on a link: `address/prefix` on link `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressSpec {
    pub address: IpAddr,
    pub prefix: u8,
    pub index: u32,
}

/// RTM_NEWADDR (only if the address is not there yet: NLM_F_EXCL, so that
/// we never take over an address someone else configured) or
/// RTM_DELADDR, acknowledged. IPv6 addresses skip duplicate address
/// detection.
pub fn encode_address(spec: &AddressSpec, add: bool, seq: u32) -> Writer {
    let (message_type, flags) = if add {
        (
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    } else {
        (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK)
    };
    let mut b = MessageBuilder::new(message_type, flags, seq);
    let ifa_flags = if spec.address.is_ipv6() && add {
        IFA_F_NODAD
    } else {
        0
    };
    b.body()
        .u8(family_number(spec.address))
        .u8(spec.prefix)
        .u8(ifa_flags)
        .u8(RT_SCOPE_UNIVERSE)
        .u32_ne(spec.index);
    let octets = address_octets(spec.address);
    b.attribute(IFA_LOCAL, |w| {
        w.raw(&octets);
    });
    b.attribute(IFA_ADDRESS, |w| {
        w.raw(&octets);
    });
    b.finish()
}

#[cfg(test)]
#[path = "rtnetlink_codec_tests.rs"]
mod tests;
