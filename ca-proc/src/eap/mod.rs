//! EAP in IKEv2 (RFC 7296 §2.16), run entirely here: ikev2 only carries
//! the EAP packets between the peer and ca ([`Ikev2ToCa::Eap`]). The
//! method is EAP-MSCHAPv2 (type 26, draft-kamath-pppext-eap-mschapv2, RFC
//! 2759) in both roles: as the gateway ([`server`]) we check the user's
//! password; as a road warrior ([`client`]) we prove ours. The users'
//! secrets (kept as NT hashes only), every MS-CHAPv2 computation and the
//! MSK stay in this process: the MSK serves only the two AUTH payloads of
//! the final IKE_AUTH round, each computed or checked once, and is
//! forgotten on [`Ikev2ToCa::EapEnd`], after [`sessions::IDLE_TIMEOUT`],
//! or when a new configuration changes the user's password.
//!
//! [`Ikev2ToCa::Eap`]: iked_common::ipc::Ikev2ToCa::Eap
//! [`Ikev2ToCa::EapEnd`]: iked_common::ipc::Ikev2ToCa::EapEnd

mod client;
pub mod codec;
pub mod mschapv2;
mod server;
pub mod sessions;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Instant;

use iked_common::config::{EapMethod, UserCredential};
use iked_common::crypto::random::{OpensslRandom, RandomSource};
use iked_common::ipc::{CaEapPolicy, EapRole, EapStep};

use mschapv2::{Msk, NtHash};
use sessions::Sessions;

/// The users by name: the NT hash of each password (RFC 2759 §8.3), the
/// only form of it kept (zeroed when dropped).
pub(crate) type Users = HashMap<String, NtHash>;

/// What a state machine says after a step.
pub(crate) enum Next {
    Send(Vec<u8>),
    Succeeded {
        message: Vec<u8>,
        identity: String,
        msk: Msk,
    },
    Failed {
        message: Vec<u8>,
        reason: String,
    },
}

enum Conversation {
    Server(server::Server),
    Client(client::Client),
}

/// A conversation whose method succeeded: the MSK for the two AUTH
/// payloads.
struct Done {
    policy: String,
    /// The user proved (server) or the one we are (client).
    user: String,
    msk: Msk,
    signed: bool,
    verified: bool,
}

struct Session {
    policy: String,
    role: EapRole,
    conversation: Conversation,
}

impl Session {
    /// The user whose password this conversation's secrets derive from.
    fn user(&self) -> Option<&str> {
        match &self.conversation {
            Conversation::Server(s) => s.user(),
            Conversation::Client(c) => Some(c.user()),
        }
    }
}

/// Which of the two MSK-based AUTH payloads (RFC 7296 §2.16) is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MskUse {
    /// Our own AUTH.
    Sign,
    /// The check of the peer's.
    Verify,
}

pub struct EapService {
    users: Users,
    policies: HashMap<String, CaEapPolicy>,
    /// Conversations in progress.
    sessions: Sessions<Session>,
    /// Conversations that succeeded, until their MSK is used, ended or
    /// idle: apart from those in progress, so that a flood of new
    /// conversations can never push out a client that authenticated.
    succeeded: Sessions<Done>,
    random: Box<dyn RandomSource + Send>,
}

impl Default for EapService {
    fn default() -> Self {
        EapService {
            users: Users::new(),
            policies: HashMap::new(),
            sessions: Sessions::default(),
            succeeded: Sessions::default(),
            random: Box::new(OpensslRandom),
        }
    }
}

impl EapService {
    /// Replaces the randomness (challenges, EAP Identifiers): tests make
    /// conversations reproducible with it.
    pub fn set_random(&mut self, random: Box<dyn RandomSource + Send>) {
        self.random = random;
    }

    /// Applies a configuration's EAP policies and users, replacing the
    /// previous ones at once. Conversations of a policy that lost `eap`,
    /// and those bound to a user who is gone or whose password changed,
    /// are dropped (with their MSK): a new password takes effect at once.
    pub fn apply(&mut self, policies: Vec<CaEapPolicy>, users: Vec<UserCredential>) {
        let mut new_users = Users::with_capacity(users.len());
        for user in users {
            if new_users.contains_key(&user.name) {
                // The parser refuses duplicates; if one came, the first wins.
                log::warn!("EAP user \"{}\" given twice; keeping the first", user.name);
                continue;
            }
            let hash = mschapv2::nt_password_hash(user.password.expose());
            new_users.insert(user.name, hash);
        }
        let changed = |name: &str, old: &Users| match (old.get(name), new_users.get(name)) {
            (Some(a), Some(b)) => !iked_common::crypto::secret::ct_eq(&a[..], &b[..]),
            (None, None) => false,
            _ => true,
        };
        let new_policies: HashMap<String, CaEapPolicy> =
            policies.into_iter().map(|p| (p.name.clone(), p)).collect();
        let old_users = &self.users;
        let dropped = self.sessions.remove_where(|s| {
            !new_policies.contains_key(&s.policy) || s.user().is_some_and(|u| changed(u, old_users))
        }) + self
            .succeeded
            .remove_where(|d| !new_policies.contains_key(&d.policy) || changed(&d.user, old_users));
        if dropped > 0 {
            log::info!("new configuration: {dropped} EAP conversations of changed users or policies dropped");
        }
        self.users = new_users;
        self.policies = new_policies;
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Conversations in progress and succeeded ones holding an MSK.
    pub fn session_count(&self) -> usize {
        self.sessions.len() + self.succeeded.len()
    }

    /// One step of the conversation `session` (RFC 3748; RFC 7296 §2.16).
    pub fn step(
        &mut self,
        now: Instant,
        session: u64,
        policy: &str,
        role: EapRole,
        message: &[u8],
    ) -> EapStep {
        let expired = self.sessions.expire(now) + self.succeeded.expire(now);
        if expired > 0 {
            log::debug!("{expired} idle EAP conversations forgotten");
        }
        let failed = |reason: String| {
            log::warn!("policy {policy}: EAP session {session:#x}: {reason}");
            EapStep::Failed {
                message: Vec::new(),
                reason,
            }
        };
        let Some(eap_policy) = self.policies.get(policy) else {
            return failed(format!("policy {policy} has no eap"));
        };
        match eap_policy.method {
            EapMethod::MsChapV2 => {}
        }
        let client_user = eap_policy.client_user.clone();
        if self.succeeded.get_mut(session).is_some() {
            return failed("the EAP method already succeeded".into());
        }
        if self.sessions.get_mut(session).is_none() {
            let conversation = match role {
                EapRole::Server if message.is_empty() => {
                    Conversation::Server(server::Server::new())
                }
                EapRole::Server => {
                    return failed("no EAP conversation (never started, expired or ended)".into())
                }
                EapRole::Client => match client_user {
                    Some(user) => Conversation::Client(client::Client::new(user)),
                    None => {
                        return failed(format!(
                            "policy {policy} names no user to authenticate as (srcid)"
                        ))
                    }
                },
            };
            let new = Session {
                policy: policy.to_string(),
                role,
                conversation,
            };
            if let Some(evicted) = self.sessions.insert(session, new, now) {
                log::info!(
                    "{} EAP conversations in progress: the least recent ({evicted:#x}) dropped",
                    sessions::MAX_SESSIONS
                );
            }
        } else if role == EapRole::Server && message.is_empty() {
            return failed("EAP conversation started twice".into());
        }
        self.sessions.touch(session, now);
        let Some(entry) = self.sessions.get_mut(session) else {
            return failed("EAP conversation lost".into());
        };
        if entry.policy != policy || entry.role != role {
            return failed(format!(
                "the conversation belongs to policy {} as {:?}, not {policy} as {role:?}",
                entry.policy, entry.role
            ));
        }
        let next = match &mut entry.conversation {
            Conversation::Server(s) => s.step(policy, message, &self.users, self.random.as_mut()),
            Conversation::Client(c) => c.step(message, &self.users, self.random.as_mut()),
        };
        match next {
            Next::Send(packet) => EapStep::Send(packet),
            Next::Succeeded {
                message,
                identity,
                msk,
            } => {
                log::info!("policy {policy}: EAP-MSCHAPv2 succeeded as \"{identity}\" ({role:?})");
                self.sessions.remove(session);
                let done = Done {
                    policy: policy.to_string(),
                    user: identity.clone(),
                    msk,
                    signed: false,
                    verified: false,
                };
                if let Some(evicted) = self.succeeded.insert(session, done, now) {
                    log::warn!(
                        "{} EAP authentications not yet used: the least recent ({evicted:#x}) dropped",
                        sessions::MAX_SESSIONS
                    );
                }
                EapStep::Succeeded { message, identity }
            }
            Next::Failed { message, reason } => {
                // Nothing of a failed conversation is kept.
                self.sessions.remove(session);
                EapStep::Failed { message, reason }
            }
        }
    }

    /// Forgets a conversation and its MSK (its IKE SA is up or gone).
    pub fn end(&mut self, session: u64) {
        self.sessions.remove(session);
        self.succeeded.remove(session);
    }

    /// Runs `auth` with the MSK of a conversation that succeeded, for one
    /// AUTH payload of `policy` (RFC 7296 §2.16): each of Sign and Verify
    /// once only. Once both are done the MSK is forgotten.
    pub fn with_msk<R>(
        &mut self,
        now: Instant,
        session: u64,
        policy: &str,
        usage: MskUse,
        auth: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, String> {
        self.sessions.expire(now);
        self.succeeded.expire(now);
        let Some(done) = self.succeeded.get_mut(session) else {
            return Err(if self.sessions.get_mut(session).is_some() {
                format!("EAP session {session:#x} has not succeeded: no MSK to authenticate with")
            } else {
                format!("no EAP session {session:#x} (never started, expired or ended)")
            });
        };
        if done.policy != policy {
            return Err(format!(
                "EAP session {session:#x} belongs to policy {}, not {policy}",
                done.policy
            ));
        }
        let used = match usage {
            MskUse::Sign => &mut done.signed,
            MskUse::Verify => &mut done.verified,
        };
        if *used {
            return Err(format!(
                "the MSK of EAP session {session:#x} was already used to {}",
                match usage {
                    MskUse::Sign => "sign our AUTH",
                    MskUse::Verify => "check the peer's AUTH",
                }
            ));
        }
        *used = true;
        let result = auth(&done.msk[..]);
        if done.signed && done.verified {
            self.succeeded.remove(session);
        }
        Ok(result)
    }
}
