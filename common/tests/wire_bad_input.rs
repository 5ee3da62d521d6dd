//! Hostile and malformed input: every case must be refused with the right
//! typed error (and the notify RFC 7296 would answer with), never a panic.

use iked_common::wire::{
    decode_payloads, encode_payloads, DecodeError, EncodeError, Encrypted, ExchangeType, Flags,
    Header, Message, Nonce, NotifyType, Payload, PayloadType, MAX_MESSAGE_LEN, MAX_PAYLOADS,
};

const SA: u8 = 33;
const KE: u8 = 34;
const IDI: u8 = 35;
const NONCE: u8 = 40;
const NOTIFY: u8 = 41;
const DELETE: u8 = 42;
const VENDOR: u8 = 43;
const TSI: u8 = 44;
const SK: u8 = 46;
const SKF: u8 = 53;

/// IKE header: IKE_SA_INIT request from the initiator, given first payload and length.
fn header(first: u8, length: usize) -> Vec<u8> {
    let mut out = vec![0x11; 8];
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&[first, 0x20, 34, 0x08]);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(length as u32).to_be_bytes());
    out
}

/// One payload with a correct length field.
fn payload(next: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![next, 0];
    out.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A whole message around a payload chain, with a correct length.
fn message(first: u8, chain: &[u8]) -> Vec<u8> {
    let mut out = header(first, 28 + chain.len());
    out.extend_from_slice(chain);
    out
}

fn request_header() -> Header {
    Header {
        initiator_spi: 0x1111_1111_1111_1111,
        responder_spi: 0,
        exchange: ExchangeType::IkeSaInit,
        flags: Flags {
            initiator: true,
            ..Flags::default()
        },
        message_id: 0,
    }
}

fn nonce_body() -> Vec<u8> {
    vec![0xab; 32]
}

/// Asserts a decode failed and its message names the expected reason.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, DecodeError>, expected: &str) {
    let error = result.expect_err("input must be refused");
    assert!(
        error.to_string().contains(expected),
        "expected {expected:?}, got {error}"
    );
}

fn invalid_reason(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::InvalidPayload { reason, .. } | DecodeError::InvalidValue { reason, .. } => {
            reason
        }
        other => panic!("expected an invalid-payload error, got {other:?}"),
    }
}

#[test]
fn valid_minimal_message_decodes() {
    // Baseline for the cases below: the same construction, unbroken, is accepted.
    let bytes = message(NONCE, &payload(0, &nonce_body()));
    let decoded = Message::decode(&bytes).unwrap();
    assert_eq!(decoded.payloads, vec![Payload::Nonce(Nonce(nonce_body()))]);
    assert_eq!(decoded.encode().unwrap(), bytes);
}

#[test]
fn truncated_header_is_refused() {
    let full = message(0, &[]);
    for len in 0..28 {
        let error = Message::decode(&full[..len]).unwrap_err();
        assert!(
            matches!(error, DecodeError::Truncated { needed: 28, available } if available == len),
            "{len}: {error:?}"
        );
        assert_eq!(error.notify(), None);
    }
    assert!(Message::decode(&full).is_ok());
}

#[test]
fn length_field_must_equal_datagram_length() {
    let chain = payload(0, &nonce_body());
    for claimed in [
        0usize,
        27,
        28,
        28 + chain.len() - 1,
        28 + chain.len() + 1,
        0xffff_ffff,
    ] {
        let mut bytes = header(NONCE, claimed);
        bytes.extend_from_slice(&chain);
        assert_eq!(
            Message::decode(&bytes).unwrap_err(),
            DecodeError::LengthMismatch {
                header: claimed as u32,
                datagram: bytes.len()
            }
        );
    }
}

#[test]
fn oversized_datagram_is_refused_before_parsing() {
    let mut bytes = message(0, &[]);
    bytes.resize(MAX_MESSAGE_LEN + 1, 0);
    assert_eq!(
        Message::decode(&bytes).unwrap_err(),
        DecodeError::MessageTooLong(MAX_MESSAGE_LEN + 1)
    );
}

#[test]
fn other_major_versions_get_invalid_major_version() {
    for version in [0x10u8, 0x30, 0xf0] {
        let mut bytes = message(0, &[]);
        bytes[17] = version;
        let error = Message::decode(&bytes).unwrap_err();
        assert_eq!(error, DecodeError::InvalidMajorVersion(version >> 4));
        assert_eq!(error.notify(), Some(NotifyType::InvalidMajorVersion));
        // The answer needs SPIs and message ID, readable despite the error.
        let (spi_i, spi_r, exchange, mid) = iked_common::wire::peek_header_fields(&bytes).unwrap();
        assert_eq!(
            (spi_i, spi_r, exchange, mid),
            (0x1111_1111_1111_1111, 0, ExchangeType::IkeSaInit, 0)
        );
    }
    // RFC 7296 §3.1: the minor version is ignored.
    let mut bytes = message(0, &[]);
    bytes[17] = 0x27;
    assert!(Message::decode(&bytes).is_ok());
}

#[test]
fn payload_length_past_the_end_is_an_overrun() {
    let mut chain = payload(0, &nonce_body());
    chain[3] += 1; // claims one byte more than there is
    let error = Message::decode(&message(NONCE, &chain)).unwrap_err();
    assert!(matches!(
        error,
        DecodeError::InvalidPayloadLength {
            payload: PayloadType::Nonce,
            length: 37,
            available: 36
        }
    ));
    assert_eq!(error.notify(), Some(NotifyType::InvalidSyntax));
}

#[test]
fn payload_lengths_below_the_generic_header_cannot_loop() {
    // A parser that advanced by the length field would spin forever on 0.
    for length in 0u16..4 {
        let mut chain = vec![NONCE, 0];
        chain.extend_from_slice(&length.to_be_bytes());
        chain.extend_from_slice(&nonce_body());
        let error = Message::decode(&message(NONCE, &chain)).unwrap_err();
        assert!(
            matches!(error, DecodeError::InvalidPayloadLength { length: l, .. } if l == length),
            "{error:?}"
        );
    }
}

#[test]
fn next_payload_without_bytes_and_trailing_bytes_are_refused() {
    // Nonce says "a Vendor ID follows" but the message ends.
    let chain = payload(VENDOR, &nonce_body());
    let error = Message::decode(&message(NONCE, &chain)).unwrap_err();
    assert_eq!(
        error,
        DecodeError::PayloadTruncated {
            payload: PayloadType::VendorId,
            needed: 4,
            available: 0
        }
    );
    assert_eq!(error.notify(), Some(NotifyType::InvalidSyntax));
    // Nonce says it is the last payload but bytes follow.
    let mut chain = payload(0, &nonce_body());
    chain.extend_from_slice(&[0, 0, 0, 4]);
    assert_eq!(
        Message::decode(&message(NONCE, &chain)).unwrap_err(),
        DecodeError::TrailingBytes(4)
    );
}

#[test]
fn cyclic_chains_are_bounded_by_the_payload_cap() {
    // Vendor IDs each naming another Vendor ID: a "loop" of payload types.
    let build = |count: usize| {
        let mut chain = Vec::new();
        for index in 0..count {
            let next = if index + 1 == count { 0 } else { VENDOR };
            chain.extend_from_slice(&payload(next, &[index as u8]));
        }
        message(VENDOR, &chain)
    };
    let at_cap = Message::decode(&build(MAX_PAYLOADS)).unwrap();
    assert_eq!(at_cap.payloads.len(), MAX_PAYLOADS);
    assert_eq!(
        Message::decode(&build(MAX_PAYLOADS + 1)).unwrap_err(),
        DecodeError::TooManyPayloads
    );
}

#[test]
fn a_thousand_payloads_are_refused() {
    let mut chain = Vec::new();
    for index in 0..1000 {
        let next = if index == 999 { 0 } else { VENDOR };
        chain.extend_from_slice(&payload(next, &[]));
    }
    let bytes = message(VENDOR, &chain);
    assert_eq!(bytes.len(), 28 + 4000);
    let error = Message::decode(&bytes).unwrap_err();
    assert_eq!(error, DecodeError::TooManyPayloads);
    assert_eq!(error.notify(), Some(NotifyType::InvalidSyntax));
    // The same cap holds for decrypted contents.
    assert_eq!(
        decode_payloads(PayloadType::VendorId, &chain, &request_header()).unwrap_err(),
        DecodeError::TooManyPayloads
    );
}

#[test]
fn key_exchange_data_must_fit_its_group() {
    let ke = |group: u16, len: usize| {
        let mut body = group.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend(std::iter::repeat_n(0x42, len));
        Message::decode(&message(KE, &payload(0, &body)))
    };
    assert!(ke(14, 256).is_ok());
    assert!(ke(31, 32).is_ok());
    assert!(ke(36, 1184).is_ok() && ke(36, 1088).is_ok());
    assert!(ke(500, 1).is_ok() && ke(500, 4096).is_ok());
    for (group, len) in [
        (14, 0),
        (14, 255),
        (14, 257),
        (31, 0),
        (31, 33),
        (36, 1000),
        (500, 0),
        (500, 4097),
        (0, 32),
    ] {
        let error = ke(group, len).unwrap_err();
        assert_eq!(
            error.notify(),
            Some(NotifyType::InvalidSyntax),
            "{group}/{len}"
        );
        invalid_reason(&error);
    }
    // Shorter than the fixed KE fields.
    assert!(matches!(
        Message::decode(&message(KE, &payload(0, &[0, 14, 0]))).unwrap_err(),
        DecodeError::PayloadTruncated {
            payload: PayloadType::KeyExchange,
            needed: 2,
            available: 1
        }
    ));
}

#[test]
fn nonce_length_must_be_16_to_256() {
    let nonce = |len: usize| Message::decode(&message(NONCE, &payload(0, &vec![7; len])));
    assert!(nonce(16).is_ok() && nonce(256).is_ok());
    for len in [0, 1, 15, 257, 1000] {
        assert_eq!(
            invalid_reason(&nonce(len).unwrap_err()),
            "nonce length outside 16..=256"
        );
    }
}

#[test]
fn identification_data_is_checked() {
    let id = |id_type: u8, data: &[u8]| {
        let mut body = vec![id_type, 0, 0, 0];
        body.extend_from_slice(data);
        Message::decode(&message(IDI, &payload(0, &body)))
    };
    assert!(id(2, b"a.ike.test").is_ok());
    assert!(id(1, &[198, 18, 0, 1]).is_ok());
    assert!(id(5, &[0xfd; 16]).is_ok());
    assert!(id(11, &[0; 2048]).is_ok());
    assert!(id(13, &[]).is_ok());
    let refused: [(u8, Vec<u8>); 10] = [
        (2, vec![]),                   // zero-length FQDN
        (11, vec![]),                  // zero-length KEY_ID
        (11, vec![0; 2049]),           // oversized
        (9, vec![0x30; 4000]),         // oversized DN
        (2, vec![b'a'; 256]),          // FQDN longer than DNS allows
        (2, b"a.ike.test\0".to_vec()), // terminator inside
        (3, b"user@\r\nexample".to_vec()),
        (1, vec![198, 18, 0]), // IPv4 of 3 octets
        (5, vec![0; 4]),       // IPv6 of 4 octets
        (13, vec![1]),         // ID_NULL with data
    ];
    for (id_type, data) in refused {
        let error = id(id_type, &data).unwrap_err();
        assert_eq!(error.notify(), Some(NotifyType::InvalidSyntax), "{id_type}");
    }
}

/// An SA payload body with proposals given as (number, last flag) and one
/// ENCR transform each.
fn sa_body(proposals: &[(u8, u8)]) -> Vec<u8> {
    let mut body = Vec::new();
    for &(number, last) in proposals {
        let transform = [0u8, 0, 0, 8, 1, 0, 0, 12];
        let mut proposal = vec![last, 0, 0, 0, number, 1, 0, 1];
        proposal.extend_from_slice(&transform);
        let len = proposal.len() as u16;
        proposal[2..4].copy_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&proposal);
    }
    body
}

fn decode_sa(body: &[u8], response: bool) -> Result<Message, DecodeError> {
    let mut bytes = message(SA, &payload(0, body));
    if response {
        bytes[19] = 0x20;
    }
    Message::decode(&bytes)
}

#[test]
fn proposal_numbering_must_start_at_one_and_increase_by_one() {
    assert!(decode_sa(&sa_body(&[(1, 2), (2, 2), (3, 0)]), false).is_ok());
    for proposals in [
        &[(2u8, 0u8)][..],
        &[(0, 0)],
        &[(1, 2), (3, 0)],
        &[(1, 2), (1, 0)],
    ] {
        let error = decode_sa(&sa_body(proposals), false).unwrap_err();
        assert_eq!(invalid_reason(&error), "proposal number out of sequence");
    }
    // A response names the accepted proposal by its number in the request.
    let accepted = decode_sa(&sa_body(&[(3, 0)]), true).unwrap();
    let Payload::SecurityAssociation(sa) = &accepted.payloads[0] else {
        panic!()
    };
    assert_eq!(sa.proposals[0].number, 3);
    assert_refused(
        decode_sa(&sa_body(&[(0, 0)]), true),
        "proposal number out of sequence (0)",
    );
}

#[test]
fn substructure_flags_and_counts_must_agree_with_lengths() {
    // "More proposals follow" on the last one, and "last" before another.
    assert_refused(
        decode_sa(&sa_body(&[(1, 2)]), false),
        "proposal Last Substruc disagrees",
    );
    assert_refused(
        decode_sa(&sa_body(&[(1, 0), (2, 0)]), false),
        "proposal Last Substruc disagrees",
    );
    assert_refused(
        decode_sa(&sa_body(&[(1, 1)]), false),
        "proposal Last Substruc (1)",
    );
    // Transform count says 2, one present.
    let mut body = sa_body(&[(1, 0)]);
    body[7] = 2;
    assert_refused(
        decode_sa(&body, false),
        "number of transforms disagrees (2)",
    );
    // Empty SA payload.
    assert_refused(
        decode_sa(&[], false),
        "truncated Security Association payload",
    );
    // Proposal length past the payload.
    let mut body = sa_body(&[(1, 0)]);
    body[3] += 4;
    assert_refused(decode_sa(&body, false), "proposal length (20)");
    // ESP proposal with an 8-octet SPI.
    let mut body = sa_body(&[(1, 0)]);
    body[5] = 3;
    body[6] = 8;
    assert_refused(
        decode_sa(&body, false),
        "proposal SPI size for its protocol (8)",
    );
}

/// A one-proposal SA whose only transform carries the given attribute bytes.
fn sa_with_attribute(attribute: &[u8]) -> Vec<u8> {
    let mut transform = vec![0u8, 0, 0, 0, 1, 0, 0, 12];
    transform.extend_from_slice(attribute);
    let tlen = transform.len() as u16;
    transform[2..4].copy_from_slice(&tlen.to_be_bytes());
    let mut proposal = vec![0u8, 0, 0, 0, 1, 1, 0, 1];
    proposal.extend_from_slice(&transform);
    let plen = proposal.len() as u16;
    proposal[2..4].copy_from_slice(&plen.to_be_bytes());
    proposal
}

#[test]
fn transform_attributes_are_bounded_by_their_transform() {
    // Key Length 256 (TV) is fine.
    let ok = decode_sa(&sa_with_attribute(&[0x80, 14, 1, 0]), false).unwrap();
    let Payload::SecurityAssociation(sa) = &ok.payloads[0] else {
        panic!()
    };
    assert_eq!(sa.proposals[0].transforms[0].key_length(), Some(256));
    // TLV attribute claiming 10 octets with 2 present.
    let error = decode_sa(&sa_with_attribute(&[0x00, 20, 0, 10, 1, 2]), false).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::PayloadTruncated {
                needed: 10,
                available: 2,
                ..
            }
        ),
        "{error:?}"
    );
    // Half an attribute header.
    assert_refused(
        decode_sa(&sa_with_attribute(&[0x80]), false),
        "truncated Security Association payload: need 2 bytes, have 1",
    );
    // Key Length in TLV form, and twice.
    assert_refused(
        decode_sa(&sa_with_attribute(&[0x00, 14, 0, 2, 1, 0]), false),
        "Key Length attribute in TLV format",
    );
    assert_refused(
        decode_sa(
            &sa_with_attribute(&[0x80, 14, 1, 0, 0x80, 14, 0, 128]),
            false,
        ),
        "two Key Length attributes",
    );
}

fn ts_v4(start: [u8; 4], end: [u8; 4], ports: (u16, u16)) -> Result<Message, DecodeError> {
    let mut selector = vec![7, 0, 0, 16];
    selector.extend_from_slice(&ports.0.to_be_bytes());
    selector.extend_from_slice(&ports.1.to_be_bytes());
    selector.extend_from_slice(&start);
    selector.extend_from_slice(&end);
    let mut body = vec![1, 0, 0, 0];
    body.extend_from_slice(&selector);
    Message::decode(&message(TSI, &payload(0, &body)))
}

#[test]
fn traffic_selector_ranges_must_be_ordered() {
    assert!(ts_v4([10, 1, 0, 0], [10, 1, 0, 255], (0, 65535)).is_ok());
    assert!(ts_v4([10, 1, 0, 7], [10, 1, 0, 7], (500, 500)).is_ok());
    assert!(
        ts_v4([10, 1, 0, 0], [10, 1, 0, 255], (65535, 0)).is_ok(),
        "OPAQUE ports"
    );
    assert_eq!(
        invalid_reason(&ts_v4([10, 1, 1, 0], [10, 1, 0, 255], (0, 65535)).unwrap_err()),
        "traffic selector start address above end address"
    );
    assert_eq!(
        invalid_reason(&ts_v4([10, 1, 0, 0], [10, 1, 0, 255], (600, 500)).unwrap_err()),
        "traffic selector start port above end port"
    );
    // IPv6 start > end.
    let mut selector = vec![8, 0, 0, 40, 0, 0, 255, 255];
    selector.extend_from_slice(&[0xfd; 16]);
    selector.extend_from_slice(&[0xfc; 16]);
    let mut body = vec![1, 0, 0, 0];
    body.extend_from_slice(&selector);
    assert_refused(
        Message::decode(&message(TSI, &payload(0, &body))),
        "start address above end address",
    );
    // Number of TSs larger than present, and zero.
    let mut body = vec![
        2, 0, 0, 0, 7, 0, 0, 16, 0, 0, 255, 255, 10, 0, 0, 0, 10, 0, 0, 1,
    ];
    assert_refused(
        Message::decode(&message(TSI, &payload(0, &body))),
        "truncated Traffic Selector - Initiator payload: need 1 bytes, have 0",
    );
    body[0] = 0;
    assert_refused(
        Message::decode(&message(TSI, &payload(0, &body))),
        "no traffic selectors",
    );
    // IPv4 selector with an IPv6-sized length.
    body[0] = 1;
    body[7] = 40;
    assert_refused(
        Message::decode(&message(TSI, &payload(0, &body))),
        "traffic selector length (40)",
    );
}

#[test]
fn unknown_payloads_critical_refused_non_critical_skipped() {
    let unknown_type = 200u8;
    // Non-critical: kept as Unknown, the rest of the chain still parsed.
    let mut chain = vec![NONCE, 0, 0, 7, 1, 2, 3];
    chain.extend_from_slice(&payload(0, &nonce_body()));
    let bytes = message(unknown_type, &chain);
    let decoded = Message::decode(&bytes).unwrap();
    assert_eq!(decoded.payloads.len(), 2);
    assert!(matches!(
        &decoded.payloads[0],
        Payload::Unknown(unknown) if unknown.payload_type == 200 && unknown.data == [1, 2, 3]
    ));
    assert_eq!(
        decoded.to_string(),
        "IKE_SA_INIT request 0 [ UNKNOWN(200) No ]"
    );
    assert_eq!(decoded.encode().unwrap(), bytes);
    // Critical: the whole message is refused, answer names the type.
    chain[1] = 0x80;
    let error = Message::decode(&message(unknown_type, &chain)).unwrap_err();
    assert_eq!(error, DecodeError::UnsupportedCriticalPayload(200));
    assert_eq!(error.notify(), Some(NotifyType::UnsupportedCriticalPayload));
    assert_eq!(error.notify_data(), vec![200]);
    // A known payload with the critical bit is simply understood.
    let mut known = payload(0, &nonce_body());
    known[1] = 0x80;
    assert!(Message::decode(&message(NONCE, &known)).is_ok());
}

#[test]
fn encrypted_payload_must_be_last_and_not_nested() {
    let mut chain = payload(IDI, &[1, 2, 3, 4]); // SK (next = IDi inside)
    chain.extend_from_slice(&payload(0, &nonce_body()));
    assert_eq!(
        Message::decode(&message(SK, &chain)).unwrap_err(),
        DecodeError::EncryptedNotLast(PayloadType::Encrypted)
    );
    let sk_only = payload(IDI, &[1, 2, 3, 4]);
    let decoded = Message::decode(&message(SK, &sk_only)).unwrap();
    assert_eq!(
        decoded.payloads,
        vec![Payload::Encrypted(Encrypted {
            first_inner: PayloadType::IdInitiator,
            data: vec![1, 2, 3, 4]
        })]
    );
    assert_refused(
        Message::decode(&message(SK, &payload(0, &[]))),
        "empty encrypted payload",
    );
    // Decrypted contents may not hold another SK.
    assert_refused(
        decode_payloads(PayloadType::Encrypted, &sk_only, &request_header()),
        "encrypted payload inside encrypted contents",
    );
}

#[test]
fn fragment_numbers_are_checked() {
    let skf = |next: u8, number: u16, total: u16| {
        let mut body = number.to_be_bytes().to_vec();
        body.extend_from_slice(&total.to_be_bytes());
        body.extend_from_slice(&[9; 20]);
        Message::decode(&message(SKF, &payload(next, &body)))
    };
    assert!(skf(IDI, 1, 3).is_ok());
    assert!(skf(0, 3, 3).is_ok());
    assert_eq!(
        skf(IDI, 1, 3).unwrap().to_string(),
        "IKE_SA_INIT request 0 [ SKF(1/3) ]"
    );
    for (next, number, total, reason) in [
        (IDI, 0, 3, "fragment number (0)"),
        (0, 4, 3, "fragment number (4)"),
        (
            IDI,
            2,
            3,
            "Next Payload set in a fragment other than the first",
        ),
        (0, 1, 0, "fragment number (1)"),
    ] {
        assert_refused(skf(next, number, total), reason);
    }
}

#[test]
fn delete_and_notify_formats_are_checked() {
    let decode = |first: u8, body: &[u8]| Message::decode(&message(first, &payload(0, body)));
    assert!(decode(DELETE, &[1, 0, 0, 0]).is_ok());
    assert!(decode(DELETE, &[3, 4, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]).is_ok());
    assert_refused(
        decode(DELETE, &[1, 8, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]),
        "IKE SA delete with SPIs",
    );
    assert_refused(
        decode(DELETE, &[3, 4, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8]),
        "number of SPIs disagrees with length (3)",
    );
    assert_refused(
        decode(DELETE, &[3, 4, 0xff, 0xff]),
        "number of SPIs disagrees with length (65535)",
    );
    assert_refused(
        decode(DELETE, &[3, 8, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]),
        "Child SA delete SPI size (8)",
    );
    let notify = |ty: u16, spi_size: u8, rest: &[u8]| {
        let mut body = vec![0, spi_size];
        body.extend_from_slice(&ty.to_be_bytes());
        body.extend_from_slice(rest);
        decode(NOTIFY, &body)
    };
    assert!(notify(16388, 0, &[0; 20]).is_ok());
    assert_refused(
        notify(16388, 0, &[0; 19]),
        "notification data length for its type (19)",
    );
    assert_refused(
        notify(16390, 0, &[0; 65]),
        "notification data length for its type (65)",
    );
    assert_refused(
        notify(16390, 0, &[]),
        "notification data length for its type (0)",
    );
    assert!(notify(17, 0, &[0, 14]).is_ok());
    assert_refused(
        notify(17, 0, &[14]),
        "notification data length for its type (1)",
    );
    assert_refused(
        notify(16393, 4, &[1, 2]),
        "truncated Notify payload: need 4 bytes, have 2",
    );
    assert_refused(notify(16393, 3, &[1, 2, 3]), "notify SPI size (3)");
    assert!(
        notify(60000, 0, &[1, 2, 3]).is_ok(),
        "unknown status types stay opaque"
    );
}

#[test]
fn encoder_refuses_what_the_wire_cannot_carry() {
    let too_long = Payload::VendorId(iked_common::wire::VendorId(vec![0; 70000]));
    assert!(matches!(
        encode_payloads(&[too_long]).unwrap_err(),
        EncodeError::TooLong {
            what: "payload",
            ..
        }
    ));
    let sk = Payload::Encrypted(Encrypted {
        first_inner: PayloadType::NoNextPayload,
        data: vec![0; 16],
    });
    let nonce = Payload::Nonce(Nonce(nonce_body()));
    assert_eq!(
        encode_payloads(&[sk.clone(), nonce.clone()]).unwrap_err(),
        EncodeError::EncryptedNotLast(PayloadType::Encrypted)
    );
    assert!(encode_payloads(&[nonce, sk]).is_ok());
    let big = Message {
        header: request_header(),
        payloads: (0..2)
            .map(|_| Payload::VendorId(iked_common::wire::VendorId(vec![0; 40000])))
            .collect(),
    };
    assert!(matches!(
        big.encode().unwrap_err(),
        EncodeError::TooLong {
            what: "message",
            ..
        }
    ));
}
