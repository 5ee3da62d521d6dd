//! Configuration reloads and control commands (show sa, initiate, terminate, shutdown).

use super::*;

#[test]
fn show_sa_carries_the_kernel_counters_of_both_directions() {
    let mut w = World::new();
    w.handshake();
    let (spi_a_in, spi_a_out) = assert_one_matching_child(&w);
    w.a.traffic.insert(
        spi_a_in,
        SaCounters {
            bytes: 1234,
            packets: 3,
        },
    );
    w.a.traffic.insert(
        spi_a_out,
        SaCounters {
            bytes: 5678,
            packets: 4,
        },
    );
    w.a.engine.handle_control(w.now, 9, ControlCommand::ShowSa);
    w.settle();
    // One read, for the inbound SA (B to A) and the outbound one (A to B).
    let esp = |src: &str, dst: &str, spi| SaId {
        src: ip(src),
        dst: ip(dst),
        protocol: IpsecProtocol::Esp,
        spi,
    };
    assert_eq!(w.a.counter_requests.len(), 1);
    assert_eq!(
        w.a.counter_requests[0].1,
        vec![esp(B, A, spi_a_in), esp(A, B, spi_a_out)]
    );
    let Some((9, ControlReply::SaList { sas: list, .. })) = w.a.control_replies.pop() else {
        panic!("no list for request 9");
    };
    let child = &list[0].children[0];
    assert_eq!(child.spi_in, format!("{spi_a_in:08x}"));
    assert_eq!((child.bytes_in, child.bytes_out), (Some(1234), Some(5678)));

    // Nothing installed: the list comes at once, without a read.
    let mut w = World::new();
    w.a.no_esp = true;
    w.b.no_esp = true;
    w.handshake();
    w.a.engine.handle_control(w.now, 3, ControlCommand::ShowSa);
    w.settle();
    assert!(w.a.counter_requests.is_empty());
    let Some((3, ControlReply::SaList { sas: list, .. })) = w.a.control_replies.pop() else {
        panic!("no list for request 3");
    };
    assert_eq!(list[0].children[0].bytes_in, None);
}

#[test]
fn show_sa_answers_without_counters_when_pfkey_is_silent() {
    let mut w = World::new();
    w.handshake();
    w.a.counters_unanswered = true;
    w.a.engine.handle_control(w.now, 4, ControlCommand::ShowSa);
    w.settle();
    assert!(w.a.control_replies.is_empty(), "waits for the counters");
    w.advance_by(crate::engine::control::COUNTERS_TIMEOUT - Duration::from_millis(1));
    assert!(w.a.control_replies.is_empty(), "waits up to the bound");
    w.advance_by(Duration::from_millis(1));
    let Some((4, ControlReply::SaList { sas: list, .. })) = w.a.control_replies.pop() else {
        panic!("no list for request 4 after the bound");
    };
    let child = &list[0].children[0];
    assert!(child.installed);
    assert_eq!((child.bytes_in, child.bytes_out), (None, None));
    // The late answer is not an error; an answer to a read never made is.
    let (late, sas) = w.a.counter_requests[0].clone();
    let counters = sas.iter().map(|sa| (*sa, None)).collect();
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Counters { id: late, counters })
        .unwrap();
    assert!(w.a.engine.drain_actions().is_empty(), "answered only once");
    assert!(w
        .a
        .engine
        .handle_pfkey(
            w.now,
            PfkeyToIkev2::Counters {
                id: late + 1000,
                counters: vec![]
            }
        )
        .is_err());
}

#[test]
fn a_policy_deleted_by_the_peer_comes_back_but_terminate_stays_down() {
    let mut w = World::new();
    w.handshake();
    let first = assert_one_matching_ike(&w);
    // The responder deletes: the active side starts again after the delay.
    w.b.engine.handle_control(
        w.now,
        1,
        ControlCommand::Terminate {
            policy: "ba".into(),
        },
    );
    w.settle();
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    w.advance_by(Duration::from_secs(31));
    let second = assert_one_matching_ike(&w);
    assert_ne!(first, second);
    assert_one_matching_child(&w);
    // The operator terminates on the active side: it stays down.
    w.a.engine.handle_control(
        w.now,
        2,
        ControlCommand::Terminate {
            policy: "ab".into(),
        },
    );
    w.settle();
    w.advance_by(Duration::from_secs(120));
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    assert_eq!(w.b.engine.ike_sa_count(), 0);
}

#[test]
fn terminate_removes_ike_and_child_sas_on_both_sides() {
    let mut w = World::new();
    w.handshake();
    assert_one_matching_child(&w);
    w.a.engine.handle_control(
        w.now,
        9,
        ControlCommand::Terminate {
            policy: "ab".into(),
        },
    );
    w.settle();
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    assert_eq!(w.b.engine.ike_sa_count(), 0);
    assert_eq!(w.a.engine.child_sa_count(), 0);
    assert_eq!(w.b.engine.child_sa_count(), 0);
    assert!(w.a.sas.is_empty() && w.b.sas.is_empty());
    assert_eq!(w.a.deleted_sas.len(), 2);
    assert_only_trap(&w.a);
    assert_only_trap(&w.b);
    // And initiate brings it back.
    w.a.engine.handle_control(
        w.now,
        10,
        ControlCommand::Initiate {
            policy: "ab".into(),
        },
    );
    w.settle();
    assert!(matches!(
        w.a.control_replies.last(),
        Some((10, ControlReply::Done(_)))
    ));
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
}

#[test]
fn reload_keeps_unchanged_policies_and_drops_removed_ones() {
    let mut w = World::new();
    w.handshake();
    let ike = assert_one_matching_ike(&w);
    // Same policies again: nothing changes.
    w.a.engine
        .set_config(w.now, vec![a_policy()], InitiationMode::Active, 0);
    w.settle();
    assert_eq!(assert_one_matching_ike(&w), ike);
    // Policy removed: its SA is deleted with the peer.
    w.a.engine
        .set_config(w.now, vec![], InitiationMode::Active, 0);
    w.settle();
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    assert_eq!(w.b.engine.ike_sa_count(), 0);
}

#[test]
fn shutdown_tells_the_peer() {
    let mut w = World::new();
    w.handshake();
    assert_one_matching_ike(&w);
    w.a.engine.shutdown(w.now);
    let actions = w.a.engine.drain_actions();
    assert_eq!(actions.len(), 1);
    let Action::Send { datagram, .. } = &actions[0] else {
        panic!("expected a datagram");
    };
    // B accepts the DELETE and removes the IKE SA and its Child SA.
    w.b.engine.handle_datagram(
        w.now,
        SocketAddr::new(ip(B), 500),
        SocketAddr::new(ip(A), 500),
        datagram,
    );
    w.settle();
    assert_eq!(w.b.engine.ike_sa_count(), 0);
    assert!(w.b.sas.is_empty());
}

#[test]
fn reload_replaces_the_sas_of_a_changed_policy() {
    let mut w = World::new();
    w.handshake();
    let old = assert_one_matching_ike(&w);
    let mut changed = a_policy();
    // A changed flow: what the SA was negotiated with (reload.rs).
    changed.flows = vec![selector("10.1.0.0", 24, "10.2.0.0", 16)];
    w.a.engine
        .set_config(w.now, vec![changed], InitiationMode::Active, 0);
    w.settle();
    let new = assert_one_matching_ike(&w);
    assert_ne!(new, old);
    assert_eq!(w.a.engine.ike_sa_count(), 1);
    assert_eq!(w.b.engine.ike_sa_count(), 1);
    assert_one_matching_child(&w);
}

#[test]
fn absurd_lifetimes_do_not_overflow_the_clock() {
    let mut w = World::new();
    let mut pa = a_policy();
    pa.ike_lifetime_secs = u64::MAX;
    pa.child_lifetime_secs = u64::MAX;
    pa.child_lifetime_bytes = u64::MAX;
    let mut pb = b_policy();
    pb.ike_lifetime_secs = u64::MAX;
    pb.child_lifetime_secs = u64::MAX;
    w.configure(vec![pa], vec![pb]);
    w.settle();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
}

#[test]
fn reload_removes_the_traps_of_removed_policies() {
    let mut w = World::new();
    w.a.engine
        .set_config(w.now, vec![a_policy()], InitiationMode::Passive, 0);
    w.settle();
    assert_only_trap(&w.a);
    w.a.engine
        .set_config(w.now, vec![a_policy()], InitiationMode::Passive, 0);
    w.settle();
    assert_only_trap(&w.a);
    w.a.engine
        .set_config(w.now, vec![], InitiationMode::Passive, 0);
    w.settle();
    assert!(w.a.policies.is_empty());
}
