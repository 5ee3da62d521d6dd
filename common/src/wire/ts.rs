//! Traffic Selector payloads (RFC 7296 §3.13).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::{DecodeError, EncodeError};
use super::reader::{count_u8, length_u16, Reader};
use super::registries::TsType;

/// Ports 65535..0 mean OPAQUE (RFC 7296 §3.13.1, RFC 4301 §4.4.1).
pub const OPAQUE_PORTS: (u16, u16) = (65535, 0);

/// TSi or TSr payload: one or more selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSelectors {
    pub selectors: Vec<TrafficSelector>,
}

/// One traffic selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficSelector {
    Ipv4 {
        /// IP protocol number, 0 for any.
        ip_protocol: u8,
        start_port: u16,
        end_port: u16,
        start: Ipv4Addr,
        end: Ipv4Addr,
    },
    Ipv6 {
        ip_protocol: u8,
        start_port: u16,
        end_port: u16,
        start: Ipv6Addr,
        end: Ipv6Addr,
    },
    /// RFC 9478 security label (opaque, non-empty).
    SecLabel(Vec<u8>),
    /// Another selector type (e.g. RFC 4595 Fibre Channel), kept opaque.
    Unknown { ts_type: u8, data: Vec<u8> },
}

/// The fields of an address-range selector (TS_IPV4_ADDR_RANGE or
/// TS_IPV6_ADDR_RANGE, RFC 7296 §3.13.1), whichever the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: IpAddr,
    pub end: IpAddr,
}

impl TrafficSelector {
    /// The address range, protocol and ports of an IPv4 or IPv6 selector;
    /// `None` for a security label or an unknown type.
    pub fn address_range(&self) -> Option<AddressRange> {
        match self {
            TrafficSelector::Ipv4 {
                ip_protocol,
                start_port,
                end_port,
                start,
                end,
            } => Some(AddressRange {
                ip_protocol: *ip_protocol,
                start_port: *start_port,
                end_port: *end_port,
                start: IpAddr::V4(*start),
                end: IpAddr::V4(*end),
            }),
            TrafficSelector::Ipv6 {
                ip_protocol,
                start_port,
                end_port,
                start,
                end,
            } => Some(AddressRange {
                ip_protocol: *ip_protocol,
                start_port: *start_port,
                end_port: *end_port,
                start: IpAddr::V6(*start),
                end: IpAddr::V6(*end),
            }),
            TrafficSelector::SecLabel(_) | TrafficSelector::Unknown { .. } => None,
        }
    }

    /// An IPv4 range for all protocols and ports.
    pub fn ipv4_range(start: Ipv4Addr, end: Ipv4Addr) -> Self {
        TrafficSelector::Ipv4 {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start,
            end,
        }
    }

    /// An IPv6 range for all protocols and ports.
    pub fn ipv6_range(start: Ipv6Addr, end: Ipv6Addr) -> Self {
        TrafficSelector::Ipv6 {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start,
            end,
        }
    }

    /// The TS Type field.
    pub fn ts_type(&self) -> TsType {
        match self {
            TrafficSelector::Ipv4 { .. } => TsType::Ipv4AddrRange,
            TrafficSelector::Ipv6 { .. } => TsType::Ipv6AddrRange,
            TrafficSelector::SecLabel(_) => TsType::SecLabel,
            TrafficSelector::Unknown { ts_type, .. } => TsType::from_value(*ts_type),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start_offset = out.len();
        out.push(self.ts_type().value());
        match self {
            TrafficSelector::Ipv4 {
                ip_protocol,
                start_port,
                end_port,
                start,
                end,
            } => {
                encode_ports(out, *ip_protocol, *start_port, *end_port);
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            TrafficSelector::Ipv6 {
                ip_protocol,
                start_port,
                end_port,
                start,
                end,
            } => {
                encode_ports(out, *ip_protocol, *start_port, *end_port);
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            // RFC 9478 §2: type, reserved, length, label.
            TrafficSelector::SecLabel(data) | TrafficSelector::Unknown { data, .. } => {
                out.push(0);
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(data);
            }
        }
        let length = length_u16("traffic selector", out.len() - start_offset)?;
        out[start_offset + 2..start_offset + 4].copy_from_slice(&length.to_be_bytes());
        Ok(())
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ts_type = TsType::from_value(reader.u8()?);
        let ip_protocol = reader.u8()?;
        let length = reader.u16()?;
        let body_len = usize::from(length)
            .checked_sub(4)
            .filter(|len| *len <= reader.remaining())
            .ok_or(reader.invalid_value("traffic selector length", length))?;
        let mut body = reader.sub(body_len)?;
        let selector = match ts_type {
            TsType::Ipv4AddrRange => {
                if body_len != 12 {
                    return Err(body.invalid_value("TS_IPV4_ADDR_RANGE length", length));
                }
                let start_port = body.u16()?;
                let end_port = body.u16()?;
                let start = Ipv4Addr::from(body.array::<4>()?);
                let end = Ipv4Addr::from(body.array::<4>()?);
                check_range(&body, start_port, end_port, start <= end)?;
                TrafficSelector::Ipv4 {
                    ip_protocol,
                    start_port,
                    end_port,
                    start,
                    end,
                }
            }
            TsType::Ipv6AddrRange => {
                if body_len != 36 {
                    return Err(body.invalid_value("TS_IPV6_ADDR_RANGE length", length));
                }
                let start_port = body.u16()?;
                let end_port = body.u16()?;
                let start = Ipv6Addr::from(body.array::<16>()?);
                let end = Ipv6Addr::from(body.array::<16>()?);
                check_range(&body, start_port, end_port, start <= end)?;
                TrafficSelector::Ipv6 {
                    ip_protocol,
                    start_port,
                    end_port,
                    start,
                    end,
                }
            }
            other => {
                // The second octet is reserved for these types; not kept.
                let data = body.rest().to_vec();
                if other == TsType::SecLabel {
                    if data.is_empty() {
                        return Err(body.invalid("empty TS_SECLABEL"));
                    }
                    TrafficSelector::SecLabel(data)
                } else {
                    TrafficSelector::Unknown {
                        ts_type: other.value(),
                        data,
                    }
                }
            }
        };
        Ok(selector)
    }
}

fn encode_ports(out: &mut Vec<u8>, ip_protocol: u8, start_port: u16, end_port: u16) {
    out.push(ip_protocol);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&start_port.to_be_bytes());
    out.extend_from_slice(&end_port.to_be_bytes());
}

/// RFC 7296 §3.13.1: ranges are start..=end; the only allowed inverted port
/// range is 65535..0 (OPAQUE).
fn check_range(
    reader: &Reader<'_>,
    start_port: u16,
    end_port: u16,
    addresses_ordered: bool,
) -> Result<(), DecodeError> {
    if !addresses_ordered {
        return Err(reader.invalid("traffic selector start address above end address"));
    }
    if start_port > end_port && (start_port, end_port) != OPAQUE_PORTS {
        return Err(reader.invalid("traffic selector start port above end port"));
    }
    Ok(())
}

impl TrafficSelectors {
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(count_u8("traffic selectors", self.selectors.len())?);
        out.extend_from_slice(&[0, 0, 0]);
        for selector in &self.selectors {
            selector.encode(out)?;
        }
        Ok(())
    }

    pub(crate) fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = reader.u8()?;
        let _reserved = reader.array::<3>()?;
        if count == 0 {
            return Err(reader.invalid("no traffic selectors"));
        }
        // At most 255 selectors, each at least 4 octets of input: bounded.
        let mut selectors = Vec::new();
        for _ in 0..count {
            selectors.push(TrafficSelector::decode(reader)?);
        }
        if !reader.is_empty() {
            return Err(reader.invalid("bytes after the last traffic selector"));
        }
        Ok(TrafficSelectors { selectors })
    }
}
