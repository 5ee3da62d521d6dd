//! The process shell of pfkey-proc: startup, the event loop, and dispatch
//! between ikev2's requests, the kernel's events and the parent.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use iked_common::child::{self, ChildError, FromParent, StartedChild};
use iked_common::event::Poller;
use iked_common::ipc::{
    self, Channel, ChildToParent, DescriptorPurpose, Ikev2ToPfkey, ParentToChild, Role,
};
use iked_common::kernel::KernelSocketKind;
use iked_common::logging;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::route_socket::RouteSocket;
use crate::routes::RouteManager;
use crate::service::{Outcome, PfkeyService};

const PARENT: u64 = 0;
const IKEV2: u64 = 1;
const KERNEL_EVENTS: u64 = 2;
const TERMINATE: u64 = 3;
/// Requests read from one channel per wakeup, so kernel events and the
/// parent are served between bursts of ikev2 requests.
const MESSAGES_PER_WAKEUP: usize = 64;

/// Entry point after exec; returns the exit status.
pub fn run(log_to_stderr: bool) -> i32 {
    child::exit_status(serve(log_to_stderr))
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

/// SIGTERM, from the parent (it stops us when another child is lost) or as
/// our parent-death signal: blocked from the first instruction, so that it
/// can never end us with entries in the kernel, and read from a signalfd in
/// the loop, where it flushes everything of ours before we exit.
fn termination_signals() -> SigSet {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGHUP);
    mask
}

fn serve(log_to_stderr: bool) -> Result<(), ChildError> {
    let mask = termination_signals();
    mask.thread_block()
        .map_err(|e| ChildError::Setup(format!("blocking SIGTERM: {e}")))?;
    // Made before the seccomp filter, which allows no signalfd4.
    let terminate = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| ChildError::Setup(format!("signalfd: {e}")))?;
    let mut started = child::start(Role::Pfkey, log_to_stderr)?;
    let mut ikev2 = Channel::new(
        started
            .take(DescriptorPurpose::Sibling(Role::Ikev2))
            .ok_or("no channel to ikev2 was given")?,
    );
    let (kind, requests) = take_kernel(&mut started, false).ok_or("no kernel socket was given")?;
    let (event_kind, events) =
        take_kernel(&mut started, true).ok_or("no kernel event socket was given")?;
    let route_socket = started
        .take(DescriptorPurpose::RouteNetlink)
        .ok_or("no route socket was given")?;
    if event_kind != kind {
        return Err(ChildError::Setup(
            "kernel request and event sockets are of different kinds".into(),
        ));
    }
    if let Some((purpose, _)) = started.descriptors.first() {
        return Err(ChildError::Setup(format!(
            "unexpected descriptor {purpose:?}"
        )));
    }
    let mut service =
        PfkeyService::new(kind, requests, events).map_err(|e| ChildError::Setup(e.to_string()))?;
    service.attach_routes(RouteManager::new(RouteSocket::new(route_socket)?));
    log::info!("kernel interface: {}", kind.name());
    // Before ikev2's first request: what a previous instance left (it
    // died together with its pfkey) goes first.
    service.remove_stale();

    let mut poller = Poller::new()?;
    started.register_parent(&poller, PARENT)?;
    // ikev2's channel is watched only once the parent's first configuration
    // is in (see serve_loop).
    poller.add(service.event_fd(), KERNEL_EVENTS)?;
    poller.add(&terminate, TERMINATE)?;
    let result = serve_loop(&mut started, &mut ikev2, &mut service, &mut poller);
    if result.is_err() && parent_is_gone(&mut started) {
        // Typically ikev2 died of the parent's death before we read the
        // parent's end of file: nobody else can remove our entries now.
        log::info!("parent went away: flushing our kernel entries and exiting");
        service.flush_ours();
    }
    result
}

/// How long pfkey, failing for another reason, waits to learn whether the
/// parent is gone too: a dead process's sockets may be released a moment
/// after its children see their siblings die. A live parent stops us with
/// SIGTERM within that time (and flushes our entries itself).
const PARENT_END_WAIT: Duration = Duration::from_secs(1);

/// Whether the parent's channel reaches its end within [`PARENT_END_WAIT`]
/// (messages still queued before it are skipped: we are exiting anyway).
fn parent_is_gone(started: &mut StartedChild) -> bool {
    let deadline = Instant::now() + PARENT_END_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match started.parent.recv_within::<ParentToChild>(left) {
            Ok(_) => continue,
            Err(ipc::IpcError::Closed) => return true,
            Err(_) => return false,
        }
    }
}

/// The event loop; Ok(()) after an orderly shutdown or the parent's end.
fn serve_loop(
    started: &mut StartedChild,
    ikev2: &mut Channel,
    service: &mut PfkeyService,
    poller: &mut Poller,
) -> Result<(), ChildError> {
    let parent = nix::unistd::getppid();
    let mut ikev2_watched = false;
    // Reload: the configuration prepared, until commit or abort.
    let mut staged = iked_common::reload::Staged::new();
    loop {
        let mut tokens = poller.wait(None)?;
        // A termination request goes before anything else of this wakeup:
        // no request of ikev2 is carried out after it.
        if tokens.contains(&TERMINATE) {
            tokens = vec![TERMINATE];
        }
        for token in tokens {
            match token {
                TERMINATE => {
                    // Our parent-death signal, or the parent stopping us.
                    if nix::unistd::getppid() != parent {
                        log::info!("parent went away: flushing our kernel entries and exiting");
                    } else {
                        log::info!("terminated: flushing our kernel entries and exiting");
                    }
                    terminate(started, service);
                    return Ok(());
                }
                PARENT => {
                    if !on_parent(started, ikev2, service, &mut staged)? {
                        return Ok(());
                    }
                    // The flows come from the parent, ikev2's requests on
                    // another socket: read first, a request could beat the
                    // configuration it needs and be refused (ikev2 applies
                    // its own configuration as soon as it has it). So ikev2
                    // is heard only from the first configuration on.
                    if !ikev2_watched && service.configured() {
                        ikev2.register(poller, IKEV2)?;
                        ikev2_watched = true;
                    }
                }
                IKEV2 => {
                    for _ in 0..MESSAGES_PER_WAKEUP {
                        let Some(request) = ikev2
                            .try_recv_message::<Ikev2ToPfkey>()
                            .map_err(ChildError::on("ikev2"))?
                        else {
                            break;
                        };
                        let outcome = service.handle_request(request);
                        deliver(started, ikev2, outcome)?;
                    }
                }
                _ => {
                    let outcome = service.on_kernel_event();
                    deliver(started, ikev2, outcome)?;
                }
            }
        }
        // Sends never wait: what the sockets did not take goes out when
        // they are writable again, while we keep reading.
        match started.parent.flush() {
            Err(ipc::IpcError::Closed) => {
                log::info!("parent went away: flushing our kernel entries and exiting");
                service.flush_ours();
                return Ok(());
            }
            Err(e) => return Err(ChildError::on("parent channel")(e)),
            Ok(()) => {}
        }
        started.parent.update_interest(poller)?;
        ikev2.flush().map_err(ChildError::on("ikev2"))?;
        ikev2.update_interest(poller)?;
    }
}

/// Flushes everything of ours and tells the parent (when it still listens)
/// of each removal, within a bounded time: it flushes the rest itself.
fn terminate(started: &mut StartedChild, service: &mut PfkeyService) {
    let outcome = service.flush_ours();
    for message in &outcome.to_parent {
        if started.tell_parent(message).is_err() {
            return;
        }
    }
    if let Err(e) = started.flush_parent_before_exit() {
        log::debug!("parent channel at exit: {e}");
    }
}

/// Queues an outcome's messages. The parent's come first: it must know of
/// an entry before ikev2 can act on it (fail closed if we die now).
fn deliver(
    started: &mut StartedChild,
    ikev2: &mut Channel,
    outcome: Outcome,
) -> Result<(), ChildError> {
    for message in &outcome.to_parent {
        started.tell_parent(message)?;
    }
    if let Some(report) = crate::stats::count_replies(&outcome.to_ikev2) {
        started.tell_parent(&report)?;
    }
    for message in &outcome.to_ikev2 {
        ikev2.send(message).map_err(ChildError::on("ikev2"))?;
    }
    Ok(())
}

/// Handles what the parent sent; false means shut down (after flushing).
fn on_parent(
    started: &mut StartedChild,
    ikev2: &mut Channel,
    service: &mut PfkeyService,
    staged: &mut iked_common::reload::Staged<ipc::ChildConfig>,
) -> Result<bool, ChildError> {
    for _ in 0..MESSAGES_PER_WAKEUP {
        let message = match started.next_from_parent()? {
            FromParent::Message(message) => message,
            FromParent::Nothing => break,
            FromParent::Gone => {
                // Without the parent nobody manages our entries: fail closed.
                log::info!("parent went away: flushing our kernel entries and exiting");
                service.flush_ours();
                return Ok(false);
            }
        };
        match message {
            ParentToChild::Config(config @ ipc::ChildConfig::Pfkey { .. }) => {
                let mut outcome = service.apply_config(&config);
                outcome.to_parent.push(ChildToParent::ConfigApplied {
                    generation: config.generation(),
                });
                deliver(started, ikev2, outcome)?;
            }
            ParentToChild::PrepareConfig(config) => {
                let generation = config.generation();
                let answer = match crate::reload::check(&config) {
                    Ok(()) => {
                        staged.prepare(generation, config);
                        ChildToParent::ConfigPrepared { generation }
                    }
                    Err(reason) => ChildToParent::ConfigRefused { generation, reason },
                };
                started.tell_parent(&answer)?;
            }
            ParentToChild::CommitConfig { generation } => {
                let config = staged.commit(generation).map_err(ChildError::Setup)?;
                let mut outcome = service.apply_config(&config);
                outcome
                    .to_parent
                    .push(ChildToParent::ConfigApplied { generation });
                deliver(started, ikev2, outcome)?;
            }
            ParentToChild::AbortConfig { generation } => {
                if staged.abort(generation) {
                    log::info!("configuration {generation} dropped: the reload was aborted");
                }
            }
            ParentToChild::SetVerbosity(v) => logging::set_verbosity(v),
            ParentToChild::PfkeyControl { id, command } => {
                let outcome = service.control(id, command);
                deliver(started, ikev2, outcome)?;
            }
            ParentToChild::Shutdown => {
                let outcome = service.flush_ours();
                for message in &outcome.to_parent {
                    started.tell_parent(message)?;
                }
                started.tell_parent(&ChildToParent::ShutdownComplete)?;
                started.flush_parent_before_exit()?;
                return Ok(false);
            }
            other => return Err(ChildError::unexpected("parent", &other)),
        }
    }
    Ok(true)
}
