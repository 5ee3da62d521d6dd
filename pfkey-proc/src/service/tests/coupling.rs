//! `ikectl show flows|couple|decouple` against the recording backend: our
//! policies leave the kernel and come back, SAs stay, ikev2's policy
//! requests while decoupled are held, and the parent hears of each entry.

use super::*;
use iked_common::ipc::{ControlReply, PfkeyCommand};

/// What the kernel dump shows for `policy` (as installed).
fn dumped(policy: &PolicyParams) -> DumpedPolicy {
    DumpedPolicy {
        selector: policy.selector,
        direction: policy.direction,
        priority: policy.priority,
        template: Some(policy.template),
    }
}

fn reply_of(outcome: &Outcome) -> &ControlReply {
    match outcome.to_parent.last() {
        Some(ChildToParent::ControlResult { id: 7, reply }) => reply,
        other => panic!("no control result last: {other:?}"),
    }
}

fn flows(h: &mut Harness) -> iked_common::ipc::FlowsInfo {
    let o = h.service.control(7, PfkeyCommand::ShowFlows);
    match reply_of(&o) {
        ControlReply::Flows(info) => (**info).clone(),
        other => panic!("not flows: {other:?}"),
    }
}

#[test]
fn decouple_takes_our_policies_out_and_couple_puts_them_back() {
    let mut h = harness();
    h.service.handle_request(Ikev2ToPfkey::AddPolicy {
        id: 1,
        policy: out_policy(),
    });
    h.service.handle_request(Ikev2ToPfkey::AddSa {
        id: 2,
        sa: sa("192.0.2.1", "192.0.2.2", 0x4000, site()),
    });
    h.dumped_policies
        .lock()
        .unwrap()
        .push(dumped(&out_policy()));
    let info = flows(&mut h);
    assert!(info.coupled);
    assert_eq!(info.kernel, "xfrm");
    assert_eq!((info.policies_total, info.sas_total), (1, 1));
    assert_eq!(info.policies[0].direction, "out");
    assert_eq!(info.policies[0].reqid, Some(REQID));
    assert!(info.policies[0].in_kernel);
    assert_eq!(info.sas[0].spi, "00004000");
    assert_eq!(info.sas[0].policy.as_deref(), Some("site"));

    h.calls.lock().unwrap().clear();
    let o = h.service.control(7, PfkeyCommand::Couple(false));
    assert!(matches!(reply_of(&o), ControlReply::Done(_)), "{o:?}");
    assert_eq!(
        *h.calls.lock().unwrap(),
        vec![Call::DeletePolicy(PolicyDirection::Out)],
        "the SA stays"
    );
    assert!(matches!(
        &o.to_parent[0],
        ChildToParent::KernelEntryRemoved(KernelEntry::Policy { .. })
    ));
    h.dumped_policies.lock().unwrap().clear();
    let info = flows(&mut h);
    assert!(!info.coupled);
    assert_eq!(info.policies_total, 1);
    assert!(!info.policies[0].in_kernel, "held");
    assert_eq!(info.sas_total, 1);

    // ikev2 adds a policy meanwhile: held, answered as done.
    let mut inbound = out_policy();
    inbound.direction = PolicyDirection::In;
    inbound.selector = site().reversed();
    inbound.template.src = ip("192.0.2.2");
    inbound.template.dst = ip("192.0.2.1");
    h.calls.lock().unwrap().clear();
    let o = h.service.handle_request(Ikev2ToPfkey::AddPolicy {
        id: 3,
        policy: inbound,
    });
    assert!(matches!(&o.to_ikev2[..], [PfkeyToIkev2::Done { id: 3 }]));
    assert!(h.calls.lock().unwrap().is_empty(), "not in the kernel");

    let o = h.service.control(7, PfkeyCommand::Couple(true));
    assert!(matches!(reply_of(&o), ControlReply::Done(m) if m.contains("2 policies")));
    assert_eq!(
        *h.calls.lock().unwrap(),
        vec![
            Call::AddPolicy(PolicyDirection::Out),
            Call::AddPolicy(PolicyDirection::In)
        ]
    );
    let added = o
        .to_parent
        .iter()
        .filter(|m| matches!(m, ChildToParent::KernelEntryAdded(_)))
        .count();
    assert_eq!(added, 2);
    assert!(o.to_ikev2.is_empty(), "ikev2 hears nothing of it");
    assert!(flows(&mut h).coupled);
    assert_eq!(h.service.installed().count(), 3);
}

#[test]
fn a_policy_deleted_while_decoupled_does_not_come_back() {
    let mut h = harness();
    h.service.handle_request(Ikev2ToPfkey::AddPolicy {
        id: 1,
        policy: out_policy(),
    });
    h.dumped_policies
        .lock()
        .unwrap()
        .push(dumped(&out_policy()));
    h.service.control(7, PfkeyCommand::Couple(false));
    let o = h.service.handle_request(Ikev2ToPfkey::DeletePolicy {
        id: 2,
        selector: site(),
        direction: PolicyDirection::Out,
    });
    assert!(matches!(&o.to_ikev2[..], [PfkeyToIkev2::Done { id: 2 }]));
    h.calls.lock().unwrap().clear();
    let o = h.service.control(7, PfkeyCommand::Couple(true));
    assert!(matches!(reply_of(&o), ControlReply::Done(m) if m.contains("0 policies")));
    assert!(h.calls.lock().unwrap().is_empty());
    assert_eq!(h.service.installed().count(), 0);
}
