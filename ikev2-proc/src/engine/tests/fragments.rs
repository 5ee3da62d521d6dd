//! IKE fragmentation (RFC 7383): negotiation, fragments on the wire,
//! loss, reordering and duplication of fragments, and hostile fragments
//! (too many, too large, bad ICV, never completed) with memory bounded.

use super::*;
use iked_common::wire::PayloadType;

/// Settings with IKE fragmentation on above `size` bytes (IP datagram).
fn fragmenting(size: u16) -> Settings {
    let mut s = settings();
    s.fragmentation.max_datagram = size;
    s
}

fn without_fragmentation() -> Settings {
    let mut s = settings();
    s.fragmentation.enabled = false;
    s
}

/// A PSK IKE_AUTH request or response is about 300 bytes: at this size
/// each goes in a few fragments.
const SMALL: u16 = 200;

/// IPv4 and UDP headers: what a datagram on port 500 adds to the IKE message.
const IPV4_UDP: usize = 28;

/// (Fragment Number, Total Fragments, Next Payload) of an IKE Fragment
/// message (its SKF payload first, as ours are).
fn skf_fields(d: &[u8]) -> Option<(u16, u16, u8)> {
    let h = Header::decode(d).ok()?;
    if h.first_payload != PayloadType::EncryptedFragment {
        return None;
    }
    let f = d.get(28..36)?;
    Some((
        u16::from_be_bytes([f[4], f[5]]),
        u16::from_be_bytes([f[6], f[7]]),
        f[0],
    ))
}

fn is_exchange(d: &[u8], exchange: ExchangeType, response: bool) -> bool {
    Header::decode(d)
        .is_ok_and(|h| h.header.exchange == exchange && h.header.flags.response == response)
}

/// The datagrams `node` sent of `exchange` (requests or responses), in order.
fn sent_of(node: &Node, exchange: ExchangeType, response: bool) -> Vec<Vec<u8>> {
    node.sent
        .iter()
        .filter(|(_, _, d)| is_exchange(d, exchange, response))
        .map(|(_, _, d)| d.clone())
        .collect()
}

fn announces_fragmentation(datagram: &[u8]) -> bool {
    Message::decode(datagram)
        .unwrap()
        .notify(NotifyType::Ikev2FragmentationSupported)
        .is_some()
}

/// Checks that `datagrams` are one message's fragments, numbered 1..=n of
/// n, the first inner payload named in fragment 1 only, each within
/// `size` bytes as an IPv4 datagram; returns n.
fn assert_fragments(datagrams: &[Vec<u8>], first_inner: Option<PayloadType>, size: u16) -> u16 {
    let total = datagrams.len() as u16;
    assert!(total >= 2, "{total} datagrams");
    let message_id = Header::decode(&datagrams[0]).unwrap().header.message_id;
    for (index, d) in datagrams.iter().enumerate() {
        let (number, of, next) = skf_fields(d).expect("an SKF message");
        assert_eq!((number, of), (index as u16 + 1, total));
        match (number, first_inner) {
            (1, Some(first)) => assert_eq!(next, first.value(), "Next Payload of fragment 1"),
            (1, None) => assert_ne!(next, 0, "fragment 1 names the first inner payload"),
            _ => assert_eq!(next, 0, "Next Payload of fragment {number}"),
        }
        assert_eq!(Header::decode(d).unwrap().header.message_id, message_id);
        assert!(
            d.len() + IPV4_UDP <= usize::from(size),
            "fragment {number}: {} bytes",
            d.len() + IPV4_UDP
        );
        // Each decodes as a whole message of its own length.
        Message::decode(d).expect("a valid IKE message");
    }
    total
}

#[test]
fn both_sides_announce_fragmentation_and_small_messages_stay_whole() {
    let mut w = World::new();
    w.handshake();
    assert_one_matching_ike(&w);
    let init_request = &sent_of(&w.a, ExchangeType::IkeSaInit, false)[0];
    let init_response = &sent_of(&w.b, ExchangeType::IkeSaInit, true)[0];
    assert!(announces_fragmentation(init_request));
    assert!(announces_fragmentation(init_response));
    for node in [&w.a, &w.b] {
        let spi = node.established()[0];
        assert!(node.engine.ike(spi).unwrap().fragments.is_negotiated());
    }
    // 1280 bytes: a PSK IKE_AUTH fits whole.
    for d in sent_of(&w.a, ExchangeType::IkeAuth, false)
        .iter()
        .chain(&sent_of(&w.b, ExchangeType::IkeAuth, true))
    {
        assert_eq!(
            Header::decode(d).unwrap().first_payload,
            PayloadType::Encrypted
        );
    }
}

#[test]
fn a_large_ike_auth_goes_in_numbered_fragments_both_ways() {
    let mut w = World::with(fragmenting(SMALL), fragmenting(SMALL));
    let log = capture_info_log(|| w.handshake());
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    let requests = sent_of(&w.a, ExchangeType::IkeAuth, false);
    let responses = sent_of(&w.b, ExchangeType::IkeAuth, true);
    let n = assert_fragments(&requests, Some(PayloadType::IdInitiator), SMALL);
    let m = assert_fragments(&responses, Some(PayloadType::IdResponder), SMALL);
    println!("IKE_AUTH request: {n} fragments, response: {m} fragments");
    // IKE_SA_INIT is never fragmented (it has no Encrypted payload).
    assert_eq!(sent_of(&w.a, ExchangeType::IkeSaInit, false).len(), 1);
    for (what, count) in [("request", n), ("response", m)] {
        assert!(
            log.iter().any(|l| l.contains(&format!(
                "IKE_AUTH {what} 1 reassembled from {count} fragments"
            ))),
            "{log:#?}"
        );
        assert!(
            log.iter()
                .any(|l| l.contains(&format!("IKE_AUTH {what} 1 ("))
                    && l.contains(&format!("sent in {count} fragments"))),
            "{log:#?}"
        );
    }
    // Later exchanges fragment too when large: a Child SA rekey here.
    let child = w.a.engine.child_spis()[0];
    w.a.engine
        .handle_pfkey(w.now, PfkeyToIkev2::Event(esp_expire(B, A, child, false)))
        .unwrap();
    w.settle();
    let rekeys = sent_of(&w.a, ExchangeType::CreateChildSa, false);
    assert!(rekeys.len() >= 2, "{} datagrams", rekeys.len());
    assert_fragments(&rekeys, None, SMALL);
    assert_eq!(w.a.engine.child_spis().len(), 1);
    assert_one_matching_child(&w);
    // Nothing is left in reassembly.
    assert_eq!(w.a.engine.fragment_memory_used(), 0);
    assert_eq!(w.b.engine.fragment_memory_used(), 0);
}

#[test]
fn fragments_fit_the_size_with_a_cbc_and_hmac_suite_too() {
    let mut w = World::with(fragmenting(SMALL), fragmenting(SMALL));
    let cbc = ProposalSpec {
        transforms: vec![
            t(TRANSFORM_ENCR, 12, Some(256)),
            t(TRANSFORM_INTEG, 12, None),
            t(TRANSFORM_PRF, 5, None),
            t(TRANSFORM_KE, 31, None),
        ],
    };
    let (mut pa, mut pb) = (a_policy(), b_policy());
    pa.ike_proposals = vec![cbc.clone()];
    pb.ike_proposals = vec![cbc];
    w.configure(vec![pa], vec![pb]);
    w.settle();
    assert_one_matching_ike(&w);
    assert_fragments(
        &sent_of(&w.a, ExchangeType::IkeAuth, false),
        Some(PayloadType::IdInitiator),
        SMALL,
    );
    assert_fragments(
        &sent_of(&w.b, ExchangeType::IkeAuth, true),
        Some(PayloadType::IdResponder),
        SMALL,
    );
}

#[test]
fn a_side_without_fragmentation_gets_no_fragments_and_sends_none() {
    for (sa, sb) in [
        (fragmenting(SMALL), without_fragmentation()),
        (without_fragmentation(), fragmenting(SMALL)),
    ] {
        let a_on = sa.fragmentation.enabled;
        let mut b_small = sb.clone();
        b_small.fragmentation.max_datagram = SMALL;
        let mut w = World::with(sa, b_small);
        w.handshake();
        assert_one_matching_ike(&w);
        assert_one_matching_child(&w);
        let init_request = &sent_of(&w.a, ExchangeType::IkeSaInit, false)[0];
        let init_response = &sent_of(&w.b, ExchangeType::IkeSaInit, true)[0];
        assert_eq!(announces_fragmentation(init_request), a_on);
        // The responder announces it only when both do (§2.3).
        assert!(!announces_fragmentation(init_response));
        for node in [&w.a, &w.b] {
            let spi = node.established()[0];
            assert!(!node.engine.ike(spi).unwrap().fragments.is_negotiated());
        }
        for d in w.a.sent.iter().chain(&w.b.sent).map(|(_, _, d)| d) {
            assert!(skf_fields(d).is_none(), "a fragment was sent");
        }
        // The IKE_AUTH messages went whole, larger than the size.
        let request = &sent_of(&w.a, ExchangeType::IkeAuth, false)[0];
        assert!(request.len() + IPV4_UDP > usize::from(SMALL));
    }
}

#[test]
fn a_lost_fragment_makes_the_initiator_resend_the_same_fragments() {
    let mut w = World::with(fragmenting(SMALL), fragmenting(SMALL));
    let mut dropped = false;
    w.filter = Box::new(move |p| {
        let second = is_exchange(&p.data, ExchangeType::IkeAuth, false)
            && skf_fields(&p.data).is_some_and(|(number, _, _)| number == 2);
        if second && !dropped {
            dropped = true;
            return false;
        }
        true
    });
    w.handshake();
    assert!(w.a.established().is_empty());
    assert!(w.b.established().is_empty());
    // B holds what came, authenticated, until the rest does.
    let b_spi = w.b.engine.ike_spis()[0];
    assert!(w.b.engine.ike(b_spi).unwrap().fragments.held_bytes() > 0);
    w.advance(); // 2 s: A retransmits every fragment.
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    let requests = sent_of(&w.a, ExchangeType::IkeAuth, false);
    let n = requests.len() / 2;
    assert_eq!(requests.len(), 2 * n);
    assert_fragments(&requests[..n], Some(PayloadType::IdInitiator), SMALL);
    assert_eq!(
        requests[..n],
        requests[n..],
        "the retransmission is the same fragments, byte for byte (RFC 7383 §2.6)"
    );
    // B checked the initiator's AUTH once: the duplicates were ignored.
    assert_eq!(count_verify_requests(&w.b), 1);
    assert_eq!(w.b.engine.fragment_memory_used(), 0);
}

/// How many AUTH checks `node` asked ca for.
fn count_verify_requests(node: &Node) -> usize {
    node.ca_requests
        .iter()
        .filter(|r| matches!(r, Ikev2ToCa::VerifyAuth { .. }))
        .count()
}

#[test]
fn a_lost_response_fragment_is_answered_from_the_cache_once_per_retransmission() {
    let mut w = World::with(fragmenting(SMALL), fragmenting(SMALL));
    let mut dropped = false;
    w.filter = Box::new(move |p| {
        let last = is_exchange(&p.data, ExchangeType::IkeAuth, true)
            && skf_fields(&p.data).is_some_and(|(number, total, _)| number == total);
        if last && !dropped {
            dropped = true;
            return false;
        }
        true
    });
    w.handshake();
    assert_eq!(w.b.established().len(), 1);
    assert!(w.a.established().is_empty());
    w.advance();
    assert_one_matching_ike(&w);
    let responses = sent_of(&w.b, ExchangeType::IkeAuth, true);
    let m = responses.len() / 2;
    // All n request fragments came again, but only fragment 1 made B
    // resend (RFC 7383 §2.6.1): the response twice, not n + 1 times.
    assert_eq!(responses.len(), 2 * m);
    assert_fragments(&responses[..m], Some(PayloadType::IdResponder), SMALL);
    assert_eq!(responses[..m], responses[m..]);
    assert_eq!(count_verify_requests(&w.b), 1);
}

#[test]
fn reordered_and_duplicated_fragments_reassemble_once() {
    let mut w = World::with(fragmenting(SMALL), fragmenting(SMALL));
    w.configure(vec![a_policy()], vec![b_policy()]);
    // Every batch delivered backwards and twice, pairs swapped.
    w.deliver_backwards_twice_swapped();
    w.settle();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    assert!(sent_of(&w.a, ExchangeType::IkeAuth, false).len() >= 2);
    assert_eq!(count_verify_requests(&w.b), 1);
    assert_eq!(count_verify_requests(&w.a), 1);
    assert_eq!(w.b.sas.len(), 2);
}

// ----------------------------------------------------------------------
// Hostile fragments, made with A's keys on an established IKE SA: they
// pass B's integrity check unless said otherwise.
// ----------------------------------------------------------------------

/// An established pair; returns (A's SPI, B's SPI).
fn established_pair(sb: Settings) -> (World, u64, u64) {
    let mut w = World::with(settings(), sb);
    w.handshake();
    let a = assert_one_matching_ike(&w);
    let b = w.b.established()[0];
    (w, a, b)
}

/// The chain of `payloads` split into `total` pieces (the last may be
/// shorter or empty), as a sender cuts it (RFC 7383 §2.5: anywhere).
fn split(payloads: &[Payload], total: u16) -> (PayloadType, Vec<Vec<u8>>) {
    let (first, content) = iked_common::wire::encode_payloads(payloads).unwrap();
    let piece = content.len().div_ceil(usize::from(total)).max(1);
    let mut pieces: Vec<Vec<u8>> = content.chunks(piece).map(<[u8]>::to_vec).collect();
    pieces.resize(usize::from(total), Vec::new());
    (first, pieces)
}

/// Fragment `number` of `total` of A's INFORMATIONAL request `message_id`
/// carrying `piece`, sealed with A's keys.
fn forged(
    w: &mut World,
    spi: u64,
    message_id: u32,
    (number, total): (u16, u16),
    first: PayloadType,
    piece: &[u8],
) -> Packet {
    let sa = w.a.engine.ike(spi).unwrap();
    let header =
        w.a.engine
            .header_for(sa, ExchangeType::Informational, message_id, false);
    let (local, peer) = (sa.local, sa.peer);
    let data =
        w.a.engine
            .seal_fragment(spi, &header, (number, total), first, piece)
            .unwrap();
    Packet {
        from: local,
        to: peer,
        data,
    }
}

/// A's next request message ID on its SA (what B expects).
fn next_id(w: &World, spi: u64) -> u32 {
    w.a.engine.ike(spi).unwrap().next_message_id
}

/// A status notify B ignores: a request carrying it is answered empty.
fn filler(len: usize) -> Vec<Payload> {
    vec![Payload::Notify(Notify::new(
        NotifyType::from_value(40_000),
        vec![0x5a; len],
    ))]
}

fn b_held(w: &World, b: u64) -> usize {
    w.b.engine.ike(b).unwrap().fragments.held_bytes()
}

/// B's INFORMATIONAL responses to message `id`.
fn b_answers(w: &World, id: u32) -> usize {
    sent_of(&w.b, ExchangeType::Informational, true)
        .iter()
        .filter(|d| Header::decode(d).unwrap().header.message_id == id)
        .count()
}

#[test]
fn forged_fragments_in_any_order_complete_a_request_that_is_answered() {
    let (mut w, a, b) = established_pair(settings());
    let id = next_id(&w, a);
    let (first, pieces) = split(&filler(300), 4);
    // 3, 1, 1 again, 4, 2: the duplicate is ignored, the last completes.
    for number in [3u16, 1, 1, 4] {
        let p = forged(
            &mut w,
            a,
            id,
            (number, 4),
            first,
            &pieces[usize::from(number) - 1],
        );
        w.deliver(p);
        assert!(b_held(&w, b) > 0);
        assert_eq!(b_answers(&w, id), 0);
    }
    let held = b_held(&w, b);
    let p = forged(&mut w, a, id, (2, 4), first, &pieces[1]);
    w.deliver(p);
    w.b.step(w.now);
    assert!(held > 0);
    assert_eq!(b_held(&w, b), 0);
    assert_eq!(b_answers(&w, id), 1, "the reassembled request is answered");
    assert_eq!(w.b.engine.fragment_memory_used(), 0);
}

#[test]
fn more_fragments_than_the_cap_are_dropped_unkept() {
    let (mut w, a, b) = established_pair(settings());
    let cap = Settings::default().max_fragments;
    let id = next_id(&w, a);
    let log = capture_info_log(|| {
        for number in [1, 2, cap + 1] {
            let p = forged(
                &mut w,
                a,
                id,
                (number, cap + 1),
                PayloadType::Notify,
                &[0; 16],
            );
            w.deliver(p);
        }
    });
    assert_eq!(b_held(&w, b), 0);
    assert_eq!(w.b.engine.fragment_memory_used(), 0);
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("more than {cap} fragments, dropped"))),
        "{log:#?}"
    );
    // At the cap itself a message is taken.
    let p = forged(&mut w, a, id, (1, cap), PayloadType::Notify, &[0; 16]);
    w.deliver(p);
    assert!(b_held(&w, b) > 0);
}

#[test]
fn a_message_larger_than_the_reassembly_cap_is_discarded() {
    let mut sb = settings();
    sb.max_reassembled_len = 4096;
    let (mut w, a, b) = established_pair(sb);
    let id = next_id(&w, a);
    let (first, pieces) = split(&filler(7000), 3);
    let log = capture_info_log(|| {
        for number in 1..=2u16 {
            let p = forged(
                &mut w,
                a,
                id,
                (number, 3),
                first,
                &pieces[usize::from(number) - 1],
            );
            w.deliver(p);
        }
    });
    // Two thirds of 7000 bytes pass 4096: the whole message went.
    assert_eq!(b_held(&w, b), 0);
    assert_eq!(w.b.engine.fragment_memory_used(), 0);
    assert!(
        log.iter()
            .any(|l| l.contains("would exceed 4096 bytes, its fragments discarded")),
        "{log:#?}"
    );
    let p = forged(&mut w, a, id, (3, 3), first, &pieces[2]);
    w.deliver(p);
    w.b.step(w.now);
    assert_eq!(b_answers(&w, id), 0);
}

#[test]
fn a_fragment_with_a_bad_icv_is_not_kept_and_the_good_copy_completes() {
    let (mut w, a, b) = established_pair(settings());
    let id = next_id(&w, a);
    let (first, pieces) = split(&filler(200), 2);
    let mut bad = forged(&mut w, a, id, (1, 2), first, &pieces[0]);
    let last = bad.data.len() - 1;
    bad.data[last] ^= 0x01;
    w.deliver(bad);
    assert_eq!(
        b_held(&w, b),
        0,
        "an unauthenticated fragment is never kept"
    );
    assert_eq!(w.b.engine.fragment_memory_used(), 0);
    let second = forged(&mut w, a, id, (2, 2), first, &pieces[1]);
    w.deliver(second);
    w.b.step(w.now);
    assert_eq!(b_answers(&w, id), 0);
    let good = forged(&mut w, a, id, (1, 2), first, &pieces[0]);
    w.deliver(good);
    w.b.step(w.now);
    assert_eq!(b_answers(&w, id), 1);
}

#[test]
fn a_newer_set_restarts_the_reassembly_and_an_older_one_is_dropped() {
    let (mut w, a, b) = established_pair(settings());
    let id = next_id(&w, a);
    let (first3, pieces3) = split(&filler(300), 3);
    let (first2, pieces2) = split(&filler(300), 2);
    // Fragment 1 of a set of 2, then a set of 3 begins (§2.6: start over
    // with just it), then the set of 2's second fragment: older, dropped.
    let p = forged(&mut w, a, id, (1, 2), first2, &pieces2[0]);
    w.deliver(p);
    let p = forged(&mut w, a, id, (2, 3), first3, &pieces3[1]);
    w.deliver(p);
    assert_eq!(b_held(&w, b), pieces3[1].len());
    let p = forged(&mut w, a, id, (2, 2), first2, &pieces2[1]);
    w.deliver(p);
    w.b.step(w.now);
    assert_eq!(b_answers(&w, id), 0, "the older set did not complete");
    assert_eq!(b_held(&w, b), pieces3[1].len());
    for number in [1u16, 3] {
        let p = forged(
            &mut w,
            a,
            id,
            (number, 3),
            first3,
            &pieces3[usize::from(number) - 1],
        );
        w.deliver(p);
    }
    w.b.step(w.now);
    assert_eq!(b_answers(&w, id), 1);
    assert_eq!(b_held(&w, b), 0);
}

#[test]
fn fragments_of_other_message_ids_are_dropped() {
    let (mut w, a, b) = established_pair(settings());
    let id = next_id(&w, a);
    // Ahead of the window, and an old request that was never the last.
    for other in [id + 1, id + 5, id.wrapping_sub(2)] {
        let p = forged(&mut w, a, other, (1, 2), PayloadType::Notify, &[0; 40]);
        w.deliver(p);
    }
    assert_eq!(b_held(&w, b), 0);
    // The last request answered (IKE_AUTH, 1): only fragment 1 of a copy
    // of it brings the cached response again (RFC 7383 §2.6.1).
    let answered = id - 1;
    let before = sent_of(&w.b, ExchangeType::IkeAuth, true).len();
    let p = forged(
        &mut w,
        a,
        answered,
        (2, 2),
        PayloadType::NoNextPayload,
        &[0; 40],
    );
    w.deliver(p);
    w.b.step(w.now);
    assert_eq!(sent_of(&w.b, ExchangeType::IkeAuth, true).len(), before);
    assert_eq!(b_held(&w, b), 0);
    let p = forged(
        &mut w,
        a,
        answered,
        (1, 2),
        PayloadType::IdInitiator,
        &[0; 40],
    );
    w.deliver(p);
    w.b.step(w.now);
    assert_eq!(sent_of(&w.b, ExchangeType::IkeAuth, true).len(), before + 1);
    assert_eq!(
        b_held(&w, b),
        0,
        "a copy of an answered request is not kept"
    );
}

#[test]
fn fragments_are_dropped_where_fragmentation_was_not_negotiated() {
    let (mut w, a, b) = established_pair(without_fragmentation());
    let id = next_id(&w, a);
    let (first, pieces) = split(&filler(100), 2);
    for number in 1..=2u16 {
        let p = forged(
            &mut w,
            a,
            id,
            (number, 2),
            first,
            &pieces[usize::from(number) - 1],
        );
        w.deliver(p);
    }
    w.b.step(w.now);
    assert_eq!(b_held(&w, b), 0);
    assert_eq!(b_answers(&w, id), 0);
}

#[test]
fn a_never_completed_message_is_freed_after_the_timeout() {
    let (mut w, a, b) = established_pair(settings());
    let id = next_id(&w, a);
    let (first, pieces) = split(&filler(300), 3);
    let p = forged(&mut w, a, id, (1, 3), first, &pieces[0]);
    w.deliver(p);
    let held = b_held(&w, b);
    assert!(held > 0);
    assert!(w.b.engine.fragment_memory_used() > held);
    let timeout = Settings::default().fragment_timeout;
    // A later fragment does not extend the deadline.
    w.advance_by(timeout / 2);
    let p = forged(&mut w, a, id, (2, 3), first, &pieces[1]);
    w.deliver(p);
    w.advance_by(timeout / 2 - Duration::from_secs(1));
    assert!(b_held(&w, b) > held);
    w.advance_by(Duration::from_secs(1));
    assert_eq!(
        b_held(&w, b),
        0,
        "freed {timeout:?} after the first fragment"
    );
    assert_eq!(w.b.engine.fragment_memory_used(), 0);
    // B acts as if no request came: the SA is up, the last piece alone
    // completes nothing, a whole new set is taken.
    assert_eq!(w.b.established(), vec![b]);
    let p = forged(&mut w, a, id, (3, 3), first, &pieces[2]);
    w.deliver(p);
    w.b.step(w.now);
    assert_eq!(b_answers(&w, id), 0);
}

#[test]
fn many_sas_with_partial_messages_stay_under_the_memory_cap_and_are_freed() {
    const SAS: usize = 60;
    let mut sa = fragmenting(SMALL);
    sa.retransmit_tries = 100;
    let mut sb = fragmenting(SMALL);
    sb.half_open_per_source = 0;
    sb.cookie_threshold = 10_000;
    sb.half_open_timeout = Duration::from_secs(600);
    // Room for about a dozen first fragments.
    let per_partial = 600;
    sb.fragment_memory_cap = 12 * per_partial;
    let cap = sb.fragment_memory_cap;
    let mut w = World::with(sa, sb);
    // Only fragment 1 of each IKE_AUTH request gets through: every SA of
    // B holds a partial message.
    w.filter = Box::new(|p| {
        !(is_exchange(&p.data, ExchangeType::IkeAuth, false)
            && skf_fields(&p.data).is_some_and(|(number, _, _)| number != 1))
    });
    let log = capture_info_log(|| {
        w.configure(vec![a_policy()], vec![b_policy()]);
        w.settle();
        for _ in 1..SAS {
            w.a.engine.initiate("ab", None, 0).unwrap();
            w.settle();
        }
    });
    assert!(
        log.iter().any(|l| l.contains(&format!(
            "reassembly buffers of all IKE SAs at their cap of {cap} bytes, dropped"
        ))),
        "{log:#?}"
    );
    assert_eq!(w.b.engine.ike_sa_count(), SAS);
    let used = w.b.engine.fragment_memory_used();
    let holding =
        w.b.engine
            .ike_spis()
            .into_iter()
            .filter(|s| w.b.engine.ike(*s).unwrap().fragments.reassembling())
            .count();
    println!(
        "{SAS} SAs with a partial IKE_AUTH: {holding} kept one, {used} bytes of a {cap}-byte cap"
    );
    assert!(used <= cap, "{used} > {cap}");
    assert!(holding > 0 && holding < SAS, "{holding} SAs reassembling");
    // Nothing more arrives: every buffer goes when its time is up, the
    // SAs themselves stay (half-open for 600 s).
    w.filter = Box::new(|_| false);
    w.advance_by(Settings::default().fragment_timeout + Duration::from_secs(1));
    assert_eq!(w.b.engine.fragment_memory_used(), 0);
    assert_eq!(w.b.engine.ike_sa_count(), SAS);
    assert!(w.b.engine.ike_spis().into_iter().all(|s| !w
        .b
        .engine
        .ike(s)
        .unwrap()
        .fragments
        .reassembling()));
}

#[test]
fn an_ike_sa_removed_mid_reassembly_gives_its_memory_back() {
    let (mut w, a, b) = established_pair(settings());
    let id = next_id(&w, a);
    let (first, pieces) = split(&filler(300), 2);
    let p = forged(&mut w, a, id, (1, 2), first, &pieces[0]);
    w.deliver(p);
    assert!(w.b.engine.fragment_memory_used() > 0);
    w.b.engine.handle_control(
        w.now,
        1,
        ControlCommand::Terminate {
            policy: "ba".into(),
        },
    );
    w.settle();
    assert!(w.b.engine.ike(b).is_none());
    assert_eq!(w.b.engine.fragment_memory_used(), 0);
}

#[test]
fn an_sa_keeps_little_for_fragmentation_when_idle() {
    // 100k IKE SAs: what each carries for RFC 7383 while nothing is
    // being reassembled.
    let size = std::mem::size_of::<super::super::state::Fragments>();
    println!("per-SA fragmentation state: {size} bytes");
    assert!(size <= 48, "{size} bytes");
}

#[test]
fn the_fragment_size_counts_ip_udp_and_the_non_esp_marker() {
    let w = World::new();
    let engine = &w.a.engine;
    let limit = |local: &str, peer: &str| {
        let sa = super::super::state::IkeSa::new(
            "p".into(),
            local.parse().unwrap(),
            peer.parse().unwrap(),
            iked_common::wire::Identity::Fqdn("a".into()),
            w.now,
        );
        engine.ike_message_limit(&sa)
    };
    // 1280 bytes less IPv4 (20) or IPv6 (40), UDP (8), and on the NAT-T
    // port the four-octet non-ESP marker.
    assert_eq!(limit("192.0.2.1:500", "192.0.2.2:500"), 1280 - 28);
    assert_eq!(limit("192.0.2.1:4500", "192.0.2.2:4500"), 1280 - 32);
    assert_eq!(limit("[2001:db8::1]:500", "[2001:db8::2]:500"), 1280 - 48);
    assert_eq!(limit("[2001:db8::1]:4500", "[2001:db8::2]:4500"), 1280 - 52);
}

#[test]
fn behind_a_nat_fragments_go_on_the_natt_port_within_the_size_with_the_marker() {
    let mut w = World::with(fragmenting(SMALL), fragmenting(SMALL));
    configure_a_behind_nat(&mut w);
    assert_one_matching_ike(&w);
    let on_natt: Vec<Vec<u8>> =
        w.a.sent
            .iter()
            .filter(|(local, _, d)| {
                local.port() == 4500 && is_exchange(d, ExchangeType::IkeAuth, false)
            })
            .map(|(_, _, d)| d.clone())
            .collect();
    // The shell adds the four-octet non-ESP marker: 4 bytes less for IKE.
    assert_fragments(&on_natt, Some(PayloadType::IdInitiator), SMALL - 4);
    assert_eq!(
        on_natt.len(),
        sent_of(&w.a, ExchangeType::IkeAuth, false).len()
    );
}
