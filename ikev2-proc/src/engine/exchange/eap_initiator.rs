//! EAP in IKE_AUTH as client (RFC 7296 §2.16), for a policy with `eap`:
//! our first IKE_AUTH has no AUTH; the gateway's certificate AUTH is
//! checked by ca BEFORE any EAP packet of the gateway reaches ca's EAP
//! peer; each EAP Request goes to ca and ca's Response back to the
//! gateway; a gateway's EAP-Success is accepted only when ca says the
//! method completed (`Succeeded`; an early one is refused, CVE-2021-45079's
//! class); then our MSK AUTH (ca), the gateway's MSK AUTH checked (ca), and
//! the Child SA as after a non-EAP IKE_AUTH.
//!
//! The Child SA draft of the first request travels with each request
//! (`RequestCtx::Auth`) and, while ca works, in `Prep::Auth`, so that
//! removing the SA at any point releases its SPI.

use iked_common::ipc::{EapRole, EapStep, Ikev2ToCa};
use iked_common::wire::{Eap, ExchangeType, Payload};

use crate::engine::Engine;

use crate::engine::digest::*;
use crate::engine::exchange::eap::*;
use crate::engine::exchange::eap_responder::step_text;
use crate::engine::identity::*;
use crate::engine::keys::*;
use crate::engine::state::*;
use crate::engine::timers::IkeTimer;

impl Engine {
    /// Our first IKE_AUTH under a policy with `eap`: without AUTH (and
    /// without CERT), instead of asking ca to sign. True when sent so.
    pub(in crate::engine) fn start_eap_client(&mut self, spi: u64) -> bool {
        let Some(sa) = self.ikes.get(&spi) else {
            return false;
        };
        let eap_policy = self
            .policy(&sa.policy)
            .is_some_and(|p| p.remote_access.eap.is_some());
        if !sa.initiator || !eap_policy || sa.eap.is_some() {
            return false;
        }
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.eap = Some(Box::new(EapExchange::new(EapPhase::ClientFirstSent)));
        }
        self.send_first_auth_request(spi, None, Vec::new());
        // The whole conversation within the half-open time, whatever the
        // gateway (or ca) makes of it.
        let deadline = self.now + self.settings.half_open_timeout;
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.timers.set(IkeTimer::Preparing, deadline);
        }
        self.schedule(spi);
        true
    }

    /// Gives the EAP conversation up: logged, the draft's SPI released,
    /// the IKE SA forgotten (nothing was installed).
    fn abandon_eap_client(&mut self, spi: u64, child: Option<ChildDraft>, why: &str) {
        if let Some(sa) = self.ikes.get(&spi) {
            log::warn!(
                "policy {}: EAP with gateway {} failed: {why}",
                sa.policy,
                sa.peer
            );
        }
        self.release_draft(spi, child);
        self.stats.auth_eap_failed();
        self.delete_ike_local(spi, "EAP authentication failed");
    }

    /// An IKE_AUTH response while EAP runs, taken here; the first one (the
    /// gateway's IDr, CERT and AUTH) is given back to `on_auth_response`,
    /// whose check of the AUTH ends in `eap_after_gateway_verified`.
    pub(in crate::engine) fn on_eap_auth_response(
        &mut self,
        spi: u64,
        inner: Vec<Payload>,
        child: Option<ChildDraft>,
    ) -> Option<(Vec<Payload>, Option<ChildDraft>)> {
        let phase = match self.eap_phase(spi) {
            None | Some(EapPhase::ClientFirstSent) => return Some((inner, child)),
            Some(phase) => phase,
        };
        let msg = Inbound::of(&inner);
        if let Some(error) = msg.error {
            let why = format!("the gateway refused IKE_AUTH: {error}");
            self.abandon_eap_client(spi, child, &why);
            return None;
        }
        match phase {
            EapPhase::ClientConversing => {
                let Some(packet) = eap_payload(&inner) else {
                    self.abandon_eap_client(spi, child, "IKE_AUTH response without EAP payload");
                    return None;
                };
                let packet = packet.to_vec();
                self.eap_to_ca(spi, child, packet);
            }
            EapPhase::ClientFinalSent => self.check_gateway_msk_auth(spi, inner, child),
            other => {
                let why = format!("IKE_AUTH response in EAP phase {other:?}");
                self.abandon_eap_client(spi, child, &why);
            }
        }
        None
    }

    /// The gateway's certificate AUTH is verified: its EAP packet may go
    /// to ca now. Returns the check for the non-EAP path otherwise (and
    /// after our MSK AUTH, for the Child SA).
    pub(in crate::engine) fn eap_after_gateway_verified(
        &mut self,
        spi: u64,
        check: AuthCheck,
    ) -> Option<AuthCheck> {
        if self.eap_phase(spi) != Some(EapPhase::ClientFirstSent) {
            return Some(check);
        }
        let Some(packet) = eap_payload(&check.message).map(<[u8]>::to_vec) else {
            self.abandon_eap_client(
                spi,
                check.child,
                "the gateway proved itself but sent no EAP Request",
            );
            return None;
        };
        if let Some(sa) = self.ikes.get(&spi) {
            log::info!(
                "policy {}: gateway {} proved itself ({}), EAP goes on",
                sa.policy,
                sa.peer,
                sa.peer_id.as_ref().map(identity_text).unwrap_or_default()
            );
        }
        self.set_eap_phase(spi, EapPhase::ClientConversing);
        self.eap_to_ca(spi, check.child, packet);
        None
    }

    /// A packet of the gateway to ca's EAP peer; the draft waits in the
    /// preparation meanwhile.
    fn eap_to_ca(&mut self, spi: u64, child: Option<ChildDraft>, packet: Vec<u8>) {
        if !self.count_eap_round(spi) {
            return self.abandon_eap_client(spi, child, "too many EAP round trips");
        }
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let id_body = id_body(&sa.local_id);
        sa.prep = Some(Prep::Auth { child, id_body });
        self.ask_eap_step(spi, EapRole::Client, packet);
    }

    fn take_prepared_draft(&mut self, spi: u64) -> Option<ChildDraft> {
        match self.ikes.get_mut(&spi)?.prep.take() {
            Some(Prep::Auth { child, .. }) => child,
            _ => None,
        }
    }

    /// ca's step as EAP peer.
    pub(in crate::engine) fn eap_client_step(&mut self, spi: u64, step: EapStep) {
        if self.eap_phase(spi) != Some(EapPhase::ClientConversing) {
            let child = self.take_prepared_draft(spi);
            let why = format!("ca's EAP step out of order: {}", step_text(&step));
            return self.abandon_eap_client(spi, child, &why);
        }
        match step {
            EapStep::Send(packet) => {
                let child = self.take_prepared_draft(spi);
                self.send_request(
                    spi,
                    ExchangeType::IkeAuth,
                    vec![Payload::Eap(Eap(packet))],
                    RequestCtx::Auth { child },
                );
                self.schedule(spi);
            }
            EapStep::Succeeded { identity, .. } => {
                let Some(sa) = self.ikes.get_mut(&spi) else {
                    return;
                };
                log::info!(
                    "policy {}: EAP with gateway {} succeeded as '{}'",
                    sa.policy,
                    sa.peer,
                    identity.escape_debug()
                );
                sa.eap_identity = Some(identity);
                self.set_eap_phase(spi, EapPhase::ClientSigning);
                self.sign_client_msk_auth(spi);
            }
            EapStep::Failed { reason, .. } => {
                let child = self.take_prepared_draft(spi);
                self.abandon_eap_client(spi, child, &reason);
            }
        }
    }

    /// Our AUTH after EAP, keyed with the MSK by ca (RFC 7296 §2.16).
    fn sign_client_msk_auth(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let (Some(suite), Some(keys)) = (sa.suite, sa.keys.as_ref()) else {
            return;
        };
        let Ok(octets) = auth_octets(
            suite.prf,
            sa,
            keys,
            Signer::Initiator,
            &id_body(&sa.local_id),
        ) else {
            return;
        };
        let policy = sa.policy.clone();
        self.ask_ca(spi, Wait::EapSign, |id| Ikev2ToCa::SignAuth {
            id,
            policy,
            prf: suite.prf.iana_id(),
            signed_octets: octets,
            peer_hash_algorithms: Vec::new(),
            cert_authorities: Vec::new(),
            eap_session: Some(spi),
        });
    }

    /// Our MSK AUTH is made: the last IKE_AUTH request, AUTH alone.
    pub(in crate::engine) fn eap_client_signed(
        &mut self,
        spi: u64,
        auth_method: u8,
        auth_data: Vec<u8>,
    ) {
        if self.eap_phase(spi) != Some(EapPhase::ClientSigning) {
            return;
        }
        let child = self.take_prepared_draft(spi);
        self.set_eap_phase(spi, EapPhase::ClientFinalSent);
        self.send_request(
            spi,
            ExchangeType::IkeAuth,
            vec![auth_payload(auth_method, auth_data)],
            RequestCtx::Auth { child },
        );
        self.schedule(spi);
    }

    /// The gateway's last answer: its MSK AUTH, checked by ca, then the
    /// Child SA by `responder_verified` (its SA and TS are in this answer).
    fn check_gateway_msk_auth(&mut self, spi: u64, inner: Vec<Payload>, child: Option<ChildDraft>) {
        let msg = Inbound::of(&inner);
        let Some(auth) = msg.auth else {
            return self.abandon_eap_client(spi, child, "the gateway's last answer has no AUTH");
        };
        let method = auth.method.value();
        if method != MSK_AUTH_METHOD {
            let why = format!(
                "the gateway's AUTH after EAP is of method {method}, not the shared key MIC ({MSK_AUTH_METHOD})"
            );
            return self.abandon_eap_client(spi, child, &why);
        }
        let Some(request) = self.msk_verify_request(spi, Signer::Responder, auth) else {
            return;
        };
        if let Some(handshake) = self
            .ikes
            .get_mut(&spi)
            .and_then(|sa| sa.handshake.as_deref_mut())
        {
            handshake.auth_check = Some(AuthCheck {
                message: inner,
                child,
            });
        }
        self.ask_ca(spi, Wait::VerifyResponder, request);
    }
}
