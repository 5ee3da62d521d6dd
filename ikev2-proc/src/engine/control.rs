//! Operator commands: `show sa` and the kernel counters it carries.

use std::collections::HashMap;
use std::time::Duration;

use iked_common::ipc::{ControlReply, IkeSaInfo, Ikev2ToPfkey, PfkeyToIkev2, MAX_COUNTER_REQUEST};
use iked_common::kernel::{IpsecProtocol, SaCounters, SaId};

use crate::engine::proposals::{self};
use crate::engine::selectors;
use crate::engine::{Action, Engine, ReplyError};

use crate::engine::identity::*;
use crate::engine::state::*;

/// How long `show sa` waits for pfkey's counters before answering without.
pub(super) const COUNTERS_TIMEOUT: Duration = Duration::from_secs(2);

/// Counter reads that timed out, remembered so their late answers are not
/// taken for replies to requests never made.
pub(super) const EXPIRED_COUNTER_IDS: usize = 64;

/// At most this many `show sa` wait for counters at once (each holds its
/// list); more are answered at once without counters.
pub(super) const MAX_COUNTER_QUERIES: usize = 16;

impl Engine {
    /// Asks pfkey for the counters of the installed Child SAs in `list`;
    /// the control request is answered when they come. Gives the list back
    /// when there is nothing to ask.
    pub(super) fn ask_counters(
        &mut self,
        control_id: u64,
        list: Vec<IkeSaInfo>,
        total: u64,
    ) -> Result<(), Vec<IkeSaInfo>> {
        if self.counter_queries.len() >= MAX_COUNTER_QUERIES {
            log::warn!(
                "show sa: {MAX_COUNTER_QUERIES} lists already wait for counters; listed without"
            );
            return Err(list);
        }
        let mut sas = HashMap::new();
        let mut ids = Vec::new();
        for info in &list {
            for child in info.children.iter().filter(|c| c.installed) {
                if ids.len() + 2 > MAX_COUNTER_REQUEST {
                    break;
                }
                let Some(pair) = u32::from_str_radix(&child.spi_in, 16)
                    .ok()
                    .and_then(|spi| self.child_sa_ids(spi))
                else {
                    continue;
                };
                if sas.insert(child.spi_in.clone(), pair).is_none() {
                    ids.extend([pair.0, pair.1]);
                }
            }
        }
        if ids.is_empty() {
            return Err(list);
        }
        let id = self.ipc_id();
        self.counter_queries.insert(
            id,
            CounterQuery {
                control_id,
                deadline: self.now + COUNTERS_TIMEOUT,
                list,
                total,
                sas,
            },
        );
        self.actions
            .push_back(Action::Pfkey(Ikev2ToPfkey::GetCounters { id, sas: ids }));
        Ok(())
    }

    /// The kernel SAs of a Child SA: (inbound, outbound), addressed as
    /// they were installed.
    pub(super) fn child_sa_ids(&self, spi_in: u32) -> Option<(SaId, SaId)> {
        let child = self.children.get(&spi_in)?;
        let ike = self.ikes.get(&child.ike)?;
        let (local, peer) = (ike.local.ip(), ike.peer.ip());
        let sa = |src, dst, spi| SaId {
            src,
            dst,
            protocol: IpsecProtocol::Esp,
            spi,
        };
        Some((
            sa(peer, local, child.spi_in),
            sa(local, peer, child.spi_out),
        ))
    }

    /// Answers a waiting `show sa` with whatever counters came (None each
    /// when pfkey failed or was too slow).
    pub(super) fn answer_counter_query(
        &mut self,
        query: CounterQuery,
        counters: &[(SaId, Option<SaCounters>)],
    ) {
        let by_sa: HashMap<SaId, SaCounters> = counters
            .iter()
            .filter_map(|(sa, c)| c.map(|c| (*sa, c)))
            .collect();
        let mut list = query.list;
        for child in list.iter_mut().flat_map(|info| info.children.iter_mut()) {
            if let Some((inbound, outbound)) = query.sas.get(&child.spi_in) {
                child.bytes_in = by_sa.get(inbound).map(|c| c.bytes);
                child.bytes_out = by_sa.get(outbound).map(|c| c.bytes);
            }
        }
        self.actions.push_back(Action::Control {
            id: query.control_id,
            reply: ControlReply::SaList {
                sas: list,
                total: query.total,
            },
        });
    }

    pub(super) fn expire_counter_queries(&mut self) {
        let now = self.now;
        let due: Vec<u64> = self
            .counter_queries
            .iter()
            .filter(|(_, q)| q.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(query) = self.counter_queries.remove(&id) {
                log::warn!("show sa: pfkey did not send the counters in time; listed without");
                if self.expired_counter_ids.len() >= EXPIRED_COUNTER_IDS {
                    self.expired_counter_ids.pop_front();
                }
                self.expired_counter_ids.push_back(id);
                self.answer_counter_query(query, &[]);
            }
        }
    }

    /// Takes pfkey's answers to counter reads; gives back any other
    /// message. An answer to a read never made is an error, as for every
    /// pfkey reply.
    pub(super) fn take_counter_reply(
        &mut self,
        message: PfkeyToIkev2,
    ) -> Result<Option<PfkeyToIkev2>, ReplyError> {
        let (id, counters) = match message {
            PfkeyToIkev2::Counters { id, counters } => (id, counters),
            PfkeyToIkev2::Failed { id, failure } if self.counter_queries.contains_key(&id) => {
                log::warn!("show sa: cannot read counters: {failure}");
                (id, Vec::new())
            }
            other => return Ok(Some(other)),
        };
        match self.counter_queries.remove(&id) {
            Some(query) => self.answer_counter_query(query, &counters),
            None if self.expired_counter_ids.contains(&id) => {
                log::debug!("show sa: counters {id} came after the list was sent")
            }
            None => return Err(ReplyError::CountersNeverAsked { id }),
        }
        Ok(None)
    }

    /// The SA list, cut to the reply size limit (a gateway with many
    /// thousand SAs must not make `ikectl show sa` kill the process),
    /// and how many IKE SAs there are: ikectl says when the list is cut.
    pub(super) fn show_sa_capped(&self) -> (Vec<iked_common::ipc::IkeSaInfo>, u64) {
        self.cap_sa_list(self.show_sa())
    }

    /// `list` cut to what fits into one reply, and its length before.
    pub(super) fn cap_sa_list(
        &self,
        mut list: Vec<iked_common::ipc::IkeSaInfo>,
    ) -> (Vec<iked_common::ipc::IkeSaInfo>, u64) {
        let total = list.len();
        // Leave room for the envelope around the list.
        let limit = iked_common::ipc::MAX_SA_LIST_REPLY - 4096;
        // The longest prefix that fits, each entry measured once. The
        // kernel's byte counters are filled in later: room for two u64
        // varints per Child SA.
        let mut used = 0usize;
        let fits = list
            .iter()
            .take_while(|info| {
                used += postcard::experimental::serialized_size(info).unwrap_or(usize::MAX / 2)
                    + 20 * info.children.len();
                used <= limit
            })
            .count();
        list.truncate(fits);
        if list.len() < total {
            log::warn!(
                "show sa: listing {} of {total} IKE SAs (reply size limit)",
                list.len()
            );
        }
        (list, total as u64)
    }

    pub(super) fn show_sa(&self) -> Vec<iked_common::ipc::IkeSaInfo> {
        let mut list: Vec<iked_common::ipc::IkeSaInfo> =
            self.ikes.values().map(|sa| self.ike_info(sa)).collect();
        list.sort_by(|a, b| (&a.policy, &a.spi_i).cmp(&(&b.policy, &b.spi_i)));
        list
    }

    pub(super) fn ike_info(&self, sa: &IkeSa) -> iked_common::ipc::IkeSaInfo {
        use proposals::{encr_name, integ_name, ke_name, prf_name};
        let children = sa
            .children
            .iter()
            .filter_map(|spi| self.children.get(spi))
            .map(|c| iked_common::ipc::ChildSaInfo {
                state: match (c.state, c.install_failed) {
                    (_, true) => "install failed".into(),
                    (ChildState::Established, false) if !c.installed => "installing".into(),
                    (ChildState::Established, false) => "established".into(),
                    (ChildState::Rekeying, _) => "rekeying".into(),
                    (ChildState::Rekeyed, _) => "rekeyed".into(),
                    (ChildState::Deleting, _) => "deleting".into(),
                },
                spi_in: format!("{:08x}", c.spi_in),
                spi_out: format!("{:08x}", c.spi_out),
                local_ts: vec![selectors::side_text(
                    c.flow.src,
                    c.flow.src_prefix,
                    c.flow.src_port,
                    c.flow.protocol,
                )],
                remote_ts: vec![selectors::side_text(
                    c.flow.dst,
                    c.flow.dst_prefix,
                    c.flow.dst_port,
                    c.flow.protocol,
                )],
                mode: if c.transport { "transport" } else { "tunnel" }.into(),
                encryption: encr_name(c.suite.encr),
                integrity: c.suite.integ.map(integ_name),
                pfs_group: c.suite.ke.map(ke_name),
                installed: c.installed,
                // Filled in from pfkey's answer (ask_counters).
                bytes_in: None,
                bytes_out: None,
                established_secs: self.now.saturating_duration_since(c.established).as_secs(),
                rekey_in_secs: c
                    .timers
                    .at()
                    .map(|at| at.saturating_duration_since(self.now).as_secs()),
            })
            .collect();
        iked_common::ipc::IkeSaInfo {
            policy: sa.policy.clone(),
            state: sa.state.text().into(),
            initiator: sa.initiator,
            local: sa.local,
            peer: sa.peer,
            local_id: identity_text(&sa.local_id),
            peer_id: sa.peer_id.as_ref().map(identity_text).unwrap_or_default(),
            spi_i: format!("{:016x}", sa.spi_i),
            spi_r: format!("{:016x}", sa.spi_r),
            encryption: sa.suite.map(|s| encr_name(s.encr)).unwrap_or_default(),
            integrity: sa.suite.and_then(|s| s.integ.map(integ_name)),
            prf: sa.suite.map(|s| prf_name(s.prf)).unwrap_or_default(),
            dh_group: sa
                .suite
                .map(|s| ke_name(s.ke))
                .or(sa.handshake.as_ref().and_then(|h| h.ke_method).map(ke_name))
                .unwrap_or_default(),
            nat_t: sa.natt,
            established_secs: sa
                .established
                .map(|t| self.now.saturating_duration_since(t).as_secs()),
            rekey_in_secs: sa
                .timers
                .get(IkeTimer::Rekey)
                .map(|t| t.saturating_duration_since(self.now).as_secs()),
            virtual_ips: sa.virtual_ips.clone(),
            eap_identity: sa.eap_identity.clone(),
            mobike: sa.mobike.negotiated(),
            children,
        }
    }
}
