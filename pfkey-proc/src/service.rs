//! The kernel service behind pfkey-proc's IPC: requests from ikev2 checked
//! against the configured flows, executed on the kernel socket, and the
//! kernel's events forwarded. Every entry we install is tracked (and
//! reported to the parent) so that stopping removes ours and nothing else.

use std::collections::{HashMap, HashSet};
use std::os::fd::{BorrowedFd, OwnedFd};

use iked_common::ipc::{
    ChildConfig, ChildToParent, Ikev2ToPfkey, PfkeyToIkev2, MAX_COUNTER_REQUEST,
};
use iked_common::kernel::{
    FailureKind, Flow, KernelEntry, KernelEvent, KernelFailure, KernelSocketKind, SaId,
};

use crate::addresses::VirtualAddresses;
use crate::backend::{local_failure, BackendError, KernelBackend, SpiRequest};
use crate::flows;
use crate::leases::LeaseOwners;
use crate::marking::{sweep_marked, MarkedBackend, Swept};
use crate::pfkey::PfkeyBackend;
use crate::reqids::{ReqidOwner, ReqidOwners};
use crate::routes::{RouteManager, RouteNeed};
use crate::xfrm::XfrmBackend;

mod control;
mod migrate;

/// Most kernel entries pfkey keeps at once for ikev2: a compromised or
/// confused ikev2 cannot fill the kernel with SAs (each SPI allocation
/// leaves a larval SA for the kernel's acquire timeout).
pub const MAX_INSTALLED: usize = 65_536;

/// Most SAs pfkey keeps installed for one policy (the flow's policy name),
/// besides [`MAX_INSTALLED`] for all: the peers of one policy cannot take
/// the whole table from the others. ikev2 keeps to a quarter of it (two
/// SAs per Child SA, twice that while rekeys overlap); this is the check
/// that holds should ikev2 be compromised or wrong.
pub const MAX_SAS_PER_POLICY: usize = iked_common::limits::MAX_KERNEL_SAS_PER_POLICY;

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
    /// The policy each installed (not larval) SA was admitted under, and
    /// how many each policy has, for [`MAX_SAS_PER_POLICY`].
    sa_policy: HashMap<SaId, String>,
    sas_by_policy: HashMap<String, usize>,
    /// The policy each reqid of our entries belongs to (crate::reqids).
    reqids: ReqidOwners,
    /// The peer each pool address of our entries belongs to (crate::leases).
    leases: LeaseOwners,
    /// Our SAs that are UDP-encapsulated (RFC 3948): a migration cannot
    /// take that away (service/migrate.rs).
    encapsulated: HashSet<SaId>,
    /// Client virtual addresses we put on interfaces (crate::addresses).
    addresses: VirtualAddresses,
    /// Routes for tunnel-mode SAs and source lookups (see [`crate::routes`]);
    /// None only in tests of the bookkeeping alone.
    routes: Option<RouteManager>,
    /// `ikectl couple|decouple` (service/control.rs).
    coupling: control::Coupling,
}

/// Builds the backend for sockets the parent opened.
pub fn open_backend(
    kind: KernelSocketKind,
    requests: OwnedFd,
    events: OwnedFd,
) -> Result<Box<dyn KernelBackend>, BackendError> {
    match kind {
        KernelSocketKind::Xfrm => Ok(Box::new(XfrmBackend::new(requests, events)?)),
        KernelSocketKind::Pfkey => Ok(Box::new(PfkeyBackend::new(requests, events)?)),
    }
}

impl PfkeyService {
    /// Takes the sockets the parent opened; subscribes to kernel events.
    pub fn new(
        kind: KernelSocketKind,
        requests: OwnedFd,
        events: OwnedFd,
    ) -> Result<Self, BackendError> {
        let backend = open_backend(kind, requests, events)?;
        Self::with_backend(backend)
    }

    /// The service over `backend`, wrapped so that everything it installs
    /// carries our mark ([`MarkedBackend`]).
    pub fn with_backend(backend: Box<dyn KernelBackend>) -> Result<Self, BackendError> {
        let mut backend: Box<dyn KernelBackend> = Box::new(MarkedBackend::new(backend));
        let supported = backend
            .register()
            .map_err(|failure| BackendError::Register {
                kind: backend.kind(),
                failure,
            })?;
        log::info!(
            "using the {} kernel interface{}",
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
            sa_policy: HashMap::new(),
            sas_by_policy: HashMap::new(),
            reqids: ReqidOwners::default(),
            leases: LeaseOwners::default(),
            encapsulated: HashSet::new(),
            addresses: VirtualAddresses::default(),
            routes: None,
            coupling: control::Coupling::default(),
        })
    }

    /// Takes the route manager: from now on tunnel-mode SAs get routes and
    /// source lookups are answered.
    pub fn attach_routes(&mut self, routes: RouteManager) {
        self.routes = Some(routes);
    }

    /// The route manager, for tests and diagnostics.
    pub fn routes_mut(&mut self) -> Option<&mut RouteManager> {
        self.routes.as_mut()
    }

    pub fn kind(&self) -> KernelSocketKind {
        self.backend.kind()
    }

    /// Whether the parent's configuration (the flows) has arrived.
    pub fn configured(&self) -> bool {
        self.generation > 0
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
        if let ChildConfig::Pfkey { flows, routing, .. } = config {
            self.flows = flows.clone();
            if let Some(routes) = self.routes.as_mut() {
                routes.apply_settings(*routing);
            }
        } else {
            log::warn!("ignoring a configuration meant for another process");
            return outcome;
        }
        let stale: Vec<KernelEntry> = self
            .installed
            .iter()
            .filter(|e| !self.entry_allowed(e))
            .cloned()
            .collect();
        for entry in stale {
            log::info!("removing {entry}: no longer in any configured flow");
            self.remove_entry(&entry, &mut outcome);
        }
        for (policy, address) in self.addresses.stale(&self.flows) {
            log::info!(
                "removing address {address} of policy {policy}: its policy no longer \
                 requests one there"
            );
            let _ = self.remove_address(&policy, address, &mut outcome);
        }
        outcome
    }

    /// Puts a client's virtual address on its flow's interface.
    fn add_address(
        &mut self,
        policy: &str,
        address: std::net::IpAddr,
        outcome: &mut Outcome,
    ) -> Result<(), KernelFailure> {
        let interface = crate::addresses::check_address(&self.flows, policy, address)?.to_string();
        let Some(routes) = self.routes.as_mut() else {
            return Err(local_failure(
                FailureKind::Unsupported,
                "virtual address: pfkey has no route socket".into(),
            ));
        };
        if let Some(added) = self
            .addresses
            .add(routes.socket_mut(), policy, &interface, address)?
        {
            log::info!("address {address} of policy {policy} put on {interface}");
            outcome.to_parent.push(ChildToParent::AddressAdded {
                interface: added.spec.index,
                address,
            });
        }
        Ok(())
    }

    fn remove_address(
        &mut self,
        policy: &str,
        address: std::net::IpAddr,
        outcome: &mut Outcome,
    ) -> Result<(), KernelFailure> {
        let Some(routes) = self.routes.as_mut() else {
            return Err(local_failure(
                FailureKind::Unsupported,
                "virtual address: pfkey has no route socket".into(),
            ));
        };
        match self.addresses.delete(routes.socket_mut(), policy, address) {
            Ok(added) => {
                log::info!(
                    "address {address} of policy {policy} removed from {}",
                    added.interface
                );
                outcome.to_parent.push(ChildToParent::AddressRemoved {
                    interface: added.spec.index,
                    address,
                });
                Ok(())
            }
            Err(f) => {
                if f.kind != FailureKind::NotPermitted {
                    log::error!("{}", f.message);
                }
                Err(f)
            }
        }
    }

    fn entry_allowed(&self, entry: &KernelEntry) -> bool {
        match entry {
            KernelEntry::Sa(id) => self.flows.iter().any(|f| {
                (id.src == f.local && f.peer.admits(id.dst))
                    || (f.peer.admits(id.src) && id.dst == f.local)
            }),
            KernelEntry::Policy {
                selector,
                direction,
            } => self.flows.iter().any(|f| {
                // The same traffic rule as at install: a lease of a pool
                // stays allowed while the pool does.
                let outbound = *direction == iked_common::kernel::PolicyDirection::Out;
                flows::check_traffic(f, selector, outbound).is_ok()
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
        self.reqids.release(entry);
        self.leases.release(entry);
        if let KernelEntry::Sa(id) = entry {
            if let Some(routes) = self.routes.as_mut() {
                routes.sa_removed(id);
            }
            self.allocated.remove(id);
            self.encapsulated.remove(id);
            if let Some(policy) = self.sa_policy.remove(id) {
                if let Some(count) = self.sas_by_policy.get_mut(&policy) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.sas_by_policy.remove(&policy);
                    }
                }
            }
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
                log::error!("{}", f.message);
                Some(f)
            }
        }
    }

    fn reply(&self, id: u64, result: Result<PfkeyToIkev2, KernelFailure>) -> PfkeyToIkev2 {
        match result {
            Ok(reply) => reply,
            Err(failure) => {
                match failure.kind {
                    FailureKind::NotPermitted => log::warn!("{}", failure.message),
                    _ => log::error!("{}", failure.message),
                }
                PfkeyToIkev2::Failed { id, failure }
            }
        }
    }

    pub fn handle_request(&mut self, request: Ikev2ToPfkey) -> Outcome {
        if let Some(outcome) = self.while_decoupled(&request) {
            return outcome;
        }
        let mut outcome = Outcome::default();
        let adds = match &request {
            Ikev2ToPfkey::AllocateSpi { id, .. } | Ikev2ToPfkey::AddPolicy { id, .. } => Some(*id),
            Ikev2ToPfkey::AddSa { id, sa } | Ikev2ToPfkey::UpdateSa { id, sa } => {
                (!self.installed.contains(&KernelEntry::Sa(sa.id))).then_some(*id)
            }
            _ => None,
        };
        if let Some(id) = adds.filter(|_| self.installed.len() >= MAX_INSTALLED) {
            let failure = local_failure(
                FailureKind::NotPermitted,
                format!("refused: already {MAX_INSTALLED} kernel entries installed"),
            );
            outcome.to_ikev2.push(self.reply(id, Err(failure)));
            return outcome;
        }
        let (id, result) = match request {
            Ikev2ToPfkey::Ping { id } => (id, Ok(PfkeyToIkev2::Pong { id })),
            Ikev2ToPfkey::AddAddress {
                id,
                policy,
                address,
            } => (
                id,
                self.add_address(&policy, address, &mut outcome)
                    .map(|()| PfkeyToIkev2::Done { id }),
            ),
            Ikev2ToPfkey::DeleteAddress {
                id,
                policy,
                address,
            } => (
                id,
                self.remove_address(&policy, address, &mut outcome)
                    .map(|()| PfkeyToIkev2::Done { id }),
            ),
            Ikev2ToPfkey::Migrate { id, migration } => (
                id,
                self.migrate(&migration, &mut outcome)
                    .map(|()| PfkeyToIkev2::Done { id }),
            ),
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
                        self.backend.allocate_spi(&SpiRequest {
                            src,
                            dst,
                            protocol,
                            mode,
                            reqid,
                            min,
                            max,
                        })
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
                    .and_then(|flow| {
                        let peer = flows::sa_peer(flow, &sa);
                        let lease = flows::sa_lease(flow, &sa).map(|l| (l, peer));
                        let owner = ReqidOwner::of_entry(flow, peer);
                        self.reqids
                            .check_owner(sa.reqid, &owner)
                            .and_then(|()| self.check_lease(lease, &entry))
                            .map(|()| (flow.name.clone(), owner, lease))
                    })
                    .and_then(|(policy, owner, lease)| {
                        self.check_policy_room(&policy, &sa.id)
                            .map(|()| (policy, owner, lease))
                    })
                    .and_then(|found| self.backend.add_sa(&sa, update).map(|()| found))
                    .map(|(policy, owner, lease)| {
                        self.allocated.remove(&sa.id);
                        self.reqids.bind(sa.reqid, owner, entry.clone());
                        self.bind_lease(lease, &entry);
                        if sa.encap.is_some() {
                            self.encapsulated.insert(sa.id);
                        } else {
                            self.encapsulated.remove(&sa.id);
                        }
                        self.added(entry, &mut outcome);
                        self.route_sa(&sa);
                        if self.sa_policy.insert(sa.id, policy.clone()).is_none() {
                            *self.sas_by_policy.entry(policy).or_default() += 1;
                        }
                        PfkeyToIkev2::Done { id }
                    });
                (id, result)
            }
            Ikev2ToPfkey::DeleteSa { id, sa } => {
                (id, self.delete_ours(id, KernelEntry::Sa(sa), &mut outcome))
            }
            Ikev2ToPfkey::AddPolicy { id, policy } => {
                let entry = KernelEntry::Policy {
                    selector: policy.selector,
                    direction: policy.direction,
                };
                let result = flows::check_policy(&self.flows, &policy)
                    .and_then(|flow| {
                        let peer = flows::policy_peer(&policy);
                        let lease = flows::policy_lease(flow, &policy).map(|l| (l, peer));
                        let owner = ReqidOwner::of_entry(flow, peer);
                        self.reqids
                            .check_owner(policy.template.reqid, &owner)
                            .and_then(|()| self.check_lease(lease, &entry))
                            .map(|()| (owner, lease))
                    })
                    .and_then(|found| self.backend.add_policy(&policy).map(|()| found))
                    .map(|(owner, lease)| {
                        self.reqids
                            .bind(policy.template.reqid, owner, entry.clone());
                        self.bind_lease(lease, &entry);
                        self.added(entry, &mut outcome);
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
            Ikev2ToPfkey::GetCounters { id, sas } => (id, self.counters(id, sas)),
            Ikev2ToPfkey::LookupSource { id, peer } => {
                let result = match self.routes.as_mut() {
                    Some(routes) => routes.lookup_source(peer),
                    None => Err(local_failure(
                        FailureKind::Unsupported,
                        "source lookup: pfkey has no route socket".into(),
                    )),
                }
                .map(|source| PfkeyToIkev2::SourceAddress { id, source });
                (id, result)
            }
        };
        let reply = self.reply(id, result);
        outcome.to_ikev2.push(reply);
        outcome
    }

    /// Routes the remote network of `sa` if it is an outbound tunnel-mode
    /// SA of ours (from our gateway address to a flow's peer).
    fn route_sa(&mut self, sa: &iked_common::kernel::SaParams) {
        let outbound = self
            .flows
            .iter()
            .any(|f| f.local == sa.id.src && f.peer.admits(sa.id.dst) && sa.id.src != sa.id.dst);
        if !outbound || sa.mode != iked_common::kernel::IpsecMode::Tunnel {
            return;
        }
        if let Some(routes) = self.routes.as_mut() {
            routes.sa_installed(RouteNeed::of(sa.id, &sa.selector));
        }
    }

    /// Whether `entry` may name the pool address `lease` for its peer.
    fn check_lease(
        &self,
        lease: Option<(std::net::IpAddr, std::net::IpAddr)>,
        entry: &KernelEntry,
    ) -> Result<(), KernelFailure> {
        match lease {
            Some((lease, peer)) => self.leases.check(lease, peer, entry),
            None => Ok(()),
        }
    }

    fn bind_lease(
        &mut self,
        lease: Option<(std::net::IpAddr, std::net::IpAddr)>,
        entry: &KernelEntry,
    ) {
        match lease {
            Some((lease, peer)) => self.leases.bind(lease, peer, entry.clone()),
            // Replaced by one that names no lease.
            None => self.leases.release(entry),
        }
    }

    /// Whether `policy` may have one more SA: an SA already counted
    /// (replaced in place) always may.
    fn check_policy_room(&self, policy: &str, sa: &SaId) -> Result<(), KernelFailure> {
        let count = self.sas_by_policy.get(policy).copied().unwrap_or(0);
        if count >= MAX_SAS_PER_POLICY && !self.sa_policy.contains_key(sa) {
            return Err(local_failure(
                FailureKind::NotPermitted,
                format!(
                    "refused: {sa}: policy {policy} already has {count} SAs installed (at most {MAX_SAS_PER_POLICY})"
                ),
            ));
        }
        Ok(())
    }

    /// The kernel's counters of the SAs we installed; None for any other
    /// SA (larval ones included: nothing has crossed them) and for one the
    /// kernel could not read.
    fn counters(&mut self, id: u64, sas: Vec<SaId>) -> Result<PfkeyToIkev2, KernelFailure> {
        if sas.len() > MAX_COUNTER_REQUEST {
            return Err(local_failure(
                FailureKind::NotPermitted,
                format!(
                    "refused: counters of {} SAs asked at once (at most {MAX_COUNTER_REQUEST})",
                    sas.len()
                ),
            ));
        }
        let counters = sas
            .into_iter()
            .map(|sa| {
                let ours =
                    self.installed.contains(&KernelEntry::Sa(sa)) && !self.allocated.contains(&sa);
                if !ours {
                    return (sa, None);
                }
                match self.backend.sa_counters(&sa) {
                    Ok(c) => (sa, Some(c)),
                    Err(f) => {
                        log::debug!("{sa}: {}", f.message);
                        (sa, None)
                    }
                }
            })
            .collect();
        Ok(PfkeyToIkev2::Counters { id, counters })
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
                log::error!("{}", f.message);
                return outcome;
            }
        };
        for event in events {
            if self.event_is_ours(&event) {
                if let KernelEvent::Expire { sa, hard: true, .. } = &event {
                    // The kernel deletes the SA itself at the hard limit.
                    self.forget(&KernelEntry::Sa(*sa), &mut outcome);
                }
                log::info!("kernel event {event:?}");
                outcome.to_ikev2.push(PfkeyToIkev2::Event(event));
            } else {
                log::debug!("kernel event for another daemon ignored: {event:?}");
            }
        }
        outcome
    }

    fn event_is_ours(&self, event: &KernelEvent) -> bool {
        match event {
            KernelEvent::Acquire {
                selector, src, dst, ..
            } => self.flows.iter().any(|f| {
                f.local == *src
                    && f.peer.admits(*dst)
                    && flows::check_traffic(f, selector, true).is_ok()
            }),
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

    /// At start, before any request: removes the entries marked as ours
    /// that a previous instance left (it died together with its pfkey
    /// process, so nobody flushed them). One iked runs per network
    /// namespace (with the default ports a second one fails to bind them
    /// before its pfkey starts; iked(8) says so), so every marked entry is
    /// stale. Logged with the count.
    pub fn remove_stale(&mut self) -> Swept {
        match sweep_marked(self.backend.as_mut()) {
            Ok(swept) => {
                if swept.total() > 0 {
                    log::warn!("removed {swept} left in the kernel by a previous instance");
                } else {
                    log::info!("no stale kernel entries of ours found");
                }
                for failure in &swept.failures {
                    log::error!("cannot remove a stale entry: {failure}");
                }
                swept
            }
            Err(f) => {
                log::error!("cannot look for stale kernel entries: {}", f.message);
                Swept {
                    failures: vec![f.message],
                    ..Swept::default()
                }
            }
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
        for (policy, address) in self.addresses.all() {
            let _ = self.remove_address(&policy, address, &mut outcome);
        }
        if let Some(routes) = self.routes.as_mut() {
            routes.remove_all();
        }
        if !self.installed.is_empty() {
            log::error!(
                "{} entries could not be removed from the kernel",
                self.installed.len()
            );
        }
        outcome
    }
}

/// For the parent (root): removes the listed entries through a socket of its
/// own, when pfkey-proc died before flushing them. Entries already gone are
/// not an error.
pub fn remove_entries(kind: KernelSocketKind, entries: &[KernelEntry]) -> Result<(), BackendError> {
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
        Err(BackendError::NotRemoved(failures))
    }
}

#[cfg(test)]
mod tests {
    //! The service's bookkeeping against a recording backend: what reaches
    //! the kernel, in which order, and what the parent and ikev2 are told.

    use super::*;
    use crate::backend::{DumpedPolicy, DumpedSa, SupportedAlgorithms};
    use crate::test_fixtures::{esp_gcm_sa, flow_selector as site, ip};
    use iked_common::kernel::{
        Encryption, Integrity, IpsecMode, IpsecProtocol, PolicyDirection, PolicyParams, SaCounters,
        SaParams, SaTemplate, Selector,
    };
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};

    /// `show flows`, `couple`, `decouple` (src/service/tests/coupling.rs).
    mod coupling;
    /// SA migration (src/service/tests/migrate.rs).
    mod migrate;
    /// Road warriors (src/service/tests/ra.rs).
    mod ra;

    /// A Child SA's reqid, marked as ours.
    const REQID: u32 = iked_common::kernel::LARVAL_REQID + 1;

    /// An ESP SA of the fixtures, with our reqid.
    fn sa(src: &str, dst: &str, spi: u32, selector: Selector) -> SaParams {
        SaParams {
            reqid: REQID,
            ..esp_gcm_sa(src, dst, spi, selector)
        }
    }

    /// ikev2's request for an inbound ESP SPI from 192.0.2.2 (the peer) to
    /// 192.0.2.1, in 0x1000..=0x1fff.
    fn allocate_spi(id: u64, reqid: u32) -> Ikev2ToPfkey {
        Ikev2ToPfkey::AllocateSpi {
            id,
            src: ip("192.0.2.2"),
            dst: ip("192.0.2.1"),
            protocol: IpsecProtocol::Esp,
            reqid,
            min: 0x1000,
            max: 0x1fff,
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Call {
        AllocateSpi(IpAddr, IpAddr),
        AddSa(u32, bool),
        DeleteSa(u32),
        Counters(u32),
        AddPolicy(PolicyDirection),
        DeletePolicy(PolicyDirection),
        /// Direction, new template source and destination, encap.
        Migrate(
            PolicyDirection,
            IpAddr,
            IpAddr,
            Option<iked_common::kernel::UdpEncap>,
        ),
    }

    struct Recording {
        calls: Arc<Mutex<Vec<Call>>>,
        events: Arc<Mutex<Vec<KernelEvent>>>,
        fail_next: Arc<Mutex<Option<KernelFailure>>>,
        /// What the dumps return (ours and foreign).
        dumped_sas: Arc<Mutex<Vec<DumpedSa>>>,
        dumped_policies: Arc<Mutex<Vec<DumpedPolicy>>>,
        events_fd: OwnedFd,
    }

    impl Recording {
        fn record(&self, call: Call) -> Result<(), KernelFailure> {
            self.calls.lock().unwrap().push(call);
            match self.fail_next.lock().unwrap().take() {
                Some(f) => Err(f),
                None => Ok(()),
            }
        }
    }

    impl KernelBackend for Recording {
        fn kind(&self) -> KernelSocketKind {
            KernelSocketKind::Xfrm
        }
        fn register(&mut self) -> Result<SupportedAlgorithms, KernelFailure> {
            Ok(SupportedAlgorithms {
                encryption: vec![],
                integrity: vec![],
                reported_by_kernel: false,
            })
        }
        fn allocate_spi(&mut self, request: &SpiRequest) -> Result<u32, KernelFailure> {
            self.record(Call::AllocateSpi(request.src, request.dst))
                .map(|()| request.min)
        }
        fn add_sa(&mut self, sa: &SaParams, update: bool) -> Result<(), KernelFailure> {
            self.record(Call::AddSa(sa.id.spi, update))
        }
        fn delete_sa(&mut self, id: &SaId) -> Result<(), KernelFailure> {
            self.record(Call::DeleteSa(id.spi))
        }
        fn sa_counters(&mut self, id: &SaId) -> Result<SaCounters, KernelFailure> {
            // Distinct per SA, so a test sees which SA each answer is for.
            self.record(Call::Counters(id.spi)).map(|()| SaCounters {
                bytes: u64::from(id.spi) * 100,
                packets: u64::from(id.spi),
            })
        }
        fn add_policy(&mut self, p: &PolicyParams) -> Result<(), KernelFailure> {
            self.record(Call::AddPolicy(p.direction))
        }
        fn delete_policy(&mut self, _: &Selector, d: PolicyDirection) -> Result<(), KernelFailure> {
            self.record(Call::DeletePolicy(d))
        }
        fn migrate(&mut self, r: &crate::backend::MigrateRequest) -> Result<(), KernelFailure> {
            self.record(Call::Migrate(r.direction, r.new_src, r.new_dst, r.encap))
        }
        fn dump_sas(&mut self) -> Result<Vec<DumpedSa>, KernelFailure> {
            Ok(self.dumped_sas.lock().unwrap().clone())
        }
        fn dump_policies(&mut self) -> Result<Vec<DumpedPolicy>, KernelFailure> {
            Ok(self.dumped_policies.lock().unwrap().clone())
        }
        fn event_fd(&self) -> BorrowedFd<'_> {
            std::os::fd::AsFd::as_fd(&self.events_fd)
        }
        fn read_events(&mut self) -> Result<Vec<KernelEvent>, KernelFailure> {
            Ok(std::mem::take(&mut *self.events.lock().unwrap()))
        }
    }

    struct Harness {
        service: PfkeyService,
        calls: Arc<Mutex<Vec<Call>>>,
        events: Arc<Mutex<Vec<KernelEvent>>>,
        fail_next: Arc<Mutex<Option<KernelFailure>>>,
        dumped_sas: Arc<Mutex<Vec<DumpedSa>>>,
        dumped_policies: Arc<Mutex<Vec<DumpedPolicy>>>,
    }

    fn flow() -> Flow {
        Flow {
            name: "site".into(),
            selector: site(),
            local: ip("192.0.2.1"),
            peer: iked_common::kernel::FlowPeer::Address(ip("192.0.2.2")),
            mode: IpsecMode::Tunnel,
            encryption: vec![Encryption::AesGcm16],
            integrity: vec![Integrity::HmacSha256_128],
            limits: iked_common::kernel::SaLimits::default(),
            pools: Vec::new(),
            virtual_ip_interface: None,
        }
    }

    fn harness() -> Harness {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let fail_next = Arc::new(Mutex::new(None));
        let dumped_sas = Arc::new(Mutex::new(Vec::new()));
        let dumped_policies = Arc::new(Mutex::new(Vec::new()));
        let (events_fd, _) = iked_common::ipc::seqpacket_pair().unwrap();
        let backend = Recording {
            calls: calls.clone(),
            events: events.clone(),
            fail_next: fail_next.clone(),
            dumped_sas: dumped_sas.clone(),
            dumped_policies: dumped_policies.clone(),
            events_fd,
        };
        let mut service = PfkeyService::with_backend(Box::new(backend)).unwrap();
        service.apply_config(&ChildConfig::Pfkey {
            generation: 1,
            flows: vec![flow()],
            routing: Default::default(),
        });
        Harness {
            service,
            calls,
            events,
            fail_next,
            dumped_sas,
            dumped_policies,
        }
    }

    fn out_policy() -> PolicyParams {
        PolicyParams {
            selector: site(),
            direction: PolicyDirection::Out,
            priority: 100,
            template: SaTemplate {
                src: ip("192.0.2.1"),
                dst: ip("192.0.2.2"),
                protocol: IpsecProtocol::Esp,
                mode: IpsecMode::Tunnel,
                reqid: REQID,
            },
        }
    }

    #[test]
    fn an_allocated_spi_is_completed_by_update_and_tracked_once() {
        let mut h = harness();
        let o = h.service.handle_request(allocate_spi(1, REQID));
        assert_eq!(
            o.to_ikev2,
            vec![PfkeyToIkev2::SpiAllocated { id: 1, spi: 0x1000 }]
        );
        assert_eq!(o.to_parent.len(), 1, "the larval SA is ours too");
        let inbound = sa("192.0.2.2", "192.0.2.1", 0x1000, site().reversed());
        let o = h
            .service
            .handle_request(Ikev2ToPfkey::AddSa { id: 2, sa: inbound });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 2 }]);
        assert!(o.to_parent.is_empty(), "already reported at allocation");
        let outbound = sa("192.0.2.1", "192.0.2.2", 0x2000, site());
        h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 3,
            sa: outbound,
        });
        assert_eq!(
            *h.calls.lock().unwrap(),
            vec![
                Call::AllocateSpi(ip("192.0.2.2"), ip("192.0.2.1")),
                Call::AddSa(0x1000, true),
                Call::AddSa(0x2000, false),
            ]
        );
    }

    #[test]
    fn counters_are_read_only_for_our_complete_sas() {
        let mut h = harness();
        let ours = sa("192.0.2.1", "192.0.2.2", 0x2000, site());
        h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 1,
            sa: ours.clone(),
        });
        let larval = h.service.handle_request(allocate_spi(2, REQID));
        assert_eq!(
            larval.to_ikev2,
            vec![PfkeyToIkev2::SpiAllocated { id: 2, spi: 0x1000 }]
        );
        let larval_id = SaId {
            src: ip("192.0.2.2"),
            dst: ip("192.0.2.1"),
            protocol: IpsecProtocol::Esp,
            spi: 0x1000,
        };
        let stranger = SaId {
            spi: 0x9999,
            ..ours.id
        };
        h.calls.lock().unwrap().clear();
        let o = h.service.handle_request(Ikev2ToPfkey::GetCounters {
            id: 3,
            sas: vec![stranger, ours.id, larval_id],
        });
        assert_eq!(
            o.to_ikev2,
            vec![PfkeyToIkev2::Counters {
                id: 3,
                counters: vec![
                    (stranger, None),
                    (
                        ours.id,
                        Some(SaCounters {
                            bytes: 0x2000 * 100,
                            packets: 0x2000
                        })
                    ),
                    (larval_id, None),
                ],
            }]
        );
        assert_eq!(*h.calls.lock().unwrap(), vec![Call::Counters(0x2000)]);

        // A kernel failure is an unknown counter, not a failed request.
        *h.fail_next.lock().unwrap() = Some(crate::backend::kernel_failure("get SA", 3, None));
        let o = h.service.handle_request(Ikev2ToPfkey::GetCounters {
            id: 4,
            sas: vec![ours.id],
        });
        assert_eq!(
            o.to_ikev2,
            vec![PfkeyToIkev2::Counters {
                id: 4,
                counters: vec![(ours.id, None)],
            }]
        );

        let o = h.service.handle_request(Ikev2ToPfkey::GetCounters {
            id: 5,
            sas: vec![ours.id; MAX_COUNTER_REQUEST + 1],
        });
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { id: 5, failure }] if failure.kind == FailureKind::NotPermitted)
        );
        assert_eq!(
            h.calls.lock().unwrap().len(),
            2,
            "no kernel read when refused"
        );
    }

    #[test]
    fn refused_and_failed_requests_leave_nothing_tracked() {
        let mut h = harness();
        let stranger = sa("192.0.2.1", "198.51.100.7", 0x3000, site());
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 1,
            sa: stranger,
        });
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { id: 1, failure }] if failure.kind == FailureKind::NotPermitted)
        );
        *h.fail_next.lock().unwrap() = Some(crate::backend::kernel_failure("add SA", 93, None));
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 2,
            sa: sa("192.0.2.1", "192.0.2.2", 0x3001, site()),
        });
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { id: 2, failure }] if failure.kind == FailureKind::Unsupported)
        );
        assert!(o.to_parent.is_empty());
        assert_eq!(h.service.installed().count(), 0);
        assert_eq!(
            *h.calls.lock().unwrap(),
            vec![Call::AddSa(0x3001, false)],
            "the refused one never reached the kernel"
        );
    }

    #[test]
    fn flush_removes_sas_before_policies_and_reports_each() {
        let mut h = harness();
        h.service.handle_request(Ikev2ToPfkey::AddPolicy {
            id: 1,
            policy: out_policy(),
        });
        h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 2,
            sa: sa("192.0.2.1", "192.0.2.2", 0x4000, site()),
        });
        h.calls.lock().unwrap().clear();
        let o = h.service.flush_ours();
        // SAs first: traffic is dropped, never sent in clear, while the
        // policy still stands.
        assert_eq!(
            *h.calls.lock().unwrap(),
            vec![
                Call::DeleteSa(0x4000),
                Call::DeletePolicy(PolicyDirection::Out)
            ]
        );
        assert_eq!(o.to_parent.len(), 2);
        assert!(o
            .to_parent
            .iter()
            .all(|m| matches!(m, ChildToParent::KernelEntryRemoved(_))));
        assert_eq!(h.service.installed().count(), 0);
    }

    #[test]
    fn a_failed_removal_stays_tracked_for_the_parent() {
        let mut h = harness();
        h.service.handle_request(Ikev2ToPfkey::AddPolicy {
            id: 1,
            policy: out_policy(),
        });
        *h.fail_next.lock().unwrap() =
            Some(crate::backend::kernel_failure("delete policy", 1, None));
        let o = h.service.flush_ours();
        assert!(
            o.to_parent.is_empty(),
            "not removed, so not reported removed"
        );
        assert_eq!(h.service.installed().count(), 1);
        // Already gone in the kernel counts as removed.
        *h.fail_next.lock().unwrap() =
            Some(crate::backend::kernel_failure("delete policy", 2, None));
        let o = h.service.flush_ours();
        assert_eq!(o.to_parent.len(), 1);
    }

    #[test]
    fn only_events_about_our_flows_and_sas_are_forwarded() {
        let mut h = harness();
        h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 1,
            sa: sa("192.0.2.1", "192.0.2.2", 0x5000, site()),
        });
        let ours = SaId {
            src: ip("192.0.2.1"),
            dst: ip("192.0.2.2"),
            protocol: IpsecProtocol::Esp,
            spi: 0x5000,
        };
        let foreign = SaId {
            spi: 0x9999,
            ..ours
        };
        let acquire_ours = KernelEvent::Acquire {
            selector: Selector::hosts(ip("10.1.0.5"), ip("10.2.0.9")),
            src: ip("192.0.2.1"),
            dst: ip("192.0.2.2"),
            reqid: 1,
            seq: 7,
        };
        let acquire_foreign = KernelEvent::Acquire {
            selector: Selector::hosts(ip("172.16.0.1"), ip("172.17.0.1")),
            src: ip("192.0.2.1"),
            dst: ip("198.51.100.1"),
            reqid: 99,
            seq: 8,
        };
        h.events.lock().unwrap().extend([
            acquire_ours.clone(),
            acquire_foreign,
            KernelEvent::Expire {
                sa: foreign,
                reqid: 99,
                hard: false,
            },
            KernelEvent::Expire {
                sa: ours,
                reqid: 1,
                hard: false,
            },
            KernelEvent::Expire {
                sa: ours,
                reqid: 1,
                hard: true,
            },
        ]);
        let o = h.service.on_kernel_event();
        assert_eq!(
            o.to_ikev2,
            vec![
                PfkeyToIkev2::Event(acquire_ours),
                PfkeyToIkev2::Event(KernelEvent::Expire {
                    sa: ours,
                    reqid: 1,
                    hard: false
                }),
                PfkeyToIkev2::Event(KernelEvent::Expire {
                    sa: ours,
                    reqid: 1,
                    hard: true
                }),
            ]
        );
        assert_eq!(
            o.to_parent,
            vec![ChildToParent::KernelEntryRemoved(KernelEntry::Sa(ours))],
            "the kernel deleted it at the hard limit"
        );
        assert_eq!(h.service.installed().count(), 0);
    }

    #[test]
    fn only_our_entries_may_be_deleted_or_updated_in_place() {
        let mut h = harness();
        let foreign = SaId {
            src: ip("192.0.2.1"),
            dst: ip("192.0.2.2"),
            protocol: IpsecProtocol::Esp,
            spi: 0x7777,
        };
        let o = h
            .service
            .handle_request(Ikev2ToPfkey::DeleteSa { id: 1, sa: foreign });
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { failure, .. }] if failure.kind == FailureKind::NotPermitted)
        );
        // UpdateSa of an SA we do not own is sent as a plain add: the kernel
        // refuses it (EEXIST) rather than letting us overwrite someone's SA.
        h.service.handle_request(Ikev2ToPfkey::UpdateSa {
            id: 2,
            sa: sa("192.0.2.1", "192.0.2.2", 0x7777, site()),
        });
        assert_eq!(*h.calls.lock().unwrap(), vec![Call::AddSa(0x7777, false)]);
    }

    #[test]
    fn a_policy_past_its_sa_cap_is_refused_while_another_still_installs() {
        let mut h = harness();
        let other = Flow {
            name: "other".into(),
            selector: Selector {
                src: ip("10.3.0.0"),
                dst: ip("10.4.0.0"),
                ..site()
            },
            peer: iked_common::kernel::FlowPeer::Address(ip("192.0.2.3")),
            ..flow()
        };
        h.service.apply_config(&ChildConfig::Pfkey {
            generation: 2,
            flows: vec![flow(), other.clone()],
            routing: Default::default(),
        });
        let site_sa = |spi| sa("192.0.2.1", "192.0.2.2", spi, site());
        for n in 0..MAX_SAS_PER_POLICY as u32 {
            let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
                id: u64::from(n),
                sa: site_sa(0x1_0000 + n),
            });
            assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: u64::from(n) }]);
        }
        h.calls.lock().unwrap().clear();
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 1_000_000,
            sa: site_sa(0x9_0000),
        });
        let [PfkeyToIkev2::Failed {
            id: 1_000_000,
            failure,
        }] = &o.to_ikev2[..]
        else {
            panic!("not refused: {:?}", o.to_ikev2);
        };
        assert_eq!(failure.kind, FailureKind::NotPermitted);
        assert!(
            failure.message.contains("policy site")
                && failure.message.contains(&MAX_SAS_PER_POLICY.to_string()),
            "{}",
            failure.message
        );
        assert!(o.to_parent.is_empty());
        assert!(
            h.calls.lock().unwrap().is_empty(),
            "never reached the kernel"
        );
        // Another policy still installs (with a reqid of its own: REQID
        // belongs to site now).
        let mut other_sa = sa("192.0.2.1", "192.0.2.3", 0x9_0001, other.selector);
        other_sa.reqid = REQID + 1;
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 1_000_001,
            sa: other_sa,
        });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 1_000_001 }]);
        // Replacing one of the full policy's SAs in place is no new SA.
        let o = h.service.handle_request(Ikev2ToPfkey::UpdateSa {
            id: 1_000_002,
            sa: site_sa(0x1_0000),
        });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 1_000_002 }]);
        // One gone, there is room for one again.
        let gone = site_sa(0x1_0001).id;
        let o = h.service.handle_request(Ikev2ToPfkey::DeleteSa {
            id: 1_000_003,
            sa: gone,
        });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 1_000_003 }]);
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 1_000_004,
            sa: site_sa(0x9_0000),
        });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 1_000_004 }]);
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 1_000_005,
            sa: site_sa(0x9_0002),
        });
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { failure, .. }] if failure.kind == FailureKind::NotPermitted)
        );
    }

    #[test]
    fn the_number_of_entries_is_capped() {
        let mut h = harness();
        for n in 0..MAX_INSTALLED as u32 {
            h.service.installed.insert(KernelEntry::Sa(SaId {
                src: ip("192.0.2.1"),
                dst: ip("192.0.2.2"),
                protocol: IpsecProtocol::Esp,
                spi: 0x1_0000 + n,
            }));
        }
        let o = h.service.handle_request(Ikev2ToPfkey::AddPolicy {
            id: 9,
            policy: out_policy(),
        });
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { id: 9, failure }] if failure.message.contains("65536"))
        );
        assert!(h.calls.lock().unwrap().is_empty());
        // Replacing one of ours is still allowed.
        let o = h.service.handle_request(Ikev2ToPfkey::UpdateSa {
            id: 10,
            sa: sa("192.0.2.1", "192.0.2.2", 0x1_0000, site()),
        });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 10 }]);
    }

    #[test]
    fn an_install_without_our_reqid_is_refused_before_the_kernel() {
        let mut h = harness();
        let unmarked = SaParams {
            reqid: 1,
            ..sa("192.0.2.1", "192.0.2.2", 0x6000, site())
        };
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 1,
            sa: unmarked,
        });
        let [PfkeyToIkev2::Failed { id: 1, failure }] = &o.to_ikev2[..] else {
            panic!("not refused: {:?}", o.to_ikev2);
        };
        assert_eq!(failure.kind, FailureKind::NotPermitted);
        assert!(failure.message.contains("reqid 1"), "{}", failure.message);
        let mut policy = out_policy();
        policy.template.reqid = 0x4000;
        let o = h
            .service
            .handle_request(Ikev2ToPfkey::AddPolicy { id: 2, policy });
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { id: 2, failure }] if failure.kind == FailureKind::NotPermitted)
        );
        let o = h.service.handle_request(allocate_spi(3, 0));
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { id: 3, failure }] if failure.kind == FailureKind::NotPermitted)
        );
        assert!(
            h.calls.lock().unwrap().is_empty(),
            "nothing reached the kernel"
        );
        assert_eq!(h.service.installed().count(), 0);
        // The larval reqid is ours: a new Child SA's SPI is allocated with it.
        let o = h
            .service
            .handle_request(allocate_spi(4, iked_common::kernel::LARVAL_REQID));
        assert_eq!(
            o.to_ikev2,
            vec![PfkeyToIkev2::SpiAllocated { id: 4, spi: 0x1000 }]
        );
    }

    #[test]
    fn stale_entries_of_ours_are_swept_at_start_and_foreign_ones_kept() {
        let h = harness();
        let mut service = h.service;
        let ours_sa = SaId {
            src: ip("192.0.2.1"),
            dst: ip("192.0.2.2"),
            protocol: IpsecProtocol::Esp,
            spi: 0x7001,
        };
        let larval = SaId {
            spi: 0x7002,
            ..ours_sa
        };
        let foreign_sa = SaId {
            spi: 0x7003,
            ..ours_sa
        };
        h.dumped_sas.lock().unwrap().extend([
            DumpedSa {
                id: ours_sa,
                reqid: REQID,
            },
            DumpedSa {
                id: foreign_sa,
                reqid: 1,
            },
            DumpedSa {
                id: larval,
                reqid: iked_common::kernel::LARVAL_REQID,
            },
        ]);
        let template = out_policy().template;
        let policy = |direction, reqid: Option<u32>| DumpedPolicy {
            selector: site(),
            direction,
            priority: 100,
            template: reqid.map(|reqid| SaTemplate { reqid, ..template }),
        };
        h.dumped_policies.lock().unwrap().extend([
            policy(PolicyDirection::Out, Some(4)),
            policy(PolicyDirection::In, Some(REQID)),
            policy(PolicyDirection::Fwd, None),
        ]);
        // The kernel lost one of them meanwhile: not a failure.
        let swept = {
            let calls = h.calls.clone();
            let fail_next = h.fail_next.clone();
            *fail_next.lock().unwrap() = Some(crate::backend::kernel_failure("delete SA", 3, None));
            let swept = service.remove_stale();
            assert_eq!(
                *calls.lock().unwrap(),
                vec![
                    Call::DeleteSa(0x7001),
                    Call::DeleteSa(0x7002),
                    Call::DeletePolicy(PolicyDirection::In),
                ],
                "SAs first; the foreign SA, the foreign and template-less policies stay"
            );
            swept
        };
        assert_eq!(
            swept,
            Swept {
                sas: 1,
                policies: 1,
                failures: vec![]
            }
        );
        assert_eq!(service.installed().count(), 0, "nothing of this instance's");
    }

    /// pfkey's side of a half-installed pair: the inbound SA went in, the
    /// outbound one was refused by the kernel; ikev2's removal of the half
    /// that did go in is accepted, and the parent hears of both, so nothing
    /// of the pair is tracked or left.
    #[test]
    fn the_half_of_a_pair_that_went_in_can_be_removed_and_is_untracked() {
        let mut h = harness();
        let o = h
            .service
            .handle_request(allocate_spi(1, iked_common::kernel::LARVAL_REQID));
        assert_eq!(o.to_parent.len(), 1);
        let inbound = sa("192.0.2.2", "192.0.2.1", 0x1000, site().reversed());
        let inbound_id = inbound.id;
        let o = h
            .service
            .handle_request(Ikev2ToPfkey::AddSa { id: 2, sa: inbound });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 2 }]);
        *h.fail_next.lock().unwrap() = Some(crate::backend::kernel_failure("add SA", 17, None));
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 3,
            sa: sa("192.0.2.1", "192.0.2.2", 0x2000, site()),
        });
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { id: 3, failure }] if failure.kind == FailureKind::AlreadyExists)
        );
        assert_eq!(h.service.installed().count(), 1, "the inbound half");
        let o = h.service.handle_request(Ikev2ToPfkey::DeleteSa {
            id: 4,
            sa: inbound_id,
        });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 4 }]);
        assert_eq!(
            o.to_parent,
            vec![ChildToParent::KernelEntryRemoved(KernelEntry::Sa(
                inbound_id
            ))]
        );
        assert_eq!(h.service.installed().count(), 0);
        assert_eq!(
            h.calls.lock().unwrap().last(),
            Some(&Call::DeleteSa(0x1000))
        );
    }

    #[test]
    fn a_reqid_of_one_policy_is_refused_to_another_until_its_entries_are_gone() {
        let mut h = harness();
        let other = Flow {
            name: "other".into(),
            peer: iked_common::kernel::FlowPeer::Address(ip("192.0.2.3")),
            ..flow()
        };
        h.service.apply_config(&ChildConfig::Pfkey {
            generation: 2,
            flows: vec![flow(), other.clone()],
            routing: Default::default(),
        });
        // site's SA takes REQID.
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 1,
            sa: sa("192.0.2.1", "192.0.2.2", 0x1000, site()),
        });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 1 }]);
        // other's policy with REQID would use site's SAs: refused.
        let mut hijack = crate::test_fixtures::tunnel_policy();
        hijack.template.dst = ip("192.0.2.3");
        hijack.template.reqid = REQID;
        let o = h.service.handle_request(Ikev2ToPfkey::AddPolicy {
            id: 2,
            policy: hijack,
        });
        let [PfkeyToIkev2::Failed { failure, .. }] = &o.to_ikev2[..] else {
            panic!("{:?}", o.to_ikev2)
        };
        assert_eq!(
            failure.message,
            format!(
                "refused: reqid {REQID} belongs to policy site (192.0.2.1 - 192.0.2.2), \
                 not to other (192.0.2.1 - 192.0.2.3)"
            )
        );
        // Nor an SA of other with it.
        let o = h.service.handle_request(Ikev2ToPfkey::AddSa {
            id: 3,
            sa: sa("192.0.2.1", "192.0.2.3", 0x2000, site()),
        });
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { failure, .. }]
            if failure.message.contains(&format!("reqid {REQID} belongs to policy site"))),
            "{:?}",
            o.to_ikev2
        );
        // Once site's SA is gone, REQID is free.
        h.service.handle_request(Ikev2ToPfkey::DeleteSa {
            id: 4,
            sa: sa("192.0.2.1", "192.0.2.2", 0x1000, site()).id,
        });
        let o = h.service.handle_request(Ikev2ToPfkey::AddPolicy {
            id: 5,
            policy: hijack,
        });
        assert_eq!(o.to_ikev2, vec![PfkeyToIkev2::Done { id: 5 }]);
        // A policy with reqid 0 is refused outright.
        let mut zero = crate::test_fixtures::tunnel_policy();
        zero.template.reqid = 0;
        let o = h.service.handle_request(Ikev2ToPfkey::AddPolicy {
            id: 6,
            policy: zero,
        });
        assert!(
            matches!(&o.to_ikev2[..], [PfkeyToIkev2::Failed { failure, .. }]
            if failure.message.starts_with("refused: reqid 0")),
            "{:?}",
            o.to_ikev2
        );
    }
}
