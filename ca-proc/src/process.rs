//! The process shell of ca-proc: startup and the event loop.

use iked_common::child::{self, ChildError, FromParent, StartedChild};
use iked_common::event::Poller;
use iked_common::ipc::{
    Channel, ChildConfig, ChildToParent, DescriptorPurpose, Ikev2ToCa, ParentToChild, Role,
};

use crate::auth::AuthService;
use iked_common::logging;

const PARENT: u64 = 0;
const IKEV2: u64 = 1;
/// Messages read from one channel per wakeup, so neither starves the other.
const MESSAGES_PER_WAKEUP: usize = 64;

/// Entry point after exec; returns the exit status.
pub fn run(log_to_stderr: bool) -> i32 {
    child::exit_status(serve(log_to_stderr))
}

fn serve(log_to_stderr: bool) -> Result<(), ChildError> {
    let mut started = child::start(Role::Ca, log_to_stderr)?;
    let mut ikev2 = Channel::new(
        started
            .take(DescriptorPurpose::Sibling(Role::Ikev2))
            .ok_or("no channel to ikev2 was given")?,
    );
    if let Some((purpose, _)) = started.descriptors.first() {
        return Err(ChildError::Setup(format!(
            "unexpected descriptor {purpose:?}"
        )));
    }
    let mut auth = AuthService::default();
    // Reload: the configuration prepared, until commit or abort.
    let mut staged = iked_common::reload::Staged::new();
    let mut poller = Poller::new()?;
    started.register_parent(&poller, PARENT)?;
    ikev2.register(&poller, IKEV2)?;
    loop {
        for token in poller.wait(None)? {
            match token {
                PARENT => {
                    if !on_parent(&mut started, &mut auth, &mut ikev2, &mut staged)? {
                        return Ok(());
                    }
                }
                _ => on_ikev2(&mut ikev2, &mut auth)?,
            }
        }
        // Sends never wait: what the sockets did not take goes out when
        // they are writable again, while we keep reading.
        started.flush_parent(&poller)?;
        ikev2.flush().map_err(ChildError::on("ikev2"))?;
        ikev2.update_interest(&poller)?;
    }
}

/// Handles what the parent sent; false means shut down.
fn on_parent(
    started: &mut StartedChild,
    auth: &mut AuthService,
    ikev2: &mut Channel,
    staged: &mut iked_common::reload::Staged<crate::reload::PreparedCa>,
) -> Result<bool, ChildError> {
    for _ in 0..MESSAGES_PER_WAKEUP {
        let message = match started.next_from_parent()? {
            FromParent::Message(message) => message,
            FromParent::Nothing => break,
            FromParent::Gone => {
                log::info!("parent went away, exiting");
                return Ok(false);
            }
        };
        match message {
            ParentToChild::Config(ChildConfig::Ca {
                generation,
                psks,
                pubkey_policies,
                store,
                eap_policies,
                users,
            }) => {
                let applied = auth.apply(generation, psks, pubkey_policies, &store);
                // Users and EAP policies apply whatever became of the store.
                auth.apply_eap(eap_policies, users);
                // The private key's bytes go now; only the parsed key stays.
                drop(store);
                log::debug!(
                    "{} pre-shared keys, {} EAP users loaded",
                    auth.key_count(),
                    auth.eap().user_count()
                );
                // Told after every configuration, the store refused or not:
                // ikev2 learns the generation and what is in force.
                ikev2
                    .send(&auth.store_announcement(generation))
                    .map_err(ChildError::on("ikev2"))?;
                started.tell_parent(&match applied {
                    Ok(()) => ChildToParent::ConfigApplied { generation },
                    Err(reason) => ChildToParent::StoreRefused { generation, reason },
                })?;
            }
            ParentToChild::CaControl { id, command } => {
                let reply = crate::control::answer(auth, command);
                started.tell_parent(&ChildToParent::ControlResult { id, reply })?;
            }
            ParentToChild::PrepareConfig(config) => {
                let generation = config.generation();
                let answer = match crate::reload::prepare(config) {
                    Ok(prepared) => {
                        staged.prepare(generation, prepared);
                        ChildToParent::ConfigPrepared { generation }
                    }
                    Err(reason) => {
                        log::error!("{reason}");
                        ChildToParent::ConfigRefused { generation, reason }
                    }
                };
                started.tell_parent(&answer)?;
            }
            ParentToChild::CommitConfig { generation } => {
                let prepared = staged.commit(generation).map_err(ChildError::Setup)?;
                crate::reload::commit(auth, prepared);
                // As after every configuration: ikev2 learns what is in force.
                ikev2
                    .send(&auth.store_announcement(generation))
                    .map_err(ChildError::on("ikev2"))?;
                started.tell_parent(&ChildToParent::ConfigApplied { generation })?;
            }
            ParentToChild::AbortConfig { generation } => {
                if staged.abort(generation) {
                    log::info!("configuration {generation} dropped: the reload was aborted");
                }
            }
            ParentToChild::SetVerbosity(v) => logging::set_verbosity(v),
            ParentToChild::Shutdown => {
                started.tell_parent(&ChildToParent::ShutdownComplete)?;
                started.flush_parent_before_exit()?;
                return Ok(false);
            }
            other => return Err(ChildError::unexpected("parent", &other)),
        }
    }
    Ok(true)
}

/// Answers ikev2's requests; replies queue when ikev2 is not reading.
fn on_ikev2(ikev2: &mut Channel, auth: &mut AuthService) -> Result<(), ChildError> {
    for _ in 0..MESSAGES_PER_WAKEUP {
        let Some(request) = ikev2
            .try_recv_message::<Ikev2ToCa>()
            .map_err(ChildError::on("ikev2"))?
        else {
            break;
        };
        if let Some(reply) = auth.handle_message(request) {
            ikev2.send(&reply).map_err(ChildError::on("ikev2"))?;
        }
    }
    Ok(())
}
