//! The global `set` options that are not about one subsystem: the engine's
//! tunables (retransmission, half-open SAs and cookies, Child SA caps),
//! `enforcesingleikesa`, `couple|decouple`, and the OpenBSD options this
//! daemon does not implement, refused by name.

use serde::{Deserialize, Serialize};

use super::lexer::TokenKind;
use super::{Config, ConfigError, Location};

/// The engine settings an operator may tune (iked.conf(5) `set ...`), each
/// with the bounds `set` accepts. The engine starts from [`Default`], the
/// values it used when these were fixed in code.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineTunables {
    /// `set retransmit_timeout N`: seconds before the first retransmission
    /// of a request, doubling each time (RFC 7296 §2.1).
    pub retransmit_timeout_secs: u32,
    /// `set retransmit_tries N`: transmissions of a request before the peer
    /// is declared dead.
    pub retransmit_tries: u32,
    /// `set half_open_timeout N`: seconds a responder keeps a half-open
    /// IKE SA.
    pub half_open_timeout_secs: u32,
    /// `set cookie_threshold N`: above this many half-open IKE SAs an
    /// IKE_SA_INIT needs a COOKIE (RFC 7296 §2.6); 0: always.
    pub cookie_threshold: u32,
    /// `set half_open_max N`: above this many half-open IKE SAs new
    /// IKE_SA_INIT requests are dropped.
    pub half_open_max: u32,
    /// `set half_open_per_source N`: half-open IKE SAs one address (an
    /// IPv6 /64) may hold without a cookie; 0: no such limit.
    pub half_open_per_source: u32,
    /// `set childsa_max_per_ikesa N`: Child SAs one IKE SA may hold.
    pub child_sas_per_ike_sa: u32,
    /// `set childsa_max_per_policy N`: Child SAs all IKE SAs of one policy
    /// may hold together.
    pub child_sas_per_policy: u32,
    /// `set enforcesingleikesa|noenforcesingleikesa`: a new IKE SA of a
    /// policy with a peer identity replaces (deletes, with the peer) the
    /// older ones of that policy and identity.
    pub enforce_single_ike_sa: bool,
}

impl Default for EngineTunables {
    fn default() -> Self {
        EngineTunables {
            retransmit_timeout_secs: 2,
            retransmit_tries: 5,
            half_open_timeout_secs: 30,
            cookie_threshold: 500,
            half_open_max: 20_000,
            // strongSwan's per-IP default (charon.block_threshold).
            half_open_per_source: 5,
            child_sas_per_ike_sa: crate::limits::MAX_CHILD_SAS_PER_IKE_SA as u32,
            child_sas_per_policy: crate::limits::MAX_CHILD_SAS_PER_POLICY as u32,
            // As OpenBSD iked: off.
            enforce_single_ike_sa: false,
        }
    }
}

/// A numeric tunable: its keyword, its bounds, what it counts, and where
/// it lives in [`EngineTunables`].
pub struct Tunable {
    pub keyword: &'static str,
    pub min: u32,
    pub max: u32,
    pub unit: &'static str,
    pub get: fn(&EngineTunables) -> u32,
    set: fn(&mut EngineTunables, u32),
}

/// Every numeric tunable. The Child SA caps may only be lowered: pfkey
/// checks what reaches the kernel against the compiled-in limits
/// (`common/src/limits.rs`), whatever the configuration says.
pub const TUNABLES: &[Tunable] = &[
    Tunable {
        keyword: "retransmit_timeout",
        min: 1,
        max: 60,
        unit: "seconds",
        get: |t| t.retransmit_timeout_secs,
        set: |t, v| t.retransmit_timeout_secs = v,
    },
    Tunable {
        keyword: "retransmit_tries",
        min: 1,
        max: 20,
        unit: "transmissions",
        get: |t| t.retransmit_tries,
        set: |t, v| t.retransmit_tries = v,
    },
    Tunable {
        keyword: "half_open_timeout",
        min: 5,
        max: 600,
        unit: "seconds",
        get: |t| t.half_open_timeout_secs,
        set: |t, v| t.half_open_timeout_secs = v,
    },
    Tunable {
        keyword: "cookie_threshold",
        min: 0,
        max: 1_000_000,
        unit: "half-open IKE SAs",
        get: |t| t.cookie_threshold,
        set: |t, v| t.cookie_threshold = v,
    },
    Tunable {
        keyword: "half_open_max",
        min: 1,
        max: 1_000_000,
        unit: "half-open IKE SAs",
        get: |t| t.half_open_max,
        set: |t, v| t.half_open_max = v,
    },
    Tunable {
        keyword: "half_open_per_source",
        min: 0,
        max: 10_000,
        unit: "half-open IKE SAs",
        get: |t| t.half_open_per_source,
        set: |t, v| t.half_open_per_source = v,
    },
    Tunable {
        keyword: "childsa_max_per_ikesa",
        min: 1,
        max: crate::limits::MAX_CHILD_SAS_PER_IKE_SA as u32,
        unit: "Child SAs",
        get: |t| t.child_sas_per_ike_sa,
        set: |t, v| t.child_sas_per_ike_sa = v,
    },
    Tunable {
        keyword: "childsa_max_per_policy",
        min: 1,
        max: crate::limits::MAX_CHILD_SAS_PER_POLICY as u32,
        unit: "Child SAs",
        get: |t| t.child_sas_per_policy,
        set: |t, v| t.child_sas_per_policy = v,
    },
];

/// OpenBSD iked.conf(5) `set` options this daemon refuses, with why: a
/// keyword that is read but does nothing would mislead the operator.
pub const REFUSED_OPTIONS: &[(&str, &str)] = &[
    (
        "vendorid",
        "iked sends no Vendor ID payload (use 'set novendorid', the behaviour it has)",
    ),
    (
        "cert_partial_chain",
        "not implemented: a peer's chain must end at a CA in the certificate store's ca/ \
         directory",
    ),
    (
        "ocsp",
        "OCSP is not implemented: revocation is checked against the CRLs in the certificate \
         store's crls/ directory",
    ),
    (
        "stickyaddress",
        "not implemented: leases are per policy and given up with the IKE SA",
    ),
    (
        "nostickyaddress",
        "not implemented: leases are per policy and given up with the IKE SA",
    ),
    (
        "radius",
        "RADIUS is not implemented: EAP users are the 'user' lines of iked.conf",
    ),
];

fn error(location: &Location, message: impl Into<String>) -> ConfigError {
    ConfigError {
        location: location.clone(),
        message: message.into(),
    }
}

/// `set OPTION [VALUE]` for the options of this module: `None` if `option`
/// is not one of them, else how many words after the option it took.
pub(super) fn set_option(
    config: &mut Config,
    option: &str,
    argument: Option<&(TokenKind, &Location)>,
    at: &Location,
) -> Option<Result<usize, ConfigError>> {
    let flag = |config: &mut Config, apply: fn(&mut Config)| {
        apply(config);
        Some(Ok(0))
    };
    match option {
        "couple" => return flag(config, |c| c.couple = true),
        "decouple" => return flag(config, |c| c.couple = false),
        "enforcesingleikesa" => return flag(config, |c| c.engine.enforce_single_ike_sa = true),
        "noenforcesingleikesa" => return flag(config, |c| c.engine.enforce_single_ike_sa = false),
        // What iked does anyway: it sends no Vendor ID.
        "novendorid" => return Some(Ok(0)),
        _ => {}
    }
    if let Some((_, why)) = REFUSED_OPTIONS.iter().find(|(name, _)| *name == option) {
        return Some(Err(error(at, format!("'set {option}' is refused: {why}"))));
    }
    let tunable = TUNABLES.iter().find(|t| t.keyword == option)?;
    let expected = format!("expected {}..{} {}", tunable.min, tunable.max, tunable.unit);
    let Some((TokenKind::Word(value), value_at)) = argument else {
        return Some(Err(error(
            at,
            format!("set {option} needs a number: {expected}"),
        )));
    };
    match value
        .parse::<u32>()
        .ok()
        .filter(|v| (tunable.min..=tunable.max).contains(v))
    {
        Some(v) => {
            (tunable.set)(&mut config.engine, v);
            Some(Ok(1))
        }
        None => Some(Err(error(
            value_at,
            format!("invalid {option} '{value}': {expected}"),
        ))),
    }
}

/// The checks between tunables, once the whole file is read: `written`
/// are the tunables `set` gave, with where (the error names the later).
pub(super) fn check(config: &Config, written: &[(String, Location)]) -> Result<(), ConfigError> {
    let t = &config.engine;
    if t.cookie_threshold > t.half_open_max {
        let at = written
            .iter()
            .rev()
            .find(|(k, _)| k == "cookie_threshold" || k == "half_open_max")
            .map(|(_, at)| at.clone())
            .unwrap_or_default();
        return Err(error(
            &at,
            format!(
                "cookie_threshold {} is above half_open_max {}: past the cap requests are \
                 dropped, so cookies would never be asked for",
                t.cookie_threshold, t.half_open_max
            ),
        ));
    }
    Ok(())
}

/// The `set` lines of this module's options, defaults included.
pub(super) fn print_lines(config: &Config) -> Vec<String> {
    let mut lines = vec![
        if config.couple {
            "set couple"
        } else {
            "set decouple"
        }
        .to_string(),
        if config.engine.enforce_single_ike_sa {
            "set enforcesingleikesa"
        } else {
            "set noenforcesingleikesa"
        }
        .to_string(),
        "set novendorid".to_string(),
    ];
    lines.extend(
        TUNABLES
            .iter()
            .map(|t| format!("set {} {}", t.keyword, (t.get)(&config.engine))),
    );
    lines
}
