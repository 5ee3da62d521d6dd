//! CREATE_CHILD_SA for Child SAs, initiator (RFC 7296 §1.3.1, §2.8): new and rekeyed Child SAs.

use iked_common::config::Encapsulation;
use iked_common::wire::{
    DhId, ExchangeType, KeyExchange as KePayload, Nonce, Notify, NotifyType, Payload, ProtocolId,
};

use crate::engine::proposals::{self};
use crate::engine::Engine;

use crate::engine::digest::*;
use crate::engine::keys::*;
use crate::engine::state::*;

impl Engine {
    pub(in crate::engine) fn send_create_child(&mut self, spi: u64, child_spi: u32) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(Prep::CreateChild {
            flow_index,
            rekey_of,
            ..
        }) = sa.prep.take()
        else {
            return;
        };
        let Some(policy) = self.policies.iter().find(|p| p.name == sa.policy).cloned() else {
            return;
        };
        let (flow, reqid) = match rekey_of.and_then(|old| self.children.get(&old)) {
            Some(old) => (old.flow, old.reqid),
            None => match policy.flows.get(flow_index) {
                Some(flow) => (*flow, 0),
                None => return,
            },
        };
        let hint = sa
            .child_ke_hint
            .filter(|m| proposals::offers_ke(&policy.child_proposals, *m));
        // A client's new Child SA: our side is the address we were given.
        let flow = if rekey_of.is_none() {
            self.client_flow(spi, flow)
        } else {
            flow
        };
        let reqid = if reqid == 0 {
            self.reqid_for(&policy.name, flow_index)
        } else {
            reqid
        };
        let pfs = hint.or_else(|| proposals::preferred_ke(&policy.child_proposals));
        let kex = match pfs {
            Some(method) => match self.new_key_exchange(method) {
                Ok(k) => Some(k),
                Err(e) => {
                    log::warn!("key exchange: {e}");
                    return;
                }
            },
            None => None,
        };
        let Ok(nonce) = self.random_bytes(NONCE_LEN) else {
            return;
        };
        let offered = proposals::offer(
            &policy.child_proposals,
            ProtocolId::Esp,
            &child_spi.to_be_bytes(),
            pfs,
            true,
        );
        let transport = policy.encapsulation == Encapsulation::Transport;
        let mut inner = Vec::new();
        if let Some(old) = rekey_of.and_then(|old| self.children.get(&old)) {
            // RFC 7296 §1.3.3: REKEY_SA names the SA by our inbound SPI.
            inner.push(Payload::Notify(Notify::for_child_sa(
                NotifyType::RekeySa,
                ProtocolId::Esp,
                old.spi_in,
                Vec::new(),
            )));
        }
        inner.extend(use_transport_mode(transport));
        inner.push(Payload::SecurityAssociation(offered.clone()));
        inner.push(Payload::Nonce(Nonce(nonce.clone())));
        if let (Some(method), Some(k)) = (pfs, &kex) {
            inner.push(Payload::KeyExchange(KePayload {
                group: DhId::from_value(method.iana_id()),
                data: k.public_value().to_vec(),
            }));
        }
        inner.extend(traffic_selectors(&flow, true));
        if let Some(old) = rekey_of.and_then(|old| self.children.get_mut(&old)) {
            old.state = ChildState::Rekeying;
        }
        let draft = ChildDraft {
            spi_in: child_spi,
            reqid,
            flow,
            flow_index,
            transport,
            nonce,
            kex,
            offered,
            rekey_of,
        };
        self.send_request(
            spi,
            ExchangeType::CreateChildSa,
            inner,
            RequestCtx::CreateChild { child: draft },
        );
        self.schedule(spi);
    }

    pub(in crate::engine) fn on_create_child_response(
        &mut self,
        spi: u64,
        inner: Vec<Payload>,
        draft: ChildDraft,
    ) {
        let msg = Inbound::of(&inner);
        let rekey_of = draft.rekey_of;
        // RFC 7296 §1.3: INVALID_KE_PAYLOAD names the PFS group wanted;
        // retry once with it if our proposals allow it.
        let wanted = msg
            .notify(NotifyType::InvalidKePayload)
            .and_then(|n| n.invalid_ke_group())
            .and_then(|g| iked_common::crypto::KeMethod::from_iana(g.value()));
        if let Some(method) = wanted {
            let offered = self
                .ikes
                .get(&spi)
                .and_then(|sa| self.policy(&sa.policy))
                .is_some_and(|p| proposals::offers_ke(&p.child_proposals, method));
            let already = draft.kex.as_ref().map(|k| k.method()) == Some(method);
            if offered && !already {
                log::info!(
                    "IKE SA {spi:016x}: peer wants PFS group {}, retrying",
                    method.iana_id()
                );
                let task = match rekey_of {
                    Some(old) => {
                        if let Some(child) = self.children.get_mut(&old) {
                            child.state = ChildState::Established;
                        }
                        Task::RekeyChild { spi_in: old }
                    }
                    None => Task::CreateChild {
                        flow_index: draft.flow_index,
                    },
                };
                // The retry allocates a new SPI.
                self.release_spi(spi, draft.spi_in);
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    sa.child_ke_hint = Some(method);
                    sa.queue.push_front(task);
                }
                return;
            }
        }
        if let Some(error) = msg.error {
            let policy = self
                .ikes
                .get(&spi)
                .map(|sa| sa.policy.clone())
                .unwrap_or_default();
            log::warn!("policy {policy}: peer refused our CREATE_CHILD_SA: {error}");
            self.release_spi(spi, draft.spi_in);
            let peer_rekeyed = rekey_of
                .and_then(|old| self.children.get(&old))
                .is_some_and(|c| c.peer_rekey.is_some());
            match (rekey_of, error) {
                // The peer does not know the SA: it is gone there, so here too.
                (Some(old), NotifyType::ChildSaNotFound) => self.remove_child(old),
                // RFC 7296 §4: a rekey refused with NO_ADDITIONAL_SAS is
                // done as a delete of the old SA, then a new one.
                (Some(old), NotifyType::NoAdditionalSas) if !peer_rekeyed => {
                    let flow_index = self.children.get_mut(&old).map(|c| {
                        c.state = ChildState::Established;
                        c.flow_index
                    });
                    if let (Some(flow_index), Some(sa)) = (flow_index, self.ikes.get_mut(&spi)) {
                        sa.queue.push_back(Task::DeleteChildren { spis: vec![old] });
                        sa.queue.push_back(Task::CreateChild { flow_index });
                    }
                }
                (Some(old), _) => self.rekey_failed(spi, old),
                (None, _) => {}
            }
            return;
        }
        let Some(nr) = msg.nonce.cloned() else {
            log::warn!("IKE SA {spi:016x}: CREATE_CHILD_SA answer without a nonce");
            self.release_spi(spi, draft.spi_in);
            if let Some(old) = rekey_of {
                self.rekey_failed(spi, old);
            }
            return;
        };
        let shared = match (&draft.kex, msg.ke) {
            (Some(kex), Some(ke)) if ke.group.value() == kex.method().iana_id() => {
                match kex.complete(&ke.data) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        log::warn!("IKE SA {spi:016x}: invalid PFS KE value");
                        None
                    }
                }
            }
            (Some(_), _) => {
                log::warn!("IKE SA {spi:016x}: CREATE_CHILD_SA answer without our PFS group");
                None
            }
            (None, _) => None,
        };
        if draft.kex.is_some() && shared.is_none() {
            self.release_spi(spi, draft.spi_in);
            if let Some(old) = rekey_of {
                self.rekey_failed(spi, old);
            }
            return;
        }
        let ni = draft.nonce.clone();
        let spi_in = draft.spi_in;
        let new_spi = self.complete_child_as_initiator(
            spi,
            draft,
            &inner,
            shared.as_ref().map(|s| s.expose()),
            &ni,
            &nr,
        );
        if new_spi.is_none() {
            self.release_spi(spi, spi_in);
        }
        if let (Some(new_spi), Some(old)) = (new_spi, rekey_of) {
            self.child_rekeyed(spi, old, new_spi);
        } else if let (None, Some(old)) = (new_spi, rekey_of) {
            self.rekey_failed(spi, old);
        }
    }

    pub(in crate::engine) fn rekey_failed(&mut self, spi: u64, old: u32) {
        let retry = self.now + self.settings.rekey_retry;
        if let Some(child) = self.children.get_mut(&old) {
            if child.peer_rekey.is_some() {
                // The peer's rekey of the same SA succeeded: it survives, and
                // the peer deletes the old one (§2.8.1).
                child.state = ChildState::Rekeyed;
                // Deleted by the peer; if that never comes, by us (grace).
                child.timers.set(
                    ChildTimer::DeleteReplaced,
                    self.now + self.settings.rekeyed_grace,
                );
            } else {
                child.state = ChildState::Established;
                child.timers.set(ChildTimer::Rekey, retry);
            }
        }
        self.schedule(spi);
    }

    /// Our rekey of `old` produced `new`. RFC 7296 §2.8.1: if the peer
    /// rekeyed `old` at the same time, the SA created with the lowest nonce
    /// is redundant and is deleted by whoever created it; the survivor's
    /// creator deletes the old SA.
    pub(in crate::engine) fn child_rekeyed(&mut self, spi: u64, old: u32, new: u32) {
        self.on_child_rekeyed(old, new);
        let Some(old_child) = self.children.get_mut(&old) else {
            return;
        };
        old_child.state = ChildState::Rekeyed;
        // Deleted by the peer; if that never comes, by us (grace).
        old_child.timers.set(
            ChildTimer::DeleteReplaced,
            self.now + self.settings.rekeyed_grace,
        );
        let peer_new = old_child.peer_rekey;
        let ours_nonce = self.children.get(&new).map(|c| c.min_nonce.clone());
        let theirs_nonce = peer_new
            .and_then(|p| self.children.get(&p))
            .map(|c| c.min_nonce.clone());
        let to_delete = match (ours_nonce, theirs_nonce) {
            (Some(ours), Some(theirs)) if ours < theirs => {
                log::info!("Child SA rekey collision: ours ({new:08x}) has the lowest nonce and is redundant");
                new
            }
            (Some(_), Some(_)) => {
                log::info!("Child SA rekey collision: ours ({new:08x}) survives");
                old
            }
            _ => old,
        };
        if peer_new.is_some() {
            // Ours is the redundant one: the peer deletes the old SA. (The
            // flow's kernel policies pass to the survivor on removal.)
            if to_delete == new {
                if let Some(c) = self.children.get_mut(&new) {
                    c.state = ChildState::Rekeyed;
                    // Deleted by us right away (queued below).
                    c.timers.set(
                        ChildTimer::DeleteReplaced,
                        self.now + self.settings.rekeyed_grace,
                    );
                }
            }
        }
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.queue.push_back(Task::DeleteChildren {
                spis: vec![to_delete],
            });
        }
    }
}
