//! EAP conversations by ikev2's session number (the IKE SA's SPI):
//! bounded, and forgotten after [`IDLE_TIMEOUT`] without a step. Expiry is
//! lazy, against the clock the caller passes in (deterministic in tests):
//! each call first drops what went idle, then the least recently active
//! when the table is full. Every operation is O(log n).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// At most this many conversations at a time; past it the least recently
/// active goes (a flood of IKE_AUTH starts cannot grow ca without bound).
pub const MAX_SESSIONS: usize = 4096;
/// A conversation (or an MSK not used yet) is forgotten after this long
/// without a step: IKE_AUTH rounds follow each other within seconds.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) struct Sessions<T> {
    by_id: HashMap<u64, Entry<T>>,
    /// (last activity, insertion number) -> session, oldest first.
    by_age: BTreeMap<(Instant, u64), u64>,
    next_seq: u64,
}

struct Entry<T> {
    value: T,
    age_key: (Instant, u64),
}

impl<T> Default for Sessions<T> {
    fn default() -> Self {
        Sessions {
            by_id: HashMap::new(),
            by_age: BTreeMap::new(),
            next_seq: 0,
        }
    }
}

impl<T> Sessions<T> {
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Drops the conversations idle for [`IDLE_TIMEOUT`] or more; returns
    /// how many.
    pub(super) fn expire(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        while let Some((&(last, _), &id)) = self.by_age.first_key_value() {
            if now.saturating_duration_since(last) < IDLE_TIMEOUT {
                break;
            }
            self.remove(id);
            dropped += 1;
        }
        dropped
    }

    pub(super) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        self.by_id.get_mut(&id).map(|e| &mut e.value)
    }

    /// Marks `id` active at `now`.
    pub(super) fn touch(&mut self, id: u64, now: Instant) {
        let seq = self.next_seq;
        if let Some(entry) = self.by_id.get_mut(&id) {
            self.next_seq += 1;
            self.by_age.remove(&entry.age_key);
            // The clock never goes back for this table: an older `now`
            // keeps the entry's place.
            let at = now.max(entry.age_key.0);
            entry.age_key = (at, seq);
            self.by_age.insert(entry.age_key, id);
        }
    }

    /// Inserts a new conversation; when the table is full the least
    /// recently active goes first (returned, for the log).
    pub(super) fn insert(&mut self, id: u64, value: T, now: Instant) -> Option<u64> {
        self.remove(id);
        let mut evicted = None;
        if self.by_id.len() >= MAX_SESSIONS {
            if let Some((_, &oldest)) = self.by_age.first_key_value() {
                self.remove(oldest);
                evicted = Some(oldest);
            }
        }
        let age_key = (now, self.next_seq);
        self.next_seq += 1;
        self.by_age.insert(age_key, id);
        self.by_id.insert(id, Entry { value, age_key });
        evicted
    }

    pub(super) fn remove(&mut self, id: u64) -> Option<T> {
        let entry = self.by_id.remove(&id)?;
        self.by_age.remove(&entry.age_key);
        Some(entry.value)
    }

    /// Removes every conversation for which `drop` says so.
    pub(super) fn remove_where(&mut self, mut drop: impl FnMut(&T) -> bool) -> usize {
        let doomed: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, e)| drop(&e.value))
            .map(|(&id, _)| id)
            .collect();
        for &id in &doomed {
            self.remove(id);
        }
        doomed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sessions_expire_and_a_full_table_drops_the_least_recent() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.insert(1, "a", t0);
        s.insert(2, "b", t0 + Duration::from_secs(10));
        s.touch(1, t0 + Duration::from_secs(30));
        assert_eq!(s.expire(t0 + Duration::from_secs(69)), 0);
        // 2 idle since t0+10: gone at t0+70; 1 (touched at 30) stays.
        assert_eq!(s.expire(t0 + Duration::from_secs(70)), 1);
        assert!(s.get_mut(2).is_none());
        assert!(s.get_mut(1).is_some());
        assert_eq!(s.expire(t0 + Duration::from_secs(90)), 1);
        assert_eq!(s.len(), 0);

        for id in 0..MAX_SESSIONS as u64 {
            assert_eq!(s.insert(id, "x", t0 + Duration::from_millis(id)), None);
        }
        s.touch(0, t0 + Duration::from_secs(5));
        // Full: the least recently active (1, as 0 was touched) goes.
        assert_eq!(s.insert(99_999, "y", t0 + Duration::from_secs(6)), Some(1));
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get_mut(0).is_some() && s.get_mut(1).is_none());
        assert_eq!(s.remove_where(|v| *v == "y"), 1);
        assert_eq!(s.len(), MAX_SESSIONS - 1);
    }
}
