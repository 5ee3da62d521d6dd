//! Opening the kernel key sockets. Done by the parent (root), which passes the
//! descriptors to pfkey-proc and can open fresh ones to flush our entries if
//! pfkey-proc dies.

use std::os::fd::OwnedFd;

use iked_common::kernel::KernelSocketKind;

use crate::backend::BackendError;

/// PF_KEY_V2 (RFC 2367 §2): the protocol number of a PF_KEY socket.
const PF_KEY_V2: i32 = 2;

/// Both sockets of one kernel interface: one for requests and their replies,
/// one for the kernel's own events, so an event never lands in the middle of
/// a request/reply pair.
pub struct KernelSockets {
    pub kind: KernelSocketKind,
    pub requests: OwnedFd,
    pub events: OwnedFd,
}

fn open_one(kind: KernelSocketKind) -> nix::Result<OwnedFd> {
    match kind {
        KernelSocketKind::Xfrm => raw_socket(nix::libc::AF_NETLINK, nix::libc::NETLINK_XFRM),
        KernelSocketKind::Pfkey => raw_socket(nix::libc::PF_KEY, PF_KEY_V2),
    }
}

/// socket(2) for families nix has no constants for (NETLINK_XFRM, PF_KEY).
fn raw_socket(family: i32, protocol: i32) -> nix::Result<OwnedFd> {
    // SAFETY: a plain system call with integer arguments.
    let fd = unsafe {
        nix::libc::socket(
            family,
            nix::libc::SOCK_RAW | nix::libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: socket(2) just returned this descriptor to us alone.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// Opens the kernel sockets: the preferred kind, or, with no preference, XFRM
/// falling back to PF_KEY when netlink XFRM is unavailable.
pub fn open_kernel_sockets(
    preference: Option<KernelSocketKind>,
) -> Result<KernelSockets, BackendError> {
    let candidates: &[KernelSocketKind] = match preference {
        Some(KernelSocketKind::Xfrm) => &[KernelSocketKind::Xfrm],
        Some(KernelSocketKind::Pfkey) => &[KernelSocketKind::Pfkey],
        None => &[KernelSocketKind::Xfrm, KernelSocketKind::Pfkey],
    };
    let mut failures = Vec::new();
    for &kind in candidates {
        match open_one(kind).and_then(|requests| Ok((requests, open_one(kind)?))) {
            Ok((requests, events)) => {
                if failures.is_empty() {
                    log::info!("kernel key interface: {}", kind.name());
                } else {
                    log::warn!(
                        "kernel key interface: {} ({} unavailable)",
                        kind.name(),
                        failures.join("; ")
                    );
                }
                return Ok(KernelSockets {
                    kind,
                    requests,
                    events,
                });
            }
            Err(e) => failures.push(format!("{}: {}", kind.name(), e.desc())),
        }
    }
    Err(BackendError::NoSocket(failures))
}
