//! Migrate against the recording backend: what reaches the kernel (one
//! XFRM_MSG_MIGRATE per policy, out first, the encapsulation oriented per
//! direction), how our records follow (new SA ids reported to the parent,
//! the lease moved with its client), and every refusal before the kernel.

use super::ra::{client_policy, client_sas, failed, install_client, rw_harness, GATEWAY};
use super::*;
use iked_common::kernel::{Migration, UdpEncap};

const OLD_PEER: &str = "203.0.113.7";
const NEW_PEER: &str = "198.51.100.9";
const LEASE: &str = "10.9.0.5";

/// A road warrior's Child SA (SPIs 0x1000 out, 0x1001 in) with its three
/// policies, installed.
fn installed_client() -> Harness {
    let mut h = rw_harness();
    install_client(&mut h, 0, OLD_PEER, LEASE, 0x1000, REQID);
    h.calls.lock().unwrap().clear();
    h
}

fn migration(new_peer: &str, encap: Option<UdpEncap>) -> Migration {
    let (out, inb) = client_sas(OLD_PEER, LEASE, 0x1000, REQID);
    Migration {
        inbound: inb.id,
        outbound: out.id,
        reqid: REQID,
        mode: IpsecMode::Tunnel,
        policies: [
            PolicyDirection::Fwd,
            PolicyDirection::In,
            PolicyDirection::Out,
        ]
        .into_iter()
        .map(|d| {
            let p = client_policy(OLD_PEER, LEASE, d, REQID);
            (p.selector, d)
        })
        .collect(),
        new_local: ip(GATEWAY),
        new_peer: ip(new_peer),
        encap,
    }
}

fn sa_at(src: &str, dst: &str, spi: u32) -> SaId {
    SaId {
        src: ip(src),
        dst: ip(dst),
        protocol: IpsecProtocol::Esp,
        spi,
    }
}

#[test]
fn a_client_moves_behind_a_nat_with_its_sas_policies_and_lease() {
    let mut h = installed_client();
    let encap = UdpEncap {
        src_port: 4500,
        dst_port: 31000,
    };
    let o = h.service.handle_request(Ikev2ToPfkey::Migrate {
        id: 9,
        migration: migration(NEW_PEER, Some(encap)),
    });
    assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 9 }]);
    let reversed = UdpEncap {
        src_port: 31000,
        dst_port: 4500,
    };
    assert_eq!(
        *h.calls.lock().unwrap(),
        vec![
            Call::Migrate(PolicyDirection::Out, ip(GATEWAY), ip(NEW_PEER), Some(encap)),
            Call::Migrate(
                PolicyDirection::Fwd,
                ip(NEW_PEER),
                ip(GATEWAY),
                Some(reversed)
            ),
            Call::Migrate(
                PolicyDirection::In,
                ip(NEW_PEER),
                ip(GATEWAY),
                Some(reversed)
            ),
        ]
    );
    let (new_out, new_in) = (
        sa_at(GATEWAY, NEW_PEER, 0x1000),
        sa_at(NEW_PEER, GATEWAY, 0x1001),
    );
    assert_eq!(
        o.to_parent,
        vec![
            ChildToParent::KernelEntryAdded(KernelEntry::Sa(new_out)),
            ChildToParent::KernelEntryRemoved(KernelEntry::Sa(sa_at(GATEWAY, OLD_PEER, 0x1000))),
            ChildToParent::KernelEntryAdded(KernelEntry::Sa(new_in)),
            ChildToParent::KernelEntryRemoved(KernelEntry::Sa(sa_at(OLD_PEER, GATEWAY, 0x1001))),
        ]
    );
    assert_eq!(h.service.installed().count(), 5);
    assert_eq!(h.service.leases.owner(ip(LEASE)), Some(ip(NEW_PEER)));
    assert_eq!(
        h.service.reqids.owner_of(REQID).map(|o| o.peer),
        Some(iked_common::kernel::FlowPeer::Address(ip(NEW_PEER))),
        "the client's reqid moved with it"
    );
    assert!(h.service.encapsulated.contains(&new_out));
    // The lease went with its client: the old address may not claim it.
    let (stale, _) = client_sas(OLD_PEER, LEASE, 0x7000, REQID + 1);
    let o = h
        .service
        .handle_request(Ikev2ToPfkey::AddSa { id: 10, sa: stale });
    assert!(
        failed(&o)
            .message
            .contains("installed for peer 198.51.100.9, not 203.0.113.7"),
        "{}",
        failed(&o).message
    );
    // The moved SA is ours under its new id; the old id is not.
    let o = h.service.handle_request(Ikev2ToPfkey::DeleteSa {
        id: 11,
        sa: sa_at(GATEWAY, OLD_PEER, 0x1000),
    });
    assert_eq!(failed(&o).kind, FailureKind::NotPermitted);
    let o = h.service.handle_request(Ikev2ToPfkey::DeleteSa {
        id: 12,
        sa: new_out,
    });
    assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 12 }]);
    // Encapsulated now: back to plain ESP is refused.
    let back = Migration {
        inbound: new_in,
        outbound: new_out,
        ..migration(OLD_PEER, None)
    };
    let o = h.service.handle_request(Ikev2ToPfkey::Migrate {
        id: 13,
        migration: back,
    });
    assert_eq!(failed(&o).kind, FailureKind::NotPermitted);
}

#[test]
fn refused_migrations_never_reach_the_kernel() {
    let natt = |src_port, dst_port| Some(UdpEncap { src_port, dst_port });
    let mut cases: Vec<(Migration, &str)> = vec![
        (
            Migration {
                new_local: ip("198.18.0.99"),
                ..migration(NEW_PEER, None)
            },
            "flow rw installs SAs from 198.18.0.1 only, not 198.18.0.99",
        ),
        (
            migration(NEW_PEER, natt(4501, 31000)),
            "not the NAT-T port 4500",
        ),
        (migration(NEW_PEER, natt(4500, 0)), "to the peer's port 0"),
        (
            Migration {
                mode: IpsecMode::Transport,
                ..migration(NEW_PEER, None)
            },
            "transport mode: the selectors name the old addresses",
        ),
        (
            Migration {
                reqid: REQID + 5,
                ..migration(NEW_PEER, None)
            },
            "does not have reqid",
        ),
        (
            Migration {
                outbound: sa_at(GATEWAY, OLD_PEER, 0x4444),
                ..migration(NEW_PEER, None)
            },
            "is not an SA installed by us",
        ),
        (
            Migration {
                policies: Vec::new(),
                ..migration(NEW_PEER, None)
            },
            "an out policy and an in or fwd policy are needed",
        ),
        (
            Migration {
                new_peer: ip("2001:db8::9"),
                ..migration(NEW_PEER, None)
            },
            "new addresses of two families",
        ),
    ];
    let mut swapped = migration(NEW_PEER, None);
    std::mem::swap(&mut swapped.inbound, &mut swapped.outbound);
    cases.push((swapped, "not its outbound SA"));
    for (i, (m, reason)) in cases.into_iter().enumerate() {
        let mut h = installed_client();
        let o = h.service.handle_request(Ikev2ToPfkey::Migrate {
            id: i as u64,
            migration: m,
        });
        let f = failed(&o);
        assert!(f.message.contains(reason), "case {i}: {}", f.message);
        assert!(h.calls.lock().unwrap().is_empty(), "case {i}");
        assert!(o.to_parent.is_empty(), "case {i}");
        assert_eq!(h.service.leases.owner(ip(LEASE)), Some(ip(OLD_PEER)));
    }
}

#[test]
fn a_site_to_site_flow_admits_only_its_peer() {
    // The static flow of the plain harness: peer 192.0.2.2 only. A NAT
    // mapping change (same address, new port) is fine; a new address not.
    let mut h = harness();
    let out = sa("192.0.2.1", "192.0.2.2", 0x2000, site());
    let inb = sa("192.0.2.2", "192.0.2.1", 0x2001, site().reversed());
    for (id, sa) in [(1, out.clone()), (2, inb.clone())] {
        h.service.handle_request(Ikev2ToPfkey::AddSa { id, sa });
    }
    let mut inp = out_policy();
    inp.direction = PolicyDirection::In;
    inp.selector = site().reversed();
    inp.template.src = ip("192.0.2.2");
    inp.template.dst = ip("192.0.2.1");
    for (id, policy) in [(3, out_policy()), (4, inp)] {
        h.service
            .handle_request(Ikev2ToPfkey::AddPolicy { id, policy });
    }
    let m = Migration {
        inbound: inb.id,
        outbound: out.id,
        reqid: REQID,
        mode: IpsecMode::Tunnel,
        policies: vec![
            (site(), PolicyDirection::Out),
            (site().reversed(), PolicyDirection::In),
        ],
        new_local: ip("192.0.2.1"),
        new_peer: ip("192.0.2.9"),
        encap: None,
    };
    let o = h.service.handle_request(Ikev2ToPfkey::Migrate {
        id: 5,
        migration: m.clone(),
    });
    assert!(
        failed(&o)
            .message
            .contains("flow site admits peers 192.0.2.2, not 192.0.2.9"),
        "{}",
        failed(&o).message
    );
    h.calls.lock().unwrap().clear();
    let nat = Migration {
        new_peer: ip("192.0.2.2"),
        encap: Some(UdpEncap {
            src_port: 4500,
            dst_port: 40000,
        }),
        ..m
    };
    let o = h.service.handle_request(Ikev2ToPfkey::Migrate {
        id: 6,
        migration: nat,
    });
    assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 6 }]);
    assert_eq!(h.calls.lock().unwrap().len(), 2);
    assert!(o.to_parent.is_empty(), "same ids: nothing to report");
}

#[test]
fn a_rekey_in_progress_blocks_the_move_with_its_reason() {
    let mut h = installed_client();
    // The rekey's new outbound SA: same gateways, same reqid.
    let (new_out, _) = client_sas(OLD_PEER, LEASE, 0x3000, REQID);
    h.service.handle_request(Ikev2ToPfkey::AddSa {
        id: 20,
        sa: new_out,
    });
    h.calls.lock().unwrap().clear();
    let o = h.service.handle_request(Ikev2ToPfkey::Migrate {
        id: 21,
        migration: migration(NEW_PEER, None),
    });
    assert!(
        failed(&o)
            .message
            .contains("has the same gateways and reqid"),
        "{}",
        failed(&o).message
    );
    assert!(h.calls.lock().unwrap().is_empty());
}

#[test]
fn a_kernel_refusal_is_passed_on_and_the_records_stay() {
    let mut h = installed_client();
    *h.fail_next.lock().unwrap() = Some(crate::backend::kernel_failure("migrate", 2, None));
    let o = h.service.handle_request(Ikev2ToPfkey::Migrate {
        id: 30,
        migration: migration(NEW_PEER, None),
    });
    let f = failed(&o);
    assert_eq!(f.kind, FailureKind::NotFound);
    assert!(f.message.ends_with("(nothing was moved)"), "{}", f.message);
    assert!(o.to_parent.is_empty());
    assert_eq!(
        h.calls.lock().unwrap().len(),
        1,
        "stopped at the first refusal"
    );
    for sa in [
        sa_at(GATEWAY, OLD_PEER, 0x1000),
        sa_at(OLD_PEER, GATEWAY, 0x1001),
    ] {
        assert!(h.service.installed.contains(&KernelEntry::Sa(sa)));
    }
}
