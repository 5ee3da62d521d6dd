//! Payloads: lookup in a decoded message, and builders for the ones
//! several exchanges send (TSi/TSr, USE_TRANSPORT_MODE).

use iked_common::kernel::Selector;
use iked_common::wire::{
    KeyExchange as KePayload, Nonce, Notify, NotifyType, Payload, SecurityAssociation,
    TrafficSelectors,
};

use crate::engine::selectors;

pub(super) fn find_payload<T>(
    payloads: &[Payload],
    pick: impl Fn(&Payload) -> Option<&T>,
) -> Option<&T> {
    payloads.iter().find_map(pick)
}

pub(super) fn notify_in(payloads: &[Payload], notify_type: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == notify_type => Some(n),
        _ => None,
    })
}

/// The first error notification (types below 16384, RFC 7296 §3.10.1).
pub(super) fn error_notify(payloads: &[Payload]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type.value() < 16384 => Some(n.notify_type),
        _ => None,
    })
}

pub(super) fn sa_payload(payloads: &[Payload]) -> Option<&SecurityAssociation> {
    find_payload(payloads, |p| match p {
        Payload::SecurityAssociation(sa) => Some(sa),
        _ => None,
    })
}

pub(super) fn nonce_payload(payloads: &[Payload]) -> Option<&Vec<u8>> {
    find_payload(payloads, |p| match p {
        Payload::Nonce(Nonce(n)) => Some(n),
        _ => None,
    })
}

pub(super) fn ke_payload(payloads: &[Payload]) -> Option<&KePayload> {
    find_payload(payloads, |p| match p {
        Payload::KeyExchange(ke) => Some(ke),
        _ => None,
    })
}

pub(super) fn ts_payloads(payloads: &[Payload]) -> Option<(&TrafficSelectors, &TrafficSelectors)> {
    let tsi = find_payload(payloads, |p| match p {
        Payload::TsInitiator(ts) => Some(ts),
        _ => None,
    })?;
    let tsr = find_payload(payloads, |p| match p {
        Payload::TsResponder(ts) => Some(ts),
        _ => None,
    })?;
    Some((tsi, tsr))
}

/// TSi and TSr for a Child SA of `flow` (RFC 7296 §2.9): TSi is the
/// initiator's side, so ours when `we_initiate`.
pub(super) fn traffic_selectors(flow: &Selector, we_initiate: bool) -> [Payload; 2] {
    let (ours, theirs) = (selectors::local_ts(flow), selectors::remote_ts(flow));
    let (tsi, tsr) = if we_initiate {
        (ours, theirs)
    } else {
        (theirs, ours)
    };
    [
        Payload::TsInitiator(TrafficSelectors {
            selectors: vec![tsi],
        }),
        Payload::TsResponder(TrafficSelectors {
            selectors: vec![tsr],
        }),
    ]
}

/// USE_TRANSPORT_MODE when the Child SA is to be in transport mode
/// (RFC 7296 §1.3.1).
pub(super) fn use_transport_mode(transport: bool) -> Option<Payload> {
    transport.then(|| Payload::Notify(Notify::new(NotifyType::UseTransportMode, Vec::new())))
}
