//! Reload with live SAs between two engines: a policy added, changed
//! (in what was negotiated, and in lifetimes only) and removed.

use super::*;
use iked_common::config::IdentitySpec;

/// A second policy between the same two hosts; its own identity lets the
/// responder tell it from the first at IKE_AUTH.
fn second_a_policy() -> Policy {
    Policy {
        srcid: Some(IdentitySpec::Fqdn("second.a.example".into())),
        ..policy(
            "ab-second",
            A,
            Some(B),
            vec![selector("10.3.0.0", 16, "10.4.0.0", 16)],
            true,
        )
    }
}

fn second_b_policy() -> Policy {
    Policy {
        dstid: Some(IdentitySpec::Fqdn("second.a.example".into())),
        ..policy(
            "ba-second",
            B,
            Some(A),
            vec![selector("10.4.0.0", 16, "10.3.0.0", 16)],
            false,
        )
    }
}

/// The policy names of A's established IKE SAs, sorted.
fn established_policies(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = node
        .established()
        .into_iter()
        .filter_map(|spi| node.engine.ike(spi).map(|sa| sa.policy.clone()))
        .collect();
    names.sort();
    names
}

#[test]
fn an_added_policy_starts_and_the_others_stay() {
    let mut w = World::new();
    w.handshake();
    let first = assert_one_matching_ike(&w);
    w.b.engine.set_config(
        w.now,
        vec![b_policy(), second_b_policy()],
        InitiationMode::Passive,
        0,
    );
    w.a.engine.set_config(
        w.now,
        vec![a_policy(), second_a_policy()],
        InitiationMode::Active,
        0,
    );
    w.settle();
    assert_eq!(established_policies(&w.a), vec!["ab", "ab-second"]);
    assert_eq!(established_policies(&w.b), vec!["ba", "ba-second"]);
    assert!(w.a.established().contains(&first), "the first SA stays");
    assert_eq!(w.a.engine.child_sa_count(), 2);
    assert_eq!(w.b.engine.child_sa_count(), 2);
    // Each side's kernel: one SA pair per Child SA.
    assert_eq!(w.a.sas.len(), 4);
    assert_eq!(w.b.sas.len(), 4);
}

#[test]
fn a_policy_changed_in_its_proposals_is_negotiated_afresh() {
    let mut w = World::new();
    w.handshake();
    let old = assert_one_matching_ike(&w);
    let old_children = w.a.engine.child_spis();
    let mut changed = a_policy();
    // Still acceptable to B, but not what the SA was made with.
    changed.ike_proposals = vec![ike_proposal(&[31])];
    w.a.engine
        .set_config(w.now, vec![changed], InitiationMode::Active, 0);
    w.settle();
    let new = assert_one_matching_ike(&w);
    assert_ne!(new, old, "replaced");
    assert_eq!(w.b.engine.ike_sa_count(), 1, "the peer deleted the old one");
    assert_one_matching_child(&w);
    assert!(w
        .a
        .engine
        .child_spis()
        .iter()
        .all(|spi| !old_children.contains(spi)));
    // The old Child SA's kernel SAs went on both sides.
    assert_eq!(w.a.sas.len(), 2);
    assert_eq!(w.b.sas.len(), 2);
}

#[test]
fn a_policy_changed_in_lifetimes_only_keeps_its_sas() {
    let mut w = World::new();
    w.handshake();
    let old = assert_one_matching_ike(&w);
    let children = w.a.engine.child_spis();
    let mut changed = a_policy();
    changed.child_lifetime_secs = 600;
    changed.ike_lifetime_secs = 7200;
    w.a.engine
        .set_config(w.now, vec![changed], InitiationMode::Active, 0);
    w.settle();
    assert_eq!(assert_one_matching_ike(&w), old);
    assert_eq!(w.a.engine.child_spis(), children);
}

#[test]
fn a_removed_policy_deletes_its_sas_with_the_peer_and_leaves_the_others() {
    let mut w = World::new();
    w.b.engine.set_config(
        w.now,
        vec![b_policy(), second_b_policy()],
        InitiationMode::Passive,
        0,
    );
    w.a.engine.set_config(
        w.now,
        vec![a_policy(), second_a_policy()],
        InitiationMode::Active,
        0,
    );
    w.settle();
    assert_eq!(established_policies(&w.a), vec!["ab", "ab-second"]);
    w.a.engine
        .set_config(w.now, vec![a_policy()], InitiationMode::Active, 0);
    w.settle();
    assert_eq!(established_policies(&w.a), vec!["ab"]);
    // The peer heard the Delete: only the remaining policy's SA is left.
    assert_eq!(established_policies(&w.b), vec!["ba"]);
    assert_one_matching_child(&w);
    assert_eq!(w.a.sas.len(), 2);
    assert_eq!(w.b.sas.len(), 2);
    // A's kernel: no trap or SA policy of the removed flows is left.
    let removed = selector("10.3.0.0", 16, "10.4.0.0", 16);
    assert!(
        w.a.policies
            .iter()
            .all(|p| p.selector != removed && p.selector != removed.reversed()),
        "{:?}",
        w.a.policies
    );
    // And it stays removed: nothing restarts it.
    w.advance_by(Duration::from_secs(120));
    assert_eq!(established_policies(&w.a), vec!["ab"]);
}
