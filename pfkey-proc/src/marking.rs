//! The mark on every kernel entry pfkey installs, and the sweep that finds
//! marked entries again: at start (what a previous instance that died with
//! its pfkey process left) and in the parent after pfkey is lost (what
//! pfkey installed but had not yet reported).
//!
//! The mark is the reqid: every SA, larval SA and policy template we add
//! carries one from [`IKED_REQIDS`] (why a reqid range and not an XFRM mark:
//! see there). [`MarkedBackend`] wraps the backend the service uses, so
//! every install of any kind goes through its check: a new kind of entry is
//! a new [`KernelBackend`] method, which this wrapper must implement and so
//! must decide how to mark. An install without our mark is refused, never
//! sent: it could neither be swept later nor told from a foreign entry.

use std::os::fd::BorrowedFd;

use iked_common::kernel::{
    reqid_is_ours, FailureKind, KernelEvent, KernelFailure, KernelSocketKind, PolicyDirection,
    PolicyParams, SaCounters, SaId, SaParams, Selector, IKED_REQIDS, IKED_WIDE_REQIDS,
};

use crate::backend::{
    local_failure, BackendError, DumpedPolicy, DumpedSa, KernelBackend, MigrateRequest, SpiRequest,
    SupportedAlgorithms,
};

/// A backend that installs only entries marked as ours.
pub struct MarkedBackend {
    inner: Box<dyn KernelBackend>,
}

impl MarkedBackend {
    pub fn new(inner: Box<dyn KernelBackend>) -> MarkedBackend {
        MarkedBackend { inner }
    }
}

fn check_mark(operation: &str, reqid: u32) -> Result<(), KernelFailure> {
    if reqid_is_ours(reqid) {
        return Ok(());
    }
    Err(local_failure(
        FailureKind::NotPermitted,
        format!(
            "refused: {operation} with reqid {reqid}: iked's entries carry reqids {}..={} \
             or {}..={} only",
            IKED_REQIDS.start(),
            IKED_REQIDS.end(),
            IKED_WIDE_REQIDS.start(),
            IKED_WIDE_REQIDS.end()
        ),
    ))
}

/// PF_KEY carries policy reqids only up to 0x3fff (above it Linux picks
/// its own, and the mark would be lost): an entry from the wide range is
/// refused there, with the limit named.
fn check_fits_kernel(
    kind: KernelSocketKind,
    operation: &str,
    reqid: u32,
) -> Result<(), KernelFailure> {
    if kind == KernelSocketKind::Pfkey && !IKED_REQIDS.contains(&reqid) {
        return Err(local_failure(
            FailureKind::NotPermitted,
            format!(
                "refused: {operation} with reqid {reqid}: PF_KEY carries reqids up to {} only, \
                 so iked holds at most 4095 flows and Child SAs at once over PF_KEY \
                 (XFRM has no such limit)",
                IKED_REQIDS.end()
            ),
        ));
    }
    Ok(())
}

impl KernelBackend for MarkedBackend {
    fn kind(&self) -> KernelSocketKind {
        self.inner.kind()
    }

    fn register(&mut self) -> Result<SupportedAlgorithms, KernelFailure> {
        self.inner.register()
    }

    fn allocate_spi(&mut self, request: &SpiRequest) -> Result<u32, KernelFailure> {
        check_mark("allocate SPI", request.reqid)?;
        self.inner.allocate_spi(request)
    }

    fn add_sa(&mut self, sa: &SaParams, update: bool) -> Result<(), KernelFailure> {
        let operation = if update { "update SA" } else { "add SA" };
        check_mark(operation, sa.reqid)?;
        check_fits_kernel(self.inner.kind(), operation, sa.reqid)?;
        self.inner.add_sa(sa, update)
    }

    fn delete_sa(&mut self, id: &SaId) -> Result<(), KernelFailure> {
        self.inner.delete_sa(id)
    }

    fn sa_counters(&mut self, id: &SaId) -> Result<SaCounters, KernelFailure> {
        self.inner.sa_counters(id)
    }

    fn add_policy(&mut self, policy: &PolicyParams) -> Result<(), KernelFailure> {
        check_mark("add policy", policy.template.reqid)?;
        check_fits_kernel(self.inner.kind(), "add policy", policy.template.reqid)?;
        self.inner.add_policy(policy)
    }

    fn delete_policy(
        &mut self,
        selector: &Selector,
        direction: PolicyDirection,
    ) -> Result<(), KernelFailure> {
        self.inner.delete_policy(selector, direction)
    }

    fn migrate(&mut self, request: &MigrateRequest) -> Result<(), KernelFailure> {
        // The moved entries keep their reqid: it must be ours already.
        check_mark("migrate", request.reqid)?;
        self.inner.migrate(request)
    }

    fn dump_sas(&mut self) -> Result<Vec<DumpedSa>, KernelFailure> {
        self.inner.dump_sas()
    }

    fn dump_policies(&mut self) -> Result<Vec<DumpedPolicy>, KernelFailure> {
        self.inner.dump_policies()
    }

    fn event_fd(&self) -> BorrowedFd<'_> {
        self.inner.event_fd()
    }

    fn read_events(&mut self) -> Result<Vec<KernelEvent>, KernelFailure> {
        self.inner.read_events()
    }
}

/// What a sweep removed, and what it could not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub sas: usize,
    pub policies: usize,
    /// One line per entry the kernel would not remove, with its reason.
    pub failures: Vec<String>,
}

impl Swept {
    pub fn total(&self) -> usize {
        self.sas + self.policies
    }
}

impl std::fmt::Display for Swept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} SAs and {} policies", self.sas, self.policies)
    }
}

/// Removes every entry marked as ours from the kernel, SAs first (traffic
/// is then dropped by the policies, never sent in clear), and nothing
/// else: foreign entries (other reqids, template-less or socket policies)
/// are left as they are. An entry already gone is not a failure.
pub fn sweep_marked(backend: &mut dyn KernelBackend) -> Result<Swept, KernelFailure> {
    let mut swept = Swept::default();
    let sas: Vec<DumpedSa> = backend
        .dump_sas()?
        .into_iter()
        .filter(|sa| reqid_is_ours(sa.reqid))
        .collect();
    for sa in sas {
        match backend.delete_sa(&sa.id) {
            Ok(()) => swept.sas += 1,
            Err(f) if f.kind == FailureKind::NotFound => {}
            Err(f) => swept.failures.push(format!("{}: {}", sa.id, f.message)),
        }
    }
    let policies: Vec<DumpedPolicy> = backend
        .dump_policies()?
        .into_iter()
        .filter(|p| p.template.is_some_and(|t| reqid_is_ours(t.reqid)))
        .collect();
    for policy in policies {
        match backend.delete_policy(&policy.selector, policy.direction) {
            Ok(()) => swept.policies += 1,
            Err(f) if f.kind == FailureKind::NotFound => {}
            Err(f) => swept.failures.push(format!(
                "policy {} dir {:?}: {}",
                policy.selector, policy.direction, f.message
            )),
        }
    }
    Ok(swept)
}

/// For the parent (root), after pfkey is gone: sweeps our marked entries
/// through a socket of its own, so that what pfkey installed but had not
/// yet reported (killed between the kernel's answer and its report) goes
/// too.
pub fn sweep_marked_entries(kind: KernelSocketKind) -> Result<Swept, BackendError> {
    let sockets = crate::socket::open_kernel_sockets(Some(kind))?;
    let mut backend = crate::service::open_backend(kind, sockets.requests, sockets.events)?;
    sweep_marked(backend.as_mut()).map_err(|f| BackendError::NotRemoved(vec![f.message]))
}
