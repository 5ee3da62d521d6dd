//! `ikectl monitor`: control clients that asked for the event stream, and
//! the fan-out of each event to them. The parent never waits for a
//! monitor: an event its socket and short queue cannot take is dropped
//! for that client and counted (`show stats`: monitor_events_dropped),
//! and the client is told how many it missed with the next event it gets.

use std::time::{SystemTime, UNIX_EPOCH};

use iked_common::ipc::ControlReply;
use iked_common::stats::{EventKind, SaEvent, SaLevel, MAX_MONITORS};

use crate::control::{ControlServer, Streamed};

struct Monitor {
    client: u64,
    /// Events dropped for it since the last one it got.
    missed: u64,
}

#[derive(Default)]
pub struct Monitors {
    clients: Vec<Monitor>,
    /// Events dropped for slow clients, in all.
    pub dropped: u64,
}

impl Monitors {
    /// Control client `client` asked for events; the answer to its request.
    pub fn subscribe(&mut self, client: u64) -> ControlReply {
        if self.clients.iter().any(|m| m.client == client) {
            return ControlReply::Done("monitoring".into());
        }
        if self.clients.len() >= MAX_MONITORS {
            return ControlReply::Failed(format!("{MAX_MONITORS} monitors are connected already"));
        }
        self.clients.push(Monitor { client, missed: 0 });
        log::debug!("control client {client}: monitoring events");
        ControlReply::Done("monitoring".into())
    }

    /// Monitor clients connected now (one that left is forgotten here,
    /// or at the next event).
    pub fn count(&mut self, control: &ControlServer) -> usize {
        self.clients.retain(|m| control.peer(m.client).is_some());
        self.clients.len()
    }

    /// Sends `event`, stamped with the time, to every monitor; forgets
    /// those that have gone. O(monitors), at most [`MAX_MONITORS`].
    pub fn publish(&mut self, control: &mut ControlServer, mut event: SaEvent) {
        if self.clients.is_empty() {
            return;
        }
        event.unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut dropped = 0;
        self.clients.retain_mut(|monitor| {
            let mut event = event.clone();
            if monitor.missed > 0 {
                // The stream says where it has a hole.
                let note = format!(
                    "{} earlier event(s) dropped: monitor too slow",
                    monitor.missed
                );
                event.reason = Some(match event.reason.take() {
                    Some(reason) => format!("{reason}; {note}"),
                    None => note,
                });
            }
            match control.stream(monitor.client, &ControlReply::Event(Box::new(event))) {
                Streamed::Sent => {
                    monitor.missed = 0;
                    true
                }
                Streamed::Dropped => {
                    monitor.missed += 1;
                    dropped += 1;
                    true
                }
                Streamed::Gone => false,
            }
        });
        self.dropped += dropped;
    }

    /// The parent loaded configuration `generation` from `path`.
    pub fn config_loaded(&mut self, control: &mut ControlServer, message: &str) {
        let mut event = SaEvent::new(EventKind::ConfigReloaded, SaLevel::None, "");
        event.reason = Some(message.to_string());
        self.publish(control, event);
    }
}
