//! The exchanges, one file per exchange concern and role (RFC 7296 §1).

pub(super) mod child_create;
pub(super) mod child_create_responder;
pub(super) mod config_payload;
pub(super) mod eap;
pub(super) mod eap_initiator;
pub(super) mod eap_responder;
pub(super) mod ike_auth;
pub(super) mod ike_auth_responder;
pub(super) mod ike_establish;
pub(super) mod ike_rekey;
pub(super) mod ike_sa_init;
pub(super) mod ike_sa_init_responder;
pub(super) mod informational;
pub(super) mod mobike;
