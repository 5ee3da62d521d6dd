//! The children's sandboxes seen from outside: every child of a running
//! daemon is under a seccomp filter, and the probe (tests/src/bin/
//! sandbox-probe.rs, confined by the daemon's own `confine`) finds every
//! forbidden attempt refused or killed, in each role's sandbox, as the
//! role's list in common/src/privileges/syscalls.rs says.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use iked_common::ipc::Role;
use iked_tests::{binary, require_root, status_field, Daemon, Scratch};

const ROLES: [Role; 3] = [Role::Ikev2, Role::Pfkey, Role::Ca];

const ATTEMPTS: [&str; 13] = [
    "open-shadow",
    "open-key",
    "write-tmp",
    "socket-inet-dgram",
    "route-source",
    "socket-inet-stream",
    "socket-netlink",
    "socket-packet",
    "socket-unix",
    "tcp-connect",
    "ptrace-sibling",
    "kill-sibling",
    "execve",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Killed by the seccomp filter (SIGSYS).
    Killed,
    /// The call failed with this errno name.
    Refused(String),
    Allowed,
}

/// A chroot for the probe with what it will try to reach: a fake shadow
/// file and a key (root, 0600), and a world-writable tmp/ (1777), so that
/// only the sandbox, not an empty chroot, can stop the attempts.
fn probe_root() -> Scratch {
    let root = Scratch::new("sbx-probe");
    std::fs::set_permissions(&root.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(root.file("etc")).unwrap();
    for (path, text) in [("etc/shadow", "root:*:1::::::\n"), ("key", "not a key\n")] {
        std::fs::write(root.file(path), text).unwrap();
        std::fs::set_permissions(root.file(path), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::create_dir(root.file("tmp")).unwrap();
    std::fs::set_permissions(root.file("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    root
}

fn run_probe(role: Role, attempt: &str, root: &Scratch, sibling: i32, mode: &[&str]) -> Output {
    Command::new(binary("sandbox-probe"))
        .arg(role.name())
        .arg(attempt)
        .arg(&root.0)
        .arg(sibling.to_string())
        .args(mode)
        .output()
        .expect("run sandbox-probe")
}

fn outcome(output: &Output) -> Outcome {
    let stderr = String::from_utf8_lossy(&output.stderr);
    match (output.status.code(), output.status.signal()) {
        (_, Some(signal)) if signal == nix::libc::SIGSYS => Outcome::Killed,
        (Some(0), _) => Outcome::Allowed,
        (Some(3), _) => Outcome::Refused(
            stderr
                .lines()
                .find_map(|l| l.strip_prefix("outcome: refused: "))
                .unwrap_or("?")
                .to_string(),
        ),
        _ => panic!("the probe failed: {:?}\n{stderr}", output.status),
    }
}

/// A sibling: a probe confined as `role` waiting in its event loop, under
/// the same uid as every other child.
struct Sibling(Child);

impl Sibling {
    fn start(role: Role, root: &Scratch) -> Sibling {
        let child = Command::new(binary("sandbox-probe"))
            .arg(role.name())
            .arg("idle")
            .arg(&root.0)
            .stderr(Stdio::null())
            .spawn()
            .expect("start the sibling probe");
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while status_field(pid, "Seccomp") != "2" {
            assert!(
                Instant::now() < deadline,
                "the sibling never confined itself"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sibling(child)
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn is_alive(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs root (privilege drop, chroot): run by .ci/run"]
fn every_forbidden_attempt_is_killed_in_each_role_sandbox() {
    require_root("every_forbidden_attempt_is_killed_in_each_role_sandbox");
    let root = probe_root();
    let mut failures = Vec::new();
    for role in ROLES {
        // A sibling of another role, as the real children are to each other.
        let sibling_role = if role == Role::Ca {
            Role::Pfkey
        } else {
            Role::Ca
        };
        let mut sibling = Sibling::start(sibling_role, &root);
        for attempt in ATTEMPTS {
            let output = run_probe(role, attempt, &root, sibling.pid(), &[]);
            let seen = outcome(&output);
            // No role's list allows any of these attempts: each one kills.
            let expected = Outcome::Killed;
            println!("{role:5} {attempt:20} {seen:?}");
            if seen != expected {
                failures.push(format!("{role} {attempt}: {seen:?}, expected {expected:?}"));
            }
        }
        assert!(sibling.is_alive(), "{role}'s probe signalled its sibling");
    }
    assert!(!root.file("tmp/probe").exists(), "a probe wrote under /tmp");
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The control case: with privileges dropped but no Landlock and no filter,
/// the same probe gets through where only the sandbox can stop it; so the
/// kills above are the sandbox's doing, not the probe's.
#[test]
#[ignore = "needs root (privilege drop, chroot): run by .ci/run"]
fn without_the_sandbox_the_probe_gets_through() {
    require_root("without_the_sandbox_the_probe_gets_through");
    let root = probe_root();
    let mut sibling = Sibling::start(Role::Ca, &root);
    for attempt in [
        "write-tmp",
        "socket-unix",
        "socket-inet-stream",
        "socket-netlink",
    ] {
        let output = run_probe(
            Role::Ikev2,
            attempt,
            &root,
            sibling.pid(),
            &["--no-sandbox"],
        );
        assert_eq!(outcome(&output), Outcome::Allowed, "{attempt}");
    }
    assert!(root.file("tmp/probe").exists());
    let output = run_probe(
        Role::Ikev2,
        "kill-sibling",
        &root,
        sibling.pid(),
        &["--no-sandbox"],
    );
    assert_eq!(outcome(&output), Outcome::Allowed, "same uid: kill works");
    let deadline = Instant::now() + Duration::from_secs(5);
    while sibling.is_alive() {
        assert!(Instant::now() < deadline, "the sibling survived SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Landlock on its own (the filter only logs, so the calls reach the
/// kernel): no file system access, and, on kernels with Landlock ABI 4 and
/// 6, no TCP connect and no signal to a process outside the sandbox.
#[test]
#[ignore = "needs root (privilege drop, chroot): run by .ci/run"]
fn landlock_alone_refuses_files_tcp_and_signals() {
    require_root("landlock_alone_refuses_files_tcp_and_signals");
    let root = probe_root();
    let mut sibling = Sibling::start(Role::Ca, &root);
    for role in ROLES {
        let output = run_probe(role, "write-tmp", &root, sibling.pid(), &["--seccomp-log"]);
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        println!("{role}: {}", stderr.lines().next().unwrap_or(""));
        assert!(
            !stderr.contains("not enabled") && !stderr.contains("not built"),
            "this kernel has no Landlock: {stderr}"
        );
        assert_eq!(
            outcome(&output),
            Outcome::Refused("EACCES".into()),
            "{role} write-tmp: {stderr}"
        );
        if stderr.contains("fully enforced") {
            for attempt in ["tcp-connect", "kill-sibling"] {
                let output = run_probe(role, attempt, &root, sibling.pid(), &["--seccomp-log"]);
                let seen = outcome(&output);
                println!("{role}: {attempt}: {seen:?}");
                assert!(
                    matches!(&seen, Outcome::Refused(e) if e == "EACCES" || e == "EPERM"),
                    "{role} {attempt}: {seen:?}"
                );
            }
        } else {
            println!(
                "{role}: Landlock only partly enforced here: TCP and signal rules not checked"
            );
        }
    }
    assert!(sibling.is_alive(), "a probe signalled its sibling");
    assert!(!root.file("tmp/probe").exists());
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run"]
fn every_child_of_the_daemon_runs_under_a_seccomp_filter() {
    require_root("every_child_of_the_daemon_runs_under_a_seccomp_filter");
    let daemon = Daemon::start("sbx-seccomp", "set passive\n");
    let children = daemon.children();
    assert_eq!(children.len(), 3, "{children:?}");
    for (role, &pid) in &children {
        assert_eq!(
            status_field(pid, "Seccomp"),
            "2",
            "{role}: seccomp filter mode"
        );
        let filters: u32 = status_field(pid, "Seccomp_filters")
            .parse()
            .expect("Seccomp_filters");
        assert!(filters >= 1, "{role}: {filters} filters");
        assert_eq!(status_field(pid, "NoNewPrivs"), "1", "{role}: no_new_privs");
        println!("{role} (pid {pid}): Seccomp 2, {filters} filter(s), NoNewPrivs 1");
    }
    assert_eq!(
        status_field(daemon.pid(), "Seccomp"),
        "0",
        "the parent has no filter"
    );
    assert!(
        daemon.log_text().contains("landlock:"),
        "the children log what Landlock enforces:\n{}",
        daemon.log_text()
    );
}

/// The log-only filter is for debugging in the foreground; a daemon in the
/// background always kills on a forbidden call.
#[test]
fn seccomp_log_is_refused_without_d() {
    let output = Command::new(binary("iked"))
        .args(["--seccomp-log", "-f", "/nonexistent/iked.conf"])
        .output()
        .expect("run iked");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--seccomp-log is for debugging and needs -d"),
        "{stderr}"
    );
}
