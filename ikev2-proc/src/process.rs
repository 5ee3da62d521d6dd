//! The process shell of ikev2-proc: startup, the event loop, and dispatch of
//! datagrams and IPC messages.

use std::os::fd::{AsFd, OwnedFd};

use iked_common::child::{self, StartedChild};
use iked_common::event::Poller;
use iked_common::ipc::{
    self, CaToIkev2, ChildConfig, ChildToParent, DescriptorPurpose, Ikev2ToCa, Ikev2ToPfkey,
    InitiationMode, ParentToChild, PfkeyToIkev2, Role,
};
use iked_common::logging;

const PARENT: u64 = 0;
const PFKEY: u64 = 1;
const CA: u64 = 2;
/// UDP sockets are tokens UDP_BASE.. in the order received.
const UDP_BASE: u64 = 16;

/// Largest IKE datagram read (RFC 7296 §2 allows up to 64 KiB over UDP).
const MAX_DATAGRAM: usize = 65_535;

struct Ikev2Process {
    started: StartedChild,
    pfkey: OwnedFd,
    ca: OwnedFd,
    udp: Vec<(u16, bool, OwnedFd)>,
    mode: Option<InitiationMode>,
    generation: u64,
}

/// Entry point after exec; returns the exit status.
pub fn run(log_to_stderr: bool) -> i32 {
    match serve(log_to_stderr) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn serve(log_to_stderr: bool) -> Result<(), String> {
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
            DescriptorPurpose::IkeUdp { port, ipv6 } => udp.push((port, ipv6, fd)),
            other => return Err(format!("unexpected descriptor {other:?}")),
        }
    }
    if udp.is_empty() {
        return Err("no UDP socket was given".into());
    }
    let mut process = Ikev2Process {
        started,
        pfkey,
        ca,
        udp,
        mode: None,
        generation: 0,
    };
    process.run()
}

impl Ikev2Process {
    fn run(&mut self) -> Result<(), String> {
        let mut poller = Poller::new().map_err(|e| format!("epoll: {e}"))?;
        let add = |fd, token| poller.add(fd, token).map_err(|e| format!("epoll: {e}"));
        add(self.started.parent(), PARENT)?;
        add(self.pfkey.as_fd(), PFKEY)?;
        add(self.ca.as_fd(), CA)?;
        for (index, (_, _, fd)) in self.udp.iter().enumerate() {
            add(fd.as_fd(), UDP_BASE + index as u64)?;
        }
        // Prove both sibling channels work before serving.
        ipc::send(self.pfkey.as_fd(), &Ikev2ToPfkey::Ping { id: 1 }, &[])
            .map_err(|e| format!("pfkey channel: {e}"))?;
        ipc::send(self.ca.as_fd(), &Ikev2ToCa::Ping { id: 1 }, &[])
            .map_err(|e| format!("ca channel: {e}"))?;
        loop {
            for token in poller.wait(None).map_err(|e| format!("epoll: {e}"))? {
                match token {
                    PARENT => {
                        if !self.on_parent()? {
                            return Ok(());
                        }
                    }
                    PFKEY => self.on_pfkey()?,
                    CA => self.on_ca()?,
                    t => self.on_datagram((t - UDP_BASE) as usize),
                }
            }
        }
    }

    /// Handles one parent message; false means shut down.
    fn on_parent(&mut self) -> Result<bool, String> {
        let received = ipc::recv::<ParentToChild>(self.started.parent());
        let message = match received {
            Ok(r) => {
                r.expect_descriptors(0)
                    .map_err(|e| format!("parent: {e}"))?
                    .0
            }
            Err(ipc::IpcError::Closed) => {
                log::info!("parent went away, exiting");
                return Ok(false);
            }
            Err(e) => return Err(format!("parent: {e}")),
        };
        match message {
            ParentToChild::Config(ChildConfig::Ikev2 {
                generation, mode, ..
            }) => {
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
                self.mode = Some(mode);
                self.generation = generation;
                self.started
                    .tell_parent(&ChildToParent::ConfigApplied { generation })?;
            }
            ParentToChild::SetVerbosity(v) => logging::set_verbosity(v),
            ParentToChild::Shutdown => {
                self.started.tell_parent(&ChildToParent::ShutdownComplete)?;
                return Ok(false);
            }
            other => return Err(format!("parent: unexpected {other:?}")),
        }
        Ok(true)
    }

    fn on_pfkey(&mut self) -> Result<(), String> {
        let message = ipc::recv::<PfkeyToIkev2>(self.pfkey.as_fd())
            .and_then(|r| r.expect_descriptors(0))
            .map_err(|e| format!("pfkey: {e}"))?
            .0;
        match message {
            PfkeyToIkev2::Pong { id } => log::debug!("pfkey channel up (pong {id})"),
            // Nothing else is requested until the protocol engine runs here.
            other => log::warn!("pfkey: unsolicited {other:?}"),
        }
        Ok(())
    }

    fn on_ca(&mut self) -> Result<(), String> {
        let message = ipc::recv::<CaToIkev2>(self.ca.as_fd())
            .and_then(|r| r.expect_descriptors(0))
            .map_err(|e| format!("ca: {e}"))?
            .0;
        match message {
            CaToIkev2::Pong { id } => log::debug!("ca channel up (pong {id})"),
            other => log::warn!("ca: unsolicited {other:?}"),
        }
        Ok(())
    }

    fn on_datagram(&mut self, index: usize) {
        let Some((port, _, fd)) = self.udp.get(index) else {
            return;
        };
        let mut buf = vec![0u8; MAX_DATAGRAM];
        match nix::sys::socket::recvfrom::<nix::sys::socket::SockaddrStorage>(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            &mut buf,
        ) {
            Ok((len, from)) => {
                let from = from.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
                log::debug!(
                    "port {port}: {len} bytes from {from} ignored: no IKE policy is configured"
                );
            }
            Err(e) => log::warn!("port {port}: receive failed: {e}"),
        }
    }
}
