//! Requests to ca and pfkey, and the routing of their replies to the SA that waits.

use iked_common::ipc::{CaToIkev2, Ikev2ToCa, Ikev2ToPfkey, PfkeyToIkev2};
use iked_common::kernel::FailureKind;

use crate::engine::state::*;
use crate::engine::{Action, Engine};

impl Engine {
    pub(super) fn dispatch_pfkey(&mut self, message: PfkeyToIkev2) {
        match message {
            PfkeyToIkev2::Pong { id } => log::debug!("pfkey channel up (pong {id})"),
            PfkeyToIkev2::SpiAllocated { id, spi } => match self.waits.remove(&id) {
                Some((ike, Wait::RequestSpi)) => self.request_spi_ready(ike, spi),
                Some((ike, Wait::AnswerSpi)) => self.answer_spi_ready(ike, spi),
                other => log::warn!("SPI from pfkey for request {id} nobody waits for ({other:?})"),
            },
            PfkeyToIkev2::Done { id } => match self.waits.remove(&id) {
                Some((ike, Wait::InstallSa { child, inbound })) => {
                    self.sa_install_done(ike, child, inbound, None)
                }
                Some((ike, Wait::Migrate { child })) => self.migration_done(ike, child, None),
                _ => {}
            },
            PfkeyToIkev2::SourceAddress { id, source } => match self.waits.remove(&id) {
                Some((ike, Wait::SourceAddress)) => self.source_found(ike, source),
                Some((ike, Wait::MobikeSource)) => self.mobike_source_found(ike, Some(source)),
                other => log::warn!(
                    "source address from pfkey for request {id} nobody waits for ({other:?})"
                ),
            },
            PfkeyToIkev2::Failed { id, failure } => match self.waits.remove(&id) {
                Some((ike, Wait::InstallSa { child, inbound })) => {
                    self.sa_install_done(ike, child, inbound, Some(failure))
                }
                Some((ike, Wait::SourceAddress)) => self.source_lookup_failed(ike, &failure),
                Some((ike, Wait::Migrate { child })) => {
                    self.migration_done(ike, child, Some(failure))
                }
                Some((ike, Wait::MobikeSource)) => {
                    log::debug!("IKE SA {ike:016x}: no source address towards the peer: {failure}");
                    self.mobike_source_found(ike, None)
                }
                Some((ike, Wait::AnswerSpi)) if self.answering_auth(ike) => {
                    // The IKE SA can still come up, without its Child SA.
                    log::warn!("cannot allocate an SPI: {failure}");
                    self.auth_answer_without_child(ike);
                }
                Some((ike, Wait::RequestSpi)) | Some((ike, Wait::AnswerSpi)) => {
                    log::warn!("cannot allocate an SPI: {failure}");
                    self.abort_negotiation(ike, "no inbound SPI");
                }
                Some(_) if failure.kind == FailureKind::NotFound => {
                    log::debug!("pfkey request {id}: already gone: {failure}")
                }
                Some(_) => log::warn!("kernel request failed: {failure}"),
                None => log::warn!("failure from pfkey for unknown request {id}: {failure}"),
            },
            PfkeyToIkev2::Event(event) => self.on_kernel_event(event),
            // Taken by take_counter_reply before dispatch.
            PfkeyToIkev2::Counters { id, .. } => log::debug!("counters {id} from pfkey ignored"),
        }
    }

    pub(super) fn dispatch_ca(&mut self, message: CaToIkev2) {
        let Some(message) = self.dispatch_eap_reply(message) else {
            return;
        };
        match message {
            CaToIkev2::Pong { id } => log::debug!("ca channel up (pong {id})"),
            CaToIkev2::Auth {
                id,
                auth_method,
                auth_data,
                certs,
            } => match self.waits.remove(&id) {
                Some((ike, Wait::RequestSign)) => {
                    self.send_auth_request(ike, auth_method, auth_data, certs)
                }
                Some((ike, Wait::AnswerSign)) => {
                    self.send_auth_answer(ike, auth_method, auth_data, certs)
                }
                other => log::warn!("AUTH from ca for request {id} nobody waits for ({other:?})"),
            },
            CaToIkev2::Store {
                generation,
                cert_authorities,
                local_ids,
            } => {
                self.on_ca_store(generation, cert_authorities, local_ids);
                self.resume_after_store();
            }
            CaToIkev2::Verified { id, ok, reason } => match self.waits.remove(&id) {
                Some((ike, Wait::VerifyInitiator)) => {
                    if !ok {
                        log::info!("IKE SA {ike:016x}: the initiator's AUTH is refused: {reason}");
                    }
                    self.initiator_verified(ike, ok)
                }
                Some((ike, Wait::VerifyResponder)) => {
                    if !ok {
                        log::info!("IKE SA {ike:016x}: the responder's AUTH is refused: {reason}");
                    }
                    self.responder_verified(ike, ok)
                }
                other => {
                    log::warn!("verdict from ca for request {id} nobody waits for ({other:?})")
                }
            },
            // EAP steps for EAP waits went to dispatch_eap_reply.
            CaToIkev2::Eap { id, .. } => match self.waits.remove(&id) {
                Some((ike, _)) => self.abort_negotiation(ike, "unexpected EAP answer"),
                None => log::warn!("EAP answer from ca for unknown request {id}"),
            },
            CaToIkev2::Failed { id, reason } => match self.waits.remove(&id) {
                Some((ike, Wait::VerifyInitiator)) => {
                    log::warn!("ca cannot check AUTH: {reason}");
                    self.initiator_verified(ike, false);
                }
                Some((ike, Wait::AnswerSign)) => {
                    log::warn!("ca cannot make AUTH: {reason}");
                    self.answer_auth_failed(ike);
                }
                Some((ike, _)) => {
                    log::warn!("ca request failed: {reason}");
                    self.abort_negotiation(ike, "ca failed");
                }
                None => log::warn!("failure from ca for unknown request {id}: {reason}"),
            },
        }
    }

    pub(super) fn ipc_id(&mut self) -> u64 {
        let id = self.next_ipc_id;
        self.next_ipc_id = self.next_ipc_id.wrapping_add(1).max(1);
        id
    }

    pub(super) fn ask_pfkey(
        &mut self,
        ike: u64,
        wait: Wait,
        build: impl FnOnce(u64) -> Ikev2ToPfkey,
    ) {
        let id = self.ipc_id();
        self.waits.insert(id, (ike, wait));
        self.actions.push_back(Action::Pfkey(build(id)));
    }

    pub(super) fn ask_ca(&mut self, ike: u64, wait: Wait, build: impl FnOnce(u64) -> Ikev2ToCa) {
        let id = self.ipc_id();
        self.waits.insert(id, (ike, wait));
        self.actions.push_back(Action::Ca(build(id)));
    }

    pub(super) fn request_spi_ready(&mut self, spi: u64, child_spi: u32) {
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

    pub(super) fn answer_spi_ready(&mut self, spi: u64, child_spi: u32) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        match sa.answering.as_mut().map(|a| &mut a.kind) {
            Some(AnswerKind::Auth(answer)) => {
                answer.spi_in = Some(child_spi);
                self.answer_auth_signature(spi);
            }
            Some(AnswerKind::Child(_)) => self.send_create_child_answer(spi, child_spi),
            None => {}
        }
    }
}
