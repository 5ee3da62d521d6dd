//! Code shared by every iked process.

pub mod child;
pub mod config;
pub mod crypto;
pub mod event;
pub mod ipc;
pub mod kernel;
pub mod limits;
pub mod logging;
pub mod privileges;
pub mod wire;
