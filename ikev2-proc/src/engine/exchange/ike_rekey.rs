//! IKE SA rekey (RFC 7296 §1.3.2, §2.18), both roles, and the collision rules (§2.8.2).

use iked_common::config::Policy;
use iked_common::crypto::keys::{rekey_skeyseed, IkeSaKeys};
use iked_common::crypto::KeyExchange;
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
    pub(in crate::engine) fn send_rekey_ike(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(policy) = self.policy(&sa.policy).cloned() else {
            return;
        };
        let hint = sa
            .rekey_ke_hint
            .filter(|m| proposals::offers_ke(&policy.ike_proposals, *m));
        let Some(method) = hint
            .or(sa.suite.map(|s| s.ke))
            .or_else(|| proposals::preferred_ke(&policy.ike_proposals))
        else {
            return;
        };
        let Ok(kex) = self.new_key_exchange(method) else {
            return;
        };
        let (Ok(new_spi), Ok(nonce)) = (self.new_ike_spi(), self.random_bytes(NONCE_LEN)) else {
            let retry = self.now + self.settings.rekey_retry;
            if let Some(sa) = self.ikes.get_mut(&spi) {
                sa.timers.set(IkeTimer::Rekey, retry);
            }
            return;
        };
        let offered = proposals::offer(
            &policy.ike_proposals,
            ProtocolId::Ike,
            &new_spi.to_be_bytes(),
            Some(method),
            true,
        );
        let inner = vec![
            Payload::SecurityAssociation(offered.clone()),
            Payload::Nonce(Nonce(nonce.clone())),
            Payload::KeyExchange(KePayload {
                group: DhId::from_value(method.iana_id()),
                data: kex.public_value().to_vec(),
            }),
        ];
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.state = IkeState::Established;
            sa.timers.stop(IkeTimer::Rekey);
        }
        log::info!("IKE SA {spi:016x}: rekeying");
        self.send_request(
            spi,
            ExchangeType::CreateChildSa,
            inner,
            RequestCtx::RekeyIke {
                new_spi,
                nonce,
                kex,
                offered,
            },
        );
    }

    /// Builds the new IKE SA of a rekey; `we_initiate` is our role in the
    /// CREATE_CHILD_SA exchange, which becomes our role in the new SA.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::engine) fn make_rekeyed_ike(
        &mut self,
        old: u64,
        our_spi: u64,
        peer_spi: u64,
        we_initiate: bool,
        suite: proposals::IkeSuite,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
    ) -> Option<u64> {
        let old_sa = self.ikes.get(&old)?;
        let old_suite = old_sa.suite?;
        let sk_d = old_sa.keys.as_ref()?.sk_d.clone();
        let transform = suite.sk_transform()?;
        let (spi_i, spi_r) = if we_initiate {
            (our_spi, peer_spi)
        } else {
            (peer_spi, our_spi)
        };
        // §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the old PRF.
        let seed = rekey_skeyseed(old_suite.prf, sk_d.expose(), &[shared], ni, nr).ok()?;
        trace_key("SKEYSEED", seed.expose());
        let keys = IkeSaKeys::derive(
            suite.prf,
            seed.expose(),
            ni,
            nr,
            &spi_i.to_be_bytes(),
            &spi_r.to_be_bytes(),
            transform,
        )
        .ok()?;
        trace_ike_keys(&keys);
        let (out_cipher, in_cipher) = keys.sk_ciphers(transform, we_initiate).ok()?;
        let lifetime = self
            .policy(&old_sa.policy)
            .map_or(0, |p| p.ike_lifetime_secs);
        let rekey_at = self.rekey_time(lifetime);
        let old_sa = self.ikes.get(&old)?;
        let sa = IkeSa {
            spi_i,
            spi_r,
            initiator: we_initiate,
            state: IkeState::Established,
            suite: Some(suite),
            keys: Some(keys),
            out_cipher: Some(out_cipher),
            in_cipher: Some(in_cipher),
            peer_id: old_sa.peer_id.clone(),
            natt: old_sa.natt,
            // RFC 7383 §2.3 negotiates it for the IKE SA; its rekeyed
            // successor goes on with it, as strongSwan's does.
            fragments: Fragments::negotiated(old_sa.fragments.is_negotiated()),
            nat_detected: old_sa.nat_detected,
            behind_nat: old_sa.behind_nat,
            established: Some(self.now),
            timers: IkeTimers::starting(IkeTimer::Rekey, rekey_at),
            first_flow: old_sa.first_flow,
            mobike: old_sa.mobike.inherited(),
            ..IkeSa::new(
                old_sa.policy.clone(),
                old_sa.local,
                old_sa.peer,
                old_sa.local_id.clone(),
                self.now,
            )
        };
        let policy = sa.policy.clone();
        self.insert_ike(our_spi, sa);
        self.index_identity(our_spi);
        self.inherit_remote_access(old, our_spi);
        log::info!("policy {policy}: IKE SA rekeyed: {old:016x} -> {spi_i:016x}/{spi_r:016x}");
        Some(our_spi)
    }

    pub(in crate::engine) fn on_rekey_ike_request(
        &mut self,
        spi: u64,
        message_id: u32,
        msg: &Inbound,
        policy: Policy,
    ) {
        let request = PeerRequest::new(spi, ExchangeType::CreateChildSa, message_id);
        let (Some(offer), Some(ni), Some(ke)) = (msg.sa, msg.nonce, msg.ke) else {
            return self.refuse(
                request,
                NotifyType::InvalidSyntax,
                "IKE SA rekey without SA, nonce or KE",
            );
        };
        let Some((proposal, suite)) = proposals::select_ike(&policy.ike_proposals, offer) else {
            return self.refuse(
                request,
                NotifyType::NoProposalChosen,
                "IKE SA rekey: no proposal matches an ikesa proposal",
            );
        };
        let Some(peer_spi) = <[u8; 8]>::try_from(proposal.spi.as_slice())
            .ok()
            .map(u64::from_be_bytes)
            .filter(|s| *s != 0)
        else {
            return self.refuse(
                request,
                NotifyType::InvalidSyntax,
                "IKE SA rekey: the new SPI is not 8 non-zero octets",
            );
        };
        if ke.group.value() != suite.ke.iana_id() {
            let notify = Notify::new(
                NotifyType::InvalidKePayload,
                suite.ke.iana_id().to_be_bytes().to_vec(),
            );
            let why = format!("IKE SA rekey: KE wants group {}", suite.ke.iana_id());
            self.refuse_with(request, notify, &why);
            return;
        }
        let Ok((public, shared)) = self.respond_key_exchange(suite.ke, &ke.data) else {
            return self.refuse(
                request,
                NotifyType::InvalidSyntax,
                "IKE SA rekey: invalid KE value",
            );
        };
        let (Ok(our_spi), Ok(nr)) = (self.new_ike_spi(), self.random_bytes(NONCE_LEN)) else {
            return self.refuse(
                request,
                NotifyType::TemporaryFailure,
                "IKE SA rekey: no SPI or nonce from the random source",
            );
        };
        let ni = ni.clone();
        let mut answer = proposal.clone();
        answer.spi = our_spi.to_be_bytes().to_vec();
        let response = vec![
            Payload::SecurityAssociation(SecurityAssociation {
                proposals: vec![answer],
            }),
            Payload::Nonce(Nonce(nr.clone())),
            Payload::KeyExchange(KePayload {
                group: DhId::from_value(suite.ke.iana_id()),
                data: public,
            }),
        ];
        self.send_response(spi, ExchangeType::CreateChildSa, message_id, response);
        let Some(new) = self.make_rekeyed_ike(
            spi,
            our_spi,
            peer_spi,
            false,
            suite,
            shared.expose(),
            &ni,
            &nr,
        ) else {
            return;
        };
        let rekeying = self
            .ikes
            .get(&spi)
            .and_then(|sa| sa.outstanding.as_ref())
            .is_some_and(|o| matches!(o.ctx, RequestCtx::RekeyIke { .. }));
        if rekeying {
            // Collision (§2.8.1): decided when our own exchange completes.
            if let Some(sa) = self.ikes.get_mut(&spi) {
                sa.peer_rekey = Some((new, lower_nonce(&ni, &nr).to_vec()));
            }
        } else {
            self.move_children(spi, new);
            let grace = self.rekeyed_grace_end();
            if let Some(sa) = self.ikes.get_mut(&spi) {
                sa.state = IkeState::Rekeyed;
                sa.timers.stop(IkeTimer::Rekey);
                // The peer deletes the old SA; if it does not, we do.
                sa.timers.set(IkeTimer::Replaced, grace);
            }
        }
        self.schedule(new);
    }

    pub(in crate::engine) fn on_rekey_ike_response(
        &mut self,
        spi: u64,
        inner: Vec<Payload>,
        new_spi: u64,
        nonce: Vec<u8>,
        kex: KeyExchange,
        offered: SecurityAssociation,
    ) {
        let msg = Inbound::of(&inner);
        // RFC 7296 §1.3: the responder may want another group; retry once.
        let wanted = msg
            .notify(NotifyType::InvalidKePayload)
            .and_then(|n| n.invalid_ke_group())
            .and_then(|g| iked_common::crypto::KeMethod::from_iana(g.value()));
        if let Some(method) = wanted {
            let allowed = self
                .ikes
                .get(&spi)
                .and_then(|sa| self.policy(&sa.policy))
                .is_some_and(|p| proposals::offers_ke(&p.ike_proposals, method));
            let peer_rekeyed = self
                .ikes
                .get(&spi)
                .is_some_and(|sa| sa.peer_rekey.is_some());
            if allowed && method != kex.method() && !peer_rekeyed {
                log::info!(
                    "IKE SA {spi:016x}: peer wants KE group {} for the rekey, retrying",
                    method.iana_id()
                );
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    sa.rekey_ke_hint = Some(method);
                    sa.queue.push_front(Task::RekeyIke);
                }
                return;
            }
        }
        let peer_rekey = self.ikes.get_mut(&spi).and_then(|sa| sa.peer_rekey.take());
        let ours = (|| {
            if msg.error.is_some() {
                return None;
            }
            let answer = msg.sa?;
            let accepted = proposals::accepted_matches(&offered, answer)?;
            let suite = proposals::ike_suite(&accepted)?;
            let peer_spi = <[u8; 8]>::try_from(accepted.spi.as_slice())
                .ok()
                .map(u64::from_be_bytes)?;
            let nr = msg.nonce?.clone();
            let ke = msg.ke?;
            if ke.group.value() != kex.method().iana_id() || suite.ke != kex.method() {
                return None;
            }
            let shared = kex.complete(&ke.data).ok()?;
            if self.ikes.contains_key(&new_spi) {
                return None;
            }
            let new = self.make_rekeyed_ike(
                spi,
                new_spi,
                peer_spi,
                true,
                suite,
                shared.expose(),
                &nonce,
                &nr,
            )?;
            Some((new, lower_nonce(&nonce, &nr).to_vec()))
        })();
        match (ours, peer_rekey) {
            (None, None) => {
                log::warn!("IKE SA {spi:016x}: rekey failed; retrying later");
                let retry = self.now + self.settings.rekey_retry;
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    sa.timers.set(IkeTimer::Rekey, retry);
                }
            }
            (None, Some((theirs, _))) => {
                // Only the peer's rekey worked: it deletes the old SA.
                self.move_children(spi, theirs);
                self.mark_rekeyed(spi);
            }
            (Some((new, _)), None) => {
                self.move_children(spi, new);
                self.mark_rekeyed(spi);
                self.request_delete_ike(spi);
            }
            (Some((new, our_nonce)), Some((theirs, their_nonce))) => {
                if our_nonce < their_nonce {
                    log::info!("IKE SA rekey collision: ours ({new:016x}) is redundant");
                    self.move_children(spi, theirs);
                    self.mark_rekeyed(spi);
                    self.request_delete_ike(new);
                } else {
                    log::info!("IKE SA rekey collision: ours ({new:016x}) survives");
                    self.move_children(spi, new);
                    self.mark_rekeyed(spi);
                    self.request_delete_ike(spi);
                    // The peer deletes its redundant SA; expire it if not.
                    let grace = self.rekeyed_grace_end();
                    if let Some(sa) = self.ikes.get_mut(&theirs) {
                        sa.state = IkeState::Rekeyed;
                        sa.timers.set(IkeTimer::Replaced, grace);
                    }
                    self.schedule(theirs);
                }
            }
        }
        self.schedule(spi);
    }

    pub(in crate::engine) fn mark_rekeyed(&mut self, spi: u64) {
        let grace = self.rekeyed_grace_end();
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.state = IkeState::Rekeyed;
            sa.timers.stop(IkeTimer::Rekey);
            sa.timers.set(IkeTimer::Replaced, grace);
        }
    }
}
