//! Payloads: a decoded message's payloads read once (`Inbound`), and
//! builders for the ones several exchanges send (TSi/TSr,
//! USE_TRANSPORT_MODE).

use iked_common::kernel::Selector;
use iked_common::wire::{
    Authentication, Identity, KeyExchange as KePayload, Nonce, Notify, NotifyType, Payload,
    SecurityAssociation, TrafficSelectors,
};

use crate::engine::selectors;

fn notify_in(payloads: &[Payload], notify_type: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == notify_type => Some(n),
        _ => None,
    })
}

/// A message's payloads, looked through once: the first of each kind the
/// exchanges read, and the first error notify (RFC 7296 §3.10.1).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Inbound<'a> {
    pub payloads: &'a [Payload],
    pub sa: Option<&'a SecurityAssociation>,
    pub ke: Option<&'a KePayload>,
    pub nonce: Option<&'a Vec<u8>>,
    pub tsi: Option<&'a TrafficSelectors>,
    pub tsr: Option<&'a TrafficSelectors>,
    pub idi: Option<&'a Identity>,
    pub idr: Option<&'a Identity>,
    pub auth: Option<&'a Authentication>,
    /// The first notify of an error type (below 16384).
    pub error: Option<NotifyType>,
}

impl<'a> Inbound<'a> {
    pub(super) fn of(payloads: &'a [Payload]) -> Inbound<'a> {
        let mut msg = Inbound {
            payloads,
            ..Inbound::default()
        };
        for payload in payloads {
            match payload {
                Payload::SecurityAssociation(sa) => _ = msg.sa.get_or_insert(sa),
                Payload::KeyExchange(ke) => _ = msg.ke.get_or_insert(ke),
                Payload::Nonce(Nonce(n)) => _ = msg.nonce.get_or_insert(n),
                Payload::TsInitiator(ts) => _ = msg.tsi.get_or_insert(ts),
                Payload::TsResponder(ts) => _ = msg.tsr.get_or_insert(ts),
                Payload::IdInitiator(id) => _ = msg.idi.get_or_insert(id),
                Payload::IdResponder(id) => _ = msg.idr.get_or_insert(id),
                Payload::Authentication(a) => _ = msg.auth.get_or_insert(a),
                Payload::Notify(n) if n.notify_type.value() < 16384 => {
                    _ = msg.error.get_or_insert(n.notify_type)
                }
                _ => {}
            }
        }
        msg
    }

    /// The first notify of `notify_type`.
    pub(super) fn notify(&self, notify_type: NotifyType) -> Option<&'a Notify> {
        notify_in(self.payloads, notify_type)
    }

    /// TSi and TSr, when both are there.
    pub(super) fn ts(&self) -> Option<(&'a TrafficSelectors, &'a TrafficSelectors)> {
        Some((self.tsi?, self.tsr?))
    }
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
