//! The words after a `ca` command, in the keyword style of OpenBSD's
//! ikectl(8) (`password PASS`, `server`, ...), checked one by one with an
//! error naming the word that is wrong.

use super::host::HostId;

/// Validity of a new CA certificate, in days (ten years).
pub const CA_DAYS: u32 = 3650;
/// Validity of a new host certificate, in days (two years).
pub const HOST_DAYS: u32 = 730;
/// The longest validity `days` accepts (a hundred years).
const MAX_DAYS: u32 = 36_500;
/// RSA modulus size of keys made with `rsa` (NIST SP 800-57: 128-bit
/// security, like P-256).
pub const RSA_BITS: u32 = 3072;
/// The most `altname` a certificate takes.
const MAX_ALTNAMES: usize = 32;
/// ub-common-name and friends (RFC 5280 appendix A.1).
const MAX_DN_VALUE: usize = 64;

/// The key of a new CA or host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    EcdsaP256,
    Rsa(u32),
}

/// What the subject DN says besides the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub country: Option<String>,
    pub organization: Option<String>,
    pub unit: Option<String>,
    pub common_name: Option<String>,
}

/// `ca NAME create ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOptions {
    pub password: Option<String>,
    pub key: KeyType,
    pub days: u32,
    pub subject: Subject,
}

/// The extendedKeyUsage of a host certificate, as OpenBSD's
/// `server | client | ocsp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// serverAuth and clientAuth (and ikeIntermediate): the default.
    ServerAndClient,
    Server,
    Client,
    Ocsp,
}

/// `ca NAME certificate HOST create ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertOptions {
    pub usage: Usage,
    /// None: ECDSA P-256, or the type of the host key made before.
    pub key: Option<KeyType>,
    pub days: u32,
    pub altnames: Vec<HostId>,
    pub subject: Subject,
}

/// `ca NAME certificate HOST export ...`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    pub peer: Option<String>,
    pub password: Option<String>,
}

/// `ca NAME key HOST create ...`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOptions {
    pub key: KeyType,
}

/// Walks the words, handing out keyword values.
struct Words<'a> {
    words: std::slice::Iter<'a, String>,
    command: &'a str,
}

impl<'a> Words<'a> {
    fn new(words: &'a [String], command: &'a str) -> Words<'a> {
        Words {
            words: words.iter(),
            command,
        }
    }

    fn value(&mut self, keyword: &str) -> Result<&'a str, String> {
        self.words
            .next()
            .map(String::as_str)
            .ok_or_else(|| format!("'{keyword}' needs a value in '{}'", self.command))
    }

    fn unknown(&self, word: &str, expected: &str) -> String {
        format!(
            "unknown option '{word}' for '{}': expected {expected}",
            self.command
        )
    }
}

fn days(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(days) if (1..=MAX_DAYS).contains(&days) => Ok(days),
        _ => Err(format!(
            "days '{text}' is not a number of days from 1 to {MAX_DAYS}"
        )),
    }
}

fn rsa_bits(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(bits @ (2048 | 3072 | 4096 | 8192)) => Ok(bits),
        _ => Err(format!(
            "rsa key size '{text}' is not one of 2048, 3072, 4096, 8192"
        )),
    }
}

fn dn_value(keyword: &str, text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > MAX_DN_VALUE {
        return Err(format!(
            "{keyword} '{text}' must have 1 to {MAX_DN_VALUE} characters"
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{keyword} {text:?} has a control character"));
    }
    Ok(text.to_string())
}

fn country(text: &str) -> Result<String, String> {
    if text.len() == 2 && text.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(format!(
            "country '{text}' is not a two-letter code (ISO 3166, as C=DE)"
        ))
    }
}

/// Takes a subject keyword (`c`, `o`, `ou`, `cn`) if `word` is one.
fn subject_word(word: &str, words: &mut Words<'_>, subject: &mut Subject) -> Result<bool, String> {
    match word {
        "c" => subject.country = Some(country(words.value(word)?)?),
        "o" => subject.organization = Some(dn_value(word, words.value(word)?)?),
        "ou" => subject.unit = Some(dn_value(word, words.value(word)?)?),
        "cn" => subject.common_name = Some(dn_value(word, words.value(word)?)?),
        _ => return Ok(false),
    }
    Ok(true)
}

/// `rsa [BITS]` or `ecdsa`; a number after `rsa` is its size.
fn key_word(word: &str, words: &mut Words<'_>) -> Result<Option<KeyType>, String> {
    Ok(match word {
        "ecdsa" => Some(KeyType::EcdsaP256),
        "rsa" => {
            let mut peek = words.words.clone();
            match peek.next() {
                Some(bits) if bits.chars().all(|c| c.is_ascii_digit()) => {
                    words.words = peek;
                    Some(KeyType::Rsa(rsa_bits(bits)?))
                }
                _ => Some(KeyType::Rsa(RSA_BITS)),
            }
        }
        _ => None,
    })
}

/// The shortest password taken.
pub const MIN_PASSWORD: usize = 4;

/// A password, or "-" for one read from standard input.
fn password(text: &str) -> Result<String, String> {
    if text != "-" && text.len() < MIN_PASSWORD {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD} characters"
        ));
    }
    Ok(text.to_string())
}

pub fn parse_ca(words: &[String]) -> Result<CaOptions, String> {
    let mut options = CaOptions {
        password: None,
        key: KeyType::EcdsaP256,
        days: CA_DAYS,
        subject: Subject::default(),
    };
    let mut words = Words::new(words, "ca NAME create");
    while let Some(word) = words.words.next() {
        if let Some(key) = key_word(word, &mut words)? {
            options.key = key;
            continue;
        }
        if subject_word(word, &mut words, &mut options.subject)? {
            continue;
        }
        match word.as_str() {
            "password" => options.password = Some(password(words.value(word)?)?),
            "days" => options.days = days(words.value(word)?)?,
            _ => {
                return Err(words.unknown(
                    word,
                    "password PASS, ecdsa, rsa [BITS], days N, c CC, o ORG, ou UNIT, cn NAME",
                ))
            }
        }
    }
    Ok(options)
}

pub fn parse_certificate(words: &[String]) -> Result<CertOptions, String> {
    let mut options = CertOptions {
        usage: Usage::ServerAndClient,
        key: None,
        days: HOST_DAYS,
        altnames: Vec::new(),
        subject: Subject::default(),
    };
    let mut words = Words::new(words, "ca NAME certificate HOST create");
    while let Some(word) = words.words.next() {
        if let Some(key) = key_word(word, &mut words)? {
            options.key = Some(key);
            continue;
        }
        if subject_word(word, &mut words, &mut options.subject)? {
            continue;
        }
        match word.as_str() {
            "server" => options.usage = Usage::Server,
            "client" => options.usage = Usage::Client,
            "ocsp" => options.usage = Usage::Ocsp,
            "days" => options.days = days(words.value(word)?)?,
            "altname" => {
                let name = HostId::parse(words.value(word)?)?;
                if options.altnames.len() == MAX_ALTNAMES {
                    return Err(format!("at most {MAX_ALTNAMES} altname"));
                }
                if !options.altnames.contains(&name) {
                    options.altnames.push(name);
                }
            }
            _ => {
                return Err(words.unknown(
                    word,
                    "server, client, ocsp, ecdsa, rsa [BITS], days N, altname HOST, \
                     c CC, o ORG, ou UNIT, cn NAME",
                ))
            }
        }
    }
    Ok(options)
}

pub fn parse_export(words: &[String]) -> Result<ExportOptions, String> {
    let mut options = ExportOptions::default();
    let mut words = Words::new(words, "ca NAME certificate HOST export");
    while let Some(word) = words.words.next() {
        match word.as_str() {
            "peer" => options.peer = Some(dn_value(word, words.value(word)?)?),
            "password" => options.password = Some(password(words.value(word)?)?),
            _ => return Err(words.unknown(word, "peer PEER, password PASS")),
        }
    }
    Ok(options)
}

pub fn parse_key(words: &[String]) -> Result<KeyOptions, String> {
    let mut options = KeyOptions {
        key: KeyType::EcdsaP256,
    };
    let mut words = Words::new(words, "ca NAME key HOST create");
    while let Some(word) = words.words.next() {
        match key_word(word, &mut words)? {
            Some(key) => options.key = key,
            None => return Err(words.unknown(word, "ecdsa, rsa [BITS]")),
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_are_ecdsa_p256_and_the_documented_validity() {
        let ca = parse_ca(&[]).unwrap();
        assert_eq!(
            (ca.key, ca.days, ca.password),
            (KeyType::EcdsaP256, 3650, None)
        );
        let cert = parse_certificate(&[]).unwrap();
        assert_eq!(
            (cert.key, cert.days, cert.usage),
            (None, 730, Usage::ServerAndClient)
        );
    }

    #[test]
    fn keywords_set_what_they_name() {
        let ca = parse_ca(&words(
            "password s3cret rsa c de o Example cn Root days 100",
        ))
        .unwrap();
        assert_eq!(ca.password.as_deref(), Some("s3cret"));
        assert_eq!(ca.key, KeyType::Rsa(3072));
        assert_eq!(ca.subject.country.as_deref(), Some("DE"));
        assert_eq!(ca.subject.organization.as_deref(), Some("Example"));
        assert_eq!(ca.subject.common_name.as_deref(), Some("Root"));
        assert_eq!(ca.days, 100);
        let cert = parse_certificate(&words("server rsa 4096 altname 198.18.0.9 altname a@b.org"))
            .unwrap();
        assert_eq!(cert.usage, Usage::Server);
        assert_eq!(cert.key, Some(KeyType::Rsa(4096)));
        assert_eq!(
            cert.altnames,
            [
                HostId::Ip("198.18.0.9".parse().unwrap()),
                HostId::UserFqdn("a@b.org".into())
            ]
        );
        let export = parse_export(&words("peer 198.18.0.1 password abcd")).unwrap();
        assert_eq!(export.peer.as_deref(), Some("198.18.0.1"));
        assert_eq!(
            parse_key(&words("rsa 2048")).unwrap().key,
            KeyType::Rsa(2048)
        );
    }

    #[test]
    fn bad_words_are_named() {
        for (text, expected) in [
            ("bogus", "unknown option 'bogus'"),
            ("password", "'password' needs a value"),
            ("password abc", "at least 4"),
            ("days 0", "days '0'"),
            ("days many", "days 'many'"),
            ("c Germany", "country 'Germany'"),
            ("rsa 1024", "rsa key size '1024'"),
        ] {
            let error = parse_ca(&words(text)).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let error = parse_certificate(&words("altname bad..name")).unwrap_err();
        assert!(error.contains("empty label"), "{error}");
        assert!(parse_export(&words("rsa"))
            .unwrap_err()
            .contains("unknown option 'rsa'"));
    }
}
