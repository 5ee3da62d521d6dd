//! The message layer: sealing and opening (RFC 7296 §3.14), message IDs
//! and the window (§2.3), the response cache and retransmission (§2.1),
//! `refuse`, and the routing of a peer's requests to their exchange.

use std::net::SocketAddr;

use iked_common::wire::{
    decode_payloads, encrypted_message_prefix, encrypted_span, EncryptedKind, ExchangeType, Flags,
    Header, Message, Notify, NotifyType, Payload, PayloadType, ProtocolId,
};

use crate::engine::{Action, Engine};

use crate::engine::digest::Inbound;
use crate::engine::exchange::mobike::is_mobike_request;
use crate::engine::fragments::Direction;
use crate::engine::state::*;

/// A peer's request on one of our IKE SAs, as far as answering it needs.
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerRequest {
    pub spi: u64,
    pub exchange: ExchangeType,
    pub message_id: u32,
}

impl PeerRequest {
    pub(super) fn new(spi: u64, exchange: ExchangeType, message_id: u32) -> PeerRequest {
        PeerRequest {
            spi,
            exchange,
            message_id,
        }
    }
}

/// The header of an IKE_SA_INIT response (RFC 7296 §1.2, §3.1).
pub(super) fn sa_init_response_header(initiator_spi: u64, responder_spi: u64) -> Header {
    Header {
        initiator_spi,
        responder_spi,
        exchange: ExchangeType::IkeSaInit,
        flags: Flags {
            initiator: false,
            version: false,
            response: true,
        },
        message_id: 0,
    }
}

/// Our IKE_SA_INIT request (message 0) is answered: the window is free,
/// and the responder's requests start at message 0 too (RFC 7296 §2.2).
pub(super) fn sa_init_answered(sa: &mut IkeSa) {
    sa.outstanding = None;
    sa.expected_message_id = 0;
}

/// Our outstanding request on an IKE SA that goes away, given up: what it
/// was, so its work can move to the successor.
pub(super) fn abandon_request(sa: &mut IkeSa) -> Option<RequestCtx> {
    sa.outstanding.take().map(|o| o.ctx)
}

impl Engine {
    /// Sends our IKE_SA_INIT request, message 0, retransmitted like any
    /// other request until answered (RFC 7296 §2.1, §2.2).
    pub(super) fn send_sa_init_request(&mut self, spi: u64, datagram: Vec<u8>) {
        let now = self.now;
        let base = self.settings.retransmit_base;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.next_message_id = 1;
        let (local, peer) = (sa.local, sa.peer);
        sa.outstanding = Some(Outstanding {
            message_id: 0,
            datagrams: vec![datagram.clone()],
            transmissions: 1,
            deadline: RetransmitTimer::first(now, base),
            ctx: RequestCtx::SaInit,
        });
        self.send_datagram(local, peer, datagram);
    }

    pub(super) fn send_clear_notify(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        request: &Header,
        notify: Notify,
    ) {
        let message = Message {
            header: sa_init_response_header(request.initiator_spi, 0),
            payloads: vec![Payload::Notify(notify)],
        };
        if let Ok(datagram) = message.encode() {
            self.actions.push_back(Action::Send {
                local,
                remote,
                datagram,
            });
        }
    }

    /// An SK message of IKE SA `spi` around payloads already encoded, the
    /// first of type `first`.
    pub(super) fn seal_encoded(
        &mut self,
        spi: u64,
        header: &Header,
        first: PayloadType,
        plaintext: &[u8],
    ) -> Option<Vec<u8>> {
        let sa = self.ikes.get_mut(&spi)?;
        let cipher = sa.out_cipher.as_mut()?;
        let sealed_len = cipher.transform().sealed_len(plaintext.len());
        let mut out =
            encrypted_message_prefix(header, &[], EncryptedKind::Whole, first, sealed_len).ok()?;
        let body = cipher.seal(&out, plaintext, &mut *self.rng).ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    pub(super) fn open(
        &self,
        spi: u64,
        datagram: &[u8],
        message: &Message,
    ) -> Option<Vec<Payload>> {
        let sa = self.ikes.get(&spi)?;
        let cipher = sa.in_cipher.as_ref()?;
        let sk = message.encrypted()?;
        let span = encrypted_span(datagram).ok()?;
        let (aad, body) = datagram.split_at_checked(span)?;
        let plaintext = cipher.open(aad, body).ok()?;
        decode_payloads(sk.first_inner, &plaintext, &message.header).ok()
    }

    pub(super) fn header_for(
        &self,
        sa: &IkeSa,
        exchange: ExchangeType,
        message_id: u32,
        response: bool,
    ) -> Header {
        Header {
            initiator_spi: sa.spi_i,
            responder_spi: sa.spi_r,
            exchange,
            flags: Flags {
                initiator: sa.initiator,
                version: false,
                response,
            },
            message_id,
        }
    }

    /// Sends a request (window 1: the caller checked the window is free).
    pub(super) fn send_request(
        &mut self,
        spi: u64,
        exchange: ExchangeType,
        inner: Vec<Payload>,
        ctx: RequestCtx,
    ) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let message_id = sa.next_message_id;
        let header = self.header_for(sa, exchange, message_id, false);
        let Some(datagrams) = self.seal_message(spi, header, &inner) else {
            log::warn!("IKE SA {spi:016x}: cannot seal {exchange} request");
            return;
        };
        let deadline = RetransmitTimer::first(self.now, self.settings.retransmit_base);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.next_message_id = sa.next_message_id.wrapping_add(1);
        sa.last_sent = self.now;
        let (local, peer) = sa.ike_path();
        sa.outstanding = Some(Outstanding {
            message_id,
            datagrams: datagrams.clone(),
            transmissions: 1,
            deadline,
            ctx,
        });
        log::debug!("IKE SA {spi:016x}: {exchange} request {message_id} sent");
        self.send_all(local, peer, datagrams);
    }

    /// Sends and caches a response to request `message_id`.
    pub(super) fn send_response(
        &mut self,
        spi: u64,
        exchange: ExchangeType,
        message_id: u32,
        inner: Vec<Payload>,
    ) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let header = self.header_for(sa, exchange, message_id, true);
        let Some(datagrams) = self.seal_message(spi, header, &inner) else {
            log::warn!("IKE SA {spi:016x}: cannot seal {exchange} response");
            return;
        };
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.cached_response = Some((message_id, datagrams.clone()));
        sa.last_sent = self.now;
        sa.expected_message_id = message_id.wrapping_add(1);
        sa.answering = None;
        // RFC 7296 §2.11: to where the request came from.
        let (local, peer) = sa
            .mobike
            .request_path
            .take()
            .unwrap_or_else(|| sa.ike_path());
        self.send_all(local, peer, datagrams);
    }

    pub(super) fn on_request(
        &mut self,
        spi: u64,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        message: &Message,
    ) {
        let header = message.header;
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        if sa.in_cipher.is_none() {
            return;
        }
        // RFC 7296 §1.2: IKE_AUTH completes before any other exchange. On
        // an SA whose peer is not authenticated yet nothing else is even
        // decrypted (security review L4: no INFORMATIONAL on half-open SAs).
        let authenticated = matches!(
            sa.state,
            IkeState::Established | IkeState::Rekeyed | IkeState::Deleting
        );
        // RFC 7296 §2.21.2: an initiator that gives up during EAP may say
        // so in a separate INFORMATIONAL; that one is opened (ICV checked)
        // and may end the half-open SA (eap.rs), nothing else.
        let during_eap =
            !authenticated && header.exchange == ExchangeType::Informational && sa.eap.is_some();
        if !authenticated && header.exchange != ExchangeType::IkeAuth && !during_eap {
            log::debug!(
                "IKE SA {spi:016x}: {} request before IKE_AUTH completed, dropped",
                header.exchange
            );
            return;
        }
        // RFC 7296 §2.2: the previous request again gets the cached response.
        let previous = sa.expected_message_id.wrapping_sub(1);
        if header.message_id == previous && sa.answering.is_none() {
            if let Some((id, response)) = &sa.cached_response {
                if *id == previous {
                    // Authenticate it first so forged copies cannot make us
                    // send; of a fragmented request only fragment 1 counts
                    // (RFC 7383 §2.6.1).
                    if self.is_authentic_retransmission(spi, datagram, message) {
                        log::debug!("IKE SA {spi:016x}: request {previous} retransmitted, answering from cache");
                        let (local, response) = (sa.local, response.clone());
                        self.send_all(local, remote, response);
                    }
                }
            }
            return;
        }
        if header.message_id != sa.expected_message_id || sa.answering.is_some() {
            log::debug!(
                "IKE SA {spi:016x}: request {} dropped (expecting {}{})",
                header.message_id,
                sa.expected_message_id,
                if sa.answering.is_some() { ", busy" } else { "" }
            );
            return;
        }
        let Some(inner) = self.open_or_reassemble(spi, Direction::Request, datagram, message)
        else {
            return;
        };
        if during_eap {
            return self.on_informational_during_eap(spi, local, remote, header.message_id, inner);
        }
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.last_heard = self.now;
        // Where to answer, and whether the SA follows the peer (IKE_AUTH's
        // float to port 4500, a NAT mapping change: migration.rs).
        self.note_request_path(spi, local, remote);
        // IKE on port 4500 alone does not mean ESP in UDP: a MOBIKE peer
        // floats without a NAT (RFC 4555 §3). Encapsulation follows NAT
        // detection (RFC 7296 §2.23) or `natt`, decided at IKE_SA_INIT.
        match header.exchange {
            ExchangeType::IkeAuth => self.on_auth_request(spi, header.message_id, inner),
            ExchangeType::CreateChildSa => {
                self.on_create_child_sa_request(spi, header.message_id, inner)
            }
            ExchangeType::Informational if is_mobike_request(&inner) => {
                self.on_mobike_request(spi, header.message_id, inner)
            }
            ExchangeType::Informational => {
                self.on_informational_request(spi, header.message_id, inner)
            }
            other => {
                log::debug!("IKE SA {spi:016x}: {other} request not handled");
            }
        }
    }

    pub(super) fn on_response(
        &mut self,
        spi: u64,
        _local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        message: &Message,
    ) {
        let header = message.header;
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let matches = sa
            .outstanding
            .as_ref()
            .is_some_and(|o| o.message_id == header.message_id);
        if !matches {
            log::debug!(
                "IKE SA {spi:016x}: response {} matches no request of ours",
                header.message_id
            );
            return;
        }
        let Some(inner) = self.open_or_reassemble(spi, Direction::Response, datagram, message)
        else {
            return;
        };
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(outstanding) = sa.outstanding.take() else {
            return;
        };
        sa.last_heard = self.now;
        if sa.initiator && sa.state == IkeState::AuthSent {
            sa.peer = remote;
        }
        match (header.exchange, outstanding.ctx) {
            (ExchangeType::IkeAuth, RequestCtx::Auth { child }) => {
                self.on_auth_response(spi, inner, child)
            }
            (ExchangeType::CreateChildSa, RequestCtx::CreateChild { child }) => {
                self.on_create_child_response(spi, inner, child)
            }
            (
                ExchangeType::CreateChildSa,
                RequestCtx::RekeyIke {
                    new_spi,
                    nonce,
                    kex,
                    offered,
                },
            ) => self.on_rekey_ike_response(spi, inner, new_spi, nonce, kex, offered),
            (ExchangeType::Informational, RequestCtx::DeleteChildren { spis }) => {
                for child in spis {
                    self.remove_child(child);
                }
            }
            (ExchangeType::Informational, RequestCtx::DeleteIke) => {
                self.delete_ike_local(spi, "deleted");
            }
            (ExchangeType::Informational, RequestCtx::Dpd) => {
                log::debug!("IKE SA {spi:016x}: peer alive");
            }
            (ExchangeType::Informational, RequestCtx::Mobike(request)) => {
                self.on_mobike_response(spi, remote, inner, request)
            }
            (exchange, _) => {
                log::debug!("IKE SA {spi:016x}: {exchange} response does not fit the request");
            }
        }
    }

    /// A CREATE_CHILD_SA request is for a Child SA or, with an IKE
    /// proposal, a rekey of the IKE SA (RFC 7296 §1.3): routed to its
    /// exchange here.
    fn on_create_child_sa_request(&mut self, spi: u64, message_id: u32, inner: Vec<Payload>) {
        let msg = Inbound::of(&inner);
        let request = PeerRequest::new(spi, ExchangeType::CreateChildSa, message_id);
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        if sa.state != IkeState::Established && sa.state != IkeState::Rekeyed {
            let why = format!("the IKE SA is {}", sa.state.text());
            return self.refuse(request, NotifyType::TemporaryFailure, &why);
        }
        let Some(offer) = msg.sa else {
            return self.refuse(request, NotifyType::InvalidSyntax, "no SA payload");
        };
        // Either kind needs an established IKE SA: not one being replaced.
        if sa.state != IkeState::Established {
            return self.refuse(
                request,
                NotifyType::TemporaryFailure,
                "the IKE SA is being replaced by its rekey",
            );
        }
        let Some(policy) = self.policy(&sa.policy).cloned() else {
            return;
        };
        if offer
            .proposals
            .first()
            .is_some_and(|p| p.protocol == ProtocolId::Ike)
        {
            self.on_rekey_ike_request(spi, message_id, &msg, policy);
        } else {
            self.on_create_child_request(spi, message_id, &msg, offer, policy);
        }
    }

    /// Answers a peer's request with an error notify and nothing else, and
    /// logs why at the default level: no refusal goes unexplained.
    pub(super) fn refuse(&mut self, request: PeerRequest, error: NotifyType, why: &str) {
        self.refuse_with(request, Notify::new(error, Vec::new()), why);
    }

    /// [`Engine::refuse`] with a notify that carries data (INVALID_KE_PAYLOAD's
    /// group, CHILD_SA_NOT_FOUND's SPI).
    pub(super) fn refuse_with(&mut self, request: PeerRequest, notify: Notify, why: &str) {
        let (policy, peer) = self
            .ikes
            .get(&request.spi)
            .map(|sa| (sa.policy.as_str(), sa.peer.to_string()))
            .unwrap_or(("-", "-".to_string()));
        log::warn!(
            "policy {policy}: {} request {} from {peer} refused with {}: {why}",
            request.exchange,
            request.message_id,
            notify.notify_type
        );
        self.answer_notify(request, notify);
    }

    /// Answers a peer's request with one notify (an error with data, such
    /// as INVALID_KE_PAYLOAD's group or CHILD_SA_NOT_FOUND's SPI).
    pub(super) fn answer_notify(&mut self, request: PeerRequest, notify: Notify) {
        self.send_response(
            request.spi,
            request.exchange,
            request.message_id,
            vec![Payload::Notify(notify)],
        );
    }

    /// Sends our outstanding request again if its deadline has come, with
    /// exponential backoff (RFC 7296 §2.1), or gives the peer up after the
    /// configured tries. False when the IKE SA is gone.
    pub(super) fn retransmit_if_due(&mut self, spi: u64) -> bool {
        let now = self.now;
        let tries = self.settings.retransmit_tries;
        let base = self.settings.retransmit_base;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return false;
        };
        let (local, peer) = sa.ike_path();
        if let Some(out) = sa.outstanding.as_mut() {
            if out.deadline.is_due(now) {
                if out.transmissions >= tries {
                    self.stats.timed_out();
                    let what = match out.ctx {
                        RequestCtx::Dpd => "peer is dead (no answer to DPD)",
                        RequestCtx::DeleteIke => "no answer to DELETE",
                        _ => "no answer from peer",
                    };
                    log::warn!(
                        "policy {}: IKE SA {spi:016x} with {}: {what} after {} transmissions",
                        sa.policy,
                        sa.peer,
                        out.transmissions
                    );
                    self.delete_ike_local(spi, what);
                    return false;
                }
                out.transmissions += 1;
                out.deadline = RetransmitTimer::after(now, base, out.transmissions);
                self.stats.retransmitted();
                log::debug!(
                    "IKE SA {spi:016x}: retransmitting request {} (try {})",
                    out.message_id,
                    out.transmissions
                );
                let (datagrams, transmissions) = (out.datagrams.clone(), out.transmissions);
                self.send_all(local, peer, datagrams);
                self.mobike_check_source(spi, transmissions);
            }
        }
        true
    }

    /// Sends a message's datagrams (one, or its fragments in order).
    fn send_all(&mut self, local: SocketAddr, remote: SocketAddr, datagrams: Vec<Vec<u8>>) {
        for datagram in datagrams {
            self.actions.push_back(Action::Send {
                local,
                remote,
                datagram,
            });
        }
    }

    /// Sends a datagram that is not a request or response on an IKE SA
    /// with keys: IKE_SA_INIT and its retransmissions, and answers from
    /// the IKE_SA_INIT cache.
    pub(super) fn send_datagram(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: Vec<u8>,
    ) {
        self.actions.push_back(Action::Send {
            local,
            remote,
            datagram,
        });
    }
}
