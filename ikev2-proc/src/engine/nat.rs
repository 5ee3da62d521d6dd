//! NAT detection hashes (RFC 7296 §2.23).

use std::net::{IpAddr, SocketAddr};

use crate::engine::{Action, Engine};

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
