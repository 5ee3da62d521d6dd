//! The start of every child process: the handshake with the parent, the
//! descriptors it hands over, and the privilege drop. After this a child
//! holds exactly what the privilege table allows.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::event::Poller;
use crate::ipc::{
    self, Channel, ChildToParent, DescriptorPurpose, IpcError, ParentToChild, Role, Verbosity,
    IPC_VERSION,
};
use crate::logging;
use crate::privileges::sandbox::{confine, Confinement};
use crate::privileges::PrivilegeError;

/// The descriptor number at which a child finds its channel to the parent.
pub const PARENT_CHANNEL_FD: i32 = 3;

/// Most descriptors a child accepts before the privilege drop.
const MAX_DESCRIPTORS: usize = 16;

/// How long a child exiting in order waits for the parent to take what it
/// still has queued (ShutdownComplete, the entries pfkey flushed).
pub const EXIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a child stops serving: it logs the error and exits with status 1
/// ([`exit_status`]). Each case names the channel or the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The handshake channel to the parent failed or carried garbage.
    #[error("handshake: {0}")]
    Handshake(IpcError),
    /// The parent is from another build.
    #[error("handshake: parent speaks IPC version {parent}, we speak {IPC_VERSION}")]
    Version { parent: u32 },
    /// A channel failed, or carried something that does not decode: `peer`
    /// is "parent" (receiving), "parent channel" (sending), "startup" (the
    /// descriptors), or a sibling's name.
    #[error("{peer} channel: {error}")]
    Channel { peer: &'static str, error: IpcError },
    /// The event loop's epoll failed.
    #[error("epoll: {0}")]
    Poll(#[from] std::io::Error),
    /// A well-formed message this process never takes from that peer.
    #[error("unexpected {message} from {from}")]
    Unexpected { from: &'static str, message: String },
    /// The confinement failed, or did not hold when checked.
    #[error(transparent)]
    Confinement(#[from] PrivilegeError),
    /// A sibling's message that decoded but is refused (the engine's checks:
    /// an answer to nothing asked, say).
    #[error("{peer} channel: {reason}")]
    Refused { peer: &'static str, reason: String },
    /// The process could not be set up as it must be (logging, the
    /// descriptors it was given, confinement, its sockets or engine).
    #[error("{0}")]
    Setup(String),
}

impl ChildError {
    /// For `map_err` on channel operations: the failure, naming `peer`.
    pub fn on(peer: &'static str) -> impl Fn(IpcError) -> ChildError {
        move |error| ChildError::Channel { peer, error }
    }

    /// For `map_err` on handing a sibling's message on: the refusal, naming `peer`.
    pub fn refused(peer: &'static str) -> impl Fn(String) -> ChildError {
        move |reason| ChildError::Refused { peer, reason }
    }

    /// For a message that has no business arriving from `from`.
    pub fn unexpected(from: &'static str, message: &impl std::fmt::Debug) -> ChildError {
        ChildError::Unexpected {
            from,
            message: format!("{message:?}"),
        }
    }
}

impl From<String> for ChildError {
    fn from(message: String) -> Self {
        ChildError::Setup(message)
    }
}

impl From<&str> for ChildError {
    fn from(message: &str) -> Self {
        ChildError::Setup(message.to_string())
    }
}

/// The exit status of a child whose serving ended with `outcome`: 0 after
/// an orderly end, 1 with the error logged.
pub fn exit_status(outcome: Result<(), ChildError>) -> i32 {
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

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
    pub fn register_parent(&mut self, poller: &Poller, token: u64) -> Result<(), ChildError> {
        Ok(self.parent.register(poller, token)?)
    }

    /// The parent's next message, if one has arrived whole. Anything
    /// malformed is an error: exit, never guess.
    pub fn next_from_parent(&mut self) -> Result<FromParent, ChildError> {
        match self.parent.try_recv_message::<ParentToChild>() {
            Ok(Some(message)) => Ok(FromParent::Message(message)),
            Ok(None) => Ok(FromParent::Nothing),
            Err(IpcError::Closed) => Ok(FromParent::Gone),
            Err(e) => Err(ChildError::on("parent")(e)),
        }
    }

    /// Tells the parent something, without waiting; failure means the
    /// parent is gone or has stopped reading.
    pub fn tell_parent(&mut self, message: &ChildToParent) -> Result<(), ChildError> {
        self.parent
            .send(message)
            .map_err(ChildError::on("parent channel"))
    }

    /// Writes what the parent channel has queued; call on each wakeup.
    pub fn flush_parent(&mut self, poller: &Poller) -> Result<(), ChildError> {
        self.parent
            .flush()
            .map_err(ChildError::on("parent channel"))?;
        Ok(self.parent.update_interest(poller)?)
    }

    /// Before an orderly exit: gives the parent a bounded time to take
    /// what is still queued.
    pub fn flush_parent_before_exit(&mut self) -> Result<(), ChildError> {
        self.parent
            .flush_within(EXIT_FLUSH_TIMEOUT)
            .map_err(ChildError::on("parent channel"))
    }
}

/// Runs the startup protocol of a child: logging, handshake, descriptors,
/// privilege drop, `Ready`. Any deviation is an error: the child must exit.
pub fn start(role: Role, log_to_stderr: bool) -> Result<StartedChild, ChildError> {
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
        .and_then(|received| received.expect_descriptors(0))
        .map_err(ChildError::Handshake)?
        .0;
    let ParentToChild::Hello {
        version,
        verbosity,
        chroot_dir,
        uid,
        gid,
    } = hello
    else {
        return Err(ChildError::Setup(format!(
            "handshake: expected Hello, got {hello:?}"
        )));
    };
    if version != IPC_VERSION {
        return Err(ChildError::Version { parent: version });
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
    .map_err(ChildError::Handshake)?;

    let mut descriptors = Vec::new();
    let on_violation = loop {
        let received =
            ipc::recv::<ParentToChild>(parent.as_fd()).map_err(ChildError::on("startup"))?;
        match received.message {
            ParentToChild::Descriptor(purpose) => {
                let (_, mut fds) = ipc::Received {
                    message: (),
                    descriptors: received.descriptors,
                }
                .expect_descriptors(1)
                .map_err(|e| format!("startup: {purpose:?}: {e}"))?;
                if descriptors.len() >= MAX_DESCRIPTORS {
                    return Err(ChildError::Setup(format!(
                        "startup: more than {MAX_DESCRIPTORS} descriptors"
                    )));
                }
                descriptors.extend(fds.pop().map(|fd| (purpose, fd)));
            }
            ParentToChild::DropPrivileges { on_violation } if received.descriptors.is_empty() => {
                break on_violation
            }
            other => return Err(ChildError::unexpected("startup", &other)),
        }
    };
    let report = confine(&Confinement {
        role,
        chroot_dir,
        uid,
        gid,
        on_violation,
        // ca will read its key and certificate directories here (issue 13);
        // today every secret arrives over IPC, so no child reads a file.
        read_only_dirs: Vec::new(),
    })?;
    if report.landlock_fully_enforced {
        log::debug!("landlock: {}", report.landlock);
    } else {
        log::info!("landlock: {}", report.landlock);
    }
    if on_violation == crate::privileges::sandbox::ViolationAction::Log {
        log::warn!("seccomp: forbidden system calls are only logged (--seccomp-log)");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_errors_read_as_the_strings_they_replaced() {
        assert_eq!(
            ChildError::on("ikev2")(IpcError::Closed).to_string(),
            "ikev2 channel: peer closed the channel"
        );
        assert_eq!(
            ChildError::Version { parent: 2 }.to_string(),
            format!("handshake: parent speaks IPC version 2, we speak {IPC_VERSION}")
        );
        assert_eq!(
            ChildError::unexpected("parent", &Role::Ca).to_string(),
            "unexpected Ca from parent"
        );
        assert_eq!(
            ChildError::refused("pfkey")("reply to nothing".into()).to_string(),
            "pfkey channel: reply to nothing"
        );
        let epoll = std::io::Error::from_raw_os_error(9);
        assert!(ChildError::from(epoll).to_string().starts_with("epoll: "));
    }
}
