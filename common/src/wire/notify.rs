//! Notify payload (RFC 7296 §3.10).

use super::error::{DecodeError, EncodeError};
use super::reader::{count_u8, Reader};
use super::registries::{DhId, NotifyType, ProtocolId};

/// Length of a NAT_DETECTION_*_IP hash (SHA-1, RFC 7296 §2.23).
pub const NAT_DETECTION_HASH_LEN: usize = 20;
/// COOKIE data bounds (RFC 7296 §2.6).
pub const COOKIE_MAX_LEN: usize = 64;

/// A notification: error or status, optionally about an SA named by SPI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Protocol of the SA named by `spi`; `ProtocolId::None` without an SPI
    /// (then RFC 7296 §3.10 says it is ignored on receipt; kept as received).
    pub protocol: ProtocolId,
    /// Empty, or 4 octets (AH/ESP SPI), or 8 (an IKE SPI).
    pub spi: Vec<u8>,
    pub notify_type: NotifyType,
    pub data: Vec<u8>,
}

impl Notify {
    /// A notification about no particular SA.
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> Self {
        Notify {
            protocol: ProtocolId::None,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }

    /// A notification about the Child SA with the given SPI (e.g. REKEY_SA,
    /// CHILD_SA_NOT_FOUND).
    pub fn for_child_sa(
        notify_type: NotifyType,
        protocol: ProtocolId,
        spi: u32,
        data: Vec<u8>,
    ) -> Self {
        Notify {
            protocol,
            spi: spi.to_be_bytes().to_vec(),
            notify_type,
            data,
        }
    }

    /// The SPI as a Child SA SPI, when it is 4 octets.
    pub fn child_spi(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.spi.as_slice())
            .ok()
            .map(u32::from_be_bytes)
    }

    /// INVALID_KE_PAYLOAD: the group the responder wants (RFC 7296 §3.10.1).
    pub fn invalid_ke_group(&self) -> Option<DhId> {
        if self.notify_type != NotifyType::InvalidKePayload {
            return None;
        }
        <[u8; 2]>::try_from(self.data.as_slice())
            .ok()
            .map(|bytes| DhId::from_value(u16::from_be_bytes(bytes)))
    }

    /// SIGNATURE_HASH_ALGORITHMS: the hash algorithm identifiers (RFC 7427 §4).
    pub fn signature_hash_algorithms(&self) -> Option<Vec<u16>> {
        if self.notify_type != NotifyType::SignatureHashAlgorithms {
            return None;
        }
        Some(
            self.data
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect(),
        )
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.protocol.value());
        out.push(count_u8("notify SPI octets", self.spi.len())?);
        out.extend_from_slice(&self.notify_type.value().to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }

    pub(crate) fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId::from_value(reader.u8()?);
        let spi_size = reader.u8()?;
        let notify_type = NotifyType::from_value(reader.u16()?);
        if !matches!(spi_size, 0 | 4 | 8) {
            return Err(reader.invalid_value("notify SPI size", spi_size));
        }
        let spi = reader.take(usize::from(spi_size))?.to_vec();
        let data = reader.rest();
        // Formats that RFC 7296 fixes; anything else stays opaque for the engine.
        let data_ok = match notify_type {
            NotifyType::Cookie => (1..=COOKIE_MAX_LEN).contains(&data.len()),
            NotifyType::NatDetectionSourceIp | NotifyType::NatDetectionDestinationIp => {
                data.len() == NAT_DETECTION_HASH_LEN
            }
            NotifyType::InvalidKePayload => data.len() == 2,
            NotifyType::SignatureHashAlgorithms => data.len().is_multiple_of(2),
            _ => true,
        };
        if !data_ok {
            return Err(
                reader.invalid_value("notification data length for its type", data.len() as u64)
            );
        }
        Ok(Notify {
            protocol,
            spi,
            notify_type,
            data: data.to_vec(),
        })
    }
}
