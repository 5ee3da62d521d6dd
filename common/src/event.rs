//! A small epoll loop shared by every process: descriptors registered with a
//! token, one wait with an optional deadline. No runtime, no threads, few
//! syscalls (which keeps a seccomp allow-list short).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use rustix::time::Timespec;

/// Events handled per wait; more simply come on the next wait.
const EVENTS_PER_WAIT: usize = 64;

pub struct Poller {
    epoll: OwnedFd,
    events: Vec<epoll::Event>,
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        Ok(Poller {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            events: Vec::with_capacity(EVENTS_PER_WAIT),
        })
    }

    /// Watches `fd` for readability (and hang-up), reporting it as `token`.
    pub fn add(&self, fd: impl AsFd, token: u64) -> io::Result<()> {
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN,
        )?;
        Ok(())
    }

    /// Also reports `fd` when it is writable (`write`), or stops doing so.
    /// Channels ask for it only while they hold unsent frames: level-
    /// triggered write readiness on an idle socket would spin the loop.
    pub fn set_write_interest(&self, fd: impl AsFd, token: u64, write: bool) -> io::Result<()> {
        let mut flags = epoll::EventFlags::IN;
        if write {
            flags |= epoll::EventFlags::OUT;
        }
        epoll::modify(&self.epoll, fd, epoll::EventData::new_u64(token), flags)?;
        Ok(())
    }

    pub fn remove(&self, fd: impl AsFd) -> io::Result<()> {
        epoll::delete(&self.epoll, fd)?;
        Ok(())
    }

    /// Waits until something is readable (or writable, where asked for) or
    /// `timeout` passes; returns the tokens of the ready descriptors (empty
    /// on timeout or EINTR).
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Vec<u64>> {
        self.events.clear();
        let timespec = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        match epoll::wait(
            &self.epoll,
            spare_capacity(&mut self.events),
            timespec.as_ref(),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
        Ok(self.events.iter().map(|e| e.data.u64()).collect())
    }
}
