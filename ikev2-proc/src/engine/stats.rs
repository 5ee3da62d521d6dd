//! Counters for `ikectl show stats` and SA events for `ikectl monitor`.
//!
//! Counters are plain integers bumped where the thing happens (one line
//! each in the layers that see it); SAs by state are counted when asked,
//! `show stats` being rare. Events are [`Action::Event`]s: the shell sends
//! them to the parent, which fans them out to monitor clients. Failed
//! negotiations are the one kind a remote party can cause at will, so
//! their events are rate-limited (and the ones held back counted).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use iked_common::ipc::PfkeyToIkev2;
use iked_common::kernel::FailureKind;
use iked_common::logging::RateLimit;
use iked_common::stats::{AuthFailure, EngineStats, EventKind, ExchangeCounts, SaEvent, SaLevel};

use crate::engine::state::{ChildState, IkeSa, IkeState};
use crate::engine::{Action, Engine};

/// Failed-negotiation events let through per second; the rest are counted.
const FAILED_EVENTS_PER_SECOND: u32 = 20;

/// The octet of the exchange type in an IKE header (RFC 7296 §3.1).
const EXCHANGE_TYPE_OFFSET: usize = 18;

/// The counters the engine keeps.
pub(super) struct Counters {
    cookies_sent: u64,
    messages_in: ExchangeCounts,
    messages_out: ExchangeCounts,
    retransmits: u64,
    timeouts: u64,
    ike_sas_up: u64,
    child_sas_up: u64,
    auth_failures: [u64; 5],
    kernel_errors: u64,
    events: u64,
    events_held_back: u64,
    /// Set by the retransmission give-up just before it removes the SA, so
    /// that the removal is reported as a dead peer.
    peer_dead: bool,
    failed_events: RateLimit,
    /// Child SAs a rekey replaced (by inbound SPI), whose removal is no
    /// "down": each leaves the set when it is removed, so the set is never
    /// larger than the Child SA map.
    replaced_children: HashSet<u32>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            cookies_sent: 0,
            messages_in: ExchangeCounts::default(),
            messages_out: ExchangeCounts::default(),
            retransmits: 0,
            timeouts: 0,
            ike_sas_up: 0,
            child_sas_up: 0,
            auth_failures: [0; 5],
            kernel_errors: 0,
            events: 0,
            events_held_back: 0,
            peer_dead: false,
            failed_events: RateLimit::new(FAILED_EVENTS_PER_SECOND, Duration::from_secs(1)),
            replaced_children: HashSet::new(),
        }
    }
}

impl Counters {
    /// An action leaving the engine: IKE messages are counted by exchange.
    pub(super) fn count_action(&mut self, action: &Action) {
        if let Action::Send { datagram, .. } = action {
            if let Some(&exchange) = datagram.get(EXCHANGE_TYPE_OFFSET) {
                self.messages_out.count(exchange);
            }
        }
    }

    /// A datagram that arrived (decodable or not, once it has a header).
    pub(super) fn count_received(&mut self, datagram: &[u8]) {
        if datagram.len() >= 28 {
            self.messages_in.count(datagram[EXCHANGE_TYPE_OFFSET]);
        }
    }

    pub(super) fn cookie_sent(&mut self) {
        self.cookies_sent += 1;
    }

    pub(super) fn retransmitted(&mut self) {
        self.retransmits += 1;
    }

    /// A request given up; the IKE SA's removal that follows is a dead peer.
    pub(super) fn timed_out(&mut self) {
        self.timeouts += 1;
        self.peer_dead = true;
    }

    fn auth_failed(&mut self, reason: AuthFailure) {
        if let Some(index) = AuthFailure::ALL.iter().position(|r| *r == reason) {
            self.auth_failures[index] += 1;
        }
    }

    /// We refused the peer's AUTH: it did not verify (a wrong PSK, a bad
    /// signature) or was missing.
    pub(super) fn auth_invalid(&mut self) {
        self.auth_failed(AuthFailure::PeerAuthInvalid);
    }

    /// The peer refused our AUTH (AUTHENTICATION_FAILED).
    pub(super) fn auth_refused_by_peer(&mut self) {
        self.auth_failed(AuthFailure::RefusedByPeer);
    }

    /// No policy for the peer's identity, or not the one expected.
    pub(super) fn auth_identity_refused(&mut self) {
        self.auth_failed(AuthFailure::Identity);
    }

    /// The peer's certificate or its inputs did not pass.
    pub(super) fn auth_certificate_refused(&mut self) {
        self.auth_failed(AuthFailure::Certificate);
    }

    pub(super) fn auth_eap_failed(&mut self) {
        self.auth_failed(AuthFailure::Eap);
    }

    /// A pfkey reply: failures the kernel (or pfkey) reported are kernel
    /// errors; NotFound is not (deleting what is already gone).
    pub(super) fn count_pfkey_reply(&mut self, message: &PfkeyToIkev2) {
        if let PfkeyToIkev2::Failed { failure, .. } = message {
            if failure.kind != FailureKind::NotFound {
                self.kernel_errors += 1;
            }
        }
    }
}

fn ike_sa_text(sa: &IkeSa) -> String {
    format!("{:016x}/{:016x}", sa.spi_i, sa.spi_r)
}

fn child_state_text(state: ChildState) -> &'static str {
    match state {
        ChildState::Established => "established",
        ChildState::Rekeying => "rekeying",
        ChildState::Rekeyed => "rekeyed",
        ChildState::Deleting => "deleting",
    }
}

impl Engine {
    /// The engine's part of `show stats`.
    pub(super) fn engine_stats(&self) -> EngineStats {
        let c = &self.stats;
        let mut ike_sas = BTreeMap::new();
        for sa in self.ikes.values() {
            *ike_sas.entry(sa.state.text().to_string()).or_insert(0) += 1;
        }
        let mut child_sas = BTreeMap::new();
        for child in self.children.values() {
            *child_sas
                .entry(child_state_text(child.state).to_string())
                .or_insert(0) += 1;
        }
        EngineStats {
            ike_sas,
            child_sas,
            half_open: self.half_open as u64,
            cookies_sent: c.cookies_sent,
            messages_in: c.messages_in,
            messages_out: c.messages_out,
            retransmits: c.retransmits,
            timeouts: c.timeouts,
            ike_sas_up: c.ike_sas_up,
            child_sas_up: c.child_sas_up,
            auth_failures: c.auth_failures,
            kernel_errors: c.kernel_errors,
            events: c.events,
            events_held_back: c.events_held_back,
        }
    }

    fn emit_event(&mut self, event: SaEvent) {
        self.stats.events += 1;
        self.actions.push_back(Action::Event(Box::new(event)));
    }

    fn ike_event(sa: &IkeSa, kind: EventKind) -> SaEvent {
        let mut event = SaEvent::new(kind, SaLevel::Ike, &sa.policy);
        event.peer = Some(sa.peer);
        event.ike_sa = Some(ike_sa_text(sa));
        event
    }

    /// IKE SA `spi` is established (IKE_AUTH done, either role).
    pub(super) fn on_ike_up(&mut self, spi: u64) {
        self.stats.ike_sas_up += 1;
        if let Some(sa) = self.ikes.get(&spi) {
            let event = Self::ike_event(sa, EventKind::Up);
            self.emit_event(event);
        }
    }

    /// IKE SA `old` was replaced by `new` (RFC 7296 §2.8); called once per
    /// replacement, when the Child SAs move.
    pub(super) fn on_ike_rekeyed(&mut self, old: u64, new: u64) {
        self.stats.ike_sas_up += 1;
        let replaces = self.ikes.get(&old).map(ike_sa_text);
        if let Some(sa) = self.ikes.get(&new) {
            let mut event = Self::ike_event(sa, EventKind::Rekeyed);
            event.replaces = replaces;
            self.emit_event(event);
        }
    }

    /// IKE SA `sa` has just been removed for `reason`: down if it was up,
    /// failed if it never came up, nothing if a rekey replaced it.
    pub(super) fn on_ike_removed(&mut self, sa: &IkeSa, reason: &str) {
        let dead = std::mem::take(&mut self.stats.peer_dead);
        if sa.successor.is_some() {
            // Replaced by a rekey, which was the event.
            return;
        }
        let kind = match (sa.state, sa.established.is_some()) {
            (IkeState::Rekeyed, _) => return,
            (_, true) if dead => EventKind::PeerDead,
            (_, true) => EventKind::Down,
            // A responder's half-open SA that timed out is what a spoofed
            // flood makes by the thousand: counted, never an event.
            (IkeState::InitDone, false) if !sa.initiator && reason == "half-open timeout" => return,
            (_, false) => EventKind::Failed,
        };
        if kind == EventKind::Failed && self.stats.failed_events.allow(self.now).is_none() {
            self.stats.events_held_back += 1;
            return;
        }
        let mut event = Self::ike_event(sa, kind);
        event.reason = Some(reason.to_string());
        self.emit_event(event);
    }

    fn child_event(&self, spi_in: u32, kind: EventKind) -> Option<SaEvent> {
        let child = self.children.get(&spi_in)?;
        let mut event = SaEvent::new(kind, SaLevel::Child, &child.policy);
        event.child_sa = Some(format!("{:08x}/{:08x}", child.spi_in, child.spi_out));
        if let Some(sa) = self.ikes.get(&child.ike) {
            event.peer = Some(sa.peer);
            event.ike_sa = Some(ike_sa_text(sa));
        }
        Some(event)
    }

    /// Child SA `spi_in` was negotiated and is being installed.
    pub(super) fn on_child_up(&mut self, spi_in: u32) {
        self.stats.child_sas_up += 1;
        if let Some(event) = self.child_event(spi_in, EventKind::Up) {
            self.emit_event(event);
        }
    }

    /// Child SA `new` replaces `old` (RFC 7296 §2.8). Its "up" event,
    /// queued a moment ago when it was added, becomes this "rekeyed" one:
    /// a rekey is one event, not an SA coming up. Rekeys are rare, so the
    /// look back through the queued actions costs nothing per packet.
    pub(super) fn on_child_rekeyed(&mut self, old: u32, new: u32) {
        if self.children.contains_key(&old) {
            self.stats.replaced_children.insert(old);
        }
        let replaces = self
            .children
            .get(&old)
            .map(|c| format!("{:08x}/{:08x}", c.spi_in, c.spi_out));
        let prefix = format!("{new:08x}/");
        let queued = self
            .actions
            .iter_mut()
            .rev()
            .find_map(|action| match action {
                Action::Event(event)
                    if event.level == SaLevel::Child
                        && event.kind == EventKind::Up
                        && event
                            .child_sa
                            .as_deref()
                            .is_some_and(|s| s.starts_with(&prefix)) =>
                {
                    Some(event)
                }
                _ => None,
            });
        if let Some(event) = queued {
            event.kind = EventKind::Rekeyed;
            event.replaces = replaces;
            return;
        }
        if let Some(mut event) = self.child_event(new, EventKind::Rekeyed) {
            event.replaces = replaces;
            self.emit_event(event);
        }
    }

    /// Child SA `spi_in` is about to be removed: down, unless a rekey
    /// replaced it (its successor's event said so).
    pub(super) fn on_child_removed(&mut self, spi_in: u32) {
        let replaced = self.stats.replaced_children.remove(&spi_in);
        let Some(child) = self.children.get(&spi_in) else {
            return;
        };
        if replaced || child.state == ChildState::Rekeyed {
            return;
        }
        if let Some(event) = self.child_event(spi_in, EventKind::Down) {
            self.emit_event(event);
        }
    }
}
