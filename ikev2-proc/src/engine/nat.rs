//! NAT detection hashes (RFC 7296 §2.23).

use std::net::{IpAddr, SocketAddr};

use iked_common::wire::{Message, NotifyType};

use crate::engine::state::IkeSa;
use crate::engine::{Action, Engine, Settings};

/// SHA-1(SPIi | SPIr | IP | port) of NAT_DETECTION_*_IP (RFC 7296 §2.23).
pub(super) fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut data = Vec::with_capacity(36);
    data.extend_from_slice(&spi_i.to_be_bytes());
    data.extend_from_slice(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => data.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => data.extend_from_slice(&a.octets()),
    }
    data.extend_from_slice(&addr.port().to_be_bytes());
    openssl::sha::sha1(&data).to_vec()
}

/// What the NAT_DETECTION_*_IP notifies of an IKE_SA_INIT message say
/// (RFC 7296 §2.23), against the addresses we see.
pub(super) struct NatSeen {
    /// The message has a NAT_DETECTION_SOURCE_IP: its sender does NAT-T.
    pub supported: bool,
    pub destination_present: bool,
    /// A NAT_DETECTION_SOURCE_IP hashes the sender's address as we see it.
    pub source_matches: bool,
    /// A NAT_DETECTION_DESTINATION_IP hashes our address as we see it.
    pub destination_matches: bool,
}

impl NatSeen {
    pub(super) fn of(
        message: &Message,
        spi_i: u64,
        spi_r: u64,
        source: SocketAddr,
        destination: SocketAddr,
    ) -> NatSeen {
        let source_seen = nat_hash(spi_i, spi_r, source);
        let destination_seen = nat_hash(spi_i, spi_r, destination);
        NatSeen {
            supported: message.notify(NotifyType::NatDetectionSourceIp).is_some(),
            destination_present: message
                .notify(NotifyType::NatDetectionDestinationIp)
                .is_some(),
            source_matches: message.notifies().any(|n| {
                n.notify_type == NotifyType::NatDetectionSourceIp && n.data == source_seen
            }),
            destination_matches: message.notifies().any(|n| {
                n.notify_type == NotifyType::NatDetectionDestinationIp && n.data == destination_seen
            }),
        }
    }
}

/// Moves an IKE SA to the NAT-T port for everything after IKE_SA_INIT
/// (RFC 7296 §2.23): ESP goes in UDP too.
pub(super) fn float_to_natt(spi: u64, sa: &mut IkeSa, settings: &Settings) {
    sa.natt = true;
    sa.local.set_port(settings.natt_port);
    if sa.peer.port() == settings.ike_port {
        sa.peer.set_port(settings.natt_port);
    }
    log::info!(
        "IKE SA {spi:016x}: {} NAT-T, moving to port {}",
        if sa.nat_detected {
            "NAT detected, using"
        } else {
            "forced"
        },
        settings.natt_port
    );
}

/// RFC 4555 §3.3: an initiator that offers MOBIKE to a peer doing NAT-T
/// moves IKE to the NAT-T port from IKE_AUTH on even without a NAT, so
/// that a NAT met on another path later needs no port change; ESP stays
/// plain until a NAT is detected.
pub(super) fn float_for_mobike(spi: u64, sa: &mut IkeSa, settings: &Settings) {
    sa.local.set_port(settings.natt_port);
    if sa.peer.port() == settings.ike_port {
        sa.peer.set_port(settings.natt_port);
    }
    log::debug!(
        "IKE SA {spi:016x}: MOBIKE offered, IKE moves to port {} (RFC 4555 §3.3)",
        settings.natt_port
    );
}

impl Engine {
    /// Keeps our NAT mapping alive when we are behind a NAT (RFC 3948 §2.3).
    pub(super) fn keepalive_if_due(&mut self, spi: u64) {
        let now = self.now;
        let keepalive = self.settings.nat_keepalive;
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if sa.behind_nat && sa.natt && sa.last_sent + keepalive <= now {
            sa.last_sent = now;
            self.actions.push_back(Action::NatKeepalive {
                local: sa.local,
                remote: sa.peer,
            });
        }
    }
}
