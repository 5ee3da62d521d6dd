//! The kernel service behind pfkey-proc's IPC: requests from ikev2 checked
//! against the configured flows, executed on the kernel socket, and the
//! kernel's events forwarded. Every entry we install is tracked (and
//! reported to the parent) so that stopping removes ours and nothing else.

use std::collections::HashSet;
use std::os::fd::{BorrowedFd, OwnedFd};

use iked_common::ipc::{ChildConfig, ChildToParent, Ikev2ToPfkey, PfkeyToIkev2};
use iked_common::kernel::{
    FailureKind, Flow, KernelEntry, KernelEvent, KernelFailure, KernelSocketKind, SaId,
};

use crate::backend::{local_failure, open_backend, KernelBackend};
use crate::flows;

/// What handling one input produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub to_ikev2: Vec<PfkeyToIkev2>,
    pub to_parent: Vec<ChildToParent>,
}

pub struct PfkeyService {
    backend: Box<dyn KernelBackend>,
    flows: Vec<Flow>,
    generation: u64,
    /// Entries in the kernel because of us (SAs, larval SAs, policies).
    installed: HashSet<KernelEntry>,
    /// SPIs allocated but not yet filled in: their SA is added by update.
    allocated: HashSet<SaId>,
}

impl PfkeyService {
    /// Takes the sockets the parent opened; subscribes to kernel events.
    pub fn new(kind: KernelSocketKind, requests: OwnedFd, events: OwnedFd) -> Result<Self, String> {
        let backend = open_backend(kind, requests, events)?;
        Self::with_backend(backend)
    }

    pub fn with_backend(mut backend: Box<dyn KernelBackend>) -> Result<Self, String> {
        let supported = backend
            .register()
            .map_err(|f| format!("{}: {}", backend.kind().name(), f.message))?;
        log::info!(
            "pfkey: using the {} kernel interface{}",
            backend.kind().name(),
            if supported.reported_by_kernel {
                format!(
                    "; kernel supports {}, {}",
                    supported
                        .encryption
                        .iter()
                        .map(|e| e.name())
                        .collect::<Vec<_>>()
                        .join(" "),
                    supported
                        .integrity
                        .iter()
                        .map(|i| i.name())
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            } else {
                String::new()
            }
        );
        Ok(PfkeyService {
            backend,
            flows: Vec::new(),
            generation: 0,
            installed: HashSet::new(),
            allocated: HashSet::new(),
        })
    }

    pub fn kind(&self) -> KernelSocketKind {
        self.backend.kind()
    }

    /// The descriptor to watch for kernel events.
    pub fn event_fd(&self) -> BorrowedFd<'_> {
        self.backend.event_fd()
    }

    /// The backend, for dumps in tests and diagnostics.
    pub fn backend_mut(&mut self) -> &mut dyn KernelBackend {
        self.backend.as_mut()
    }

    /// Entries currently installed by us.
    pub fn installed(&self) -> impl Iterator<Item = &KernelEntry> {
        self.installed.iter()
    }

    /// Takes the new flows. Entries of ours that no new flow covers are
    /// removed at once: after a reload the kernel never holds more than the
    /// configuration allows.
    pub fn apply_config(&mut self, config: &ChildConfig) -> Outcome {
        let mut outcome = Outcome::default();
        self.generation = config.generation();
        if let ChildConfig::Pfkey { flows, .. } = config {
            self.flows = flows.clone();
        } else {
            log::warn!("pfkey: ignoring a configuration meant for another process");
            return outcome;
        }
        let stale: Vec<KernelEntry> = self
            .installed
            .iter()
            .filter(|e| !self.entry_allowed(e))
            .cloned()
            .collect();
        for entry in stale {
            log::info!("pfkey: removing {entry}: no longer in any configured flow");
            self.remove_entry(&entry, &mut outcome);
        }
        outcome
    }

    fn entry_allowed(&self, entry: &KernelEntry) -> bool {
        match entry {
            KernelEntry::Sa(id) => self.flows.iter().any(|f| {
                (id.src == f.local && id.dst == f.peer) || (id.src == f.peer && id.dst == f.local)
            }),
            KernelEntry::Policy {
                selector,
                direction,
            } => self.flows.iter().any(|f| match direction {
                iked_common::kernel::PolicyDirection::Out => f.selector.contains(selector),
                _ => f.selector.reversed().contains(selector),
            }),
        }
    }

    fn added(&mut self, entry: KernelEntry, outcome: &mut Outcome) {
        if self.installed.insert(entry.clone()) {
            outcome
                .to_parent
                .push(ChildToParent::KernelEntryAdded(entry));
        }
    }

    fn forget(&mut self, entry: &KernelEntry, outcome: &mut Outcome) {
        if let KernelEntry::Sa(id) = entry {
            self.allocated.remove(id);
        }
        if self.installed.remove(entry) {
            outcome
                .to_parent
                .push(ChildToParent::KernelEntryRemoved(entry.clone()));
        }
    }

    /// Deletes one of our entries; an entry the kernel no longer has is
    /// simply forgotten.
    fn remove_entry(
        &mut self,
        entry: &KernelEntry,
        outcome: &mut Outcome,
    ) -> Option<KernelFailure> {
        let result = match entry {
            KernelEntry::Sa(id) => self.backend.delete_sa(id),
            KernelEntry::Policy {
                selector,
                direction,
            } => self.backend.delete_policy(selector, *direction),
        };
        match result {
            Ok(()) => {
                self.forget(entry, outcome);
                None
            }
            Err(f) if f.kind == FailureKind::NotFound => {
                self.forget(entry, outcome);
                Some(f)
            }
            Err(f) => {
                log::error!("pfkey: {}", f.message);
                Some(f)
            }
        }
    }

    fn reply(&self, id: u64, result: Result<PfkeyToIkev2, KernelFailure>) -> PfkeyToIkev2 {
        match result {
            Ok(reply) => reply,
            Err(failure) => {
                match failure.kind {
                    FailureKind::NotPermitted => log::warn!("pfkey: {}", failure.message),
                    _ => log::error!("pfkey: {}", failure.message),
                }
                PfkeyToIkev2::Failed { id, failure }
            }
        }
    }

    pub fn handle_request(&mut self, request: Ikev2ToPfkey) -> Outcome {
        let mut outcome = Outcome::default();
        let (id, result) = match request {
            Ikev2ToPfkey::Ping { id } => (id, Ok(PfkeyToIkev2::Pong { id })),
            Ikev2ToPfkey::AllocateSpi {
                id,
                src,
                dst,
                protocol,
                reqid,
                min,
                max,
            } => {
                let result = flows::check_spi_request(&self.flows, src, dst, protocol, min, max)
                    .map(|f| f.mode)
                    .and_then(|mode| {
                        self.backend
                            .allocate_spi(src, dst, protocol, mode, reqid, min, max)
                    })
                    .map(|spi| {
                        let sa = SaId {
                            src,
                            dst,
                            protocol,
                            spi,
                        };
                        self.allocated.insert(sa);
                        self.added(KernelEntry::Sa(sa), &mut outcome);
                        PfkeyToIkev2::SpiAllocated { id, spi }
                    });
                (id, result)
            }
            Ikev2ToPfkey::AddSa { id, sa } | Ikev2ToPfkey::UpdateSa { id, sa } => {
                let entry = KernelEntry::Sa(sa.id);
                // Only our own SAs may be updated; a larval SA from our SPI
                // allocation is completed by update (a plain add would
                // collide with it).
                let update = self.allocated.contains(&sa.id) || self.installed.contains(&entry);
                let result = flows::check_sa(&self.flows, &sa)
                    .and_then(|_| self.backend.add_sa(&sa, update))
                    .map(|()| {
                        self.allocated.remove(&sa.id);
                        self.added(entry, &mut outcome);
                        PfkeyToIkev2::Done { id }
                    });
                (id, result)
            }
            Ikev2ToPfkey::DeleteSa { id, sa } => {
                (id, self.delete_ours(id, KernelEntry::Sa(sa), &mut outcome))
            }
            Ikev2ToPfkey::AddPolicy { id, policy } => {
                let result = flows::check_policy(&self.flows, &policy)
                    .and_then(|_| self.backend.add_policy(&policy))
                    .map(|()| {
                        self.added(
                            KernelEntry::Policy {
                                selector: policy.selector,
                                direction: policy.direction,
                            },
                            &mut outcome,
                        );
                        PfkeyToIkev2::Done { id }
                    });
                (id, result)
            }
            Ikev2ToPfkey::DeletePolicy {
                id,
                selector,
                direction,
            } => {
                let entry = KernelEntry::Policy {
                    selector,
                    direction,
                };
                (id, self.delete_ours(id, entry, &mut outcome))
            }
        };
        let reply = self.reply(id, result);
        outcome.to_ikev2.push(reply);
        outcome
    }

    fn delete_ours(
        &mut self,
        id: u64,
        entry: KernelEntry,
        outcome: &mut Outcome,
    ) -> Result<PfkeyToIkev2, KernelFailure> {
        if !self.installed.contains(&entry) {
            return Err(local_failure(
                FailureKind::NotPermitted,
                format!("refused: delete {entry}: not installed by us"),
            ));
        }
        match self.remove_entry(&entry, outcome) {
            None => Ok(PfkeyToIkev2::Done { id }),
            Some(f) => Err(f),
        }
    }

    /// Reads whatever the kernel sent on the event socket and forwards the
    /// events that concern our flows and SAs.
    pub fn on_kernel_event(&mut self) -> Outcome {
        let mut outcome = Outcome::default();
        let events = match self.backend.read_events() {
            Ok(events) => events,
            Err(f) => {
                log::error!("pfkey: {}", f.message);
                return outcome;
            }
        };
        for event in events {
            if self.event_is_ours(&event) {
                if let KernelEvent::Expire { sa, hard: true, .. } = &event {
                    // The kernel deletes the SA itself at the hard limit.
                    self.forget(&KernelEntry::Sa(*sa), &mut outcome);
                }
                log::info!("pfkey: kernel event {event:?}");
                outcome.to_ikev2.push(PfkeyToIkev2::Event(event));
            } else {
                log::debug!("pfkey: kernel event for another daemon ignored: {event:?}");
            }
        }
        outcome
    }

    fn event_is_ours(&self, event: &KernelEvent) -> bool {
        match event {
            KernelEvent::Acquire {
                selector, src, dst, ..
            } => self
                .flows
                .iter()
                .any(|f| f.local == *src && f.peer == *dst && f.selector.contains(selector)),
            KernelEvent::Expire { sa, .. } => self.installed.contains(&KernelEntry::Sa(*sa)),
            KernelEvent::PolicyExpire {
                selector,
                direction,
                ..
            } => self.installed.contains(&KernelEntry::Policy {
                selector: *selector,
                direction: *direction,
            }),
        }
    }

    /// Removes every kernel entry we installed (SAs first, so traffic is
    /// dropped rather than sent in clear while policies remain); reports each
    /// removal.
    pub fn flush_ours(&mut self) -> Outcome {
        let mut outcome = Outcome::default();
        let mut entries: Vec<KernelEntry> = self.installed.iter().cloned().collect();
        entries.sort_by_key(|e| matches!(e, KernelEntry::Policy { .. }));
        for entry in entries {
            self.remove_entry(&entry, &mut outcome);
        }
        if !self.installed.is_empty() {
            log::error!(
                "pfkey: {} entries could not be removed from the kernel",
                self.installed.len()
            );
        }
        outcome
    }
}

/// For the parent (root): removes the listed entries through a socket of its
/// own, when pfkey-proc died before flushing them. Entries already gone are
/// not an error.
pub fn remove_entries(kind: KernelSocketKind, entries: &[KernelEntry]) -> Result<(), String> {
    let sockets = crate::socket::open_kernel_sockets(Some(kind))?;
    let mut backend = open_backend(kind, sockets.requests, sockets.events)?;
    let mut failures = Vec::new();
    let mut ordered: Vec<&KernelEntry> = entries.iter().collect();
    ordered.sort_by_key(|e| matches!(e, KernelEntry::Policy { .. }));
    for entry in ordered {
        let result = match entry {
            KernelEntry::Sa(id) => backend.delete_sa(id),
            KernelEntry::Policy {
                selector,
                direction,
            } => backend.delete_policy(selector, *direction),
        };
        match result {
            Ok(()) => {}
            Err(f) if f.kind == FailureKind::NotFound => {}
            Err(f) => failures.push(format!("{entry}: {}", f.message)),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
