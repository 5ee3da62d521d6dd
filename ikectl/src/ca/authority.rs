//! One certificate authority: its directory, keys, certificates, serial
//! numbers, index and CRL, made with the openssl crate.
//!
//! The CA directory (`/etc/ssl/NAME`, as OpenBSD's ikectl) holds
//! `ca.crt`, `ca.crl`, `private/ca.key`, `ikeca.passwd` (when the CA has a
//! password), `HOST.crt` and `private/HOST.key` for each host,
//! `serial.txt` (the next serial number, hex), `crlnumber` and
//! `index.txt` (one line per issued certificate, in the format of
//! openssl-ca(1): status, expiry, revocation time, serial, host, subject).

use std::fs;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::symm::Cipher;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{
    CrlNumber, X509Builder, X509Crl, X509CrlBuilder, X509Name, X509NameBuilder, X509NameRef,
    X509RevokedBuilder, X509,
};

use super::files::{self, CaLock, PRIVATE_DIR, PRIVATE_FILE, PUBLIC_DIR, PUBLIC_FILE};
use super::host::HostId;
use super::options::{CaOptions, CertOptions, KeyType, Subject, Usage};

/// How long a CRL is valid (openssl-ca(1) `-crldays`, as OpenBSD): rerun
/// `revoke` or `crl` before it runs out.
pub const CRL_DAYS: i64 = 365;
/// Certificates are valid from this long before now, for peers whose clock
/// is a little behind.
const BACKDATE_SECS: i64 = 300;
/// The organization of the subject DN when none is given.
pub const DEFAULT_ORGANIZATION: &str = "iked";
/// id-kp-ipsecIKE (RFC 4945 section 5.1.3.12).
const IPSEC_IKE: &str = "1.3.6.1.5.5.7.3.17";
/// The longest CA name (it is a directory name).
const MAX_CA_NAME: usize = 64;

fn ssl(what: &str) -> impl Fn(openssl::error::ErrorStack) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A certificate authority under `base/NAME`.
pub struct Ca {
    pub name: String,
    pub dir: PathBuf,
}

/// One line of index.txt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// 'V' valid, 'R' revoked.
    pub status: char,
    pub expiry: String,
    pub revoked_at: String,
    /// Hex, upper case, as openssl writes it.
    pub serial: String,
    pub host: String,
    pub subject: String,
}

impl IndexEntry {
    fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            self.status, self.expiry, self.revoked_at, self.serial, self.host, self.subject
        )
    }

    fn parse(line: &str) -> Option<IndexEntry> {
        let fields: Vec<&str> = line.split('\t').collect();
        let [status, expiry, revoked_at, serial, host, subject] = fields[..] else {
            return None;
        };
        let status = match status {
            "V" => 'V',
            "R" => 'R',
            _ => return None,
        };
        Some(IndexEntry {
            status,
            expiry: expiry.into(),
            revoked_at: revoked_at.into(),
            serial: serial.into(),
            host: host.into(),
            subject: subject.into(),
        })
    }
}

/// A new private key.
pub fn new_key(key: KeyType) -> Result<PKey<Private>, String> {
    match key {
        KeyType::EcdsaP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ssl("P-256"))?;
            let ec = EcKey::generate(&group).map_err(ssl("making an ECDSA key"))?;
            PKey::from_ec_key(ec).map_err(ssl("ECDSA key"))
        }
        KeyType::Rsa(bits) => {
            let rsa = Rsa::generate(bits).map_err(ssl("making an RSA key"))?;
            PKey::from_rsa(rsa).map_err(ssl("RSA key"))
        }
    }
}

/// "ECDSA P-256", "RSA 3072", ...: what `show` prints.
pub fn describe_key<T: openssl::pkey::HasPublic>(key: &PKeyRef<T>) -> String {
    match key.id() {
        Id::RSA => format!("RSA {}", key.bits()),
        Id::EC => {
            let curve = key
                .ec_key()
                .ok()
                .and_then(|ec| ec.group().curve_name())
                .map(|nid| match nid {
                    Nid::X9_62_PRIME256V1 => "P-256".to_string(),
                    Nid::SECP384R1 => "P-384".to_string(),
                    Nid::SECP521R1 => "P-521".to_string(),
                    other => other.short_name().unwrap_or("unknown curve").to_string(),
                })
                .unwrap_or_else(|| "unnamed curve".into());
            format!("ECDSA {curve}")
        }
        Id::ED25519 => "Ed25519".into(),
        other => format!("key type {}", other.as_raw()),
    }
}

/// The key types iked signs with (iked.conf(5) `ikeauth`).
fn check_key_type(key: &PKeyRef<Private>, what: &str) -> Result<(), String> {
    match key.id() {
        Id::RSA if key.bits() >= 2048 => Ok(()),
        Id::RSA => Err(format!(
            "{what}: an RSA key of {} bits is too short (at least 2048)",
            key.bits()
        )),
        Id::EC | Id::ED25519 => {
            let description = describe_key(key);
            if ["ECDSA P-256", "ECDSA P-384", "ECDSA P-521", "Ed25519"]
                .contains(&description.as_str())
            {
                Ok(())
            } else {
                Err(format!("{what}: iked does not sign with {description}"))
            }
        }
        _ => Err(format!(
            "{what}: iked does not sign with {}",
            describe_key(key)
        )),
    }
}

/// The digest certificates and CRLs are signed with.
fn digest(key: &PKeyRef<Private>) -> MessageDigest {
    if key.id() == Id::ED25519 {
        MessageDigest::null()
    } else {
        MessageDigest::sha256()
    }
}

fn time(unix: i64) -> Result<Asn1Time, String> {
    Asn1Time::from_unix(unix).map_err(ssl("time"))
}

/// The one-line form of a DN, as openssl's index.txt: /C=DE/O=iked/CN=x.
pub fn dn_text(name: &X509NameRef) -> String {
    let mut text = String::new();
    for entry in name.entries() {
        let key = entry.object().nid().short_name().unwrap_or("?");
        let value = entry.data().to_string().unwrap_or_default();
        text += &format!("/{key}={value}");
    }
    text
}

fn build_name(entries: &[(Nid, &str)]) -> Result<X509Name, String> {
    let mut name = X509NameBuilder::new().map_err(ssl("name"))?;
    for (nid, value) in entries {
        name.append_entry_by_nid(*nid, value)
            .map_err(|e| format!("subject {value:?}: {e}"))?;
    }
    Ok(name.build())
}

fn serial_integer(hex: &str) -> Result<Asn1Integer, String> {
    let bn = BigNum::from_hex_str(hex).map_err(|e| format!("serial {hex:?}: {e}"))?;
    Asn1Integer::from_bn(&bn).map_err(ssl("serial"))
}

/// A serial number as index.txt has it: upper-case hex, an even number of
/// digits.
pub fn serial_hex(serial: &openssl::asn1::Asn1IntegerRef) -> Result<String, String> {
    let hex = serial
        .to_bn()
        .and_then(|bn| bn.to_hex_str().map(|h| h.to_string()))
        .map_err(ssl("serial"))?;
    Ok(if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex
    })
}

/// A CA name: a directory name, so no slashes and no leading dot.
fn check_ca_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_CA_NAME {
        return Err(format!(
            "the CA name '{name}' must have 1 to {MAX_CA_NAME} characters"
        ));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(format!(
            "the CA name '{name}' must not start with '.' or '-'"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        return Err(format!(
            "the CA name '{name}' has the character {bad:?} (letters, digits, '.', '_', '-')"
        ));
    }
    Ok(())
}

impl Ca {
    pub fn at(base: &Path, name: &str) -> Result<Ca, String> {
        check_ca_name(name)?;
        Ok(Ca {
            name: name.to_string(),
            dir: base.join(name),
        })
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("ca.crl")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("private").join("ca.key")
    }

    fn password_path(&self) -> PathBuf {
        self.dir.join("ikeca.passwd")
    }

    pub fn host_cert_path(&self, host: &HostId) -> PathBuf {
        self.dir.join(format!("{host}.crt"))
    }

    pub fn host_key_path(&self, host: &HostId) -> PathBuf {
        self.dir.join("private").join(format!("{host}.key"))
    }

    /// `host_key_path`, or why there is no key there.
    fn existing_host_key_path(&self, host: &HostId) -> Result<PathBuf, String> {
        let path = self.host_key_path(host);
        if !path.exists() {
            return Err(format!(
                "CA '{}' has no key for '{host}' (no {})",
                self.name,
                path.display()
            ));
        }
        Ok(path)
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.txt")
    }

    /// Fails unless the CA was created.
    pub fn require(&self) -> Result<(), String> {
        if self.cert_path().is_file() && self.key_path().is_file() {
            Ok(())
        } else {
            Err(format!(
                "CA '{}' does not exist (no {} and {}): create it with 'ikectl ca {} create'",
                self.name,
                self.cert_path().display(),
                self.key_path().display(),
                self.name
            ))
        }
    }

    pub fn lock(&self) -> Result<CaLock, String> {
        CaLock::take(&self.dir)
    }

    pub fn certificate(&self) -> Result<X509, String> {
        let path = self.cert_path();
        X509::from_pem(&files::read(&path)?).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn password(&self) -> Result<Option<Vec<u8>>, String> {
        let path = self.password_path();
        if !path.exists() {
            return Ok(None);
        }
        let mut password = files::read(&path)?;
        while password.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            password.pop();
        }
        Ok(Some(password))
    }

    fn private_key(&self) -> Result<PKey<Private>, String> {
        let path = self.key_path();
        let pem = files::read(&path)?;
        let key = match self.password()? {
            Some(password) => PKey::private_key_from_pem_passphrase(&pem, &password),
            None => PKey::private_key_from_pem(&pem),
        };
        key.map_err(|e| format!("cannot read the CA key {}: {e}", path.display()))
    }

    /// `ca NAME create`: key, self-signed certificate, empty CRL.
    pub fn create(&self, options: &CaOptions) -> Result<String, String> {
        if self.cert_path().exists() || self.key_path().exists() {
            return Err(format!(
                "CA '{}' exists already in {}: delete it first with 'ikectl ca {} delete'",
                self.name,
                self.dir.display(),
                self.name
            ));
        }
        // Never a CA inside a directory that holds something else (on
        // Debian, /etc/ssl/certs and /etc/ssl/private are the system's).
        if let Ok(mut entries) = fs::read_dir(&self.dir) {
            if entries.next().is_some() {
                return Err(format!(
                    "{} exists and is not empty: choose another CA name (or set {})",
                    self.dir.display(),
                    super::CA_BASE_ENV
                ));
            }
        }
        let made = self.make(options);
        if made.is_err() {
            // The directory was empty or missing: leave nothing half made.
            let _ = fs::remove_dir_all(&self.dir);
        }
        made
    }

    fn make(&self, options: &CaOptions) -> Result<String, String> {
        files::make_dir(&self.dir, PUBLIC_DIR)?;
        files::make_dir(&self.dir.join("private"), PRIVATE_DIR)?;
        let _lock = self.lock()?;
        let key = new_key(options.key)?;
        let key_pem = match &options.password {
            Some(password) => {
                files::write(&self.password_path(), password.as_bytes(), PRIVATE_FILE)?;
                key.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), password.as_bytes())
            }
            None => key.private_key_to_pem_pkcs8(),
        }
        .map_err(ssl("CA key"))?;
        files::write(&self.key_path(), &key_pem, PRIVATE_FILE)?;
        files::write(&self.dir.join("serial.txt"), b"01\n", PUBLIC_FILE)?;
        files::write(&self.dir.join("crlnumber"), b"01\n", PUBLIC_FILE)?;
        files::write(&self.index_path(), b"", PUBLIC_FILE)?;

        let default_cn = format!("{} CA", self.name);
        let subject = &options.subject;
        let mut entries = Vec::new();
        if let Some(c) = &subject.country {
            entries.push((Nid::COUNTRYNAME, c.as_str()));
        }
        entries.push((
            Nid::ORGANIZATIONNAME,
            subject
                .organization
                .as_deref()
                .unwrap_or(DEFAULT_ORGANIZATION),
        ));
        if let Some(ou) = &subject.unit {
            entries.push((Nid::ORGANIZATIONALUNITNAME, ou.as_str()));
        }
        entries.push((
            Nid::COMMONNAME,
            subject.common_name.as_deref().unwrap_or(&default_cn),
        ));
        let name = build_name(&entries)?;
        let serial = self.next_serial()?;
        let now = files::now();
        let mut b = X509Builder::new().map_err(ssl("certificate"))?;
        b.set_version(2).map_err(ssl("version"))?;
        b.set_serial_number(&*serial_integer(&serial)?)
            .map_err(ssl("serial"))?;
        b.set_subject_name(&name).map_err(ssl("subject"))?;
        b.set_issuer_name(&name).map_err(ssl("issuer"))?;
        b.set_pubkey(&key).map_err(ssl("public key"))?;
        b.set_not_before(&*time(now - BACKDATE_SECS)?)
            .map_err(ssl("notBefore"))?;
        b.set_not_after(&*time(now + i64::from(options.days) * 86_400)?)
            .map_err(ssl("notAfter"))?;
        // RFC 5280 section 4.2.1.9: a CA, critical; path length 0: this
        // CA signs end entities only.
        b.append_extension(
            BasicConstraints::new()
                .critical()
                .ca()
                .pathlen(0)
                .build()
                .map_err(ssl("basicConstraints"))?,
        )
        .map_err(ssl("basicConstraints"))?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .map_err(ssl("keyUsage"))?,
        )
        .map_err(ssl("keyUsage"))?;
        let skid = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .map_err(ssl("subjectKeyIdentifier"))?;
        b.append_extension(skid)
            .map_err(ssl("subjectKeyIdentifier"))?;
        b.sign(&key, digest(&key)).map_err(ssl("signing"))?;
        let cert = b.build();
        files::write(
            &self.cert_path(),
            &cert.to_pem().map_err(ssl("PEM"))?,
            PUBLIC_FILE,
        )?;
        self.record(&IndexEntry {
            status: 'V',
            expiry: files::asn1_time_text(now + i64::from(options.days) * 86_400),
            revoked_at: String::new(),
            serial: serial.clone(),
            host: "ca".into(),
            subject: dn_text(cert.subject_name()),
        })?;
        self.write_crl(&cert, &key)?;
        Ok(format!(
            "CA '{}' created in {} ({}, subject {}, valid {} days){}",
            self.name,
            self.dir.display(),
            describe_key(&key),
            dn_text(cert.subject_name()),
            options.days,
            if options.password.is_some() {
                format!(
                    "; its key is encrypted with the password kept in {}",
                    self.password_path().display()
                )
            } else {
                String::new()
            }
        ))
    }

    /// `ca NAME delete`: the whole CA directory, once it is known to be one.
    pub fn delete(&self) -> Result<String, String> {
        // A CA missing one of its two files (a crash while it was made) can
        // still be deleted; a directory with neither is not a CA.
        if !self.cert_path().is_file() && !self.key_path().is_file() {
            self.require()?;
        }
        fs::remove_dir_all(&self.dir)
            .map_err(|e| format!("cannot delete {}: {e}", self.dir.display()))?;
        Ok(format!(
            "CA '{}' deleted ({})",
            self.name,
            self.dir.display()
        ))
    }

    /// Takes the next serial number from serial.txt (the caller holds the
    /// lock).
    fn next_serial(&self) -> Result<String, String> {
        let path = self.dir.join("serial.txt");
        let text = String::from_utf8(files::read(&path)?)
            .map_err(|_| format!("{} is not text", path.display()))?;
        let text = text.trim();
        let mut bn = BigNum::from_hex_str(text)
            .map_err(|_| format!("{}: '{text}' is not a hex serial number", path.display()))?;
        let current = serial_hex(&*Asn1Integer::from_bn(&bn).map_err(ssl("serial"))?)?;
        bn.add_word(1).map_err(ssl("serial"))?;
        let next = serial_hex(&*Asn1Integer::from_bn(&bn).map_err(ssl("serial"))?)?;
        files::write(&path, format!("{next}\n").as_bytes(), PUBLIC_FILE)?;
        Ok(current)
    }

    pub fn index(&self) -> Result<Vec<IndexEntry>, String> {
        let path = self.index_path();
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = String::from_utf8(files::read(&path)?)
            .map_err(|_| format!("{} is not text", path.display()))?;
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.is_empty())
            .map(|(number, line)| {
                IndexEntry::parse(line)
                    .ok_or_else(|| format!("{}:{}: not an index line", path.display(), number + 1))
            })
            .collect()
    }

    fn write_index(&self, entries: &[IndexEntry]) -> Result<(), String> {
        let text: String = entries.iter().map(IndexEntry::line).collect();
        files::write(&self.index_path(), text.as_bytes(), PUBLIC_FILE)
    }

    fn record(&self, entry: &IndexEntry) -> Result<(), String> {
        let mut entries = self.index()?;
        entries.push(entry.clone());
        self.write_index(&entries)
    }

    /// Signs and writes ca.crl with every revoked serial of the index
    /// (RFC 5280 section 5), its number one more than the last.
    fn write_crl(&self, ca_cert: &X509, ca_key: &PKey<Private>) -> Result<X509Crl, String> {
        let number_path = self.dir.join("crlnumber");
        let number_text = String::from_utf8(files::read(&number_path)?)
            .map_err(|_| format!("{} is not text", number_path.display()))?;
        let number_text = number_text.trim();
        let mut number = BigNum::from_hex_str(number_text).map_err(|_| {
            format!(
                "{}: '{number_text}' is not a hex CRL number",
                number_path.display()
            )
        })?;
        let mut b = X509CrlBuilder::new().map_err(ssl("CRL"))?;
        b.set_issuer_name(ca_cert.subject_name())
            .map_err(ssl("CRL issuer"))?;
        let context = X509Builder::new().map_err(ssl("CRL"))?;
        let akid = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&context.x509v3_context(Some(ca_cert), None))
            .map_err(ssl("authorityKeyIdentifier"))?;
        b.append_extension(akid)
            .map_err(ssl("authorityKeyIdentifier"))?;
        let crl_number = CrlNumber::new(BigNum::from_slice(&number.to_vec()).map_err(ssl("n"))?)
            .map_err(ssl("CRL number"))?;
        b.append_extension(crl_number.build().map_err(ssl("CRL number"))?)
            .map_err(ssl("CRL number"))?;
        let now = files::now();
        b.set_last_update(&*time(now - BACKDATE_SECS)?)
            .map_err(ssl("lastUpdate"))?;
        b.set_next_update(&*time(now + CRL_DAYS * 86_400)?)
            .map_err(ssl("nextUpdate"))?;
        for entry in self.index()?.iter().filter(|e| e.status == 'R') {
            let mut revoked = X509RevokedBuilder::new().map_err(ssl("revoked"))?;
            revoked
                .set_serial_number(&*serial_integer(&entry.serial)?)
                .map_err(ssl("revoked serial"))?;
            let at = Asn1Time::from_str(&entry.revoked_at).map_err(|e| {
                format!(
                    "index: revocation time {:?} of serial {}: {e}",
                    entry.revoked_at, entry.serial
                )
            })?;
            revoked
                .set_revocation_date(&at)
                .map_err(ssl("revocation date"))?;
            b.add_revoked(revoked.build()).map_err(ssl("revoked"))?;
        }
        b.sign(ca_key, digest(ca_key))
            .map_err(ssl("signing the CRL"))?;
        let crl = b.build().map_err(ssl("CRL"))?;
        files::write(
            &self.crl_path(),
            &crl.to_pem().map_err(ssl("CRL PEM"))?,
            PUBLIC_FILE,
        )?;
        number.add_word(1).map_err(ssl("CRL number"))?;
        let next = number.to_hex_str().map_err(ssl("CRL number"))?.to_string();
        files::write(&number_path, format!("{next}\n").as_bytes(), PUBLIC_FILE)?;
        Ok(crl)
    }

    /// The key of `host`, made if it has none.
    fn host_key(
        &self,
        host: &HostId,
        wanted: Option<KeyType>,
    ) -> Result<(PKey<Private>, bool), String> {
        let path = self.host_key_path(host);
        if path.exists() {
            let key = PKey::private_key_from_pem(&files::read(&path)?)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if let Some(wanted) = wanted {
                let fits = match wanted {
                    KeyType::EcdsaP256 => describe_key(&key) == "ECDSA P-256",
                    KeyType::Rsa(bits) => key.id() == Id::RSA && key.bits() == bits,
                };
                if !fits {
                    return Err(format!(
                        "{} is {} but {} was asked for: delete the key first \
                         ('ikectl ca {} key {host} delete') or leave the key type out",
                        path.display(),
                        describe_key(&key),
                        match wanted {
                            KeyType::EcdsaP256 => "ECDSA P-256".to_string(),
                            KeyType::Rsa(bits) => format!("RSA {bits}"),
                        },
                        self.name
                    ));
                }
            }
            return Ok((key, false));
        }
        let key = new_key(wanted.unwrap_or(KeyType::EcdsaP256))?;
        write_private_key(&path, &key)?;
        Ok((key, true))
    }

    /// `ca NAME certificate HOST create`.
    pub fn issue(&self, host: &HostId, options: &CertOptions) -> Result<String, String> {
        self.require()?;
        let _lock = self.lock()?;
        let cert_path = self.host_cert_path(host);
        if cert_path.exists() {
            return Err(format!(
                "a certificate for '{host}' exists already ({}): revoke or delete it first \
                 ('ikectl ca {} certificate {host} revoke|delete')",
                cert_path.display(),
                self.name
            ));
        }
        let ca_cert = self.certificate()?;
        let ca_key = self.private_key()?;
        let (key, made) = self.host_key(host, options.key)?;

        // The subject: the CA's C, O and OU unless given, CN the host.
        let inherited = |nid: Nid| -> Option<String> {
            ca_cert
                .subject_name()
                .entries_by_nid(nid)
                .next()
                .and_then(|e| e.data().to_string().ok())
        };
        let subject: &Subject = &options.subject;
        let country = subject
            .country
            .clone()
            .or_else(|| inherited(Nid::COUNTRYNAME));
        let organization = subject
            .organization
            .clone()
            .or_else(|| inherited(Nid::ORGANIZATIONNAME));
        let unit = subject
            .unit
            .clone()
            .or_else(|| inherited(Nid::ORGANIZATIONALUNITNAME));
        let host_text = host.to_string();
        let common_name = subject.common_name.clone().unwrap_or(host_text.clone());
        let mut entries = Vec::new();
        if let Some(c) = &country {
            entries.push((Nid::COUNTRYNAME, c.as_str()));
        }
        if let Some(o) = &organization {
            entries.push((Nid::ORGANIZATIONNAME, o.as_str()));
        }
        if let Some(ou) = &unit {
            entries.push((Nid::ORGANIZATIONALUNITNAME, ou.as_str()));
        }
        entries.push((Nid::COMMONNAME, common_name.as_str()));
        let name = build_name(&entries)?;

        let serial = self.next_serial()?;
        let now = files::now();
        let not_after = now + i64::from(options.days) * 86_400;
        let ca_expiry = ca_cert.not_after();
        let mut b = X509Builder::new().map_err(ssl("certificate"))?;
        b.set_version(2).map_err(ssl("version"))?;
        b.set_serial_number(&*serial_integer(&serial)?)
            .map_err(ssl("serial"))?;
        b.set_subject_name(&name).map_err(ssl("subject"))?;
        b.set_issuer_name(ca_cert.subject_name())
            .map_err(ssl("issuer"))?;
        b.set_pubkey(&key).map_err(ssl("public key"))?;
        b.set_not_before(&*time(now - BACKDATE_SECS)?)
            .map_err(ssl("notBefore"))?;
        let host_expiry = time(not_after)?;
        if host_expiry > *ca_expiry {
            return Err(format!(
                "the certificate would outlive the CA (which expires {ca_expiry}): ask for fewer days"
            ));
        }
        b.set_not_after(&host_expiry).map_err(ssl("notAfter"))?;
        b.append_extension(
            BasicConstraints::new()
                .build()
                .map_err(ssl("basicConstraints"))?,
        )
        .map_err(ssl("basicConstraints"))?;
        // IKE signs with the key (RFC 4945 section 5.1.3.2: digitalSignature
        // or nonRepudiation); strongSwan insists on digitalSignature.
        let mut key_usage = KeyUsage::new();
        key_usage.critical().digital_signature();
        if options.usage == Usage::Ocsp {
            key_usage.non_repudiation();
        }
        b.append_extension(key_usage.build().map_err(ssl("keyUsage"))?)
            .map_err(ssl("keyUsage"))?;
        let mut eku = ExtendedKeyUsage::new();
        match options.usage {
            Usage::ServerAndClient => {
                eku.server_auth().client_auth().other(IPSEC_IKE);
            }
            Usage::Server => {
                eku.server_auth().other(IPSEC_IKE);
            }
            Usage::Client => {
                eku.client_auth().other(IPSEC_IKE);
            }
            Usage::Ocsp => {
                eku.other("OCSPSigning");
            }
        }
        b.append_extension(eku.build().map_err(ssl("extendedKeyUsage"))?)
            .map_err(ssl("extendedKeyUsage"))?;
        let skid = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(Some(&ca_cert), None))
            .map_err(ssl("subjectKeyIdentifier"))?;
        b.append_extension(skid)
            .map_err(ssl("subjectKeyIdentifier"))?;
        let akid = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&ca_cert), None))
            .map_err(ssl("authorityKeyIdentifier"))?;
        b.append_extension(akid)
            .map_err(ssl("authorityKeyIdentifier"))?;
        let mut san = SubjectAlternativeName::new();
        let mut names = vec![host.clone()];
        names.extend(options.altnames.iter().filter(|n| *n != host).cloned());
        for entry in &names {
            match entry {
                HostId::Fqdn(dns) => san.dns(dns),
                HostId::Ip(address) => san.ip(&address.to_string()),
                HostId::UserFqdn(email) => san.email(email),
            };
        }
        let san = san
            .build(&b.x509v3_context(Some(&ca_cert), None))
            .map_err(ssl("subjectAltName"))?;
        b.append_extension(san).map_err(ssl("subjectAltName"))?;
        b.sign(&ca_key, digest(&ca_key)).map_err(ssl("signing"))?;
        let cert = b.build();
        files::write(&cert_path, &cert.to_pem().map_err(ssl("PEM"))?, PUBLIC_FILE)?;
        self.record(&IndexEntry {
            status: 'V',
            expiry: files::asn1_time_text(not_after),
            revoked_at: String::new(),
            serial: serial.clone(),
            host: host_text.clone(),
            subject: dn_text(cert.subject_name()),
        })?;
        let sans: Vec<String> = names.iter().map(HostId::san_text).collect();
        Ok(format!(
            "certificate for '{host}' created: {} (serial {serial}, {} {}, subject {}, \
             subjectAltName {}, valid {} days)",
            cert_path.display(),
            describe_key(&key),
            if made { "key made" } else { "existing key" },
            dn_text(cert.subject_name()),
            sans.join(", "),
            options.days
        ))
    }

    /// The certificate of `host`.
    pub fn host_certificate(&self, host: &HostId) -> Result<X509, String> {
        let path = self.host_cert_path(host);
        if !path.exists() {
            return Err(format!(
                "CA '{}' has no certificate for '{host}' (no {}): create it with \
                 'ikectl ca {} certificate {host} create'",
                self.name,
                path.display(),
                self.name
            ));
        }
        X509::from_pem(&files::read(&path)?).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn read_host_key(&self, host: &HostId) -> Result<PKey<Private>, String> {
        let path = self.existing_host_key_path(host)?;
        PKey::private_key_from_pem(&files::read(&path)?)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    /// The certificate and key of `host`, checked to belong together.
    pub fn host_pair(&self, host: &HostId) -> Result<(X509, PKey<Private>), String> {
        let cert = self.host_certificate(host)?;
        let key = self.read_host_key(host)?;
        let public = cert.public_key().map_err(ssl("certificate key"))?;
        if !public.public_eq(&key) {
            return Err(format!(
                "{} does not belong to {}: the key was replaced after the certificate was made",
                self.host_key_path(host).display(),
                self.host_cert_path(host).display()
            ));
        }
        Ok((cert, key))
    }

    /// `ca NAME certificate HOST revoke`: the serial into the CRL, which is
    /// signed again.
    pub fn revoke(&self, host: &HostId) -> Result<String, String> {
        self.require()?;
        let _lock = self.lock()?;
        let cert = self.host_certificate(host)?;
        let serial = serial_hex(cert.serial_number())?;
        let mut entries = self.index()?;
        let entry = entries
            .iter_mut()
            .find(|e| e.serial == serial)
            .ok_or_else(|| {
                format!(
                    "serial {serial} of {} is not in {}: was the certificate made by this CA?",
                    self.host_cert_path(host).display(),
                    self.index_path().display()
                )
            })?;
        if entry.status == 'R' {
            return Err(format!(
                "the certificate of '{host}' (serial {serial}) is revoked already"
            ));
        }
        entry.status = 'R';
        entry.revoked_at = files::asn1_time_text(files::now());
        self.write_index(&entries)?;
        let ca_cert = self.certificate()?;
        let ca_key = self.private_key()?;
        let crl = self.write_crl(&ca_cert, &ca_key)?;
        let count = crl.get_revoked().map_or(0, |r| r.len());
        Ok(format!(
            "certificate of '{host}' (serial {serial}) revoked; {} has {count} revoked \
             serial(s): install it on the peers ('ikectl ca {} install')",
            self.crl_path().display(),
            self.name
        ))
    }

    /// `ca NAME crl`: a new CRL with the same revoked serials, valid
    /// CRL_DAYS from now.
    pub fn renew_crl(&self) -> Result<String, String> {
        self.require()?;
        let _lock = self.lock()?;
        let crl = self.write_crl(&self.certificate()?, &self.private_key()?)?;
        Ok(format!(
            "{} signed, {} revoked serial(s), next update {}",
            self.crl_path().display(),
            crl.get_revoked().map_or(0, |r| r.len()),
            crl.next_update()
                .map_or("none".to_string(), |t| t.to_string())
        ))
    }

    /// `ca NAME certificate HOST delete`: its certificate and key (a
    /// revoked serial stays in the CRL).
    pub fn delete_host(&self, host: &HostId) -> Result<String, String> {
        self.require()?;
        let _lock = self.lock()?;
        let cert_path = self.host_cert_path(host);
        let key_path = self.host_key_path(host);
        let mut removed = Vec::new();
        for path in [&cert_path, &key_path] {
            if path.exists() {
                fs::remove_file(path)
                    .map_err(|e| format!("cannot delete {}: {e}", path.display()))?;
                removed.push(path.display().to_string());
            }
        }
        if removed.is_empty() {
            return Err(format!(
                "CA '{}' has no certificate or key for '{host}'",
                self.name
            ));
        }
        Ok(format!("deleted {}", removed.join(" and ")))
    }

    /// `ca NAME install [PATH]`: the CA certificate into PATH/ca/ and its
    /// CRL into PATH/crls/.
    pub fn install(&self, certdir: &Path) -> Result<String, String> {
        self.require()?;
        files::make_certdir(certdir)?;
        let cert = files::read(&self.cert_path())?;
        let target = certdir.join("ca").join(format!("{}.crt", self.name));
        files::write(&target, &cert, PUBLIC_FILE)?;
        let mut message = format!(
            "certificate of CA '{}' installed into {}",
            self.name,
            target.display()
        );
        if self.crl_path().exists() {
            let crl_target = certdir.join("crls").join(format!("{}.crl", self.name));
            files::write(&crl_target, &files::read(&self.crl_path())?, PUBLIC_FILE)?;
            message += &format!(
                "\nCRL of CA '{}' installed into {}",
                self.name,
                crl_target.display()
            );
        }
        Ok(message)
    }

    /// `ca NAME certificate HOST install [PATH]`: certificate into
    /// PATH/certs/, key into PATH/private/local.key, public key into
    /// PATH/local.pub.
    pub fn install_host(&self, host: &HostId, certdir: &Path) -> Result<String, String> {
        self.require()?;
        let (cert, key) = self.host_pair(host)?;
        files::make_certdir(certdir)?;
        let cert_target = certdir.join("certs").join(format!("{host}.crt"));
        files::write(
            &cert_target,
            &cert.to_pem().map_err(ssl("PEM"))?,
            PUBLIC_FILE,
        )?;
        let key_message = install_local_key(certdir, &key)?;
        Ok(format!(
            "certificate for '{host}' installed into {}\n{key_message}",
            cert_target.display()
        ))
    }

    /// `ca NAME key HOST create`.
    pub fn create_key(&self, host: &HostId, key: KeyType) -> Result<String, String> {
        self.require()?;
        let path = self.host_key_path(host);
        if path.exists() {
            return Err(format!(
                "a key for '{host}' exists already ({})",
                path.display()
            ));
        }
        let key = new_key(key)?;
        write_private_key(&path, &key)?;
        Ok(format!(
            "key for '{host}' created: {} ({})",
            path.display(),
            describe_key(&key)
        ))
    }

    /// `ca NAME key HOST install [PATH]`: PATH/private/local.key and
    /// PATH/local.pub (the raw public key the peers put in their
    /// pubkeys/TYPE/HOST).
    pub fn install_key(&self, host: &HostId, certdir: &Path) -> Result<String, String> {
        self.require()?;
        let key = self.read_host_key(host)?;
        files::make_certdir(certdir)?;
        install_local_key(certdir, &key)
    }

    /// `ca NAME key HOST pubkey [PATH]`: the public key of `host` where
    /// iked looks for the raw key of a peer with that identity,
    /// PATH/pubkeys/{fqdn,ipv4,ipv6,ufqdn}/HOST (run on the other gateway).
    pub fn install_peer_key(&self, host: &HostId, certdir: &Path) -> Result<String, String> {
        self.require()?;
        let key = self.read_host_key(host)?;
        files::make_certdir(certdir)?;
        let target = certdir
            .join("pubkeys")
            .join(host.pubkeys_dir())
            .join(host.to_string());
        files::write(
            &target,
            &key.public_key_to_pem().map_err(ssl("public key PEM"))?,
            PUBLIC_FILE,
        )?;
        Ok(format!(
            "public key of '{host}' ({}) installed into {} as a peer's raw key",
            describe_key(&key),
            target.display()
        ))
    }

    /// `ca NAME key HOST delete`.
    pub fn delete_key(&self, host: &HostId) -> Result<String, String> {
        self.require()?;
        let path = self.existing_host_key_path(host)?;
        fs::remove_file(&path).map_err(|e| format!("cannot delete {}: {e}", path.display()))?;
        Ok(format!("key for '{host}' deleted ({})", path.display()))
    }

    /// `ca NAME key HOST import FILE`: a private key from FILE (PEM or
    /// DER, PKCS#8 or the traditional forms), checked, stored as PKCS#8.
    pub fn import_key(&self, host: &HostId, file: &Path) -> Result<String, String> {
        self.require()?;
        let path = self.host_key_path(host);
        if path.exists() {
            return Err(format!(
                "a key for '{host}' exists already ({}): delete it first",
                path.display()
            ));
        }
        let bytes = files::read(file)?;
        let key = PKey::private_key_from_pem(&bytes)
            .or_else(|_| PKey::private_key_from_der(&bytes))
            .or_else(|_| PKey::private_key_from_pkcs8(&bytes))
            .map_err(|_| {
                format!(
                    "{}: no unencrypted private key in it (PEM or DER)",
                    file.display()
                )
            })?;
        check_key_type(&key, &file.display().to_string())?;
        write_private_key(&path, &key)?;
        Ok(format!(
            "key for '{host}' imported from {} into {} ({})",
            file.display(),
            path.display(),
            describe_key(&key)
        ))
    }
}

fn write_private_key(path: &Path, key: &PKey<Private>) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        files::make_dir(dir, PRIVATE_DIR)?;
    }
    let pem = key.private_key_to_pem_pkcs8().map_err(ssl("key PEM"))?;
    files::write_new(path, &pem, PRIVATE_FILE)
}

/// `private/local.key` (kept as `local.key.old` when it held another key)
/// and `local.pub`.
fn install_local_key(certdir: &Path, key: &PKey<Private>) -> Result<String, String> {
    let target = certdir.join("private").join("local.key");
    let pem = key.private_key_to_pem_pkcs8().map_err(ssl("key PEM"))?;
    let mut message = String::new();
    if let Ok(existing) = fs::read(&target) {
        let same = PKey::private_key_from_pem(&existing)
            .map(|old| old.public_eq(key))
            .unwrap_or(false);
        if !same {
            let backup = certdir.join("private").join("local.key.old");
            fs::rename(&target, &backup).map_err(|e| {
                format!(
                    "cannot keep the old {} as {}: {e}",
                    target.display(),
                    backup.display()
                )
            })?;
            message += &format!("the previous key is kept in {}\n", backup.display());
        }
    }
    files::write(&target, &pem, PRIVATE_FILE)?;
    let public = certdir.join("local.pub");
    files::write(
        &public,
        &key.public_key_to_pem().map_err(ssl("public key PEM"))?,
        PUBLIC_FILE,
    )?;
    message += &format!(
        "key installed into {} (mode 600), public key into {}",
        target.display(),
        public.display()
    );
    if !nix::unistd::geteuid().is_root() {
        message +=
            "\nnote: not run as root, so the files are not owned by root: iked refuses such keys";
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lines_read_back() {
        let entry = IndexEntry {
            status: 'R',
            expiry: "281202000000Z".into(),
            revoked_at: "261202000000Z".into(),
            serial: "0A".into(),
            host: "a@b.org".into(),
            subject: "/O=iked/CN=a@b.org".into(),
        };
        let line = entry.line();
        assert_eq!(IndexEntry::parse(line.trim_end_matches('\n')), Some(entry));
        assert_eq!(IndexEntry::parse("X\t1\t\t2\th\ts"), None);
        assert_eq!(IndexEntry::parse("V\t1\t2"), None);
    }

    #[test]
    fn ca_names_are_directory_names() {
        let base = Path::new("/nonexistent");
        assert!(Ca::at(base, "vpn-1.example").is_ok());
        for bad in ["", "..", ".hidden", "a/b", "-x", "a b"] {
            assert!(Ca::at(base, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serials_are_even_length_hex() {
        let n = Asn1Integer::from_bn(&BigNum::from_u32(10).unwrap()).unwrap();
        assert_eq!(serial_hex(&n).unwrap(), "0A");
        let n = Asn1Integer::from_bn(&BigNum::from_u32(0x1234).unwrap()).unwrap();
        assert_eq!(serial_hex(&n).unwrap(), "1234");
    }

    #[test]
    fn only_keys_iked_signs_with_are_imported() {
        let rsa = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        assert!(check_key_type(&rsa, "f").unwrap_err().contains("too short"));
        let p256 = new_key(KeyType::EcdsaP256).unwrap();
        assert!(check_key_type(&p256, "f").is_ok());
        let k1 = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::SECP256K1).unwrap()).unwrap(),
        )
        .unwrap();
        assert!(check_key_type(&k1, "f")
            .unwrap_err()
            .contains("does not sign"));
        assert!(check_key_type(&PKey::generate_ed25519().unwrap(), "f").is_ok());
    }
}

/// The commands end to end in-process, on a scratch directory.
#[cfg(test)]
mod cycle_tests {
    use super::*;
    use crate::ca::options::{parse_ca, parse_certificate};

    fn serial_of(cert: &X509) -> String {
        serial_hex(cert.serial_number()).unwrap()
    }

    #[test]
    fn create_issue_revoke_and_renew_keep_index_serials_and_crl_in_step() {
        let base = tempfile::tempdir().unwrap();
        let ca = Ca::at(base.path(), "t").unwrap();
        assert!(ca.require().unwrap_err().contains("does not exist"));
        ca.create(&parse_ca(&[]).unwrap()).unwrap();
        let host = HostId::parse("gw.example.org").unwrap();
        ca.issue(&host, &parse_certificate(&[]).unwrap()).unwrap();
        let cert = ca.host_certificate(&host).unwrap();
        assert_eq!(serial_of(&cert), "02");
        let index = ca.index().unwrap();
        assert_eq!(
            index
                .iter()
                .map(|e| (e.status, e.serial.as_str(), e.host.as_str()))
                .collect::<Vec<_>>(),
            [('V', "01", "ca"), ('V', "02", "gw.example.org")]
        );
        ca.revoke(&host).unwrap();
        let crl = X509Crl::from_pem(&fs::read(ca.crl_path()).unwrap()).unwrap();
        let ca_cert = ca.certificate().unwrap();
        assert!(crl.verify(&ca_cert.public_key().unwrap()).unwrap());
        let revoked = crl.get_revoked().unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(
            serial_hex(revoked.get(0).unwrap().serial_number()).unwrap(),
            "02"
        );
        // The revocation time recorded is the CRL's.
        let entry = &ca.index().unwrap()[1];
        assert_eq!(entry.status, 'R');
        let recorded = Asn1Time::from_str(&entry.revoked_at).unwrap();
        let in_crl = revoked.get(0).unwrap().revocation_date();
        let diff = recorded.diff(in_crl).unwrap();
        assert_eq!((diff.days, diff.secs), (0, 0));
        // A renewed CRL keeps the serial, with a higher number.
        let before = fs::read_to_string(ca.dir.join("crlnumber")).unwrap();
        ca.renew_crl().unwrap();
        let renewed = X509Crl::from_pem(&fs::read(ca.crl_path()).unwrap()).unwrap();
        assert_eq!(renewed.get_revoked().unwrap().len(), 1);
        let after = fs::read_to_string(ca.dir.join("crlnumber")).unwrap();
        assert_eq!((before.trim(), after.trim()), ("03", "04"));
    }

    #[test]
    fn concurrent_issues_get_distinct_serials() {
        let base = tempfile::tempdir().unwrap();
        let ca = Ca::at(base.path(), "t").unwrap();
        ca.create(&parse_ca(&[]).unwrap()).unwrap();
        let dir = base.path().to_path_buf();
        let threads: Vec<_> = (0..6)
            .map(|n| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let ca = Ca::at(&dir, "t").unwrap();
                    let host = HostId::parse(&format!("h{n}.example.org")).unwrap();
                    ca.issue(&host, &parse_certificate(&[]).unwrap()).unwrap();
                    serial_of(&ca.host_certificate(&host).unwrap())
                })
            })
            .collect();
        let mut serials: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        serials.sort();
        assert_eq!(serials, ["02", "03", "04", "05", "06", "07"]);
        assert_eq!(ca.index().unwrap().len(), 7);
    }

    #[test]
    fn a_half_made_ca_can_be_deleted_and_a_stranger_directory_cannot() {
        let base = tempfile::tempdir().unwrap();
        let ca = Ca::at(base.path(), "t").unwrap();
        ca.create(&parse_ca(&[]).unwrap()).unwrap();
        fs::remove_file(ca.cert_path()).unwrap();
        assert!(ca.require().is_err());
        ca.delete().unwrap();
        assert!(!ca.dir.exists());
        let stranger = Ca::at(base.path(), "other").unwrap();
        fs::create_dir_all(stranger.dir.join("private")).unwrap();
        assert!(stranger.delete().unwrap_err().contains("does not exist"));
        assert!(stranger.dir.join("private").exists());
    }

    #[test]
    fn a_replaced_host_key_is_noticed_before_install() {
        let base = tempfile::tempdir().unwrap();
        let ca = Ca::at(base.path(), "t").unwrap();
        ca.create(&parse_ca(&[]).unwrap()).unwrap();
        let host = HostId::parse("198.18.0.3").unwrap();
        ca.issue(&host, &parse_certificate(&[]).unwrap()).unwrap();
        fs::remove_file(ca.host_key_path(&host)).unwrap();
        ca.create_key(&host, KeyType::EcdsaP256).unwrap();
        let certdir = base.path().join("certdir");
        let error = ca.install_host(&host, &certdir).unwrap_err();
        assert!(error.contains("does not belong to"), "{error}");
        assert!(!certdir.join("private/local.key").exists());
    }
}
