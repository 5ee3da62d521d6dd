//! AUTH by signatures for public-key policies: ours made with
//! `private/local.key` (sent with our chain), the peer's checked against
//! its chain and identity, or its raw key from `pubkeys/`.

use iked_common::ipc::{CaPolicy, WireIdentity};

use super::{check_signed_octets_size, prf_for_signing, AuthService};
use crate::signature;
use crate::store::identity::{check_certificate_names, check_dstid, describe, name_text};

/// The largest signature AUTH data taken: an RSA-16384 signature with an
/// RFC 7427 AlgorithmIdentifier fits well below it.
pub(super) const MAX_SIGNATURE_AUTH_DATA: usize = 4096;

/// Our AUTH: the method, its data, and the chain for the CERT payloads.
pub(super) struct OurAuth {
    pub auth_method: u8,
    pub auth_data: Vec<u8>,
    pub certs: Vec<Vec<u8>>,
}

impl AuthService {
    /// Our AUTH method and data over `signed_octets`, and the chain to send
    /// in CERT payloads (empty for a raw key).
    pub(super) fn sign_with_key(
        &self,
        policy: &CaPolicy,
        prf: u16,
        signed_octets: &[u8],
        peer_hash_algorithms: &[u16],
        cert_authorities: &[Vec<u8>],
    ) -> Result<OurAuth, String> {
        // Only RFC 7296 §2.15 AUTH input: never a signature over whatever
        // ikev2 asks for.
        prf_for_signing(prf, signed_octets)?;
        let local = self.store.local.as_ref().ok_or_else(|| {
            format!(
                "no private key: {}/private/local.key was not loaded",
                self.store.dir
            )
        })?;
        if !cert_authorities.is_empty()
            && !local.chain.is_empty()
            && !self.peer_trusts_us(cert_authorities)
        {
            // RFC 7296 §3.7: a hint, not a rule; we send our chain anyway.
            log::info!(
                "policy {}: the peer's CERTREQ names no CA of ours; sending our chain anyway",
                policy.name
            );
        }
        let signed = signature::sign(&local.key, policy.auth, peer_hash_algorithms, signed_octets)
            .map_err(|e| format!("signing with {}: {e}", local.key_file))?;
        Ok(OurAuth {
            auth_method: signed.auth_method,
            auth_data: signed.auth_data,
            certs: local.chain_der.clone(),
        })
    }

    /// Whether one of the peer's CERTREQ hashes names a CA of ca/ that
    /// issued the top of our chain.
    fn peer_trusts_us(&self, cert_authorities: &[Vec<u8>]) -> bool {
        let Some(top) = self.store.local.as_ref().and_then(|l| l.chain.last()) else {
            return false;
        };
        self.store.trusted.iter().any(|ca| {
            cert_authorities.contains(&ca.spki_sha1)
                && (ca.cert.issued(top) == openssl::x509::X509VerifyResult::OK
                    || ca.cert.to_der().ok() == top.to_der().ok())
        })
    }

    /// Checks the peer's AUTH: `dstid`, then its chain and that the
    /// certificate names its ID (or its raw key by ID), then the signature
    /// with that key. The Ok value says who it was, for the log.
    pub(super) fn verify_signature(
        &self,
        policy: &CaPolicy,
        auth_method: u8,
        signed_octets: &[u8],
        auth_data: &[u8],
        peer_id: &WireIdentity,
        certs: &[Vec<u8>],
    ) -> Result<String, String> {
        check_signed_octets_size(signed_octets)?;
        if auth_data.len() > MAX_SIGNATURE_AUTH_DATA {
            return Err(format!(
                "AUTH data of {} octets, at most {MAX_SIGNATURE_AUTH_DATA} accepted",
                auth_data.len()
            ));
        }
        if let Some(dstid) = &policy.dstid {
            check_dstid(dstid, peer_id)?;
        }
        let (key, who) = if certs.is_empty() {
            let raw = self.store.raw_key_for(peer_id).ok_or_else(|| {
                format!(
                    "no certificate sent, and no raw public key in pubkeys/ for {}",
                    describe(peer_id)
                )
            })?;
            (raw.key.clone(), format!("the raw public key {}", raw.file))
        } else {
            let verified = self.store.verify_chain(certs)?;
            check_certificate_names(&verified.leaf, peer_id)?;
            let key = verified
                .leaf
                .public_key()
                .map_err(|_| "the certificate's public key is unusable".to_string())?;
            (
                key,
                format!(
                    "certificate {} (issuer {})",
                    name_text(verified.leaf.subject_name()),
                    name_text(verified.leaf.issuer_name())
                ),
            )
        };
        signature::verify(&key, policy.auth, auth_method, auth_data, signed_octets)
            .map_err(|e| format!("{e} ({who})"))?;
        Ok(who)
    }
}

#[cfg(test)]
mod tests;
