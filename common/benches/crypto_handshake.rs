//! Cost of one IKEv2 handshake's cryptography per side, and of the
//! primitives under it, through our crypto module (plain `cargo bench`,
//! harness = false). run-bench.sh prints these next to `openssl speed`.
//!
//! Output lines: `iked-bench <name> <ops per second> <microseconds per op>`.
//! IKED_BENCH_SECONDS sets the time spent per item (default 1).

use std::hint::black_box;
use std::time::{Duration, Instant};

use iked_common::crypto::kex::respond;
use iked_common::crypto::{
    psk_auth, signed_octets, verify_psk_auth, ChildSaKeys, EncrAlg, IkeSaKeys, IntegAlg, KeMethod,
    KeyExchange, OpensslRandom, PrfAlg, SkCipher, SkTransform,
};

const PSK: &[u8] = b"interop-lab-psk-0123456789";
/// IDi'/IDr' of an FQDN identity, as in the strongSwan captures.
const ID_BODY: &[u8] = b"\x02\x00\x00\x00a.ike.test";
/// Inner payloads of IKE_AUTH (IDi, AUTH, SA, TSi, TSr, notifies): about
/// what strongSwan sends.
const IKE_AUTH_PAYLOADS: usize = 256;

fn budget() -> Duration {
    let seconds = std::env::var("IKED_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    Duration::from_secs_f64(seconds)
}

/// Runs `op` until the budget is spent (at least 10 times); returns ops/s.
fn measure(mut op: impl FnMut()) -> f64 {
    for _ in 0..3 {
        op();
    }
    let budget = budget();
    let start = Instant::now();
    let mut count = 0u64;
    while count < 10 || start.elapsed() < budget {
        for _ in 0..10 {
            op();
        }
        count += 10;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn report(name: &str, ops_per_sec: f64) {
    println!(
        "iked-bench {name} {ops_per_sec:.1} {:.2}",
        1e6 / ops_per_sec
    );
}

struct Suite {
    name: &'static str,
    method: KeMethod,
    prf: PrfAlg,
    transform: SkTransform,
    child_encr: EncrAlg,
    child_integ: Option<IntegAlg>,
}

/// A stand-in for an IKE header plus SK payload header with final lengths.
fn aad(body_len: usize) -> Vec<u8> {
    let mut header = vec![0u8; 32];
    header[24..28].copy_from_slice(&((32 + body_len) as u32).to_be_bytes());
    header[30..32].copy_from_slice(&((4 + body_len) as u16).to_be_bytes());
    header
}

fn nonce() -> Vec<u8> {
    let mut n = vec![0u8; 32];
    openssl::rand::rand_bytes(&mut n).unwrap();
    n
}

fn ike_sa_init_message(public: &[u8], nonce: &[u8]) -> Vec<u8> {
    // header, SA, KE, Nonce, and about 100 bytes of notifies
    let mut m = vec![0u8; 28 + 48];
    m.extend_from_slice(public);
    m.extend_from_slice(nonce);
    m.resize(m.len() + 100, 0);
    m
}

/// The IKE_AUTH inner payloads: ID body, AUTH value, then filler.
fn ike_auth_payloads(auth: &[u8]) -> Vec<u8> {
    let mut p = ID_BODY.to_vec();
    p.extend_from_slice(auth);
    p.resize(IKE_AUTH_PAYLOADS, 0x2c);
    p
}

/// One full exchange between two in-process peers; returns the time each
/// side spent in its own cryptographic work.
fn handshake(suite: &Suite) -> (Duration, Duration) {
    let mut rng = OpensslRandom;
    let (mut initiator_time, mut responder_time) = (Duration::ZERO, Duration::ZERO);

    // Initiator: IKE_SA_INIT request.
    let t = Instant::now();
    let ke_i = KeyExchange::generate(suite.method).unwrap();
    let (ni, spi_i) = (nonce(), nonce()[..8].to_vec());
    let msg1 = ike_sa_init_message(ke_i.public_value(), &ni);
    initiator_time += t.elapsed();

    // Responder: IKE_SA_INIT response and its keys.
    let t = Instant::now();
    let (ke_r, shared_r) = respond(suite.method, ke_i.public_value()).unwrap();
    let (nr, spi_r) = (nonce(), nonce()[..8].to_vec());
    let msg2 = ike_sa_init_message(&ke_r, &nr);
    let keys_r = IkeSaKeys::from_ike_sa_init(
        suite.prf,
        shared_r.expose(),
        &ni,
        &nr,
        &spi_i,
        &spi_r,
        suite.transform,
    )
    .unwrap();
    let (mut out_r, in_r) = keys_r.sk_ciphers(suite.transform, false).unwrap();
    responder_time += t.elapsed();

    // Initiator: keys, AUTH, IKE_AUTH request.
    let t = Instant::now();
    let shared_i = ke_i.complete(&ke_r).unwrap();
    let keys_i = IkeSaKeys::from_ike_sa_init(
        suite.prf,
        shared_i.expose(),
        &ni,
        &nr,
        &spi_i,
        &spi_r,
        suite.transform,
    )
    .unwrap();
    let (mut out_i, in_i) = keys_i.sk_ciphers(suite.transform, true).unwrap();
    let octets_i = signed_octets(suite.prf, &msg1, &nr, keys_i.sk_pi.expose(), ID_BODY).unwrap();
    let auth_i = psk_auth(suite.prf, PSK, &octets_i).unwrap();
    let payloads = ike_auth_payloads(&auth_i);
    let header = aad(suite.transform.sealed_len(payloads.len()));
    let request = out_i.seal(&header, &payloads, &mut rng).unwrap();
    initiator_time += t.elapsed();

    // Responder: open, check AUTH, answer, Child SA keys.
    let t = Instant::now();
    let inner = in_r.open(&header, &request).unwrap();
    let auth_len = suite.prf.output_len();
    let peer_auth = &inner[ID_BODY.len()..ID_BODY.len() + auth_len];
    let octets = signed_octets(suite.prf, &msg1, &nr, keys_r.sk_pi.expose(), ID_BODY).unwrap();
    assert!(verify_psk_auth(suite.prf, PSK, &octets, peer_auth).unwrap());
    let octets_r = signed_octets(suite.prf, &msg2, &ni, keys_r.sk_pr.expose(), ID_BODY).unwrap();
    let auth_r = psk_auth(suite.prf, PSK, &octets_r).unwrap();
    let reply_payloads = ike_auth_payloads(&auth_r);
    let response = out_r.seal(&header, &reply_payloads, &mut rng).unwrap();
    let child_r = ChildSaKeys::derive(
        suite.prf,
        keys_r.sk_d.expose(),
        &[],
        &ni,
        &nr,
        suite.child_encr,
        suite.child_integ,
    )
    .unwrap();
    responder_time += t.elapsed();

    // Initiator: open, check AUTH, Child SA keys.
    let t = Instant::now();
    let inner = in_i.open(&header, &response).unwrap();
    let peer_auth = &inner[ID_BODY.len()..ID_BODY.len() + auth_len];
    let octets = signed_octets(suite.prf, &msg2, &ni, keys_i.sk_pr.expose(), ID_BODY).unwrap();
    assert!(verify_psk_auth(suite.prf, PSK, &octets, peer_auth).unwrap());
    let child_i = ChildSaKeys::derive(
        suite.prf,
        keys_i.sk_d.expose(),
        &[],
        &ni,
        &nr,
        suite.child_encr,
        suite.child_integ,
    )
    .unwrap();
    initiator_time += t.elapsed();

    assert_eq!(child_i.encr_r.expose(), child_r.encr_r.expose());
    (initiator_time, responder_time)
}

fn bench_handshake(suite: &Suite) {
    for _ in 0..3 {
        handshake(suite);
    }
    let budget = budget();
    let (mut initiator, mut responder, mut count) = (Duration::ZERO, Duration::ZERO, 0u32);
    let start = Instant::now();
    while count < 10 || start.elapsed() < budget * 2 {
        let (i, r) = handshake(suite);
        initiator += i;
        responder += r;
        count += 1;
    }
    report(
        &format!("handshake_initiator_{}", suite.name),
        count as f64 / initiator.as_secs_f64(),
    );
    report(
        &format!("handshake_responder_{}", suite.name),
        count as f64 / responder.as_secs_f64(),
    );
}

fn bench_primitives() {
    for (name, method) in [
        ("x25519", KeMethod::Curve25519),
        ("modp2048", KeMethod::Modp2048),
    ] {
        report(
            &format!("{name}_keygen"),
            measure(|| drop(black_box(KeyExchange::generate(method).unwrap()))),
        );
        let ours = KeyExchange::generate(method).unwrap();
        let peer = KeyExchange::generate(method)
            .unwrap()
            .public_value()
            .to_vec();
        report(
            &format!("{name}_derive"),
            measure(|| drop(black_box(ours.complete(&peer).unwrap()))),
        );
    }

    let gcm = SkTransform::new(
        EncrAlg::AesGcm {
            key_bits: 128,
            icv_len: 16,
        },
        None,
    )
    .unwrap();
    let cbc = SkTransform::new(
        EncrAlg::AesCbc { key_bits: 256 },
        Some(IntegAlg::HmacSha256_128),
    )
    .unwrap();
    for (name, transform) in [("aes128gcm16", gcm), ("aes256cbc_sha256", cbc)] {
        let keymat = vec![7u8; transform.encr_keymat_len()];
        let integ = vec![8u8; transform.integ_key_len()];
        let mut sender = SkCipher::new(transform, &keymat, &integ).unwrap();
        let receiver = SkCipher::new(transform, &keymat, &integ).unwrap();
        let payloads = vec![0x2cu8; IKE_AUTH_PAYLOADS];
        let header = aad(transform.sealed_len(payloads.len()));
        let mut rng = OpensslRandom;
        report(
            &format!("{name}_seal_{IKE_AUTH_PAYLOADS}"),
            measure(|| {
                drop(black_box(
                    sender.seal(&header, &payloads, &mut rng).unwrap(),
                ))
            }),
        );
        let body = sender.seal(&header, &payloads, &mut rng).unwrap();
        report(
            &format!("{name}_open_{IKE_AUTH_PAYLOADS}"),
            measure(|| drop(black_box(receiver.open(&header, &body).unwrap()))),
        );
    }

    let key = [9u8; 32];
    let data = [1u8; 64];
    report(
        "hmac_sha256_prf_64",
        measure(|| drop(black_box(PrfAlg::HmacSha256.prf(&key, &data).unwrap()))),
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us once quickly.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    bench_primitives();
    let suites = [
        Suite {
            name: "x25519_aes128gcm16",
            method: KeMethod::Curve25519,
            prf: PrfAlg::HmacSha256,
            transform: SkTransform::new(
                EncrAlg::AesGcm {
                    key_bits: 128,
                    icv_len: 16,
                },
                None,
            )
            .unwrap(),
            child_encr: EncrAlg::AesGcm {
                key_bits: 128,
                icv_len: 16,
            },
            child_integ: None,
        },
        Suite {
            name: "modp2048_aes256cbc_sha256",
            method: KeMethod::Modp2048,
            prf: PrfAlg::HmacSha256,
            transform: SkTransform::new(
                EncrAlg::AesCbc { key_bits: 256 },
                Some(IntegAlg::HmacSha256_128),
            )
            .unwrap(),
            child_encr: EncrAlg::AesCbc { key_bits: 256 },
            child_integ: Some(IntegAlg::HmacSha256_128),
        },
    ];
    for suite in &suites {
        bench_handshake(suite);
    }
}
