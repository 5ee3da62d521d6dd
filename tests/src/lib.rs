//! Helpers for the integration tests in `tests/tests/`: finding the built
//! binaries, running a daemon in a network namespace of its own, reading what
//! /proc says about its processes. Every wait here is bounded.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod certlab;
pub mod flood;
pub mod lab;
pub mod libreswan;
pub mod pki;
pub mod roadwarrior;
pub mod xfrm_listing;

/// Fails the test, with the reason, unless we are root: tests that need root
/// never skip silently.
pub fn require_root(what: &str) {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "{what} needs root (network namespaces, privilege drop): run it as root, as .ci/run does"
    );
}

/// A binary of this workspace, built by `cargo build --workspace --bins`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Writes an iked.conf (or any file iked reads as configuration or keys)
/// as iked demands it: mode 0600, owned by whoever runs the test (root for
/// the daemon tests). iked refuses a configuration file readable or
/// writable by group or others, or not owned by root (its owner may also
/// be the caller for `iked -n`). Every test writes its configurations
/// through this, so a change of the rule reaches them all.
pub fn write_config(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("write config {}: {e}", path.display()));
    // An existing file keeps its mode through open(2): set it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("chmod 0600 {}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write config {}: {e}", path.display()));
}

/// A scratch directory removed at drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        // Tests of one binary run in threads of one process: the pid alone
        // is shared, so a process-wide counter keeps each directory its own
        // (two tests on one path removed each other's files at drop).
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("iked-test-{tag}-{}-{serial}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("scratch dir");
        Scratch(path)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `iked -d -f CONFIG -s SCRATCH/iked.sock`, stdin closed: for tests
    /// that run iked themselves to see how it refuses to start.
    pub fn iked_command(&self, config: &Path) -> Command {
        let mut command = Command::new(binary("iked"));
        command
            .arg("-d")
            .arg("-f")
            .arg(config)
            .arg("-s")
            .arg(self.file("iked.sock"))
            .stdin(Stdio::null());
        command
    }

    /// Writes the configuration file `name` here with [`write_config`].
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let path = self.file(name);
        write_config(&path, text);
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An iked started with `-d` in a network namespace of its own.
pub struct Daemon {
    pub child: Child,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub scratch: Scratch,
    exited: Option<ExitStatus>,
}

impl Daemon {
    /// Starts iked with `config_text` and waits until it reports that its
    /// children are up.
    pub fn start(tag: &str, config_text: &str) -> Daemon {
        Daemon::start_in(None, tag, config_text)
    }

    /// Starts iked inside the named network namespace (`ip netns`), or in a
    /// fresh anonymous one when `netns` is None.
    pub fn start_in(netns: Option<&str>, tag: &str, config_text: &str) -> Daemon {
        Daemon::start_full(netns, tag, config_text, &[], Duration::from_secs(10))
    }

    /// As [`Daemon::start_in`], waiting up to `timeout` for the start (the
    /// kernel lab under emulation on a loaded machine can be that slow).
    pub fn start_in_within(
        netns: Option<&str>,
        tag: &str,
        config_text: &str,
        timeout: Duration,
    ) -> Daemon {
        Daemon::start_full(netns, tag, config_text, &[], timeout)
    }

    /// [`Daemon::start_in`] with more arguments for iked (`--log-keys`).
    pub fn start_with(
        netns: Option<&str>,
        tag: &str,
        config_text: &str,
        extra_args: &[&str],
    ) -> Daemon {
        Daemon::start_full(netns, tag, config_text, extra_args, Duration::from_secs(10))
    }

    fn start_full(
        netns: Option<&str>,
        tag: &str,
        config_text: &str,
        extra_args: &[&str],
        timeout: Duration,
    ) -> Daemon {
        let scratch = Scratch::new(tag);
        let config = scratch.config("iked.conf", config_text);
        let socket = scratch.file("iked.sock");
        let log = scratch.file("iked.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(binary("iked"));
        command
            .arg("-d")
            .arg("-vv")
            .arg("-f")
            .arg(&config)
            .arg("-s")
            .arg(&socket)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup"))
            .stderr(log_file);
        match netns {
            None => {
                // SAFETY: unshare(2) is async-signal-safe.
                unsafe {
                    command.pre_exec(|| {
                        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                            .map_err(std::io::Error::from)
                    });
                }
            }
            Some(name) => {
                let ns = std::fs::File::open(format!("/run/netns/{name}"))
                    .unwrap_or_else(|e| panic!("network namespace {name}: {e}"));
                // SAFETY: setns(2) is async-signal-safe; the file stays open
                // until after the fork.
                unsafe {
                    command.pre_exec(move || {
                        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                            .map_err(std::io::Error::from)
                    });
                }
            }
        }
        let child = command.spawn().expect("spawn iked");
        let mut daemon = Daemon {
            child,
            config,
            socket,
            log,
            scratch,
            exited: None,
        };
        // The emulated kernel lab, sharing the host's cores with other
        // VMs, can take far longer to exec four debug binaries.
        let start_wait = if in_kernel_lab() {
            timeout.max(Duration::from_secs(60))
        } else {
            timeout
        };
        if let Err(e) = daemon.wait_for_log("started:", start_wait) {
            panic!(
                "iked did not start: {e}\n--- log ---\n{}",
                daemon.log_text()
            );
        }
        daemon
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Replaces the daemon's configuration file (for a reload), written
    /// with [`write_config`].
    pub fn rewrite_config(&self, text: &str) {
        write_config(&self.config, text);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return Err(format!("iked exited ({status}) before logging {needle:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no {needle:?} in the log within {timeout:?}"))
    }

    /// `wait_for_log`, failing the test with the reason and the log.
    pub fn expect_log(&mut self, needle: &str, timeout: Duration) {
        self.wait_for_log(needle, timeout)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log_text()));
    }

    /// Waits for the daemon to exit; None if it is still running at timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return self.exited;
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return self.exited;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn is_running(&mut self) -> bool {
        self.exited.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("kill");
    }

    /// The daemon's children by role name (ikev2, pfkey, ca).
    pub fn children(&self) -> HashMap<String, i32> {
        let mut children = HashMap::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if parent_pid(pid) != Some(self.pid()) {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if let Some(i) = args.iter().position(|a| a == "--privsep-child") {
                if let Some(role) = args.get(i + 1) {
                    children.insert(role.clone(), pid);
                }
            }
        }
        children
    }

    /// Runs ikectl against this daemon's socket.
    pub fn ikectl(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary("ikectl"))
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run ikectl")
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit; fails the
    /// test with the status and the log otherwise.
    pub fn stop_within(&mut self, timeout: Duration) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "iked still running {timeout:?} after SIGTERM\n{}",
                self.log_text()
            )
        });
        assert!(status.success(), "{status}\n{}", self.log_text());
    }

    /// SIGKILL to child `role`, then up to `timeout` for the daemon to stop
    /// on the loss, with a failure status as it must; returns the log.
    pub fn lose_child(&mut self, role: &str, timeout: Duration) -> String {
        let pid = self.children()[role];
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let status = self.wait_exit(timeout).expect("stopped");
        assert!(!status.success());
        self.log_text()
    }

    /// `ikectl`, failing the test with its stderr unless it succeeds.
    pub fn ikectl_ok(&self, args: &[&str]) -> std::process::Output {
        let out = self.ikectl(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A field of /proc/PID/status ("Uid", "CapEff", ...).
pub fn status_field(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Waits until none of `pids` (role, pid) runs any more (gone or a
/// zombie), failing with the role of one still running after `timeout`.
pub fn wait_gone(pids: &[(String, i32)], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    for (role, pid) in pids {
        while !is_gone(*pid) {
            assert!(Instant::now() < deadline, "{role} still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether process `pid` has ended (no longer there, or a zombie), from
/// one read of its status: it may end between two reads.
pub fn is_gone(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .is_some_and(|state| state.trim_start().starts_with('Z'))
}

/// A network namespace `name` of a test, new and empty: one left by an
/// earlier run is deleted first.
pub fn fresh_netns(name: &str) {
    let _ = Command::new("ip").args(["netns", "del", name]).output();
    let ok = Command::new("ip")
        .args(["netns", "add", name])
        .status()
        .expect("ip netns add");
    assert!(ok.success(), "ip netns add {name}");
}

/// `ip -n NS ARGS...` (ARGS split on whitespace): its output, failing the
/// test with ip's error when it fails.
pub fn ip_in(ns: &str, args: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args.split_whitespace())
        .output()
        .expect("ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SIGTERM to `child` (a peer daemon of a test), then up to `timeout` for
/// it to exit; whether it did.
pub fn terminate_within(child: &mut Child, timeout: Duration) -> bool {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// User and system CPU time of a process, in seconds.
pub fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no memory effects.
    let per_second = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / per_second
}

/// Inodes of the sockets a process holds.
pub fn socket_inodes(pid: i32) -> Vec<u64> {
    let mut inodes = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let target = target.to_string_lossy().into_owned();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.extend(inode.parse::<u64>().ok());
            }
        }
    }
    inodes
}

/// Socket inodes listed in /proc/PID/net/FILE whose `select` column
/// matches, with `inode_column` giving the inode (0-based, whitespace split).
pub fn net_table_inodes(
    pid: i32,
    file: &str,
    inode_column: usize,
    select: impl Fn(&[&str]) -> bool,
) -> Vec<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            if !select(&columns) {
                return None;
            }
            columns.get(inode_column)?.parse().ok()
        })
        .collect()
}

/// What one socket of a process is, read from a copy of its descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    pub fd: i32,
    pub domain: i32,
    pub socket_type: i32,
    pub protocol: i32,
    /// Local port of an IPv4/IPv6 socket.
    pub port: Option<u16>,
}

impl SocketInfo {
    /// A kernel key socket: NETLINK_XFRM or PF_KEY.
    pub fn is_kernel_key_socket(&self) -> bool {
        (self.domain == nix::libc::AF_NETLINK && self.protocol == nix::libc::NETLINK_XFRM)
            || self.domain == nix::libc::PF_KEY
    }

    pub fn is_udp(&self) -> bool {
        matches!(self.domain, nix::libc::AF_INET | nix::libc::AF_INET6)
            && self.socket_type == nix::libc::SOCK_DGRAM
    }
}

fn getsockopt_int(fd: i32, option: i32) -> i32 {
    let mut value: nix::libc::c_int = -1;
    let mut len = std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t;
    // SAFETY: value and len are valid for the duration of the call.
    unsafe {
        nix::libc::getsockopt(
            fd,
            nix::libc::SOL_SOCKET,
            option,
            (&mut value as *mut nix::libc::c_int).cast(),
            &mut len,
        );
    }
    value
}

/// Every socket process `pid` holds, examined through pidfd_getfd(2) (root
/// may take a copy of another process's descriptor). Unlike /proc/net, this
/// also sees sockets that were never bound.
pub fn sockets_of(pid: i32) -> Vec<SocketInfo> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain system calls with integer arguments; the returned
    // descriptors are owned here and closed at drop.
    let pidfd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
    {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let copy =
            unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
        assert!(
            copy >= 0,
            "pidfd_getfd({pid}, {fd}): {}",
            std::io::Error::last_os_error()
        );
        let copy = unsafe { OwnedFd::from_raw_fd(copy as i32) };
        let raw = copy.as_raw_fd();
        let domain = getsockopt_int(raw, nix::libc::SO_DOMAIN);
        let port = match domain {
            nix::libc::AF_INET | nix::libc::AF_INET6 => {
                nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(raw)
                    .ok()
                    .and_then(|a| {
                        a.as_sockaddr_in()
                            .map(|s| s.port())
                            .or_else(|| a.as_sockaddr_in6().map(|s| s.port()))
                    })
            }
            _ => None,
        };
        sockets.push(SocketInfo {
            fd,
            domain,
            socket_type: getsockopt_int(raw, nix::libc::SO_TYPE),
            protocol: getsockopt_int(raw, nix::libc::SO_PROTOCOL),
            port,
        });
    }
    sockets
}

/// Whether this process runs inside the kernel-lab VM.
pub fn in_kernel_lab() -> bool {
    std::env::var_os("IKED_KERNEL_LAB").is_some()
}

/// Serialises the VM boots of one test binary: two emulated machines on a
/// two-core host would starve each other's timers.
static KERNEL_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Boots the project's kernel lab (tests/lab/kernel-lab.sh: Debian's stock
/// kernel under qemu, with ESP) and runs `test_name` of the current test
/// binary inside it. Fails with the reason when it cannot.
pub fn run_in_kernel_lab(test_name: &str, timeout_secs: u32) {
    require_root(test_name);
    let _serial = KERNEL_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/kernel-lab.sh");
    let status = Command::new(&harness)
        .arg("setup")
        .status()
        .expect("kernel-lab.sh setup");
    assert!(status.success(), "kernel-lab.sh setup failed: {status}");
    let me = std::env::current_exe().expect("current exe");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let status = Command::new(&harness)
        .current_dir(workspace)
        .args(["run", "--timeout", &timeout_secs.to_string(), "--"])
        .arg(me)
        .args([
            "--exact",
            test_name,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .status()
        .expect("kernel-lab.sh run");
    assert!(
        status.success(),
        "{test_name} failed inside the kernel lab: {status}"
    );
}

/// The keys in iked's log (`--log-keys`, or trace level `-vv`): `key
/// LABEL HEX` lines, with labels in strongSwan's naming so that lists from
/// a peer compare directly.
pub fn iked_keys(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|line| {
            let rest = line.split_once("ikev2: key ")?.1;
            let (label, hex) = rest.rsplit_once(' ')?;
            Some((label.to_string(), hex.to_string()))
        })
        .collect()
}

/// `ikectl --json show sa` of `daemon`: its list of IKE SAs (empty when the
/// daemon gives no answer).
pub fn show_sa(daemon: &Daemon) -> Vec<serde_json::Value> {
    let out = daemon.ikectl(&["--json", "show", "sa"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["sas"].as_array().cloned().unwrap_or_default()
}

/// Like `wait_until`, checking every `poll` (short, for tests that must
/// act as soon as the kernel shows the first entry); fails with "no WHAT
/// within TIMEOUT" and `context`.
pub fn wait_for_every(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: impl FnMut() -> bool,
    context: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "no {what} within {timeout:?}\n{}",
            context()
        );
        std::thread::sleep(poll);
    }
}

/// Polls `check` until it holds; panics with `what` and `context()` after
/// `timeout`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}\n{}", context());
}

/// A process frozen by the cgroup freezer until this is dropped: it stops
/// running (and reading) as a hung process would, without the SIGSTOP that
/// its parent sees through waitpid(WUNTRACED) and treats as a lost child.
/// Uses cgroup v1's freezer where mounted, else cgroup v2's cgroup.freeze.
pub struct Frozen {
    dir: PathBuf,
    v2: bool,
}

impl Frozen {
    pub fn freeze(pid: i32, tag: &str) -> Frozen {
        let name = format!("iked-test-{tag}-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/freezer");
        let v2 = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(Path::new)
            .find(|d| d.join("cgroup.controllers").exists());
        let (dir, is_v2) = if v1.join("freezer.state").exists() {
            (v1.join(&name), false)
        } else if let Some(root) = v2 {
            (root.join(&name), true)
        } else {
            panic!("no cgroup freezer (v1 freezer or cgroup v2) is mounted: cannot freeze a child");
        };
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let frozen = Frozen { dir, v2: is_v2 };
        let procs = if frozen.v2 { "cgroup.procs" } else { "tasks" };
        std::fs::write(frozen.dir.join(procs), pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", frozen.dir.display()));
        let (file, value) = if frozen.v2 {
            ("cgroup.freeze", "1")
        } else {
            ("freezer.state", "FROZEN")
        };
        std::fs::write(frozen.dir.join(file), value)
            .unwrap_or_else(|e| panic!("freeze {}: {e}", frozen.dir.display()));
        frozen
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let (file, value) = if self.v2 {
            ("cgroup.freeze", "0")
        } else {
            ("freezer.state", "THAWED")
        };
        let _ = std::fs::write(self.dir.join(file), value);
        // The process may still be in it (or gone): move what is left back
        // to the root, then remove the group.
        let procs = if self.v2 { "cgroup.procs" } else { "tasks" };
        if let (Ok(text), Some(root)) = (
            std::fs::read_to_string(self.dir.join(procs)),
            self.dir.parent(),
        ) {
            for pid in text.split_whitespace() {
                let _ = std::fs::write(root.join(procs), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}
