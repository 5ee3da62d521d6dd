//! IKE_SA_INIT and IKE_AUTH: keys, proposals, identities, traffic selectors.

use super::*;

#[test]
fn handshake_derives_identical_keys_and_installs_both_sides() {
    let mut w = World::new();
    w.handshake();
    assert_one_matching_ike(&w);
    let (a_in, b_in) = assert_one_matching_child(&w);
    // Each kernel holds its inbound and outbound SA, and the keys agree
    // across the wire: A's outbound SA is B's inbound SA.
    assert_eq!(w.a.sas.len(), 2);
    assert_eq!(w.b.sas.len(), 2);
    let a_out = &w.a.sas[&b_in];
    let b_in_sa = &w.b.sas[&b_in];
    assert_eq!(
        a_out.encryption_key.expose(),
        b_in_sa.encryption_key.expose()
    );
    assert_eq!(a_out.integrity_key.expose(), b_in_sa.integrity_key.expose());
    assert_eq!(
        w.a.sas[&a_in].encryption_key.expose(),
        w.b.sas[&a_in].encryption_key.expose()
    );
    assert_ne!(
        a_out.encryption_key.expose(),
        w.a.sas[&a_in].encryption_key.expose()
    );
    assert_eq!(a_out.id.src, ip(A));
    assert_eq!(a_out.id.dst, ip(B));
    assert!(a_out.encap.is_none());
    // Tunnel mode: out, in and fwd policies on both sides, mirrored.
    assert_eq!(w.a.policies.len(), 3);
    assert_eq!(w.b.policies.len(), 3);
    assert_eq!(
        w.a.policies[0].selector,
        selector("10.1.0.0", 16, "10.2.0.0", 16)
    );
    assert_eq!(
        w.b.policies[0].selector,
        selector("10.2.0.0", 16, "10.1.0.0", 16)
    );
    // Exactly one IKE_SA_INIT and one IKE_AUTH each way.
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeSaInit, false), 1);
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeAuth, false), 1);
    assert_eq!(exchanges_sent(&w.b, ExchangeType::IkeAuth, true), 1);
    // show sa reflects it.
    w.a.engine.handle_control(w.now, 7, ControlCommand::ShowSa);
    w.settle();
    let (id, reply) = w.a.control_replies.pop().unwrap();
    assert_eq!(id, 7);
    let ControlReply::SaList { sas: list, .. } = reply else {
        panic!("unexpected reply");
    };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, "established");
    assert_eq!(list[0].children.len(), 1);
    assert!(list[0].children[0].installed);
    assert_eq!(list[0].peer_id, B);
}

#[test]
fn wrong_psk_fails_authentication_and_installs_nothing() {
    let mut w = World::new();
    w.b.psk = b"another key".to_vec();
    w.handshake();
    assert!(w.a.engine.ike_spis().is_empty());
    assert!(w.b.engine.ike_spis().is_empty());
    assert!(w.a.sas.is_empty() && w.b.sas.is_empty());
    assert_only_trap(&w.a);
    assert_only_trap(&w.b);
    // B answered IKE_AUTH with AUTHENTICATION_FAILED, decrypted by A.
    assert_eq!(exchanges_sent(&w.b, ExchangeType::IkeAuth, true), 1);
}

#[test]
fn kernel_without_esp_keeps_the_negotiated_sas() {
    let mut w = World::new();
    w.a.no_esp = true;
    w.b.no_esp = true;
    w.handshake();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    assert_only_trap(&w.a);
    assert_only_trap(&w.b);
    w.a.engine.handle_control(w.now, 1, ControlCommand::ShowSa);
    w.settle();
    let Some((_, ControlReply::SaList { sas: list, .. })) = w.a.control_replies.pop() else {
        panic!("no list");
    };
    assert!(!list[0].children[0].installed);
    assert_eq!(list[0].children[0].state, "install failed");
}

#[test]
fn invalid_ke_payload_makes_the_initiator_retry_with_the_wanted_group() {
    let mut w = World::new();
    let pa = a_policy(); // offers ecp256 (KE sent) and curve25519
    let mut pb = b_policy();
    pb.ike_proposals = vec![ike_proposal(&[31])];
    w.configure(vec![pa], vec![pb]);
    w.settle();
    let ike = assert_one_matching_ike(&w);
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeSaInit, false), 2);
    let sa = w.a.engine.ike(ike).unwrap();
    assert_eq!(
        sa.suite.unwrap().ke,
        iked_common::crypto::KeMethod::Curve25519
    );
    assert_one_matching_child(&w);
}

#[test]
fn cookie_challenge_is_answered() {
    let mut sb = settings();
    sb.cookie_threshold = 0;
    let mut w = World::with(settings(), sb);
    w.handshake();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeSaInit, false), 2);
    // B kept no state for the cookie-less request.
    assert_eq!(w.b.engine.ike_sa_count(), 1);
}

#[test]
fn transport_mode_is_negotiated_with_use_transport_mode() {
    let mut w = World::new();
    let mut pa = policy("ab", A, Some(B), vec![selector(A, 32, B, 32)], true);
    pa.encapsulation = Encapsulation::Transport;
    let mut pb = policy("ba", B, Some(A), vec![selector(B, 32, A, 32)], false);
    pb.encapsulation = Encapsulation::Transport;
    w.configure(vec![pa], vec![pb]);
    w.settle();
    assert_one_matching_child(&w);
    assert!(w
        .a
        .sas
        .values()
        .all(|s| s.mode == iked_common::kernel::IpsecMode::Transport));
    assert_eq!(w.a.policies.len(), 2, "no fwd policy in transport mode");
}

#[test]
fn responder_narrows_to_its_policy() {
    let mut w = World::new();
    // A asks for 10.0.0.0/8 <-> 10.2.0.0/16; B only allows 10.1.0.0/16 on A's side.
    let pa = policy(
        "ab",
        A,
        Some(B),
        vec![selector("10.0.0.0", 8, "10.2.0.0", 16)],
        true,
    );
    w.configure(vec![pa], vec![b_policy()]);
    w.settle();
    assert_one_matching_child(&w);
    let child = w.a.engine.child(w.a.engine.child_spis()[0]).unwrap();
    assert_eq!(child.flow, selector("10.1.0.0", 16, "10.2.0.0", 16));
}

#[test]
fn responder_picks_the_policy_by_identity() {
    let mut w = World::new();
    let mut pa = a_policy();
    pa.srcid = Some(iked_common::config::IdentitySpec::Fqdn("a.example".into()));
    let mut other = b_policy();
    other.name = "other".into();
    other.dstid = Some(iked_common::config::IdentitySpec::Fqdn("x.example".into()));
    other.flows = vec![selector("10.7.0.0", 16, "10.8.0.0", 16)];
    let mut pb = b_policy();
    pb.dstid = Some(iked_common::config::IdentitySpec::Fqdn("a.example".into()));
    w.configure(vec![pa], vec![other, pb]);
    w.settle();
    assert_one_matching_ike(&w);
    let ib = w.b.established()[0];
    assert_eq!(w.b.engine.ike(ib).unwrap().policy, "ba");
    assert_one_matching_child(&w);
}

#[test]
fn initial_contact_drops_stale_sas_of_the_same_peer() {
    let mut w = World::new();
    w.handshake();
    assert_one_matching_ike(&w);
    // A restarts (loses its state) and connects again, a moment later.
    w.now += Duration::from_secs(5);
    w.a.engine = Engine::new(settings(), seeded(99), w.now).unwrap();
    w.a.sas.clear();
    w.a.policies.clear();
    w.a.engine
        .set_config(w.now, vec![a_policy()], InitiationMode::Active, 0);
    w.settle();
    assert_one_matching_ike(&w);
    assert_eq!(w.b.engine.ike_sa_count(), 1, "the stale IKE SA is gone");
    assert_eq!(w.b.engine.child_sa_count(), 1);
}

#[test]
fn one_responder_serves_many_peers() {
    const PEERS: usize = 200;
    let now = Instant::now();
    let mut responder = Node::new(B, 0x5151, 0x5000_0000, settings(), now);
    let road = policy(
        "road",
        B,
        None,
        vec![selector("10.2.0.0", 16, "10.128.0.0", 9)],
        false,
    );
    responder
        .engine
        .set_config(now, vec![road], InitiationMode::Passive, 0);
    let mut peers: Vec<Node> = (0..PEERS)
        .map(|i| {
            let addr = format!("198.18.{}.{}", i / 250, i % 250 + 1);
            let mut node = Node::new(
                &addr,
                0x6000 + i as u64,
                0x6000_0000 + (i as u32) * 0x100,
                settings(),
                now,
            );
            let inner = format!("10.{}.{}.0", 128 + i / 250, i % 250);
            let p = policy(
                "gw",
                &addr,
                Some(B),
                vec![selector(&inner, 24, "10.2.0.0", 16)],
                true,
            );
            node.engine
                .set_config(now, vec![p], InitiationMode::Active, 0);
            node
        })
        .collect();
    let index: HashMap<IpAddr, usize> =
        peers.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
    for _ in 0..100 {
        let mut moved = false;
        let mut to_responder = Vec::new();
        for peer in peers.iter_mut() {
            let (packets, busy) = peer.step(now);
            moved |= busy;
            to_responder.extend(packets);
        }
        for p in to_responder {
            responder.engine.handle_datagram(now, p.to, p.from, &p.data);
        }
        let (back, busy) = responder.step(now);
        moved |= busy;
        for p in back {
            let i = index[&p.to.ip()];
            peers[i].engine.handle_datagram(now, p.to, p.from, &p.data);
        }
        if !moved {
            break;
        }
    }
    assert_eq!(responder.established().len(), PEERS);
    assert_eq!(responder.engine.child_sa_count(), PEERS);
    assert_eq!(responder.sas.len(), 2 * PEERS);
    for peer in &peers {
        assert_eq!(peer.established().len(), 1);
        assert_eq!(peer.engine.child_sa_count(), 1);
    }
    // Each child is narrowed to that peer's own /24.
    let mut remotes: Vec<Selector> = responder
        .engine
        .child_spis()
        .into_iter()
        .map(|s| responder.engine.child(s).unwrap().flow)
        .collect();
    responder
        .engine
        .handle_control(now, 5, ControlCommand::ShowSa);
    responder.step(now);
    let Some((5, ControlReply::SaList { sas: list, .. })) = responder.control_replies.pop() else {
        panic!("no SA list");
    };
    assert_eq!(list.len(), PEERS);
    assert!(list
        .iter()
        .all(|sa| sa.state == "established" && sa.children.len() == 1));
    remotes.sort_by_key(|f| f.dst);
    remotes.dedup();
    assert_eq!(remotes.len(), PEERS);
    assert!(remotes.iter().all(|f| f.dst_prefix == 24));
}

#[test]
fn ipv6_gateways_and_selectors_work() {
    let mut w = World::new();
    let (a6, b6) = ("2001:db8::1", "2001:db8::2");
    w.a.addr = ip(a6);
    w.b.addr = ip(b6);
    let pa = policy(
        "ab",
        a6,
        Some(b6),
        vec![selector("fd01:a::", 64, "fd01:b::", 64)],
        true,
    );
    let pb = policy(
        "ba",
        b6,
        Some(a6),
        vec![selector("fd01:b::", 64, "fd01:a::", 64)],
        false,
    );
    w.configure(vec![pa], vec![pb]);
    w.settle();
    assert_one_matching_ike(&w);
    let (a_in, _) = assert_one_matching_child(&w);
    let child = w.a.engine.child(a_in).unwrap();
    assert_eq!(child.flow, selector("fd01:a::", 64, "fd01:b::", 64));
    assert!(w
        .a
        .sas
        .values()
        .all(|s| s.id.src.is_ipv6() && s.encap.is_none()));
}

#[test]
fn identity_cannot_pull_an_sa_into_a_policy_with_stronger_proposals() {
    let mut w = World::new();
    let mut pa = a_policy();
    pa.srcid = Some(iked_common::config::IdentitySpec::Fqdn("a.example".into()));
    pa.ike_proposals = vec![ike_proposal(&[19])];
    // "weak" accepts ecp256 for anyone; "strong" is for a.example with
    // curve25519 only. The SA negotiated under "weak" must stay there.
    let mut weak = b_policy();
    weak.name = "weak".into();
    weak.ike_proposals = vec![ike_proposal(&[19])];
    let mut strong = b_policy();
    strong.name = "strong".into();
    strong.dstid = Some(iked_common::config::IdentitySpec::Fqdn("a.example".into()));
    strong.ike_proposals = vec![ike_proposal(&[31])];
    w.configure(vec![pa], vec![weak, strong]);
    w.settle();
    assert_one_matching_ike(&w);
    let ib = w.b.established()[0];
    assert_eq!(w.b.engine.ike(ib).unwrap().policy, "weak");
}

#[test]
fn both_sides_active_end_with_one_ike_sa_and_one_child_sa() {
    // Both gateways initiate at the same moment: each first holds two IKE
    // SAs (one per role); both pick the same one to keep.
    let mut w = World::new();
    let mut pb = b_policy();
    pb.initiation = PolicyInitiation::Active;
    w.b.engine
        .set_config(w.now, vec![pb], InitiationMode::Active, 30);
    w.a.engine
        .set_config(w.now, vec![a_policy()], InitiationMode::Active, 30);
    w.settle();
    w.advance_by(Duration::from_secs(300));
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    assert_eq!(w.a.engine.ike_sa_count(), 1);
    assert_eq!(w.b.engine.ike_sa_count(), 1);
    // The loser's Child SA went without taking the flow's policies along.
    assert_eq!(w.a.sas.len(), 2);
    assert_eq!(w.a.policies.len(), 3, "{:?}", w.a.policies);
    assert_eq!(w.b.policies.len(), 3, "{:?}", w.b.policies);
}
