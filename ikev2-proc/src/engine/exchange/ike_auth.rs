//! IKE_AUTH, initiator (RFC 7296 §1.2, §2.15).

use iked_common::ipc::Ikev2ToCa;
use iked_common::wire::{AuthMethod, Authentication, ExchangeType, Notify, NotifyType, Payload};

use crate::engine::Engine;

use crate::engine::digest::*;
use crate::engine::identity::*;
use crate::engine::ipc::*;
use crate::engine::keys::*;
use crate::engine::state::*;

impl Engine {
    pub(in crate::engine) fn request_spi_ready(&mut self, spi: u64, child_spi: u32) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        match sa.prep.as_mut() {
            Some(Prep::Auth {
                child: Some(draft), ..
            }) => {
                draft.spi_in = child_spi;
                for p in &mut draft.offered.proposals {
                    p.spi = child_spi.to_be_bytes().to_vec();
                }
                self.request_auth_signature(spi);
            }
            Some(Prep::CreateChild { .. }) => self.send_create_child(spi, child_spi),
            _ => log::debug!("IKE SA {spi:016x}: SPI arrived with nothing to prepare"),
        }
    }

    pub(in crate::engine) fn request_auth_signature(&mut self, spi: u64) {
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
        self.ask_ca(spi, Wait::RequestSign, |id| Ikev2ToCa::SignAuth {
            id,
            policy,
            prf: suite.prf.iana_id(),
            signed_octets: octets,
        });
    }

    pub(in crate::engine) fn send_auth_request(
        &mut self,
        spi: u64,
        auth_method: u8,
        auth_data: Vec<u8>,
    ) {
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
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(Prep::Auth { child, .. }) = sa.prep.take() else {
            return;
        };
        let mut inner = vec![Payload::IdInitiator(sa.local_id.clone())];
        if !has_other {
            // RFC 7296 §2.4: we hold no other IKE SA with this peer.
            inner.push(Payload::Notify(Notify::new(
                NotifyType::InitialContact,
                Vec::new(),
            )));
        }
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
        inner.push(Payload::Authentication(Authentication {
            method: AuthMethod::from_value(auth_method),
            data: auth_data,
        }));
        if let Some(draft) = &child {
            inner.extend(use_transport_mode(draft.transport));
            inner.push(Payload::SecurityAssociation(draft.offered.clone()));
            inner.extend(traffic_selectors(&draft.flow, true));
        }
        sa.state = IkeState::AuthSent;
        sa.expiry = None;
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
        if let Some(NotifyType::AuthenticationFailed) = error_notify(&inner) {
            if let Some(sa) = self.ikes.get(&spi) {
                log::warn!(
                    "policy {}: peer {} refused our authentication (AUTHENTICATION_FAILED)",
                    sa.policy,
                    sa.peer
                );
            }
            self.delete_ike_local(spi, "AUTHENTICATION_FAILED");
            return;
        }
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let idr = find_payload(&inner, |p| match p {
            Payload::IdResponder(id) => Some(id),
            _ => None,
        });
        let auth = find_payload(&inner, |p| match p {
            Payload::Authentication(a) => Some(a),
            _ => None,
        });
        let (Some(idr), Some(auth_payload), Some(suite), Some(keys)) =
            (idr, auth, sa.suite, sa.keys.as_ref())
        else {
            log::warn!("IKE SA {spi:016x}: IKE_AUTH response without IDr or AUTH");
            self.delete_ike_local(spi, "malformed IKE_AUTH response");
            return;
        };
        // The responder must be who the policy says (dstid), if it says.
        let expected = self
            .policy(&sa.policy)
            .and_then(|p| p.dstid.as_ref())
            .map(identity_of);
        if let Some(expected) = expected {
            if &expected != idr {
                log::warn!(
                    "policy {}: responder identifies as {}, expected {}",
                    sa.policy,
                    identity_text(idr),
                    identity_text(&expected)
                );
                self.delete_ike_local(spi, "wrong responder identity");
                return;
            }
        }
        let Ok(octets) = auth_octets(suite.prf, sa, keys, Signer::Responder, &id_body(idr)) else {
            return;
        };
        let policy = sa.policy.clone();
        let method = auth_payload.method.value();
        let data = auth_payload.data.clone();
        let prf = suite.prf.iana_id();
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.peer_id = Some(idr.clone());
            sa.auth_check = Some(AuthCheck {
                message: inner,
                child,
            });
        }
        self.ask_ca(spi, Wait::VerifyResponder, |id| Ikev2ToCa::VerifyAuth {
            id,
            policy,
            prf,
            auth_method: method,
            signed_octets: octets,
            auth_data: data,
        });
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
        // Authenticated: now the Child SA it asked for.
        let policy_name = sa.policy.clone();
        let transport = answer.transport;
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
            Ok((_, _, _, index)) => self.reqid_for(&policy_name, *index),
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
