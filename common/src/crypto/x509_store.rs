//! What the openssl crate does not wrap of the X509 store: adding a CRL
//! from memory (`X509_STORE_add_crl`). ca-proc is confined and reads no
//! files; its CRLs arrive as bytes from the parent, so the crate's
//! file-based lookup cannot load them.

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::x509::store::X509StoreBuilderRef;
use openssl::x509::X509CrlRef;
use openssl_sys as ffi;

// In libcrypto (which openssl-sys links) since OpenSSL 0.9.7, but not
// declared by openssl-sys.
extern "C" {
    fn X509_STORE_add_crl(store: *mut ffi::X509_STORE, crl: *mut ffi::X509_CRL) -> std::ffi::c_int;
}

/// Adds `crl` to the store being built: with `CRL_CHECK` set, openssl then
/// checks the revocation of each certificate against the CRL of its issuer
/// (the store takes its own reference; `crl` stays ours).
pub fn add_crl(store: &mut X509StoreBuilderRef, crl: &X509CrlRef) -> Result<(), ErrorStack> {
    // SAFETY: both pointers come from live references of the right types;
    // X509_STORE_add_crl takes its own reference to the CRL (up_ref) and
    // does not keep the store pointer beyond the call.
    let ok = unsafe { X509_STORE_add_crl(store.as_ptr(), crl.as_ptr()) };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}
