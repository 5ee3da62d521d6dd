//! Decode and encode errors.

use super::registries::{NotifyType, PayloadType};

/// Why a message (or a payload chain) was refused.
///
/// [`DecodeError::notify`] says which error notification RFC 7296 would have
/// us answer with, where one applies; whether to answer at all is the
/// engine's decision (RFC 7296 §2.21: never answer unauthenticated garbage
/// with anything that could be abused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the IKE header needs.
    #[error("truncated IKE header: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// A payload (or its generic header) ends before a field it declares.
    #[error("truncated {payload} payload: need {needed} bytes, have {available}")]
    PayloadTruncated {
        payload: PayloadType,
        needed: usize,
        available: usize,
    },
    /// The header's length field disagrees with the datagram.
    #[error("IKE header length {header} but datagram has {datagram} bytes")]
    LengthMismatch { header: u32, datagram: usize },
    /// The message is bigger than we accept.
    #[error("message of {0} bytes exceeds the {max}-byte limit", max = super::MAX_MESSAGE_LEN)]
    MessageTooLong(usize),
    /// RFC 7296 §3.1: major version other than 2.
    #[error("IKE major version {0} (only 2 is supported)")]
    InvalidMajorVersion(u8),
    /// A payload length below its header size or past the end of the data.
    #[error("{payload} payload length {length} is invalid ({available} bytes left)")]
    InvalidPayloadLength {
        payload: PayloadType,
        length: u16,
        available: usize,
    },
    /// More payloads in one chain than we accept.
    #[error("more than {max} payloads", max = super::MAX_PAYLOADS)]
    TooManyPayloads,
    /// Bytes left after the payload that said it was the last one.
    #[error("{0} bytes after the last payload")]
    TrailingBytes(usize),
    /// RFC 7296 §3.14: the Encrypted payload must be the last payload.
    #[error("{0} payload is not the last payload")]
    EncryptedNotLast(PayloadType),
    /// RFC 7296 §3.2: an unknown payload with the critical bit set.
    #[error("unsupported critical payload type {0}")]
    UnsupportedCriticalPayload(u8),
    /// A payload whose contents break a MUST of its RFC.
    #[error("invalid {payload} payload: {reason}")]
    InvalidPayload {
        payload: PayloadType,
        reason: &'static str,
    },
    /// A numeric field whose value is outside what the RFC allows.
    #[error("invalid {payload} payload: {reason} ({value})")]
    InvalidValue {
        payload: PayloadType,
        reason: &'static str,
        value: u64,
    },
}

impl DecodeError {
    /// The error notification that answers this error (RFC 7296 §2.21, §3.10.1),
    /// if any. Header-level problems get none: such a datagram is not an IKE
    /// message we could answer reliably.
    pub fn notify(&self) -> Option<NotifyType> {
        match self {
            DecodeError::InvalidMajorVersion(_) => Some(NotifyType::InvalidMajorVersion),
            DecodeError::UnsupportedCriticalPayload(_) => {
                Some(NotifyType::UnsupportedCriticalPayload)
            }
            DecodeError::Truncated { .. }
            | DecodeError::LengthMismatch { .. }
            | DecodeError::MessageTooLong(_) => None,
            DecodeError::PayloadTruncated { .. }
            | DecodeError::InvalidPayloadLength { .. }
            | DecodeError::TooManyPayloads
            | DecodeError::TrailingBytes(_)
            | DecodeError::EncryptedNotLast(_)
            | DecodeError::InvalidPayload { .. }
            | DecodeError::InvalidValue { .. } => Some(NotifyType::InvalidSyntax),
        }
    }

    /// Notification data to send with [`DecodeError::notify`]: for
    /// UNSUPPORTED_CRITICAL_PAYLOAD the one-octet payload type (RFC 7296 §3.10.1).
    pub fn notify_data(&self) -> Vec<u8> {
        match self {
            DecodeError::UnsupportedCriticalPayload(ty) => vec![*ty],
            _ => Vec::new(),
        }
    }
}

/// Why a message could not be encoded (a value does not fit its field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A length does not fit its 16-bit field (or the message limit).
    #[error("{what} of {length} bytes is too long to encode")]
    TooLong { what: &'static str, length: usize },
    /// A count does not fit its field.
    #[error("too many {what}: {count}")]
    TooMany { what: &'static str, count: usize },
    /// A value the wire format cannot express (e.g. SPI of a size other than 0-255).
    #[error("cannot encode {0}")]
    Unrepresentable(&'static str),
    /// RFC 7296 §3.14: the Encrypted payload must be the last one.
    #[error("{0} payload must be the last payload")]
    EncryptedNotLast(PayloadType),
}
