//! Stable-toolchain mutation fuzzing of the decoder, run by `cargo test`.
//!
//! Seeds: the strongSwan captures plus a message built with every payload
//! type. Each execution stacks a few mutations (bit flips, interesting
//! values, lies in length fields and next-payload fields, truncation,
//! insertion, deletion, splicing) and checks that decoding never panics and
//! that whatever decodes re-encodes to bytes that decode to the same value.
//!
//! IKED_FUZZ_SECONDS (default 3) bounds the run; IKED_FUZZ_EXECS optionally
//! caps the executions; IKED_FUZZ_SEED replays a run.

use std::net::Ipv4Addr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use iked_common::wire::*;

/// xorshift64*: small, fast, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next() % bound as u64) as usize
        }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

fn captured_messages() -> Vec<Vec<u8>> {
    include_str!("../testdata/interop/messages.hex")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| hex::decode(line.trim()).expect("hex"))
        .collect()
}

/// A message carrying every clear payload type, so that every payload
/// decoder sees mutated input (the captures only have SK after IKE_SA_INIT).
fn kitchen_sink() -> Vec<Vec<u8>> {
    let header = Header {
        initiator_spi: 0x0102_0304_0506_0708,
        responder_spi: 0x1112_1314_1516_1718,
        exchange: ExchangeType::IkeAuth,
        flags: Flags {
            initiator: true,
            ..Flags::default()
        },
        message_id: 1,
    };
    let proposal = Proposal {
        number: 1,
        protocol: ProtocolId::Esp,
        spi: vec![0xc0, 0xff, 0xee, 0x01],
        transforms: vec![
            Transform::with_key_length(TransformId::Encr(EncrId::AesCbc), 256),
            Transform::new(TransformId::Integ(IntegId::HmacSha2_256_128)),
            Transform::new(TransformId::Esn(EsnId::NoEsn)),
        ],
    };
    let selectors = TrafficSelectors {
        selectors: vec![
            TrafficSelector::ipv4_range(Ipv4Addr::new(10, 1, 0, 0), Ipv4Addr::new(10, 1, 0, 255)),
            TrafficSelector::ipv6_range(
                "fd01:a::".parse().unwrap(),
                "fd01:a::ffff".parse().unwrap(),
            ),
        ],
    };
    let payloads = vec![
        Payload::IdInitiator(Identity::Fqdn("a.ike.test".into())),
        Payload::Certificate(Certificate {
            encoding: CertEncoding::X509Signature,
            data: vec![0x30; 40],
        }),
        Payload::CertificateRequest(CertificateRequest {
            encoding: CertEncoding::X509Signature,
            authorities: vec![0xca; 40],
        }),
        Payload::IdResponder(Identity::Ipv4(Ipv4Addr::new(198, 18, 0, 2))),
        Payload::Authentication(Authentication {
            method: AuthMethod::SharedKeyMic,
            data: vec![0xa5; 32],
        }),
        Payload::SecurityAssociation(SecurityAssociation {
            proposals: vec![
                proposal.clone(),
                Proposal {
                    number: 2,
                    ..proposal
                },
            ],
        }),
        Payload::KeyExchange(KeyExchange {
            group: DhId::Curve25519,
            data: vec![9; 32],
        }),
        Payload::Nonce(Nonce(vec![0x4e; 32])),
        Payload::TsInitiator(selectors.clone()),
        Payload::TsResponder(selectors),
        Payload::Configuration(Configuration {
            cfg_type: CfgType::Request,
            attributes: vec![
                CpAttribute::new(CpAttributeType::InternalIp4Address, vec![]),
                CpAttribute::new(CpAttributeType::InternalIp4Dns, vec![10, 0, 0, 53]),
            ],
        }),
        Payload::Eap(Eap(vec![2, 7, 0, 6, 1, b'x'])),
        Payload::Notify(Notify::for_child_sa(
            NotifyType::RekeySa,
            ProtocolId::Esp,
            0xc0ffee01,
            vec![],
        )),
        Payload::Notify(Notify::new(NotifyType::Cookie, vec![1; 16])),
        Payload::Delete(Delete {
            protocol: ProtocolId::Esp,
            spis: vec![1, 2],
        }),
        Payload::VendorId(VendorId(b"iked".to_vec())),
        Payload::Unknown(UnknownPayload {
            payload_type: 200,
            critical: false,
            data: vec![1, 2, 3],
        }),
    ];
    let whole = Message {
        header,
        payloads: payloads.clone(),
    }
    .encode()
    .unwrap();
    let mut fragment_payloads = payloads[..2].to_vec();
    fragment_payloads.push(Payload::EncryptedFragment(EncryptedFragment {
        fragment_number: 1,
        total_fragments: 2,
        first_inner: PayloadType::IdInitiator,
        data: vec![0x77; 48],
    }));
    let fragment = Message {
        header,
        payloads: fragment_payloads,
    }
    .encode()
    .unwrap();
    vec![whole, fragment]
}

/// Offsets of the generic payload headers along the chain (as far as it holds).
fn payload_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = HEADER_LEN;
    while let Some(header) = bytes.get(offset..offset + 4) {
        offsets.push(offset);
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if length < 4 || offsets.len() > 200 {
            break;
        }
        offset += length;
    }
    offsets
}

const INTERESTING_U8: [u8; 9] = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_U16: [u16; 8] = [0, 1, 3, 4, 5, 0x7fff, 0x8000, 0xffff];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let position = |rng: &mut Rng, input: &Vec<u8>| rng.below(input.len().max(1));
    match rng.below(11) {
        0 if !input.is_empty() => {
            let at = position(rng, input);
            input[at] ^= 1 << rng.below(8);
        }
        1 if !input.is_empty() => {
            let at = position(rng, input);
            input[at] = INTERESTING_U8[rng.below(INTERESTING_U8.len())];
        }
        2 => {
            // Lie in a payload length field.
            let offsets = payload_offsets(input);
            if let Some(&offset) = offsets.get(rng.below(offsets.len())) {
                let current = u16::from_be_bytes([input[offset + 2], input[offset + 3]]);
                let value = match rng.below(3) {
                    0 => INTERESTING_U16[rng.below(INTERESTING_U16.len())],
                    1 => current.wrapping_add(rng.below(9) as u16).wrapping_sub(4),
                    _ => rng.next() as u16,
                };
                input[offset + 2..offset + 4].copy_from_slice(&value.to_be_bytes());
            }
        }
        3 => {
            // Change a next-payload field (and maybe its critical bit).
            let offsets = payload_offsets(input);
            let field = match offsets.get(rng.below(offsets.len() + 1)) {
                Some(&offset) => offset,
                None => 16,
            };
            if let Some(byte) = input.get_mut(field) {
                *byte = match rng.below(3) {
                    0 => 33 + rng.below(22) as u8,
                    1 => 0,
                    _ => rng.next() as u8,
                };
            }
            if let Some(critical) = input.get_mut(field + 1) {
                if rng.chance(4) {
                    *critical ^= 0x80;
                }
            }
        }
        4 => {
            let at = position(rng, input);
            input.truncate(at);
        }
        5 => {
            let at = rng.below(input.len() + 1);
            let count = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..count).map(|_| rng.next() as u8).collect();
            input.splice(at..at, bytes);
        }
        6 if !input.is_empty() => {
            let at = position(rng, input);
            let end = (at + 1 + rng.below(16)).min(input.len());
            input.drain(at..end);
        }
        7 if !input.is_empty() => {
            // Duplicate a range (repeated payloads, overlapping structures).
            let at = position(rng, input);
            let end = (at + 1 + rng.below(64)).min(input.len());
            let copy = input[at..end].to_vec();
            let to = rng.below(input.len() + 1);
            input.splice(to..to, copy);
        }
        8 => {
            // Splice the tail of another seed.
            let other = &seeds[rng.below(seeds.len())];
            let from = rng.below(other.len() + 1);
            let at = rng.below(input.len() + 1);
            input.truncate(at);
            input.extend_from_slice(&other[from..]);
        }
        9 if input.len() >= HEADER_LEN => {
            let value = match rng.below(2) {
                0 => rng.next() as u32,
                _ => (input.len() as u32)
                    .wrapping_add(rng.below(5) as u32)
                    .wrapping_sub(2),
            };
            input[24..28].copy_from_slice(&value.to_be_bytes());
        }
        _ => {
            // A byte anywhere gets a random value.
            if !input.is_empty() {
                let at = position(rng, input);
                input[at] = rng.next() as u8;
            }
        }
    }
}

/// Makes the header length truthful, so mutations reach the payloads.
fn fix_header_length(input: &mut [u8]) {
    let length = input.len() as u32;
    if let Some(field) = input.get_mut(24..28) {
        field.copy_from_slice(&length.to_be_bytes());
    }
}

#[derive(Default)]
struct Stats {
    executions: u64,
    accepted: u64,
    inner_accepted: u64,
}

/// The properties; panics (with the input) on violation.
fn check(input: &[u8], stats: &mut Stats) {
    stats.executions += 1;
    if let Ok(message) = Message::decode(input) {
        stats.accepted += 1;
        let encoded = message
            .encode()
            .unwrap_or_else(|error| panic!("accepted message does not encode: {error}"));
        let again = Message::decode(&encoded)
            .unwrap_or_else(|error| panic!("re-encoded message does not decode: {error}"));
        assert_eq!(again, message, "re-decoded message differs");
        assert_eq!(again.encode().unwrap(), encoded, "encoding is not stable");
        let rendered = message.to_string();
        assert!(rendered.ends_with(" ]"));
        if message.encrypted().is_some() {
            let span = encrypted_span(input).expect("decoded SK has a span");
            assert!(span <= input.len());
        }
    }
    // The same bytes as decrypted contents: decode_payloads must hold up too.
    if let (Some(&first), Some(chain)) = (input.get(16), input.get(HEADER_LEN..)) {
        let header = Header {
            initiator_spi: 1,
            responder_spi: 2,
            exchange: ExchangeType::IkeAuth,
            flags: Flags::default(),
            message_id: 1,
        };
        if let Ok(payloads) = decode_payloads(PayloadType::from_value(first), chain, &header) {
            stats.inner_accepted += 1;
            let (first_again, bytes) = encode_payloads(&payloads).expect("inner encodes");
            let again = decode_payloads(first_again, &bytes, &header).expect("inner re-decodes");
            assert_eq!(again, payloads);
        }
    }
    let _ = encrypted_span(input);
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn mutation_fuzz_decode() {
    let seconds = env_number("IKED_FUZZ_SECONDS").unwrap_or(3);
    let max_executions = env_number("IKED_FUZZ_EXECS").unwrap_or(u64::MAX);
    let seed = env_number("IKED_FUZZ_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64)
    }) | 1;
    let mut seeds = captured_messages();
    seeds.extend(kitchen_sink());
    let mut stats = Stats::default();
    // Seeds themselves must pass, and are all valid messages.
    for seed_input in &seeds {
        check(seed_input, &mut stats);
    }
    assert_eq!(stats.accepted, seeds.len() as u64, "every seed decodes");

    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut input = Vec::new();
    while stats.executions < max_executions {
        // Checking the clock every 256 executions keeps its cost negligible.
        if stats.executions % 256 == 0 && Instant::now() >= deadline {
            break;
        }
        input.clear();
        input.extend_from_slice(&seeds[rng.below(seeds.len())]);
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut input, &seeds);
        }
        if rng.chance(2) {
            fix_header_length(&mut input);
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input, &mut stats)));
        if let Err(panic) = outcome {
            eprintln!(
                "fuzz failure (IKED_FUZZ_SEED={seed}) on input {}",
                hex::encode(&input)
            );
            std::panic::resume_unwind(panic);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "wire fuzz: seed {seed}, {} executions in {elapsed:.2} s ({:.0} exec/s), \
         {} messages and {} inner chains accepted",
        stats.executions,
        stats.executions as f64 / elapsed.max(1e-9),
        stats.accepted,
        stats.inner_accepted,
    );
    // The mutator must exercise both outcomes, or it is not testing much.
    assert!(
        stats.accepted > seeds.len() as u64,
        "no mutated input was accepted"
    );
    assert!(
        stats.executions > stats.accepted,
        "no mutated input was refused"
    );
}
