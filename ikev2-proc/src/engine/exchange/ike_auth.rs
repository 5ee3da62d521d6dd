//! IKE_AUTH, initiator (RFC 7296 §1.2, §2.15).

use iked_common::ipc::Ikev2ToCa;
use iked_common::wire::{AuthMethod, Authentication, ExchangeType, Notify, NotifyType, Payload};

use crate::engine::Engine;

use crate::engine::digest::*;
use crate::engine::identity::*;
use crate::engine::keys::*;
use crate::engine::signature_auth::*;
use crate::engine::state::*;

impl Engine {
    pub(in crate::engine) fn request_auth_signature(&mut self, spi: u64) {
        if self.start_eap_client(spi) {
            return;
        }
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let (Some(suite), Some(keys), Some(Prep::Auth { id_body, .. })) =
            (sa.suite, sa.keys.as_ref(), sa.prep.as_ref())
        else {
            return;
        };
        let Ok(octets) = auth_octets(suite.prf, sa, keys, Signer::Initiator, id_body) else {
            return;
        };
        let policy = sa.policy.clone();
        let (peer_hash_algorithms, cert_authorities) = self.signature_hints(sa);
        self.ask_ca(spi, Wait::RequestSign, |id| Ikev2ToCa::SignAuth {
            id,
            policy,
            prf: suite.prf.iana_id(),
            signed_octets: octets,
            peer_hash_algorithms,
            cert_authorities,
            eap_session: None,
        });
    }

    pub(in crate::engine) fn send_auth_request(
        &mut self,
        spi: u64,
        auth_method: u8,
        auth_data: Vec<u8>,
        certs: Vec<Vec<u8>>,
    ) {
        let auth = Authentication {
            method: AuthMethod::from_value(auth_method),
            data: auth_data,
        };
        self.send_first_auth_request(spi, Some(auth), certs);
    }

    /// Our first IKE_AUTH request; without AUTH when we authenticate
    /// with EAP (RFC 7296 §2.16).
    pub(in crate::engine) fn send_first_auth_request(
        &mut self,
        spi: u64,
        auth: Option<Authentication>,
        certs: Vec<Vec<u8>>,
    ) {
        let certreq = self
            .ikes
            .get(&spi)
            .and_then(|sa| self.policy(&sa.policy))
            .filter(|p| uses_public_keys(p))
            .and_then(|_| self.our_certreq());
        let has_other = {
            let Some(sa) = self.ikes.get(&spi) else {
                return;
            };
            self.by_policy.get(&sa.policy).is_some_and(|set| {
                set.iter().any(|other| {
                    *other != spi
                        && self
                            .ikes
                            .get(other)
                            .is_some_and(|o| o.state == IkeState::Established)
                })
            })
        };
        let config_request = self.config_request(spi);
        let mobike = self.mobike_announcement(spi);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(Prep::Auth { child, .. }) = sa.prep.take() else {
            return;
        };
        // RFC 7296 §1.2: IDi, [CERT,] [CERTREQ,] [IDr,] AUTH, SAi2, TSi, TSr.
        let mut inner = vec![Payload::IdInitiator(sa.local_id.clone())];
        inner.extend(cert_payloads(certs));
        if !has_other {
            // RFC 7296 §2.4: we hold no other IKE SA with this peer.
            inner.push(Payload::Notify(Notify::new(
                NotifyType::InitialContact,
                Vec::new(),
            )));
        }
        inner.extend(certreq);
        // IDr tells a responder with several identities which one we expect.
        let wanted_idr = self
            .policies
            .iter()
            .find(|p| p.name == sa.policy)
            .and_then(|p| p.dstid.as_ref())
            .map(identity_of);
        if let Some(idr) = wanted_idr {
            inner.push(Payload::IdResponder(idr));
        }
        inner.extend(auth.map(Payload::Authentication));
        inner.extend(config_request);
        if let Some(draft) = &child {
            inner.extend(use_transport_mode(draft.transport));
            inner.push(Payload::SecurityAssociation(draft.offered.clone()));
            inner.extend(traffic_selectors(&draft.flow, true));
        }
        inner.extend(mobike);
        sa.state = IkeState::AuthSent;
        sa.timers.stop_removal();
        self.send_request(
            spi,
            ExchangeType::IkeAuth,
            inner,
            RequestCtx::Auth { child },
        );
        self.schedule(spi);
    }

    pub(in crate::engine) fn on_auth_response(
        &mut self,
        spi: u64,
        inner: Vec<Payload>,
        child: Option<ChildDraft>,
    ) {
        // First, before any other handling of the response (EAP's rounds
        // among them): with EAP the gateway's MOBIKE_SUPPORTED comes in
        // the last IKE_AUTH response, the one with the SA payload.
        self.note_peer_mobike(spi, &inner);
        let Some((inner, child)) = self.on_eap_auth_response(spi, inner, child) else {
            return;
        };
        let msg = Inbound::of(&inner);
        if let Some(NotifyType::AuthenticationFailed) = msg.error {
            if let Some(sa) = self.ikes.get(&spi) {
                log::warn!(
                    "policy {}: peer {} refused our authentication (AUTHENTICATION_FAILED)",
                    sa.policy,
                    sa.peer
                );
            }
            self.release_draft(spi, child);
            self.stats.auth_refused_by_peer();
            self.delete_ike_local(spi, "AUTHENTICATION_FAILED");
            return;
        }
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let idr = msg.idr;
        let auth = msg.auth;
        let (Some(idr), Some(auth_payload), Some(suite), Some(_)) =
            (idr, auth, sa.suite, sa.keys.as_ref())
        else {
            // An answer with an error notify and no IDr or AUTH is the
            // peer's refusal, not a malformed message: strongSwan 6 answers
            // a failed first Child SA with only N(NO_PROPOSAL_CHOSEN). RFC
            // 7296 §2.21.2 lets the IKE SA stand only with the peer's AUTH,
            // so there is none without it.
            let reason = match msg.error {
                Some(error) => {
                    log::warn!(
                        "policy {}: peer {} refused IKE_AUTH: {error}",
                        sa.policy,
                        sa.peer
                    );
                    format!("peer refused IKE_AUTH: {error}")
                }
                None => {
                    log::warn!("IKE SA {spi:016x}: IKE_AUTH response without IDr or AUTH");
                    "malformed IKE_AUTH response".to_string()
                }
            };
            self.release_draft(spi, child);
            self.delete_ike_local(spi, &reason);
            return;
        };
        // The responder must be who the policy says (dstid), if it says;
        // a DN is compared by ca, against the certificate too.
        let Some(policy_config) = self.policy(&sa.policy).cloned() else {
            return;
        };
        if let Some(dstid) = policy_config.dstid.as_ref() {
            if !dstid_may_name(dstid, idr) {
                log::warn!(
                    "policy {}: responder identifies as {}, expected {}",
                    sa.policy,
                    identity_text(idr),
                    identity_text(&identity_of(dstid))
                );
                self.release_draft(spi, child);
                self.stats.auth_identity_refused();
                self.delete_ike_local(spi, "wrong responder identity");
                return;
            }
        }
        let method = auth_payload.method.value();
        let certs = match peer_auth_inputs(&policy_config, method, &inner) {
            Ok(certs) => certs,
            Err(why) => {
                log::warn!(
                    "policy {}: responder {} refused (AUTHENTICATION_FAILED): {why}",
                    sa.policy,
                    sa.peer
                );
                if let Some(handshake) = self
                    .ikes
                    .get_mut(&spi)
                    .and_then(|sa| sa.handshake.as_deref_mut())
                {
                    handshake.auth_check = Some(AuthCheck {
                        message: Vec::new(),
                        child,
                    });
                }
                self.responder_verified(spi, false);
                return;
            }
        };
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(keys) = sa.keys.as_ref() else {
            return;
        };
        let Ok(octets) = auth_octets(suite.prf, sa, keys, Signer::Responder, &id_body(idr)) else {
            self.release_draft(spi, child);
            return;
        };
        let policy = sa.policy.clone();
        let data = auth_payload.data.clone();
        let prf = suite.prf.iana_id();
        let peer_id = wire_identity(idr);
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.peer_id = Some(idr.clone());
            if let Some(handshake) = sa.handshake.as_deref_mut() {
                handshake.auth_check = Some(AuthCheck {
                    message: inner,
                    child,
                });
            }
        }
        self.ask_ca(spi, Wait::VerifyResponder, |id| Ikev2ToCa::VerifyAuth {
            id,
            policy,
            prf,
            auth_method: method,
            signed_octets: octets,
            auth_data: data,
            peer_id,
            certs,
            eap_session: None,
        });
    }

    pub(in crate::engine) fn responder_verified(&mut self, spi: u64, ok: bool) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(handshake) = sa.handshake.as_deref_mut() else {
            return;
        };
        let Some(check) = handshake.auth_check.take() else {
            return;
        };
        // Establishing drops the handshake: keep its nonces for the child.
        let (ni, nr) = (handshake.ni.clone(), handshake.nr.clone());
        if !ok {
            log::warn!(
                "policy {}: responder {} failed authentication",
                sa.policy,
                sa.peer
            );
            self.release_draft(spi, check.child);
            // RFC 7296 §2.21.2: tell the peer in a separate INFORMATIONAL
            // (sent once, unanswered), then forget the IKE SA.
            self.send_request(
                spi,
                ExchangeType::Informational,
                vec![Payload::Notify(Notify::new(
                    NotifyType::AuthenticationFailed,
                    Vec::new(),
                ))],
                RequestCtx::DeleteIke,
            );
            self.stats.auth_invalid();
            self.delete_ike_local(spi, "responder AUTH wrong");
            return;
        }
        let Some(check) = self.eap_after_gateway_verified(spi, check) else {
            return;
        };
        self.establish(spi);
        if let Err(why) = self.take_config_reply(spi, &check.message) {
            log::warn!("IKE SA {spi:016x}: {why}: deleting it");
            self.release_draft(spi, check.child);
            self.request_delete_ike(spi);
            return;
        }
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        if let Some(draft) = check.child {
            if let Some(error) = Inbound::of(&check.message).error {
                log::warn!(
                    "policy {}: no Child SA: peer refused it: {error}",
                    sa.policy
                );
                self.release_spi(spi, draft.spi_in);
            } else {
                let spi_in = draft.spi_in;
                let created =
                    self.complete_child_as_initiator(spi, draft, &check.message, None, &ni, &nr);
                if created.is_none() {
                    self.release_spi(spi, spi_in);
                }
            }
        }
        self.queue_additional_children(spi);
    }
}
