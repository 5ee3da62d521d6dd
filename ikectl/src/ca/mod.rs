//! `ikectl ca ...` and `ikectl show ca NAME certificates`: a small X.509
//! certificate authority for iked and its peers, as OpenBSD's ikectl(8)
//! has, made with the openssl crate (never by running openssl(1)) and
//! writing iked's certdir layout (iked.conf(5), `set certdir`).
//!
//! These commands work on files only: no daemon is needed. CAs live under
//! /etc/ssl/NAME, or under `$IKECTL_CA_DIR/NAME` when that is set.

mod authority;
mod export;
mod files;
mod host;
mod options;
mod show;

use std::path::{Path, PathBuf};

use clap::Subcommand;

pub use authority::Ca;
pub use host::HostId;

/// Where CAs are kept, as OpenBSD's ikectl.
pub const DEFAULT_CA_BASE: &str = "/etc/ssl";
/// Overrides DEFAULT_CA_BASE (for tests, or to keep CAs elsewhere).
pub const CA_BASE_ENV: &str = "IKECTL_CA_DIR";
/// iked's certdir when `install` is given no PATH.
pub const DEFAULT_CERTDIR: &str = "/etc/iked";

/// `ikectl ca NAME ...`
#[derive(Subcommand, Debug)]
pub enum CaAction {
    /// Create the CA: a key and a self-signed certificate, and an empty CRL.
    Create {
        /// password PASS, ecdsa, rsa [BITS], days N, c CC, o ORG, ou UNIT, cn NAME
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        options: Vec<String>,
    },
    /// Delete the CA and everything it made.
    Delete,
    /// Install the CA certificate and CRL into a certdir.
    Install { path: Option<PathBuf> },
    /// Sign a new CRL, before the current one runs out.
    Crl,
    /// Certificates of a host: an FQDN, an IP address or user@fqdn.
    Certificate {
        host: String,
        #[command(subcommand)]
        action: CertificateAction,
    },
    /// Raw keys of a host.
    Key {
        host: String,
        #[command(subcommand)]
        action: KeyAction,
    },
}

/// `ikectl ca NAME certificate HOST ...`
#[derive(Subcommand, Debug)]
pub enum CertificateAction {
    /// Make a key (unless the host has one) and a certificate signed by the CA.
    Create {
        /// server, client, ocsp, ecdsa, rsa [BITS], days N, altname HOST, c, o, ou, cn
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        options: Vec<String>,
    },
    /// Delete the host's certificate and key.
    Delete,
    /// Install the certificate and key into a certdir.
    Install { path: Option<PathBuf> },
    /// Write HOST.tgz for the peer.
    Export {
        /// peer PEER, password PASS
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        options: Vec<String>,
    },
    /// Revoke the certificate and sign a new CRL.
    Revoke,
}

/// `ikectl ca NAME key HOST ...`
#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// Make a private key.
    Create {
        /// ecdsa, rsa [BITS]
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        options: Vec<String>,
    },
    /// Install the key as local.key and local.pub into a certdir.
    Install { path: Option<PathBuf> },
    /// Delete the key.
    Delete,
    /// Take the key from a file.
    Import { file: PathBuf },
    /// Install the public key as a peer's raw key: PATH/pubkeys/TYPE/HOST.
    Pubkey { path: Option<PathBuf> },
}

/// The directory CAs are kept in.
pub fn ca_base() -> PathBuf {
    std::env::var_os(CA_BASE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CA_BASE))
}

fn certdir(path: &Option<PathBuf>) -> &Path {
    path.as_deref().unwrap_or(Path::new(DEFAULT_CERTDIR))
}

/// The host a command names; "ca" is refused, since its files would be
/// the CA's own (ca.crt, private/ca.key).
fn host(text: &str) -> Result<HostId, String> {
    let host = HostId::parse(text)?;
    if host == HostId::Fqdn("ca".into()) {
        return Err("'ca' names the CA's own files (ca.crt, private/ca.key): \
                    choose another host name"
            .into());
    }
    Ok(host)
}

/// `password -` reads the password from the first line of standard
/// input, out of the process list.
fn resolve_password(password: &mut Option<String>) -> Result<(), String> {
    if password.as_deref() != Some("-") {
        return Ok(());
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let line = line.trim_end_matches(['\n', '\r']);
    if line.len() < options::MIN_PASSWORD {
        return Err(format!(
            "the password read from standard input must have at least {} characters",
            options::MIN_PASSWORD
        ));
    }
    *password = Some(line.to_string());
    Ok(())
}

/// Carries out `ikectl ca NAME ACTION` on the CAs under `base`, exports
/// going to `out_dir`.
pub fn run_in(
    base: &Path,
    out_dir: &Path,
    name: &str,
    action: &CaAction,
) -> Result<String, String> {
    let ca = Ca::at(base, name)?;
    match action {
        CaAction::Create { options } => {
            let mut options = options::parse_ca(options)?;
            resolve_password(&mut options.password)?;
            ca.create(&options)
        }
        CaAction::Delete => ca.delete(),
        CaAction::Install { path } => ca.install(certdir(path)),
        CaAction::Crl => ca.renew_crl(),
        CaAction::Certificate { host: name, action } => {
            let host = host(name)?;
            match action {
                CertificateAction::Create { options } => {
                    ca.issue(&host, &options::parse_certificate(options)?)
                }
                CertificateAction::Delete => ca.delete_host(&host),
                CertificateAction::Install { path } => ca.install_host(&host, certdir(path)),
                CertificateAction::Export { options } => {
                    let mut options = options::parse_export(options)?;
                    resolve_password(&mut options.password)?;
                    export::export(&ca, &host, &options, out_dir)
                }
                CertificateAction::Revoke => ca.revoke(&host),
            }
        }
        CaAction::Key { host: name, action } => {
            let host = host(name)?;
            match action {
                KeyAction::Create { options } => {
                    ca.create_key(&host, options::parse_key(options)?.key)
                }
                KeyAction::Install { path } => ca.install_key(&host, certdir(path)),
                KeyAction::Delete => ca.delete_key(&host),
                KeyAction::Import { file } => ca.import_key(&host, file),
                KeyAction::Pubkey { path } => ca.install_peer_key(&host, certdir(path)),
            }
        }
    }
}

/// `ikectl ca NAME ACTION` with the CA directory of the environment and
/// exports into the current directory.
pub fn run(name: &str, action: &CaAction) -> Result<String, String> {
    run_in(&ca_base(), Path::new("."), name, action)
}

/// `ikectl show ca NAME certificates [HOST]`.
pub fn show_certificates_in(base: &Path, name: &str, host: Option<&str>) -> Result<String, String> {
    let ca = Ca::at(base, name)?;
    let host = host.map(self::host).transpose()?;
    show::show(&ca, host.as_ref())
}

pub fn show_certificates(name: &str, host: Option<&str>) -> Result<String, String> {
    show_certificates_in(&ca_base(), name, host)
}
