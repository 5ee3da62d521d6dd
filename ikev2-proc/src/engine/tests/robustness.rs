//! Hostile and broken input: garbage, tampering, cookies, half-open economics, failing randomness.

use super::*;

#[test]
fn half_open_cap_refuses_new_initiations() {
    let mut sb = settings();
    sb.half_open_cap = 0;
    let mut w = World::with(settings(), sb);
    w.handshake();
    assert_eq!(w.b.engine.ike_sa_count(), 0);
    assert!(w.a.established().is_empty());
}

#[test]
fn garbage_flood_leaves_the_engine_serving() {
    let mut w = World::new();
    w.b.engine
        .set_config(w.now, vec![b_policy()], InitiationMode::Passive, 0);
    // Real messages to cut up: a handshake between a throwaway pair.
    let mut donor = World::new();
    donor.handshake();
    let samples: Vec<Vec<u8>> = donor
        .a
        .sent
        .iter()
        .chain(donor.b.sent.iter())
        .map(|s| s.2.clone())
        .collect();
    let mut rng = seeded(0xdead);
    let from = SocketAddr::new(ip(A), 500);
    let to = SocketAddr::new(ip(B), 500);
    for i in 0..1000usize {
        let mut len_bytes = [0u8; 2];
        rng.fill(&mut len_bytes).unwrap();
        let data = if i % 2 == 0 {
            let len = usize::from(u16::from_be_bytes(len_bytes)) % 600;
            let mut d = vec![0u8; len];
            rng.fill(&mut d).unwrap();
            if i % 4 == 0 && d.len() >= 28 {
                // Plausible header: version 2, IKE_SA_INIT, right length.
                d[17] = 0x20;
                d[18] = 34;
                let l = (d.len() as u32).to_be_bytes();
                d[24..28].copy_from_slice(&l);
            }
            d
        } else {
            let sample = &samples[i % samples.len()];
            let cut = usize::from(u16::from_be_bytes(len_bytes)) % sample.len().max(1);
            let mut d = sample[..cut].to_vec();
            if i % 3 == 0 && !d.is_empty() {
                let at = cut / 2;
                d[at] ^= 0x5a;
            }
            d
        };
        w.b.engine.handle_datagram(w.now, to, from, &data);
    }
    // Whatever the flood created is half-open at most; then a real peer.
    w.a.engine
        .set_config(w.now, vec![a_policy()], InitiationMode::Active, 0);
    w.settle();
    assert_eq!(w.a.established().len(), 1);
    assert_one_matching_child(&w);
    assert!(w.b.engine.half_open_count() <= 1000);
}

#[test]
fn replies_to_requests_never_made_are_errors() {
    let mut w = World::new();
    assert!(w
        .a
        .engine
        .handle_pfkey(w.now, PfkeyToIkev2::Done { id: 4242 })
        .is_err());
    assert!(w
        .a
        .engine
        .handle_ca(
            w.now,
            CaToIkev2::Verified {
                id: 4242,
                ok: true,
                reason: String::new(),
            }
        )
        .is_err());
    assert!(w
        .a
        .engine
        .handle_pfkey(w.now, PfkeyToIkev2::Pong { id: 1 })
        .is_ok());
}

#[test]
fn tampered_messages_on_an_established_sa_are_dropped() {
    let mut w = World::new();
    w.handshake();
    let (old, _) = assert_one_matching_child(&w);
    let ike = assert_one_matching_ike(&w);
    let samples: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = w.a.sent.clone();
    let mut rng = seeded(0xbeef);
    for i in 0..1000usize {
        let (from, to, sample) = &samples[i % samples.len()];
        let mut data = sample.clone();
        let mut pick = [0u8; 4];
        rng.fill(&mut pick).unwrap();
        let at = 28
            + usize::from(u16::from_be_bytes([pick[0], pick[1]]))
                % data.len().saturating_sub(28).max(1);
        if let Some(byte) = data.get_mut(at) {
            *byte ^= pick[2] | 1;
        }
        w.b.engine.handle_datagram(w.now, *to, *from, &data);
        // Replays of old requests get at most a cached answer.
        w.b.engine.handle_datagram(w.now, *to, *from, sample);
    }
    w.b.engine.drain_actions();
    w.settle();
    assert_eq!(assert_one_matching_ike(&w), ike);
    // The replayed IKE_SA_INIT request found the established SA: no new state.
    assert_eq!(w.b.engine.ike_sa_count(), 1);
    assert_eq!(w.b.engine.half_open_count(), 0);
    // The SA still works: a rekey goes through.
    w.a.engine.run_task(ike, Task::RekeyChild { spi_in: old });
    w.settle();
    let (new, _) = assert_one_matching_child(&w);
    assert_ne!(new, old);
}

/// B configured; A's first IKE_SA_INIT request to B, taken off the wire
/// undelivered, and decoded.
fn first_sa_init(w: &mut World) -> (Packet, Message) {
    w.b.engine
        .set_config(w.now, vec![b_policy()], InitiationMode::Passive, 0);
    w.a.engine
        .set_config(w.now, vec![a_policy()], InitiationMode::Active, 0);
    let (packets, _) = w.a.step(w.now);
    let request = packets
        .into_iter()
        .find(|p| {
            Header::decode(&p.data).is_ok_and(|h| h.header.exchange == ExchangeType::IkeSaInit)
        })
        .expect("A sends IKE_SA_INIT");
    let message = Message::decode(&request.data).unwrap();
    (request, message)
}

/// `base` under initiator SPI `spi_i`, opening with a COOKIE carrying
/// `cookie` if given (RFC 7296 §2.6: the first payload).
fn sa_init_with(base: &Message, spi_i: u64, cookie: Option<Vec<u8>>) -> Vec<u8> {
    let mut message = base.clone();
    message.header.initiator_spi = spi_i;
    message
        .payloads
        .retain(|p| !matches!(p, Payload::Notify(n) if n.notify_type == NotifyType::Cookie));
    if let Some(cookie) = cookie {
        message
            .payloads
            .insert(0, Payload::Notify(Notify::new(NotifyType::Cookie, cookie)));
    }
    message.encode().unwrap()
}

/// Hands `datagram` from `from` to B; what B sent back, decoded.
fn b_answers(w: &mut World, from: SocketAddr, datagram: &[u8]) -> Vec<Message> {
    let to = SocketAddr::new(w.b.addr, 500);
    w.b.engine.handle_datagram(w.now, to, from, datagram);
    let (packets, _) = w.b.step(w.now);
    packets
        .iter()
        .map(|p| Message::decode(&p.data).unwrap())
        .collect()
}

/// The cookie, if `answers` is exactly one stateless COOKIE demand.
fn cookie_demand(answers: &[Message]) -> Option<Vec<u8>> {
    let [answer] = answers else {
        return None;
    };
    match &answer.payloads[..] {
        [Payload::Notify(n)]
            if n.notify_type == NotifyType::Cookie
                && answer.header.flags.response
                && answer.header.responder_spi == 0 =>
        {
            Some(n.data.clone())
        }
        _ => None,
    }
}

/// Whether `answers` is one IKE_SA_INIT response that made an SA.
fn sa_made(answers: &[Message]) -> bool {
    matches!(answers, [m] if m.header.responder_spi != 0 && m.security_association().is_some())
}

#[test]
fn cookies_of_any_length_get_a_fresh_cookie_demand_and_no_sa() {
    // Security review C1: with cookies required, a COOKIE of a length
    // other than 33 reached openssl::memcmp::eq, which panics.
    let mut sb = settings();
    sb.cookie_threshold = 0;
    let mut w = World::with(settings(), sb);
    let (request, base) = first_sa_init(&mut w);
    let from = request.from;
    let spi = base.header.initiator_spi;
    let fresh = cookie_demand(&b_answers(&mut w, from, &request.data)).expect("a cookie demand");
    assert_eq!(fresh.len(), 33, "version octet and SHA-256");
    let mut wrong = fresh.clone();
    wrong[20] ^= 0x40;
    let other_version: Vec<u8> = [vec![fresh[0].wrapping_add(7)], fresh[1..].to_vec()].concat();
    for cookie in [
        vec![fresh[0]],
        vec![fresh[0]; 32],
        wrong,
        other_version,
        [fresh.clone(), vec![0]].concat(),
        vec![fresh[0]; 64],
    ] {
        let len = cookie.len();
        let answers = b_answers(&mut w, from, &sa_init_with(&base, spi, Some(cookie)));
        assert_eq!(
            cookie_demand(&answers),
            Some(fresh.clone()),
            "a {len}-octet cookie is answered with a fresh demand: {answers:?}"
        );
        assert_eq!(w.b.engine.ike_sa_count(), 0, "{len}-octet cookie");
    }
    // Outside the 1 to 64 octets of RFC 7296 §3.10.1 the request is
    // malformed: dropped unanswered by the decoder. The largest one is as
    // large as a UDP datagram over IPv4 can be.
    let datagram_max = 65_507;
    let base_len = sa_init_with(&base, spi, Some(Vec::new())).len();
    for cookie in [Vec::new(), vec![fresh[0]; datagram_max - base_len]] {
        let len = cookie.len();
        let datagram = sa_init_with(&base, spi, Some(cookie));
        assert!(datagram.len() <= datagram_max);
        assert!(b_answers(&mut w, from, &datagram).is_empty(), "{len}");
        assert_eq!(w.b.engine.ike_sa_count(), 0, "{len}-octet cookie");
    }
    // The engine's own check takes any length too, should a decoder ever
    // let one through.
    let Some(ni) = base.nonce() else {
        panic!("no nonce in {base:?}");
    };
    for len in [0, 1, 32, 34, 64, 65_000] {
        let mut message = base.clone();
        message.payloads.insert(
            0,
            Payload::Notify(Notify::new(NotifyType::Cookie, vec![fresh[0]; len])),
        );
        assert!(
            !w.b.engine.cookie_valid(&message, &ni.0, from, spi),
            "{len}"
        );
    }
    // The right cookie is taken: A gets its demand and retries with it.
    w.deliver(request);
    w.settle();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
}

#[test]
fn cookies_outlive_one_secret_rotation_but_not_two() {
    let mut sb = settings();
    sb.cookie_threshold = 0;
    let lifetime = sb.cookie_secret_lifetime.as_secs();
    assert_eq!(lifetime, 120, "the times below assume the default");
    let mut w = World::with(settings(), sb);
    let (request, base) = first_sa_init(&mut w);
    let from = request.from;
    let start = w.now;
    let mut next_spi = 0x5eed_0000_0000_0000u64;
    // A cookie demanded at `at` seconds, for a fresh initiator SPI.
    let mut demand = |w: &mut World, at: u64| {
        next_spi += 1;
        w.now = start + Duration::from_secs(at);
        let cookie = cookie_demand(&b_answers(w, from, &sa_init_with(&base, next_spi, None)))
            .expect("a cookie demand");
        (next_spi, cookie)
    };
    // Whether B takes `cookie` at `at` seconds: an SA, or a new demand.
    let offer = |w: &mut World, at: u64, (spi, cookie): (u64, Vec<u8>)| {
        w.now = start + Duration::from_secs(at);
        let before = w.b.engine.ike_sa_count();
        let answers = b_answers(w, from, &sa_init_with(&base, spi, Some(cookie)));
        let taken = w.b.engine.ike_sa_count() == before + 1;
        assert_eq!(taken, sa_made(&answers));
        assert_eq!(!taken, cookie_demand(&answers).is_some(), "{answers:?}");
        taken
    };
    let first = demand(&mut w, 10);
    let version = first.1[0];
    assert!(offer(&mut w, 20, first), "current secret");
    // Made just before the rotation due at 120 s: still taken after it.
    let before_rotation = demand(&mut w, 110);
    assert_eq!(before_rotation.1[0], version);
    assert!(offer(&mut w, 130, before_rotation), "previous secret");
    // Made at 230 s, before the rotation due at 240 s (done at 250 s),
    // offered after the one due at 360 s: two rotations old.
    let two_old = demand(&mut w, 230);
    let one_old = demand(&mut w, 250);
    assert_eq!(two_old.1[0], version.wrapping_add(1));
    assert_eq!(one_old.1[0], version.wrapping_add(2), "the version octet");
    assert!(!offer(&mut w, 370, two_old), "two rotations old");
    assert!(offer(&mut w, 375, one_old), "one rotation old");
    // Unused for more than two lifetimes, both secrets are replaced.
    let stale = demand(&mut w, 400);
    assert!(!offer(&mut w, 400 + 2 * lifetime + 1, stale), "stale");
}

#[test]
fn one_source_gets_its_share_of_half_open_sas_and_spoofing_cannot_take_it() {
    let mut w = World::new();
    let (request, base) = first_sa_init(&mut w);
    let mut roads = b_policy();
    roads.peer = None;
    w.b.engine
        .set_config(w.now, vec![roads], InitiationMode::Passive, 0);
    let from = request.from;
    let per_source = settings().half_open_per_source;
    assert!(per_source > 0 && per_source < settings().cookie_threshold);
    let mut spi = 0x0100_0000_0000_0000u64;
    // Requests with A's address, as a spoofer would send them: below the
    // global cookie threshold the first ones make half-open SAs.
    for _ in 0..per_source {
        spi += 1;
        assert!(sa_made(&b_answers(
            &mut w,
            from,
            &sa_init_with(&base, spi, None)
        )));
    }
    assert_eq!(w.b.engine.half_open_count(), per_source);
    // Past its share the address must show it receives there.
    spi += 1;
    let cookie = cookie_demand(&b_answers(&mut w, from, &sa_init_with(&base, spi, None)))
        .expect("a cookie demand");
    assert_eq!(w.b.engine.ike_sa_count(), per_source);
    // Another address is not affected.
    let other = SocketAddr::new(ip("192.0.2.77"), 500);
    assert!(sa_made(&b_answers(
        &mut w,
        other,
        &sa_init_with(&base, spi + 1000, None)
    )));
    // The real owner of the address answers the cookie and is served: the
    // spoofed requests did not lock it out. As many again are allowed so.
    assert!(sa_made(&b_answers(
        &mut w,
        from,
        &sa_init_with(&base, spi, Some(cookie))
    )));
    for _ in 1..per_source {
        spi += 1;
        let cookie = cookie_demand(&b_answers(&mut w, from, &sa_init_with(&base, spi, None)))
            .expect("a cookie demand");
        assert!(sa_made(&b_answers(
            &mut w,
            from,
            &sa_init_with(&base, spi, Some(cookie))
        )));
    }
    // Then even proven requests from that address are dropped unanswered.
    spi += 1;
    let cookie = cookie_demand(&b_answers(&mut w, from, &sa_init_with(&base, spi, None)))
        .expect("a cookie demand");
    assert!(b_answers(&mut w, from, &sa_init_with(&base, spi, Some(cookie))).is_empty());
    assert_eq!(w.b.engine.half_open_count(), 2 * per_source + 1);
    // All time out; the counts are back to nothing, and the address makes
    // SAs without a cookie again.
    w.now += settings().half_open_timeout + Duration::from_secs(1);
    w.b.engine.handle_timeout(w.now);
    w.b.step(w.now);
    assert_eq!(w.b.engine.half_open_count(), 0);
    assert!(w.b.engine.half_open_by_source.is_empty());
    assert!(sa_made(&b_answers(
        &mut w,
        from,
        &sa_init_with(&base, spi + 1, None)
    )));
}

#[test]
fn ipv6_sources_share_their_half_open_share_by_slash_64() {
    let key = |s: &str| crate::engine::admission::source_key(ip(s));
    assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::7"));
    assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    assert_eq!(key("192.0.2.1"), ip("192.0.2.1"));
}

#[test]
fn a_half_open_responder_sa_takes_nothing_but_ike_auth() {
    let mut w = World::new();
    // B never gets IKE_AUTH: its SA stays half-open.
    w.filter = Box::new(|p| {
        Header::decode(&p.data).is_ok_and(|h| h.header.exchange != ExchangeType::IkeAuth)
    });
    w.handshake();
    assert_eq!(w.b.engine.half_open_count(), 1);
    let a_spi = w.a.engine.ike_spis()[0];
    let b_spi = w.b.engine.ike_spis()[0];
    // A holds the SA's keys and sends, as message 1, what only an
    // authenticated peer may: a DELETE of the IKE SA, a DPD check and an
    // IKE SA rekey (CREATE_CHILD_SA). B must not act on or answer any.
    for task in [Task::DeleteIke, Task::Dpd, Task::RekeyIke] {
        let sa = w.a.engine.ikes.get_mut(&a_spi).unwrap();
        sa.outstanding = None;
        sa.prep = None;
        sa.state = IkeState::Established;
        sa.next_message_id = 1;
        sa.queue.clear();
        sa.queue.push_back(task.clone());
        let sent_before = w.b.sent.len();
        w.a.engine.pump(a_spi);
        w.settle();
        assert_eq!(w.b.sent.len(), sent_before, "B answered {task:?}");
        let sa =
            w.b.engine
                .ike(b_spi)
                .expect("the half-open SA is still there");
        assert_eq!(sa.state, IkeState::InitDone);
        assert_eq!(sa.expected_message_id, 1, "{task:?} took no message ID");
    }
    assert_eq!(w.b.engine.ike_sa_count(), 1);
    assert_eq!(w.b.engine.half_open_count(), 1);
    // Only its timeout removes it.
    w.advance_by(settings().half_open_timeout + Duration::from_secs(1));
    assert_eq!(w.b.engine.ike_sa_count(), 0);
    assert_eq!(w.b.engine.half_open_count(), 0);
}

#[test]
fn traffic_selectors_are_narrowed_only_after_the_peer_is_authenticated() {
    for right_psk in [false, true] {
        let mut w = World::new();
        w.b.hold_ca = true;
        w.handshake();
        // B holds A's IKE_AUTH while ca checks its AUTH.
        assert!(
            matches!(&w.b.held_ca[..], [Ikev2ToCa::VerifyAuth { .. }]),
            "{:?}",
            w.b.held_ca
        );
        let spi = w.b.engine.ike_spis()[0];
        let sa = w.b.engine.ike(spi).unwrap();
        assert_eq!(sa.state, IkeState::AuthResponding);
        let Some(crate::engine::Answer {
            kind: crate::engine::AnswerKind::Auth(answer),
            ..
        }) = &sa.answering
        else {
            panic!("B is not answering IKE_AUTH");
        };
        assert!(answer.child.is_none(), "no Child SA chosen before AUTH");
        assert!(answer.child_offer.is_some(), "the offer is kept for later");
        // B's only reqid so far is its passive policy's trap.
        assert_eq!(
            w.b.engine.reqids.handed_out, 1,
            "no reqid taken before AUTH"
        );
        if !right_psk {
            w.b.psk = b"not the key A has".to_vec();
        }
        w.b.hold_ca = false;
        for request in std::mem::take(&mut w.b.held_ca) {
            let reply = w.b.ca(request);
            w.b.engine.handle_ca(w.now, reply).unwrap();
        }
        w.settle();
        if right_psk {
            assert_one_matching_ike(&w);
            assert_one_matching_child(&w);
            let child = w.b.engine.child(w.b.engine.child_spis()[0]).unwrap();
            assert_eq!(child.flow, b_policy().flows[0]);
        } else {
            assert_eq!(w.b.engine.ike_sa_count(), 0);
            assert_eq!(
                w.b.engine.reqids.handed_out, 1,
                "nothing narrowed for a failed peer"
            );
            assert!(w.b.sas.is_empty());
        }
    }
}

#[test]
fn a_failing_random_source_stops_the_engine_from_starting() {
    struct Broken;
    impl iked_common::crypto::RandomSource for Broken {
        fn fill(&mut self, _: &mut [u8]) -> iked_common::crypto::Result<()> {
            Err(iked_common::crypto::CryptoError::Random)
        }
    }
    assert!(Engine::new(settings(), Box::new(Broken), Instant::now()).is_err());
}

#[test]
fn randomness_failing_later_fails_the_exchange_not_the_engine() {
    /// Works until `broken` is set.
    struct Switchable(Box<dyn iked_common::crypto::RandomSource>, Rc<Cell<bool>>);
    impl iked_common::crypto::RandomSource for Switchable {
        fn fill(&mut self, buf: &mut [u8]) -> iked_common::crypto::Result<()> {
            if self.1.get() {
                return Err(iked_common::crypto::CryptoError::Random);
            }
            self.0.fill(buf)
        }
    }
    use std::{cell::Cell, rc::Rc};
    let broken = Rc::new(Cell::new(false));
    let mut w = World::new();
    let rng = Switchable(seeded(7), broken.clone());
    w.a.engine = Engine::new(settings(), Box::new(rng), w.now).unwrap();
    broken.set(true);
    w.handshake();
    assert_eq!(
        w.a.engine.ike_sa_count(),
        0,
        "no SA without an SPI and a nonce"
    );
    assert_eq!(w.b.engine.ike_sa_count(), 0);
    // Randomness back: the policy can be started as usual.
    broken.set(false);
    w.a.engine.handle_control(
        w.now,
        1,
        ControlCommand::Initiate {
            policy: "ab".into(),
        },
    );
    w.settle();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
}

#[test]
fn an_spi_source_that_repeats_itself_is_an_error_not_a_hang() {
    // Always the same octets: the first SPI is fine, the second collides
    // with it forever.
    let mut w = World::new();
    w.a.engine = Engine::new(settings(), Box::new(|buf: &mut [u8]| buf.fill(0x42)), w.now).unwrap();
    let first = w.a.engine.new_ike_spi().unwrap();
    w.a.engine.ikes.insert(first, {
        // Any SA under that SPI will do: take one from a handshake.
        let mut donor = World::new();
        donor.handshake();
        let spi = donor.a.established()[0];
        donor.a.engine.ikes.remove(&spi).unwrap()
    });
    assert!(w.a.engine.new_ike_spi().is_err());
}

#[test]
fn a_flood_of_unacceptable_sa_init_requests_cannot_flood_the_log() {
    // Anyone can send IKE_SA_INIT from forged addresses at line rate; the
    // "no proposal chosen" line an operator needs must not become one
    // line per forged packet.
    let mut w = World::new();
    let (request, base) = first_sa_init(&mut w);
    let mut pb = b_policy();
    pb.ike_proposals = vec![ike_proposal(&[14])];
    w.b.engine
        .set_config(w.now, vec![pb], InitiationMode::Passive, 0);
    let lines = capture_info_log(|| {
        for i in 0..1000u32 {
            let from = SocketAddr::from(([198, 19, (i >> 8) as u8, i as u8], 500));
            let answers = b_answers(&mut w, from, &sa_init_with(&base, 1 + u64::from(i), None));
            assert!(
                matches!(&answers[..], [m] if m.notify(NotifyType::NoProposalChosen).is_some()),
                "each request is still answered: {answers:?}"
            );
        }
        w.now += Duration::from_secs(1);
        b_answers(&mut w, request.from, &request.data);
    });
    let refusals: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("refused with NO_PROPOSAL_CHOSEN"))
        .collect();
    assert_eq!(
        refusals.len(),
        6,
        "five lines a second, then one: {refusals:?}"
    );
    assert!(
        refusals[5].contains("(995 more like it not logged)"),
        "the next line counts the lines held back: {}",
        refusals[5]
    );
}

#[test]
fn sa_init_requests_over_the_size_cap_are_refused_and_only_one_response_is_kept() {
    let mut w = World::new();
    let (request, base) = first_sa_init(&mut w);
    let from = request.from;
    let cap = settings().max_sa_init_request;
    // RFC 7296 §2: 3000 octets SHOULD be accepted; the cap is above.
    assert!(cap >= 3000);
    let sized = |spi: u64, total: usize| {
        let mut message = base.clone();
        message.header.initiator_spi = spi;
        let bare = message.encode().unwrap().len();
        message
            .payloads
            .push(Payload::VendorId(VendorId(vec![0x5a; total - bare - 4])));
        let datagram = message.encode().unwrap();
        assert_eq!(datagram.len(), total);
        datagram
    };
    let largest = sized(1, cap);
    assert!(sa_made(&b_answers(&mut w, from, &largest)));
    assert!(b_answers(&mut w, from, &sized(2, cap + 1)).is_empty());
    assert_eq!(w.b.engine.ike_sa_count(), 1);
    // Of the exchange the SA keeps the request (signed in IKE_AUTH) and
    // one copy of the response, which also answers retransmissions.
    let sa = w.b.engine.ike(w.b.engine.ike_spis()[0]).unwrap();
    let handshake = sa.handshake.as_deref().unwrap();
    assert_eq!(handshake.init_request.len(), cap);
    assert!(sa.cached_response.is_none());
    let kept = handshake.init_response.clone();
    let again = b_answers(&mut w, from, &largest);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].encode().unwrap(), kept);
    assert_eq!(w.b.engine.ike_sa_count(), 1);
}
