//! MOBIKE (RFC 4555) and NAT mapping changes (RFC 7296 section 2.23):
//! Child SAs moved with the right Migration values, keys and selectors
//! unchanged, return routability, refusals.

use super::*;
use crate::engine::state::MobikeTask;
use iked_common::config::Prefix;
use iked_common::kernel::{Migration, PolicyDirection, UdpEncap};
use iked_common::wire::{Notify, NotifyType, Payload};

/// A's second address, on the same network as its first.
const A2: &str = "192.0.2.9";

fn sock(addr: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(addr), port)
}

/// A (no configured local address: it may move) initiates to B, whose
/// policy admits any peer in 192.0.2.0/24.
fn roaming_world(sa: Settings, sb: Settings) -> World {
    let mut w = World::with(sa, sb);
    let mut pa = a_policy();
    pa.local = None;
    let mut pb = b_policy();
    pb.peer = Some(Prefix {
        addr: ip("192.0.2.0"),
        len: 24,
    });
    w.configure(vec![pa], vec![pb]);
    w.settle();
    w
}

fn esp(src: &str, dst: &str, spi: u32) -> SaId {
    SaId {
        src: ip(src),
        dst: ip(dst),
        protocol: IpsecProtocol::Esp,
        spi,
    }
}

/// The notifies of type `t` in the payloads of a message.
fn notifies(payloads: &[Payload], t: NotifyType) -> Vec<Vec<u8>> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) if n.notify_type == t => Some(n.data.clone()),
            _ => None,
        })
        .collect()
}

/// The INFORMATIONAL messages `from` sent after `since`, opened by `to`.
fn informationals(
    from: &Node,
    to: &Node,
    spi: u64,
    since: usize,
    response: bool,
) -> Vec<(SocketAddr, SocketAddr, Vec<Payload>)> {
    from.sent[since..]
        .iter()
        .filter(|(_, _, d)| {
            Header::decode(d).is_ok_and(|h| {
                h.header.exchange == ExchangeType::Informational
                    && h.header.flags.response == response
            })
        })
        .map(|(l, r, d)| (*l, *r, open_with(to, spi, d).expect("opens")))
        .collect()
}

#[test]
fn mobike_is_negotiated_by_default_and_floats_ike_to_4500() {
    let mut w = roaming_world(settings(), settings());
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    assert!(w.a.engine.ike(ike).unwrap().mobike.negotiated());
    assert!(w.b.engine.ike(b_ike).unwrap().mobike.negotiated());
    // RFC 4555 section 3.3: IKE on 4500 without a NAT, ESP plain.
    let sa = w.a.engine.ike(ike).unwrap();
    assert_eq!((sa.local, sa.peer), (sock(A, 4500), sock(B, 4500)));
    assert!(!sa.natt);
    assert!(w.a.sas.values().all(|s| s.encap.is_none()));
    w.a.engine.handle_control(w.now, 7, ControlCommand::ShowSa);
    w.settle();
    let Some((_, ControlReply::SaList { sas, .. })) = w.a.control_replies.last() else {
        panic!("no SA list: {:?}", w.a.control_replies);
    };
    assert!(sas[0].mobike, "show sa says MOBIKE: {sas:?}");
}

#[test]
fn an_address_change_moves_both_sides_with_a_return_routability_check() {
    let mut w = roaming_world(settings(), settings());
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    let (a_in, a_out) = assert_one_matching_child(&w);
    let before_a: HashMap<u32, SaParams> = w.a.sas.clone();
    let before_b: HashMap<u32, SaParams> = w.b.sas.clone();
    let (a_sent, b_sent) = (w.a.sent.len(), w.b.sent.len());

    // A's address 192.0.2.1 goes, 192.0.2.9 comes.
    w.a.addr = ip(A2);
    let log = capture_info_log(|| {
        assert_eq!(w.a.engine.local_address_changed(w.now, ip(A), ip(A2)), 1);
        w.settle();
    });

    // A's UPDATE_SA_ADDRESSES, from the new address, with NAT detection
    // of that path and a COOKIE2.
    let updates = informationals(&w.a, &w.b, b_ike, a_sent, false);
    let (from, to, update) = &updates[0];
    assert_eq!((*from, *to), (sock(A2, 4500), sock(B, 4500)));
    assert_eq!(notifies(update, NotifyType::UpdateSaAddresses).len(), 1);
    let (spi_i, spi_r) = {
        let sa = w.a.engine.ike(ike).unwrap();
        (sa.spi_i, sa.spi_r)
    };
    assert_eq!(
        notifies(update, NotifyType::NatDetectionSourceIp),
        vec![crate::engine::nat::nat_hash(spi_i, spi_r, sock(A2, 4500))]
    );
    let cookie = notifies(update, NotifyType::Cookie2);
    assert_eq!(cookie.len(), 1);
    assert_eq!(cookie[0].len(), 16);
    // B answered there, with the cookie, and checked A's new address with
    // a COOKIE2 of its own before moving its Child SA.
    let b_answers = informationals(&w.b, &w.a, ike, b_sent, true);
    assert_eq!(b_answers[0].1, sock(A2, 4500));
    assert_eq!(notifies(&b_answers[0].2, NotifyType::Cookie2), cookie);
    let checks = informationals(&w.b, &w.a, ike, b_sent, false);
    assert_eq!(checks.len(), 1, "one return-routability check");
    assert_eq!(checks[0].1, sock(A2, 4500));
    let b_cookie = notifies(&checks[0].2, NotifyType::Cookie2);
    assert_eq!(b_cookie.len(), 1);
    assert_ne!(b_cookie, cookie);
    let a_answers = informationals(&w.a, &w.b, b_ike, a_sent, true);
    assert_eq!(notifies(&a_answers[0].2, NotifyType::Cookie2), b_cookie);
    assert!(
        log.iter()
            .any(|l| l.contains("checking that it answers there")),
        "{log:#?}"
    );

    // A migrated its Child SA: the SAs as they were, to the new address.
    let child_selector = w.a.engine.child(a_in).unwrap().flow;
    assert_eq!(
        w.a.migrations,
        vec![Migration {
            inbound: esp(B, A, a_in),
            outbound: esp(A, B, a_out),
            reqid: w.a.engine.child(a_in).unwrap().reqid,
            mode: iked_common::kernel::IpsecMode::Tunnel,
            policies: vec![
                (child_selector, PolicyDirection::Out),
                (child_selector.reversed(), PolicyDirection::In),
                (child_selector.reversed(), PolicyDirection::Fwd),
            ],
            new_local: ip(A2),
            new_peer: ip(B),
            encap: None,
        }]
    );
    // B did the same from its side.
    assert_eq!(w.b.migrations.len(), 1);
    let mb = &w.b.migrations[0];
    assert_eq!(
        (mb.inbound, mb.outbound),
        (esp(A, B, a_out), esp(B, A, a_in))
    );
    assert_eq!((mb.new_local, mb.new_peer, mb.encap), (ip(B), ip(A2), None));
    assert_eq!(mb.policies.len(), 3);

    // Keys, SPIs and selectors unchanged; only the outer addresses moved.
    for (node, before, us, them) in [(&w.a, &before_a, A2, B), (&w.b, &before_b, B, A2)] {
        assert_eq!(node.sas.len(), 2);
        for (spi, now) in &node.sas {
            let old = &before[spi];
            assert_eq!(now.encryption_key.expose(), old.encryption_key.expose());
            assert_eq!(now.integrity_key.expose(), old.integrity_key.expose());
            assert_eq!(now.selector, old.selector);
            assert_eq!((now.reqid, now.mode), (old.reqid, old.mode));
            let inbound = now.id.dst == ip(us);
            let expected = if inbound { (them, us) } else { (us, them) };
            assert_eq!((now.id.src, now.id.dst), (ip(expected.0), ip(expected.1)));
        }
        assert!(node
            .policies
            .iter()
            .all(|p| [ip(us), ip(them)].contains(&p.template.src)
                && [ip(us), ip(them)].contains(&p.template.dst)));
    }
    let sa = w.a.engine.ike(ike).unwrap();
    assert_eq!((sa.local, sa.peer), (sock(A2, 4500), sock(B, 4500)));
    let sb = w.b.engine.ike(b_ike).unwrap();
    assert_eq!((sb.local, sb.peer), (sock(B, 4500), sock(A2, 4500)));
    assert!(sb.mobike.pending.is_none() && sa.mobike.pending.is_none());

    // The IKE SA goes on at the new addresses: a Child SA rekey there.
    let rekeys_before = w.a.sa_requests;
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Event(esp_expire(B, A2, a_in, false)))
        .unwrap();
    w.settle();
    assert!(w.a.sa_requests > rekeys_before, "the Child SA was rekeyed");
    assert!(w
        .b
        .sas
        .values()
        .all(|s| [ip(B), ip(A2)].contains(&s.id.src)));
    assert_eq!(w.b.established(), vec![b_ike]);
}

#[test]
fn an_unchecked_address_gets_no_esp_until_it_answers() {
    // B's return-routability check is lost: B keeps its Child SA on A's
    // old address (IKE messages already go to the new one), and gives
    // the peer up when the check is never answered.
    let mut w = roaming_world(settings(), settings());
    let b_ike = w.b.established()[0];
    w.a.addr = ip(A2);
    w.filter = Box::new(|p| !is_request_from(p, ip(B), ExchangeType::Informational));
    w.a.engine.local_address_changed(w.now, ip(A), ip(A2));
    w.settle();
    assert!(w.b.migrations.is_empty(), "{:?}", w.b.migrations);
    let sb = w.b.engine.ike(b_ike).unwrap();
    assert_eq!(sb.peer, sock(A, 4500), "the Child SAs' path is unchanged");
    assert_eq!(sb.ike_path().1, sock(A2, 4500));
    assert!(w
        .b
        .sas
        .values()
        .all(|s| s.id.src == ip(A) || s.id.dst == ip(A)));
    w.advance_by(Duration::from_secs(120));
    assert!(
        w.b.engine.ike(b_ike).is_none(),
        "unanswered check: peer gone"
    );
    assert!(w.b.migrations.is_empty());
}

#[test]
fn nomobike_announces_nothing_and_ignores_update_sa_addresses() {
    let mut sb = settings();
    sb.mobike = false;
    let mut w = roaming_world(settings(), sb);
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    assert!(!w.a.engine.ike(ike).unwrap().mobike.negotiated());
    assert!(!w.a.engine.ike(ike).unwrap().mobike.peer_supports);
    assert!(!w.b.engine.ike(b_ike).unwrap().mobike.announced);
    // Without MOBIKE A does not move.
    assert_eq!(w.a.engine.local_address_changed(w.now, ip(A), ip(A2)), 0);
    // A peer that sends UPDATE_SA_ADDRESSES all the same gets an answer
    // and changes nothing.
    w.a.engine.ikes.get_mut(&ike).unwrap().mobike.peer_supports = true;
    w.a.addr = ip(A2);
    let b_peer = w.b.engine.ike(b_ike).unwrap().peer;
    let log = capture_info_log(|| {
        assert_eq!(w.a.engine.local_address_changed(w.now, ip(A), ip(A2)), 1);
        w.settle();
    });
    assert!(
        log.iter()
            .any(|l| l.contains("UPDATE_SA_ADDRESSES from 192.0.2.9:4500 ignored: set nomobike")),
        "{log:#?}"
    );
    assert!(w.b.migrations.is_empty());
    assert_eq!(w.b.engine.ike(b_ike).unwrap().peer, b_peer);
    assert!(w
        .b
        .sas
        .values()
        .all(|s| s.id.src == ip(A) || s.id.dst == ip(A)));
}

#[test]
fn cookie2_is_echoed_as_is() {
    let mut w = roaming_world(settings(), settings());
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    let (a_sent, b_sent) = (w.a.sent.len(), w.b.sent.len());
    // B checks A's current address (a check any INFORMATIONAL may carry).
    let path = w.b.engine.ike(b_ike).unwrap().kernel_path();
    w.b.engine.ikes.get_mut(&b_ike).unwrap().mobike.pending = Some(path);
    w.b.engine
        .run_task(b_ike, Task::Mobike(MobikeTask::CheckReturnRoutability));
    w.settle();
    let request = informationals(&w.b, &w.a, ike, b_sent, false);
    let answer = informationals(&w.a, &w.b, b_ike, a_sent, true);
    let sent = notifies(&request[0].2, NotifyType::Cookie2);
    assert_eq!(sent.len(), 1);
    assert_eq!(notifies(&answer[0].2, NotifyType::Cookie2), sent);
    // Nothing moved, the SA stands.
    assert!(w.b.migrations.is_empty() && w.a.migrations.is_empty());
    assert!(w.b.engine.ike(b_ike).unwrap().mobike.pending.is_none());
    assert_eq!(w.b.established(), vec![b_ike]);
}

#[test]
fn an_answer_without_our_cookie2_closes_the_ike_sa() {
    let mut w = roaming_world(settings(), settings());
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    // B's answer to A's UPDATE_SA_ADDRESSES is replaced by one without
    // the COOKIE2 (B's engine seals it: authentic, but wrong).
    w.filter = Box::new(|p| {
        !(p.from.ip() == ip(B)
            && Header::decode(&p.data).is_ok_and(|h| {
                h.header.exchange == ExchangeType::Informational && h.header.flags.response
            }))
    });
    w.a.addr = ip(A2);
    w.a.engine.local_address_changed(w.now, ip(A), ip(A2));
    w.settle();
    w.filter = Box::new(|_| true);
    let message_id = w.a.engine.ike(ike).unwrap().next_message_id - 1;
    w.b.engine.send_response(
        b_ike,
        ExchangeType::Informational,
        message_id,
        vec![Payload::Notify(Notify::new(
            NotifyType::Cookie2,
            vec![7; 16],
        ))],
    );
    w.settle();
    assert!(
        w.a.engine.ike(ike).is_none(),
        "IKE SA closed (RFC 4555 3.7)"
    );
    assert!(w.a.migrations.is_empty());
}

#[test]
fn a_forged_update_changes_nothing() {
    let mut w = roaming_world(settings(), settings());
    let b_ike = w.b.established()[0];
    let (filter, held) = hold_first(|p| is_request_from(p, ip(A2), ExchangeType::Informational));
    w.filter = filter;
    w.a.addr = ip(A2);
    w.a.engine.local_address_changed(w.now, ip(A), ip(A2));
    w.settle();
    let mut packet = held.borrow_mut().pop().expect("A's UPDATE_SA_ADDRESSES");
    // A wrong ICV: the last octet changed.
    *packet.data.last_mut().unwrap() ^= 0x55;
    let b_sent = w.b.sent.len();
    w.deliver(packet);
    w.settle();
    assert_eq!(w.b.sent.len(), b_sent, "no answer to a forgery");
    let sb = w.b.engine.ike(b_ike).unwrap();
    assert_eq!(sb.peer, sock(A, 4500));
    assert!(sb.mobike.pending.is_none());
    assert!(w.b.migrations.is_empty());
}

#[test]
fn an_update_from_outside_the_policy_is_unacceptable() {
    let mut w = roaming_world(settings(), settings());
    let b_ike = w.b.established()[0];
    // 192.0.3.9 is outside B's peer 192.0.2.0/24.
    w.a.addr = ip("192.0.3.9");
    let log = capture_info_log(|| {
        w.a.engine
            .local_address_changed(w.now, ip(A), ip("192.0.3.9"));
        w.settle();
    });
    assert!(
        log.iter().any(|l| l.contains("UNACCEPTABLE_ADDRESSES")),
        "{log:#?}"
    );
    assert!(w.b.migrations.is_empty() && w.a.migrations.is_empty());
    assert_eq!(w.b.engine.ike(b_ike).unwrap().peer, sock(A, 4500));
}

/// A behind a NAT whose public address changes (a NAT reboot, a new
/// mapping): B follows A's authenticated request (RFC 7296 section 2.23)
/// and migrates the Child SA to the new public address and port.
#[test]
fn a_nat_mapping_change_moves_the_child_sas() {
    let mut s = settings();
    s.mobike = false;
    let mut w = World::with(s.clone(), s);
    configure_a_behind_nat(&mut w);
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    let (a_in, a_out) = assert_one_matching_child(&w);
    assert_eq!(w.b.engine.ike(b_ike).unwrap().peer, sock(NAT_PUBLIC, 14500));
    // The NAT now maps A to 198.51.100.99.
    w.nat = Some((ip(NAT_PRIVATE), ip("198.51.100.99")));
    w.a.engine.run_task(ike, Task::Dpd);
    w.settle();
    assert_eq!(
        w.b.migrations,
        vec![Migration {
            inbound: esp(NAT_PUBLIC, B, a_out),
            outbound: esp(B, NAT_PUBLIC, a_in),
            reqid: w.b.engine.child(a_out).unwrap().reqid,
            mode: iked_common::kernel::IpsecMode::Tunnel,
            policies: w.b.migrations[0].policies.clone(),
            new_local: ip(B),
            new_peer: ip("198.51.100.99"),
            encap: Some(UdpEncap {
                src_port: 4500,
                dst_port: 14500,
            }),
        }]
    );
    assert!(!w.b.migrations[0].policies.is_empty());
    let sb = w.b.engine.ike(b_ike).unwrap();
    assert_eq!(sb.peer, sock("198.51.100.99", 14500));
    assert!(sb.natt);
    // ESP now goes to the new mapping, in UDP.
    let out = &w.b.sas[&a_in];
    assert_eq!(out.id.dst, ip("198.51.100.99"));
    assert_eq!(out.encap.unwrap().dst_port, 14500);
    // A (behind the NAT) sees nothing change and moves nothing.
    assert!(w.a.migrations.is_empty());
}

#[test]
fn without_a_nat_a_request_from_elsewhere_moves_nothing() {
    let mut s = settings();
    s.mobike = false;
    let mut w = World::with(s.clone(), s);
    w.configure(vec![a_policy()], vec![b_policy()]);
    w.settle();
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    let b_sent = w.b.sent.len();
    // A's DPD arrives from another port (no NAT was detected).
    w.filter = Box::new(|_| true);
    w.a.engine.run_task(ike, Task::Dpd);
    let (packets, _) = w.a.step(w.now);
    for mut p in packets {
        p.from.set_port(5555);
        w.deliver(p);
    }
    w.settle();
    assert!(w.b.migrations.is_empty());
    assert_eq!(w.b.engine.ike(b_ike).unwrap().peer, sock(A, 500));
    // The answer went back where the request came from (RFC 7296 2.11).
    let answer = informationals(&w.b, &w.a, ike, b_sent, true);
    assert_eq!(answer[0].1, sock(A, 5555));
}

#[test]
fn with_mobike_a_nat_mapping_change_waits_for_update_sa_addresses() {
    // RFC 4555 section 3.8: with MOBIKE the host not behind the NAT does
    // not follow IKE packets from a new mapping by itself.
    let mut w = World::new();
    configure_a_behind_nat(&mut w);
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    assert!(w.b.engine.ike(b_ike).unwrap().mobike.negotiated());
    w.nat = Some((ip(NAT_PRIVATE), ip("198.51.100.99")));
    w.a.engine.run_task(ike, Task::Dpd);
    w.settle();
    assert!(w.b.migrations.is_empty());
    assert_eq!(w.b.engine.ike(b_ike).unwrap().peer, sock(NAT_PUBLIC, 14500));
    // A's UPDATE_SA_ADDRESSES (the same address: its NAT moved) moves B,
    // with NAT detection, still in UDP: a new address, so checked first.
    w.a.engine.ikes.get_mut(&ike).unwrap().mobike.pending =
        Some(w.a.engine.ike(ike).unwrap().kernel_path());
    w.a.engine
        .run_task(ike, Task::Mobike(MobikeTask::UpdateAddresses));
    w.settle();
    assert_eq!(w.b.migrations.len(), 1, "{:?}", w.b.migrations);
    let m = &w.b.migrations[0];
    assert_eq!(m.new_peer, ip("198.51.100.99"));
    assert_eq!(
        m.encap,
        Some(UdpEncap {
            src_port: 4500,
            dst_port: 14500
        })
    );
    let sb = w.b.engine.ike(b_ike).unwrap();
    assert!(sb.natt && sb.nat_detected && !sb.behind_nat);
}

#[test]
fn unanswered_requests_find_the_new_source_address() {
    // A's address changes under it and nobody tells the engine: its DPD
    // goes unanswered, the second transmission makes it ask pfkey for the
    // source towards B (now 192.0.2.9), and it moves there with MOBIKE.
    let mut w = roaming_world(settings(), settings());
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    w.a.addr = ip(A2);
    w.a.engine.run_task(ike, Task::Dpd);
    w.settle();
    assert!(
        w.a.migrations.is_empty(),
        "nothing moves before a retransmission"
    );
    w.advance_by(Duration::from_secs(10));
    assert_eq!(w.a.migrations.len(), 1, "{:?}", w.a.migrations);
    assert_eq!(w.a.migrations[0].new_local, ip(A2));
    assert_eq!(w.b.migrations.len(), 1, "{:?}", w.b.migrations);
    assert_eq!(w.b.migrations[0].new_peer, ip(A2));
    assert_eq!(w.a.engine.ike(ike).unwrap().local, sock(A2, 4500));
    assert_eq!(w.b.engine.ike(b_ike).unwrap().peer, sock(A2, 4500));
    assert_eq!(w.a.established(), vec![ike]);
}

#[test]
fn a_child_sa_pfkey_cannot_move_is_replaced_on_the_new_path() {
    let mut w = roaming_world(settings(), settings());
    let ike = assert_one_matching_ike(&w);
    let (a_in, a_out) = assert_one_matching_child(&w);
    w.a.refuse_migrations = true;
    w.a.addr = ip(A2);
    let log = capture_info_log(|| {
        w.a.engine.local_address_changed(w.now, ip(A), ip(A2));
        w.settle();
    });
    assert!(
        log.iter().any(|l| l.contains("could not be moved")),
        "{log:#?}"
    );
    // A removed its old pair at the old addresses and told B.
    assert!(
        w.a.deleted_sas.contains(&esp(B, A, a_in)),
        "{:?}",
        w.a.deleted_sas
    );
    assert!(w.a.deleted_sas.contains(&esp(A, B, a_out)));
    assert!(w.a.engine.child(a_in).is_none() && w.b.engine.child(a_out).is_none());
    // A's active policy made a new Child SA on the new path.
    let (n_in, _) = assert_one_matching_child(&w);
    assert_ne!(n_in, a_in);
    assert_eq!(w.a.sas.len(), 2, "{:?}", w.a.sas.keys());
    assert!(w
        .a
        .sas
        .values()
        .all(|s| [s.id.src, s.id.dst].contains(&ip(A2))));
    assert!(w
        .b
        .sas
        .values()
        .all(|s| [s.id.src, s.id.dst].contains(&ip(A2))));
    assert_eq!(w.a.established(), vec![ike]);
}

#[test]
fn the_peers_additional_addresses_are_recorded_and_replaced() {
    let mut w = roaming_world(settings(), settings());
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    let announce = |w: &mut World, notifies: Vec<Notify>| {
        w.b.engine.send_request(
            b_ike,
            ExchangeType::Informational,
            notifies.into_iter().map(Payload::Notify).collect(),
            crate::engine::state::RequestCtx::Dpd,
        );
        w.settle();
    };
    announce(
        &mut w,
        vec![
            Notify::new(NotifyType::AdditionalIp4Address, vec![192, 0, 2, 77]),
            Notify::new(
                NotifyType::AdditionalIp6Address,
                "2001:db8::7"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()
                    .to_vec(),
            ),
            // Malformed: ignored, the others kept.
            Notify::new(NotifyType::AdditionalIp4Address, vec![1, 2, 3]),
        ],
    );
    assert_eq!(
        w.a.engine.ike(ike).unwrap().mobike.peer_additional,
        vec![ip("192.0.2.77"), ip("2001:db8::7")]
    );
    announce(
        &mut w,
        vec![Notify::new(NotifyType::NoAdditionalAddresses, Vec::new())],
    );
    assert!(w
        .a
        .engine
        .ike(ike)
        .unwrap()
        .mobike
        .peer_additional
        .is_empty());
    // Neither moved anything; both answered.
    assert!(w.a.migrations.is_empty() && w.b.migrations.is_empty());
    assert_eq!(w.b.established(), vec![b_ike]);
}

#[test]
fn mobike_roles_survive_an_ike_rekey_by_the_responder() {
    // B rekeys the IKE SA: B is the new SA's initiator (RFC 7296 2.18),
    // but A initiated the IKE SA and stays the side that moves (RFC 4555
    // 3.5), with MOBIKE still negotiated.
    let mut w = roaming_world(settings(), settings());
    let b_ike = w.b.established()[0];
    w.b.engine.run_task(b_ike, Task::RekeyIke);
    w.settle();
    w.advance_by(Duration::from_secs(1));
    let new_a = assert_one_matching_ike(&w);
    let sa = w.a.engine.ike(new_a).unwrap();
    assert!(!sa.initiator, "B initiated the rekey");
    assert!(sa.mobike.negotiated() && sa.mobike.original_initiator);
    w.a.addr = ip(A2);
    assert_eq!(w.a.engine.local_address_changed(w.now, ip(A), ip(A2)), 1);
    w.settle();
    assert_eq!(w.a.migrations.len(), 1);
    assert_eq!(w.b.migrations.len(), 1);
    let new_b = w.b.established()[0];
    assert_eq!(w.b.engine.ike(new_b).unwrap().peer, sock(A2, 4500));
}

#[test]
fn no_nats_allowed_refuses_a_translated_update() {
    // RFC 4555 3.9: A says it sent from 192.0.2.1:4500 to B:4500, but the
    // packet arrives from 192.0.2.9: UNEXPECTED_NAT_DETECTED, nothing moves.
    let mut w = roaming_world(settings(), settings());
    let ike = assert_one_matching_ike(&w);
    let b_ike = w.b.established()[0];
    let mut claimed = vec![192, 0, 2, 1, 192, 0, 2, 2];
    claimed.extend_from_slice(&4500u16.to_be_bytes());
    claimed.extend_from_slice(&4500u16.to_be_bytes());
    let b_sent = w.b.sent.len();
    w.a.engine.send_request(
        ike,
        ExchangeType::Informational,
        vec![
            Payload::Notify(Notify::new(NotifyType::UpdateSaAddresses, Vec::new())),
            Payload::Notify(Notify::new(NotifyType::NoNatsAllowed, claimed.clone())),
        ],
        crate::engine::state::RequestCtx::Dpd,
    );
    // The "NAT" rewrites A's source on the way.
    let (packets, _) = w.a.step(w.now);
    for mut p in packets {
        p.from = sock(A2, 4500);
        w.deliver(p);
    }
    w.settle();
    let answer = informationals(&w.b, &w.a, ike, b_sent, true);
    assert_eq!(answer[0].1, sock(A2, 4500), "answered where it came from");
    assert_eq!(
        notifies(&answer[0].2, NotifyType::UnexpectedNatDetected).len(),
        1
    );
    assert!(w.b.migrations.is_empty());
    assert_eq!(w.b.engine.ike(b_ike).unwrap().peer, sock(A, 4500));
    assert!(w.b.engine.ike(b_ike).unwrap().mobike.pending.is_none());
    // The same claim on the real path is accepted (and moves nothing:
    // it is the current path).
    w.a.engine.send_request(
        ike,
        ExchangeType::Informational,
        vec![
            Payload::Notify(Notify::new(NotifyType::UpdateSaAddresses, Vec::new())),
            Payload::Notify(Notify::new(NotifyType::NoNatsAllowed, claimed)),
        ],
        crate::engine::state::RequestCtx::Dpd,
    );
    let b_sent = w.b.sent.len();
    w.settle();
    let answer = informationals(&w.b, &w.a, ike, b_sent, true);
    assert!(notifies(&answer[0].2, NotifyType::UnexpectedNatDetected).is_empty());
    assert!(w.b.migrations.is_empty());
}
