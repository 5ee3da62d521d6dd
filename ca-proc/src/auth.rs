//! AUTH payloads, computed and checked here because only this process
//! holds the keys: pre-shared keys (RFC 7296 §2.15) and, for public-key
//! policies, signatures with `private/local.key` and the peer's chain or
//! raw key checked against the certificate store ([`pubkey`]). ikev2 sends
//! the signed octets; no key ever leaves.

mod pubkey;

use std::collections::HashMap;
use std::time::Instant;

use iked_common::config::{PreSharedKey, UserCredential};
use iked_common::crypto::auth::{psk_auth, verify_psk_auth};
use iked_common::crypto::random::RandomSource;
use iked_common::crypto::PrfAlg;
use iked_common::ipc::{CaEapPolicy, CaPolicy, CaToIkev2, CertStoreFiles, Ikev2ToCa};

use crate::eap::{EapService, MskUse};
use crate::store::CertStore;

/// Shared Key Message Integrity Code (RFC 7296 §3.8).
pub const AUTH_METHOD_SHARED_KEY: u8 = 2;

/// Signed octets are an IKE_SA_INIT message, a nonce and a PRF output: far
/// below this. Larger requests are refused, not computed.
const MAX_SIGNED_OCTETS: usize = 64 * 1024;
/// The longest PRF output (HMAC-SHA2-512).
const MAX_AUTH_DATA: usize = 64;

#[derive(Default)]
pub struct AuthService {
    psks: HashMap<String, PreSharedKey>,
    /// The public-key policies by name.
    pubkey_policies: HashMap<String, CaPolicy>,
    /// The store in force: the last one that loaded.
    store: CertStore,
    /// The configuration generation of the store in force, and why the
    /// last one offered was refused (None when it loaded).
    store_generation: u64,
    store_refusal: Option<String>,
    /// EAP conversations, the users' NT hashes and the MSKs (RFC 7296 §2.16).
    eap: EapService,
}

impl AuthService {
    /// Replaces the keys with a new configuration's.
    pub fn set_keys(&mut self, psks: Vec<(String, PreSharedKey)>) {
        self.psks = psks.into_iter().collect();
    }

    pub fn key_count(&self) -> usize {
        self.psks.len()
    }

    /// Applies a configuration: its keys and policies always, its store
    /// only if every file parses and checks; else the store in force
    /// stays, and the refusal (naming the file) is returned and logged.
    pub fn apply(
        &mut self,
        generation: u64,
        psks: Vec<(String, PreSharedKey)>,
        pubkey_policies: Vec<CaPolicy>,
        files: &CertStoreFiles,
    ) -> Result<(), String> {
        self.set_keys(psks);
        self.pubkey_policies = pubkey_policies
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        match CertStore::load(files) {
            Ok(store) => {
                self.store = store;
                self.store_generation = generation;
                self.store_refusal = None;
                log::info!("{}", self.store_summary());
                Ok(())
            }
            Err(reason) => {
                // Generation 0: no store was ever in force (the start).
                let reason = if self.store_generation == 0 {
                    format!("certificate store of configuration {generation} refused: {reason}")
                } else {
                    format!(
                        "certificate store of configuration {generation} refused, keeping the \
                         previous one (of configuration {}): {reason}",
                        self.store_generation
                    )
                };
                log::error!("{reason}");
                self.store_refusal = Some(reason.clone());
                Err(reason)
            }
        }
    }

    /// Applies a configuration's EAP policies and `user` lines (replaced
    /// at once; see [`EapService::apply`]).
    pub fn apply_eap(&mut self, policies: Vec<CaEapPolicy>, users: Vec<UserCredential>) {
        self.eap.apply(policies, users);
    }

    /// Replaces the randomness of EAP (challenges, Identifiers).
    pub fn set_eap_random(&mut self, random: Box<dyn RandomSource + Send>) {
        self.eap.set_random(random);
    }

    pub fn eap(&self) -> &EapService {
        &self.eap
    }

    /// "certificate store /etc/iked: 2 CAs, our certificate CN=..., 1 CRL, 0 raw keys"
    pub fn store_summary(&self) -> String {
        let s = &self.store;
        let ours = match &s.local {
            None => "no private key".to_string(),
            Some(l) => match l.chain.first() {
                Some(leaf) => format!(
                    "our certificate {} (chain of {})",
                    crate::store::identity::name_text(leaf.subject_name()),
                    l.chain.len()
                ),
                None => "our raw key (no certificate)".to_string(),
            },
        };
        format!(
            "certificate store {}: {} trusted CAs, {ours}, {} CRLs, {} raw public keys",
            if s.dir.is_empty() { "(none)" } else { &s.dir },
            s.trusted.len(),
            s.crls.len(),
            s.raw_keys.len()
        )
    }

    pub fn store(&self) -> &CertStore {
        &self.store
    }

    /// The configuration generation the store in force came with.
    pub fn store_generation(&self) -> u64 {
        self.store_generation
    }

    /// Why the last store offered was refused, if it was.
    pub fn store_refusal(&self) -> Option<&str> {
        self.store_refusal.as_deref()
    }

    /// What ikev2 is told after each configuration (RFC 7296 §3.7: our
    /// CERTREQ contents; our ID per public-key policy).
    pub fn store_announcement(&self, generation: u64) -> CaToIkev2 {
        let mut local_ids = Vec::new();
        let mut names: Vec<&String> = self.pubkey_policies.keys().collect();
        names.sort();
        for name in names {
            let policy = &self.pubkey_policies[name];
            match self.store.local_identity(policy.srcid.as_ref()) {
                Ok(id) => local_ids.push((name.clone(), id)),
                Err(e) => log::warn!("policy {name}: no identity of ours: {e}"),
            }
        }
        CaToIkev2::Store {
            generation,
            cert_authorities: self.store.cert_authorities(),
            local_ids,
        }
    }

    /// One request of ikev2; None for those that take no answer.
    pub fn handle_message(&mut self, request: Ikev2ToCa) -> Option<CaToIkev2> {
        self.handle_message_at(Instant::now(), request)
    }

    /// [`AuthService::handle_message`] at `now` (EAP sessions expire
    /// against it: tests pass their own clock).
    pub fn handle_message_at(&mut self, now: Instant, request: Ikev2ToCa) -> Option<CaToIkev2> {
        match request {
            Ikev2ToCa::EapEnd { session } => {
                self.eap.end(session);
                None
            }
            request => Some(self.handle_at(now, request)),
        }
    }

    pub fn handle(&mut self, request: Ikev2ToCa) -> CaToIkev2 {
        self.handle_at(Instant::now(), request)
    }

    pub fn handle_at(&mut self, now: Instant, request: Ikev2ToCa) -> CaToIkev2 {
        match request {
            Ikev2ToCa::Ping { id } => CaToIkev2::Pong { id },
            Ikev2ToCa::Eap {
                id,
                session,
                policy,
                role,
                message,
            } => CaToIkev2::Eap {
                id,
                session,
                step: self.eap.step(now, session, &policy, role, &message),
            },
            Ikev2ToCa::EapEnd { session } => {
                // handle_message answers nothing; a direct call is told.
                self.eap.end(session);
                CaToIkev2::Failed {
                    id: session,
                    reason: "EapEnd takes no answer".into(),
                }
            }
            // The AUTH payloads after EAP (RFC 7296 §2.16): the session's
            // MSK is the key, never the policy's PSK or certificate.
            Ikev2ToCa::SignAuth {
                id,
                policy,
                prf,
                signed_octets,
                eap_session: Some(session),
                ..
            } => {
                let signed = self.sign_with_msk(now, session, &policy, prf, &signed_octets);
                SharedKey::Msk.signed_reply(id, &policy, signed)
            }
            Ikev2ToCa::VerifyAuth {
                id,
                policy,
                prf,
                auth_method,
                signed_octets,
                auth_data,
                eap_session: Some(session),
                ..
            } => {
                let checked = self.verify_with_msk(
                    now,
                    session,
                    &policy,
                    prf,
                    auth_method,
                    &signed_octets,
                    &auth_data,
                );
                SharedKey::Msk.verified_reply(id, &policy, checked)
            }
            Ikev2ToCa::SignAuth {
                id,
                policy,
                prf,
                signed_octets,
                peer_hash_algorithms,
                cert_authorities,
                ..
            } if self.pubkey_policies.contains_key(&policy) => {
                match self.sign_with_key(
                    &self.pubkey_policies[&policy],
                    prf,
                    &signed_octets,
                    &peer_hash_algorithms,
                    &cert_authorities,
                ) {
                    Ok(ours) => CaToIkev2::Auth {
                        id,
                        auth_method: ours.auth_method,
                        auth_data: ours.auth_data,
                        certs: ours.certs,
                    },
                    Err(reason) => {
                        log::warn!("AUTH for policy {policy}: {reason}");
                        CaToIkev2::Failed { id, reason }
                    }
                }
            }
            Ikev2ToCa::VerifyAuth {
                id,
                policy,
                auth_method,
                signed_octets,
                auth_data,
                peer_id,
                certs,
                ..
            } if self.pubkey_policies.contains_key(&policy) => {
                match self.verify_signature(
                    &self.pubkey_policies[&policy],
                    auth_method,
                    &signed_octets,
                    &auth_data,
                    &peer_id,
                    &certs,
                ) {
                    Ok(who) => {
                        log::info!("policy {policy}: peer authenticated by {who}");
                        CaToIkev2::Verified {
                            id,
                            ok: true,
                            reason: String::new(),
                        }
                    }
                    Err(reason) => {
                        log::warn!("policy {policy}: peer refused: {reason}");
                        CaToIkev2::Verified {
                            id,
                            ok: false,
                            reason,
                        }
                    }
                }
            }
            Ikev2ToCa::SignAuth {
                id,
                policy,
                prf,
                signed_octets,
                ..
            } => {
                let signed = self.sign(&policy, prf, &signed_octets);
                SharedKey::Psk.signed_reply(id, &policy, signed)
            }
            Ikev2ToCa::VerifyAuth {
                id,
                policy,
                prf,
                auth_method,
                signed_octets,
                auth_data,
                ..
            } => {
                let checked = self.verify(&policy, prf, auth_method, &signed_octets, &auth_data);
                SharedKey::Psk.verified_reply(id, &policy, checked)
            }
        }
    }

    /// Our AUTH after EAP: prf(prf(MSK, "Key Pad for IKEv2"), octets)
    /// (RFC 7296 §2.15, §2.16), over octets shaped as AUTH input only.
    fn sign_with_msk(
        &mut self,
        now: Instant,
        session: u64,
        policy: &str,
        prf: u16,
        signed_octets: &[u8],
    ) -> Result<Vec<u8>, String> {
        let prf = prf_for_signing(prf, signed_octets)?;
        self.eap
            .with_msk(now, session, policy, MskUse::Sign, |msk| {
                psk_auth(prf, msk, signed_octets)
            })?
            .map_err(|e| e.to_string())
    }

    /// Checks the peer's AUTH after EAP against the session's MSK.
    #[allow(clippy::too_many_arguments)]
    fn verify_with_msk(
        &mut self,
        now: Instant,
        session: u64,
        policy: &str,
        prf: u16,
        auth_method: u8,
        signed_octets: &[u8],
        auth_data: &[u8],
    ) -> Result<bool, String> {
        let prf = prf_for(prf, signed_octets)?;
        // Taken (and so used up) even when the AUTH is malformed: a peer
        // gets one try per EAP authentication.
        let well_formed = auth_method == AUTH_METHOD_SHARED_KEY && auth_data.len() <= MAX_AUTH_DATA;
        self.eap
            .with_msk(now, session, policy, MskUse::Verify, |msk| {
                if well_formed {
                    verify_psk_auth(prf, msk, signed_octets, auth_data)
                } else {
                    Ok(false)
                }
            })?
            .map_err(|e| e.to_string())
    }

    fn psk(&self, policy: &str) -> Result<&PreSharedKey, String> {
        self.psks
            .get(policy)
            .ok_or_else(|| format!("no pre-shared key for policy {policy}"))
    }

    fn sign(&self, policy: &str, prf: u16, signed_octets: &[u8]) -> Result<Vec<u8>, String> {
        let key = self.psk(policy)?;
        let prf = prf_for_signing(prf, signed_octets)?;
        psk_auth(prf, key.expose(), signed_octets).map_err(|e| e.to_string())
    }

    fn verify(
        &self,
        policy: &str,
        prf: u16,
        auth_method: u8,
        signed_octets: &[u8],
        auth_data: &[u8],
    ) -> Result<bool, String> {
        let key = self.psk(policy)?;
        let prf = prf_for(prf, signed_octets)?;
        if auth_method != AUTH_METHOD_SHARED_KEY {
            // The policy says PSK: any other method is a failed authentication.
            return Ok(false);
        }
        if auth_data.len() > MAX_AUTH_DATA {
            return Ok(false);
        }
        verify_psk_auth(prf, key.expose(), signed_octets, auth_data).map_err(|e| e.to_string())
    }

    /// A reload's commit (ca-proc/src/reload.rs): keys, policies and a
    /// store already parsed and checked at prepare, all put in force.
    pub fn install(
        &mut self,
        generation: u64,
        psks: Vec<(String, PreSharedKey)>,
        pubkey_policies: Vec<CaPolicy>,
        store: CertStore,
    ) {
        self.set_keys(psks);
        self.pubkey_policies = pubkey_policies
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        self.store = store;
        self.store_generation = generation;
        self.store_refusal = None;
        log::info!("{}", self.store_summary());
    }
}

/// The PRF ikev2 names, for `signed_octets` no larger than the cap.
pub(super) fn prf_for(prf: u16, signed_octets: &[u8]) -> Result<PrfAlg, String> {
    let prf = PrfAlg::from_iana(prf).ok_or_else(|| format!("unsupported PRF {prf}"))?;
    check_signed_octets_size(signed_octets)?;
    Ok(prf)
}

/// Refuses signed octets above `MAX_SIGNED_OCTETS`.
pub(super) fn check_signed_octets_size(signed_octets: &[u8]) -> Result<(), String> {
    if signed_octets.len() > MAX_SIGNED_OCTETS {
        return Err(format!(
            "{} signed octets exceed the {MAX_SIGNED_OCTETS} cap",
            signed_octets.len()
        ));
    }
    Ok(())
}

/// [`prf_for`], and only for octets shaped as RFC 7296 §2.15 AUTH input:
/// we never sign or MAC whatever ikev2 asks for.
pub(super) fn prf_for_signing(prf: u16, signed_octets: &[u8]) -> Result<PrfAlg, String> {
    let prf = prf_for(prf, signed_octets)?;
    crate::signed_octets::check_auth_input(signed_octets, prf.output_len())?;
    Ok(prf)
}

/// The shared key of an AUTH payload (RFC 7296 §2.15): the policy's PSK,
/// or after EAP the session's MSK (§2.16). The answers to ikev2 are the
/// same for both; only what the log says differs.
#[derive(Clone, Copy)]
enum SharedKey {
    Psk,
    Msk,
}

impl SharedKey {
    /// The answer to a SignAuth.
    fn signed_reply(self, id: u64, policy: &str, signed: Result<Vec<u8>, String>) -> CaToIkev2 {
        match signed {
            Ok(auth_data) => CaToIkev2::Auth {
                id,
                auth_method: AUTH_METHOD_SHARED_KEY,
                auth_data,
                certs: Vec::new(),
            },
            Err(reason) => {
                let what = match self {
                    SharedKey::Psk => "AUTH",
                    SharedKey::Msk => "MSK AUTH",
                };
                log::warn!("{what} for policy {policy}: {reason}");
                CaToIkev2::Failed { id, reason }
            }
        }
    }

    /// The answer to a VerifyAuth: a mismatch is a refused peer, an error
    /// a failed request.
    fn verified_reply(self, id: u64, policy: &str, checked: Result<bool, String>) -> CaToIkev2 {
        match checked {
            Ok(ok) => {
                let reason = if ok {
                    String::new()
                } else {
                    match self {
                        SharedKey::Psk => "the peer's AUTH does not match our pre-shared key",
                        SharedKey::Msk => {
                            "the peer's AUTH does not match the MSK of its EAP authentication"
                        }
                    }
                    .to_string()
                };
                if !ok {
                    let level = match self {
                        SharedKey::Psk => log::Level::Info,
                        SharedKey::Msk => log::Level::Warn,
                    };
                    log::log!(level, "policy {policy}: {reason}");
                }
                CaToIkev2::Verified { id, ok, reason }
            }
            Err(reason) => {
                let what = match self {
                    SharedKey::Psk => "AUTH",
                    SharedKey::Msk => "the MSK AUTH",
                };
                log::warn!("checking {what} for policy {policy}: {reason}");
                CaToIkev2::Failed { id, reason }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iked_common::ipc::WireIdentity;

    fn service() -> AuthService {
        let mut s = AuthService::default();
        s.set_keys(vec![(
            "p".into(),
            PreSharedKey::new(b"interop-lab-psk-0123456789".to_vec()),
        )]);
        s
    }

    #[test]
    fn sign_then_verify_round_trips_and_a_wrong_auth_fails() {
        let mut s = service();
        let octets = crate::signed_octets::tests::auth_input(0x08, 32, 32);
        let CaToIkev2::Auth {
            auth_data,
            auth_method,
            id,
            ..
        } = s.handle(Ikev2ToCa::SignAuth {
            id: 7,
            policy: "p".into(),
            prf: 5,
            signed_octets: octets.clone(),
            peer_hash_algorithms: Vec::new(),
            cert_authorities: Vec::new(),
            eap_session: None,
        })
        else {
            panic!("no AUTH");
        };
        assert_eq!((id, auth_method, auth_data.len()), (7, 2, 32));
        // Independent computation: prf(prf(K, "Key Pad for IKEv2"), octets).
        let pad = PrfAlg::HmacSha256
            .prf(b"interop-lab-psk-0123456789", b"Key Pad for IKEv2")
            .unwrap();
        let expected = PrfAlg::HmacSha256.prf(pad.expose(), &octets).unwrap();
        assert_eq!(auth_data, expected.expose());

        let mut verify = |data: Vec<u8>, method: u8| {
            s.handle(Ikev2ToCa::VerifyAuth {
                id: 8,
                policy: "p".into(),
                prf: 5,
                auth_method: method,
                signed_octets: octets.clone(),
                auth_data: data,
                peer_id: WireIdentity {
                    id_type: 2,
                    body: b"b.ike.test".to_vec(),
                },
                certs: Vec::new(),
                eap_session: None,
            })
        };
        assert_eq!(
            verify(auth_data.clone(), 2),
            CaToIkev2::Verified {
                id: 8,
                ok: true,
                reason: String::new()
            }
        );
        let mut flipped = auth_data.clone();
        flipped[0] ^= 1;
        assert!(matches!(
            verify(flipped, 2),
            CaToIkev2::Verified {
                id: 8,
                ok: false,
                ..
            }
        ));
        assert!(matches!(
            verify(auth_data.clone(), 1),
            CaToIkev2::Verified {
                id: 8,
                ok: false,
                ..
            }
        ));
        assert!(matches!(
            verify(vec![0; 4096], 2),
            CaToIkev2::Verified {
                id: 8,
                ok: false,
                ..
            }
        ));
    }

    #[test]
    fn unknown_policy_prf_and_oversized_input_are_refused() {
        let mut s = service();
        let mut sign = |policy: &str, prf: u16, len: usize| {
            s.handle(Ikev2ToCa::SignAuth {
                id: 1,
                policy: policy.into(),
                prf,
                signed_octets: vec![0; len],
                peer_hash_algorithms: Vec::new(),
                cert_authorities: Vec::new(),
                eap_session: None,
            })
        };
        assert!(
            matches!(sign("nope", 5, 10), CaToIkev2::Failed { ref reason, .. } if reason.contains("no pre-shared key"))
        );
        assert!(
            matches!(sign("p", 99, 10), CaToIkev2::Failed { ref reason, .. } if reason.contains("PRF"))
        );
        assert!(matches!(
            sign("p", 5, MAX_SIGNED_OCTETS + 1),
            CaToIkev2::Failed { .. }
        ));
    }

    #[test]
    fn octets_that_are_not_auth_input_are_not_signed() {
        let mut s = service();
        let mut sign = |octets: Vec<u8>| {
            s.handle(Ikev2ToCa::SignAuth {
                id: 3,
                policy: "p".into(),
                prf: 5,
                signed_octets: octets,
                peer_hash_algorithms: Vec::new(),
                cert_authorities: Vec::new(),
                eap_session: None,
            })
        };
        let good = crate::signed_octets::tests::auth_input(0x20, 32, 32);
        assert!(matches!(sign(good.clone()), CaToIkev2::Auth { id: 3, .. }));
        let reply = sign(b"real message | nonce | prf(SK_p, ID')".to_vec());
        let CaToIkev2::Failed { id: 3, reason } = reply else {
            panic!("signed arbitrary octets: {reply:?}");
        };
        assert!(reason.starts_with("refusing to sign: "), "{reason}");
        // An IKE_AUTH message (exchange 35) where IKE_SA_INIT belongs.
        let mut auth = good;
        auth[18] = 35;
        assert!(matches!(sign(auth), CaToIkev2::Failed { ref reason, .. }
            if reason.contains("exchange type 35, not IKE_SA_INIT (34)")));
    }
}
