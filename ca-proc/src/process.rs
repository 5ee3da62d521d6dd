//! The process shell of ca-proc: startup and the event loop.

use std::os::fd::{AsFd, OwnedFd};

use iked_common::child::{self, StartedChild};
use iked_common::event::Poller;
use iked_common::ipc::{
    self, ChildConfig, ChildToParent, DescriptorPurpose, Ikev2ToCa, ParentToChild, Role,
};

use crate::auth::AuthService;
use iked_common::logging;

const PARENT: u64 = 0;
const IKEV2: u64 = 1;

/// Entry point after exec; returns the exit status.
pub fn run(log_to_stderr: bool) -> i32 {
    match serve(log_to_stderr) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn serve(log_to_stderr: bool) -> Result<(), String> {
    let mut started = child::start(Role::Ca, log_to_stderr)?;
    let ikev2 = started
        .take(DescriptorPurpose::Sibling(Role::Ikev2))
        .ok_or("no channel to ikev2 was given")?;
    if let Some((purpose, _)) = started.descriptors.first() {
        return Err(format!("unexpected descriptor {purpose:?}"));
    }
    let mut auth = AuthService::default();
    let mut poller = Poller::new().map_err(|e| format!("epoll: {e}"))?;
    poller
        .add(started.parent(), PARENT)
        .map_err(|e| format!("epoll: {e}"))?;
    poller
        .add(ikev2.as_fd(), IKEV2)
        .map_err(|e| format!("epoll: {e}"))?;
    loop {
        for token in poller.wait(None).map_err(|e| format!("epoll: {e}"))? {
            match token {
                PARENT => {
                    if !on_parent(&started, &mut auth)? {
                        return Ok(());
                    }
                }
                _ => on_ikev2(&ikev2, &auth)?,
            }
        }
    }
}

/// Handles one parent message; false means shut down.
fn on_parent(started: &StartedChild, auth: &mut AuthService) -> Result<bool, String> {
    let Some(message) = started.next_from_parent()? else {
        log::info!("parent went away, exiting");
        return Ok(false);
    };
    match message {
        ParentToChild::Config(ChildConfig::Ca { generation, psks }) => {
            auth.set_keys(psks);
            log::debug!("{} pre-shared keys loaded", auth.key_count());
            started.tell_parent(&ChildToParent::ConfigApplied { generation })?;
        }
        ParentToChild::SetVerbosity(v) => logging::set_verbosity(v),
        ParentToChild::Shutdown => {
            started.tell_parent(&ChildToParent::ShutdownComplete)?;
            return Ok(false);
        }
        other => return Err(format!("parent: unexpected {other:?}")),
    }
    Ok(true)
}

fn on_ikev2(ikev2: &OwnedFd, auth: &AuthService) -> Result<(), String> {
    let request = ipc::recv::<Ikev2ToCa>(ikev2.as_fd())
        .and_then(|r| r.expect_descriptors(0))
        .map_err(|e| format!("ikev2: {e}"))?
        .0;
    let reply = auth.handle(request);
    ipc::send(ikev2.as_fd(), &reply, &[]).map_err(|e| format!("ikev2: {e}"))
}
