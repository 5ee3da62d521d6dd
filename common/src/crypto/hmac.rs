//! HMAC through OpenSSL 3's EVP_MAC interface.
//!
//! Why not `PKey::hmac` + `Signer` from the openssl crate: on this machine
//! (OpenSSL 3.0) that path costs about 10 us per HMAC, most of it in
//! setting up the legacy key type for every signature; EVP_MAC costs 2.1 us
//! with a fresh key and 1.1 us when a keyed context is reused (64-byte
//! input; `openssl speed -hmac sha256` does it in 0.45 us). A handshake
//! computes about 15 HMACs per side, so this halves its cost. The openssl
//! crate has no safe EVP_MAC binding, hence the FFI below, kept to this file.

use std::ffi::{c_char, CStr};

use openssl::error::ErrorStack;
use openssl_sys as ffi;

extern "C" {
    // Exported by libcrypto 3.x but not declared by openssl-sys 0.9.
    fn OSSL_PARAM_construct_utf8_string(
        key: *const c_char,
        buf: *mut c_char,
        bsize: usize,
    ) -> ffi::OSSL_PARAM;
}

/// The hash functions HMAC is used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HmacDigest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HmacDigest {
    fn name(self) -> &'static CStr {
        match self {
            HmacDigest::Sha1 => c"SHA1",
            HmacDigest::Sha256 => c"SHA256",
            HmacDigest::Sha384 => c"SHA384",
            HmacDigest::Sha512 => c"SHA512",
        }
    }

    pub(crate) const fn output_len(self) -> usize {
        match self {
            HmacDigest::Sha1 => 20,
            HmacDigest::Sha256 => 32,
            HmacDigest::Sha384 => 48,
            HmacDigest::Sha512 => 64,
        }
    }
}

/// The fetched HMAC implementation, shared by all threads. EVP_MAC method
/// objects are immutable and reference-counted, safe to use concurrently.
struct MacMethod(*mut ffi::EVP_MAC);
// SAFETY: see above; the pointer is never freed once stored.
unsafe impl Send for MacMethod {}
unsafe impl Sync for MacMethod {}

static HMAC_METHOD: std::sync::OnceLock<MacMethod> = std::sync::OnceLock::new();

fn hmac_method() -> Result<*mut ffi::EVP_MAC, ErrorStack> {
    if let Some(method) = HMAC_METHOD.get() {
        return Ok(method.0);
    }
    openssl::init();
    // SAFETY: valid NUL-terminated name; null library context and properties mean defaults.
    let fetched =
        unsafe { ffi::EVP_MAC_fetch(std::ptr::null_mut(), c"HMAC".as_ptr(), std::ptr::null()) };
    if fetched.is_null() {
        return Err(ErrorStack::get());
    }
    if let Err(MacMethod(lost)) = HMAC_METHOD.set(MacMethod(fetched)) {
        // Another thread stored its fetch first: release ours.
        // SAFETY: `lost` is our own reference from EVP_MAC_fetch.
        unsafe { ffi::EVP_MAC_free(lost) };
    }
    Ok(HMAC_METHOD.get().map_or(fetched, |method| method.0))
}

/// An HMAC key: an EVP_MAC context initialised with digest and key, copied
/// for each MAC so the key schedule is computed once. OpenSSL cleanses the
/// key when the context is freed.
pub(crate) struct HmacKey {
    ctx: *mut ffi::EVP_MAC_CTX,
    digest: HmacDigest,
}

// SAFETY: the context is owned exclusively by this value and only read
// (duplicated) through `&self`; moving it between threads is fine. It is
// not `Sync`, so no two threads duplicate it at the same time.
unsafe impl Send for HmacKey {}

/// Frees an EVP_MAC context on every exit path.
struct CtxGuard(*mut ffi::EVP_MAC_CTX);

impl Drop for CtxGuard {
    fn drop(&mut self) {
        // SAFETY: the pointer came from EVP_MAC_CTX_new/dup and is freed once.
        unsafe { ffi::EVP_MAC_CTX_free(self.0) };
    }
}

impl HmacKey {
    pub(crate) fn new(digest: HmacDigest, key: &[u8]) -> Result<Self, ErrorStack> {
        let method = hmac_method()?;
        // SAFETY: `method` is a live fetched EVP_MAC.
        let ctx = unsafe { ffi::EVP_MAC_CTX_new(method) };
        if ctx.is_null() {
            return Err(ErrorStack::get());
        }
        let guard = CtxGuard(ctx);
        // SAFETY: the parameter array points to static NUL-terminated strings
        // and lives until EVP_MAC_init returns; OpenSSL only reads it. The
        // key pointer is valid for `key.len()` bytes (possibly zero).
        let ok = unsafe {
            let params = [
                OSSL_PARAM_construct_utf8_string(
                    c"digest".as_ptr(),
                    digest.name().as_ptr() as *mut c_char,
                    0,
                ),
                ffi::OSSL_PARAM_construct_end(),
            ];
            ffi::EVP_MAC_init(ctx, key.as_ptr(), key.len(), params.as_ptr())
        };
        if ok != 1 {
            return Err(ErrorStack::get());
        }
        std::mem::forget(guard);
        Ok(Self { ctx, digest })
    }

    pub(crate) fn output_len(&self) -> usize {
        self.digest.output_len()
    }

    /// HMAC(key, part1 | part2 | ...) written to `out`, which must be exactly
    /// the digest length.
    pub(crate) fn mac_into(&self, parts: &[&[u8]], out: &mut [u8]) -> super::Result<()> {
        if out.len() != self.output_len() {
            return Err(super::CryptoError::Internal(
                "HMAC output buffer of the wrong length",
            ));
        }
        // SAFETY: self.ctx is a live, initialised context.
        let ctx = unsafe { ffi::EVP_MAC_CTX_dup(self.ctx) };
        if ctx.is_null() {
            return Err(ErrorStack::get().into());
        }
        let guard = CtxGuard(ctx);
        for part in parts {
            // SAFETY: `part` is valid for part.len() bytes.
            if unsafe { ffi::EVP_MAC_update(guard.0, part.as_ptr(), part.len()) } != 1 {
                return Err(ErrorStack::get().into());
            }
        }
        let mut written = 0usize;
        // SAFETY: `out` is writable for out.len() bytes, passed as the limit.
        let ok = unsafe { ffi::EVP_MAC_final(guard.0, out.as_mut_ptr(), &mut written, out.len()) };
        if ok != 1 || written != out.len() {
            return Err(ErrorStack::get().into());
        }
        Ok(())
    }
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        // SAFETY: owned context, freed exactly once.
        unsafe { ffi::EVP_MAC_CTX_free(self.ctx) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_key_and_empty_data() {
        // HMAC-SHA256("", ""), a widely published value.
        let key = HmacKey::new(HmacDigest::Sha256, &[]).unwrap();
        let mut out = [0u8; 32];
        key.mac_into(&[], &mut out).unwrap();
        assert_eq!(
            hex::encode(out),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"
        );
    }

    #[test]
    fn keyed_context_is_reusable_and_parts_concatenate() {
        let key = HmacKey::new(HmacDigest::Sha512, b"key").unwrap();
        let mut whole = [0u8; 64];
        key.mac_into(&[b"hello world"], &mut whole).unwrap();
        let mut split = [0u8; 64];
        key.mac_into(&[b"hello", b" ", b"world"], &mut split)
            .unwrap();
        assert_eq!(whole, split);
        let mut other = [0u8; 64];
        key.mac_into(&[b"hello world!"], &mut other).unwrap();
        assert_ne!(whole, other);
        let mut short = [0u8; 32];
        assert!(key.mac_into(&[b"x"], &mut short).is_err());
    }

    #[test]
    fn usable_from_several_threads() {
        let results: Vec<Vec<u8>> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let key = HmacKey::new(HmacDigest::Sha1, b"k").unwrap();
                    let mut out = vec![0u8; 20];
                    key.mac_into(&[b"data"], &mut out).unwrap();
                    out
                })
            })
            .map(|t| t.join().unwrap())
            .collect();
        assert!(results.windows(2).all(|w| w[0] == w[1]));
    }
}
