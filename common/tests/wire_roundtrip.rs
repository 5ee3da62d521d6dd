//! Property tests: generated messages with every payload type encode,
//! decode back to the same value, and re-encode to the same bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use iked_common::wire::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn bytes(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), range)
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
        any::<(bool, bool, bool)>(),
        any::<u32>(),
    )
        .prop_map(
            |(spi_i, spi_r, exchange, (initiator, version, response), mid)| Header {
                initiator_spi: spi_i,
                responder_spi: spi_r,
                exchange: ExchangeType::from_value(exchange),
                flags: Flags {
                    initiator,
                    version,
                    response,
                },
                message_id: mid,
            },
        )
}

fn attribute() -> impl Strategy<Value = TransformAttribute> {
    prop_oneof![(0u16..0x8000)
        .prop_filter("not Key Length", |t| *t != ATTRIBUTE_KEY_LENGTH)
        .prop_flat_map(|attribute_type| prop_oneof![
            any::<u16>().prop_map(AttributeValue::Short),
            bytes(0..=20).prop_map(AttributeValue::Long),
        ]
        .prop_map(move |value| TransformAttribute::Other {
            attribute_type,
            value
        })),]
}

fn transform() -> impl Strategy<Value = Transform> {
    (
        any::<u8>(),
        any::<u16>(),
        proptest::option::of(any::<u16>()),
        vec(attribute(), 0..=2),
    )
        .prop_map(|(transform_type, id, key_length, others)| {
            let mut attributes: Vec<_> = key_length
                .map(TransformAttribute::KeyLength)
                .into_iter()
                .collect();
            attributes.extend(others);
            Transform {
                id: TransformId::from_values(transform_type, id),
                attributes,
            }
        })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (
        any::<u8>(),
        any::<bool>(),
        bytes(0..=16),
        vec(transform(), 1..=6),
    )
        .prop_map(|(protocol, rekey, spi_bytes, transforms)| {
            let protocol = ProtocolId::from_value(protocol);
            let spi = match protocol {
                ProtocolId::Ike if rekey => spi_bytes.into_iter().chain([9; 8]).take(8).collect(),
                ProtocolId::Ike => Vec::new(),
                ProtocolId::Ah | ProtocolId::Esp => vec![1, 2, 3, 4],
                _ => spi_bytes,
            };
            Proposal {
                number: 0,
                protocol,
                spi,
                transforms,
            }
        })
}

fn security_association() -> impl Strategy<Value = SecurityAssociation> {
    vec(proposal(), 1..=4).prop_map(|mut proposals| {
        for (index, proposal) in proposals.iter_mut().enumerate() {
            proposal.number = index as u8 + 1;
        }
        SecurityAssociation { proposals }
    })
}

fn key_exchange() -> impl Strategy<Value = KeyExchange> {
    let known = proptest::sample::select(
        DhId::ALL
            .iter()
            .copied()
            .filter(|group| *group != DhId::None)
            .collect::<Vec<_>>(),
    )
    .prop_flat_map(|group| {
        let lengths = key_exchange_lengths(group).unwrap().to_vec();
        proptest::sample::select(lengths)
            .prop_flat_map(|len| bytes(len..=len))
            .prop_map(move |data| KeyExchange { group, data })
    });
    let unknown = (38u16..=u16::MAX, bytes(1..=64)).prop_map(|(group, data)| KeyExchange {
        group: DhId::from_value(group),
        data,
    });
    prop_oneof![known, unknown]
}

fn identity() -> impl Strategy<Value = Identity> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| Identity::Ipv4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| Identity::Ipv6(Ipv6Addr::from(a))),
        "[!-~]{1,80}".prop_map(Identity::Fqdn),
        "[!-~]{1,80}".prop_map(Identity::Rfc822),
        bytes(1..=100).prop_map(Identity::DerAsn1Dn),
        bytes(1..=100).prop_map(Identity::DerAsn1Gn),
        bytes(1..=40).prop_map(Identity::KeyId),
        bytes(1..=40).prop_map(Identity::FcName),
        Just(Identity::Null),
        (
            proptest::sample::select(vec![0u8, 4, 6, 7, 8, 14, 100, 255]),
            bytes(1..=40)
        )
            .prop_map(|(id_type, data)| Identity::Unknown { id_type, data }),
    ]
}

fn certificate() -> impl Strategy<Value = Certificate> {
    (any::<u8>(), bytes(1..=200)).prop_map(|(encoding, data)| Certificate {
        encoding: CertEncoding::from_value(encoding),
        data,
    })
}

fn certificate_request() -> impl Strategy<Value = CertificateRequest> {
    (any::<u8>(), bytes(0..=100)).prop_map(|(encoding, mut authorities)| {
        let encoding = CertEncoding::from_value(encoding);
        if encoding == CertEncoding::X509Signature {
            authorities.truncate(authorities.len() / CA_HASH_LEN * CA_HASH_LEN);
        }
        CertificateRequest {
            encoding,
            authorities,
        }
    })
}

fn authentication() -> impl Strategy<Value = Authentication> {
    (any::<u8>(), bytes(1..=300)).prop_map(|(method, data)| Authentication {
        method: AuthMethod::from_value(method),
        data,
    })
}

fn notify() -> impl Strategy<Value = Notify> {
    (
        any::<u8>(),
        proptest::sample::select(vec![0usize, 4, 8]),
        prop_oneof![
            proptest::sample::select(NotifyType::ALL.to_vec()),
            any::<u16>().prop_map(NotifyType::from_value)
        ],
        bytes(0..=80),
    )
        .prop_map(|(protocol, spi_len, notify_type, mut data)| {
            // Respect the fixed formats the decoder enforces.
            match notify_type {
                NotifyType::Cookie => {
                    data.truncate(COOKIE_MAX_LEN);
                    if data.is_empty() {
                        data.push(1);
                    }
                }
                NotifyType::NatDetectionSourceIp | NotifyType::NatDetectionDestinationIp => {
                    data.resize(NAT_DETECTION_HASH_LEN, 0xaa)
                }
                NotifyType::InvalidKePayload => data.resize(2, 0),
                NotifyType::SignatureHashAlgorithms => data.truncate(data.len() & !1),
                _ => {}
            }
            Notify {
                protocol: ProtocolId::from_value(protocol),
                spi: vec![0x5a; spi_len],
                notify_type,
                data,
            }
        })
}

fn delete() -> impl Strategy<Value = Delete> {
    (any::<u8>(), vec(any::<u32>(), 0..=10)).prop_map(|(protocol, spis)| {
        let protocol = ProtocolId::from_value(protocol);
        Delete {
            protocol,
            spis: if protocol == ProtocolId::Ike {
                Vec::new()
            } else {
                spis
            },
        }
    })
}

fn ports() -> impl Strategy<Value = (u16, u16)> {
    prop_oneof![
        Just(OPAQUE_PORTS),
        any::<(u16, u16)>().prop_map(|(a, b)| (a.min(b), a.max(b))),
    ]
}

fn traffic_selector() -> impl Strategy<Value = TrafficSelector> {
    prop_oneof![
        (any::<u8>(), ports(), any::<(u32, u32)>()).prop_map(|(ip_protocol, (sp, ep), (a, b))| {
            TrafficSelector::Ipv4 {
                ip_protocol,
                start_port: sp,
                end_port: ep,
                start: Ipv4Addr::from(a.min(b)),
                end: Ipv4Addr::from(a.max(b)),
            }
        }),
        (any::<u8>(), ports(), any::<(u128, u128)>()).prop_map(
            |(ip_protocol, (sp, ep), (a, b))| TrafficSelector::Ipv6 {
                ip_protocol,
                start_port: sp,
                end_port: ep,
                start: Ipv6Addr::from(a.min(b)),
                end: Ipv6Addr::from(a.max(b)),
            }
        ),
        bytes(1..=30).prop_map(TrafficSelector::SecLabel),
        (
            proptest::sample::select(vec![0u8, 1, 6, 9, 11, 200]),
            bytes(0..=30)
        )
            .prop_map(|(ts_type, data)| TrafficSelector::Unknown { ts_type, data }),
    ]
}

fn traffic_selectors() -> impl Strategy<Value = TrafficSelectors> {
    vec(traffic_selector(), 1..=5).prop_map(|selectors| TrafficSelectors { selectors })
}

fn cp_attribute() -> impl Strategy<Value = CpAttribute> {
    (0u16..0x8000, bytes(0..=24), any::<bool>()).prop_map(|(attribute_type, mut value, empty)| {
        let attribute_type = CpAttributeType::from_value(attribute_type);
        let fixed = match attribute_type {
            CpAttributeType::InternalIp4Address
            | CpAttributeType::InternalIp4Netmask
            | CpAttributeType::InternalIp4Dns
            | CpAttributeType::InternalIp4Nbns
            | CpAttributeType::InternalIp4Dhcp => Some(4),
            CpAttributeType::InternalIp4Subnet => Some(8),
            CpAttributeType::InternalIp6Address | CpAttributeType::InternalIp6Subnet => Some(17),
            CpAttributeType::InternalIp6Dns | CpAttributeType::InternalIp6Dhcp => Some(16),
            CpAttributeType::SupportedAttributes => {
                value.truncate(value.len() & !1);
                None
            }
            _ => None,
        };
        if let Some(len) = fixed {
            value.resize(if empty { 0 } else { len }, 7);
        }
        CpAttribute::new(attribute_type, value)
    })
}

fn configuration() -> impl Strategy<Value = Configuration> {
    (any::<u8>(), vec(cp_attribute(), 0..=6)).prop_map(|(cfg_type, attributes)| Configuration {
        cfg_type: CfgType::from_value(cfg_type),
        attributes,
    })
}

fn eap() -> impl Strategy<Value = Eap> {
    (1u8..=6, any::<u8>(), bytes(0..=60)).prop_map(|(code, identifier, data)| {
        let mut message = vec![code, identifier];
        message.extend_from_slice(&((data.len() + 4) as u16).to_be_bytes());
        message.extend_from_slice(&data);
        Eap(message)
    })
}

fn unknown_payload() -> impl Strategy<Value = UnknownPayload> {
    (prop_oneof![1u8..=32, 49u8..=52, 54u8..=255], bytes(0..=40)).prop_map(
        |(payload_type, data)| UnknownPayload {
            payload_type,
            critical: false,
            data,
        },
    )
}

/// Any payload that may appear before the end of a chain (not SK/SKF).
fn clear_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        security_association().prop_map(Payload::SecurityAssociation),
        key_exchange().prop_map(Payload::KeyExchange),
        identity().prop_map(Payload::IdInitiator),
        identity().prop_map(Payload::IdResponder),
        certificate().prop_map(Payload::Certificate),
        certificate_request().prop_map(Payload::CertificateRequest),
        authentication().prop_map(Payload::Authentication),
        bytes(NONCE_MIN_LEN..=NONCE_MAX_LEN).prop_map(|n| Payload::Nonce(Nonce(n))),
        notify().prop_map(Payload::Notify),
        delete().prop_map(Payload::Delete),
        bytes(0..=40).prop_map(|v| Payload::VendorId(VendorId(v))),
        traffic_selectors().prop_map(Payload::TsInitiator),
        traffic_selectors().prop_map(Payload::TsResponder),
        configuration().prop_map(Payload::Configuration),
        eap().prop_map(Payload::Eap),
        unknown_payload().prop_map(Payload::Unknown),
    ]
}

fn any_payload_type() -> impl Strategy<Value = PayloadType> {
    any::<u8>().prop_map(PayloadType::from_value)
}

fn encrypted_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any_payload_type(), bytes(1..=100))
            .prop_map(|(first_inner, data)| Payload::Encrypted(Encrypted { first_inner, data })),
        (1u16..=20, 0u16..=20, any_payload_type(), bytes(1..=100)).prop_map(
            |(total, number, first, data)| {
                let fragment_number = number.clamp(1, total);
                Payload::EncryptedFragment(EncryptedFragment {
                    fragment_number,
                    total_fragments: total,
                    first_inner: if fragment_number == 1 {
                        first
                    } else {
                        PayloadType::NoNextPayload
                    },
                    data,
                })
            }
        ),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        header(),
        vec(clear_payload(), 0..=8),
        proptest::option::of(encrypted_payload()),
    )
        .prop_map(|(header, mut payloads, encrypted)| {
            payloads.extend(encrypted);
            Message { header, payloads }
        })
}

/// Encode, decode, compare; re-encode, compare bytes.
fn assert_round_trip(message: &Message) -> Result<(), TestCaseError> {
    let bytes = message
        .encode()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let decoded = Message::decode(&bytes)
        .map_err(|e| TestCaseError::fail(format!("{e} decoding {}", hex::encode(&bytes))))?;
    prop_assert_eq!(&decoded, message);
    prop_assert_eq!(decoded.encode().unwrap(), bytes);
    // Rendering names every payload.
    let rendered = decoded.to_string();
    prop_assert_eq!(rendered.matches(' ').count(), 4 + decoded.payloads.len());
    Ok(())
}

fn single(payload: Payload, header: Header) -> Message {
    Message {
        header,
        payloads: vec![payload],
    }
}

macro_rules! round_trip_each {
    ($($name:ident => $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]
            $(
                #[test]
                fn $name(payload in $strategy, header in header()) {
                    assert_round_trip(&single(payload, header))?;
                }
            )*
        }
    };
}

round_trip_each! {
    sa_round_trips => security_association().prop_map(Payload::SecurityAssociation);
    ke_round_trips => key_exchange().prop_map(Payload::KeyExchange);
    idi_round_trips => identity().prop_map(Payload::IdInitiator);
    idr_round_trips => identity().prop_map(Payload::IdResponder);
    cert_round_trips => certificate().prop_map(Payload::Certificate);
    certreq_round_trips => certificate_request().prop_map(Payload::CertificateRequest);
    auth_round_trips => authentication().prop_map(Payload::Authentication);
    nonce_round_trips => bytes(NONCE_MIN_LEN..=NONCE_MAX_LEN).prop_map(|n| Payload::Nonce(Nonce(n)));
    notify_round_trips => notify().prop_map(Payload::Notify);
    delete_round_trips => delete().prop_map(Payload::Delete);
    vendor_id_round_trips => bytes(0..=40).prop_map(|v| Payload::VendorId(VendorId(v)));
    tsi_round_trips => traffic_selectors().prop_map(Payload::TsInitiator);
    tsr_round_trips => traffic_selectors().prop_map(Payload::TsResponder);
    cp_round_trips => configuration().prop_map(Payload::Configuration);
    eap_round_trips => eap().prop_map(Payload::Eap);
    sk_and_skf_round_trip => encrypted_payload();
    unknown_round_trips => unknown_payload().prop_map(Payload::Unknown);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn mixed_messages_round_trip(message in message()) {
        assert_round_trip(&message)?;
    }

    /// What the engine does around SK: encode inner payloads, build the
    /// prefix, append "encrypted" bytes; the result decodes to an SK with
    /// the right inner type and the inner bytes decode back.
    #[test]
    fn sealed_layout_and_inner_chain_round_trip(
        header in header(),
        inner in vec(clear_payload(), 0..=8),
        clear in vec(clear_payload(), 0..=2),
        fragment in proptest::option::of((1u16..=4, 4u16..=8)),
    ) {
        let (first, plaintext) = encode_payloads(&inner).unwrap();
        let decoded_inner = decode_payloads(first, &plaintext, &header)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded_inner, &inner);
        // Stand-in for IV || ciphertext || ICV: the plaintext plus 17 octets.
        let mut sealed = plaintext.clone();
        sealed.extend_from_slice(&[0xee; 17]);
        let kind = match fragment {
            Some((number, total)) => EncryptedKind::Fragment { fragment_number: number, total_fragments: total },
            None => EncryptedKind::Whole,
        };
        let mut datagram =
            encrypted_message_prefix(&header, &clear, kind, first, sealed.len()).unwrap();
        let aad_len = datagram.len();
        datagram.extend_from_slice(&sealed);
        prop_assert_eq!(encrypted_span(&datagram).unwrap(), aad_len);
        let message = Message::decode(&datagram)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&message.payloads[..clear.len()], &clear[..]);
        match (message.payloads.last(), kind) {
            (Some(Payload::Encrypted(sk)), EncryptedKind::Whole) => {
                prop_assert_eq!(sk.first_inner, first);
                prop_assert_eq!(&sk.data, &sealed);
            }
            (Some(Payload::EncryptedFragment(skf)), EncryptedKind::Fragment { fragment_number, .. }) => {
                let expected_first = if fragment_number == 1 { first } else { PayloadType::NoNextPayload };
                prop_assert_eq!(skf.first_inner, expected_first);
                prop_assert_eq!(&skf.data, &sealed);
            }
            other => prop_assert!(false, "unexpected last payload {:?}", other),
        }
        prop_assert_eq!(message.encode().unwrap(), datagram);
    }

    /// Registries: every value maps to a variant and back.
    #[test]
    fn registries_are_bijective(byte in any::<u8>(), word in any::<u16>()) {
        prop_assert_eq!(ExchangeType::from_value(byte).value(), byte);
        prop_assert_eq!(PayloadType::from_value(byte).value(), byte);
        prop_assert_eq!(NotifyType::from_value(word).value(), word);
        prop_assert_eq!(DhId::from_value(word).value(), word);
        prop_assert_eq!(TransformId::from_values(byte, word).transform_type().value(), byte);
        prop_assert_eq!(TransformId::from_values(byte, word).id(), word);
    }

    /// In a response, the single accepted proposal keeps its request number.
    #[test]
    fn accepted_proposal_keeps_its_number(number in 1u8..=255, mut proposal in proposal(), mut header in header()) {
        header.flags.response = true;
        proposal.number = number;
        let message = single(
            Payload::SecurityAssociation(SecurityAssociation { proposals: vec![proposal] }),
            header,
        );
        assert_round_trip(&message)?;
    }
}

#[test]
fn registry_names_are_unique_and_values_distinct() {
    fn check<T: Copy + PartialEq + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
        all: &[T],
        value: impl Fn(T) -> V,
        name: impl Fn(T) -> Option<&'static str>,
    ) {
        for (i, a) in all.iter().enumerate() {
            assert!(name(*a).is_some());
            for b in &all[i + 1..] {
                assert_ne!(value(*a), value(*b), "{a:?} / {b:?}");
                assert_ne!(name(*a), name(*b), "{a:?} / {b:?}");
            }
        }
    }
    check(NotifyType::ALL, NotifyType::value, NotifyType::short_name);
    check(NotifyType::ALL, NotifyType::value, NotifyType::iana_name);
    check(
        PayloadType::ALL,
        PayloadType::value,
        PayloadType::short_name,
    );
    check(DhId::ALL, DhId::value, DhId::iana_name);
    check(EncrId::ALL, EncrId::value, EncrId::iana_name);
    check(
        ExchangeType::ALL,
        ExchangeType::value,
        ExchangeType::iana_name,
    );
    check(
        CpAttributeType::ALL,
        CpAttributeType::value,
        CpAttributeType::iana_name,
    );
    assert_eq!(
        NotifyType::from_value(16430),
        NotifyType::Ikev2FragmentationSupported
    );
    assert_eq!(DhId::from_value(31), DhId::Curve25519);
    assert_eq!(DhId::from_value(36), DhId::MlKem768);
    assert!(NotifyType::InvalidSyntax.is_error() && !NotifyType::Cookie.is_error());
}
