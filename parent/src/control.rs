//! The control socket: a UNIX SOCK_SEQPACKET socket that ikectl talks to with
//! typed requests. Its clients are local, but the root parent serves them, so
//! nothing a client does may stall it: the parent must keep reaping children
//! and failing closed whatever a client sends or leaves unread.
//!
//! - Access: the socket file is root:root 0600, or root:GROUP 0660 with
//!   `set control_group`; each connection is checked again at accept with
//!   SO_PEERCRED (and SO_PEERGROUPS for supplementary groups), so a loose
//!   file mode alone does not let anyone else in.
//! - Every client socket is non-blocking. A reply the kernel will not take is
//!   queued; a client whose queue passes [`MAX_QUEUED_REPLIES`] is not
//!   reading and is dropped. A client with [`MAX_UNANSWERED`] requests still
//!   unanswered is not read from until answers go out, so it cannot pile
//!   work on ikev2 either.
//! - Reads are bounded per client and per wakeup, and accepts per wakeup:
//!   the control socket gets a share of the parent's loop, never all of it.
//! - At most [`MAX_CLIENTS`] connections. A new one beyond that replaces the
//!   longest idle client (nothing asked, nothing owed), so idle connections
//!   cannot lock the operator out; when every client is busy, the new one is
//!   told so and closed at once, which costs the parent an accept and a
//!   send, whereas leaving it in the backlog would make a waiting ikectl
//!   hang instead of failing with a reason.
//! - Requests are capped at [`MAX_REQUEST`] bytes (a request is tiny); a
//!   bigger or malformed one gets a reply naming the problem and the
//!   connection is closed, never the daemon.

use std::collections::{HashMap, VecDeque};
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use iked_common::ipc::channel::{decode_single_frame, encode_frames};
use iked_common::ipc::{ControlReply, ControlRequest};
use iked_common::logging::{held_back_text, RateLimit};
use nix::sys::socket::{
    accept4, bind, getsockopt, listen, recvmsg, send, socket, sockopt, AddressFamily, Backlog,
    MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::unistd::Gid;
use rustix::buffer::spare_capacity;
use rustix::event::epoll;

/// Most connections served at once.
pub const MAX_CLIENTS: usize = 128;
/// Largest request read; ikectl's are a few dozen bytes.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Requests of one client taken in and not yet answered. ikectl has one at a
/// time; beyond this the client is not read from until answers go out.
pub const MAX_UNANSWERED: usize = 4;
/// Replies queued for a client whose socket buffer is full. One more and the
/// client is taken as not reading, and dropped.
pub const MAX_QUEUED_REPLIES: usize = 8;
/// Bytes queued for one client; the first reply is always queued, whatever
/// its size (an SA list is cut to 1 MiB by ikev2). 128 clients at this
/// bound hold at most 256 MiB in the root parent.
pub const MAX_QUEUED_BYTES: usize = 2 << 20;
/// Requests read from one client per wakeup.
const READS_PER_WAKEUP: usize = 4;
/// Connections accepted per wakeup.
const ACCEPTS_PER_WAKEUP: usize = 32;
/// Ready descriptors handled per wakeup; level-triggered epoll hands the
/// rest out on the next one, in turn.
const EVENTS_PER_WAKEUP: usize = 64;
/// Connections waiting to be accepted.
const BACKLOG: i32 = 64;
/// Repeated log lines about refused or dropped clients: at most
/// [`LOG_BURST`] per [`LOG_INTERVAL`].
const LOG_INTERVAL: Duration = Duration::from_secs(1);
const LOG_BURST: u32 = 5;
/// Connections told why they are closed, kept a moment so that the message
/// is read: closing a UNIX socket with a request of the client unread would
/// reset the connection, and the client would see ECONNRESET instead.
const MAX_CLOSING: usize = 16;
/// How long such a connection is kept at most.
const CLOSING_GRACE: Duration = Duration::from_millis(500);
/// Datagrams discarded per wakeup from a connection being closed.
const DISCARDS_PER_WAKEUP: usize = 16;

/// Token of the listening socket in the control epoll; clients count from 1.
const LISTENER: u64 = 0;

/// Why the control socket cannot be set up as configured: the daemon
/// refuses to start, or (after a reload) logs it and keeps running.
#[derive(Debug, thiserror::Error)]
pub enum ControlSocketError {
    #[error("control_group {name:?}: no such group")]
    NoSuchGroup { name: String },
    #[error("control_group {name:?}: cannot look it up: {errno}")]
    GroupLookup { name: String, errno: nix::Error },
    /// A step of creating the socket (socket, address, bind, listen).
    #[error("control socket {}: {step}: {}", .path.display(), .errno.desc())]
    Create {
        path: PathBuf,
        step: &'static str,
        errno: nix::Error,
    },
    /// Something other than a socket is in the way; it is left alone.
    #[error("control socket {}: exists and is not a socket", .path.display())]
    NotASocket { path: PathBuf },
    #[error("control socket: epoll: {0}")]
    Epoll(rustix::io::Errno),
    /// Setting the file's owner, group or mode.
    #[error("control socket {}: {step}: {error}", .path.display())]
    Access {
        path: PathBuf,
        step: &'static str,
        error: std::io::Error,
    },
}

/// The group besides root allowed on the control socket, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlGroup {
    pub name: String,
    pub gid: Gid,
}

impl ControlGroup {
    /// Looks up `set control_group NAME`; an unknown group is an error, so
    /// a typo never silently leaves the socket to root or opens it.
    pub fn resolve(name: Option<&str>) -> Result<Option<ControlGroup>, ControlSocketError> {
        let Some(name) = name else {
            return Ok(None);
        };
        match nix::unistd::Group::from_name(name) {
            Ok(Some(group)) => Ok(Some(ControlGroup {
                name: name.to_string(),
                gid: group.gid,
            })),
            Ok(None) => Err(ControlSocketError::NoSuchGroup {
                name: name.to_string(),
            }),
            Err(errno) => Err(ControlSocketError::GroupLookup {
                name: name.to_string(),
                errno,
            }),
        }
    }
}

/// Who is at the other end of a connection, as the kernel recorded it at
/// connect(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

/// Whether `peer` may use the control socket: root, or a member of `group`
/// by its primary group or one of `supplementary` (None when the kernel
/// cannot tell them, before Linux 4.13). The error says why not.
pub fn authorize(
    peer: &Peer,
    supplementary: Option<&[u32]>,
    group: Option<&ControlGroup>,
) -> Result<(), String> {
    if peer.uid == 0 {
        return Ok(());
    }
    let Some(group) = group else {
        return Err(format!(
            "uid {} is not root, and no control_group is set",
            peer.uid
        ));
    };
    let gid = group.gid.as_raw();
    if peer.gid == gid || supplementary.is_some_and(|groups| groups.contains(&gid)) {
        return Ok(());
    }
    Err(format!(
        "uid {} is neither root nor in group {}{}",
        peer.uid,
        group.name,
        if supplementary.is_none() {
            " (supplementary groups unknown: kernel without SO_PEERGROUPS)"
        } else {
            ""
        }
    ))
}

struct Client {
    fd: OwnedFd,
    peer: Peer,
    /// Replies the kernel did not take yet, oldest first, each as the
    /// frames still to send (IPC framing, at most 32 KiB a record).
    outbound: VecDeque<VecDeque<Vec<u8>>>,
    queued_bytes: usize,
    /// Requests handed to the daemon and not yet replied to.
    unanswered: usize,
    /// Of those, the ones waiting on ikev2.
    forwarded: usize,
    /// When it last sent a request or had a reply (a logical clock): the
    /// longest idle client goes first when the table is full.
    last_active: u64,
    /// The epoll events we watch for, as registered.
    watching: epoll::EventFlags,
}

impl Client {
    fn idle(&self) -> bool {
        self.unanswered == 0 && self.outbound.is_empty()
    }

    fn wants(&self) -> epoll::EventFlags {
        let mut flags = epoll::EventFlags::empty();
        if self.unanswered < MAX_UNANSWERED {
            flags |= epoll::EventFlags::IN;
        }
        if !self.outbound.is_empty() {
            flags |= epoll::EventFlags::OUT;
        }
        flags
    }
}

/// What one send of a datagram did.
enum Sent {
    Done,
    /// Socket buffer full: try again when writable.
    Later,
    Failed(String),
}

pub struct ControlServer {
    pub path: PathBuf,
    listener: OwnedFd,
    /// The listener and every client, level-triggered. It is itself one
    /// descriptor in the daemon's loop, readable while any of them is ready.
    epoll: OwnedFd,
    clients: HashMap<u64, Client>,
    /// Connections being closed (see [`MAX_CLOSING`]), ids from the same
    /// counter as clients.
    closing: HashMap<u64, Closing>,
    next_client: u64,
    /// Requests forwarded to ikev2: request id → client.
    forwarded: HashMap<u64, u64>,
    next_request: u64,
    group: Option<ControlGroup>,
    clock: u64,
    /// One request read at a time, reused.
    buffer: Vec<u8>,
    /// Held open so that, out of descriptors, we can still accept and close
    /// a connection instead of seeing the listener ready forever.
    spare: Option<OwnedFd>,
    refused_log: RateLimit,
    full_log: RateLimit,
    evicted_log: RateLimit,
    fd_log: RateLimit,
}

impl ControlServer {
    /// Creates the socket at `path`: root-only, or open to `group`.
    pub fn bind(
        path: &Path,
        group: Option<ControlGroup>,
    ) -> Result<ControlServer, ControlSocketError> {
        let server = ControlServer::listen_at(path, group)?;
        server.apply_access()?;
        Ok(server)
    }

    /// The socket, bound and listening, with no access set beyond the 0600
    /// it is created with.
    fn listen_at(
        path: &Path,
        group: Option<ControlGroup>,
    ) -> Result<ControlServer, ControlSocketError> {
        let fail = |step: &'static str, errno: nix::Error| ControlSocketError::Create {
            path: path.to_path_buf(),
            step,
            errno,
        };
        let listener = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| fail("socket", e))?;
        // A stale socket from a previous run is replaced; anything else that
        // is not a socket is left alone.
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(ControlSocketError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            let _ = std::fs::remove_file(path);
        }
        let address = UnixAddr::new(path).map_err(|e| fail("address", e))?;
        // Created with no access for anyone but its owner; opened to the
        // group, if any, once its group is set.
        let old_mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = bind(listener.as_raw_fd(), &address);
        nix::sys::stat::umask(old_mask);
        bound.map_err(|e| fail("bind", e))?;
        listen(&listener, Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN))
            .map_err(|e| fail("listen", e))?;
        let epoll =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(ControlSocketError::Epoll)?;
        epoll::add(
            &epoll,
            &listener,
            epoll::EventData::new_u64(LISTENER),
            epoll::EventFlags::IN,
        )
        .map_err(ControlSocketError::Epoll)?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            listener,
            epoll,
            clients: HashMap::new(),
            closing: HashMap::new(),
            next_client: LISTENER + 1,
            forwarded: HashMap::new(),
            next_request: 0,
            group,
            clock: 0,
            buffer: vec![0u8; MAX_REQUEST + 1],
            spare: open_spare(),
            refused_log: RateLimit::new(LOG_BURST, LOG_INTERVAL),
            full_log: RateLimit::new(LOG_BURST, LOG_INTERVAL),
            evicted_log: RateLimit::new(LOG_BURST, LOG_INTERVAL),
            fd_log: RateLimit::new(LOG_BURST, LOG_INTERVAL),
        })
    }

    /// Owner, group and mode of the socket file: root:root 0600, or
    /// root:GROUP 0660. The order never leaves it open wider than either.
    fn apply_access(&self) -> Result<(), ControlSocketError> {
        let path = &self.path;
        let fail = |step: &'static str, error: std::io::Error| ControlSocketError::Access {
            path: path.clone(),
            step,
            error,
        };
        let mode = |bits| std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits));
        match &self.group {
            Some(group) => {
                std::os::unix::fs::chown(path, Some(0), Some(group.gid.as_raw()))
                    .map_err(|e| fail("chown", e))?;
                mode(0o660).map_err(|e| fail("chmod", e))
            }
            None => {
                mode(0o600).map_err(|e| fail("chmod", e))?;
                std::os::unix::fs::chown(path, Some(0), Some(0)).map_err(|e| fail("chown", e))
            }
        }
    }

    /// A new `set control_group` after a reload: the file's group and mode
    /// follow, and connected clients no longer allowed are closed.
    pub fn set_group(&mut self, group: Option<ControlGroup>) -> Result<(), ControlSocketError> {
        if group == self.group {
            return Ok(());
        }
        self.group = group;
        let applied = self.apply_access();
        let refused: Vec<(u64, String)> = self
            .clients
            .iter()
            .filter_map(|(&id, client)| {
                let groups = peer_groups(client.fd.as_fd());
                authorize(&client.peer, groups.as_deref(), self.group.as_ref())
                    .err()
                    .map(|reason| (id, reason))
            })
            .collect();
        for (id, reason) in refused {
            log::warn!("control client {id}: {reason} under the new control_group; closing it");
            self.close_with(id, &format!("permission denied: {reason}"));
        }
        applied
    }

    /// The descriptor to watch in the daemon's loop.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Who client `id` is, while it is connected.
    pub fn peer(&self, id: u64) -> Option<Peer> {
        self.clients.get(&id).map(|c| c.peer)
    }

    /// Clients connected now.
    #[cfg(test)]
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// One round of work, bounded: accepts, reads, flushes of queued
    /// replies. Returns the requests read, for the daemon to answer with
    /// [`ControlServer::reply`] (each gets exactly one reply).
    pub fn service(&mut self) -> Vec<(u64, ControlRequest)> {
        let mut events = Vec::with_capacity(EVENTS_PER_WAKEUP);
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match epoll::wait(&self.epoll, spare_capacity(&mut events), Some(&zero)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                log::error!("control socket: epoll: {e}");
                return Vec::new();
            }
        }
        let now = Instant::now();
        self.closing
            .retain(|_, c| now.duration_since(c.since) < CLOSING_GRACE);
        let mut requests = Vec::new();
        for event in &events {
            let (token, flags) = (event.data.u64(), event.flags);
            if token == LISTENER {
                self.accept_some();
            } else if let Some(closing) = self.closing.get(&token) {
                if flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR)
                    || discard_input(closing.fd.as_fd(), &mut self.buffer)
                {
                    self.closing.remove(&token);
                }
            } else {
                self.on_client(token, flags, &mut requests);
            }
        }
        requests
    }

    /// Tells the other end of `fd` why it is closed, shuts our side so it
    /// sees the end after the message, and keeps the descriptor a moment,
    /// discarding what the client still sends, until it closes too.
    fn close_telling(&mut self, fd: OwnedFd, message: &str) {
        refuse(fd.as_fd(), message);
        let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        if discard_input(fd.as_fd(), &mut self.buffer) {
            return;
        }
        if self.closing.len() >= MAX_CLOSING {
            if let Some(oldest) = self
                .closing
                .iter()
                .min_by_key(|(_, c)| c.since)
                .map(|(&id, _)| id)
            {
                self.closing.remove(&oldest);
            }
        }
        let id = self.next_client;
        self.next_client += 1;
        if epoll::add(
            &self.epoll,
            &fd,
            epoll::EventData::new_u64(id),
            epoll::EventFlags::IN,
        )
        .is_ok()
        {
            self.closing.insert(
                id,
                Closing {
                    fd,
                    since: Instant::now(),
                },
            );
        }
    }

    fn accept_some(&mut self) {
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let fd = match accept4(
                self.listener.as_raw_fd(),
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            ) {
                // SAFETY: accept4 just returned this descriptor to us alone.
                Ok(raw) => unsafe { OwnedFd::from_raw_fd(raw) },
                Err(nix::Error::EAGAIN) => return,
                Err(nix::Error::EINTR | nix::Error::ECONNABORTED) => continue,
                Err(e @ (nix::Error::EMFILE | nix::Error::ENFILE)) => {
                    self.out_of_descriptors(e);
                    return;
                }
                Err(e) => {
                    log::error!("control socket: accept: {}", e.desc());
                    return;
                }
            };
            self.admit(fd);
        }
    }

    /// Out of descriptors the listener stays readable: accept the waiting
    /// connection on the spare descriptor and close it, so the loop does
    /// not spin on it.
    fn out_of_descriptors(&mut self, error: nix::Error) {
        if let Some(n) = self.fd_log.allow(Instant::now()) {
            log::error!(
                "control socket: accept: {}: refusing connections{}",
                error.desc(),
                held_back_text(n)
            );
        }
        drop(self.spare.take());
        if let Ok(raw) = accept4(self.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            // SAFETY: accept4 just returned this descriptor to us alone.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            refuse(fd.as_fd(), "iked is out of file descriptors");
        }
        self.spare = open_spare();
    }

    /// A new connection: credentials, then a place in the table.
    fn admit(&mut self, fd: OwnedFd) {
        let now = Instant::now();
        let peer = match getsockopt(&fd, sockopt::PeerCredentials) {
            Ok(c) => Peer {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            Err(e) => {
                log::warn!(
                    "control socket: no peer credentials ({}): closing",
                    e.desc()
                );
                self.close_telling(fd, "permission denied: no peer credentials");
                return;
            }
        };
        let groups = if peer.uid == 0 || self.group.is_none() {
            Some(Vec::new())
        } else {
            peer_groups(fd.as_fd())
        };
        if let Err(reason) = authorize(&peer, groups.as_deref(), self.group.as_ref()) {
            if let Some(n) = self.refused_log.allow(now) {
                log::warn!(
                    "control socket: refused uid {} pid {}: {reason}{}",
                    peer.uid,
                    peer.pid,
                    held_back_text(n)
                );
            }
            self.close_telling(fd, &format!("permission denied: {reason}"));
            return;
        }
        if self.clients.len() >= MAX_CLIENTS && !self.evict_idle(now) {
            if let Some(n) = self.full_log.allow(now) {
                log::info!(
                    "control socket: {MAX_CLIENTS} clients, all busy: refused uid {} pid {}{}",
                    peer.uid,
                    peer.pid,
                    held_back_text(n)
                );
            }
            self.close_telling(
                fd,
                &format!("too many control clients ({MAX_CLIENTS}, all busy): try again"),
            );
            return;
        }
        let id = self.next_client;
        self.next_client += 1;
        if let Err(e) = epoll::add(
            &self.epoll,
            &fd,
            epoll::EventData::new_u64(id),
            epoll::EventFlags::IN,
        ) {
            log::error!("control socket: epoll: {e}");
            return;
        }
        self.clock += 1;
        log::debug!(
            "control client {id}: uid {} pid {} connected",
            peer.uid,
            peer.pid
        );
        self.clients.insert(
            id,
            Client {
                fd,
                peer,
                outbound: VecDeque::new(),
                queued_bytes: 0,
                unanswered: 0,
                forwarded: 0,
                last_active: self.clock,
                watching: epoll::EventFlags::IN,
            },
        );
    }

    /// Closes the client idle the longest, to make room; false when every
    /// client is busy.
    fn evict_idle(&mut self, now: Instant) -> bool {
        let Some((&id, client)) = self
            .clients
            .iter()
            .filter(|(_, c)| c.idle())
            .min_by_key(|(_, c)| c.last_active)
        else {
            return false;
        };
        if let Some(n) = self.evicted_log.allow(now) {
            log::info!(
                "control socket: {MAX_CLIENTS} clients: closing the longest idle, \
                 client {id} (uid {} pid {}){}",
                client.peer.uid,
                client.peer.pid,
                held_back_text(n)
            );
        }
        self.close_with(
            id,
            &format!("closed: {MAX_CLIENTS} control clients, this one idle the longest"),
        );
        true
    }

    fn on_client(
        &mut self,
        id: u64,
        flags: epoll::EventFlags,
        requests: &mut Vec<(u64, ControlRequest)>,
    ) {
        if flags.contains(epoll::EventFlags::OUT) {
            self.flush(id);
        }
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let reading = client.watching.contains(epoll::EventFlags::IN);
        if flags.contains(epoll::EventFlags::ERR)
            || (flags.contains(epoll::EventFlags::HUP) && !reading)
        {
            // Gone, and nothing more we may read: its answers have nowhere
            // to go.
            self.close(id);
            return;
        }
        if reading && flags.intersects(epoll::EventFlags::IN | epoll::EventFlags::HUP) {
            self.read_some(id, requests);
        }
        self.update_interest(id);
    }

    /// Reads up to [`READS_PER_WAKEUP`] requests while the client has room
    /// for more unanswered ones.
    fn read_some(&mut self, id: u64, requests: &mut Vec<(u64, ControlRequest)>) {
        for _ in 0..READS_PER_WAKEUP {
            let Some(client) = self.clients.get_mut(&id) else {
                return;
            };
            if client.unanswered >= MAX_UNANSWERED {
                return;
            }
            match read_request(client.fd.as_fd(), &mut self.buffer) {
                Ok(Some(request)) => {
                    self.clock += 1;
                    client.last_active = self.clock;
                    client.unanswered += 1;
                    requests.push((id, request));
                }
                Ok(None) => return,
                Err(ReadError::Closed) => {
                    self.close(id);
                    return;
                }
                Err(ReadError::Refused(reason)) => {
                    log::warn!(
                        "control client {id} (uid {} pid {}): {reason}; closing it",
                        client.peer.uid,
                        client.peer.pid
                    );
                    self.close_with(id, &reason);
                    return;
                }
            }
        }
    }

    /// Sends `reply` to `client`, now or when its socket has room; a client
    /// that has let too many replies pile up is dropped.
    pub fn reply(&mut self, id: u64, reply: &ControlReply) {
        let mut frames: VecDeque<Vec<u8>> = match encode_frames(reply) {
            Ok(frames) => frames.into(),
            Err(e) => {
                log::error!("control client {id}: reply not sent: {e}");
                encode_frames(&ControlReply::Failed(format!(
                    "the reply could not be sent: {e}"
                )))
                .unwrap_or_default()
                .into()
            }
        };
        let Some(client) = self.clients.get_mut(&id) else {
            // An answer for a connection that has gone away is dropped.
            return;
        };
        client.unanswered = client.unanswered.saturating_sub(1);
        self.clock += 1;
        client.last_active = self.clock;
        if client.outbound.is_empty() {
            while let Some(frame) = frames.front() {
                match send_datagram(client.fd.as_fd(), frame) {
                    Sent::Done => {
                        frames.pop_front();
                    }
                    Sent::Later => break,
                    Sent::Failed(e) => {
                        log::debug!("control client {id}: {e}; closing it");
                        self.close(id);
                        return;
                    }
                }
            }
            if frames.is_empty() {
                self.update_interest(id);
                return;
            }
        }
        client.queued_bytes += frames.iter().map(Vec::len).sum::<usize>();
        client.outbound.push_back(frames);
        if client.outbound.len() > MAX_QUEUED_REPLIES
            || (client.outbound.len() > 1 && client.queued_bytes > MAX_QUEUED_BYTES)
        {
            // Once per client: it is closed right after.
            log::info!(
                "control client {id} (uid {} pid {}): {} replies ({} bytes) unread; \
                 closing it",
                client.peer.uid,
                client.peer.pid,
                client.outbound.len(),
                client.queued_bytes
            );
            self.close(id);
            return;
        }
        self.update_interest(id);
    }

    /// Sends what is queued for `id` until the socket is full again.
    fn flush(&mut self, id: u64) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        while let Some(frames) = client.outbound.front_mut() {
            let Some(frame) = frames.front() else {
                client.outbound.pop_front();
                continue;
            };
            match send_datagram(client.fd.as_fd(), frame) {
                Sent::Done => {
                    client.queued_bytes -= frame.len();
                    frames.pop_front();
                    if frames.is_empty() {
                        client.outbound.pop_front();
                    }
                }
                Sent::Later => break,
                Sent::Failed(e) => {
                    log::debug!("control client {id}: {e}; closing it");
                    self.close(id);
                    return;
                }
            }
        }
    }

    fn update_interest(&mut self, id: u64) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let wants = client.wants();
        if wants == client.watching {
            return;
        }
        match epoll::modify(
            &self.epoll,
            &client.fd,
            epoll::EventData::new_u64(id),
            wants,
        ) {
            Ok(()) => client.watching = wants,
            Err(e) => {
                log::error!("control client {id}: epoll: {e}; closing it");
                self.close(id);
            }
        }
    }

    /// Records that a request of `client` went to ikev2; the id returned
    /// comes back with ikev2's answer, for [`ControlServer::answer`].
    pub fn forwarding(&mut self, client: u64) -> u64 {
        self.next_request += 1;
        let request = self.next_request;
        if let Some(c) = self.clients.get_mut(&client) {
            c.forwarded += 1;
            self.forwarded.insert(request, client);
        }
        request
    }

    /// An id for the parent's own request to a child: its answer is for
    /// no client and is dropped.
    pub fn own_request(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    /// ikev2's answer to forwarded request `request`.
    pub fn answer(&mut self, request: u64, reply: &ControlReply) {
        let Some(client) = self.forwarded.remove(&request) else {
            return;
        };
        if let Some(c) = self.clients.get_mut(&client) {
            c.forwarded = c.forwarded.saturating_sub(1);
        }
        self.reply(client, reply);
    }

    /// A forwarded request that could not be sent after all.
    pub fn forget(&mut self, request: u64) {
        if let Some(client) = self.forwarded.remove(&request) {
            if let Some(c) = self.clients.get_mut(&client) {
                c.forwarded = c.forwarded.saturating_sub(1);
            }
        }
    }

    /// Requests waiting on ikev2, for every client.
    #[cfg(test)]
    pub fn forwarded_count(&self) -> usize {
        self.forwarded.len()
    }

    fn close(&mut self, id: u64) {
        if let Some(client) = self.clients.remove(&id) {
            if client.forwarded > 0 {
                self.forwarded.retain(|_, c| *c != id);
            }
            log::debug!("control client {id} closed");
            // The descriptor closes here, which also takes it out of epoll.
        }
    }

    /// Tells the client why, if its socket has room, and closes it.
    fn close_with(&mut self, id: u64, message: &str) {
        if let Some(client) = self.clients.remove(&id) {
            if client.forwarded > 0 {
                self.forwarded.retain(|_, c| *c != id);
            }
            // Out of the epoll before it goes back in under a new id.
            let _ = epoll::delete(&self.epoll, &client.fd);
            self.close_telling(client.fd, message);
        }
    }

    pub fn remove_socket_file(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Sends `reply` to `id` outside request and answer: a monitor event
    /// (monitor.rs). Never waits and never closes the client for being
    /// slow: what its socket and a short queue cannot take is dropped.
    pub fn stream(&mut self, id: u64, reply: &ControlReply) -> Streamed {
        let Some(client) = self.clients.get_mut(&id) else {
            return Streamed::Gone;
        };
        // A monitor being sent events is in use, not idle.
        self.clock += 1;
        client.last_active = self.clock;
        if client.outbound.len() >= MAX_QUEUED_REPLIES {
            return Streamed::Dropped;
        }
        let Ok(frames) = encode_frames(reply) else {
            return Streamed::Dropped;
        };
        let mut frames: VecDeque<Vec<u8>> = frames.into();
        if client.outbound.is_empty() {
            while let Some(frame) = frames.front() {
                match send_datagram(client.fd.as_fd(), frame) {
                    Sent::Done => {
                        frames.pop_front();
                    }
                    Sent::Later => break,
                    Sent::Failed(e) => {
                        log::debug!("control client {id}: {e}; closing it");
                        self.close(id);
                        return Streamed::Gone;
                    }
                }
            }
            if frames.is_empty() {
                return Streamed::Sent;
            }
        }
        client.queued_bytes += frames.iter().map(Vec::len).sum::<usize>();
        client.outbound.push_back(frames);
        self.update_interest(id);
        Streamed::Sent
    }
}

/// What [`ControlServer::stream`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed {
    /// Sent, or queued to go when the socket has room.
    Sent,
    /// The client's queue is full: this one is not sent.
    Dropped,
    /// The client has gone.
    Gone,
}

/// A connection told why it is closed, kept until it closes or
/// [`CLOSING_GRACE`] passes.
struct Closing {
    fd: OwnedFd,
    since: Instant,
}

/// Reads and drops what the client sent; true when it has closed.
fn discard_input(fd: BorrowedFd<'_>, buffer: &mut [u8]) -> bool {
    for _ in 0..DISCARDS_PER_WAKEUP {
        match nix::sys::socket::recv(fd.as_raw_fd(), buffer, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => return true,
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => return false,
            Err(_) => return true,
        }
    }
    false
}

/// Why a request was not read.
enum ReadError {
    /// End of file or reset: the client left.
    Closed,
    /// Too big, malformed, or with descriptors attached: the message goes
    /// to the client before the connection closes.
    Refused(String),
}

/// Reads one request without blocking; None when there is none.
fn read_request(
    fd: BorrowedFd<'_>,
    buffer: &mut [u8],
) -> Result<Option<ControlRequest>, ReadError> {
    loop {
        let mut iov = [IoSliceMut::new(buffer)];
        // No room for control data: descriptors a client attaches are
        // closed by the kernel, which then flags MSG_CTRUNC. MSG_TRUNC makes
        // the length returned the datagram's whole length.
        let result = recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            None,
            MsgFlags::MSG_TRUNC | MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        );
        let (len, flags) = match result {
            Ok(msg) => (msg.bytes, msg.flags),
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => return Ok(None),
            Err(nix::Error::ECONNRESET) => return Err(ReadError::Closed),
            Err(e) => return Err(ReadError::Refused(format!("read: {}", e.desc()))),
        };
        if flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(ReadError::Refused(
                "a control request carries no descriptors".into(),
            ));
        }
        if flags.contains(MsgFlags::MSG_TRUNC) || len > MAX_REQUEST {
            return Err(ReadError::Refused(format!(
                "request of {len} bytes exceeds the {MAX_REQUEST}-byte cap"
            )));
        }
        if len == 0 {
            // End of file: no request encodes to zero bytes.
            return Err(ReadError::Closed);
        }
        // A request is small: it must come in one frame.
        return decode_single_frame::<ControlRequest>(&buffer[..len])
            .map(Some)
            .map_err(|e| ReadError::Refused(format!("bad request: {e}")));
    }
}

/// One frame, without blocking. Frames are far smaller than any socket's
/// send buffer, so a large reply never meets EMSGSIZE.
fn send_datagram(fd: BorrowedFd<'_>, bytes: &[u8]) -> Sent {
    loop {
        match send(
            fd.as_raw_fd(),
            bytes,
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(_) => return Sent::Done,
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => return Sent::Later,
            Err(e) => return Sent::Failed(e.desc().to_string()),
        }
    }
}

/// Best effort: tells a client why it is closed. Never waits.
fn refuse(fd: BorrowedFd<'_>, message: &str) {
    if let Ok(frames) = encode_frames(&ControlReply::Failed(message.to_string())) {
        for frame in frames {
            if !matches!(send_datagram(fd, &frame), Sent::Done) {
                break;
            }
        }
    }
}

/// The supplementary groups of the peer (SO_PEERGROUPS, Linux 4.13); None
/// when the kernel cannot tell.
fn peer_groups(fd: BorrowedFd<'_>) -> Option<Vec<u32>> {
    /// NGROUPS_MAX on Linux.
    const MAX_GROUPS: usize = 65536;
    let mut groups: Vec<nix::libc::gid_t> = vec![0; 64];
    loop {
        let mut len = std::mem::size_of_val(groups.as_slice()) as nix::libc::socklen_t;
        // SAFETY: `groups` has `len` writable bytes; the kernel writes at
        // most that many and sets `len` to what it wrote or needs.
        let rc = unsafe {
            nix::libc::getsockopt(
                fd.as_raw_fd(),
                nix::libc::SOL_SOCKET,
                nix::libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<nix::libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            return Some(groups);
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(nix::libc::ERANGE)
            && count > groups.len()
            && count <= MAX_GROUPS
        {
            groups.resize(count, 0);
            continue;
        }
        return None;
    }
}

fn open_spare() -> Option<OwnedFd> {
    std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
}

#[cfg(test)]
mod tests;
