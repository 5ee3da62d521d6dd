//! Counters (`ikectl show stats`) and SA events (`ikectl monitor`) as they
//! travel between the processes and to ikectl. The JSON that ikectl prints
//! from them is documented in doc/ikectl-json.md.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Version of the JSON schema of `show stats --json` and `monitor --json`.
pub const STATS_JSON_VERSION: u32 = 1;

/// Most monitor clients at once; they are control clients too, so this is
/// also bounded by the control socket's client cap.
pub const MAX_MONITORS: usize = 16;

/// The exchange types counted one by one; anything else is "other".
pub const EXCHANGE_NAMES: [&str; 5] = [
    "IKE_SA_INIT",
    "IKE_AUTH",
    "CREATE_CHILD_SA",
    "INFORMATIONAL",
    "other",
];

/// Messages by exchange type, indexed as [`EXCHANGE_NAMES`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExchangeCounts(pub [u64; 5]);

impl ExchangeCounts {
    /// Counts one message of exchange type `exchange` (the IKE header's
    /// octet, RFC 7296 §3.1: 34 to 37, anything else is "other").
    pub fn count(&mut self, exchange: u8) {
        let index = match exchange {
            34..=37 => usize::from(exchange - 34),
            _ => 4,
        };
        self.0[index] = self.0[index].saturating_add(1);
    }

    /// The count of exchange `name` (one of [`EXCHANGE_NAMES`]).
    pub fn get(&self, name: &str) -> u64 {
        EXCHANGE_NAMES
            .iter()
            .position(|n| *n == name)
            .map_or(0, |i| self.0[i])
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        EXCHANGE_NAMES.iter().copied().zip(self.0.iter().copied())
    }
}

/// Why an IKE_AUTH failed, as counted. A fixed set, so that a peer cannot
/// grow the table with reasons of its choosing.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// The peer's AUTH payload did not verify (a wrong PSK, a bad
    /// signature): we answered AUTHENTICATION_FAILED.
    PeerAuthInvalid,
    /// The peer refused ours (it sent AUTHENTICATION_FAILED).
    RefusedByPeer,
    /// No policy matches the identity the peer gave, or it is not the
    /// responder identity the policy expects.
    Identity,
    /// The certificate the peer sent did not verify, or we have no store.
    Certificate,
    /// EAP failed (RFC 7296 §2.16).
    Eap,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 5] = [
        AuthFailure::PeerAuthInvalid,
        AuthFailure::RefusedByPeer,
        AuthFailure::Identity,
        AuthFailure::Certificate,
        AuthFailure::Eap,
    ];

    /// The name in `show stats` and its JSON.
    pub fn name(self) -> &'static str {
        match self {
            AuthFailure::PeerAuthInvalid => "peer_auth_invalid",
            AuthFailure::RefusedByPeer => "refused_by_peer",
            AuthFailure::Identity => "identity",
            AuthFailure::Certificate => "certificate",
            AuthFailure::Eap => "eap",
        }
    }
}

/// What the ikev2 engine counts, plain integers bumped where things happen
/// (engine/stats.rs), and the SAs by state, counted when asked.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct EngineStats {
    /// IKE SAs by state name ("established", "SA_INIT sent", ...).
    pub ike_sas: BTreeMap<String, u64>,
    /// Child SAs by state name.
    pub child_sas: BTreeMap<String, u64>,
    /// Responder IKE SAs not yet authenticated.
    pub half_open: u64,
    /// IKE_SA_INIT requests answered with a COOKIE (RFC 7296 §2.6).
    pub cookies_sent: u64,
    pub messages_in: ExchangeCounts,
    pub messages_out: ExchangeCounts,
    /// Requests sent again for want of an answer (RFC 7296 §2.1).
    pub retransmits: u64,
    /// Requests given up after the last retransmission.
    pub timeouts: u64,
    /// IKE SAs that came up (established by IKE_AUTH or by a rekey).
    pub ike_sas_up: u64,
    /// Child SAs installed.
    pub child_sas_up: u64,
    /// Failed authentications by reason, in [`AuthFailure::ALL`] order.
    pub auth_failures: [u64; 5],
    /// pfkey requests the kernel refused (an SA, a policy, an SPI).
    pub kernel_errors: u64,
    /// Events sent towards the parent for `ikectl monitor`.
    pub events: u64,
    /// Failed-negotiation events not sent: past the rate limit (a remote
    /// party can cause those at will).
    pub events_held_back: u64,
}

impl EngineStats {
    pub fn auth_failure(&self, reason: AuthFailure) -> u64 {
        let index = AuthFailure::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.auth_failures[index]
    }

    pub fn auth_failures_total(&self) -> u64 {
        self.auth_failures.iter().sum()
    }
}

/// Bytes waiting in one IPC channel's send queue: the sender could not
/// hand them to the kernel yet (see ipc/channel.rs for the bound).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// "parent", "ikev2", "pfkey" or "ca".
    pub from: String,
    pub to: String,
    pub bytes: u64,
}

/// pfkey's failure kinds as `show stats` names them, in
/// [`crate::kernel::FailureKind`] order.
pub const PFKEY_FAILURE_NAMES: [&str; 6] = [
    "not_permitted",
    "invalid",
    "unsupported",
    "already_exists",
    "not_found",
    "kernel",
];

/// What pfkey counts (pfkey-proc/src/stats.rs): the requests it answered
/// with a failure, by kind, as it last reported them to the parent.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PfkeyStats {
    pub failures: [u64; 6],
}

impl PfkeyStats {
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        PFKEY_FAILURE_NAMES
            .iter()
            .copied()
            .zip(self.failures.iter().copied())
    }
}

/// The whole `show stats` answer: the engine's counters and what the
/// parent and ikev2's shell add.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct StatsReport {
    /// Seconds since the parent started.
    pub uptime_secs: u64,
    pub engine: EngineStats,
    pub ipc_queues: Vec<QueueDepth>,
    /// `ikectl monitor` clients connected now.
    pub monitor_clients: u64,
    /// Events a monitor client did not read in time, dropped for it.
    pub monitor_events_dropped: u64,
    /// Configurations loaded (the first one and every reload).
    pub config_loads: u64,
    pub pfkey: PfkeyStats,
}

/// What happened, in an [`SaEvent`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An IKE SA was established or a Child SA installed.
    Up,
    /// An established SA was deleted (by us, the peer or the operator).
    Down,
    /// An SA was replaced by a rekey; the event names the new SA.
    Rekeyed,
    /// An SA did not come up: `reason` says why.
    Failed,
    /// The peer stopped answering (DPD or any request): its IKE SA is gone.
    PeerDead,
    /// The parent loaded a configuration (`reason` names it).
    ConfigReloaded,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Up => "up",
            EventKind::Down => "down",
            EventKind::Rekeyed => "rekeyed",
            EventKind::Failed => "failed",
            EventKind::PeerDead => "peer-dead",
            EventKind::ConfigReloaded => "config-reloaded",
        }
    }
}

/// Which SA an [`SaEvent`] is about.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaLevel {
    Ike,
    Child,
    /// Not about an SA (a configuration load).
    None,
}

impl SaLevel {
    pub fn name(self) -> &'static str {
        match self {
            SaLevel::Ike => "ike",
            SaLevel::Child => "child",
            SaLevel::None => "none",
        }
    }
}

/// One event for `ikectl monitor`. The engine fills all but `unix_time`,
/// which the parent stamps as it fans the event out.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SaEvent {
    pub kind: EventKind,
    pub level: SaLevel,
    pub policy: String,
    pub peer: Option<SocketAddr>,
    /// The IKE SA: "SPIi/SPIr", 16 hex digits each.
    pub ike_sa: Option<String>,
    /// The Child SA: "SPIin/SPIout", 8 hex digits each.
    pub child_sa: Option<String>,
    /// For rekeyed: the SA replaced, in the same form.
    pub replaces: Option<String>,
    pub reason: Option<String>,
    /// Seconds since the Unix epoch when the parent sent it on.
    pub unix_time: u64,
}

impl SaEvent {
    /// An event with nothing but its kind and level filled in.
    pub fn new(kind: EventKind, level: SaLevel, policy: &str) -> SaEvent {
        SaEvent {
            kind,
            level,
            policy: policy.to_string(),
            peer: None,
            ike_sa: None,
            child_sa: None,
            replaces: None,
            reason: None,
            unix_time: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_counts_file_the_four_exchanges_and_the_rest() {
        let mut counts = ExchangeCounts::default();
        for exchange in [34, 35, 35, 36, 37, 37, 37, 0, 38, 255] {
            counts.count(exchange);
        }
        assert_eq!(counts.get("IKE_SA_INIT"), 1);
        assert_eq!(counts.get("IKE_AUTH"), 2);
        assert_eq!(counts.get("CREATE_CHILD_SA"), 1);
        assert_eq!(counts.get("INFORMATIONAL"), 3);
        assert_eq!(counts.get("other"), 3);
        assert_eq!(counts.total(), 10);
    }
}
