//! The bodies of the Encrypted (SK, RFC 7296 §3.14) and Encrypted Fragment
//! (SKF, RFC 7383 §2.5) payloads, kept opaque: the payload codec decodes
//! them here, and [`super::sk`] frames them for sealing and opening.

use super::error::DecodeError;
use super::reader::Reader;
use super::registries::PayloadType;

/// Length of the SKF fields after the generic header.
pub const FRAGMENT_FIELDS_LEN: usize = 4;

/// SK payload: IV, ciphertext (with padding and pad length) and ICV, opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// Type of the first payload inside (the Next Payload field of SK).
    pub first_inner: PayloadType,
    /// IV || ciphertext || ICV.
    pub data: Vec<u8>,
}

/// SKF payload: one fragment of an SK payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedFragment {
    /// 1..=total_fragments.
    pub fragment_number: u16,
    pub total_fragments: u16,
    /// First inner payload type in fragment 1, NoNextPayload in the others.
    pub first_inner: PayloadType,
    /// IV || ciphertext || ICV of this fragment.
    pub data: Vec<u8>,
}

impl Encrypted {
    pub(crate) fn decode_body(
        next: PayloadType,
        reader: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        let data = reader.rest();
        if data.is_empty() {
            return Err(reader.invalid("empty encrypted payload"));
        }
        Ok(Encrypted {
            first_inner: next,
            data: data.to_vec(),
        })
    }
}

impl EncryptedFragment {
    pub(crate) fn decode_body(
        next: PayloadType,
        reader: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        let fragment_number = reader.u16()?;
        let total_fragments = reader.u16()?;
        // RFC 7383 §2.5: numbers start at 1 and never exceed the total.
        if fragment_number == 0 || fragment_number > total_fragments {
            return Err(reader.invalid_value("fragment number", fragment_number));
        }
        if fragment_number > 1 && next != PayloadType::NoNextPayload {
            return Err(reader.invalid("Next Payload set in a fragment other than the first"));
        }
        let data = reader.rest();
        if data.is_empty() {
            return Err(reader.invalid("empty encrypted fragment"));
        }
        Ok(EncryptedFragment {
            fragment_number,
            total_fragments,
            first_inner: next,
            data: data.to_vec(),
        })
    }
}
