//! IKE fragmentation (RFC 7383): the IKEV2_FRAGMENTATION_SUPPORTED
//! notify (§2.3), splitting an encrypted message too large for the path
//! into Encrypted Fragment (SKF) messages, each sealed on its own (§2.5),
//! and the reassembly of a peer's fragments with bounds (§2.6).
//!
//! Each IKE SA holds a [`Fragments`]: whether both peers announced the
//! extension, and at most two messages being reassembled, the peer's
//! request and the response to our request (window 1 each way, RFC 7296
//! §2.3). A reassembly keeps only fragments whose ICV checked (never an
//! unauthenticated byte), is bounded in fragments and bytes, and goes when
//! its deadline (a [`ReassemblyTimer`], pushed to the engine's one timer
//! heap by `schedule`, no task of its own) comes. Every stored byte is
//! charged to the engine-wide [`FragmentMemory`], whose cap bounds what
//! all SAs together may hold (100k SAs each with a partial message cannot
//! take more); the charge is returned when the reassembly is dropped,
//! however it goes (completed, replaced, timed out, its SA removed).
//!
//! Only `message.rs` calls in here, to seal what it sends and to open
//! what it receives; the exchanges never see a fragment.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use zeroize::Zeroizing;

use iked_common::wire::sk::FRAGMENT_FIELDS_LEN;
use iked_common::wire::{
    decode_payloads, encode_payloads, encrypted_message_prefix, encrypted_span, EncryptedFragment,
    EncryptedKind, Header, Message, Notify, NotifyType, Payload, PayloadType, GENERIC_HEADER_LEN,
    HEADER_LEN,
};

use crate::engine::timers::ReassemblyTimer;
use crate::engine::Engine;

use crate::engine::state::*;

/// IPv4 header without options, IPv6 header without extensions, UDP.
const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const UDP_HEADER_LEN: usize = 8;
/// The non-ESP marker before IKE on the NAT-T port (RFC 3948 §2.2).
const NON_ESP_MARKER_LEN: usize = 4;
/// The smallest peer fragment size a response follows: the IKE message of
/// a 576-byte IPv4 datagram (RFC 7383 §2.5.1). A peer sending tinier
/// fragments cannot make us cut a response into hundreds.
const MIN_PEER_FRAGMENT_LEN: usize = 576 - IPV4_HEADER_LEN - UDP_HEADER_LEN;

/// Which of an IKE SA's two inbound messages a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// The peer's request.
    Request,
    /// The response to our request.
    Response,
}

impl Direction {
    fn text(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// The IKEV2_FRAGMENTATION_SUPPORTED notify for our IKE_SA_INIT request
/// or response (RFC 7383 §2.3: no data), when we announce it.
pub(super) fn supported_notify(enabled: bool) -> Option<Payload> {
    enabled.then(|| {
        Payload::Notify(Notify::new(
            NotifyType::Ikev2FragmentationSupported,
            Vec::new(),
        ))
    })
}

/// Whether fragmentation is agreed: we announce it (`enabled`) and the
/// peer's IKE_SA_INIT message (`payloads`) does too (RFC 7383 §2.3).
pub(super) fn agreed(enabled: bool, payloads: &[Payload]) -> bool {
    enabled
        && payloads.iter().any(|p| {
            matches!(p, Payload::Notify(n)
                if n.notify_type == NotifyType::Ikev2FragmentationSupported)
        })
}

/// The SKF payload of a message, if it is an IKE Fragment message
/// (RFC 7383 §2.6: identified by its presence).
pub(super) fn fragment_of(message: &Message) -> Option<&EncryptedFragment> {
    message.payloads.iter().find_map(|p| match p {
        Payload::EncryptedFragment(skf) => Some(skf),
        _ => None,
    })
}

/// The bytes of reassembly buffers all IKE SAs hold together, shared by
/// the engine and every [`Charge`] taken from it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FragmentMemory(Arc<AtomicUsize>);

impl FragmentMemory {
    pub(super) fn used(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn charge(&self) -> Charge {
        Charge {
            memory: self.clone(),
            bytes: 0,
        }
    }
}

/// What one reassembly has taken of [`FragmentMemory`]; given back when
/// it is dropped, so no path that frees a reassembly can leak the count.
#[derive(Debug)]
struct Charge {
    memory: FragmentMemory,
    bytes: usize,
}

impl Charge {
    fn add(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.memory.0.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.memory.0.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Bytes charged for each fragment slot besides its plaintext (the slot
/// itself and the allocation's bookkeeping), so that many tiny fragments
/// count too.
const SLOT_OVERHEAD: usize = 32;

/// One message being put together from its fragments (RFC 7383 §2.6).
#[derive(Debug)]
struct Reassembly {
    message_id: u32,
    /// Total Fragments of the set being collected.
    total: u16,
    /// The first inner payload, from fragment 1's Next Payload field.
    first_inner: Option<PayloadType>,
    /// The decrypted content of each fragment, by number - 1 (zeroed when
    /// dropped: it holds nonces and key exchange values).
    chunks: Vec<Option<Zeroizing<Vec<u8>>>>,
    received: u16,
    /// Plaintext bytes held.
    bytes: usize,
    /// Largest fragment datagram received (RFC 7383 §2.5.1: a threshold
    /// for a fragmented response).
    largest: usize,
    deadline: ReassemblyTimer,
    charge: Charge,
}

impl Reassembly {
    fn new(
        message_id: u32,
        total: u16,
        deadline: ReassemblyTimer,
        memory: &FragmentMemory,
    ) -> Reassembly {
        let mut charge = memory.charge();
        charge.add(Reassembly::overhead(total));
        Reassembly {
            message_id,
            total,
            first_inner: None,
            chunks: vec![None; usize::from(total)],
            received: 0,
            bytes: 0,
            largest: 0,
            deadline,
            charge,
        }
    }

    /// What a reassembly of `total` fragments costs besides their content.
    fn overhead(total: u16) -> usize {
        std::mem::size_of::<Reassembly>() + usize::from(total) * SLOT_OVERHEAD
    }

    fn has(&self, number: u16) -> bool {
        self.chunks
            .get(usize::from(number).wrapping_sub(1))
            .is_some_and(Option::is_some)
    }

    fn store(&mut self, skf: &EncryptedFragment, plaintext: Vec<u8>, datagram_len: usize) {
        let Some(slot) = self
            .chunks
            .get_mut(usize::from(skf.fragment_number).wrapping_sub(1))
        else {
            return;
        };
        if slot.is_some() {
            return;
        }
        if skf.fragment_number == 1 {
            self.first_inner = Some(skf.first_inner);
        }
        self.bytes += plaintext.len();
        self.charge.add(plaintext.len());
        *slot = Some(Zeroizing::new(plaintext));
        self.received += 1;
        self.largest = self.largest.max(datagram_len);
    }

    fn is_complete(&self) -> bool {
        self.received == self.total
    }

    /// The content of the original Encrypted payload and its first inner
    /// payload type, once every fragment is there.
    fn into_content(self) -> Option<(PayloadType, Zeroizing<Vec<u8>>)> {
        let first = self.first_inner?;
        let mut content = Zeroizing::new(Vec::with_capacity(self.bytes));
        for chunk in &self.chunks {
            content.extend_from_slice(chunk.as_ref()?);
        }
        Some((first, content))
    }
}

/// An IKE SA's fragmentation state: whether both peers support it, and
/// the peer's messages being reassembled, one per direction.
#[derive(Debug, Default)]
pub(crate) struct Fragments {
    /// Both IKE_SA_INIT messages carried IKEV2_FRAGMENTATION_SUPPORTED
    /// (RFC 7383 §2.3), or the rekeyed IKE SA's predecessor had it.
    negotiated: bool,
    request: Option<Box<Reassembly>>,
    response: Option<Box<Reassembly>>,
    /// The last request came in fragments: its response is fragmented
    /// with fragments no larger than the peer's (§2.4, §2.5.1).
    request_fragment_size: Option<usize>,
}

impl Fragments {
    /// The state of an IKE SA whose IKE_SA_INIT did (or did not)
    /// negotiate fragmentation, or of an SA rekeyed from one.
    pub(super) fn negotiated(negotiated: bool) -> Fragments {
        Fragments {
            negotiated,
            ..Fragments::default()
        }
    }

    pub(super) fn is_negotiated(&self) -> bool {
        self.negotiated
    }

    /// Whether a message is being reassembled.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn reassembling(&self) -> bool {
        self.request.is_some() || self.response.is_some()
    }

    /// When the oldest reassembly is given up.
    pub(super) fn deadline(&self) -> Option<Instant> {
        [&self.request, &self.response]
            .into_iter()
            .flatten()
            .map(|r| r.deadline.at())
            .min()
    }

    fn slot(&mut self, direction: Direction) -> &mut Option<Box<Reassembly>> {
        match direction {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }

    /// Drops the reassemblies whose deadline has come (RFC 7383 §2.6:
    /// discard all fragments received so far); what went, for the log.
    fn expire(&mut self, now: Instant) -> Vec<(Direction, u32, u16, u16)> {
        let mut gone = Vec::new();
        for direction in [Direction::Request, Direction::Response] {
            let slot = self.slot(direction);
            if slot.as_ref().is_some_and(|r| r.deadline.is_due(now)) {
                if let Some(r) = slot.take() {
                    gone.push((direction, r.message_id, r.received, r.total));
                }
            }
        }
        gone
    }

    /// The bytes of plaintext held in reassembly (tests).
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        [&self.request, &self.response]
            .into_iter()
            .flatten()
            .map(|r| r.bytes)
            .sum()
    }
}

/// What a fragment check found before any crypto (RFC 7383 §2.6, in the
/// RFC's order: validity, replay, then the ICV).
enum Precheck {
    /// Keep it if its ICV checks; `restart` when it starts a new set.
    Verify { restart: bool },
    /// Silently discarded (a replay, an older set, a set too large).
    Drop(&'static str),
}

impl Engine {
    /// The largest IKE message (IKE header on) that fits `max_datagram`
    /// from `sa.local`: the IP and UDP headers and, on the NAT-T port,
    /// the non-ESP marker come off.
    pub(super) fn ike_message_limit(&self, sa: &IkeSa) -> usize {
        let ip = if sa.peer.is_ipv6() {
            IPV6_HEADER_LEN
        } else {
            IPV4_HEADER_LEN
        };
        let marker = if sa.local.port() == self.settings.natt_port {
            NON_ESP_MARKER_LEN
        } else {
            0
        };
        usize::from(self.settings.fragmentation.max_datagram)
            .saturating_sub(ip + UDP_HEADER_LEN + marker)
    }

    /// Our message on IKE SA `spi` around `inner`, sealed, as the
    /// datagrams to send: one SK message, or its SKF fragments when both
    /// peers support fragmentation and the whole would not fit the
    /// configured datagram size (RFC 7383 §2.4, §2.5). A response to a
    /// fragmented request uses the peer's fragment size when it is the
    /// smaller (§2.5.1).
    pub(super) fn seal_message(
        &mut self,
        spi: u64,
        header: Header,
        inner: &[Payload],
    ) -> Option<Vec<Vec<u8>>> {
        let (first, plaintext) = encode_payloads(inner).ok()?;
        let sa = self.ikes.get(&spi)?;
        let transform = sa.out_cipher.as_ref()?.transform();
        let mut limit = self.ike_message_limit(sa);
        if header.flags.response {
            if let Some(peer_size) = sa.fragments.request_fragment_size {
                limit = limit.min(peer_size.max(MIN_PEER_FRAGMENT_LEN));
            }
        }
        let whole_len = HEADER_LEN + GENERIC_HEADER_LEN + transform.sealed_len(plaintext.len());
        if !sa.fragments.negotiated || whole_len <= limit {
            return Some(vec![self.seal_encoded(spi, &header, first, &plaintext)?]);
        }
        let room = limit.saturating_sub(HEADER_LEN + GENERIC_HEADER_LEN + FRAGMENT_FIELDS_LEN);
        let Some(chunk_len) = transform.max_plaintext_len(room).filter(|&n| n > 0) else {
            log::warn!(
                "IKE SA {spi:016x}: fragment_size {} leaves no room for a fragment's \
                 content: {} sent whole ({whole_len} bytes)",
                self.settings.fragmentation.max_datagram,
                header.exchange
            );
            return Some(vec![self.seal_encoded(spi, &header, first, &plaintext)?]);
        };
        let chunks: Vec<&[u8]> = plaintext.chunks(chunk_len).collect();
        let Ok(total) = u16::try_from(chunks.len()) else {
            log::warn!(
                "IKE SA {spi:016x}: {} needs too many fragments",
                header.exchange
            );
            return None;
        };
        let mut datagrams = Vec::with_capacity(chunks.len());
        for (index, chunk) in chunks.into_iter().enumerate() {
            let number = index as u16 + 1;
            datagrams.push(self.seal_fragment(spi, &header, (number, total), first, chunk)?);
        }
        let largest = datagrams.iter().map(Vec::len).max().unwrap_or(0);
        let sa = self.ikes.get(&spi)?;
        log::info!(
            "policy {}: IKE SA {spi:016x}: {} {} {} ({whole_len} bytes) sent in {total} \
             fragments of at most {largest} bytes",
            sa.policy,
            header.exchange,
            if header.flags.response {
                "response"
            } else {
                "request"
            },
            header.message_id,
        );
        Some(datagrams)
    }

    /// One SKF message of IKE SA `spi`: fragment `number` of `total` of
    /// the message of `header`, carrying `chunk` of its content, sealed on
    /// its own (RFC 7383 §2.5). The header is the original's but for
    /// Length and Next Payload; only fragment 1 names the first inner
    /// payload (`first`).
    pub(super) fn seal_fragment(
        &mut self,
        spi: u64,
        header: &Header,
        (number, total): (u16, u16),
        first: PayloadType,
        chunk: &[u8],
    ) -> Option<Vec<u8>> {
        let cipher = self.ikes.get_mut(&spi)?.out_cipher.as_mut()?;
        let kind = EncryptedKind::Fragment {
            fragment_number: number,
            total_fragments: total,
        };
        let sealed_len = cipher.transform().sealed_len(chunk.len());
        let mut out = encrypted_message_prefix(header, &[], kind, first, sealed_len).ok()?;
        let body = cipher.seal(&out, chunk, &mut *self.rng).ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    /// The inner payloads of a peer's message on IKE SA `spi` that the
    /// message layer accepted by message ID: an SK message opened, or a
    /// fragment taken into reassembly, Some only when it completed the
    /// message (RFC 7383 §2.6: then processed as if received whole).
    /// Nothing that fails its integrity check is kept or answered.
    pub(super) fn open_or_reassemble(
        &mut self,
        spi: u64,
        direction: Direction,
        datagram: &[u8],
        message: &Message,
    ) -> Option<Vec<Payload>> {
        let Some(skf) = fragment_of(message) else {
            let inner = self.open(spi, datagram, message);
            if inner.is_none() {
                log::debug!(
                    "IKE SA {spi:016x}: {} failed integrity check, dropped",
                    direction.text()
                );
            } else if direction == Direction::Request {
                if let Some(sa) = self.ikes.get_mut(&spi) {
                    sa.fragments.request_fragment_size = None;
                }
            }
            return inner;
        };
        self.take_fragment(spi, direction, datagram, &message.header, skf)
    }

    /// Whether a copy of the request answered last is authentic and is
    /// one that gets the cached response again: an SK message, or
    /// fragment number 1 of its fragments (RFC 7383 §2.6.1: the others
    /// are ignored, so that one retransmitted request is answered once).
    pub(super) fn is_authentic_retransmission(
        &self,
        spi: u64,
        datagram: &[u8],
        message: &Message,
    ) -> bool {
        match fragment_of(message) {
            None => self.open(spi, datagram, message).is_some(),
            Some(skf) => {
                skf.fragment_number == 1
                    && self
                        .ikes
                        .get(&spi)
                        .is_some_and(|sa| sa.fragments.negotiated)
                    && self.open_fragment(spi, datagram).is_some()
            }
        }
    }

    /// The decrypted content of one fragment, if its ICV checks (the
    /// crypto of §3.14 of RFC 7296 over the fragment message itself).
    fn open_fragment(&self, spi: u64, datagram: &[u8]) -> Option<Vec<u8>> {
        let cipher = self.ikes.get(&spi)?.in_cipher.as_ref()?;
        let span = encrypted_span(datagram).ok()?;
        let (aad, body) = datagram.split_at_checked(span)?;
        cipher.open(aad, body).ok()
    }

    /// RFC 7383 §2.6 on one fragment of message `header.message_id`.
    fn take_fragment(
        &mut self,
        spi: u64,
        direction: Direction,
        datagram: &[u8],
        header: &Header,
        skf: &EncryptedFragment,
    ) -> Option<Vec<Payload>> {
        let max_fragments = self.settings.max_fragments;
        let message_id = header.message_id;
        let what = || {
            format!(
                "IKE SA {spi:016x}: fragment {}/{} of {} {message_id}",
                skf.fragment_number,
                skf.total_fragments,
                direction.text()
            )
        };
        let sa = self.ikes.get_mut(&spi)?;
        if !sa.fragments.negotiated {
            // §2.4: not to be used unless both peers announced it.
            log::debug!("{}: fragmentation not negotiated, dropped", what());
            return None;
        }
        // The decoder checked 1 <= Fragment Number <= Total Fragments.
        if skf.total_fragments > max_fragments {
            let line = format!("{}: more than {max_fragments} fragments, dropped", what());
            self.log_unauthenticated(format_args!("{line}"));
            return None;
        }
        let slot = sa.fragments.slot(direction);
        let check = match slot.as_deref() {
            Some(r) if r.message_id == message_id => {
                if skf.total_fragments < r.total {
                    Precheck::Drop("from an older set (fewer Total Fragments)")
                } else if skf.total_fragments == r.total && r.has(skf.fragment_number) {
                    Precheck::Drop("a replay of one held")
                } else {
                    Precheck::Verify {
                        restart: skf.total_fragments > r.total,
                    }
                }
            }
            // None held, or one of an older message (the message layer let
            // this one through, so the held one is stale).
            _ => Precheck::Verify { restart: true },
        };
        let restart = match check {
            Precheck::Drop(why) => {
                log::debug!("{}: {why}, dropped", what());
                return None;
            }
            Precheck::Verify { restart } => restart,
        };
        let Some(plaintext) = self.open_fragment(spi, datagram) else {
            log::debug!("{}: failed integrity check, dropped", what());
            return None;
        };
        let charged = plaintext.len()
            + if restart {
                Reassembly::overhead(skf.total_fragments)
            } else {
                0
            };
        if self.fragment_memory.used() + charged > self.settings.fragment_memory_cap {
            let line = format!(
                "{}: reassembly buffers of all IKE SAs at their cap of {} bytes, dropped",
                what(),
                self.settings.fragment_memory_cap
            );
            self.log_unauthenticated(format_args!("{line}"));
            return None;
        }
        let deadline = ReassemblyTimer::start(self.now, self.settings.fragment_timeout);
        let max_len = self.settings.max_reassembled_len;
        let memory = self.fragment_memory.clone();
        let sa = self.ikes.get_mut(&spi)?;
        let slot = sa.fragments.slot(direction);
        if restart {
            // §2.6: a newer set (more fragments) starts the reassembly
            // over with just this fragment.
            *slot = Some(Box::new(Reassembly::new(
                message_id,
                skf.total_fragments,
                deadline,
                &memory,
            )));
        }
        let reassembly = slot.as_deref_mut()?;
        if reassembly.bytes + plaintext.len() > max_len {
            *slot = None;
            let line = format!(
                "{}: the message would exceed {max_len} bytes, its fragments discarded",
                what()
            );
            self.log_unauthenticated(format_args!("{line}"));
            return None;
        }
        reassembly.store(skf, plaintext, datagram.len());
        if !reassembly.is_complete() {
            return None;
        }
        let reassembly = slot.take()?;
        let (total, largest) = (reassembly.total, reassembly.largest);
        let (first, content) = reassembly.into_content()?;
        let policy = sa.policy.clone();
        if direction == Direction::Request {
            sa.fragments.request_fragment_size = Some(largest);
        }
        match decode_payloads(first, &content, header) {
            Ok(inner) => {
                log::info!(
                    "policy {policy}: IKE SA {spi:016x}: {} {} {message_id} reassembled from \
                     {total} fragments ({} bytes)",
                    header.exchange,
                    direction.text(),
                    content.len()
                );
                Some(inner)
            }
            Err(e) => {
                log::debug!(
                    "IKE SA {spi:016x}: {} {message_id} reassembled from {total} fragments \
                     does not decode: {e}",
                    direction.text()
                );
                None
            }
        }
    }

    /// Frees the reassembly buffers of IKE SA `spi` whose time is up
    /// (RFC 7383 §2.6): a responder then acts as if no request came, an
    /// initiator retransmits as usual.
    pub(super) fn expire_fragments(&mut self, spi: u64) {
        let now = self.now;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        for (direction, message_id, received, total) in sa.fragments.expire(now) {
            log::debug!(
                "IKE SA {spi:016x}: {} {message_id} incomplete after {} s ({received} of {total} \
                 fragments), discarded",
                direction.text(),
                self.settings.fragment_timeout.as_secs()
            );
        }
    }

    /// Bytes all reassembly buffers hold together (tests).
    #[cfg(test)]
    pub(crate) fn fragment_memory_used(&self) -> usize {
        self.fragment_memory.used()
    }
}
