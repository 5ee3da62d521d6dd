//! The control socket under hostile local load (issue 10): a client that
//! sends and never reads, a thousand idle clients, clients that are neither
//! root nor in `set control_group`. Throughout, `ikectl show sa` must be
//! answered within [`ANSWER_BOUND`] and the loss of a child must still stop
//! the daemon within [`STOP_BOUND`]: the root parent never waits on a client.
//!
//! The numbers asserted follow parent/src/control.rs: at most 128 clients,
//! a newcomer beyond that closes the longest idle one; a client with more
//! than 8 replies unread is dropped, logged once.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iked_common::ipc::channel::{decode_single_frame, encode_frames};
use iked_common::ipc::{ControlCommand, ControlReply, ControlRequest, Verbosity, IPC_VERSION};
use iked_tests::{binary, require_root, Daemon};
use nix::sys::signal::Signal;
use nix::sys::socket::{
    connect, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use nix::unistd::{Gid, Pid, Uid};

/// The bound for an answer to `ikectl show sa` under load.
const ANSWER_BOUND: Duration = Duration::from_secs(2);
/// The bound for the daemon to stop after losing a child.
const STOP_BOUND: Duration = Duration::from_secs(3);
/// parent/src/control.rs MAX_CLIENTS.
const MAX_CLIENTS: usize = 128;
/// Requests each flooder sends in all, over as many connections as it takes.
const FLOOD_REQUESTS: usize = 10_000;
/// Idle clients connected at once.
const IDLE_CLIENTS: usize = 1000;
/// Any one blocking socket call of a test client.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// One test at a time: their bounds are about the daemon, not about three
/// daemons sharing two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A raw control client, blocking with [`CLIENT_TIMEOUT`] on each call.
fn raw_client(path: &Path) -> Result<OwnedFd, nix::Error> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let timeout = nix::sys::time::TimeVal::new(CLIENT_TIMEOUT.as_secs() as i64, 0);
    setsockopt(&fd, sockopt::SendTimeout, &timeout)?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

/// `ikectl show sa`, timed; it must succeed.
fn timed_show_sa(daemon: &Daemon) -> Duration {
    let started = Instant::now();
    let out = daemon.ikectl(&["show", "sa"]);
    let took = started.elapsed();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("no IKE SAs"),
        "ikectl show sa failed after {took:?}: {}{}\n--- log ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        daemon.log_text()
    );
    took
}

/// Kills ikev2 with SIGKILL; the daemon must stop within [`STOP_BOUND`],
/// failing. Returns how long it took.
fn kill_ikev2_and_wait_for_the_stop(daemon: &mut Daemon) -> Duration {
    let ikev2 = daemon.children()["ikev2"];
    let started = Instant::now();
    nix::sys::signal::kill(Pid::from_raw(ikev2), Signal::SIGKILL).expect("kill ikev2");
    let status = daemon.wait_exit(STOP_BOUND).unwrap_or_else(|| {
        panic!(
            "iked still running {STOP_BOUND:?} after ikev2 was killed\n{}",
            daemon.log_text()
        )
    });
    let took = started.elapsed();
    assert!(!status.success(), "exit after losing ikev2: {status}");
    assert!(daemon
        .log_text()
        .contains("lost child ikev2: killed by signal 9"));
    took
}

/// What a flooder did.
#[derive(Debug, Default)]
struct Flood {
    sent: usize,
    /// Connections the daemon closed under the flooder.
    dropped: usize,
    /// Requests sent on each dropped connection before it was closed.
    per_connection: Vec<usize>,
}

/// Sends `request` over and over, never reading, reconnecting each time
/// the daemon drops it, until `FLOOD_REQUESTS` are sent and `enough` is
/// set, or `stop` is. A send that blocks for [`CLIENT_TIMEOUT`] fails the
/// test: the daemon must drop a client that does not read, not stop
/// reading it forever. Once `dying` is set (the daemon is about to be
/// stopped), a failure to connect ends the flood.
fn flood(
    path: &Path,
    request: &ControlRequest,
    enough: &AtomicBool,
    stop: &AtomicBool,
    dying: &AtomicBool,
) -> Flood {
    let bytes = one_record(request);
    let mut flood = Flood::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    'connections: while !stop.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "flood did not end: {flood:?}");
        let fd = match raw_client(path) {
            Ok(fd) => fd,
            Err(_) if dying.load(Ordering::Relaxed) => break,
            Err(e) => panic!("flooder cannot connect: {e}"),
        };
        let mut on_this = 0;
        loop {
            if stop.load(Ordering::Relaxed)
                || (flood.sent >= FLOOD_REQUESTS && enough.load(Ordering::Relaxed))
            {
                break 'connections;
            }
            match send(fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => {
                    flood.sent += 1;
                    on_this += 1;
                }
                Err(nix::Error::EPIPE | nix::Error::ECONNRESET) => {
                    flood.dropped += 1;
                    flood.per_connection.push(on_this);
                    break;
                }
                Err(nix::Error::EAGAIN) if !stop.load(Ordering::Relaxed) => panic!(
                    "a send blocked {CLIENT_TIMEOUT:?}: the daemon neither read nor \
                     dropped a client ({on_this} sent on it)"
                ),
                Err(e) => panic!("flooder send: {e}"),
            }
        }
    }
    flood
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn clients_that_never_read_are_dropped_and_the_parent_keeps_answering_and_failing_closed() {
    require_root("clients_that_never_read_are_dropped_and_the_parent_keeps_answering");
    let _serial = serial();
    let mut daemon = Daemon::start("ctl-flood", "set passive\n");
    let socket = daemon.socket.clone();
    let requests = [
        ("show sa", ControlRequest::Ikev2(ControlCommand::ShowSa)),
        (
            "hello",
            ControlRequest::Hello {
                version: IPC_VERSION,
            },
        ),
    ];

    // Phase 1: each flooder sends its 10,000 requests and more, until the
    // probes below are done; ikectl must be answered meanwhile.
    let enough = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let dying = Arc::new(AtomicBool::new(false));
    let start_flooders = || -> Vec<_> {
        requests
            .iter()
            .cloned()
            .map(|(name, request)| {
                let (socket, enough, stop, dying) =
                    (socket.clone(), enough.clone(), stop.clone(), dying.clone());
                (
                    name,
                    std::thread::spawn(move || flood(&socket, &request, &enough, &stop, &dying)),
                )
            })
            .collect()
    };
    let flooders = start_flooders();
    let started = Instant::now();
    let mut probes = Vec::new();
    while probes.len() < 20 {
        probes.push(timed_show_sa(&daemon));
    }
    enough.store(true, Ordering::Relaxed);
    let mut drops = 0;
    for (name, flooder) in flooders {
        let flood = flooder.join().expect("flooder");
        println!(
            "flooder ({name}): {} requests sent without reading, {} connections dropped, \
             requests per dropped connection min {:?} max {:?}",
            flood.sent,
            flood.dropped,
            flood.per_connection.iter().min(),
            flood.per_connection.iter().max()
        );
        assert!(flood.sent >= FLOOD_REQUESTS);
        assert!(flood.dropped >= 1, "a client that never reads is dropped");
        assert!(flood.per_connection.iter().all(|&n| n < FLOOD_REQUESTS));
        drops += flood.dropped;
    }
    let flood_time = started.elapsed();
    let slowest = probes.iter().max().copied().unwrap_or_default();
    println!(
        "during {flood_time:?} of flooding: {} ikectl show sa answered, slowest {slowest:?}",
        probes.len()
    );
    assert!(slowest <= ANSWER_BOUND, "ikectl show sa took {slowest:?}");
    // Each dropped client is logged once. A flooder's last connection may
    // be dropped after the flooder stopped counting: at most one each.
    let logged = dropped_clients(&daemon);
    let mut distinct = logged.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        logged.len(),
        "a client logged twice: {logged:?}"
    );
    assert!(
        (drops..=drops + requests.len()).contains(&logged.len()),
        "{} drops logged, {drops} seen by the flooders",
        logged.len()
    );
    assert!(daemon.is_running());

    // Phase 2: flooding again, ikev2 is killed: the parent notices at once.
    enough.store(false, Ordering::Relaxed);
    let flooders = start_flooders();
    let drops_before = dropped_clients(&daemon).len();
    wait_until_log_count(&daemon, "bytes) unread", drops_before + 2);
    dying.store(true, Ordering::Relaxed);
    let took = kill_ikev2_and_wait_for_the_stop(&mut daemon);
    println!("ikev2 killed during the flood: iked stopped in {took:?}");
    stop.store(true, Ordering::Relaxed);
    for (name, flooder) in flooders {
        let flood = flooder.join().expect("flooder");
        println!(
            "flooder ({name}) during the kill: {} requests sent, {} connections dropped",
            flood.sent, flood.dropped
        );
    }
}

/// The ids of the control clients the log says were dropped for not
/// reading ("control client N (uid U pid P): K replies (B bytes) unread").
fn dropped_clients(daemon: &Daemon) -> Vec<u64> {
    daemon
        .log_text()
        .lines()
        .filter(|line| line.contains("bytes) unread"))
        .filter_map(|line| {
            let after = &line[line.find("control client ")? + "control client ".len()..];
            after[..after.find(' ')?].parse().ok()
        })
        .collect()
}

/// Waits (at most 10 s) until `needle` is in the log `count` times.
fn wait_until_log_count(daemon: &Daemon, needle: &str, count: usize) {
    iked_tests::wait_until(
        &format!("{count} log lines with {needle:?}"),
        Duration::from_secs(10),
        || daemon.log_text().matches(needle).count() >= count,
        || daemon.log_text(),
    );
}

/// What an idle client sees on its socket.
#[derive(Debug, PartialEq)]
enum Seen {
    Nothing,
    Closed(String),
}

fn look(fd: &OwnedFd) -> Seen {
    let mut buf = vec![0u8; 4096];
    match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
        Err(nix::Error::EAGAIN) => Seen::Nothing,
        Ok(0) | Err(nix::Error::ECONNRESET) => Seen::Closed("(no message)".into()),
        Ok(n) => match decode_single_frame::<ControlReply>(&buf[..n]) {
            Ok(ControlReply::Failed(message)) => Seen::Closed(message),
            other => panic!("unexpected reply to an idle client: {other:?}"),
        },
        Err(e) => panic!("recv: {e}"),
    }
}

fn raise_descriptor_limit(to: u64) {
    let mut limit = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(
            nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut limit),
            0
        );
        if limit.rlim_cur < to {
            limit.rlim_cur = to;
            limit.rlim_max = limit.rlim_max.max(to);
            assert_eq!(
                nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &limit),
                0,
                "setrlimit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn a_thousand_idle_clients_neither_lock_out_ikectl_nor_delay_failing_closed() {
    require_root("a_thousand_idle_clients_neither_lock_out_ikectl_nor_delay_failing_closed");
    let _serial = serial();
    raise_descriptor_limit(IDLE_CLIENTS as u64 + 1024);
    let mut daemon = Daemon::start("ctl-idle", "set passive\n");
    let started = Instant::now();
    let clients: Vec<OwnedFd> = (0..IDLE_CLIENTS)
        .map(|i| raw_client(&daemon.socket).unwrap_or_else(|e| panic!("idle client {i}: {e}")))
        .collect();
    println!(
        "{IDLE_CLIENTS} idle clients connected in {:?}",
        started.elapsed()
    );
    // Every connection is accepted; past 128, each newcomer closes the
    // longest idle client, with a message saying so.
    let evicted = IDLE_CLIENTS - MAX_CLIENTS;
    let mut seen: Vec<Seen> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        seen = clients
            .iter()
            .zip(
                seen.into_iter()
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None)),
            )
            .map(|(fd, before)| match before {
                Some(closed @ Seen::Closed(_)) => closed,
                _ => look(fd),
            })
            .collect();
        let closed = seen.iter().filter(|s| **s != Seen::Nothing).count();
        if closed >= evicted || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let open: Vec<usize> = (0..IDLE_CLIENTS)
        .filter(|&i| seen[i] == Seen::Nothing)
        .collect();
    println!(
        "accepted {IDLE_CLIENTS}, closed as longest idle {}, still open {}",
        IDLE_CLIENTS - open.len(),
        open.len()
    );
    assert_eq!(
        open,
        (evicted..IDLE_CLIENTS).collect::<Vec<_>>(),
        "the newest {MAX_CLIENTS} stay"
    );
    for (i, s) in seen.iter().enumerate().take(evicted) {
        match s {
            Seen::Closed(m) => assert!(m.contains("idle the longest"), "client {i}: {m}"),
            Seen::Nothing => unreachable!(),
        }
    }

    // The table is full of idle clients: ikectl still gets in, in time.
    let probes: Vec<Duration> = (0..5).map(|_| timed_show_sa(&daemon)).collect();
    let slowest = probes.iter().max().copied().unwrap_or_default();
    println!("with {MAX_CLIENTS} idle clients: 5 ikectl show sa answered, slowest {slowest:?}");
    assert!(slowest <= ANSWER_BOUND, "ikectl show sa took {slowest:?}");
    // The first probe made room by closing the oldest idle client; a later
    // one may have come before the parent saw the previous one leave, and
    // closed the next oldest.
    let after: Vec<bool> = open
        .iter()
        .map(|&i| look(&clients[i]) == Seen::Nothing)
        .collect();
    let still_open = after.iter().filter(|&&o| o).count();
    println!("after the probes, {still_open} of the {MAX_CLIENTS} idle clients are open");
    assert!((MAX_CLIENTS - 5..MAX_CLIENTS).contains(&still_open));
    assert!(
        after[..MAX_CLIENTS - still_open].iter().all(|&o| !o),
        "the oldest went first"
    );

    let took = kill_ikev2_and_wait_for_the_stop(&mut daemon);
    println!("ikev2 killed with {still_open} idle clients connected: iked stopped in {took:?}");
}

/// A group that exists for the length of a test.
struct TemporaryGroup {
    name: String,
    gid: Gid,
}

impl TemporaryGroup {
    fn create() -> TemporaryGroup {
        let name = format!("ikedctl{}", std::process::id() % 100_000);
        let _ = Command::new("groupdel").arg(&name).output();
        let out = Command::new("groupadd")
            .arg(&name)
            .output()
            .expect("run groupadd");
        assert!(
            out.status.success(),
            "groupadd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let gid = nix::unistd::Group::from_name(&name)
            .expect("getgrnam")
            .expect("the group just added")
            .gid;
        TemporaryGroup { name, gid }
    }
}

impl Drop for TemporaryGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

/// ikectl `args` run as uid nobody with primary group `gid` and
/// supplementary `groups`; its pid and output.
fn ikectl_as(daemon: &Daemon, gid: u32, groups: &[u32], args: &[&str]) -> (u32, Output) {
    let groups: Vec<Gid> = groups.iter().map(|&g| Gid::from_raw(g)).collect();
    let mut command = Command::new(binary("ikectl"));
    command
        .arg("-s")
        .arg(&daemon.socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setgroups, setresgid and setresuid are system calls, safe
    // between fork and exec; `groups` was allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            let gid = Gid::from_raw(gid);
            let uid = Uid::from_raw(NOBODY);
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setresgid(gid, gid, gid)?;
            nix::unistd::setresuid(uid, uid, uid)?;
            Ok(())
        });
    }
    let child = command.spawn().expect("spawn ikectl");
    let pid = child.id();
    (pid, child.wait_with_output().expect("ikectl output"))
}

/// A process running as nobody (primary group nogroup, supplementary
/// `groups`) with a raw connection to the control socket: it sends each of
/// `requests` and writes each reply on the pipe returned, as a 4-byte length
/// and the datagram; with `linger`, it then waits for one more datagram
/// from the daemon and writes that too. It exits when done or on an error.
fn nobody_client(
    path: &Path,
    groups: &[u32],
    requests: &[ControlRequest],
    linger: bool,
) -> (Pid, std::fs::File) {
    let requests: Vec<Vec<u8>> = requests.iter().map(one_record).collect();
    let address = UnixAddr::new(path).unwrap();
    let groups: Vec<Gid> = groups.iter().map(|&g| Gid::from_raw(g)).collect();
    let (read, write) = nix::unistd::pipe().expect("pipe");
    // SAFETY: the child makes system calls only, on memory prepared before
    // the fork, and leaves with _exit.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let mut buf = [0u8; 4096];
            let pass_on = |n: usize, buf: &[u8]| -> Result<(), nix::Error> {
                nix::unistd::write(&write, &(n as u32).to_le_bytes())?;
                nix::unistd::write(&write, &buf[..n])?;
                Ok(())
            };
            let mut run = || -> Result<(), nix::Error> {
                let (uid, gid) = (Uid::from_raw(NOBODY), Gid::from_raw(NOGROUP));
                nix::unistd::setgroups(&groups)?;
                nix::unistd::setresgid(gid, gid, gid)?;
                nix::unistd::setresuid(uid, uid, uid)?;
                let fd = socket(
                    AddressFamily::Unix,
                    SockType::SeqPacket,
                    SockFlag::SOCK_CLOEXEC,
                    None,
                )?;
                let timeout = nix::sys::time::TimeVal::new(10, 0);
                setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
                connect(fd.as_raw_fd(), &address)?;
                for request in &requests {
                    send(fd.as_raw_fd(), request, MsgFlags::empty())?;
                    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
                    pass_on(n, &buf)?;
                }
                if linger {
                    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
                    pass_on(n, &buf)?;
                }
                Ok(())
            };
            let code = if run().is_ok() { 0 } else { 1 };
            // SAFETY: leaves the child without running the parent's
            // destructors or atexit handlers.
            unsafe { nix::libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(write);
            (child, std::fs::File::from(read))
        }
    }
}

/// The next reply a [`nobody_client`] passed on; None at its end.
fn next_reply(pipe: &mut std::fs::File) -> Option<ControlReply> {
    let mut len = [0u8; 4];
    pipe.read_exact(&mut len).ok()?;
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    pipe.read_exact(&mut bytes).ok()?;
    Some(decode_single_frame(&bytes).expect("a reply of the daemon decodes"))
}

/// A request as the one record ikectl sends (IPC framing); every reply
/// these tests read is small enough to come in one record too.
fn one_record(request: &ControlRequest) -> Vec<u8> {
    let mut frames = encode_frames(request).unwrap();
    assert_eq!(frames.len(), 1, "a control request fits one frame");
    frames.remove(0)
}

fn hello() -> ControlRequest {
    ControlRequest::Hello {
        version: IPC_VERSION,
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Owner, group and permission bits of the socket file.
fn access(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::metadata(path).expect("socket file");
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

fn reload(daemon: &mut Daemon, config: &str, generation: u32) {
    daemon.rewrite_config(config);
    daemon.signal(Signal::SIGHUP);
    daemon
        .wait_for_log(
            &format!("configuration {generation} loaded"),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("reload: {e}\n{}", daemon.log_text()));
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn only_root_and_the_control_group_may_use_the_control_socket() {
    require_root("only_root_and_the_control_group_may_use_the_control_socket");
    let _serial = serial();
    let group = TemporaryGroup::create();
    let gid = group.gid.as_raw();
    let mut daemon = Daemon::start("ctl-perm", "set passive\n");
    let show = ["show", "sa"];

    // Without control_group: root only, by the file and by the check.
    assert_eq!(access(&daemon.socket), (0, 0, 0o600));
    let (_, out) = ikectl_as(&daemon, NOGROUP, &[], &show);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    // Even with the file opened to all, SO_PEERCRED keeps nobody out.
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (pid, out) = ikectl_as(&daemon, NOGROUP, &[gid], &show);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "permission denied: uid {NOBODY} is not root, and no control_group is set"
        )),
        "{}",
        stderr(&out)
    );
    daemon.expect_log(
        &format!("refused uid {NOBODY} pid {pid}:"),
        Duration::from_secs(2),
    );
    println!("refused without control_group: {}", stderr(&out).trim());

    // With control_group: the file is root:GROUP 0660 and members get in,
    // by their primary or a supplementary group.
    let with_group = format!("set passive\nset control_group \"{}\"\n", group.name);
    reload(&mut daemon, &with_group, 2);
    assert_eq!(access(&daemon.socket), (0, gid, 0o660));
    for (primary, supplementary) in [(NOGROUP, vec![gid]), (gid, vec![])] {
        let (_, out) = ikectl_as(&daemon, primary, &supplementary, &show);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("no IKE SAs"),
            "member (gid {primary}, groups {supplementary:?}) refused: {}",
            stderr(&out)
        );
    }
    let (_, out) = ikectl_as(&daemon, NOGROUP, &[], &show);
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (pid, out) = ikectl_as(&daemon, NOGROUP, &[], &show);
    let expected = format!(
        "permission denied: uid {NOBODY} is neither root nor in group {}",
        group.name
    );
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    daemon.expect_log(
        &format!("refused uid {NOBODY} pid {pid}:"),
        Duration::from_secs(2),
    );
    println!("refused a non-member: {}", stderr(&out).trim());

    // A reload naming a group that does not exist fails and changes nothing.
    daemon.rewrite_config("set passive\nset control_group \"no-such-group-here\"\n");
    let out = daemon.ikectl(&["reload"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("\"no-such-group-here\": no such group"),
        "{}",
        stderr(&out)
    );
    let (_, out) = ikectl_as(&daemon, NOGROUP, &[gid], &show);
    assert!(out.status.success(), "{}", stderr(&out));

    // A member may change the log level, but not to debug, which may log
    // keys: that is root's.
    let (member, mut replies) = nobody_client(
        &daemon.socket,
        &[gid],
        &[
            hello(),
            ControlRequest::SetVerbosity(Verbosity::Debug),
            ControlRequest::SetVerbosity(Verbosity::Verbose),
        ],
        false,
    );
    assert_eq!(
        next_reply(&mut replies),
        Some(ControlReply::Hello {
            version: IPC_VERSION
        })
    );
    assert_eq!(
        next_reply(&mut replies),
        Some(ControlReply::Failed(
            "debug logging is for root only".into()
        ))
    );
    assert_eq!(
        next_reply(&mut replies),
        Some(ControlReply::Done("logging verbose".into()))
    );
    assert_eq!(
        nix::sys::wait::waitpid(member, None).expect("waitpid"),
        nix::sys::wait::WaitStatus::Exited(member, 0)
    );

    // Back to root only: a member still connected is closed, told why.
    let (member, mut replies) = nobody_client(&daemon.socket, &[gid], &[hello()], true);
    assert!(
        matches!(next_reply(&mut replies), Some(ControlReply::Hello { .. })),
        "a member is admitted"
    );
    reload(&mut daemon, "set passive\n", 3);
    match next_reply(&mut replies) {
        Some(ControlReply::Failed(m)) => assert!(
            m.contains(&format!("permission denied: uid {NOBODY} is not root")),
            "{m}"
        ),
        other => panic!("a member connected across the reload got {other:?}"),
    }
    assert_eq!(
        nix::sys::wait::waitpid(member, None).expect("waitpid"),
        nix::sys::wait::WaitStatus::Exited(member, 0)
    );
    assert_eq!(access(&daemon.socket), (0, 0, 0o600));
    let (_, out) = ikectl_as(&daemon, NOGROUP, &[gid], &show);
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(timed_show_sa(&daemon) <= ANSWER_BOUND);
    drop(daemon);

    // At start, an unknown group stops iked with a clear error.
    let scratch = iked_tests::Scratch::new("ctl-nogroup");
    let config = scratch.config("iked.conf", "set control_group \"no-such-group-here\"\n");
    let mut command = scratch.iked_command(&config);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: unshare(2) is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    let mut child = command.spawn().expect("spawn iked");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "iked started with an unknown group"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("iked output");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("control_group \"no-such-group-here\": no such group"),
        "{}",
        stderr(&out)
    );
    assert!(!scratch.file("iked.sock").exists());
}
