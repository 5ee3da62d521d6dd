//! IKE SA rekeys, their collisions, and Child SAs moved to the new IKE SA.

use super::*;

#[test]
fn ike_rekey_moves_children_to_the_new_sa() {
    let mut w = World::new();
    w.handshake();
    let old = assert_one_matching_ike(&w);
    let (child, _) = assert_one_matching_child(&w);
    let old_keys =
        w.a.engine
            .ike(old)
            .unwrap()
            .keys
            .as_ref()
            .unwrap()
            .sk_d
            .expose()
            .to_vec();
    w.a.engine.run_task(old, Task::RekeyIke);
    w.settle();
    let new = assert_one_matching_ike(&w);
    assert_ne!(new, old);
    assert_eq!(w.a.engine.ike_sa_count(), 1);
    assert_eq!(w.b.engine.ike_sa_count(), 1);
    assert_ne!(
        w.a.engine
            .ike(new)
            .unwrap()
            .keys
            .as_ref()
            .unwrap()
            .sk_d
            .expose(),
        old_keys.as_slice()
    );
    assert_eq!(w.a.engine.child(child).unwrap().ike, new);
    assert_one_matching_child(&w);
    // The new SA works: a child rekey over it succeeds.
    w.a.engine.run_task(new, Task::RekeyChild { spi_in: child });
    w.settle();
    let (after, _) = assert_one_matching_child(&w);
    assert_ne!(after, child);
}

#[test]
fn simultaneous_ike_rekeys_leave_exactly_one_ike_sa() {
    for seed in 0..4u64 {
        let mut w = World::new();
        w.a.engine = Engine::new(settings(), seeded(0x3333 + seed * 7), w.now).unwrap();
        w.b.engine = Engine::new(settings(), seeded(0x4444 + seed * 13), w.now).unwrap();
        w.handshake();
        let ia = assert_one_matching_ike(&w);
        let ib = w.b.established()[0];
        w.a.engine.run_task(ia, Task::RekeyIke);
        w.b.engine.run_task(ib, Task::RekeyIke);
        w.settle();
        let new = assert_one_matching_ike(&w);
        assert_ne!(new, ia);
        assert_eq!(
            w.a.engine.ike_sa_count(),
            1,
            "seed {seed}: {:x?}",
            w.a.engine.ike_spis()
        );
        assert_eq!(
            w.b.engine.ike_sa_count(),
            1,
            "seed {seed}: {:x?}",
            w.b.engine.ike_spis()
        );
        let (child, _) = assert_one_matching_child(&w);
        assert_eq!(w.a.engine.child(child).unwrap().ike, new);
    }
}

#[test]
fn scheduled_rekeys_happen_from_policy_lifetimes() {
    let mut w = World::new();
    let mut pa = a_policy();
    pa.child_lifetime_secs = 100;
    pa.ike_lifetime_secs = 300;
    let mut pb = b_policy();
    pb.child_lifetime_secs = 100;
    pb.ike_lifetime_secs = 300;
    w.configure(vec![pa], vec![pb]);
    w.settle();
    let ike0 = assert_one_matching_ike(&w);
    let (c0, _) = assert_one_matching_child(&w);
    w.advance_by(Duration::from_secs(95));
    let (c1, _) = assert_one_matching_child(&w);
    assert_ne!(c0, c1);
    w.advance_by(Duration::from_secs(250));
    let ike1 = assert_one_matching_ike(&w);
    assert_ne!(ike0, ike1);
    assert_one_matching_child(&w);
    assert_eq!(w.a.engine.ike_sa_count() + w.b.engine.ike_sa_count(), 2);
}

#[test]
fn ike_rekey_collision_with_a_late_request_still_ends_with_one_ike_sa() {
    for late_side in [B, A] {
        let mut w = World::new();
        w.handshake();
        let ia = assert_one_matching_ike(&w);
        let ib = w.b.established()[0];
        let (filter, held) =
            hold_first(move |p| is_request_from(p, ip(late_side), ExchangeType::CreateChildSa));
        w.filter = filter;
        w.a.engine.run_task(ia, Task::RekeyIke);
        w.b.engine.run_task(ib, Task::RekeyIke);
        w.settle();
        let late: Vec<Packet> = held.borrow_mut().drain(..).collect();
        for p in late {
            w.deliver(p);
        }
        w.settle();
        w.advance_by(Duration::from_secs(60));
        let new = assert_one_matching_ike(&w);
        assert_ne!(new, ia);
        assert_eq!(w.a.engine.ike_sa_count(), 1, "{:x?}", w.a.engine.ike_spis());
        assert_eq!(w.b.engine.ike_sa_count(), 1, "{:x?}", w.b.engine.ike_spis());
        let (child, _) = assert_one_matching_child(&w);
        assert_eq!(w.a.engine.child(child).unwrap().ike, new);
    }
}

#[test]
fn child_rekey_crossing_an_ike_rekey_ends_on_the_new_ike_sa() {
    for (child_side_is_a, seed) in [(true, 1u64), (false, 2), (true, 3), (false, 4)] {
        let mut w = World::new();
        w.a.engine = Engine::new(settings(), seeded(0x7777 + seed), w.now).unwrap();
        w.b.engine = Engine::new(settings(), seeded(0x8888 + seed), w.now).unwrap();
        w.handshake();
        let (old_a, old_b) = assert_one_matching_child(&w);
        let ia = w.a.established()[0];
        let ib = w.b.established()[0];
        if child_side_is_a {
            w.a.engine.run_task(ia, Task::RekeyChild { spi_in: old_a });
            w.b.engine.run_task(ib, Task::RekeyIke);
        } else {
            w.a.engine.run_task(ia, Task::RekeyIke);
            w.b.engine.run_task(ib, Task::RekeyChild { spi_in: old_b });
        }
        w.settle();
        w.advance_by(Duration::from_secs(60));
        let new_ike = assert_one_matching_ike(&w);
        assert_ne!(new_ike, ia);
        let (child, _) = assert_one_matching_child(&w);
        assert_ne!(child, old_a);
        assert_eq!(w.a.engine.child(child).unwrap().ike, new_ike);
        assert_eq!(w.a.engine.ike_sa_count(), 1);
        assert_eq!(w.b.engine.ike_sa_count(), 1);
        assert_eq!(w.a.sas.len(), 2);
        assert_eq!(w.b.sas.len(), 2);
        assert_eq!(w.a.policies.len(), 3);
    }
}

#[test]
fn ike_rekey_retries_with_the_group_the_peer_wants() {
    let mut w = World::new();
    w.handshake();
    let old = assert_one_matching_ike(&w);
    assert_eq!(
        w.a.engine.ike(old).unwrap().suite.unwrap().ke,
        iked_common::crypto::KeMethod::Ecp256
    );
    // B now only takes curve25519 (as after a reload that kept the SA).
    w.b.engine.policies[0].ike_proposals = vec![ike_proposal(&[31])];
    w.a.engine.run_task(old, Task::RekeyIke);
    w.settle();
    let new = assert_one_matching_ike(&w);
    assert_ne!(new, old);
    assert_eq!(
        w.a.engine.ike(new).unwrap().suite.unwrap().ke,
        iked_common::crypto::KeMethod::Curve25519
    );
    assert_one_matching_child(&w);
}
