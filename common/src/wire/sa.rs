//! Security Association payload: proposals, transforms, attributes
//! (RFC 7296 §3.3, RFC 9370 additional key exchanges).

use super::error::{DecodeError, EncodeError};
use super::reader::{count_u8, length_u16, Reader};
use super::registries::{DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType};

/// Most proposals accepted in one SA payload (real peers send a handful).
pub const MAX_PROPOSALS: usize = 64;
/// Key Length attribute type (RFC 7296 §3.3.5).
pub const ATTRIBUTE_KEY_LENGTH: u16 = 14;

/// Attribute Format bit: set for TV (2-octet value), clear for TLV.
const ATTRIBUTE_TV: u16 = 0x8000;
/// "Last Substruc" values (RFC 7296 §3.3.1, §3.3.2).
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
const LAST: u8 = 0;
const PROPOSAL_HEADER_LEN: usize = 8;
const TRANSFORM_HEADER_LEN: usize = 8;

/// SA payload: an ordered list of alternative proposals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityAssociation {
    pub proposals: Vec<Proposal>,
}

/// One proposal: a protocol, an SPI and the transforms offered for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// 1 for the first proposal of a request, one more for each following;
    /// in a response, the number of the accepted proposal.
    pub number: u8,
    pub protocol: ProtocolId,
    /// Empty in IKE_SA_INIT, 8 octets when rekeying an IKE SA, 4 for AH/ESP.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// One transform: algorithm and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub id: TransformId,
    pub attributes: Vec<TransformAttribute>,
}

/// Transform type and ID together, typed by transform type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformId {
    Encr(EncrId),
    Prf(PrfId),
    Integ(IntegId),
    Ke(DhId),
    Esn(EsnId),
    /// RFC 9370 ADDKE1..ADDKE7 (transform types 6..12); the index is 1..=7.
    AdditionalKe(u8, DhId),
    Unknown {
        transform_type: u8,
        id: u16,
    },
}

impl TransformId {
    /// Typed ID from the wire's transform type and transform ID.
    pub fn from_values(transform_type: u8, id: u16) -> Self {
        match TransformType::from_value(transform_type) {
            TransformType::Encryption => TransformId::Encr(EncrId::from_value(id)),
            TransformType::Prf => TransformId::Prf(PrfId::from_value(id)),
            TransformType::Integrity => TransformId::Integ(IntegId::from_value(id)),
            TransformType::KeyExchange => TransformId::Ke(DhId::from_value(id)),
            TransformType::SequenceNumbers => TransformId::Esn(EsnId::from_value(id)),
            TransformType::Unknown(_) => TransformId::Unknown { transform_type, id },
            additional => TransformId::AdditionalKe(additional.value() - 5, DhId::from_value(id)),
        }
    }

    /// The transform type.
    pub fn transform_type(self) -> TransformType {
        TransformType::from_value(match self {
            TransformId::Encr(_) => 1,
            TransformId::Prf(_) => 2,
            TransformId::Integ(_) => 3,
            TransformId::Ke(_) => 4,
            TransformId::Esn(_) => 5,
            TransformId::AdditionalKe(index, _) => index.wrapping_add(5),
            TransformId::Unknown { transform_type, .. } => transform_type,
        })
    }

    /// The transform ID.
    pub fn id(self) -> u16 {
        match self {
            TransformId::Encr(id) => id.value(),
            TransformId::Prf(id) => id.value(),
            TransformId::Integ(id) => id.value(),
            TransformId::Ke(id) | TransformId::AdditionalKe(_, id) => id.value(),
            TransformId::Esn(id) => id.value(),
            TransformId::Unknown { id, .. } => id,
        }
    }
}

/// A transform attribute (RFC 7296 §3.3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformAttribute {
    /// Key length in bits (TV format), for variable-key-length ciphers.
    KeyLength(u16),
    /// Any other attribute (none are defined for IKEv2 today); RFC 7296
    /// §3.3.6 has the engine reject transforms carrying ones it does not know.
    Other {
        attribute_type: u16,
        value: AttributeValue,
    },
}

/// Value of an attribute in TV or TLV format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    Short(u16),
    Long(Vec<u8>),
}

impl Transform {
    /// A transform without attributes.
    pub fn new(id: TransformId) -> Self {
        Transform {
            id,
            attributes: Vec::new(),
        }
    }

    /// A transform with a Key Length attribute (bits).
    pub fn with_key_length(id: TransformId, bits: u16) -> Self {
        Transform {
            id,
            attributes: vec![TransformAttribute::KeyLength(bits)],
        }
    }

    /// The Key Length attribute, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes
            .iter()
            .find_map(|attribute| match attribute {
                TransformAttribute::KeyLength(bits) => Some(*bits),
                TransformAttribute::Other { .. } => None,
            })
    }

    fn encode(&self, last: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.push(if last { LAST } else { MORE_TRANSFORMS });
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        let transform_type = match self.id {
            TransformId::AdditionalKe(index, _) if !(1..=7).contains(&index) => {
                return Err(EncodeError::Unrepresentable("ADDKE index outside 1..=7"));
            }
            id => id.transform_type().value(),
        };
        out.push(transform_type);
        out.push(0);
        out.extend_from_slice(&self.id.id().to_be_bytes());
        for attribute in &self.attributes {
            match attribute {
                TransformAttribute::KeyLength(bits) => {
                    out.extend_from_slice(&(ATTRIBUTE_TV | ATTRIBUTE_KEY_LENGTH).to_be_bytes());
                    out.extend_from_slice(&bits.to_be_bytes());
                }
                TransformAttribute::Other {
                    attribute_type,
                    value,
                } => {
                    if *attribute_type & ATTRIBUTE_TV != 0 {
                        return Err(EncodeError::Unrepresentable("attribute type above 0x7fff"));
                    }
                    match value {
                        AttributeValue::Short(short) => {
                            out.extend_from_slice(&(ATTRIBUTE_TV | attribute_type).to_be_bytes());
                            out.extend_from_slice(&short.to_be_bytes());
                        }
                        AttributeValue::Long(bytes) => {
                            out.extend_from_slice(&attribute_type.to_be_bytes());
                            let length = length_u16("transform attribute", bytes.len())?;
                            out.extend_from_slice(&length.to_be_bytes());
                            out.extend_from_slice(bytes);
                        }
                    }
                }
            }
        }
        let length = length_u16("transform", out.len() - start)?;
        out[start + 2..start + 4].copy_from_slice(&length.to_be_bytes());
        Ok(())
    }

    fn decode(reader: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let last_substruc = reader.u8()?;
        let _reserved = reader.u8()?;
        let length = reader.u16()?;
        let body_len = usize::from(length)
            .checked_sub(4)
            .filter(|len| *len >= TRANSFORM_HEADER_LEN - 4 && *len <= reader.remaining())
            .ok_or(reader.invalid_value("transform length", length))?;
        let mut body = reader.sub(body_len)?;
        let transform_type = body.u8()?;
        let _reserved = body.u8()?;
        let id = TransformId::from_values(transform_type, body.u16()?);
        let mut attributes = Vec::new();
        while !body.is_empty() {
            let raw_type = body.u16()?;
            let attribute_type = raw_type & !ATTRIBUTE_TV;
            let value = if raw_type & ATTRIBUTE_TV != 0 {
                AttributeValue::Short(body.u16()?)
            } else {
                let value_len = body.u16()?;
                // take() fails on a length past the end of the transform.
                AttributeValue::Long(body.take(usize::from(value_len))?.to_vec())
            };
            let attribute = match (attribute_type, value) {
                (ATTRIBUTE_KEY_LENGTH, AttributeValue::Short(bits)) => {
                    if attributes
                        .iter()
                        .any(|seen| matches!(seen, TransformAttribute::KeyLength(_)))
                    {
                        return Err(body.invalid("two Key Length attributes in one transform"));
                    }
                    TransformAttribute::KeyLength(bits)
                }
                (ATTRIBUTE_KEY_LENGTH, AttributeValue::Long(_)) => {
                    return Err(body.invalid("Key Length attribute in TLV format"));
                }
                (attribute_type, value) => TransformAttribute::Other {
                    attribute_type,
                    value,
                },
            };
            attributes.push(attribute);
        }
        let more = match last_substruc {
            LAST => false,
            MORE_TRANSFORMS => true,
            other => return Err(reader.invalid_value("transform Last Substruc", other)),
        };
        Ok((Transform { id, attributes }, more))
    }
}

impl Proposal {
    fn encode(&self, last: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.push(if last { LAST } else { MORE_PROPOSALS });
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        out.push(self.number);
        out.push(self.protocol.value());
        out.push(count_u8("SPI octets", self.spi.len())?);
        out.push(count_u8("transforms", self.transforms.len())?);
        out.extend_from_slice(&self.spi);
        for (index, transform) in self.transforms.iter().enumerate() {
            transform.encode(index + 1 == self.transforms.len(), out)?;
        }
        let length = length_u16("proposal", out.len() - start)?;
        out[start + 2..start + 4].copy_from_slice(&length.to_be_bytes());
        Ok(())
    }

    fn decode(reader: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let last_substruc = reader.u8()?;
        let _reserved = reader.u8()?;
        let length = reader.u16()?;
        let body_len = usize::from(length)
            .checked_sub(4)
            .filter(|len| *len >= PROPOSAL_HEADER_LEN - 4 && *len <= reader.remaining())
            .ok_or(reader.invalid_value("proposal length", length))?;
        let mut body = reader.sub(body_len)?;
        let number = body.u8()?;
        let protocol = ProtocolId::from_value(body.u8()?);
        let spi_size = body.u8()?;
        let transform_count = body.u8()?;
        let spi_size_ok = match protocol {
            ProtocolId::Ike => spi_size == 0 || spi_size == 8,
            ProtocolId::Ah | ProtocolId::Esp => spi_size == 4,
            _ => spi_size <= 16,
        };
        if !spi_size_ok {
            return Err(body.invalid_value("proposal SPI size for its protocol", spi_size));
        }
        let spi = body.take(usize::from(spi_size))?.to_vec();
        let mut transforms = Vec::new();
        let mut more = !body.is_empty();
        while more {
            let (transform, more_follow) = Transform::decode(&mut body)?;
            transforms.push(transform);
            if more_follow == body.is_empty() {
                return Err(body.invalid("transform Last Substruc disagrees with the length"));
            }
            more = more_follow;
        }
        if transforms.is_empty() {
            return Err(body.invalid("proposal without transforms"));
        }
        if transforms.len() != usize::from(transform_count) {
            return Err(body.invalid_value("number of transforms disagrees", transform_count));
        }
        let more = match last_substruc {
            LAST => false,
            MORE_PROPOSALS => true,
            other => return Err(reader.invalid_value("proposal Last Substruc", other)),
        };
        Ok((
            Proposal {
                number,
                protocol,
                spi,
                transforms,
            },
            more,
        ))
    }
}

impl SecurityAssociation {
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for (index, proposal) in self.proposals.iter().enumerate() {
            proposal.encode(index + 1 == self.proposals.len(), out)?;
        }
        Ok(())
    }

    pub(crate) fn decode_body(
        reader: &mut Reader<'_>,
        is_response: bool,
    ) -> Result<Self, DecodeError> {
        let mut proposals: Vec<Proposal> = Vec::new();
        loop {
            if proposals.len() >= MAX_PROPOSALS {
                return Err(reader.invalid("too many proposals"));
            }
            let (proposal, more) = Proposal::decode(reader)?;
            // RFC 7296 §3.3.1: proposals are numbered 1, 2, 3, ...; an accepted
            // proposal in a response keeps the number it had in the request.
            let expected = match proposals.last() {
                Some(previous) => Some(previous.number.wrapping_add(1)),
                None if is_response && !more => None,
                None => Some(1),
            };
            let numbering_ok = match expected {
                Some(expected) => proposal.number == expected,
                None => proposal.number != 0,
            };
            if !numbering_ok {
                return Err(
                    reader.invalid_value("proposal number out of sequence", proposal.number)
                );
            }
            proposals.push(proposal);
            if more == reader.is_empty() {
                return Err(reader.invalid("proposal Last Substruc disagrees with the length"));
            }
            if !more {
                return Ok(SecurityAssociation { proposals });
            }
        }
    }
}
