//! The certificate store: the files of `set certdir` (OpenBSD iked's
//! layout), parsed here and only here, since ca is the confined process
//! that may look at untrusted DER. The parent read the bytes; every error
//! names the file it comes from.
//!
//! - `ca/*`: trusted CA certificates; their SubjectPublicKeyInfo hashes are
//!   our CERTREQ contents (RFC 7296 §3.7).
//! - `certs/*`: our certificate (the one whose key is `private/local.key`)
//!   and the intermediates we send with it.
//! - `crls/*`: revocation lists; with any present, every certificate of a
//!   peer's chain must be covered by a CRL of its issuer (openssl's
//!   CRL_CHECK | CRL_CHECK_ALL).
//! - `pubkeys/{ipv4,ipv6,fqdn,ufqdn}/ID`: raw public keys of peers that
//!   send no certificate.

pub mod identity;

use iked_common::config::IdentitySpec;
use iked_common::ipc::{CertStoreFiles, StoreFile, WireIdentity};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, PKeyRef, Private, Public};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509Crl, X509KeyUsage, X509Ref, X509StoreContext, X509VerifyResult, X509};

/// At most this many certificates in a peer's message (CERT payloads),
/// and this many octets each: a longer chain is refused before any is
/// parsed, so a 100-certificate chain costs nothing.
pub const MAX_PEER_CERTS: usize = 16;
pub const MAX_CERT_SIZE: usize = 64 * 1024;
/// The longest chain openssl builds: leaf, up to this many intermediates,
/// then the anchor (X509_VERIFY_PARAM_set_depth).
pub const MAX_CHAIN_DEPTH: i32 = 8;
/// Certificates and CRLs the store holds in all (its files are capped in
/// size and number by the parent; this bounds what one file may hold).
pub const MAX_STORE_OBJECTS: usize = 4096;
/// Our chain: the certificate and at most this many intermediates.
const MAX_LOCAL_INTERMEDIATES: usize = 8;

/// A trusted CA of `ca/`.
pub struct TrustedCa {
    pub cert: X509,
    pub file: String,
    /// SHA-1 of its SubjectPublicKeyInfo (what a CERTREQ names).
    pub spki_sha1: Vec<u8>,
}

/// Our private key, and our certificate chain when `certs/` has one for it.
pub struct LocalCredential {
    pub key: PKey<Private>,
    pub key_file: String,
    /// End entity first, then intermediates; empty for a raw key.
    pub chain: Vec<X509>,
    /// The same, DER-encoded, as ikev2 sends them (CERT encoding 4).
    pub chain_der: Vec<Vec<u8>>,
    /// The file each came from.
    pub chain_files: Vec<String>,
}

/// A raw public key of `pubkeys/`.
pub struct RawPublicKey {
    pub identity: IdentitySpec,
    pub key: PKey<Public>,
    pub file: String,
}

/// A CRL of `crls/`.
pub struct LoadedCrl {
    pub crl: X509Crl,
    pub file: String,
}

/// Everything parsed from one [`CertStoreFiles`].
pub struct CertStore {
    pub dir: String,
    pub trusted: Vec<TrustedCa>,
    /// `certs/` other than our own certificate: intermediates.
    pub others: Vec<(X509, String)>,
    pub crls: Vec<LoadedCrl>,
    pub local: Option<LocalCredential>,
    pub raw_keys: Vec<RawPublicKey>,
    verifier: X509Store,
}

/// The peer's chain checked: its end-entity certificate.
pub struct VerifiedChain {
    pub leaf: X509,
}

impl Default for CertStore {
    /// The empty store: trusts nothing.
    fn default() -> Self {
        CertStore {
            dir: String::new(),
            trusted: Vec::new(),
            others: Vec::new(),
            crls: Vec::new(),
            local: None,
            raw_keys: Vec::new(),
            verifier: X509StoreBuilder::new()
                .map(|b| b.build())
                .expect("an empty X509 store"),
        }
    }
}

fn ssl_error(e: openssl::error::ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|e| e.reason().map(str::to_string))
        .unwrap_or_else(|| "unknown openssl error".into())
}

/// The certificates of one file: PEM (one or more), or a single DER.
fn certificates_of(file: &StoreFile) -> Result<Vec<X509>, String> {
    let fail = |why: String| format!("{}: {why}", file.path);
    if file.bytes.starts_with(b"\x30") {
        return X509::from_der(&file.bytes)
            .map(|c| vec![c])
            .map_err(|e| fail(format!("not a DER certificate ({})", ssl_error(e))));
    }
    let certs = X509::stack_from_pem(&file.bytes)
        .map_err(|e| fail(format!("not a PEM certificate ({})", ssl_error(e))))?;
    if certs.is_empty() {
        return Err(fail("no certificate in the file".into()));
    }
    Ok(certs)
}

fn crl_of(file: &StoreFile) -> Result<X509Crl, String> {
    let parsed = if file.bytes.starts_with(b"\x30") {
        X509Crl::from_der(&file.bytes)
    } else {
        X509Crl::from_pem(&file.bytes)
    };
    parsed.map_err(|e| format!("{}: not a CRL ({})", file.path, ssl_error(e)))
}

fn spki_sha1<T: openssl::pkey::HasPublic>(key: &PKeyRef<T>) -> Result<Vec<u8>, String> {
    let spki = key.public_key_to_der().map_err(ssl_error)?;
    openssl::hash::hash(MessageDigest::sha1(), &spki)
        .map(|d| d.to_vec())
        .map_err(ssl_error)
}

fn public_key_of(file: &StoreFile) -> Result<PKey<Public>, String> {
    let parsed = if file.bytes.starts_with(b"\x30") {
        PKey::public_key_from_der(&file.bytes)
    } else {
        PKey::public_key_from_pem(&file.bytes)
    };
    parsed.map_err(|e| {
        format!(
            "{}: not a public key (SubjectPublicKeyInfo, PEM or DER: {})",
            file.path,
            ssl_error(e)
        )
    })
}

/// Whether `issuer` signed `cert` (names, key identifiers and signature).
fn issued_by(cert: &X509Ref, issuer: &X509Ref) -> bool {
    issuer.issued(cert) == X509VerifyResult::OK
        && issuer
            .public_key()
            .is_ok_and(|key| cert.verify(&key).unwrap_or(false))
}

impl CertStore {
    /// Parses and checks the files; the first problem refuses the whole
    /// store (the caller keeps the previous one), naming the file.
    pub fn load(files: &CertStoreFiles) -> Result<CertStore, String> {
        let mut objects = 0usize;
        let mut count = |n: usize, path: &str| {
            objects += n;
            if objects > MAX_STORE_OBJECTS {
                Err(format!(
                    "{path}: the store holds more than {MAX_STORE_OBJECTS} certificates and CRLs"
                ))
            } else {
                Ok(())
            }
        };
        let mut trusted = Vec::new();
        for file in &files.ca_certs {
            let certs = certificates_of(file)?;
            count(certs.len(), &file.path)?;
            for cert in certs {
                let key = cert.public_key().map_err(|e| {
                    format!("{}: unusable public key ({})", file.path, ssl_error(e))
                })?;
                let spki_sha1 = spki_sha1(&key)?;
                trusted.push(TrustedCa {
                    cert,
                    file: file.path.clone(),
                    spki_sha1,
                });
            }
        }
        let mut certs = Vec::new();
        for file in &files.certs {
            let parsed = certificates_of(file)?;
            count(parsed.len(), &file.path)?;
            certs.extend(parsed.into_iter().map(|c| (c, file.path.clone())));
        }
        let mut crls = Vec::new();
        for file in &files.crls {
            count(1, &file.path)?;
            let crl = crl_of(file)?;
            // A CRL no trusted CA or intermediate issued is a mistake in
            // the store (openssl would silently never use it): refuse it.
            let issuer_known = trusted
                .iter()
                .map(|t| &t.cert)
                .chain(certs.iter().map(|(c, _)| c))
                .any(|c| {
                    identity::same_name(c.subject_name(), crl.issuer_name())
                        && c.public_key()
                            .is_ok_and(|key| crl.verify(&key).unwrap_or(false))
                });
            if !issuer_known {
                return Err(format!(
                    "{}: no CA of ca/ or certs/ issued this CRL (issuer {})",
                    file.path,
                    identity::name_text(crl.issuer_name())
                ));
            }
            crls.push(LoadedCrl {
                crl,
                file: file.path.clone(),
            });
        }
        let local = match &files.private_key {
            None => None,
            Some(file) => {
                let key = if file.bytes.starts_with(b"\x30") {
                    PKey::private_key_from_der(&file.bytes)
                } else {
                    PKey::private_key_from_pem(&file.bytes)
                }
                .map_err(|e| format!("{}: not a private key ({})", file.path, ssl_error(e)))?;
                // A key no AUTH method can use is refused now, not at the
                // first exchange.
                crate::signature::key_type(&key).map_err(|e| format!("{}: {e}", file.path))?;
                Some(Self::local_credential(key, &file.path, &mut certs)?)
            }
        };
        let mut raw_keys = Vec::new();
        for entry in &files.pubkeys {
            let key = public_key_of(&entry.file)?;
            crate::signature::key_type(&key).map_err(|e| format!("{}: {e}", entry.file.path))?;
            raw_keys.push(RawPublicKey {
                identity: entry.identity.clone(),
                key,
                file: entry.file.path.clone(),
            });
        }
        let verifier = Self::verifier(&trusted, &crls)?;
        let store = CertStore {
            dir: files.dir.clone(),
            trusted,
            others: certs,
            crls,
            local,
            raw_keys,
            verifier,
        };
        store.check_local_chain();
        Ok(store)
    }

    /// Our key, and the certificate of `certs/` that carries its public
    /// key with the intermediates that lead from it towards a CA.
    fn local_credential(
        key: PKey<Private>,
        key_file: &str,
        certs: &mut Vec<(X509, String)>,
    ) -> Result<LocalCredential, String> {
        let Some(position) = certs
            .iter()
            .position(|(c, _)| c.public_key().is_ok_and(|k| k.public_eq(&key)))
        else {
            if !certs.is_empty() {
                log::warn!(
                    "no certificate of certs/ is for {key_file}: using it as a raw public key"
                );
            }
            return Ok(LocalCredential {
                key,
                key_file: key_file.to_string(),
                chain: Vec::new(),
                chain_der: Vec::new(),
                chain_files: Vec::new(),
            });
        };
        let (leaf, leaf_file) = certs.remove(position);
        let mut chain = vec![leaf];
        let mut chain_files = vec![leaf_file];
        while chain.len() <= MAX_LOCAL_INTERMEDIATES {
            let last = chain.last().expect("the leaf");
            let next = certs.iter().find(|(c, _)| {
                issued_by(last, c)
                    && !issued_by(c, c)
                    && !chain.iter().any(|x| x.to_der().ok() == c.to_der().ok())
            });
            match next {
                Some((c, file)) => {
                    chain_files.push(file.clone());
                    chain.push(c.clone());
                }
                None => break,
            }
        }
        let chain_der = chain
            .iter()
            .map(|c| c.to_der().map_err(ssl_error))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LocalCredential {
            key,
            key_file: key_file.to_string(),
            chain,
            chain_der,
            chain_files,
        })
    }

    /// The openssl store of the trust anchors and CRLs, with the checks
    /// every peer chain gets.
    fn verifier(trusted: &[TrustedCa], crls: &[LoadedCrl]) -> Result<X509Store, String> {
        let mut builder = X509StoreBuilder::new().map_err(ssl_error)?;
        for ca in trusted {
            match builder.add_cert(ca.cert.clone()) {
                Ok(()) => {}
                // The same certificate in two files: once is enough.
                Err(_) => log::debug!("{}: a CA certificate given twice", ca.file),
            }
        }
        // A CA of ca/ is an anchor even when it is not self-signed (an
        // intermediate the operator chose to trust): as strongSwan does.
        let mut flags = X509VerifyFlags::PARTIAL_CHAIN;
        if !crls.is_empty() {
            for crl in crls {
                iked_common::crypto::x509_store::add_crl(&mut builder, &crl.crl)
                    .map_err(|e| format!("{}: {}", crl.file, ssl_error(e)))?;
            }
            flags |= X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL;
        }
        builder.set_flags(flags).map_err(ssl_error)?;
        let mut param = X509VerifyParam::new().map_err(ssl_error)?;
        param.set_depth(MAX_CHAIN_DEPTH);
        builder.set_param(&param).map_err(ssl_error)?;
        Ok(builder.build())
    }

    /// Says so when our own chain would not verify here: a peer with the
    /// same CAs would refuse it (a mistake worth a warning, not a refusal:
    /// the peer may trust another CA).
    fn check_local_chain(&self) {
        let Some(local) = &self.local else { return };
        let Some(leaf) = local.chain.first() else {
            return;
        };
        if self.trusted.is_empty() {
            return;
        }
        if let Err(e) = self.verify_certs(leaf, &local.chain[1..]) {
            log::warn!("our certificate does not verify against ca/: {e}");
        }
    }

    /// SHA-1 hashes of the trusted CAs' SubjectPublicKeyInfo, once each.
    pub fn cert_authorities(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for ca in &self.trusted {
            if !out.contains(&ca.spki_sha1) {
                out.push(ca.spki_sha1.clone());
            }
        }
        out
    }

    /// Our identity for a policy: its `srcid`, else our certificate's
    /// subject DN (ID_DER_ASN1_DN).
    pub fn local_identity(&self, srcid: Option<&IdentitySpec>) -> Result<WireIdentity, String> {
        if let Some(spec) = srcid {
            return identity::wire_of(spec).map_err(|e| format!("srcid: {e}"));
        }
        let leaf = self
            .local
            .as_ref()
            .and_then(|l| l.chain.first())
            .ok_or("no srcid and no certificate of ours in certs/ to take it from")?;
        Ok(WireIdentity {
            id_type: identity::ID_DER_ASN1_DN,
            body: leaf.subject_name().to_der().map_err(ssl_error)?,
        })
    }

    /// Checks the peer's chain (end entity first, the rest untrusted
    /// intermediates) against the trust anchors: signatures, basic
    /// constraints, validity, path length and, with CRLs, revocation; then
    /// the end entity's key usage.
    pub fn verify_chain(&self, certs: &[Vec<u8>]) -> Result<VerifiedChain, String> {
        if certs.len() > MAX_PEER_CERTS {
            return Err(format!(
                "{} certificates sent, at most {MAX_PEER_CERTS} accepted",
                certs.len()
            ));
        }
        if let Some((index, cert)) = certs
            .iter()
            .enumerate()
            .find(|(_, c)| c.len() > MAX_CERT_SIZE)
        {
            return Err(format!(
                "certificate {} has {} octets, at most {MAX_CERT_SIZE} accepted",
                index + 1,
                cert.len()
            ));
        }
        let parsed = certs
            .iter()
            .enumerate()
            .map(|(index, der)| {
                parse_der(der).map_err(|e| format!("certificate {}: {e}", index + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some((leaf, intermediates)) = parsed.split_first() else {
            return Err("no certificate sent".into());
        };
        if self.trusted.is_empty() {
            return Err("no trusted CA in ca/: certificates cannot be checked".into());
        }
        self.verify_certs(leaf, intermediates)?;
        // RFC 4945 §5.1.3.2: a key usage, when present, must allow
        // signatures (digitalSignature or nonRepudiation).
        if let Some(usage) = leaf.key_usage() {
            if !usage.intersects(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION) {
                return Err(format!(
                    "certificate {}: its key usage does not allow signatures (no digitalSignature)",
                    identity::name_text(leaf.subject_name())
                ));
            }
        }
        Ok(VerifiedChain { leaf: leaf.clone() })
    }

    fn verify_certs(&self, leaf: &X509Ref, intermediates: &[X509]) -> Result<(), String> {
        let mut untrusted = Stack::new().map_err(ssl_error)?;
        for cert in intermediates {
            untrusted.push(cert.clone()).map_err(ssl_error)?;
        }
        let mut context = X509StoreContext::new().map_err(ssl_error)?;
        let outcome = context
            .init(&self.verifier, leaf, &untrusted, |ctx| {
                let ok = ctx.verify_cert()?;
                let subject = ctx
                    .current_cert()
                    .map(|c| identity::name_text(c.subject_name()))
                    .unwrap_or_default();
                Ok((ok, ctx.error(), ctx.error_depth(), subject))
            })
            .map_err(|e| format!("certificate chain not checked: {}", ssl_error(e)))?;
        match outcome {
            (true, _, _, _) => Ok(()),
            (false, error, depth, subject) => Err(format!(
                "certificate chain refused: {} (at depth {depth}, {subject})",
                error.error_string()
            )),
        }
    }

    /// The raw public key of `pubkeys/` for the peer's identity.
    pub fn raw_key_for(&self, peer: &WireIdentity) -> Option<&RawPublicKey> {
        self.raw_keys
            .iter()
            .find(|k| identity::spec_names(&k.identity, peer))
    }
}

/// One certificate from a CERT payload: DER, exactly (trailing octets or a
/// re-encoding of another length are refused).
fn parse_der(der: &[u8]) -> Result<X509, String> {
    let cert =
        X509::from_der(der).map_err(|e| format!("not a DER certificate ({})", ssl_error(e)))?;
    let again = cert.to_der().map_err(ssl_error)?;
    if again.len() != der.len() {
        return Err(format!(
            "{} octets after the certificate's DER",
            der.len().saturating_sub(again.len())
        ));
    }
    Ok(cert)
}

#[cfg(test)]
pub(crate) mod tests;
