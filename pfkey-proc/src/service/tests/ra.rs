//! The service with road warriors: one `peer any` flow shared by many
//! clients, each with its lease and reqid; what a compromised ikev2 might
//! try with another client's lease is refused before the kernel sees it.

use super::*;
use iked_common::config::Prefix;
use iked_common::kernel::FlowPeer;

pub(super) const GATEWAY: &str = "198.18.0.1";

/// `from 10.1.0.0/16 to dynamic`, `config address 10.9.0.0/24`, peer any.
pub(super) fn road_warriors() -> Flow {
    Flow {
        name: "rw".into(),
        selector: Selector::between(ip("10.1.0.0"), 16, ip("10.9.0.0"), 24),
        local: ip(GATEWAY),
        peer: FlowPeer::Range(Prefix {
            addr: ip("0.0.0.0"),
            len: 0,
        }),
        pools: vec![Prefix {
            addr: ip("10.9.0.0"),
            len: 24,
        }],
        ..flow()
    }
}

pub(super) fn rw_harness() -> Harness {
    let mut h = harness();
    h.service.apply_config(&ChildConfig::Pfkey {
        generation: 2,
        flows: vec![road_warriors()],
        routing: Default::default(),
    });
    h
}

/// A client's Child SA pair and policies: outbound to `lease` via `peer`.
pub(super) fn client_sas(peer: &str, lease: &str, spi: u32, reqid: u32) -> (SaParams, SaParams) {
    let out_sel = Selector::between(ip("10.1.0.0"), 16, ip(lease), 32);
    let out = SaParams {
        reqid,
        ..esp_gcm_sa(GATEWAY, peer, spi, out_sel)
    };
    let inb = SaParams {
        reqid,
        ..esp_gcm_sa(peer, GATEWAY, spi + 1, out_sel.reversed())
    };
    (out, inb)
}

pub(super) fn client_policy(
    peer: &str,
    lease: &str,
    direction: PolicyDirection,
    reqid: u32,
) -> PolicyParams {
    let out_sel = Selector::between(ip("10.1.0.0"), 16, ip(lease), 32);
    let (selector, src, dst) = match direction {
        PolicyDirection::Out => (out_sel, GATEWAY, peer),
        _ => (out_sel.reversed(), peer, GATEWAY),
    };
    PolicyParams {
        selector,
        direction,
        priority: 100,
        template: SaTemplate {
            src: ip(src),
            dst: ip(dst),
            protocol: IpsecProtocol::Esp,
            mode: IpsecMode::Tunnel,
            reqid,
        },
    }
}

/// Installs a client's Child SA pair (SPIs `spi` out, `spi` + 1 in) and
/// its three policies with request ids after `last_id`, each done; the
/// last id used is returned.
pub(super) fn install_client(
    h: &mut Harness,
    last_id: u64,
    peer: &str,
    lease: &str,
    spi: u32,
    reqid: u32,
) -> u64 {
    let mut id = last_id;
    let (out, inb) = client_sas(peer, lease, spi, reqid);
    for sa in [out, inb] {
        id += 1;
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa { id, sa });
        assert_eq!(
            o.to_ikev2,
            vec![PfkeyToIkev2::Done { id }],
            "{peer} {lease}"
        );
    }
    for direction in [
        PolicyDirection::Out,
        PolicyDirection::In,
        PolicyDirection::Fwd,
    ] {
        id += 1;
        let policy = client_policy(peer, lease, direction, reqid);
        let o = h
            .service
            .handle_request(Ikev2ToPfkey::AddPolicy { id, policy });
        assert_eq!(
            o.to_ikev2,
            vec![PfkeyToIkev2::Done { id }],
            "{peer} {lease}"
        );
    }
    id
}

pub(super) fn failed(o: &Outcome) -> &KernelFailure {
    match &o.to_ikev2[..] {
        [PfkeyToIkev2::Failed { failure, .. }] => failure,
        other => panic!("expected a failure: {other:?}"),
    }
}

#[test]
fn many_clients_share_one_flow_each_with_its_lease_and_reqid() {
    let mut h = rw_harness();
    // Two clients behind one NAT (same outer address) and a third.
    let clients = [
        ("203.0.113.7", "10.9.0.5", 0x1000, REQID),
        ("203.0.113.7", "10.9.0.6", 0x2000, REQID + 1),
        ("198.51.100.3", "10.9.0.7", 0x3000, REQID + 2),
    ];
    let mut id = 0;
    for (peer, lease, spi, reqid) in clients {
        id = install_client(&mut h, id, peer, lease, spi, reqid);
    }
    assert_eq!(h.service.installed().count(), 15);
    assert_eq!(h.service.leases.len(), 3);
    assert_eq!(
        h.service.leases.owner(ip("10.9.0.6")),
        Some(ip("203.0.113.7"))
    );
    // Each client's reqid is its own: another peer address may not use it,
    // even with a free lease.
    assert_eq!(h.service.reqids.len(), 3);
    let (stolen, _) = client_sas("198.51.100.3", "10.9.0.8", 0x4000, REQID);
    let o = h
        .service
        .handle_request(Ikev2ToPfkey::AddSa { id: 99, sa: stolen });
    assert_eq!(
        failed(&o).message,
        format!(
            "refused: reqid {REQID} belongs to policy rw (198.18.0.1 - 203.0.113.7), \
             not to rw (198.18.0.1 - 198.51.100.3)"
        )
    );
    h.service.flush_ours();
    assert!(h.service.leases.is_empty(), "released with the entries");
    assert!(h.service.reqids.is_empty());
}

#[test]
fn another_clients_lease_is_refused_before_the_kernel() {
    let mut h = rw_harness();
    let (out, inb) = client_sas("203.0.113.7", "10.9.0.5", 0x1000, REQID);
    for (id, sa) in [(1, out), (2, inb)] {
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa { id, sa });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id }]);
    }
    h.calls.lock().unwrap().clear();
    // A compromised ikev2 names 10.9.0.5 for another peer: SA and policy.
    let (hijack, _) = client_sas("198.51.100.3", "10.9.0.5", 0x5000, REQID + 1);
    let o = h
        .service
        .handle_request(Ikev2ToPfkey::AddSa { id: 3, sa: hijack });
    assert_eq!(failed(&o).kind, FailureKind::NotPermitted);
    assert_eq!(
        failed(&o).message,
        "refused: SA 198.18.0.1 -> 198.51.100.3 spi 0x00005000: pool address 10.9.0.5 is \
         installed for peer 203.0.113.7, not 198.51.100.3"
    );
    let policy = client_policy("198.51.100.3", "10.9.0.5", PolicyDirection::Out, REQID + 1);
    let o = h
        .service
        .handle_request(Ikev2ToPfkey::AddPolicy { id: 4, policy });
    assert!(
        failed(&o)
            .message
            .contains("pool address 10.9.0.5 is installed for peer 203.0.113.7"),
        "{}",
        failed(&o).message
    );
    // The whole pool for one peer: refused whatever is installed.
    let mut wide = client_policy("198.51.100.3", "10.9.0.5", PolicyDirection::Out, REQID + 1);
    wide.selector.dst = ip("10.9.0.0");
    wide.selector.dst_prefix = 24;
    let o = h.service.handle_request(Ikev2ToPfkey::AddPolicy {
        id: 5,
        policy: wide,
    });
    assert!(
        failed(&o).message.contains("overlaps pool 10.9.0.0/24"),
        "{}",
        failed(&o).message
    );
    assert!(
        h.calls.lock().unwrap().is_empty(),
        "none reached the kernel"
    );
    assert!(o.to_parent.is_empty());

    // Once the first client's entries are gone, the lease may go to another.
    for (id, spi, src, dst) in [
        (6, 0x1000, GATEWAY, "203.0.113.7"),
        (7, 0x1001, "203.0.113.7", GATEWAY),
    ] {
        let sa = SaId {
            src: ip(src),
            dst: ip(dst),
            protocol: IpsecProtocol::Esp,
            spi,
        };
        let o = h.service.handle_request(Ikev2ToPfkey::DeleteSa { id, sa });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id }]);
    }
    let (next, _) = client_sas("198.51.100.3", "10.9.0.5", 0x5000, REQID + 1);
    let o = h
        .service
        .handle_request(Ikev2ToPfkey::AddSa { id: 8, sa: next });
    assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 8 }]);
}

#[test]
fn a_reload_keeps_range_entries_its_flows_still_admit() {
    let mut h = rw_harness();
    let (out, _) = client_sas("203.0.113.7", "10.9.0.5", 0x1000, REQID);
    h.service
        .handle_request(Ikev2ToPfkey::AddSa { id: 1, sa: out });
    let o = h.service.apply_config(&ChildConfig::Pfkey {
        generation: 3,
        flows: vec![road_warriors()],
        routing: Default::default(),
    });
    assert!(o.to_parent.is_empty(), "still admitted: {o:?}");
    // A narrower `peer` range that no longer admits the client: it goes.
    let narrower = Flow {
        peer: FlowPeer::Range(Prefix {
            addr: ip("198.51.100.0"),
            len: 24,
        }),
        ..road_warriors()
    };
    let o = h.service.apply_config(&ChildConfig::Pfkey {
        generation: 4,
        flows: vec![narrower],
        routing: Default::default(),
    });
    assert_eq!(o.to_parent.len(), 1, "{o:?}");
    assert_eq!(h.service.installed().count(), 0);
}

#[test]
fn a_reload_keeps_lease_policies_of_a_pool_beside_the_flows_networks() {
    // `to 10.2.0.0/16` and `config address 10.9.0.0/24`: the lease's
    // policy lies outside the flow's selector but inside its pool.
    let beside = Flow {
        selector: Selector::between(ip("10.1.0.0"), 16, ip("10.2.0.0"), 16),
        ..road_warriors()
    };
    let mut h = harness();
    let apply = |h: &mut Harness, generation, flows| {
        h.service.apply_config(&ChildConfig::Pfkey {
            generation,
            flows,
            routing: Default::default(),
        })
    };
    apply(&mut h, 2, vec![beside.clone()]);
    let policy = client_policy("203.0.113.7", "10.9.0.5", PolicyDirection::Out, REQID);
    let o = h
        .service
        .handle_request(Ikev2ToPfkey::AddPolicy { id: 1, policy });
    assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 1 }]);
    let o = apply(&mut h, 3, vec![beside.clone()]);
    assert!(o.to_parent.is_empty(), "kept: {o:?}");
    // Without the pool the lease's policy is outside every flow: removed.
    let o = apply(
        &mut h,
        4,
        vec![Flow {
            pools: Vec::new(),
            ..beside
        }],
    );
    assert_eq!(o.to_parent.len(), 1, "{o:?}");
}
