//! Key material: SKEYSEED and its successors (RFC 7296 §2.14, §2.18),
//! Child SA keys (§2.17), AUTH octets (§2.15), randomness, key exchanges.

use std::sync::atomic::{AtomicBool, Ordering};

use iked_common::crypto::keys::{ChildSaKeys, IkeSaKeys};
use iked_common::crypto::{auth, KeMethod, KeyExchange, PrfAlg};

use crate::engine::proposals::ChildSuite;
use crate::engine::Engine;

use crate::engine::state::*;

/// Nonce length we send: 32 octets, at least half the PRF key size of
/// every PRF we implement (RFC 7296 §2.10).
pub(super) const NONCE_LEN: usize = 32;

pub(super) fn lower_nonce<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    if a <= b {
        a
    } else {
        b
    }
}

/// The KEYMAT of a Child SA negotiated in an exchange with nonces Ni, Nr
/// (RFC 7296 §2.17).
pub(super) fn child_keys(
    sa: &IkeSa,
    suite: &ChildSuite,
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
) -> Option<ChildSaKeys> {
    let ike_suite = sa.suite?;
    let keys = sa.keys.as_ref()?;
    let shared: Vec<&[u8]> = shared.into_iter().collect();
    ChildSaKeys::derive(
        ike_suite.prf,
        keys.sk_d.expose(),
        &shared,
        ni,
        nr,
        suite.encr,
        suite.integ,
    )
    .ok()
}

/// Whether session keys are logged: only when `iked --log-keys` was given
/// at start (for interop debugging, iked(8)); never by verbosity, so that
/// `-vv` or a control client's `ikectl log debug` cannot reveal them
/// (security review M2). Set once, before the engine runs.
static KEY_LOG: AtomicBool = AtomicBool::new(false);

/// Turns key logging on for this process (`--log-keys`).
pub fn enable_key_log() {
    KEY_LOG.store(true, Ordering::Relaxed);
}

/// Whether [`enable_key_log`] was called.
pub fn key_log_enabled() -> bool {
    KEY_LOG.load(Ordering::Relaxed)
}

/// Logs a key, only with `--log-keys`, in the labels strongSwan uses, so
/// interop tests can compare derived keys byte for byte.
pub(super) fn trace_key(label: &str, key: &[u8]) {
    if key_log_enabled() {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        log::info!("key {label} {hex}");
    }
}

pub(super) fn trace_ike_keys(keys: &IkeSaKeys) {
    for (label, key) in [
        ("Sk_d secret", &keys.sk_d),
        ("Sk_ai secret", &keys.sk_ai),
        ("Sk_ar secret", &keys.sk_ar),
        ("Sk_ei secret", &keys.sk_ei),
        ("Sk_er secret", &keys.sk_er),
        ("Sk_pi secret", &keys.sk_pi),
        ("Sk_pr secret", &keys.sk_pr),
    ] {
        trace_key(label, key.expose());
    }
}

/// SKEYSEED and SK_* of IKE_SA_INIT (RFC 7296 §2.14).
pub(super) fn ike_sa_keys(
    prf: iked_common::crypto::PrfAlg,
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: &[u8],
    spi_r: &[u8],
    transform: iked_common::crypto::SkTransform,
) -> iked_common::crypto::Result<IkeSaKeys> {
    let seed = iked_common::crypto::keys::skeyseed(prf, ni, nr, shared)?;
    trace_key("SKEYSEED", seed.expose());
    let keys = IkeSaKeys::derive(prf, seed.expose(), ni, nr, spi_i, spi_r, transform)?;
    trace_ike_keys(&keys);
    Ok(keys)
}

/// Test-only views of an engine's state (keys included): never compiled
/// into the daemon.
/// Tests only: a private key from a xorshift stream, its top bit clear so
/// that it is below the group order (ECP) or the prime (MODP).
#[cfg(test)]
pub(super) fn test_private_key(stream: &mut u64, method: KeMethod) -> Vec<u8> {
    let len = match method {
        KeMethod::Ecp256 | KeMethod::Ecp384 | KeMethod::Ecp521 => method.public_value_len() / 2,
        _ => method.public_value_len(),
    };
    let mut key = vec![0u8; len];
    for byte in key.iter_mut() {
        *stream ^= *stream << 13;
        *stream ^= *stream >> 7;
        *stream ^= *stream << 17;
        *byte = (*stream >> 24) as u8;
    }
    key[0] &= 0x7f;
    if method == KeMethod::Ecp521 {
        key[0] &= 0x01;
    }
    key
}

impl Engine {
    /// Random bytes, or the random source's failure: never zeros in
    /// their place (a nonce or SPI nobody drew is worse than no exchange).
    pub(super) fn random_bytes(
        &mut self,
        len: usize,
    ) -> Result<Vec<u8>, iked_common::crypto::CryptoError> {
        let mut bytes = vec![0u8; len];
        self.rng.fill(&mut bytes).inspect_err(|e| {
            log::error!("cannot draw {len} random octets: {e}");
        })?;
        Ok(bytes)
    }

    pub(super) fn random_u64(&mut self) -> Result<u64, iked_common::crypto::CryptoError> {
        let mut bytes = [0u8; 8];
        self.rng.fill(&mut bytes).inspect_err(|e| {
            log::error!("cannot draw a random number: {e}");
        })?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// A fresh ephemeral key pair for `method`.
    pub(super) fn new_key_exchange(
        &mut self,
        method: KeMethod,
    ) -> Result<KeyExchange, iked_common::crypto::CryptoError> {
        // Tests: private keys from a stream seeded by the injected random
        // source (unless a test set its own seed), so that an engine test
        // runs the same bytes every time; OpenSSL's own generator would
        // make the keys, and all that is sealed with them, differ per run.
        #[cfg(test)]
        {
            if self.test_ke_stream.is_none() {
                self.test_ke_stream = Some(self.random_u64()?.max(1));
            }
            if let Some(stream) = self.test_ke_stream.as_mut() {
                return KeyExchange::from_private_key(method, &test_private_key(stream, method));
            }
        }
        KeyExchange::generate(method)
    }

    /// Responder side of a key exchange: our public value and the shared
    /// secret from the peer's public value.
    pub(super) fn respond_key_exchange(
        &mut self,
        method: KeMethod,
        peer_public: &[u8],
    ) -> Result<(Vec<u8>, iked_common::crypto::SecretBytes), iked_common::crypto::CryptoError> {
        let ours = self.new_key_exchange(method)?;
        let shared = ours.complete(peer_public)?;
        Ok((ours.public_value().to_vec(), shared))
    }

    /// A fresh SPI of ours, never zero and not in use. A collision among
    /// 64-bit random SPIs is rare; several in a row mean the random source
    /// repeats itself, which is a failure too (never a loop forever).
    pub(super) fn new_ike_spi(&mut self) -> Result<u64, iked_common::crypto::CryptoError> {
        for _ in 0..8 {
            let spi = self.random_u64()?;
            if spi != 0 && !self.ikes.contains_key(&spi) {
                return Ok(spi);
            }
        }
        log::error!("random source failed: it keeps drawing SPIs in use");
        Err(iked_common::crypto::CryptoError::Random)
    }
}

/// Whose AUTH payload is signed or checked (RFC 7296 §2.15).
#[derive(Debug, Clone, Copy)]
pub(super) enum Signer {
    Initiator,
    Responder,
}

/// The octets an AUTH payload signs (RFC 7296 §2.15): the initiator's
/// RealMessage1 | NonceRData | prf(SK_pi, IDi'), the responder's
/// RealMessage2 | NonceIData | prf(SK_pr, IDr').
pub(super) fn auth_octets(
    prf: PrfAlg,
    sa: &IkeSa,
    keys: &IkeSaKeys,
    signer: Signer,
    id_body: &[u8],
) -> Result<Vec<u8>, iked_common::crypto::CryptoError> {
    // An established SA has no handshake left: nothing to sign.
    let none: &[u8] = &[];
    let (request, response, ni, nr) =
        sa.handshake
            .as_deref()
            .map_or((none, none, none, none), |h| {
                (
                    &h.init_request[..],
                    &h.init_response[..],
                    &h.ni[..],
                    &h.nr[..],
                )
            });
    match signer {
        Signer::Initiator => auth::signed_octets(prf, request, nr, keys.sk_pi.expose(), id_body),
        Signer::Responder => auth::signed_octets(prf, response, ni, keys.sk_pr.expose(), id_body),
    }
}
