//! The process shell of pfkey-proc: startup, the event loop, and dispatch
//! between ikev2's requests, the kernel's events and the parent.

use std::os::fd::{AsFd, OwnedFd};

use iked_common::child::{self, StartedChild};
use iked_common::event::Poller;
use iked_common::ipc::{self, ChildToParent, DescriptorPurpose, Ikev2ToPfkey, ParentToChild, Role};
use iked_common::kernel::KernelSocketKind;
use iked_common::logging;

use crate::service::{Outcome, PfkeyService};

const PARENT: u64 = 0;
const IKEV2: u64 = 1;
const KERNEL_EVENTS: u64 = 2;

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

fn take_kernel(started: &mut StartedChild, events: bool) -> Option<(KernelSocketKind, OwnedFd)> {
    for kind in [KernelSocketKind::Xfrm, KernelSocketKind::Pfkey] {
        let purpose = if events {
            DescriptorPurpose::KernelEvents(kind)
        } else {
            DescriptorPurpose::KernelRequests(kind)
        };
        if let Some(fd) = started.take(purpose) {
            return Some((kind, fd));
        }
    }
    None
}

fn serve(log_to_stderr: bool) -> Result<(), String> {
    let mut started = child::start(Role::Pfkey, log_to_stderr)?;
    let ikev2 = started
        .take(DescriptorPurpose::Sibling(Role::Ikev2))
        .ok_or("no channel to ikev2 was given")?;
    let (kind, requests) = take_kernel(&mut started, false).ok_or("no kernel socket was given")?;
    let (event_kind, events) =
        take_kernel(&mut started, true).ok_or("no kernel event socket was given")?;
    if event_kind != kind {
        return Err("kernel request and event sockets are of different kinds".into());
    }
    if let Some((purpose, _)) = started.descriptors.first() {
        return Err(format!("unexpected descriptor {purpose:?}"));
    }
    let mut service = PfkeyService::new(kind, requests, events)?;
    log::info!("kernel interface: {}", kind.name());

    let mut poller = Poller::new().map_err(|e| format!("epoll: {e}"))?;
    poller
        .add(started.parent(), PARENT)
        .map_err(|e| format!("epoll: {e}"))?;
    poller
        .add(ikev2.as_fd(), IKEV2)
        .map_err(|e| format!("epoll: {e}"))?;
    poller
        .add(service.event_fd(), KERNEL_EVENTS)
        .map_err(|e| format!("epoll: {e}"))?;
    loop {
        for token in poller.wait(None).map_err(|e| format!("epoll: {e}"))? {
            let outcome = match token {
                PARENT => match on_parent(&started, &mut service)? {
                    Some(outcome) => outcome,
                    None => return Ok(()),
                },
                IKEV2 => {
                    let request = ipc::recv::<Ikev2ToPfkey>(ikev2.as_fd())
                        .and_then(|r| r.expect_descriptors(0))
                        .map_err(|e| format!("ikev2: {e}"))?
                        .0;
                    service.handle_request(request)
                }
                _ => service.on_kernel_event(),
            };
            deliver(&started, &ikev2, outcome)?;
        }
    }
}

fn deliver(started: &StartedChild, ikev2: &OwnedFd, outcome: Outcome) -> Result<(), String> {
    for message in &outcome.to_parent {
        started.tell_parent(message)?;
    }
    for message in &outcome.to_ikev2 {
        ipc::send(ikev2.as_fd(), message, &[]).map_err(|e| format!("ikev2: {e}"))?;
    }
    Ok(())
}

/// Handles one parent message; None means shut down (after flushing).
fn on_parent(
    started: &StartedChild,
    service: &mut PfkeyService,
) -> Result<Option<Outcome>, String> {
    let Some(message) = started.next_from_parent()? else {
        // Without the parent nobody manages our entries: fail closed.
        log::info!("parent went away: flushing our kernel entries and exiting");
        service.flush_ours();
        return Ok(None);
    };
    match message {
        ParentToChild::Config(config @ ipc::ChildConfig::Pfkey { .. }) => {
            let mut outcome = service.apply_config(&config);
            outcome.to_parent.push(ChildToParent::ConfigApplied {
                generation: config.generation(),
            });
            Ok(Some(outcome))
        }
        ParentToChild::SetVerbosity(v) => {
            logging::set_verbosity(v);
            Ok(Some(Outcome::default()))
        }
        ParentToChild::Shutdown => {
            let outcome = service.flush_ours();
            for message in &outcome.to_parent {
                started.tell_parent(message)?;
            }
            started.tell_parent(&ChildToParent::ShutdownComplete)?;
            Ok(None)
        }
        other => Err(format!("parent: unexpected {other:?}")),
    }
}
