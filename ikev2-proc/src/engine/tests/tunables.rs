//! iked.conf(5) tunables reach the engine through `set_tunables` and
//! change what it does; the responder's policy choice follows the file's
//! order (`quick`, last match, `default`, never `skip`).

use super::*;
use iked_common::config::{parse_str, EngineTunables, PolicyMatch};

fn tunables(text: &str) -> EngineTunables {
    parse_str("t.conf", text, &[])
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .engine
}

#[test]
fn every_tunable_lands_in_the_engine_settings() {
    let mut w = World::new();
    w.b.engine.set_tunables(&tunables(
        "set retransmit_timeout 7\nset retransmit_tries 3\nset half_open_timeout 40\n\
         set cookie_threshold 9\nset half_open_max 90\nset half_open_per_source 2\n\
         set childsa_max_per_ikesa 4\nset childsa_max_per_policy 40\nset enforcesingleikesa\n",
    ));
    let s = &w.b.engine.settings;
    assert_eq!(s.retransmit_base, Duration::from_secs(7));
    assert_eq!(s.retransmit_tries, 3);
    assert_eq!(s.half_open_timeout, Duration::from_secs(40));
    assert_eq!(s.cookie_threshold, 9);
    assert_eq!(s.half_open_cap, 90);
    assert_eq!(s.half_open_per_source, 2);
    assert_eq!(s.max_child_sas_per_ike, 4);
    assert_eq!(s.max_child_sas_per_policy, 40);
    assert!(s.enforce_single_ike_sa);
    // The defaults of the configuration are the engine's own.
    w.a.engine.set_tunables(&EngineTunables::default());
    let (a, d) = (&w.a.engine.settings, Settings::default());
    assert_eq!(
        (
            a.retransmit_base,
            a.retransmit_tries,
            a.half_open_cap,
            a.cookie_threshold
        ),
        (
            d.retransmit_base,
            d.retransmit_tries,
            d.half_open_cap,
            d.cookie_threshold
        )
    );
    assert_eq!(
        (
            a.max_child_sas_per_ike,
            a.max_child_sas_per_policy,
            a.half_open_timeout
        ),
        (
            d.max_child_sas_per_ike,
            d.max_child_sas_per_policy,
            d.half_open_timeout
        )
    );
}

/// IKE_SA_INIT requests A sent before it gave up on a silent B.
fn sa_init_sends_until_given_up(config: &str) -> usize {
    let mut w = World::new();
    w.a.engine.set_tunables(&tunables(config));
    // B never hears anything.
    w.filter = Box::new(|p| p.to.ip() != ip(B));
    w.configure(vec![a_policy()], vec![b_policy()]);
    w.settle();
    for _ in 0..100 {
        if w.a.engine.ike_sa_count() == 0 {
            return exchanges_sent(&w.a, ExchangeType::IkeSaInit, false);
        }
        assert!(w.advance(), "A has an IKE SA and no deadline");
    }
    panic!("A never gave up");
}

#[test]
fn retransmit_tries_bounds_the_transmissions_of_a_request() {
    assert_eq!(sa_init_sends_until_given_up("set retransmit_tries 2\n"), 2);
    assert_eq!(
        sa_init_sends_until_given_up("set retransmit_tries 4\nset retransmit_timeout 1\n"),
        4
    );
}

#[test]
fn retransmit_timeout_sets_the_first_retransmission() {
    let mut w = World::new();
    w.a.engine
        .set_tunables(&tunables("set retransmit_timeout 9\n"));
    w.filter = Box::new(|p| p.to.ip() != ip(B));
    w.configure(vec![a_policy()], vec![b_policy()]);
    w.settle();
    let start = w.now;
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeSaInit, false), 1);
    w.advance_by(Duration::from_secs(8));
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeSaInit, false), 1);
    w.advance_by(Duration::from_secs(1));
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeSaInit, false), 2);
    assert_eq!(w.now - start, Duration::from_secs(9));
}

#[test]
fn a_child_sa_cap_from_the_configuration_refuses_additional_sas() {
    for (config, refused) in [("", false), ("set childsa_max_per_ikesa 1\n", true)] {
        let mut w = World::new();
        w.b.engine.set_tunables(&tunables(config));
        let mut pa = a_policy();
        pa.flows = vec![
            selector("10.1.1.0", 24, "10.2.0.0", 16),
            selector("10.1.2.0", 24, "10.2.0.0", 16),
        ];
        w.configure(vec![pa], vec![b_policy()]);
        w.settle();
        assert_eq!(
            w.b.engine.children_by_policy.get("ba"),
            Some(&if refused { 1 } else { 2 }),
            "{config:?}"
        );
    }
}

/// Which of B's policies A's IKE SA ends up under.
fn responder_policy(policies: Vec<Policy>) -> String {
    let mut w = World::new();
    w.configure(vec![a_policy()], policies);
    w.settle();
    let spis = w.b.established();
    assert_eq!(spis.len(), 1, "B has no IKE SA");
    w.b.engine.ike(spis[0]).map(|sa| sa.policy.clone()).unwrap()
}

fn b_named(name: &str, matching: PolicyMatch) -> Policy {
    Policy {
        name: name.into(),
        matching,
        ..b_policy()
    }
}

#[test]
fn the_last_matching_policy_wins_unless_an_earlier_one_is_quick() {
    use PolicyMatch::*;
    assert_eq!(
        responder_policy(vec![b_named("first", Normal), b_named("second", Normal)]),
        "second"
    );
    assert_eq!(
        responder_policy(vec![b_named("first", Quick), b_named("second", Normal)]),
        "first"
    );
    assert_eq!(
        responder_policy(vec![
            b_named("first", Normal),
            b_named("fast", Quick),
            b_named("faster-but-later", Quick)
        ]),
        "fast"
    );
    assert_eq!(
        responder_policy(vec![b_named("first", Normal), b_named("second", Skip)]),
        "first"
    );
    assert_eq!(
        responder_policy(vec![b_named("fallback", Default), b_named("first", Normal)]),
        "first"
    );
    assert_eq!(
        responder_policy(vec![b_named("fallback", Default), b_named("flows", Skip)]),
        "fallback"
    );
}

#[test]
fn with_only_skip_policies_nothing_is_negotiated() {
    let mut w = World::new();
    w.configure(vec![a_policy()], vec![b_named("flows", PolicyMatch::Skip)]);
    w.settle();
    assert!(w.b.established().is_empty());
}

/// A second IKE SA of A's policy with B, as after a restart of A's side
/// that B did not notice (no INITIAL_CONTACT: A still holds the first);
/// with B's SPI of the first.
fn second_ike_sa(enforce: bool) -> (World, u64) {
    let mut w = World::new();
    let config = if enforce {
        "set enforcesingleikesa\n"
    } else {
        ""
    };
    w.b.engine.set_tunables(&tunables(config));
    w.handshake();
    let first = w.b.established();
    assert_eq!(first.len(), 1);
    w.now += Duration::from_secs(5);
    w.a.engine.initiate("ab", None, 0).unwrap();
    w.settle();
    (w, first[0])
}

#[test]
fn enforcesingleikesa_replaces_the_older_ike_sa_of_a_peer_identity() {
    let (w, _) = second_ike_sa(false);
    assert_eq!(w.b.established().len(), 2, "without it both IKE SAs stay");
    let (w, first) = second_ike_sa(true);
    let (a, b) = (w.a.established(), w.b.established());
    assert_eq!(b.len(), 1, "B keeps one IKE SA");
    assert_eq!(a.len(), 1, "A deleted the first on B's DELETE");
    assert_ne!(b[0], first, "the newer IKE SA survives");
}
