//! EAP in IKE_AUTH as gateway (RFC 7296 §2.16): the initiator leaves AUTH
//! out of its first IKE_AUTH request; we answer with our certificate AUTH
//! and ca's first EAP Request, carry the EAP packets between the peer and
//! ca until ca says `Succeeded` (EAP-Success) or `Failed` (EAP-Failure and
//! AUTHENTICATION_FAILED), then check the initiator's MSK AUTH through ca
//! and answer as a non-EAP IKE_AUTH does after verification, with our MSK
//! AUTH and without IDr and CERT again:
//!
//! ```text
//! HDR, SK {IDi, [CERTREQ,] [IDr,] SAi2, TSi, TSr}  -->
//!                         <--  HDR, SK {IDr, [CERT,] AUTH, EAP}
//! HDR, SK {EAP}  -->  ...  <--  HDR, SK {EAP (success)}
//! HDR, SK {AUTH}  -->
//!                         <--  HDR, SK {AUTH, SAr2, TSi, TSr}
//! ```

use iked_common::config::Encapsulation;
use iked_common::ipc::{EapRole, EapStep, Ikev2ToCa};
use iked_common::wire::{Eap, ExchangeType, Notify, NotifyType, Payload};

use crate::engine::Engine;

use crate::engine::digest::*;
use crate::engine::exchange::eap::*;
use crate::engine::identity::*;
use crate::engine::keys::*;
use crate::engine::message::*;
use crate::engine::signature_auth::*;
use crate::engine::state::*;

impl Engine {
    /// An IKE_AUTH request that is EAP's (RFC 7296 §2.16): a first one
    /// without AUTH, or a later one of a conversation under way. True
    /// when handled here; false leaves it to `on_auth_request`.
    pub(in crate::engine) fn on_eap_auth_request(
        &mut self,
        spi: u64,
        message_id: u32,
        inner: &[Payload],
    ) -> bool {
        let Some(sa) = self.ikes.get(&spi) else {
            return false;
        };
        if sa.initiator {
            return false;
        }
        match sa.eap.as_ref().map(|e| e.phase) {
            None => {
                let msg = Inbound::of(inner);
                if sa.state != IkeState::InitDone || msg.auth.is_some() {
                    return false;
                }
                self.start_eap_server(spi, message_id, inner);
            }
            Some(EapPhase::ServerConversing) => self.eap_server_response(spi, message_id, inner),
            Some(EapPhase::ServerAwaitingAuth) => self.eap_server_final(spi, message_id, inner),
            Some(phase) => {
                // A request while ca works is dropped by on_request (an
                // answer is being prepared); nothing else is expected.
                log::debug!("IKE SA {spi:016x}: IKE_AUTH request {message_id} in EAP phase {phase:?} dropped");
            }
        }
        true
    }

    /// Refuses the IKE_AUTH request with AUTHENTICATION_FAILED and forgets
    /// the IKE SA (nothing was installed for it).
    fn refuse_eap(&mut self, spi: u64, message_id: u32, why: &str) {
        let request = PeerRequest::new(spi, ExchangeType::IkeAuth, message_id);
        self.refuse(request, NotifyType::AuthenticationFailed, why);
        self.stats.auth_eap_failed();
        self.delete_ike_local(spi, "AUTHENTICATION_FAILED (EAP)");
    }

    /// The first IKE_AUTH request without AUTH: the initiator asks for EAP.
    fn start_eap_server(&mut self, spi: u64, message_id: u32, inner: &[Payload]) {
        let msg = Inbound::of(inner);
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let (Some(idi), Some(suite), Some(keys)) = (msg.idi, sa.suite, sa.keys.as_ref()) else {
            return self.refuse_eap(spi, message_id, "no IDi and no AUTH");
        };
        let Some(policy_name) = self.policy_for_initiator(sa, idi, true) else {
            let why = format!(
                "the initiator {} sent no AUTH (it asks for EAP, RFC 7296 §2.16) and no policy \
                 with eap takes it",
                identity_text(idi)
            );
            return self.refuse_eap(spi, message_id, &why);
        };
        let Some(policy) = self.policy(&policy_name).cloned() else {
            return;
        };
        if !uses_public_keys(&policy) {
            let why = format!(
                "policy {policy_name} has eap but no certificate to prove us with (RFC 7296 §2.16)"
            );
            return self.refuse_eap(spi, message_id, &why);
        }
        let our_id = match self.signing_identity(&policy, sa.local.ip()) {
            Ok(id) => id,
            Err(why) => return self.refuse_eap(spi, message_id, &why),
        };
        let id_body_ours = id_body(&our_id);
        let Ok(octets) = auth_octets(suite.prf, sa, keys, Signer::Responder, &id_body_ours) else {
            return;
        };
        // As on the non-EAP path, the Child SA offer is only looked at
        // once the initiator is authenticated: here, after EAP and its
        // MSK AUTH.
        let child_offer = match (msg.sa, msg.ts()) {
            (Some(offer), Some((tsi, tsr))) => Some(ChildOffer {
                sa: offer.clone(),
                tsi: tsi.selectors.clone(),
                tsr: tsr.selectors.clone(),
                transport_requested: msg.notify(NotifyType::UseTransportMode).is_some(),
            }),
            _ => None,
        };
        let answer = AuthAnswer {
            peer_id: idi.clone(),
            initial_contact: msg.notify(NotifyType::InitialContact).is_some(),
            transport: policy.encapsulation == Encapsulation::Transport,
            child_offer,
            child: None,
            spi_in: None,
            reqid: 0,
            id_body: id_body_ours,
        };
        let prf = suite.prf.iana_id();
        let peer_id = idi.clone();
        let old_policy = sa.policy.clone();
        self.move_to_policy(spi, &old_policy, &policy_name);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.policy = policy_name.clone();
        sa.local_id = our_id;
        if let Some(handshake) = sa.handshake.as_deref_mut() {
            // The initiator's CERTREQ comes in IKE_AUTH (RFC 7296 §1.2).
            note_peer_hints(handshake, inner);
        }
        log::info!(
            "policy {policy_name}: {} from {} asks for EAP (IKE_AUTH without AUTH)",
            identity_text(&peer_id),
            sa.peer
        );
        sa.peer_id = Some(peer_id);
        sa.state = IkeState::AuthResponding;
        sa.answering = Some(Answer {
            message_id,
            kind: AnswerKind::Auth(Box::new(answer)),
        });
        sa.eap = Some(Box::new(EapExchange::new(EapPhase::ServerSigning)));
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let (peer_hash_algorithms, cert_authorities) = self.signature_hints(sa);
        // Its CFG_REQUEST waits for the end of EAP, like the Child SA offer.
        self.note_config_request(spi, inner);
        self.ask_ca(spi, Wait::EapSign, |id| Ikev2ToCa::SignAuth {
            id,
            policy: policy_name,
            prf,
            signed_octets: octets,
            peer_hash_algorithms,
            cert_authorities,
            eap_session: None,
        });
    }

    /// Our certificate AUTH for the first answer is made: now ca's first
    /// EAP Request.
    pub(in crate::engine) fn eap_server_signed(
        &mut self,
        spi: u64,
        auth_method: u8,
        auth_data: Vec<u8>,
        certs: Vec<Vec<u8>>,
    ) {
        let Some(eap) = self.ikes.get_mut(&spi).and_then(|sa| sa.eap.as_mut()) else {
            return;
        };
        if eap.phase != EapPhase::ServerSigning {
            return;
        }
        eap.first_auth = Some((auth_method, auth_data, certs));
        eap.phase = EapPhase::ServerStarting;
        self.ask_eap_step(spi, EapRole::Server, Vec::new());
    }

    /// A later IKE_AUTH request of the conversation: its EAP Response to ca.
    fn eap_server_response(&mut self, spi: u64, message_id: u32, inner: &[Payload]) {
        let Some(packet) = eap_payload(inner) else {
            return self.refuse_eap(
                spi,
                message_id,
                "IKE_AUTH request without EAP payload while EAP runs",
            );
        };
        let packet = packet.to_vec();
        if let Some(claimed) = eap_identity_response(&packet) {
            if let Some(eap) = self.ikes.get_mut(&spi).and_then(|sa| sa.eap.as_mut()) {
                eap.claimed_identity = Some(claimed);
            }
        }
        if !self.resume_eap_answer(spi, message_id) {
            return;
        }
        self.ask_eap_step(spi, EapRole::Server, packet);
    }

    /// Puts the kept first request back as the answer being prepared (a
    /// retransmission or another request is dropped meanwhile).
    fn resume_eap_answer(&mut self, spi: u64, message_id: u32) -> bool {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return false;
        };
        let Some(kept) = sa.eap.as_mut().and_then(|e| e.kept.take()) else {
            return false;
        };
        sa.answering = Some(Answer {
            message_id,
            kind: AnswerKind::Auth(kept),
        });
        true
    }

    /// ca's step as EAP server: the next EAP Request, EAP-Success or
    /// EAP-Failure to answer with.
    pub(in crate::engine) fn eap_server_step(&mut self, spi: u64, step: EapStep) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(phase) = sa.eap.as_ref().map(|e| e.phase) else {
            return;
        };
        let Some(answer) = sa.answering.take() else {
            return;
        };
        let message_id = answer.message_id;
        let AnswerKind::Auth(kept) = answer.kind else {
            return;
        };
        let peer = sa.peer;
        let policy = sa.policy.clone();
        let user = identity_text(&kept.peer_id);
        let started = matches!(phase, EapPhase::ServerSigning | EapPhase::ServerStarting);
        let mut payloads = Vec::new();
        match step {
            EapStep::Send(packet) if phase == EapPhase::ServerStarting => {
                let Some((method, data, certs)) = sa.eap.as_mut().and_then(|e| e.first_auth.take())
                else {
                    return;
                };
                // RFC 7296 §2.16: IDr, [CERT,] AUTH, EAP.
                payloads.push(Payload::IdResponder(sa.local_id.clone()));
                payloads.extend(cert_payloads(certs));
                payloads.push(auth_payload(method, data));
                payloads.push(Payload::Eap(Eap(packet)));
                self.set_eap_phase(spi, EapPhase::ServerConversing);
            }
            EapStep::Send(packet) if phase == EapPhase::ServerConversing => {
                payloads.push(Payload::Eap(Eap(packet)));
            }
            EapStep::Succeeded { message, identity } if phase == EapPhase::ServerConversing => {
                log::info!(
                    "policy {policy}: {user} from {peer} authenticated with EAP as '{}'",
                    identity.escape_debug()
                );
                sa.eap_identity = Some(identity);
                payloads.push(Payload::Eap(Eap(message)));
                self.set_eap_phase(spi, EapPhase::ServerAwaitingAuth);
            }
            EapStep::Failed { message, reason } => {
                log::warn!(
                    "policy {policy}: EAP authentication of {user} from {peer} failed: {reason}"
                );
                // The EAP-Failure (RFC 3748 §4.2) and AUTHENTICATION_FAILED
                // (RFC 7296 §2.21.2); nothing is installed.
                let mut refusal = vec![Payload::Notify(Notify::new(
                    NotifyType::AuthenticationFailed,
                    Vec::new(),
                ))];
                if !message.is_empty() && !started {
                    refusal.push(Payload::Eap(Eap(message)));
                }
                self.send_response(spi, ExchangeType::IkeAuth, message_id, refusal);
                self.stats.auth_eap_failed();
                self.delete_ike_local(spi, "EAP authentication failed");
                return;
            }
            other => {
                log::warn!(
                    "policy {policy}: ca's EAP step does not fit phase {phase:?} of {user} from {peer}: {}",
                    step_text(&other)
                );
                return self.refuse_eap(spi, message_id, "EAP out of order");
            }
        }
        if !self.count_eap_round(spi) {
            return self.refuse_eap(spi, message_id, "too many EAP round trips");
        }
        if let Some(eap) = self.ikes.get_mut(&spi).and_then(|sa| sa.eap.as_mut()) {
            eap.kept = Some(kept);
        }
        self.send_response(spi, ExchangeType::IkeAuth, message_id, payloads);
        self.schedule(spi);
    }

    /// The last IKE_AUTH request after EAP-Success: the initiator's AUTH,
    /// keyed with the MSK (RFC 7296 §2.16), checked by ca; the rest is the
    /// path of a non-EAP IKE_AUTH (`initiator_verified`).
    fn eap_server_final(&mut self, spi: u64, message_id: u32, inner: &[Payload]) {
        let msg = Inbound::of(inner);
        let Some(auth) = msg.auth else {
            return self.refuse_eap(spi, message_id, "no AUTH after EAP-Success");
        };
        let method = auth.method.value();
        if method != MSK_AUTH_METHOD {
            let why = format!(
                "the AUTH after EAP is of method {method} ({}), not the shared key MIC ({MSK_AUTH_METHOD}) keyed with the MSK",
                auth.method
            );
            return self.refuse_eap(spi, message_id, &why);
        }
        let Some(request) = self.msk_verify_request(spi, Signer::Initiator, auth) else {
            return;
        };
        if !self.resume_eap_answer(spi, message_id) {
            return;
        }
        self.set_eap_phase(spi, EapPhase::ServerFinal);
        self.ask_ca(spi, Wait::VerifyInitiator, request);
    }
}

/// A step's kind for logs (never its bytes).
pub(crate) fn step_text(step: &EapStep) -> String {
    match step {
        EapStep::Send(packet) => format!("send an EAP {}", eap_code_text(packet)),
        EapStep::Succeeded { .. } => "succeeded".into(),
        EapStep::Failed { reason, .. } => format!("failed: {reason}"),
    }
}
