//! Traffic selectors: the policy's flows (kernel `Selector`s, prefixes seen
//! from our side) to TSi/TSr and back, and narrowing (RFC 7296 §2.9).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use iked_common::kernel::{max_prefix, Selector};
use iked_common::wire::TrafficSelector;

/// One side of a selector: an address range, protocol and port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Side {
    v6: bool,
    start: u128,
    end: u128,
    protocol: u8,
    port_start: u16,
    port_end: u16,
}

fn addr_bits(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn bits_addr(v6: bool, bits: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bits))
    } else {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    }
}

fn width(v6: bool) -> u32 {
    if v6 {
        128
    } else {
        32
    }
}

impl Side {
    fn from_prefix(addr: IpAddr, prefix: u8, protocol: u8, port: u16) -> Side {
        let (v6, bits) = addr_bits(addr);
        let w = width(v6);
        let prefix = u32::from(prefix).min(w);
        let host_bits = w - prefix;
        let host_mask: u128 = if host_bits == 0 {
            0
        } else if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let (port_start, port_end) = if port == 0 { (0, 65535) } else { (port, port) };
        Side {
            v6,
            start: bits & !host_mask,
            end: (bits & !host_mask) | host_mask,
            protocol,
            port_start,
            port_end,
        }
    }

    /// The prefix this range is, if it is one.
    fn prefix(&self) -> Option<(IpAddr, u8)> {
        let w = width(self.v6);
        let span = self.end.checked_sub(self.start)?;
        let count = span.checked_add(1);
        let host_bits = match count {
            None => 128, // the whole IPv6 space
            Some(c) if c.is_power_of_two() => c.trailing_zeros(),
            Some(_) => return None,
        };
        if host_bits > w || (host_bits < 128 && self.start & ((1u128 << host_bits) - 1) != 0) {
            return None;
        }
        Some((bits_addr(self.v6, self.start), (w - host_bits) as u8))
    }

    /// The single port of a one-port range, 0 for the full range; None otherwise.
    fn port(&self) -> Option<u16> {
        if self.port_start == 0 && self.port_end == 65535 {
            Some(0)
        } else if self.port_start == self.port_end {
            Some(self.port_start)
        } else {
            None
        }
    }

    fn intersect(&self, other: &Side) -> Option<Side> {
        if self.v6 != other.v6 {
            return None;
        }
        let protocol = match (self.protocol, other.protocol) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        let port_start = self.port_start.max(other.port_start);
        let port_end = self.port_end.min(other.port_end);
        (start <= end && port_start <= port_end).then_some(Side {
            v6: self.v6,
            start,
            end,
            protocol,
            port_start,
            port_end,
        })
    }

    fn contains(&self, inner: &Side) -> bool {
        self.intersect(inner).as_ref() == Some(inner)
            && (self.protocol == 0 || self.protocol == inner.protocol)
    }

    fn to_wire(self) -> TrafficSelector {
        if self.v6 {
            TrafficSelector::Ipv6 {
                ip_protocol: self.protocol,
                start_port: self.port_start,
                end_port: self.port_end,
                start: Ipv6Addr::from(self.start),
                end: Ipv6Addr::from(self.end),
            }
        } else {
            TrafficSelector::Ipv4 {
                ip_protocol: self.protocol,
                start_port: self.port_start,
                end_port: self.port_end,
                start: Ipv4Addr::from(self.start as u32),
                end: Ipv4Addr::from(self.end as u32),
            }
        }
    }

    fn from_wire(ts: &TrafficSelector) -> Option<Side> {
        let range = ts.address_range()?;
        let as_number = |address: IpAddr| match address {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        let (v6, protocol, port_start, port_end, start, end) = (
            range.start.is_ipv6(),
            range.ip_protocol,
            range.start_port,
            range.end_port,
            as_number(range.start),
            as_number(range.end),
        );
        // OPAQUE ports (65535..0) cannot be expressed in a kernel selector.
        if start > end || port_start > port_end {
            return None;
        }
        Some(Side {
            v6,
            start,
            end,
            protocol,
            port_start,
            port_end,
        })
    }
}

/// Our side (source) of a flow as a traffic selector.
pub fn local_ts(flow: &Selector) -> TrafficSelector {
    Side::from_prefix(flow.src, flow.src_prefix, flow.protocol, flow.src_port).to_wire()
}

/// The peer's side (destination) of a flow as a traffic selector.
pub fn remote_ts(flow: &Selector) -> TrafficSelector {
    Side::from_prefix(flow.dst, flow.dst_prefix, flow.protocol, flow.dst_port).to_wire()
}

fn to_selector(local: &Side, remote: &Side) -> Option<Selector> {
    let (src, src_prefix) = local.prefix()?;
    let (dst, dst_prefix) = remote.prefix()?;
    if local.protocol != remote.protocol && local.protocol != 0 && remote.protocol != 0 {
        return None;
    }
    let selector = Selector {
        src,
        src_prefix,
        dst,
        dst_prefix,
        protocol: local.protocol.max(remote.protocol),
        src_port: local.port()?,
        dst_port: remote.port()?,
    };
    selector.is_well_formed().then_some(selector)
}

/// Responder narrowing (RFC 7296 §2.9): of all pairs of `remote_list`
/// (TSi, the peer's side) and `local_list` (TSr, our side) intersected with
/// one of our flows, the widest one the kernel can hold. A peer that puts
/// the packet's own addresses first (after an ACQUIRE) then still gets the
/// whole configured flow, which contains them. Returns the narrowed flow
/// (local → remote) and the index of the policy flow it falls in.
pub fn narrow(
    flows: &[Selector],
    remote_list: &[TrafficSelector],
    local_list: &[TrafficSelector],
) -> Option<(Selector, usize)> {
    let mut best: Option<(u128, Selector, usize)> = None;
    for (index, flow) in flows.iter().enumerate() {
        let ours_local = Side::from_prefix(flow.src, flow.src_prefix, flow.protocol, flow.src_port);
        let ours_remote =
            Side::from_prefix(flow.dst, flow.dst_prefix, flow.protocol, flow.dst_port);
        // Bounded: at most 255 selectors each (one octet count on the wire).
        for remote in remote_list.iter().filter_map(Side::from_wire) {
            for local in local_list.iter().filter_map(Side::from_wire) {
                let (Some(l), Some(r)) =
                    (ours_local.intersect(&local), ours_remote.intersect(&remote))
                else {
                    continue;
                };
                let Some(selector) = to_selector(&l, &r) else {
                    continue;
                };
                let width = (l.end - l.start).saturating_add(r.end - r.start);
                if best.as_ref().is_none_or(|(w, _, _)| width > *w) {
                    best = Some((width, selector, index));
                }
            }
        }
    }
    best.map(|(_, selector, index)| (selector, index))
}

/// Initiator's check of the responder's narrowed selectors: exactly one
/// each, inside what we proposed.
pub fn accept_narrowed(
    proposed: &Selector,
    local_list: &[TrafficSelector],
    remote_list: &[TrafficSelector],
) -> Option<Selector> {
    let ([local], [remote]) = (local_list, remote_list) else {
        return None;
    };
    let local = Side::from_wire(local)?;
    let remote = Side::from_wire(remote)?;
    let ours_local = Side::from_prefix(
        proposed.src,
        proposed.src_prefix,
        proposed.protocol,
        proposed.src_port,
    );
    let ours_remote = Side::from_prefix(
        proposed.dst,
        proposed.dst_prefix,
        proposed.protocol,
        proposed.dst_port,
    );
    if !ours_local.contains(&local) || !ours_remote.contains(&remote) {
        return None;
    }
    to_selector(&local, &remote)
}

/// Traffic selectors as the peer sent them, for the log line of a
/// refusal: `start-end`, with protocol and ports when limited; the first
/// four, and how many more.
pub fn ts_text(list: &[TrafficSelector]) -> String {
    fn one(ts: &TrafficSelector) -> String {
        let Some(range) = ts.address_range() else {
            return match ts {
                TrafficSelector::Unknown { ts_type, .. } => format!("TS type {ts_type}"),
                _ => "security label".into(),
            };
        };
        let mut text = format!("{}-{}", range.start, range.end);
        if range.ip_protocol != 0 {
            text.push_str(&format!(" proto {}", range.ip_protocol));
        }
        if (range.start_port, range.end_port) != (0, 65535) {
            text.push_str(&format!(" port {}-{}", range.start_port, range.end_port));
        }
        text
    }
    let mut text: Vec<String> = list.iter().take(4).map(one).collect();
    if list.len() > 4 {
        text.push(format!("{} more", list.len() - 4));
    }
    if text.is_empty() {
        return "none".into();
    }
    text.join(", ")
}

/// A host selector's text for `ikectl show sa`.
pub fn side_text(addr: IpAddr, prefix: u8, port: u16, protocol: u8) -> String {
    let mut text = if prefix == max_prefix(addr) {
        addr.to_string()
    } else {
        format!("{addr}/{prefix}")
    };
    if protocol != 0 {
        text.push_str(&format!(" proto {protocol}"));
    }
    if port != 0 {
        text.push_str(&format!(" port {port}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(src: &str, sp: u8, dst: &str, dp: u8) -> Selector {
        Selector {
            src: src.parse().unwrap(),
            src_prefix: sp,
            dst: dst.parse().unwrap(),
            dst_prefix: dp,
            protocol: 0,
            src_port: 0,
            dst_port: 0,
        }
    }

    #[test]
    fn ts_text_names_each_selector_kind() {
        let v4 = TrafficSelector::Ipv4 {
            ip_protocol: 6,
            start_port: 80,
            end_port: 80,
            start: Ipv4Addr::new(10, 1, 0, 0),
            end: Ipv4Addr::new(10, 1, 255, 255),
        };
        let v6 =
            TrafficSelector::ipv6_range("fd00::".parse().unwrap(), "fd00::ff".parse().unwrap());
        let label = TrafficSelector::SecLabel(b"system_u".to_vec());
        let other = TrafficSelector::Unknown {
            ts_type: 9,
            data: vec![1],
        };
        assert_eq!(
            ts_text(&[v4.clone(), v6.clone(), label, other]),
            "10.1.0.0-10.1.255.255 proto 6 port 80-80, fd00::-fd00::ff, security label, TS type 9"
        );
        assert_eq!(
            ts_text(&[v6.clone(), v6.clone(), v6.clone(), v6.clone(), v4]),
            "fd00::-fd00::ff, fd00::-fd00::ff, fd00::-fd00::ff, fd00::-fd00::ff, 1 more"
        );
        assert_eq!(ts_text(&[]), "none");
    }

    #[test]
    fn narrowing_picks_the_intersection_with_our_flow() {
        let flows = [sel("10.2.0.0", 16, "10.1.0.0", 16)];
        // The peer proposes its /16 (TSi) and our whole /8 (TSr).
        let tsi = [local_ts(&sel("10.1.0.0", 16, "0.0.0.0", 0))];
        let tsr = [local_ts(&sel("10.0.0.0", 8, "0.0.0.0", 0))];
        let (narrowed, index) = narrow(&flows, &tsi, &tsr).unwrap();
        assert_eq!(index, 0);
        assert_eq!(narrowed, flows[0]);
        // A host inside both is kept as the host.
        let host = [local_ts(&sel("10.1.3.4", 32, "0.0.0.0", 0))];
        let (narrowed, _) = narrow(&flows, &host, &tsr).unwrap();
        assert_eq!(narrowed.dst, "10.1.3.4".parse::<IpAddr>().unwrap());
        assert_eq!(narrowed.dst_prefix, 32);
        assert_eq!(narrowed.src_prefix, 16);
    }

    #[test]
    fn a_leading_host_selector_does_not_shrink_the_child_sa() {
        let flows = [sel("10.2.0.0", 16, "10.1.0.0", 16)];
        let tsi = [
            local_ts(&sel("10.1.3.4", 32, "0.0.0.0", 0)),
            local_ts(&sel("10.1.0.0", 16, "0.0.0.0", 0)),
        ];
        let tsr = [
            local_ts(&sel("10.2.9.9", 32, "0.0.0.0", 0)),
            local_ts(&sel("10.2.0.0", 16, "0.0.0.0", 0)),
        ];
        assert_eq!(narrow(&flows, &tsi, &tsr).unwrap().0, flows[0]);
    }

    #[test]
    fn disjoint_selectors_do_not_narrow() {
        let flows = [sel("10.2.0.0", 16, "10.1.0.0", 16)];
        let tsi = [local_ts(&sel("192.168.0.0", 16, "0.0.0.0", 0))];
        let tsr = [local_ts(&sel("10.2.0.0", 16, "0.0.0.0", 0))];
        assert!(narrow(&flows, &tsi, &tsr).is_none());
    }

    #[test]
    fn ranges_that_are_not_prefixes_are_refused() {
        let odd =
            TrafficSelector::ipv4_range("10.0.0.1".parse().unwrap(), "10.0.0.6".parse().unwrap());
        let flows = [sel("10.0.0.0", 24, "10.9.0.0", 24)];
        let tsi = [remote_ts(&flows[0])];
        assert!(narrow(&flows, &tsi, &[odd]).is_none());
    }

    #[test]
    fn initiator_refuses_a_widened_answer() {
        let proposed = sel("10.1.0.0", 24, "10.2.0.0", 24);
        let wide = sel("10.1.0.0", 16, "10.2.0.0", 24);
        assert!(accept_narrowed(&proposed, &[local_ts(&wide)], &[remote_ts(&wide)]).is_none());
        let narrow_sel = sel("10.1.0.0", 25, "10.2.0.7", 32);
        assert_eq!(
            accept_narrowed(
                &proposed,
                &[local_ts(&narrow_sel)],
                &[remote_ts(&narrow_sel)]
            ),
            Some(narrow_sel)
        );
    }
}
