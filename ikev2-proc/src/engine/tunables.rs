//! The engine settings iked.conf(5) tunes (`set retransmit_timeout`, ...,
//! common/src/config/settings.rs), and `set enforcesingleikesa`.

use std::time::Duration;

use iked_common::config::EngineTunables;

use super::state::IkeState;
use super::{Engine, Settings};

/// Sets the tuned fields of `settings` from a configuration's tunables;
/// the others (ports, fragment limits, ...) stay.
pub(super) fn apply(settings: &mut Settings, tunables: &EngineTunables) {
    settings.retransmit_base = Duration::from_secs(u64::from(tunables.retransmit_timeout_secs));
    settings.retransmit_tries = tunables.retransmit_tries;
    settings.half_open_timeout = Duration::from_secs(u64::from(tunables.half_open_timeout_secs));
    settings.cookie_threshold = tunables.cookie_threshold as usize;
    settings.half_open_cap = tunables.half_open_max as usize;
    settings.half_open_per_source = tunables.half_open_per_source as usize;
    settings.max_child_sas_per_ike = tunables.child_sas_per_ike_sa as usize;
    settings.max_child_sas_per_policy = tunables.child_sas_per_policy as usize;
    settings.enforce_single_ike_sa = tunables.enforce_single_ike_sa;
}

impl Engine {
    /// `set enforcesingleikesa` (OpenBSD iked.conf(5)): the IKE SA `spi`
    /// just established replaces the older established IKE SAs of its
    /// policy with the same peer identity (and EAP identity): each is
    /// deleted with an INFORMATIONAL DELETE to the peer (RFC 7296 §1.4.1),
    /// its Child SAs with it. Only SAs established before this one began
    /// are replaced: two that both gateways started at once are left to
    /// the duplicate resolution, which both sides agree on.
    pub(in crate::engine) fn enforce_single_ike_sa(&mut self, spi: u64) {
        if !self.settings.enforce_single_ike_sa {
            return;
        }
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(peer_id) = sa.peer_id.clone() else {
            return;
        };
        let mut older: Vec<u64> = self
            .by_identity
            .get(&(sa.policy.clone(), peer_id))
            .map(|set| {
                set.iter()
                    .copied()
                    .filter(|other| *other != spi)
                    .filter(|other| {
                        self.ikes.get(other).is_some_and(|o| {
                            o.state == IkeState::Established
                                && o.eap_identity == sa.eap_identity
                                && o.established.is_some_and(|t| t < sa.created)
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        older.sort_unstable();
        let policy = sa.policy.clone();
        for other in older {
            log::info!(
                "policy {policy}: IKE SA {other:016x} replaced by {spi:016x} \
                 (enforcesingleikesa): deleting it"
            );
            self.request_delete_ike(other);
        }
    }
}
