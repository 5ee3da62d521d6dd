//! IKE_AUTH, responder (RFC 7296 §1.2, §2.15).

use iked_common::config::Encapsulation;
use iked_common::ipc::Ikev2ToCa;
use iked_common::kernel::Selector;
use iked_common::wire::{
    AuthMethod, Authentication, ExchangeType, Identity, Notify, NotifyType, Payload,
    SecurityAssociation,
};

use crate::engine::proposals::{self, ChildSuite};
use crate::engine::Engine;

use crate::engine::child_sa::*;
use crate::engine::digest::*;
use crate::engine::identity::*;
use crate::engine::keys::*;
use crate::engine::message::*;
use crate::engine::signature_auth::*;
use crate::engine::state::*;

impl Engine {
    /// The policy an authenticating initiator falls under: among those
    /// with `eap` when it asks for EAP (no AUTH, RFC 7296 §2.16), else
    /// among those without.
    pub(in crate::engine) fn policy_for_initiator(
        &self,
        sa: &IkeSa,
        idi: &Identity,
        eap: bool,
    ) -> Option<String> {
        // Policy by peer address, local address and IDi: an exact dstid
        // match wins over a policy without dstid.
        // Only policies that accept the IKE SA's negotiated transforms: a
        // peer must not negotiate under one policy's proposals and then
        // authenticate into another's (§2.7 selection happened before the
        // identity was known).
        let accepted = sa.handshake.as_ref().and_then(|h| h.accepted_ike.clone());
        let candidates: Vec<String> = self
            .policy_candidates(sa.local.ip(), sa.peer.ip())
            .into_iter()
            .filter(|name| {
                self.policy(name)
                    .is_some_and(|p| p.remote_access.eap.is_some() == eap)
            })
            .filter(|name| {
                self.policy(name).is_some_and(|p| {
                    accepted.as_ref().is_none_or(|a| {
                        proposals::select_ike(
                            &p.ike_proposals,
                            &SecurityAssociation {
                                proposals: vec![a.clone()],
                            },
                        )
                        .is_some()
                    })
                })
            })
            .collect();
        let dstid_of = |name: &String| self.policy(name).and_then(|p| p.dstid.as_ref());
        let by_id = candidates
            .iter()
            .find(|name| dstid_of(name).is_some_and(|d| &identity_of(d) == idi));
        // A DN dstid of another DER encoding than the peer's may still be
        // the same name: ca decides, against the certificate.
        let by_dn = candidates
            .iter()
            .find(|name| dstid_of(name).is_some_and(|d| dstid_may_name(d, idi)));
        let any_id = candidates
            .iter()
            .find(|name| self.policy(name).is_some_and(|p| p.dstid.is_none()));
        by_id.or(by_dn).or(any_id).cloned()
    }

    pub(in crate::engine) fn on_auth_request(
        &mut self,
        spi: u64,
        message_id: u32,
        inner: Vec<Payload>,
    ) {
        // First, before any other handling of the message (EAP's rounds
        // among them): MOBIKE_SUPPORTED is in the request with the SA
        // payload (RFC 4555 §3.2), the first one.
        self.note_peer_mobike(spi, &inner);
        if self.on_eap_auth_request(spi, message_id, &inner) {
            return;
        }
        let msg = Inbound::of(&inner);
        let request = PeerRequest::new(spi, ExchangeType::IkeAuth, message_id);
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        if sa.initiator || sa.state != IkeState::InitDone {
            return;
        }
        self.note_config_request(spi, &inner);
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let idi = msg.idi;
        let auth_payload = msg.auth;
        let (Some(idi), Some(auth_payload), Some(suite), Some(keys)) =
            (idi, auth_payload, sa.suite, sa.keys.as_ref())
        else {
            self.refuse(
                request,
                NotifyType::AuthenticationFailed,
                "no IDi or no AUTH (EAP is not supported)",
            );
            self.stats.auth_invalid();
            self.delete_ike_local(spi, "no AUTH");
            return;
        };
        let Some(policy_name) = self.policy_for_initiator(sa, idi, false) else {
            let why = format!("no policy for identity {}", identity_text(idi));
            self.refuse(request, NotifyType::AuthenticationFailed, &why);
            self.stats.auth_identity_refused();
            self.delete_ike_local(spi, "no policy for the identity");
            return;
        };
        let Some(policy) = self.policy(&policy_name).cloned() else {
            return;
        };
        let method = auth_payload.method.value();
        let certs = match peer_auth_inputs(&policy, method, &inner) {
            Ok(certs) => certs,
            Err(why) => {
                self.refuse(request, NotifyType::AuthenticationFailed, &why);
                self.stats.auth_certificate_refused();
                self.delete_ike_local(spi, "AUTHENTICATION_FAILED");
                return;
            }
        };
        let our_id = if uses_public_keys(&policy) {
            match self.signing_identity(&policy, sa.local.ip()) {
                Ok(id) => id,
                Err(why) => {
                    self.refuse(request, NotifyType::AuthenticationFailed, &why);
                    self.delete_ike_local(spi, "no certificate store from ca");
                    return;
                }
            }
        } else {
            Engine::local_identity(Some(&policy), sa.local.ip())
        };
        let Ok(octets) = auth_octets(suite.prf, sa, keys, Signer::Initiator, &id_body(idi)) else {
            return;
        };
        let transport_requested = msg.notify(NotifyType::UseTransportMode).is_some();
        let transport = policy.encapsulation == Encapsulation::Transport;
        // The Child SA is chosen and narrowed once ca has verified the
        // AUTH: nothing is done for an unauthenticated peer beyond what
        // checking it needs (security review L4).
        let child_offer = match (msg.sa, msg.ts()) {
            (Some(offer), Some((tsi, tsr))) => Some(ChildOffer {
                sa: offer.clone(),
                tsi: tsi.selectors.clone(),
                tsr: tsr.selectors.clone(),
                transport_requested,
            }),
            _ => None,
        };
        let id_body_ours = id_body(&our_id);
        let prf = suite.prf.iana_id();
        let data = auth_payload.data.clone();
        let initial_contact = msg.notify(NotifyType::InitialContact).is_some();
        let peer_id = idi.clone();
        let peer_wire_id = wire_identity(&peer_id);
        let old_policy = sa.policy.clone();
        self.move_to_policy(spi, &old_policy, &policy_name);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.policy = policy_name.clone();
        sa.local_id = our_id;
        if let (true, Some(handshake)) = (uses_public_keys(&policy), sa.handshake.as_deref_mut()) {
            // The initiator's CERTREQ comes in IKE_AUTH (RFC 7296 §1.2).
            note_peer_hints(handshake, &inner);
        }
        sa.peer_id = Some(peer_id.clone());
        sa.state = IkeState::AuthResponding;
        sa.answering = Some(Answer {
            message_id,
            kind: AnswerKind::Auth(Box::new(AuthAnswer {
                peer_id,
                initial_contact,
                transport,
                child_offer,
                child: None,
                spi_in: None,
                reqid: 0,
                id_body: id_body_ours,
            })),
        });
        self.ask_ca(spi, Wait::VerifyInitiator, |id| Ikev2ToCa::VerifyAuth {
            id,
            policy: policy_name,
            prf,
            auth_method: method,
            signed_octets: octets,
            auth_data: data,
            peer_id: peer_wire_id,
            certs,
            eap_session: None,
        });
    }

    /// The Child SA of an IKE_AUTH request, chosen after its AUTH was
    /// verified: the proposal, the flow narrowed to the policy, or the
    /// error notify for the response (RFC 7296 §1.2, §2.9).
    pub(in crate::engine) fn choose_auth_child(
        &self,
        spi: u64,
        policy_name: &str,
        offer: Option<ChildOffer>,
        transport: bool,
    ) -> Result<(iked_common::wire::Proposal, ChildSuite, Selector, usize), NotifyType> {
        let peer = self
            .ikes
            .get(&spi)
            .map_or_else(|| "-".to_string(), |sa| sa.peer.to_string());
        let Some(offer) = offer else {
            log::warn!("policy {policy_name}: the IKE_AUTH of {peer} asks for no Child SA (no SA, TSi or TSr)");
            return Err(NotifyType::NoProposalChosen);
        };
        if let Some(why) = self.child_cap_reached(spi, false) {
            log::warn!("policy {policy_name}: no Child SA in the IKE_AUTH of {peer}: {why}");
            return Err(NotifyType::NoAdditionalSas);
        }
        let policy = self
            .policy(policy_name)
            .ok_or(NotifyType::NoProposalChosen)?;
        let Some((proposal, suite)) =
            proposals::select_child(&policy.child_proposals, &offer.sa, false)
        else {
            log::warn!(
                "policy {policy_name}: none of the {} Child SA proposals of {peer} matches a childsa \
                 proposal; offered {}",
                offer.sa.proposals.len(),
                iked_common::wire::Offered(&offer.sa)
            );
            return Err(NotifyType::NoProposalChosen);
        };
        if transport != offer.transport_requested {
            log::warn!(
                "policy {policy_name}: {peer} asks for {} mode, the policy is {}",
                if offer.transport_requested {
                    "transport"
                } else {
                    "tunnel"
                },
                if transport { "transport" } else { "tunnel" }
            );
            return Err(NotifyType::NoProposalChosen);
        }
        let (flow, index) = match self.narrow_peer_selectors(spi, policy, &offer.tsi, &offer.tsr) {
            Ok(narrowed) => narrowed,
            Err(why) => {
                log::warn!("policy {policy_name}: TS_UNACCEPTABLE for {peer}: {why}");
                return Err(NotifyType::TsUnacceptable);
            }
        };
        Ok((proposal, suite, flow, index))
    }

    pub(in crate::engine) fn answering_auth(&self, spi: u64) -> bool {
        self.ikes.get(&spi).is_some_and(|sa| {
            matches!(
                sa.answering,
                Some(Answer {
                    kind: AnswerKind::Auth(_),
                    ..
                })
            )
        })
    }

    pub(in crate::engine) fn auth_answer_without_child(&mut self, spi: u64) {
        self.refuse_auth_child(spi, NotifyType::NoProposalChosen);
    }

    /// The IKE_AUTH answer goes out without a Child SA, with `error`.
    pub(in crate::engine) fn refuse_auth_child(&mut self, spi: u64, error: NotifyType) {
        if let Some(sa) = self.ikes.get_mut(&spi) {
            if let Some(Answer {
                kind: AnswerKind::Auth(answer),
                ..
            }) = sa.answering.as_mut()
            {
                answer.child = Some(Err(error));
            }
        }
        self.answer_auth_signature(spi);
    }

    pub(in crate::engine) fn answer_auth_failed(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(answer) = sa.answering.take() else {
            return;
        };
        self.refuse(
            PeerRequest::new(spi, ExchangeType::IkeAuth, answer.message_id),
            NotifyType::AuthenticationFailed,
            "the peer's AUTH does not verify",
        );
        self.stats.auth_invalid();
        self.delete_ike_local(spi, "AUTHENTICATION_FAILED");
    }

    pub(in crate::engine) fn answer_auth_signature(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let (
            Some(suite),
            Some(keys),
            Some(Answer {
                kind: AnswerKind::Auth(answer),
                ..
            }),
        ) = (sa.suite, sa.keys.as_ref(), sa.answering.as_ref())
        else {
            return;
        };
        let Ok(octets) = auth_octets(suite.prf, sa, keys, Signer::Responder, &answer.id_body)
        else {
            return;
        };
        let policy = sa.policy.clone();
        let (peer_hash_algorithms, cert_authorities) = self.signature_hints(sa);
        let eap_session = self.eap_msk_session(spi);
        self.ask_ca(spi, Wait::AnswerSign, |id| Ikev2ToCa::SignAuth {
            id,
            policy,
            prf: suite.prf.iana_id(),
            signed_octets: octets,
            peer_hash_algorithms,
            cert_authorities,
            eap_session,
        });
    }

    pub(in crate::engine) fn send_auth_answer(
        &mut self,
        spi: u64,
        auth_method: u8,
        auth_data: Vec<u8>,
        certs: Vec<Vec<u8>>,
    ) {
        // Checked again: other IKE SAs of the policy may have filled it
        // while this one waited for its SPI.
        let cap_reached = self.child_cap_reached(spi, false);
        let after_eap = self.eap_msk_session(spi).is_some();
        let config_reply = self.config_reply(spi);
        let mobike = self.mobike_announcement(spi);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(Answer {
            message_id,
            kind: AnswerKind::Auth(answer),
        }) = sa.answering.take()
        else {
            return;
        };
        // RFC 7296 §1.2: IDr, [CERT,] AUTH, SAr2, TSi, TSr; after EAP
        // (§2.16) IDr and CERT went in the first answer.
        let mut inner = Vec::new();
        if !after_eap {
            inner.push(Payload::IdResponder(sa.local_id.clone()));
        }
        inner.extend(cert_payloads(certs));
        inner.push(Payload::Authentication(Authentication {
            method: AuthMethod::from_value(auth_method),
            data: auth_data,
        }));
        // RFC 7296 §1.2 (and strongSwan's order): CP before SAr2.
        inner.extend(config_reply);
        let (ni, nr) = sa
            .handshake
            .as_deref()
            .map(|h| (h.ni.clone(), h.nr.clone()))
            .unwrap_or_default();
        let mut new_child = None;
        let mut unused_spi = None;
        match (&answer.child, answer.spi_in, cap_reached) {
            (Some(Ok(_)), Some(spi_in), Some(why)) => {
                log::warn!("policy {}: IKE SA up without Child SA: {why}", sa.policy);
                inner.push(Payload::Notify(Notify::new(
                    NotifyType::NoAdditionalSas,
                    Vec::new(),
                )));
                unused_spi = Some(spi_in);
            }
            (Some(Ok((proposal, suite, flow, index))), Some(spi_in), None) => {
                let mut proposal = proposal.clone();
                proposal.spi = spi_in.to_be_bytes().to_vec();
                inner.extend(use_transport_mode(answer.transport));
                inner.push(Payload::SecurityAssociation(SecurityAssociation {
                    proposals: vec![proposal.clone()],
                }));
                // TSi is the peer's side (remote), TSr ours (local).
                inner.extend(traffic_selectors(flow, false));
                let spi_out = <[u8; 4]>::try_from(proposal.spi.as_slice()).ok();
                let peer_spi = answer_peer_spi(&answer);
                if let (Some(_), Some(peer_spi)) = (spi_out, peer_spi) {
                    new_child = Some((spi_in, peer_spi, *suite, *flow, *index));
                } else {
                    unused_spi = Some(spi_in);
                }
            }
            (Some(Err(error)), ..) => {
                log::warn!("policy {}: IKE SA up without Child SA: {error}", sa.policy);
                inner.push(Payload::Notify(Notify::new(*error, Vec::new())));
            }
            _ => {}
        }
        inner.extend(mobike);
        let initial_contact = answer.initial_contact;
        self.send_response(spi, ExchangeType::IkeAuth, message_id, inner);
        if let Some(spi_in) = unused_spi {
            self.release_spi(spi, spi_in);
        }
        self.establish(spi);
        if initial_contact {
            self.drop_stale_sas(spi);
        }
        if let Some(Err(NotifyType::InternalAddressFailure)) = answer.child {
            // No address, no Child SA: the IKE SA has no use (strongSwan
            // deletes it too).
            self.request_delete_ike(spi);
            return;
        }
        if let Some((spi_in, spi_out, suite, flow, index)) = new_child {
            let Some(sa) = self.ikes.get(&spi) else {
                return;
            };
            if let Some(keys) = child_keys(sa, &suite, None, &ni, &nr) {
                self.add_child(
                    spi,
                    spi_in,
                    spi_out,
                    answer.reqid,
                    flow,
                    index,
                    answer.transport,
                    suite,
                    keys,
                    false,
                    lower_nonce(&ni, &nr).to_vec(),
                );
            }
        }
    }

    pub(in crate::engine) fn initiator_verified(&mut self, spi: u64, ok: bool) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(Answer {
            kind: AnswerKind::Auth(answer),
            ..
        }) = sa.answering.as_ref()
        else {
            return;
        };
        if !ok {
            log::warn!(
                "policy {}: AUTHENTICATION_FAILED for {} from {}",
                sa.policy,
                identity_text(&answer.peer_id),
                sa.peer
            );
            self.answer_auth_failed(spi);
            return;
        }
        // Authenticated: its address (CFG_REQUEST), then the Child SA it
        // asked for.
        let transport = answer.transport;
        if self.lease_for_peer(spi).is_err() {
            self.refuse_auth_child(spi, NotifyType::InternalAddressFailure);
            return;
        }
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let policy_name = sa.policy.clone();
        let (peer, local) = (sa.peer.ip(), sa.local.ip());
        let offer = self
            .ikes
            .get_mut(&spi)
            .and_then(|sa| match sa.answering.as_mut() {
                Some(Answer {
                    kind: AnswerKind::Auth(answer),
                    ..
                }) => answer.child_offer.take(),
                _ => None,
            });
        let child = self.choose_auth_child(spi, &policy_name, offer, transport);
        let reqid = match &child {
            Ok((_, _, _, index)) => self.child_reqid(spi, &policy_name, *index),
            Err(_) => 0,
        };
        let child_ok = child.is_ok();
        if let Some(Answer {
            kind: AnswerKind::Auth(answer),
            ..
        }) = self.ikes.get_mut(&spi).and_then(|sa| sa.answering.as_mut())
        {
            answer.child = Some(child);
            answer.reqid = reqid;
        }
        if child_ok {
            self.allocate_spi(spi, Wait::AnswerSpi, peer, local, reqid);
        } else {
            self.answer_auth_signature(spi);
        }
    }
}
