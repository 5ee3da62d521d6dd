//! `show stats` counters and `monitor` events (engine/stats.rs), from
//! known sequences between two engines.

use super::*;
use iked_common::stats::{AuthFailure, EngineStats, EventKind, SaEvent, SaLevel};

/// (kind, level) of each event, in order.
fn kinds(events: &[SaEvent]) -> Vec<(EventKind, SaLevel)> {
    events.iter().map(|e| (e.kind, e.level)).collect()
}

/// The counters as `ikectl show stats` gets them: through the control API.
fn stats_of(w: &mut World, on_a: bool) -> EngineStats {
    let node = if on_a { &mut w.a } else { &mut w.b };
    node.engine
        .handle_control(w.now, 77, ControlCommand::ShowStats);
    let Some(Action::Control {
        id: 77,
        reply: ControlReply::Stats(report),
    }) = node.engine.poll_action()
    else {
        panic!("show stats was not answered at once");
    };
    report.engine
}

#[test]
fn a_handshake_is_counted_and_reported_up_in_order() {
    let mut w = World::new();
    w.handshake();
    let (child_a, _) = assert_one_matching_child(&w);
    let ike = assert_one_matching_ike(&w);
    let a = stats_of(&mut w, true);
    assert_eq!(a.messages_out.get("IKE_SA_INIT"), 1);
    assert_eq!(a.messages_out.get("IKE_AUTH"), 1);
    assert_eq!(a.messages_in.get("IKE_SA_INIT"), 1);
    assert_eq!(a.messages_in.get("IKE_AUTH"), 1);
    assert_eq!(a.ike_sas_up, 1);
    assert_eq!(a.child_sas_up, 1);
    assert_eq!(a.ike_sas.get("established"), Some(&1));
    assert_eq!(a.child_sas.get("established"), Some(&1));
    assert_eq!(
        (a.retransmits, a.timeouts, a.auth_failures_total()),
        (0, 0, 0)
    );
    assert_eq!(a.half_open, 0);
    let b = stats_of(&mut w, false);
    assert_eq!(b.messages_in.get("IKE_SA_INIT"), 1);
    assert_eq!(b.messages_out.get("IKE_AUTH"), 1);
    assert_eq!(b.ike_sas_up, 1);
    assert_eq!(
        kinds(&w.a.events),
        [
            (EventKind::Up, SaLevel::Ike),
            (EventKind::Up, SaLevel::Child)
        ]
    );
    let sa = w.a.engine.ike(ike).unwrap();
    let ike_text = format!("{:016x}/{:016x}", sa.spi_i, sa.spi_r);
    assert_eq!(w.a.events[0].ike_sa.as_deref(), Some(ike_text.as_str()));
    assert_eq!(w.a.events[0].policy, "ab");
    assert_eq!(w.a.events[0].peer, Some(sa.peer));
    assert!(w.a.events[1]
        .child_sa
        .as_deref()
        .is_some_and(|c| c.starts_with(&format!("{child_a:08x}/"))));
    assert_eq!(w.b.events.len(), 2);
    assert_eq!(a.events, 2);
}

#[test]
fn rekeys_are_one_event_each_and_a_delete_takes_children_first() {
    let mut w = World::new();
    w.handshake();
    let (old_child, _) = assert_one_matching_child(&w);
    w.a.events.clear();
    w.b.events.clear();
    let expire = esp_expire(B, A, old_child, false);
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Event(expire))
        .unwrap();
    w.settle();
    let (new_child, _) = assert_one_matching_child(&w);
    assert_eq!(kinds(&w.a.events), [(EventKind::Rekeyed, SaLevel::Child)]);
    let rekey = &w.a.events[0];
    assert!(rekey
        .child_sa
        .as_deref()
        .is_some_and(|c| c.starts_with(&format!("{new_child:08x}/"))));
    assert!(rekey
        .replaces
        .as_deref()
        .is_some_and(|c| c.starts_with(&format!("{old_child:08x}/"))));
    // B, the responder of the rekey, says the same of its pair.
    assert_eq!(kinds(&w.b.events), [(EventKind::Rekeyed, SaLevel::Child)]);
    // An IKE SA rekey: one event, naming the old SA.
    let old_ike = assert_one_matching_ike(&w);
    w.a.engine.run_task(old_ike, Task::RekeyIke);
    w.settle();
    let new_ike = assert_one_matching_ike(&w);
    assert_eq!(
        kinds(&w.a.events[1..]),
        [(EventKind::Rekeyed, SaLevel::Ike)]
    );
    let spis = |spi: u64, w: &World| {
        let sa = w.a.engine.ike(spi).unwrap();
        format!("{:016x}/{:016x}", sa.spi_i, sa.spi_r)
    };
    assert_eq!(w.a.events[1].ike_sa, Some(spis(new_ike, &w)));
    assert!(w.a.events[1].replaces.is_some());
    assert_eq!(stats_of(&mut w, true).ike_sas_up, 2);
    // The operator deletes it: its Child SA goes down, then the IKE SA.
    w.a.events.clear();
    w.a.engine.handle_control(
        w.now,
        4,
        ControlCommand::Terminate {
            policy: "ab".into(),
        },
    );
    w.settle();
    assert_eq!(
        kinds(&w.a.events),
        [
            (EventKind::Down, SaLevel::Child),
            (EventKind::Down, SaLevel::Ike)
        ]
    );
    assert_eq!(w.a.events[1].reason.as_deref(), Some("deleted"));
    let a = stats_of(&mut w, true);
    assert_eq!(a.ike_sas.values().sum::<u64>(), 0);
    assert_eq!(a.messages_out.get("CREATE_CHILD_SA"), 2);
    assert!(a.messages_out.get("INFORMATIONAL") >= 2);
}

#[test]
fn a_wrong_psk_is_counted_by_reason_on_both_sides() {
    let mut w = World::new();
    w.b.psk = b"another key".to_vec();
    w.handshake();
    let a = stats_of(&mut w, true);
    let b = stats_of(&mut w, false);
    assert_eq!(b.auth_failure(AuthFailure::PeerAuthInvalid), 1);
    assert_eq!(b.auth_failures_total(), 1);
    assert_eq!(a.auth_failure(AuthFailure::RefusedByPeer), 1);
    assert_eq!(a.auth_failures_total(), 1);
    assert_eq!((a.ike_sas_up, b.ike_sas_up), (0, 0));
    assert_eq!(kinds(&w.a.events), [(EventKind::Failed, SaLevel::Ike)]);
    assert_eq!(
        w.a.events[0].reason.as_deref(),
        Some("AUTHENTICATION_FAILED")
    );
    assert_eq!(kinds(&w.b.events), [(EventKind::Failed, SaLevel::Ike)]);
}

#[test]
fn retransmits_and_a_dead_peer_are_counted_and_reported() {
    let mut w = World::new();
    w.configure_dpd(vec![a_policy()], vec![b_policy()], 10);
    let mut dropped = false;
    w.filter = Box::new(move |p| {
        let is_auth = Header::decode(&p.data)
            .is_ok_and(|h| h.header.exchange == ExchangeType::IkeAuth && !h.header.flags.response);
        if is_auth && !dropped {
            dropped = true;
            return false;
        }
        true
    });
    w.settle();
    w.advance();
    assert_one_matching_ike(&w);
    let a = stats_of(&mut w, true);
    assert_eq!(a.retransmits, 1);
    assert_eq!(a.messages_out.get("IKE_AUTH"), 2);
    assert_eq!(a.timeouts, 0);
    w.a.events.clear();
    w.filter = Box::new(|p| p.from.ip() != ip(B));
    w.advance_by(Duration::from_secs(90));
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    let a = stats_of(&mut w, true);
    assert_eq!(a.timeouts, 1);
    // 1 + 4 retransmissions of the DPD check.
    assert_eq!(a.retransmits, 5);
    assert_eq!(
        kinds(&w.a.events[..2]),
        [
            (EventKind::Down, SaLevel::Child),
            (EventKind::PeerDead, SaLevel::Ike)
        ]
    );
    assert_eq!(
        w.a.events[1].reason.as_deref(),
        Some("peer is dead (no answer to DPD)")
    );
}

#[test]
fn a_half_open_sa_that_times_out_makes_no_event() {
    let mut w = World::new();
    w.configure(vec![a_policy()], vec![b_policy()]);
    w.filter = Box::new(|p| {
        // A's IKE_AUTH never reaches B: B's SA stays half open.
        !Header::decode(&p.data).is_ok_and(|h| h.header.exchange == ExchangeType::IkeAuth)
    });
    w.settle();
    assert_eq!(stats_of(&mut w, false).half_open, 1);
    w.b.events.clear();
    w.advance_by(Duration::from_secs(40));
    assert_eq!(stats_of(&mut w, false).half_open, 0);
    assert!(w.b.events.is_empty(), "{:?}", w.b.events);
}

#[test]
fn a_cookie_challenge_is_counted_and_is_no_retransmission() {
    let mut sb = settings();
    sb.cookie_threshold = 0;
    let mut w = World::with(settings(), sb);
    w.handshake();
    assert_one_matching_ike(&w);
    let a = stats_of(&mut w, true);
    let b = stats_of(&mut w, false);
    assert_eq!(b.cookies_sent, 1);
    assert_eq!(a.cookies_sent, 0);
    // A's second IKE_SA_INIT (with the cookie) is a new request.
    assert_eq!(a.messages_out.get("IKE_SA_INIT"), 2);
    assert_eq!(a.retransmits, 0);
    assert_eq!(b.messages_in.get("IKE_SA_INIT"), 2);
    assert_eq!(b.messages_out.get("IKE_SA_INIT"), 2);
    assert_eq!(b.ike_sas_up, 1);
}
