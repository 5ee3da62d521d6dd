//! The IKE header (RFC 7296 §3.1).

use super::error::DecodeError;
use super::reader::Reader;
use super::registries::{ExchangeType, PayloadType};

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;

/// The only major version we speak (RFC 7296 §3.1).
pub const MAJOR_VERSION: u8 = 2;

/// Flags octet of the IKE header (RFC 7296 §3.1). The reserved bits are
/// sent as zero and ignored on receipt, so they are not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// I (bit 3): set in messages sent by the original initiator of the IKE SA.
    pub initiator: bool,
    /// V (bit 4): the sender can speak a higher major version.
    pub version: bool,
    /// R (bit 5): this message is a response.
    pub response: bool,
}

impl Flags {
    const INITIATOR: u8 = 0x08;
    const VERSION: u8 = 0x10;
    const RESPONSE: u8 = 0x20;

    /// Flags decoded from the wire octet (reserved bits ignored).
    pub const fn from_octet(octet: u8) -> Self {
        Flags {
            initiator: octet & Self::INITIATOR != 0,
            version: octet & Self::VERSION != 0,
            response: octet & Self::RESPONSE != 0,
        }
    }

    /// The wire octet.
    pub const fn octet(self) -> u8 {
        (if self.initiator { Self::INITIATOR } else { 0 })
            | (if self.version { Self::VERSION } else { 0 })
            | (if self.response { Self::RESPONSE } else { 0 })
    }
}

/// The IKE header, without the fields an encoder computes (next payload,
/// length) and without the ignored ones (minor version, RFC 7296 §3.1:
/// "MUST ignore the minor version"; we always send 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// IKE SA Initiator's SPI (never zero in a valid message; checked by the engine).
    pub initiator_spi: u64,
    /// IKE SA Responder's SPI (zero in the first IKE_SA_INIT request).
    pub responder_spi: u64,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
}

/// What [`Header::decode`] read besides the [`Header`] itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedHeader {
    pub header: Header,
    /// Type of the first payload.
    pub first_payload: PayloadType,
    /// The Length field: total message length including the header.
    pub length: u32,
}

impl Header {
    /// Decodes the 28-byte IKE header at the start of `bytes` (which may be
    /// longer). Checks the major version; the length field is returned, not
    /// checked against `bytes` (see [`super::Message::decode`]).
    pub fn decode(bytes: &[u8]) -> Result<DecodedHeader, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::Truncated {
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        }
        let mut reader = Reader::new(bytes, PayloadType::NoNextPayload);
        let initiator_spi = u64::from_be_bytes(reader.array()?);
        let responder_spi = u64::from_be_bytes(reader.array()?);
        let first_payload = PayloadType::from_value(reader.u8()?);
        let version = reader.u8()?;
        let exchange = ExchangeType::from_value(reader.u8()?);
        let flags = Flags::from_octet(reader.u8()?);
        let message_id = reader.u32()?;
        let length = reader.u32()?;
        let major = version >> 4;
        if major != MAJOR_VERSION {
            // RFC 7296 §2.5/§3.1: answer with INVALID_MAJOR_VERSION; the error
            // carries what the answer needs.
            return Err(DecodeError::InvalidMajorVersion(major));
        }
        Ok(DecodedHeader {
            header: Header {
                initiator_spi,
                responder_spi,
                exchange,
                flags,
                message_id,
            },
            first_payload,
            length,
        })
    }

    /// Appends the 28 header bytes with the given first payload and length.
    pub fn encode_into(&self, first_payload: PayloadType, length: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.initiator_spi.to_be_bytes());
        out.extend_from_slice(&self.responder_spi.to_be_bytes());
        out.push(first_payload.value());
        out.push(MAJOR_VERSION << 4);
        out.push(self.exchange.value());
        out.push(self.flags.octet());
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&length.to_be_bytes());
    }

    /// Header of a request. `from_original_initiator` sets the I flag
    /// (RFC 7296 §3.1: set by the original initiator of the IKE SA, whichever
    /// side sends the request).
    pub const fn request(
        initiator_spi: u64,
        responder_spi: u64,
        exchange: ExchangeType,
        message_id: u32,
        from_original_initiator: bool,
    ) -> Self {
        Header {
            initiator_spi,
            responder_spi,
            exchange,
            flags: Flags {
                initiator: from_original_initiator,
                version: false,
                response: false,
            },
            message_id,
        }
    }

    /// Header of the response to `self` (a request we received): same SPIs,
    /// exchange and message ID, R set, I set if we are the original initiator
    /// (that is, if the request did not have it).
    pub const fn response(&self) -> Self {
        Header {
            flags: Flags {
                initiator: !self.flags.initiator,
                version: false,
                response: true,
            },
            ..*self
        }
    }

    /// Whether this header belongs to a request (R flag clear).
    pub const fn is_request(&self) -> bool {
        !self.flags.response
    }
}

/// The SPIs and message ID of a datagram whose header could be read even if
/// the message is invalid (e.g. to answer INVALID_MAJOR_VERSION, RFC 7296 §2.5).
pub fn peek_header_fields(bytes: &[u8]) -> Option<(u64, u64, ExchangeType, u32)> {
    let mut reader = Reader::new(bytes, PayloadType::NoNextPayload);
    let initiator_spi = u64::from_be_bytes(reader.array().ok()?);
    let responder_spi = u64::from_be_bytes(reader.array().ok()?);
    let _next = reader.u8().ok()?;
    let _version = reader.u8().ok()?;
    let exchange = ExchangeType::from_value(reader.u8().ok()?);
    let _flags = reader.u8().ok()?;
    let message_id = reader.u32().ok()?;
    Some((initiator_spi, responder_spi, exchange, message_id))
}
