//! ikev2-proc: the IKEv2 protocol on the UDP sockets the parent bound. It is
//! the process an attacker reaches first, so it runs chrooted, as the
//! unprivileged user, with no capabilities, and holds no long-term secret.

pub mod engine;
pub mod process;
