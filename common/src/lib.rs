//! Code shared by every iked process.
//!
//! - [`ipc`]: every message between processes, and the framed channel.
//! - [`config`]: iked.conf; defines `InitiationMode`, which `ipc`
//!   re-exports (config imports nothing of ipc).
//! - [`wire`]: the IKEv2 codec; the bodies of SK/SKF payloads
//!   (`wire/encrypted.rs`) sit below the payload codec, their framing for
//!   sealing (`wire::sk`) above it.
//! - [`crypto`]: the algorithms, named by the registries in `wire`.
//! - [`kernel`]: what the parent, ikev2 and pfkey say about the kernel,
//!   with the one table from IKE ENCR/INTEG transforms to ESP algorithms
//!   (`Encryption::from_encr`, `Integrity::from_integ`).
//! - [`child`]: a child's start-up, its [`child::ChildError`] and exit
//!   status; [`privileges`], [`logging`], [`event`], [`limits`].
//! - [`routing`]: the routes pfkey installs for tunnel-mode Child SAs.

pub mod child;
pub mod config;
pub mod crypto;
pub mod event;
pub mod ipc;
pub mod kernel;
pub mod limits;
pub mod logging;
pub mod privileges;
pub mod reload;
pub mod routing;
pub mod stats;
#[cfg(any(test, feature = "test-pki"))]
pub mod test_pki;
pub mod wire;
pub mod workers;
