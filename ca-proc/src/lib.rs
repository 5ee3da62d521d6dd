//! ca-proc: the only holder of long-term secrets (PSKs, private keys, CA
//! certificates, CRLs). It answers narrow questions from ikev2 (make or check
//! an AUTH payload) and never gives a secret out.

#![forbid(unsafe_code)]

pub mod auth;
pub mod process;
