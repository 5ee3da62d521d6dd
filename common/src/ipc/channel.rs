//! The transport under every IPC message: framing, and a channel whose sends
//! never block.
//!
//! # Framing
//! A message is postcard bytes of at most [`MAX_MESSAGE`]. On the wire it is
//! cut into SOCK_SEQPACKET records ("frames") of at most [`FRAME_SIZE`]
//! bytes, each with a 5-byte header: one flag byte ([`FIRST`], [`LAST`]) and
//! the whole message's length (u32, big-endian) so the receiver knows what
//! to expect and can refuse an oversized message before collecting it.
//! Descriptors ride on the first frame only. Frames are far below the
//! default socket send buffer (~208 KiB), so a message of any size up to the
//! cap crosses a socketpair at default kernel settings, without raising
//! SO_SNDBUF (or needing SO_SNDBUFFORCE).
//!
//! # Never blocking
//! [`Channel::send`] queues the frames and writes what the socket takes now
//! (MSG_DONTWAIT); the rest goes out from [`Channel::flush`] when the poller
//! reports the socket writable. The event loop asks for write readiness only
//! while the queue is non-empty ([`Channel::update_interest`]), and keeps
//! reading meanwhile: two processes that each send thousands of messages to
//! the other before reading cannot wait on each other.
//!
//! The queue is bounded ([`MAX_QUEUED_BYTES`]). Hitting the bound is an error
//! the process dies of (see [`IpcError::QueueFull`]): a peer that has not
//! read 64 MiB of ours (four maximal messages) is stuck or broken. Blocking
//! would wedge us with it (the deadlock this module removes); dropping
//! messages would silently desynchronise state the daemon relies on to fail
//! closed (which kernel entries exist, which request is answered); growing
//! without bound would trade the stall for memory exhaustion. Exiting makes
//! the parent see a lost child and fail closed, as for any other lost
//! child, which an operator notices and a supervisor restarts.

use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::zeroizing::{extend_zeroizing, wipe, SecretBuffer};
use super::{decode, encode, IpcError, Received, MAX_FDS_PER_MESSAGE, MAX_MESSAGE};
use crate::event::Poller;
use zeroize::Zeroizing;

/// Largest frame on the wire, header included. A sixth of the default
/// unix socket send buffer (212,992 bytes on Linux), so several frames are
/// in flight at once and one always fits.
pub const FRAME_SIZE: usize = 32 * 1024;
/// Flag byte and message length.
pub const FRAME_HEADER: usize = 5;
const FRAME_PAYLOAD: usize = FRAME_SIZE - FRAME_HEADER;
/// This frame starts a message (and carries its descriptors).
pub const FIRST: u8 = 0x01;
/// This frame ends a message.
pub const LAST: u8 = 0x02;

/// Bytes a channel may hold unsent before the peer counts as stuck: four
/// maximal messages. The largest legitimate backlog is a configuration and
/// a `show sa` reply plus thousands of small kernel requests at a reload
/// (5,000 trap policies are about 1 MiB).
pub const MAX_QUEUED_BYTES: usize = 4 * MAX_MESSAGE;

/// One record to send, with the descriptors that ride on it. Its bytes
/// are zeroed when it is dropped (sent or not): they may carry keys.
struct Frame {
    bytes: SecretBuffer,
    descriptors: Vec<OwnedFd>,
}

/// Cuts encoded message bytes into frames; descriptors go on the first.
fn frames_of(bytes: &[u8], descriptors: Vec<OwnedFd>) -> Vec<Frame> {
    let total = (bytes.len() as u32).to_be_bytes();
    let count = bytes.len().div_ceil(FRAME_PAYLOAD).max(1);
    let mut descriptors = Some(descriptors);
    bytes
        .chunks(FRAME_PAYLOAD)
        .enumerate()
        .map(|(index, chunk)| {
            let mut flags = 0;
            if index == 0 {
                flags |= FIRST;
            }
            if index + 1 == count {
                flags |= LAST;
            }
            // Exactly sized: never reallocated, so no copy is left behind.
            let mut frame = Zeroizing::new(Vec::with_capacity(FRAME_HEADER + chunk.len()));
            frame.push(flags);
            frame.extend_from_slice(&total);
            frame.extend_from_slice(chunk);
            Frame {
                bytes: frame,
                descriptors: descriptors.take().unwrap_or_default(),
            }
        })
        .collect()
}

/// Encodes `message` and frames it.
fn frame_message<T: Serialize>(
    message: &T,
    descriptors: Vec<OwnedFd>,
) -> Result<Vec<Frame>, IpcError> {
    if descriptors.len() > MAX_FDS_PER_MESSAGE {
        return Err(IpcError::TooManyDescriptors(descriptors.len()));
    }
    let bytes = encode(message)?;
    if bytes.is_empty() {
        return Err(malformed(0, "an empty message cannot be framed"));
    }
    Ok(frames_of(&bytes, descriptors))
}

fn malformed(len: usize, reason: impl Into<String>) -> IpcError {
    IpcError::Malformed {
        len,
        reason: reason.into(),
    }
}

/// A whole message's bytes (zeroed on drop) and the descriptors that came
/// with it.
type Reassembled = (SecretBuffer, Vec<OwnedFd>);

/// A message being collected from its frames; its bytes are zeroed when
/// it is dropped, and whenever they move to a larger buffer.
struct Partial {
    total: usize,
    bytes: SecretBuffer,
    descriptors: Vec<OwnedFd>,
}

/// Puts frames back together into messages, refusing anything that is not
/// exactly what [`frames_of`] produces.
#[derive(Default)]
pub(crate) struct Reassembler {
    partial: Option<Partial>,
}

impl Reassembler {
    /// Takes one received frame; returns a message once its last frame is in.
    pub(crate) fn push(
        &mut self,
        frame: &[u8],
        descriptors: Vec<OwnedFd>,
    ) -> Result<Option<Reassembled>, IpcError> {
        let len = frame.len();
        let Some((header, payload)) = frame.split_at_checked(FRAME_HEADER) else {
            return Err(malformed(len, "frame shorter than its header"));
        };
        let flags = header[0];
        let total = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if flags & !(FIRST | LAST) != 0 {
            return Err(malformed(len, format!("unknown frame flags {flags:#04x}")));
        }
        if total > MAX_MESSAGE {
            return Err(IpcError::Oversized(total));
        }
        if payload.is_empty() {
            return Err(malformed(len, "frame without payload"));
        }
        if descriptors.len() > MAX_FDS_PER_MESSAGE {
            return Err(IpcError::TooManyDescriptors(descriptors.len()));
        }
        let mut partial = if flags & FIRST != 0 {
            if self.partial.is_some() {
                self.partial = None;
                return Err(malformed(len, "a message starts inside another"));
            }
            Partial {
                total,
                // What the sender announced, but never more than a few
                // frames ahead of what has arrived.
                bytes: Zeroizing::new(Vec::with_capacity(total.min(4 * FRAME_SIZE))),
                descriptors,
            }
        } else {
            let Some(partial) = self.partial.take() else {
                return Err(malformed(len, "continuation frame without a first frame"));
            };
            if !descriptors.is_empty() {
                return Err(malformed(len, "descriptors on a continuation frame"));
            }
            if partial.total != total {
                return Err(malformed(
                    len,
                    format!(
                        "frame announces {total} bytes, its message {}",
                        partial.total
                    ),
                ));
            }
            partial
        };
        if partial.bytes.len() + payload.len() > partial.total {
            return Err(malformed(
                len,
                "frames carry more than the announced length",
            ));
        }
        extend_zeroizing(&mut partial.bytes, payload, partial.total);
        let complete = partial.bytes.len() == partial.total;
        match (flags & LAST != 0, complete) {
            (true, true) => Ok(Some((partial.bytes, partial.descriptors))),
            (false, false) => {
                self.partial = Some(partial);
                Ok(None)
            }
            (true, false) => Err(malformed(
                len,
                format!(
                    "message ends after {} of {} announced bytes",
                    partial.bytes.len(),
                    partial.total
                ),
            )),
            (false, true) => Err(malformed(
                len,
                "announced length reached before the last frame",
            )),
        }
    }
}

/// Sends one frame. Ok(false) when the socket would block (only with
/// `dont_wait`).
fn send_frame(socket: BorrowedFd<'_>, frame: &Frame, dont_wait: bool) -> Result<bool, IpcError> {
    let raw: Vec<RawFd> = frame.descriptors.iter().map(|fd| fd.as_raw_fd()).collect();
    let iov = [IoSlice::new(&frame.bytes)];
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if dont_wait {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    loop {
        match sendmsg::<()>(socket.as_raw_fd(), &iov, cmsgs, flags, None) {
            Ok(n) if n == frame.bytes.len() => return Ok(true),
            // SOCK_SEQPACKET sends whole records or fails; a short count would
            // mean the socket is of the wrong type.
            Ok(n) => {
                return Err(IpcError::Io(std::io::Error::other(format!(
                    "short send: {n} of {} bytes",
                    frame.bytes.len()
                ))))
            }
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) if dont_wait => return Ok(false),
            Err(nix::Error::EPIPE) | Err(nix::Error::ECONNRESET) => return Err(IpcError::Closed),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one frame into `buffer`: its length and descriptors
/// (close-on-exec). None when nothing is queued (only with `dont_wait`).
fn recv_frame(
    socket: BorrowedFd<'_>,
    buffer: &mut [u8],
    dont_wait: bool,
) -> Result<Option<(usize, Vec<OwnedFd>)>, IpcError> {
    let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS_PER_MESSAGE]);
    // MSG_TRUNC: the kernel reports a longer record's real length, so an
    // oversized frame is seen as such rather than silently cut.
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_TRUNC;
    if dont_wait {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    loop {
        let mut iov = [IoSliceMut::new(buffer)];
        let msg = match recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg_space), flags) {
            Ok(msg) => msg,
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) if dont_wait => return Ok(None),
            Err(nix::Error::ECONNRESET) => return Err(IpcError::Closed),
            Err(e) => return Err(e.into()),
        };
        let mut descriptors = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for fd in fds {
                    // SAFETY: the kernel just installed this descriptor in our
                    // table for us; nothing else owns it.
                    descriptors.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        let len = msg.bytes;
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(IpcError::ControlTruncated);
        }
        if msg.flags.contains(MsgFlags::MSG_TRUNC) || len > FRAME_SIZE {
            return Err(malformed(
                len,
                format!("frame larger than {FRAME_SIZE} bytes"),
            ));
        }
        if len == 0 && descriptors.is_empty() {
            // A zero-length read on SOCK_SEQPACKET is end of file; no frame
            // of ours is empty.
            return Err(IpcError::Closed);
        }
        return Ok(Some((len, descriptors)));
    }
}

/// `message` as the records to send, in order (no descriptors): for a
/// server that keeps its own per-client queue of datagrams (the control
/// socket) instead of a [`Channel`].
pub fn encode_frames<T: Serialize>(message: &T) -> Result<Vec<Vec<u8>>, IpcError> {
    // Control replies carry no keys; the frames' own copies are zeroed.
    Ok(frame_message(message, Vec::new())?
        .into_iter()
        .map(|frame| frame.bytes.to_vec())
        .collect())
}

/// Decodes a message that must arrive in one record (a small request, such
/// as a control request read with its own size cap); a message announced
/// in several frames, or any bad framing, is an error.
pub fn decode_single_frame<T: DeserializeOwned>(record: &[u8]) -> Result<T, IpcError> {
    match Reassembler::default().push(record, Vec::new())? {
        Some((bytes, _)) => decode(&bytes),
        None => Err(malformed(
            record.len(),
            "a message that must fit one frame announces more",
        )),
    }
}

/// Sends one message, waiting for the socket as long as it takes. Only for
/// where waiting is bounded by design: the startup handshake, and clients
/// such as ikectl that talk to one peer at a time.
pub fn send_blocking<T: Serialize>(
    socket: BorrowedFd<'_>,
    message: &T,
    descriptors: &[BorrowedFd<'_>],
) -> Result<(), IpcError> {
    if descriptors.len() > MAX_FDS_PER_MESSAGE {
        return Err(IpcError::TooManyDescriptors(descriptors.len()));
    }
    let owned = descriptors
        .iter()
        .map(|fd| fd.try_clone_to_owned())
        .collect::<Result<Vec<_>, _>>()?;
    for frame in frame_message(message, owned)? {
        send_frame(socket, &frame, false)?;
    }
    Ok(())
}

/// Receives one whole message, waiting for each of its frames (within the
/// socket's receive timeout, if one is set).
pub fn recv_blocking<T: DeserializeOwned>(socket: BorrowedFd<'_>) -> Result<Received<T>, IpcError> {
    let mut buffer = Zeroizing::new(vec![0u8; FRAME_SIZE]);
    let mut reassembler = Reassembler::default();
    loop {
        let Some((len, descriptors)) = recv_frame(socket, &mut buffer, false)? else {
            continue;
        };
        let pushed = reassembler.push(&buffer[..len.min(FRAME_SIZE)], descriptors);
        wipe(&mut buffer, len);
        if let Some((bytes, descriptors)) = pushed? {
            return Ok(Received {
                message: decode(&bytes)?,
                descriptors,
            });
        }
    }
}

/// One end of a channel to another process: non-blocking, framed, with an
/// outbound queue. Use it only after any blocking exchange on the same
/// socket is over (frames of two senders must not interleave).
pub struct Channel {
    fd: OwnedFd,
    outbound: VecDeque<Frame>,
    queued_bytes: usize,
    limit: usize,
    inbound: Reassembler,
    /// One frame at a time; wiped after each (zeroed on drop too).
    buffer: SecretBuffer,
    /// The poller token, once registered, and whether write readiness is
    /// asked for now.
    token: Option<u64>,
    write_interest: bool,
}

impl Channel {
    pub fn new(fd: OwnedFd) -> Channel {
        Channel::with_queue_limit(fd, MAX_QUEUED_BYTES)
    }

    /// A channel whose queue holds at most `limit` bytes (tests).
    pub fn with_queue_limit(fd: OwnedFd, limit: usize) -> Channel {
        Channel {
            fd,
            outbound: VecDeque::new(),
            queued_bytes: 0,
            limit,
            inbound: Reassembler::default(),
            buffer: Zeroizing::new(vec![0u8; FRAME_SIZE]),
            token: None,
            write_interest: false,
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Queues `message` and writes what the socket takes now. Never waits.
    /// Fails when the peer is gone, or stuck past the queue bound.
    pub fn send<T: Serialize>(&mut self, message: &T) -> Result<(), IpcError> {
        self.send_with_descriptors(message, Vec::new())
    }

    /// [`Channel::send`] with descriptors attached (kept open until sent).
    pub fn send_with_descriptors<T: Serialize>(
        &mut self,
        message: &T,
        descriptors: Vec<OwnedFd>,
    ) -> Result<(), IpcError> {
        let frames = frame_message(message, descriptors)?;
        let size: usize = frames.iter().map(|f| f.bytes.len()).sum();
        if self.queued_bytes + size > self.limit {
            return Err(IpcError::QueueFull {
                queued: self.queued_bytes,
                limit: self.limit,
            });
        }
        self.queued_bytes += size;
        self.outbound.extend(frames);
        self.flush()
    }

    /// Writes queued frames until the queue is empty or the socket is full.
    pub fn flush(&mut self) -> Result<(), IpcError> {
        while let Some(frame) = self.outbound.front() {
            if !send_frame(self.fd.as_fd(), frame, true)? {
                break;
            }
            self.queued_bytes -= frame.bytes.len();
            self.outbound.pop_front();
        }
        Ok(())
    }

    /// Bytes queued and not yet taken by the socket.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub fn has_queued(&self) -> bool {
        !self.outbound.is_empty()
    }

    /// The next whole message, if its frames have all arrived; None when the
    /// socket has nothing more now. [`IpcError::Closed`] at end of file.
    pub fn try_recv<T: DeserializeOwned>(&mut self) -> Result<Option<Received<T>>, IpcError> {
        loop {
            let Some((len, descriptors)) = recv_frame(self.fd.as_fd(), &mut self.buffer, true)?
            else {
                return Ok(None);
            };
            let frame = self.buffer.get(..len).unwrap_or_default();
            let pushed = self.inbound.push(frame, descriptors);
            wipe(&mut self.buffer, len);
            if let Some((bytes, descriptors)) = pushed? {
                return Ok(Some(Received {
                    message: decode(&bytes)?,
                    descriptors,
                }));
            }
        }
    }

    /// The next whole message, as [`Channel::try_recv`], insisting that it
    /// carries no descriptor (what every event loop receives).
    pub fn try_recv_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, IpcError> {
        match self.try_recv::<T>()? {
            Some(received) => Ok(Some(received.expect_descriptors(0)?.0)),
            None => Ok(None),
        }
    }

    /// Watches this channel on `poller` as `token`: readable always,
    /// writable while frames wait (see [`Channel::update_interest`]).
    pub fn register(&mut self, poller: &Poller, token: u64) -> std::io::Result<()> {
        poller.add(self.fd.as_fd(), token)?;
        self.token = Some(token);
        self.write_interest = false;
        self.update_interest(poller)
    }

    /// Asks the poller for write readiness exactly while frames wait, so
    /// an idle channel never wakes the loop and a full one is flushed as
    /// soon as the peer reads. Call after sending or flushing.
    pub fn update_interest(&mut self, poller: &Poller) -> std::io::Result<()> {
        let Some(token) = self.token else {
            return Ok(());
        };
        let wanted = self.has_queued();
        if wanted != self.write_interest {
            poller.set_write_interest(self.fd.as_fd(), token, wanted)?;
            self.write_interest = wanted;
        }
        Ok(())
    }

    /// Waits up to `timeout` for the queue to drain (before an orderly exit).
    pub fn flush_within(&mut self, timeout: Duration) -> Result<(), IpcError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.flush()?;
            if !self.has_queued() {
                return Ok(());
            }
            if !wait_for(self.fd.as_fd(), false, true, deadline)? {
                return Err(IpcError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "{} bytes still unsent after {} ms",
                        self.queued_bytes,
                        timeout.as_millis()
                    ),
                )));
            }
        }
    }

    /// Waits up to `timeout` for the next whole message, sending what is
    /// queued meanwhile (the peer may need it before it answers).
    pub fn recv_within<T: DeserializeOwned>(
        &mut self,
        timeout: Duration,
    ) -> Result<Received<T>, IpcError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.flush()?;
            if let Some(received) = self.try_recv()? {
                return Ok(received);
            }
            if !wait_for(self.fd.as_fd(), true, self.has_queued(), deadline)? {
                return Err(IpcError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no message within {} ms", timeout.as_millis()),
                )));
            }
        }
    }
}

/// poll(2) on one socket until `deadline`; false on timeout.
fn wait_for(
    fd: BorrowedFd<'_>,
    read: bool,
    write: bool,
    deadline: Instant,
) -> Result<bool, IpcError> {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut flags = PollFlags::empty();
    if read {
        flags |= PollFlags::IN;
    }
    if write {
        flags |= PollFlags::OUT;
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let timespec = rustix::time::Timespec {
            tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&fd, flags)];
        match poll(&mut fds, Some(&timespec)) {
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(IpcError::Io(e.into())),
        }
    }
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
