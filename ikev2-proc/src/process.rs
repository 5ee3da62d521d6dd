//! The process shell of ikev2-proc: startup, the event loop, and dispatch of
//! datagrams and IPC messages to and from the sans-I/O engine.
//!
//! The loop waits on the UDP sockets, the pfkey and ca channels and the
//! parent channel, with the engine's next deadline as the epoll timeout.
//! The shell adds and strips the non-ESP marker on the NAT-T port
//! (RFC 3948 §2.2) and learns the local address of each datagram with
//! IP_PKTINFO / IPV6_RECVPKTINFO (the sockets are bound to the wildcard),
//! so that answers leave from the address the request reached. It opens
//! no socket: where a policy names no local address, the engine asks
//! pfkey for the source address towards the peer.

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrStorage,
};

use iked_common::child::{self, ChildError, FromParent, StartedChild, EXIT_FLUSH_TIMEOUT};
use iked_common::crypto::OpensslRandom;
use iked_common::event::Poller;
use iked_common::ipc::{
    CaToIkev2, Channel, ChildConfig, ChildToParent, DescriptorPurpose, Ikev2ToCa, Ikev2ToPfkey,
    InitiationMode, ParentToChild, PfkeyToIkev2, Role,
};
use iked_common::logging::{self, held_back_text, RateLimit};

use crate::engine::{Action, Engine, Settings};

const PARENT: u64 = 0;
const PFKEY: u64 = 1;
const CA: u64 = 2;
/// UDP sockets are tokens UDP_BASE.. in the order received.
const UDP_BASE: u64 = 16;

/// Largest IKE datagram read (RFC 7296 §2 allows up to 64 KiB over UDP).
const MAX_DATAGRAM: usize = 65_535;
/// The non-ESP marker: four zero octets before IKE on the NAT-T port.
const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// Datagrams drained per socket per wakeup, so one busy socket cannot
/// starve the others.
const DATAGRAMS_PER_WAKEUP: usize = 64;
/// IPC messages read per channel per wakeup, for the same reason.
const MESSAGES_PER_WAKEUP: usize = 64;

struct UdpEndpoint {
    port: u16,
    ipv6: bool,
    fd: OwnedFd,
}

struct Ikev2Process {
    started: StartedChild,
    /// Sibling channels: sends queue and never wait, so ikev2 and pfkey
    /// (or ca) can never block on each other.
    pfkey: Channel,
    ca: Channel,
    udp: Vec<UdpEndpoint>,
    mode: Option<InitiationMode>,
    generation: u64,
    engine: Engine,
    natt_port: u16,
    buffer: Vec<u8>,
    send_failure_log: RateLimit,
    /// Reload: the configuration prepared, until commit or abort.
    staged: iked_common::reload::Staged<ChildConfig>,
}

/// Entry point after exec; returns the exit status.
pub fn run(log_to_stderr: bool) -> i32 {
    child::exit_status(serve(log_to_stderr))
}

fn serve(log_to_stderr: bool) -> Result<(), ChildError> {
    let mut started = child::start(Role::Ikev2, log_to_stderr)?;
    let pfkey = started
        .take(DescriptorPurpose::Sibling(Role::Pfkey))
        .ok_or("no channel to pfkey was given")?;
    let ca = started
        .take(DescriptorPurpose::Sibling(Role::Ca))
        .ok_or("no channel to ca was given")?;
    let mut udp = Vec::new();
    for (purpose, fd) in std::mem::take(&mut started.descriptors) {
        match purpose {
            DescriptorPurpose::IkeUdp { port, ipv6 } => {
                // Learn each datagram's destination address (wildcard bind).
                let result = if ipv6 {
                    setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)
                } else {
                    setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)
                };
                result.map_err(|e| {
                    ChildError::Setup(format!("port {port}: cannot enable packet info: {e}"))
                })?;
                udp.push(UdpEndpoint { port, ipv6, fd })
            }
            other => {
                return Err(ChildError::Setup(format!(
                    "unexpected descriptor {other:?}"
                )))
            }
        }
    }
    if udp.is_empty() {
        return Err(ChildError::Setup("no UDP socket was given".into()));
    }
    let settings = Settings::default();
    let natt_port = settings.natt_port;
    // No randomness, no cookie secret, SPIs or nonces: refuse to run.
    let engine = Engine::new(settings, Box::new(OpensslRandom), Instant::now())
        .map_err(|e| ChildError::Setup(format!("cannot start the IKEv2 engine: {e}")))?;
    let mut process = Ikev2Process {
        started,
        pfkey: Channel::new(pfkey),
        ca: Channel::new(ca),
        udp,
        mode: None,
        generation: 0,
        engine,
        natt_port,
        buffer: vec![0u8; MAX_DATAGRAM + 1],
        send_failure_log: RateLimit::new(5, std::time::Duration::from_secs(1)),
        staged: iked_common::reload::Staged::new(),
    };
    process.run()
}

impl Ikev2Process {
    fn run(&mut self) -> Result<(), ChildError> {
        let mut poller = Poller::new()?;
        self.started.register_parent(&poller, PARENT)?;
        self.pfkey.register(&poller, PFKEY)?;
        self.ca.register(&poller, CA)?;
        for (index, endpoint) in self.udp.iter().enumerate() {
            poller.add(endpoint.fd.as_fd(), UDP_BASE + index as u64)?;
        }
        // Prove both sibling channels work before serving.
        self.pfkey
            .send(&Ikev2ToPfkey::Ping { id: 1 })
            .map_err(ChildError::on("pfkey channel"))?;
        self.ca
            .send(&Ikev2ToCa::Ping { id: 1 })
            .map_err(ChildError::on("ca channel"))?;
        loop {
            let timeout = self
                .engine
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            let tokens = poller.wait(timeout)?;
            for token in tokens {
                match token {
                    PARENT => {
                        if !self.on_parent()? {
                            return Ok(());
                        }
                    }
                    PFKEY => self.on_pfkey()?,
                    CA => self.on_ca()?,
                    t => self.on_datagrams(t.saturating_sub(UDP_BASE) as usize),
                }
                self.perform()?;
            }
            if self
                .engine
                .next_deadline()
                .is_some_and(|d| d <= Instant::now())
            {
                self.engine.handle_timeout(Instant::now());
            }
            self.perform()?;
            self.flush_channels(&poller)?;
        }
    }

    /// Writes what the channels have queued and asks the poller to wake us
    /// when a full one can take more; we keep reading meanwhile.
    fn flush_channels(&mut self, poller: &Poller) -> Result<(), ChildError> {
        self.started.flush_parent(poller)?;
        for (name, channel) in [
            ("pfkey channel", &mut self.pfkey),
            ("ca channel", &mut self.ca),
        ] {
            channel.flush().map_err(ChildError::on(name))?;
            channel.update_interest(poller)?;
        }
        Ok(())
    }

    /// Carries out what the engine asked for.
    fn perform(&mut self) -> Result<(), ChildError> {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Send {
                    local,
                    remote,
                    datagram,
                } => self.send_datagram(local, remote, &datagram),
                Action::NatKeepalive { local, remote } => {
                    if let Some(endpoint) = self
                        .udp
                        .iter()
                        .find(|e| e.port == local.port() && e.ipv6 == remote.is_ipv6())
                    {
                        if let Err(e) = transmit(endpoint, false, local, remote, &[0xff]) {
                            log::debug!("NAT-keepalive to {remote} failed: {e}");
                        }
                    }
                }
                Action::Pfkey(message) => self
                    .pfkey
                    .send(&message)
                    .map_err(ChildError::on("pfkey channel"))?,
                Action::Ca(message) => self
                    .ca
                    .send(&message)
                    .map_err(ChildError::on("ca channel"))?,
                Action::Control { id, reply } => {
                    let reply = self.with_queue_depths(reply);
                    self.started
                        .tell_parent(&ChildToParent::ControlResult { id, reply })?
                }
                Action::Event(event) => self.started.tell_parent(&ChildToParent::Event(event))?,
            }
        }
        Ok(())
    }

    /// Handles what the parent sent; false means shut down.
    fn on_parent(&mut self) -> Result<bool, ChildError> {
        for _ in 0..MESSAGES_PER_WAKEUP {
            let message = match self.started.next_from_parent()? {
                FromParent::Message(message) => message,
                FromParent::Nothing => break,
                FromParent::Gone => {
                    log::info!("parent went away, exiting");
                    return Ok(false);
                }
            };
            if !self.on_parent_message(message)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Puts a configuration in force (at start, and at a reload's commit).
    fn apply_config(&mut self, config: ChildConfig) -> Result<(), ChildError> {
        let ChildConfig::Ikev2 {
            generation,
            mode,
            policies,
            dpd_check_interval,
            fragmentation,
            mobike,
            engine,
            ..
        } = config
        else {
            return Err(ChildError::unexpected(
                "parent",
                &"a configuration not for ikev2",
            ));
        };
        if self.mode != Some(mode) {
            log::info!(
                "initiation mode: {}",
                if mode == InitiationMode::Active {
                    "active"
                } else {
                    "passive"
                }
            );
        }
        log::info!(
            "configuration {generation}: {} policies, DPD {}, IKE fragmentation {}",
            policies.len(),
            if dpd_check_interval == 0 {
                "off".to_string()
            } else {
                format!("every {dpd_check_interval} s")
            },
            if fragmentation.enabled {
                format!("on above {} bytes", fragmentation.max_datagram)
            } else {
                "off".to_string()
            }
        );
        self.mode = Some(mode);
        self.generation = generation;
        self.engine.set_fragmentation(fragmentation);
        self.engine.set_mobike(mobike);
        self.engine.set_tunables(&engine);
        self.engine
            .set_config(Instant::now(), policies, mode, dpd_check_interval);
        self.started
            .tell_parent(&ChildToParent::ConfigApplied { generation })?;
        Ok(())
    }

    /// Handles one parent message; false means shut down.
    fn on_parent_message(&mut self, message: ParentToChild) -> Result<bool, ChildError> {
        match message {
            ParentToChild::Config(config @ ChildConfig::Ikev2 { .. }) => {
                self.apply_config(config)?;
            }
            ParentToChild::PrepareConfig(config) => {
                let generation = config.generation();
                let checked = match &config {
                    ChildConfig::Ikev2 { policies, .. } => {
                        crate::engine::reload::check_policies(policies)
                    }
                    _ => Err("not a configuration for ikev2".to_string()),
                };
                let answer = match checked {
                    Ok(()) => {
                        self.staged.prepare(generation, config);
                        ChildToParent::ConfigPrepared { generation }
                    }
                    Err(reason) => ChildToParent::ConfigRefused { generation, reason },
                };
                self.started.tell_parent(&answer)?;
            }
            ParentToChild::CommitConfig { generation } => {
                let config = self.staged.commit(generation).map_err(ChildError::Setup)?;
                self.apply_config(config)?;
            }
            ParentToChild::AbortConfig { generation } => {
                if self.staged.abort(generation) {
                    log::info!("configuration {generation} dropped: the reload was aborted");
                }
            }
            ParentToChild::Control { id, command } => {
                self.engine.handle_control(Instant::now(), id, command);
            }
            ParentToChild::SetVerbosity(v) => logging::set_verbosity(v),
            ParentToChild::Shutdown => {
                self.engine.shutdown(Instant::now());
                self.perform()?;
                // Bounded: pfkey is being stopped too and flushes ours.
                if let Err(e) = self.pfkey.flush_within(EXIT_FLUSH_TIMEOUT) {
                    log::debug!("pfkey channel at exit: {e}");
                }
                self.started.tell_parent(&ChildToParent::ShutdownComplete)?;
                self.started.flush_parent_before_exit()?;
                return Ok(false);
            }
            other => return Err(ChildError::unexpected("parent", &other)),
        }
        Ok(true)
    }

    fn on_pfkey(&mut self) -> Result<(), ChildError> {
        for _ in 0..MESSAGES_PER_WAKEUP {
            let Some(message) = self
                .pfkey
                .try_recv_message::<PfkeyToIkev2>()
                .map_err(ChildError::on("pfkey"))?
            else {
                break;
            };
            self.engine
                .handle_pfkey(Instant::now(), message)
                .map_err(|e| ChildError::refused("pfkey")(e.to_string()))?;
            self.perform()?;
        }
        Ok(())
    }

    fn on_ca(&mut self) -> Result<(), ChildError> {
        for _ in 0..MESSAGES_PER_WAKEUP {
            let Some(message) = self
                .ca
                .try_recv_message::<CaToIkev2>()
                .map_err(ChildError::on("ca"))?
            else {
                break;
            };
            self.engine
                .handle_ca(Instant::now(), message)
                .map_err(|e| ChildError::refused("ca")(e.to_string()))?;
            self.perform()?;
        }
        Ok(())
    }

    /// Reads what is queued on one UDP socket (non-blocking, bounded).
    fn on_datagrams(&mut self, index: usize) {
        for _ in 0..DATAGRAMS_PER_WAKEUP {
            let Some(endpoint) = self.udp.get(index) else {
                return;
            };
            let port = endpoint.port;
            let received = receive(endpoint, &mut self.buffer);
            let (len, from, to) = match received {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    log::warn!("port {port}: receive failed: {e}");
                    return;
                }
            };
            let Some(data) = self.buffer.get(..len) else {
                return;
            };
            let Some(payload) = ike_message(data, port == self.natt_port) else {
                continue;
            };
            let local = SocketAddr::new(to, port);
            self.engine
                .handle_datagram(Instant::now(), local, from, payload);
        }
    }

    fn send_datagram(&mut self, local: SocketAddr, remote: SocketAddr, datagram: &[u8]) {
        let ipv6 = remote.is_ipv6();
        let Some(endpoint) = self
            .udp
            .iter()
            .find(|e| e.port == local.port() && e.ipv6 == ipv6)
        else {
            log::warn!(
                "no socket for port {} ({}) to send to {remote}",
                local.port(),
                if ipv6 { "IPv6" } else { "IPv4" }
            );
            return;
        };
        if let Err(e) = transmit(
            endpoint,
            local.port() == self.natt_port,
            local,
            remote,
            datagram,
        ) {
            // Under a flood every forged request is answered: one line
            // per failed send would flood the log as well.
            if let Some(held_back) = self.send_failure_log.allow(Instant::now()) {
                log::warn!(
                    "send to {remote} from {local} failed: {e}{}",
                    held_back_text(held_back)
                );
            }
        }
    }
}

impl Ikev2Process {
    /// `show stats`: ikev2's channel queues go into the engine's report.
    fn with_queue_depths(
        &self,
        reply: iked_common::ipc::ControlReply,
    ) -> iked_common::ipc::ControlReply {
        use iked_common::ipc::ControlReply;
        let ControlReply::Stats(mut report) = reply else {
            return reply;
        };
        for (to, channel) in [
            ("parent", &self.started.parent),
            ("pfkey", &self.pfkey),
            ("ca", &self.ca),
        ] {
            report.ipc_queues.push(iked_common::stats::QueueDepth {
                from: "ikev2".into(),
                to: to.into(),
                bytes: channel.queued_bytes() as u64,
            });
        }
        ControlReply::Stats(report)
    }
}

/// Sends one IKE message on `endpoint`, from `local`'s address when it is
/// not the wildcard, with the non-ESP marker first when `natt`.
fn transmit(
    endpoint: &UdpEndpoint,
    natt: bool,
    local: SocketAddr,
    remote: SocketAddr,
    datagram: &[u8],
) -> Result<(), nix::Error> {
    let ipv6 = remote.is_ipv6();
    let marker: &[u8] = if natt { &NON_ESP_MARKER } else { &[] };
    let iov = [IoSlice::new(marker), IoSlice::new(datagram)];
    let destination = SockaddrStorage::from(remote);
    let v4_info;
    let v6_info;
    let mut cmsgs = Vec::new();
    // Leave from the address the peer talks to (wildcard-bound sockets).
    match local.ip() {
        IpAddr::V4(addr) if !addr.is_unspecified() && !ipv6 => {
            v4_info = nix::libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: nix::libc::in_addr {
                    s_addr: u32::from(addr).to_be(),
                },
                ipi_addr: nix::libc::in_addr { s_addr: 0 },
            };
            cmsgs.push(ControlMessage::Ipv4PacketInfo(&v4_info));
        }
        IpAddr::V6(addr) if !addr.is_unspecified() && ipv6 => {
            v6_info = nix::libc::in6_pktinfo {
                ipi6_addr: nix::libc::in6_addr {
                    s6_addr: addr.octets(),
                },
                ipi6_ifindex: 0,
            };
            cmsgs.push(ControlMessage::Ipv6PacketInfo(&v6_info));
        }
        _ => {}
    }
    sendmsg(
        endpoint.fd.as_raw_fd(),
        &iov,
        &cmsgs,
        MsgFlags::MSG_DONTWAIT,
        Some(&destination),
    )?;
    Ok(())
}

/// The IKE message in a datagram received on a port: on the NAT-T port it
/// must start with the non-ESP marker (RFC 3948 §2.2), which is removed; a
/// NAT-keepalive (one 0xff octet) or anything else yields None.
fn ike_message(data: &[u8], natt: bool) -> Option<&[u8]> {
    if !natt {
        return Some(data);
    }
    match data.split_at_checked(NON_ESP_MARKER.len()) {
        Some((marker, rest)) if marker == NON_ESP_MARKER => Some(rest),
        _ => None,
    }
}

/// One datagram: its length in `buffer`, its source, and the local address
/// it was sent to. None when nothing is queued.
fn receive(
    endpoint: &UdpEndpoint,
    buffer: &mut [u8],
) -> Result<Option<(usize, SocketAddr, IpAddr)>, nix::Error> {
    let mut cmsg_space = nix::cmsg_space!(nix::libc::in6_pktinfo);
    let mut iov = [IoSliceMut::new(buffer)];
    let msg = match recvmsg::<SockaddrStorage>(
        endpoint.fd.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg_space),
        MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(m) => m,
        Err(nix::Error::EAGAIN) => return Ok(None),
        Err(nix::Error::EINTR) => return Ok(None),
        Err(e) => return Err(e),
    };
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        log::debug!("oversized datagram dropped");
        return Ok(None);
    }
    let len = msg.bytes;
    let from = msg.address.and_then(|a| {
        if let Some(v4) = a.as_sockaddr_in() {
            Some(SocketAddr::from((v4.ip(), v4.port())))
        } else {
            a.as_sockaddr_in6()
                .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
        }
    });
    let mut to: Option<IpAddr> = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for cmsg in cmsgs {
            match cmsg {
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    to = Some(IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(
                        info.ipi_addr.s_addr,
                    ))));
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    to = Some(IpAddr::V6(std::net::Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                }
                _ => {}
            }
        }
    }
    let Some(from) = from else {
        return Ok(None);
    };
    // Without packet info (should not happen), fall back to the wildcard.
    let to = to.unwrap_or(if endpoint.ipv6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    });
    Ok(Some((len, from, to)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn endpoint(port_hint: &str) -> (UdpEndpoint, SocketAddr) {
        let socket = UdpSocket::bind(port_hint).unwrap();
        let addr = socket.local_addr().unwrap();
        let fd = OwnedFd::from(socket);
        setsockopt(&fd, sockopt::Ipv4PacketInfo, &true).unwrap();
        (
            UdpEndpoint {
                port: addr.port(),
                ipv6: false,
                fd,
            },
            addr,
        )
    }

    #[test]
    fn datagrams_carry_the_marker_on_natt_and_report_the_local_address() {
        // Wildcard-bound receiver, as the parent binds them.
        let (receiver, receiver_addr) = endpoint("0.0.0.0:0");
        let (sender, _) = endpoint("0.0.0.0:0");
        let to = SocketAddr::from(([127, 0, 0, 1], receiver_addr.port()));
        let from_local = SocketAddr::from(([127, 0, 0, 1], sender.port));
        transmit(&sender, true, from_local, to, b"ike message").unwrap();
        transmit(&sender, false, from_local, to, b"plain").unwrap();
        let mut buffer = vec![0u8; MAX_DATAGRAM + 1];
        let mut got = Vec::new();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 2 && Instant::now() < deadline {
            if let Some((len, from, local)) = receive(&receiver, &mut buffer).unwrap() {
                got.push((buffer[..len].to_vec(), from, local));
            }
        }
        assert_eq!(got.len(), 2);
        let (first, from, local) = &got[0];
        assert_eq!(&first[..4], &NON_ESP_MARKER);
        assert_eq!(ike_message(first, true), Some(&b"ike message"[..]));
        assert_eq!(*from, from_local);
        assert_eq!(*local, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(got[1].0, b"plain");
        assert_eq!(ike_message(&got[1].0, false), Some(&b"plain"[..]));
    }

    #[test]
    fn keepalives_and_esp_on_the_natt_port_are_not_ike() {
        assert_eq!(ike_message(&[0xff], true), None);
        assert_eq!(ike_message(&[0, 0, 0, 1, 9, 9], true), None);
        assert_eq!(ike_message(&[0, 0], true), None);
        assert_eq!(ike_message(&[0, 0, 0, 0], true), Some(&[][..]));
    }
}
