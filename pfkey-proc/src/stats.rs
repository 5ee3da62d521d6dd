//! pfkey's counters for `ikectl show stats`: the requests it answered with
//! a failure, by kind. pfkey has no control channel of its own, so it
//! sends the parent a fresh copy whenever they change; failures come one
//! per request of ikev2, so this is at most one more message per request.
//!
//! Process-wide (pfkey is one thread): a static, so that the one place
//! every answer to ikev2 passes (`process::deliver`) counts them in a line.

use std::sync::atomic::{AtomicU64, Ordering};

use iked_common::ipc::{ChildToParent, PfkeyToIkev2};
use iked_common::kernel::FailureKind;
use iked_common::stats::PfkeyStats;

static FAILURES: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

fn index(kind: FailureKind) -> usize {
    match kind {
        FailureKind::NotPermitted => 0,
        FailureKind::Invalid => 1,
        FailureKind::Unsupported => 2,
        FailureKind::AlreadyExists => 3,
        FailureKind::NotFound => 4,
        FailureKind::Kernel => 5,
    }
}

/// The counters now.
pub fn snapshot() -> PfkeyStats {
    PfkeyStats {
        failures: std::array::from_fn(|i| FAILURES[i].load(Ordering::Relaxed)),
    }
}

/// Counts the failures among `replies`; the report for the parent when
/// there were any.
pub fn count_replies(replies: &[PfkeyToIkev2]) -> Option<ChildToParent> {
    let mut counted = false;
    for reply in replies {
        if let PfkeyToIkev2::Failed { failure, .. } = reply {
            FAILURES[index(failure.kind)].fetch_add(1, Ordering::Relaxed);
            counted = true;
        }
    }
    counted.then(|| ChildToParent::PfkeyStats(snapshot()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use iked_common::kernel::KernelFailure;

    #[test]
    fn failures_are_counted_by_kind_and_reported_only_when_there_are_some() {
        let before = snapshot();
        assert_eq!(count_replies(&[PfkeyToIkev2::Done { id: 1 }]), None);
        let failed = |id, kind| PfkeyToIkev2::Failed {
            id,
            failure: KernelFailure {
                kind,
                errno: 0,
                message: "test".into(),
            },
        };
        let report = count_replies(&[
            failed(2, FailureKind::Unsupported),
            PfkeyToIkev2::Done { id: 3 },
            failed(4, FailureKind::Unsupported),
            failed(5, FailureKind::NotPermitted),
        ]);
        let Some(ChildToParent::PfkeyStats(after)) = report else {
            panic!("no report: {report:?}");
        };
        assert_eq!(after.failures[2] - before.failures[2], 2);
        assert_eq!(after.failures[0] - before.failures[0], 1);
        assert_eq!(after.failures[5], before.failures[5]);
    }
}
