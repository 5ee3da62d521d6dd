//! What the XFRM and PF_KEY backends share on their two sockets (one for
//! requests and their replies, one for the kernel's events): the socket
//! options, request numbers, sending a request and receiving its reply
//! (one whole datagram at a time, zeroed when dropped, kept when a
//! capture is on), and reading the event socket in bounded bursts. What
//! the bytes mean stays with each backend.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use iked_common::kernel::{FailureKind, KernelEvent, KernelFailure};
use nix::sys::socket::{recv, send, MsgFlags};
use zeroize::Zeroizing;

use crate::backend::{kernel_failure, local_failure};
use crate::bytes::Writer;

/// The kernel answers synchronously; this only bounds a wedged socket.
pub const REPLY_TIMEOUT_SECS: i64 = 5;
/// Datagrams read per readiness notification, so a flood cannot starve IPC.
const MAX_EVENT_DATAGRAMS: usize = 64;

pub(crate) fn set_int_option(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: i32,
) -> nix::Result<()> {
    // SAFETY: passes a pointer to a live i32 and its exact size.
    let rc = unsafe {
        nix::libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as nix::libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(nix::Error::last())
    } else {
        Ok(())
    }
}

pub(crate) fn set_receive_timeout(fd: BorrowedFd<'_>, seconds: i64) -> nix::Result<()> {
    let tv = nix::libc::timeval {
        tv_sec: seconds,
        tv_usec: 0,
    };
    // SAFETY: passes a pointer to a live timeval and its exact size.
    let rc = unsafe {
        nix::libc::setsockopt(
            fd.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            nix::libc::SO_RCVTIMEO,
            (&tv as *const nix::libc::timeval).cast(),
            std::mem::size_of::<nix::libc::timeval>() as nix::libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(nix::Error::last())
    } else {
        Ok(())
    }
}

/// The two sockets of one backend.
pub struct KeySockets {
    pub requests: OwnedFd,
    pub events: OwnedFd,
    /// Largest datagram read.
    buffer_len: usize,
    /// Sequence number of the last request.
    seq: u32,
    /// When set, every datagram received is kept (tests capture kernel replies).
    capture: Option<Vec<Vec<u8>>>,
}

impl KeySockets {
    pub fn new(requests: OwnedFd, events: OwnedFd, buffer_len: usize) -> KeySockets {
        KeySockets {
            requests,
            events,
            buffer_len,
            seq: 0,
            capture: None,
        }
    }

    /// The sequence number for the next request (never 0).
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Keeps a copy of every received datagram (for capture in tests).
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on.then(Vec::new);
    }

    pub fn take_captured(&mut self) -> Vec<Vec<u8>> {
        self.capture
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Receives one whole datagram from the event socket or the request
    /// socket; a datagram longer than the buffer is an error, never cut.
    pub fn receive(
        &mut self,
        from_events: bool,
        flags: MsgFlags,
    ) -> nix::Result<Zeroizing<Vec<u8>>> {
        let fd = if from_events {
            self.events.as_raw_fd()
        } else {
            self.requests.as_raw_fd()
        };
        let mut buf = vec![0u8; self.buffer_len];
        let n = loop {
            match recv(fd, &mut buf, flags | MsgFlags::MSG_TRUNC) {
                Err(nix::Error::EINTR) => continue,
                other => break other?,
            }
        };
        if n > buf.len() {
            // MSG_TRUNC reported the real length: never parse a cut message.
            return Err(nix::Error::EMSGSIZE);
        }
        buf.truncate(n);
        if let Some(capture) = self.capture.as_mut() {
            capture.push(buf.clone());
        }
        // Dumps and PF_KEY's change notices carry keys: zeroed when dropped.
        Ok(Zeroizing::new(buf))
    }

    /// Sends one request on the request socket, or the event socket (where
    /// PF_KEY registers). A refusal on send is the kernel's answer: PF_KEY
    /// reports it there as well as in the reply, with the same errno.
    pub fn send_request(
        &self,
        operation: &str,
        on_events: bool,
        request: Writer,
    ) -> Result<(), KernelFailure> {
        let fd = if on_events {
            self.events.as_raw_fd()
        } else {
            self.requests.as_raw_fd()
        };
        loop {
            match send(fd, &request.bytes, MsgFlags::empty()) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(kernel_failure(operation, e as i32, None)),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// The next datagram of `operation`'s reply. The receive timeout
    /// becomes a failure that says what did not happen in time (`late`:
    /// "kernel did not answer", "dump did not finish").
    pub fn receive_reply(
        &mut self,
        operation: &str,
        on_events: bool,
        late: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KernelFailure> {
        match self.receive(on_events, MsgFlags::empty()) {
            Ok(datagram) => Ok(datagram),
            Err(nix::Error::EAGAIN) => Err(local_failure(
                FailureKind::Kernel,
                format!("{operation}: {late} within {REPLY_TIMEOUT_SECS} s"),
            )),
            Err(e) => Err(kernel_failure(operation, e as i32, None)),
        }
    }

    pub fn event_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }
}

impl KeySockets {
    /// Reads the pending events without blocking, at most
    /// [`MAX_EVENT_DATAGRAMS`] datagrams per call. `decode` turns one
    /// datagram into events, logging and skipping what it cannot read (a
    /// malformed event must not stop the others); it gets the sockets back
    /// to ask the kernel more (PF_KEY resolves an ACQUIRE's policy).
    /// `backend` names the backend in log lines.
    pub(crate) fn read_events(
        &mut self,
        backend: &str,
        mut decode: impl FnMut(&mut KeySockets, &[u8], &mut Vec<KernelEvent>),
    ) -> Result<Vec<KernelEvent>, KernelFailure> {
        let mut events = Vec::new();
        for _ in 0..MAX_EVENT_DATAGRAMS {
            let datagram = match self.receive(true, MsgFlags::MSG_DONTWAIT) {
                Ok(d) => d,
                Err(nix::Error::EAGAIN) => break,
                Err(nix::Error::ENOBUFS) => {
                    // The socket overflowed: events were lost. A lost soft
                    // expire is recovered at the hard one; say so loudly.
                    log::warn!("{backend}: kernel event queue overflowed, events were lost");
                    continue;
                }
                Err(e) => return Err(kernel_failure("read kernel events", e as i32, None)),
            };
            decode(self, &datagram, &mut events);
        }
        Ok(events)
    }
}
