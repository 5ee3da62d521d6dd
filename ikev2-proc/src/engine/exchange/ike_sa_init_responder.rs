//! IKE_SA_INIT, responder (RFC 7296 §1.2, §2.6).

use std::net::SocketAddr;

use iked_common::wire::{
    DhId, Header, KeyExchange as KePayload, Message, Nonce, Notify, NotifyType, Payload,
    SecurityAssociation,
};

use crate::engine::fragments;
use crate::engine::proposals::{self, IkeSuite};
use crate::engine::Engine;
use iked_common::crypto::SecretBytes;
use iked_common::wire::Proposal;

use crate::engine::digest::*;
use crate::engine::keys::*;
use crate::engine::message::*;
use crate::engine::nat::*;
use crate::engine::signature_auth::*;
use crate::engine::state::*;

impl Engine {
    pub(in crate::engine) fn on_sa_init_request(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        message: &Message,
    ) {
        if !self.sa_init_is_new(remote, datagram, message) {
            return;
        }
        let header = message.header;
        let payloads = &message.payloads;
        let msg = Inbound::of(payloads);
        let (Some(sa_offer), Some(ke), Some(ni)) = (msg.sa, msg.ke, msg.nonce) else {
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT refused: no SA, KE or Nonce payload"
            ));
            return;
        };
        let Some(with_cookie) = self.sa_init_cookie_check(local, remote, message, ni) else {
            return;
        };
        let Some((policy_name, proposal, suite)) =
            self.choose_ike_proposal(local, remote, &header, sa_offer)
        else {
            return;
        };
        let Some((our_public, shared)) =
            self.sa_init_key_exchange(local, remote, &header, ke, &suite)
        else {
            return;
        };
        let Some(transform) = suite.sk_transform() else {
            return;
        };
        let (Ok(spi_r), Ok(nr)) = (self.new_ike_spi(), self.random_bytes(NONCE_LEN)) else {
            log::warn!("{remote}: IKE_SA_INIT not answered: no randomness");
            return;
        };
        let keys = match ike_sa_keys(
            suite.prf,
            shared.expose(),
            ni,
            &nr,
            &header.initiator_spi.to_be_bytes(),
            &spi_r.to_be_bytes(),
            transform,
        ) {
            Ok(k) => k,
            Err(e) => {
                log::warn!("{remote}: key derivation failed: {e}");
                return;
            }
        };
        let Ok((out_cipher, in_cipher)) = keys.sk_ciphers(transform, false) else {
            return;
        };
        // NAT detection (RFC 7296 §2.23): compare the peer's hashes with
        // what we see.
        let seen = NatSeen::of(message, header.initiator_spi, 0, remote, local);
        let peer_behind_nat = seen.supported && !seen.source_matches;
        let we_behind_nat = seen.destination_present && !seen.destination_matches;
        let nat_supported = seen.supported;
        let (signature_payloads, peer_hints) =
            self.sa_init_signature_answer(local, remote, payloads);
        let fragmentation = fragments::agreed(self.settings.fragmentation.enabled, payloads);
        let Some(response_bytes) = sa_init_response(
            &header,
            spi_r,
            &proposal,
            &suite,
            &our_public,
            &nr,
            (local, remote, nat_supported),
            signature_payloads,
            fragmentation,
        ) else {
            return;
        };
        let local_id = Engine::local_identity(self.policy(&policy_name), local.ip());
        // ESP goes in UDP when a NAT is on the path (RFC 7296 §2.23) or
        // the policy says `natt`.
        let natt = peer_behind_nat
            || we_behind_nat
            || self.policy(&policy_name).is_some_and(|p| p.force_natt);
        let sa = IkeSa {
            spi_i: header.initiator_spi,
            spi_r,
            state: IkeState::InitDone,
            suite: Some(suite),
            handshake: Some(Box::new(Handshake {
                ni: ni.clone(),
                nr,
                ke_method: Some(suite.ke),
                init_request: datagram.to_vec(),
                accepted_ike: Some(proposal),
                // Kept for IKE_AUTH (§2.15) and answers retransmissions
                // too: the one copy of the response.
                init_response: response_bytes.clone(),
                half_open: true,
                half_open_cookie: with_cookie,
                ..peer_hints
            })),
            keys: Some(keys),
            out_cipher: Some(out_cipher),
            in_cipher: Some(in_cipher),
            natt,
            nat_detected: peer_behind_nat || we_behind_nat,
            behind_nat: we_behind_nat,
            expected_message_id: 1,
            timers: IkeTimers::starting(
                IkeTimer::HalfOpen,
                Some(self.now + self.settings.half_open_timeout),
            ),
            half_open_key: Some((header.initiator_spi, remote)),
            fragments: Fragments::negotiated(fragmentation),
            ..IkeSa::new(policy_name.clone(), local, remote, local_id, self.now)
        };
        self.insert_ike(spi_r, sa);
        self.count_half_open(remote.ip(), with_cookie);
        log::debug!(
            "policy {policy_name}: IKE_SA_INIT from {remote} answered, IKE SA {:016x}/{spi_r:016x}{}",
            header.initiator_spi,
            if peer_behind_nat || we_behind_nat { " (NAT detected)" } else { "" }
        );
        self.send_datagram(local, remote, response_bytes);
        self.schedule(spi_r);
    }

    /// Public-key authentication in our IKE_SA_INIT response, when a
    /// public-key policy may apply to these addresses (the policy is
    /// chosen in IKE_AUTH): our CERTREQ and SIGNATURE_HASH_ALGORITHMS; and
    /// the initiator's hash algorithms, in a handshake to build on.
    fn sa_init_signature_answer(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        payloads: &[Payload],
    ) -> (Vec<Payload>, Handshake) {
        let pubkey = self
            .policy_candidates(local.ip(), remote.ip())
            .iter()
            .any(|name| self.policy(name).is_some_and(uses_public_keys));
        let mut hints = Handshake::default();
        if pubkey {
            note_peer_hints(&mut hints, payloads);
        }
        (self.sa_init_signature_payloads(pubkey, true), hints)
    }

    /// Whether an IKE_SA_INIT request is a new one to process: well formed,
    /// not too large, not a retransmission (answered here from the cache,
    /// RFC 7296 §2.1), and not over the half-open cap.
    fn sa_init_is_new(&mut self, remote: SocketAddr, datagram: &[u8], message: &Message) -> bool {
        let header = message.header;
        if header.responder_spi != 0 || header.message_id != 0 || !header.flags.initiator {
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT refused: malformed request header (responder SPI, \
                 message ID or initiator flag)"
            ));
            return false;
        }
        // What we keep of a half-open SA is mostly this request (signed in
        // IKE_AUTH, RFC 7296 §2.15): refuse large ones before any work.
        if datagram.len() > self.settings.max_sa_init_request {
            let (size, cap) = (datagram.len(), self.settings.max_sa_init_request);
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT of {size} octets refused (at most {cap})"
            ));
            return false;
        }
        // A retransmission: answer from the cache (RFC 7296 §2.1). The
        // response is the one kept for IKE_AUTH, while it is kept.
        if let Some(&spi) = self.by_init.get(&(header.initiator_spi, remote)) {
            if let Some(sa) = self.ikes.get(&spi) {
                if let Some(handshake) = sa.handshake.as_deref() {
                    if !sa.initiator
                        && !handshake.init_response.is_empty()
                        && datagram == handshake.init_request.as_slice()
                    {
                        self.send_datagram(sa.local, remote, handshake.init_response.clone());
                    }
                }
            }
            return false;
        }
        if self.half_open >= self.settings.half_open_cap {
            let half_open = self.half_open;
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT dropped: {half_open} half-open SAs, the cap"
            ));
            return false;
        }
        true
    }

    /// RFC 7296 §2.6: above the threshold every initiator must prove it
    /// receives at its address, with a cookie. None when the request is
    /// not to be processed (a cookie demanded, or its source over its
    /// share); else whether it carried a valid cookie.
    fn sa_init_cookie_check(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        message: &Message,
        ni: &[u8],
    ) -> Option<bool> {
        let header = message.header;
        // Above its share of half-open SAs, so must one source address.
        let from_source = self.half_open_of(remote.ip());
        // Zero: no per-source limit.
        let per_source = match self.settings.half_open_per_source {
            0 => usize::MAX,
            n => n,
        };
        let cookie_required =
            self.half_open >= self.settings.cookie_threshold || from_source.total >= per_source;
        if !cookie_required {
            return Some(false);
        }
        self.rotate_cookie_secrets();
        if !self.cookie_valid(message, ni, remote, header.initiator_spi) {
            log::debug!(
                "{remote}: asking for a cookie ({} half-open SAs, {} from this source)",
                self.half_open,
                from_source.total
            );
            let version = self.cookie_secrets.version;
            if let Some(cookie) = self.cookie_for(version, ni, remote, header.initiator_spi) {
                self.stats.cookie_sent();
                self.send_clear_notify(
                    local,
                    remote,
                    &header,
                    Notify::new(NotifyType::Cookie, cookie),
                );
            }
            return None;
        }
        // Checked after the cookie: only requests that proved their
        // address count here, so a spoofed flood cannot lock it out.
        if from_source.with_cookie >= per_source {
            let total = from_source.total;
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT dropped: {total} half-open SAs from this source, its share"
            ));
            return None;
        }
        Some(true)
    }

    /// The first policy for these addresses with a proposal the initiator
    /// offered; NO_PROPOSAL_CHOSEN when none has.
    fn choose_ike_proposal(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        sa_offer: &SecurityAssociation,
    ) -> Option<(String, Proposal, IkeSuite)> {
        let candidates = self.policy_candidates(local.ip(), remote.ip());
        let mut chosen = None;
        for name in &candidates {
            if let Some(policy) = self.policy(name) {
                if let Some((proposal, suite)) =
                    proposals::select_ike(&policy.ike_proposals, sa_offer)
                {
                    chosen = Some((name.clone(), proposal, suite));
                    break;
                }
            }
        }
        if chosen.is_none() {
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT refused with NO_PROPOSAL_CHOSEN: none of {} candidate \
                 policies ({}) accepts the offer {}",
                candidates.len(),
                candidates.join(", "),
                iked_common::wire::Offered(sa_offer)
            ));
            self.send_clear_notify(
                local,
                remote,
                header,
                Notify::new(NotifyType::NoProposalChosen, Vec::new()),
            );
        }
        chosen
    }

    /// The responder's half of the key exchange, or INVALID_KE_PAYLOAD
    /// naming the group we want when the initiator guessed another one
    /// (RFC 7296 §1.2), or INVALID_SYNTAX for a bad public value.
    fn sa_init_key_exchange(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        ke: &KePayload,
        suite: &IkeSuite,
    ) -> Option<(Vec<u8>, SecretBytes)> {
        // RFC 7296 §1.2: a KE of another group than the chosen one gets
        // INVALID_KE_PAYLOAD naming the group we want.
        if ke.group.value() != suite.ke.iana_id() {
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT with KE group {}, asking for {}",
                ke.group,
                suite.ke.iana_id()
            ));
            self.send_clear_notify(
                local,
                remote,
                header,
                Notify::new(
                    NotifyType::InvalidKePayload,
                    suite.ke.iana_id().to_be_bytes().to_vec(),
                ),
            );
            return None;
        }
        let Ok(exchanged) = self.respond_key_exchange(suite.ke, &ke.data) else {
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT with an invalid KE value"
            ));
            self.send_clear_notify(
                local,
                remote,
                header,
                Notify::new(NotifyType::InvalidSyntax, Vec::new()),
            );
            return None;
        };
        Some(exchanged)
    }
}

/// Our IKE_SA_INIT response (RFC 7296 §1.2): SA, KE, Nonce, the NAT
/// detection notifies when the initiator sent them (§2.23),
/// `signature_payloads` (CERTREQ, SIGNATURE_HASH_ALGORITHMS), and
/// IKEV2_FRAGMENTATION_SUPPORTED when both support it (RFC 7383 §2.3).
#[allow(clippy::too_many_arguments)]
fn sa_init_response(
    header: &Header,
    spi_r: u64,
    proposal: &Proposal,
    suite: &IkeSuite,
    our_public: &[u8],
    nr: &[u8],
    (local, remote, nat_supported): (SocketAddr, SocketAddr, bool),
    signature_payloads: Vec<Payload>,
    fragmentation: bool,
) -> Option<Vec<u8>> {
    let response_payloads = vec![
        Payload::SecurityAssociation(SecurityAssociation {
            proposals: vec![proposal.clone()],
        }),
        Payload::KeyExchange(KePayload {
            group: DhId::from_value(suite.ke.iana_id()),
            data: our_public.to_vec(),
        }),
        Payload::Nonce(Nonce(nr.to_vec())),
        Payload::Notify(Notify::new(
            NotifyType::NatDetectionSourceIp,
            nat_hash(header.initiator_spi, spi_r, local),
        )),
        Payload::Notify(Notify::new(
            NotifyType::NatDetectionDestinationIp,
            nat_hash(header.initiator_spi, spi_r, remote),
        )),
    ];
    let mut response_payloads = response_payloads;
    if !nat_supported {
        response_payloads.truncate(3);
    }
    response_payloads.extend(signature_payloads);
    response_payloads.extend(fragments::supported_notify(fragmentation));
    let response = Message {
        header: sa_init_response_header(header.initiator_spi, spi_r),
        payloads: response_payloads,
    };
    response.encode().ok()
}
