//! A bounds-checked cursor over untrusted bytes: every read returns an error
//! instead of panicking, and nothing is allocated before its length is known
//! to be present in the input.

use super::error::DecodeError;
use super::registries::PayloadType;

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    /// Payload the bytes belong to, for error messages (NoNextPayload: the IKE header).
    payload: PayloadType,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], payload: PayloadType) -> Self {
        Reader { bytes, payload }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        match self.bytes.split_at_checked(count) {
            Some((head, tail)) => {
                self.bytes = tail;
                Ok(head)
            }
            None if self.payload == PayloadType::NoNextPayload => Err(DecodeError::Truncated {
                needed: count,
                available: self.bytes.len(),
            }),
            None => Err(DecodeError::PayloadTruncated {
                payload: self.payload,
                needed: count,
                available: self.bytes.len(),
            }),
        }
    }

    /// Takes `count` bytes as a reader of their own (same payload for errors).
    pub(crate) fn sub(&mut self, count: usize) -> Result<Reader<'a>, DecodeError> {
        let payload = self.payload;
        Ok(Reader::new(self.take(count)?, payload))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let [byte] = self.array::<1>()?;
        Ok(byte)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn invalid(&self, reason: &'static str) -> DecodeError {
        DecodeError::InvalidPayload {
            payload: self.payload,
            reason,
        }
    }

    pub(crate) fn invalid_value(&self, reason: &'static str, value: impl Into<u64>) -> DecodeError {
        DecodeError::InvalidValue {
            payload: self.payload,
            reason,
            value: value.into(),
        }
    }
}

/// Appends a big-endian u16 length, failing if it does not fit.
pub(crate) fn length_u16(what: &'static str, length: usize) -> Result<u16, super::EncodeError> {
    u16::try_from(length).map_err(|_| super::EncodeError::TooLong { what, length })
}

/// Converts a count to the width of its field.
pub(crate) fn count_u8(what: &'static str, count: usize) -> Result<u8, super::EncodeError> {
    u8::try_from(count).map_err(|_| super::EncodeError::TooMany { what, count })
}
