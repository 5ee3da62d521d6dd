//! One user per child (iked(8), "Privilege separation"): the three
//! children run with distinct uids and gids, so none can signal, trace or
//! read another; and a child that is stopped counts as lost, so the daemon
//! fails closed as for a dead one.

use std::collections::HashSet;
use std::time::Duration;

use iked_tests::{require_root, status_field, Daemon};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The four ids of a /proc status line (real, effective, saved, fs).
fn ids(pid: i32, field: &str) -> Vec<u32> {
    status_field(pid, field)
        .split_whitespace()
        .map(|v| v.parse().expect("id"))
        .collect()
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test-all.sh"]
fn the_three_children_have_distinct_uids_and_gids() {
    require_root("the_three_children_have_distinct_uids_and_gids");
    let daemon = Daemon::start("users", "set passive\n");
    let children = daemon.children();
    assert_eq!(children.len(), 3, "{children:?}");
    let mut uids = HashSet::new();
    let mut gids = HashSet::new();
    for (role, &pid) in &children {
        let uid = ids(pid, "Uid");
        let gid = ids(pid, "Gid");
        println!("{role}: pid {pid} Uid {uid:?} Gid {gid:?}");
        assert!(
            uid.iter().all(|&u| u == uid[0] && u != 0),
            "{role}: {uid:?}"
        );
        assert!(
            gid.iter().all(|&g| g == gid[0] && g != 0),
            "{role}: {gid:?}"
        );
        assert!(
            uids.insert(uid[0]),
            "{role} shares uid {} with a sibling",
            uid[0]
        );
        assert!(
            gids.insert(gid[0]),
            "{role} shares gid {} with a sibling",
            gid[0]
        );
    }
    // What the distinct uids buy: ikev2's credentials may not signal ca or
    // pfkey. A probe child of ours takes ikev2's uid and tries.
    let ikev2_uid = ids(children["ikev2"], "Uid")[0];
    for sibling in ["ca", "pfkey"] {
        let target = children[sibling];
        // SAFETY: the forked child calls only async-signal-safe functions
        // (setresuid, kill, _exit).
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let uid = nix::unistd::Uid::from_raw(ikev2_uid);
                let code = if nix::unistd::setresuid(uid, uid, uid).is_err() {
                    3
                } else {
                    match kill(Pid::from_raw(target), None) {
                        Err(nix::Error::EPERM) => 0,
                        Ok(()) => 1,
                        Err(_) => 2,
                    }
                };
                unsafe { nix::libc::_exit(code) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).expect("wait probe");
                assert_eq!(
                    status,
                    nix::sys::wait::WaitStatus::Exited(child, 0),
                    "a process with ikev2's uid must get EPERM signalling {sibling} \
                     (1: it could, 2: other error, 3: setresuid failed)"
                );
            }
        }
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test-all.sh"]
fn a_stopped_child_makes_the_daemon_fail_closed() {
    require_root("a_stopped_child_makes_the_daemon_fail_closed");
    for role in ["ikev2", "pfkey", "ca"] {
        let mut daemon = Daemon::start(&format!("stop-{role}"), "set passive\n");
        let children = daemon.children();
        let pid = children[role];
        kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("stop child");
        let status = daemon.wait_exit(Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "iked still running 5 s after {role} was stopped\n{}",
                daemon.log_text()
            )
        });
        assert!(
            !status.success(),
            "exit must be non-zero after {role} stopped: {status}"
        );
        let log = daemon.log_text();
        assert!(
            log.contains(&format!("lost child {role}: stopped by signal 19")),
            "log must name the stopped child {role}:\n{log}"
        );
        assert!(
            log.contains("terminating after losing a child process"),
            "{log}"
        );
        // Every child is gone, the stopped one included.
        for (other, &other_pid) in &children {
            assert!(
                !std::path::Path::new(&format!("/proc/{other_pid}")).exists()
                    || iked_tests::parent_pid(other_pid) != Some(daemon.pid()),
                "{other} survived after {role} was stopped"
            );
        }
        println!("{role} stopped: daemon exited {status}");
    }
}
