//! ca-proc: the only holder of long-term secrets (PSKs, private keys, CA
//! certificates, CRLs, the EAP users' NT password hashes). It answers
//! narrow questions from ikev2 (make or check an AUTH payload, take the
//! next step of an EAP conversation) and never gives a secret out.
//!
//! [`auth`] answers, with [`eap`] for EAP-MSCHAPv2 and its MSKs; [`process`] is the event loop around it, built on
//! `iked_common::child` (start-up, `ChildError`, the exit status). No
//! `unsafe` here.

#![forbid(unsafe_code)]

pub mod auth;
pub mod control;
pub mod eap;
pub mod process;
pub mod reload;
pub mod signature;
pub mod signed_octets;
pub mod store;
