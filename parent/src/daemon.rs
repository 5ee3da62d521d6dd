//! The parent process: configuration, sockets, children, signals, control.
//! It never parses an IKE packet.

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use iked_common::config::{self, Config};
use iked_common::event::Poller;
use iked_common::ipc::{
    self, ChildConfig, ChildToParent, ControlReply, ControlRequest, DescriptorPurpose,
    InitiationMode, ParentToChild, Role, Verbosity, IPC_VERSION,
};
use iked_common::kernel::{KernelEntry, KernelSocketKind};
use iked_common::logging;
use iked_common::privileges::sandbox::ViolationAction;
use iked_common::privileges::DEFAULT_CHROOT;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::cli::Cli;
use crate::control::{ControlGroup, ControlServer};
use crate::spawn::{describe_exit, spawn, Child};
use crate::users::RoleUsers;

mod control_verbs;
mod reload;

/// How long a child may take to start, and to stop when told.
const CHILD_START_TIMEOUT: Duration = Duration::from_secs(5);
const CHILD_STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// After a child is lost, how long to collect siblings that die with it.
const LOSS_GRACE: Duration = Duration::from_millis(150);
/// Messages read from one child per wakeup, so none starves the others.
const CHILD_MESSAGES_PER_WAKEUP: usize = 64;

const IKE_PORT: u16 = 500;
/// Receive buffer of each IKE socket. The kernel's default (208 KiB: some
/// 160 small datagrams, at ~1.3 KiB of accounting each) overflows within
/// 20 ms when ikev2 is descheduled under a flood of IKE_SA_INIT, and a
/// legitimate peer whose request is dropped there waits for its own
/// retransmission (4 s for strongSwan). 4 MiB (which the kernel doubles)
/// holds about 6,500 such datagrams: over half a second of a 10,000/s
/// flood, and a full queue is still worked off in a few hundred
/// milliseconds, well within any peer's retransmission timer.
const IKE_RECEIVE_BUFFER: usize = 4 << 20;
/// The send side of the same sockets: under a flood, ikev2 answers every
/// forged request (a COOKIE demand), and a send buffer that fills for a
/// moment would make it drop, with EAGAIN, the answer to a real peer.
const IKE_SEND_BUFFER: usize = 4 << 20;

// Event loop tokens.
const SIGNAL_HUP: u64 = 1;
const SIGNAL_TERM: u64 = 2;
const SIGNAL_CHLD: u64 = 3;
/// The control socket's own epoll: its listener and every client.
const CONTROL: u64 = 4;
const CHILD_BASE: u64 = 10;

fn load_config(cli: &Cli, macros: &[(String, String)]) -> Result<Config, config::ConfigError> {
    let mut config = config::parse_file(&cli.config, macros)?;
    if cli.passive {
        config.mode = InitiationMode::Passive;
    }
    if !cli.check_only {
        for warning in config::order_warnings(&config) {
            log::warn!("{warning}");
        }
    }
    Ok(config)
}

pub fn run(cli: &Cli, verbosity: Verbosity) -> Result<ExitCode, String> {
    if cli.seccomp_log && !cli.foreground {
        return Err("--seccomp-log is for debugging and needs -d".into());
    }
    let macros = cli
        .macros
        .iter()
        .map(|d| config::parse_macro_definition(d))
        .collect::<Result<Vec<_>, _>>()?;
    let loaded = load_config(cli, &macros);
    if cli.check_only {
        return match loaded {
            Ok(mut config) => {
                // A group that does not exist would stop the start: say so now.
                ControlGroup::resolve(config.control_group.as_deref())
                    .map_err(|e| e.to_string())?;
                // The store's files as the daemon would read them (owner,
                // mode, sizes); their contents are ca's to parse.
                crate::certstore::read_for(&config)?;
                for warning in config::order_warnings(&config) {
                    eprintln!("iked: warning: {warning}");
                }
                // What the kernel can install, as the start would ask it.
                for warning in
                    crate::load_checks::check_only(&mut config).map_err(|e| e.to_string())?
                {
                    eprintln!("iked: warning: {warning}");
                }
                // -n prints the configuration as read, normalized; -n -v
                // with every default filled in (as OpenBSD's iked); never
                // a secret.
                if cli.verbose > 0 {
                    print!("{}", config::normalized(&config));
                } else {
                    print!("{}", config::normalized_brief(&config));
                }
                eprintln!("configuration OK");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(e.to_string()),
        };
    }
    if !nix::unistd::Uid::effective().is_root() {
        return Err("need root privileges".into());
    }
    let mut config = loaded.map_err(|e| e.to_string())?;
    // What the kernel can install, asked while we still hold a terminal:
    // a refusal is seen by whoever started us.
    crate::load_checks::probe(config.kernel.unwrap_or(KernelSocketKind::Xfrm));
    crate::load_checks::apply(&mut config).map_err(|e| e.to_string())?;
    // Read before anything starts: a refused store stops iked here, with
    // the file named.
    let store = crate::certstore::read_for(&config)?;
    if cli.no_natt && cli.natt_only {
        return Err("-T and -t exclude each other".into());
    }
    // One user per child (common/src/privileges.rs): none may signal,
    // ptrace or read another's /proc.
    let users = RoleUsers::resolve()?;
    prepare_chroot(DEFAULT_CHROOT)?;
    // Resolved before going to the background, so a bad name is seen.
    let control_group =
        ControlGroup::resolve(config.control_group.as_deref()).map_err(|e| e.to_string())?;

    // Under systemd (Type=notify) the unit's main process must stay ours.
    if !cli.foreground && !crate::notify::supervised() {
        nix::unistd::daemon(false, false).map_err(|e| format!("daemon: {e}"))?;
    }
    let destination = if cli.foreground {
        logging::Destination::Stderr
    } else {
        logging::Destination::Syslog
    };
    logging::init(Role::Parent, destination, verbosity)?;
    if cli.log_keys {
        log::warn!(
            "--log-keys: session keys are written to the log, for interop debugging only; \
             anyone who reads the log can decrypt the traffic"
        );
    }

    let mut ports = Vec::new();
    if !cli.natt_only {
        ports.push(IKE_PORT);
    }
    if !cli.no_natt {
        ports.push(cli.natt_port);
    }
    let kernel =
        iked_pfkey::socket::open_kernel_sockets(config.kernel).map_err(|e| e.to_string())?;
    log::info!("kernel interface: {}", kernel.kind.name());
    if crate::load_checks::probed_kind() != Some(kernel.kind) {
        // XFRM was not there: PF_KEY's limits hold instead.
        crate::load_checks::probe(kernel.kind);
    }
    // Again, now that the log is open: its warnings are seen.
    crate::load_checks::apply(&mut config).map_err(|e| e.to_string())?;
    let udp = bind_udp(&ports, cli.natt_port, kernel.kind)?;
    // pfkey's routes and source lookups: opened here, as every socket a
    // child holds, so no child needs socket(2).
    let route_socket = iked_pfkey::route_socket::open_route_socket()?;
    let control = ControlServer::bind(&cli.socket, control_group).map_err(|e| e.to_string())?;

    let mut daemon = Daemon {
        config_path: cli.config.clone(),
        passive_override: cli.passive,
        macros,
        config,
        generation: 1,
        kernel_kind: kernel.kind,
        natt_port: (!cli.no_natt).then_some(cli.natt_port),
        log_keys: cli.log_keys,
        children: Vec::new(),
        control,
        installed: HashSet::new(),
        installed_addresses: HashSet::new(),
        verbosity,
        lost: Vec::new(),
        child_send_failure: None,
        pending_store: Some(Box::new(store)),
        ca_store_in_force: false,
        fatal: None,
        ca_reply_prefixes: Default::default(),
        pending_reload: None,
        last_round: 1,
        monitors: Default::default(),
        stats: Default::default(),
    };
    let on_violation = if cli.seccomp_log {
        ViolationAction::Log
    } else {
        ViolationAction::Kill
    };
    // Before any child exists and before "started:" is logged: a SIGTERM
    // that comes while the children start is then a stop in order, never
    // the default action that would end the parent without its flush.
    let signals = SignalPipes::register()?;
    let started = daemon.start_children(
        cli.foreground,
        udp,
        kernel,
        route_socket,
        &users,
        on_violation,
    );
    if let Err(e) = started {
        log::error!("{e}");
        return Ok(daemon.fail_stop());
    }
    if !daemon.config.couple {
        // `set decouple`: pfkey holds our policies out of the kernel.
        daemon.send_coupling(false);
    }
    crate::notify::ready();
    daemon.run(signals)
}

/// The parent's signals, each turned into a byte on a pipe its loop polls.
struct SignalPipes {
    hup: UnixStream,
    term: UnixStream,
    chld: UnixStream,
}

impl SignalPipes {
    fn register() -> Result<SignalPipes, String> {
        Ok(SignalPipes {
            hup: signal_pipe(&[signal_hook::consts::SIGHUP])?,
            term: signal_pipe(&[signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?,
            chld: signal_pipe(&[signal_hook::consts::SIGCHLD])?,
        })
    }
}

/// Creates the chroot directory if missing, and refuses one that others
/// could write into.
fn prepare_chroot(dir: &str) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if std::fs::metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| format!("cannot create chroot directory {dir}: {e}"))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| format!("chroot directory {dir}: {e}"))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "chroot directory {dir} must be a directory owned by root and writable by root only"
        ));
    }
    Ok(())
}

/// Binds the IKE UDP sockets on all addresses, IPv4 and IPv6.
/// Each socket is exempt from IPsec policies (IKE must never travel inside
/// the tunnels it negotiates), and the NAT-T one hands ESP-in-UDP to the
/// kernel (RFC 3948); both need privileges ikev2 does not have.
fn bind_udp(
    ports: &[u16],
    natt_port: u16,
    kernel: KernelSocketKind,
) -> Result<Vec<(DescriptorPurpose, OwnedFd)>, String> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
        SockaddrIn6,
    };
    let mut sockets = Vec::new();
    for &port in ports {
        for ipv6 in [false, true] {
            let family = if ipv6 {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            };
            let fd = match socket(
                family,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                None,
            ) {
                Ok(fd) => fd,
                Err(nix::Error::EAFNOSUPPORT) if ipv6 => {
                    log::warn!("IPv6 is not available: listening on IPv4 only");
                    continue;
                }
                Err(e) => return Err(format!("UDP socket: {}", e.desc())),
            };
            // Above net.core.rmem_max: the parent is root (CAP_NET_ADMIN).
            if let Err(e) = setsockopt(&fd, sockopt::RcvBufForce, &IKE_RECEIVE_BUFFER) {
                log::warn!(
                    "UDP port {port}: cannot raise the receive buffer to {IKE_RECEIVE_BUFFER} \
                     octets ({}): a flood may drop legitimate requests",
                    e.desc()
                );
            }
            if let Err(e) = setsockopt(&fd, sockopt::SndBufForce, &IKE_SEND_BUFFER) {
                log::warn!(
                    "UDP port {port}: cannot raise the send buffer to {IKE_SEND_BUFFER} \
                     octets ({}): under a flood, answers may be dropped",
                    e.desc()
                );
            }
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            let result = if ipv6 {
                setsockopt(&fd, sockopt::Ipv6V6Only, &true).and_then(|_| {
                    bind(
                        raw,
                        &SockaddrIn6::from(std::net::SocketAddrV6::new(
                            std::net::Ipv6Addr::UNSPECIFIED,
                            port,
                            0,
                            0,
                        )),
                    )
                })
            } else {
                bind(raw, &SockaddrIn::new(0, 0, 0, 0, port))
            };
            match result {
                Ok(()) => {
                    iked_pfkey::bypass::bypass_ipsec(fd.as_fd(), ipv6, kernel)?;
                    if port == natt_port {
                        if let Err(e) = iked_pfkey::bypass::enable_esp_in_udp(fd.as_fd()) {
                            log::warn!("{e}: UDP-encapsulated ESP will not work");
                        }
                    }
                    sockets.push((DescriptorPurpose::IkeUdp { port, ipv6 }, fd))
                }
                Err(nix::Error::EADDRINUSE) => {
                    return Err(format!(
                        "UDP port {port} ({}) is in use: is another IKE daemon running?",
                        if ipv6 { "IPv6" } else { "IPv4" }
                    ))
                }
                Err(nix::Error::EADDRNOTAVAIL) if ipv6 => {
                    log::warn!("IPv6 is disabled: listening on IPv4 only");
                }
                Err(e) => return Err(format!("bind UDP port {port}: {}", e.desc())),
            }
        }
    }
    Ok(sockets)
}

struct Daemon {
    config_path: std::path::PathBuf,
    passive_override: bool,
    macros: Vec<(String, String)>,
    config: Config,
    generation: u64,
    kernel_kind: KernelSocketKind,
    /// The port ESP in UDP arrives on (`-p`); None with `-T`.
    natt_port: Option<u16>,
    /// `--log-keys`: ikev2 logs session keys (interop debugging only).
    log_keys: bool,
    children: Vec<Child>,
    control: ControlServer,
    /// Kernel entries pfkey reported as ours: flushed by us if pfkey dies.
    installed: HashSet<KernelEntry>,
    /// pfkey's client virtual addresses (interface index, address), kept
    /// like `installed` so that they go even if pfkey dies.
    installed_addresses: HashSet<(u32, std::net::IpAddr)>,
    verbosity: Verbosity,
    /// Children reaped but not yet reported.
    lost: Vec<(Role, WaitStatus)>,
    /// A send to a child failed (it is gone, or stuck past its queue
    /// bound): the loop fails closed at its next turn.
    child_send_failure: Option<(Role, ipc::IpcError)>,
    /// The certificate store's files read for the next configuration ca
    /// gets: taken (and forgotten) when that is sent.
    pending_store: Option<Box<ipc::CertStoreFiles>>,
    /// Whether ca has taken a store of ours yet; one refused before that
    /// (at startup) stops the daemon.
    ca_store_in_force: bool,
    /// Why the daemon must stop, found while handling a message.
    fatal: Option<String>,
    /// Text that goes before ca's answer to a forwarded request (the
    /// reload's own message), by request id.
    ca_reply_prefixes: std::collections::HashMap<u64, String>,
    /// A reload between prepare and commit (daemon/reload.rs).
    pending_reload: Option<reload::PendingReload>,
    /// The generation of the last reload round begun, committed or not.
    last_round: u64,
    /// `ikectl monitor` clients (monitor.rs).
    monitors: crate::monitor::Monitors,
    /// The parent's part of `ikectl show stats` (stats.rs).
    stats: crate::stats::ParentStats,
}

fn signal_pipe(signals: &[i32]) -> Result<UnixStream, String> {
    let (read, write) = UnixStream::pair().map_err(|e| format!("signal pipe: {e}"))?;
    read.set_nonblocking(true)
        .map_err(|e| format!("signal pipe: {e}"))?;
    write
        .set_nonblocking(true)
        .map_err(|e| format!("signal pipe: {e}"))?;
    for &signal in signals {
        let write = write.try_clone().map_err(|e| format!("signal pipe: {e}"))?;
        signal_hook::low_level::pipe::register(signal, write)
            .map_err(|e| format!("signal {signal}: {e}"))?;
    }
    Ok(read)
}

fn drain(pipe: &mut UnixStream) {
    let mut buf = [0u8; 64];
    while matches!(pipe.read(&mut buf), Ok(n) if n > 0) {}
}

impl Daemon {
    /// The share of the configuration `role` gets: policies without
    /// secrets to ikev2, keys to ca, flows to pfkey.
    fn child_config(&mut self, role: Role) -> ChildConfig {
        let generation = self.generation;
        match role {
            Role::Ikev2 => ChildConfig::Ikev2 {
                generation,
                mode: self.config.mode,
                policies: self.config.policies.clone(),
                dpd_check_interval: self.config.dpd_check_interval,
                fragmentation: self.config.fragmentation,
                mobike: self.config.mobike,
                engine: self.config.engine,
            },
            Role::Pfkey => ChildConfig::Pfkey {
                generation,
                flows: crate::flows::flows_of(&self.config.policies, self.natt_port),
                routing: self.config.routing,
            },
            _ => ChildConfig::Ca {
                generation,
                psks: self.config.psks.clone(),
                pubkey_policies: crate::certstore::pubkey_policies(&self.config),
                // Read with the configuration (or by `ikectl reset ca`);
                // the parent keeps no copy of the bytes once sent.
                store: self.pending_store.take().unwrap_or_default(),
                eap_policies: crate::eap::eap_policies(&self.config),
                users: self.config.users.clone(),
            },
        }
    }

    fn start_children(
        &mut self,
        log_to_stderr: bool,
        udp: Vec<(DescriptorPurpose, OwnedFd)>,
        kernel: iked_pfkey::socket::KernelSockets,
        route_socket: OwnedFd,
        users: &RoleUsers,
        on_violation: ViolationAction,
    ) -> Result<(), String> {
        let pair = || ipc::seqpacket_pair().map_err(|e| format!("socketpair: {e}"));
        let (ikev2_pfkey_a, ikev2_pfkey_b) = pair()?;
        let (ikev2_ca_a, ikev2_ca_b) = pair()?;
        let mut gifts: Vec<(Role, Vec<(DescriptorPurpose, OwnedFd)>)> = vec![
            (
                Role::Ca,
                vec![(DescriptorPurpose::Sibling(Role::Ikev2), ikev2_ca_b)],
            ),
            (
                Role::Pfkey,
                vec![
                    (DescriptorPurpose::Sibling(Role::Ikev2), ikev2_pfkey_b),
                    (
                        DescriptorPurpose::KernelRequests(kernel.kind),
                        kernel.requests,
                    ),
                    (DescriptorPurpose::KernelEvents(kernel.kind), kernel.events),
                    (DescriptorPurpose::RouteNetlink, route_socket),
                ],
            ),
            (Role::Ikev2, {
                let mut v = vec![
                    (DescriptorPurpose::Sibling(Role::Pfkey), ikev2_pfkey_a),
                    (DescriptorPurpose::Sibling(Role::Ca), ikev2_ca_a),
                ];
                v.extend(udp);
                v
            }),
        ];
        for (role, descriptors) in gifts.drain(..) {
            let ids = users.of(role)?;
            let (parent_end, child_end) = pair()?;
            let child = spawn(role, parent_end, child_end, log_to_stderr, self.log_keys)?;
            self.children.push(child);
            let child = self.children.last_mut().ok_or("no child")?;
            // The handshake is a bounded blocking exchange, before the
            // channel's queue is used.
            let fail = |e: String| format!("starting the {role} process: {e}");
            let send = |channel: BorrowedFd<'_>, m: &ParentToChild, fds: &[BorrowedFd<'_>]| {
                ipc::send(channel, m, fds).map_err(|e| fail(e.to_string()))
            };
            send(
                child.channel.fd(),
                &ParentToChild::Hello {
                    version: IPC_VERSION,
                    verbosity: self.verbosity,
                    chroot_dir: DEFAULT_CHROOT.into(),
                    uid: ids.uid,
                    gid: ids.gid,
                },
                &[],
            )?;
            match child
                .channel
                .recv_within::<ChildToParent>(CHILD_START_TIMEOUT)
                .map_err(|e| fail(e.to_string()))?
                .message
            {
                ChildToParent::Hello { version, role: r }
                    if version == IPC_VERSION && r == role => {}
                other => return Err(fail(format!("bad handshake {other:?}"))),
            }
            for (purpose, fd) in &descriptors {
                send(
                    child.channel.fd(),
                    &ParentToChild::Descriptor(*purpose),
                    &[fd.as_fd()],
                )?;
            }
            // Our copies close here: from now on only the child holds them.
            drop(descriptors);
            send(
                child.channel.fd(),
                &ParentToChild::DropPrivileges { on_violation },
                &[],
            )?;
            match child
                .channel
                .recv_within::<ChildToParent>(CHILD_START_TIMEOUT)
                .map_err(|e| fail(e.to_string()))?
                .message
            {
                ChildToParent::Ready => {}
                other => return Err(fail(format!("expected Ready, got {other:?}"))),
            }
            log::debug!("{role} process {} ready", child.pid);
        }
        for index in 0..self.children.len() {
            let role = self.children[index].role;
            let config = self.child_config(role);
            // Queued: what the socket does not take now goes out from the
            // event loop (a large configuration is many frames).
            self.children[index]
                .channel
                .send(&ParentToChild::Config(config))
                .map_err(|e| format!("{role}: {e}"))?;
        }
        log::info!(
            "started: ikev2, pfkey and ca processes running, {} mode",
            if self.config.mode == InitiationMode::Active {
                "active"
            } else {
                "passive"
            }
        );
        Ok(())
    }

    fn run(&mut self, signals: SignalPipes) -> Result<ExitCode, String> {
        let SignalPipes {
            mut hup,
            mut term,
            mut chld,
        } = signals;
        let mut poller = Poller::new().map_err(|e| format!("epoll: {e}"))?;
        let add = |poller: &Poller, fd: BorrowedFd<'_>, token| {
            poller.add(fd, token).map_err(|e| format!("epoll: {e}"))
        };
        add(&poller, hup.as_fd(), SIGNAL_HUP)?;
        add(&poller, term.as_fd(), SIGNAL_TERM)?;
        add(&poller, chld.as_fd(), SIGNAL_CHLD)?;
        add(&poller, self.control.as_fd(), CONTROL)?;
        for (index, child) in self.children.iter_mut().enumerate() {
            child
                .channel
                .register(&poller, CHILD_BASE + index as u64)
                .map_err(|e| format!("epoll: {e}"))?;
        }
        // A child may have died before the handler was in place.
        if let Some(code) = self.reap() {
            return Ok(code);
        }
        loop {
            let wait = self.reload_wait();
            for token in poller.wait(wait).map_err(|e| format!("epoll: {e}"))? {
                match token {
                    SIGNAL_HUP => {
                        drain(&mut hup);
                        log::info!("SIGHUP: reloading {}", self.config_path.display());
                        let path = self.config_path.clone();
                        let _ = self.begin_reload(&path, None);
                    }
                    SIGNAL_TERM => {
                        drain(&mut term);
                        log::info!("shutting down");
                        return Ok(self.shutdown());
                    }
                    SIGNAL_CHLD => {
                        drain(&mut chld);
                        if let Some(code) = self.reap() {
                            return Ok(code);
                        }
                    }
                    CONTROL => {
                        // A bounded round; what is left waits for the next
                        // wakeup, after signals and children.
                        for (client, request) in self.control.service() {
                            self.on_control(client, request);
                        }
                    }
                    t => {
                        let index = (t - CHILD_BASE) as usize;
                        if let Err(e) = self.on_child(index) {
                            let role = self
                                .children
                                .get(index)
                                .map(|c| c.role)
                                .unwrap_or(Role::Parent);
                            match e {
                                ipc::IpcError::Closed => self.report_lost_children(),
                                // A child that sends nonsense is broken or
                                // compromised: never guess, stop.
                                e => log::error!("{role} channel: {e}"),
                            }
                            return Ok(self.fail_stop());
                        }
                    }
                }
            }
            self.check_reload_deadline();
            if let Some(reason) = self.fatal.take() {
                log::error!("{reason}");
                let _ = self.shutdown();
                return Ok(ExitCode::FAILURE);
            }
            // Sends to children never wait: what their sockets did not take
            // goes out when they are writable again, while we keep reading.
            if let Err((role, e)) = self.flush_children(&poller) {
                match e {
                    ipc::IpcError::Closed => self.report_lost_children(),
                    e => log::error!("{role} channel: {e}"),
                }
                return Ok(self.fail_stop());
            }
        }
    }

    /// Writes what the child channels have queued; the first failure of a
    /// send (here or earlier) is returned: the daemon then fails closed.
    fn flush_children(&mut self, poller: &Poller) -> Result<(), (Role, ipc::IpcError)> {
        if let Some(failure) = self.child_send_failure.take() {
            return Err(failure);
        }
        for child in self.children.iter_mut().filter(|c| !c.exited) {
            child.channel.flush().map_err(|e| (child.role, e))?;
            child
                .channel
                .update_interest(poller)
                .map_err(|e| (child.role, ipc::IpcError::Io(e)))?;
        }
        Ok(())
    }

    /// Queues `message` for child `index`, never waiting. A failure is kept
    /// for the event loop, which fails closed on it.
    fn send_to_child(&mut self, index: usize, message: &ParentToChild) -> Result<(), String> {
        let Some(child) = self.children.get_mut(index) else {
            return Err("no such child".into());
        };
        match child.channel.send(message) {
            Ok(()) => Ok(()),
            Err(e) => {
                let text = format!("{} channel: {e}", child.role);
                if self.child_send_failure.is_none() {
                    self.child_send_failure = Some((child.role, e));
                }
                Err(text)
            }
        }
    }

    /// What child `index` sent (a bounded number of messages per wakeup).
    fn on_child(&mut self, index: usize) -> Result<(), ipc::IpcError> {
        for _ in 0..CHILD_MESSAGES_PER_WAKEUP {
            let Some(child) = self.children.get_mut(index) else {
                return Ok(());
            };
            let role = child.role;
            let Some(received) = child.channel.try_recv::<ChildToParent>()? else {
                return Ok(());
            };
            let (message, _) = received.expect_descriptors(0)?;
            self.on_child_message(role, message)?;
        }
        Ok(())
    }

    /// One message from the child of `role`.
    fn on_child_message(
        &mut self,
        role: Role,
        message: ChildToParent,
    ) -> Result<(), ipc::IpcError> {
        match message {
            ChildToParent::ConfigApplied { generation } => {
                if role == Role::Ca {
                    self.ca_store_in_force = true;
                }
                log::debug!("{role} applied configuration {generation}")
            }
            ChildToParent::StoreRefused { generation, reason } if role == Role::Ca => {
                if self.ca_store_in_force {
                    log::error!(
                        "ca refused the certificate store of configuration {generation}: {reason}"
                    );
                } else {
                    self.fatal = Some(format!("ca refused the certificate store: {reason}"));
                }
                log::debug!("ca applied configuration {generation} without its store");
            }
            ChildToParent::ConfigPrepared { generation } => {
                self.on_prepare_answer(role, generation, reload::Answer::Prepared);
            }
            ChildToParent::ConfigRefused { generation, reason } => {
                self.on_prepare_answer(role, generation, reload::Answer::Refused(reason));
            }
            ChildToParent::KernelEntryAdded(entry) if role == Role::Pfkey => {
                self.installed.insert(entry);
            }
            ChildToParent::KernelEntryRemoved(entry) if role == Role::Pfkey => {
                self.installed.remove(&entry);
            }
            ChildToParent::AddressAdded { interface, address } if role == Role::Pfkey => {
                self.installed_addresses.insert((interface, address));
            }
            ChildToParent::AddressRemoved { interface, address } if role == Role::Pfkey => {
                self.installed_addresses.remove(&(interface, address));
            }
            ChildToParent::ControlResult { id, reply }
                if matches!(role, Role::Ikev2 | Role::Ca | Role::Pfkey) =>
            {
                let reply = match (self.ca_reply_prefixes.remove(&id), reply) {
                    (Some(prefix), ControlReply::Done(m)) => {
                        ControlReply::Done(format!("{prefix}; {m}"))
                    }
                    (Some(prefix), ControlReply::Failed(m)) => {
                        ControlReply::Failed(format!("{prefix}, but {m}"))
                    }
                    (_, reply) => reply,
                };
                let reply = self.complete_stats(reply);
                // An answer for a connection that has gone away is dropped.
                self.control.answer(id, &reply);
            }
            ChildToParent::Event(event) if role == Role::Ikev2 => {
                self.monitors.publish(&mut self.control, *event);
            }
            ChildToParent::PfkeyStats(stats) if role == Role::Pfkey => self.stats.pfkey = stats,
            other => {
                return Err(ipc::IpcError::Malformed {
                    len: 0,
                    reason: format!("unexpected message {other:?}"),
                })
            }
        }
        Ok(())
    }

    /// Reaps exited children; any unexpected exit takes the daemon down.
    fn reap(&mut self) -> Option<ExitCode> {
        let reaped = self.reap_exited();
        if reaped.is_empty() {
            return None;
        }
        self.lost.extend(reaped);
        self.report_lost_children();
        Some(self.fail_stop())
    }

    /// Reaps the children that have exited, and reports those stopped
    /// (SIGSTOP, SIGTSTP, a tracer), without waiting. A stopped child
    /// answers nothing: it counts as lost, as a dead one does (fail
    /// closed), and is killed by [`Daemon::fail_stop`].
    fn reap_exited(&mut self) -> Vec<(Role, WaitStatus)> {
        let mut reaped = Vec::new();
        for child in self.children.iter_mut().filter(|c| !c.exited) {
            match waitpid(
                child.pid,
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED),
            ) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status @ WaitStatus::Stopped(..)) => reaped.push((child.role, status)),
                Ok(status) => {
                    child.exited = true;
                    reaped.push((child.role, status));
                }
                Err(_) => child.exited = true,
            }
        }
        reaped
    }

    /// Logs every child that is gone. One death often makes a sibling exit
    /// too (its channel closed), so collect for a moment and name them all,
    /// those killed by a signal first.
    fn report_lost_children(&mut self) {
        let mut lost: Vec<(Role, WaitStatus)> = self.lost.drain(..).collect();
        let deadline = Instant::now() + LOSS_GRACE;
        loop {
            lost.extend(self.reap_exited());
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        lost.sort_by_key(|(_, status)| {
            !matches!(status, WaitStatus::Signaled(..) | WaitStatus::Stopped(..))
        });
        for (role, status) in &lost {
            log::error!("lost child {role}: {}", describe_exit(*status));
        }
        if lost.is_empty() {
            log::error!("lost a child: a channel closed");
        }
    }

    /// Fail closed: stop every child, flush what we installed, exit non-zero.
    fn fail_stop(&mut self) -> ExitCode {
        crate::notify::stopping();
        let deadline = Instant::now() + CHILD_STOP_TIMEOUT;
        for child in self.children.iter().filter(|c| !c.exited) {
            let _ = kill(child.pid, Signal::SIGTERM);
            // A stopped child acts on SIGTERM only once continued (pfkey
            // then flushes); one that stays stopped is killed at the end
            // of the wait.
            let _ = kill(child.pid, Signal::SIGCONT);
        }
        // pfkey flushes on SIGTERM and reports each removal; before that,
        // its reports of entries added may still wait in our socket (they
        // stay readable after it died): take them all first.
        self.drain_pfkey_reports(deadline);
        self.wait_all(deadline.saturating_duration_since(Instant::now()));
        self.flush_installed();
        self.control.remove_socket_file();
        log::error!("terminating after losing a child process");
        ExitCode::FAILURE
    }

    /// Orderly stop: children told, our kernel entries flushed, exit 0.
    fn shutdown(&mut self) -> ExitCode {
        crate::notify::stopping();
        let deadline = Instant::now() + CHILD_STOP_TIMEOUT;
        for child in self.children.iter_mut().filter(|c| !c.exited) {
            let _ = child.channel.send(&ParentToChild::Shutdown);
        }
        for child in self.children.iter_mut().filter(|c| !c.exited) {
            let _ = child
                .channel
                .flush_within(deadline.saturating_duration_since(Instant::now()));
        }
        // pfkey reports each entry it flushed before it exits.
        if let Some(index) = self
            .children
            .iter()
            .position(|c| c.role == Role::Pfkey && !c.exited)
        {
            while let Ok(received) = self.children[index]
                .channel
                .recv_within::<ChildToParent>(deadline.saturating_duration_since(Instant::now()))
            {
                match received.message {
                    // Added before the flush, and still queued to us.
                    ChildToParent::KernelEntryAdded(entry) => {
                        self.installed.insert(entry);
                    }
                    ChildToParent::KernelEntryRemoved(entry) => {
                        self.installed.remove(&entry);
                    }
                    ChildToParent::AddressAdded { interface, address } => {
                        self.installed_addresses.insert((interface, address));
                    }
                    ChildToParent::AddressRemoved { interface, address } => {
                        self.installed_addresses.remove(&(interface, address));
                    }
                    ChildToParent::ShutdownComplete => break,
                    _ => {}
                }
            }
        }
        self.wait_all(deadline.saturating_duration_since(Instant::now()));
        self.flush_installed();
        self.control.remove_socket_file();
        log::info!("stopped");
        ExitCode::SUCCESS
    }

    /// Reaps children until all exited or `timeout` passed; kills the rest.
    fn wait_all(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.children.iter().any(|c| !c.exited) && Instant::now() < deadline {
            for child in self.children.iter_mut().filter(|c| !c.exited) {
                if !matches!(
                    waitpid(child.pid, Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                ) {
                    child.exited = true;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for child in self.children.iter_mut().filter(|c| !c.exited) {
            log::warn!(
                "{} process {} did not stop: killing it",
                child.role,
                child.pid
            );
            let _ = kill(child.pid, Signal::SIGKILL);
            let _ = waitpid(child.pid, None);
            child.exited = true;
        }
    }

    /// Reads pfkey's reports (entries added, entries removed) until its
    /// channel ends or `deadline`: what it said last is what the kernel
    /// holds of ours.
    fn drain_pfkey_reports(&mut self, deadline: Instant) {
        let Some(index) = self.children.iter().position(|c| c.role == Role::Pfkey) else {
            return;
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!("pfkey's reports not all read before the stop deadline");
                return;
            }
            match self.children[index]
                .channel
                .recv_within::<ChildToParent>(left)
            {
                Ok(received) => match received.message {
                    ChildToParent::KernelEntryAdded(entry) => {
                        self.installed.insert(entry);
                    }
                    ChildToParent::KernelEntryRemoved(entry) => {
                        self.installed.remove(&entry);
                    }
                    ChildToParent::AddressAdded { interface, address } => {
                        self.installed_addresses.insert((interface, address));
                    }
                    ChildToParent::AddressRemoved { interface, address } => {
                        self.installed_addresses.remove(&(interface, address));
                    }
                    _ => {}
                },
                // Closed, or garbage: what we know is all we will know.
                Err(_) => return,
            }
        }
    }

    /// Removes from the kernel what pfkey reported as installed and did not
    /// remove itself, then every entry still marked as ours (what pfkey
    /// installed but never got to report: killed between the kernel's
    /// answer and its report). Called when every child has exited.
    fn flush_installed(&mut self) {
        self.flush_routes();
        if !self.installed_addresses.is_empty() {
            let addresses: Vec<(u32, std::net::IpAddr)> =
                self.installed_addresses.drain().collect();
            log::warn!(
                "removing {} virtual addresses left by pfkey",
                addresses.len()
            );
            if let Err(e) = iked_pfkey::addresses::remove_addresses(&addresses) {
                log::error!("removing virtual addresses: {e}");
            }
        }
        if !self.installed.is_empty() {
            let entries: Vec<KernelEntry> = self.installed.drain().collect();
            log::warn!("flushing {} kernel entries left by pfkey", entries.len());
            if let Err(e) = iked_pfkey::remove_entries(self.kernel_kind, &entries) {
                log::error!("flushing kernel entries: {e}");
            }
        }
        match iked_pfkey::sweep_marked_entries(self.kernel_kind) {
            Ok(swept) if swept.total() > 0 || !swept.failures.is_empty() => {
                log::warn!("removed {swept} of ours that pfkey had not reported");
                for failure in &swept.failures {
                    log::error!("cannot remove a kernel entry of ours: {failure}");
                }
            }
            Ok(_) => {}
            Err(e) => log::error!("looking for kernel entries of ours: {e}"),
        }
    }

    /// Removes our routes and rule, whatever pfkey did: our own table makes
    /// that one flush (nothing to do after pfkey's own flush at stop).
    fn flush_routes(&mut self) {
        if !self.config.routing.enabled {
            return;
        }
        match iked_pfkey::routes::flush_routes(self.config.routing.table) {
            Ok(0) => {}
            Ok(n) => log::warn!(
                "removed {n} routes pfkey left in table {}",
                self.config.routing.table
            ),
            Err(e) => log::error!("flushing routing table {}: {e}", self.config.routing.table),
        }
    }

    /// One request from control client `id`; every request gets one reply.
    fn on_control(&mut self, id: u64, request: ControlRequest) {
        let reply = match request {
            ControlRequest::Hello { version } if version == IPC_VERSION => ControlReply::Hello {
                version: IPC_VERSION,
            },
            ControlRequest::Hello { version } => ControlReply::Failed(format!(
                "ikectl speaks control version {version}, iked {IPC_VERSION}"
            )),
            // Debug detail is for root: members of control_group get at
            // most verbose. Session keys never follow verbosity: only
            // `--log-keys` at start logs them.
            ControlRequest::SetVerbosity(Verbosity::Debug)
                if self.control.peer(id).is_none_or(|peer| peer.uid != 0) =>
            {
                ControlReply::Failed("debug logging is for root only".into())
            }
            ControlRequest::SetVerbosity(verbosity) => {
                self.verbosity = verbosity;
                logging::set_verbosity(verbosity);
                for index in 0..self.children.len() {
                    let _ = self.send_to_child(index, &ParentToChild::SetVerbosity(verbosity));
                }
                log::info!(
                    "log level set to {}",
                    if verbosity == Verbosity::Brief {
                        "brief"
                    } else {
                        "verbose"
                    }
                );
                ControlReply::Done(format!("logging {verbosity:?}").to_lowercase())
            }
            ControlRequest::Reload => {
                // Answered when every child has prepared and committed, or
                // the round is aborted (daemon/reload.rs).
                let path = self.config_path.clone();
                match self.begin_reload(&path, Some(id)) {
                    Ok(()) => return,
                    Err(message) => ControlReply::Failed(message),
                }
            }
            ControlRequest::ShowCertStore => {
                return self.forward_to_ca(id, ipc::CaCommand::ShowCertStore);
            }
            ControlRequest::Monitor => self.monitors.subscribe(id),
            ControlRequest::ResetCa => match self.reset_ca() {
                // ca answers whether it took the store it was just sent.
                Ok(()) => return self.forward_to_ca(id, ipc::CaCommand::StoreStatus),
                Err(message) => ControlReply::Failed(message),
            },
            request @ (ControlRequest::Load { .. }
            | ControlRequest::SetMode(_)
            | ControlRequest::Pfkey(_)
            | ControlRequest::Reset(_)) => return self.on_control_verb(id, request),
            ControlRequest::Ikev2(command) => {
                // ikev2 answers later with a ControlResult carrying this id.
                let request_id = self.control.forwarding(id);
                let sent = self
                    .children
                    .iter()
                    .position(|c| c.role == Role::Ikev2)
                    .map(|index| {
                        self.send_to_child(
                            index,
                            &ParentToChild::Control {
                                id: request_id,
                                command,
                            },
                        )
                    });
                match sent {
                    Some(Ok(())) => return,
                    _ => {
                        self.control.forget(request_id);
                        ControlReply::Failed("the ikev2 process is not available".into())
                    }
                }
            }
        };
        self.control.reply(id, &reply);
    }
}

impl Daemon {
    /// `ikectl reset ca`: re-reads the certificate store of the current
    /// configuration and sends it to ca (same generation: the rest of the
    /// configuration is unchanged). A refused read keeps ca's store.
    fn reset_ca(&mut self) -> Result<(), String> {
        let store = crate::certstore::read_for(&self.config).map_err(|e| {
            let message = format!("reset ca failed, keeping the current store: {e}");
            log::error!("{message}");
            message
        })?;
        let index = self
            .children
            .iter()
            .position(|c| c.role == Role::Ca)
            .ok_or("the ca process is not available")?;
        self.pending_store = Some(Box::new(store));
        let message = ParentToChild::Config(self.child_config(Role::Ca));
        self.send_to_child(index, &message)?;
        log::info!("certificate store re-read from {}", self.config.certdir);
        Ok(())
    }

    /// Sends a command to ca; its ControlResult answers client `id`.
    fn forward_to_ca(&mut self, id: u64, command: ipc::CaCommand) {
        self.forward_to_ca_after(id, command, None)
    }

    /// As [`Daemon::forward_to_ca`], ca's answer put after `prefix`.
    fn forward_to_ca_after(&mut self, id: u64, command: ipc::CaCommand, prefix: Option<String>) {
        let request_id = self.control.forwarding(id);
        if let Some(prefix) = prefix {
            self.ca_reply_prefixes.insert(request_id, prefix);
        }
        let sent = self
            .children
            .iter()
            .position(|c| c.role == Role::Ca)
            .map(|index| {
                self.send_to_child(
                    index,
                    &ParentToChild::CaControl {
                        id: request_id,
                        command,
                    },
                )
            });
        if !matches!(sent, Some(Ok(()))) {
            self.control.forget(request_id);
            self.ca_reply_prefixes.remove(&request_id);
            self.control.reply(
                id,
                &ControlReply::Failed("the ca process is not available".into()),
            );
        }
    }
}

impl Daemon {
    /// ikev2's `show stats` answer with the parent's part added.
    fn complete_stats(&mut self, reply: ControlReply) -> ControlReply {
        let monitors = (self.monitors.count(&self.control), self.monitors.dropped);
        let queues = self
            .children
            .iter()
            .map(|c| (c.role.to_string(), c.channel.queued_bytes()));
        self.stats.complete(reply, queues, monitors)
    }
}
