//! The public entry points: every event enters here, and only here is `now` set.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use iked_common::config::{FragmentationSettings, Policy};
use iked_common::crypto::RandomSource;
use iked_common::ipc::{CaToIkev2, ControlCommand, ControlReply, InitiationMode, PfkeyToIkev2};
use iked_common::logging::RateLimit;
use iked_common::wire::{ExchangeType, Message};

use crate::engine::{Action, Engine, ReplyError, Settings};

use crate::engine::admission::*;
use crate::engine::state::*;

impl Engine {
    /// One received IKE datagram (non-ESP marker already removed), that
    /// arrived at `local` from `remote`. Anything malformed is dropped.
    pub fn handle_datagram(
        &mut self,
        now: std::time::Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
    ) {
        self.now = now;
        self.stats.count_received(datagram);
        let message = match Message::decode(datagram) {
            Ok(m) => m,
            Err(e) => {
                log::debug!(
                    "{remote}: dropped undecodable datagram ({} bytes): {e}",
                    datagram.len()
                );
                return;
            }
        };
        let header = message.header;
        if header.initiator_spi == 0 {
            log::debug!("{remote}: dropped message with a zero initiator SPI");
            return;
        }
        if header.exchange == ExchangeType::IkeSaInit {
            if header.is_request() {
                self.on_sa_init_request(local, remote, datagram, &message);
            } else {
                self.on_sa_init_response(local, remote, datagram, &message);
            }
            return;
        }
        // Our SPI is the responder's if the sender is the original initiator.
        let our_spi = if header.flags.initiator {
            header.responder_spi
        } else {
            header.initiator_spi
        };
        let Some(sa) = self.ikes.get(&our_spi) else {
            log::debug!(
                "{remote}: {} for unknown IKE SA {our_spi:016x}",
                header.exchange
            );
            return;
        };
        // The header must name this SA exactly, and the I flag must be the
        // peer's role (RFC 7296 §3.1).
        if sa.spi_i != header.initiator_spi
            || sa.spi_r != header.responder_spi
            || header.flags.initiator == sa.initiator
        {
            log::debug!("{remote}: SPIs or I flag do not match IKE SA {our_spi:016x}");
            return;
        }
        if header.is_request() {
            self.on_request(our_spi, local, remote, datagram, &message);
        } else {
            self.on_response(our_spi, local, remote, datagram, &message);
        }
        self.pump(our_spi);
        self.schedule(our_spi);
    }

    /// A message from pfkey-proc.
    /// A message from pfkey-proc. A reply to a request we never made is a
    /// protocol error (the shell exits on it).
    pub fn handle_pfkey(
        &mut self,
        now: std::time::Instant,
        message: PfkeyToIkev2,
    ) -> Result<(), ReplyError> {
        self.now = now;
        self.stats.count_pfkey_reply(&message);
        let Some(message) = self.take_counter_reply(message)? else {
            return Ok(());
        };
        if let PfkeyToIkev2::SpiAllocated { id, .. }
        | PfkeyToIkev2::Done { id }
        | PfkeyToIkev2::Failed { id, .. }
        | PfkeyToIkev2::SourceAddress { id, .. } = &message
        {
            if !self.waits.contains_key(id) {
                return Err(ReplyError::NeverAsked { id: *id });
            }
        }
        let ike = match &message {
            PfkeyToIkev2::SpiAllocated { id, .. }
            | PfkeyToIkev2::Done { id }
            | PfkeyToIkev2::Failed { id, .. }
            | PfkeyToIkev2::SourceAddress { id, .. } => self.waits.get(id).map(|(ike, _)| *ike),
            _ => None,
        };
        self.dispatch_pfkey(message);
        if let Some(ike) = ike {
            self.pump(ike);
            self.schedule(ike);
        }
        Ok(())
    }

    /// A message from ca-proc.
    /// A message from ca-proc; as for pfkey, unknown request ids are errors.
    pub fn handle_ca(
        &mut self,
        now: std::time::Instant,
        message: CaToIkev2,
    ) -> Result<(), ReplyError> {
        self.now = now;
        if let CaToIkev2::Auth { id, .. }
        | CaToIkev2::Verified { id, .. }
        | CaToIkev2::Failed { id, .. }
        | CaToIkev2::Eap { id, .. } = &message
        {
            if !self.waits.contains_key(id) {
                return Err(ReplyError::NeverAsked { id: *id });
            }
        }
        let ike = match &message {
            CaToIkev2::Auth { id, .. }
            | CaToIkev2::Verified { id, .. }
            | CaToIkev2::Failed { id, .. }
            | CaToIkev2::Eap { id, .. } => self.waits.get(id).map(|(ike, _)| *ike),
            CaToIkev2::Pong { .. } | CaToIkev2::Store { .. } => None,
        };
        self.dispatch_ca(message);
        if let Some(ike) = ike {
            self.pump(ike);
            self.schedule(ike);
        }
        Ok(())
    }

    /// Daemon shutdown: one INFORMATIONAL DELETE per established IKE SA,
    /// sent once without waiting for answers (RFC 7296 §1.4.1), so peers do
    /// not wait for DPD. Kernel entries are flushed by pfkey-proc.
    pub fn shutdown(&mut self, now: std::time::Instant) {
        self.now = now;
        let spis: Vec<u64> = self
            .ikes
            .iter()
            .filter(|(_, sa)| matches!(sa.state, IkeState::Established | IkeState::Rekeyed))
            .map(|(spi, _)| *spi)
            .collect();
        for spi in spis {
            // The window may be busy: the DELETE then uses the next ID,
            // which a peer with window 1 may ignore; it is a courtesy.
            self.send_ike_delete(spi);
        }
        self.actions.retain(|a| matches!(a, Action::Send { .. }));
    }

    /// A new engine. Fails only if the random source fails: without
    /// randomness there is no safe cookie secret, SPI or nonce, so the
    /// daemon must not run.
    pub fn new(
        settings: Settings,
        mut rng: Box<dyn RandomSource>,
        now: Instant,
    ) -> Result<Engine, iked_common::crypto::CryptoError> {
        let mut current = CookieSecret::new([0u8; 32]);
        rng.fill(current.as_mut())?;
        let cookie_secrets = CookieSecrets {
            version: 1,
            current,
            previous: None,
            rotate_at: now + settings.cookie_secret_lifetime,
        };
        Ok(Engine {
            settings,
            rng,
            now,
            policies: Vec::new(),
            mode: InitiationMode::Passive,
            dpd_interval: None,
            ikes: HashMap::new(),
            by_init: HashMap::new(),
            half_open: 0,
            half_open_by_source: HashMap::new(),
            by_policy: HashMap::new(),
            by_identity: HashMap::new(),
            children: HashMap::new(),
            children_by_policy: HashMap::new(),
            waits: HashMap::new(),
            next_ipc_id: 1,
            reqids: Default::default(),
            timers: BinaryHeap::new(),
            actions: VecDeque::new(),
            cookie_secrets,
            traps: HashMap::new(),
            restarts: Vec::new(),
            policy_owner: HashMap::new(),
            flow_children: HashMap::new(),
            counter_queries: HashMap::new(),
            expired_counter_ids: VecDeque::new(),
            unauthenticated_log: RateLimit::new(UNAUTHENTICATED_LOG_BURST, Duration::from_secs(1)),
            ca_store: None,
            fragment_memory: Default::default(),
            leases: Default::default(),
            stats: Default::default(),
            #[cfg(test)]
            test_ke_stream: None,
            #[cfg(test)]
            test_requested_address: None,
        })
    }

    /// The next action for the shell, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front()?;
        self.stats.count_action(&action);
        Some(action)
    }

    /// All pending actions.
    pub fn drain_actions(&mut self) -> Vec<Action> {
        let stats = &mut self.stats;
        self.actions
            .drain(..)
            .inspect(|action| stats.count_action(action))
            .collect()
    }

    /// When [`Engine::handle_timeout`] should next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let restart = self.restarts.iter().map(|(at, _)| *at).min();
        let counters = self.counter_queries.values().map(|q| q.deadline).min();
        [timer, restart, counters].into_iter().flatten().min()
    }

    /// Number of IKE SAs (any state).
    pub fn ike_sa_count(&self) -> usize {
        self.ikes.len()
    }

    /// Number of Child SAs.
    pub fn child_sa_count(&self) -> usize {
        self.children.len()
    }

    /// A new configuration (RFC-independent: `iked.conf` reload). SAs of
    /// policies that are unchanged, or changed only in lifetimes, trap or
    /// initiation, stay up; SAs of removed policies, and of policies changed
    /// in what was negotiated, are deleted with the peer; active policies
    /// without an SA are started (see engine/reload.rs).
    pub fn set_config(
        &mut self,
        now: Instant,
        policies: Vec<Policy>,
        mode: InitiationMode,
        dpd_check_interval: u32,
    ) {
        self.now = now;
        // In name order, each policy's SAs in SPI order: what is deleted
        // goes out in the same order every run (the maps' order is random).
        let old: BTreeMap<String, Policy> = self
            .policies
            .drain(..)
            .map(|p| (p.name.clone(), p))
            .collect();
        for (name, old_policy) in &old {
            let change = crate::engine::reload::policy_change(
                Some(old_policy),
                policies.iter().find(|p| &p.name == name),
            );
            if change == crate::engine::reload::PolicyChange::Adjusted {
                log::info!(
                    "policy {name} changed in lifetimes, trap or initiation only: its SAs \
                     stay, new lifetimes apply from their next rekey"
                );
            }
            if change.deletes_sas() {
                let mut spis: Vec<u64> = self
                    .by_policy
                    .get(name)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                spis.sort_unstable();
                if !spis.is_empty() {
                    log::info!(
                        "policy {name} {}: deleting its {} IKE SA(s) with the peer",
                        if change == crate::engine::reload::PolicyChange::Removed {
                            "removed"
                        } else {
                            "changed"
                        },
                        spis.len()
                    );
                }
                for spi in spis {
                    // A changed policy is started afresh below, not later.
                    if let Some(sa) = self.ikes.get_mut(&spi) {
                        sa.no_restart = true;
                    }
                    self.request_delete_ike(spi);
                }
            }
        }
        self.policies = policies;
        for reqid in self.leases.sync(&self.policies) {
            self.reqids.release(reqid);
        }
        self.mode = mode;
        self.sync_traps();
        self.dpd_interval =
            (dpd_check_interval > 0).then(|| Duration::from_secs(u64::from(dpd_check_interval)));
        if mode == InitiationMode::Active {
            self.start_idle_active_policies();
        }
    }

    /// IKE fragmentation settings of a new configuration (RFC 7383): the
    /// size applies to every message sent from now on; whether we
    /// announce it, to IKE SAs negotiated from now on (an SA keeps what
    /// its IKE_SA_INIT agreed).
    pub fn set_fragmentation(&mut self, fragmentation: FragmentationSettings) {
        self.settings.fragmentation = fragmentation;
    }

    /// `set mobike|nomobike` of a new configuration (RFC 4555): whether
    /// IKE SAs negotiated from now on announce MOBIKE_SUPPORTED, and
    /// whether UPDATE_SA_ADDRESSES is followed.
    pub fn set_mobike(&mut self, enabled: bool) {
        self.settings.mobike = enabled;
    }

    /// The tunables of a new configuration (iked.conf(5) `set
    /// retransmit_timeout` ...): they apply from now on; a request already
    /// sent keeps its schedule, SAs already held stay.
    pub fn set_tunables(&mut self, tunables: &iked_common::config::EngineTunables) {
        super::tunables::apply(&mut self.settings, tunables);
    }

    /// Our address `gone` went away (the shell learnt it from the kernel)
    /// and `replacement` is to be used instead: each IKE SA we initiated
    /// with MOBIKE on `gone` moves there with UPDATE_SA_ADDRESSES (RFC 4555
    /// §3.5), its Child SAs once the peer answers. Returns how many move.
    pub fn local_address_changed(
        &mut self,
        now: Instant,
        gone: std::net::IpAddr,
        replacement: std::net::IpAddr,
    ) -> usize {
        self.now = now;
        self.move_local_address(gone, replacement)
    }

    /// An operator's command (`ikectl show sa|initiate|terminate`).
    pub fn handle_control(&mut self, now: Instant, id: u64, command: ControlCommand) {
        self.now = now;
        let reply = match command {
            ControlCommand::ShowSa => {
                let (list, total) = self.show_sa_capped();
                match self.ask_counters(id, list, total) {
                    Ok(()) => return,
                    Err(list) => ControlReply::SaList { sas: list, total },
                }
            }
            ControlCommand::Initiate { policy } => {
                if !self.policies.iter().any(|p| p.name == policy) {
                    ControlReply::Failed(format!("no policy named {policy}"))
                } else if self.by_policy.get(&policy).is_some_and(|s| {
                    s.iter().any(|spi| {
                        self.ikes.get(spi).is_some_and(|sa| {
                            !matches!(sa.state, IkeState::Rekeyed | IkeState::Deleting)
                        })
                    })
                }) {
                    ControlReply::Done(format!("policy {policy} already has an IKE SA"))
                } else {
                    match self.initiate(&policy, None, 0) {
                        Ok(()) => ControlReply::Done(format!("initiating policy {policy}")),
                        Err(e) => ControlReply::Failed(e),
                    }
                }
            }
            ControlCommand::Terminate { policy } => {
                let spis: Vec<u64> = self
                    .by_policy
                    .get(&policy)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                if spis.is_empty() {
                    ControlReply::Failed(format!("policy {policy} has no IKE SA"))
                } else {
                    for spi in &spis {
                        if let Some(sa) = self.ikes.get_mut(spi) {
                            sa.no_restart = true;
                        }
                        self.request_delete_ike(*spi);
                    }
                    self.restarts.retain(|(_, name)| *name != policy);
                    ControlReply::Done(format!(
                        "terminating {} IKE SA(s) of policy {policy}",
                        spis.len()
                    ))
                }
            }
            ControlCommand::ShowStats => {
                ControlReply::Stats(Box::new(iked_common::stats::StatsReport {
                    engine: self.engine_stats(),
                    ..Default::default()
                }))
            }
            command => return self.handle_control_verb(id, command),
        };
        self.actions.push_back(Action::Control { id, reply });
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let due = self.take_due_timers();
        for spi in due {
            self.service(spi);
        }
        self.run_restarts();
        self.expire_counter_queries();
    }
}
