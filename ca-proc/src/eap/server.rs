//! The gateway's side of EAP-MSCHAPv2 (RFC 3748 authenticator, RFC 2759
//! server): EAP-Identity, then Challenge, Response checked against the
//! user's NT hash, Success-Request with the authenticator response, and
//! EAP-Success once the peer acknowledged it. A wrong password or an
//! unknown user gets a Failure-Request (E=691 R=0: no retry) and then
//! EAP-Failure. The password never leaves this process; only its NT hash
//! is kept.

use iked_common::crypto::random::RandomSource;
use iked_common::crypto::secret::ct_eq;

use super::codec::{self, Code, MsChapV2, TYPE_IDENTITY, TYPE_MSCHAPV2, TYPE_NAK};
use super::mschapv2::{self, Msk, CHALLENGE_LEN};
use super::{Next, Users};

/// The name we give in our Challenge (RFC 2759 §3 Name).
const SERVER_NAME: &[u8] = b"iked";
/// The text after "S=..." in our Success-Request (RFC 2759 §5 M=).
const SUCCESS_TEXT: &[u8] = b" M=welcome";

pub(super) struct Server {
    /// The Identifier of the last Request we sent (RFC 3748 §4.1): the
    /// peer's Response must carry it.
    identifier: u8,
    state: State,
}

enum State {
    /// Nothing sent yet.
    Start,
    AwaitIdentity,
    AwaitResponse {
        identity: String,
        challenge: [u8; CHALLENGE_LEN],
    },
    /// The peer proved the password; we sent S=...
    AwaitSuccessAck {
        user: String,
        msk: Msk,
    },
    /// We sent a Failure-Request; whatever comes back ends in EAP-Failure.
    AwaitFailureAck {
        reason: String,
    },
    Finished,
}

impl Server {
    pub(super) fn new() -> Server {
        Server {
            identifier: 0,
            state: State::Start,
        }
    }

    /// The user whose credentials this conversation checked, once known.
    pub(super) fn user(&self) -> Option<&str> {
        match &self.state {
            State::AwaitSuccessAck { user, .. } => Some(user),
            _ => None,
        }
    }

    pub(super) fn step(
        &mut self,
        policy: &str,
        message: &[u8],
        users: &Users,
        random: &mut dyn RandomSource,
    ) -> Next {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Start => {
                if !message.is_empty() {
                    return self.fail("an EAP Response before our first Request".into());
                }
                self.identifier = match random_byte(random) {
                    Ok(b) => b,
                    Err(e) => return self.fail(e),
                };
                self.state = State::AwaitIdentity;
                // RFC 3748 §5.1: a Request/Identity with no prompt.
                Next::Send(codec::encode(
                    Code::Request,
                    self.identifier,
                    TYPE_IDENTITY,
                    &[],
                ))
            }
            State::AwaitIdentity => {
                let data = match self.response(message, TYPE_IDENTITY) {
                    Ok(data) => data,
                    Err(e) => return self.fail(e),
                };
                if data.is_empty() || data.len() > codec::MAX_NAME {
                    return self.fail(format!(
                        "EAP-Identity of {} octets (1 to {} expected)",
                        data.len(),
                        codec::MAX_NAME
                    ));
                }
                let identity = codec::printable(data);
                let mut challenge = [0u8; CHALLENGE_LEN];
                if random.fill(&mut challenge).is_err() {
                    return self.fail("no random octets for the MS-CHAPv2 challenge".into());
                }
                self.identifier = self.identifier.wrapping_add(1);
                self.state = State::AwaitResponse {
                    identity,
                    challenge,
                };
                Next::Send(codec::encode_challenge(
                    self.identifier,
                    &challenge,
                    SERVER_NAME,
                ))
            }
            State::AwaitResponse {
                identity,
                challenge,
            } => self.on_response(policy, message, &identity, &challenge, users, random),
            State::AwaitSuccessAck { user, msk } => {
                match self
                    .response(message, TYPE_MSCHAPV2)
                    .and_then(|data| codec::parse_mschapv2(false, data))
                {
                    Ok(MsChapV2::SuccessResponse) => {
                        self.state = State::Finished;
                        Next::Succeeded {
                            // RFC 3748 §4.2: the Identifier of the Response.
                            message: codec::encode_result(true, self.identifier),
                            identity: user,
                            msk,
                        }
                    }
                    Ok(other) => self.fail(format!(
                        "the peer answered our MS-CHAPv2 Success with {other:?}"
                    )),
                    Err(e) => self.fail(e),
                }
            }
            State::AwaitFailureAck { reason } => {
                // Already logged when the Response was checked.
                Next::Failed {
                    message: codec::encode_result(false, self.identifier),
                    reason,
                }
            }
            State::Finished => Next::Failed {
                message: Vec::new(),
                reason: "the EAP conversation is over".into(),
            },
        }
    }

    fn on_response(
        &mut self,
        policy: &str,
        message: &[u8],
        identity: &str,
        challenge: &[u8; CHALLENGE_LEN],
        users: &Users,
        random: &mut dyn RandomSource,
    ) -> Next {
        let parsed = match self.response(message, TYPE_MSCHAPV2) {
            Ok(data) => codec::parse_mschapv2(false, data),
            Err(e) => Err(e),
        };
        let (id, peer_challenge, nt_response, name) = match parsed {
            Ok(MsChapV2::Response {
                id,
                peer_challenge,
                nt_response,
                name,
            }) => (id, peer_challenge, nt_response, name),
            Ok(other) => {
                return self.fail(format!(
                    "the peer answered our MS-CHAPv2 Challenge with {other:?}"
                ))
            }
            Err(e) => return self.fail(e),
        };
        let shown = codec::printable(name);
        if shown != identity {
            log::info!(
                "policy {policy}: EAP identity \"{identity}\" authenticates as MS-CHAPv2 user \"{shown}\""
            );
        }
        let known = std::str::from_utf8(name)
            .ok()
            .and_then(|n| users.get(n).map(|hash| (n, hash)));
        let verdict = match known {
            None => {
                // The same work as for a known user, so that the time to
                // answer does not tell which names exist (the packets are
                // the same: E=691 either way).
                let dummy = [0u8; 16];
                let expected =
                    mschapv2::generate_nt_response(challenge, &peer_challenge, name, &dummy);
                let _ = ct_eq(&expected, &nt_response);
                Err(format!("EAP user \"{shown}\": unknown user"))
            }
            Some((user, nt_hash)) => {
                let expected =
                    mschapv2::generate_nt_response(challenge, &peer_challenge, name, nt_hash);
                if ct_eq(&expected, &nt_response) {
                    let auth = mschapv2::generate_authenticator_response(
                        nt_hash,
                        &nt_response,
                        &peer_challenge,
                        challenge,
                        name,
                    );
                    Ok((user.to_string(), auth, mschapv2::msk(nt_hash, &nt_response)))
                } else {
                    Err(format!("EAP user \"{shown}\": wrong password"))
                }
            }
        };
        self.identifier = self.identifier.wrapping_add(1);
        match verdict {
            Ok((user, auth, msk)) => {
                let mut text = mschapv2::authenticator_response_text(&auth).into_bytes();
                text.extend_from_slice(SUCCESS_TEXT);
                self.state = State::AwaitSuccessAck { user, msk };
                Next::Send(codec::encode_result_request(
                    self.identifier,
                    id,
                    true,
                    &text,
                ))
            }
            Err(reason) => {
                log::warn!("policy {policy}: EAP-MSCHAPv2 refused: {reason}");
                // RFC 2759 §6: E=691 (authentication failure), R=0 (no
                // retry), C= a new challenge in 32 hex digits, V=3.
                let mut fresh = [0u8; CHALLENGE_LEN];
                if random.fill(&mut fresh).is_err() {
                    return self.fail(reason);
                }
                let mut text = String::from("E=691 R=0 C=");
                for b in fresh {
                    text.push_str(&format!("{b:02X}"));
                }
                text.push_str(" V=3 M=Authentication failed");
                self.state = State::AwaitFailureAck { reason };
                Next::Send(codec::encode_result_request(
                    self.identifier,
                    id,
                    false,
                    text.as_bytes(),
                ))
            }
        }
    }

    /// The Type-Data of the peer's Response to our last Request, which
    /// must be of type `kind` (a Nak says it will not do MS-CHAPv2).
    fn response<'a>(&self, message: &'a [u8], kind: u8) -> Result<&'a [u8], String> {
        let packet = codec::parse(message)?;
        if packet.code != Code::Response {
            return Err(format!(
                "EAP-{:?} from the peer, not a Response",
                packet.code
            ));
        }
        if packet.identifier != self.identifier {
            return Err(format!(
                "EAP Response with Identifier {}, not {} of our Request",
                packet.identifier, self.identifier
            ));
        }
        match packet.kind {
            Some(k) if k == kind => Ok(packet.data),
            Some(TYPE_NAK) => Err(format!(
                "the peer refused EAP-MSCHAPv2 (Nak, it proposes types {:?})",
                packet.data.iter().take(16).collect::<Vec<_>>()
            )),
            other => Err(format!(
                "EAP Response of type {other:?} where type {kind} was due"
            )),
        }
    }

    fn fail(&mut self, reason: String) -> Next {
        log::warn!("EAP conversation refused: {reason}");
        self.state = State::Finished;
        Next::Failed {
            message: codec::encode_result(false, self.identifier),
            reason,
        }
    }
}

fn random_byte(random: &mut dyn RandomSource) -> Result<u8, String> {
    let mut b = [0u8; 1];
    random
        .fill(&mut b)
        .map_err(|_| "no random octets for the EAP Identifier".to_string())?;
    Ok(b[0])
}
