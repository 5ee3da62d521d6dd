//! The kernel key interface behind pfkey-proc, whichever socket carries it.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use iked_common::kernel::{
    Encryption, FailureKind, Integrity, IpsecMode, IpsecProtocol, KernelEvent, KernelFailure,
    KernelSocketKind, PolicyDirection, PolicyParams, SaCounters, SaId, SaParams, SaTemplate,
    Selector,
};

/// The transforms the kernel says it can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedAlgorithms {
    pub encryption: Vec<Encryption>,
    pub integrity: Vec<Integrity>,
    /// False when the interface has no way to ask (XFRM): the kernel then
    /// checks each algorithm when an SA is added.
    pub reported_by_kernel: bool,
}

/// One kernel key interface: PF_KEY v2 or XFRM netlink. Requests block for
/// the kernel's answer (it answers synchronously, bounded by a receive
/// timeout); events are read without blocking when the event socket is ready.
pub trait KernelBackend: Send {
    fn kind(&self) -> KernelSocketKind;

    /// Starts receiving ACQUIRE and EXPIRE on the event socket and learns
    /// the supported algorithms.
    fn register(&mut self) -> Result<SupportedAlgorithms, KernelFailure>;

    /// Reserves an SPI in `min..=max` for an SA from `src` to `dst`.
    fn allocate_spi(&mut self, request: &SpiRequest) -> Result<u32, KernelFailure>;

    /// Adds an SA, or with `update` replaces one (including the larval SA an
    /// SPI allocation left behind).
    fn add_sa(&mut self, sa: &SaParams, update: bool) -> Result<(), KernelFailure>;

    fn delete_sa(&mut self, id: &SaId) -> Result<(), KernelFailure>;

    /// What the kernel has counted on one SA (its current lifetime).
    fn sa_counters(&mut self, id: &SaId) -> Result<SaCounters, KernelFailure>;

    fn add_policy(&mut self, policy: &PolicyParams) -> Result<(), KernelFailure>;

    fn delete_policy(
        &mut self,
        selector: &Selector,
        direction: PolicyDirection,
    ) -> Result<(), KernelFailure>;

    /// Moves one policy's template, and the SAs it names, to new gateway
    /// addresses (XFRM_MSG_MIGRATE). Unsupported where the interface has
    /// no such request.
    fn migrate(&mut self, request: &MigrateRequest) -> Result<(), KernelFailure>;

    /// Every SA in the kernel (ours and others'), with its reqid.
    fn dump_sas(&mut self) -> Result<Vec<DumpedSa>, KernelFailure>;

    /// Every policy in the kernel, as (selector, direction, template reqid).
    fn dump_policies(&mut self) -> Result<Vec<DumpedPolicy>, KernelFailure>;

    /// The descriptor that becomes readable when the kernel has events.
    fn event_fd(&self) -> BorrowedFd<'_>;

    /// Reads the pending events without blocking.
    fn read_events(&mut self) -> Result<Vec<KernelEvent>, KernelFailure>;
}

/// What an SPI is reserved for: an SA from `src` to `dst`, its SPI in
/// `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiRequest {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpsecProtocol,
    pub mode: IpsecMode,
    pub reqid: u32,
    pub min: u32,
    pub max: u32,
}

/// One policy's share of a migration (RFC 4555 §3.5, RFC 7296 §2.23):
/// the policy, its template's tunnel endpoints before and after (in the
/// policy's direction: out is local to peer, in and fwd peer to local),
/// and the UDP encapsulation the SAs it moves get (ports in the same
/// direction). The kernel finds the SAs by those addresses, protocol,
/// mode and reqid, not by SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateRequest {
    pub selector: Selector,
    pub direction: PolicyDirection,
    pub old_src: IpAddr,
    pub old_dst: IpAddr,
    pub new_src: IpAddr,
    pub new_dst: IpAddr,
    pub protocol: IpsecProtocol,
    pub mode: IpsecMode,
    pub reqid: u32,
    pub encap: Option<iked_common::kernel::UdpEncap>,
}

/// An SA found in a dump: what deletes it, and the reqid that says whose
/// it is ([`iked_common::kernel::IKED_REQIDS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpedSa {
    pub id: SaId,
    pub reqid: u32,
}

/// A policy found in a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedPolicy {
    pub selector: Selector,
    pub direction: PolicyDirection,
    pub priority: u32,
    pub template: Option<SaTemplate>,
}

impl DumpedPolicy {
    /// A dumped policy as we keep it: with its first template only.
    pub(crate) fn new(
        selector: Selector,
        direction: PolicyDirection,
        priority: u32,
        templates: &[SaTemplate],
    ) -> DumpedPolicy {
        DumpedPolicy {
            selector,
            direction,
            priority,
            template: templates.first().copied(),
        }
    }

    /// The entries of a policy dump that decode. Socket policies
    /// (directions above FWD) and non-ESP templates belong to other
    /// software: they are skipped, logged at debug, so that we list what
    /// we can read.
    pub(crate) fn readable<E: std::fmt::Display>(
        backend: &str,
        decoded: impl IntoIterator<Item = Result<DumpedPolicy, E>>,
    ) -> Vec<DumpedPolicy> {
        let mut out = Vec::new();
        for entry in decoded {
            match entry {
                Ok(policy) => out.push(policy),
                Err(e) => log::debug!("{backend}: policy dump entry skipped: {e}"),
            }
        }
        out
    }
}

/// Why a kernel key interface cannot be used at all, as opposed to one
/// request failing (a [`KernelFailure`], which crosses to ikev2 and the
/// parent as it is). The parent meets these when it opens the sockets or
/// flushes entries pfkey-proc left; pfkey-proc when it starts.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No kind of kernel key socket could be opened: why, for each tried.
    #[error("cannot open a kernel key socket ({})", .0.join("; "))]
    NoSocket(Vec<String>),
    /// A socket option the backend needs was refused.
    #[error("{backend}: {option}: {}", .errno.desc())]
    SocketOption {
        backend: &'static str,
        option: &'static str,
        errno: nix::Error,
    },
    /// The kernel refused to register us (for events, or for ESP).
    #[error("{}: {}", .kind.name(), .failure.message)]
    Register {
        kind: KernelSocketKind,
        failure: KernelFailure,
    },
    /// Entries that could not be removed, each with the kernel's reason.
    #[error("{}", .0.join("; "))]
    NotRemoved(Vec<String>),
}

/// A kernel errno turned into a failure a person can act on.
pub fn kernel_failure(operation: &str, errno: i32, kernel_text: Option<&str>) -> KernelFailure {
    use nix::errno::Errno;
    let (kind, what) = match Errno::from_raw(errno) {
        Errno::EPROTONOSUPPORT => (
            FailureKind::Unsupported,
            "kernel has no ESP support (esp4/esp6 not loaded)".to_string(),
        ),
        Errno::ENOSYS => (
            FailureKind::Unsupported,
            "kernel lacks the requested algorithm (crypto module not loaded)".to_string(),
        ),
        Errno::EAFNOSUPPORT => (
            FailureKind::Unsupported,
            "kernel does not support this address family for IPsec".to_string(),
        ),
        Errno::EEXIST => (
            FailureKind::AlreadyExists,
            "entry already exists".to_string(),
        ),
        Errno::ESRCH | Errno::ENOENT => (FailureKind::NotFound, "no such entry".to_string()),
        Errno::EPERM | Errno::EACCES => (
            FailureKind::Kernel,
            "not permitted (pfkey needs CAP_NET_ADMIN)".to_string(),
        ),
        Errno::EINVAL => (
            FailureKind::Kernel,
            "kernel rejected the parameters as invalid".to_string(),
        ),
        other => (FailureKind::Kernel, other.desc().to_string()),
    };
    let name = Errno::from_raw(errno);
    let message = match kernel_text {
        Some(text) if !text.is_empty() => {
            format!("{operation}: {what} ({name:?}: kernel says \"{text}\")")
        }
        _ => format!("{operation}: {what} ({name:?})"),
    };
    KernelFailure {
        kind,
        errno,
        message,
    }
}

/// A failure that is ours, not the kernel's (malformed reply, timeout).
pub fn local_failure(kind: FailureKind, message: String) -> KernelFailure {
    KernelFailure {
        kind,
        errno: 0,
        message,
    }
}

/// A kernel reply we cannot read.
pub fn malformed(operation: &str, e: impl std::fmt::Display) -> KernelFailure {
    local_failure(
        FailureKind::Kernel,
        format!("{operation}: malformed kernel reply: {e}"),
    )
}

/// The SPI the kernel allocated, if it is the one asked for: in the
/// request's range, towards its destination.
pub fn allocated_spi(
    operation: &str,
    answered: &SaId,
    request: &SpiRequest,
) -> Result<u32, KernelFailure> {
    if answered.spi < request.min || answered.spi > request.max || answered.dst != request.dst {
        return Err(malformed(
            operation,
            format!("kernel allocated {answered} outside the request"),
        ));
    }
    Ok(answered.spi)
}

/// Refuses an answer about another SA than the one asked about.
pub fn check_answered_for(
    operation: &str,
    asked: &SaId,
    answered: &SaId,
) -> Result<(), KernelFailure> {
    if answered.dst != asked.dst || answered.spi != asked.spi {
        return Err(malformed(
            operation,
            format!("kernel answered for {answered} instead of {asked}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_esp_becomes_a_clear_unsupported_failure() {
        let f = kernel_failure("add SA", 93, Some("Requested type not found"));
        assert_eq!(f.kind, FailureKind::Unsupported);
        assert_eq!(f.errno, 93);
        assert_eq!(
            f.message,
            "add SA: kernel has no ESP support (esp4/esp6 not loaded) (EPROTONOSUPPORT: kernel says \"Requested type not found\")"
        );
    }

    #[test]
    fn backend_errors_read_as_the_strings_they_replaced() {
        let option = BackendError::SocketOption {
            backend: "xfrm",
            option: "SO_RCVTIMEO",
            errno: nix::Error::EPERM,
        };
        assert_eq!(
            option.to_string(),
            format!("xfrm: SO_RCVTIMEO: {}", nix::Error::EPERM.desc())
        );
        let none = BackendError::NoSocket(vec!["xfrm: a".into(), "pfkey: b".into()]);
        assert_eq!(
            none.to_string(),
            "cannot open a kernel key socket (xfrm: a; pfkey: b)"
        );
        let register = BackendError::Register {
            kind: KernelSocketKind::Pfkey,
            failure: kernel_failure("register for ESP", 1, None),
        };
        assert_eq!(
            register.to_string(),
            "pfkey: register for ESP: not permitted (pfkey needs CAP_NET_ADMIN) (EPERM)"
        );
    }

    #[test]
    fn common_errnos_map_to_kinds() {
        assert_eq!(
            kernel_failure("x", 17, None).kind,
            FailureKind::AlreadyExists
        );
        assert_eq!(kernel_failure("x", 3, None).kind, FailureKind::NotFound);
        assert_eq!(kernel_failure("x", 2, None).kind, FailureKind::NotFound);
        assert_eq!(kernel_failure("x", 38, None).kind, FailureKind::Unsupported);
        let other = kernel_failure("del", 105, None);
        assert_eq!(other.kind, FailureKind::Kernel);
        assert!(other.message.starts_with("del: "), "{}", other.message);
        assert!(other.message.ends_with("(ENOBUFS)"), "{}", other.message);
    }
}
