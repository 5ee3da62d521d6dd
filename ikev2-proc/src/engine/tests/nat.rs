//! NAT detection and UDP encapsulation (RFC 7296 section 2.23, RFC 3948).

use super::*;

#[test]
fn nat_is_detected_and_both_sides_float_to_4500() {
    let mut w = World::new();
    configure_a_behind_nat(&mut w);
    let public = NAT_PUBLIC;
    let ike = assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    let sa_a = w.a.engine.ike(ike).unwrap();
    assert!(sa_a.natt && sa_a.nat_detected);
    assert_eq!(sa_a.local.port(), 4500);
    let b_ike = w.b.established()[0];
    let sa_b = w.b.engine.ike(b_ike).unwrap();
    assert!(sa_b.natt);
    assert_eq!(sa_b.peer, SocketAddr::new(ip(public), 14500));
    // IKE_AUTH went from and to port 4500.
    let auth =
        w.a.sent
            .iter()
            .find(|(_, _, d)| {
                Header::decode(d).is_ok_and(|h| h.header.exchange == ExchangeType::IkeAuth)
            })
            .unwrap();
    assert_eq!((auth.0.port(), auth.1.port()), (4500, 4500));
    // ESP is UDP-encapsulated on both sides, towards the NAT's mapping.
    for sa in w.b.sas.values() {
        let encap = sa.encap.expect("encapsulated");
        assert!(encap.src_port == 14500 || encap.dst_port == 14500);
    }
    for sa in w.a.sas.values() {
        assert!(sa.encap.is_some());
    }
    // Only A is behind the NAT: A keeps its mapping alive, B does not.
    assert!(sa_a.behind_nat && !sa_b.behind_nat);
    w.advance_by(Duration::from_secs(61));
    assert_eq!(w.a.keepalives.len(), 3, "{:?}", w.a.keepalives);
    assert!(w.b.keepalives.is_empty());
    assert_eq!(w.a.keepalives[0].0.port(), 4500);
}

#[test]
fn forced_natt_floats_without_a_nat() {
    let mut w = World::new();
    let mut pa = a_policy();
    pa.force_natt = true;
    w.configure(vec![pa], vec![b_policy()]);
    w.settle();
    let ike = assert_one_matching_ike(&w);
    let sa = w.a.engine.ike(ike).unwrap();
    assert!(sa.natt && !sa.nat_detected);
    assert!(w.b.sas.values().all(|s| s.encap.is_some()));
}

#[test]
fn ike_on_port_4500_without_a_nat_keeps_plain_esp() {
    // A MOBIKE-style initiator floats to 4500 with no NAT on the path:
    // the responder answers there but must not UDP-encapsulate ESP.
    let mut w = World::new();
    w.configure(vec![a_policy()], vec![b_policy()]);
    // Rewrite A's IKE_AUTH to come from and go to port 4500.
    w.filter = Box::new(|_| true);
    let (packets, _) = w.a.step(w.now);
    for p in packets {
        w.deliver(p);
    }
    let (packets, _) = w.b.step(w.now);
    for p in packets {
        w.deliver(p);
    }
    let (packets, _) = w.a.step(w.now);
    for mut p in packets {
        p.from.set_port(4500);
        p.to.set_port(4500);
        w.deliver(p);
    }
    let (packets, _) = w.b.step(w.now);
    let mut saw_4500 = false;
    for mut p in packets {
        saw_4500 |= p.from.port() == 4500 && p.to.port() == 4500;
        p.to.set_port(500);
        w.deliver(p);
    }
    w.settle();
    assert!(
        saw_4500,
        "the responder answers where the request came from"
    );
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    assert!(w.b.sas.values().all(|s| s.encap.is_none()));
    let ib = w.b.established()[0];
    assert!(!w.b.engine.ike(ib).unwrap().natt);
}
