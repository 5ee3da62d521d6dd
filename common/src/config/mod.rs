//! iked.conf(5): the configuration language, modelled on OpenBSD's.
//!
//! The whole file is parsed before anything is applied; an error names
//! `file:line:col` and the old configuration stays in force.

pub mod checks;
pub mod dn;
mod lexer;
mod parser;
mod policy;
mod policy_order;
mod policy_parser;
mod print;
mod remote_access;
mod settings;

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::kernel::KernelSocketKind;

pub use parser::{parse_file, parse_str};
pub use policy::{
    AuthSpec, ConfigAttributeSpec, EapMethod, Encapsulation, IdentitySpec, Policy,
    PolicyInitiation, PolicyMatch, PreSharedKey, Prefix, ProposalSpec, RemoteAccess, SignatureAuth,
    TransformSpec, UserCredential, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG, TRANSFORM_KE,
    TRANSFORM_PRF,
};
pub use policy_order::{
    preference_order, warnings as order_warnings, MAX_FLOWS_PER_POLICY, MAX_LIST_ENTRIES,
};
pub use policy_parser::{DEFAULT_CHILD_LIFETIME, DEFAULT_IKE_LIFETIME};
pub use print::{normalized, normalized_brief, HIDDEN_SECRET};
pub use settings::{EngineTunables, REFUSED_OPTIONS, TUNABLES};

/// Largest configuration file read, so a runaway include cannot eat memory.
pub const MAX_FILE_SIZE: u64 = 4 << 20;
/// Deepest `include` nesting.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Longest group name `set control_group` takes (the limit of
/// shadow-utils' groupadd on Linux).
pub const MAX_GROUP_NAME: usize = 32;

/// Whether `name` can be a system group name: letters, digits, `_`, `-`
/// and `.`, not starting with `-`, an optional trailing `$` (Samba's
/// machine accounts), at most [`MAX_GROUP_NAME`] characters.
pub fn is_group_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    !body.is_empty()
        && name.len() <= MAX_GROUP_NAME
        && !body.starts_with('-')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Whether policies start negotiating on their own (`set active|passive`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitiationMode {
    Active,
    Passive,
}

/// A parsed configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `set active|passive`: whether active policies initiate on their own.
    pub mode: InitiationMode,
    /// `set kernel xfrm|pfkey`; `None` means XFRM with a PF_KEY fallback.
    pub kernel: Option<KernelSocketKind>,
    /// `set dpd_check_interval N` (seconds; 0 disables DPD).
    pub dpd_check_interval: u32,
    /// `set control_group NAME`: besides root, members of this group may
    /// use the control socket. `None` leaves it to root alone.
    pub control_group: Option<String>,
    /// `set routes|noroutes` and `set routing_table N`.
    pub routing: crate::routing::RouteSettings,
    /// `set certdir "DIR"`: the certificate store (ca/, certs/, crls/,
    /// private/local.key, pubkeys/), read by the parent for ca-proc only.
    pub certdir: String,
    /// `set fragmentation|nofragmentation` and `set fragment_size N`
    /// (IKE fragmentation, RFC 7383).
    pub fragmentation: FragmentationSettings,
    /// `set mobike|nomobike` (RFC 4555): whether we announce
    /// MOBIKE_SUPPORTED and follow a peer's UPDATE_SA_ADDRESSES. On by
    /// default, as in OpenBSD iked and strongSwan.
    pub mobike: bool,
    /// `user "name" "password"` lines: EAP users, for ca-proc only.
    pub users: Vec<UserCredential>,
    /// The `ikev2` policies, in file order.
    pub policies: Vec<Policy>,
    /// Pre-shared keys by policy name: for ca-proc only.
    pub psks: Vec<(String, PreSharedKey)>,
    /// `set couple|decouple`: whether our kernel policies (flows) are
    /// loaded; `ikectl couple|decouple` changes it at run time.
    pub couple: bool,
    /// The engine's tunables and `set enforcesingleikesa` (settings.rs).
    pub engine: EngineTunables,
    /// Where each policy was written, for the checks after the parse
    /// (checks.rs). Never sent: the children get no file positions.
    #[serde(skip)]
    pub sources: checks::SourceMap,
}

/// Where the certificate store is when iked.conf does not say (as OpenBSD's iked).
pub const DEFAULT_CERTDIR: &str = "/etc/iked";

/// IKE fragmentation (RFC 7383): whether we announce and use it, and the
/// largest IP datagram an IKE message may make before it is fragmented.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentationSettings {
    pub enabled: bool,
    /// Bytes of the whole IP datagram (IP and UDP headers included).
    pub max_datagram: u16,
}

/// What `set fragment_size` accepts: from the 576 bytes every IPv4 host
/// must take (RFC 7383 §2.5.1 recommends it for IPv4) to the largest UDP
/// datagram.
pub const FRAGMENT_SIZE_RANGE: std::ops::RangeInclusive<u16> = 576..=65535;

impl Default for FragmentationSettings {
    /// On, as in strongSwan and libreswan (OpenBSD's iked defaults to off);
    /// 1280 bytes fits the smallest IPv6 path (RFC 7383 §2.5.1).
    fn default() -> Self {
        FragmentationSettings {
            enabled: true,
            max_datagram: 1280,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: InitiationMode::Active,
            kernel: None,
            dpd_check_interval: 60,
            control_group: None,
            routing: crate::routing::RouteSettings::default(),
            certdir: DEFAULT_CERTDIR.to_string(),
            fragmentation: FragmentationSettings::default(),
            mobike: true,
            users: Vec::new(),
            policies: Vec::new(),
            psks: Vec::new(),
            couple: true,
            engine: EngineTunables::default(),
            sources: checks::SourceMap::default(),
        }
    }
}

/// Where in which file something is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A configuration error, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: about the whole file (it cannot be opened, or its mode
        // is refused), whose name the message already starts with.
        if self.location.line == 0 {
            return f.write_str(&self.message);
        }
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A `-D name=value` definition from the command line.
pub fn parse_macro_definition(definition: &str) -> Result<(String, String), String> {
    match definition.split_once('=') {
        Some((name, value)) if lexer::is_macro_name(name) => {
            Ok((name.to_string(), value.to_string()))
        }
        _ => Err(format!(
            "invalid macro definition {definition:?}: expected name=value"
        )),
    }
}

/// Whether a file that holds secrets (iked.conf and what it includes, key
/// files) is kept as OpenBSD iked demands: owned by root (or by the user
/// reading it, for `iked -n` run unprivileged; the daemon is root, so for
/// it only root) and neither readable nor writable by group or others. The
/// error names what is wrong and how to fix it; the caller adds the file.
pub fn check_secret_file_mode(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let reader = nix::unistd::Uid::effective().as_raw();
    if meta.uid() != 0 && meta.uid() != reader {
        return Err(format!(
            "owned by uid {}, not root: refusing a file others could change (chown root)",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {mode:04o} lets group or others read or write it: \
             refusing a file that holds secrets (chmod 600)"
        ));
    }
    Ok(())
}

/// Reads a file with the size cap, naming the file in the error. The file
/// must pass [`check_secret_file_mode`], checked on the descriptor read.
fn read_capped(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    check_secret_file_mode(&meta)?;
    let mut text = String::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(format!("larger than {MAX_FILE_SIZE} bytes"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_auth;
#[cfg(test)]
mod tests_print;
#[cfg(test)]
mod tests_remote_access;
#[cfg(test)]
mod tests_settings;
