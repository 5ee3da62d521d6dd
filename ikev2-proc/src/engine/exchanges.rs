//! The exchanges: IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL
//! (RFC 7296 §1), retransmission (§2.1), message IDs (§2.2, §2.3), NAT
//! traversal (§2.23), cookies (§2.6), rekeying (§2.8, §2.18) and deletes.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use iked_common::config::Encapsulation;
use iked_common::crypto::keys::{rekey_skeyseed, ChildSaKeys, IkeSaKeys};
use iked_common::crypto::{auth, KeyExchange};
use iked_common::ipc::{CaToIkev2, Ikev2ToCa, Ikev2ToPfkey, PfkeyToIkev2};
use iked_common::kernel::{
    FailureKind, IpsecMode, IpsecProtocol, KernelEvent, Lifetime, PolicyDirection, PolicyParams,
    SaId, SaParams, SaTemplate, SecretBytes as KernelSecret, Selector, UdpEncap,
};
use iked_common::wire::{
    decode_payloads, encode_payloads, encrypted_message_prefix, encrypted_span, AuthMethod,
    Authentication, Delete, DhId, EncryptedKind, ExchangeType, Flags, Header, Identity,
    KeyExchange as KePayload, Message, Nonce, Notify, NotifyType, Payload, ProtocolId,
    SecurityAssociation, TrafficSelectors,
};

use super::proposals::{self, ChildSuite};
use super::selectors;
use super::{
    Action, Answer, AnswerKind, AuthAnswer, AuthCheck, ChildAnswer, ChildDraft, ChildOffer,
    ChildSa, ChildState, Engine, IkeSa, IkeState, Outstanding, Prep, RequestCtx, Task, Wait,
};

/// Nonce length we send: 32 octets, at least half the PRF key size of
/// every PRF we implement (RFC 7296 §2.10).
const NONCE_LEN: usize = 32;
/// Inbound ESP SPIs are taken from this range (below 256 is reserved, RFC 4303 §2.1).
const SPI_MIN: u32 = 0x100;
const SPI_MAX: u32 = 0xffff_ffff;
/// Anti-replay window of the ESP SAs we install.
const REPLAY_WINDOW: u32 = 64;

/// SHA-1(SPIi | SPIr | IP | port) of NAT_DETECTION_*_IP (RFC 7296 §2.23).
fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut data = Vec::with_capacity(36);
    data.extend_from_slice(&spi_i.to_be_bytes());
    data.extend_from_slice(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => data.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => data.extend_from_slice(&a.octets()),
    }
    data.extend_from_slice(&addr.port().to_be_bytes());
    openssl::sha::sha1(&data).to_vec()
}

fn find_payload<T>(payloads: &[Payload], pick: impl Fn(&Payload) -> Option<&T>) -> Option<&T> {
    payloads.iter().find_map(pick)
}

fn notify_in(payloads: &[Payload], notify_type: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == notify_type => Some(n),
        _ => None,
    })
}

/// The first error notification (types below 16384, RFC 7296 §3.10.1).
fn error_notify(payloads: &[Payload]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type.value() < 16384 => Some(n.notify_type),
        _ => None,
    })
}

fn sa_payload(payloads: &[Payload]) -> Option<&SecurityAssociation> {
    find_payload(payloads, |p| match p {
        Payload::SecurityAssociation(sa) => Some(sa),
        _ => None,
    })
}

fn nonce_payload(payloads: &[Payload]) -> Option<&Vec<u8>> {
    find_payload(payloads, |p| match p {
        Payload::Nonce(Nonce(n)) => Some(n),
        _ => None,
    })
}

fn ke_payload(payloads: &[Payload]) -> Option<&KePayload> {
    find_payload(payloads, |p| match p {
        Payload::KeyExchange(ke) => Some(ke),
        _ => None,
    })
}

fn ts_payloads(payloads: &[Payload]) -> Option<(&TrafficSelectors, &TrafficSelectors)> {
    let tsi = find_payload(payloads, |p| match p {
        Payload::TsInitiator(ts) => Some(ts),
        _ => None,
    })?;
    let tsr = find_payload(payloads, |p| match p {
        Payload::TsResponder(ts) => Some(ts),
        _ => None,
    })?;
    Some((tsi, tsr))
}

fn id_body(id: &Identity) -> Vec<u8> {
    let mut out = Vec::new();
    id.encode_body(&mut out);
    out
}

fn lower_nonce<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    if a <= b {
        a
    } else {
        b
    }
}

/// The KEYMAT of a Child SA negotiated in an exchange with nonces Ni, Nr
/// (RFC 7296 §2.17).
fn child_keys(
    sa: &IkeSa,
    suite: &ChildSuite,
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
) -> Option<ChildSaKeys> {
    let ike_suite = sa.suite?;
    let keys = sa.keys.as_ref()?;
    let shared: Vec<&[u8]> = shared.into_iter().collect();
    ChildSaKeys::derive(
        ike_suite.prf,
        keys.sk_d.expose(),
        &shared,
        ni,
        nr,
        suite.encr,
        suite.integ,
    )
    .ok()
}

/// Logs a key at trace level only (`-vv`), in the labels strongSwan uses,
/// so interop tests can compare derived keys byte for byte.
fn trace_key(label: &str, key: &[u8]) {
    if log::log_enabled!(log::Level::Trace) {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        log::trace!("key {label} {hex}");
    }
}

fn trace_ike_keys(keys: &IkeSaKeys) {
    for (label, key) in [
        ("Sk_d secret", &keys.sk_d),
        ("Sk_ai secret", &keys.sk_ai),
        ("Sk_ar secret", &keys.sk_ar),
        ("Sk_ei secret", &keys.sk_ei),
        ("Sk_er secret", &keys.sk_er),
        ("Sk_pi secret", &keys.sk_pi),
        ("Sk_pr secret", &keys.sk_pr),
    ] {
        trace_key(label, key.expose());
    }
}

/// SKEYSEED and SK_* of IKE_SA_INIT (RFC 7296 §2.14).
fn ike_sa_keys(
    prf: iked_common::crypto::PrfAlg,
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: &[u8],
    spi_r: &[u8],
    transform: iked_common::crypto::SkTransform,
) -> iked_common::crypto::Result<IkeSaKeys> {
    let seed = iked_common::crypto::keys::skeyseed(prf, ni, nr, shared)?;
    trace_key("SKEYSEED", seed.expose());
    let keys = IkeSaKeys::derive(prf, seed.expose(), ni, nr, spi_i, spi_r, transform)?;
    trace_ike_keys(&keys);
    Ok(keys)
}

impl Engine {
    // ------------------------------------------------------------------
    // Entry points
    // ------------------------------------------------------------------

    /// One received IKE datagram (non-ESP marker already removed), that
    /// arrived at `local` from `remote`. Anything malformed is dropped.
    pub fn handle_datagram(
        &mut self,
        now: std::time::Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
    ) {
        self.now = now;
        let message = match Message::decode(datagram) {
            Ok(m) => m,
            Err(e) => {
                log::debug!(
                    "{remote}: dropped undecodable datagram ({} bytes): {e}",
                    datagram.len()
                );
                return;
            }
        };
        let header = message.header;
        if header.initiator_spi == 0 {
            log::debug!("{remote}: dropped message with a zero initiator SPI");
            return;
        }
        if header.exchange == ExchangeType::IkeSaInit {
            if header.is_request() {
                self.on_sa_init_request(local, remote, datagram, &message);
            } else {
                self.on_sa_init_response(local, remote, datagram, &message);
            }
            return;
        }
        // Our SPI is the responder's if the sender is the original initiator.
        let our_spi = if header.flags.initiator {
            header.responder_spi
        } else {
            header.initiator_spi
        };
        let Some(sa) = self.ikes.get(&our_spi) else {
            log::debug!(
                "{remote}: {} for unknown IKE SA {our_spi:016x}",
                header.exchange
            );
            return;
        };
        // The header must name this SA exactly, and the I flag must be the
        // peer's role (RFC 7296 §3.1).
        if sa.spi_i != header.initiator_spi
            || sa.spi_r != header.responder_spi
            || header.flags.initiator == sa.initiator
        {
            log::debug!("{remote}: SPIs or I flag do not match IKE SA {our_spi:016x}");
            return;
        }
        if header.is_request() {
            self.on_request(our_spi, local, remote, datagram, &message);
        } else {
            self.on_response(our_spi, local, remote, datagram, &message);
        }
        self.pump(our_spi);
        self.schedule(our_spi);
    }

    /// A message from pfkey-proc.
    /// A message from pfkey-proc. A reply to a request we never made is a
    /// protocol error (the shell exits on it).
    pub fn handle_pfkey(
        &mut self,
        now: std::time::Instant,
        message: PfkeyToIkev2,
    ) -> Result<(), String> {
        self.now = now;
        let Some(message) = self.take_counter_reply(message)? else {
            return Ok(());
        };
        if let PfkeyToIkev2::SpiAllocated { id, .. }
        | PfkeyToIkev2::Done { id }
        | PfkeyToIkev2::Failed { id, .. } = &message
        {
            if !self.waits.contains_key(id) {
                return Err(format!("reply to request {id}, which was never made"));
            }
        }
        let ike = match &message {
            PfkeyToIkev2::SpiAllocated { id, .. }
            | PfkeyToIkev2::Done { id }
            | PfkeyToIkev2::Failed { id, .. } => self.waits.get(id).map(|(ike, _)| *ike),
            _ => None,
        };
        self.dispatch_pfkey(message);
        if let Some(ike) = ike {
            self.pump(ike);
            self.schedule(ike);
        }
        Ok(())
    }

    fn dispatch_pfkey(&mut self, message: PfkeyToIkev2) {
        match message {
            PfkeyToIkev2::Pong { id } => log::debug!("pfkey channel up (pong {id})"),
            PfkeyToIkev2::SpiAllocated { id, spi } => match self.waits.remove(&id) {
                Some((ike, Wait::RequestSpi)) => self.request_spi_ready(ike, spi),
                Some((ike, Wait::AnswerSpi)) => self.answer_spi_ready(ike, spi),
                other => log::warn!("pfkey: SPI for request {id} nobody waits for ({other:?})"),
            },
            PfkeyToIkev2::Done { id } => {
                if let Some((ike, Wait::InstallSa { child })) = self.waits.remove(&id) {
                    self.sa_install_done(ike, child, None);
                }
            }
            PfkeyToIkev2::Failed { id, failure } => match self.waits.remove(&id) {
                Some((ike, Wait::InstallSa { child })) => {
                    self.sa_install_done(ike, child, Some(failure))
                }
                Some((ike, Wait::AnswerSpi)) if self.answering_auth(ike) => {
                    // The IKE SA can still come up, without its Child SA.
                    log::warn!("cannot allocate an SPI: {failure}");
                    self.auth_answer_without_child(ike);
                }
                Some((ike, Wait::RequestSpi)) | Some((ike, Wait::AnswerSpi)) => {
                    log::warn!("cannot allocate an SPI: {failure}");
                    self.abort_negotiation(ike, "no inbound SPI");
                }
                Some(_) if failure.kind == FailureKind::NotFound => {
                    log::debug!("pfkey request {id}: already gone: {failure}")
                }
                Some(_) => log::warn!("kernel request failed: {failure}"),
                None => log::warn!("pfkey: failure for unknown request {id}: {failure}"),
            },
            PfkeyToIkev2::Event(event) => self.on_kernel_event(event),
            // Taken by take_counter_reply before dispatch.
            PfkeyToIkev2::Counters { id, .. } => log::debug!("pfkey: counters {id} ignored"),
        }
    }

    /// A message from ca-proc.
    /// A message from ca-proc; as for pfkey, unknown request ids are errors.
    pub fn handle_ca(&mut self, now: std::time::Instant, message: CaToIkev2) -> Result<(), String> {
        self.now = now;
        if let CaToIkev2::Auth { id, .. }
        | CaToIkev2::Verified { id, .. }
        | CaToIkev2::Failed { id, .. } = &message
        {
            if !self.waits.contains_key(id) {
                return Err(format!("reply to request {id}, which was never made"));
            }
        }
        let ike = match &message {
            CaToIkev2::Auth { id, .. }
            | CaToIkev2::Verified { id, .. }
            | CaToIkev2::Failed { id, .. } => self.waits.get(id).map(|(ike, _)| *ike),
            CaToIkev2::Pong { .. } => None,
        };
        self.dispatch_ca(message);
        if let Some(ike) = ike {
            self.pump(ike);
            self.schedule(ike);
        }
        Ok(())
    }

    fn dispatch_ca(&mut self, message: CaToIkev2) {
        match message {
            CaToIkev2::Pong { id } => log::debug!("ca channel up (pong {id})"),
            CaToIkev2::Auth {
                id,
                auth_method,
                auth_data,
            } => match self.waits.remove(&id) {
                Some((ike, Wait::RequestSign)) => {
                    self.send_auth_request(ike, auth_method, auth_data)
                }
                Some((ike, Wait::AnswerSign)) => self.send_auth_answer(ike, auth_method, auth_data),
                other => log::warn!("ca: AUTH for request {id} nobody waits for ({other:?})"),
            },
            CaToIkev2::Verified { id, ok } => match self.waits.remove(&id) {
                Some((ike, Wait::VerifyInitiator)) => self.initiator_verified(ike, ok),
                Some((ike, Wait::VerifyResponder)) => self.responder_verified(ike, ok),
                other => log::warn!("ca: verdict for request {id} nobody waits for ({other:?})"),
            },
            CaToIkev2::Failed { id, reason } => match self.waits.remove(&id) {
                Some((ike, Wait::VerifyInitiator)) => {
                    log::warn!("ca cannot check AUTH: {reason}");
                    self.initiator_verified(ike, false);
                }
                Some((ike, Wait::AnswerSign)) => {
                    log::warn!("ca cannot make AUTH: {reason}");
                    self.answer_auth_failed(ike);
                }
                Some((ike, _)) => {
                    log::warn!("ca request failed: {reason}");
                    self.abort_negotiation(ike, "ca failed");
                }
                None => log::warn!("ca: failure for unknown request {id}: {reason}"),
            },
        }
    }

    // ------------------------------------------------------------------
    // Initiation
    // ------------------------------------------------------------------

    /// Starts an IKE SA for policy `name` (its first Child SA for flow
    /// `flow_index`). `peer` overrides the policy's peer (ACQUIRE).
    pub(crate) fn initiate(
        &mut self,
        name: &str,
        peer: Option<IpAddr>,
        flow_index: usize,
    ) -> Result<(), String> {
        let policy = self.policy(name).ok_or("no such policy")?.clone();
        let peer_ip = match (peer, policy.peer) {
            (Some(p), _) => p,
            (None, Some(prefix)) if prefix.is_host() => prefix.addr,
            _ => return Err("the policy has no single peer address".into()),
        };
        let local_ip = match policy.local {
            Some(prefix) if prefix.is_host() => prefix.addr,
            _ => self
                .resolver
                .as_mut()
                .and_then(|r| r(peer_ip))
                .unwrap_or(match peer_ip {
                    IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                }),
        };
        let ke = proposals::preferred_ke(&policy.ike_proposals).ok_or("no usable KE group")?;
        let spi = self.new_ike_spi().map_err(|e| e.to_string())?;
        let ni = self.random_bytes(NONCE_LEN).map_err(|e| e.to_string())?;
        let local_id = Engine::local_identity(Some(&policy), local_ip);
        let sa = IkeSa {
            spi_i: spi,
            spi_r: 0,
            initiator: true,
            policy: policy.name.clone(),
            local: SocketAddr::new(local_ip, self.settings.ike_port),
            peer: SocketAddr::new(peer_ip, self.settings.ike_port),
            state: IkeState::InitSent,
            suite: None,
            ni,
            nr: Vec::new(),
            kex: None,
            ke_method: Some(ke),
            offered: None,
            cookie: None,
            init_request: Vec::new(),
            accepted_ike: None,
            init_response: Vec::new(),
            keys: None,
            out_cipher: None,
            in_cipher: None,
            local_id,
            peer_id: None,
            natt: false,
            nat_detected: false,
            behind_nat: false,
            next_message_id: 0,
            expected_message_id: 0,
            outstanding: None,
            prep: None,
            queue: VecDeque::new(),
            cached_response: None,
            answering: None,
            auth_check: None,
            children: Vec::new(),
            established: None,
            rekey_at: None,
            delete_at: None,
            last_heard: self.now,
            last_sent: self.now,
            created: self.now,
            scheduled: None,
            first_flow: flow_index.min(policy.flows.len().saturating_sub(1)),
            peer_rekey: None,
            half_open_key: None,
            half_open: false,
            half_open_cookie: false,
            successor: None,
            no_restart: false,
            child_ke_hint: None,
            rekey_ke_hint: None,
        };
        self.ikes.insert(spi, sa);
        self.by_policy
            .entry(policy.name.clone())
            .or_default()
            .insert(spi);
        log::info!(
            "policy {}: initiating IKE SA {spi:016x} to {peer_ip}",
            policy.name
        );
        self.send_sa_init(spi)?;
        self.schedule(spi);
        Ok(())
    }

    /// Sends (or re-sends after COOKIE / INVALID_KE_PAYLOAD) IKE_SA_INIT.
    fn send_sa_init(&mut self, spi: u64) -> Result<(), String> {
        let Some(sa) = self.ikes.get(&spi) else {
            return Err("IKE SA vanished".into());
        };
        let policy = self.policy(&sa.policy).ok_or("policy vanished")?.clone();
        let ke = sa.ke_method.ok_or("no KE group")?;
        let kex = self
            .new_key_exchange(ke)
            .map_err(|e| format!("key exchange: {e}"))?;
        // `natt` forces UDP encapsulation: a source hash that cannot match
        // makes the peer see a NAT too, so both sides encapsulate (the
        // usual way to force it, e.g. strongSwan's encap=yes).
        let fake_source = match policy.force_natt {
            true => Some(self.random_bytes(20).map_err(|e| e.to_string())?),
            false => None,
        };
        let sa = self.ikes.get_mut(&spi).ok_or("IKE SA vanished")?;
        let offered = proposals::offer(&policy.ike_proposals, ProtocolId::Ike, &[], Some(ke), true);
        let mut payloads = Vec::new();
        if let Some(cookie) = &sa.cookie {
            // RFC 7296 §2.6: the COOKIE notification comes first.
            payloads.push(Payload::Notify(Notify::new(
                NotifyType::Cookie,
                cookie.clone(),
            )));
        }
        payloads.push(Payload::SecurityAssociation(offered.clone()));
        payloads.push(Payload::KeyExchange(KePayload {
            group: DhId::from_value(ke.iana_id()),
            data: kex.public_value().to_vec(),
        }));
        payloads.push(Payload::Nonce(Nonce(sa.ni.clone())));
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::NatDetectionSourceIp,
            fake_source.unwrap_or_else(|| nat_hash(sa.spi_i, 0, sa.local)),
        )));
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::NatDetectionDestinationIp,
            nat_hash(sa.spi_i, 0, sa.peer),
        )));
        let message = Message {
            header: Header {
                initiator_spi: sa.spi_i,
                responder_spi: 0,
                exchange: ExchangeType::IkeSaInit,
                flags: Flags {
                    initiator: true,
                    version: false,
                    response: false,
                },
                message_id: 0,
            },
            payloads,
        };
        let datagram = message.encode().map_err(|e| format!("encode: {e}"))?;
        sa.kex = Some(kex);
        sa.offered = Some(offered);
        sa.init_request = datagram.clone();
        sa.next_message_id = 1;
        let (local, peer) = (sa.local, sa.peer);
        sa.outstanding = Some(Outstanding {
            message_id: 0,
            datagram: datagram.clone(),
            transmissions: 1,
            deadline: self.now + self.settings.retransmit_base,
            ctx: RequestCtx::SaInit,
        });
        self.actions.push_back(Action::Send {
            local,
            remote: peer,
            datagram,
        });
        Ok(())
    }

    // ------------------------------------------------------------------
    // IKE_SA_INIT
    // ------------------------------------------------------------------

    fn policy_candidates(&self, local: IpAddr, peer: IpAddr) -> Vec<String> {
        self.policies
            .iter()
            .filter(|p| {
                p.peer.is_none_or(|prefix| prefix.contains(peer))
                    && p.local
                        .is_none_or(|prefix| prefix.contains(local) || local.is_unspecified())
            })
            .map(|p| p.name.clone())
            .collect()
    }

    /// The cookie for an initiator under secret `version`, if that secret
    /// is live. RFC 7296 §2.6:
    /// Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>).
    fn cookie_for(&self, version: u8, ni: &[u8], peer: SocketAddr, spi_i: u64) -> Option<Vec<u8>> {
        let secret = self.cookie_secret_of(version)?;
        let mut hash = openssl::sha::Sha256::new();
        hash.update(ni);
        match peer.ip() {
            IpAddr::V4(a) => hash.update(&a.octets()),
            IpAddr::V6(a) => hash.update(&a.octets()),
        }
        hash.update(&spi_i.to_be_bytes());
        hash.update(secret.as_ref());
        let mut cookie = Vec::with_capacity(33);
        cookie.push(version);
        cookie.extend_from_slice(&hash.finish());
        Some(cookie)
    }

    /// Whether the request opens with a COOKIE notify (§2.6: it must be
    /// the first payload) that we made for this initiator, under the
    /// current or the previous secret. Any length is handled: the
    /// comparison checks lengths first and runs in constant time.
    pub(super) fn cookie_valid(
        &self,
        message: &Message,
        ni: &[u8],
        peer: SocketAddr,
        spi_i: u64,
    ) -> bool {
        let Some(Payload::Notify(notify)) = message.payloads.first() else {
            return false;
        };
        if notify.notify_type != NotifyType::Cookie {
            return false;
        }
        let Some(&version) = notify.data.first() else {
            return false;
        };
        self.cookie_for(version, ni, peer, spi_i)
            .is_some_and(|expected| iked_common::crypto::secret::ct_eq(&expected, &notify.data))
    }

    fn send_clear_notify(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        request: &Header,
        notify: Notify,
    ) {
        let message = Message {
            header: Header {
                initiator_spi: request.initiator_spi,
                responder_spi: 0,
                exchange: ExchangeType::IkeSaInit,
                flags: Flags {
                    initiator: false,
                    version: false,
                    response: true,
                },
                message_id: 0,
            },
            payloads: vec![Payload::Notify(notify)],
        };
        if let Ok(datagram) = message.encode() {
            self.actions.push_back(Action::Send {
                local,
                remote,
                datagram,
            });
        }
    }

    fn on_sa_init_request(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        message: &Message,
    ) {
        let header = message.header;
        if header.responder_spi != 0 || header.message_id != 0 || !header.flags.initiator {
            log::debug!("{remote}: malformed IKE_SA_INIT request header");
            return;
        }
        // What we keep of a half-open SA is mostly this request (signed in
        // IKE_AUTH, RFC 7296 §2.15): refuse large ones before any work.
        if datagram.len() > self.settings.max_sa_init_request {
            log::debug!(
                "{remote}: IKE_SA_INIT of {} octets refused (at most {})",
                datagram.len(),
                self.settings.max_sa_init_request
            );
            return;
        }
        // A retransmission: answer from the cache (RFC 7296 §2.1). The
        // response is the one kept for IKE_AUTH, while it is kept.
        if let Some(&spi) = self.by_init.get(&(header.initiator_spi, remote)) {
            if let Some(sa) = self.ikes.get(&spi) {
                if !sa.initiator
                    && !sa.init_response.is_empty()
                    && datagram == sa.init_request.as_slice()
                {
                    self.actions.push_back(Action::Send {
                        local: sa.local,
                        remote,
                        datagram: sa.init_response.clone(),
                    });
                }
            }
            return;
        }
        if self.half_open >= self.settings.half_open_cap {
            log::debug!(
                "{remote}: IKE_SA_INIT dropped: {} half-open SAs",
                self.half_open
            );
            return;
        }
        let payloads = &message.payloads;
        let (Some(sa_offer), Some(ke), Some(ni)) = (
            sa_payload(payloads),
            ke_payload(payloads),
            nonce_payload(payloads),
        ) else {
            log::debug!("{remote}: IKE_SA_INIT without SA, KE or Nonce");
            return;
        };
        // RFC 7296 §2.6: above the threshold every initiator must prove it
        // receives at its address; so must one address holding its share.
        let from_source = self.half_open_of(remote.ip());
        // Zero: no per-source limit.
        let per_source = match self.settings.half_open_per_source {
            0 => usize::MAX,
            n => n,
        };
        let cookie_required =
            self.half_open >= self.settings.cookie_threshold || from_source.total >= per_source;
        let mut with_cookie = false;
        if cookie_required {
            self.rotate_cookie_secrets();
            if !self.cookie_valid(message, ni, remote, header.initiator_spi) {
                log::debug!(
                    "{remote}: asking for a cookie ({} half-open SAs, {} from this source)",
                    self.half_open,
                    from_source.total
                );
                let version = self.cookie_secrets.version;
                if let Some(cookie) = self.cookie_for(version, ni, remote, header.initiator_spi) {
                    self.send_clear_notify(
                        local,
                        remote,
                        &header,
                        Notify::new(NotifyType::Cookie, cookie),
                    );
                }
                return;
            }
            with_cookie = true;
            // Checked after the cookie: only requests that proved their
            // address count here, so a spoofed flood cannot lock it out.
            if from_source.with_cookie >= per_source {
                log::debug!(
                    "{remote}: IKE_SA_INIT dropped: {} half-open SAs from this source",
                    from_source.total
                );
                return;
            }
        }
        let candidates = self.policy_candidates(local.ip(), remote.ip());
        let mut chosen = None;
        for name in &candidates {
            if let Some(policy) = self.policy(name) {
                if let Some((proposal, suite)) =
                    proposals::select_ike(&policy.ike_proposals, sa_offer)
                {
                    chosen = Some((name.clone(), proposal, suite));
                    break;
                }
            }
        }
        let Some((policy_name, proposal, suite)) = chosen else {
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT: no proposal chosen ({} candidate policies)",
                candidates.len()
            ));
            self.send_clear_notify(
                local,
                remote,
                &header,
                Notify::new(NotifyType::NoProposalChosen, Vec::new()),
            );
            return;
        };
        // RFC 7296 §1.2: a KE of another group than the chosen one gets
        // INVALID_KE_PAYLOAD naming the group we want.
        if ke.group.value() != suite.ke.iana_id() {
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT with KE group {}, asking for {}",
                ke.group,
                suite.ke.iana_id()
            ));
            self.send_clear_notify(
                local,
                remote,
                &header,
                Notify::new(
                    NotifyType::InvalidKePayload,
                    suite.ke.iana_id().to_be_bytes().to_vec(),
                ),
            );
            return;
        }
        let Ok((our_public, shared)) = self.respond_key_exchange(suite.ke, &ke.data) else {
            self.log_unauthenticated(format_args!(
                "{remote}: IKE_SA_INIT with an invalid KE value"
            ));
            self.send_clear_notify(
                local,
                remote,
                &header,
                Notify::new(NotifyType::InvalidSyntax, Vec::new()),
            );
            return;
        };
        let Some(transform) = suite.sk_transform() else {
            return;
        };
        let (Ok(spi_r), Ok(nr)) = (self.new_ike_spi(), self.random_bytes(NONCE_LEN)) else {
            log::warn!("{remote}: IKE_SA_INIT not answered: no randomness");
            return;
        };
        let keys = match ike_sa_keys(
            suite.prf,
            shared.expose(),
            ni,
            &nr,
            &header.initiator_spi.to_be_bytes(),
            &spi_r.to_be_bytes(),
            transform,
        ) {
            Ok(k) => k,
            Err(e) => {
                log::warn!("{remote}: key derivation failed: {e}");
                return;
            }
        };
        let Ok((out_cipher, in_cipher)) = keys.sk_ciphers(transform, false) else {
            return;
        };
        // NAT detection (RFC 7296 §2.23): compare the peer's hashes with
        // what we see.
        let source_seen = nat_hash(header.initiator_spi, 0, remote);
        let dest_seen = nat_hash(header.initiator_spi, 0, local);
        let peer_behind_nat = message
            .notifies()
            .any(|n| n.notify_type == NotifyType::NatDetectionSourceIp)
            && !message.notifies().any(|n| {
                n.notify_type == NotifyType::NatDetectionSourceIp && n.data == source_seen
            });
        let we_behind_nat = message
            .notify(NotifyType::NatDetectionDestinationIp)
            .is_some()
            && !message.notifies().any(|n| {
                n.notify_type == NotifyType::NatDetectionDestinationIp && n.data == dest_seen
            });
        let nat_supported = message.notify(NotifyType::NatDetectionSourceIp).is_some();
        let response_payloads = vec![
            Payload::SecurityAssociation(SecurityAssociation {
                proposals: vec![proposal.clone()],
            }),
            Payload::KeyExchange(KePayload {
                group: DhId::from_value(suite.ke.iana_id()),
                data: our_public,
            }),
            Payload::Nonce(Nonce(nr.clone())),
            Payload::Notify(Notify::new(
                NotifyType::NatDetectionSourceIp,
                nat_hash(header.initiator_spi, spi_r, local),
            )),
            Payload::Notify(Notify::new(
                NotifyType::NatDetectionDestinationIp,
                nat_hash(header.initiator_spi, spi_r, remote),
            )),
        ];
        let mut response_payloads = response_payloads;
        if !nat_supported {
            response_payloads.truncate(3);
        }
        let response = Message {
            header: Header {
                initiator_spi: header.initiator_spi,
                responder_spi: spi_r,
                exchange: ExchangeType::IkeSaInit,
                flags: Flags {
                    initiator: false,
                    version: false,
                    response: true,
                },
                message_id: 0,
            },
            payloads: response_payloads,
        };
        let Ok(response_bytes) = response.encode() else {
            return;
        };
        let local_id = Engine::local_identity(self.policy(&policy_name), local.ip());
        // ESP goes in UDP when a NAT is on the path (RFC 7296 §2.23) or
        // the policy says `natt`.
        let natt = peer_behind_nat
            || we_behind_nat
            || self.policy(&policy_name).is_some_and(|p| p.force_natt);
        let sa = IkeSa {
            spi_i: header.initiator_spi,
            spi_r,
            initiator: false,
            policy: policy_name.clone(),
            local,
            peer: remote,
            state: IkeState::InitDone,
            suite: Some(suite),
            ni: ni.clone(),
            nr,
            kex: None,
            ke_method: Some(suite.ke),
            offered: None,
            cookie: None,
            init_request: datagram.to_vec(),
            accepted_ike: Some(proposal),
            // Kept for IKE_AUTH (§2.15) and answers retransmissions too:
            // the one copy of the response.
            init_response: response_bytes.clone(),
            keys: Some(keys),
            out_cipher: Some(out_cipher),
            in_cipher: Some(in_cipher),
            local_id,
            peer_id: None,
            natt,
            nat_detected: peer_behind_nat || we_behind_nat,
            behind_nat: we_behind_nat,
            next_message_id: 0,
            expected_message_id: 1,
            outstanding: None,
            prep: None,
            queue: VecDeque::new(),
            cached_response: None,
            answering: None,
            auth_check: None,
            children: Vec::new(),
            established: None,
            rekey_at: None,
            delete_at: Some(self.now + self.settings.half_open_timeout),
            last_heard: self.now,
            last_sent: self.now,
            created: self.now,
            scheduled: None,
            first_flow: 0,
            peer_rekey: None,
            half_open_key: Some((header.initiator_spi, remote)),
            half_open: true,
            half_open_cookie: with_cookie,
            successor: None,
            no_restart: false,
            child_ke_hint: None,
            rekey_ke_hint: None,
        };
        self.ikes.insert(spi_r, sa);
        self.by_init.insert((header.initiator_spi, remote), spi_r);
        self.count_half_open(remote.ip(), with_cookie);
        self.by_policy
            .entry(policy_name.clone())
            .or_default()
            .insert(spi_r);
        log::debug!(
            "policy {policy_name}: IKE_SA_INIT from {remote} answered, IKE SA {:016x}/{spi_r:016x}{}",
            header.initiator_spi,
            if peer_behind_nat || we_behind_nat { " (NAT detected)" } else { "" }
        );
        self.actions.push_back(Action::Send {
            local,
            remote,
            datagram: response_bytes,
        });
        self.schedule(spi_r);
    }

    fn on_sa_init_response(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        message: &Message,
    ) {
        let header = message.header;
        let spi = header.initiator_spi;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if !sa.initiator
            || sa.state != IkeState::InitSent
            || header.message_id != 0
            || header.flags.initiator
            || remote.ip() != sa.peer.ip()
        {
            log::debug!("{remote}: unexpected IKE_SA_INIT response for {spi:016x}");
            return;
        }
        let payloads = &message.payloads;
        if let Some(cookie) = notify_in(payloads, NotifyType::Cookie) {
            // RFC 7296 §2.6: retry with the cookie, once per cookie value.
            if sa.cookie.as_ref() == Some(&cookie.data) {
                return;
            }
            log::info!("IKE SA {spi:016x}: responder asks for a cookie");
            sa.cookie = Some(cookie.data.clone());
            if let Err(e) = self.send_sa_init(spi) {
                log::warn!("IKE SA {spi:016x}: {e}");
            }
            return;
        }
        if let Some(group) =
            notify_in(payloads, NotifyType::InvalidKePayload).and_then(|n| n.invalid_ke_group())
        {
            let policy = self
                .ikes
                .get(&spi)
                .and_then(|sa| self.policy(&sa.policy))
                .cloned();
            let Some(sa) = self.ikes.get_mut(&spi) else {
                return;
            };
            let wanted = iked_common::crypto::KeMethod::from_iana(group.value());
            match (wanted, policy) {
                (Some(method), Some(policy))
                    if proposals::offers_ke(&policy.ike_proposals, method)
                        && sa.ke_method != Some(method) =>
                {
                    log::info!(
                        "IKE SA {spi:016x}: responder wants KE group {}, retrying",
                        group
                    );
                    sa.ke_method = Some(method);
                    if let Err(e) = self.send_sa_init(spi) {
                        log::warn!("IKE SA {spi:016x}: {e}");
                    }
                }
                _ => {
                    log::warn!("IKE SA {spi:016x}: responder wants KE group {group}, which we do not offer");
                    self.delete_ike_local(spi, "no acceptable KE group");
                }
            }
            return;
        }
        if let Some(error) = error_notify(payloads) {
            log::warn!(
                "policy {}: IKE_SA_INIT refused by {remote}: {error}",
                sa.policy
            );
            self.delete_ike_local(spi, "IKE_SA_INIT refused");
            return;
        }
        if header.responder_spi == 0 {
            return;
        }
        let (Some(answer), Some(ke), Some(nr)) = (
            sa_payload(payloads),
            ke_payload(payloads),
            nonce_payload(payloads),
        ) else {
            log::debug!("{remote}: IKE_SA_INIT response without SA, KE or Nonce");
            return;
        };
        let Some(offered) = sa.offered.as_ref() else {
            return;
        };
        let Some(suite) =
            proposals::accepted_matches(offered, answer).and_then(|p| proposals::ike_suite(&p))
        else {
            log::warn!("IKE SA {spi:016x}: responder chose a proposal we did not offer");
            self.delete_ike_local(spi, "bad proposal in IKE_SA_INIT response");
            return;
        };
        if Some(suite.ke) != sa.ke_method || ke.group.value() != suite.ke.iana_id() {
            log::warn!("IKE SA {spi:016x}: KE group in response does not match");
            return;
        }
        let Some(kex) = sa.kex.as_ref() else {
            return;
        };
        let Ok(shared) = kex.complete(&ke.data) else {
            log::warn!("IKE SA {spi:016x}: invalid KE value from {remote}");
            return;
        };
        let Some(transform) = suite.sk_transform() else {
            return;
        };
        let Ok(keys) = ike_sa_keys(
            suite.prf,
            shared.expose(),
            &sa.ni,
            nr,
            &spi.to_be_bytes(),
            &header.responder_spi.to_be_bytes(),
            transform,
        ) else {
            return;
        };
        let Ok((out_cipher, in_cipher)) = keys.sk_ciphers(transform, true) else {
            return;
        };
        // NAT detection (RFC 7296 §2.23).
        let spi_r = header.responder_spi;
        let peer_hash_ok = message.notifies().any(|n| {
            n.notify_type == NotifyType::NatDetectionSourceIp
                && n.data == nat_hash(spi, spi_r, sa.peer)
        });
        let our_hash_ok = message.notifies().any(|n| {
            n.notify_type == NotifyType::NatDetectionDestinationIp
                && n.data == nat_hash(spi, spi_r, sa.local)
        });
        let nat_supported = message.notify(NotifyType::NatDetectionSourceIp).is_some();
        sa.nat_detected = nat_supported && (!peer_hash_ok || !our_hash_ok);
        sa.behind_nat = nat_supported && !our_hash_ok;
        let force = self
            .policies
            .iter()
            .find(|p| p.name == sa.policy)
            .is_some_and(|p| p.force_natt);
        sa.spi_r = spi_r;
        sa.suite = Some(suite);
        sa.nr = nr.clone();
        sa.keys = Some(keys);
        sa.out_cipher = Some(out_cipher);
        sa.in_cipher = Some(in_cipher);
        sa.init_response = datagram.to_vec();
        sa.kex = None;
        sa.outstanding = None;
        sa.expected_message_id = 0;
        sa.last_heard = self.now;
        if (sa.nat_detected || force) && nat_supported {
            // Float to port 4500 for everything after IKE_SA_INIT.
            sa.natt = true;
            sa.local.set_port(self.settings.natt_port);
            if sa.peer.port() == self.settings.ike_port {
                sa.peer.set_port(self.settings.natt_port);
            }
            log::info!(
                "IKE SA {spi:016x}: {} NAT-T, moving to port {}",
                if sa.nat_detected {
                    "NAT detected, using"
                } else {
                    "forced"
                },
                self.settings.natt_port
            );
        }
        sa.state = IkeState::AuthPreparing;
        // Bounded wait for pfkey and ca; cleared once IKE_AUTH is sent.
        sa.delete_at = Some(self.now + self.settings.half_open_timeout);
        if sa.local.ip().is_unspecified() && !local.ip().is_unspecified() {
            sa.local.set_ip(local.ip());
        }
        // IKE_AUTH's first Child SA needs its inbound SPI first.
        let Some(policy) = self.policies.iter().find(|p| p.name == sa.policy).cloned() else {
            return;
        };
        let id_body = id_body(&sa.local_id);
        // A policy at its Child SA cap gets its IKE SA, not another child.
        let policy_full = self
            .children_by_policy
            .get(&policy.name)
            .is_some_and(|n| *n >= self.settings.max_child_sas_per_policy);
        if policy_full {
            log::warn!(
                "policy {}: IKE_AUTH without a Child SA: the policy holds its maximum of {}",
                policy.name,
                self.settings.max_child_sas_per_policy
            );
        }
        if policy.flows.is_empty() || policy_full {
            sa.prep = Some(Prep::Auth {
                child: None,
                id_body,
            });
            self.request_auth_signature(spi);
        } else {
            let (peer, local) = (sa.peer.ip(), sa.local.ip());
            let first_flow = sa.first_flow;
            sa.prep = Some(Prep::Auth {
                child: None,
                id_body,
            });
            let reqid = self.reqid_for(&policy.name, first_flow);
            self.ask_pfkey(spi, Wait::RequestSpi, |id| Ikev2ToPfkey::AllocateSpi {
                id,
                src: peer,
                dst: local,
                protocol: IpsecProtocol::Esp,
                reqid,
                min: SPI_MIN,
                max: SPI_MAX,
            });
            if let Some(sa) = self.ikes.get_mut(&spi) {
                // Remember the reqid in a draft without SPI yet.
                let flow_index = sa.first_flow;
                let flow = policy.flows.get(flow_index).copied();
                if let (Some(flow), Some(Prep::Auth { child, .. })) = (flow, sa.prep.as_mut()) {
                    let offered = proposals::offer(
                        &policy.child_proposals,
                        ProtocolId::Esp,
                        &[0; 4],
                        None,
                        false,
                    );
                    *child = Some(ChildDraft {
                        spi_in: 0,
                        reqid,
                        flow,
                        flow_index,
                        transport: policy.encapsulation == Encapsulation::Transport,
                        nonce: Vec::new(),
                        kex: None,
                        offered,
                        rekey_of: None,
                    });
                }
            }
        }
        self.schedule(spi);
    }

    // ------------------------------------------------------------------
    // Sealing and opening (RFC 7296 §3.14)
    // ------------------------------------------------------------------

    fn seal(&mut self, spi: u64, header: Header, inner: &[Payload]) -> Option<Vec<u8>> {
        let sa = self.ikes.get_mut(&spi)?;
        let cipher = sa.out_cipher.as_mut()?;
        let (first, plaintext) = encode_payloads(inner).ok()?;
        let sealed_len = cipher.transform().sealed_len(plaintext.len());
        let mut out =
            encrypted_message_prefix(&header, &[], EncryptedKind::Whole, first, sealed_len).ok()?;
        let body = cipher.seal(&out, &plaintext, &mut *self.rng).ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn open(&self, spi: u64, datagram: &[u8], message: &Message) -> Option<Vec<Payload>> {
        let sa = self.ikes.get(&spi)?;
        let cipher = sa.in_cipher.as_ref()?;
        let sk = message.encrypted()?;
        let span = encrypted_span(datagram).ok()?;
        let (aad, body) = datagram.split_at_checked(span)?;
        let plaintext = cipher.open(aad, body).ok()?;
        decode_payloads(sk.first_inner, &plaintext, &message.header).ok()
    }

    fn header_for(
        &self,
        sa: &IkeSa,
        exchange: ExchangeType,
        message_id: u32,
        response: bool,
    ) -> Header {
        Header {
            initiator_spi: sa.spi_i,
            responder_spi: sa.spi_r,
            exchange,
            flags: Flags {
                initiator: sa.initiator,
                version: false,
                response,
            },
            message_id,
        }
    }

    /// Sends a request (window 1: the caller checked the window is free).
    fn send_request(
        &mut self,
        spi: u64,
        exchange: ExchangeType,
        inner: Vec<Payload>,
        ctx: RequestCtx,
    ) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let message_id = sa.next_message_id;
        let header = self.header_for(sa, exchange, message_id, false);
        let Some(datagram) = self.seal(spi, header, &inner) else {
            log::warn!("IKE SA {spi:016x}: cannot seal {exchange} request");
            return;
        };
        let deadline = self.now + self.settings.retransmit_base;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.next_message_id = sa.next_message_id.wrapping_add(1);
        sa.last_sent = self.now;
        sa.outstanding = Some(Outstanding {
            message_id,
            datagram: datagram.clone(),
            transmissions: 1,
            deadline,
            ctx,
        });
        log::debug!("IKE SA {spi:016x}: {exchange} request {message_id} sent");
        self.actions.push_back(Action::Send {
            local: sa.local,
            remote: sa.peer,
            datagram,
        });
    }

    /// Sends and caches a response to request `message_id`.
    fn send_response(
        &mut self,
        spi: u64,
        exchange: ExchangeType,
        message_id: u32,
        inner: Vec<Payload>,
    ) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let header = self.header_for(sa, exchange, message_id, true);
        let Some(datagram) = self.seal(spi, header, &inner) else {
            log::warn!("IKE SA {spi:016x}: cannot seal {exchange} response");
            return;
        };
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.cached_response = Some((message_id, datagram.clone()));
        sa.last_sent = self.now;
        sa.expected_message_id = message_id.wrapping_add(1);
        sa.answering = None;
        self.actions.push_back(Action::Send {
            local: sa.local,
            remote: sa.peer,
            datagram,
        });
    }

    // ------------------------------------------------------------------
    // Requests and responses on an IKE SA with keys
    // ------------------------------------------------------------------

    fn on_request(
        &mut self,
        spi: u64,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        message: &Message,
    ) {
        let header = message.header;
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        if sa.in_cipher.is_none() {
            return;
        }
        // RFC 7296 §1.2: IKE_AUTH completes before any other exchange. On
        // an SA whose peer is not authenticated yet nothing else is even
        // decrypted (security review L4: no INFORMATIONAL on half-open SAs).
        let authenticated = matches!(
            sa.state,
            IkeState::Established | IkeState::Rekeyed | IkeState::Deleting
        );
        if !authenticated && header.exchange != ExchangeType::IkeAuth {
            log::debug!(
                "IKE SA {spi:016x}: {} request before IKE_AUTH completed, dropped",
                header.exchange
            );
            return;
        }
        // RFC 7296 §2.2: the previous request again gets the cached response.
        let previous = sa.expected_message_id.wrapping_sub(1);
        if header.message_id == previous && sa.answering.is_none() {
            if let Some((id, response)) = &sa.cached_response {
                if *id == previous {
                    // Authenticate it first so forged copies cannot make us send.
                    if self.open(spi, datagram, message).is_some() {
                        log::debug!("IKE SA {spi:016x}: request {previous} retransmitted, answering from cache");
                        self.actions.push_back(Action::Send {
                            local: sa.local,
                            remote,
                            datagram: response.clone(),
                        });
                    }
                }
            }
            return;
        }
        if header.message_id != sa.expected_message_id || sa.answering.is_some() {
            log::debug!(
                "IKE SA {spi:016x}: request {} dropped (expecting {}{})",
                header.message_id,
                sa.expected_message_id,
                if sa.answering.is_some() { ", busy" } else { "" }
            );
            return;
        }
        let Some(inner) = self.open(spi, datagram, message) else {
            log::debug!("IKE SA {spi:016x}: request failed integrity check, dropped");
            return;
        };
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.last_heard = self.now;
        // Follow the peer's address: a NAT may have changed it, and after
        // IKE_SA_INIT the initiator may have floated to port 4500 (§2.23).
        if sa.peer != remote || sa.local != local {
            if !sa.local.ip().is_unspecified() && sa.local.ip() != local.ip() {
                log::debug!(
                    "IKE SA {spi:016x}: request arrived at {local}, expected {}",
                    sa.local
                );
            }
            sa.peer = remote;
            sa.local = local;
        }
        // IKE on port 4500 alone does not mean ESP in UDP: a MOBIKE peer
        // floats without a NAT (RFC 4555 §3). Encapsulation follows NAT
        // detection (RFC 7296 §2.23) or `natt`, decided at IKE_SA_INIT.
        match header.exchange {
            ExchangeType::IkeAuth => self.on_auth_request(spi, header.message_id, inner),
            ExchangeType::CreateChildSa => {
                self.on_create_child_request(spi, header.message_id, inner)
            }
            ExchangeType::Informational => {
                self.on_informational_request(spi, header.message_id, inner)
            }
            other => {
                log::debug!("IKE SA {spi:016x}: {other} request not handled");
            }
        }
    }

    fn on_response(
        &mut self,
        spi: u64,
        _local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        message: &Message,
    ) {
        let header = message.header;
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let matches = sa
            .outstanding
            .as_ref()
            .is_some_and(|o| o.message_id == header.message_id);
        if !matches {
            log::debug!(
                "IKE SA {spi:016x}: response {} matches no request of ours",
                header.message_id
            );
            return;
        }
        let Some(inner) = self.open(spi, datagram, message) else {
            log::debug!("IKE SA {spi:016x}: response failed integrity check, dropped");
            return;
        };
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(outstanding) = sa.outstanding.take() else {
            return;
        };
        sa.last_heard = self.now;
        if sa.initiator && sa.state == IkeState::AuthSent {
            sa.peer = remote;
        }
        match (header.exchange, outstanding.ctx) {
            (ExchangeType::IkeAuth, RequestCtx::Auth { child }) => {
                self.on_auth_response(spi, inner, child)
            }
            (ExchangeType::CreateChildSa, RequestCtx::CreateChild { child }) => {
                self.on_create_child_response(spi, inner, child)
            }
            (
                ExchangeType::CreateChildSa,
                RequestCtx::RekeyIke {
                    new_spi,
                    nonce,
                    kex,
                    offered,
                },
            ) => self.on_rekey_ike_response(spi, inner, new_spi, nonce, kex, offered),
            (ExchangeType::Informational, RequestCtx::DeleteChildren { spis }) => {
                for child in spis {
                    self.remove_child(child);
                }
            }
            (ExchangeType::Informational, RequestCtx::DeleteIke) => {
                self.delete_ike_local(spi, "deleted");
            }
            (ExchangeType::Informational, RequestCtx::Dpd) => {
                log::debug!("IKE SA {spi:016x}: peer alive");
            }
            (exchange, _) => {
                log::debug!("IKE SA {spi:016x}: {exchange} response does not fit the request");
            }
        }
    }

    // ------------------------------------------------------------------
    // IKE_AUTH, initiator
    // ------------------------------------------------------------------

    fn request_spi_ready(&mut self, spi: u64, child_spi: u32) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        match sa.prep.as_mut() {
            Some(Prep::Auth {
                child: Some(draft), ..
            }) => {
                draft.spi_in = child_spi;
                for p in &mut draft.offered.proposals {
                    p.spi = child_spi.to_be_bytes().to_vec();
                }
                self.request_auth_signature(spi);
            }
            Some(Prep::CreateChild { .. }) => self.send_create_child(spi, child_spi),
            _ => log::debug!("IKE SA {spi:016x}: SPI arrived with nothing to prepare"),
        }
    }

    fn request_auth_signature(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let (Some(suite), Some(keys), Some(Prep::Auth { id_body, .. })) =
            (sa.suite, sa.keys.as_ref(), sa.prep.as_ref())
        else {
            return;
        };
        // RFC 7296 §2.15: RealMessage1 | NonceRData | prf(SK_pi, IDi').
        let Ok(octets) = auth::signed_octets(
            suite.prf,
            &sa.init_request,
            &sa.nr,
            keys.sk_pi.expose(),
            id_body,
        ) else {
            return;
        };
        let policy = sa.policy.clone();
        self.ask_ca(spi, Wait::RequestSign, |id| Ikev2ToCa::SignAuth {
            id,
            policy,
            prf: suite.prf.iana_id(),
            signed_octets: octets,
        });
    }

    fn send_auth_request(&mut self, spi: u64, auth_method: u8, auth_data: Vec<u8>) {
        let has_other = {
            let Some(sa) = self.ikes.get(&spi) else {
                return;
            };
            self.by_policy.get(&sa.policy).is_some_and(|set| {
                set.iter().any(|other| {
                    *other != spi
                        && self
                            .ikes
                            .get(other)
                            .is_some_and(|o| o.state == IkeState::Established)
                })
            })
        };
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(Prep::Auth { child, .. }) = sa.prep.take() else {
            return;
        };
        let mut inner = vec![Payload::IdInitiator(sa.local_id.clone())];
        if !has_other {
            // RFC 7296 §2.4: we hold no other IKE SA with this peer.
            inner.push(Payload::Notify(Notify::new(
                NotifyType::InitialContact,
                Vec::new(),
            )));
        }
        // IDr tells a responder with several identities which one we expect.
        let wanted_idr = self
            .policies
            .iter()
            .find(|p| p.name == sa.policy)
            .and_then(|p| p.dstid.as_ref())
            .map(super::identity_of);
        if let Some(idr) = wanted_idr {
            inner.push(Payload::IdResponder(idr));
        }
        inner.push(Payload::Authentication(Authentication {
            method: AuthMethod::from_value(auth_method),
            data: auth_data,
        }));
        if let Some(draft) = &child {
            if draft.transport {
                inner.push(Payload::Notify(Notify::new(
                    NotifyType::UseTransportMode,
                    Vec::new(),
                )));
            }
            inner.push(Payload::SecurityAssociation(draft.offered.clone()));
            inner.push(Payload::TsInitiator(TrafficSelectors {
                selectors: vec![selectors::local_ts(&draft.flow)],
            }));
            inner.push(Payload::TsResponder(TrafficSelectors {
                selectors: vec![selectors::remote_ts(&draft.flow)],
            }));
        }
        sa.state = IkeState::AuthSent;
        sa.delete_at = None;
        self.send_request(
            spi,
            ExchangeType::IkeAuth,
            inner,
            RequestCtx::Auth { child },
        );
        self.schedule(spi);
    }

    fn on_auth_response(&mut self, spi: u64, inner: Vec<Payload>, child: Option<ChildDraft>) {
        if let Some(NotifyType::AuthenticationFailed) = error_notify(&inner) {
            if let Some(sa) = self.ikes.get(&spi) {
                log::warn!(
                    "policy {}: peer {} refused our authentication (AUTHENTICATION_FAILED)",
                    sa.policy,
                    sa.peer
                );
            }
            self.delete_ike_local(spi, "AUTHENTICATION_FAILED");
            return;
        }
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let idr = find_payload(&inner, |p| match p {
            Payload::IdResponder(id) => Some(id),
            _ => None,
        });
        let auth = find_payload(&inner, |p| match p {
            Payload::Authentication(a) => Some(a),
            _ => None,
        });
        let (Some(idr), Some(auth_payload), Some(suite), Some(keys)) =
            (idr, auth, sa.suite, sa.keys.as_ref())
        else {
            log::warn!("IKE SA {spi:016x}: IKE_AUTH response without IDr or AUTH");
            self.delete_ike_local(spi, "malformed IKE_AUTH response");
            return;
        };
        // The responder must be who the policy says (dstid), if it says.
        let expected = self
            .policy(&sa.policy)
            .and_then(|p| p.dstid.as_ref())
            .map(super::identity_of);
        if let Some(expected) = expected {
            if &expected != idr {
                log::warn!(
                    "policy {}: responder identifies as {}, expected {}",
                    sa.policy,
                    super::identity_text(idr),
                    super::identity_text(&expected)
                );
                self.delete_ike_local(spi, "wrong responder identity");
                return;
            }
        }
        // RFC 7296 §2.15: RealMessage2 | NonceIData | prf(SK_pr, IDr').
        let Ok(octets) = auth::signed_octets(
            suite.prf,
            &sa.init_response,
            &sa.ni,
            keys.sk_pr.expose(),
            &id_body(idr),
        ) else {
            return;
        };
        let policy = sa.policy.clone();
        let method = auth_payload.method.value();
        let data = auth_payload.data.clone();
        let prf = suite.prf.iana_id();
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.peer_id = Some(idr.clone());
            sa.auth_check = Some(AuthCheck {
                message: inner,
                child,
            });
        }
        self.ask_ca(spi, Wait::VerifyResponder, |id| Ikev2ToCa::VerifyAuth {
            id,
            policy,
            prf,
            auth_method: method,
            signed_octets: octets,
            auth_data: data,
        });
    }

    fn responder_verified(&mut self, spi: u64, ok: bool) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(check) = sa.auth_check.take() else {
            return;
        };
        if !ok {
            log::warn!(
                "policy {}: responder {} failed authentication",
                sa.policy,
                sa.peer
            );
            // RFC 7296 §2.21.2: tell the peer in a separate INFORMATIONAL
            // (sent once, unanswered), then forget the IKE SA.
            self.send_request(
                spi,
                ExchangeType::Informational,
                vec![Payload::Notify(Notify::new(
                    NotifyType::AuthenticationFailed,
                    Vec::new(),
                ))],
                RequestCtx::DeleteIke,
            );
            self.delete_ike_local(spi, "responder AUTH wrong");
            return;
        }
        self.establish(spi);
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
        if let Some(draft) = check.child {
            if let Some(error) = error_notify(&check.message) {
                log::warn!("policy {}: no Child SA: peer says {error}", sa.policy);
            } else {
                self.complete_child_as_initiator(spi, draft, &check.message, None, &ni, &nr);
            }
        }
        self.queue_additional_children(spi);
    }

    // ------------------------------------------------------------------
    // IKE_AUTH, responder
    // ------------------------------------------------------------------

    fn on_auth_request(&mut self, spi: u64, message_id: u32, inner: Vec<Payload>) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        if sa.initiator || sa.state != IkeState::InitDone {
            return;
        }
        let idi = find_payload(&inner, |p| match p {
            Payload::IdInitiator(id) => Some(id),
            _ => None,
        });
        let auth_payload = find_payload(&inner, |p| match p {
            Payload::Authentication(a) => Some(a),
            _ => None,
        });
        let (Some(idi), Some(auth_payload), Some(suite), Some(keys)) =
            (idi, auth_payload, sa.suite, sa.keys.as_ref())
        else {
            log::info!("IKE SA {spi:016x}: IKE_AUTH without IDi or AUTH (EAP is not supported)");
            self.answer_error(
                spi,
                ExchangeType::IkeAuth,
                message_id,
                NotifyType::AuthenticationFailed,
            );
            self.delete_ike_local(spi, "no AUTH");
            return;
        };
        // Policy by peer address, local address and IDi: an exact dstid
        // match wins over a policy without dstid.
        // Only policies that accept the IKE SA's negotiated transforms: a
        // peer must not negotiate under one policy's proposals and then
        // authenticate into another's (§2.7 selection happened before the
        // identity was known).
        let accepted = sa.accepted_ike.clone();
        let candidates: Vec<String> = self
            .policy_candidates(sa.local.ip(), sa.peer.ip())
            .into_iter()
            .filter(|name| {
                self.policy(name).is_some_and(|p| {
                    accepted.as_ref().is_none_or(|a| {
                        proposals::select_ike(
                            &p.ike_proposals,
                            &SecurityAssociation {
                                proposals: vec![a.clone()],
                            },
                        )
                        .is_some()
                    })
                })
            })
            .collect();
        let by_id = candidates.iter().find(|name| {
            self.policy(name)
                .and_then(|p| p.dstid.as_ref())
                .is_some_and(|d| &super::identity_of(d) == idi)
        });
        let any_id = candidates
            .iter()
            .find(|name| self.policy(name).is_some_and(|p| p.dstid.is_none()));
        let Some(policy_name) = by_id.or(any_id).cloned() else {
            log::warn!(
                "{}: no policy for identity {}",
                sa.peer,
                super::identity_text(idi)
            );
            self.answer_error(
                spi,
                ExchangeType::IkeAuth,
                message_id,
                NotifyType::AuthenticationFailed,
            );
            self.delete_ike_local(spi, "no policy for the identity");
            return;
        };
        let Some(policy) = self.policy(&policy_name).cloned() else {
            return;
        };
        // RFC 7296 §2.15: RealMessage1 | NonceRData | prf(SK_pi, IDi').
        let Ok(octets) = auth::signed_octets(
            suite.prf,
            &sa.init_request,
            &sa.nr,
            keys.sk_pi.expose(),
            &id_body(idi),
        ) else {
            return;
        };
        let transport_requested = notify_in(&inner, NotifyType::UseTransportMode).is_some();
        let transport = policy.encapsulation == Encapsulation::Transport;
        // The Child SA is chosen and narrowed once ca has verified the
        // AUTH: nothing is done for an unauthenticated peer beyond what
        // checking it needs (security review L4).
        let child_offer = match (sa_payload(&inner), ts_payloads(&inner)) {
            (Some(offer), Some((tsi, tsr))) => Some(ChildOffer {
                sa: offer.clone(),
                tsi: tsi.selectors.clone(),
                tsr: tsr.selectors.clone(),
                transport_requested,
            }),
            _ => None,
        };
        let our_id = Engine::local_identity(Some(&policy), sa.local.ip());
        let id_body_ours = id_body(&our_id);
        let prf = suite.prf.iana_id();
        let method = auth_payload.method.value();
        let data = auth_payload.data.clone();
        let initial_contact = notify_in(&inner, NotifyType::InitialContact).is_some();
        let peer_id = idi.clone();
        let old_policy = sa.policy.clone();
        if old_policy != policy_name {
            if let Some(set) = self.by_policy.get_mut(&old_policy) {
                set.remove(&spi);
            }
            self.by_policy
                .entry(policy_name.clone())
                .or_default()
                .insert(spi);
        }
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.policy = policy_name.clone();
        sa.local_id = our_id;
        sa.peer_id = Some(peer_id.clone());
        sa.state = IkeState::AuthResponding;
        sa.answering = Some(Answer {
            message_id,
            kind: AnswerKind::Auth(Box::new(AuthAnswer {
                peer_id,
                initial_contact,
                transport,
                child_offer,
                child: None,
                spi_in: None,
                reqid: 0,
                id_body: id_body_ours,
            })),
        });
        self.ask_ca(spi, Wait::VerifyInitiator, |id| Ikev2ToCa::VerifyAuth {
            id,
            policy: policy_name,
            prf,
            auth_method: method,
            signed_octets: octets,
            auth_data: data,
        });
    }

    fn initiator_verified(&mut self, spi: u64, ok: bool) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(Answer {
            kind: AnswerKind::Auth(answer),
            ..
        }) = sa.answering.as_ref()
        else {
            return;
        };
        if !ok {
            log::warn!(
                "policy {}: AUTHENTICATION_FAILED for {} from {}",
                sa.policy,
                super::identity_text(&answer.peer_id),
                sa.peer
            );
            self.answer_auth_failed(spi);
            return;
        }
        // Authenticated: now the Child SA it asked for.
        let policy_name = sa.policy.clone();
        let transport = answer.transport;
        let (peer, local) = (sa.peer.ip(), sa.local.ip());
        let offer = self
            .ikes
            .get_mut(&spi)
            .and_then(|sa| match sa.answering.as_mut() {
                Some(Answer {
                    kind: AnswerKind::Auth(answer),
                    ..
                }) => answer.child_offer.take(),
                _ => None,
            });
        let child = self.choose_auth_child(spi, &policy_name, offer, transport);
        let reqid = match &child {
            Ok((_, _, _, index)) => self.reqid_for(&policy_name, *index),
            Err(_) => 0,
        };
        let child_ok = child.is_ok();
        if let Some(Answer {
            kind: AnswerKind::Auth(answer),
            ..
        }) = self.ikes.get_mut(&spi).and_then(|sa| sa.answering.as_mut())
        {
            answer.child = Some(child);
            answer.reqid = reqid;
        }
        if child_ok {
            self.ask_pfkey(spi, Wait::AnswerSpi, |id| Ikev2ToPfkey::AllocateSpi {
                id,
                src: peer,
                dst: local,
                protocol: IpsecProtocol::Esp,
                reqid,
                min: SPI_MIN,
                max: SPI_MAX,
            });
        } else {
            self.answer_auth_signature(spi);
        }
    }

    /// The Child SA of an IKE_AUTH request, chosen after its AUTH was
    /// verified: the proposal, the flow narrowed to the policy, or the
    /// error notify for the response (RFC 7296 §1.2, §2.9).
    fn choose_auth_child(
        &self,
        spi: u64,
        policy_name: &str,
        offer: Option<ChildOffer>,
        transport: bool,
    ) -> Result<(iked_common::wire::Proposal, ChildSuite, Selector, usize), NotifyType> {
        let Some(offer) = offer else {
            return Err(NotifyType::NoProposalChosen);
        };
        if let Some(why) = self.child_cap_reached(spi, false) {
            log::warn!("policy {policy_name}: no Child SA in IKE_AUTH: {why}");
            return Err(NotifyType::NoAdditionalSas);
        }
        let policy = self
            .policy(policy_name)
            .ok_or(NotifyType::NoProposalChosen)?;
        let (proposal, suite) = proposals::select_child(&policy.child_proposals, &offer.sa, false)
            .ok_or(NotifyType::NoProposalChosen)?;
        if transport != offer.transport_requested {
            return Err(NotifyType::NoProposalChosen);
        }
        let (flow, index) = selectors::narrow(&policy.flows, &offer.tsi, &offer.tsr)
            .ok_or(NotifyType::TsUnacceptable)?;
        Ok((proposal, suite, flow, index))
    }

    fn answering_auth(&self, spi: u64) -> bool {
        self.ikes.get(&spi).is_some_and(|sa| {
            matches!(
                sa.answering,
                Some(Answer {
                    kind: AnswerKind::Auth(_),
                    ..
                })
            )
        })
    }

    fn auth_answer_without_child(&mut self, spi: u64) {
        if let Some(sa) = self.ikes.get_mut(&spi) {
            if let Some(Answer {
                kind: AnswerKind::Auth(answer),
                ..
            }) = sa.answering.as_mut()
            {
                answer.child = Some(Err(NotifyType::NoProposalChosen));
            }
        }
        self.answer_auth_signature(spi);
    }

    fn answer_auth_failed(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(answer) = sa.answering.take() else {
            return;
        };
        self.answer_error(
            spi,
            ExchangeType::IkeAuth,
            answer.message_id,
            NotifyType::AuthenticationFailed,
        );
        self.delete_ike_local(spi, "AUTHENTICATION_FAILED");
    }

    fn answer_spi_ready(&mut self, spi: u64, child_spi: u32) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        match sa.answering.as_mut().map(|a| &mut a.kind) {
            Some(AnswerKind::Auth(answer)) => {
                answer.spi_in = Some(child_spi);
                self.answer_auth_signature(spi);
            }
            Some(AnswerKind::Child(_)) => self.send_create_child_answer(spi, child_spi),
            None => {}
        }
    }

    fn answer_auth_signature(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let (
            Some(suite),
            Some(keys),
            Some(Answer {
                kind: AnswerKind::Auth(answer),
                ..
            }),
        ) = (sa.suite, sa.keys.as_ref(), sa.answering.as_ref())
        else {
            return;
        };
        // RFC 7296 §2.15: RealMessage2 | NonceIData | prf(SK_pr, IDr').
        let Ok(octets) = auth::signed_octets(
            suite.prf,
            &sa.init_response,
            &sa.ni,
            keys.sk_pr.expose(),
            &answer.id_body,
        ) else {
            return;
        };
        let policy = sa.policy.clone();
        self.ask_ca(spi, Wait::AnswerSign, |id| Ikev2ToCa::SignAuth {
            id,
            policy,
            prf: suite.prf.iana_id(),
            signed_octets: octets,
        });
    }

    fn send_auth_answer(&mut self, spi: u64, auth_method: u8, auth_data: Vec<u8>) {
        // Checked again: other IKE SAs of the policy may have filled it
        // while this one waited for its SPI.
        let cap_reached = self.child_cap_reached(spi, false);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(Answer {
            message_id,
            kind: AnswerKind::Auth(answer),
        }) = sa.answering.take()
        else {
            return;
        };
        let mut inner = vec![
            Payload::IdResponder(sa.local_id.clone()),
            Payload::Authentication(Authentication {
                method: AuthMethod::from_value(auth_method),
                data: auth_data,
            }),
        ];
        let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
        let mut new_child = None;
        let mut unused_spi = None;
        match (&answer.child, answer.spi_in, cap_reached) {
            (Some(Ok(_)), Some(spi_in), Some(why)) => {
                log::warn!("policy {}: IKE SA up without Child SA: {why}", sa.policy);
                inner.push(Payload::Notify(Notify::new(
                    NotifyType::NoAdditionalSas,
                    Vec::new(),
                )));
                unused_spi = Some(spi_in);
            }
            (Some(Ok((proposal, suite, flow, index))), Some(spi_in), None) => {
                let mut proposal = proposal.clone();
                proposal.spi = spi_in.to_be_bytes().to_vec();
                if answer.transport {
                    inner.push(Payload::Notify(Notify::new(
                        NotifyType::UseTransportMode,
                        Vec::new(),
                    )));
                }
                inner.push(Payload::SecurityAssociation(SecurityAssociation {
                    proposals: vec![proposal.clone()],
                }));
                // TSi is the peer's side (remote), TSr ours (local).
                inner.push(Payload::TsInitiator(TrafficSelectors {
                    selectors: vec![selectors::remote_ts(flow)],
                }));
                inner.push(Payload::TsResponder(TrafficSelectors {
                    selectors: vec![selectors::local_ts(flow)],
                }));
                let spi_out = <[u8; 4]>::try_from(proposal.spi.as_slice()).ok();
                let peer_spi = answer_peer_spi(&answer);
                if let (Some(_), Some(peer_spi)) = (spi_out, peer_spi) {
                    new_child = Some((spi_in, peer_spi, *suite, *flow, *index));
                }
            }
            (Some(Err(error)), ..) => {
                log::warn!("policy {}: IKE SA up without Child SA: {error}", sa.policy);
                inner.push(Payload::Notify(Notify::new(*error, Vec::new())));
            }
            _ => {}
        }
        let initial_contact = answer.initial_contact;
        self.send_response(spi, ExchangeType::IkeAuth, message_id, inner);
        if let Some(spi_in) = unused_spi {
            self.release_spi(spi, spi_in);
        }
        self.establish(spi);
        if initial_contact {
            self.drop_stale_sas(spi);
        }
        if let Some((spi_in, spi_out, suite, flow, index)) = new_child {
            let Some(sa) = self.ikes.get(&spi) else {
                return;
            };
            if let Some(keys) = child_keys(sa, &suite, None, &ni, &nr) {
                self.add_child(
                    spi,
                    spi_in,
                    spi_out,
                    answer.reqid,
                    flow,
                    index,
                    answer.transport,
                    suite,
                    keys,
                    false,
                    lower_nonce(&ni, &nr).to_vec(),
                );
            }
        }
    }

    /// RFC 7296 §2.4: INITIAL_CONTACT: other IKE SAs of the same policy
    /// with the same peer identity are stale; delete them without DELETE.
    fn drop_stale_sas(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(peer_id) = sa.peer_id.clone() else {
            return;
        };
        let stale: Vec<u64> = self
            .by_identity
            .get(&(sa.policy.clone(), peer_id))
            .map(|set| {
                set.iter()
                    .copied()
                    .filter(|other| *other != spi)
                    // Only SAs that existed before this one began: one
                    // established meanwhile (both sides initiating at once)
                    // is not stale, and the peer holds it too.
                    .filter(|other| {
                        self.ikes
                            .get(other)
                            .and_then(|o| o.established)
                            .is_some_and(|t| t < sa.created)
                    })
                    .collect()
            })
            .unwrap_or_default();
        for other in stale {
            log::info!("IKE SA {other:016x}: peer sent INITIAL_CONTACT, dropping the stale SA");
            self.delete_ike_local(other, "INITIAL_CONTACT");
        }
    }

    /// Both gateways initiated at once and now hold two IKE SAs with each
    /// other, one in each role. Both sides see the same two SPI pairs, so
    /// both keep the one with the lower (SPIi, SPIr); whoever initiated the
    /// other deletes it (its Child SAs go with it; the flow's kernel
    /// policies pass to the survivor's).
    fn resolve_duplicate(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(peer_id) = sa.peer_id.clone() else {
            return;
        };
        let mine = (sa.spi_i, sa.spi_r);
        let role = sa.initiator;
        let twins: Vec<(u64, (u64, u64), bool)> = self
            .by_identity
            .get(&(sa.policy.clone(), peer_id))
            .map(|set| {
                set.iter()
                    .filter(|other| **other != spi)
                    .filter_map(|other| self.ikes.get(other).map(|o| (*other, o)))
                    .filter(|(_, o)| o.state == IkeState::Established && o.initiator != role)
                    .map(|(other, o)| (other, (o.spi_i, o.spi_r), o.initiator))
                    .collect()
            })
            .unwrap_or_default();
        for (other, theirs, other_is_ours) in twins {
            let (loser, loser_is_ours) = if mine < theirs {
                (other, other_is_ours)
            } else {
                (spi, role)
            };
            log::info!("IKE SA {loser:016x} duplicates another with the same peer (both sides initiated): {}", if loser_is_ours { "deleting it" } else { "the peer deletes it" });
            if loser_is_ours {
                if let Some(l) = self.ikes.get_mut(&loser) {
                    l.no_restart = true;
                }
                self.request_delete_ike(loser);
            }
            if loser == spi {
                return;
            }
        }
    }

    /// Records an established IKE SA under its peer's identity.
    fn index_identity(&mut self, spi: u64) {
        if let Some(sa) = self.ikes.get(&spi) {
            if let Some(id) = &sa.peer_id {
                self.by_identity
                    .entry((sa.policy.clone(), id.clone()))
                    .or_default()
                    .insert(spi);
            }
        }
    }

    fn answer_error(
        &mut self,
        spi: u64,
        exchange: ExchangeType,
        message_id: u32,
        error: NotifyType,
    ) {
        self.send_response(
            spi,
            exchange,
            message_id,
            vec![Payload::Notify(Notify::new(error, Vec::new()))],
        );
    }

    fn establish(&mut self, spi: u64) {
        let Some(policy) = self
            .ikes
            .get(&spi)
            .and_then(|sa| self.policy(&sa.policy))
            .cloned()
        else {
            return;
        };
        let rekey_at = self.rekey_time(policy.ike_lifetime_secs);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.state = IkeState::Established;
        sa.established = Some(self.now);
        sa.delete_at = None;
        // Only IKE_AUTH needed these (signed octets): free them, they are
        // most of an SA's memory.
        sa.init_request = Vec::new();
        sa.init_response = Vec::new();
        sa.offered = None;
        sa.cookie = None;
        // Used to choose the policy in IKE_AUTH; no longer.
        sa.accepted_ike = None;
        sa.rekey_at = rekey_at;
        let record = super::HalfOpenRecord::take(sa);
        log::info!(
            "policy {}: IKE SA {:016x}/{:016x} established with {} ({}){}",
            sa.policy,
            sa.spi_i,
            sa.spi_r,
            sa.peer,
            sa.peer_id
                .as_ref()
                .map(super::identity_text)
                .unwrap_or_default(),
            if sa.natt { ", NAT-T" } else { "" }
        );
        self.uncount_half_open(record);
        self.index_identity(spi);
        self.resolve_duplicate(spi);
    }

    fn queue_additional_children(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(policy) = self.policy(&sa.policy) else {
            return;
        };
        let have: Vec<usize> = sa
            .children
            .iter()
            .filter_map(|c| self.children.get(c))
            .map(|c| c.flow_index)
            .collect();
        let first = sa.first_flow;
        let wanted: Vec<usize> = (0..policy.flows.len())
            .filter(|i| *i != first && !have.contains(i))
            .collect();
        if let Some(sa) = self.ikes.get_mut(&spi) {
            for flow_index in wanted {
                sa.queue.push_back(Task::CreateChild { flow_index });
            }
        }
    }

    // ------------------------------------------------------------------
    // Child SAs: keys, install, removal
    // ------------------------------------------------------------------

    /// Finishes a Child SA from the responder's answer to our request.
    fn complete_child_as_initiator(
        &mut self,
        spi: u64,
        draft: ChildDraft,
        inner: &[Payload],
        shared: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
    ) -> Option<u32> {
        let sa = self.ikes.get(&spi)?;
        let policy_name = sa.policy.clone();
        let accepted = sa_payload(inner)
            .and_then(|answer| proposals::accepted_matches(&draft.offered, answer));
        let Some(proposal) = accepted else {
            log::warn!("policy {policy_name}: Child SA answer has no acceptable proposal");
            return None;
        };
        let suite = proposals::child_suite(&proposal)?;
        let spi_out = <[u8; 4]>::try_from(proposal.spi.as_slice())
            .ok()
            .map(u32::from_be_bytes)?;
        let Some((tsi, tsr)) = ts_payloads(inner) else {
            log::warn!("policy {policy_name}: Child SA answer without traffic selectors");
            return None;
        };
        let Some(flow) = selectors::accept_narrowed(&draft.flow, &tsi.selectors, &tsr.selectors)
        else {
            log::warn!(
                "policy {policy_name}: responder's traffic selectors are outside our proposal"
            );
            return None;
        };
        let transport = notify_in(inner, NotifyType::UseTransportMode).is_some();
        if transport != draft.transport {
            log::warn!("policy {policy_name}: peer disagrees on transport mode");
            return None;
        }
        let keys = child_keys(sa, &suite, shared, ni, nr)?;
        self.add_child(
            spi,
            draft.spi_in,
            spi_out,
            draft.reqid,
            flow,
            draft.flow_index,
            transport,
            suite,
            keys,
            true,
            lower_nonce(ni, nr).to_vec(),
        );
        Some(draft.spi_in)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_child(
        &mut self,
        ike: u64,
        spi_in: u32,
        spi_out: u32,
        reqid: u32,
        flow: Selector,
        flow_index: usize,
        transport: bool,
        suite: ChildSuite,
        keys: ChildSaKeys,
        we_initiated: bool,
        min_nonce: Vec<u8>,
    ) {
        let lifetime = self
            .ikes
            .get(&ike)
            .and_then(|sa| self.policy(&sa.policy))
            .map_or(0, |p| p.child_lifetime_secs);
        let rekey_at = self.rekey_time(lifetime);
        trace_key("encryption initiator key", keys.encr_i.expose());
        trace_key("encryption responder key", keys.encr_r.expose());
        if !keys.integ_i.is_empty() {
            trace_key("integrity initiator key", keys.integ_i.expose());
            trace_key("integrity responder key", keys.integ_r.expose());
        }
        let ike = self.current_ike(ike);
        let trap_out = self
            .ikes
            .get(&ike)
            .and_then(|sa| self.traps.get(&(sa.policy.clone(), flow_index)))
            .is_some_and(|trap| trap.reqid == reqid && trap.policy.selector == flow);
        let policy = self
            .ikes
            .get(&ike)
            .map(|sa| sa.policy.clone())
            .unwrap_or_default();
        *self.children_by_policy.entry(policy.clone()).or_default() += 1;
        let child = ChildSa {
            ike,
            policy,
            trap_out,
            spi_in,
            spi_out,
            reqid,
            flow,
            flow_index,
            transport,
            suite,
            keys,
            we_initiated,
            state: ChildState::Established,
            installed: false,
            install_failed: false,
            pending_sa_installs: 0,
            established: self.now,
            rekey_at,
            min_nonce,
            peer_rekey: None,
        };
        if let Some(sa) = self.ikes.get_mut(&ike) {
            sa.children.push(spi_in);
            log::info!(
                "policy {}: Child SA {spi_in:08x}/{spi_out:08x} {} {}{}",
                sa.policy,
                flow,
                if transport { "transport" } else { "tunnel" },
                if sa.natt { " (UDP encapsulated)" } else { "" },
            );
        }
        self.flow_children.entry(flow).or_default().insert(spi_in);
        self.children.insert(spi_in, child);
        self.install_child(spi_in);
    }

    fn sa_params(&self, child: &ChildSa, inbound: bool) -> Option<SaParams> {
        let sa = self.ikes.get(&child.ike)?;
        let policy = self.policy(&sa.policy);
        let (encryption, integrity) = child.suite.kernel_transforms()?;
        let k = &child.keys;
        // §2.17: the _i keys protect initiator → responder traffic.
        let (encr, integ) = match (inbound, child.we_initiated) {
            (false, true) | (true, false) => (&k.encr_i, &k.integ_i),
            _ => (&k.encr_r, &k.integ_r),
        };
        let (src, dst, spi, selector) = if inbound {
            (
                sa.peer.ip(),
                sa.local.ip(),
                child.spi_in,
                child.flow.reversed(),
            )
        } else {
            (sa.local.ip(), sa.peer.ip(), child.spi_out, child.flow)
        };
        let encap = sa.natt.then(|| {
            if inbound {
                UdpEncap {
                    src_port: sa.peer.port(),
                    dst_port: sa.local.port(),
                }
            } else {
                UdpEncap {
                    src_port: sa.local.port(),
                    dst_port: sa.peer.port(),
                }
            }
        });
        let seconds = policy.map_or(0, |p| p.child_lifetime_secs);
        let bytes = policy.map_or(0, |p| p.child_lifetime_bytes);
        Some(SaParams {
            id: SaId {
                src,
                dst,
                protocol: IpsecProtocol::Esp,
                spi,
            },
            mode: if child.transport {
                IpsecMode::Transport
            } else {
                IpsecMode::Tunnel
            },
            reqid: child.reqid,
            selector,
            encryption,
            encryption_key: KernelSecret::new(encr.expose().to_vec()),
            integrity,
            integrity_key: KernelSecret::new(integ.expose().to_vec()),
            // Our own timer rekeys at about 90%; the kernel's soft limit is
            // the fallback and the hard limit the end (§2.8).
            lifetime: Lifetime {
                soft_bytes: bytes.saturating_mul(9) / 10,
                hard_bytes: bytes,
                soft_seconds: seconds,
                hard_seconds: seconds.saturating_add(seconds / 10),
            },
            replay_window: REPLAY_WINDOW,
            esn: child.suite.esn,
            encap,
        })
    }

    fn install_child(&mut self, spi_in: u32) {
        let Some(child) = self.children.get(&spi_in) else {
            return;
        };
        let ike = child.ike;
        let (Some(inbound), Some(outbound)) =
            (self.sa_params(child, true), self.sa_params(child, false))
        else {
            return;
        };
        if let Some(child) = self.children.get_mut(&spi_in) {
            child.pending_sa_installs = 2;
        }
        self.ask_pfkey(ike, Wait::InstallSa { child: spi_in }, |id| {
            Ikev2ToPfkey::AddSa { id, sa: inbound }
        });
        self.ask_pfkey(ike, Wait::InstallSa { child: spi_in }, |id| {
            Ikev2ToPfkey::AddSa { id, sa: outbound }
        });
    }

    fn sa_install_done(
        &mut self,
        ike: u64,
        spi_in: u32,
        failure: Option<iked_common::kernel::KernelFailure>,
    ) {
        let policy_name = self
            .ikes
            .get(&ike)
            .map(|sa| sa.policy.clone())
            .unwrap_or_default();
        let Some(child) = self.children.get_mut(&spi_in) else {
            return;
        };
        child.pending_sa_installs = child.pending_sa_installs.saturating_sub(1);
        if let Some(failure) = failure {
            if !child.install_failed {
                let reason = if failure.kind == FailureKind::Unsupported {
                    format!("kernel has no ESP support ({})", failure.message)
                } else {
                    failure.message.clone()
                };
                log::error!(
                    "cannot install Child SA {:08x}/{:08x} of policy {policy_name}: {reason}; keeping the negotiated SA",
                    child.spi_in,
                    child.spi_out
                );
            }
            let refused = !child.install_failed && failure.kind == FailureKind::NotPermitted;
            child.install_failed = true;
            if refused {
                // pfkey refused it as outside every configured flow: the
                // peer must not think it is in use (architecture step 6).
                if let Some(sa) = self.ikes.get_mut(&ike) {
                    sa.queue
                        .push_back(Task::DeleteChildren { spis: vec![spi_in] });
                }
            }
            return;
        }
        if child.pending_sa_installs > 0 || child.install_failed {
            return;
        }
        child.installed = true;
        let Some(sa) = self.ikes.get(&ike) else {
            return;
        };
        let Some(child) = self.children.get(&spi_in) else {
            return;
        };
        // A policy already held by a live Child SA of the same flow (the SA
        // this one replaces, or a duplicate) stays as it is.
        let policies: Vec<PolicyParams> = policy_entries(sa, child)
            .into_iter()
            .filter(|p| {
                self.policy_owner
                    .get(&(p.selector, p.direction))
                    .is_none_or(|owner| !self.children.contains_key(owner))
            })
            .collect();
        for policy in policies {
            self.policy_owner
                .insert((policy.selector, policy.direction), spi_in);
            self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::AddPolicy {
                id,
                policy,
            });
        }
    }

    /// Gives back an inbound SPI allocated for a Child SA that was then
    /// refused: its larval SA would otherwise wait in the kernel (and in
    /// pfkey's count) until the kernel's acquire timeout.
    fn release_spi(&mut self, ike: u64, spi_in: u32) {
        let Some(sa) = self.ikes.get(&ike) else {
            return;
        };
        let larval = SaId {
            src: sa.peer.ip(),
            dst: sa.local.ip(),
            protocol: IpsecProtocol::Esp,
            spi: spi_in,
        };
        self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::DeleteSa {
            id,
            sa: larval,
        });
    }

    /// Removes a Child SA and its kernel entries.
    pub(crate) fn remove_child(&mut self, spi_in: u32) {
        let Some(child) = self.children.remove(&spi_in) else {
            return;
        };
        if let Some(count) = self.children_by_policy.get_mut(&child.policy) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.children_by_policy.remove(&child.policy);
            }
        }
        let ike = child.ike;
        if let Some(sa) = self.ikes.get_mut(&ike) {
            sa.children.retain(|c| *c != spi_in);
            log::info!(
                "policy {}: Child SA {:08x}/{:08x} deleted",
                sa.policy,
                child.spi_in,
                child.spi_out
            );
        }
        let Some(sa) = self.ikes.get(&ike) else {
            return;
        };
        let (local, peer) = (sa.local.ip(), sa.peer.ip());
        // Policies this child holds go to another live Child SA of the same
        // flow if there is one (rekey, duplicates), else out of the kernel.
        let mut policies = Vec::new();
        for policy in policy_entries(sa, &child) {
            let key = (policy.selector, policy.direction);
            if self.policy_owner.get(&key) != Some(&spi_in) {
                continue;
            }
            let heir = self.flow_children.get(&child.flow).and_then(|set| {
                set.iter()
                    .copied()
                    .find(|c| *c != spi_in && self.children.contains_key(c))
            });
            match heir {
                Some(heir) => {
                    self.policy_owner.insert(key, heir);
                }
                None => {
                    self.policy_owner.remove(&key);
                    policies.push(policy);
                }
            }
        }
        if let Some(set) = self.flow_children.get_mut(&child.flow) {
            set.remove(&spi_in);
            if set.is_empty() {
                self.flow_children.remove(&child.flow);
            }
        }
        if child.installed || child.pending_sa_installs > 0 {
            let ids = [
                SaId {
                    src: peer,
                    dst: local,
                    protocol: IpsecProtocol::Esp,
                    spi: child.spi_in,
                },
                SaId {
                    src: local,
                    dst: peer,
                    protocol: IpsecProtocol::Esp,
                    spi: child.spi_out,
                },
            ];
            for sa_id in ids {
                self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::DeleteSa {
                    id,
                    sa: sa_id,
                });
            }
        }
        for policy in policies {
            self.ask_pfkey(ike, Wait::Other, |id| Ikev2ToPfkey::DeletePolicy {
                id,
                selector: policy.selector,
                direction: policy.direction,
            });
        }
    }

    // ------------------------------------------------------------------
    // CREATE_CHILD_SA (RFC 7296 §1.3, §2.8)
    // ------------------------------------------------------------------

    fn send_create_child(&mut self, spi: u64, child_spi: u32) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(Prep::CreateChild {
            flow_index,
            rekey_of,
            ..
        }) = sa.prep.take()
        else {
            return;
        };
        let Some(policy) = self.policies.iter().find(|p| p.name == sa.policy).cloned() else {
            return;
        };
        let (flow, reqid) = match rekey_of.and_then(|old| self.children.get(&old)) {
            Some(old) => (old.flow, old.reqid),
            None => match policy.flows.get(flow_index) {
                Some(flow) => (*flow, 0),
                None => return,
            },
        };
        let hint = sa
            .child_ke_hint
            .filter(|m| proposals::offers_ke(&policy.child_proposals, *m));
        let reqid = if reqid == 0 {
            self.reqid_for(&policy.name, flow_index)
        } else {
            reqid
        };
        let pfs = hint.or_else(|| proposals::preferred_ke(&policy.child_proposals));
        let kex = match pfs {
            Some(method) => match self.new_key_exchange(method) {
                Ok(k) => Some(k),
                Err(e) => {
                    log::warn!("key exchange: {e}");
                    return;
                }
            },
            None => None,
        };
        let Ok(nonce) = self.random_bytes(NONCE_LEN) else {
            return;
        };
        let offered = proposals::offer(
            &policy.child_proposals,
            ProtocolId::Esp,
            &child_spi.to_be_bytes(),
            pfs,
            true,
        );
        let transport = policy.encapsulation == Encapsulation::Transport;
        let mut inner = Vec::new();
        if let Some(old) = rekey_of.and_then(|old| self.children.get(&old)) {
            // RFC 7296 §1.3.3: REKEY_SA names the SA by our inbound SPI.
            inner.push(Payload::Notify(Notify::for_child_sa(
                NotifyType::RekeySa,
                ProtocolId::Esp,
                old.spi_in,
                Vec::new(),
            )));
        }
        if transport {
            inner.push(Payload::Notify(Notify::new(
                NotifyType::UseTransportMode,
                Vec::new(),
            )));
        }
        inner.push(Payload::SecurityAssociation(offered.clone()));
        inner.push(Payload::Nonce(Nonce(nonce.clone())));
        if let (Some(method), Some(k)) = (pfs, &kex) {
            inner.push(Payload::KeyExchange(KePayload {
                group: DhId::from_value(method.iana_id()),
                data: k.public_value().to_vec(),
            }));
        }
        inner.push(Payload::TsInitiator(TrafficSelectors {
            selectors: vec![selectors::local_ts(&flow)],
        }));
        inner.push(Payload::TsResponder(TrafficSelectors {
            selectors: vec![selectors::remote_ts(&flow)],
        }));
        if let Some(old) = rekey_of.and_then(|old| self.children.get_mut(&old)) {
            old.state = ChildState::Rekeying;
        }
        let draft = ChildDraft {
            spi_in: child_spi,
            reqid,
            flow,
            flow_index,
            transport,
            nonce,
            kex,
            offered,
            rekey_of,
        };
        self.send_request(
            spi,
            ExchangeType::CreateChildSa,
            inner,
            RequestCtx::CreateChild { child: draft },
        );
        self.schedule(spi);
    }

    fn on_create_child_response(&mut self, spi: u64, inner: Vec<Payload>, draft: ChildDraft) {
        let rekey_of = draft.rekey_of;
        // RFC 7296 §1.3: INVALID_KE_PAYLOAD names the PFS group wanted;
        // retry once with it if our proposals allow it.
        let wanted = notify_in(&inner, NotifyType::InvalidKePayload)
            .and_then(|n| n.invalid_ke_group())
            .and_then(|g| iked_common::crypto::KeMethod::from_iana(g.value()));
        if let Some(method) = wanted {
            let offered = self
                .ikes
                .get(&spi)
                .and_then(|sa| self.policy(&sa.policy))
                .is_some_and(|p| proposals::offers_ke(&p.child_proposals, method));
            let already = draft.kex.as_ref().map(|k| k.method()) == Some(method);
            if offered && !already {
                log::info!(
                    "IKE SA {spi:016x}: peer wants PFS group {}, retrying",
                    method.iana_id()
                );
                let task = match rekey_of {
                    Some(old) => {
                        if let Some(child) = self.children.get_mut(&old) {
                            child.state = ChildState::Established;
                        }
                        Task::RekeyChild { spi_in: old }
                    }
                    None => Task::CreateChild {
                        flow_index: draft.flow_index,
                    },
                };
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    sa.child_ke_hint = Some(method);
                    sa.queue.push_front(task);
                }
                return;
            }
        }
        if let Some(error) = error_notify(&inner) {
            let policy = self
                .ikes
                .get(&spi)
                .map(|sa| sa.policy.clone())
                .unwrap_or_default();
            log::warn!("policy {policy}: CREATE_CHILD_SA refused: {error}");
            let peer_rekeyed = rekey_of
                .and_then(|old| self.children.get(&old))
                .is_some_and(|c| c.peer_rekey.is_some());
            match (rekey_of, error) {
                // The peer does not know the SA: it is gone there, so here too.
                (Some(old), NotifyType::ChildSaNotFound) => self.remove_child(old),
                // RFC 7296 §4: a rekey refused with NO_ADDITIONAL_SAS is
                // done as a delete of the old SA, then a new one.
                (Some(old), NotifyType::NoAdditionalSas) if !peer_rekeyed => {
                    let flow_index = self.children.get_mut(&old).map(|c| {
                        c.state = ChildState::Established;
                        c.flow_index
                    });
                    if let (Some(flow_index), Some(sa)) = (flow_index, self.ikes.get_mut(&spi)) {
                        sa.queue.push_back(Task::DeleteChildren { spis: vec![old] });
                        sa.queue.push_back(Task::CreateChild { flow_index });
                    }
                }
                (Some(old), _) => self.rekey_failed(spi, old),
                (None, _) => {}
            }
            return;
        }
        let Some(nr) = nonce_payload(&inner).cloned() else {
            return;
        };
        let shared = match (&draft.kex, ke_payload(&inner)) {
            (Some(kex), Some(ke)) if ke.group.value() == kex.method().iana_id() => {
                match kex.complete(&ke.data) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        log::warn!("IKE SA {spi:016x}: invalid PFS KE value");
                        return;
                    }
                }
            }
            (Some(_), _) => {
                log::warn!("IKE SA {spi:016x}: CREATE_CHILD_SA answer without our PFS group");
                return;
            }
            (None, _) => None,
        };
        let ni = draft.nonce.clone();
        let new_spi = self.complete_child_as_initiator(
            spi,
            draft,
            &inner,
            shared.as_ref().map(|s| s.expose()),
            &ni,
            &nr,
        );
        if let (Some(new_spi), Some(old)) = (new_spi, rekey_of) {
            self.child_rekeyed(spi, old, new_spi);
        } else if let (None, Some(old)) = (new_spi, rekey_of) {
            self.rekey_failed(spi, old);
        }
    }

    fn rekey_failed(&mut self, spi: u64, old: u32) {
        let retry = self.now + self.settings.rekey_retry;
        if let Some(child) = self.children.get_mut(&old) {
            if child.peer_rekey.is_some() {
                // The peer's rekey of the same SA succeeded: it survives, and
                // the peer deletes the old one (§2.8.1).
                child.state = ChildState::Rekeyed;
                // Deleted by the peer; if that never comes, by us (grace).
                child.rekey_at = Some(self.now + self.settings.rekeyed_grace);
            } else {
                child.state = ChildState::Established;
                child.rekey_at = Some(retry);
            }
        }
        self.schedule(spi);
    }

    /// Our rekey of `old` produced `new`. RFC 7296 §2.8.1: if the peer
    /// rekeyed `old` at the same time, the SA created with the lowest nonce
    /// is redundant and is deleted by whoever created it; the survivor's
    /// creator deletes the old SA.
    fn child_rekeyed(&mut self, spi: u64, old: u32, new: u32) {
        let Some(old_child) = self.children.get_mut(&old) else {
            return;
        };
        old_child.state = ChildState::Rekeyed;
        // Deleted by the peer; if that never comes, by us (grace).
        old_child.rekey_at = Some(self.now + self.settings.rekeyed_grace);
        let peer_new = old_child.peer_rekey;
        let ours_nonce = self.children.get(&new).map(|c| c.min_nonce.clone());
        let theirs_nonce = peer_new
            .and_then(|p| self.children.get(&p))
            .map(|c| c.min_nonce.clone());
        let to_delete = match (ours_nonce, theirs_nonce) {
            (Some(ours), Some(theirs)) if ours < theirs => {
                log::info!("Child SA rekey collision: ours ({new:08x}) has the lowest nonce and is redundant");
                new
            }
            (Some(_), Some(_)) => {
                log::info!("Child SA rekey collision: ours ({new:08x}) survives");
                old
            }
            _ => old,
        };
        if peer_new.is_some() {
            // Ours is the redundant one: the peer deletes the old SA. (The
            // flow's kernel policies pass to the survivor on removal.)
            if to_delete == new {
                if let Some(c) = self.children.get_mut(&new) {
                    c.state = ChildState::Rekeyed;
                    // Deleted by us right away (queued below).
                    c.rekey_at = Some(self.now + self.settings.rekeyed_grace);
                }
            }
        }
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.queue.push_back(Task::DeleteChildren {
                spis: vec![to_delete],
            });
        }
    }

    fn on_create_child_request(&mut self, spi: u64, message_id: u32, inner: Vec<Payload>) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        if sa.state != IkeState::Established && sa.state != IkeState::Rekeyed {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::TemporaryFailure,
            );
            return;
        }
        let Some(offer) = sa_payload(&inner) else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::InvalidSyntax,
            );
            return;
        };
        if offer
            .proposals
            .first()
            .is_some_and(|p| p.protocol == ProtocolId::Ike)
        {
            self.on_rekey_ike_request(spi, message_id, &inner);
            return;
        }
        if sa.state != IkeState::Established {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::TemporaryFailure,
            );
            return;
        }
        let Some(policy) = self.policy(&sa.policy).cloned() else {
            return;
        };
        let Some(peer_nonce) = nonce_payload(&inner).cloned() else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::InvalidSyntax,
            );
            return;
        };
        // REKEY_SA names the SA by the peer's inbound SPI: our outbound one.
        let rekey_of = match notify_in(&inner, NotifyType::RekeySa).and_then(|n| n.child_spi()) {
            Some(peer_spi) => {
                let found = sa
                    .children
                    .iter()
                    .copied()
                    .find(|c| self.children.get(c).is_some_and(|c| c.spi_out == peer_spi));
                match found {
                    Some(old) => {
                        // The peer asks again to rekey an SA it already
                        // rekeyed with us: it never saw our answer (the
                        // exchange died with its IKE SA), so the SA we made
                        // then is unknown to it. Drop that one, start over.
                        let orphan = self
                            .children
                            .get(&old)
                            .filter(|c| c.state == ChildState::Rekeyed)
                            .and_then(|c| c.peer_rekey)
                            .filter(|y| self.children.get(y).is_some_and(|y| !y.we_initiated));
                        if let Some(orphan) = orphan {
                            log::info!(
                                "Child SA {old:08x}: peer rekeys it again; dropping {orphan:08x}, which it never learned of"
                            );
                            self.remove_child(orphan);
                            if let Some(c) = self.children.get_mut(&old) {
                                c.state = ChildState::Established;
                                c.peer_rekey = None;
                                c.rekey_at = None;
                            }
                        }
                        let state = self.children.get(&old).map(|c| c.state);
                        if matches!(
                            state,
                            Some(ChildState::Rekeyed) | Some(ChildState::Deleting)
                        ) {
                            // §2.25: already rekeyed or being deleted by us.
                            self.answer_error(
                                spi,
                                ExchangeType::CreateChildSa,
                                message_id,
                                NotifyType::TemporaryFailure,
                            );
                            return;
                        }
                        Some(old)
                    }
                    None => {
                        let notify = Notify::for_child_sa(
                            NotifyType::ChildSaNotFound,
                            ProtocolId::Esp,
                            peer_spi,
                            Vec::new(),
                        );
                        self.send_response(
                            spi,
                            ExchangeType::CreateChildSa,
                            message_id,
                            vec![Payload::Notify(notify)],
                        );
                        return;
                    }
                }
            }
            None => None,
        };
        // RFC 7296 §1.3, §3.10.1: past the cap the peer gets
        // NO_ADDITIONAL_SAS; the IKE SA stays as it is.
        if let Some(why) = self.child_cap_reached(spi, rekey_of.is_some()) {
            log::warn!("IKE SA {spi:016x}: CREATE_CHILD_SA refused: {why}");
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::NoAdditionalSas,
            );
            return;
        }
        let Some((tsi, tsr)) = ts_payloads(&inner) else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::InvalidSyntax,
            );
            return;
        };
        let peer_ke = ke_payload(&inner);
        let Some((proposal, suite)) = proposals::select_child(&policy.child_proposals, offer, true)
        else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::NoProposalChosen,
            );
            return;
        };
        if let Some(group) = suite.ke {
            match peer_ke {
                Some(ke) if ke.group.value() == group.iana_id() => {}
                _ => {
                    let notify = Notify::new(
                        NotifyType::InvalidKePayload,
                        group.iana_id().to_be_bytes().to_vec(),
                    );
                    self.send_response(
                        spi,
                        ExchangeType::CreateChildSa,
                        message_id,
                        vec![Payload::Notify(notify)],
                    );
                    return;
                }
            }
        }
        let transport_requested = notify_in(&inner, NotifyType::UseTransportMode).is_some();
        let transport = policy.encapsulation == Encapsulation::Transport;
        if transport != transport_requested {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::NoProposalChosen,
            );
            return;
        }
        let narrowed = match rekey_of.and_then(|old| self.children.get(&old)) {
            // §2.8: a rekeyed SA keeps its selectors.
            Some(old) => Some((old.flow, old.flow_index)),
            None => selectors::narrow(&policy.flows, &tsi.selectors, &tsr.selectors),
        };
        let Some((flow, flow_index)) = narrowed else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::TsUnacceptable,
            );
            return;
        };
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let (peer, local) = (sa.peer.ip(), sa.local.ip());
        let reqid = match rekey_of.and_then(|old| self.children.get(&old)) {
            Some(old) => old.reqid,
            None => self.reqid_for(&policy.name, flow_index),
        };
        let peer_ke = suite.ke.and(peer_ke.map(|k| k.data.clone()));
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.answering = Some(Answer {
                message_id,
                kind: AnswerKind::Child(Box::new(ChildAnswer {
                    proposal,
                    suite,
                    flow,
                    flow_index,
                    transport,
                    peer_nonce,
                    peer_ke,
                    rekey_of,
                    reqid,
                })),
            });
        }
        self.ask_pfkey(spi, Wait::AnswerSpi, |id| Ikev2ToPfkey::AllocateSpi {
            id,
            src: peer,
            dst: local,
            protocol: IpsecProtocol::Esp,
            reqid,
            min: SPI_MIN,
            max: SPI_MAX,
        });
    }

    fn send_create_child_answer(&mut self, spi: u64, spi_in: u32) {
        let rekey = matches!(
            self.ikes.get(&spi).and_then(|sa| sa.answering.as_ref()),
            Some(Answer {
                kind: AnswerKind::Child(answer),
                ..
            }) if answer.rekey_of.is_some()
        );
        // Checked again: Child SAs may have come meanwhile (ours on this
        // IKE SA, or the policy's on others) while the SPI was allocated.
        let cap_reached = self.child_cap_reached(spi, rekey);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let Some(Answer {
            message_id,
            kind: AnswerKind::Child(answer),
        }) = sa.answering.take()
        else {
            return;
        };
        if let Some(why) = cap_reached {
            log::warn!("IKE SA {spi:016x}: CREATE_CHILD_SA refused: {why}");
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::NoAdditionalSas,
            );
            self.release_spi(spi, spi_in);
            return;
        }
        let Some(spi_out) = <[u8; 4]>::try_from(answer.proposal.spi.as_slice())
            .ok()
            .map(u32::from_be_bytes)
        else {
            return;
        };
        let (public, shared) = match (answer.suite.ke, &answer.peer_ke) {
            (Some(method), Some(data)) => match self.respond_key_exchange(method, data) {
                Ok((public, shared)) => (Some((method, public)), Some(shared)),
                Err(_) => {
                    self.answer_error(
                        spi,
                        ExchangeType::CreateChildSa,
                        message_id,
                        NotifyType::InvalidSyntax,
                    );
                    return;
                }
            },
            _ => (None, None),
        };
        let Ok(nonce) = self.random_bytes(NONCE_LEN) else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::TemporaryFailure,
            );
            return;
        };
        let mut proposal = answer.proposal.clone();
        proposal.spi = spi_in.to_be_bytes().to_vec();
        let mut inner = Vec::new();
        if answer.transport {
            inner.push(Payload::Notify(Notify::new(
                NotifyType::UseTransportMode,
                Vec::new(),
            )));
        }
        inner.push(Payload::SecurityAssociation(SecurityAssociation {
            proposals: vec![proposal],
        }));
        inner.push(Payload::Nonce(Nonce(nonce.clone())));
        if let Some((method, public)) = public {
            inner.push(Payload::KeyExchange(KePayload {
                group: DhId::from_value(method.iana_id()),
                data: public,
            }));
        }
        inner.push(Payload::TsInitiator(TrafficSelectors {
            selectors: vec![selectors::remote_ts(&answer.flow)],
        }));
        inner.push(Payload::TsResponder(TrafficSelectors {
            selectors: vec![selectors::local_ts(&answer.flow)],
        }));
        self.send_response(spi, ExchangeType::CreateChildSa, message_id, inner);
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(keys) = child_keys(
            sa,
            &answer.suite,
            shared.as_ref().map(|s| s.expose()),
            &answer.peer_nonce,
            &nonce,
        ) else {
            return;
        };
        self.add_child(
            spi,
            spi_in,
            spi_out,
            answer.reqid,
            answer.flow,
            answer.flow_index,
            answer.transport,
            answer.suite,
            keys,
            false,
            lower_nonce(&answer.peer_nonce, &nonce).to_vec(),
        );
        if let Some(old) = answer.rekey_of {
            if let Some(old_child) = self.children.get_mut(&old) {
                if old_child.state == ChildState::Rekeying {
                    // Collision: our own rekey of it is in flight (§2.8.1).
                    old_child.peer_rekey = Some(spi_in);
                } else {
                    // The peer rekeyed it and will delete the old SA.
                    old_child.state = ChildState::Rekeyed;
                    old_child.peer_rekey = Some(spi_in);
                    // Deleted by the peer; if that never comes, by us (grace).
                    old_child.rekey_at = Some(self.now + self.settings.rekeyed_grace);
                }
            }
        }
    }

    // ------------------------------------------------------------------
    // IKE SA rekey (RFC 7296 §2.18)
    // ------------------------------------------------------------------

    fn send_rekey_ike(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let Some(policy) = self.policy(&sa.policy).cloned() else {
            return;
        };
        let hint = sa
            .rekey_ke_hint
            .filter(|m| proposals::offers_ke(&policy.ike_proposals, *m));
        let Some(method) = hint
            .or(sa.suite.map(|s| s.ke))
            .or_else(|| proposals::preferred_ke(&policy.ike_proposals))
        else {
            return;
        };
        let Ok(kex) = self.new_key_exchange(method) else {
            return;
        };
        let (Ok(new_spi), Ok(nonce)) = (self.new_ike_spi(), self.random_bytes(NONCE_LEN)) else {
            let retry = self.now + self.settings.rekey_retry;
            if let Some(sa) = self.ikes.get_mut(&spi) {
                sa.rekey_at = Some(retry);
            }
            return;
        };
        let offered = proposals::offer(
            &policy.ike_proposals,
            ProtocolId::Ike,
            &new_spi.to_be_bytes(),
            Some(method),
            true,
        );
        let inner = vec![
            Payload::SecurityAssociation(offered.clone()),
            Payload::Nonce(Nonce(nonce.clone())),
            Payload::KeyExchange(KePayload {
                group: DhId::from_value(method.iana_id()),
                data: kex.public_value().to_vec(),
            }),
        ];
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.state = IkeState::Established;
            sa.rekey_at = None;
        }
        log::info!("IKE SA {spi:016x}: rekeying");
        self.send_request(
            spi,
            ExchangeType::CreateChildSa,
            inner,
            RequestCtx::RekeyIke {
                new_spi,
                nonce,
                kex,
                offered,
            },
        );
    }

    /// Builds the new IKE SA of a rekey; `we_initiate` is our role in the
    /// CREATE_CHILD_SA exchange, which becomes our role in the new SA.
    #[allow(clippy::too_many_arguments)]
    fn make_rekeyed_ike(
        &mut self,
        old: u64,
        our_spi: u64,
        peer_spi: u64,
        we_initiate: bool,
        suite: super::proposals::IkeSuite,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
    ) -> Option<u64> {
        let old_sa = self.ikes.get(&old)?;
        let old_suite = old_sa.suite?;
        let sk_d = old_sa.keys.as_ref()?.sk_d.clone();
        let transform = suite.sk_transform()?;
        let (spi_i, spi_r) = if we_initiate {
            (our_spi, peer_spi)
        } else {
            (peer_spi, our_spi)
        };
        // §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the old PRF.
        let seed = rekey_skeyseed(old_suite.prf, sk_d.expose(), &[shared], ni, nr).ok()?;
        trace_key("SKEYSEED", seed.expose());
        let keys = IkeSaKeys::derive(
            suite.prf,
            seed.expose(),
            ni,
            nr,
            &spi_i.to_be_bytes(),
            &spi_r.to_be_bytes(),
            transform,
        )
        .ok()?;
        trace_ike_keys(&keys);
        let (out_cipher, in_cipher) = keys.sk_ciphers(transform, we_initiate).ok()?;
        let lifetime = self
            .policy(&old_sa.policy)
            .map_or(0, |p| p.ike_lifetime_secs);
        let rekey_at = self.rekey_time(lifetime);
        let old_sa = self.ikes.get(&old)?;
        let sa = IkeSa {
            spi_i,
            spi_r,
            initiator: we_initiate,
            policy: old_sa.policy.clone(),
            local: old_sa.local,
            peer: old_sa.peer,
            state: IkeState::Established,
            suite: Some(suite),
            ni: ni.to_vec(),
            nr: nr.to_vec(),
            kex: None,
            ke_method: Some(suite.ke),
            offered: None,
            cookie: None,
            init_request: Vec::new(),
            accepted_ike: None,
            init_response: Vec::new(),
            keys: Some(keys),
            out_cipher: Some(out_cipher),
            in_cipher: Some(in_cipher),
            local_id: old_sa.local_id.clone(),
            peer_id: old_sa.peer_id.clone(),
            natt: old_sa.natt,
            nat_detected: old_sa.nat_detected,
            behind_nat: old_sa.behind_nat,
            next_message_id: 0,
            expected_message_id: 0,
            outstanding: None,
            prep: None,
            queue: VecDeque::new(),
            cached_response: None,
            answering: None,
            auth_check: None,
            children: Vec::new(),
            established: Some(self.now),
            rekey_at,
            delete_at: None,
            last_heard: self.now,
            last_sent: self.now,
            created: self.now,
            scheduled: None,
            first_flow: old_sa.first_flow,
            peer_rekey: None,
            half_open_key: None,
            half_open: false,
            half_open_cookie: false,
            successor: None,
            no_restart: false,
            child_ke_hint: None,
            rekey_ke_hint: None,
        };
        let policy = sa.policy.clone();
        self.ikes.insert(our_spi, sa);
        self.index_identity(our_spi);
        self.by_policy
            .entry(policy.clone())
            .or_default()
            .insert(our_spi);
        log::info!("policy {policy}: IKE SA rekeyed: {old:016x} -> {spi_i:016x}/{spi_r:016x}");
        Some(our_spi)
    }

    /// An IKE SA replaced by a rekey goes away with Child SA work still
    /// pending on it (a DELETE or rekey of children that moved on): that
    /// work continues on the successor, where the children are now.
    fn hand_over_child_work(&mut self, spi: u64) {
        let successor = self.current_ike(spi);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let mut tasks: Vec<Task> = sa
            .queue
            .drain(..)
            .filter(|t| {
                matches!(
                    t,
                    Task::DeleteChildren { .. }
                        | Task::RekeyChild { .. }
                        | Task::CreateChild { .. }
                )
            })
            .collect();
        let mut reset = Vec::new();
        match sa.outstanding.take().map(|o| o.ctx) {
            Some(RequestCtx::DeleteChildren { spis }) => {
                tasks.insert(0, Task::DeleteChildren { spis })
            }
            Some(RequestCtx::CreateChild { child }) => match child.rekey_of {
                Some(old) => {
                    reset.push(old);
                    tasks.push(Task::RekeyChild { spi_in: old });
                }
                None => tasks.push(Task::CreateChild {
                    flow_index: child.flow_index,
                }),
            },
            _ => {}
        }
        if successor == spi {
            // Nowhere to go: the children it still holds are removed with it.
            return;
        }
        for old in reset {
            if let Some(child) = self.children.get_mut(&old) {
                if child.state == ChildState::Rekeying {
                    child.state = ChildState::Established;
                }
            }
        }
        if let Some(next) = self.ikes.get_mut(&successor) {
            for task in tasks {
                if !next.queue.contains(&task) {
                    next.queue.push_back(task);
                }
            }
        }
        self.pump(successor);
        self.schedule(successor);
    }

    /// The reqid for a Child SA of a policy's flow: the trap's, so the
    /// trap policy finds its SAs, or a fresh one.
    fn reqid_for(&mut self, policy: &str, flow_index: usize) -> u32 {
        match self.traps.get(&(policy.to_string(), flow_index)) {
            Some(trap) => trap.reqid,
            None => self.new_reqid(),
        }
    }

    /// Installs the outbound trap policies of active policies and removes
    /// those of policies gone or changed (config load and reload). A trap
    /// needs both gateway addresses for its template; policies with a
    /// range for a peer are started by `set active` or ikectl only.
    pub(crate) fn sync_traps(&mut self) {
        let mut wanted: HashMap<(String, usize), PolicyParams> = HashMap::new();
        for policy in &self.policies {
            if policy.initiation != iked_common::config::PolicyInitiation::Active {
                continue;
            }
            let (Some(local), Some(peer)) = (policy.local, policy.peer) else {
                continue;
            };
            if !local.is_host() || !peer.is_host() {
                continue;
            }
            let mode = if policy.encapsulation == Encapsulation::Transport {
                IpsecMode::Transport
            } else {
                IpsecMode::Tunnel
            };
            for (index, flow) in policy.flows.iter().enumerate() {
                let specificity = u32::from(flow.src_prefix) + u32::from(flow.dst_prefix);
                wanted.insert(
                    (policy.name.clone(), index),
                    PolicyParams {
                        selector: *flow,
                        direction: PolicyDirection::Out,
                        priority: 2000u32.saturating_sub(specificity),
                        template: SaTemplate {
                            src: local.addr,
                            dst: peer.addr,
                            protocol: IpsecProtocol::Esp,
                            mode,
                            reqid: 0,
                        },
                    },
                );
            }
        }
        let stale: Vec<(String, usize)> = self
            .traps
            .iter()
            .filter(|(key, trap)| {
                wanted.get(*key).is_none_or(|w| {
                    w.selector != trap.policy.selector
                        || w.template.src != trap.policy.template.src
                        || w.template.dst != trap.policy.template.dst
                        || w.template.mode != trap.policy.template.mode
                })
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(trap) = self.traps.remove(&key) {
                let (selector, direction) = (trap.policy.selector, trap.policy.direction);
                self.ask_pfkey(0, Wait::Other, |id| Ikev2ToPfkey::DeletePolicy {
                    id,
                    selector,
                    direction,
                });
            }
        }
        let mut keys: Vec<(String, usize)> = wanted.keys().cloned().collect();
        keys.sort();
        for key in keys {
            if self.traps.contains_key(&key) {
                continue;
            }
            let Some(mut policy) = wanted.remove(&key) else {
                continue;
            };
            policy.template.reqid = self.new_reqid();
            log::debug!("policy {}: trap for {}", key.0, policy.selector);
            let install = policy;
            self.ask_pfkey(0, Wait::Other, |id| Ikev2ToPfkey::AddPolicy {
                id,
                policy: install,
            });
            self.traps.insert(
                key,
                super::Trap {
                    reqid: policy.template.reqid,
                    policy,
                },
            );
        }
    }

    /// The IKE SA and the ones that replaced it by rekeying (bounded chain).
    fn ike_family(&self, spi: u64) -> Vec<u64> {
        let mut family = vec![spi];
        let mut current = spi;
        for _ in 0..4 {
            match self.ikes.get(&current).and_then(|sa| sa.successor) {
                Some(next) if self.ikes.contains_key(&next) && !family.contains(&next) => {
                    family.push(next);
                    current = next;
                }
                _ => break,
            }
        }
        family
    }

    /// Where a Child SA negotiated on `spi` belongs: the newest IKE SA that
    /// replaced it, if it was rekeyed meanwhile (§2.8: children follow).
    fn current_ike(&self, spi: u64) -> u64 {
        self.ike_family(spi).last().copied().unwrap_or(spi)
    }

    fn move_children(&mut self, from: u64, to: u64) {
        let Some(old) = self.ikes.get_mut(&from) else {
            return;
        };
        let moved = std::mem::take(&mut old.children);
        old.successor = Some(to);
        for spi in &moved {
            if let Some(child) = self.children.get_mut(spi) {
                child.ike = to;
            }
        }
        if let Some(new) = self.ikes.get_mut(&to) {
            new.children.extend(moved);
        }
        self.schedule(to);
    }

    fn on_rekey_ike_request(&mut self, spi: u64, message_id: u32, inner: &[Payload]) {
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        if sa.state != IkeState::Established {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::TemporaryFailure,
            );
            return;
        }
        let Some(policy) = self.policy(&sa.policy).cloned() else {
            return;
        };
        let (Some(offer), Some(ni), Some(ke)) =
            (sa_payload(inner), nonce_payload(inner), ke_payload(inner))
        else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::InvalidSyntax,
            );
            return;
        };
        let Some((proposal, suite)) = proposals::select_ike(&policy.ike_proposals, offer) else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::NoProposalChosen,
            );
            return;
        };
        let Some(peer_spi) = <[u8; 8]>::try_from(proposal.spi.as_slice())
            .ok()
            .map(u64::from_be_bytes)
            .filter(|s| *s != 0)
        else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::InvalidSyntax,
            );
            return;
        };
        if ke.group.value() != suite.ke.iana_id() {
            let notify = Notify::new(
                NotifyType::InvalidKePayload,
                suite.ke.iana_id().to_be_bytes().to_vec(),
            );
            self.send_response(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                vec![Payload::Notify(notify)],
            );
            return;
        }
        let Ok((public, shared)) = self.respond_key_exchange(suite.ke, &ke.data) else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::InvalidSyntax,
            );
            return;
        };
        let (Ok(our_spi), Ok(nr)) = (self.new_ike_spi(), self.random_bytes(NONCE_LEN)) else {
            self.answer_error(
                spi,
                ExchangeType::CreateChildSa,
                message_id,
                NotifyType::TemporaryFailure,
            );
            return;
        };
        let ni = ni.clone();
        let mut answer = proposal.clone();
        answer.spi = our_spi.to_be_bytes().to_vec();
        let response = vec![
            Payload::SecurityAssociation(SecurityAssociation {
                proposals: vec![answer],
            }),
            Payload::Nonce(Nonce(nr.clone())),
            Payload::KeyExchange(KePayload {
                group: DhId::from_value(suite.ke.iana_id()),
                data: public,
            }),
        ];
        self.send_response(spi, ExchangeType::CreateChildSa, message_id, response);
        let Some(new) = self.make_rekeyed_ike(
            spi,
            our_spi,
            peer_spi,
            false,
            suite,
            shared.expose(),
            &ni,
            &nr,
        ) else {
            return;
        };
        let rekeying = self
            .ikes
            .get(&spi)
            .and_then(|sa| sa.outstanding.as_ref())
            .is_some_and(|o| matches!(o.ctx, RequestCtx::RekeyIke { .. }));
        if rekeying {
            // Collision (§2.8.1): decided when our own exchange completes.
            if let Some(sa) = self.ikes.get_mut(&spi) {
                sa.peer_rekey = Some((new, lower_nonce(&ni, &nr).to_vec()));
            }
        } else {
            self.move_children(spi, new);
            let grace = self.now + self.settings.rekeyed_grace;
            if let Some(sa) = self.ikes.get_mut(&spi) {
                sa.state = IkeState::Rekeyed;
                sa.rekey_at = None;
                // The peer deletes the old SA; if it does not, we do.
                sa.delete_at = Some(grace);
            }
        }
        self.schedule(new);
    }

    fn on_rekey_ike_response(
        &mut self,
        spi: u64,
        inner: Vec<Payload>,
        new_spi: u64,
        nonce: Vec<u8>,
        kex: KeyExchange,
        offered: SecurityAssociation,
    ) {
        // RFC 7296 §1.3: the responder may want another group; retry once.
        let wanted = notify_in(&inner, NotifyType::InvalidKePayload)
            .and_then(|n| n.invalid_ke_group())
            .and_then(|g| iked_common::crypto::KeMethod::from_iana(g.value()));
        if let Some(method) = wanted {
            let allowed = self
                .ikes
                .get(&spi)
                .and_then(|sa| self.policy(&sa.policy))
                .is_some_and(|p| proposals::offers_ke(&p.ike_proposals, method));
            let peer_rekeyed = self
                .ikes
                .get(&spi)
                .is_some_and(|sa| sa.peer_rekey.is_some());
            if allowed && method != kex.method() && !peer_rekeyed {
                log::info!(
                    "IKE SA {spi:016x}: peer wants KE group {} for the rekey, retrying",
                    method.iana_id()
                );
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    sa.rekey_ke_hint = Some(method);
                    sa.queue.push_front(Task::RekeyIke);
                }
                return;
            }
        }
        let peer_rekey = self.ikes.get_mut(&spi).and_then(|sa| sa.peer_rekey.take());
        let ours = (|| {
            if error_notify(&inner).is_some() {
                return None;
            }
            let answer = sa_payload(&inner)?;
            let accepted = proposals::accepted_matches(&offered, answer)?;
            let suite = proposals::ike_suite(&accepted)?;
            let peer_spi = <[u8; 8]>::try_from(accepted.spi.as_slice())
                .ok()
                .map(u64::from_be_bytes)?;
            let nr = nonce_payload(&inner)?.clone();
            let ke = ke_payload(&inner)?;
            if ke.group.value() != kex.method().iana_id() || suite.ke != kex.method() {
                return None;
            }
            let shared = kex.complete(&ke.data).ok()?;
            if self.ikes.contains_key(&new_spi) {
                return None;
            }
            let new = self.make_rekeyed_ike(
                spi,
                new_spi,
                peer_spi,
                true,
                suite,
                shared.expose(),
                &nonce,
                &nr,
            )?;
            Some((new, lower_nonce(&nonce, &nr).to_vec()))
        })();
        match (ours, peer_rekey) {
            (None, None) => {
                log::warn!("IKE SA {spi:016x}: rekey failed; retrying later");
                let retry = self.now + self.settings.rekey_retry;
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    sa.rekey_at = Some(retry);
                }
            }
            (None, Some((theirs, _))) => {
                // Only the peer's rekey worked: it deletes the old SA.
                self.move_children(spi, theirs);
                self.mark_rekeyed(spi);
            }
            (Some((new, _)), None) => {
                self.move_children(spi, new);
                self.mark_rekeyed(spi);
                self.request_delete_ike(spi);
            }
            (Some((new, our_nonce)), Some((theirs, their_nonce))) => {
                if our_nonce < their_nonce {
                    log::info!("IKE SA rekey collision: ours ({new:016x}) is redundant");
                    self.move_children(spi, theirs);
                    self.mark_rekeyed(spi);
                    self.request_delete_ike(new);
                } else {
                    log::info!("IKE SA rekey collision: ours ({new:016x}) survives");
                    self.move_children(spi, new);
                    self.mark_rekeyed(spi);
                    self.request_delete_ike(spi);
                    // The peer deletes its redundant SA; expire it if not.
                    let grace = self.now + self.settings.rekeyed_grace;
                    if let Some(sa) = self.ikes.get_mut(&theirs) {
                        sa.state = IkeState::Rekeyed;
                        sa.delete_at = Some(grace);
                    }
                    self.schedule(theirs);
                }
            }
        }
        self.schedule(spi);
    }

    fn mark_rekeyed(&mut self, spi: u64) {
        let grace = self.now + self.settings.rekeyed_grace;
        if let Some(sa) = self.ikes.get_mut(&spi) {
            sa.state = IkeState::Rekeyed;
            sa.rekey_at = None;
            sa.delete_at = Some(grace);
        }
    }

    // ------------------------------------------------------------------
    // INFORMATIONAL (RFC 7296 §1.4)
    // ------------------------------------------------------------------

    fn on_informational_request(&mut self, spi: u64, message_id: u32, inner: Vec<Payload>) {
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

    // ------------------------------------------------------------------
    // Deleting IKE SAs
    // ------------------------------------------------------------------

    /// Deletes an IKE SA with the peer (INFORMATIONAL DELETE) when it is
    /// established, else locally.
    pub(crate) fn request_delete_ike(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if sa.out_cipher.is_none() || matches!(sa.state, IkeState::InitSent | IkeState::InitDone) {
            self.delete_ike_local(spi, "terminated");
            return;
        }
        if sa.queue.contains(&Task::DeleteIke) || sa.state == IkeState::Deleting {
            return;
        }
        // Deletion goes before anything else queued.
        sa.queue.retain(|t| matches!(t, Task::DeleteIke));
        sa.queue.push_front(Task::DeleteIke);
        self.pump(spi);
        self.schedule(spi);
    }

    /// Daemon shutdown: one INFORMATIONAL DELETE per established IKE SA,
    /// sent once without waiting for answers (RFC 7296 §1.4.1), so peers do
    /// not wait for DPD. Kernel entries are flushed by pfkey-proc.
    pub fn shutdown(&mut self, now: std::time::Instant) {
        self.now = now;
        let spis: Vec<u64> = self
            .ikes
            .iter()
            .filter(|(_, sa)| matches!(sa.state, IkeState::Established | IkeState::Rekeyed))
            .map(|(spi, _)| *spi)
            .collect();
        for spi in spis {
            // The window may be busy: the DELETE then uses the next ID,
            // which a peer with window 1 may ignore; it is a courtesy.
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
        self.actions.retain(|a| matches!(a, Action::Send { .. }));
    }

    /// Forgets an IKE SA and its Child SAs (kernel entries removed).
    pub(crate) fn delete_ike_local(&mut self, spi: u64, reason: &str) {
        self.hand_over_child_work(spi);
        let Some(sa) = self.ikes.get(&spi) else {
            return;
        };
        let children = sa.children.clone();
        for child in children {
            self.remove_child(child);
        }
        let Some(sa) = self.ikes.remove(&spi) else {
            return;
        };
        if let Some(key) = sa.half_open_key {
            self.by_init.remove(&key);
        }
        if let Some(id) = &sa.peer_id {
            let key = (sa.policy.clone(), id.clone());
            if let Some(set) = self.by_identity.get_mut(&key) {
                set.remove(&spi);
                if set.is_empty() {
                    self.by_identity.remove(&key);
                }
            }
        }
        let mut sa = sa;
        self.uncount_half_open(super::HalfOpenRecord::take(&mut sa));
        if let Some(set) = self.by_policy.get_mut(&sa.policy) {
            set.remove(&spi);
            if set.is_empty() {
                self.by_policy.remove(&sa.policy);
            }
        }
        // Replies to its pending requests will still come: consume them quietly.
        for (ike, wait) in self.waits.values_mut() {
            if *ike == spi {
                *wait = Wait::Other;
            }
        }
        log::info!(
            "policy {}: IKE SA {:016x}/{:016x} with {} removed: {reason}",
            sa.policy,
            sa.spi_i,
            sa.spi_r,
            sa.peer
        );
        if !sa.no_restart {
            self.plan_restart(&sa.policy);
        }
    }

    fn abort_negotiation(&mut self, spi: u64, reason: &str) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if sa.state == IkeState::Established {
            // Only the exchange being prepared fails; the IKE SA stays.
            sa.prep = None;
            if let Some(answer) = sa.answering.take() {
                self.answer_error(
                    spi,
                    ExchangeType::CreateChildSa,
                    answer.message_id,
                    NotifyType::TemporaryFailure,
                );
            }
            return;
        }
        self.delete_ike_local(spi, reason);
    }

    // ------------------------------------------------------------------
    // Timers and the request queue
    // ------------------------------------------------------------------

    /// Handles whatever is due on one IKE SA.
    pub(crate) fn service(&mut self, spi: u64) {
        let now = self.now;
        let dpd = self.dpd_interval;
        let tries = self.settings.retransmit_tries;
        let base = self.settings.retransmit_base;
        let keepalive = self.settings.nat_keepalive;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if sa.delete_at.is_some_and(|t| t <= now) {
            let reason = if sa.state == IkeState::Rekeyed {
                "replaced by rekey"
            } else {
                "half-open timeout"
            };
            self.delete_ike_local(spi, reason);
            return;
        }
        if let Some(out) = sa.outstanding.as_mut() {
            if out.deadline <= now {
                if out.transmissions >= tries {
                    let what = match out.ctx {
                        RequestCtx::Dpd => "peer is dead (no answer to DPD)",
                        RequestCtx::DeleteIke => "no answer to DELETE",
                        _ => "no answer from peer",
                    };
                    log::warn!(
                        "policy {}: IKE SA {spi:016x} with {}: {what} after {} transmissions",
                        sa.policy,
                        sa.peer,
                        out.transmissions
                    );
                    self.delete_ike_local(spi, what);
                    return;
                }
                out.transmissions += 1;
                // RFC 7296 §2.1: exponential backoff.
                let factor = 1u32 << (out.transmissions - 1).min(16);
                out.deadline = now + base * factor;
                log::debug!(
                    "IKE SA {spi:016x}: retransmitting request {} (try {})",
                    out.message_id,
                    out.transmissions
                );
                self.actions.push_back(Action::Send {
                    local: sa.local,
                    remote: sa.peer,
                    datagram: out.datagram.clone(),
                });
            }
        }
        if sa.behind_nat && sa.natt && sa.last_sent + keepalive <= now {
            // RFC 3948 §2.3: keep our NAT mapping alive.
            sa.last_sent = now;
            self.actions.push_back(Action::NatKeepalive {
                local: sa.local,
                remote: sa.peer,
            });
        }
        if sa.state == IkeState::Established {
            if sa.rekey_at.is_some_and(|t| t <= now) {
                sa.rekey_at = None;
                if !sa.queue.contains(&Task::RekeyIke) {
                    sa.queue.push_back(Task::RekeyIke);
                }
            }
            if let Some(interval) = dpd {
                if sa.last_heard + interval <= now
                    && sa.outstanding.is_none()
                    && sa.queue.is_empty()
                    && sa.prep.is_none()
                {
                    sa.queue.push_back(Task::Dpd);
                    // Not again until this check is answered or fails.
                    sa.last_heard = now;
                }
            }
            let due: Vec<u32> = sa
                .children
                .iter()
                .copied()
                .filter(|c| {
                    self.children.get(c).is_some_and(|c| {
                        c.state == ChildState::Established && c.rekey_at.is_some_and(|t| t <= now)
                    })
                })
                .collect();
            // Replaced Child SAs the peer should have deleted by now.
            let stale: Vec<u32> = sa
                .children
                .iter()
                .copied()
                .filter(|c| {
                    self.children.get(c).is_some_and(|c| {
                        c.state == ChildState::Rekeyed && c.rekey_at.is_some_and(|t| t <= now)
                    })
                })
                .collect();
            if !stale.is_empty() {
                for child in &stale {
                    if let Some(c) = self.children.get_mut(child) {
                        c.rekey_at = None;
                    }
                }
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    sa.queue.push_back(Task::DeleteChildren { spis: stale });
                }
            }
            for child in due {
                if let Some(c) = self.children.get_mut(&child) {
                    c.rekey_at = None;
                }
                let task = Task::RekeyChild { spi_in: child };
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    if !sa.queue.contains(&task) {
                        sa.queue.push_back(task);
                    }
                }
            }
        }
        self.pump(spi);
        self.schedule(spi);
    }

    /// Starts the next queued request if the window is free.
    pub(crate) fn pump(&mut self, spi: u64) {
        loop {
            let Some(sa) = self.ikes.get_mut(&spi) else {
                return;
            };
            if sa.outstanding.is_some() || sa.prep.is_some() {
                return;
            }
            if !matches!(sa.state, IkeState::Established | IkeState::Rekeyed) {
                return;
            }
            let Some(task) = sa.queue.pop_front() else {
                return;
            };
            if sa.state == IkeState::Rekeyed
                && task != Task::DeleteIke
                && !matches!(task, Task::DeleteChildren { .. })
            {
                // Child work belongs to the IKE SA that replaced this one.
                let successor = sa.successor;
                if let (Some(next), Task::RekeyChild { .. } | Task::CreateChild { .. }) =
                    (successor, &task)
                {
                    if let Some(next_sa) = self.ikes.get_mut(&next) {
                        if !next_sa.queue.contains(&task) {
                            next_sa.queue.push_back(task);
                        }
                    }
                    self.pump(next);
                    self.schedule(next);
                }
                continue;
            }
            match task {
                Task::Dpd => {
                    self.send_request(
                        spi,
                        ExchangeType::Informational,
                        Vec::new(),
                        RequestCtx::Dpd,
                    );
                }
                Task::DeleteIke => {
                    sa.state = IkeState::Deleting;
                    log::info!("policy {}: deleting IKE SA {spi:016x}", sa.policy);
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
                Task::DeleteChildren { spis } => {
                    let present: Vec<u32> = spis
                        .into_iter()
                        .filter(|s| self.children.contains_key(s))
                        .collect();
                    if present.is_empty() {
                        continue;
                    }
                    for s in &present {
                        if let Some(c) = self.children.get_mut(s) {
                            c.state = ChildState::Deleting;
                        }
                    }
                    self.send_request(
                        spi,
                        ExchangeType::Informational,
                        vec![Payload::Delete(Delete {
                            protocol: ProtocolId::Esp,
                            spis: present.clone(),
                        })],
                        RequestCtx::DeleteChildren { spis: present },
                    );
                }
                Task::RekeyIke => self.send_rekey_ike(spi),
                Task::CreateChild { flow_index } => {
                    // Our own new Child SAs keep to the caps we impose.
                    if let Some(why) = self.child_cap_reached(spi, false) {
                        log::warn!("IKE SA {spi:016x}: not creating a Child SA for flow {flow_index}: {why}");
                        continue;
                    }
                    self.prepare_child(spi, flow_index, None);
                }
                Task::RekeyChild { spi_in } => {
                    let Some(child) = self.children.get(&spi_in) else {
                        continue;
                    };
                    if child.state != ChildState::Established {
                        continue;
                    }
                    let flow_index = child.flow_index;
                    self.prepare_child(spi, flow_index, Some(spi_in));
                }
            }
            return;
        }
    }

    fn prepare_child(&mut self, spi: u64, flow_index: usize, rekey_of: Option<u32>) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.prep = Some(Prep::CreateChild {
            flow_index,
            rekey_of,
        });
        let (peer, local) = (sa.peer.ip(), sa.local.ip());
        let reqid = rekey_of
            .and_then(|c| self.children.get(&c))
            .map_or(0, |c| c.reqid);
        self.ask_pfkey(spi, Wait::RequestSpi, |id| Ikev2ToPfkey::AllocateSpi {
            id,
            src: peer,
            dst: local,
            protocol: IpsecProtocol::Esp,
            reqid,
            min: SPI_MIN,
            max: SPI_MAX,
        });
    }

    // ------------------------------------------------------------------
    // Kernel events
    // ------------------------------------------------------------------

    fn on_kernel_event(&mut self, event: KernelEvent) {
        match event {
            KernelEvent::Acquire { selector, dst, .. } => self.on_acquire(selector, dst),
            KernelEvent::Expire { sa, hard, .. } => {
                // Children are keyed by inbound SPI: only the inbound SA's
                // EXPIRE (destination: our side of its IKE SA) is acted on;
                // the outbound SA expires at the same moment.
                let child = self.children.get(&sa.spi).and_then(|c| {
                    let ike = self.ikes.get(&c.ike)?;
                    (ike.local.ip() == sa.dst || ike.local.ip().is_unspecified()).then_some(sa.spi)
                });
                let Some(child) = child else {
                    log::debug!("EXPIRE for an SA we do not track by inbound SPI: {sa}");
                    return;
                };
                let Some(c) = self.children.get(&child) else {
                    return;
                };
                let ike = c.ike;
                if hard {
                    log::info!("Child SA {child:08x} reached its hard lifetime");
                    if let Some(s) = self.ikes.get_mut(&ike) {
                        s.queue
                            .push_back(Task::DeleteChildren { spis: vec![child] });
                    }
                } else if c.state == ChildState::Established {
                    let task = Task::RekeyChild { spi_in: child };
                    if let Some(s) = self.ikes.get_mut(&ike) {
                        if !s.queue.contains(&task) {
                            s.queue.push_back(task);
                        }
                    }
                }
                self.pump(ike);
                self.schedule(ike);
            }
            KernelEvent::PolicyExpire { .. } => {}
        }
    }

    fn on_acquire(&mut self, selector: Selector, dst: IpAddr) {
        let found = self.policies.iter().find_map(|p| {
            if p.initiation != iked_common::config::PolicyInitiation::Active {
                return None;
            }
            p.flows
                .iter()
                .position(|f| f.contains(&selector))
                .map(|index| (p.name.clone(), index))
        });
        let Some((name, flow_index)) = found else {
            log::debug!("ACQUIRE for {selector}: no active policy covers it");
            return;
        };
        let existing: Vec<u64> = self
            .by_policy
            .get(&name)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for spi in &existing {
            let Some(sa) = self.ikes.get(spi) else {
                continue;
            };
            if sa.state == IkeState::Established {
                let have = sa.children.iter().any(|c| {
                    self.children
                        .get(c)
                        .is_some_and(|c| c.flow_index == flow_index)
                });
                let task = Task::CreateChild { flow_index };
                if !have && !sa.queue.contains(&task) {
                    if let Some(sa) = self.ikes.get_mut(spi) {
                        sa.queue.push_back(task);
                    }
                    self.pump(*spi);
                    self.schedule(*spi);
                }
                return;
            }
            if !matches!(sa.state, IkeState::Rekeyed | IkeState::Deleting) {
                return; // negotiating already
            }
        }
        let peer = self
            .policy(&name)
            .and_then(|p| p.peer)
            .filter(|p| p.is_host())
            .map(|p| p.addr)
            .unwrap_or(dst);
        log::info!("ACQUIRE for {selector}: starting policy {name}");
        if let Err(e) = self.initiate(&name, Some(peer), flow_index) {
            log::warn!("policy {name}: cannot initiate: {e}");
        }
    }
}

fn answer_peer_spi(answer: &AuthAnswer) -> Option<u32> {
    let (proposal, ..) = answer.child.as_ref()?.as_ref().ok()?;
    <[u8; 4]>::try_from(proposal.spi.as_slice())
        .ok()
        .map(u32::from_be_bytes)
}

/// The kernel policies of a Child SA: out, in, and fwd in tunnel mode
/// (RFC 4301 §4.4.1; Linux needs fwd for forwarded traffic).
fn policy_entries(sa: &IkeSa, child: &ChildSa) -> Vec<PolicyParams> {
    let mode = if child.transport {
        IpsecMode::Transport
    } else {
        IpsecMode::Tunnel
    };
    let (local, peer) = (sa.local.ip(), sa.peer.ip());
    let specificity = u32::from(child.flow.src_prefix) + u32::from(child.flow.dst_prefix);
    let priority = 2000u32.saturating_sub(specificity);
    let out = PolicyParams {
        selector: child.flow,
        direction: PolicyDirection::Out,
        priority,
        template: SaTemplate {
            src: local,
            dst: peer,
            protocol: IpsecProtocol::Esp,
            mode,
            reqid: child.reqid,
        },
    };
    let inbound_template = SaTemplate {
        src: peer,
        dst: local,
        protocol: IpsecProtocol::Esp,
        mode,
        reqid: child.reqid,
    };
    let mut list = Vec::new();
    if !child.trap_out {
        list.push(out);
    }
    list.extend([PolicyParams {
        selector: child.flow.reversed(),
        direction: PolicyDirection::In,
        priority,
        template: inbound_template,
    }]);
    if !child.transport {
        list.push(PolicyParams {
            selector: child.flow.reversed(),
            direction: PolicyDirection::Fwd,
            priority,
            template: inbound_template,
        });
    }
    list
}
