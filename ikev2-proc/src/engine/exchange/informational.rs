//! INFORMATIONAL: deletes and liveness checks (RFC 7296 §1.4, §2.4), and local deletes.

use iked_common::wire::{Delete, ExchangeType, NotifyType, Payload, ProtocolId};

use crate::engine::Engine;

use crate::engine::state::*;

impl Engine {
    /// Sends the DELETE of the IKE SA itself (RFC 7296 §1.4.1).
    pub(in crate::engine) fn send_ike_delete(&mut self, spi: u64) {
        self.send_request(
            spi,
            ExchangeType::Informational,
            vec![Payload::Delete(Delete {
                protocol: ProtocolId::Ike,
                spis: Vec::new(),
            })],
            RequestCtx::DeleteIke,
        );
    }

    /// RFC 7296 §2.21.2: an initiator that cannot verify our AUTH tells
    /// us in an INFORMATIONAL with AUTHENTICATION_FAILED and forgets the
    /// IKE SA; so do we (with its Child SA), instead of holding it until
    /// DPD. True when that was the message.
    fn peer_refused_our_auth(&mut self, spi: u64, message_id: u32, inner: &[Payload]) -> bool {
        let refused = inner.iter().any(|p| {
            matches!(p, Payload::Notify(n) if n.notify_type == NotifyType::AuthenticationFailed)
        });
        if !refused {
            return false;
        }
        if let Some(sa) = self.ikes.get(&spi) {
            log::warn!(
                "policy {}: peer {} refused our authentication (AUTHENTICATION_FAILED in INFORMATIONAL)",
                sa.policy,
                sa.peer
            );
        }
        self.send_response(spi, ExchangeType::Informational, message_id, Vec::new());
        self.stats.auth_refused_by_peer();
        self.delete_ike_local(spi, "the peer refused our AUTH");
        true
    }

    pub(in crate::engine) fn on_informational_request(
        &mut self,
        spi: u64,
        message_id: u32,
        inner: Vec<Payload>,
    ) {
        if self.peer_refused_our_auth(spi, message_id, &inner) {
            return;
        }
        let mut delete_ike = false;
        let mut ours_deleted = Vec::new();
        for payload in &inner {
            let Payload::Delete(Delete { protocol, spis }) = payload else {
                continue;
            };
            match protocol {
                ProtocolId::Ike => delete_ike = true,
                ProtocolId::Esp => {
                    if !self.ikes.contains_key(&spi) {
                        return;
                    }
                    // The peer names its inbound SPIs: our outbound ones.
                    // Children may have moved on to a rekeyed IKE SA.
                    let family = self.ike_family(spi);
                    for peer_spi in spis.iter().take(256) {
                        let found = family
                            .iter()
                            .filter_map(|ike| self.ikes.get(ike))
                            .flat_map(|ike| ike.children.iter().copied())
                            .find(|c| self.children.get(c).is_some_and(|c| c.spi_out == *peer_spi));
                        if let Some(found) = found {
                            ours_deleted.push(found);
                        }
                    }
                }
                _ => {}
            }
        }
        if delete_ike {
            self.send_response(spi, ExchangeType::Informational, message_id, Vec::new());
            // The peer rekeyed this SA while our own rekey was pending and
            // now deletes it: its new SA won (§2.8.1), the children go there.
            if let Some((successor, _)) =
                self.ikes.get_mut(&spi).and_then(|sa| sa.peer_rekey.take())
            {
                self.move_children(spi, successor);
            }
            if let Some(sa) = self.ikes.get(&spi) {
                log::info!(
                    "policy {}: peer {} deleted IKE SA {spi:016x}",
                    sa.policy,
                    sa.peer
                );
            }
            self.delete_ike_local(spi, "deleted by peer");
            return;
        }
        let mut response = Vec::new();
        if !ours_deleted.is_empty() {
            // §1.4.1: answer with our halves of the pairs; those we are
            // deleting ourselves at the same time are included too.
            response.push(Payload::Delete(Delete {
                protocol: ProtocolId::Esp,
                spis: ours_deleted.clone(),
            }));
        }
        self.send_response(spi, ExchangeType::Informational, message_id, response);
        for child in ours_deleted {
            self.remove_child(child);
        }
    }
}
