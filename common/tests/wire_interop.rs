//! Real IKEv2 messages from strongSwan 5.9.8 (testdata/interop, see its
//! README): every one decodes, re-encodes byte for byte, and renders like
//! strongSwan's own log line where the payloads are in clear.

use iked_common::wire::{
    encrypted_message_prefix, encrypted_span, EncryptedKind, ExchangeType, Message, Payload,
    PayloadType,
};

struct Vector {
    comment: String,
    bytes: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("../testdata/interop/messages.hex");
    let mut vectors = Vec::new();
    let mut comment = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            comment = rest.to_string();
        } else if !line.trim().is_empty() {
            vectors.push(Vector {
                comment: comment.clone(),
                bytes: hex::decode(line.trim()).expect("hex line"),
            });
        }
    }
    vectors
}

#[test]
fn all_captured_messages_round_trip_byte_identically() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 42, "the capture holds 21 exchanges");
    for vector in &vectors {
        let message = Message::decode(&vector.bytes)
            .unwrap_or_else(|error| panic!("{}: {error}", vector.comment));
        let encoded = message.encode().expect("encode");
        assert_eq!(
            hex::encode(&encoded),
            hex::encode(&vector.bytes),
            "{}",
            vector.comment
        );
    }
}

#[test]
fn exchanges_and_flags_match_the_capture_notes() {
    for vector in vectors() {
        let message = Message::decode(&vector.bytes).unwrap();
        let exchange = message.header.exchange.iana_name().unwrap();
        assert!(
            vector.comment.contains(exchange),
            "{} vs {exchange}",
            vector.comment
        );
        let is_response = vector.comment.contains(" response ");
        assert_eq!(message.header.flags.response, is_response);
        // Peer a initiated every IKE SA; b never sets the I flag.
        assert_eq!(
            message.header.flags.initiator,
            vector.comment.contains(" a->b ")
        );
        let mid = format!("mid={}", message.header.message_id);
        assert!(vector.comment.contains(&mid), "{}", vector.comment);
        if message.header.exchange != ExchangeType::IkeSaInit {
            assert_eq!(message.payload_types(), vec![PayloadType::Encrypted]);
        }
    }
}

/// strongSwan's "generating"/"parsed" log lines for the IKE_SA_INIT messages
/// (charon-a.log), which our Display must reproduce.
#[test]
fn ike_sa_init_renders_like_strongswan_logs() {
    let log = include_str!("../testdata/interop/charon-a.log");
    let logged: Vec<&str> = log
        .lines()
        .filter_map(|line| {
            let at = line.find("IKE_SA_INIT ")?;
            (line.contains("generating") || line.contains("parsed")).then(|| &line[at..])
        })
        .collect();
    let rendered: Vec<String> = vectors()
        .iter()
        .map(|vector| Message::decode(&vector.bytes).unwrap())
        .filter(|message| message.header.exchange == ExchangeType::IkeSaInit)
        .map(|message| message.to_string())
        .collect();
    assert_eq!(rendered.len(), 10);
    assert_eq!(rendered, logged);
    assert_eq!(
        rendered[0],
        "IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(REDIR_SUP) ]"
    );
}

#[test]
fn ike_sa_init_contents_are_typed() {
    let vectors = vectors();
    let request = Message::decode(&vectors[4].bytes).unwrap(); // psk-gcm
    let Some(Payload::SecurityAssociation(sa)) = request.payloads.first() else {
        panic!("first payload is not SA");
    };
    let ids: Vec<_> = sa.proposals[0].transforms.iter().map(|t| t.id).collect();
    use iked_common::wire::{DhId, EncrId, PrfId, TransformId};
    assert_eq!(
        ids,
        vec![
            TransformId::Encr(EncrId::AesGcm16),
            TransformId::Prf(PrfId::HmacSha2_256),
            TransformId::Ke(DhId::Curve25519)
        ]
    );
    assert_eq!(sa.proposals[0].transforms[0].key_length(), Some(128));
    let Some(Payload::KeyExchange(ke)) = request.payloads.get(1) else {
        panic!("second payload is not KE");
    };
    assert_eq!((ke.group, ke.data.len()), (DhId::Curve25519, 32));
}

/// The AAD helper must rebuild exactly what strongSwan put in front of the
/// encrypted data, from the decoded header and the SK payload's size.
#[test]
fn encrypted_prefix_matches_captured_messages() {
    for vector in vectors() {
        let message = Message::decode(&vector.bytes).unwrap();
        let Some(sk) = message.encrypted() else {
            continue;
        };
        let span = encrypted_span(&vector.bytes).unwrap();
        assert_eq!(span, 32, "SK is the only payload: header + SK header");
        assert_eq!(&vector.bytes[span..], sk.data.as_slice());
        let prefix = encrypted_message_prefix(
            &message.header,
            &[],
            EncryptedKind::Whole,
            sk.first_inner,
            sk.data.len(),
        )
        .unwrap();
        assert_eq!(
            prefix.as_slice(),
            &vector.bytes[..span],
            "{}",
            vector.comment
        );
    }
}

/// SK_e/SK_a keys of one IKE SA direction pair, from a charon log.
#[derive(Default, Clone)]
struct IkeKeys {
    ai: Vec<u8>,
    ar: Vec<u8>,
    ei: Vec<u8>,
    er: Vec<u8>,
}

/// Every SK_ai/SK_ar/SK_ei/SK_er set that charon (ike = 4) logged, in order.
fn logged_ike_keys(log: &str) -> Vec<IkeKeys> {
    let mut sets = Vec::new();
    let mut current = IkeKeys::default();
    let mut lines = log.lines();
    while let Some(line) = lines.next() {
        let Some(label) = ["Sk_ai", "Sk_ar", "Sk_ei", "Sk_er"]
            .into_iter()
            .find(|label| line.contains(&format!("> {label} secret => ")))
        else {
            continue;
        };
        let count: usize = line
            .split(" => ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("byte count");
        let mut bytes = Vec::with_capacity(count);
        while bytes.len() < count {
            let dump = lines.next().expect("hex dump line");
            let after_tag = dump.split("> ").nth(1).expect("tagged line");
            let mut tokens = after_tag.split_whitespace();
            assert!(tokens.next().is_some_and(|offset| offset.ends_with(':')));
            let wanted = (count - bytes.len()).min(16);
            for token in tokens.take(wanted) {
                bytes.push(u8::from_str_radix(token, 16).expect("hex byte"));
            }
        }
        match label {
            "Sk_ai" => current.ai = bytes,
            "Sk_ar" => current.ar = bytes,
            "Sk_ei" => current.ei = bytes,
            _ => {
                current.er = bytes;
                sets.push(std::mem::take(&mut current));
            }
        }
    }
    sets
}

/// Verifies and decrypts the SK payload of `datagram` with one key set;
/// `None` if the ICV does not verify (wrong IKE SA). Returns the inner
/// payload chain bytes (padding removed).
fn open_sk(datagram: &[u8], keys: &IkeKeys, from_initiator: bool) -> Option<Vec<u8>> {
    use openssl::symm::{decrypt_aead, Cipher, Crypter, Mode};
    const ICV_LEN: usize = 16;
    let span = encrypted_span(datagram).ok()?;
    let (encryption_key, integrity_key) = if from_initiator {
        (&keys.ei, &keys.ai)
    } else {
        (&keys.er, &keys.ar)
    };
    let data = &datagram[span..];
    let padded = if integrity_key.is_empty() {
        // AES-GCM-16 with a 128-bit key: key || 4-octet salt (RFC 5282 §7.1).
        let (key, salt) = encryption_key.split_at(16);
        let (iv, rest) = data.split_at(8);
        let (ciphertext, tag) = rest.split_at(rest.len() - ICV_LEN);
        let nonce = [salt, iv].concat();
        decrypt_aead(
            Cipher::aes_128_gcm(),
            key,
            Some(&nonce),
            &datagram[..span],
            ciphertext,
            tag,
        )
        .ok()?
    } else {
        // AES-256-CBC + HMAC-SHA2-256-128 over everything but the ICV.
        let (checked, icv) = datagram.split_at(datagram.len() - ICV_LEN);
        let key = openssl::pkey::PKey::hmac(integrity_key).unwrap();
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
        signer.update(checked).unwrap();
        let mac = signer.sign_to_vec().unwrap();
        if !iked_common::crypto::secret::ct_eq(&mac[..ICV_LEN], icv) {
            return None;
        }
        let (iv, rest) = data.split_at(16);
        let ciphertext = &rest[..rest.len() - ICV_LEN];
        let mut crypter = Crypter::new(
            Cipher::aes_256_cbc(),
            Mode::Decrypt,
            encryption_key,
            Some(iv),
        )
        .unwrap();
        crypter.pad(false);
        let mut out = vec![0; ciphertext.len() + 16];
        let mut written = crypter.update(ciphertext, &mut out).unwrap();
        written += crypter.finalize(&mut out[written..]).unwrap();
        out.truncate(written);
        out
    };
    // RFC 7296 §3.14: padding, then the Pad Length octet.
    let pad_length = usize::from(*padded.last()?);
    Some(padded[..padded.len() - 1 - pad_length].to_vec())
}

/// Decrypts every captured SK payload with the keys from charon's log,
/// decodes the inner payloads with `decode_payloads`, re-encodes them byte
/// for byte, and renders each message exactly as strongSwan logged it.
#[test]
fn decrypted_contents_decode_reencode_and_render_like_strongswan() {
    use iked_common::wire::{decode_payloads, encode_payloads};
    let log = include_str!("../testdata/interop/charon-a.log");
    let key_sets = logged_ike_keys(log);
    assert_eq!(key_sets.len(), 6, "IKE SAs #1-#5 and #6 (rekeyed #4)");
    let logged: Vec<String> = log
        .lines()
        .filter(|line| line.contains("generating ") || line.contains("parsed "))
        .filter_map(|line| {
            let at = line.find("> ")? + 2;
            let text = &line[at..];
            let text = text
                .strip_prefix("generating ")
                .or_else(|| text.strip_prefix("parsed "))?;
            Some(text.to_string())
        })
        .collect();
    assert_eq!(logged.len(), 42);
    let mut decrypted_count = 0;
    for (vector, logged_line) in vectors().iter().zip(&logged) {
        let mut message = Message::decode(&vector.bytes).unwrap();
        if let Some(sk) = message.encrypted().cloned() {
            let from_initiator = message.header.flags.initiator;
            let openings: Vec<Vec<u8>> = key_sets
                .iter()
                .filter_map(|keys| open_sk(&vector.bytes, keys, from_initiator))
                .collect();
            assert_eq!(
                openings.len(),
                1,
                "exactly one IKE SA opens {}",
                vector.comment
            );
            let plaintext = &openings[0];
            let inner = decode_payloads(sk.first_inner, plaintext, &message.header)
                .unwrap_or_else(|error| panic!("{}: {error}", vector.comment));
            let (first, reencoded) = encode_payloads(&inner).unwrap();
            assert_eq!(first, sk.first_inner);
            assert_eq!(
                hex::encode(&reencoded),
                hex::encode(plaintext),
                "{}",
                vector.comment
            );
            message.payloads = inner;
            decrypted_count += 1;
        }
        assert_eq!(&message.to_string(), logged_line, "{}", vector.comment);
    }
    assert_eq!(decrypted_count, 32);
}

/// The builder helpers produce what strongSwan sent: rebuild the first
/// IKE_SA_INIT response from its parts, with the header derived from the request.
#[test]
fn response_built_from_parts_matches_capture() {
    let vectors = vectors();
    let request = Message::decode(&vectors[0].bytes).unwrap();
    let response = Message::decode(&vectors[1].bytes).unwrap();
    let mut header = request.header.response();
    header.responder_spi = response.header.responder_spi;
    let rebuilt = Message::new(header, response.payloads.clone());
    assert_eq!(rebuilt.encode().unwrap(), vectors[1].bytes);
    assert_eq!(
        request.header,
        iked_common::wire::Header::request(
            request.header.initiator_spi,
            0,
            ExchangeType::IkeSaInit,
            0,
            true
        )
    );
    assert_eq!(response.nonce().map(|nonce| nonce.0.len()), Some(32));
    assert_eq!(
        response.key_exchange().map(|ke| ke.data.len()),
        Some(256),
        "MODP 2048"
    );
    assert_eq!(
        response.security_association().map(|sa| sa.proposals.len()),
        Some(1)
    );
    let natd: Payload = iked_common::wire::Notify::new(
        iked_common::wire::NotifyType::NatDetectionSourceIp,
        vec![0; 20],
    )
    .into();
    assert_eq!(natd.to_string(), "N(NATD_S_IP)");
}
