//! What the fuzz runs reached: executions, and how often each engine
//! state and each wire observation was seen.

use crate::engine::FUZZ_STATES;

/// Observations made on the wire and on the IPC channels, next to the
/// engine's own states.
pub const WIRE_STATES: [&str; 8] = [
    "wire: responder demanded a COOKIE",
    "wire: IKE_SA_INIT with a COOKIE answered while cookies required",
    "wire: IKE_AUTH response with AUTH sent",
    "ipc: reply refused (not asked, or answered twice)",
    "wire: encrypted message mutated inside and sealed again",
    "flood: half-open SAs past the default threshold (runs)",
    "wire: fragment renumbered or mutated and sealed again",
    "ipc: client put the address of a CFG_REPLY on its interface",
];

/// What the runs did, summed over runs.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub runs: u64,
    pub executions: u64,
    /// For each state of [`FUZZ_STATES`] then [`WIRE_STATES`]: after how
    /// many executions either engine was in it (or, for the wire states,
    /// how many times it was seen).
    pub states: Vec<u64>,
}

impl Stats {
    pub fn merge(&mut self, other: &Stats) {
        self.runs += other.runs;
        self.executions += other.executions;
        self.grow();
        for (i, n) in other.states.iter().enumerate() {
            self.states[i] += n;
        }
    }

    pub(super) fn grow(&mut self) {
        self.states.resize(FUZZ_STATES.len() + WIRE_STATES.len(), 0);
    }

    pub(super) fn wire(&mut self, index: usize) {
        self.grow();
        self.states[FUZZ_STATES.len() + index] += 1;
    }

    /// (name, count) of every state.
    pub fn report(&self) -> Vec<(&'static str, u64)> {
        FUZZ_STATES
            .iter()
            .chain(WIRE_STATES.iter())
            .enumerate()
            .map(|(i, name)| (*name, self.states.get(i).copied().unwrap_or(0)))
            .collect()
    }
}
