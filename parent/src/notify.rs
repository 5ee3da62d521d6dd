//! Readiness for a service manager: the sd_notify datagram protocol, by hand
//! (systemd's sd_notify(3): one datagram of `KEY=value` lines sent to the
//! unix socket named by `$NOTIFY_SOCKET`; `@` starts an abstract name).
//!
//! Every call is a no-op without `NOTIFY_SOCKET` and never blocks: the
//! datagram is sent with MSG_DONTWAIT and a failure is logged at debug level
//! and forgotten, because a daemon must never stall on its supervisor.
//! The children never see the variable (spawn.rs clears their environment),
//! so only the parent, the unit's main process, speaks.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;

/// The supervisor's socket, read once: `None` when not started by one.
fn target() -> Option<&'static SocketAddr> {
    static TARGET: OnceLock<Option<SocketAddr>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let value = std::env::var_os("NOTIFY_SOCKET")?;
            match address_of(value.as_encoded_bytes()) {
                Ok(address) => Some(address),
                Err(e) => {
                    log::warn!("NOTIFY_SOCKET {value:?} is not usable: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// A `NOTIFY_SOCKET` value as a socket address: an absolute path, or
/// `@name` for the abstract namespace.
fn address_of(value: &[u8]) -> Result<SocketAddr, String> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    match value.first() {
        Some(b'/') => {
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(value)).map_err(|e| e.to_string())
        }
        Some(b'@') => SocketAddr::from_abstract_name(&value[1..]).map_err(|e| e.to_string()),
        _ => Err("neither an absolute path nor an abstract name (@...)".into()),
    }
}

/// True when a service manager waits for our readiness: the parent then
/// stays in the foreground (the manager tracks its pid) and still logs to
/// syslog, which the journal collects.
pub fn supervised() -> bool {
    target().is_some()
}

/// Children up and the configuration sent to them: the service is started.
pub fn ready() {
    send(&format!(
        "READY=1\nMAINPID={}\nSTATUS=running",
        std::process::id()
    ));
}

/// A reload (SIGHUP) begins; systemd shows the unit as "reloading".
pub fn reloading() {
    send(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the configuration",
        monotonic_usec()
    ));
}

/// The reload is over (applied or refused: the log says which, and either
/// way a configuration is in force).
pub fn reloaded() {
    send("READY=1\nSTATUS=running");
}

/// An orderly or fail-closed stop begins.
pub fn stopping() {
    send("STOPPING=1\nSTATUS=stopping");
}

/// CLOCK_MONOTONIC in microseconds, which systemd pairs with RELOADING=1.
fn monotonic_usec() -> u64 {
    let mut now = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return 0;
    }
    (now.tv_sec as u64) * 1_000_000 + (now.tv_nsec as u64) / 1_000
}

fn send(message: &str) {
    let Some(address) = target() else {
        return;
    };
    if let Err(e) = send_to(address, message) {
        log::debug!("sd_notify {:?}: {e}", message.lines().next());
    }
}

fn send_to(address: &SocketAddr, message: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    // Never wait on the supervisor: a full queue loses the notice.
    socket.set_nonblocking(true)?;
    socket.send_to_addr(message.as_bytes(), address)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;

    #[test]
    fn paths_and_abstract_names_are_understood_and_others_refused() {
        let path = address_of(b"/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abstract_name = address_of(b"@/org/freedesktop/systemd1/notify/1").unwrap();
        assert_eq!(
            abstract_name.as_abstract_name(),
            Some(&b"/org/freedesktop/systemd1/notify/1"[..])
        );
        assert!(address_of(b"relative/path").is_err());
        assert!(address_of(b"").is_err());
    }

    #[test]
    fn a_notice_arrives_as_one_datagram_and_a_full_queue_does_not_block() {
        let dir = std::env::temp_dir().join(format!("iked-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let address = SocketAddr::from_pathname(&path).unwrap();
        send_to(&address, "READY=1\nSTATUS=running").unwrap();
        let mut buffer = [0u8; 256];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=running");
        // Nobody reads: the queue fills and sends fail at once, never wait.
        let mut refused = false;
        for _ in 0..100_000 {
            if send_to(&address, "STOPPING=1").is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused, "a full notify queue must refuse, not block");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_hang() {
        let address = SocketAddr::from_pathname("/nonexistent/iked-notify").unwrap();
        assert!(send_to(&address, "READY=1").is_err());
    }
}
