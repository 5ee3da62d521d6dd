//! Configuration payload (RFC 7296 §3.15).

use super::error::{DecodeError, EncodeError};
use super::reader::{length_u16, Reader};
use super::registries::{CfgType, CpAttributeType};

/// Most attributes accepted in one CP payload.
pub const MAX_CP_ATTRIBUTES: usize = 256;

/// CP payload: request, reply, set or ack, with attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    pub cfg_type: CfgType,
    pub attributes: Vec<CpAttribute>,
}

/// One configuration attribute; an empty value asks for one (in a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpAttribute {
    /// 15 bits on the wire (the top bit is reserved).
    pub attribute_type: CpAttributeType,
    pub value: Vec<u8>,
}

impl CpAttribute {
    pub fn new(attribute_type: CpAttributeType, value: Vec<u8>) -> Self {
        CpAttribute {
            attribute_type,
            value,
        }
    }
}

/// Value lengths RFC 7296 §3.15.1 allows for an attribute type (besides 0).
fn allowed_lengths(attribute_type: CpAttributeType) -> Option<&'static [usize]> {
    Some(match attribute_type {
        CpAttributeType::InternalIp4Address
        | CpAttributeType::InternalIp4Netmask
        | CpAttributeType::InternalIp4Dns
        | CpAttributeType::InternalIp4Nbns
        | CpAttributeType::InternalIp4Dhcp => &[4],
        CpAttributeType::InternalIp4Subnet => &[8],
        CpAttributeType::InternalIp6Address | CpAttributeType::InternalIp6Subnet => &[17],
        CpAttributeType::InternalIp6Dns | CpAttributeType::InternalIp6Dhcp => &[16],
        _ => return None,
    })
}

impl Configuration {
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.cfg_type.value());
        out.extend_from_slice(&[0, 0, 0]);
        for attribute in &self.attributes {
            let attribute_type = attribute.attribute_type.value();
            if attribute_type & 0x8000 != 0 {
                return Err(EncodeError::Unrepresentable(
                    "CP attribute type above 0x7fff",
                ));
            }
            out.extend_from_slice(&attribute_type.to_be_bytes());
            let length = length_u16("CP attribute", attribute.value.len())?;
            out.extend_from_slice(&length.to_be_bytes());
            out.extend_from_slice(&attribute.value);
        }
        Ok(())
    }

    pub(crate) fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let cfg_type = CfgType::from_value(reader.u8()?);
        let _reserved = reader.array::<3>()?;
        let mut attributes = Vec::new();
        while !reader.is_empty() {
            if attributes.len() >= MAX_CP_ATTRIBUTES {
                return Err(reader.invalid("too many configuration attributes"));
            }
            // The top bit is reserved (RFC 7296 §3.15.1): ignored.
            let attribute_type = CpAttributeType::from_value(reader.u16()? & 0x7fff);
            let length = reader.u16()?;
            let value = reader.take(usize::from(length))?;
            if !value.is_empty() {
                let length_ok = match attribute_type {
                    CpAttributeType::SupportedAttributes => value.len().is_multiple_of(2),
                    other => {
                        allowed_lengths(other).is_none_or(|lengths| lengths.contains(&value.len()))
                    }
                };
                if !length_ok {
                    return Err(reader.invalid_value("CP attribute length for its type", length));
                }
            }
            attributes.push(CpAttribute {
                attribute_type,
                value: value.to_vec(),
            });
        }
        Ok(Configuration {
            cfg_type,
            attributes,
        })
    }
}
