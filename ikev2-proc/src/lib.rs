//! ikev2-proc: the IKEv2 protocol on the UDP sockets the parent bound. It is
//! the process an attacker reaches first, so it runs chrooted, as the
//! unprivileged user, with no capabilities, and holds no long-term secret.
//!
//! - [`engine`]: the sans-I/O IKEv2 state machine (RFC 7296): events in
//!   (datagrams, timers, pfkey and ca replies, operator commands), actions
//!   out, no I/O and no clock of its own. Laid out by layer: `api.rs` takes
//!   the events, dispatchers (`message.rs`, `ipc.rs`, `timers.rs`,
//!   `tasks.rs`, `kernel_events.rs`, `control.rs`) hand them to `exchange/`
//!   (one file per exchange and role), which builds on `sa_table.rs`,
//!   `child_sa.rs`, `state.rs`, `keys.rs` and the rest; the rules are at the
//!   top of `engine/mod.rs`. Tested with two engines talking in memory
//!   (`src/engine/tests/`: harness and cases by topic); `benches/scale.rs`
//!   measures it with 100 000 SAs.
//! - [`process`]: the thin shell around it: epoll over the sockets and IPC
//!   channels, the engine's next deadline as the timeout, the NAT-T marker,
//!   and the local address of each datagram.

#![forbid(unsafe_code)]

pub mod engine;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod process;
#[cfg(any(test, feature = "fuzzing"))]
mod test_fixtures;
