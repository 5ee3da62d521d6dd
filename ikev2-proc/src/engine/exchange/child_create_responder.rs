//! CREATE_CHILD_SA for Child SAs, responder (RFC 7296 §1.3.1, §1.3.3, §2.8).

use iked_common::config::{Encapsulation, Policy};
use iked_common::wire::{
    DhId, ExchangeType, KeyExchange as KePayload, Nonce, Notify, NotifyType, Payload, ProtocolId,
    SecurityAssociation,
};

use crate::engine::proposals::{self};
use crate::engine::Engine;

use crate::engine::digest::*;
use crate::engine::keys::*;
use crate::engine::message::*;
use crate::engine::state::*;

impl Engine {
    /// A CREATE_CHILD_SA request for a new or rekeyed Child SA (RFC 7296
    /// §1.3.1, §1.3.3), its SA payload `offer`.
    pub(in crate::engine) fn on_create_child_request(
        &mut self,
        spi: u64,
        message_id: u32,
        msg: &Inbound,
        offer: &SecurityAssociation,
        policy: Policy,
    ) {
        let request = PeerRequest::new(spi, ExchangeType::CreateChildSa, message_id);
        let Some(peer_nonce) = msg.nonce.cloned() else {
            return self.refuse(request, NotifyType::InvalidSyntax, "no nonce");
        };
        let Some(rekey_of) = self.child_to_rekey(request, msg) else {
            return;
        };
        // RFC 7296 §1.3, §3.10.1: past the cap the peer gets
        // NO_ADDITIONAL_SAS; the IKE SA stays as it is.
        if let Some(why) = self.child_cap_reached(spi, rekey_of.is_some()) {
            return self.refuse(request, NotifyType::NoAdditionalSas, &why);
        }
        let Some((tsi, tsr)) = msg.ts() else {
            return self.refuse(request, NotifyType::InvalidSyntax, "no TSi or TSr");
        };
        let peer_ke = msg.ke;
        let Some((proposal, suite)) = proposals::select_child(&policy.child_proposals, offer, true)
        else {
            let why = format!(
                "none of the {} proposals matches a childsa proposal; offered {}",
                offer.proposals.len(),
                iked_common::wire::Offered(offer)
            );
            return self.refuse(request, NotifyType::NoProposalChosen, &why);
        };
        if let Some(group) = suite.ke {
            match peer_ke {
                Some(ke) if ke.group.value() == group.iana_id() => {}
                _ => {
                    let notify = Notify::new(
                        NotifyType::InvalidKePayload,
                        group.iana_id().to_be_bytes().to_vec(),
                    );
                    let why = format!("PFS wants group {}", group.iana_id());
                    self.refuse_with(request, notify, &why);
                    return;
                }
            }
        }
        let transport_requested = msg.notify(NotifyType::UseTransportMode).is_some();
        let transport = policy.encapsulation == Encapsulation::Transport;
        if transport != transport_requested {
            let why = if transport {
                "the policy is transport mode, the peer asks for tunnel"
            } else {
                "the policy is tunnel mode, the peer asks for transport"
            };
            return self.refuse(request, NotifyType::NoProposalChosen, why);
        }
        let narrowed = match rekey_of.and_then(|old| self.children.get(&old)) {
            // §2.8: a rekeyed SA keeps its selectors.
            Some(old) => Ok((old.flow, old.flow_index)),
            None => self.narrow_peer_selectors(spi, &policy, &tsi.selectors, &tsr.selectors),
        };
        let (flow, flow_index) = match narrowed {
            Ok(narrowed) => narrowed,
            Err(why) => return self.refuse(request, NotifyType::TsUnacceptable, &why),
        };
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let (peer, local) = (sa.peer.ip(), sa.local.ip());
        let reqid = match rekey_of.and_then(|old| self.children.get(&old)) {
            Some(old) => old.reqid,
            None => self.child_reqid(spi, &policy.name, flow_index),
        };
        let peer_ke = suite.ke.and(peer_ke.map(|k| k.data.clone()));
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.answering = Some(Answer {
                message_id,
                kind: AnswerKind::Child(Box::new(ChildAnswer {
                    proposal,
                    suite,
                    flow,
                    flow_index,
                    transport,
                    peer_nonce,
                    peer_ke,
                    rekey_of,
                    reqid,
                })),
            });
        }
        self.allocate_spi(spi, Wait::AnswerSpi, peer, local, reqid);
    }

    /// The Child SA a CREATE_CHILD_SA request rekeys (its REKEY_SA notify,
    /// RFC 7296 §1.3.3), Some(None) for a new Child SA, or None when the
    /// request was answered here (CHILD_SA_NOT_FOUND, TEMPORARY_FAILURE).
    fn child_to_rekey(&mut self, request: PeerRequest, msg: &Inbound) -> Option<Option<u32>> {
        // REKEY_SA names the SA by the peer's inbound SPI: our outbound one.
        let sa = self.ikes.get(&request.spi)?;
        let rekey_of = match msg.notify(NotifyType::RekeySa).and_then(|n| n.child_spi()) {
            Some(peer_spi) => {
                let found = sa
                    .children
                    .iter()
                    .copied()
                    .find(|c| self.children.get(c).is_some_and(|c| c.spi_out == peer_spi));
                match found {
                    Some(old) => {
                        // The peer asks again to rekey an SA it already
                        // rekeyed with us: it never saw our answer (the
                        // exchange died with its IKE SA), so the SA we made
                        // then is unknown to it. Drop that one, start over.
                        let orphan = self
                            .children
                            .get(&old)
                            .filter(|c| c.state == ChildState::Rekeyed)
                            .and_then(|c| c.peer_rekey)
                            .filter(|y| self.children.get(y).is_some_and(|y| !y.we_initiated));
                        if let Some(orphan) = orphan {
                            log::info!(
                                "Child SA {old:08x}: peer rekeys it again; dropping {orphan:08x}, which it never learned of"
                            );
                            self.remove_child(orphan);
                            if let Some(c) = self.children.get_mut(&old) {
                                c.state = ChildState::Established;
                                c.peer_rekey = None;
                                c.timers.stop();
                            }
                        }
                        let state = self.children.get(&old).map(|c| c.state);
                        if matches!(
                            state,
                            Some(ChildState::Rekeyed) | Some(ChildState::Deleting)
                        ) {
                            // §2.25: already rekeyed or being deleted by us.
                            let why =
                                format!("Child SA {old:08x} is already rekeyed or being deleted");
                            self.refuse(request, NotifyType::TemporaryFailure, &why);
                            return None;
                        }
                        Some(old)
                    }
                    None => {
                        let notify = Notify::for_child_sa(
                            NotifyType::ChildSaNotFound,
                            ProtocolId::Esp,
                            peer_spi,
                            Vec::new(),
                        );
                        let why = format!("REKEY_SA names {peer_spi:08x}, no Child SA of ours");
                        self.refuse_with(request, notify, &why);
                        return None;
                    }
                }
            }
            None => None,
        };
        Some(rekey_of)
    }

    pub(in crate::engine) fn send_create_child_answer(&mut self, spi: u64, spi_in: u32) {
        let rekey = matches!(
            self.ikes.get(&spi).and_then(|sa| sa.answering.as_ref()),
            Some(Answer {
                kind: AnswerKind::Child(answer),
                ..
            }) if answer.rekey_of.is_some()
        );
        // Checked again: Child SAs may have come meanwhile (ours on this
        // IKE SA, or the policy's on others) while the SPI was allocated.
        let cap_reached = self.child_cap_reached(spi, rekey);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(Answer {
            message_id,
            kind: AnswerKind::Child(answer),
        }) = sa.answering.take()
        else {
            return;
        };
        let request = PeerRequest::new(spi, ExchangeType::CreateChildSa, message_id);
        if let Some(why) = cap_reached {
            self.refuse(request, NotifyType::NoAdditionalSas, &why);
            self.release_spi(spi, spi_in);
            return;
        }
        let Some(spi_out) = <[u8; 4]>::try_from(answer.proposal.spi.as_slice())
            .ok()
            .map(u32::from_be_bytes)
        else {
            self.refuse(
                request,
                NotifyType::InvalidSyntax,
                "its ESP SPI is not 4 octets",
            );
            self.release_spi(spi, spi_in);
            return;
        };
        let (public, shared) = match (answer.suite.ke, &answer.peer_ke) {
            (Some(method), Some(data)) => match self.respond_key_exchange(method, data) {
                Ok((public, shared)) => (Some((method, public)), Some(shared)),
                Err(e) => {
                    let why = format!("its KE value is invalid: {e}");
                    self.refuse(request, NotifyType::InvalidSyntax, &why);
                    self.release_spi(spi, spi_in);
                    return;
                }
            },
            _ => (None, None),
        };
        let Ok(nonce) = self.random_bytes(NONCE_LEN) else {
            self.refuse(
                request,
                NotifyType::TemporaryFailure,
                "no random bytes for our nonce",
            );
            self.release_spi(spi, spi_in);
            return;
        };
        let mut proposal = answer.proposal.clone();
        proposal.spi = spi_in.to_be_bytes().to_vec();
        let mut inner = Vec::new();
        inner.extend(use_transport_mode(answer.transport));
        inner.push(Payload::SecurityAssociation(SecurityAssociation {
            proposals: vec![proposal],
        }));
        inner.push(Payload::Nonce(Nonce(nonce.clone())));
        if let Some((method, public)) = public {
            inner.push(Payload::KeyExchange(KePayload {
                group: DhId::from_value(method.iana_id()),
                data: public,
            }));
        }
        inner.extend(traffic_selectors(&answer.flow, false));
        self.send_response(spi, ExchangeType::CreateChildSa, message_id, inner);
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(keys) = child_keys(
            sa,
            &answer.suite,
            shared.as_ref().map(|s| s.expose()),
            &answer.peer_nonce,
            &nonce,
        ) else {
            return;
        };
        self.add_child(
            spi,
            spi_in,
            spi_out,
            answer.reqid,
            answer.flow,
            answer.flow_index,
            answer.transport,
            answer.suite,
            keys,
            false,
            lower_nonce(&answer.peer_nonce, &nonce).to_vec(),
        );
        if let Some(old) = answer.rekey_of {
            self.on_child_rekeyed(old, spi_in);
            if let Some(old_child) = self.children.get_mut(&old) {
                if old_child.state == ChildState::Rekeying {
                    // Collision: our own rekey of it is in flight (§2.8.1).
                    old_child.peer_rekey = Some(spi_in);
                } else {
                    // The peer rekeyed it and will delete the old SA.
                    old_child.state = ChildState::Rekeyed;
                    old_child.peer_rekey = Some(spi_in);
                    // Deleted by the peer; if that never comes, by us (grace).
                    old_child.timers.set(
                        ChildTimer::DeleteReplaced,
                        self.now + self.settings.rekeyed_grace,
                    );
                }
            }
        }
    }
}
