//! The generic payload header, payload chains and the simple payloads
//! (RFC 7296 §3.2, §3.4-§3.9, §3.11, §3.12, §3.16).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::cp::Configuration;
use super::encrypted::{Encrypted, EncryptedFragment};
use super::error::{DecodeError, EncodeError};
use super::notify::Notify;
use super::reader::{length_u16, Reader};
use super::registries::{AuthMethod, CertEncoding, DhId, IdType, PayloadType, ProtocolId};
use super::sa::SecurityAssociation;
use super::ts::TrafficSelectors;
use super::{Header, MAX_PAYLOADS};

/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;
/// Critical bit of the generic payload header (RFC 7296 §3.2).
const CRITICAL: u8 = 0x80;

/// Nonce length bounds (RFC 7296 §3.9: "between 16 and 256 octets").
pub const NONCE_MIN_LEN: usize = 16;
pub const NONCE_MAX_LEN: usize = 256;
/// Largest key exchange data accepted for a method whose size we do not know.
pub const MAX_UNKNOWN_KE_LEN: usize = 4096;
/// Largest identification data accepted (a long DER DN fits comfortably).
pub const MAX_ID_LEN: usize = 2048;
/// Largest FQDN (RFC 1035: 255 octets in wire form).
pub const MAX_FQDN_LEN: usize = 255;

/// One IKEv2 payload. Known critical bits are not kept: RFC 7296 §3.2 says
/// the bit only matters for payload types the receiver does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    SecurityAssociation(SecurityAssociation),
    KeyExchange(KeyExchange),
    IdInitiator(Identity),
    IdResponder(Identity),
    Certificate(Certificate),
    CertificateRequest(CertificateRequest),
    Authentication(Authentication),
    Nonce(Nonce),
    Notify(Notify),
    Delete(Delete),
    VendorId(VendorId),
    TsInitiator(TrafficSelectors),
    TsResponder(TrafficSelectors),
    Encrypted(Encrypted),
    Configuration(Configuration),
    Eap(Eap),
    EncryptedFragment(EncryptedFragment),
    /// A payload type we do not implement, received without the critical bit
    /// (RFC 7296 §3.2: skipped, kept here only so it can be logged/re-encoded).
    Unknown(UnknownPayload),
}

/// A payload of a type we do not implement. `payload_type` must not be one
/// this module implements (it would decode as that type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPayload {
    pub payload_type: u8,
    pub critical: bool,
    pub data: Vec<u8>,
}

impl Payload {
    /// The payload type this payload is sent as.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::SecurityAssociation(_) => PayloadType::SecurityAssociation,
            Payload::KeyExchange(_) => PayloadType::KeyExchange,
            Payload::IdInitiator(_) => PayloadType::IdInitiator,
            Payload::IdResponder(_) => PayloadType::IdResponder,
            Payload::Certificate(_) => PayloadType::Certificate,
            Payload::CertificateRequest(_) => PayloadType::CertificateRequest,
            Payload::Authentication(_) => PayloadType::Authentication,
            Payload::Nonce(_) => PayloadType::Nonce,
            Payload::Notify(_) => PayloadType::Notify,
            Payload::Delete(_) => PayloadType::Delete,
            Payload::VendorId(_) => PayloadType::VendorId,
            Payload::TsInitiator(_) => PayloadType::TsInitiator,
            Payload::TsResponder(_) => PayloadType::TsResponder,
            Payload::Encrypted(_) => PayloadType::Encrypted,
            Payload::Configuration(_) => PayloadType::Configuration,
            Payload::Eap(_) => PayloadType::Eap,
            Payload::EncryptedFragment(_) => PayloadType::EncryptedFragment,
            Payload::Unknown(unknown) => PayloadType::from_value(unknown.payload_type),
        }
    }

    /// For SK and SKF: the Next Payload value, which names the first inner payload.
    fn inner_next(&self) -> Option<PayloadType> {
        match self {
            Payload::Encrypted(sk) => Some(sk.first_inner),
            Payload::EncryptedFragment(skf) => Some(skf.first_inner),
            _ => None,
        }
    }

    fn is_encrypted(&self) -> bool {
        self.inner_next().is_some()
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Payload::SecurityAssociation(sa) => sa.encode_body(out),
            Payload::KeyExchange(ke) => {
                out.extend_from_slice(&ke.group.value().to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&ke.data);
                Ok(())
            }
            Payload::IdInitiator(id) | Payload::IdResponder(id) => {
                id.encode_body(out);
                Ok(())
            }
            Payload::Certificate(cert) => {
                out.push(cert.encoding.value());
                out.extend_from_slice(&cert.data);
                Ok(())
            }
            Payload::CertificateRequest(req) => {
                out.push(req.encoding.value());
                out.extend_from_slice(&req.authorities);
                Ok(())
            }
            Payload::Authentication(auth) => {
                out.push(auth.method.value());
                out.extend_from_slice(&[0, 0, 0]);
                out.extend_from_slice(&auth.data);
                Ok(())
            }
            Payload::Nonce(nonce) => {
                out.extend_from_slice(&nonce.0);
                Ok(())
            }
            Payload::Notify(notify) => notify.encode_body(out),
            Payload::Delete(delete) => delete.encode_body(out),
            Payload::VendorId(vid) => {
                out.extend_from_slice(&vid.0);
                Ok(())
            }
            Payload::TsInitiator(ts) | Payload::TsResponder(ts) => ts.encode_body(out),
            Payload::Encrypted(sk) => {
                out.extend_from_slice(&sk.data);
                Ok(())
            }
            Payload::Configuration(cp) => cp.encode_body(out),
            Payload::Eap(eap) => {
                out.extend_from_slice(&eap.0);
                Ok(())
            }
            Payload::EncryptedFragment(skf) => {
                out.extend_from_slice(&skf.fragment_number.to_be_bytes());
                out.extend_from_slice(&skf.total_fragments.to_be_bytes());
                out.extend_from_slice(&skf.data);
                Ok(())
            }
            Payload::Unknown(unknown) => {
                out.extend_from_slice(&unknown.data);
                Ok(())
            }
        }
    }

    fn decode_body(
        payload_type: PayloadType,
        next: PayloadType,
        body: &[u8],
        context: &ChainContext,
    ) -> Result<Payload, DecodeError> {
        let mut reader = Reader::new(body, payload_type);
        let payload = match payload_type {
            PayloadType::SecurityAssociation => Payload::SecurityAssociation(
                SecurityAssociation::decode_body(&mut reader, context.is_response)?,
            ),
            PayloadType::KeyExchange => Payload::KeyExchange(KeyExchange::decode(&mut reader)?),
            PayloadType::IdInitiator => Payload::IdInitiator(Identity::decode(&mut reader)?),
            PayloadType::IdResponder => Payload::IdResponder(Identity::decode(&mut reader)?),
            PayloadType::Certificate => Payload::Certificate(Certificate::decode(&mut reader)?),
            PayloadType::CertificateRequest => {
                Payload::CertificateRequest(CertificateRequest::decode(&mut reader)?)
            }
            PayloadType::Authentication => {
                Payload::Authentication(Authentication::decode(&mut reader)?)
            }
            PayloadType::Nonce => Payload::Nonce(Nonce::decode(&mut reader)?),
            PayloadType::Notify => Payload::Notify(Notify::decode_body(&mut reader)?),
            PayloadType::Delete => Payload::Delete(Delete::decode(&mut reader)?),
            PayloadType::VendorId => Payload::VendorId(VendorId(reader.rest().to_vec())),
            PayloadType::TsInitiator => {
                Payload::TsInitiator(TrafficSelectors::decode_body(&mut reader)?)
            }
            PayloadType::TsResponder => {
                Payload::TsResponder(TrafficSelectors::decode_body(&mut reader)?)
            }
            PayloadType::Encrypted => {
                Payload::Encrypted(Encrypted::decode_body(next, &mut reader)?)
            }
            PayloadType::Configuration => {
                Payload::Configuration(Configuration::decode_body(&mut reader)?)
            }
            PayloadType::Eap => Payload::Eap(Eap::decode(&mut reader)?),
            PayloadType::EncryptedFragment => {
                Payload::EncryptedFragment(EncryptedFragment::decode_body(next, &mut reader)?)
            }
            other => Payload::Unknown(UnknownPayload {
                payload_type: other.value(),
                critical: false,
                data: reader.rest().to_vec(),
            }),
        };
        if !reader.is_empty() {
            return Err(reader.invalid("bytes left after the payload's contents"));
        }
        Ok(payload)
    }
}

macro_rules! payload_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(
            impl From<$ty> for Payload {
                fn from(value: $ty) -> Self {
                    Payload::$variant(value)
                }
            }
        )*
    };
}

// IDi/IDr and TSi/TSr share a type, so they have no From: name the variant.
payload_from!(
    SecurityAssociation(SecurityAssociation),
    KeyExchange(KeyExchange),
    Certificate(Certificate),
    CertificateRequest(CertificateRequest),
    Authentication(Authentication),
    Nonce(Nonce),
    Notify(Notify),
    Delete(Delete),
    VendorId(VendorId),
    Encrypted(Encrypted),
    Configuration(Configuration),
    Eap(Eap),
    EncryptedFragment(EncryptedFragment),
    Unknown(UnknownPayload),
);

/// What a chain decoder needs to know about the message it is in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainContext {
    /// RFC 7296 §3.3.1: proposal numbering rules differ in responses.
    pub(crate) is_response: bool,
    /// Whether SK/SKF may appear (not inside decrypted contents).
    pub(crate) allow_encrypted: bool,
}

/// Whether a payload type is implemented (anything else is "unknown" in the
/// sense of RFC 7296 §3.2, subject to the critical bit).
fn is_implemented(payload_type: PayloadType) -> bool {
    matches!(
        payload_type,
        PayloadType::SecurityAssociation
            | PayloadType::KeyExchange
            | PayloadType::IdInitiator
            | PayloadType::IdResponder
            | PayloadType::Certificate
            | PayloadType::CertificateRequest
            | PayloadType::Authentication
            | PayloadType::Nonce
            | PayloadType::Notify
            | PayloadType::Delete
            | PayloadType::VendorId
            | PayloadType::TsInitiator
            | PayloadType::TsResponder
            | PayloadType::Encrypted
            | PayloadType::Configuration
            | PayloadType::Eap
            | PayloadType::EncryptedFragment
    )
}

/// Walks a payload chain starting with a payload of type `first`. The chain
/// must end exactly at the end of `bytes`; SK/SKF, if present, must be last.
pub(crate) fn decode_chain(
    first: PayloadType,
    bytes: &[u8],
    context: &ChainContext,
) -> Result<Vec<Payload>, DecodeError> {
    let mut payloads = Vec::new();
    let mut current = first;
    let mut rest = bytes;
    while current != PayloadType::NoNextPayload {
        // Each payload consumes at least 4 bytes, so the walk is bounded by the
        // input; the count cap bounds the work and memory per message.
        if payloads.len() >= MAX_PAYLOADS {
            return Err(DecodeError::TooManyPayloads);
        }
        let Some(([next, flags, length_high, length_low], after_header)) = rest
            .split_first_chunk::<GENERIC_HEADER_LEN>()
            .map(|(header, after)| (*header, after))
        else {
            return Err(DecodeError::PayloadTruncated {
                payload: current,
                needed: GENERIC_HEADER_LEN,
                available: rest.len(),
            });
        };
        let next = PayloadType::from_value(next);
        let critical = flags & CRITICAL != 0;
        let length = u16::from_be_bytes([length_high, length_low]);
        let Some((body, after)) = usize::from(length)
            .checked_sub(GENERIC_HEADER_LEN)
            .and_then(|body_len| after_header.split_at_checked(body_len))
        else {
            return Err(DecodeError::InvalidPayloadLength {
                payload: current,
                length,
                available: rest.len(),
            });
        };
        let payload = if is_implemented(current) {
            if !context.allow_encrypted
                && matches!(
                    current,
                    PayloadType::Encrypted | PayloadType::EncryptedFragment
                )
            {
                return Err(DecodeError::InvalidPayload {
                    payload: current,
                    reason: "encrypted payload inside encrypted contents",
                });
            }
            Payload::decode_body(current, next, body, context)?
        } else if critical {
            // RFC 7296 §3.2: reject the whole message.
            return Err(DecodeError::UnsupportedCriticalPayload(current.value()));
        } else {
            Payload::Unknown(UnknownPayload {
                payload_type: current.value(),
                critical: false,
                data: body.to_vec(),
            })
        };
        let encrypted = payload.is_encrypted();
        payloads.push(payload);
        rest = after;
        if encrypted {
            // Next Payload of SK/SKF names the first inner payload, not a
            // following one: the chain ends here (RFC 7296 §3.14, RFC 7383 §2.5).
            if !rest.is_empty() {
                return Err(DecodeError::EncryptedNotLast(current));
            }
            return Ok(payloads);
        }
        current = next;
    }
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(payloads)
}

/// Appends a payload chain; returns nothing, the first type is that of `payloads[0]`.
pub(crate) fn encode_chain(payloads: &[Payload], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for (index, payload) in payloads.iter().enumerate() {
        let following = payloads.get(index + 1);
        let next = match (payload.inner_next(), following) {
            (Some(_), Some(_)) => {
                return Err(EncodeError::EncryptedNotLast(payload.payload_type()));
            }
            (Some(inner), None) => inner,
            (None, Some(following)) => following.payload_type(),
            (None, None) => PayloadType::NoNextPayload,
        };
        let start = out.len();
        out.push(next.value());
        out.push(match payload {
            Payload::Unknown(unknown) if unknown.critical => CRITICAL,
            _ => 0,
        });
        out.extend_from_slice(&[0, 0]);
        payload.encode_body(out)?;
        let length = length_u16("payload", out.len() - start)?;
        out[start + 2..start + 4].copy_from_slice(&length.to_be_bytes());
    }
    Ok(())
}

/// Encodes a payload chain to plaintext bytes (what goes inside SK before
/// padding and encryption). Returns the first payload's type (for the SK
/// header's Next Payload field) and the bytes.
pub fn encode_payloads(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), EncodeError> {
    let first = payloads
        .first()
        .map_or(PayloadType::NoNextPayload, Payload::payload_type);
    let mut out = Vec::new();
    encode_chain(payloads, &mut out)?;
    Ok((first, out))
}

/// Decodes decrypted SK contents: a chain of payloads starting with type
/// `first` (the SK payload's Next Payload field) that fills `plaintext`
/// exactly (padding already removed). `header` is that of the enclosing
/// message. Encrypted payloads inside are refused.
pub fn decode_payloads(
    first: PayloadType,
    plaintext: &[u8],
    header: &Header,
) -> Result<Vec<Payload>, DecodeError> {
    let context = ChainContext {
        is_response: header.flags.response,
        allow_encrypted: false,
    };
    decode_chain(first, plaintext, &context)
}

/// Key Exchange payload (RFC 7296 §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyExchange {
    pub group: DhId,
    pub data: Vec<u8>,
}

/// Key exchange data lengths a method allows: Diffie-Hellman public values
/// have one length (RFC 7296 §3.4 padding, RFC 5903 x||y, RFC 8031), ML-KEM
/// has one for the encapsulation key and one for the ciphertext.
pub fn key_exchange_lengths(group: DhId) -> Option<&'static [usize]> {
    Some(match group {
        DhId::Modp768 => &[96],
        DhId::Modp1024 | DhId::Modp1024s160 => &[128],
        DhId::Modp1536 => &[192],
        DhId::Modp2048 | DhId::Modp2048s224 | DhId::Modp2048s256 => &[256],
        DhId::Modp3072 => &[384],
        DhId::Modp4096 => &[512],
        DhId::Modp6144 => &[768],
        DhId::Modp8192 => &[1024],
        DhId::Ecp192 => &[48],
        DhId::Ecp224 | DhId::Brainpool224 => &[56],
        DhId::Ecp256 | DhId::Brainpool256 => &[64],
        DhId::Ecp384 | DhId::Brainpool384 => &[96],
        DhId::Ecp521 => &[132],
        DhId::Brainpool512 => &[128],
        DhId::Curve25519 => &[32],
        DhId::Curve448 => &[56],
        DhId::Gost3410_2012_256 => &[64],
        DhId::Gost3410_2012_512 => &[128],
        DhId::MlKem512 => &[800, 768],
        DhId::MlKem768 => &[1184, 1088],
        DhId::MlKem1024 => &[1568],
        DhId::None | DhId::Unknown(_) => return None,
    })
}

impl KeyExchange {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let group = DhId::from_value(reader.u16()?);
        let _reserved = reader.u16()?;
        let data = reader.rest();
        if group == DhId::None {
            return Err(reader.invalid("key exchange method NONE"));
        }
        let length_ok = match key_exchange_lengths(group) {
            Some(lengths) => lengths.contains(&data.len()),
            None => (1..=MAX_UNKNOWN_KE_LEN).contains(&data.len()),
        };
        if !length_ok {
            return Err(reader.invalid_value("key exchange data length", data.len() as u64));
        }
        Ok(KeyExchange {
            group,
            data: data.to_vec(),
        })
    }
}

/// Identification payload contents (RFC 7296 §3.5), used for IDi and IDr.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// ASCII host name without terminator.
    Fqdn(String),
    /// ASCII e-mail address without terminator.
    Rfc822(String),
    /// DER encoding of an ASN.1 X.500 Name (opaque here).
    DerAsn1Dn(Vec<u8>),
    /// DER encoding of an ASN.1 GeneralName (opaque here).
    DerAsn1Gn(Vec<u8>),
    KeyId(Vec<u8>),
    FcName(Vec<u8>),
    /// RFC 7619: no identity, empty data.
    Null,
    Unknown {
        id_type: u8,
        data: Vec<u8>,
    },
}

impl Identity {
    /// The ID Type field.
    pub fn id_type(&self) -> IdType {
        match self {
            Identity::Ipv4(_) => IdType::Ipv4Addr,
            Identity::Ipv6(_) => IdType::Ipv6Addr,
            Identity::Fqdn(_) => IdType::Fqdn,
            Identity::Rfc822(_) => IdType::Rfc822Addr,
            Identity::DerAsn1Dn(_) => IdType::DerAsn1Dn,
            Identity::DerAsn1Gn(_) => IdType::DerAsn1Gn,
            Identity::KeyId(_) => IdType::KeyId,
            Identity::FcName(_) => IdType::FcName,
            Identity::Null => IdType::Null,
            Identity::Unknown { id_type, .. } => IdType::from_value(*id_type),
        }
    }

    /// The Identification Data field.
    pub fn data(&self) -> Vec<u8> {
        match self {
            Identity::Ipv4(addr) => addr.octets().to_vec(),
            Identity::Ipv6(addr) => addr.octets().to_vec(),
            Identity::Fqdn(name) | Identity::Rfc822(name) => name.as_bytes().to_vec(),
            Identity::DerAsn1Dn(data)
            | Identity::DerAsn1Gn(data)
            | Identity::KeyId(data)
            | Identity::FcName(data)
            | Identity::Unknown { data, .. } => data.clone(),
            Identity::Null => Vec::new(),
        }
    }

    /// The payload body after the generic header: ID Type, 3 reserved octets
    /// and the data. RFC 7296 §2.15 signs exactly these bytes
    /// ("RestOfInitIDPayload" plus the type octet: InitIDPayload).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.id_type().value());
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.data());
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id_type = IdType::from_value(reader.u8()?);
        let _reserved = reader.array::<3>()?;
        let data = reader.rest();
        if id_type == IdType::Null {
            if !data.is_empty() {
                return Err(reader.invalid("ID_NULL with data (RFC 7619 §3)"));
            }
            return Ok(Identity::Null);
        }
        if data.is_empty() {
            return Err(reader.invalid("empty identification data"));
        }
        if data.len() > MAX_ID_LEN {
            return Err(reader.invalid_value("identification data too long", data.len() as u64));
        }
        Ok(match id_type {
            IdType::Ipv4Addr => Identity::Ipv4(Ipv4Addr::from(
                <[u8; 4]>::try_from(data)
                    .map_err(|_| reader.invalid("ID_IPV4_ADDR not 4 octets"))?,
            )),
            IdType::Ipv6Addr => Identity::Ipv6(Ipv6Addr::from(
                <[u8; 16]>::try_from(data)
                    .map_err(|_| reader.invalid("ID_IPV6_ADDR not 16 octets"))?,
            )),
            IdType::Fqdn => {
                if data.len() > MAX_FQDN_LEN {
                    return Err(reader.invalid_value("ID_FQDN too long", data.len() as u64));
                }
                Identity::Fqdn(
                    printable_ascii(data).ok_or(reader.invalid(
                        "ID_FQDN is not printable ASCII (RFC 7296 §3.5: no terminators)",
                    ))?,
                )
            }
            IdType::Rfc822Addr => Identity::Rfc822(
                printable_ascii(data)
                    .ok_or(reader.invalid("ID_RFC822_ADDR is not printable ASCII"))?,
            ),
            IdType::DerAsn1Dn => Identity::DerAsn1Dn(data.to_vec()),
            IdType::DerAsn1Gn => Identity::DerAsn1Gn(data.to_vec()),
            IdType::KeyId => Identity::KeyId(data.to_vec()),
            IdType::FcName => Identity::FcName(data.to_vec()),
            IdType::Null | IdType::Unknown(_) => Identity::Unknown {
                id_type: id_type.value(),
                data: data.to_vec(),
            },
        })
    }
}

/// Host names and mail addresses travel as ASCII (IDNs in A-label form);
/// control characters (NUL, CR, LF) would be terminators RFC 7296 §3.5 forbids.
fn printable_ascii(data: &[u8]) -> Option<String> {
    if data.iter().all(|byte| (0x21..=0x7e).contains(byte)) {
        String::from_utf8(data.to_vec()).ok()
    } else {
        None
    }
}

/// Certificate payload (RFC 7296 §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub encoding: CertEncoding,
    pub data: Vec<u8>,
}

impl Certificate {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let encoding = CertEncoding::from_value(reader.u8()?);
        let data = reader.rest();
        if data.is_empty() {
            return Err(reader.invalid("empty certificate data"));
        }
        Ok(Certificate {
            encoding,
            data: data.to_vec(),
        })
    }
}

/// Length of one certification authority entry (SHA-1 of a SubjectPublicKeyInfo).
pub const CA_HASH_LEN: usize = 20;

/// Certificate Request payload (RFC 7296 §3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    pub encoding: CertEncoding,
    /// For X.509 encodings, concatenated 20-octet SHA-1 hashes of trusted CA
    /// public keys; may be empty.
    pub authorities: Vec<u8>,
}

impl CertificateRequest {
    /// The CA hashes, for X.509 encodings.
    pub fn authority_hashes(&self) -> impl Iterator<Item = &[u8]> {
        self.authorities.chunks_exact(CA_HASH_LEN)
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let encoding = CertEncoding::from_value(reader.u8()?);
        let authorities = reader.rest();
        if encoding == CertEncoding::X509Signature && !authorities.len().is_multiple_of(CA_HASH_LEN)
        {
            return Err(reader.invalid_value(
                "certification authority field not a multiple of 20 octets",
                authorities.len() as u64,
            ));
        }
        Ok(CertificateRequest {
            encoding,
            authorities: authorities.to_vec(),
        })
    }
}

/// Authentication payload (RFC 7296 §3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    pub method: AuthMethod,
    pub data: Vec<u8>,
}

impl Authentication {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let method = AuthMethod::from_value(reader.u8()?);
        let _reserved = reader.array::<3>()?;
        let data = reader.rest();
        if data.is_empty() {
            return Err(reader.invalid("empty authentication data"));
        }
        Ok(Authentication {
            method,
            data: data.to_vec(),
        })
    }
}

/// Nonce payload (RFC 7296 §3.9): 16 to 256 octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce(pub Vec<u8>);

impl Nonce {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let data = reader.rest();
        if !(NONCE_MIN_LEN..=NONCE_MAX_LEN).contains(&data.len()) {
            return Err(reader.invalid_value("nonce length outside 16..=256", data.len() as u64));
        }
        Ok(Nonce(data.to_vec()))
    }
}

/// Delete payload (RFC 7296 §3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub protocol: ProtocolId,
    /// SPIs of the deleted Child SAs (inbound SPIs of the sender); empty for
    /// the IKE SA, which is named by the header.
    pub spis: Vec<u32>,
}

impl Delete {
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.protocol.value());
        if self.protocol == ProtocolId::Ike {
            if !self.spis.is_empty() {
                return Err(EncodeError::Unrepresentable("IKE delete with SPIs"));
            }
            out.extend_from_slice(&[0, 0, 0]);
            return Ok(());
        }
        out.push(4);
        let count = u16::try_from(self.spis.len()).map_err(|_| EncodeError::TooMany {
            what: "SPIs in a Delete payload",
            count: self.spis.len(),
        })?;
        out.extend_from_slice(&count.to_be_bytes());
        for spi in &self.spis {
            out.extend_from_slice(&spi.to_be_bytes());
        }
        Ok(())
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId::from_value(reader.u8()?);
        let spi_size = reader.u8()?;
        let count = reader.u16()?;
        if protocol == ProtocolId::Ike {
            // RFC 7296 §3.11: SPI size zero, no SPIs, for the IKE SA.
            if spi_size != 0 || count != 0 || !reader.is_empty() {
                return Err(reader.invalid("IKE SA delete with SPIs"));
            }
            return Ok(Delete {
                protocol,
                spis: Vec::new(),
            });
        }
        if spi_size != 4 {
            return Err(reader.invalid_value("Child SA delete SPI size", spi_size));
        }
        if reader.remaining() != usize::from(count) * 4 {
            return Err(reader.invalid_value("number of SPIs disagrees with length", count));
        }
        let mut spis = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            spis.push(reader.u32()?);
        }
        Ok(Delete { protocol, spis })
    }
}

/// Vendor ID payload (RFC 7296 §3.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorId(pub Vec<u8>);

/// EAP payload (RFC 7296 §3.16): one EAP message (RFC 3748), opaque here
/// beyond its own length field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eap(pub Vec<u8>);

impl Eap {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let message = reader.rest();
        // RFC 3748 §4: Code, Identifier, Length (covering the whole message).
        let declared = match message {
            [_code, _identifier, high, low, ..] => usize::from(u16::from_be_bytes([*high, *low])),
            _ => return Err(reader.invalid("EAP message shorter than its 4-octet header")),
        };
        if declared != message.len() {
            return Err(reader.invalid_value("EAP length field disagrees", declared as u64));
        }
        Ok(Eap(message.to_vec()))
    }
}
