//! Payload lookup in a decoded message.

use iked_common::wire::{
    KeyExchange as KePayload, Nonce, Notify, NotifyType, Payload, SecurityAssociation,
    TrafficSelectors,
};

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
