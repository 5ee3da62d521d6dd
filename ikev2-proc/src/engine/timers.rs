//! Deadlines: the named timers of each IKE and Child SA and their tables
//! (the only place a deadline is set, as quinn-proto's `timer.rs`), the
//! timer heap (read and written only here) and what each IKE SA is due to
//! do when its deadline comes.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use iked_common::config::PolicyInitiation;
use iked_common::ipc::InitiationMode;

use crate::engine::Engine;

use crate::engine::state::*;

/// What can come due on an IKE SA, each with its own deadline in the SA's
/// [`IkeTimers`] (what one `delete_at` field once meant three ways is
/// three timers here, and the rekey a fourth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IkeTimer {
    /// Remove a responder's SA not authenticated within
    /// `half_open_timeout`.
    HalfOpen,
    /// Remove an initiator's SA still waiting for pfkey and ca before
    /// IKE_AUTH goes out (bounded by `half_open_timeout` too).
    Preparing,
    /// Remove an SA replaced by a rekey that the peer did not delete within
    /// `rekeyed_grace` (RFC 7296 §2.18).
    Replaced,
    /// Rekey the SA (from its lifetime, or a retry after a failed rekey).
    Rekey,
}

impl IkeTimer {
    const ALL: [IkeTimer; 4] = [
        IkeTimer::HalfOpen,
        IkeTimer::Preparing,
        IkeTimer::Replaced,
        IkeTimer::Rekey,
    ];

    /// Whether it removes the SA: at most one of these runs at a time.
    fn removes(self) -> bool {
        !matches!(self, IkeTimer::Rekey)
    }
}

/// An IKE SA's deadlines, one per [`IkeTimer`]: the only place one is set
/// (its table is private to this module). The heap holds only each SA's
/// earliest, pushed by [`Engine::schedule`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IkeTimers {
    at: [Option<Instant>; 4],
}

impl IkeTimers {
    /// A table with `timer` set to `at`, if any.
    pub(super) fn starting(timer: IkeTimer, at: Option<Instant>) -> IkeTimers {
        let mut timers = IkeTimers::default();
        timers.set_or_stop(timer, at);
        timers
    }

    pub(super) fn get(&self, timer: IkeTimer) -> Option<Instant> {
        self.at[timer as usize]
    }

    /// Sets `timer`; a removal replaces any other removal (an SA is
    /// removed for one reason).
    pub(super) fn set(&mut self, timer: IkeTimer, at: Instant) {
        if timer.removes() {
            self.stop_removal();
        }
        self.at[timer as usize] = Some(at);
    }

    pub(super) fn set_or_stop(&mut self, timer: IkeTimer, at: Option<Instant>) {
        match at {
            Some(at) => self.set(timer, at),
            None => self.stop(timer),
        }
    }

    pub(super) fn stop(&mut self, timer: IkeTimer) {
        self.at[timer as usize] = None;
    }

    /// Stops whichever removal runs (the SA moved on).
    pub(super) fn stop_removal(&mut self) {
        for timer in IkeTimer::ALL.into_iter().filter(|t| t.removes()) {
            self.stop(timer);
        }
    }

    /// When the SA is to be removed, if it is.
    pub(super) fn removal(&self) -> Option<Instant> {
        IkeTimer::ALL
            .into_iter()
            .filter(|t| t.removes())
            .find_map(|t| self.get(t))
    }

    /// Whether `timer` is set and has come by `now`.
    pub(super) fn is_due(&self, timer: IkeTimer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }
}

/// When our outstanding request is sent again (RFC 7296 §2.1). Held by
/// the request, so it cannot outlive it, and set only here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetransmitTimer {
    at: Instant,
}

impl RetransmitTimer {
    /// After the request's first transmission, at `now`.
    pub(super) fn first(now: Instant, base: Duration) -> RetransmitTimer {
        RetransmitTimer { at: now + base }
    }

    /// After its transmission number `transmissions` (from 2), at `now`:
    /// exponential backoff (§2.1).
    pub(super) fn after(now: Instant, base: Duration, transmissions: u32) -> RetransmitTimer {
        let factor = 1u32 << transmissions.saturating_sub(1).min(16);
        RetransmitTimer {
            at: now + base * factor,
        }
    }

    pub(super) fn at(&self) -> Instant {
        self.at
    }

    pub(super) fn is_due(&self, now: Instant) -> bool {
        self.at <= now
    }
}

/// When a message being reassembled from a peer's fragments is given up
/// (RFC 7383 §2.6). Held by the reassembly, so it goes with it, and set
/// only here; the SA's `schedule` pushes it to the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReassemblyTimer {
    at: Instant,
}

impl ReassemblyTimer {
    /// `timeout` after the set's first fragment kept, at `now`: later
    /// fragments do not extend it, so a trickle cannot hold the buffer.
    pub(super) fn start(now: Instant, timeout: Duration) -> ReassemblyTimer {
        ReassemblyTimer { at: now + timeout }
    }

    pub(super) fn at(&self) -> Instant {
        self.at
    }

    pub(super) fn is_due(&self, now: Instant) -> bool {
        self.at <= now
    }
}

/// What can come due on a Child SA (what one `rekey_at` field once meant
/// two ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildTimer {
    /// Rekey it (from its lifetime, or a retry after a failed rekey).
    Rekey,
    /// Delete it, replaced by a rekey, if the peer did not within
    /// `rekeyed_grace`.
    DeleteReplaced,
}

/// A Child SA's deadline: one [`ChildTimer`] at a time (a replaced SA is
/// not rekeyed), set only here.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChildTimers {
    next: Option<(ChildTimer, Instant)>,
}

impl ChildTimers {
    /// A table with `timer` set to `at`, if any.
    pub(super) fn starting(timer: ChildTimer, at: Option<Instant>) -> ChildTimers {
        ChildTimers {
            next: at.map(|at| (timer, at)),
        }
    }

    /// Sets `timer`, replacing the other.
    pub(super) fn set(&mut self, timer: ChildTimer, at: Instant) {
        self.next = Some((timer, at));
    }

    pub(super) fn stop(&mut self) {
        self.next = None;
    }

    /// The deadline, whichever timer it is.
    pub(super) fn at(&self) -> Option<Instant> {
        self.next.map(|(_, at)| at)
    }

    /// Whether the deadline has come by `now`.
    pub(super) fn is_due(&self, now: Instant) -> bool {
        self.at().is_some_and(|at| at <= now)
    }
}

impl Engine {
    /// The IKE SAs whose deadline has come, each once, taken off the heap.
    /// What is due is taken first and each SA served once: whatever the
    /// service schedules anew waits for the next call, so a deadline that
    /// stays in the past cannot spin.
    pub(super) fn take_due_timers(&mut self) -> Vec<u64> {
        let now = self.now;
        let mut due = Vec::new();
        let mut seen = HashSet::new();
        while let Some(Reverse((at, spi))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(sa) = self.ikes.get_mut(&spi) {
                if sa.scheduled == Some(at) {
                    sa.scheduled = None;
                }
                if seen.insert(spi) {
                    due.push(spi);
                }
            }
        }
        due
    }

    /// The end of the grace a replaced SA gets for the peer's DELETE.
    pub(super) fn rekeyed_grace_end(&self) -> Instant {
        self.now + self.settings.rekeyed_grace
    }

    /// Handles whatever is due on one IKE SA.
    pub(super) fn service(&mut self, spi: u64) {
        let now = self.now;
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        if sa.timers.removal().is_some_and(|at| at <= now) {
            if sa.state == IkeState::SourceLookup {
                log::warn!(
                    "policy {}: initiation to {} failed: pfkey did not answer the source \
                     address lookup within {} s",
                    sa.policy,
                    sa.peer.ip(),
                    self.settings.source_lookup_timeout.as_secs_f32()
                );
                self.delete_ike_local(spi, "source address lookup timed out");
                return;
            }
            if sa.handshake.as_ref().is_some_and(|h| h.awaiting_store) {
                log::warn!(
                    "policy {}: IKE_AUTH not started: no identity of ours from ca's certificate store within {} s",
                    sa.policy,
                    self.settings.half_open_timeout.as_secs()
                );
                self.delete_ike_local(spi, "no certificate store from ca");
                return;
            }
            let reason = if sa.state == IkeState::Rekeyed {
                "replaced by rekey"
            } else {
                "half-open timeout"
            };
            self.delete_ike_local(spi, reason);
            return;
        }
        self.expire_fragments(spi);
        if !self.retransmit_if_due(spi) {
            return;
        }
        self.keepalive_if_due(spi);
        self.queue_due_work(spi);
        self.pump(spi);
        self.schedule(spi);
    }

    /// Queues the work an established IKE SA is due to do: its own rekey,
    /// a liveness check, rekeys of its Child SAs, and deletes of replaced
    /// Child SAs the peer should have deleted by now.
    fn queue_due_work(&mut self, spi: u64) {
        let now = self.now;
        let dpd = self.dpd_interval;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if sa.state == IkeState::Established {
            if sa.timers.is_due(IkeTimer::Rekey, now) {
                sa.timers.stop(IkeTimer::Rekey);
                if !sa.queue.contains(&Task::RekeyIke) {
                    sa.queue.push_back(Task::RekeyIke);
                }
            }
            if let Some(interval) = dpd {
                if sa.last_heard + interval <= now
                    && sa.outstanding.is_none()
                    && sa.queue.is_empty()
                    && sa.prep.is_none()
                {
                    sa.queue.push_back(Task::Dpd);
                    // Not again until this check is answered or fails.
                    sa.last_heard = now;
                }
            }
            // Child SAs due for a rekey, and replaced ones the peer should
            // have deleted by now.
            let mut due: Vec<u32> = Vec::new();
            let mut stale: Vec<u32> = Vec::new();
            for spi in &sa.children {
                match self.children.get(spi) {
                    Some(c) if c.timers.is_due(now) && c.state == ChildState::Established => {
                        due.push(*spi)
                    }
                    Some(c) if c.timers.is_due(now) && c.state == ChildState::Rekeyed => {
                        stale.push(*spi)
                    }
                    _ => {}
                }
            }
            if !stale.is_empty() {
                for child in &stale {
                    if let Some(c) = self.children.get_mut(child) {
                        c.timers.stop();
                    }
                }
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    sa.queue.push_back(Task::DeleteChildren { spis: stale });
                }
            }
            for child in due {
                if let Some(c) = self.children.get_mut(&child) {
                    c.timers.stop();
                }
                let task = Task::RekeyChild { spi_in: child };
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    if !sa.queue.contains(&task) {
                        sa.queue.push_back(task);
                    }
                }
            }
        }
    }

    /// Whether a policy has an IKE SA that is not going away.
    pub(super) fn has_live_sa(&self, policy: &str) -> bool {
        self.by_policy.get(policy).is_some_and(|set| {
            set.iter().any(|spi| {
                self.ikes
                    .get(spi)
                    .is_some_and(|sa| !matches!(sa.state, IkeState::Deleting | IkeState::Rekeyed))
            })
        })
    }

    /// Starts again the active policies whose restart is due.
    pub(super) fn run_restarts(&mut self) {
        let now = self.now;
        let due: Vec<String> = self
            .restarts
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, name)| name.clone())
            .collect();
        self.restarts.retain(|(at, _)| *at > now);
        for name in due {
            let still_active = self.mode == InitiationMode::Active
                && self
                    .policy(&name)
                    .is_some_and(|p| p.initiation == PolicyInitiation::Active);
            if still_active && !self.has_live_sa(&name) {
                log::info!("policy {name}: starting again");
                if let Err(e) = self.initiate(&name, None, 0) {
                    log::warn!("policy {name}: cannot initiate: {e}");
                }
            }
        }
    }

    /// After an IKE SA of `policy` went away: start the policy again later
    /// if it is active and has no IKE SA left.
    pub(super) fn plan_restart(&mut self, policy: &str) {
        let active = self.mode == InitiationMode::Active
            && self
                .policy(policy)
                .is_some_and(|p| p.initiation == PolicyInitiation::Active);
        if active
            && !self.has_live_sa(policy)
            && !self.restarts.iter().any(|(_, name)| name == policy)
        {
            let at = self.now + self.settings.restart_delay;
            self.restarts.push((at, policy.to_string()));
        }
    }

    /// A rekey time: 90% of the lifetime minus up to 5% jitter from the RNG,
    /// so that both peers rarely rekey at the same moment.
    pub(super) fn rekey_time(&mut self, lifetime_secs: u64) -> Option<Instant> {
        if lifetime_secs == 0 {
            return None;
        }
        // Longer than ten years means "never" in practice; capping keeps
        // the time arithmetic below from overflowing.
        let lifetime = Duration::from_secs(lifetime_secs.min(10 * 365 * 86_400));
        let base = lifetime.mul_f64(0.9);
        let span = lifetime.mul_f64(0.05).as_millis() as u64;
        // Without randomness (logged) the rekey simply has no jitter.
        let jitter = if span == 0 {
            0
        } else {
            self.random_u64().map_or(0, |r| r % span)
        };
        self.now
            .checked_add(base.saturating_sub(Duration::from_millis(jitter)))
    }

    /// Pushes the SA's earliest deadline to the timer heap if it changed.
    pub(super) fn schedule(&mut self, spi: u64) {
        let dpd = self.dpd_interval;
        let keepalive = self.settings.nat_keepalive;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let mut earliest: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e: Instant| e.min(t)));
            }
        };
        consider(sa.outstanding.as_ref().map(|o| o.deadline.at()));
        consider(sa.timers.removal());
        consider(sa.fragments.deadline());
        if sa.behind_nat && sa.natt {
            consider(Some(sa.last_sent + keepalive));
        }
        if sa.state == IkeState::Established {
            consider(sa.timers.get(IkeTimer::Rekey));
            // DPD only when idle; while a request is in flight its own
            // retransmission timer decides liveness.
            if let Some(interval) = dpd {
                if sa.outstanding.is_none() && sa.prep.is_none() && sa.queue.is_empty() {
                    consider(Some(sa.last_heard + interval));
                }
            }
        }
        for child_spi in &sa.children {
            if let Some(child) = self.children.get(child_spi) {
                if matches!(child.state, ChildState::Established | ChildState::Rekeyed) {
                    consider(child.timers.at());
                }
            }
        }
        if let Some(at) = earliest {
            if sa.scheduled.is_none_or(|s| s != at) {
                sa.scheduled = Some(at);
                self.timers.push(Reverse((at, spi)));
            }
        }
    }
}
