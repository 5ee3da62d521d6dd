//! Child SAs: CREATE_CHILD_SA, rekeys and their collisions, deletes, expires, ACQUIRE, caps.

use super::*;

#[test]
fn delete_of_child_and_ike_sa_cleans_both_sides() {
    let mut w = World::new();
    w.handshake();
    let (a_in, _) = assert_one_matching_child(&w);
    let ike = w.a.established()[0];
    // Child delete from A.
    w.a.engine
        .run_task(ike, Task::DeleteChildren { spis: vec![a_in] });
    w.settle();
    assert!(w.a.engine.child_spis().is_empty());
    assert!(w.b.engine.child_spis().is_empty());
    assert!(w.a.sas.is_empty() && w.b.sas.is_empty());
    assert_only_trap(&w.a);
    assert_only_trap(&w.b);
    assert_one_matching_ike(&w);
    // IKE SA delete from B (the responder) via terminate.
    w.b.engine.handle_control(
        w.now,
        3,
        ControlCommand::Terminate {
            policy: "ba".into(),
        },
    );
    w.settle();
    assert!(matches!(
        w.b.control_replies.last(),
        Some((3, ControlReply::Done(_)))
    ));
    assert_eq!(w.a.engine.ike_sa_count(), 0);
    assert_eq!(w.b.engine.ike_sa_count(), 0);
}

#[test]
fn child_rekey_replaces_the_child_sa() {
    let mut w = World::new();
    w.handshake();
    let (old_a, old_b) = assert_one_matching_child(&w);
    let expire = esp_expire(B, A, old_a, false);
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Event(expire))
        .unwrap();
    w.settle();
    let (new_a, new_b) = assert_one_matching_child(&w);
    assert_ne!(new_a, old_a);
    assert_ne!(new_b, old_b);
    assert_eq!(w.a.sas.len(), 2);
    assert_eq!(w.b.sas.len(), 2);
    // The policies were not removed: the new SA took them over.
    assert_eq!(w.a.policies.len(), 3);
    assert_eq!(w.b.policies.len(), 3);
}

#[test]
fn child_rekey_with_pfs_uses_a_new_key_exchange() {
    let mut w = World::new();
    let mut pa = a_policy();
    pa.child_proposals = vec![child_proposal(Some(31))];
    let mut pb = b_policy();
    pb.child_proposals = vec![child_proposal(Some(31))];
    w.configure(vec![pa], vec![pb]);
    w.settle();
    let (old_a, _) = assert_one_matching_child(&w);
    assert_eq!(
        w.a.engine.child(old_a).unwrap().suite.ke,
        None,
        "IKE_AUTH carries no KE"
    );
    let ike = w.a.established()[0];
    w.a.engine.run_task(ike, Task::RekeyChild { spi_in: old_a });
    w.settle();
    let (new_a, _) = assert_one_matching_child(&w);
    assert_ne!(new_a, old_a);
    assert_eq!(
        w.a.engine.child(new_a).unwrap().suite.ke,
        Some(iked_common::crypto::KeMethod::Curve25519)
    );
}

#[test]
fn simultaneous_child_rekeys_leave_exactly_one_child_sa() {
    for seed in 0..4u64 {
        let mut w = World::new();
        w.a.engine = Engine::new(settings(), seeded(0x1111 + seed * 7), w.now).unwrap();
        w.b.engine = Engine::new(settings(), seeded(0x2222 + seed * 13), w.now).unwrap();
        w.handshake();
        let (old_a, old_b) = assert_one_matching_child(&w);
        let ia = w.a.established()[0];
        let ib = w.b.established()[0];
        w.a.engine.run_task(ia, Task::RekeyChild { spi_in: old_a });
        w.b.engine.run_task(ib, Task::RekeyChild { spi_in: old_b });
        w.settle();
        let (new_a, _) = assert_one_matching_child(&w);
        assert_ne!(new_a, old_a);
        assert_eq!(w.a.sas.len(), 2, "seed {seed}");
        assert_eq!(w.b.sas.len(), 2, "seed {seed}");
        assert_eq!(w.a.policies.len(), 3, "seed {seed}");
        assert_eq!(w.b.policies.len(), 3, "seed {seed}");
    }
}

#[test]
fn hard_expire_deletes_the_child() {
    let mut w = World::new();
    w.handshake();
    let (a_in, _) = assert_one_matching_child(&w);
    let expire = esp_expire(B, A, a_in, true);
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Event(expire))
        .unwrap();
    w.settle();
    assert_eq!(w.a.engine.child_sa_count(), 0);
    assert_eq!(w.b.engine.child_sa_count(), 0);
    assert_one_matching_ike(&w);
}

#[test]
fn second_flow_gets_an_additional_child_sa() {
    let mut w = World::new();
    let mut pa = a_policy();
    pa.flows.push(selector("10.1.0.0", 16, "10.3.0.0", 16));
    let mut pb = b_policy();
    pb.flows.push(selector("10.3.0.0", 16, "10.1.0.0", 16));
    w.configure(vec![pa], vec![pb]);
    w.settle();
    assert_one_matching_ike(&w);
    assert_eq!(w.a.engine.child_sa_count(), 2);
    assert_eq!(w.b.engine.child_sa_count(), 2);
    assert_eq!(w.a.sas.len(), 4);
    assert_eq!(w.a.policies.len(), 6);
}

#[test]
fn acquire_starts_the_covering_policy() {
    let mut w = World::new();
    let mut pa = a_policy();
    pa.initiation = PolicyInitiation::Active;
    w.a.engine
        .set_config(w.now, vec![pa], InitiationMode::Passive, 0);
    w.b.engine
        .set_config(w.now, vec![b_policy()], InitiationMode::Passive, 0);
    w.settle();
    assert_eq!(
        w.a.engine.ike_sa_count(),
        0,
        "set passive: nothing starts at load"
    );
    // The active policy's flow is trapped, so traffic makes an ACQUIRE.
    assert_only_trap(&w.a);
    let trap = w.a.policies[0];
    assert_eq!(trap.selector, selector("10.1.0.0", 16, "10.2.0.0", 16));
    assert_eq!((trap.template.src, trap.template.dst), (ip(A), ip(B)));
    let acquire = KernelEvent::Acquire {
        selector: selector("10.1.0.5", 32, "10.2.3.4", 32),
        src: ip(A),
        dst: ip(B),
        reqid: 0,
        seq: 1,
    };
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Event(acquire.clone()))
        .unwrap();
    w.settle();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    // The Child SA's SAs carry the trap's reqid; it adds only in and fwd.
    assert!(w.a.sas.values().all(|sa| sa.reqid == trap.template.reqid));
    assert_eq!(w.a.policies.len(), 3);
    assert_eq!(
        w.a.policies
            .iter()
            .filter(|p| p.direction == iked_common::kernel::PolicyDirection::Out)
            .count(),
        1
    );
    // A second ACQUIRE for the same flow starts nothing new.
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Event(acquire))
        .unwrap();
    w.settle();
    assert_one_matching_child(&w);
    // Outside every flow: nothing.
    let stray = KernelEvent::Acquire {
        selector: selector("10.9.0.5", 32, "10.2.3.4", 32),
        src: ip(A),
        dst: ip(B),
        reqid: 0,
        seq: 2,
    };
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Event(stray))
        .unwrap();
    w.settle();
    assert_eq!(w.a.engine.ike_sa_count(), 1);
}

#[test]
fn expire_of_an_unknown_or_outbound_spi_is_ignored() {
    let mut w = World::new();
    w.handshake();
    let (_, b_in) = assert_one_matching_child(&w);
    // A's outbound SPI is B's inbound one: not A's to rekey by that number.
    let expire = esp_expire(A, B, b_in, true);
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Event(expire))
        .unwrap();
    w.settle();
    assert_one_matching_child(&w);
}

#[test]
fn pfs_group_is_renegotiated_after_invalid_ke_payload() {
    let mut w = World::new();
    let mut pa = a_policy();
    // A prefers ecp256 for PFS but also allows curve25519; B wants curve25519.
    pa.child_proposals = vec![{
        let mut p = child_proposal(Some(19));
        p.transforms.push(t(TRANSFORM_KE, 31, None));
        p
    }];
    let mut pb = b_policy();
    pb.child_proposals = vec![child_proposal(Some(31))];
    w.configure(vec![pa], vec![pb]);
    w.settle();
    let (old, _) = assert_one_matching_child(&w);
    let ike = w.a.established()[0];
    w.a.engine.run_task(ike, Task::RekeyChild { spi_in: old });
    w.settle();
    let (new, _) = assert_one_matching_child(&w);
    assert_ne!(new, old);
    assert_eq!(
        w.a.engine.child(new).unwrap().suite.ke,
        Some(iked_common::crypto::KeMethod::Curve25519)
    );
    assert_eq!(exchanges_sent(&w.a, ExchangeType::CreateChildSa, false), 2);
}

#[test]
fn child_rekey_collision_with_a_late_request_still_ends_with_one_child() {
    for late_side in [B, A] {
        let mut w = World::new();
        w.handshake();
        let (old_a, old_b) = assert_one_matching_child(&w);
        // B's rekey request is held back until A's rekey has completed.
        let (filter, held) =
            hold_first(move |p| is_request_from(p, ip(late_side), ExchangeType::CreateChildSa));
        w.filter = filter;
        let ia = w.a.established()[0];
        let ib = w.b.established()[0];
        w.a.engine.run_task(ia, Task::RekeyChild { spi_in: old_a });
        w.b.engine.run_task(ib, Task::RekeyChild { spi_in: old_b });
        w.settle();
        let late: Vec<Packet> = held.borrow_mut().drain(..).collect();
        assert_eq!(late.len(), 1);
        for p in late {
            w.deliver(p);
        }
        w.settle();
        w.advance_by(Duration::from_secs(60));
        let (new_a, _) = assert_one_matching_child(&w);
        assert_ne!(new_a, old_a);
        assert_eq!(w.a.sas.len(), 2);
        assert_eq!(w.b.sas.len(), 2);
        assert_eq!(w.a.policies.len(), 3);
        assert_eq!(w.b.policies.len(), 3);
    }
}

#[test]
fn child_sa_refused_by_pfkey_is_deleted_with_the_peer() {
    let mut w = World::new();
    w.a.refuse = true;
    w.handshake();
    assert_one_matching_ike(&w);
    assert_eq!(w.a.engine.child_sa_count(), 0);
    assert_eq!(w.b.engine.child_sa_count(), 0);
    assert!(w.b.sas.is_empty(), "B removed its installed half too");
}

/// One half of A's pair is refused by the kernel: the half that did go in
/// is removed again (and the inbound SPI given back), no policy of the
/// Child SA is installed, and nothing of it stays in A's kernel.
#[test]
fn a_half_installed_child_sa_leaves_nothing_in_the_kernel() {
    for refused_towards in [B, A] {
        let mut w = World::new();
        w.a.refuse_sas_to = Some(ip(refused_towards));
        w.handshake();
        assert_one_matching_ike(&w);
        let spis = w.a.engine.child_spis();
        assert_eq!(spis.len(), 1, "the negotiated Child SA is kept");
        let child = w.a.engine.child(spis[0]).unwrap();
        assert!(child.install_failed && !child.installed);
        let inbound = SaId {
            src: ip(B),
            dst: ip(A),
            protocol: IpsecProtocol::Esp,
            spi: child.spi_in,
        };
        let outbound = SaId {
            src: ip(A),
            dst: ip(B),
            protocol: IpsecProtocol::Esp,
            spi: child.spi_out,
        };
        assert!(
            w.a.sas.is_empty(),
            "refused towards {refused_towards}: a half stayed: {:?}",
            w.a.sas.keys()
        );
        assert!(
            w.a.deleted_sas.contains(&inbound),
            "the inbound SA (or its larval SA) is removed: {:?}",
            w.a.deleted_sas
        );
        assert_eq!(
            w.a.deleted_sas.contains(&outbound),
            refused_towards == A,
            "the outbound SA is removed when it went in: {:?}",
            w.a.deleted_sas
        );
        assert!(
            w.a.policies
                .iter()
                .all(|p| p.direction == iked_common::kernel::PolicyDirection::Out),
            "only the trap policy: {:?}",
            w.a.policies
        );
        // The removal happens once: a later delete of the Child SA asks
        // for nothing more.
        let removals = w.a.deleted_sas.len();
        w.a.engine.remove_child(child.spi_in);
        w.settle();
        assert_eq!(w.a.deleted_sas.len(), removals);
    }
}

#[test]
fn a_replaced_child_sa_the_peer_never_deletes_is_deleted_after_the_grace_time() {
    let mut w = World::new();
    w.handshake();
    let (a_in, _) = assert_one_matching_child(&w);
    let ike = w.a.established()[0];
    // As if the peer had rekeyed it and then never sent its DELETE.
    {
        let child = w.a.engine.children.get_mut(&a_in).unwrap();
        child.state = crate::engine::ChildState::Rekeyed;
        child.timers.set(
            crate::engine::state::ChildTimer::DeleteReplaced,
            w.now + Duration::from_secs(30),
        );
    }
    w.a.engine.schedule(ike);
    w.advance_by(Duration::from_secs(29));
    assert_eq!(w.a.engine.child_sa_count(), 1);
    w.advance_by(Duration::from_secs(2));
    assert_eq!(w.a.engine.child_sa_count(), 0);
    assert_eq!(w.b.engine.child_sa_count(), 0);
    assert_one_matching_ike(&w);
}

/// A with two flows that B's one flow covers: B's cap of one Child SA per
/// IKE SA is not raised by its own flow count.
fn two_flows_against_one() -> (Policy, Policy) {
    let mut pa = a_policy();
    pa.flows = vec![
        selector("10.1.1.0", 24, "10.2.0.0", 16),
        selector("10.1.2.0", 24, "10.2.0.0", 16),
    ];
    (pa, b_policy())
}

/// The notifies in B's CREATE_CHILD_SA responses, as A reads them.
fn create_child_notifies_from_b(w: &World, a_spi: u64) -> Vec<NotifyType> {
    w.b.sent
        .iter()
        .filter(|(_, _, d)| {
            Header::decode(d).is_ok_and(|h| {
                h.header.exchange == ExchangeType::CreateChildSa && h.header.flags.response
            })
        })
        .filter_map(|(_, _, d)| open_with(&w.a, a_spi, d))
        .flatten()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n.notify_type),
            _ => None,
        })
        .collect()
}

#[test]
fn a_peer_past_its_child_sa_cap_gets_no_additional_sas_and_keeps_its_ike_sa() {
    for per_policy in [false, true] {
        let mut sb = settings();
        if per_policy {
            sb.max_child_sas_per_policy = 1;
        } else {
            sb.max_child_sas_per_ike = 1;
        }
        let mut w = World::with(settings(), sb);
        let (pa, pb) = two_flows_against_one();
        w.configure(vec![pa], vec![pb]);
        w.settle();
        let a_spi = assert_one_matching_ike(&w);
        let (old, _) = assert_one_matching_child(&w);
        // A asked for its second flow's Child SA once and was refused.
        assert_eq!(exchanges_sent(&w.a, ExchangeType::CreateChildSa, false), 1);
        assert_eq!(
            create_child_notifies_from_b(&w, a_spi),
            vec![NotifyType::NoAdditionalSas],
            "per policy: {per_policy}"
        );
        // The IKE SA stays up and in use: a rekey at the cap replaces the
        // Child SA, and a DPD check is answered.
        w.a.engine.run_task(a_spi, Task::RekeyChild { spi_in: old });
        w.settle();
        let (new, _) = assert_one_matching_child(&w);
        assert_ne!(new, old);
        assert_eq!(w.b.engine.children_by_policy.get("ba"), Some(&1));
        let answered = exchanges_sent(&w.b, ExchangeType::Informational, true);
        w.a.engine.run_task(a_spi, Task::Dpd);
        w.settle();
        assert_eq!(
            exchanges_sent(&w.b, ExchangeType::Informational, true),
            answered + 1
        );
        assert_eq!(assert_one_matching_ike(&w), a_spi);
    }
}

#[test]
fn rekeys_may_pass_the_cap_only_up_to_twice_it() {
    // B caps one Child SA per IKE SA. A rekeys but its DELETEs of the old
    // SAs never reach B: B keeps each replaced SA for its grace time. The
    // rekeys B takes stop at twice the cap.
    let mut sb = settings();
    sb.max_child_sas_per_ike = 1;
    let mut w = World::with(settings(), sb);
    w.handshake();
    let a_spi = assert_one_matching_ike(&w);
    w.filter = Box::new(|p| {
        Header::decode(&p.data).is_ok_and(|h| {
            h.header.exchange != ExchangeType::Informational || h.header.flags.response
        })
    });
    for _ in 0..4 {
        let Some(current) = w.a.engine.child_spis().into_iter().find(|c| {
            w.a.engine.child(*c).unwrap().state == crate::engine::ChildState::Established
        }) else {
            break;
        };
        // A's DELETE is lost and its window blocked: reuse its ID.
        let sa = w.a.engine.ikes.get_mut(&a_spi).unwrap();
        if let Some(lost) = sa.outstanding.take() {
            sa.next_message_id = lost.message_id;
        }
        sa.queue.clear();
        sa.queue.push_back(Task::RekeyChild { spi_in: current });
        w.a.engine.pump(a_spi);
        w.settle();
        assert!(
            w.b.engine.child_sa_count() <= 2,
            "{}",
            w.b.engine.child_sa_count()
        );
    }
    assert_eq!(w.b.engine.child_sa_count(), 2);
    assert!(create_child_notifies_from_b(&w, a_spi).contains(&NotifyType::NoAdditionalSas));
    assert_eq!(w.b.established().len(), 1);
}

#[test]
fn our_own_child_sas_past_the_cap_are_not_requested() {
    let mut sa = settings();
    sa.max_child_sas_per_policy = 1;
    let mut w = World::with(sa, settings());
    let (pa, pb) = two_flows_against_one();
    w.configure(vec![pa], vec![pb]);
    w.settle();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    assert_eq!(exchanges_sent(&w.a, ExchangeType::CreateChildSa, false), 0);
}
