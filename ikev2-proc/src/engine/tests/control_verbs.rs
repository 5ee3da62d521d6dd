//! Control commands of engine/control_verbs.rs: show sa filters,
//! terminate --sa, active/passive, reset sa and reset id.

use super::*;

fn sa_list(w: &mut World, id: u64) -> Vec<iked_common::ipc::IkeSaInfo> {
    w.settle();
    match w.a.control_replies.iter().rev().find(|(i, _)| *i == id) {
        Some((_, ControlReply::SaList { sas, .. })) => sas.clone(),
        other => panic!("no list for request {id}: {other:?}"),
    }
}

#[test]
fn show_sa_filters_narrow_the_list_by_policy_and_peer() {
    let mut w = World::new();
    w.handshake();
    let filtered = |policy: Option<&str>, peer: Option<&str>| ControlCommand::ShowSaFiltered {
        policy: policy.map(str::to_string),
        peer: peer.map(str::to_string),
    };
    w.a.engine
        .handle_control(w.now, 1, filtered(Some("ab"), None));
    assert_eq!(sa_list(&mut w, 1).len(), 1);
    w.a.engine
        .handle_control(w.now, 2, filtered(Some("other"), None));
    assert!(sa_list(&mut w, 2).is_empty());
    w.a.engine.handle_control(w.now, 3, filtered(None, Some(B)));
    assert_eq!(sa_list(&mut w, 3).len(), 1);
    w.a.engine
        .handle_control(w.now, 4, filtered(Some("ab"), Some("192.0.2.250")));
    assert!(sa_list(&mut w, 4).is_empty());
}

#[test]
fn terminate_by_spi_deletes_that_ike_sa_on_both_sides() {
    let mut w = World::new();
    w.handshake();
    assert_one_matching_ike(&w);
    w.a.engine.handle_control(w.now, 1, ControlCommand::ShowSa);
    let list = sa_list(&mut w, 1);
    let spi = u64::from_str_radix(&list[0].spi_r, 16).unwrap();
    w.a.engine
        .handle_control(w.now, 2, ControlCommand::TerminateSa { spi: spi ^ 1 });
    w.settle();
    assert!(matches!(
        w.a.control_replies.last(),
        Some((2, ControlReply::Failed(_)))
    ));
    assert_eq!(w.a.engine.ike_sa_count(), 1);
    w.a.engine
        .handle_control(w.now, 3, ControlCommand::TerminateSa { spi });
    w.settle();
    assert!(matches!(
        w.a.control_replies.last(),
        Some((3, ControlReply::Done(_)))
    ));
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    assert_eq!(w.b.engine.ike_sa_count(), 0);
    assert_eq!(w.a.engine.child_sa_count(), 0);
}

#[test]
fn reset_sa_and_reset_id_delete_with_the_peer() {
    let mut w = World::new();
    w.handshake();
    w.a.engine.handle_control(w.now, 1, ControlCommand::ShowSa);
    let peer_id = sa_list(&mut w, 1)[0].peer_id.clone();
    w.a.engine.handle_control(
        w.now,
        2,
        ControlCommand::ResetId {
            id: "fqdn/nobody.example".into(),
        },
    );
    w.settle();
    assert!(matches!(
        w.a.control_replies.last(),
        Some((2, ControlReply::Failed(_)))
    ));
    assert_eq!(w.a.engine.ike_sa_count(), 1);
    w.a.engine
        .handle_control(w.now, 3, ControlCommand::ResetId { id: peer_id });
    w.settle();
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    assert_eq!(w.b.engine.ike_sa_count(), 0);
    // Started again by hand, then reset sa takes everything.
    w.a.engine.handle_control(
        w.now,
        4,
        ControlCommand::Initiate {
            policy: "ab".into(),
        },
    );
    w.settle();
    assert_one_matching_ike(&w);
    w.a.engine
        .handle_control(w.now, 5, ControlCommand::ResetSas);
    w.settle();
    assert!(matches!(
        w.a.control_replies.last(),
        Some((5, ControlReply::Done(m))) if m == "deleting 1 IKE SA(s)"
    ));
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    assert_eq!(w.b.engine.ike_sa_count(), 0);
}

#[test]
fn passive_then_active_starts_the_idle_active_policy() {
    let mut w = World::new();
    w.a.engine
        .handle_control(w.now, 1, ControlCommand::SetMode(InitiationMode::Passive));
    w.b.engine
        .set_config(w.now, vec![b_policy()], InitiationMode::Passive, 0);
    w.a.engine
        .set_config(w.now, vec![a_policy()], InitiationMode::Passive, 0);
    w.settle();
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    w.a.engine
        .handle_control(w.now, 2, ControlCommand::SetMode(InitiationMode::Active));
    w.settle();
    assert!(matches!(
        w.a.control_replies.last(),
        Some((2, ControlReply::Done(m))) if m == "initiation mode active"
    ));
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
}
