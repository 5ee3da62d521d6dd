//! TEMPORARY stand-in for h-sig's `signature` module (CONTRACT13.md API),
//! so the store glue compiles until h-sig's branch is merged; it signs and
//! verifies nothing. Removed at that merge.

use iked_common::config::SignatureAuth;
use openssl::pkey::{PKeyRef, Private, Public};

pub struct Signed {
    pub auth_method: u8,
    pub auth_data: Vec<u8>,
}

#[derive(Debug)]
pub struct SignatureError(pub String);

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn sign(
    _key: &PKeyRef<Private>,
    _wanted: SignatureAuth,
    _peer_hash_algorithms: &[u16],
    _octets: &[u8],
) -> Result<Signed, SignatureError> {
    Err(SignatureError("signature methods not merged yet".into()))
}

pub fn verify(
    _key: &PKeyRef<Public>,
    _accepted: SignatureAuth,
    _auth_method: u8,
    _auth_data: &[u8],
    _octets: &[u8],
) -> Result<(), SignatureError> {
    Err(SignatureError("signature methods not merged yet".into()))
}
