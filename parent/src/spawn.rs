//! Starting a child: fork+exec of our own binary with a hidden role argument,
//! its parent channel at descriptor 3 and nothing else but stdio.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use iked_common::child::PARENT_CHANNEL_FD;
use iked_common::ipc::{Channel, Role};
use nix::unistd::Pid;

/// A running child as the parent sees it.
pub struct Child {
    pub role: Role,
    pub pid: Pid,
    /// Blocking exchanges only during the startup handshake; after it,
    /// everything goes through the channel's queue and never waits.
    pub channel: Channel,
    /// Set once the child has been reaped.
    pub exited: bool,
}

/// Starts `role` with `child_end` as its channel. Every other descriptor of
/// ours is close-on-exec (Rust opens them so), so the child starts with
/// stdio and its channel only; the rest it is sent over the channel.
/// `log_keys` (`iked --log-keys`) reaches ikev2 only, the one process that
/// has session keys.
pub fn spawn(
    role: Role,
    parent_end: OwnedFd,
    child_end: OwnedFd,
    log_to_stderr: bool,
    log_keys: bool,
) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find our own binary: {e}"))?;
    let mut command = Command::new(exe);
    command.arg("--privsep-child").arg(role.name());
    if log_to_stderr {
        command.arg("-d");
    }
    if log_keys && role == Role::Ikev2 {
        command.arg("--log-keys");
    }
    // The children log as the parent does: same facility, same socket.
    let syslog = iked_common::logging::syslog_settings();
    command
        .arg("--syslog-facility")
        .arg(syslog.facility.name())
        .arg("--syslog-socket")
        .arg(&syslog.socket);
    command.stdin(Stdio::null()).env_clear();
    let raw = child_end.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2, fcntl, close_range)
    // between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if raw == PARENT_CHANNEL_FD {
                // dup2 onto itself would keep close-on-exec: clear it instead.
                if nix::libc::fcntl(raw, nix::libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if nix::libc::dup2(raw, PARENT_CHANNEL_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Whatever we inherited without close-on-exec stays with us:
            // the child gets stdio and its channel, nothing else.
            if nix::libc::syscall(
                nix::libc::SYS_close_range,
                PARENT_CHANNEL_FD + 1,
                u32::MAX,
                0,
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let process = command
        .spawn()
        .map_err(|e| format!("cannot start the {role} process: {e}"))?;
    drop(child_end);
    Ok(Child {
        role,
        pid: Pid::from_raw(process.id() as i32),
        channel: Channel::new(parent_end),
        exited: false,
    })
}

/// "killed by signal 9", "exited with status 1", as a log line wants it.
pub fn describe_exit(status: nix::sys::wait::WaitStatus) -> String {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("killed by signal {}", signal as i32),
        WaitStatus::Stopped(_, signal) => format!("stopped by signal {}", signal as i32),
        other => format!("{other:?}"),
    }
}
