//! Our side of EAP-MSCHAPv2 as a road-warrior client (RFC 3748 peer, RFC
//! 2759 client). The gateway's EAP-Success is accepted only after its
//! MS-CHAPv2 Success-Request proved that it knows our password (the S=
//! authenticator response, checked in constant time) and we acknowledged
//! it: an EAP-Success at any other point is refused (CVE-2021-45079's
//! class, where a client took an early EAP-Success for authentication).

use iked_common::crypto::random::RandomSource;
use iked_common::crypto::secret::ct_eq;

use super::codec::{
    self, Code, MsChapV2, TYPE_IDENTITY, TYPE_MSCHAPV2, TYPE_NAK, TYPE_NOTIFICATION,
};
use super::mschapv2::{self, Msk, CHALLENGE_LEN};
use super::{Next, Users};

pub(super) struct Client {
    /// The `user` we authenticate as (the policy's srcid).
    user: String,
    state: State,
}

enum State {
    /// Before the MS-CHAPv2 Challenge (EAP-Identity may come first).
    Idle,
    /// We sent our Response; the gateway must prove itself with S=.
    AwaitSuccess {
        authenticator_response: [u8; 20],
        msk: Msk,
    },
    /// We checked S= and acknowledged it: EAP-Success may come now.
    AwaitEapSuccess {
        msk: Msk,
    },
    Finished,
}

impl Client {
    pub(super) fn new(user: String) -> Client {
        Client {
            user,
            state: State::Idle,
        }
    }

    pub(super) fn user(&self) -> &str {
        &self.user
    }

    pub(super) fn step(
        &mut self,
        message: &[u8],
        users: &Users,
        random: &mut dyn RandomSource,
    ) -> Next {
        let packet = match codec::parse(message) {
            Ok(p) => p,
            Err(e) => return self.fail(format!("from the gateway: {e}")),
        };
        match (
            packet.code,
            std::mem::replace(&mut self.state, State::Finished),
        ) {
            (Code::Success, State::AwaitEapSuccess { msk }) => Next::Succeeded {
                message: Vec::new(),
                identity: self.user.clone(),
                msk,
            },
            (Code::Success, _) => {
                self.fail("EAP-Success before the method completed (refused)".into())
            }
            (Code::Failure, _) => self.fail("the gateway sent EAP-Failure".into()),
            (Code::Response, _) => self.fail("an EAP Response from the gateway".into()),
            (Code::Request, state) => match packet.kind {
                Some(TYPE_IDENTITY) if matches!(state, State::Idle) => {
                    self.state = State::Idle;
                    Next::Send(codec::encode(
                        Code::Response,
                        packet.identifier,
                        TYPE_IDENTITY,
                        self.user.as_bytes(),
                    ))
                }
                Some(TYPE_NOTIFICATION) => {
                    // RFC 3748 §5.2: shown to the user, answered empty.
                    log::info!(
                        "EAP notification from the gateway: {}",
                        codec::printable(packet.data)
                    );
                    self.state = state;
                    Next::Send(codec::encode(
                        Code::Response,
                        packet.identifier,
                        TYPE_NOTIFICATION,
                        &[],
                    ))
                }
                Some(TYPE_MSCHAPV2) => match codec::parse_mschapv2(true, packet.data) {
                    Ok(m) => self.on_mschapv2(packet.identifier, m, state, users, random),
                    Err(e) => self.fail(format!("from the gateway: {e}")),
                },
                Some(kind) if matches!(state, State::Idle) && kind != TYPE_NAK => {
                    // RFC 3748 §5.3.1: a Nak names the type we can do.
                    log::info!("the gateway proposes EAP type {kind}; answering Nak (MSCHAPv2)");
                    self.state = State::Idle;
                    Next::Send(codec::encode(
                        Code::Response,
                        packet.identifier,
                        TYPE_NAK,
                        &[TYPE_MSCHAPV2],
                    ))
                }
                kind => self.fail(format!(
                    "EAP Request of type {kind:?} at this point of the conversation"
                )),
            },
        }
    }

    fn on_mschapv2(
        &mut self,
        identifier: u8,
        message: MsChapV2<'_>,
        state: State,
        users: &Users,
        random: &mut dyn RandomSource,
    ) -> Next {
        match (message, state) {
            (MsChapV2::Challenge { id, challenge, .. }, State::Idle) => {
                let Some(nt_hash) = users.get(&self.user) else {
                    return self.fail(format!(
                        "no `user \"{}\"` line: no password to answer the challenge with",
                        self.user
                    ));
                };
                let mut peer_challenge = [0u8; CHALLENGE_LEN];
                if random.fill(&mut peer_challenge).is_err() {
                    return self.fail("no random octets for the MS-CHAPv2 peer challenge".into());
                }
                let name = self.user.as_bytes();
                let nt_response =
                    mschapv2::generate_nt_response(&challenge, &peer_challenge, name, nt_hash);
                let authenticator_response = mschapv2::generate_authenticator_response(
                    nt_hash,
                    &nt_response,
                    &peer_challenge,
                    &challenge,
                    name,
                );
                self.state = State::AwaitSuccess {
                    authenticator_response,
                    msk: mschapv2::msk(nt_hash, &nt_response),
                };
                Next::Send(codec::encode_response(
                    identifier,
                    id,
                    &peer_challenge,
                    &nt_response,
                    name,
                ))
            }
            (
                MsChapV2::SuccessRequest { message, .. },
                State::AwaitSuccess {
                    authenticator_response,
                    msk,
                },
            ) => {
                // "S=<40 hex> M=<text>", perhaps NUL-terminated.
                let text = message.split(|&b| b == 0).next().unwrap_or_default();
                let s = text.split(|&b| b == b' ').next().unwrap_or_default();
                let Some(received) = mschapv2::parse_authenticator_response(s) else {
                    return self.fail(format!(
                        "the gateway's MS-CHAPv2 Success has no S= authenticator response: \"{}\"",
                        codec::printable(text)
                    ));
                };
                if !ct_eq(&received, &authenticator_response) {
                    return self.fail(
                        "the gateway's MS-CHAPv2 authenticator response is wrong \
                         (it does not know our password)"
                            .into(),
                    );
                }
                self.state = State::AwaitEapSuccess { msk };
                Next::Send(codec::encode_result_response(identifier, true))
            }
            (MsChapV2::FailureRequest { message, .. }, _) => self.fail(format!(
                "the gateway refused our password: \"{}\"",
                codec::printable(message)
            )),
            (other, _) => self.fail(format!(
                "MS-CHAPv2 {} from the gateway at this point of the conversation",
                match other {
                    MsChapV2::Challenge { .. } => "Challenge",
                    MsChapV2::SuccessRequest { .. } => "Success",
                    _ => "message",
                }
            )),
        }
    }

    fn fail(&mut self, reason: String) -> Next {
        log::warn!("EAP as user \"{}\": {reason}", self.user);
        self.state = State::Finished;
        Next::Failed {
            message: Vec::new(),
            reason,
        }
    }
}
