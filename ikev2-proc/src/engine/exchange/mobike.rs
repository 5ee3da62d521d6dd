//! MOBIKE (RFC 4555), both roles: MOBIKE_SUPPORTED in IKE_AUTH (§3.2),
//! the peer's ADDITIONAL_*_ADDRESS (§3.4, §3.6), UPDATE_SA_ADDRESSES with
//! NAT detection (§3.5), COOKIE2 and the return-routability check (§3.7).
//!
//! Roles follow RFC 4555: the original initiator of the IKE SA (kept
//! across IKE SA rekeys) decides which addresses are used and sends
//! UPDATE_SA_ADDRESSES; the responder follows it.
//!
//! How strict the responder is (§3.7, §5.2): a peer address not yet
//! proven on this IKE SA (its IKE_SA_INIT address and the addresses of
//! earlier checks are) gets a return-routability check, an INFORMATIONAL
//! with a fresh COOKIE2 sent to it, before any Child SA moves; IKE
//! messages go to the new address meanwhile. A change of port only (a
//! NAT's new mapping for the same address) needs none. So an
//! authenticated but hostile peer cannot turn our ESP onto a third
//! party's address (§5.3) without that party answering with our cookie,
//! which needs the IKE SA's keys. The initiator moves its Child SAs when
//! the authenticated answer to its UPDATE_SA_ADDRESSES, with its COOKIE2,
//! comes back: that answer is its check of the responder's address.

use std::net::{IpAddr, SocketAddr};

use iked_common::ipc::Ikev2ToPfkey;
use iked_common::wire::{ExchangeType, Notify, NotifyType, Payload};

use crate::engine::migration::{path_acceptable, Path};
use crate::engine::nat::nat_hash;
use crate::engine::state::*;
use crate::engine::Engine;

/// Peer addresses from ADDITIONAL_*_ADDRESS kept per IKE SA.
const MAX_ADDITIONAL_ADDRESSES: usize = 16;

/// Peer addresses proven by return-routability checks kept per IKE SA.
const MAX_VERIFIED_ADDRESSES: usize = 8;

/// After this many transmissions of a request a MOBIKE initiator checks
/// whether its source address changed (RFC 4555 §3.5): the second is 2 s
/// after the first with the default settings.
const SOURCE_CHECK_AFTER: u32 = 2;

/// Octets of our COOKIE2 (RFC 4555 §4.2.5: 8 to 64, unpredictable).
const COOKIE2_LEN: usize = 16;

/// An IKE SA's MOBIKE state.
#[derive(Debug, Default, Clone)]
pub(crate) struct Mobike {
    /// We sent MOBIKE_SUPPORTED in IKE_AUTH.
    pub announced: bool,
    /// The peer sent MOBIKE_SUPPORTED in IKE_AUTH.
    pub peer_supports: bool,
    /// We initiated the IKE SA (or the one it rekeyed): the side that
    /// sends UPDATE_SA_ADDRESSES (RFC 4555 §3.5).
    pub original_initiator: bool,
    /// The peer's other addresses (§3.4), replaced by each INFORMATIONAL
    /// that names them (§3.6); empty after NO_ADDITIONAL_ADDRESSES.
    pub peer_additional: Vec<IpAddr>,
    /// The path IKE messages use while an address update is in progress
    /// (ours sent, or the peer's being checked); the Child SAs move to it
    /// when it completes.
    pub pending: Option<Path>,
    /// The path of the peer's request being answered, when it is not the
    /// IKE SA's: the response goes there (RFC 7296 §2.11).
    pub request_path: Option<(SocketAddr, SocketAddr)>,
    /// Peer addresses proven to reach the peer on this IKE SA.
    pub verified: Vec<IpAddr>,
    /// A source address lookup is out ([`Engine::mobike_check_source`]).
    pub looking_up_source: bool,
    /// Child SAs being moved by pfkey (MOBIKE or a NAT mapping change),
    /// by inbound SPI: what they held before, to clean up if pfkey fails.
    pub migrating: std::collections::HashMap<u32, iked_common::kernel::Migration>,
}

impl Mobike {
    /// Both sides announced MOBIKE_SUPPORTED.
    pub(crate) fn negotiated(&self) -> bool {
        self.announced && self.peer_supports
    }

    /// What a rekeyed IKE SA takes over (§2.18 keeps the SA's properties):
    /// the negotiation, the roles, the addresses; nothing in progress.
    pub(crate) fn inherited(&self) -> Mobike {
        Mobike {
            pending: None,
            request_path: None,
            looking_up_source: false,
            migrating: Default::default(),
            ..self.clone()
        }
    }
}

/// Work queued on an IKE SA (window 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MobikeTask {
    /// Initiator: send UPDATE_SA_ADDRESSES from the pending path.
    UpdateAddresses,
    /// Responder: check that the peer's new address reaches it.
    CheckReturnRoutability,
}

/// Our MOBIKE request in flight, to check its answer.
#[derive(Debug, Clone)]
pub(crate) enum MobikeRequest {
    Update { cookie: Vec<u8>, path: Path },
    Check { cookie: Vec<u8>, path: Path },
}

/// Whether an INFORMATIONAL request is MOBIKE's (an address update, a
/// return-routability check, NAT detection, address lists), not a
/// DELETE, an AUTHENTICATION_FAILED or a plain liveness check.
pub(in crate::engine) fn is_mobike_request(inner: &[Payload]) -> bool {
    let mut mobike = false;
    for payload in inner {
        match payload {
            Payload::Delete(_) => return false,
            Payload::Notify(n) if n.notify_type == NotifyType::AuthenticationFailed => {
                return false
            }
            Payload::Notify(n) => {
                mobike |= matches!(
                    n.notify_type,
                    NotifyType::UpdateSaAddresses
                        | NotifyType::Cookie2
                        | NotifyType::AdditionalIp4Address
                        | NotifyType::AdditionalIp6Address
                        | NotifyType::NoAdditionalAddresses
                        | NotifyType::NatDetectionSourceIp
                        | NotifyType::NatDetectionDestinationIp
                        | NotifyType::NoNatsAllowed
                )
            }
            _ => {}
        }
    }
    mobike
}

fn notify_data(inner: &[Payload], notify_type: NotifyType) -> Option<&[u8]> {
    inner.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == notify_type => Some(n.data.as_slice()),
        _ => None,
    })
}

fn has_notify(inner: &[Payload], notify_type: NotifyType) -> bool {
    notify_data(inner, notify_type).is_some()
}

/// What the NAT_DETECTION_*_IP notifies of a message say about the path
/// it took (RFC 7296 §2.23, RFC 4555 §3.5): None when it has none.
/// `sender` and `receiver` as the receiver of the message sees them.
/// Returns (NAT detected, the receiver is behind it).
fn nat_on_path(
    inner: &[Payload],
    spis: (u64, u64),
    sender: SocketAddr,
    receiver: SocketAddr,
) -> Option<(bool, bool)> {
    let (spi_i, spi_r) = spis;
    let hashes = |t: NotifyType| {
        inner
            .iter()
            .filter_map(move |p| match p {
                Payload::Notify(n) if n.notify_type == t => Some(n.data.as_slice()),
                _ => None,
            })
            .take(16)
    };
    let source_seen = nat_hash(spi_i, spi_r, sender);
    let destination_seen = nat_hash(spi_i, spi_r, receiver);
    let mut sources = hashes(NotifyType::NatDetectionSourceIp).peekable();
    let mut destinations = hashes(NotifyType::NatDetectionDestinationIp).peekable();
    if sources.peek().is_none() || destinations.peek().is_none() {
        return None;
    }
    let sender_behind = !sources.any(|h| h == source_seen.as_slice());
    let receiver_behind = !destinations.any(|h| h == destination_seen.as_slice());
    Some((sender_behind || receiver_behind, receiver_behind))
}

/// The peer's ADDITIONAL_*_ADDRESS notifies (RFC 4555 §4.2.2): Some when
/// the message speaks of its addresses at all.
fn additional_addresses(inner: &[Payload]) -> Option<Vec<IpAddr>> {
    let mut named = has_notify(inner, NotifyType::NoAdditionalAddresses);
    let mut addresses = Vec::new();
    for payload in inner {
        let Payload::Notify(n) = payload else {
            continue;
        };
        let address = match n.notify_type {
            NotifyType::AdditionalIp4Address => <[u8; 4]>::try_from(n.data.as_slice())
                .ok()
                .map(IpAddr::from),
            NotifyType::AdditionalIp6Address => <[u8; 16]>::try_from(n.data.as_slice())
                .ok()
                .map(IpAddr::from),
            _ => continue,
        };
        named = true;
        if let Some(address) = address {
            if addresses.len() < MAX_ADDITIONAL_ADDRESSES && !addresses.contains(&address) {
                addresses.push(address);
            }
        }
    }
    named.then_some(addresses)
}

impl Engine {
    /// N(MOBIKE_SUPPORTED) for our IKE_AUTH message when `set mobike`: the
    /// initiator offers it, the responder answers it only to a peer that
    /// offered it (RFC 4555 §3.2). Recorded as announced.
    pub(in crate::engine) fn mobike_announcement(&mut self, spi: u64) -> Option<Payload> {
        let enabled = self.settings.mobike;
        let sa = self.ikes.get_mut(&spi)?;
        sa.mobike.original_initiator = sa.initiator;
        let announce = enabled && (sa.initiator || sa.mobike.peer_supports);
        sa.mobike.announced = announce;
        announce.then(|| Payload::Notify(Notify::new(NotifyType::MobikeSupported, Vec::new())))
    }

    /// The peer's MOBIKE notifies in its IKE_AUTH message (§3.2, §3.4):
    /// recorded, nothing else done yet.
    pub(in crate::engine) fn note_peer_mobike(&mut self, spi: u64, inner: &[Payload]) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if has_notify(inner, NotifyType::MobikeSupported) {
            sa.mobike.peer_supports = true;
        }
        if let Some(addresses) = additional_addresses(inner) {
            sa.mobike.peer_additional = addresses;
        }
    }

    /// Our address `gone` went away (or is not to be used any more) and
    /// `replacement` is the one to use instead: each IKE SA that we
    /// initiated with MOBIKE and that uses `gone` sends UPDATE_SA_ADDRESSES
    /// from `replacement` (RFC 4555 §3.5) and moves its Child SAs when the
    /// peer answers. Others are left to DPD and retransmission. Returns
    /// how many IKE SAs move.
    pub(in crate::engine) fn move_local_address(
        &mut self,
        gone: IpAddr,
        replacement: IpAddr,
    ) -> usize {
        if gone == replacement || gone.is_ipv4() != replacement.is_ipv4() {
            return 0;
        }
        let mut moving = Vec::new();
        let policies = &self.policies;
        // SPI order, not the map's (random) order: the same log lines and
        // requests every run. O(n log n) on an address loss, a rare event.
        let mut spis: Vec<u64> = self.ikes.keys().copied().collect();
        spis.sort_unstable();
        for spi in &spis {
            let Some(sa) = self.ikes.get_mut(spi) else {
                continue;
            };
            if sa.state != IkeState::Established || sa.ike_path().0.ip() != gone {
                continue;
            }
            let admitted = policies
                .iter()
                .find(|p| p.name == sa.policy)
                .is_some_and(|p| path_acceptable(p, SocketAddr::new(replacement, 0), sa.peer));
            if !admitted {
                log::warn!(
                    "policy {}: IKE SA {spi:016x}: our address {gone} is gone; {replacement} is outside the policy's local addresses (left to DPD)",
                    sa.policy
                );
                continue;
            }
            if !sa.mobike.negotiated() || !sa.mobike.original_initiator {
                log::info!(
                    "policy {}: IKE SA {spi:016x}: our address {gone} is gone; {} (left to DPD)",
                    sa.policy,
                    if sa.mobike.negotiated() {
                        "the peer initiated it and decides its addresses (RFC 4555 §3.5)"
                    } else {
                        "no MOBIKE on it"
                    }
                );
                continue;
            }
            let (local, peer) = sa.ike_path();
            let kernel = sa.kernel_path();
            sa.mobike.pending = Some(Path {
                local: SocketAddr::new(replacement, local.port()),
                peer,
                ..kernel
            });
            let task = Task::Mobike(MobikeTask::UpdateAddresses);
            if !sa.queue.contains(&task) {
                sa.queue.push_back(task);
            }
            log::info!(
                "policy {}: IKE SA {spi:016x}: our address {gone} is gone, moving to {replacement} (MOBIKE)",
                sa.policy
            );
            moving.push(*spi);
        }
        for spi in &moving {
            self.pump(*spi);
            self.schedule(*spi);
        }
        moving.len()
    }

    /// RFC 4555 §3.5: a request retransmitted several times without an
    /// answer suggests the path is gone. A MOBIKE initiator then asks
    /// pfkey which source address the kernel would use towards the peer
    /// now; if it is another than ours, the IKE SA moves there. (No
    /// address events reach ikev2: this is how it learns that its address
    /// went, one retransmission after it did.)
    pub(in crate::engine) fn mobike_check_source(&mut self, spi: u64, transmissions: u32) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if transmissions < SOURCE_CHECK_AFTER
            || sa.state != IkeState::Established
            || !sa.mobike.negotiated()
            || !sa.mobike.original_initiator
            || sa.mobike.looking_up_source
        {
            return;
        }
        sa.mobike.looking_up_source = true;
        let peer = sa.ike_path().1.ip();
        self.ask_pfkey(spi, Wait::MobikeSource, |id| Ikev2ToPfkey::LookupSource {
            id,
            peer,
        });
    }

    /// pfkey's answer to [`Engine::mobike_check_source`].
    pub(in crate::engine) fn mobike_source_found(&mut self, spi: u64, source: Option<IpAddr>) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.mobike.looking_up_source = false;
        let ours = sa.ike_path().0.ip();
        match source {
            Some(source) if source != ours && !source.is_unspecified() => {
                log::info!(
                    "policy {}: IKE SA {spi:016x}: requests unanswered and the route to the peer now leaves from {source}, not {ours}",
                    sa.policy
                );
                self.move_local_address(ours, source);
            }
            _ => {}
        }
    }

    /// A queued MOBIKE request: sent, or false when nothing is left to do.
    pub(in crate::engine) fn start_mobike_task(&mut self, spi: u64, task: MobikeTask) -> bool {
        let Some(path) = self.ikes.get(&spi).and_then(|sa| sa.mobike.pending) else {
            return false;
        };
        let mut cookie = vec![0u8; COOKIE2_LEN];
        if let Err(e) = self.rng.fill(&mut cookie) {
            log::warn!("IKE SA {spi:016x}: no COOKIE2 (random source failed: {e}); MOBIKE request not sent");
            return false;
        }
        let cookie2 = Payload::Notify(Notify::new(NotifyType::Cookie2, cookie.clone()));
        let (payloads, ctx) = match task {
            MobikeTask::UpdateAddresses => {
                let Some(sa) = self.ikes.get(&spi) else {
                    return false;
                };
                let spis = (sa.spi_i, sa.spi_r);
                (
                    vec![
                        Payload::Notify(Notify::new(NotifyType::UpdateSaAddresses, Vec::new())),
                        Payload::Notify(Notify::new(
                            NotifyType::NatDetectionSourceIp,
                            nat_hash(spis.0, spis.1, path.local),
                        )),
                        Payload::Notify(Notify::new(
                            NotifyType::NatDetectionDestinationIp,
                            nat_hash(spis.0, spis.1, path.peer),
                        )),
                        cookie2,
                    ],
                    MobikeRequest::Update { cookie, path },
                )
            }
            MobikeTask::CheckReturnRoutability => {
                (vec![cookie2], MobikeRequest::Check { cookie, path })
            }
        };
        self.send_request(
            spi,
            ExchangeType::Informational,
            payloads,
            RequestCtx::Mobike(ctx),
        );
        true
    }

    /// The answer to our UPDATE_SA_ADDRESSES or return-routability check.
    pub(in crate::engine) fn on_mobike_response(
        &mut self,
        spi: u64,
        remote: SocketAddr,
        inner: Vec<Payload>,
        request: MobikeRequest,
    ) {
        let (cookie, path) = match &request {
            MobikeRequest::Update { cookie, path } | MobikeRequest::Check { cookie, path } => {
                (cookie, *path)
            }
        };
        // RFC 4555 §3.7: a COOKIE2 not echoed as sent closes the IKE SA.
        if notify_data(&inner, NotifyType::Cookie2) != Some(cookie.as_slice()) {
            if let Some(sa) = self.ikes.get(&spi) {
                log::warn!(
                    "policy {}: IKE SA {spi:016x}: the peer's answer does not echo our COOKIE2 (RFC 4555 §3.7): closing the IKE SA",
                    sa.policy
                );
            }
            self.delete_ike_local(spi, "COOKIE2 not echoed");
            return;
        }
        let forced = self
            .ikes
            .get(&spi)
            .and_then(|sa| self.policy(&sa.policy))
            .is_some_and(|p| p.force_natt);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if sa.mobike.pending != Some(path) {
            log::debug!("IKE SA {spi:016x}: answer to a superseded MOBIKE request, ignored");
            return;
        }
        let policy = sa.policy.clone();
        match request {
            MobikeRequest::Update { .. } => {
                if has_notify(&inner, NotifyType::UnacceptableAddresses) {
                    log::warn!(
                        "policy {policy}: IKE SA {spi:016x}: the peer refused our new addresses {} -> {} (UNACCEPTABLE_ADDRESSES)",
                        path.local,
                        path.peer
                    );
                    sa.mobike.pending = None;
                    return;
                }
                let mut to = path;
                // The responder hashed itself as source, us as destination.
                if let Some((detected, behind)) =
                    nat_on_path(&inner, (sa.spi_i, sa.spi_r), path.peer, path.local)
                {
                    to.nat_detected = detected;
                    to.behind_nat = behind;
                    to.natt = detected || forced;
                }
                remember_verified(sa, path.peer.ip());
                self.migrate_ike_sa(spi, to, "MOBIKE UPDATE_SA_ADDRESSES answered");
            }
            MobikeRequest::Check { .. } => {
                if remote != path.peer {
                    // RFC 4555 §3.7: an answer from elsewhere proves nothing
                    // about the address checked.
                    log::info!(
                        "IKE SA {spi:016x}: return-routability answer from {remote}, not {}: checking again",
                        path.peer
                    );
                    let task = Task::Mobike(MobikeTask::CheckReturnRoutability);
                    if !sa.queue.contains(&task) {
                        sa.queue.push_back(task);
                    }
                    return;
                }
                remember_verified(sa, path.peer.ip());
                self.migrate_ike_sa(spi, path, "MOBIKE, return routability checked");
            }
        }
    }

    /// A peer's MOBIKE INFORMATIONAL request ([`is_mobike_request`]):
    /// its address lists recorded, NAT detection and COOKIE2 answered
    /// (RFC 4555 §3.8, §3.7), and UPDATE_SA_ADDRESSES acted on (§3.5).
    pub(in crate::engine) fn on_mobike_request(
        &mut self,
        spi: u64,
        message_id: u32,
        inner: Vec<Payload>,
    ) {
        let enabled = self.settings.mobike;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let (local, remote) = sa.mobike.request_path.unwrap_or_else(|| sa.ike_path());
        let spis = (sa.spi_i, sa.spi_r);
        let policy_name = sa.policy.clone();
        // RFC 4555 §3.9: a peer without NAT-T protects the addresses it
        // sent from; a path that changed them gets UNEXPECTED_NAT_DETECTED
        // and nothing of the request is used.
        if let Some(sent) = notify_data(&inner, NotifyType::NoNatsAllowed) {
            if sent != no_nats_allowed(remote, local).as_slice() {
                log::warn!(
                    "policy {policy_name}: IKE SA {spi:016x}: the peer forbids NATs but its request from {remote} to {local} was translated on the way: UNEXPECTED_NAT_DETECTED (RFC 4555 §3.9)"
                );
                let response = vec![Payload::Notify(Notify::new(
                    NotifyType::UnexpectedNatDetected,
                    Vec::new(),
                ))];
                self.send_response(spi, ExchangeType::Informational, message_id, response);
                return;
            }
        }
        if let Some(addresses) = additional_addresses(&inner) {
            sa.mobike.peer_additional = addresses;
        }
        let nat = nat_on_path(&inner, spis, remote, local);
        let mut response = Vec::new();
        if nat.is_some() {
            response.push(Payload::Notify(Notify::new(
                NotifyType::NatDetectionSourceIp,
                nat_hash(spis.0, spis.1, local),
            )));
            response.push(Payload::Notify(Notify::new(
                NotifyType::NatDetectionDestinationIp,
                nat_hash(spis.0, spis.1, remote),
            )));
        }
        // §4.2.5: the recipient MUST copy it as is.
        if let Some(cookie) = notify_data(&inner, NotifyType::Cookie2) {
            response.push(Payload::Notify(Notify::new(
                NotifyType::Cookie2,
                cookie.to_vec(),
            )));
        }
        if !has_notify(&inner, NotifyType::UpdateSaAddresses) {
            self.send_response(spi, ExchangeType::Informational, message_id, response);
            return;
        }
        let refusal = if !enabled || !sa.mobike.negotiated() {
            Some(if enabled {
                "the peer did not announce MOBIKE_SUPPORTED"
            } else {
                "set nomobike"
            })
        } else if sa.mobike.original_initiator {
            Some("we initiated the IKE SA: the responder does not choose its addresses (RFC 4555 §3.5)")
        } else if sa.state != IkeState::Established {
            Some("the IKE SA is not established (rekeyed or being deleted)")
        } else {
            None
        };
        if let Some(why) = refusal {
            log::info!(
                "policy {policy_name}: IKE SA {spi:016x}: UPDATE_SA_ADDRESSES from {remote} ignored: {why}"
            );
            self.send_response(spi, ExchangeType::Informational, message_id, response);
            return;
        }
        let policy = self.policy(&policy_name).cloned();
        if !policy
            .as_ref()
            .is_some_and(|p| path_acceptable(p, local, remote))
        {
            log::warn!(
                "policy {policy_name}: IKE SA {spi:016x}: UPDATE_SA_ADDRESSES to {local} -> {remote} refused with UNACCEPTABLE_ADDRESSES: outside the policy's local or peer addresses"
            );
            response.push(Payload::Notify(Notify::new(
                NotifyType::UnacceptableAddresses,
                Vec::new(),
            )));
            self.send_response(spi, ExchangeType::Informational, message_id, response);
            return;
        }
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let kernel = sa.kernel_path();
        let mut to = Path {
            local,
            peer: remote,
            ..kernel
        };
        if let Some((detected, behind)) = nat {
            to.nat_detected = detected;
            to.behind_nat = behind;
            // ESP in UDP needs the NAT-T port (RFC 3948), where a MOBIKE
            // peer already is (RFC 4555 §3.3).
            to.natt = (detected || policy.as_ref().is_some_and(|p| p.force_natt))
                && local.port() == self.settings.natt_port;
        }
        let proven = remote.ip() == kernel.peer.ip() || sa.mobike.verified.contains(&remote.ip());
        // The answer goes out first, to the new path (§3.5).
        self.send_response(spi, ExchangeType::Informational, message_id, response);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if to == kernel {
            sa.mobike.pending = None;
        } else if proven {
            self.migrate_ike_sa(spi, to, "MOBIKE UPDATE_SA_ADDRESSES");
        } else {
            log::info!(
                "policy {policy_name}: IKE SA {spi:016x}: peer moves to {remote}: checking that it answers there (COOKIE2, RFC 4555 §3.7) before moving the Child SAs"
            );
            sa.mobike.pending = Some(to);
            let task = Task::Mobike(MobikeTask::CheckReturnRoutability);
            if !sa.queue.contains(&task) {
                sa.queue.push_back(task);
            }
        }
    }
}

/// NO_NATS_ALLOWED's data for a packet from `source` to `destination`
/// (RFC 4555 §4.2.6): both addresses, then both ports.
fn no_nats_allowed(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut data = Vec::with_capacity(36);
    for address in [source.ip(), destination.ip()] {
        match address {
            IpAddr::V4(a) => data.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => data.extend_from_slice(&a.octets()),
        }
    }
    data.extend_from_slice(&source.port().to_be_bytes());
    data.extend_from_slice(&destination.port().to_be_bytes());
    data
}

fn remember_verified(sa: &mut IkeSa, address: IpAddr) {
    if !sa.mobike.verified.contains(&address) {
        if sa.mobike.verified.len() >= MAX_VERIFIED_ADDRESSES {
            sa.mobike.verified.remove(0);
        }
        sa.mobike.verified.push(address);
    }
}
