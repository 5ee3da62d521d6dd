//! The reqids of our traps and Child SAs: allocated from iked's marked
//! ranges (`iked_common::kernel`), never one still in use, and counted by
//! users so that one goes back to the pool when its last trap or Child SA
//! goes.
//!
//! The PF_KEY-safe range (4,095 reqids: Linux keeps PF_KEY policy reqids
//! only up to 0x3fff) is used first and again as soon as it has room; the
//! wide range (2^24 reqids, XFRM only) only while it is full, so a gateway
//! on PF_KEY stays inside what PF_KEY can carry, and one on XFRM scales to
//! far more flows and Child SAs than that.

use std::collections::HashMap;

use iked_common::kernel::{IKED_REQIDS, IKED_WIDE_REQIDS, LARVAL_REQID};

#[derive(Debug, Default)]
pub(crate) struct ReqidPool {
    /// Reqid -> how many traps and Child SAs use it.
    users: HashMap<u32, u32>,
    /// How many of `users` lie in the PF_KEY-safe range.
    narrow_in_use: usize,
    /// Where the next search starts in each range (0: its start).
    narrow_cursor: u32,
    wide_cursor: u32,
    /// How many reqids were handed out, for tests.
    pub(crate) handed_out: u64,
}

/// The PF_KEY-safe reqids a trap or Child SA may have (all but the larval).
fn narrow() -> std::ops::RangeInclusive<u32> {
    LARVAL_REQID + 1..=*IKED_REQIDS.end()
}

fn next_free(
    range: std::ops::RangeInclusive<u32>,
    cursor: u32,
    users: &HashMap<u32, u32>,
) -> Option<u32> {
    let (start, end) = (*range.start(), *range.end());
    let first = if range.contains(&cursor) {
        cursor
    } else {
        start
    };
    // Bounded: at most one pass over the range, and only `users.len()`
    // candidates can be taken.
    let mut candidate = first;
    for _ in 0..=users.len() {
        if !users.contains_key(&candidate) {
            return Some(candidate);
        }
        candidate = if candidate >= end {
            start
        } else {
            candidate + 1
        };
        if candidate == first {
            return None;
        }
    }
    None
}

impl ReqidPool {
    /// A reqid no trap or Child SA uses now. It counts as used once
    /// [`ReqidPool::take`] is called for its first user.
    pub(crate) fn fresh(&mut self) -> u32 {
        self.handed_out += 1;
        let narrow_size = narrow().count();
        if self.narrow_in_use < narrow_size {
            if let Some(reqid) = next_free(narrow(), self.narrow_cursor, &self.users) {
                self.narrow_cursor = reqid.wrapping_add(1);
                return reqid;
            }
        }
        // 2^24 reqids against caps of far fewer Child SAs: one is free.
        let reqid = next_free(IKED_WIDE_REQIDS, self.wide_cursor, &self.users)
            .unwrap_or(*IKED_WIDE_REQIDS.start());
        self.wide_cursor = reqid.wrapping_add(1);
        reqid
    }

    /// One more trap or Child SA uses `reqid`.
    pub(crate) fn take(&mut self, reqid: u32) {
        let count = self.users.entry(reqid).or_insert(0);
        if *count == 0 && narrow().contains(&reqid) {
            self.narrow_in_use += 1;
        }
        *count += 1;
    }

    /// A trap or Child SA that used `reqid` is gone.
    pub(crate) fn release(&mut self, reqid: u32) {
        let Some(count) = self.users.get_mut(&reqid) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.users.remove(&reqid);
            if narrow().contains(&reqid) {
                self.narrow_in_use -= 1;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reqids_in_use_are_never_handed_out_and_pf_key_safe_ones_come_first() {
        let mut pool = ReqidPool::default();
        let mut taken = Vec::new();
        for _ in 0..5000 {
            let reqid = pool.fresh();
            assert!(!taken.contains(&reqid), "{reqid:#x} handed out twice");
            pool.take(reqid);
            taken.push(reqid);
        }
        assert_eq!(taken[0], LARVAL_REQID + 1);
        assert!(taken[..4095].iter().all(|r| narrow().contains(r)));
        assert!(taken[4095..].iter().all(|r| IKED_WIDE_REQIDS.contains(r)));
        // One narrow reqid back: the next one is it, not a wide one.
        pool.release(taken[17]);
        assert_eq!(pool.fresh(), taken[17]);
        // Two users of one reqid: free only after both are gone.
        pool.take(taken[17]);
        pool.take(taken[17]);
        pool.release(taken[17]);
        assert!(IKED_WIDE_REQIDS.contains(&pool.fresh()));
        pool.release(taken[17]);
        assert_eq!(pool.fresh(), taken[17]);
        assert_eq!(pool.in_use(), 4999);
    }
}
