//! What an unauthenticated peer may cost us: cookies (RFC 7296 §2.6),
//! half-open SA counts per source, rate-limited logs.

use std::net::{IpAddr, SocketAddr};

use iked_common::logging::held_back_text;
use iked_common::wire::{Message, NotifyType, Payload};

use crate::engine::Engine;

use crate::engine::state::*;

/// Log lines about unauthenticated requests: at most this many a second.
pub(super) const UNAUTHENTICATED_LOG_BURST: u32 = 5;

/// What the half-open counts need to know of an SA leaving them.
pub(super) struct HalfOpenRecord {
    pub counted: bool,
    pub source: Option<IpAddr>,
    pub with_cookie: bool,
}

impl HalfOpenRecord {
    /// Takes the SA out of the half-open state (its flag cleared).
    pub(super) fn take(sa: &mut IkeSa) -> HalfOpenRecord {
        let (counted, with_cookie) = sa.handshake.as_deref_mut().map_or((false, false), |h| {
            (std::mem::take(&mut h.half_open), h.half_open_cookie)
        });
        HalfOpenRecord {
            counted,
            source: sa.half_open_key.map(|(_, addr)| addr.ip()),
            with_cookie,
        }
    }
}

/// The key of a source address in the per-source half-open counts: the
/// address itself, or for IPv6 its /64, the smallest block a site or
/// subscriber is usually given (one host can use a whole /64 at will).
pub(super) fn source_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(a) => {
            let prefix = u128::from(a) & !(u128::from(u64::MAX));
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
    }
}

impl Engine {
    /// The cookie for an initiator under secret `version`, if that secret
    /// is live. RFC 7296 §2.6:
    /// Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>).
    pub(super) fn cookie_for(
        &self,
        version: u8,
        ni: &[u8],
        peer: SocketAddr,
        spi_i: u64,
    ) -> Option<Vec<u8>> {
        let secret = self.cookie_secret_of(version)?;
        let mut hash = openssl::sha::Sha256::new();
        hash.update(ni);
        match peer.ip() {
            IpAddr::V4(a) => hash.update(&a.octets()),
            IpAddr::V6(a) => hash.update(&a.octets()),
        }
        hash.update(&spi_i.to_be_bytes());
        hash.update(secret.as_ref());
        let mut cookie = Vec::with_capacity(33);
        cookie.push(version);
        cookie.extend_from_slice(&hash.finish());
        Some(cookie)
    }

    /// Whether the request opens with a COOKIE notify (§2.6: it must be
    /// the first payload) that we made for this initiator, under the
    /// current or the previous secret. Any length is handled: the
    /// comparison checks lengths first and runs in constant time.
    pub(super) fn cookie_valid(
        &self,
        message: &Message,
        ni: &[u8],
        peer: SocketAddr,
        spi_i: u64,
    ) -> bool {
        let Some(Payload::Notify(notify)) = message.payloads.first() else {
            return false;
        };
        if notify.notify_type != NotifyType::Cookie {
            return false;
        }
        let Some(&version) = notify.data.first() else {
            return false;
        };
        self.cookie_for(version, ni, peer, spi_i)
            .is_some_and(|expected| iked_common::crypto::secret::ct_eq(&expected, &notify.data))
    }

    /// An info line about an unauthenticated request, rate-limited; the
    /// next line that goes out counts those held back.
    pub(super) fn log_unauthenticated(&mut self, line: std::fmt::Arguments<'_>) {
        if let Some(held_back) = self.unauthenticated_log.allow(self.now) {
            log::info!("{line}{}", held_back_text(held_back));
        }
    }

    /// Counts a new half-open responder SA from `source`.
    pub(super) fn count_half_open(&mut self, source: IpAddr, with_cookie: bool) {
        self.half_open += 1;
        let count = self
            .half_open_by_source
            .entry(source_key(source))
            .or_default();
        count.total += 1;
        if with_cookie {
            count.with_cookie += 1;
        }
    }

    /// Takes an SA out of the half-open counts (it was authenticated or is
    /// gone); does nothing if it was not counted.
    pub(super) fn uncount_half_open(&mut self, record: HalfOpenRecord) {
        let HalfOpenRecord {
            counted,
            source,
            with_cookie,
        } = record;
        if !counted {
            return;
        }
        self.half_open = self.half_open.saturating_sub(1);
        let Some(source) = source else {
            return;
        };
        let key = source_key(source);
        if let Some(count) = self.half_open_by_source.get_mut(&key) {
            count.total = count.total.saturating_sub(1);
            if with_cookie {
                count.with_cookie = count.with_cookie.saturating_sub(1);
            }
            if count.total == 0 {
                self.half_open_by_source.remove(&key);
            }
        }
    }

    /// The half-open SAs of a source address.
    pub(super) fn half_open_of(&self, source: IpAddr) -> SourceCount {
        self.half_open_by_source
            .get(&source_key(source))
            .copied()
            .unwrap_or_default()
    }

    /// The cookie secrets as of now: replaced when their time is up. After
    /// two lifetimes without use both are stale and both are replaced, so
    /// a cookie is never accepted much past two lifetimes.
    pub(super) fn rotate_cookie_secrets(&mut self) {
        let now = self.now;
        let lifetime = self.settings.cookie_secret_lifetime;
        if now < self.cookie_secrets.rotate_at {
            return;
        }
        let mut fresh = CookieSecret::new([0u8; 32]);
        if let Err(e) = self.rng.fill(fresh.as_mut()) {
            // Keep the (random) secrets we have; try again next time.
            log::error!("cannot replace the cookie secret: {e}");
            return;
        }
        let secrets = &mut self.cookie_secrets;
        // Rotations keep to their schedule however late they are applied:
        // a secret is current for one lifetime, then previous for one.
        let stale = now.saturating_duration_since(secrets.rotate_at) >= lifetime;
        let old = std::mem::replace(&mut secrets.current, fresh);
        secrets.previous = (!stale).then_some(old);
        // Versions 0..=255 wrap; only two are live at once.
        secrets.version = secrets.version.wrapping_add(1);
        secrets.rotate_at = if stale {
            now + lifetime
        } else {
            secrets.rotate_at + lifetime
        };
        log::debug!("cookie secret replaced (version {})", secrets.version);
    }

    /// The secret of a cookie version, if it is the current or previous one.
    pub(super) fn cookie_secret_of(&self, version: u8) -> Option<&CookieSecret> {
        let secrets = &self.cookie_secrets;
        if version == secrets.version {
            Some(&secrets.current)
        } else if version == secrets.version.wrapping_sub(1) {
            secrets.previous.as_ref()
        } else {
            None
        }
    }
}
