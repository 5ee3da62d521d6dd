//! Reload of iked.conf, atomic across the three children.
//!
//! A reload runs in two phases so that the processes never disagree on
//! the configuration in force:
//!
//! 1. prepare: the parent parses and checks the file and reads the
//!    certificate store ([`Daemon::begin_reload`]); each child gets its
//!    share in [`ParentToChild::PrepareConfig`], checks it and keeps it
//!    aside, answering `ConfigPrepared` or `ConfigRefused`;
//! 2. commit, once all three prepared ([`Daemon::commit_reload`]): each
//!    child gets [`ParentToChild::CommitConfig`] and switches; or abort,
//!    when one refused or did not answer within [`PREPARE_TIMEOUT`]
//!    ([`Daemon::abort_reload`]): each gets [`ParentToChild::AbortConfig`]
//!    and drops what it prepared.
//!
//! On any failure the configuration in force stays, and established SAs
//! with it. What a committed reload does to each policy's SAs is decided
//! in ikev2-proc/src/engine/reload.rs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use iked_common::config::{self, Config};
use iked_common::ipc::{self, ControlReply, InitiationMode, ParentToChild, Role};

use super::Daemon;
use crate::control::ControlGroup;

/// How long each child has to answer a prepare: a child that has not
/// answered by then (stuck, or its queue not drained) aborts the reload
/// for all.
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(5);

/// The children that take part in every reload.
const PARTICIPANTS: [Role; 3] = [Role::Ikev2, Role::Pfkey, Role::Ca];

/// What a child answered to a prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Prepared,
    Refused(String),
}

/// Where a round stands after an answer or a look at the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Still waiting for some children.
    Waiting,
    /// Every child prepared: commit.
    Commit,
    /// Abort, for this reason.
    Abort(String),
}

/// One reload round: the generation prepared, whom we still wait for,
/// and until when. Pure (the clock is passed in) so that it is tested
/// without processes.
#[derive(Debug)]
pub struct Round {
    pub generation: u64,
    /// In [`PARTICIPANTS`] order, for stable messages.
    awaiting: Vec<Role>,
    deadline: Instant,
}

impl Round {
    pub fn new(generation: u64, now: Instant) -> Round {
        Round {
            generation,
            awaiting: PARTICIPANTS.to_vec(),
            deadline: now + PREPARE_TIMEOUT,
        }
    }

    /// A child's answer to the prepare of `generation`. Answers to an
    /// earlier round (one that was aborted) are ignored.
    pub fn on_answer(&mut self, role: Role, generation: u64, answer: Answer) -> Progress {
        if generation != self.generation || !self.awaiting.contains(&role) {
            return Progress::Waiting;
        }
        match answer {
            Answer::Refused(reason) => Progress::Abort(format!("{role} refused it: {reason}")),
            Answer::Prepared => {
                self.awaiting.retain(|r| *r != role);
                if self.awaiting.is_empty() {
                    Progress::Commit
                } else {
                    Progress::Waiting
                }
            }
        }
    }

    /// Abort when the deadline has passed with children still silent.
    pub fn on_clock(&self, now: Instant) -> Progress {
        if now < self.deadline || self.awaiting.is_empty() {
            return Progress::Waiting;
        }
        let silent: Vec<String> = self.awaiting.iter().map(|r| r.to_string()).collect();
        Progress::Abort(format!(
            "{} did not answer within {} s",
            silent.join(" and "),
            PREPARE_TIMEOUT.as_secs()
        ))
    }

    /// How long the event loop may sleep before [`Round::on_clock`].
    pub fn time_left(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }
}

/// A reload in progress: the round, and what is put in force at commit.
pub struct PendingReload {
    round: Round,
    config: Config,
    control_group: Option<ControlGroup>,
    path: PathBuf,
    /// Forwarded control requests (`ikectl reload`) answered at the end.
    requests: Vec<u64>,
}

impl Daemon {
    /// Starts a reload from `path` (the configuration file, or another one
    /// for `ikectl load FILE`): parses and checks it, and sends each child
    /// its prepare. `requester` is the control client to answer when the
    /// round ends. Err: nothing was sent, the old configuration stays.
    pub(super) fn begin_reload(
        &mut self,
        path: &Path,
        requester: Option<u64>,
    ) -> Result<(), String> {
        // systemd (Type=notify) sees RELOADING until the round ends.
        crate::notify::reloading();
        let begun = self.prepare_round(path, requester);
        if begun.is_err() {
            crate::notify::reloaded();
        }
        begun
    }

    /// begin_reload's work: Err when nothing was sent.
    fn prepare_round(&mut self, path: &Path, requester: Option<u64>) -> Result<(), String> {
        let failed = |e: &dyn std::fmt::Display| {
            let message = format!("reload failed, keeping the current configuration: {e}");
            log::error!("{message}");
            message
        };
        let mut config = config::parse_file(path, &self.macros).map_err(|e| failed(&e))?;
        if self.passive_override {
            config.mode = InitiationMode::Passive;
        }
        if config.kernel.is_some() && config.kernel != Some(self.kernel_kind) {
            log::warn!("a change of 'set kernel' takes effect only at restart");
        }
        for warning in config::order_warnings(&config) {
            log::warn!("{warning}");
        }
        // What the kernel interface can install (load_checks.rs).
        crate::load_checks::apply(&mut config).map_err(|e| failed(&e.to_string()))?;
        let control_group =
            ControlGroup::resolve(config.control_group.as_deref()).map_err(|e| failed(&e))?;
        let store = crate::certstore::read_for(&config).map_err(|e| failed(&e))?;
        // The newest file wins: a round still waiting is abandoned (an
        // operator who edits again and reloads means the new text).
        if let Some(pending) = &self.pending_reload {
            let reason = format!(
                "superseded by a newer reload of {} before every process had prepared it",
                path.display()
            );
            log::info!("configuration {}: {reason}", pending.round.generation);
            self.abort_reload(&reason);
        }
        // Never a number already used by an abandoned round, so that a
        // late answer to it cannot count for this one.
        let generation = self.generation.max(self.last_round) + 1;
        self.last_round = generation;
        let prepares = self.shares_of(config, generation, store);
        let (config, messages) = prepares;
        for (role, message) in messages {
            let Some(index) = self.children.iter().position(|c| c.role == role) else {
                return Err(failed(&format!("the {role} process is not available")));
            };
            // A failed send is fatal for the daemon anyway (fail closed).
            self.send_to_child(index, &message)
                .map_err(|e| failed(&e))?;
        }
        log::info!(
            "configuration {generation} from {}: prepared by the parent, asking the children",
            path.display()
        );
        self.pending_reload = Some(PendingReload {
            round: Round::new(generation, Instant::now()),
            config,
            control_group,
            path: path.to_path_buf(),
            requests: requester
                .map(|client| vec![self.control.forwarding(client)])
                .unwrap_or_default(),
        });
        Ok(())
    }

    /// Each child's share of `config` at `generation`, built by the same
    /// [`Daemon::child_config`] as at start (one place decides what each
    /// child gets), with the configuration in force put back after.
    fn shares_of(
        &mut self,
        config: Config,
        generation: u64,
        store: ipc::CertStoreFiles,
    ) -> (Config, Vec<(Role, ParentToChild)>) {
        let in_force = std::mem::replace(&mut self.config, config);
        let generation_in_force = std::mem::replace(&mut self.generation, generation);
        let store_in_waiting = self.pending_store.replace(Box::new(store));
        let messages = PARTICIPANTS
            .into_iter()
            .map(|role| (role, ParentToChild::PrepareConfig(self.child_config(role))))
            .collect();
        self.pending_store = store_in_waiting;
        self.generation = generation_in_force;
        let config = std::mem::replace(&mut self.config, in_force);
        (config, messages)
    }

    /// A child's answer to a prepare (ConfigPrepared / ConfigRefused).
    pub(super) fn on_prepare_answer(&mut self, role: Role, generation: u64, answer: Answer) {
        let Some(pending) = self.pending_reload.as_mut() else {
            log::debug!("{role}: answer for configuration {generation}, no reload pending");
            return;
        };
        match pending.round.on_answer(role, generation, answer) {
            Progress::Waiting => {}
            Progress::Commit => self.commit_reload(),
            Progress::Abort(reason) => self.abort_reload(&reason),
        }
    }

    /// How long the event loop may wait: until the round's deadline.
    pub(super) fn reload_wait(&self) -> Option<Duration> {
        self.pending_reload
            .as_ref()
            .map(|p| p.round.time_left(Instant::now()))
    }

    /// Aborts the round if its deadline has passed.
    pub(super) fn check_reload_deadline(&mut self) {
        if let Some(pending) = &self.pending_reload {
            if let Progress::Abort(reason) = pending.round.on_clock(Instant::now()) {
                self.abort_reload(&reason);
            }
        }
    }

    /// Every child prepared: all switch, and the parent with them.
    fn commit_reload(&mut self) {
        let Some(pending) = self.pending_reload.take() else {
            return;
        };
        let generation = pending.round.generation;
        for index in 0..self.children.len() {
            // A failed send stops the daemon at the loop's next turn.
            let _ = self.send_to_child(index, &ParentToChild::CommitConfig { generation });
        }
        let coupling =
            (self.config.couple != pending.config.couple).then_some(pending.config.couple);
        self.config = pending.config;
        self.generation = generation;
        if let Some(couple) = coupling {
            self.send_coupling(couple);
        }
        // `ikectl load FILE`: FILE is what later reloads read.
        self.config_path.clone_from(&pending.path);
        if let Err(e) = self.control.set_group(pending.control_group) {
            log::error!("{e}");
        }
        let message = format!(
            "configuration {generation} loaded from {}",
            pending.path.display()
        );
        log::info!("{message}");
        // Hooks at commit: a "config reloaded" event, sd_notify READY=1.
        self.stats.config_loads += 1;
        self.monitors.config_loaded(&mut self.control, &message);
        for request in pending.requests {
            self.control
                .answer(request, &ControlReply::Done(message.clone()));
        }
        crate::notify::reloaded();
    }

    /// The round failed: every child drops what it prepared; the
    /// configuration in force stays.
    fn abort_reload(&mut self, reason: &str) {
        let Some(pending) = self.pending_reload.take() else {
            return;
        };
        let generation = pending.round.generation;
        for index in 0..self.children.len() {
            let _ = self.send_to_child(index, &ParentToChild::AbortConfig { generation });
        }
        let message = format!(
            "reload failed, keeping the current configuration: configuration {generation} from \
             {}: {reason}",
            pending.path.display()
        );
        log::error!("{message}");
        for request in pending.requests {
            self.control
                .answer(request, &ControlReply::Failed(message.clone()));
        }
        crate::notify::reloaded();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_once_every_child_prepared() {
        let now = Instant::now();
        let mut round = Round::new(4, now);
        assert_eq!(
            round.on_answer(Role::Ikev2, 4, Answer::Prepared),
            Progress::Waiting
        );
        assert_eq!(
            round.on_answer(Role::Pfkey, 4, Answer::Prepared),
            Progress::Waiting
        );
        // A repeated or stale answer changes nothing.
        assert_eq!(
            round.on_answer(Role::Pfkey, 4, Answer::Prepared),
            Progress::Waiting
        );
        assert_eq!(
            round.on_answer(Role::Ca, 3, Answer::Prepared),
            Progress::Waiting
        );
        assert_eq!(
            round.on_answer(Role::Ca, 4, Answer::Prepared),
            Progress::Commit
        );
    }

    #[test]
    fn one_refusal_aborts_for_all() {
        let mut round = Round::new(2, Instant::now());
        assert_eq!(
            round.on_answer(Role::Ikev2, 2, Answer::Prepared),
            Progress::Waiting
        );
        assert_eq!(
            round.on_answer(Role::Ca, 2, Answer::Refused("local.key: no key".into())),
            Progress::Abort("ca refused it: local.key: no key".into())
        );
    }

    #[test]
    fn a_silent_child_aborts_at_the_deadline() {
        let now = Instant::now();
        let mut round = Round::new(2, now);
        round.on_answer(Role::Ikev2, 2, Answer::Prepared);
        round.on_answer(Role::Ca, 2, Answer::Prepared);
        assert_eq!(
            round.on_clock(now + PREPARE_TIMEOUT - Duration::from_millis(1)),
            Progress::Waiting
        );
        assert_eq!(round.time_left(now), PREPARE_TIMEOUT);
        assert_eq!(
            round.on_clock(now + PREPARE_TIMEOUT),
            Progress::Abort("pfkey did not answer within 5 s".into())
        );
    }
}
