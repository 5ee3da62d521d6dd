//! The simulated ca and pfkey of the fuzzer: answers to the engines'
//! requests, right, failed, twice, late, out of order or never, and
//! replies nobody asked for.

use super::*;
use iked_common::ipc::EapStep;

pub(super) fn ca_id(request: &Ikev2ToCa) -> u64 {
    match request {
        Ikev2ToCa::Ping { id }
        | Ikev2ToCa::SignAuth { id, .. }
        | Ikev2ToCa::VerifyAuth { id, .. }
        | Ikev2ToCa::Eap { id, .. } => *id,
        // Takes no answer: never pending (see `Action::Ca`).
        Ikev2ToCa::EapEnd { .. } => 0,
    }
}

pub(super) fn pfkey_id(request: &Ikev2ToPfkey) -> u64 {
    match request {
        Ikev2ToPfkey::Ping { id }
        | Ikev2ToPfkey::AllocateSpi { id, .. }
        | Ikev2ToPfkey::AddSa { id, .. }
        | Ikev2ToPfkey::UpdateSa { id, .. }
        | Ikev2ToPfkey::DeleteSa { id, .. }
        | Ikev2ToPfkey::AddPolicy { id, .. }
        | Ikev2ToPfkey::DeletePolicy { id, .. }
        | Ikev2ToPfkey::GetCounters { id, .. }
        | Ikev2ToPfkey::LookupSource { id, .. }
        | Ikev2ToPfkey::AddAddress { id, .. }
        | Ikev2ToPfkey::DeleteAddress { id, .. }
        | Ikev2ToPfkey::Migrate { id, .. } => *id,
    }
}

pub(super) fn failure(c: &mut Choices) -> KernelFailure {
    KernelFailure {
        kind: [
            FailureKind::NotFound,
            FailureKind::NotPermitted,
            FailureKind::Invalid,
            FailureKind::Unsupported,
            FailureKind::AlreadyExists,
            FailureKind::Kernel,
        ][c.below(6)],
        errno: c.below(200) as i32,
        message: "refused by the fuzzer".into(),
    }
}

/// The ca of public-key runs: both nodes sign with one Ed25519 key
/// (deterministic signatures, so a seed replays byte for byte) through
/// ca-proc's signature code and send a stand-in certificate; the engine
/// carries certificates without reading them.
pub(super) struct PubkeyCa {
    policy: String,
    key: openssl::pkey::PKey<openssl::pkey::Private>,
    /// Our identity (a DN) and our "certificate".
    subject: Vec<u8>,
}

impl PubkeyCa {
    pub(super) fn new(policy: &str, index: usize) -> PubkeyCa {
        let key = openssl::pkey::PKey::private_key_from_raw_bytes(
            &[0x5a; 32],
            openssl::pkey::Id::ED25519,
        )
        .expect("an Ed25519 key from 32 bytes");
        let subject =
            iked_common::config::dn::to_der(&format!("O=iked fuzz, CN=node{index}")).expect("a DN");
        PubkeyCa {
            policy: policy.to_string(),
            key,
            subject,
        }
    }

    pub(super) fn store(&self) -> CaToIkev2 {
        CaToIkev2::Store {
            generation: 1,
            cert_authorities: vec![vec![0xca; 20]],
            local_ids: vec![(
                self.policy.clone(),
                iked_common::ipc::WireIdentity {
                    id_type: 9,
                    body: self.subject.clone(),
                },
            )],
        }
    }

    /// The answer to a request of our policy (None: the PSK service's).
    pub(super) fn answer(&self, request: &Ikev2ToCa) -> Option<CaToIkev2> {
        use iked_ca::signature;
        use iked_common::config::SignatureAuth;
        Some(match request {
            Ikev2ToCa::SignAuth {
                id,
                policy,
                signed_octets,
                peer_hash_algorithms,
                eap_session: None,
                ..
            } if *policy == self.policy => {
                match signature::sign(
                    &self.key,
                    SignatureAuth::Any,
                    peer_hash_algorithms,
                    signed_octets,
                ) {
                    Ok(signed) => CaToIkev2::Auth {
                        id: *id,
                        auth_method: signed.auth_method,
                        auth_data: signed.auth_data,
                        certs: vec![self.subject.clone()],
                    },
                    Err(e) => CaToIkev2::Failed {
                        id: *id,
                        reason: e.to_string(),
                    },
                }
            }
            Ikev2ToCa::VerifyAuth {
                id,
                policy,
                auth_method,
                signed_octets,
                auth_data,
                certs,
                eap_session: None,
                ..
            } if *policy == self.policy => {
                let public = openssl::pkey::PKey::public_key_from_raw_bytes(
                    &self.key.raw_public_key().expect("raw key"),
                    openssl::pkey::Id::ED25519,
                )
                .expect("Ed25519 public key");
                let verdict = if certs.is_empty() {
                    Err("no certificate".to_string())
                } else {
                    signature::verify(
                        &public,
                        SignatureAuth::Any,
                        *auth_method,
                        auth_data,
                        signed_octets,
                    )
                    .map_err(|e| e.to_string())
                };
                CaToIkev2::Verified {
                    id: *id,
                    ok: verdict.is_ok(),
                    reason: verdict.err().unwrap_or_default(),
                }
            }
            _ => return None,
        })
    }
}

impl World<'_> {
    /// A Store ca never sent like this: identities of any type and body,
    /// CA hashes of any length, for policies that may not exist.
    fn bogus_store(&mut self) -> CaToIkev2 {
        let bytes = |c: &mut Choices| {
            let mut b = vec![0u8; c.below(40)];
            c.fill(&mut b);
            b
        };
        let cert_authorities = (0..self.c.below(4)).map(|_| bytes(self.c)).collect();
        let local_ids = (0..self.c.below(3))
            .map(|_| {
                (
                    ["ab", "ba", "other"][self.c.below(3)].to_string(),
                    iked_common::ipc::WireIdentity {
                        id_type: [1, 2, 3, 5, 9, 11, 0, 200][self.c.below(8)],
                        body: bytes(self.c),
                    },
                )
            })
            .collect();
        CaToIkev2::Store {
            generation: self.c.u64(),
            cert_authorities,
            local_ids,
        }
    }

    /// Answers one pending ca or pfkey request: mostly right, sometimes
    /// failed, twice, or never; out of order one time in four.
    pub(super) fn answer_ipc(&mut self) -> Result<(), Failure> {
        let candidates: Vec<(usize, bool)> = (0..2)
            .flat_map(|i| {
                let n = &self.nodes[i];
                [
                    (!n.ca_pending.is_empty()).then_some((i, true)),
                    (!n.pfkey_pending.is_empty()).then_some((i, false)),
                ]
            })
            .flatten()
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let (index, ca) = candidates[self.c.below(candidates.len())];
        let len = if ca {
            self.nodes[index].ca_pending.len()
        } else {
            self.nodes[index].pfkey_pending.len()
        };
        let at = if self.c.chance(4) {
            self.c.below(len)
        } else {
            0
        };
        // 0 never answered, 1 twice, 2 and 3 failed, 4 wrong content,
        // others right: calm runs fail one answer in 100.
        let mode = self.c.below([100, 30, 12][self.chaos]);
        if mode == 0 {
            // Never answered.
            if ca {
                self.nodes[index].ca_pending.remove(at);
            } else {
                self.nodes[index].pfkey_pending.remove(at);
            }
            return Ok(());
        }
        let twice = mode == 1;
        let fail = mode == 2 || mode == 3;
        if ca {
            let request = self.nodes[index].ca_pending.remove(at);
            let id = ca_id(&request);
            let reply = if fail {
                CaToIkev2::Failed {
                    id,
                    reason: "refused by the fuzzer".into(),
                }
            } else if mode == 4 {
                // A right id with a wrong verdict or garbage AUTH data.
                match request {
                    Ikev2ToCa::VerifyAuth { .. } => CaToIkev2::Verified {
                        id,
                        ok: false,
                        reason: "fuzzed".into(),
                    },
                    // A lying EAP step: an EAP packet of any shape, or a
                    // success ca never reached.
                    Ikev2ToCa::Eap { session, .. } => {
                        let mut packet = vec![0u8; mutate::edge_length(self.c).min(300)];
                        self.c.fill(&mut packet);
                        CaToIkev2::Eap {
                            id,
                            session: if self.c.chance(8) {
                                session ^ 1
                            } else {
                                session
                            },
                            step: match self.c.below(3) {
                                0 => EapStep::Send(packet),
                                1 => EapStep::Succeeded {
                                    message: packet,
                                    identity: "fuzzed".into(),
                                },
                                _ => EapStep::Failed {
                                    message: packet,
                                    reason: "fuzzed".into(),
                                },
                            },
                        }
                    }
                    _ => {
                        let mut auth_data = vec![0u8; mutate::edge_length(self.c).min(300)];
                        self.c.fill(&mut auth_data);
                        // Sometimes with certificates: garbage, or more
                        // than the peer takes.
                        let certs = (0..[0, 0, 1, 3, 20][self.c.below(5)])
                            .map(|_| {
                                let mut cert = vec![0u8; 1 + self.c.below(64)];
                                self.c.fill(&mut cert);
                                cert
                            })
                            .collect();
                        CaToIkev2::Auth {
                            id,
                            auth_method: [2, 1, 14, 0][self.c.below(4)],
                            auth_data,
                            certs,
                        }
                    }
                }
            } else {
                let node = &mut self.nodes[index];
                match node.pubkey_ca.as_ref().and_then(|ca| ca.answer(&request)) {
                    Some(reply) => reply,
                    None => node.ca.handle_at(self.now, request),
                }
            };
            self.send_ca(index, reply.clone(), true)?;
            if twice {
                self.send_ca(index, reply, false)?;
            }
        } else {
            let request = self.nodes[index].pfkey_pending.remove(at);
            let reply = self.kernel(index, request, fail);
            if let Some(reply) = reply {
                self.send_pfkey(index, reply.clone(), true)?;
                if twice {
                    self.send_pfkey(index, reply, false)?;
                }
            }
        }
        Ok(())
    }

    /// The fake kernel behind pfkey: SPIs from a counter, installs
    /// recorded, counters made up.
    pub(super) fn kernel(
        &mut self,
        index: usize,
        request: Ikev2ToPfkey,
        fail: bool,
    ) -> Option<PfkeyToIkev2> {
        let id = pfkey_id(&request);
        if fail
            && !matches!(
                request,
                Ikev2ToPfkey::Ping { .. } | Ikev2ToPfkey::GetCounters { .. }
            )
        {
            return Some(PfkeyToIkev2::Failed {
                id,
                failure: failure(self.c),
            });
        }
        let weird = self.c.chance(30);
        if matches!(request, Ikev2ToPfkey::AddAddress { .. }) {
            self.stats.wire(7);
        }
        let node = &mut self.nodes[index];
        Some(match request {
            Ikev2ToPfkey::Ping { id } => PfkeyToIkev2::Pong { id },
            Ikev2ToPfkey::AllocateSpi { id, min, .. } => {
                node.next_spi = node.next_spi.wrapping_add(1);
                let spi = if weird {
                    // Zero, below the asked range, or one already given.
                    [0, min.saturating_sub(1), node.next_spi.wrapping_sub(1)][self.c.below(3)]
                } else {
                    node.next_spi.max(min)
                };
                PfkeyToIkev2::SpiAllocated { id, spi }
            }
            Ikev2ToPfkey::AddSa { id, sa } | Ikev2ToPfkey::UpdateSa { id, sa } => {
                if sa.id.dst == node.addr && node.installed.len() < 64 {
                    node.installed.push(sa.id);
                }
                PfkeyToIkev2::Done { id }
            }
            Ikev2ToPfkey::DeleteSa { id, sa } => {
                node.installed.retain(|s| *s != sa);
                PfkeyToIkev2::Done { id }
            }
            Ikev2ToPfkey::AddPolicy { id, .. }
            | Ikev2ToPfkey::DeletePolicy { id, .. }
            | Ikev2ToPfkey::AddAddress { id, .. }
            | Ikev2ToPfkey::DeleteAddress { id, .. }
            | Ikev2ToPfkey::Migrate { id, .. } => PfkeyToIkev2::Done { id },
            Ikev2ToPfkey::GetCounters { id, sas } => {
                let counters = sas
                    .into_iter()
                    .map(|sa| {
                        let n = self.c.u64();
                        (
                            sa,
                            (n & 3 != 0).then_some(SaCounters {
                                bytes: n >> 8,
                                packets: n >> 40,
                            }),
                        )
                    })
                    .collect();
                PfkeyToIkev2::Counters { id, counters }
            }
            Ikev2ToPfkey::LookupSource { id, peer } => {
                // Right, or of the other family (which the engine refuses).
                let source = if weird {
                    match peer {
                        std::net::IpAddr::V4(_) => {
                            std::net::IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
                        }
                        std::net::IpAddr::V6(_) => std::net::IpAddr::from([127, 0, 0, 1]),
                    }
                } else {
                    node.addr
                };
                PfkeyToIkev2::SourceAddress { id, source }
            }
        })
    }

    /// `first`: the first reply to a request the engine made, which it
    /// must take (an error makes the shell exit).
    pub(super) fn send_ca(
        &mut self,
        index: usize,
        reply: CaToIkev2,
        first: bool,
    ) -> Result<(), Failure> {
        let id = match &reply {
            CaToIkev2::Pong { id }
            | CaToIkev2::Auth { id, .. }
            | CaToIkev2::Verified { id, .. }
            | CaToIkev2::Failed { id, .. }
            | CaToIkev2::Eap { id, .. } => *id,
            CaToIkev2::Store { .. } => 0,
        };
        let now = self.now;
        let result = self.nodes[index].engine.handle_ca(now, reply.clone());
        self.executed();
        self.nodes[index].remember_answer(id);
        if let Err(e) = result {
            if first {
                return Err(Failure(format!(
                    "engine {index} refused the first reply to its own ca request {id}: {e} ({reply:?})"
                )));
            }
            self.stats.wire(3);
        }
        self.after(index)
    }

    pub(super) fn send_pfkey(
        &mut self,
        index: usize,
        reply: PfkeyToIkev2,
        first: bool,
    ) -> Result<(), Failure> {
        let id = match &reply {
            PfkeyToIkev2::Pong { id }
            | PfkeyToIkev2::SpiAllocated { id, .. }
            | PfkeyToIkev2::Done { id }
            | PfkeyToIkev2::Failed { id, .. }
            | PfkeyToIkev2::Counters { id, .. }
            | PfkeyToIkev2::SourceAddress { id, .. } => Some(*id),
            PfkeyToIkev2::Event(_) => None,
        };
        let now = self.now;
        let text = first.then(|| format!("{reply:?}"));
        let result = self.nodes[index].engine.handle_pfkey(now, reply);
        self.executed();
        if let Some(id) = id {
            self.nodes[index].remember_answer(id);
        }
        if let Err(e) = result {
            if let Some(text) = text {
                return Err(Failure(format!(
                    "engine {index} refused the first reply to its own pfkey request: {e} ({text})"
                )));
            }
            self.stats.wire(3);
        }
        self.after(index)
    }

    /// Replies nobody asked for: a stale id answered again, an id never
    /// used, a reply of the wrong kind for a pending id.
    pub(super) fn bogus_ipc(&mut self) -> Result<(), Failure> {
        let index = self.c.below(2);
        let node = &self.nodes[index];
        let id = match self.c.below(4) {
            0 if !node.answered.is_empty() => node.answered[self.c.below(node.answered.len())],
            1 => node.highest_id + 1 + self.c.below(4) as u64,
            2 => self.c.u64(),
            _ => {
                // A pending request's id, answered with the wrong kind (it
                // stays pending: its real answer may still come).
                let pending: Vec<u64> = node
                    .ca_pending
                    .iter()
                    .map(ca_id)
                    .chain(node.pfkey_pending.iter().map(pfkey_id))
                    .collect();
                if pending.is_empty() {
                    0
                } else {
                    pending[self.c.below(pending.len())]
                }
            }
        };
        if self.c.chance(2) {
            let reply = match self.c.below(4) {
                0 => CaToIkev2::Verified {
                    id,
                    ok: self.c.chance(2),
                    reason: String::new(),
                },
                1 => CaToIkev2::Auth {
                    id,
                    auth_method: 2,
                    auth_data: vec![0; 32],
                    certs: Vec::new(),
                },
                2 => CaToIkev2::Failed {
                    id,
                    reason: "bogus".into(),
                },
                3 if self.c.chance(2) => self.bogus_store(),
                _ => CaToIkev2::Pong { id },
            };
            let now = self.now;
            let result = self.nodes[index].engine.handle_ca(now, reply);
            self.executed();
            if result.is_err() {
                self.stats.wire(3);
            }
        } else {
            let reply = match self.c.below(5) {
                0 => PfkeyToIkev2::SpiAllocated {
                    id,
                    spi: self.c.u64() as u32,
                },
                1 => PfkeyToIkev2::Done { id },
                2 => PfkeyToIkev2::Failed {
                    id,
                    failure: failure(self.c),
                },
                3 => PfkeyToIkev2::Counters {
                    id,
                    counters: Vec::new(),
                },
                _ => PfkeyToIkev2::Pong { id },
            };
            let now = self.now;
            let result = self.nodes[index].engine.handle_pfkey(now, reply);
            self.executed();
            if result.is_err() {
                self.stats.wire(3);
            }
        }
        // A wrong-kind reply to a pending id consumed the engine's wait:
        // the real answer is now a reply "never made"; forget it.
        let node = &mut self.nodes[index];
        node.ca_pending.retain(|r| ca_id(r) != id);
        node.pfkey_pending.retain(|r| pfkey_id(r) != id);
        self.after(index)
    }
}
