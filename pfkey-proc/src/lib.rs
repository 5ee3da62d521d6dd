//! pfkey-proc: the only process that talks to the kernel's SA and policy
//! databases. It keeps CAP_NET_ADMIN and nothing else, and installs only what
//! falls inside the configured flows.

pub mod backend;
pub mod bypass;
pub mod bytes;
pub mod flows;
pub mod key_socket;
pub mod pfkey;
pub mod pfkey_codec;
pub mod process;
pub mod service;
pub mod socket;
#[cfg(test)]
mod test_fixtures;
pub mod xfrm;
pub mod xfrm_codec;

/// Removes `entries` from the kernel through a fresh socket: used by the
/// parent (root) when pfkey-proc died and cannot flush them itself.
pub use service::remove_entries;
