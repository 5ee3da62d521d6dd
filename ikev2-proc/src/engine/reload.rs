//! What a reload of iked.conf does to each policy's SAs.
//!
//! The parent reloads in two phases (prepare, commit) across the three
//! children; this is the engine's part of both: [`check_policies`] is
//! prepare (nothing changes), [`Engine::set_config`] is commit, and
//! [`policy_change`] decides per policy name:
//!
//! - added: an active policy initiates, its traps go in;
//! - removed: its IKE SAs are deleted with the peer (INFORMATIONAL Delete,
//!   RFC 7296 §1.4.1) and its kernel entries removed;
//! - changed in what was negotiated or checked (addresses, flows,
//!   proposals, identities, authentication, mode, remote access): its SAs
//!   were made under terms no longer in force, so they are deleted with
//!   the peer and an active policy negotiates afresh under the new ones;
//! - changed only in lifetimes, `trap` or active/passive: nothing an
//!   established SA rests on, so its SAs stay and the new values apply
//!   from the next rekey (or, for traps, at once).
//!
//! [`Engine::set_config`]: crate::engine::Engine::set_config

use std::collections::HashSet;

use iked_common::config::Policy;

/// What becomes of one policy name's SAs at a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyChange {
    /// Only in the new configuration.
    Added,
    /// Only in the old one: its SAs are deleted.
    Removed,
    /// Identical: its SAs stay.
    Unchanged,
    /// Changed in what no established SA depends on: its SAs stay.
    Adjusted,
    /// Changed in what its SAs were negotiated or authenticated with:
    /// they are deleted and negotiated afresh.
    Replaced,
}

impl PolicyChange {
    /// Whether the SAs of the policy go at this reload.
    pub fn deletes_sas(self) -> bool {
        matches!(self, PolicyChange::Removed | PolicyChange::Replaced)
    }
}

/// The policy with what an established SA does not rest on set to fixed
/// values: two policies equal in this form negotiate the same SAs.
fn negotiated_terms(policy: &Policy) -> Policy {
    Policy {
        initiation: iked_common::config::PolicyInitiation::Passive,
        trap: false,
        ike_lifetime_secs: 0,
        child_lifetime_secs: 0,
        child_lifetime_bytes: 0,
        ..policy.clone()
    }
}

/// Decides for one policy name, from its old and new versions.
pub fn policy_change(old: Option<&Policy>, new: Option<&Policy>) -> PolicyChange {
    match (old, new) {
        (None, _) => PolicyChange::Added,
        (Some(_), None) => PolicyChange::Removed,
        (Some(old), Some(new)) if old == new => PolicyChange::Unchanged,
        (Some(old), Some(new)) if negotiated_terms(old) == negotiated_terms(new) => {
            PolicyChange::Adjusted
        }
        (Some(_), Some(_)) => PolicyChange::Replaced,
    }
}

/// Reload, phase one: whether the engine can take these policies. It
/// finds its SAs' policies by name, so two of the same name are refused
/// (the parser refuses them too; this guards what came over IPC).
pub fn check_policies(policies: &[Policy]) -> Result<(), String> {
    let mut names = HashSet::new();
    for policy in policies {
        if policy.name.is_empty() {
            return Err("a policy without a name".into());
        }
        if !names.insert(policy.name.as_str()) {
            return Err(format!("policy {} is defined twice", policy.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::psk_tunnel_policy;

    fn base() -> Policy {
        psk_tunnel_policy(
            "p",
            "192.0.2.1".parse().unwrap(),
            Some("192.0.2.2".parse().unwrap()),
            vec![],
            true,
        )
    }

    #[test]
    fn classifies_each_kind_of_change() {
        let old = base();
        assert_eq!(policy_change(None, Some(&old)), PolicyChange::Added);
        assert_eq!(policy_change(Some(&old), None), PolicyChange::Removed);
        assert_eq!(
            policy_change(Some(&old), Some(&old.clone())),
            PolicyChange::Unchanged
        );
        let mut lifetimes = old.clone();
        lifetimes.child_lifetime_secs += 60;
        lifetimes.ike_lifetime_secs += 60;
        lifetimes.trap = !old.trap;
        lifetimes.initiation = iked_common::config::PolicyInitiation::Passive;
        assert_eq!(
            policy_change(Some(&old), Some(&lifetimes)),
            PolicyChange::Adjusted
        );
        let mut peer = old.clone();
        peer.peer = Some(iked_common::config::Prefix {
            addr: "192.0.2.3".parse().unwrap(),
            len: 32,
        });
        assert_eq!(
            policy_change(Some(&old), Some(&peer)),
            PolicyChange::Replaced
        );
        let mut flows = old.clone();
        flows.flows.push(iked_common::kernel::Selector::between(
            "10.1.0.0".parse().unwrap(),
            16,
            "10.2.0.0".parse().unwrap(),
            16,
        ));
        assert_eq!(
            policy_change(Some(&old), Some(&flows)),
            PolicyChange::Replaced
        );
        assert!(PolicyChange::Replaced.deletes_sas() && PolicyChange::Removed.deletes_sas());
        assert!(!PolicyChange::Adjusted.deletes_sas());
    }

    #[test]
    fn refuses_two_policies_of_one_name() {
        assert!(check_policies(&[base()]).is_ok());
        let error = check_policies(&[base(), base()]).unwrap_err();
        assert!(error.contains("policy p is defined twice"), "{error}");
    }
}
