//! EAP conversations through `AuthService::handle_message_at`, as ikev2
//! drives them: a gateway's ca against a client's ca, the RFC 2759
//! vectors through the state machines, refusals, sessions, MSK AUTH.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use iked_common::config::{EapMethod, PreSharedKey, UserCredential};
use iked_common::crypto::auth::psk_auth;
use iked_common::crypto::PrfAlg;
use iked_common::ipc::{CaEapPolicy, CaToIkev2, EapRole, EapStep, Ikev2ToCa, WireIdentity};
use proptest::prelude::*;

use super::codec::{self, Code, MsChapV2};
use super::sessions::{IDLE_TIMEOUT, MAX_SESSIONS};
use crate::auth::AuthService;

const GATEWAY_POLICY: &str = "road-warriors";
const CLIENT_POLICY: &str = "to-gateway";
const PRF_SHA256: u16 = 5;

fn user(name: &str, password: &str) -> UserCredential {
    UserCredential {
        name: name.into(),
        password: PreSharedKey::new(password.as_bytes().to_vec()),
    }
}

/// Randomness that hands out `scripted` first (one entry per call), then
/// a counter: conversations are reproducible.
fn scripted_random(
    scripted: Vec<Vec<u8>>,
    seed: u8,
) -> Box<dyn iked_common::crypto::random::RandomSource + Send> {
    let mut queue: VecDeque<Vec<u8>> = scripted.into();
    let mut counter = seed;
    Box::new(move |buf: &mut [u8]| match queue.pop_front() {
        Some(bytes) => buf.copy_from_slice(&bytes),
        None => {
            for b in buf.iter_mut() {
                counter = counter.wrapping_mul(31).wrapping_add(7);
                *b = counter;
            }
        }
    })
}

fn gateway(users: Vec<UserCredential>) -> AuthService {
    let mut s = AuthService::default();
    s.apply_eap(
        vec![CaEapPolicy {
            name: GATEWAY_POLICY.into(),
            method: EapMethod::MsChapV2,
            client_user: None,
        }],
        users,
    );
    s.set_eap_random(scripted_random(Vec::new(), 1));
    s
}

fn client(name: &str, password: &str) -> AuthService {
    let mut s = AuthService::default();
    s.apply_eap(
        vec![CaEapPolicy {
            name: CLIENT_POLICY.into(),
            method: EapMethod::MsChapV2,
            client_user: Some(name.into()),
        }],
        vec![user(name, password)],
    );
    s.set_eap_random(scripted_random(Vec::new(), 2));
    s
}

fn gateway_users() -> Vec<UserCredential> {
    vec![user("alice", "alice-secret"), user("bob", "bob's pass")]
}

fn eap(
    ca: &mut AuthService,
    now: Instant,
    session: u64,
    policy: &str,
    role: EapRole,
    message: Vec<u8>,
) -> EapStep {
    match ca.handle_message_at(
        now,
        Ikev2ToCa::Eap {
            id: 77,
            session,
            policy: policy.into(),
            role,
            message,
        },
    ) {
        Some(CaToIkev2::Eap {
            id: 77,
            session: s,
            step,
        }) if s == session => step,
        other => panic!("not an EAP answer: {other:?}"),
    }
}

fn to_gateway(ca: &mut AuthService, now: Instant, session: u64, message: Vec<u8>) -> EapStep {
    eap(ca, now, session, GATEWAY_POLICY, EapRole::Server, message)
}

fn to_client(ca: &mut AuthService, now: Instant, session: u64, message: Vec<u8>) -> EapStep {
    eap(ca, now, session, CLIENT_POLICY, EapRole::Client, message)
}

/// How a conversation between two ca ended: each side's last step, and
/// the packets the gateway sent, in order.
struct Ending {
    gateway: EapStep,
    client: EapStep,
    from_gateway: Vec<Vec<u8>>,
}

/// Runs EAP between `gw` and `cl` as two ikev2 would carry it: the
/// gateway starts; each Send goes to the other side; a client's Failed
/// (nothing to send) ends the client's side, and the gateway is then
/// given the MS-CHAPv2 Failure-Response a peer would send.
fn converse(gw: &mut AuthService, cl: &mut AuthService, now: Instant, session: u64) -> Ending {
    let mut from_gateway = Vec::new();
    let mut step = to_gateway(gw, now, session, Vec::new());
    for _ in 0..10 {
        let to_peer = match &step {
            EapStep::Send(p) => p.clone(),
            EapStep::Succeeded { message, .. } | EapStep::Failed { message, .. } => message.clone(),
        };
        from_gateway.push(to_peer.clone());
        let gateway_done = !matches!(step, EapStep::Send(_));
        let client_step = to_client(cl, now, session, to_peer.clone());
        match (&client_step, gateway_done) {
            (EapStep::Send(answer), false) => step = to_gateway(gw, now, session, answer.clone()),
            (_, true) | (EapStep::Succeeded { .. }, false) => {
                return Ending {
                    gateway: step,
                    client: client_step,
                    from_gateway,
                }
            }
            (EapStep::Failed { .. }, false) => {
                let identifier = to_peer.get(1).copied().unwrap_or(0);
                let gateway = to_gateway(
                    gw,
                    now,
                    session,
                    codec::encode_result_response(identifier, false),
                );
                return Ending {
                    gateway,
                    client: client_step,
                    from_gateway,
                };
            }
        }
    }
    panic!("the conversation did not end in 10 rounds");
}

/// RFC 7296 §2.15 AUTH input shaped as ca accepts it (see signed_octets).
fn auth_octets(flags: u8) -> Vec<u8> {
    crate::signed_octets::tests::auth_input(flags, 32, 32)
}

fn sign(
    ca: &mut AuthService,
    now: Instant,
    session: u64,
    policy: &str,
    octets: &[u8],
) -> Result<Vec<u8>, String> {
    match ca.handle_message_at(
        now,
        Ikev2ToCa::SignAuth {
            id: 5,
            policy: policy.into(),
            prf: PRF_SHA256,
            signed_octets: octets.to_vec(),
            peer_hash_algorithms: Vec::new(),
            cert_authorities: Vec::new(),
            eap_session: Some(session),
        },
    ) {
        Some(CaToIkev2::Auth {
            id: 5,
            auth_method: 2,
            auth_data,
            certs,
        }) => {
            assert!(certs.is_empty());
            Ok(auth_data)
        }
        Some(CaToIkev2::Failed { id: 5, reason }) => Err(reason),
        other => panic!("{other:?}"),
    }
}

fn verify(
    ca: &mut AuthService,
    now: Instant,
    session: u64,
    policy: &str,
    octets: &[u8],
    auth_data: Vec<u8>,
) -> Result<bool, String> {
    match ca.handle_message_at(
        now,
        Ikev2ToCa::VerifyAuth {
            id: 6,
            policy: policy.into(),
            prf: PRF_SHA256,
            auth_method: 2,
            signed_octets: octets.to_vec(),
            auth_data,
            peer_id: WireIdentity {
                id_type: 3,
                body: b"alice".to_vec(),
            },
            certs: Vec::new(),
            eap_session: Some(session),
        },
    ) {
        Some(CaToIkev2::Verified { id: 6, ok, .. }) => Ok(ok),
        Some(CaToIkev2::Failed { id: 6, reason }) => Err(reason),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_client_and_a_gateway_authenticate_and_both_msk_auths_check() {
    let now = Instant::now();
    let mut gw = gateway(gateway_users());
    let mut cl = client("alice", "alice-secret");
    let session = 0x1122_3344_5566_7788;
    let ending = converse(&mut gw, &mut cl, now, session);
    let EapStep::Succeeded { message, identity } = ending.gateway else {
        panic!("gateway: {:?}", ending.gateway);
    };
    assert_eq!(identity, "alice");
    assert_eq!(codec::parse(&message).unwrap().code, Code::Success);
    assert_eq!(
        ending.client,
        EapStep::Succeeded {
            message: Vec::new(),
            identity: "alice".into()
        }
    );
    // Identity, Challenge, Success-Request, EAP-Success.
    assert_eq!(ending.from_gateway.len(), 4);
    let first = codec::parse(&ending.from_gateway[0]).unwrap();
    assert_eq!(
        (first.code, first.kind),
        (Code::Request, Some(codec::TYPE_IDENTITY))
    );

    // The initiator's AUTH (RFC 7296 §2.16): the client signs, the
    // gateway checks; then the other way.
    let initiator_octets = auth_octets(0x08);
    let responder_octets = auth_octets(0x20);
    let client_auth = sign(&mut cl, now, session, CLIENT_POLICY, &initiator_octets).unwrap();
    assert_eq!(client_auth.len(), 32);
    assert_eq!(
        verify(
            &mut gw,
            now,
            session,
            GATEWAY_POLICY,
            &initiator_octets,
            client_auth.clone()
        ),
        Ok(true)
    );
    let gateway_auth = sign(&mut gw, now, session, GATEWAY_POLICY, &responder_octets).unwrap();
    assert_ne!(gateway_auth, client_auth);
    assert_eq!(
        verify(
            &mut cl,
            now,
            session,
            CLIENT_POLICY,
            &responder_octets,
            gateway_auth.clone()
        ),
        Ok(true)
    );
    // Both AUTHs done: the MSK is forgotten at once.
    assert_eq!((gw.eap().session_count(), cl.eap().session_count()), (0, 0));
    let again = sign(&mut gw, now, session, GATEWAY_POLICY, &responder_octets).unwrap_err();
    assert!(again.contains("no EAP session"), "{again}");
    // The MSK is not the policy's PSK or any key of a fresh conversation:
    // an AUTH made with a zero key does not match.
    let zero = psk_auth(PrfAlg::HmacSha256, &[0u8; 64], &initiator_octets).unwrap();
    assert_ne!(zero, client_auth);

    // EapEnd: no answer; the MSK is gone.
    assert_eq!(
        gw.handle_message_at(now, Ikev2ToCa::EapEnd { session }),
        None
    );
    assert_eq!(gw.eap().session_count(), 0);
    let gone = sign(&mut cl, now, session + 1, CLIENT_POLICY, &initiator_octets).unwrap_err();
    assert!(gone.contains("no EAP session"), "{gone}");
}

#[test]
fn a_wrong_msk_auth_is_refused() {
    let now = Instant::now();
    let mut gw = gateway(gateway_users());
    let mut cl = client("bob", "bob's pass");
    let ending = converse(&mut gw, &mut cl, now, 9);
    assert!(matches!(ending.gateway, EapStep::Succeeded { .. }));
    let octets = auth_octets(0x08);
    let mut auth = sign(&mut cl, now, 9, CLIENT_POLICY, &octets).unwrap();
    // Each AUTH once.
    let again = sign(&mut cl, now, 9, CLIENT_POLICY, &octets).unwrap_err();
    assert!(again.contains("already used to sign"), "{again}");
    auth[3] ^= 0x40;
    assert_eq!(
        verify(&mut gw, now, 9, GATEWAY_POLICY, &octets, auth.clone()),
        Ok(false)
    );
    // One try: the right AUTH after a wrong one is refused too.
    auth[3] ^= 0x40;
    let again = verify(&mut gw, now, 9, GATEWAY_POLICY, &octets, auth).unwrap_err();
    assert!(again.contains("already used to check"), "{again}");
}

#[test]
fn a_wrong_password_fails_on_both_sides_with_the_reason() {
    let now = Instant::now();
    let mut gw = gateway(gateway_users());
    let mut cl = client("alice", "not-alices-password");
    let ending = converse(&mut gw, &mut cl, now, 3);
    let EapStep::Failed { message, reason } = ending.gateway else {
        panic!("gateway: {:?}", ending.gateway);
    };
    assert_eq!(reason, "EAP user \"alice\": wrong password");
    assert_eq!(codec::parse(&message).unwrap().code, Code::Failure);
    let EapStep::Failed { message, reason } = ending.client else {
        panic!("client: {:?}", ending.client);
    };
    assert!(message.is_empty());
    assert!(
        reason.contains("refused our password") && reason.contains("E=691 R=0"),
        "{reason}"
    );
    // The gateway's Failure-Request: E=691, no retry, a 32-hex C=, V=3.
    let failure = codec::parse(&ending.from_gateway[2]).unwrap();
    let MsChapV2::FailureRequest { message, .. } =
        codec::parse_mschapv2(true, failure.data).unwrap()
    else {
        panic!("not a Failure-Request");
    };
    let text = String::from_utf8(message.to_vec()).unwrap();
    assert!(
        text.starts_with("E=691 R=0 C=") && text.contains(" V=3"),
        "{text}"
    );
    assert_eq!(text.split(' ').nth(2).unwrap().len(), 2 + 32);
    // No MSK on either side.
    let octets = auth_octets(0x08);
    assert!(sign(&mut cl, now, 3, CLIENT_POLICY, &octets)
        .unwrap_err()
        .contains("no EAP session"));
    assert!(
        verify(&mut gw, now, 3, GATEWAY_POLICY, &octets, vec![0; 32])
            .unwrap_err()
            .contains("no EAP session")
    );
    assert_eq!((gw.eap().session_count(), cl.eap().session_count()), (0, 0));
}

#[test]
fn an_unknown_user_fails_with_the_reason() {
    let now = Instant::now();
    let mut gw = gateway(gateway_users());
    let mut cl = client("mallory", "alice-secret");
    let ending = converse(&mut gw, &mut cl, now, 4);
    assert!(
        matches!(&ending.gateway, EapStep::Failed { reason, .. } if reason == "EAP user \"mallory\": unknown user"),
        "{:?}",
        ending.gateway
    );
    assert!(matches!(ending.client, EapStep::Failed { .. }));
}

#[test]
fn the_client_refuses_an_early_eap_success() {
    let now = Instant::now();
    let success = codec::encode_result(true, 1);
    // Straight away.
    let mut cl = client("alice", "alice-secret");
    let step = to_client(&mut cl, now, 1, success.clone());
    assert!(
        matches!(&step, EapStep::Failed { reason, message } if message.is_empty()
            && reason.contains("EAP-Success before the method completed")),
        "{step:?}"
    );
    // After EAP-Identity.
    let identity = codec::encode(Code::Request, 1, codec::TYPE_IDENTITY, &[]);
    let EapStep::Send(answer) = to_client(&mut cl, now, 2, identity) else {
        panic!("no identity");
    };
    assert_eq!(
        answer,
        codec::encode(Code::Response, 1, codec::TYPE_IDENTITY, b"alice")
    );
    assert!(matches!(
        to_client(&mut cl, now, 2, success.clone()),
        EapStep::Failed { .. }
    ));
    // After our MS-CHAPv2 Response, before the gateway proved itself.
    let challenge = codec::encode_challenge(2, &[7; 16], b"gw");
    assert!(matches!(
        to_client(&mut cl, now, 3, challenge.clone()),
        EapStep::Send(_)
    ));
    assert!(matches!(
        to_client(&mut cl, now, 3, success.clone()),
        EapStep::Failed { .. }
    ));
    // A Success-Request with a wrong S= (a gateway that does not know the
    // password), then EAP-Success: both refused, no MSK.
    assert!(matches!(
        to_client(&mut cl, now, 4, challenge),
        EapStep::Send(_)
    ));
    let forged = codec::encode_result_request(
        3,
        2,
        true,
        b"S=0000000000000000000000000000000000000000 M=hi",
    );
    let step = to_client(&mut cl, now, 4, forged);
    assert!(
        matches!(&step, EapStep::Failed { reason, .. } if reason.contains("authenticator response is wrong")),
        "{step:?}"
    );
    assert!(matches!(
        to_client(&mut cl, now, 4, success),
        EapStep::Failed { .. }
    ));
    let octets = auth_octets(0x08);
    assert!(sign(&mut cl, now, 4, CLIENT_POLICY, &octets).is_err());
    assert_eq!(cl.eap().session_count(), 0);
}

/// RFC 2759 §9.2 through both state machines: user "User", password
/// "clientPass", the RFC's challenges. The client's NT-Response and the
/// gateway's S= must be the RFC's; strongSwan's NUL-terminated Success
/// text is accepted.
#[test]
fn rfc_2759_vectors_through_the_conversations() {
    let auth_challenge = hex::decode("5B5D7C7D7B3F2F3E3C2C602132262628").unwrap();
    let peer_challenge = hex::decode("21402324255E262A28295F2B3A337C7E").unwrap();
    let nt_response = hex::decode("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF").unwrap();
    let now = Instant::now();

    let mut cl = client("User", "clientPass");
    cl.set_eap_random(scripted_random(vec![peer_challenge.clone()], 0));
    let challenge = codec::encode_challenge(
        9,
        &auth_challenge.clone().try_into().unwrap(),
        b"strongSwan",
    );
    let EapStep::Send(response) = to_client(&mut cl, now, 1, challenge) else {
        panic!("no response");
    };
    let packet = codec::parse(&response).unwrap();
    assert_eq!((packet.code, packet.identifier), (Code::Response, 9));
    let MsChapV2::Response {
        id,
        peer_challenge: pc,
        nt_response: nt,
        name,
    } = codec::parse_mschapv2(false, packet.data).unwrap()
    else {
        panic!("not a Response");
    };
    assert_eq!(
        (id, &pc[..], &nt[..], name),
        (9, &peer_challenge[..], &nt_response[..], &b"User"[..])
    );
    let mut success = b"S=407A5589115FD0D6209F510FE9C04566932CDA56 M=Welcome2strongSwan".to_vec();
    success.push(0);
    let request = codec::encode_result_request(10, 9, true, &success);
    let EapStep::Send(ack) = to_client(&mut cl, now, 1, request) else {
        panic!("S= refused");
    };
    assert_eq!(ack, codec::encode_result_response(10, true));
    assert!(matches!(
        to_client(&mut cl, now, 1, codec::encode_result(true, 10)),
        EapStep::Succeeded { .. }
    ));

    // The gateway: Identifier 0x40, then the RFC's challenge.
    let mut gw = gateway(vec![user("User", "clientPass")]);
    gw.set_eap_random(scripted_random(vec![vec![0x40], auth_challenge], 0));
    let EapStep::Send(identity_request) = to_gateway(&mut gw, now, 2, Vec::new()) else {
        panic!();
    };
    assert_eq!(
        identity_request,
        codec::encode(Code::Request, 0x40, codec::TYPE_IDENTITY, &[])
    );
    let identity = codec::encode(Code::Response, 0x40, codec::TYPE_IDENTITY, b"User");
    let EapStep::Send(_challenge) = to_gateway(&mut gw, now, 2, identity) else {
        panic!();
    };
    let response = codec::encode_response(
        0x41,
        0x41,
        &peer_challenge.try_into().unwrap(),
        &nt_response.try_into().unwrap(),
        b"User",
    );
    let EapStep::Send(success) = to_gateway(&mut gw, now, 2, response) else {
        panic!("NT-Response refused");
    };
    let packet = codec::parse(&success).unwrap();
    let MsChapV2::SuccessRequest { message, .. } =
        codec::parse_mschapv2(true, packet.data).unwrap()
    else {
        panic!();
    };
    assert!(message.starts_with(b"S=407A5589115FD0D6209F510FE9C04566932CDA56 M="));
}

#[test]
fn malformed_or_unexpected_packets_end_the_conversation() {
    let now = Instant::now();
    let mut gw = gateway(gateway_users());
    let start = |gw: &mut AuthService, session| match to_gateway(gw, now, session, Vec::new()) {
        EapStep::Send(p) => p[1],
        other => panic!("{other:?}"),
    };
    let failure_reason = |step: EapStep| match step {
        EapStep::Failed { message, reason } => {
            assert_eq!(codec::parse(&message).unwrap().code, Code::Failure);
            reason
        }
        other => panic!("{other:?}"),
    };
    let id = start(&mut gw, 1);
    assert!(
        failure_reason(to_gateway(&mut gw, now, 1, vec![2, id, 0, 99])).contains("does not fit")
    );
    let id = start(&mut gw, 2);
    let wrong_identifier = codec::encode(
        Code::Response,
        id.wrapping_add(5),
        codec::TYPE_IDENTITY,
        b"alice",
    );
    assert!(failure_reason(to_gateway(&mut gw, now, 2, wrong_identifier)).contains("Identifier"));
    let id = start(&mut gw, 3);
    let identity = codec::encode(Code::Response, id, codec::TYPE_IDENTITY, b"alice");
    let EapStep::Send(challenge) = to_gateway(&mut gw, now, 3, identity) else {
        panic!();
    };
    let nak = codec::encode(Code::Response, challenge[1], codec::TYPE_NAK, &[4]);
    assert!(failure_reason(to_gateway(&mut gw, now, 3, nak)).contains("Nak"));
    let id = start(&mut gw, 4);
    let empty_identity = codec::encode(Code::Response, id, codec::TYPE_IDENTITY, b"");
    assert!(failure_reason(to_gateway(&mut gw, now, 4, empty_identity))
        .contains("EAP-Identity of 0 octets"));
    // A conversation the gateway never started, or started twice.
    let step = to_gateway(&mut gw, now, 5, codec::encode(Code::Response, 1, 1, b"x"));
    assert!(
        matches!(&step, EapStep::Failed { reason, .. } if reason.contains("no EAP conversation")),
        "{step:?}"
    );
    start(&mut gw, 6);
    let step = to_gateway(&mut gw, now, 6, Vec::new());
    assert!(
        matches!(&step, EapStep::Failed { reason, .. } if reason.contains("started twice")),
        "{step:?}"
    );
    // A policy without eap; a client policy without a user.
    let step = eap(&mut gw, now, 7, "site-to-site", EapRole::Server, Vec::new());
    assert!(
        matches!(&step, EapStep::Failed { reason, .. } if reason.contains("has no eap")),
        "{step:?}"
    );
    let step = eap(
        &mut gw,
        now,
        8,
        GATEWAY_POLICY,
        EapRole::Client,
        codec::encode(Code::Request, 1, 1, b""),
    );
    assert!(
        matches!(&step, EapStep::Failed { reason, .. } if reason.contains("names no user")),
        "{step:?}"
    );

    // The client: garbage, a Response, an unknown type (Nak for 26).
    let mut cl = client("alice", "alice-secret");
    assert!(matches!(
        to_client(&mut cl, now, 1, vec![1, 2, 3]),
        EapStep::Failed { .. }
    ));
    assert!(matches!(
        to_client(&mut cl, now, 2, codec::encode(Code::Response, 1, 1, b"")),
        EapStep::Failed { .. }
    ));
    let md5 = codec::encode(Code::Request, 4, 4, &[16; 17]);
    assert_eq!(
        to_client(&mut cl, now, 3, md5),
        EapStep::Send(codec::encode(Code::Response, 4, codec::TYPE_NAK, &[26]))
    );
    assert!(matches!(
        to_client(&mut cl, now, 3, codec::encode_result(false, 5)),
        EapStep::Failed { reason, .. } if reason.contains("EAP-Failure")
    ));
}

#[test]
fn sessions_are_capped_and_expire() {
    let t0 = Instant::now();
    let mut gw = gateway(gateway_users());
    for session in 0..=MAX_SESSIONS as u64 {
        assert!(matches!(
            to_gateway(
                &mut gw,
                t0 + Duration::from_millis(session),
                session,
                Vec::new()
            ),
            EapStep::Send(_)
        ));
    }
    assert_eq!(gw.eap().session_count(), MAX_SESSIONS);
    // The first went to make room; the second is still there.
    let identity = |id| codec::encode(Code::Response, id, codec::TYPE_IDENTITY, b"alice");
    let later = t0 + Duration::from_secs(5);
    assert!(matches!(
        to_gateway(&mut gw, later, 0, identity(0)),
        EapStep::Failed { reason, .. } if reason.contains("no EAP conversation")
    ));
    // Idle past the timeout: all forgotten at the next call.
    let step = to_gateway(
        &mut gw,
        t0 + IDLE_TIMEOUT + Duration::from_secs(10),
        1,
        identity(0),
    );
    assert!(matches!(step, EapStep::Failed { .. }));
    assert_eq!(gw.eap().session_count(), 0);

    // A flood of new conversations never pushes out one that succeeded.
    let mut gw = gateway(gateway_users());
    let mut cl = client("alice", "alice-secret");
    let session = u64::MAX;
    assert!(matches!(
        converse(&mut gw, &mut cl, t0, session).gateway,
        EapStep::Succeeded { .. }
    ));
    for flood in 0..=MAX_SESSIONS as u64 {
        assert!(matches!(
            to_gateway(
                &mut gw,
                t0 + Duration::from_millis(flood),
                flood,
                Vec::new()
            ),
            EapStep::Send(_)
        ));
    }
    assert_eq!(gw.eap().session_count(), MAX_SESSIONS + 1);
    assert!(sign(
        &mut gw,
        t0 + Duration::from_secs(5),
        session,
        GATEWAY_POLICY,
        &auth_octets(0x20)
    )
    .is_ok());

    // A succeeded session's MSK goes with the timeout too.
    let mut gw = gateway(gateway_users());
    let mut cl = client("alice", "alice-secret");
    assert!(matches!(
        converse(&mut gw, &mut cl, t0, 1).gateway,
        EapStep::Succeeded { .. }
    ));
    let octets = auth_octets(0x20);
    let late = t0 + IDLE_TIMEOUT;
    assert!(sign(&mut gw, late, 1, GATEWAY_POLICY, &octets)
        .unwrap_err()
        .contains("no EAP session"));
}

#[test]
fn the_msk_serves_only_after_success_and_only_its_policy() {
    let now = Instant::now();
    let mut gw = gateway(gateway_users());
    assert!(matches!(
        to_gateway(&mut gw, now, 1, Vec::new()),
        EapStep::Send(_)
    ));
    let octets = auth_octets(0x20);
    let e = sign(&mut gw, now, 1, GATEWAY_POLICY, &octets).unwrap_err();
    assert!(e.contains("has not succeeded"), "{e}");
    let e = verify(&mut gw, now, 1, GATEWAY_POLICY, &octets, vec![0; 32]).unwrap_err();
    assert!(e.contains("has not succeeded"), "{e}");

    let mut cl = client("alice", "alice-secret");
    assert!(matches!(
        converse(&mut gw, &mut cl, now, 2).gateway,
        EapStep::Succeeded { .. }
    ));
    let e = sign(&mut gw, now, 2, "other-policy", &octets).unwrap_err();
    assert!(e.contains("belongs to policy"), "{e}");
    // Octets that are not AUTH input are not MACed with the MSK either.
    let e = sign(&mut gw, now, 2, GATEWAY_POLICY, b"chosen octets").unwrap_err();
    assert!(e.starts_with("refusing to sign"), "{e}");
    assert!(sign(&mut gw, now, 2, GATEWAY_POLICY, &octets).is_ok());
}

#[test]
fn a_new_configuration_drops_conversations_of_changed_users() {
    let now = Instant::now();
    let policies = || {
        vec![CaEapPolicy {
            name: GATEWAY_POLICY.into(),
            method: EapMethod::MsChapV2,
            client_user: None,
        }]
    };
    let mut gw = gateway(gateway_users());
    let mut alice = client("alice", "alice-secret");
    let mut bob = client("bob", "bob's pass");
    assert!(matches!(
        converse(&mut gw, &mut alice, now, 1).gateway,
        EapStep::Succeeded { .. }
    ));
    assert!(matches!(
        converse(&mut gw, &mut bob, now, 2).gateway,
        EapStep::Succeeded { .. }
    ));
    // The same users again: both kept.
    gw.apply_eap(policies(), gateway_users());
    assert_eq!(gw.eap().session_count(), 2);
    // Alice's password changes: her MSK goes, Bob's stays.
    gw.apply_eap(
        policies(),
        vec![user("alice", "new"), user("bob", "bob's pass")],
    );
    assert_eq!(gw.eap().session_count(), 1);
    let octets = auth_octets(0x20);
    assert!(sign(&mut gw, now, 1, GATEWAY_POLICY, &octets).is_err());
    assert!(sign(&mut gw, now, 2, GATEWAY_POLICY, &octets).is_ok());
    // The policy loses eap: everything of it goes.
    gw.apply_eap(Vec::new(), gateway_users());
    assert_eq!(gw.eap().session_count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes at any point of either side's conversation never
    /// panic, and a failed step leaves no MSK behind.
    #[test]
    fn random_eap_bytes_never_panic(
        rounds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..6),
        // Not past the Challenge: an honest prefix up to the gateway's
        // Success-Request would make a real Success-Response possible.
        prefix_rounds in 0usize..2,
        as_gateway in any::<bool>(),
    ) {
        let now = Instant::now();
        let mut gw = gateway(gateway_users());
        let mut cl = client("alice", "alice-secret");
        let session = 42;
        // Reach a state a few steps in, honestly, then go random.
        let mut step = to_gateway(&mut gw, now, session, Vec::new());
        for _ in 0..prefix_rounds {
            let EapStep::Send(p) = step.clone() else { break };
            match to_client(&mut cl, now, session, p) {
                EapStep::Send(answer) => step = to_gateway(&mut gw, now, session, answer),
                _ => break,
            }
        }
        for mut bytes in rounds {
            // Often keep a valid header so the deeper decoders are reached.
            if bytes.len() >= 4 && bytes[0] % 2 == 0 {
                bytes[0] = if as_gateway { 2 } else { 1 };
                let len = bytes.len() as u16;
                bytes[2..4].copy_from_slice(&len.to_be_bytes());
                if bytes.len() > 4 && bytes[1] % 2 == 0 {
                    bytes[4] = 26;
                }
            }
            let step = if as_gateway {
                to_gateway(&mut gw, now, session, bytes)
            } else {
                to_client(&mut cl, now, session, bytes)
            };
            if let EapStep::Succeeded { .. } = step {
                prop_assert!(false, "random bytes authenticated: {:?}", step);
            }
        }
        let octets = auth_octets(0x20);
        let ca = if as_gateway { &mut gw } else { &mut cl };
        let policy = if as_gateway { GATEWAY_POLICY } else { CLIENT_POLICY };
        prop_assert!(sign(ca, now, session, policy, &octets).is_err());
    }

    /// Any user name and passwords: the conversation succeeds on both
    /// sides exactly when the passwords are the same, and then both MSK
    /// AUTHs check.
    #[test]
    fn success_exactly_when_the_passwords_match(
        name in "[A-Za-z0-9._@\\\\-]{1,40}",
        ours in "\\PC{0,30}",
        theirs in "\\PC{0,30}",
        same in any::<bool>(),
        session in any::<u64>(),
    ) {
        let theirs = if same { ours.clone() } else { theirs };
        let now = Instant::now();
        let mut gw = gateway(vec![user(&name, &ours)]);
        let mut cl = client(&name, &theirs);
        let ending = converse(&mut gw, &mut cl, now, session);
        if ours == theirs {
            let gateway_ok = matches!(&ending.gateway, EapStep::Succeeded { identity, .. } if *identity == name);
            let client_ok = matches!(ending.client, EapStep::Succeeded { .. });
            prop_assert!(gateway_ok && client_ok, "{:?} / {:?}", ending.gateway, ending.client);
            let octets = auth_octets(0x08);
            let auth = sign(&mut cl, now, session, CLIENT_POLICY, &octets).unwrap();
            prop_assert_eq!(verify(&mut gw, now, session, GATEWAY_POLICY, &octets, auth), Ok(true));
        } else {
            let gateway_refused = matches!(&ending.gateway, EapStep::Failed { reason, .. } if reason.ends_with("wrong password"));
            let client_refused = matches!(ending.client, EapStep::Failed { .. });
            prop_assert!(gateway_refused && client_refused, "{:?} / {:?}", ending.gateway, ending.client);
        }
    }

    #[test]
    fn random_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..1100)) {
        let _ = codec::parse(&bytes);
        let _ = codec::parse_mschapv2(true, &bytes);
        let _ = codec::parse_mschapv2(false, &bytes);
    }
}
