//! How the engine scales: many road-warrior peers against one responder,
//! all in memory through the public API (fake ca and pfkey inline).
//!
//! `cargo bench -p iked-ikev2` prints handshakes per second while the
//! responder grows to N IKE SAs, and the cost of one authenticated request
//! (a DPD check) on an engine holding N SAs, which must not grow with N.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use iked_common::config::{
    Policy, ProposalSpec, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_KE, TRANSFORM_PRF,
};
use iked_common::crypto::{psk_auth, verify_psk_auth, PrfAlg};
use iked_common::ipc::{CaToIkev2, Ikev2ToCa, Ikev2ToPfkey, InitiationMode, PfkeyToIkev2};
use iked_common::kernel::Selector;
use iked_ikev2::engine::{Action, Engine, Settings};

#[path = "../src/test_fixtures.rs"]
mod fixtures;
use fixtures::{psk_tunnel_policy, seeded, t};

const PSK: &[u8] = b"benchmark pre-shared key";

fn policy(name: &str, local: IpAddr, peer: Option<IpAddr>, flow: Selector, active: bool) -> Policy {
    Policy {
        ike_proposals: vec![ProposalSpec {
            transforms: vec![
                t(TRANSFORM_ENCR, 20, Some(128)),
                t(TRANSFORM_PRF, 5, None),
                t(TRANSFORM_KE, 31, None),
            ],
        }],
        child_proposals: vec![ProposalSpec {
            transforms: vec![t(TRANSFORM_ENCR, 20, Some(128)), t(TRANSFORM_ESN, 0, None)],
        }],
        ike_lifetime_secs: 86_400,
        child_lifetime_secs: 3600,
        ..psk_tunnel_policy(name, local, peer, vec![flow], active)
    }
}

/// Runs the engine's IPC requests against inline fakes; returns datagrams.
fn drive(
    engine: &mut Engine,
    now: Instant,
    next_spi: &mut u32,
) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(action) = engine.poll_action() {
        match action {
            Action::Send {
                local,
                remote,
                datagram,
            } => out.push((local, remote, datagram)),
            Action::Ca(Ikev2ToCa::SignAuth {
                id,
                prf,
                signed_octets,
                ..
            }) => {
                let prf = PrfAlg::from_iana(prf).expect("prf");
                let auth_data = psk_auth(prf, PSK, &signed_octets).expect("auth");
                engine
                    .handle_ca(
                        now,
                        CaToIkev2::Auth {
                            id,
                            auth_method: 2,
                            auth_data,
                            certs: Vec::new(),
                        },
                    )
                    .expect("ca");
            }
            Action::Ca(Ikev2ToCa::VerifyAuth {
                id,
                prf,
                signed_octets,
                auth_data,
                ..
            }) => {
                let prf = PrfAlg::from_iana(prf).expect("prf");
                let ok = verify_psk_auth(prf, PSK, &signed_octets, &auth_data).expect("verify");
                engine
                    .handle_ca(
                        now,
                        CaToIkev2::Verified {
                            id,
                            ok,
                            reason: String::new(),
                        },
                    )
                    .expect("ca");
            }
            Action::Pfkey(request) => {
                let reply = match request {
                    Ikev2ToPfkey::AllocateSpi { id, .. } => {
                        *next_spi += 1;
                        PfkeyToIkev2::SpiAllocated { id, spi: *next_spi }
                    }
                    Ikev2ToPfkey::AddSa { id, .. }
                    | Ikev2ToPfkey::UpdateSa { id, .. }
                    | Ikev2ToPfkey::DeleteSa { id, .. }
                    | Ikev2ToPfkey::AddPolicy { id, .. }
                    | Ikev2ToPfkey::DeletePolicy { id, .. }
                    | Ikev2ToPfkey::AddAddress { id, .. }
                    | Ikev2ToPfkey::DeleteAddress { id, .. }
                    | Ikev2ToPfkey::Migrate { id, .. } => PfkeyToIkev2::Done { id },
                    Ikev2ToPfkey::Ping { id } => PfkeyToIkev2::Pong { id },
                    Ikev2ToPfkey::GetCounters { id, sas } => PfkeyToIkev2::Counters {
                        id,
                        counters: sas.into_iter().map(|sa| (sa, None)).collect(),
                    },
                    Ikev2ToPfkey::LookupSource { id, peer } => PfkeyToIkev2::Failed {
                        id,
                        failure: iked_common::kernel::KernelFailure {
                            kind: iked_common::kernel::FailureKind::NotFound,
                            errno: 0,
                            message: format!("the benchmark routes nothing to {peer}"),
                        },
                    },
                };
                engine.handle_pfkey(now, reply).expect("pfkey");
            }
            _ => {}
        }
    }
    out
}

fn main() {
    let peers: usize = std::env::var("IKED_BENCH_PEERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let now = Instant::now();
    let gateway = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    // One road-warrior policy for all peers: its Child SA cap (a policy
    // limit, not a scale one) is lifted so that every peer gets its child.
    let responder_settings = Settings {
        max_child_sas_per_policy: usize::MAX,
        ..Settings::default()
    };
    let mut responder = Engine::new(responder_settings, seeded(1), now).expect("engine");
    responder.set_config(
        now,
        vec![policy(
            "road",
            gateway,
            None,
            Selector::between(
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
                16,
                IpAddr::V4(Ipv4Addr::new(100, 0, 0, 0)),
                8,
            ),
            false,
        )],
        InitiationMode::Passive,
        0,
    );
    let mut responder_spi = 0x1000_0000u32;
    let mut replays: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::with_capacity(peers);
    let started = Instant::now();
    let mut last = Instant::now();
    let mut small_cost = None;
    for i in 0..peers {
        let addr = IpAddr::V4(Ipv4Addr::from(0xc612_0000u32 + i as u32 + 1));
        let inner = IpAddr::V4(Ipv4Addr::from(0x6400_0000u32 + (i as u32) * 4));
        let mut engine =
            Engine::new(Settings::default(), seeded(100 + i as u64), now).expect("engine");
        engine.set_config(
            now,
            vec![policy(
                "gw",
                addr,
                Some(gateway),
                Selector::between(inner, 30, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 16),
                true,
            )],
            InitiationMode::Active,
            0,
        );
        let mut spi = 0x2000_0000u32 + (i as u32) * 16;
        // One handshake to completion, in memory.
        let mut pending = drive(&mut engine, now, &mut spi);
        let mut last_request = None;
        for _ in 0..10 {
            if pending.is_empty() {
                break;
            }
            for (local, remote, datagram) in pending.drain(..) {
                responder.handle_datagram(now, remote, local, &datagram);
                last_request = Some((local, remote, datagram));
            }
            for (local, remote, datagram) in drive(&mut responder, now, &mut responder_spi) {
                engine.handle_datagram(now, remote, local, &datagram);
            }
            pending = drive(&mut engine, now, &mut spi);
        }
        replays.extend(last_request);
        if i + 1 == 1000.min(peers) {
            small_cost = Some(replay_cost(&mut responder, now, &replays));
        }
        if (i + 1) % 1000 == 0 {
            let elapsed = last.elapsed();
            println!(
                "{:>7} IKE SAs on the responder: last 1000 handshakes in {:?} ({:.0}/s)",
                responder.ike_sa_count(),
                elapsed,
                1000.0 / elapsed.as_secs_f64()
            );
            last = Instant::now();
        }
    }
    println!(
        "{} handshakes in {:?}; responder holds {} IKE SAs, {} Child SAs",
        peers,
        started.elapsed(),
        responder.ike_sa_count(),
        responder.child_sa_count()
    );
    if let Some(rss) = resident_kib() {
        println!(
            "resident memory {} MiB (including the replay copies), about {} bytes per IKE+Child SA",
            rss / 1024,
            rss * 1024 / peers.max(1) as u64
        );
    }
    // A retransmitted IKE_AUTH is looked up, authenticated and answered
    // from the cache: the per-datagram path, at 1000 SAs and at N.
    let large_cost = replay_cost(&mut responder, now, &replays[..replays.len().min(1000)]);
    if let Some(small) = small_cost {
        println!(
            "per authenticated datagram: {small:?} with 1000 SAs, {large_cost:?} with {peers}"
        );
    }
}

fn replay_cost(
    responder: &mut Engine,
    now: Instant,
    replays: &[(SocketAddr, SocketAddr, Vec<u8>)],
) -> Duration {
    let started = Instant::now();
    let mut answers = 0usize;
    for (local, remote, datagram) in replays {
        responder.handle_datagram(now, *remote, *local, datagram);
        answers += responder.drain_actions().len();
    }
    assert_eq!(
        answers,
        replays.len(),
        "every replay is answered from the cache"
    );
    started.elapsed() / replays.len().max(1) as u32
}

/// VmRSS of this process in KiB (Linux).
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
