//! pfkey-proc: the only process that talks to the kernel's SA and policy
//! databases. It keeps CAP_NET_ADMIN and nothing else, and installs only what
//! falls inside the configured flows.
//!
//! From the top: [`process`] (the event loop) drives [`service`] (flow
//! checks through [`flows`], the entries we own, `open_backend`), which
//! speaks to the kernel through [`backend::KernelBackend`]. [`xfrm`] and
//! [`pfkey`] implement it with their codecs ([`xfrm_codec`],
//! [`pfkey_codec`]) over [`key_socket`], the socket code both share
//! (options, whole-datagram receive, the bounded event reader). Neither
//! backend imports the other, and `backend` imports neither. [`socket`]
//! opens the sockets for the parent. A request that fails is a
//! [`iked_common::kernel::KernelFailure`]; an interface that cannot be
//! used at all is a [`backend::BackendError`]. [`routes`] routes the
//! remote networks of tunnel-mode SAs and answers source lookups, over
//! [`route_socket`] with its codec [`rtnetlink_codec`].

pub mod addresses;
pub mod backend;
pub mod bypass;
pub mod bytes;
pub mod flows;
pub mod key_socket;
pub mod leases;
pub mod marking;
pub mod pfkey;
pub mod pfkey_codec;
pub mod probe;
pub mod process;
pub mod reload;
pub mod reqids;
pub mod route_socket;
pub mod routes;
pub mod rtnetlink_codec;
pub mod sa_limits;
pub mod service;
pub mod socket;
pub mod stats;
#[cfg(test)]
mod test_fixtures;
pub mod xfrm;
pub mod xfrm_codec;

/// Removes `entries` from the kernel through a fresh socket: used by the
/// parent (root) when pfkey-proc died and cannot flush them itself.
pub use service::remove_entries;

/// Sweeps every entry marked as ours ([`marking`]): used by the parent after
/// pfkey-proc is lost, for what it installed but had not yet reported.
pub use marking::sweep_marked_entries;
