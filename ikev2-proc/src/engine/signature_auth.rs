//! What public-key authentication adds to IKE_SA_INIT and IKE_AUTH
//! (RFC 7296 §1.2, §3.6-3.8; RFC 7427): SIGNATURE_HASH_ALGORITHMS, CERTREQ
//! and CERT payloads, the AUTH methods a policy accepts, and ca's
//! certificate store summary (`CaToIkev2::Store`: our CERTREQ contents and
//! our identities). ca signs and verifies; the engine only carries bytes:
//! it parses no certificate and compares no DN.

use std::collections::HashMap;

use iked_common::config::{AuthSpec, Policy, SignatureAuth};
use iked_common::ipc::WireIdentity;
use iked_common::wire::{
    AuthMethod, CertEncoding, Certificate, CertificateRequest, IdType, Identity, Notify,
    NotifyType, Payload, CA_HASH_LEN,
};

use crate::engine::state::{Handshake, IkeSa};
use crate::engine::Engine;

/// The hash algorithms we announce in SIGNATURE_HASH_ALGORITHMS (RFC 7427
/// §4): the list ca signs and verifies with (SHA2-256/384/512 and Identity
/// for Ed25519, RFC 8420; no SHA-1, RFC 8247 §3.2).
pub(super) use iked_common::crypto::signature_hash::OUR_HASH_ALGORITHMS as ANNOUNCED_HASH_ALGORITHMS;

/// A peer's SIGNATURE_HASH_ALGORITHMS beyond this many entries are not
/// kept (the registry has nine values).
const MAX_PEER_HASH_ALGORITHMS: usize = 16;
/// CA hashes kept from a peer's CERTREQ payloads (a hint of which chain
/// to send; the rest is not needed to pick one).
const MAX_PEER_CERT_AUTHORITIES: usize = 64;
/// CERT payloads accepted in one IKE_AUTH message: an end entity and its
/// intermediates. More is refused (ca caps chains at the same length).
pub(super) const MAX_PEER_CERTS: usize = 16;

/// The latest `CaToIkev2::Store`: ca's certificate store as ikev2 needs it.
#[derive(Debug, Default)]
pub(crate) struct CaStore {
    /// SHA-1 of each trusted CA's SubjectPublicKeyInfo (our CERTREQ).
    pub cert_authorities: Vec<Vec<u8>>,
    /// Our identity per public-key policy.
    pub local_ids: HashMap<String, Identity>,
}

/// Whether `policy` authenticates with signatures.
pub(super) fn uses_public_keys(policy: &Policy) -> bool {
    matches!(policy.auth, AuthSpec::PublicKey(_))
}

/// The AUTH methods (RFC 7296 §3.8, RFC 4754, RFC 7427) a policy accepts
/// from its peer: 2 for a PSK, the signature methods of `ikeauth` else.
/// Whether the key fits the method is ca's to check.
pub(super) fn accepted_methods(auth: AuthSpec) -> &'static [u8] {
    match auth {
        AuthSpec::Psk => &[2],
        AuthSpec::PublicKey(SignatureAuth::Any) => &[1, 9, 10, 11, 14],
        AuthSpec::PublicKey(SignatureAuth::Rsa) => &[1],
        AuthSpec::PublicKey(SignatureAuth::Ecdsa256) => &[9],
        AuthSpec::PublicKey(SignatureAuth::Ecdsa384) => &[10],
        AuthSpec::PublicKey(SignatureAuth::Ecdsa521) => &[11],
        AuthSpec::PublicKey(SignatureAuth::Rfc7427) => &[14],
    }
}

/// The policy's authentication as iked.conf names it, for logs.
pub(super) fn auth_text(auth: AuthSpec) -> &'static str {
    match auth {
        AuthSpec::Psk => "psk",
        AuthSpec::PublicKey(SignatureAuth::Any) => "signature",
        AuthSpec::PublicKey(SignatureAuth::Rsa) => "rsa",
        AuthSpec::PublicKey(SignatureAuth::Ecdsa256) => "ecdsa256",
        AuthSpec::PublicKey(SignatureAuth::Ecdsa384) => "ecdsa384",
        AuthSpec::PublicKey(SignatureAuth::Ecdsa521) => "ecdsa521",
        AuthSpec::PublicKey(SignatureAuth::Rfc7427) => "rfc7427",
    }
}

/// None when the peer's AUTH method `method` fits the policy, else why
/// not: a PSK policy given a signature, a public-key policy given a PSK
/// or another method than its `ikeauth`.
pub(super) fn method_refused(policy: &Policy, method: u8) -> Option<String> {
    if accepted_methods(policy.auth).contains(&method) {
        return None;
    }
    Some(format!(
        "the peer's AUTH method is {method} ({}), policy {} is '{}' (accepts {})",
        AuthMethod::from_value(method),
        policy.name,
        auth_text(policy.auth),
        accepted_methods(policy.auth)
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// SIGNATURE_HASH_ALGORITHMS with the algorithms we support (RFC 7427 §4).
pub(super) fn hash_algorithms_notify() -> Payload {
    let data = ANNOUNCED_HASH_ALGORITHMS
        .iter()
        .flat_map(|h| h.to_be_bytes())
        .collect();
    Payload::Notify(Notify::new(NotifyType::SignatureHashAlgorithms, data))
}

/// What the peer's IKE_SA_INIT says about signatures, kept in the
/// handshake: its SIGNATURE_HASH_ALGORITHMS and, from the responder's
/// response (or the initiator's IKE_AUTH), its CERTREQ authorities.
pub(super) fn note_peer_hints(handshake: &mut Handshake, payloads: &[Payload]) {
    for payload in payloads {
        match payload {
            Payload::Notify(n) => {
                if let Some(algorithms) = n.signature_hash_algorithms() {
                    for algorithm in algorithms {
                        if handshake.peer_hash_algorithms.len() < MAX_PEER_HASH_ALGORITHMS
                            && !handshake.peer_hash_algorithms.contains(&algorithm)
                        {
                            handshake.peer_hash_algorithms.push(algorithm);
                        }
                    }
                }
            }
            Payload::CertificateRequest(request)
                if request.encoding == CertEncoding::X509Signature =>
            {
                for hash in request.authority_hashes() {
                    if handshake.peer_cert_authorities.len() < MAX_PEER_CERT_AUTHORITIES
                        && !handshake.peer_cert_authorities.iter().any(|h| h == hash)
                    {
                        handshake.peer_cert_authorities.push(hash.to_vec());
                    }
                }
            }
            Payload::CertificateRequest(request) => log::debug!(
                "CERTREQ of encoding {} ignored (only X.509 signature, 4)",
                request.encoding
            ),
            _ => {}
        }
    }
}

/// The peer's CERT payloads of X.509 encoding (4), in order, for ca;
/// others are ignored (RFC 7296 §3.6 lets us); more than
/// [`MAX_PEER_CERTS`] is an error (the message's AUTH fails).
pub(super) fn peer_certificates(payloads: &[Payload]) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    for payload in payloads {
        let Payload::Certificate(cert) = payload else {
            continue;
        };
        if cert.encoding != CertEncoding::X509Signature {
            log::debug!(
                "CERT of encoding {} ignored (only X.509 signature, 4)",
                cert.encoding
            );
            continue;
        }
        if certs.len() == MAX_PEER_CERTS {
            return Err(format!(
                "more than {MAX_PEER_CERTS} CERT payloads (a chain that long is refused)"
            ));
        }
        certs.push(cert.data.clone());
    }
    Ok(certs)
}

/// Our chain from ca as CERT payloads (X.509, encoding 4), end entity first.
pub(super) fn cert_payloads(certs: Vec<Vec<u8>>) -> impl Iterator<Item = Payload> {
    certs.into_iter().map(|data| {
        Payload::Certificate(Certificate {
            encoding: CertEncoding::X509Signature,
            data,
        })
    })
}

/// The ID payload of a wire identity from ca (RFC 7296 §3.5).
pub(super) fn identity_from_wire(id: &WireIdentity) -> Option<Identity> {
    let body = id.body.clone();
    Some(match IdType::from_value(id.id_type) {
        IdType::Ipv4Addr => Identity::Ipv4(<[u8; 4]>::try_from(body.as_slice()).ok()?.into()),
        IdType::Ipv6Addr => Identity::Ipv6(<[u8; 16]>::try_from(body.as_slice()).ok()?.into()),
        IdType::Fqdn => Identity::Fqdn(String::from_utf8(body).ok()?),
        IdType::Rfc822Addr => Identity::Rfc822(String::from_utf8(body).ok()?),
        IdType::DerAsn1Dn if !body.is_empty() => Identity::DerAsn1Dn(body),
        IdType::KeyId if !body.is_empty() => Identity::KeyId(body),
        _ => return None,
    })
}

/// The peer's AUTH method checked against the policy and, under a
/// public-key policy, its certificates for ca; the reason to fail
/// authentication otherwise.
pub(super) fn peer_auth_inputs(
    policy: &Policy,
    method: u8,
    payloads: &[Payload],
) -> Result<Vec<Vec<u8>>, String> {
    if let Some(why) = method_refused(policy, method) {
        return Err(why);
    }
    if !uses_public_keys(policy) {
        return Ok(Vec::new());
    }
    peer_certificates(payloads)
}

impl Engine {
    /// For SignAuth: the peer's SIGNATURE_HASH_ALGORITHMS and CERTREQ
    /// authorities, under a public-key policy (nothing for a PSK).
    pub(super) fn signature_hints(&self, sa: &IkeSa) -> (Vec<u16>, Vec<Vec<u8>>) {
        match (
            self.policy(&sa.policy).is_some_and(uses_public_keys),
            sa.handshake.as_deref(),
        ) {
            (true, Some(h)) => (
                h.peer_hash_algorithms.clone(),
                h.peer_cert_authorities.clone(),
            ),
            _ => (Vec::new(), Vec::new()),
        }
    }

    /// ca's store summary, sent after each configuration it applied.
    pub(super) fn on_ca_store(
        &mut self,
        generation: u64,
        cert_authorities: Vec<Vec<u8>>,
        local_ids: Vec<(String, WireIdentity)>,
    ) {
        let mut ids = HashMap::new();
        for (policy, id) in local_ids {
            match identity_from_wire(&id) {
                Some(identity) => {
                    ids.insert(policy, identity);
                }
                None => log::warn!(
                    "unusable identity of type {} from ca for policy {policy} ignored",
                    id.id_type
                ),
            }
        }
        let authorities: Vec<Vec<u8>> = cert_authorities
            .into_iter()
            .filter(|h| h.len() == CA_HASH_LEN)
            .collect();
        log::info!(
            "certificate store from ca for configuration {generation}: {} trusted CAs, identities for {} policies",
            authorities.len(),
            ids.len()
        );
        self.ca_store = Some(CaStore {
            cert_authorities: authorities,
            local_ids: ids,
        });
    }

    /// Our CERTREQ (RFC 7296 §3.7): the hashes of the CAs we trust, when
    /// we have any.
    pub(super) fn our_certreq(&self) -> Option<Payload> {
        let store = self.ca_store.as_ref()?;
        if store.cert_authorities.is_empty() {
            return None;
        }
        Some(Payload::CertificateRequest(CertificateRequest {
            encoding: CertEncoding::X509Signature,
            authorities: store.cert_authorities.concat(),
        }))
    }

    /// What our IKE_SA_INIT (request or response) adds when a public-key
    /// policy may apply: SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) and, in a
    /// response, our CERTREQ (RFC 7296 §1.2). Nothing for PSK policies.
    pub(super) fn sa_init_signature_payloads(&self, pubkey: bool, response: bool) -> Vec<Payload> {
        if !pubkey {
            return Vec::new();
        }
        let mut payloads = Vec::new();
        if response {
            payloads.extend(self.our_certreq());
        }
        payloads.push(hash_algorithms_notify());
        payloads
    }

    /// Our identity under a public-key policy: ca's (srcid, or our
    /// certificate's subject DN), else srcid. An error when ca has not sent
    /// its store yet (without it there is no chain to offer and no
    /// CERTREQ), or when its store names no identity for the policy (a
    /// reloaded configuration whose store is still coming, or no
    /// certificate and no srcid).
    pub(super) fn signing_identity(
        &self,
        policy: &Policy,
        local: std::net::IpAddr,
    ) -> Result<Identity, String> {
        let Some(store) = self.ca_store.as_ref() else {
            return Err(format!(
                "policy {} uses public keys, and ca has not sent its certificate store yet",
                policy.name
            ));
        };
        match (store.local_ids.get(&policy.name), policy.srcid.as_ref()) {
            (Some(id), _) => Ok(id.clone()),
            (None, Some(_)) => Ok(Engine::local_identity(Some(policy), local)),
            (None, None) => Err(format!(
                "ca's certificate store names no identity of ours for policy {} \
                 (no certificate in certs/, and no srcid)",
                policy.name
            )),
        }
    }
}
