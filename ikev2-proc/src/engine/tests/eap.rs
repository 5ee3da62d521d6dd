//! Issue 14: EAP in IKE_AUTH (RFC 7296 §2.16) between two engines: an
//! iked client (policy with `eap`) against an iked gateway (`eap` and a
//! certificate). The gateway proves itself with its certificate (the real
//! ca code of pubkey.rs), the client with EAP; both MSK AUTHs are made and
//! checked by ca.
//!
//! [`EapCa::Scripted`] is a ca whose EAP is a toy method (the client
//! sends its password in clear, the MSK is a hash of it): it drives the
//! engine through every step, and plays the hostile gateways (an early
//! EAP-Success, a conversation that never ends) that the real ca never
//! is. The MSCHAPv2 tests use the real ca EAP code (`iked_ca`).

use super::pubkey::{give_ca, signed, unfragmented_world, Pki};
use super::*;

use iked_common::config::{EapMethod, IdentitySpec, SignatureAuth};
use iked_common::ipc::{EapRole, EapStep};
use iked_common::test_pki::KeyKind;
use iked_common::wire::PayloadType;

/// The toy method's EAP type (experimental, RFC 3748 §5.8... is 255; any
/// unassigned value does for a test).
const TOY_TYPE: u8 = 99;

/// An EAP packet: code, identifier, length, then type and data.
fn eap_packet(code: u8, identifier: u8, body: &[u8]) -> Vec<u8> {
    let len = (4 + body.len()) as u16;
    let mut p = vec![code, identifier];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(body);
    p
}

fn typed(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(data);
    body
}

/// How a scripted EAP server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerScript {
    /// Identity, then the toy method; success only with the right password.
    Honest,
    /// A hostile gateway: EAP-Success right after EAP-Identity, before
    /// any method ran (CVE-2021-45079's class).
    EarlySuccess,
    /// Asks for the identity again and again.
    Endless,
}

#[derive(Default)]
struct ScriptSession {
    user: Option<String>,
    identifier: u8,
    method_done: bool,
    msk: Option<Vec<u8>>,
}

/// A ca with a toy EAP method, both roles.
pub(super) struct Scripted {
    script: ServerScript,
    /// As server: the users and their passwords.
    users: HashMap<String, Vec<u8>>,
    /// As client: who we are.
    me: Option<(String, Vec<u8>)>,
    sessions: HashMap<u64, ScriptSession>,
    /// What it was asked: ("eap", role) steps, ("sign"/"verify", msk).
    pub(super) asked: Vec<String>,
}

fn msk_of(user: &str, password: &[u8]) -> Vec<u8> {
    let mut h = openssl::sha::Sha512::new();
    h.update(b"toy msk");
    h.update(user.as_bytes());
    h.update(password);
    h.finish().to_vec()
}

impl Scripted {
    fn step(&mut self, session: u64, role: EapRole, message: &[u8]) -> EapStep {
        let s = self.sessions.entry(session).or_default();
        let failed = |reason: &str| EapStep::Failed {
            message: Vec::new(),
            reason: reason.into(),
        };
        match role {
            EapRole::Server => {
                s.identifier = s.identifier.wrapping_add(1);
                let id = s.identifier;
                if message.is_empty() {
                    return EapStep::Send(eap_packet(1, id, &[1]));
                }
                if message.len() < 5 || message[0] != 2 {
                    return failed("not an EAP Response");
                }
                match (message[4], self.script) {
                    (1, ServerScript::Endless) => EapStep::Send(eap_packet(1, id, &[1])),
                    (1, ServerScript::EarlySuccess) => {
                        let user = String::from_utf8_lossy(&message[5..]).to_string();
                        EapStep::Succeeded {
                            message: eap_packet(3, id, &[]),
                            identity: user,
                        }
                    }
                    (1, ServerScript::Honest) => {
                        s.user = Some(String::from_utf8_lossy(&message[5..]).to_string());
                        EapStep::Send(eap_packet(1, id, &[TOY_TYPE]))
                    }
                    (TOY_TYPE, _) => {
                        let user = s.user.clone().unwrap_or_default();
                        match self.users.get(&user) {
                            None => EapStep::Failed {
                                message: eap_packet(4, id, &[]),
                                reason: format!("unknown user '{user}'"),
                            },
                            Some(pw) if pw.as_slice() != &message[5..] => EapStep::Failed {
                                message: eap_packet(4, id, &[]),
                                reason: format!("wrong password of user '{user}'"),
                            },
                            Some(pw) => {
                                s.msk = Some(msk_of(&user, pw));
                                EapStep::Succeeded {
                                    message: eap_packet(3, id, &[]),
                                    identity: user,
                                }
                            }
                        }
                    }
                    _ => failed("unexpected EAP type"),
                }
            }
            EapRole::Client => {
                let Some((user, password)) = self.me.clone() else {
                    return failed("no user");
                };
                match message.first() {
                    Some(1) if message.len() >= 5 => {
                        let id = message[1];
                        match message[4] {
                            1 => EapStep::Send(eap_packet(2, id, &typed(1, user.as_bytes()))),
                            TOY_TYPE => {
                                s.method_done = true;
                                s.msk = Some(msk_of(&user, &password));
                                EapStep::Send(eap_packet(2, id, &typed(TOY_TYPE, &password)))
                            }
                            _ => failed("unexpected EAP type"),
                        }
                    }
                    Some(3) if s.method_done => EapStep::Succeeded {
                        message: Vec::new(),
                        identity: user,
                    },
                    Some(3) => failed("EAP-Success before the method completed"),
                    Some(4) => failed("the gateway sent EAP-Failure"),
                    _ => failed("not an EAP Request"),
                }
            }
        }
    }

    fn answer(&mut self, request: &Ikev2ToCa) -> Option<CaToIkev2> {
        Some(match request {
            Ikev2ToCa::Eap {
                id,
                session,
                role,
                message,
                ..
            } => {
                self.asked.push(format!("eap {role:?}"));
                CaToIkev2::Eap {
                    id: *id,
                    session: *session,
                    step: self.step(*session, *role, message),
                }
            }
            Ikev2ToCa::SignAuth {
                id,
                prf,
                signed_octets,
                eap_session: Some(session),
                ..
            } => {
                self.asked.push("sign msk".into());
                let prf = PrfAlg::from_iana(*prf).unwrap();
                match self.sessions.get(session).and_then(|s| s.msk.clone()) {
                    Some(msk) => CaToIkev2::Auth {
                        id: *id,
                        auth_method: 2,
                        auth_data: psk_auth(prf, &msk, signed_octets).unwrap(),
                        certs: Vec::new(),
                    },
                    None => CaToIkev2::Failed {
                        id: *id,
                        reason: "no MSK".into(),
                    },
                }
            }
            Ikev2ToCa::VerifyAuth {
                id,
                prf,
                signed_octets,
                auth_data,
                eap_session: Some(session),
                ..
            } => {
                self.asked.push("verify msk".into());
                let prf = PrfAlg::from_iana(*prf).unwrap();
                let ok = self
                    .sessions
                    .get(session)
                    .and_then(|s| s.msk.as_ref())
                    .is_some_and(|msk| {
                        verify_psk_auth(prf, msk, signed_octets, auth_data).unwrap()
                    });
                CaToIkev2::Verified {
                    id: *id,
                    ok,
                    reason: if ok {
                        String::new()
                    } else {
                        "MSK AUTH wrong".into()
                    },
                }
            }
            _ => return None,
        })
    }
}

/// The ca side of EAP for a [`Node`].
pub(super) enum EapCa {
    Scripted(Scripted),
}

impl EapCa {
    pub(super) fn answer(&mut self, request: &Ikev2ToCa) -> Option<CaToIkev2> {
        match self {
            EapCa::Scripted(s) => s.answer(request),
        }
    }

    pub(super) fn end(&mut self, session: u64) {
        match self {
            EapCa::Scripted(s) => {
                s.sessions.remove(&session);
            }
        }
    }

    fn asked(&self) -> &[String] {
        match self {
            EapCa::Scripted(s) => &s.asked,
        }
    }
}

fn scripted(script: ServerScript, users: &[(&str, &str)], me: Option<(&str, &str)>) -> EapCa {
    EapCa::Scripted(Scripted {
        script,
        users: users
            .iter()
            .map(|(u, p)| (u.to_string(), p.as_bytes().to_vec()))
            .collect(),
        me: me.map(|(u, p)| (u.to_string(), p.as_bytes().to_vec())),
        sessions: HashMap::new(),
        asked: Vec::new(),
    })
}

/// The client's policy: A's usual one, the gateway's certificate checked
/// (dstid its DN), EAP as `alice`.
fn client_policy() -> Policy {
    let mut p = signed(a_policy(), SignatureAuth::Any, "b.ike.test");
    p.srcid = Some(IdentitySpec::Fqdn("alice".into()));
    p.remote_access.eap = Some(EapMethod::MsChapV2);
    p
}

/// The gateway's policy: B's usual one (passive), its certificate, any
/// initiator identity, EAP.
fn gateway_policy() -> Policy {
    let mut p = signed(b_policy(), SignatureAuth::Any, "a.ike.test");
    p.dstid = None;
    p.remote_access.eap = Some(EapMethod::MsChapV2);
    p
}

/// A (client) and B (gateway) with certificates from one PKI, their EAP
/// cas given, configured, not yet settled.
fn eap_world(client_ca: EapCa, gateway_ca: EapCa) -> World {
    let pki = Pki::new("iked");
    let mut w = unfragmented_world();
    let now = w.now;
    let a_leaf = pki.leaf("a.ike.test", KeyKind::P256, 10);
    let b_leaf = pki.leaf("b.ike.test", KeyKind::P256, 11);
    give_ca(
        &mut w.a,
        now,
        &pki,
        &a_leaf,
        &pki,
        &[("ab", SignatureAuth::Any, "b.ike.test")],
        true,
    );
    give_ca(
        &mut w.b,
        now,
        &pki,
        &b_leaf,
        &pki,
        &[("ba", SignatureAuth::Any, "a.ike.test")],
        true,
    );
    w.a.eap_ca = Some(client_ca);
    w.b.eap_ca = Some(gateway_ca);
    w.configure(vec![client_policy()], vec![gateway_policy()]);
    w
}

fn has(payloads: &[Payload], kind: PayloadType) -> bool {
    payloads.iter().any(|p| p.payload_type() == kind)
}

fn notify_types(payloads: &[Payload]) -> Vec<NotifyType> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n.notify_type),
            _ => None,
        })
        .collect()
}

/// Nothing installed on `node` beyond its trap, no SA left.
fn assert_nothing_installed(node: &Node, who: &str) {
    assert!(
        node.sas.is_empty(),
        "{who}: SAs installed: {:?}",
        node.sas.keys()
    );
    assert_only_trap(node);
    assert!(
        node.engine.child_spis().is_empty(),
        "{who}: Child SAs {:x?}",
        node.engine.child_spis()
    );
}

#[test]
fn scripted_eap_establishes_with_msk_auth_both_ways() {
    let mut w = eap_world(
        scripted(ServerScript::Honest, &[], Some(("alice", "wonderland"))),
        scripted(ServerScript::Honest, &[("alice", "wonderland")], None),
    );
    w.settle();
    let ike = assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    // The client's requests: IDi without AUTH, then EAP alone, then AUTH
    // alone (RFC 7296 §2.16).
    let requests = super::pubkey::auth_messages(&w.a, &w.b, false);
    assert_eq!(requests.len(), 4, "first, identity, toy method, AUTH");
    assert!(has(&requests[0], PayloadType::IdInitiator));
    assert!(!has(&requests[0], PayloadType::Authentication));
    assert!(has(&requests[0], PayloadType::SecurityAssociation));
    for r in &requests[1..3] {
        assert!(has(r, PayloadType::Eap) && !has(r, PayloadType::Authentication));
    }
    assert!(has(&requests[3], PayloadType::Authentication));
    assert!(!has(&requests[3], PayloadType::Eap));
    let responses = super::pubkey::auth_messages(&w.b, &w.a, true);
    assert_eq!(responses.len(), 4);
    // The first answer: IDr, CERT, the certificate AUTH, EAP.
    assert!(has(&responses[0], PayloadType::IdResponder));
    assert!(has(&responses[0], PayloadType::Certificate));
    assert_ne!(super::pubkey::auth_method(&responses[0]), Some(2));
    assert!(has(&responses[0], PayloadType::Eap));
    // The last: AUTH (MSK, method 2), SA, TS; no IDr or CERT again.
    let last = &responses[3];
    assert_eq!(super::pubkey::auth_method(last), Some(2));
    assert!(has(last, PayloadType::SecurityAssociation));
    assert!(has(last, PayloadType::TsInitiator) && has(last, PayloadType::TsResponder));
    assert!(!has(last, PayloadType::IdResponder) && !has(last, PayloadType::Certificate));
    // Identities and ca's sessions.
    let a_sa = w.a.engine.ike(ike).unwrap();
    assert_eq!(a_sa.eap_identity.as_deref(), Some("alice"));
    let b_spi = w.b.established()[0];
    assert_eq!(
        w.b.engine.ike(b_spi).unwrap().eap_identity.as_deref(),
        Some("alice")
    );
    assert_eq!(w.a.eap_ends, vec![ike]);
    assert_eq!(w.b.eap_ends, vec![b_spi]);
    assert!(w.a.engine.ike(ike).unwrap().eap.is_none());
}

#[test]
fn scripted_eap_wrong_password_installs_nothing() {
    let mut w = eap_world(
        scripted(ServerScript::Honest, &[], Some(("alice", "guess"))),
        scripted(ServerScript::Honest, &[("alice", "wonderland")], None),
    );
    let log = capture_info_log(|| w.settle());
    assert!(w.a.engine.ike_spis().is_empty(), "client SAs left");
    assert!(w.b.engine.ike_spis().is_empty(), "gateway SAs left");
    assert_nothing_installed(&w.a, "client");
    assert_nothing_installed(&w.b, "gateway");
    // The gateway's last answer: AUTHENTICATION_FAILED and the EAP-Failure.
    let responses = super::pubkey::auth_messages(&w.b, &w.a, true);
    assert!(
        responses.is_empty(),
        "the client forgot its SA: nothing opens"
    );
    assert_eq!(exchanges_sent(&w.b, ExchangeType::IkeAuth, true), 3);
    assert!(
        log.iter()
            .any(|l| l.contains("EAP authentication of")
                && l.contains("wrong password of user 'alice'")),
        "{log:#?}"
    );
    // The client never made an MSK AUTH.
    let asked = w.a.eap_ca.as_ref().unwrap().asked();
    assert!(!asked.iter().any(|a| a.contains("msk")), "{asked:?}");
}

#[test]
fn scripted_early_eap_success_is_refused_by_the_client() {
    let mut w = eap_world(
        scripted(ServerScript::Honest, &[], Some(("alice", "wonderland"))),
        scripted(ServerScript::EarlySuccess, &[("alice", "wonderland")], None),
    );
    let log = capture_info_log(|| w.settle());
    assert!(w.a.engine.ike_spis().is_empty(), "the client keeps its SA");
    assert_nothing_installed(&w.a, "client");
    assert!(w.b.established().is_empty());
    assert!(w.b.sas.is_empty());
    let asked = w.a.eap_ca.as_ref().unwrap().asked();
    assert!(!asked.iter().any(|a| a.contains("msk")), "{asked:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("EAP with gateway") && l.contains("before the method completed")),
        "{log:#?}"
    );
}

#[test]
fn scripted_gateway_answers_a_failure_with_eap_failure_and_authentication_failed() {
    let mut w = eap_world(
        scripted(ServerScript::Honest, &[], Some(("mallory", "x"))),
        scripted(ServerScript::Honest, &[("alice", "wonderland")], None),
    );
    // Keep the client's SA to open the gateway's answers with: hold the
    // gateway's last IKE_AUTH answer away from the client.
    let (filter, held) = hold_first(|p| {
        p.from.ip() == ip(B)
            && Header::decode(&p.data).is_ok_and(|h| {
                h.header.exchange == ExchangeType::IkeAuth
                    && h.header.flags.response
                    && h.header.message_id == 3
            })
    });
    w.filter = filter;
    let log = capture_info_log(|| w.settle());
    assert!(w.b.engine.ike_spis().is_empty(), "the gateway keeps its SA");
    assert_nothing_installed(&w.b, "gateway");
    let held = held.borrow();
    assert_eq!(held.len(), 1, "the gateway's answer to the toy method");
    let spi = w.a.engine.ike_spis()[0];
    let payloads = open_with(&w.a, spi, &held[0].data).expect("opens");
    assert_eq!(
        notify_types(&payloads),
        vec![NotifyType::AuthenticationFailed]
    );
    let eap = payloads.iter().find_map(|p| match p {
        Payload::Eap(e) => Some(e.0.clone()),
        _ => None,
    });
    assert_eq!(eap.map(|e| e[0]), Some(4), "an EAP-Failure");
    assert!(
        log.iter().any(|l| l.contains("unknown user 'mallory'")),
        "{log:#?}"
    );
}

#[test]
fn scripted_eap_that_never_ends_is_given_up_within_the_round_cap() {
    let mut w = eap_world(
        scripted(ServerScript::Honest, &[], Some(("alice", "wonderland"))),
        scripted(ServerScript::Endless, &[("alice", "wonderland")], None),
    );
    let log = capture_info_log(|| w.settle());
    assert!(w.a.engine.ike_spis().is_empty());
    assert!(w.b.engine.ike_spis().is_empty());
    assert_nothing_installed(&w.a, "client");
    assert_nothing_installed(&w.b, "gateway");
    let requests = exchanges_sent(&w.a, ExchangeType::IkeAuth, false);
    assert!(
        requests <= crate::engine::exchange::eap::MAX_EAP_ROUNDS as usize + 1,
        "{requests} IKE_AUTH requests"
    );
    assert!(
        log.iter().any(|l| l.contains("too many EAP round trips")),
        "{log:#?}"
    );
    // ca was told to forget both sessions.
    assert_eq!(w.a.eap_ends.len(), 1);
    assert_eq!(w.b.eap_ends.len(), 1);
}

#[test]
fn scripted_eap_round_lost_is_retransmitted_and_answered_from_the_cache() {
    let mut w = eap_world(
        scripted(ServerScript::Honest, &[], Some(("alice", "wonderland"))),
        scripted(ServerScript::Honest, &[("alice", "wonderland")], None),
    );
    // Lose the gateway's answer to the client's EAP-Identity (message 2)
    // once, and the client's toy method request (message 3) once.
    let lost = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = lost.clone();
    w.filter = Box::new(move |p: &Packet| {
        let Ok(h) = Header::decode(&p.data) else {
            return true;
        };
        let h = h.header;
        let key = (h.message_id, h.flags.response);
        if h.exchange == ExchangeType::IkeAuth
            && (key == (1, true) || key == (2, false))
            && !seen.borrow().contains(&key)
        {
            seen.borrow_mut().push(key);
            return false;
        }
        true
    });
    w.settle();
    assert!(
        w.a.established().is_empty(),
        "not before the retransmissions"
    );
    for _ in 0..20 {
        if !w.a.established().is_empty() && !w.b.established().is_empty() {
            break;
        }
        w.advance();
    }
    assert_eq!(lost.borrow().len(), 2, "both losses happened");
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    // The gateway's ca saw each EAP step once: the lost answer came again
    // from the response cache, not from a second step.
    let steps = w.b.eap_ca.as_ref().unwrap().asked();
    assert_eq!(
        steps.iter().filter(|s| s.starts_with("eap")).count(),
        3,
        "{steps:?}"
    );
}
