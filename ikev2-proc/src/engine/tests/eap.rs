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

use crate::engine::exchange::eap::EapPhase;

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

/// ca's real EAP code (`iked_ca`, EAP-MSCHAPv2) for the EAP requests of
/// its policy; the certificate requests go to the node's `pki`.
pub(super) struct RealEap {
    service: iked_ca::auth::AuthService,
    /// ca's clock for its sessions (they expire after a minute idle).
    now: Instant,
    asked: Vec<String>,
    /// What ca answered to each EAP step and MSK request, in order.
    answers: Vec<String>,
}

impl RealEap {
    fn answer(&mut self, request: &Ikev2ToCa) -> Option<CaToIkev2> {
        let what = match request {
            Ikev2ToCa::Eap { role, .. } => format!("eap {role:?}"),
            Ikev2ToCa::SignAuth {
                eap_session: Some(_),
                ..
            } => "sign msk".into(),
            Ikev2ToCa::VerifyAuth {
                eap_session: Some(_),
                ..
            } => "verify msk".into(),
            _ => return None,
        };
        self.asked.push(what);
        let reply = self.service.handle_at(self.now, request.clone());
        self.answers.push(match &reply {
            CaToIkev2::Eap { step, .. } => crate::engine::exchange::eap_responder::step_text(step),
            CaToIkev2::Auth { auth_method, .. } => format!("auth {auth_method}"),
            CaToIkev2::Verified { ok, reason, .. } => format!("verified {ok} {reason}"),
            CaToIkev2::Failed { reason, .. } => format!("failed {reason}"),
            other => format!("{other:?}"),
        });
        Some(reply)
    }
}

/// The ca side of EAP for a [`Node`].
pub(super) enum EapCa {
    Scripted(Scripted),
    Real(Box<RealEap>),
}

impl EapCa {
    pub(super) fn answer(&mut self, request: &Ikev2ToCa) -> Option<CaToIkev2> {
        match self {
            EapCa::Scripted(s) => s.answer(request),
            EapCa::Real(r) => r.answer(request),
        }
    }

    pub(super) fn end(&mut self, session: u64) {
        match self {
            EapCa::Scripted(s) => {
                s.sessions.remove(&session);
            }
            EapCa::Real(r) => {
                let end = Ikev2ToCa::EapEnd { session };
                assert!(r.service.handle_message_at(r.now, end).is_none());
            }
        }
    }

    fn asked(&self) -> &[String] {
        match self {
            EapCa::Scripted(s) => &s.asked,
            EapCa::Real(r) => &r.asked,
        }
    }

    fn answers(&self) -> &[String] {
        match self {
            EapCa::Scripted(_) => &[],
            EapCa::Real(r) => &r.answers,
        }
    }

    /// EAP sessions ca holds now (real ca only).
    fn sessions(&self) -> usize {
        match self {
            EapCa::Scripted(s) => s.sessions.len(),
            EapCa::Real(r) => r.service.eap().session_count(),
        }
    }
}

/// ca's real EAP-MSCHAPv2 for `policy`: as gateway with `users`, or as
/// the client `client_user` (whose password is among `users`, as the
/// `user` line of a client's iked.conf).
fn real(now: Instant, policy: &str, users: &[(&str, &str)], client_user: Option<&str>) -> EapCa {
    use iked_common::config::{PreSharedKey, UserCredential};
    let mut service = iked_ca::auth::AuthService::default();
    service.apply_eap(
        vec![iked_common::ipc::CaEapPolicy {
            name: policy.into(),
            method: EapMethod::MsChapV2,
            client_user: client_user.map(str::to_string),
        }],
        users
            .iter()
            .map(|(name, password)| UserCredential {
                name: name.to_string(),
                password: PreSharedKey::new(password.as_bytes().to_vec()),
            })
            .collect(),
    );
    // Seeded challenges: the same run every time.
    let mut state = 0x5eed_u64 ^ policy.len() as u64;
    service.set_eap_random(Box::new(move |buf: &mut [u8]| {
        for byte in buf.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = (state >> 24) as u8;
        }
    }));
    EapCa::Real(Box::new(RealEap {
        service,
        now,
        asked: Vec::new(),
        answers: Vec::new(),
    }))
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
    eap_world_in(unfragmented_world(), client_ca, gateway_ca)
}

/// [`eap_world`] with these policies (client, gateway).
fn eap_world_with(client_ca: EapCa, gateway_ca: EapCa, policies: (Policy, Policy)) -> World {
    let pki = Pki::new("iked");
    eap_world_of(
        unfragmented_world(),
        client_ca,
        gateway_ca,
        &pki,
        &pki,
        policies,
    )
}

/// [`eap_world`] in `w`.
fn eap_world_in(w: World, client_ca: EapCa, gateway_ca: EapCa) -> World {
    let pki = Pki::new("iked");
    let policies = (client_policy(), gateway_policy());
    eap_world_of(w, client_ca, gateway_ca, &pki, &pki, policies)
}

/// [`eap_world_in`] where the gateway's certificate comes from `gateway_pki`
/// and the client trusts `client_trusts`.
fn eap_world_of(
    mut w: World,
    client_ca: EapCa,
    gateway_ca: EapCa,
    client_trusts: &Pki,
    gateway_pki: &Pki,
    (client, gateway): (Policy, Policy),
) -> World {
    let pki = client_trusts;
    let now = w.now;
    let a_leaf = pki.leaf("a.ike.test", KeyKind::P256, 10);
    let b_leaf = gateway_pki.leaf("b.ike.test", KeyKind::P256, 11);
    give_ca(
        &mut w.a,
        now,
        pki,
        &a_leaf,
        pki,
        &[("ab", SignatureAuth::Any, "b.ike.test")],
        true,
    );
    give_ca(
        &mut w.b,
        now,
        gateway_pki,
        &b_leaf,
        gateway_pki,
        &[("ba", SignatureAuth::Any, "a.ike.test")],
        true,
    );
    w.a.eap_ca = Some(client_ca);
    w.b.eap_ca = Some(gateway_ca);
    w.configure(vec![client], vec![gateway]);
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

/// A road warrior: EAP, an address from the gateway's pool (h-ra's
/// Configuration payload), the Child SA narrowed to it.
#[test]
fn scripted_eap_road_warrior_gets_its_address_from_the_pool() {
    use iked_common::config::{ConfigAttributeSpec, Prefix};
    let mut client = client_policy();
    client.flows = vec![selector("0.0.0.0", 0, "10.2.0.0", 16)];
    client.remote_access.request_address = true;
    let mut gateway = gateway_policy();
    gateway.flows = vec![selector("10.2.0.0", 16, "10.9.0.0", 24)];
    gateway.remote_access.config = vec![ConfigAttributeSpec::AddressPool(Prefix {
        addr: ip("10.9.0.0"),
        len: 24,
    })];
    let mut w = eap_world_with(
        scripted(ServerScript::Honest, &[], Some(("alice", "wonderland"))),
        scripted(ServerScript::Honest, &[("alice", "wonderland")], None),
        (client, gateway),
    );
    w.settle();
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    let b_spi = w.b.established()[0];
    let b_sa = w.b.engine.ike(b_spi).unwrap();
    assert_eq!(b_sa.eap_identity.as_deref(), Some("alice"));
    assert_eq!(b_sa.virtual_ips, vec![ip("10.9.0.1")]);
    let a_spi = w.a.established()[0];
    assert_eq!(
        w.a.engine.ike(a_spi).unwrap().virtual_ips,
        vec![ip("10.9.0.1")]
    );
    let child = w.b.engine.child(w.b.engine.child_spis()[0]).unwrap();
    assert_eq!(child.flow, selector("10.2.0.0", 16, "10.9.0.1", 32));
    // The CFG_REPLY came in the gateway's last answer (after EAP).
    let responses = super::pubkey::auth_messages(&w.b, &w.a, true);
    assert!(has(responses.last().unwrap(), PayloadType::Configuration));
    assert!(!has(&responses[0], PayloadType::Configuration));
}

// ----------------------------------------------------------------------
// EAP-MSCHAPv2 with the real ca code on both sides (iked_ca::eap).
// ----------------------------------------------------------------------

/// Client A as `user` with `password`; gateway B knowing alice's password.
fn mschap_world(user: &str, password: &str) -> World {
    mschap_world_in(unfragmented_world(), user, password)
}

fn mschap_world_in(w: World, user: &str, password: &str) -> World {
    let now = w.now;
    let pki = Pki::new("iked");
    let mut client = client_policy();
    client.srcid = Some(IdentitySpec::Fqdn(user.into()));
    eap_world_of(
        w,
        real(now, "ab", &[(user, password)], Some(user)),
        real(now, "ba", &[("alice", "wonderland")], None),
        &pki,
        &pki,
        (client, gateway_policy()),
    )
}

#[test]
fn mschapv2_client_and_gateway_establish_with_equal_keys_and_a_child() {
    let mut w = mschap_world("alice", "wonderland");
    w.settle();
    let ike = assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    assert_eq!(w.a.sas.len(), 2, "both ESP SAs in the client's kernel");
    assert_eq!(w.b.sas.len(), 2, "both ESP SAs in the gateway's kernel");
    // First request, EAP-Identity, the MSCHAPv2 Response, the ack of the
    // Success-Request, then the MSK AUTH.
    let requests = super::pubkey::auth_messages(&w.a, &w.b, false);
    assert_eq!(requests.len(), 5, "{requests:#?}");
    assert!(!has(&requests[0], PayloadType::Authentication));
    assert_eq!(super::pubkey::auth_method(&requests[4]), Some(2));
    let b_spi = w.b.established()[0];
    for (node, spi) in [(&w.a, ike), (&w.b, b_spi)] {
        assert_eq!(
            node.engine.ike(spi).unwrap().eap_identity.as_deref(),
            Some("alice")
        );
        let ca = node.eap_ca.as_ref().unwrap();
        assert_eq!(node.eap_ends, vec![spi], "EapEnd once established");
        assert_eq!(ca.sessions(), 0, "ca forgot the session and its MSK");
        let asked = ca.asked();
        assert_eq!(
            asked.iter().filter(|a| *a == "sign msk").count(),
            1,
            "{asked:?}"
        );
        assert_eq!(
            asked.iter().filter(|a| *a == "verify msk").count(),
            1,
            "{asked:?}"
        );
    }
    // The client's ca was asked for EAP steps only after the gateway's
    // certificate AUTH was verified (pki's verdict comes first).
    let verdicts = &super::pubkey::ca_of(&w.a).verdicts;
    assert_eq!(verdicts.len(), 1);
    assert!(verdicts[0].0, "{verdicts:?}");
    // show sa names the EAP identity.
    let info = w.b.engine.ike_info(w.b.engine.ike(b_spi).unwrap());
    assert_eq!(info.eap_identity.as_deref(), Some("alice"));
    // MOBIKE (RFC 4555 §3.2) negotiated across the EAP rounds: offered in
    // the first request, answered in the last answer.
    assert!(w.a.engine.ike(ike).unwrap().mobike.negotiated(), "client");
    assert!(
        w.b.engine.ike(b_spi).unwrap().mobike.negotiated(),
        "gateway"
    );
    assert!(info.mobike);
}

/// A refused EAP-MSCHAPv2 authentication: no SA left, nothing installed
/// on either side, the reason logged with the user, no MSK AUTH made.
/// ca's client acknowledges the gateway's Failure-Request, so the gateway
/// ends at once with EAP-Failure and AUTHENTICATION_FAILED: both sides
/// are clean without waiting for the half-open timer.
fn assert_mschap_refused(user: &str, password: &str) {
    // One attempt: the client's policy would start again after a while.
    let mut client_settings = settings();
    client_settings.fragmentation.enabled = false;
    client_settings.restart_delay = Duration::from_secs(3600);
    let mut gateway_settings = settings();
    gateway_settings.fragmentation.enabled = false;
    let world = World::with(client_settings, gateway_settings);
    let mut w = mschap_world_in(world, user, password);
    let log = capture_info_log(|| {
        w.settle();
    });
    assert!(w.a.engine.ike_spis().is_empty(), "client SAs left");
    assert!(w.b.engine.ike_spis().is_empty(), "gateway SAs left");
    assert_nothing_installed(&w.a, "client");
    assert_nothing_installed(&w.b, "gateway");
    assert_eq!(w.a.sa_requests + w.b.sa_requests, 0);
    assert!(
        log.iter()
            .any(|l| l.contains("EAP") && l.contains(&format!("\"{user}\""))
                || l.contains(&format!("'{user}'"))),
        "the gateway names the user: {log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("refused our password")),
        "the client's ca says why: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("EAP with gateway") && l.contains("AUTHENTICATION_FAILED")),
        "the client's engine says how it ended: {log:#?}"
    );
    for node in [&w.a, &w.b] {
        let ca = node.eap_ca.as_ref().unwrap();
        assert!(
            !ca.asked().iter().any(|a| a.contains("msk")),
            "{:?}",
            ca.asked()
        );
        assert_eq!(ca.sessions(), 0, "ca's session ended");
        assert_eq!(node.eap_ends.len(), 1);
    }
}

#[test]
fn mschapv2_wrong_password_is_authentication_failed_and_installs_nothing() {
    assert_mschap_refused("alice", "looking-glass");
}

#[test]
fn mschapv2_unknown_user_is_authentication_failed_and_installs_nothing() {
    assert_mschap_refused("bob", "wonderland");
}

#[test]
fn mschapv2_client_refuses_an_early_eap_success_from_a_hostile_gateway() {
    let now = Instant::now();
    let mut w = eap_world(
        real(now, "ab", &[("alice", "wonderland")], Some("alice")),
        scripted(ServerScript::EarlySuccess, &[], None),
    );
    let log = capture_info_log(|| w.settle());
    assert!(w.a.engine.ike_spis().is_empty(), "the client keeps its SA");
    assert_nothing_installed(&w.a, "client");
    assert!(w.b.sas.is_empty());
    let ca = w.a.eap_ca.as_ref().unwrap();
    assert!(
        !ca.asked().iter().any(|a| a.contains("msk")),
        "{:?}",
        ca.asked()
    );
    // ca's verdict on the EAP-Success, and the engine's refusal.
    assert!(
        ca.answers().last().is_some_and(|a| a.starts_with("failed")),
        "{:?}",
        ca.answers()
    );
    assert!(
        log.iter()
            .any(|l| l.contains("EAP with gateway") && l.contains("failed")),
        "{log:#?}"
    );
    // Only IDi and the EAP-Identity Response went to the gateway: no AUTH.
    let requests = exchanges_sent(&w.a, ExchangeType::IkeAuth, false);
    assert_eq!(requests, 2);
}

#[test]
fn mschapv2_rounds_lost_are_retransmitted_and_the_sa_comes_up() {
    let mut w = mschap_world("alice", "wonderland");
    // Lose the gateway's MSCHAPv2 Challenge answer (message 1) and the
    // client's Response (message 2), once each.
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
    for _ in 0..20 {
        if !w.a.established().is_empty() && !w.b.established().is_empty() {
            break;
        }
        w.advance();
    }
    assert_eq!(lost.borrow().len(), 2, "both losses happened");
    assert_one_matching_ike(&w);
    assert_one_matching_child(&w);
    // Each EAP step reached the gateway's ca once.
    let asked = w.b.eap_ca.as_ref().unwrap().asked();
    assert_eq!(
        asked.iter().filter(|a| a.starts_with("eap")).count(),
        4,
        "{asked:?}"
    );
}

/// INITIAL_CONTACT after EAP drops the stale SAs of the same EAP user
/// only: another user behind the same IKE ID keeps its SA.
#[test]
fn initial_contact_after_eap_is_scoped_to_the_eap_identity() {
    for (old_user, dropped) in [("alice", true), ("bob", false)] {
        let mut w = mschap_world("alice", "wonderland");
        w.settle();
        assert_one_matching_ike(&w);
        let old = w.b.established()[0];
        // The gateway's SA as if another user had proved itself on it.
        w.b.engine.ikes.get_mut(&old).unwrap().eap_identity = Some(old_user.into());
        // The client starts afresh (as after a reboot): its SA forgotten
        // without a DELETE, its next IKE_AUTH carries INITIAL_CONTACT.
        let a_spi = w.a.established()[0];
        w.a.engine.delete_ike_local(a_spi, "test: client restarts");
        w.advance_by(settings().restart_delay + Duration::from_secs(1));
        let established = w.b.established();
        assert!(
            established.len() == 1 + usize::from(!dropped),
            "{old_user}: gateway SAs {established:x?}"
        );
        assert_eq!(established.contains(&old), !dropped, "{old_user}");
        let requests = super::pubkey::auth_messages(&w.a, &w.b, false);
        assert!(notify_types(&requests[requests.len() - 5]).contains(&NotifyType::InitialContact));
    }
}

/// The client checks the gateway's certificate AUTH before any EAP: a
/// gateway whose certificate it does not trust gets no EAP Response, and
/// the client's ca runs no EAP step at all.
#[test]
fn mschapv2_client_sends_no_eap_to_a_gateway_it_does_not_trust() {
    let now = Instant::now();
    let (ours, theirs) = (Pki::new("iked"), Pki::new("rogue"));
    let mut w = eap_world_of(
        unfragmented_world(),
        real(now, "ab", &[("alice", "wonderland")], Some("alice")),
        real(now, "ba", &[("alice", "wonderland")], None),
        &ours,
        &theirs,
        (client_policy(), gateway_policy()),
    );
    w.settle();
    assert!(w.a.engine.ike_spis().is_empty(), "the client keeps its SA");
    assert_nothing_installed(&w.a, "client");
    let verdicts = &super::pubkey::ca_of(&w.a).verdicts;
    assert_eq!(verdicts.len(), 1);
    assert!(
        !verdicts[0].0,
        "the rogue certificate is refused: {verdicts:?}"
    );
    assert!(
        w.a.eap_ca.as_ref().unwrap().asked().is_empty(),
        "no EAP step on the client"
    );
    // Only the first IKE_AUTH (without AUTH) went out, then the
    // INFORMATIONAL with AUTHENTICATION_FAILED (RFC 7296 §2.21.2).
    assert_eq!(exchanges_sent(&w.a, ExchangeType::IkeAuth, false), 1);
}

/// An initiator asking for EAP (no AUTH) under a gateway without `eap`
/// is refused with the reason; one with AUTH under an `eap` policy finds
/// no policy (a certificate does not stand in for the user's EAP).
#[test]
fn eap_and_non_eap_policies_do_not_stand_in_for_each_other() {
    // The client wants EAP; the gateway's only policy has none.
    let now = Instant::now();
    let mut gateway = gateway_policy();
    gateway.remote_access.eap = None;
    let mut w = eap_world_with(
        real(now, "ab", &[("alice", "wonderland")], Some("alice")),
        real(now, "ba", &[("alice", "wonderland")], None),
        (client_policy(), gateway),
    );
    let log = capture_info_log(|| w.settle());
    assert!(w.a.engine.ike_spis().is_empty() && w.b.engine.ike_spis().is_empty());
    assert_nothing_installed(&w.a, "client");
    assert_nothing_installed(&w.b, "gateway");
    assert!(
        log.iter()
            .any(|l| l.contains("refused with AUTHENTICATION_FAILED")
                && l.contains("sent no AUTH (it asks for EAP")),
        "{log:#?}"
    );
    // The client signs with its certificate; the gateway's policy has eap.
    let mut client = client_policy();
    client.remote_access.eap = None;
    let mut w = eap_world_with(
        real(now, "ab", &[], None),
        real(now, "ba", &[("alice", "wonderland")], None),
        (client, gateway_policy()),
    );
    let log = capture_info_log(|| w.settle());
    assert!(w.b.engine.ike_spis().is_empty());
    assert_nothing_installed(&w.b, "gateway");
    assert!(
        log.iter()
            .any(|l| l.contains("refused with AUTHENTICATION_FAILED")
                && l.contains("no policy for identity")),
        "{log:#?}"
    );
}

/// The whole EAP conversation is bounded in time on both sides: a client
/// whose ca never answers (nothing outstanding, so no retransmission
/// ends it) and the gateway waiting for it both give the SA up at the
/// half-open timeout.
#[test]
fn eap_is_bounded_by_the_half_open_time_on_both_sides() {
    let mut w = mschap_world("alice", "wonderland");
    let (filter, held) = hold_first(|p| {
        p.from.ip() == ip(B)
            && Header::decode(&p.data).is_ok_and(|h| {
                h.header.exchange == ExchangeType::IkeAuth && h.header.flags.response
            })
    });
    w.filter = filter;
    w.settle();
    let packet = held
        .borrow_mut()
        .pop()
        .expect("the gateway's first IKE_AUTH answer");
    w.a.hold_ca = true;
    w.deliver(packet);
    w.settle();
    assert_eq!(
        w.a.held_ca.len(),
        1,
        "the gateway's certificate AUTH check, held"
    );
    assert_eq!(w.a.engine.ike_spis().len(), 1);
    assert_eq!(w.b.engine.ike_spis().len(), 1);
    let log =
        capture_info_log(|| w.advance_by(settings().half_open_timeout + Duration::from_secs(1)));
    assert!(
        w.a.engine.ike_spis().is_empty(),
        "the client waits for ever"
    );
    assert!(
        w.b.engine.ike_spis().is_empty(),
        "the gateway waits for ever"
    );
    assert_nothing_installed(&w.a, "client");
    assert_nothing_installed(&w.b, "gateway");
    for policy in ["policy ab:", "policy ba:"] {
        assert!(
            log.iter()
                .any(|l| l.starts_with(policy) && l.contains("removed: half-open timeout")),
            "{policy} {log:#?}"
        );
    }
    assert_eq!(
        w.a.eap_ends.len() + w.b.eap_ends.len(),
        1,
        "only the gateway's ca had a session"
    );
}

/// Many road warriors over EAP-MSCHAPv2 (real ca code on every side) with
/// one IKE ID for all (as clients that send a fixed name or their private
/// address do), each its own EAP user: each gets its own pool address
/// (leases by EAP identity), and one's INITIAL_CONTACT drops none of the
/// others. Timings printed, not asserted.
#[test]
fn fifty_eap_road_warriors_behind_one_ike_id_each_get_their_own_lease() {
    use super::remote_access::{client_addr, client_policy as rw_client, client_state, Fleet};
    use std::collections::HashSet;
    const CLIENTS: usize = 50;
    let pki = Pki::new("iked");
    let gateway_leaf = pki.leaf("b.ike.test", KeyKind::P256, 11);
    let client_leaf = pki.leaf("a.ike.test", KeyKind::P256, 10);
    let mut gateway = super::remote_access::gateway_policy("10.99.0.0/24");
    gateway.auth = iked_common::config::AuthSpec::PublicKey(SignatureAuth::Any);
    gateway.remote_access.eap = Some(EapMethod::MsChapV2);
    let mut fleet = Fleet::new(gateway);
    let now = fleet.now;
    let a_second_later = now + Duration::from_secs(1);
    let users: Vec<(String, String)> = (0..CLIENTS)
        .map(|i| (format!("user-{i}"), format!("password {i}")))
        .collect();
    let user_refs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    give_ca(
        &mut fleet.gateway,
        now,
        &pki,
        &gateway_leaf,
        &pki,
        &[("rw", SignatureAuth::Any, "a.ike.test")],
        true,
    );
    fleet.gateway.eap_ca = Some(real(now, "rw", &user_refs, None));
    let started = std::time::Instant::now();
    for (i, (user, password)) in users.iter().enumerate() {
        if i == CLIENTS / 2 {
            // A second wave a second later: the first wave's SAs are
            // older than its INITIAL_CONTACTs (RFC 7296 §2.4).
            fleet.settle();
            fleet.now += Duration::from_secs(1);
        }
        let index = fleet.add_client(&client_addr(i));
        let client = &mut fleet.clients[index];
        give_ca(
            client,
            now,
            &pki,
            &client_leaf,
            &pki,
            &[("gw", SignatureAuth::Any, "b.ike.test")],
            true,
        );
        let ca_now = if i < CLIENTS / 2 { now } else { a_second_later };
        client.eap_ca = Some(real(ca_now, "gw", &[(user, password)], Some(user)));
        let mut policy = rw_client(&client_addr(i), "laptop.example", false);
        policy.auth = iked_common::config::AuthSpec::PublicKey(SignatureAuth::Any);
        policy.dstid = Some(super::pubkey::dn("b.ike.test"));
        policy.remote_access.eap = Some(EapMethod::MsChapV2);
        fleet.start(index, policy);
    }
    fleet.settle();
    println!(
        "{CLIENTS} EAP-MSCHAPv2 road warriors with certificates established in {:?}",
        started.elapsed()
    );
    let mut addresses = HashSet::new();
    for (i, client) in fleet.clients.iter().enumerate() {
        let (spi, vips, _) = client_state(client);
        assert_eq!(vips.len(), 1, "client {i}");
        assert!(
            addresses.insert(vips[0]),
            "client {i}: {} leased twice",
            vips[0]
        );
        let sa = client.engine.ike(spi).unwrap();
        assert_eq!(sa.eap_identity.as_deref(), Some(users[i].0.as_str()));
    }
    let established = fleet.gateway.established();
    assert_eq!(
        established.len(),
        CLIENTS,
        "INITIAL_CONTACT dropped another user"
    );
    let identities: HashSet<String> = established
        .iter()
        .filter_map(|s| fleet.gateway.engine.ike(*s)?.eap_identity.clone())
        .collect();
    assert_eq!(identities.len(), CLIENTS);
    assert_eq!(fleet.gateway.engine.leases.leased("rw"), CLIENTS);
    assert_eq!(fleet.gateway.eap_ends.len(), CLIENTS);
    assert_eq!(fleet.gateway.eap_ca.as_ref().unwrap().sessions(), 0);
}

// A peer that gives up during EAP (RFC 7296 §2.21.2): an INFORMATIONAL
// request with AUTHENTICATION_FAILED (or a Delete of the IKE SA) ends the
// half-open SA at once; anything else before IKE_AUTH completes is dropped.
// ----------------------------------------------------------------------

/// A wrong-password client whose acknowledgement of the gateway's
/// MS-CHAPv2 Failure-Request (IKE_AUTH request 4) is lost, as strongSwan
/// never sends it: the gateway holds its half-open SA mid-EAP. Returns
/// the world with the client's and the gateway's SPIs.
fn stalled_after_failure_request() -> (World, u64, u64) {
    let mut client_settings = settings();
    client_settings.fragmentation.enabled = false;
    client_settings.restart_delay = Duration::from_secs(3600);
    let mut gateway_settings = settings();
    gateway_settings.fragmentation.enabled = false;
    let world = World::with(client_settings, gateway_settings);
    let mut w = mschap_world_in(world, "alice", "looking-glass");
    w.filter = Box::new(|p| {
        !(is_request_from(p, ip(A), ExchangeType::IkeAuth)
            && Header::decode(&p.data).is_ok_and(|h| h.header.message_id == 4))
    });
    w.settle();
    w.filter = Box::new(|_| true);
    let a_spi = w.a.engine.ike_spis()[0];
    let b_spis = w.b.engine.ike_spis();
    assert_eq!(b_spis.len(), 1, "the gateway holds the half-open SA");
    let b_spi = b_spis[0];
    let sa = w.b.engine.ike(b_spi).unwrap();
    assert_eq!(
        sa.eap.as_ref().map(|e| e.phase),
        Some(EapPhase::ServerConversing)
    );
    assert_eq!(sa.expected_message_id, 4, "the Failure-Request was sent");
    assert!(w.b.eap_ends.is_empty());
    assert_eq!(w.b.eap_ca.as_ref().unwrap().sessions(), 1);
    (w, a_spi, b_spi)
}

/// `from`'s INFORMATIONAL request on its SA `spi`, message `message_id`,
/// sealed with its keys (one datagram).
fn sealed_request(from: &mut Node, spi: u64, message_id: u32, inner: &[Payload]) -> Packet {
    let sa = from.engine.ike(spi).unwrap();
    let header = from
        .engine
        .header_for(sa, ExchangeType::Informational, message_id, false);
    let (local, peer) = (sa.local, sa.peer);
    let mut datagrams = from.engine.seal_message(spi, header, inner).unwrap();
    assert_eq!(datagrams.len(), 1);
    Packet {
        from: local,
        to: peer,
        data: datagrams.remove(0),
    }
}

fn authentication_failed() -> Vec<Payload> {
    vec![Payload::Notify(Notify::new(
        NotifyType::AuthenticationFailed,
        Vec::new(),
    ))]
}

fn ike_delete() -> Vec<Payload> {
    vec![Payload::Delete(iked_common::wire::Delete {
        protocol: iked_common::wire::ProtocolId::Ike,
        spis: Vec::new(),
    })]
}

/// The INFORMATIONAL responses `node` sent, opened with the peer's keys.
fn informational_responses(node: &Node) -> Vec<Vec<u8>> {
    node.sent
        .iter()
        .filter(|(_, _, d)| {
            Header::decode(d).is_ok_and(|h| {
                h.header.exchange == ExchangeType::Informational && h.header.flags.response
            })
        })
        .map(|(_, _, d)| d.clone())
        .collect()
}

/// The client gives up with `inner` in an INFORMATIONAL request: the
/// gateway answers it empty, ends the SA and ca's session at once (no
/// timer runs), installs nothing and says why, naming the peer and the
/// EAP user.
fn assert_gateway_ends_on(inner: Vec<Payload>, what: &str) {
    let (mut w, a_spi, b_spi) = stalled_after_failure_request();
    let packet = sealed_request(&mut w.a, a_spi, 4, &inner);
    let log = capture_info_log(|| {
        w.deliver(packet);
        w.b.step(w.now);
    });
    assert!(w.b.engine.ike_spis().is_empty(), "gateway SA left");
    assert_nothing_installed(&w.b, "gateway");
    assert_eq!(w.b.sa_requests, 0);
    assert_eq!(w.b.eap_ends, vec![b_spi], "EapEnd for the session");
    assert_eq!(w.b.eap_ca.as_ref().unwrap().sessions(), 0);
    let responses = informational_responses(&w.b);
    assert_eq!(responses.len(), 1, "one INFORMATIONAL response");
    let answer = open_with(&w.a, a_spi, &responses[0]).expect("sealed with the SA's keys");
    assert!(answer.is_empty(), "empty answer: {answer:?}");
    assert_eq!(
        Header::decode(&responses[0]).unwrap().header.message_id,
        4,
        "the request's message ID"
    );
    assert!(
        log.iter().any(|l| l.contains("gave up during EAP")
            && l.contains(what)
            && l.contains(&format!("{}", ip(A)))
            && l.contains("'alice'")),
        "the reason, the peer and the EAP user logged: {log:#?}"
    );
}

#[test]
fn authentication_failed_in_informational_during_eap_ends_the_gateways_half_open_sa() {
    assert_gateway_ends_on(authentication_failed(), "AUTHENTICATION_FAILED");
}

#[test]
fn a_delete_of_the_ike_sa_during_eap_ends_the_gateways_half_open_sa() {
    assert_gateway_ends_on(ike_delete(), "Delete of the IKE SA");
}

#[test]
fn other_informational_and_a_bad_icv_during_eap_are_dropped() {
    let (mut w, a_spi, b_spi) = stalled_after_failure_request();
    // Other content: an empty one (a liveness check), a status notify, a
    // Delete of a Child SA. Each at the expected message ID, authentic.
    let others = [
        Vec::new(),
        vec![Payload::Notify(Notify::new(
            NotifyType::from_value(40_000),
            Vec::new(),
        ))],
        vec![Payload::Delete(iked_common::wire::Delete {
            protocol: iked_common::wire::ProtocolId::Esp,
            spis: vec![0x1234_5678],
        })],
    ];
    for inner in others {
        let packet = sealed_request(&mut w.a, a_spi, 4, &inner);
        w.deliver(packet);
        w.b.step(w.now);
    }
    // AUTHENTICATION_FAILED whose ICV (the last bytes) is wrong.
    let mut forged = sealed_request(&mut w.a, a_spi, 4, &authentication_failed());
    *forged.data.last_mut().unwrap() ^= 0x01;
    w.deliver(forged);
    w.b.step(w.now);
    assert_eq!(w.b.engine.ike_spis(), vec![b_spi], "the SA stays");
    let sa = w.b.engine.ike(b_spi).unwrap();
    assert_eq!(
        sa.eap.as_ref().map(|e| e.phase),
        Some(EapPhase::ServerConversing)
    );
    assert_eq!(sa.expected_message_id, 4, "no message ID consumed");
    assert!(informational_responses(&w.b).is_empty(), "nothing answered");
    assert!(w.b.eap_ends.is_empty());
    assert_eq!(w.b.eap_ca.as_ref().unwrap().sessions(), 1);
    // The genuine one still ends it.
    let packet = sealed_request(&mut w.a, a_spi, 4, &authentication_failed());
    w.deliver(packet);
    w.b.step(w.now);
    assert!(w.b.engine.ike_spis().is_empty());
    assert_eq!(w.b.eap_ends, vec![b_spi]);
}

#[test]
fn a_gateways_delete_of_the_ike_sa_during_eap_ends_the_clients_sa() {
    let (mut w, a_spi, b_spi) = stalled_after_failure_request();
    // The gateway's requests start at message 0 (RFC 7296 §2.2).
    let packet = sealed_request(&mut w.b, b_spi, 0, &ike_delete());
    w.deliver(packet);
    w.a.step(w.now);
    assert!(w.a.engine.ike_spis().is_empty(), "client SA left");
    assert_nothing_installed(&w.a, "client");
    assert_eq!(w.a.eap_ends, vec![a_spi]);
    assert_eq!(w.a.eap_ca.as_ref().unwrap().sessions(), 0);
    let responses = informational_responses(&w.a);
    assert_eq!(responses.len(), 1);
    let answer = open_with(&w.b, b_spi, &responses[0]).expect("sealed with the SA's keys");
    assert!(answer.is_empty(), "{answer:?}");
}
