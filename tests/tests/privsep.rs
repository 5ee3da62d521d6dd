//! The process architecture, observed from outside through /proc: four
//! processes, each child confined as the privilege table says, descriptors
//! only where they belong, fail-closed on a lost child, signals, reload.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use iked_tests::{
    binary, fresh_netns, net_table_inodes, require_root, socket_inodes, sockets_of, status_field,
    Daemon,
};
use nix::sys::signal::Signal;

const NETLINK_XFRM: &str = "6";
/// CAP_NET_ADMIN is capability 12.
const CAP_NET_ADMIN_MASK: &str = "0000000000001000";

/// The uid and gid of the user `role` runs as (iked(8): one per child).
fn role_user_ids(role: &str) -> (u32, u32) {
    let name = match role {
        "ikev2" => "_iked",
        "pfkey" => "_iked_pfkey",
        "ca" => "_iked_ca",
        other => panic!("no user for role {other}"),
    };
    let user = nix::unistd::User::from_name(name)
        .expect("getpwnam")
        .unwrap_or_else(|| {
            panic!("user {name} must exist (useradd --system --user-group {name}), as scripts/test-all.sh creates it")
        });
    (user.uid.as_raw(), user.gid.as_raw())
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn each_child_is_confined_as_the_privilege_table_says() {
    require_root("each_child_is_confined_as_the_privilege_table_says");
    let daemon = Daemon::start("confined", "set passive\n");
    let children = daemon.children();
    let mut roles: Vec<&str> = children.keys().map(String::as_str).collect();
    roles.sort();
    assert_eq!(
        roles,
        ["ca", "ikev2", "pfkey"],
        "four processes: the parent and three children"
    );

    for (role, &pid) in &children {
        let (uid, gid) = role_user_ids(role);
        let ids = |field| -> Vec<u32> {
            status_field(pid, field)
                .split_whitespace()
                .map(|v| v.parse().expect("id"))
                .collect()
        };
        assert_eq!(
            ids("Uid"),
            [uid; 4],
            "{role}: real, effective, saved, fs uid"
        );
        assert_eq!(
            ids("Gid"),
            [gid; 4],
            "{role}: real, effective, saved, fs gid"
        );
        assert_eq!(
            status_field(pid, "Groups"),
            "",
            "{role}: no supplementary groups"
        );
        assert_eq!(status_field(pid, "NoNewPrivs"), "1", "{role}: no_new_privs");
        let root = std::fs::read_link(format!("/proc/{pid}/root")).expect("root link");
        assert_eq!(root.to_str(), Some("/var/empty"), "{role}: chroot");
        let expected_caps = if role == "pfkey" {
            CAP_NET_ADMIN_MASK
        } else {
            "0000000000000000"
        };
        assert_eq!(
            status_field(pid, "CapEff"),
            expected_caps,
            "{role}: effective capabilities"
        );
        assert_eq!(
            status_field(pid, "CapPrm"),
            expected_caps,
            "{role}: permitted capabilities"
        );
        assert_eq!(
            status_field(pid, "CapInh"),
            "0000000000000000",
            "{role}: inheritable"
        );
        assert_eq!(
            status_field(pid, "CapAmb"),
            "0000000000000000",
            "{role}: ambient"
        );
        assert_eq!(
            status_field(pid, "CapBnd"),
            expected_caps,
            "{role}: bounding set"
        );
    }

    // Each process's sockets, examined through copies of its descriptors.
    let parent = daemon.pid();
    let mut processes = children.clone();
    processes.insert("parent".into(), parent);
    let ike_ports = [500u16, 4500];
    let mut ports_seen = Vec::new();
    for (role, &pid) in &processes {
        let sockets = sockets_of(pid);
        let kernel = sockets.iter().filter(|s| s.is_kernel_key_socket()).count();
        let udp: Vec<_> = sockets.iter().filter(|s| s.is_udp()).collect();
        if role == "pfkey" {
            assert!(
                kernel >= 1,
                "pfkey holds the kernel key socket: {sockets:?}"
            );
        } else {
            assert_eq!(
                kernel, 0,
                "{role} must not hold a kernel key socket: {sockets:?}"
            );
        }
        // Routes and source lookups: pfkey's socket, opened by the parent
        // (ikev2 asks pfkey; no child opens a socket).
        let route = sockets
            .iter()
            .filter(|s| s.domain == nix::libc::AF_NETLINK && s.protocol == nix::libc::NETLINK_ROUTE)
            .count();
        assert_eq!(
            route,
            usize::from(role == "pfkey"),
            "{role}: NETLINK_ROUTE sockets: {sockets:?}"
        );
        if role == "ikev2" {
            assert!(
                udp.iter()
                    .all(|s| s.port.is_some_and(|p| ike_ports.contains(&p))),
                "{udp:?}"
            );
            ports_seen.extend(udp.iter().filter_map(|s| s.port));
        } else {
            assert!(udp.is_empty(), "{role} must not hold a UDP socket: {udp:?}");
        }
        // Besides stdio, a child holds only sockets and its epoll instance
        // (pfkey also the signalfd on which SIGTERM makes it flush).
        if role != "parent" {
            for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .flatten()
            {
                let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
                let target = std::fs::read_link(entry.path()).unwrap();
                let target = target.to_string_lossy();
                assert!(
                    fd <= 2
                        || target.starts_with("socket:")
                        || target == "anon_inode:[eventpoll]"
                        || (role == "pfkey" && target == "anon_inode:[signalfd]"),
                    "{role} holds unexpected descriptor {fd} -> {target}"
                );
            }
        }
    }
    ports_seen.sort();
    ports_seen.dedup();
    assert_eq!(ports_seen, ike_ports, "ikev2 holds UDP 500 and 4500");

    // /proc/net agrees: every XFRM netlink or PF_KEY socket of the daemon's
    // namespace that is bound belongs to pfkey; every IKE UDP socket to ikev2.
    let inodes_of = |pid| socket_inodes(pid).into_iter().collect::<HashSet<u64>>();
    let mut kernel_listed: HashSet<u64> = net_table_inodes(parent, "netlink", 9, |c| {
        c.get(1) == Some(&NETLINK_XFRM) && c.get(2) != Some(&"0")
    })
    .into_iter()
    .collect();
    kernel_listed.extend(net_table_inodes(parent, "pfkey", 5, |_| true));
    let ike_port = |c: &[&str]| {
        c.get(1)
            .is_some_and(|a| a.ends_with(":01F4") || a.ends_with(":1194"))
    };
    let mut udp_listed: HashSet<u64> = net_table_inodes(parent, "udp", 9, ike_port)
        .into_iter()
        .collect();
    udp_listed.extend(net_table_inodes(parent, "udp6", 9, ike_port));
    assert!(!udp_listed.is_empty(), "/proc/net/udp lists the IKE ports");
    assert!(
        udp_listed.is_subset(&inodes_of(children["ikev2"])),
        "IKE UDP sockets belong to ikev2"
    );
    assert!(
        kernel_listed.is_subset(&inodes_of(children["pfkey"])),
        "bound kernel key sockets belong to pfkey"
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn losing_any_child_stops_the_daemon_and_names_the_child() {
    require_root("losing_any_child_stops_the_daemon_and_names_the_child");
    for role in ["ikev2", "pfkey", "ca"] {
        let mut daemon = Daemon::start(&format!("lose-{role}"), "set passive\n");
        let children = daemon.children();
        let pid = children[role];
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL)
            .expect("kill child");
        let status = daemon
            .wait_exit(Duration::from_secs(3))
            .unwrap_or_else(|| panic!("iked still running 3 s after {role} was killed"));
        assert!(
            !status.success(),
            "exit must be non-zero after losing {role}: {status}"
        );
        let log = daemon.log_text();
        assert!(
            log.contains(&format!("lost child {role}: killed by signal 9")),
            "log must name the lost child {role}:\n{log}"
        );
        // The other children are gone too.
        for (other, &other_pid) in &children {
            assert!(
                !std::path::Path::new(&format!("/proc/{other_pid}")).exists()
                    || iked_tests::parent_pid(other_pid) != Some(daemon.pid()),
                "{other} survived the loss of {role}"
            );
        }
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn sigterm_stops_everything_with_status_zero() {
    require_root("sigterm_stops_everything_with_status_zero");
    let mut daemon = Daemon::start("term", "set passive\n");
    assert!(
        daemon.socket.exists(),
        "control socket exists while running"
    );
    daemon.signal(Signal::SIGTERM);
    let status = daemon
        .wait_exit(Duration::from_secs(3))
        .expect("iked still running 3 s after SIGTERM");
    assert!(
        status.success(),
        "SIGTERM exit status: {status}\n{}",
        daemon.log_text()
    );
    assert!(!daemon.socket.exists(), "control socket removed at exit");
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn a_broken_config_on_sighup_keeps_the_daemon_and_the_old_config() {
    require_root("a_broken_config_on_sighup_keeps_the_daemon_and_the_old_config");
    let mut daemon = Daemon::start("hup", "set passive\n");
    daemon.rewrite_config("set passive\n# fine so far\nset sideways\n");
    let expected = format!(
        "{}:3:5: syntax error: unknown option 'set sideways'",
        daemon.config.display()
    );
    daemon.signal(Signal::SIGHUP);
    daemon.expect_log(&expected, Duration::from_secs(3));
    assert!(daemon
        .log_text()
        .contains("keeping the current configuration"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(daemon.is_running(), "iked must survive a bad reload");
    assert_eq!(daemon.children().len(), 3, "children survive a bad reload");

    // iked -n prints the same error and exits 1.
    let check = Command::new(binary("iked"))
        .arg("-n")
        .arg("-f")
        .arg(&daemon.config)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains(&expected), "iked -n said: {stderr}");

    // ikectl reload reports the same failure; a fixed file then loads.
    let reload = daemon.ikectl(&["reload"]);
    assert!(!reload.status.success());
    assert!(String::from_utf8_lossy(&reload.stderr).contains(&expected));
    daemon.rewrite_config("set active\n");
    daemon.ikectl_ok(&["reload"]);
    daemon.expect_log("initiation mode: active", Duration::from_secs(3));
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn ikectl_log_level_reaches_every_process() {
    require_root("ikectl_log_level_reaches_every_process");
    let mut daemon = Daemon::start("loglevel", "set passive\n");
    daemon.ikectl_ok(&["log", "brief"]);
    daemon
        .wait_for_log("log level set to brief", Duration::from_secs(2))
        .unwrap();
    // At brief level, a debug line of a child must not appear; after
    // `log verbose` it must. A reload makes each child log at debug level.
    let before = daemon.log_text().len();
    assert!(daemon.ikectl(&["reload"]).status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !daemon.log_text()[before..].contains("applied configuration"),
        "brief hides debug lines"
    );
    let out = daemon.ikectl(&["--json", "log", "verbose"]);
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json reply");
    assert_eq!(reply["ok"], true);
    assert!(daemon.ikectl(&["reload"]).status.success());
    for role in ["ikev2", "pfkey", "ca"] {
        daemon.expect_log(
            &format!("parent: {role} applied configuration 3"),
            Duration::from_secs(2),
        );
    }
    daemon
        .wait_for_log("ikev2: initiation mode", Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("each line names its process: {e}\n{}", daemon.log_text()));
}

/// Sends raw bytes on a copy of descriptor `fd` of process `pid`.
fn send_garbage_from(pid: i32, fd: i32, bytes: &[u8]) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain system calls; the descriptors are owned here.
    let pidfd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    assert!(pidfd >= 0, "pidfd_open");
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let copy = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    assert!(copy >= 0, "pidfd_getfd");
    let copy = unsafe { OwnedFd::from_raw_fd(copy as i32) };
    nix::sys::socket::send(copy.as_raw_fd(), bytes, nix::sys::socket::MsgFlags::empty())
        .expect("send");
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn a_malformed_ipc_message_stops_the_receiver_and_the_daemon() {
    require_root("a_malformed_ipc_message_stops_the_receiver_and_the_daemon");
    // ca's descriptor 3 is its channel to the parent: garbage there reaches
    // the parent, which must refuse to guess and stop.
    let mut daemon = Daemon::start("garbage-parent", "set passive\n");
    let ca = daemon.children()["ca"];
    send_garbage_from(ca, 3, &[0xff, 0xfe, 0xfd]);
    let status = daemon
        .wait_exit(Duration::from_secs(3))
        .expect("iked still running");
    assert!(!status.success());
    let log = daemon.log_text();
    assert!(
        log.contains("parent: ca channel: malformed message"),
        "{log}"
    );

    // ca's other socket is its channel to ikev2: garbage there reaches ikev2,
    // which logs it and exits non-zero, and the daemon follows.
    let mut daemon = Daemon::start("garbage-ikev2", "set passive\n");
    let ca = daemon.children()["ca"];
    let sibling = sockets_of(ca)
        .into_iter()
        .find(|s| s.fd != 3 && s.domain == nix::libc::AF_UNIX)
        .expect("ca's channel to ikev2");
    send_garbage_from(ca, sibling.fd, &[0x7f; 5]);
    let status = daemon
        .wait_exit(Duration::from_secs(3))
        .expect("iked still running");
    assert!(!status.success());
    let log = daemon.log_text();
    assert!(
        log.contains("ikev2: ca channel: malformed message"),
        "{log}"
    );
    assert!(
        log.contains("lost child ikev2: exited with status 1"),
        "{log}"
    );
}

fn xfrm_policies(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "xfrm", "policy", "list"])
        .output()
        .expect("ip xfrm");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What iked put in the kernel goes when it stops, orderly or not; what
/// others put there stays. Losing pfkey must not leave policies behind that
/// nobody manages: the parent flushes them itself.
#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn our_kernel_entries_are_flushed_on_stop_and_when_pfkey_is_lost() {
    require_root("our_kernel_entries_are_flushed_on_stop_and_when_pfkey_is_lost");
    for how in ["sigterm", "lose-pfkey"] {
        let ns = format!("iked-flush-{how}");
        fresh_netns(&ns);
        // Another program's policy, which must survive us.
        let foreign = Command::new("ip")
            .args([
                "-n",
                &ns,
                "xfrm",
                "policy",
                "add",
                "src",
                "192.0.2.0/24",
                "dst",
                "198.51.100.0/24",
                "dir",
                "out",
            ])
            .status()
            .unwrap();
        assert!(foreign.success());
        // An active policy gets its outbound trap policy at start.
        let config = "set passive\nikev2 \"t\" active esp from 10.1.0.0/24 to 10.2.0.0/24 \
                      local 198.18.0.1 peer 198.18.0.2 psk \"k\"\n";
        let mut daemon = Daemon::start_in(Some(&ns), &format!("flush-{how}"), config);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !xfrm_policies(&ns).contains("src 10.1.0.0/24 dst 10.2.0.0/24") {
            assert!(
                std::time::Instant::now() < deadline,
                "no trap policy:\n{}\n{}",
                xfrm_policies(&ns),
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if how == "sigterm" {
            daemon.stop_within(Duration::from_secs(3));
        } else {
            let log = daemon.lose_child("pfkey", Duration::from_secs(3));
            assert!(
                log.contains("flushing 1 kernel entries left by pfkey"),
                "{log}"
            );
        }
        let left = xfrm_policies(&ns);
        assert!(
            !left.contains("10.1.0.0/24"),
            "{how}: our policy is still in the kernel:\n{left}"
        );
        assert!(
            left.contains("src 192.0.2.0/24 dst 198.51.100.0/24"),
            "{how}: the foreign policy went:\n{left}"
        );
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    }
}

/// Children exit when the parent's channel closes, and pfkey removes what
/// it installed on its way out: nothing is left running or in the kernel.
#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn children_exit_and_flush_when_the_parent_is_killed() {
    require_root("children_exit_and_flush_when_the_parent_is_killed");
    let ns = "iked-orphans";
    fresh_netns(ns);
    let config = "set passive\nikev2 \"t\" active esp from 10.1.0.0/24 to 10.2.0.0/24 \
                  local 198.18.0.1 peer 198.18.0.2 psk \"k\"\n";
    let mut daemon = Daemon::start_in(Some(ns), "orphans", config);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !xfrm_policies(ns).contains("src 10.1.0.0/24 dst 10.2.0.0/24") {
        assert!(
            std::time::Instant::now() < deadline,
            "no trap policy:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let children = daemon.children();
    daemon.signal(Signal::SIGKILL);
    assert!(daemon.wait_exit(Duration::from_secs(3)).is_some());
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    for (role, pid) in &children {
        while std::path::Path::new(&format!("/proc/{pid}")).exists()
            && status_field(*pid, "State").starts_with(|c| c != 'Z')
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{role} outlived its parent by 3 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let left = xfrm_policies(ns);
    assert!(
        !left.contains("10.1.0.0/24"),
        "pfkey left our policy behind:\n{left}"
    );
    assert!(
        daemon.log_text().contains("pfkey: parent went away"),
        "{}",
        daemon.log_text()
    );
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}
