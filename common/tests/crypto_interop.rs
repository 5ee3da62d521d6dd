//! Cross-implementation vectors: strongSwan 5.9.8 (testdata/crypto/swan-*.json,
//! made from the logs and captured messages in testdata/interop by
//! make-swan-vectors.py). From the inputs strongSwan saw (g^ir, nonces,
//! SPIs, PSK, messages) we derive every key and AUTH value and compare each
//! byte with what strongSwan logged, and we open strongSwan's real
//! Encrypted payloads with our keys.

use iked_common::crypto::keys::rekey_skeyseed;
use iked_common::crypto::{
    keys::skeyseed, psk_auth, signed_octets, verify_psk_auth, ChildSaKeys, EncrAlg, IkeSaKeys,
    IntegAlg, KeMethod, KeyExchange, PrfAlg, SkCipher, SkTransform,
};
use serde_json::Value;

const PAYLOAD_SA: u8 = 33;
const PAYLOAD_KE: u8 = 34;
const PAYLOAD_IDI: u8 = 35;
const PAYLOAD_IDR: u8 = 36;
const PAYLOAD_AUTH: u8 = 39;
const PAYLOAD_NONCE: u8 = 40;
const PAYLOAD_DELETE: u8 = 42;
const PAYLOAD_SK: u8 = 46;
const IKE_HEADER_LEN: usize = 28;

const VECTORS: [(&str, &str); 5] = [
    (
        "psk-cbc-1",
        include_str!("../testdata/crypto/swan-psk-cbc-1.json"),
    ),
    (
        "psk-gcm-2",
        include_str!("../testdata/crypto/swan-psk-gcm-2.json"),
    ),
    (
        "psk-v6-3",
        include_str!("../testdata/crypto/swan-psk-v6-3.json"),
    ),
    (
        "psk-cbc-4",
        include_str!("../testdata/crypto/swan-psk-cbc-4.json"),
    ),
    (
        "psk-gcm-5",
        include_str!("../testdata/crypto/swan-psk-gcm-5.json"),
    ),
];

fn vector(name: &str) -> Value {
    let (_, text) = VECTORS.iter().find(|(n, _)| *n == name).unwrap();
    serde_json::from_str(text).unwrap()
}

fn hex_of(v: &Value, name: &str) -> Vec<u8> {
    hex::decode(v[name].as_str().unwrap_or_else(|| panic!("missing {name}"))).unwrap()
}

fn id(v: &Value, name: &str) -> u16 {
    v[name].as_u64().unwrap_or_else(|| panic!("missing {name}")) as u16
}

/// The algorithms of a proposal section of a vector file.
struct Algs {
    prf: PrfAlg,
    encr: EncrAlg,
    integ: Option<IntegAlg>,
}

fn algs(v: &Value, prf: Option<PrfAlg>) -> Algs {
    Algs {
        prf: prf.unwrap_or_else(|| PrfAlg::from_iana(id(v, "prf")).unwrap()),
        encr: EncrAlg::from_iana(id(v, "encr"), Some(id(v, "encr_key_bits"))).unwrap(),
        integ: v["integ"]
            .as_u64()
            .map(|i| IntegAlg::from_iana(i as u16).unwrap()),
    }
}

/// Test-side payload walk: (type, body) of each payload in a chain.
fn payloads(first: u8, mut data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut kind = first;
    while kind != 0 {
        let len = u16::from_be_bytes([data[2], data[3]]) as usize;
        out.push((kind, data[4..len].to_vec()));
        kind = data[0];
        data = &data[len..];
    }
    out
}

fn find(payloads: &[(u8, Vec<u8>)], kind: u8) -> Vec<u8> {
    payloads
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, b)| b.clone())
        .unwrap_or_else(|| panic!("no payload {kind}"))
}

/// Splits a message into (AAD prefix through the SK header, first inner
/// payload type, SK body), as the engine will.
fn split_sk(message: &[u8]) -> (&[u8], u8, &[u8]) {
    let mut kind = message[16];
    let mut pos = IKE_HEADER_LEN;
    while kind != PAYLOAD_SK {
        kind = message[pos];
        pos += u16::from_be_bytes([message[pos + 2], message[pos + 3]]) as usize;
    }
    let len = u16::from_be_bytes([message[pos + 2], message[pos + 3]]) as usize;
    assert_eq!(pos + len, message.len(), "SK is the last payload");
    (&message[..pos + 4], message[pos], &message[pos + 4..])
}

/// Opens a strongSwan message with our cipher; returns its inner payloads.
fn open(cipher: &SkCipher, message: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let (prefix, first, body) = split_sk(message);
    let plain = cipher
        .open(prefix, body)
        .expect("strongSwan's Encrypted payload opens with our keys");
    payloads(first, &plain)
}

fn assert_ike_keys(keys: &IkeSaKeys, expected: &Value, what: &str) {
    for (name, got) in [
        ("sk_d", &keys.sk_d),
        ("sk_ei", &keys.sk_ei),
        ("sk_er", &keys.sk_er),
        ("sk_pi", &keys.sk_pi),
        ("sk_pr", &keys.sk_pr),
    ] {
        assert_eq!(got.expose(), &hex_of(expected, name)[..], "{what}: {name}");
    }
    for (name, got) in [("sk_ai", &keys.sk_ai), ("sk_ar", &keys.sk_ar)] {
        // strongSwan logs no SK_a for AEAD; ours must then be empty.
        let want = expected[name]
            .as_str()
            .map(|h| hex::decode(h).unwrap())
            .unwrap_or_default();
        assert_eq!(got.expose(), &want[..], "{what}: {name}");
    }
}

fn assert_child_keys(keys: &ChildSaKeys, expected: &Value, what: &str) {
    for (name, got) in [
        ("encr_i", &keys.encr_i),
        ("integ_i", &keys.integ_i),
        ("encr_r", &keys.encr_r),
        ("integ_r", &keys.integ_r),
    ] {
        let want = expected[name]
            .as_str()
            .map(|h| hex::decode(h).unwrap())
            .unwrap_or_default();
        assert_eq!(got.expose(), &want[..], "{what}: {name}");
    }
}

/// Everything derivable from one IKE_SA_INIT / IKE_AUTH exchange.
fn check_initial_exchange(name: &str) -> (Value, IkeSaKeys, SkTransform, PrfAlg) {
    let v = vector(name);
    let a = algs(&v, None);
    let method = KeMethod::from_iana(id(&v, "ke")).unwrap();
    let transform = SkTransform::new(a.encr, a.integ).unwrap();
    let (ni, nr) = (hex_of(&v, "ni"), hex_of(&v, "nr"));
    let (spi_i, spi_r) = (hex_of(&v, "spi_i"), hex_of(&v, "spi_r"));
    let shared = hex_of(&v, "shared_secret");
    assert_eq!(
        shared.len(),
        method.shared_secret_len(),
        "{name}: g^ir length"
    );

    // The inputs are those on the wire.
    let init_req = hex_of(&v["messages"], "ike_sa_init_request");
    let init_resp = hex_of(&v["messages"], "ike_sa_init_response");
    assert_eq!(init_req[..8], spi_i[..]);
    assert_eq!(init_resp[8..16], spi_r[..]);
    let req = payloads(init_req[16], &init_req[IKE_HEADER_LEN..]);
    let resp = payloads(init_resp[16], &init_resp[IKE_HEADER_LEN..]);
    assert_eq!(find(&req, PAYLOAD_NONCE), ni, "{name}: Ni");
    assert_eq!(find(&resp, PAYLOAD_NONCE), nr, "{name}: Nr");
    // strongSwan's public values pass our peer checks.
    for ke in [find(&req, PAYLOAD_KE), find(&resp, PAYLOAD_KE)] {
        assert_eq!(u16::from_be_bytes([ke[0], ke[1]]), method.iana_id());
        let ours = KeyExchange::generate(method).unwrap();
        ours.complete(&ke[4..])
            .expect("strongSwan's KE data is accepted");
    }

    // SKEYSEED and the seven SK_* keys.
    let seed = skeyseed(a.prf, &ni, &nr, &shared).unwrap();
    assert_eq!(
        seed.expose(),
        &hex_of(&v["expected"], "skeyseed")[..],
        "{name}: SKEYSEED"
    );
    let keys =
        IkeSaKeys::derive(a.prf, seed.expose(), &ni, &nr, &spi_i, &spi_r, transform).unwrap();
    assert_ike_keys(&keys, &v["expected"], name);
    let same =
        IkeSaKeys::from_ike_sa_init(a.prf, &shared, &ni, &nr, &spi_i, &spi_r, transform).unwrap();
    assert_eq!(same.sk_pr.expose(), keys.sk_pr.expose());

    // The first Child SA's KEYMAT: prf+(SK_d, Ni | Nr), no PFS.
    let child = &v["child"];
    let ca = algs(child, Some(a.prf));
    let child_keys =
        ChildSaKeys::derive(a.prf, keys.sk_d.expose(), &[], &ni, &nr, ca.encr, ca.integ).unwrap();
    assert_child_keys(&child_keys, &child["expected"], &format!("{name} child"));

    // IKE_AUTH: open both messages as the peer that received them.
    let (_, from_initiator) = keys.sk_ciphers(transform, false).unwrap();
    let (_, from_responder) = keys.sk_ciphers(transform, true).unwrap();
    let auth_req = open(&from_initiator, &hex_of(&v["messages"], "ike_auth_request"));
    let auth_resp = open(
        &from_responder,
        &hex_of(&v["messages"], "ike_auth_response"),
    );

    // AUTH (RFC 7296 section 2.15) for both sides, against the log and the wire.
    let psk = hex_of(&v, "psk");
    for (side, inner, id_type, sk_p) in [
        ("initiator", &auth_req, PAYLOAD_IDI, &keys.sk_pi),
        ("responder", &auth_resp, PAYLOAD_IDR, &keys.sk_pr),
    ] {
        let logged = &v["auth"][side];
        let id_body = find(inner, id_type);
        assert_eq!(
            id_body,
            hex_of(logged, "id_body"),
            "{name} {side}: IDx' on the wire"
        );
        let octets = signed_octets(
            a.prf,
            &hex_of(logged, "real_message"),
            &hex_of(logged, "peer_nonce"),
            sk_p.expose(),
            &id_body,
        )
        .unwrap();
        assert_eq!(
            octets,
            hex_of(logged, "signed_octets"),
            "{name} {side}: signed octets"
        );
        let auth_payload = find(inner, PAYLOAD_AUTH);
        assert_eq!(auth_payload[0], 2, "shared key MIC");
        let auth = psk_auth(a.prf, &psk, &octets).unwrap();
        assert_eq!(auth, hex_of(logged, "auth"), "{name} {side}: AUTH vs log");
        assert_eq!(auth, auth_payload[4..], "{name} {side}: AUTH vs wire");
        assert_eq!(
            a.prf.prf(&psk, b"Key Pad for IKEv2").unwrap().expose(),
            &hex_of(logged, "key_pad_prf")[..]
        );
        assert!(verify_psk_auth(a.prf, &psk, &octets, &auth_payload[4..]).unwrap());
        assert!(!verify_psk_auth(
            a.prf,
            b"interop-lab-psk-0123456788",
            &octets,
            &auth_payload[4..]
        )
        .unwrap());
    }
    (v, keys, transform, a.prf)
}

#[test]
fn psk_cbc_modp2048_aes256cbc_sha256() {
    check_initial_exchange("psk-cbc-1");
}

#[test]
fn psk_gcm_x25519_aes128gcm16() {
    check_initial_exchange("psk-gcm-2");
}

#[test]
fn psk_v6_modp2048_aes256cbc_sha256() {
    check_initial_exchange("psk-v6-3");
}

#[test]
fn psk_gcm_second_sa() {
    check_initial_exchange("psk-gcm-5");
}

/// Given strongSwan's IV, our CBC seal reproduces strongSwan's IKE_AUTH
/// ciphertext byte for byte up to the last block, which holds the padding
/// (strongSwan's padding bytes are not zeros like ours); and strongSwan's
/// padding length is the minimal one we compute.
#[test]
fn cbc_seal_matches_strongswan_bytes() {
    let (v, keys, transform, _) = check_initial_exchange("psk-cbc-1");
    for (message_name, we_are_initiator) in
        [("ike_auth_request", true), ("ike_auth_response", false)]
    {
        let message = hex_of(&v["messages"], message_name);
        let (prefix, _, body) = split_sk(&message);
        let (mut ours, _) = keys.sk_ciphers(transform, we_are_initiator).unwrap();
        let receiver = keys.sk_ciphers(transform, !we_are_initiator).unwrap().1;
        let plain = receiver.open(prefix, body).unwrap();
        assert_eq!(
            transform.sealed_len(plain.len()),
            body.len(),
            "{message_name}: strongSwan pads minimally"
        );
        let iv = body[..16].to_vec();
        let mut rng = |buf: &mut [u8]| buf.copy_from_slice(&iv);
        let sealed = ours.seal(prefix, &plain, &mut rng).unwrap();
        // Compare the ciphertext blocks before the last (the last holds padding we choose).
        let blocks = body.len() - 16 - transform.icv_len();
        assert_eq!(
            sealed[..blocks],
            body[..blocks],
            "{message_name}: IV and all but the padding block"
        );
        assert_eq!(sealed.len(), body.len());
        assert_eq!(receiver.open(prefix, &sealed).unwrap(), plain);
    }
}

/// CHILD_SA rekey with PFS on psk-cbc #4 (MODP 2048): open strongSwan's
/// CREATE_CHILD_SA messages with our keys, take the nonces from them, and
/// derive KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr).
#[test]
fn child_rekey_with_pfs_modp2048() {
    check_child_rekey("psk-cbc-4", KeMethod::Modp2048);
}

/// The same on psk-gcm #5 (Curve25519, AES-GCM Encrypted payloads).
#[test]
fn child_rekey_with_pfs_x25519() {
    check_child_rekey("psk-gcm-5", KeMethod::Curve25519);
}

fn check_child_rekey(name: &str, method: KeMethod) {
    let (v, keys, transform, prf) = check_initial_exchange(name);
    let rekey = &v["child_rekey"];
    let (_, from_initiator) = keys.sk_ciphers(transform, false).unwrap();
    let (_, from_responder) = keys.sk_ciphers(transform, true).unwrap();
    let request = open(&from_initiator, &hex_of(rekey, "request"));
    let response = open(&from_responder, &hex_of(rekey, "response"));
    let (ni, nr) = (
        find(&request, PAYLOAD_NONCE),
        find(&response, PAYLOAD_NONCE),
    );
    assert_eq!(ni, hex_of(rekey, "ni"), "{name}: rekey Ni");
    assert_eq!(nr, hex_of(rekey, "nr"), "{name}: rekey Nr");
    for ke in [find(&request, PAYLOAD_KE), find(&response, PAYLOAD_KE)] {
        assert_eq!(u16::from_be_bytes([ke[0], ke[1]]), method.iana_id());
        KeyExchange::generate(method)
            .unwrap()
            .complete(&ke[4..])
            .unwrap();
    }
    let shared = hex_of(rekey, "shared_secret");
    assert_eq!(shared.len(), method.shared_secret_len());
    let a = algs(rekey, Some(prf));
    let child = ChildSaKeys::derive(
        prf,
        keys.sk_d.expose(),
        &[&shared],
        &ni,
        &nr,
        a.encr,
        a.integ,
    )
    .unwrap();
    assert_child_keys(&child, &rekey["expected"], &format!("{name} child rekey"));
}

/// IKE SA rekey on psk-cbc #4 (RFC 7296 section 2.18): SKEYSEED =
/// prf(SK_d (old), g^ir (new) | Ni | Nr), new keys with the new SPIs, then the
/// new IKE SA's own messages open with them.
#[test]
fn ike_sa_rekey_modp2048() {
    let (v, old_keys, transform, prf) = check_initial_exchange("psk-cbc-4");
    let rekey = &v["ike_rekey"];
    let (_, from_initiator) = old_keys.sk_ciphers(transform, false).unwrap();
    let (_, from_responder) = old_keys.sk_ciphers(transform, true).unwrap();
    let request = open(&from_initiator, &hex_of(rekey, "request"));
    let response = open(&from_responder, &hex_of(rekey, "response"));
    let (ni, nr) = (
        find(&request, PAYLOAD_NONCE),
        find(&response, PAYLOAD_NONCE),
    );
    assert_eq!(ni, hex_of(rekey, "ni"));
    assert_eq!(nr, hex_of(rekey, "nr"));
    // Proposal substructure: the 8-byte IKE SPI starts at offset 8.
    let (spi_i, spi_r) = (
        find(&request, PAYLOAD_SA)[8..16].to_vec(),
        find(&response, PAYLOAD_SA)[8..16].to_vec(),
    );
    assert_eq!(spi_i, hex_of(rekey, "spi_i"));
    assert_eq!(spi_r, hex_of(rekey, "spi_r"));

    let shared = hex_of(rekey, "shared_secret");
    let seed = rekey_skeyseed(prf, old_keys.sk_d.expose(), &[&shared], &ni, &nr).unwrap();
    assert_eq!(
        seed.expose(),
        &hex_of(&rekey["expected"], "skeyseed")[..],
        "rekeyed SKEYSEED"
    );
    let a = algs(rekey, None);
    let new_transform = SkTransform::new(a.encr, a.integ).unwrap();
    let new_keys = IkeSaKeys::derive(
        a.prf,
        seed.expose(),
        &ni,
        &nr,
        &spi_i,
        &spi_r,
        new_transform,
    )
    .unwrap();
    assert_ike_keys(&new_keys, &rekey["expected"], "rekeyed IKE SA");

    // The new IKE SA's INFORMATIONAL (Delete) exchange opens with the new keys.
    let (_, new_from_initiator) = new_keys.sk_ciphers(new_transform, false).unwrap();
    let (_, new_from_responder) = new_keys.sk_ciphers(new_transform, true).unwrap();
    let messages = rekey["new_sa_messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let delete = open(
        &new_from_initiator,
        &hex::decode(messages[0].as_str().unwrap()).unwrap(),
    );
    assert_eq!(
        find(&delete, PAYLOAD_DELETE)[0],
        1,
        "Delete of protocol IKE"
    );
    let reply = open(
        &new_from_responder,
        &hex::decode(messages[1].as_str().unwrap()).unwrap(),
    );
    assert!(reply.is_empty(), "empty INFORMATIONAL response");
    // And not with the old ones.
    let first = hex::decode(messages[0].as_str().unwrap()).unwrap();
    let (prefix, _, body) = split_sk(&first);
    assert!(from_initiator.open(prefix, body).is_err());
}
