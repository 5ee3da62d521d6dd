//! The IKE SA map and its indexes (by policy, by identity, by IKE_SA_INIT),
//! written only here; an IKE SA's removal with all it holds; reqids and the
//! family of rekeyed IKE SAs.

use crate::engine::admission::HalfOpenRecord;
use crate::engine::message::PeerRequest;
use crate::engine::state::IkeSa;
use crate::engine::state::IkeState;
use crate::engine::state::Wait;
use crate::engine::state::{Answer, AnswerKind, Prep, RequestCtx};
use crate::engine::Engine;
use iked_common::wire::{ExchangeType, NotifyType};

impl Engine {
    /// Takes IKE SA `spi` out of the SA map and every index (the
    /// half-open counts included).
    pub(super) fn remove_ike(&mut self, spi: u64) -> Option<IkeSa> {
        let mut sa = self.ikes.remove(&spi)?;
        if let Some(key) = sa.half_open_key {
            self.by_init.remove(&key);
        }
        if let Some(id) = &sa.peer_id {
            let key = (sa.policy.clone(), id.clone());
            if let Some(set) = self.by_identity.get_mut(&key) {
                set.remove(&spi);
                if set.is_empty() {
                    self.by_identity.remove(&key);
                }
            }
        }
        self.uncount_half_open(HalfOpenRecord::take(&mut sa));
        self.end_eap_session(spi, sa.eap.take());
        if let Some(set) = self.by_policy.get_mut(&sa.policy) {
            set.remove(&spi);
            if set.is_empty() {
                self.by_policy.remove(&sa.policy);
            }
        }
        Some(sa)
    }

    /// IKE SA `spi` now falls under policy `to` (the responder learns it
    /// from the initiator's identity).
    pub(super) fn move_to_policy(&mut self, spi: u64, from: &str, to: &str) {
        if from != to {
            if let Some(set) = self.by_policy.get_mut(from) {
                set.remove(&spi);
            }
            self.by_policy
                .entry(to.to_string())
                .or_default()
                .insert(spi);
        }
    }

    /// A new IKE SA, under our SPI, indexed by its policy and, for a
    /// responder's, by its IKE_SA_INIT (initiator SPI, peer address).
    pub(super) fn insert_ike(&mut self, spi: u64, sa: IkeSa) {
        self.by_policy
            .entry(sa.policy.clone())
            .or_default()
            .insert(spi);
        if let Some(key) = sa.half_open_key {
            self.by_init.insert(key, spi);
        }
        self.ikes.insert(spi, sa);
    }

    /// Records an established IKE SA under its peer's identity.
    pub(super) fn index_identity(&mut self, spi: u64) {
        if let Some(sa) = self.ikes.get(&spi) {
            if let Some(id) = &sa.peer_id {
                self.by_identity
                    .entry((sa.policy.clone(), id.clone()))
                    .or_default()
                    .insert(spi);
            }
        }
    }

    /// The reqid for a Child SA of a policy's flow: the trap's, so the
    /// trap policy finds its SAs, or a fresh one.
    pub(super) fn reqid_for(&mut self, policy: &str, flow_index: usize) -> u32 {
        match self.traps.get(&(policy.to_string(), flow_index)) {
            Some(trap) => trap.reqid,
            None => self.new_reqid(),
        }
    }

    /// The IKE SA and the ones that replaced it by rekeying (bounded chain).
    pub(super) fn ike_family(&self, spi: u64) -> Vec<u64> {
        let mut family = vec![spi];
        let mut current = spi;
        for _ in 0..4 {
            match self.ikes.get(&current).and_then(|sa| sa.successor) {
                Some(next) if self.ikes.contains_key(&next) && !family.contains(&next) => {
                    family.push(next);
                    current = next;
                }
                _ => break,
            }
        }
        family
    }

    /// Where a Child SA negotiated on `spi` belongs: the newest IKE SA that
    /// replaced it, if it was rekeyed meanwhile (§2.8: children follow).
    pub(super) fn current_ike(&self, spi: u64) -> u64 {
        self.ike_family(spi).last().copied().unwrap_or(spi)
    }

    pub(super) fn move_children(&mut self, from: u64, to: u64) {
        let Some(old) = self.ikes.get_mut(&from) else {
            return;
        };
        let moved = std::mem::take(&mut old.children);
        let first_move = old.successor != Some(to);
        old.successor = Some(to);
        if first_move {
            self.on_ike_rekeyed(from, to);
        }
        for spi in &moved {
            if let Some(child) = self.children.get_mut(spi) {
                child.ike = to;
            }
        }
        if let Some(new) = self.ikes.get_mut(&to) {
            new.children.extend(moved);
        }
        self.schedule(to);
    }

    /// A reqid for a new trap or Child SA, from iked's own ranges and used
    /// by nothing else now: pfkey installs nothing else, and a fresh start
    /// recognises our entries by it. Counted once its trap or Child SA is
    /// stored.
    pub(super) fn new_reqid(&mut self) -> u32 {
        self.reqids.fresh()
    }

    /// Forgets an IKE SA and its Child SAs (kernel entries removed).
    pub(super) fn delete_ike_local(&mut self, spi: u64, reason: &str) {
        // Before the outstanding request is handed over (and dropped).
        for spi_in in self.unborn_child_spis(spi) {
            self.release_spi(spi, spi_in);
        }
        self.hand_over_child_work(spi);
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let children = sa.children.clone();
        for child in children {
            self.remove_child(child);
        }
        let Some(sa) = self.remove_ike(spi) else {
            return;
        };
        self.on_ike_removed(&sa, reason);
        self.release_remote_access(spi, &sa);
        // Replies to its pending requests will still come: consume them quietly.
        for (ike, wait) in self.waits.values_mut() {
            if *ike == spi {
                *wait = Wait::Other;
            }
        }
        log::info!(
            "policy {}: IKE SA {:016x}/{:016x} with {} removed: {reason}",
            sa.policy,
            sa.spi_i,
            sa.spi_r,
            sa.peer
        );
        if !sa.no_restart {
            self.plan_restart(&sa.policy);
        }
    }

    /// Inbound SPIs allocated for Child SAs of IKE SA `spi` that are still
    /// being negotiated (our IKE_AUTH being prepared, sent or checked, our
    /// CREATE_CHILD_SA in flight, our IKE_AUTH answer being signed): each
    /// is a larval SA in the kernel until released.
    fn unborn_child_spis(&self, spi: u64) -> Vec<u32> {
        let Some(sa) = self.ikes.get(&spi) else {
            return Vec::new();
        };
        let mut spis = Vec::new();
        if let Some(Prep::Auth { child: Some(d), .. }) = &sa.prep {
            spis.push(d.spi_in);
        }
        match sa.outstanding.as_ref().map(|o| &o.ctx) {
            Some(RequestCtx::Auth { child: Some(d) })
            | Some(RequestCtx::CreateChild { child: d }) => spis.push(d.spi_in),
            _ => {}
        }
        if let Some(d) = sa
            .handshake
            .as_deref()
            .and_then(|h| h.auth_check.as_ref())
            .and_then(|c| c.child.as_ref())
        {
            spis.push(d.spi_in);
        }
        if let Some(Answer {
            kind: AnswerKind::Auth(answer),
            ..
        }) = &sa.answering
        {
            if let (Some(Ok(_)), Some(spi_in)) = (&answer.child, answer.spi_in) {
                spis.push(spi_in);
            }
        }
        spis
    }

    pub(super) fn abort_negotiation(&mut self, spi: u64, reason: &str) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if sa.state == IkeState::Established {
            // Only the exchange being prepared fails; the IKE SA stays.
            sa.prep = None;
            if let Some(answer) = sa.answering.take() {
                self.refuse(
                    PeerRequest::new(spi, ExchangeType::CreateChildSa, answer.message_id),
                    NotifyType::TemporaryFailure,
                    reason,
                );
            }
            return;
        }
        self.delete_ike_local(spi, reason);
    }
}
