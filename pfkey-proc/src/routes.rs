//! Routes for tunnel-mode Child SAs, as strongSwan installs them: for each
//! outbound SA pfkey installs, a route to the remote selector's network
//! through the interface towards the peer (and its gateway, if the peer is
//! not on the link), with the gateway's inner address (one of ours inside
//! the local selector) as source, so that traffic the gateway itself sends
//! there matches the policy. Routes live in a table of our own, consulted
//! through one rule before the main table, which is never touched; the
//! route of a remote network goes with the last SA that needs it, and
//! stopping flushes the table and the rule.
//!
//! No route is added where one already covers the remote network through
//! the same interface and gives the same source (ours would change
//! nothing); a route to the peer that cannot be found, or a failed install,
//! is logged and the SA stays (traffic then goes where the host's own
//! routes send it, into the policy if they lead there).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use iked_common::kernel::{max_prefix, FailureKind, KernelFailure, SaId, Selector};
use iked_common::routing::{RouteSettings, ROUTING_RULE_PRIORITY};

use crate::backend::local_failure;
use crate::route_socket::RouteSocket;
use crate::rtnetlink_codec::RouteSpec;

/// A remote network, its address masked to the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RemoteNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl RemoteNet {
    pub fn of(addr: IpAddr, prefix: u8) -> RemoteNet {
        let prefix = prefix.min(max_prefix(addr));
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        RemoteNet { addr, prefix }
    }

    fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4() && RemoteNet::of(addr, self.prefix) == *self
    }
}

impl std::fmt::Display for RemoteNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What an outbound tunnel-mode SA needs routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteNeed {
    pub sa: SaId,
    /// The peer's gateway address (the SA's destination).
    pub peer: IpAddr,
    /// The local and remote networks (the SA's selector, outbound).
    pub local: RemoteNet,
    pub remote: RemoteNet,
}

impl RouteNeed {
    /// The need of outbound SA `sa` carrying `selector` to `peer`.
    pub fn of(sa: SaId, selector: &Selector) -> RouteNeed {
        RouteNeed {
            sa,
            peer: sa.dst,
            local: RemoteNet::of(selector.src, selector.src_prefix),
            remote: RemoteNet::of(selector.dst, selector.dst_prefix),
        }
    }
}

/// One remote network: the SAs that need it, and our route, if we added one.
struct Routed {
    need: RouteNeed,
    sas: HashSet<SaId>,
    route: Option<RouteSpec>,
}

pub struct RouteManager {
    socket: RouteSocket,
    /// Off until the first configuration says otherwise.
    settings: RouteSettings,
    /// The first configuration has come (and the table was cleared).
    configured: bool,
    routed: HashMap<RemoteNet, Routed>,
    by_sa: HashMap<SaId, RemoteNet>,
    /// Our rule is in place, for IPv4 and for IPv6.
    rules: [bool; 2],
}

fn family_index(addr: IpAddr) -> usize {
    usize::from(addr.is_ipv6())
}

impl RouteManager {
    /// The route socket, for what else pfkey does on it (virtual
    /// addresses, crate::addresses).
    pub fn socket_mut(&mut self) -> &mut RouteSocket {
        &mut self.socket
    }

    /// Takes the socket. Routes stay off until [`Self::apply_settings`].
    pub fn new(socket: RouteSocket) -> RouteManager {
        RouteManager {
            socket,
            settings: RouteSettings {
                enabled: false,
                ..RouteSettings::default()
            },
            configured: false,
            routed: HashMap::new(),
            by_sa: HashMap::new(),
            rules: [false; 2],
        }
    }

    pub fn settings(&self) -> RouteSettings {
        self.settings
    }

    /// The routes we hold now.
    pub fn installed(&self) -> Vec<RouteSpec> {
        self.routed.values().filter_map(|r| r.route).collect()
    }

    /// The kernel's preferred source address towards `peer`.
    pub fn lookup_source(&mut self, peer: IpAddr) -> Result<IpAddr, KernelFailure> {
        if peer.is_unspecified() || peer.is_multicast() {
            return Err(local_failure(
                FailureKind::Invalid,
                format!("refused: source lookup towards {peer}, not a unicast address"),
            ));
        }
        let route = self.socket.get_route(peer, false)?;
        route.prefsrc.ok_or_else(|| {
            local_failure(
                FailureKind::NotFound,
                format!("route lookup for {peer}: the kernel gave no source address"),
            )
        })
    }

    /// A new configuration: with other settings, our routes move (or go).
    /// The first one clears our table of what a previous instance left (it
    /// died without its flush).
    pub fn apply_settings(&mut self, settings: RouteSettings) {
        if !self.configured {
            self.configured = true;
            if settings.enabled {
                match self
                    .socket
                    .flush_table(settings.table, ROUTING_RULE_PRIORITY)
                {
                    Ok(0) => {}
                    Ok(n) => log::warn!(
                        "routes: removed {n} stale routes from table {} (left by an earlier run)",
                        settings.table
                    ),
                    Err(f) => log::warn!("routes: clearing table {}: {f}", settings.table),
                }
            }
        }
        if settings == self.settings {
            return;
        }
        let old = self.settings;
        if old.enabled {
            self.remove_all();
        }
        self.settings = settings;
        if settings.enabled {
            let nets: Vec<RemoteNet> = self.routed.keys().copied().collect();
            for net in nets {
                self.install(net);
            }
        }
        log::info!(
            "routes: {}",
            if settings.enabled {
                format!("on, in table {}", settings.table)
            } else {
                "off".to_string()
            }
        );
    }

    /// Outbound tunnel-mode SA `need.sa` is in the kernel: route its remote
    /// network if nothing of ours does yet.
    pub fn sa_installed(&mut self, need: RouteNeed) {
        if self.by_sa.contains_key(&need.sa) {
            return;
        }
        self.by_sa.insert(need.sa, need.remote);
        let entry = self.routed.entry(need.remote).or_insert_with(|| Routed {
            need,
            sas: HashSet::new(),
            route: None,
        });
        entry.sas.insert(need.sa);
        // A network not routed yet (new, or its route failed or was not
        // needed when its first SA came) is looked at again: the host's
        // routes may have changed since.
        if entry.route.is_none() && self.settings.enabled {
            entry.need = need;
            self.install(need.remote);
        }
    }

    /// Outbound SA `old` now is `new` (the same SA at new gateway
    /// addresses): its network is routed towards the new peer, and the
    /// old route goes if no other SA needs it.
    pub fn sa_moved(&mut self, old: &SaId, new: SaId) {
        let Some(need) = self
            .by_sa
            .get(old)
            .and_then(|net| self.routed.get(net))
            .map(|r| r.need)
        else {
            return;
        };
        self.sa_removed(old);
        self.sa_installed(RouteNeed {
            sa: new,
            peer: new.dst,
            ..need
        });
    }

    /// SA `sa` is gone: its network's route goes with the last SA needing it.
    pub fn sa_removed(&mut self, sa: &SaId) {
        let Some(net) = self.by_sa.remove(sa) else {
            return;
        };
        let Some(routed) = self.routed.get_mut(&net) else {
            return;
        };
        routed.sas.remove(sa);
        if !routed.sas.is_empty() {
            return;
        }
        if let Some(route) = self.routed.remove(&net).and_then(|r| r.route) {
            self.delete(&route);
        }
    }

    /// Removes every route and rule of ours (stop, or routes turned off);
    /// the SAs stay tracked, so routes come back if turned on again. With
    /// routes off the table is not ours: it is left alone.
    pub fn remove_all(&mut self) {
        for routed in self.routed.values_mut() {
            routed.route = None;
        }
        self.rules = [false; 2];
        if !self.settings.enabled {
            return;
        }
        match self
            .socket
            .flush_table(self.settings.table, ROUTING_RULE_PRIORITY)
        {
            Ok(n) => {
                if n > 0 {
                    log::info!(
                        "routes: removed {n} routes and our rule (table {})",
                        self.settings.table
                    )
                }
            }
            Err(f) => log::error!("routes: flushing table {}: {f}", self.settings.table),
        }
    }

    /// Decides and adds the route of `net`, logging what it did.
    fn install(&mut self, net: RemoteNet) {
        let Some(routed) = self.routed.get(&net) else {
            return;
        };
        let need = routed.need;
        match self.plan(&need) {
            Ok(Some(route)) => {
                if let Err(f) = self.ensure_rule(need.remote.addr) {
                    log::error!("routes: {f}: {net} not routed");
                    return;
                }
                match self.socket.add_route(&route) {
                    Ok(()) => {
                        log::info!(
                            "routes: {net} via {} dev #{}{} in table {}",
                            route
                                .gateway
                                .map_or_else(|| "link".to_string(), |g| g.to_string()),
                            route.oif,
                            route
                                .source
                                .map(|s| format!(" src {s}"))
                                .unwrap_or_default(),
                            route.table
                        );
                        if let Some(routed) = self.routed.get_mut(&net) {
                            routed.route = Some(route);
                        }
                    }
                    Err(f) => log::error!("routes: {f}"),
                }
            }
            Ok(None) => {}
            Err(f) => log::warn!("routes: {net} not routed: {f}"),
        }
    }

    /// The route `need` gets, or None when the host's routes already do.
    fn plan(&mut self, need: &RouteNeed) -> Result<Option<RouteSpec>, KernelFailure> {
        let towards_peer = self.socket.get_route(need.peer, false)?;
        let oif = towards_peer.oif.ok_or_else(|| {
            local_failure(
                FailureKind::NotFound,
                format!("the route to peer {} names no interface", need.peer),
            )
        })?;
        let source = self.inner_source(need)?;
        // A route of the host's that covers the whole remote network, on
        // the same interface, with the same source: nothing to add.
        if let Ok(existing) = self.socket.get_route(need.remote.addr, true) {
            let covers = existing.table != self.settings.table
                && existing.prefix <= need.remote.prefix
                && existing.oif == Some(oif)
                && (source.is_none() || existing.prefsrc == source);
            if covers {
                log::info!(
                    "routes: {} already routed through interface #{oif} (table {}): none added",
                    need.remote,
                    existing.table
                );
                return Ok(None);
            }
        }
        Ok(Some(RouteSpec {
            dst: need.remote.addr,
            prefix: need.remote.prefix,
            table: self.settings.table,
            oif,
            gateway: towards_peer.gateway,
            source,
        }))
    }

    /// An address of ours inside the local network, if the host has one.
    fn inner_source(&mut self, need: &RouteNeed) -> Result<Option<IpAddr>, KernelFailure> {
        let addresses = self.socket.addresses(need.local.addr.is_ipv6())?;
        Ok(addresses
            .iter()
            .map(|a| a.address)
            .find(|a| need.local.contains(*a)))
    }

    fn ensure_rule(&mut self, family_of: IpAddr) -> Result<(), KernelFailure> {
        let index = family_index(family_of);
        if self.rules[index] {
            return Ok(());
        }
        match self.socket.add_rule(
            family_of.is_ipv6(),
            self.settings.table,
            ROUTING_RULE_PRIORITY,
        ) {
            Ok(()) => {}
            // Ours from before (the flush failed) or one made by hand: it
            // says the same, and our flush removes it.
            Err(f) if f.kind == FailureKind::AlreadyExists => {}
            Err(f) => return Err(f),
        }
        self.rules[index] = true;
        Ok(())
    }

    fn delete(&mut self, route: &RouteSpec) {
        match self.socket.delete_route(route) {
            Ok(()) => log::info!(
                "routes: {}/{} removed from table {}",
                route.dst,
                route.prefix,
                route.table
            ),
            Err(f) if f.kind == FailureKind::NotFound => {}
            Err(f) => log::error!("routes: {f}"),
        }
        // The last route of a family takes our rule with it.
        let family_left = self
            .routed
            .values()
            .filter_map(|r| r.route)
            .any(|r| r.dst.is_ipv6() == route.dst.is_ipv6());
        let index = family_index(route.dst);
        if !family_left && self.rules[index] {
            match self.socket.delete_rule(
                route.dst.is_ipv6(),
                self.settings.table,
                ROUTING_RULE_PRIORITY,
            ) {
                Ok(()) => {}
                Err(f) if f.kind == FailureKind::NotFound => {}
                Err(f) => log::error!("routes: {f}"),
            }
            self.rules[index] = false;
        }
    }
}

/// For the parent (root), at stop: removes our table's routes and our rule
/// through a socket of its own, whatever pfkey managed to do.
pub fn flush_routes(table: u32) -> Result<usize, String> {
    let fd = crate::route_socket::open_route_socket()?;
    let mut socket = RouteSocket::new(fd)?;
    socket
        .flush_table(table, ROUTING_RULE_PRIORITY)
        .map_err(|f| f.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn remote_networks_are_masked_to_their_prefix() {
        assert_eq!(
            RemoteNet::of(ip("10.2.1.77"), 24),
            RemoteNet {
                addr: ip("10.2.1.0"),
                prefix: 24
            }
        );
        assert_eq!(RemoteNet::of(ip("10.2.1.77"), 0).addr, ip("0.0.0.0"));
        assert_eq!(RemoteNet::of(ip("10.2.1.77"), 40).prefix, 32);
        assert_eq!(
            RemoteNet::of(ip("2001:db8:1:2::9"), 64).addr,
            ip("2001:db8:1:2::")
        );
        let net = RemoteNet::of(ip("10.1.1.0"), 24);
        assert!(net.contains(ip("10.1.1.1")));
        assert!(!net.contains(ip("10.1.2.1")));
        assert!(!net.contains(ip("::1")));
        assert_eq!(net.to_string(), "10.1.1.0/24");
    }

    #[test]
    fn a_need_is_read_from_the_outbound_selector() {
        let sa = SaId {
            src: ip("198.18.0.1"),
            dst: ip("198.18.0.2"),
            protocol: iked_common::kernel::IpsecProtocol::Esp,
            spi: 0x1234,
        };
        let need = RouteNeed::of(
            sa,
            &Selector::between(ip("10.1.1.0"), 24, ip("10.2.1.9"), 24),
        );
        assert_eq!(need.peer, ip("198.18.0.2"));
        assert_eq!(need.local.to_string(), "10.1.1.0/24");
        assert_eq!(need.remote.to_string(), "10.2.1.0/24");
    }
}
