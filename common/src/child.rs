//! The start of every child process: the handshake with the parent, the
//! descriptors it hands over, and the privilege drop. After this a child
//! holds exactly what the privilege table allows.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::event::Poller;
use crate::ipc::{
    self, Channel, ChildToParent, DescriptorPurpose, ParentToChild, Role, Verbosity, IPC_VERSION,
};
use crate::logging;
use crate::privileges::drop_privileges;

/// The descriptor number at which a child finds its channel to the parent.
pub const PARENT_CHANNEL_FD: i32 = 3;

/// Most descriptors a child accepts before the privilege drop.
const MAX_DESCRIPTORS: usize = 16;

/// How long a child exiting in order waits for the parent to take what it
/// still has queued (ShutdownComplete, the entries pfkey flushed).
pub const EXIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the parent channel has for us now.
#[derive(Debug)]
pub enum FromParent {
    Message(ParentToChild),
    /// No whole message yet.
    Nothing,
    /// The channel closed: the parent is gone.
    Gone,
}

/// A child after its start: confined, connected, holding its descriptors.
pub struct StartedChild {
    /// Non-blocking from here on: see [`Channel`].
    pub parent: Channel,
    pub verbosity: Verbosity,
    pub descriptors: Vec<(DescriptorPurpose, OwnedFd)>,
}

impl StartedChild {
    /// Removes and returns the one descriptor given for `purpose`.
    pub fn take(&mut self, purpose: DescriptorPurpose) -> Option<OwnedFd> {
        let index = self.descriptors.iter().position(|(p, _)| *p == purpose)?;
        Some(self.descriptors.swap_remove(index).1)
    }

    /// Watches the parent channel on `poller` as `token`.
    pub fn register_parent(&mut self, poller: &Poller, token: u64) -> Result<(), String> {
        self.parent
            .register(poller, token)
            .map_err(|e| format!("epoll: {e}"))
    }

    /// The parent's next message, if one has arrived whole. Anything
    /// malformed is an error: exit, never guess.
    pub fn next_from_parent(&mut self) -> Result<FromParent, String> {
        match self.parent.try_recv::<ParentToChild>() {
            Ok(Some(received)) => Ok(FromParent::Message(
                received
                    .expect_descriptors(0)
                    .map_err(|e| format!("parent: {e}"))?
                    .0,
            )),
            Ok(None) => Ok(FromParent::Nothing),
            Err(ipc::IpcError::Closed) => Ok(FromParent::Gone),
            Err(e) => Err(format!("parent: {e}")),
        }
    }

    /// Tells the parent something, without waiting; failure means the
    /// parent is gone or has stopped reading.
    pub fn tell_parent(&mut self, message: &ChildToParent) -> Result<(), String> {
        self.parent
            .send(message)
            .map_err(|e| format!("parent channel: {e}"))
    }

    /// Writes what the parent channel has queued; call on each wakeup.
    pub fn flush_parent(&mut self, poller: &Poller) -> Result<(), String> {
        self.parent
            .flush()
            .map_err(|e| format!("parent channel: {e}"))?;
        self.parent
            .update_interest(poller)
            .map_err(|e| format!("epoll: {e}"))
    }

    /// Before an orderly exit: gives the parent a bounded time to take
    /// what is still queued.
    pub fn flush_parent_before_exit(&mut self) -> Result<(), String> {
        self.parent
            .flush_within(EXIT_FLUSH_TIMEOUT)
            .map_err(|e| format!("parent channel: {e}"))
    }
}

/// Runs the startup protocol of a child: logging, handshake, descriptors,
/// privilege drop, `Ready`. Any deviation is an error: the child must exit.
pub fn start(role: Role, log_to_stderr: bool) -> Result<StartedChild, String> {
    let destination = if log_to_stderr {
        logging::Destination::Stderr
    } else {
        logging::Destination::Syslog
    };
    logging::init(role, destination, Verbosity::Brief)?;

    // SAFETY: the parent placed our channel at this descriptor number before
    // exec, and nothing else in this process owns it.
    let parent = unsafe { OwnedFd::from_raw_fd(PARENT_CHANNEL_FD) };
    let hello = ipc::recv::<ParentToChild>(parent.as_fd())
        .map_err(|e| format!("handshake: {e}"))?
        .expect_descriptors(0)
        .map_err(|e| format!("handshake: {e}"))?
        .0;
    let ParentToChild::Hello {
        version,
        verbosity,
        chroot_dir,
        uid,
        gid,
    } = hello
    else {
        return Err(format!("handshake: expected Hello, got {hello:?}"));
    };
    if version != IPC_VERSION {
        return Err(format!(
            "handshake: parent speaks IPC version {version}, we speak {IPC_VERSION}"
        ));
    }
    logging::set_verbosity(verbosity);
    ipc::send(
        parent.as_fd(),
        &ChildToParent::Hello {
            version: IPC_VERSION,
            role,
        },
        &[],
    )
    .map_err(|e| format!("handshake: {e}"))?;

    let mut descriptors = Vec::new();
    loop {
        let received =
            ipc::recv::<ParentToChild>(parent.as_fd()).map_err(|e| format!("startup: {e}"))?;
        match received.message {
            ParentToChild::Descriptor(purpose) => {
                let (_, mut fds) = ipc::Received {
                    message: (),
                    descriptors: received.descriptors,
                }
                .expect_descriptors(1)
                .map_err(|e| format!("startup: {purpose:?}: {e}"))?;
                if descriptors.len() >= MAX_DESCRIPTORS {
                    return Err(format!("startup: more than {MAX_DESCRIPTORS} descriptors"));
                }
                descriptors.extend(fds.pop().map(|fd| (purpose, fd)));
            }
            ParentToChild::DropPrivileges if received.descriptors.is_empty() => break,
            other => return Err(format!("startup: unexpected {other:?}")),
        }
    }
    drop_privileges(role, &chroot_dir, uid, gid)?;
    // Credentials changed, which cleared any parent-death signal: set it now
    // as a second line behind the closed channel. Not for pfkey: it must
    // live to flush our kernel entries when it sees the channel close.
    if role != Role::Pfkey {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    }
    // The handshake is over: from here on nothing waits on the parent.
    let mut started = StartedChild {
        parent: Channel::new(parent),
        verbosity,
        descriptors,
    };
    started.tell_parent(&ChildToParent::Ready)?;
    log::debug!("privileges dropped, serving");
    Ok(started)
}
