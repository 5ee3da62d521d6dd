//! Code shared by every iked process.

pub mod crypto;
pub mod wire;
