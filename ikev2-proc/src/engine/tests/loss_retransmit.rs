//! Lost, duplicated and reordered datagrams; retransmission, DPD, lossy networks.

use super::*;

#[test]
fn lost_auth_request_is_retransmitted() {
    let mut w = World::new();
    let mut dropped = 0;
    w.filter = Box::new(move |p| {
        let is_auth = Header::decode(&p.data)
            .is_ok_and(|h| h.header.exchange == ExchangeType::IkeAuth && !h.header.flags.response);
        if is_auth && dropped < 2 {
            dropped += 1;
            return false;
        }
        true
    });
    w.handshake();
    assert!(w.a.established().is_empty());
    w.advance(); // 2 s
    w.advance(); // 4 s more
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeAuth, false), 3);
}

#[test]
fn lost_response_is_answered_from_the_cache() {
    let mut w = World::new();
    let mut dropped = false;
    w.filter = Box::new(move |p| {
        let is_auth_resp = Header::decode(&p.data)
            .is_ok_and(|h| h.header.exchange == ExchangeType::IkeAuth && h.header.flags.response);
        if is_auth_resp && !dropped {
            dropped = true;
            return false;
        }
        true
    });
    w.handshake();
    // B is established, A is not; A retransmits, B answers from its cache
    // without processing the request again (one Child SA, one AUTH check).
    assert_eq!(w.b.established().len(), 1);
    w.advance();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    let responses =
        w.b.sent
            .iter()
            .filter(|(_, _, d)| {
                Header::decode(d).is_ok_and(|h| h.header.exchange == ExchangeType::IkeAuth)
            })
            .collect::<Vec<_>>();
    assert_eq!(responses.len(), 2);
    assert_eq!(
        responses[0].2, responses[1].2,
        "the cached response is resent byte for byte"
    );
}

#[test]
fn duplicated_and_reordered_datagrams_do_not_disturb() {
    let mut w = World::new();
    w.configure(vec![a_policy()], vec![b_policy()]);
    // Deliver every datagram twice, and swap pairs in flight.
    w.deliver_backwards_twice_swapped();
    w.settle();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    assert_eq!(w.b.sas.len(), 2);
}

#[test]
fn unanswered_initiation_gives_up_after_the_configured_tries() {
    let mut w = World::new();
    w.filter = Box::new(|p| p.to.ip() != ip(B));
    w.handshake();
    assert_eq!(w.a.engine.ike_sa_count(), 1);
    let start = w.now;
    for _ in 0..5 {
        w.advance();
    }
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeSaInit, false), 5);
    // 2 + 4 + 8 + 16 + 32 seconds of backoff.
    assert_eq!(w.now - start, Duration::from_secs(62));
    // The active policy is started again after the restart delay.
    w.advance();
    assert_eq!(w.now - start, Duration::from_secs(92));
    assert_eq!(w.a.engine.ike_sa_count(), 1);
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeSaInit, false), 6);
}

#[test]
fn dead_peer_is_detected_and_its_sa_deleted() {
    let mut w = World::new();
    w.configure_dpd(vec![a_policy()], vec![b_policy()], 10);
    w.settle();
    assert_one_matching_ike(&w);
    // Idle traffic: DPD checks succeed.
    w.advance_by(Duration::from_secs(25));
    assert_one_matching_ike(&w);
    assert!(exchanges_sent(&w.a, ExchangeType::Informational, false) >= 2);
    // B goes silent.
    w.filter = Box::new(|p| p.from.ip() != ip(B));
    w.advance_by(Duration::from_secs(90));
    // 10 s idle, then 2+4+8+16+32 s of unanswered checks: dead.
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    assert!(w.a.sas.is_empty());
    assert!(w.b.established().is_empty(), "B found A dead too");
    // The active policy keeps trying, without success.
    w.advance_by(Duration::from_secs(60));
    assert!(w.a.established().is_empty());
    assert!(exchanges_sent(&w.a, ExchangeType::IkeSaInit, false) >= 2);
}

/// A lossy network: drops about `loss_percent` of datagrams, decided by a
/// seeded generator so every run is the same.
fn lossy(seed: u64, loss_percent: u8) -> PacketFilter {
    let mut rng = seeded(seed);
    Box::new(move |_p: &Packet| {
        let mut byte = [0u8; 1];
        rng.fill(&mut byte).unwrap();
        u16::from(byte[0]) * 100 / 256 >= u16::from(loss_percent)
    })
}

#[test]
fn lossy_networks_always_converge_to_one_ike_and_one_child_sa() {
    enable_test_log();
    for seed in 1..=40u64 {
        let mut w = World::new();
        w.a.engine = Engine::new(settings(), seeded(0xa000 + seed), w.now).unwrap();
        w.b.engine = Engine::new(settings(), seeded(0xb000 + seed), w.now).unwrap();
        w.filter = lossy(seed, 30);
        // Odd seeds: B is active too (simultaneous initiations).
        let mut pb = b_policy();
        if seed % 2 == 1 {
            pb.initiation = PolicyInitiation::Active;
        }
        w.b.engine
            .set_config(w.now, vec![pb], InitiationMode::Active, 20);
        w.a.engine
            .set_config(w.now, vec![a_policy()], InitiationMode::Active, 20);
        w.advance_by(Duration::from_secs(120));
        // Rekeys from both sides while packets are still being lost.
        for (ia, ib) in w.a.established().into_iter().zip(w.b.established()) {
            w.a.engine.run_task(ia, Task::RekeyIke);
            let child = w.b.engine.ikes[&ib].children.first().copied();
            if let Some(child) = child {
                w.b.engine.run_task(ib, Task::RekeyChild { spi_in: child });
            }
        }
        w.advance_by(Duration::from_secs(300));
        // The network heals: everything settles to one pair of SAs.
        w.filter = Box::new(|_| true);
        w.advance_by(Duration::from_secs(600));
        assert_one_matching_ike(&w);
        assert_one_matching_child(&w);
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
        assert_eq!(w.a.sas.len(), 2, "seed {seed}");
        assert_eq!(w.b.sas.len(), 2, "seed {seed}");
    }
}
