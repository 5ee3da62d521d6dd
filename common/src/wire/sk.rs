//! Framing of the Encrypted (SK, RFC 7296 §3.14) and Encrypted Fragment
//! (SKF, RFC 7383 §2.5) payloads for the crypto layer, which opens and seals
//! them; their bodies stay opaque ([`Encrypted`], [`EncryptedFragment`], in
//! `encrypted.rs`, below the payload codec so that it need not import this).
//!
//! Sealing: encode the inner payloads with [`super::encode_payloads`],
//! build the bytes before the encrypted data with [`encrypted_message_prefix`]
//! (lengths final, so they can serve as AEAD associated data), append
//! IV || ciphertext || ICV. Opening: [`encrypted_span`] splits a received
//! datagram into associated data and encrypted data, and
//! [`super::decode_payloads`] decodes the plaintext.

use super::error::{DecodeError, EncodeError};
use super::header::{Header, HEADER_LEN};
use super::payloads::{encode_chain, Payload, GENERIC_HEADER_LEN};
use super::registries::PayloadType;
use super::MAX_MESSAGE_LEN;

pub use super::encrypted::{Encrypted, EncryptedFragment, FRAGMENT_FIELDS_LEN};

/// Which of SK or SKF a prefix is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptedKind {
    Whole,
    Fragment {
        fragment_number: u16,
        total_fragments: u16,
    },
}

/// The bytes of a message from the start of the IKE header to the end of
/// the SK (or SKF) payload header, with every length final: header length =
/// whole message, SK length = its header + `encrypted_len` (IV, ciphertext,
/// padding, ICV). `unencrypted` are payloads sent in clear before SK (usually
/// none). Serves as AEAD associated data (RFC 5282 §5.1) and as the start of
/// the bytes the integrity checksum covers (RFC 7296 §3.14).
pub fn encrypted_message_prefix(
    header: &Header,
    unencrypted: &[Payload],
    kind: EncryptedKind,
    first_inner: PayloadType,
    encrypted_len: usize,
) -> Result<Vec<u8>, EncodeError> {
    let (sk_type, fields_len) = match kind {
        EncryptedKind::Whole => (PayloadType::Encrypted, 0),
        EncryptedKind::Fragment { .. } => (PayloadType::EncryptedFragment, FRAGMENT_FIELDS_LEN),
    };
    // Encoded one by one so that each Next Payload field can be set to the
    // following payload, the last one to SK/SKF.
    let mut clear = Vec::new();
    for (index, payload) in unencrypted.iter().enumerate() {
        if matches!(
            payload,
            Payload::Encrypted(_) | Payload::EncryptedFragment(_)
        ) {
            return Err(EncodeError::EncryptedNotLast(payload.payload_type()));
        }
        let start = clear.len();
        encode_chain(std::slice::from_ref(payload), &mut clear)?;
        clear[start] = unencrypted
            .get(index + 1)
            .map_or(sk_type, Payload::payload_type)
            .value();
    }
    let sk_len = GENERIC_HEADER_LEN + fields_len + encrypted_len;
    let sk_len_u16 = u16::try_from(sk_len).map_err(|_| EncodeError::TooLong {
        what: "encrypted payload",
        length: sk_len,
    })?;
    let total = HEADER_LEN + clear.len() + sk_len;
    if total > MAX_MESSAGE_LEN {
        return Err(EncodeError::TooLong {
            what: "message",
            length: total,
        });
    }
    let first = unencrypted.first().map_or(sk_type, Payload::payload_type);
    let mut out = Vec::with_capacity(HEADER_LEN + clear.len() + GENERIC_HEADER_LEN + fields_len);
    header.encode_into(first, total as u32, &mut out);
    out.extend_from_slice(&clear);
    let next = match kind {
        EncryptedKind::Fragment {
            fragment_number, ..
        } if fragment_number > 1 => PayloadType::NoNextPayload,
        _ => first_inner,
    };
    out.push(next.value());
    out.push(0);
    out.extend_from_slice(&sk_len_u16.to_be_bytes());
    if let EncryptedKind::Fragment {
        fragment_number,
        total_fragments,
    } = kind
    {
        out.extend_from_slice(&fragment_number.to_be_bytes());
        out.extend_from_slice(&total_fragments.to_be_bytes());
    }
    Ok(out)
}

/// Where the encrypted data of a received message starts: the length of the
/// associated data (IKE header up to the end of the SK/SKF header). The
/// encrypted data (IV || ciphertext || ICV) is the rest of the datagram.
/// The datagram must have passed [`super::Message::decode`]; this re-walks
/// the raw bytes so that the AAD is exactly what the peer sent.
pub fn encrypted_span(datagram: &[u8]) -> Result<usize, DecodeError> {
    let decoded = Header::decode(datagram)?;
    let mut offset = HEADER_LEN;
    let mut current = decoded.first_payload;
    // Bounded: every step advances by at least 4 bytes or fails.
    loop {
        if current == PayloadType::NoNextPayload {
            return Err(DecodeError::InvalidPayload {
                payload: PayloadType::Encrypted,
                reason: "message has no encrypted payload",
            });
        }
        let Some(&[next, _flags, length_high, length_low]) = datagram
            .get(offset..)
            .and_then(|rest| rest.first_chunk::<GENERIC_HEADER_LEN>())
        else {
            return Err(DecodeError::PayloadTruncated {
                payload: current,
                needed: GENERIC_HEADER_LEN,
                available: datagram.len().saturating_sub(offset),
            });
        };
        let length = u16::from_be_bytes([length_high, length_low]);
        match current {
            PayloadType::Encrypted => return Ok(offset + GENERIC_HEADER_LEN),
            PayloadType::EncryptedFragment => {
                let end = offset + GENERIC_HEADER_LEN + FRAGMENT_FIELDS_LEN;
                return if end <= datagram.len() {
                    Ok(end)
                } else {
                    Err(DecodeError::PayloadTruncated {
                        payload: current,
                        needed: end,
                        available: datagram.len(),
                    })
                };
            }
            _ => {}
        }
        if usize::from(length) < GENERIC_HEADER_LEN {
            return Err(DecodeError::InvalidPayloadLength {
                payload: current,
                length,
                available: datagram.len().saturating_sub(offset),
            });
        }
        offset += usize::from(length);
        current = PayloadType::from_value(next);
    }
}
