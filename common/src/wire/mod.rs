//! IKEv2 wire format (RFC 7296 §3): strict decoding and exact encoding.
//!
//! Everything here handles bytes from the network: decoding returns a
//! [`DecodeError`] (never panics), checks every length before using it, and
//! caps the message size ([`MAX_MESSAGE_LEN`]) and the number of payloads
//! per chain ([`MAX_PAYLOADS`]). Encoding computes every length and count
//! itself. Fields the RFC says to ignore on receipt (reserved bits, minor
//! version, critical bit of known payloads) are not kept; re-encoding sends
//! them as zero.
//!
//! The Encrypted payload stays opaque: see [`sk`] for how the crypto layer
//! seals and opens it, and [`decode_payloads`] for the decrypted contents.
//!
//! ```
//! use iked_common::wire::*;
//!
//! let header = Header::request(0x7a62_7fa4_faa2_bdd6, 0, ExchangeType::IkeSaInit, 0, true);
//! let message = Message::new(
//!     header,
//!     vec![
//!         Nonce(vec![0x4e; 32]).into(),
//!         Notify::new(NotifyType::NatDetectionSourceIp, vec![0; 20]).into(),
//!     ],
//! );
//! let bytes = message.encode().unwrap();
//! let decoded = Message::decode(&bytes).unwrap();
//! assert_eq!(decoded, message);
//! assert_eq!(decoded.to_string(), "IKE_SA_INIT request 0 [ No N(NATD_S_IP) ]");
//! assert_eq!(
//!     Message::decode(&bytes[..20]).unwrap_err(),
//!     DecodeError::Truncated { needed: 28, available: 20 }
//! );
//! ```

mod cp;
mod encrypted;
mod error;
mod header;
mod notify;
mod payloads;
mod reader;
pub mod registries;
mod render;
mod render_offer;
mod sa;
pub mod sk;
mod ts;

pub use cp::{Configuration, CpAttribute, MAX_CP_ATTRIBUTES};
pub use error::{DecodeError, EncodeError};
pub use header::{peek_header_fields, DecodedHeader, Flags, Header, HEADER_LEN, MAJOR_VERSION};
pub use notify::{Notify, COOKIE_MAX_LEN, NAT_DETECTION_HASH_LEN};
pub use payloads::{
    decode_payloads, encode_payloads, key_exchange_lengths, Authentication, Certificate,
    CertificateRequest, Delete, Eap, Identity, KeyExchange, Nonce, Payload, UnknownPayload,
    VendorId, CA_HASH_LEN, GENERIC_HEADER_LEN, MAX_FQDN_LEN, MAX_ID_LEN, MAX_UNKNOWN_KE_LEN,
    NONCE_MAX_LEN, NONCE_MIN_LEN,
};
pub use registries::{
    AuthMethod, CertEncoding, CfgType, CpAttributeType, DhId, EncrId, EsnId, ExchangeType, IdType,
    IntegId, NotifyType, PayloadType, PrfId, ProtocolId, TransformType, TsType,
};
pub use render_offer::Offered;
pub use sa::{
    AttributeValue, Proposal, SecurityAssociation, Transform, TransformAttribute, TransformId,
    ATTRIBUTE_KEY_LENGTH, MAX_PROPOSALS,
};
pub use sk::{
    encrypted_message_prefix, encrypted_span, Encrypted, EncryptedFragment, EncryptedKind,
};
pub use ts::{AddressRange, TrafficSelector, TrafficSelectors, OPAQUE_PORTS};

use payloads::{decode_chain, encode_chain, ChainContext};

/// Largest message accepted or produced: the most RFC 8229 (TCP) framing
/// can carry; UDP datagrams are smaller still.
pub const MAX_MESSAGE_LEN: usize = 65535;
/// Most payloads accepted in one chain (the message, or the contents of an
/// SK payload). Real messages carry a few dozen at most.
pub const MAX_PAYLOADS: usize = 128;

/// An IKEv2 message: header and payloads, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Decodes one whole message (a UDP datagram without the non-ESP
    /// marker, or one RFC 8229 record). The header's length must equal
    /// `datagram.len()`.
    pub fn decode(datagram: &[u8]) -> Result<Message, DecodeError> {
        if datagram.len() > MAX_MESSAGE_LEN {
            return Err(DecodeError::MessageTooLong(datagram.len()));
        }
        let decoded = Header::decode(datagram)?;
        if usize::try_from(decoded.length).ok() != Some(datagram.len()) {
            return Err(DecodeError::LengthMismatch {
                header: decoded.length,
                datagram: datagram.len(),
            });
        }
        let body = datagram.get(HEADER_LEN..).unwrap_or_default();
        let context = ChainContext {
            is_response: decoded.header.flags.response,
            allow_encrypted: true,
        };
        let payloads = decode_chain(decoded.first_payload, body, &context)?;
        Ok(Message {
            header: decoded.header,
            payloads,
        })
    }

    /// Encodes the message, computing next-payload fields and lengths.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let first = self
            .payloads
            .first()
            .map_or(PayloadType::NoNextPayload, Payload::payload_type);
        let mut out = Vec::with_capacity(512);
        self.header.encode_into(first, 0, &mut out);
        encode_chain(&self.payloads, &mut out)?;
        if out.len() > MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLong {
                what: "message",
                length: out.len(),
            });
        }
        let length = out.len() as u32;
        out[24..28].copy_from_slice(&length.to_be_bytes());
        Ok(out)
    }

    /// The notifications in the message, in order.
    pub fn notifies(&self) -> impl Iterator<Item = &Notify> {
        self.payloads.iter().filter_map(|payload| match payload {
            Payload::Notify(notify) => Some(notify),
            _ => None,
        })
    }

    /// The first notification of a type.
    pub fn notify(&self, notify_type: NotifyType) -> Option<&Notify> {
        self.notifies()
            .find(|notify| notify.notify_type == notify_type)
    }

    /// A message with the given header and payloads.
    pub fn new(header: Header, payloads: Vec<Payload>) -> Self {
        Message { header, payloads }
    }

    /// The SA payload, if any (the first one).
    pub fn security_association(&self) -> Option<&SecurityAssociation> {
        self.payloads.iter().find_map(|payload| match payload {
            Payload::SecurityAssociation(sa) => Some(sa),
            _ => None,
        })
    }

    /// The KE payload, if any.
    pub fn key_exchange(&self) -> Option<&KeyExchange> {
        self.payloads.iter().find_map(|payload| match payload {
            Payload::KeyExchange(ke) => Some(ke),
            _ => None,
        })
    }

    /// The Nonce payload, if any.
    pub fn nonce(&self) -> Option<&Nonce> {
        self.payloads.iter().find_map(|payload| match payload {
            Payload::Nonce(nonce) => Some(nonce),
            _ => None,
        })
    }

    /// The Encrypted payload, if any.
    pub fn encrypted(&self) -> Option<&Encrypted> {
        self.payloads.iter().find_map(|payload| match payload {
            Payload::Encrypted(sk) => Some(sk),
            _ => None,
        })
    }

    /// The payload types, in order.
    pub fn payload_types(&self) -> Vec<PayloadType> {
        self.payloads.iter().map(Payload::payload_type).collect()
    }
}
