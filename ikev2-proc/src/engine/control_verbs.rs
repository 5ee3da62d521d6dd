//! Operator commands beyond `show sa|initiate|terminate`: `show sa` with
//! filters, `terminate --sa`, `active|passive`, `reset sa|id` (OpenBSD
//! ikectl(8) semantics).

use iked_common::ipc::{ControlCommand, ControlReply, IkeSaInfo, InitiationMode};

use crate::engine::identity::identity_text;
use iked_common::config::PolicyInitiation;

use crate::engine::state::IkeState;
use crate::engine::{Action, Engine};

/// Whether `info` passes the `show sa` filters: policy by name, peer by
/// address (with or without port) or by identity as shown.
fn matches_filters(info: &IkeSaInfo, policy: Option<&str>, peer: Option<&str>) -> bool {
    policy.is_none_or(|p| info.policy == p)
        && peer.is_none_or(|p| {
            info.peer.ip().to_string() == p || info.peer.to_string() == p || info.peer_id == p
        })
}

impl Engine {
    /// The commands of this module; the others are in api.rs.
    pub(super) fn handle_control_verb(&mut self, id: u64, command: ControlCommand) {
        let reply = match command {
            ControlCommand::ShowSaFiltered { policy, peer } => {
                let list: Vec<IkeSaInfo> = self
                    .show_sa()
                    .into_iter()
                    .filter(|info| matches_filters(info, policy.as_deref(), peer.as_deref()))
                    .collect();
                let (list, total) = self.cap_sa_list(list);
                match self.ask_counters(id, list, total) {
                    Ok(()) => return,
                    Err(list) => ControlReply::SaList { sas: list, total },
                }
            }
            ControlCommand::TerminateSa { spi } => {
                let found = self
                    .ikes
                    .iter()
                    .find(|(_, sa)| sa.spi_i == spi || sa.spi_r == spi)
                    .map(|(key, sa)| (*key, sa.policy.clone()));
                match found {
                    None => ControlReply::Failed(format!("no IKE SA with SPI {spi:016x}")),
                    Some((key, policy)) => {
                        self.terminate_ike(key);
                        ControlReply::Done(format!(
                            "terminating IKE SA {spi:016x} of policy {policy}"
                        ))
                    }
                }
            }
            ControlCommand::SetMode(mode) => {
                self.mode = mode;
                log::info!("initiation mode: {} (ikectl)", mode_name(mode));
                if mode == InitiationMode::Active {
                    self.start_idle_active_policies();
                }
                ControlReply::Done(format!("initiation mode {}", mode_name(mode)))
            }
            ControlCommand::ResetSas => {
                let keys = self.sorted_ike_keys(|_| true);
                for key in &keys {
                    self.terminate_ike(*key);
                }
                log::info!("reset sa: deleting {} IKE SA(s)", keys.len());
                ControlReply::Done(format!("deleting {} IKE SA(s)", keys.len()))
            }
            ControlCommand::ResetId { id: peer_id } => {
                let keys = self.sorted_ike_keys(|sa| {
                    sa.peer_id.as_ref().map(identity_text).as_deref() == Some(peer_id.as_str())
                });
                if keys.is_empty() {
                    ControlReply::Failed(format!("no IKE SA with peer identity {peer_id}"))
                } else {
                    for key in &keys {
                        self.terminate_ike(*key);
                    }
                    log::info!("reset id {peer_id}: deleting {} IKE SA(s)", keys.len());
                    ControlReply::Done(format!("deleting {} IKE SA(s) of {peer_id}", keys.len()))
                }
            }
            other => ControlReply::Failed(format!("ikev2 cannot handle {other:?}")),
        };
        self.actions.push_back(Action::Control { id, reply });
    }

    /// The keys of the IKE SAs `keep` selects, in SPI order so that what
    /// is deleted goes out in the same order every run.
    fn sorted_ike_keys(&self, keep: impl Fn(&crate::engine::state::IkeSa) -> bool) -> Vec<u64> {
        let mut keys: Vec<u64> = self
            .ikes
            .iter()
            .filter(|(_, sa)| keep(sa))
            .map(|(key, _)| *key)
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Deletes an IKE SA the operator asked gone: with the peer when it is
    /// established, and not restarted.
    fn terminate_ike(&mut self, key: u64) {
        if let Some(sa) = self.ikes.get_mut(&key) {
            sa.no_restart = true;
            let policy = sa.policy.clone();
            self.restarts.retain(|(_, name)| *name != policy);
        }
        self.request_delete_ike(key);
    }

    /// After `ikectl active`, and at a configuration in active mode: the
    /// active policies without a live IKE SA (one being deleted, as a
    /// changed policy's are, does not count) are started.
    pub(in crate::engine) fn start_idle_active_policies(&mut self) {
        let names: Vec<String> = self
            .policies
            .iter()
            .filter(|p| p.initiation == PolicyInitiation::Active)
            .map(|p| p.name.clone())
            .collect();
        for name in names {
            let has_sa = self.by_policy.get(&name).is_some_and(|s| {
                s.iter().any(|spi| {
                    self.ikes
                        .get(spi)
                        .is_some_and(|sa| sa.state != IkeState::Deleting)
                })
            });
            if !has_sa {
                if let Err(e) = self.initiate(&name, None, 0) {
                    log::warn!("policy {name}: cannot initiate: {e}");
                }
            }
        }
    }
}

fn mode_name(mode: InitiationMode) -> &'static str {
    if mode == InitiationMode::Active {
        "active"
    } else {
        "passive"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(policy: &str, peer: &str, peer_id: &str) -> IkeSaInfo {
        IkeSaInfo {
            policy: policy.into(),
            state: "established".into(),
            initiator: true,
            local: "198.18.0.1:500".parse().unwrap(),
            peer: peer.parse().unwrap(),
            local_id: String::new(),
            peer_id: peer_id.into(),
            spi_i: "0000000000000001".into(),
            spi_r: "0000000000000002".into(),
            encryption: String::new(),
            integrity: None,
            prf: String::new(),
            dh_group: String::new(),
            nat_t: false,
            established_secs: None,
            rekey_in_secs: None,
            virtual_ips: Vec::new(),
            eap_identity: None,
            mobike: false,
            children: Vec::new(),
        }
    }

    #[test]
    fn filters_match_policy_and_peer_by_address_or_identity() {
        let sa = info("site", "198.18.0.2:4500", "fqdn/gw.example");
        assert!(matches_filters(&sa, None, None));
        assert!(matches_filters(&sa, Some("site"), None));
        assert!(!matches_filters(&sa, Some("other"), None));
        assert!(matches_filters(&sa, None, Some("198.18.0.2")));
        assert!(matches_filters(&sa, None, Some("198.18.0.2:4500")));
        assert!(matches_filters(&sa, None, Some("fqdn/gw.example")));
        assert!(!matches_filters(&sa, None, Some("198.18.0.3")));
        assert!(!matches_filters(&sa, Some("site"), Some("198.18.0.3")));
    }
}
