//! AUTH payload octets (RFC 7296 section 2.15).
//!
//! ikev2-proc builds the signed octets; ca-proc, which alone holds the
//! pre-shared keys and private keys, computes or checks the AUTH value.

use super::secret::ct_eq;
use super::{PrfAlg, Result, SecretBytes};

/// The fixed key pad of section 2.15 (17 ASCII octets, no terminating NUL).
pub const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// prf(SK_px, IDx'): `id_payload_body` is the ID payload without its 4-byte
/// generic header (ID Type, three reserved octets, identification data).
pub fn maced_id(prf: PrfAlg, sk_p: &[u8], id_payload_body: &[u8]) -> Result<SecretBytes> {
    prf.prf(sk_p, id_payload_body)
}

/// The octets a side signs or MACs (section 2.15):
/// `RealMessage | Nonce | prf(SK_px, IDx')`, where RealMessage is the
/// IKE_SA_INIT message this side sent, Nonce is the PEER's nonce data, and
/// SK_px / IDx' are this side's (SK_pi and IDi' for the initiator).
pub fn signed_octets(
    prf: PrfAlg,
    real_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_payload_body: &[u8],
) -> Result<Vec<u8>> {
    let maced = maced_id(prf, sk_p, id_payload_body)?;
    let mut octets = Vec::with_capacity(real_message.len() + peer_nonce.len() + maced.len());
    octets.extend_from_slice(real_message);
    octets.extend_from_slice(peer_nonce);
    octets.extend_from_slice(maced.expose());
    Ok(octets)
}

/// Shared-key AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>).
/// The same computation serves EAP with the MSK as the shared secret.
pub fn psk_auth(prf: PrfAlg, shared_secret: &[u8], signed_octets: &[u8]) -> Result<Vec<u8>> {
    let padded_key = prf.prf(shared_secret, KEY_PAD)?;
    Ok(prf
        .prf(padded_key.expose(), signed_octets)?
        .expose()
        .to_vec())
}

/// Checks a peer's shared-key AUTH in constant time.
pub fn verify_psk_auth(
    prf: PrfAlg,
    shared_secret: &[u8],
    signed_octets: &[u8],
    received_auth: &[u8],
) -> Result<bool> {
    let expected = psk_auth(prf, shared_secret, signed_octets)?;
    Ok(ct_eq(&expected, received_auth))
}
