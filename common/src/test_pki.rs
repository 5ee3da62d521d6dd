//! Certificates made in tests (feature `test-pki`, never in the daemon):
//! CAs, intermediates and end entities with any key type, validity in the
//! past or the future, subjectAltNames, and CRLs. One builder for the unit,
//! engine and integration tests, so that each test says only what differs.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{
    X509Builder, X509Crl, X509CrlBuilder, X509NameBuilder, X509RevokedBuilder, X509,
};

/// The key types the AUTH methods cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa(u32),
    P256,
    P384,
    P521,
    Ed25519,
}

/// A new private key of `kind`.
pub fn new_key(kind: KeyKind) -> PKey<Private> {
    let ec = |nid| {
        let group = EcGroup::from_curve_name(nid).expect("curve");
        PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("EC PKey")
    };
    match kind {
        KeyKind::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits).expect("RSA key")).expect("PKey"),
        KeyKind::P256 => ec(Nid::X9_62_PRIME256V1),
        KeyKind::P384 => ec(Nid::SECP384R1),
        KeyKind::P521 => ec(Nid::SECP521R1),
        KeyKind::Ed25519 => PKey::generate_ed25519().expect("Ed25519 key"),
    }
}

/// A subjectAltName entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Email(String),
    Ip(IpAddr),
}

/// What a certificate says.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// Subject: C=XX, O=iked test, CN=`common_name`.
    pub common_name: String,
    pub key: KeyKind,
    pub sans: Vec<San>,
    /// basicConstraints CA:TRUE with keyCertSign and cRLSign.
    pub ca: bool,
    pub path_len: Option<u32>,
    /// Validity as days from now (negative: in the past).
    pub not_before_days: i64,
    pub not_after_days: i64,
    pub serial: u32,
    /// keyUsage digitalSignature on an end entity (false: keyEncipherment only).
    pub digital_signature: bool,
}

impl CertSpec {
    /// A CA valid from yesterday for ten years.
    pub fn ca(common_name: &str, key: KeyKind) -> CertSpec {
        CertSpec {
            ca: true,
            ..CertSpec::end_entity(common_name, key)
        }
    }

    /// An end entity valid from yesterday for a year, its CN also its DNS SAN.
    pub fn end_entity(common_name: &str, key: KeyKind) -> CertSpec {
        CertSpec {
            common_name: common_name.to_string(),
            key,
            sans: vec![San::Dns(common_name.to_string())],
            ca: false,
            path_len: None,
            not_before_days: -1,
            not_after_days: 3650,
            serial: 1,
            digital_signature: true,
        }
    }

    pub fn sans(mut self, sans: Vec<San>) -> CertSpec {
        self.sans = sans;
        self
    }

    pub fn valid_days(mut self, not_before: i64, not_after: i64) -> CertSpec {
        self.not_before_days = not_before;
        self.not_after_days = not_after;
        self
    }

    pub fn serial(mut self, serial: u32) -> CertSpec {
        self.serial = serial;
        self
    }

    pub fn path_len(mut self, len: u32) -> CertSpec {
        self.path_len = Some(len);
        self
    }

    pub fn without_digital_signature(mut self) -> CertSpec {
        self.digital_signature = false;
        self
    }
}

/// A certificate and its private key.
pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
}

fn days_from_now(days: i64) -> Asn1Time {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    Asn1Time::from_unix(now + days * 86_400).expect("time")
}

/// The digest a certificate or CRL is signed with: none for Ed25519.
fn signing_digest<T>(key: &PKeyRef<T>) -> MessageDigest {
    if key.id() == Id::ED25519 {
        MessageDigest::null()
    } else {
        MessageDigest::sha256()
    }
}

fn build(spec: &CertSpec, issuer: Option<&Issued>) -> Issued {
    let key = new_key(spec.key);
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("C", "XX").expect("C");
    name.append_entry_by_text("O", "iked test").expect("O");
    name.append_entry_by_text("CN", &spec.common_name)
        .expect("CN");
    let name = name.build();
    let mut b = X509Builder::new().expect("builder");
    b.set_version(2).expect("v3");
    let serial = Asn1Integer::from_bn(&BigNum::from_u32(spec.serial).expect("bn")).expect("serial");
    b.set_serial_number(&serial).expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))
        .expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&days_from_now(spec.not_before_days))
        .expect("notBefore");
    b.set_not_after(&days_from_now(spec.not_after_days))
        .expect("notAfter");
    if spec.ca {
        let mut bc = BasicConstraints::new();
        bc.critical().ca();
        if let Some(len) = spec.path_len {
            bc.pathlen(len);
        }
        b.append_extension(bc.build().expect("bc")).expect("bc");
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .expect("ku"),
        )
        .expect("ku");
    } else {
        b.append_extension(BasicConstraints::new().build().expect("bc"))
            .expect("bc");
        let mut ku = KeyUsage::new();
        ku.critical();
        if spec.digital_signature {
            ku.digital_signature();
        } else {
            ku.key_encipherment();
        }
        b.append_extension(ku.build().expect("ku")).expect("ku");
    }
    let skid = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .expect("skid");
    b.append_extension(skid).expect("skid");
    if let Some(issuer) = issuer {
        let akid = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&issuer.cert), None))
            .expect("akid");
        b.append_extension(akid).expect("akid");
    }
    if !spec.sans.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for entry in &spec.sans {
            match entry {
                San::Dns(d) => san.dns(d),
                San::Email(e) => san.email(e),
                San::Ip(ip) => san.ip(&ip.to_string()),
            };
        }
        let ctx = b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None);
        let ext = san.build(&ctx).expect("san");
        b.append_extension(ext).expect("san");
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, signing_digest(signer)).expect("sign");
    Issued {
        cert: b.build(),
        key,
    }
}

impl Issued {
    /// A self-signed certificate (a root CA when `spec.ca`).
    pub fn self_signed(spec: &CertSpec) -> Issued {
        build(spec, None)
    }

    /// A certificate signed by this one's key.
    pub fn issue(&self, spec: &CertSpec) -> Issued {
        build(spec, Some(self))
    }

    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().expect("pem")
    }

    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.to_der().expect("der")
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().expect("pkcs8")
    }

    /// The public key as SubjectPublicKeyInfo PEM (a raw key for `pubkeys/`).
    pub fn public_key_pem(&self) -> Vec<u8> {
        self.key.public_key_to_pem().expect("spki")
    }

    /// SHA-1 of the SubjectPublicKeyInfo: what a CERTREQ names (RFC 7296 §3.7).
    pub fn spki_sha1(&self) -> Vec<u8> {
        let spki = self.key.public_key_to_der().expect("spki");
        openssl::hash::hash(MessageDigest::sha1(), &spki)
            .expect("sha1")
            .to_vec()
    }

    /// A CRL by this CA, valid from yesterday for `next_update_days`,
    /// revoking `revoked`.
    pub fn crl(&self, revoked: &[&Issued], next_update_days: i64) -> X509Crl {
        let mut b = X509CrlBuilder::new().expect("crl");
        b.set_issuer_name(self.cert.subject_name()).expect("issuer");
        let context = X509Builder::new().expect("context");
        let akid = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&context.x509v3_context(Some(&self.cert), None))
            .expect("akid");
        b.append_extension(akid).expect("akid");
        let number = openssl::x509::CrlNumber::new(BigNum::from_u32(1).expect("bn")).expect("n");
        b.append_extension(number.build().expect("crl number"))
            .expect("crl number");
        b.set_last_update(&days_from_now(-1)).expect("lastUpdate");
        b.set_next_update(&days_from_now(next_update_days))
            .expect("nextUpdate");
        for r in revoked {
            let mut entry = X509RevokedBuilder::new().expect("revoked");
            let serial = r.cert.serial_number().to_bn().expect("bn");
            entry
                .set_serial_number(&Asn1Integer::from_bn(&serial).expect("serial"))
                .expect("serial");
            entry.set_revocation_date(&days_from_now(-1)).expect("date");
            b.add_revoked(entry.build()).expect("add");
        }
        b.sign(&self.key, signing_digest(&self.key))
            .expect("sign crl");
        b.build().expect("crl")
    }
}

/// A root CA, an intermediate and an end entity: the usual chain.
pub struct Chain {
    pub root: Issued,
    pub intermediate: Issued,
    pub leaf: Issued,
}

impl Chain {
    /// Root and intermediate of `ca_key`, leaf `leaf` (its CN and DNS SAN).
    pub fn new(ca_key: KeyKind, leaf: &CertSpec) -> Chain {
        let root = Issued::self_signed(&CertSpec::ca("iked test root", ca_key).serial(1));
        let intermediate = root.issue(&CertSpec::ca("iked test intermediate", ca_key).serial(2));
        let leaf = intermediate.issue(leaf);
        Chain {
            root,
            intermediate,
            leaf,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::X509StoreContext;

    fn verifies(chain: &Chain) -> bool {
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(chain.root.cert.clone()).unwrap();
        let store = store.build();
        let mut untrusted = Stack::new().unwrap();
        untrusted.push(chain.intermediate.cert.clone()).unwrap();
        let mut ctx = X509StoreContext::new().unwrap();
        ctx.init(&store, &chain.leaf.cert, &untrusted, |c| c.verify_cert())
            .unwrap()
    }

    #[test]
    fn chains_of_every_key_kind_verify_and_an_expired_leaf_does_not() {
        for kind in [
            KeyKind::Rsa(2048),
            KeyKind::P256,
            KeyKind::P384,
            KeyKind::P521,
            KeyKind::Ed25519,
        ] {
            let chain = Chain::new(kind, &CertSpec::end_entity("a.example", kind).serial(9));
            assert!(verifies(&chain), "{kind:?}");
            assert_eq!(chain.root.spki_sha1().len(), 20);
        }
        let expired = Chain::new(
            KeyKind::P256,
            &CertSpec::end_entity("a.example", KeyKind::P256).valid_days(-30, -1),
        );
        assert!(!verifies(&expired));
        let crl = expired.intermediate.crl(&[&expired.leaf], 30);
        assert_eq!(crl.get_revoked().map(|r| r.len()), Some(1));
    }
}
