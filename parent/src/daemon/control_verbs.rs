//! The parent's side of `ikectl load|active|passive|show flows|couple|
//! decouple|reset all|policy|user`. `reset sa|id` and the SA commands go
//! to ikev2 as they are; `reset ca` is in daemon.rs.

use iked_common::config::InitiationMode;
use iked_common::ipc::{
    ControlCommand, ControlReply, ControlRequest, ParentToChild, PfkeyCommand, ResetTarget, Role,
};

use super::Daemon;

/// Longest path `ikectl load` may name (PATH_MAX).
const MAX_LOAD_PATH: usize = 4096;

impl Daemon {
    /// One request of this module from control client `id`; each gets
    /// one reply, now or when the child answers.
    pub(super) fn on_control_verb(&mut self, id: u64, request: ControlRequest) {
        let reply = match request {
            // The file is read by root: a member of control_group must not
            // make the parent read (and quote in errors) any file it likes.
            ControlRequest::Load { .. } if self.control.peer(id).is_none_or(|p| p.uid != 0) => {
                ControlReply::Failed("load is for root only".into())
            }
            ControlRequest::Load { path } => match self.begin_load(&path, id) {
                // Answered when the reload round ends (daemon/reload.rs).
                Ok(()) => return,
                Err(message) => ControlReply::Failed(message),
            },
            ControlRequest::SetMode(mode) => {
                // Passive stays through reloads, as `iked -p` does; active
                // lasts until a reload applies the file's `set` again.
                self.passive_override = mode == InitiationMode::Passive;
                self.config.mode = mode;
                return self.forward_to_ikev2(id, ControlCommand::SetMode(mode));
            }
            ControlRequest::Pfkey(command) => return self.forward_to_pfkey(id, command),
            ControlRequest::Reset(target) => match self.reset(target) {
                Ok(message) => ControlReply::Done(message),
                Err(message) => ControlReply::Failed(message),
            },
            other => ControlReply::Failed(format!("not a request of this module: {other:?}")),
        };
        self.control.reply(id, &reply);
    }

    /// `ikectl load FILE`: a reload round from FILE (same checks and
    /// atomicity); FILE becomes the configuration file at the commit, and
    /// on an error the current configuration and file stay.
    fn begin_load(&mut self, path: &str, id: u64) -> Result<(), String> {
        if path.len() > MAX_LOAD_PATH || path.contains('\0') || !path.starts_with('/') {
            return Err(format!(
                "load: {:?} is not an absolute path",
                path.chars().take(80).collect::<String>()
            ));
        }
        self.begin_reload(std::path::Path::new(path), Some(id))
    }

    /// `ikectl reset all|policy|user` (OpenBSD ikectl(8)): the running
    /// configuration loses its policies (their SAs are deleted with the
    /// peers, their kernel entries removed) and/or its users, until the
    /// next reload or load.
    fn reset(&mut self, target: ResetTarget) -> Result<String, String> {
        let (policies, users) = match target {
            ResetTarget::All => (true, true),
            ResetTarget::Policy => (true, false),
            ResetTarget::User => (false, true),
        };
        // One phase, from the configuration in force: a reload round
        // between prepare and commit would be overtaken by it.
        if self.pending_reload.is_some() {
            return Err("reset: a reload is in progress; try again when it ends".into());
        }
        let mut config = self.config.clone();
        if policies {
            config.policies.clear();
        }
        if users {
            config.users.clear();
        }
        // ca's share carries the certificate store: read again, as a
        // reload does, so ca keeps its certificates.
        let store = crate::certstore::read_for(&config).map_err(|e| {
            let message = format!("reset failed, nothing changed: {e}");
            log::error!("{message}");
            message
        })?;
        self.pending_store = Some(Box::new(store));
        self.config = config;
        self.generation += 1;
        for index in 0..self.children.len() {
            let role = self.children[index].role;
            let message = ParentToChild::Config(self.child_config(role));
            if let Err(e) = self.send_to_child(index, &message) {
                log::error!("sending configuration to {role}: {e}");
            }
        }
        let what = match target {
            ResetTarget::All => "policies, SAs and users",
            ResetTarget::Policy => "policies and their SAs",
            ResetTarget::User => "users",
        };
        let message = format!(
            "reset: {what} flushed (configuration {}) until the next reload",
            self.generation
        );
        log::info!("{message}");
        Ok(message)
    }

    /// Sends `command` to ikev2; its ControlResult answers client `id`.
    fn forward_to_ikev2(&mut self, id: u64, command: ControlCommand) {
        self.forward_to(id, Role::Ikev2, |request| ParentToChild::Control {
            id: request,
            command,
        })
    }

    /// Sends `command` to pfkey; its ControlResult answers client `id`.
    fn forward_to_pfkey(&mut self, id: u64, command: PfkeyCommand) {
        self.forward_to(id, Role::Pfkey, |request| ParentToChild::PfkeyControl {
            id: request,
            command,
        })
    }

    fn forward_to(&mut self, id: u64, role: Role, message: impl FnOnce(u64) -> ParentToChild) {
        let request_id = self.control.forwarding(id);
        let message = message(request_id);
        let sent = self
            .children
            .iter()
            .position(|c| c.role == role)
            .map(|index| self.send_to_child(index, &message));
        if !matches!(sent, Some(Ok(()))) {
            self.control.forget(request_id);
            self.control.reply(
                id,
                &ControlReply::Failed(format!("the {role} process is not available")),
            );
        }
    }

    /// Tells pfkey to load (true) or hold out (false) our kernel policies,
    /// as `set couple|decouple` says: at start and when a reload changes
    /// it. `ikectl couple|decouple` lasts until then.
    pub(super) fn send_coupling(&mut self, couple: bool) {
        let id = self.control.own_request();
        let message = ParentToChild::PfkeyControl {
            id,
            command: PfkeyCommand::Couple(couple),
        };
        if let Some(index) = self.children.iter().position(|c| c.role == Role::Pfkey) {
            if let Err(e) = self.send_to_child(index, &message) {
                log::error!(
                    "sending {} to pfkey: {e}",
                    if couple { "couple" } else { "decouple" }
                );
            }
        }
    }
}
