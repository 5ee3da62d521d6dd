//! Reaching the daemon: a failure to connect says whether iked is not
//! running or the socket is not ours to use, with the socket's name and
//! the group that may use it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};

/// Why ikectl could not talk to the daemon, as the JSON `error_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The daemon answered that the command failed.
    Failed,
    /// No daemon: the socket is missing or nobody listens on it.
    NotRunning,
    /// The socket exists but this user may not use it.
    PermissionDenied,
    /// The conversation broke (timeout, garbage, version).
    Protocol,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Failed => "failed",
            FailureKind::NotRunning => "not_running",
            FailureKind::PermissionDenied => "permission_denied",
            FailureKind::Protocol => "protocol",
        }
    }
}

/// An error with its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            kind: FailureKind::Failed,
            message,
        }
    }
}

impl Failure {
    pub fn protocol(message: String) -> Failure {
        Failure {
            kind: FailureKind::Protocol,
            message,
        }
    }
}

/// Who may use the socket at `path`, from its owner group: root, and the
/// members of `set control_group` when the daemon opened it to one.
fn who_may_use(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(meta) if meta.gid() != 0 && meta.mode() & 0o060 == 0o060 => {
            let gid = nix::unistd::Gid::from_raw(meta.gid());
            let name = nix::unistd::Group::from_gid(gid)
                .ok()
                .flatten()
                .map(|g| g.name)
                .unwrap_or_else(|| format!("gid {}", meta.gid()));
            format!("only root and members of group {name} may use it")
        }
        _ => "only root may use it (set control_group in iked.conf to allow a group)".into(),
    }
}

/// What a connect(2) error means to an operator.
pub fn explain(path: &Path, errno: Errno) -> Failure {
    let shown = path.display();
    match errno {
        Errno::ENOENT => Failure {
            kind: FailureKind::NotRunning,
            message: format!("iked is not running: control socket {shown} does not exist"),
        },
        Errno::ECONNREFUSED => Failure {
            kind: FailureKind::NotRunning,
            message: format!(
                "iked is not running: nobody listens on control socket {shown} (left by a \
                 daemon that has stopped)"
            ),
        },
        Errno::EACCES | Errno::EPERM => Failure {
            kind: FailureKind::PermissionDenied,
            message: format!(
                "control socket {shown}: {} ({})",
                errno.desc(),
                who_may_use(path)
            ),
        },
        Errno::ENOTSOCK | Errno::EPROTOTYPE => Failure {
            kind: FailureKind::NotRunning,
            message: format!("{shown} is not iked's control socket ({})", errno.desc()),
        },
        other => Failure {
            kind: FailureKind::NotRunning,
            message: format!(
                "cannot connect to control socket {shown}: {} (is iked running?)",
                other.desc()
            ),
        },
    }
}

/// Connects to the control socket at `path`.
pub fn connect_to(path: &Path) -> Result<OwnedFd, Failure> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Failure::protocol(format!("socket: {}", e.desc())))?;
    let address = UnixAddr::new(path)
        .map_err(|e| Failure::protocol(format!("{}: {}", path.display(), e.desc())))?;
    if let Err(errno) = connect(fd.as_raw_fd(), &address) {
        // A path that exists but is no socket says so rather than ECONNREFUSED.
        let not_socket = std::fs::symlink_metadata(path)
            .map(|m| !m.file_type().is_socket())
            .unwrap_or(false);
        return Err(explain(
            path,
            if not_socket { Errno::ENOTSOCK } else { errno },
        ));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_says_the_daemon_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iked.sock");
        let failure = connect_to(&path).unwrap_err();
        assert_eq!(failure.kind, FailureKind::NotRunning);
        assert!(
            failure.message.contains("iked is not running"),
            "{failure:?}"
        );
        assert!(
            failure.message.contains(&path.display().to_string()),
            "{failure:?}"
        );
    }

    #[test]
    fn a_socket_nobody_listens_on_is_a_stopped_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iked.sock");
        // Bound and closed: the file stays, nobody listens.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let failure = connect_to(&path).unwrap_err();
        assert_eq!(failure.kind, FailureKind::NotRunning, "{failure:?}");
        assert!(failure.message.contains("nobody listens"), "{failure:?}");
    }

    #[test]
    fn permission_denied_names_the_socket_and_who_may_use_it() {
        let failure = explain(Path::new("/nonexistent/iked.sock"), Errno::EACCES);
        assert_eq!(failure.kind, FailureKind::PermissionDenied);
        assert!(
            failure.message.contains("/nonexistent/iked.sock"),
            "{failure:?}"
        );
        assert!(failure.message.contains("Permission denied"), "{failure:?}");
        assert!(failure.message.contains("only root"), "{failure:?}");
    }
}
