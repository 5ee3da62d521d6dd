//! IKE_SA_INIT, initiator (RFC 7296 §1.2): request, COOKIE and
//! INVALID_KE_PAYLOAD retries, response.

use std::net::{IpAddr, SocketAddr};

use iked_common::config::Encapsulation;
use iked_common::wire::{
    DhId, ExchangeType, Flags, Header, KeyExchange as KePayload, Message, Nonce, Notify,
    NotifyType, Payload, ProtocolId,
};

use crate::engine::fragments;
use crate::engine::proposals::{self};
use crate::engine::Engine;
use iked_common::ipc::Ikev2ToPfkey;

use crate::engine::digest::*;
use crate::engine::identity::*;
use crate::engine::keys::*;
use crate::engine::message::*;
use crate::engine::nat::*;
use crate::engine::signature_auth::*;
use crate::engine::state::*;

impl Engine {
    /// Starts an IKE SA for policy `name` (its first Child SA for flow
    /// `flow_index`). `peer` overrides the policy's peer (ACQUIRE).
    pub(in crate::engine) fn initiate(
        &mut self,
        name: &str,
        peer: Option<IpAddr>,
        flow_index: usize,
    ) -> Result<(), String> {
        let policy = self.policy(name).ok_or("no such policy")?.clone();
        let peer_ip = match (peer, policy.peer) {
            (Some(p), _) => p,
            (None, Some(prefix)) if prefix.is_host() => prefix.addr,
            _ => return Err("the policy has no single peer address".into()),
        };
        // Without a configured local address, pfkey's route lookup names
        // it (ikev2 opens no socket): IKE_SA_INIT waits for the answer.
        let configured_local = match policy.local {
            Some(prefix) if prefix.is_host() => Some(prefix.addr),
            _ => None,
        };
        let local_ip = configured_local.unwrap_or(match peer_ip {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        });
        let ke = proposals::preferred_ke(&policy.ike_proposals).ok_or("no usable KE group")?;
        let spi = self.new_ike_spi().map_err(|e| e.to_string())?;
        let ni = self.random_bytes(NONCE_LEN).map_err(|e| e.to_string())?;
        let local_id = Engine::local_identity(Some(&policy), local_ip);
        let sa = IkeSa {
            spi_i: spi,
            initiator: true,
            handshake: Some(Box::new(Handshake {
                ni,
                ke_method: Some(ke),
                ..Handshake::default()
            })),
            first_flow: flow_index.min(policy.flows.len().saturating_sub(1)),
            ..IkeSa::new(
                policy.name.clone(),
                SocketAddr::new(local_ip, self.settings.ike_port),
                SocketAddr::new(peer_ip, self.settings.ike_port),
                local_id,
                self.now,
            )
        };
        self.insert_ike(spi, sa);
        log::info!(
            "policy {}: initiating IKE SA {spi:016x} to {peer_ip}",
            policy.name
        );
        if configured_local.is_none() {
            self.look_up_source(spi, peer_ip);
            return Ok(());
        }
        self.send_sa_init(spi)?;
        self.schedule(spi);
        Ok(())
    }

    /// Asks pfkey which source address the kernel uses towards `peer`;
    /// IKE_SA_INIT goes out when it answers ([`Self::source_found`]).
    fn look_up_source(&mut self, spi: u64, peer: IpAddr) {
        let deadline = self.now + self.settings.source_lookup_timeout;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.state = IkeState::SourceLookup;
        sa.timers.set(IkeTimer::Preparing, deadline);
        self.ask_pfkey(spi, Wait::SourceAddress, |id| Ikev2ToPfkey::LookupSource {
            id,
            peer,
        });
        self.schedule(spi);
    }

    /// pfkey named our source address towards the peer: IKE_SA_INIT now.
    pub(in crate::engine) fn source_found(&mut self, spi: u64, source: IpAddr) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        if sa.state != IkeState::SourceLookup {
            return;
        }
        let peer = sa.peer.ip();
        if source.is_ipv4() != peer.is_ipv4() || source.is_unspecified() || source.is_multicast() {
            let failure = iked_common::kernel::KernelFailure {
                kind: iked_common::kernel::FailureKind::Invalid,
                errno: 0,
                message: format!("pfkey answered {source}, not a source address for {peer}"),
            };
            self.source_lookup_failed(spi, &failure);
            return;
        }
        let policy = self.policy(&sa.policy).cloned();
        let local_id = Engine::local_identity(policy.as_ref(), source);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.local.set_ip(source);
        sa.local_id = local_id;
        sa.state = IkeState::InitSent;
        sa.timers.stop(IkeTimer::Preparing);
        log::debug!("IKE SA {spi:016x}: source address {source} towards {peer}");
        if let Err(e) = self.send_sa_init(spi) {
            log::warn!("IKE SA {spi:016x}: {e}");
            self.delete_ike_local(spi, "IKE_SA_INIT could not be sent");
            return;
        }
        self.schedule(spi);
    }

    /// The lookup failed (no route to the peer, say): so does the initiation.
    pub(in crate::engine) fn source_lookup_failed(
        &mut self,
        spi: u64,
        failure: &iked_common::kernel::KernelFailure,
    ) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        log::warn!(
            "policy {}: initiation to {} failed: no source address: {failure}",
            sa.policy,
            sa.peer.ip()
        );
        self.delete_ike_local(spi, "no source address towards the peer");
    }

    /// Sends (or re-sends after COOKIE / INVALID_KE_PAYLOAD) IKE_SA_INIT.
    pub(in crate::engine) fn send_sa_init(&mut self, spi: u64) -> Result<(), String> {
        let Some(sa) = self.ikes.get(&spi) else {
            return Err("IKE SA vanished".into());
        };
        let policy = self.policy(&sa.policy).ok_or("policy vanished")?.clone();
        let ke = sa
            .handshake
            .as_ref()
            .and_then(|h| h.ke_method)
            .ok_or("no KE group")?;
        let kex = self
            .new_key_exchange(ke)
            .map_err(|e| format!("key exchange: {e}"))?;
        // `natt` forces UDP encapsulation: a source hash that cannot match
        // makes the peer see a NAT too, so both sides encapsulate (the
        // usual way to force it, e.g. strongSwan's encap=yes).
        let fake_source = match policy.force_natt {
            true => Some(self.random_bytes(20).map_err(|e| e.to_string())?),
            false => None,
        };
        let signature_payloads = self.sa_init_signature_payloads(uses_public_keys(&policy), false);
        let sa = self.ikes.get_mut(&spi).ok_or("IKE SA vanished")?;
        let handshake = sa.handshake.as_deref_mut().ok_or("IKE SA established")?;
        let offered = proposals::offer(&policy.ike_proposals, ProtocolId::Ike, &[], Some(ke), true);
        let mut payloads = Vec::new();
        if let Some(cookie) = &handshake.cookie {
            // RFC 7296 §2.6: the COOKIE notification comes first.
            payloads.push(Payload::Notify(Notify::new(
                NotifyType::Cookie,
                cookie.clone(),
            )));
        }
        payloads.push(Payload::SecurityAssociation(offered.clone()));
        payloads.push(Payload::KeyExchange(KePayload {
            group: DhId::from_value(ke.iana_id()),
            data: kex.public_value().to_vec(),
        }));
        payloads.push(Payload::Nonce(Nonce(handshake.ni.clone())));
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::NatDetectionSourceIp,
            fake_source.unwrap_or_else(|| nat_hash(sa.spi_i, 0, sa.local)),
        )));
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::NatDetectionDestinationIp,
            nat_hash(sa.spi_i, 0, sa.peer),
        )));
        payloads.extend(signature_payloads);
        payloads.extend(fragments::supported_notify(
            self.settings.fragmentation.enabled,
        ));
        let message = Message {
            header: Header {
                initiator_spi: sa.spi_i,
                responder_spi: 0,
                exchange: ExchangeType::IkeSaInit,
                flags: Flags {
                    initiator: true,
                    version: false,
                    response: false,
                },
                message_id: 0,
            },
            payloads,
        };
        let datagram = message.encode().map_err(|e| format!("encode: {e}"))?;
        handshake.kex = Some(kex);
        handshake.offered = Some(offered);
        handshake.init_request = datagram.clone();
        self.send_sa_init_request(spi, datagram);
        Ok(())
    }

    pub(in crate::engine) fn on_sa_init_response(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        message: &Message,
    ) {
        let header = message.header;
        let spi = header.initiator_spi;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if !sa.initiator
            || sa.state != IkeState::InitSent
            || header.message_id != 0
            || header.flags.initiator
            || remote.ip() != sa.peer.ip()
        {
            log::debug!("{remote}: unexpected IKE_SA_INIT response for {spi:016x}");
            return;
        }
        let payloads = &message.payloads;
        let msg = Inbound::of(payloads);
        if self.sa_init_retry(spi, &msg) {
            return;
        }
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if let Some(error) = msg.error {
            log::warn!(
                "policy {}: IKE_SA_INIT refused by {remote}: {error}",
                sa.policy
            );
            self.delete_ike_local(spi, "IKE_SA_INIT refused");
            return;
        }
        if header.responder_spi == 0 {
            return;
        }
        let (Some(answer), Some(ke), Some(nr)) = (msg.sa, msg.ke, msg.nonce) else {
            log::debug!("{remote}: IKE_SA_INIT response without SA, KE or Nonce");
            return;
        };
        let Some(handshake) = sa.handshake.as_deref_mut() else {
            return;
        };
        let Some(offered) = handshake.offered.as_ref() else {
            return;
        };
        let Some(suite) =
            proposals::accepted_matches(offered, answer).and_then(|p| proposals::ike_suite(&p))
        else {
            log::warn!("IKE SA {spi:016x}: responder chose a proposal we did not offer");
            self.delete_ike_local(spi, "bad proposal in IKE_SA_INIT response");
            return;
        };
        if Some(suite.ke) != handshake.ke_method || ke.group.value() != suite.ke.iana_id() {
            log::warn!("IKE SA {spi:016x}: KE group in response does not match");
            return;
        }
        let Some(kex) = handshake.kex.as_ref() else {
            return;
        };
        let Ok(shared) = kex.complete(&ke.data) else {
            log::warn!("IKE SA {spi:016x}: invalid KE value from {remote}");
            return;
        };
        let Some(transform) = suite.sk_transform() else {
            return;
        };
        let Ok(keys) = ike_sa_keys(
            suite.prf,
            shared.expose(),
            &handshake.ni,
            nr,
            &spi.to_be_bytes(),
            &header.responder_spi.to_be_bytes(),
            transform,
        ) else {
            return;
        };
        let Ok((out_cipher, in_cipher)) = keys.sk_ciphers(transform, true) else {
            return;
        };
        // NAT detection (RFC 7296 §2.23).
        let spi_r = header.responder_spi;
        let seen = NatSeen::of(message, spi, spi_r, sa.peer, sa.local);
        let (peer_hash_ok, our_hash_ok) = (seen.source_matches, seen.destination_matches);
        let nat_supported = seen.supported;
        sa.nat_detected = nat_supported && (!peer_hash_ok || !our_hash_ok);
        sa.behind_nat = nat_supported && !our_hash_ok;
        let force = self
            .policies
            .iter()
            .find(|p| p.name == sa.policy)
            .is_some_and(|p| p.force_natt);
        sa.spi_r = spi_r;
        sa.suite = Some(suite);
        handshake.nr = nr.clone();
        handshake.init_response = datagram.to_vec();
        note_peer_hints(handshake, payloads);
        handshake.kex = None;
        sa.keys = Some(keys);
        sa.out_cipher = Some(out_cipher);
        sa.in_cipher = Some(in_cipher);
        sa.fragments = Fragments::negotiated(fragments::agreed(
            self.settings.fragmentation.enabled,
            payloads,
        ));
        sa_init_answered(sa);
        sa.last_heard = self.now;
        if (sa.nat_detected || force) && nat_supported {
            float_to_natt(spi, sa, &self.settings);
        } else if nat_supported && self.settings.mobike {
            float_for_mobike(spi, sa, &self.settings);
        }
        sa.state = IkeState::AuthPreparing;
        // Bounded wait for pfkey and ca; cleared once IKE_AUTH is sent.
        sa.timers.set(
            IkeTimer::Preparing,
            self.now + self.settings.half_open_timeout,
        );
        if sa.local.ip().is_unspecified() && !local.ip().is_unspecified() {
            sa.local.set_ip(local.ip());
        }
        self.prepare_auth_request(spi);
    }

    /// A COOKIE (RFC 7296 §2.6) or INVALID_KE_PAYLOAD (§1.2) answer to our
    /// IKE_SA_INIT: sends it again with the cookie or the group wanted, or
    /// gives up. True when the response was one of these.
    fn sa_init_retry(&mut self, spi: u64, msg: &Inbound) -> bool {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return true;
        };
        if let Some(cookie) = msg.notify(NotifyType::Cookie) {
            // RFC 7296 §2.6: retry with the cookie, once per cookie value.
            let Some(handshake) = sa.handshake.as_deref_mut() else {
                return true;
            };
            if handshake.cookie.as_ref() == Some(&cookie.data) {
                return true;
            }
            log::info!("IKE SA {spi:016x}: responder asks for a cookie");
            handshake.cookie = Some(cookie.data.clone());
            if let Err(e) = self.send_sa_init(spi) {
                log::warn!("IKE SA {spi:016x}: {e}");
            }
            return true;
        }
        if let Some(group) = msg
            .notify(NotifyType::InvalidKePayload)
            .and_then(|n| n.invalid_ke_group())
        {
            let policy = self
                .ikes
                .get(&spi)
                .and_then(|sa| self.policy(&sa.policy))
                .cloned();
            let Some(sa) = self.ikes.get_mut(&spi) else {
                return true;
            };
            let wanted = iked_common::crypto::KeMethod::from_iana(group.value());
            match (wanted, policy) {
                (Some(method), Some(policy))
                    if proposals::offers_ke(&policy.ike_proposals, method)
                        && sa
                            .handshake
                            .as_ref()
                            .is_some_and(|h| h.ke_method != Some(method)) =>
                {
                    log::info!(
                        "IKE SA {spi:016x}: responder wants KE group {}, retrying",
                        group
                    );
                    if let Some(handshake) = sa.handshake.as_deref_mut() {
                        handshake.ke_method = Some(method);
                    }
                    if let Err(e) = self.send_sa_init(spi) {
                        log::warn!("IKE SA {spi:016x}: {e}");
                    }
                }
                _ => {
                    log::warn!("IKE SA {spi:016x}: responder wants KE group {group}, which we do not offer");
                    self.delete_ike_local(spi, "no acceptable KE group");
                }
            }
            return true;
        }
        false
    }

    /// ca's certificate store came: the IKE SAs that waited for it to
    /// start IKE_AUTH go on.
    pub(in crate::engine) fn resume_after_store(&mut self) {
        let waiting: Vec<u64> = self
            .ikes
            .iter()
            .filter(|(_, sa)| {
                sa.state == IkeState::AuthPreparing
                    && sa.handshake.as_ref().is_some_and(|h| h.awaiting_store)
            })
            .map(|(spi, _)| *spi)
            .collect();
        for spi in waiting {
            if let Some(handshake) = self
                .ikes
                .get_mut(&spi)
                .and_then(|sa| sa.handshake.as_deref_mut())
            {
                handshake.awaiting_store = false;
            }
            log::debug!("IKE SA {spi:016x}: ca's certificate store came, IKE_AUTH goes on");
            self.prepare_auth_request(spi);
        }
    }

    /// After IKE_SA_INIT: asks pfkey for the first Child SA's inbound SPI
    /// (unless there is to be no Child SA) before IKE_AUTH is signed.
    fn prepare_auth_request(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        // IKE_AUTH's first Child SA needs its inbound SPI first.
        let Some(policy) = self.policies.iter().find(|p| p.name == sa.policy).cloned() else {
            return;
        };
        if uses_public_keys(&policy) {
            // Signed as IDi (RFC 7296 §2.15): ca's identity for the policy.
            let local = sa.local.ip();
            match self.signing_identity(&policy, local) {
                Ok(id) => {
                    if let Some(sa) = self.ikes.get_mut(&spi) {
                        sa.local_id = id;
                    }
                }
                Err(why) => {
                    // At start-up ca may still be reading the store while
                    // the peer already answered: wait for it (bounded by
                    // the Preparing timer), then go on.
                    log::info!("IKE SA {spi:016x}: IKE_AUTH waits: {why}");
                    if let Some(handshake) = self
                        .ikes
                        .get_mut(&spi)
                        .and_then(|sa| sa.handshake.as_deref_mut())
                    {
                        handshake.awaiting_store = true;
                    }
                    return;
                }
            }
        }
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let id_body = id_body(&sa.local_id);
        // A policy at its Child SA cap gets its IKE SA, not another child.
        let policy_full = self
            .children_by_policy
            .get(&policy.name)
            .is_some_and(|n| *n >= self.settings.max_child_sas_per_policy);
        if policy_full {
            log::warn!(
                "policy {}: IKE_AUTH without a Child SA: the policy holds its maximum of {}",
                policy.name,
                self.settings.max_child_sas_per_policy
            );
        }
        if policy.flows.is_empty() || policy_full {
            sa.prep = Some(Prep::Auth {
                child: None,
                id_body,
            });
            self.request_auth_signature(spi);
        } else {
            let (peer, local) = (sa.peer.ip(), sa.local.ip());
            let first_flow = sa.first_flow;
            sa.prep = Some(Prep::Auth {
                child: None,
                id_body,
            });
            let reqid = self.reqid_for(&policy.name, first_flow);
            self.allocate_spi(spi, Wait::RequestSpi, peer, local, reqid);
            if let Some(sa) = self.ikes.get_mut(&spi) {
                // Remember the reqid in a draft without SPI yet.
                let flow_index = sa.first_flow;
                let flow = policy.flows.get(flow_index).copied();
                if let (Some(flow), Some(Prep::Auth { child, .. })) = (flow, sa.prep.as_mut()) {
                    let offered = proposals::offer(
                        &policy.child_proposals,
                        ProtocolId::Esp,
                        &[0; 4],
                        None,
                        false,
                    );
                    *child = Some(ChildDraft {
                        spi_in: 0,
                        reqid,
                        flow,
                        flow_index,
                        transport: policy.encapsulation == Encapsulation::Transport,
                        nonce: Vec::new(),
                        kex: None,
                        offered,
                        rekey_of: None,
                    });
                }
            }
        }
        self.schedule(spi);
    }
}
