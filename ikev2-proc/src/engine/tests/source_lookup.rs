//! Initiating without a configured local address (issue 12): the engine
//! asks pfkey for the source address towards the peer instead of opening a
//! socket, and IKE_SA_INIT waits for the answer, which may come late, fail
//! or never come.

use super::*;

/// A's policy without `local`: the source address must come from pfkey.
fn a_policy_without_local() -> Policy {
    Policy {
        local: None,
        ..a_policy()
    }
}

fn sa_init_requests(node: &Node) -> usize {
    exchanges_sent(node, ExchangeType::IkeSaInit, false)
}

#[test]
fn a_late_source_answer_starts_ike_sa_init_from_that_address() {
    let mut w = World::new();
    w.a.source_lookups = SourceLookups::Hold;
    w.configure(vec![a_policy_without_local()], vec![b_policy()]);
    w.settle();
    assert_eq!(
        w.a.held_source_lookups,
        vec![(w.a.held_source_lookups[0].0, ip(B))],
        "one lookup, towards the peer"
    );
    assert_eq!(sa_init_requests(&w.a), 0, "nothing sent before the answer");
    let spi = w.a.engine.ike_spis()[0];
    assert_eq!(w.a.engine.ike(spi).unwrap().state, IkeState::SourceLookup);

    // Late, but within the bound.
    w.advance_by(Duration::from_secs(4));
    assert_eq!(w.a.engine.ike_spis(), vec![spi], "still waiting");
    let (id, _) = w.a.held_source_lookups.remove(0);
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::SourceAddress { id, source: ip(A) })
        .unwrap();
    w.settle();
    assert_eq!(sa_init_requests(&w.a), 1);
    let (from, to, _) = &w.a.sent[0];
    assert_eq!(*from, SocketAddr::new(ip(A), 500));
    assert_eq!(*to, SocketAddr::new(ip(B), 500));
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    let sa = w.a.engine.ike(w.a.established()[0]).unwrap();
    assert_eq!(sa.local.ip(), ip(A));
    // The timer of the lookup went with it: nothing removes the SA later.
    w.advance_by(Duration::from_secs(30));
    assert_eq!(w.a.established().len(), 1);
}

#[test]
fn a_failed_source_lookup_fails_the_initiation_with_the_reason() {
    let mut w = World::new();
    w.a.source_lookups = SourceLookups::Fail;
    let log = capture_info_log(|| {
        w.configure(vec![a_policy_without_local()], vec![b_policy()]);
        w.settle();
    });
    assert_eq!(sa_init_requests(&w.a), 0);
    assert!(w.a.engine.ike_spis().is_empty(), "the IKE SA is gone");
    assert!(
        log.iter()
            .any(|l| l.contains("policy ab: initiation to 192.0.2.2 failed")
                && l.contains("Network is unreachable")),
        "{log:#?}"
    );
    // The active policy tries again later (its restart), and asks again.
    w.a.source_lookups = SourceLookups::Answer;
    w.advance_by(Settings::default().restart_delay + Duration::from_secs(1));
    assert_one_matching_ike(&w);
}

#[test]
fn a_source_lookup_that_is_never_answered_times_out_with_a_log_line() {
    let mut w = World::new();
    w.a.source_lookups = SourceLookups::Hold;
    w.configure(vec![a_policy_without_local()], vec![b_policy()]);
    w.settle();
    let spi = w.a.engine.ike_spis()[0];
    let timeout = Settings::default().source_lookup_timeout;
    let log = capture_info_log(|| w.advance_by(timeout));
    assert!(w.a.engine.ike(spi).is_none(), "removed at the timeout");
    assert_eq!(sa_init_requests(&w.a), 0);
    assert!(
        log.iter()
            .any(|l| l.contains("initiation to 192.0.2.2 failed")
                && l.contains("did not answer the source address lookup within 5 s")),
        "{log:#?}"
    );
    // The answer after the timeout is consumed quietly: no error, no SA.
    let (id, _) = w.a.held_source_lookups.remove(0);
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::SourceAddress { id, source: ip(A) })
        .unwrap();
    w.settle();
    assert!(w.a.engine.ike(spi).is_none());
    assert_eq!(sa_init_requests(&w.a), 0);
}

#[test]
fn a_source_of_the_wrong_family_is_refused() {
    let mut w = World::new();
    w.a.source_lookups = SourceLookups::Hold;
    w.configure(vec![a_policy_without_local()], vec![b_policy()]);
    w.settle();
    let (id, _) = w.a.held_source_lookups.remove(0);
    let log = capture_info_log(|| {
        w.a.engine
            .handle_pfkey(
                w.now,
                PfkeyToIkev2::SourceAddress {
                    id,
                    source: ip("2001:db8::1"),
                },
            )
            .unwrap();
        w.settle();
    });
    assert!(w.a.engine.ike_spis().is_empty());
    assert_eq!(sa_init_requests(&w.a), 0);
    assert!(
        log.iter()
            .any(|l| l.contains("not a source address for 192.0.2.2")),
        "{log:#?}"
    );
}

#[test]
fn a_source_answer_nobody_asked_for_is_a_protocol_error() {
    let mut w = World::new();
    w.handshake();
    assert_eq!(
        w.a.engine.handle_pfkey(
            w.now,
            PfkeyToIkev2::SourceAddress {
                id: 999_999,
                source: ip(A),
            },
        ),
        Err(super::super::ReplyError::NeverAsked { id: 999_999 })
    );
}

#[test]
fn a_configured_local_address_needs_no_lookup() {
    let mut w = World::new();
    w.a.source_lookups = SourceLookups::Fail;
    w.handshake();
    assert_one_matching_ike(&w);
    assert!(w.a.held_source_lookups.is_empty());
}
