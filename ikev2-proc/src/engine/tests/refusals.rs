//! Issue 17: host-to-host policies, traps of passive policies, the inbound
//! SPIs of Child SAs that did not come about, and refusals said as such.

use super::*;

/// A policy parsed from iked.conf text, as the daemon gets it.
fn parsed(text: &str) -> Policy {
    let config = iked_common::config::parse_str("test", text, &[]).expect("policy parses");
    config.policies.into_iter().next().expect("one policy")
}

/// A policy without `from ... to` between A and B, written as an operator
/// would, in `mode` ("tunnel" or "transport").
fn host_policy(name: &str, local: &str, peer: &str, mode: &str) -> Policy {
    parsed(&format!(
        "ikev2 \"{name}\" passive esp {mode} local {local} peer {peer} psk \"unused here\"\n"
    ))
}

fn is_response_from(p: &Packet, from: IpAddr, exchange: ExchangeType) -> bool {
    p.from.ip() == from
        && Header::decode(&p.data)
            .is_ok_and(|h| h.header.exchange == exchange && h.header.flags.response)
}

/// The inbound ESP SA from `peer` to `local` with `spi`, as released.
fn larval(peer: &str, local: &str, spi: u32) -> SaId {
    SaId {
        src: ip(peer),
        dst: ip(local),
        protocol: IpsecProtocol::Esp,
        spi,
    }
}

/// iked.conf(5): a policy with no `from ... to` protects the traffic
/// between the two gateways. Both engines see that flow, so the responder
/// narrows to it instead of answering TS_UNACCEPTABLE, whichever side
/// starts, in tunnel and transport mode.
#[test]
fn host_to_host_policies_get_their_child_sa_from_either_side() {
    for mode in ["tunnel", "transport"] {
        for a_starts in [true, false] {
            let mut w = World::new();
            let pa = host_policy("ab", A, B, mode);
            let pb = host_policy("ba", B, A, mode);
            assert_eq!(pa.flows, vec![Selector::hosts(ip(A), ip(B))]);
            w.a.engine
                .set_config(w.now, vec![pa], InitiationMode::Passive, 0);
            w.b.engine
                .set_config(w.now, vec![pb], InitiationMode::Passive, 0);
            w.settle();
            let (starter, name) = if a_starts {
                (&mut w.a, "ab")
            } else {
                (&mut w.b, "ba")
            };
            starter.engine.handle_control(
                w.now,
                1,
                ControlCommand::Initiate {
                    policy: name.into(),
                },
            );
            w.settle();
            let context = format!("{mode}, A starts: {a_starts}");
            assert_one_matching_ike(&w);
            let (a_in, b_in) = assert_one_matching_child(&w);
            assert_eq!(
                w.a.engine.child(a_in).unwrap().flow,
                Selector::hosts(ip(A), ip(B)),
                "{context}"
            );
            assert_eq!(
                w.b.engine.child(b_in).unwrap().flow,
                Selector::hosts(ip(B), ip(A)),
                "{context}"
            );
            assert_eq!(w.a.sas.len(), 2, "{context}");
            assert_eq!(w.b.sas.len(), 2, "{context}");
            // The trap is the SA's outbound policy; in (and fwd) come with it.
            let expected = if mode == "tunnel" { 3 } else { 2 };
            assert_eq!(
                w.a.policies.len(),
                expected,
                "{context}: {:?}",
                w.a.policies
            );
            assert_eq!(
                w.b.policies.len(),
                expected,
                "{context}: {:?}",
                w.b.policies
            );
        }
    }
}

/// A passive policy keeps its flows from leaving in clear: its trap is in
/// the kernel from the start, the Child SA the peer starts takes its reqid
/// (so the trap is the SA's outbound policy), and it stays when the Child
/// SA goes. `notrap` opts out: nothing is installed without a Child SA.
#[test]
fn passive_policies_trap_their_flows_unless_notrap() {
    let mut w = World::new();
    w.configure(vec![a_policy()], vec![b_policy()]);
    w.settle();
    let trap =
        w.b.policies
            .iter()
            .find(|p| p.direction == iked_common::kernel::PolicyDirection::Out)
            .copied()
            .expect("B's passive policy has its trap");
    assert_eq!(trap.selector, b_policy().flows[0]);
    assert_eq!((trap.template.src, trap.template.dst), (ip(B), ip(A)));
    let (_, b_in) = assert_one_matching_child(&w);
    assert_eq!(w.b.engine.child(b_in).unwrap().reqid, trap.template.reqid);
    assert!(w.b.sas.values().all(|sa| sa.reqid == trap.template.reqid));
    assert_eq!(w.b.policies.len(), 3, "{:?}", w.b.policies);
    // ACQUIRE on a passive policy's trap only records: B starts nothing.
    let acquire = KernelEvent::Acquire {
        selector: Selector::hosts(ip("10.2.0.9"), ip("10.1.0.9")),
        src: ip(B),
        dst: ip(A),
        reqid: trap.template.reqid,
        seq: 1,
    };
    w.b.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Event(acquire))
        .unwrap();
    w.settle();
    assert_eq!(w.b.engine.ike_sa_count(), 1);
    let ike = w.a.established()[0];
    w.a.engine.run_task(ike, Task::DeleteIke);
    w.settle();
    assert_eq!(w.b.engine.ike_sa_count(), 0);
    assert_only_trap(&w.b);

    let mut opted_out = b_policy();
    opted_out.trap = false;
    w.b.engine
        .set_config(w.now, vec![opted_out], InitiationMode::Passive, 0);
    w.settle();
    assert!(w.b.policies.is_empty(), "notrap: {:?}", w.b.policies);
}

/// An IKE_AUTH that ends without a Child SA (the responder narrows to
/// nothing) gives back the inbound SPI the initiator took for it.
#[test]
fn ike_auth_without_a_child_sa_releases_the_initiators_spi() {
    let mut w = World::new();
    let mut pb = b_policy();
    pb.flows = vec![selector("10.2.0.0", 16, "10.9.0.0", 16)];
    let log = capture_info_log(|| {
        w.configure(vec![a_policy()], vec![pb]);
        w.settle();
    });
    assert_one_matching_ike(&w);
    assert!(w.a.engine.child_spis().is_empty());
    // A's first SPI (its fake pfkey counts up from 0x1000_0000).
    assert_eq!(w.a.deleted_sas, vec![larval(B, A, 0x1000_0001)]);
    assert!(w.a.sas.is_empty() && w.b.sas.is_empty());
    assert!(
        log.iter()
            .any(|l| l.contains("traffic selectors") && l.contains("outside the policy's flows")),
        "B says why it refused the Child SA: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("peer refused it: TS_UNACCEPTABLE")),
        "A says the peer refused: {log:#?}"
    );
}

/// A CREATE_CHILD_SA the responder refuses: the responder logs the refusal
/// with its reason, the initiator releases the SPI it took for it.
#[test]
fn a_refused_create_child_sa_is_logged_and_its_spi_released() {
    let mut w = World::new();
    let mut pa = a_policy();
    pa.flows.push(selector("10.1.0.0", 16, "10.3.0.0", 16));
    let log = capture_info_log(|| {
        w.configure(vec![pa], vec![b_policy()]);
        w.settle();
    });
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    // IKE_AUTH took 0x1000_0001; the second flow's request 0x1000_0002.
    assert_eq!(w.a.deleted_sas, vec![larval(B, A, 0x1000_0002)]);
    assert_eq!(w.b.deleted_sas, vec![], "B refused before taking an SPI");
    assert!(
        log.iter().any(|l| l.contains("CREATE_CHILD_SA request 2")
            && l.contains("refused with TS_UNACCEPTABLE")
            && l.contains("10.3.0.0-10.3.255.255")),
        "B logs the refusal and why: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("peer refused our CREATE_CHILD_SA: TS_UNACCEPTABLE")),
        "{log:#?}"
    );
}

/// strongSwan 6.0.1 answers a failed first Child SA with an IKE_AUTH
/// response that carries only N(NO_PROPOSAL_CHOSEN): no IDr, no AUTH. The
/// IKE SA cannot stand without the responder's AUTH, but the log says the
/// peer refused, and why, and the SPI taken for the Child SA is released.
#[test]
fn an_ike_auth_response_with_only_an_error_is_the_peers_refusal() {
    let mut w = World::new();
    // B's real answer never arrives; B then answers "by hand".
    w.filter = Box::new(|p| !is_response_from(p, ip(B), ExchangeType::IkeAuth));
    let log = capture_info_log(|| {
        w.handshake();
        let b_spi = w.b.engine.ike_spis()[0];
        w.filter = Box::new(|_| true);
        w.b.engine.send_response(
            b_spi,
            ExchangeType::IkeAuth,
            1,
            vec![Payload::Notify(Notify::new(
                NotifyType::NoProposalChosen,
                Vec::new(),
            ))],
        );
        w.settle();
    });
    assert_eq!(w.a.engine.ike_sa_count(), 0, "no IKE SA without AUTH");
    assert_eq!(w.a.deleted_sas, vec![larval(B, A, 0x1000_0001)]);
    assert!(
        log.iter()
            // On the NAT-T port: the initiator offers MOBIKE (RFC 4555 §3.3).
            .any(|l| l.contains("peer 192.0.2.2:4500 refused IKE_AUTH: NO_PROPOSAL_CHOSEN")),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("malformed")),
        "a refusal is not a malformed message: {log:#?}"
    );
}

/// An IKE_AUTH that is never answered: when A gives the peer up, the SPI
/// it took for the Child SA goes back with the IKE SA.
#[test]
fn an_unanswered_ike_auth_releases_the_spi_when_the_peer_is_given_up() {
    let mut w = World::new();
    w.filter = Box::new(|p| !is_response_from(p, ip(B), ExchangeType::IkeAuth));
    w.handshake();
    assert!(w.a.deleted_sas.is_empty(), "nothing released while waiting");
    // Past every retransmission; A then also restarts its active policy.
    w.advance_by(Duration::from_secs(300));
    assert!(
        w.a.deleted_sas.contains(&larval(B, A, 0x1000_0001)),
        "the first IKE_AUTH's SPI is released: {:x?}",
        w.a.deleted_sas
    );
}
