//! EAP in IKE_AUTH (RFC 7296 §2.16), what both roles share: the state of
//! the conversation, its bounds, the routing of ca's EAP answers and the
//! end of ca's session.
//!
//! ca runs the whole EAP conversation (EAP-Identity, then the method) and
//! alone holds the users' secrets and the MSK; the engine only carries EAP
//! packets between the peer and ca, goes on only when ca says
//! `Succeeded`, and has both MSK-based AUTH payloads made and checked by ca
//! (`eap_session` of SignAuth / VerifyAuth). The gateway's side is
//! `eap_responder.rs`, the client's `eap_initiator.rs`.

use iked_common::ipc::{CaToIkev2, EapRole, EapStep, Ikev2ToCa};
use std::net::SocketAddr;

use iked_common::wire::{
    AuthMethod, Authentication, Delete, ExchangeType, NotifyType, Payload, ProtocolId,
};

use crate::engine::identity::{id_body, identity_text, wire_identity};
use crate::engine::keys::{auth_octets, Signer};
use crate::engine::state::*;
use crate::engine::{Action, Engine};

/// EAP packets carried per IKE SA, either way, before it is given up: an
/// EAP-MSCHAPv2 conversation takes four (Identity, Challenge,
/// Success-Request, Success); a peer or ca that keeps asking is refused
/// rather than followed for ever. The whole conversation is also bounded
/// in time: the responder's half-open timer and the initiator's Preparing
/// timer run until the SA is established.
pub(crate) const MAX_EAP_ROUNDS: u32 = 16;

/// The AUTH method of the AUTH payloads after EAP: Shared Key Message
/// Integrity Code, keyed with the MSK (RFC 7296 §2.16, §3.8).
pub(crate) const MSK_AUTH_METHOD: u8 = 2;

/// Where an IKE SA's EAP conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EapPhase {
    /// Gateway: the first IKE_AUTH request (IDi, no AUTH) came; ca signs
    /// our certificate AUTH.
    ServerSigning,
    /// Gateway: ca prepares its first EAP Request (EAP-Identity).
    ServerStarting,
    /// Gateway: EAP Requests and Responses go back and forth.
    ServerConversing,
    /// Gateway: EAP-Success sent; the initiator's MSK AUTH is due.
    ServerAwaitingAuth,
    /// Gateway: the initiator's MSK AUTH is being checked, then the Child
    /// SA set up and our MSK AUTH made (the path of a non-EAP IKE_AUTH).
    ServerFinal,
    /// Client: the first IKE_AUTH (without AUTH) sent; the gateway's
    /// answer, its certificate AUTH checked before any EAP goes on.
    ClientFirstSent,
    /// Client: the gateway's EAP Requests answered through ca.
    ClientConversing,
    /// Client: ca accepted the gateway's EAP-Success; ca makes our MSK AUTH.
    ClientSigning,
    /// Client: our MSK AUTH sent; the gateway's MSK AUTH is checked.
    ClientFinalSent,
}

/// An IKE SA's EAP conversation (RFC 7296 §2.16) while it runs.
pub(crate) struct EapExchange {
    /// Its phase, which also says the role (Server* or Client*).
    pub phase: EapPhase,
    /// EAP packets carried so far (see [`MAX_EAP_ROUNDS`]).
    pub rounds: u32,
    /// ca holds a session for this IKE SA: `EapEnd` is owed.
    pub ca_session: bool,
    /// Gateway: what the first request asked for (the Child SA's SA and
    /// TS, INITIAL_CONTACT, our ID), kept from the first IKE_AUTH request
    /// to the last while no request is being answered.
    pub kept: Option<Box<AuthAnswer>>,
    /// Gateway: our certificate AUTH (method, data, chain) until ca's
    /// first EAP Request goes out with it.
    pub first_auth: Option<(u8, Vec<u8>, Vec<Vec<u8>>)>,
    /// Gateway: the identity the peer's EAP-Identity Response names, for
    /// logs only (not authenticated until ca says `Succeeded`).
    pub claimed_identity: Option<String>,
}

impl EapExchange {
    pub(crate) fn new(phase: EapPhase) -> EapExchange {
        EapExchange {
            phase,
            rounds: 0,
            ca_session: false,
            kept: None,
            first_auth: None,
            claimed_identity: None,
        }
    }
}

/// The first EAP payload of a message (RFC 7296 §3.16).
pub(crate) fn eap_payload(payloads: &[Payload]) -> Option<&[u8]> {
    payloads.iter().find_map(|p| match p {
        Payload::Eap(eap) => Some(eap.0.as_slice()),
        _ => None,
    })
}

/// The identity of an EAP-Identity Response (RFC 3748 §4, §5.1: code 2,
/// type 1), as text for logs, at most 64 characters.
pub(crate) fn eap_identity_response(packet: &[u8]) -> Option<String> {
    let [2, _, hi, lo, 1, ..] = *packet else {
        return None;
    };
    let length = usize::from(u16::from_be_bytes([hi, lo]));
    let identity = packet.get(5..length.min(packet.len()))?;
    Some(String::from_utf8_lossy(identity).chars().take(64).collect())
}

/// An EAP packet's code for logs (RFC 3748 §4).
pub(crate) fn eap_code_text(packet: &[u8]) -> &'static str {
    match packet.first() {
        Some(1) => "Request",
        Some(2) => "Response",
        Some(3) => "Success",
        Some(4) => "Failure",
        _ => "unknown",
    }
}

impl Engine {
    /// The SA's EAP phase, if it runs EAP.
    pub(in crate::engine) fn eap_phase(&self, spi: u64) -> Option<EapPhase> {
        self.ikes.get(&spi)?.eap.as_ref().map(|e| e.phase)
    }

    pub(in crate::engine) fn set_eap_phase(&mut self, spi: u64, phase: EapPhase) {
        if let Some(eap) = self.ikes.get_mut(&spi).and_then(|sa| sa.eap.as_mut()) {
            eap.phase = phase;
        }
    }

    /// One more EAP packet carried on the SA: false (and logged) once it
    /// passes [`MAX_EAP_ROUNDS`].
    pub(in crate::engine) fn count_eap_round(&mut self, spi: u64) -> bool {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return false;
        };
        let Some(eap) = sa.eap.as_mut() else {
            return false;
        };
        eap.rounds += 1;
        if eap.rounds > MAX_EAP_ROUNDS {
            log::warn!(
                "policy {}: IKE SA {spi:016x} with {}: EAP goes on past {MAX_EAP_ROUNDS} packets, given up",
                sa.policy,
                sa.peer
            );
            return false;
        }
        true
    }

    /// The EAP session whose MSK keys the AUTH that the IKE_AUTH being
    /// answered now carries (the gateway's last answer), if any.
    pub(in crate::engine) fn eap_msk_session(&self, spi: u64) -> Option<u64> {
        (self.eap_phase(spi) == Some(EapPhase::ServerFinal)).then_some(spi)
    }

    /// Passes one EAP packet (empty: start, as server) to ca.
    pub(in crate::engine) fn ask_eap_step(&mut self, spi: u64, role: EapRole, message: Vec<u8>) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let policy = sa.policy.clone();
        if let Some(eap) = sa.eap.as_mut() {
            eap.ca_session = true;
        }
        self.ask_ca(spi, Wait::Eap, |id| Ikev2ToCa::Eap {
            id,
            session: spi,
            policy,
            role,
            message,
        });
    }

    /// ca forgets the EAP session of an IKE SA established or gone, and
    /// its MSK (no answer).
    pub(in crate::engine) fn end_eap_session(&mut self, spi: u64, eap: Option<Box<EapExchange>>) {
        if eap.is_some_and(|e| e.ca_session) {
            self.actions
                .push_back(Action::Ca(Ikev2ToCa::EapEnd { session: spi }));
        }
    }

    /// An INFORMATIONAL request on an IKE SA whose EAP conversation runs
    /// (either role), opened and its ICV checked. RFC 7296 §2.21.2: "If
    /// the error occurs on the initiator, the notification MAY be returned
    /// in a separate INFORMATIONAL exchange", and AUTHENTICATION_FAILED
    /// there deletes the IKE SA without a Delete payload. So a peer that
    /// gives up (strongSwan after a wrong password: it does not answer the
    /// MS-CHAPv2 Failure-Request) ends the half-open SA and ca's session
    /// at once, as does a Delete of the IKE SA (§1.4.1); we answer with an
    /// empty INFORMATIONAL (§1.4, §1.5) and install nothing. Anything else
    /// before IKE_AUTH completes stays dropped (§1.2, security review L4).
    pub(in crate::engine) fn on_informational_during_eap(
        &mut self,
        spi: u64,
        local: SocketAddr,
        remote: SocketAddr,
        message_id: u32,
        inner: Vec<Payload>,
    ) {
        let refused = inner.iter().any(|p| {
            matches!(p, Payload::Notify(n) if n.notify_type == NotifyType::AuthenticationFailed)
        });
        let deleted = inner.iter().any(|p| {
            matches!(
                p,
                Payload::Delete(Delete {
                    protocol: ProtocolId::Ike,
                    ..
                })
            )
        });
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if !refused && !deleted {
            log::debug!(
                "IKE SA {spi:016x}: INFORMATIONAL request {message_id} before IKE_AUTH completed \
                 (EAP under way) without AUTHENTICATION_FAILED or Delete, dropped"
            );
            return;
        }
        let what = if refused {
            "AUTHENTICATION_FAILED"
        } else {
            "Delete of the IKE SA"
        };
        let role = if sa.initiator { "gateway" } else { "client" };
        let ike_id = sa
            .peer_id
            .as_ref()
            .map_or_else(|| "unknown".into(), identity_text);
        let eap_user = sa
            .eap_identity
            .clone()
            .or_else(|| sa.eap.as_ref().and_then(|e| e.claimed_identity.clone()))
            .map_or_else(|| "unknown".into(), |u| format!("'{}'", u.escape_debug()));
        log::warn!(
            "policy {}: EAP {role} {remote} (IKE ID {ike_id}, EAP user {eap_user}) gave up during \
             EAP: {what} in INFORMATIONAL, IKE SA {spi:016x} ended",
            sa.policy,
        );
        // The answer goes back to where the request came from (§2.11),
        // without moving the half-open SA.
        sa.mobike.request_path = Some((local, remote));
        self.send_response(spi, ExchangeType::Informational, message_id, Vec::new());
        self.delete_ike_local(spi, &format!("the peer gave up during EAP ({what})"));
    }

    /// ca's answers to EAP waits, taken here; every other message is given
    /// back for `dispatch_ca`.
    pub(in crate::engine) fn dispatch_eap_reply(
        &mut self,
        message: CaToIkev2,
    ) -> Option<CaToIkev2> {
        let id = match &message {
            CaToIkev2::Auth { id, .. }
            | CaToIkev2::Eap { id, .. }
            | CaToIkev2::Failed { id, .. }
            | CaToIkev2::Verified { id, .. } => *id,
            CaToIkev2::Pong { .. } | CaToIkev2::Store { .. } => return Some(message),
        };
        let Some((ike, wait)) = self.waits.get(&id).copied() else {
            return Some(message);
        };
        if !matches!(wait, Wait::Eap | Wait::EapSign) {
            return Some(message);
        }
        self.waits.remove(&id);
        let server = self.ikes.get(&ike).is_some_and(|sa| !sa.initiator);
        match (wait, message) {
            (Wait::Eap, CaToIkev2::Eap { session, step, .. }) if session == ike => {
                if server {
                    self.eap_server_step(ike, step)
                } else {
                    self.eap_client_step(ike, step)
                }
            }
            (
                Wait::EapSign,
                CaToIkev2::Auth {
                    auth_method,
                    auth_data,
                    certs,
                    ..
                },
            ) => {
                if server {
                    self.eap_server_signed(ike, auth_method, auth_data, certs)
                } else {
                    self.eap_client_signed(ike, auth_method, auth_data)
                }
            }
            (_, CaToIkev2::Failed { reason, .. }) => {
                let step = EapStep::Failed {
                    message: Vec::new(),
                    reason: format!("ca failed: {reason}"),
                };
                if server {
                    self.eap_server_step(ike, step)
                } else {
                    self.eap_client_step(ike, step)
                }
            }
            (wait, other) => {
                log::warn!(
                    "answer {other:?} from ca does not fit what IKE SA {ike:016x} waits for ({wait:?})"
                );
                let step = EapStep::Failed {
                    message: Vec::new(),
                    reason: "ca's answer does not fit the EAP step".into(),
                };
                if server {
                    self.eap_server_step(ike, step)
                } else {
                    self.eap_client_step(ike, step)
                }
            }
        }
        None
    }
}

/// Our AUTH of method `method` with `data`, as a payload.
pub(crate) fn auth_payload(method: u8, data: Vec<u8>) -> Payload {
    Payload::Authentication(iked_common::wire::Authentication {
        method: AuthMethod::from_value(method),
        data,
    })
}

impl Engine {
    /// The ca request that checks the peer's MSK-based AUTH (RFC 7296
    /// §2.16) over the octets `signer` (the peer's role) signed, both roles
    /// alike; None when the SA is gone or lacks its keys or the peer's ID.
    pub(in crate::engine) fn msk_verify_request(
        &self,
        spi: u64,
        signer: Signer,
        auth: &Authentication,
    ) -> Option<impl FnOnce(u64) -> Ikev2ToCa> {
        let sa = self.ikes.get(&spi)?;
        let (Some(suite), Some(keys), Some(peer_id)) =
            (sa.suite, sa.keys.as_ref(), sa.peer_id.as_ref())
        else {
            return None;
        };
        let signed_octets = auth_octets(suite.prf, sa, keys, signer, &id_body(peer_id)).ok()?;
        let policy = sa.policy.clone();
        let prf = suite.prf.iana_id();
        let peer_id = wire_identity(peer_id);
        let auth_method = auth.method.value();
        let auth_data = auth.data.clone();
        Some(move |id| Ikev2ToCa::VerifyAuth {
            id,
            policy,
            prf,
            auth_method,
            signed_octets,
            auth_data,
            peer_id,
            certs: Vec::new(),
            eap_session: Some(spi),
        })
    }
}
