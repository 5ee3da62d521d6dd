//! `ikectl show stats`: ikev2 answers with the engine's counters and its
//! channel queues; the parent adds what only it knows (uptime, its own
//! channel queues, monitors, configuration loads) before the answer goes
//! to ikectl.

use std::time::Instant;

use iked_common::ipc::ControlReply;
use iked_common::stats::QueueDepth;

pub struct ParentStats {
    started: Instant,
    /// Configurations loaded: the first and every reload that took.
    pub config_loads: u64,
    /// pfkey's counters as it last sent them.
    pub pfkey: iked_common::stats::PfkeyStats,
}

impl Default for ParentStats {
    fn default() -> Self {
        ParentStats {
            started: Instant::now(),
            config_loads: 1,
            pfkey: Default::default(),
        }
    }
}

impl ParentStats {
    /// `reply` with the parent's part filled in, if it is a stats report.
    /// `queues` are the parent's channels: (child, bytes queued to it).
    pub fn complete(
        &self,
        reply: ControlReply,
        queues: impl Iterator<Item = (String, usize)>,
        (monitor_clients, monitor_events_dropped): (usize, u64),
    ) -> ControlReply {
        let ControlReply::Stats(mut report) = reply else {
            return reply;
        };
        report.uptime_secs = self.started.elapsed().as_secs();
        report.config_loads = self.config_loads;
        report.pfkey = self.pfkey;
        report.monitor_clients = monitor_clients as u64;
        report.monitor_events_dropped = monitor_events_dropped;
        let parent: Vec<QueueDepth> = queues
            .map(|(to, bytes)| QueueDepth {
                from: "parent".into(),
                to,
                bytes: bytes as u64,
            })
            .collect();
        report.ipc_queues.splice(0..0, parent);
        ControlReply::Stats(report)
    }
}
